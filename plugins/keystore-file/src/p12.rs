//! PKCS#12 files: OpenSSL's `PKCS12_parse` does the MAC check and the decryption; a small
//! structural walk adds what it drops (further keys, key friendly names) and handles RFC 9579
//! PBMAC1, which OpenSSL 3.0 cannot verify: the PBMAC1 MAC is checked here with OpenSSL's
//! PBKDF2 and HMAC, then OpenSSL decrypts an in-memory copy carrying a classic MAC (see
//! `reseal`). Nothing here decrypts a bag by hand.

use std::borrow::Cow;

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use smimekit_core::{KeyStoreError, Secret};
use smimekit_pki::asn1::{
    self, Asn1Error, Reader, TAG_BMP_STRING, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE,
    TAG_SET, TAG_UTF8_STRING, Tlv,
};
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
const OID_SAFE_CONTENTS_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x06,
];
const OID_FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
const OID_PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
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

/// The children of a constructed element.
pub(crate) fn kids<'a>(t: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, String> {
    if !t.is_constructed() {
        return Err(format!("tag {:#04x} is not constructed", t.tag));
    }
    t.children().read_all().map_err(why)
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
    version: Tlv<'a>,
    auth_safe: Tlv<'a>,
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
        version: *version,
        auth_safe: *auth_safe,
        auth_safe_data: octets,
        mac_data: rest.first().copied(),
    })
}

/// PBMAC1 parameters, if `mac_data` uses PBMAC1.
struct Pbmac1<'a> {
    salt: Cow<'a, [u8]>,
    iterations: usize,
    key_len: Option<usize>,
    prf: MessageDigest,
    mac: MessageDigest,
    expected: Cow<'a, [u8]>,
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

fn pbmac1_params<'a>(mac_data: &Tlv<'a>) -> Result<Option<Pbmac1<'a>>, String> {
    let mac_kids = kids(&expect(mac_data, TAG_SEQUENCE, "MacData")?)?;
    let digest_info = first_of(&mac_kids, "empty MacData", TAG_SEQUENCE, "DigestInfo")?;
    let di = kids(&digest_info)?;
    let [alg, digest, ..] = di.as_slice() else {
        return Err("short DigestInfo".into());
    };
    let alg_kids = kids(&expect(alg, TAG_SEQUENCE, "MAC algorithm")?)?;
    let oid = first_of(&alg_kids, "empty MAC algorithm", TAG_OID, "MAC OID")?;
    if oid.content != OID_PBMAC1 {
        return Ok(None);
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
    Ok(Some(Pbmac1 {
        salt,
        iterations: to_usize(iterations)?,
        key_len: key_len.map(to_usize).transpose()?,
        prf,
        mac: hmac_digest(scheme)?,
        expected: octets(digest)?,
    }))
}

/// Checks an RFC 9579 PBMAC1: HMAC over the authSafe data with a PBKDF2 key derived from the
/// UTF-8 password. `Ok(false)` = MAC mismatch (wrong password or altered file).
fn verify_pbmac1(p: &Pbmac1<'_>, data: &[u8], password: &[u8]) -> Result<bool, String> {
    let key_len = p
        .key_len
        .ok_or("PBMAC1 PBKDF2 parameters lack keyLength (RFC 9579 requires it)")?;
    if key_len == 0 || key_len > 1024 || p.iterations == 0 || p.iterations > 10_000_000 {
        return Err("unreasonable PBMAC1 parameters".into());
    }
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    openssl::pkcs5::pbkdf2_hmac(password, &p.salt, p.iterations, p.prf, &mut key)
        .map_err(|e| describe(&e))?;
    let hkey = PKey::hmac(&key).map_err(|e| describe(&e))?;
    let mut signer = Signer::new(p.mac, &hkey).map_err(|e| describe(&e))?;
    signer.update(data).map_err(|e| describe(&e))?;
    let mac = signer.sign_to_vec().map_err(|e| describe(&e))?;
    Ok(mac.len() == p.expected.len() && openssl::memcmp::eq(&mac, &p.expected))
}

/// The password as a PKCS#12 BMPString: UTF-16BE with a two-byte terminator; the empty
/// password is just the terminator (OpenSSL's `""`, as opposed to its NULL password).
fn bmp_password(pass: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(pass.len() * 2 + 2));
    for unit in pass.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The RFC 7292 appendix B key derivation with SHA-256 (block 64 bytes), ID 3 (MAC key).
