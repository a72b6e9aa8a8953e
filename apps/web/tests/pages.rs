//! The HTML pages through the router with `tower::ServiceExt::oneshot`, on a real SQLite store
//! and a local directory in a temp folder: anonymous requests refused (but the sign-in page and
//! its assets), the sign-in form, forms carrying the CSRF token in a field (and refused
//! without it, changing nothing), roles, the people list and its CSV, a person's publish and
//! unpublish, and no inline script or style anywhere (the CSP forbids them).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use smimekit_service::{Config, Named, PublishRequest, Role, Secret, ServiceBuilder};
use smimekit_web::{AppState, router};
use tower::ServiceExt;

mod common;
use common::{Fixture, T0, pki, service_with_users};

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::from_toml(
        "[store]\nurl = \"sqlite:s.db\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n[directory.other]\nkind = \"local\"\npath = \"other.json\"\n",
        &tmp.path().join("config.toml"),
    )
    .unwrap();
    let (service, now) = service_with_users(config).await;
    let app = router(AppState::new(service.clone()));
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

async fn text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 8 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn form(body: &str) -> Body {
    Body::from(body.to_string())
}

/// A signed-in browser: its cookie and the CSRF token its pages carry.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    fn get(&self, uri: &str) -> Request<Body> {
        Request::get(uri)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .unwrap()
    }

    /// A form post, with the page's CSRF field unless `csrf` is false.
    fn post(&self, uri: &str, fields: &str, csrf: bool) -> Request<Body> {
        let body = if csrf {
            format!("csrf={}&{fields}", self.csrf)
        } else {
            fields.to_string()
        };
        Request::post(uri)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&body))
            .unwrap()
    }

    fn multipart(
        &self,
        uri: &str,
        parts: &[(&str, Option<&str>, &[u8])],
        csrf: bool,
    ) -> Request<Body> {
        let boundary = "XsmimekitX";
        let mut body = Vec::new();
        let mut all: Vec<(&str, Option<&str>, &[u8])> = Vec::new();
        if csrf {
            all.push(("csrf", None, self.csrf.as_bytes()));
        }
        all.extend_from_slice(parts);
        for (name, file, data) in all {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Request::post(uri)
            .header(header::COOKIE, &self.cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap()
    }
}

/// Signs in through the sign-in form and reads the CSRF token from the page it leads to.
async fn sign_in(f: &Fixture, name: &str) -> Browser {
    let res = send(
        f,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&format!("name={name}&password=correct+horse")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/");
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let page = text(
        send(
            f,
            Request::get("/")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page's forms carry the CSRF token")
        .to_string();
    Browser { cookie, csrf }
}

/// Every page route, with a method.
const PAGES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/dashboard/health"),
    ("GET", "/people"),
    ("GET", "/people.csv"),
    ("GET", "/people/alice@example.org"),
    ("POST", "/people/alice@example.org/publish"),
    (
        "GET",
        "/people/alice@example.org/unpublish?directory=local&thumbprint=00",
    ),
    ("POST", "/people/alice@example.org/unpublish"),
    ("GET", "/deploy"),
    ("POST", "/deploy/plan"),
    ("POST", "/deploy/apply"),
    ("GET", "/deploy/jobs/w1"),
    ("GET", "/deploy/jobs/w1/events"),
    ("POST", "/deploy/jobs/w1/cancel"),
    ("GET", "/audit"),
    ("GET", "/audit.csv"),
    ("GET", "/trust"),
    ("POST", "/trust/preview"),
    ("POST", "/trust/push"),
    ("GET", "/ca"),
    ("POST", "/ca/revoke"),
    ("POST", "/ca/issue"),
    ("POST", "/ca/crl"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("POST", "/users/vic/remove"),
    ("GET", "/settings"),
    ("POST", "/logout"),
];

#[tokio::test]
async fn anonymous_requests_get_the_sign_in_page_and_its_assets_only() {
    let f = fixture().await;
    f.service
        .publish(&PublishRequest {
            address: "alice@example.org".into(),
            certificate: Named::new("alice.pem", pki("alice.pem")),
            directory: Some("local".into()),
            ..PublishRequest::default()
        })
        .await
        .unwrap();
    for (method, uri) in PAGES {
        let res = send(
            &f,
            Request::builder()
                .method(*method)
                .uri(*uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
        // The browser is sent on to the sign-in page; nothing of the data is in the answer.
        assert_eq!(res.headers()[header::REFRESH], "0; url=/login", "{uri}");
        let body = text(res).await;
        assert!(!body.contains("alice@example.org"), "{uri} leaked: {body}");
    }
    let res = send(&f, Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let page = text(res).await;
    assert!(page.contains("action=\"/login\""));
    for (asset, kind) in [
        ("htmx.min.js", "text/javascript"),
        ("sse.min.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        // The page links the asset with its content hash: kept by the browser for a year.
        let prefix = format!("/static/{asset}?v=");
        let at = page
            .find(&prefix)
            .unwrap_or_else(|| panic!("the sign-in page links {prefix}: {page}"));
        let uri = page[at..].split('"').next().unwrap().to_string();
        let res = send(&f, Request::get(&uri).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(
            res.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{uri}"
        );
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(uri.ends_with(etag.trim_matches('"')), "{uri} {etag}");
        assert!(!text(res).await.is_empty());
        // Asked again with its ETag: not modified, no body.
        let res = send(
            &f,
            Request::get(&uri)
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{uri}");
        assert!(text(res).await.is_empty());
        // Without the hash (or with another build's): served, to be revalidated each time.
        for other in [
            format!("/static/{asset}"),
            format!("/static/{asset}?v=0000000000000000"),
        ] {
            let res = send(&f, Request::get(&other).body(Body::empty()).unwrap()).await;
            assert_eq!(res.status(), StatusCode::OK, "{other}");
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache", "{other}");
            assert_eq!(res.headers()[header::ETAG], etag.as_str(), "{other}");
        }
    }
    // The pages themselves are never cached.
    let res = send(&f, Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let res = send(
        &f,
        Request::get("/static/secret.txt")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sign_in_form_refuses_a_wrong_password_and_sign_out_ends_the_session() {
    let f = fixture().await;
    let res = send(
        &f,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form("name=vic&password=wrong"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let page = text(res).await;
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("value=\"vic\""), "the name is kept: {page}");

    let b = sign_in(&f, "vic").await;
    assert_eq!(send(&f, b.get("/people")).await.status(), StatusCode::OK);
    // Sign-out without the form's token is refused and the session lives on.
    let res = send(&f, b.post("/logout", "", false)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(send(&f, b.get("/people")).await.status(), StatusCode::OK);
    let res = send(&f, b.post("/logout", "", true)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        send(&f, b.get("/people")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn every_page_renders_without_inline_script_or_style() {
    let f = fixture().await;
    f.service
        .publish(&PublishRequest {
            address: "alice@example.org".into(),
            certificate: Named::new("alice.pem", pki("alice.pem")),
            directory: Some("local".into()),
            ..PublishRequest::default()
        })
        .await
        .unwrap();
    let b = sign_in(&f, "ada").await;
    for uri in [
        "/",
        "/dashboard/health",
        "/people",
        "/people?query=ali&status=ready&directory=local&sort=expiry&expiring=60",
        "/people/alice@example.org",
        "/deploy",
        "/audit",
        "/trust",
        "/ca",
        "/users",
        "/settings",
    ] {
        let res = send(&f, b.get(uri)).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{uri}"
        );
        let page = text(res).await;
        for bad in [
            "<script>",
            " style=",
            "<style",
            " onclick=",
            " onload=",
            "javascript:",
        ] {
            assert!(!page.contains(bad), "{uri} has {bad:?}");
        }
        // Every script is an embedded asset.
        for src in page.split("<script src=\"").skip(1) {
            assert!(src.starts_with("/static/"), "{uri}: {src}");
        }
        // Every form that changes something carries the CSRF token.
        for form in page.split("<form").skip(1) {
            let head = form.split('>').next().unwrap();
            if head.contains("method=\"post\"") {
                let body = form.split("</form>").next().unwrap();
                assert!(
                    body.contains(&format!("value=\"{}\"", b.csrf)),
                    "{uri}: {head}"
                );
            }
        }
    }
    let page = text(send(&f, b.get("/people")).await).await;
    assert!(
        page.contains("href=\"/people/alice@example.org\""),
        "{page}"
    );
    let page = text(send(&f, b.get("/people/alice@example.org")).await).await;
    assert!(page.contains("Alice Example"), "{page}");
    assert!(page.contains("can encrypt"), "{page}");
}

/// The dashboard's count with this label.
fn dashboard_stat(page: &str, label: &str) -> usize {
    let end = format!("</span><span class=\"label\">{label}</span>");
    let at = page
        .find(&end)
        .unwrap_or_else(|| panic!("no {label:?} on the dashboard: {page}"));
    let start = page[..at].rfind('>').unwrap() + 1;
    page[start..at].parse().unwrap()
}

/// The dashboard's per-directory row: ready, expiring, not ready.
fn dashboard_row(page: &str, directory: &str) -> Vec<usize> {
    let start = format!(">{directory}</a></td>");
    let at = page
        .find(&start)
        .unwrap_or_else(|| panic!("no row {directory:?}: {page}"));
    let row = page[at..].split("</tr>").next().unwrap();
    row.split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_dashboard_counts_people_per_expiry_window_and_directory() {
    let f = fixture().await;
    for (address, file, dir) in [
        ("alice@example.org", "alice.pem", "local"),
        ("bob@example.org", "bob.pem", "other"),
        ("carol@example.org", "carol.pem", "local"),
    ] {
        f.service
            .publish(&PublishRequest {
                address: address.into(),
                certificate: Named::new(file, pki(file)),
                directory: Some(dir.into()),
                ..PublishRequest::default()
            })
            .await
            .unwrap();
    }
    let b = sign_in(&f, "vic").await;
    let page = text(send(&f, b.get("/")).await).await;
    assert_eq!(dashboard_stat(&page, "people"), 3);
    assert_eq!(dashboard_stat(&page, "ready"), 3);
    assert_eq!(dashboard_stat(&page, "not ready"), 0);
    for window in [30, 60, 90] {
        assert_eq!(
            dashboard_stat(&page, &format!("expiring in {window} days")),
            0
        );
    }
    assert_eq!(dashboard_row(&page, "local"), [2, 0, 0]);
    assert_eq!(dashboard_row(&page, "other"), [1, 0, 0]);
    // 45 days before the three certificates end (2045-01-01): expiring within 60 and 90
    // days, not within 30.
    f.now.store(2_366_841_600 - 45 * 86_400, Ordering::SeqCst);
    let b = sign_in(&f, "vic").await;
    let page = text(send(&f, b.get("/")).await).await;
    assert_eq!(dashboard_stat(&page, "people"), 3);
    assert_eq!(dashboard_stat(&page, "ready"), 3);
    assert_eq!(dashboard_stat(&page, "expiring in 30 days"), 0);
    assert_eq!(dashboard_stat(&page, "expiring in 60 days"), 3);
    assert_eq!(dashboard_stat(&page, "expiring in 90 days"), 3);
    assert_eq!(dashboard_row(&page, "local"), [2, 0, 0]);
    // 10 days before: expiring in every window; 2 days after: nobody is ready.
    f.now.store(2_366_841_600 - 10 * 86_400, Ordering::SeqCst);
    let b = sign_in(&f, "vic").await;
    let page = text(send(&f, b.get("/")).await).await;
    assert_eq!(dashboard_stat(&page, "expiring in 30 days"), 3);
    assert_eq!(dashboard_stat(&page, "ready"), 0);
    assert_eq!(dashboard_row(&page, "local"), [0, 2, 0]);
    assert_eq!(dashboard_row(&page, "other"), [0, 1, 0]);
    f.now.store(2_366_841_600 + 2 * 86_400, Ordering::SeqCst);
    let b = sign_in(&f, "vic").await;
    let page = text(send(&f, b.get("/")).await).await;
    assert_eq!(dashboard_stat(&page, "not ready"), 3);
    assert_eq!(dashboard_stat(&page, "people"), 3);
    assert_eq!(dashboard_row(&page, "local"), [0, 0, 2]);
}

#[tokio::test]
async fn the_people_list_filters_pages_and_exports_csv() {
    let f = fixture().await;
    for (address, file, dir) in [
        ("alice@example.org", "alice.pem", "local"),
        ("bob@example.org", "bob.pem", "other"),
    ] {
        f.service
            .publish(&PublishRequest {
                address: address.into(),
                certificate: Named::new(file, pki(file)),
                directory: Some(dir.into()),
                ..PublishRequest::default()
            })
            .await
            .unwrap();
    }
    let b = sign_in(&f, "vic").await;
    let page = text(send(&f, b.get("/people?directory=other")).await).await;
    assert!(
        page.contains("bob@example.org") && !page.contains("alice@example.org"),
        "{page}"
    );
    let page = text(send(&f, b.get("/people?query=ALI")).await).await;
    assert!(
        page.contains("alice@example.org") && !page.contains("bob@example.org"),
        "{page}"
    );
    let page = text(send(&f, b.get("/people?status=not-ready")).await).await;
    assert!(!page.contains("href=\"/people/alice"), "{page}");
    let res = send(&f, b.get("/people?status=bogus")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // htmx asks for the same page; the filters' results carry the id it selects.
    let res = send(
        &f,
        Request::get("/people?query=bob")
            .header(header::COOKIE, &b.cookie)
            .header("hx-request", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(text(res).await.contains("id=\"people-results\""));

    let res = send(&f, b.get("/people.csv?directory=local")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = text(res).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "address,kind,directories,certificates,status,earliest_expiry"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("alice@example.org,mailbox,local,1,ready,2045-01-01"),
        "{csv}"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_field_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let b = sign_in(&f, "ada").await;
    let res = send(
        &f,
        b.post(
            "/users",
            "name=eve&role=viewer&password=long+enough+pw",
            false,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        !f.service
            .user_list()
            .await
            .unwrap()
            .iter()
            .any(|u| u.name == "eve")
    );
    // A wrong token is no better.
    let res = send(
        &f,
        Request::post("/users")
            .header(header::COOKIE, &b.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form("csrf=00&name=eve&role=viewer&password=long+enough+pw"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        !f.service
            .user_list()
            .await
            .unwrap()
            .iter()
            .any(|u| u.name == "eve")
    );
    // A multipart form without it: the upload is refused and nothing is published.
    let res = send(
        &f,
        b.multipart(
            "/people/alice@example.org/publish",
            &[
                ("certificate", Some("alice.pem"), &pki("alice.pem")),
                ("directory", None, b"local"),
            ],
            false,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(f.service.people_all(30).await.unwrap().len(), 0);
    // With it, the same requests work.
    let res = send(
        &f,
        b.post(
            "/users",
            "name=eve&role=viewer&password=long+enough+pw",
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        f.service
            .user_list()
            .await
            .unwrap()
            .iter()
            .any(|u| u.name == "eve" && u.role == Role::Viewer)
    );
}

#[tokio::test]
async fn a_viewer_cannot_write_and_an_operator_cannot_manage_users() {
    let f = fixture().await;
    let vic = sign_in(&f, "vic").await;
    let res = send(
        &f,
        vic.multipart(
            "/people/alice@example.org/publish",
            &[
                ("certificate", Some("alice.pem"), &pki("alice.pem")),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(f.service.people_all(30).await.unwrap().len(), 0);
    // The viewer's person page offers no publish form.
    let page = text(send(&f, vic.get("/people/alice@example.org")).await).await;
    assert!(!page.contains("id=\"publish\""), "{page}");
    assert_eq!(
        send(&f, vic.get("/users")).await.status(),
        StatusCode::FORBIDDEN
    );
    let otto = sign_in(&f, "otto").await;
    assert_eq!(
        send(&f, otto.get("/users")).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = send(&f, otto.post("/users/vic/remove", "", true)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(f.service.user_list().await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_operator_publishes_an_upload_and_unpublishes_after_confirming() {
    let f = fixture().await;
    let otto = sign_in(&f, "otto").await;
    // A private key is not a certificate: refused, nothing published.
    let res = send(
        &f,
        otto.multipart(
            "/people/alice@example.org/publish",
            &[
                ("certificate", Some("alice.key"), &pki("alice.key")),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(res).await.contains("private key"));
    let res = send(
        &f,
        otto.multipart(
            "/people/alice@example.org/publish",
            &[
                ("certificate", Some("alice.pem"), &pki("alice.pem")),
                ("directory", None, b"other"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(to, "/people/alice@example.org?ok=published&dir=other");
    let page = text(send(&f, otto.get(&to)).await).await;
    assert!(page.contains("Published to other."), "{page}");
    let thumb = f
        .service
        .person("alice@example.org")
        .await
        .unwrap()
        .directories[1]
        .certificates[0]
        .cert
        .cert
        .sha1_thumbprint
        .clone();
    // The person page links the confirmation; it names the certificate.
    assert!(
        page.contains(&format!(
            "/people/alice@example.org/unpublish?directory=other&amp;thumbprint={thumb}"
        )),
        "{page}"
    );
    let confirm = text(
        send(
            &f,
            otto.get(&format!(
                "/people/alice@example.org/unpublish?directory=other&thumbprint={thumb}"
            )),
        )
        .await,
    )
    .await;
    assert!(
        confirm.contains(&thumb) && confirm.contains("id=\"unpublish\""),
        "{confirm}"
    );
    // Signed in just now: no password asked.
    assert!(!confirm.contains("name=\"password\""), "{confirm}");
    // Eleven minutes later, the password is asked again, and a wrong one changes nothing.
    f.now.store(T0 + 660, Ordering::SeqCst);
    let confirm = text(
        send(
            &f,
            otto.get(&format!(
                "/people/alice@example.org/unpublish?directory=other&thumbprint={thumb}"
            )),
        )
        .await,
    )
    .await;
    assert!(confirm.contains("name=\"password\""), "{confirm}");
    let fields = format!("directory=other&thumbprint={thumb}");
    let res = send(
        &f,
        otto.post("/people/alice@example.org/unpublish", &fields, true),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = send(
        &f,
        otto.post(
            "/people/alice@example.org/unpublish",
            &format!("{fields}&password=wrong"),
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        f.service
            .person("alice@example.org")
            .await
            .unwrap()
            .directories[1]
            .certificates
            .len(),
        1
    );
    let res = send(
        &f,
        otto.post(
            "/people/alice@example.org/unpublish",
            &format!("{fields}&password=correct+horse"),
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", text(res).await);
    // Re-authentication replaced the session: a new cookie comes with the answer.
    let renewed = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!renewed.starts_with(&otto.cookie));
    assert!(
        f.service
            .person("alice@example.org")
            .await
            .unwrap()
            .directories[1]
            .certificates
            .is_empty()
    );
    let history: Vec<String> = f
        .service
        .person("alice@example.org")
        .await
        .unwrap()
        .history
        .iter()
        .map(|r| r.operation.clone())
        .collect();
    assert_eq!(history, ["publish", "unpublish"]);
}

#[tokio::test]
async fn an_admin_previews_a_trust_chain_before_pushing_it() {
    let f = fixture().await;
    let ada = sign_in(&f, "ada").await;
    let chain = pki("chain.pem");
    // An operator may not.
    let otto = sign_in(&f, "otto").await;
    let res = send(
        &f,
        otto.multipart(
            "/trust/preview",
            &[
                ("chain", Some("chain.pem"), &chain),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = send(
        &f,
        ada.multipart(
            "/trust/preview",
            &[
                ("chain", Some("chain.pem"), &chain),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    // Both CA certificates are new; nothing is pushed by the preview.
    assert_eq!(page.matches(">added<").count(), 2, "{page}");
    assert!(
        f.service
            .trust_show(Some("local"))
            .await
            .unwrap()
            .certificates
            .is_empty()
    );
    let b64 = page
        .split("name=\"chain_b64\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let res = send(
        &f,
        ada.multipart(
            "/trust/push",
            &[
                ("chain_b64", None, b64.as_bytes()),
                ("name", None, b"chain.pem"),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        f.service
            .trust_show(Some("local"))
            .await
            .unwrap()
            .certificates
            .len(),
        2
    );
    let page = text(send(&f, ada.get("/trust")).await).await;
    assert!(page.contains("smimekit Test Intermediate CA"), "{page}");
    // The same chain again: every certificate kept.
    let res = send(
        &f,
        ada.multipart(
            "/trust/preview",
            &[
                ("chain", Some("chain.pem"), &chain),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    let page = text(res).await;
    assert_eq!(page.matches(">kept<").count(), 2, "{page}");
    // A leaf is not a trust chain.
    let res = send(
        &f,
        ada.multipart(
            "/trust/preview",
            &[
                ("chain", Some("alice.pem"), &pki("alice.pem")),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    assert!(text(res).await.contains("holds no CA certificate"));
    // Later than 10 minutes after signing in, a push that removes a certificate (the root
    // alone: the intermediate goes) asks for the password on the preview and checks it.
    f.now.store(T0 + 601, Ordering::SeqCst);
    let root = pki("root.pem");
    let res = send(
        &f,
        ada.multipart(
            "/trust/preview",
            &[
                ("chain", Some("root.pem"), &root),
                ("directory", None, b"local"),
            ],
            true,
        ),
    )
    .await;
    let page = text(res).await;
    assert_eq!(page.matches(">removed<").count(), 1, "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &root);
    let push = |password: &'static [u8]| {
        ada.multipart(
            "/trust/push",
            &[
                ("chain_b64", None, b64.as_bytes()),
                ("name", None, b"root.pem"),
                ("directory", None, b"local"),
                ("password", None, password),
            ],
            true,
        )
    };
    for (password, status) in [
        (&b""[..], StatusCode::FORBIDDEN),
        (b"wrong guess", StatusCode::FORBIDDEN),
    ] {
        let res = send(&f, push(password)).await;
        assert_eq!(res.status(), status);
        assert_eq!(
            f.service
                .trust_show(Some("local"))
                .await
                .unwrap()
                .certificates
                .len(),
            2
        );
    }
    let res = send(&f, push(b"correct horse")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", text(res).await);
    assert!(res.headers().contains_key(header::SET_COOKIE));
    assert_eq!(
        f.service
            .trust_show(Some("local"))
            .await
            .unwrap()
            .certificates
            .len(),
        1
    );
}

#[tokio::test]
async fn an_admin_issues_for_a_request_revokes_and_signs_a_crl() {
    let f = fixture().await;
    // The CA key's password is the server's own (its password file), never the browser's.
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("ca.pass");
    std::fs::write(&pw, "ca password\n").unwrap();
    let config = Config::from_toml(
        &format!(
            "[store]\nurl = \"sqlite:{}\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n",
            f._tmp.path().join("s.db").display()
        ),
        &tmp.path().join("config.toml"),
    )
    .unwrap();
    let clock = f.now.clone();
    let service = ServiceBuilder::default()
        .config(config)
        .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
        .password_file(Some(pw))
        .build()
        .unwrap();
    let dir = tmp.path().join("ca");
    service
        .ca_init(&smimekit_service::CaInitRequest {
            dir: dir.clone(),
            name: "Web Test".into(),
            key_type: smimekit_service::CaKeyType::P256,
            secret: Secret::new(b"ca password".to_vec()),
            crl_url: None,
        })
        .await
        .unwrap();
    let f = Fixture {
        app: router(AppState::new(service.clone())),
        now: f.now.clone(),
        service,
        _tmp: f._tmp,
    };
    let ada = sign_in(&f, "ada").await;
    let d = dir.display().to_string();
    let ca_page = format!("/ca?dir={}", d.replace('/', "%2F"));
    let page = text(send(&f, ada.get(&ca_page)).await).await;
    assert!(page.contains("Nothing issued yet."), "{page}");

    let csr = tmp.path().join("alice.csr");
    let out = std::process::Command::new("openssl")
        .args(["req", "-new", "-key"])
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/pki/alice.key"),
        )
        .args([
            "-subj",
            "/CN=Alice",
            "-addext",
            "subjectAltName=email:alice@example.org",
            "-out",
        ])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = send(
        &f,
        ada.multipart(
            "/ca/issue",
            &[
                ("dir", None, d.as_bytes()),
                ("csr", Some("alice.csr"), &std::fs::read(&csr).unwrap()),
                ("days", None, b"30"),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("alice@example.org.pem")
    );
    let pem = text(res).await;
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let issued = f.service.ca_issued(&dir).await.unwrap();
    assert_eq!(issued.len(), 1);
    let serial = issued[0].serial.clone();
    let page = text(send(&f, ada.get(&ca_page)).await).await;
    assert!(page.contains(&serial), "{page}");

    // An operator may do none of it.
    let otto = sign_in(&f, "otto").await;
    let res = send(&f, otto.post("/ca/crl", &format!("dir={d}&days=7"), true)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Revoke: a confirmation first, then the revocation.
    let fields = format!("dir={d}&serial={serial}");
    let res = send(&f, ada.post("/ca/revoke", &fields, true)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.contains("id=\"ca-revoke\""));
    assert!(
        f.service.ca_issued(&dir).await.unwrap()[0]
            .revoked_at
            .is_none()
    );
    let res = send(
        &f,
        ada.post(
            "/ca/revoke",
            &format!("{fields}&confirm=1&reason=key-compromise"),
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        f.service.ca_issued(&dir).await.unwrap()[0]
            .revoked_at
            .is_some()
    );

    let res = send(&f, ada.post("/ca/crl", &format!("dir={d}&days=7"), true)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let crl = text(res).await;
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
}

#[tokio::test]
async fn an_operator_plans_an_uploaded_deploy_file_and_watches_the_apply() {
    let f = fixture().await;
    let otto = sign_in(&f, "otto").await;
    let deploy = b"directories = [\"local\"]\n\n[[people]]\naddress = \"bob@example.org\"\ncertificates = [\"bob.pem\"]\n";
    // A file the deploy file names but that was not uploaded: the problem with its line.
    let res = send(
        &f,
        otto.multipart("/deploy/plan", &[("deploy", None, deploy)], true),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = text(res).await;
    assert!(
        page.contains("deploy.toml:5: bob.pem: cannot read"),
        "{page}"
    );
    let res = send(
        &f,
        otto.multipart(
            "/deploy/plan",
            &[
                ("deploy", None, deploy),
                ("files", Some("bob.pem"), &pki("bob.pem")),
            ],
            true,
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    // The plan as the CLI renders it.
    assert!(
        page.contains("directory local") && page.contains("Plan: 1 to add"),
        "{page}"
    );
    let plan_id = page
        .split("name=\"plan_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    // A viewer sees no apply and may not apply.
    let vic = sign_in(&f, "vic").await;
    let res = send(
        &f,
        vic.post("/deploy/apply", &format!("plan_id={plan_id}"), true),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = send(
        &f,
        otto.post("/deploy/apply", &format!("plan_id={plan_id}"), true),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let job = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert!(job.starts_with("/deploy/jobs/w"), "{job}");
    // The live view: HTML fragments over server-sent events, ending with `end` (the stream
    // closes then, so reading it to its end waits for the job, however long it takes).
    let res = send(&f, otto.get(&format!("{job}/events"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = text(res).await;
    assert!(events.contains("event: end"), "{events}");
    let end = events.rsplit("event: end").next().unwrap();
    assert!(
        end.contains("id=\"job-state\"") && end.contains(">ok<"),
        "{end}"
    );
    assert!(
        end.contains("id=\"job-steps\"") && end.contains("bob@example.org"),
        "{end}"
    );
    // The job page, now ended, has no live connection and shows the same end.
    let page = text(send(&f, otto.get(&job)).await).await;
    assert!(
        !page.contains("sse-connect") && page.contains(">ok<"),
        "{page}"
    );
    assert_eq!(
        f.service
            .person("bob@example.org")
            .await
            .unwrap()
            .directories[0]
            .certificates
            .len(),
        1
    );
}
