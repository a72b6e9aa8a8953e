//! The Rust vendor SDK for smimekit plugins.
//!
//! Implement [`DirectoryPlugin`] and/or [`KeyStorePlugin`] (+ [`PluginKey`]) with plain sync
//! code, then export the C tables with one macro in a `cdylib` crate:
//!
//! ```text
//! smimekit_plugin_sdk::export_plugin!(directory = MyDirectory);
//! smimekit_plugin_sdk::export_plugin!(directory = MyDirectory, keystore = MyStore);
//! ```
//!
//! Every exported function runs behind a panic boundary ([`std::panic::catch_unwind`]): a
//! panic becomes [`Status::PANIC`] with a message, never an unwind into the host (which would be
//! undefined behaviour), the way `rustls-ffi` guards its functions. Buffers returned to the host
//! are boxed slices released by the table's `free_buf`.
//!
//! The SDK does not hide the ABI's rules (see `docs/plugin-abi.md`): handles stay valid until
//! closed, and without `THREAD_SAFE = true` the host calls the plugin from one thread at a time.

// The FFI boundary: raw pointers from the host are checked for null and read once here.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use smimekit_plugin_abi as abi;
use smimekit_plugin_abi::{Buf, Dir, DirectoryV1, Header, Key, KeyStoreV1, Status, Store, list};

/// A failure: a status and a message for the person.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn failed(m: impl Into<String>) -> Self {
        Self::new(Status::FAILED, m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(Status::UNSUPPORTED, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(Status::NOT_FOUND, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(Status::CONFIG, m)
    }
    pub fn io(m: impl Into<String>) -> Self {
        Self::new(Status::IO, m)
    }
    pub fn needs_unlock(hint: impl Into<String>) -> Self {
        Self::new(Status::NEEDS_UNLOCK, hint)
    }
}

/// One recipient, as [`DirectoryPlugin::recipients`] returns it.
#[derive(Debug, Clone)]
pub struct RecipientEntry {
    pub address: String,
    /// `abi::RECIPIENT_MAILBOX` or `abi::RECIPIENT_CONTACT`.
    pub kind: u32,
    /// DER certificates.
    pub certificates: Vec<Vec<u8>>,
}

/// One key, as [`KeyStorePlugin::list`] returns it.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// What `open_key` takes to open this key again (`#0`…).
    pub selector: String,
    pub label: Option<String>,
    /// The certificate, DER.
    pub certificate: Option<Vec<u8>>,
}

/// A directory backend, selected by `kind = KIND` in the configuration.
pub trait DirectoryPlugin: Sized + Send + Sync + 'static {
    const KIND: &'static CStr;
    const VERSION: &'static CStr;
    const DESCRIPTION: &'static CStr;
    /// Whether the host may call concurrently from several threads.
    const THREAD_SAFE: bool = false;

    /// Opens the directory `name` from its configuration table (TOML text).
    fn open(name: &str, config: &str) -> Result<Self, Error>;
    /// DER certificates published for `address` (empty when none).
    fn lookup(&self, address: &str) -> Result<Vec<Vec<u8>>, Error>;
    /// Every recipient.
    fn recipients(&self) -> Result<Vec<RecipientEntry>, Error> {
        Err(Error::unsupported("listing recipients is not supported"))
    }
    /// Publishes a certificate; returns what the directory holds afterwards.
    fn publish(
        &self,
        address: &str,
        kind: u32,
        cert: &[u8],
        mode: u32,
    ) -> Result<Vec<Vec<u8>>, Error>;
    /// Removes a certificate; returns what remains.
    fn unpublish(&self, address: &str, cert: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let _ = (address, cert);
        Err(Error::unsupported("unpublish is not supported"))
    }
}

