//! A Samba AD domain controller for the `active-directory` flavour: the real AD schema
//! (`userCertificate` without `;binary`, `userSMIMECertificate`, `proxyAddresses`, `contact`)
//! and AD's refusal of a simple bind without TLS.
//!
//! Samba listens on the fixed ports 389/636, so there is one per machine at a time: the first
//! AD test of the process provisions it (about 8 s) and starts it (`samba -i -M single`), and
//! every AD test of the process shares it ([`SambaAd::get`]; tests keep to their own entries).
//! A lock on `/tmp/smimekit-samba-ad.lock`, held until the process ends, keeps other test
//! processes (another checkout, a second `cargo test`) waiting rather than colliding. Samba's
//! standard input is a pipe from this process: when the process ends, however it ends, the
//! pipe closes and Samba stops itself ("EOF on stdin"), and the OS releases the lock. The
//! domain lives in `$TMPDIR/smimekit-samba-ad`, replaced by the next run.
//!
//! The LDAPS certificate (SAN `IP:127.0.0.1`) comes from the slapd fixture's test CA helper.
//! Samba needs root (it binds ports below 1024) and the packages `samba samba-ad-dc
//! samba-ad-provision`, which `cargo xtask test` installs.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::slapd::make_tls;

pub const BASE: &str = "DC=corp,DC=example";
pub const ADMIN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example";
pub const PASSWORD: &str = "Adm1n!Passw0rd";
/// Where `publish --contact` creates contacts.
pub const PARTNERS: &str = "OU=Partners,DC=corp,DC=example";
pub const LDAPS: &str = "ldaps://127.0.0.1";
pub const LDAP: &str = "ldap://127.0.0.1";

/// Held by the process whose Samba owns the ports.
const LOCK: &str = "/tmp/smimekit-samba-ad.lock";

/// How long a busy machine may take to free the ports or start Samba; the waits end as soon
/// as the condition holds.
const PATIENCE: Duration = Duration::from_secs(90);

pub struct SambaAd {
    /// The test CA that issued the LDAPS certificate (PEM).
    pub ca_file: PathBuf,
    /// The administrator's password, for `password_file`.
    pub password_file: PathBuf,
    /// Never waited on: its standard input is the pipe that stops Samba with this process.
    _samba: Mutex<Child>,
    /// Held until the process ends.
    _lock: File,
}

static SAMBA: OnceLock<Result<SambaAd, String>> = OnceLock::new();

