//! Object identifiers used in S/MIME, and their mapping to `smimekit-core` algorithms.

use const_oid::ObjectIdentifier as Oid;
use smimekit_core::{ContentCipher, DigestAlg};

macro_rules! oids {
    ($($name:ident = $s:literal;)*) => {
        $(pub const $name: Oid = Oid::new_unwrap($s);)*
    };
}

oids! {
    // Content types.
    ID_DATA = "1.2.840.113549.1.7.1";
    ID_SIGNED_DATA = "1.2.840.113549.1.7.2";
    ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3";
    ID_DIGESTED_DATA = "1.2.840.113549.1.7.5";
    ID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6";
    ID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23";
    ID_COMPRESSED_DATA = "1.2.840.113549.1.9.16.1.9";
    // Attributes.
    ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3";
    ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
    ATTR_SIGNING_TIME = "1.2.840.113549.1.9.5";
    ATTR_SMIME_CAPABILITIES = "1.2.840.113549.1.9.15";
    // Digests.
    MD5 = "1.2.840.113549.2.5";
    SHA1 = "1.3.14.3.2.26";
    SHA224 = "2.16.840.1.101.3.4.2.4";
    SHA256 = "2.16.840.1.101.3.4.2.1";
    SHA384 = "2.16.840.1.101.3.4.2.2";
    SHA512 = "2.16.840.1.101.3.4.2.3";
    // Signatures and public keys.
    RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
    MD5_WITH_RSA = "1.2.840.113549.1.1.4";
    SHA1_WITH_RSA = "1.2.840.113549.1.1.5";
    RSAES_OAEP = "1.2.840.113549.1.1.7";
    MGF1 = "1.2.840.113549.1.1.8";
    P_SPECIFIED = "1.2.840.113549.1.1.9";
    RSASSA_PSS = "1.2.840.113549.1.1.10";
    SHA256_WITH_RSA = "1.2.840.113549.1.1.11";
    SHA384_WITH_RSA = "1.2.840.113549.1.1.12";
    SHA512_WITH_RSA = "1.2.840.113549.1.1.13";
    SHA224_WITH_RSA = "1.2.840.113549.1.1.14";
    EC_PUBLIC_KEY = "1.2.840.10045.2.1";
    ECDSA_WITH_SHA1 = "1.2.840.10045.4.1";
    ECDSA_WITH_SHA224 = "1.2.840.10045.4.3.1";
    ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
    ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3";
    ECDSA_WITH_SHA512 = "1.2.840.10045.4.3.4";
    DSA = "1.2.840.10040.4.1";
    DSA_WITH_SHA1 = "1.2.840.10040.4.3";
    DSA_WITH_SHA224 = "2.16.840.1.101.3.4.3.1";
    DSA_WITH_SHA256 = "2.16.840.1.101.3.4.3.2";
    // Content encryption.
    AES128_CBC = "2.16.840.1.101.3.4.1.2";
    AES192_CBC = "2.16.840.1.101.3.4.1.22";
    AES256_CBC = "2.16.840.1.101.3.4.1.42";
    AES128_GCM = "2.16.840.1.101.3.4.1.6";
    AES192_GCM = "2.16.840.1.101.3.4.1.26";
    AES256_GCM = "2.16.840.1.101.3.4.1.46";
    AES128_WRAP = "2.16.840.1.101.3.4.1.5";
    AES192_WRAP = "2.16.840.1.101.3.4.1.25";
    AES256_WRAP = "2.16.840.1.101.3.4.1.45";
    DES_EDE3_CBC = "1.2.840.113549.3.7";
    CMS3DES_WRAP = "1.2.840.113549.1.9.16.3.6";
    RC2_CBC = "1.2.840.113549.3.2";
    DES_CBC = "1.3.14.3.2.7";
    // ECDH key agreement (RFC 5753 / SEC 1).
    DH_SHA1KDF = "1.3.133.16.840.63.0.2";
    DH_SHA224KDF = "1.3.132.1.11.0";
    DH_SHA256KDF = "1.3.132.1.11.1";
    DH_SHA384KDF = "1.3.132.1.11.2";
    DH_SHA512KDF = "1.3.132.1.11.3";
    // Certificate extensions.
    EKU_EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4";
    EKU_ANY = "2.5.29.37.0";
}

/// Parses the OID in a TLV's content.
pub fn parse(content: &[u8]) -> Option<Oid> {
    Oid::from_bytes(content).ok()
}

