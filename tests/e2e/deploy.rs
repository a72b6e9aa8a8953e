//! Deploy by plan and apply (issue 13) through the CLI, against real directories started here:
//! the local directory, the Exchange Online emulator with throttling on, and slapd in both
//! flavours (OpenLDAP `inetOrgPerson`, and Active Directory's `user`/`contact` on the AD-like
//! schema). The first apply from empty reaches every directory once and a second plan has
//! nothing to do; a saved plan goes stale when a directory changes behind it; certificates
//! smimekit did not publish survive unless the admin names the person; expired managed
//! certificates and people removed from the file go, and only what smimekit published;
//! the smimekit CA issues, delivers and rolls over; `kill -9` at many points of a 300-person
//! apply and a re-run converge with one contact per external person; the apply lock refuses a
//! second run and `--force-unlock` frees it; a bad deploy file is exit 2 with file, line and
//! cause and writes nothing; `status` fails when someone is not ready or expiring.
//!
//! The CLI has no clock override for plan/apply, so the test certificates are made relative to
//! the real clock: issued in-process by the test CA's own key through the project's CA
//! encoder (`smimekit_pki::ca`), which also makes an already expired one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smimekit_core::{CertDer, KeyStore as _, PrivateKey};
use smimekit_exchange_emulator::{Emulator, EmulatorConfig};
use smimekit_pki::ca as pkica;
use smimekit_pki::certinfo;

use crate::common::{p, show, smimekit, smimekit_bin};
use crate::exchange::{CLIENT, TENANT, der, runtime, toml_for};
use crate::ldap::slapd::{ADMIN, BASE, Options, Slapd};

const DAY: i64 = 86_400;
/// The password of the test CA's keys (and of nothing else here).
const CA_PASSWORD: &str = "test";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn thumb(c: &CertDer) -> String {
    certinfo::parse(c).unwrap().sha1_thumbprint
}

fn thumb_der(der: &[u8]) -> String {
    thumb(&CertDer::new(der.to_vec()))
}

/// The project's CA (`smimekit ca init`), and leaf certificates with any validity signed by its
/// issuing key in-process (the CLI issues from now only, and never an expired certificate).
struct TestCa {
    rt: tokio::runtime::Runtime,
    key: Arc<dyn PrivateKey>,
    issuer: pkica::IssuerParts,
    root: CertDer,
    issuing: CertDer,
    /// Every leaf gets this public key (a directory test needs no private key for them).
    spki: Vec<u8>,
    primitives: &'static dyn smimekit_core::engine::Primitives,
}

impl TestCa {
    fn init(world: &Path, config: &str) -> Self {
        let dir = world.join("ca");
        let out = smimekit(
            &[
                "ca",
                "init",
                "--dir",
                &p(&dir),
                "--key-type",
                "p256",
                "--name",
                "Deploy Test",
                "--config",
                config,
            ],
            &[
                ("SMIMEKIT_PASSWORD", CA_PASSWORD),
                ("XDG_DATA_HOME", &p(&world.join("data"))),
            ],
        );
        assert!(out.status.success(), "{}", show("ca init", &out));
        smimekit_builtins::link();
        let engine = (smimekit_core::plugin::engines()
            .next()
            .expect("a crypto engine is registered")
            .engine)();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p12 = dir.join("issuing.p12");
        let store = smimekit_keystore_file::FileKeyStore::open_file(
            &smimekit_core::plugin::KeyStoreParams {
                reference: &p(&p12),
                certificate: None,
            },
        )
        .unwrap();
        let key = rt.block_on(async {
            store
                .unlock(smimekit_core::Secret::from(CA_PASSWORD))
                .await
                .unwrap();
            store.open(None).await.unwrap()
        });
        let read = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            smimekit_pki::load_certificates(&bytes, name).unwrap()[0].clone()
        };
        let (root, issuing) = (read("root.pem"), read("issuing.pem"));
        let issuer = pkica::issuer_parts(issuing.as_bytes()).unwrap();
        let spki = pkica::issuer_parts(&der("alice.pem")).unwrap().spki;
        Self {
            rt,
            key,
            issuer,
            root,
            issuing,
            spki,
            primitives: engine.primitives,
        }
    }

    /// A leaf for `address` valid from `not_before` to `not_after` (Unix seconds).
    fn leaf(&self, address: &str, not_before: i64, not_after: i64) -> CertDer {
        let serial = pkica::random_serial(self.primitives).unwrap();
        let subject = pkica::Name::new().common_name(address).to_der();
        let (scheme, alg) = pkica::signature_algorithm(self.key.kind()).unwrap();
        let tbs = pkica::build_tbs(&pkica::TbsRequest {
            serial: &serial,
            signature_algorithm: &alg,
            issuer: &self.issuer.subject,
            subject: &subject,
            spki: &self.spki,
            issuer_key_id: &self.issuer.key_id,
            not_before,
            not_after,
            profile: pkica::CaProfile::Leaf {
                email: address.to_string(),
                crl_url: None,
            },
        })
        .unwrap();
        let signed = self
            .rt
            .block_on(pkica::sign_tbs(
                &tbs,
                scheme,
                &alg,
                self.key.as_ref(),
                self.primitives,
            ))
            .unwrap();
        CertDer::new(signed)
    }

    /// A leaf valid from an hour ago for 200 days.
    fn valid(&self, address: &str) -> CertDer {
        let now = unix_now();
        self.leaf(address, now - 3600, now + 200 * DAY)
    }

    /// A leaf that ended a month ago.
    fn expired(&self, address: &str) -> CertDer {
        let now = unix_now();
        self.leaf(address, now - 400 * DAY, now - 30 * DAY)
    }

    fn chain_thumbs(&self) -> BTreeSet<String> {
        [thumb(&self.root), thumb(&self.issuing)].into()
    }
}

/// The local directory as a test reads it.
#[derive(Debug, PartialEq, Eq)]
struct Local {
    /// Address (lower case) → (kind, thumbprints).
    people: BTreeMap<String, (String, Vec<String>)>,
    /// The trust chain's thumbprints.
    trust: BTreeSet<String>,
}

