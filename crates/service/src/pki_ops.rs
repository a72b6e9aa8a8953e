//! Chains and certificate stores: `chain build`, `sst create|list|extract`.

use serde::Serialize;
use smimekit_core::CertDer;
use smimekit_pki::chain::{ChainBuilder, ChainPath, PathProblem};
use smimekit_pki::{certinfo, container, sst};

use crate::certs::rfc3339;
use crate::{ErrorKind, Named, Service, ServiceError};

/// `smimekit chain build`.
#[derive(Debug, Clone, Default)]
pub struct ChainBuildRequest {
    /// The leaf: the first certificate of this input; any others join the pool.
    pub leaf: Named<Vec<u8>>,
    /// Candidate intermediates (any container format).
    pub pool: Vec<Named<Vec<u8>>>,
    /// Trust anchors (any container format).
    pub trust: Vec<Named<Vec<u8>>>,
    /// Validation time (Unix seconds); the service clock when `None`.
    pub at: Option<i64>,
}

/// A certificate on a path.
#[derive(Debug, Clone, Serialize)]
pub struct PathCert {
    pub subject: String,
    pub issuer: String,
    pub sha1_thumbprint: String,
    pub not_before: String,
    pub not_after: String,
}

/// One problem, by name, with the position (0 = leaf) and subject of the certificate concerned.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemSummary {
    pub kind: &'static str,
    pub cert: usize,
    pub subject: String,
    pub message: String,
    /// The problem's own fields (`not_after`, `path_len`, …).
    pub detail: PathProblem,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathSummary {
    pub valid: bool,
    /// Ends at a trust anchor.
    pub anchored: bool,
    pub certificates: Vec<PathCert>,
    pub problems: Vec<ProblemSummary>,
}

/// What `chain build` reports: every candidate path, valid ones first.
#[derive(Debug, Clone, Serialize)]
pub struct ChainBuildReport {
    pub valid: bool,
    pub at: String,
    pub leaf: String,
    pub paths: Vec<PathSummary>,
    /// Pool certificates that could not be parsed and were skipped.
    pub skipped: Vec<String>,
}

/// Output format of `sst create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFormat {
    /// Microsoft serialized store, with the SHA-1 hash property per certificate.
    Sst,
    /// DER PKCS#7 certs-only.
    P7b,
    /// Concatenated PEM.
    Pem,
}

/// A property of an SST entry.
#[derive(Debug, Clone, Serialize)]
pub struct StoreProperty {
    pub id: u32,
    /// The wincrypt name (`SHA1_HASH`, `FRIENDLY_NAME`, …), or `PROP_<id>`.
    pub name: String,
    /// Text for the friendly name, uppercase hex otherwise.
    pub value: String,
}

/// One certificate of a store, for `sst list`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreEntry {
    pub index: usize,
    pub subject: String,
    pub issuer: String,
    pub emails: Vec<String>,
    pub sha1_thumbprint: String,
    pub sha256_fingerprint: String,
    pub not_before: String,
    pub not_after: String,
    pub is_ca: bool,
    pub properties: Vec<StoreProperty>,
    /// Whether the SHA-1 hash property (3), if present, equals the certificate's SHA-1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha1_property_matches: Option<bool>,
}

/// `sst list`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreListing {
    /// `sst`, `p7b` or `pem`/`der` (anything else that holds certificates).
    pub format: &'static str,
    pub count: usize,
    pub certificates: Vec<StoreEntry>,
}

/// One certificate of a store, as `sst extract` hands it out to be written.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractedCert {
    /// The name to write it under: `<SHA-1 thumbprint>.cer`.
    pub file_name: String,
    pub subject: String,
    pub sha1_thumbprint: String,
    /// The certificate, DER: the file's content.
    #[serde(skip)]
    pub der: CertDer,
}

