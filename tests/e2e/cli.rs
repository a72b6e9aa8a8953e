//! The CLI contract beyond mail: keys, certificates, plugins, completions.

use crate::common::{pki, show, smimekit};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keys_list_shows_the_key_and_its_certificate() {
    let out = smimekit(
        &["keys", "list", "--store", &pki("alice.p12"), "--json"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let key = &keys[0];
    assert_eq!(key["kind"]["type"], "rsa");
    assert_eq!(key["kind"]["bits"], 2048);
    assert_eq!(key["certificate"]["emails"][0], "alice@example.org");
    assert_eq!(
        key["chain"].as_array().map(Vec::len),
        Some(2),
        "intermediate and root"
    );
}

#[test]
fn keys_list_reads_the_password_file_and_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "test\n").unwrap();
    let out = smimekit(
        &[
            "keys",
            "list",
            "--store",
            &pki("bob.p12"),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("bob@example.org"));
    // No password at all, no terminal: exit 4 naming the file and the ways to give one.
    let out = smimekit(&["keys", "list", "--store", &pki("bob.p12")], &[]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bob.p12") && err.contains("SMIMEKIT_PASSWORD"),
        "{err}"
    );
}

#[test]
fn cert_export_der_is_byte_identical_to_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("alice.der");
    let out = smimekit(
        &[
            "cert",
            "export",
            &pki("alice.p12"),
            "--der",
            "--out",
            ours.to_str().unwrap(),
        ],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::process::Command::new("openssl")
        .args(["x509", "-in", &pki("alice.pem"), "-outform", "DER"])
        .output()
        .unwrap();
    assert!(theirs.status.success());
    assert_eq!(std::fs::read(&ours).unwrap(), theirs.stdout);
}

#[test]
fn cert_export_pem_chain_holds_leaf_then_issuers() {
    let out = smimekit(
        &["cert", "export", &pki("alice.p12"), "--pem", "--chain"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = stdout(&out);
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "{pem}"
    );
    // DER holds one certificate only: asking for a DER chain is a usage error.
    let out = smimekit(
        &["cert", "export", &pki("alice.p12"), "--der", "--chain"],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cert_show_lists_every_certificate_with_thumbprints() {
    let out = smimekit(&["cert", "show", &pki("chain.pem"), "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let certs = certs.as_array().unwrap();
    assert_eq!(certs.len(), 2);
    for c in certs {
        assert_eq!(c["sha1_thumbprint"].as_str().map(str::len), Some(40));
        assert_eq!(c["sha256_fingerprint"].as_str().map(str::len), Some(64));
        assert_eq!(c["is_ca"], true);
    }
}

#[test]
fn plugins_are_listed_by_port() {
    let out = smimekit(&["plugins", "--json"], &[]);
    assert!(out.status.success());
    let plugins: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let pairs: Vec<(String, String)> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_str().unwrap().into(),
                p["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&("crypto-engine".into(), "openssl".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("key-store".into(), "file".into())),
        "{pairs:?}"
    );
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = smimekit(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        assert!(stdout(&out).contains("smimekit"), "{shell}");
    }
}

/// Runs `smimekit` with its standard output a pipe whose reader is already gone, as in
/// `smimekit plugins | head -1` once `head` has exited.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(crate::common::smimekit_bin())
        .args(args)
        .env_remove("SMIMEKIT_PASSWORD")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_standard_output_is_success_not_a_panic() {
    let cert = pki("alice.pem");
    for args in [
        &["plugins"][..],
        &["plugins", "--json"],
        &["completions", "bash"],
        &["cert", "show", &cert],
        &["cert", "show", &cert, "--json"],
        &["cert", "export", &cert, "--pem"],
    ] {
        let out = with_closed_stdout(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// One command per documented exit code, each checked through the whole binary.
#[test]
fn every_exit_code_has_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("msg.txt"), "Hello\r\n").unwrap();
    std::fs::write(path("junk.pem"), "not a certificate\n").unwrap();
    let signed = smimekit(
        &[
            "sign",
            "--key",
            &pki("alice.p12"),
            "--in",
            &path("msg.txt"),
            "--out",
            &path("signed.eml"),
        ],
        &[("SMIMEKIT_PASSWORD", "test")],
    );
    assert!(
        signed.status.success(),
        "{}",
        crate::common::show("sign", &signed)
    );
    let text = std::fs::read_to_string(path("signed.eml")).unwrap();
    std::fs::write(path("tampered.eml"), text.replacen("Hello", "Hellp", 1)).unwrap();
    let (root, tampered) = (pki("root.pem"), path("tampered.eml"));
    let (junk, missing) = (path("junk.pem"), path("missing.eml"));
    let cases: [(&[&str], u8, &str); 8] = [
        (&["cert", "show", &pki("alice.pem")], 0, ""),
        (&["verify", "--trust", &root, "--in", &tampered], 1, ""),
        (&["sign", "--digest", "md4", "--key", "x"], 2, "md4"),
        // A usage error found after parsing (once reported as I/O, exit 5).
        (&["exchange", "config", "set", "novalue"], 2, "NAME=VALUE"),
        (&["cert", "show", &junk], 3, "junk.pem"),
        (&["keys", "list", "--store", &pki("bob.p12")], 4, "bob.p12"),
        (
            &["verify", "--trust", &root, "--in", &missing],
            5,
            "missing.eml",
        ),
        (
            &["verify", "--trust", &root, "--in", &missing, "--json"],
            5,
            "",
        ),
    ];
    for (args, code, needle) in cases {
        let out = smimekit(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(i32::from(code)), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args.contains(&"--json") {
            let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(body["exit_code"], i32::from(code), "{args:?}");
        }
    }
}

/// The CLI builds its errors as typed service errors so each maps to its exit code; an
/// `anyhow::bail!` would fall through to the I/O code whatever the cause.
#[test]
fn the_cli_raises_no_untyped_errors() {
    let src = crate::common::workspace().join("apps/cli/src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for bad in ["bail!", "anyhow!(", "println!(", "print!("] {
                    let hits = text
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .filter(|l| l.contains(bad) && !l.contains("eprint"))
                        .count();
                    assert_eq!(hits, 0, "{}: uses {bad}", path.display());
                }
            }
        }
    }
}

/// Issue 16 §4: what `decrypt` and `open` decrypted is created owner-only (0600), also over a
/// readable file; a symbolic link planted where it goes is refused and its target left as it
/// was; no temporary file is left behind.
#[cfg(unix)]
#[test]
fn decrypted_output_is_owner_only_and_never_written_through_a_planted_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = tempfile::tempdir().unwrap();
    let path = |n: &str| d.path().join(n).display().to_string();
    std::fs::write(
        d.path().join("msg.txt"),
        "Content-Type: text/plain\r\n\r\nthe secret\r\n",
    )
    .unwrap();
    let out = smimekit(
        &[
            "encrypt",
            "--to",
            &pki("alice.pem"),
            "--in",
            &path("msg.txt"),
            "--out",
            &path("sealed.eml"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show("encrypt", &out));
    let mode = |n: &str| {
        std::fs::metadata(d.path().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    // A readable file at the path: replaced by an owner-only one.
    std::fs::write(d.path().join("plain.txt"), "old").unwrap();
    std::fs::set_permissions(
        d.path().join("plain.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    for cmd in ["decrypt", "open"] {
        let out = smimekit(
            &[
                cmd,
                "--key",
                &pki("alice.p12"),
                "--in",
                &path("sealed.eml"),
                "--out",
                &path("plain.txt"),
            ],
            &[("SMIMEKIT_PASSWORD", "test")],
        );
        // `open` also gives the verdict (this message is not signed): the content is written
        // either way.
        assert!(
            matches!(out.status.code(), Some(0)) || (cmd == "open" && out.status.code() == Some(1)),
            "{}",
            show(cmd, &out)
        );
        assert!(
            std::fs::read_to_string(d.path().join("plain.txt"))
                .unwrap()
                .contains("the secret")
        );
        assert_eq!(mode("plain.txt"), 0o600, "{cmd}");
    }
    // A link planted at the path (to a file of the victim's, or to where an attacker reads).
    std::fs::write(d.path().join("victim"), "precious").unwrap();
    std::os::unix::fs::symlink(d.path().join("victim"), d.path().join("planted.txt")).unwrap();
    std::os::unix::fs::symlink(d.path().join("later"), d.path().join("dangling.txt")).unwrap();
    for target in ["planted.txt", "dangling.txt"] {
        let out = smimekit(
            &[
                "decrypt",
                "--key",
                &pki("alice.p12"),
                "--in",
                &path("sealed.eml"),
                "--out",
                &path(target),
            ],
            &[("SMIMEKIT_PASSWORD", "test")],
        );
        assert_eq!(out.status.code(), Some(5), "{}", show(target, &out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path(target)) && err.contains("symbolic link"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(d.path().join("victim")).unwrap(),
        "precious"
    );
    assert!(!d.path().join("later").exists());
    let left: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 18: `--version` and `-V` print `smimekit X.Y.Z`, the git revision it was built from
/// (this checkout's HEAD, or `unknown` without one) and the OpenSSL it runs with, which is the
/// `openssl` command's library here.
#[test]
fn version_names_the_revision_and_the_openssl_in_use() {
    let openssl = crate::common::openssl_ok(&["version"]);
    let openssl = String::from_utf8_lossy(&openssl.stdout);
    // "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)": the library part.
    let library = openssl
        .split("(Library: ")
        .nth(1)
        .map_or(openssl.trim(), |l| l.trim().trim_end_matches(')'));
    for flag in ["--version", "-V"] {
        let out = smimekit(&[flag], &[]);
        assert!(out.status.success(), "{}", show(flag, &out));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some(concat!("smimekit ", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        let rev = lines
            .iter()
            .find_map(|l| l.strip_prefix("revision: "))
            .unwrap_or_else(|| panic!("{text}"));
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(crate::common::workspace())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match head {
            // The binary may be a few commits behind a tree others commit to while it runs;
            // it is a commit of this repository all the same.
            Some(_) => {
                let known = std::process::Command::new("git")
                    .args(["cat-file", "-e", &format!("{rev}^{{commit}}")])
                    .current_dir(crate::common::workspace())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    known,
                    "revision {rev} is no commit of this checkout: {text}"
                );
            }
            None => assert_eq!(rev, "unknown", "{text}"),
        }
        assert!(
            lines.contains(&format!("OpenSSL: {library}").as_str()),
            "{text}\nopenssl: {openssl}"
        );
    }
}
