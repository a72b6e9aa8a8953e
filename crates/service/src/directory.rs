//! Directory operations: lookup, publish (with read-back), unpublish, trust chain, and
//! resolving `encrypt --to ADDRESS`.
//!
//! Every write is checked by reading the directory back: the service works out what the
//! directory should hold afterwards and fails with [`ErrorKind::Key`] (exit 4, a recipient
//! problem) when the read-back says otherwise, naming what is missing or unexpected.

use serde::Serialize;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, RecipientKind, plugin,
};
use smimekit_pki::certinfo::{self, CertInfo};

use crate::audit_log::Change;
use crate::certs::{CertSummary, rfc3339, summarize};
use crate::{ErrorKind, Named, Service, ServiceError};

const OID_EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
const OID_ANY_EKU: &str = "2.5.29.37.0";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";

/// A certificate as a directory holds it.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryCert {
    #[serde(flatten)]
    pub cert: CertSummary,
    /// The certificate's primary e-mail address (SAN rfc822Name, else subject emailAddress).
    pub address: String,
    /// Valid now, emailProtection, and a key that can receive (keyEncipherment for RSA,
    /// keyAgreement for EC).
    pub usable_for_encryption: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable_reason: Option<String>,
}

/// `smimekit lookup`.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub address: String,
    /// Only this directory; else every configured one, in order, until one has certificates.
    pub directory: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupResult {
    pub address: String,
    /// The directory the certificates come from.
    pub directory: String,
    pub kind: Option<RecipientKind>,
    pub searched: Vec<String>,
    pub certificates: Vec<DirectoryCert>,
}

/// `smimekit publish`.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    pub address: String,
    /// The certificate (PEM, DER, PKCS#7, SST; CA certificates beside it are ignored).
    pub certificate: Named<Vec<u8>>,
    pub directory: Option<String>,
    /// Create the recipient as an external contact (when it does not exist yet).
    pub contact: bool,
    /// Keep only this certificate.
    pub replace: bool,
    /// Remove the certificates that are expired at the service clock.
    pub prune_expired: bool,
    /// Publish even when the certificate does not name the address.
    pub force: bool,
}

/// What a write changed, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    pub directory: String,
    pub address: String,
    pub kind: Option<RecipientKind>,
    /// The Name of the external contact this publish created (users pick it in the GAL by
    /// this name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_contact: Option<String>,
    pub mode: PublishMode,
    pub added: Vec<DirectoryCert>,
    pub kept: Vec<DirectoryCert>,
    pub removed: Vec<DirectoryCert>,
    /// Everything the directory holds for the address afterwards.
    pub certificates: Vec<DirectoryCert>,
}

/// `smimekit unpublish`.
#[derive(Debug, Clone)]
pub struct UnpublishRequest {
    pub address: String,
    /// The certificate(s) to remove (any container).
    pub certificate: Named<Vec<u8>>,
    pub directory: Option<String>,
}

/// `smimekit trust push`: the new trust chain (replaces the stored one, as Set-SmimeConfig
/// does with an SST).
#[derive(Debug, Clone, Default)]
pub struct TrustPushRequest {
    /// SST, PEM, DER or PKCS#7 data; every certificate in them, in order.
    pub files: Vec<Named<Vec<u8>>>,
    pub directory: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustResult {
    pub directory: String,
    pub added: Vec<CertSummary>,
    pub kept: Vec<CertSummary>,
    pub removed: Vec<CertSummary>,
    pub certificates: Vec<CertSummary>,
}

fn key_err(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::Key, msg)
}

pub(crate) fn parse_address(s: &str) -> Result<Mailbox, ServiceError> {
    Mailbox::parse(s).map_err(|e| ServiceError::new(ErrorKind::Invalid, e.to_string()))
}

fn thumb(c: &CertDer) -> String {
    certinfo::parse(c)
        .map(|i| format!("{} ({})", i.sha1_thumbprint, i.subject))
        .unwrap_or_else(|_| format!("<unreadable certificate, {} bytes>", c.as_bytes().len()))
}

