//! The store's behaviour, each test run against both backends: SQLite in a temp folder, and a
//! fresh database of one throwaway PostgreSQL cluster per test process
//! (`smimekit_testkit::pg`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use smimekit_core::store::{
    AuditEntry, AuditFilter, AuditProblem, AuditVerdict, CertFacts, DirectoryData, ImportMode,
    ImportOutcome, ImportSource, InventoryQuery, JournalEntry, LockInfo, ManagedCert, Publish,
    Seen, Sighting, Store, StoreError, WebSession, WebUser,
};
use smimekit_core::{CertDer, Mailbox, PublishMode, Recipient, RecipientKind};
use smimekit_store_sql::{PostgresStore, SqliteStore};
use smimekit_testkit::pg::PgCluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A store of one backend, and what keeps it alive.
struct Fixture {
    store: Arc<dyn Store>,
    /// The SQLite file, or the PostgreSQL URL: for a second handle and for tampering.
    location: String,
    _tmp: Option<tempfile::TempDir>,
    _pg: Option<Arc<PgCluster>>,
}

impl Fixture {
    async fn new(backend: Backend, name: &str) -> Self {
        match backend {
            Backend::Sqlite => {
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().join("data").join("smimekit.db");
                let store = SqliteStore::open(&path, Duration::from_secs(30))
                    .await
                    .unwrap();
                Fixture {
                    store: Arc::new(store),
                    location: path.display().to_string(),
                    _tmp: Some(tmp),
                    _pg: None,
                }
            }
            Backend::Postgres => {
                let pg = PgCluster::shared().unwrap();
                let url = pg.new_database(name).unwrap();
                let store = PostgresStore::open(&url).await.unwrap();
                Fixture {
                    store: Arc::new(store),
                    location: url,
                    _tmp: None,
                    _pg: Some(pg),
                }
            }
        }
    }

    /// A second, independent handle on the same data (another process would have one).
    async fn reopen(&self, backend: Backend) -> Arc<dyn Store> {
        match backend {
            Backend::Sqlite => Arc::new(
                SqliteStore::open(&self.location, Duration::from_secs(30))
                    .await
                    .unwrap(),
            ),
            Backend::Postgres => Arc::new(PostgresStore::open(&self.location).await.unwrap()),
        }
    }

    /// Runs raw SQL behind the store's back (tampering with the audit log).
    async fn raw(&self, backend: Backend, sql: &str) {
        match backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&self.location).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Backend::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.location, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let task = tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
                drop(client);
                task.await.unwrap().unwrap();
            }
        }
    }
}

fn cert(tag: &str) -> CertDer {
    let mut v = vec![0x30, 0x80];
    v.extend_from_slice(tag.as_bytes());
    CertDer::new(v)
}

