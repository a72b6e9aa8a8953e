//! Algorithm identifiers, independent of any ASN.1 or crypto library.

use serde::Serialize;

/// Message digests smimekit understands. MD5 and SHA-1 exist for verifying old mail only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DigestAlg {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    /// The name used in `micalg` and on the command line (`sha-256` style is MIME's, `sha256` ours).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Md5 => "md5",
            DigestAlg::Sha1 => "sha1",
            DigestAlg::Sha224 => "sha224",
            DigestAlg::Sha256 => "sha256",
            DigestAlg::Sha384 => "sha384",
            DigestAlg::Sha512 => "sha512",
        }
    }

    /// The RFC 5751 `micalg` parameter value.
    pub fn micalg(self) -> &'static str {
        match self {
            DigestAlg::Md5 => "md5",
            DigestAlg::Sha1 => "sha-1",
            DigestAlg::Sha224 => "sha-224",
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha384 => "sha-384",
            DigestAlg::Sha512 => "sha-512",
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            DigestAlg::Md5 => 16,
            DigestAlg::Sha1 => 20,
            DigestAlg::Sha224 => 28,
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha384 => 48,
            DigestAlg::Sha512 => 64,
        }
    }

    /// Parses `sha256`, `sha-256`, `SHA256`… as given on a command line or in `micalg`.
    pub fn from_name(name: &str) -> Option<Self> {
        let n: String = name.chars().filter(|c| *c != '-' && *c != '_').collect();
        Some(match n.to_ascii_lowercase().as_str() {
            "md5" => DigestAlg::Md5,
            "sha1" => DigestAlg::Sha1,
            "sha224" => DigestAlg::Sha224,
            "sha256" => DigestAlg::Sha256,
            "sha384" => DigestAlg::Sha384,
            "sha512" => DigestAlg::Sha512,
            _ => return None,
        })
    }
}

/// How a private key signs a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 over a DigestInfo of this digest.
    RsaPkcs1(DigestAlg),
    /// RSASSA-PSS with MGF1 of the same digest and a salt as long as the digest.
    RsaPss(DigestAlg),
    /// ECDSA; the signature is DER `Ecdsa-Sig-Value`.
    Ecdsa(DigestAlg),
    /// DSA (verification of old mail only); DER `Dss-Sig-Value`.
    Dsa(DigestAlg),
}

impl SignatureScheme {
    pub fn digest(self) -> DigestAlg {
        match self {
            SignatureScheme::RsaPkcs1(d)
            | SignatureScheme::RsaPss(d)
            | SignatureScheme::Ecdsa(d)
            | SignatureScheme::Dsa(d) => d,
        }
    }

    pub fn name(self) -> String {
        match self {
            SignatureScheme::RsaPkcs1(d) => format!("rsa-pkcs1-{}", d.name()),
            SignatureScheme::RsaPss(d) => format!("rsa-pss-{}", d.name()),
            SignatureScheme::Ecdsa(d) => format!("ecdsa-{}", d.name()),
            SignatureScheme::Dsa(d) => format!("dsa-{}", d.name()),
        }
    }
}

/// RSA encryption paddings used for key transport.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RsaPadding {
    Pkcs1v15,
    /// RSAES-OAEP with this hash, MGF1 over `mgf1`, and a label (empty by default).
    Oaep {
        hash: DigestAlg,
        mgf1: DigestAlg,
        label: Vec<u8>,
    },
}

impl RsaPadding {
    pub fn name(&self) -> String {
        match self {
            RsaPadding::Pkcs1v15 => "rsa-pkcs1".into(),
            RsaPadding::Oaep { hash, mgf1, .. } => {
                format!("rsa-oaep-{}-mgf1-{}", hash.name(), mgf1.name())
            }
        }
    }
}

/// Content-encryption algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ContentCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    /// Triple DES (EDE3-CBC); decryption of old mail only.
    DesEde3Cbc,
    /// RC2-CBC with the given effective key bits; decryption of old mail only.
    Rc2Cbc(u16),
    /// Single DES; decryption of old mail only.
    DesCbc,
}

impl ContentCipher {
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc | ContentCipher::Aes128Gcm => 16,
            ContentCipher::Aes192Cbc | ContentCipher::Aes192Gcm => 24,
            ContentCipher::Aes256Cbc | ContentCipher::Aes256Gcm => 32,
            ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Rc2Cbc(bits) => usize::from(bits).div_ceil(8),
            ContentCipher::DesCbc => 8,
        }
    }

    /// IV (CBC) or nonce (GCM) length.
    pub fn iv_len(self) -> usize {
        match self {
            ContentCipher::Aes128Cbc | ContentCipher::Aes192Cbc | ContentCipher::Aes256Cbc => 16,
            ContentCipher::Aes128Gcm | ContentCipher::Aes192Gcm | ContentCipher::Aes256Gcm => 12,
            ContentCipher::DesEde3Cbc | ContentCipher::Rc2Cbc(_) | ContentCipher::DesCbc => 8,
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(
            self,
            ContentCipher::Aes128Gcm | ContentCipher::Aes192Gcm | ContentCipher::Aes256Gcm
        )
    }

    pub fn name(self) -> String {
        match self {
            ContentCipher::Aes128Cbc => "aes-128-cbc".into(),
            ContentCipher::Aes192Cbc => "aes-192-cbc".into(),
            ContentCipher::Aes256Cbc => "aes-256-cbc".into(),
            ContentCipher::Aes128Gcm => "aes-128-gcm".into(),
            ContentCipher::Aes192Gcm => "aes-192-gcm".into(),
            ContentCipher::Aes256Gcm => "aes-256-gcm".into(),
            ContentCipher::DesEde3Cbc => "des-ede3-cbc".into(),
            ContentCipher::Rc2Cbc(bits) => format!("rc2-{bits}-cbc"),
            ContentCipher::DesCbc => "des-cbc".into(),
        }
    }

    /// Parses the names accepted by `smimekit encrypt --cipher`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "aes-128-cbc" | "aes128" => ContentCipher::Aes128Cbc,
            "aes-192-cbc" | "aes192" => ContentCipher::Aes192Cbc,
            "aes-256-cbc" | "aes256" => ContentCipher::Aes256Cbc,
            "aes-128-gcm" => ContentCipher::Aes128Gcm,
            "aes-192-gcm" => ContentCipher::Aes192Gcm,
            "aes-256-gcm" => ContentCipher::Aes256Gcm,
            "des-ede3-cbc" | "3des" => ContentCipher::DesEde3Cbc,
            _ => return None,
        })
    }
}

/// Key agreement for EC recipients: ephemeral-static ECDH with an X9.63 KDF over this digest,
/// wrapping the content-encryption key with AES key wrap of `wrap_key_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct KeyAgreeAlg {
    pub kdf: DigestAlg,
    pub wrap_key_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names_round_trip() {
        for d in [
            DigestAlg::Sha1,
            DigestAlg::Sha256,
            DigestAlg::Sha384,
            DigestAlg::Sha512,
        ] {
            assert_eq!(DigestAlg::from_name(d.name()), Some(d));
            assert_eq!(DigestAlg::from_name(d.micalg()), Some(d));
        }
        assert_eq!(DigestAlg::from_name("whirlpool"), None);
    }

    #[test]
    fn cipher_names_round_trip() {
        for c in ["aes-128-cbc", "aes-192-cbc", "aes-256-cbc", "aes-256-gcm"] {
            assert_eq!(
                ContentCipher::from_name(c).map(|c| c.name()),
                Some(c.to_string())
            );
        }
    }
}
