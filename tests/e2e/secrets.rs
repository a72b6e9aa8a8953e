//! Passwords and PINs follow one order everywhere (README "Secrets"): the object's own source,
//! `--password-file`, `SMIMEKIT_PIN` (PINs only), `SMIMEKIT_PASSWORD`, then a prompt only when
//! standard input is a terminal. Here: a key file and an LDAP bind password through the CLI,
//! each source winning over every later one, the error naming the object and every source
//! tried, and the prompt on a real pseudo-terminal (util-linux `script`). The Exchange Online
//! app credential is in `exchange`, token PINs in `pkcs11`; the order itself is a unit-test
//! table in `smimekit_core::secret`.

use std::process::{Command, Output, Stdio};

use crate::ldap::slapd::{self, ADMIN, BASE, Options, Slapd, b64};

use crate::common::{p, pki, show, smimekit, smimekit_bin};

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs smimekit with standard input on a pseudo-terminal (`script`), typing `typed` and
/// Enter; no password variable is inherited.
pub fn smimekit_on_terminal(args: &[&str], typed: &str) -> Output {
    use std::io::Write;
    let mut line = format!("'{}'", p(&smimekit_bin()));
    for a in args {
        assert!(!a.contains('\''), "{a}");
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("SMIMEKIT_PASSWORD")
        .env_remove("SMIMEKIT_PIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    // Typed ahead: the terminal keeps the line until smimekit reads it (rpassword turns echo
    // off without flushing pending input).
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(format!("{typed}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The test PKI's alice.p12 (password "test") signs through each source in turn; every later
/// source holds a wrong password, so only the documented order succeeds.
#[test]
fn a_key_file_password_comes_from_the_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg.eml");
    std::fs::write(&msg, "Content-Type: text/plain\r\n\r\nhello\r\n").unwrap();
    let right = dir.path().join("right.pw");
    std::fs::write(&right, "test\n").unwrap();
    let key = pki("alice.p12");
    let sign = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["sign", "--key", &key, "--in", msg.to_str().unwrap()];
        a.extend_from_slice(extra);
        smimekit(&a, env)
    };
    let right_file = p(&right);
    // --password-file before SMIMEKIT_PASSWORD; the global option works before the subcommand.
    let out = sign(
        &["--password-file", &right_file],
        &[("SMIMEKIT_PASSWORD", "wrong")],
    );
    assert!(out.status.success(), "{}", show("--password-file", &out));
    let mut a = vec!["--password-file", &right_file, "sign", "--key", &key];
    a.extend(["--in", msg.to_str().unwrap()]);
    let out = smimekit(&a, &[("SMIMEKIT_PASSWORD", "wrong")]);
    assert!(
        out.status.success(),
        "{}",
        show("global --password-file", &out)
    );
    // SMIMEKIT_PASSWORD; SMIMEKIT_PIN is for PINs only and is never used for a password.
    let out = sign(&[], &[("SMIMEKIT_PASSWORD", "test")]);
    assert!(out.status.success(), "{}", show("SMIMEKIT_PASSWORD", &out));
    let out = sign(&[], &[("SMIMEKIT_PIN", "test")]);
    assert_eq!(out.status.code(), Some(4), "{}", show("SMIMEKIT_PIN", &out));
    assert!(
        err(&out).contains(&format!(
            "PKCS#12 password for {key}: not found in --password-file, SMIMEKIT_PASSWORD; no terminal to prompt on"
        )),
        "{}",
        show("nothing", &out)
    );
    // A wrong one says so, names the file and where the password came from, and never shows it.
    let out = sign(&[], &[("SMIMEKIT_PASSWORD", "hunter2")]);
    assert_eq!(out.status.code(), Some(4), "{}", show("wrong", &out));
    let e = err(&out);
    assert!(
        e.contains("wrong password")
            && e.contains(&key)
            && e.contains("it came from SMIMEKIT_PASSWORD")
            && !e.contains("hunter2"),
        "{e}"
    );
    // The terminal, last: asked only when standard input is one.
    let out = smimekit_on_terminal(&["keys", "list", "--store", &key], "test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("PKCS#12 password for {key}:")),
        "{}",
        show("prompt", &out)
    );
    assert!(text.contains("Alice Example"), "{text}");
}

fn ldap_seed() -> String {
    let pem = std::fs::read(pki("bob.pem")).unwrap();
    let der = smimekit_pki::container::load_certificates(&pem, "bob.pem").unwrap()[0].clone();
    format!(
        "dn: uid=bob,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob Example\n\
         sn: Example\nmail: bob@example.org\nuserCertificate;binary:: {}\n\n",
        b64(der.as_bytes())
    )
}

/// An LDAP directory with `bind_dn` and `extra` (the password keys, if any), in `dir/name`.
fn ldap_config(dir: &std::path::Path, name: &str, s: &Slapd, extra: &str) -> String {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            "[directory.corp]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\nallow_cleartext_bind = true\n{extra}",
            s.url()
        ),
    )
    .unwrap();
    p(&config)
}

/// The bind password of an LDAP directory: `password_env`/`password_file` first, else the same
/// sources as every other secret. Before, a `bind_dn` without either key was refused.
#[test]
fn ldap_bind_password_comes_from_the_documented_order() {
    let s = Slapd::start(&Options {
        seed: ldap_seed(),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let right = p(&s.password_file());
    let wrong = dir.path().join("wrong.pw");
    std::fs::write(&wrong, "nope\n").unwrap();
    let wrong = p(&wrong);
    let lookup = |config: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec![
            "lookup",
            "bob@example.org",
            "--directory",
            "corp",
            "--config",
            config,
        ];
        a.extend_from_slice(extra);
        smimekit(&a, env)
    };
    let found = |what: &str, out: &Output| {
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Bob Example"),
            "{}",
            show(what, out)
        );
    };
    let bare = ldap_config(dir.path(), "bare.toml", &s, "");
    found(
        "--password-file",
        &lookup(
            &bare,
            &["--password-file", &right],
            &[("SMIMEKIT_PASSWORD", "nope")],
        ),
    );
    found(
        "SMIMEKIT_PASSWORD",
        &lookup(&bare, &[], &[("SMIMEKIT_PASSWORD", slapd::PASSWORD)]),
    );
    // The configured key first, over --password-file and SMIMEKIT_PASSWORD.
    let keyed = ldap_config(
        dir.path(),
        "keyed.toml",
        &s,
        "password_env = \"SMIMEKIT_TEST_LDAP_BIND_PW\"\n",
    );
    found(
        "password_env",
        &lookup(
            &keyed,
            &["--password-file", &wrong],
            &[
                ("SMIMEKIT_TEST_LDAP_BIND_PW", slapd::PASSWORD),
                ("SMIMEKIT_PASSWORD", "nope"),
            ],
        ),
    );
    // An unset password_env moves on to the next source.
    found(
        "password_env unset",
        &lookup(&keyed, &[], &[("SMIMEKIT_PASSWORD", slapd::PASSWORD)]),
    );
    // Nothing anywhere: the directory's configuration problem (2), naming every source.
    let out = lookup(&keyed, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show("nothing", &out));
    assert!(
        err(&out).contains(&format!(
            "LDAP bind password for {ADMIN} (directory corp): not found in password_env (SMIMEKIT_TEST_LDAP_BIND_PW), --password-file, SMIMEKIT_PASSWORD; no terminal to prompt on"
        )),
        "{}",
        show("nothing", &out)
    );
    // The terminal.
    let out = smimekit_on_terminal(
        &[
            "lookup",
            "bob@example.org",
            "--directory",
            "corp",
            "--config",
            &bare,
        ],
        slapd::PASSWORD,
    );
    found("prompt", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("LDAP bind password for {ADMIN} (directory corp):")),
        "{}",
        show("prompt", &out)
    );
}
