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
        listings: HashMap::new(),
    };
    let desired = cx.document(doc.get_ref());
    if cx.errors.is_empty() {
        Ok(desired)
    } else {
        Err(cx.errors)
    }
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
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
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
    /// Certificate folders listed so far: lowercase file name → file name.
    listings: HashMap<PathBuf, Option<HashMap<String, String>>>,
}

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

    /// Reports every key of `table` not in `known`, at the key's line.
    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        for key in table.keys() {
            if !known.contains(&key.get_ref().as_ref()) {
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
    }

    fn document(&mut self, doc: &DeTable<'_>) -> Desired {
        self.unknown_keys(doc, TOP_KEYS, "");
        let default_directories = match doc.get("directories") {
            Some(v) => self.directories(v, "directories"),
            None => Vec::new(),
        };
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
                    format!(
                        "`{key}` must be a string, not {}",
                        v.get_ref().type_str()
                    ),
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
                for (path, span) in self.strings(v, "certificates") {
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
            if let Some(v) = t.get(key) {
                if let Some(days) = self.days(v, key) {
                    *slot = days;
                }
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
        self.unknown_keys(t, PERSON_KEYS, " in [[people]]");
        let origin_at = self.at(span);
        let address = match t.get("address") {
            Some(v) => self.string(v, "address").and_then(|s| {
                let at = self.at(&v.span());
                self.address(&at, s)
            }),
            None => {
                self.error(&origin_at, "[[people]] without `address`");
                None
            }
        };
        let kind = match t.get("kind") {
            Some(v) => self.string(v, "kind").and_then(|s| {
                let at = self.at(&v.span());
                self.kind(&at, s)
            }),
            None => {
                self.error(
                    &origin_at,
                    "[[people]] without `kind` (\"mailbox\" or \"contact\")",
                );
                None
            }
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
        let directories = match t.get("directories") {
            Some(v) => self.directories(v, "directories"),
            None => default_directories.to_vec(),
        };
        let address = address?;
        let kind = kind?;
        self.person_checks(
            &origin_at,
            &address,
            named_certificates || t.get("issue").is_some(),
            &directories,
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
    ) -> Option<()> {
        let mut ok = true;
        if !has_source {
            self.error(
                at,
                format!("{address}: neither `certificates` nor `issue` (a certificate source) is given"),
            );
            ok = false;
        }
        if directories.is_empty() {
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
        if !self.source.is_dir(path) {
            return self.cert_file(at, path, true);
        }
        let listing = self
            .listings
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                self.source.list(path).ok().map(|names| {
                    names
                        .into_iter()
                        .map(|n| (n.to_lowercase(), n))
                        .collect::<HashMap<_, _>>()
                })
            })
            .clone();
        let Some(listing) = listing else {
            self.error(at, format!("{}: cannot list the folder", path.display()));
            return Vec::new();
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
        let bytes = match self.source.read(path) {
            Ok(b) => b,
            Err(e) => {
                self.error(at, format!("{shown}: cannot read: {e}"));
                return Vec::new();
            }
        };
        let certs = match container::load_certificates(&bytes, &shown) {
            Ok(c) => c,
            Err(e) => {
                self.error(at, format!("not a certificate file: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, c) in certs.into_iter().enumerate() {
            match certinfo::parse(&c) {
                Ok(info) if end_entity && info.is_ca => {}
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
        let bytes = match self.source.read(&csv_path) {
            Ok(b) => b,
            Err(e) => {
                self.error(&at, format!("{csv_name}: cannot read: {e}"));
                return;
            }
        };
        // Certificate paths in the CSV are relative to the CSV's folder.
        let folder = csv_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = csv_name.to_string();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(bytes.as_slice());
        let header_at = At {
            file: file.clone(),
            line: 1,
        };
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                self.error(&csv_at(&file, &e).unwrap_or(header_at), csv_cause(&e));
                return;
            }
        };
        let mut columns: HashMap<&str, usize> = HashMap::new();
        let mut header_ok = true;
        for (i, name) in headers.iter().enumerate() {
            let known = CSV_REQUIRED.iter().chain(CSV_OPTIONAL).find(|k| **k == name);
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
        if !columns.contains_key("certificate") && !columns.contains_key("issue") {
            self.error(
                &header_at,
                "neither a `certificate` nor an `issue` column (a certificate source)",
            );
            header_ok = false;
        }
        if !header_ok {
            return;
        }
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let at = csv_at(&file, &e).unwrap_or_else(|| header_at.clone());
                    self.error(&at, csv_cause(&e));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let at = At {
                file: file.clone(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
            };
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
                for path in cell.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    let path = folder.join(path);
                    certificates.extend(self.person_certs(&at, a, &path));
                }
            }
            let issue_cell = cell("issue");
            let issue = issue_cell.and_then(|s| self.issue(&at, &folder.join(s).to_string_lossy()));
            let directories = match cell("directories") {
                Some(s) => {
                    let names = s
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|n| (n.to_string(), at.clone()))
                        .collect();
                    self.check_directories(names)
                }
                None => default_directories.to_vec(),
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

/// Where in a CSV file its error is.
fn csv_at(file: &str, e: &csv::Error) -> Option<At> {
    let line = e.position()?.line();
    Some(At {
        file: file.to_string(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
    })
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
