use std::sync::Arc;
use std::time::Duration;

use super::*;

fn cert(b: u8) -> CertDer {
    CertDer::new(vec![0x30, 3, 2, 1, b])
}

fn mbox(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("directory.json");
    (dir, path)
}

#[tokio::test]
async fn publish_merges_replaces_and_prunes_like_the_memory_directory() {
    let (_t, path) = temp();
    let d = LocalDirectory::open("local", &path);
    let a = mbox("Alice@Example.org");
    let same = mbox("alice@example.org");
    assert!(
        d.lookup(&a).await.unwrap().is_empty(),
        "missing file = empty"
    );
    d.publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
        .await
        .unwrap();
    let after = d
        .publish(&same, RecipientKind::Contact, &cert(2), PublishMode::Merge)
        .await
        .unwrap();
    assert_eq!(
        after,
        vec![cert(1), cert(2)],
        "merge keeps the old certificate"
    );
    let again = d
        .publish(&a, RecipientKind::Mailbox, &cert(2), PublishMode::Merge)
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "publishing twice does not duplicate");
    // Prune: drop exactly the listed values (cert 1 "expired"), keep the rest, add the new.
    let pruned = d
        .publish_removing(
            &a,
            RecipientKind::Mailbox,
            &cert(3),
            PublishMode::Merge,
            &[cert(1), cert(9)],
        )
        .await
        .unwrap();
    assert_eq!(pruned, vec![cert(2), cert(3)]);
    let replaced = d
        .publish(&a, RecipientKind::Mailbox, &cert(4), PublishMode::Replace)
        .await
        .unwrap();
    assert_eq!(replaced, vec![cert(4)]);

    // Another handle (another process) sees the same, kind kept from creation.
    let other = LocalDirectory::open("local", &path);
    let r = other.recipient(&same).await.unwrap().unwrap();
    assert_eq!(r.kind, RecipientKind::Mailbox);
    assert_eq!(r.address.as_str(), "Alice@Example.org");
    assert_eq!(r.certificates, vec![cert(4)]);
    assert_eq!(
        other.unpublish(&a, &cert(4)).await.unwrap(),
        Vec::<CertDer>::new()
    );
    // The first handle notices the file was replaced.
    assert!(d.lookup(&a).await.unwrap().is_empty());
    let nobody = mbox("nobody@example.org");
    assert!(matches!(
        d.unpublish(&nobody, &cert(1)).await,
        Err(DirectoryError::NotFound(_))
    ));
    assert_eq!(d.recipients().await.unwrap().len(), 1);

    let c = mbox("partner@other.example");
    d.publish(&c, RecipientKind::Contact, &cert(7), PublishMode::Merge)
        .await
        .unwrap();
    assert_eq!(
        other.recipient(&c).await.unwrap().unwrap().kind,
        RecipientKind::Contact
    );
}

#[tokio::test]
async fn trust_chain_is_stored_in_order_without_duplicates() {
    let (_t, path) = temp();
    let d = LocalDirectory::open("local", &path);
    assert!(d.trust_chain().await.unwrap().is_empty());
    let back = d
        .set_trust_chain(&[cert(1), cert(2), cert(1)])
        .await
        .unwrap();
    assert_eq!(back, vec![cert(1), cert(2)]);
    let other = LocalDirectory::open("local", &path);
    assert_eq!(other.trust_chain().await.unwrap(), vec![cert(1), cert(2)]);
    assert_eq!(
        other.set_trust_chain(&[cert(3)]).await.unwrap(),
        vec![cert(3)]
    );
    assert_eq!(d.trust_chain().await.unwrap(), vec![cert(3)]);
}

#[tokio::test]
async fn a_crash_between_temp_write_and_rename_leaves_the_old_file_intact() {
    let (_t, path) = temp();
    let d = LocalDirectory::open("local", &path);
    let a = mbox("alice@example.org");
    d.publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
        .await
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut crashing = LocalDirectory::open("local", &path);
    crashing.fault = Some(Fault::CrashBeforeRename);
    let err = crashing
        .publish(&a, RecipientKind::Mailbox, &cert(2), PublishMode::Replace)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("directory.json"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "old file untouched");
    // The half-done temporary file is there, as after a kill, and readers ignore it.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    let fresh = LocalDirectory::open("local", &path);
    assert_eq!(fresh.lookup(&a).await.unwrap(), vec![cert(1)]);
    // The next writer succeeds (and reuses the temp name of its process).
    assert_eq!(
        fresh
            .publish(&a, RecipientKind::Mailbox, &cert(2), PublishMode::Merge)
            .await
            .unwrap(),
        vec![cert(1), cert(2)]
    );
}

#[tokio::test]
async fn a_dropped_value_shows_in_the_read_back() {
    let (_t, path) = temp();
    let mut d = LocalDirectory::open("local", &path);
    d.fault = Some(Fault::DropPublished);
    let a = mbox("alice@example.org");
    let back = d
        .publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
        .await
        .unwrap();
    assert!(
        back.is_empty(),
        "the read-back reports what is stored, not what was meant"
    );
}

