//! Certificate facts (`certinfo`), read leniently from any DER: subject, issuer, addresses,
//! thumbprints, key usage; and the issuer/serial, SPKI, TBS and name formatting helpers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_core::CertDer;
use smimekit_pki::certinfo;

fuzz_target!(|data: &[u8]| {
    let cert = CertDer::new(data.to_vec());
    if let Ok(info) = certinfo::parse(&cert) {
        let _ = certinfo::primary_address(&info);
        if let Some(ku) = info.key_usage {
            let _ = ku.names();
        }
    }
    let _ = certinfo::issuer_and_serial(&cert);
    let _ = certinfo::spki_der(&cert);
    let _ = certinfo::tbs_der(&cert);
    let _ = certinfo::format_name(data);
    let _ = certinfo::oid_to_string(data);
});
