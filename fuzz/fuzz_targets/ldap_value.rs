//! LDAP: a SearchResultEntry as the server sends it (BER, read without ldap3's panicking
//! constructor), the recipient entry made from it, and its certificate values
//! (`userCertificate`, the PKCS#7 `userSMIMECertificate`); also one attribute value alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_directory_ldap::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::decode_entry(data);
    let _ = fuzzing::smime_value(data);
});
