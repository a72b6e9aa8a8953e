//! The `[directory.NAME]` table of an Exchange Online directory.
//!
//! ```toml
//! [directory.exo]
//! kind = "exchange-online"
//! tenant = "contoso.onmicrosoft.com"        # or the tenant GUID
//! client_id = "00000000-0000-0000-0000-000000000000"
//! certificate = "app.p12"                   # KEYREF: file or pkcs11: URI; signs the client assertion
//! # certificate_file = "app.pem"            # the certificate, when the KEYREF holds only the key
//! # certificate_password_env = "EXO_P12_PASSWORD" # else --password-file, SMIMEKIT_PASSWORD, a prompt
//! # assertion = "ps256"                     # or "rs256" (x5t SHA-1 header); unset: PS256, then
//! #                                         # RS256 once when Entra answers AADSTS700027
//! # endpoint = "https://outlook.office365.com"  # GCC High outlook.office365.us, DoD outlook-dod.office365.us
//! # cloud = "commercial"                    # or "gcc-high", "dod", "china"; default: the endpoint's
//! # authority = "https://login.microsoftonline.com"  # default: the cloud's
//! # concurrency = 3
//! # max_retries = 8
//! # page_size = 1000
//! # max_pages = 1000                       # pages one read may follow (@odata.nextLink)
//! # contact_name = "{address}"              # New-MailContact -Name; {address} {local} {domain}
//! # [directory.exo.protocol]                # the INFERRED protocol choices, see protocol.rs
//! # byte_encoding = "int-array"             # or "base64"; unset: int-array, the other once on a
//! #                                         # conversion error (remembered for the process)
//! # annotate = true                         # UserCertificate@odata.type; unset: sent, dropped once if refused
//! # response_format = "clixml"              # or "json"
//! # serialization_level = "Full"            # or "Partial"
//! # anchor = "APP"                          # or "UPN"
//! ```

use std::time::Duration;

use serde::Deserialize;
use smimekit_core::DirectoryError;

use crate::protocol::{Cloud, Protocol};

/// How the directory gets its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// App-only: client credentials with a certificate-signed client assertion.
    App,
    /// Delegated: an administrator signs in with the device-code flow (the host shows the
    /// code); the token lives in memory as long as the host keeps the directory open.
    DeviceCode,
}

/// Which JWS algorithm signs the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssertionAlg {
    /// RSASSA-PSS SHA-256 with an `x5t#S256` header (current Microsoft documentation).
    Ps256,
    /// RSASSA-PKCS1-v1_5 SHA-256 with an `x5t` (SHA-1) header (older documentation, MSAL).
    Rs256,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    tenant: String,
    client_id: String,
    #[serde(default)]
    auth: Option<AuthMode>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    certificate_file: Option<String>,
    #[serde(default)]
    certificate_password_env: Option<String>,
    #[serde(default)]
    assertion: Option<AssertionAlg>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    cloud: Option<Cloud>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    max_pages: Option<u32>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    protocol: Protocol,
}

pub const DEFAULT_ENDPOINT: &str = "https://outlook.office365.com";
/// Pages one read may follow unless `max_pages` says otherwise: a million recipients at the
/// largest page size.
pub const DEFAULT_MAX_PAGES: u32 = 1000;
/// §1.7: keep at most 3 concurrent calls per tenant.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory's name (`exo` for `[directory.exo]`), for messages.
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub auth: AuthMode,
    /// The app credential's KEYREF (empty with device-code auth).
    pub certificate: String,
    pub certificate_file: Option<String>,
    pub certificate_password_env: Option<String>,
    /// `None`: PS256, and RS256 once when Entra refuses the signature (AADSTS700027).
    pub assertion: Option<AssertionAlg>,
    pub endpoint: String,
    pub authority: String,
    /// The endpoint's cloud: the token scope, the authority, where a regional redirect may go.
    pub cloud: Cloud,
    pub concurrency: usize,
    pub max_retries: u32,
    pub page_size: u32,
    /// The most pages one cmdlet's answer may have: a service that keeps answering with a
    /// `@odata.nextLink` is refused after this many rather than followed forever.
    pub max_pages: u32,
    pub timeout: Duration,
    pub contact_name: String,
    pub protocol: Protocol,
}

fn cfg(name: &str, msg: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Config(format!("[directory.{name}] {msg}"))
}

/// `https://…`, or `http://` on a loopback address only (tests, emulators).
fn check_url(name: &str, key: &str, url: &str) -> Result<String, DirectoryError> {
    let url = url.trim_end_matches('/').to_string();
    if url.starts_with("https://") {
        return Ok(url);
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split('/').next().unwrap_or("");
        let host = if let Some(h) = host.strip_prefix('[') {
            h.split(']').next().unwrap_or("")
        } else {
            host.rsplit_once(':').map_or(host, |(h, _)| h)
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(url);
        }
        return Err(cfg(
            name,
            format!(
                "{key} {url:?}: plain http:// is accepted only for loopback addresses; use https://"
            ),
        ));
    }
    Err(cfg(name, format!("{key} {url:?} must be an https:// URL")))
}

/// The host of an `http(s)://host[:port]/…` URL, without brackets or port.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(h) = authority.strip_prefix('[') {
        return h.split(']').next().unwrap_or("").to_ascii_lowercase();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_ascii_lowercase()
}