impl SambaAd {
    /// The process's Samba AD DC, provisioned and started on first use.
    pub fn get() -> &'static SambaAd {
        match SAMBA.get_or_init(SambaAd::start) {
            Ok(s) => s,
            Err(e) => panic!("Samba AD DC fixture: {e}"),
        }
    }

    fn start() -> Result<SambaAd, String> {
        for tool in [
            "/usr/sbin/samba",
            "/usr/bin/samba-tool",
            "/usr/bin/ldapmodify",
        ] {
            if !Path::new(tool).exists() {
                return Err(format!(
                    "{tool} is missing (apt-get install samba samba-ad-dc samba-ad-provision \
                     ldap-utils; `cargo xtask test` installs them)"
                ));
            }
        }
        let uid = std::fs::metadata("/proc/self")
            .map_err(|e| e.to_string())?
            .uid();
        if uid != 0 {
            return Err(format!(
                "Samba binds ports 389 and 636, which needs root (uid is {uid})"
            ));
        }
        // The ports are the machine's, so the lock is too: a fixed path, whatever TMPDIR says.
        let lock_path = Path::new(LOCK);
        let lock = File::create(lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
        let tmp = std::env::temp_dir();
        // A previous run's Samba stops when that process ends, a moment after its lock is
        // released: wait until it has let go of the ports.
        let since = Instant::now();
        while listening(636) || listening(389) {
            if since.elapsed() > PATIENCE {
                return Err(
                    "something else listens on 127.0.0.1:389/636 (a system Samba or \
                            slapd?); stop it"
                        .into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let dir = tmp.join("smimekit-samba-ad");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        for d in ["private", "state", "cache", "lock"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        provision(&dir)?;
        let (ca_file, cert, key) = make_tls(&dir, "IP:127.0.0.1");
        // Samba refuses a key file others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let conf = dir.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        let d = dir.display();
        let extra = format!(
            "[global]\n\ttls enabled = yes\n\ttls keyfile = {}\n\ttls certfile = {}\n\
             \ttls cafile = {}\n\tldap server require strong auth = yes\n\
             \tlog file = {d}/log.%m\n\tlog level = 1\n",
            key.display(),
            cert.display(),
            ca_file.display()
        );
        std::fs::write(&conf, text.replacen("[global]\n", &extra, 1)).map_err(|e| e.to_string())?;
        let password_file = dir.join("admin.pw");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;

        let log = File::create(dir.join("samba.out")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("/usr/sbin/samba")
            .args(["-i", "-M", "single", "-s"])
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn samba: {e}"))?;
        // Ready when an LDAPS search as the administrator answers.
        let since = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "samba exited ({status}): {}",
                    std::fs::read_to_string(dir.join("samba.out")).unwrap_or_default()
                ));
            }
            if listening(636)
                && ldap_tool(
                    &ca_file,
                    &["ldapsearch", "-s", "base", "-b", BASE, "dn"],
                    "",
                )
                .status
                .success()
            {
                break;
            }
            if since.elapsed() > PATIENCE {
                return Err(format!(
                    "samba did not answer on {LDAPS} within {} s: {}",
                    PATIENCE.as_secs(),
                    std::fs::read_to_string(dir.join("samba.out")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let s = SambaAd {
            ca_file,
            password_file,
            _samba: Mutex::new(child),
            _lock: lock,
        };
        s.try_modify(&format!(
            "dn: {PARTNERS}\nchangetype: add\nobjectClass: organizationalUnit\nou: Partners\n"
        ))?;
        Ok(s)
    }

    fn ldap(&self, args: &[&str], stdin: &str) -> Output {
        ldap_tool(&self.ca_file, args, stdin)
    }

    fn try_modify(&self, ldif: &str) -> Result<(), String> {
        let out = self.ldap(&["ldapmodify"], ldif);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ldapmodify failed: {}\n{ldif}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Applies an LDIF change (`changetype: add|modify|delete`) as the administrator.
    pub fn modify(&self, ldif: &str) {
        if let Err(e) = self.try_modify(ldif) {
            panic!("{e}");
        }
    }

    /// The entries below `base` matching `filter` as `ldapsearch -LLL` prints them (unwrapped
    /// lines, binary values base64 after `::`), references left out.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<LdifEntry> {
        let mut args = vec![
            "ldapsearch",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base,
            filter,
        ];
        args.extend_from_slice(attrs);
        let out = self.ldap(&args, "");
        assert!(
            out.status.success(),
            "ldapsearch {filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LdifEntry::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// A `[directory.NAME]` table for this domain controller (`extra` appended).
    pub fn config(&self, name: &str, url: &str, extra: &str) -> String {
        format!(
            "[directory.{name}]\nkind = \"ldap\"\nurl = \"{url}\"\nbase_dn = \"{BASE}\"\n\
             bind_dn = \"{ADMIN}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n\
             flavor = \"active-directory\"\ncontacts_dn = \"{PARTNERS}\"\n{extra}",
            self.password_file.display(),
            self.ca_file.display()
        )
    }
}

/// Runs an OpenLDAP client tool against [`LDAPS`] as the administrator, LDIF on stdin.
fn ldap_tool(ca_file: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .args(["-x", "-H", LDAPS, "-D", ADMIN, "-w", PASSWORD])
        .env("LDAPTLS_CACERT", ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).expect("write LDIF");
    }
    child.wait_with_output().expect("ldap tool output")
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn provision(dir: &Path) -> Result<(), String> {
    let d = dir.display();
    let out = Command::new("samba-tool")
        .args([
            "domain",
            "provision",
            "--realm=CORP.EXAMPLE",
            "--domain=CORP",
            "--server-role=dc",
            "--dns-backend=NONE",
            // The machine's own host name may be too long for a NetBIOS name.
            "--host-name=smimekitdc",
            "--option=netbios name=SMIMEKITDC",
            &format!("--adminpass={PASSWORD}"),
            &format!("--option=private dir={d}/private"),
            &format!("--option=state directory={d}/state"),
            &format!("--option=cache directory={d}/cache"),
            &format!("--option=lock directory={d}/lock"),
            &format!("--option=pid directory={d}/state"),
            "--option=interfaces=lo",
            "--option=bind interfaces only=yes",
            "--option=server services=ldap",
            &format!("--targetdir={d}"),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("samba-tool: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "samba-tool domain provision failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One entry of `ldapsearch -LLL -o ldif-wrap=no` output.
#[derive(Debug)]
pub struct LdifEntry {
    pub dn: String,
    /// (attribute name as the server returned it, value bytes).
    pub attrs: Vec<(String, Vec<u8>)>,
}

impl LdifEntry {
    fn parse(text: &str) -> Vec<LdifEntry> {
        use base64::Engine as _;
        let mut out: Vec<LdifEntry> = Vec::new();
        for line in text.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let value = match rest.strip_prefix(':') {
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .expect("base64 value"),
                None => rest.trim_start().as_bytes().to_vec(),
            };
            if name == "dn" {
                out.push(LdifEntry {
                    dn: String::from_utf8_lossy(&value).into_owned(),
                    attrs: Vec::new(),
                });
            } else if let Some(e) = out.last_mut() {
                e.attrs.push((name.to_string(), value));
            }
        }
        out
    }

    /// Values of the attribute named exactly so (case ignored, options significant).
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.attrs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Text values of the attribute.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values(name)
            .into_iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The attribute names present, as the server spelled them.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = Vec::new();
        for (a, _) in &self.attrs {
            if !n.contains(&a.as_str()) {
                n.push(a);
            }
        }
        n
    }
}
