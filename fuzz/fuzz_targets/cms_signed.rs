//! SignedData parse and verify: a ContentInfo (DER or BER) whose content is parsed as
//! SignedData and every signer verified over the encapsulated content, or over a detached
//! content taken from the input's tail when there is none. A bad signature is a report.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_message::asn1::{self, TAG_SEQUENCE};
use smimekit_message::signed::{ContentDigests, SignedData, VerifyContext};

fuzz_target!(|data: &[u8]| {
    let Ok(ci) = asn1::parse_single(data) else {
        return;
    };
    // What follows the ContentInfo stands for a detached content.
    let detached = &data[ci.raw.len().min(data.len())..];
    let Ok(ci) = ci.expect(TAG_SEQUENCE, "ContentInfo") else {
        return;
    };
    let mut r = ci.children();
    let (Ok(_oid), Ok(explicit)) = (r.read("contentType"), r.read_tag(0xa0, "content")) else {
        return;
    };
    let Ok(sd) = SignedData::parse(&explicit) else {
        return;
    };
    let content: Vec<u8> = match &sd.econtent {
        Some(c) => c.to_vec(),
        None => detached.to_vec(),
    };
    let ctx = VerifyContext {
        at: smimekit_fuzz::PINNED_UNIX,
        ..VerifyContext::default()
    };
    let mut digests = ContentDigests::default();
    let reports = sd.verify(smimekit_fuzz::engine(), &content, &ctx, &mut digests);
    assert_eq!(reports.len(), sd.signer_count(), "one report per signer");
});
