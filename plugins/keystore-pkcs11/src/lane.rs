//! Modules and token lanes.
//!
//! A PKCS#11 module is loaded and `C_Initialize`d once per process (a second `C_Initialize`
//! fails), and kept for the life of the process. Each token gets one *lane*
//! ([`smimekit_lane::Lane`], shared with the plugin host): a std thread that owns the token's
//! one session and runs jobs sent to it over a channel, one at a time. Async callers send a
//! boxed job and await a `tokio::sync::oneshot` reply; sync callers (key generation) wait on a
//! std channel. `cryptoki::Session` is `Send` but not `Sync`, and a session may run one
//! operation at a time (`C_SignInit` … `C_Sign` is a state machine), so serialising per token
//! is the simplest correct design; tokens themselves (smartcards) serialise anyway. Login state is per token and application, so one login serves the lane.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;
use smimekit_core::KeyStoreError;

/// What a job gets: the token's session (opened on first use) and facts about it.
pub(crate) struct TokenState {
    pub pkcs11: Pkcs11,
    pub slot: Slot,
    session: Option<Session>,
    mechanisms: Option<Vec<MechanismType>>,
}

impl TokenState {
    /// The lane's session: read-write when the token allows it (needed to create objects).
    pub fn session(&mut self) -> Result<&Session, CkError> {
        if self.session.is_none() {
            let s = match self.pkcs11.open_rw_session(self.slot) {
                Ok(s) => s,
                Err(CkError::Pkcs11(RvError::TokenWriteProtected, _)) => {
                    self.pkcs11.open_ro_session(self.slot)?
                }
                Err(e) => return Err(e),
            };
            self.session = Some(s);
        }
        match &self.session {
            Some(s) => Ok(s),
            // Set just above.
            None => Err(CkError::Pkcs11(
                RvError::GeneralError,
                cryptoki::context::Function::OpenSession,
            )),
        }
    }

    /// Whether the user is logged in (login state is shared by every session of the process).
    pub fn logged_in(&mut self) -> bool {
        self.session()
            .and_then(|s| s.get_session_info())
            .map(|i| {
                matches!(
                    i.session_state(),
                    SessionState::RoUser | SessionState::RwUser
                )
            })
            .unwrap_or(false)
    }

    pub fn has_mechanism(&mut self, m: MechanismType) -> bool {
        if self.mechanisms.is_none() {
            self.mechanisms = Some(
                self.pkcs11
                    .get_mechanism_list(self.slot)
                    .unwrap_or_default(),
            );
        }
        self.mechanisms.as_ref().is_some_and(|l| l.contains(&m))
    }
}

/// One token's worker thread (a [`smimekit_lane::Lane`] owning the [`TokenState`]).
#[derive(Debug)]
pub(crate) struct Lane {
    worker: smimekit_lane::Lane<TokenState>,
    pub name: String,
}

fn stopped(name: &str) -> KeyStoreError {
    KeyStoreError::Io {
        key: name.to_string(),
        detail: "the token's worker thread stopped".into(),
    }
}

impl Lane {
    fn spawn(pkcs11: Pkcs11, slot: Slot, name: String) -> Result<Self, KeyStoreError> {
        let state = TokenState {
            pkcs11: pkcs11.clone(),
            slot,
            session: None,
            mechanisms: None,
        };
        let worker = smimekit_lane::Lane::spawn(format!("pkcs11-slot-{}", slot.id()), state)
            .map_err(|e| KeyStoreError::Io {
                key: name.clone(),
                detail: format!("cannot start the token worker: {e}"),
            })?;
        Ok(Self { worker, name })
    }

    /// Runs `f` on the lane and awaits its result without blocking the runtime.
    pub async fn call<R, F>(&self, f: F) -> Result<R, KeyStoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut TokenState) -> R + Send + 'static,
    {
        self.worker.call(f).await.map_err(|_| stopped(&self.name))
    }

    /// Runs `f` on the lane and waits (for sync callers such as key generation).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R, KeyStoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut TokenState) -> R + Send + 'static,
    {
        self.worker
            .call_blocking(f)
            .map_err(|_| stopped(&self.name))
    }
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static M: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Lanes by (canonical module path, slot id).
type Lanes = Mutex<HashMap<(PathBuf, u64), Arc<Lane>>>;

fn lanes() -> &'static Lanes {
    static L: OnceLock<Lanes> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// Loads and initialises a module once per process.
pub(crate) fn module(path: &Path, key: &str) -> Result<(PathBuf, Pkcs11), KeyStoreError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| KeyStoreError::Io {
        key: key.to_string(),
        detail: format!("PKCS#11 module {}: {e}", path.display()),
    })?;
    let mut map = modules().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(&canonical) {
        return Ok((canonical, p.clone()));
    }
    let p = Pkcs11::new(&canonical).map_err(|e| KeyStoreError::Io {
        key: key.to_string(),
        detail: format!("{} is not a PKCS#11 module: {e}", path.display()),
    })?;
    match p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyStoreError::Io {
                key: key.to_string(),
                detail: format!(
                    "PKCS#11 module {}: C_Initialize failed: {e}",
                    path.display()
                ),
            });
        }
    }
    map.insert(canonical.clone(), p.clone());
    Ok((canonical, p))
}

/// The lane of a token (started on first use).
pub(crate) fn lane(
    module_path: &Path,
    pkcs11: &Pkcs11,
    slot: Slot,
    name: &str,
) -> Result<Arc<Lane>, KeyStoreError> {
    let mut map = lanes().lock().unwrap_or_else(|e| e.into_inner());
    let k = (module_path.to_path_buf(), slot.id());
    if let Some(l) = map.get(&k) {
        return Ok(l.clone());
    }
    let l = Arc::new(Lane::spawn(pkcs11.clone(), slot, name.to_string())?);
    map.insert(k, l.clone());
    Ok(l)
}
