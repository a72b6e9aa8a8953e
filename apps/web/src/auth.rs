//! Who is asking: the session cookie, the CSRF token, the role a handler needs (in its type),
//! re-authentication before destructive actions, the client's address (through trusted
//! proxies), and the per-address rate limit on sign-in. Sessions, passwords and lockout are
//! the service's `users`; this module only maps them to HTTP.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use smimekit_service::{ErrorKind, Role, Secret, Service, SignIn, SignInRequest, WebSessionInfo};
use utoipa::ToSchema;

use crate::{AppError, AppState};

/// The session cookie's name.
pub const COOKIE: &str = "smimekit_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A destructive action needs a sign-in or re-authentication at most this many seconds old.
pub const REAUTH_WINDOW: i64 = 10 * 60;

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
    pub(crate) token: String,
    _role: PhantomData<R>,
}

pub type Viewer = Signed<ViewerRole>;
pub type Operator = Signed<OperatorRole>;
pub type Admin = Signed<AdminRole>;

impl<R: MinRole> Signed<R> {
    /// Refuses (403, code `reauth`) unless the user signed in or re-authenticated within
    /// [`REAUTH_WINDOW`]: what a destructive action (unpublish, revoke, apply with removals)
    /// asks first.
    pub fn require_recent_auth(&self) -> Result<(), AppError> {
        if self.service.now() - self.session.created <= REAUTH_WINDOW {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "this removes certificates: give your password again (POST /api/v1/reauth) first",
            )
            .with_code("reauth"))
        }
    }
}

/// The session token a request's cookie carries.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
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
        let token = cookie_token(&parts.headers).ok_or_else(AppError::unauthorized)?;
        let session = match state.service.web_session(&token, &state.policy).await {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::PermissionDenied => {
                return Err(AppError::unauthorized());
            }
            Err(e) => return Err(e.into()),
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_matches(sent) {
                return Err(AppError::forbidden("missing or wrong CSRF token"));
            }
        }
        if session.role < R::ROLE {
            return Err(AppError::forbidden(format!(
                "this needs the {} role",
                R::ROLE
            )));
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

/// An IP network of `[web] trusted_proxies` (`192.0.2.10`, `10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => return false,
            _ => ip,
        };
        if self.prefix == 0 {
            return true;
        }
        let shift = if self.addr.is_ipv4() {
            32 - u32::from(self.prefix) + 96
        } else {
            128 - u32::from(self.prefix)
        };
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        bits(self.addr) & mask == bits(ip) & mask
    }
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one. For the audit log and the rate limit.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl ClientAddr {
    fn resolve(parts: &Parts, trusted: &[IpNet]) -> String {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return "unknown".into();
        };
        let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
        if !is_trusted(peer) {
            return peer.to_string();
        }
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        // Right to left: each hop was added by the one after it; the first hop that is not
        // a trusted proxy is the client (anything left of it the client could have made up).
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client.to_string()
    }
}

impl FromRequestParts<Arc<AppState>> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(Self::resolve(parts, &state.trusted_proxies)))
    }
}

/// Sign-in attempts allowed per client address in each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    pub attempts: u32,
    /// The window, in seconds.
    pub window: i64,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            attempts: 10,
            window: 60,
        }
    }
}

/// Counts sign-in attempts per client address in fixed windows of the service clock (per
/// process: with several servers each counts its own; the per-user lockout is shared).
#[derive(Debug, Default)]
pub struct RateLimiter {
    seen: Mutex<HashMap<String, (i64, u32)>>,
}

/// What the limiter says about one attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// Refused; `first` for the first refusal of the window (audited), and the seconds left.
    Refused {
        first: bool,
        retry_after: i64,
    },
}

impl RateLimiter {
    pub fn attempt(&self, client: &str, now: i64, limit: LoginLimit) -> Attempt {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget finished windows now and then, so the map stays small.
        if seen.len() > 10_000 {
            seen.retain(|_, (start, _)| now - *start < limit.window);
        }
        let entry = seen.entry(client.to_string()).or_insert((now, 0));
        if now - entry.0 >= limit.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= limit.attempts {
            Attempt::Allowed
        } else {
            Attempt::Refused {
                first: entry.1 == limit.attempts + 1,
                retry_after: (entry.0 + limit.window - now).max(1),
            }
        }
    }
}

/// A sign-in: name and password.
#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
}

/// Re-authentication: the signed-in user's password.
#[derive(Deserialize, ToSchema)]
pub struct ReauthBody {
    pub password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReauthBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReauthBody").finish_non_exhaustive()
    }
}

/// Who is signed in, and the token state-changing requests carry in `X-CSRF-Token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: String,
    pub role: String,
    pub csrf: String,
    /// Until when (Unix seconds) destructive actions need no re-authentication.
    pub recent_auth_until: i64,
}

