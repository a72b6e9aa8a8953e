//! The legacy provider loaded before anything else was fetched (as the file key store does on
//! its first RC2 PKCS#12) must not leave a second `default` provider behind once OpenSSL
//! activates its fallbacks. Its own test binary, so that nothing has touched OpenSSL before.

#![allow(clippy::unwrap_used)]

use openssl::pkey::PKey;
use openssl::rsa::Rsa;

#[test]
fn legacy_provider_loaded_first_leaves_one_default() {
    smimekit_engine_openssl::load_legacy_provider().unwrap();
    // Fetches (key generation, PKCS#8 decoding) are what activated the fallbacks.
    let key = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let der = key.private_key_to_pkcs8().unwrap();
    PKey::private_key_from_pkcs8(&der).unwrap();

    let mut names = smimekit_engine_openssl::active_providers();
    names.sort();
    assert_eq!(names, ["default", "legacy"]);
}
