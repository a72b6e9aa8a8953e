//! Sessions: the directories and key stores a [`Service`] keeps open between calls.
//!
//! A long-lived service (a web server, a TUI) makes many calls; opening a directory or a key
//! store on each would sign in to Exchange Online again (a device-code sign-in asks a person
//! every time), reconnect and rebind to LDAP, and decrypt a PKCS#12 again. So the service
//! keeps what it opened, per configured directory name and per KEYREF, shares it between
//! its clones and concurrent calls, and reuses it:
//!
//! * a directory is opened on first use and kept until [`Service::close_directory`] (which
//!   ends its session: an LDAP unbind, the Exchange token forgotten), or until a request
//!   through it fails with [`DirectoryError::Unavailable`] (sign-in refused, connection
//!   lost): that handle is dropped and the next call opens a new one;
//! * a key store is kept once it is unlocked, until [`Service::close_key_store`] (a token
//!   is logged out), until one of its calls fails with [`KeyStoreError::Io`] (a token
//!   removed), or until its file changes on disk. A request that brings its own secret
//!   opens the store afresh, so a wrong password is refused even when a right one opened
//!   it before; one without uses what is open.
//!
//! What is kept belongs to the service's user (a `Service` is built per actor, see
//! [`crate::ServiceBuilder::actor`]); a CLI run is one call and keeps nothing past it.
//! Every directory request runs in a `tracing` span naming the directory, the operation and
//! the address (never a secret).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use serde::Serialize;
use smimekit_core::{
    CertDer, DecryptionKey, Directory, DirectoryError, KeyInfo, KeyStore, KeyStoreError, Mailbox,
    PrivateKey, ProbeReport, Protection, PublishMode, Recipient, RecipientKind, RecipientValues,
    Secret, SignInChallenge,
};
use tracing::Instrument as _;

use crate::{ErrorKind, Service, ServiceError};

/// How long [`Service::shutdown`] waits for a vendor plugin still in a call.
pub(crate) const PLUGIN_SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a service keeps open, shared by its clones.
#[derive(Default)]
pub(crate) struct Sessions {
    directories: Mutex<HashMap<String, Arc<SessionDirectory>>>,
    /// One opening at a time per directory name: a second caller waits for the first's
    /// directory instead of opening (signing in, binding) once more.
    opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key_stores: Mutex<HashMap<StoreKey, Arc<SessionKeyStore>>>,
    /// Listings started ahead of a plan ([`Service::open_ahead`]), each taken once, with the
    /// number of the guard that started them.
    listing_ahead: Mutex<HashMap<String, (u64, ListingAhead)>>,
    /// The last [`OpeningAhead`]'s number.
    aheads: AtomicU64,
}

/// A directory's listing as it will arrive (see [`Service::open_ahead`]).
pub(crate) type ListingAhead =
    tokio::sync::oneshot::Receiver<Result<Vec<Recipient>, DirectoryError>>;

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("directories", &lock(&self.directories).len())
            .field("key_stores", &lock(&self.key_stores).len())
            .finish()
    }
}

/// A map whose lock a panic poisoned is still consistent: every update is one insert or
/// remove.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A key store is kept per KEYREF (resolved) and separate certificate file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StoreKey {
    pub reference: String,
    pub certificate: Option<String>,
}

/// What is open now, for a frontend's status view.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenSessions {
    /// Configured directory names, sorted.
    pub directories: Vec<String>,
    /// KEYREFs (a `pkcs11:` URI without its PIN), sorted.
    pub key_stores: Vec<String>,
}

/// The size and modification time of a key file: a file replaced on disk is opened again.
fn stamp(reference: &str) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(reference)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.len(), m.modified().ok()))
}

impl Sessions {
    /// The open directory `name`, unless it failed (then it is forgotten).
    pub(crate) fn directory(&self, name: &str) -> Option<Arc<dyn Directory>> {
        let mut map = lock(&self.directories);
        let d = map.get(name)?.clone();
        if d.failed.load(Ordering::Relaxed) {
            map.remove(name);
            tracing::debug!(directory = name, "reopening after an unavailable error");
            return None;
        }
        Some(d)
    }

