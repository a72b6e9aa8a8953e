//! The web admin's security rules, each through the router with `tower::ServiceExt::oneshot`
//! on a real SQLite store in a temp folder.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use smimekit_service::{Config, SessionPolicy};
use smimekit_web::{AppState, CSRF_HEADER, router};
use tower::ServiceExt;

mod common;
use common::{Fixture, T0, service_with_users};

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default();
    config.store_url = Some(format!("sqlite:{}", tmp.path().join("s.db").display()));
    let (service, now) = service_with_users(config).await;
    let mut state = AppState::new(service.clone());
    state.policy = SessionPolicy {
        idle: 600,
        absolute: 3600,
        max_failures: 3,
        lockout: 900,
    };
    let app = router(state);
    Fixture {
        app,
        now,
        service,
        _tmp: tmp,
    }
}

async fn send(f: &Fixture, req: Request<Body>) -> Response {
    f.app.clone().oneshot(req).await.unwrap()
}

async fn body_json(res: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

fn login_req(name: &str, password: &str) -> Request<Body> {
    Request::post("/api/v1/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({ "name": name, "password": password }).to_string(),
        ))
        .unwrap()
}

/// Signs in: (cookie header value, CSRF token).
async fn sign_in(f: &Fixture, name: &str) -> (String, String) {
    let res = send(f, login_req(name, "correct horse")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let pair = cookie.split(';').next().unwrap().to_string();
    let csrf = body_json(res).await["csrf"].as_str().unwrap().to_string();
    (pair, csrf)
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn logout(cookie: &str, csrf: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/v1/logout").header(header::COOKIE, cookie);
    if let Some(t) = csrf {
        b = b.header(CSRF_HEADER, t);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_and_strict() {
    let f = fixture().await;
    let res = send(&f, login_req("vic", "correct horse")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("smimekit_session="), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    // Plain HTTP (on loopback): no Secure, which the browser would not send back.
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_refused_but_healthz() {
    let f = fixture().await;
    let res = send(&f, get("/healthz", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    for uri in ["/api/v1/people", "/api/v1/me", "/api/v1/people?query=a"] {
        let res = send(&f, get(uri, None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
        let body = body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({ "error": "sign in first" }),
            "{uri}"
        );
        // A made-up cookie is no better.
        let res = send(&f, get(uri, Some("smimekit_session=00ff"))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let res = send(&f, logout("smimekit_session=00ff", Some("x"))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_viewer_reads_people() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f, "vic").await;
    let res = send(&f, get("/api/v1/people?status=ready&page=0", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_json(res).await;
    assert!(
        body.get("total").is_some() || body.get("rows").is_some(),
        "{body}"
    );
    let res = send(&f, get("/api/v1/people?status=bogus", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_without_the_csrf_token_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f, "ada").await;
    for bad in [None, Some("wrong"), Some("")] {
        let res = send(&f, logout(&cookie, bad)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{bad:?}");
        // Still signed in: the logout did not happen.
        let res = send(&f, get("/api/v1/me", Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = send(&f, logout(&cookie, Some(&csrf))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_invalidates_the_session_server_side() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f, "otto").await;
    let res = send(&f, logout(&cookie, Some(&csrf))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cleared = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie, replayed, is worth nothing.
    let res = send(&f, get("/api/v1/me", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_the_idle_and_absolute_timeouts() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f, "vic").await;
    for t in [500, 1000, 1500, 2000, 2500, 3000, 3500] {
        f.now.store(T0 + t, Ordering::SeqCst);
        let res = send(&f, get("/api/v1/me", Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::OK, "at +{t}");
    }
    f.now.store(T0 + 3601, Ordering::SeqCst);
    let res = send(&f, get("/api/v1/me", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (cookie, _) = sign_in(&f, "vic").await;
    f.now.store(T0 + 3601 + 601, Ordering::SeqCst);
    let res = send(&f, get("/api/v1/me", Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_user_out_and_are_audited() {
    let f = fixture().await;
    for _ in 0..3 {
        let res = send(&f, login_req("vic", "wrong guess")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(header::SET_COOKIE).is_none());
    }
    let res = send(&f, login_req("vic", "correct horse")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let log = f
        .service
        .audit_log(&smimekit_service::AuditLogRequest::default())
        .await
        .unwrap();
    let failures = log
        .rows
        .iter()
        .filter(|r| r.operation == "sign-in" && r.actor == "vic" && r.result.starts_with("refused"))
        .count();
    assert_eq!(failures, 4);
    f.now.store(T0 + 901, Ordering::SeqCst);
    let res = send(&f, login_req("vic", "correct horse")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let f = fixture().await;
    for req in [
        get("/healthz", None),
        get("/api/v1/people", None),
        login_req("x", "y"),
    ] {
        let res = send(&f, req).await;
        let h = res.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused() {
    let f = fixture().await;
    let big = format!(
        "{{\"name\":\"vic\",\"password\":\"{}\"}}",
        "a".repeat(smimekit_web::BODY_LIMIT + 1)
    );
    let req = Request::post("/api/v1/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    let res = send(&f, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
