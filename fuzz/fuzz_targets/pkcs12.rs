//! PKCS#12 files (DER, BER or PEM-armoured): the PFX walk, MAC (classic and PBMAC1), the
//! encrypted safes and shrouded key bags, with no password and with the corpus' passwords.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_core::Secret;
use smimekit_keystore_file::fuzzing::read_p12;

fuzz_target!(|data: &[u8]| {
    let _ = read_p12(data, None);
    // The passwords of the seeds (the project's test PKI, NSS's, OpenSSL's test files).
    for pass in ["test", "nss"] {
        let _ = read_p12(data, Some(&Secret::new(pass.as_bytes().to_vec())));
    }
});
