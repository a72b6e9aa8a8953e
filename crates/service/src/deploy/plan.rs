//! `plan`: what apply would do to make the directories hold what the deploy file says.
//!
//! A plan reads every target directory (each person's entry, and the trust chain where the
//! directory keeps one) and the ownership records in the store, and compares them with the
//! desired state. It writes nothing. Ownership decides what may go: only certificate values
//! smimekit published (recorded per directory, address and thumbprint) or that the policy
//! names (expired, superseded past the grace period) are removed; a value someone else put
//! there is kept (and listed with `unmanaged = "report"`) unless the admin names the person
//! in `replace_unmanaged`.
//!
//! The plan keeps what it read (per directory: each address's kind and thumbprints, the trust
//! chain's thumbprints), so that applying a saved plan can refuse when a directory changed
//! since, naming what changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use smimekit_core::store::{CertFacts, ManagedCert, Seen, Sighting};
use smimekit_core::{
    CertDer, Directory, DirectoryError, EngineError, Mailbox, PublicKeyInfo, Recipient,
    RecipientKind, SignatureScheme, SignatureVerifier,
};
use smimekit_pki::certinfo::{self, CertInfo};
use smimekit_pki::lint::{self, LintOptions, PreparedStore, Profile, Severity};
use tokio_util::task::AbortOnDropHandle;

use super::spec::{self, DeploySource, Desired, Person, Unmanaged};
use crate::certs::rfc3339;
use crate::inventory::FactsCache;
use crate::store::store_error;
use crate::{ErrorKind, OpeningAhead, Service, ServiceError};

const DAY: i64 = 86_400;
/// Above this many people in one directory, the plan lists the directory once instead of
/// asking for each person (one paged listing beats thousands of lookups).
const LIST_THRESHOLD: usize = 200;
/// Lookups in flight per directory while reading.
const READ_PARALLEL: usize = 16;
/// The format of a saved plan.
pub const PLAN_FORMAT: u32 = 1;

/// A certificate as a plan shows it: never base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRef {
    pub subject: String,
    pub serial: String,
    pub not_after: String,
    /// SHA-1, uppercase hex, as Exchange shows it.
    pub thumbprint: String,
}

impl CertRef {
    pub(crate) fn of(cert: &CertDer) -> Self {
        match certinfo::parse(cert) {
            Ok(i) => Self::from_info(&i),
            Err(e) => Self {
                subject: format!("<unreadable: {e}>"),
                serial: String::new(),
                not_after: String::new(),
                thumbprint: thumbprint(cert),
            },
        }
    }

    fn from_info(i: &CertInfo) -> Self {
        Self {
            subject: i.subject.clone(),
            serial: i.serial_hex.clone(),
            not_after: rfc3339(i.not_after),
            thumbprint: i.sha1_thumbprint.clone(),
        }
    }
}

/// The SHA-1 thumbprint of a certificate, even an unreadable one.
pub(crate) fn thumbprint(cert: &CertDer) -> String {
    // The SHA-1 of the bytes, as the certificate's own thumbprint is: no parse needed.
    certinfo::sha1_thumbprint(cert.as_bytes())
}

/// Why a certificate is to be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoveReason {
    /// A managed certificate past its not-after (`remove_expired`).
    Expired,
    /// A managed certificate whose successor was published more than
    /// `remove_superseded_after_days` ago.
    Superseded,
    /// A managed certificate the deploy file no longer names.
    NotInFile,
    /// A certificate smimekit did not publish, removed because the admin named the person
    /// (`replace_unmanaged`).
    Unmanaged,
}

impl RemoveReason {
    fn text(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Superseded => "superseded",
            Self::NotInFile => "no longer in the deploy file",
            Self::Unmanaged => "unmanaged, replaced on request",
        }
    }
}

/// One change to one recipient of one directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ChangeAction {
    /// Publish the certificate (merged with what is there).
    Add { certificate: CertRef },
    /// Remove the certificate value.
    Remove {
        certificate: CertRef,
        reason: RemoveReason,
    },
}

/// A certificate the CA is to issue (no valid one) or renew (the current one expires within
/// `renew_before_days`); apply issues it and publishes it to the person's directories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueStep {
    pub address: String,
    /// The CA folder.
    pub ca: String,
    /// `issue` or `renew`.
    pub action: String,
    /// The certificate being renewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<CertRef>,
    pub directories: Vec<String>,
}

/// Whether Outlook / OWA will be able to encrypt to a person in a directory after apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub encryptable: bool,
    /// Why not (empty when encryptable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What the plan does for one person in one directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonPlan {
    pub address: String,
    pub kind: RecipientKind,
    /// The directory has no entry for the address yet (a contact is created by the first add).
    pub create_contact: bool,
    /// The person is no longer in the deploy file (only removals of managed values).
    #[serde(default)]
    pub departed: bool,
    pub changes: Vec<ChangeAction>,
    /// Managed certificates kept beside their successor until the grace period ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_superseded: Vec<CertRef>,
    /// Certificates smimekit did not publish, kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<CertRef>,
    pub ready: Readiness,
}

impl PersonPlan {
    fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What the plan does to a directory's trust chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPlan {
    pub add: Vec<CertRef>,
    pub remove: Vec<CertRef>,
    /// The chain to upload, as thumbprints (certificates in [`Plan::certificates`]).
    pub chain: Vec<String>,
}

/// The plan for one directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryPlan {
    pub name: String,
    /// `None`: the trust chain is as desired, or not managed here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustPlan>,
    /// Why the trust chain is not managed in this directory (it keeps none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_note: Option<String>,
    /// People with changes, or not ready, or with unmanaged certificates reported.
    pub people: Vec<PersonPlan>,
    /// People with nothing to do and nothing to report.
    pub unchanged: usize,
    /// What was read: address key → `kind:THUMB,THUMB` (or `-` when absent), and the trust
    /// chain under `#trust`. Applying a saved plan compares it with a fresh read.
    pub read: BTreeMap<String, String>,
}

/// Counts, for the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub add: usize,
    pub remove: usize,
    pub contacts: usize,
    pub issue: usize,
    pub renew: usize,
    pub unmanaged_kept: usize,
    pub trust_updates: usize,
    pub not_ready: usize,
    pub unchanged: usize,
}

impl PlanSummary {
    /// "3 to add, 1 to remove, 2 contacts to create, 1 to renew, 0 unmanaged kept".
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} to add, {} to remove, {} contacts to create, {} to renew, {} unmanaged kept",
            self.add, self.remove, self.contacts, self.renew, self.unmanaged_kept
        );
        if self.issue > 0 {
            s.push_str(&format!(", {} to issue", self.issue));
        }
        if self.trust_updates > 0 {
            s.push_str(&format!(
                ", {} trust chain{} to update",
                self.trust_updates,
                if self.trust_updates == 1 { "" } else { "s" }
            ));
        }
        s
    }
}

/// What `plan` computed; saved with `--out`, applied later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// The deploy file's name.
    pub file: String,
    /// When it was made (RFC 3339) and as Unix seconds.
    pub created: String,
    pub at: i64,
    pub directories: Vec<DirectoryPlan>,
    pub issue: Vec<IssueStep>,
    pub summary: PlanSummary,
    /// People whose unmanaged certificates the admin asked to replace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_unmanaged: Vec<String>,
    /// The certificates the changes name, by thumbprint (base64 DER): a saved plan carries
    /// them. Left out of what is shown (`Plan::shown`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, String>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.issue.is_empty()
            || self
                .directories
                .iter()
                .any(|d| d.trust.is_some() || d.people.iter().any(PersonPlan::has_changes))
    }

    /// The plan without the certificates' bytes (what `--json` prints).
    pub fn shown(&self) -> Plan {
        Plan {
            certificates: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// A certificate the plan carries, by thumbprint.
    pub(crate) fn certificate(&self, thumbprint: &str) -> Result<CertDer, ServiceError> {
        let b64 = self.certificates.get(thumbprint).ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Malformed,
                format!("plan: certificate {thumbprint} is named but not carried"),
            )
        })?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| {
                ServiceError::new(
                    ErrorKind::Malformed,
                    format!("plan: certificate {thumbprint}: {e}"),
                )
            })?;
        Ok(CertDer::from(der))
    }

    /// The plan as text, grouped by directory then person; what every frontend shows.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let cert = |c: &CertRef| {
            format!(
                "{} (serial {}, not after {}, SHA-1 {})",
                c.subject, c.serial, c.not_after, c.thumbprint
            )
        };
        line(
            &mut out,
            format!("Plan for {} ({})", self.file, self.created),
        );
        for step in &self.issue {
            let what = match &step.replaces {
                Some(old) => format!(
                    "renew {} with CA {} (replaces {})",
                    step.address,
                    step.ca,
                    cert(old)
                ),
                None => format!(
                    "issue a certificate for {} with CA {}",
                    step.address, step.ca
                ),
            };
            line(
                &mut out,
                format!("  + {what}, to publish in {}", step.directories.join(", ")),
            );
        }
        for d in &self.directories {
            line(&mut out, String::new());
            line(&mut out, format!("directory {}", d.name));
            if let Some(t) = &d.trust {
                line(&mut out, "  trust chain: upload".into());
                for c in &t.add {
                    line(&mut out, format!("    + {}", cert(c)));
                }
                for c in &t.remove {
                    line(&mut out, format!("    - {}", cert(c)));
                }
            } else if let Some(note) = &d.trust_note {
                line(&mut out, format!("  trust chain: {note}"));
            }
            for p in &d.people {
                let head = if p.departed {
                    format!(
                        "  {} ({}, no longer in the deploy file)",
                        p.address,
                        kind(p.kind)
                    )
                } else if p.create_contact {
                    format!("  {} (contact to create)", p.address)
                } else {
                    format!("  {} ({})", p.address, kind(p.kind))
                };
                line(&mut out, head);
                for c in &p.changes {
                    match c {
                        ChangeAction::Add { certificate } => {
                            line(&mut out, format!("    + add {}", cert(certificate)));
                        }
                        ChangeAction::Remove {
                            certificate,
                            reason,
                        } => line(
                            &mut out,
                            format!("    - remove {} ({})", cert(certificate), reason.text()),
                        ),
                    }
                }
                for c in &p.kept_superseded {
                    line(
                        &mut out,
                        format!("    = keep superseded {} until its grace ends", cert(c)),
                    );
                }
                for c in &p.unmanaged {
                    line(&mut out, format!("    ! unmanaged {} (kept)", cert(c)));
                }
                if !p.departed {
                    if p.ready.encryptable {
                        line(&mut out, "    Outlook/OWA can encrypt to them: yes".into());
                    } else {
                        line(
                            &mut out,
                            format!(
                                "    Outlook/OWA can encrypt to them: no ({})",
                                p.ready.reasons.join("; ")
                            ),
                        );
                    }
                }
            }
            if d.unchanged > 0 {
                line(
                    &mut out,
                    format!(
                        "  ({} {} unchanged)",
                        d.unchanged,
                        if d.unchanged == 1 { "person" } else { "people" }
                    ),
                );
            }
        }
        line(&mut out, String::new());
        if self.has_changes() {
            line(&mut out, format!("Plan: {}.", self.summary.line()));
        } else {
            line(
                &mut out,
                format!("No changes: nothing to do ({}).", self.summary.line()),
            );
        }
        out
    }
}

