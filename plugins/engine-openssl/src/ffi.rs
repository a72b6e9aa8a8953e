//! The raw OpenSSL calls the safe `openssl` crate does not offer: setting RC2's effective key
//! bits on a cipher context, giving a verification context its set of CRLs, listing the
//! active providers, and PKCS#12's password-based decryption (`PKCS12_pbe_crypt`).
//!
//! Each wrapper takes safe references, so the unsafety is confined to this file. Nothing else
//! in the crate uses `unsafe`.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_long, c_uchar, c_void};

use foreign_types::ForeignTypeRef;
use openssl::cipher_ctx::CipherCtxRef;
use openssl::error::ErrorStack;
use openssl::x509::{X509Crl, X509StoreContextRef};
use zeroize::Zeroizing;

/// `EVP_CTRL_SET_RC2_KEY_BITS` from `<openssl/evp.h>`.
const EVP_CTRL_SET_RC2_KEY_BITS: c_int = 0x3;

unsafe extern "C" {
    /// `void X509_STORE_CTX_set0_crls(X509_STORE_CTX *ctx, STACK_OF(X509_CRL) *sk)`; despite
    /// the name the context only borrows `sk` (it never frees it, not even in cleanup).
    fn X509_STORE_CTX_set0_crls(
        ctx: *mut openssl_sys::X509_STORE_CTX,
        crls: *mut openssl_sys::stack_st_X509_CRL,
    );

    /// `int OSSL_PROVIDER_do_all(OSSL_LIB_CTX *ctx, int (*cb)(OSSL_PROVIDER *, void *),
    /// void *cbdata)`: calls `cb` for each active provider (activating the fallbacks first).
    fn OSSL_PROVIDER_do_all(
        ctx: *mut openssl_sys::OSSL_LIB_CTX,
        cb: unsafe extern "C" fn(*mut openssl_sys::OSSL_PROVIDER, *mut c_void) -> c_int,
        cbdata: *mut c_void,
    ) -> c_int;

    /// `const char *OSSL_PROVIDER_get0_name(const OSSL_PROVIDER *prov)`.
    fn OSSL_PROVIDER_get0_name(prov: *const openssl_sys::OSSL_PROVIDER) -> *const c_char;

    /// `X509_ALGOR *d2i_X509_ALGOR(X509_ALGOR **a, const unsigned char **pp, long length)`.
    fn d2i_X509_ALGOR(
        a: *mut *mut openssl_sys::X509_ALGOR,
        pp: *mut *const c_uchar,
        length: c_long,
    ) -> *mut openssl_sys::X509_ALGOR;

    /// `unsigned char *PKCS12_pbe_crypt(const X509_ALGOR *algor, const char *pass,
    /// int passlen, const unsigned char *in, int inlen, unsigned char **data, int *datalen,
    /// int en_de)`: the password-based en/decryption of PKCS#12 bags and safes (PBES1, PBES2,
    /// the PKCS#12 PBE schemes), output allocated with `OPENSSL_malloc`.
    fn PKCS12_pbe_crypt(
        algor: *const openssl_sys::X509_ALGOR,
        pass: *const c_char,
        passlen: c_int,
        input: *const c_uchar,
        inlen: c_int,
        data: *mut *mut c_uchar,
        datalen: *mut c_int,
        en_de: c_int,
    ) -> *mut c_uchar;

    /// `void CRYPTO_clear_free(void *ptr, size_t num, const char *file, int line)`.
    fn CRYPTO_clear_free(ptr: *mut c_void, num: usize, file: *const c_char, line: c_int);
}

/// Why [`pbe_decrypt`] failed.
pub(crate) enum PbeFailure {
    /// An input longer than OpenSSL's `int`/`long` lengths.
    TooLarge,
    /// OpenSSL's error.
    OpenSsl(ErrorStack),
}

