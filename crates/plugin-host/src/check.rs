//! The conformance suite behind `smimekit plugins check FILE`: what a vendor runs against a
//! plugin library before shipping it.
//!
//! [`check`] loads the file through the host's own loader ([`crate::load`], so the table
//! validation is the one production uses) and then calls every function of each table the
//! plugin provides, on the plugin's own lane (its worker thread, or the bounded blocking pool
//! when it declares `SMK_FLAG_THREAD_SAFE`), as the adapters do: every required call, each
//! optional one when present (the 1.1 `dir_open_pairs` opens, as the host does, when the
//! plugin has it), the error paths (an unknown address, key or selector, input the host never
//! sends), concurrency as the threading flag declares it, buffer accounting and the handles'
//! shutdown. A call that does not return within [`CheckInput::call_timeout`] is reported as
//! hung, and nothing is called after it. Each check ends [`Outcome::Passed`],
//! [`Outcome::Failed`] with what was expected and what was seen, or [`Outcome::Skipped`] with
//! why; [`CheckReport::passed`] says whether every *required* check passed (advisory checks
//! report what a robust plugin does beyond the contract's MUSTs).
//!
//! Buffer accounting: while a phase runs, the suite keeps every buffer the plugin hands out
//! and frees them together, each exactly once with the table's `free_buf` after zeroing it as
//! the host does, before the handles are closed. A pointer handed out again while the first is
//! still held is a buffer the plugin shares or keeps (the host would free it twice): it is
//! reported, and never freed by the suite, so that a broken plugin yields a report rather than
//! a crash. Leaks are measured as the growth of the C heap over repeated calls (glibc's
//! `mallinfo2`, looked up at run time; elsewhere that check is skipped).
//!
//! The directory checks write: they publish two probe certificates (self-signed, for
//! `smimekit-check@example.invalid`, embedded below) to a test address and remove them
//! again. Run them against a test directory. The key-store checks need a KEYREF of a test
//! key; without one they are skipped (and the run is incomplete). A key's answers are checked
//! with the caller's [`KeyProbe`] (the service's crypto engine: this crate has none): the
//! signature verifies with the key's certificate, a key wrapped to it comes back, an ECDH
//! secret agrees.
//!
//! Not done here: the port-level semantics every `Directory` backend shares (testkit's
//! conformance suite runs those through `&dyn Directory`), and crash isolation (a plugin that
//! aborts or faults takes the check with it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smimekit_core::Secret;
use smimekit_plugin_abi::{self as abi, Buf, Dir, DirectoryV1, Key, KeyStoreV1, Status, list};

use crate::ffi::{Handle, Library, Table};

/// The test recipient used when the caller names none.
pub const DEFAULT_ADDRESS: &str = "smimekit-check@example.invalid";

/// The probe certificates the directory checks publish (self-signed P-256, SAN
/// `smimekit-check@example.invalid`, valid until 2098; made with `openssl req -x509`).
const PROBE_A: &[u8] = include_bytes!("check/probe_a.der");
const PROBE_B: &[u8] = include_bytes!("check/probe_b.der");

/// How many calls the concurrency checks make at once.
const CONCURRENT_CALLS: usize = 16;
/// Calls per round of the leak check.
const LEAK_CALLS: usize = 300;

/// The public-key cryptography the suite checks a key's answers with (the service gives its
/// engine): a signature verified with the key's certificate, a key wrapped to the certificate
/// and unwrapped by the plugin, a secret agreed with it by ECDH. Without one, those checks
/// are skipped. Errors are text for the report.
pub trait KeyProbe: std::fmt::Debug + Send + Sync {
    /// SHA-256 of `message`.
    fn sha256(&self, message: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether `signature` over `message` verifies with the public key of `certificate` (DER).
    fn verify(
        &self,
        certificate: &[u8],
        scheme: smimekit_core::SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, String>;
    /// `key` RSA-encrypted to `certificate`: PKCS#1 v1.5, or OAEP with SHA-256 (MGF1 SHA-256,
    /// no label).
    fn rsa_encrypt(&self, certificate: &[u8], key: &[u8], oaep: bool) -> Result<Vec<u8>, String>;
    /// An ephemeral ECDH with the EC key of `certificate`: (the ephemeral point, uncompressed
    /// SEC1; the shared secret Z).
    fn ecdh(&self, certificate: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String>;
}

/// What the suite needs besides the file.
#[derive(Debug, Clone)]
pub struct CheckInput {
    /// The name handed to `dir_open`.
    pub directory_name: String,
    /// The `[directory.NAME]` table for `dir_open` (TOML text); `None`: `kind = "<kind>"` only.
    pub directory_config: Option<String>,
    /// The recipient the write checks publish to and remove from.
    pub address: String,
    /// A KEYREF of a test key, for the key-store checks.
    pub key: Option<String>,
    /// The `--cert` value handed to `store_open` with `key`.
    pub key_cert: Option<String>,
    /// The password or PIN for a store that answers `SMK_NEEDS_UNLOCK`.
    pub secret: Option<Secret>,
    /// Names the plugin may not use (the built-ins' key-store ids and directory kinds).
    pub reserved: Vec<String>,
    /// How long one call may take before the suite calls it hung.
    pub call_timeout: Duration,
    /// Checks that a key's signatures verify and that it decrypts and agrees what was made
    /// for its certificate.
    pub probe: Option<Arc<dyn KeyProbe>>,
}

impl Default for CheckInput {
    fn default() -> Self {
        Self {
            directory_name: "check".into(),
            directory_config: None,
            address: DEFAULT_ADDRESS.into(),
            key: None,
            key_cert: None,
            secret: None,
            reserved: Vec::new(),
            call_timeout: Duration::from_secs(30),
            probe: None,
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed { expected: String, seen: String },
    Skipped { why: String },
}

/// One check of the suite.
#[derive(Debug, Clone)]
pub struct Check {
    /// Stable id: the function or topic, then what is checked (`dir_lookup.unknown-address`).
    pub id: String,
    /// `library`, `keystore` or `directory`.
    pub interface: &'static str,
    /// Whether the contract requires it (a MUST); else advisory.
    pub required: bool,
    /// What is checked, as a sentence.
    pub title: String,
    pub outcome: Outcome,
    /// What else was seen (a passed check's detail, a hint).
    pub note: Option<String>,
}

/// The result of [`check`].
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub file: PathBuf,
    /// The interfaces the library provides (as loaded; empty when it could not be loaded).
    pub plugins: Vec<(&'static str, crate::PluginInfo)>,
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Every required check passed (none failed, none skipped).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| !c.required || c.outcome == Outcome::Passed)
    }

    /// (passed, failed, skipped) counts over every check.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in &self.checks {
            match c.outcome {
                Outcome::Passed => n.0 += 1,
                Outcome::Failed { .. } => n.1 += 1,
                Outcome::Skipped { .. } => n.2 += 1,
            }
        }
        n
    }
}

/// Runs the suite against the plugin at `path`. Never fails: a file that cannot be loaded is
/// a failed `load` check. Must run inside a tokio runtime (the plugin's lane is async).
pub async fn check(path: &Path, input: &CheckInput) -> CheckReport {
    check_library(path, crate::load(path), input).await
}

/// [`check`] for a library the caller loaded already with [`crate::load`] (to read its kind
/// first, say): `loaded` is that result for `path`.
pub async fn check_library(
    path: &Path,
    loaded: Result<Arc<Library>, crate::LoadError>,
    input: &CheckInput,
) -> CheckReport {
    let mut run = Run::new(input.call_timeout);
    let lib = match loaded {
        Ok(lib) => lib,
        Err(e) => {
            run.fail(
                "load",
                "library",
                true,
                "the library loads and its tables pass the host's validation",
                "a shared library exporting smimekit_plugin_entry with valid tables",
                e.reason,
            );
            return CheckReport {
                file: path.to_path_buf(),
                plugins: Vec::new(),
                checks: run.checks,
            };
        }
    };
    let mut plugins = Vec::new();
    if let Some(i) = lib.keystore_info() {
        plugins.push(("keystore", i.clone()));
    }
    if let Some(i) = lib.directory_info() {
        plugins.push(("directory", i.clone()));
    }
    let names: Vec<String> = plugins
        .iter()
        .map(|(i, p)| format!("{i} {:?}", p.name))
        .collect();
    run.pass(
        "load",
        "library",
        true,
        "the library loads and its tables pass the host's validation",
        Some(format!("provides {}", names.join(", "))),
    );
    for (iface, info) in &plugins {
        if input.reserved.contains(&info.name) {
            run.fail(
                "name.reserved",
                iface,
                true,
                "the name does not clash with a built-in plugin",
                "a name of your own (a built-in already uses it)",
                format!("{:?}", info.name),
            );
        } else {
            run.pass(
                "name.reserved",
                iface,
                true,
                "the name does not clash with a built-in plugin",
                None,
            );
        }
        let v = &info.version;
        let semver = v.split('.').count() >= 3
            && v.split(['.', '-', '+'])
                .take(3)
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if semver {
            run.pass(
                "version.format",
                iface,
                false,
                "the version string reads as MAJOR.MINOR.PATCH",
                None,
            );
        } else {
            run.fail(
                "version.format",
                iface,
                false,
                "the version string reads as MAJOR.MINOR.PATCH",
                "e.g. \"1.2.0\"",
                format!("{v:?}"),
            );
        }
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    if lib.dir().is_some() {
        let mut d = Phase::new(lib.clone(), ledger.clone(), &mut run, "directory");
        directory_checks(&mut d, input).await;
    }
    if lib.ks().is_some() {
        let mut k = Phase::new(lib.clone(), ledger.clone(), &mut run, "keystore");
        keystore_checks(&mut k, input).await;
    }
    let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
    let iface = "library";
    if l.problems.is_empty() {
        run.pass(
            "buffers",
            iface,
            true,
            "every buffer handed out is the plugin's own and is freed once with free_buf",
            Some(format!(
                "{} buffers handed out, free_buf called once for each of {}",
                l.handed_out, l.freed
            )),
        );
    } else {
        run.fail(
            "buffers",
            iface,
            true,
            "every buffer handed out is the plugin's own and is freed once with free_buf",
            "a fresh allocation per output (ptr NULL only with len 0), freed by free_buf",
            l.problems.join("; "),
        );
    }
    if l.bad_status.is_empty() {
        run.pass(
            "status.range",
            iface,
            true,
            "every status returned is one of the ABI's codes",
            None,
        );
    } else {
        run.fail(
            "status.range",
            iface,
            true,
            "every status returned is one of the ABI's codes",
            format!("0..={}", Status::MAX),
            l.bad_status.join("; "),
        );
    }
    if l.bad_message.is_empty() {
        run.pass(
            "status.messages",
            iface,
            false,
            "every failure message is UTF-8",
            Some(format!("failure messages seen: {}", l.messages)),
        );
    } else {
        run.fail(
            "status.messages",
            iface,
            false,
            "every failure message is UTF-8",
            "UTF-8 text",
            l.bad_message.join("; "),
        );
    }
    CheckReport {
        file: path.to_path_buf(),
        plugins,
        checks: run.checks,
    }
}

// ---- bookkeeping ----

#[derive(Debug)]
struct Run {
    checks: Vec<Check>,
    timeout: Duration,
}

impl Run {
    fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
        }
    }

