//! `smimekit-web` as a real process: HTTPS with `--tls-cert/--tls-key` (the cookie `Secure`),
//! plain HTTP refused off loopback, and two servers on one PostgreSQL store: a session, a
//! publish and an unpublish made through one are seen through the other, and the apply lock
//! holds across them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use smimekit_core::store::{LazyStore, LockInfo};

use crate::common::{fixtures, p};

fn web_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(format!("smimekit-web{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` runs `cargo build --bins` before the tests)",
        bin.display()
    );
    bin
}

/// A `smimekit-web serve` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve` on a free loopback port and waits for its "listening on" line.
    fn start(config: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(web_bin())
            .args(["--config", &p(config), "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("smimekit-web did not say where it listens: {line:?}"));
        Server { child, addr }
    }
}

fn user_add(config: &Path, dir: &Path, name: &str, role: &str) {
    let pw = dir.join("pw.txt");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let out = Command::new(web_bin())
        .args(["--config", &p(config), "user", "add", name, "--role", role])
        .args(["--password-file", &p(&pw)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        crate::common::show("user add", &out)
    );
}

/// A signed-in client: base URL, cookie pair, CSRF token.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Client {
    async fn sign_in(http: &reqwest::Client, base: &str, name: &str) -> (Client, String) {
        let res = http
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({ "name": name, "password": "correct horse" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
        let body: serde_json::Value = res.json().await.unwrap();
        let client = Client {
            http: http.clone(),
            base: base.to_string(),
            cookie: set_cookie.split(';').next().unwrap().to_string(),
            csrf: body["csrf"].as_str().unwrap().to_string(),
        };
        (client, set_cookie)
    }

    /// The same session, against another server.
    fn at(&self, base: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: base.to_string(),
            cookie: self.cookie.clone(),
            csrf: self.csrf.clone(),
        }
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Follows a job's events to its end; the end's JSON.
    async fn follow(&self, events: &str) -> serde_json::Value {
        let text = self
            .http
            .get(format!("{}{events}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.split("\n\n")
            .find_map(|b| {
                b.lines()
                    .any(|l| l == "event: end")
                    .then(|| b.lines().find_map(|l| l.strip_prefix("data: ")))
                    .flatten()
            })
            .map(|d| serde_json::from_str(d).unwrap())
            .unwrap_or_else(|| panic!("no end event in {text:?}"))
    }
}

fn certs_of(person: &serde_json::Value) -> usize {
    person["directories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["certificates"].as_array().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_secure_cookie_and_plain_http_only_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite:smimekit.db\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n",
    )
    .unwrap();
    user_add(&config, tmp.path(), "vic", "viewer");
    let (cert, key) = (tmp.path().join("tls.pem"), tmp.path().join("tls.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-keyout", &p(&key), "-out", &p(&cert)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        crate::common::show("openssl req", &out)
    );
    let server = Server::start(&config, &["--tls-cert", &p(&cert), "--tls-key", &p(&key)]);
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let base = format!("https://{}", server.addr);
    let (vic, set_cookie) = Client::sign_in(&http, &base, "vic").await;
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("; SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let (status, me) = vic.get("/api/v1/me").await;
    assert_eq!((status, me["user"].as_str()), (200, Some("vic")));
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // A bad key file is named.
    std::fs::write(tmp.path().join("bad.key"), "not a key").unwrap();
    let out = Command::new(web_bin())
        .args(["--config", &p(&config), "serve", "--listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            &p(&cert),
            "--tls-key",
            &p(&tmp.path().join("bad.key")),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.key"),
        "{}",
        crate::common::show("serve", &out)
    );
    // Plain HTTP off loopback is refused.
    let out = Command::new(web_bin())
        .args(["--config", &p(&config), "serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        crate::common::show("serve", &out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgresql_store_share_sessions_changes_and_the_apply_lock() {
    let pg = smimekit_testkit::pg::PgCluster::shared().unwrap();
    let url = pg.new_database("web").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{url}\"\n[directory.local]\nkind = \"local\"\npath = \"local.json\"\n"
        ),
    )
    .unwrap();
    user_add(&config, tmp.path(), "otto", "operator");
    let (a, b) = (Server::start(&config, &[]), Server::start(&config, &[]));
    let http = reqwest::Client::new();
    let (base_a, base_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let (on_a, _) = Client::sign_in(&http, &base_a, "otto").await;
    // The session lives in the store: server B knows it.
    let on_b = on_a.at(&base_b);
    assert_eq!(on_b.get("/api/v1/me").await.0, 200);

    // Published through A, seen through B; unpublished through B, gone in A.
    let (status, published) = on_a
        .send(
            reqwest::Method::POST,
            "/api/v1/people/alice@example.org/certificates",
            serde_json::json!({ "pem": std::fs::read_to_string(fixtures().join("pki/alice.pem")).unwrap() }),
        )
        .await;
    assert_eq!(status, 200, "{published}");
    let thumb = published["added"][0]["sha1_thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, person) = on_b.get("/api/v1/people/alice@example.org").await;
    assert_eq!(status, 200);
    assert_eq!(certs_of(&person), 1, "{person}");
    let (_, page) = on_b.get("/api/v1/people?query=alice").await;
    assert_eq!(page["total"], 1, "{page}");
    let (status, _) = on_b
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/people/alice@example.org/certificates/{thumb}"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, person) = on_a.get("/api/v1/people/alice@example.org").await;
    assert_eq!(certs_of(&person), 0, "{person}");

    // The apply lock, held by someone else (this live test process), refuses both servers.
    let deploy = serde_json::json!({
        "deploy": "directories = [\"local\"]\n[[people]]\naddress = \"bob@example.org\"\ncertificates = [\"bob.pem\"]\n",
        "files": { "bob.pem": base64_of(&fixtures().join("pki/bob.pem")) },
        "refresh": true,
    });
    smimekit_builtins::link();
    let store = LazyStore::new(url.clone()).get().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let holder = LockInfo {
        name: "apply".into(),
        id: "e2e-holder".into(),
        host: host_name(),
        pid: std::process::id(),
        actor: "e2e".into(),
        started: now,
        heartbeat: now,
    };
    assert!(store.lock_acquire(&holder, None).await.unwrap().is_none());
    for c in [&on_a, &on_b] {
        let (status, plan) = c
            .send(reqwest::Method::POST, "/api/v1/plan", deploy.clone())
            .await;
        assert_eq!(status, 200, "{plan}");
        let (status, started) = c
            .send(
                reqwest::Method::POST,
                "/api/v1/apply",
                serde_json::json!({ "plan_id": plan["id"] }),
            )
            .await;
        assert_eq!(status, 202, "{started}");
        let end = c.follow(started["events"].as_str().unwrap()).await;
        assert_eq!(end["succeeded"], false, "{end}");
        assert!(
            end["outcome"].as_str().unwrap().contains("e2e-holder"),
            "{end}"
        );
    }
    let (_, person) = on_a.get("/api/v1/people/bob@example.org").await;
    assert_eq!(certs_of(&person), 0, "nothing was applied: {person}");
    assert!(store.lock_release("apply", "e2e-holder").await.unwrap());
    // Freed: B applies; A sees the result, and B's job record.
    let (_, plan) = on_b
        .send(reqwest::Method::POST, "/api/v1/plan", deploy.clone())
        .await;
    let (_, started) = on_b
        .send(
            reqwest::Method::POST,
            "/api/v1/apply",
            serde_json::json!({ "plan_id": plan["id"] }),
        )
        .await;
    let end = on_b.follow(started["events"].as_str().unwrap()).await;
    assert_eq!(end["outcome"], "ok", "{end}");
    let (_, person) = on_a.get("/api/v1/people/bob@example.org").await;
    assert_eq!(certs_of(&person), 1, "{person}");
    let (_, job) = on_b
        .get(&format!(
            "/api/v1/jobs/{}",
            started["job"].as_str().unwrap()
        ))
        .await;
    let (status, record) = on_a
        .get(&format!("/api/v1/jobs/{}", job["record"].as_i64().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&record["kind"], &record["state"]),
        (&"apply".into(), &"ok".into()),
        "{record}"
    );
    // A job of B is not A's to watch live.
    let (status, _) = on_a.get(started["events"].as_str().unwrap()).await;
    assert_eq!(status, 404);
    // The audit log, through either server, has both servers' changes.
    let (_, log) = on_a.get("/api/v1/audit?actor=otto").await;
    let ops: Vec<&str> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    for op in ["publish", "unpublish"] {
        assert!(ops.contains(&op), "{ops:?}");
    }
}

fn base64_of(path: &Path) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

/// This machine's name, as the apply lock records its holder's.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
