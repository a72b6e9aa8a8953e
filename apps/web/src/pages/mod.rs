//! The web admin's HTML pages: server-rendered with maud, htmx for partial updates, every page
//! usable without JavaScript where a form can do the job.
//!
//! The pages call the same [`smimekit_service::Service`] methods as the JSON API and hold no logic
//! of their own beyond HTTP and markup. Sessions, roles and the CSRF check are the API's
//! [`Signed`] extractor: a form carries the session's CSRF token in its `csrf` field, which
//! [`form_csrf`] hands to the extractor as the `X-CSRF-Token` header (htmx requests send the
//! header itself, from the `hx-headers` of the page's body). The pages deliberately embed no
//! script and no style attribute: the CSP forbids both (`default-src 'self'`), and htmx is
//! configured by its meta tag not to inject styles or evaluate code.

mod admin;
mod assets;
mod deploy;
mod people;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use smimekit_service::{Role, ServiceError};

use crate::auth::{MinRole, ViewerRole, session_cookie};
use crate::{AppError, AppState, BODY_LIMIT, CSRF_HEADER, ClientAddr, Signed};

/// The pages' routes (merged into [`crate::router`], which adds the state and the security
/// headers).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(people::dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/dashboard/health", get(people::health))
        .route("/people", get(people::people))
        .route("/people.csv", get(people::people_csv))
        .route("/people/{address}", get(people::person))
        .route("/people/{address}/publish", post(people::publish))
        .route(
            "/people/{address}/unpublish",
            get(people::unpublish_confirm).post(people::unpublish),
        )
        .route("/deploy", get(deploy::page))
        .route("/deploy/plan", post(deploy::plan))
        .route("/deploy/apply", post(deploy::apply))
        .route("/deploy/jobs/{id}", get(deploy::job))
        .route("/deploy/jobs/{id}/events", get(deploy::events))
        .route("/deploy/jobs/{id}/cancel", post(deploy::cancel))
        .route("/audit", get(admin::audit))
        .route("/audit.csv", get(admin::audit_csv))
        .route("/trust", get(admin::trust))
        .route("/trust/preview", post(admin::trust_preview))
        .route("/trust/push", post(admin::trust_push))
        .route("/ca", get(admin::ca))
        .route("/ca/revoke", post(admin::ca_revoke))
        .route("/ca/issue", post(admin::ca_issue))
        .route("/ca/crl", post(admin::ca_crl))
        .route("/users", get(admin::users).post(admin::user_add))
        .route("/users/{name}/remove", post(admin::user_remove))
        .route("/settings", get(admin::settings))
        .route("/static/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(form_csrf))
}

/// A signed-in user of at least role `R`, for a page: as [`Signed`], but a refusal is an HTML
/// page (401 with a link to the sign-in page, 403 saying why) rather than JSON.
pub(crate) struct Page<R: MinRole>(pub Signed<R>);

impl<R: MinRole> FromRequestParts<Arc<AppState>> for Page<R> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match Signed::<R>::from_request_parts(parts, state).await {
            Ok(s) => Ok(Page(s)),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

impl<R: MinRole> Page<R> {
    pub(crate) fn service(&self) -> &smimekit_service::Service {
        &self.0.service
    }

    /// Whether a destructive action needs the password again first.
    pub(crate) fn needs_reauth(&self) -> bool {
        self.0.require_recent_auth().is_err()
    }

    pub(crate) fn who(&self) -> Who {
        Who {
            user: self.0.session.user.clone(),
            role: self.0.session.role,
            csrf: self.0.session.csrf.clone(),
        }
    }
}

/// Who is signed in, for the page frame and its forms.
#[derive(Clone, Debug)]
pub(crate) struct Who {
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

impl Who {
    /// The hidden field every form carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    pub(crate) fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// An error as a page: the status, and what the user can do about it.
#[derive(Debug)]
pub(crate) struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        Self(AppError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { (head_tags(&e.status.to_string())) }
                body.bare {
                    main.narrow {
                        h1 { (e.status.canonical_reason().unwrap_or("Error")) }
                        p.error role="alert" { (e.message) }
                        @if e.status == StatusCode::UNAUTHORIZED {
                            p { a href="/login" { "Sign in" } }
                        } @else {
                            p { a href="/" { "Back to the dashboard" } }
                        }
                    }
                }
            }
        };
        let mut res = (e.status, body).into_response();
        if e.status == StatusCode::UNAUTHORIZED {
            // Send the browser on to the sign-in page (no script needed), still a 401.
            res.headers_mut()
                .insert(header::REFRESH, HeaderValue::from_static("0; url=/login"));
        }
        res
    }
}

pub(crate) type PageResult = Result<Response, PageError>;

fn head_tags(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        // htmx must neither inject a style element nor evaluate code: the CSP allows neither.
        meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0}"#;
        title { (title) " · smimekit" }
        link rel="icon" type="image/svg+xml" href=(assets::href("favicon.svg"));
        link rel="stylesheet" href=(assets::href("app.css"));
        script src=(assets::href("htmx.min.js")) defer {}
        script src=(assets::href("sse.min.js")) defer {}
    }
}

/// The navigation: (path, label, minimum role).
const NAV: &[(&str, &str, Role)] = &[
    ("/", "Dashboard", Role::Viewer),
    ("/people", "People", Role::Viewer),
    ("/deploy", "Deployment", Role::Viewer),
    ("/trust", "Trust", Role::Viewer),
    ("/ca", "CA", Role::Viewer),
    ("/audit", "Audit log", Role::Viewer),
    ("/users", "Users", Role::Admin),
    ("/settings", "Settings", Role::Viewer),
];

