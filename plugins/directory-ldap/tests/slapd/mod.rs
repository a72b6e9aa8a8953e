//! A throw-away slapd for tests: 127.0.0.1, random ports, a temporary folder, killed in Drop.
//!
//! `Slapd::start(&Options)` writes slapd.conf (core, cosine, inetorgperson, and the committed
//! `ad-lite.schema` when asked), loads the seed LDIF with `slapadd` (fast even for thousands
//! of entries), optionally makes a test CA and a P-256 server certificate with `openssl`
//! (SAN `IP:127.0.0.1`, or another name to test a mismatch), starts slapd in the foreground
//! and waits until it accepts connections. Retries on a new port if slapd exits.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=org";
pub const ADMIN: &str = "cn=admin,dc=example,dc=org";
pub const PASSWORD: &str = "secret";

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Load `tests/fixtures/ad-lite.schema` (the AD-like `user`/`contact` classes).
    pub ad_schema: bool,
    /// Serve ldaps:// too, with a server certificate naming this SAN (e.g. `IP:127.0.0.1`).
    pub tls_san: Option<String>,
    /// Extra LDIF loaded before start (after the base entries).
    pub seed: String,
    /// Serve the base DN through slapd's `back-ldap` proxy to this LDAP URL instead of a
    /// database (nothing is loaded): with nothing listening there, every operation is
    /// answered `unavailable` (52), as a proxy or a replica whose upstream is down answers.
    pub proxy_to: Option<String>,
}

#[derive(Debug)]
pub struct Slapd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    /// The test CA (PEM) when TLS is on.
    pub ca_file: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn base_ldif(ad: bool) -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=contacts,{BASE}\nobjectClass: organizationalUnit\nou: contacts\n\n"
    );
    if ad {
        s.push_str(&format!(
            "dn: cn=Users,{BASE}\nobjectClass: container\ncn: Users\n\n\
             dn: cn=Contacts,{BASE}\nobjectClass: container\ncn: Contacts\n\n"
        ));
    }
    s
}

/// A test CA and a P-256 server certificate naming `san`, made with `openssl` in `dir`:
/// (CA certificate, server certificate, server key), all PEM.
pub fn make_tls(dir: &Path, san: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let crt = dir.join("server.pem");
    let ext = dir.join("server.ext");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=smimekit test LDAP CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(
        &ext,
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("write ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt));
    (ca, crt, key)
}

impl Slapd {
    pub fn start(opts: &Options) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).expect("db dir");
        let schema = dir.path().join("ad-lite.schema");
        std::fs::write(&schema, include_str!("../fixtures/ad-lite.schema")).expect("schema");
        let tls = opts.tls_san.as_deref().map(|san| make_tls(dir.path(), san));
        let mut conf = String::from(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n",
        );
        if opts.ad_schema {
            conf.push_str(&format!("include {}\n", schema.display()));
        }
        let d = dir.path().display();
        conf.push_str(&format!(
            "pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\nsizelimit size.soft=500 size.hard=500 size.prtotal=unlimited\n"
        ));
        if let Some((ca, crt, key)) = &tls {
            conf.push_str(&format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                ca.display(),
                crt.display(),
                key.display()
            ));
        }
        if let Some(upstream) = &opts.proxy_to {
            conf.push_str(&format!(
                "moduleload back_ldap\ndatabase ldap\nsuffix \"{BASE}\"\nuri \"{upstream}\"\n"
            ));
        } else {
            conf.push_str(&format!(
                "database mdb\nmaxsize 268435456\nsuffix \"{BASE}\"\nrootdn \"{ADMIN}\"\nrootpw {PASSWORD}\ndirectory {}\nindex objectClass eq\nindex mail eq\n",
                db.display()
            ));
        }
        if opts.ad_schema {
            conf.push_str("index proxyAddresses eq\n");
        }
        let conf_path = dir.path().join("slapd.conf");
        std::fs::write(&conf_path, conf).expect("write slapd.conf");
        let ldif = dir.path().join("seed.ldif");
        std::fs::write(&ldif, format!("{}{}", base_ldif(opts.ad_schema), opts.seed)).expect("seed");
        if opts.proxy_to.is_none() {
            run(Command::new("/usr/sbin/slapadd")
                .arg("-q")
                .arg("-f")
                .arg(&conf_path)
                .arg("-l")
                .arg(&ldif));
        }
        for _attempt in 0..5 {
            let port = free_port();
            let tls_port = tls.as_ref().map(|_| free_port());
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(p) = tls_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
            }
            let log = std::fs::File::create(dir.path().join("slapd.log")).expect("log");
            let mut child = Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(&conf_path)
                .args(["-h", &urls, "-d", "0"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn /usr/sbin/slapd (apt-get install slapd)");
            let start = Instant::now();
            let mut exited = false;
            while start.elapsed() < Duration::from_secs(10) {
                if child.try_wait().ok().flatten().is_some() {
                    exited = true;
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && tls_port.is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok())
                {
                    return Slapd {
                        child,
                        dir,
                        port,
                        tls_port,
                        ca_file: tls.as_ref().map(|t| t.0.clone()),
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("slapd.log")).unwrap_or_default();
        panic!("slapd did not start: {log}");
    }

    /// A file holding the admin password (for `password_file`).
    pub fn password_file(&self) -> PathBuf {
        let p = self.dir.path().join("admin.pw");
        std::fs::write(&p, format!("{PASSWORD}\n")).expect("password file");
        p
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port.expect("TLS on"))
    }

    /// Runs `ldapmodify` as the admin with an LDIF.
    pub fn ldapmodify(&self, ldif: &str) {
        let f = self.dir.path().join("change.ldif");
        std::fs::write(&f, ldif).expect("ldif");
        run(Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", ADMIN, "-w", PASSWORD])
            .arg("-f")
            .arg(&f));
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Base64 (standard, padded) for LDIF `attr:: value` lines.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
