//! Exchange Online against the in-repo emulator (tests/exchange-emulator), in its strict mode
//! (the wire format the module's own schema describes) with default settings unless a test
//! says otherwise: app-only auth and its rejections (RS256 fallback, the cloud's scope),
//! the regional redirect, trust push/show, publish with merge/replace and unpublish (which
//! must remove without `@{Remove=…}`), read-back in every rendering, the byte-encoding
//! fallback, the lenient mode, external contacts, bad input, `exchange probe`, and bulk runs
//! that lose no update and duplicate none under throttling, lost answers and a spent time
//! budget.

use std::process::Output;
use std::sync::Arc;

use smimekit_core::{CertDer, Directory};
use smimekit_directory_exchange::{ExchangeDirectory, PluginKeyOpener};
use smimekit_exchange_emulator::{Emulator, EmulatorConfig};

use crate::common::{pki, show, smimekit};

pub(crate) const TENANT: &str = "contoso.onmicrosoft.com";
pub(crate) const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

pub(crate) fn der(name: &str) -> Vec<u8> {
    let pem = std::fs::read(pki(name)).unwrap();
    smimekit_pki::container::load_certificates(&pem, name).unwrap()[0]
        .as_bytes()
        .to_vec()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A running emulator (app registration certificate: alice's RSA one) and a config pointing at it.
struct Exo {
    rt: tokio::runtime::Runtime,
    emu: Emulator,
    _dir: tempfile::TempDir,
    config: String,
}

impl Exo {
    fn new(tweak: impl FnOnce(&mut EmulatorConfig)) -> Self {
        Self::with_settings(tweak, "")
    }

    fn with_settings(tweak: impl FnOnce(&mut EmulatorConfig), extra: &str) -> Self {
        let rt = runtime();
        let mut cfg = EmulatorConfig::new(TENANT, CLIENT, der("alice.pem"));
        cfg.mailboxes = vec!["alice@example.org".into(), "bob@example.org".into()];
        tweak(&mut cfg);
        let emu = rt.block_on(Emulator::start(cfg)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let text = toml_for(&emu.base_url, &emu.base_url, extra);
        std::fs::write(&config, text).unwrap();
        Self {
            rt,
            emu,
            config: config.display().to_string(),
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut a = args.to_vec();
        a.extend(["--config", &self.config]);
        // The store (what the plugin remembers per directory) is the test's own.
        let data = self._dir.path().join("data");
        smimekit(&a, &[("XDG_DATA_HOME", data.to_str().unwrap())])
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(out.status.success(), "{}", show(&format!("{args:?}"), &out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{}",
            show(&format!("{args:?}"), &out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn certs(&self, address: &str) -> Option<Vec<Vec<u8>>> {
        self.rt.block_on(self.emu.certificates(address))
    }
}

pub(crate) fn toml_for(endpoint: &str, authority: &str, extra: &str) -> String {
    format!(
        "[directory.exo]\nkind = \"exchange-online\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         certificate = \"{}\"\ncertificate_file = \"{}\"\nendpoint = \"{endpoint}\"\nauthority = \"{authority}\"\n{extra}",
        pki("alice.key"),
        pki("alice.pem")
    )
}

#[test]
fn auth_success_and_rejections() {
    let exo = Exo::new(|_| {});
    let v = exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert_eq!(v["added"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        exo.emu
            .counters
            .tokens
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // RS256 / x5t works too.
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "assertion = \"rs256\"\n",
        ),
    )
    .unwrap();
    exo.ok(&["lookup", "alice@example.org", "--directory", "exo"]);

    // An assertion signed by a key the app registration does not know.
    let key = exo._dir.path().join("other.key");
    let crt = exo._dir.path().join("other.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=other app",
            "-days",
            "30",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show("openssl req", &out));
    let other = toml_for(&exo.emu.base_url, &exo.emu.base_url, "")
        .replace(&pki("alice.key"), &key.display().to_string())
        .replace(&pki("alice.pem"), &crt.display().to_string());
    std::fs::write(&exo.config, &other).unwrap();
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("AADSTS700027"), "{e}");

    // Wrong audience: the same server under another name.
    let port = exo.emu.base_url.rsplit(':').next().unwrap();
    let alias = format!("http://localhost:{port}");
    std::fs::write(&exo.config, toml_for(&exo.emu.base_url, &alias, "")).unwrap();
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("AADSTS700212") && e.contains("audience"), "{e}");

    // No plain http to a non-loopback host.
    std::fs::write(
        &exo.config,
        toml_for("http://exchange.example.com", &exo.emu.base_url, ""),
    )
    .unwrap();
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("loopback"), "{e}");
}

#[test]
fn trust_push_and_show_round_trip() {
    let exo = Exo::new(|_| {});
    let v = exo.ok(&[
        "trust",
        "push",
        &pki("root.pem"),
        &pki("intermediate.pem"),
        "--directory",
        "exo",
    ]);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2, "{v}");
    let blob = exo.rt.block_on(exo.emu.issuing_ca()).unwrap();
    let stored = smimekit_pki::sst::read_sst_certificates(&blob).unwrap();
    assert_eq!(stored[0].as_bytes(), der("root.pem").as_slice());
    let v = exo.ok(&["trust", "show", "--directory", "exo"]);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2, "{v}");
    // An end-entity certificate is refused before anything is sent.
    let e = exo.fail(&["trust", "push", &pki("alice.pem"), "--directory", "exo"]);
    assert!(e.contains("not a CA certificate"), "{e}");
}

#[test]
fn oversized_or_expired_trust_store_is_refused_before_sending() {
    let root = CertDer::new(der("root.pem"));
    let many: Vec<CertDer> = (0..120).map(|_| root.clone()).collect();
    let e = smimekit_directory_exchange::check_trust_chain(&many, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("70000") && e.contains("SSTFileSizeExceedLimit"),
        "{e}"
    );
    // 2046: the fixtures expire on 2045-01-01.
    let e = smimekit_directory_exchange::check_trust_chain(&[root], 2_398_291_200)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn publish_merge_replace_with_read_back() {
    let exo = Exo::new(|_| {});
    let alice = der("alice.pem");
    let bob = der("bob.pem");
    exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    // Merge: bob's certificate (forced) joins alice's.
    let v = exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--directory",
        "exo",
    ]);
    assert_eq!(v["kept"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![alice.clone(), bob.clone()]
    );
    // Idempotent: publishing again changes nothing.
    let v = exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(v["added"].as_array().unwrap().is_empty(), "{v}");
    // Replace keeps only the new one.
    let v = exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--replace",
        "--directory",
        "exo",
    ]);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(exo.certs("alice@example.org").unwrap(), vec![alice.clone()]);
    // lookup decodes and shows thumbprints.
    let v = exo.ok(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert_eq!(v["kind"], "mailbox");
    assert_eq!(v["certificates"].as_array().unwrap().len(), 1);
    // unpublish removes exactly that value.
    exo.ok(&[
        "unpublish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(exo.certs("alice@example.org").unwrap().is_empty());
}

#[test]
fn protocol_switches_and_partial_json() {
    let exo = Exo::with_settings(
        |_| {},
        "[directory.exo.protocol]\nbyte_encoding = \"int-array\"\nannotate = false\n",
    );
    exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("alice.pem")]
    );
    // Partial serialization cannot show the bytes: a clear error naming the switch.
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "[directory.exo.protocol]\nserialization_level = \"Partial\"\nresponse_format = \"json\"\n",
        ),
    )
    .unwrap();
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("serialization_level"), "{e}");
}

