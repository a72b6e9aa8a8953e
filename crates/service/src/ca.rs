//! A private S/MIME CA in a directory: `ca init`, `ca issue`, `ca revoke`, `ca crl`.
//!
//! Layout of a CA directory:
//!
//! | file | what |
//! |---|---|
//! | `ca.json` | configuration: name, key type, CRL URL, and the KEYREF + certificate of the root and the issuing CA |
//! | `state.json` | serials ever used, issued certificates (address, serial, thumbprint, not_after), revocations, the last cRLNumber |
//! | `root.pem`, `issuing.pem`, `chain.pem` | the CA certificates (`chain.pem`: issuing then root) |
//! | `root.p12`, `issuing.p12` | the CA keys (file key store; a `pkcs11:` KEYREF in `ca.json` works the same) |
//! | `issued/SERIAL.pem` | every certificate issued |
//! | `ca.lock` | present while a command runs: a second concurrent run is refused |
//!
//! Keys: after `ca init`, CA keys are only ever opened through the key-store plugins by their
//! KEYREF and used through the [`PrivateKey`] port (`sign_digest`); nothing assumes they can be
//! exported. Key generation (for `ca init` and `ca issue --email`) uses the file key store's
//! a [`smimekit_core::NewKey`] from a key store's generator, which is a `PrivateKey` too.
//!
//! Crash safety: every file is written to a temporary file, fsynced, then renamed over the old
//! one. A serial number is recorded in `state.json` *before* its certificate is signed and
//! returned, so a crash can lose a certificate but never reuse a serial; the cRLNumber is
//! advanced the same way.
//!
//! Off the runtime: every read and write of the CA directory (the lock file, `ca.json`,
//! `state.json` and its serial/cRLNumber updates, the certificates, `issued/`) and the
//! generated keys' synchronous calls (PKCS#12 export, storing a certificate on a token) run on
//! the blocking pool ([`off_runtime`]), never inline in an async call; signing goes through
//! the async [`PrivateKey`] port (the key store's own lanes), encoding on the caller's task.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smimekit_core::{CertDer, KeySpec, PrivateKey, Secret};
use smimekit_pki::ca::{self as pkica, CaError, CaProfile, Name, RevocationReason};
use smimekit_pki::{certinfo, write_pem};

use crate::certs::{CertSummary, rfc3339, summarize};
use crate::{ErrorKind, KeyRequest, Named, Service, ServiceError};

const DAY: i64 = 86_400;
const ROOT_DAYS: i64 = 20 * 365;
const ISSUING_DAYS: i64 = 10 * 365;
/// Default validity of an end-entity certificate.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Key types a CA or a user key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKeyType {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
}

impl CaKeyType {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().replace('-', "").as_str() {
            "rsa2048" | "rsa" => Self::Rsa2048,
            "rsa3072" => Self::Rsa3072,
            "rsa4096" => Self::Rsa4096,
            "p256" | "ec" | "ecp256" | "prime256v1" | "secp256r1" => Self::P256,
            "p384" | "ecp384" | "secp384r1" => Self::P384,
            _ => return None,
        })
    }

    pub(crate) fn spec(self) -> KeySpec {
        match self {
            Self::Rsa2048 => KeySpec::Rsa(2048),
            Self::Rsa3072 => KeySpec::Rsa(3072),
            Self::Rsa4096 => KeySpec::Rsa(4096),
            Self::P256 => KeySpec::EcP256,
            Self::P384 => KeySpec::EcP384,
        }
    }
}

impl From<CaError> for ServiceError {
    fn from(e: CaError) -> Self {
        let kind = match e {
            CaError::Key(k @ smimekit_core::KeyStoreError::Locked { .. }) => {
                return ServiceError::from(k);
            }
            // Whatever else the CA key says while signing is a key problem (exit 4).
            CaError::Key(k) => {
                return ServiceError::new(ErrorKind::Key, k.to_string()).with_source(k);
            }
            CaError::Malformed { .. } | CaError::BadSignature => ErrorKind::Malformed,
            CaError::Unsupported(_) => ErrorKind::Unsupported,
            CaError::Profile(_) => ErrorKind::Invalid,
            _ => ErrorKind::Key,
        };
        ServiceError::new(kind, e.to_string()).with_source(e)
    }
}

// ---- files -------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaKeyConfig {
    /// KEYREF: a path relative to the CA directory, an absolute path, or a store URI.
    key: String,
    /// The certificate file, relative to the CA directory.
    cert: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaConfig {
    version: u32,
    name: String,
    key_type: CaKeyType,
    crl_url: Option<String>,
    root: CaKeyConfig,
    issuing: CaKeyConfig,
}

/// One issued certificate, as the state file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub email: String,
    /// Uppercase hex of the serial's INTEGER content octets.
    pub serial: String,
    pub sha1_thumbprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub reason: Option<RevocationReason>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CaState {
    version: u32,
    /// Every serial ever reserved, issued or not (never reused).
    serials: BTreeSet<String>,
    issued: Vec<IssuedRecord>,
    crl_number: u64,
}

const CONFIG: &str = "ca.json";
const STATE: &str = "state.json";
const LOCK: &str = "ca.lock";

/// Writes `data` to `path` atomically: a temporary file in the same directory (an unpredictable
/// name, created exclusively), fsync, rename, fsync the directory. `owner_only` files (the CA
/// keys' PKCS#12) are created 0600, and the rename replaces whatever name was at `path` (a
/// symbolic link included) without writing through it.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ServiceError> {
    write_atomic_with(path, data, false)
}

