//! Certification path building: from a leaf, through a pool of candidate certificates, to
//! trust anchors — every candidate path, with every problem on it named.
//!
//! [`ChainBuilder::new`] parses and indexes the pool and the anchors once (by subject name
//! DER, and by subject key identifier); [`ChainBuilder::build`] then runs a depth-first
//! search from a leaf:
//!
//! * issuer candidates are the certificates whose subject Name is byte-equal to the child's
//!   issuer Name (falling back to a case-insensitive comparison of the rendered names, for
//!   CAs that re-encode their name), those whose subjectKeyIdentifier equals the child's
//!   authorityKeyIdentifier tried first, and a candidate whose SKI contradicts the AKI tried
//!   last;
//! * a path ends at a trust anchor (same DER, or same subject and key as an anchor), at a
//!   self-signed certificate that is not an anchor ([`PathProblem::UntrustedRoot`]), where no
//!   issuer is known ([`PathProblem::UnknownIssuer`]), at a certificate already on the path
//!   ([`PathProblem::Loop`]) or at [`MAX_DEPTH`] ([`PathProblem::TooLong`]);
//! * every link's signature is verified through the [`SignatureVerifier`] port (pki stays
//!   free of crypto libraries) and the result is cached per (child, issuer) pair of the pool,
//!   so 10,000 leaves under the same intermediates verify each intermediate once;
//! * every certificate is checked for validity at the given time, every issuer for
//!   basicConstraints cA, pathLenConstraint and keyUsage keyCertSign.
//!
//! A path without problems is *valid*; the report lists valid paths first. Problems are
//! outcomes, not errors: only a leaf that cannot be parsed is an `Err`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use smimekit_core::{CertDer, DigestAlg, SignatureScheme, SignatureVerifier};

use crate::asn1::{self, Tlv};
use crate::certinfo::{self, CertInfo};
use crate::error::PkiError;

/// Longest path searched, leaf and anchor included.
pub const MAX_DEPTH: usize = 10;
/// At most this many paths are reported (cross-certified meshes can explode).
pub const MAX_PATHS: usize = 32;

/// A certificate as the path builder sees it: facts plus the raw pieces it matches and
/// verifies.
#[derive(Debug, Clone)]
pub struct ChainCert {
    pub der: CertDer,
    pub info: CertInfo,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    tbs: Vec<u8>,
    spki: Vec<u8>,
    signature: Vec<u8>,
    /// The certificate's signature scheme, or why it is not supported.
    scheme: Result<SignatureScheme, String>,
    authority_key_id: Option<Vec<u8>>,
    /// basicConstraints present at all.
    has_basic_constraints: bool,
    path_len: Option<u64>,
}

impl ChainCert {
    /// Parses a certificate for path building.
    pub fn parse(der: &CertDer) -> Result<Self, PkiError> {
        Self::with_info(der, certinfo::parse(der)?)
    }

    /// [`Self::parse`] for a certificate whose facts were parsed already (`info` must be
    /// `certinfo::parse(der)`).
    pub fn with_info(der: &CertDer, info: CertInfo) -> Result<Self, PkiError> {
        let bad = |what: &str, e: asn1::Asn1Error| PkiError::Certificate(format!("{what}: {e}"));
        let outer = asn1::parse_single(der.as_bytes()).map_err(|e| bad("certificate", e))?;
        let mut top = outer.children();
        let tbs = top
            .read_tag(asn1::TAG_SEQUENCE, "tbsCertificate")
            .map_err(|e| bad("certificate", e))?;
        let sig_alg = top
            .read_tag(asn1::TAG_SEQUENCE, "signatureAlgorithm")
            .map_err(|e| bad("certificate", e))?;
        let sig = top
            .read_tag(asn1::TAG_BIT_STRING, "signatureValue")
            .map_err(|e| bad("certificate", e))?;
        let signature = sig.content.get(1..).unwrap_or_default().to_vec();

        let mut f = tbs.children();
        let e = |x| bad("tbsCertificate", x);
        f.optional(0xA0).map_err(e)?;
        f.read_tag(asn1::TAG_INTEGER, "serialNumber").map_err(e)?;
        f.read_tag(asn1::TAG_SEQUENCE, "signature").map_err(e)?;
        let issuer = f.read_tag(asn1::TAG_SEQUENCE, "issuer").map_err(e)?;
        f.read_tag(asn1::TAG_SEQUENCE, "validity").map_err(e)?;
        let subject = f.read_tag(asn1::TAG_SEQUENCE, "subject").map_err(e)?;
        let spki = f
            .read_tag(asn1::TAG_SEQUENCE, "subjectPublicKeyInfo")
            .map_err(e)?;
        let mut cert = ChainCert {
            der: der.clone(),
            subject_raw: subject.raw.to_vec(),
            issuer_raw: issuer.raw.to_vec(),
            tbs: tbs.raw.to_vec(),
            spki: spki.raw.to_vec(),
            signature,
            scheme: signature_scheme(&sig_alg, &info.signature_algorithm),
            authority_key_id: None,
            has_basic_constraints: false,
            path_len: None,
            info,
        };
        while let Some(t) = f.next().map_err(e)? {
            if t.tag == 0xA3 {
                read_extensions(&t, &mut cert).map_err(|x| bad("extensions", x))?;
            }
        }
        Ok(cert)
    }

    fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// The subject DN as shown to people.
    pub fn subject(&self) -> &str {
        &self.info.subject
    }
}

const OID_AKI: &[u8] = const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER.as_bytes();
const OID_BC: &[u8] = const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS.as_bytes();