    fn push(
        &mut self,
        id: &str,
        interface: &'static str,
        required: bool,
        title: &str,
        o: Outcome,
        note: Option<String>,
    ) {
        self.checks.push(Check {
            id: id.to_string(),
            interface,
            required,
            title: title.to_string(),
            outcome: o,
            note,
        });
    }

    fn pass(&mut self, id: &str, i: &'static str, req: bool, title: &str, note: Option<String>) {
        self.push(id, i, req, title, Outcome::Passed, note);
    }

    fn fail(
        &mut self,
        id: &str,
        i: &'static str,
        req: bool,
        title: &str,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) {
        let o = Outcome::Failed {
            expected: expected.into(),
            seen: seen.into(),
        };
        self.push(id, i, req, title, o, None);
    }

    fn skip(&mut self, id: &str, i: &'static str, req: bool, title: &str, why: impl Into<String>) {
        let o = Outcome::Skipped { why: why.into() };
        self.push(id, i, req, title, o, None);
    }
}

/// A buffer the suite holds until the phase frees it.
#[derive(Debug)]
struct Held {
    len: usize,
    from: &'static str,
    /// Handed out again while held: never freed by the suite.
    shared: bool,
}

/// Every buffer and status the plugin returned.
#[derive(Debug, Default)]
struct Ledger {
    held: HashMap<usize, Held>,
    handed_out: usize,
    freed: usize,
    messages: usize,
    problems: Vec<String>,
    bad_status: Vec<String>,
    bad_message: Vec<String>,
}

impl Ledger {
    fn record(&mut self, from: &'static str, status: Status, ptr: usize, len: usize, bytes: &[u8]) {
        if status.0 > Status::MAX {
            self.bad_status
                .push(format!("{from} returned {} (undefined)", status.0));
        }
        if ptr == 0 {
            if len != 0 {
                self.problems
                    .push(format!("{from} set len {len} with a NULL ptr"));
            }
        } else {
            self.handed_out += 1;
            match self.held.get_mut(&ptr) {
                Some(h) if !h.shared => {
                    h.shared = true;
                    self.problems.push(format!(
                        "{from} handed out buffer {ptr:#x} again while the one {} returned at that address was not yet freed (a shared or kept buffer: the host frees each buffer once, so this is a double free)",
                        h.from
                    ));
                }
                Some(_) => {}
                None => {
                    self.held.insert(
                        ptr,
                        Held {
                            len,
                            from,
                            shared: false,
                        },
                    );
                }
            }
        }
        if status != Status::OK && !bytes.is_empty() {
            self.messages += 1;
            if std::str::from_utf8(bytes).is_err() {
                self.bad_message.push(format!(
                    "{from} failed with a message that is not UTF-8 ({} bytes)",
                    bytes.len()
                ));
            }
        }
    }
}

/// Why a call gave no answer.
#[derive(Debug)]
enum Fault {
    /// The function is NULL.
    Missing,
    /// It did not return within the timeout; the lane is stuck.
    Hung(&'static str),
    /// The lane stopped (a panic in the host's job).
    Stopped,
}

/// One call's answer: its status and a copy of its output.
#[derive(Debug, Clone)]
struct Answer<R> {
    status: Status,
    bytes: Vec<u8>,
    value: R,
}

impl<R> Answer<R> {
    fn ok(&self) -> bool {
        self.status == Status::OK
    }

    /// The status and message, for a report.
    fn show(&self) -> String {
        let name = self
            .status
            .c_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("status {}", self.status.0));
        if self.bytes.is_empty() || self.status == Status::OK {
            name
        } else {
            format!("{name}: {}", String::from_utf8_lossy(&self.bytes))
        }
    }
}

/// Calls counted in flight, for the concurrency checks.
#[derive(Debug, Default)]
struct Overlap {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// One interface's checks: the plugin's lane, the shared ledger, the report.
struct Phase<'a> {
    lib: Arc<Library>,
    ledger: Arc<Mutex<Ledger>>,
    overlap: Arc<Overlap>,
    run: &'a mut Run,
    iface: &'static str,
    /// Set when a call hung: nothing more is called.
    hung: Option<&'static str>,
}

impl<'a> Phase<'a> {
    fn new(
        lib: Arc<Library>,
        ledger: Arc<Mutex<Ledger>>,
        run: &'a mut Run,
        iface: &'static str,
    ) -> Self {
        Self {
            lib,
            ledger,
            overlap: Arc::default(),
            run,
            iface,
            hung: None,
        }
    }

    fn pass(&mut self, id: &str, req: bool, title: &str, note: Option<String>) {
        self.run.pass(id, self.iface, req, title, note);
    }

    fn fail(
        &mut self,
        id: &str,
        req: bool,
        title: &str,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) {
        self.run.fail(id, self.iface, req, title, expected, seen);
    }

    fn skip(&mut self, id: &str, req: bool, title: &str, why: impl Into<String>) {
        self.run.skip(id, self.iface, req, title, why);
    }

    /// Pass when `ok`, else fail with `expected` and `seen`.
    fn expect(&mut self, id: &str, req: bool, title: &str, ok: bool, expected: &str, seen: String) {
        if ok {
            self.pass(id, req, title, None);
        } else {
            self.fail(id, req, title, expected, seen);
        }
    }

    /// Reports a call that gave no answer as a failed check.
    fn fault(&mut self, id: &str, req: bool, title: &str, f: Fault) {
        match f {
            Fault::Missing => self.skip(id, req, title, "the function is NULL"),
            Fault::Hung(what) => {
                let t = self.run.timeout;
                self.fail(
                    id,
                    req,
                    title,
                    format!("{what} returns within {t:?}"),
                    "it did not return",
                );
            }
            Fault::Stopped => self.fail(id, req, title, "an answer", "the plugin's lane stopped"),
        }
    }

    /// Runs `f` on the plugin's lane with the timeout.
    async fn lane<R: Send + 'static>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&Library) -> R + Send + 'static,
    ) -> Result<R, Fault> {
        if let Some(h) = self.hung {
            return Err(Fault::Hung(h));
        }
        let l = self.lib.clone();
        let lib = self.lib.clone();
        let fut = lib.lane.call(move || f(&l));
        match tokio::time::timeout(self.run.timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(Fault::Stopped),
            Err(_) => {
                self.hung = Some(what);
                Err(Fault::Hung(what))
            }
        }
    }

    /// Calls one table function with a fresh output buffer, records the buffer (held until
    /// [`Phase::release`]) and the status.
    async fn call<T, R>(
        &mut self,
        what: &'static str,
        table: fn(&Library) -> Option<&T>,
        f: impl FnOnce(&T, *mut Buf) -> Option<(Status, R)> + Send + 'static,
    ) -> Result<Answer<R>, Fault>
    where
        T: Table + 'static,
        R: Send + 'static,
    {
        let ov = self.overlap.clone();
        let r = self
            .lane(what, move |l| {
                let t = table(l)?;
                let mut buf = Buf::empty();
                let n = ov.now.fetch_add(1, Ordering::SeqCst) + 1;
                ov.max.fetch_max(n, Ordering::SeqCst);
                let r = f(t, &mut buf);
                ov.now.fetch_sub(1, Ordering::SeqCst);
                let (status, value) = r?;
                let bytes = if buf.ptr.is_null() || buf.len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: the plugin handed out `len` readable bytes at `ptr`, valid until
                    // freed (the suite frees it later, in `release`).
                    unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec()
                };
                Some((status, buf.ptr as usize, buf.len, bytes, value))
            })
            .await?;
        let (status, ptr, len, bytes, value) = r.ok_or(Fault::Missing)?;
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(what, status, ptr, len, &bytes);
        Ok(Answer {
            status,
            bytes,
            value,
        })
    }

    /// Frees every held buffer once with the table's `free_buf` (shared ones are kept: freeing
    /// them would be the double free the report names).
    async fn release<T: Table + 'static>(&mut self, table: fn(&Library) -> Option<&T>) {
        let held: Vec<(usize, usize)> = {
            let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            let all: Vec<(usize, Held)> = l.held.drain().collect();
            all.into_iter()
                .filter(|(_, h)| !h.shared)
                .map(|(p, h)| (p, h.len))
                .collect()
        };
        if held.is_empty() {
            return;
        }
        let n = held.len();
        let r = self
            .lane("free_buf", move |l| {
                let free = table(l).and_then(|t| t.free_fn())?;
                for (p, len) in held {
                    let p = p as *mut u8;
                    // SAFETY: each pointer was handed out by this table's functions, `len`
                    // writable bytes of the plugin's own heap (the contract), zeroed as the
                    // host zeroes them and freed exactly once here.
                    unsafe {
                        std::ptr::write_bytes(p, 0, len);
                        free(p, len)
                    };
                }
                Some(())
            })
            .await;
        if let Ok(Some(())) = r {
            self.ledger.lock().unwrap_or_else(|e| e.into_inner()).freed += n;
        }
    }

    /// The C heap's growth over `LEAK_CALLS` calls of `f` (each output freed at once), twice;
    /// `None` when the heap cannot be measured here.
    async fn leak<T: Table + 'static>(
        &mut self,
        what: &'static str,
        table: fn(&Library) -> Option<&T>,
        f: impl Fn(&T, *mut Buf) -> Status + Send + Sync + 'static,
    ) -> Result<Result<[isize; 2], String>, Fault> {
        if heap_in_use().is_none() {
            return Ok(Err(
                "the C heap cannot be measured on this platform (needs glibc's mallinfo2)".into(),
            ));
        }
        // Two outputs held at once first: a plugin that hands out one buffer twice would have
        // the loop below free it twice.
        let f = Arc::new(f);
        for _ in 0..2 {
            let g = f.clone();
            self.call(what, table, move |t, out| Some((g(t, out), ())))
                .await?;
        }
        if !self
            .ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .problems
            .is_empty()
        {
            return Ok(Err(
                "the buffer problems reported under `buffers` come first (freeing a shared buffer in a loop would crash the check)".into(),
            ));
        }
        self.release(table).await;
        let r = self
            .lane("leak loop", move |l| {
                let t = table(l)?;
                let free = t.free_fn()?;
                let round = |n: usize| {
                    let mut count = 0;
                    for _ in 0..n {
                        let mut buf = Buf::empty();
                        f(t, &mut buf);
                        if !buf.ptr.is_null() {
                            count += 1;
                            // SAFETY: a buffer the plugin just handed out (writable, its
                            // own), zeroed as the host does and freed once.
                            unsafe {
                                std::ptr::write_bytes(buf.ptr, 0, buf.len);
                                free(buf.ptr, buf.len)
                            };
                        }
                    }
                    count
                };
                // Warm up: caches a plugin fills once are not leaks.
                let mut freed = round(LEAK_CALLS / 3);
                let mut growth = [0isize; 2];
                for g in &mut growth {
                    let before = heap_in_use()?;
                    freed += round(LEAK_CALLS);
                    *g = heap_in_use()? as isize - before as isize;
                }
                Some((growth, freed))
            })
            .await?;
        let Some((growth, freed)) = r else {
            return Ok(Err("the heap could not be measured".into()));
        };
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.handed_out += freed;
        l.freed += freed;
        Ok(Ok(growth))
    }

    /// `CONCURRENT_CALLS` calls of `make()` at once; the answers' outputs.
    async fn concurrent<T, F>(
        &mut self,
        what: &'static str,
        table: fn(&Library) -> Option<&T>,
        make: impl Fn() -> F,
    ) -> Result<(Vec<Answer<()>>, usize), Fault>
    where
        T: Table + 'static,
        F: FnOnce(&T, *mut Buf) -> Option<(Status, ())> + Send + 'static,
    {
        self.overlap.max.store(0, Ordering::SeqCst);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT_CALLS {
            let (lib, ov, f) = (self.lib.clone(), self.overlap.clone(), make());
            set.spawn(async move {
                let l = lib.clone();
                lib.lane
                    .call(move || {
                        let t = table(&l)?;
                        let mut buf = Buf::empty();
                        let n = ov.now.fetch_add(1, Ordering::SeqCst) + 1;
                        ov.max.fetch_max(n, Ordering::SeqCst);
                        // Let the other calls start: overlap is what is being checked.
                        std::thread::yield_now();
                        let r = f(t, &mut buf);
                        ov.now.fetch_sub(1, Ordering::SeqCst);
                        let (status, ()) = r?;
                        let bytes = if buf.ptr.is_null() || buf.len == 0 {
                            Vec::new()
                        } else {
                            // SAFETY: as in `call`.
                            unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec()
                        };
                        Some((status, buf.ptr as usize, buf.len, bytes))
                    })
                    .await
            });
        }
        let timeout = self.run.timeout;
        let mut out = Vec::new();
        let all = async {
            let mut rs = Vec::new();
            while let Some(r) = set.join_next().await {
                rs.push(r);
            }
            rs
        };
        let rs = match tokio::time::timeout(timeout, all).await {
            Ok(rs) => rs,
            Err(_) => {
                self.hung = Some(what);
                return Err(Fault::Hung(what));
            }
        };
        for r in rs {
            let (status, ptr, len, bytes) = r
                .map_err(|_| Fault::Stopped)?
                .map_err(|_| Fault::Stopped)?
                .ok_or(Fault::Missing)?;
            self.ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(what, status, ptr, len, &bytes);
            out.push(Answer {
                status,
                bytes,
                value: (),
            });
        }
        Ok((out, self.overlap.max.load(Ordering::SeqCst)))
    }

    /// Runs a close function once, with the timeout.
    async fn close(
        &mut self,
        id: &str,
        what: &'static str,
        f: impl FnOnce(&Library) -> bool + Send + 'static,
    ) {
        let title = format!("{what} returns (each handle is closed once)");
        match self.lane(what, f).await {
            Ok(true) => self.pass(id, true, &title, None),
            Ok(false) => self.skip(id, true, &title, "the function is NULL"),
            Err(e) => self.fault(id, true, &title, e),
        }
    }

    fn thread_safe(&self) -> bool {
        self.lib
            .directory_info()
            .or(self.lib.keystore_info())
            .is_some_and(|i| i.thread_safe)
    }
}