fn write_atomic_with(path: &Path, data: &[u8], owner_only: bool) -> Result<(), ServiceError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // 0666 is narrowed by the umask, as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(if owner_only {
            0o600
        } else {
            0o666
        }));
    }
    #[cfg(not(unix))]
    let _ = owner_only;
    let result = (|| {
        let mut f = builder.tempfile_in(dir)?;
        f.write_all(data)?;
        f.as_file().sync_all()?;
        f.persist(path).map_err(|e| e.error)?;
        // Persist the rename; not every platform can open a directory, so best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    // A temporary file not renamed is removed when dropped.
    result.map_err(|e| ServiceError::io(path, e))
}

/// The JSON text of a CA file (`path` names it in an error).
fn json_bytes(path: &Path, value: &impl Serialize) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| ServiceError::new(ErrorKind::Io, format!("{}: {e}", path.display())))
}

/// Held while a CA command runs; removes `ca.lock` when dropped.
#[derive(Debug)]
struct CaLock(PathBuf);

impl CaLock {
    fn acquire(dir: &Path) -> Result<Self, ServiceError> {
        let path = dir.join(LOCK);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                Ok(CaLock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ServiceError::new(
                ErrorKind::Conflict,
                format!(
                    "{}: another smimekit ca command is running on this CA (if none is, a crashed run left the lock: remove the file)",
                    path.display()
                ),
            )),
            Err(e) => Err(ServiceError::io(&path, e)),
        }
    }
}

impl Drop for CaLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An opened CA directory.
#[derive(Debug)]
struct CaDir {
    dir: PathBuf,
    config: CaConfig,
    state: CaState,
    _lock: CaLock,
}

impl CaDir {
    fn open(dir: &Path) -> Result<Self, ServiceError> {
        let cfg_path = dir.join(CONFIG);
        if !cfg_path.is_file() {
            return Err(ServiceError::new(
                ErrorKind::Io,
                format!("{}: not a CA directory (no {CONFIG})", dir.display()),
            )
            .for_field("dir"));
        }
        let lock = CaLock::acquire(dir)?;
        let config: CaConfig = read_json(&cfg_path)?;
        let state_path = dir.join(STATE);
        let state: CaState = if state_path.exists() {
            read_json(&state_path)?
        } else {
            CaState::default()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            state,
            _lock: lock,
        })
    }

    /// Writes `state.json` (serialised here, written and fsynced on the blocking pool).
    async fn save_state(&self) -> Result<(), ServiceError> {
        let path = self.dir.join(STATE);
        let text = json_bytes(&path, &self.state)?;
        off_runtime(move || write_atomic(&path, &text)).await
    }

    /// Releases the lock (removes `ca.lock`) on the blocking pool. An error path that drops a
    /// `CaDir` instead removes the file where it is dropped.
    async fn close(self) {
        let _ = crate::keys::blocking(move || drop(self)).await;
    }

    fn key_reference(&self, reference: &str) -> String {
        resolve_ref(&self.dir, reference)
    }
}

/// [`CaDir::open`] (the lock file and the state files) on the blocking pool.
async fn open_ca(dir: &Path) -> Result<CaDir, ServiceError> {
    let dir = dir.to_path_buf();
    off_runtime(move || CaDir::open(&dir)).await
}

/// Runs synchronous work on the blocking pool: the CA directory's files (I/O and fsync) and
/// the generated keys' synchronous calls (PKCS#12 export, a token's certificate write). None
/// may hold a runtime thread: a current-thread runtime would stop every other task meanwhile.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    crate::keys::blocking(work).await?
}