    /// Keeps a newly opened directory; when another call opened it meanwhile, that one wins.
    pub(crate) fn keep_directory(
        &self,
        name: &str,
        opened: Box<dyn Directory>,
    ) -> Arc<dyn Directory> {
        let mut map = lock(&self.directories);
        if let Some(d) = map.get(name)
            && !d.failed.load(Ordering::Relaxed)
        {
            return d.clone();
        }
        let d = Arc::new(SessionDirectory {
            inner: opened,
            failed: AtomicBool::new(false),
        });
        map.insert(name.to_string(), d.clone());
        d
    }

    fn take_directory(&self, name: &str) -> Option<Arc<SessionDirectory>> {
        lock(&self.directories).remove(name)
    }

    /// The open store for `key`, unless it failed or its file changed.
    pub(crate) fn key_store(&self, key: &StoreKey) -> Option<Arc<dyn KeyStore>> {
        let mut map = lock(&self.key_stores);
        let s = map.get(key)?.clone();
        if s.failed.load(Ordering::Relaxed) || s.stamp != stamp(&key.reference) {
            map.remove(key);
            return None;
        }
        Some(s)
    }

    /// Keeps an unlocked store (the one given replaces any other for the same key).
    pub(crate) fn keep_key_store(
        &self,
        key: StoreKey,
        store: Box<dyn KeyStore>,
    ) -> Arc<dyn KeyStore> {
        let s = Arc::new(SessionKeyStore {
            stamp: stamp(&key.reference),
            inner: store,
            failed: AtomicBool::new(false),
        });
        lock(&self.key_stores).insert(key, s.clone());
        s
    }

    fn take_key_stores(&self, reference: &str) -> Vec<Arc<SessionKeyStore>> {
        let mut map = lock(&self.key_stores);
        let keys: Vec<StoreKey> = map
            .keys()
            .filter(|k| k.reference == reference)
            .cloned()
            .collect();
        keys.iter().filter_map(|k| map.remove(k)).collect()
    }

    fn open(&self) -> OpenSessions {
        let mut directories: Vec<String> = lock(&self.directories).keys().cloned().collect();
        directories.sort();
        let mut key_stores: Vec<String> = lock(&self.key_stores)
            .keys()
            .map(|k| crate::secrets::redact(&k.reference))
            .collect();
        key_stores.sort();
        key_stores.dedup();
        OpenSessions {
            directories,
            key_stores,
        }
    }
}

impl Service {
    /// The directory `name`, open from an earlier call or opened now and kept (see the
    /// module documentation).
    pub async fn open_directory(&self, name: &str) -> Result<Arc<dyn Directory>, ServiceError> {
        if let Some(d) = self.sessions.directory(name) {
            return Ok(d);
        }
        // (Only configured names get a turn: any other fails to open below.)
        let turn = self
            .config
            .directories
            .iter()
            .any(|d| d.name == name)
            .then(|| {
                lock(&self.sessions.opening)
                    .entry(name.to_string())
                    .or_default()
                    .clone()
            });
        let _turn = match &turn {
            Some(t) => Some(t.lock().await),
            None => None,
        };
        if let Some(d) = self.sessions.directory(name) {
            return Ok(d);
        }
        let opened = self.open_directory_fresh(name).await?;
        tracing::debug!(directory = name, "opened");
        Ok(self.sessions.keep_directory(name, opened))
    }