/// Bytes allocated on the C heap now (glibc's `mallinfo2`: small blocks in use plus mmapped
/// ones), or `None` where that is not available.
fn heap_in_use() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[repr(C)]
        struct Mallinfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        type F = unsafe extern "C" fn() -> Mallinfo2;
        static MALLINFO2: std::sync::OnceLock<Option<F>> = std::sync::OnceLock::new();
        let f = MALLINFO2.get_or_init(|| {
            let this = libloading::os::unix::Library::this();
            // SAFETY: glibc ≥ 2.33 exports `mallinfo2` with this signature; older ones lack
            // the symbol and the check is skipped.
            let f = unsafe { this.get::<F>(b"mallinfo2\0") }.ok().map(|s| *s);
            // The process's own handle: kept open so that the pointer stays valid.
            std::mem::forget(this);
            f
        });
        // SAFETY: `mallinfo2` takes nothing and returns the struct by value.
        let m = unsafe { (*f)?() };
        Some(m.uordblks + m.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Whether the bytes start like one DER SEQUENCE spanning them all (a certificate, an ECDSA
/// signature).
fn der_sequence(b: &[u8]) -> bool {
    let (Some(&0x30), Some(&l0)) = (b.first(), b.get(1)) else {
        return false;
    };
    let (len, head) = match l0 {
        l if l < 0x80 => (l as usize, 2),
        0x81..=0x84 => {
            let n = (l0 & 0x7f) as usize;
            let Some(bytes) = b.get(2..2 + n) else {
                return false;
            };
            (
                bytes.iter().fold(0usize, |a, &x| a << 8 | x as usize),
                2 + n,
            )
        }
        _ => return false,
    };
    head + len == b.len()
}

fn certs(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    list::decode(bytes).map(|l| l.into_iter().map(<[u8]>::to_vec).collect())
}

fn show_certs(c: &[Vec<u8>]) -> String {
    let names: Vec<&str> = c
        .iter()
        .map(|c| match c.as_slice() {
            x if x == PROBE_A => "probe A",
            x if x == PROBE_B => "probe B",
            _ => "another certificate",
        })
        .collect();
    format!("[{}]", names.join(", "))
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

// ---- directory ----

type Dt = DirectoryV1;

fn dir_table(l: &Library) -> Option<&DirectoryV1> {
    l.dir()
}

/// Opens a handle with `dir_open` (the table as TOML text) or, `pairs`, with `dir_open_pairs`
/// (the table as the host converts it, [`crate::directory::config_pairs`]).
async fn dir_open(
    p: &mut Phase<'_>,
    name: &str,
    config: &str,
    pairs: bool,
) -> Result<Result<Answer<usize>, String>, Fault> {
    let n = name.to_string();
    if pairs {
        let c = match crate::directory::config_pairs(config) {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("the table cannot be given as pairs: {e}"))),
        };
        return p
            .call("dir_open_pairs", dir_table, move |t: &Dt, err| {
                let f = t.dir_open_pairs?;
                let mut h: *mut Dir = std::ptr::null_mut();
                // SAFETY: slices and the out-pointer are valid for the call; the lane
                // serialises as the plugin's flags require.
                let s = unsafe { f(n.as_ptr(), n.len(), c.as_ptr(), c.len(), &mut h, err) };
                Some((s, h as usize))
            })
            .await
            .map(Ok);
    }
    let c = config.to_string();
    p.call("dir_open", dir_table, move |t: &Dt, err| {
        let f = t.dir_open?;
        let mut h: *mut Dir = std::ptr::null_mut();
        // SAFETY: slices and the out-pointer are valid for the call; the lane serialises as the
        // plugin's flags require.
        let s = unsafe { f(n.as_ptr(), n.len(), c.as_ptr(), c.len(), &mut h, err) };
        Some((s, h as usize))
    })
    .await
    .map(Ok)
}

async fn dir_lookup(p: &mut Phase<'_>, h: Handle<Dir>, address: &str) -> Result<Answer<()>, Fault> {
    let a = address.to_string();
    p.call("dir_lookup", dir_table, move |t: &Dt, out| {
        let f = t.dir_lookup?;
        // SAFETY: live handle; `a` valid for the call.
        Some((unsafe { f(h.get(), a.as_ptr(), a.len(), out) }, ()))
    })
    .await
}

async fn dir_publish(
    p: &mut Phase<'_>,
    h: Handle<Dir>,
    address: &str,
    cert: &[u8],
    mode: u32,
) -> Result<Answer<()>, Fault> {
    dir_publish_kind(p, h, address, cert, mode, abi::RECIPIENT_MAILBOX).await
}

async fn dir_publish_kind(
    p: &mut Phase<'_>,
    h: Handle<Dir>,
    address: &str,
    cert: &[u8],
    mode: u32,
    k: u32,
) -> Result<Answer<()>, Fault> {
    let (a, c) = (address.to_string(), cert.to_vec());
    p.call("dir_publish", dir_table, move |t: &Dt, out| {
        let f = t.dir_publish?;
        // SAFETY: live handle; `a` and `c` valid for the call.
        Some((
            unsafe {
                f(
                    h.get(),
                    a.as_ptr(),
                    a.len(),
                    k,
                    c.as_ptr(),
                    c.len(),
                    mode,
                    out,
                )
            },
            (),
        ))
    })
    .await
}

async fn dir_unpublish(
    p: &mut Phase<'_>,
    h: Handle<Dir>,
    address: &str,
    cert: &[u8],
) -> Result<Answer<()>, Fault> {
    let (a, c) = (address.to_string(), cert.to_vec());
    p.call("dir_unpublish", dir_table, move |t: &Dt, out| {
        let f = t.dir_unpublish?;
        // SAFETY: live handle; `a` and `c` valid for the call.
        Some((
            unsafe { f(h.get(), a.as_ptr(), a.len(), c.as_ptr(), c.len(), out) },
            (),
        ))
    })
    .await
}

async fn dir_close(p: &mut Phase<'_>, id: &str, h: Handle<Dir>) {
    p.release(dir_table).await;
    p.close(id, "dir_close", move |l| {
        match l.dir().and_then(|t| t.dir_close) {
            Some(f) => {
                // SAFETY: a handle from dir_open, closed once, after its buffers were freed.
                unsafe { f(h.get()) };
                true
            }
            None => false,
        }
    })
    .await;
}

/// A list of certificates from an answer, or what is wrong with it.
fn cert_list(a: &Answer<()>) -> Result<Vec<Vec<u8>>, String> {
    if !a.ok() {
        return Err(a.show());
    }
    let c = certs(&a.bytes).ok_or_else(|| "SMK_OK with output that is not a list".to_string())?;
    if let Some(bad) = c.iter().position(|c| !der_sequence(c)) {
        return Err(format!("item {bad} of the list is not a DER certificate"));
    }
    Ok(c)
}

/// `dir_lookup` at `address` equals `want` (order-insensitive).
async fn lookup_is(
    p: &mut Phase<'_>,
    h: Handle<Dir>,
    id: &str,
    title: &str,
    address: &str,
    want: &[&[u8]],
) {
    let want: Vec<Vec<u8>> = want.iter().map(|c| c.to_vec()).collect();
    match dir_lookup(p, h, address).await {
        Ok(a) => match cert_list(&a) {
            Ok(c) if sorted(c.clone()) == sorted(want.clone()) => p.pass(id, true, title, None),
            Ok(c) => p.fail(id, true, title, show_certs(&want), show_certs(&c)),
            Err(e) => p.fail(
                id,
                true,
                title,
                format!("SMK_OK with {}", show_certs(&want)),
                e,
            ),
        },
        Err(f) => p.fault(id, true, title, f),
    }
}

async fn directory_checks(p: &mut Phase<'_>, input: &CheckInput) {
    let kind = p
        .lib
        .directory_info()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let (config, given) = match &input.directory_config {
        Some(c) => (c.clone(), true),
        None => (format!("kind = \"{kind}\"\n"), false),
    };
    // The host opens with dir_open_pairs when the plugin has it (1.1), else dir_open; the
    // second handle below is opened the other way, so that both are checked.
    let pairs = p.lib.dir().is_some_and(|t| t.dir_open_pairs.is_some());
    let (open_id, title) = if pairs {
        (
            "dir_open_pairs",
            "dir_open_pairs opens the configured directory (SMK_OK and a non-NULL handle)",
        )
    } else {
        (
            "dir_open",
            "dir_open opens the configured directory (SMK_OK and a non-NULL handle)",
        )
    };
    let h1 = match dir_open(p, &input.directory_name, &config, pairs).await {
        Ok(Ok(a)) if a.ok() && a.value != 0 => {
            p.pass(open_id, true, title, None);
            Handle(a.value as *mut Dir)
        }
        Ok(Err(e)) => {
            p.fail(open_id, true, title, "a table of plain keys and values", e);
            return;
        }
        Ok(Ok(a)) => {
            let seen = if a.ok() {
                "SMK_OK with a NULL handle".to_string()
            } else {
                a.show()
            };
            let hint = if given {
                String::new()
            } else {
                format!(
                    " (it was given only `kind = \"{kind}\"`: give a test directory's table with --config F holding [directory.NAME] kind = \"{kind}\")"
                )
            };
            p.fail(
                open_id,
                true,
                title,
                "SMK_OK and a handle",
                format!("{seen}{hint}"),
            );
            p.release(dir_table).await;
            return;
        }
        Err(f) => {
            p.fault("dir_open", true, title, f);
            return;
        }
    };

    // An unknown address: an empty list, not an error.
    let unknown = format!(
        "smimekit-check-unknown-{}@example.invalid",
        std::process::id()
    );
    let title = "dir_lookup of an address the directory does not know is SMK_NOT_FOUND (or SMK_OK with an empty list)";
    let id = "dir_lookup.unknown-address";
    let mut unknown_status = Status::OK;
    match dir_lookup(p, h1, &unknown).await {
        Ok(a) => {
            unknown_status = a.status;
            match cert_list(&a) {
                _ if a.status == Status::NOT_FOUND => p.pass(id, true, title, None),
                Ok(c) if c.is_empty() => p.pass(
                    id,
                    true,
                    title,
                    Some(
                        "an empty list: the host reads it as \"none here\"; SMK_NOT_FOUND says what happened"
                            .into(),
                    ),
                ),
                Ok(c) => p.fail(id, true, title, "SMK_NOT_FOUND or []", show_certs(&c)),
                Err(e) => p.fail(id, true, title, "SMK_NOT_FOUND or SMK_OK with an empty list", e),
            }
        }
        Err(f) => p.fault(id, true, title, f),
    }

    let t = p.lib.dir().copied();
    let has_publish = t.is_some_and(|t| t.dir_publish.is_some());
    let has_unpublish = t.is_some_and(|t| t.dir_unpublish.is_some());
    let has_recipients = t.is_some_and(|t| t.dir_recipients.is_some());
    let addr = input.address.clone();
    let mut wrote = false;

    // Writes, when the plugin publishes.
    if !has_publish {
        for id in [
            "dir_publish.merge-new",
            "dir_publish.merge-same",
            "dir_publish.merge-second",
            "dir_publish.replace",
        ] {
            p.skip(
                id,
                false,
                "dir_publish (optional)",
                "the plugin is read-only (dir_publish is NULL)",
            );
        }
    } else {
        // The test address must hold nothing but probes from an earlier run.
        let before = match dir_lookup(p, h1, &addr).await {
            Ok(a) => cert_list(&a).ok(),
            Err(_) => None,
        };
        let foreign = before
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c != PROBE_A && c != PROBE_B));
        if foreign {
            p.skip(
                "dir_publish.merge-new",
                true,
                "dir_publish adds a certificate to a new recipient",
                format!("{addr} already holds certificates of its own: give an unused test address with --address"),
            );
        } else {
            if has_unpublish && before.as_ref().is_some_and(|c| !c.is_empty()) {
                // Left over from an interrupted run.
                for c in [PROBE_A, PROBE_B] {
                    let _ = dir_unpublish(p, h1, &addr, c).await;
                }
            }
            wrote = true;
            write_checks(p, h1, &addr).await;
        }
    }

    if t.is_some_and(|t| t.dir_recipient.is_some()) {
        recipient_check(p, h1, wrote.then_some(addr.as_str()), &unknown).await;
    } else {
        p.skip(
            "dir_recipient",
            false,
            "dir_recipient (optional, since 1.1)",
            "dir_recipient is NULL (the host uses dir_lookup)",
        );
    }

    if wrote && (has_recipients || t.is_some_and(|t| t.dir_recipient.is_some())) {
        kind_checks(p, h1, has_unpublish).await;
    }

    if has_recipients {
        recipients_check(p, h1, wrote.then_some(addr.as_str())).await;
    } else {
        p.skip(
            "dir_recipients",
            false,
            "dir_recipients (optional)",
            "dir_recipients is NULL",
        );
    }

    // Leaks: repeated lookups (of the test address when it holds a certificate, so that every
    // call returns a buffer).
    let leak_addr = if wrote { addr.clone() } else { unknown.clone() };
    let title =
        "repeated calls do not grow the heap (each output freed with free_buf releases everything)";
    let hd = h1;
    let r = p
        .leak("dir_lookup", dir_table, move |t: &Dt, out| {
            match t.dir_lookup {
                // SAFETY: live handle; the address is valid for the call.
                Some(f) => unsafe { f(hd.get(), leak_addr.as_ptr(), leak_addr.len(), out) },
                None => Status::UNSUPPORTED,
            }
        })
        .await;
    leak_report(p, "dir_lookup.leak", title, r);

    concurrency_dir(p, h1, if wrote { &addr } else { &unknown }, wrote).await;

    // Bad input the host never sends: advisory. At an address of its own, so that a plugin
    // that stores the bytes does not spoil the checks that follow.
    if wrote {
        let title = "dir_publish refuses bytes that are not a certificate";
        let junk_addr = format!("smimekit-check-junk-{}@example.invalid", std::process::id());
        let junk = b"not a certificate";
        match dir_publish(p, h1, &junk_addr, junk, abi::PUBLISH_MERGE).await {
            Ok(a) if !a.ok() => p.pass(
                "dir_publish.not-a-certificate",
                false,
                title,
                Some(a.show()),
            ),
            Ok(_) => {
                p.fail(
                    "dir_publish.not-a-certificate",
                    false,
                    title,
                    "SMK_MALFORMED or SMK_REJECTED",
                    "SMK_OK (it stored bytes that are not a certificate)",
                );
                if has_unpublish {
                    let _ = dir_unpublish(p, h1, &junk_addr, junk).await;
                }
            }
            Err(f) => p.fault("dir_publish.not-a-certificate", false, title, f),
        }
    }

    // Unpublish: removes, and cleans up the probes.
    if has_unpublish {
        if wrote {
            let title = "dir_unpublish removes one certificate and returns what remains";
            let mut seen = Vec::new();
            let mut ok = true;
            for (c, rest) in [(PROBE_A, vec![PROBE_B.to_vec()]), (PROBE_B, vec![])] {
                match dir_unpublish(p, h1, &addr, c).await {
                    Ok(a) => match cert_list(&a) {
                        Ok(l) => {
                            ok &= sorted(l.clone()) == sorted(rest.clone());
                            seen.push(show_certs(&l));
                        }
                        Err(e) => {
                            ok = false;
                            seen.push(e);
                        }
                    },
                    Err(f) => {
                        p.fault("dir_unpublish.remove", true, title, f);
                        break;
                    }
                }
            }
            if seen.len() == 2 {
                p.expect(
                    "dir_unpublish.remove",
                    true,
                    title,
                    ok,
                    "[probe B], then []",
                    seen.join(", then "),
                );
            }
            lookup_is(
                p,
                h1,
                "dir_unpublish.read-back",
                "dir_lookup after unpublishing is empty",
                &addr,
                &[],
            )
            .await;
        }
        let title = "dir_unpublish at an address with no recipient is SMK_NOT_FOUND";
        match dir_unpublish(p, h1, &unknown, PROBE_A).await {
            Ok(a) => p.expect(
                "dir_unpublish.unknown-address",
                true,
                title,
                a.status == Status::NOT_FOUND,
                "SMK_NOT_FOUND",
                a.show(),
            ),
            Err(f) => p.fault("dir_unpublish.unknown-address", true, title, f),
        }
    } else {
        p.skip(
            "dir_unpublish",
            false,
            "dir_unpublish (optional)",
            "dir_unpublish is NULL",
        );
        if wrote && let Some(c) = p.run.checks.last_mut() {
            c.note = Some(format!(
                "probe B stays published at {addr}: remove it by hand"
            ));
        }
    }

    // A 1.1 plugin is opened with dir_open_pairs; dir_open (required, for hosts before 1.1)
    // may open too, or refuse with SMK_UNSUPPORTED and a message saying so.
    if pairs {
        let title = "dir_open (the table as TOML text, for hosts before 1.1) opens too or says it needs 1.1";
        match dir_open(p, &input.directory_name, &config, false).await {
            Ok(Ok(a)) if a.ok() && a.value != 0 => {
                p.pass("dir_open", false, title, None);
                dir_close(p, "dir_close.toml", Handle(a.value as *mut Dir)).await;
            }
            Ok(Ok(a)) if a.status == Status::UNSUPPORTED && !a.bytes.is_empty() => {
                p.pass("dir_open", false, title, Some(a.show()));
            }
            Ok(Ok(a)) => p.fail(
                "dir_open",
                false,
                title,
                "SMK_OK and a handle, or SMK_UNSUPPORTED with a message",
                a.show(),
            ),
            Ok(Err(e)) => p.fail("dir_open", false, title, "an answer", e),
            Err(f) => p.fault("dir_open", false, title, f),
        }
    }

    // Shutdown: a second handle outlives the first.
    let title = "a second handle keeps working after the first is closed";
    match dir_open(p, &input.directory_name, &config, pairs).await {
        Ok(Ok(a)) if a.ok() && a.value != 0 => {
            let h2 = Handle(a.value as *mut Dir);
            dir_close(p, "dir_close", h1).await;
            match dir_lookup(p, h2, &unknown).await {
                Ok(a) => p.expect(
                    "dir_close.other-handle",
                    true,
                    title,
                    a.status == unknown_status,
                    "the answer the first handle gave to the same lookup",
                    a.show(),
                ),
                Err(f) => p.fault("dir_close.other-handle", true, title, f),
            }
            dir_close(p, "dir_close.second", h2).await;
        }
        Ok(r) => {
            p.fail(
                "dir_close.other-handle",
                true,
                title,
                "a second dir_open is SMK_OK",
                r.map_or_else(|e| e, |a| a.show()),
            );
            dir_close(p, "dir_close", h1).await;
        }
        Err(f) => {
            p.fault("dir_close.other-handle", true, title, f);
            dir_close(p, "dir_close", h1).await;
        }
    }
}