fn resolve_ref(dir: &Path, reference: &str) -> String {
    let is_uri = reference
        .split_once(':')
        .is_some_and(|(s, _)| s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if is_uri || Path::new(reference).is_absolute() {
        reference.to_string()
    } else {
        dir.join(reference).to_string_lossy().into_owned()
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ServiceError> {
    let data = std::fs::read(path).map_err(|e| ServiceError::io(path, e))?;
    serde_json::from_slice(&data).map_err(|e| {
        ServiceError::new(
            ErrorKind::Malformed,
            format!("{}: corrupt CA file: {e}", path.display()),
        )
    })
}

fn normalize_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_uppercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

// ---- requests and results ----------------------------------------------------------------

/// `ca init`.
#[derive(Debug)]
pub struct CaInitRequest {
    pub dir: PathBuf,
    /// Organisation name (O=, and in the CA common names).
    pub name: String,
    pub key_type: CaKeyType,
    /// Password of the CA key files.
    pub secret: Secret,
    /// The CRL distribution point put into issued certificates.
    pub crl_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaInitResult {
    pub dir: String,
    pub name: String,
    pub key_type: CaKeyType,
    pub root: CertSummary,
    pub issuing: CertSummary,
    pub root_cert: String,
    pub issuing_cert: String,
    pub chain: String,
    pub root_key: String,
    pub issuing_key: String,
}

/// Where the subject key of `ca issue` comes from.
#[derive(Debug)]
pub enum IssueSource {
    /// A PKCS#10 request (PEM or DER): the result carries the certificate.
    Csr {
        csr: Named<Vec<u8>>,
        /// The address to certify when the request names none (must match if it does).
        email: Option<String>,
    },
    /// Generate the key: the result carries key + certificate + chain as a PKCS#12.
    Generate {
        email: String,
        key_type: CaKeyType,
        /// How messages name the new PKCS#12 (the file it will be saved as).
        p12_name: String,
        p12_secret: Secret,
        /// 3DES PKCS#12 for old Windows instead of PBES2/AES-256.
        legacy: bool,
    },
}

/// `ca issue`.
#[derive(Debug)]
pub struct CaIssueRequest {
    pub dir: PathBuf,
    /// The CA key password (`None`: the key is not protected, or the caller will retry).
    pub ca_secret: Option<Secret>,
    pub source: IssueSource,
    pub days: u32,
    /// Issue even though the address has a valid certificate (renewal).
    pub renew: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaIssueResult {
    pub email: String,
    pub serial: String,
    pub sha1_thumbprint: String,
    pub not_before: String,
    pub not_after: String,
    pub certificate: CertSummary,
    /// The copy of the certificate in the CA directory.
    pub ca_copy: String,
    /// Serials of still-valid certificates for the same address (renewal).
    pub supersedes: Vec<String>,
    /// The certificate, PEM (what the CSR flow hands back).
    #[serde(skip)]
    pub pem: String,
    /// The certificate, DER.
    #[serde(skip)]
    pub der: CertDer,
    /// Its issuers, the issuing CA first (what a key store keeps beside the key).
    #[serde(skip)]
    pub chain: Vec<CertDer>,
    /// Key + certificate + chain as a PKCS#12 protected by the request's `p12_secret`
    /// ([`IssueSource::Generate`] only): the caller saves it, readable by its owner only.
    #[serde(skip)]
    pub pkcs12: Option<Vec<u8>>,
}

/// What `ca revoke` revokes.
#[derive(Debug)]
pub enum RevokeTarget {
    /// The serial in hex (colons and case ignored).
    Serial(String),
    /// The certificate (its first one).
    Certificate(Named<Vec<u8>>),
}

/// `ca revoke`.
#[derive(Debug)]
pub struct CaRevokeRequest {
    pub dir: PathBuf,
    pub target: RevokeTarget,
    pub reason: RevocationReason,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaRevokeResult {
    pub serial: String,
    pub email: String,
    pub revoked_at: String,
    pub reason: RevocationReason,
}

/// `ca crl`.
#[derive(Debug)]
pub struct CaCrlRequest {
    pub dir: PathBuf,
    pub ca_secret: Option<Secret>,
    /// nextUpdate = now + days.
    pub days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaCrlResult {
    pub crl_number: u64,
    pub revoked: Vec<String>,
    pub this_update: String,
    pub next_update: String,
    /// The CRL, PEM, for the caller to publish.
    #[serde(skip)]
    pub pem: String,
}

// ---- operations --------------------------------------------------------------------------

async fn sign_cert(
    service: &Service,
    key: &dyn PrivateKey,
    tbs_for: impl FnOnce(&[u8]) -> Result<Vec<u8>, CaError>,
) -> Result<CertDer, ServiceError> {
    let (scheme, alg) = pkica::signature_algorithm(key.kind())?;
    let tbs = tbs_for(&alg)?;
    let der = pkica::sign_tbs(&tbs, scheme, &alg, key, service.engine().primitives).await?;
    Ok(CertDer::new(der))
}

/// Checks a certificate's signature against the issuer's public key (catches a key that does
/// not match its certificate before anything is handed out).
fn check_signed_by(
    service: &Service,
    cert: &CertDer,
    issuer_spki: &[u8],
) -> Result<(), ServiceError> {
    let top = smimekit_pki::asn1::parse_single(cert.as_bytes())
        .map_err(|e| ServiceError::new(ErrorKind::Key, format!("issued certificate: {e}")))?;
    let mut r = top.children();
    let parts = (|| {
        let tbs = r.read("tbs")?;
        let _alg = r.read("alg")?;
        let sig = r.read("sig")?;
        Ok::<_, smimekit_pki::asn1::Asn1Error>((tbs, sig))
    })()
    .map_err(|e| ServiceError::new(ErrorKind::Key, format!("issued certificate: {e}")))?;
    let (tbs, sig) = parts;
    let info = service
        .engine()
        .verifier
        .public_key_info(issuer_spki)
        .map_err(|e| ServiceError::new(ErrorKind::Key, e.to_string()))?;
    let scheme = match (info.algorithm.as_str(), info.curve.as_deref()) {
        ("rsa", _) => smimekit_core::SignatureScheme::RsaPkcs1(smimekit_core::DigestAlg::Sha256),
        (_, Some("P-384")) => {
            smimekit_core::SignatureScheme::Ecdsa(smimekit_core::DigestAlg::Sha384)
        }
        _ => smimekit_core::SignatureScheme::Ecdsa(smimekit_core::DigestAlg::Sha256),
    };
    let ok = service
        .engine()
        .verifier
        .verify(
            issuer_spki,
            scheme,
            tbs.raw,
            sig.content.get(1..).unwrap_or_default(),
        )
        .map_err(|e| ServiceError::new(ErrorKind::Key, e.to_string()))?;
    if ok {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorKind::Key,
            "the CA key does not match the CA certificate: the signature it produced does not verify",
        ))
    }
}

impl Service {
    /// Creates a root and an issuing intermediate CA in `dir`.
    pub async fn ca_init(&self, req: &CaInitRequest) -> Result<CaInitResult, ServiceError> {
        self.ca_init_on(req, None).await
    }

    /// [`Service::ca_init`] with the CA keys generated in a key store (a `pkcs11:` token URI:
    /// the keys are labelled "NAME Root CA" and "NAME Issuing CA", their certificates are
    /// written beside them, `ca.json` records their URIs, and `req.secret` is the token PIN).
    pub async fn ca_init_on(
        &self,
        req: &CaInitRequest,
        key_store: Option<&str>,
    ) -> Result<CaInitResult, ServiceError> {
        let dir = &req.dir;
        if let Some(store) = key_store {
            // Unlocks the token for this process (login state is per token).
            self.open_key_store(&KeyRequest {
                reference: store.to_string(),
                secret: Some(req.secret.clone()),
                ..KeyRequest::default()
            })
            .await?;
        }
        let key_ref = |file: &Path, label: String| -> Result<String, ServiceError> {
            match key_store {
                Some(store) => crate::token::with_object(store, &label),
                None => Ok(file.to_string_lossy().into_owned()),
            }
        };
        let name_empty = req.name.trim().is_empty();
        let lock = {
            let dir = dir.to_path_buf();
            off_runtime(move || {
                if dir.join(CONFIG).exists() {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        format!("{}: a CA already exists here", dir.display()),
                    ));
                }
                if name_empty {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        "the CA name is empty",
                    ));
                }
                std::fs::create_dir_all(dir.join("issued"))
                    .map_err(|e| ServiceError::io(&dir, e))?;
                CaLock::acquire(&dir)
            })
            .await?
        };
        let now = self.now();
        let prim = self.engine().primitives;
        let root_key_path = dir.join("root.p12");
        let issuing_key_path = dir.join("issuing.p12");

        // Root: self-signed with its fresh key, through the PrivateKey port.
        let mut root_key = self
            .generate_key(
                &key_ref(&root_key_path, format!("{} Root CA", req.name))?,
                req.key_type.spec(),
            )
            .await?;
        let root_spki = root_key.spki_der()?;
        let root_name = Name::new()
            .organization(&req.name)
            .common_name(&format!("{} S/MIME Root CA", req.name))
            .to_der();
        let root_serial = pkica::random_serial(prim)?;
        let root_kid = pkica::key_identifier(&root_spki)?;
        let root = sign_cert(self, root_key.as_ref(), |alg| {
            pkica::build_tbs(&pkica::TbsRequest {
                serial: &root_serial,
                signature_algorithm: alg,
                issuer: &root_name,
                subject: &root_name,
                spki: &root_spki,
                issuer_key_id: &root_kid,
                not_before: now,
                not_after: now + ROOT_DAYS * DAY,
                profile: CaProfile::Root,
            })
        })
        .await?;
        check_signed_by(self, &root, &root_spki)?;
        root_key.set_certificate(root.clone());

        // Issuing CA, signed by the root.
        let issuing_key = self
            .generate_key(
                &key_ref(&issuing_key_path, format!("{} Issuing CA", req.name))?,
                req.key_type.spec(),
            )
            .await?;
        let issuing_spki = issuing_key.spki_der()?;
        let issuing_name = Name::new()
            .organization(&req.name)
            .common_name(&format!("{} S/MIME Issuing CA", req.name))
            .to_der();
        let issuing_serial = pkica::random_serial(prim)?;
        let issuing = sign_cert(self, root_key.as_ref(), |alg| {
            pkica::build_tbs(&pkica::TbsRequest {
                serial: &issuing_serial,
                signature_algorithm: alg,
                issuer: &root_name,
                subject: &issuing_name,
                spki: &issuing_spki,
                issuer_key_id: &root_kid,
                not_before: now,
                not_after: now + ISSUING_DAYS * DAY,
                profile: CaProfile::Intermediate { crl_url: None },
            })
        })
        .await?;
        check_signed_by(self, &issuing, &root_spki)?;

        // Keys that live in a store (tokens) keep their certificates there (a write that waits
        // for the token's lane); soft keys go to PKCS#12 files (key derivation, encryption).
        // Both are synchronous key-store calls: on the blocking pool.
        // What goes to the CA directory, in the order it is written (`ca.json` last: its
        // presence marks a complete CA); `true` marks a secret (0600).
        let (root_stored, issuing_stored, mut files) = {
            let (root, issuing) = (root.clone(), issuing.clone());
            let (name, secret) = (req.name.clone(), req.secret.clone());
            off_runtime(move || {
                let (mut root_key, mut issuing_key) = (root_key, issuing_key);
                let root_stored = root_key.store_certificate(&root, &[])?;
                let issuing_stored =
                    issuing_key.store_certificate(&issuing, std::slice::from_ref(&root))?;
                let mut files: Vec<(PathBuf, Vec<u8>, bool)> = Vec::new();
                if root_stored.is_none() {
                    let root_p12 = root_key.export_pkcs12(
                        &format!("{name} S/MIME Root CA"),
                        &root,
                        &[],
                        &secret,
                        false,
                    )?;
                    files.push((root_key_path, root_p12, true));
                }
                if issuing_stored.is_none() {
                    let issuing_p12 = issuing_key.export_pkcs12(
                        &format!("{name} S/MIME Issuing CA"),
                        &issuing,
                        std::slice::from_ref(&root),
                        &secret,
                        false,
                    )?;
                    files.push((issuing_key_path, issuing_p12, true));
                }
                Ok((root_stored, issuing_stored, files))
            })
            .await?
        };
        for (name, certs) in [
            ("root.pem", vec![root.clone()]),
            ("issuing.pem", vec![issuing.clone()]),
            ("chain.pem", vec![issuing.clone(), root.clone()]),
        ] {
            files.push((dir.join(name), write_pem(&certs).into_bytes(), false));
        }
        let mut state = CaState {
            version: 1,
            ..CaState::default()
        };
        state.serials.insert(hex::encode_upper(&root_serial));
        state.serials.insert(hex::encode_upper(&issuing_serial));
        let state_path = dir.join(STATE);
        let state_text = json_bytes(&state_path, &state)?;
        files.push((state_path, state_text, false));
        let config = CaConfig {
            version: 1,
            name: req.name.clone(),
            key_type: req.key_type,
            crl_url: req.crl_url.clone(),
            root: CaKeyConfig {
                key: root_stored.clone().unwrap_or_else(|| "root.p12".into()),
                cert: "root.pem".into(),
            },
            issuing: CaKeyConfig {
                key: issuing_stored
                    .clone()
                    .unwrap_or_else(|| "issuing.p12".into()),
                cert: "issuing.pem".into(),
            },
        };
        let config_path = dir.join(CONFIG);
        let config_text = json_bytes(&config_path, &config)?;
        files.push((config_path, config_text, false));
        off_runtime(move || {
            for (path, data, owner_only) in files {
                write_atomic_with(&path, &data, owner_only)?;
            }
            // The lock goes once everything is written.
            drop(lock);
            Ok(())
        })
        .await?;
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        Ok(CaInitResult {
            dir: dir.to_string_lossy().into_owned(),
            name: req.name.clone(),
            key_type: req.key_type,
            root: summarize(&root, now),
            issuing: summarize(&issuing, now),
            root_cert: p("root.pem"),
            issuing_cert: p("issuing.pem"),
            chain: p("chain.pem"),
            root_key: root_stored.unwrap_or_else(|| p("root.p12")),
            issuing_key: issuing_stored.unwrap_or_else(|| p("issuing.p12")),
        })
    }

    /// Opens the issuing CA key through its key store; a missing key is a key error.
    async fn ca_key(
        &self,
        ca: &CaDir,
        secret: Option<Secret>,
    ) -> Result<Arc<dyn PrivateKey>, ServiceError> {
        let reference = ca.key_reference(&ca.config.issuing.key);
        let req = KeyRequest {
            reference: reference.clone(),
            secret,
            ..KeyRequest::default()
        };
        self.open_key(&req).await.map_err(|e| match e.kind {
            ErrorKind::Io | ErrorKind::Invalid => ServiceError::new(
                ErrorKind::Key,
                format!(
                    "the issuing CA key is missing or unreachable: {}",
                    e.message
                ),
            ),
            ErrorKind::Locked { .. } => e.context("the issuing CA key is locked"),
            _ => e.context("issuing CA key"),
        })
    }

    /// Issues an S/MIME certificate from a CSR or for a freshly generated key.
    pub async fn ca_issue(&self, req: &CaIssueRequest) -> Result<CaIssueResult, ServiceError> {
        if i64::from(req.days) > pkica::MAX_LEAF_DAYS || req.days == 0 {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "a validity of {} days: an S/MIME certificate is valid for 1 to {} days (CA/B Forum S/MIME Baseline Requirements)",
                    req.days,
                    pkica::MAX_LEAF_DAYS
                ),
            )
            .for_field("days"));
        }
        let mut ca = open_ca(&req.dir).await?;
        let now = self.now();

        // The subject key and the address.
        let (email, spki, generated) = match &req.source {
            IssueSource::Csr { csr, email } => {
                let parsed = pkica::parse_csr(&csr.data, self.engine().verifier)
                    .map_err(|e| ServiceError::from(e).context(&csr.name))?;
                let email = match (email, parsed.email) {
                    (Some(given), Some(asked)) if !given.eq_ignore_ascii_case(&asked) => {
                        return Err(ServiceError::new(
                            ErrorKind::Invalid,
                            format!("{}: the request is for {asked}, not {given}", csr.name),
                        ));
                    }
                    (Some(given), _) => given.clone(),
                    (None, Some(asked)) => asked,
                    (None, None) => {
                        return Err(ServiceError::new(
                            ErrorKind::Invalid,
                            format!("{}: the request names no e-mail address", csr.name),
                        )
                        .for_field("email"));
                    }
                };
                self.check_subscriber_key(&parsed.spki)?;
                (email, parsed.spki, None)
            }
            IssueSource::Generate {
                email,
                key_type,
                p12_name,
                ..
            } => {
                let key = self.generate_key(p12_name, key_type.spec()).await?;
                let spki = key.spki_der()?;
                (email.clone(), spki, Some(key))
            }
        };
        let email = smimekit_pki::ca::cert::normalize_email(&email)?;

        // One valid certificate per address unless renewing.
        let current: Vec<String> = ca
            .state
            .issued
            .iter()
            .filter(|r| {
                r.email.eq_ignore_ascii_case(&email) && r.revoked_at.is_none() && r.not_after > now
            })
            .map(|r| r.serial.clone())
            .collect();
        if !current.is_empty() && !req.renew {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "{email} already has a valid certificate (serial {})",
                    current.join(", ")
                ),
            )
            .for_field("renew"));
        }

        let key = self.ca_key(&ca, req.ca_secret.clone()).await?;
        let issuer_cert = key.certificate().clone();
        let issuer = pkica::issuer_parts(issuer_cert.as_bytes())?;

        // Reserve a fresh serial, durably, before signing.
        let serial = loop {
            let s = pkica::random_serial(self.engine().primitives)?;
            if !ca.state.serials.contains(&hex::encode_upper(&s)) {
                break s;
            }
        };
        let serial_hex = hex::encode_upper(&serial);
        ca.state.serials.insert(serial_hex.clone());
        ca.save_state().await?;

        let subject = Name::new().common_name(&email).email(&email).to_der();
        let not_after = now + i64::from(req.days) * DAY;
        let crl_url = ca.config.crl_url.clone();
        let cert = sign_cert(self, key.as_ref(), |alg| {
            pkica::build_tbs(&pkica::TbsRequest {
                serial: &serial,
                signature_algorithm: alg,
                issuer: &issuer.subject,
                subject: &subject,
                spki: &spki,
                issuer_key_id: &issuer.key_id,
                not_before: now,
                not_after,
                profile: CaProfile::Leaf {
                    email: email.clone(),
                    crl_url,
                },
            })
        })
        .await?;
        check_signed_by(self, &cert, &issuer.spki)?;
        let info = certinfo::parse(&cert)?;

        // Outputs.
        let mut chain = vec![issuer_cert.clone()];
        chain.extend(
            key.chain()
                .iter()
                .filter(|c| c.as_bytes() != issuer_cert.as_bytes())
                .cloned(),
        );
        let ca_copy = ca.dir.join("issued").join(format!("{serial_hex}.pem"));
        let pkcs12 = match (&req.source, generated) {
            (IssueSource::Csr { .. }, _) => None,
            (
                IssueSource::Generate {
                    p12_secret, legacy, ..
                },
                Some(gk),
            ) => {
                // Key derivation and encryption: a synchronous key-store call, off the runtime.
                let (email, cert, chain) = (email.clone(), cert.clone(), chain.clone());
                let (secret, legacy) = (p12_secret.clone(), *legacy);
                Some(
                    off_runtime(move || {
                        Ok(gk.export_pkcs12(&email, &cert, &chain, &secret, legacy)?)
                    })
                    .await?,
                )
            }
            (IssueSource::Generate { .. }, None) => {
                return Err(ServiceError::new(
                    ErrorKind::Internal,
                    "internal: no generated key",
                ));
            }
        };

        ca.state.issued.push(IssuedRecord {
            email: email.clone(),
            serial: serial_hex.clone(),
            sha1_thumbprint: info.sha1_thumbprint.clone(),
            not_before: now,
            not_after,
            revoked_at: None,
            reason: None,
        });
        // The CA's copy of the certificate, then the record of it.
        let state_path = ca.dir.join(STATE);
        let state_text = json_bytes(&state_path, &ca.state)?;
        let copy_text = write_pem(std::slice::from_ref(&cert)).into_bytes();
        {
            let ca_copy = ca_copy.clone();
            off_runtime(move || {
                if let Some(issued) = ca_copy.parent() {
                    std::fs::create_dir_all(issued).map_err(|e| ServiceError::io(issued, e))?;
                }
                write_atomic(&ca_copy, &copy_text)?;
                write_atomic(&state_path, &state_text)?;
                drop(ca);
                Ok(())
            })
            .await?;
        }
        // The audit row, as for a revocation: the CA (its folder) as the directory, the new
        // certificate as `after`.
        self.audit_change(
            "ca-issue",
            &format!("ca:{}", req.dir.display()),
            &email,
            Vec::new(),
            vec![info.sha1_thumbprint.clone()],
            format!("ok (serial {serial_hex}, until {})", rfc3339(not_after)),
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "serial {serial_hex} issued (in {}), but recording it in the audit log",
                ca_copy.display()
            ))
        })?;
        Ok(CaIssueResult {
            email,
            serial: serial_hex,
            sha1_thumbprint: info.sha1_thumbprint,
            not_before: rfc3339(now),
            not_after: rfc3339(not_after),
            certificate: summarize(&cert, now),
            ca_copy: ca_copy.to_string_lossy().into_owned(),
            supersedes: current,
            pem: write_pem(std::slice::from_ref(&cert)),
            der: cert,
            chain,
            pkcs12,
        })
    }

    /// RSA 2048–8192 or EC P-256/P-384/P-521, as the S/MIME BR allow.
    fn check_subscriber_key(&self, spki: &[u8]) -> Result<(), ServiceError> {
        let info = self
            .engine()
            .verifier
            .public_key_info(spki)
            .map_err(|e| ServiceError::new(ErrorKind::Malformed, format!("public key: {e}")))?;
        let ok = match info.algorithm.as_str() {
            "rsa" => (2048..=8192).contains(&info.bits),
            "ec" => matches!(info.curve.as_deref(), Some("P-256" | "P-384" | "P-521")),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ServiceError::new(
                ErrorKind::Unsupported,
                format!(
                    "public key {} {} bits{}: S/MIME certificates need RSA ≥ 2048 bits or EC P-256/P-384/P-521",
                    info.algorithm,
                    info.bits,
                    info.curve.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ))
        }
    }

    /// Marks a certificate revoked (it appears in the next CRL).
    pub async fn ca_revoke(&self, req: &CaRevokeRequest) -> Result<CaRevokeResult, ServiceError> {
        let mut ca = open_ca(&req.dir).await?;
        let serial = match &req.target {
            RevokeTarget::Serial(s) => normalize_serial(s),
            RevokeTarget::Certificate(input) => {
                let certs = self.certificates(input)?;
                let first = certs.first().ok_or_else(|| {
                    ServiceError::new(
                        ErrorKind::Malformed,
                        format!("{}: no certificate", input.name),
                    )
                })?;
                normalize_serial(&certinfo::parse(first)?.serial_hex)
            }
        };
        let now = self.now();
        let record = ca
            .state
            .issued
            .iter_mut()
            .find(|r| normalize_serial(&r.serial) == serial)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!(
                        "serial {serial} was not issued by this CA ({})",
                        req.dir.display()
                    ),
                )
            })?;
        if record.revoked_at.is_some() {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!("serial {serial} is already revoked"),
            ));
        }
        record.revoked_at = Some(now);
        record.reason = Some(req.reason);
        let result = CaRevokeResult {
            serial: record.serial.clone(),
            email: record.email.clone(),
            revoked_at: rfc3339(now),
            reason: req.reason,
        };
        let thumbprint = record.sha1_thumbprint.clone();
        ca.save_state().await?;
        ca.close().await;
        // The audit row: the CA (its folder) as the directory, the certificate as `before`.
        self.audit_change(
            "ca-revoke",
            &format!("ca:{}", req.dir.display()),
            &result.email,
            vec![thumbprint],
            Vec::new(),
            format!("ok (serial {}, reason {:?})", result.serial, req.reason),
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "serial {} revoked, but recording it in the audit log",
                result.serial
            ))
        })?;
        Ok(result)
    }

    /// Writes a CRL signed by the issuing CA key.
    pub async fn ca_crl(&self, req: &CaCrlRequest) -> Result<CaCrlResult, ServiceError> {
        if req.days == 0 {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                "the next CRL is due at least 1 day after this one",
            )
            .for_field("days"));
        }
        let mut ca = open_ca(&req.dir).await?;
        let key = self.ca_key(&ca, req.ca_secret.clone()).await?;
        let issuer = pkica::issuer_parts(key.certificate().as_bytes())?;
        let now = self.now();
        let next = now + i64::from(req.days) * DAY;
        // Advance the cRLNumber durably first: it must never repeat.
        ca.state.crl_number += 1;
        let number = ca.state.crl_number;
        ca.save_state().await?;
        let mut revoked = Vec::new();
        let mut serials = Vec::new();
        for r in &ca.state.issued {
            if let (Some(at), Some(reason)) = (r.revoked_at, r.reason) {
                let serial = hex::decode(&r.serial).map_err(|e| {
                    ServiceError::new(
                        ErrorKind::Malformed,
                        format!("state.json: serial {}: {e}", r.serial),
                    )
                })?;
                revoked.push(pkica::RevokedEntry {
                    serial,
                    revoked_at: at,
                    reason,
                });
                serials.push(r.serial.clone());
            }
        }
        let (scheme, alg) = pkica::signature_algorithm(key.kind())?;
        let tbs = pkica::build_tbs_crl(&pkica::CrlRequest {
            signature_algorithm: &alg,
            issuer: &issuer.subject,
            issuer_key_id: &issuer.key_id,
            this_update: now,
            next_update: next,
            number,
            revoked: &revoked,
        })?;
        let crl =
            pkica::sign_tbs(&tbs, scheme, &alg, key.as_ref(), self.engine().primitives).await?;
        ca.close().await;
        self.audit_change(
            "ca-crl",
            &format!("ca:{}", req.dir.display()),
            "",
            Vec::new(),
            Vec::new(),
            format!(
                "ok (cRLNumber {number}, {} revoked, next update {})",
                serials.len(),
                rfc3339(next)
            ),
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "CRL {number} signed, but recording it in the audit log"
            ))
        })?;
        Ok(CaCrlResult {
            pem: pem_block("X509 CRL", &crl),
            crl_number: number,
            revoked: serials,
            this_update: rfc3339(now),
            next_update: rfc3339(next),
        })
    }

    /// The issued-certificate records of a CA (for listings and tests).
    pub async fn ca_issued(&self, dir: &Path) -> Result<Vec<IssuedRecord>, ServiceError> {
        let ca = open_ca(dir).await?;
        let issued = ca.state.issued.clone();
        ca.close().await;
        Ok(issued)
    }
}

pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// On the pinned clock: 2026-06-01T00:00:00Z.
    fn service() -> Service {
        Service::builder()
            .clock(smimekit_testkit::pinned_clock())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn init_issue_revoke_crl_with_a_pinned_clock() {
        let s = service();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let secret = Secret::from("pw");
        let init = s
            .ca_init(&CaInitRequest {
                dir: dir.clone(),
                name: "Test Org".into(),
                key_type: CaKeyType::P256,
                secret: secret.clone(),
                crl_url: None,
            })
            .await
            .unwrap();
        assert_eq!(init.root.not_before, smimekit_testkit::PINNED_AT);
        assert!(init.issuing.is_ca);
        // The CA keys are owner-only; the certificates as the umask says; no temporary file left.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode("root.p12"), mode("issuing.p12")), (0o600, 0o600));
            assert_ne!(mode("root.pem") & 0o044, 0, "certificates are not secret");
        }
        assert!(
            std::fs::read_dir(&dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );

        let issue = |email: &str, days: u32, renew: bool| CaIssueRequest {
            dir: dir.clone(),
            ca_secret: Some(secret.clone()),
            source: IssueSource::Generate {
                email: email.into(),
                key_type: CaKeyType::P256,
                p12_name: format!("{email}.p12"),
                p12_secret: secret.clone(),
                legacy: false,
            },
            days,
            renew,
        };
        let r = s
            .ca_issue(&issue("a@Example.org", 30, false))
            .await
            .unwrap();
        assert_eq!(r.email, "a@example.org");
        assert_eq!(r.not_after, "2026-07-01T00:00:00Z");
        let e = s
            .ca_issue(&issue("A@example.org", 30, false))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        let e = s
            .ca_issue(&issue("b@example.org", 826, false))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");

        // A wrong CA password is a key error, and the refused attempts reserved no serial.
        let mut bad = issue("c@example.org", 30, false);
        bad.ca_secret = Some(Secret::from("nope"));
        assert_eq!(s.ca_issue(&bad).await.unwrap_err().kind, ErrorKind::Key);
        assert_eq!(s.ca_issued(&dir).await.unwrap().len(), 1);

        let rev = s
            .ca_revoke(&CaRevokeRequest {
                dir: dir.clone(),
                target: RevokeTarget::Serial(r.serial.to_ascii_lowercase()),
                reason: RevocationReason::Superseded,
            })
            .await
            .unwrap();
        assert_eq!(rev.revoked_at, smimekit_testkit::PINNED_AT);
        let crl = s
            .ca_crl(&CaCrlRequest {
                dir: dir.clone(),
                ca_secret: Some(secret.clone()),
                days: 7,
            })
            .await
            .unwrap();
        assert_eq!(crl.crl_number, 1);
        assert_eq!(crl.revoked, vec![r.serial.clone()]);
        assert_eq!(crl.next_update, "2026-06-08T00:00:00Z");
        assert!(
            crl.pem.starts_with("-----BEGIN X509 CRL-----\n"),
            "{}",
            crl.pem
        );
        // The generate flow hands back the PKCS#12 and the certificate; nothing is written
        // outside the CA directory.
        assert!(r.pkcs12.as_ref().is_some_and(|p| !p.is_empty()));
        assert!(r.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(r.chain.len(), 2, "issuing CA and root");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "only the CA folder"
        );
        // Revoked: a new certificate for the address needs no --renew.
        s.ca_issue(&issue("a@example.org", 30, false))
            .await
            .unwrap();
        assert!(!dir.join(LOCK).exists());
    }

    /// The CA's state is read and written on the blocking pool, not on the runtime's thread:
    /// `state.json` is made a FIFO whose writer (a plain thread) feeds it only once a task of
    /// the same current-thread runtime has run. Were `ca revoke` to read it inline, that task
    /// could not run until the read ended: the writer gives up waiting and the test fails.
    #[cfg(unix)]
    #[tokio::test(flavor = "current_thread")]
    async fn ca_revoke_leaves_the_runtime_free_while_it_reads_its_state() {
        let s = service();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let secret = Secret::from("pw");
        s.ca_init(&CaInitRequest {
            dir: dir.clone(),
            name: "Test Org".into(),
            key_type: CaKeyType::P256,
            secret: secret.clone(),
            crl_url: None,
        })
        .await
        .unwrap();
        let issued = s
            .ca_issue(&CaIssueRequest {
                dir: dir.clone(),
                ca_secret: Some(secret.clone()),
                source: IssueSource::Generate {
                    email: "a@example.org".into(),
                    key_type: CaKeyType::P256,
                    p12_name: "a.p12".into(),
                    p12_secret: secret.clone(),
                    legacy: false,
                },
                days: 30,
                renew: false,
            })
            .await
            .unwrap();

        let state_path = dir.join(STATE);
        let state = std::fs::read(&state_path).unwrap();
        std::fs::remove_file(&state_path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&state_path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", state_path.display());

        let (ran_tx, ran_rx) = std::sync::mpsc::channel::<()>();
        let fifo = state_path.clone();
        let writer = std::thread::spawn(move || {
            // Only the failing case waits this long: a free runtime answers at once.
            let runtime_ran = ran_rx
                .recv_timeout(std::time::Duration::from_secs(120))
                .is_ok();
            // Either way the reader gets its state, so that the test ends.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .and_then(|mut f| f.write_all(&state))
                .unwrap();
            runtime_ran
        });
        // Queued before the revoke is first polled: it runs only when the revoke yields.
        let ticker = tokio::spawn(async move {
            let _ = ran_tx.send(());
        });
        let rev = s
            .ca_revoke(&CaRevokeRequest {
                dir: dir.clone(),
                target: RevokeTarget::Serial(issued.serial.clone()),
                reason: RevocationReason::KeyCompromise,
            })
            .await
            .unwrap();
        ticker.await.unwrap();
        assert!(
            writer.join().unwrap(),
            "the runtime's only thread was held while the CA state was read"
        );
        assert_eq!(rev.serial, issued.serial);
        // The write replaced the FIFO with the state, revocation recorded; the lock is gone.
        let records = s.ca_issued(&dir).await.unwrap();
        assert!(records[0].revoked_at.is_some());
        assert!(std::fs::metadata(&state_path).unwrap().is_file());
        assert!(!dir.join(LOCK).exists());
    }

    #[test]
    fn serial_normalisation() {
        assert_eq!(normalize_serial("00:4a:BC"), "4ABC");
        assert_eq!(normalize_serial("0"), "0");
    }
}
