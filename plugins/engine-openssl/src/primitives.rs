//! Digests (MD5, SHA-1, SHA-2) over a list of slices, and randomness from OpenSSL's DRBG.
//!
//! No keyed primitives (HMAC, KDF) live here; the X9.63 KDF is in the key-transport module.

use openssl::hash::Hasher;
use smimekit_core::{DigestAlg, EngineError, Primitives};

use crate::{message_digest, unsupported};

/// [`Primitives`] on OpenSSL.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsslPrimitives;

impl Primitives for OsslPrimitives {
    fn digest(&self, alg: DigestAlg, data: &[&[u8]]) -> Result<Vec<u8>, EngineError> {
        let mut h = Hasher::new(message_digest(alg)?).map_err(unsupported("digest"))?;
        for part in data {
            h.update(part).map_err(unsupported("digest"))?;
        }
        Ok(h.finish().map_err(unsupported("digest"))?.to_vec())
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), EngineError> {
        // rand_bytes takes a C int length; fill large buffers piecewise.
        for chunk in buf.chunks_mut(1 << 20) {
            openssl::rand::rand_bytes(chunk).map_err(unsupported("random"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_digest(alg: DigestAlg, parts: &[&[u8]]) -> String {
        hex::encode(OsslPrimitives.digest(alg, parts).unwrap())
    }

    #[test]
    fn known_vectors() {
        assert_eq!(
            hex_digest(DigestAlg::Md5, &[b"abc"]),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha1, &[b"abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha224, &[b"abc"]),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha256, &[b"a", b"", b"bc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha384, &[b"abc"]),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha512, &[b"ab", b"c"]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(
            hex_digest(DigestAlg::Sha256, &[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsslPrimitives.fill_random(&mut a).unwrap();
        OsslPrimitives.fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        OsslPrimitives.fill_random(&mut []).unwrap();
    }
}
