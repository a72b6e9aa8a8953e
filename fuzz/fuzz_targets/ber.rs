//! The BER reader and the BER-to-DER normaliser: every element of the input read recursively
//! (contents, octet strings, small integers), then converted to DER, which must itself parse,
//! need no conversion and convert to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_pki::asn1::{self, Reader, Tlv};
use smimekit_pki::ber;

fn walk(t: &Tlv<'_>, depth: usize) {
    let _ = t.octets();
    let _ = t.octet_string();
    let _ = t.small_uint();
    let _ = t.context();
    if t.is_constructed() && depth < 64 {
        let mut r = t.children();
        while let Ok(Some(child)) = r.next() {
            walk(&child, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    while let Ok(Some(t)) = r.next() {
        walk(&t, 0);
    }
    let _ = asn1::parse_definite(data);
    let _ = asn1::read_header(data, 0);
    let _ = ber::concat_octet_chunks(data);
    let _ = ber::needs_conversion(data);
    if let Ok(der) = ber::ber_to_der(data) {
        assert!(
            asn1::parse_definite(&der).is_ok(),
            "DER output does not parse as DER"
        );
        assert!(
            !ber::needs_conversion(&der),
            "DER output still needs conversion"
        );
        let again = ber::ber_to_der(&der).expect("DER output converts");
        assert_eq!(again, der, "DER is not a fixed point of the conversion");
    }
});
