//! `smimekit demo`: the README's main job, end to end, with the files it leaves behind and the
//! `openssl cms` cross-check actually run.

use std::path::Path;
use std::process::Output;

use crate::common;

fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn demo_runs_every_step_and_openssl_agrees() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let d = dir.display().to_string();
    let out = common::smimekit(&["demo", "--json", "--dir", &d], &[]);
    assert!(out.status.success(), "{}", show("smimekit demo", &out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");

    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["kept"], true, "{report:#}");
    assert_eq!(report["password"], "demo", "{report:#}");
    let steps = report["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    for expected in [
        "config",
        "ca init",
        "issue alice@example.org",
        "issue bob@example.org",
        "plan",
        "apply",
        "org-chain.sst",
        "lint",
        "sign",
        "encrypt",
        "open",
        "openssl cms",
    ] {
        assert!(
            names.contains(&expected),
            "no step {expected:?} in {names:?}"
        );
    }
    for s in steps {
        assert_eq!(s["ok"], true, "step failed: {s:#}");
        assert_eq!(
            s["skipped"], false,
            "step skipped (openssl is installed here): {s:#}"
        );
        assert!(
            !s["detail"].as_str().unwrap_or("").is_empty(),
            "step without detail: {s:#}"
        );
        for f in s["files"].as_array().into_iter().flatten() {
            let f = f.as_str().expect("file name");
            assert!(
                dir.join(f).is_file(),
                "{f} of step {} is missing",
                s["name"]
            );
        }
    }
    let lint = steps
        .iter()
        .find(|s| s["name"] == "lint")
        .expect("lint step");
    assert!(
        lint["detail"]
            .as_str()
            .is_some_and(|d| d.contains(" 0 errors")),
        "{lint:#}"
    );

    // The work directory holds what the README promises.
    for f in [
        "config.toml",
        "directory.json",
        "ca/root.pem",
        "ca/chain.pem",
        "alice.p12",
        "bob.p12",
        "org-chain.sst",
        "signed.eml",
        "sealed.eml",
        "opened.eml",
        "openssl-content.eml",
    ] {
        assert!(dir.join(f).is_file(), "{f} is missing from {d}");
    }
    assert_eq!(
        std::fs::read(dir.join("opened.eml")).expect("opened.eml"),
        std::fs::read(dir.join("openssl-content.eml")).expect("openssl-content.eml"),
        "smimekit and openssl disagree on the content"
    );

    // org-chain.sst lists exactly the two CA certificates.
    let sst = dir.join("org-chain.sst");
    let out = common::smimekit(&["sst", "list", &sst.display().to_string(), "--json"], &[]);
    assert!(out.status.success(), "{}", show("sst list", &out));
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON listing");
    assert_eq!(listing["format"], "sst", "{listing:#}");
    let certs = listing["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 2, "{listing:#}");
    assert!(certs.iter().all(|c| c["is_ca"] == true), "{listing:#}");
    assert!(
        certs
            .iter()
            .any(|c| c["subject"].as_str().is_some_and(|s| s.contains("Root CA")))
            && certs.iter().any(|c| c["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Issuing CA"))),
        "{listing:#}"
    );

    // The demo's config resolves bob through its own directory, not the user's.
    let config = dir.join("config.toml").display().to_string();
    let out = common::smimekit(
        &["--config", &config, "lookup", "bob@example.org", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", show("lookup", &out));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON lookup");
    assert_eq!(found["directory"], "demo", "{found:#}");
}

#[test]
fn demo_text_summary_and_temporary_directory() {
    // Without --dir: a temporary directory, removed at the end; text mode prints one ✓ per step.
    let out = common::smimekit(&["demo"], &[]);
    assert!(out.status.success(), "{}", show("smimekit demo", &out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("✓ openssl cms"), "{text}");
    assert!(text.contains("all 13 steps passed"), "{text}");
    let first = text.lines().next().unwrap_or("");
    let dir = first
        .strip_prefix("smimekit demo in ")
        .expect("first line names the dir");
    assert!(!Path::new(dir).exists(), "{dir} was not removed");
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("precious.txt"), "keep me").expect("write");
    let out = common::smimekit(&["demo", "--dir", &tmp.path().display().to_string()], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        show("smimekit demo", &out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        show("smimekit demo", &out)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("precious.txt")).expect("read"),
        "keep me"
    );
}
