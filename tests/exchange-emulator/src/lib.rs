//! An Exchange Online emulator for tests and benchmarks, built from
//! shared/docs/exchange-online.md: the Entra token endpoint (client-assertion JWT checked
//! against the registered certificate: signature PS256/RS256, `x5t#S256`/`x5t`, audience,
//! expiry) and `POST /adminapi/beta/{tenant}/InvokeCommand` for Get-/Set-Mailbox,
//! Get-/Set-/New-MailContact, Get-/Set-SmimeConfig and Get-Recipient, with Bearer checks,
//! `@odata.nextLink` paging, the §1.6 error bodies, and throttling: a 429 + Retry-After every K
//! requests, a burst of 429s, or every request from the N-th on (switchable at run time). Two
//! pessimistic switches expose clients that re-send writes: an `@{Add=…}` of a value already
//! there can be stored twice (§2.3 leaves duplicate-add semantics open), and a write can be
//! applied but answered 504, as when a gateway loses the answer.
//! Binds 127.0.0.1:0; tests start it themselves ([`Emulator::start`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::Mutex;

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
            throttle_every: 0,
            throttle_burst: None,
            throttle_from: None,
            retry_after: "0.05".into(),
            duplicate_adds: false,
            lose_write_answer_every: 0,
            max_page: 1000,
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
    /// Writes applied whose answer was replaced by a 504 (`lose_write_answer_every`).
    pub lost_answers: AtomicU64,
}

