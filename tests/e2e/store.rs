//! The store through the CLI: `inventory`, `audit log`/`verify` (with rows changed and
//! removed behind its back), `directory export`/`import`, concurrent `smimekit` processes on
//! one SQLite file, and the same commands on PostgreSQL (`[store] url = "postgres://…"`, a
//! throwaway cluster from `smimekit_testkit::pg`).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::{pki, smimekit, smimekit_bin};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp folder with a config: local directories, and optionally a `[store]` table.
struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    fn new(names: &[&str], store: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::new();
        if let Some(url) = store {
            cfg.push_str(&format!("[store]\nurl = \"{url}\"\n\n"));
        }
        for n in names {
            cfg.push_str(&format!(
                "[directory.{n}]\nkind = \"local\"\npath = \"{n}.json\"\n\n"
            ));
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, cfg).unwrap();
        Self {
            config: config.display().to_string(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--config", &self.config]);
        smimekit(&a, &[("USER", "store-tester")])
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

fn sha1_of(pem: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-in", pem, "-noout", "-fingerprint", "-sha1"])
        .output()
        .unwrap();
    text(&out.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
}

/// Days from now until the fixture certificates expire (2045-01-01).
fn days_to_fixture_expiry() -> i64 {
    let end = time::macros::datetime!(2045-01-01 00:00 UTC).unix_timestamp();
    (end - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400
}

/// Publishes, looks up and unpublishes, then checks what the inventory and the audit log
/// say (the same on both backends).
fn inventory_and_audit_log(s: &Setup) {
    let (alice, bob) = (pki("alice.pem"), pki("bob.pem"));
    s.ok(&["publish", "alice@example.org", "--cert", &alice]);
    s.ok(&[
        "publish",
        "bob@example.org",
        "--cert",
        &bob,
        "--directory",
        "partners",
        "--contact",
    ]);
    s.ok(&["trust", "push", &pki("root.pem")]);
    s.ok(&["lookup", "bob@example.org"]);

    let days = days_to_fixture_expiry();
    let inv = s.ok_json(&["inventory", "--expiring-days", &(days + 2).to_string()]);
    let certs = inv["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "{inv:#}");
    let a = certs
        .iter()
        .find(|c| c["address"] == "alice@example.org")
        .unwrap();
    assert_eq!(a["directory"], "corp");
    assert_eq!(a["recipient_kind"], "mailbox");
    assert_eq!(a["sha1_thumbprint"], sha1_of(&alice));
    assert_eq!(a["published_by_smimekit"], true);
    assert_eq!(a["present"], true);
    assert!(a["subject"].as_str().unwrap().contains("Alice"), "{a:#}");
    assert_eq!(a["not_after"], "2045-01-01T00:00:00Z");
    assert!(a["key_type"].as_str().is_some_and(|k| !k.is_empty()));
    let only = s.ok_json(&[
        "inventory",
        "--expiring-days",
        &(days + 2).to_string(),
        "--directory",
        "partners",
    ]);
    let only = only["certificates"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["address"], "bob@example.org");
    assert_eq!(only[0]["recipient_kind"], "contact");
    let none = s.ok_json(&["inventory", "--expiring-days", &(days - 2).to_string()]);
    assert!(
        none["certificates"].as_array().unwrap().is_empty(),
        "{none:#}"
    );
    let t = s.ok(&["inventory"]);
    assert!(
        t.contains("2 certificate(s)") && t.contains(&sha1_of(&bob)),
        "{t}"
    );

    // Unpublished: gone from the default view, there with --all.
    s.ok(&["unpublish", "alice@example.org", "--cert", &alice]);
    let inv = s.ok_json(&["inventory"]);
    assert_eq!(inv["certificates"].as_array().unwrap().len(), 1, "{inv:#}");
    let all = s.ok_json(&["inventory", "--all"]);
    let gone = all["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "alice@example.org")
        .unwrap();
    assert_eq!(gone["present"], false);

    let log = s.ok_json(&["audit", "log"]);
    let rows = log["rows"].as_array().unwrap();
    let ops: Vec<&str> = rows
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["publish", "publish", "trust-push", "unpublish"],
        "{log:#}"
    );
    assert!(
        rows.iter()
            .all(|r| r["actor"] == "store-tester" && r["frontend"] == "cli")
    );
    assert_eq!(rows[0]["address"], "alice@example.org");
    assert_eq!(rows[0]["directory"], "corp");
    assert_eq!(rows[0]["before"], serde_json::json!([]));
    assert_eq!(rows[0]["after"], serde_json::json!([sha1_of(&alice)]));
    assert_eq!(rows[0]["result"], "ok");
    assert_eq!(
        rows[2]["after"],
        serde_json::json!([sha1_of(&pki("root.pem"))])
    );
    assert_eq!(rows[3]["before"], serde_json::json!([sha1_of(&alice)]));
    assert_eq!(rows[3]["after"], serde_json::json!([]));
    let bobs = s.ok_json(&["audit", "log", "--address", "BOB@example.org"]);
    assert_eq!(bobs["rows"].as_array().unwrap().len(), 1);
    let later = s.ok_json(&["audit", "log", "--since", "2999-01-01"]);
    assert!(later["rows"].as_array().unwrap().is_empty());
    let out = s.run(&["audit", "log", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let v = s.ok_json(&["audit", "verify"]);
    assert_eq!(v["intact"], true);
    assert_eq!(v["rows_ok"], 4);
    assert!(s.ok(&["audit", "verify"]).contains("intact: 4 row(s)"));
}

/// Changes a row, then removes one, behind the log's back: `audit verify` exits 1 naming the
/// first bad row.
fn verify_finds_tampering(s: &Setup, tamper: &dyn Fn(&str)) {
    tamper("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2");
    let out = s.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("broken at row 2: changed") && t.contains("mallory"),
        "{t}"
    );
    tamper("UPDATE audit_log SET actor = 'store-tester' WHERE seq = 2");
    s.ok(&["audit", "verify"]);
    tamper("DELETE FROM audit_log WHERE seq = 3");
    let out = s.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], false);
    assert_eq!(v["first_bad"]["seq"], 3);
    assert_eq!(v["first_bad"]["problem"], "removed");
    assert_eq!(v["rows_ok"], 2);
}

#[test]
fn inventory_and_audit_log_on_sqlite() {
    let s = Setup::new(&["corp", "partners"], None);
    inventory_and_audit_log(&s);
    // The default store: beside the first local directory's path.
    let db = s.path("smimekit.db");
    assert!(db.is_file());
    let t = s.ok(&["inventory"]);
    assert!(t.contains(&db.display().to_string()), "{t}");
    verify_finds_tampering(&s, &|sql| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    });
}

#[test]
fn inventory_and_audit_log_on_postgresql() {
    let pg = smimekit_testkit::pg::PgCluster::shared().unwrap();
    let url = pg.new_database("e2e_store").unwrap();
    let s = Setup::new(&["corp", "partners"], Some(&url));
    inventory_and_audit_log(&s);
    assert!(!s.path("smimekit.db").exists(), "no SQLite file beside");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    verify_finds_tampering(&s, &|sql| {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            task.await.unwrap().unwrap();
        })
    });
}

#[test]
fn directory_export_and_import_round_trip() {
    let s = Setup::new(&["corp", "copy"], None);
    s.ok(&["publish", "alice@example.org", "--cert", &pki("alice.pem")]);
    s.ok(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("bob.pem"),
        "--contact",
    ]);
    s.ok(&["trust", "push", &pki("root.pem"), &pki("intermediate.pem")]);
    let out = s.path("corp-export.json");
    let summary = s.ok(&["directory", "export", "--out", out.to_str().unwrap()]);
    assert!(summary.contains("2 recipient(s)"), "{summary}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["format"], "smimekit-local-directory");
    assert_eq!(doc["recipients"][1]["kind"], "contact");
    assert_eq!(doc["trust_chain"].as_array().unwrap().len(), 2);
    // Standard output carries the same document.
    assert_eq!(
        s.ok(&["directory", "export"]).as_bytes(),
        std::fs::read(&out).unwrap()
    );

    let r = s.ok_json(&[
        "directory",
        "import",
        out.to_str().unwrap(),
        "--directory",
        "copy",
    ]);
    assert_eq!(r["recipients"], 2);
    assert_eq!(r["certificates"], 2);
    assert_eq!(r["mode"], "merge");
    assert_eq!(
        s.ok(&["directory", "export", "--directory", "copy"]),
        s.ok(&["directory", "export", "--directory", "corp"]),
        "the round trip keeps everything"
    );
    let l = s.ok_json(&["lookup", "bob@example.org", "--directory", "copy"]);
    assert_eq!(l["kind"], "contact");

    // --replace: the directory becomes the file (alice only).
    let mut small = doc.clone();
    small["recipients"] = serde_json::json!([doc["recipients"][0].clone()]);
    small["trust_chain"] = serde_json::json!([]);
    let small_path = s.path("small.json");
    std::fs::write(&small_path, serde_json::to_vec(&small).unwrap()).unwrap();
    s.ok(&[
        "directory",
        "import",
        small_path.to_str().unwrap(),
        "--directory",
        "copy",
        "--replace",
    ]);
    let after: serde_json::Value =
        serde_json::from_str(&s.ok(&["directory", "export", "--directory", "copy"])).unwrap();
    assert_eq!(after["recipients"].as_array().unwrap().len(), 1);
    assert!(after["trust_chain"].as_array().unwrap().is_empty());
    let ops = s.ok_json(&["audit", "log", "--directory", "copy"]);
    let ops: Vec<&str> = ops["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["import", "import"]);

    // Bad input: a broken file is malformed input naming it; a missing one is I/O.
    std::fs::write(s.path("broken.json"), "{ not json").unwrap();
    let bad = s.run(&[
        "directory",
        "import",
        s.path("broken.json").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("broken.json"));
    let missing = s.run(&["directory", "import", s.path("nope.json").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(5), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("nope.json"));
}

#[test]
fn concurrent_smimekit_processes_on_one_sqlite_store_lose_nothing() {
    let s = Setup::new(&["corp"], None);
    let alice = pki("alice.pem");
    // Twelve publishes at once, each its own process, on a store none has created yet.
    assert!(!s.path("smimekit.db").exists());
    let running: Vec<_> = (0..12)
        .map(|i| {
            Command::new(smimekit_bin())
                .args([
                    "publish",
                    &format!("user{i}@example.org"),
                    "--cert",
                    &alice,
                    "--force",
                    "--config",
                    &s.config,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in running {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let doc: serde_json::Value = serde_json::from_str(&s.ok(&["directory", "export"])).unwrap();
    assert_eq!(doc["recipients"].as_array().unwrap().len(), 12);
    let v = s.ok_json(&["audit", "verify"]);
    assert_eq!(v["intact"], true);
    assert_eq!(v["rows_ok"], 12);
}
