//! Key store for PKCS#12 and PEM/DER key files.
