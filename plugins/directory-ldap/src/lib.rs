//! LDAP / Active Directory [`Directory`] backend on `ldap3` (async, tokio).
//!
//! Lookup by address matches `mail` and, for AD, `proxyAddresses` (`SMTP:`/`smtp:`, case
//! ignored by the server's caseIgnoreMatch). A recipient's certificates are the DER values of
//! `userCertificate` (`userCertificate;binary` on OpenLDAP) followed by the end-entity
//! certificates inside the PKCS#7 values of `userSMIMECertificate`.
//!
//! Writes have the port's merge semantics and keep the two attributes consistent:
//! `userCertificate` holds exactly the recipient's certificates, and `userSMIMECertificate`
//! keeps every existing value whose certificates are all still published (byte for byte) and
//! gets a certs-only PKCS#7 SignedData (leaf plus the chain from `chain_file`) for each
//! certificate no kept value covers. Outlook's own "Publish to GAL" value is a SignedData
//! *signed by the user's key* with an smimeCapabilities signed attribute; a directory tool
//! has no user key, so it writes the certs-only form MS-OXLDAP also allows (Outlook ignores
//! the signature and reads the certificates).
//!
//! Every write is one LDAP modify (or add) operation, which the server applies atomically:
//! value-level deletes and adds for the certificate attribute (a delete of a value another
//! writer removed meanwhile fails the whole operation, so nothing is half-written), and for
//! userSMIMECertificate too where the server can (AD); OpenLDAP's Binary syntax has no
//! equality rule, so there the attribute is replaced under an RFC 4528 assertion of the
//! entry's `entryCSN`, which fails if anyone wrote the entry since it was read. A write
//! another writer overtook is planned again from a fresh read and retried, so concurrent
//! publishers to one entry lose no value. A userSMIMECertificate value that cannot be read
//! (not PKCS#7, or holding no certificate) is never dropped: it is kept and the host told.
//! Values over `max_value_bytes` (AD's rangeUpper, 32,768) are refused before anything is
//! sent. After the write the entry is read back: what it added must be there, what it
//! removed gone. A simple bind over a connection without TLS is refused unless
//! `allow_cleartext_bind = true`.
//!
//! Configuration (`[directory.NAME]`, `kind = "ldap"`): see the README's "LDAP and Active
//! Directory" section and [`config::Settings`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
mod entry;
#[doc(hidden)]
pub mod fuzzing;

use std::collections::HashSet;

use async_trait::async_trait;
use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope};
use smimekit_core::plugin::DirectoryFactory;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
    RecipientValues, StoredValue,
};
use smimekit_pki::certinfo;
use tokio::sync::Mutex;

pub use config::{Flavor, Settings};
use entry::{Entry, RawEntry, Target};

/// An LDAP directory; one connection per handle, opened (and bound) on first use.
#[derive(Debug)]
pub struct LdapDirectory {
    name: String,
    s: Settings,
    conn: Mutex<Option<Ldap>>,
    /// `chain_file`'s certificates, read once.
    pool: std::sync::OnceLock<Vec<CertDer>>,
    /// Whether userSMIMECertificate values are added and deleted one by one (AD: octet
    /// strings have an equality rule) or the attribute is replaced under an assertion of the
    /// entry's `entryCSN` (OpenLDAP: its Binary syntax has no equality rule, so slapd refuses
    /// value-level changes to it); a refusal switches to the second.
    smime_by_value: std::sync::atomic::AtomicBool,
    /// The host, to tell the user what they should know (unreadable values kept).
    host: Option<std::sync::Arc<dyn smimekit_core::plugin::KeyOpener>>,
}

/// How many times a write is tried again when other writers changed the entry meanwhile
/// (16 concurrent publishers to one entry each win a round).
const WRITE_TRIES: u32 = 40;

/// How one try of a write ended.
enum Applied {
    Done(Entry),
    /// Another writer changed the entry between the read and the write: read again, retry.
    Raced(String),
}

/// LDAP result codes this backend names.
mod rc {
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const INAPPROPRIATE_MATCHING: u32 = 18;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const INVALID_ATTRIBUTE_SYNTAX: u32 = 21;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const STRONGER_AUTH_REQUIRED: u32 = 8;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const ASSERTION_FAILED: u32 = 122;
}

/// The wait before another try of a write another writer overtook: a few milliseconds,
/// growing, with jitter so that the writers do not meet again.
fn retry_wait(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let base = 2u64 << attempt.min(5);
    // RandomState is seeded per instance: different waits for different writers.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    std::time::Duration::from_millis(base + h.finish() % (base * 2))
}

impl LdapDirectory {
    /// Opens from the TOML text of a `[directory.NAME]` table. Reads the password now, from
    /// the process environment ([`config::Environment`]); makes no connection.
    pub fn from_config(name: &str, config: &str) -> Result<Self, DirectoryError> {
        Self::from_config_with(name, config, &config::Environment::find)
    }

