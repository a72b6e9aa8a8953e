//! Certificate containers: PEM, DER, PKCS#7 certs-only (`.p7b`) and Microsoft `.sst`, read
//! from any bytes; what was read is written back in every format and must read back equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_pki::{load_certificates, read_sst, sst, write_p7b, write_pem, write_sst};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = read_sst(data) {
        for e in &entries {
            let _ = e.friendly_name();
        }
    }
    let _ = sst::read_sst_certificates(data);
    let Ok(certs) = load_certificates(data, "fuzz") else {
        return;
    };
    if certs.is_empty() {
        return;
    }
    let pem = write_pem(&certs);
    assert_eq!(
        load_certificates(pem.as_bytes(), "pem").expect("written PEM reads back"),
        certs,
        "PEM round trip"
    );
    let p7b = write_p7b(&certs);
    assert_eq!(
        load_certificates(&p7b, "p7b").expect("written p7b reads back"),
        certs,
        "p7b round trip"
    );
    let store = write_sst(&certs);
    assert_eq!(
        sst::read_sst_certificates(&store).expect("written sst reads back"),
        certs,
        "sst round trip"
    );
});
