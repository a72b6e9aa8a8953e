//! PKCS#12 files, read in one pass: the structure is walked here (every key, certificate and
//! friendly name, in file order), the MAC is checked here, and OpenSSL decrypts each encrypted
//! safe and shrouded key bag (`PKCS12_pbe_crypt`, what its own `PKCS12_parse` uses, through
//! `smimekit_engine_openssl::pbe_decrypt`). Each password-based key is derived once per open:
//! the MAC key here (RFC 9579 PBMAC1, which OpenSSL 3.0 cannot verify, with OpenSSL's PBKDF2;
//! the classic RFC 7292 MAC with the appendix B derivation over OpenSSL's SHA functions), each
//! bag's key by OpenSSL as it decrypts that bag. Nothing here decrypts a bag by hand.
//!
//! OpenSSL's legacy provider is loaded only when the file uses a legacy cipher (RC2, RC4,
//! single DES…): every active provider slows every later algorithm lookup.

use std::borrow::Cow;
use std::cell::Cell;

use openssl::asn1::Asn1Object;
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;
use smimekit_core::{EngineError, KeyStoreError, Secret};
use smimekit_pki::asn1::{
    Asn1Error, Reader, TAG_BMP_STRING, TAG_INTEGER, TAG_OID, TAG_SEQUENCE, TAG_SET,
    TAG_UTF8_STRING, Tlv,
};
use smimekit_pki::{LIMITS, LimitExceeded};
use zeroize::Zeroizing;

use crate::bundle::{Bundle, RawCert, RawKey, assemble};
use crate::pem;

const TAG_CONTEXT_0: u8 = 0xa0;

// OID contents octets.
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const OID_CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
/// x509Certificate (1.2.840.113549.1.9.22.1), the certificate type of a CertBag.
const OID_X509_CERTIFICATE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const OID_SAFE_CONTENTS_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x06,
];
const OID_FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
const OID_PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
/// pbeWithSHAAnd3-KeyTripleDES-CBC (1.2.840.113549.1.12.1.3).
const OID_PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
/// des-ede3-cbc (1.2.840.113549.3.7).
const OID_DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];
/// aes{128,192,256}-cbc are 2.16.840.1.101.3.4.1.{2,22,42}.
const OID_AES_PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01];
/// sha224 … sha512 are 2.16.840.1.101.3.4.2.{4,1,2,3}.
const OID_SHA2_PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
/// hmacWithSHA1 … hmacWithSHA512 are 1.2.840.113549.2.{7,8,9,10,11}.
const OID_HMAC_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02];

/// Whether `data` is a PKCS#12 file by content: PEM `PKCS12` armour, or a DER/BER SEQUENCE
/// whose first element is INTEGER 3.
pub(crate) fn looks_like_p12(data: &[u8]) -> bool {
    if pem::is_pem(data) {
        return std::str::from_utf8(data)
            .map(|t| pem::blocks(t).iter().any(|b| b.label == "PKCS12"))
            .unwrap_or(false);
    }
    let Ok(seq) = first(data) else {
        return false;
    };
    seq.tag == TAG_SEQUENCE
        && first(seq.content)
            .map(|v| v.tag == TAG_INTEGER && v.content == [3])
            .unwrap_or(false)
}

/// A structural error as shown in messages.
fn why(e: Asn1Error) -> String {
    match e {
        Asn1Error::Truncated { .. } => "truncated element".into(),
        Asn1Error::TooDeep => "nesting too deep".into(),
        Asn1Error::Invalid { detail, .. } => detail,
        other => other.to_string(),
    }
}

/// The first element of `data`; trailing bytes are ignored.
pub(crate) fn first(data: &[u8]) -> Result<Tlv<'_>, String> {
    Reader::new(data)
        .next()
        .map_err(why)?
        .ok_or_else(|| "truncated element".into())
}

/// The children of a constructed element. No PKCS#12 structure has more than
/// `LIMITS.pkcs12_bags` of them (the bag lists, the longest, are held to it), so more is refused
/// before they are collected: a million tiny elements would otherwise cost hundreds of MiB.
pub(crate) fn kids<'a>(t: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, String> {
    if !t.is_constructed() {
        return Err(format!("tag {:#04x} is not constructed", t.tag));
    }
    let mut out = Vec::new();
    let mut r = t.children();
    while let Some(kid) = r.next().map_err(why)? {
        LimitExceeded::check(
            "elements in one structure",
            out.len() + 1,
            LIMITS.pkcs12_bags,
        )
        .map_err(|e| e.to_string())?;
        out.push(kid);
    }
    Ok(out)
}

/// The bytes of an OCTET STRING, primitive or (BER) constructed.
fn octets<'a>(t: &Tlv<'a>) -> Result<Cow<'a, [u8]>, String> {
    t.octet_string().map_err(why)
}

/// A non-negative INTEGER that fits in a u64.
fn uint(t: &Tlv<'_>) -> Result<u64, String> {
    if t.tag != TAG_INTEGER {
        return Err(format!("expected INTEGER, found tag {:#04x}", t.tag));
    }
    t.small_uint().map_err(why)
}

/// An element's tag must be `tag`.
fn expect<'a>(t: &Tlv<'a>, tag: u8, what: &'static str) -> Result<Tlv<'a>, String> {
    t.expect(tag, what).map_err(why)
}

/// The first of `list` (`empty` if there is none), which must carry `tag`.
fn first_of<'a>(
    list: &[Tlv<'a>],
    empty: &str,
    tag: u8,
    what: &'static str,
) -> Result<Tlv<'a>, String> {
    expect(list.first().ok_or(empty)?, tag, what)
}

/// Decodes a BMPString (UTF-16BE) or UTF8String attribute value; trailing NULs (which
/// some writers include) are dropped.
fn text(t: &Tlv<'_>) -> Option<String> {
    let s = match t.tag {
        TAG_BMP_STRING => {
            if !t.content.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = t
                .content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        TAG_UTF8_STRING => String::from_utf8(t.content.to_vec()).ok(),
        _ => None,
    }?;
    Some(s.trim_end_matches('\0').to_string())
}

/// The DER of a PKCS#12 file, PEM armour removed.
fn unarmour<'a>(id: &str, data: &'a [u8]) -> Result<Cow<'a, [u8]>, KeyStoreError> {
    if !pem::is_pem(data) {
        return Ok(Cow::Borrowed(data));
    }
    let text = std::str::from_utf8(data).map_err(|_| malformed(id, "PEM file is not text"))?;
    let blocks = pem::blocks(text);
    let block = blocks
        .iter()
        .find(|b| b.label == "PKCS12")
        .ok_or_else(|| malformed(id, "no -----BEGIN PKCS12----- block"))?;
    let der = block.decode().map_err(|e| malformed(id, &e))?;
    Ok(Cow::Owned(der))
}

