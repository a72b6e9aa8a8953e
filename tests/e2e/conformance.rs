//! The `Directory` conformance suite (`smimekit_testkit::conformance`) against every backend,
//! each opened the way a host opens it (the plugins' registered factories, the plugin host for
//! the vendor sample) and driven through `&dyn Directory` only: the reference
//! `MemoryDirectory`; the local directory on a SQLite file and on a PostgreSQL database of
//! testkit's throwaway cluster; LDAP on a real slapd in both flavours (OpenLDAP
//! `inetOrgPerson`, and Active Directory's `user`/`contact`/`proxyAddresses` on the AD-like
//! schema); Exchange Online on the emulator in its default (strict) mode; and the sample
//! vendor Rust plugin through `smimekit-plugin-host`.
//!
//! The certificates come from the project's own CA (`smimekit ca`); the trust chain is the
//! committed test PKI's. What a backend does not claim is in its `Capabilities`; where it
//! claims something and fails, the failure is an entry of [`EXPECTED_FAILURES`], with the
//! reason, until it is fixed (an entry whose check passes fails the test).

use std::sync::{Arc, OnceLock};

use smimekit_core::plugin::{directories, directories_with_store};
use smimekit_core::store::LazyStore;
use smimekit_core::{CertDer, Directory, Mailbox};
use smimekit_directory_exchange::{ExchangeDirectory, PluginKeyOpener};
use smimekit_exchange_emulator::{Emulator, EmulatorConfig};
use smimekit_plugin_host::directory::PluginDirectory;
use smimekit_testkit::conformance::{self, Capabilities, Subject};
use smimekit_testkit::{MemoryDirectory, PINNED_NOW};

use crate::common::{p, pki, show, smimekit};
use crate::ldap::slapd::{ADMIN, BASE, Options, Slapd};

/// The domain of the suite's mailboxes, and of the contacts it creates.
const DOMAIN: &str = "example.org";
const PARTNERS: &str = "partner.example";

/// Checks a backend claims and fails: (backend, check, why). Each must fail today; when one
/// passes, the test says so and the entry goes.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[(
    "sample-json",
    "recipient_kind_mailbox_and_contact",
    "the sample's JSON file ({address: [certificates]}) keeps no recipient kind and it \
     ignores the kind publish is given: a contact reads back as a mailbox",
)];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Eight end-entity certificates issued by a CA made with `smimekit ca` (P-256, so quickly),
/// once per test process.
fn certificates() -> &'static [CertDer] {
    static CERTS: OnceLock<Vec<CertDer>> = OnceLock::new();
    CERTS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let home = p(tmp.path());
        // The CLI's own configuration and store stay in the temp folder.
        let env = [
            ("SMIMEKIT_PASSWORD", "conformance"),
            ("XDG_CONFIG_HOME", home.as_str()),
            ("XDG_DATA_HOME", home.as_str()),
        ];
        let ca = p(&tmp.path().join("ca"));
        let out = smimekit(
            &[
                "ca",
                "init",
                "--dir",
                &ca,
                "--name",
                "Conformance",
                "--json",
            ],
            &env,
        );
        assert!(out.status.success(), "{}", show("ca init", &out));
        (0..8)
            .map(|i| {
                let p12 = p(&tmp.path().join(format!("c{i}.p12")));
                let email = format!("conf-c{i}@{DOMAIN}");
                let out = smimekit(
                    &[
                        "ca",
                        "issue",
                        "--dir",
                        &ca,
                        "--email",
                        &email,
                        "--p12",
                        &p12,
                        "--key-type",
                        "p256",
                        "--json",
                    ],
                    &env,
                );
                assert!(out.status.success(), "{}", show("ca issue", &out));
                let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let pem = std::fs::read(r["ca_copy"].as_str().unwrap()).unwrap();
                smimekit_pki::load_certificates(&pem, "issued certificate")
                    .unwrap()
                    .remove(0)
            })
            .collect()
    })
}

