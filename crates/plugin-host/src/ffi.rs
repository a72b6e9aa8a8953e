//! Loading, validating and calling one plugin library. The host's `unsafe` is here and in the
//! adapters' table calls ([`crate::keystore`], [`crate::directory`]); ARCHITECTURE.md lists the files.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use smimekit_plugin_abi::{
    ABI_MAJOR, Buf, DIRECTORY_INTERFACE, DirectoryV1, ENTRY_SYMBOL, EntryFn, FLAG_THREAD_SAFE,
    Header, KEYSTORE_INTERFACE, KeyStoreV1, Status,
};

use crate::LoadError;
use crate::lane::Lane;
use smimekit_plugin_abi as abi_types;

/// Name, version and capabilities of one interface of a plugin.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub abi_minor: u32,
    pub thread_safe: bool,
    /// The optional functions the table provides (`sign`, `decrypt`, `publish`…).
    pub capabilities: Vec<&'static str>,
}

/// A loaded, validated plugin library.
#[derive(Debug)]
pub struct Library {
    path: PathBuf,
    /// `path` with every link resolved: the same file named twice is loaded once.
    canonical: PathBuf,
    keystore: Option<(KeyStoreV1, PluginInfo)>,
    directory: Option<(DirectoryV1, PluginInfo)>,
    pub(crate) lane: Lane,
    /// The handles open now, each closed exactly once: by its adapter's `close`/`Drop`, or by
    /// [`Library::shutdown`], whichever takes it from here first.
    handles: Mutex<Handles>,
    /// How long an async call waits for the plugin, in milliseconds; 0: no limit.
    call_timeout_ms: std::sync::atomic::AtomicU64,
    // The library itself is leaked when loaded (never unloaded, never `dlclose`d, whichever
    // thread drops the last reference): the tables point into it, and a library that started
    // threads or registered exit handlers cannot be unloaded safely.
}

/// What kind of plugin handle, in the order [`Library::shutdown`] closes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HandleKind {
    Key,
    Store,
    Dir,
}

/// Open handles by id; `shut` once [`Library::shutdown`] ran (nothing opens after that).
#[derive(Debug, Default)]
struct Handles {
    next: u64,
    open: BTreeMap<u64, (HandleKind, usize)>,
    shut: bool,
}

/// An open handle's entry in its library's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandleId(u64);

// SAFETY: the tables are copies of immutable plugin data (function pointers and static
// strings); calls through them are serialised by `lane` unless the plugin declared
// FLAG_THREAD_SAFE, as the ABI requires.
unsafe impl Send for Library {}
// SAFETY: as above; nothing in `Library` is mutated after loading.
unsafe impl Sync for Library {}

/// A plugin-owned handle, moved between the caller and the lane.
#[derive(Debug)]
pub(crate) struct Handle<T>(pub *mut T);

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}