#[test]
fn contacts_are_created_once_and_reused() {
    let exo = Exo::new(|c| {
        c.contacts = vec![
            ("carol".into(), "carol@elsewhere.example".into()),
            ("erin@example.org".into(), "someone@else.example".into()),
        ]
    });
    let v = exo.ok(&[
        "publish",
        "dave@partner.example",
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--contact",
        "--directory",
        "exo",
    ]);
    assert_eq!(v["kind"], "contact", "{v}");
    assert_eq!(
        exo.rt
            .block_on(exo.emu.contact_name("dave@partner.example"))
            .as_deref(),
        Some("dave@partner.example")
    );
    assert_eq!(v["created_contact"], "dave@partner.example", "{v}");
    // Reuse: no second New-MailContact (which would fail on the name).
    let v = exo.ok(&[
        "publish",
        "dave@partner.example",
        "--cert",
        &pki("alice.pem"),
        "--force",
        "--contact",
        "--directory",
        "exo",
    ]);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2, "{v}");
    // The identity resolves, by Name, to another object: refused, nothing written.
    let e = exo.fail(&[
        "publish",
        "erin@example.org",
        "--cert",
        &pki("carol.pem"),
        "--force",
        "--contact",
        "--directory",
        "exo",
    ]);
    assert!(e.contains("someone@else.example"), "{e}");
    assert!(exo.certs("someone@else.example").unwrap().is_empty());
    // New-MailContact refuses a Name already used: a clear error naming the setting.
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "contact_name = \"{local}\"\n",
        ),
    )
    .unwrap();
    let e = exo.fail(&[
        "publish",
        "carol@example.org",
        "--cert",
        &pki("carol.pem"),
        "--contact",
        "--directory",
        "exo",
    ]);
    assert!(
        e.contains("already being used") && e.contains("contact_name"),
        "{e}"
    );
    assert!(exo.certs("carol@example.org").is_none());
    // The name the plugin gave is the one reported.
    let v = exo.ok(&[
        "publish",
        "frank@partner.example",
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--contact",
        "--directory",
        "exo",
    ]);
    assert_eq!(v["created_contact"], "frank", "{v}");
    assert_eq!(
        exo.rt
            .block_on(exo.emu.contact_name("frank@partner.example"))
            .as_deref(),
        Some("frank")
    );
}

#[test]
fn bad_input_is_reported() {
    let exo = Exo::new(|_| {});
    let e = exo.fail(&[
        "publish",
        "nobody@example.org",
        "--cert",
        &pki("alice.pem"),
        "--force",
        "--directory",
        "exo",
    ]);
    assert!(
        e.contains("nobody@example.org") && e.contains("no such recipient"),
        "{e}"
    );
    let e = exo.fail(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(e.contains("--force"), "{e}");
    assert!(exo.certs("bob@example.org").unwrap().is_empty());
    exo.ok(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("alice.pem"),
        "--force",
        "--directory",
        "exo",
    ]);
    let e = exo.fail(&["lookup", "nobody@example.org", "--directory", "exo"]);
    assert!(e.contains("no certificate published"), "{e}");
}

fn open_directory(base: &str) -> ExchangeDirectory {
    smimekit_builtins::link();
    let text = toml_for(base, base, "concurrency = 3\npage_size = 100\n").replacen(
        "[directory.exo]\n",
        "",
        1,
    );
    ExchangeDirectory::open("exo", &text, Arc::new(PluginKeyOpener)).unwrap()
}

/// [`open_directory`] with more settings.
fn open_directory_with(base: &str, extra: &str) -> ExchangeDirectory {
    smimekit_builtins::link();
    let text = toml_for(
        base,
        base,
        &format!("concurrency = 3\npage_size = 100\n{extra}"),
    )
    .replacen("[directory.exo]\n", "", 1);
    ExchangeDirectory::open("exo", &text, Arc::new(PluginKeyOpener)).unwrap()
}

