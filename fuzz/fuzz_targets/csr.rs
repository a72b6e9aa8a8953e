//! PKCS#10 certificate requests (DER or PEM), parsed and their self-signature verified with
//! the OpenSSL engine's verifier.

#![no_main]

use libfuzzer_sys::fuzz_target;
use smimekit_pki::ca::parse_csr;

fuzz_target!(|data: &[u8]| {
    let _ = parse_csr(data, smimekit_fuzz::engine().verifier);
});