/// One publish of the write sequence: id, title, certificate, mode, the list expected after.
type Step = (
    &'static str,
    &'static str,
    &'static [u8],
    u32,
    &'static [&'static [u8]],
);

async fn write_checks(p: &mut Phase<'_>, h: Handle<Dir>, addr: &str) {
    let steps: [Step; 4] = [
        (
            "dir_publish.merge-new",
            "dir_publish (merge) adds a certificate to a new recipient and returns the list read back",
            PROBE_A,
            abi::PUBLISH_MERGE,
            &[PROBE_A],
        ),
        (
            "dir_publish.merge-same",
            "dir_publish (merge) of a certificate already there keeps one copy",
            PROBE_A,
            abi::PUBLISH_MERGE,
            &[PROBE_A],
        ),
        (
            "dir_publish.merge-second",
            "dir_publish (merge) of a second certificate keeps the first",
            PROBE_B,
            abi::PUBLISH_MERGE,
            &[PROBE_A, PROBE_B],
        ),
        (
            "dir_publish.replace",
            "dir_publish (replace) keeps only the new certificate",
            PROBE_B,
            abi::PUBLISH_REPLACE,
            &[PROBE_B],
        ),
    ];
    for (i, (id, title, cert, mode, want)) in steps.into_iter().enumerate() {
        let want: Vec<Vec<u8>> = want.iter().map(|c| c.to_vec()).collect();
        match dir_publish(p, h, addr, cert, mode).await {
            Ok(a) => match cert_list(&a) {
                Ok(c) if sorted(c.clone()) == sorted(want.clone()) => p.pass(id, true, title, None),
                Ok(c) => p.fail(id, true, title, show_certs(&want), show_certs(&c)),
                Err(e) => {
                    let hint = if i == 0 && matches!(a.status, Status::NOT_FOUND | Status::REJECTED)
                    {
                        format!(
                            " (give a test address your directory accepts with --address; this was {addr})"
                        )
                    } else {
                        String::new()
                    };
                    p.fail(
                        id,
                        true,
                        title,
                        format!("SMK_OK with {}", show_certs(&want)),
                        format!("{e}{hint}"),
                    );
                }
            },
            Err(f) => p.fault(id, true, title, f),
        }
        if i == 0 {
            lookup_is(
                p,
                h,
                "dir_lookup.read-back",
                "dir_lookup returns what was published",
                addr,
                &[PROBE_A],
            )
            .await;
        }
    }
    let upper = addr.to_uppercase();
    lookup_is(
        p,
        h,
        "dir_lookup.case-insensitive",
        "dir_lookup compares addresses case-insensitively",
        &upper,
        &[PROBE_B],
    )
    .await;
}