/// Paging (issue 16 §4): a `@odata.nextLink` to another origin is not followed, so the bearer
/// token goes nowhere else (here: another port of the same loopback host), and a service that
/// never stops paging is stopped at `max_pages`.
#[test]
fn paging_follows_next_links_only_to_the_same_origin_and_stops() {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let foreign = format!("http://127.0.0.1:{}", trap.local_addr().unwrap().port());
    let exo = Exo::new(|c| {
        c.mailboxes = mailboxes(250);
        c.next_link_base = Some(foreign.clone());
    });
    let dir = open_directory(&exo.emu.base_url);
    let e = exo.rt.block_on(dir.recipients()).unwrap_err().to_string();
    assert!(e.contains(&foreign) && e.contains("not followed"), "{e}");
    assert!(trap.accept().is_err(), "the token was sent to {foreign}");
    // The same listing without the foreign link: all three pages are read.
    let exo = Exo::new(|c| c.mailboxes = mailboxes(250));
    let dir = open_directory(&exo.emu.base_url);
    assert_eq!(exo.rt.block_on(dir.recipients()).unwrap().len(), 250);

    // Endless paging: refused after max_pages pages of each listing.
    let exo = Exo::new(|c| {
        c.mailboxes = mailboxes(3);
        c.endless_pages = true;
    });
    let dir = open_directory_with(&exo.emu.base_url, "max_pages = 5\n");
    let e = exo.rt.block_on(dir.recipients()).unwrap_err().to_string();
    assert!(e.contains("more than 5 pages"), "{e}");
    // Get-Mailbox and Get-MailContact list: at most 5 requests each.
    assert!(counter(&exo.emu.counters.invoke) <= 10);
}

/// `n` seeded mailbox addresses.
fn mailboxes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:04}@example.org")).collect()
}

/// A bulk list giving each address alice's certificate (published with `--force`).
fn bulk_list(exo: &Exo, addrs: &[String]) -> String {
    let csv = exo._dir.path().join("list.csv");
    let mut text = String::from("address,certificate\n");
    for a in addrs {
        text.push_str(&format!("{a},{}\n", pki("alice.pem")));
    }
    std::fs::write(&csv, text).unwrap();
    csv.display().to_string()
}

/// `publish --from LIST --force --report R` plus `extra`: the process output and the report.
fn bulk(exo: &Exo, list: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let report = exo._dir.path().join("report.json");
    let _ = std::fs::remove_file(&report);
    let report = report.display().to_string();
    let mut args = vec![
        "publish",
        "--from",
        list,
        "--directory",
        "exo",
        "--force",
        "--report",
        &report,
    ];
    args.extend(extra);
    let out = exo.run(&args);
    let Ok(bytes) = std::fs::read(&report) else {
        panic!("no report: {}", show("bulk", &out));
    };
    (out, serde_json::from_slice(&bytes).unwrap())
}

/// The addresses of a report's items with this status.
fn with_status(r: &serde_json::Value, status: &str) -> Vec<String> {
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == status)
        .map(|i| i["address"].as_str().unwrap().to_string())
        .collect()
}

/// Every item of the report is done: published, or (an item tried again after the directory
/// was busy, whose earlier try did the write) found already there.
fn assert_all_done(r: &serde_json::Value, n: usize) {
    assert_eq!(r["failed"].as_u64(), Some(0), "{r}");
    assert_eq!(
        with_status(r, "published").len() + with_status(r, "unchanged").len(),
        n,
        "{r}"
    );
    for i in r["items"].as_array().unwrap() {
        if i["status"] == "unchanged" {
            assert!(i["attempts"].as_u64().unwrap() >= 2, "{i}");
        }
    }
}

/// Every address holds alice's certificate, exactly once.
fn assert_published_once(exo: &Exo, addrs: &[String]) {
    for a in addrs {
        assert_eq!(exo.certs(a).unwrap(), vec![der("alice.pem")], "{a}");
    }
}

fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// The README's bulk run against a service that throttles every 7th request: every update
/// arrives, once, however the requests and the 429s interleave (an item whose request runs
/// out of retries goes back to the queue).
#[test]
fn bulk_under_throttling_loses_no_update() {
    let addrs = mailboxes(1000);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        c.throttle_every = 7;
        c.retry_after = "0.01".into();
        c.duplicate_adds = true;
    });
    let list = bulk_list(&exo, &addrs);
    let (out, r) = bulk(&exo, &list, &[]);
    assert!(out.status.success(), "{}", show("bulk", &out));
    assert_all_done(&r, 1000);
    assert!(counter(&exo.emu.counters.throttled) > 100);
    assert_published_once(&exo, &addrs);
    // Idempotent re-run: no writes at all.
    let writes = counter(&exo.emu.counters.writes);
    let (out, r) = bulk(&exo, &list, &[]);
    assert!(out.status.success(), "{}", show("re-run", &out));
    assert_eq!(
        r["unchanged"].as_u64(),
        Some(1000),
        "{}",
        show("re-run", &out)
    );
    assert_eq!(counter(&exo.emu.counters.writes), writes);
    // recipients() pages through everything.
    let dir = open_directory(&exo.emu.base_url);
    assert_eq!(exo.rt.block_on(dir.recipients()).unwrap().len(), 1000);
}

