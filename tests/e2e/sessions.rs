//! The service as a long-lived application core, in-process: sessions (an Exchange Online
//! directory signs in once per service, again after `close_directory`; an LDAP connection is
//! reused, and a directory found unavailable is opened afresh; an unlocked key store is kept
//! until `close_key_store`), nothing blocking the async runtime (key-file reading, PKCS#12
//! password derivation, key generation and password prompts run while another task on a
//! current-thread runtime makes progress), jobs (bulk publish and audit events in order,
//! cancellation between items, job records in the store), and the device-code sign-in
//! handed to the frontend as data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smimekit_core::{CertDer, Mailbox, PublishMode, RecipientKind};
use smimekit_exchange_emulator::{Emulator, EmulatorConfig};
use smimekit_service::deploy::DeploySource;
use smimekit_service::{
    AuditRequest, BulkList, BulkPublishRequest, Config, KeyRequest, LookupRequest, Named, Secret,
    Service,
};

use crate::common::pki;
use crate::ldap::slapd::{self, ADMIN, BASE, Slapd};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

fn der(name: &str) -> CertDer {
    let pem = std::fs::read(pki(name)).unwrap();
    smimekit_pki::container::load_certificates(&pem, name).unwrap()[0].clone()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A service on a config file written into `dir`, with a SQLite store there, on the pinned
/// clock.
fn service(dir: &Path, directories: &str) -> Service {
    let path = dir.join("config.toml");
    let store = dir.join("smimekit.db");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"sqlite:{}\"\n\n{directories}",
            store.display()
        ),
    )
    .unwrap();
    Service::builder()
        .config(Config::load(Some(&path)).unwrap())
        .clock(smimekit_testkit::pinned_clock())
        .actor("tester", "test")
        .build()
        .unwrap()
}

/// `[directory.exo]` on the emulator (app-only with alice's key, or `extra`).
fn exo_toml(emu: &Emulator, extra: &str) -> String {
    format!(
        "[directory.exo]\nkind = \"exchange-online\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         certificate = \"{}\"\ncertificate_file = \"{}\"\nendpoint = \"{}\"\nauthority = \"{}\"\n{extra}",
        pki("alice.key"),
        pki("alice.pem"),
        emu.base_url,
        emu.base_url
    )
}

async fn emulator(mailboxes: &[String]) -> Emulator {
    let mut cfg = EmulatorConfig::new(TENANT, CLIENT, der("alice.pem").as_bytes().to_vec());
    cfg.mailboxes = mailboxes.to_vec();
    Emulator::start(cfg).await.unwrap()
}

fn lookup(address: &str, directory: &str) -> LookupRequest {
    LookupRequest {
        address: address.into(),
        directory: Some(directory.into()),
    }
}

#[test]
fn exchange_signs_in_once_per_service_and_again_after_close() {
    let rt = current_thread();
    rt.block_on(async {
        let emu = emulator(&["alice@example.org".into()]).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &exo_toml(&emu, ""));
        let alice = Mailbox::parse("alice@example.org").unwrap();
        svc.open_directory("exo")
            .await
            .unwrap()
            .publish(
                &alice,
                RecipientKind::Mailbox,
                &der("alice.pem"),
                PublishMode::Merge,
            )
            .await
            .unwrap();
        assert_eq!(count(&emu.counters.tokens), 1);
        for _ in 0..2 {
            let r = svc
                .lookup(&lookup("alice@example.org", "exo"))
                .await
                .unwrap();
            assert_eq!(r.certificates.len(), 1);
        }
        // A clone shares the sessions.
        svc.clone()
            .lookup(&lookup("alice@example.org", "exo"))
            .await
            .unwrap();
        assert_eq!(count(&emu.counters.tokens), 1, "one sign-in for every call");
        assert_eq!(svc.open_sessions().directories, ["exo"]);

        assert!(svc.close_directory("exo").await.unwrap());
        assert!(svc.open_sessions().directories.is_empty());
        assert!(!svc.close_directory("exo").await.unwrap(), "already closed");
        svc.lookup(&lookup("alice@example.org", "exo"))
            .await
            .unwrap();
        assert_eq!(count(&emu.counters.tokens), 2, "closed: signed in again");
        let e = svc.close_directory("nope").await.unwrap_err();
        assert!(e.message.contains("nope"), "{e}");
    });
}

