//! Inputs the fuzz targets of `fuzz/` found, each replayed as its target runs it, with the
//! outcome now expected. The inputs are committed beside this file, in `tests/fuzz/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use smimekit_pki::{load_certificates, sst, write_p7b, write_pem, write_sst};

fn input(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fuzz/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the `containers` target asserts: whatever is read writes back, in every format, to
/// something that reads back equal.
fn round_trips(data: &[u8]) {
    let Ok(certs) = load_certificates(data, "fuzz") else {
        return;
    };
    let pem = write_pem(&certs);
    assert_eq!(load_certificates(pem.as_bytes(), "pem").unwrap(), certs);
    assert_eq!(load_certificates(&write_p7b(&certs), "p7b").unwrap(), certs);
    assert_eq!(
        sst::read_sst_certificates(&write_sst(&certs)).unwrap(),
        certs
    );
}

/// A DER certificate whose extensions hold a SEQUENCE running past its parent was read as a
/// certificate from a DER file, while a `.p7b` holding it was refused: `write_p7b` wrote what
/// `load_certificates` could not read. The certificate is now refused, naming where.
#[test]
fn certificate_with_a_broken_nested_element_is_refused() {
    let data = input("containers-p7b-roundtrip.der");
    let err = load_certificates(&data, "broken.der")
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.der"), "{err}");
    assert!(err.contains("not DER") && err.contains("offset"), "{err}");
    round_trips(&data);
}

/// The same with the extensions' SEQUENCE turned into a constructed string (tag 0x35): the
/// DER file was read, the `.p7b` written from it was refused ("chunk of a constructed string
/// is not a string of its type").
#[test]
fn certificate_with_a_constructed_string_is_refused() {
    let data = input("containers-constructed-string.der");
    let err = load_certificates(&data, "cs.der").unwrap_err().to_string();
    assert!(err.contains("cs.der") && err.contains("not DER"), "{err}");
    round_trips(&data);
}

/// The BER normaliser's output for a high-tag-number element (`ff 01 00`) is DER that the
/// definite reader reads back, and converts to itself.
#[test]
fn high_tag_number_converts_to_readable_der() {
    let der = smimekit_pki::ber::ber_to_der(&[0xff, 0x01, 0x00]).unwrap();
    assert!(smimekit_pki::asn1::parse_definite(&der).is_ok());
    assert_eq!(smimekit_pki::ber::ber_to_der(&der).unwrap(), der);
}