fn malformed(id: &str, detail: &str) -> KeyStoreError {
    KeyStoreError::Malformed {
        key: id.to_string(),
        detail: detail.to_string(),
    }
}

/// `Locked` when no password was given (so the caller asks for one), `BadSecret` otherwise.
fn needs_password(id: &str, given: bool) -> KeyStoreError {
    if given {
        KeyStoreError::BadSecret {
            key: id.to_string(),
            tries_left: None,
        }
    } else {
        KeyStoreError::Locked {
            key: id.to_string(),
            hint: "PKCS#12 password".into(),
        }
    }
}

/// The reasons in an OpenSSL error stack, for messages.
pub(crate) fn describe(e: &ErrorStack) -> String {
    let parts: Vec<String> = e
        .errors()
        .iter()
        .map(|e| match (e.library(), e.reason()) {
            (Some(lib), Some(r)) => format!("{lib}: {r}"),
            (None, Some(r)) => r.to_string(),
            _ => format!("error {:#x}", e.code()),
        })
        .collect();
    if parts.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        parts.join("; ")
    }
}

/// The parts of a PFX this module looks at.
struct Pfx<'a> {
    /// The authSafe's `data` content: what the MAC covers.
    auth_safe_data: Cow<'a, [u8]>,
    mac_data: Option<Tlv<'a>>,
}

fn parse_pfx(der_bytes: &[u8]) -> Result<Pfx<'_>, String> {
    // Trailing bytes are ignored, as OpenSSL's d2i_PKCS12 does.
    let pfx = first(der_bytes)?;
    let pfx_kids = kids(&expect(&pfx, TAG_SEQUENCE, "PFX")?)?;
    let [version, auth_safe, rest @ ..] = pfx_kids.as_slice() else {
        return Err("PFX has too few elements".into());
    };
    if uint(version)? != 3 {
        return Err(format!("PFX version {} (expected 3)", uint(version)?));
    }
    let ci = kids(&expect(auth_safe, TAG_SEQUENCE, "authSafe")?)?;
    let [ctype, content, ..] = ci.as_slice() else {
        return Err("authSafe ContentInfo has no content".into());
    };
    if expect(ctype, TAG_OID, "authSafe contentType")?.content != OID_DATA {
        return Err(
            "authSafe is not of type data (public-key integrity mode is not supported)".into(),
        );
    }
    let inner = kids(&expect(content, TAG_CONTEXT_0, "authSafe content")?)?;
    let octets = octets(inner.first().ok_or("empty authSafe content")?)?;
    Ok(Pfx {
        auth_safe_data: octets,
        mac_data: rest.first().copied(),
    })
}

/// The integrity scheme of a PFX.
enum Mac<'a> {
    /// RFC 9579 PBMAC1.
    Pbmac1(Pbmac1<'a>),
    /// The RFC 7292 MAC.
    Classic(ClassicMac<'a>),
}

/// PBMAC1 parameters.
struct Pbmac1<'a> {
    salt: Cow<'a, [u8]>,
    iterations: usize,
    key_len: Option<usize>,
    prf: MessageDigest,
    mac: MessageDigest,
    expected: Cow<'a, [u8]>,
}

/// RFC 7292 MacData: HMAC with a key from the appendix B derivation (ID 3).
struct ClassicMac<'a> {
    md: Md,
    salt: Cow<'a, [u8]>,
    iterations: usize,
    expected: Cow<'a, [u8]>,
}

/// The key derivations of one reading of a file, against [`LIMITS`]: each at most
/// `pkcs12_iterations`, all together at most `pkcs12_total_iterations`, so a hostile file
/// costs bounded work before any derivation starts.
pub(crate) struct Budget {
    spent: Cell<u64>,
    /// Iterations of one derivation.
    each: u64,
    /// Iterations of all derivations of the file.
    total: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(LIMITS.pkcs12_iterations, LIMITS.pkcs12_total_iterations)
    }
}

impl Budget {
    /// A budget with other caps than [`LIMITS`]' (the fuzz target's smaller ones: at the
    /// product's caps one mutated iteration count costs a second).
    pub(crate) fn new(each: u64, total: u64) -> Self {
        Budget {
            spent: Cell::new(0),
            each,
            total,
        }
    }

    /// Books a derivation of `iterations` (`what` names it in errors), or refuses it.
    fn spend(&self, what: &str, iterations: u64) -> Result<(), String> {
        if iterations > self.each {
            return Err(format!(
                "{what}: {iterations} iterations, more than the {} allowed for one key derivation (a limit on input)",
                self.each
            ));
        }
        let total = self.spent.get().saturating_add(iterations);
        if total > self.total {
            return Err(format!(
                "{what}: more than {} iterations of key derivation in one file (a limit on input)",
                self.total
            ));
        }
        self.spent.set(total);
        Ok(())
    }
}

/// The iteration count of a password-based encryption AlgorithmIdentifier: PBES2 with PBKDF2,
/// or the PKCS#12 and PBES1 schemes (`{ salt, iterations }`). Other key derivations (scrypt)
/// count as one: OpenSSL bounds their memory itself.
fn pbe_iterations(alg: &Tlv<'_>) -> Result<u64, String> {
    let parts = kids(alg)?;
    let oid = first_of(&parts, "empty AlgorithmIdentifier", TAG_OID, "algorithm")?;
    let params = parts.get(1).ok_or("PBE algorithm without parameters")?;
    let params = kids(params)?;
    if oid.content == OID_PBES2 {
        let kdf = kids(params.first().ok_or("PBES2 without keyDerivationFunc")?)?;
        if kdf.first().map(|o| o.content) != Some(OID_PBKDF2) {
            return Ok(1);
        }
        let p = kids(kdf.get(1).ok_or("PBKDF2 without parameters")?)?;
        return uint(p.get(1).ok_or("PBKDF2 without iteration count")?);
    }
    uint(
        params
            .get(1)
            .ok_or("PBE parameters without iteration count")?,
    )
}

fn hmac_digest(alg_id: &Tlv<'_>) -> Result<MessageDigest, String> {
    let alg_kids = kids(&expect(alg_id, TAG_SEQUENCE, "AlgorithmIdentifier")?)?;
    let oid = first_of(&alg_kids, "empty AlgorithmIdentifier", TAG_OID, "algorithm")?;
    match oid.content.strip_prefix(OID_HMAC_PREFIX) {
        Some([7]) => Ok(MessageDigest::sha1()),
        Some([8]) => Ok(MessageDigest::sha224()),
        Some([9]) => Ok(MessageDigest::sha256()),
        Some([10]) => Ok(MessageDigest::sha384()),
        Some([11]) => Ok(MessageDigest::sha512()),
        _ => Err("unsupported PBMAC1 HMAC algorithm".into()),
    }
}