/// One recipient, read alone (`dir_recipient`, 1.1): the triple for the test address, and
/// `SMK_NOT_FOUND` for an address nobody has.
async fn recipient_check(p: &mut Phase<'_>, h: Handle<Dir>, addr: Option<&str>, unknown: &str) {
    let one = |a: String| {
        move |t: &Dt, out: *mut Buf| {
            let f = t.dir_recipient?;
            // SAFETY: live handle; `a` valid for the call.
            Some((unsafe { f(h.get(), a.as_ptr(), a.len(), out) }, ()))
        }
    };
    if let Some(addr) = addr {
        let title = "dir_recipient returns the recipient as (address, kind, list of DER)";
        match p
            .call("dir_recipient", dir_table, one(addr.to_string()))
            .await
        {
            Ok(a) if a.ok() => {
                let parts = list::decode(&a.bytes).unwrap_or_default();
                let ok = match parts[..] {
                    [address, kind, cs] => {
                        std::str::from_utf8(address).is_ok_and(|x| x.eq_ignore_ascii_case(addr))
                            && kind == [abi::RECIPIENT_MAILBOX as u8]
                            && certs(cs).is_some_and(|c| c == [PROBE_B.to_vec()])
                    }
                    _ => false,
                };
                p.expect(
                    "dir_recipient",
                    true,
                    title,
                    ok,
                    &format!("({addr}, SMK_RECIPIENT_MAILBOX, [probe B])"),
                    format!("{} bytes that are not that triple", a.bytes.len()),
                );
            }
            Ok(a) => p.fail("dir_recipient", true, title, "SMK_OK", a.show()),
            Err(f) => p.fault("dir_recipient", true, title, f),
        }
    }
    let title = "dir_recipient of an address nobody has is SMK_NOT_FOUND";
    match p
        .call("dir_recipient", dir_table, one(unknown.to_string()))
        .await
    {
        Ok(a) => p.expect(
            "dir_recipient.unknown-address",
            true,
            title,
            a.status == Status::NOT_FOUND,
            "SMK_NOT_FOUND",
            a.show(),
        ),
        Err(f) => p.fault("dir_recipient.unknown-address", true, title, f),
    }
}

fn kind_name(k: u8) -> String {
    match u32::from(k) {
        abi::RECIPIENT_MAILBOX => "SMK_RECIPIENT_MAILBOX".into(),
        abi::RECIPIENT_CONTACT => "SMK_RECIPIENT_CONTACT".into(),
        other => format!("kind {other} (undefined)"),
    }
}

/// The kind byte a recipient has, read with `dir_recipient` when present, else from
/// `dir_recipients`; `Ok(None)` when it is not there.
async fn kind_of(p: &mut Phase<'_>, h: Handle<Dir>, address: &str) -> Result<Option<u8>, String> {
    let one = p.lib.dir().is_some_and(|t| t.dir_recipient.is_some());
    let a = address.to_string();
    let what = if one {
        "dir_recipient"
    } else {
        "dir_recipients"
    };
    let r = p
        .call(what, dir_table, move |t: &Dt, out| {
            if one {
                let f = t.dir_recipient?;
                // SAFETY: live handle; `a` valid for the call.
                Some((unsafe { f(h.get(), a.as_ptr(), a.len(), out) }, ()))
            } else {
                let f = t.dir_recipients?;
                // SAFETY: live handle, valid out buffer.
                Some((unsafe { f(h.get(), out) }, ()))
            }
        })
        .await
        .map_err(|_| "the call gave no answer".to_string())?;
    if r.status == Status::NOT_FOUND {
        return Ok(None);
    }
    if !r.ok() {
        return Err(r.show());
    }
    let triple = |item: &[u8]| -> Option<(String, u8)> {
        let parts = list::decode(item)?;
        let [addr, kind, _] = parts[..] else {
            return None;
        };
        Some((String::from_utf8_lossy(addr).into_owned(), *kind.first()?))
    };
    if one {
        return Ok(triple(&r.bytes).map(|(_, k)| k));
    }
    Ok(list::decode(&r.bytes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(triple)
        .find(|(x, _)| x.eq_ignore_ascii_case(address))
        .map(|(_, k)| k))
}

/// Advisory: a recipient created as a contact is a contact, and keeps its kind when a
/// certificate is published to it as a mailbox (docs/plugin-abi.md, publish semantics).
async fn kind_checks(p: &mut Phase<'_>, h: Handle<Dir>, has_unpublish: bool) {
    let contact = format!(
        "smimekit-check-contact-{}@example.invalid",
        std::process::id()
    );
    let title = "dir_publish with SMK_RECIPIENT_CONTACT creates a contact";
    let id = "dir_publish.contact-kind";
    match dir_publish_kind(
        p,
        h,
        &contact,
        PROBE_A,
        abi::PUBLISH_MERGE,
        abi::RECIPIENT_CONTACT,
    )
    .await
    {
        Ok(a) if a.ok() => {}
        Ok(a) => {
            return p.skip(
                id,
                false,
                title,
                format!("the directory did not create a contact: {}", a.show()),
            );
        }
        Err(f) => return p.fault(id, false, title, f),
    }
    let contact_kind = abi::RECIPIENT_CONTACT as u8;
    match kind_of(p, h, &contact).await {
        Ok(Some(k)) => p.expect(
            id,
            false,
            title,
            k == contact_kind,
            "kind SMK_RECIPIENT_CONTACT read back",
            kind_name(k),
        ),
        Ok(None) => p.fail(id, false, title, "the contact read back", "it is missing"),
        Err(e) => p.fail(id, false, title, "the contact read back", e),
    }
    let title = "an existing recipient keeps its kind when published to as a mailbox";
    let id = "dir_publish.kind-kept";
    match dir_publish_kind(
        p,
        h,
        &contact,
        PROBE_B,
        abi::PUBLISH_MERGE,
        abi::RECIPIENT_MAILBOX,
    )
    .await
    {
        Ok(a) if a.ok() => match kind_of(p, h, &contact).await {
            Ok(Some(k)) => p.expect(
                id,
                false,
                title,
                k == contact_kind,
                "still SMK_RECIPIENT_CONTACT",
                kind_name(k),
            ),
            Ok(None) => p.fail(id, false, title, "the contact read back", "it is missing"),
            Err(e) => p.fail(id, false, title, "the contact read back", e),
        },
        Ok(a) => p.fail(id, false, title, "SMK_OK", a.show()),
        Err(f) => p.fault(id, false, title, f),
    }
    if has_unpublish {
        for c in [PROBE_A, PROBE_B] {
            let _ = dir_unpublish(p, h, &contact, c).await;
        }
    }
}

async fn recipients_check(p: &mut Phase<'_>, h: Handle<Dir>, addr: Option<&str>) {
    let title = "dir_recipients returns a list of (address, kind, list of DER certificates)";
    let a = match p
        .call("dir_recipients", dir_table, move |t: &Dt, out| {
            let f = t.dir_recipients?;
            // SAFETY: live handle, valid out buffer.
            Some((unsafe { f(h.get(), out) }, ()))
        })
        .await
    {
        Ok(a) => a,
        Err(f) => return p.fault("dir_recipients", true, title, f),
    };
    if !a.ok() {
        return p.fail("dir_recipients", true, title, "SMK_OK", a.show());
    }
    let mut problems = Vec::new();
    let mut found = None;
    for (i, item) in list::decode(&a.bytes)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let parts = list::decode(item).unwrap_or_default();
        let [address, kind, cs] = parts[..] else {
            problems.push(format!("item {i} is not a list of three"));
            continue;
        };
        let Ok(address) = std::str::from_utf8(address) else {
            problems.push(format!("item {i}: the address is not UTF-8"));
            continue;
        };
        let k = kind.first().copied().map(u32::from);
        if kind.len() != 1 || !matches!(k, Some(abi::RECIPIENT_MAILBOX | abi::RECIPIENT_CONTACT)) {
            problems.push(format!(
                "{address}: the kind is not one byte SMK_RECIPIENT_MAILBOX or _CONTACT"
            ));
        }
        match certs(cs) {
            Some(c) if c.iter().all(|c| der_sequence(c)) => {
                if addr.is_some_and(|a| a.eq_ignore_ascii_case(address)) {
                    found = Some(c);
                }
            }
            _ => problems.push(format!("{address}: the certificates are not a list of DER")),
        }
    }
    if list::decode(&a.bytes).is_none() {
        problems.push("the output is not a list".into());
    }
    if let Some(addr) = addr {
        match &found {
            Some(c) if c.as_slice() == [PROBE_B.to_vec()] => {}
            Some(c) => problems.push(format!(
                "{addr} holds {} (dir_lookup said [probe B])",
                show_certs(c)
            )),
            None => problems.push(format!("{addr}, published just before, is missing")),
        }
    }
    if problems.is_empty() {
        p.pass("dir_recipients", true, title, None);
    } else {
        p.fail(
            "dir_recipients",
            true,
            title,
            "well-formed items, the test address among them",
            problems.join("; "),
        );
    }
}

