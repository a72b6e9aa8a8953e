//! The JSON API and its security rules, through the router with `tower::ServiceExt::oneshot`,
//! on a real SQLite store and a local directory in a temp folder, the clock pinned.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use smimekit_service::{Config, SessionPolicy};
use smimekit_web::{AppState, CSRF_HEADER, IpNet, LoginLimit, router};
use tower::ServiceExt;

mod common;
use common::{Fixture, T0, pki, service_with_users};

const PEER: &str = "192.0.2.10:50000";

async fn fixture_with(tune: impl FnOnce(&mut AppState)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::from_toml(
        "[store]\nurl = \"sqlite:smimekit.db\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n",
        &tmp.path().join("config.toml"),
    )
    .unwrap();
    let (service, now) = service_with_users(config).await;
    let mut state = AppState::new(service.clone());
    state.policy = SessionPolicy {
        idle: 3600,
        absolute: 7200,
        max_failures: 5,
        lockout: 900,
    };
    tune(&mut state);
    Fixture {
        app: router(state),
        now,
        service,
        _tmp: tmp,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn send(f: &Fixture, mut req: Request<Body>) -> Response {
    if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
        req.extensions_mut()
            .insert(ConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
    }
    f.app.clone().oneshot(req).await.unwrap()
}

async fn body_bytes(res: Response) -> Vec<u8> {
    axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap()
        .to_vec()
}

async fn body_json(res: Response) -> serde_json::Value {
    serde_json::from_slice(&body_bytes(res).await).unwrap_or(serde_json::Value::Null)
}

fn login_req(name: &str, password: &str, peer: &str) -> Request<Body> {
    let mut req = Request::post("/api/v1/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({ "name": name, "password": password }).to_string(),
        ))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    req
}

/// A signed-in user: the cookie pair and the CSRF token.
#[derive(Clone)]
struct Who {
    cookie: String,
    csrf: String,
}

fn who_from(res: &Response, body: &serde_json::Value) -> Who {
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    Who {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf"].as_str().unwrap().to_string(),
    }
}

async fn sign_in(f: &Fixture, name: &str) -> Who {
    let res = send(f, login_req(name, "correct horse", PEER)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let body = body_json(res).await;
    Who {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf"].as_str().unwrap().to_string(),
    }
}

/// A request as `who` (with the CSRF token when `csrf`).
fn req(
    method: Method,
    uri: &str,
    who: Option<&Who>,
    csrf: bool,
    json: Option<serde_json::Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(w) = who {
        b = b.header(header::COOKIE, &w.cookie);
        if csrf {
            b = b.header(CSRF_HEADER, &w.csrf);
        }
    }
    match json {
        Some(j) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(j.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn multipart(uri: &str, who: &Who, field: &str, file: &str, data: &[u8]) -> Request<Body> {
    let boundary = "XbOuNdArYx";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post(uri)
        .header(header::COOKIE, &who.cookie)
        .header(CSRF_HEADER, &who.csrf)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

/// Every documented route, as (method, concrete path).
fn documented_routes() -> Vec<(Method, String)> {
    let doc = serde_json::to_value(smimekit_web::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{address}", "alice@example.org")
            .replace("{thumbprint}", "00FF")
            .replace("{id}", "w1");
        for m in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            out.push((method, concrete.clone()));
        }
    }
    out
}

async fn people_with_certificates(f: &Fixture) -> usize {
    f.service
        .people_all(30)
        .await
        .unwrap()
        .iter()
        .filter(|p| p.certificates > 0)
        .count()
}

async fn audit_rows(f: &Fixture) -> Vec<smimekit_service::AuditLogRow> {
    f.service
        .audit_log(&smimekit_service::AuditLogRequest::default())
        .await
        .unwrap()
        .rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_route_of_the_api() {
    let f = fixture().await;
    let have: Vec<(Method, String)> = documented_routes();
    let doc = serde_json::to_value(smimekit_web::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in [
        ("post", "/api/v1/login"),
        ("post", "/api/v1/logout"),
        ("post", "/api/v1/reauth"),
        ("get", "/api/v1/me"),
        ("get", "/api/v1/people"),
        ("get", "/api/v1/people/{address}"),
        ("post", "/api/v1/people/{address}/certificates"),
        (
            "delete",
            "/api/v1/people/{address}/certificates/{thumbprint}",
        ),
        ("get", "/api/v1/trust"),
        ("post", "/api/v1/trust"),
        ("get", "/api/v1/ca/issued"),
        ("post", "/api/v1/ca/revoke"),
        ("post", "/api/v1/plan"),
        ("post", "/api/v1/apply"),
        ("get", "/api/v1/jobs/{id}"),
        ("get", "/api/v1/jobs/{id}/events"),
        ("post", "/api/v1/jobs/{id}/cancel"),
        ("get", "/api/v1/audit"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    assert_eq!(have.len(), 18, "{have:?}");
    // Every documented route is served (an anonymous request is refused, not 404/405), and
    // the document served is the one built from the routes.
    for (method, path) in &have {
        let res = send(&f, req(method.clone(), path, None, false, None)).await;
        assert!(
            res.status() != StatusCode::NOT_FOUND && res.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            res.status()
        );
    }
    let vic = sign_in(&f, "vic").await;
    let res = send(
        &f,
        req(Method::GET, "/api/v1/openapi.json", Some(&vic), false, None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(res).await, doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_and_login_refuses_an_anonymous_request() {
    let f = fixture().await;
    let mut routes = documented_routes();
    routes.push((Method::GET, "/api/v1/openapi.json".into()));
    let mut checked = 0;
    for (method, path) in routes {
        let body = (method != Method::GET && method != Method::DELETE)
            .then(|| serde_json::json!({ "pem": "x", "deploy": "", "plan_id": "p1" }));
        if path == "/api/v1/login" {
            continue;
        }
        let res = send(&f, req(method.clone(), &path, None, false, body.clone())).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(
            body_json(res).await,
            serde_json::json!({ "error": "sign in first" }),
            "{method} {path}: nothing leaked"
        );
        // A made-up session is no better.
        let fake = Who {
            cookie: "smimekit_session=00ff".into(),
            csrf: "00ff".into(),
        };
        let res = send(&f, req(method.clone(), &path, Some(&fake), true, body)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        checked += 1;
    }
    assert_eq!(checked, 18);
    let res = send(&f, req(Method::GET, "/healthz", None, false, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_without_its_csrf_token_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let ada = sign_in(&f, "ada").await;
    let before = audit_rows(&f).await.len();
    let alice = String::from_utf8(pki("alice.pem")).unwrap();
    for (method, path) in documented_routes() {
        if method == Method::GET || path == "/api/v1/login" {
            continue;
        }
        for bad in [None, Some("wrong"), Some("")] {
            let mut r = req(
                method.clone(),
                &path,
                Some(&ada),
                false,
                Some(
                    serde_json::json!({ "pem": alice, "deploy": "", "password": "correct horse", "plan_id": "p1" }),
                ),
            );
            if let Some(t) = bad {
                r.headers_mut().insert(CSRF_HEADER, t.parse().unwrap());
            }
            let res = send(&f, r).await;
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} {bad:?}"
            );
        }
    }
    // Nothing happened: no certificate, no new audit row, still signed in with the same
    // session (logout and reauth did not happen either).
    assert_eq!(people_with_certificates(&f).await, 0);
    assert_eq!(audit_rows(&f).await.len(), before);
    let res = send(&f, req(Method::GET, "/api/v1/me", Some(&ada), false, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(res).await["csrf"], ada.csrf.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_write_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let vic = sign_in(&f, "vic").await;
    let alice = String::from_utf8(pki("alice.pem")).unwrap();
    let deploy = "directories = [\"local\"]\n[[people]]\naddress = \"alice@example.org\"\ncertificates = [\"alice.pem\"]\n";
    let files = serde_json::json!({ "alice.pem": base64::engine::general_purpose::STANDARD.encode(&alice) });
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/people/alice@example.org/certificates",
            serde_json::json!({ "pem": alice }),
        ),
        (
            Method::DELETE,
            "/api/v1/people/alice@example.org/certificates/00FF",
            serde_json::json!({}),
        ),
        (
            Method::POST,
            "/api/v1/plan",
            serde_json::json!({ "deploy": deploy, "files": files }),
        ),
        (
            Method::POST,
            "/api/v1/apply",
            serde_json::json!({ "plan_id": "p1" }),
        ),
        (
            Method::POST,
            "/api/v1/jobs/w1/cancel",
            serde_json::json!({}),
        ),
    ] {
        let res = send(&f, req(method.clone(), path, Some(&vic), true, Some(body))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            body_json(res).await["error"],
            "this needs the operator role",
            "{method} {path}"
        );
    }
    let res = send(
        &f,
        multipart(
            "/api/v1/people/alice@example.org/certificates",
            &vic,
            "certificate",
            "alice.pem",
            alice.as_bytes(),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(people_with_certificates(&f).await, 0);
    assert!(
        !audit_rows(&f)
            .await
            .iter()
            .any(|r| r.operation == "publish" || r.operation == "unpublish")
    );
    // What a viewer may do: read.
    for path in [
        "/api/v1/people",
        "/api/v1/people/alice@example.org",
        "/api/v1/trust",
        "/api/v1/audit",
    ] {
        let res = send(&f, req(Method::GET, path, Some(&vic), false, None)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_publishes_uploads_and_unpublishes_after_reauthenticating() {
    let f = fixture().await;
    let otto = sign_in(&f, "otto").await;
    let alice = pki("alice.pem");
    // Multipart, PEM.
    let res = send(
        &f,
        multipart(
            "/api/v1/people/alice@example.org/certificates?directory=local",
            &otto,
            "certificate",
            "alice.pem",
            &alice,
        ),
    )
    .await;
    let status = res.status();
    let body = body_json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added"].as_array().unwrap().len(), 1, "{body}");
    let thumb = body["added"][0]["sha1_thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    // JSON {"pem"}.
    let bob = String::from_utf8(pki("bob.pem")).unwrap();
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/people/bob@example.org/certificates",
            Some(&otto),
            true,
            Some(serde_json::json!({ "pem": bob })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Not certificates: a private key, a PKCS#12, junk; a certificate for someone else.
    for (file, data, why) in [
        ("alice.key", pki("alice.key"), "private key"),
        ("alice.p12", pki("alice.p12"), "not a certificate"),
        ("junk.pem", b"hello".to_vec(), "not a certificate"),
    ] {
        let res = send(
            &f,
            multipart(
                "/api/v1/people/carol@example.org/certificates",
                &otto,
                "certificate",
                file,
                &data,
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{file}");
        let msg = body_json(res).await["error"].as_str().unwrap().to_string();
        assert!(msg.contains(why), "{file}: {msg}");
    }
    let res = send(
        &f,
        multipart(
            "/api/v1/people/carol@example.org/certificates",
            &otto,
            "certificate",
            "alice.pem",
            &alice,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = send(
        &f,
        multipart(
            "/api/v1/people/carol@example.org/certificates",
            &otto,
            "wrong-field",
            "alice.pem",
            &alice,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(people_with_certificates(&f).await, 2);

    // The person: the certificate in `local`, usable, with its lint, and the history.
    let res = send(
        &f,
        req(
            Method::GET,
            "/api/v1/people/alice@example.org",
            Some(&otto),
            false,
            None,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p = body_json(res).await;
    assert_eq!(p["directories"][0]["directory"], "local", "{p}");
    let cert = &p["directories"][0]["certificates"][0];
    assert_eq!(cert["sha1_thumbprint"], thumb.as_str(), "{p}");
    assert_eq!(cert["usable_for_encryption"], true, "{p}");
    assert!(cert["findings"].is_array(), "{p}");
    assert!(
        cert["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(p["history"][0]["operation"], "publish", "{p}");
    assert_eq!(p["history"][0]["actor"], "otto", "{p}");
    assert_eq!(p["history"][0]["frontend"], "web", "{p}");
    let res = send(
        &f,
        req(
            Method::GET,
            "/api/v1/people/not-an-address",
            Some(&otto),
            false,
            None,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Unpublish more than 10 minutes after signing in: re-authentication first.
    f.now.store(T0 + 601, Ordering::SeqCst);
    let del = format!("/api/v1/people/alice@example.org/certificates/{thumb}");
    let res = send(&f, req(Method::DELETE, &del, Some(&otto), true, None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(res).await["code"], "reauth");
    assert_eq!(people_with_certificates(&f).await, 2);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/reauth",
            Some(&otto),
            true,
            Some(serde_json::json!({ "password": "wrong guess" })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/reauth",
            Some(&otto),
            true,
            Some(serde_json::json!({ "password": "correct horse" })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_json_keep(res).await;
    let fresh = who_from(&body.0, &body.1);
    assert_ne!(fresh.cookie, otto.cookie);
    // The old session is gone; the new one may unpublish.
    let res = send(&f, req(Method::DELETE, &del, Some(&otto), true, None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send(&f, req(Method::DELETE, &del, Some(&fresh), true, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body_json(res).await["removed"][0]["sha1_thumbprint"],
        thumb.as_str()
    );
    assert_eq!(people_with_certificates(&f).await, 1);
    let res = send(&f, req(Method::DELETE, &del, Some(&fresh), true, None)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let rows = audit_rows(&f).await;
    let reauth: Vec<String> = rows
        .iter()
        .filter(|r| r.operation == "re-auth")
        .map(|r| format!("{} {}", r.actor, r.result))
        .collect();
    assert_eq!(
        reauth,
        [
            "otto refused: wrong password (client 192.0.2.10)",
            "otto ok (client 192.0.2.10)"
        ]
    );
    assert!(
        rows.iter()
            .any(|r| r.operation == "unpublish" && r.actor == "otto")
    );
}

/// The response head and its JSON body.
async fn body_json_keep(res: Response) -> (Response, serde_json::Value) {
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap();
    (Response::from_parts(parts, Body::empty()), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_per_client_address_and_audited() {
    let f = fixture_with(|s| {
        s.login_limit = LoginLimit {
            attempts: 4,
            window: 60,
        }
    })
    .await;
    // Different names, so that the per-user lockout is not what refuses.
    for i in 0..4 {
        let res = send(&f, login_req(&format!("nobody{i}"), "x", "198.51.100.1:1")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "attempt {i}");
    }
    for i in 4..7 {
        let res = send(&f, login_req("vic", "correct horse", "198.51.100.1:2")).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "attempt {i}");
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(res.headers()[header::RETRY_AFTER], "60");
    }
    // Another address is not held up.
    let res = send(&f, login_req("vic", "correct horse", "198.51.100.2:1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The next window.
    f.now.store(T0 + 60, Ordering::SeqCst);
    let res = send(&f, login_req("vic", "correct horse", "198.51.100.1:3")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rows: Vec<String> = audit_rows(&f)
        .await
        .iter()
        .filter(|r| r.operation == "sign-in")
        .map(|r| format!("{} {}", r.actor, r.result))
        .collect();
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains("too many attempts"))
            .collect::<Vec<_>>(),
        ["vic refused: too many attempts from this address (client 198.51.100.1)"],
        "once per window: {rows:?}"
    );
    assert_eq!(rows.len(), 4 + 1 + 2, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_through_trusted_proxies_only() {
    let f = fixture_with(|s| s.trusted_proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()]).await;
    let cases = [
        // A trusted proxy names the client.
        ("10.1.1.1:1", Some("203.0.113.9"), "203.0.113.9"),
        // Two trusted hops; what the client wrote on the left is not believed.
        (
            "10.1.1.1:1",
            Some("1.2.3.4, 203.0.113.8, 10.2.2.2"),
            "203.0.113.8",
        ),
        // An untrusted peer's header is ignored.
        ("192.0.2.99:1", Some("203.0.113.7"), "192.0.2.99"),
    ];
    for (peer, xff, _) in cases {
        let mut r = login_req("vic", "correct horse", peer);
        if let Some(x) = xff {
            r.headers_mut()
                .insert("x-forwarded-for", x.parse().unwrap());
        }
        assert_eq!(send(&f, r).await.status(), StatusCode::OK);
    }
    let clients: Vec<String> = audit_rows(&f)
        .await
        .iter()
        .filter(|r| r.operation == "sign-in")
        .map(|r| r.result.clone())
        .collect();
    let want: Vec<String> = cases
        .iter()
        .map(|(_, _, c)| format!("ok (client {c})"))
        .collect();
    assert_eq!(clients, want);
}

/// Reads a job's server-sent events to the end: (progress events, the end's JSON).
async fn follow(f: &Fixture, who: &Who, events: &str) -> (usize, serde_json::Value) {
    let res = send(f, req(Method::GET, events, Some(who), false, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let text = String::from_utf8(body_bytes(res).await).unwrap();
    let mut progress = 0;
    let mut end = serde_json::Value::Null;
    for block in text.split("\n\n") {
        let event = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        match (event, data) {
            (Some("progress"), Some(d)) => {
                let v: serde_json::Value = serde_json::from_str(d).unwrap();
                assert!(v["done"].as_u64().unwrap() <= v["total"].as_u64().unwrap());
                progress += 1;
            }
            (Some("end"), Some(d)) => end = serde_json::from_str(d).unwrap(),
            _ => {}
        }
    }
    (progress, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_deploy_file_is_planned_and_applied_as_a_watched_job() {
    let f = fixture().await;
    let otto = sign_in(&f, "otto").await;
    let b64 = |n: &str| base64::engine::general_purpose::STANDARD.encode(pki(n));
    let deploy = "directories = [\"local\"]\n[[people]]\naddress = \"alice@example.org\"\ncertificates = [\"certs/alice.pem\"]\n[[people]]\naddress = \"bob@example.org\"\ncertificates = [\"certs/bob.pem\"]\n";
    let body = serde_json::json!({
        "deploy": deploy,
        "files": { "certs/alice.pem": b64("alice.pem"), "certs/bob.pem": b64("bob.pem") },
    });
    let res = send(
        &f,
        req(Method::POST, "/api/v1/plan", Some(&otto), true, Some(body)),
    )
    .await;
    let status = res.status();
    let plan = body_json(res).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["has_changes"], true);
    assert_eq!(plan["removals"], 0);
    assert_eq!(plan["plan"]["summary"]["add"], 2, "{plan}");
    assert!(
        plan["rendered"]
            .as_str()
            .unwrap()
            .contains("alice@example.org")
    );
    // A deploy file naming a file that was not uploaded: its file and line.
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/plan",
            Some(&otto),
            true,
            Some(serde_json::json!({ "deploy": deploy })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let err = body_json(res).await["error"].as_str().unwrap().to_string();
    assert!(err.contains("deploy.toml:4"), "{err}");

    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/apply",
            Some(&otto),
            true,
            Some(serde_json::json!({ "plan_id": plan["id"] })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started = body_json(res).await;
    let (progress, end) = follow(&f, &otto, started["events"].as_str().unwrap()).await;
    assert_eq!(end["outcome"], "ok", "{end}");
    assert_eq!(end["result"]["done"], 2, "{end}");
    assert!(progress >= 2, "{progress} progress events");
    // A late watcher sees the same events from the start.
    assert_eq!(
        follow(&f, &otto, started["events"].as_str().unwrap()).await,
        (progress, end.clone())
    );
    let job = format!("/api/v1/jobs/{}", started["job"].as_str().unwrap());
    let res = send(&f, req(Method::GET, &job, Some(&otto), false, None)).await;
    let state = body_json(res).await;
    assert_eq!(state["state"], "ok", "{state}");
    let record = state["record"].as_i64().unwrap();
    // The store's record of it (what another server sees).
    let res = send(
        &f,
        req(
            Method::GET,
            &format!("/api/v1/jobs/{record}"),
            Some(&otto),
            false,
            None,
        ),
    )
    .await;
    let rec = body_json(res).await;
    assert_eq!(
        (&rec["kind"], &rec["state"], &rec["actor"]),
        (&"apply".into(), &"ok".into(), &"otto".into()),
        "{rec}"
    );
    assert_eq!(people_with_certificates(&f).await, 2);

    // Without bob, the plan removes his certificate: applying it needs a recent sign-in.
    let deploy2 = "directories = [\"local\"]\n[[people]]\naddress = \"alice@example.org\"\ncertificates = [\"certs/alice.pem\"]\n";
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/plan",
            Some(&otto),
            true,
            Some(serde_json::json!({ "deploy": deploy2, "files": { "certs/alice.pem": b64("alice.pem") }, "refresh": true })),
        ),
    )
    .await;
    let plan2 = body_json(res).await;
    assert_eq!(plan2["removals"], 1, "{plan2}");
    f.now.store(T0 + 601, Ordering::SeqCst);
    let apply2 = serde_json::json!({ "plan_id": plan2["id"] });
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/apply",
            Some(&otto),
            true,
            Some(apply2.clone()),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(res).await["code"], "reauth");
    assert_eq!(people_with_certificates(&f).await, 2);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/reauth",
            Some(&otto),
            true,
            Some(serde_json::json!({ "password": "correct horse" })),
        ),
    )
    .await;
    let (head, me) = body_json_keep(res).await;
    let fresh = who_from(&head, &me);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/apply",
            Some(&fresh),
            true,
            Some(apply2),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started = body_json(res).await;
    let (_, end) = follow(&f, &fresh, started["events"].as_str().unwrap()).await;
    assert_eq!(end["outcome"], "ok", "{end}");
    assert_eq!(people_with_certificates(&f).await, 1);
    // An unknown plan, an unknown job.
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/apply",
            Some(&fresh),
            true,
            Some(serde_json::json!({ "plan_id": "p99" })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = send(
        &f,
        req(Method::GET, "/api/v1/jobs/w99", Some(&fresh), false, None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The audit log through the API: newest first, filtered.
    let res = send(
        &f,
        req(
            Method::GET,
            "/api/v1/audit?operation=sign-in&limit=2",
            Some(&fresh),
            false,
            None,
        ),
    )
    .await;
    let a = body_json(res).await;
    assert_eq!(a["rows"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(a["total"], 1);
    let res = send(
        &f,
        req(Method::GET, "/api/v1/trust", Some(&fresh), false, None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A CA in a temp folder (its key's password given here, as the server's own source would)
/// that issued a certificate for alice@example.org: the folder and the serial.
async fn ca_with_one_issued(f: &Fixture) -> (String, String) {
    let dir = f._tmp.path().join("ca");
    let secret = || smimekit_service::Secret::new(b"ca password".to_vec());
    f.service
        .ca_init(&smimekit_service::CaInitRequest {
            dir: dir.clone(),
            name: "Web API Test".into(),
            key_type: smimekit_service::CaKeyType::P256,
            secret: secret(),
            crl_url: None,
        })
        .await
        .unwrap();
    f.service
        .ca_issue(&smimekit_service::CaIssueRequest {
            dir: dir.clone(),
            ca_secret: Some(secret()),
            source: smimekit_service::IssueSource::Generate {
                email: "alice@example.org".into(),
                key_type: smimekit_service::CaKeyType::P256,
                p12_name: "alice.p12".into(),
                p12_secret: smimekit_service::Secret::new(b"p12 password".to_vec()),
                legacy: false,
            },
            days: 365,
            renew: false,
        })
        .await
        .unwrap();
    let issued = f.service.ca_issued(&dir).await.unwrap();
    (dir.display().to_string(), issued[0].serial.clone())
}

async fn revoked_at(f: &Fixture, dir: &str) -> Option<i64> {
    f.service
        .ca_issued(std::path::Path::new(dir))
        .await
        .unwrap()[0]
        .revoked_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_revokes_what_the_ca_issued_after_reauthenticating() {
    let f = fixture().await;
    let (dir, serial) = ca_with_one_issued(&f).await;
    let issued = format!("/api/v1/ca/issued?dir={}", dir.replace('/', "%2F"));
    let revoke =
        |reason: &str| serde_json::json!({ "dir": dir, "serial": serial, "reason": reason });
    // A viewer and an operator may neither list nor revoke.
    for name in ["vic", "otto"] {
        let who = sign_in(&f, name).await;
        let res = send(&f, req(Method::GET, &issued, Some(&who), false, None)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        let res = send(
            &f,
            req(
                Method::POST,
                "/api/v1/ca/revoke",
                Some(&who),
                true,
                Some(revoke("key-compromise")),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(body_json(res).await["error"], "this needs the admin role");
    }
    let ada = sign_in(&f, "ada").await;
    let res = send(&f, req(Method::GET, &issued, Some(&ada), false, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = body_json(res).await;
    assert_eq!(list[0]["serial"], serial.as_str(), "{list}");
    assert_eq!(list[0]["email"], "alice@example.org", "{list}");
    assert!(list[0]["revoked_at"].is_null(), "{list}");
    // Without the CSRF token: refused.
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/ca/revoke",
            Some(&ada),
            false,
            Some(revoke("key-compromise")),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(revoked_at(&f, &dir).await, None);
    // More than 10 minutes after signing in: re-authentication first.
    f.now.store(T0 + 601, Ordering::SeqCst);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/ca/revoke",
            Some(&ada),
            true,
            Some(revoke("key-compromise")),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(res).await["code"], "reauth");
    assert_eq!(revoked_at(&f, &dir).await, None);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/reauth",
            Some(&ada),
            true,
            Some(serde_json::json!({ "password": "correct horse" })),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, body) = body_json_keep(res).await;
    let fresh = who_from(&res, &body);
    // Not a reason: refused, nothing revoked.
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/ca/revoke",
            Some(&fresh),
            true,
            Some(revoke("boredom")),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(revoked_at(&f, &dir).await, None);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/ca/revoke",
            Some(&fresh),
            true,
            Some(revoke("key-compromise")),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let r = body_json(res).await;
    assert_eq!(r["serial"], serial.as_str(), "{r}");
    assert_eq!(r["reason"], "key-compromise", "{r}");
    assert_eq!(revoked_at(&f, &dir).await, Some(T0 + 601));
    // Twice, or a serial it never issued: refused.
    for s in [serial.as_str(), "0BADC0DE"] {
        let res = send(
            &f,
            req(
                Method::POST,
                "/api/v1/ca/revoke",
                Some(&fresh),
                true,
                Some(serde_json::json!({ "dir": dir, "serial": s })),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{s}");
    }
    let rows: Vec<_> = audit_rows(&f)
        .await
        .into_iter()
        .filter(|r| r.operation == "ca-revoke")
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].actor.as_str(), rows[0].address.as_str()),
        ("ada", "alice@example.org")
    );
    assert!(rows[0].result.contains(&serial), "{:?}", rows[0]);
    // The issue before, and a CRL after, are in the audit log too.
    let crl = f
        .service
        .ca_crl(&smimekit_service::CaCrlRequest {
            dir: dir.clone().into(),
            ca_secret: Some(smimekit_service::Secret::new(b"ca password".to_vec())),
            days: 7,
        })
        .await
        .unwrap();
    assert_eq!(crl.revoked, std::slice::from_ref(&serial));
    let rows = audit_rows(&f).await;
    let of = |op: &str| {
        rows.iter()
            .filter(|r| r.operation == op)
            .collect::<Vec<_>>()
    };
    let issued = of("ca-issue");
    assert_eq!(issued.len(), 1, "{rows:?}");
    assert_eq!(issued[0].address, "alice@example.org");
    assert!(issued[0].result.contains(&serial), "{:?}", issued[0]);
    assert_eq!(issued[0].directory, format!("ca:{dir}"));
    let crls = of("ca-crl");
    assert_eq!(crls.len(), 1, "{rows:?}");
    assert!(
        crls[0]
            .result
            .contains(&format!("cRLNumber {}, 1 revoked", crl.crl_number)),
        "{:?}",
        crls[0]
    );
}

async fn trust_len(f: &Fixture) -> usize {
    f.service
        .trust_show(Some("local"))
        .await
        .unwrap()
        .certificates
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pushes_a_trust_chain_and_a_removal_needs_reauthentication() {
    let f = fixture().await;
    let chain = pki("chain.pem");
    let otto = sign_in(&f, "otto").await;
    let res = send(
        &f,
        multipart("/api/v1/trust", &otto, "certificate", "chain.pem", &chain),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let ada = sign_in(&f, "ada").await;
    // The preview writes nothing.
    let res = send(
        &f,
        multipart(
            "/api/v1/trust?directory=local&preview=true",
            &ada,
            "certificate",
            "chain.pem",
            &chain,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p = body_json(res).await;
    assert_eq!(
        (p["pushed"].as_bool(), p["added"].as_array().map(Vec::len)),
        (Some(false), Some(2)),
        "{p}"
    );
    assert_eq!(trust_len(&f).await, 0);
    // Without the CSRF token: refused.
    let mut r = multipart(
        "/api/v1/trust?directory=local",
        &ada,
        "certificate",
        "chain.pem",
        &chain,
    );
    r.headers_mut().remove(CSRF_HEADER);
    assert_eq!(send(&f, r).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(trust_len(&f).await, 0);
    let res = send(
        &f,
        multipart(
            "/api/v1/trust?directory=local",
            &ada,
            "certificate",
            "chain.pem",
            &chain,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p = body_json(res).await;
    assert_eq!(p["pushed"], true, "{p}");
    assert_eq!(p["directory"], "local", "{p}");
    assert_eq!(trust_len(&f).await, 2);
    // A leaf is not a trust chain; a private key never goes to the server.
    let alice = String::from_utf8(pki("alice.pem")).unwrap();
    let key = String::from_utf8(pki("alice.key")).unwrap();
    for pem in [alice, key] {
        let res = send(
            &f,
            req(
                Method::POST,
                "/api/v1/trust?directory=local",
                Some(&ada),
                true,
                Some(serde_json::json!({ "pem": pem })),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(trust_len(&f).await, 2);
    // Later than 10 minutes: the same chain again removes nothing and needs no password; the
    // root alone removes the intermediate and does.
    f.now.store(T0 + 601, Ordering::SeqCst);
    let res = send(
        &f,
        multipart(
            "/api/v1/trust?directory=local",
            &ada,
            "certificate",
            "chain.pem",
            &chain,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body_json(res).await["kept"].as_array().map(Vec::len),
        Some(2)
    );
    let root = pki("root.pem");
    let res = send(
        &f,
        multipart(
            "/api/v1/trust?directory=local",
            &ada,
            "certificate",
            "root.pem",
            &root,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(res).await["code"], "reauth");
    assert_eq!(trust_len(&f).await, 2);
    let res = send(
        &f,
        req(
            Method::POST,
            "/api/v1/reauth",
            Some(&ada),
            true,
            Some(serde_json::json!({ "password": "correct horse" })),
        ),
    )
    .await;
    let (res, body) = body_json_keep(res).await;
    let fresh = who_from(&res, &body);
    let res = send(
        &f,
        multipart(
            "/api/v1/trust?directory=local",
            &fresh,
            "certificate",
            "root.pem",
            &root,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p = body_json(res).await;
    assert_eq!(p["removed"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(trust_len(&f).await, 1);
    assert_eq!(
        audit_rows(&f)
            .await
            .iter()
            .filter(|r| r.operation == "trust-push" && r.actor == "ada")
            .count(),
        3
    );
}
