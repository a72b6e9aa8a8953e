//! Exchange Online directory backend.
//!
//! What the seed article does in PowerShell, over the admin REST endpoint the
//! ExchangeOnlineManagement v3 module uses (`POST {endpoint}/adminapi/beta/{tenant}/InvokeCommand`):
//!
//! | port operation | cmdlets |
//! |---|---|
//! | `recipient`/`lookup` | Get-Mailbox -Identity, then Get-MailContact -Identity |
//! | `recipients` | Get-Mailbox + Get-MailContact, `-ResultSize Unlimited`, paged |
//! | `publish` (merge) | Set-Mailbox / Set-MailContact `-UserCertificate @{Add=…; Remove=…}` |
//! | `publish` (replace) | the same with the full list |
//! | `publish` as contact, missing | New-MailContact -Name (contact_name) -ExternalEmailAddress, then Set-MailContact |
//! | `trust_chain` / `set_trust_chain` | Get-SmimeConfig / Set-SmimeConfig -SMIMECertificateIssuingCA (an SST) |
//!
//! Configuration: see [`config`]. INFERRED protocol choices: see [`protocol`].

pub mod client;
pub mod config;
pub mod limit;
pub mod protocol;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use smimekit_core::plugin::{
    DirectoryFactory, DirectoryFactoryWithKeys, KeyOpenRequest, KeyOpener,
};
use smimekit_core::{
    CertDer, Directory, DirectoryError, KeyStoreError, Mailbox, PrivateKey, Protection,
    PublishMode, Recipient, RecipientKind,
};

pub use client::{Client, ExoError};
pub use config::Settings;

/// Set-SmimeConfig rejects an issuing-CA blob above this size (`SSTFileSizeExceedLimit`, §2.2).
pub const MAX_SST_BYTES: usize = 70_000;

impl From<ExoError> for DirectoryError {
    fn from(e: ExoError) -> Self {
        match e {
            ExoError::Throttled { retry_after, .. } => DirectoryError::Busy {
                detail: e.to_string(),
                retry_after,
            },
            ExoError::Unconfirmed { .. } => DirectoryError::Busy {
                detail: e.to_string(),
                retry_after: None,
            },
            ExoError::Auth(_) | ExoError::Transport(_) => {
                DirectoryError::Unavailable(e.to_string())
            }
            ExoError::InvalidValue { .. } | ExoError::AlreadyExists { .. } => {
                DirectoryError::Rejected(e.to_string())
            }
            _ => DirectoryError::Other(e.to_string()),
        }
    }
}

/// One Exchange Online tenant as a directory.
#[derive(Debug)]
pub struct ExchangeDirectory {
    name: String,
    client: Client,
    /// Objects read moments ago, handed over once between the steps of one publish (see
    /// [`Fresh`]); every request saved counts against the tenant's throttling budget.
    fresh: std::sync::Mutex<std::collections::HashMap<String, Fresh>>,
}

/// How long a handed-over read stays usable.
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// A read handed over once: the service reads a recipient, then publishes (the write uses
/// that read instead of a second Get-*), then the write reads back and the service's own
/// read-back takes that result. Entries are consumed on use.
#[derive(Debug)]
struct Fresh {
    at: std::time::Instant,
    kind: RecipientKind,
    certificates: Vec<CertDer>,
    /// Read back after a write (served to the next `recipient`), else read by `recipient`
    /// (served to the next write).
    written: bool,
}

/// The cmdlets of a recipient kind: (Get, Set).
fn cmdlets(kind: RecipientKind) -> (&'static str, &'static str) {
    match kind {
        RecipientKind::Mailbox => ("Get-Mailbox", "Set-Mailbox"),
        RecipientKind::Contact => ("Get-MailContact", "Set-MailContact"),
    }
}

fn corrupt(address: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Corrupt(format!("{address}: {e}"))
}

/// The address of a returned recipient object.
fn object_address(o: &Value) -> Option<String> {
    let primary = o[protocol::PROP_PRIMARY_SMTP].as_str();
    let external = o[protocol::PROP_EXTERNAL_EMAIL].as_str().map(|s| {
        s.strip_prefix("SMTP:")
            .or_else(|| s.strip_prefix("smtp:"))
            .unwrap_or(s)
    });
    primary.or(external).map(str::to_string)
}