impl<T> Handle<T> {
    /// The pointer (a method, so closures capture the whole `Send` handle, not the field).
    pub fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: the ABI lets the host use a handle from any thread as long as calls on a
// non-thread-safe plugin are serialised (the lane does that).
unsafe impl<T> Send for Handle<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Handle<T> {}

fn err(path: &Path, reason: impl Into<String>) -> LoadError {
    LoadError {
        file: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Copies a table of `T` whose header says `size`: fields beyond `size` stay zero (null).
///
/// # Safety
/// `ptr` points at a table of at least `header.size` readable bytes.
unsafe fn copy_table<T>(ptr: *const u8, size: usize) -> T {
    let mut t = MaybeUninit::<T>::zeroed();
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `ptr` has `size >= n` readable bytes (caller); `t` has size_of::<T>() >= n.
    unsafe { std::ptr::copy_nonoverlapping(ptr, t.as_mut_ptr().cast::<u8>(), n) };
    // SAFETY: every field of the ABI tables is an integer, a raw pointer or an
    // `Option<fn>`, for all of which zero is a valid value.
    unsafe { t.assume_init() }
}

fn c_text(path: &Path, what: &str, p: *const c_char) -> Result<String, LoadError> {
    if p.is_null() {
        return Err(err(path, format!("table field `{what}` is null")));
    }
    // SAFETY: the ABI requires static NUL-terminated strings for these fields.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(str::to_string)
        .map_err(|_| err(path, format!("table field `{what}` is not UTF-8")))
}

/// Names smimekit keeps for its own plugins (docs/plugin-abi.md, "Reserved names"), besides
/// the built-ins' ids and kinds the caller of [`crate::Plugins::add`] passes.
pub const RESERVED_PREFIX: &str = "smimekit";

fn check_name(path: &Path, name: &str) -> Result<(), LoadError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err(
            path,
            format!("name {name:?} must be non-empty [a-z0-9-]"),
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(err(
            path,
            format!(
                "name {name:?} is reserved: names starting with {RESERVED_PREFIX:?} are smimekit's own"
            ),
        ));
    }
    Ok(())
}

/// The version text: SemVer 2.0 (`MAJOR.MINOR.PATCH`, optionally `-pre` and `+build` of
/// `[0-9A-Za-z.-]`), at most [`MAX_VERSION_LEN`] bytes, shown by `smimekit plugins` as is.
pub const MAX_VERSION_LEN: usize = 64;

fn check_version(path: &Path, version: &str) -> Result<(), LoadError> {
    let bad = || {
        err(
            path,
            format!(
                "version {version:?} must be MAJOR.MINOR.PATCH[-PRE][+BUILD] (SemVer), at most {MAX_VERSION_LEN} bytes"
            ),
        )
    };
    if version.len() > MAX_VERSION_LEN {
        return Err(bad());
    }
    let (core, rest) = match version.find(['-', '+']) {
        Some(i) => version.split_at(i),
        None => (version, ""),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let number_ok = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    if numbers.len() != 3 || !numbers.iter().all(number_ok) {
        return Err(bad());
    }
    let tail_ok = rest
        .bytes()
        .skip(1)
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+');
    if !tail_ok || rest.len() == 1 {
        return Err(bad());
    }
    Ok(())
}

fn check_header(path: &Path, iface: &str, h: &Header, min: usize) -> Result<(), LoadError> {
    if h.abi_major != ABI_MAJOR {
        return Err(err(
            path,
            format!(
                "{iface}: wrong ABI version {}.{} (this smimekit speaks {ABI_MAJOR}.x)",
                h.abi_major, h.abi_minor
            ),
        ));
    }
    if (h.size as usize) < min {
        return Err(err(
            path,
            format!(
                "{iface}: table too small ({} bytes; ABI v{ABI_MAJOR} needs at least {min})",
                h.size
            ),
        ));
    }
    Ok(())
}

fn required(path: &Path, iface: &str, missing: &[(&str, bool)]) -> Result<(), LoadError> {
    match missing.iter().find(|(_, present)| !present) {
        Some((name, _)) => Err(err(
            path,
            format!("{iface}: required function `{name}` is null"),
        )),
        None => Ok(()),
    }
}

impl Library {
    pub(crate) fn load(path: &Path) -> Result<Self, LoadError> {
        Self::load_with(path, false)
    }

    pub(crate) fn load_with(path: &Path, inline: bool) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(err(path, "no such file"));
        }
        // A file, never a name for the system's library search: `libx.so` is `./libx.so`.
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| err(path, format!("cannot resolve the path: {e}")))?;
        // SAFETY: loading runs the library's initialisers; that is what loading a plugin
        // means, and the user named this file as a plugin.
        let lib = unsafe { libloading::Library::new(&canonical) }
            .map_err(|e| err(path, format!("not a loadable shared library: {e}")))?;
        // Never unloaded (see `Library`): leaked here, so no drop can `dlclose` it.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol's type is fixed by the ABI (EntryFn).
        let entry: EntryFn = unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
            .map(|s| *s)
            .map_err(|_| {
                err(
                    path,
                    format!("no entry symbol `{ENTRY_SYMBOL}` (not a smimekit plugin)"),
                )
            })?;
        let ask = |iface: &str| -> *const u8 {
            let name = CString::new(iface).unwrap_or_default();
            // SAFETY: `name` is NUL-terminated and outlives the call; the entry point's
            // signature is the ABI's.
            unsafe { entry(name.as_ptr(), ABI_MAJOR) }.cast::<u8>()
        };
        let keystore = match ask(KEYSTORE_INTERFACE) {
            p if p.is_null() => None,
            // SAFETY: a non-null table comes from the plugin's entry point, as the ABI says.
            p => Some(unsafe { load_table::<KeyStoreV1>(path, p) }?),
        };
        let directory = match ask(DIRECTORY_INTERFACE) {
            p if p.is_null() => None,
            // SAFETY: as above.
            p => Some(unsafe { load_table::<DirectoryV1>(path, p) }?),
        };
        let thread_safe = keystore
            .iter()
            .map(|(_, i)| i)
            .chain(directory.iter().map(|(_, i)| i))
            .all(|i| i.thread_safe);
        if keystore.is_none() && directory.is_none() {
            return Err(err(
                path,
                format!(
                    "the entry point returned null for every interface of ABI v{ABI_MAJOR} ({KEYSTORE_INTERFACE}, {DIRECTORY_INTERFACE})"
                ),
            ));
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lane = if inline {
            Lane::Inline
        } else {
            Lane::new(thread_safe, &stem).map_err(|e| {
                err(
                    path,
                    format!("cannot start the plugin's worker thread: {e}"),
                )
            })?
        };
        Ok(Self {
            path: path.to_path_buf(),
            canonical,
            keystore,
            directory,
            lane,
            handles: Mutex::default(),
            call_timeout_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Limits how long a call waits for the plugin (`None`: no limit, the default). A call
    /// that times out fails with `SMK_UNAVAILABLE`'s meaning, naming the limit; the plugin's
    /// function goes on in its thread (nothing can stop it), so later calls of a plugin
    /// without the thread-safe flag queue behind it. Needs a runtime with its time driver.
    pub fn set_call_timeout(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.call_timeout_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The limit [`Library::set_call_timeout`] set.
    pub fn call_timeout(&self) -> Option<Duration> {
        match self
            .call_timeout_ms
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Runs `f` on the lane, waiting at most the call timeout.
    pub(crate) async fn call_timed<R, F>(&self, f: F) -> Result<R, LaneFail>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let fut = self.lane.call(f);
        match self.call_timeout() {
            None => fut.await.map_err(|_| LaneFail::Stopped),
            Some(d) => match tokio::time::timeout(d, fut).await {
                Ok(r) => r.map_err(|_| LaneFail::Stopped),
                Err(_) => Err(LaneFail::TimedOut(d)),
            },
        }
    }

    /// The file with every symbolic link resolved.
    pub fn canonical_path(&self) -> &Path {
        &self.canonical
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, Handles> {
        // Every update is one insert, remove or flag: a poisoned lock is still consistent.
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`Library::shutdown`] ran: no handle may be opened any more.
    pub fn is_shut_down(&self) -> bool {
        self.handles().shut
    }

    /// Records a handle the plugin opened. `None` after shutdown: the caller closes it
    /// itself, at once.
    pub(crate) fn register<T>(&self, kind: HandleKind, h: Handle<T>) -> Option<HandleId> {
        let mut hs = self.handles();
        if hs.shut {
            return None;
        }
        hs.next += 1;
        let id = hs.next;
        hs.open.insert(id, (kind, h.get() as usize));
        Some(HandleId(id))
    }

    /// Takes a handle out of the registry: `true` when the caller is the one to close it.
    pub(crate) fn unregister(&self, id: HandleId) -> bool {
        self.handles().open.remove(&id.0).is_some()
    }

    /// The number of handles open now.
    pub fn open_handles(&self) -> usize {
        self.handles().open.len()
    }

    /// Closes the handle `ptr` of `kind` through the table, on the calling thread (which
    /// must be the lane's, or any thread for a thread-safe plugin).
    fn close_now(&self, kind: HandleKind, ptr: usize) {
        match kind {
            HandleKind::Key => {
                if let Some(close) = self.ks().and_then(|t| t.key_close) {
                    // SAFETY: the pointer came from key_open and left the registry once.
                    unsafe { close(ptr as *mut abi_types::Key) }
                }
            }
            HandleKind::Store => {
                if let Some(close) = self.ks().and_then(|t| t.store_close) {
                    // SAFETY: from store_open, closed once, after its keys (shutdown order).
                    unsafe { close(ptr as *mut abi_types::Store) }
                }
            }
            HandleKind::Dir => {
                if let Some(close) = self.dir().and_then(|t| t.dir_close) {
                    // SAFETY: from dir_open, closed once.
                    unsafe { close(ptr as *mut abi_types::Dir) }
                }
            }
        }
    }

    /// The orderly end of this library's use, before the process exits: no handle opens
    /// after this; every handle still open is closed (keys, then stores, then directories)
    /// after the calls already under way; then the lane stops, waiting at most `timeout` for
    /// the worker thread to end (joined) or a thread-safe plugin's running calls to return.
    /// The library stays loaded. Idempotent.
    pub fn shutdown(self: &std::sync::Arc<Self>, timeout: Duration) -> Result<(), LoadError> {
        let open: Vec<(HandleKind, usize)> = {
            let mut hs = self.handles();
            hs.shut = true;
            let mut v: Vec<_> = std::mem::take(&mut hs.open).into_values().collect();
            v.sort_by_key(|(k, _)| *k);
            v
        };
        let l = self.clone();
        let name = self.names().join("+");
        self.lane
            .finish(timeout, &name, move || {
                for (kind, ptr) in open {
                    l.close_now(kind, ptr);
                }
            })
            .map_err(|e| {
                err(
                    &self.path,
                    format!(
                        "did not finish within {} ms at shutdown ({e}); the process exits with the plugin still running",
                        timeout.as_millis()
                    ),
                )
            })
    }

    /// Whether the handle is still open (checked on the lane before every call).
    pub(crate) fn is_open(&self, id: HandleId) -> bool {
        self.handles().open.contains_key(&id.0)
    }

    /// Closes one handle from `Drop` if the registry still holds it, without waiting.
    pub(crate) fn close_detached(
        self: &std::sync::Arc<Self>,
        id: HandleId,
        kind: HandleKind,
        ptr: usize,
    ) {
        if !self.unregister(id) {
            return;
        }
        let l = self.clone();
        self.lane.detach(move || l.close_now(kind, ptr));
    }

    /// Registers a handle just opened, on the lane: after shutdown it is closed at once and
    /// the open fails (the caller gets a message saying so).
    pub(crate) fn register_on_lane<T>(
        &self,
        kind: HandleKind,
        h: Handle<T>,
    ) -> Result<HandleId, CallError> {
        match self.register(kind, h) {
            Some(id) => Ok(id),
            None => {
                self.close_now(kind, h.get() as usize);
                Err(CallError {
                    status: Status::UNAVAILABLE,
                    message: "smimekit is shutting down: the handle was closed at once".into(),
                })
            }
        }
    }

    pub fn keystore_info(&self) -> Option<&PluginInfo> {
        self.keystore.as_ref().map(|k| &k.1)
    }

    pub fn directory_info(&self) -> Option<&PluginInfo> {
        self.directory.as_ref().map(|d| &d.1)
    }

    /// The key-store id and directory kind this library provides.
    pub fn names(&self) -> Vec<&str> {
        self.keystore_info()
            .into_iter()
            .chain(self.directory_info())
            .map(|i| i.name.as_str())
            .collect()
    }

    pub(crate) fn ks(&self) -> Option<&KeyStoreV1> {
        self.keystore.as_ref().map(|k| &k.0)
    }

    pub(crate) fn dir(&self) -> Option<&DirectoryV1> {
        self.directory.as_ref().map(|d| &d.0)
    }

    /// Whether this library's key store takes `reference` (must not block, per the ABI).
    pub fn accepts(&self, reference: &str) -> bool {
        let Some(f) = self.ks().and_then(|t| t.accepts) else {
            return false;
        };
        // SAFETY: `reference` is valid for the call; `accepts` is required to be callable
        // from any thread and not to block.
        unsafe { f(reference.as_ptr(), reference.len()) == 1 }
    }
}

/// What the loader and the lanes need to know about each interface's table.
pub(crate) trait Table: Sized {
    /// The interface name the entry point is asked for.
    const INTERFACE: &'static str;
    /// The smallest table size a plugin may declare (the v1.0 functions).
    const MIN_SIZE: usize;
    /// The plugin's own deallocator, present in every table.
    fn free_fn(&self) -> Option<unsafe extern "C" fn(*mut u8, usize)>;
    /// The functions a plugin must provide, with whether they are present.
    fn required(&self) -> Vec<(&'static str, bool)>;
    /// Capabilities always present, then optional ones with whether they are present.
    fn capabilities(&self) -> (Vec<&'static str>, Vec<(&'static str, bool)>);
    /// The name, version and description strings.
    fn texts(&self) -> [*const c_char; 3];
}

impl Table for KeyStoreV1 {
    const INTERFACE: &'static str = KEYSTORE_INTERFACE;
    const MIN_SIZE: usize = KeyStoreV1::MIN_SIZE;

    fn free_fn(&self) -> Option<unsafe extern "C" fn(*mut u8, usize)> {
        self.free_buf
    }

    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("free_buf", self.free_buf.is_some()),
            ("accepts", self.accepts.is_some()),
            ("store_open", self.store_open.is_some()),
            ("store_close", self.store_close.is_some()),
            ("key_open", self.key_open.is_some()),
            ("key_close", self.key_close.is_some()),
            ("key_certificate", self.key_certificate.is_some()),
            ("key_kind", self.key_kind.is_some()),
        ]
    }

    fn capabilities(&self) -> (Vec<&'static str>, Vec<(&'static str, bool)>) {
        let optional = vec![
            ("list", self.store_list.is_some()),
            ("unlock", self.store_unlock.is_some()),
            ("sign", self.key_sign_digest.is_some()),
            ("decrypt", self.key_decrypt.is_some()),
            ("ecdh", self.key_ecdh.is_some()),
        ];
        (Vec::new(), optional)
    }

    fn texts(&self) -> [*const c_char; 3] {
        [self.name, self.version, self.description]
    }
}

impl Table for DirectoryV1 {
    const INTERFACE: &'static str = DIRECTORY_INTERFACE;
    const MIN_SIZE: usize = DirectoryV1::MIN_SIZE;

    fn free_fn(&self) -> Option<unsafe extern "C" fn(*mut u8, usize)> {
        self.free_buf
    }

    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("free_buf", self.free_buf.is_some()),
            ("dir_open", self.dir_open.is_some()),
            ("dir_close", self.dir_close.is_some()),
            ("dir_lookup", self.dir_lookup.is_some()),
        ]
    }

    fn capabilities(&self) -> (Vec<&'static str>, Vec<(&'static str, bool)>) {
        let optional = vec![
            ("recipients", self.dir_recipients.is_some()),
            ("publish", self.dir_publish.is_some()),
            ("unpublish", self.dir_unpublish.is_some()),
            ("recipient", self.dir_recipient.is_some()),
            ("config-pairs", self.dir_open_pairs.is_some()),
        ];
        (vec!["lookup"], optional)
    }