    /// Starts opening the configured directories among `names`, for a command about to use
    /// them (a plan opens those its deploy file names while the file's certificates are
    /// read), and listing those among `list`, one after another in the configuration's order
    /// (a plan's), each once open (a plan that lists them takes the listing:
    /// [`Service::take_listing_ahead`]). Each directory is kept as [`Service::open_directory`]
    /// keeps it: the command's own open finds it open, or waits for it. A failure to open is
    /// not reported here: the command's own open tries again and reports it; a listing's
    /// failure is the listing's result. What is still opening or listing when the guard is
    /// dropped is given up, and a listing it started that nobody took is forgotten (a later
    /// guard's listing of the same directory replaces it).
    pub fn open_ahead(&self, names: &[String], list: &[String]) -> OpeningAhead {
        let configured = self.directory_names();
        let names: Vec<&String> = names.iter().filter(|n| configured.contains(n)).collect();
        let mut tasks: Vec<_> = names
            .iter()
            .map(|name| {
                let (svc, name) = (self.clone(), name.to_string());
                tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                    if let Err(e) = svc.open_directory(&name).await {
                        tracing::debug!(directory = name, error = %e, "opening ahead failed");
                    }
                }))
            })
            .collect();
        let list: Vec<String> = (configured.iter())
            .filter(|n| list.contains(n) && names.contains(n))
            .cloned()
            .collect();
        let mut senders = Vec::new();
        let number = self.sessions.aheads.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut ahead = lock(&self.sessions.listing_ahead);
            for name in &list {
                let (tx, rx) = tokio::sync::oneshot::channel();
                ahead.insert(name.clone(), (number, rx));
                senders.push((name.clone(), tx));
            }
        }
        if !senders.is_empty() {
            let svc = self.clone();
            tasks.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                async move {
                    for (name, tx) in senders {
                        // An open that fails leaves the listing to the command (its own open
                        // reports the failure).
                        let Ok(dir) = svc.open_directory(&name).await else {
                            return;
                        };
                        tracing::debug!(directory = name, "listing ahead");
                        if tx.send(dir.recipients().await).is_err() {
                            return;
                        }
                    }
                },
            )));
        }
        OpeningAhead {
            sessions: self.sessions.clone(),
            number,
            listing: list,
            _tasks: tasks,
        }
    }

    /// The listing of `name` started ahead ([`Service::open_ahead`]), once.
    pub(crate) fn take_listing_ahead(&self, name: &str) -> Option<ListingAhead> {
        lock(&self.sessions.listing_ahead)
            .remove(name)
            .map(|(_, listing)| listing)
    }

    /// Opens a directory afresh, not kept, on the blocking pool: a plugin's open is
    /// synchronous and may read files, ask for a bind password or load a TLS trust store.
    pub(crate) async fn open_directory_fresh(
        &self,
        name: &str,
    ) -> Result<Box<dyn Directory>, ServiceError> {
        let (svc, name) = (self.clone(), name.to_string());
        crate::keys::blocking(move || svc.open_directory_uncached(&name)).await?
    }

    /// Ends the session with a directory (an LDAP unbind; the Exchange token forgotten, so
    /// the next call signs in again) and forgets it. `Ok(false)`: it was not open.
    pub async fn close_directory(&self, name: &str) -> Result<bool, ServiceError> {
        if !self.config.directories.iter().any(|d| d.name == name) {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!("no directory named {name:?}"),
            ));
        }
        let Some(d) = self.sessions.take_directory(name) else {
            return Ok(false);
        };
        tracing::debug!(directory = name, "closing");
        d.inner.close().await?;
        Ok(true)
    }

    /// Closes every key store opened from `reference` (a token is logged out: its keys need
    /// the PIN again) and forgets them. `Ok(false)`: none was open.
    pub async fn close_key_store(&self, reference: &str) -> Result<bool, ServiceError> {
        let stores = self
            .sessions
            .take_key_stores(&self.resolve_reference(reference));
        let any = !stores.is_empty();
        for s in stores {
            tracing::debug!(key_store = %crate::secrets::redact(s.inner.id()), "closing");
            s.inner.close().await?;
        }
        Ok(any)
    }

    /// The orderly end of a service, before the process exits (the CLI calls it at the end
    /// of every command, whatever its outcome): every kept directory and then every kept key
    /// store is closed through its port's `close` and dropped, then every vendor plugin's
    /// handles still open are closed and its worker thread joined, waiting at most
    /// ten seconds (`PLUGIN_SHUTDOWN_WAIT`) for a plugin still in a call. Nothing of a
    /// plugin runs after this returns `Ok`, so the process may exit (and libcrypto's
    /// exit-time cleanup run).
    /// A directory or key store whose `close` fails is logged (the command's outcome stands);
    /// a plugin still running is [`ErrorKind::Unavailable`], naming its file, after
    /// everything else was closed. Vendor plugins' calls through the service after this fail.
    pub async fn shutdown(&self) -> Result<(), ServiceError> {
        let dirs: Vec<_> = lock(&self.sessions.directories)
            .drain()
            .map(|(_, d)| d)
            .collect();
        let stores: Vec<_> = lock(&self.sessions.key_stores)
            .drain()
            .map(|(_, s)| s)
            .collect();
        // A session that fails to end (an unbind refused) changes nothing the command did:
        // it is logged, and the next ones are closed all the same.
        for d in dirs {
            if let Err(e) = d.inner.close().await {
                tracing::warn!(directory = d.inner.name(), error = %e, "closing at shutdown");
            }
        }
        for s in stores {
            if let Err(e) = s.inner.close().await {
                tracing::warn!(
                    key_store = %crate::secrets::redact(s.inner.id()),
                    error = %e,
                    "closing at shutdown"
                );
            }
        }
        let plugins = self.plugins.clone();
        crate::keys::blocking(move || plugins.shutdown(PLUGIN_SHUTDOWN_WAIT))
            .await?
            .map_err(|e| ServiceError::new(ErrorKind::Unavailable, e.to_string()))
    }

    /// The directories and key stores open now.
    pub fn open_sessions(&self) -> OpenSessions {
        self.sessions.open()
    }

    /// Interactive sign-ins as they happen (an Exchange Online device code during `login`
    /// or any call that needs a token), for a frontend to show: subscribe before the call.
    /// A sign-in that nobody subscribed to fails at once rather than wait for someone who
    /// never sees the code.
    pub fn sign_in_challenges(&self) -> tokio::sync::broadcast::Receiver<SignInChallenge> {
        self.sign_in.tx.subscribe()
    }

    /// Hands a directory's sign-in challenge to the subscribed frontends; `false`: none.
    pub(crate) fn show_sign_in(&self, challenge: &SignInChallenge) -> bool {
        tracing::info!(
            directory = %challenge.directory,
            verification_uri = %challenge.verification_uri,
            "sign-in waiting for a person"
        );
        lock(&self.sign_in.last).insert(challenge.directory.clone(), challenge.clone());
        self.sign_in.tx.send(challenge.clone()).is_ok()
    }

    /// The last sign-in challenge of a directory since the last call (for `login`'s result).
    pub(crate) fn take_sign_in(&self, directory: &str) -> Option<SignInChallenge> {
        lock(&self.sign_in.last).remove(directory)
    }
}