fn kind(k: RecipientKind) -> &'static str {
    match k {
        RecipientKind::Mailbox => "mailbox",
        RecipientKind::Contact => "contact",
    }
}

/// What a plan is made from.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub desired: Desired,
    /// Addresses whose unmanaged certificates may be removed (`unmanaged = "report"` only).
    pub replace_unmanaged: Vec<String>,
    /// Use the inventory for an address whose certificates were all seen within this many
    /// seconds (and are all known: published by smimekit or named by the file); read the
    /// directory for the others. `None`: read every directory.
    pub inventory_max_age: Option<i64>,
}

/// How fresh the inventory must be for `plan` to use it instead of asking the directory.
pub const DEFAULT_INVENTORY_MAX_AGE: i64 = 300;

/// `kind:THUMB,THUMB` (sorted), or `-` when the directory has no entry: what a plan read.
pub(crate) fn read_key(r: Option<&Recipient>) -> String {
    read_key_of(r.map(|r| {
        (
            r.kind,
            held_key(r.certificates.iter().map(thumbprint).collect()),
        )
    }))
}

/// [`read_key`] of an entry of this kind holding certificates of this [`held_key`].
fn read_key_of(entry: Option<(RecipientKind, String)>) -> String {
    match entry {
        None => "-".into(),
        Some((k, held)) => format!("{}:{held}", kind(k)),
    }
}

/// Certificates as a plan names what someone holds: their thumbprints, sorted, joined by
/// commas.
fn held_key(mut thumbs: Vec<String>) -> String {
    thumbs.sort();
    thumbs.join(",")
}

/// A trust chain as a plan names it ([`held_key`] of its certificates).
pub(crate) fn trust_key(chain: &[CertDer]) -> String {
    held_key(chain.iter().map(thumbprint).collect())
}

/// The key of the trust chain in [`DirectoryPlan::read`].
pub(crate) const TRUST_READ: &str = "#trust";