fn mac_params<'a>(mac_data: &Tlv<'a>) -> Result<Mac<'a>, String> {
    // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
    let mac_kids = kids(&expect(mac_data, TAG_SEQUENCE, "MacData")?)?;
    let digest_info = first_of(&mac_kids, "empty MacData", TAG_SEQUENCE, "DigestInfo")?;
    let di = kids(&digest_info)?;
    let [alg, digest, ..] = di.as_slice() else {
        return Err("short DigestInfo".into());
    };
    let alg_kids = kids(&expect(alg, TAG_SEQUENCE, "MAC algorithm")?)?;
    let oid = first_of(&alg_kids, "empty MAC algorithm", TAG_OID, "MAC OID")?;
    if oid.content != OID_PBMAC1 {
        let md = Md::from_oid(oid.content).ok_or_else(|| {
            format!(
                "unsupported MAC digest {}",
                smimekit_pki::certinfo::oid_to_string(oid.content)
            )
        })?;
        let salt = octets(mac_kids.get(1).ok_or("MacData without macSalt")?)?;
        // OpenSSL reads a missing, zero or negative count as 1 (its loop runs once).
        let iterations = match mac_kids.get(2) {
            None => 1,
            Some(t) if t.content.first().is_some_and(|b| b & 0x80 != 0) => 1,
            Some(t) => uint(t)?.max(1),
        };
        return Ok(Mac::Classic(ClassicMac {
            md,
            salt,
            iterations: usize::try_from(iterations).map_err(|_| "value too large")?,
            expected: octets(digest)?,
        }));
    }
    // PBMAC1-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, messageAuthScheme AlgorithmIdentifier }
    let params = kids(alg_kids.get(1).ok_or("PBMAC1 without parameters")?)?;
    let [kdf, scheme, ..] = params.as_slice() else {
        return Err("short PBMAC1 parameters".into());
    };
    let kdf_kids = kids(&expect(kdf, TAG_SEQUENCE, "PBMAC1 KDF")?)?;
    if kdf_kids.first().map(|o| o.content) != Some(OID_PBKDF2) {
        return Err("PBMAC1 key derivation is not PBKDF2".into());
    }
    // PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER,
    //                              keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier DEFAULT hmacWithSHA1 }
    let p = kids(kdf_kids.get(1).ok_or("PBKDF2 without parameters")?)?;
    let salt = octets(p.first().ok_or("PBKDF2 without salt")?)?;
    let iterations = uint(p.get(1).ok_or("PBKDF2 without iteration count")?)?;
    let mut key_len = None;
    let mut prf = MessageDigest::sha1();
    for extra in &p[2..] {
        match extra.tag {
            TAG_INTEGER => key_len = Some(uint(extra)?),
            TAG_SEQUENCE => prf = hmac_digest(extra)?,
            _ => return Err("unexpected element in PBKDF2 parameters".into()),
        }
    }
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| "value too large".to_string());
    Ok(Mac::Pbmac1(Pbmac1 {
        salt,
        iterations: to_usize(iterations)?,
        key_len: key_len.map(to_usize).transpose()?,
        prf,
        mac: hmac_digest(scheme)?,
        expected: octets(digest)?,
    }))
}

/// HMAC of `data` under `key`, compared in constant time with `expected`.
fn hmac_matches(
    md: MessageDigest,
    key: &[u8],
    data: &[u8],
    expected: &[u8],
) -> Result<bool, String> {
    let hkey = PKey::hmac(key).map_err(|e| describe(&e))?;
    let mut signer = Signer::new(md, &hkey).map_err(|e| describe(&e))?;
    signer.update(data).map_err(|e| describe(&e))?;
    let mac = signer.sign_to_vec().map_err(|e| describe(&e))?;
    Ok(mac.len() == expected.len() && openssl::memcmp::eq(&mac, expected))
}

/// Checks an RFC 9579 PBMAC1: HMAC over the authSafe data with a PBKDF2 key derived from the
/// UTF-8 password. `Ok(false)` = MAC mismatch (wrong password or altered file).
fn verify_pbmac1(p: &Pbmac1<'_>, data: &[u8], password: &[u8]) -> Result<bool, String> {
    let key_len = p
        .key_len
        .ok_or("PBMAC1 PBKDF2 parameters lack keyLength (RFC 9579 requires it)")?;
    if key_len == 0 || key_len > 1024 || p.iterations == 0 {
        return Err("unreasonable PBMAC1 parameters".into());
    }
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    openssl::pkcs5::pbkdf2_hmac(password, &p.salt, p.iterations, p.prf, &mut key)
        .map_err(|e| describe(&e))?;
    hmac_matches(p.mac, &key, data, &p.expected)
}

/// Checks a classic MAC for `pass` (`None`: the absent password, which PKCS#12 tells apart
/// from the empty one). `Ok(false)` = MAC mismatch.
fn verify_classic(m: &ClassicMac<'_>, data: &[u8], pass: Option<&str>) -> Result<bool, String> {
    let key = pkcs12_mac_key(m.md, pass, &m.salt, m.iterations)?;
    let mac = m.md.hmac(&key, data)?;
    Ok(mac.len() == m.expected.len() && openssl::memcmp::eq(&mac, &m.expected))
}