/// A TCP forwarder in front of slapd that counts connections and can cut them all and
/// refuse new ones (accepted, then closed at once).
struct Proxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    refuse: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a, r, o) = (accepted.clone(), refuse.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::Relaxed);
                if r.load(Ordering::Relaxed) {
                    continue; // dropped: closed at once
                }
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", target))
                    .await
                    .unwrap();
                let h = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                o.lock().unwrap().push(h.abort_handle());
            }
        });
        Proxy {
            port,
            accepted,
            refuse,
            open,
        }
    }

    /// Cuts every open connection and refuses new ones until `refuse(false)`.
    fn cut(&self) {
        self.refuse.store(true, Ordering::Relaxed);
        for h in self.open.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

/// slapd holding bob and his certificate.
fn bob_slapd() -> Slapd {
    let bob = der("bob.pem");
    Slapd::start(&slapd::Options {
        seed: format!(
            "dn: uid=bob,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\n\
             mail: bob@example.org\nuserCertificate;binary:: {}\n\n",
            slapd::b64(bob.as_bytes())
        ),
        ..slapd::Options::default()
    })
}

/// `[directory.corp]` on `slapd` through `proxy`.
fn corp_through(proxy: &Proxy, slapd: &Slapd) -> String {
    format!(
        "[directory.corp]\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1:{}\"\nbase_dn = \"{BASE}\"\n\
         bind_dn = \"{ADMIN}\"\nallow_cleartext_bind = true\npassword_file = \"{}\"\n",
        proxy.port,
        slapd.password_file().display()
    )
}

#[test]
fn ldap_connection_is_reused_and_reopened_after_it_fails() {
    let s = bob_slapd();
    let rt = current_thread();
    rt.block_on(async {
        let proxy = Proxy::start(s.port).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &corp_through(&proxy, &s));
        for _ in 0..3 {
            let r = svc
                .lookup(&lookup("bob@example.org", "corp"))
                .await
                .unwrap();
            assert_eq!(r.certificates.len(), 1);
        }
        assert_eq!(
            count(&proxy.accepted),
            1,
            "one connection (and bind) for every call"
        );

        // The server goes away: the call fails, and the handle that failed is dropped.
        let before = svc.open_directory("corp").await.unwrap();
        proxy.cut();
        let e = svc
            .lookup(&lookup("bob@example.org", "corp"))
            .await
            .unwrap_err();
        assert!(e.message.contains("corp"), "{e}");
        proxy.refuse.store(false, Ordering::Relaxed);
        let after = svc.open_directory("corp").await.unwrap();
        assert!(
            !Arc::ptr_eq(&before, &after),
            "a new handle after the failure"
        );
        drop((before, after));
        let connections = count(&proxy.accepted);
        svc.lookup(&lookup("bob@example.org", "corp"))
            .await
            .unwrap();
        svc.lookup(&lookup("bob@example.org", "corp"))
            .await
            .unwrap();
        assert_eq!(count(&proxy.accepted), connections + 1, "reconnected once");

        // Closing unbinds; the next call connects again.
        assert!(svc.close_directory("corp").await.unwrap());
        svc.lookup(&lookup("bob@example.org", "corp"))
            .await
            .unwrap();
        assert_eq!(count(&proxy.accepted), connections + 2);
    });
}

