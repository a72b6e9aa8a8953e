//! Exchange Online directory backend.
//!
//! What the seed article does in PowerShell, over the admin REST endpoint the
//! ExchangeOnlineManagement v3 module uses (`POST {endpoint}/adminapi/beta/{tenant}/InvokeCommand`):
//!
//! | port operation | cmdlets |
//! |---|---|
//! | `recipient`/`lookup` | Get-Mailbox -Identity, then Get-MailContact -Identity |
//! | `recipients` | Get-Mailbox + Get-MailContact, `-ResultSize Unlimited`, paged |
//! | `publish` (add only) | Set-Mailbox / Set-MailContact `-UserCertificate @{Add=…}`, kept while the read-back proves it |
//! | `publish` removing anything (`--replace`, pruning), `unpublish` | a fresh Get-*, then Set-* with the full list |
//! | `publish` as contact, missing | New-MailContact -Name (contact_name) -ExternalEmailAddress, then Set-MailContact |
//! | `trust_chain` / `set_trust_chain` | Get-SmimeConfig / Set-SmimeConfig -SMIMECertificateIssuingCA (an SST) |
//! | `probe` | the token, EXOModuleFile (cmdlets), Get-Mailbox in both renderings, Set-Mailbox -WhatIf per encoding |
//!
//! A `byte[]` value is never removed with `@{Remove=…}` (it compares references, see
//! [`protocol`]): every write that drops a value sets the complete list, and every write is
//! read back and must show exactly the intended set of certificates (by thumbprint).
//!
//! Configuration: see [`config`]. Wire choices and their evidence: see [`protocol`].

pub mod client;
pub mod clixml;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod limit;
pub mod lint;
pub mod powershell;
pub mod protocol;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use smimekit_core::plugin::{
    DirectoryFactory, DirectoryFactoryWithKeys, KeyOpenRequest, KeyOpener,
};
use smimekit_core::{
    CertDer, Directory, DirectoryError, KeyStoreError, Mailbox, PrivateKey, ProbeCheck,
    ProbeReport, ProbeStatus, Protection, PublishMode, Recipient, RecipientKind,
};

use crate::protocol::{ByteEncoding, ResponseFormat, Wire};

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
    /// How byte values are written: the switches, then what the service accepted. Kept for
    /// the process and remembered by the host ([`KeyOpener::set_state`], the service's
    /// store), so a later process starts with what worked.
    wire: std::sync::Mutex<Wire>,
    /// Whether what the host remembered has been read into `wire` (on the first write).
    wire_loaded: tokio::sync::OnceCell<()>,
    /// Whether `@{Add=…}` showed in a read-back (`None`: not tried yet); once it did not,
    /// every write sets the full list.
    add_works: std::sync::Mutex<Option<bool>>,
}

