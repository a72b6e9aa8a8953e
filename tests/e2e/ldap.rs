//! The LDAP directory through the CLI, against a real slapd started by the fixture shared
//! with the plugin's tests: `encrypt --to` finding the recipient in LDAP (searched after an
//! empty local directory) then `open` with their key; publish/lookup/audit; exit codes of
//! bad input (wrong password 4, unreachable 5, configuration 2, not found 4, too large 4);
//! publishing to an alias. The `active-directory` flavour against Samba AD is in `ad`.

use std::process::Output;

#[path = "../../plugins/directory-ldap/tests/slapd/mod.rs"]
pub(crate) mod slapd;

// The active-directory flavour against a real Samba AD domain controller.
mod ad;
mod samba;

use slapd::{ADMIN, BASE, Options, Slapd, b64};

use crate::common::{pki, smimekit};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    fn new(s: &Slapd, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "[directory.local]\nkind = \"local\"\npath = \"local.json\"\n\n\
             [directory.corp]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\nallow_cleartext_bind = true\n\
             password_file = \"{}\"\nflavor = \"active-directory\"\ncertificate_attribute = \"userCertificate;binary\"\n\
             contacts_dn = \"cn=Contacts,{BASE}\"\nchain_file = \"{}\"\n{extra}",
            s.url(),
            s.password_file().display(),
            pki("chain.pem")
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, cfg).unwrap();
        Self {
            config: config.display().to_string(),
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--config", &self.config]);
        smimekit(&a, &[])
    }
}