/// 429s to 100 requests in a row: more than the items in flight (8, one request each) can
/// spend without one of them running out of its 9 tries, and that item must still be
/// published, once.
#[test]
fn bulk_outlasts_a_throttling_burst_longer_than_the_retries() {
    let addrs = mailboxes(30);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        c.throttle_burst = Some((10, 100));
        c.retry_after = "0.01".into();
        c.duplicate_adds = true;
    });
    let list = bulk_list(&exo, &addrs);
    let (out, r) = bulk(&exo, &list, &[]);
    assert!(out.status.success(), "{}", show("bulk", &out));
    assert_all_done(&r, 30);
    // Some item went back to the queue.
    assert!(r["requeued"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(counter(&exo.emu.counters.throttled), 100);
    assert_published_once(&exo, &addrs);
}

/// A service that throttles for good: the run stops when its time budget is spent, names
/// every item not done (summary, report, exit 5), and a re-run once the throttling ends
/// finishes exactly those.
#[test]
fn bulk_time_budget_names_items_not_done_and_a_rerun_finishes_them() {
    let addrs = mailboxes(20);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        // Each item takes 3 requests: some items get done before the throttling starts.
        c.throttle_from = Some(31);
        c.retry_after = "0.05".into();
        c.duplicate_adds = true;
    });
    let list = bulk_list(&exo, &addrs);
    let (out, r) = bulk(&exo, &list, &["--time-budget", "1s"]);
    assert_eq!(out.status.code(), Some(5), "{}", show("bulk", &out));
    let done = with_status(&r, "published");
    let not_done: Vec<String> = r["not_done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(!done.is_empty() && !not_done.is_empty(), "{r}");
    assert_eq!(not_done, with_status(&r, "failed"), "{r}");
    assert_eq!(done.len() + not_done.len(), addrs.len(), "{r}");
    assert_eq!(
        r["out_of_time"].as_u64(),
        Some(not_done.len() as u64),
        "{r}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for a in &not_done {
        assert!(stdout.contains(a.as_str()), "{a} not named:\n{stdout}");
    }
    for i in r["items"].as_array().unwrap() {
        if i["status"] == "failed" {
            assert_eq!(i["out_of_time"], true, "{i}");
            assert!(i["error"].as_str().unwrap().contains("time budget"), "{i}");
        }
    }
    for a in &done {
        assert_eq!(exo.certs(a).unwrap(), vec![der("alice.pem")], "{a}");
    }

    // The throttling ends: the same command finishes the items not done, and only those.
    exo.emu.throttle_from(None);
    let writes = counter(&exo.emu.counters.writes);
    let (out, r) = bulk(&exo, &list, &[]);
    assert!(out.status.success(), "{}", show("re-run", &out));
    assert_eq!(r["failed"].as_u64(), Some(0), "{r}");
    let published = with_status(&r, "published");
    assert!(published.iter().all(|a| not_done.contains(a)), "{r}");
    for a in &done {
        assert!(
            with_status(&r, "unchanged").contains(a),
            "{a} written again: {r}"
        );
    }
    assert_eq!(
        counter(&exo.emu.counters.writes) - writes,
        published.len() as u64
    );
    assert_published_once(&exo, &addrs);
}

/// A write applied whose answer is lost (504) is not sent again blindly: the item is read
/// again later, so no certificate is ever stored twice.
#[test]
fn bulk_never_duplicates_a_certificate_when_a_write_answer_is_lost() {
    let addrs = mailboxes(12);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        c.lose_write_answer_every = 3;
        c.duplicate_adds = true;
    });
    let list = bulk_list(&exo, &addrs);
    let (out, r) = bulk(&exo, &list, &[]);
    assert!(out.status.success(), "{}", show("bulk", &out));
    assert_all_done(&r, 12);
    assert!(counter(&exo.emu.counters.lost_answers) >= 4);
    assert_eq!(counter(&exo.emu.counters.writes), 12);
    assert_published_once(&exo, &addrs);
}

/// Every `FromBase64String('…')` literal of a script, decoded.
fn embedded(script: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    script
        .split("FromBase64String('")
        .skip(1)
        .map(|rest| {
            let b64 = rest.split('\'').next().unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        })
        .collect()
}

#[test]
fn emit_powershell_embeds_the_right_bytes_and_sends_nothing() {
    let exo = Exo::with_settings(|_| {}, "contact_name = \"{local} ({domain})\"\n");
    let ps1 = exo._dir.path().join("publish.ps1");
    let v = exo.ok(&[
        "publish",
        "dave@partner.example",
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--contact",
        "--directory",
        "exo",
        "--emit-powershell",
        &ps1.display().to_string(),
    ]);
    assert_eq!(v["operations"].as_array().unwrap().len(), 1, "{v}");
    let script = std::fs::read_to_string(&ps1).unwrap();
    assert_eq!(embedded(&script), vec![der("bob.pem")]);
    for needle in [
        "#Requires -Version 7",
        "New-MailContact -Name $i.ContactName",
        "'dave (partner.example)'",
        "Set-MailContact -Identity $i.Address -UserCertificate $value",
        "[void]$value.Add($i.Certificate)",
        "read-back: left over",
        "missing [",
    ] {
        assert!(script.contains(needle), "{needle} missing:\n{script}");
    }
    // Never @{Remove=…}: the full list is set.
    assert!(!script.contains("Remove ="), "{script}");
    assert!(!script.contains("@{ Add ="), "{script}");
    // The trust store: the SST decodes to root + intermediate.
    let trust = exo._dir.path().join("trust.ps1");
    exo.ok(&[
        "trust",
        "push",
        &pki("root.pem"),
        &pki("intermediate.pem"),
        "--directory",
        "exo",
        "--emit-powershell",
        &trust.display().to_string(),
    ]);
    let script = std::fs::read_to_string(&trust).unwrap();
    let blobs = embedded(&script);
    let certs = smimekit_pki::sst::read_sst_certificates(&blobs[0]).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1].as_bytes(), der("intermediate.pem").as_slice());
    assert!(script.contains("Set-SmimeConfig -SMIMECertificateIssuingCA $sst"));
    // Nothing went to the emulator.
    assert_eq!(
        exo.emu
            .counters
            .invoke
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Bulk emission: one entry per item.
    let csv = exo._dir.path().join("list.csv");
    std::fs::write(
        &csv,
        format!(
            "address,certificate\nalice@example.org,{}\nbob@example.org,{}\n",
            pki("alice.pem"),
            pki("bob.pem")
        ),
    )
    .unwrap();
    let bulk = exo._dir.path().join("bulk.ps1");
    exo.ok(&[
        "publish",
        "--from",
        &csv.display().to_string(),
        "--directory",
        "exo",
        "--emit-powershell",
        &bulk.display().to_string(),
    ]);
    let script = std::fs::read_to_string(&bulk).unwrap();
    assert_eq!(embedded(&script), vec![der("alice.pem"), der("bob.pem")]);
}