/// A key store, chosen for the KEYREFs [`KeyStorePlugin::accepts`] claims.
pub trait KeyStorePlugin: Sized + Send + Sync + 'static {
    type Key: PluginKey;
    const NAME: &'static CStr;
    const VERSION: &'static CStr;
    const DESCRIPTION: &'static CStr;
    const THREAD_SAFE: bool = false;

    fn accepts(reference: &str) -> bool;
    fn open(reference: &str, certificate: Option<&str>) -> Result<Self, Error>;
    /// `Err(Error::needs_unlock(hint))` while a secret is needed.
    fn protection(&self) -> Result<(), Error> {
        Ok(())
    }
    fn unlock(&self, secret: &[u8]) -> Result<(), Error> {
        let _ = secret;
        Ok(())
    }
    /// The keys of the store.
    fn list(&self) -> Result<Vec<KeyEntry>, Error>;
    fn open_key(&self, selector: Option<&str>) -> Result<Self::Key, Error>;
}

/// An open private key.
pub trait PluginKey: Send + Sync + 'static {
    fn certificate(&self) -> Vec<u8>;
    /// The issuers that came with the key (DER), and any other CA certificates the store holds
    /// beside it, in any order: the host builds the signer's chain from them. Default: none.
    fn chain(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// (`abi::KEY_*`, bits or `abi::CURVE_*`).
    fn kind(&self) -> (u32, u32);
    fn sign_digest(&self, scheme: u32, digest: &[u8]) -> Result<Vec<u8>, Error>;
    fn decrypt(
        &self,
        padding: u32,
        oaep_hash: u32,
        oaep_mgf1: u32,
        label: &[u8],
        wrapped: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let _ = (padding, oaep_hash, oaep_mgf1, label, wrapped);
        Err(Error::unsupported("decryption is not supported"))
    }
    fn ecdh(&self, peer: &[u8]) -> Result<Vec<u8>, Error> {
        let _ = peer;
        Err(Error::unsupported("ECDH is not supported"))
    }
}

/// A table in a `static`: the raw pointers in it point at static, immutable data.
#[repr(transparent)]
#[derive(Debug)]
pub struct StaticTable<T>(pub T);
// SAFETY: the tables hold pointers to `'static` C strings and functions only, never written.
unsafe impl<T> Sync for StaticTable<T> {}

// ---- buffers and the panic boundary ----

fn into_buf(bytes: Vec<u8>) -> Buf {
    if bytes.is_empty() {
        return Buf::empty();
    }
    let b = bytes.into_boxed_slice();
    let len = b.len();
    Buf {
        ptr: Box::into_raw(b).cast::<u8>(),
        len,
    }
}

/// The `free_buf` of every table exported with this SDK.
///
/// # Safety
/// `ptr`/`len` must come from a buffer this SDK returned, released once.
pub unsafe extern "C" fn free_buf(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: per the contract, (ptr, len) is a `Box<[u8]>` made by `into_buf`, freed once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
}

fn write(out: *mut Buf, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is non-null and points at the host's `smk_buf` for this call.
    unsafe { out.write(into_buf(bytes)) };
}

/// Runs `f` behind the panic boundary; its bytes (or message) go to `out`.
fn guard(out: *mut Buf, f: impl FnOnce() -> Result<Vec<u8>, Error>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(bytes)) => {
            write(out, bytes);
            Status::OK
        }
        Ok(Err(e)) => {
            write(out, e.message.into_bytes());
            e.status
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            write(out, format!("plugin panicked: {what}").into_bytes());
            Status::PANIC
        }
    }
}

/// Borrows host bytes as a slice (empty for null).
fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the host passes `len` readable bytes at `ptr`, valid for the call.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

fn text<'a>(ptr: *const u8, len: usize) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes(ptr, len))
        .map_err(|_| Error::new(Status::INVALID_ARGUMENT, "text is not UTF-8"))
}

fn opt_text<'a>(ptr: *const u8, len: usize) -> Result<Option<&'a str>, Error> {
    text(ptr, len).map(|t| (!t.is_empty()).then_some(t))
}

/// Borrows a handle made by `Box::into_raw` of `T`.
fn handle<'a, T, H>(h: *mut H) -> Result<&'a T, Error> {
    if h.is_null() {
        return Err(Error::new(Status::INVALID_ARGUMENT, "null handle"));
    }
    // SAFETY: non-null handles are `Box<T>` pointers this SDK handed out and the host has
    // not closed yet (the ABI's lifetime rule).
    Ok(unsafe { &*h.cast::<T>() })
}

