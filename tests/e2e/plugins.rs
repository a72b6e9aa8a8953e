//! Runtime plugins: the ABI conformance suite against both sample vendor plugins (in-process,
//! through `smimekit-plugin-host`), the loader's failures (each a clear error naming the file,
//! with the host still working afterwards), and the CLI end to end (`--plugin`, `[plugins]`,
//! `encrypt --to` through the Rust sample, `sign --key vendor-c:…` through the C sample,
//! checked by `openssl cms -verify`).
//!
//! The samples are built by `cargo xtask build-samples` (which `cargo xtask test` runs first)
//! into `<target>/plugins/`; when they are missing this module builds them itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use smimekit_core::{
    CertDer, DigestAlg, Directory, KeyKind, KeyStore, KeyStoreError, Mailbox, Protection,
    PublishMode, RecipientKind, RsaPadding, Secret, SignatureScheme,
};
use smimekit_plugin_host::directory::PluginDirectory;
use smimekit_plugin_host::keystore::PluginKeyStore;
use smimekit_plugin_host::{Library, Plugins, load};

use crate::common::{fixtures, p, pki, run, show, smimekit, workspace};

/// `<target>/` of this test run.
fn target() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-HASH
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn dylib(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The two samples: (Rust directory, C key store), built once if missing.
fn samples() -> &'static (PathBuf, PathBuf) {
    static S: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = target().join("plugins");
        let rust = dir.join(dylib("smimekit_sample_vendor_rust"));
        let c = dir.join(dylib("smimekit_vendor_c"));
        if !rust.exists() || !c.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = run(
                Command::new(cargo)
                    .args(["run", "--quiet", "-p", "xtask", "--", "build-samples"])
                    .env("CARGO_TARGET_DIR", target())
                    .current_dir(workspace()),
                None,
            );
            assert!(
                out.status.success(),
                "{}",
                show("xtask build-samples", &out)
            );
        }
        (rust, c)
    })
}

pub(crate) fn rust_sample() -> &'static Path {
    &samples().0
}

fn c_sample() -> &'static Path {
    &samples().1
}

/// Compiles `tests/fixtures/plugins/test_plugin.c` with `defines` into `dir/name`.
fn test_plugin(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(dylib(name));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = run(
        Command::new(cc)
            .args(["-shared", "-fPIC", "-I"])
            .arg(workspace().join("crates/plugin-abi/include"))
            .args(defines)
            .arg(fixtures().join("plugins/test_plugin.c"))
            .arg("-o")
            .arg(&out),
        None,
    );
    assert!(res.status.success(), "{}", show("cc", &res));
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cert(name: &str) -> CertDer {
    let pem = std::fs::read_to_string(pki(name)).unwrap();
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine as _;
    CertDer::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

fn vendor_ref(user: &str) -> String {
    format!(
        "vendor-c:{}?cert={}",
        pki(&format!("{user}.key")),
        pki(&format!("{user}.pem"))
    )
}

// ---- ABI conformance ----

/// What every plugin must satisfy, whichever port: the table validated, a name, a version, and
/// the capabilities the host derived from non-null functions.
fn common_conformance(lib: &Library, expect_name: &str, thread_safe: bool) {
    let info = lib
        .keystore_info()
        .or(lib.directory_info())
        .expect("one interface");
    assert_eq!(info.name, expect_name);
    assert_eq!(info.version, "0.1.0");
    assert!(!info.description.is_empty());
    assert_eq!(info.thread_safe, thread_safe);
    assert_eq!(lib.names(), [expect_name]);
}

#[test]
fn rust_sample_conforms_as_a_directory() {
    let lib = load(rust_sample()).unwrap();
    common_conformance(&lib, "sample-json", true);
    assert_eq!(
        lib.directory_info().unwrap().capabilities,
        ["lookup", "recipients", "publish", "unpublish"]
    );
    assert!(lib.keystore_info().is_none());
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "kind = \"sample-json\"\npath = \"{}\"\n",
        p(&tmp.path().join("d.json"))
    );
    let bad = PluginDirectory::open(lib.clone(), "vendor", "kind = \"sample-json\"\n").unwrap_err();
    assert!(bad.to_string().contains("needs path"), "{bad}");
    let dir = PluginDirectory::open(lib.clone(), "vendor", &config).unwrap();
    assert_eq!(dir.name(), "vendor");
    let (alice, bob) = (cert("alice.pem"), cert("bob.pem"));
    let a = mailbox("alice@example.org");
    rt().block_on(async {
        assert!(dir.lookup(&a).await.unwrap().is_empty());
        let after = dir
            .publish(&a, RecipientKind::Mailbox, &alice, PublishMode::Merge)
            .await
            .unwrap();
        assert_eq!(after, vec![alice.clone()]);
        // Merge keeps, never duplicates.
        let after = dir
            .publish(&a, RecipientKind::Mailbox, &alice, PublishMode::Merge)
            .await
            .unwrap();
        assert_eq!(after, vec![alice.clone()]);
        let after = dir
            .publish(&a, RecipientKind::Mailbox, &bob, PublishMode::Merge)
            .await
            .unwrap();
        assert_eq!(after, [alice.clone(), bob.clone()]);
        let after = dir
            .publish(&a, RecipientKind::Mailbox, &bob, PublishMode::Replace)
            .await
            .unwrap();
        assert_eq!(after, vec![bob.clone()]);
        assert_eq!(dir.lookup(&a).await.unwrap(), vec![bob.clone()]);
        let all = dir.recipients().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].address, a);
        assert_eq!(
            dir.unpublish(&a, &bob).await.unwrap(),
            Vec::<CertDer>::new()
        );
        // 32 concurrent lookups on the bounded blocking lane.
        let dir = Arc::new(dir);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let d = dir.clone();
                let a = a.clone();
                tokio::spawn(async move { d.lookup(&a).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_empty());
        }
    });
}