fn pkcs12_mac_key(
    pass: &str,
    salt: &[u8],
    iterations: usize,
) -> Result<Zeroizing<Vec<u8>>, String> {
    const V: usize = 64;
    const U: usize = 32;
    let repeat = |src: &[u8]| -> Zeroizing<Vec<u8>> {
        let len = src.len().div_ceil(V) * V;
        Zeroizing::new(src.iter().copied().cycle().take(len).collect())
    };
    let p = bmp_password(pass);
    let mut i_buf = repeat(salt);
    i_buf.extend_from_slice(&repeat(&p));
    let sha = |data: &[&[u8]]| -> Result<Vec<u8>, String> {
        let mut h =
            openssl::hash::Hasher::new(MessageDigest::sha256()).map_err(|e| describe(&e))?;
        for d in data {
            h.update(d).map_err(|e| describe(&e))?;
        }
        Ok(h.finish().map_err(|e| describe(&e))?.to_vec())
    };
    // One block of output is all a SHA-256 HMAC key needs (n = u = 32).
    let mut a = Zeroizing::new(sha(&[&[3u8; V], &i_buf])?);
    for _ in 1..iterations {
        *a = sha(&[&a])?;
    }
    debug_assert_eq!(a.len(), U);
    Ok(a)
}

/// A copy of the PFX with a classic HMAC-SHA-256 MacData for `pass` (see `read`).
fn reseal(pfx: &Pfx<'_>, pass: &str) -> Result<Vec<u8>, String> {
    const SHA256_ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    ];
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| describe(&e))?;
    let key = pkcs12_mac_key(pass, &salt, 1)?;
    let hkey = PKey::hmac(&key).map_err(|e| describe(&e))?;
    let mut signer = Signer::new(MessageDigest::sha256(), &hkey).map_err(|e| describe(&e))?;
    signer
        .update(&pfx.auth_safe_data)
        .map_err(|e| describe(&e))?;
    let mac = signer.sign_to_vec().map_err(|e| describe(&e))?;

    let mut digest_info = SHA256_ALG.to_vec();
    digest_info.extend_from_slice(&asn1::encode(TAG_OCTET_STRING, &mac));
    let mut mac_data = asn1::encode(TAG_SEQUENCE, &digest_info);
    mac_data.extend_from_slice(&asn1::encode(TAG_OCTET_STRING, &salt));
    mac_data.extend_from_slice(&asn1::encode(TAG_INTEGER, &[1]));

    let mut body = pfx.version.raw.to_vec();
    body.extend_from_slice(pfx.auth_safe.raw);
    body.extend_from_slice(&asn1::encode(TAG_SEQUENCE, &mac_data));
    Ok(asn1::encode(TAG_SEQUENCE, &body))
}

