//! The Windows FFI: crypt32 (stores, certificates, PFX, chains), advapi32 (legacy CryptoAPI)
//! and ncrypt (CNG). Every `unsafe` block of the crate is here; callers get owned handles
//! (closed on drop) and plain Rust data. Errors are the raw Windows code (`GetLastError`,
//! or the HRESULT/SECURITY_STATUS of NCrypt calls) for [`crate::errors::map`].

use std::ffi::c_void;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::GetLastError;
use windows_sys::Win32::Security::Cryptography::*;

/// Certificate encoding used everywhere.
pub const ENC: u32 = X509_ASN_ENCODING | PKCS_7_ASN_ENCODING;

/// A raw Windows error code.
pub type Code = u32;

pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn from_wide_buf(b: &[u16]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf16_lossy(&b[..end])
}

/// # Safety
/// `p` must be null or point to a NUL-terminated UTF-16 string.
unsafe fn from_wide_ptr(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    // SAFETY: the caller guarantees a NUL terminator, so every read up to it is in bounds.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, n))
    }
}

fn last_error() -> Code {
    // SAFETY: GetLastError has no preconditions.
    unsafe { GetLastError() }
}

/// Turns a failed BOOL call into its `GetLastError`. Wine sometimes leaves 0: report that
/// as E_FAIL-like `u32::MAX` rather than "success".
fn check(ok: windows_sys::core::BOOL) -> Result<(), Code> {
    if ok != 0 {
        Ok(())
    } else {
        Err(match last_error() {
            0 => u32::MAX,
            e => e,
        })
    }
}

fn check_hr(st: i32) -> Result<(), Code> {
    if st == 0 { Ok(()) } else { Err(st as u32) }
}

// ------------------------------------------------------------------------------- stores

/// An owned certificate store handle.
#[derive(Debug)]
pub struct Store(HCERTSTORE);

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the handle came from CertOpenStore/PFXImportCertStore and is closed once.
        unsafe {
            CertCloseStore(self.0, 0);
        }
    }
}

/// Opens a system store (`MY`, `CA`…) of the current user or the local machine.
pub fn open_system_store(name: &str, machine: bool, read_only: bool) -> Result<Store, Code> {
    let n = wide(name);
    let mut flags = if machine {
        CERT_SYSTEM_STORE_LOCAL_MACHINE
    } else {
        CERT_SYSTEM_STORE_CURRENT_USER
    };
    if read_only {
        flags |= CERT_STORE_READONLY_FLAG | CERT_STORE_OPEN_EXISTING_FLAG;
    }
    // SAFETY: `n` is a NUL-terminated UTF-16 store name that outlives the call.
    let h = unsafe {
        CertOpenStore(
            CERT_STORE_PROV_SYSTEM_W,
            0,
            0,
            flags,
            n.as_ptr() as *const c_void,
        )
    };
    if h.is_null() {
        Err(last_error())
    } else {
        Ok(Store(h))
    }
}

/// An empty in-memory store.
pub fn open_memory_store() -> Result<Store, Code> {
    // SAFETY: the memory provider takes no parameter.
    let h = unsafe { CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, null()) };
    if h.is_null() {
        Err(last_error())
    } else {
        Ok(Store(h))
    }
}