fn put_handle<T, H>(out: *mut *mut H, value: T) -> Result<Vec<u8>, Error> {
    if out.is_null() {
        return Err(Error::new(Status::INVALID_ARGUMENT, "null output handle"));
    }
    // SAFETY: `out` is non-null and points at the host's handle slot.
    unsafe { out.write(Box::into_raw(Box::new(value)).cast::<H>()) };
    Ok(Vec::new())
}

fn close<T, H>(h: *mut H) {
    if h.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a handle this SDK made, closed once by the host.
        drop(unsafe { Box::from_raw(h.cast::<T>()) });
    }));
}

const fn header(size: usize, thread_safe: bool) -> Header {
    Header {
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        // Tables are a few hundred bytes.
        size: size as u32,
        flags: if thread_safe {
            abi::FLAG_THREAD_SAFE
        } else {
            0
        },
    }
}

// ---- directory ----

unsafe extern "C" fn dir_open<P: DirectoryPlugin>(
    name: *const u8,
    name_len: usize,
    config: *const u8,
    config_len: usize,
    out: *mut *mut Dir,
    err: *mut Buf,
) -> Status {
    guard(err, || {
        let d = P::open(text(name, name_len)?, text(config, config_len)?)?;
        put_handle(out, d)
    })
}

unsafe extern "C" fn dir_close<P: DirectoryPlugin>(d: *mut Dir) {
    close::<P, Dir>(d)
}

unsafe extern "C" fn dir_lookup<P: DirectoryPlugin>(
    d: *mut Dir,
    a: *const u8,
    a_len: usize,
    out: *mut Buf,
) -> Status {
    guard(out, || {
        Ok(list::encode(handle::<P, _>(d)?.lookup(text(a, a_len)?)?))
    })
}

unsafe extern "C" fn dir_recipients<P: DirectoryPlugin>(d: *mut Dir, out: *mut Buf) -> Status {
    guard(out, || {
        let mut enc = Vec::new();
        for r in handle::<P, _>(d)?.recipients()? {
            let mut one = Vec::new();
            list::push(&mut one, r.address.as_bytes());
            // Kinds are small constants (1, 2).
            list::push(&mut one, &[r.kind as u8]);
            list::push(&mut one, &list::encode(r.certificates));
            list::push(&mut enc, &one);
        }
        Ok(enc)
    })
}

unsafe extern "C" fn dir_publish<P: DirectoryPlugin>(
    d: *mut Dir,
    a: *const u8,
    a_len: usize,
    kind: u32,
    c: *const u8,
    c_len: usize,
    mode: u32,
    out: *mut Buf,
) -> Status {
    guard(out, || {
        let after = handle::<P, _>(d)?.publish(text(a, a_len)?, kind, bytes(c, c_len), mode)?;
        Ok(list::encode(after))
    })
}

unsafe extern "C" fn dir_unpublish<P: DirectoryPlugin>(
    d: *mut Dir,
    a: *const u8,
    a_len: usize,
    c: *const u8,
    c_len: usize,
    out: *mut Buf,
) -> Status {
    guard(out, || {
        let after = handle::<P, _>(d)?.unpublish(text(a, a_len)?, bytes(c, c_len))?;
        Ok(list::encode(after))
    })
}

/// The directory table for `P` (used by [`export_plugin!`]).
pub const fn directory_table<P: DirectoryPlugin>() -> DirectoryV1 {
    DirectoryV1 {
        header: header(std::mem::size_of::<DirectoryV1>(), P::THREAD_SAFE),
        name: P::KIND.as_ptr(),
        version: P::VERSION.as_ptr(),
        description: P::DESCRIPTION.as_ptr(),
        free_buf: Some(free_buf),
        dir_open: Some(dir_open::<P>),
        dir_close: Some(dir_close::<P>),
        dir_lookup: Some(dir_lookup::<P>),
        dir_recipients: Some(dir_recipients::<P>),
        dir_publish: Some(dir_publish::<P>),
        dir_unpublish: Some(dir_unpublish::<P>),
        // ABI 1.1's optional functions: the SDK hands the TOML text and lets the host look
        // up through `lookup`.
        dir_recipient: None,
        dir_open_pairs: None,
    }
}

