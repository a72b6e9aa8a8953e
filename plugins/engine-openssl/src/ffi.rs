//! The two raw OpenSSL calls the safe `openssl` crate does not offer: setting RC2's effective
//! key bits on a cipher context, and giving a verification context its set of CRLs.
//!
//! Each wrapper takes safe references, so the unsafety is confined to this file. Nothing else
//! in the crate uses `unsafe`.
#![allow(unsafe_code)]

use std::ffi::c_int;

use foreign_types::ForeignTypeRef;
use openssl::cipher_ctx::CipherCtxRef;
use openssl::error::ErrorStack;
use openssl::x509::{X509Crl, X509StoreContextRef};

/// `EVP_CTRL_SET_RC2_KEY_BITS` from `<openssl/evp.h>`.
const EVP_CTRL_SET_RC2_KEY_BITS: c_int = 0x3;

unsafe extern "C" {
    /// `void X509_STORE_CTX_set0_crls(X509_STORE_CTX *ctx, STACK_OF(X509_CRL) *sk)`; despite
    /// the name the context only borrows `sk` (it never frees it, not even in cleanup).
    fn X509_STORE_CTX_set0_crls(
        ctx: *mut openssl_sys::X509_STORE_CTX,
        crls: *mut openssl_sys::stack_st_X509_CRL,
    );
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
