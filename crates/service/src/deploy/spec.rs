//! The deploy file: the desired state of the organisation's S/MIME certificates.
//!
//! [`load`] parses `deploy.toml` (see the README, "The deploy file"), reads every file it names
//! through a [`DeploySource`] (paths relative to the deploy file's folder), and returns the
//! [`Desired`] state: the trust chain, the policy and every person with their certificates and
//! target directories. Every problem found is reported, each with the file and line it is on;
//! nothing is read from a directory and nothing is written.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use smimekit_core::{CertDer, Mailbox, RecipientKind};
use smimekit_pki::{certinfo, container};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{ErrorKind, ServiceError};

/// Reads the files a deploy file names (relative to the deploy file's folder, or absolute). The
/// CLI implements it over the file system, the web later over an upload; the service never
/// opens paths itself.
pub trait DeploySource: Send + Sync {
    /// The bytes of a file; the error names nothing (the parser adds file and line).
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// The entries of a folder (file names), or an error when it is not a folder.
    fn list(&self, path: &Path) -> std::io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    /// The path as the planner should keep it (a CA folder): absolute where the source knows
    /// its base. By default the path as written.
    fn resolve(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// A [`DeploySource`] over the file system, resolving relative paths against `base` (the deploy
/// file's folder).
#[derive(Clone, Debug)]
pub struct FsDeploySource {
    pub base: PathBuf,
}

impl FsDeploySource {
    fn full(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }
}

impl DeploySource for FsDeploySource {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.full(path))
    }

    fn list(&self, path: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.full(path))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.full(path).is_dir()
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        let full = self.full(path);
        std::path::absolute(&full).unwrap_or(full)
    }
}

/// What the deploy file says should be true.
#[derive(Clone, Debug, Serialize)]
pub struct Desired {
    /// The display name of the deploy file.
    pub file: String,
    /// The default target directories (`[directory.NAME]` of the configuration).
    pub directories: Vec<String>,
    pub trust: Option<TrustSpec>,
    pub policy: Policy,
    /// Sorted by address key (lowercase), unique.
    pub people: Vec<Person>,
}

/// The organisation's trust chain.
#[derive(Clone, Debug, Serialize)]
pub struct TrustSpec {
    /// Serialised as SHA-1 thumbprints.
    #[serde(serialize_with = "thumbprints")]
    pub certificates: Vec<CertDer>,
    /// The CA folder (as resolved against the deploy file's folder) when the file says `ca = `.
    pub ca: Option<PathBuf>,
}

/// What to do with certificates over time.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    /// Remove managed certificates once expired (default true).
    pub remove_expired: bool,
    /// Keep a superseded certificate beside its successor this long (default 30).
    pub remove_superseded_after_days: u32,
    /// Renew managed certificates this close to expiry (default 30).
    pub renew_before_days: u32,
    /// Certificates smimekit did not publish (default keep).
    pub unmanaged: Unmanaged,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            remove_expired: true,
            remove_superseded_after_days: 30,
            renew_before_days: 30,
            unmanaged: Unmanaged::Keep,
        }
    }
}

/// Certificates someone else put on a mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unmanaged {
    /// Never touched, not listed.
    Keep,
    /// Never touched unless asked per person, listed in the plan.
    Report,
}

/// One person the deploy file names.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub address: Mailbox,
    pub kind: RecipientKind,
    /// End-entity certificates from the named files (CA certificates in a bundle are skipped);
    /// serialised as SHA-1 thumbprints.
    #[serde(serialize_with = "thumbprints")]
    pub certificates: Vec<CertDer>,
    /// The smimekit CA folder that issues (and renews) this person's certificate.
    pub issue: Option<PathBuf>,
    /// The target directories: the person's override or the file's default.
    pub directories: Vec<String>,
    /// Where the person was declared.
    pub origin: Origin,
}

/// A place in a deploy file or a CSV file it names.
#[derive(Clone, Debug, Serialize)]
pub struct Origin {
    pub file: String,
    pub line: u32,
}

/// One problem in a deploy file or a file it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {cause}")]
pub struct DeployError {
    pub file: String,
    pub line: u32,
    pub cause: String,
}

impl From<Vec<DeployError>> for ServiceError {
    fn from(errors: Vec<DeployError>) -> Self {
        let message = match errors.as_slice() {
            [one] => one.to_string(),
            many => {
                let mut m = format!("{} problems in the deploy file:", many.len());
                for e in many {
                    m.push_str("\n  ");
                    m.push_str(&e.to_string());
                }
                m
            }
        };
        ServiceError::new(ErrorKind::Invalid, message).for_field("file")
    }
}

fn thumbprints<S: serde::Serializer>(certs: &[CertDer], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(certs.iter().map(|c| {
        smimekit_pki::certinfo::parse(c)
            .map(|i| i.sha1_thumbprint)
            .unwrap_or_default()
    }))
}

/// Reads a deploy file and everything it names. `file_name` is the deploy file's display name
/// (for messages), `text` its contents; `known_directories` are the configured directory names.
/// Returns every problem found, not just the first.
pub fn load(
    file_name: &str,
    text: &str,
    source: &dyn DeploySource,
    known_directories: &[String],
) -> Result<Desired, Vec<DeployError>> {
    // Windows editors may start the file with a byte-order mark (on line 1: lines are unchanged).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = Lines::new(text);
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map_or(1, |s| lines.line(s.start));
            return Err(vec![DeployError {
                file: file_name.to_string(),
                line,
                cause: format!("not a valid TOML file: {}", e.message().trim_end()),
            }]);
        }
    };
    let mut cx = Loader {
        file: file_name.to_string(),
        lines,
        source,
        known: known_directories,
        errors: Vec::new(),
        default_directories_failed: false,
        listings: HashMap::new(),
        loaded: HashMap::new(),
    };
    let desired = cx.document(doc.get_ref());
    tracing::debug!(
        file = file_name,
        people = desired.people.len(),
        errors = cx.errors.len(),
        "deploy file loaded"
    );
    if cx.errors.is_empty() {
        Ok(desired)
    } else {
        Err(cx.errors)
    }
}

/// How many of a deploy file's people each directory it names has, in the order the file
/// names them (the top-level `directories`, each `[[people]]`'s, a CSV's `directories`
/// column), found from the deploy file's text and its CSV files without reading a
/// certificate or checking anything: what a command may start opening and reading while
/// [`load`] reads the rest. A person's own `directories` replace the file's, as in [`load`];
/// a person declared twice counts twice. Empty when the text is not valid TOML.
pub(crate) fn people_per_directory(text: &str, source: &dyn DeploySource) -> Vec<(String, usize)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(doc) = DeTable::parse(text) else {
        return Vec::new();
    };
    let doc = doc.get_ref();
    let strings = |v: &Spanned<DeValue<'_>>| -> Vec<String> {
        (v.get_ref().as_array().into_iter().flatten())
            .filter_map(|s| s.get_ref().as_str().map(str::to_string))
            .collect()
    };
    let default = doc.get("directories").map(strings).unwrap_or_default();
    let mut counts: Vec<(String, usize)> = default.iter().map(|n| (n.clone(), 0)).collect();
    let mut count = |names: &[String]| {
        for name in names {
            match counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name.clone(), 1)),
            }
        }
    };
    let tables = |key: &str| -> Vec<&DeTable<'_>> {
        (doc.get(key)
            .and_then(|v| v.get_ref().as_array())
            .into_iter()
            .flatten())
        .filter_map(|t| t.get_ref().as_table())
        .collect()
    };
    for person in tables("people") {
        match person.get("directories") {
            Some(d) => count(&strings(d)),
            None => count(&default),
        }
    }
    for from in tables("people_from") {
        let Some(bytes) = (from.get("csv").and_then(|v| v.get_ref().as_str()))
            .and_then(|name| source.read(Path::new(name)).ok())
        else {
            continue;
        };
        let mut reader = csv_reader(csv_text(&bytes));
        let column = reader.headers().ok().and_then(|h| {
            h.iter()
                .position(|name| name.eq_ignore_ascii_case("directories"))
        });
        for record in reader.records().flatten() {
            match column.and_then(|i| record.get(i)).filter(|s| !s.is_empty()) {
                Some(cell) => count(&csv_list(cell).map(str::to_string).collect::<Vec<_>>()),
                None => count(&default),
            }
        }
    }
    counts
}

/// A CSV file's bytes without the byte-order mark Excel's "CSV UTF-8" starts with.
fn csv_text(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// A reader of a `[[people_from]]` CSV: a header row, cells trimmed, `#` lines skipped.
fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes)
}

/// The items of a CSV cell that lists several (`;`-separated), trimmed, empty ones skipped.
fn csv_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';').map(str::trim).filter(|s| !s.is_empty())
}