/// The frontends' stream of sign-in challenges, and the last one per directory.
#[derive(Debug)]
pub(crate) struct SignIns {
    tx: tokio::sync::broadcast::Sender<SignInChallenge>,
    last: Mutex<HashMap<String, SignInChallenge>>,
}

impl Default for SignIns {
    fn default() -> Self {
        Self {
            tx: tokio::sync::broadcast::channel(16).0,
            last: Mutex::default(),
        }
    }
}

/// A kept directory: the backend's handle, marked when a request finds it unavailable.
#[derive(Debug)]
pub(crate) struct SessionDirectory {
    inner: Box<dyn Directory>,
    failed: AtomicBool,
}

impl SessionDirectory {
    /// Runs one request in its span, and marks the handle failed when the backend is
    /// unavailable (the next call opens a new one).
    async fn call<T>(
        &self,
        op: &'static str,
        address: Option<&Mailbox>,
        request: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let span = tracing::info_span!(
            "directory",
            name = self.inner.name(),
            op,
            address = address.map(Mailbox::as_str)
        );
        let result = request.instrument(span.clone()).await;
        let _entered = span.enter();
        if let Err(e) = &result {
            if matches!(e, DirectoryError::Unavailable(_)) {
                self.failed.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, "directory unavailable; it will be opened again");
            } else {
                tracing::debug!(error = %e, "request failed");
            }
        } else {
            tracing::debug!("done");
        }
        result
    }
}