/// The encoded `OBJECT IDENTIFIER` element.
pub fn encode(oid: &Oid) -> Vec<u8> {
    crate::asn1::encode(crate::asn1::TAG_OID, oid.as_bytes())
}

pub fn digest_from_oid(oid: &Oid) -> Option<DigestAlg> {
    Some(match *oid {
        MD5 => DigestAlg::Md5,
        SHA1 => DigestAlg::Sha1,
        SHA224 => DigestAlg::Sha224,
        SHA256 => DigestAlg::Sha256,
        SHA384 => DigestAlg::Sha384,
        SHA512 => DigestAlg::Sha512,
        _ => return None,
    })
}

pub fn digest_oid(alg: DigestAlg) -> Oid {
    match alg {
        DigestAlg::Md5 => MD5,
        DigestAlg::Sha1 => SHA1,
        DigestAlg::Sha224 => SHA224,
        DigestAlg::Sha256 => SHA256,
        DigestAlg::Sha384 => SHA384,
        DigestAlg::Sha512 => SHA512,
        // `DigestAlg` is non-exhaustive: a digest added later defaults to SHA-256 until mapped.
        _ => SHA256,
    }
}

pub fn cipher_oid(c: ContentCipher) -> Option<Oid> {
    Some(match c {
        ContentCipher::Aes128Cbc => AES128_CBC,
        ContentCipher::Aes192Cbc => AES192_CBC,
        ContentCipher::Aes256Cbc => AES256_CBC,
        ContentCipher::Aes128Gcm => AES128_GCM,
        ContentCipher::Aes192Gcm => AES192_GCM,
        ContentCipher::Aes256Gcm => AES256_GCM,
        ContentCipher::DesEde3Cbc => DES_EDE3_CBC,
        ContentCipher::DesCbc => DES_CBC,
        ContentCipher::Rc2Cbc(_) => RC2_CBC,
        _ => return None,
    })
}

/// The digest a signature algorithm OID implies, if it names one.
pub fn signature_digest(oid: &Oid) -> Option<DigestAlg> {
    Some(match *oid {
        MD5_WITH_RSA => DigestAlg::Md5,
        SHA1_WITH_RSA | ECDSA_WITH_SHA1 | DSA_WITH_SHA1 => DigestAlg::Sha1,
        SHA224_WITH_RSA | ECDSA_WITH_SHA224 | DSA_WITH_SHA224 => DigestAlg::Sha224,
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 | DSA_WITH_SHA256 => DigestAlg::Sha256,
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => DigestAlg::Sha384,
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => DigestAlg::Sha512,
        _ => return None,
    })
}

/// A readable name for an OID we know, else its dotted form.
pub fn name(oid: &Oid) -> String {
    let known = match *oid {
        ID_DATA => "data",
        ID_SIGNED_DATA => "signedData",
        ID_ENVELOPED_DATA => "envelopedData",
        ID_AUTH_ENVELOPED_DATA => "authEnvelopedData",
        ID_DIGESTED_DATA => "digestedData",
        ID_ENCRYPTED_DATA => "encryptedData",
        ID_COMPRESSED_DATA => "compressedData",
        RSA_ENCRYPTION => "rsaEncryption",
        RSAES_OAEP => "rsaes-oaep",
        RSASSA_PSS => "rsassa-pss",
        EC_PUBLIC_KEY => "id-ecPublicKey",
        DSA => "dsa",
        DH_SHA1KDF => "dhSinglePass-stdDH-sha1kdf",
        DH_SHA224KDF => "dhSinglePass-stdDH-sha224kdf",
        DH_SHA256KDF => "dhSinglePass-stdDH-sha256kdf",
        DH_SHA384KDF => "dhSinglePass-stdDH-sha384kdf",
        DH_SHA512KDF => "dhSinglePass-stdDH-sha512kdf",
        RC2_CBC => "rc2-cbc",
        DES_EDE3_CBC => "des-ede3-cbc",
        DES_CBC => "des-cbc",
        AES128_CBC => "aes-128-cbc",
        AES192_CBC => "aes-192-cbc",
        AES256_CBC => "aes-256-cbc",
        AES128_GCM => "aes-128-gcm",
        AES192_GCM => "aes-192-gcm",
        AES256_GCM => "aes-256-gcm",
        _ => {
            if let Some(d) = digest_from_oid(oid) {
                return d.name().to_string();
            }
            return oid.to_string();
        }
    };
    known.to_string()
}
