//! An Exchange Online emulator for tests and benchmarks, built from
//! shared/docs/exchange-online.md: the Entra token endpoint (client-assertion JWT checked
//! against the registered certificate: signature PS256/RS256, `x5t#S256`/`x5t`, audience,
//! expiry; the scope of the configured cloud) and `POST /adminapi/beta/{tenant}/InvokeCommand`
//! for Get-/Set-Mailbox, Get-/Set-/New-MailContact, Get-/Set-SmimeConfig and Get-Recipient,
//! with Bearer checks, `@odata.nextLink` paging, the §1.6 error bodies, `-WhatIf`, and
//! `GET /AdminApi/v1.0/{tenant}/EXOModuleFile` (the cmdlets the app may run; optionally a 302
//! to a regional listener, as some tenants get).
//!
//! **Strict mode** (the default) models what the module's own schema and code say
//! (exchange-online.md §2.6): a `byte[]` is `Collection(Edm.Byte)`, so base64 where bytes are
//! expected is refused with a conversion error; `@{Remove=…}` of a byte array passed by value
//! removes nothing (reference equality), silently; `NAME@odata.type` annotation keys are
//! accepted; `X-ResponseFormat: clixml` is answered with CLIXML (`<BA>` byte arrays); `Full`
//! JSON renders bytes as `{"Data": [integers]}`; Set-SmimeConfig refuses an oversized or
//! expired store with the service's errors. **Lenient mode** is the emulator as it was before:
//! base64 and integer arrays both accepted, `Remove` by value honoured, annotation keys refused
//! as unknown parameters, JSON only (base64 strings).
//!
//! Throttling: a 429 + Retry-After every K requests, a burst of 429s, or every request from the
//! N-th on (switchable at run time). Two pessimistic switches expose clients that re-send
//! writes: an `@{Add=…}` of a value already there can be stored twice (§2.3 leaves
//! duplicate-add semantics open), and a write can be applied but answered 504, as when a
//! gateway loses the answer.
//! Binds 127.0.0.1:0; tests start it themselves ([`Emulator::start`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::Mutex;

/// How `Full` JSON renders a byte array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonBytes {
    /// `"MIIB…"`.
    Base64,
    /// `{"Data": [48, 130, …]}` (the schema's `ByteArrayType`).
    DataInts,
    /// `[48, 130, …]`.
    Ints,
}

/// The commercial cloud's scope.
pub const COMMERCIAL_SCOPE: &str = "https://outlook.office365.com/.default";

/// What the emulator starts with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub tenant: String,
    pub client_id: String,
    /// The app registration's certificate (DER): assertions must be signed by its key.
    pub app_certificate: Vec<u8>,
    /// Seeded mailboxes (primary SMTP addresses).
    pub mailboxes: Vec<String>,
    /// Seeded contacts: (name, external address).
    pub contacts: Vec<(String, String)>,
    /// Strict mode (see the module documentation); `false` is the lenient, older behaviour.
    pub strict: bool,
    /// Refuse integer arrays and take only base64 for bytes (a tenant that reads `Edm.Binary`,
    /// the opposite of strict mode's reading): clients must fall back.
    pub base64_only: bool,
    /// `@{Add=…}` changes nothing (a service where it would not work for byte arrays either):
    /// clients must notice in the read-back and set the full list.
    pub ignore_adds: bool,
    /// How `Full` JSON renders bytes (default: strict `DataInts`, lenient `Base64`).
    pub json_bytes: Option<JsonBytes>,
    /// The scope a client-credentials request must ask for (the cloud's).
    pub scope: String,
    /// Refuse PS256 client assertions with AADSTS700027 (as some tenants were reported to).
    pub reject_ps256: bool,
    /// The front door answers EXOModuleFile and InvokeCommand with a 302 to a second,
    /// regional listener, which serves the tenant.
    pub regional: bool,
    /// The front door answers EXOModuleFile with a 302 to this `Location` instead.
    pub redirect_to: Option<String>,
    /// The cmdlets EXOModuleFile lists (`CommandName: *`).
    pub exported_cmdlets: Vec<String>,
    /// Set-SmimeConfig refuses a larger store (`SSTFileSizeExceedLimit`, 70,000).
    pub max_sst_bytes: usize,
    /// The time Set-SmimeConfig checks expiry against (seconds since the epoch; default now).
    pub smime_now: Option<i64>,
    /// Answer 429 to every K-th InvokeCommand request (0: never).
    pub throttle_every: u64,
    /// Answer 429 to every request numbered `n` with `from <= n < from + len` (1-based).
    pub throttle_burst: Option<(u64, u64)>,
    /// Answer 429 to every request from this number on (1-based); see
    /// [`Emulator::throttle_from`] to change it while running.
    pub throttle_from: Option<u64>,
    /// The Retry-After value sent with a 429, in seconds.
    pub retry_after: String,
    /// Store an `@{Add=…}` value again even when the object already holds it (the pessimistic
    /// reading of duplicate-add semantics), so that a re-sent write shows as a duplicate.
    pub duplicate_adds: bool,
    /// Apply every K-th write (Set-*, New-MailContact) but answer it 504 Gateway Timeout
    /// (0: never), as when the answer of a write that succeeded is lost.
    pub lose_write_answer_every: u64,
    /// Largest page; `Prefer: odata.maxpagesize` may ask for less.
    pub max_page: usize,
    /// `@odata.nextLink`s point at this base instead of the listener's own (a hostile or
    /// broken service sending clients elsewhere with their token).
    pub next_link_base: Option<String>,
    /// Listings never end: every page, the last included, has a `@odata.nextLink` (a new
    /// `$skiptoken` each time), for clients' page limits.
    pub endless_pages: bool,
    pub token_lifetime: u64,
    /// Device-code flow: the sign-in is approved after this many token polls.
    pub device_approve_after: u32,
}

impl EmulatorConfig {
    pub fn new(tenant: &str, client_id: &str, app_certificate: Vec<u8>) -> Self {
        Self {
            tenant: tenant.into(),
            client_id: client_id.into(),
            app_certificate,
            mailboxes: Vec::new(),
            contacts: Vec::new(),
            strict: true,
            base64_only: false,
            ignore_adds: false,
            json_bytes: None,
            scope: COMMERCIAL_SCOPE.into(),
            reject_ps256: false,
            regional: false,
            redirect_to: None,
            exported_cmdlets: [
                "Get-Mailbox",
                "Set-Mailbox",
                "Get-MailContact",
                "Set-MailContact",
                "New-MailContact",
                "Get-Recipient",
                "Get-SmimeConfig",
                "Set-SmimeConfig",
            ]
            .map(String::from)
            .to_vec(),
            max_sst_bytes: 70_000,
            smime_now: None,
            throttle_every: 0,
            throttle_burst: None,
            throttle_from: None,
            retry_after: "0.05".into(),
            duplicate_adds: false,
            lose_write_answer_every: 0,
            max_page: 1000,
            next_link_base: None,
            endless_pages: false,
            token_lifetime: 3599,
            device_approve_after: 2,
        }
    }
}