/// Reads each address's entry from `dir`: one listing when there are many, else lookups
/// (bounded in flight).
pub(crate) async fn read_entries(
    dir: &Arc<dyn Directory>,
    addresses: &[Mailbox],
) -> Result<HashMap<String, Option<Recipient>>, DirectoryError> {
    let mut out = HashMap::new();
    if addresses.len() > LIST_THRESHOLD {
        match dir.recipients().await {
            Ok(all) => return Ok(listing_entries(all, addresses)),
            // A directory that cannot list (a vendor plugin without it) is asked per person.
            Err(DirectoryError::Unsupported(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut running = tokio::task::JoinSet::new();
    let mut pending = addresses.iter().cloned();
    loop {
        while running.len() < READ_PARALLEL {
            let Some(a) = pending.next() else { break };
            let dir = dir.clone();
            running.spawn(async move {
                let r = dir.recipient(&a).await;
                (a, r)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (a, r) = joined.map_err(|e| DirectoryError::Other(format!("read task: {e}")))?;
        out.insert(a.key(), r?);
    }
    Ok(out)
}

/// Each address's entry in a directory's listing (`None`: not listed).
fn listing_entries(
    all: Vec<Recipient>,
    addresses: &[Mailbox],
) -> HashMap<String, Option<Recipient>> {
    let mut by_key: HashMap<String, Recipient> =
        all.into_iter().map(|r| (r.address.key(), r)).collect();
    addresses
        .iter()
        .map(|a| (a.key(), by_key.remove(&a.key())))
        .collect()
}

/// Whether the directory keeps a trust chain; its chain when it does.
pub(crate) async fn read_trust(
    dir: &dyn Directory,
) -> Result<Option<Vec<CertDer>>, DirectoryError> {
    match dir.trust_chain().await {
        Ok(c) => Ok(Some(c)),
        Err(DirectoryError::Unsupported(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The engine's signature verifier, remembering its answers for the length of one plan or
/// status: the CA certificates above thousands of people are verified once, not once per
/// person's lint. An answer is remembered by the SHA-256 of the key, message and signature.
///
/// It can also start from the checks that succeeded in earlier plans ([`Self::with_known`],
/// the store's `signature_checks`): a check is a pure function of what it checks, so
/// plan after plan over the same 10,000 certificates asks the engine only for new
/// signatures. [`Self::learned`] gives the checks that succeeded here and were not known.
/// A failed check is never carried over.
#[derive(Debug)]
pub(crate) struct Remembering {
    inner: &'static dyn SignatureVerifier,
    seen: Mutex<HashMap<([u8; 32], SignatureScheme), bool>>,
    /// What each public key (SubjectPublicKeyInfo DER) is: decoding one takes the engine
    /// longer than a signature check, and lint asks for every certificate.
    keys: Mutex<HashMap<Vec<u8>, PublicKeyInfo>>,
    /// Digests ([`check_digest`]) of checks that succeeded before this plan.
    known: HashSet<String>,
    /// Digests of checks that succeeded here and were not in `known`.
    learned: Mutex<Vec<String>>,
}

/// Days a recorded signature check is taken as made (then it is made again).
const CHECKS_KEPT_DAYS: i64 = 90;

/// What the digest of a signature check covers besides its inputs: bumped when what the
/// engine accepts changes (key sizes, schemes), so that no earlier answer stands for a newer
/// rule.
const CHECK_DOMAIN: &[u8] = b"smimekit signature check 1";

/// The lowercase hex SHA-256 that names a signature check: a domain string, the scheme, the
/// key, the signed bytes and the signature, each with its length.
fn check_digest(
    spki_der: &[u8],
    scheme: SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> [u8; 32] {
    use sha2::Digest as _;
    let scheme = format!("{scheme:?}");
    let mut h = sha2::Sha256::new();
    for part in [
        CHECK_DOMAIN,
        scheme.as_bytes(),
        spki_der,
        message,
        signature,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// What a readiness digest covers besides its question ([`ready_digest`]): bumped when what
/// readiness judges changes (the crate's version is covered too: lint's rules come with it).
const READY_DOMAIN: &[u8] = b"smimekit readiness 1";

/// A chain as [`ready_digest`] covers it: its certificates' bytes, sorted; `None` when one of
/// them is not valid at `now` (an answer judged against it could change with time alone).
fn digest_chain(chain: &[CertDer], now: i64) -> Option<Vec<&[u8]>> {
    valid_throughout(chain, now).then(|| sorted_bytes(chain))
}

/// Every certificate strictly inside its validity at `now`.
fn valid_throughout(certs: &[CertDer], now: i64) -> bool {
    certs.iter().all(|c| {
        certinfo::validity(c)
            .is_ok_and(|(not_before, not_after)| not_before < now && now < not_after)
    })
}

fn sorted_bytes(certs: &[CertDer]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = certs.iter().map(CertDer::as_bytes).collect();
    v.sort_unstable();
    v
}

/// The lowercase hex SHA-256 naming the answer "Outlook/OWA can encrypt to `address` holding
/// `certs`, judged against `chain`" ([`digest_chain`]), remembered beside the signature checks
/// ([`Remembering`]) so that plan after plan over the same people lints only what changed.
/// Readiness depends on time only through the validity of what it judges: an answer given
/// while every certificate held and in the chain was valid is the same at any time they all
/// still are, so a digest exists only then (`None` otherwise: judged every time). Only
/// encryptable answers are remembered.
fn ready_digest(address: &Mailbox, certs: &[CertDer], chain: &[&[u8]], now: i64) -> Option<String> {
    if certs.is_empty() || !valid_throughout(certs, now) {
        return None;
    }
    let held = sorted_bytes(certs);
    let key = address.key();
    let counts = [held.len() as u64, chain.len() as u64].map(u64::to_be_bytes);
    let mut h = Sha256::new();
    let parts = [
        READY_DOMAIN,
        env!("CARGO_PKG_VERSION").as_bytes(),
        key.as_bytes(),
        &counts[0],
    ]
    .into_iter()
    .chain(held)
    .chain([&counts[1][..]])
    .chain(chain.iter().copied());
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    Some(hex::encode(h.finalize()))
}

/// The job that answers `key` (who, holding what, against which anchors), or `None` when an
/// earlier plan remembered the answer named by `digest` ([`ready_digest`]): then it is put in
/// `cache` as given.
fn ready_job(
    verifier: &Remembering,
    cache: &mut HashMap<ReadyKey, Readiness>,
    key: ReadyKey,
    digest: Option<String>,
    (address, certs, anchors): (&Mailbox, &[CertDer], &Anchors),
) -> Option<ReadyJob> {
    if digest.as_deref().is_some_and(|d| verifier.knows(d)) {
        let remembered = Readiness {
            encryptable: true,
            reasons: Vec::new(),
        };
        cache.insert(key, remembered);
        return None;
    }
    Some(ReadyJob {
        key,
        address: address.clone(),
        certs: certs.to_vec(),
        anchors: anchors.clone(),
        digest,
    })
}

impl Remembering {
    pub(crate) fn new(inner: &'static dyn SignatureVerifier) -> Self {
        Self::with_known(inner, HashSet::new())
    }

    /// A verifier that takes the checks named by `known` as succeeded.
    pub(crate) fn with_known(
        inner: &'static dyn SignatureVerifier,
        known: HashSet<String>,
    ) -> Self {
        Self {
            inner,
            seen: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            known,
            learned: Mutex::new(Vec::new()),
        }
    }

    /// Whether an answer named by `digest` ([`ready_digest`]) was given by an earlier plan.
    fn knows(&self, digest: &str) -> bool {
        self.known.contains(digest)
    }

    /// Remembers an answer named by `digest` ([`ready_digest`]) for later plans.
    fn learn(&self, digest: String) {
        if let Ok(mut learned) = self.learned.lock() {
            learned.push(digest);
        }
    }

    /// The checks that succeeded here and were not known before.
    pub(crate) fn learned(&self) -> Vec<String> {
        self.learned.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl SignatureVerifier for Remembering {
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, EngineError> {
        let digest = check_digest(spki_der, scheme, message, signature);
        let key = (digest, scheme);
        // A poisoned map (a panic while inserting) is only a cache: verify again.
        if let Some(known) = self.seen.lock().ok().and_then(|s| s.get(&key).copied()) {
            return Ok(known);
        }
        let hex = hex::encode(digest);
        if self.known.contains(&hex) {
            if let Ok(mut seen) = self.seen.lock() {
                seen.insert(key, true);
            }
            return Ok(true);
        }
        let answer = self.inner.verify(spki_der, scheme, message, signature)?;
        if let Ok(mut seen) = self.seen.lock() {
            // Two threads may check the same signature at once: it is learned once.
            let first = seen.insert(key, answer).is_none();
            if answer
                && first
                && let Ok(mut learned) = self.learned.lock()
            {
                learned.push(hex);
            }
        }
        Ok(answer)
    }

    fn public_key_info(&self, spki_der: &[u8]) -> Result<PublicKeyInfo, EngineError> {
        if let Some(known) = self.keys.lock().ok().and_then(|k| k.get(spki_der).cloned()) {
            return Ok(known);
        }
        // A key the engine refuses is asked again: its error is the engine's to give.
        let info = self.inner.public_key_info(spki_der)?;
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(spki_der.to_vec(), info.clone());
        }
        Ok(info)
    }
}

/// A certificate issued by a CA folder for a person, as plan needs it.
struct Issued {
    cert: CertDer,
    info: CertInfo,
}

impl Service {
    /// `smimekit plan`: reads every target directory and the store; writes nothing.
    pub async fn plan(&self, req: &PlanRequest) -> Result<Plan, ServiceError> {
        tracing::debug!(people = req.desired.people.len(), "plan: start");
        let desired = &req.desired;
        let now = self.now();
        let policy = &desired.policy;
        let replace: HashSet<String> = req
            .replace_unmanaged
            .iter()
            .map(|a| crate::directory::parse_address(a).map(|m| m.key()))
            .collect::<Result<_, _>>()?;
        if !replace.is_empty() && policy.unmanaged != Unmanaged::Report {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "{}: replacing unmanaged certificates needs `unmanaged = \"report\"` in [policy]",
                    desired.file
                ),
            )
            .for_field("replace_unmanaged"));
        }
        // Every target directory is opened at once, on the blocking pool (a plugin's open may
        // build an HTTPS client or bind), while the store is opened and read; they are read one
        // after another below.
        let names = self.deploy_directories(desired)?;
        let opening: Vec<Opening> = names
            .iter()
            .map(|name| {
                let (svc, name) = (self.clone(), name.clone());
                AbortOnDropHandle::new(tokio::spawn(async move { svc.open_directory(&name).await }))
            })
            .collect();
        // The directories are read on tasks of their own, one after another, while the rest
        // of the plan is prepared and each directory read is planned: a directory with many
        // of the file's people is listed as soon as it is open, and the next one read without
        // waiting for the store (the addresses and the verifier follow when it is read); what
        // a read found is recorded in the inventory meanwhile. The certificates plan knows by thumbprint follow when computed (only a
        // read from the inventory needs them).
        let people_in: Vec<Vec<usize>> = names
            .iter()
            .map(|name| {
                (desired.people.iter().enumerate())
                    .filter(|(_, p)| p.directories.contains(name))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let many = people_in.iter().map(|p| p.len() > LIST_THRESHOLD);
        let (prep_tx, prep_rx) = tokio::sync::oneshot::channel();
        let (known_tx, known_rx) = tokio::sync::oneshot::channel();
        let (reads_tx, mut reads_rx) = tokio::sync::mpsc::channel(names.len().max(1));
        let reader = AbortOnDropHandle::new(tokio::spawn(read_directories(
            Reader {
                svc: self.clone(),
                prep: Later::Waiting(prep_rx),
                known: Later::Waiting(known_rx),
                force: replace.clone(),
                max_age: req.inventory_max_age,
                facts: Arc::new(FactsCache::default()),
            },
            opening.into_iter().zip(many).collect(),
            reads_tx,
        )));
        let store = self.store().await?;
        let (managed, known_checks) = tokio::join!(store.managed(None), store.signature_checks());
        let managed = managed.map_err(store_error)?;
        tracing::debug!(rows = managed.len(), "plan: managed certificates read");
        let mut managed_by: HashMap<(String, String), Vec<ManagedCert>> = HashMap::new();
        for m in managed {
            managed_by
                .entry((m.directory.clone(), m.address.clone()))
                .or_default()
                .push(m);
        }
        // The signature checks earlier plans made (a cache: a store that cannot give them
        // only costs the checks).
        let known_checks = match known_checks {
            Ok(k) => k.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "plan: earlier signature checks not read");
                HashSet::new()
            }
        };
        let verifier = Arc::new(Remembering::with_known(
            self.engine().verifier,
            known_checks,
        ));
        let targets: Vec<ReadTarget> = names
            .into_iter()
            .zip(people_in)
            .map(|(name, people)| ReadTarget::new(desired, &managed_by, name, people))
            .collect();
        let _ = prep_tx.send(Arc::new(FromStore {
            addresses: targets.iter().map(|t| t.addresses.clone()).collect(),
            verifier: verifier.clone(),
        }));
        let trust = desired
            .trust
            .as_ref()
            .map(|t| t.certificates.clone())
            .unwrap_or_default();
        // Every certificate the plan may name, by thumbprint (those the changes name travel
        // with the plan, encoded at the end).
        let mut certificates: HashMap<String, CertDer> = HashMap::new();
        for c in &trust {
            certificates
                .entry(thumbprint(c))
                .or_insert_with(|| c.clone());
        }

        // Certificates a CA is to issue or renew; what each person should hold.
        let mut issue = Vec::new();
        let mut wanted: HashMap<String, Vec<CertDer>> = HashMap::new();
        let mut successors: HashMap<String, Vec<CertDer>> = HashMap::new();
        let mut newest_wanted: HashMap<String, Option<i64>> = HashMap::new();
        let mut issued_by = self.issued_all(desired, now).await?;
        tracing::debug!(
            people = issued_by.len(),
            "plan: CA-issued certificates read"
        );
        for p in &desired.people {
            let mut certs: Vec<CertDer> = p.certificates.clone();
            if let Some(ca) = &p.issue {
                let issued = issued_by.remove(&p.address.key()).unwrap_or_default();
                let renew_at = now + i64::from(policy.renew_before_days) * DAY;
                match issued.last() {
                    None => issue.push(IssueStep {
                        address: p.address.to_string(),
                        ca: ca.display().to_string(),
                        action: "issue".into(),
                        replaces: None,
                        directories: p.directories.clone(),
                    }),
                    Some(newest) if newest.info.not_after <= renew_at => issue.push(IssueStep {
                        address: p.address.to_string(),
                        ca: ca.display().to_string(),
                        action: "renew".into(),
                        replaces: Some(CertRef::from_info(&newest.info)),
                        directories: p.directories.clone(),
                    }),
                    Some(_) => {}
                }
                // The newest valid one is wanted; older valid ones are superseded by it.
                if let Some(newest) = issued.last() {
                    certs.push(newest.cert.clone());
                }
                successors.insert(
                    p.address.key(),
                    issued.iter().map(|i| i.cert.clone()).collect(),
                );
            }
            // Each wanted certificate is parsed once per plan, not once per directory: its
            // not-before decides what it supersedes everywhere.
            let mut newest: Option<i64> = None;
            let mut kept = Vec::with_capacity(certs.len());
            for c in certs {
                // Only the validity matters here (a full parse of 10,000 certificates took
                // a tenth of a --refresh plan's time before the first directory was read).
                let validity = certinfo::validity(&c).ok();
                if policy.remove_expired && validity.is_none_or(|(_, not_after)| not_after < now) {
                    continue;
                }
                if let Some((not_before, _)) = validity {
                    newest = newest.max(Some(not_before));
                }
                kept.push(c);
            }
            let certs = kept;
            newest_wanted.insert(p.address.key(), newest);
            wanted.insert(p.address.key(), certs);
        }
        // What each person is to hold, by thumbprint (on every core): carried, and the
        // holding readiness and a saved plan name (see [`held_key`]).
        let wanted_thumbs: Vec<(String, Vec<String>)> = on_every_core(&desired.people, |p| {
            let key = p.address.key();
            let thumbs = (wanted.get(&key).into_iter().flatten())
                .map(thumbprint)
                .collect();
            (key, thumbs)
        });
        let mut wanted_held: HashMap<String, String> = HashMap::new();
        for (key, thumbs) in wanted_thumbs {
            for (c, t) in wanted.get(&key).into_iter().flatten().zip(&thumbs) {
                certificates.entry(t.clone()).or_insert_with(|| c.clone());
            }
            wanted_held.insert(key, held_key(thumbs));
        }
        // `certs`' sorted thumbprints ([`held_key`]), computed once when they are what the
        // person `key` is to hold.
        let held_of = |key: &str, certs: &[CertDer]| -> String {
            match wanted_held.get(key) {
                Some(held) if wanted.get(key).is_some_and(|w| w.as_slice() == certs) => {
                    held.clone()
                }
                _ => held_key(certs.iter().map(thumbprint).collect()),
            }
        };

        // Every certificate whose bytes plan knows, by thumbprint: what the inventory's
        // thumbprints can stand for (the chain's and what each person is to hold, carried
        // above, and what smimekit published).
        let mut known: HashMap<String, CertDer> = certificates.clone();
        for rows in managed_by.values() {
            for m in rows {
                known.insert(m.thumbprint.clone(), m.certificate.clone());
            }
        }
        // The reader may go on to the inventory now (nobody waits when none is read).
        let _ = known_tx.send(Arc::new(known));
        // Readiness (lint and chain checks, CPU work for thousands of people) runs on the
        // blocking pool while the directories are read. What each person is to hold is judged
        // against the organisation's chain before any directory answers: it is what a
        // converged directory leaves them with, and any other holding is judged once read. A
        // person in several directories holding the same certificates is judged once, and the
        // CA certificates above them all are verified once.
        // An answer an earlier plan gave and remembered (see [`ready_digest`]) is taken as given.
        let mut asked: HashSet<ReadyKey> = HashSet::new();
        let mut ready_cache: HashMap<ReadyKey, Readiness> = HashMap::new();
        let mut early = Vec::new();
        if !trust.is_empty() {
            let anchors = prepared(&trust);
            let anchors_key = trust_key(&trust);
            let chain = digest_chain(&trust, now);
            // Each question's key and digest (hashing every certificate held) on every core.
            let questions = on_every_core(&desired.people, |p| {
                let key = p.address.key();
                let certs = wanted.get(&key).map(Vec::as_slice).unwrap_or_default();
                let digest = (chain.as_deref())
                    .and_then(|chain| ready_digest(&p.address, certs, chain, now));
                let held = held_of(&key, certs);
                (ReadyKey::new(key, held, &anchors_key), certs, digest)
            });
            let mut jobs: Vec<ReadyJob> = Vec::new();
            for (p, (key, certs, digest)) in desired.people.iter().zip(questions) {
                if !asked.insert(key.clone()) {
                    continue;
                }
                let question = (&p.address, certs, &anchors);
                jobs.extend(ready_job(
                    &verifier,
                    &mut ready_cache,
                    key,
                    digest,
                    question,
                ));
            }
            tracing::debug!(
                people = asked.len(),
                remembered = ready_cache.len(),
                "plan: readiness started"
            );
            early = spawn_readiness(verifier.clone(), jobs, now);
        }
        let renewing: HashSet<&str> = issue.iter().map(|s| s.address.as_str()).collect();
        for answers in early {
            ready_cache.extend(joined(answers).await?);
        }
        tracing::debug!("plan: readiness of what each person is to hold known");
        let mut directories = Vec::new();
        let mut summary = PlanSummary {
            issue: issue.iter().filter(|s| s.action == "issue").count(),
            renew: issue.iter().filter(|s| s.action == "renew").count(),
            ..PlanSummary::default()
        };
        for ReadTarget {
            name,
            people,
            departed,
            addresses: _,
        } in targets
        {
            // What was read is recorded in the inventory while the plan is assembled; a plan
            // that failed still leaves it there.
            let read = match reads_rx.recv().await {
                Some(read) => read,
                None => Err(ServiceError::new(
                    ErrorKind::Internal,
                    format!("plan: directory {name}: the reader ended early"),
                )),
            };
            let (entries, held) = match read {
                Ok(read) => read,
                Err(e) => {
                    recorded(finished(reader).await).await;
                    return Err(e);
                }
            };
            let people: Vec<&Person> = people.iter().map(|i| &desired.people[*i]).collect();
            // What was read, as the saved plan compares it: the people's below, with their
            // plans; those who left the file's here.
            let mut read: BTreeMap<String, String> = BTreeMap::new();
            for a in &departed {
                read.insert(
                    a.key(),
                    read_key(entries.get(&a.key()).and_then(Option::as_ref)),
                );
            }
            // The trust chain.
            let (mut trust_plan, mut trust_note) = (None, None);
            match (&held, desired.trust.is_some()) {
                (Some(held), true) => {
                    read.insert(TRUST_READ.into(), trust_key(held));
                    let add: Vec<CertRef> = trust
                        .iter()
                        .filter(|c| !held.contains(c))
                        .map(CertRef::of)
                        .collect();
                    let remove: Vec<CertRef> = held
                        .iter()
                        .filter(|c| !trust.contains(c))
                        .map(CertRef::of)
                        .collect();
                    if !add.is_empty() || !remove.is_empty() {
                        summary.trust_updates += 1;
                        trust_plan = Some(TrustPlan {
                            add,
                            remove,
                            chain: trust.iter().map(thumbprint).collect(),
                        });
                    }
                }
                (None, true) => {
                    trust_note = Some("not kept here (this directory keeps no trust chain)".into())
                }
                _ => {}
            }
            // The chain Outlook/OWA checks against: the organisation's, else what the
            // directory holds.
            let chain = if trust.is_empty() {
                held.clone().unwrap_or_default()
            } else {
                trust.clone()
            };
            let anchors_key = trust_key(&chain);
            // Parsed once for the directory (the organisation's chain, parsed again for the
            // few people whose holding was not judged before the reads).
            let anchors = prepared(&chain);
            // Each person's plan is a pure function of what was read: thousands of them are
            // computed on every core (scoped threads borrowing the plan's tables).
            let plan_one = |p: &&Person| {
                let key = p.address.key();
                let output = person_plan(PersonInput {
                    address: &p.address,
                    kind: p.kind,
                    current: entries.get(&key).and_then(Option::as_ref),
                    wanted: wanted.get(&key).map(Vec::as_slice).unwrap_or_default(),
                    issued: successors.get(&key).map(Vec::as_slice).unwrap_or_default(),
                    managed: managed_by
                        .get(&(name.clone(), key.clone()))
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    policy,
                    replace: replace.contains(&key),
                    now,
                    departed: false,
                    newest_wanted: newest_wanted.get(&key).copied().flatten(),
                    renewing: renewing.contains(p.address.as_str()),
                });
                let current = entries.get(&key).and_then(Option::as_ref);
                let found = read_key_of(current.map(|r| (r.kind, held_of(&key, &r.certificates))));
                let after = held_of(&key, &output.after);
                (output, ReadyKey::new(key, after, &anchors_key), found)
            };
            let outputs: Vec<(PersonOutput, ReadyKey, String)> = on_every_core(&people, plan_one);
            // Whoever will hold something not judged yet is judged now, on every core (unless
            // an earlier plan remembered the answer).
            let chain_digested = digest_chain(&chain, now);
            let mut jobs: Vec<ReadyJob> = Vec::new();
            for (p, (output, key, _)) in people.iter().zip(&outputs) {
                if ready_cache.contains_key(key) || !asked.insert(key.clone()) {
                    continue;
                }
                let digest = (chain_digested.as_deref())
                    .and_then(|chain| ready_digest(&p.address, &output.after, chain, now));
                let question = (&p.address, output.after.as_slice(), &anchors);
                jobs.extend(ready_job(
                    &verifier,
                    &mut ready_cache,
                    key.clone(),
                    digest,
                    question,
                ));
            }
            for answers in spawn_readiness(verifier.clone(), jobs, now) {
                ready_cache.extend(joined(answers).await?);
            }
            let mut plans = Vec::new();
            let mut unchanged = 0;
            for (p, (output, key, held)) in people.iter().zip(outputs) {
                read.insert(p.address.key(), held);
                let ready = match ready_cache.get(&key) {
                    Some(r) => r.clone(),
                    // Every key was asked above; answered here should it not have been.
                    None => readiness(
                        verifier.as_ref(),
                        &p.address,
                        &output.after,
                        anchors.as_deref(),
                        now,
                    ),
                };
                let plan = PersonPlan {
                    ready,
                    ..output.plan
                };
                let current = entries.get(&p.address.key()).and_then(Option::as_ref);
                carry_removed(&mut certificates, current, &plan);
                summary.count(&plan);
                if plan.has_changes()
                    || !plan.ready.encryptable
                    || !plan.unmanaged.is_empty() && policy.unmanaged == Unmanaged::Report
                {
                    plans.push(plan);
                } else {
                    unchanged += 1;
                }
            }
            for a in &departed {
                let key = a.key();
                let current = entries.get(&key).and_then(Option::as_ref);
                let mine = managed_by.get(&(name.clone(), key.clone()));
                let plan = person_plan(PersonInput {
                    address: a,
                    kind: current.map(|r| r.kind).unwrap_or(RecipientKind::Mailbox),
                    current,
                    wanted: &[],
                    issued: &[],
                    managed: mine.map(Vec::as_slice).unwrap_or_default(),
                    policy,
                    replace: false,
                    now,
                    departed: true,
                    newest_wanted: None,
                    renewing: false,
                })
                .plan;
                carry_removed(&mut certificates, current, &plan);
                summary.count(&plan);
                if plan.has_changes() {
                    plans.push(plan);
                }
            }
            summary.unchanged += unchanged;
            directories.push(DirectoryPlan {
                name,
                trust: trust_plan,
                trust_note,
                people: plans,
                unchanged,
                read,
            });
            // Its last reference, often (the inventory's record may still hold it): thousands
            // of entries are freed on the blocking pool.
            drop(tokio::task::spawn_blocking(move || drop(entries)));
        }
        // Only the certificates the changes name travel with the plan.
        let named: HashSet<String> = directories
            .iter()
            .flat_map(|d| {
                d.people
                    .iter()
                    .flat_map(|p| p.changes.iter())
                    .map(|c| match c {
                        ChangeAction::Add { certificate } => certificate.thumbprint.clone(),
                        ChangeAction::Remove { certificate, .. } => certificate.thumbprint.clone(),
                    })
                    .chain(d.trust.iter().flat_map(|t| t.chain.iter().cloned()))
            })
            .collect();
        let carried: BTreeMap<String, String> = (named.into_iter())
            .filter_map(|t| {
                let der = certificates.get(&t)?;
                Some((
                    t,
                    base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
                ))
            })
            .collect();
        tracing::debug!("plan: every directory planned");
        // Tens of thousands of rows are freed on the blocking pool, while the inventory is
        // recorded and the plan shown.
        drop(tokio::task::spawn_blocking(move || {
            drop((
                certificates,
                managed_by,
                wanted,
                successors,
                newest_wanted,
                ready_cache,
                asked,
            ));
        }));
        recorded(finished(reader).await).await;
        tracing::debug!("plan: inventory recorded");
        let learned = verifier.learned();
        if !learned.is_empty()
            && let Err(e) = store
                .signature_checks_record(&learned, now, now - CHECKS_KEPT_DAYS * DAY)
                .await
        {
            tracing::warn!(error = %e, "plan: the signature checks made were not recorded");
        }
        Ok(Plan {
            format: PLAN_FORMAT,
            file: desired.file.clone(),
            created: rfc3339(now),
            at: now,
            directories,
            issue,
            summary,
            replace_unmanaged: req.replace_unmanaged.clone(),
            certificates: carried,
        })
    }

    /// The entries of `addresses` in `dir`: from the inventory where it is fresh (every
    /// certificate seen within `max_age` and known by its bytes), else read from the directory,
    /// or taken from its listing when `listed` already holds it (and recorded in the inventory
    /// by a task pushed to `recording`).
    #[allow(clippy::too_many_arguments)]
    async fn read_for_plan(
        &self,
        dir: &Arc<dyn Directory>,
        addresses: &[Mailbox],
        listed: Option<Vec<Recipient>>,
        known: &mut Later<HashMap<String, CertDer>>,
        force: &HashSet<String>,
        max_age: Option<i64>,
        facts: (&Arc<FactsCache>, &Arc<Remembering>),
        recording: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<Arc<Entries>, ServiceError> {
        let name = dir.name().to_string();
        let mut out: HashMap<String, Option<Recipient>> = HashMap::new();
        let mut to_read: Vec<Mailbox> = addresses.to_vec();
        if let Some(max_age) = max_age {
            let known = known.get().await?;
            let store = self.store().await?;
            let rows = store
                .inventory(&smimekit_core::store::InventoryQuery {
                    directory: Some(name.clone()),
                    ..Default::default()
                })
                .await
                .map_err(store_error)?;
            let mut by_address: HashMap<String, Vec<smimekit_core::store::InventoryCert>> =
                HashMap::new();
            for r in rows.into_iter().filter(|r| r.present) {
                let key = Mailbox::parse(&r.address)
                    .map(|m| m.key())
                    .unwrap_or_else(|_| r.address.clone());
                by_address.entry(key).or_default().push(r);
            }
            let oldest = self.now() - max_age;
            to_read.clear();
            for a in addresses {
                let fresh = by_address
                    .get(&a.key())
                    .filter(|_| !force.contains(&a.key()))
                    .and_then(|rows| {
                        let kind = rows.first()?.recipient_kind?;
                        let mut certificates = Vec::new();
                        for r in rows {
                            if r.last_seen < oldest || r.recipient_kind != Some(kind) {
                                return None;
                            }
                            certificates.push(known.get(&r.facts.sha1)?.clone());
                        }
                        Some(Recipient {
                            address: a.clone(),
                            kind,
                            certificates,
                        })
                    });
                match fresh {
                    Some(r) => {
                        out.insert(a.key(), Some(r));
                    }
                    None => to_read.push(a.clone()),
                }
            }
        }
        if to_read.is_empty() {
            return Ok(Arc::new(out));
        }
        let read = match listed {
            Some(all) => listing_entries(all, &to_read),
            None => read_entries(dir, &to_read)
                .await
                .map_err(|e| ServiceError::from(e).context(format!("plan: directory {name}")))?,
        };
        // The record shares what was read (thousands of entries, not copied).
        let read = Arc::new(read);
        recording.push(self.spawn_record(name, read.clone(), facts.0.clone(), facts.1.clone()));
        if out.is_empty() {
            return Ok(read);
        }
        out.extend(read.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Arc::new(out))
    }

    /// Records what a plan read in the inventory, on the blocking pool (the next directory is
    /// read and the plan assembled meanwhile: the certificates' facts and the store's writes
    /// run there, so a runtime thread busy assembling the plan does not hold them back). What
    /// the inventory holds already is only marked seen ([`Store::inventory_touch`], one
    /// transaction, no certificate parsed); the rest is recorded in full (a second one).
    /// `verifier`: the plan's, which readiness shares (each public key decoded once). The
    /// inventory is a cache: a store that refuses it is logged, never the plan's failure.
    fn spawn_record(
        &self,
        directory: String,
        read: Arc<Entries>,
        facts: Arc<FactsCache>,
        verifier: Arc<Remembering>,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let now = service.now();
            let present: Vec<&Recipient> = read.values().flatten().collect();
            // What the inventory holds already is only seen again (no facts needed): a
            // listing of a converged directory is mostly that.
            let seen: Vec<Seen<'_>> = present
                .iter()
                .map(|r| Seen {
                    address: &r.address,
                    kind: r.kind,
                    sha256: r
                        .certificates
                        .iter()
                        .map(|c| hex::encode(Sha256::digest(c.as_bytes())))
                        .collect(),
                })
                .collect();
            // A blocking-pool thread may wait on the runtime's futures.
            let recorded = runtime.block_on(async {
                let store = service.store().await?;
                let touched = store
                    .inventory_touch(&directory, &seen, now)
                    .await
                    .map_err(store_error)?;
                let changed: Vec<&Recipient> = present
                    .iter()
                    .zip(&touched)
                    .filter(|(_, t)| !**t)
                    .map(|(r, _)| *r)
                    .collect();
                if changed.is_empty() {
                    return Ok(());
                }
                // Parsing thousands of certificates is CPU work (on this blocking thread).
                let f: Vec<Vec<CertFacts>> = changed
                    .iter()
                    .map(|r| {
                        r.certificates
                            .iter()
                            .filter_map(|c| facts.facts(verifier.as_ref(), c))
                            .collect()
                    })
                    .collect();
                let sightings: Vec<Sighting<'_>> = changed
                    .iter()
                    .zip(&f)
                    .map(|(r, f)| Sighting {
                        directory: &directory,
                        address: &r.address,
                        kind: Some(r.kind),
                        certificates: f,
                        time: now,
                        published: false,
                        complete: true,
                    })
                    .collect();
                store
                    .inventory_record(&sightings)
                    .await
                    .map_err(store_error)
            });
            if let Err(e) = recorded {
                tracing::warn!(error = %e, directory, "plan: the inventory was not updated");
            }
        })
    }

    /// Starts what a plan of the deploy file `text` (its files read through `source`) will
    /// read, for a command about to load the file and plan: every directory it names is
    /// opened and, with `list` (a plan that reads every directory afresh: `--refresh`, and
    /// apply's), each one with more than [`LIST_THRESHOLD`] of the file's people is listed,
    /// one after another as the plan lists them ([`Service::open_ahead`]). The plan takes
    /// those listings instead of listing again; loading the file's certificates (thousands
    /// of files) overlaps them. Nothing is checked here: the file's problems are
    /// [`load`](super::load)'s to report, a directory that fails to open the plan's.
    pub fn plan_ahead(&self, text: &str, source: &dyn DeploySource, list: bool) -> OpeningAhead {
        let people = spec::people_per_directory(text, source);
        let names: Vec<String> = people.iter().map(|(n, _)| n.clone()).collect();
        let many: Vec<String> = (people.iter())
            .filter(|(_, n)| list && *n > LIST_THRESHOLD)
            .map(|(name, _)| name.clone())
            .collect();
        self.open_ahead(&names, &many)
    }

    /// The directories a deploy file targets, in the configuration's order; an unknown one is
    /// an error (the parser checks too, against the same configuration).
    pub(crate) fn deploy_directories(
        &self,
        desired: &Desired,
    ) -> Result<Vec<String>, ServiceError> {
        let used: HashSet<&String> = desired
            .people
            .iter()
            .flat_map(|p| p.directories.iter())
            .chain(desired.directories.iter())
            .collect();
        let configured = self.directory_names();
        for u in &used {
            if !configured.contains(u) {
                return Err(ServiceError::new(
                    ErrorKind::Invalid,
                    format!(
                        "{}: no directory named {u:?} in the configuration",
                        desired.file
                    ),
                ));
            }
        }
        Ok(configured
            .into_iter()
            .filter(|c| used.contains(c))
            .collect())
    }

    /// The valid certificates each CA folder issued for its people (`issue = `), oldest first,
    /// by address key. The CA's records are read once per plan; the certificate files are read
    /// and parsed on the blocking pool, one chunk per core. The first problem in the order of
    /// the people is the error.
    async fn issued_all(
        &self,
        desired: &Desired,
        now: i64,
    ) -> Result<HashMap<String, Vec<Issued>>, ServiceError> {
        let mut ca_records: HashMap<
            std::path::PathBuf,
            Arc<HashMap<String, Vec<crate::IssuedRecord>>>,
        > = HashMap::new();
        let mut jobs = Vec::new();
        // A CA whose records cannot be read is the error, unless a person before it fails.
        let mut unread = None;
        for p in &desired.people {
            let Some(ca) = &p.issue else { continue };
            if !ca_records.contains_key(ca) {
                let records = match self.ca_issued(ca).await {
                    Ok(r) => r,
                    Err(e) => {
                        unread = Some(e);
                        break;
                    }
                };
                let mut by_address: HashMap<String, Vec<crate::IssuedRecord>> = HashMap::new();
                for r in records {
                    by_address
                        .entry(r.email.to_ascii_lowercase())
                        .or_default()
                        .push(r);
                }
                ca_records.insert(ca.clone(), Arc::new(by_address));
            }
            if let Some(records) = ca_records.get(ca) {
                jobs.push((p.address.clone(), ca.clone(), records.clone()));
            }
        }
        let mut out = HashMap::new();
        if !jobs.is_empty() {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            let size = jobs.len().div_ceil(cores).max(READY_CHUNK);
            let mut chunks = Vec::new();
            let mut jobs = jobs.into_iter();
            loop {
                let chunk: Vec<_> = jobs.by_ref().take(size).collect();
                if chunk.is_empty() {
                    break;
                }
                chunks.push(tokio::task::spawn_blocking(move || {
                    let mut done = Vec::new();
                    for (address, ca, records) in chunk {
                        // A chunk stops at its first problem: only the first one is told.
                        let issued = issued_for(&ca, &records, &address, now);
                        let failed = issued.is_err();
                        done.push((address.key(), issued));
                        if failed {
                            break;
                        }
                    }
                    done
                }));
            }
            for chunk in chunks {
                let done = chunk.await.map_err(|e| {
                    ServiceError::new(ErrorKind::Internal, format!("plan: issued task: {e}"))
                })?;
                for (key, issued) in done {
                    out.insert(key, issued?);
                }
            }
        }
        match unread {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Whether Outlook/OWA can encrypt to `address` holding `certs` (see [`readiness`]).
    pub(crate) fn readiness(
        &self,
        verifier: &dyn SignatureVerifier,
        address: &Mailbox,
        certs: &[CertDer],
        anchors: Option<&PreparedStore>,
        now: i64,
    ) -> Readiness {
        readiness(verifier, address, certs, anchors, now)
    }
}

/// Whether Outlook/OWA can encrypt to `address` holding `certs`: one certificate usable for
/// encryption, with no lint error for OWA against the trust chain. `verifier`: the engine's, or
/// a [`Remembering`] one shared by the people of a plan.
fn readiness(
    verifier: &dyn SignatureVerifier,
    address: &Mailbox,
    certs: &[CertDer],
    anchors: Option<&PreparedStore>,
    now: i64,
) -> Readiness {
    if certs.is_empty() {
        return Readiness {
            encryptable: false,
            reasons: vec!["no certificate".into()],
        };
    }
    let opts = LintOptions {
        profile: Profile::Owa,
        at: now,
        expiring_days: 0,
        address: Some(address.to_string()),
        trust_store: None,
    };
    let report = lint::lint_with_store(verifier, certs, &opts, anchors);
    let mut reasons = Vec::new();
    for c in &report.certificates {
        let errors: Vec<String> = c
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.detail.clone())
            .collect();
        if errors.is_empty() {
            return Readiness {
                encryptable: true,
                reasons: Vec::new(),
            };
        }
        reasons.push(format!("{}: {}", c.sha1_thumbprint, errors.join(", ")));
    }
    Readiness {
        encryptable: false,
        reasons,
    }
}

/// The valid certificates a CA folder issued for `address`, oldest first (by not-before).
/// `records`: the CA's issued records by lowercase address (read once per plan).
fn issued_for(
    ca: &std::path::Path,
    records: &HashMap<String, Vec<crate::IssuedRecord>>,
    address: &Mailbox,
    now: i64,
) -> Result<Vec<Issued>, ServiceError> {
    let mut out = Vec::new();
    for r in records
        .get(&address.as_str().to_ascii_lowercase())
        .into_iter()
        .flatten()
    {
        if !r.email.eq_ignore_ascii_case(address.as_str())
            || r.revoked_at.is_some()
            || r.not_after < now
        {
            continue;
        }
        let file = ca.join("issued").join(format!("{}.pem", r.serial));
        let bytes = std::fs::read(&file).map_err(|e| ServiceError::io(&file, e))?;
        let certs = smimekit_pki::container::load_certificates(&bytes, &file.display().to_string())
            .map_err(|e| ServiceError::new(ErrorKind::Malformed, e.to_string()))?;
        for cert in certs {
            if let Ok(info) = certinfo::parse(&cert) {
                out.push(Issued { cert, info });
            }
        }
    }
    out.sort_by_key(|i| i.info.not_before);
    Ok(out)
}

/// A directory a plan reads, and whom it reads there (`people`: those of the file targeting
/// it, by index in `Desired::people`).
struct ReadTarget {
    name: String,
    /// The deploy file's people targeting the directory, by index in `Desired::people`.
    people: Vec<usize>,
    /// People smimekit published to here who are no longer in the file.
    departed: Vec<Mailbox>,
    /// The people's addresses, then the departed.
    addresses: Vec<Mailbox>,
}

impl ReadTarget {
    fn new(
        desired: &Desired,
        managed_by: &HashMap<(String, String), Vec<ManagedCert>>,
        name: String,
        people: Vec<usize>,
    ) -> Self {
        let in_file: HashSet<String> = people
            .iter()
            .map(|i| desired.people[*i].address.key())
            .collect();
        let mut departed: Vec<Mailbox> = managed_by
            .keys()
            .filter(|(d, a)| d == &name && !in_file.contains(a))
            .filter_map(|(_, a)| Mailbox::parse(a).ok())
            .collect();
        departed.sort_by_key(Mailbox::key);
        let mut addresses: Vec<Mailbox> = people
            .iter()
            .map(|i| desired.people[*i].address.clone())
            .collect();
        addresses.extend(departed.iter().cloned());
        Self {
            name,
            people,
            departed,
            addresses,
        }
    }
}

/// A directory being opened for a plan.
type Opening = AbortOnDropHandle<Result<Arc<dyn Directory>, ServiceError>>;

/// Each address's entry in a directory (`None`: it has none), by [`Mailbox::key`].
type Entries = HashMap<String, Option<Recipient>>;

/// What one directory held for a plan: each address's entry, and the trust chain when the
/// directory keeps one.
type DirectoryRead = (Arc<Entries>, Option<Vec<CertDer>>);

/// What a plan's reader is sent once it is computed (each directory's addresses, the
/// certificates known by thumbprint): awaited only where a read needs it.
enum Later<T> {
    Waiting(tokio::sync::oneshot::Receiver<Arc<T>>),
    Ready(Arc<T>),
}

impl<T> Later<T> {
    async fn get(&mut self) -> Result<Arc<T>, ServiceError> {
        let ended = || ServiceError::new(ErrorKind::Internal, "plan: ended before reading");
        if let Self::Waiting(rx) = self {
            *self = Self::Ready(rx.await.map_err(|_| ended())?);
        }
        match self {
            Self::Ready(v) => Ok(v.clone()),
            Self::Waiting(_) => Err(ended()),
        }
    }
}

/// What the reader is sent once the store is read.
struct FromStore {
    /// Each directory's addresses ([`ReadTarget::addresses`]), in the reader's order.
    addresses: Vec<Vec<Mailbox>>,
    /// The plan's verifier, which readiness shares (each public key decoded once).
    verifier: Arc<Remembering>,
}

/// What a plan's reader works with besides the directories.
struct Reader {
    svc: Service,
    prep: Later<FromStore>,
    /// The certificates the plan knows by thumbprint (what the inventory's thumbprints can
    /// stand for).
    known: Later<HashMap<String, CertDer>>,
    /// Addresses read from the directory even where the inventory is fresh.
    force: HashSet<String>,
    max_age: Option<i64>,
    facts: Arc<FactsCache>,
}

/// What a plan's lister read of one directory: the directory, its listing when it was listed
/// early, and its trust chain when it keeps one.
struct Listed {
    dir: Arc<dyn Directory>,
    listed: Option<Vec<Recipient>>,
    held: Option<Vec<CertDer>>,
}

/// Reads the directories of a plan: a lister ([`list_directories`]) opens and reads them one
/// after another, in the configuration's order, without waiting for the store (a directory
/// with `many` of the file's people is listed as soon as it is open, when the inventory is
/// not asked); here each directory's entries are taken from its listing, the inventory or
/// lookups ([`Service::read_for_plan`], once the store is read) while the lister reads the
/// next, and sent in the same order. Stops at the first failure (sent too). Returns the
/// inventory records of what was read ([`Service::spawn_record`]).
async fn read_directories(
    mut r: Reader,
    directories: Vec<(Opening, bool)>,
    reads: tokio::sync::mpsc::Sender<Result<DirectoryRead, ServiceError>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (listed_tx, mut listed_rx) = tokio::sync::mpsc::channel(directories.len().max(1));
    let _lister = AbortOnDropHandle::new(tokio::spawn(list_directories(
        r.svc.clone(),
        directories,
        r.max_age.is_none(),
        listed_tx,
    )));
    let mut recording = Vec::new();
    let mut i = 0;
    while let Some(listed) = listed_rx.recv().await {
        let read = async {
            let Listed { dir, listed, held } = listed?;
            let prep = r.prep.get().await?;
            let addresses = prep.addresses.get(i).map(Vec::as_slice).unwrap_or_default();
            let entries = r
                .svc
                .read_for_plan(
                    &dir,
                    addresses,
                    listed,
                    &mut r.known,
                    &r.force,
                    r.max_age,
                    (&r.facts, &prep.verifier),
                    &mut recording,
                )
                .await?;
            tracing::debug!(directory = dir.name(), "plan: entries read");
            Ok((entries, held))
        }
        .await;
        i += 1;
        let failed = read.is_err();
        if reads.send(read).await.is_err() || failed {
            break;
        }
    }
    recording
}

/// Opens and reads the directories of a plan one after another: each one's listing when it
/// has `many` of the file's people and `list` (no inventory asked; the listing started ahead
/// when there is one, see [`Service::plan_ahead`]), and its trust chain. Stops at the first
/// failure (sent too).
async fn list_directories(
    svc: Service,
    directories: Vec<(Opening, bool)>,
    list: bool,
    out: tokio::sync::mpsc::Sender<Result<Listed, ServiceError>>,
) {
    for (opening, many) in directories {
        let got = async {
            let dir = opening.await.map_err(|e| {
                ServiceError::new(ErrorKind::Internal, format!("opening a directory: {e}"))
            })??;
            let name = dir.name().to_string();
            let in_name = |e: DirectoryError| {
                ServiceError::from(e).context(format!("plan: directory {name}"))
            };
            tracing::debug!(directory = name, "plan: directory open");
            let listed = if many && list {
                let ahead = match svc.take_listing_ahead(&name) {
                    Some(listing) => listing.await.ok(),
                    None => None,
                };
                let listing = match ahead {
                    Some(listing) => listing,
                    None => dir.recipients().await,
                };
                match listing {
                    Ok(all) => Some(all),
                    // A directory that cannot list (a vendor plugin without it) is asked
                    // per person.
                    Err(DirectoryError::Unsupported(_)) => None,
                    Err(e) => return Err(in_name(e)),
                }
            } else {
                None
            };
            let held = read_trust(dir.as_ref()).await.map_err(in_name)?;
            tracing::debug!(directory = name, "plan: trust chain read");
            Ok(Listed { dir, listed, held })
        }
        .await;
        let failed = got.is_err();
        if out.send(got).await.is_err() || failed {
            break;
        }
    }
}

/// The inventory records of a plan's reader, once it has ended.
async fn finished(
    reader: AbortOnDropHandle<Vec<tokio::task::JoinHandle<()>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    reader.await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "plan: the reader failed");
        Vec::new()
    })
}

/// A readiness question as it is remembered: who, holding which certificates (thumbprints,
/// sorted), against which chain (thumbprints, sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReadyKey {
    address: String,
    held: String,
    anchors: String,
}

impl ReadyKey {
    /// The question about the address of key `address` holding certificates of this
    /// [`held_key`], against the chain of this [`trust_key`].
    fn new(address: String, held: String, anchors_key: &str) -> Self {
        Self {
            address,
            held,
            anchors: anchors_key.to_string(),
        }
    }
}

/// One readiness question to answer off the async threads.
struct ReadyJob {
    key: ReadyKey,
    address: Mailbox,
    certs: Vec<CertDer>,
    anchors: Anchors,
    /// Names an encryptable answer for later plans ([`ready_digest`]).
    digest: Option<String>,
}

/// The chain readiness is judged against, parsed once and shared by everyone judged
/// against it; `None`: no chain.
pub(crate) type Anchors = Option<Arc<PreparedStore>>;

pub(crate) fn prepared(chain: &[CertDer]) -> Anchors {
    (!chain.is_empty()).then(|| Arc::new(PreparedStore::new(chain.to_vec())))
}

/// Fewer questions than this are not split between threads.
const READY_CHUNK: usize = 64;

type ReadyAnswers = tokio::task::JoinHandle<Vec<(ReadyKey, Readiness)>>;

/// Answers readiness questions on the blocking pool, in one chunk per core: lint and chain
/// checks are CPU work, thousands of them in a plan.
fn spawn_readiness(verifier: Arc<Remembering>, jobs: Vec<ReadyJob>, now: i64) -> Vec<ReadyAnswers> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let size = jobs.len().div_ceil(cores).max(READY_CHUNK);
    let mut jobs = jobs.into_iter();
    let mut handles = Vec::new();
    loop {
        let chunk: Vec<ReadyJob> = jobs.by_ref().take(size).collect();
        if chunk.is_empty() {
            return handles;
        }
        let verifier = verifier.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|j| {
                    let r = readiness(
                        verifier.as_ref(),
                        &j.address,
                        &j.certs,
                        j.anchors.as_deref(),
                        now,
                    );
                    if let Some(d) = j.digest.filter(|_| r.encryptable) {
                        verifier.learn(d);
                    }
                    (j.key, r)
                })
                .collect()
        }));
    }
}

/// `f` of every item, in order, computed in chunks on scoped threads, one per core (on the
/// calling thread alone below [`READY_CHUNK`] items).
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let size = items.len().div_ceil(cores).max(READY_CHUNK);
    if items.len() <= size {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let chunks: Vec<_> = items
            .chunks(size)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        chunks
            .into_iter()
            .flat_map(|c| match c.join() {
                Ok(v) => v,
                // A panic in a chunk is the caller's, as it would be without threads.
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    })
}

/// Waits for the inventory records of a plan's listings ([`Service::spawn_record`]).
async fn recorded(recording: Vec<tokio::task::JoinHandle<()>>) {
    for r in recording {
        // A record task that panicked only lost a cache update.
        if let Err(e) = r.await {
            tracing::warn!(error = %e, "plan: the inventory was not updated");
        }
    }
}

/// The answers of a [`spawn_readiness`] chunk.
async fn joined(answers: ReadyAnswers) -> Result<Vec<(ReadyKey, Readiness)>, ServiceError> {
    answers
        .await
        .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("plan: readiness task: {e}")))
}

impl PlanSummary {
    fn count(&mut self, p: &PersonPlan) {
        for c in &p.changes {
            match c {
                ChangeAction::Add { .. } => self.add += 1,
                ChangeAction::Remove { .. } => self.remove += 1,
            }
        }
        if p.create_contact && p.has_changes() {
            self.contacts += 1;
        }
        self.unmanaged_kept += p.unmanaged.len();
        if !p.departed && !p.ready.encryptable {
            self.not_ready += 1;
        }
    }
}

/// A saved plan carries the certificates it removes too (they come from the directory, not
/// the deploy file): apply needs their bytes to remove them.
fn carry_removed(
    certificates: &mut HashMap<String, CertDer>,
    current: Option<&Recipient>,
    plan: &PersonPlan,
) {
    let Some(current) = current else { return };
    for change in &plan.changes {
        if let ChangeAction::Remove { certificate, .. } = change
            && let Some(c) = current
                .certificates
                .iter()
                .find(|c| thumbprint(c) == certificate.thumbprint)
        {
            certificates
                .entry(certificate.thumbprint.clone())
                .or_insert_with(|| c.clone());
        }
    }
}

struct PersonInput<'a> {
    address: &'a Mailbox,
    kind: RecipientKind,
    current: Option<&'a Recipient>,
    /// The certificates the file (or the CA) wants published.
    wanted: &'a [CertDer],
    /// Every valid certificate the person's CA issued (a newer one supersedes the older).
    issued: &'a [CertDer],
    managed: &'a [ManagedCert],
    policy: &'a super::spec::Policy,
    replace: bool,
    now: i64,
    departed: bool,
    /// A renewal is planned: the current certificate stays until its successor is out.
    renewing: bool,
    /// The newest wanted certificate's not-before: what an older managed one is superseded
    /// at (computed once per person).
    newest_wanted: Option<i64>,
}