fn property_name(id: u32) -> String {
    match id {
        2 => "KEY_PROV_INFO".into(),
        3 => "SHA1_HASH".into(),
        4 => "MD5_HASH".into(),
        9 => "ENHKEY_USAGE".into(),
        11 => "FRIENDLY_NAME".into(),
        15 => "SIGNATURE_HASH".into(),
        20 => "KEY_IDENTIFIER".into(),
        25 => "SUBJECT_PUBLIC_KEY_MD5_HASH".into(),
        29 => "SUBJECT_NAME_MD5_HASH".into(),
        83 => "ROOT_PROGRAM_CERT_POLICIES".into(),
        98 => "SHA256_HASH".into(),
        104 => "AUTH_ROOT_SHA256_HASH".into(),
        105 => "DISALLOWED_FILETIME".into(),
        122 => "ROOT_PROGRAM_CHAIN_POLICIES".into(),
        126 => "DISALLOWED_ENHKEY_USAGE".into(),
        127 => "SERIALIZABLE_KEY_CONTEXT".into(),
        other => format!("PROP_{other}"),
    }
}

/// SST properties of one certificate: `(id, raw value)`.
type Properties = Vec<(u32, Vec<u8>)>;

/// A store file's certificates with their SST properties (empty for other formats).
struct LoadedStore {
    format: &'static str,
    entries: Vec<(CertDer, Properties)>,
}

fn malformed(msg: String) -> ServiceError {
    ServiceError::new(ErrorKind::Malformed, msg)
}

/// Reads a store: an SST strictly (offset and reason on error), anything else through the
/// container sniffer. Data named `….sst` or starting with four zero bytes is an SST.
fn load_store(input: &Named<Vec<u8>>) -> Result<LoadedStore, ServiceError> {
    let bytes = &input.data;
    let name = &input.name;
    let named_sst = std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("sst"));
    let looks_sst = bytes.len() >= 4 && bytes[..4] == [0, 0, 0, 0];
    if named_sst || looks_sst {
        let entries = sst::read_sst(bytes).map_err(|e| match e {
            sst::SstError::BadMagic => malformed(format!("{name}: SST: offset 0: {e}")),
            other => malformed(format!("{name}: SST: {other}")),
        })?;
        for (i, e) in entries.iter().enumerate() {
            certinfo::parse(&e.certificate)
                .map_err(|err| malformed(format!("{name}: SST certificate #{}: {err}", i + 1)))?;
        }
        return Ok(LoadedStore {
            format: "sst",
            entries: entries
                .into_iter()
                .map(|e| (e.certificate, e.properties))
                .collect(),
        });
    }
    let certs = container::load_certificates(bytes, name)?;
    for (i, c) in certs.iter().enumerate() {
        certinfo::parse(c)
            .map_err(|err| malformed(format!("{name}: certificate #{}: {err}", i + 1)))?;
    }
    let format = if bytes.first() == Some(&0x30) {
        if certs.len() == 1 && certinfo::parse(&CertDer::new(bytes.to_vec())).is_ok() {
            "der"
        } else {
            "p7b"
        }
    } else {
        "pem"
    };
    Ok(LoadedStore {
        format,
        entries: certs.into_iter().map(|c| (c, Vec::new())).collect(),
    })
}

fn path_cert(c: &CertDer) -> PathCert {
    match certinfo::parse(c) {
        Ok(i) => PathCert {
            subject: i.subject,
            issuer: i.issuer,
            sha1_thumbprint: i.sha1_thumbprint,
            not_before: rfc3339(i.not_before),
            not_after: rfc3339(i.not_after),
        },
        Err(e) => PathCert {
            subject: format!("<unreadable: {e}>"),
            issuer: String::new(),
            sha1_thumbprint: String::new(),
            not_before: String::new(),
            not_after: String::new(),
        },
    }
}

fn summarize_path(p: &ChainPath) -> PathSummary {
    PathSummary {
        valid: p.is_valid(),
        anchored: p.anchored,
        certificates: p.certificates.iter().map(path_cert).collect(),
        problems: p
            .problems
            .iter()
            .map(|x| ProblemSummary {
                kind: x.kind(),
                cert: x.cert(),
                subject: p.subjects.get(x.cert()).cloned().unwrap_or_default(),
                message: x.describe(&p.subjects),
                detail: x.clone(),
            })
            .collect(),
    }
}