#[derive(Debug, Clone)]
struct Object {
    contact: bool,
    name: String,
    address: String,
    certs: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Data {
    /// Keyed by lower-case address.
    objects: BTreeMap<String, Object>,
    issuing_ca: Option<Vec<u8>>,
    expiry: Option<i64>,
    owa: BTreeMap<String, Value>,
    tokens: HashSet<String>,
    /// Pending device codes and their poll counts.
    device_codes: BTreeMap<String, u32>,
}

/// Counters the tests read.
#[derive(Debug, Default)]
pub struct Counters {
    pub invoke: AtomicU64,
    pub throttled: AtomicU64,
    pub tokens: AtomicU64,
    /// Writes applied (Set-*, New-MailContact).
    pub writes: AtomicU64,
    /// Contacts New-MailContact created.
    pub contacts_created: AtomicU64,
    /// Writes applied whose answer was replaced by a 504 (`lose_write_answer_every`).
    pub lost_answers: AtomicU64,
    /// `@{Remove=…}` byte values ignored (strict mode).
    pub ignored_removes: AtomicU64,
    /// Requests refused for a byte encoding or an annotation (400).
    pub refused_encodings: AtomicU64,
    /// Requests answered as CLIXML.
    pub clixml: AtomicU64,
    /// Writes run with -WhatIf (validated, not applied).
    pub whatif: AtomicU64,
    /// EXOModuleFile requests, and redirects the front door answered.
    pub module_file: AtomicU64,
    pub redirects: AtomicU64,
    /// InvokeCommand requests the regional listener served.
    pub regional_invoke: AtomicU64,
}

struct Inner {
    cfg: EmulatorConfig,
    base: String,
    /// The regional listener's base URL, when [`EmulatorConfig::regional`].
    regional: Option<String>,
    data: Mutex<Data>,
    counters: Arc<Counters>,
    /// [`EmulatorConfig::throttle_from`], changeable while running (`u64::MAX`: off).
    throttle_from: AtomicU64,
    /// [`EmulatorConfig::throttle_every`], changeable while running (0: off).
    throttle_every: AtomicU64,
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    pub base_url: String,
    /// The regional listener (with [`EmulatorConfig::regional`]).
    pub regional_url: Option<String>,
    pub counters: Arc<Counters>,
    state: Arc<InnerDebug>,
    _task: tokio::task::JoinHandle<()>,
}

struct InnerDebug(Arc<Inner>);
impl std::fmt::Debug for InnerDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Emulator")
    }
}

impl Emulator {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub async fn start(cfg: EmulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut data = Data::default();
        for m in &cfg.mailboxes {
            let name = m.split('@').next().unwrap_or(m).to_string();
            data.objects.insert(
                m.to_ascii_lowercase(),
                Object {
                    contact: false,
                    name,
                    address: m.clone(),
                    certs: Vec::new(),
                },
            );
        }
        for (n, a) in &cfg.contacts {
            data.objects.insert(
                a.to_ascii_lowercase(),
                Object {
                    contact: true,
                    name: n.clone(),
                    address: a.clone(),
                    certs: Vec::new(),
                },
            );
        }
        let counters = Arc::new(Counters::default());
        let regional_listener = if cfg.regional {
            Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
        } else {
            None
        };
        let regional = match &regional_listener {
            Some(l) => Some(format!("http://{}", l.local_addr()?)),
            None => None,
        };
        let inner = Arc::new(Inner {
            throttle_from: AtomicU64::new(cfg.throttle_from.unwrap_or(u64::MAX)),
            throttle_every: AtomicU64::new(cfg.throttle_every),
            cfg,
            base: base.clone(),
            regional: regional.clone(),
            data: Mutex::new(data),
            counters: counters.clone(),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
            .route("/adminapi/beta/{tenant}/InvokeCommand", post(invoke))
            .route("/AdminApi/v1.0/{tenant}/EXOModuleFile", get(module_file))
            .route("/adminapi/v1.0/{tenant}/EXOModuleFile", get(module_file))
            .with_state(inner.clone());
        if let Some(l) = regional_listener {
            let app = app.clone();
            tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            });
        }
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url: base,
            regional_url: regional,
            counters,
            state: Arc::new(InnerDebug(inner)),
            _task: task,
        })
    }

    /// The certificates stored for an address (DER), `None` when no such recipient.
    pub async fn certificates(&self, address: &str) -> Option<Vec<Vec<u8>>> {
        let d = self.state.0.data.lock().await;
        d.objects
            .get(&address.to_ascii_lowercase())
            .map(|o| o.certs.clone())
    }

    /// Every recipient's address (as stored) and whether it is a contact, in address order.
    pub async fn recipients(&self) -> Vec<(String, bool)> {
        let d = self.state.0.data.lock().await;
        d.objects
            .values()
            .map(|o| (o.address.clone(), o.contact))
            .collect()
    }

    /// The contact name of an address, when it is a contact.
    pub async fn contact_name(&self, address: &str) -> Option<String> {
        let d = self.state.0.data.lock().await;
        d.objects
            .get(&address.to_ascii_lowercase())
            .filter(|o| o.contact)
            .map(|o| o.name.clone())
    }

    /// Throttles every InvokeCommand request from the `n`-th (counted since start) on;
    /// `None` stops throttling.
    pub fn throttle_from(&self, n: Option<u64>) {
        self.state
            .0
            .throttle_from
            .store(n.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Answers 429 to every `k`-th InvokeCommand request from now on (0: never), as
    /// [`EmulatorConfig::throttle_every`] does from the start.
    pub fn throttle_every(&self, k: u64) {
        self.state.0.throttle_every.store(k, Ordering::Relaxed);
    }

    /// The stored SMIMECertificateIssuingCA blob.
    pub async fn issuing_ca(&self) -> Option<Vec<u8>> {
        self.state.0.data.lock().await.issuing_ca.clone()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn aad_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nCorrelation ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        })),
    )
        .into_response()
}