/// The host state key ([`KeyOpener::state`]) of the byte encoding the service accepted.
const STATE_BYTE_ENCODING: &str = "exchange.byte_encoding";
/// The host state key of whether the service accepts the byte-list annotation.
const STATE_ANNOTATE: &str = "exchange.annotate";

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
        let wire = settings.protocol.first_wire();
        let client = Client::new(settings, keys)?;
        Ok(Self {
            name: name.to_string(),
            client,
            fresh: std::sync::Mutex::new(std::collections::HashMap::new()),
            wire: std::sync::Mutex::new(wire),
            wire_loaded: tokio::sync::OnceCell::new(),
            add_works: std::sync::Mutex::new(None),
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

    /// Reads, once, the wire the host remembered for this directory from an earlier run, for
    /// the switches that are not set (a set switch is used as it is). Callers meanwhile wait
    /// for it: a request sent before it is read would try the wire already refused.
    async fn load_wire(&self) {
        self.wire_loaded.get_or_init(|| self.read_wire()).await;
    }

    async fn read_wire(&self) {
        let p = &self.client.settings.protocol;
        let keys = self.client.keys();
        let encoding = match p.byte_encoding {
            Some(_) => None,
            None => keys
                .state(&self.name, STATE_BYTE_ENCODING)
                .await
                .and_then(|v| ByteEncoding::from_name(&v)),
        };
        let annotate = match p.annotate {
            Some(_) => None,
            None => match keys.state(&self.name, STATE_ANNOTATE).await.as_deref() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            },
        };
        if let Ok(mut w) = self.wire.lock() {
            if let Some(e) = encoding {
                w.encoding = e;
            }
            if let Some(a) = annotate {
                w.annotate = a;
            }
        }
    }

    /// The wire in use now.
    fn wire(&self) -> Wire {
        self.wire
            .lock()
            .map(|w| *w)
            .unwrap_or_else(|_| self.client.settings.protocol.first_wire())
    }

    /// Runs a cmdlet carrying byte values built by `params` for a [`Wire`]. When the service
    /// refuses the annotation, or cannot convert the encoding, and the switch for it is not
    /// set, the request (which did not run) is sent once more without the annotation or in
    /// the other encoding; what worked is kept for this directory.
    async fn send_bytes(
        &self,
        cmdlet: &str,
        safe: bool,
        params: &(dyn Fn(&Wire) -> Value + Sync),
    ) -> Result<Vec<Value>, ExoError> {
        let p = &self.client.settings.protocol;
        self.load_wire().await;
        let first = self.wire();
        let mut wire = first;
        let mut refusals: Vec<String> = Vec::new();
        loop {
            let body = params(&wire);
            let sent = if safe {
                self.client.invoke(cmdlet, body).await
            } else {
                self.client.invoke_write(cmdlet, body).await
            };
            match sent {
                Ok(v) => {
                    if wire != first {
                        if let Ok(mut w) = self.wire.lock() {
                            *w = wire;
                        }
                        let keys = self.client.keys();
                        if wire.encoding != first.encoding {
                            keys.set_state(&self.name, STATE_BYTE_ENCODING, wire.encoding.name())
                                .await;
                        }
                        if wire.annotate != first.annotate {
                            let a = if wire.annotate { "true" } else { "false" };
                            keys.set_state(&self.name, STATE_ANNOTATE, a).await;
                        }
                        self.client.note(format!(
                            "directory {}: {cmdlet} refused {}; sent {} instead, remembered for this directory (set [directory.{}.protocol] byte_encoding = \"{}\", annotate = {} to skip the first try)",
                            self.name,
                            refusals.join("; then "),
                            describe_wire(&wire),
                            self.name,
                            wire.encoding.name(),
                            wire.annotate
                        ));
                    }
                    return Ok(v);
                }
                Err(ExoError::InvalidValue { text, .. })
                    if wire.annotate
                        && p.annotate.is_none()
                        && protocol::annotation_refused(&text) =>
                {
                    refusals.push(format!("{} ({text})", describe_wire(&wire)));
                    wire.annotate = false;
                }
                Err(ExoError::InvalidValue { text, .. })
                    if p.byte_encoding.is_none()
                        && wire.encoding == first.encoding
                        && protocol::conversion_error(&text) =>
                {
                    refusals.push(format!("{} ({text})", describe_wire(&wire)));
                    wire.encoding = wire.encoding.other();
                }
                Err(ExoError::InvalidValue {
                    cmdlet,
                    id,
                    kind,
                    text,
                }) if !refusals.is_empty() => {
                    return Err(ExoError::InvalidValue {
                        cmdlet,
                        id,
                        kind,
                        text: format!(
                            "{text} (after {}; set [directory.{}.protocol] byte_encoding / annotate to choose)",
                            refusals.join("; "),
                            self.name
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Set-* `-UserCertificate`: the full list (`add` = false) or `@{Add=values}`.
    async fn set_certificates(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        values: &[CertDer],
        add: bool,
    ) -> Result<(), DirectoryError> {
        let (_, set) = cmdlets(kind);
        let bytes: Vec<&[u8]> = values.iter().map(CertDer::as_bytes).collect();
        let params = |w: &Wire| {
            let mut m = serde_json::Map::new();
            m.insert("Identity".into(), json!(address.as_str()));
            if add {
                w.put_add(&mut m, protocol::PROP_USER_CERTIFICATE, &bytes);
            } else {
                w.put_list(&mut m, protocol::PROP_USER_CERTIFICATE, &bytes);
            }
            Value::Object(m)
        };
        // A full list may be sent again after a lost answer (it sets, it does not add); an
        // `@{Add=…}` may not.
        self.send_bytes(set, !add, &params)
            .await
            .map_err(|e| match e {
                ExoError::NotFound { .. } => DirectoryError::NotFound(address.clone()),
                e => e.into(),
            })?;
        Ok(())
    }

    /// Reads the recipient back and requires exactly `intended` (by thumbprint).
    async fn read_back_exact(
        &self,
        address: &Mailbox,
        intended: &[CertDer],
        what: &str,
    ) -> Result<(RecipientKind, Vec<CertDer>), DirectoryError> {
        let (kind, back) = self
            .fetch(address)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
        match exact_set(intended, &back) {
            Ok(()) => Ok((kind, back)),
            Err(detail) => Err(DirectoryError::ReadBackMismatch {
                address: address.clone(),
                detail: format!("after {what}: {detail}"),
            }),
        }
    }

    /// Writes `target` as the recipient's certificates, from `current`: `@{Add=…}` when it
    /// only adds and has not failed a read-back before, else the full list; then the exact
    /// read-back.
    async fn write_list(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        current: &[CertDer],
        target: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let only_adds = current.iter().all(|c| target.contains(c));
        let add_ok = self
            .add_works
            .lock()
            .map(|a| *a != Some(false))
            .unwrap_or(false);
        if only_adds && add_ok {
            let new: Vec<CertDer> = target
                .iter()
                .filter(|c| !current.contains(c))
                .cloned()
                .collect();
            self.set_certificates(address, kind, &new, true).await?;
            match self.read_back_exact(address, target, "@{Add=…}").await {
                Ok((_, back)) => {
                    if let Ok(mut a) = self.add_works.lock() {
                        *a = Some(true);
                    }
                    return Ok(back);
                }
                Err(DirectoryError::ReadBackMismatch { detail, .. }) => {
                    if let Ok(mut a) = self.add_works.lock() {
                        *a = Some(false);
                    }
                    self.client.note(format!(
                        "directory {}: the read-back of @{{Add=…}} for {address} did not show the intended certificates ({detail}); writing full lists from now on",
                        self.name
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        self.set_certificates(address, kind, target, false).await?;
        let (_, back) = self
            .read_back_exact(address, target, "setting the full list")
            .await?;
        Ok(back)
    }

    async fn write(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        // A write that may drop values reads them afresh; one that only adds may use the read
        // the caller made moments ago.
        let may_drop = mode == PublishMode::Replace || !remove.is_empty();
        let handed = if may_drop {
            None
        } else {
            self.take_fresh(address, false)
        };
        let known = match handed {
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
        let mut target: Vec<CertDer> = match mode {
            PublishMode::Replace => Vec::new(),
            PublishMode::Merge => current
                .iter()
                .filter(|c| *c == certificate || !remove.contains(c))
                .cloned()
                .collect(),
        };
        if !target.contains(certificate) {
            target.push(certificate.clone());
        }
        if exact_set(&target, &current).is_ok() {
            // Idempotent: nothing to send; the read just made is the read-back.
            self.remember(address, kind, &current, true);
            return Ok(current);
        }
        let back = self.write_list(address, kind, &current, &target).await?;
        // The read-back, handed to the caller's own read-back that follows.
        self.remember(address, kind, &back, true);
        Ok(back)
    }

    /// `exchange probe`: see [`Directory::probe`].
    async fn run_probe(&self, address: Option<&Mailbox>) -> ProbeReport {
        let mut r = ProbeReport::default();
        let check = |r: &mut ProbeReport, name: &str, status, detail: String| {
            r.checks.push(ProbeCheck {
                name: name.into(),
                status,
                detail,
            });
        };
        let s = &self.client.settings;
        // 1. Sign-in.
        match self.client.login().await {
            Ok(()) => {
                let alg = match (s.auth, self.client.assertion_alg()) {
                    (config::AuthMode::DeviceCode, _) => "device code".to_string(),
                    (_, config::AssertionAlg::Ps256) => "client assertion PS256 + x5t#S256".into(),
                    (_, config::AssertionAlg::Rs256) => "client assertion RS256 + x5t".into(),
                };
                let fell_back = s.assertion.is_none()
                    && self.client.assertion_alg() == config::AssertionAlg::Rs256;
                check(
                    &mut r,
                    "sign-in",
                    if fell_back {
                        ProbeStatus::Warning
                    } else {
                        ProbeStatus::Passed
                    },
                    format!(
                        "token from {} for scope {} (cloud {}), {alg}{}",
                        s.authority,
                        s.scope(),
                        s.cloud.name(),
                        if fell_back {
                            ": PS256 was refused (AADSTS700027)"
                        } else {
                            ""
                        }
                    ),
                );
                if fell_back {
                    r.suggestions.push("assertion = \"rs256\"".into());
                }
            }
            Err(e) => {
                check(&mut r, "sign-in", ProbeStatus::Failed, e.to_string());
                return r;
            }
        }
        // 2. Route.
        match self.client.base().await {
            Ok(b) if b == s.endpoint => check(
                &mut r,
                "route",
                ProbeStatus::Passed,
                format!("EXOModuleFile did not redirect: InvokeCommand at {b}"),
            ),
            Ok(b) => check(
                &mut r,
                "route",
                ProbeStatus::Passed,
                format!("EXOModuleFile redirected this tenant: InvokeCommand at {b}"),
            ),
            Err(e) => {
                check(&mut r, "route", ProbeStatus::Failed, e.to_string());
                return r;
            }
        }
        // 3. The cmdlets the app may run.
        match self.client.exported_cmdlets().await {
            Ok(list) => {
                let missing: Vec<&str> = REQUIRED_CMDLETS
                    .iter()
                    .copied()
                    .filter(|c| !list.iter().any(|l| l.eq_ignore_ascii_case(c)))
                    .collect();
                if missing.is_empty() {
                    check(
                        &mut r,
                        "cmdlets",
                        ProbeStatus::Passed,
                        format!(
                            "all of {} among the {} cmdlets the app may run",
                            REQUIRED_CMDLETS.join(", "),
                            list.len()
                        ),
                    );
                } else {
                    check(
                        &mut r,
                        "cmdlets",
                        ProbeStatus::Failed,
                        format!(
                            "the app's Exchange role lacks {} ({} cmdlets allowed)",
                            missing.join(", "),
                            list.len()
                        ),
                    );
                }
            }
            Err(e) => check(
                &mut r,
                "cmdlets",
                ProbeStatus::Warning,
                format!("EXOModuleFile with CommandName: * did not list them: {e}"),
            ),
        }
        // 4. One mailbox, read both ways.
        let target = match address {
            Some(a) => Ok(a.as_str().to_string()),
            None => self
                .client
                .invoke_as(
                    "Get-Mailbox",
                    json!({"ResultSize": 1}),
                    ResponseFormat::Json,
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    v.first()
                        .and_then(object_address)
                        .ok_or_else(|| "Get-Mailbox -ResultSize 1 returned no mailbox".into())
                }),
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                check(&mut r, "mailbox", ProbeStatus::Failed, e);
                return r;
            }
        };
        let mut reads: Vec<(ResponseFormat, Option<Vec<CertDer>>)> = Vec::new();
        for format in [ResponseFormat::Clixml, ResponseFormat::Json] {
            let name = format!("read {}", format.header());
            let got = self
                .client
                .invoke_as("Get-Mailbox", json!({"Identity": target}), format)
                .await;
            match got {
                Ok(v) => match v.first() {
                    Some(o) => {
                        let form = rendering_of(o.get(protocol::PROP_USER_CERTIFICATE));
                        match certificates_of(o, &target) {
                            Ok(certs) => {
                                check(
                                    &mut r,
                                    &name,
                                    ProbeStatus::Passed,
                                    format!(
                                        "{target}: {} certificate(s) [{}]; UserCertificate came as {form}",
                                        certs.len(),
                                        thumbprints(&certs).join(", ")
                                    ),
                                );
                                reads.push((format, Some(certs)));
                            }
                            Err(e) => {
                                check(
                                    &mut r,
                                    &name,
                                    ProbeStatus::Failed,
                                    format!("{target}: UserCertificate came as {form}: {e}"),
                                );
                                reads.push((format, None));
                            }
                        }
                    }
                    None => check(
                        &mut r,
                        &name,
                        ProbeStatus::Failed,
                        format!("{target}: Get-Mailbox returned nothing"),
                    ),
                },
                Err(e) => check(&mut r, &name, ProbeStatus::Failed, e.to_string()),
            }
        }
        let readable: Vec<&(ResponseFormat, Option<Vec<CertDer>>)> =
            reads.iter().filter(|(_, c)| c.is_some()).collect();
        let current = readable.first().and_then(|(_, c)| c.clone());
        match readable.as_slice() {
            [(_, Some(a)), (_, Some(b))] => match exact_set(a, b) {
                Ok(()) => check(
                    &mut r,
                    "renderings agree",
                    ProbeStatus::Passed,
                    "clixml and JSON show the same thumbprints".into(),
                ),
                Err(d) => check(
                    &mut r,
                    "renderings agree",
                    ProbeStatus::Failed,
                    format!("clixml against JSON: {d}"),
                ),
            },
            [(f, _)] => {
                if *f != s.protocol.response_format {
                    r.suggestions
                        .push(format!("response_format = \"{}\"", f.header()));
                }
                check(
                    &mut r,
                    "renderings agree",
                    ProbeStatus::Warning,
                    format!("only {} gave the certificates", f.header()),
                );
            }
            _ => {}
        }
        // 5. Which encodings Set-Mailbox accepts: -WhatIf with the list the mailbox already
        // holds, so that nothing would change even if WhatIf were ignored.
        let Some(current) = current.filter(|c| !c.is_empty()) else {
            check(
                &mut r,
                "write encodings",
                ProbeStatus::Skipped,
                format!(
                    "{target} holds no certificate to send back with -WhatIf; probe with the address of a mailbox that has one"
                ),
            );
            return r;
        };
        let bytes: Vec<&[u8]> = current.iter().map(CertDer::as_bytes).collect();
        let mut accepted = Vec::new();
        let mut tried = Vec::new();
        for wire in [
            Wire {
                encoding: ByteEncoding::IntArray,
                annotate: true,
            },
            Wire {
                encoding: ByteEncoding::IntArray,
                annotate: false,
            },
            Wire {
                encoding: ByteEncoding::Base64,
                annotate: true,
            },
            Wire {
                encoding: ByteEncoding::Base64,
                annotate: false,
            },
        ] {
            let mut m = serde_json::Map::new();
            m.insert("Identity".into(), json!(target));
            wire.put_list(&mut m, protocol::PROP_USER_CERTIFICATE, &bytes);
            m.insert("WhatIf".into(), json!(true));
            let name = format!("write {}", describe_wire(&wire));
            match self.client.invoke("Set-Mailbox", Value::Object(m)).await {
                Ok(_) => {
                    accepted.push(wire);
                    tried.push((name, None));
                }
                Err(e) => tried.push((name, Some(e.to_string()))),
            }
        }
        // A refused encoding is a finding, a failure only when no encoding is accepted.
        for (name, refused) in tried {
            match refused {
                None => check(
                    &mut r,
                    &name,
                    ProbeStatus::Passed,
                    "accepted (Set-Mailbox -WhatIf, the same list)".into(),
                ),
                Some(e) => check(
                    &mut r,
                    &name,
                    if accepted.is_empty() {
                        ProbeStatus::Failed
                    } else {
                        ProbeStatus::Warning
                    },
                    format!("refused: {e}"),
                ),
            }
        }
        let default = s.protocol.first_wire();
        if !accepted.contains(&default)
            && let Some(w) = accepted.first()
        {
            r.suggestions.push(format!(
                "[directory.{}.protocol] byte_encoding = \"{}\", annotate = {}",
                self.name,
                w.encoding.name(),
                w.annotate
            ));
        }
        for n in self.client.notes() {
            check(&mut r, "note", ProbeStatus::Warning, n);
        }
        r
    }
}

/// The cmdlets the directory runs (`exchange probe` checks the app may run them).
pub const REQUIRED_CMDLETS: &[&str] = &[
    "Get-Mailbox",
    "Set-Mailbox",
    "Get-MailContact",
    "Set-MailContact",
    "New-MailContact",
    "Get-SmimeConfig",
    "Set-SmimeConfig",
];

fn describe_wire(w: &Wire) -> String {
    format!(
        "{}{}",
        w.encoding.name(),
        if w.annotate {
            " + UserCertificate@odata.type"
        } else {
            ""
        }
    )
}

/// How a byte property was rendered, for the probe's report.
fn rendering_of(v: Option<&Value>) -> String {
    let first = match v {
        None | Some(Value::Null) => return "nothing (absent or null)".into(),
        Some(Value::Array(a)) if a.is_empty() => return "an empty list".into(),
        Some(Value::Array(a)) => &a[0],
        Some(other) => other,
    };
    match first {
        Value::String(s) if s == protocol::UNSERIALIZED_BYTES => {
            "the type name System.Byte[]".into()
        }
        Value::String(_) => "base64 strings".into(),
        Value::Array(_) => "integer arrays".into(),
        Value::Object(o) => match o.get("Data") {
            Some(Value::String(_)) => "{\"Data\": base64} (CLIXML <BA> or JSON)".into(),
            Some(Value::Array(_)) => "{\"Data\": [integers]}".into(),
            _ => "objects without Data".into(),
        },
        other => format!("{other}"),
    }
}

fn thumbprints(certs: &[CertDer]) -> Vec<String> {
    certs
        .iter()
        .map(|c| {
            use sha1::Digest as _;
            sha1::Sha1::digest(c.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .collect()
}

/// Whether `back` holds exactly the certificates of `intended`, compared by SHA-1
/// thumbprint as Exchange shows them; else what is left over and what is missing.
pub fn exact_set(intended: &[CertDer], back: &[CertDer]) -> Result<(), String> {
    let want = thumbprints(intended);
    let got = thumbprints(back);
    let left_over: Vec<&String> = got.iter().filter(|t| !want.contains(t)).collect();
    let missing: Vec<&String> = want.iter().filter(|t| !got.contains(t)).collect();
    if left_over.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let join = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if !left_over.is_empty() {
        parts.push(format!("left over [{}]", join(&left_over)));
    }
    if !missing.is_empty() {
        parts.push(format!("missing [{}]", join(&missing)));
    }
    Err(parts.join("; "))
}

#[async_trait]
impl Directory for ExchangeDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    fn contact_name(&self, address: &Mailbox) -> Option<String> {
        Some(self.client.settings.contact_name_for(address.as_str()))
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
        // One Set-* call with the complete list, read back exactly.
        self.write(address, kind, certificate, mode, remove).await
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        // Never @{Remove=…}: the current values, read afresh, minus this one, set in full.
        let (kind, current) = self
            .fetch(address)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))?;
        if !current.contains(certificate) {
            return Ok(current);
        }
        let target: Vec<CertDer> = current
            .iter()
            .filter(|c| *c != certificate)
            .cloned()
            .collect();
        let back = self.write_list(address, kind, &current, &target).await?;
        self.remember(address, kind, &back, true);
        Ok(back)
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

    fn settings_warnings(&self, settings: &[(String, String)]) -> Vec<String> {
        lint::org_settings_warnings(settings)
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

    async fn probe(&self, address: Option<&Mailbox>) -> Result<ProbeReport, DirectoryError> {
        Ok(self.run_probe(address).await)
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
        let params = |w: &Wire| json!({protocol::PROP_ISSUING_CA: w.byte_array(&sst)});
        self.send_bytes("Set-SmimeConfig", true, &params).await?;
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

inventory::submit! {
    smimekit_core::plugin::TrustChainCheck {
        kind: "exchange-online",
        check: check_trust_chain,
    }
}

inventory::submit! {
    smimekit_core::plugin::ScriptEmitter {
        kind: "exchange-online",
        language: "powershell",
        emit: powershell::emit,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registration.
pub fn link() {}
