//! The web admin's pages in real headless Chromium (playwright-core, `tests/web/browser.cjs`):
//! a `smimekit-web` process over the Exchange Online emulator and slapd, both started here. The
//! browser signs in, finds a person, publishes an uploaded certificate to both directories,
//! plans a deploy file and applies it with live progress, and reads the audit log; this test
//! then checks the directories themselves and the audit log through the CLI, and that every
//! page's screenshot is a 1280x800 PNG under `target/web-screenshots/`.
//!
//! `cargo xtask test` installs Chromium, Node and playwright-core (into `target/web-e2e/`)
//! before the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use smimekit_exchange_emulator::{Emulator, EmulatorConfig};

use crate::common::{p, pki, show, smimekit, workspace};
use crate::exchange::{CLIENT, TENANT, der, runtime, toml_for};
use crate::ldap::slapd::{ADMIN, BASE, Options, Slapd};

/// `target/` of this build (the test binary is `target/<profile>/deps/e2e-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn web_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("profile dir")
        .join(format!("smimekit-web{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` runs `cargo build --bins` before the tests)",
        bin.display()
    );
    bin
}

/// Where `cargo xtask test` (xtask's setup) installs playwright-core.
fn playwright_core() -> PathBuf {
    let dir = target_dir().join("web-e2e/node_modules/playwright-core");
    assert!(
        dir.join("package.json").exists(),
        "{} is missing: `cargo xtask test` installs it (npm install --prefix target/web-e2e playwright-core)",
        dir.display()
    );
    dir
}

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is missing: `cargo xtask test` installs it (Debian package chromium)")
}

/// `smimekit-web serve` on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(config: &Path, data: &Path) -> Server {
        let mut child = Command::new(web_bin())
            .args(["--config", &p(config), "serve", "--listen", "127.0.0.1:0"])
            .env("XDG_DATA_HOME", data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // It says where it listens once the socket is bound.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("smimekit-web did not say where it listens: {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }
}

/// The width and height of a PNG (its IHDR chunk).
fn png_size(file: &Path) -> (u32, u32) {
    let b = std::fs::read(file).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        file.display()
    );
    let n = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (n(16), n(20))
}