async fn token(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Response {
    let cfg = &s.cfg;
    if tenant != cfg.tenant {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:device_code")
    {
        let code = form.get("device_code").cloned().unwrap_or_default();
        let mut d = s.data.lock().await;
        let Some(polls) = d.device_codes.get_mut(&code) else {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid.",
            );
        };
        *polls += 1;
        if *polls < cfg.device_approve_after {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            );
        }
        d.device_codes.remove(&code);
        return issue_token(&s, &mut d);
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if form.get("scope") != Some(&cfg.scope) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    if form.get("client_id") != Some(&cfg.client_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application not found in the directory.",
        );
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let Some(jwt) = form.get("client_assertion") else {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    let aud = format!("{}/{}/oauth2/v2.0/token", s.base, cfg.tenant);
    if let Err((code, text)) = check_assertion(jwt, cfg, &aud) {
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", code, &text);
    }
    let mut d = s.data.lock().await;
    issue_token(&s, &mut d)
}

fn issue_token(s: &Inner, d: &mut Data) -> Response {
    let mut t = [0u8; 24];
    let _ = openssl::rand::rand_bytes(&mut t);
    let access = format!("eyJ0eXAiOiJKV1QifQ.{}", hex::encode(t));
    d.tokens.insert(access.clone());
    s.counters.tokens.fetch_add(1, Ordering::Relaxed);
    let life = s.cfg.token_lifetime;
    axum::Json(json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": access})).into_response()
}

async fn device_code(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Response {
    if tenant != s.cfg.tenant {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("client_id") != Some(&s.cfg.client_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application not found in the directory.",
        );
    }
    let mut t = [0u8; 8];
    let _ = openssl::rand::rand_bytes(&mut t);
    let code = hex::encode(t);
    s.data.lock().await.device_codes.insert(code.clone(), 0);
    let user_code = code[..8].to_ascii_uppercase();
    axum::Json(json!({
        "device_code": code, "user_code": user_code,
        "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 0,
        "message": format!("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

fn check_assertion(jwt: &str, cfg: &EmulatorConfig, aud: &str) -> Result<(), (u32, String)> {
    let malformed = |w: &str| (50027u32, format!("JWT token is invalid or malformed: {w}."));
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts.as_slice() else {
        return Err(malformed("three parts"));
    };
    let header: Value = B64URL
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("header"))?;
    let claims: Value = B64URL
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("claims"))?;
    let sig = B64URL.decode(sig).map_err(|_| malformed("signature"))?;
    let der = &cfg.app_certificate;
    let key_missing = || {
        (
            700027u32,
            "Client assertion failed signature validation.".to_string(),
        )
    };
    let alg = header["alg"].as_str().unwrap_or("");
    if alg == "PS256" && cfg.reject_ps256 {
        return Err((
            700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value.]".into(),
        ));
    }
    let thumb_ok = match alg {
        "PS256" => header["x5t#S256"].as_str() == Some(&B64URL.encode(sha2::Sha256::digest(der))),
        "RS256" => {
            header["x5t"].as_str() == Some(&B64URL.encode(sha1::Sha1::digest(der)))
                || header["x5t#S256"].as_str() == Some(&B64URL.encode(sha2::Sha256::digest(der)))
        }
        _ => return Err(malformed("unsupported alg")),
    };
    if !thumb_ok {
        return Err((
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found.]"
                .into(),
        ));
    }
    let cert = openssl::x509::X509::from_der(der).map_err(|_| key_missing())?;
    let pkey = cert.public_key().map_err(|_| key_missing())?;
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pkey)
        .map_err(|_| key_missing())?;
    if alg == "PS256" {
        v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
            .map_err(|_| key_missing())?;
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
            .map_err(|_| key_missing())?;
        v.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
            .map_err(|_| key_missing())?;
    }
    let input = format!("{h}.{c}");
    v.update(input.as_bytes()).map_err(|_| key_missing())?;
    if !v.verify(&sig).unwrap_or(false) {
        return Err((
            700027,
            "Client assertion failed signature validation.".into(),
        ));
    }
    if claims["aud"].as_str() != Some(aud) {
        return Err((
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claims["aud"].as_str().unwrap_or("")
            ),
        ));
    }
    if claims["iss"].as_str() != Some(&cfg.client_id)
        || claims["sub"].as_str() != Some(&cfg.client_id)
    {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    let (Some(nbf), Some(exp)) = (claims["nbf"].as_i64(), claims["exp"].as_i64()) else {
        return Err(malformed("nbf/exp"));
    };
    let t = now();
    if exp < t || nbf > t + 300 {
        return Err((
            700024,
            "Client assertion is not within its valid time range.".into(),
        ));
    }
    Ok(())
}

fn exo_error(status: StatusCode, code: &str, id: &str, typ: &str, text: &str) -> Response {
    let short = typ.rsplit('.').next().unwrap_or(typ).to_string();
    let mut r = (
        status,
        axum::Json(json!({
            "error": {"code": code, "message": "Error executing cmdlet",
                "details": [{"code": "Client", "target": "", "message": format!("{id}|{typ}|{text}")}],
                "innererror": {"message": "Error executing cmdlet", "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException", "stacktrace": "",
                    "internalexception": {"message": "Exception of type 'Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException' was thrown.",
                        "type": "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException", "stacktrace": ""}}},
            "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": []
        })),
    )
        .into_response();
    if let Ok(v) = short.parse() {
        r.headers_mut().insert("X-ExceptionType", v);
    }
    r
}

fn not_found(ident: &str, mailbox: bool) -> Response {
    let (id, text) = if mailbox {
        (
            "Ex41BAF5",
            format!("The specified mailbox Identity:\"{ident}\" doesn't exist."),
        )
    } else {
        (
            "Ex6F9304",
            format!(
                "The operation couldn't be performed because object '{ident}' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'."
            ),
        )
    };
    exo_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        id,
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        &text,
    )
}

fn bad_value(text: &str) -> Response {
    exo_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Ex2B2A11",
        "Microsoft.Exchange.Management.Tasks.InvalidValueException",
        text,
    )
}

/// A value that could not be converted to bytes.
struct Unconvertible {
    /// The offending JSON, shortened.
    value: String,
}

/// The 400 a `byte[]` parameter in the wrong form gets (INFERRED wording): the OData reader's
/// when the parameter was annotated with its type, else PowerShell's parameter binder's.
fn conversion_refused(s: &Inner, param: &str, annotated: bool, u: &Unconvertible) -> Response {
    s.counters.refused_encodings.fetch_add(1, Ordering::Relaxed);
    if annotated {
        exo_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "",
            "Microsoft.OData.ODataException",
            &format!(
                "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartArray' node was expected. (property 'Data' of type 'Exchange.ByteArrayType' in parameter '{param}')"
            ),
        )
    } else {
        exo_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "",
            "System.Management.Automation.ParameterBindingException",
            &format!(
                "Cannot bind parameter '{param}'. Cannot convert value \"{}\" to type \"System.Byte\". Error: \"Input string was not in a correct format.\"",
                u.value
            ),
        )
    }
}

fn short(v: &Value) -> String {
    let t = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    t.chars().take(24).collect()
}

/// Which forms a `byte[]` parameter may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// `{"Data": [integers]}` or `[integers]` only (the schema's `Collection(Edm.Byte)`).
    Ints,
    /// Base64 only.
    Base64,
    /// Both (lenient).
    Both,
}