fn read_extensions(exts: &Tlv<'_>, cert: &mut ChainCert) -> Result<(), asn1::Asn1Error> {
    let mut outer = exts.children();
    let seq = outer.read_tag(asn1::TAG_SEQUENCE, "extensions")?;
    let mut list = seq.children();
    while let Some(ext) = list.next()? {
        let mut f = ext.children();
        let oid = f.read_tag(asn1::TAG_OID, "extnID")?;
        let mut value = f.read("extnValue")?;
        if value.tag == asn1::TAG_BOOLEAN {
            value = f.read("extnValue")?;
        }
        let value = value.expect(asn1::TAG_OCTET_STRING, "extnValue")?;
        match oid.content {
            OID_AKI if cert.authority_key_id.is_none() => {
                let aki = asn1::parse_single(value.content)?;
                let mut r = aki.children();
                if let Some(id) = r.optional(0x80)? {
                    cert.authority_key_id = Some(id.content.to_vec());
                }
            }
            OID_BC if !cert.has_basic_constraints => {
                cert.has_basic_constraints = true;
                let bc = asn1::parse_single(value.content)?;
                let mut r = bc.children();
                r.optional(asn1::TAG_BOOLEAN)?;
                if let Some(n) = r.optional(asn1::TAG_INTEGER)? {
                    // A pathLen beyond u64 is as good as unlimited.
                    cert.path_len = Some(n.small_uint().unwrap_or(u64::MAX));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Maps a certificate's signatureAlgorithm to a [`SignatureScheme`].
fn signature_scheme(alg: &Tlv<'_>, oid: &str) -> Result<SignatureScheme, String> {
    use DigestAlg::*;
    use SignatureScheme::*;
    Ok(match oid {
        "1.2.840.113549.1.1.4" => RsaPkcs1(Md5),
        "1.2.840.113549.1.1.5" => RsaPkcs1(Sha1),
        "1.2.840.113549.1.1.14" => RsaPkcs1(Sha224),
        "1.2.840.113549.1.1.11" => RsaPkcs1(Sha256),
        "1.2.840.113549.1.1.12" => RsaPkcs1(Sha384),
        "1.2.840.113549.1.1.13" => RsaPkcs1(Sha512),
        "1.2.840.10045.4.1" => Ecdsa(Sha1),
        "1.2.840.10045.4.3.1" => Ecdsa(Sha224),
        "1.2.840.10045.4.3.2" => Ecdsa(Sha256),
        "1.2.840.10045.4.3.3" => Ecdsa(Sha384),
        "1.2.840.10045.4.3.4" => Ecdsa(Sha512),
        "1.2.840.10040.4.3" => Dsa(Sha1),
        "2.16.840.1.101.3.4.3.1" => Dsa(Sha224),
        "2.16.840.1.101.3.4.3.2" => Dsa(Sha256),
        "1.2.840.113549.1.1.10" => {
            RsaPss(pss_hash(alg).ok_or("unsupported RSASSA-PSS parameters")?)
        }
        other => return Err(format!("signature algorithm {other} is not supported")),
    })
}

/// The hash of RSASSA-PSS-params (`[0] hashAlgorithm`, default SHA-1).
fn pss_hash(alg: &Tlv<'_>) -> Option<DigestAlg> {
    let mut r = alg.children();
    r.next().ok()??; // the OID
    let Ok(Some(params)) = r.next() else {
        return Some(DigestAlg::Sha1);
    };
    let mut pr = params.children();
    while let Ok(Some(p)) = pr.next() {
        if p.tag == 0xA0 {
            let h = p.children().next().ok()??;
            let oid = h.children().next().ok()??;
            return match oid.content {
                [0x2B, 0x0E, 0x03, 0x02, 0x1A] => Some(DigestAlg::Sha1),
                [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n] => match n {
                    1 => Some(DigestAlg::Sha256),
                    2 => Some(DigestAlg::Sha384),
                    3 => Some(DigestAlg::Sha512),
                    4 => Some(DigestAlg::Sha224),
                    _ => None,
                },
                _ => None,
            };
        }
    }
    Some(DigestAlg::Sha1)
}

/// One problem on a path. `cert` is the position in [`ChainPath::certificates`] (0 = leaf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PathProblem {
    /// No certificate in the pool or the anchors has the issuer name of `cert`.
    UnknownIssuer { cert: usize, issuer: String },
    /// `cert`'s signature does not verify with its issuer's key.
    BadSignature { cert: usize },
    /// `cert`'s signature could not be checked (unsupported algorithm, unreadable key).
    UncheckedSignature { cert: usize, reason: String },
    /// `cert` expired before the validation time.
    Expired { cert: usize, not_after: i64 },
    /// `cert` is not valid until after the validation time.
    NotYetValid { cert: usize, not_before: i64 },
    /// `cert` issued another certificate but is not a CA (basicConstraints cA false/absent).
    NotACa { cert: usize },
    /// More intermediate CAs below `cert` than its pathLenConstraint allows.
    PathLenExceeded {
        cert: usize,
        path_len: u64,
        below: u64,
    },
    /// `cert` issued another certificate but its keyUsage lacks keyCertSign.
    MissingKeyCertSign { cert: usize },
    /// `cert`'s issuer is already on the path.
    Loop { cert: usize },
    /// The path ends at a self-signed certificate that is not a trust anchor.
    UntrustedRoot { cert: usize },
    /// The path reached [`MAX_DEPTH`] certificates without reaching an anchor.
    TooLong { cert: usize },
}

impl PathProblem {
    /// The position of the certificate the problem is about.
    pub fn cert(&self) -> usize {
        match self {
            PathProblem::UnknownIssuer { cert, .. }
            | PathProblem::BadSignature { cert }
            | PathProblem::UncheckedSignature { cert, .. }
            | PathProblem::Expired { cert, .. }
            | PathProblem::NotYetValid { cert, .. }
            | PathProblem::NotACa { cert }
            | PathProblem::PathLenExceeded { cert, .. }
            | PathProblem::MissingKeyCertSign { cert }
            | PathProblem::Loop { cert }
            | PathProblem::UntrustedRoot { cert }
            | PathProblem::TooLong { cert } => *cert,
        }
    }

    /// The kebab-case name used in JSON (`unknown-issuer`, `bad-signature`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            PathProblem::UnknownIssuer { .. } => "unknown-issuer",
            PathProblem::BadSignature { .. } => "bad-signature",
            PathProblem::UncheckedSignature { .. } => "unchecked-signature",
            PathProblem::Expired { .. } => "expired",
            PathProblem::NotYetValid { .. } => "not-yet-valid",
            PathProblem::NotACa { .. } => "not-a-ca",
            PathProblem::PathLenExceeded { .. } => "path-len-exceeded",
            PathProblem::MissingKeyCertSign { .. } => "missing-key-cert-sign",
            PathProblem::Loop { .. } => "loop",
            PathProblem::UntrustedRoot { .. } => "untrusted-root",
            PathProblem::TooLong { .. } => "too-long",
        }
    }

    /// A sentence for people; `subjects` are the path's subjects.
    pub fn describe(&self, subjects: &[String]) -> String {
        let s = |i: usize| {
            subjects
                .get(i)
                .map(String::as_str)
                .unwrap_or("?")
                .to_string()
        };
        match self {
            PathProblem::UnknownIssuer { cert, issuer } => format!(
                "no certificate for the issuer of {:?} ({issuer:?}) in the pool or trust anchors",
                s(*cert)
            ),
            PathProblem::BadSignature { cert } => format!(
                "the signature on {:?} does not verify with its issuer's key",
                s(*cert)
            ),
            PathProblem::UncheckedSignature { cert, reason } => {
                format!(
                    "the signature on {:?} could not be checked: {reason}",
                    s(*cert)
                )
            }
            PathProblem::Expired { cert, not_after } => {
                format!(
                    "{:?} expired at {}",
                    s(*cert),
                    crate::lint::rfc3339(*not_after)
                )
            }
            PathProblem::NotYetValid { cert, not_before } => format!(
                "{:?} is not valid before {}",
                s(*cert),
                crate::lint::rfc3339(*not_before)
            ),
            PathProblem::NotACa { cert } => format!(
                "{:?} issued a certificate but is not a CA (basicConstraints cA is not TRUE)",
                s(*cert)
            ),
            PathProblem::PathLenExceeded {
                cert,
                path_len,
                below,
            } => format!(
                "{:?} allows {path_len} intermediate CA(s) below it (pathLenConstraint), the path has {below}",
                s(*cert)
            ),
            PathProblem::MissingKeyCertSign { cert } => format!(
                "{:?} issued a certificate but its keyUsage lacks keyCertSign",
                s(*cert)
            ),
            PathProblem::Loop { cert } => {
                format!("the issuer of {:?} is already on the path (loop)", s(*cert))
            }
            PathProblem::UntrustedRoot { cert } => {
                format!(
                    "the path ends at {:?}, a root that is not trusted",
                    s(*cert)
                )
            }
            PathProblem::TooLong { cert } => format!(
                "the path is longer than {MAX_DEPTH} certificates at {:?}",
                s(*cert)
            ),
        }
    }
}

/// One candidate path, leaf first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPath {
    pub certificates: Vec<CertDer>,
    pub subjects: Vec<String>,
    /// The last certificate is a trust anchor.
    pub anchored: bool,
    pub problems: Vec<PathProblem>,
}

impl ChainPath {
    pub fn is_valid(&self) -> bool {
        self.anchored && self.problems.is_empty()
    }
}

/// Every path found from a leaf, valid paths first, then by number of problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub paths: Vec<ChainPath>,
}