async fn concurrency_dir(p: &mut Phase<'_>, h: Handle<Dir>, addr: &str, wrote: bool) {
    let ts = p.thread_safe();
    let title = if ts {
        "concurrent dir_lookup calls on one handle (SMK_FLAG_THREAD_SAFE) all give the same answer"
    } else {
        "dir_lookup calls from many tasks run one at a time on the worker thread and all give the same answer"
    };
    let want = match dir_lookup(p, h, addr).await {
        Ok(a) => a,
        Err(f) => return p.fault("concurrency.lookup", true, title, f),
    };
    let a = addr.to_string();
    let r = p
        .concurrent("dir_lookup", dir_table, || {
            let a = a.clone();
            move |t: &Dt, out| {
                let f = t.dir_lookup?;
                // SAFETY: live handle; `a` valid for the call.
                Some((unsafe { f(h.get(), a.as_ptr(), a.len(), out) }, ()))
            }
        })
        .await;
    match r {
        Ok((answers, overlap)) => {
            let bad: Vec<String> = answers
                .iter()
                .filter(|x| x.status != want.status || x.bytes != want.bytes)
                .map(|x| {
                    if x.status == want.status {
                        "a different answer".to_string()
                    } else {
                        format!("{} (alone: {})", x.show(), want.show())
                    }
                })
                .collect();
            let note = format!("{CONCURRENT_CALLS} calls, at most {overlap} at once");
            if !bad.is_empty() {
                p.fail(
                    "concurrency.lookup",
                    true,
                    title,
                    "the same answer each time",
                    bad.join("; "),
                );
            } else if !ts && overlap > 1 {
                p.fail(
                    "concurrency.lookup",
                    true,
                    title,
                    "one call at a time (the plugin is not thread-safe)",
                    note,
                );
            } else {
                p.pass("concurrency.lookup", true, title, Some(note));
            }
        }
        Err(f) => p.fault("concurrency.lookup", true, title, f),
    }
    if !wrote {
        return;
    }
    // Concurrent merges to one address: none may drop another's certificate.
    let title = "concurrent dir_publish (merge) calls to one address lose no certificate";
    let a = addr.to_string();
    let n = AtomicUsize::new(0);
    let r = p
        .concurrent("dir_publish", dir_table, || {
            let a = a.clone();
            let c = if n.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                PROBE_A
            } else {
                PROBE_B
            };
            move |t: &Dt, out| {
                let f = t.dir_publish?;
                let (k, m) = (abi::RECIPIENT_MAILBOX, abi::PUBLISH_MERGE);
                // SAFETY: live handle; `a` and `c` valid for the call.
                Some((
                    unsafe { f(h.get(), a.as_ptr(), a.len(), k, c.as_ptr(), c.len(), m, out) },
                    (),
                ))
            }
        })
        .await;
    match r {
        Ok((answers, _)) => {
            if let Some(x) = answers.iter().find(|x| !x.ok()) {
                p.fail(
                    "concurrency.publish",
                    true,
                    title,
                    "SMK_OK for every call",
                    x.show(),
                );
            } else {
                lookup_is(
                    p,
                    h,
                    "concurrency.publish",
                    title,
                    addr,
                    &[PROBE_A, PROBE_B],
                )
                .await;
            }
        }
        Err(f) => p.fault("concurrency.publish", true, title, f),
    }
}

fn leak_report(
    p: &mut Phase<'_>,
    id: &str,
    title: &str,
    r: Result<Result<[isize; 2], String>, Fault>,
) {
    match r {
        Ok(Ok(growth)) => {
            // A plugin that leaks even a small allocation per call grows the heap in both
            // rounds; allocator noise does not repeat.
            let limit = (LEAK_CALLS * 16) as isize;
            let per_call = growth
                .iter()
                .map(|g| g / LEAK_CALLS as isize)
                .collect::<Vec<_>>();
            let note = format!(
                "heap growth over {LEAK_CALLS} calls: {} and {} bytes",
                growth[0], growth[1]
            );
            if growth.iter().all(|g| *g > limit) {
                p.fail(
                    id,
                    true,
                    title,
                    "no growth (free_buf releases what each call allocated)",
                    format!("{note}, about {} bytes per call", per_call[1]),
                );
            } else {
                p.pass(id, true, title, Some(note));
            }
        }
        Ok(Err(why)) => p.skip(id, false, title, why),
        Err(f) => p.fault(id, true, title, f),
    }
}

// ---- key store ----

type Kt = KeyStoreV1;

fn ks_table(l: &Library) -> Option<&KeyStoreV1> {
    l.ks()
}

async fn keystore_checks(p: &mut Phase<'_>, input: &CheckInput) {
    let other = "smimekit-check-not-yours:x";
    let l = p.lib.clone();
    let accepts_other = p.lane("accepts", move |_| l.accepts(other)).await;
    let title = "accepts returns 0 for a KEYREF of another scheme";
    match accepts_other {
        Ok(false) => p.pass("accepts.other-scheme", true, title, None),
        Ok(true) => p.fail(
            "accepts.other-scheme",
            true,
            title,
            "0 (else the plugin takes KEYREFs meant for plugins loaded after it)",
            format!("1 for {other:?}"),
        ),
        Err(f) => p.fault("accepts.other-scheme", true, title, f),
    }
    let Some(keyref) = input.key.clone() else {
        for (id, title) in [
            ("accepts", "accepts returns 1 for the test KEYREF"),
            ("store_open", "store_open opens the test key's store"),
            ("key_open", "key_open opens the test key"),
        ] {
            p.skip(id, true, title, "no test key: give a KEYREF of a test key with --key (and --cert when it needs one)");
        }
        return;
    };
    let l = p.lib.clone();
    let k = keyref.clone();
    let title = "accepts returns 1 for the test KEYREF";
    match p.lane("accepts", move |_| l.accepts(&k)).await {
        Ok(true) => p.pass("accepts", true, title, None),
        Ok(false) => p.fail("accepts", true, title, "1", format!("0 for {keyref:?}")),
        Err(f) => p.fault("accepts", true, title, f),
    }

    // Error path: a reference the store cannot open.
    let title = "store_open of a reference it cannot open fails with a status and a message";
    match store_open(p, other, "").await {
        Ok(a) if !a.ok() => p.pass("store_open.bad-reference", false, title, Some(a.show())),
        Ok(a) => {
            p.fail(
                "store_open.bad-reference",
                false,
                title,
                "a failure status",
                "SMK_OK",
            );
            if a.value != 0 {
                store_close(
                    p,
                    "store_close.bad-reference",
                    Handle(a.value as *mut abi::Store),
                )
                .await;
            }
        }
        Err(f) => p.fault("store_open.bad-reference", false, title, f),
    }

    let cert = input.key_cert.clone().unwrap_or_default();
    let title = "store_open opens the test key's store (SMK_OK and a non-NULL handle)";
    let s = match store_open(p, &keyref, &cert).await {
        Ok(a) if a.ok() && a.value != 0 => {
            p.pass("store_open", true, title, None);
            Handle(a.value as *mut abi::Store)
        }
        Ok(a) => {
            let seen = if a.ok() {
                "SMK_OK with a NULL handle".into()
            } else {
                a.show()
            };
            p.fail("store_open", true, title, "SMK_OK and a handle", seen);
            p.release(ks_table).await;
            return;
        }
        Err(f) => return p.fault("store_open", true, title, f),
    };
    let ready = unlock(p, s, input).await;
    if ready {
        key_checks(p, s, input.probe.clone()).await;
    }
    p.release(ks_table).await;
    store_close(p, "store_close", s).await;
}

async fn store_open(
    p: &mut Phase<'_>,
    reference: &str,
    cert: &str,
) -> Result<Answer<usize>, Fault> {
    let (r, c) = (reference.to_string(), cert.to_string());
    p.call("store_open", ks_table, move |t: &Kt, err| {
        let f = t.store_open?;
        let mut h: *mut abi::Store = std::ptr::null_mut();
        // SAFETY: slices and the out-pointer are valid for the call.
        let s = unsafe { f(r.as_ptr(), r.len(), c.as_ptr(), c.len(), &mut h, err) };
        Some((s, h as usize))
    })
    .await
}

async fn store_close(p: &mut Phase<'_>, id: &str, s: Handle<abi::Store>) {
    p.release(ks_table).await;
    p.close(id, "store_close", move |l| {
        match l.ks().and_then(|t| t.store_close) {
            Some(f) => {
                // SAFETY: a handle from store_open, closed once, after its keys.
                unsafe { f(s.get()) };
                true
            }
            None => false,
        }
    })
    .await;
}

/// Protection and unlock; whether the store is usable.
async fn unlock(p: &mut Phase<'_>, s: Handle<abi::Store>, input: &CheckInput) -> bool {
    let title = "store_protection answers SMK_OK or SMK_NEEDS_UNLOCK with a hint";
    let a = match p
        .call("store_protection", ks_table, move |t: &Kt, out| {
            let f = t.store_protection?;
            // SAFETY: live handle, valid out buffer.
            Some((unsafe { f(s.get(), out) }, ()))
        })
        .await
    {
        Ok(a) => a,
        Err(Fault::Missing) => {
            p.skip(
                "store_protection",
                false,
                title,
                "store_protection is NULL (never locked)",
            );
            return true;
        }
        Err(f) => {
            p.fault("store_protection", true, title, f);
            return false;
        }
    };
    match a.status {
        Status::OK => {
            p.pass("store_protection", true, title, Some("unlocked".into()));
            return true;
        }
        Status::NEEDS_UNLOCK => p.pass("store_protection", true, title, Some(a.show())),
        _ => {
            p.fail(
                "store_protection",
                true,
                title,
                "SMK_OK or SMK_NEEDS_UNLOCK",
                a.show(),
            );
            return false;
        }
    }
    let title = "store_unlock takes the secret";
    let Some(secret) = input.secret.clone() else {
        p.skip(
            "store_unlock",
            true,
            title,
            "the store is locked: give its password or PIN with --password-file",
        );
        return false;
    };
    let r = p
        .call("store_unlock", ks_table, move |t: &Kt, err| {
            let f = t.store_unlock?;
            let b = secret.expose();
            // SAFETY: live handle; the secret is valid for the call.
            Some((unsafe { f(s.get(), b.as_ptr(), b.len(), err) }, ()))
        })
        .await;
    match r {
        Ok(a) if a.ok() => {
            p.pass("store_unlock", true, title, None);
            true
        }
        Ok(a) => {
            p.fail("store_unlock", true, title, "SMK_OK", a.show());
            false
        }
        Err(f) => {
            p.fault("store_unlock", true, title, f);
            false
        }
    }
}