/// `PFXImportCertStore` on an in-memory PKCS#12 (keys go into the providers, never exportable).
pub fn pfx_import(p12: &[u8], password: &str, flags: u32) -> Result<Store, Code> {
    let len = u32::try_from(p12.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    let blob = CRYPT_INTEGER_BLOB {
        cbData: len,
        pbData: p12.as_ptr() as *mut u8,
    };
    let pw = wide(password);
    // SAFETY: the blob points at `p12` (read only by the call), `pw` is NUL-terminated; both live
    // across the call.
    let h = unsafe { PFXImportCertStore(&blob, pw.as_ptr(), flags) };
    if h.is_null() {
        Err(match last_error() {
            0 => u32::MAX,
            e => e,
        })
    } else {
        Ok(Store(h))
    }
}

const NTE_BAD_LEN_CODE: u32 = 0x8009_0004;

impl Store {
    /// Every certificate, in store order.
    pub fn certs(&self) -> Vec<Cert> {
        let mut out = Vec::new();
        let mut prev: *const CERT_CONTEXT = null();
        loop {
            // SAFETY: `prev` is null or the context the previous call returned; the call frees it.
            let c = unsafe { CertEnumCertificatesInStore(self.0, prev) };
            if c.is_null() {
                break;
            }
            // SAFETY: `c` is a valid context; the duplicate is ours to free.
            out.push(Cert(unsafe { CertDuplicateCertificateContext(c) }));
            prev = c;
        }
        out
    }

    /// A certificate whose subject is `c`'s issuer (the first one found), for chain building.
    pub fn find_issuer_of(&self, c: &Cert) -> Option<Cert> {
        // SAFETY: `c.0` is a valid context; its Issuer blob lives as long as `c`, across the call.
        let found = unsafe {
            let issuer = &(*(*c.0).pCertInfo).Issuer;
            CertFindCertificateInStore(
                self.0,
                ENC,
                0,
                CERT_FIND_SUBJECT_NAME,
                issuer as *const _ as *const c_void,
                null(),
            )
        };
        if found.is_null() {
            None
        } else {
            Some(Cert(found))
        }
    }

    /// Adds DER bytes as a certificate.
    pub fn add_encoded(&self, der: &[u8], disposition: u32) -> Result<Cert, Code> {
        let len = u32::try_from(der.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
        let mut out: *mut CERT_CONTEXT = null_mut();
        // SAFETY: `der` is valid for `len` bytes; `out` receives a context we own.
        check(unsafe {
            CertAddEncodedCertificateToStore(self.0, ENC, der.as_ptr(), len, disposition, &mut out)
        })?;
        Ok(Cert(out))
    }

    /// Adds a copy of `c` with its properties (the key link among them).
    pub fn add(&self, c: &Cert, disposition: u32) -> Result<Cert, Code> {
        let mut out: *mut CERT_CONTEXT = null_mut();
        // SAFETY: `c.0` is a valid context; `out` receives a context we own.
        check(unsafe { CertAddCertificateContextToStore(self.0, c.0, disposition, &mut out) })?;
        Ok(Cert(out))
    }
}

/// `CERT_STORE_ADD_REPLACE_EXISTING`.
pub const ADD_REPLACE: u32 = CERT_STORE_ADD_REPLACE_EXISTING;
/// `CERT_STORE_ADD_USE_EXISTING`.
pub const ADD_USE_EXISTING: u32 = CERT_STORE_ADD_USE_EXISTING;

// ------------------------------------------------------------------------------- certificates

/// An owned certificate context.
#[derive(Debug)]
pub struct Cert(*const CERT_CONTEXT);

impl Drop for Cert {
    fn drop(&mut self) {
        // SAFETY: we own one reference to the context.
        unsafe {
            CertFreeCertificateContext(self.0);
        }
    }
}

/// Where the private key of a certificate lives (`CERT_KEY_PROV_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvInfo {
    pub container: String,
    pub provider: String,
    /// 0 for a CNG key storage provider, the CSP type (1, 24…) for a legacy CSP.
    pub prov_type: u32,
    pub flags: u32,
    pub key_spec: u32,
}

impl ProvInfo {
    pub fn is_cng(&self) -> bool {
        self.prov_type == 0
    }
    pub fn machine_keyset(&self) -> bool {
        self.flags & CRYPT_MACHINE_KEYSET != 0
    }
}

impl Cert {
    /// The encoded certificate.
    pub fn der(&self) -> Vec<u8> {
        // SAFETY: a valid context's pbCertEncoded points at cbCertEncoded bytes.
        unsafe {
            let c = &*self.0;
            std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize).to_vec()
        }
    }

    fn name(&self, kind: u32, flags: u32) -> String {
        let mut buf = [0u16; 512];
        // SAFETY: the buffer length is passed; the result is NUL-terminated within it.
        let n = unsafe {
            CertGetNameStringW(
                self.0,
                kind,
                flags,
                null(),
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
        };
        from_wide_buf(&buf[..(n as usize).min(buf.len())])
    }

    /// SAN rfc822Name (or subject emailAddress); empty when there is none.
    pub fn email(&self) -> String {
        self.name(CERT_NAME_EMAIL_TYPE, 0)
    }

    pub fn subject_display(&self) -> String {
        self.name(CERT_NAME_SIMPLE_DISPLAY_TYPE, 0)
    }

    pub fn issuer_display(&self) -> String {
        self.name(CERT_NAME_SIMPLE_DISPLAY_TYPE, CERT_NAME_ISSUER_FLAG)
    }

    fn prop_bytes(&self, id: u32) -> Result<Vec<u64>, Code> {
        let mut len = 0u32;
        // SAFETY: size query with a null buffer.
        check(unsafe { CertGetCertificateContextProperty(self.0, id, null_mut(), &mut len) })?;
        // u64 backing: structures with pointers are read in place with their alignment.
        let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
        // SAFETY: `buf` holds at least `len` bytes.
        check(unsafe {
            CertGetCertificateContextProperty(self.0, id, buf.as_mut_ptr() as *mut c_void, &mut len)
        })?;
        Ok(buf)
    }

    /// The SHA-1 thumbprint (lower-case hex).
    pub fn thumbprint(&self) -> Result<String, Code> {
        let b = self.prop_bytes(CERT_SHA1_HASH_PROP_ID)?;
        // SAFETY: the property is 20 bytes; `b` holds at least that many.
        let bytes = unsafe { std::slice::from_raw_parts(b.as_ptr() as *const u8, 20) };
        Ok(crate::der::hex(bytes))
    }

    /// The key link, or `None` when no private key is attached.
    pub fn prov_info(&self) -> Option<ProvInfo> {
        let buf = self.prop_bytes(CERT_KEY_PROV_INFO_PROP_ID).ok()?;
        // SAFETY: the property data is a CRYPT_KEY_PROV_INFO whose string pointers point into
        // `buf` (aligned by its u64 backing), which lives until the end of this block.
        unsafe {
            let info = &*(buf.as_ptr() as *const CRYPT_KEY_PROV_INFO);
            Some(ProvInfo {
                container: from_wide_ptr(info.pwszContainerName),
                provider: from_wide_ptr(info.pwszProvName),
                prov_type: info.dwProvType,
                flags: info.dwFlags,
                key_spec: info.dwKeySpec,
            })
        }
    }

    /// Links the certificate to a key container (the legacy import work-around and tests).
    pub fn set_prov_info(&self, p: &ProvInfo) -> Result<(), Code> {
        let mut container = wide(&p.container);
        let mut provider = wide(&p.provider);
        let info = CRYPT_KEY_PROV_INFO {
            pwszContainerName: container.as_mut_ptr(),
            pwszProvName: provider.as_mut_ptr(),
            dwProvType: p.prov_type,
            dwFlags: p.flags,
            cProvParam: 0,
            rgProvParam: null_mut(),
            dwKeySpec: p.key_spec,
        };
        // SAFETY: `info` and its strings live across the call, which copies them.
        check(unsafe {
            CertSetCertificateContextProperty(
                self.0,
                CERT_KEY_PROV_INFO_PROP_ID,
                0,
                &info as *const _ as *const c_void,
            )
        })
    }

    /// Whether subject and issuer names are equal (a root).
    pub fn self_issued(&self) -> bool {
        // SAFETY: both name blobs belong to the valid context and are read as byte slices.
        unsafe {
            let i = &*(*self.0).pCertInfo;
            std::slice::from_raw_parts(i.Issuer.pbData, i.Issuer.cbData as usize)
                == std::slice::from_raw_parts(i.Subject.pbData, i.Subject.cbData as usize)
        }
    }

    /// notAfter as seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        // SAFETY: a valid context has a valid pCertInfo.
        let ft = unsafe { (*(*self.0).pCertInfo).NotAfter };
        let t = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
        (t as i64 - 116_444_736_000_000_000) / 10_000_000
    }

    /// The public key algorithm OID, the DER of its parameters (the curve for EC) and the key
    /// size in bits.
    pub fn public_key(&self) -> (String, Vec<u8>, u32) {
        // SAFETY: a valid context has a valid pCertInfo whose SubjectPublicKeyInfo pointers are
        // valid for the context's lifetime (ours).
        unsafe {
            let spki = &(*(*self.0).pCertInfo).SubjectPublicKeyInfo;
            let oid = if spki.Algorithm.pszObjId.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(spki.Algorithm.pszObjId as *const std::ffi::c_char)
                    .to_string_lossy()
                    .into_owned()
            };
            let p = &spki.Algorithm.Parameters;
            let params = if p.pbData.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p.pbData, p.cbData as usize).to_vec()
            };
            let bits = CertGetPublicKeyLength(ENC, spki);
            (oid, params, bits)
        }
    }

    /// The chain to a root, built by the system chain engine from the system stores (leaf
    /// excluded). A certificate with no known issuer gives an empty chain.
    pub fn chain(&self) -> Result<Vec<Vec<u8>>, Code> {
        // SAFETY: zero is a valid CERT_CHAIN_PARA apart from cbSize.
        let mut para: CERT_CHAIN_PARA = unsafe { std::mem::zeroed() };
        para.cbSize = std::mem::size_of::<CERT_CHAIN_PARA>() as u32;
        let mut ctx: *mut CERT_CHAIN_CONTEXT = null_mut();
        // SAFETY: null engine = the current user's default engine; `ctx` is freed below.
        check(unsafe {
            CertGetCertificateChain(
                null_mut(),
                self.0,
                null(),
                null_mut(),
                &para,
                0,
                null(),
                &mut ctx,
            )
        })?;
        let mut out = Vec::new();
        // SAFETY: `ctx` is a valid chain context; its arrays have the counts it states.
        unsafe {
            if (*ctx).cChain > 0 {
                let simple = &**(*ctx).rgpChain;
                for i in 1..simple.cElement as usize {
                    let el = &**simple.rgpElement.add(i);
                    let c = &*el.pCertContext;
                    out.push(
                        std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize)
                            .to_vec(),
                    );
                }
            }
            CertFreeCertificateChain(ctx);
        }
        Ok(out)
    }
}