    /// [`LdapDirectory::from_config`] with the host's secret sources (smimekit's service:
    /// `--password-file`, the environment, a prompt), after `password_env`/`password_file`.
    pub fn from_config_with(
        name: &str,
        config: &str,
        find: config::FindSecret<'_>,
    ) -> Result<Self, DirectoryError> {
        let s = Settings::from_toml_with(name, config, find)?;
        Ok(Self {
            name: name.to_string(),
            smime_by_value: std::sync::atomic::AtomicBool::new(s.flavor == Flavor::ActiveDirectory),
            s,
            conn: Mutex::new(None),
            pool: std::sync::OnceLock::new(),
            host: None,
        })
    }

    /// Tells `host` what the user should know (values kept that could not be read).
    pub fn with_host(mut self, host: std::sync::Arc<dyn smimekit_core::plugin::KeyOpener>) -> Self {
        self.host = Some(host);
        self
    }

    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    fn tls_connector(&self) -> Result<native_tls::TlsConnector, DirectoryError> {
        let mut b = native_tls::TlsConnector::builder();
        if let Some(path) = &self.s.ca_file {
            let bytes = std::fs::read(path).map_err(|e| {
                DirectoryError::Config(format!(
                    "directory {}: ca_file {}: {e}",
                    self.name,
                    path.display()
                ))
            })?;
            let certs = smimekit_pki::load_certificates(&bytes, &path.display().to_string())
                .map_err(|e| {
                    DirectoryError::Config(format!("directory {}: ca_file: {e}", self.name))
                })?;
            for c in certs {
                let cert = native_tls::Certificate::from_der(c.as_bytes()).map_err(|e| {
                    DirectoryError::Config(format!(
                        "directory {}: ca_file {}: {e}",
                        self.name,
                        path.display()
                    ))
                })?;
                b.add_root_certificate(cert);
            }
        }
        if !self.s.tls_verify {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
        b.build()
            .map_err(|e| DirectoryError::Config(format!("directory {}: TLS setup: {e}", self.name)))
    }

    /// An LDAP error as a directory error naming this directory and what was being done.
    fn err(&self, what: &str, e: LdapError) -> DirectoryError {
        let n = &self.name;
        match e {
            LdapError::LdapResult { result } => self.result_err(what, result.rc, &result.text),
            LdapError::NativeTLS { source } => DirectoryError::Unavailable(format!(
                "directory {n} ({}): {what}: TLS failed: {source} (is ca_file the CA that \
                 issued the server's certificate, and does the certificate name the host in the url?)",
                self.s.url
            )),
            LdapError::Timeout { .. } => DirectoryError::Unavailable(format!(
                "directory {n} ({}): {what}: no answer within {} s",
                self.s.url,
                self.s.timeout.as_secs()
            )),
            LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
                DirectoryError::Config(format!("directory {n}: url {:?}: {e}", self.s.url))
            }
            other => DirectoryError::Unavailable(format!(
                "directory {n} ({}): {what}: {other}",
                self.s.url
            )),
        }
    }

    fn result_err(&self, what: &str, code: u32, text: &str) -> DirectoryError {
        let n = &self.name;
        let text = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        let hint = if text.contains("binary") {
            format!(
                " (the server and the attribute names disagree about the ;binary option: \
                 certificate_attribute = {:?}, smime_attribute = {:?}; OpenLDAP needs \
                 userCertificate;binary and plain userSMIMECertificate, AD plain names)",
                self.s.cert_attr, self.s.smime_attr
            )
        } else {
            String::new()
        };
        let m = format!("directory {n}: {what}: LDAP result {code}{text}{hint}");
        match code {
            // AD (and Samba) refuse a simple bind on a connection without TLS, as hardened
            // servers do: say so and how to fix it, rather than a bare result code.
            rc::STRONGER_AUTH_REQUIRED if !self.s.uses_tls() => DirectoryError::Other(format!(
                "directory {n}: {what} refused: the server requires TLS (LDAP 8 \
                 strongerAuthRequired{text}); use an ldaps:// url or starttls = true (url is {:?})",
                self.s.url
            )),
            rc::INVALID_CREDENTIALS => DirectoryError::Other(format!(
                "{n}: bind as {:?} refused: invalid credentials (LDAP 49); check bind_dn and \
                 password_env/password_file",
                self.s.bind_dn.as_deref().unwrap_or("")
            )),
            // RFC 4511 §A.2: busy (51) is a server too busy to service the operation, and
            // unavailable (52) one shutting down or missing a subsystem the operation needs
            // (slapd's back-ldap proxy says 52 when its remote is down). Either way the
            // operation was not done and may succeed later: the host's bulk runs put the item
            // back in their queue. unwillingToPerform (53) is a refusal (read-only replica,
            // password or naming policy, AD's administrative limits), not load: it stays an
            // error, as do the rest.
            rc::BUSY | rc::UNAVAILABLE => DirectoryError::Busy {
                detail: m,
                retry_after: None,
            },
            rc::NO_SUCH_OBJECT => DirectoryError::Config(m),
            rc::NO_SUCH_ATTRIBUTE
            | rc::UNDEFINED_ATTRIBUTE_TYPE
            | rc::INAPPROPRIATE_MATCHING
            | rc::CONSTRAINT_VIOLATION
            | rc::ATTRIBUTE_OR_VALUE_EXISTS
            | rc::INVALID_ATTRIBUTE_SYNTAX
            | rc::INSUFFICIENT_ACCESS
            | rc::OBJECT_CLASS_VIOLATION
            | rc::ENTRY_ALREADY_EXISTS => DirectoryError::Rejected(m),
            _ => DirectoryError::Other(m),
        }
    }

