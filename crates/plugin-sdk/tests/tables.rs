//! The tables the SDK builds, called in-process through their C function pointers: buffers,
//! handles, error statuses and the panic boundary, for both ports.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::ffi::CStr;

use smimekit_plugin_sdk::abi::{self, Buf, Status, list};
use smimekit_plugin_sdk::{
    DirectoryPlugin, Error, KeyEntry, KeyStorePlugin, PluginKey, directory_table, keystore_table,
};

#[derive(Debug)]
struct Store;
#[derive(Debug)]
struct Key;

impl KeyStorePlugin for Store {
    type Key = Key;
    const NAME: &'static CStr = c"t-store";
    const VERSION: &'static CStr = c"1.2.3";
    const DESCRIPTION: &'static CStr = c"test";

    fn accepts(reference: &str) -> bool {
        reference.starts_with("t:")
    }
    fn open(reference: &str, _certificate: Option<&str>) -> Result<Self, Error> {
        if reference == "t:panic" {
            panic!("open panicked");
        }
        Ok(Store)
    }
    fn protection(&self) -> Result<(), Error> {
        Err(Error::needs_unlock("PIN of t"))
    }
    fn list(&self) -> Result<Vec<KeyEntry>, Error> {
        Ok(vec![KeyEntry {
            selector: "#0".into(),
            label: None,
            certificate: Some(vec![0x30, 0]),
        }])
    }
    fn open_key(&self, _selector: Option<&str>) -> Result<Key, Error> {
        Ok(Key)
    }
}

impl PluginKey for Key {
    fn certificate(&self) -> Vec<u8> {
        vec![0x30, 0]
    }
    fn kind(&self) -> (u32, u32) {
        (abi::KEY_RSA, 2048)
    }
    fn sign_digest(&self, scheme: u32, digest: &[u8]) -> Result<Vec<u8>, Error> {
        if scheme >> 8 != abi::SIG_RSA_PKCS1 {
            return Err(Error::unsupported("only PKCS#1"));
        }
        Ok(digest.iter().rev().copied().collect())
    }
}

#[derive(Debug)]
struct Dir;

impl DirectoryPlugin for Dir {
    const KIND: &'static CStr = c"t-dir";
    const VERSION: &'static CStr = c"0.0.1";
    const DESCRIPTION: &'static CStr = c"test";
    fn open(_name: &str, _config: &str) -> Result<Self, Error> {
        Ok(Dir)
    }
    fn lookup(&self, address: &str) -> Result<Vec<Vec<u8>>, Error> {
        Ok(vec![address.as_bytes().to_vec()])
    }
    fn publish(&self, _a: &str, _k: u32, _c: &[u8], _m: u32) -> Result<Vec<Vec<u8>>, Error> {
        Err(Error::new(Status::REJECTED, "read-only"))
    }
}

/// Takes a buffer's bytes and frees it with the table's `free_buf`.
fn take(free: unsafe extern "C" fn(*mut u8, usize), b: Buf) -> Vec<u8> {
    if b.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: a buffer the SDK just returned.
    let v = unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec();
    // SAFETY: freed once with the plugin's own function.
    unsafe { free(b.ptr, b.len) };
    v
}