/// The password as a PKCS#12 BMPString: UTF-16BE with a two-byte terminator; the empty
/// password is just the terminator (OpenSSL's `""`), the absent one (OpenSSL's NULL) no bytes.
fn bmp_password(pass: Option<&str>) -> Zeroizing<Vec<u8>> {
    let Some(pass) = pass else {
        return Zeroizing::new(Vec::new());
    };
    let mut out = Zeroizing::new(Vec::with_capacity(pass.len() * 2 + 2));
    for unit in pass.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The digest of an RFC 7292 MAC. The key derivation hashes once per iteration, so the SHA
/// family is hashed with the `sha1`/`sha2` crates (the workspace's, with the CPU's SHA
/// instructions): an EVP digest context per hash costs several times the hash itself, and
/// OpenSSL's one-shot SHA functions twice these crates' time.
#[derive(Clone, Copy)]
enum Md {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    /// Any other digest OpenSSL knows (MD5 in old files…), through EVP.
    Other(MessageDigest),
}

impl Md {
    fn from_oid(oid: &[u8]) -> Option<Md> {
        if oid == OID_SHA1 {
            return Some(Md::Sha1);
        }
        match oid.strip_prefix(OID_SHA2_PREFIX) {
            Some([1]) => return Some(Md::Sha256),
            Some([2]) => return Some(Md::Sha384),
            Some([3]) => return Some(Md::Sha512),
            Some([4]) => return Some(Md::Sha224),
            _ => {}
        }
        let dotted = smimekit_pki::certinfo::oid_to_string(oid);
        let nid = Asn1Object::from_str(&dotted).ok()?.nid();
        MessageDigest::from_nid(nid).map(Md::Other)
    }

    fn message_digest(self) -> MessageDigest {
        match self {
            Md::Sha1 => MessageDigest::sha1(),
            Md::Sha224 => MessageDigest::sha224(),
            Md::Sha256 => MessageDigest::sha256(),
            Md::Sha384 => MessageDigest::sha384(),
            Md::Sha512 => MessageDigest::sha512(),
            Md::Other(md) => md,
        }
    }

    /// The block size `v` of appendix B.
    fn block(self) -> usize {
        self.message_digest().block_size()
    }

    /// The output size `u`.
    fn size(self) -> usize {
        self.message_digest().size()
    }

    /// Hashes the concatenation of `parts`.
    fn hash(self, parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, String> {
        fn digest<D: sha2::Digest>(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            Zeroizing::new(h.finalize().to_vec())
        }
        Ok(match self {
            Md::Sha1 => digest::<sha1::Sha1>(parts),
            Md::Sha224 => digest::<sha2::Sha224>(parts),
            Md::Sha256 => digest::<sha2::Sha256>(parts),
            Md::Sha384 => digest::<sha2::Sha384>(parts),
            Md::Sha512 => digest::<sha2::Sha512>(parts),
            Md::Other(md) => {
                let mut h = Hasher::new(md).map_err(|e| describe(&e))?;
                for p in parts {
                    h.update(p).map_err(|e| describe(&e))?;
                }
                Zeroizing::new(h.finish().map_err(|e| describe(&e))?.to_vec())
            }
        })
    }

    /// RFC 2104 HMAC over [`Md::hash`] (an EVP HMAC costs a provider lookup per call, more
    /// than hashing a whole authSafe).
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let block = self.block();
        let mut k = Zeroizing::new(vec![0u8; block]);
        if key.len() > block {
            let hashed = self.hash(&[key])?;
            k[..hashed.len()].copy_from_slice(&hashed);
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| -> Zeroizing<Vec<u8>> {
            Zeroizing::new(k.iter().map(|b| b ^ byte).collect())
        };
        let inner = self.hash(&[&pad(0x36), data])?;
        self.hash(&[&pad(0x5c), &inner])
    }
}

/// The RFC 7292 appendix B key derivation, ID 3 (MAC key), with one block of output: the
/// HMAC key is as long as the digest (n = u), as OpenSSL's MAC uses it.
fn pkcs12_mac_key(
    md: Md,
    pass: Option<&str>,
    salt: &[u8],
    iterations: usize,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let v = md.block();
    if v == 0 || md.size() == 0 {
        return Err("MAC digest without block or output size".into());
    }
    let repeat = |src: &[u8]| -> Zeroizing<Vec<u8>> {
        let len = src.len().div_ceil(v) * v;
        Zeroizing::new(src.iter().copied().cycle().take(len).collect())
    };
    let p = bmp_password(pass);
    let mut i_buf = repeat(salt);
    i_buf.extend_from_slice(&repeat(&p));
    let d = vec![3u8; v];
    let first: [&[u8]; 2] = [&d, &i_buf];
    let rest = iterations.saturating_sub(1);
    Ok(match md {
        Md::Sha1 => chain32(Chain32::Sha1, &md.hash(&first)?, rest),
        Md::Sha224 => chain32(Chain32::Sha224, &md.hash(&first)?, rest),
        Md::Sha256 => chain32(Chain32::Sha256, &md.hash(&first)?, rest),
        Md::Sha384 | Md::Sha512 => chain64(&md.hash(&first)?, rest),
        Md::Other(_) => {
            let mut a = md.hash(&first)?;
            for _ in 0..rest {
                a = md.hash(&[&a])?;
            }
            a
        }
    })
}

// After the first hash of the key derivation every input is the previous digest, shorter than
// a block, so its padded block differs only in its first `u` bytes: each further iteration is
// one compression of that block from the initial state. This loop is the whole cost of a MAC
// check, and the `Digest` API's buffering and padding per call cost twice the compression.

/// The SHA functions on 32-bit words, for [`chain32`].
#[derive(Clone, Copy)]
enum Chain32 {
    Sha1,
    Sha224,
    Sha256,
}

/// `rest` more iterations of SHA-1, SHA-224 or SHA-256 on the digest `a`.
fn chain32(f: Chain32, a: &[u8], rest: usize) -> Zeroizing<Vec<u8>> {
    use zeroize::Zeroize;
    // FIPS 180-4 initial hash values.
    const SHA1_IV: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    const SHA224_IV: [u32; 8] = [
        0xc1059ed8, 0x367cd507, 0x3070dd17, 0xf70e5939, 0xffc00b31, 0x68581511, 0x64f98fa7,
        0xbefa4fa4,
    ];
    const SHA256_IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let u = a.len();
    let mut block = Zeroizing::new([0u8; 64]);
    block[..u].copy_from_slice(a);
    block[u] = 0x80;
    block[56..].copy_from_slice(&(u as u64 * 8).to_be_bytes());
    let mut state = [0u32; 8];
    for _ in 0..rest {
        match f {
            Chain32::Sha1 => {
                let mut s5 = SHA1_IV;
                sha1::block_api::compress(&mut s5, std::slice::from_ref(&*block));
                state[..5].copy_from_slice(&s5);
                s5.zeroize();
            }
            Chain32::Sha224 => {
                state = SHA224_IV;
                sha2::block_api::compress256(&mut state, std::slice::from_ref(&*block));
            }
            Chain32::Sha256 => {
                state = SHA256_IV;
                sha2::block_api::compress256(&mut state, std::slice::from_ref(&*block));
            }
        }
        for (chunk, word) in block[..u].chunks_mut(4).zip(&state) {
            chunk.copy_from_slice(&word.to_be_bytes()[..chunk.len()]);
        }
    }
    state.zeroize();
    Zeroizing::new(block[..u].to_vec())
}

/// `rest` more iterations of SHA-384 or SHA-512 on the digest `a`.
fn chain64(a: &[u8], rest: usize) -> Zeroizing<Vec<u8>> {
    use zeroize::Zeroize;
    // FIPS 180-4 initial hash values.
    const SHA384_IV: [u64; 8] = [
        0xcbbb9d5dc1059ed8,
        0x629a292a367cd507,
        0x9159015a3070dd17,
        0x152fecd8f70e5939,
        0x67332667ffc00b31,
        0x8eb44a8768581511,
        0xdb0c2e0d64f98fa7,
        0x47b5481dbefa4fa4,
    ];
    const SHA512_IV: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    let u = a.len();
    let iv = if u == 48 { SHA384_IV } else { SHA512_IV };
    let mut block = Zeroizing::new([0u8; 128]);
    block[..u].copy_from_slice(a);
    block[u] = 0x80;
    block[112..].copy_from_slice(&(u as u128 * 8).to_be_bytes());
    let mut state = [0u64; 8];
    for _ in 0..rest {
        state = iv;
        sha2::block_api::compress512(&mut state, std::slice::from_ref(&*block));
        for (chunk, word) in block[..u].chunks_mut(8).zip(&state) {
            chunk.copy_from_slice(&word.to_be_bytes()[..chunk.len()]);
        }
    }
    state.zeroize();
    Zeroizing::new(block[..u].to_vec())
}

/// Whether an encryption AlgorithmIdentifier needs OpenSSL's legacy provider: anything but
/// PBES2 (PBKDF2 with an HMAC-SHA PRF) with AES-CBC or 3DES, and the PKCS#12 3DES scheme.
fn legacy_cipher(alg: &Tlv<'_>) -> bool {
    let modern = || -> Option<bool> {
        let alg_kids = kids(alg).ok()?;
        let oid = alg_kids.first()?.content;
        if oid == OID_PBE_SHA1_3DES {
            return Some(true);
        }
        if oid != OID_PBES2 {
            return Some(false);
        }
        // PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme AlgorithmIdentifier }
        let params = kids(alg_kids.get(1)?).ok()?;
        let [kdf, scheme, ..] = params.as_slice() else {
            return Some(false);
        };
        let kdf_kids = kids(kdf).ok()?;
        if kdf_kids.first()?.content != OID_PBKDF2 {
            return Some(false);
        }
        let prf_ok = match kids(kdf_kids.get(1)?)
            .ok()?
            .iter()
            .find(|t| t.tag == TAG_SEQUENCE)
        {
            None => true, // hmacWithSHA1
            Some(prf) => hmac_digest(prf).is_ok(),
        };
        let cipher = kids(scheme).ok()?.first()?.content;
        let cipher_ok = cipher == OID_DES_EDE3_CBC
            || matches!(cipher.strip_prefix(OID_AES_PREFIX), Some([2 | 22 | 42]));
        Some(prf_ok && cipher_ok)
    };
    // Unreadable parameters: let OpenSSL judge, with every provider it may need.
    !modern().unwrap_or(false)
}

/// Whether any encrypted safe or shrouded key bag that can be seen without decrypting uses a
/// legacy cipher; unreadable structure counts as legacy. Bags inside encrypted safes are not
/// seen: [`Reading::decrypt`] loads the provider if OpenSSL then lacks an algorithm.
fn uses_legacy_cipher(pfx: &Pfx<'_>) -> bool {
    fn bags_legacy(safe_contents: &Tlv<'_>, depth: usize) -> Result<bool, String> {
        if depth > MAX_NESTING {
            return Err("safeContentsBag nesting too deep".into());
        }
        for bag in kids(safe_contents)? {
            let parts = kids(&bag)?;
            let [bag_id, value, ..] = parts.as_slice() else {
                continue;
            };
            let value = kids(value)?.into_iter().next().ok_or("empty bag value")?;
            let legacy = match bag_id.content {
                // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }
                OID_SHROUDED_KEY_BAG => {
                    legacy_cipher(kids(&value)?.first().ok_or("empty shrouded key bag")?)
                }
                OID_SAFE_CONTENTS_BAG => bags_legacy(&value, depth + 1)?,
                _ => false,
            };
            if legacy {
                return Ok(true);
            }
        }
        Ok(false)
    }
    let scan = || -> Result<bool, String> {
        for ci in kids(&first(&pfx.auth_safe_data)?)? {
            let ci_kids = kids(&ci)?;
            let [ctype, content, ..] = ci_kids.as_slice() else {
                continue;
            };
            let inner = kids(content)?;
            let inner = inner.first().ok_or("empty content")?;
            let legacy = match ctype.content {
                OID_DATA => bags_legacy(&first(&octets(inner)?)?, 0)?,
                OID_ENCRYPTED_DATA => legacy_cipher(&encrypted_content_info(inner)?.1),
                _ => false, // skipped, as OpenSSL does
            };
            if legacy {
                return Ok(true);
            }
        }
        Ok(false)
    };
    scan().unwrap_or(true)
}

/// The encryption algorithm and encrypted content of an EncryptedData:
/// `EncryptedData ::= SEQUENCE { version, EncryptedContentInfo }`,
/// `EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
/// encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }`.
fn encrypted_content_info<'a>(
    encrypted_data: &Tlv<'a>,
) -> Result<(Tlv<'a>, Tlv<'a>, Cow<'a, [u8]>), String> {
    let ed = kids(&expect(encrypted_data, TAG_SEQUENCE, "EncryptedData")?)?;
    let eci = expect(
        ed.get(1)
            .ok_or("EncryptedData without EncryptedContentInfo")?,
        TAG_SEQUENCE,
        "EncryptedContentInfo",
    )?;
    let parts = kids(&eci)?;
    let [ctype, alg, content, ..] = parts.as_slice() else {
        return Err("EncryptedContentInfo without encrypted content".into());
    };
    if content.context() != Some(0) {
        return Err(format!(
            "encryptedContent: expected [0], found tag {:#04x}",
            content.tag
        ));
    }
    Ok((
        *ctype,
        expect(alg, TAG_SEQUENCE, "contentEncryptionAlgorithm")?,
        content.octets().map_err(why)?,
    ))
}

/// How deep safeContentsBags may nest.
const MAX_NESTING: usize = 4;

/// One reading of a file: where errors point, the password the bags are encrypted with, and
/// what was found so far.
struct Reading<'p> {
    id: &'p str,
    /// Whether a password was given (for `Locked` against `BadSecret`).
    given: bool,
    /// The bags' password: `None` is PKCS#12's absent password.
    pass: Option<&'p str>,
    /// Whether the legacy provider was asked for in this reading.
    legacy: Cell<bool>,
    keys: Vec<RawKey>,
    certs: Vec<RawCert>,
    /// Key bags met, opened or not: only the first must open (as in OpenSSL's PKCS12_parse).
    key_bags: usize,
    /// Bags and authSafe contents met, against `LIMITS.pkcs12_bags`.
    bags_seen: usize,
    budget: &'p Budget,
}