/// Issue 16 §4: no address or name can end the literal it is written in. PowerShell ends a
/// single-quoted string on `'` and on U+2018–U+201B; the script holds none of them outside
/// its own literals, and every hostile value is base64 decoded by the script.
#[test]
fn emit_powershell_is_safe_for_hostile_addresses() {
    use base64::Engine as _;
    let exo = Exo::with_settings(|_| {}, "contact_name = \"{local} ({domain})\"\n");
    for hostile in [
        "o'brien@partner.example",
        "x\u{2019};Remove-Item~-Recurse~/;\u{2018}@partner.example",
        "a\u{201B}+$(Invoke-Expression~calc)+\u{201A}@partner.example",
        "q\"`$env:PATH\"@partner.example",
    ] {
        let ps1 = exo._dir.path().join("hostile.ps1");
        exo.ok(&[
            "publish",
            hostile,
            "--cert",
            &pki("bob.pem"),
            "--force",
            "--contact",
            "--directory",
            "exo",
            "--emit-powershell",
            &ps1.display().to_string(),
        ]);
        let script = std::fs::read_to_string(&ps1).unwrap();
        assert!(
            !script.contains(['\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}']),
            "{script}"
        );
        let local = hostile.split('@').next().unwrap();
        assert!(
            !script.contains(local),
            "{hostile} appears as such:\n{script}"
        );
        // The item: address and contact name are decoded from base64 to the exact values.
        let item = script
            .lines()
            .find(|l| l.trim_start().starts_with("@{ Op = 'add'"))
            .unwrap();
        let decoded: Vec<String> = item
            .split("(ConvertFrom-SmimekitText '")
            .skip(1)
            .map(|rest| {
                let b64 = rest.split('\'').next().unwrap();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            })
            .collect();
        assert_eq!(
            decoded,
            [hostile.to_string(), format!("{local} (partner.example)")],
            "{item}"
        );
        // Outside the decoder's literals, the only quotes are the script's own: each item
        // line's single quotes pair up.
        assert_eq!(item.matches('\'').count() % 2, 0, "{item}");
        assert_eq!(embedded(&script), vec![der("bob.pem")]);
    }
}