impl Service {
    /// Builds every candidate path from a leaf to the trust anchors.
    pub fn build_chain(&self, req: &ChainBuildRequest) -> Result<ChainBuildReport, ServiceError> {
        let mut leaf_file = self.certificates(&req.leaf)?;
        let leaf = leaf_file.remove(0);
        let mut pool = leaf_file;
        pool.extend(self.all_certificates(&req.pool)?);
        let anchors = self.all_certificates(&req.trust)?;
        let at = req.at.unwrap_or_else(|| self.now());
        let builder = ChainBuilder::new(self.engine().verifier, &pool, &anchors)?;
        let report = builder
            .build(&leaf, at)
            .map_err(|e| ServiceError::from(e).context(&req.leaf.name))?;
        Ok(ChainBuildReport {
            valid: report.is_valid(),
            at: rfc3339(at),
            leaf: path_cert(&leaf).subject,
            paths: report.paths.iter().map(summarize_path).collect(),
            skipped: builder
                .skipped
                .iter()
                .map(|(i, e)| format!("pool certificate #{}: {e}", i + 1))
                .collect(),
        })
    }

    /// Encodes certificates as a store. Exact duplicates are written once; every certificate
    /// must parse.
    pub fn create_store(
        &self,
        certs: &[CertDer],
        format: StoreFormat,
    ) -> Result<Vec<u8>, ServiceError> {
        let mut unique: Vec<CertDer> = Vec::with_capacity(certs.len());
        let mut seen = std::collections::HashSet::new();
        for (i, c) in certs.iter().enumerate() {
            certinfo::parse(c).map_err(|e| malformed(format!("certificate #{}: {e}", i + 1)))?;
            if seen.insert(c.clone()) {
                unique.push(c.clone());
            }
        }
        Ok(match format {
            StoreFormat::Sst => sst::write_sst(&unique),
            StoreFormat::P7b => container::write_p7b(&unique),
            StoreFormat::Pem => container::write_pem(&unique).into_bytes(),
        })
    }

    /// Lists a store's certificates (SST with its properties, or any other container).
    pub fn list_store(&self, input: &Named<Vec<u8>>) -> Result<StoreListing, ServiceError> {
        let store = load_store(input)?;
        let certificates: Vec<StoreEntry> = store
            .entries
            .iter()
            .enumerate()
            .map(|(index, (cert, props))| {
                // load_store checked that every certificate parses.
                let info = certinfo::parse(cert);
                let properties = props
                    .iter()
                    .map(|(id, v)| StoreProperty {
                        id: *id,
                        name: property_name(*id),
                        value: if *id == sst::FRIENDLY_NAME_PROP_ID {
                            friendly(v)
                        } else {
                            hex::encode_upper(v)
                        },
                    })
                    .collect();
                let (subject, issuer, emails, sha1, sha256, nb, na, is_ca) = match info {
                    Ok(i) => (
                        i.subject,
                        i.issuer,
                        i.emails,
                        i.sha1_thumbprint,
                        i.sha256_fingerprint,
                        rfc3339(i.not_before),
                        rfc3339(i.not_after),
                        i.is_ca,
                    ),
                    Err(e) => (
                        format!("<unreadable: {e}>"),
                        String::new(),
                        Vec::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        false,
                    ),
                };
                let sha1_property_matches = props
                    .iter()
                    .find(|(id, _)| *id == sst::SHA1_HASH_PROP_ID)
                    .map(|(_, v)| hex::encode_upper(v) == sha1);
                StoreEntry {
                    index,
                    subject,
                    issuer,
                    emails,
                    sha1_thumbprint: sha1,
                    sha256_fingerprint: sha256,
                    not_before: nb,
                    not_after: na,
                    is_ca,
                    properties,
                    sha1_property_matches,
                }
            })
            .collect();
        Ok(StoreListing {
            format: store.format,
            count: certificates.len(),
            certificates,
        })
    }

    /// Each certificate of a store, DER, with the name to write it under
    /// (`<SHA-1 thumbprint>.cer`).
    pub fn extract_store(
        &self,
        input: &Named<Vec<u8>>,
    ) -> Result<Vec<ExtractedCert>, ServiceError> {
        let store = load_store(input)?;
        let mut out = Vec::with_capacity(store.entries.len());
        for (cert, _) in store.entries {
            let info = certinfo::parse(&cert)?;
            out.push(ExtractedCert {
                file_name: format!("{}.cer", info.sha1_thumbprint),
                subject: info.subject,
                sha1_thumbprint: info.sha1_thumbprint,
                der: cert,
            });
        }
        Ok(out)
    }
}

fn friendly(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}
