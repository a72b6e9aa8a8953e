//! `cargo xtask bench-ldap [--quick]` (also run at the end of `cargo xtask bench`): publish a
//! certificate (userCertificate;binary + userSMIMECertificate) to 10,000 recipients on slapd
//! through the LDAP backend, against `ldapmodify` applying the same changes from an LDIF on
//! an identical slapd; then lookups per second. Target from issue 5: ≤ 1.2× ldapmodify.
//!
//! The backend does more per recipient than ldapmodify: it finds the entry by address, plans
//! the merge, modifies, and reads back. It keeps several publishes in flight on its one
//! connection, which is how it stays near ldapmodify's sequential time.

#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../../plugins/directory-ldap/tests/slapd/mod.rs"]
pub(crate) mod slapd;

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use slapd::{ADMIN, BASE, Options, PASSWORD, Slapd, b64};
use smimekit_core::{CertDer, Directory, Mailbox, PublishMode};
use smimekit_directory_ldap::LdapDirectory;

const TARGET_RATIO: f64 = 1.2;
const PARALLEL: usize = 16;

fn seed(n: usize) -> String {
    let mut s = String::with_capacity(n * 120);
    for i in 0..n {
        s.push_str(&format!(
            "dn: uid=u{i},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: U {i}\nsn: U\nmail: u{i}@example.org\n\n"
        ));
    }
    s
}

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let n = if quick { 1_000 } else { 10_000 };
    let pki = crate::root().join("tests/fixtures/pki");
    let load = |name: &str| -> Result<Vec<CertDer>> {
        let bytes = std::fs::read(pki.join(name)).with_context(|| format!("reading {name}"))?;
        smimekit_pki::load_certificates(&bytes, name).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let alice = load("alice.pem")?.remove(0);
    let chain = load("chain.pem")?;
    let mut p7 = vec![alice.clone()];
    p7.extend(chain);
    let p7 = smimekit_pki::write_p7b(&p7);

    // ldapmodify on its own slapd.
    let a = Slapd::start(&Options {
        seed: seed(n),
        ..Options::default()
    });
    let (der64, p764) = (b64(alice.as_bytes()), b64(&p7));
    let mut ldif = String::with_capacity(n * (der64.len() + p764.len() + 200));
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: uid=u{i},ou=people,{BASE}\nchangetype: modify\nadd: userCertificate;binary\nuserCertificate;binary:: {der64}\n-\nreplace: userSMIMECertificate\nuserSMIMECertificate:: {p764}\n-\n\n"
        ));
    }
    let f = a.dir.path().join("bench.ldif");
    std::fs::write(&f, ldif)?;
    let t = Instant::now();
    let out = Command::new("ldapmodify")
        .args(["-x", "-H", &a.url(), "-D", ADMIN, "-w", PASSWORD])
        .arg("-f")
        .arg(&f)
        .output()
        .context("running ldapmodify (apt-get install ldap-utils)")?;
    let ldapmodify_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(a);

    // The backend on an identical slapd.
    let b = Slapd::start(&Options {
        seed: seed(n),
        ..Options::default()
    });
    let cfg = format!(
        "kind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\nallow_cleartext_bind = true\npassword_file = \"{}\"\nchain_file = \"{}\"\n",
        b.url(),
        b.password_file().display(),
        pki.join("chain.pem").display()
    );
    let d = LdapDirectory::from_config("bench", &cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let items: Vec<(Mailbox, CertDer)> = (0..n)
        .map(|i| Mailbox::parse(&format!("u{i}@example.org")).map(|m| (m, alice.clone())))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let (publish_s, lookups_s, lookup_n) = rt
        .block_on(async {
            let t = Instant::now();
            d.publish_many(&items, PublishMode::Merge, PARALLEL).await?;
            let publish_s = t.elapsed().as_secs_f64();
            let lookup_n = n.min(5_000);
            let t = Instant::now();
            for (m, _) in items.iter().take(lookup_n) {
                if d.lookup(m).await?.is_empty() {
                    return Err(smimekit_core::DirectoryError::Other(format!(
                        "{m}: nothing read back"
                    )));
                }
            }
            Ok::<_, smimekit_core::DirectoryError>((publish_s, t.elapsed().as_secs_f64(), lookup_n))
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Byte-identical with what ldapmodify wrote.
    let check = rt
        .block_on(d.lookup(&items[n - 1].0))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if check != vec![alice.clone()] {
        bail!("read-back of the last recipient differs");
    }
    let ratio = publish_s / ldapmodify_s;
    let figures = json!({
        "recipients": n,
        "ldapmodify_s": ldapmodify_s,
        "smimekit_publish_s": publish_s,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "pass": ratio <= TARGET_RATIO,
        "parallel_publishes": PARALLEL,
        "lookups_per_s": lookup_n as f64 / lookups_s,
    });
    println!(
        "LDAP publish to {n} recipients: smimekit {publish_s:.2} s, ldapmodify {ldapmodify_s:.2} s ({ratio:.2}×, target ≤ {TARGET_RATIO}×) — {}",
        if ratio <= TARGET_RATIO {
            "pass"
        } else {
            "MISS"
        }
    );
    println!(
        "LDAP lookups: {:.0}/s (sequential, one connection)",
        lookup_n as f64 / lookups_s
    );
    let out = crate::target_dir().join("bench-ldap.json");
    std::fs::create_dir_all(crate::target_dir())?;
    std::fs::write(&out, serde_json::to_string_pretty(&figures)? + "\n")?;
    println!("figures written to {}", out.display());
    Ok(())
}