/// Which directories a test runs against (always the local one).
#[derive(Default)]
struct Setup {
    /// The Exchange Online emulator, answering 429 to every K-th request.
    exo_throttle_every: Option<u64>,
    /// slapd with the OpenLDAP flavour, as directory `corp`.
    openldap: bool,
    /// slapd with the AD-like schema and the active-directory flavour, as directory `ad`.
    ad: bool,
    /// Mailboxes that exist in the emulator and in slapd (directories create only contacts).
    mailboxes: Vec<String>,
}

/// A test's world: a folder with the config, the store, the CA, certificates and deploy file,
/// and the directories it names, running.
struct World {
    dir: tempfile::TempDir,
    config: String,
    store: PathBuf,
    ca: TestCa,
    rt: tokio::runtime::Runtime,
    emu: Option<Emulator>,
    /// Kept running until the test ends.
    _ldap: Vec<Slapd>,
}

impl World {
    fn new(setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.db");
        let config_path = dir.path().join("config.toml");
        let chain = dir.path().join("ca/chain.pem");
        let mut cfg = format!(
            "[store]\nurl = \"sqlite:{}\"\n\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n\n",
            p(&store)
        );
        let rt = runtime();
        let emu = setup.exo_throttle_every.map(|every| {
            let mut c = EmulatorConfig::new(TENANT, CLIENT, der("alice.pem"));
            c.mailboxes = setup.mailboxes.clone();
            c.throttle_every = every;
            let emu = rt.block_on(Emulator::start(c)).unwrap();
            cfg.push_str(&toml_for(&emu.base_url, &emu.base_url, ""));
            cfg.push('\n');
            emu
        });
        let mut ldap = Vec::new();
        if setup.openldap {
            let seed: String = setup
                .mailboxes
                .iter()
                .map(|a| {
                    let uid = a.split('@').next().unwrap();
                    format!(
                        "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n\
                         cn: {uid}\nsn: Deploy\nmail: {a}\n\n"
                    )
                })
                .collect();
            let s = Slapd::start(&Options {
                seed,
                ..Options::default()
            });
            cfg.push_str(&format!(
                "[directory.corp]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\n\
                 password_file = \"{}\"\nchain_file = \"{}\"\nallow_cleartext_bind = true\ncontacts_dn = \"ou=contacts,{BASE}\"\n\n",
                s.url(),
                p(&s.password_file()),
                p(&chain)
            ));
            ldap.push(s);
        }
        if setup.ad {
            let seed: String = setup
                .mailboxes
                .iter()
                .map(|a| {
                    let cn = a.split('@').next().unwrap();
                    format!(
                        "dn: CN={cn},cn=Users,{BASE}\nobjectClass: user\ncn: {cn}\nsn: Deploy\n\
                         mail: {a}\nproxyAddresses: SMTP:{a}\n\n"
                    )
                })
                .collect();
            let s = Slapd::start(&Options {
                ad_schema: true,
                seed,
                ..Options::default()
            });
            cfg.push_str(&format!(
                "[directory.ad]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\n\
                 password_file = \"{}\"\nchain_file = \"{}\"\nallow_cleartext_bind = true\nflavor = \"active-directory\"\n\
                 certificate_attribute = \"userCertificate;binary\"\ncontacts_dn = \"cn=Contacts,{BASE}\"\n\n",
                s.url(),
                p(&s.password_file()),
                p(&chain)
            ));
            ldap.push(s);
        }
        std::fs::write(&config_path, cfg).unwrap();
        let config = p(&config_path);
        let ca = TestCa::init(dir.path(), &config);
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        Self {
            dir,
            config,
            store,
            ca,
            rt,
            emu,
            _ldap: ldap,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("XDG_DATA_HOME", p(&self.path("data"))),
            ("SMIMEKIT_PASSWORD", CA_PASSWORD.to_string()),
        ]
    }

    /// Runs smimekit with this world's config (and the CA password for issuing).
    fn run(&self, args: &[&str]) -> Output {
        let mut a = args.to_vec();
        a.extend(["--config", &self.config]);
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        smimekit(&a, &env)
    }

