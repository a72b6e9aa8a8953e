//! The smimekit web admin: an axum router over [`smimekit_service::Service`], holding no logic
//! of its own beyond HTTP (sessions, CSRF, roles and lockout are the service's `users`).
//!
//! This first slice serves `/healthz`, `POST /api/v1/login`, `POST /api/v1/logout`,
//! `GET /api/v1/me` and `GET /api/v1/people`. Every route but `/healthz` and the login needs a
//! session; every state-changing request but the login carries the session's CSRF token in
//! `X-CSRF-Token`. It deliberately does not render HTML pages yet, nor serve TLS itself.

pub mod cli;

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use smimekit_service::{
    ErrorKind, PeopleQuery, PersonStatus, Role, Secret, Service, ServiceError, SessionPolicy,
    SignInRequest, WebSessionInfo,
};

/// The session cookie's name.
pub const COOKIE: &str = "smimekit_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest request body accepted (a certificate upload fits many times over).
pub const BODY_LIMIT: usize = 256 * 1024;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Service,
    pub policy: SessionPolicy,
    /// Served over TLS: the cookie gets `Secure`.
    pub tls: bool,
}

/// The router, with the security headers on every answer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/people", get(people))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(state))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The one error type of the handlers: a status and a short message; the details go to the
/// log, never to the client.
#[derive(Debug)]
pub struct AppError(StatusCode, String);

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        let status = match e.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::Stale => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Malformed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(error = %e, "request failed");
        // Client errors say what was wrong with the request; server faults say nothing.
        let message = if status.is_server_error() {
            "the server could not do this; see its log".to_string()
        } else {
            e.message
        };
        AppError(status, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn unauthorized() -> AppError {
    AppError(StatusCode::UNAUTHORIZED, "sign in first".into())
}

fn forbidden(why: &str) -> AppError {
    AppError(StatusCode::FORBIDDEN, why.into())
}

/// The minimum role of an extractor.
pub trait MinRole: Send + Sync {
    const ROLE: Role;
}
#[derive(Debug)]
pub struct ViewerRole;
#[derive(Debug)]
pub struct OperatorRole;
#[derive(Debug)]
pub struct AdminRole;
impl MinRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for OperatorRole {
    const ROLE: Role = Role::Operator;
}
impl MinRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// A signed-in user of at least role `R`, with a [`Service`] acting as them; for methods other
/// than GET and HEAD, the request carried the session's CSRF token. Anonymous: 401; a lower
/// role or no CSRF token: 403.
#[derive(Debug)]
pub struct Signed<R: MinRole> {
    pub session: WebSessionInfo,
    pub service: Service,
    token: String,
    _role: PhantomData<R>,
}

pub type Viewer = Signed<ViewerRole>;
pub type Operator = Signed<OperatorRole>;
pub type Admin = Signed<AdminRole>;

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

impl<R: MinRole> FromRequestParts<Arc<AppState>> for Signed<R> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie_token(&parts.headers).ok_or_else(unauthorized)?;
        let session = match state.service.web_session(&token, &state.policy).await {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::PermissionDenied => return Err(unauthorized()),
            Err(e) => return Err(e.into()),
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_matches(sent) {
                return Err(forbidden("missing or wrong CSRF token"));
            }
        }
        if session.role < R::ROLE {
            return Err(forbidden(&format!("this needs the {} role", R::ROLE)));
        }
        let service = state.service.acting_as(session.user.clone(), "web");
        Ok(Signed {
            session,
            service,
            token,
            _role: PhantomData,
        })
    }
}

/// The client's address (for the audit log), from the connection.
#[derive(Debug)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string()),
        ))
    }
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(peer): ClientAddr,
    Json(body): Json<LoginBody>,
) -> Result<Response, AppError> {
    let req = SignInRequest {
        name: body.name,
        password: Secret::new(body.password.into_bytes()),
        client: peer,
    };
    let signed = state.service.sign_in(&req, &state.policy).await?;
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        signed.token.as_str()
    );
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| AppError(StatusCode::INTERNAL_SERVER_ERROR, "cookie".into()))?;
    let body = serde_json::json!({
        "user": signed.session.user,
        "role": signed.session.role,
        "csrf": signed.session.csrf,
    });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

async fn logout(user: Viewer, ClientAddr(peer): ClientAddr) -> Result<Response, AppError> {
    user.service.sign_out(&user.token, &peer).await?;
    let clear =
        HeaderValue::from_static("smimekit_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

async fn me(user: Viewer) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "user": user.session.user,
        "role": user.session.role,
        "csrf": user.session.csrf,
    }))
}

#[derive(Deserialize)]
struct PeopleParams {
    query: Option<String>,
    directory: Option<String>,
    status: Option<PersonStatus>,
    #[serde(default)]
    page: usize,
}

async fn people(
    user: Viewer,
    Query(p): Query<PeopleParams>,
) -> Result<Json<smimekit_service::PeoplePage>, AppError> {
    let q = PeopleQuery {
        query: p.query.filter(|s| !s.is_empty()),
        directory: p.directory.filter(|s| !s.is_empty()),
        status: p.status,
        page: p.page,
        ..PeopleQuery::default()
    };
    Ok(Json(user.service.people(&q).await?))
}
