//! The web admin's users and sessions (`smimekit-web user …`, sign-in, sign-out), kept in the
//! store so that several web servers on one PostgreSQL database share them.
//!
//! Passwords are hashed with argon2id (the PHC string is stored, never the password); a
//! session's cookie token is random and only its SHA-256 is stored; each session carries its
//! own CSRF token. Sign-ins and their failures go to the audit log with the client's address;
//! after [`SessionPolicy::max_failures`] failures in a row the user is locked out for
//! [`SessionPolicy::lockout`] seconds. This module knows nothing of HTTP or cookies: the web
//! app maps a [`SignIn`] to its cookie and a [`WebSessionInfo`] to its handlers' types.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use smimekit_core::Secret;
use smimekit_core::store::{AuditEntry, WebSession, WebUser};
use zeroize::Zeroizing;

use crate::store::store_error;
use crate::{ErrorKind, Service, ServiceError};

/// What a web user may do: a viewer reads; an operator also publishes, plans and applies; an
/// admin also manages users, the CA and the trust chain. Ordered: a higher role can do what a
/// lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    /// The role's name as stored and shown (`viewer`, `operator`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name; `Invalid` naming the field `role` otherwise.
    pub fn parse(s: &str) -> Result<Role, ServiceError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(ServiceError::new(
                ErrorKind::Invalid,
                format!("role {other:?}: not viewer, operator or admin"),
            )
            .for_field("role")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A web user as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebUserInfo {
    pub name: String,
    pub role: Role,
    pub created: i64,
    pub failures: u32,
    pub locked_until: Option<i64>,
}

/// Timeouts and the lockout, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long is over.
    pub idle: i64,
    /// A session this old is over, used or not.
    pub absolute: i64,
    /// Failed sign-ins in a row that lock the user out.
    pub max_failures: u32,
    /// How long a lockout lasts.
    pub lockout: i64,
}

impl SessionPolicy {
    /// How stale a session's recorded last use may get before a request writes it anew: a
    /// thirtieth of the idle timeout, from 1 s to 60 s (one minute of the default 30).
    pub fn touch_interval(&self) -> i64 {
        (self.idle / 30).clamp(1, 60)
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: 30 * 60,
            absolute: 12 * 60 * 60,
            max_failures: 5,
            lockout: 15 * 60,
        }
    }
}

/// A sign-in attempt.
#[derive(Debug)]
pub struct SignInRequest {
    pub name: String,
    pub password: Secret,
    /// The client's address, for the audit log.
    pub client: String,
}

/// A granted sign-in: the cookie's token (secret, zeroized when dropped) and the session.
pub struct SignIn {
    /// The value of the session cookie.
    pub token: Zeroizing<String>,
    pub session: WebSessionInfo,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A live session, as a request's cookie names it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSessionInfo {
    pub user: String,
    pub role: Role,
    /// The token every state-changing request must carry.
    pub csrf: String,
    pub created: i64,
}

impl fmt::Debug for WebSessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSessionInfo")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl WebSessionInfo {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The one answer to a refused sign-in (unknown user, wrong password, locked): it tells an
/// attacker nothing.
fn refused() -> ServiceError {
    ServiceError::new(
        ErrorKind::PermissionDenied,
        "sign-in refused: wrong name or password, or the account is locked for a while",
    )
}

fn expired() -> ServiceError {
    ServiceError::new(
        ErrorKind::PermissionDenied,
        "not signed in (or the session expired)",
    )
}

/// Random bytes as lower-case hex.
fn random_hex(n: usize) -> Result<Zeroizing<String>, ServiceError> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut buf).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("the OS random generator failed: {e}"),
        )
    })?;
    Ok(Zeroizing::new(hex::encode(&*buf)))
}

/// The stored id of a session token.
fn session_id(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorKind::Invalid,
            format!("user name {name:?}: 1 to 64 of the letters, digits and . _ - @ are allowed"),
        )
        .for_field("name"))
    }
}