/// Directories opened ahead (as `plan` does while its deploy file's certificates are read)
/// are the ones the command then gets: one handle, one connection; a name not configured is
/// left alone; giving up the guard keeps what was opened.
#[test]
fn a_directory_opened_ahead_is_the_one_the_command_gets() {
    let s = bob_slapd();
    let rt = current_thread();
    rt.block_on(async {
        let proxy = Proxy::start(s.port).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &corp_through(&proxy, &s));
        let ahead = svc.open_ahead(&["nowhere".to_string(), "corp".to_string()], &[]);
        let first = svc.open_directory("corp").await.unwrap();
        drop(ahead);
        let again = svc.open_directory("corp").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one handle");
        let r = svc
            .lookup(&lookup("bob@example.org", "corp"))
            .await
            .unwrap();
        assert_eq!(r.certificates.len(), 1);
        assert_eq!(count(&proxy.accepted), 1, "one connection");
        assert_eq!(svc.open_sessions().directories, ["corp"]);
        // An unknown name is still an error when the command opens it.
        assert!(svc.open_directory("nowhere").await.is_err());
    });
}

#[test]
fn an_unlocked_key_store_is_kept_until_closed() {
    let rt = current_thread();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let p12 = dir.path().join("alice.p12");
        std::fs::copy(pki("alice.p12"), &p12).unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "test\n").unwrap();
        let svc = Service::builder()
            .clock(smimekit_testkit::pinned_clock())
            .password_file(Some(pw.clone()))
            .build()
            .unwrap();
        let req = KeyRequest {
            reference: p12.display().to_string(),
            ..KeyRequest::default()
        };
        let key = svc.open_key(&req).await.unwrap();
        assert_eq!(key.certificate(), &der("alice.pem"));
        // The password is gone: only the kept store can serve the key now.
        std::fs::remove_file(&pw).unwrap();
        svc.open_key(&req).await.unwrap();
        assert_eq!(svc.open_sessions().key_stores, [p12.display().to_string()]);
        // A request with its own secret is checked, even when the store is open.
        let wrong = KeyRequest {
            secret: Some(Secret::from("wrong")),
            ..req.clone()
        };
        let e = svc.open_key(&wrong).await.unwrap_err();
        assert!(e.message.contains("wrong password"), "{e}");

        assert!(svc.close_key_store(&req.reference).await.unwrap());
        let e = svc.open_key(&req).await.unwrap_err();
        assert!(e.message.contains("PKCS#12 password"), "{e}");
    });
}

/// Whether another task on the same current-thread runtime ran while `work` was pending:
/// work done inline never yields, so a ticker task cannot run until it is over.
async fn others_ran_during<T>(work: impl std::future::Future<Output = T>) -> (T, bool) {
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    // Let the ticker start.
    while count(&ticks) == 0 {
        tokio::task::yield_now().await;
    }
    let before = count(&ticks);
    let out = work.await;
    let ran = count(&ticks) > before;
    stop.store(true, Ordering::Relaxed);
    ticker.await.unwrap();
    (out, ran)
}

#[test]
fn slow_key_work_does_not_block_the_runtime() {
    let rt = current_thread();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // PKCS#12 password derivation (PBKDF2), through the key-store port.
        let store = smimekit_keystore_file::FileKeyStore::open_file(
            &smimekit_core::plugin::KeyStoreParams {
                reference: &pki("alice.p12"),
                certificate: None,
            },
        )
        .unwrap();
        let (unlocked, ran) = others_ran_during(smimekit_core::KeyStore::unlock(
            &store,
            Secret::from("test"),
        ))
        .await;
        unlocked.unwrap();
        assert!(ran, "the PKCS#12 unlock ran on the runtime's thread");

        // Key generation (RSA: seconds), through the service.
        let svc = Service::builder().build().unwrap();
        let target = dir.path().join("new.p12").display().to_string();
        let (key, ran) =
            others_ran_during(svc.generate_key(&target, smimekit_core::KeySpec::Rsa(2048))).await;
        key.unwrap();
        assert!(ran, "key generation ran on the runtime's thread");

        // Opening and unlocking a key file through the service.
        let (key, ran) = others_ran_during(svc.open_key(&KeyRequest {
            reference: pki("alice.p12"),
            secret: Some(Secret::from("test")),
            ..KeyRequest::default()
        }))
        .await;
        key.unwrap();
        assert!(ran, "opening a key file ran on the runtime's thread");
    });
}