async fn key_open(
    p: &mut Phase<'_>,
    s: Handle<abi::Store>,
    selector: &str,
) -> Result<Answer<usize>, Fault> {
    let sel = selector.to_string();
    p.call("key_open", ks_table, move |t: &Kt, err| {
        let f = t.key_open?;
        let mut k: *mut Key = std::ptr::null_mut();
        // SAFETY: live store handle; `sel` and the out-pointer are valid.
        let st = unsafe { f(s.get(), sel.as_ptr(), sel.len(), &mut k, err) };
        Some((st, k as usize))
    })
    .await
}

async fn key_close(p: &mut Phase<'_>, id: &str, k: Handle<Key>) {
    p.release(ks_table).await;
    p.close(id, "key_close", move |l| {
        match l.ks().and_then(|t| t.key_close) {
            Some(f) => {
                // SAFETY: a handle from key_open, closed once, before its store.
                unsafe { f(k.get()) };
                true
            }
            None => false,
        }
    })
    .await;
}

/// Calls a key function that writes only `out`.
async fn key_out(
    p: &mut Phase<'_>,
    what: &'static str,
    f: impl FnOnce(&Kt, *mut Buf) -> Option<Status> + Send + 'static,
) -> Result<Answer<()>, Fault> {
    p.call(what, ks_table, move |t: &Kt, out| {
        f(t, out).map(|s| (s, ()))
    })
    .await
}

async fn key_checks(p: &mut Phase<'_>, s: Handle<abi::Store>, probe: Option<Arc<dyn KeyProbe>>) {
    // store_list (optional).
    let title = "store_list returns a list of (selector, label, certificate) triples";
    match key_out(p, "store_list", move |t, out| {
        // SAFETY: live handle, valid out buffer.
        t.store_list.map(|f| unsafe { f(s.get(), out) })
    })
    .await
    {
        Ok(a) if a.ok() => {
            let l = list::decode(&a.bytes);
            let ok = l.as_ref().is_some_and(|l| {
                l.len() % 3 == 0
                    && l.chunks(3).all(|c| {
                        std::str::from_utf8(c[0]).is_ok() && (c[2].is_empty() || der_sequence(c[2]))
                    })
            });
            let n = l.map_or(0, |l| l.len() / 3);
            p.expect(
                "store_list",
                true,
                title,
                ok,
                "triples of UTF-8 selector, label, DER or empty",
                format!("{} bytes that do not decode so", a.bytes.len()),
            );
            if ok && let Some(c) = p.run.checks.last_mut() {
                c.note = Some(format!("{n} keys"));
            }
        }
        Ok(a) => p.fail("store_list", true, title, "SMK_OK", a.show()),
        Err(Fault::Missing) => p.skip("store_list", false, title, "store_list is NULL"),
        Err(f) => p.fault("store_list", true, title, f),
    }

    // Error path: an unknown selector.
    let title = "key_open of a selector the store does not have is SMK_NOT_FOUND";
    match key_open(p, s, "smimekit-check-no-such-key").await {
        Ok(a) if a.status == Status::NOT_FOUND => {
            p.pass("key_open.unknown-selector", true, title, None)
        }
        Ok(a) => {
            p.fail(
                "key_open.unknown-selector",
                true,
                title,
                "SMK_NOT_FOUND",
                a.show(),
            );
            if a.ok() && a.value != 0 {
                key_close(p, "key_close.unknown-selector", Handle(a.value as *mut Key)).await;
            }
        }
        Err(f) => p.fault("key_open.unknown-selector", true, title, f),
    }

    let title = "key_open with an empty selector opens the first key with a certificate";
    let k = match key_open(p, s, "").await {
        Ok(a) if a.ok() && a.value != 0 => {
            p.pass("key_open", true, title, None);
            Handle(a.value as *mut Key)
        }
        Ok(a) => {
            let seen = if a.ok() {
                "SMK_OK with a NULL handle".into()
            } else {
                a.show()
            };
            return p.fail("key_open", true, title, "SMK_OK and a handle", seen);
        }
        Err(f) => return p.fault("key_open", true, title, f),
    };

    let title = "key_certificate returns the key's certificate as DER";
    let cert = match key_out(p, "key_certificate", move |t, out| {
        // SAFETY: live key handle, valid out buffer.
        t.key_certificate.map(|f| unsafe { f(k.get(), out) })
    })
    .await
    {
        Ok(a) => {
            let ok = a.ok() && der_sequence(&a.bytes);
            let seen = if a.ok() {
                format!("{} bytes that are not one DER SEQUENCE", a.bytes.len())
            } else {
                a.show()
            };
            p.expect(
                "key_certificate",
                true,
                title,
                ok,
                "SMK_OK with a DER certificate",
                seen,
            );
            a.bytes
        }
        Err(f) => {
            p.fault("key_certificate", true, title, f);
            Vec::new()
        }
    };

    let title = "key_kind names RSA with its modulus bits, EC with a known curve, or OTHER";
    let kind = match p
        .call("key_kind", ks_table, move |t: &Kt, _out| {
            let f = t.key_kind?;
            let (mut kind, mut param) = (u32::MAX, u32::MAX);
            // SAFETY: live key handle; both out-pointers are valid.
            let st = unsafe { f(k.get(), &mut kind, &mut param) };
            Some((st, (kind, param)))
        })
        .await
    {
        Ok(a) => {
            let (kind, param) = a.value;
            let ok = a.ok()
                && match kind {
                    abi::KEY_RSA => (1024..=16384).contains(&param),
                    abi::KEY_EC => {
                        matches!(param, abi::CURVE_P256 | abi::CURVE_P384 | abi::CURVE_P521)
                    }
                    abi::KEY_OTHER => true,
                    _ => false,
                };
            let seen = if a.ok() {
                format!("kind {kind}, param {param}")
            } else {
                a.show()
            };
            p.expect(
                "key_kind",
                true,
                title,
                ok,
                "SMK_KEY_RSA + bits, SMK_KEY_EC + SMK_CURVE_*, or SMK_KEY_OTHER",
                seen,
            );
            a.ok().then_some((kind, param))
        }
        Err(f) => {
            p.fault("key_kind", true, title, f);
            None
        }
    };

    let title = "key_chain returns a list of DER certificates";
    match key_out(p, "key_chain", move |t, out| {
        // SAFETY: live key handle, valid out buffer.
        t.key_chain.map(|f| unsafe { f(k.get(), out) })
    })
    .await
    {
        Ok(a) => {
            let ok = a.ok() && certs(&a.bytes).is_some_and(|c| c.iter().all(|c| der_sequence(c)));
            p.expect(
                "key_chain",
                true,
                title,
                ok,
                "SMK_OK with a list of DER",
                if a.ok() {
                    "not a list of DER".into()
                } else {
                    a.show()
                },
            );
        }
        Err(Fault::Missing) => p.skip(
            "key_chain",
            false,
            title,
            "key_chain is NULL (no issuers come with keys)",
        ),
        Err(f) => p.fault("key_chain", true, title, f),
    }

    sign_checks(p, k, kind, &cert, probe.as_deref()).await;
    decrypt_checks(p, k, kind, &cert, probe.as_deref()).await;

    // Concurrency.
    let ts = p.thread_safe();
    let title = if ts {
        "concurrent key_certificate calls on one key (SMK_FLAG_THREAD_SAFE) all give the same answer"
    } else {
        "key_certificate calls from many tasks run one at a time on the worker thread and all give the same answer"
    };
    let r = p
        .concurrent("key_certificate", ks_table, || {
            move |t: &Kt, out| {
                let f = t.key_certificate?;
                // SAFETY: live key handle, valid out buffer.
                Some((unsafe { f(k.get(), out) }, ()))
            }
        })
        .await;
    match r {
        Ok((answers, overlap)) => {
            let note = format!("{CONCURRENT_CALLS} calls, at most {overlap} at once");
            if let Some(x) = answers.iter().find(|x| !x.ok() || x.bytes != cert) {
                let seen = if x.ok() {
                    "a different certificate".into()
                } else {
                    x.show()
                };
                p.fail(
                    "concurrency.key_certificate",
                    true,
                    title,
                    "the same certificate each time",
                    seen,
                );
            } else if !ts && overlap > 1 {
                p.fail(
                    "concurrency.key_certificate",
                    true,
                    title,
                    "one call at a time (the plugin is not thread-safe)",
                    note,
                );
            } else {
                p.pass("concurrency.key_certificate", true, title, Some(note));
            }
        }
        Err(f) => p.fault("concurrency.key_certificate", true, title, f),
    }

    let title =
        "repeated calls do not grow the heap (each output freed with free_buf releases everything)";
    let r = p
        .leak("key_certificate", ks_table, move |t: &Kt, out| {
            match t.key_certificate {
                // SAFETY: live key handle, valid out buffer.
                Some(f) => unsafe { f(k.get(), out) },
                None => Status::UNSUPPORTED,
            }
        })
        .await;
    leak_report(p, "key_certificate.leak", title, r);

    key_close(p, "key_close", k).await;
}