// Every method of the port is forwarded, defaults included: the backend may override them.
#[async_trait]
impl Directory for SessionDirectory {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn contact_name(&self, address: &Mailbox) -> Option<String> {
        self.inner.contact_name(address)
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        self.call("lookup", Some(address), self.inner.lookup(address))
            .await
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        self.call("recipients", None, self.inner.recipients()).await
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.call(
            "publish",
            Some(address),
            self.inner.publish(address, kind, certificate, mode),
        )
        .await
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.call(
            "unpublish",
            Some(address),
            self.inner.unpublish(address, certificate),
        )
        .await
    }

    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        self.call("recipient", Some(address), self.inner.recipient(address))
            .await
    }

    async fn addresses(&self, address: &Mailbox) -> Result<Vec<Mailbox>, DirectoryError> {
        self.call("addresses", Some(address), self.inner.addresses(address))
            .await
    }

    async fn publish_removing(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
        remove: &[CertDer],
    ) -> Result<Vec<CertDer>, DirectoryError> {
        self.call(
            "publish",
            Some(address),
            self.inner
                .publish_removing(address, kind, certificate, mode, remove),
        )
        .await
    }

    async fn recipient_values(&self) -> Result<Option<Vec<RecipientValues>>, DirectoryError> {
        self.call("recipient-values", None, self.inner.recipient_values())
            .await
    }

    async fn trust_chain(&self) -> Result<Vec<CertDer>, DirectoryError> {
        self.call("trust-chain", None, self.inner.trust_chain())
            .await
    }

    async fn connect(&self) -> Result<String, DirectoryError> {
        self.call("connect", None, self.inner.connect()).await
    }

    async fn close(&self) -> Result<(), DirectoryError> {
        self.call("close", None, self.inner.close()).await
    }

    fn settings_warnings(&self, settings: &[(String, String)]) -> Vec<String> {
        self.inner.settings_warnings(settings)
    }

    async fn org_settings(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        self.call("org-settings", None, self.inner.org_settings())
            .await
    }

    async fn set_org_settings(
        &self,
        values: &[(String, String)],
    ) -> Result<Vec<(String, String)>, DirectoryError> {
        self.call(
            "set-org-settings",
            None,
            self.inner.set_org_settings(values),
        )
        .await
    }

    async fn set_trust_chain(&self, chain: &[CertDer]) -> Result<Vec<CertDer>, DirectoryError> {
        self.call("set-trust-chain", None, self.inner.set_trust_chain(chain))
            .await
    }

    async fn probe(&self, address: Option<&Mailbox>) -> Result<ProbeReport, DirectoryError> {
        self.call("probe", address, self.inner.probe(address)).await
    }
}

/// A kept key store, marked when the store cannot be reached.
#[derive(Debug)]
pub(crate) struct SessionKeyStore {
    inner: Box<dyn KeyStore>,
    /// The key file as it was when opened (`None`: not a file).
    stamp: Option<(u64, Option<SystemTime>)>,
    failed: AtomicBool,
}

impl SessionKeyStore {
    fn watch<T>(&self, r: Result<T, KeyStoreError>) -> Result<T, KeyStoreError> {
        if let Err(KeyStoreError::Io { .. }) = &r {
            self.failed.store(true, Ordering::Relaxed);
        }
        r
    }
}

// Every method of the port is forwarded, defaults included.
#[async_trait]
impl KeyStore for SessionKeyStore {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn protection(&self) -> Protection {
        self.inner.protection().await
    }