/// The committed test PKI's chain: intermediate, then root.
fn chain() -> Vec<CertDer> {
    let pem = std::fs::read(pki("chain.pem")).unwrap();
    smimekit_pki::load_certificates(&pem, "chain.pem").unwrap()
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

/// Runs the suite and checks it against [`EXPECTED_FAILURES`].
async fn check(
    backend: &str,
    directory: &dyn Directory,
    capabilities: Capabilities,
    alias: Option<(Mailbox, Mailbox)>,
) {
    let chain = chain();
    let report = conformance::run(&Subject {
        backend,
        directory,
        capabilities,
        certificates: certificates(),
        chain: &chain,
        domain: DOMAIN,
        contact_domain: PARTNERS,
        alias,
    })
    .await;
    let expected: Vec<(&str, &str)> = EXPECTED_FAILURES
        .iter()
        .filter(|(b, _, _)| *b == backend)
        .map(|(_, c, why)| (*c, *why))
        .collect();
    report.assert(&expected);
}

#[test]
fn memory() {
    certificates();
    runtime().block_on(async {
        let d = MemoryDirectory::new("memory");
        check("memory", &d, Capabilities::ALL, None).await;
    });
}

/// The local directory as the service opens it: the `local` factory with the host's store.
fn local(store_url: String, json: &std::path::Path) -> Box<dyn Directory> {
    smimekit_builtins::link();
    let factory = directories_with_store()
        .find(|f| f.kind == "local")
        .expect("the local directory is registered");
    let config = format!("kind = \"local\"\npath = \"{}\"\n", p(json));
    (factory.open)("conformance", &config, Arc::new(LazyStore::new(store_url))).unwrap()
}

#[test]
fn local_on_sqlite() {
    certificates();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", p(&tmp.path().join("smimekit.db")));
    let d = local(url, &tmp.path().join("directory.json"));
    runtime().block_on(check("local-sqlite", d.as_ref(), Capabilities::ALL, None));
}

#[test]
fn local_on_postgresql() {
    certificates();
    let pg = smimekit_testkit::pg::PgCluster::shared().unwrap();
    let url = pg.new_database("conformance").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = local(url, &tmp.path().join("directory.json"));
    runtime().block_on(check(
        "local-postgresql",
        d.as_ref(),
        Capabilities::ALL,
        None,
    ));
}

/// What LDAP offers: no mailbox is created (accounts are the administrators' business), no
/// trust chain is stored (`chain_file` is read, never written). Two publishes to one entry in
/// flight together each read the entry, then write and read back their own intended set: the
/// later write's `userSMIMECertificate` replace drops the earlier one's value and a read-back
/// sees the other's, so concurrent writers to one address are not claimed.
const LDAP: Capabilities = Capabilities {
    creates_mailboxes: false,
    trust_chain: false,
    case_insensitive: true,
    concurrent_publishes: false,
};

/// The LDAP directory as a host opens it: the `ldap` factory.
fn ldap(s: &Slapd, extra: &str) -> Box<dyn Directory> {
    smimekit_builtins::link();
    let factory = directories()
        .find(|f| f.kind == "ldap")
        .expect("the LDAP directory is registered");
    let config = format!(
        "kind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\nallow_cleartext_bind = true\n\
         password_file = \"{}\"\nchain_file = \"{}\"\n{extra}",
        s.url(),
        p(&s.password_file()),
        pki("chain.pem")
    );
    (factory.open)("conformance", &config).unwrap()
}

#[test]
fn ldap_openldap_flavour() {
    certificates();
    let seed: String = conformance::seed_mailboxes(DOMAIN)
        .iter()
        .map(|a| {
            let uid = a.split('@').next().unwrap();
            format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n\
                 cn: {uid}\nsn: Conformance\nmail: {a}\n\n"
            )
        })
        .collect();
    let s = Slapd::start(&Options {
        seed,
        ..Options::default()
    });
    let d = ldap(&s, &format!("contacts_dn = \"ou=contacts,{BASE}\"\n"));
    runtime().block_on(check("ldap-openldap", d.as_ref(), LDAP, None));
}

#[test]
fn ldap_active_directory_flavour() {
    certificates();
    let entry = |cn: &str, mail: &str, aliases: &[&str]| {
        let mut e = format!(
            "dn: CN={cn},cn=Users,{BASE}\nobjectClass: user\ncn: {cn}\nsn: Conformance\n\
             mail: {mail}\nproxyAddresses: SMTP:{mail}\n"
        );
        for a in aliases {
            e.push_str(&format!("proxyAddresses: smtp:{a}\n"));
        }
        e + "\n"
    };
    let mut seed: String = conformance::seed_mailboxes(DOMAIN)
        .iter()
        .map(|a| entry(a.split('@').next().unwrap(), a, &[]))
        .collect();
    let (primary, alias) = (
        format!("conf-person@{DOMAIN}"),
        format!("c.person@{DOMAIN}"),
    );
    seed.push_str(&entry("conf-person", &primary, &[&alias]));
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed,
        ..Options::default()
    });
    let d = ldap(
        &s,
        &format!(
            "flavor = \"active-directory\"\ncertificate_attribute = \"userCertificate;binary\"\n\
             contacts_dn = \"cn=Contacts,{BASE}\"\n"
        ),
    );
    let alias = Some((mailbox(&primary), mailbox(&alias)));
    runtime().block_on(check("ldap-active-directory", d.as_ref(), LDAP, alias));
}

#[test]
fn exchange_online_emulator() {
    const TENANT: &str = "contoso.onmicrosoft.com";
    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
    certificates();
    smimekit_builtins::link();
    let rt = runtime();
    let app = std::fs::read(pki("alice.pem")).unwrap();
    let app = smimekit_pki::load_certificates(&app, "alice.pem").unwrap()[0]
        .as_bytes()
        .to_vec();
    let mut cfg = EmulatorConfig::new(TENANT, CLIENT, app);
    cfg.mailboxes = conformance::seed_mailboxes(DOMAIN);
    cfg.smime_now = Some(PINNED_NOW);
    let emu = rt.block_on(Emulator::start(cfg)).unwrap();
    let config = format!(
        "kind = \"exchange-online\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         certificate = \"{}\"\ncertificate_file = \"{}\"\nendpoint = \"{}\"\nauthority = \"{}\"\n",
        pki("alice.key"),
        pki("alice.pem"),
        emu.base_url,
        emu.base_url
    );
    let d = ExchangeDirectory::open("conformance", &config, Arc::new(PluginKeyOpener)).unwrap();
    // Exchange Online creates no mailbox (that is the tenant's business) and has no
    // transaction: a write reads the values, then sets them, so two writers to one address
    // can each set a list without the other's value.
    let caps = Capabilities {
        creates_mailboxes: false,
        trust_chain: true,
        case_insensitive: true,
        concurrent_publishes: false,
    };
    rt.block_on(check("exchange-online", &d, caps, None));
}

#[test]
fn sample_vendor_rust_plugin() {
    certificates();
    let lib = smimekit_plugin_host::load(crate::plugins::rust_sample()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "kind = \"sample-json\"\npath = \"{}\"\n",
        p(&tmp.path().join("vendor.json"))
    );
    let d = PluginDirectory::open(lib, "conformance", &config).unwrap();
    // The sample stores no trust chain (the ABI has no call for one); its writers share one
    // lock per process.
    let caps = Capabilities {
        trust_chain: false,
        ..Capabilities::ALL
    };
    runtime().block_on(check("sample-json", &d, caps, None));
}