async fn sign_checks(
    p: &mut Phase<'_>,
    k: Handle<Key>,
    kind: Option<(u32, u32)>,
    cert: &[u8],
    probe: Option<&dyn KeyProbe>,
) {
    let present = p.lib.ks().is_some_and(|t| t.key_sign_digest.is_some());
    let title = "key_sign_digest signs a SHA-256 digest";
    if !present {
        return p.skip(
            "key_sign_digest",
            false,
            title,
            "key_sign_digest is NULL (the key cannot sign)",
        );
    }
    let (alg, expect_len, scheme_of) = match kind {
        Some((abi::KEY_RSA, bits)) => (
            abi::SIG_RSA_PKCS1,
            Some(bits.div_ceil(8) as usize),
            smimekit_core::SignatureScheme::RsaPkcs1 as fn(_) -> _,
        ),
        Some((abi::KEY_EC, _)) => (
            abi::SIG_ECDSA,
            None,
            smimekit_core::SignatureScheme::Ecdsa as fn(_) -> _,
        ),
        _ => {
            return p.skip(
                "key_sign_digest",
                true,
                title,
                "the key kind is OTHER: no scheme to try",
            );
        }
    };
    let sign = |scheme: u32, digest: Vec<u8>| {
        move |t: &Kt, out: *mut Buf| {
            // SAFETY: live key handle; the digest is valid for the call.
            t.key_sign_digest
                .map(|f| unsafe { f(k.get(), scheme, digest.as_ptr(), digest.len(), out) })
        }
    };
    let message = b"smimekit plugins check: a message to sign";
    let digest = probe
        .and_then(|pr| pr.sha256(message).ok())
        .unwrap_or_else(|| vec![0x5a; 32]);
    let scheme = alg << 8 | abi::DIGEST_SHA256;
    let mut signature = None;
    match key_out(p, "key_sign_digest", sign(scheme, digest)).await {
        Ok(a) => {
            let ok = a.ok()
                && match expect_len {
                    Some(n) => a.bytes.len() == n,
                    None => der_sequence(&a.bytes),
                };
            let want = match expect_len {
                Some(n) => format!("SMK_OK with a {n}-byte RSA signature"),
                None => "SMK_OK with a DER Ecdsa-Sig-Value".into(),
            };
            let seen = if a.ok() {
                format!("{} bytes", a.bytes.len())
            } else {
                a.show()
            };
            p.expect("key_sign_digest", true, title, ok, &want, seen);
            if ok {
                signature = Some(a.bytes);
            }
        }
        Err(f) => p.fault("key_sign_digest", true, title, f),
    }
    let title = "the signature verifies with the key's certificate";
    match (probe, signature) {
        (Some(pr), Some(sig)) => {
            let sch = scheme_of(smimekit_core::DigestAlg::Sha256);
            match pr.verify(cert, sch, message, &sig) {
                Ok(true) => p.pass("key_sign_digest.verifies", true, title, None),
                Ok(false) => p.fail(
                    "key_sign_digest.verifies",
                    true,
                    title,
                    "a signature of the SHA-256 digest that the certificate's public key verifies",
                    if alg == abi::SIG_RSA_PKCS1 {
                        "it does not verify (RSA PKCS#1 v1.5: is the digest wrapped in a DigestInfo? is it the key of key_certificate?)"
                    } else {
                        "it does not verify (is it the key of key_certificate?)"
                    },
                ),
                Err(e) => p.fail(
                    "key_sign_digest.verifies",
                    true,
                    title,
                    "the certificate's public key fits the key (key_kind) and verifies",
                    format!("it cannot verify this signature: {e}"),
                ),
            }
        }
        (None, _) => p.skip(
            "key_sign_digest.verifies",
            false,
            title,
            "no cryptography was given to the suite",
        ),
        (_, None) => p.skip(
            "key_sign_digest.verifies",
            true,
            title,
            "key_sign_digest gave no signature",
        ),
    }
    let title = "key_sign_digest with a digest of the wrong length is SMK_INVALID_ARGUMENT";
    match key_out(p, "key_sign_digest", sign(scheme, vec![0x5a; 31])).await {
        Ok(a) => p.expect(
            "key_sign_digest.bad-length",
            true,
            title,
            a.status == Status::INVALID_ARGUMENT,
            "SMK_INVALID_ARGUMENT",
            a.show(),
        ),
        Err(f) => p.fault("key_sign_digest.bad-length", true, title, f),
    }
    let title = "key_sign_digest with an unknown scheme fails (SMK_UNSUPPORTED)";
    match key_out(
        p,
        "key_sign_digest",
        sign(0x7f << 8 | abi::DIGEST_SHA256, vec![0x5a; 32]),
    )
    .await
    {
        Ok(a) => p.expect(
            "key_sign_digest.unknown-scheme",
            true,
            title,
            matches!(a.status, Status::UNSUPPORTED | Status::INVALID_ARGUMENT),
            "SMK_UNSUPPORTED (or SMK_INVALID_ARGUMENT)",
            a.show(),
        ),
        Err(f) => p.fault("key_sign_digest.unknown-scheme", true, title, f),
    }
}

/// A key_decrypt call: `padding` with OAEP's hash and MGF1 hash (0 for PKCS#1), no label.
fn decrypt_call(
    k: Handle<Key>,
    padding: u32,
    hash: u32,
    wrapped: Vec<u8>,
) -> impl FnOnce(&Kt, *mut Buf) -> Option<Status> + Send + 'static {
    move |t: &Kt, out: *mut Buf| {
        t.key_decrypt.map(|f| {
            // SAFETY: live key handle; the slices are valid for the call (the label is
            // empty: NULL with length 0, as the contract allows).
            unsafe {
                f(
                    k.get(),
                    padding,
                    hash,
                    hash,
                    std::ptr::null(),
                    0,
                    wrapped.as_ptr(),
                    wrapped.len(),
                    out,
                )
            }
        })
    }
}

async fn decrypt_checks(
    p: &mut Phase<'_>,
    k: Handle<Key>,
    kind: Option<(u32, u32)>,
    cert: &[u8],
    probe: Option<&dyn KeyProbe>,
) {
    let t = p.lib.ks().copied();
    let rsa = matches!(kind, Some((abi::KEY_RSA, _)));
    let ec = matches!(kind, Some((abi::KEY_EC, _)));
    if t.is_some_and(|t| t.key_decrypt.is_some()) {
        let n = match kind {
            Some((abi::KEY_RSA, bits)) => bits.div_ceil(8) as usize,
            _ => 256,
        };
        // A content-encryption key wrapped to the certificate comes back.
        let cek: Vec<u8> = (1..=32).collect();
        for (id, oaep) in [("key_decrypt", false), ("key_decrypt.oaep", true)] {
            let title = if oaep {
                "key_decrypt unwraps a key RSA-OAEP-encrypted (SHA-256) to the certificate, or says SMK_UNSUPPORTED"
            } else {
                "key_decrypt unwraps a key RSA-encrypted (PKCS#1 v1.5) to the certificate"
            };
            let Some(pr) = probe else {
                p.skip(id, false, title, "no cryptography was given to the suite");
                continue;
            };
            if !rsa {
                p.skip(id, false, title, "the key is not RSA");
                continue;
            }
            let wrapped = match pr.rsa_encrypt(cert, &cek, oaep) {
                Ok(w) => w,
                Err(e) => {
                    // key_kind said RSA: the certificate should hold that RSA key.
                    p.fail(
                        id,
                        true,
                        title,
                        "the certificate of the RSA key (key_certificate) takes a wrapped key",
                        format!("it does not: {e}"),
                    );
                    continue;
                }
            };
            let (padding, hash) = if oaep {
                (abi::PADDING_OAEP, abi::DIGEST_SHA256)
            } else {
                (abi::PADDING_PKCS1, 0)
            };
            match key_out(p, "key_decrypt", decrypt_call(k, padding, hash, wrapped)).await {
                Ok(a) if a.ok() && a.bytes == cek => p.pass(id, true, title, None),
                Ok(a) if oaep && a.status == Status::UNSUPPORTED => {
                    p.pass(id, true, title, Some(a.show()))
                }
                Ok(a) => {
                    let seen = if a.ok() {
                        format!("{} other bytes", a.bytes.len())
                    } else {
                        a.show()
                    };
                    p.fail(id, true, title, "SMK_OK with the 32-byte key", seen);
                }
                Err(f) => p.fault(id, true, title, f),
            }
        }
        let title = "key_decrypt with an unknown padding fails (SMK_UNSUPPORTED)";
        match key_out(p, "key_decrypt", decrypt_call(k, 0x7f, 0, vec![0u8; n])).await {
            Ok(a) => p.expect(
                "key_decrypt.unknown-padding",
                true,
                title,
                matches!(a.status, Status::UNSUPPORTED | Status::INVALID_ARGUMENT),
                "SMK_UNSUPPORTED (or SMK_INVALID_ARGUMENT)",
                a.show(),
            ),
            Err(f) => p.fault("key_decrypt.unknown-padding", true, title, f),
        }
        let title = "key_decrypt of bytes that are no wrapped key answers with a status (no crash)";
        match key_out(
            p,
            "key_decrypt",
            decrypt_call(k, abi::PADDING_PKCS1, 0, vec![0u8; n]),
        )
        .await
        {
            Ok(a) => p.pass("key_decrypt.garbage", false, title, Some(a.show())),
            Err(f) => p.fault("key_decrypt.garbage", false, title, f),
        }
    } else {
        p.skip(
            "key_decrypt",
            false,
            "key_decrypt (optional)",
            "key_decrypt is NULL",
        );
    }
    if t.is_some_and(|t| t.key_ecdh.is_some()) {
        let title = "key_ecdh agrees the secret an ephemeral key agrees with the certificate";
        match (probe, ec) {
            (Some(pr), true) => match pr.ecdh(cert) {
                Ok((point, z)) => {
                    match key_out(p, "key_ecdh", move |t, out| {
                        // SAFETY: live key handle; `point` is valid for the call.
                        t.key_ecdh
                            .map(|f| unsafe { f(k.get(), point.as_ptr(), point.len(), out) })
                    })
                    .await
                    {
                        Ok(a) => p.expect(
                            "key_ecdh",
                            true,
                            title,
                            a.ok() && a.bytes == z,
                            "SMK_OK with the shared secret Z",
                            if a.ok() {
                                format!("{} other bytes", a.bytes.len())
                            } else {
                                a.show()
                            },
                        ),
                        Err(f) => p.fault("key_ecdh", true, title, f),
                    }
                }
                Err(e) => p.fail(
                    "key_ecdh",
                    true,
                    title,
                    "the certificate of the EC key (key_certificate) takes an ECDH agreement",
                    format!("it does not: {e}"),
                ),
            },
            (None, _) => p.skip(
                "key_ecdh",
                false,
                title,
                "no cryptography was given to the suite",
            ),
            (_, false) => p.skip("key_ecdh", false, title, "the key is not EC"),
        }
        let title = "key_ecdh with a point that is not on the curve fails";
        let mut peer = [0u8; 65];
        peer[0] = 4;
        match key_out(p, "key_ecdh", move |t, out| {
            // SAFETY: live key handle; `peer` is valid for the call.
            t.key_ecdh
                .map(|f| unsafe { f(k.get(), peer.as_ptr(), peer.len(), out) })
        })
        .await
        {
            Ok(a) => p.expect(
                "key_ecdh.bad-point",
                false,
                title,
                !a.ok(),
                "a failure status",
                a.show(),
            ),
            Err(f) => p.fault("key_ecdh.bad-point", false, title, f),
        }
    } else {
        p.skip("key_ecdh", false, "key_ecdh (optional)", "key_ecdh is NULL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_der_certificates_and_differ() {
        assert!(der_sequence(PROBE_A) && der_sequence(PROBE_B));
        assert_ne!(PROBE_A, PROBE_B);
        assert!(!der_sequence(b"not a certificate"));
        assert!(!der_sequence(&PROBE_A[..PROBE_A.len() - 1]));
    }

    #[test]
    fn the_ledger_flags_a_buffer_handed_out_twice_and_bad_lengths() {
        let mut l = Ledger::default();
        l.record("dir_lookup", Status::OK, 0x1000, 4, b"abcd");
        l.record("dir_lookup", Status::OK, 0x2000, 4, b"abcd");
        assert!(l.problems.is_empty());
        l.record("dir_lookup", Status::OK, 0x1000, 4, b"abcd");
        assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
        assert!(l.problems[0].contains("double free"));
        l.record("dir_publish", Status::OK, 0, 3, b"");
        assert!(l.problems[1].contains("NULL ptr"));
        l.record("dir_open", Status(99), 0, 0, b"");
        assert_eq!(l.bad_status.len(), 1);
        l.record("dir_open", Status::FAILED, 0x3000, 2, &[0xff, 0xfe]);
        assert_eq!(l.bad_message.len(), 1);
        assert_eq!(l.handed_out, 4);
    }

    #[test]
    fn the_heap_is_measured_on_glibc() {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let before = heap_in_use().expect("glibc has mallinfo2");
            let v = vec![1u8; 1 << 20];
            let during = heap_in_use().expect("glibc has mallinfo2");
            assert!(during >= before + (1 << 19), "{before} → {during}");
            drop(v);
        }
    }
}