fn certificates_of(o: &Value, address: &str) -> Result<Vec<CertDer>, DirectoryError> {
    let values = protocol::decode_byte_list(o.get(protocol::PROP_USER_CERTIFICATE))
        .map_err(|e| corrupt(address, e))?;
    Ok(values.into_iter().map(CertDer::new).collect())
}

impl ExchangeDirectory {
    pub fn open(
        name: &str,
        config: &str,
        keys: Arc<dyn KeyOpener>,
    ) -> Result<Self, DirectoryError> {
        let settings = Settings::parse(name, config)?;
        let client = Client::new(settings, keys)?;
        Ok(Self {
            name: name.to_string(),
            client,
            fresh: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn remember(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificates: &[CertDer],
        written: bool,
    ) {
        // A poisoned lock only loses the optimisation.
        if let Ok(mut m) = self.fresh.lock() {
            if m.len() > 4096 {
                m.retain(|_, f| f.at.elapsed() < FRESH_FOR);
            }
            m.insert(
                address.as_str().to_ascii_lowercase(),
                Fresh {
                    at: std::time::Instant::now(),
                    kind,
                    certificates: certificates.to_vec(),
                    written,
                },
            );
        }
    }

    fn take_fresh(
        &self,
        address: &Mailbox,
        written: bool,
    ) -> Option<(RecipientKind, Vec<CertDer>)> {
        let mut m = self.fresh.lock().ok()?;
        let key = address.as_str().to_ascii_lowercase();
        let usable = m
            .get(&key)
            .is_some_and(|f| f.written == written && f.at.elapsed() < FRESH_FOR);
        if !usable {
            return None;
        }
        m.remove(&key).map(|f| (f.kind, f.certificates))
    }

    /// Get-Mailbox / Get-MailContact, decoded.
    async fn fetch(
        &self,
        address: &Mailbox,
    ) -> Result<Option<(RecipientKind, Vec<CertDer>)>, DirectoryError> {
        match self.find(address).await? {
            Some((kind, o)) => Ok(Some((kind, certificates_of(&o, address.as_str())?))),
            None => Ok(None),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Get-Mailbox, else Get-MailContact: the object and its kind.
    async fn find(
        &self,
        address: &Mailbox,
    ) -> Result<Option<(RecipientKind, Value)>, DirectoryError> {
        for kind in [RecipientKind::Mailbox, RecipientKind::Contact] {
            let (get, _) = cmdlets(kind);
            match self
                .client
                .invoke(get, json!({"Identity": address.as_str()}))
                .await
            {
                Ok(v) => {
                    if let Some(o) = v.into_iter().next() {
                        // -Identity also matches Name and Alias: make sure the object is
                        // this address, never write to a namesake.
                        match object_address(&o) {
                            Some(a) if a.eq_ignore_ascii_case(address.as_str()) => {}
                            other => {
                                return Err(DirectoryError::Rejected(format!(
                                    "{address}: {get} -Identity resolved to {:?} whose address is {}; \
                                     another object is named like this address (rename it, or use another contact_name)",
                                    o[protocol::PROP_NAME].as_str().unwrap_or(""),
                                    other.unwrap_or_else(|| "unknown".into())
                                )));
                            }
                        }
                        return Ok(Some((kind, o)));
                    }
                }
                Err(ExoError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Creates the external contact for `address` (New-MailContact), named by the
    /// `contact_name` convention.
    async fn create_contact(&self, address: &Mailbox) -> Result<(), DirectoryError> {
        let name = self.client.settings.contact_name_for(address.as_str());
        match self
            .client
            .invoke_write(
                "New-MailContact",
                json!({"Name": name, "ExternalEmailAddress": address.as_str()}),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(ExoError::AlreadyExists { text, .. }) => Err(DirectoryError::Rejected(format!(
                "New-MailContact {name:?} for {address}: {text} (another object holds this name or address; \
                 change contact_name in [directory.{}])",
                self.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The name a new contact for `address` gets.
    pub fn contact_name(&self, address: &str) -> String {
        self.client.settings.contact_name_for(address)
    }

    async fn set_certificates(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        value: Value,
    ) -> Result<(), DirectoryError> {
        let (_, set) = cmdlets(kind);
        self.client
            .invoke_write(
                set,
                json!({"Identity": address.as_str(), protocol::PROP_USER_CERTIFICATE: value}),
            )
            .await
            .map_err(|e| match e {
                ExoError::NotFound { .. } => DirectoryError::NotFound(address.clone()),
                e => e.into(),
            })?;
        Ok(())
    }

    async fn write(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let known = match self.take_fresh(address, false) {
            Some(f) => Some(f),
            None => self.fetch(address).await?,
        };
        let (kind, current) = match known {
            Some(f) => f,
            None if kind == RecipientKind::Contact => {
                self.create_contact(address).await?;
                (RecipientKind::Contact, Vec::new())
            }
            None => return Err(DirectoryError::NotFound(address.clone())),
        };
        let p = &self.client.settings.protocol;
        let value = match mode {
            PublishMode::Replace => p.byte_array_list(&[certificate.as_bytes()]),
            PublishMode::Merge => {
                let add: Vec<&[u8]> = if current.contains(certificate) {
                    Vec::new()
                } else {
                    vec![certificate.as_bytes()]
                };
                let rem: Vec<&[u8]> = remove
                    .iter()
                    .filter(|c| *c != certificate && current.contains(c))
                    .map(|c| c.as_bytes())
                    .collect();
                if add.is_empty() && rem.is_empty() {
                    // Idempotent: nothing to send; the read just made is the read-back.
                    self.remember(address, kind, &current, true);
                    return Ok(current);
                }
                p.add_remove(&add, &rem)
            }
        };
        self.set_certificates(address, kind, value).await?;
        // The read-back, handed to the caller's own read-back that follows.
        match self.fetch(address).await? {
            Some((k, certs)) => {
                self.remember(address, k, &certs, true);
                Ok(certs)
            }
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl Directory for ExchangeDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self
            .recipient(address)
            .await?
            .map(|r| r.certificates)
            .unwrap_or_default())
    }

    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        let found = match self.take_fresh(address, true) {
            Some(f) => Some(f),
            None => {
                let f = self.fetch(address).await?;
                if let Some((kind, certs)) = &f {
                    self.remember(address, *kind, certs, false);
                }
                f
            }
        };
        Ok(found.map(|(kind, certificates)| Recipient {
            address: address.clone(),
            kind,
            certificates,
        }))
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        let mut out = Vec::new();
        for kind in [RecipientKind::Mailbox, RecipientKind::Contact] {
            let (get, _) = cmdlets(kind);
            for o in self
                .client
                .invoke(get, json!({"ResultSize": "Unlimited"}))
                .await?
            {
                let Some(addr) = object_address(&o) else {
                    continue;
                };
                let Ok(address) = Mailbox::parse(&addr) else {
                    continue;
                };
                out.push(Recipient {
                    certificates: certificates_of(&o, &addr)?,
                    address,
                    kind,
                });
            }
        }
        Ok(out)
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.write(address, kind, certificate, mode, &[]).await
    }

    async fn publish_removing(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        // One Set-* call with Add and Remove: atomic on the service side.
        self.write(address, kind, certificate, mode, remove).await
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let (kind, _) = self
            .find(address)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
        let p = &self.client.settings.protocol;
        self.set_certificates(address, kind, p.add_remove(&[], &[certificate.as_bytes()]))
            .await?;
        self.lookup(address).await
    }

    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        let v = self.client.invoke("Get-SmimeConfig", json!({})).await?;
        let Some(o) = v.first() else {
            return Ok(Vec::new());
        };
        let blob = match o.get(protocol::PROP_ISSUING_CA) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(b) => {
                protocol::decode_bytes(b).map_err(|e| corrupt("SMIMECertificateIssuingCA", e))?
            }
        };
        if blob.is_empty() {
            return Ok(Vec::new());
        }
        smimekit_pki::sst::read_sst_certificates(&blob)
            .map_err(|e| corrupt("SMIMECertificateIssuingCA", e))
    }

    async fn connect(&self) -> Result<String, DirectoryError> {
        self.client.login().await?;
        Ok(format!(
            "signed in to tenant {} ({})",
            self.client.settings.tenant,
            match self.client.settings.auth {
                config::AuthMode::App => "app-only, certificate",
                config::AuthMode::DeviceCode =>
                    "delegated, device code; the token lives in memory for this process only",
            }
        ))
    }

    async fn org_settings(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        let v = self.client.invoke("Get-SmimeConfig", json!({})).await?;
        let mut out = Vec::new();
        if let Some(Value::Object(o)) = v.first() {
            for (k, val) in o {
                if k.contains('@')
                    || !(k.starts_with("OWA")
                        || k.starts_with("SMIMECertificates")
                        || k == "NoSignOnReply")
                {
                    continue;
                }
                let text = match val {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.push((k.clone(), text));
            }
        }
        Ok(out)
    }

    async fn set_org_settings(
        &self,
        values: &[(String, String)],
    ) -> Result<Vec<(String, String)>, DirectoryError> {
        let mut params = serde_json::Map::new();
        for (k, v) in values {
            let (name, typed) = protocol::owa_setting(k, v).map_err(DirectoryError::Rejected)?;
            params.insert(name.to_string(), typed);
        }
        self.client
            .invoke("Set-SmimeConfig", Value::Object(params))
            .await?;
        self.org_settings().await
    }

    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        check_trust_chain(chain, now_unix())?;
        let sst = smimekit_pki::sst::write_sst(chain);
        if sst.len() > MAX_SST_BYTES {
            return Err(DirectoryError::Rejected(format!(
                "the SST is {} bytes; Set-SmimeConfig refuses more than {MAX_SST_BYTES} (SSTFileSizeExceedLimit): push fewer certificates",
                sst.len()
            )));
        }
        let p = &self.client.settings.protocol;
        self.client
            .invoke(
                "Set-SmimeConfig",
                json!({protocol::PROP_ISSUING_CA: p.byte_array(&sst)}),
            )
            .await?;
        self.trust_chain().await
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What Set-SmimeConfig would reject, checked before sending (§2.2): expired certificates.
pub fn check_trust_chain(chain: &[CertDer], now: i64) -> Result<(), DirectoryError> {
    let mut expired = Vec::new();
    for c in chain {
        let info = smimekit_pki::certinfo::parse(c)
            .map_err(|e| DirectoryError::Rejected(format!("unreadable certificate: {e}")))?;
        if info.not_after < now {
            expired.push(format!("{} ({})", info.sha1_thumbprint, info.subject));
        }
    }
    if !expired.is_empty() {
        return Err(DirectoryError::Rejected(format!(
            "Set-SmimeConfig fails when any certificate of the SST is expired; expired: {}",
            expired.join(" , ")
        )));
    }
    let size = smimekit_pki::sst::write_sst(chain).len();
    if size > MAX_SST_BYTES {
        return Err(DirectoryError::Rejected(format!(
            "the SST is {size} bytes; Set-SmimeConfig refuses more than {MAX_SST_BYTES} (SSTFileSizeExceedLimit): push fewer certificates"
        )));
    }
    Ok(())
}

/// A key opener for hosts without one: the key-store plugins, directly. It has no secret
/// sources, so a locked app credential stays locked (smimekit's service resolves them).
#[derive(Debug)]
pub struct PluginKeyOpener;

#[async_trait]
impl KeyOpener for PluginKeyOpener {
    async fn open_key(&self, req: &KeyOpenRequest) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        let f = smimekit_core::plugin::key_stores()
            .find(|f| (f.accepts)(&req.reference))
            .ok_or_else(|| KeyStoreError::NotFound {
                key: req.reference.clone(),
                detail: "no key store handles this reference".into(),
            })?;
        let store = (f.open)(&smimekit_core::plugin::KeyStoreParams {
            reference: &req.reference,
            certificate: req.certificate.as_deref(),
        })?;
        if let Protection::Locked { hint, .. } = store.protection().await {
            return Err(KeyStoreError::Locked {
                key: req.reference.clone(),
                hint: format!(
                    "{hint} for {} ({}): this host cannot supply passwords or PINs",
                    req.reference, req.purpose
                ),
            });
        }
        store.open(None).await
    }
}

fn open_with_keys(
    name: &str,
    config: &str,
    keys: Arc<dyn KeyOpener>,
) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(Box::new(ExchangeDirectory::open(name, config, keys)?))
}

fn open_factory(name: &str, config: &str) -> Result<Box<dyn Directory>, DirectoryError> {
    open_with_keys(name, config, Arc::new(PluginKeyOpener))
}

inventory::submit! {
    DirectoryFactory {
        kind: "exchange-online",
        description: "Exchange Online (admin REST InvokeCommand): Get/Set-Mailbox, Get/Set/New-MailContact -UserCertificate, Set-SmimeConfig trust store; app-only certificate auth",
        open: open_factory,
    }
}

inventory::submit! {
    DirectoryFactoryWithKeys {
        kind: "exchange-online",
        open: open_with_keys,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registration.
pub fn link() {}
