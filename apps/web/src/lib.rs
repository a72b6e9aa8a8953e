//! The smimekit web admin: an axum router over [`smimekit_service::Service`], holding no logic
//! of its own beyond HTTP (sessions, CSRF, roles and lockout are the service's `users`).
//!
//! `/healthz` and `POST /api/v1/login` answer anyone; every other route needs a session, and
//! every state-changing request but the login carries the session's CSRF token in
//! `X-CSRF-Token`. The modules: [`auth`] (who is asking: session, CSRF, role, re-authentication,
//! client address, sign-in rate limit), [`api`] (the JSON API: one data function per endpoint,
//! shared with the HTML pages, and its OpenAPI document), [`jobs`] (jobs started here, watched
//! live), [`tls`] (serving HTTPS itself). It deliberately keeps no data of its own: everything
//! lives in the store, so several servers can share one PostgreSQL database (only the sign-in
//! rate limit, the plans offered for apply and the live view of running jobs are per process).

pub mod api;
pub mod auth;
pub mod cli;
mod error;
pub mod jobs;
mod pages;
pub mod tls;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use smimekit_service::{Service, SessionPolicy};

pub use auth::{
    Admin, COOKIE, CSRF_HEADER, ClientAddr, IpNet, LoginLimit, Operator, REAUTH_WINDOW, Signed,
    Viewer,
};
pub use error::AppError;

/// Largest request body accepted (a certificate upload fits many times over); plans have
/// their own, larger limit ([`api::PLAN_BODY_LIMIT`]).
pub const BODY_LIMIT: usize = 256 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub service: Service,
    pub policy: SessionPolicy,
    /// Served over TLS: the cookie gets `Secure`.
    pub tls: bool,
    /// `[web] trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Sign-in attempts per client address.
    pub login_limit: LoginLimit,
    pub(crate) limiter: auth::RateLimiter,
    pub jobs: jobs::JobRegistry,
    pub(crate) plans: api::PlanCache,
}

impl AppState {
    /// The defaults: plain HTTP, no trusted proxy, the default session policy and limits.
    pub fn new(service: Service) -> Self {
        Self {
            service,
            policy: SessionPolicy::default(),
            tls: false,
            trusted_proxies: Vec::new(),
            login_limit: LoginLimit::default(),
            limiter: auth::RateLimiter::default(),
            jobs: jobs::JobRegistry::default(),
            plans: api::PlanCache::default(),
        }
    }
}

/// The router, with the security headers on every answer.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api::routes().split_for_parts();
    let doc = Arc::new(doc_info(doc));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/openapi.json",
            get(move |_: Viewer| async move { Json(doc.as_ref().clone()) }),
        )
        .merge(api)
        .merge(pages::router())
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(state))
}

/// The OpenAPI document of `/api/v1` (what `/api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    doc_info(api::routes().split_for_parts().1)
}

fn doc_info(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title("smimekit web admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Session cookie from POST /api/v1/login; every state-changing request carries the \
             session's CSRF token (from login or /api/v1/me) in X-CSRF-Token.",
        ))
        .build();
    doc
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
    // Nothing is cached but what says otherwise (the static assets, named by their content).
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