#[test]
fn bulk_publish_cli_with_report_and_idempotent_rerun() {
    let exo = Exo::new(|c| {
        c.throttle_every = 5;
        c.retry_after = "0.01".into();
    });
    let certs = exo._dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(pki("alice.pem"), certs.join("alice@example.org.pem")).unwrap();
    std::fs::copy(pki("bob.pem"), certs.join("bob@example.org.pem")).unwrap();
    std::fs::copy(pki("carol.pem"), certs.join("carol@example.org.pem")).unwrap();
    let report = exo._dir.path().join("report.json");
    let out = exo.run(&[
        "publish",
        "--from",
        &certs.display().to_string(),
        "--directory",
        "exo",
        "--report",
        &report.display().to_string(),
    ]);
    // carol has no mailbox: reported, the others published.
    assert_eq!(out.status.code(), Some(4), "{}", show("bulk", &out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (r["published"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let failed = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "failed")
        .unwrap();
    assert_eq!(failed["address"], "carol@example.org");
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("alice.pem")]
    );
    // Re-run with --contact: alice and bob unchanged, carol becomes a contact.
    let v = exo.ok(&[
        "publish",
        "--from",
        &certs.display().to_string(),
        "--directory",
        "exo",
        "--contact",
    ]);
    assert_eq!(
        (
            v["unchanged"].as_u64(),
            v["published"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{v}"
    );
    let v = exo.ok(&[
        "publish",
        "--from",
        &certs.display().to_string(),
        "--directory",
        "exo",
        "--contact",
    ]);
    assert_eq!(v["unchanged"].as_u64(), Some(3), "{v}");
}

#[test]
fn exchange_config_show_set_and_lint() {
    let exo = Exo::new(|_| {});
    let out = exo.run(&["exchange", "config", "show", "--directory", "exo"]);
    assert!(out.status.success(), "{}", show("show", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHA-1"), "default 8004 is linted: {err}");
    let v = exo.ok(&[
        "exchange",
        "config",
        "set",
        "OWASigningAlgorithms=800C",
        "owaincludecertificatechainwithoutrootcertificate=true",
        "--directory",
        "exo",
    ]);
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    let e = exo.fail(&[
        "exchange",
        "config",
        "set",
        "OWABogus=1",
        "--directory",
        "exo",
    ]);
    assert!(e.contains("unknown S/MIME setting"), "{e}");
    let e = exo.fail(&[
        "exchange",
        "config",
        "set",
        "OWAAlwaysSign=maybe",
        "--directory",
        "exo",
    ]);
    assert!(e.contains("true or false"), "{e}");
}

#[test]
fn device_code_login() {
    let exo = Exo::new(|_| {});
    let text = toml_for(
        &exo.emu.base_url,
        &exo.emu.base_url,
        "auth = \"device-code\"\n",
    )
    .replace(&format!("certificate = \"{}\"\n", pki("alice.key")), "")
    .replace(
        &format!("certificate_file = \"{}\"\n", pki("alice.pem")),
        "",
    );
    std::fs::write(&exo.config, text).unwrap();
    let out = exo.run(&["login", "--directory", "exo"]);
    assert!(out.status.success(), "{}", show("login", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("microsoft.com/devicelogin") && err.contains("enter the code"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("device code"));
    // App-only without a certificate is a configuration error.
    std::fs::write(
        &exo.config,
        toml_for(&exo.emu.base_url, &exo.emu.base_url, "")
            .replace(&format!("certificate = \"{}\"\n", pki("alice.key")), ""),
    )
    .unwrap();
    let e = exo.fail(&["login", "--directory", "exo"]);
    assert!(
        e.contains("certificate") && e.contains("device-code"),
        "{e}"
    );
}

/// The app credential as a password-protected .p12: its password follows the order of every
/// other secret (README "Secrets"). Before, without `certificate_password_env` it was never
/// asked for, and a missing one said only "PKCS#12 password".
#[test]
fn app_credential_password_follows_the_secret_order() {
    let exo = Exo::new(|_| {});
    let p12 = pki("alice.p12");
    let config_with = |extra: &str| {
        let text = toml_for(&exo.emu.base_url, &exo.emu.base_url, extra).replace(
            &format!(
                "certificate = \"{}\"\ncertificate_file = \"{}\"\n",
                pki("alice.key"),
                pki("alice.pem")
            ),
            &format!("certificate = \"{p12}\"\n"),
        );
        assert!(text.contains(&p12), "{text}");
        std::fs::write(&exo.config, text).unwrap();
    };
    let publish = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["publish", "alice@example.org", "--cert"];
        let cert = pki("alice.pem");
        a.push(&cert);
        a.extend(["--directory", "exo", "--config", &exo.config]);
        a.extend_from_slice(extra);
        smimekit(&a, env)
    };
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right.pw");
    std::fs::write(&right, "test\n").unwrap();
    let wrong = dir.path().join("wrong.pw");
    std::fs::write(&wrong, "nope\n").unwrap();
    let (right, wrong) = (right.display().to_string(), wrong.display().to_string());

    config_with("");
    // SMIMEKIT_PASSWORD.
    let out = publish(&[], &[("SMIMEKIT_PASSWORD", "test")]);
    assert!(out.status.success(), "{}", show("SMIMEKIT_PASSWORD", &out));
    // --password-file, before SMIMEKIT_PASSWORD.
    let out = publish(
        &["--password-file", &right],
        &[("SMIMEKIT_PASSWORD", "nope")],
    );
    assert!(out.status.success(), "{}", show("--password-file", &out));
    // Nothing: exit 4, naming the file, the directory and every source tried, in order.
    let out = publish(&[], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", show("nothing", &out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&format!(
            "PKCS#12 password for {p12} (directory exo): not found in --password-file, SMIMEKIT_PASSWORD; no terminal to prompt on"
        )),
        "{e}"
    );
    // Wrong: says so, names the file, the directory and the source, never the password.
    let out = publish(&[], &[("SMIMEKIT_PASSWORD", "hunter2")]);
    assert_eq!(out.status.code(), Some(4), "{}", show("wrong", &out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&format!("wrong password or PIN for {p12} (directory exo)"))
            && e.contains("it came from SMIMEKIT_PASSWORD")
            && !e.contains("hunter2"),
        "{e}"
    );

    // certificate_password_env comes first; when its variable is unset, the others follow.
    config_with("certificate_password_env = \"SMIMEKIT_TEST_EXO_APP_PW\"\n");
    let out = publish(
        &["--password-file", &wrong],
        &[
            ("SMIMEKIT_TEST_EXO_APP_PW", "test"),
            ("SMIMEKIT_PASSWORD", "nope"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        show("certificate_password_env", &out)
    );
    let out = publish(&["--password-file", &right], &[]);
    assert!(out.status.success(), "{}", show("unset variable", &out));
    let out = publish(&[], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", show("nothing", &out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&format!(
            "PKCS#12 password for {p12} (directory exo): not found in certificate_password_env (SMIMEKIT_TEST_EXO_APP_PW), --password-file, SMIMEKIT_PASSWORD; no terminal to prompt on"
        )),
        "{e}"
    );

    // The terminal, last.
    let cert = pki("alice.pem");
    let out = crate::secrets::smimekit_on_terminal(
        &[
            "publish",
            "alice@example.org",
            "--cert",
            &cert,
            "--directory",
            "exo",
            "--config",
            &exo.config,
        ],
        "test",
    );
    assert!(out.status.success(), "{}", show("prompt", &out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("PKCS#12 password for {p12} (directory exo):")),
        "{}",
        show("prompt", &out)
    );
}

/// `--replace`, `--prune-expired` and `unpublish` really remove in strict mode, where
/// `@{Remove=…}` of a byte array does nothing: the full list is set, and no Remove is ever sent.
#[test]
fn replace_and_unpublish_remove_in_strict_mode() {
    let exo = Exo::new(|_| {});
    let (alice, bob) = (der("alice.pem"), der("bob.pem"));
    let publish = |cert: &str, extra: &[&str]| {
        let mut a = vec![
            "publish",
            "alice@example.org",
            "--cert",
            cert,
            "--force",
            "--directory",
            "exo",
        ];
        a.extend_from_slice(extra);
        exo.ok(&a)
    };
    publish(&pki("alice.pem"), &[]);
    publish(&pki("bob.pem"), &[]);
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![alice.clone(), bob.clone()]
    );
    let v = publish(&pki("alice.pem"), &["--replace"]);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(exo.certs("alice@example.org").unwrap(), vec![alice.clone()]);
    // --prune-expired drops the expired one (published with --force), keeps the valid one.
    let old = crate::directory::expired_alice(exo._dir.path());
    publish(&old, &[]);
    assert_eq!(exo.certs("alice@example.org").unwrap().len(), 2);
    let v = publish(&pki("alice.pem"), &["--prune-expired"]);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(exo.certs("alice@example.org").unwrap(), vec![alice.clone()]);
    publish(&pki("bob.pem"), &[]);
    exo.ok(&[
        "unpublish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert_eq!(exo.certs("alice@example.org").unwrap(), vec![bob.clone()]);
    exo.ok(&[
        "unpublish",
        "alice@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "exo",
    ]);
    assert!(exo.certs("alice@example.org").unwrap().is_empty());
    let c = &exo.emu.counters;
    assert_eq!(counter(&c.ignored_removes), 0, "a Remove was sent");
    assert_eq!(
        counter(&c.refused_encodings),
        0,
        "the default encoding was refused"
    );
    assert!(counter(&c.clixml) > 0, "reads are CLIXML by default");
}

/// The old emulator's behaviour (lenient mode) still works with the default settings: the
/// annotation it refuses is dropped once, and said so.
#[test]
fn lenient_mode_works_with_default_settings() {
    let exo = Exo::new(|c| c.strict = false);
    exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    // A full list carries the annotation beside it, which this emulator takes for a parameter.
    let out = exo.run(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--replace",
        "--directory",
        "exo",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "note: directory exo: Set-Mailbox refused int-array + UserCertificate@odata.type"
        ),
        "{err}"
    );
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("bob.pem")]
    );
    exo.ok(&[
        "unpublish",
        "alice@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "exo",
    ]);
    assert!(exo.certs("alice@example.org").unwrap().is_empty());
    assert_eq!(counter(&exo.emu.counters.clixml), 0);
}

/// A tenant that takes only base64: one refused request, then base64 for the rest of the
/// process (a bulk run of 20 refuses at most one per item in flight), said once; the
/// encoding is remembered in the store, so a second process pays no refusal.
#[test]
fn the_other_byte_encoding_is_tried_once_and_remembered() {
    let addrs = mailboxes(20);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        c.base64_only = true;
    });
    let out = exo.run(&[
        "publish",
        &addrs[0],
        "--cert",
        &pki("alice.pem"),
        "--force",
        "--directory",
        "exo",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    assert_eq!(counter(&exo.emu.counters.refused_encodings), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused int-array") && err.contains("sent base64"),
        "{err}"
    );
    // A second process: base64 from the store, no refusal, nothing to say.
    let list = bulk_list(&exo, &addrs[1..]);
    let (out, r) = bulk(&exo, &list, &["--parallel", "4"]);
    assert!(out.status.success(), "{}", show("bulk", &out));
    assert_all_done(&r, 19);
    assert_eq!(counter(&exo.emu.counters.refused_encodings), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("note: ").count(), 0, "{err}");
    assert_published_once(&exo, &addrs);
    // A pinned encoding is not second-guessed: the refusal is the error.
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "[directory.exo.protocol]\nbyte_encoding = \"int-array\"\n",
        ),
    )
    .unwrap();
    let e = exo.fail(&[
        "publish",
        &addrs[0],
        "--cert",
        &pki("bob.pem"),
        "--force",
        "--directory",
        "exo",
    ]);
    assert!(e.contains("'StartArray' node was expected"), "{e}");
}

