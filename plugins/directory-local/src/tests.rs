//! The local directory on both store backends: SQLite in a temp folder, and a fresh database
//! of the test process's throwaway PostgreSQL cluster.

use std::sync::Arc;
use std::time::Duration;

use smimekit_core::store::LazyStore;
use smimekit_store_sql::{PostgresStore, SqliteStore};
use smimekit_testkit::pg::PgCluster;

use super::*;

fn cert(b: u8) -> CertDer {
    CertDer::new(vec![0x30, 3, 2, 1, b])
}

fn mbox(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A temp folder (the legacy JSON file's place) and a store of one backend.
struct Fixture {
    tmp: tempfile::TempDir,
    backend: Backend,
    location: String,
    store: Arc<dyn Store>,
    _pg: Option<Arc<PgCluster>>,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (location, pg) = match backend {
            Backend::Sqlite => (tmp.path().join("smimekit.db").display().to_string(), None),
            Backend::Postgres => {
                let pg = PgCluster::shared().unwrap();
                (pg.new_database("local_dir").unwrap(), Some(pg))
            }
        };
        Fixture {
            store: open_at(backend, &location).await,
            tmp,
            backend,
            location,
            _pg: pg,
        }
    }

    /// Another handle on the same store, as another process would have.
    async fn open_store(&self) -> Arc<dyn Store> {
        open_at(self.backend, &self.location).await
    }

    fn json(&self) -> PathBuf {
        self.tmp.path().join("sub").join("directory.json")
    }

    fn dir(&self, store: Arc<dyn Store>) -> LocalDirectory {
        LocalDirectory::open("local", self.json(), Arc::new(LazyStore::ready(store)))
    }
}

async fn open_at(backend: Backend, location: &str) -> Arc<dyn Store> {
    match backend {
        Backend::Sqlite => Arc::new(
            SqliteStore::open(location, Duration::from_secs(30))
                .await
                .unwrap(),
        ),
        Backend::Postgres => Arc::new(PostgresStore::open(location).await.unwrap()),
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

both_backends!(
    publish_merges_replaces_and_prunes_like_the_memory_directory,
    trust_chain_is_stored_in_order_without_duplicates,
    a_dropped_value_shows_in_the_read_back,
    concurrent_writers_lose_no_update,
    a_directory_json_is_imported_on_first_use_and_kept,
    a_corrupt_directory_json_is_a_clear_error_naming_it,
);

async fn publish_merges_replaces_and_prunes_like_the_memory_directory(b: Backend) {
    let f = Fixture::new(b).await;
    let d = f.dir(f.store.clone());
    let a = mbox("Alice@Example.org");
    let same = mbox("alice@example.org");
    assert!(d.lookup(&a).await.unwrap().is_empty(), "empty at first");
    d.publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
        .await
        .unwrap();
    let after = d
        .publish(&same, RecipientKind::Contact, &cert(2), PublishMode::Merge)
        .await
        .unwrap();
    assert_eq!(after, [cert(1), cert(2)], "merge keeps the old certificate");
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
    assert_eq!(pruned, [cert(2), cert(3)]);
    let replaced = d
        .publish(&a, RecipientKind::Mailbox, &cert(4), PublishMode::Replace)
        .await
        .unwrap();
    assert_eq!(replaced, [cert(4)]);

    // Another handle (another process) sees the same, kind kept from creation.
    let other = f.dir(f.open_store().await);
    let r = other.recipient(&same).await.unwrap().unwrap();
    assert_eq!(r.kind, RecipientKind::Mailbox);
    assert_eq!(r.address.as_str(), "Alice@Example.org");
    assert_eq!(r.certificates, [cert(4)]);
    assert!(other.unpublish(&a, &cert(4)).await.unwrap().is_empty());
    // The first handle sees the other's write at once.
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
    // Another directory name in the same store is another directory.
    let partners = LocalDirectory::open(
        "partners",
        f.tmp.path().join("partners.json"),
        Arc::new(LazyStore::ready(f.store.clone())),
    );
    assert!(partners.recipients().await.unwrap().is_empty());
}

async fn trust_chain_is_stored_in_order_without_duplicates(b: Backend) {
    let f = Fixture::new(b).await;
    let d = f.dir(f.store.clone());
    assert!(d.trust_chain().await.unwrap().is_empty());
    let back = d
        .set_trust_chain(&[cert(1), cert(2), cert(1)])
        .await
        .unwrap();
    assert_eq!(back, [cert(1), cert(2)]);
    let other = f.dir(f.open_store().await);
    assert_eq!(other.trust_chain().await.unwrap(), [cert(1), cert(2)]);
    assert_eq!(other.set_trust_chain(&[cert(3)]).await.unwrap(), [cert(3)]);
    assert_eq!(d.trust_chain().await.unwrap(), [cert(3)]);
}

async fn a_dropped_value_shows_in_the_read_back(b: Backend) {
    let f = Fixture::new(b).await;
    let mut d = f.dir(f.store.clone());
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

async fn concurrent_writers_lose_no_update(b: Backend) {
    let f = Fixture::new(b).await;
    let mut tasks = Vec::new();
    for t in 0..4 {
        // A handle per task: as separate processes would have.
        let d = f.dir(f.open_store().await);
        tasks.push(tokio::spawn(async move {
            for i in 0..25u8 {
                let a = mbox(&format!("u{t}-{i}@example.org"));
                d.publish(&a, RecipientKind::Mailbox, &cert(i), PublishMode::Merge)
                    .await
                    .unwrap();
                d.publish(
                    &mbox("shared@example.org"),
                    RecipientKind::Mailbox,
                    &CertDer::new(vec![0x30, 2, t, i]),
                    PublishMode::Merge,
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let d = f.dir(f.store.clone());
    assert_eq!(
        d.recipients().await.unwrap().len(),
        101,
        "every writer's recipients are there"
    );
    assert_eq!(
        d.lookup(&mbox("shared@example.org")).await.unwrap().len(),
        100,
        "and every certificate of the shared one"
    );
}

fn legacy_json(recipients: &[(&str, &str, &[u8])], chain: &[u8]) -> String {
    let b64 = |x: &[u8]| {
        let mut s = String::new();
        // The two test certificates' base64 forms (MAMCAQ + one byte).
        for b in x {
            s.push_str(match b {
                1 => "\"MAMCAQE=\"",
                2 => "\"MAMCAQI=\"",
                3 => "\"MAMCAQM=\"",
                _ => "\"MAMCAQk=\"",
            });
            s.push(',');
        }
        s.pop();
        s
    };
    let rs: Vec<String> = recipients
        .iter()
        .map(|(a, k, c)| {
            format!(
                "{{\"address\": \"{a}\", \"kind\": \"{k}\", \"certificates\": [{}]}}",
                b64(c)
            )
        })
        .collect();
    format!(
        "{{\"format\": \"smimekit-local-directory\", \"version\": 1, \"trust_chain\": [{}], \"recipients\": [{}]}}",
        b64(chain),
        rs.join(", ")
    )
}

async fn a_directory_json_is_imported_on_first_use_and_kept(b: Backend) {
    let f = Fixture::new(b).await;
    let json = f.json();
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    let text = legacy_json(
        &[
            ("zed@example.org", "mailbox", &[1]),
            ("Amy@example.org", "contact", &[2, 3]),
        ],
        &[9],
    );
    std::fs::write(&json, &text).unwrap();
    let d = f.dir(f.store.clone());
    let amy = d
        .recipient(&mbox("amy@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(amy.kind, RecipientKind::Contact);
    assert_eq!(amy.certificates, [cert(2), cert(3)]);
    assert_eq!(d.trust_chain().await.unwrap(), [cert(9)]);
    assert!(!json.exists(), "renamed");
    let kept = json.with_file_name("directory.json.imported");
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        text,
        "kept as it was"
    );

    // A run stopped between the import and the rename: the same file comes back; it is
    // recognised (same SHA-256), renamed, and not imported twice.
    d.unpublish(&mbox("zed@example.org"), &cert(1))
        .await
        .unwrap();
    std::fs::write(&json, &text).unwrap();
    let again = f.dir(f.open_store().await);
    assert!(
        again
            .lookup(&mbox("zed@example.org"))
            .await
            .unwrap()
            .is_empty(),
        "not imported again"
    );
    assert!(!json.exists());
    assert!(json.with_file_name("directory.json.imported.1").is_file());

    // A different file at the same place after the import is refused, naming it.
    std::fs::write(
        &json,
        legacy_json(&[("new@example.org", "mailbox", &[1])], &[]),
    )
    .unwrap();
    let third = f.dir(f.open_store().await);
    let err = third.lookup(&mbox("new@example.org")).await.unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Corrupt(m) if m.contains("directory.json") && m.contains("already imported")),
        "{err}"
    );
    assert!(json.exists(), "left where it is");
}

async fn a_corrupt_directory_json_is_a_clear_error_naming_it(b: Backend) {
    let f = Fixture::new(b).await;
    let json = f.json();
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    let a = mbox("a@example.org");
    for (text, needle) in [
        ("", "empty file"),
        ("[1, 2]", "not a smimekit directory file"),
        (
            "{\"format\": \"smimekit-local-directory\", \"version\": 9}",
            "version 9",
        ),
    ] {
        std::fs::write(&json, text).unwrap();
        let d = f.dir(f.store.clone());
        let err = d.lookup(&a).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DirectoryError::Corrupt(_)), "{msg}");
        assert!(
            msg.contains("directory.json") && msg.contains(needle),
            "{text:?}: {msg}"
        );
        // A write does not paper over it either, and the file is left as found.
        let err = d
            .publish(&a, RecipientKind::Mailbox, &cert(1), PublishMode::Merge)
            .await
            .unwrap_err();
        assert!(matches!(err, DirectoryError::Corrupt(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&json).unwrap(), text);
    }
    assert!(
        f.store.recipients("local").await.unwrap().is_empty(),
        "nothing half-imported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_the_lock_then_gives_up_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("smimekit.db");
    let store = SqliteStore::open(&db, Duration::from_millis(100))
        .await
        .unwrap();
    let d = LocalDirectory::open(
        "local",
        tmp.path().join("directory.json"),
        Arc::new(LazyStore::ready(Arc::new(store))),
    );
    // Another process in the middle of a long write: hold SQLite's write lock.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db2 = db.clone();
    let holder_thread = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db2).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        c.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
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
        matches!(&err, DirectoryError::Unavailable(m) if m.contains("smimekit.db") && m.contains("another smimekit")),
        "{err}"
    );
    release_tx.send(()).unwrap();
    holder_thread.join().unwrap();
    d.publish(
        &mbox("a@example.org"),
        RecipientKind::Mailbox,
        &cert(1),
        PublishMode::Merge,
    )
    .await
    .unwrap();
}

#[test]
fn config_needs_a_path_and_rejects_unknown_keys() {
    let d = LocalDirectory::from_config(
        "local",
        "kind = \"local\"\npath = \"/tmp/x/x.json\"\nlock_timeout_secs = 5\n",
    )
    .unwrap();
    assert_eq!(d.path(), Path::new("/tmp/x/x.json"));
    assert_eq!(d.store.describe(), "sqlite:/tmp/x/smimekit.db");
    let d = LocalDirectory::from_config(
        "local",
        "kind = \"local\"\npath = \"x.json\"\nstore = \"postgres://u:pw@h/db\"\n",
    )
    .unwrap();
    assert_eq!(d.store.describe(), "postgres://u@h/db", "no password shown");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_factories_are_registered_as_local() {
    link();
    smimekit_store_sql::link();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("kind = \"local\"\npath = {:?}\n", dir.path().join("d.json"));
    // Without a host store: smimekit.db beside the JSON file.
    let f = smimekit_core::plugin::directories()
        .find(|f| f.kind == "local")
        .expect("local registered");
    let d = (f.open)("mine", &cfg).unwrap();
    assert_eq!(d.name(), "mine");
    d.publish(
        &mbox("a@example.org"),
        RecipientKind::Mailbox,
        &cert(1),
        PublishMode::Merge,
    )
    .await
    .unwrap();
    assert!(dir.path().join("smimekit.db").is_file());
    // With the host's store.
    let f = smimekit_core::plugin::directories_with_store()
        .find(|f| f.kind == "local")
        .expect("local registered with a store");
    let url = format!("sqlite:{}", dir.path().join("host.db").display());
    let d = (f.open)("mine", &cfg, Arc::new(LazyStore::new(url))).unwrap();
    assert!(d.recipients().await.unwrap().is_empty(), "another store");
    assert!(dir.path().join("host.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let j = bench_publish_lookup(dir.path(), 1500).unwrap();
    assert_eq!(j.recipients, 1500);
    assert!(j.publish_per_s > 0.0 && j.lookup_per_s > 0.0 && j.single_publish_per_s > 0.0);
    assert!(!dir.path().join("bench-directory.json").exists());
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("bench.db"), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    let s = bench_store(store.clone(), 1500, 50, || Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((s.recipients, s.single_publishes), (1500, 50));
    assert!(s.single_publish_per_s > 0.0 && s.lookup_per_s > 0.0);
    // Each single publish left its audit row.
    assert_eq!(
        store.audit_verify().await.unwrap(),
        smimekit_core::store::AuditVerdict::Intact { rows: 50 }
    );
}