fn seed() -> String {
    let alice = std::fs::read_to_string(pki("alice.pem")).unwrap();
    let der: Vec<u8> = {
        let b64body: String = alice.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&b64body)
    };
    format!(
        "dn: CN=Bob,cn=Users,{BASE}\nobjectClass: user\ncn: Bob\nsn: Example\nmail: bob@example.org\n\
         proxyAddresses: SMTP:bob@example.org\nproxyAddresses: smtp:robert@example.org\n\n\
         dn: CN=Alice,cn=Users,{BASE}\nobjectClass: user\ncn: Alice\nsn: Example\nmail: alice@example.org\n\
         userCertificate;binary:: {}\n\n",
        b64(&der)
    )
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn encrypt_to_a_recipient_found_in_ldap_then_open_with_their_key() {
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed: seed(),
        ..Options::default()
    });
    let set = Setup::new(&s, "");
    // Publish bob's certificate through the CLI (to the LDAP directory), by his alias.
    let out = set.run(&[
        "publish",
        "Robert@Example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "corp",
        "--force",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["added"].as_array().unwrap().len(), 1);
    // Lookup searches local (empty) then corp.
    let out = set.run(&["lookup", "BOB@example.org", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["directory"], "corp");
    assert_eq!(l["searched"], serde_json::json!(["local", "corp"]));

    let msg = set.dir.path().join("msg.eml");
    std::fs::write(&msg, "Subject: hi\r\n\r\nfrom LDAP\r\n").unwrap();
    let enc = set.dir.path().join("enc.eml");
    let out = set.run(&[
        "encrypt",
        "--to",
        "bob@example.org",
        "--to",
        "alice@example.org",
        "--in",
        msg.to_str().unwrap(),
        "--out",
        enc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for who in ["bob", "alice"] {
        let out = smimekit(
            &[
                "open",
                "--key",
                &pki(&format!("{who}.p12")),
                "--in",
                enc.to_str().unwrap(),
            ],
            &[("SMIMEKIT_PASSWORD", "test")],
        );
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("from LDAP"),
            "{}",
            text(&out.stdout)
        );
    }

    // Audit: a stale userSMIMECertificate (carol's, foreign) shadows alice's userCertificate.
    s.ldapmodify(&format!(
        "dn: CN=Alice,cn=Users,{BASE}\nchangetype: modify\nadd: userSMIMECertificate\nuserSMIMECertificate:< file://{}\n",
        {
            let p = set.dir.path().join("carol.p7b");
            let out = std::process::Command::new("openssl").args(["crl2pkcs7", "-nocrl", "-certfile", &pki("carol.pem"), "-outform", "DER", "-out"]).arg(&p).output().unwrap();
            assert!(out.status.success());
            p.display().to_string()
        }
    ));
    let out = set.run(&["directory", "audit", "--directory", "corp", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = a["directories"][0]["findings"].as_array().unwrap();
    let has = |p: &str| {
        f.iter()
            .any(|x| x["problem"] == p && x["address"] == "alice@example.org")
    };
    assert!(has("stale-smime") && has("mismatched-address"), "{f:#?}");
    // Republishing alice makes the two attributes consistent again.
    let out = set.run(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "corp",
        "--replace",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = set.run(&["directory", "audit", "--directory", "corp"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn ldap_bad_input_exit_codes() {
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed: seed(),
        ..Options::default()
    });
    // Not found: exit 4 naming the address.
    let set = Setup::new(&s, "");
    let out = set.run(&["lookup", "nobody@example.org", "--directory", "corp"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = set.run(&[
        "publish",
        "nobody@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "corp",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    // Wrong password: 4, and the password is not printed.
    let wrong = set.dir.path().join("wrong.pw");
    std::fs::write(&wrong, "hunter2-wrong\n").unwrap();
    let bad = Setup::new(&s, "");
    let cfg = std::fs::read_to_string(&bad.config).unwrap().replace(
        &s.password_file().display().to_string(),
        &wrong.display().to_string(),
    );
    std::fs::write(&bad.config, cfg).unwrap();
    let out = bad.run(&["lookup", "alice@example.org", "--directory", "corp"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid credentials") && !text(&out.stderr).contains("hunter2"),
        "{}",
        text(&out.stderr)
    );

    // Unreachable: 5.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = Setup::new(&s, "");
    let cfg = std::fs::read_to_string(&gone.config)
        .unwrap()
        .replace(&s.url(), &format!("ldap://127.0.0.1:{port}"));
    std::fs::write(&gone.config, cfg).unwrap();
    let out = gone.run(&["lookup", "alice@example.org", "--directory", "corp"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));

    // Configuration: unknown key, missing password variable: 2.
    let out = Setup::new(&s, "colour = \"blue\"\n").run(&[
        "lookup",
        "alice@example.org",
        "--directory",
        "corp",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let env = Setup::new(&s, "");
    let cfg = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("password_file = \"{}\"", s.password_file().display()),
        "password_env = \"SMIMEKIT_TEST_UNSET_PW\"",
    );
    std::fs::write(&env.config, cfg).unwrap();
    let out = env.run(&["lookup", "alice@example.org", "--directory", "corp"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Too large for AD (limit lowered to make any certificate too large): 4, nothing written.
    let small = Setup::new(&s, "max_value_bytes = 100\n");
    let out = small.run(&[
        "publish",
        "bob@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "corp",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("exceeds"),
        "{}",
        text(&out.stderr)
    );
    let out = set.run(&["lookup", "bob@example.org", "--directory", "corp"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "nothing was written: {}",
        text(&out.stdout)
    );
}

#[test]
fn publish_to_an_alias_takes_a_certificate_for_any_address_of_the_entry() {
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed: seed(),
        ..Options::default()
    });
    let set = Setup::new(&s, "");
    // bob.pem names bob@example.org, the entry's primary address; robert@ is its alias.
    let out = set.run(&[
        "publish",
        "robert@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "corp",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["added"].as_array().unwrap().len(), 1, "{r}");
    // A certificate for none of the entry's addresses is refused, naming them.
    let out = set.run(&[
        "publish",
        "robert@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "corp",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("is for alice@example.org, not robert@example.org")
            && err.contains("bob@example.org"),
        "{err}"
    );
    // And no entry at all: the plain refusal, nothing written.
    let out = set.run(&[
        "publish",
        "nobody@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "corp",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 16 §5 through the CLI: 16 `smimekit publish` processes at once, each adding its own
/// certificate (issued by the project's CA for the address) to one entry, lose no value: each
/// succeeds and the entry holds all 16 afterwards.
#[test]
fn sixteen_concurrent_cli_publishers_to_one_entry_lose_nothing() {
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed: seed(),
        ..Options::default()
    });
    let set = Setup::new(&s, "");
    let ca = set.dir.path().join("ca");
    let ca_s = ca.display().to_string();
    let pw = [("SMIMEKIT_PASSWORD", "test")];
    let out = smimekit(
        &["ca", "init", "--dir", &ca_s, "--name", "Concurrency"],
        &pw,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for i in 0..16 {
        let p12 = set.dir.path().join(format!("bob{i}.p12"));
        let out = smimekit(
            &[
                "ca",
                "issue",
                "--dir",
                &ca_s,
                "--email",
                "bob@example.org",
                "--p12",
                &p12.display().to_string(),
                "--renew",
            ],
            &pw,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let mut certs: Vec<String> = std::fs::read_dir(ca.join("issued"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    certs.sort();
    assert_eq!(certs.len(), 16);
    let set = &set;
    let outs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = certs
            .iter()
            .map(|c| {
                scope.spawn(move || {
                    set.run(&[
                        "publish",
                        "bob@example.org",
                        "--cert",
                        c,
                        "--directory",
                        "corp",
                        "--json",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = set.run(&["lookup", "bob@example.org", "--directory", "corp", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = l["certificates"].as_array().unwrap();
    assert_eq!(found.len(), 16, "{l}");
}

/// Issue 12 §3: a directory audit records every certificate it read into the inventory with
/// the attribute holding it (`userCertificate`, `userSMIMECertificate`, both for one in both),
/// the chain of a PKCS#7 value not being the recipient's; `inventory --json` shows it, and a
/// later lookup (which knows no attribute) keeps it.
#[test]
fn an_audit_records_the_attribute_holding_each_certificate_in_the_inventory() {
    let der = |name: &str| {
        let pem = std::fs::read_to_string(pki(name)).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        b64(&base64_decode(&body))
    };
    let s = Slapd::start(&Options {
        ad_schema: true,
        seed: format!(
            "{}dn: CN=Carol,cn=Users,{BASE}\nobjectClass: user\ncn: Carol\nsn: Example\n\
             mail: carol@example.org\nuserCertificate;binary:: {}\n\n",
            seed(),
            der("carol.pem")
        ),
        ..Options::default()
    });
    let set = Setup::new(&s, "");
    // bob: userSMIMECertificate only, his certificate with its chain; carol: in both.
    let p7b = |name: &str, with_chain: bool| {
        let p = set.dir.path().join(format!("{name}.p7b"));
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            &pki(&format!("{name}.pem")),
        ]);
        if with_chain {
            cmd.args(["-certfile", &pki("chain.pem")]);
        }
        let out = cmd
            .args(["-outform", "DER", "-out"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        p.display().to_string()
    };
    for (cn, file) in [("Bob", p7b("bob", true)), ("Carol", p7b("carol", false))] {
        s.ldapmodify(&format!(
            "dn: CN={cn},cn=Users,{BASE}\nchangetype: modify\nadd: userSMIMECertificate\n\
             userSMIMECertificate:< file://{file}\n"
        ));
    }
    let inventory = || {
        let out = set.run(&["inventory", "--directory", "corp", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut rows: Vec<(String, String, Option<String>)> = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["address"].as_str().unwrap().to_string(),
                    c["subject"].as_str().unwrap().to_string(),
                    c["source_attribute"].as_str().map(String::from),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert!(inventory().is_empty());
    let out = set.run(&["directory", "audit", "--directory", "corp", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // One row per recipient (bob's chain is not his), each naming where its certificate is.
    let rows = inventory();
    let seen: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|(address, _, attribute)| (address.as_str(), attribute.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice@example.org", Some("userCertificate")),
            ("bob@example.org", Some("userSMIMECertificate")),
            (
                "carol@example.org",
                Some("userCertificate, userSMIMECertificate")
            ),
        ],
        "{rows:#?}"
    );
    for (address, subject, _) in &rows {
        let who = address.split('@').next().unwrap();
        assert!(subject.to_lowercase().contains(who), "{rows:#?}");
    }
    // A lookup sees the same certificates without their attributes: the attributes stay.
    let out = set.run(&["lookup", "bob@example.org", "--directory", "corp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(inventory(), rows);
    let out = set.run(&["inventory", "--directory", "corp"]);
    assert!(
        text(&out.stdout).contains("[in userCertificate, userSMIMECertificate]"),
        "{}",
        text(&out.stdout)
    );
}