fn accept(cfg: &EmulatorConfig) -> Accept {
    if cfg.base64_only {
        Accept::Base64
    } else if cfg.strict {
        Accept::Ints
    } else {
        Accept::Both
    }
}

/// One `byte[]` parameter value, bare or inside `Data`.
fn bytes(v: &Value, strict: Accept) -> Result<Vec<u8>, Unconvertible> {
    let bad = || Unconvertible { value: short(v) };
    match v {
        Value::String(s) if strict != Accept::Ints => B64.decode(s).map_err(|_| bad()),
        Value::Object(o) => match o.get("Data") {
            Some(d) => bytes(d, strict),
            None => Err(bad()),
        },
        Value::Array(_) if strict == Accept::Base64 => Err(bad()),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(bad)
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// A list of `byte[]` values (a single value is a list of one).
fn byte_list(v: &Value, strict: Accept) -> Result<Vec<Vec<u8>>, Unconvertible> {
    match v {
        Value::Array(a) if a.iter().all(|x| !x.is_number()) => {
            a.iter().map(|x| bytes(x, strict)).collect()
        }
        Value::Null => Ok(Vec::new()),
        other => bytes(other, strict).map(|b| vec![b]),
    }
}

fn ci<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// `@{Add=…; Remove=…}` (also `+`/`-`, any case): a hashtable rather than a value.
fn hashtable(m: &serde_json::Map<String, Value>) -> Option<(Option<&Value>, Option<&Value>)> {
    let add = ci(m, "Add").or_else(|| m.get("+"));
    let rem = ci(m, "Remove").or_else(|| m.get("-"));
    let tagged = m
        .get("@odata.type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with("GenericHashTable"));
    (tagged || add.is_some() || rem.is_some()).then_some((add, rem))
}

/// A property value as the service renders it, before JSON or CLIXML.
#[derive(Debug, Clone)]
enum Prop {
    S(String),
    B(bool),
    I(i64),
    Nil,
    Bytes(Vec<u8>),
    ByteList(Vec<Vec<u8>>),
    StrList(Vec<String>),
    Date(i64),
}

impl Prop {
    fn from_json(v: &Value) -> Self {
        match v {
            Value::Bool(b) => Prop::B(*b),
            Value::Number(n) => Prop::I(n.as_i64().unwrap_or(0)),
            Value::String(s) => Prop::S(s.clone()),
            Value::Null => Prop::Nil,
            other => Prop::S(other.to_string()),
        }
    }
}

/// How an answer is rendered.
#[derive(Debug, Clone, Copy)]
struct Rendering {
    clixml: bool,
    full: bool,
    json_bytes: JsonBytes,
}

fn recipient_props(o: &Object) -> Vec<(String, Prop)> {
    let mut v = vec![
        ("Name".to_string(), Prop::S(o.name.clone())),
        ("DisplayName".into(), Prop::S(o.name.clone())),
        ("Alias".into(), Prop::S(o.name.replace(' ', ""))),
        ("PrimarySmtpAddress".into(), Prop::S(o.address.clone())),
        (
            "EmailAddresses".into(),
            Prop::StrList(vec![format!("SMTP:{}", o.address)]),
        ),
        (
            "RecipientTypeDetails".into(),
            Prop::S(
                if o.contact {
                    "MailContact"
                } else {
                    "UserMailbox"
                }
                .into(),
            ),
        ),
        ("UserCertificate".into(), Prop::ByteList(o.certs.clone())),
        ("UserSMimeCertificate".into(), Prop::ByteList(Vec::new())),
    ];
    if o.contact {
        v.push((
            "ExternalEmailAddress".into(),
            Prop::S(format!("SMTP:{}", o.address)),
        ));
    }
    v
}

fn json_bytes(b: &[u8], r: Rendering) -> Value {
    if !r.full {
        return json!("System.Byte[]");
    }
    match r.json_bytes {
        JsonBytes::Base64 => json!(B64.encode(b)),
        JsonBytes::DataInts => json!({"Data": b}),
        JsonBytes::Ints => json!(b),
    }
}

/// The JSON form of an object, with the per-property `@odata.type` annotations (§1.4).
fn to_json(props: &[(String, Prop)], r: Rendering) -> Value {
    let mut m = serde_json::Map::new();
    for (k, p) in props {
        let v = match p {
            Prop::S(s) => json!(s),
            Prop::B(b) => json!(b),
            Prop::I(i) => json!(i),
            Prop::Nil => Value::Null,
            Prop::Date(t) => json!(t),
            Prop::Bytes(b) => json_bytes(b, r),
            Prop::StrList(l) => {
                m.insert(format!("{k}@odata.type"), json!("#Collection(String)"));
                json!(l)
            }
            Prop::ByteList(l) => {
                let typed = r.full && r.json_bytes == JsonBytes::DataInts;
                m.insert(
                    format!("{k}@odata.type"),
                    json!(if typed {
                        "#Collection(Exchange.ByteArrayType)"
                    } else {
                        "#Collection(String)"
                    }),
                );
                Value::Array(l.iter().map(|b| json_bytes(b, r)).collect())
            }
        };
        m.insert(k.clone(), v);
    }
    Value::Object(m)
}

/// XML text, with the characters XML cannot carry escaped as PowerShell does (`_xHHHH_`).
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 => out.push_str(&format!("_x{:04X}_", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Seconds since the epoch as `2026-01-01T00:00:00Z`.
fn iso(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The CLIXML form of an object (`[MS-PSRP]` 2.2.5: `<BA>` byte arrays, `<LST>` lists).
fn to_clixml(props: &[(String, Prop)], type_name: &str, to_string: &str) -> String {
    let mut x = String::from(
        "<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">",
    );
    x.push_str(&format!(
        "<Obj RefId=\"0\"><TN RefId=\"0\"><T>Deserialized.{type_name}</T><T>Deserialized.System.Object</T></TN><ToString>{}</ToString><Props>",
        xml_text(to_string)
    ));
    let mut ref_id = 1;
    for (k, p) in props {
        let n = xml_text(k);
        match p {
            Prop::S(s) => x.push_str(&format!("<S N=\"{n}\">{}</S>", xml_text(s))),
            Prop::B(b) => x.push_str(&format!("<B N=\"{n}\">{b}</B>")),
            Prop::I(i) => x.push_str(&format!("<I32 N=\"{n}\">{i}</I32>")),
            Prop::Nil => x.push_str(&format!("<Nil N=\"{n}\" />")),
            Prop::Date(t) => x.push_str(&format!("<DT N=\"{n}\">{}</DT>", iso(*t))),
            Prop::Bytes(b) => x.push_str(&format!("<BA N=\"{n}\">{}</BA>", B64.encode(b))),
            Prop::ByteList(l) => {
                x.push_str(&format!(
                    "<Obj N=\"{n}\" RefId=\"{ref_id}\"><TN RefId=\"{ref_id}\"><T>Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[System.Byte[], System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]]</T><T>Deserialized.System.Object</T></TN><LST>"
                ));
                for b in l {
                    x.push_str(&format!("<BA>{}</BA>", B64.encode(b)));
                }
                x.push_str("</LST></Obj>");
                ref_id += 1;
            }
            Prop::StrList(l) => {
                x.push_str(&format!(
                    "<Obj N=\"{n}\" RefId=\"{ref_id}\"><TN RefId=\"{ref_id}\"><T>Deserialized.Microsoft.Exchange.Data.ProxyAddressCollection</T><T>Deserialized.System.Object</T></TN><LST>"
                ));
                for s in l {
                    x.push_str(&format!("<S>{}</S>", xml_text(s)));
                }
                x.push_str("</LST></Obj>");
                ref_id += 1;
            }
        }
    }
    x.push_str("</Props></Obj></Objs>");
    x
}

/// One object of an answer in the rendering asked for.
fn render_object(
    s: &Inner,
    props: &[(String, Prop)],
    type_name: &str,
    to_string: &str,
    r: Rendering,
) -> Value {
    if r.clixml {
        s.counters.clixml.fetch_add(1, Ordering::Relaxed);
        json!({"_clixml": to_clixml(props, type_name, to_string)})
    } else {
        to_json(props, r)
    }
}

fn render_recipient(s: &Inner, o: &Object, r: Rendering) -> Value {
    let t = if o.contact {
        "Microsoft.Exchange.Data.Directory.Management.MailContact"
    } else {
        "Microsoft.Exchange.Data.Directory.Management.Mailbox"
    };
    render_object(s, &recipient_props(o), t, &o.name, r)
}

fn ok(value: Vec<Value>, next: Option<String>, tenant: &str, base: &str) -> Response {
    ok_warning(value, next, tenant, base, None)
}

fn ok_warning(
    value: Vec<Value>,
    next: Option<String>,
    tenant: &str,
    base: &str,
    warning: Option<String>,
) -> Response {
    let mut body = json!({
        "@odata.context": format!("{base}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)"),
        "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": warning.into_iter().collect::<Vec<_>>(),
        "value": value,
    });
    if let Some(n) = next {
        body["@odata.nextLink"] = json!(n);
    }
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(
        "Rate-Limit-Limit",
        axum::http::HeaderValue::from_static("30000"),
    );
    r
}

/// The answer to a write run with `-WhatIf`: validated, not applied (§1.4).
fn what_if(s: &Inner, text: String, tenant: &str) -> Response {
    s.counters.whatif.fetch_add(1, Ordering::Relaxed);
    let mut r = ok(Vec::new(), None, tenant, &s.base);
    let body = json!({
        "@odata.context": format!("{}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)", s.base),
        "@adminapi.confirmationmessage": text,
        "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": [],
        "value": [],
    });
    *r.body_mut() = axum::body::Body::from(body.to_string());
    r
}

/// The answer to a write that was applied: `answer`, or, for every K-th write
/// (`lose_write_answer_every`), a 504 as from a gateway that lost it.
fn applied(s: &Inner, answer: Response) -> Response {
    let w = s.counters.writes.fetch_add(1, Ordering::Relaxed) + 1;
    let k = s.cfg.lose_write_answer_every;
    if k > 0 && w.is_multiple_of(k) {
        s.counters.lost_answers.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response();
    }
    answer
}

fn bearer_ok(d: &Data, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|b| d.tokens.contains(b))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("WWW-Authenticate", "Bearer error=\"invalid_token\"")],
        "",
    )
        .into_response()
}

/// Whether a request came to the front door (not the regional listener).
fn at_front_door(s: &Inner, headers: &HeaderMap) -> bool {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    s.base.ends_with(&format!("//{host}"))
}

/// Where the front door sends this tenant, if anywhere.
fn front_door_redirect(s: &Inner, headers: &HeaderMap) -> Option<String> {
    if !at_front_door(s, headers) {
        return None;
    }
    s.cfg.redirect_to.clone().or_else(|| s.regional.clone())
}

fn found(location: &str) -> Response {
    (StatusCode::FOUND, [("Location", location.to_string())], "").into_response()
}

/// `GET /AdminApi/v1.0/{tenant}/EXOModuleFile`: the cmdlets the app may run (with
/// `CommandName: *`), or the front door's 302 to the tenant's region.
async fn module_file(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.counters.module_file.fetch_add(1, Ordering::Relaxed);
    if !bearer_ok(&*s.data.lock().await, &headers) {
        return unauthorized();
    }
    if let Some(target) = front_door_redirect(&s, &headers) {
        s.counters.redirects.fetch_add(1, Ordering::Relaxed);
        let location = if s.cfg.redirect_to.is_some() {
            target
        } else {
            format!("{target}/AdminApi/v1.0/{tenant}/EXOModuleFile")
        };
        return found(&location);
    }
    axum::Json(json!({
        "@odata.context": format!("{}/adminapi/v1.0/{tenant}/$metadata#EXOModuleFile", s.base),
        "value": [{"exportedCmdlets": s.cfg.exported_cmdlets.join(","), "exportedAliases": ""}],
    }))
    .into_response()
}

async fn invoke(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let cfg = &s.cfg;
    {
        let d = s.data.lock().await;
        if !bearer_ok(&d, &headers) {
            return unauthorized();
        }
    }
    if let Some(target) = front_door_redirect(&s, &headers) {
        s.counters.redirects.fetch_add(1, Ordering::Relaxed);
        return found(&format!("{target}/adminapi/beta/{tenant}/InvokeCommand"));
    }
    if !at_front_door(&s, &headers) {
        s.counters.regional_invoke.fetch_add(1, Ordering::Relaxed);
    }
    let n = s.counters.invoke.fetch_add(1, Ordering::Relaxed) + 1;
    if tenant != cfg.tenant {
        return exo_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "",
            "Microsoft.Exchange.Configuration.CmdletProxyException",
            &format!("Tenant {tenant} not found"),
        );
    }
    if headers.get("x-anchormailbox").is_none() {
        return bad_value("X-AnchorMailbox header is required.");
    }
    let in_burst = cfg
        .throttle_burst
        .is_some_and(|(from, len)| n >= from && n < from.saturating_add(len));
    let every = s.throttle_every.load(Ordering::Relaxed);
    if (every > 0 && n % every == 0) || in_burst || n >= s.throttle_from.load(Ordering::Relaxed) {
        s.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", cfg.retry_after.clone())],
            "Too many requests, please retry after the interval.",
        )
            .into_response();
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return bad_value("The request body is not valid JSON.");
    };
    let cmdlet = req["CmdletInput"]["CmdletName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let empty = serde_json::Map::new();
    let params = req["CmdletInput"]["Parameters"]
        .as_object()
        .unwrap_or(&empty);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let r = Rendering {
        clixml: cfg.strict
            && header("x-responseformat").is_some_and(|f| f.eq_ignore_ascii_case("clixml")),
        full: header("x-serializationlevel") == Some("Full"),
        json_bytes: cfg.json_bytes.unwrap_or(if cfg.strict {
            JsonBytes::DataInts
        } else {
            JsonBytes::Base64
        }),
    };
    let page = header("prefer")
        .and_then(|v| v.split("odata.maxpagesize=").nth(1))
        .and_then(|v| v.trim().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(cfg.max_page)
        .clamp(1, cfg.max_page);
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ident = ci(params, "Identity")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let whatif = ci(params, "WhatIf").is_some_and(|v| v.as_bool() == Some(true));
    // Strict: `NAME@odata.type` keys annotate a parameter; lenient (as before): unknown names.
    let annotated = |k: &str| {
        params
            .keys()
            .any(|a| a.eq_ignore_ascii_case(&format!("{k}@odata.type")))
    };
    let skip_param = |k: &str| {
        ["Identity", "Confirm", "WhatIf"]
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
            || (cfg.strict && k.contains("@odata.type"))
    };
    let mut d = s.data.lock().await;
    match cmdlet.as_str() {
        "Get-Mailbox" | "Get-MailContact" | "Get-Recipient" => {
            let want = |o: &Object| match cmdlet.as_str() {
                "Get-Mailbox" => !o.contact,
                "Get-MailContact" => o.contact,
                _ => true,
            };
            if let Some(id) = ident {
                let found = d.objects.values().find(|o| {
                    want(o)
                        && (o.address.eq_ignore_ascii_case(&id) || o.name.eq_ignore_ascii_case(&id))
                });
                return match found {
                    Some(o) => ok(vec![render_recipient(&s, o, r)], None, &tenant, &s.base),
                    None => not_found(&id, cmdlet == "Get-Mailbox"),
                };
            }
            let limit = ci(params, "ResultSize")
                .and_then(Value::as_u64)
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
            let all: Vec<&Object> = d.objects.values().filter(|o| want(o)).take(limit).collect();
            let items: Vec<Value> = all
                .iter()
                .skip(skip)
                .take(page)
                .map(|o| render_recipient(&s, o, r))
                .collect();
            let next = (cfg.endless_pages || skip + page < all.len()).then(|| {
                format!(
                    "{}/adminapi/beta/{tenant}/InvokeCommand?$skiptoken={}",
                    cfg.next_link_base.as_deref().unwrap_or(&s.base),
                    skip + page
                )
            });
            ok(items, next, &tenant, &s.base)
        }
        "Set-Mailbox" | "Set-MailContact" => {
            let Some(id) = ident else {
                return bad_value("Identity is required.");
            };
            let contact = cmdlet == "Set-MailContact";
            let Some(o) = d.objects.values_mut().find(|o| {
                o.contact == contact
                    && (o.address.eq_ignore_ascii_case(&id) || o.name.eq_ignore_ascii_case(&id))
            }) else {
                return not_found(&id, !contact);
            };
            let mut certs = o.certs.clone();
            for (k, v) in params {
                if skip_param(k) {
                    continue;
                }
                if !k.eq_ignore_ascii_case("UserCertificate")
                    && !k.eq_ignore_ascii_case("UserSMimeCertificate")
                {
                    return bad_value(&format!(
                        "A parameter cannot be found that matches parameter name '{k}'."
                    ));
                }
                let ann = annotated(k);
                match v {
                    Value::Object(m) if hashtable(m).is_some() => {
                        let (add, rem) = hashtable(m).unwrap_or((None, None));
                        let ann = ann
                            || m.keys()
                                .any(|x| x.contains("@odata.type") && x != "@odata.type");
                        let add = match add.map(|v| byte_list(v, accept(cfg))).transpose() {
                            Ok(a) => a.unwrap_or_default(),
                            Err(u) => return conversion_refused(&s, k, ann, &u),
                        };
                        let rem = match rem.map(|v| byte_list(v, accept(cfg))).transpose() {
                            Ok(a) => a.unwrap_or_default(),
                            Err(u) => return conversion_refused(&s, k, ann, &u),
                        };
                        if k.eq_ignore_ascii_case("UserSMimeCertificate") {
                            continue;
                        }
                        if cfg.strict {
                            // MultiValuedProperty.Remove compares byte[] by reference: a value
                            // that came over the wire is never found.
                            s.counters
                                .ignored_removes
                                .fetch_add(rem.len() as u64, Ordering::Relaxed);
                        } else {
                            certs.retain(|c| !rem.contains(c));
                        }
                        for a in add.into_iter().filter(|_| !cfg.ignore_adds) {
                            if cfg.duplicate_adds || !certs.contains(&a) {
                                certs.push(a);
                            }
                        }
                    }
                    other => match byte_list(other, accept(cfg)) {
                        Ok(list) => {
                            if k.eq_ignore_ascii_case("UserCertificate") {
                                certs = list;
                            }
                        }
                        Err(u) => return conversion_refused(&s, k, ann, &u),
                    },
                }
            }
            if whatif {
                return what_if(
                    &s,
                    format!(
                        "What if: Setting {} \"{id}\".",
                        if contact { "mail contact" } else { "mailbox" }
                    ),
                    &tenant,
                );
            }
            let warning = (cfg.strict && certs == o.certs).then(|| {
                format!("The command completed successfully but no settings of '{id}' have been modified.")
            });
            o.certs = certs;
            applied(&s, ok_warning(Vec::new(), None, &tenant, &s.base, warning))
        }
        "New-MailContact" => {
            let name = ci(params, "Name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let ext = ci(params, "ExternalEmailAddress")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let ext = ext
                .strip_prefix("SMTP:")
                .or_else(|| ext.strip_prefix("smtp:"))
                .unwrap_or(&ext)
                .to_string();
            if name.is_empty() || name.chars().count() > 64 || !ext.contains('@') {
                return bad_value(
                    "Name (at most 64 characters) and ExternalEmailAddress are required.",
                );
            }
            if d.objects
                .values()
                .any(|o| o.name.eq_ignore_ascii_case(&name))
            {
                return exo_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Ex94914C",
                    "Microsoft.Exchange.Management.Tasks.ADObjectAlreadyExistsException",
                    &format!("The name \"{name}\" is already being used. Please try another name."),
                );
            }
            if d.objects.contains_key(&ext.to_ascii_lowercase()) {
                return exo_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "ExB2F4F1",
                    "Microsoft.Exchange.Data.Directory.ProxyAddressExistsException",
                    &format!(
                        "The proxy address \"SMTP:{ext}\" is already being used by \"EURPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{tenant}/{ext}\". Please choose another proxy address."
                    ),
                );
            }
            let o = Object {
                contact: true,
                name,
                address: ext.clone(),
                certs: Vec::new(),
            };
            let v = render_recipient(&s, &o, r);
            d.objects.insert(ext.to_ascii_lowercase(), o);
            s.counters.contacts_created.fetch_add(1, Ordering::Relaxed);
            applied(&s, ok(vec![v], None, &tenant, &s.base))
        }
        "Get-SmimeConfig" => {
            let mut props: Vec<(String, Prop)> = vec![
                ("Identity".into(), Prop::S("SMIMEConfig".into())),
                ("Name".into(), Prop::S("SMIMEConfig".into())),
                ("OWAEncryptionAlgorithms".into(), Prop::S("6610".into())),
                ("OWASigningAlgorithms".into(), Prop::S("8004".into())),
                ("OWAAlwaysSign".into(), Prop::B(false)),
                ("OWAAlwaysEncrypt".into(), Prop::B(false)),
                ("OWACheckCRLOnSend".into(), Prop::B(false)),
                ("OWADisableCRLCheck".into(), Prop::B(false)),
                (
                    "OWAIncludeCertificateChainAndRootCertificate".into(),
                    Prop::B(false),
                ),
                (
                    "SMIMECertificateIssuingCA".into(),
                    d.issuing_ca.clone().map_or(Prop::Nil, Prop::Bytes),
                ),
                (
                    "SMIMECertificatesExpiryDate".into(),
                    d.expiry.map_or(Prop::Nil, Prop::Date),
                ),
            ];
            for (k, val) in &d.owa {
                let p = Prop::from_json(val);
                match props.iter_mut().find(|(n, _)| n == k) {
                    Some(slot) => slot.1 = p,
                    None => props.push((k.clone(), p)),
                }
            }
            let v = render_object(
                &s,
                &props,
                "Microsoft.Exchange.Data.Directory.Management.SmimeConfiguration",
                "SMIMEConfig",
                r,
            );
            ok(vec![v], None, &tenant, &s.base)
        }
        "Set-SmimeConfig" => {
            let mut blob_set: Option<Option<(Vec<u8>, i64)>> = None;
            let mut owa = Vec::new();
            for (k, v) in params {
                if skip_param(k) {
                    continue;
                }
                if k.eq_ignore_ascii_case("SMIMECertificateIssuingCA") {
                    let blob = match bytes(v, accept(cfg)) {
                        Ok(b) => b,
                        Err(u) if accept(cfg) != Accept::Both => {
                            let ann = annotated(k) || v.get("@odata.type").is_some();
                            return conversion_refused(&s, k, ann, &u);
                        }
                        Err(_) => return bad_value("SMIMECertificateIssuingCA has wrong format"),
                    };
                    if blob.is_empty() {
                        blob_set = Some(None);
                        continue;
                    }
                    if blob.len() > cfg.max_sst_bytes {
                        return exo_error(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "Ex3C8A21",
                            "Microsoft.Exchange.Data.LimitsExceededException",
                            &format!(
                                "SSTFileSizeExceedLimit: the SST file is {} bytes; the limit is {} bytes.",
                                blob.len(),
                                cfg.max_sst_bytes
                            ),
                        );
                    }
                    let Ok(certs) = smimekit_pki::sst::read_sst_certificates(&blob) else {
                        return exo_error(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "",
                            "System.FormatException",
                            "SMIMECertificateIssuingCA has wrong format",
                        );
                    };
                    let t = cfg.smime_now.unwrap_or_else(now);
                    let mut earliest = i64::MAX;
                    let mut expired = Vec::new();
                    for c in &certs {
                        let Ok(i) = smimekit_pki::certinfo::parse(c) else {
                            return bad_value("SMIMECertificateIssuingCA has wrong format");
                        };
                        earliest = earliest.min(i.not_after);
                        if i.not_after < t {
                            expired.push(i.sha1_thumbprint.clone());
                        }
                    }
                    if !expired.is_empty() {
                        return exo_error(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "",
                            "System.InvalidOperationException",
                            &format!(
                                "The following certificates have expired: {}",
                                expired.join(" , ")
                            ),
                        );
                    }
                    blob_set = Some(Some((blob, earliest)));
                } else if k.starts_with("OWA") || k == "NoSignOnReply" {
                    owa.push((k.clone(), v.clone()));
                } else {
                    return bad_value(&format!(
                        "A parameter cannot be found that matches parameter name '{k}'."
                    ));
                }
            }
            if whatif {
                return what_if(
                    &s,
                    "What if: Setting S/MIME configuration \"SMIMEConfig\".".into(),
                    &tenant,
                );
            }
            match blob_set {
                Some(Some((blob, earliest))) => {
                    d.issuing_ca = Some(blob);
                    d.expiry = Some(earliest);
                }
                Some(None) => {
                    d.issuing_ca = None;
                    d.expiry = None;
                }
                None => {}
            }
            for (k, v) in owa {
                d.owa.insert(k, v);
            }
            s.counters.writes.fetch_add(1, Ordering::Relaxed);
            ok(Vec::new(), None, &tenant, &s.base)
        }
        other => bad_value(&format!(
            "The term '{other}' is not recognized as a name of a cmdlet."
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;

    fn keypair() -> (PKey<openssl::pkey::Private>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_pubkey(&key).unwrap();
        let nb = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        let na = openssl::asn1::Asn1Time::days_from_now(30).unwrap();
        b.set_not_before(&nb).unwrap();
        b.set_not_after(&na).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let der = b.build().to_der().unwrap();
        (key, der)
    }

    fn jwt(
        key: &PKey<openssl::pkey::Private>,
        cert: &[u8],
        aud: &str,
        exp: i64,
        pss: bool,
    ) -> String {
        let header = if pss {
            json!({"alg": "PS256", "typ": "JWT", "x5t#S256": B64URL.encode(sha2::Sha256::digest(cert))})
        } else {
            json!({"alg": "RS256", "typ": "JWT", "x5t": B64URL.encode(sha1::Sha1::digest(cert))})
        };
        let t = now();
        let claims =
            json!({"aud": aud, "iss": "app", "sub": "app", "jti": "x", "nbf": t, "exp": exp});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let mut s =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
        if pss {
            s.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
            s.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                .unwrap();
        }
        s.update(input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(s.sign_to_vec().unwrap()))
    }

    /// An emulator state with one mailbox holding `certs`, and a request runner.
    fn with_mailbox(strict: bool, certs: Vec<Vec<u8>>) -> (Arc<Inner>, tokio::runtime::Runtime) {
        let mut cfg = EmulatorConfig::new("t", "app", Vec::new());
        cfg.strict = strict;
        let mut data = Data::default();
        data.tokens.insert("tok".into());
        data.objects.insert(
            "a@x.org".into(),
            Object {
                contact: false,
                name: "a".into(),
                address: "a@x.org".into(),
                certs,
            },
        );
        let inner = Arc::new(Inner {
            throttle_from: AtomicU64::new(u64::MAX),
            throttle_every: AtomicU64::new(0),
            cfg,
            base: "http://127.0.0.1:1".into(),
            regional: None,
            data: Mutex::new(data),
            counters: Arc::new(Counters::default()),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (inner, rt)
    }

    fn call(
        rt: &tokio::runtime::Runtime,
        s: &Arc<Inner>,
        format: &str,
        cmdlet: &str,
        params: Value,
    ) -> (u16, Value) {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer tok".parse().unwrap());
        h.insert("x-anchormailbox", "APP:x@t".parse().unwrap());
        h.insert("host", "127.0.0.1:1".parse().unwrap());
        h.insert("x-responseformat", format.parse().unwrap());
        h.insert("x-serializationlevel", "Full".parse().unwrap());
        let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}});
        rt.block_on(async {
            let r = invoke(
                State(s.clone()),
                Path("t".to_string()),
                Query(BTreeMap::new()),
                h,
                body.to_string(),
            )
            .await;
            let status = r.status().as_u16();
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    fn stored(rt: &tokio::runtime::Runtime, s: &Arc<Inner>) -> Vec<Vec<u8>> {
        rt.block_on(s.data.lock()).objects["a@x.org"].certs.clone()
    }

    #[test]
    fn strict_mode_models_the_schema_and_lenient_mode_the_old_emulator() {
        let (one, two) = (vec![1u8, 2], vec![3u8]);
        let remove = json!({"Identity": "a@x.org", "UserCertificate": {
            "@odata.type": "#Exchange.GenericHashTable", "Remove": [{"Data": [1, 2]}]}});
        let base64 = json!({"Identity": "a@x.org", "UserCertificate": [{"Data": "AQI="}]});
        let annotated = json!({"Identity": "a@x.org",
            "UserCertificate@odata.type": "#Collection(Exchange.ByteArrayType)",
            "UserCertificate": [{"Data": [3]}]});

        // Strict: Remove by value does nothing, yet answers 200 (with the no-op warning).
        let (s, rt) = with_mailbox(true, vec![one.clone(), two.clone()]);
        let (status, v) = call(&rt, &s, "json", "Set-Mailbox", remove.clone());
        assert_eq!(status, 200, "{v}");
        assert!(
            v["@adminapi.warnings"][0]
                .as_str()
                .unwrap()
                .contains("no settings"),
            "{v}"
        );
        assert_eq!(stored(&rt, &s), vec![one.clone(), two.clone()]);
        assert_eq!(s.counters.ignored_removes.load(Ordering::Relaxed), 1);
        // Base64 is refused with a conversion error, nothing changes.
        let (status, v) = call(&rt, &s, "json", "Set-Mailbox", base64.clone());
        assert_eq!(status, 400, "{v}");
        let text = v["error"]["details"][0]["message"].as_str().unwrap();
        assert!(text.contains("Cannot convert value"), "{text}");
        // The annotation key is accepted; the full list replaces.
        let (status, v) = call(&rt, &s, "json", "Set-Mailbox", annotated.clone());
        assert_eq!(status, 200, "{v}");
        assert_eq!(stored(&rt, &s), vec![two.clone()]);
        // Reads: CLIXML when asked, {"Data": [..]} in Full JSON.
        let (_, v) = call(
            &rt,
            &s,
            "clixml",
            "Get-Mailbox",
            json!({"Identity": "a@x.org"}),
        );
        let xml = v["value"][0]["_clixml"].as_str().unwrap();
        assert!(
            xml.contains("<BA>Aw==</BA>")
                && xml.contains("<S N=\"PrimarySmtpAddress\">a@x.org</S>"),
            "{xml}"
        );
        let (_, v) = call(
            &rt,
            &s,
            "json",
            "Get-Mailbox",
            json!({"Identity": "a@x.org"}),
        );
        assert_eq!(v["value"][0]["UserCertificate"], json!([{"Data": [3]}]));
        // -WhatIf validates and changes nothing.
        let mut w = annotated.clone();
        w["UserCertificate"] = json!([]);
        w["WhatIf"] = json!(true);
        let (status, v) = call(&rt, &s, "json", "Set-Mailbox", w);
        assert_eq!(status, 200, "{v}");
        assert!(v["@adminapi.confirmationmessage"].is_string(), "{v}");
        assert_eq!(stored(&rt, &s), vec![two.clone()]);

        // Lenient: Remove by value works, base64 is taken, annotations are unknown
        // parameters, and the answer is JSON with base64 whatever was asked.
        let (s, rt) = with_mailbox(false, vec![one.clone(), two.clone()]);
        let (status, _) = call(&rt, &s, "json", "Set-Mailbox", remove);
        assert_eq!(status, 200);
        assert_eq!(stored(&rt, &s), vec![two.clone()]);
        let (status, _) = call(&rt, &s, "json", "Set-Mailbox", base64);
        assert_eq!(status, 200);
        assert_eq!(stored(&rt, &s), vec![one.clone()]);
        let (status, v) = call(&rt, &s, "json", "Set-Mailbox", annotated);
        assert_eq!(status, 400);
        assert!(v.to_string().contains("UserCertificate@odata.type"), "{v}");
        let (_, v) = call(
            &rt,
            &s,
            "clixml",
            "Get-Mailbox",
            json!({"Identity": "a@x.org"}),
        );
        assert_eq!(v["value"][0]["UserCertificate"], json!(["AQI="]));
    }

    #[test]
    fn dates_render_as_iso() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(2_366_841_600), "2045-01-01T00:00:00Z");
    }

    #[test]
    fn assertions_are_checked() {
        let (key, cert) = keypair();
        let cfg = EmulatorConfig::new("t", "app", cert.clone());
        let aud = "http://127.0.0.1:1/t/oauth2/v2.0/token";
        let later = now() + 600;
        for pss in [true, false] {
            assert!(check_assertion(&jwt(&key, &cert, aud, later, pss), &cfg, aud).is_ok());
        }
        // Bad signature: right certificate thumbprint, another key.
        let (other, _) = keypair();
        let e = check_assertion(&jwt(&other, &cert, aud, later, true), &cfg, aud).unwrap_err();
        assert_eq!(e.0, 700027);
        // Tampered signature.
        let mut t = jwt(&key, &cert, aud, later, true);
        t.push('A');
        assert!(check_assertion(&t, &cfg, aud).is_err());
        // Wrong audience.
        let e = check_assertion(
            &jwt(
                &key,
                &cert,
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                later,
                true,
            ),
            &cfg,
            aud,
        )
        .unwrap_err();
        assert_eq!(e.0, 700212);
        // Expired.
        let e = check_assertion(&jwt(&key, &cert, aud, now() - 10, true), &cfg, aud).unwrap_err();
        assert_eq!(e.0, 700024);
        // Malformed.
        assert_eq!(check_assertion("a.b", &cfg, aud).unwrap_err().0, 50027);
    }
}