/// A prompt that waits for an answer another task gives: asked on the runtime's own thread,
/// it would wait for a task that cannot run (given up after a minute, failing the test).
struct AnsweredElsewhere(std::sync::Mutex<std::sync::mpsc::Receiver<String>>);

impl smimekit_service::Prompt for AnsweredElsewhere {
    fn ask(&self, _text: &str) -> std::io::Result<Secret> {
        let rx = self.0.lock().unwrap();
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .map(Secret::from)
            .map_err(|e| std::io::Error::other(format!("no answer: {e}")))
    }
}

#[test]
fn a_key_file_is_read_and_its_password_asked_off_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO: reading it waits until a writer, another task on this runtime, opens it.
    let fifo = dir.path().join("alice.p12");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let svc = Service::builder()
        .prompt(Arc::new(AnsweredElsewhere(std::sync::Mutex::new(rx))))
        .build()
        .unwrap();
    // Should the read block this thread after all, a writer from another thread ends it
    // (with no data) after a minute, so the test fails instead of hanging.
    let watchdog = {
        let fifo = fifo.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                if d.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        });
        done
    };
    let rt = current_thread();
    let opened = rt.block_on(async {
        let writer = {
            let fifo = fifo.clone();
            tokio::spawn(async move {
                let data = std::fs::read(pki("alice.p12")).unwrap();
                // The sender opens once the service's reader has the FIFO open.
                let mut w = loop {
                    match tokio::net::unix::pipe::OpenOptions::new().open_sender(&fifo) {
                        Ok(w) => break w,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                };
                tokio::io::AsyncWriteExt::write_all(&mut w, &data)
                    .await
                    .unwrap();
                drop(w);
                // The password, once the service asks.
                tx.send("test".to_string()).unwrap();
            })
        };
        let key = svc
            .open_key(&KeyRequest {
                reference: fifo.display().to_string(),
                ..KeyRequest::default()
            })
            .await;
        writer.await.unwrap();
        key
    });
    watchdog.store(true, Ordering::Relaxed);
    let key = opened.unwrap();
    assert_eq!(key.certificate(), &der("alice.pem"));
}

/// `n` mailbox addresses.
fn mailboxes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:02}@example.org")).collect()
}