/// Without a remembered encoding, a bulk run of 20 in parallel on a base64-only tenant
/// refuses at most one request per item in flight, and says so once.
#[test]
fn a_parallel_run_pays_at_most_one_refusal_per_item_in_flight() {
    let addrs = mailboxes(20);
    let exo = Exo::new(|c| {
        c.mailboxes = addrs.clone();
        c.base64_only = true;
    });
    let list = bulk_list(&exo, &addrs);
    let (out, r) = bulk(&exo, &list, &["--parallel", "4"]);
    assert!(out.status.success(), "{}", show("bulk", &out));
    assert_all_done(&r, 20);
    let refused = counter(&exo.emu.counters.refused_encodings);
    assert!((1..=4).contains(&refused), "{refused}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("note: ").count(), 1, "{err}");
    assert_published_once(&exo, &addrs);
}

/// A service where `@{Add=…}` does nothing: the read-back shows it, the full list is set.
#[test]
fn an_add_the_read_back_does_not_prove_falls_back_to_the_full_list() {
    let exo = Exo::new(|c| c.ignore_adds = true);
    let out = exo.run(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writing full lists"), "{err}");
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("alice.pem")]
    );
}

/// Full JSON read in each form bytes may take: base64, {"Data": [..]}, integer arrays.
#[test]
fn every_json_rendering_of_bytes_is_read() {
    use smimekit_exchange_emulator::JsonBytes;
    for form in [JsonBytes::Base64, JsonBytes::DataInts, JsonBytes::Ints] {
        let exo = Exo::with_settings(
            |c| c.json_bytes = Some(form),
            "[directory.exo.protocol]\nresponse_format = \"json\"\n",
        );
        exo.ok(&[
            "publish",
            "alice@example.org",
            "--cert",
            &pki("alice.pem"),
            "--directory",
            "exo",
        ]);
        let v = exo.ok(&["lookup", "alice@example.org", "--directory", "exo"]);
        assert_eq!(
            v["certificates"].as_array().unwrap().len(),
            1,
            "{form:?}: {v}"
        );
        assert_eq!(counter(&exo.emu.counters.clixml), 0);
    }
}