// ------------------------------------------------------------------------------- private keys

/// A private-key handle from `CryptAcquireCertificatePrivateKey`.
#[derive(Debug)]
pub enum KeyHandle {
    /// CNG: `NCRYPT_KEY_HANDLE`, and whether we must free it.
    NCrypt(usize, bool),
    /// Legacy CryptoAPI: `HCRYPTPROV`, key spec, and whether we must release it.
    Capi(usize, u32, bool),
}

impl Drop for KeyHandle {
    fn drop(&mut self) {
        // SAFETY: handles we were told to free are freed exactly once.
        unsafe {
            match *self {
                KeyHandle::NCrypt(h, true) => {
                    NCryptFreeObject(h);
                }
                KeyHandle::Capi(h, _, true) => {
                    CryptReleaseContext(h, 0);
                }
                _ => {}
            }
        }
    }
}

/// `CryptAcquireCertificatePrivateKey` flags for the provider preference.
pub const ACQUIRE_AUTO: u32 = CRYPT_ACQUIRE_PREFER_NCRYPT_KEY_FLAG;
pub const ACQUIRE_CNG_ONLY: u32 = CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG;
pub const ACQUIRE_LEGACY: u32 = 0;

/// The certificate's private key; the provider may show PIN or consent UI.
pub fn acquire_key(c: &Cert, flags: u32) -> Result<KeyHandle, Code> {
    let mut h: HCRYPTPROV_OR_NCRYPT_KEY_HANDLE = 0;
    let mut spec: CERT_KEY_SPEC = 0;
    let mut free = 0;
    // SAFETY: out-pointers are valid locals; the handle's ownership follows `free`.
    check(unsafe {
        CryptAcquireCertificatePrivateKey(c.0, flags, null(), &mut h, &mut spec, &mut free)
    })?;
    Ok(if spec == CERT_NCRYPT_KEY_SPEC {
        KeyHandle::NCrypt(h, free != 0)
    } else {
        KeyHandle::Capi(h, spec, free != 0)
    })
}