/// The app's side of a bulk run held in memory (as a web upload would be): the files a list
/// names, no path on disk; it counts the certificates read. With a gate, each read first takes
/// a token the test hands out, so a test can hold the run at a read.
#[derive(Default)]
struct MemFiles {
    files: HashMap<PathBuf, Vec<u8>>,
    reads: AtomicU64,
    gate: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl DeploySource for MemFiles {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if let Some(gate) = &self.gate {
            // Only a read the test never allows waits this long (the run read ahead).
            gate.lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(120))
                .map_err(|_| std::io::Error::other("read before its turn: no token"))?;
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn list(&self, _: &Path) -> std::io::Result<Vec<String>> {
        Err(std::io::Error::from(std::io::ErrorKind::NotADirectory))
    }

    fn is_dir(&self, _: &Path) -> bool {
        false
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        Path::new("upload").join(path)
    }
}

/// A bulk list file for the CLI, giving each address alice's certificate.
fn bulk_list_file(dir: &Path, addrs: &[String]) -> PathBuf {
    let csv = dir.join("list.csv");
    let mut text = String::from("address,certificate\n");
    for a in addrs {
        text.push_str(&format!("{a},{}\n", pki("alice.pem")));
    }
    std::fs::write(&csv, text).unwrap();
    csv
}

/// A bulk list giving each address its own copy of alice's certificate (`certs/ADDRESS.pem`),
/// and the files it names.
fn bulk_list(addrs: &[String]) -> (BulkList, Arc<MemFiles>) {
    let alice = std::fs::read(pki("alice.pem")).unwrap();
    let mut files = MemFiles::default();
    let mut text = String::from("address,certificate\n");
    for a in addrs {
        text.push_str(&format!("{a},certs/{a}.pem\n"));
        files
            .files
            .insert(PathBuf::from(format!("certs/{a}.pem")), alice.clone());
    }
    (
        BulkList::Text(Named::new("list.csv", text)),
        Arc::new(files),
    )
}

fn bulk_request(addrs: &[String]) -> BulkPublishRequest {
    let (list, files) = bulk_list(addrs);
    BulkPublishRequest {
        directory: Some("exo".into()),
        force: true,
        ..BulkPublishRequest::new(list, files)
    }
}

#[test]
fn bulk_publish_is_a_job_with_ordered_events_and_a_record() {
    let rt = current_thread();
    rt.block_on(async {
        let addrs = mailboxes(6);
        let emu = emulator(&addrs).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &exo_toml(&emu, ""));
        let mut req = bulk_request(&addrs);
        req.parallel = 3;
        let mut job = svc.bulk_publish(req);
        assert_eq!(job.kind(), "bulk-publish");
        let mut events = Vec::new();
        while let Some(e) = job.next_event().await {
            events.push(e);
        }
        let id = job.record_id();
        let report = job.await.unwrap();
        assert_eq!(report.published, addrs.len());
        assert_eq!(
            events.iter().map(|e| (e.done, e.total)).collect::<Vec<_>>(),
            (1..=addrs.len())
                .map(|d| (d, addrs.len()))
                .collect::<Vec<_>>()
        );
        let mut items: Vec<String> = events
            .iter()
            .map(|e| e.current_item.clone().unwrap())
            .collect();
        items.sort();
        assert_eq!(items, addrs);
        assert_eq!(events[0].what, "publish");
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["total"], addrs.len());

        let jobs = svc.jobs(10).await.unwrap();
        let rec = &jobs[0];
        assert_eq!(Some(rec.id), id);
        assert_eq!(
            (rec.kind.as_str(), rec.actor.as_str(), rec.frontend.as_str()),
            ("bulk-publish", "tester", "test")
        );
        assert_eq!(rec.outcome.as_deref(), Some("ok"));
        assert!(rec.finished.is_some_and(|f| f >= rec.started));
        let recorded: serde_json::Value = serde_json::from_str(&rec.items).unwrap();
        assert_eq!(recorded.as_array().unwrap().len(), addrs.len());
        assert_eq!(recorded[0]["status"], "published");

        // The directory audit is a job too: one event per directory, recorded.
        let mut job = svc.audit(AuditRequest {
            directory: Some("exo".into()),
            ..AuditRequest::default()
        });
        let e = job.next_event().await.unwrap();
        assert_eq!((e.what.as_str(), e.done, e.total), ("audit", 1, 1));
        assert_eq!(e.current_item.as_deref(), Some("exo"));
        let audit = job.await.unwrap();
        assert_eq!(audit.directories[0].recipients, addrs.len());
        let jobs = svc.jobs(10).await.unwrap();
        assert_eq!(jobs[0].kind, "directory-audit");
        assert!(jobs[0].outcome.as_deref().unwrap().starts_with("ok"));
    });
}