    fn texts(&self) -> [*const c_char; 3] {
        [self.name, self.version, self.description]
    }
}

/// Reads and validates the table the entry point returned for `T`'s interface: header (ABI
/// version, size), the copy of `size` bytes (zero-filling what a smaller, older table lacks),
/// required functions, name and texts.
///
/// # Safety
/// `p` is non-null and points at a table whose header's `size` bytes are readable.
unsafe fn load_table<T: Table>(path: &Path, p: *const u8) -> Result<(T, PluginInfo), LoadError> {
    // SAFETY: a non-null table starts with a Header (caller).
    let h: Header = unsafe { p.cast::<Header>().read_unaligned() };
    check_header(path, T::INTERFACE, &h, T::MIN_SIZE)?;
    // SAFETY: the header says `size` bytes are readable (caller), checked ≥ MIN_SIZE above.
    let t: T = unsafe { copy_table(p, h.size as usize) };
    required(path, T::INTERFACE, &t.required())?;
    let [name, version, description] = t.texts();
    let name = c_text(path, "name", name)?;
    check_name(path, &name)?;
    let (mut capabilities, optional) = t.capabilities();
    capabilities.extend(
        optional
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(c, _)| c),
    );
    let version = c_text(path, "version", version)?;
    check_version(path, &version)?;
    let info = PluginInfo {
        name,
        version,
        description: c_text(path, "description", description)?,
        abi_minor: h.abi_minor,
        thread_safe: h.flags & FLAG_THREAD_SAFE != 0,
        capabilities,
    };
    Ok((t, info))
}

