//! The two raw OpenSSL calls the safe `openssl` crate does not offer: setting RC2's effective
//! key bits on a cipher context, and adding a CRL to an X509_STORE.
//!
//! Each wrapper takes safe references, so the unsafety is confined to this file. Nothing else
//! in the crate uses `unsafe`.
#![allow(unsafe_code)]

use std::ffi::c_int;

use foreign_types::ForeignTypeRef;
use openssl::cipher_ctx::CipherCtxRef;
use openssl::error::ErrorStack;
use openssl::x509::X509CrlRef;
use openssl::x509::store::X509StoreBuilderRef;

/// `EVP_CTRL_SET_RC2_KEY_BITS` from `<openssl/evp.h>`.
const EVP_CTRL_SET_RC2_KEY_BITS: c_int = 0x3;

unsafe extern "C" {
    /// `int X509_STORE_add_crl(X509_STORE *xs, X509_CRL *x)`; takes its own reference on `x`.
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> c_int;
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

/// Adds a CRL to a store being built; the store keeps its own reference.
pub(crate) fn store_add_crl(
    store: &mut X509StoreBuilderRef,
    crl: &X509CrlRef,
) -> Result<(), ErrorStack> {
    // SAFETY: both pointers are valid for the call (borrowed wrappers); X509_STORE_add_crl
    // increments the CRL's reference count rather than taking ownership of ours, and does not
    // retain the store pointer anywhere.
    let r = unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) };
    if r > 0 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