/// Issue 12 §1: a bulk request carries its list as data and reads each certificate through the
/// app's reader when its item is tried (one at a time here: never more than the items done and
/// the one in flight), so a run of 10,000 items holds no more; a file the reader lacks fails its
/// item, named as the reader names it. The reader allows one read, then one more after each
/// event the test has seen: a run that read ahead would wait for a token that never comes and
/// fail its items (events lag the run, so counting reads at an event alone would race).
#[test]
fn bulk_publish_reads_each_certificate_through_the_apps_reader_when_tried() {
    let rt = current_thread();
    rt.block_on(async {
        let addrs = mailboxes(8);
        let emu = emulator(&addrs).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &exo_toml(&emu, ""));
        let (list, mut files) = bulk_list(&addrs);
        let missing = PathBuf::from(format!("certs/{}.pem", addrs[5]));
        let (tokens, gate) = std::sync::mpsc::channel();
        let mem = Arc::get_mut(&mut files).unwrap();
        mem.files.remove(&missing);
        mem.gate = Some(std::sync::Mutex::new(gate));
        tokens.send(()).unwrap();
        let reader: Arc<dyn DeploySource> = files.clone();
        let mut job = svc.bulk_publish(BulkPublishRequest {
            directory: Some("exo".into()),
            force: true,
            ..BulkPublishRequest::new(list, reader)
        });
        let mut seen = 0;
        while let Some(e) = job.next_event().await {
            seen += 1;
            assert_eq!(e.done, seen, "{e:?}");
            let reads = files.reads.load(Ordering::SeqCst);
            assert!(reads <= e.done as u64, "{reads} read at {e:?}");
            let _ = tokens.send(());
        }
        let report = job.await.unwrap();
        assert_eq!(files.reads.load(Ordering::SeqCst), addrs.len() as u64);
        assert_eq!((report.published, report.failed), (7, 1), "{report:?}");
        let failed = &report.items[5];
        assert_eq!(failed.address, addrs[5]);
        assert_eq!(failed.certificate, Path::new("upload").join(&missing));
        let error = failed.error.as_deref().unwrap();
        assert!(
            error.starts_with(&format!("upload/{}: ", missing.display())),
            "{error}"
        );
        assert_eq!(
            report.items[0].certificate,
            Path::new("upload/certs/user00@example.org.pem")
        );
        for (i, a) in addrs.iter().enumerate() {
            let held = emu.certificates(a).await.unwrap();
            assert_eq!(held.len(), usize::from(i != 5), "{a}");
        }
    });
}

#[test]
fn a_cancelled_bulk_publish_stops_between_items_and_reports_the_rest() {
    let rt = current_thread();
    rt.block_on(async {
        let addrs = mailboxes(12);
        let emu = emulator(&addrs).await;
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &exo_toml(&emu, ""));
        let mut job = svc.bulk_publish(bulk_request(&addrs));
        let first = job.next_event().await.unwrap();
        assert_eq!((first.done, first.total), (1, addrs.len()));
        job.canceller().cancel();
        while job.next_event().await.is_some() {}
        let report = job.await.unwrap();

        let published: Vec<&str> = report
            .items
            .iter()
            .filter(|i| i.status == "published")
            .map(|i| i.address.as_str())
            .collect();
        let cancelled: Vec<&str> = report
            .items
            .iter()
            .filter(|i| i.status == "cancelled")
            .map(|i| i.address.as_str())
            .collect();
        // One item at a time: the one reported, at most the one in flight, nothing after.
        assert!((1..=2).contains(&published.len()), "{report:?}");
        assert_eq!(published.len() + cancelled.len(), addrs.len(), "{report:?}");
        assert_eq!(report.cancelled, cancelled.len());
        assert_eq!(report.failed, 0);
        assert_eq!(report.not_done, cancelled);
        for i in report.items.iter().filter(|i| i.status == "cancelled") {
            assert!(i.error.as_deref().unwrap().contains("cancelled"), "{i:?}");
            assert_eq!(i.attempts, 0);
        }
        // What the report says is what the directory holds.
        for a in &addrs {
            let held = emu.certificates(a).await.unwrap();
            assert_eq!(held.is_empty(), cancelled.contains(&a.as_str()), "{a}");
        }
        let rec = &svc.jobs(1).await.unwrap()[0];
        assert!(
            rec.outcome.as_deref().unwrap().starts_with("cancelled"),
            "{rec:?}"
        );
        let recorded: serde_json::Value = serde_json::from_str(&rec.items).unwrap();
        assert_eq!(
            recorded
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["status"] == "cancelled")
                .count(),
            cancelled.len()
        );
    });
}