/// Runs one table call on `lib`'s lane: `table` picks the table, `f` makes the call with the
/// handle and a fresh output buffer and returns `None` when the function is absent. `Ok(None)`:
/// the table or the function is missing; `Err`: the lane has stopped.
pub(crate) async fn call_on_lane<T, H>(
    lib: &std::sync::Arc<Library>,
    table: fn(&Library) -> Option<&T>,
    handle: Handle<H>,
    id: HandleId,
    f: impl FnOnce(&T, *mut H, *mut Buf) -> Option<Status> + Send + 'static,
) -> Result<Option<Result<Vec<u8>, CallError>>, LaneFail>
where
    T: Table + 'static,
    H: 'static,
{
    let l = lib.clone();
    lib.call_timed(move || {
        if !l.is_open(id) {
            return Some(Err(closed_handle()));
        }
        let t = table(&l)?;
        let mut missing = false;
        let r = call_buf(t.free_fn(), |out| {
            f(t, handle.get(), out).unwrap_or_else(|| {
                missing = true;
                Status::OK
            })
        });
        (!missing).then_some(r)
    })
    .await
}

/// Why a call did not return the plugin's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneFail {
    /// The lane stopped (shutdown) or the job panicked in the host.
    Stopped,
    /// No answer within the call timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for LaneFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaneFail::Stopped => f.write_str("the plugin's lane stopped"),
            LaneFail::TimedOut(d) => write!(
                f,
                "the plugin did not answer within {} ms (the call timeout; it goes on in the plugin)",
                d.as_millis()
            ),
        }
    }
}