/// Reads a PKCS#12 file. `password: None` tries the empty and the absent password and fails
/// with `Locked` if neither opens the file.
pub(crate) fn read(
    id: &str,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<Bundle, KeyStoreError> {
    let given = password.is_some();
    let pass: &str = match password {
        None => "",
        Some(s) => match s.as_str() {
            Some(p) if !p.contains('\0') => p,
            _ => return Err(needs_password(id, true)),
        },
    };
    // RC2-40 bags (the default of many writers) need the legacy provider; without it OpenSSL
    // reports an unsupported algorithm, which is mapped below.
    let _ = smimekit_engine_openssl::load_legacy_provider();

    let der_bytes = unarmour(id, data)?;
    let pfx = parse_pfx(&der_bytes).map_err(|e| malformed(id, &e))?;

    // OpenSSL 3.0's PKCS12_parse insists on a classic PKCS#12 MAC whenever the password is
    // not empty. Two kinds of file lack one:
    // * PBMAC1 (RFC 9579) files, whose MAC is verified here (PBKDF2 + HMAC, both OpenSSL's);
    // * files without MacData at all (no integrity to check; a wrong password shows up as a
    //   decryption failure).
    // For those, an in-memory copy gets a classic MAC computed for the given password, so
    // that OpenSSL decrypts the bags. Integrity is never weaker than the file's own.
    let mut resealed = None;
    match &pfx.mac_data {
        Some(mac_data) => {
            if let Some(p) = pbmac1_params(mac_data).map_err(|e| malformed(id, &e))? {
                match verify_pbmac1(&p, &pfx.auth_safe_data, pass.as_bytes()) {
                    Ok(true) => {}
                    Ok(false) => return Err(needs_password(id, given)),
                    Err(e) => return Err(malformed(id, &e)),
                }
                resealed = Some(reseal(&pfx, pass).map_err(|e| malformed(id, &e))?);
            }
        }
        None if !pass.is_empty() => {
            resealed = Some(reseal(&pfx, pass).map_err(|e| malformed(id, &e))?);
        }
        None => {}
    }
    let to_parse: &[u8] = resealed.as_deref().unwrap_or(&der_bytes);

    let p12 = Pkcs12::from_der(to_parse).map_err(|e| malformed(id, &describe(&e)))?;
    let parsed = p12.parse2(pass).map_err(|e| {
        let why = describe(&e);
        let lower = why.to_ascii_lowercase();
        if lower.contains("mac verify failure")
            || lower.contains("bad decrypt")
            || lower.contains("cipherfinal")
        {
            needs_password(id, given)
        } else if lower.contains("unsupported") || lower.contains("unknown pbe") {
            KeyStoreError::Unsupported {
                key: id.to_string(),
                detail: why,
            }
        } else {
            malformed(id, &why)
        }
    })?;

    // Keys in unencrypted safes (where nearly every writer puts its shrouded key bags), with
    // their friendly names; PKCS12_parse returns only the first key and drops key names.
    let mut walked = Walked::default();
    // Best effort: OpenSSL has already accepted the structure, and its first key is added
    // below in any case.
    for ci in first(&pfx.auth_safe_data)
        .and_then(|t| kids(&t))
        .unwrap_or_default()
    {
        let _ = walk_content_info(&ci, pass, &mut walked);
    }
    let mut keys = walked.found;
    if let Some(first) = parsed.pkey
        && !keys.iter().any(|k| k.pkey.public_eq(&first))
    {
        // OpenSSL opened a bag the walk could not: if that is unambiguous, it is that
        // bag's key, and its friendly name applies.
        let label = match walked.undecrypted.as_slice() {
            [only] => only.clone(),
            _ => None,
        };
        keys.insert(0, RawKey { pkey: first, label });
    }

    let mut certs = Vec::new();
    for x509 in parsed
        .cert
        .into_iter()
        .chain(parsed.ca.into_iter().flatten())
    {
        let label = x509
            .alias()
            .and_then(|a| String::from_utf8(a.to_vec()).ok())
            .map(|a| a.trim_end_matches('\0').to_string());
        certs.push(RawCert { x509, label });
    }
    assemble(id, keys, certs)
}

/// Keys found by the structural walk, and the friendly names of key bags it could not open.
#[derive(Default)]
struct Walked {
    found: Vec<RawKey>,
    undecrypted: Vec<Option<String>>,
}

/// Collects the keys of one ContentInfo of the authSafe, if it is unencrypted `data`.
fn walk_content_info(ci: &Tlv<'_>, pass: &str, keys: &mut Walked) -> Result<(), String> {
    let ci_kids = kids(ci)?;
    let [ctype, content, ..] = ci_kids.as_slice() else {
        return Ok(());
    };
    if ctype.content != OID_DATA {
        return Ok(()); // encryptedData / envelopedData: OpenSSL handled those
    }
    let inner = kids(content)?;
    let octets = octets(inner.first().ok_or("empty content")?)?;
    let safe_contents = first(&octets)?;
    walk_bags(&safe_contents, pass, keys, 0)
}

fn walk_bags(
    safe_contents: &Tlv<'_>,
    pass: &str,
    keys: &mut Walked,
    depth: usize,
) -> Result<(), String> {
    if depth > 4 {
        return Err("safeContentsBag nesting too deep".into());
    }
    for bag in kids(safe_contents)? {
        let parts = kids(&bag)?;
        let [bag_id, value, attrs @ ..] = parts.as_slice() else {
            continue;
        };
        let value = kids(value)?.into_iter().next().ok_or("empty bag value")?;
        let label = attrs.first().and_then(|a| friendly_name(a).ok().flatten());
        match bag_id.content {
            OID_KEY_BAG => match PKey::private_key_from_pkcs8(value.raw) {
                Ok(pkey) => keys.found.push(RawKey { pkey, label }),
                Err(_) => keys.undecrypted.push(label),
            },
            // The safe API can only pass a non-NULL password, so a bag encrypted under the
            // absent (NULL) password lands in `undecrypted`; PKCS12_parse returns that key.
            OID_SHROUDED_KEY_BAG => {
                match PKey::private_key_from_pkcs8_passphrase(value.raw, pass.as_bytes()) {
                    Ok(pkey) => keys.found.push(RawKey { pkey, label }),
                    Err(_) => keys.undecrypted.push(label),
                }
            }
            OID_SAFE_CONTENTS_BAG => walk_bags(&value, pass, keys, depth + 1)?,
            _ => {}
        }
    }
    Ok(())
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