fn mbox(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

async fn publish(
    s: &dyn Store,
    dir: &str,
    a: &Mailbox,
    kind: RecipientKind,
    c: &CertDer,
    mode: PublishMode,
    remove: &[CertDer],
) -> Vec<CertDer> {
    s.publish(
        dir,
        &Publish {
            address: a,
            kind,
            certificate: c,
            mode,
            remove,
        },
    )
    .await
    .unwrap()
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
    publish_merges_replaces_prunes_and_reads_back,
    trust_chain_keeps_order_without_duplicates,
    sixteen_concurrent_writers_lose_no_update,
    export_import_round_trip_and_first_use_record,
    inventory_records_sightings_and_finds_what_expires,
    inventory_touch_records_only_what_changes_nothing,
    inventory_version_moves_with_every_write_and_first_addresses_page,
    signature_checks_are_kept_refreshed_and_forgotten,
    audit_chain_detects_a_changed_and_a_removed_row,
    job_records_start_finish_and_list,
    reopening_keeps_the_data_and_the_schema,
    managed_certificates_round_trip_normalised_and_forgotten,
    managed_certificates_read_back_their_own_bytes,
    sixteen_concurrent_acquirers_one_lock_holder,
    a_lock_is_taken_over_only_from_the_named_holder,
    only_the_holder_beats_and_releases,
    journal_keeps_order_and_finds_interrupted_steps,
    concurrent_journal_appends_keep_each_run_in_order,
    a_reminder_is_given_once_per_window,
    directory_state_is_kept_per_directory_and_key,
    user_put_creates_and_replaces,
    user_get_finds_only_that_user,
    users_are_listed_by_name,
    user_remove_drops_the_user_and_their_sessions,
    session_put_needs_an_existing_user,
    session_get_reads_what_was_put,
    session_touch_moves_last_seen,
    session_remove_signs_out,
);

async fn publish_merges_replaces_prunes_and_reads_back(b: Backend) {
    let f = Fixture::new(b, "publish").await;
    let s = f.store.as_ref();
    let a = mbox("Alice@Example.org");
    let same = mbox("alice@example.org");
    assert!(s.recipient("local", &a).await.unwrap().is_none());
    let m = RecipientKind::Mailbox;
    assert_eq!(
        publish(s, "local", &a, m, &cert("1"), PublishMode::Merge, &[]).await,
        [cert("1")]
    );
    // Merge keeps the old certificate; an existing recipient keeps its kind.
    let after = publish(
        s,
        "local",
        &same,
        RecipientKind::Contact,
        &cert("2"),
        PublishMode::Merge,
        &[],
    )
    .await;
    assert_eq!(after, [cert("1"), cert("2")]);
    assert_eq!(
        publish(s, "local", &a, m, &cert("2"), PublishMode::Merge, &[]).await,
        [cert("1"), cert("2")],
        "publishing twice does not duplicate"
    );
    // Prune: exactly the listed values go (an absent one is ignored), the new one is added.
    assert_eq!(
        publish(
            s,
            "local",
            &a,
            m,
            &cert("3"),
            PublishMode::Merge,
            &[cert("1"), cert("9")]
        )
        .await,
        [cert("2"), cert("3")]
    );
    // The certificate itself is never removed, even when listed.
    assert_eq!(
        publish(
            s,
            "local",
            &a,
            m,
            &cert("3"),
            PublishMode::Merge,
            &[cert("3")]
        )
        .await,
        [cert("2"), cert("3")]
    );
    assert_eq!(
        publish(s, "local", &a, m, &cert("4"), PublishMode::Replace, &[]).await,
        [cert("4")]
    );
    let r = s.recipient("local", &same).await.unwrap().unwrap();
    assert_eq!(r.kind, RecipientKind::Mailbox);
    assert_eq!(r.address.as_str(), "Alice@Example.org");
    assert_eq!(r.certificates, [cert("4")]);
    // Another directory of the same store is separate.
    assert!(s.recipient("partners", &a).await.unwrap().is_none());

    // Unpublish; the recipient stays, empty.
    assert!(
        s.unpublish("local", &a, &cert("4"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.recipient("local", &a)
            .await
            .unwrap()
            .unwrap()
            .certificates
            .is_empty()
    );
    let err = s
        .unpublish("local", &mbox("nobody@example.org"), &cert("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(m) if m.contains("nobody@example.org")),
        "{err}"
    );

    let c = mbox("partner@other.example");
    publish(
        s,
        "local",
        &c,
        RecipientKind::Contact,
        &cert("7"),
        PublishMode::Merge,
        &[],
    )
    .await;
    let all = s.recipients("local").await.unwrap();
    let keys: Vec<String> = all.iter().map(|r| r.address.key()).collect();
    assert_eq!(keys, ["alice@example.org", "partner@other.example"]);
    assert_eq!(all[1].kind, RecipientKind::Contact);
}

async fn trust_chain_keeps_order_without_duplicates(b: Backend) {
    let f = Fixture::new(b, "trust").await;
    let s = f.store.as_ref();
    assert!(s.trust_chain("local").await.unwrap().is_empty());
    let back = s
        .set_trust_chain("local", &[cert("r"), cert("i"), cert("r")])
        .await
        .unwrap();
    assert_eq!(back, [cert("r"), cert("i")]);
    let other = f.reopen(b).await;
    assert_eq!(other.trust_chain("local").await.unwrap(), back);
    assert_eq!(
        other.set_trust_chain("local", &[cert("x")]).await.unwrap(),
        [cert("x")]
    );
    assert_eq!(s.trust_chain("local").await.unwrap(), [cert("x")]);
    assert!(s.trust_chain("partners").await.unwrap().is_empty());
}

async fn sixteen_concurrent_writers_lose_no_update(b: Backend) {
    const WRITERS: usize = 16;
    const EACH: usize = 12;
    let f = Fixture::new(b, "writers").await;
    let shared = mbox("shared@example.org");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // Half the writers share the store handle, half have their own (as processes would).
        let store = if w % 2 == 0 {
            f.store.clone()
        } else {
            f.reopen(b).await
        };
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = mbox(&format!("writer{w}@example.org"));
            for i in 0..EACH {
                let c = cert(&format!("{w}-{i}"));
                for who in [&shared, &own] {
                    publish(
                        store.as_ref(),
                        "local",
                        who,
                        RecipientKind::Mailbox,
                        &c,
                        PublishMode::Merge,
                        &[],
                    )
                    .await;
                }
                store
                    .audit_append(&AuditEntry {
                        time: i as i64,
                        actor: format!("writer{w}"),
                        frontend: "test".into(),
                        operation: "publish".into(),
                        directory: "local".into(),
                        address: shared.to_string(),
                        before: vec![],
                        after: vec![format!("{w}{i}")],
                        result: "ok".into(),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = f.store.as_ref();
    let held = s.recipient("local", &shared).await.unwrap().unwrap();
    assert_eq!(held.certificates.len(), WRITERS * EACH, "no lost update");
    assert_eq!(s.recipients("local").await.unwrap().len(), WRITERS + 1);
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Intact {
            rows: (WRITERS * EACH) as u64
        },
        "concurrent appends keep one unbroken chain"
    );
}

async fn export_import_round_trip_and_first_use_record(b: Backend) {
    let f = Fixture::new(b, "import").await;
    let s = f.store.as_ref();
    let data = DirectoryData {
        recipients: vec![
            Recipient {
                address: mbox("amy@example.org"),
                kind: RecipientKind::Contact,
                certificates: vec![cert("a1"), cert("a2")],
            },
            Recipient {
                address: mbox("Zed@example.org"),
                kind: RecipientKind::Mailbox,
                certificates: vec![cert("z")],
            },
            Recipient {
                address: mbox("empty@example.org"),
                kind: RecipientKind::Mailbox,
                certificates: vec![],
            },
        ],
        trust_chain: vec![cert("root"), cert("inter")],
    };
    let source = ImportSource {
        file: "/old/directory.json".into(),
        sha256: "ab".repeat(32),
        time: 100,
    };
    let out = s
        .import_directory("local", &data, ImportMode::Merge, Some(&source))
        .await
        .unwrap();
    assert_eq!(
        out,
        ImportOutcome::Imported {
            recipients: 3,
            certificates: 3,
            trust_chain: 2
        }
    );
    assert_eq!(
        s.import_source("local").await.unwrap(),
        Some(source.clone())
    );
    // The same source again (a second process racing the first-use import): no change.
    let again = s
        .import_directory("local", &data, ImportMode::Merge, Some(&source))
        .await
        .unwrap();
    assert_eq!(again, ImportOutcome::AlreadyImported { source });

    let mut expected = data.clone();
    expected.recipients.sort_by_key(|r| r.address.key());
    assert_eq!(s.export_directory("local").await.unwrap(), expected);

    // Round trip into another directory of another handle: the same data.
    let other = f.reopen(b).await;
    other
        .import_directory("copy", &expected, ImportMode::Replace, None)
        .await
        .unwrap();
    assert_eq!(other.export_directory("copy").await.unwrap(), expected);

    // Merge adds and drops nothing; Replace makes the directory exactly the data.
    let extra = DirectoryData {
        recipients: vec![Recipient {
            address: mbox("amy@example.org"),
            kind: RecipientKind::Mailbox,
            certificates: vec![cert("a3")],
        }],
        trust_chain: vec![],
    };
    s.import_directory("copy", &extra, ImportMode::Merge, None)
        .await
        .unwrap();
    let merged = s.export_directory("copy").await.unwrap();
    assert_eq!(
        merged.recipients[0].certificates,
        [cert("a1"), cert("a2"), cert("a3")]
    );
    assert_eq!(merged.recipients[0].kind, RecipientKind::Contact);
    assert_eq!(
        merged.trust_chain, expected.trust_chain,
        "an empty chain keeps the old one"
    );
    s.import_directory("copy", &extra, ImportMode::Replace, None)
        .await
        .unwrap();
    let replaced = s.export_directory("copy").await.unwrap();
    assert_eq!(replaced.recipients, extra.recipients);
    assert!(replaced.trust_chain.is_empty());
    // The first directory was not touched.
    assert_eq!(s.export_directory("local").await.unwrap(), expected);
}

fn facts(n: u32, not_after: i64) -> CertFacts {
    CertFacts {
        sha1: format!("{n:040x}"),
        sha256: format!("{n:064x}"),
        subject: format!("CN=User {n}"),
        issuer: "CN=Issuing CA".into(),
        serial: format!("{n:x}"),
        not_before: 0,
        not_after,
        key_type: "p256".into(),
        source_attribute: n.is_multiple_of(2).then(|| "userCertificate".to_string()),
    }
}

async fn inventory_records_sightings_and_finds_what_expires(b: Backend) {
    const DAY: i64 = 86_400;
    let now = smimekit_testkit::PINNED_NOW;
    let f = Fixture::new(b, "inventory").await;
    let s = f.store.as_ref();
    let (alice, bob) = (mbox("alice@example.org"), mbox("Bob@example.org"));
    let soon = facts(1, now + 10 * DAY);
    let later = facts(2, now + 90 * DAY);
    let expired = facts(3, now - DAY);
    let bobs = facts(4, now + 20 * DAY);
    let local = [soon.clone(), later.clone(), expired.clone()];
    let bob_certs = [bobs.clone()];
    s.inventory_record(&[
        Sighting {
            directory: "local",
            address: &alice,
            kind: Some(RecipientKind::Mailbox),
            certificates: &local,
            time: now - 5 * DAY,
            published: true,
            complete: true,
        },
        Sighting {
            directory: "corp-ldap",
            address: &bob,
            kind: None,
            certificates: &bob_certs,
            time: now - 5 * DAY,
            published: false,
            complete: true,
        },
    ])
    .await
    .unwrap();
    let within = |directory: Option<&str>, days: i64| InventoryQuery {
        directory: directory.map(String::from),
        not_after_from: Some(now),
        not_after_until: Some(now + days * DAY),
        include_gone: false,
    };
    let rows = s.inventory(&within(None, 30)).await.unwrap();
    let shas: Vec<&str> = rows.iter().map(|r| r.facts.sha256.as_str()).collect();
    assert_eq!(
        shas,
        [soon.sha256.as_str(), bobs.sha256.as_str()],
        "by not_after"
    );
    assert_eq!(rows[0].facts, soon);
    assert_eq!(rows[0].directory, "local");
    assert_eq!(rows[0].address, "alice@example.org");
    assert_eq!(rows[0].recipient_kind, Some(RecipientKind::Mailbox));
    assert!(rows[0].published_by_smimekit && rows[0].present);
    assert_eq!(rows[1].recipient_kind, None);
    assert!(!rows[1].published_by_smimekit);
    let only_ldap = s.inventory(&within(Some("corp-ldap"), 30)).await.unwrap();
    assert_eq!(only_ldap.len(), 1);
    assert_eq!(only_ldap[0].address, "Bob@example.org");
    assert_eq!(s.inventory(&within(None, 100)).await.unwrap().len(), 3);
    assert_eq!(
        s.inventory(&InventoryQuery::default()).await.unwrap().len(),
        4
    );

    // A later lookup finds only `later`: last_seen moves, the published flag stays, the
    // others are marked gone (and leave the default view).
    s.inventory_record(&[Sighting {
        directory: "local",
        address: &alice,
        kind: None,
        certificates: std::slice::from_ref(&later),
        time: now,
        published: false,
        complete: true,
    }])
    .await
    .unwrap();
    let rows = s.inventory(&InventoryQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let l = rows
        .iter()
        .find(|r| r.facts.sha256 == later.sha256)
        .unwrap();
    assert_eq!((l.first_seen, l.last_seen), (now - 5 * DAY, now));
    assert!(l.published_by_smimekit, "the flag is kept once set");
    assert_eq!(l.recipient_kind, Some(RecipientKind::Mailbox), "kind kept");
    assert_eq!(l.facts.source_attribute.as_deref(), Some("userCertificate"));
    let all = s
        .inventory(&InventoryQuery {
            include_gone: true,
            ..InventoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .filter(|r| r.facts.sha256 == soon.sha256 || r.facts.sha256 == expired.sha256)
            .all(|r| !r.present)
    );
}

/// `inventory_touch` moves `last_seen` for a complete read that finds exactly what the
/// inventory holds (certificates, address as written, kind), and leaves every other case
/// (another certificate, one fewer, another kind or spelling, an unknown address, a gone
/// row) untouched for `inventory_record`; the version moves only when a row moved.
async fn inventory_touch_records_only_what_changes_nothing(b: Backend) {
    const DAY: i64 = 86_400;
    let now = smimekit_testkit::PINNED_NOW;
    let f = Fixture::new(b, "inventory_touch").await;
    let s = f.store.as_ref();
    let people: Vec<Mailbox> = (0..6).map(|n| mbox(&format!("p{n}@example.org"))).collect();
    let held: Vec<Vec<CertFacts>> = (0..6u32)
        .map(|n| {
            vec![
                facts(10 * n + 1, now + 90 * DAY),
                facts(10 * n + 2, now + 90 * DAY),
            ]
        })
        .collect();
    let sightings: Vec<Sighting<'_>> = people
        .iter()
        .zip(&held)
        .map(|(address, certificates)| Sighting {
            directory: "corp",
            address,
            kind: Some(RecipientKind::Mailbox),
            certificates,
            time: now - DAY,
            published: false,
            complete: true,
        })
        .collect();
    s.inventory_record(&sightings).await.unwrap();
    // p5 lost its second certificate since: that row is gone.
    s.inventory_record(&[Sighting {
        certificates: &held[5][..1],
        ..sightings[5].clone()
    }])
    .await
    .unwrap();
    let shas = |n: usize, k: usize| -> Vec<String> {
        held[n][..k].iter().map(|c| c.sha256.clone()).collect()
    };
    let upper = mbox("P3@example.org");
    let stranger = mbox("nobody@example.org");
    let seen = [
        // The same, in another order: touched.
        Seen {
            address: &people[0],
            kind: RecipientKind::Mailbox,
            sha256: shas(0, 2).into_iter().rev().collect(),
        },
        // One certificate fewer.
        Seen {
            address: &people[1],
            kind: RecipientKind::Mailbox,
            sha256: shas(1, 1),
        },
        // Another certificate besides.
        Seen {
            address: &people[2],
            kind: RecipientKind::Mailbox,
            sha256: [shas(2, 2), vec![format!("{:064x}", 999)]].concat(),
        },
        // Written another way.
        Seen {
            address: &upper,
            kind: RecipientKind::Mailbox,
            sha256: shas(3, 2),
        },
        // Another kind.
        Seen {
            address: &people[4],
            kind: RecipientKind::Contact,
            sha256: shas(4, 2),
        },
        // Exactly what is present (the gone row does not count).
        Seen {
            address: &people[5],
            kind: RecipientKind::Mailbox,
            sha256: shas(5, 1),
        },
        Seen {
            address: &stranger,
            kind: RecipientKind::Mailbox,
            sha256: shas(0, 1),
        },
    ];
    let version = s.inventory_version().await.unwrap();
    let touched = s.inventory_touch("corp", &seen, now).await.unwrap();
    assert_eq!(touched, [true, false, false, false, false, true, false]);
    assert_ne!(s.inventory_version().await.unwrap(), version);
    // Another directory holds none of them.
    let version = s.inventory_version().await.unwrap();
    let elsewhere = s.inventory_touch("local", &seen, now).await.unwrap();
    assert!(elsewhere.iter().all(|t| !t));
    assert_eq!(s.inventory_version().await.unwrap(), version);

    let rows = s
        .inventory(&InventoryQuery {
            include_gone: true,
            ..InventoryQuery::default()
        })
        .await
        .unwrap();
    for r in &rows {
        let n: usize = r.address[1..2].parse().unwrap();
        let moved = (n == 0 || n == 5) && r.present;
        assert_eq!(
            r.last_seen,
            if moved { now } else { now - DAY },
            "{} {}",
            r.address,
            r.facts.sha256
        );
        assert_eq!(r.first_seen, now - DAY);
    }
    assert_eq!(
        rows.iter().filter(|r| !r.present).count(),
        1,
        "p5's gone row stays gone"
    );

    // Every present row of the directory found unchanged at once (a plan's listing of a
    // converged directory): the directory is marked seen; every present row reads as seen
    // then, the gone row as before.
    let all: Vec<Seen<'_>> = (0..6)
        .map(|n| Seen {
            address: &people[n],
            kind: RecipientKind::Mailbox,
            sha256: shas(n, if n == 5 { 1 } else { 2 }),
        })
        .collect();
    let later = now + 60;
    let version = s.inventory_version().await.unwrap();
    let touched = s.inventory_touch("corp", &all, later).await.unwrap();
    assert!(touched.iter().all(|t| *t), "{touched:?}");
    assert_ne!(s.inventory_version().await.unwrap(), version);
    let version = s.inventory_version().await.unwrap();
    let again = s.inventory_touch("corp", &all, later).await.unwrap();
    assert!(again.iter().all(|t| *t));
    assert_eq!(
        s.inventory_version().await.unwrap(),
        version,
        "nothing moved the second time"
    );
    let everything = InventoryQuery {
        include_gone: true,
        ..InventoryQuery::default()
    };
    for r in s.inventory(&everything).await.unwrap() {
        let want = if r.present { later } else { now - DAY };
        assert_eq!(r.last_seen, want, "{} {}", r.address, r.facts.sha256);
    }
    // p1 loses a certificate afterwards: the gone row keeps the time it was last seen (the
    // directory's mark), the row still there the new sighting's.
    s.inventory_record(&[Sighting {
        certificates: &held[1][..1],
        time: later + 60,
        ..sightings[1].clone()
    }])
    .await
    .unwrap();
    for r in s.inventory(&everything).await.unwrap() {
        let p1 = r.address == people[1].to_string();
        let want = match (r.present, p1) {
            (true, true) => later + 60,
            (true, false) => later,
            (false, true) => later,
            (false, false) => now - DAY,
        };
        assert_eq!(r.last_seen, want, "{} {}", r.address, r.facts.sha256);
    }
    // The first page of addresses reads the same times.
    let first = s.inventory_first_addresses(2).await.unwrap();
    assert_eq!(first.len(), 3, "p0's two rows and p1's");
    for r in first {
        let p1 = r.address == people[1].to_string();
        let want = if p1 { later + 60 } else { later };
        assert_eq!(r.last_seen, want, "{}", r.address);
    }
}

async fn signature_checks_are_kept_refreshed_and_forgotten(b: Backend) {
    let f = Fixture::new(b, "signature_checks").await;
    let s = f.store.as_ref();
    assert!(s.signature_checks().await.unwrap().is_empty());
    let d = |n: u32| format!("{n:064x}");
    s.signature_checks_record(&[d(1), d(2)], 100, 0)
        .await
        .unwrap();
    // Recorded again later: kept once, with the newer time.
    s.signature_checks_record(&[d(2), d(3)], 200, 50)
        .await
        .unwrap();
    let mut got = s.signature_checks().await.unwrap();
    got.sort();
    assert_eq!(got, [d(1), d(2), d(3)]);
    // What was recorded before the horizon is forgotten; d(2) was recorded again at 200.
    s.signature_checks_record(&[d(4)], 300, 150).await.unwrap();
    let mut got = s.signature_checks().await.unwrap();
    got.sort();
    assert_eq!(got, [d(2), d(3), d(4)]);
    // Nothing to record still forgets.
    s.signature_checks_record(&[], 400, 250).await.unwrap();
    assert_eq!(s.signature_checks().await.unwrap(), [d(4)]);
}

async fn inventory_version_moves_with_every_write_and_first_addresses_page(b: Backend) {
    let f = Fixture::new(b, "inventory_version").await;
    let s = f.store.as_ref();
    let v0 = s.inventory_version().await.unwrap();
    assert!(s.inventory_first_addresses(10).await.unwrap().is_empty());
    // Five people, given out of order and in mixed case; carol's only certificate goes.
    let people = [
        "Erin@x.org",
        "bob@x.org",
        "Alice@x.org",
        "dave@x.org",
        "carol@x.org",
    ];
    let mut last = v0;
    for (n, p) in people.iter().enumerate() {
        let m = mbox(p);
        let certs = [facts(n as u32, 10), facts(100 + n as u32, 20)];
        for directory in ["one", "two"] {
            s.inventory_record(&[Sighting {
                directory,
                address: &m,
                kind: Some(RecipientKind::Mailbox),
                certificates: &certs,
                time: 1,
                published: false,
                complete: true,
            }])
            .await
            .unwrap();
            let v = s.inventory_version().await.unwrap();
            assert!(v > last, "a write moves the version: {last} then {v}");
            last = v;
        }
    }
    // What another connection (another process) reads is the same number.
    let again = f.reopen(b).await;
    assert_eq!(again.inventory_version().await.unwrap(), last);
    for directory in ["one", "two"] {
        s.inventory_record(&[Sighting {
            directory,
            address: &mbox("carol@x.org"),
            kind: Some(RecipientKind::Mailbox),
            certificates: &[],
            time: 2,
            published: false,
            complete: true,
        }])
        .await
        .unwrap();
    }
    assert!(again.inventory_version().await.unwrap() > last);
    let first = s.inventory_first_addresses(3).await.unwrap();
    let seen: Vec<(String, String)> = first
        .iter()
        .map(|r| (r.address.to_ascii_lowercase(), r.directory.clone()))
        .collect();
    let mut want = Vec::new();
    for a in ["alice@x.org", "bob@x.org", "dave@x.org"] {
        for d in ["one", "one", "two", "two"] {
            want.push((a.to_string(), d.to_string()));
        }
    }
    assert_eq!(
        seen, want,
        "the first three addresses with a present row, all their rows"
    );
    assert!(first.iter().all(|r| r.present));
    assert_eq!(s.inventory_first_addresses(100).await.unwrap().len(), 16);
}

fn entry(n: i64, address: &str) -> AuditEntry {
    AuditEntry {
        time: 1000 + n,
        actor: "alice".into(),
        frontend: "cli".into(),
        operation: "publish".into(),
        directory: "local".into(),
        address: address.into(),
        before: if n == 1 {
            vec![]
        } else {
            vec![format!("{:040x}", n - 1)]
        },
        after: vec![format!("{n:040x}")],
        result: "ok".into(),
    }
}

async fn audit_chain_detects_a_changed_and_a_removed_row(b: Backend) {
    let f = Fixture::new(b, "audit").await;
    let s = f.store.as_ref();
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Intact { rows: 0 }
    );
    for n in 1..=6 {
        let addr = if n % 2 == 0 {
            "Bob@example.org"
        } else {
            "alice@example.org"
        };
        let r = s.audit_append(&entry(n, addr)).await.unwrap();
        assert_eq!(r.seq, n);
        assert_eq!(r.hash.len(), 64);
    }
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Intact { rows: 6 }
    );
    let log = s
        .audit_log(&AuditFilter {
            since: Some(1003),
            address: Some("bob@EXAMPLE.org".into()),
            directory: None,
        })
        .await
        .unwrap();
    let seqs: Vec<i64> = log.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [4, 6]);
    assert_eq!(log[0].entry, entry(4, "Bob@example.org"));

    // A changed row: the first bad one is named.
    f.raw(b, "UPDATE audit_log SET result = 'failed' WHERE seq = 3")
        .await;
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Broken {
            seq: 3,
            problem: AuditProblem::Changed,
            rows_ok: 2
        }
    );
    f.raw(b, "UPDATE audit_log SET result = 'ok' WHERE seq = 3")
        .await;
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Intact { rows: 6 }
    );
    // Rewriting the thumbprints and recomputing nothing is caught too.
    f.raw(
        b,
        "UPDATE audit_log SET after_thumbprints = '' WHERE seq = 5",
    )
    .await;
    assert!(matches!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Broken {
            seq: 5,
            problem: AuditProblem::Changed,
            ..
        }
    ));
    f.raw(b, "DELETE FROM audit_log WHERE seq = 5").await;
    // A removed row in the middle…
    f.raw(b, "DELETE FROM audit_log WHERE seq = 2").await;
    assert_eq!(
        s.audit_verify().await.unwrap(),
        AuditVerdict::Broken {
            seq: 2,
            problem: AuditProblem::Removed,
            rows_ok: 1
        }
    );
    // …and the newest rows removed (the head remembers how long the log was).
    let f2 = Fixture::new(b, "audit_tail").await;
    for n in 1..=3 {
        f2.store.audit_append(&entry(n, "a@x")).await.unwrap();
    }
    f2.raw(b, "DELETE FROM audit_log WHERE seq = 3").await;
    assert_eq!(
        f2.store.audit_verify().await.unwrap(),
        AuditVerdict::Broken {
            seq: 3,
            problem: AuditProblem::Removed,
            rows_ok: 2
        }
    );
}

async fn job_records_start_finish_and_list(b: Backend) {
    let f = Fixture::new(b, "jobs").await;
    let s = f.store.as_ref();
    let one = s
        .job_start("bulk-publish", "alice", "cli", 10)
        .await
        .unwrap();
    let two = s
        .job_start("directory-audit", "bob", "web", 20)
        .await
        .unwrap();
    assert!(two > one);
    let items = r#"[{"address":"a@x","result":"ok"}]"#;
    s.job_finish(one, 15, "ok", items).await.unwrap();
    let jobs = s.jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].id, two, "most recent first");
    assert_eq!(jobs[0].finished, None);
    assert_eq!(jobs[0].outcome, None);
    assert_eq!(jobs[0].items, "[]");
    assert_eq!(jobs[1].kind, "bulk-publish");
    assert_eq!(jobs[1].actor, "alice");
    assert_eq!(jobs[1].frontend, "cli");
    assert_eq!((jobs[1].started, jobs[1].finished), (10, Some(15)));
    assert_eq!(jobs[1].outcome.as_deref(), Some("ok"));
    assert_eq!(jobs[1].items, items);
    assert_eq!(s.jobs(1).await.unwrap().len(), 1);
    let err = s.job_finish(999, 1, "ok", "[]").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn reopening_keeps_the_data_and_the_schema(b: Backend) {
    let f = Fixture::new(b, "reopen").await;
    let a = mbox("a@example.org");
    publish(
        f.store.as_ref(),
        "local",
        &a,
        RecipientKind::Mailbox,
        &cert("1"),
        PublishMode::Merge,
        &[],
    )
    .await;
    for _ in 0..2 {
        let again = f.reopen(b).await;
        assert_eq!(
            again
                .recipient("local", &a)
                .await
                .unwrap()
                .unwrap()
                .certificates,
            [cert("1")]
        );
    }
    assert!(f.store.describe().contains(match b {
        Backend::Sqlite => "smimekit.db",
        Backend::Postgres => "127.0.0.1",
    }));
}

fn managed(directory: &str, address: &str, n: u32, published: i64) -> ManagedCert {
    ManagedCert {
        directory: directory.into(),
        address: address.into(),
        thumbprint: format!("{n:040X}"),
        certificate: cert(&format!("m{n}")),
        published,
        confirmed: false,
        superseded: None,
    }
}

/// A certificate published to several directories reads back the same everywhere, and a
/// row whose thumbprint names other bytes (a caller's mistake) still reads back its own.
async fn managed_certificates_read_back_their_own_bytes(b: Backend) {
    let f = Fixture::new(b, "managed-bytes").await;
    let s = f.store.as_ref();
    let mut odd = managed("ldap", "carol@contoso.com", 0x07, 30);
    odd.certificate = cert("other bytes");
    let rows = vec![
        managed("corp", "carol@contoso.com", 0x07, 10),
        managed("exo", "carol@contoso.com", 0x07, 20),
        odd.clone(),
        managed("exo", "dave@contoso.com", 0x08, 40),
    ];
    s.managed_put(&rows).await.unwrap();
    for all in [s.managed(None).await.unwrap(), {
        let mut v = Vec::new();
        for d in ["corp", "exo", "ldap"] {
            v.extend(s.managed(Some(d)).await.unwrap());
        }
        v
    }] {
        let bytes: Vec<(&str, &str, &CertDer)> = all
            .iter()
            .map(|m| (m.directory.as_str(), m.address.as_str(), &m.certificate))
            .collect();
        let (m7, m8) = (cert("m7"), cert("m8"));
        assert_eq!(
            bytes,
            [
                ("corp", "carol@contoso.com", &m7),
                ("exo", "carol@contoso.com", &m7),
                ("exo", "dave@contoso.com", &m8),
                ("ldap", "carol@contoso.com", &odd.certificate),
            ]
        );
    }
}

async fn managed_certificates_round_trip_normalised_and_forgotten(b: Backend) {
    let f = Fixture::new(b, "managed").await;
    let s = f.store.as_ref();
    assert!(s.managed(None).await.unwrap().is_empty());
    // Given with a mixed-case address and a lower-case thumbprint: stored in key form.
    let mut alice = managed("exo", "Alice@Contoso.com", 0xab, 200);
    alice.thumbprint = alice.thumbprint.to_ascii_lowercase();
    let rows = vec![
        alice.clone(),
        managed("exo", "alice@contoso.com", 0x01, 100),
        managed("corp", "bob@contoso.com", 0x02, 50),
        managed("exo", "bob@contoso.com", 0x03, 10),
    ];
    s.managed_put(&rows).await.unwrap();
    let all = s.managed(None).await.unwrap();
    let keys: Vec<(&str, &str, i64)> = all
        .iter()
        .map(|m| (m.directory.as_str(), m.address.as_str(), m.published))
        .collect();
    assert_eq!(
        keys,
        [
            ("corp", "bob@contoso.com", 50),
            ("exo", "alice@contoso.com", 100),
            ("exo", "alice@contoso.com", 200),
            ("exo", "bob@contoso.com", 10),
        ],
        "by directory, address, published"
    );
    let stored_alice = &all[2];
    assert_eq!(stored_alice.thumbprint, format!("{:040X}", 0xab));
    assert_eq!(stored_alice.certificate, cert(&format!("m{}", 0xab)));
    assert!(!stored_alice.confirmed);
    assert_eq!(stored_alice.superseded, None);
    assert_eq!(s.managed(Some("corp")).await.unwrap(), [all[0].clone()]);
    // One address's rows, by an address in any case.
    assert_eq!(
        s.managed_for("exo", "ALICE@contoso.com").await.unwrap(),
        all[1..3]
    );
    assert!(
        s.managed_for("corp", "alice@contoso.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.managed_for("exo", "not an address").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.managed(Some("nowhere")).await.unwrap().is_empty());

    // Upsert by (directory, address, thumbprint), whatever case it is given in.
    let mut confirmed = managed("exo", "ALICE@contoso.com", 0xab, 200);
    confirmed.confirmed = true;
    confirmed.superseded = Some(300);
    s.managed_put(std::slice::from_ref(&confirmed))
        .await
        .unwrap();
    let exo = s.managed(Some("exo")).await.unwrap();
    assert_eq!(exo.len(), 3, "replaced, not added: {exo:?}");
    let again = exo
        .iter()
        .find(|m| m.thumbprint == format!("{:040X}", 0xab))
        .unwrap();
    assert!(again.confirmed);
    assert_eq!(again.superseded, Some(300));
    assert_eq!(again.address, "alice@contoso.com");

    // Another handle (another process) sees the same rows.
    assert_eq!(
        f.reopen(b).await.managed(None).await.unwrap(),
        s.managed(None).await.unwrap()
    );

    // Forget one (again in another case); forgetting what is not there is no error.
    s.managed_forget("exo", "alice@CONTOSO.com", &format!("{:040x}", 0xab))
        .await
        .unwrap();
    s.managed_forget("exo", "alice@contoso.com", &format!("{:040X}", 0xab))
        .await
        .unwrap();
    let exo = s.managed(Some("exo")).await.unwrap();
    assert_eq!(exo.len(), 2);
    assert!(exo.iter().all(|m| m.thumbprint != format!("{:040X}", 0xab)));
    assert_eq!(s.managed(Some("corp")).await.unwrap().len(), 1);

    // Bad keys are refused, naming the field, and a put with one bad row writes nothing.
    for (bad, field) in [
        (managed("", "a@x.org", 9, 1), "directory"),
        (managed("exo", "not an address", 9, 1), "address"),
        (
            ManagedCert {
                thumbprint: "ABC".into(),
                ..managed("exo", "a@x.org", 9, 1)
            },
            "thumbprint",
        ),
        (
            ManagedCert {
                thumbprint: "Z".repeat(40),
                ..managed("exo", "a@x.org", 9, 1)
            },
            "thumbprint",
        ),
    ] {
        let err = s
            .managed_put(&[managed("exo", "ok@x.org", 7, 1), bad])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.contains(field)),
            "{field}: {err}"
        );
    }
    assert!(
        s.managed(None)
            .await
            .unwrap()
            .iter()
            .all(|m| m.address != "ok@x.org"),
        "nothing of a refused put is written"
    );
    let err = s.managed_forget("exo", "a@x.org", "12").await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

fn lock(id: &str, started: i64) -> LockInfo {
    LockInfo {
        name: "apply".into(),
        id: id.into(),
        host: "host-a".into(),
        pid: 4_000_000_000,
        actor: "admin".into(),
        started,
        heartbeat: started,
    }
}

async fn sixteen_concurrent_acquirers_one_lock_holder(b: Backend) {
    const ACQUIRERS: usize = 16;
    let f = Fixture::new(b, "lockrace").await;
    assert_eq!(f.store.lock_get("apply").await.unwrap(), None);
    let mut tasks = Vec::new();
    for n in 0..ACQUIRERS {
        // Half share the handle, half have their own (as processes would).
        let store = if n % 2 == 0 {
            f.store.clone()
        } else {
            f.reopen(b).await
        };
        tasks.push(tokio::spawn(async move {
            let me = lock(&format!("run-{n}"), n as i64);
            (me.id.clone(), store.lock_acquire(&me, None).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, None) => winners.push(id),
            (id, Some(holder)) => refusals.push((id, holder)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one acquirer wins: {winners:?}");
    let winner = &winners[0];
    let held = f.store.lock_get("apply").await.unwrap().unwrap();
    assert_eq!(&held.id, winner);
    assert_eq!(held.pid, 4_000_000_000, "a u32 pid reads back");
    for (id, holder) in &refusals {
        assert_ne!(id, winner);
        assert_eq!(holder, &held, "a refusal names the holder");
    }
    // The holder asking again keeps it; another lock name is independent.
    let again = lock(winner, 99);
    assert_eq!(f.store.lock_acquire(&again, None).await.unwrap(), None);
    let other = LockInfo {
        name: "other".into(),
        ..lock("run-x", 1)
    };
    assert_eq!(f.store.lock_acquire(&other, None).await.unwrap(), None);
    assert_eq!(
        f.store.lock_get("apply").await.unwrap().unwrap().id,
        *winner
    );
}

async fn a_lock_is_taken_over_only_from_the_named_holder(b: Backend) {
    const ACQUIRERS: usize = 16;
    let f = Fixture::new(b, "lockreplace").await;
    let s = f.store.as_ref();
    let dead = lock("dead-run", 10);
    assert_eq!(s.lock_acquire(&dead, None).await.unwrap(), None);
    // The wrong id: refused with the holder, nothing changed.
    let next = lock("next-run", 20);
    assert_eq!(
        s.lock_acquire(&next, Some("some-other-run")).await.unwrap(),
        Some(dead.clone())
    );
    assert_eq!(s.lock_get("apply").await.unwrap(), Some(dead.clone()));
    // Sixteen processes decide at once that the holder died: one takes it over.
    let mut tasks = Vec::new();
    for n in 0..ACQUIRERS {
        let store = if n % 2 == 0 {
            f.store.clone()
        } else {
            f.reopen(b).await
        };
        tasks.push(tokio::spawn(async move {
            let me = LockInfo {
                host: format!("host-{n}"),
                ..lock(&format!("heir-{n}"), 30 + n as i64)
            };
            let got = store.lock_acquire(&me, Some("dead-run")).await.unwrap();
            (me, got)
        }));
    }
    let mut heirs = Vec::new();
    for t in tasks {
        let (me, got) = t.await.unwrap();
        match got {
            None => heirs.push(me),
            Some(holder) => assert!(holder.id.starts_with("heir-"), "{holder:?}"),
        }
    }
    assert_eq!(heirs.len(), 1, "exactly one takes over: {heirs:?}");
    assert_eq!(s.lock_get("apply").await.unwrap().as_ref(), Some(&heirs[0]));
    // The dead holder can no longer beat or release.
    assert!(!s.lock_heartbeat("apply", "dead-run", 50).await.unwrap());
    assert!(!s.lock_release("apply", "dead-run").await.unwrap());
    assert_eq!(s.lock_get("apply").await.unwrap().as_ref(), Some(&heirs[0]));
    // A free lock is taken with or without `replace`.
    assert!(s.lock_release("apply", &heirs[0].id).await.unwrap());
    let late = lock("late-run", 60);
    assert_eq!(s.lock_acquire(&late, Some("dead-run")).await.unwrap(), None);
    assert_eq!(s.lock_get("apply").await.unwrap(), Some(late));
}

async fn only_the_holder_beats_and_releases(b: Backend) {
    let f = Fixture::new(b, "lockbeat").await;
    let s = f.store.as_ref();
    assert!(!s.lock_heartbeat("apply", "nobody", 5).await.unwrap());
    assert!(!s.lock_release("apply", "nobody").await.unwrap());
    let mine = lock("mine", 100);
    assert_eq!(s.lock_acquire(&mine, None).await.unwrap(), None);
    assert!(!s.lock_heartbeat("apply", "intruder", 150).await.unwrap());
    assert!(!s.lock_release("apply", "intruder").await.unwrap());
    assert_eq!(
        s.lock_get("apply").await.unwrap().unwrap().heartbeat,
        100,
        "a refused heartbeat changes nothing"
    );
    assert!(s.lock_heartbeat("apply", "mine", 160).await.unwrap());
    let held = f.reopen(b).await.lock_get("apply").await.unwrap().unwrap();
    assert_eq!(
        held,
        LockInfo {
            heartbeat: 160,
            ..mine.clone()
        }
    );
    assert!(s.lock_release("apply", "mine").await.unwrap());
    assert_eq!(s.lock_get("apply").await.unwrap(), None);
    assert!(
        !s.lock_release("apply", "mine").await.unwrap(),
        "released once"
    );
    assert!(!s.lock_heartbeat("apply", "mine", 170).await.unwrap());
    // Free again for anyone.
    let next = lock("next", 200);
    assert_eq!(s.lock_acquire(&next, None).await.unwrap(), None);
    let err = s.lock_acquire(&lock("", 1), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

fn step(run: &str, step: &str, phase: &str, at: i64) -> JournalEntry {
    JournalEntry {
        run: run.into(),
        step: step.into(),
        phase: phase.into(),
        detail: format!("{step} {phase} at {at}"),
        at,
    }
}

async fn journal_keeps_order_and_finds_interrupted_steps(b: Backend) {
    let f = Fixture::new(b, "journal").await;
    let s = f.store.as_ref();
    assert!(s.journal_interrupted().await.unwrap().is_empty());
    // Times deliberately out of order: the append order is what counts.
    let r1 = [
        step("r1", "exo/alice/add", "start", 50),
        step("r1", "exo/alice/add", "done", 40),
        step("r1", "exo/bob/contact", "start", 30),
        step("r1", "corp/bob/add", "start", 20),
        step("r1", "corp/bob/add", "failed", 10),
        step("r1", "exo/carol/add", "start", 5),
    ];
    for e in &r1[..4] {
        s.journal_append(e).await.unwrap();
    }
    // Another run interleaved, touching the same step.
    let r2 = step("r2", "exo/bob/contact", "start", 60);
    s.journal_append(&r2).await.unwrap();
    for e in &r1[4..] {
        s.journal_append(e).await.unwrap();
    }
    assert_eq!(s.journal("r1").await.unwrap(), r1);
    assert_eq!(s.journal("r2").await.unwrap(), std::slice::from_ref(&r2));
    assert!(s.journal("r3").await.unwrap().is_empty());
    // Interrupted: (run, step) pairs whose last row is `start`, oldest first, from any handle.
    let expected = vec![r1[2].clone(), r2.clone(), r1[5].clone()];
    assert_eq!(s.journal_interrupted().await.unwrap(), expected);
    assert_eq!(
        f.reopen(b).await.journal_interrupted().await.unwrap(),
        expected
    );

    // Resolving a step resolves it in every run, once.
    s.journal_resolve("exo/bob/contact", 70).await.unwrap();
    assert_eq!(s.journal_interrupted().await.unwrap(), [r1[5].clone()]);
    let last = s.journal("r2").await.unwrap().pop().unwrap();
    assert_eq!(
        (last.step.as_str(), last.phase.as_str(), last.at),
        ("exo/bob/contact", "resolved", 70)
    );
    assert_eq!(s.journal("r1").await.unwrap().len(), r1.len() + 1);
    s.journal_resolve("exo/bob/contact", 80).await.unwrap();
    s.journal_resolve("exo/alice/add", 80).await.unwrap();
    assert_eq!(
        s.journal("r1").await.unwrap().len(),
        r1.len() + 1,
        "nothing open: nothing appended"
    );

    // A step started again is open again until it ends.
    let retry = step("r3", "exo/alice/add", "start", 90);
    s.journal_append(&retry).await.unwrap();
    assert_eq!(
        s.journal_interrupted().await.unwrap(),
        [r1[5].clone(), retry.clone()]
    );
    s.journal_append(&step("r3", "exo/alice/add", "done", 91))
        .await
        .unwrap();
    assert_eq!(s.journal_interrupted().await.unwrap(), [r1[5].clone()]);

    let err = s
        .journal_append(&step("r4", "", "start", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("step")),
        "{err}"
    );
}

async fn concurrent_journal_appends_keep_each_run_in_order(b: Backend) {
    const RUNS: usize = 8;
    const STEPS: usize = 10;
    let f = Fixture::new(b, "journalrace").await;
    let mut tasks = Vec::new();
    for r in 0..RUNS {
        let store = if r % 2 == 0 {
            f.store.clone()
        } else {
            f.reopen(b).await
        };
        tasks.push(tokio::spawn(async move {
            let run = format!("run-{r}");
            let mut written = Vec::new();
            for i in 0..STEPS {
                let name = format!("step-{i}");
                // The last step of each run stays open (as a kill would leave it).
                let phases: &[&str] = if i + 1 == STEPS {
                    &["start"]
                } else {
                    &["start", "done"]
                };
                for phase in phases {
                    let e = step(&run, &name, phase, 0);
                    store.journal_append(&e).await.unwrap();
                    written.push(e);
                }
            }
            (run, written)
        }));
    }
    for t in tasks {
        let (run, written) = t.await.unwrap();
        assert_eq!(f.store.journal(&run).await.unwrap(), written, "{run}");
    }
    let open = f.store.journal_interrupted().await.unwrap();
    assert_eq!(open.len(), RUNS, "{open:?}");
    assert!(open.iter().all(|e| e.step == format!("step-{}", STEPS - 1)));
}

async fn a_reminder_is_given_once_per_window(b: Backend) {
    const DAY: i64 = 86_400;
    const RACERS: usize = 16;
    let f = Fixture::new(b, "remind").await;
    let s = f.store.as_ref();
    let t0 = 1_800_000_000;
    assert!(s.remind("expiring:alice", t0 - DAY, t0).await.unwrap());
    // Within the day: not again, and the time stays the first one.
    assert!(
        !s.remind("expiring:alice", t0 + 10 - DAY, t0 + 10)
            .await
            .unwrap()
    );
    assert!(
        !s.remind("expiring:alice", t0 + DAY - 1 - DAY, t0 + DAY - 1)
            .await
            .unwrap()
    );
    // Other keys are independent.
    assert!(s.remind("expiring:bob", t0 - DAY, t0).await.unwrap());
    // A day after the first reminder: again.
    assert!(
        s.remind("expiring:alice", t0 + 1, t0 + DAY + 1)
            .await
            .unwrap()
    );
    assert!(
        !s.remind("expiring:alice", t0 + 2, t0 + DAY + 2)
            .await
            .unwrap()
    );
    // Processes racing on one key: one reminds.
    let mut tasks = Vec::new();
    for n in 0..RACERS {
        let store = if n % 2 == 0 {
            f.store.clone()
        } else {
            f.reopen(b).await
        };
        tasks.push(tokio::spawn(async move {
            store
                .remind("not-ready:carol", t0 - DAY, t0 + n as i64)
                .await
                .unwrap()
        }));
    }
    let mut told = 0;
    for t in tasks {
        told += usize::from(t.await.unwrap());
    }
    assert_eq!(told, 1);
    let err = s.remind("", 0, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

/// What a directory plugin remembers (the byte encoding an Exchange tenant accepts): one value
/// per directory and key, replaced by a later set, seen by another handle, and one of the
/// values written when sixteen writers race on one key.
async fn directory_state_is_kept_per_directory_and_key(b: Backend) {
    const RACERS: usize = 16;
    let f = Fixture::new(b, "dir_state").await;
    let s = f.store.as_ref();
    assert_eq!(s.directory_state("exo", "encoding").await.unwrap(), None);
    let value = r#"{"encoding": "base64", "note": "ä 'quoted'"}"#;
    s.set_directory_state("exo", "encoding", value, 100)
        .await
        .unwrap();
    assert_eq!(
        s.directory_state("exo", "encoding")
            .await
            .unwrap()
            .as_deref(),
        Some(value)
    );
    // Other keys and other directories are separate.
    assert_eq!(s.directory_state("exo", "route").await.unwrap(), None);
    assert_eq!(s.directory_state("exo2", "encoding").await.unwrap(), None);
    assert_eq!(s.directory_state("EXO", "encoding").await.unwrap(), None);
    s.set_directory_state("exo2", "encoding", "bytes", 100)
        .await
        .unwrap();
    // A later set replaces the value; another handle (process) sees it.
    s.set_directory_state("exo", "encoding", "json-array", 200)
        .await
        .unwrap();
    let other = f.reopen(b).await;
    assert_eq!(
        other
            .directory_state("exo", "encoding")
            .await
            .unwrap()
            .as_deref(),
        Some("json-array")
    );
    assert_eq!(
        other
            .directory_state("exo2", "encoding")
            .await
            .unwrap()
            .as_deref(),
        Some("bytes")
    );
    // Writers racing on one key from two handles: none fails, one value stays.
    let mut tasks = Vec::new();
    for n in 0..RACERS {
        let store = if n % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .set_directory_state("race", "k", &format!("v{n}"), 300 + n as i64)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = s.directory_state("race", "k").await.unwrap().unwrap();
    assert!((0..RACERS).any(|n| last == format!("v{n}")), "{last}");
}

/// The columns of every table, as (table, column, nullable), sorted.
async fn schema(f: &Fixture, b: Backend) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = match b {
        Backend::Sqlite => {
            let c = rusqlite::Connection::open(&f.location).unwrap();
            let mut stmt = c
                .prepare(
                    "SELECT m.name, p.name, p.\"notnull\" FROM sqlite_master m \
                     JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
                     AND m.name NOT LIKE 'sqlite_%'",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? == 0)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&f.location, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            let rows = client
                .query(
                    "SELECT table_name::TEXT, column_name::TEXT, is_nullable::TEXT \
                     FROM information_schema.columns WHERE table_schema = 'public'",
                    &[],
                )
                .await
                .unwrap();
            drop(client);
            task.await.unwrap().unwrap();
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, String>(2) == "YES"))
                .collect()
        }
    };
    // refinery's own table is declared by refinery, with its own types per backend.
    out.retain(|(t, _, _)| t != "refinery_schema_history");
    out.sort();
    out
}

/// One migrations folder for both backends: after migrating, both have the same tables and
/// columns with the same nullability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_have_the_same_schema() {
    let lite = Fixture::new(Backend::Sqlite, "schema").await;
    let pg = Fixture::new(Backend::Postgres, "schema").await;
    let (a, b) = (
        schema(&lite, Backend::Sqlite).await,
        schema(&pg, Backend::Postgres).await,
    );
    assert!(a.len() > 40, "{a:?}");
    assert_eq!(a, b);
}

/// Set by [`two_processes_on_one_sqlite_file_lose_nothing`] in the processes it starts.
const CHILD_DB: &str = "SMIMEKIT_STORE_TEST_CHILD_DB";
const CHILD_WRITES: usize = 40;

/// Not a test of its own: the body of the writer processes that
/// [`two_processes_on_one_sqlite_file_lose_nothing`] starts (this test binary, run with only
/// this test and `SMIMEKIT_STORE_TEST_CHILD_DB` set). Without the variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer_process() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let id = std::process::id();
    let store = SqliteStore::open(db, Duration::from_secs(60))
        .await
        .unwrap();
    let shared = mbox("shared@example.org");
    for i in 0..CHILD_WRITES {
        publish(
            &store,
            "local",
            &shared,
            RecipientKind::Mailbox,
            &cert(&format!("{id}-{i}")),
            PublishMode::Merge,
            &[],
        )
        .await;
        store
            .audit_append(&entry(i as i64 + 1, "shared@example.org"))
            .await
            .unwrap();
    }
}

/// Two processes start together on a file that does not exist yet (both create it and run
/// the migrations), then write the same recipient and the audit log: nothing is lost and
/// the chain is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("shared.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_writer_process", "--test-threads", "1"])
                .env(CHILD_DB, &db)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran the writer: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let store = SqliteStore::open(&db, Duration::from_secs(30))
        .await
        .unwrap();
    let held = store
        .recipient("local", &mbox("shared@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.certificates.len(), 2 * CHILD_WRITES);
    assert_eq!(
        store.audit_verify().await.unwrap(),
        AuditVerdict::Intact {
            rows: 2 * CHILD_WRITES as u64
        }
    );
}

/// A writer that cannot get SQLite's lock in time gets a `Conflict` naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_writer_gives_up_after_the_busy_timeout_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("locked.db");
    let store = SqliteStore::open(&db, Duration::from_millis(100))
        .await
        .unwrap();
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .set_trust_chain("local", &[cert("r")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("locked.db") && m.contains("another smimekit")),
        "{err}"
    );
    // Readers are not blocked by the writer.
    assert!(store.trust_chain("local").await.unwrap().is_empty());
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(
        store.set_trust_chain("local", &[cert("r")]).await.unwrap(),
        [cert("r")]
    );
}

/// What is not a store is said so, naming it.
#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("junk.db");
    std::fs::write(&db, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&db, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("junk.db")),
        "{err}"
    );
    let err = smimekit_store_sql::open("mysql://x").await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

fn web_user(name: &str, role: &str) -> WebUser {
    WebUser {
        name: name.into(),
        role: role.into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{name}"),
        created: 1_800_000_000,
        failures: 0,
        locked_until: None,
    }
}

fn web_session(id: &str, user: &str, at: i64) -> WebSession {
    WebSession {
        id: id.into(),
        user: user.into(),
        csrf: format!("csrf-{id}"),
        created: at,
        last_seen: at,
    }
}

async fn user_put_creates_and_replaces(b: Backend) {
    let f = Fixture::new(b, "user_put").await;
    let s = f.store.as_ref();
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    let mut changed = web_user("ann", "admin");
    changed.failures = 3;
    changed.locked_until = Some(1_800_000_900);
    changed.password_hash = "$argon2id$new".into();
    s.user_put(&changed).await.unwrap();
    // Seen through another handle (another server on the same store).
    let other = f.reopen(b).await;
    assert_eq!(other.user_get("ann").await.unwrap(), Some(changed));
    assert_eq!(other.users().await.unwrap().len(), 1);
    let err = s.user_put(&web_user("", "viewer")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

async fn user_get_finds_only_that_user(b: Backend) {
    let f = Fixture::new(b, "user_get").await;
    let s = f.store.as_ref();
    assert_eq!(s.user_get("ann").await.unwrap(), None);
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    s.user_put(&web_user("bob", "operator")).await.unwrap();
    assert_eq!(s.user_get("bob").await.unwrap().unwrap().role, "operator");
    assert_eq!(s.user_get("Ann").await.unwrap(), None);
}

async fn users_are_listed_by_name(b: Backend) {
    let f = Fixture::new(b, "users").await;
    let s = f.store.as_ref();
    assert!(s.users().await.unwrap().is_empty());
    for n in ["carol", "ann", "bob"] {
        s.user_put(&web_user(n, "viewer")).await.unwrap();
    }
    let names: Vec<String> = s
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ann", "bob", "carol"]);
}

async fn user_remove_drops_the_user_and_their_sessions(b: Backend) {
    let f = Fixture::new(b, "user_remove").await;
    let s = f.store.as_ref();
    s.user_put(&web_user("ann", "admin")).await.unwrap();
    s.user_put(&web_user("bob", "admin")).await.unwrap();
    s.session_put(&web_session("s1", "ann", 10)).await.unwrap();
    s.session_put(&web_session("s2", "bob", 10)).await.unwrap();
    assert!(s.user_remove("ann").await.unwrap());
    assert!(!s.user_remove("ann").await.unwrap());
    assert_eq!(s.user_get("ann").await.unwrap(), None);
    assert_eq!(s.session_get("s1").await.unwrap(), None);
    assert!(s.session_get("s2").await.unwrap().is_some());
}

async fn session_put_needs_an_existing_user(b: Backend) {
    let f = Fixture::new(b, "session_put").await;
    let s = f.store.as_ref();
    let err = s
        .session_put(&web_session("s1", "ghost", 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(s.session_get("s1").await.unwrap(), None);
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    s.session_put(&web_session("s1", "ann", 10)).await.unwrap();
    let err = s
        .session_put(&web_session("", "ann", 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

async fn session_get_reads_what_was_put(b: Backend) {
    let f = Fixture::new(b, "session_get").await;
    let s = f.store.as_ref();
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    let put = web_session("abc", "ann", 1_800_000_000);
    s.session_put(&put).await.unwrap();
    assert_eq!(
        f.reopen(b).await.session_get("abc").await.unwrap(),
        Some(put)
    );
    assert_eq!(s.session_get("abd").await.unwrap(), None);
}

async fn session_touch_moves_last_seen(b: Backend) {
    let f = Fixture::new(b, "session_touch").await;
    let s = f.store.as_ref();
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    s.session_put(&web_session("s1", "ann", 100)).await.unwrap();
    assert!(s.session_touch("s1", 160).await.unwrap());
    let got = s.session_get("s1").await.unwrap().unwrap();
    assert_eq!((got.created, got.last_seen), (100, 160));
    assert!(!s.session_touch("nope", 160).await.unwrap());
}

async fn session_remove_signs_out(b: Backend) {
    let f = Fixture::new(b, "session_remove").await;
    let s = f.store.as_ref();
    s.user_put(&web_user("ann", "viewer")).await.unwrap();
    s.session_put(&web_session("s1", "ann", 100)).await.unwrap();
    s.session_put(&web_session("s2", "ann", 100)).await.unwrap();
    assert!(s.session_remove("s1").await.unwrap());
    assert!(!s.session_remove("s1").await.unwrap());
    assert_eq!(s.session_get("s1").await.unwrap(), None);
    assert!(!s.session_touch("s1", 200).await.unwrap());
    assert!(s.session_get("s2").await.unwrap().is_some());
}