impl ChainReport {
    pub fn is_valid(&self) -> bool {
        self.paths.first().is_some_and(ChainPath::is_valid)
    }

    /// The first valid path, if any.
    pub fn valid_path(&self) -> Option<&ChainPath> {
        self.paths.first().filter(|p| p.is_valid())
    }
}

/// Parsed and indexed pool and anchors, with a signature cache; build from many leaves.
#[derive(Debug)]
pub struct ChainBuilder<'e> {
    verifier: &'e dyn SignatureVerifier,
    /// Pool and anchors, deduplicated by DER; anchors flagged.
    certs: Vec<ChainCert>,
    anchor: Vec<bool>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    /// Lowercased rendered subject → indices, for names re-encoded by their CA.
    by_subject_text: HashMap<String, Vec<usize>>,
    /// (anchor subject DER, SPKI DER) of every anchor.
    anchor_keys: HashSet<(Vec<u8>, Vec<u8>)>,
    sig_cache: Mutex<HashMap<(usize, usize), Result<bool, String>>>,
    /// Each certificate's index in `certs`, by its bytes.
    by_der: HashMap<CertDer, usize>,
    /// Certificates of the pool that could not be parsed: `(index in input, reason)`.
    pub skipped: Vec<(usize, String)>,
}

/// Where the child of a link lives.
#[derive(Clone, Copy)]
enum Node {
    Leaf,
    Pool(usize),
}