impl Reading<'_> {
    fn malformed(&self, what: &str, detail: impl std::fmt::Display) -> KeyStoreError {
        malformed(self.id, &format!("{what}: {detail}"))
    }

    /// OpenSSL decrypts `data` with the PBE scheme `alg` (`what` names it in errors).
    fn decrypt(
        &self,
        alg: &Tlv<'_>,
        data: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let pass = self.pass.map(str::as_bytes);
        let iterations = pbe_iterations(alg).map_err(|e| self.malformed(what, e))?;
        self.budget
            .spend(what, iterations)
            .map_err(|e| malformed(self.id, &e))?;
        let mut result = smimekit_engine_openssl::pbe_decrypt(alg.raw, pass, data);
        // A legacy cipher inside an encrypted safe, which the scan cannot see.
        if matches!(result, Err(EngineError::Unsupported(_)))
            && !self.legacy.replace(true)
            && smimekit_engine_openssl::load_legacy_provider().is_ok()
        {
            result = smimekit_engine_openssl::pbe_decrypt(alg.raw, pass, data);
        }
        result.map_err(|e| match e {
            EngineError::DecryptFailed(_) => needs_password(self.id, self.given),
            EngineError::Unsupported(detail) => KeyStoreError::Unsupported {
                key: self.id.to_string(),
                detail: format!("{what}: {detail}"),
            },
            other => self.malformed(what, other),
        })
    }

    /// One ContentInfo of the authSafe: `data` or `encryptedData` (OpenSSL skips the others).
    fn content_info(&mut self, ci: &Tlv<'_>) -> Result<(), KeyStoreError> {
        let m = |e: String| self.malformed("authSafe ContentInfo", e);
        let ci_kids = kids(ci).map_err(m)?;
        let [ctype, content, ..] = ci_kids.as_slice() else {
            return Err(self.malformed("authSafe ContentInfo", "no content"));
        };
        let inner = kids(&expect(content, TAG_CONTEXT_0, "content").map_err(m)?).map_err(m)?;
        let inner = inner
            .first()
            .ok_or_else(|| self.malformed("authSafe ContentInfo", "empty content"))?;
        match ctype.content {
            OID_DATA => {
                let safe = octets(inner).map_err(|e| self.malformed("SafeContents", e))?;
                self.safe_contents(&safe, 0)
            }
            OID_ENCRYPTED_DATA => {
                let (_, alg, data) = encrypted_content_info(inner)
                    .map_err(|e| self.malformed("encrypted SafeContents", e))?;
                let safe = self.decrypt(&alg, &data, "encrypted SafeContents")?;
                self.safe_contents(&safe, 0)
            }
            _ => Ok(()),
        }
    }

    fn safe_contents(&mut self, der: &[u8], depth: usize) -> Result<(), KeyStoreError> {
        let t = first(der).map_err(|e| self.malformed("SafeContents", e))?;
        self.bags(&t, depth)
    }

    fn bags(&mut self, safe_contents: &Tlv<'_>, depth: usize) -> Result<(), KeyStoreError> {
        if depth > MAX_NESTING {
            return Err(self.malformed("SafeContents", "safeContentsBag nesting too deep"));
        }
        let id = self.id;
        let m = |e: String| malformed(id, &format!("SafeBag: {e}"));
        if !safe_contents.is_constructed() {
            return Err(m(format!(
                "tag {:#04x} is not constructed",
                safe_contents.tag
            )));
        }
        // Read one bag at a time and counted, so a file of a million empty bags costs nothing.
        let mut list = safe_contents.children();
        while let Some(bag) = list.next().map_err(|e| m(why(e)))? {
            self.count_bag()?;
            let parts = kids(&bag).map_err(m)?;
            let [bag_id, value, attrs @ ..] = parts.as_slice() else {
                continue;
            };
            // bagValue [0] EXPLICIT
            let value = kids(value)
                .map_err(m)?
                .into_iter()
                .next()
                .ok_or_else(|| m("empty bag value".into()))?;
            let label = attrs.first().and_then(|a| friendly_name(a).ok().flatten());
            match bag_id.content {
                OID_KEY_BAG => {
                    let key = PKey::private_key_from_pkcs8(value.raw)
                        .map_err(|e| self.malformed("keyBag", describe(&e)));
                    self.key(key, label)?;
                }
                OID_SHROUDED_KEY_BAG => {
                    let key = self.shrouded_key(&value);
                    self.key(key, label)?;
                }
                OID_CERT_BAG => {
                    if let Some(x509) = self.certificate(&value)? {
                        self.certs.push(RawCert { x509, label });
                    }
                }
                OID_SAFE_CONTENTS_BAG => self.bags(&value, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn count_bag(&mut self) -> Result<(), KeyStoreError> {
        self.bags_seen += 1;
        LimitExceeded::check(
            "bags in one PKCS#12 file",
            self.bags_seen,
            LIMITS.pkcs12_bags,
        )
        .map_err(|e| malformed(self.id, &e.to_string()))
    }

    /// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }`.
    fn shrouded_key(&self, epki: &Tlv<'_>) -> Result<PKey<Private>, KeyStoreError> {
        let m = |e: String| self.malformed("pkcs8ShroudedKeyBag", e);
        let parts =
            kids(&expect(epki, TAG_SEQUENCE, "EncryptedPrivateKeyInfo").map_err(m)?).map_err(m)?;
        let [alg, data, ..] = parts.as_slice() else {
            return Err(m("short EncryptedPrivateKeyInfo".into()));
        };
        let alg = expect(alg, TAG_SEQUENCE, "encryptionAlgorithm").map_err(m)?;
        let data = octets(data).map_err(m)?;
        let pkcs8 = self.decrypt(&alg, &data, "pkcs8ShroudedKeyBag")?;
        PKey::private_key_from_pkcs8(&pkcs8)
            .map_err(|e| self.malformed("pkcs8ShroudedKeyBag", describe(&e)))
    }

    /// A key bag's key. The file's first key bag must open, as OpenSSL's PKCS12_parse
    /// requires; later ones that do not are left out.
    fn key(
        &mut self,
        key: Result<PKey<Private>, KeyStoreError>,
        label: Option<String>,
    ) -> Result<(), KeyStoreError> {
        self.key_bags += 1;
        match key {
            Ok(pkey) => self.keys.push(RawKey { pkey, label }),
            Err(e) if self.key_bags == 1 => return Err(e),
            Err(_) => {}
        }
        Ok(())
    }

    /// `CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT ANY }`; only X.509
    /// certificates are read, as OpenSSL does.
    fn certificate(&self, cert_bag: &Tlv<'_>) -> Result<Option<X509>, KeyStoreError> {
        let m = |e: String| self.malformed("certBag", e);
        let parts = kids(&expect(cert_bag, TAG_SEQUENCE, "CertBag").map_err(m)?).map_err(m)?;
        let [cert_id, value, ..] = parts.as_slice() else {
            return Err(m("short CertBag".into()));
        };
        if cert_id.content != OID_X509_CERTIFICATE {
            return Ok(None);
        }
        let inner = kids(value).map_err(m)?;
        let der = inner
            .first()
            .ok_or_else(|| m("empty certValue".into()))?
            .octet_string()
            .map_err(|e| m(why(e)))?;
        X509::from_der(&der).map(Some).map_err(|e| m(describe(&e)))
    }
}

/// Reads a PKCS#12 file. `password: None` tries the absent and the empty password and fails
/// with `Locked` if neither opens the file.
pub(crate) fn read(
    id: &str,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<Bundle, KeyStoreError> {
    read_within(id, data, password, &Budget::default())
}

/// [`read`] with the key derivations counted against `budget`.
pub(crate) fn read_within(
    id: &str,
    data: &[u8],
    password: Option<&Secret>,
    budget: &Budget,
) -> Result<Bundle, KeyStoreError> {
    let given = password.is_some();
    let pass: &str = match password {
        None => "",
        Some(s) => match s.as_str() {
            Some(p) if !p.contains('\0') => p,
            _ => return Err(needs_password(id, true)),
        },
    };

    let der_bytes = unarmour(id, data)?;
    let pfx = parse_pfx(&der_bytes).map_err(|e| malformed(id, &e))?;

    // RC2-40 bags (the default of many older writers) need the legacy provider.
    let legacy = uses_legacy_cipher(&pfx);
    if legacy {
        // A failure shows up below as OpenSSL's unsupported algorithm, which is mapped.
        let _ = smimekit_engine_openssl::load_legacy_provider();
    }

    // The password the bags are encrypted with, once the MAC (if any) has accepted it. As in
    // OpenSSL's PKCS12_parse, an empty password may be the absent or the empty one; without a
    // MAC it is the absent one, and a wrong password shows up as a decryption failure.
    let bag_pass: Option<&str> = match &pfx.mac_data {
        Some(mac_data) => match mac_params(mac_data).map_err(|e| malformed(id, &e))? {
            Mac::Pbmac1(p) => match budget
                .spend("PBMAC1", p.iterations as u64)
                .and_then(|()| verify_pbmac1(&p, &pfx.auth_safe_data, pass.as_bytes()))
            {
                Ok(true) => Some(pass),
                Ok(false) => return Err(needs_password(id, given)),
                Err(e) => return Err(malformed(id, &e)),
            },
            Mac::Classic(m) => {
                let candidates: &[Option<&str>] = if pass.is_empty() {
                    &[None, Some("")]
                } else {
                    &[Some(pass)]
                };
                let mut matched = None;
                for candidate in candidates {
                    budget
                        .spend("MAC", m.iterations as u64)
                        .map_err(|e| malformed(id, &e))?;
                    if verify_classic(&m, &pfx.auth_safe_data, *candidate)
                        .map_err(|e| malformed(id, &e))?
                    {
                        matched = Some(*candidate);
                        break;
                    }
                }
                matched.ok_or_else(|| needs_password(id, given))?
            }
        },
        None if pass.is_empty() => None,
        None => Some(pass),
    };

    let mut reading = Reading {
        id,
        given,
        pass: bag_pass,
        legacy: Cell::new(legacy),
        keys: Vec::new(),
        certs: Vec::new(),
        key_bags: 0,
        bags_seen: 0,
        budget,
    };
    let safe_err = |e: String| malformed(id, &format!("AuthenticatedSafe: {e}"));
    let safes = first(&pfx.auth_safe_data).map_err(safe_err)?;
    if !safes.is_constructed() {
        return Err(safe_err(format!(
            "tag {:#04x} is not constructed",
            safes.tag
        )));
    }
    let mut list = safes.children();
    while let Some(ci) = list.next().map_err(|e| safe_err(why(e)))? {
        reading.count_bag()?;
        reading.content_info(&ci)?;
    }
    assemble(id, reading.keys, reading.certs)
}

/// The friendlyName in a bag's attribute SET, if any.
fn friendly_name(attrs: &Tlv<'_>) -> Result<Option<String>, String> {
    for attr in kids(&expect(attrs, TAG_SET, "bagAttributes")?)? {
        let attr_kids = kids(&attr)?;
        if let [oid, values, ..] = attr_kids.as_slice()
            && oid.content == OID_FRIENDLY_NAME
        {
            return Ok(kids(values)?.first().and_then(text));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use openssl::nid::Nid;
    use openssl::pkcs12::{Pkcs12, Pkcs12Builder};
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    use super::*;

    fn key_and_cert() -> (PKey<Private>, X509) {
        let pkey = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "p12 test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&pkey).unwrap();
        let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        let later = openssl::asn1::Asn1Time::days_from_now(30).unwrap();
        b.set_not_before(&now).unwrap();
        b.set_not_after(&later).unwrap();
        b.sign(&pkey, MessageDigest::sha256()).unwrap();
        (pkey, b.build())
    }

    /// A p12 as OpenSSL writes it (PBES2/AES bags unless `legacy`), with the given MAC digest.
    fn build(pass: &str, mac: MessageDigest, legacy: bool) -> (Vec<u8>, PKey<Private>) {
        let (pkey, cert) = key_and_cert();
        let mut b: Pkcs12Builder = Pkcs12::builder();
        b.name("friendly").pkey(&pkey).cert(&cert).mac_md(mac);
        if legacy {
            smimekit_engine_openssl::load_legacy_provider().unwrap();
            b.cert_algorithm(Nid::PBE_WITHSHA1AND40BITRC2_CBC)
                .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC);
        }
        (b.build2(pass).unwrap().to_der().unwrap(), pkey)
    }

    fn read_with(der: &[u8], pass: Option<&str>) -> Result<Bundle, KeyStoreError> {
        read("t.p12", der, pass.map(Secret::from).as_ref())
    }

    /// Iteration counts over the limit are refused before any derivation: the MAC's, and with
    /// no MAC a bag's; the file's total is bounded too.
    #[test]
    fn iteration_counts_are_limited() {
        let (pkey, cert) = key_and_cert();
        let mut b: Pkcs12Builder = Pkcs12::builder();
        // 65536 iterations, encoded 02 03 01 00 00, patched below to 0x7fffff (8,388,607).
        b.pkey(&pkey)
            .cert(&cert)
            .key_iter(0x1_0000)
            .mac_iter(0x1_0000);
        let der = b.build2("pw").unwrap().to_der().unwrap();
        let from: &[u8] = &[0x02, 0x03, 0x01, 0x00, 0x00];
        let to: &[u8] = &[0x02, 0x03, 0x7f, 0xff, 0xff];
        let mut patched = der.clone();
        let mut n = 0;
        for i in 0..=patched.len() - from.len() {
            if &patched[i..i + from.len()] == from {
                patched[i..i + from.len()].copy_from_slice(to);
                n += 1;
            }
        }
        assert!(n >= 2, "the counts were found ({n})");
        let err = read_with(&patched, Some("pw")).unwrap_err().to_string();
        assert!(
            err.contains("8388607 iterations, more than the 1000000 allowed"),
            "{err}"
        );
        assert!(read_with(&der, Some("pw")).is_ok());

        let budget = Budget::default();
        for _ in 0..4 {
            budget.spend("bag", 1_000_000).unwrap();
        }
        let err = budget.spend("bag", 1).unwrap_err();
        assert!(err.contains("more than 4000000 iterations"), "{err}");
    }

    /// A structure with more elements than any PKCS#12 holds is refused before it is collected.
    #[test]
    fn element_lists_are_limited() {
        let list = |n: usize| smimekit_pki::asn1::seq(&vec![&[0x05u8, 0x00][..]; n]);
        let ok = list(LIMITS.pkcs12_bags);
        assert_eq!(
            kids(&first(&ok).unwrap()).unwrap().len(),
            LIMITS.pkcs12_bags
        );
        let big = list(LIMITS.pkcs12_bags + 1);
        let err = kids(&first(&big).unwrap()).unwrap_err();
        assert!(err.contains("too many elements in one structure"), "{err}");
    }

    #[test]
    fn classic_mac_checked_here_for_every_sha_digest() {
        let digests = [
            MessageDigest::sha1(),
            MessageDigest::sha224(),
            MessageDigest::sha256(),
            MessageDigest::sha384(),
            MessageDigest::sha512(),
        ];
        for mac in digests {
            let (der, pkey) = build("s3cret", mac, false);
            let pfx = parse_pfx(&der).unwrap();
            let Mac::Classic(m) = mac_params(pfx.mac_data.as_ref().unwrap()).unwrap() else {
                panic!("{:?}: not checked here", mac.type_());
            };
            assert_eq!(m.md.message_digest().type_(), mac.type_());
            assert!(verify_classic(&m, &pfx.auth_safe_data, Some("s3cret")).unwrap());
            assert!(!verify_classic(&m, &pfx.auth_safe_data, Some("s3cre")).unwrap());

            let bundle = read_with(&der, Some("s3cret")).unwrap();
            assert_eq!(bundle.keys.len(), 1, "{:?}", mac.type_());
            assert_eq!(bundle.keys[0].label.as_deref(), Some("friendly"));
            assert!(bundle.key(None).unwrap().pkey().public_eq(&pkey));
            assert!(matches!(
                read_with(&der, Some("wrong")),
                Err(KeyStoreError::BadSecret { .. })
            ));
            assert!(matches!(
                read_with(&der, None),
                Err(KeyStoreError::Locked { .. })
            ));
        }
    }

    #[test]
    fn hmac_agrees_with_openssl() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        for md in [Md::Sha1, Md::Sha224, Md::Sha256, Md::Sha384, Md::Sha512] {
            for key_len in [1, 20, 64, 128, 200] {
                let key = vec![0x5a; key_len];
                let theirs = {
                    let k = PKey::hmac(&key).unwrap();
                    let mut s = Signer::new(md.message_digest(), &k).unwrap();
                    s.update(&data).unwrap();
                    s.sign_to_vec().unwrap()
                };
                assert_eq!(md.hmac(&key, &data).unwrap().as_slice(), theirs.as_slice());
            }
        }
        let md5 = Md::from_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05]).unwrap();
        assert_eq!(md5.size(), 16);
        let k = PKey::hmac(b"key").unwrap();
        let mut s = Signer::new(MessageDigest::md5(), &k).unwrap();
        s.update(&data).unwrap();
        assert_eq!(
            md5.hmac(b"key", &data).unwrap().as_slice(),
            s.sign_to_vec().unwrap().as_slice()
        );
    }

    #[test]
    fn chains_are_iterated_hashing() {
        let a0: Vec<u8> = (0..64u8).collect();
        for n in [0, 1, 2, 17, 2048] {
            for md in [Md::Sha1, Md::Sha224, Md::Sha256, Md::Sha384, Md::Sha512] {
                let start = md.hash(&[&a0]).unwrap();
                let mut expected = start.clone();
                for _ in 0..n {
                    expected = md.hash(&[&expected]).unwrap();
                }
                let fast = match md {
                    Md::Sha1 => chain32(Chain32::Sha1, &start, n),
                    Md::Sha224 => chain32(Chain32::Sha224, &start, n),
                    Md::Sha256 => chain32(Chain32::Sha256, &start, n),
                    _ => chain64(&start, n),
                };
                assert_eq!(*fast, *expected, "{} iterations", n);
            }
        }
        // The generic path gives the same keys as the SHA chains.
        for md in [Md::Sha1, Md::Sha256, Md::Sha512] {
            let generic = Md::Other(md.message_digest());
            assert_eq!(
                *pkcs12_mac_key(md, Some("pw"), b"salt", 100).unwrap(),
                *pkcs12_mac_key(generic, Some("pw"), b"salt", 100).unwrap()
            );
        }
    }

    #[test]
    fn non_ascii_and_empty_passwords() {
        let (der, _) = build("pässwörd €𝄞", MessageDigest::sha256(), false);
        assert_eq!(read_with(&der, Some("pässwörd €𝄞")).unwrap().keys.len(), 1);
        assert!(matches!(
            read_with(&der, Some("passwörd €𝄞")),
            Err(KeyStoreError::BadSecret { .. })
        ));
        // The empty password opens without asking, and also when given.
        let (der, _) = build("", MessageDigest::sha1(), false);
        assert_eq!(read_with(&der, None).unwrap().keys.len(), 1);
        assert_eq!(read_with(&der, Some("")).unwrap().keys.len(), 1);
        assert!(matches!(
            read_with(&der, Some("x")),
            Err(KeyStoreError::BadSecret { .. })
        ));
    }

    #[test]
    fn legacy_ciphers_are_recognised() {
        let (modern, _) = build("pw", MessageDigest::sha256(), false);
        assert!(!uses_legacy_cipher(&parse_pfx(&modern).unwrap()));
        let (legacy, pkey) = build("pw", MessageDigest::sha1(), true);
        assert!(uses_legacy_cipher(&parse_pfx(&legacy).unwrap()));
        let bundle = read_with(&legacy, Some("pw")).unwrap();
        assert!(bundle.key(None).unwrap().pkey().public_eq(&pkey));
    }
}