impl Settings {
    pub fn parse(name: &str, text: &str) -> Result<Self, DirectoryError> {
        let raw: Raw = toml::from_str(text).map_err(|e| cfg(name, e.message().trim_end()))?;
        let tenant = raw.tenant.trim().to_string();
        let is_guid =
            tenant.len() == 36 && tenant.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if !is_guid && !tenant.contains('.') {
            return Err(cfg(
                name,
                format!(
                    "tenant {tenant:?} must be the tenant GUID or its domain (contoso.onmicrosoft.com)"
                ),
            ));
        }
        if raw.client_id.trim().is_empty() {
            return Err(cfg(name, "client_id must not be empty"));
        }
        let auth = raw.auth.unwrap_or(AuthMode::App);
        if auth == AuthMode::App && raw.certificate.as_deref().is_none_or(str::is_empty) {
            return Err(cfg(
                name,
                "certificate (the KEYREF of the app credential) is required with app-only auth; or set auth = \"device-code\"",
            ));
        }
        let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=64).contains(&concurrency) {
            return Err(cfg(name, "concurrency must be between 1 and 64"));
        }
        let page_size = raw.page_size.unwrap_or(1000);
        if !(1..=1000).contains(&page_size) {
            return Err(cfg(name, "page_size must be between 1 and 1000"));
        }
        let max_pages = raw.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        if !(1..=1_000_000).contains(&max_pages) {
            return Err(cfg(name, "max_pages must be between 1 and 1000000"));
        }
        let contact_name = raw.contact_name.unwrap_or_else(|| "{address}".into());
        if !contact_name.contains('{') {
            return Err(cfg(
                name,
                "contact_name must use {address}, {local} or {domain} (names must be unique)",
            ));
        }
        let endpoint = check_url(
            name,
            "endpoint",
            raw.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        )?;
        let cloud = raw
            .cloud
            .unwrap_or_else(|| Cloud::of_host(&url_host(&endpoint)));
        Ok(Self {
            name: name.to_string(),
            tenant,
            client_id: raw.client_id.trim().to_string(),
            auth,
            certificate: raw.certificate.unwrap_or_default(),
            certificate_file: raw.certificate_file,
            certificate_password_env: raw.certificate_password_env,
            assertion: raw.assertion,
            endpoint,
            authority: check_url(
                name,
                "authority",
                raw.authority.as_deref().unwrap_or(cloud.authority()),
            )?,
            cloud,
            concurrency,
            max_retries: raw.max_retries.unwrap_or(8),
            page_size,
            max_pages,
            timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(100)),
            contact_name,
            protocol: raw.protocol,
        })
    }

    /// The OAuth token endpoint, which is also the client assertion's audience.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    pub fn device_code_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/devicecode", self.authority, self.tenant)
    }

    /// InvokeCommand on `base` (the endpoint, or the regional host it redirects to).
    pub fn invoke_url(&self, base: &str) -> String {
        format!("{base}/adminapi/beta/{}/InvokeCommand", self.tenant)
    }

    /// The front door's module-file discovery URL (§1.1): its 3xx names the regional host,
    /// and with `CommandName: *` its answer lists the cmdlets the caller may run.
    pub fn module_file_url(&self, base: &str) -> String {
        format!("{base}/AdminApi/v1.0/{}/EXOModuleFile", self.tenant)
    }

    /// The client-credentials scope of the endpoint's cloud.
    pub fn scope(&self) -> String {
        self.cloud.scope(&url_host(&self.endpoint))
    }

    /// The Name a new external contact gets (users pick it in the GAL by this name).
    pub fn contact_name_for(&self, address: &str) -> String {
        contact_name(&self.contact_name, address)
    }
}

/// The name `template` (`contact_name`: `{address}`, `{local}`, `{domain}`) gives a new
/// contact for `address`.
pub fn contact_name(template: &str, address: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    let n = template
        .replace("{address}", address)
        .replace("{local}", local)
        .replace("{domain}", domain);
    // New-MailContact: Name is at most 64 characters.
    n.chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = "kind = \"exchange-online\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"abc\"\ncertificate = \"/k.p12\"\n";

    #[test]
    fn defaults_and_loopback_rule() {
        let s = Settings::parse("x", BASE).unwrap();
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.assertion, None);
        assert_eq!(s.scope(), "https://outlook.office365.com/.default");
        let gcc = format!("{BASE}endpoint = \"https://outlook.office365.us\"\n");
        let s = Settings::parse("x", &gcc).unwrap();
        assert_eq!(s.scope(), "https://outlook.office365.us/.default");
        assert_eq!(s.authority, "https://login.microsoftonline.us");
        let dod = format!("{BASE}endpoint = \"https://outlook-dod.office365.us\"\n");
        let s = Settings::parse("x", &dod).unwrap();
        assert_eq!(s.scope(), "https://outlook-dod.office365.us/.default");
        let pinned = format!("{BASE}endpoint = \"http://127.0.0.1:9\"\ncloud = \"gcc-high\"\n");
        let s = Settings::parse("x", &pinned).unwrap();
        assert_eq!(s.scope(), "https://outlook.office365.us/.default");
        assert_eq!(url_host("http://[::1]:8/x"), "::1");
        assert_eq!(
            url_host("https://Nam13B.outlook.office365.com:446/a"),
            "nam13b.outlook.office365.com"
        );
        let s = Settings::parse("x", BASE).unwrap();
        assert_eq!(
            s.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let ok = format!("{BASE}endpoint = \"http://127.0.0.1:8080\"\n");
        assert!(Settings::parse("x", &ok).is_ok());
        let bad = format!("{BASE}endpoint = \"http://exchange.example.com\"\n");
        let e = Settings::parse("x", &bad).unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
        let bad = format!("{BASE}bogus = 1\n");
        assert!(Settings::parse("x", &bad).is_err());
    }

    #[test]
    fn contact_names() {
        let s = Settings::parse(
            "x",
            &format!("{BASE}contact_name = \"{{local}} ({{domain}})\"\n"),
        )
        .unwrap();
        assert_eq!(
            s.contact_name_for("bob@partner.example"),
            "bob (partner.example)"
        );
    }
}