struct Inner {
    cfg: EmulatorConfig,
    base: String,
    data: Mutex<Data>,
    counters: Arc<Counters>,
    /// [`EmulatorConfig::throttle_from`], changeable while running (`u64::MAX`: off).
    throttle_from: AtomicU64,
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    pub base_url: String,
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
        let inner = Arc::new(Inner {
            throttle_from: AtomicU64::new(cfg.throttle_from.unwrap_or(u64::MAX)),
            cfg,
            base: base.clone(),
            data: Mutex::new(data),
            counters: counters.clone(),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
            .route("/adminapi/beta/{tenant}/InvokeCommand", post(invoke))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url: base,
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
    if form.get("scope").map(String::as_str) != Some("https://outlook.office365.com/.default") {
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

/// A byte[] parameter in any accepted form: `{"Data": base64|ints}`, bare base64, int array.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => B64.decode(s).ok(),
        Value::Object(o) => o.get("Data").and_then(bytes),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    }
}

fn byte_list(v: &Value) -> Option<Vec<Vec<u8>>> {
    match v {
        Value::Array(a) if a.iter().all(|x| !x.is_number()) => a.iter().map(bytes).collect(),
        Value::Null => Some(Vec::new()),
        other => bytes(other).map(|b| vec![b]),
    }
}

fn ci<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn render(o: &Object, full: bool) -> Value {
    let certs: Vec<Value> = o
        .certs
        .iter()
        .map(|c| {
            if full {
                json!(B64.encode(c))
            } else {
                json!("System.Byte[]")
            }
        })
        .collect();
    let mut v = json!({
        "Name": o.name, "DisplayName": o.name, "Alias": o.name.replace(' ', ""),
        "PrimarySmtpAddress": o.address,
        "EmailAddresses@odata.type": "#Collection(String)", "EmailAddresses": [format!("SMTP:{}", o.address)],
        "RecipientTypeDetails": if o.contact { "MailContact" } else { "UserMailbox" },
        "UserCertificate@odata.type": "#Collection(String)", "UserCertificate": certs,
        "UserSMimeCertificate@odata.type": "#Collection(String)", "UserSMimeCertificate": [],
    });
    if o.contact {
        v["ExternalEmailAddress"] = json!(format!("SMTP:{}", o.address));
    }
    v
}

fn ok(value: Vec<Value>, next: Option<String>, tenant: &str, base: &str) -> Response {
    let mut body = json!({
        "@odata.context": format!("{base}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)"),
        "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": [],
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

async fn invoke(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let cfg = &s.cfg;
    let n = s.counters.invoke.fetch_add(1, Ordering::Relaxed) + 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    {
        let d = s.data.lock().await;
        if !bearer.is_some_and(|b| d.tokens.contains(b)) {
            return (
                StatusCode::UNAUTHORIZED,
                [("WWW-Authenticate", "Bearer error=\"invalid_token\"")],
                "",
            )
                .into_response();
        }
    }
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
    if (cfg.throttle_every > 0 && n % cfg.throttle_every == 0)
        || in_burst
        || n >= s.throttle_from.load(Ordering::Relaxed)
    {
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
    let full = headers
        .get("x-serializationlevel")
        .and_then(|v| v.to_str().ok())
        == Some("Full");
    let page = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
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
                    Some(o) => ok(vec![render(o, full)], None, &tenant, &s.base),
                    None => not_found(&id, cmdlet == "Get-Mailbox"),
                };
            }
            let all: Vec<&Object> = d.objects.values().filter(|o| want(o)).collect();
            let items: Vec<Value> = all
                .iter()
                .skip(skip)
                .take(page)
                .map(|o| render(o, full))
                .collect();
            let next = (skip + page < all.len()).then(|| {
                format!(
                    "{}/adminapi/beta/{tenant}/InvokeCommand?$skiptoken={}",
                    s.base,
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
            for (k, v) in params {
                if k.eq_ignore_ascii_case("Identity") || k.eq_ignore_ascii_case("Confirm") {
                    continue;
                }
                if !k.eq_ignore_ascii_case("UserCertificate")
                    && !k.eq_ignore_ascii_case("UserSMimeCertificate")
                {
                    return bad_value(&format!(
                        "A parameter cannot be found that matches parameter name '{k}'."
                    ));
                }
                if k.eq_ignore_ascii_case("UserSMimeCertificate") {
                    continue;
                }
                match v {
                    Value::Object(m) if m.contains_key("@odata.type") => {
                        let add = ci(m, "Add").map(byte_list).unwrap_or(Some(Vec::new()));
                        let rem = ci(m, "Remove").map(byte_list).unwrap_or(Some(Vec::new()));
                        let (Some(add), Some(rem)) = (add, rem) else {
                            return bad_value("Cannot convert the value to type System.Byte[].");
                        };
                        o.certs.retain(|c| !rem.contains(c));
                        for a in add {
                            if cfg.duplicate_adds || !o.certs.contains(&a) {
                                o.certs.push(a);
                            }
                        }
                    }
                    other => match byte_list(other) {
                        Some(list) => o.certs = list,
                        None => {
                            return bad_value("Cannot convert the value to type System.Byte[].");
                        }
                    },
                }
            }
            applied(&s, ok(Vec::new(), None, &tenant, &s.base))
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
            let v = render(&o, full);
            d.objects.insert(ext.to_ascii_lowercase(), o);
            applied(&s, ok(vec![v], None, &tenant, &s.base))
        }
        "Get-SmimeConfig" => {
            let mut v = json!({"Identity": "SMIMEConfig", "Name": "SMIMEConfig",
                "OWAEncryptionAlgorithms": "6610", "OWASigningAlgorithms": "8004", "OWAAlwaysSign": false, "OWAAlwaysEncrypt": false,
                "OWACheckCRLOnSend": false, "OWADisableCRLCheck": false, "OWAIncludeCertificateChainAndRootCertificate": false,
                "SMIMECertificateIssuingCA": d.issuing_ca.as_ref().map(|b| if full { json!(B64.encode(b)) } else { json!("System.Byte[]") }),
                "SMIMECertificatesExpiryDate": d.expiry});
            for (k, val) in &d.owa {
                v[k] = val.clone();
            }
            ok(vec![v], None, &tenant, &s.base)
        }
        "Set-SmimeConfig" => {
            for (k, v) in params {
                if k.eq_ignore_ascii_case("SMIMECertificateIssuingCA") {
                    let Some(blob) = bytes(v) else {
                        return bad_value("SMIMECertificateIssuingCA has wrong format");
                    };
                    if blob.is_empty() {
                        d.issuing_ca = None;
                        d.expiry = None;
                        continue;
                    }
                    if blob.len() > 70_000 {
                        return exo_error(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "Ex3C8A21",
                            "Microsoft.Exchange.Data.LimitsExceededException",
                            "SSTFileSizeExceedLimit",
                        );
                    }
                    let Ok(certs) = smimekit_pki::sst::read_sst_certificates(&blob) else {
                        return bad_value("SMIMECertificateIssuingCA has wrong format");
                    };
                    let t = now();
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
                        return bad_value(&format!(
                            "The following certificates have expired: {}",
                            expired.join(" , ")
                        ));
                    }
                    d.issuing_ca = Some(blob);
                    d.expiry = Some(earliest);
                } else if k.starts_with("OWA") || k == "NoSignOnReply" {
                    d.owa.insert(k.clone(), v.clone());
                } else if !k.eq_ignore_ascii_case("Confirm") {
                    return bad_value(&format!(
                        "A parameter cannot be found that matches parameter name '{k}'."
                    ));
                }
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