fn check_password(password: &Secret) -> Result<(), ServiceError> {
    if password.expose().len() < 8 {
        return Err(
            ServiceError::new(ErrorKind::Invalid, "password: shorter than 8 bytes")
                .for_field("password"),
        );
    }
    Ok(())
}

/// Hashes with argon2id (the crate's default parameters) on the blocking pool.
async fn hash_password(password: &Secret) -> Result<String, ServiceError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("the OS random generator failed: {e}"),
        )
    })?;
    let pw = Zeroizing::new(password.expose().to_vec());
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("password salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(&pw, &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("password hash: {e}")))
    })
    .await
    .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("password hash task: {e}")))?
}

/// Verifies on the blocking pool; a stored hash that cannot be read verifies nothing.
async fn verify_password(password: &Secret, hash: String) -> bool {
    let pw = Zeroizing::new(password.expose().to_vec());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| argon2::Argon2::default().verify_password(&pw, &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password nobody knows, verified for unknown users so that they take as
/// long as known ones (made once per process, with the same parameters as real hashes).
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

async fn dummy_hash() -> Result<String, ServiceError> {
    DUMMY_HASH
        .get_or_try_init(|| async {
            let pw = random_hex(16)?;
            hash_password(&Secret::new(pw.as_bytes().to_vec())).await
        })
        .await
        .cloned()
}

fn info(u: &WebUser) -> Result<WebUserInfo, ServiceError> {
    Ok(WebUserInfo {
        name: u.name.clone(),
        role: Role::parse(&u.role).map_err(|e| {
            ServiceError::new(
                ErrorKind::Malformed,
                format!("store: web_user {:?}: {}", u.name, e),
            )
        })?,
        created: u.created,
        failures: u.failures,
        locked_until: u.locked_until,
    })
}

impl Service {
    /// The same service acting as another user (the web: one per signed-in user), for the
    /// audit log; it shares the store, the sessions and the plugins.
    pub fn acting_as(&self, user: impl Into<String>, frontend: impl Into<String>) -> Service {
        let mut s = self.clone();
        s.actor = std::sync::Arc::new(crate::store::Actor {
            user: user.into(),
            frontend: frontend.into(),
        });
        s
    }

    /// `smimekit-web user add`: a new user; `Conflict` when the name is taken.
    pub async fn user_add(
        &self,
        name: &str,
        role: Role,
        password: &Secret,
    ) -> Result<WebUserInfo, ServiceError> {
        check_name(name)?;
        check_password(password)?;
        let store = self.store().await?;
        if store.user_get(name).await.map_err(store_error)?.is_some() {
            return Err(ServiceError::new(
                ErrorKind::Conflict,
                format!("user {name:?} exists (use user passwd to change the password)"),
            )
            .for_field("name"));
        }
        let user = WebUser {
            name: name.to_string(),
            role: role.name().to_string(),
            password_hash: hash_password(password).await?,
            created: self.now(),
            failures: 0,
            locked_until: None,
        };
        store.user_put(&user).await.map_err(store_error)?;
        self.user_audit("user-add", name, format!("ok ({role})"))
            .await?;
        info(&user)
    }

    /// `smimekit-web user list`.
    pub async fn user_list(&self) -> Result<Vec<WebUserInfo>, ServiceError> {
        let store = self.store().await?;
        store
            .users()
            .await
            .map_err(store_error)?
            .iter()
            .map(info)
            .collect()
    }

    /// `smimekit-web user remove`: the user and their sessions; `NotFound` when there is none.
    pub async fn user_remove(&self, name: &str) -> Result<(), ServiceError> {
        let store = self.store().await?;
        if !store.user_remove(name).await.map_err(store_error)? {
            return Err(
                ServiceError::new(ErrorKind::NotFound, format!("no user {name:?}"))
                    .for_field("name"),
            );
        }
        self.user_audit("user-remove", name, "ok".into()).await
    }

    /// `smimekit-web user passwd`: a new password, which also lifts a lockout.
    pub async fn user_passwd(&self, name: &str, password: &Secret) -> Result<(), ServiceError> {
        check_password(password)?;
        let store = self.store().await?;
        let mut user = store
            .user_get(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ServiceError::new(ErrorKind::NotFound, format!("no user {name:?}"))
                    .for_field("name")
            })?;
        user.password_hash = hash_password(password).await?;
        user.failures = 0;
        user.locked_until = None;
        store.user_put(&user).await.map_err(store_error)?;
        self.user_audit("user-passwd", name, "ok".into()).await
    }

    /// Signs in: a new session when the name and password match and the user is not locked
    /// out. Every attempt is in the audit log with the client's address; a refusal says
    /// nothing about why (`PermissionDenied`).
    pub async fn sign_in(
        &self,
        req: &SignInRequest,
        policy: &SessionPolicy,
    ) -> Result<SignIn, ServiceError> {
        let store = self.store().await?;
        let now = self.now();
        let found = store.user_get(&req.name).await.map_err(store_error)?;
        let Some(mut user) = found else {
            verify_password(&req.password, dummy_hash().await?).await;
            self.sign_in_audit(
                &req.name,
                "sign-in",
                format!("refused: unknown user (client {})", req.client),
            )
            .await?;
            return Err(refused());
        };
        if user.locked_until.is_some_and(|t| t > now) {
            self.sign_in_audit(
                &req.name,
                "sign-in",
                format!("refused: locked out (client {})", req.client),
            )
            .await?;
            return Err(refused());
        }
        if !verify_password(&req.password, user.password_hash.clone()).await {
            user.failures = user.failures.saturating_add(1);
            let locked = user.failures >= policy.max_failures;
            if locked {
                user.locked_until = Some(now + policy.lockout);
                user.failures = 0;
            }
            store.user_put(&user).await.map_err(store_error)?;
            let what = if locked {
                "refused: wrong password, locked out"
            } else {
                "refused: wrong password"
            };
            self.sign_in_audit(
                &req.name,
                "sign-in",
                format!("{what} (client {})", req.client),
            )
            .await?;
            return Err(refused());
        }
        let role = info(&user)?.role;
        if user.failures != 0 || user.locked_until.is_some() {
            user.failures = 0;
            user.locked_until = None;
            store.user_put(&user).await.map_err(store_error)?;
        }
        let signed = self.new_session(user.name, role).await?;
        self.sign_in_audit(&req.name, "sign-in", format!("ok (client {})", req.client))
            .await?;
        Ok(signed)
    }

    /// A new session for a user whose password was just checked.
    async fn new_session(&self, user: String, role: Role) -> Result<SignIn, ServiceError> {
        let store = self.store().await?;
        let now = self.now();
        let token = random_hex(32)?;
        let csrf = random_hex(32)?;
        store
            .session_put(&WebSession {
                id: session_id(&token),
                user: user.clone(),
                csrf: csrf.to_string(),
                created: now,
                last_seen: now,
            })
            .await
            .map_err(store_error)?;
        Ok(SignIn {
            token,
            session: WebSessionInfo {
                user,
                role,
                csrf: csrf.to_string(),
                created: now,
            },
        })
    }

    /// Re-authentication before a destructive action: the signed-in user gives their password
    /// again and gets a new session (new token and CSRF token, created now) in place of the
    /// old one, so that "authenticated within N seconds" is the session's age. A wrong
    /// password counts towards the lockout like a failed sign-in, and leaves the session as
    /// it was; both are in the audit log with the client's address.
    pub async fn reauthenticate(
        &self,
        token: &str,
        password: &Secret,
        client: &str,
        policy: &SessionPolicy,
    ) -> Result<SignIn, ServiceError> {
        let live = self.web_session(token, policy).await?;
        let store = self.store().await?;
        let now = self.now();
        let Some(mut user) = store.user_get(&live.user).await.map_err(store_error)? else {
            return Err(expired());
        };
        let locked = user.locked_until.is_some_and(|t| t > now);
        if locked || !verify_password(password, user.password_hash.clone()).await {
            let mut what = "refused: locked out";
            if !locked {
                user.failures = user.failures.saturating_add(1);
                what = "refused: wrong password";
                if user.failures >= policy.max_failures {
                    user.locked_until = Some(now + policy.lockout);
                    user.failures = 0;
                    what = "refused: wrong password, locked out";
                }
                store.user_put(&user).await.map_err(store_error)?;
            }
            self.sign_in_audit(&live.user, "re-auth", format!("{what} (client {client})"))
                .await?;
            return Err(refused());
        }
        if user.failures != 0 {
            user.failures = 0;
            store.user_put(&user).await.map_err(store_error)?;
        }
        store
            .session_remove(&session_id(token))
            .await
            .map_err(store_error)?;
        let signed = self.new_session(live.user.clone(), live.role).await?;
        self.sign_in_audit(&live.user, "re-auth", format!("ok (client {client})"))
            .await?;
        Ok(signed)
    }

    /// Records a sign-in refused before any password check because its client sent too many
    /// attempts (the web app's per-address rate limit).
    pub async fn sign_in_throttled(&self, name: &str, client: &str) -> Result<(), ServiceError> {
        self.sign_in_audit(
            name,
            "sign-in",
            format!("refused: too many attempts from this address (client {client})"),
        )
        .await
    }

    /// The live session a cookie's token names; `PermissionDenied` when there is none or it
    /// timed out (a timed-out session is removed). The role is read from the user each time,
    /// so a change applies at once. The session's recorded last use becomes now only when it
    /// is at least [`SessionPolicy::touch_interval`] old, so that a session in use is not
    /// written on every request: the idle timeout counts from the recorded use, and a session
    /// may end up to that interval before `idle` has passed since its very last request.
    pub async fn web_session(
        &self,
        token: &str,
        policy: &SessionPolicy,
    ) -> Result<WebSessionInfo, ServiceError> {
        let store = self.store().await?;
        let id = session_id(token);
        let Some(s) = store.session_get(&id).await.map_err(store_error)? else {
            return Err(expired());
        };
        let now = self.now();
        if now - s.last_seen > policy.idle || now - s.created > policy.absolute {
            store.session_remove(&id).await.map_err(store_error)?;
            return Err(expired());
        }
        let Some(user) = store.user_get(&s.user).await.map_err(store_error)? else {
            store.session_remove(&id).await.map_err(store_error)?;
            return Err(expired());
        };
        // Recording every use would be a write transaction per request; the last use is only
        // moved on once it is `touch_interval` old, so a busy session is written at most once
        // per interval and still times out within `idle` of its recorded use.
        if now - s.last_seen >= policy.touch_interval() {
            store.session_touch(&id, now).await.map_err(store_error)?;
        }
        Ok(WebSessionInfo {
            user: s.user,
            role: info(&user)?.role,
            csrf: s.csrf,
            created: s.created,
        })
    }

    /// Signs out: the session is gone from the store (its cookie is worth nothing after).
    pub async fn sign_out(&self, token: &str, client: &str) -> Result<(), ServiceError> {
        let store = self.store().await?;
        let id = session_id(token);
        if let Some(s) = store.session_get(&id).await.map_err(store_error)? {
            store.session_remove(&id).await.map_err(store_error)?;
            self.sign_in_audit(&s.user, "sign-out", format!("ok (client {client})"))
                .await?;
        }
        Ok(())
    }

    async fn user_audit(
        &self,
        operation: &str,
        name: &str,
        result: String,
    ) -> Result<(), ServiceError> {
        self.audit_change(operation, "web", name, Vec::new(), Vec::new(), result)
            .await
    }

    /// A sign-in row: the actor is the name tried (nobody is signed in yet).
    async fn sign_in_audit(
        &self,
        name: &str,
        operation: &str,
        result: String,
    ) -> Result<(), ServiceError> {
        let store = self.store().await?;
        store
            .audit_append(&AuditEntry {
                time: self.now(),
                actor: name.to_string(),
                frontend: "web".into(),
                operation: operation.to_string(),
                directory: "web".into(),
                address: String::new(),
                before: Vec::new(),
                after: Vec::new(),
                result,
            })
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::{AuditLogRequest, Config, ServiceBuilder};

    const T0: i64 = 1_800_000_000;

    struct Fixture {
        svc: Service,
        now: Arc<AtomicI64>,
        _tmp: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_default();
        config.store_url = Some(format!("sqlite:{}", tmp.path().join("s.db").display()));
        let now = Arc::new(AtomicI64::new(T0));
        let clock = now.clone();
        let svc = ServiceBuilder::default()
            .config(config)
            .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
            .actor("root", "web")
            .build()
            .unwrap();
        Fixture {
            svc,
            now,
            _tmp: tmp,
        }
    }

    fn pw(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    fn attempt(name: &str, password: &str) -> SignInRequest {
        SignInRequest {
            name: name.into(),
            password: pw(password),
            client: "192.0.2.7".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_are_added_listed_changed_and_removed() {
        let f = fixture();
        let s = &f.svc;
        let ann = s
            .user_add("ann", Role::Admin, &pw("correct horse"))
            .await
            .unwrap();
        assert_eq!((ann.role, ann.created), (Role::Admin, T0));
        let err = s
            .user_add("ann", Role::Viewer, &pw("correct horse"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        let err = s
            .user_add("bob", Role::Viewer, &pw("short"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        let err = s
            .user_add("b o b", Role::Viewer, &pw("long enough"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        s.user_add("bob", Role::Viewer, &pw("long enough"))
            .await
            .unwrap();
        let names: Vec<_> = s
            .user_list()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["ann", "bob"]);
        // The stored hash is argon2id, not the password.
        let stored = s
            .store()
            .await
            .unwrap()
            .user_get("ann")
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored.password_hash.starts_with("$argon2id$"),
            "{}",
            stored.password_hash
        );
        assert!(!stored.password_hash.contains("correct horse"));
        s.user_passwd("ann", &pw("battery staple")).await.unwrap();
        assert!(
            s.sign_in(&attempt("ann", "correct horse"), &SessionPolicy::default())
                .await
                .is_err()
        );
        s.sign_in(&attempt("ann", "battery staple"), &SessionPolicy::default())
            .await
            .unwrap();
        s.user_remove("bob").await.unwrap();
        assert_eq!(
            s.user_remove("bob").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_time_out_and_sign_out_ends_them() {
        let f = fixture();
        let s = &f.svc;
        let p = SessionPolicy {
            idle: 100,
            absolute: 250,
            ..SessionPolicy::default()
        };
        s.user_add("ann", Role::Operator, &pw("correct horse"))
            .await
            .unwrap();
        let a = s
            .sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap();
        let live = s.web_session(&a.token, &p).await.unwrap();
        assert_eq!((live.user.as_str(), live.role), ("ann", Role::Operator));
        assert!(live.csrf_matches(&a.session.csrf));
        assert!(!live.csrf_matches("x"));
        // Used every 90 s: alive until the absolute timeout.
        for t in [90, 180, 240] {
            f.now.store(T0 + t, Ordering::SeqCst);
            s.web_session(&a.token, &p).await.unwrap();
        }
        f.now.store(T0 + 251, Ordering::SeqCst);
        assert_eq!(
            s.web_session(&a.token, &p).await.unwrap_err().kind,
            ErrorKind::PermissionDenied
        );
        // Idle: over after 100 s unused.
        let b = s
            .sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap();
        f.now.store(T0 + 352, Ordering::SeqCst);
        assert!(s.web_session(&b.token, &p).await.is_err());
        // Sign-out removes the session server-side: the same token is refused after.
        let c = s
            .sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap();
        s.web_session(&c.token, &p).await.unwrap();
        s.sign_out(&c.token, "192.0.2.7").await.unwrap();
        assert!(s.web_session(&c.token, &p).await.is_err());
        assert!(s.web_session("not-a-token", &p).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_in_use_is_written_once_per_interval_and_still_times_out() {
        let f = fixture();
        let s = &f.svc;
        let p = SessionPolicy {
            idle: 300,
            absolute: 3600,
            ..SessionPolicy::default()
        };
        assert_eq!(p.touch_interval(), 10);
        assert_eq!(SessionPolicy::default().touch_interval(), 60);
        assert_eq!(SessionPolicy { idle: 20, ..p }.touch_interval(), 1);
        s.user_add("ann", Role::Viewer, &pw("correct horse"))
            .await
            .unwrap();
        let a = s
            .sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap();
        let store = s.store().await.unwrap();
        let last_seen = || async {
            store
                .session_get(&session_id(&a.token))
                .await
                .unwrap()
                .unwrap()
                .last_seen
        };
        // Requests within the interval leave the stored session as it was.
        for t in 1..10 {
            f.now.store(T0 + t, Ordering::SeqCst);
            s.web_session(&a.token, &p).await.unwrap();
            assert_eq!(last_seen().await, T0, "written at +{t} s");
        }
        // The first request an interval after the recorded use records it.
        f.now.store(T0 + 10, Ordering::SeqCst);
        s.web_session(&a.token, &p).await.unwrap();
        assert_eq!(last_seen().await, T0 + 10);
        f.now.store(T0 + 19, Ordering::SeqCst);
        s.web_session(&a.token, &p).await.unwrap();
        assert_eq!(last_seen().await, T0 + 10);
        // The idle timeout counts from the recorded use (T0 + 10): over at T0 + 311, though
        // the last request (T0 + 19, not recorded) is 292 s ago, less than `idle`.
        f.now.store(T0 + 10 + 301, Ordering::SeqCst);
        assert_eq!(
            s.web_session(&a.token, &p).await.unwrap_err().kind,
            ErrorKind::PermissionDenied
        );
        assert!(
            store
                .session_get(&session_id(&a.token))
                .await
                .unwrap()
                .is_none(),
            "a timed-out session is removed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_lock_out_and_are_audited_with_the_client() {
        let f = fixture();
        let s = &f.svc;
        let p = SessionPolicy {
            max_failures: 3,
            lockout: 600,
            ..SessionPolicy::default()
        };
        s.user_add("ann", Role::Viewer, &pw("correct horse"))
            .await
            .unwrap();
        for _ in 0..3 {
            let e = s
                .sign_in(&attempt("ann", "wrong guess"), &p)
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::PermissionDenied);
        }
        // Locked: the right password is refused too, with the same message.
        let e = s
            .sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap_err();
        assert_eq!(e.message, refused().message);
        let e = s
            .sign_in(&attempt("nobody", "correct horse"), &p)
            .await
            .unwrap_err();
        assert_eq!(e.message, refused().message);
        f.now.store(T0 + 601, Ordering::SeqCst);
        s.sign_in(&attempt("ann", "correct horse"), &p)
            .await
            .unwrap();
        let log = s.audit_log(&AuditLogRequest::default()).await.unwrap();
        let rows: Vec<String> = log
            .rows
            .iter()
            .filter(|r| r.operation == "sign-in")
            .map(|r| format!("{} {}", r.actor, r.result))
            .collect();
        assert_eq!(
            rows.iter()
                .filter(|r| r.contains("client 192.0.2.7"))
                .count(),
            6,
            "{rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| r == "ann refused: wrong password, locked out (client 192.0.2.7)"),
            "{rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| r == "ann refused: locked out (client 192.0.2.7)"),
            "{rows:?}"
        );
        assert!(
            rows.iter().any(|r| r == "ann ok (client 192.0.2.7)"),
            "{rows:?}"
        );
    }
}
