//! CryptoEngine implemented on OpenSSL.