/// The token scope follows the cloud; a tenant refusing PS256 gets RS256 + x5t once, said so.
#[test]
fn cloud_scope_and_rs256_fallback() {
    let exo = Exo::new(|c| {
        c.scope = "https://outlook.office365.us/.default".into();
        c.reject_ps256 = true;
    });
    // The commercial scope is refused by this (GCC High) token endpoint.
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("AADSTS70011"), "{e}");
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "cloud = \"gcc-high\"\n",
        ),
    )
    .unwrap();
    let out = exo.run(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused the PS256 client assertion") && err.contains("RS256 + x5t"),
        "{err}"
    );
    // PS256 pinned: no second try, the refusal is the error.
    std::fs::write(
        &exo.config,
        toml_for(
            &exo.emu.base_url,
            &exo.emu.base_url,
            "cloud = \"gcc-high\"\nassertion = \"ps256\"\n",
        ),
    )
    .unwrap();
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains("AADSTS700027") && !e.contains("RS256"), "{e}");
}

/// The front door's 302 to a regional host is followed; a redirect elsewhere is refused and
/// the token never leaves.
#[test]
fn regional_redirect_is_followed_and_never_elsewhere() {
    let exo = Exo::new(|c| c.regional = true);
    let out = exo.run(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    assert!(out.status.success(), "{}", show("publish", &out));
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("alice.pem")]
    );
    let c = &exo.emu.counters;
    assert!(counter(&c.redirects) >= 1);
    assert_eq!(counter(&c.regional_invoke), counter(&c.invoke));
    // The probe says where the tenant is served.
    let v = exo.ok(&["exchange", "probe", "--directory", "exo"]);
    let regional = exo.emu.regional_url.clone().unwrap();
    assert!(
        v["checks"][1]["detail"]
            .as_str()
            .unwrap()
            .contains(&regional),
        "{v}"
    );

    // A Location on another host: refused before anything is sent there.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    let elsewhere = format!("http://localhost:{port}/AdminApi/v1.0/{TENANT}/EXOModuleFile");
    let exo = Exo::new(|c| c.redirect_to = Some(elsewhere.clone()));
    let e = exo.fail(&["lookup", "alice@example.org", "--directory", "exo"]);
    assert!(e.contains(&elsewhere) && e.contains("not followed"), "{e}");
    assert!(trap.accept().is_err(), "something connected to the trap");
}

/// The service's own refusals of a trust store (oversized, expired) reach the admin.
#[test]
fn trust_store_refusals_of_the_service_are_reported() {
    let exo = Exo::new(|c| c.max_sst_bytes = 1000);
    let e = exo.fail(&[
        "trust",
        "push",
        &pki("root.pem"),
        &pki("intermediate.pem"),
        "--directory",
        "exo",
    ]);
    assert!(e.contains("SSTFileSizeExceedLimit"), "{e}");
    // 2046: the fixtures expire on 2045-01-01.
    let exo = Exo::new(|c| c.smime_now = Some(2_398_291_200));
    let e = exo.fail(&["trust", "push", &pki("root.pem"), "--directory", "exo"]);
    let root = smimekit_pki::certinfo::parse(&CertDer::new(der("root.pem"))).unwrap();
    assert!(
        e.contains("expired") && e.contains(&root.sha1_thumbprint),
        "{e}"
    );
    assert!(exo.rt.block_on(exo.emu.issuing_ca()).is_none());
}

/// `exchange probe`: what an admin runs first against a real tenant. Read-only: the -WhatIf
/// writes change nothing.
#[test]
fn probe_reports_what_the_tenant_accepts() {
    let exo = Exo::new(|_| {});
    exo.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "exo",
    ]);
    let writes = counter(&exo.emu.counters.writes);
    let v = exo.ok(&[
        "exchange",
        "probe",
        "--directory",
        "exo",
        "--address",
        "alice@example.org",
    ]);
    let status = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no check {name}: {v}"))
    };
    for (name, want) in [
        ("sign-in", "passed"),
        ("route", "passed"),
        ("cmdlets", "passed"),
        ("read clixml", "passed"),
        ("read json", "passed"),
        ("renderings agree", "passed"),
        ("write int-array + UserCertificate@odata.type", "passed"),
        ("write int-array", "passed"),
        ("write base64 + UserCertificate@odata.type", "warning"),
        ("write base64", "warning"),
    ] {
        assert_eq!(status(name), want, "{name}: {v}");
    }
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["suggestions"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(counter(&exo.emu.counters.writes), writes);
    assert_eq!(counter(&exo.emu.counters.whatif), 2);
    assert_eq!(
        exo.certs("alice@example.org").unwrap(),
        vec![der("alice.pem")]
    );

    // An app whose role lacks a cmdlet: named, exit 4.
    let exo = Exo::new(|c| c.exported_cmdlets.retain(|n| n != "Set-SmimeConfig"));
    let out = exo.run(&["exchange", "probe", "--directory", "exo"]);
    assert_eq!(out.status.code(), Some(4), "{}", show("probe", &out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lacks Set-SmimeConfig"), "{text}");
    assert!(text.contains("holds no certificate"), "{text}");
}