    /// The same as [`World::run`], as a command to spawn.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(smimekit_bin());
        cmd.args(args)
            .args(["--config", &self.config])
            .env_remove("SMIMEKIT_PASSWORD")
            .current_dir(self.dir.path());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{}", show(&format!("{args:?}"), &out));
        out
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
    }

    /// Runs and asserts the exit code.
    fn code(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            show(&format!("{args:?}"), &out)
        );
        out
    }

    /// Writes a certificate file (PEM) in the world's folder; returns its path relative to it.
    fn write_cert(&self, name: &str, cert: &CertDer) -> String {
        let rel = format!("certs/{name}");
        std::fs::write(
            self.path(&rel),
            smimekit_pki::write_pem(std::slice::from_ref(cert)),
        )
        .unwrap();
        rel
    }

    /// A valid certificate for `address` in `certs/ADDRESS.pem` (the folder form).
    fn person_cert(&self, address: &str) -> CertDer {
        let c = self.ca.valid(address);
        self.write_cert(&format!("{address}.pem"), &c);
        c
    }

    fn deploy(&self, toml: &str) -> String {
        let f = self.path("deploy.toml");
        std::fs::write(&f, toml).unwrap();
        p(&f)
    }

    /// `(kind, thumbprints)` an address has in a directory, as `lookup` reads it; `None` when
    /// nothing is published there.
    fn lookup(&self, directory: &str, address: &str) -> Option<(String, Vec<String>)> {
        let out = self.run(&["lookup", address, "--directory", directory, "--json"]);
        match out.status.code() {
            Some(0) => {}
            Some(4) => return None,
            _ => panic!(
                "{}",
                show(&format!("lookup {address} in {directory}"), &out)
            ),
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let t = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha1_thumbprint"].as_str().unwrap().to_string())
            .collect();
        Some((v["kind"].as_str().unwrap().to_string(), t))
    }

    /// The thumbprints the emulator stores for an address (`None`: no such recipient).
    fn exo_certs(&self, address: &str) -> Option<Vec<String>> {
        let emu = self.emu.as_ref().unwrap();
        self.rt
            .block_on(emu.certificates(address))
            .map(|certs| certs.iter().map(|c| thumb_der(c)).collect())
    }

    fn exo_contacts(&self) -> Vec<String> {
        let emu = self.emu.as_ref().unwrap();
        self.rt
            .block_on(emu.recipients())
            .into_iter()
            .filter(|(_, contact)| *contact)
            .map(|(a, _)| a)
            .collect()
    }

    fn exo_contacts_created(&self) -> u64 {
        let emu = self.emu.as_ref().unwrap();
        emu.counters
            .contacts_created
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The thumbprints of the trust chain the emulator keeps (Set-SmimeConfig's SST).
    fn exo_trust(&self) -> BTreeSet<String> {
        let emu = self.emu.as_ref().unwrap();
        match self.rt.block_on(emu.issuing_ca()) {
            None => BTreeSet::new(),
            Some(sst) => smimekit_pki::sst::read_sst_certificates(&sst)
                .unwrap()
                .iter()
                .map(thumb)
                .collect(),
        }
    }

    /// The local directory as `directory export` writes it: address → (kind, thumbprints),
    /// and the trust chain's thumbprints.
    fn local(&self) -> Local {
        let out = self.ok(&["directory", "export", "--directory", "local"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let b64 = |s: &serde_json::Value| {
            use base64::Engine as _;
            thumb_der(
                &base64::engine::general_purpose::STANDARD
                    .decode(s.as_str().unwrap())
                    .unwrap(),
            )
        };
        let people = v["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["address"].as_str().unwrap().to_ascii_lowercase(),
                    (
                        r["kind"].as_str().unwrap().to_string(),
                        r["certificates"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(b64)
                            .collect(),
                    ),
                )
            })
            .collect();
        let trust = v["trust_chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(b64)
            .collect();
        Local { people, trust }
    }

    /// A count from the store, read-only (WAL: readable while an apply writes); 0 before the
    /// first command made it.
    fn count(&self, sql: &str) -> i64 {
        rusqlite::Connection::open_with_flags(
            &self.store,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|db| db.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
    }

    fn audit_rows(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM audit_log")
    }

    /// The emulator's writes and every directory as this test reads them, to prove that a
    /// refused command changed nothing.
    fn snapshot(&self, addresses: &[&str]) -> String {
        let mut s = format!("{:?}\n", self.local());
        if let Some(emu) = &self.emu {
            s.push_str(&format!(
                "exo writes {}\n",
                emu.counters
                    .writes
                    .load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        for a in addresses {
            for d in ["corp", "ad"] {
                if self.config_has(d) {
                    s.push_str(&format!("{d} {a} {:?}\n", self.lookup(d, a)));
                }
            }
        }
        s
    }

    fn config_has(&self, directory: &str) -> bool {
        std::fs::read_to_string(&self.config)
            .unwrap()
            .contains(&format!("[directory.{directory}]"))
    }
}

fn person(address: &str, kind: &str, certificates: &str) -> String {
    format!(
        "\n[[people]]\naddress = \"{address}\"\nkind = \"{kind}\"\ncertificates = [{certificates}]\n"
    )
}

/// The report's steps by status.
fn steps(report: &serde_json::Value, status: &str) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| {
            format!(
                "{}: {}",
                s["directory"].as_str().unwrap(),
                s["target"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn first_apply_reaches_every_directory_once_and_a_second_plan_has_nothing_to_do() {
    let mailboxes = vec!["alice@example.org".to_string(), "bob@example.org".into()];
    let contacts = ["dave@partner.example", "erin@partner.example"];
    let w = World::new(Setup {
        exo_throttle_every: Some(3),
        openldap: true,
        ad: true,
        mailboxes: mailboxes.clone(),
    });
    let mut toml = String::from(
        "directories = [\"local\", \"exo\", \"corp\", \"ad\"]\n\n[trust]\nca = \"ca\"\n",
    );
    let mut want: BTreeMap<String, (String, String)> = BTreeMap::new();
    for a in &mailboxes {
        let c = w.person_cert(a);
        toml.push_str(&person(a, "mailbox", "\"certs\""));
        want.insert(a.clone(), ("mailbox".into(), thumb(&c)));
    }
    for a in contacts {
        let c = w.person_cert(a);
        toml.push_str(&person(a, "contact", &format!("\"certs/{a}.pem\"")));
        want.insert(a.to_string(), ("contact".into(), thumb(&c)));
    }
    let file = w.deploy(&toml);

    // The plan: everything to do, shown by subject, serial, not-after and SHA-1; nothing written.
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 2);
    let plan = text(&out.stdout);
    assert!(
        plan.contains(
            "Plan: 16 to add, 0 to remove, 8 contacts to create, 0 to renew, 0 unmanaged kept, \
             2 trust chains to update."
        ),
        "{plan}"
    );
    for (a, (_, t)) in &want {
        assert!(plan.contains(&format!("SHA-1 {t})")), "{a}: {plan}");
    }
    assert!(
        plan.contains("directory corp\n  trust chain: ")
            && plan.contains("(this directory keeps no trust chain)"),
        "{plan}"
    );
    assert!(!plan.contains("MII"), "no base64 in a plan: {plan}");
    assert_eq!(w.exo_certs("alice@example.org"), Some(vec![]));
    assert!(w.exo_contacts().is_empty());
    assert_eq!(w.audit_rows(), 0);

    // Apply from empty.
    let report = w.ok_json(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["not_attempted"], 0, "{report}");
    assert_eq!(
        report["done"].as_u64().unwrap() + report["unchanged"].as_u64().unwrap(),
        18,
        "16 people steps and 2 trust chains (a step requeued after a throttled read-back \
         finds its write done: unchanged): {report}"
    );
    let emu = w.emu.as_ref().unwrap();
    assert!(
        emu.counters
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the emulator throttled"
    );

    // Every person's certificate is in every directory exactly once, with the right kind.
    let Local {
        people: local,
        trust: local_trust,
    } = w.local();
    for (a, (kind, t)) in &want {
        assert_eq!(
            local.get(a),
            Some(&(kind.clone(), vec![t.clone()])),
            "local {a}"
        );
        assert_eq!(w.exo_certs(a), Some(vec![t.clone()]), "exo {a}");
        for d in ["corp", "ad"] {
            assert_eq!(
                w.lookup(d, a),
                Some((kind.clone(), vec![t.clone()])),
                "{d} {a}"
            );
        }
    }
    // One contact per external person, created once.
    assert_eq!(w.exo_contacts(), contacts.to_vec());
    assert_eq!(w.exo_contacts_created(), 2);
    // The trust chain where a directory keeps one.
    assert_eq!(local_trust, w.ca.chain_thumbs());
    assert_eq!(w.exo_trust(), w.ca.chain_thumbs());

    // Nothing left to do.
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
    assert!(
        text(&out.stdout).contains("No changes: nothing to do"),
        "{}",
        text(&out.stdout)
    );
    let v = w.ok_json(&["plan", "--file", &file]);
    assert_eq!(v["summary"]["unchanged"], 16, "{v}");
    // Every change is in the audit log, whose chain is intact.
    assert!(w.audit_rows() >= 18, "{}", w.audit_rows());
    w.ok(&["audit", "verify"]);

    // status: everyone ready in every directory, nothing expiring.
    let out = w.code(&["status", "--file", &file], 0);
    assert!(
        text(&out.stdout).contains("16 people: 16 ready, 0 not ready, 0 expiring"),
        "{}",
        text(&out.stdout)
    );
    let v = w.ok_json(&["status", "--file", &file]);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 16, "{v}");
    assert!(entries.iter().all(|e| e["ready"] == true), "{v}");
    // Within 300 days everyone's (200-day) certificate is expiring: exit 1.
    let v = w.run(&[
        "status",
        "--file",
        &file,
        "--expiring-days",
        "300",
        "--json",
    ]);
    assert_eq!(v.status.code(), Some(1), "{}", show("status", &v));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["expiring"], 16, "{v}");
}

#[test]
fn a_saved_plan_goes_stale_and_unmanaged_certificates_survive_unless_named() {
    let mailboxes = vec!["alice@example.org".to_string(), "bob@example.org".into()];
    let w = World::new(Setup {
        exo_throttle_every: Some(4),
        mailboxes: mailboxes.clone(),
        ..Setup::default()
    });
    let alice = w.person_cert("alice@example.org");
    let bob = w.person_cert("bob@example.org");
    let head = |unmanaged: &str| {
        format!(
            "directories = [\"local\", \"exo\"]\n\n[trust]\nca = \"ca\"\n\n[policy]\nunmanaged = \"{unmanaged}\"\n"
        )
    };
    let alice_only = head("keep") + &person("alice@example.org", "mailbox", "\"certs\"");
    let file = w.deploy(&alice_only);
    w.ok_json(&["apply", "--file", &file, "--auto-approve"]);

    // Bob joins the file; the plan is saved.
    let both = alice_only.clone() + &person("bob@example.org", "mailbox", "\"certs\"");
    w.deploy(&both);
    let saved = w.path("plan.json");
    w.code(
        &[
            "plan",
            "--file",
            &file,
            "--out",
            &p(&saved),
            "--detailed-exitcode",
        ],
        2,
    );
    // Someone publishes another certificate for bob in Exchange, out of band.
    let other = w.ca.valid("bob@example.org");
    let other_file = w.write_cert("bob-outlook.pem", &other);
    w.ok(&[
        "publish",
        "bob@example.org",
        "--cert",
        &p(&w.path(&other_file)),
        "--directory",
        "exo",
    ]);
    let before = w.snapshot(&[]);
    // The saved plan is refused, naming the directory and the address, and changes nothing.
    let out = w.code(&["apply", &p(&saved), "--auto-approve"], 4);
    let e = text(&out.stderr);
    assert!(
        e.contains("stale") && e.contains("exo") && e.contains("bob@example.org"),
        "{e}"
    );
    assert!(
        !e.contains("alice@example.org"),
        "only what changed is named: {e}"
    );
    assert_eq!(w.snapshot(&[]), before);
    assert_eq!(w.lookup("local", "bob@example.org"), None);
    assert_eq!(w.exo_certs("bob@example.org"), Some(vec![thumb(&other)]));

    // Planning again and applying: bob gets his certificate beside the unmanaged one.
    let report = w.ok_json(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(report["failed"], 0, "{report}");
    let mut both_bob = vec![thumb(&other), thumb(&bob)];
    both_bob.sort();
    let sorted = |v: Option<Vec<String>>| {
        v.map(|mut v| {
            v.sort();
            v
        })
    };
    assert_eq!(
        sorted(w.exo_certs("bob@example.org")),
        Some(both_bob.clone())
    );
    assert_eq!(
        w.lookup("local", "bob@example.org").map(|x| x.1),
        Some(vec![thumb(&bob)])
    );
    // An unmanaged certificate for alice in the local directory, too.
    let alice_other = w.ca.valid("alice@example.org");
    let alice_other_file = w.write_cert("alice-autoenrolled.pem", &alice_other);
    w.ok(&[
        "publish",
        "alice@example.org",
        "--cert",
        &p(&w.path(&alice_other_file)),
        "--directory",
        "local",
    ]);
    // They survive every apply; with "keep" they are not even listed.
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
    let plan = text(&out.stdout);
    assert!(plan.contains("2 unmanaged kept"), "{plan}");
    assert!(
        !plan.contains("! unmanaged"),
        "listed only with \"report\": {plan}"
    );
    w.ok(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(sorted(w.exo_certs("bob@example.org")), Some(both_bob));
    let mut both_alice = vec![thumb(&alice), thumb(&alice_other)];
    both_alice.sort();
    assert_eq!(
        sorted(w.lookup("local", "alice@example.org").map(|x| x.1)),
        Some(both_alice.clone())
    );
    // Replacing needs `unmanaged = "report"`.
    let out = w.code(
        &[
            "plan",
            "--file",
            &file,
            "--replace-unmanaged",
            "bob@example.org",
        ],
        2,
    );
    assert!(
        text(&out.stderr).contains("report"),
        "{}",
        text(&out.stderr)
    );

    // With "report" they are listed and kept...
    let report_file = head("report")
        + &person("alice@example.org", "mailbox", "\"certs\"")
        + &person("bob@example.org", "mailbox", "\"certs\"");
    w.deploy(&report_file);
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
    let plan = text(&out.stdout);
    for t in [thumb(&other), thumb(&alice_other)] {
        assert!(
            plan.lines()
                .any(|l| l.contains("! unmanaged") && l.contains(&t)),
            "{t}: {plan}"
        );
    }
    assert!(plan.contains("2 unmanaged kept"), "{plan}");
    w.ok(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(
        sorted(w.lookup("local", "alice@example.org").map(|x| x.1)),
        Some(both_alice.clone())
    );
    // ...until the admin names the person: bob's goes, alice's stays.
    let out = w.code(
        &[
            "plan",
            "--file",
            &file,
            "--replace-unmanaged",
            "bob@example.org",
            "--detailed-exitcode",
        ],
        2,
    );
    assert!(
        text(&out.stdout).contains("unmanaged, replaced on request"),
        "{}",
        text(&out.stdout)
    );
    let report = w.ok_json(&[
        "apply",
        "--file",
        &file,
        "--replace-unmanaged",
        "bob@example.org",
        "--auto-approve",
    ]);
    assert_eq!(
        [steps(&report, "done"), steps(&report, "unchanged")].concat(),
        vec!["exo: bob@example.org"],
        "{report}"
    );
    assert_eq!(w.exo_certs("bob@example.org"), Some(vec![thumb(&bob)]));
    assert_eq!(
        sorted(w.lookup("local", "alice@example.org").map(|x| x.1)),
        Some(both_alice)
    );
    w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
}

#[test]
fn expired_managed_certificates_go_and_a_departed_person_loses_only_what_smimekit_published() {
    let mailboxes = vec![
        "alice@example.org".to_string(),
        "bob@example.org".into(),
        "carol@example.org".into(),
    ];
    let w = World::new(Setup {
        openldap: true,
        mailboxes: mailboxes.clone(),
        ..Setup::default()
    });
    let alice = w.person_cert("alice@example.org");
    let alice_old = w.ca.expired("alice@example.org");
    let alice_old_file = w.write_cert("alice-old.pem", &alice_old);
    let bob_old = w.ca.expired("bob@example.org");
    let bob_old_file = w.write_cert("bob-old.pem", &bob_old);
    let carol = w.person_cert("carol@example.org");
    let policy = |remove_expired: bool| {
        format!(
            "directories = [\"local\", \"corp\"]\n\n[policy]\nremove_expired = {remove_expired}\n"
        )
    };
    let alice_entry = person(
        "alice@example.org",
        "mailbox",
        &format!("\"certs\", \"{alice_old_file}\""),
    );
    let bob_entry = person("bob@example.org", "mailbox", &format!("\"{bob_old_file}\""));
    let carol_entry = person("carol@example.org", "mailbox", "\"certs\"");
    // Kept while expired: smimekit publishes the expired ones too, and owns them.
    let file = w.deploy(&(policy(false) + &alice_entry + &bob_entry + &carol_entry));
    let report = w.ok_json(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(report["failed"], 0, "{report}");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for d in ["local", "corp"] {
        assert_eq!(
            w.lookup(d, "alice@example.org").map(|x| sorted(x.1)),
            Some(sorted(vec![thumb(&alice), thumb(&alice_old)])),
            "{d}"
        );
        assert_eq!(
            w.lookup(d, "bob@example.org").map(|x| x.1),
            Some(vec![thumb(&bob_old)]),
            "{d}"
        );
    }
    // Bob holds only an expired certificate: not ready, and status says so (exit 1).
    let out = w.code(&["status", "--file", &file, "--json"], 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_ready: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ready"] == false)
        .map(|e| {
            (
                e["directory"].as_str().unwrap(),
                e["address"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        not_ready,
        vec![("local", "bob@example.org"), ("corp", "bob@example.org")],
        "{v}"
    );
    // A new reminder the first time, recorded: not new again the same day (still exit 1).
    let new_reminders = |v: &serde_json::Value| -> Vec<bool> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ready"] == false)
            .map(|e| e["new_reminder"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(new_reminders(&v), vec![true, true], "{v}");
    let out = w.code(&["status", "--file", &file], 1);
    assert!(
        text(&out.stdout).contains("local: bob@example.org: not ready")
            && text(&out.stdout).contains("(reminded today)"),
        "{}",
        text(&out.stdout)
    );
    let out = w.code(&["status", "--file", &file, "--json"], 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(new_reminders(&v), vec![false, false], "{v}");

    // Someone else publishes a certificate for carol in both directories.
    let carol_other = w.ca.valid("carol@example.org");
    let carol_other_file = p(&w.path(&w.write_cert("carol-other.pem", &carol_other)));
    for d in ["local", "corp"] {
        w.ok(&[
            "publish",
            "carol@example.org",
            "--cert",
            &carol_other_file,
            "--directory",
            d,
        ]);
    }
    // remove_expired, and carol leaves the file.
    w.deploy(&(policy(true) + &alice_entry + &bob_entry));
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 2);
    let plan = text(&out.stdout);
    assert!(
        plan.contains("carol@example.org (mailbox, no longer in the deploy file)")
            && plan.contains("(no longer in the deploy file)\n")
            && plan.contains(&format!("SHA-1 {}) (expired)", thumb(&alice_old))),
        "{plan}"
    );
    assert!(plan.contains("0 to add, 6 to remove"), "{plan}");
    let report = w.ok_json(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(report["failed"], 0, "{report}");
    for d in ["local", "corp"] {
        assert_eq!(
            w.lookup(d, "alice@example.org").map(|x| x.1),
            Some(vec![thumb(&alice)]),
            "{d}: the expired one went"
        );
        assert_eq!(
            w.lookup(d, "bob@example.org"),
            None,
            "{d}: bob's only (expired) certificate went"
        );
        assert_eq!(
            w.lookup(d, "carol@example.org").map(|x| x.1),
            Some(vec![thumb(&carol_other)]),
            "{d}: carol keeps what smimekit did not publish (not {})",
            thumb(&carol)
        );
    }
    w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
}

#[test]
fn renewal_with_the_smimekit_ca_issues_delivers_and_rolls_over() {
    let nina = "nina@example.org";
    let w = World::new(Setup {
        exo_throttle_every: Some(5),
        mailboxes: vec![nina.to_string()],
        ..Setup::default()
    });
    let deliver = w.path("keys");
    let file_with = |renew_before_days: u32| {
        w.deploy(&format!(
            "directories = [\"local\", \"exo\"]\n\n[trust]\nca = \"ca\"\n\n[policy]\n\
             renew_before_days = {renew_before_days}\nremove_superseded_after_days = 0\n\n\
             [[people]]\naddress = \"{nina}\"\nkind = \"mailbox\"\nissue = \"ca\"\n"
        ))
    };
    let file = file_with(30);
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 2);
    assert!(
        text(&out.stdout).contains(&format!("issue a certificate for {nina} with CA")),
        "{}",
        text(&out.stdout)
    );
    // Issuing needs somewhere to deliver the key.
    let report = w.run(&["apply", "--file", &file, "--auto-approve", "--json"]);
    assert_eq!(report.status.code(), Some(5), "{}", show("apply", &report));
    assert!(
        text(&report.stdout).contains("nowhere to deliver"),
        "{}",
        show("apply", &report)
    );

    // Issue, deliver, publish.
    let report = w.ok_json(&[
        "apply",
        "--file",
        &file,
        "--auto-approve",
        "--deliver",
        &p(&deliver),
    ]);
    assert_eq!(report["failed"], 0, "{report}");
    let first = delivered(&deliver, nina);
    assert_eq!(w.exo_certs(nina), Some(vec![first.thumbprint.clone()]));
    assert_eq!(
        w.lookup("local", nina).map(|x| x.1),
        Some(vec![first.thumbprint.clone()])
    );
    w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
    // A year's certificate is expiring within 400 days: status exit 1; within 30: fine.
    w.code(&["status", "--file", &file, "--expiring-days", "400"], 1);
    w.code(&["status", "--file", &file], 0);

    // renew_before_days beyond the remaining validity: a successor with a new key, published
    // beside the old one (kept for its grace), delivered.
    let file = file_with(400);
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 2);
    assert!(
        text(&out.stdout).contains(&format!("renew {nina} with CA"))
            && text(&out.stdout).contains(&first.thumbprint),
        "{}",
        text(&out.stdout)
    );
    w.ok_json(&[
        "apply",
        "--file",
        &file,
        "--auto-approve",
        "--deliver",
        &p(&deliver),
    ]);
    let second = delivered(&deliver, nina);
    assert_ne!(second.thumbprint, first.thumbprint);
    assert_ne!(
        second.public_key, first.public_key,
        "a renewal has a new key"
    );
    let mut both = vec![first.thumbprint.clone(), second.thumbprint.clone()];
    both.sort();
    let sorted = |v: Option<Vec<String>>| {
        v.map(|mut v| {
            v.sort();
            v
        })
    };
    assert_eq!(sorted(w.exo_certs(nina)), Some(both.clone()));
    assert_eq!(sorted(w.lookup("local", nina).map(|x| x.1)), Some(both));

    // remove_superseded_after_days = 0: the next apply removes the old one.
    let file = file_with(30);
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 2);
    assert!(
        text(&out.stdout).contains(&format!("SHA-1 {}) (superseded)", first.thumbprint)),
        "{}",
        text(&out.stdout)
    );
    w.ok_json(&[
        "apply",
        "--file",
        &file,
        "--auto-approve",
        "--deliver",
        &p(&deliver),
    ]);
    assert_eq!(w.exo_certs(nina), Some(vec![second.thumbprint.clone()]));
    assert_eq!(
        w.lookup("local", nina).map(|x| x.1),
        Some(vec![second.thumbprint.clone()])
    );
    // The delivered key is still the successor's (no further issue).
    assert_eq!(delivered(&deliver, nina).thumbprint, second.thumbprint);
    w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
}

/// What `--deliver DIR` holds for an address, checked: both files 0600, the password opens
/// the PKCS#12 (with openssl), which holds the key of the certificate.
struct Delivered {
    thumbprint: String,
    public_key: String,
}

fn delivered(dir: &Path, address: &str) -> Delivered {
    use std::os::unix::fs::PermissionsExt as _;
    let p12 = dir.join(format!("{address}.p12"));
    let pass = dir.join(format!("{address}.p12.pass"));
    for f in [&p12, &pass] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let passin = format!("file:{}", p(&pass));
    let certs = crate::common::openssl_ok(&[
        "pkcs12",
        "-in",
        &p(&p12),
        "-passin",
        &passin,
        "-nokeys",
        "-clcerts",
    ]);
    let cert = smimekit_pki::load_certificates(&certs.stdout, "delivered").unwrap();
    assert_eq!(cert.len(), 1);
    let key = crate::common::openssl_ok(&[
        "pkcs12",
        "-in",
        &p(&p12),
        "-passin",
        &passin,
        "-nocerts",
        "-nodes",
    ]);
    let key_file = dir.join("key.tmp.pem");
    std::fs::write(&key_file, &key.stdout).unwrap();
    let from_key = crate::common::openssl_ok(&["pkey", "-in", &p(&key_file), "-pubout"]);
    std::fs::remove_file(&key_file).unwrap();
    let cert_file = dir.join("cert.tmp.pem");
    std::fs::write(&cert_file, &certs.stdout).unwrap();
    let from_cert =
        crate::common::openssl_ok(&["x509", "-in", &p(&cert_file), "-noout", "-pubkey"]);
    std::fs::remove_file(&cert_file).unwrap();
    assert_eq!(
        text(&from_key.stdout),
        text(&from_cert.stdout),
        "the key is the certificate's"
    );
    Delivered {
        thumbprint: thumb(&cert[0]),
        public_key: text(&from_key.stdout),
    }
}

#[test]
fn a_bad_deploy_file_is_exit_2_with_file_line_and_cause_and_writes_nothing() {
    let w = World::new(Setup::default());
    w.person_cert("alice@example.org");
    let plan_out = w.path("plan.json");
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown key",
            "directories = [\"local\"]\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncerts = [\"certs\"]\n",
            "deploy.toml:6: unknown key `certs`",
        ),
        (
            "missing file",
            "directories = [\"local\"]\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs/nobody.pem\"]\n",
            "deploy.toml:6:",
        ),
        (
            "bad address",
            "directories = [\"local\"]\n\n[[people]]\naddress = \"alice at example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs/alice@example.org.pem\"]\n",
            "deploy.toml:4:",
        ),
        (
            "unknown directory",
            "directories = [\"local\"]\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs\"]\ndirectories = [\"exo\"]\n",
            "deploy.toml:7:",
        ),
        (
            "duplicate person",
            "directories = [\"local\"]\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs\"]\n\n[[people]]\naddress = \"Alice@Example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs/alice@example.org.pem\"]\n",
            "deploy.toml:9:",
        ),
    ];
    let causes = [
        "unknown key `certs` in [[people]]",
        "certs/nobody.pem: cannot read",
        "bad address \"alice at example.org\"",
        "unknown directory `exo`",
        "Alice@Example.org is declared twice",
    ];
    let before = w.snapshot(&[]);
    for ((what, toml, at), cause) in cases.iter().zip(causes) {
        let file = w.deploy(toml);
        let out = w.code(&["plan", "--file", &file, "--out", &p(&plan_out)], 2);
        let e = text(&out.stderr);
        assert!(e.contains(at) && e.contains(cause), "{what}: {e}");
        assert!(!plan_out.exists(), "{what}: a plan file was written");
        // Terraform's convention with --detailed-exitcode: 1 for an error.
        w.code(&["plan", "--file", &file, "--detailed-exitcode"], 1);
        let out = w.code(&["apply", "--file", &file, "--auto-approve"], 2);
        assert!(
            text(&out.stderr).contains(at),
            "{what}: {}",
            text(&out.stderr)
        );
        assert_eq!(w.snapshot(&[]), before, "{what}: something was written");
    }
    assert_eq!(w.audit_rows(), 0);
    // The same file without the mistake applies.
    let file = w.deploy(
        "directories = [\"local\"]\n\n[[people]]\naddress = \"alice@example.org\"\nkind = \"mailbox\"\ncertificates = [\"certs\"]\n",
    );
    // Without --auto-approve and nobody at a terminal to say yes, apply changes nothing.
    let out = w.code(&["apply", "--file", &file], 2);
    assert!(
        text(&out.stderr).contains("not a terminal")
            && text(&out.stderr).contains("--auto-approve"),
        "{}",
        show("apply", &out)
    );
    assert_eq!(w.snapshot(&[]), before);
    w.ok(&["apply", "--file", &file, "--auto-approve"]);
    assert_ne!(w.snapshot(&[]), before);
}

/// How a run of the kill test is stopped.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once this many journal rows were added by the run.
    JournalRows(i64),
    /// Once this many audit rows were added by the run.
    AuditRows(i64),
    /// This long after the run was seen holding the apply lock.
    AfterLock(Duration),
}

#[test]
fn kill_9_at_many_points_of_a_300_person_apply_then_a_rerun_converges() {
    const MAILBOXES: usize = 250;
    const CONTACTS: usize = 50;
    const KILLS: usize = 22;
    let mailboxes: Vec<String> = (0..MAILBOXES)
        .map(|i| format!("m{i:03}@example.org"))
        .collect();
    let contacts: Vec<String> = (0..CONTACTS)
        .map(|i| format!("x{i:03}@partner.example"))
        .collect();
    let w = World::new(Setup {
        exo_throttle_every: Some(7),
        mailboxes: mailboxes.clone(),
        ..Setup::default()
    });
    let mut csv = String::from("address,kind,certificate\n");
    let mut want: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (a, kind) in mailboxes
        .iter()
        .map(|a| (a, "mailbox"))
        .chain(contacts.iter().map(|a| (a, "contact")))
    {
        let c = w.ca.valid(a);
        let rel = w.write_cert(&format!("{a}.pem"), &c);
        csv.push_str(&format!("{a},{kind},{rel}\n"));
        want.insert(a.clone(), (kind.to_string(), thumb(&c)));
    }
    std::fs::write(w.path("people.csv"), csv).unwrap();
    let file = w.deploy(
        "directories = [\"local\", \"exo\"]\n\n[trust]\nca = \"ca\"\n\n[[people_from]]\ncsv = \"people.csv\"\n",
    );

    let mut kills = Vec::new();
    let mut lock_checked = false;
    let mut open_after_kill = 0;
    for i in 0..KILLS {
        let at = match i % 3 {
            0 => KillAt::JournalRows(3 + (i as i64 * 7) % 37),
            1 => KillAt::AuditRows(1 + (i as i64 * 5) % 19),
            _ => KillAt::AfterLock(Duration::from_millis((i as u64 * 53) % 300)),
        };
        let db_before = (
            w.count("SELECT COUNT(*) FROM deploy_journal"),
            w.count("SELECT COUNT(*) FROM audit_log"),
        );
        let log = std::fs::File::create(w.path(&format!("apply-{i}.log"))).unwrap();
        let mut child = w
            .command(&["apply", "--file", &file, "--auto-approve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        let started = Instant::now();
        let mut locked_at: Option<Instant> = None;
        let mut exited = None;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            if locked_at.is_none()
                && w.count(&format!(
                    "SELECT COUNT(*) FROM deploy_lock WHERE pid = {pid}"
                )) > 0
            {
                locked_at = Some(Instant::now());
            }
            let reached = match at {
                KillAt::JournalRows(n) => {
                    w.count("SELECT COUNT(*) FROM deploy_journal") - db_before.0 >= n
                }
                KillAt::AuditRows(n) => {
                    w.count("SELECT COUNT(*) FROM audit_log") - db_before.1 >= n
                }
                KillAt::AfterLock(d) => locked_at.is_some_and(|t| t.elapsed() >= d),
            };
            if reached {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "run {i} ({at:?}) made no progress: {}",
                std::fs::read_to_string(w.path(&format!("apply-{i}.log"))).unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(status) = exited {
            panic!(
                "run {i} finished ({status}) before its kill point {at:?}: kills so far {kills:?}; {}",
                std::fs::read_to_string(w.path(&format!("apply-{i}.log"))).unwrap()
            );
        }
        if !lock_checked && locked_at.is_some() {
            // A second apply while this one holds the lock (stopped, so that it cannot finish
            // meanwhile) is refused, naming the holder.
            lock_checked = true;
            let signal = |sig: &str| {
                let s = Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(s.success(), "kill {sig} {pid}");
            };
            // Stopped outside a store write: a writer stopped inside one would hold SQLite's
            // lock, and the second apply would wait for the store instead of being refused.
            // Stopped for sure: every thread of the process in state T (a signal is delivered
            // asynchronously, and a process still running could take the lock after the check).
            let stopped = || {
                let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                    return false;
                };
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|st| {
                            st.rsplit_once(") ")
                                .map(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                        })
                        .unwrap_or(false)
                })
            };
            loop {
                signal("-STOP");
                while !stopped() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let free = rusqlite::Connection::open(&w.store).and_then(|db| {
                    db.busy_timeout(Duration::ZERO)?;
                    db.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                });
                if free.is_ok() {
                    break;
                }
                signal("-CONT");
                std::thread::sleep(Duration::from_millis(1));
            }
            let out = w.code(&["apply", "--file", &file, "--auto-approve"], 5);
            let e = text(&out.stderr);
            assert!(
                e.contains("apply lock")
                    && e.contains(&format!("process {pid} on"))
                    && e.contains("since"),
                "{e}"
            );
            let id = e
                .split("apply lock ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap()
                .to_string();
            child.kill().unwrap();
            child.wait().unwrap();
            kills.push(format!("{at:?} + second apply refused"));
            // --force-unlock with another id is refused, with the holder's id it frees the lock.
            let out = w.code(&["apply", "--force-unlock", "0000000000000000"], 4);
            assert!(text(&out.stderr).contains(&id), "{}", text(&out.stderr));
            let out = w.ok(&["apply", "--force-unlock", &id]);
            assert!(
                text(&out.stdout).contains(&format!("Freed the apply lock {id}")),
                "{}",
                text(&out.stdout)
            );
            assert_eq!(w.count("SELECT COUNT(*) FROM deploy_lock"), 0);
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The killed run leaves its lock behind (the next run must take it over) and, when
        // killed inside steps, those steps open in the journal.
        assert_eq!(
            w.count(&format!(
                "SELECT COUNT(*) FROM deploy_lock WHERE pid = {pid}"
            )),
            1,
            "run {i} ({at:?})"
        );
        open_after_kill += w.count("SELECT COUNT(*) FROM deploy_journal_open");
        kills.push(format!("{at:?}"));
    }
    assert!(
        open_after_kill > 0,
        "no kill landed inside a step: {kills:?}"
    );
    assert!(lock_checked, "no run was seen holding the lock");
    assert!(kills.len() >= 20, "{kills:?}");
    // The killed runs did part of the work and left the rest (else the kill points would
    // prove nothing).
    let out = w.code(
        &["plan", "--file", &file, "--detailed-exitcode", "--json"],
        2,
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let left = summary["summary"]["add"].as_u64().unwrap();
    assert!(
        left > 0 && left < 2 * want.len() as u64,
        "{}",
        summary["summary"]
    );
    let summary = summary["summary"].to_string();
    eprintln!("kill points: {kills:?}; adds left for the re-run: {left} of 600");

    // The re-run (the last killed run's lock is free again: its holder is gone) converges.
    let report = w.ok_json(&["apply", "--file", &file, "--auto-approve"]);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["not_attempted"], 0, "{report}");
    let Local {
        people: local,
        trust: local_trust,
    } = w.local();
    assert_eq!(
        local.len(),
        want.len(),
        "{:?}",
        local.keys().collect::<Vec<_>>()
    );
    for (a, (kind, t)) in &want {
        assert_eq!(
            local.get(a),
            Some(&(kind.clone(), vec![t.clone()])),
            "local {a}"
        );
        assert_eq!(w.exo_certs(a), Some(vec![t.clone()]), "exo {a}");
    }
    assert_eq!(local_trust, w.ca.chain_thumbs());
    assert_eq!(w.exo_trust(), w.ca.chain_thumbs());
    // Exactly one contact per external person: none created twice, none missing.
    assert_eq!(w.exo_contacts(), contacts);
    assert_eq!(w.exo_contacts_created(), CONTACTS as u64);
    // The store: every published value owned and confirmed, no step left open, no lock.
    assert_eq!(
        w.count("SELECT COUNT(*) FROM managed_cert WHERE confirmed = 1"),
        2 * want.len() as i64
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM managed_cert"),
        2 * want.len() as i64
    );
    assert_eq!(w.count("SELECT COUNT(*) FROM deploy_journal_open"), 0);
    assert_eq!(w.count("SELECT COUNT(*) FROM deploy_lock"), 0);
    w.ok(&["audit", "verify"]);
    let out = w.code(&["plan", "--file", &file, "--detailed-exitcode"], 0);
    assert!(
        text(&out.stdout).contains("(300 people unchanged)"),
        "{}\nbefore the re-run: {summary}",
        text(&out.stdout)
    );
}

/// The console (`smimekit-tui`) in tmux over this module's world.
#[path = "tui.rs"]
mod tui;