/// An owned `HCRYPTPROV` from `CryptAcquireContextW`.
#[derive(Debug)]
pub struct Prov(usize);

impl Drop for Prov {
    fn drop(&mut self) {
        // SAFETY: acquired by us, released once.
        unsafe {
            CryptReleaseContext(self.0, 0);
        }
    }
}

impl Prov {
    pub fn raw(&self) -> usize {
        self.0
    }
}

/// The Enhanced RSA and AES provider (PROV_RSA_AES), which does SHA-2 for RSA keys.
pub fn aes_provider_name() -> &'static str {
    "Microsoft Enhanced RSA and AES Cryptographic Provider"
}
pub const PROV_RSA_AES_TYPE: u32 = PROV_RSA_AES;
pub const KEYSPEC_KEYEXCHANGE: u32 = AT_KEYEXCHANGE;
pub const MACHINE_KEYSET: u32 = CRYPT_MACHINE_KEYSET;

/// Opens a key container in a CSP (`flags`: CRYPT_MACHINE_KEYSET, CRYPT_NEWKEYSET…).
pub fn acquire_context(
    container: Option<&str>,
    provider: &str,
    prov_type: u32,
    flags: u32,
) -> Result<Prov, Code> {
    let c = container.map(wide);
    let p = wide(provider);
    let mut h = 0usize;
    // SAFETY: strings are NUL-terminated and live across the call.
    check(unsafe {
        CryptAcquireContextW(
            &mut h,
            c.as_ref().map_or(null(), |c| c.as_ptr()),
            p.as_ptr(),
            prov_type,
            flags,
        )
    })?;
    Ok(Prov(h))
}