// ---- key store ----

unsafe extern "C" fn ks_accepts<P: KeyStorePlugin>(r: *const u8, len: usize) -> u32 {
    catch_unwind(|| text(r, len).map(P::accepts).unwrap_or(false)).unwrap_or(false) as u32
}

unsafe extern "C" fn ks_open<P: KeyStorePlugin>(
    r: *const u8,
    r_len: usize,
    c: *const u8,
    c_len: usize,
    out: *mut *mut Store,
    err: *mut Buf,
) -> Status {
    guard(err, || {
        let s = P::open(text(r, r_len)?, opt_text(c, c_len)?)?;
        put_handle(out, s)
    })
}

unsafe extern "C" fn ks_close<P: KeyStorePlugin>(s: *mut Store) {
    close::<P, Store>(s)
}

unsafe extern "C" fn ks_protection<P: KeyStorePlugin>(s: *mut Store, out: *mut Buf) -> Status {
    guard(out, || handle::<P, _>(s)?.protection().map(|()| Vec::new()))
}

unsafe extern "C" fn ks_unlock<P: KeyStorePlugin>(
    s: *mut Store,
    secret: *const u8,
    len: usize,
    err: *mut Buf,
) -> Status {
    guard(err, || {
        handle::<P, _>(s)?
            .unlock(bytes(secret, len))
            .map(|()| Vec::new())
    })
}

unsafe extern "C" fn ks_list<P: KeyStorePlugin>(s: *mut Store, out: *mut Buf) -> Status {
    guard(out, || {
        let mut enc = Vec::new();
        for k in handle::<P, _>(s)?.list()? {
            list::push(&mut enc, k.selector.as_bytes());
            list::push(&mut enc, k.label.unwrap_or_default().as_bytes());
            list::push(&mut enc, &k.certificate.unwrap_or_default());
        }
        Ok(enc)
    })
}

unsafe extern "C" fn key_open<P: KeyStorePlugin>(
    s: *mut Store,
    sel: *const u8,
    sel_len: usize,
    out: *mut *mut Key,
    err: *mut Buf,
) -> Status {
    guard(err, || {
        let k = handle::<P, _>(s)?.open_key(opt_text(sel, sel_len)?)?;
        put_handle(out, k)
    })
}

unsafe extern "C" fn key_close<P: KeyStorePlugin>(k: *mut Key) {
    close::<P::Key, Key>(k)
}

unsafe extern "C" fn key_certificate<P: KeyStorePlugin>(k: *mut Key, out: *mut Buf) -> Status {
    guard(out, || Ok(handle::<P::Key, _>(k)?.certificate()))
}

unsafe extern "C" fn key_chain<P: KeyStorePlugin>(k: *mut Key, out: *mut Buf) -> Status {
    guard(out, || Ok(list::encode(handle::<P::Key, _>(k)?.chain())))
}

unsafe extern "C" fn key_kind<P: KeyStorePlugin>(
    k: *mut Key,
    kind: *mut u32,
    param: *mut u32,
) -> Status {
    guard(std::ptr::null_mut(), || {
        if kind.is_null() || param.is_null() {
            return Err(Error::new(Status::INVALID_ARGUMENT, "null output"));
        }
        let (a, b) = handle::<P::Key, _>(k)?.kind();
        // SAFETY: both checked non-null above; they point at the host's u32s.
        unsafe {
            kind.write(a);
            param.write(b);
        }
        Ok(Vec::new())
    })
}