    async fn unlock(&self, secret: Secret) -> Result<(), KeyStoreError> {
        self.watch(self.inner.unlock(secret).await)
    }

    async fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        self.watch(self.inner.list().await)
    }

    async fn open(&self, selector: Option<&str>) -> Result<Arc<dyn PrivateKey>, KeyStoreError> {
        self.watch(self.inner.open(selector).await)
    }

    async fn open_for_decryption(
        &self,
        selector: Option<&str>,
    ) -> Result<DecryptionKey, KeyStoreError> {
        self.watch(self.inner.open_for_decryption(selector).await)
    }

    async fn close(&self) -> Result<(), KeyStoreError> {
        self.inner.close().await
    }

    async fn import_pkcs12(
        &self,
        data: &[u8],
        password: &Secret,
        label: Option<&str>,
    ) -> Result<KeyInfo, KeyStoreError> {
        self.watch(self.inner.import_pkcs12(data, password, label).await)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::deploy::{self, FsDeploySource, PlanRequest};

    /// A service with the local directory `l` (and `m`, configured after it) and a deploy
    /// file of `people` contacts in `l`, all holding alice's certificate (a CSV); the file's
    /// text and its source.
    fn with_people(dir: &std::path::Path, people: usize) -> (Service, String, FsDeploySource) {
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = \"sqlite:{}\"\n\n[directory.l]\nkind = \"local\"\npath = \"l.json\"\n\n\
                 [directory.m]\nkind = \"local\"\npath = \"m.json\"\n",
                dir.join("store.db").display()
            ),
        )
        .unwrap();
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/pki/alice.pem"),
            dir.join("alice.pem"),
        )
        .unwrap();
        let mut csv = String::from("address,kind,certificate\n");
        for i in 0..people {
            csv.push_str(&format!("p{i}@example.org,contact,alice.pem\n"));
        }
        std::fs::write(dir.join("people.csv"), csv).unwrap();
        let svc = Service::builder()
            .config(Config::load(Some(&config)).unwrap())
            .clock(smimekit_testkit::pinned_clock())
            .build()
            .unwrap();
        let text = "directories = [\"l\"]\n\n[[people_from]]\ncsv = \"people.csv\"\n".to_string();
        let source = FsDeploySource {
            base: dir.to_path_buf(),
        };
        (svc, text, source)
    }

    fn waiting(svc: &Service) -> Vec<String> {
        let mut names: Vec<String> = lock(&svc.sessions.listing_ahead).keys().cloned().collect();
        names.sort();
        names
    }

    /// A listing started ahead is the directory's listing, taken once; only what is opened
    /// ahead is listed; dropping the guard forgets what nobody took.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_started_ahead_is_taken_once_and_forgotten_with_its_guard() {
        let tmp = tempfile::tempdir().unwrap();
        let (svc, _, _) = with_people(tmp.path(), 0);
        let l = svc.open_directory("l").await.unwrap();
        let alice = smimekit_pki::load_certificates(
            &std::fs::read(tmp.path().join("alice.pem")).unwrap(),
            "alice.pem",
        )
        .unwrap()
        .remove(0);
        let who = Mailbox::parse("alice@example.org").unwrap();
        l.publish(&who, RecipientKind::Mailbox, &alice, PublishMode::Merge)
            .await
            .unwrap();

        let names = ["l".to_string(), "m".to_string(), "nowhere".to_string()];
        let ahead = svc.open_ahead(
            &names,
            &["m".to_string(), "l".to_string(), "nowhere".to_string()],
        );
        assert_eq!(waiting(&svc), ["l", "m"]);
        let listed = svc.take_listing_ahead("l").unwrap().await.unwrap().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].address, who);
        assert_eq!(listed[0].certificates, [alice]);
        assert!(svc.take_listing_ahead("l").is_none(), "taken once");
        drop(ahead);
        assert!(waiting(&svc).is_empty(), "m, never taken, is forgotten");
        assert!(svc.take_listing_ahead("m").is_none());

        // A guard forgets only its own listings: a later one's survives it.
        let first = svc.open_ahead(&names, &["l".to_string()]);
        let second = svc.open_ahead(&names, &["l".to_string()]);
        drop(first);
        assert_eq!(waiting(&svc), ["l"]);
        drop(second);
        assert!(waiting(&svc).is_empty());

        // Listed only when opened ahead too.
        let ahead = svc.open_ahead(&["m".to_string()], &["l".to_string()]);
        assert!(waiting(&svc).is_empty());
        drop(ahead);
    }

    /// `plan_ahead` lists a directory with more than 200 of the file's people, when the plan
    /// is to list; the plan takes that listing and is the plan made without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plan_takes_what_was_listed_ahead_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (svc, text, source) = with_people(tmp.path(), 201);
        let desired = deploy::load("deploy.toml", &text, &source, &svc.directory_names()).unwrap();
        let request = PlanRequest {
            desired,
            replace_unmanaged: Vec::new(),
            inventory_max_age: None,
        };
        let alone = svc.plan(&request).await.unwrap();
        assert_eq!(alone.summary.add, 201, "{}", alone.summary.line());

        let ahead = svc.plan_ahead(&text, &source, false);
        assert!(
            waiting(&svc).is_empty(),
            "a plan from the inventory lists nothing ahead"
        );
        drop(ahead);

        let ahead = svc.plan_ahead(&text, &source, true);
        assert_eq!(waiting(&svc), ["l"]);
        let plan = svc.plan(&request).await.unwrap();
        assert!(waiting(&svc).is_empty(), "the plan took the listing");
        drop(ahead);
        assert_eq!(plan.render(), alone.render());

        let tmp = tempfile::tempdir().unwrap();
        let (svc, text, source) = with_people(tmp.path(), 200);
        assert_eq!(
            crate::deploy::spec::people_per_directory(&text, &source),
            [("l".to_string(), 200)]
        );
        let _ahead = svc.plan_ahead(&text, &source, true);
        assert!(
            waiting(&svc).is_empty(),
            "200 people are looked up, not listed"
        );
    }

    /// The `fn` names of the block that starts at `start` (up to its closing brace at column 0).
    fn methods(source: &str, start: &str) -> Vec<String> {
        let at = source.find(start).expect("the block");
        let block = &source[at..];
        let block = &block[..block.find("\n}").expect("its end")];
        let mut names: Vec<String> = block
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("async ").unwrap_or(l);
                let name = l.strip_prefix("fn ")?;
                Some(name.split(['(', '<']).next()?.to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// A kept handle forwards every method of the ports, defaults included: a backend may
    /// override any of them, and a method left out would silently run the port's default.
    #[test]
    fn kept_handles_forward_every_port_method() {
        let me = include_str!("session.rs");
        let directory = include_str!("../../core/src/directory.rs");
        let keystore = include_str!("../../core/src/keystore.rs");
        assert_eq!(
            methods(me, "impl Directory for SessionDirectory"),
            methods(directory, "pub trait Directory"),
        );
        assert_eq!(
            methods(me, "impl KeyStore for SessionKeyStore"),
            methods(keystore, "pub trait KeyStore"),
        );
    }
}

/// Directories being opened and listed ahead ([`Service::open_ahead`]); dropping it gives up
/// what is still opening or listing and forgets the listings nobody took.
#[must_use = "dropping it gives up the directories still opening"]
#[derive(Debug)]
pub struct OpeningAhead {
    sessions: Arc<Sessions>,
    number: u64,
    listing: Vec<String>,
    _tasks: Vec<tokio_util::task::AbortOnDropHandle<()>>,
}

impl Drop for OpeningAhead {
    fn drop(&mut self) {
        let mut ahead = lock(&self.sessions.listing_ahead);
        for name in &self.listing {
            // Unless a later guard started that directory's listing again.
            if ahead.get(name).is_some_and(|(n, _)| *n == self.number) {
                ahead.remove(name);
            }
        }
    }
}