/// CryptoAPI hash algorithm ids.
pub fn calg(digest: &str) -> Option<u32> {
    Some(match digest {
        "md5" => 0x8003,
        "sha1" => CALG_SHA1,
        "sha256" => CALG_SHA_256,
        "sha384" => CALG_SHA_384,
        "sha512" => CALG_SHA_512,
        _ => return None,
    })
}

struct Hash(usize);

impl Drop for Hash {
    fn drop(&mut self) {
        // SAFETY: created by CryptCreateHash, destroyed once.
        unsafe {
            CryptDestroyHash(self.0);
        }
    }
}

fn hash_with_value(prov: usize, alg: u32, digest: &[u8]) -> Result<Hash, Code> {
    let mut h = 0usize;
    // SAFETY: `prov` is a live provider handle owned by the caller.
    check(unsafe { CryptCreateHash(prov, alg, 0, 0, &mut h) })?;
    let hash = Hash(h);
    // SAFETY: HP_HASHVAL reads exactly the hash length from `digest`, which the caller sized.
    check(unsafe { CryptSetHashParam(hash.0, HP_HASHVAL, digest.as_ptr(), 0) })?;
    Ok(hash)
}

/// Legacy RSA PKCS#1 v1.5 signature of a precomputed digest; returned big-endian.
pub fn capi_sign(prov: usize, key_spec: u32, alg: u32, digest: &[u8]) -> Result<Vec<u8>, Code> {
    let hash = hash_with_value(prov, alg, digest)?;
    let mut len = 0u32;
    // SAFETY: size query, then a buffer of that size.
    check(unsafe { CryptSignHashW(hash.0, key_spec, null(), 0, null_mut(), &mut len) })?;
    let mut sig = vec![0u8; len as usize];
    // SAFETY: `sig` holds `len` bytes.
    check(unsafe { CryptSignHashW(hash.0, key_spec, null(), 0, sig.as_mut_ptr(), &mut len) })?;
    sig.truncate(len as usize);
    Ok(crate::der::reversed(&sig))
}

