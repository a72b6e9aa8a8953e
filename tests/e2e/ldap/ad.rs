//! The `active-directory` flavour through the CLI against a real Samba AD domain controller
//! ([`SambaAd`], one per test process): lookup by `mail` and by `proxyAddresses` (either
//! prefix, any case), publish to an alias, merge/replace/unpublish read back from the server
//! as AD stores them (plain `userCertificate`, certs-only PKCS#7 in `userSMIMECertificate`),
//! `publish --contact` creating and then reusing a `contact`, and a simple bind over plain
//! `ldap://` refused with the reason. Each test keeps to its own entries and addresses.

use std::process::{Command, Output};

use super::samba::{BASE, LDAP, LDAPS, PARTNERS, SambaAd};
use crate::common::{pki, smimekit};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    /// A config with one directory `ad` on the domain controller at `url`.
    fn new(samba: &SambaAd, url: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = samba.config(
            "ad",
            url,
            &format!("chain_file = \"{}\"\n{extra}", pki("chain.pem")),
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
        smimekit(&a, &[("SMIMEKIT_PASSWORD", "test")])
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `lookup ADDRESS` in `ad`: (recipient kind, certificate thumbprints).
    fn lookup(&self, address: &str) -> (String, Vec<String>) {
        let l = self.ok_json(&["lookup", address, "--directory", "ad"]);
        assert_eq!(l["directory"], "ad", "{l}");
        (
            l["kind"].as_str().unwrap().to_string(),
            thumbprints(&l, "certificates"),
        )
    }
}

fn thumbprints(v: &serde_json::Value, field: &str) -> Vec<String> {
    let mut t: Vec<String> = v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .iter()
        .map(|c| c["sha1_thumbprint"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

/// A committed test certificate: (DER, SHA-1 thumbprint as smimekit prints it).
fn cert(name: &str) -> (Vec<u8>, String) {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-outform",
            "DER",
            "-in",
            &pki(&format!("{name}.pem")),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let der = out.stdout;
    let sha1 = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
            &pki(&format!("{name}.pem")),
        ])
        .output()
        .unwrap();
    let t = text(&sha1.stdout);
    let hex = t.trim().rsplit('=').next().unwrap().replace(':', "");
    (der, hex)
}

/// The subjects of the certificates in a PKCS#7 value, read by openssl.
fn p7_subjects(dir: &std::path::Path, value: &[u8]) -> String {
    let f = dir.join("value.p7b");
    std::fs::write(&f, value).unwrap();
    let out = Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn ad_publish_to_an_alias_lookup_by_proxy_addresses_merge_replace_unpublish() {
    let samba = SambaAd::get();
    let alice_dn = format!("CN=Alice Smith,CN=Users,{BASE}");
    let bob_dn = format!("CN=Bob Jones,CN=Users,{BASE}");
    // Alice: mail plus a secondary proxy address. Bob: no mail at all, only proxy addresses
    // (the primary `SMTP:`, a secondary `smtp:` and a non-SMTP one that names no mailbox).
    samba.modify(&format!(
        "dn: {alice_dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: asmith\n\
         mail: alice@example.org\nproxyAddresses: SMTP:alice@example.org\n\
         proxyAddresses: smtp:a.smith@example.org\n\n\
         dn: {bob_dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: bjones\n\
         proxyAddresses: SMTP:bob@example.org\nproxyAddresses: smtp:robert@example.org\n\
         proxyAddresses: X500:/o=Example/ou=Exchange/cn=Recipients/cn=bjones\n"
    ));
    let set = Setup::new(samba, LDAPS, "");
    let (alice_der, alice) = cert("alice");
    let (bob_der, bob) = cert("bob");

    // Publishing to an alias takes a certificate for the entry's primary address, without
    // --force; for Bob the entry is found by its `smtp:` alias alone.
    let r = set.ok_json(&[
        "publish",
        "a.smith@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "ad",
    ]);
    assert_eq!(thumbprints(&r, "added"), vec![alice.clone()], "{r}");
    assert_eq!(r["kind"], "mailbox");
    let r = set.ok_json(&[
        "publish",
        "Robert@Example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "ad",
    ]);
    assert_eq!(thumbprints(&r, "added"), vec![bob.clone()], "{r}");
    // A certificate naming none of the entry's addresses is still refused, naming them.
    let out = set.run(&[
        "publish",
        "a.smith@example.org",
        "--cert",
        &pki("carol.pem"),
        "--directory",
        "ad",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("carol@example.org")
            && err.contains("not a.smith@example.org")
            && err.contains("alice@example.org")
            && err.contains("--force"),
        "{err}"
    );

    // As AD stores it: plain `userCertificate` (Samba has no `;binary` option) holding the
    // DER, and a certs-only PKCS#7 with the leaf and its chain in `userSMIMECertificate`.
    let attrs = [
        "userCertificate",
        "userSMIMECertificate",
        "userCertificate;binary",
    ];
    let e = samba.search(&alice_dn, "(objectClass=*)", &attrs);
    assert_eq!(e.len(), 1, "{e:?}");
    let mut names = e[0].names();
    names.sort_unstable();
    assert_eq!(names, ["userCertificate", "userSMIMECertificate"]);
    assert_eq!(e[0].values("userCertificate"), [alice_der.as_slice()]);
    let smime = e[0].values("userSMIMECertificate");
    assert_eq!(smime.len(), 1);
    let subjects = p7_subjects(set.dir.path(), smime[0]);
    assert!(
        subjects.contains("Alice Example") && subjects.contains("smimekit Test Intermediate CA"),
        "{subjects}"
    );
    let e = samba.search(&bob_dn, "(objectClass=*)", &attrs);
    assert_eq!(e[0].values("userCertificate"), [bob_der.as_slice()]);

    // Lookup by mail and by either proxy address, in any case.
    for a in [
        "ALICE@EXAMPLE.ORG",
        "a.smith@example.org",
        "A.Smith@Example.Org",
    ] {
        assert_eq!(
            set.lookup(a),
            ("mailbox".into(), vec![alice.clone()]),
            "{a}"
        );
    }
    for a in ["bob@example.org", "BOB@example.org", "robert@EXAMPLE.org"] {
        assert_eq!(set.lookup(a), ("mailbox".into(), vec![bob.clone()]), "{a}");
    }

    // encrypt --to an alias resolves through AD; each recipient opens with their key.
    let msg = set.dir.path().join("msg.eml");
    std::fs::write(&msg, "Subject: hi\r\n\r\nfrom Samba AD\r\n").unwrap();
    let enc = set.dir.path().join("enc.eml");
    let out = set.run(&[
        "encrypt",
        "--to",
        "a.smith@example.org",
        "--to",
        "robert@example.org",
        "--in",
        msg.to_str().unwrap(),
        "--out",
        enc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for who in ["alice", "bob"] {
        let out = set.run(&[
            "open",
            "--key",
            &pki(&format!("{who}.p12")),
            "--in",
            enc.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("from Samba AD"), "{who}");
    }

    // Merge: a second certificate joins the first in both attributes.
    let r = set.ok_json(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("bob.pem"),
        "--directory",
        "ad",
        "--force",
    ]);
    let mut both = vec![alice.clone(), bob.clone()];
    both.sort();
    assert_eq!(thumbprints(&r, "certificates"), both, "{r}");
    assert_eq!(set.lookup("a.smith@example.org").1, both);
    let e = samba.search(&alice_dn, "(objectClass=*)", &attrs);
    assert_eq!(e[0].values("userCertificate").len(), 2);
    assert_eq!(e[0].values("userSMIMECertificate").len(), 2);

    // Replace: only alice's remains, in both attributes.
    let r = set.ok_json(&[
        "publish",
        "alice@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "ad",
        "--replace",
    ]);
    assert_eq!(thumbprints(&r, "removed"), vec![bob.clone()], "{r}");
    assert_eq!(thumbprints(&r, "kept"), vec![alice.clone()], "{r}");
    let e = samba.search(&alice_dn, "(objectClass=*)", &attrs);
    assert_eq!(e[0].values("userCertificate"), [alice_der.as_slice()]);
    assert_eq!(e[0].values("userSMIMECertificate").len(), 1);
    assert!(
        p7_subjects(set.dir.path(), e[0].values("userSMIMECertificate")[0])
            .contains("Alice Example")
    );

    // Unpublish by the alias: both attributes are gone from the entry; lookup finds nothing.
    let r = set.ok_json(&[
        "unpublish",
        "a.smith@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "ad",
    ]);
    assert_eq!(thumbprints(&r, "removed"), vec![alice.clone()], "{r}");
    assert_eq!(thumbprints(&r, "certificates"), Vec::<String>::new());
    let e = samba.search(&alice_dn, "(objectClass=*)", &attrs);
    assert!(e[0].names().is_empty(), "{e:?}");
    let out = set.run(&["lookup", "alice@example.org", "--directory", "ad"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
}

#[test]
fn ad_publish_contact_creates_a_contact_object_then_reuses_it() {
    let samba = SambaAd::get();
    let set = Setup::new(samba, LDAPS, "");
    let (carol_der, carol) = cert("carol");
    let r = set.ok_json(&[
        "publish",
        "carol@example.org",
        "--cert",
        &pki("carol.pem"),
        "--directory",
        "ad",
        "--contact",
    ]);
    assert_eq!(r["kind"], "contact", "{r}");
    assert!(r["created_contact"].is_string(), "{r}");
    assert_eq!(thumbprints(&r, "added"), vec![carol.clone()]);
    let entries = |samba: &SambaAd| {
        samba.search(
            BASE,
            "(mail=carol@example.org)",
            &["objectClass", "proxyAddresses", "userCertificate"],
        )
    };
    let e = entries(samba);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].dn
            .to_ascii_uppercase()
            .ends_with(&PARTNERS.to_ascii_uppercase()),
        "{}",
        e[0].dn
    );
    assert!(
        e[0].strings("objectClass").iter().any(|c| c == "contact"),
        "{e:?}"
    );
    assert_eq!(e[0].strings("proxyAddresses"), ["SMTP:carol@example.org"]);
    assert_eq!(e[0].values("userCertificate"), [carol_der.as_slice()]);

    // Publishing again (any case) finds the contact: nothing created, nothing added.
    let r = set.ok_json(&[
        "publish",
        "CAROL@example.org",
        "--cert",
        &pki("carol.pem"),
        "--directory",
        "ad",
        "--contact",
    ]);
    assert_eq!(r["kind"], "contact", "{r}");
    assert!(r.get("created_contact").is_none_or(|c| c.is_null()), "{r}");
    assert_eq!(thumbprints(&r, "kept"), vec![carol.clone()]);
    assert!(thumbprints(&r, "added").is_empty());
    assert_eq!(entries(samba).len(), 1);
    assert_eq!(
        set.lookup("Carol@Example.org"),
        ("contact".into(), vec![carol])
    );
}

#[test]
fn ad_simple_bind_without_tls_is_refused_naming_the_cause() {
    let samba = SambaAd::get();
    // Plain ldap:// : smimekit does not send the password in clear (a usage error naming
    // the ways out), before any connection.
    let plain = Setup::new(samba, LDAP, "");
    let out = plain.run(&["lookup", "nobody@example.org", "--directory", "ad"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("in clear")
            && err.contains("allow_cleartext_bind = true")
            && err.contains("ldaps://")
            && err.contains("starttls"),
        "{err}"
    );
    // Allowed in clear: AD refuses the simple bind itself; the error says TLS is needed and how.
    let plain = Setup::new(samba, LDAP, "allow_cleartext_bind = true\n");
    let out = plain.run(&["lookup", "nobody@example.org", "--directory", "ad"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("requires TLS") && err.contains("ldaps://") && err.contains("starttls"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The same url with StartTLS binds: the lookup gets as far as "nothing published".
    let starttls = Setup::new(samba, LDAP, "starttls = true\n");
    let out = starttls.run(&["lookup", "nobody@example.org", "--directory", "ad"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("no certificate published"), "{err}");
    // The LDAP backend keeps no trust chain: trust show says so rather than failing obscurely.
    let out = starttls.run(&["trust", "show", "--directory", "ad"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("keeps no trust chain"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ad_refuses_the_binary_option_and_the_entry_is_left_as_it_was() {
    let samba = SambaAd::get();
    let dn = format!("CN=Dan Binary,CN=Users,{BASE}");
    samba.modify(&format!(
        "dn: {dn}\nchangetype: add\nobjectClass: user\nsAMAccountName: dbinary\n\
         mail: dan@example.org\n"
    ));
    // AD has no `;binary` option (RFC 4523's OpenLDAP spelling): the one modify is refused
    // with a hint at the setting, and nothing is written, userSMIMECertificate included.
    let set = Setup::new(
        samba,
        LDAPS,
        "certificate_attribute = \"userCertificate;binary\"\n",
    );
    let out = set.run(&[
        "publish",
        "dan@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "ad",
        "--force",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("nothing was changed") && err.contains(";binary option"),
        "{err}"
    );
    let e = samba.search(
        &dn,
        "(objectClass=*)",
        &["userCertificate", "userSMIMECertificate"],
    );
    assert!(e[0].names().is_empty(), "{e:?}");
    // The flavour's own attribute names work on the same entry.
    let plain = Setup::new(samba, LDAPS, "");
    let r = plain.ok_json(&[
        "publish",
        "dan@example.org",
        "--cert",
        &pki("alice.pem"),
        "--directory",
        "ad",
        "--force",
    ]);
    assert_eq!(r["added"].as_array().unwrap().len(), 1, "{r}");
}