#[test]
fn device_code_sign_in_is_handed_to_the_frontend() {
    let rt = current_thread();
    rt.block_on(async {
        let emu = emulator(&["alice@example.org".into()]).await;
        let dir = tempfile::tempdir().unwrap();
        let toml = exo_toml(&emu, "auth = \"device-code\"\n")
            .replace(&format!("certificate = \"{}\"\n", pki("alice.key")), "")
            .replace(
                &format!("certificate_file = \"{}\"\n", pki("alice.pem")),
                "",
            );
        let svc = service(dir.path(), &toml);
        // Nobody to show the code to: the sign-in fails at once rather than wait.
        let e = svc.login(Some("exo")).await.unwrap_err();
        assert!(e.message.contains("no frontend to show the code"), "{e}");

        let mut shown = svc.sign_in_challenges();
        let r = svc.login(Some("exo")).await.unwrap();
        let c = shown.try_recv().unwrap();
        assert_eq!(c.directory, "exo");
        assert_eq!(c.verification_uri, "https://microsoft.com/devicelogin");
        assert_eq!(c.user_code.len(), 8);
        assert!(c.message.contains(&c.user_code), "{c:?}");
        assert_eq!(r.sign_in.as_ref(), Some(&c));
        assert!(r.status.contains("device code"), "{}", r.status);
        // Signed in: later calls on this service ask nobody again.
        let tokens = count(&emu.counters.tokens);
        svc.lookup(&lookup("alice@example.org", "exo"))
            .await
            .unwrap_err();
        assert_eq!(count(&emu.counters.tokens), tokens);
        let r = svc.login(Some("exo")).await.unwrap();
        assert!(r.sign_in.is_none());
        assert!(shown.try_recv().is_err());
    });
}

/// The CLI logs on standard error only when asked (`-v`, `SMIMEKIT_LOG`, `RUST_LOG`): spans
/// per directory request and job; never a token or a password.
#[test]
fn the_cli_logs_only_when_asked_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite:{}\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n",
            dir.path().join("s.db").display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let lookup = ["lookup", "nobody@example.org", "--config", &config];
    let stderr = |args: &[&str], env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        // Whatever the test runner's environment says.
        for v in ["SMIMEKIT_LOG", "RUST_LOG"] {
            if !env.iter().any(|(k, _)| *k == v) {
                env.push((v, ""));
            }
        }
        let out = crate::common::smimekit(args, &env);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            crate::common::show("lookup", &out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Not asked: the error and nothing else.
    let quiet = stderr(&lookup, &[]);
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
    // -vv, SMIMEKIT_LOG, RUST_LOG: the directory request's span.
    let mut vv = lookup.to_vec();
    vv.push("-vv");
    for (args, env) in [
        (&vv[..], &[][..]),
        (&lookup[..], &[("SMIMEKIT_LOG", "debug")][..]),
        (&lookup[..], &[("RUST_LOG", "smimekit_service=debug")][..]),
    ] {
        let log = stderr(args, env);
        assert!(
            log.lines().any(|l| l.contains("DEBUG")
                && l.contains("directory{name=\"local\" op=\"recipient\"")
                && l.contains("nobody@example.org")),
            "{args:?} {env:?}: {log}"
        );
    }
    // A bad filter is said once, and the command still runs.
    let log = stderr(&lookup, &[("SMIMEKIT_LOG", "smimekit=loud")]);
    assert!(log.contains("SMIMEKIT_LOG: not a log filter"), "{log}");

    // Exchange Online at trace: sign-in and requests are logged, the token is not (the
    // emulator's tokens start with this JWT header).
    let rt = current_thread();
    let emu = rt.block_on(emulator(&["alice@example.org".into()]));
    let exo = dir.path().join("exo.toml");
    std::fs::write(&exo, exo_toml(&emu, "")).unwrap();
    let exo = exo.display().to_string();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            crate::common::smimekit(
                &[
                    "publish",
                    "alice@example.org",
                    "--cert",
                    &pki("alice.pem"),
                    "--directory",
                    "exo",
                    "--config",
                    &exo,
                    "-vvv",
                ],
                &[("SMIMEKIT_LOG", ""), ("RUST_LOG", "")],
            )
        });
        // The emulator runs on this runtime: drive it until the CLI is done.
        rt.block_on(async {
            while !run.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        run.join().unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        crate::common::show("publish", &out)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("signed in") && log.contains("InvokeCommand"),
        "{log}"
    );
    assert!(
        !log.contains("eyJ0eXAiOiJKV1QifQ"),
        "a token in the log: {log}"
    );
}