#[test]
fn an_admin_publishes_plans_and_applies_in_a_real_browser() {
    let (playwright, browser) = (playwright_core(), chromium());
    let world = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mailboxes = ["alice@example.org", "bob@example.org"];
    let mut emu_config = EmulatorConfig::new(TENANT, CLIENT, der("alice.pem"));
    emu_config.mailboxes = mailboxes.iter().map(|s| s.to_string()).collect();
    let emu = rt.block_on(Emulator::start(emu_config)).unwrap();
    let seed: String = mailboxes
        .iter()
        .map(|a| {
            let uid = a.split('@').next().unwrap();
            format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: Web\nmail: {a}\n\n"
            )
        })
        .collect();
    let slapd = Slapd::start(&Options {
        seed,
        ..Options::default()
    });
    let config = world.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite:{}\"\n\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n\n{}\n\
             [directory.corp]\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"{BASE}\"\nbind_dn = \"{ADMIN}\"\n\
             password_file = \"{}\"\nchain_file = \"{}\"\nallow_cleartext_bind = true\ncontacts_dn = \"ou=contacts,{BASE}\"\n",
            p(&world.path().join("store.db")),
            toml_for(&emu.base_url, &emu.base_url, ""),
            slapd.url(),
            p(&slapd.password_file()),
            pki("chain.pem"),
        ),
    )
    .unwrap();
    let data = world.path().join("data");
    let env = [("XDG_DATA_HOME", p(&data))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cli = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--config", config.to_str().unwrap()]);
        let out = smimekit(&a, &env);
        assert!(out.status.success(), "{}", show(&format!("{args:?}"), &out));
        out
    };
    // Alice and Bob are in the inventory (so the people list has them to search): published to
    // the local one.
    for (address, cert) in [
        ("alice@example.org", "alice.pem"),
        ("bob@example.org", "bob.pem"),
    ] {
        cli(&[
            "publish",
            address,
            "--cert",
            &pki(cert),
            "--directory",
            "local",
        ]);
    }
    // The first admin, as the README says.
    let password = world.path().join("password");
    std::fs::write(&password, "correct horse battery\n").unwrap();
    let out = Command::new(web_bin())
        .args([
            "--config",
            &p(&config),
            "user",
            "add",
            "ada",
            "--role",
            "admin",
        ])
        .args(["--password-file", &p(&password)])
        .env("XDG_DATA_HOME", &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show("user add", &out));
    let server = Server::start(&config, &data);

    // The deploy file: Bob's certificate to the emulator and slapd.
    let deploy = world.path().join("deploy.toml");
    std::fs::write(
        &deploy,
        "directories = [\"exo\", \"corp\"]\n\n[[people]]\naddress = \"bob@example.org\"\ncertificates = [\"bob.pem\"]\n",
    )
    .unwrap();
    let shots = target_dir().join("web-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(workspace().join("tests/web/browser.cjs"))
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &browser)
        .env("BASE_URL", &server.url)
        .env("WEB_USER", "ada")
        .env("WEB_PASSWORD", "correct horse battery")
        .env("PERSON", "alice@example.org")
        .env("CERT", pki("alice.pem"))
        .env("DEPLOY", &deploy)
        .env("DEPLOY_FILES", pki("bob.pem"))
        .env("SHOTS", &shots)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        show("node tests/web/browser.cjs", &out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));

    // What the browser saw.
    assert_eq!(seen["people_before_search"], 2, "{seen}");
    assert_eq!(seen["people_rows"], 1, "{seen}");
    assert_eq!(seen["can_encrypt"], 1, "{seen}");
    let plan = seen["plan"].as_str().unwrap();
    assert!(plan.contains("bob@example.org"), "{plan}");
    assert!(plan.contains("2 to add"), "{plan}");
    assert_eq!(seen["job_state"], "ok", "{seen}");
    assert_eq!(seen["live_without_reload"], true, "{seen}");
    // The progress bar reached its end, and the report lists both writes.
    let progress = &seen["progress"];
    assert!(
        progress["max"].as_f64().unwrap() >= 2.0 && progress["value"] == progress["max"],
        "{seen}"
    );
    assert_eq!(seen["steps"], 2, "{seen}");
    let audit = seen["audit"].as_array().unwrap();
    let has = |what: &[&str]| {
        audit.iter().any(|r| {
            let r = r.as_str().unwrap();
            what.iter().all(|w| r.contains(w))
        })
    };
    // Alice's publishes through the person page, Bob's writes through the apply.
    for (dir, what, who) in [
        ("exo", "publish", "alice@example.org"),
        ("corp", "publish", "alice@example.org"),
        ("exo", "apply", "bob@example.org"),
        ("corp", "apply", "bob@example.org"),
    ] {
        assert!(
            has(&["ada", "web", what, dir, who]),
            "{what} {dir} {who}: {audit:?}"
        );
    }
    assert!(has(&["ada", "sign-in"]), "{audit:?}");
    assert_eq!(seen["after_sign_out"], 401, "{seen}");
    assert!(
        seen["console_errors"].as_array().unwrap().is_empty(),
        "{seen}"
    );

    // The directories themselves hold the certificates.
    let thumb = |name: &str| {
        smimekit_pki::certinfo::parse(&smimekit_core::CertDer::new(der(name)))
            .unwrap()
            .sha1_thumbprint
    };
    for (address, cert) in [
        ("alice@example.org", "alice.pem"),
        ("bob@example.org", "bob.pem"),
    ] {
        let in_exo = rt.block_on(emu.certificates(address)).unwrap_or_default();
        assert!(
            in_exo.iter().any(|c| c == &der(cert)),
            "{address} in the emulator"
        );
        let out = cli(&["lookup", address, "--directory", "corp", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["sha1_thumbprint"] == thumb(cert).as_str()),
            "{address} in slapd: {v}"
        );
    }

    // A screenshot of every page, at 1280x800.
    let files = seen["shots"].as_array().unwrap();
    assert_eq!(files.len(), 14, "{seen}");
    for f in files {
        let f = Path::new(f.as_str().unwrap());
        assert!(f.starts_with(&shots), "{}", f.display());
        assert_eq!(png_size(f), (1280, 800), "{}", f.display());
    }
    drop(server);
    drop(slapd);
}