unsafe extern "C" fn key_sign<P: KeyStorePlugin>(
    k: *mut Key,
    scheme: u32,
    d: *const u8,
    d_len: usize,
    out: *mut Buf,
) -> Status {
    guard(out, || {
        handle::<P::Key, _>(k)?.sign_digest(scheme, bytes(d, d_len))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn key_decrypt<P: KeyStorePlugin>(
    k: *mut Key,
    padding: u32,
    hash: u32,
    mgf1: u32,
    l: *const u8,
    l_len: usize,
    w: *const u8,
    w_len: usize,
    out: *mut Buf,
) -> Status {
    guard(out, || {
        handle::<P::Key, _>(k)?.decrypt(padding, hash, mgf1, bytes(l, l_len), bytes(w, w_len))
    })
}

unsafe extern "C" fn key_ecdh<P: KeyStorePlugin>(
    k: *mut Key,
    p: *const u8,
    p_len: usize,
    out: *mut Buf,
) -> Status {
    guard(out, || handle::<P::Key, _>(k)?.ecdh(bytes(p, p_len)))
}

/// The key-store table for `P` (used by [`export_plugin!`]).
pub const fn keystore_table<P: KeyStorePlugin>() -> KeyStoreV1 {
    KeyStoreV1 {
        header: header(std::mem::size_of::<KeyStoreV1>(), P::THREAD_SAFE),
        name: P::NAME.as_ptr(),
        version: P::VERSION.as_ptr(),
        description: P::DESCRIPTION.as_ptr(),
        free_buf: Some(free_buf),
        accepts: Some(ks_accepts::<P>),
        store_open: Some(ks_open::<P>),
        store_close: Some(ks_close::<P>),
        store_protection: Some(ks_protection::<P>),
        store_unlock: Some(ks_unlock::<P>),
        store_list: Some(ks_list::<P>),
        key_open: Some(key_open::<P>),
        key_close: Some(key_close::<P>),
        key_certificate: Some(key_certificate::<P>),
        key_chain: Some(key_chain::<P>),
        key_kind: Some(key_kind::<P>),
        key_sign_digest: Some(key_sign::<P>),
        key_decrypt: Some(key_decrypt::<P>),
        key_ecdh: Some(key_ecdh::<P>),
    }
}

/// Picks the table for an interface name (used by [`export_plugin!`]'s entry point).
///
/// # Safety
/// `interface` is null or a NUL-terminated string.
pub unsafe fn select(
    interface: *const c_char,
    abi_major: u32,
    tables: &[(&str, *const c_void)],
) -> *const c_void {
    if interface.is_null() || abi_major != abi::ABI_MAJOR {
        return std::ptr::null();
    }
    // SAFETY: non-null and NUL-terminated per the entry point's contract.
    let name = unsafe { CStr::from_ptr(interface) };
    tables
        .iter()
        .find(|(n, _)| n.as_bytes() == name.to_bytes())
        .map_or(std::ptr::null(), |(_, t)| *t)
}

/// Exports `smimekit_plugin_entry` for the given implementations:
/// `export_plugin!(directory = D)`, `export_plugin!(keystore = K)`, or both.
#[macro_export]
macro_rules! export_plugin {
    ($($port:ident = $ty:ty),+ $(,)?) => {
        $($crate::export_plugin!(@table $port $ty);)+

        /// The plugin's entry point (smimekit plugin ABI v1).
        ///
        /// # Safety
        /// `interface` is null or a NUL-terminated string.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn smimekit_plugin_entry(
            interface: *const ::std::ffi::c_char,
            abi_major: u32,
        ) -> *const ::std::ffi::c_void {
            ::std::panic::catch_unwind(|| {
                // SAFETY: forwarded from the host under the same contract.
                unsafe {
                    $crate::select(interface, abi_major, &[
                        $($crate::export_plugin!(@entry $port)),+
                    ])
                }
            })
            .unwrap_or(::std::ptr::null())
        }
    };
    (@table directory $ty:ty) => {
        static SMIMEKIT_DIRECTORY_TABLE: $crate::StaticTable<$crate::abi::DirectoryV1> =
            $crate::StaticTable($crate::directory_table::<$ty>());
    };
    (@table keystore $ty:ty) => {
        static SMIMEKIT_KEYSTORE_TABLE: $crate::StaticTable<$crate::abi::KeyStoreV1> =
            $crate::StaticTable($crate::keystore_table::<$ty>());
    };
    (@entry directory) => {
        ($crate::abi::DIRECTORY_INTERFACE, &SMIMEKIT_DIRECTORY_TABLE as *const _ as *const ::std::ffi::c_void)
    };
    (@entry keystore) => {
        ($crate::abi::KEYSTORE_INTERFACE, &SMIMEKIT_KEYSTORE_TABLE as *const _ as *const ::std::ffi::c_void)
    };
}