    /// The connection, opened and bound on first use (and again if the server closed it).
    async fn ldap(&self) -> Result<Ldap, DirectoryError> {
        let mut guard = self.conn.lock().await;
        if let Some(l) = guard.as_mut()
            && !l.is_closed()
        {
            return Ok(l.clone());
        }
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.s.timeout);
        if self.s.uses_tls() {
            settings = settings
                .set_connector(self.tls_connector()?)
                .set_starttls(self.s.starttls);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.s.url)
            .await
            .map_err(|e| self.err("connect", e))?;
        tokio::spawn(async move {
            // The driver ends when the connection closes; its error reaches the next
            // operation as a closed handle, which reconnects.
            let _ = conn.drive().await;
        });
        if let (Some(dn), Some(pw)) = (&self.s.bind_dn, &self.s.password) {
            let pw = pw.as_str().ok_or_else(|| {
                DirectoryError::Config(format!(
                    "directory {}: the bind password is not UTF-8",
                    self.name
                ))
            })?;
            let r = ldap
                .with_timeout(self.s.timeout)
                .simple_bind(dn, pw)
                .await
                .map_err(|e| self.err("bind", e))?;
            if r.rc != 0 {
                return Err(self.result_err("bind", r.rc, &r.text));
            }
        }
        *guard = Some(ldap.clone());
        tracing::debug!(
            directory = %self.name,
            url = %self.s.url,
            bind_dn = self.s.bind_dn.as_deref(),
            "connected"
        );
        Ok(ldap)
    }

    fn attrs(&self) -> Vec<String> {
        let mut a = vec![
            "objectClass".to_string(),
            self.s.mail_attr.clone(),
            self.s.cert_attr.clone(),
            self.s.smime_attr.clone(),
        ];
        if let Some(p) = &self.s.proxy_attr {
            a.push(p.clone());
        }
        // Operational (OpenLDAP): sent only when asked for; servers without it send nothing.
        a.push("entryCSN".into());
        a
    }

    fn with_extra(&self, f: String) -> String {
        match &self.s.filter {
            Some(extra) => format!("(&{extra}{f})"),
            None => f,
        }
    }

    /// The filter matching an address: `mail`, and the SMTP proxy addresses.
    fn address_filter(&self, address: &Mailbox) -> String {
        let a = ldap3::ldap_escape(address.as_str());
        let mut f = format!("({}={a})", self.s.mail_attr);
        if let Some(p) = &self.s.proxy_attr {
            f = format!("(|{f}({p}=smtp:{a}))");
        }
        self.with_extra(f)
    }

    /// One search. AD answers a subtree search from the domain root with search references
    /// to its other naming contexts (Configuration, DomainDnsZones); ldap3's `search` leaves
    /// them out (`EntriesOnly`), as the paged search below does, so only entries arrive here.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        let mut ldap = self.ldap().await?;
        let r = ldap
            .with_timeout(self.s.timeout)
            .search(base, scope, filter, self.attrs())
            .await
            .map_err(|e| self.err("search", e))?;
        let (entries, res) = (r.0, r.1);
        if res.rc != 0 && res.rc != rc::SIZE_LIMIT_EXCEEDED {
            return Err(self.result_err(&format!("search {filter}"), res.rc, &res.text));
        }
        self.parse_all(entries)
    }

    fn parse_all(&self, entries: Vec<ldap3::ResultEntry>) -> Result<Vec<RawEntry>, DirectoryError> {
        entries
            .into_iter()
            .map(|e| {
                entry::parse(e).ok_or_else(|| {
                    DirectoryError::Corrupt(format!(
                        "directory {}: the server sent a malformed search entry",
                        self.name
                    ))
                })
            })
            .collect()
    }

    /// The entries answering to an address.
    async fn find(&self, address: &Mailbox) -> Result<Vec<Entry>, DirectoryError> {
        let raw = self
            .search(
                &self.s.base_dn,
                Scope::Subtree,
                &self.address_filter(address),
            )
            .await?;
        Ok(raw.iter().map(|r| Entry::from_raw(r, &self.s)).collect())
    }

    /// The one entry answering to an address (`None` if none; several is an error).
    async fn find_one(&self, address: &Mailbox) -> Result<Option<Entry>, DirectoryError> {
        let mut found = self.find(address).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(DirectoryError::Rejected(format!(
                "directory {}: {n} entries answer to {address} ({}); refusing to guess",
                self.name,
                found
                    .iter()
                    .map(|e| e.dn.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    async fn read_dn(&self, dn: &str) -> Result<Option<Entry>, DirectoryError> {
        let raw = self.search(dn, Scope::Base, "(objectClass=*)").await?;
        Ok(raw.first().map(|r| Entry::from_raw(r, &self.s)))
    }

    /// Every entry with an address and a certificate, read page by page (RFC 2696).
    pub async fn entries_with_certificates(&self) -> Result<Vec<Entry>, DirectoryError> {
        let mut ldap = self.ldap().await?;
        let mut addr = format!("({}=*)", self.s.mail_attr);
        if let Some(p) = &self.s.proxy_attr {
            addr = format!("(|{addr}({p}=*))");
        }
        let filter = self.with_extra(format!(
            "(&{addr}(|({}=*)({}=*)))",
            config::base_name(&self.s.cert_attr),
            config::base_name(&self.s.smime_attr)
        ));
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<'_, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.s.page_size)),
        ];
        let mut stream = ldap
            .streaming_search_with(
                adapters,
                &self.s.base_dn,
                Scope::Subtree,
                &filter,
                self.attrs(),
            )
            .await
            .map_err(|e| self.err("paged search", e))?;
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(e)) => match entry::parse(e) {
                    Some(raw) => out.push(Entry::from_raw(&raw, &self.s)),
                    None => {
                        return Err(DirectoryError::Corrupt(format!(
                            "directory {}: the server sent a malformed search entry",
                            self.name
                        )));
                    }
                },
                Ok(None) => break,
                Err(e) => return Err(self.err("paged search", e)),
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(self.result_err("paged search", res.rc, &res.text));
        }
        Ok(out)
    }

    fn recipient_of(&self, e: &Entry, address: Option<&Mailbox>) -> Option<Recipient> {
        let address = match address {
            Some(a) => a.clone(),
            None => Mailbox::parse(e.primary_address()?).ok()?,
        };
        Some(Recipient {
            address,
            kind: if e.is_contact(&self.s) {
                RecipientKind::Contact
            } else {
                RecipientKind::Mailbox
            },
            certificates: e.certificates(),
        })
    }

    /// The chain for a leaf from `chain_file` (issuer by issuer, root included).
    fn chain_for(&self, pool: &[CertDer], leaf: &CertDer) -> Vec<CertDer> {
        let mut out = Vec::new();
        let mut cur = match certinfo::parse(leaf) {
            Ok(i) => i,
            Err(_) => return out,
        };
        while !cur.self_signed {
            let next = pool.iter().find_map(|c| {
                let i = certinfo::parse(c).ok()?;
                (i.subject == cur.issuer && !out.contains(c)).then(|| (c.clone(), i))
            });
            match next {
                Some((c, i)) => {
                    out.push(c);
                    cur = i;
                }
                None => break,
            }
        }
        out
    }

    fn chain_pool(&self) -> Result<Vec<CertDer>, DirectoryError> {
        if let Some(p) = self.pool.get() {
            return Ok(p.clone());
        }
        let pool = self.read_chain_file()?;
        let _ = self.pool.set(pool.clone());
        Ok(pool)
    }

    fn read_chain_file(&self) -> Result<Vec<CertDer>, DirectoryError> {
        let Some(path) = &self.s.chain_file else {
            return Ok(Vec::new());
        };
        let bytes = std::fs::read(path).map_err(|e| {
            DirectoryError::Config(format!(
                "directory {}: chain_file {}: {e}",
                self.name,
                path.display()
            ))
        })?;
        smimekit_pki::load_certificates(&bytes, &path.display().to_string()).map_err(|e| {
            DirectoryError::Config(format!("directory {}: chain_file: {e}", self.name))
        })
    }

    fn check_sizes(&self, attr: &str, values: &[Vec<u8>]) -> Result<(), DirectoryError> {
        for v in values {
            if v.len() > self.s.max_value_bytes {
                return Err(DirectoryError::Rejected(format!(
                    "directory {}: a {attr} value of {} bytes exceeds the limit of {} bytes per \
                     value (AD rangeUpper; max_value_bytes); nothing was written",
                    self.name,
                    v.len(),
                    self.s.max_value_bytes
                )));
            }
        }
        Ok(())
    }

    /// The target values for the final set `fin` (see [`entry::target`]).
    fn plan(&self, e: Option<&Entry>, fin: &[CertDer]) -> Result<Target, DirectoryError> {
        let pool = self.chain_pool()?;
        let chain = |c: &CertDer| self.chain_for(&pool, c);
        let (certs, smime) = match e {
            Some(e) => (e.certs.as_slice(), e.smime.as_slice()),
            None => (&[][..], &[][..]),
        };
        let t = entry::target(certs, smime, fin, &chain, self.s.write_smime);
        let new_certs: Vec<Vec<u8>> = t
            .certs
            .iter()
            .filter(|v| !certs.contains(v))
            .cloned()
            .collect();
        let new_smime: Vec<Vec<u8>> = t
            .smime
            .iter()
            .filter(|v| !smime.contains(v))
            .cloned()
            .collect();
        self.check_sizes(&self.s.cert_attr, &new_certs)?;
        self.check_sizes(&self.s.smime_attr, &new_smime)?;
        Ok(t)
    }

    /// Applies `t` to the entry in one modify operation, then reads back. Certificate values
    /// are deleted and added one by one, so concurrent writers add beside each other; the
    /// userSMIMECertificate values too where the server can (see `smime_by_value`), else the
    /// attribute is replaced only if the entry is still as it was read (an assertion of its
    /// `entryCSN`). A write another writer overtook is [`Applied::Raced`]: read again and
    /// retry. The read-back checks that what this write added is there and what it removed is
    /// gone (others may have added beside it meanwhile).
    async fn apply(
        &self,
        e: &Entry,
        t: &Target,
        address: &Mailbox,
    ) -> Result<Applied, DirectoryError> {
        use std::sync::atomic::Ordering::Relaxed;
        let cert_attr = self.s.cert_attr.as_bytes().to_vec();
        let smime_attr = self.s.smime_attr.as_bytes().to_vec();
        let missing = |from: &[Vec<u8>], not_in: &[Vec<u8>]| -> Vec<Vec<u8>> {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for v in from {
                if !not_in.contains(v) && !out.contains(v) {
                    out.push(v.clone());
                }
            }
            out
        };
        let del = missing(&e.certs, &t.certs);
        let add = missing(&t.certs, &e.certs);
        let smime_del = missing(&e.smime, &t.smime);
        let smime_add = missing(&t.smime, &e.smime);
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        if !del.is_empty() {
            mods.push(Mod::Delete(
                cert_attr.clone(),
                del.iter().cloned().collect(),
            ));
        }
        if !add.is_empty() {
            mods.push(Mod::Add(cert_attr, add.iter().cloned().collect()));
        }
        let by_value = self.smime_by_value.load(Relaxed);
        let mut assert_csn = None;
        if !smime_del.is_empty() || !smime_add.is_empty() {
            if by_value {
                if !smime_del.is_empty() {
                    mods.push(Mod::Delete(
                        smime_attr.clone(),
                        smime_del.iter().cloned().collect(),
                    ));
                }
                if !smime_add.is_empty() {
                    mods.push(Mod::Add(smime_attr, smime_add.iter().cloned().collect()));
                }
            } else {
                mods.push(Mod::Replace(smime_attr, t.smime.iter().cloned().collect()));
                assert_csn = e.csn.clone();
            }
        }
        if !mods.is_empty() {
            let mut ldap = self.ldap().await?;
            let mut op = ldap.with_timeout(self.s.timeout);
            if let Some(csn) = &assert_csn {
                // ldap3 panics on a filter it cannot parse: the CSN goes in only when it is
                // made of the characters a CSN has (20261203072000.123456Z#000000#000#000000).
                if csn
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '#' | '+' | '-'))
                {
                    let mut control = ldap3::controls::Assertion::new(format!("(entryCSN={csn})"));
                    control.crit = true;
                    op = op.with_controls(control);
                }
            }
            let r = op
                .modify(&e.dn, mods)
                .await
                .map_err(|err| self.err(&format!("modify {}", e.dn), err))?;
            match r.rc {
                0 => {}
                // A value to delete is gone, a value to add is there, the entry changed since
                // it was read: another writer was first.
                rc::ASSERTION_FAILED => {
                    return Ok(Applied::Raced(format!(
                        "modify {}: the entry changed since it was read",
                        e.dn
                    )));
                }
                // Only a race when the entry did change (the same codes name an attribute
                // the schema lacks, say).
                rc::NO_SUCH_ATTRIBUTE | rc::ATTRIBUTE_OR_VALUE_EXISTS
                    if self.read_dn(&e.dn).await?.is_none_or(|now| {
                        !entry::same_values(&now.certs, &e.certs)
                            || !entry::same_values(&now.smime, &e.smime)
                    }) =>
                {
                    return Ok(Applied::Raced(format!(
                        "modify {}: {} {}",
                        e.dn,
                        r.rc,
                        r.text.trim()
                    )));
                }
                rc::INAPPROPRIATE_MATCHING if by_value => {
                    // No equality rule for the attribute here: replace under an assertion.
                    self.smime_by_value.store(false, Relaxed);
                    return Ok(Applied::Raced(format!(
                        "{}: values cannot be changed one by one on this server",
                        self.s.smime_attr
                    )));
                }
                _ => {
                    return Err(self.result_err(
                        &format!("modify {} (nothing was changed)", e.dn),
                        r.rc,
                        &r.text,
                    ));
                }
            }
        }
        let back = self
            .read_dn(&e.dn)
            .await?
            .ok_or_else(|| DirectoryError::ReadBackMismatch {
                address: address.clone(),
                detail: format!("entry {} is gone after the write", e.dn),
            })?;
        let mut problems = Vec::new();
        let check = |attr: &str,
                     have: &[Vec<u8>],
                     added: &[Vec<u8>],
                     removed: &[Vec<u8>],
                     problems: &mut Vec<String>| {
            let absent = added.iter().filter(|v| !have.contains(v)).count();
            let left = removed.iter().filter(|v| have.contains(v)).count();
            if absent + left > 0 {
                problems.push(format!(
                    "{attr}: {absent} value(s) written are missing, {left} removed are still there"
                ));
            }
        };
        check(&self.s.cert_attr, &back.certs, &add, &del, &mut problems);
        check(
            &self.s.smime_attr,
            &back.smime,
            &smime_add,
            &smime_del,
            &mut problems,
        );
        if problems.is_empty() {
            Ok(Applied::Done(back))
        } else {
            Ok(Applied::Raced(format!("{}: {}", e.dn, problems.join("; "))))
        }
    }

    /// The exact read-back of a new entry.
    async fn read_back(
        &self,
        dn: &str,
        t: &Target,
        address: &Mailbox,
    ) -> Result<Entry, DirectoryError> {
        let back = self
            .read_dn(dn)
            .await?
            .ok_or_else(|| DirectoryError::ReadBackMismatch {
                address: address.clone(),
                detail: format!("entry {dn} is gone after the write"),
            })?;
        let mut problems = Vec::new();
        if !entry::same_values(&back.certs, &t.certs) {
            problems.push(format!(
                "{} holds {} value(s), {} intended",
                self.s.cert_attr,
                back.certs.len(),
                t.certs.len()
            ));
        }
        if !entry::same_values(&back.smime, &t.smime) {
            problems.push(format!(
                "{} holds {} value(s), {} intended",
                self.s.smime_attr,
                back.smime.len(),
                t.smime.len()
            ));
        }
        if problems.is_empty() {
            Ok(back)
        } else {
            Err(DirectoryError::ReadBackMismatch {
                address: address.clone(),
                detail: format!("{dn}: {}", problems.join("; ")),
            })
        }
    }

    /// Says that `t` keeps values of `e` it could not read (once per write).
    fn report_unreadable(&self, e: &Entry, t: &Target) {
        if t.unreadable == 0 {
            return;
        }
        let text = format!(
            "directory {}: {} keeps {} {} value(s) that cannot be read as PKCS#7 with a certificate; they were left as they are",
            self.name, e.dn, t.unreadable, self.s.smime_attr
        );
        tracing::warn!(directory = %self.name, dn = %e.dn, unreadable = t.unreadable, "unreadable values kept");
        if let Some(h) = &self.host {
            h.notice(&text);
        }
    }

    /// Creates an external contact holding `t` in one add operation.
    async fn create_contact(&self, address: &Mailbox, t: &Target) -> Result<Entry, DirectoryError> {
        let Some(container) = &self.s.contacts_dn else {
            return Err(DirectoryError::Config(format!(
                "directory {}: {address} has no entry, and creating a contact needs contacts_dn \
                 (the container for external contacts)",
                self.name
            )));
        };
        let addr = address.as_str();
        let dn = format!("cn={},{container}", ldap3::dn_escape(addr));
        let local = addr.split('@').next().unwrap_or(addr);
        let class = match self.s.flavor {
            Flavor::ActiveDirectory => "contact",
            Flavor::Openldap => "inetOrgPerson",
        };
        let one = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
        let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (b"objectClass".to_vec(), one(class)),
            (b"cn".to_vec(), one(addr)),
            (b"sn".to_vec(), one(local)),
            (b"displayName".to_vec(), one(addr)),
            (self.s.mail_attr.as_bytes().to_vec(), one(addr)),
        ];
        if let Some(p) = &self.s.proxy_attr {
            attrs.push((p.as_bytes().to_vec(), one(&format!("SMTP:{addr}"))));
        }
        if !t.certs.is_empty() {
            attrs.push((
                self.s.cert_attr.as_bytes().to_vec(),
                t.certs.iter().cloned().collect(),
            ));
        }
        if !t.smime.is_empty() {
            attrs.push((
                self.s.smime_attr.as_bytes().to_vec(),
                t.smime.iter().cloned().collect(),
            ));
        }
        let mut ldap = self.ldap().await?;
        let r = ldap
            .with_timeout(self.s.timeout)
            .add(&dn, attrs)
            .await
            .map_err(|e| self.err(&format!("add {dn}"), e))?;
        if r.rc == rc::ENTRY_ALREADY_EXISTS && !self.find(address).await?.is_empty() {
            // Another writer created the contact first.
            return Err(DirectoryError::AlreadyExists(address.clone()));
        }
        if r.rc != 0 {
            return Err(self.result_err(&format!("add contact {dn}"), r.rc, &r.text));
        }
        self.read_back(&dn, t, address).await
    }

    /// The write behind publish, publish_removing and unpublish: `fin` computes the final
    /// certificate set from the current one. Another writer overtaking this one (see
    /// [`LdapDirectory::apply`]) means a fresh read and a new plan, up to [`WRITE_TRIES`] times.
    async fn write(
        &self,
        address: &Mailbox,
        create: Option<RecipientKind>,
        fin: impl Fn(Vec<CertDer>) -> Vec<CertDer>,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let mut last = String::new();
        for attempt in 0..WRITE_TRIES {
            if attempt > 0 {
                tokio::time::sleep(retry_wait(attempt)).await;
            }
            match self.find_one(address).await? {
                Some(e) => {
                    let target = self.plan(Some(&e), &fin(e.certificates()))?;
                    self.report_unreadable(&e, &target);
                    match self.apply(&e, &target, address).await? {
                        Applied::Done(back) => return Ok(back.certificates()),
                        Applied::Raced(why) => last = why,
                    }
                }
                None => match create {
                    Some(RecipientKind::Contact) => {
                        let target = self.plan(None, &fin(Vec::new()))?;
                        match self.create_contact(address, &target).await {
                            Ok(e) => return Ok(e.certificates()),
                            // Another writer created it first: write into it.
                            Err(DirectoryError::AlreadyExists(_)) => {
                                last = format!("{address}: the contact was created meanwhile");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Some(RecipientKind::Mailbox) => {
                        return Err(DirectoryError::NotFound(address.clone()));
                    }
                    None => return Err(DirectoryError::NotFound(address.clone())),
                },
            }
        }
        Err(DirectoryError::ReadBackMismatch {
            address: address.clone(),
            detail: format!(
                "other writers kept changing the entry; gave up after {WRITE_TRIES} tries (last: {last})"
            ),
        })
    }

    /// Publishes many certificates, up to `parallel` writes in flight on the one connection
    /// (bulk loads and the benchmark). Stops at the first error.
    pub async fn publish_many(
        &self,
        items: &[(Mailbox, CertDer)],
        mode: PublishMode,
        parallel: usize,
    ) -> Result<usize, DirectoryError> {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut done = 0;
        let mut set = Vec::new();
        for (a, c) in items {
            set.push(async {
                let _permit = sem
                    .acquire()
                    .await
                    .map_err(|e| DirectoryError::Other(e.to_string()))?;
                self.publish(a, RecipientKind::Mailbox, c, mode).await
            });
        }
        // Run them concurrently on this task: all futures share one connection.
        let results = join_all(set).await;
        for r in results {
            r?;
            done += 1;
        }
        Ok(done)
    }
}

/// Polls every future to completion, concurrently, on the current task.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Option<Pin<Box<F>>>> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        out[i] = Some(v);
                        *f = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[async_trait]
impl Directory for LdapDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    /// Unbinds and drops the connection; a later operation would open a new one.
    async fn close(&self) -> Result<(), DirectoryError> {
        let taken = self.conn.lock().await.take();
        if let Some(mut l) = taken
            && !l.is_closed()
        {
            l.unbind().await.map_err(|e| self.err("unbind", e))?;
        }
        Ok(())
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        // Several entries answering to one address is an error naming them, never a merge: a
        // planted entry must not slip its certificate in beside the real recipient's.
        let mut out: Vec<CertDer> = Vec::new();
        if let Some(e) = self.find_one(address).await? {
            for c in e.certificates() {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        Ok(self
            .entries_with_certificates()
            .await?
            .iter()
            .filter_map(|e| self.recipient_of(e, None))
            .collect())
    }

    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        Ok(self
            .find_one(address)
            .await?
            .and_then(|e| self.recipient_of(&e, Some(address))))
    }

    async fn addresses(&self, address: &Mailbox) -> Result<Vec<Mailbox>, DirectoryError> {
        let Some(e) = self.find_one(address).await? else {
            return Ok(Vec::new());
        };
        let mut out = vec![address.clone()];
        // A value that is no mailbox (a malformed proxy address) names no one: skipped.
        for m in e.addresses().iter().filter_map(|a| Mailbox::parse(a).ok()) {
            if !out.contains(&m) {
                out.push(m);
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
        self.publish_removing(address, kind, certificate, mode, &[])
            .await
    }

    async fn publish_removing(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.write(address, Some(kind), |current| {
            let mut fin: Vec<CertDer> = match mode {
                PublishMode::Replace => Vec::new(),
                PublishMode::Merge => current
                    .into_iter()
                    .filter(|c| c == certificate || !remove.contains(c))
                    .collect(),
            };
            if !fin.contains(certificate) {
                fin.push(certificate.clone());
            }
            fin
        })
        .await
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.write(address, None, |current| {
            current.into_iter().filter(|c| c != certificate).collect()
        })
        .await
    }

    async fn recipient_values(&self) -> Result<Option<Vec<RecipientValues>>, DirectoryError> {
        let mut out = Vec::new();
        for e in self.entries_with_certificates().await? {
            let Some(recipient) = self.recipient_of(&e, None) else {
                continue;
            };
            let mut values = Vec::new();
            for v in &e.certs {
                values.push(StoredValue {
                    attribute: config::base_name(&self.s.cert_attr).to_string(),
                    certificates: vec![CertDer::new(v.clone())],
                    preferred: false,
                    problem: certinfo::parse(&CertDer::new(v.clone()))
                        .err()
                        .map(|e| e.to_string()),
                });
            }
            for v in &e.smime {
                let (certificates, problem) = match entry::smime_certificates(v) {
                    Ok(c) => (c, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                values.push(StoredValue {
                    attribute: config::base_name(&self.s.smime_attr).to_string(),
                    certificates,
                    preferred: true,
                    problem,
                });
            }
            let aliases = e
                .addresses()
                .into_iter()
                .filter(|a| !a.eq_ignore_ascii_case(recipient.address.as_str()))
                .collect();
            out.push(RecipientValues {
                recipient,
                aliases,
                location: Some(e.dn.clone()),
                values,
            });
        }
        Ok(Some(out))
    }
}

fn open_factory(name: &str, config: &str) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(Box::new(LdapDirectory::from_config(name, config)?))
}

/// With a host: the bind password comes through the host's secret sources.
fn open_with_host(
    name: &str,
    config: &str,
    host: std::sync::Arc<dyn smimekit_core::plugin::KeyOpener>,
) -> Result<Box<dyn Directory>, DirectoryError> {
    let dir = LdapDirectory::from_config_with(name, config, &|req| host.secret(req))?;
    Ok(Box::new(dir.with_host(host)))
}

inventory::submit! {
    smimekit_core::plugin::DirectoryFactoryWithKeys {
        kind: "ldap",
        open: open_with_host,
    }
}

inventory::submit! {
    DirectoryFactory {
        kind: "ldap",
        description: "LDAP / Active Directory: mail + proxyAddresses lookup, userCertificate + userSMIMECertificate, paged search",
        open: open_factory,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(extra: &str) -> LdapDirectory {
        LdapDirectory::from_config(
            "corp",
            &format!(
                "kind = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"dc=example,dc=org\"\n{extra}"
            ),
        )
        .unwrap()
    }

    /// A server too busy, or a subsystem it needs offline, is "not now" (the host retries);
    /// a refusal is not.
    #[test]
    fn busy_and_unavailable_results_are_busy() {
        let d = directory("");
        for code in [rc::BUSY, rc::UNAVAILABLE] {
            match d.result_err("search (mail=a@example.org)", code, "try later") {
                DirectoryError::Busy {
                    detail,
                    retry_after,
                } => {
                    assert!(detail.contains("directory corp"), "{detail}");
                    assert!(
                        detail.contains(&format!("LDAP result {code}: try later")),
                        "{detail}"
                    );
                    assert_eq!(retry_after, None);
                }
                other => panic!("LDAP {code}: {other:?}"),
            }
        }
        // unwillingToPerform (53), e.g. a read-only replica: an error, not a retry.
        assert!(matches!(
            d.result_err("modify", 53, "operation restricted"),
            DirectoryError::Other(_)
        ));
        assert!(matches!(
            d.result_err("modify", rc::INSUFFICIENT_ACCESS, ""),
            DirectoryError::Rejected(_)
        ));
    }
}