impl<'e> ChainBuilder<'e> {
    /// Parses and indexes `pool` and `anchors` (anchors may also be in the pool). A pool
    /// certificate that cannot be parsed is skipped and listed in [`Self::skipped`]; an
    /// unparseable anchor is an error.
    pub fn new(
        verifier: &'e dyn SignatureVerifier,
        pool: &[CertDer],
        anchors: &[CertDer],
    ) -> Result<Self, PkiError> {
        let mut b = Self::empty(verifier);
        for a in anchors {
            if b.find(a).is_none() {
                let c = ChainCert::parse(a)
                    .map_err(|e| PkiError::Certificate(format!("trust anchor: {e}")))?;
                b.add_anchor(c);
            }
            b.mark_anchor(a);
        }
        for (n, p) in pool.iter().enumerate() {
            if b.find(p).is_some() {
                continue;
            }
            match ChainCert::parse(p) {
                Ok(c) => b.add_pool(c),
                Err(e) => b.skipped.push((n, e.to_string())),
            }
        }
        Ok(b)
    }

    /// [`Self::new`] from certificates parsed already (a trust store parsed once and
    /// linted against many times): the same anchors and pool, nothing skipped.
    pub fn from_parsed(
        verifier: &'e dyn SignatureVerifier,
        pool: impl IntoIterator<Item = ChainCert>,
        anchors: impl IntoIterator<Item = ChainCert>,
    ) -> Self {
        let mut b = Self::empty(verifier);
        for a in anchors {
            let der = a.der.clone();
            if b.find(&der).is_none() {
                b.add_anchor(a);
            }
            b.mark_anchor(&der);
        }
        for p in pool {
            if b.find(&p.der).is_none() {
                b.add_pool(p);
            }
        }
        b
    }

    fn empty(verifier: &'e dyn SignatureVerifier) -> Self {
        ChainBuilder {
            verifier,
            certs: Vec::new(),
            anchor: Vec::new(),
            by_subject: HashMap::new(),
            by_subject_text: HashMap::new(),
            anchor_keys: HashSet::new(),
            sig_cache: Mutex::new(HashMap::new()),
            by_der: HashMap::new(),
            skipped: Vec::new(),
        }
    }

    fn add_anchor(&mut self, c: ChainCert) {
        self.anchor_keys
            .insert((c.subject_raw.clone(), c.spki.clone()));
        self.push(c, true);
    }

    /// A certificate given as an anchor that is indexed already (it was also in the pool).
    fn mark_anchor(&mut self, der: &CertDer) {
        if let Some(i) = self.index_of(der) {
            self.anchor[i] = true;
        }
    }

    fn add_pool(&mut self, c: ChainCert) {
        let anchored = self
            .anchor_keys
            .contains(&(c.subject_raw.clone(), c.spki.clone()));
        self.push(c, anchored);
    }

    fn index_of(&self, der: &CertDer) -> Option<usize> {
        self.by_der.get(der).copied()
    }

    /// The indexed certificate with these bytes (pool or anchor).
    pub fn find(&self, der: &CertDer) -> Option<&ChainCert> {
        self.index_of(der).map(|i| &self.certs[i])
    }

    fn push(&mut self, c: ChainCert, anchor: bool) -> usize {
        let i = self.certs.len();
        self.by_der.insert(c.der.clone(), i);
        self.by_subject
            .entry(c.subject_raw.clone())
            .or_default()
            .push(i);
        self.by_subject_text
            .entry(c.info.subject.to_lowercase())
            .or_default()
            .push(i);
        self.certs.push(c);
        self.anchor.push(anchor);
        i
    }

    /// Number of distinct certificates indexed (pool ∪ anchors).
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Builds every candidate path from `leaf`, checking at `at` (Unix seconds).
    pub fn build(&self, leaf: &CertDer, at: i64) -> Result<ChainReport, PkiError> {
        let leaf_cert = ChainCert::parse(leaf)?;
        self.build_parsed(&leaf_cert, at)
    }