struct PersonOutput {
    plan: PersonPlan,
    /// What the entry will hold after apply (for readiness).
    after: Vec<CertDer>,
}

/// The changes for one person in one directory.
fn person_plan(i: PersonInput<'_>) -> PersonOutput {
    let current: &[CertDer] = i
        .current
        .map(|r| r.certificates.as_slice())
        .unwrap_or_default();
    let managed: HashMap<String, &ManagedCert> = i
        .managed
        .iter()
        .map(|m| (m.thumbprint.clone(), m))
        .collect();
    let mut changes = Vec::new();
    let mut kept_superseded = Vec::new();
    let mut unmanaged = Vec::new();
    let mut after: Vec<CertDer> = Vec::new();
    for c in i.wanted {
        if !current.contains(c) {
            changes.push(ChangeAction::Add {
                certificate: CertRef::of(c),
            });
        }
        after.push(c.clone());
    }
    let newest_wanted = i.newest_wanted;
    for c in current {
        if i.wanted.contains(c) {
            continue;
        }
        let info = certinfo::parse(c).ok();
        let t = thumbprint(c);
        let expired = info.as_ref().is_some_and(|x| x.not_after < i.now);
        let Some(m) = managed.get(&t) else {
            if i.replace {
                changes.push(ChangeAction::Remove {
                    certificate: CertRef::of(c),
                    reason: RemoveReason::Unmanaged,
                });
            } else {
                unmanaged.push(CertRef::of(c));
                after.push(c.clone());
            }
            continue;
        };
        if expired {
            if i.policy.remove_expired {
                changes.push(ChangeAction::Remove {
                    certificate: CertRef::of(c),
                    reason: RemoveReason::Expired,
                });
            } else {
                after.push(c.clone());
            }
            continue;
        }
        // A managed value the file no longer names: superseded when a newer certificate
        // for the person is wanted (kept for the grace period from its successor's
        // publication), else simply gone from the file.
        let successor =
            newest_wanted.filter(|nb| info.as_ref().is_some_and(|x| *nb > x.not_before));
        let issued_by_ca = i.issued.contains(c);
        if i.renewing && issued_by_ca {
            // Its successor is issued by this apply: keep it beside for the grace period.
            kept_superseded.push(CertRef::of(c));
            after.push(c.clone());
            continue;
        }
        if successor.is_some() || issued_by_ca {
            let grace = i64::from(i.policy.remove_superseded_after_days) * DAY;
            // The successor's publication time, when smimekit published it; else its
            // not-before.
            let since = i
                .wanted
                .iter()
                .filter_map(|w| managed.get(&thumbprint(w)).map(|m| m.published))
                .max()
                .or(successor)
                .unwrap_or(m.published);
            if i.now < since + grace {
                kept_superseded.push(CertRef::of(c));
                after.push(c.clone());
            } else {
                changes.push(ChangeAction::Remove {
                    certificate: CertRef::of(c),
                    reason: RemoveReason::Superseded,
                });
            }
            continue;
        }
        changes.push(ChangeAction::Remove {
            certificate: CertRef::of(c),
            reason: RemoveReason::NotInFile,
        });
    }
    let create_contact = i.current.is_none() && i.kind == RecipientKind::Contact;
    PersonOutput {
        plan: PersonPlan {
            address: i.address.to_string(),
            kind: i.current.map(|r| r.kind).unwrap_or(i.kind),
            create_contact,
            departed: i.departed,
            changes,
            kept_superseded,
            unmanaged,
            ready: Readiness {
                encryptable: false,
                reasons: Vec::new(),
            },
        },
        after,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A verifier that counts its calls and accepts a signature equal to the message.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl SignatureVerifier for Counting {
        fn verify(
            &self,
            _spki: &[u8],
            _scheme: SignatureScheme,
            message: &[u8],
            signature: &[u8],
        ) -> Result<bool, EngineError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(message == signature)
        }

        fn public_key_info(&self, spki: &[u8]) -> Result<PublicKeyInfo, EngineError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match spki {
                b"bad key" => Err(EngineError::Unsupported("test".into())),
                _ => Ok(PublicKeyInfo {
                    algorithm: "ec".into(),
                    bits: spki.len() as u32,
                    curve: None,
                }),
            }
        }
    }

    /// Each public key is inspected once; one the engine refuses is asked again.
    #[test]
    fn remembering_inspects_each_key_once() {
        let inner: &'static Counting = Box::leak(Box::default());
        let v = Remembering::new(inner);
        for _ in 0..3 {
            assert_eq!(v.public_key_info(b"key a").unwrap().bits, 5);
            assert_eq!(v.public_key_info(b"key bb").unwrap().bits, 6);
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
        assert!(v.public_key_info(b"bad key").is_err());
        assert!(v.public_key_info(b"bad key").is_err());
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
    }

    /// The same key, message and signature are verified once; any other is verified, and
    /// every answer is the engine's.
    #[test]
    fn remembering_verifies_each_signature_once() {
        let inner: &'static Counting = Box::leak(Box::default());
        let v = Remembering::new(inner);
        let scheme = SignatureScheme::Ecdsa(smimekit_core::DigestAlg::Sha256);
        for _ in 0..3 {
            assert!(v.verify(b"ca key", scheme, b"tbs", b"tbs").unwrap());
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        assert!(!v.verify(b"ca key", scheme, b"tbs", b"other").unwrap());
        assert!(!v.verify(b"ca key", scheme, b"tbs", b"other").unwrap());
        // The parts are length-prefixed: moving a byte from one to the next is another input.
        assert!(v.verify(b"ca ke", scheme, b"ytbs", b"ytbs").unwrap());
        assert_eq!(inner.0.load(Ordering::SeqCst), 3);
    }

    /// Checks that succeeded in an earlier plan are not made again; the ones made here that
    /// succeeded are learned once each, and a failed one is never learned.
    #[test]
    fn remembering_starts_from_known_checks_and_learns_new_ones() {
        let inner: &'static Counting = Box::leak(Box::default());
        let scheme = SignatureScheme::Ecdsa(smimekit_core::DigestAlg::Sha256);
        let first = Remembering::new(inner);
        assert!(first.verify(b"ca key", scheme, b"tbs", b"tbs").unwrap());
        assert!(first.verify(b"ca key", scheme, b"tbs", b"tbs").unwrap());
        assert!(!first.verify(b"ca key", scheme, b"tbs", b"bad").unwrap());
        let learned = first.learned();
        assert_eq!(learned.len(), 1, "{learned:?}");
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);

        let next = Remembering::with_known(inner, learned.iter().cloned().collect());
        assert!(next.verify(b"ca key", scheme, b"tbs", b"tbs").unwrap());
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            2,
            "a known check is not made again"
        );
        // Another scheme over the same bytes is another check.
        let pss = SignatureScheme::RsaPss(smimekit_core::DigestAlg::Sha256);
        assert!(next.verify(b"ca key", pss, b"tbs", b"tbs").unwrap());
        assert!(!next.verify(b"ca key", scheme, b"tbs", b"bad").unwrap());
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
        assert_eq!(next.learned().len(), 1);
        assert!(!learned.contains(&next.learned()[0]));
    }

    fn fixture(name: &str) -> Vec<CertDer> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pki")
            .join(name);
        smimekit_pki::load_certificates(&std::fs::read(path).unwrap(), name).unwrap()
    }

    /// Readiness answered on the blocking pool, in chunks, is what lint says for each question
    /// one by one: each answer under its own question, ready or not, none lost.
    #[tokio::test(flavor = "current_thread")]
    async fn readiness_in_chunks_answers_each_question_as_one_by_one() {
        let service = Service::builder()
            .clock(smimekit_testkit::pinned_clock())
            .build()
            .unwrap();
        let now = smimekit_testkit::PINNED_NOW;
        let anchors = prepared(&[fixture("root.pem"), fixture("intermediate.pem")].concat());
        let names = ["alice", "bob", "carol"];
        let certs = names.map(|n| fixture(&format!("{n}.pem")));
        // Everyone's certificate under everyone's address (only their own is ready), and
        // under one chain or none, above one chunk's worth.
        let mut jobs = Vec::new();
        for i in 0..(READY_CHUNK * 3 + 7) {
            let address = Mailbox::parse(&format!("{}@example.org", names[i % 3])).unwrap();
            let held = certs[(i / 3) % 3].clone();
            let anchors = if i % 5 == 0 { None } else { anchors.clone() };
            let key = ReadyKey {
                address: format!("{i}"),
                held: String::new(),
                anchors: String::new(),
            };
            let digest = anchors.is_some().then(|| format!("digest {i}"));
            jobs.push(ReadyJob {
                key,
                address,
                certs: held,
                anchors,
                digest,
            });
        }
        let verifier = Arc::new(Remembering::new(service.engine().verifier));
        let want: HashMap<ReadyKey, Readiness> = jobs
            .iter()
            .map(|j| {
                let r = service.readiness(
                    service.engine().verifier,
                    &j.address,
                    &j.certs,
                    j.anchors.as_deref(),
                    now,
                );
                (j.key.clone(), r)
            })
            .collect();
        // The encryptable answers with a digest are learned, and only they.
        let mut want_learned: Vec<String> = jobs
            .iter()
            .filter(|j| want[&j.key].encryptable)
            .filter_map(|j| j.digest.clone())
            .collect();
        let handles = spawn_readiness(verifier.clone(), jobs, now);
        if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) > 1 {
            assert!(handles.len() > 1, "{} chunks", handles.len());
        }
        let mut got = HashMap::new();
        for h in handles {
            got.extend(joined(h).await.unwrap());
        }
        assert_eq!(got, want);
        let ready = got.values().filter(|r| r.encryptable).count();
        assert!(
            ready > 0 && ready < got.len(),
            "{ready} of {} ready",
            got.len()
        );
        // (Beside the signature checks it made.)
        let mut learned = verifier.learned();
        learned.retain(|d| d.starts_with("digest "));
        learned.sort();
        want_learned.sort();
        assert!(!want_learned.is_empty());
        assert_eq!(learned, want_learned);
    }

    /// A readiness digest names exactly its question (who, holding what, against which
    /// chain, in any order) and exists only while every certificate in it is valid.
    #[test]
    fn a_readiness_digest_names_its_question_and_only_while_all_is_valid() {
        let now = smimekit_testkit::PINNED_NOW;
        let chain = [fixture("root.pem"), fixture("intermediate.pem")].concat();
        let reversed: Vec<CertDer> = chain.iter().rev().cloned().collect();
        let (alice, bob) = (fixture("alice.pem"), fixture("bob.pem"));
        let at = |a: &str| Mailbox::parse(a).unwrap();
        let digest = |address: &str, certs: &[CertDer], chain: &[CertDer], now: i64| {
            let chain = digest_chain(chain, now)?;
            ready_digest(&at(address), certs, &chain, now)
        };
        let base = digest("alice@example.org", &alice, &chain, now).expect("all valid now");
        // The same question, asked in another order or spelling of the address.
        assert_eq!(
            digest("Alice@example.org", &alice, &reversed, now).as_ref(),
            Some(&base)
        );
        let both = [alice.clone(), bob.clone()].concat();
        let both_rev = [bob.clone(), alice.clone()].concat();
        assert_eq!(
            digest("alice@example.org", &both, &chain, now),
            digest("alice@example.org", &both_rev, &chain, now)
        );
        // Another question each time.
        for other in [
            digest("bob@example.org", &alice, &chain, now),
            digest("alice@example.org", &bob, &chain, now),
            digest("alice@example.org", &both, &chain, now),
            digest("alice@example.org", &alice, &chain[..1], now),
        ] {
            assert_ne!(other.as_ref(), Some(&base));
        }
        // Nothing is named for no certificate, or when a certificate held or in the chain is
        // not valid at the time.
        assert_eq!(digest("alice@example.org", &[], &chain, now), None);
        let (_, alice_ends) = certinfo::validity(&alice[0]).unwrap();
        assert_eq!(
            digest("alice@example.org", &alice, &chain, alice_ends),
            None
        );
        let (alice_starts, _) = certinfo::validity(&alice[0]).unwrap();
        assert_eq!(
            digest("alice@example.org", &alice, &chain, alice_starts - 1),
            None
        );
        let (_, chain_ends) = certinfo::validity(&chain[1]).unwrap();
        if chain_ends < alice_ends {
            assert_eq!(
                digest("alice@example.org", &alice, &chain, chain_ends),
                None
            );
        }
        assert!(digest_chain(&chain, now).is_some());
    }
}