/// Decrypts `data` with the password-based scheme of the DER AlgorithmIdentifier
/// `algorithm`; `password: None` is PKCS#12's absent password (a null pointer), which its
/// PBE schemes tell apart from the empty one.
pub(crate) fn pbe_decrypt(
    algorithm: &[u8],
    password: Option<&[u8]>,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PbeFailure> {
    openssl_sys::init();
    let alg_len = c_long::try_from(algorithm.len()).map_err(|_| PbeFailure::TooLarge)?;
    let in_len = c_int::try_from(data.len()).map_err(|_| PbeFailure::TooLarge)?;
    let (pass_ptr, pass_len) = match password {
        Some(p) => (
            p.as_ptr().cast::<c_char>(),
            c_int::try_from(p.len()).map_err(|_| PbeFailure::TooLarge)?,
        ),
        None => (std::ptr::null(), 0),
    };

    /// Frees the parsed AlgorithmIdentifier however the decryption ends.
    struct Algor(*mut openssl_sys::X509_ALGOR);
    impl Drop for Algor {
        fn drop(&mut self) {
            // SAFETY: the pointer came from d2i_X509_ALGOR (non-null, checked) and is freed
            // once, here.
            unsafe { openssl_sys::X509_ALGOR_free(self.0) }
        }
    }
    let mut p = algorithm.as_ptr();
    // SAFETY: `p` points at `alg_len` readable bytes; d2i only reads them and advances `p`;
    // a null first argument makes it allocate a new object, owned by `Algor` below.
    let algor = unsafe { d2i_X509_ALGOR(std::ptr::null_mut(), &mut p, alg_len) };
    if algor.is_null() {
        return Err(PbeFailure::OpenSsl(ErrorStack::get()));
    }
    let algor = Algor(algor);

    let mut out: *mut c_uchar = std::ptr::null_mut();
    let mut out_len: c_int = 0;
    // SAFETY: `algor.0` is a valid X509_ALGOR; the password pointer is null (with length 0)
    // or points at `pass_len` readable bytes (PKCS12_pbe_crypt takes an explicit length, no
    // terminator); `data` has `in_len` readable bytes; `out`/`out_len` receive a buffer that
    // OpenSSL allocated, freed below.
    let r = unsafe {
        PKCS12_pbe_crypt(
            algor.0,
            pass_ptr,
            pass_len,
            data.as_ptr(),
            in_len,
            &mut out,
            &mut out_len,
            0,
        )
    };
    if r.is_null() || out.is_null() {
        return Err(PbeFailure::OpenSsl(ErrorStack::get()));
    }
    let len = usize::try_from(out_len).unwrap_or(0);
    // SAFETY: on success `out` holds `out_len` initialised bytes.
    let plain = Zeroizing::new(unsafe { std::slice::from_raw_parts(out, len) }.to_vec());
    // SAFETY: `out` was allocated by OPENSSL_malloc for at least `len` bytes; it is cleansed
    // and freed once, here, and not used afterwards.
    unsafe { CRYPTO_clear_free(out.cast::<c_void>(), len, c"ffi.rs".as_ptr(), 0) };
    Ok(plain)
}

/// The names of the active providers of the default library context, one entry per provider
/// instance (a provider loaded twice is listed twice).
pub(crate) fn active_providers() -> Vec<String> {
    unsafe extern "C" fn collect(
        prov: *mut openssl_sys::OSSL_PROVIDER,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut Vec<String>` passed below, alive for the whole
        // OSSL_PROVIDER_do_all call; `prov` is a valid provider for the callback's duration and
        // its name a NUL-terminated string owned by it (or null).
        unsafe {
            let names = &mut *data.cast::<Vec<String>>();
            let name = OSSL_PROVIDER_get0_name(prov);
            if !name.is_null() {
                names.push(CStr::from_ptr(name).to_string_lossy().into_owned());
            }
        }
        1
    }
    let mut names: Vec<String> = Vec::new();
    // SAFETY: a null context is the default library context; the callback only writes to
    // `names`, which outlives the call.
    unsafe {
        OSSL_PROVIDER_do_all(
            std::ptr::null_mut(),
            collect,
            (&raw mut names).cast::<c_void>(),
        );
    }
    names
}

/// Sets RC2's effective key bits on a context initialised with an RC2 cipher (before the key).
pub(crate) fn set_rc2_key_bits(ctx: &mut CipherCtxRef, bits: u16) -> Result<(), ErrorStack> {
    // SAFETY: `ctx.as_ptr()` is a valid EVP_CIPHER_CTX for the duration of the borrow; this
    // control reads only the integer `arg` and ignores the (null) pointer argument.
    let r = unsafe {
        openssl_sys::EVP_CIPHER_CTX_ctrl(
            ctx.as_ptr(),
            EVP_CTRL_SET_RC2_KEY_BITS,
            c_int::from(bits),
            std::ptr::null_mut(),
        )
    };
    if r > 0 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Runs `f` on an initialised verification context whose CRL set is `crls`
/// (`X509_STORE_CTX_set0_crls`), as `openssl verify -CRLfile` and `openssl cms -verify` do.
///
/// OpenSSL searches this set by CRL (scoring every CRL against the certificate, including
/// indirect CRLs named by a `cRLIssuer`), and passes it on to the context that validates a CRL
/// issuer's own path; CRLs in the X509_STORE are only looked up by the certificate's issuer
/// name, so an indirect CRL there is never found.
pub(crate) fn with_ctx_crls<R>(
    ctx: &mut X509StoreContextRef,
    crls: &[X509Crl],
    f: impl FnOnce(&mut X509StoreContextRef) -> R,
) -> Result<R, ErrorStack> {
    /// Frees the stack (not its elements, which `crls` owns) however `f` ends.
    struct Borrowed(*mut openssl_sys::OPENSSL_STACK);
    impl Drop for Borrowed {
        fn drop(&mut self) {
            // SAFETY: the pointer came from OPENSSL_sk_new_null and is freed once, here;
            // OPENSSL_sk_free releases only the stack, not the CRLs it points to.
            unsafe { openssl_sys::OPENSSL_sk_free(self.0) }
        }
    }
    // SAFETY: creates an empty, owned stack (checked for null below).
    let stack = Borrowed(unsafe { openssl_sys::OPENSSL_sk_new_null() });
    if stack.0.is_null() {
        return Err(ErrorStack::get());
    }
    for crl in crls {
        // SAFETY: `stack.0` is a valid stack; the CRL pointer stays valid while `crls` is
        // borrowed, which outlives every use of the stack (it is detached before returning).
        if unsafe { openssl_sys::OPENSSL_sk_push(stack.0, crl.as_ptr().cast()) } <= 0 {
            return Err(ErrorStack::get());
        }
    }
    // SAFETY: `ctx` is a valid, initialised context for the borrow; it only reads the stack
    // during verification, and the stack is detached again before it is freed.
    unsafe { X509_STORE_CTX_set0_crls(ctx.as_ptr(), stack.0.cast()) };
    let result = f(ctx);
    // SAFETY: as above; a null stack means "no CRLs".
    unsafe { X509_STORE_CTX_set0_crls(ctx.as_ptr(), std::ptr::null_mut()) };
    Ok(result)
}
