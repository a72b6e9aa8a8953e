//! A throwaway PostgreSQL cluster for the store's tests and benchmarks: `initdb` in a temp
//! folder, `pg_ctl start` on a free loopback port, trust authentication for the superuser
//! `smimekit`, one fresh database per test ([`PgCluster::new_database`]).
//!
//! Run as root (CI, these machines), every PostgreSQL command runs as the `postgres` user
//! through `runuser`: `initdb` refuses root. The cluster is stopped (`pg_ctl stop -m
//! immediate`) and its folder removed when the [`PgCluster`] is dropped, which unwinding
//! does when a test fails. [`PgCluster::shared`] keeps one cluster for the whole test
//! process; a detached watchdog stops it when that process ends, however it ends.
//!
//! Binaries: `$SMIMEKIT_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package, which `cargo xtask test` installs).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A running cluster; stopped on drop.
#[derive(Debug)]
pub struct PgCluster {
    dir: Option<tempfile::TempDir>,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Mutex<Option<Child>>,
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The folder holding `initdb`, `pg_ctl`, `createdb`.
pub fn pg_bin() -> io::Result<PathBuf> {
    if let Some(b) = std::env::var_os("SMIMEKIT_PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql").map_err(|e| {
        other(format!(
            "/usr/lib/postgresql: {e} (apt-get install postgresql)"
        ))
    })? {
        let path = entry?.path();
        let version = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next()?.parse::<u32>().ok());
        let bin = path.join("bin");
        if let Some(v) = version
            && bin.join("initdb").is_file()
            && best.as_ref().is_none_or(|(b, _)| v > *b)
        {
            best = Some((v, bin));
        }
    }
    best.map(|(_, b)| b)
        .ok_or_else(|| other("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PgCluster {
    /// Starts a new cluster. `durable = false` turns fsync off (tests: faster, and a crash of
    /// a throwaway cluster loses nothing of value); benchmarks pass `true` for real figures.
    pub fn start(durable: bool) -> io::Result<Self> {
        let bin = pg_bin()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("smimekit-pg").tempdir()?;
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let data = dir.path().join("data");
        let mut cluster = Self {
            dir: Some(dir),
            bin,
            port: 0,
            as_postgres,
            watchdog: Mutex::new(None),
        };
        run(cluster
            .pg("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "smimekit",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data))?;
        let mut last = None;
        // The port is free when picked and taken by PostgreSQL a moment later: another
        // process may win it in between, so try a few.
        for _ in 0..5 {
            cluster.port = free_port()?;
            let mut opts = format!(
                "-k {} -p {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                cluster.folder().display(),
                cluster.port
            );
            if !durable {
                opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let log = cluster.folder().join("log");
            match run(cluster
                .pg("pg_ctl")
                .args(["-w", "-t", "120", "-l"])
                .arg(&log)
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts, "start"]))
            {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    last = Some(other(format!("{e}\n{tail}")));
                }
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        cluster.spawn_watchdog();
        Ok(cluster)
    }

    /// One cluster for the whole test process (fsync off), started on first use.
    pub fn shared() -> io::Result<Arc<PgCluster>> {
        static SHARED: OnceLock<Mutex<Option<Arc<PgCluster>>>> = OnceLock::new();
        let slot = SHARED.get_or_init(|| Mutex::new(None));
        let mut slot = slot.lock().map_err(|_| other("shared cluster poisoned"))?;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(Self::start(false)?);
        *slot = Some(c.clone());
        Ok(c)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://smimekit@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database (named from `prefix`, the process and a counter) and
    /// returns its URL.
    pub fn new_database(&self, prefix: &str) -> io::Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!(
            "{clean}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "smimekit", "-p"])
            .arg(self.port.to_string())
            .arg(&name))?;
        Ok(self.url(&name))
    }

    fn folder(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// A PostgreSQL command, as `postgres` when we are root.
    fn pg(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// A detached process that stops the cluster once this process is gone (a killed test
    /// binary runs no destructor).
    fn spawn_watchdog(&self) {
        let data = self.folder().join("data");
        let stop = format!(
            "{}{} -D '{}' -m immediate stop",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            data.display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.folder().display()
        );
        let child = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("sh")
                    .args(["-c", &script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            });
        if let (Ok(child), Ok(mut slot)) = (child, self.watchdog.lock()) {
            *slot = Some(child);
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.folder().join("data");
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(mut slot) = self.watchdog.lock()
            && let Some(mut w) = slot.take()
        {
            let _ = w.kill();
            let _ = w.wait();
        }
        // The folder (owned by postgres when we are root) goes with the TempDir.
        drop(self.dir.take());
    }
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| other(format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(other(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