/// Ctrl-C during `publish --from` cancels the job: the items in flight finish, the rest are
/// reported not done (exit 5), and what the report says is what the directory holds.
#[test]
fn ctrl_c_cancels_a_cli_bulk_publish_between_items() {
    let rt = current_thread();
    let addrs = mailboxes(30);
    let emu = rt.block_on(emulator(&addrs));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite:{}\"\n\n{}",
            dir.path().join("s.db").display(),
            exo_toml(&emu, "")
        ),
    )
    .unwrap();
    let list = bulk_list_file(dir.path(), &addrs);
    let report = dir.path().join("report.json");
    let mut child = std::process::Command::new(crate::common::smimekit_bin())
        .args(["publish", "--from"])
        .arg(&list)
        .args([
            "--directory",
            "exo",
            "--force",
            "--parallel",
            "2",
            "--report",
        ])
        .arg(&report)
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = rt.block_on(async {
        // Once an item is written, the service throttles every request: the run cannot end
        // before it is interrupted (its time budget is an hour).
        let mut interrupted = false;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if !interrupted && count(&emu.counters.writes) > 0 {
                emu.throttle_from(Some(count(&emu.counters.invoke) + 1));
                let killed = std::process::Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
                interrupted = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let cancelled = r["cancelled"].as_u64().unwrap();
    assert!(cancelled > 0, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(
        r["not_done"].as_array().unwrap().len() as u64,
        cancelled,
        "{r}"
    );
    for item in r["items"].as_array().unwrap() {
        let address = item["address"].as_str().unwrap();
        let held = !rt.block_on(emu.certificates(address)).unwrap().is_empty();
        match item["status"].as_str().unwrap() {
            "published" | "unchanged" => assert!(held, "{item}"),
            // Never tried: nothing was written. Tried (its write may have been made, its
            // read-back throttled): not confirmed, so not done; re-running settles it.
            "cancelled" if item["attempts"] == 0 => assert!(!held, "{item}"),
            "cancelled" => {}
            other => panic!("{other}: {item}"),
        }
    }
    let untried = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["attempts"] == 0)
        .count();
    assert!(untried >= addrs.len() - 4, "{r}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancelled"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same command again, the service no longer throttling: everything is done.
    emu.throttle_from(None);
    let again = std::process::Command::new(crate::common::smimekit_bin())
        .args(["publish", "--from"])
        .arg(&list)
        .args(["--directory", "exo", "--force", "--report"])
        .arg(&report)
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let again = rt.block_on(async move {
        let mut again = again;
        loop {
            if let Some(status) = again.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    assert!(again.success());
    for a in &addrs {
        assert_eq!(
            rt.block_on(emu.certificates(a)).unwrap(),
            vec![der("alice.pem").as_bytes().to_vec()],
            "{a}"
        );
    }
}