fn list(certs: &[&CertDer]) -> String {
    certs
        .iter()
        .map(|c| thumb(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a certificate names an address (SAN rfc822Name or subject emailAddress).
fn names(info: &CertInfo, address: &Mailbox) -> bool {
    info.emails
        .iter()
        .any(|e| e.eq_ignore_ascii_case(address.as_str()))
}

/// A certificate that names none of the recipient's addresses: `addresses` are those the
/// directory knows for the entry answering to `address` (empty: none, or not asked).
fn not_for(name: &str, info: &CertInfo, address: &Mailbox, addresses: &[Mailbox]) -> ServiceError {
    let names = if info.emails.is_empty() {
        "no e-mail address".to_string()
    } else {
        info.emails.join(", ")
    };
    let others: Vec<&str> = addresses
        .iter()
        .filter(|a| *a != address)
        .map(Mailbox::as_str)
        .collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        format!(
            " nor any other address of its entry ({})",
            others.join(", ")
        )
    };
    key_err(format!(
        "{name}: the certificate ({}) is for {names}, not {address}{also}",
        info.subject
    ))
    .for_field("force")
}

/// Why a certificate cannot receive encrypted mail at `now`, or `Ok`.
pub(crate) fn encryption_usability(info: &CertInfo, now: i64) -> Result<(), String> {
    if now < info.not_before {
        return Err(format!("not valid before {}", rfc3339(info.not_before)));
    }
    if now > info.not_after {
        return Err(format!("expired on {}", rfc3339(info.not_after)));
    }
    if info.is_ca {
        return Err("a CA certificate".into());
    }
    if let Some(eku) = &info.extended_key_usage
        && !eku
            .iter()
            .any(|o| o == OID_EMAIL_PROTECTION || o == OID_ANY_EKU)
    {
        return Err("extendedKeyUsage lacks emailProtection".into());
    }
    let (bit, name) = match info.public_key_algorithm.as_str() {
        OID_RSA => (
            certinfo::KeyUsageBits::KEY_ENCIPHERMENT,
            "keyEncipherment (RSA)",
        ),
        OID_EC => (certinfo::KeyUsageBits::KEY_AGREEMENT, "keyAgreement (EC)"),
        other => return Err(format!("public key algorithm {other} cannot receive mail")),
    };
    if let Some(ku) = info.key_usage
        && !ku.contains(bit)
    {
        return Err(format!("keyUsage lacks {name}"));
    }
    Ok(())
}

impl Service {
    /// The configured directory names, in search order.
    pub fn directory_names(&self) -> Vec<String> {
        self.config
            .directory_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn configured(&self) -> String {
        let names = self.config.directory_names();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// Opens a configured directory by name, afresh (`Service::open_directory` keeps it).
    pub(crate) fn open_directory_uncached(
        &self,
        name: &str,
    ) -> Result<Box<dyn Directory>, ServiceError> {
        let d = self
            .config
            .directories
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!(
                        "no directory named {name:?} (configured: {}{})",
                        self.configured(),
                        self.config_source()
                    ),
                )
            })?;
        // Plugins that keep their data in the store (the local directory) get the service's.
        if let Some(f) = plugin::directories_with_store().find(|f| f.kind == d.kind)
            && let Some(store) = &self.store
        {
            return Ok((f.open)(&d.name, &d.settings, store.clone())?);
        }
        // Plugins that need host services (a key opener) register a second factory.
        if let Some(f) = plugin::directories_with_keys().find(|f| f.kind == d.kind) {
            let keys = std::sync::Arc::new(crate::keys::ServiceKeyOpener(self.detached()));
            return Ok((f.open)(&d.name, &d.settings, keys)?);
        }
        if !plugin::directories().any(|f| f.kind == d.kind)
            && let Some(lib) = self.plugins.directory_kind(&d.kind)
        {
            let dir = smimekit_plugin_host::directory::PluginDirectory::open(
                lib.clone(),
                &d.name,
                &d.settings,
            )?;
            return Ok(Box::new(dir));
        }
        let factory = plugin::directories()
            .find(|f| f.kind == d.kind)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!("directory {name}: no plugin for kind {:?}", d.kind),
                )
            })?;
        Ok((factory.open)(&d.name, &d.settings)?)
    }

    fn config_source(&self) -> String {
        match &self.config.source {
            Some(p) => format!("; config {}", p.display()),
            None => "; no config file, embedded default".into(),
        }
    }

    /// The directory a write goes to: the named one, else the first configured.
    pub(crate) async fn target_directory(
        &self,
        name: Option<&str>,
    ) -> Result<std::sync::Arc<dyn Directory>, ServiceError> {
        match name {
            Some(n) => self.open_directory(n).await,
            None => match self.config.directories.first() {
                Some(d) => self.open_directory(&d.name.clone()).await,
                None => Err(ServiceError::new(
                    ErrorKind::Invalid,
                    format!(
                        "no directory configured{}: add a [directory.NAME] table",
                        self.config_source()
                    ),
                )),
            },
        }
    }

    /// The directories a lookup searches, in order.
    async fn search_directories(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<std::sync::Arc<dyn Directory>>, ServiceError> {
        match name {
            Some(n) => Ok(vec![self.open_directory(n).await?]),
            None => {
                if self.config.directories.is_empty() {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        format!("no directory configured{}", self.config_source()),
                    ));
                }
                let mut dirs = Vec::new();
                for d in &self.config.directories {
                    dirs.push(self.open_directory(&d.name).await?);
                }
                Ok(dirs)
            }
        }
    }

    pub fn directory_cert(&self, cert: &CertDer) -> DirectoryCert {
        let now = self.now();
        let summary = summarize(cert, now);
        let (address, usable) = match certinfo::parse(cert) {
            Ok(info) => (
                certinfo::primary_address(&info),
                encryption_usability(&info, now),
            ),
            Err(e) => (String::new(), Err(format!("unreadable: {e}"))),
        };
        DirectoryCert {
            cert: summary,
            address,
            usable_for_encryption: usable.is_ok(),
            unusable_reason: usable.err(),
        }
    }

    /// `smimekit lookup`: the certificates of the first directory (in search order) that has
    /// any for the address. None anywhere is [`ErrorKind::Key`].
    pub async fn lookup(&self, req: &LookupRequest) -> Result<LookupResult, ServiceError> {
        let address = parse_address(&req.address)?;
        let dirs = self.search_directories(req.directory.as_deref()).await?;
        let searched: Vec<String> = dirs.iter().map(|d| d.name().to_string()).collect();
        for d in &dirs {
            if let Some(r) = d.recipient(&address).await?
                && !r.certificates.is_empty()
            {
                self.record_sighting(d.name(), &address, Some(r.kind), &r.certificates, None)
                    .await?;
                return Ok(LookupResult {
                    address: address.to_string(),
                    directory: d.name().to_string(),
                    kind: Some(r.kind),
                    searched,
                    certificates: r
                        .certificates
                        .iter()
                        .map(|c| self.directory_cert(c))
                        .collect(),
                });
            }
        }
        Err(key_err(format!(
            "{address}: no certificate published (searched {})",
            searched.join(", ")
        )))
    }

    /// `smimekit publish`, checked by reading back.
    pub async fn publish(&self, req: &PublishRequest) -> Result<PublishResult, ServiceError> {
        let dir = self.target_directory(req.directory.as_deref()).await?;
        self.publish_to(dir.as_ref(), req).await
    }

    /// [`Service::publish`] to an already opened directory (bulk runs share one, with its
    /// token cache and concurrency limit); `req.directory` is ignored.
    pub(crate) async fn publish_to(
        &self,
        dir: &dyn Directory,
        req: &PublishRequest,
    ) -> Result<PublishResult, ServiceError> {
        let address = parse_address(&req.address)?;
        let (certificate, info) = self.leaf_certificate(&req.certificate, req.force)?;
        if !req.force && !names(&info, &address) {
            // ADDRESS may be an alias of an entry whose certificate names another of its
            // addresses (AD proxyAddresses): the entry's addresses are one person.
            let addresses = dir.addresses(&address).await?;
            if !addresses.iter().any(|a| names(&info, a)) {
                return Err(not_for(&req.certificate.name, &info, &address, &addresses));
            }
        }
        let existing = dir.recipient(&address).await?;
        let existed = existing.is_some();
        let before = existing.map(|r| r.certificates).unwrap_or_default();
        let now = self.now();
        let remove: Vec<CertDer> = if req.prune_expired {
            before
                .iter()
                .filter(|c| *c != &certificate)
                .filter(|c| certinfo::parse(c).is_ok_and(|i| i.not_after < now))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mode = if req.replace {
            PublishMode::Replace
        } else {
            PublishMode::Merge
        };
        let mut intended: Vec<CertDer> = match mode {
            PublishMode::Replace => Vec::new(),
            PublishMode::Merge => before
                .iter()
                .filter(|c| !remove.contains(c))
                .cloned()
                .collect(),
        };
        if !intended.contains(&certificate) {
            intended.push(certificate.clone());
        }
        let kind = if req.contact {
            RecipientKind::Contact
        } else {
            RecipientKind::Mailbox
        };
        let written = dir
            .publish_removing(&address, kind, &certificate, mode, &remove)
            .await
            .map(drop)
            .map_err(ServiceError::from);
        let change = Change::new("publish", dir.name(), &address, &before);
        if written.is_err() {
            self.record_write(&change, None, None, &written).await?;
            written?;
        }
        // The read-back: what any later reader will get.
        let back = dir.recipient(&address).await?;
        let (after_kind, after) = match back {
            Some(r) => (Some(r.kind), r.certificates),
            None => (None, Vec::new()),
        };
        let checked =
            self.check_read_back(dir.name(), &address, &before, &intended, &after, "publish");
        let (back, published) = (Some((after_kind, after.as_slice())), Some(&certificate));
        self.record_write(&change, back, published, &checked)
            .await?;
        checked?;
        let pick = |v: &[CertDer], pred: &dyn Fn(&CertDer) -> bool| -> Vec<DirectoryCert> {
            v.iter()
                .filter(|c| pred(c))
                .map(|c| self.directory_cert(c))
                .collect()
        };
        let created_contact = (!existed && after_kind == Some(RecipientKind::Contact)).then(|| {
            dir.contact_name(&address)
                .unwrap_or_else(|| address.to_string())
        });
        Ok(PublishResult {
            directory: dir.name().to_string(),
            address: address.to_string(),
            kind: after_kind,
            created_contact,
            mode,
            added: pick(&after, &|c| !before.contains(c)),
            kept: pick(&after, &|c| before.contains(c)),
            removed: pick(&before, &|c| !after.contains(c)),
            certificates: pick(&after, &|_| true),
        })
    }

    /// Whether the read-back `after` shows the write: every `intended` certificate there, and
    /// none of `before` that the write meant to drop. A certificate that was in neither is
    /// another writer's, added meanwhile (concurrent publishers to one recipient), and is not
    /// this write's to judge.
    fn check_read_back(
        &self,
        directory: &str,
        address: &Mailbox,
        before: &[CertDer],
        intended: &[CertDer],
        after: &[CertDer],
        what: &str,
    ) -> Result<(), ServiceError> {
        let missing: Vec<&CertDer> = intended.iter().filter(|c| !after.contains(c)).collect();
        let unexpected: Vec<&CertDer> = after
            .iter()
            .filter(|c| !intended.contains(c) && before.contains(c))
            .collect();
        if missing.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!("unexpected {}", list(&unexpected)));
        }
        Err(key_err(format!(
            "directory {directory}: read-back after {what} for {address} contradicts it: {}",
            parts.join("; ")
        )))
    }

    /// The one end-entity certificate in `input`, checked against the address (offline: no
    /// directory is asked for the address's aliases; `publish` does that).
    pub(crate) fn publishable_certificate(
        &self,
        input: &Named<Vec<u8>>,
        address: &Mailbox,
        force: bool,
    ) -> Result<CertDer, ServiceError> {
        let (cert, info) = self.leaf_certificate(input, force)?;
        if !force && !names(&info, address) {
            return Err(not_for(&input.name, &info, address, &[]));
        }
        Ok(cert)
    }

    /// The one end-entity certificate in `input` (with `force`, a lone CA certificate too).
    fn leaf_certificate(
        &self,
        input: &Named<Vec<u8>>,
        force: bool,
    ) -> Result<(CertDer, CertInfo), ServiceError> {
        let certs = self.certificates(input)?;
        let mut infos = Vec::new();
        for c in certs {
            let info =
                certinfo::parse(&c).map_err(|e| ServiceError::from(e).context(&input.name))?;
            infos.push((c, info));
        }
        let (mut leaves, mut cas): (Vec<_>, Vec<_>) =
            infos.into_iter().partition(|(_, i)| !i.is_ca);
        match (leaves.pop(), leaves.len()) {
            (Some(one), 0) => Ok(one),
            (Some(_), others) => Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "{}: holds {} end-entity certificates; publish one at a time",
                    input.name,
                    others + 1
                ),
            )),
            (None, _) if force && cas.len() == 1 => Ok(cas.remove(0)),
            (None, _) => Err(key_err(format!(
                "{}: holds only CA certificates, no certificate for a recipient",
                input.name
            ))),
        }
    }

    /// `smimekit unpublish`: removes the certificate(s) given, checked by reading back.
    pub async fn unpublish(&self, req: &UnpublishRequest) -> Result<PublishResult, ServiceError> {
        let address = parse_address(&req.address)?;
        let certs = self.certificates(&req.certificate)?;
        let dir = self.target_directory(req.directory.as_deref()).await?;
        let before = dir
            .recipient(&address)
            .await?
            .ok_or_else(|| {
                key_err(format!(
                    "{address}: no such recipient in directory {}",
                    dir.name()
                ))
            })?
            .certificates;
        let targets: Vec<CertDer> = certs.into_iter().filter(|c| before.contains(c)).collect();
        if targets.is_empty() {
            return Err(key_err(format!(
                "{}: not published for {address} in directory {}",
                req.certificate.name,
                dir.name()
            )));
        }
        let mut written = Ok(());
        for c in &targets {
            if let Err(e) = dir.unpublish(&address, c).await {
                written = Err(ServiceError::from(e));
                break;
            }
        }
        let change = Change::new("unpublish", dir.name(), &address, &before);
        if written.is_err() {
            self.record_write(&change, None, None, &written).await?;
            written?;
        }
        let back = dir.recipient(&address).await?;
        let (kind, after) = match back {
            Some(r) => (Some(r.kind), r.certificates),
            None => (None, Vec::new()),
        };
        let intended: Vec<CertDer> = before
            .iter()
            .filter(|c| !targets.contains(c))
            .cloned()
            .collect();
        let checked = self.check_read_back(
            dir.name(),
            &address,
            &before,
            &intended,
            &after,
            "unpublish",
        );
        let back = Some((kind, after.as_slice()));
        self.record_write(&change, back, None, &checked).await?;
        checked?;
        Ok(PublishResult {
            directory: dir.name().to_string(),
            address: address.to_string(),
            kind,
            created_contact: None,
            mode: PublishMode::Merge,
            added: Vec::new(),
            kept: after.iter().map(|c| self.directory_cert(c)).collect(),
            removed: targets.iter().map(|c| self.directory_cert(c)).collect(),
            certificates: after.iter().map(|c| self.directory_cert(c)).collect(),
        })
    }

    /// `smimekit trust push`: replaces the trust chain, checked by reading back.
    pub async fn trust_push(&self, req: &TrustPushRequest) -> Result<TrustResult, ServiceError> {
        if req.files.is_empty() {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                "no certificate given for the trust chain",
            ));
        }
        let chain = self.trust_chain_from_files(&req.files)?;
        let dir = self.target_directory(req.directory.as_deref()).await?;
        let before = dir.trust_chain().await?;
        let outcome = match dir.set_trust_chain(&chain).await {
            Ok(_) => {
                self.trust_pushed(dir.as_ref(), &chain, before.clone())
                    .await
            }
            Err(e) => Err(e.into()),
        };
        self.record_trust_push(dir.name(), &before, &outcome)
            .await?;
        outcome
    }

    /// Every CA certificate in the inputs, in order, without duplicates.
    pub(crate) fn trust_chain_from_files(
        &self,
        files: &[Named<Vec<u8>>],
    ) -> Result<Vec<CertDer>, ServiceError> {
        let mut chain: Vec<CertDer> = Vec::new();
        for f in files {
            for c in self.certificates(f)? {
                let info =
                    certinfo::parse(&c).map_err(|e| ServiceError::from(e).context(&f.name))?;
                if !info.is_ca {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        format!(
                            "{}: {} is not a CA certificate; the trust chain holds roots and intermediates",
                            f.name, info.subject
                        ),
                    ));
                }
                if !chain.contains(&c) {
                    chain.push(c);
                }
            }
        }
        Ok(chain)
    }

    async fn trust_pushed(
        &self,
        dir: &dyn Directory,
        chain: &[CertDer],
        before: Vec<CertDer>,
    ) -> Result<TrustResult, ServiceError> {
        let after = dir.trust_chain().await?;
        if after != chain {
            let missing: Vec<&CertDer> = chain.iter().filter(|c| !after.contains(c)).collect();
            let unexpected: Vec<&CertDer> = after.iter().filter(|c| !chain.contains(c)).collect();
            return Err(key_err(format!(
                "directory {}: read-back after trust push contradicts it: missing [{}]; unexpected [{}]",
                dir.name(),
                list(&missing),
                list(&unexpected)
            )));
        }
        let now = self.now();
        let pick = |v: &[CertDer], pred: &dyn Fn(&CertDer) -> bool| -> Vec<CertSummary> {
            v.iter()
                .filter(|c| pred(c))
                .map(|c| summarize(c, now))
                .collect()
        };
        Ok(TrustResult {
            directory: dir.name().to_string(),
            added: pick(&after, &|c| !before.contains(c)),
            kept: pick(&after, &|c| before.contains(c)),
            removed: pick(&before, &|c| !after.contains(c)),
            certificates: pick(&after, &|_| true),
        })
    }

    /// `smimekit trust show`.
    pub async fn trust_show(&self, directory: Option<&str>) -> Result<TrustResult, ServiceError> {
        let dir = self.target_directory(directory).await?;
        let chain = dir.trust_chain().await?;
        let now = self.now();
        Ok(TrustResult {
            directory: dir.name().to_string(),
            added: Vec::new(),
            kept: Vec::new(),
            removed: Vec::new(),
            certificates: chain.iter().map(|c| summarize(c, now)).collect(),
        })
    }

    /// The certificate to encrypt to for an address: the usable one (valid now,
    /// emailProtection, a key that can receive) with the latest expiry, from the first
    /// directory in search order that has one, which names the address (or another address of
    /// the same directory entry) and chains to that directory's trust chain when it has one.
    /// None is [`ErrorKind::Key`] naming the address and why each published certificate does
    /// not qualify.
    pub async fn resolve_recipient(
        &self,
        address: &str,
        directory: Option<&str>,
    ) -> Result<CertDer, ServiceError> {
        self.resolve_recipient_with(address, directory, false).await
    }

    /// [`Service::resolve_recipient`]; with `force`, a certificate that does not name the
    /// address or does not chain to the trust chain is taken all the same (the other checks
    /// stay).
    pub async fn resolve_recipient_with(
        &self,
        address: &str,
        directory: Option<&str>,
        force: bool,
    ) -> Result<CertDer, ServiceError> {
        let address = parse_address(address)?;
        let now = self.now();
        let dirs = self.search_directories(directory).await?;
        let mut reasons = Vec::new();
        for d in &dirs {
            let mut best: Option<(i64, CertDer)> = None;
            let found = d.lookup(&address).await?;
            if !found.is_empty() {
                self.record_sighting(d.name(), &address, None, &found, None)
                    .await?;
            }
            // Asked only when a certificate needs them.
            let mut entry_addresses: Option<Vec<Mailbox>> = None;
            let mut trust: Option<Vec<CertDer>> = None;
            for c in found {
                let info = match certinfo::parse(&c) {
                    Ok(info) => info,
                    Err(e) => {
                        reasons.push(format!("{}: unreadable certificate: {e}", d.name()));
                        continue;
                    }
                };
                let refuse = |why: String| {
                    format!(
                        "{}: {} ({}): {why}",
                        d.name(),
                        info.sha1_thumbprint,
                        info.subject
                    )
                };
                if let Err(why) = encryption_usability(&info, now) {
                    reasons.push(refuse(why));
                    continue;
                }
                if !force && !names(&info, &address) {
                    // ADDRESS may be an alias of the entry whose certificate names another of
                    // its addresses (AD proxyAddresses), as `publish` accepts.
                    if entry_addresses.is_none() {
                        entry_addresses = Some(d.addresses(&address).await?);
                    }
                    let others = entry_addresses.as_deref().unwrap_or_default();
                    if !others.iter().any(|a| names(&info, a)) {
                        let named = if info.emails.is_empty() {
                            "no address".to_string()
                        } else {
                            info.emails.join(", ")
                        };
                        reasons.push(refuse(format!(
                            "the certificate is for {named}, not {address} (a wrong or \
                             planted directory entry; force to encrypt to it anyway)"
                        )));
                        continue;
                    }
                }
                if !force {
                    if trust.is_none() {
                        trust = Some(match d.trust_chain().await {
                            Ok(chain) => chain,
                            // A directory that keeps no trust chain configures none.
                            Err(DirectoryError::Unsupported(_)) => Vec::new(),
                            Err(e) => return Err(e.into()),
                        });
                    }
                    if let Some(why) =
                        self.outside_trust_chain(&c, trust.as_deref().unwrap_or_default(), now)
                    {
                        reasons.push(refuse(format!(
                            "does not chain to the trust chain of directory {}: {why} (force to \
                             encrypt to it anyway)",
                            d.name()
                        )));
                        continue;
                    }
                }
                if best.as_ref().is_none_or(|(na, _)| info.not_after > *na) {
                    best = Some((info.not_after, c.clone()));
                }
            }
            if let Some((_, c)) = best {
                return Ok(c);
            }
        }
        let searched: Vec<&str> = dirs.iter().map(|d| d.name()).collect();
        Err(key_err(if reasons.is_empty() {
            format!(
                "{address}: no certificate published (searched {})",
                searched.join(", ")
            )
        } else {
            format!(
                "{address}: no usable certificate for encryption: {}",
                reasons.join("; ")
            )
        }))
    }

    /// Why `cert` does not chain to a directory's trust chain (its self-signed certificates
    /// the anchors, the others intermediates), or None when it does or no chain is configured.
    fn outside_trust_chain(&self, cert: &CertDer, trust: &[CertDer], now: i64) -> Option<String> {
        if trust.is_empty() {
            return None;
        }
        let (anchors, intermediates): (Vec<CertDer>, Vec<CertDer>) = trust
            .iter()
            .cloned()
            .partition(|c| certinfo::parse(c).is_ok_and(|i| i.self_signed));
        let outcome = self.engine().chain.validate(&smimekit_core::ChainRequest {
            leaf: cert.clone(),
            intermediates,
            anchors,
            at: now,
            crls: Vec::new(),
            smime_purpose: false,
            security_level: 1,
        });
        (!outcome.trusted).then(|| {
            outcome
                .reason
                .unwrap_or_else(|| "no path to a trust anchor".into())
        })
    }
}
