//! The key store in-process on a real SoftHSM2: the locked → unlock flow, on-token signatures
//! checked with OpenSSL, ECDH against OpenSSL, key generation, and 64 concurrent signatures
//! from a multi-threaded runtime through one token lane.
//!
//! SoftHSM reads SOFTHSM2_CONF when the module is initialised, once per process. This binary
//! therefore holds exactly one `#[test]`, which sets the variable before anything else runs
//! (the harness runs no other test thread; the e2e tests pass the variable to child processes
//! instead and never set it).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Verifier;
use openssl::x509::X509;
use smimekit_core::{
    DigestAlg, KeySpec, KeyStore, KeyStoreError, PrivateKey, Protection, Secret, SignatureScheme,
};
use smimekit_keystore_pkcs11::{Pkcs11Store, generate_boxed, softhsm_module};

fn pki(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pki")
        .join(name)
        .display()
        .to_string()
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().join("tokens").display()
        ),
    )
    .unwrap();
    // SAFETY: the only test of this binary sets the variable first, before any thread that
    // could read the environment exists (see the module comment).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    let module = softhsm_module()
        .expect("SoftHSM2 is required (apt-get install softhsm2 opensc)")
        .display()
        .to_string();
    ok(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        "lane",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]));
    let p = dir.path();
    for (who, id, ec) in [("alice", "01", false), ("bob", "02", true)] {
        let pubder: PathBuf = p.join(format!("{who}.pub.der"));
        let der = p.join(format!("{who}.der"));
        ok(Command::new("openssl")
            .args([
                "pkey",
                "-in",
                &pki(&format!("{who}.key")),
                "-pubout",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&pubder));
        ok(Command::new("openssl")
            .args([
                "x509",
                "-in",
                &pki(&format!("{who}.pem")),
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&der));
        let tool = || {
            let mut c = Command::new("pkcs11-tool");
            c.args([
                "--module",
                &module,
                "--token-label",
                "lane",
                "--login",
                "--pin",
                "1234",
            ]);
            c
        };
        let usage = if ec {
            "--usage-derive"
        } else {
            "--usage-decrypt"
        };
        ok(tool().args([
            "--write-object",
            &pki(&format!("{who}.key")),
            "--type",
            "privkey",
            "--usage-sign",
            usage,
            "--id",
            id,
            "--label",
            who,
        ]));
        let mut c = tool();
        c.arg("--write-object")
            .arg(&pubder)
            .args(["--type", "pubkey", "--id", id, "--label", who]);
        if ec {
            c.arg("--usage-derive");
        }
        ok(&mut c);
        ok(tool()
            .arg("--write-object")
            .arg(&der)
            .args(["--type", "cert", "--id", id, "--label", who]));
    }
    (dir, module)
}

fn verify(spki_or_cert: &[u8], is_cert: bool, md: MessageDigest, data: &[u8], sig: &[u8]) -> bool {
    let pkey = if is_cert {
        X509::from_der(spki_or_cert).unwrap().public_key().unwrap()
    } else {
        PKey::public_key_from_der(spki_or_cert).unwrap()
    };
    let mut v = Verifier::new(md, &pkey).unwrap();
    v.update(data).unwrap();
    v.verify(sig).unwrap()
}

#[test]
fn softhsm_in_process() {
    let (_dir, module) = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let uri = |obj: &str| format!("pkcs11:token=lane;object={obj}?module-path={module}");
        // Locked → wrong PIN → unlock.
        let store = Pkcs11Store::open_uri(&uri("alice")).unwrap();
        assert!(format!("{store:?}").contains("lane"));
        match store.protection().await {
            Protection::Locked { hint, .. } => assert!(hint.contains("lane"), "{hint}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.list().await,
            Err(KeyStoreError::Locked { .. })
        ));
        assert!(matches!(
            store.unlock(Secret::from("0000")).await,
            Err(KeyStoreError::BadSecret { .. })
        ));
        store.unlock(Secret::from("1234")).await.unwrap();
        assert_eq!(store.protection().await, Protection::Unlocked);

        // 64 concurrent RSA signatures and 64 ECDSA signatures through one lane.
        let alice: Arc<dyn PrivateKey> = store.open(None).await.unwrap();
        let bob_store = Pkcs11Store::open_uri(&uri("bob")).unwrap();
        let bob: Arc<dyn PrivateKey> = bob_store.open(None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            for (key, scheme) in [
                (alice.clone(), SignatureScheme::RsaPkcs1(DigestAlg::Sha256)),
                (bob.clone(), SignatureScheme::Ecdsa(DigestAlg::Sha256)),
            ] {
                tasks.push(tokio::spawn(async move {
                    let data = format!("message {i}");
                    let digest = openssl::sha::sha256(data.as_bytes());
                    let sig = key.sign_digest(scheme, &digest).await.unwrap();
                    assert!(
                        verify(
                            key.certificate().as_bytes(),
                            true,
                            MessageDigest::sha256(),
                            data.as_bytes(),
                            &sig
                        ),
                        "{scheme:?} {i}"
                    );
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }

        // RSA-PSS.
        let digest = openssl::sha::sha256(b"pss");
        let sig = alice
            .sign_digest(SignatureScheme::RsaPss(DigestAlg::Sha256), &digest)
            .await
            .unwrap();
        let pkey = X509::from_der(alice.certificate().as_bytes())
            .unwrap()
            .public_key()
            .unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), &pkey).unwrap();
        v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
            .unwrap();
        v.update(b"pss").unwrap();
        assert!(v.verify(&sig).unwrap());

        // ECDH against OpenSSL.
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let eph = openssl::ec::EcKey::generate(&group).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let point = eph
            .public_key()
            .to_bytes(
                &group,
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .unwrap();
        let z = bob.ecdh(&point).await.unwrap();
        let eph = PKey::from_ec_key(eph).unwrap();
        let bob_pub = X509::from_der(bob.certificate().as_bytes())
            .unwrap()
            .public_key()
            .unwrap();
        let mut d = openssl::derive::Deriver::new(&eph).unwrap();
        d.set_peer(&bob_pub).unwrap();
        assert_eq!(z.expose(), d.derive_to_vec().unwrap().as_slice());

        // A key generated on the token signs; its public key verifies.
        let newkey = generate_boxed(&uri("generated"), KeySpec::EcP256).unwrap();
        let spki = newkey.spki_der().unwrap();
        let sig = newkey
            .sign_digest(
                SignatureScheme::Ecdsa(DigestAlg::Sha256),
                &openssl::sha::sha256(b"g"),
            )
            .await
            .unwrap();
        assert!(verify(&spki, false, MessageDigest::sha256(), b"g", &sig));
        assert!(matches!(
            newkey.export_pkcs12("x", newkey.certificate(), &[], &Secret::from("p"), false),
            Err(KeyStoreError::Unsupported { .. })
        ));
        // Without a certificate it does not open as a signing key.
        let s = Pkcs11Store::open_uri(&uri("generated")).unwrap();
        let e = s.open(None).await.unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    });
}