const TOP_KEYS: &[&str] = &["directories", "trust", "policy", "people", "people_from"];
const TRUST_KEYS: &[&str] = &["certificates", "ca"];
const POLICY_KEYS: &[&str] = &[
    "remove_expired",
    "remove_superseded_after_days",
    "renew_before_days",
    "unmanaged",
];
const PERSON_KEYS: &[&str] = &["address", "kind", "certificates", "issue", "directories"];
const PEOPLE_FROM_KEYS: &[&str] = &["csv"];
/// The CSV columns, required first.
const CSV_REQUIRED: &[&str] = &["address", "kind"];
const CSV_OPTIONAL: &[&str] = &["certificate", "issue", "directories"];
/// The largest number of days a policy value may say (ten years): more is a typo.
const MAX_DAYS: i64 = 3650;
/// The files a certificate folder may hold for a person, after `ADDRESS`.
const FOLDER_EXTENSIONS: &[&str] = &["pem", "cer", "crt", "der"];
/// The files of a smimekit CA folder that [`load`] reads (see `ca.rs`).
const CA_CONFIG: &str = "ca.json";
const CA_ROOT: &str = "root.pem";
const CA_ISSUING: &str = "issuing.pem";

/// Byte offset to line number.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        Self::of_bytes(text.as_bytes())
    }

    fn of_bytes(bytes: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let n = match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// A person as declared, before duplicates are checked.
struct Declared {
    person: Person,
}

/// A place where a file is named, for its errors: the file (deploy or CSV) and line.
#[derive(Clone)]
struct At {
    file: String,
    line: u32,
}

struct Loader<'a> {
    file: String,
    lines: Lines,
    source: &'a dyn DeploySource,
    known: &'a [String],
    errors: Vec<DeployError>,
    /// The file's `directories` named one that is not configured.
    default_directories_failed: bool,
    /// Certificate folders listed so far: lowercase file name → file name.
    /// Shared, as thousands of people may name the same folder.
    listings: HashMap<PathBuf, Result<Arc<HashMap<String, String>>, String>>,
    /// Certificate files read and parsed ahead, on every core (see [`Loader::prefetch`]).
    loaded: HashMap<PathBuf, Loaded>,
}

/// A certificate file as read and parsed ahead of [`Loader::cert_file`], which reports on it.
enum Loaded {
    Unreadable(String),
    /// A folder (with the error reading it as a file gave).
    Folder(String),
    NotCertificates(String),
    /// Each certificate and whether it is a CA's (or why it is not a certificate).
    Certificates(Vec<(CertDer, Result<bool, String>)>),
}

impl Loaded {
    fn of(source: &dyn DeploySource, path: &Path) -> Self {
        let bytes = match source.read(path) {
            Ok(b) => b,
            Err(e) if source.is_dir(path) => return Self::Folder(e.to_string()),
            Err(e) => return Self::Unreadable(e.to_string()),
        };
        match container::load_certificates(&bytes, &path.display().to_string()) {
            Ok(certs) => Self::Certificates(
                certs
                    .into_iter()
                    .map(|c| {
                        let is_ca = certinfo::parse(&c)
                            .map(|i| i.is_ca)
                            .map_err(|e| e.to_string());
                        (c, is_ca)
                    })
                    .collect(),
            ),
            Err(e) => Self::NotCertificates(e.to_string()),
        }
    }
}

/// Fewer certificate files than this per thread are read one after another.
const PREFETCH_PER_THREAD: usize = 64;
/// Threads reading certificate files ahead, per core: reading them is mostly waiting for the
/// disk (files not in the page cache), which several requests in flight shorten.
const PREFETCH_THREADS_PER_CORE: usize = 4;