/// The error of a call on a handle that was closed (at shutdown) before the call ran.
pub(crate) fn closed_handle() -> CallError {
    CallError {
        status: Status::UNAVAILABLE,
        message: "the handle was closed (smimekit is shutting down)".into(),
    }
}

/// What a failed call returned: its status and message.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Status,
    pub message: String,
}

/// The largest output the host takes from one call (a certificate list, a recipient listing):
/// a longer one is refused, named, and still freed.
pub const MAX_OUTPUT: usize = 256 << 20;

/// Calls `f` with a fresh output buffer, copies the output and frees it with `free`; checks
/// the status is one the ABI defines. The plugin's buffer is wiped before it is freed (it may
/// hold a decrypted key or a shared secret); the host's copy is the caller's to protect.
pub(crate) fn call_buf(
    free: Option<unsafe extern "C" fn(*mut u8, usize)>,
    f: impl FnOnce(*mut Buf) -> Status,
) -> Result<Vec<u8>, CallError> {
    let mut buf = Buf::empty();
    let status = f(&mut buf);
    let too_long = !buf.ptr.is_null() && buf.len > MAX_OUTPUT;
    let bytes = if buf.ptr.is_null() || buf.len == 0 || too_long {
        Vec::new()
    } else {
        // SAFETY: the plugin returned `len` readable bytes at `ptr`, valid until freed.
        unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec()
    };
    if !buf.ptr.is_null()
        && let Some(free) = free
    {
        if !too_long {
            // SAFETY: `len` bytes at `ptr` are the plugin's buffer, writable until freed (the
            // ABI hands the host a `uint8_t *`); the FFI call below keeps the writes.
            unsafe { std::ptr::write_bytes(buf.ptr, 0, buf.len) };
        }
        // SAFETY: released once, with the plugin's own free_buf, as the ABI says.
        unsafe { free(buf.ptr, buf.len) };
    }
    if too_long {
        return Err(CallError {
            status: Status::FAILED,
            message: format!(
                "plugin returned {} bytes, more than the host takes ({MAX_OUTPUT})",
                buf.len
            ),
        });
    }
    if status.0 > Status::MAX {
        return Err(CallError {
            status,
            message: format!("plugin returned an out-of-range status {}", status.0),
        });
    }
    if status == Status::OK {
        Ok(bytes)
    } else {
        Err(CallError {
            status,
            message: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_and_not_reserved() {
        let p = Path::new("/x/libn.so");
        for good in ["acme", "vendor-c", "ldap2", "my-smimekit"] {
            assert!(check_name(p, good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "non-empty"),
            ("Acme", "[a-z0-9-]"),
            ("a b", "[a-z0-9-]"),
            ("smimekit", "reserved"),
            ("smimekit-hsm", "reserved"),
        ] {
            let e = check_name(p, bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn versions_are_semver_text() {
        let p = Path::new("/x/libv.so");
        for good in [
            "0.1.0",
            "1.0.0",
            "10.20.30",
            "1.0.0-rc.1",
            "1.2.3+build.7",
            "1.2.3-a-b+c",
        ] {
            assert!(check_version(p, good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "v1.0.0",
            "1.0.0 beta",
            "01.0.0",
            "1.0.0-",
            "1.0.0-é",
            "1..0",
        ] {
            let e = check_version(p, bad).unwrap_err();
            assert!(e.to_string().contains("/x/libv.so"), "{e}");
            assert!(e.to_string().contains("SemVer"), "{e}");
        }
        assert!(check_version(p, &format!("1.0.0-{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn outputs_are_copied_wiped_freed_once_and_capped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static FREED: AtomicUsize = AtomicUsize::new(0);
        static WIPED: AtomicUsize = AtomicUsize::new(0);
        unsafe extern "C" fn free(p: *mut u8, n: usize) {
            // SAFETY: `p` came from `Box::into_raw` of a boxed slice of `n` bytes below.
            let b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) };
            if b.iter().all(|&x| x == 0) {
                WIPED.fetch_add(1, Ordering::SeqCst);
            }
            FREED.fetch_add(1, Ordering::SeqCst);
        }
        let give = |data: &[u8], status: Status| {
            let data = data.to_vec();
            call_buf(Some(free), move |out| {
                let b: Box<[u8]> = data.into_boxed_slice();
                let n = b.len();
                // SAFETY: `out` is the host's zeroed buffer for this call.
                unsafe {
                    (*out).len = n;
                    (*out).ptr = Box::into_raw(b).cast::<u8>();
                }
                status
            })
        };
        assert_eq!(give(b"secret", Status::OK).unwrap(), b"secret");
        let e = give(b"no such key", Status::NOT_FOUND).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (Status::NOT_FOUND, "no such key")
        );
        assert_eq!(FREED.load(Ordering::SeqCst), 2);
        assert_eq!(WIPED.load(Ordering::SeqCst), 2);
        // NULL with length 0, or any length: empty, nothing freed.
        let r = call_buf(Some(free), |out| {
            // SAFETY: as above.
            unsafe { (*out).len = 5 };
            Status::OK
        });
        assert_eq!(r.unwrap(), Vec::<u8>::new());
        assert_eq!(FREED.load(Ordering::SeqCst), 2);
        let e = give(b"x", Status(99)).unwrap_err();
        assert!(
            e.message.contains("out-of-range status 99"),
            "{}",
            e.message
        );
    }
}