struct Key(usize);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: from CryptGetUserKey/CryptImportPublicKeyInfo, destroyed once.
        unsafe {
            CryptDestroyKey(self.0);
        }
    }
}

/// Legacy RSA decryption (PKCS#1 v1.5, or OAEP with SHA-1 when `oaep`); `ct` is big-endian.
pub fn capi_decrypt(prov: usize, key_spec: u32, ct: &[u8], oaep: bool) -> Result<Vec<u8>, Code> {
    let mut k = 0usize;
    // SAFETY: `prov` is a live provider handle.
    check(unsafe { CryptGetUserKey(prov, key_spec, &mut k) })?;
    let key = Key(k);
    let mut buf = crate::der::reversed(ct);
    let mut len = u32::try_from(buf.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    let flags = if oaep { CRYPT_OAEP } else { 0 };
    // SAFETY: decryption happens in place within `buf` (never longer than the input).
    check(unsafe { CryptDecrypt(key.0, 0, 1, flags, buf.as_mut_ptr(), &mut len) })?;
    buf.truncate(len as usize);
    Ok(buf)
}

/// Verifies a (big-endian) RSA PKCS#1 v1.5 signature with the certificate's public key in the
/// AES provider (a test aid: the certificate store itself never needs it).
pub fn capi_verify(c: &Cert, alg: u32, digest: &[u8], sig: &[u8]) -> Result<bool, Code> {
    let prov = acquire_context(None, aes_provider_name(), PROV_RSA_AES, CRYPT_VERIFYCONTEXT)?;
    let mut k = 0usize;
    // SAFETY: the SubjectPublicKeyInfo of a valid context.
    check(unsafe {
        CryptImportPublicKeyInfo(
            prov.0,
            ENC,
            &(*(*c.0).pCertInfo).SubjectPublicKeyInfo,
            &mut k,
        )
    })?;
    let key = Key(k);
    let hash = hash_with_value(prov.0, alg, digest)?;
    let le = crate::der::reversed(sig);
    let len = u32::try_from(le.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    // SAFETY: all handles are live; `le` holds `len` bytes.
    Ok(unsafe { CryptVerifySignatureW(hash.0, le.as_ptr(), len, key.0, null(), 0) } != 0)
}

// ------------------------------------------------------------------------------- CNG

/// CNG hash algorithm names (NUL-terminated UTF-16).
pub fn cng_alg(digest: &str) -> Option<Vec<u16>> {
    Some(wide(match digest {
        "md5" => "MD5",
        "sha1" => "SHA1",
        "sha256" => "SHA256",
        "sha384" => "SHA384",
        "sha512" => "SHA512",
        _ => return None,
    }))
}

fn ncrypt_two_pass(mut f: impl FnMut(*mut u8, u32, &mut u32) -> i32) -> Result<Vec<u8>, Code> {
    let mut len = 0u32;
    check_hr(f(null_mut(), 0, &mut len))?;
    let mut out = vec![0u8; len as usize];
    check_hr(f(out.as_mut_ptr(), len, &mut len))?;
    out.truncate(len as usize);
    Ok(out)
}

/// How an NCrypt signature is padded.
#[derive(Debug, Clone, Copy)]
pub enum CngSignPad {
    Pkcs1,
    Pss {
        salt: u32,
    },
    /// ECDSA: no padding, raw r‖s out.
    None,
}

/// `NCryptSignHash` on a precomputed digest. `alg` from [`cng_alg`].
pub fn ncrypt_sign(
    key: usize,
    pad: CngSignPad,
    alg: &[u16],
    digest: &[u8],
) -> Result<Vec<u8>, Code> {
    let dlen = u32::try_from(digest.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    let pkcs1 = BCRYPT_PKCS1_PADDING_INFO {
        pszAlgId: alg.as_ptr(),
    };
    let pss = BCRYPT_PSS_PADDING_INFO {
        pszAlgId: alg.as_ptr(),
        cbSalt: match pad {
            CngSignPad::Pss { salt } => salt,
            _ => 0,
        },
    };
    let (info, flags): (*const c_void, u32) = match pad {
        CngSignPad::Pkcs1 => (&pkcs1 as *const _ as *const c_void, NCRYPT_PAD_PKCS1_FLAG),
        CngSignPad::Pss { .. } => (&pss as *const _ as *const c_void, NCRYPT_PAD_PSS_FLAG),
        CngSignPad::None => (null(), 0),
    };
    ncrypt_two_pass(|out, cap, len| {
        // SAFETY: `key` is a live NCrypt key; padding info and `alg` outlive the call; `out`
        // is null (size query) or holds `cap` bytes.
        unsafe { NCryptSignHash(key, info, digest.as_ptr(), dlen, out, cap, len, flags) }
    })
}

/// `NCryptDecrypt`: PKCS#1 v1.5 (`oaep` None) or OAEP with this hash and label.
pub fn ncrypt_decrypt(
    key: usize,
    ct: &[u8],
    oaep: Option<(&[u16], &[u8])>,
) -> Result<Vec<u8>, Code> {
    let clen = u32::try_from(ct.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    let mut label = oaep.map(|(_, l)| l.to_vec()).unwrap_or_default();
    let info = BCRYPT_OAEP_PADDING_INFO {
        pszAlgId: oaep.map_or(null(), |(a, _)| a.as_ptr()),
        pbLabel: if label.is_empty() {
            null_mut()
        } else {
            label.as_mut_ptr()
        },
        cbLabel: u32::try_from(label.len()).map_err(|_| NTE_BAD_LEN_CODE)?,
    };
    let (pi, flags): (*const c_void, u32) = match oaep {
        Some(_) => (&info as *const _ as *const c_void, NCRYPT_PAD_OAEP_FLAG),
        None => (null(), NCRYPT_PAD_PKCS1_FLAG),
    };
    ncrypt_two_pass(|out, cap, len| {
        // SAFETY: as in ncrypt_sign; `info`/`label` outlive the call.
        unsafe { NCryptDecrypt(key, ct.as_ptr(), clen, pi, out, cap, len, flags) }
    })
}

struct NObj(usize);

impl Drop for NObj {
    fn drop(&mut self) {
        // SAFETY: an NCrypt object we created, freed once.
        unsafe {
            NCryptFreeObject(self.0);
        }
    }
}

/// ECDH: imports the peer's uncompressed point into the key's own provider, agrees, and
/// returns the raw shared secret Z (big-endian x coordinate).
pub fn ncrypt_ecdh(key: usize, peer_point: &[u8]) -> Result<Vec<u8>, Code> {
    if peer_point.first() != Some(&4) || peer_point.len() % 2 != 1 {
        return Err(NTE_BAD_DATA_CODE);
    }
    let coord = (peer_point.len() - 1) / 2;
    let magic = match coord {
        32 => BCRYPT_ECDH_PUBLIC_P256_MAGIC,
        48 => 0x3348_4345, // ECK3, BCRYPT_ECDH_PUBLIC_P384_MAGIC
        66 => 0x3548_4345, // ECK5, BCRYPT_ECDH_PUBLIC_P521_MAGIC
        _ => BCRYPT_ECDH_PUBLIC_GENERIC_MAGIC,
    };
    let mut blob = Vec::with_capacity(8 + 2 * coord);
    blob.extend_from_slice(&magic.to_le_bytes());
    blob.extend_from_slice(&(coord as u32).to_le_bytes());
    blob.extend_from_slice(&peer_point[1..]);
    let blen = u32::try_from(blob.len()).map_err(|_| NTE_BAD_LEN_CODE)?;
    let mut prov: usize = 0;
    let mut got = 0u32;
    // SAFETY: reads the provider handle property (a pointer-sized value) into `prov`.
    check_hr(unsafe {
        NCryptGetProperty(
            key,
            NCRYPT_PROVIDER_HANDLE_PROPERTY,
            &mut prov as *mut usize as *mut u8,
            std::mem::size_of::<usize>() as u32,
            &mut got,
            0,
        )
    })?;
    let prov = NObj(prov);
    let mut peer: usize = 0;
    // SAFETY: `blob` is a BCRYPT_ECCKEY_BLOB followed by X‖Y, valid for `blen` bytes.
    check_hr(unsafe {
        NCryptImportKey(
            prov.0,
            0,
            BCRYPT_ECCPUBLIC_BLOB,
            null(),
            &mut peer,
            blob.as_ptr(),
            blen,
            0,
        )
    })?;
    let peer = NObj(peer);
    let mut secret: usize = 0;
    // SAFETY: both keys are live; `secret` is freed by NObj.
    check_hr(unsafe { NCryptSecretAgreement(key, peer.0, &mut secret, 0) })?;
    let secret = NObj(secret);
    let z = ncrypt_two_pass(|out, cap, len| {
        // SAFETY: the raw-secret KDF takes no parameters; `out` is null or holds `cap` bytes.
        unsafe { NCryptDeriveKey(secret.0, BCRYPT_KDF_RAW_SECRET, null(), out, cap, len, 0) }
    })?;
    // BCRYPT_KDF_RAW_SECRET returns Z little-endian.
    Ok(crate::der::reversed(&z))
}

const NTE_BAD_DATA_CODE: u32 = 0x8009_0005;

/// `NCRYPT_ALGORITHM_GROUP_PROPERTY` of a key ("RSA", "ECDH", "ECDSA").
pub fn ncrypt_algorithm_group(key: usize) -> Result<String, Code> {
    let mut buf = [0u16; 64];
    let mut len = 0u32;
    // SAFETY: the buffer size in bytes is passed.
    check_hr(unsafe {
        NCryptGetProperty(
            key,
            NCRYPT_ALGORITHM_GROUP_PROPERTY,
            buf.as_mut_ptr() as *mut u8,
            128,
            &mut len,
            0,
        )
    })?;
    Ok(from_wide_buf(&buf[..(len as usize / 2).min(buf.len())]))
}

// ------------------------------------------------------------------------------- misc

/// The Wine version when running under Wine (`ntdll!wine_get_version`), else `None`.
pub fn wine_version() -> Option<String> {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let name = wide("ntdll.dll");
    // SAFETY: ntdll is always loaded; the name is NUL-terminated.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    if ntdll.is_null() {
        return None;
    }
    // SAFETY: looks up an export by a NUL-terminated ASCII name.
    let f = unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr() as *const u8) }?;
    // SAFETY: Wine's wine_get_version is `const char *(void)` returning a static string.
    unsafe {
        let f: extern "C" fn() -> *const std::ffi::c_char = std::mem::transmute(f);
        Some(std::ffi::CStr::from_ptr(f()).to_string_lossy().into_owned())
    }
}

/// PFX import flags: user keyset, never exportable; optionally CNG KSP preferred.
pub fn pfx_flags(prefer_cng: bool) -> u32 {
    CRYPT_USER_KEYSET | if prefer_cng { PKCS12_PREFER_CNG_KSP } else { 0 }
}
