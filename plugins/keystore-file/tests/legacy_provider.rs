//! OpenSSL's legacy provider is loaded only for files that need it (every active provider
//! slows every later algorithm lookup). Its own test binary: nothing else may load providers
//! first.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use smimekit_core::Secret;
use smimekit_engine_openssl::active_providers;
use smimekit_keystore_file::read_bundle;

fn corpus(file: &str) -> PathBuf {
    smimekit_testkit::corpus().join(file)
}

fn legacy_loaded() -> bool {
    active_providers().iter().any(|p| p == "legacy")
}

#[test]
fn legacy_provider_only_for_legacy_ciphers() {
    // PBES2/AES bags, SHA-256 MAC; then 3DES bags, SHA-1 MAC: neither needs it.
    for (file, pass) in [
        ("thunderbird-nss/smime/Alice.p12", "nss"),
        ("thunderbird-nss/smime-interop/Fran.p12", "nss"),
    ] {
        let bundle = read_bundle(&corpus(file), Some(&Secret::from(pass))).unwrap();
        assert_eq!(bundle.keys.len(), 1, "{file}");
        assert!(!legacy_loaded(), "{file}: {:?}", active_providers());
    }

    // An RC2-40 certificate bag does.
    let bundle = read_bundle(
        &corpus("simple-java-mail/smime_test_user.p12"),
        Some(&Secret::from("letmein")),
    )
    .unwrap();
    assert_eq!(bundle.keys.len(), 1);
    assert_eq!(bundle.certificates.len(), 1);
    let mut providers = active_providers();
    providers.sort();
    assert_eq!(providers, ["default", "legacy"]);
}
