//! MIME: parsing, every part of every multipart (recursively), transfer decoding, CRLF
//! canonicalisation, splitting a message for protection and making it 7-bit safe, and the
//! quoted-printable and base64 codecs (which must round-trip what they encode).

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_message::mime;

/// Walks an entity and its parts; `depth` bounds the recursion as the parser's caps do.
fn walk(data: &[u8], depth: usize) {
    let Ok(entity) = mime::parse(data) else {
        return;
    };
    for h in &entity.headers {
        let _ = mime::ContentType::parse(&h.value);
    }
    let _ = entity.content_type();
    let _ = entity.content_disposition();
    let _ = entity.filename();
    let _ = entity.transfer_encoding();
    let _ = mime::smime_kind(&entity);
    let _ = entity.decoded_body();
    let canonical = mime::canonicalize_crlf(entity.raw);
    assert!(
        !canonical.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
            && canonical.first() != Some(&b'\n'),
        "a bare LF survived canonicalisation"
    );
    if depth < 8
        && let Ok(parts) = entity.parts()
    {
        for part in parts {
            walk(part, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data, 0);
    if let Ok((_outer, inner)) = mime::split_for_protection(data) {
        let safe = mime::to_7bit_safe(&inner);
        let _ = mime::parse(&safe);
    }
    let _ = mime::decode_base64(data);
    let _ = mime::decode_quoted_printable(data);
    // What the encoders write, the decoders read back.
    let qp = mime::encode_quoted_printable(data);
    assert!(
        qp.iter().all(|b| b.is_ascii()),
        "quoted-printable output is not ASCII"
    );
    let canonical = mime::canonicalize_crlf(data);
    let qp = mime::encode_quoted_printable(&canonical);
    assert_eq!(
        mime::decode_quoted_printable(&qp),
        canonical.as_ref(),
        "quoted-printable round trip"
    );
    let b64 = mime::base64_lines(data);
    assert_eq!(
        mime::decode_base64(&b64).ok().as_deref(),
        Some(data),
        "base64 round trip"
    );
});