#[test]
fn concurrent_writers_lose_no_update() {
    let (_t, path) = temp();
    let path = Arc::new(path);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                // A handle per thread: as separate processes would have.
                let d = LocalDirectory::open("local", path.as_path());
                for i in 0..25u8 {
                    let a = mbox(&format!("u{t}-{i}@example.org"));
                    d.publish_batch(&[(a, RecipientKind::Mailbox, cert(i))], PublishMode::Merge)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let d = LocalDirectory::open("local", path.as_path());
    assert_eq!(d.len().unwrap(), 100, "every writer's recipients are there");
}

#[tokio::test]
async fn a_writer_waits_for_the_lock_then_gives_up_naming_it() {
    let (_t, path) = temp();
    let held = store::lock(&path, Duration::from_secs(1)).unwrap();
    let d = LocalDirectory::open("local", &path).with_lock_timeout(Duration::from_millis(50));
    let err = d
        .publish(
            &mbox("a@example.org"),
            RecipientKind::Mailbox,
            &cert(1),
            PublishMode::Merge,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Unavailable(m) if m.contains("directory.json.lock") && m.contains("another smimekit")),
        "{err}"
    );
    drop(held);
    d.publish(
        &mbox("a@example.org"),
        RecipientKind::Mailbox,
        &cert(1),
        PublishMode::Merge,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_corrupt_file_is_a_clear_error_naming_it() {
    let (_t, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let a = mbox("a@example.org");
    let cases: &[(&str, &str)] = &[
        ("", "empty file"),
        (
            "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recip",
            "line 1 column",
        ),
        ("[1, 2]", "not a smimekit directory file"),
        (
            "{\"format\": \"something-else\", \"version\": 1}",
            "expected \"smimekit-local-directory\"",
        ),
        (
            "{\"format\": \"smimekit-local-directory\", \"version\": 9}",
            "version 9",
        ),
        (
            "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recipients\": [{\"address\": \"a@x\", \"kind\": \"mailbox\", \"certificates\": [\"!!\"]}]}",
            "a@x: certificate 1: bad base64",
        ),
        (
            "{\"format\": \"smimekit-local-directory\", \"version\": 1, \"recipients\": [{\"address\": \"a@x\", \"kind\": \"mailbox\"}, {\"address\": \"A@X\", \"kind\": \"contact\"}]}",
            "listed twice",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(&path, text).unwrap();
        let d = LocalDirectory::open("local", &path);
        let err = d.lookup(&a).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DirectoryError::Corrupt(_)), "{msg}");
        assert!(
            msg.contains("directory.json") && msg.contains(needle),
            "{text:?}: {msg}"
        );
        // A write does not paper over corruption either.
        let err = d
            .publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
            .await
            .unwrap_err();
        assert!(matches!(err, DirectoryError::Corrupt(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            *text,
            "left as found"
        );
    }
}

#[test]
fn config_needs_a_path_and_rejects_unknown_keys() {
    let d = LocalDirectory::from_config(
        "local",
        "kind = \"local\"\npath = \"/tmp/x.json\"\nlock_timeout_secs = 5\n",
    )
    .unwrap();
    assert_eq!(d.path(), Path::new("/tmp/x.json"));
    assert_eq!(d.lock_timeout, Duration::from_secs(5));
    let err = LocalDirectory::from_config("corp", "kind = \"local\"\n").unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Config(m) if m.contains("corp") && m.contains("path")),
        "{err}"
    );
    let err = LocalDirectory::from_config("corp", "kind = \"local\"\npath = \"x\"\npaht = \"y\"\n")
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Config(m) if m.contains("paht")),
        "{err}"
    );
}

#[test]
fn the_factory_is_registered_as_local() {
    link();
    let f = smimekit_core::plugin::directories()
        .find(|f| f.kind == "local")
        .expect("local registered");
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("kind = \"local\"\npath = {:?}\n", dir.path().join("d.json"));
    let d = (f.open)("mine", &cfg).unwrap();
    assert_eq!(d.name(), "mine");
}

#[test]
fn the_file_is_readable_json_sorted_by_address() {
    let (_t, path) = temp();
    let d = LocalDirectory::open("local", &path);
    d.publish_batch(
        &[
            (mbox("zed@example.org"), RecipientKind::Mailbox, cert(1)),
            (mbox("Amy@example.org"), RecipientKind::Contact, cert(2)),
        ],
        PublishMode::Merge,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["format"], "smimekit-local-directory");
    assert_eq!(v["recipients"][0]["address"], "Amy@example.org");
    assert_eq!(v["recipients"][0]["kind"], "contact");
    assert_eq!(v["recipients"][1]["certificates"][0], "MAMCAQE=");
}

#[test]
fn bench_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let f = bench_publish_lookup(dir.path(), 1500).unwrap();
    assert_eq!(f.recipients, 1500);
    assert!(f.publish_per_s > 0.0 && f.lookup_per_s > 0.0 && f.single_publish_per_s > 0.0);
    assert!(!dir.path().join("bench-directory.json").exists());
}