impl Me {
    pub fn of(s: &WebSessionInfo) -> Me {
        Me {
            user: s.user.clone(),
            role: s.role.to_string(),
            csrf: s.csrf.clone(),
            recent_auth_until: s.created + REAUTH_WINDOW,
        }
    }
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(signed: &SignIn, tls: bool) -> Result<HeaderValue, AppError> {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        signed.token.as_str()
    ))
    .map_err(|_| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "cookie"))
}

/// Signs in (the data function the HTML sign-in form shares): the rate limit per client
/// address, then the service's password check and lockout.
pub async fn sign_in(
    state: &AppState,
    client: &str,
    name: String,
    password: String,
) -> Result<SignIn, AppError> {
    let now = state.service.now();
    if let Attempt::Refused { first, retry_after } =
        state.limiter.attempt(client, now, state.login_limit)
    {
        if first {
            state.service.sign_in_throttled(&name, client).await?;
        }
        let mut e = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many sign-in attempts from this address; wait and try again",
        )
        .with_code("rate-limit");
        e.retry_after = Some(retry_after);
        return Err(e);
    }
    let req = SignInRequest {
        name,
        password: Secret::new(password.into_bytes()),
        client: client.to_string(),
    };
    Ok(state.service.sign_in(&req, &state.policy).await?)
}

/// Sign in with a name and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "session", request_body = LoginBody,
    responses((status = 200, description = "Signed in; the session cookie is set", body = Me),
        (status = 403, description = "Wrong name or password, or locked out"),
        (status = 429, description = "Too many attempts from this address")))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(peer): ClientAddr,
    Json(body): Json<LoginBody>,
) -> Result<Response, AppError> {
    let signed = sign_in(&state, &peer, body.name, body.password).await?;
    let cookie = session_cookie(&signed, state.tls)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Me::of(&signed.session)),
    )
        .into_response())
}

/// Give the password again before a destructive action; replaces the session (new cookie and
/// CSRF token).
#[utoipa::path(post, path = "/api/v1/reauth", tag = "session", request_body = ReauthBody,
    responses((status = 200, description = "Re-authenticated; a new session cookie is set", body = Me),
        (status = 403, description = "Wrong password (counts towards the lockout)")))]
pub async fn reauth(
    State(state): State<Arc<AppState>>,
    user: Viewer,
    ClientAddr(peer): ClientAddr,
    Json(body): Json<ReauthBody>,
) -> Result<Response, AppError> {
    let signed = user
        .service
        .reauthenticate(
            &user.token,
            &Secret::new(body.password.into_bytes()),
            &peer,
            &state.policy,
        )
        .await?;
    let cookie = session_cookie(&signed, state.tls)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Me::of(&signed.session)),
    )
        .into_response())
}

/// Sign out: the session ends on the server.
#[utoipa::path(post, path = "/api/v1/logout", tag = "session",
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn logout(user: Viewer, ClientAddr(peer): ClientAddr) -> Result<Response, AppError> {
    user.service.sign_out(&user.token, &peer).await?;
    let clear =
        HeaderValue::from_static("smimekit_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, description = "The session", body = Me)))]
pub async fn me(user: Viewer) -> Json<Me> {
    Json(Me::of(&user.session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let n = IpNet::parse("10.0.0.0/8").unwrap_or_else(|| panic!("parse"));
        assert!(n.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!n.contains(IpAddr::from([11, 0, 0, 1])));
        let one = IpNet::parse("192.0.2.7").unwrap_or_else(|| panic!("parse"));
        assert!(one.contains(IpAddr::from([192, 0, 2, 7])));
        assert!(!one.contains(IpAddr::from([192, 0, 2, 8])));
        let v6 = IpNet::parse("::1").unwrap_or_else(|| panic!("parse"));
        assert!(v6.contains(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])));
        assert!(!v6.contains(IpAddr::from([127, 0, 0, 1])));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nonsense").is_none());
        let all = IpNet::parse("0.0.0.0/0").unwrap_or_else(|| panic!("parse"));
        assert!(all.contains(IpAddr::from([8, 8, 8, 8])));
    }

    #[test]
    fn the_limiter_counts_per_address_and_window() {
        let l = RateLimiter::default();
        let lim = LoginLimit {
            attempts: 2,
            window: 60,
        };
        assert_eq!(l.attempt("a", 100, lim), Attempt::Allowed);
        assert_eq!(l.attempt("a", 110, lim), Attempt::Allowed);
        assert_eq!(
            l.attempt("a", 120, lim),
            Attempt::Refused {
                first: true,
                retry_after: 40
            }
        );
        assert_eq!(
            l.attempt("a", 130, lim),
            Attempt::Refused {
                first: false,
                retry_after: 30
            }
        );
        assert_eq!(l.attempt("b", 130, lim), Attempt::Allowed);
        assert_eq!(l.attempt("a", 160, lim), Attempt::Allowed);
    }
}
