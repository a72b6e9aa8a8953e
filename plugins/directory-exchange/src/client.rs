//! Auth (client credentials with a client-assertion JWT signed through the `PrivateKey`
//! port) and the InvokeCommand transport: paging, throttling (Retry-After, back-off, a bounded
//! number of tries per request), an adaptive concurrency limit ([`crate::limit`]), typed errors.
//! A write that must not run twice is sent again only after answers saying it did not run.
//! Tokens and assertions are never logged or put in error messages.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use sha2::Digest as _;
use smimekit_core::plugin::{KeyOpenRequest, KeyOpener};
use smimekit_core::{
    DigestAlg, KeyKind, KeyStoreError, PrivateKey, Secret, SecretSource, SignatureScheme,
};
use tokio::sync::Mutex;

use crate::config::{AssertionAlg, AuthMode, Settings, url_host};
use crate::limit::AdaptiveLimit;
use crate::protocol::ResponseFormat;

/// Errors of the Exchange Online client, from the service's `ExNNNN|Type|text` details.
#[derive(Debug, thiserror::Error)]
pub enum ExoError {
    #[error("{cmdlet}: not found: {text}")]
    NotFound { cmdlet: String, text: String },
    #[error("{cmdlet}: already exists: {text}")]
    AlreadyExists { cmdlet: String, text: String },
    #[error("{cmdlet}: invalid value ({id} {kind}): {text}")]
    InvalidValue {
        cmdlet: String,
        id: String,
        kind: String,
        text: String,
    },
    /// Every try of one request was throttled; `retry_after` is the service's last word.
    #[error("{cmdlet}: still throttled after {tries} tries")]
    Throttled {
        cmdlet: String,
        tries: u32,
        retry_after: Option<Duration>,
    },
    /// A write got no answer (timeout, 504): it may or may not have run.
    #[error(
        "{cmdlet}: {cause}; the change may or may not have been made (read it back before sending it again)"
    )]
    Unconfirmed { cmdlet: String, cause: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The app credential cannot be opened (its password is missing or wrong, the key file
    /// is unreadable): a key problem, not the service's.
    #[error("app credential: {0}")]
    Credential(String),
    #[error("{cmdlet}: HTTP {status}: {text}")]
    Service {
        cmdlet: String,
        status: u16,
        text: String,
    },
    #[error("transport: {0}")]
    Transport(String),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// `(ErrorId, exception type, text)` from an error body (§1.6), with the documented fallbacks.
pub fn parse_error_body(body: &str) -> (String, String, String) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return (
            String::new(),
            String::new(),
            body.trim().chars().take(500).collect(),
        );
    };
    let e = &v["error"];
    if let Some(m) = e["details"][0]["message"].as_str() {
        let mut parts = m.splitn(3, '|');
        let a = parts.next().unwrap_or("");
        match (parts.next(), parts.next()) {
            (Some(b), Some(c)) => return (a.into(), b.into(), c.into()),
            _ => return (String::new(), String::new(), m.into()),
        }
    }
    let text = e["innererror"]["internalexception"]["message"]
        .as_str()
        .or_else(|| e["message"].as_str())
        .or_else(|| v["error_description"].as_str())
        .unwrap_or(body);
    (String::new(), String::new(), text.into())
}

fn classify(cmdlet: &str, status: u16, body: &str) -> ExoError {
    let (id, kind, text) = parse_error_body(body);
    let cmdlet = cmdlet.to_string();
    if status == 404 || kind.ends_with("ManagementObjectNotFoundException") {
        return ExoError::NotFound { cmdlet, text };
    }
    if text.contains("already being used") || kind.ends_with("AlreadyExistsException") {
        return ExoError::AlreadyExists { cmdlet, text };
    }
    if status == 400 {
        return ExoError::InvalidValue {
            cmdlet,
            id,
            kind,
            text,
        };
    }
    if status == 401 || status == 403 {
        return ExoError::Auth(format!("{cmdlet}: HTTP {status}: {text}"));
    }
    ExoError::Service {
        cmdlet,
        status,
        text,
    }
}

fn retryable(status: u16, body: &str) -> bool {
    matches!(status, 504) || not_run(status, body)
}

/// Answers that say the request was not run (throttled, refused, not fully received), so that
/// even a write may be sent again; a 504 says nothing about what the service behind did.
fn not_run(status: u16, body: &str) -> bool {
    matches!(status, 429 | 503 | 408)
        || body.starts_with("You have reached the maximum number of concurrent requests per tenant")
}