impl Loader<'_> {
    fn at(&self, span: &Range<usize>) -> At {
        At {
            file: self.file.clone(),
            line: self.lines.line(span.start),
        }
    }

    fn error(&mut self, at: &At, cause: impl Into<String>) {
        self.errors.push(DeployError {
            file: at.file.clone(),
            line: at.line,
            cause: cause.into(),
        });
    }

    fn error_span(&mut self, span: &Range<usize>, cause: impl Into<String>) {
        let at = self.at(span);
        self.error(&at, cause);
    }

    /// Reports every key of `table` not in `known`, at the key's line; true when there was one.
    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) -> bool {
        let mut any = false;
        for key in table.keys() {
            if !known.contains(&key.get_ref().as_ref()) {
                any = true;
                self.error_span(
                    &key.span(),
                    format!(
                        "unknown key `{}`{place} (expected one of: {})",
                        key.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        any
    }

    fn document(&mut self, doc: &DeTable<'_>) -> Desired {
        self.unknown_keys(doc, TOP_KEYS, "");
        let before = self.errors.len();
        let default_directories = match doc.get("directories") {
            Some(v) => self.directories(v, "directories"),
            None => Vec::new(),
        };
        // A bad default is reported once, not again for every person left without directories.
        self.default_directories_failed = self.errors.len() > before;
        let trust = match doc.get("trust") {
            Some(v) => match v.get_ref().as_table() {
                Some(t) => self.trust(t, &v.span()),
                None => {
                    self.error_span(&v.span(), "`trust` must be a table ([trust])");
                    None
                }
            },
            None => None,
        };
        let policy = match doc.get("policy") {
            Some(v) => match v.get_ref().as_table() {
                Some(t) => self.policy(t),
                None => {
                    self.error_span(&v.span(), "`policy` must be a table ([policy])");
                    Policy::default()
                }
            },
            None => Policy::default(),
        };
        let mut declared = Vec::new();
        if let Some(v) = doc.get("people") {
            for (t, span) in self.tables(v, "people") {
                if let Some(p) = self.person(t, &span, &default_directories) {
                    declared.push(Declared { person: p });
                }
            }
        }
        if let Some(v) = doc.get("people_from") {
            for (t, span) in self.tables(v, "people_from") {
                self.people_from(t, &span, &default_directories, &mut declared);
            }
        }
        let people = self.unique(declared);
        Desired {
            file: self.file.clone(),
            directories: default_directories,
            trust,
            policy,
            people,
        }
    }

    /// The tables of an array of tables (`[[name]]`), with their spans.
    fn tables<'v, 'i>(
        &mut self,
        v: &'v Spanned<DeValue<'i>>,
        name: &str,
    ) -> Vec<(&'v DeTable<'i>, Range<usize>)> {
        let Some(items) = v.get_ref().as_array() else {
            self.error_span(
                &v.span(),
                format!("`{name}` must be an array of tables ([[{name}]])"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref().as_table() {
                Some(t) => out.push((t, item.span())),
                None => self.error_span(
                    &item.span(),
                    format!("`{name}` must be an array of tables ([[{name}]])"),
                ),
            }
        }
        out
    }

    /// A string value, or an error naming the key.
    fn string<'v>(&mut self, v: &'v Spanned<DeValue<'_>>, key: &str) -> Option<&'v str> {
        match v.get_ref().as_str() {
            Some(s) => Some(s),
            None => {
                self.error_span(
                    &v.span(),
                    format!("`{key}` must be a string, not {}", v.get_ref().type_str()),
                );
                None
            }
        }
    }

    /// A string or an array of strings, each with its span.
    fn strings(&mut self, v: &Spanned<DeValue<'_>>, key: &str) -> Vec<(String, Range<usize>)> {
        if let Some(s) = v.get_ref().as_str() {
            return vec![(s.to_string(), v.span())];
        }
        let Some(items) = v.get_ref().as_array() else {
            self.error_span(
                &v.span(),
                format!(
                    "`{key}` must be an array of strings, not {}",
                    v.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref().as_str() {
                Some(s) => out.push((s.to_string(), item.span())),
                None => self.error_span(
                    &item.span(),
                    format!(
                        "`{key}` must be an array of strings, not of {}",
                        item.get_ref().type_str()
                    ),
                ),
            }
        }
        out
    }

    /// A list of configured directory names.
    fn directories(&mut self, v: &Spanned<DeValue<'_>>, key: &str) -> Vec<String> {
        let names = self.strings(v, key);
        let names = names
            .into_iter()
            .map(|(n, span)| (n, self.at(&span)))
            .collect::<Vec<_>>();
        self.check_directories(names)
    }

    fn check_directories(&mut self, names: Vec<(String, At)>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, at) in names {
            if !self.known.contains(&name) {
                let known = if self.known.is_empty() {
                    "none is configured".to_string()
                } else {
                    format!("configured: {}", self.known.join(", "))
                };
                self.error(&at, format!("unknown directory `{name}` ({known})"));
            } else if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    fn trust(&mut self, t: &DeTable<'_>, span: &Range<usize>) -> Option<TrustSpec> {
        self.unknown_keys(t, TRUST_KEYS, " in [trust]");
        match (t.get("certificates"), t.get("ca")) {
            (Some(_), Some(ca)) => {
                self.error_span(
                    &ca.span(),
                    "[trust] has both `certificates` and `ca`: name one",
                );
                None
            }
            (None, None) => {
                self.error_span(
                    span,
                    "[trust] needs `certificates` (files) or `ca` (a smimekit CA folder)",
                );
                None
            }
            (Some(v), None) => {
                let mut certificates = Vec::new();
                let paths = self.strings(v, "certificates");
                if v.get_ref().as_array().is_some_and(|a| a.is_empty()) {
                    // Pushed as it stands, an empty chain would wipe the directory's.
                    self.error_span(&v.span(), "[trust] `certificates` is empty");
                }
                for (path, span) in paths {
                    let at = self.at(&span);
                    let path = PathBuf::from(path);
                    certificates.extend(self.cert_file(&at, &path, false));
                }
                dedup(&mut certificates);
                Some(TrustSpec {
                    certificates,
                    ca: None,
                })
            }
            (None, Some(v)) => {
                let folder = PathBuf::from(self.string(v, "ca")?);
                let at = self.at(&v.span());
                let certificates = self.ca_chain(&at, &folder)?;
                Some(TrustSpec {
                    certificates,
                    ca: Some(self.source.resolve(&folder)),
                })
            }
        }
    }

    /// Checks that `folder` is a smimekit CA folder.
    fn ca_folder(&mut self, at: &At, folder: &Path) -> bool {
        if !self.source.is_dir(folder) {
            self.error(
                at,
                format!("{}: not a folder (a smimekit CA folder)", folder.display()),
            );
            return false;
        }
        if let Err(e) = self.source.read(&folder.join(CA_CONFIG)) {
            self.error(
                at,
                format!(
                    "{}: not a smimekit CA folder (cannot read {CA_CONFIG}: {e})",
                    folder.display()
                ),
            );
            return false;
        }
        true
    }

    /// The root and issuing CA certificates of a smimekit CA folder, root first.
    fn ca_chain(&mut self, at: &At, folder: &Path) -> Option<Vec<CertDer>> {
        if !self.ca_folder(at, folder) {
            return None;
        }
        let mut certs = Vec::new();
        for name in [CA_ROOT, CA_ISSUING] {
            certs.extend(self.cert_file(at, &folder.join(name), false));
        }
        dedup(&mut certs);
        Some(certs)
    }

    fn policy(&mut self, t: &DeTable<'_>) -> Policy {
        self.unknown_keys(t, POLICY_KEYS, " in [policy]");
        let mut p = Policy::default();
        if let Some(v) = t.get("remove_expired") {
            match v.get_ref().as_bool() {
                Some(b) => p.remove_expired = b,
                None => self.error_span(
                    &v.span(),
                    format!(
                        "`remove_expired` must be true or false, not {}",
                        v.get_ref().type_str()
                    ),
                ),
            }
        }
        for (key, slot) in [
            (
                "remove_superseded_after_days",
                &mut p.remove_superseded_after_days,
            ),
            ("renew_before_days", &mut p.renew_before_days),
        ] {
            if let Some(v) = t.get(key)
                && let Some(days) = self.days(v, key)
            {
                *slot = days;
            }
        }
        if let Some(v) = t.get("unmanaged") {
            match v.get_ref().as_str() {
                Some("keep") => p.unmanaged = Unmanaged::Keep,
                Some("report") => p.unmanaged = Unmanaged::Report,
                Some(other) => self.error_span(
                    &v.span(),
                    format!("`unmanaged` must be \"keep\" or \"report\", not {other:?}"),
                ),
                None => self.error_span(
                    &v.span(),
                    format!(
                        "`unmanaged` must be \"keep\" or \"report\", not {}",
                        v.get_ref().type_str()
                    ),
                ),
            }
        }
        p
    }

    /// A number of days, 0 to [`MAX_DAYS`].
    fn days(&mut self, v: &Spanned<DeValue<'_>>, key: &str) -> Option<u32> {
        let n = v
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
        match n {
            Some(n) if (0..=MAX_DAYS).contains(&n) => u32::try_from(n).ok(),
            Some(n) => {
                self.error_span(
                    &v.span(),
                    format!("`{key}` must be a number of days from 0 to {MAX_DAYS}, not {n}"),
                );
                None
            }
            None => {
                self.error_span(
                    &v.span(),
                    format!(
                        "`{key}` must be a whole number of days, not {}",
                        v.get_ref().type_str()
                    ),
                );
                None
            }
        }
    }

    fn person(
        &mut self,
        t: &DeTable<'_>,
        span: &Range<usize>,
        default_directories: &[String],
    ) -> Option<Person> {
        // A misspelt key is likely the certificate source: not reported again as missing.
        let typo = self.unknown_keys(t, PERSON_KEYS, " in [[people]]");
        let table_at = self.at(span);
        // A person is where their address is: duplicates and missing pieces point there.
        let origin_at = t
            .get("address")
            .map_or_else(|| table_at.clone(), |v| self.at(&v.span()));
        let address = match t.get("address") {
            Some(v) => self.string(v, "address").and_then(|s| {
                let at = self.at(&v.span());
                self.address(&at, s)
            }),
            None => {
                self.error(&table_at, "[[people]] without `address`");
                None
            }
        };
        let kind = match t.get("kind") {
            Some(v) => self.string(v, "kind").and_then(|s| {
                let at = self.at(&v.span());
                self.kind(&at, s)
            }),
            // A person of the organisation unless said otherwise.
            None => Some(RecipientKind::Mailbox),
        };
        let mut certificates = Vec::new();
        let mut named_certificates = false;
        if let Some(v) = t.get("certificates") {
            for (path, span) in self.strings(v, "certificates") {
                named_certificates = true;
                let at = self.at(&span);
                if let Some(a) = &address {
                    certificates.extend(self.person_certs(&at, a, Path::new(&path)));
                }
            }
        }
        let issue = match t.get("issue") {
            Some(v) => self.string(v, "issue").and_then(|s| {
                let at = self.at(&v.span());
                self.issue(&at, s)
            }),
            None => None,
        };
        let before = self.errors.len();
        let (directories, directories_failed) = match t.get("directories") {
            Some(v) => (
                self.directories(v, "directories"),
                self.errors.len() > before,
            ),
            None => (
                default_directories.to_vec(),
                self.default_directories_failed,
            ),
        };
        let address = address?;
        let kind = kind?;
        self.person_checks(
            &origin_at,
            &address,
            typo || named_certificates || t.get("issue").is_some(),
            &directories,
            directories_failed,
        )?;
        dedup(&mut certificates);
        Some(Person {
            address,
            kind,
            certificates,
            issue,
            directories,
            origin: Origin {
                file: origin_at.file,
                line: origin_at.line,
            },
        })
    }

    /// What every person needs, wherever declared.
    fn person_checks(
        &mut self,
        at: &At,
        address: &Mailbox,
        has_source: bool,
        directories: &[String],
        directories_failed: bool,
    ) -> Option<()> {
        let mut ok = true;
        if !has_source {
            self.error(
                at,
                format!(
                    "{address}: neither `certificates` nor `issue` (a certificate source) is given"
                ),
            );
            ok = false;
        }
        if directories.is_empty() && !directories_failed {
            self.error(
                at,
                format!("{address}: no directories (set `directories` at the top of the file or for the person)"),
            );
            ok = false;
        }
        ok.then_some(())
    }

    fn address(&mut self, at: &At, s: &str) -> Option<Mailbox> {
        // A display name (`Alice <alice@…>`) is not an address here: the file names mailboxes.
        match Mailbox::parse(s) {
            Ok(m) if m.as_str() == s => Some(m),
            Ok(_) => {
                self.error(at, format!("bad address {s:?}: give the bare address"));
                None
            }
            Err(e) => {
                self.error(at, format!("bad {e}"));
                None
            }
        }
    }

    fn kind(&mut self, at: &At, s: &str) -> Option<RecipientKind> {
        match s {
            "mailbox" => Some(RecipientKind::Mailbox),
            "contact" => Some(RecipientKind::Contact),
            other => {
                self.error(
                    at,
                    format!("unknown kind {other:?} (\"mailbox\" or \"contact\")"),
                );
                None
            }
        }
    }

    fn issue(&mut self, at: &At, s: &str) -> Option<PathBuf> {
        let folder = PathBuf::from(s);
        self.ca_folder(at, &folder)
            .then(|| self.source.resolve(&folder))
    }

    /// A person's certificates from a file, or from `ADDRESS.pem` (`.cer`, `.crt`, `.der`) in a
    /// folder.
    fn person_certs(&mut self, at: &At, address: &Mailbox, path: &Path) -> Vec<CertDer> {
        let listing = match self.listings.get(path) {
            Some(listing) => listing.clone(),
            None => {
                // What was read ahead says whether it is a folder.
                let folder = match self.loaded.get(path) {
                    Some(Loaded::Folder(_)) => true,
                    Some(_) => false,
                    None => self.source.is_dir(path),
                };
                if !folder {
                    return self.cert_file(at, path, true);
                }
                self.loaded.remove(path);
                let listing = self
                    .source
                    .list(path)
                    .map(|names| {
                        Arc::new(
                            names
                                .into_iter()
                                .map(|n| (n.to_lowercase(), n))
                                .collect::<HashMap<_, _>>(),
                        )
                    })
                    .map_err(|e| e.to_string());
                self.listings.insert(path.to_path_buf(), listing.clone());
                listing
            }
        };
        let listing = match listing {
            Ok(l) => l,
            Err(e) => {
                self.error(
                    at,
                    format!("{}: cannot list the folder: {e}", path.display()),
                );
                return Vec::new();
            }
        };
        let key = address.key();
        let files: Vec<String> = FOLDER_EXTENSIONS
            .iter()
            .filter_map(|ext| listing.get(&format!("{key}.{ext}")).cloned())
            .collect();
        if files.is_empty() {
            self.error(
                at,
                format!(
                    "{}: no certificate for {address} in the folder (looked for {address}.pem, .cer, .crt, .der)",
                    path.display()
                ),
            );
            return Vec::new();
        }
        let mut certs = Vec::new();
        for f in files {
            certs.extend(self.cert_file(at, &path.join(f), true));
        }
        certs
    }

    /// The certificates in a file (PEM, DER, PKCS#7, SST); with `end_entity`, CA certificates
    /// are skipped and at least one other is required.
    fn cert_file(&mut self, at: &At, path: &Path, end_entity: bool) -> Vec<CertDer> {
        let shown = path.display().to_string();
        let loaded = self
            .loaded
            .remove(path)
            .unwrap_or_else(|| Loaded::of(self.source, path));
        let certs = match loaded {
            Loaded::Certificates(c) => c,
            Loaded::Unreadable(e) | Loaded::Folder(e) => {
                self.error(at, format!("{shown}: cannot read: {e}"));
                return Vec::new();
            }
            Loaded::NotCertificates(e) => {
                self.error(at, format!("not a certificate file: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, (c, is_ca)) in certs.into_iter().enumerate() {
            match is_ca {
                Ok(true) if end_entity => {}
                Ok(_) => out.push(c),
                Err(e) => self.error(
                    at,
                    format!("{shown}: certificate #{}: not a certificate: {e}", i + 1),
                ),
            }
        }
        if out.is_empty() {
            let what = if end_entity {
                "no end-entity certificate"
            } else {
                "no certificate"
            };
            self.error(at, format!("{shown}: {what} in the file"));
        }
        out
    }

    /// Reads and parses certificate files ahead, in chunks on several threads per core (see
    /// [`PREFETCH_THREADS_PER_CORE`]): a CSV names thousands, and [`Loader::cert_file`] then
    /// reports on each in the file's order, as if read there. A path that is a folder is
    /// remembered as one.
    fn prefetch(&mut self, paths: Vec<PathBuf>) {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = (cores * PREFETCH_THREADS_PER_CORE).min(paths.len() / PREFETCH_PER_THREAD);
        if threads < 2 {
            return;
        }
        let source = self.source;
        let size = paths.len().div_ceil(threads);
        let loaded = &mut self.loaded;
        std::thread::scope(|scope| {
            let chunks: Vec<_> = paths
                .chunks(size)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|p| (p.clone(), Loaded::of(source, p)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for chunk in chunks {
                // A chunk that panicked is read again where it is named.
                if let Ok(files) = chunk.join() {
                    loaded.extend(files);
                }
            }
        });
    }

    /// The certificate files a CSV's `certificate` column names (not folders), to prefetch.
    fn csv_files(&self, bytes: &[u8], column: usize, folder: &Path) -> Vec<PathBuf> {
        let mut reader = csv_reader(bytes);
        let mut files = Vec::new();
        for record in reader.records().flatten() {
            let Some(cell) = record.get(column) else {
                continue;
            };
            for path in csv_list(cell) {
                let path = folder.join(path);
                // Folders too: reading one ahead finds it is one (on the prefetch threads).
                if !self.loaded.contains_key(&path) {
                    files.push(path);
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }

    fn people_from(
        &mut self,
        t: &DeTable<'_>,
        span: &Range<usize>,
        default_directories: &[String],
        declared: &mut Vec<Declared>,
    ) {
        self.unknown_keys(t, PEOPLE_FROM_KEYS, " in [[people_from]]");
        let Some(v) = t.get("csv") else {
            self.error_span(span, "[[people_from]] without `csv`");
            return;
        };
        let Some(csv_name) = self.string(v, "csv") else {
            return;
        };
        let at = self.at(&v.span());
        let csv_path = PathBuf::from(csv_name);
        let read = match self.source.read(&csv_path) {
            Ok(b) => b,
            Err(e) => {
                self.error(&at, format!("{csv_name}: cannot read: {e}"));
                return;
            }
        };
        let bytes = csv_text(&read);
        // Certificate paths in the CSV are relative to the CSV's folder.
        let folder = csv_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = csv_name.to_string();
        let mut reader = csv_reader(bytes);
        let lines = CsvLines {
            bytes,
            lines: Lines::of_bytes(bytes),
        };
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                self.error(&lines.at(&file, e.position()), csv_cause(&e));
                return;
            }
        };
        let header_at = lines.at(&file, headers.position());
        let mut columns: HashMap<&str, usize> = HashMap::new();
        let mut header_ok = true;
        for (i, name) in headers.iter().enumerate() {
            let known = CSV_REQUIRED
                .iter()
                .chain(CSV_OPTIONAL)
                // Spreadsheets capitalise headers: `Address` is `address`.
                .find(|k| k.eq_ignore_ascii_case(name));
            match known {
                Some(k) if columns.contains_key(k) => {
                    self.error(&header_at, format!("column `{name}` appears twice"));
                    header_ok = false;
                }
                Some(k) => {
                    columns.insert(k, i);
                }
                None => {
                    self.error(
                        &header_at,
                        format!(
                            "unknown column `{name}` (expected: address, kind, certificate, directories, issue)"
                        ),
                    );
                    header_ok = false;
                }
            }
        }
        for required in CSV_REQUIRED {
            if !columns.contains_key(required) {
                self.error(
                    &header_at,
                    format!(
                        "no `{required}` column (the header is address,kind,certificate,directories)"
                    ),
                );
                header_ok = false;
            }
        }
        if header_ok && !columns.contains_key("certificate") && !columns.contains_key("issue") {
            self.error(
                &header_at,
                "neither a `certificate` nor an `issue` column (a certificate source)",
            );
            header_ok = false;
        }
        if !header_ok {
            return;
        }
        if let Some(column) = columns.get("certificate") {
            let files = self.csv_files(bytes, *column, &folder);
            self.prefetch(files);
        }
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.error(&lines.at(&file, e.position()), csv_cause(&e));
                    continue;
                }
            };
            let at = lines.at(&file, record.position());
            let cell = |name: &str| {
                columns
                    .get(name)
                    .and_then(|i| record.get(*i))
                    .filter(|s| !s.is_empty())
            };
            let address = match cell("address") {
                Some(s) => self.address(&at, s),
                None => {
                    self.error(&at, "empty `address`");
                    None
                }
            };
            let kind = match cell("kind") {
                Some(s) => self.kind(&at, s),
                None => {
                    self.error(&at, "empty `kind` (\"mailbox\" or \"contact\")");
                    None
                }
            };
            let mut certificates = Vec::new();
            let cert_cell = cell("certificate");
            if let (Some(cell), Some(a)) = (cert_cell, &address) {
                for path in csv_list(cell) {
                    let path = folder.join(path);
                    certificates.extend(self.person_certs(&at, a, &path));
                }
            }
            let issue_cell = cell("issue");
            let issue = issue_cell.and_then(|s| self.issue(&at, &folder.join(s).to_string_lossy()));
            let before = self.errors.len();
            let (directories, directories_failed) = match cell("directories") {
                Some(s) => {
                    let names = csv_list(s).map(|n| (n.to_string(), at.clone())).collect();
                    (self.check_directories(names), self.errors.len() > before)
                }
                None => (
                    default_directories.to_vec(),
                    self.default_directories_failed,
                ),
            };
            let (Some(address), Some(kind)) = (address, kind) else {
                continue;
            };
            if self
                .person_checks(
                    &at,
                    &address,
                    cert_cell.is_some() || issue_cell.is_some(),
                    &directories,
                    directories_failed,
                )
                .is_none()
            {
                continue;
            }
            dedup(&mut certificates);
            declared.push(Declared {
                person: Person {
                    address,
                    kind,
                    certificates,
                    issue,
                    directories,
                    origin: Origin {
                        file: at.file.clone(),
                        line: at.line,
                    },
                },
            });
        }
    }

    /// Sorts people by address and reports each address declared twice, naming both places.
    fn unique(&mut self, declared: Vec<Declared>) -> Vec<Person> {
        let mut by_key: BTreeMap<String, Person> = BTreeMap::new();
        for Declared { person } in declared {
            match by_key.get(&person.address.key()) {
                Some(first) => {
                    let cause = format!(
                        "{} is declared twice: here and at {}:{}",
                        person.address, first.origin.file, first.origin.line
                    );
                    let at = At {
                        file: person.origin.file.clone(),
                        line: person.origin.line,
                    };
                    self.error(&at, cause);
                }
                None => {
                    by_key.insert(person.address.key(), person);
                }
            }
        }
        by_key.into_values().collect()
    }
}

/// Line numbers in a CSV file.
struct CsvLines<'a> {
    bytes: &'a [u8],
    lines: Lines,
}

impl CsvLines<'_> {
    /// The line a record starts on. The reader's own line number counts from before the blank
    /// and comment lines it skipped to reach the record; this skips them too.
    fn line(&self, pos: &csv::Position) -> u32 {
        let mut start = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while let Some(len) = self.bytes[start..].iter().position(|b| *b == b'\n') {
            let line = self.bytes[start..start + len].trim_ascii();
            if !(line.is_empty() || line.starts_with(b"#")) {
                break;
            }
            start += len + 1;
        }
        self.lines.line(start)
    }

    fn at(&self, file: &str, pos: Option<&csv::Position>) -> At {
        At {
            file: file.to_string(),
            line: pos.map_or(1, |p| self.line(p)),
        }
    }
}

fn csv_cause(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        _ => format!("not a valid CSV file: {e}"),
    }
}

/// Drops repeated certificates, keeping the first.
fn dedup(certs: &mut Vec<CertDer>) {
    let mut seen = std::collections::HashSet::new();
    certs.retain(|c| seen.insert(c.clone()));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::path::Component;
    use std::sync::OnceLock;

    use super::*;
    use crate::{CaInitRequest, CaIssueRequest, CaKeyType, IssueSource, Secret, Service};

    /// A real smimekit CA (on the pinned clock) with certificates for a few people, made once.
    struct Pki {
        _tmp: tempfile::TempDir,
        ca: PathBuf,
        /// address → PEM of the leaf.
        leaves: BTreeMap<String, String>,
    }

    const PEOPLE: &[&str] = &["alice@contoso.com", "bob@contoso.com", "carol@fabrikam.com"];

    fn pki() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let s = Service::builder()
                    .clock(smimekit_testkit::pinned_clock())
                    .build()
                    .unwrap();
                let tmp = tempfile::tempdir().unwrap();
                let ca = tmp.path().join("ca");
                let secret = Secret::from("pw");
                s.ca_init(&CaInitRequest {
                    dir: ca.clone(),
                    name: "Contoso".into(),
                    key_type: CaKeyType::P256,
                    secret: secret.clone(),
                    crl_url: None,
                })
                .await
                .unwrap();
                let mut leaves = BTreeMap::new();
                for email in PEOPLE {
                    let r = s
                        .ca_issue(&CaIssueRequest {
                            dir: ca.clone(),
                            ca_secret: Some(secret.clone()),
                            source: IssueSource::Generate {
                                email: (*email).into(),
                                key_type: CaKeyType::P256,
                                p12_name: format!("{email}.p12"),
                                p12_secret: secret.clone(),
                                legacy: false,
                            },
                            days: 365,
                            renew: false,
                        })
                        .await
                        .unwrap();
                    leaves.insert((*email).to_string(), r.pem);
                }
                Pki {
                    _tmp: tmp,
                    ca,
                    leaves,
                }
            })
        })
    }

    fn leaf(address: &str) -> Vec<u8> {
        pki().leaves[address].clone().into_bytes()
    }

    fn ca_file(name: &str) -> Vec<u8> {
        std::fs::read(pki().ca.join(name)).unwrap()
    }

    fn thumb(pem: &[u8]) -> String {
        let c = container::load_certificates(pem, "t").unwrap();
        certinfo::parse(&c[0]).unwrap().sha1_thumbprint
    }

    /// Files in memory; folders are the prefixes of their paths.
    #[derive(Clone, Default)]
    struct Mem {
        files: BTreeMap<PathBuf, Vec<u8>>,
    }

    /// As the file system would see it (no symbolic links here).
    fn norm(p: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }

    impl Mem {
        fn with(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
            self.files.insert(norm(Path::new(path)), bytes.into());
            self
        }

        /// The CA folder's files under `folder`.
        fn with_ca(self, folder: &str) -> Self {
            ["ca.json", "root.pem", "issuing.pem"]
                .iter()
                .fold(self, |m, f| m.with(&format!("{folder}/{f}"), ca_file(f)))
        }

        fn people(self) -> Self {
            PEOPLE
                .iter()
                .fold(self, |m, a| m.with(&format!("certs/{a}.pem"), leaf(a)))
        }
    }

    impl DeploySource for Mem {
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            self.files
                .get(&norm(path))
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }

        fn list(&self, path: &Path) -> std::io::Result<Vec<String>> {
            if !self.is_dir(path) {
                return Err(std::io::Error::from(std::io::ErrorKind::NotADirectory));
            }
            let dir = norm(path);
            Ok(self
                .files
                .keys()
                .filter(|f| f.parent() == Some(dir.as_path()))
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect())
        }

        fn is_dir(&self, path: &Path) -> bool {
            let dir = norm(path);
            self.files.keys().any(|f| f.starts_with(&dir) && *f != dir)
        }
    }

    fn known() -> Vec<String> {
        vec!["exo".into(), "corp".into(), "local".into()]
    }

    fn ok(text: &str, mem: &Mem) -> Desired {
        load("deploy.toml", text, mem, &known())
            .unwrap_or_else(|e| panic!("{}", ServiceError::from(e)))
    }

    /// The problems, as `file:line: cause` lines.
    fn errors(text: &str, mem: &Mem) -> Vec<String> {
        match load("deploy.toml", text, mem, &known()) {
            Ok(d) => panic!("accepted: {d:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// Asserts exactly one problem, on `line`, whose cause contains `needle`.
    #[track_caller]
    fn one_error(text: &str, mem: &Mem, at: &str, needle: &str) {
        let e = errors(text, mem);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(&format!("{at}: ")) && e[0].contains(needle),
            "expected {at}: …{needle}…, got {:?}",
            e[0]
        );
    }

    /// The people each directory has, counted from the text and its CSV files, are those
    /// [`load`] gives each (defaults, a person's own list, a CSV's column, a byte-order mark,
    /// comments), in the order the file names the directories.
    #[test]
    fn people_per_directory_counts_what_load_gives_each() {
        let mem = Mem::default()
            .people()
            .with(
                "more/people.csv",
                "\u{feff}Address,kind,certificate,Directories\n\
                 # a comment\n\
                 dan@contoso.com,mailbox,../certs/alice@contoso.com.pem,\n\
                 erin@contoso.com,mailbox,../certs/alice@contoso.com.pem, local ; corp \n\
                 fay@contoso.com,mailbox,../certs/alice@contoso.com.pem,local\n",
            )
            .with(
                "few.csv",
                "address,kind,certificate\ngus@contoso.com,mailbox,certs/bob@contoso.com.pem\n",
            );
        let text = r#"directories = ["exo"]
[[people]]
address = "alice@contoso.com"
kind = "mailbox"
certificates = ["certs/alice@contoso.com.pem"]
[[people]]
address = "bob@contoso.com"
kind = "mailbox"
certificates = ["certs/bob@contoso.com.pem"]
directories = ["corp", "exo"]
[[people_from]]
csv = "more/people.csv"
[[people_from]]
csv = "few.csv"
"#;
        let desired = ok(text, &mem);
        let mut expected: Vec<(String, usize)> = Vec::new();
        for name in ["exo", "corp", "local"] {
            let n = (desired.people.iter())
                .filter(|p| p.directories.iter().any(|d| d == name))
                .count();
            expected.push((name.to_string(), n));
        }
        assert_eq!(
            expected,
            [("exo".into(), 4), ("corp".into(), 2), ("local".into(), 2)]
        );
        assert_eq!(people_per_directory(text, &mem), expected);
        // A CSV that cannot be read counts nobody; a text that is not TOML names nothing.
        let missing = text.replace("few.csv", "gone.csv");
        assert_eq!(
            people_per_directory(&missing, &mem),
            [("exo".into(), 3), ("corp".into(), 2), ("local".into(), 2)]
        );
        assert!(people_per_directory("directories = [", &mem).is_empty());
    }

    /// The README's example, in full.
    const EXAMPLE: &str = r#"# deploy.toml — paths are relative to this file
directories = ["exo", "corp"]          # default targets for every person

[trust]
certificates = ["ca/root.pem", "ca/issuing.pem"]

[policy]
remove_expired = true
remove_superseded_after_days = 30
renew_before_days = 30
unmanaged = "keep"

[[people]]
address = "alice@contoso.com"
kind = "mailbox"
certificates = ["certs/alice@contoso.com.pem"]
directories = ["exo"]

[[people]]
address = "Bob@Contoso.com"
kind = "mailbox"
issue = "ca"

[[people_from]]
csv = "people.csv"
"#;

    fn example_files() -> Mem {
        Mem::default().with_ca("ca").people().with(
            "people.csv",
            "address,kind,certificate,directories\n\
                 carol@fabrikam.com,contact,certs/carol@fabrikam.com.pem,corp;exo\n",
        )
    }

    #[test]
    fn the_readme_example() {
        let d = ok(EXAMPLE, &example_files());
        assert_eq!(d.file, "deploy.toml");
        assert_eq!(d.directories, ["exo", "corp"]);
        let trust = d.trust.as_ref().unwrap();
        assert_eq!(trust.ca, None);
        let thumbs: Vec<String> = trust
            .certificates
            .iter()
            .map(|c| certinfo::parse(c).unwrap().sha1_thumbprint)
            .collect();
        assert_eq!(
            thumbs,
            [thumb(&ca_file("root.pem")), thumb(&ca_file("issuing.pem"))]
        );
        assert!(d.policy.remove_expired);
        assert_eq!(d.policy.unmanaged, Unmanaged::Keep);
        let who: Vec<(&str, RecipientKind, Vec<String>, u32, &str)> = d
            .people
            .iter()
            .map(|p| {
                (
                    p.address.as_str(),
                    p.kind,
                    p.directories.clone(),
                    p.origin.line,
                    p.origin.file.as_str(),
                )
            })
            .collect();
        assert_eq!(
            who,
            [
                (
                    "alice@contoso.com",
                    RecipientKind::Mailbox,
                    vec!["exo".to_string()],
                    14,
                    "deploy.toml"
                ),
                (
                    "Bob@Contoso.com",
                    RecipientKind::Mailbox,
                    vec!["exo".to_string(), "corp".to_string()],
                    20,
                    "deploy.toml"
                ),
                (
                    "carol@fabrikam.com",
                    RecipientKind::Contact,
                    vec!["corp".to_string(), "exo".to_string()],
                    2,
                    "people.csv"
                ),
            ]
        );
        let alice = &d.people[0];
        assert_eq!(alice.certificates.len(), 1);
        assert_eq!(
            certinfo::parse(&alice.certificates[0])
                .unwrap()
                .sha1_thumbprint,
            thumb(&leaf("alice@contoso.com"))
        );
        assert_eq!(alice.issue, None);
        let bob = &d.people[1];
        assert!(bob.certificates.is_empty());
        assert_eq!(bob.issue.as_deref(), Some(Path::new("ca")));
        // Certificates serialise as thumbprints, never as bytes.
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json["people"][0]["certificates"][0],
            thumb(&leaf("alice@contoso.com"))
        );
        assert_eq!(json["policy"]["unmanaged"], "keep");
        assert_eq!(json["people"][2]["kind"], "contact");
    }

    /// The README's section, verbatim: its example deploy file with its CSV example.
    #[test]
    fn the_readme_section() {
        let readme = include_str!("../../../../README.md");
        let section = &readme[readme
            .find("\n## The deploy file\n")
            .expect("README section")..];
        let block = |lang: &str| {
            let start = section.find(&format!("```{lang}\n")).expect(lang) + lang.len() + 4;
            let end = start + section[start..].find("```").expect("block end");
            section[start..end].to_string()
        };
        let mem = Mem::default()
            .with_ca("ca")
            .with("certs/alice.pem", leaf("alice@contoso.com"))
            .with("certs/bob.pem", leaf("bob@contoso.com"))
            .with("certs/carol@fabrikam.com.pem", leaf("carol@fabrikam.com"))
            .with("people.csv", block("csv"));
        let d = ok(&block("toml"), &mem);
        let who: Vec<String> = d
            .people
            .iter()
            .map(|p| {
                format!(
                    "{} {:?} {} {}",
                    p.address,
                    p.kind,
                    p.directories.join(","),
                    p.certificates.len()
                )
            })
            .collect();
        assert_eq!(
            who,
            [
                "alice@contoso.com Mailbox exo 1",
                "bob@contoso.com Mailbox exo,corp 1",
                "carol@fabrikam.com Contact exo,corp 1",
            ]
        );
        assert_eq!(d.trust.unwrap().certificates.len(), 2);
    }

    /// Mangled deploy files and CSV files: never a panic, and every problem on a line that exists.
    #[test]
    fn mangled_input_is_reported_never_a_panic() {
        let files = example_files();
        let csv = String::from_utf8(files.files[Path::new("people.csv")].clone()).unwrap();
        let check = |toml: &str, csv: &str| {
            let mem = example_files().with("people.csv", csv.as_bytes().to_vec());
            if let Err(errors) = load("deploy.toml", toml, &mem, &known()) {
                assert!(!errors.is_empty());
                for e in errors {
                    let text = if e.file == "deploy.toml" { toml } else { csv };
                    let lines = text.lines().count().max(1) as u32;
                    assert!(
                        (1..=lines + 1).contains(&e.line),
                        "{e} (of {lines} lines) in {toml:?} / {csv:?}"
                    );
                }
            }
        };
        let mut cuts: Vec<usize> = (0..=EXAMPLE.len())
            .filter(|i| EXAMPLE.is_char_boundary(*i))
            .collect();
        cuts.dedup();
        for &i in &cuts {
            check(&EXAMPLE[..i], &csv);
            for junk in ["\"", "[", "\n", "=", "x"] {
                check(&format!("{}{junk}{}", &EXAMPLE[..i], &EXAMPLE[i..]), &csv);
            }
        }
        for i in 0..=csv.len() {
            check(EXAMPLE, &csv[..i]);
            for junk in [",", "\"", ";", "\n", "#"] {
                check(EXAMPLE, &format!("{}{junk}{}", &csv[..i], &csv[i..]));
            }
        }
    }

    #[test]
    fn defaults() {
        let d = ok(
            "directories = [\"local\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"contact\"\ncertificates = \"certs\"\n",
            &Mem::default().people(),
        );
        assert!(d.trust.is_none());
        let p = &d.policy;
        assert_eq!(
            (
                p.remove_expired,
                p.remove_superseded_after_days,
                p.renew_before_days,
                p.unmanaged
            ),
            (true, 30, 30, Unmanaged::Keep)
        );
        assert_eq!(d.people[0].directories, ["local"]);
        // A folder: ADDRESS.pem is taken from it.
        assert_eq!(d.people[0].certificates.len(), 1);
        // Without `kind`, a person is a mailbox.
        let d = ok(
            "directories = [\"local\"]\n[[people]]\naddress = \"alice@contoso.com\"\ncertificates = \"certs\"\n",
            &Mem::default().people(),
        );
        assert_eq!(d.people[0].kind, RecipientKind::Mailbox);
        // An empty file is an empty desired state.
        let d = ok("", &Mem::default());
        assert!(d.people.is_empty() && d.directories.is_empty());
    }

    #[test]
    fn policy_values() {
        let d = ok(
            "[policy]\nremove_expired = false\nremove_superseded_after_days = 0\nrenew_before_days = 60\nunmanaged = \"report\"\n",
            &Mem::default(),
        );
        let p = &d.policy;
        assert_eq!(
            (
                p.remove_expired,
                p.remove_superseded_after_days,
                p.renew_before_days,
                p.unmanaged
            ),
            (false, 0, 60, Unmanaged::Report)
        );
        let m = Mem::default();
        one_error(
            "[policy]\nremove_expired = \"yes\"\n",
            &m,
            "deploy.toml:2",
            "true or false",
        );
        one_error(
            "[policy]\nrenew_before_days = -1\n",
            &m,
            "deploy.toml:2",
            "from 0 to 3650, not -1",
        );
        one_error(
            "[policy]\n\nrenew_before_days = 99999\n",
            &m,
            "deploy.toml:3",
            "not 99999",
        );
        one_error(
            "[policy]\nremove_superseded_after_days = 1.5\n",
            &m,
            "deploy.toml:2",
            "whole number of days, not float",
        );
        one_error(
            "[policy]\nunmanaged = \"remove\"\n",
            &m,
            "deploy.toml:2",
            "\"keep\" or \"report\"",
        );
        one_error("policy = 3\n", &m, "deploy.toml:1", "must be a table");
    }

    #[test]
    fn unknown_keys_anywhere_at_the_key_line() {
        let m = Mem::default().people().with_ca("ca");
        one_error(
            "directories = [\"exo\"]\n\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncerts = [\"certs/alice@contoso.com.pem\"]\n",
            &m,
            "deploy.toml:6",
            "unknown key `certs` in [[people]]",
        );
        // The person also lacks a certificate source: both problems, each on its line.
        let e = errors(
            "directories = [\"exo\"]\ncolour = 1\n[trust]\nca = \"ca\"\nfiles = []\n[policy]\nrenew = 3\n[[people_from]]\ncsv = \"x.csv\"\nsheet = 1\n",
            &m,
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("deploy.toml:2: unknown key `colour`")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("deploy.toml:5: unknown key `files` in [trust]")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("deploy.toml:7: unknown key `renew` in [policy]")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("deploy.toml:10: unknown key `sheet` in [[people_from]]")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("deploy.toml:9: x.csv: cannot read")),
            "{e:#?}"
        );
        assert_eq!(e.len(), 5, "{e:#?}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        one_error(
            "directories = [\"exo\"]\n[[people]]\naddress = \n",
            &Mem::default(),
            "deploy.toml:3",
            "not a valid TOML file",
        );
        one_error(
            "directories = [\"exo\"]\ndirectories = [\"corp\"]\n",
            &Mem::default(),
            "deploy.toml:2",
            "not a valid TOML file",
        );
    }

    /// A CSV naming hundreds of files (read ahead, on every core) is loaded as one naming a
    /// few: every person with their certificate, and each bad file reported at its line, in
    /// the file's order.
    #[test]
    fn a_long_csv_is_read_ahead_and_reported_in_order() {
        let n = 300;
        let mut csv = String::from("address,kind,certificate\n");
        let mut m = Mem::default().with_ca("ca");
        for i in 0..n {
            csv.push_str(&format!("p{i}@contoso.com,mailbox,certs/p{i}.pem\n"));
            match i {
                17 => {}
                150 => {
                    m = m.with(
                        &format!("certs/p{i}.pem"),
                        vec![0x30, 0x03, 0x02, 0x01, 0x01],
                    )
                }
                299 => m = m.with(&format!("certs/p{i}.pem"), ca_file("root.pem")),
                _ => m = m.with(&format!("certs/p{i}.pem"), leaf("alice@contoso.com")),
            }
        }
        let text = "directories = [\"exo\"]\n[[people_from]]\ncsv = \"people.csv\"\n";
        let e = errors(text, &m.clone().with("people.csv", csv.clone()));
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].starts_with("people.csv:19: certs/p17.pem: cannot read"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("people.csv:152: not a certificate file"),
            "{e:#?}"
        );
        assert_eq!(
            e[2],
            "people.csv:301: certs/p299.pem: no end-entity certificate in the file"
        );
        // Without the bad rows, everyone with the certificate of their file.
        let good: String = csv
            .lines()
            .filter(|l| !["p17@", "p150@", "p299@"].iter().any(|p| l.starts_with(p)))
            .map(|l| format!("{l}\n"))
            .collect();
        let d = ok(text, &m.with("people.csv", good));
        assert_eq!(d.people.len(), n - 3);
        let alice = thumb(&leaf("alice@contoso.com"));
        assert!(d.people.iter().all(|p| p.certificates.len() == 1
            && certinfo::parse(&p.certificates[0]).unwrap().sha1_thumbprint == alice));
    }

    #[test]
    fn missing_unreadable_and_wrong_files() {
        let m = Mem::default()
            .people()
            .with(
                "certs/key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            )
            .with("certs/junk.der", vec![0x30, 0x03, 0x02, 0x01, 0x01])
            .with("certs/ca-only.pem", ca_file("root.pem"))
            .with_ca("ca");
        let person = |certs: &str| {
            format!(
                "directories = [\"exo\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncertificates = [{certs}]\n"
            )
        };
        one_error(
            &person("\"certs/nope.pem\""),
            &m,
            "deploy.toml:5",
            "certs/nope.pem: cannot read",
        );
        one_error(
            &person("\"certs/key.pem\""),
            &m,
            "deploy.toml:5",
            "certs/key.pem: no end-entity certificate",
        );
        one_error(
            &person("\"certs/junk.der\""),
            &m,
            "deploy.toml:5",
            "not a certificate file",
        );
        one_error(
            &person("\"certs/ca-only.pem\""),
            &m,
            "deploy.toml:5",
            "no end-entity certificate",
        );
        // A bundle: the CA certificate beside the leaf is skipped.
        let mut bundle = leaf("alice@contoso.com");
        bundle.extend(ca_file("issuing.pem"));
        let d = ok(&person("\"bundle.pem\""), &m.with("bundle.pem", bundle));
        assert_eq!(d.people[0].certificates.len(), 1);
        // A folder without the person's file.
        let m = Mem::default().with("other/bob@contoso.com.pem", leaf("bob@contoso.com"));
        one_error(
            &person("\"other\""),
            &m,
            "deploy.toml:5",
            "no certificate for alice@contoso.com in the folder",
        );
        // Case does not matter in the folder, and .cer/.crt/.der are found too.
        let m = Mem::default().with("other/Alice@Contoso.COM.cer", leaf("alice@contoso.com"));
        assert_eq!(ok(&person("\"other\""), &m).people[0].certificates.len(), 1);
        // A file named twice gives the certificate once.
        let m = Mem::default().people();
        let d = ok(&person("\"certs/alice@contoso.com.pem\", \"certs\""), &m);
        assert_eq!(d.people[0].certificates.len(), 1);
    }

    #[test]
    fn addresses_and_kinds() {
        let m = Mem::default().people();
        let person = |address: &str, kind: &str| {
            format!(
                "directories = [\"exo\"]\n[[people]]\naddress = {address}\nkind = {kind}\ncertificates = [\"certs\"]\n"
            )
        };
        one_error(
            &person("\"alice.contoso.com\"", "\"mailbox\""),
            &m,
            "deploy.toml:3",
            "has no '@'",
        );
        one_error(
            &person("\"Alice <alice@contoso.com>\"", "\"mailbox\""),
            &m,
            "deploy.toml:3",
            "bare address",
        );
        one_error(
            &person("\"al ice@contoso.com\"", "\"mailbox\""),
            &m,
            "deploy.toml:3",
            "whitespace",
        );
        one_error(
            &person("42", "\"mailbox\""),
            &m,
            "deploy.toml:3",
            "`address` must be a string",
        );
        one_error(
            &person("\"alice@contoso.com\"", "\"user\""),
            &m,
            "deploy.toml:4",
            "unknown kind \"user\"",
        );
        one_error(
            "directories = [\"exo\"]\n[[people]]\nkind = \"mailbox\"\ncertificates = [\"certs\"]\n",
            &m,
            "deploy.toml:2",
            "without `address`",
        );
        one_error("people = 1\n", &m, "deploy.toml:1", "array of tables");
    }

    #[test]
    fn directories_must_be_configured() {
        let m = Mem::default().people();
        one_error(
            "directories = [\"exo\", \"nope\"]\n",
            &m,
            "deploy.toml:1",
            "unknown directory `nope` (configured: exo, corp, local)",
        );
        one_error(
            "directories = [\"exo\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncertificates = \"certs\"\ndirectories = [\"ldap\"]\n",
            &m,
            "deploy.toml:6",
            "unknown directory `ldap`",
        );
        // No default and no override: the person goes nowhere.
        one_error(
            "[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncertificates = \"certs\"\n",
            &m,
            "deploy.toml:2",
            "no directories",
        );
        let e = load("deploy.toml", "directories = [\"exo\"]\n", &m, &[]).unwrap_err();
        assert!(e[0].cause.contains("none is configured"), "{e:?}");
    }

    #[test]
    fn duplicate_people_name_both_places() {
        let m = Mem::default().people().with(
            "people.csv",
            "address,kind,certificate\n\
             bob@contoso.com,mailbox,certs\n\
             ALICE@contoso.com,mailbox,certs\n",
        );
        let e = errors(
            "directories = [\"exo\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncertificates = \"certs\"\n\n[[people]]\naddress = \"Bob@contoso.com\"\nkind = \"mailbox\"\ncertificates = \"certs\"\n[[people_from]]\ncsv = \"people.csv\"\n",
            &m,
        );
        assert_eq!(
            e,
            [
                "people.csv:2: bob@contoso.com is declared twice: here and at deploy.toml:8",
                "people.csv:3: ALICE@contoso.com is declared twice: here and at deploy.toml:3",
            ]
        );
    }

    #[test]
    fn duplicates_within_the_deploy_file_point_at_the_addresses() {
        one_error(
            "directories = [\"exo\"]\n\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\ncertificates = [\"certs\"]\n\n[[people]]\naddress = \"Alice@Contoso.com\"\nkind = \"contact\"\ncertificates = [\"certs\"]\n",
            &Mem::default().people(),
            "deploy.toml:9",
            "Alice@Contoso.com is declared twice: here and at deploy.toml:4",
        );
    }

    #[test]
    fn a_person_needs_a_certificate_source() {
        one_error(
            "directories = [\"exo\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\n",
            &Mem::default(),
            "deploy.toml:3",
            "neither `certificates` nor `issue`",
        );
    }

    #[test]
    fn issue_names_a_ca_folder() {
        let m = Mem::default()
            .with_ca("pki/ca")
            .with("notca/readme.txt", "x");
        let person = |issue: &str| {
            format!(
                "directories = [\"exo\"]\n[[people]]\naddress = \"alice@contoso.com\"\nkind = \"mailbox\"\nissue = \"{issue}\"\n"
            )
        };
        let d = ok(&person("pki/ca"), &m);
        assert_eq!(d.people[0].issue.as_deref(), Some(Path::new("pki/ca")));
        one_error(
            &person("nowhere"),
            &m,
            "deploy.toml:5",
            "nowhere: not a folder",
        );
        one_error(
            &person("notca"),
            &m,
            "deploy.toml:5",
            "not a smimekit CA folder",
        );
    }

    #[test]
    fn trust_has_certificates_or_a_ca() {
        let m = Mem::default().with_ca("ca");
        let d = ok("[trust]\nca = \"ca\"\n", &m);
        let t = d.trust.unwrap();
        assert_eq!(t.ca.as_deref(), Some(Path::new("ca")));
        let thumbs: Vec<_> = t
            .certificates
            .iter()
            .map(|c| certinfo::parse(c).unwrap().sha1_thumbprint)
            .collect();
        assert_eq!(
            thumbs,
            [thumb(&ca_file("root.pem")), thumb(&ca_file("issuing.pem"))]
        );
        one_error(
            "[trust]\ncertificates = [\"ca/root.pem\"]\nca = \"ca\"\n",
            &m,
            "deploy.toml:3",
            "both `certificates` and `ca`",
        );
        one_error("\n[trust]\n", &m, "deploy.toml:2", "needs `certificates`");
        one_error(
            "[trust]\n\ncertificates = []\n",
            &m,
            "deploy.toml:3",
            "`certificates` is empty",
        );
        one_error(
            "[trust]\ncertificates = [\"ca/nope.pem\"]\n",
            &m,
            "deploy.toml:2",
            "ca/nope.pem: cannot read",
        );
        one_error(
            "[trust]\nca = \"elsewhere\"\n",
            &m,
            "deploy.toml:2",
            "not a folder",
        );
        one_error(
            "[trust]\ncertificates = [1]\n",
            &m,
            "deploy.toml:2",
            "array of strings",
        );
    }

    #[test]
    fn csv_people() {
        let m = Mem::default()
            .with_ca("ca")
            .with(
                "lists/people.csv",
                "\u{feff}# exported from HR\r\n\
             Address , Kind , certificate , directories , issue\n\
             alice@contoso.com,mailbox,certs/alice.pem,,\n\
             \n\
             carol@fabrikam.com,contact,certs,exo;corp,\n\
             bob@contoso.com,mailbox,,local,../ca\n",
            )
            .with("lists/certs/alice.pem", leaf("alice@contoso.com"))
            .with(
                "lists/certs/carol@fabrikam.com.pem",
                leaf("carol@fabrikam.com"),
            );
        let d = ok(
            "\u{feff}directories = [\"exo\"]\n[[people_from]]\ncsv = \"lists/people.csv\"\n",
            &m,
        );
        let got: Vec<_> = d
            .people
            .iter()
            .map(|p| {
                (
                    p.address.to_string(),
                    p.kind,
                    p.certificates.len(),
                    p.issue.is_some(),
                    p.directories.join(";"),
                    format!("{}:{}", p.origin.file, p.origin.line),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "alice@contoso.com".into(),
                    RecipientKind::Mailbox,
                    1,
                    false,
                    "exo".into(),
                    "lists/people.csv:3".into()
                ),
                (
                    "bob@contoso.com".into(),
                    RecipientKind::Mailbox,
                    0,
                    true,
                    "local".into(),
                    "lists/people.csv:6".into()
                ),
                (
                    "carol@fabrikam.com".into(),
                    RecipientKind::Contact,
                    1,
                    false,
                    "exo;corp".into(),
                    "lists/people.csv:5".into()
                ),
            ]
        );
    }

    #[test]
    fn csv_problems_name_the_csv_and_its_line() {
        let csv = |body: &str| Mem::default().people().with("people.csv", body.to_string());
        let deploy = "directories = [\"exo\"]\n[[people_from]]\ncsv = \"people.csv\"\n";
        one_error(
            deploy,
            &csv("address,kind,cert\n"),
            "people.csv:1",
            "unknown column `cert`",
        );
        one_error(
            deploy,
            &csv("# from HR\n\naddress,kind,cert\n"),
            "people.csv:3",
            "unknown column `cert`",
        );
        one_error(
            deploy,
            &csv("address,certificate\n"),
            "people.csv:1",
            "no `kind` column",
        );
        one_error(
            deploy,
            &csv("address,kind\n"),
            "people.csv:1",
            "neither a `certificate` nor an `issue` column",
        );
        let e = errors(
            deploy,
            &csv("address,kind,certificate,directories\n\
                  alice@contoso.com,mailbox,certs\n\
                  bob,mailbox,certs,\n\
                  carol@fabrikam.com,person,certs,\n\
                  alice@contoso.com,mailbox,,\n\
                  alice@contoso.com,mailbox,certs/none.pem,\n\
                  carol@fabrikam.com,contact,certs,ldap\n"),
        );
        assert_eq!(
            e,
            [
                "people.csv:2: 3 fields where the header has 4",
                "people.csv:3: bad address \"bob\" has no '@'",
                "people.csv:4: unknown kind \"person\" (\"mailbox\" or \"contact\")",
                "people.csv:5: alice@contoso.com: neither `certificates` nor `issue` (a certificate source) is given",
                "people.csv:6: certs/none.pem: cannot read: entity not found",
                "people.csv:7: unknown directory `ldap` (configured: exo, corp, local)",
            ]
        );
        // The CSV itself missing: the deploy file's line.
        one_error(
            deploy,
            &Mem::default(),
            "deploy.toml:3",
            "people.csv: cannot read",
        );
        one_error(
            "[[people_from]]\n",
            &Mem::default(),
            "deploy.toml:1",
            "without `csv`",
        );
    }

    #[test]
    fn every_problem_is_reported_and_the_service_error_lists_them() {
        let e = load(
            "deploy.toml",
            "directories = [\"nope\"]\n[[people]]\naddress = \"x\"\nkind = \"k\"\n",
            &Mem::default(),
            &known(),
        )
        .unwrap_err();
        assert!(e.len() >= 3, "{e:#?}");
        let s = ServiceError::from(e);
        assert_eq!(s.kind, ErrorKind::Invalid);
        assert_eq!(s.field, Some("file"));
        assert!(
            s.message
                .contains("deploy.toml:1: unknown directory `nope`"),
            "{s}"
        );
        assert!(s.message.contains("deploy.toml:3: bad address"), "{s}");
        assert!(s.message.contains("deploy.toml:4: unknown kind"), "{s}");
        let one = ServiceError::from(vec![DeployError {
            file: "deploy.toml".into(),
            line: 12,
            cause: "unknown key `certs` in [[people]]".into(),
        }]);
        assert_eq!(
            one.message,
            "deploy.toml:12: unknown key `certs` in [[people]]"
        );
    }

    #[test]
    fn through_the_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("org");
        let w = |rel: &str, bytes: &[u8]| {
            let p = base.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        for f in ["ca.json", "root.pem", "issuing.pem"] {
            w(&format!("ca/{f}"), &ca_file(f));
        }
        for a in PEOPLE {
            w(&format!("certs/{a}.pem"), &leaf(a));
        }
        w(
            "people.csv",
            b"address,kind,certificate\ncarol@fabrikam.com,contact,certs\n",
        );
        let text = EXAMPLE;
        let src = FsDeploySource { base: base.clone() };
        let d = load("org/deploy.toml", text, &src, &known()).unwrap();
        assert_eq!(d.people.len(), 3);
        let bob = &d.people[1];
        assert_eq!(bob.issue.as_deref(), Some(base.join("ca").as_path()));
        assert!(bob.issue.as_ref().unwrap().is_absolute());
        assert_eq!(d.trust.unwrap().certificates.len(), 2);
        // A missing file through the file system names the file and the OS's reason.
        std::fs::remove_file(base.join("certs/alice@contoso.com.pem")).unwrap();
        let e = load("org/deploy.toml", text, &src, &known()).unwrap_err();
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].file, "org/deploy.toml");
        assert_eq!(e[0].line, 16);
        assert!(
            e[0].cause
                .starts_with("certs/alice@contoso.com.pem: cannot read:"),
            "{e:?}"
        );
    }
}