#[test]
fn a_panicking_rust_plugin_returns_a_status_and_the_host_goes_on() {
    let lib = load(rust_sample()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("path = \"{}\"\n", p(&tmp.path().join("d.json")));
    let dir = PluginDirectory::open(lib, "vendor", &config).unwrap();
    rt().block_on(async {
        let e = dir.lookup(&mailbox("panic@example.org")).await.unwrap_err();
        assert!(e.to_string().contains("plugin panicked"), "{e}");
        assert!(e.to_string().contains("asked to panic"), "{e}");
        // The same handle keeps working.
        assert!(
            dir.lookup(&mailbox("alice@example.org"))
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn c_sample_conforms_as_a_key_store() {
    let lib = load(c_sample()).unwrap();
    common_conformance(&lib, "vendor-c", false);
    assert_eq!(
        lib.keystore_info().unwrap().capabilities,
        ["list", "unlock", "sign", "decrypt"]
    );
    assert!(lib.accepts(&vendor_ref("alice")));
    assert!(!lib.accepts(&pki("alice.p12")));
    assert!(!lib.accepts("pkcs11:token=x"));
    rt().block_on(async {
        // Errors carry the ABI's meaning.
        let e = PluginKeyStore::open(lib.clone(), &format!("vendor-c:{}", pki("alice.key")), None)
            .await
            .unwrap_err();
        assert!(matches!(e, KeyStoreError::Malformed { .. }), "{e}");
        let e = PluginKeyStore::open(
            lib.clone(),
            "vendor-c:/nonexistent.key?cert=/nonexistent.pem",
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, KeyStoreError::NotFound { .. }), "{e}");

        let store = PluginKeyStore::open(lib.clone(), &vendor_ref("alice"), None)
            .await
            .unwrap();
        assert_eq!(store.protection().await, Protection::Unlocked);
        let keys = store.list().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].selector, "#0");
        assert_eq!(keys[0].certificate.as_ref(), Some(&cert("alice.pem")));
        let e = store.open(Some("#7")).await.unwrap_err();
        assert!(matches!(e, KeyStoreError::NotFound { .. }), "{e}");
        let key = store.open(None).await.unwrap();
        drop(store); // keys outlive their store handle safely
        assert_eq!(key.certificate(), &cert("alice.pem"));
        assert_eq!(key.kind(), KeyKind::Rsa { bits: 2048 });
        let digest = [7u8; 32];
        let sig = key
            .sign_digest(SignatureScheme::RsaPkcs1(DigestAlg::Sha256), &digest)
            .await
            .unwrap();
        assert_eq!(sig.len(), 256);
        let sig = key
            .sign_digest(SignatureScheme::RsaPss(DigestAlg::Sha256), &digest)
            .await
            .unwrap();
        assert_eq!(sig.len(), 256);
        let e = key
            .sign_digest(SignatureScheme::RsaPkcs1(DigestAlg::Sha256), &[1, 2, 3])
            .await
            .unwrap_err();
        assert!(matches!(e, KeyStoreError::Malformed { .. }), "{e}");
        // ecdh is NULL in the C sample's table: not supported, said by the host.
        let e = key.ecdh(&[4; 65]).await.unwrap_err();
        assert!(matches!(e, KeyStoreError::Unsupported { .. }), "{e}");
        let e = key
            .decrypt_key(&RsaPadding::Pkcs1v15, &[0; 256])
            .await
            .unwrap_err();
        assert!(matches!(e, KeyStoreError::Failed { .. }), "{e}");

        // An EC key signs ECDSA and says it cannot decrypt.
        let store = PluginKeyStore::open(lib.clone(), &vendor_ref("bob"), None)
            .await
            .unwrap();
        let key = store.open(Some("#0")).await.unwrap();
        assert_eq!(key.kind(), KeyKind::Ec { curve: "P-256" });
        assert!(
            key.sign_digest(SignatureScheme::Ecdsa(DigestAlg::Sha256), &digest)
                .await
                .is_ok()
        );
        let e = key
            .decrypt_key(&RsaPadding::Pkcs1v15, &[0; 32])
            .await
            .unwrap_err();
        assert!(matches!(e, KeyStoreError::Unsupported { .. }), "{e}");

        // 16 concurrent signatures through the one worker thread of a non-thread-safe plugin.
        let store = PluginKeyStore::open(lib.clone(), &vendor_ref("carol"), None)
            .await
            .unwrap();
        let key = store.open(None).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let k = key.clone();
                tokio::spawn(async move {
                    k.sign_digest(SignatureScheme::Ecdsa(DigestAlg::Sha384), &[9; 48])
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
    });
}

#[test]
fn c_sample_reports_locked_then_unlocks() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("alice-enc.key");
    let out = run(
        Command::new("openssl")
            .args(["pkey", "-aes256", "-passout", "pass:secret1", "-in"])
            .arg(pki("alice.key"))
            .arg("-out")
            .arg(&key),
        None,
    );
    assert!(out.status.success(), "{}", show("openssl pkey", &out));
    let lib = load(c_sample()).unwrap();
    let reference = format!("vendor-c:{}?cert={}", p(&key), pki("alice.pem"));
    rt().block_on(async {
        let store = PluginKeyStore::open(lib, &reference, None).await.unwrap();
        assert!(matches!(
            store.protection().await,
            Protection::Locked { .. }
        ));
        let e = store.open(None).await.unwrap_err();
        assert!(matches!(e, KeyStoreError::Locked { .. }), "{e}");
        let e = store.unlock(Secret::from("wrong")).await.unwrap_err();
        assert!(matches!(e, KeyStoreError::BadSecret { .. }), "{e}");
        store.unlock(Secret::from("secret1")).await.unwrap();
        assert_eq!(store.protection().await, Protection::Unlocked);
        assert!(store.open(None).await.is_ok());
    });
}

// ---- loader failures ----

/// Loads `path`, expecting an error that names the file and contains `reason`.
fn load_fails(path: &Path, reason: &str) {
    let e = load(path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&p(path)), "{msg}");
    assert!(msg.contains(reason), "want {reason:?} in: {msg}");
}

#[test]
fn loader_failures_name_the_file_and_the_reason_and_the_host_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    load_fails(
        &test_plugin(d, "noentry", &["-DNO_ENTRY"]),
        "no entry symbol `smimekit_plugin_entry`",
    );
    load_fails(
        &test_plugin(d, "abi2", &["-DABI_MAJOR_V=2"]),
        "wrong ABI version 2.0",
    );
    load_fails(
        &test_plugin(d, "tiny", &["-DTABLE_SIZE=16"]),
        "table too small (16 bytes",
    );
    load_fails(
        &test_plugin(d, "nulltable", &["-DRETURN_NULL"]),
        "returned null for every interface",
    );
    load_fails(
        &test_plugin(d, "badname", &["-DKIND=\"Bad Name\""]),
        "must be non-empty [a-z0-9-]",
    );
    let text = d.join("notalib.so");
    std::fs::write(&text, "not a shared library").unwrap();
    load_fails(&text, "not a loadable shared library");
    load_fails(&d.join("missing.so"), "no such file");

    // Name clashes: with a built-in kind, and between two plugins.
    let local = test_plugin(d, "local", &["-DKIND=\"local\""]);
    let e = Plugins::load_all(std::slice::from_ref(&local), &["local", "file"]).unwrap_err();
    assert!(e.to_string().contains("clashes with a built-in"), "{e}");
    let copy = d.join(dylib("sample_copy"));
    std::fs::copy(rust_sample(), &copy).unwrap();
    let e = Plugins::load_all(&[rust_sample().to_path_buf(), copy.clone()], &[]).unwrap_err();
    assert!(e.to_string().contains(&p(&copy)), "{e}");
    assert!(
        e.to_string()
            .contains("\"sample-json\" is already provided by plugin"),
        "{e}"
    );

    // Null handle and out-of-range status at call time: errors, not crashes.
    let nullh = load(&test_plugin(d, "nullhandle", &["-DNULL_HANDLE"])).unwrap();
    let e = PluginDirectory::open(nullh, "t", "").unwrap_err();
    assert!(e.to_string().contains("null handle"), "{e}");
    let bad = load(&test_plugin(d, "status999", &["-DLOOKUP_STATUS=999"])).unwrap();
    let dir = PluginDirectory::open(bad, "t", "").unwrap();
    rt().block_on(async {
        let e = dir.lookup(&mailbox("a@example.org")).await.unwrap_err();
        assert!(e.to_string().contains("out-of-range status 999"), "{e}");
    });

    // The host still loads and uses a good plugin after all of that.
    let ok = Plugins::load_all(
        &[rust_sample().to_path_buf(), c_sample().to_path_buf()],
        &["local"],
    )
    .unwrap();
    assert_eq!(ok.libraries().len(), 2);
    assert!(ok.key_store_for(&vendor_ref("alice")).is_some());
    assert!(ok.directory_kind("sample-json").is_some());
}

#[test]
fn a_v1_0_plugin_loads_in_a_host_whose_table_grew() {
    // The table ends after dir_lookup: a v1.0 plugin seen by a host whose struct has more
    // functions. The functions beyond `size` (even non-null in the plugin's memory) are read as
    // null: the host says unsupported and never calls them (they would abort).
    let tmp = tempfile::tempdir().unwrap();
    let size = smimekit_plugin_abi::DirectoryV1::MIN_SIZE;
    let lib = load(&test_plugin(
        tmp.path(),
        "v10",
        &[&format!("-DTABLE_SIZE={size}")],
    ))
    .unwrap();
    assert_eq!(lib.directory_info().unwrap().capabilities, ["lookup"]);
    let dir = PluginDirectory::open(lib, "t", "").unwrap();
    rt().block_on(async {
        assert!(
            dir.lookup(&mailbox("a@example.org"))
                .await
                .unwrap()
                .is_empty()
        );
        let e = dir.recipients().await.unwrap_err();
        assert!(e.to_string().contains("does not support"), "{e}");
        let e = dir
            .publish(
                &mailbox("a@example.org"),
                RecipientKind::Mailbox,
                &cert("alice.pem"),
                PublishMode::Merge,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not support"), "{e}");
    });
    // One byte short of the v1.0 minimum is too small.
    let small = test_plugin(
        tmp.path(),
        "v10short",
        &[&format!("-DTABLE_SIZE={}", size - 1)],
    );
    load_fails(&small, "table too small");
}

// ---- CLI ----

#[test]
fn cli_lists_loaded_plugins_and_fails_on_a_bad_one() {
    let (rust, c) = samples();
    let out = smimekit(
        &["--plugin", &p(rust), "plugins", "--json", "--plugin", &p(c)],
        &[],
    );
    assert!(out.status.success(), "{}", show("plugins", &out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vendor: Vec<&serde_json::Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["origin"] == "plugin")
        .collect();
    assert_eq!(vendor.len(), 2, "{list:#}");
    assert_eq!(vendor[0]["id"], "sample-json");
    assert_eq!(vendor[0]["port"], "directory");
    assert_eq!(vendor[0]["version"], "0.1.0");
    assert_eq!(vendor[1]["id"], "vendor-c");
    assert_eq!(
        vendor[1]["capabilities"],
        serde_json::json!(["list", "unlock", "sign", "decrypt"])
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "file" && p["origin"] == "built-in")
    );

    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus.so");
    std::fs::write(&bogus, "x").unwrap();
    let out = smimekit(&["plugins", "--plugin", &p(&bogus)], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show("bad plugin", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&p(&bogus)) && err.contains("not a loadable shared library"),
        "{err}"
    );
    // SMIMEKIT_PLUGIN_PATH takes folders.
    let out = smimekit(
        &["plugins", "--json"],
        &[("SMIMEKIT_PLUGIN_PATH", &p(rust.parent().unwrap()))],
    );
    assert!(out.status.success(), "{}", show("plugins via env", &out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("vendor-c"));
}

#[test]
fn encrypt_finds_the_recipient_through_the_rust_plugin_and_sign_uses_the_c_plugin() {
    let (rust, c) = samples();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\npaths = [\"{}\"]\n\n[directory.vendor]\nkind = \"sample-json\"\npath = \"vendor.json\"\n",
            p(rust)
        ),
    )
    .unwrap();
    let cfg = p(&config);
    let out = smimekit(
        &[
            "--config",
            &cfg,
            "publish",
            "alice@example.org",
            "--cert",
            &pki("alice.pem"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show("publish", &out));
    assert!(d.join("vendor.json").exists());
    let msg = d.join("msg.txt");
    std::fs::write(
        &msg,
        "Content-Type: text/plain\r\n\r\nhello through plugins\r\n",
    )
    .unwrap();
    let enc = d.join("enc.eml");
    let out = smimekit(
        &[
            "encrypt",
            "--config",
            &cfg,
            "--to",
            "alice@example.org",
            "--in",
            &p(&msg),
            "--out",
            &p(&enc),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show("encrypt --to", &out));
    // The C plugin decrypts it (RSA, PKCS#1 v1.5 key transport)…
    let out = smimekit(
        &[
            "decrypt",
            "--plugin",
            &p(c),
            "--key",
            &vendor_ref("alice"),
            "--in",
            &p(&enc),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        show("decrypt via vendor-c", &out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello through plugins"));
    // …and signs, the chain completed from --chain (the sample sends none with the key);
    // openssl verifies with the root alone.
    let signed = d.join("signed.eml");
    let out = smimekit(
        &[
            "--config",
            &cfg,
            "--plugin",
            &p(c),
            "sign",
            "--key",
            &vendor_ref("alice"),
            "--chain",
            &pki("intermediate.pem"),
            "--in",
            &p(&msg),
            "--out",
            &p(&signed),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show("sign via vendor-c", &out));
    let ca = pki("root.pem");
    let out = run(
        Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-attime",
                smimekit_testkit::PINNED_UNIX,
                "-out",
                "/dev/null",
                "-CAfile",
            ])
            .arg(&ca)
            .arg("-in")
            .arg(&signed),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        show("openssl cms -verify", &out)
    );
    // An unknown kind without the plugin is still a usage error naming the kind.
    std::fs::write(
        &config,
        "[directory.vendor]\nkind = \"sample-json\"\npath = \"v.json\"\n",
    )
    .unwrap();
    let out = smimekit(&["--config", &cfg, "lookup", "alice@example.org"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show("unknown kind", &out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sample-json"));
}