/// Whether a request may be sent again when its answer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Reads, and writes that set a whole value: running them twice is running them once.
    Safe,
    /// `@{Add=…}`, New-MailContact: only after an answer saying it did not run.
    OnlyIfNotRun,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random GUID-shaped string (v4 layout).
pub fn guid() -> String {
    let mut b = [0u8; 16];
    // A failing OS RNG would leave zeros: the value is a correlation id, not a secret.
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn jitter_ms(max: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    if max == 0 {
        0
    } else {
        u64::from_le_bytes(b) % max
    }
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// Why one token request failed: the assertion's signature (AADSTS700027, worth one more
/// try with another algorithm), or anything else.
enum TokenRefusal {
    Signature(String),
    Other(ExoError),
}

impl TokenRefusal {
    fn text(&self) -> String {
        match self {
            Self::Signature(t) => t.clone(),
            Self::Other(ExoError::Auth(t)) => t.clone(),
            Self::Other(e) => e.to_string(),
        }
    }
}

fn settings_assertion(settings: &Settings) -> AssertionAlg {
    settings.assertion.unwrap_or(AssertionAlg::Ps256)
}

/// The HTTP client of one directory.
pub struct Client {
    pub settings: Settings,
    http: reqwest::Client,
    keys: Arc<dyn KeyOpener>,
    key: Mutex<Option<Arc<dyn PrivateKey>>>,
    token: Mutex<Option<Token>>,
    limit: AdaptiveLimit,
    connection_id: String,
    /// The client-assertion algorithm that worked (unless configured): PS256 first, RS256
    /// after an AADSTS700027.
    assertion: std::sync::Mutex<AssertionAlg>,
    /// Where InvokeCommand goes: the endpoint, or the regional host its front door
    /// redirects to (found once per process, [`Client::base`]).
    route: Mutex<Option<String>>,
    /// Fallbacks taken, for `exchange probe` (also handed to the host as notices).
    notes: std::sync::Mutex<Vec<String>>,
    /// Requests sent, and 429/503 answers met (for reports and benchmarks).
    pub stats: Stats,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: std::sync::atomic::AtomicU64,
    pub throttled: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tenant", &self.settings.tenant)
            .field("endpoint", &self.settings.endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(settings: Settings, keys: Arc<dyn KeyOpener>) -> Result<Self, ExoError> {
        // Redirects are followed by hand (`regional_base`): the bearer token may go only to
        // a host of the endpoint's own cloud, and a POST must stay a POST.
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExoError::Transport(e.to_string()))?;
        let assertion = settings_assertion(&settings);
        Ok(Self {
            limit: AdaptiveLimit::new(settings.concurrency),
            settings,
            http,
            keys,
            key: Mutex::new(None),
            token: Mutex::new(None),
            connection_id: guid(),
            assertion: std::sync::Mutex::new(assertion),
            route: Mutex::new(None),
            notes: std::sync::Mutex::new(Vec::new()),
            stats: Stats::default(),
        })
    }

    /// Records a fallback taken and tells the host.
    /// The host's services (keys, secrets, notices, remembered state).
    pub fn keys(&self) -> &Arc<dyn KeyOpener> {
        &self.keys
    }

    pub fn note(&self, text: String) {
        self.keys.notice(&text);
        self.record(text);
    }

    /// Records a finding for `exchange probe` only (not worth a notice on every run).
    fn record(&self, text: String) {
        if let Ok(mut n) = self.notes.lock()
            && !n.contains(&text)
        {
            n.push(text);
        }
    }

    /// The fallbacks taken so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// The client-assertion algorithm in use now.
    pub fn assertion_alg(&self) -> AssertionAlg {
        self.assertion
            .lock()
            .map(|a| *a)
            .unwrap_or(AssertionAlg::Ps256)
    }

    async fn key(&self) -> Result<Arc<dyn PrivateKey>, ExoError> {
        let mut k = self.key.lock().await;
        if let Some(k) = k.as_ref() {
            return Ok(k.clone());
        }
        // The password comes from the host, in smimekit's one order: certificate_password_env
        // first, then --password-file, SMIMEKIT_PASSWORD (or the PIN variables for a token),
        // and a prompt on a terminal.
        let secret_sources = self
            .settings
            .certificate_password_env
            .iter()
            .map(|var| SecretSource::env("certificate_password_env", var))
            .collect();
        let opened = self
            .keys
            .open_key(&KeyOpenRequest {
                reference: self.settings.certificate.clone(),
                certificate: self.settings.certificate_file.clone(),
                purpose: format!("directory {}", self.settings.name),
                secret_sources,
            })
            .await
            .map_err(|e| match e {
                // The host's message names the key, who needs it and every source tried.
                KeyStoreError::Locked { hint, .. } => ExoError::Credential(hint),
                other => ExoError::Credential(other.to_string()),
            })?;
        if !matches!(opened.kind(), KeyKind::Rsa { .. }) {
            return Err(ExoError::Auth(
                "app certificate: Entra ID client assertions need an RSA key".into(),
            ));
        }
        *k = Some(opened.clone());
        Ok(opened)
    }

    /// The signed client assertion (RFC 7523) for the token endpoint.
    pub async fn client_assertion(&self, alg: AssertionAlg) -> Result<String, ExoError> {
        let key = self.key().await?;
        let der = key.certificate().as_bytes();
        let header = match alg {
            AssertionAlg::Ps256 => json!({"alg": "PS256", "typ": "JWT",
                "x5t#S256": B64URL.encode(sha2::Sha256::digest(der))}),
            AssertionAlg::Rs256 => json!({"alg": "RS256", "typ": "JWT",
                "x5t": B64URL.encode(sha1::Sha1::digest(der))}),
        };
        let now = now_secs();
        let claims = json!({
            "aud": self.settings.token_url(),
            "iss": self.settings.client_id,
            "sub": self.settings.client_id,
            "jti": guid(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let digest = sha2::Sha256::digest(input.as_bytes());
        let scheme = match alg {
            AssertionAlg::Ps256 => SignatureScheme::RsaPss(DigestAlg::Sha256),
            AssertionAlg::Rs256 => SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
        };
        let sig = key
            .sign_digest(scheme, &digest)
            .await
            .map_err(|e| ExoError::Auth(format!("signing the client assertion: {e}")))?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }

    /// A valid access token: the cached one, or a new one (refreshed 5 minutes before expiry).
    async fn token(&self) -> Result<Secret, ExoError> {
        let mut t = self.token.lock().await;
        if let Some(tok) = t.as_ref()
            && Instant::now() < tok.refresh_at
        {
            return Ok(tok.value.clone());
        }
        if self.settings.auth == AuthMode::DeviceCode {
            let (value, expires) = self.device_code_token().await?;
            *t = Some(Token {
                value: value.clone(),
                refresh_at: Instant::now()
                    + Duration::from_secs(expires.saturating_sub(300).max(1)),
            });
            return Ok(value);
        }
        let alg = self.assertion_alg();
        let (value, expires) = match self.client_credentials(alg).await {
            // Entra refuses the signature: with no algorithm configured, RS256 + x5t once
            // (MSAL's pairing; reports differ on whether every tenant takes PS256).
            Err(TokenRefusal::Signature(first))
                if self.settings.assertion.is_none() && alg == AssertionAlg::Ps256 =>
            {
                match self.client_credentials(AssertionAlg::Rs256).await {
                    Ok(ok) => {
                        if let Ok(mut a) = self.assertion.lock() {
                            *a = AssertionAlg::Rs256;
                        }
                        self.note(format!(
                            "directory {}: Entra ID refused the PS256 client assertion ({first}); signed in with RS256 + x5t instead (set assertion = \"rs256\" to skip the first try)",
                            self.settings.name
                        ));
                        ok
                    }
                    Err(TokenRefusal::Other(e)) if !matches!(e, ExoError::Auth(_)) => {
                        return Err(e);
                    }
                    Err(e) => {
                        return Err(ExoError::Auth(format!(
                            "{first}; tried again with RS256 + x5t: {}",
                            e.text()
                        )));
                    }
                }
            }
            Err(TokenRefusal::Signature(t)) => return Err(ExoError::Auth(t)),
            Err(TokenRefusal::Other(e)) => return Err(e),
            Ok(ok) => ok,
        };
        *t = Some(Token {
            value: value.clone(),
            refresh_at: Instant::now() + Duration::from_secs(expires.saturating_sub(300).max(1)),
        });
        // Never the token itself.
        tracing::debug!(tenant = %self.settings.tenant, expires_in = expires, "signed in");
        Ok(value)
    }

    /// One client-credentials token request with an assertion signed by `alg`.
    async fn client_credentials(&self, alg: AssertionAlg) -> Result<(Secret, u64), TokenRefusal> {
        let assertion = self
            .client_assertion(alg)
            .await
            .map_err(TokenRefusal::Other)?;
        let scope = self.settings.scope();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("scope", scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let resp = self
            .http
            .post(self.settings.token_url())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TokenRefusal::Other(ExoError::Transport(format!(
                    "token endpoint: {}",
                    e.without_url()
                )))
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| TokenRefusal::Other(ExoError::Transport(e.to_string())))?;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 {
            // error_description carries the AADSTS code and text, never the token.
            let desc = v["error_description"]
                .as_str()
                .map(|d| d.lines().next().unwrap_or(d).to_string())
                .unwrap_or_else(|| body.chars().take(300).collect());
            let text = format!(
                "token endpoint: HTTP {status} {}: {desc}",
                v["error"].as_str().unwrap_or("")
            );
            let signature = v["error_codes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|n| n.as_u64() == Some(700027)))
                || desc.contains("AADSTS700027")
                || desc.to_ascii_lowercase().contains("signature");
            return Err(if signature {
                TokenRefusal::Signature(text)
            } else {
                TokenRefusal::Other(ExoError::Auth(text))
            });
        }
        let access = v["access_token"].as_str().ok_or_else(|| {
            TokenRefusal::Other(ExoError::Auth("token endpoint: no access_token".into()))
        })?;
        let expires = v["expires_in"].as_u64().unwrap_or(3599);
        Ok((Secret::from(access.to_string()), expires))
    }

    /// Authenticates now (device code: the host shows the administrator the code).
    pub async fn login(&self) -> Result<(), ExoError> {
        self.token().await.map(|_| ())
    }

    async fn form_post(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, Value), ExoError> {
        let resp =
            self.http.post(url).form(form).send().await.map_err(|e| {
                ExoError::Transport(format!("identity platform: {}", e.without_url()))
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| ExoError::Transport(e.to_string()))?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The device-code flow (RFC 8628 as the Microsoft identity platform runs it): show the
    /// message, poll until the administrator has signed in.
    async fn device_code_token(&self) -> Result<(Secret, u64), ExoError> {
        let scope = self.settings.scope();
        let scope = scope.as_str();
        let (status, v) = self
            .form_post(
                &self.settings.device_code_url(),
                &[
                    ("client_id", self.settings.client_id.as_str()),
                    ("scope", scope),
                ],
            )
            .await?;
        let aad = |v: &Value| {
            v["error_description"]
                .as_str()
                .map(|d| d.lines().next().unwrap_or(d).to_string())
                .unwrap_or_default()
        };
        if status != 200 {
            return Err(ExoError::Auth(format!(
                "device code: HTTP {status}: {}",
                aad(&v)
            )));
        }
        let device_code = v["device_code"]
            .as_str()
            .ok_or_else(|| ExoError::Auth("device code: no device_code".into()))?
            .to_string();
        let verification_uri = v["verification_uri"]
            .as_str()
            .unwrap_or("https://microsoft.com/devicelogin")
            .to_string();
        let user_code = v["user_code"].as_str().unwrap_or("").to_string();
        let message = v["message"].as_str().map(String::from).unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}")
        });
        let expires_in = v["expires_in"].as_u64().unwrap_or(900);
        // The user instruction (not a secret) goes to the host, which shows it to a person;
        // this library prints nothing. Nobody to show it to: waiting would be in vain.
        let challenge = smimekit_core::SignInChallenge {
            directory: self.settings.name.clone(),
            message,
            verification_uri,
            user_code,
            expires_in,
        };
        if !self.keys.show_sign_in(&challenge) {
            return Err(ExoError::Auth(
                "device-code sign-in: this host has no frontend to show the code to (sign in through smimekit, or use auth = \"app\")".into(),
            ));
        }
        let mut interval = v["interval"].as_u64().unwrap_or(5);
        let deadline = Instant::now() + Duration::from_secs(expires_in);
        loop {
            if Instant::now() > deadline {
                return Err(ExoError::Auth("device code expired before sign-in".into()));
            }
            tokio::time::sleep(Duration::from_millis(interval.saturating_mul(1000).max(50))).await;
            let (status, v) = self
                .form_post(
                    &self.settings.token_url(),
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("client_id", self.settings.client_id.as_str()),
                        ("device_code", device_code.as_str()),
                    ],
                )
                .await?;
            if status == 200 {
                let access = v["access_token"]
                    .as_str()
                    .ok_or_else(|| ExoError::Auth("token endpoint: no access_token".into()))?;
                return Ok((
                    Secret::from(access.to_string()),
                    v["expires_in"].as_u64().unwrap_or(3599),
                ));
            }
            match v["error"].as_str() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += 5,
                Some(e) => return Err(ExoError::Auth(format!("device code: {e}: {}", aad(&v)))),
                None => return Err(ExoError::Auth(format!("device code: HTTP {status}"))),
            }
        }
    }

    /// The adaptive request limit now (it shrinks while the service throttles).
    pub fn concurrency(&self) -> usize {
        self.limit.current()
    }

    /// Runs one cmdlet that may run twice (a read, or a write of a whole value); returns every
    /// `value` item over all pages.
    pub async fn invoke(&self, cmdlet: &str, params: Value) -> Result<Vec<Value>, ExoError> {
        let format = self.settings.protocol.response_format;
        self.invoke_with(cmdlet, params, Resend::Safe, format).await
    }

    /// [`Client::invoke`] asking for this rendering (`exchange probe` reads both).
    pub async fn invoke_as(
        &self,
        cmdlet: &str,
        params: Value,
        format: ResponseFormat,
    ) -> Result<Vec<Value>, ExoError> {
        self.invoke_with(cmdlet, params, Resend::Safe, format).await
    }

    /// Runs a write that must not run twice (`@{Add=…}`, New-MailContact): it is sent again
    /// only after answers saying it did not run; a lost answer is [`ExoError::Unconfirmed`].
    pub async fn invoke_write(&self, cmdlet: &str, params: Value) -> Result<Vec<Value>, ExoError> {
        let format = self.settings.protocol.response_format;
        self.invoke_with(cmdlet, params, Resend::OnlyIfNotRun, format)
            .await
    }

    async fn invoke_with(
        &self,
        cmdlet: &str,
        params: Value,
        resend: Resend,
        format: ResponseFormat,
    ) -> Result<Vec<Value>, ExoError> {
        let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}});
        let mut url = self.settings.invoke_url(&self.base().await?);
        let mut out = Vec::new();
        let mut pages: u32 = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            pages += 1;
            let page = self.post(cmdlet, &mut url, &body, resend, format).await?;
            if let Some(items) = page["value"].as_array() {
                for item in items {
                    // With X-ResponseFormat: clixml each item is {"_clixml": "<Objs…>"};
                    // a service that ignored the header answers plain objects.
                    match item.get("_clixml").and_then(Value::as_str) {
                        Some(xml) => out.push(crate::clixml::to_json(xml).map_err(|e| {
                            ExoError::Protocol(format!("{cmdlet}: CLIXML answer: {e}"))
                        })?),
                        None => out.push(item.clone()),
                    }
                }
            }
            match page["@odata.nextLink"]
                .as_str()
                .or_else(|| page["odata.nextLink"].as_str())
            {
                Some(next) => {
                    // The next page is fetched with the bearer token: only from the origin
                    // that answered this page (scheme, host and port), on port 443 (§1.5).
                    let next = next.replace(":446/", ":443/");
                    if !same_origin(&url, &next) || !self.may_send_token_to(&next) {
                        return Err(ExoError::Protocol(format!(
                            "{cmdlet}: the next page is at {next:?}, not at the origin of {url:?} that answered: not followed, the token stays there"
                        )));
                    }
                    if pages >= self.settings.max_pages {
                        return Err(ExoError::Protocol(format!(
                            "{cmdlet}: the answer has more than {} pages (max_pages): not followed further",
                            self.settings.max_pages
                        )));
                    }
                    if !seen.insert(next.clone()) {
                        return Err(ExoError::Protocol(format!(
                            "{cmdlet}: the next page {next:?} was already read: the paging loops"
                        )));
                    }
                    url = next;
                }
                None => return Ok(out),
            }
        }
    }

    /// The base URL of InvokeCommand: the endpoint, or its regional host. Found once per
    /// process as ScubaGear and the Go client do (§1.1): a GET of the front door's
    /// `EXOModuleFile`, redirects not followed; a 3xx names the region.
    pub async fn base(&self) -> Result<String, ExoError> {
        let mut route = self.route.lock().await;
        if let Some(r) = route.as_ref() {
            return Ok(r.clone());
        }
        let token = self.token().await?;
        let url = self.settings.module_file_url(&self.settings.endpoint);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token.as_str().unwrap_or_default())
            .header(
                "X-AnchorMailbox",
                self.settings.protocol.anchor_header(&self.settings.tenant),
            )
            .header("client-request-id", guid())
            .send()
            .await
            .map_err(|e| ExoError::Transport(format!("EXOModuleFile: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let base = match location(&resp) {
            Some(loc) => {
                let b = regional_base(&self.settings, &loc).map_err(ExoError::Protocol)?;
                if b != self.settings.endpoint {
                    self.record(format!(
                        "directory {}: the front door redirects this tenant to {b}",
                        self.settings.name
                    ));
                }
                b
            }
            // Throttled or failing: the endpoint for now, and ask again next time.
            None if status == 429 || status >= 500 => return Ok(self.settings.endpoint.clone()),
            // No redirect: the endpoint serves the tenant.
            None => self.settings.endpoint.clone(),
        };
        *route = Some(base.clone());
        Ok(base)
    }

    /// `GET EXOModuleFile` with `CommandName: *` on the tenant's host: the cmdlets the caller
    /// may run (`value.exportedCmdlets`, comma separated; §1.1), for `exchange probe`.
    pub async fn exported_cmdlets(&self) -> Result<Vec<String>, ExoError> {
        let base = self.base().await?;
        let token = self.token().await?;
        let resp = self
            .http
            .get(format!(
                "{}?Version=3.9.0",
                self.settings.module_file_url(&base)
            ))
            .bearer_auth(token.as_str().unwrap_or_default())
            .header("CommandName", "*")
            .header(
                "X-AnchorMailbox",
                self.settings.protocol.anchor_header(&self.settings.tenant),
            )
            .header("client-request-id", guid())
            .send()
            .await
            .map_err(|e| ExoError::Transport(format!("EXOModuleFile: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ExoError::Transport(e.to_string()))?;
        if status != 200 {
            return Err(classify("EXOModuleFile", status, &text));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ExoError::Protocol(format!("EXOModuleFile: not JSON: {e}")))?;
        let items = match &v["value"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut out: Vec<String> = items
            .iter()
            .filter_map(|i| i["exportedCmdlets"].as_str())
            .flat_map(|s| s.split(','))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether `url` is where the bearer token may go: the endpoint's host, a host of its
    /// cloud over https, or (a loopback endpoint) the same loopback host.
    fn may_send_token_to(&self, url: &str) -> bool {
        allowed_target(&self.settings, url)
    }

    async fn post(
        &self,
        cmdlet: &str,
        url: &mut String,
        body: &Value,
        resend: Resend,
        format: ResponseFormat,
    ) -> Result<Value, ExoError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut attempt: u32 = 0;
        let mut reauth = false;
        let mut redirects = 0;
        loop {
            // One slot per try: a request waiting out a Retry-After is not in flight.
            let mut slot = self
                .limit
                .acquire()
                .await
                .map_err(|e| ExoError::Transport(e.to_string()))?;
            let token = self.token().await?;
            let p = &self.settings.protocol;
            self.stats.requests.fetch_add(1, Relaxed);
            slot.sending();
            let resp = self
                .http
                .post(url.as_str())
                .bearer_auth(token.as_str().unwrap_or_default())
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .header("X-CmdletName", cmdlet)
                .header("X-ResponseFormat", format.header())
                .header("X-SerializationLevel", p.serialization_header())
                .header("X-AnchorMailbox", p.anchor_header(&self.settings.tenant))
                .header(
                    "Prefer",
                    format!("odata.maxpagesize={}", self.settings.page_size),
                )
                .header("client-request-id", guid())
                .header("connection-id", &self.connection_id)
                .header("X-ClientApplication", "smimekit")
                .body(body.to_string())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                // Not connected: nothing was sent.
                Err(e) if attempt < self.settings.max_retries && e.is_connect() => {
                    attempt += 1;
                    drop(slot);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) if e.is_timeout() && resend == Resend::OnlyIfNotRun => {
                    slot.throttled();
                    return Err(ExoError::Unconfirmed {
                        cmdlet: cmdlet.into(),
                        cause: format!("no answer within {} s", self.settings.timeout.as_secs()),
                    });
                }
                Err(e) if attempt < self.settings.max_retries && e.is_timeout() => {
                    slot.throttled();
                    attempt += 1;
                    drop(slot);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(ExoError::Transport(format!(
                        "{cmdlet}: {}",
                        e.without_url()
                    )));
                }
            };
            let status = resp.status().as_u16();
            if let Some(loc) = location(&resp) {
                // A regional redirect of InvokeCommand itself: the same POST, to a host the
                // token may go to, remembered for the next requests.
                redirects += 1;
                if redirects > 3 {
                    return Err(ExoError::Protocol(format!("{cmdlet}: too many redirects")));
                }
                let base = regional_base(&self.settings, &loc).map_err(ExoError::Protocol)?;
                *url = self.settings.invoke_url(&base);
                *self.route.lock().await = Some(base);
                continue;
            }
            let retry_after = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0);
            let text = resp
                .text()
                .await
                .map_err(|e| ExoError::Transport(e.to_string()))?;
            tracing::debug!(cmdlet, status, attempt, "InvokeCommand");
            if status == 200 {
                slot.succeeded();
                return serde_json::from_str(&text).map_err(|e| {
                    ExoError::Protocol(format!("{cmdlet}: response is not JSON: {e}"))
                });
            }
            if status == 401 && !reauth {
                // The token may have been revoked or expired early: get a new one once.
                reauth = true;
                *self.token.lock().await = None;
                continue;
            }
            if retryable(status, &text) {
                self.stats.throttled.fetch_add(1, Relaxed);
                slot.throttled();
                if resend == Resend::OnlyIfNotRun && !not_run(status, &text) {
                    return Err(ExoError::Unconfirmed {
                        cmdlet: cmdlet.into(),
                        cause: format!("HTTP {status}"),
                    });
                }
                let retry_after = retry_after.map(|s| Duration::from_secs_f64(s.min(300.0)));
                if attempt >= self.settings.max_retries {
                    return Err(ExoError::Throttled {
                        cmdlet: cmdlet.into(),
                        tries: attempt + 1,
                        retry_after,
                    });
                }
                attempt += 1;
                drop(slot);
                let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                tracing::info!(cmdlet, status, attempt, ?wait, "throttled: trying again");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(classify(cmdlet, status, &text));
        }
    }
}

/// The `Location` of a 3xx answer.
fn location(resp: &reqwest::Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    resp.headers()
        .get("Location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether `next` has the origin of `current` (scheme, host, port with the scheme's default),
/// and names no user: where a page came from is the only place its next page is fetched from
/// with the token.
fn same_origin(current: &str, next: &str) -> bool {
    match (reqwest::Url::parse(current), reqwest::Url::parse(next)) {
        (Ok(a), Ok(b)) => {
            b.username().is_empty()
                && b.password().is_none()
                && matches!(b.scheme(), "https" | "http")
                && a.origin() == b.origin()
        }
        _ => false,
    }
}

fn is_loopback_http(url: &str) -> bool {
    url.starts_with("http://")
}

/// Whether the bearer token may be sent to `url` (see [`regional_base`]).
fn allowed_target(settings: &Settings, url: &str) -> bool {
    let host = url_host(url);
    let endpoint_host = url_host(&settings.endpoint);
    if is_loopback_http(&settings.endpoint) {
        // The configured emulator (config.rs allows http:// only on loopback): its own host.
        return host == endpoint_host
            && (url.starts_with("http://") || url.starts_with("https://"));
    }
    url.starts_with("https://")
        && (host == endpoint_host
            || settings
                .cloud
                .domains()
                .iter()
                .any(|d| host.ends_with(&format!(".{d}"))))
}

/// The InvokeCommand base a redirect's `Location` names. On a real cloud, as ScubaGear
/// builds it: the first DNS label of the `Location` host (the region, `nam13b`) before the
/// configured endpoint's host, over https on the default port, and only when `Location`
/// itself lies in the endpoint's cloud; a loopback endpoint (an emulator) follows `Location`'s
/// origin when it is the same loopback host. Anything else is refused: the bearer token is
/// never sent elsewhere.
pub fn regional_base(settings: &Settings, location: &str) -> Result<String, String> {
    let endpoint = &settings.endpoint;
    if location.starts_with('/') {
        return Ok(endpoint.clone());
    }
    if !allowed_target(settings, location) {
        return Err(format!(
            "the service redirects to {location:?}, which is not a host of the endpoint's cloud ({}): not followed, the token stays here",
            if is_loopback_http(endpoint) {
                format!("loopback {}", url_host(endpoint))
            } else {
                settings.cloud.domains().join(", ")
            }
        ));
    }
    let host = url_host(location);
    if is_loopback_http(endpoint) {
        let (scheme, rest) = location.split_once("://").unwrap_or(("http", location));
        let origin = rest.split(['/', '?', '#']).next().unwrap_or("");
        return Ok(format!("{scheme}://{origin}"));
    }
    let endpoint_host = url_host(endpoint);
    if host == endpoint_host {
        return Ok(endpoint.clone());
    }
    let label = host.split('.').next().unwrap_or("");
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(format!(
            "the service redirects to {location:?}: no region label in its host"
        ));
    }
    Ok(format!("https://{label}.{endpoint_host}"))
}

/// Exponential back-off with jitter: 0.5 s, 1 s, 2 s… capped at 30 s, plus up to 50 %.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
    Duration::from_millis(base + jitter_ms(base / 2))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn next_pages_only_from_the_same_origin() {
        let here = "https://outlook.office365.com/adminapi/beta/t/InvokeCommand";
        for (next, ok) in [
            (
                "https://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=2",
                true,
            ),
            (
                "https://outlook.office365.com:443/adminapi/beta/t/InvokeCommand",
                true,
            ),
            // Another host of the same cloud, another port, another scheme, a user: refused.
            (
                "https://nam13b.outlook.office365.com/adminapi/beta/t/InvokeCommand",
                false,
            ),
            ("https://outlook.office365.com:8443/adminapi", false),
            ("http://outlook.office365.com/adminapi", false),
            ("https://evil@outlook.office365.com/adminapi", false),
            ("https://outlook.office365.com.evil.example/adminapi", false),
            ("//evil.example/adminapi", false),
            ("not a url", false),
        ] {
            assert_eq!(same_origin(here, next), ok, "{next}");
        }
        assert!(same_origin(
            "http://127.0.0.1:4000/adminapi",
            "http://127.0.0.1:4000/adminapi?$skiptoken=1"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:4000/adminapi",
            "http://127.0.0.1:4001/adminapi"
        ));
    }

    fn settings(endpoint: &str) -> Settings {
        Settings::parse(
            "x",
            &format!(
                "kind = \"exchange-online\"\ntenant = \"t.onmicrosoft.com\"\nclient_id = \"a\"\ncertificate = \"/k\"\nendpoint = \"{endpoint}\"\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn redirects_stay_in_the_cloud() {
        let s = settings("https://outlook.office365.com");
        let loc = "https://nam13b.outlook.office365.com:446/AdminApi/v1.0/t/EXOModuleFile";
        assert_eq!(
            regional_base(&s, loc).unwrap(),
            "https://nam13b.outlook.office365.com"
        );
        assert_eq!(
            regional_base(&s, "https://outlook.office365.com:446/x").unwrap(),
            "https://outlook.office365.com"
        );
        for bad in [
            "https://evil.example/AdminApi",
            "http://nam13b.outlook.office365.com/x",
            "https://outlook.office365.com.evil.example/x",
            "https://nam13b.outlook.office365.us/x",
        ] {
            assert!(regional_base(&s, bad).is_err(), "{bad}");
        }
        let gcc = settings("https://outlook.office365.us");
        assert_eq!(
            regional_base(&gcc, "https://gcc02b.outlook.office365.us/x").unwrap(),
            "https://gcc02b.outlook.office365.us"
        );
        assert!(regional_base(&gcc, "https://nam13b.outlook.office365.com/x").is_err());
        // A loopback emulator: the same host, any port; nothing else.
        let emu = settings("http://127.0.0.1:4000");
        assert_eq!(
            regional_base(&emu, "http://127.0.0.1:4001/AdminApi").unwrap(),
            "http://127.0.0.1:4001"
        );
        assert!(regional_base(&emu, "http://localhost:4001/AdminApi").is_err());
        assert!(regional_base(&emu, "https://nam13b.outlook.office365.com/x").is_err());
    }

    #[test]
    fn error_bodies() {
        let b = r#"{"error":{"code":"NotFound","message":"Error executing cmdlet","details":[{"code":"Client","target":"","message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found on 'X'."}]}}"#;
        let (id, kind, text) = parse_error_body(b);
        assert_eq!(id, "Ex6F9304");
        assert!(kind.ends_with("ManagementObjectNotFoundException"));
        assert!(text.contains("couldn't be found"));
        assert!(matches!(
            classify("Get-Mailbox", 404, b),
            ExoError::NotFound { .. }
        ));
        assert_eq!(parse_error_body("plain text").2, "plain text");
        assert!(retryable(429, ""));
        assert!(retryable(504, "") && !not_run(504, ""));
        assert!(not_run(503, "") && not_run(408, ""));
        assert!(backoff(1) >= Duration::from_millis(1000));
        assert_eq!(guid().len(), 36);
    }
}