    /// [`Self::build`] for many leaves, spread over the available cores (scoped threads
    /// sharing the index and the signature cache). Results are in `leaves` order.
    pub fn build_many(&self, leaves: &[CertDer], at: i64) -> Vec<Result<ChainReport, PkiError>> {
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(leaves.len().max(1));
        if threads <= 1 {
            return leaves.iter().map(|l| self.build(l, at)).collect();
        }
        let chunk = leaves.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = leaves
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || part.iter().map(|l| self.build(l, at)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![
                            Err(PkiError::Certificate(
                                "path building thread panicked".into()
                            ));
                            chunk
                        ]
                    })
                })
                .take(leaves.len())
                .collect()
        })
    }

    /// [`Self::build`] for an already parsed leaf.
    pub fn build_parsed(&self, leaf: &ChainCert, at: i64) -> Result<ChainReport, PkiError> {
        // If the leaf itself is in the pool (or an anchor), start from the pool entry so its
        // signature cache and anchor flag apply.
        let start = self
            .by_subject
            .get(&leaf.subject_raw)
            .and_then(|v| v.iter().copied().find(|i| self.certs[*i].der == leaf.der));
        let mut raw_paths: Vec<(Vec<usize>, End)> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        match start {
            Some(i) => {
                stack.push(i);
                self.dfs(&mut stack, &mut raw_paths);
            }
            None => {
                let cands = self.issuers_of(leaf);
                if cands.is_empty() {
                    raw_paths.push((Vec::new(), self.dead_end(leaf)));
                }
                for c in cands {
                    if raw_paths.len() >= MAX_PATHS {
                        break;
                    }
                    stack.push(c);
                    self.dfs(&mut stack, &mut raw_paths);
                    stack.pop();
                }
            }
        }
        let leaf_node = if start.is_some() { None } else { Some(leaf) };
        let mut paths: Vec<ChainPath> = raw_paths
            .into_iter()
            .map(|(idx, end)| self.check_path(leaf_node, &idx, end, at))
            .collect();
        paths.sort_by_key(|p| {
            (
                !p.is_valid(),
                !p.anchored,
                p.problems.len(),
                p.certificates.len(),
            )
        });
        Ok(ChainReport { paths })
    }

    fn dead_end(&self, c: &ChainCert) -> End {
        if c.is_self_issued() {
            End::UntrustedRoot
        } else {
            End::UnknownIssuer
        }
    }

    fn dfs(&self, stack: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, End)>) {
        if out.len() >= MAX_PATHS {
            return;
        }
        let Some(&top) = stack.last() else { return };
        if self.anchor[top] {
            out.push((stack.clone(), End::Anchor));
            return;
        }
        let c = &self.certs[top];
        if c.is_self_issued() {
            out.push((stack.clone(), End::UntrustedRoot));
            return;
        }
        // Depth counts the leaf when it is not in the pool; close enough for a loop guard.
        if stack.len() >= MAX_DEPTH {
            out.push((stack.clone(), End::TooLong));
            return;
        }
        let cands = self.issuers_of(c);
        if cands.is_empty() {
            out.push((stack.clone(), End::UnknownIssuer));
            return;
        }
        for i in cands {
            if stack.contains(&i) {
                out.push((stack.clone(), End::Loop));
                continue;
            }
            stack.push(i);
            self.dfs(stack, out);
            stack.pop();
            if out.len() >= MAX_PATHS {
                return;
            }
        }
    }

    /// Issuer candidates, AKI/SKI matches first, contradicting SKIs last.
    fn issuers_of(&self, c: &ChainCert) -> Vec<usize> {
        let mut cands: Vec<usize> = match self.by_subject.get(&c.issuer_raw) {
            Some(v) => v.clone(),
            None => self
                .by_subject_text
                .get(&c.info.issuer.to_lowercase())
                .cloned()
                .unwrap_or_default(),
        };
        // A self-issued certificate is its own issuer only when it is the path's end, which
        // dfs handles; never list it as its own candidate.
        cands.retain(|i| self.certs[*i].der != c.der);
        if let Some(aki) = &c.authority_key_id {
            cands.sort_by_key(|i| match &self.certs[*i].info.subject_key_id {
                Some(ski) if ski == aki => 0,
                None => 1,
                Some(_) => 2,
            });
        }
        cands
    }

    fn verify_link(
        &self,
        child: Node,
        child_cert: &ChainCert,
        issuer: usize,
    ) -> Result<bool, String> {
        let Node::Pool(ci) = child else {
            return self.verify_raw(child_cert, &self.certs[issuer]);
        };
        // A poisoned lock only loses the cache, never the answer.
        let cached = self
            .sig_cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&(ci, issuer)).cloned());
        if let Some(r) = cached {
            return r;
        }
        let r = self.verify_raw(child_cert, &self.certs[issuer]);
        if let Ok(mut cache) = self.sig_cache.lock() {
            cache.insert((ci, issuer), r.clone());
        }
        r
    }

    fn verify_raw(&self, child: &ChainCert, issuer: &ChainCert) -> Result<bool, String> {
        let scheme = child.scheme.clone()?;
        self.verifier
            .verify(&issuer.spki, scheme, &child.tbs, &child.signature)
            .map_err(|e| e.to_string())
    }

    fn check_path(&self, leaf: Option<&ChainCert>, idx: &[usize], end: End, at: i64) -> ChainPath {
        // The full list of (node, cert) on the path, leaf first.
        let mut nodes: Vec<(Node, &ChainCert)> = Vec::with_capacity(idx.len() + 1);
        if let Some(l) = leaf {
            nodes.push((Node::Leaf, l));
        }
        for &i in idx {
            nodes.push((Node::Pool(i), &self.certs[i]));
        }
        let mut problems = Vec::new();
        let last = nodes.len().saturating_sub(1);
        let mut non_self_issued_below: u64 = 0;
        for (pos, (node, cert)) in nodes.iter().enumerate() {
            let is_anchor = matches!(node, Node::Pool(i) if self.anchor[*i]);
            if at > cert.info.not_after {
                problems.push(PathProblem::Expired {
                    cert: pos,
                    not_after: cert.info.not_after,
                });
            } else if at < cert.info.not_before {
                problems.push(PathProblem::NotYetValid {
                    cert: pos,
                    not_before: cert.info.not_before,
                });
            }
            if pos > 0 {
                // An issuer. Anchors are trusted for their key; an anchor without any
                // basicConstraints (a v1 root) is accepted as a CA.
                let lenient = is_anchor && !cert.has_basic_constraints;
                if !cert.info.is_ca && !lenient {
                    problems.push(PathProblem::NotACa { cert: pos });
                }
                if cert
                    .info
                    .key_usage
                    .is_some_and(|ku| !ku.contains(crate::KeyUsageBits::KEY_CERT_SIGN))
                {
                    problems.push(PathProblem::MissingKeyCertSign { cert: pos });
                }
                // Intermediates strictly between this issuer and the leaf.
                match cert.path_len {
                    Some(pl) if cert.info.is_ca && non_self_issued_below > pl => {
                        problems.push(PathProblem::PathLenExceeded {
                            cert: pos,
                            path_len: pl,
                            below: non_self_issued_below,
                        });
                    }
                    _ => {}
                }
                if !cert.is_self_issued() {
                    non_self_issued_below += 1;
                }
                // The link from the child below to this issuer.
                let (child_node, child) = nodes[pos - 1];
                let issuer_index = match node {
                    Node::Pool(i) => *i,
                    Node::Leaf => continue,
                };
                match self.verify_link(child_node, child, issuer_index) {
                    Ok(true) => {}
                    Ok(false) => problems.push(PathProblem::BadSignature { cert: pos - 1 }),
                    Err(reason) => problems.push(PathProblem::UncheckedSignature {
                        cert: pos - 1,
                        reason,
                    }),
                }
            }
        }
        let mut anchored = false;
        match end {
            End::Anchor => anchored = true,
            End::UnknownIssuer => problems.push(PathProblem::UnknownIssuer {
                cert: last,
                issuer: nodes
                    .get(last)
                    .map(|(_, c)| c.info.issuer.clone())
                    .unwrap_or_default(),
            }),
            End::UntrustedRoot => problems.push(PathProblem::UntrustedRoot { cert: last }),
            End::Loop => problems.push(PathProblem::Loop { cert: last }),
            End::TooLong => problems.push(PathProblem::TooLong { cert: last }),
        }
        // Self-signature of a self-signed end that is not an anchor is not checked: the
        // path is untrusted anyway.
        problems.sort_by_key(PathProblem::cert);
        ChainPath {
            certificates: nodes.iter().map(|(_, c)| c.der.clone()).collect(),
            subjects: nodes.iter().map(|(_, c)| c.info.subject.clone()).collect(),
            anchored,
            problems,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Anchor,
    UnknownIssuer,
    UntrustedRoot,
    Loop,
    TooLong,
}

/// Builds paths for `leaf` from `pool` to `anchors` at `at`, in one call.
pub fn build_chain(
    verifier: &dyn SignatureVerifier,
    leaf: &CertDer,
    pool: &[CertDer],
    anchors: &[CertDer],
    at: i64,
) -> Result<ChainReport, PkiError> {
    ChainBuilder::new(verifier, pool, anchors)?.build(leaf, at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]
pub(crate) mod tests {
    //! Synthetic certificates signed by a fake verifier: signature = SHA-256(issuer SPKI ||
    //! TBS), so a wrong issuer or a tampered TBS fails exactly like a real signature.

    use super::*;
    use crate::asn1::{encode, seq};
    use sha2::{Digest, Sha256};
    use smimekit_core::{EngineError, PublicKeyInfo};

    #[derive(Debug)]
    pub(crate) struct FakeVerifier;

    impl SignatureVerifier for FakeVerifier {
        fn verify(
            &self,
            spki: &[u8],
            _scheme: SignatureScheme,
            message: &[u8],
            signature: &[u8],
        ) -> Result<bool, EngineError> {
            Ok(Sha256::new()
                .chain_update(spki)
                .chain_update(message)
                .finalize()
                .as_slice()
                == signature)
        }
        fn public_key_info(&self, spki: &[u8]) -> Result<PublicKeyInfo, EngineError> {
            // The fake SPKI's key bytes are "rsa-2048", "ec-P-256", …
            let s = String::from_utf8_lossy(spki);
            if let Some(p) = s.find("ec-") {
                let curve = s[p + 3..].trim_end_matches('\0').to_string();
                return Ok(PublicKeyInfo {
                    algorithm: "ec".into(),
                    bits: 256,
                    curve: Some(curve),
                });
            }
            let bits = s
                .find("rsa-")
                .and_then(|p| s[p + 4..].parse().ok())
                .unwrap_or(2048);
            Ok(PublicKeyInfo {
                algorithm: "rsa".into(),
                bits,
                curve: None,
            })
        }
    }

    /// What a test certificate looks like.
    #[derive(Clone, Debug)]
    pub(crate) struct Spec {
        pub subject: String,
        pub issuer: String,
        /// Key label of the subject ("rsa-2048", "ec-P-256").
        pub key: String,
        pub issuer_key: String,
        pub not_before: &'static str,
        pub not_after: &'static str,
        /// None = no basicConstraints; Some((ca, pathlen)).
        pub bc: Option<(bool, Option<u8>)>,
        /// (bits, critical)
        pub ku: Option<(u16, bool)>,
        pub eku: Option<Vec<&'static [u8]>>,
        pub san: Vec<String>,
        pub ski: Option<Vec<u8>>,
        pub aki: Option<Vec<u8>>,
        pub sig_oid: &'static [u8],
        pub serial: u8,
    }

    pub(crate) const SHA256_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
    pub(crate) const SHA1_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05];
    pub(crate) const EKU_EMAIL: &[u8] = &[0x2B, 6, 1, 5, 5, 7, 3, 4];
    pub(crate) const EKU_SERVER: &[u8] = &[0x2B, 6, 1, 5, 5, 7, 3, 1];

    impl Spec {
        pub(crate) fn leaf(cn: &str, issuer: &str) -> Self {
            Spec {
                subject: cn.into(),
                issuer: issuer.into(),
                key: format!("rsa-2048-{cn}"),
                issuer_key: format!("rsa-2048-{issuer}"),
                not_before: "250101000000Z",
                not_after: "270101000000Z",
                bc: Some((false, None)),
                ku: Some((0b101, true)),
                eku: Some(vec![EKU_EMAIL]),
                san: vec![format!("{}@example.org", cn.to_lowercase())],
                ski: Some(cn.as_bytes().to_vec()),
                aki: Some(issuer.as_bytes().to_vec()),
                sig_oid: SHA256_RSA,
                serial: 1,
            }
        }
        pub(crate) fn ca(cn: &str, issuer: &str, path_len: Option<u8>) -> Self {
            Spec {
                bc: Some((true, path_len)),
                ku: Some((KeyUsage::CERT_SIGN | KeyUsage::CRL_SIGN, true)),
                eku: None,
                san: vec![],
                key: format!("rsa-2048-{cn}"),
                ..Spec::leaf(cn, issuer)
            }
        }
    }

    pub(crate) struct KeyUsage;
    impl KeyUsage {
        pub const CERT_SIGN: u16 = 1 << 5;
        pub const CRL_SIGN: u16 = 1 << 6;
    }

    fn name(cn: &str) -> Vec<u8> {
        let atv = seq(&[
            &encode(0x06, &[0x55, 0x04, 0x03]),
            &encode(0x0C, cn.as_bytes()),
        ]);
        seq(&[&encode(0x31, &atv)])
    }

    fn spki(label: &str) -> Vec<u8> {
        let rsa: &[u8] = if label.starts_with("ec-") {
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]
        } else {
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
        };
        let mut bits = vec![0u8];
        bits.extend_from_slice(label.as_bytes());
        seq(&[
            &seq(&[&encode(0x06, rsa), &[0x05, 0x00]]),
            &encode(0x03, &bits),
        ])
    }

    fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let crit = if critical {
            encode(0x01, &[0xFF])
        } else {
            Vec::new()
        };
        seq(&[&encode(0x06, oid), &crit, &encode(0x04, value)])
    }

    pub(crate) fn make(s: &Spec) -> CertDer {
        let alg = seq(&[&encode(0x06, s.sig_oid), &[0x05, 0x00]]);
        let validity = seq(&[
            &encode(0x17, s.not_before.as_bytes()),
            &encode(0x17, s.not_after.as_bytes()),
        ]);
        let mut exts: Vec<Vec<u8>> = Vec::new();
        if let Some((ca, pl)) = s.bc {
            let mut c = Vec::new();
            if ca {
                c.extend(encode(0x01, &[0xFF]));
            }
            if let Some(n) = pl {
                c.extend(encode(0x02, &[n]));
            }
            exts.push(ext(&[0x55, 0x1D, 0x13], true, &seq(&[&c])));
        }
        if let Some((bits, crit)) = s.ku {
            // Named bits from the MSB; two bytes, no unused-bit trimming needed for tests.
            let mut b = [0u8; 2];
            for i in 0..9 {
                if bits & (1 << i) != 0 {
                    b[i / 8] |= 0x80 >> (i % 8);
                }
            }
            let v = if b[1] == 0 {
                encode(0x03, &[0, b[0]])
            } else {
                encode(0x03, &[7, b[0], b[1]])
            };
            exts.push(ext(&[0x55, 0x1D, 0x0F], crit, &v));
        }
        if let Some(ekus) = &s.eku {
            let parts: Vec<Vec<u8>> = ekus.iter().map(|o| encode(0x06, o)).collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            exts.push(ext(&[0x55, 0x1D, 0x25], false, &seq(&refs)));
        }
        if !s.san.is_empty() {
            let parts: Vec<Vec<u8>> = s.san.iter().map(|a| encode(0x81, a.as_bytes())).collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            exts.push(ext(&[0x55, 0x1D, 0x11], false, &seq(&refs)));
        }
        if let Some(ski) = &s.ski {
            exts.push(ext(&[0x55, 0x1D, 0x0E], false, &encode(0x04, ski)));
        }
        if let Some(aki) = &s.aki {
            exts.push(ext(&[0x55, 0x1D, 0x23], false, &seq(&[&encode(0x80, aki)])));
        }
        let ext_refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        let tbs = seq(&[
            &encode(0xA0, &encode(0x02, &[0x02])),
            &encode(0x02, &[s.serial]),
            &alg,
            &name(&s.issuer),
            &validity,
            &name(&s.subject),
            &spki(&s.key),
            &encode(0xA3, &seq(&ext_refs)),
        ]);
        let sig = Sha256::new()
            .chain_update(spki(&s.issuer_key))
            .chain_update(&tbs)
            .finalize();
        let mut bits = vec![0u8];
        bits.extend_from_slice(&sig);
        CertDer::new(seq(&[&tbs, &alg, &encode(0x03, &bits)]))
    }

    /// The pinned test time, 2026-06-01T00:00:00Z.
    pub(crate) const AT: i64 = smimekit_testkit::PINNED_NOW;

    fn pki() -> (CertDer, CertDer, CertDer) {
        let root = make(&Spec::ca("Root", "Root", None));
        let int = make(&Spec::ca("Int", "Root", Some(0)));
        let leaf = make(&Spec::leaf("Alice", "Int"));
        (root, int, leaf)
    }

    fn kinds(r: &ChainReport) -> Vec<&'static str> {
        r.paths[0].problems.iter().map(PathProblem::kind).collect()
    }

    #[test]
    fn valid_path_leaf_to_root() {
        let (root, int, leaf) = pki();
        let r = build_chain(
            &FakeVerifier,
            &leaf,
            &[int.clone(), root.clone()],
            &[root.clone()],
            AT,
        )
        .unwrap();
        assert!(r.is_valid(), "{r:?}");
        let p = r.valid_path().unwrap();
        assert_eq!(p.certificates, vec![leaf, int, root]);
        assert_eq!(p.subjects, vec!["CN=Alice", "CN=Int", "CN=Root"]);
    }

    #[test]
    fn each_failure_kind() {
        let (root, int, leaf) = pki();
        // Unknown issuer: no intermediate in the pool.
        let r = build_chain(&FakeVerifier, &leaf, &[], &[root.clone()], AT).unwrap();
        assert_eq!(kinds(&r), vec!["unknown-issuer"]);
        // Untrusted root: no anchors.
        let r = build_chain(&FakeVerifier, &leaf, &[int.clone(), root.clone()], &[], AT).unwrap();
        assert_eq!(kinds(&r), vec!["untrusted-root"]);
        // Bad signature: the leaf claims Int but was signed by another key.
        let forged = make(&Spec {
            issuer_key: "rsa-2048-Mallory".into(),
            ..Spec::leaf("Alice", "Int")
        });
        let r = build_chain(&FakeVerifier, &forged, &[int.clone()], &[root.clone()], AT).unwrap();
        assert_eq!(kinds(&r), vec!["bad-signature"]);
        assert_eq!(r.paths[0].problems[0].cert(), 0);
        // Expired leaf and not-yet-valid intermediate.
        let old = make(&Spec {
            not_after: "250601000000Z",
            ..Spec::leaf("Alice", "Int")
        });
        let future_int = make(&Spec {
            not_before: "300101000000Z",
            not_after: "400101000000Z",
            ..Spec::ca("Int", "Root", Some(0))
        });
        let r = build_chain(&FakeVerifier, &old, &[future_int], &[root.clone()], AT).unwrap();
        assert_eq!(kinds(&r), vec!["expired", "not-yet-valid"]);
        // Not a CA, missing keyCertSign.
        let not_ca = make(&Spec {
            bc: Some((false, None)),
            ku: Some((1, true)),
            ..Spec::ca("Int", "Root", None)
        });
        let r = build_chain(&FakeVerifier, &leaf, &[not_ca], &[root.clone()], AT).unwrap();
        assert_eq!(kinds(&r), vec!["not-a-ca", "missing-key-cert-sign"]);
        // pathLen 0 on the intermediate with another intermediate below it.
        let int2 = make(&Spec::ca("Int2", "Int", None));
        let leaf2 = make(&Spec::leaf("Bob", "Int2"));
        let r = build_chain(
            &FakeVerifier,
            &leaf2,
            &[int2, int.clone()],
            &[root.clone()],
            AT,
        )
        .unwrap();
        assert_eq!(kinds(&r), vec!["path-len-exceeded"]);
        assert_eq!(r.paths[0].problems[0].cert(), 2);
        // A loop: two CAs that certify each other, no anchor reachable.
        let a = make(&Spec::ca("A", "B", None));
        let b = make(&Spec::ca("B", "A", None));
        let leaf3 = make(&Spec::leaf("Carol", "A"));
        let r = build_chain(&FakeVerifier, &leaf3, &[a, b], &[root.clone()], AT).unwrap();
        assert!(
            r.paths
                .iter()
                .any(|p| p.problems.iter().any(|x| x.kind() == "loop")),
            "{r:?}"
        );
        assert!(!r.is_valid());
    }

    #[test]
    fn cross_signed_paths_are_all_listed_and_valid_first() {
        let (root, int, leaf) = pki();
        // The same intermediate name and key, also issued by an untrusted old root.
        let old_root = make(&Spec::ca("Old", "Old", None));
        let cross = make(&Spec {
            serial: 9,
            issuer: "Old".into(),
            issuer_key: "rsa-2048-Old".into(),
            aki: Some(b"Old".to_vec()),
            ..Spec::ca("Int", "Root", Some(0))
        });
        let r = build_chain(
            &FakeVerifier,
            &leaf,
            &[cross, old_root, int, root.clone()],
            &[root],
            AT,
        )
        .unwrap();
        assert_eq!(r.paths.len(), 2);
        assert!(r.paths[0].is_valid());
        assert_eq!(
            kinds(&ChainReport {
                paths: r.paths[1..].to_vec()
            }),
            vec!["untrusted-root"]
        );
    }

    #[test]
    fn signature_cache_and_many_leaves() {
        let (root, int, _) = pki();
        let b = ChainBuilder::new(&FakeVerifier, &[int], &[root]).unwrap();
        for i in 0..50u8 {
            let leaf = make(&Spec {
                serial: i,
                ..Spec::leaf("Alice", "Int")
            });
            assert!(b.build(&leaf, AT).unwrap().is_valid());
        }
        assert_eq!(b.sig_cache.lock().unwrap().len(), 1);
    }

    #[test]
    fn leaf_that_is_an_anchor_and_garbage() {
        let (root, _, _) = pki();
        let r = build_chain(&FakeVerifier, &root, &[], &[root.clone()], AT).unwrap();
        assert!(r.is_valid());
        assert_eq!(r.paths[0].certificates.len(), 1);
        assert!(build_chain(&FakeVerifier, &CertDer::new(vec![0x30, 0x00]), &[], &[], AT).is_err());
        // Garbage in the pool is skipped, not fatal.
        let b = ChainBuilder::new(&FakeVerifier, &[CertDer::new(vec![1, 2])], &[root]).unwrap();
        assert_eq!(b.skipped.len(), 1);
    }
}