/// A whole page: the frame (navigation, who is signed in, sign-out) around `content`.
pub(crate) fn frame(who: &Who, title: &str, active: &str, content: Markup) -> Markup {
    let headers = serde_json::json!({ CSRF_HEADER: who.csrf }).to_string();
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head_tags(title)) }
            body hx-headers=(headers) {
                header.top {
                    a.brand href="/" { "smimekit" }
                    nav {
                        @for (path, label, role) in NAV {
                            @if who.may(*role) {
                                a href=(path) aria-current=[(*path == active).then_some("page")] { (label) }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        (who.csrf_field())
                        span.who { (who.user) " · " (who.role) }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// Whether htmx asked (then a fragment is enough).
pub(crate) fn is_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A short notice above a page's content (`ok` or `error`).
pub(crate) fn notice(kind: &str, text: &str) -> Markup {
    html! { p class=(kind) role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// Moves a form's `csrf` field into the `X-CSRF-Token` header, so that [`Signed`] checks forms
/// sent without JavaScript like API calls. The body is read (within [`BODY_LIMIT`]) and handed
/// on unchanged. A request that already has the header is left alone.
async fn form_csrf(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD)
        || req.headers().contains_key(CSRF_HEADER)
    {
        return next.run(req).await;
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return PageError(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than {} KiB", BODY_LIMIT / 1024),
        ))
        .into_response();
    };
    let copy = || {
        // A POST: for a GET, the form extractor would read the query string.
        Request::builder()
            .method(Method::POST)
            .header(header::CONTENT_TYPE, content_type.as_str())
            .body(Body::from(bytes.clone()))
    };
    let token = if content_type.starts_with("application/x-www-form-urlencoded") {
        #[derive(Deserialize)]
        struct Csrf {
            csrf: Option<String>,
        }
        match copy() {
            Ok(r) => axum::Form::<Csrf>::from_request(r, &())
                .await
                .ok()
                .and_then(|f| f.0.csrf),
            Err(_) => None,
        }
    } else if content_type.starts_with("multipart/form-data") {
        let mut found = None;
        if let Ok(r) = copy()
            && let Ok(mut m) = axum::extract::Multipart::from_request(r, &()).await
        {
            while let Ok(Some(field)) = m.next_field().await {
                if field.name() == Some("csrf") {
                    found = field.text().await.ok();
                    break;
                }
            }
        }
        found
    } else {
        None
    };
    if let Some(v) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts.headers.insert(CSRF_HEADER, v);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn login_markup(name: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head_tags("Sign in")) }
            body.bare {
                main.narrow {
                    h1 { "smimekit" }
                    p.muted { "S/MIME for the whole organisation. Sign in to continue." }
                    @if let Some(e) = error { (notice("error", e)) }
                    form.card method="post" action="/login" {
                        label { "Name" input name="name" autocomplete="username" required value=(name) autofocus; }
                        label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

async fn login_page() -> Markup {
    login_markup("", None)
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(peer): ClientAddr,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let signed = match crate::auth::sign_in(&state, &peer, form.name.clone(), form.password).await {
        Ok(s) => s,
        Err(e) => {
            // A refused password is the API's 403; for the sign-in form it is "who are you?".
            let status = if e.status == StatusCode::FORBIDDEN {
                StatusCode::UNAUTHORIZED
            } else {
                e.status
            };
            return (status, login_markup(&form.name, Some(&e.message))).into_response();
        }
    };
    match session_cookie(&signed, state.tls) {
        Ok(c) => ([(header::SET_COOKIE, c)], Redirect::to("/")).into_response(),
        Err(e) => PageError(e).into_response(),
    }
}

async fn logout(page: Page<ViewerRole>, ClientAddr(peer): ClientAddr) -> PageResult {
    page.service().sign_out(&page.0.token, &peer).await?;
    let clear =
        HeaderValue::from_static("smimekit_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

/// Makes sure a destructive action may go ahead: a sign-in within the re-authentication window,
/// or, when `password` is given, a re-authentication now (the service replaces the session:
/// the page returned is the new session's, and the cookie to set comes with it). Refused with
/// the API's 403 (code `reauth`) or the wrong password's error.
pub(crate) async fn recent_auth<R: MinRole>(
    state: &Arc<AppState>,
    page: Page<R>,
    peer: &str,
    password: String,
) -> Result<(Page<R>, Option<HeaderValue>), PageError> {
    if password.is_empty() {
        page.0.require_recent_auth()?;
        return Ok((page, None));
    }
    let signed = page
        .service()
        .reauthenticate(
            &page.0.token,
            &smimekit_service::Secret::new(password.into_bytes()),
            peer,
            &state.policy,
        )
        .await?;
    let cookie = session_cookie(&signed, state.tls)?;
    // The new session, through the same extractor as any request (its CSRF token was checked
    // on this request already; a GET asks for none).
    let mut parts = Request::get("/")
        .header(
            header::COOKIE,
            format!("{}={}", crate::COOKIE, signed.token.as_str()),
        )
        .body(())
        .map_err(|_| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "the new session"))?
        .into_parts()
        .0;
    let renewed = Signed::<R>::from_request_parts(&mut parts, state).await?;
    Ok((Page(renewed), Some(cookie)))
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn time(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Markup for a count with a label, as the dashboard and the people page show them.
pub(crate) fn stat(label: &str, value: usize, class: &str, href: Option<&str>) -> Markup {
    html! {
        @match href {
            Some(h) => a class={"stat " (class)} href=(h) { span.value { (value) } span.label { (label) } },
            None => div class={"stat " (class)} { span.value { (value) } span.label { (label) } },
        }
    }
}