#[test]
fn keystore_table_round_trips() {
    let t = keystore_table::<Store>();
    assert_eq!(t.header.abi_major, abi::ABI_MAJOR);
    assert_eq!(
        t.header.size as usize,
        std::mem::size_of::<abi::KeyStoreV1>()
    );
    assert_eq!(t.header.flags, 0);
    // SAFETY: static NUL-terminated strings.
    assert_eq!(unsafe { CStr::from_ptr(t.version) }, c"1.2.3");
    let free = t.free_buf.unwrap();
    let r = b"t:x";
    // SAFETY (all calls below): valid slices, out-pointers and handles from the same table.
    unsafe {
        assert_eq!(t.accepts.unwrap()(r.as_ptr(), r.len()), 1);
        assert_eq!(t.accepts.unwrap()(b"u".as_ptr(), 1), 0);
        let mut s = std::ptr::null_mut();
        let mut err = Buf::empty();
        assert_eq!(
            t.store_open.unwrap()(r.as_ptr(), r.len(), std::ptr::null(), 0, &mut s, &mut err),
            Status::OK
        );
        assert!(!s.is_null());
        let mut out = Buf::empty();
        assert_eq!(
            t.store_protection.unwrap()(s, &mut out),
            Status::NEEDS_UNLOCK
        );
        assert_eq!(take(free, out), b"PIN of t");
        let mut out = Buf::empty();
        assert_eq!(t.store_list.unwrap()(s, &mut out), Status::OK);
        let listed = take(free, out);
        assert_eq!(
            list::decode(&listed).unwrap(),
            [b"#0".as_slice(), b"", &[0x30, 0]]
        );
        let mut k = std::ptr::null_mut();
        assert_eq!(
            t.key_open.unwrap()(s, std::ptr::null(), 0, &mut k, &mut err),
            Status::OK
        );
        let (mut kind, mut bits) = (0, 0);
        assert_eq!(t.key_kind.unwrap()(k, &mut kind, &mut bits), Status::OK);
        assert_eq!((kind, bits), (abi::KEY_RSA, 2048));
        let d = [1u8, 2, 3];
        let mut out = Buf::empty();
        let scheme = abi::SIG_RSA_PKCS1 << 8 | abi::DIGEST_SHA256;
        assert_eq!(
            t.key_sign_digest.unwrap()(k, scheme, d.as_ptr(), 3, &mut out),
            Status::OK
        );
        assert_eq!(take(free, out), [3, 2, 1]);
        let mut out = Buf::empty();
        assert_eq!(
            t.key_sign_digest.unwrap()(k, abi::SIG_ECDSA << 8, d.as_ptr(), 3, &mut out),
            Status::UNSUPPORTED
        );
        assert_eq!(take(free, out), b"only PKCS#1");
        // Defaults of the trait say unsupported.
        let mut out = Buf::empty();
        assert_eq!(
            t.key_ecdh.unwrap()(k, d.as_ptr(), 3, &mut out),
            Status::UNSUPPORTED
        );
        take(free, out);
        t.key_close.unwrap()(k);
        t.store_close.unwrap()(s);
        // A null handle is an invalid argument, not a crash.
        let mut out = Buf::empty();
        assert_eq!(
            t.store_list.unwrap()(std::ptr::null_mut(), &mut out),
            Status::INVALID_ARGUMENT
        );
        take(free, out);
        // A panic becomes a status with its message.
        let p = b"t:panic";
        let mut s = std::ptr::null_mut();
        let mut err = Buf::empty();
        assert_eq!(
            t.store_open.unwrap()(p.as_ptr(), p.len(), std::ptr::null(), 0, &mut s, &mut err),
            Status::PANIC
        );
        assert!(
            String::from_utf8(take(free, err))
                .unwrap()
                .contains("open panicked")
        );
        assert!(s.is_null());
    }
}

#[test]
fn directory_table_round_trips() {
    let t = directory_table::<Dir>();
    let free = t.free_buf.unwrap();
    // SAFETY (all calls below): valid slices, out-pointers and handles from the same table.
    unsafe {
        let mut d = std::ptr::null_mut();
        let mut err = Buf::empty();
        assert_eq!(
            t.dir_open.unwrap()(b"n".as_ptr(), 1, b"".as_ptr(), 0, &mut d, &mut err),
            Status::OK
        );
        let a = b"a@example.org";
        let mut out = Buf::empty();
        assert_eq!(
            t.dir_lookup.unwrap()(d, a.as_ptr(), a.len(), &mut out),
            Status::OK
        );
        assert_eq!(list::decode(&take(free, out)).unwrap(), [a.as_slice()]);
        let mut out = Buf::empty();
        let st = t.dir_publish.unwrap()(d, a.as_ptr(), a.len(), 1, a.as_ptr(), 1, 1, &mut out);
        assert_eq!(st, Status::REJECTED);
        assert_eq!(take(free, out), b"read-only");
        let mut out = Buf::empty();
        assert_eq!(t.dir_recipients.unwrap()(d, &mut out), Status::UNSUPPORTED);
        take(free, out);
        // Invalid UTF-8 input is refused.
        let mut out = Buf::empty();
        assert_eq!(
            t.dir_lookup.unwrap()(d, [0xff].as_ptr(), 1, &mut out),
            Status::INVALID_ARGUMENT
        );
        take(free, out);
        t.dir_close.unwrap()(d);
    }
}
