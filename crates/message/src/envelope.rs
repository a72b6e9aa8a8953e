//! CMS EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083): encrypt to recipients'
//! certificates, decrypt with a [`PrivateKey`].
//!
//! RSA recipients get KeyTransRecipientInfo (PKCS#1 v1.5 by default, OAEP on request); EC
//! recipients get KeyAgreeRecipientInfo with ephemeral-static ECDH (RFC 5753). Recipients are
//! identified by issuerAndSerialNumber; when decrypting, subjectKeyIdentifier matches too.
//! Password (pwri), KEK and KEM recipients are recognised and reported, not handled.

use const_oid::ObjectIdentifier as Oid;
use smimekit_core::{
    CertDer, ContentCipher, CryptoEngine, DecryptionKey, DigestAlg, EngineError, KeyKind,
    KeyStoreError, RsaPadding, Secret,
};
use smimekit_pki::{LIMITS, LimitExceeded, ber, certinfo};

use crate::asn1::{self, TAG_OCTET_STRING, TAG_SEQUENCE, TAG_SET, Tlv};
use crate::signed::read_oid;
use crate::{MessageError, certid, oids};

/// What [`smimekit_pki::LIMITS`]`.recipient_infos` counts, for its error.
const RECIPIENTS: &str =
    "RecipientInfos (and encrypted keys of key agreements) in one message layer";

/// How to encrypt.
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    pub cipher: ContentCipher,
    /// RSA-OAEP with SHA-256 instead of PKCS#1 v1.5 for RSA recipients.
    pub oaep: bool,
}

/// Encrypts `content` to every certificate; returns a DER ContentInfo (EnvelopedData, or
/// AuthEnvelopedData for GCM ciphers).
pub fn encrypt(
    engine: &CryptoEngine,
    recipients: &[CertDer],
    content: &[u8],
    opts: &EncryptOptions,
) -> Result<Vec<u8>, MessageError> {
    if recipients.is_empty() {
        return Err(MessageError::BadRecipient {
            subject: String::new(),
            detail: "no recipients".into(),
        });
    }
    let cipher = opts.cipher;
    let cipher_oid = oids::cipher_oid(cipher)
        .filter(|_| {
            matches!(
                cipher,
                ContentCipher::Aes128Cbc
                    | ContentCipher::Aes192Cbc
                    | ContentCipher::Aes256Cbc
                    | ContentCipher::Aes128Gcm
                    | ContentCipher::Aes192Gcm
                    | ContentCipher::Aes256Gcm
            )
        })
        .ok_or_else(|| MessageError::Unsupported(format!("encrypting with {}", cipher.name())))?;
    let mut cek = vec![0u8; cipher.key_len()];
    engine.primitives.fill_random(&mut cek)?;
    let cek = Secret::new(cek);
    let mut iv = vec![0u8; cipher.iv_len()];
    engine.primitives.fill_random(&mut iv)?;

    let mut infos = Vec::with_capacity(recipients.len());
    let mut any_kari = false;
    for cert in recipients {
        let (ri, kari) = recipient_info(engine, cert, &cek, cipher, opts)?;
        any_kari |= kari;
        infos.push(ri);
    }
    let info_refs: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    let recipient_infos = asn1::constructed(TAG_SET, &info_refs);

    let (ciphertext, tag) = engine
        .crypter
        .encrypt(cipher, cek.expose(), &iv, &[], content)?;
    if cipher.is_aead() {
        let params = asn1::seq(&[&asn1::octet_string(&iv), &asn1::small_int(tag.len() as u32)]);
        let alg = asn1::seq(&[&oids::encode(&cipher_oid), &params]);
        let eci = asn1::seq(&[
            &oids::encode(&oids::ID_DATA),
            &alg,
            &asn1::context_primitive(0, &ciphertext),
        ]);
        let aed = asn1::seq(&[
            &asn1::small_int(0),
            &recipient_infos,
            &eci,
            &asn1::octet_string(&tag),
        ]);
        Ok(asn1::seq(&[
            &oids::encode(&oids::ID_AUTH_ENVELOPED_DATA),
            &asn1::context_constructed(0, &[&aed]),
        ]))
    } else {
        let alg = asn1::seq(&[&oids::encode(&cipher_oid), &asn1::octet_string(&iv)]);
        let eci = asn1::seq(&[
            &oids::encode(&oids::ID_DATA),
            &alg,
            &asn1::context_primitive(0, &ciphertext),
        ]);
        // RFC 5652 §6.1: version 2 when a recipient info has a version other than 0.
        let version = if any_kari { 2 } else { 0 };
        let ed = asn1::seq(&[&asn1::small_int(version), &recipient_infos, &eci]);
        Ok(asn1::seq(&[
            &oids::encode(&oids::ID_ENVELOPED_DATA),
            &asn1::context_constructed(0, &[&ed]),
        ]))
    }
}

fn oaep_sha256_params() -> Vec<u8> {
    let hash = asn1::seq(&[&oids::encode(&oids::SHA256)]);
    let mgf = asn1::seq(&[&oids::encode(&oids::MGF1), &hash]);
    asn1::seq(&[
        &asn1::context_constructed(0, &[&hash]),
        &asn1::context_constructed(1, &[&mgf]),
    ])
}

/// Builds one RecipientInfo; the flag tells whether it is a KeyAgreeRecipientInfo.
fn recipient_info(
    engine: &CryptoEngine,
    cert: &CertDer,
    cek: &Secret,
    cipher: ContentCipher,
    opts: &EncryptOptions,
) -> Result<(Vec<u8>, bool), MessageError> {
    let info = certinfo::parse(cert)?;
    let bad = |detail: String| MessageError::BadRecipient {
        subject: certinfo::primary_address(&info),
        detail,
    };
    let spki = certinfo::spki_der(cert)?;
    let pk = engine
        .verifier
        .public_key_info(&spki)
        .map_err(|e| bad(e.to_string()))?;
    // Refuse what no mail client encrypts to: a CA, a keyUsage without the bit the key
    // algorithm needs, an extendedKeyUsage without emailProtection.
    if info.is_ca {
        return Err(bad("is a CA certificate, not a mail recipient".into()));
    }
    let needed = match pk.algorithm.as_str() {
        "rsa" => Some((certinfo::KeyUsageBits::KEY_ENCIPHERMENT, "keyEncipherment")),
        "ec" => Some((certinfo::KeyUsageBits::KEY_AGREEMENT, "keyAgreement")),
        _ => None,
    };
    if let (Some(ku), Some((bit, name))) = (info.key_usage, needed)
        && !ku.contains(bit)
    {
        return Err(bad(format!(
            "keyUsage lacks {name}, so it cannot be used for encryption"
        )));
    }
    if let Some(eku) = &info.extended_key_usage
        && !eku
            .iter()
            .any(|o| o == "1.3.6.1.5.5.7.3.4" || o == "2.5.29.37.0")
    {
        return Err(bad("extendedKeyUsage lacks emailProtection".into()));
    }
    if pk.algorithm == "rsa" && pk.bits < 2048 {
        return Err(bad(format!(
            "its RSA key has {} bits; mail is encrypted only to RSA keys of 2048 bits or more",
            pk.bits
        )));
    }
    let (issuer, serial) = certinfo::issuer_and_serial(cert)?;
    let ias = asn1::seq(&[&issuer, &asn1::encode(asn1::TAG_INTEGER, &serial)]);
    match pk.algorithm.as_str() {
        "rsa" => {
            let (padding, alg) = if opts.oaep {
                (
                    RsaPadding::Oaep {
                        hash: DigestAlg::Sha256,
                        mgf1: DigestAlg::Sha256,
                        label: Vec::new(),
                    },
                    asn1::seq(&[&oids::encode(&oids::RSAES_OAEP), &oaep_sha256_params()]),
                )
            } else {
                (
                    RsaPadding::Pkcs1v15,
                    asn1::seq(&[&oids::encode(&oids::RSA_ENCRYPTION), &asn1::null()]),
                )
            };
            let wrapped = engine
                .key_transport
                .rsa_encrypt(&spki, &padding, cek.expose())
                .map_err(|e| bad(e.to_string()))?;
            let ktri = asn1::seq(&[
                &asn1::small_int(0),
                &ias,
                &alg,
                &asn1::octet_string(&wrapped),
            ]);
            Ok((ktri, false))
        }
        "ec" => {
            let (kdf, kdf_oid) = match pk.bits {
                b if b > 384 => (DigestAlg::Sha512, oids::DH_SHA512KDF),
                b if b > 256 => (DigestAlg::Sha384, oids::DH_SHA384KDF),
                _ => (DigestAlg::Sha256, oids::DH_SHA256KDF),
            };
            let wrap_oid = wrap_oid_for(cipher.key_len());
            let kek_len = cipher.key_len().max(16);
            let (eph_point, z) = engine
                .key_transport
                .ecdh_ephemeral(&spki)
                .map_err(|e| bad(e.to_string()))?;
            let wrap_alg = asn1::seq(&[&oids::encode(&wrap_oid)]);
            let shared_info = ecc_cms_shared_info(&wrap_alg, None, kek_len);
            let kek = engine
                .key_transport
                .kdf_x963(kdf, z.expose(), &shared_info, kek_len)?;
            let wrapped = engine.key_transport.aes_wrap(kek.expose(), cek.expose())?;
            let originator_key = asn1::context_constructed(
                1,
                &[
                    &asn1::seq(&[&oids::encode(&oids::EC_PUBLIC_KEY)]),
                    &asn1::bit_string(&eph_point),
                ],
            );
            let kari = asn1::context_constructed(
                1,
                &[
                    &asn1::small_int(3),
                    &asn1::context_constructed(0, &[&originator_key]),
                    &asn1::seq(&[&oids::encode(&kdf_oid), &wrap_alg]),
                    &asn1::seq(&[&asn1::seq(&[&ias, &asn1::octet_string(&wrapped)])]),
                ],
            );
            Ok((kari, true))
        }
        other => Err(bad(format!("cannot encrypt to a {other} key"))),
    }
}

fn wrap_oid_for(key_len: usize) -> Oid {
    match key_len {
        0..=16 => oids::AES128_WRAP,
        17..=24 => oids::AES192_WRAP,
        _ => oids::AES256_WRAP,
    }
}

/// ECC-CMS-SharedInfo (RFC 5753 §7.2).
fn ecc_cms_shared_info(wrap_alg: &[u8], ukm: Option<&[u8]>, kek_len: usize) -> Vec<u8> {
    let bits = ((kek_len * 8) as u32).to_be_bytes();
    let supp = asn1::context_constructed(2, &[&asn1::octet_string(&bits)]);
    match ukm {
        Some(u) => asn1::seq(&[
            wrap_alg,
            &asn1::context_constructed(0, &[&asn1::octet_string(u)]),
            &supp,
        ]),
        None => asn1::seq(&[wrap_alg, &supp]),
    }
}

/// The outcome of decrypting one layer.
#[derive(Debug)]
pub struct Decrypted {
    pub content: Vec<u8>,
    pub cipher: String,
    pub key_algorithms: Vec<String>,
    /// Who the layer was decrypted for: the address of the key's certificate, or for a key
    /// without one, the recipient identifier it opened.
    pub recipient: String,
    pub authenticated: bool,
}

/// One recipient info, parsed enough to match and unwrap.
struct Recip<'a> {
    kind: RecipKind<'a>,
    alg_name: String,
}

enum RecipKind<'a> {
    Ktri {
        rid: Tlv<'a>,
        alg: Tlv<'a>,
        wrapped: Vec<u8>,
    },
    Kari {
        originator_point: Vec<u8>,
        /// The curve of the originator's key (`P-256`…), when known.
        curve: Option<&'static str>,
        ukm: Option<Vec<u8>>,
        alg: Tlv<'a>,
        keys: Vec<(Tlv<'a>, Vec<u8>)>,
    },
    Other,
}

/// One attempt: a key on a key-transport recipient, or on one encrypted key of a key
/// agreement (`rek`).
#[derive(Clone, Copy)]
struct Candidate<'k> {
    key: &'k DecryptionKey,
    recip: usize,
    rek: usize,
}

/// Why an attempt gave no key.
enum Failure {
    /// A cryptographic failure (wrong key, bad padding, failed unwrap): never told apart.
    Crypto,
    /// Decided by public data alone (an unsupported algorithm, a token that cannot do it).
    Public(MessageError),
    /// The key needs a PIN: stop and let the caller ask.
    Locked(MessageError),
}

impl From<MessageError> for Failure {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Key(KeyStoreError::Locked { .. }) => Failure::Locked(e),
            MessageError::Key(KeyStoreError::Failed { .. })
            | MessageError::DecryptFailed(_)
            | MessageError::Engine(_) => Failure::Crypto,
            other => Failure::Public(other),
        }
    }
}

/// Decrypts an EnvelopedData or AuthEnvelopedData ContentInfo `[0]` element with one of `keys`.
///
/// Which recipients a key is tried on: a key with a certificate, only on those that name it
/// (issuer and serial number, or subject key identifier); a bare key (no certificate) on every
/// recipient of its algorithm (RSA on key transport, EC on key agreement with an originator key
/// on the same curve), as `openssl cms -decrypt -inkey` does without `-recip`, at most
/// [`smimekit_pki::LIMITS`]`.trial_decryptions` of them (more is an error, not a guess). The
/// named attempts come first. A layer holds at most `LIMITS.recipient_infos` recipients.
///
/// No outcome tells which step failed (Bleichenbacher's and the million-message attacks feed
/// on that): every attempt of a round is unwrapped before any content is decrypted; an unwrap
/// that fails or gives a key of the wrong size gives no key; when RSA attempts gave none, the
/// content is decrypted with a random key, as a wrongly unwrapped key would be. Every such
/// failure ends in the one error, [`MessageError::NoRecipientKey`]. CBC content has no
/// integrity, so a wrong RSA key can, rarely, "decrypt" to garbage (so does OpenSSL's).
pub async fn decrypt(
    engine: &CryptoEngine,
    explicit: &Tlv<'_>,
    authenticated: bool,
    keys: &[DecryptionKey],
) -> Result<Decrypted, MessageError> {
    let ed = explicit
        .children()
        .read_tag(TAG_SEQUENCE, "EnvelopedData")?;
    let mut r = ed.children();
    r.read("version")?;
    r.optional(0xa0)?; // originatorInfo
    let ris = r.read_tag(TAG_SET, "recipientInfos")?;
    let eci = r.read_tag(TAG_SEQUENCE, "encryptedContentInfo")?;
    let mut recips = Vec::new();
    let mut rr = ris.children();
    let mut count = 0;
    while let Some(ri) = rr.next()? {
        let recip = parse_recipient(&ri)?;
        count += match &recip.kind {
            RecipKind::Kari { keys, .. } => keys.len(),
            _ => 1,
        };
        LimitExceeded::check(RECIPIENTS, count, LIMITS.recipient_infos)?;
        recips.push(recip);
    }
    let key_algorithms: Vec<String> = recips.iter().map(|r| r.alg_name.clone()).collect();

    let mut er = eci.children();
    read_oid(&mut er, "contentType")?;
    let alg = er.read_tag(TAG_SEQUENCE, "contentEncryptionAlgorithm")?;
    let ciphertext = match er.next()? {
        Some(t) if t.tag & 0x1f == 0 && t.tag & 0xc0 == 0x80 => t.octets()?,
        Some(t) => {
            return Err(MessageError::Malformed(format!(
                "encryptedContent has tag 0x{:02x}",
                t.tag
            )));
        }
        None => {
            return Err(MessageError::Unsupported(
                "detached encrypted content (no encryptedContent)".into(),
            ));
        }
    };
    let (mac, aad) = if authenticated {
        let mut aad = None;
        let mut mac = None;
        while let Some(t) = r.next()? {
            match t.tag {
                0xa1 => {
                    // authAttrs are authenticated as a DER SET.
                    let mut der = ber::ber_to_der(t.raw)?;
                    der[0] = TAG_SET;
                    aad = Some(der);
                }
                TAG_OCTET_STRING => mac = Some(t.octets()?.into_owned()),
                _ => {}
            }
        }
        (
            Some(
                mac.ok_or_else(|| MessageError::Malformed("AuthEnvelopedData has no mac".into()))?,
            ),
            aad.unwrap_or_default(),
        )
    } else {
        (None, Vec::new())
    };
    let (cipher, iv, icv_len) = content_cipher(&alg)?;
    // RFC 5083: AuthEnvelopedData is only as good as its cipher's authentication, so only an
    // AEAD cipher will do; and an AEAD cipher in plain EnvelopedData has no tag to check.
    match (authenticated, cipher.is_aead()) {
        (true, false) => {
            return Err(MessageError::Malformed(format!(
                "AuthEnvelopedData with {}, which does not authenticate: only AES-GCM is accepted",
                cipher.name()
            )));
        }
        (false, true) => {
            return Err(MessageError::Malformed(format!(
                "EnvelopedData with {}, which needs AuthEnvelopedData to carry its tag",
                cipher.name()
            )));
        }
        _ => {}
    }
    if let (Some(want), Some(tag)) = (icv_len, mac.as_deref())
        && tag.len() != want
    {
        return Err(MessageError::Malformed(format!(
            "AuthEnvelopedData tag of {} bytes, but its parameters say {want}",
            tag.len()
        )));
    }
    if keys.is_empty() {
        return Err(MessageError::NeedsKey);
    }

    let (named, by_type) = candidates(&recips, keys)?;
    let decrypt_content = |cek: &[u8]| {
        engine
            .crypter
            .decrypt(cipher, cek, &iv, &aad, &ciphertext, mac.as_deref())
    };
    let mut crypto_failed = false;
    let mut public_err = None;
    for (round, named_round) in [(named, true), (by_type, false)] {
        if round.is_empty() {
            continue;
        }
        // Unwrap every attempt of the round first, so that neither the outcome nor the work
        // depends on which one unwrapped.
        let mut found: Vec<(Candidate<'_>, Secret)> = Vec::new();
        let mut rsa_failed = false;
        for c in &round {
            let rec = &recips[c.recip];
            let unwrapped = unwrap(engine, rec, c.rek, c.key)
                .await
                .map_err(Failure::from)
                .and_then(|cek| {
                    // RC2 keys vary in size; every other cipher fixes it.
                    if matches!(cipher, ContentCipher::Rc2Cbc(_)) || cek.len() == cipher.key_len() {
                        Ok(cek)
                    } else {
                        Err(Failure::Crypto)
                    }
                });
            match unwrapped {
                Ok(cek) => found.push((*c, cek)),
                Err(Failure::Crypto) => {
                    crypto_failed = true;
                    rsa_failed |= matches!(rec.kind, RecipKind::Ktri { .. });
                }
                Err(Failure::Public(e)) => {
                    // A named recipient's own limitation is the answer; others' are not.
                    if named_round || public_err.is_none() {
                        public_err.get_or_insert(e);
                    }
                }
                Err(Failure::Locked(e)) => return Err(e),
            }
        }
        if found.is_empty() && rsa_failed {
            // As a wrongly unwrapped key would: decrypt with a random one.
            let first = round
                .iter()
                .find(|c| matches!(recips[c.recip].kind, RecipKind::Ktri { .. }))
                .copied();
            let mut cek = vec![0u8; random_key_len(cipher)];
            engine.primitives.fill_random(&mut cek)?;
            if let Some(c) = first {
                found.push((c, Secret::new(cek)));
            }
        }
        for (c, cek) in &found {
            match decrypt_content(cek.expose()) {
                Ok(content) => {
                    return Ok(Decrypted {
                        content,
                        cipher: cipher.name(),
                        key_algorithms,
                        recipient: recipient_name(c, &recips)?,
                        authenticated,
                    });
                }
                Err(EngineError::DecryptFailed(_)) => crypto_failed = true,
                // Not about the key (an unsupported cipher, a bad IV): the same for every key.
                Err(e) => return Err(e.into()),
            }
        }
    }
    match public_err {
        Some(e) if !crypto_failed => Err(e),
        _ => Err(MessageError::NoRecipientKey {
            recipients: describe_recipients(&recips),
        }),
    }
}

/// The attempts, in order: recipients that name a key's certificate; then, for each key that
/// none names, every recipient of its algorithm and curve.
fn candidates<'k>(
    recips: &[Recip<'_>],
    keys: &'k [DecryptionKey],
) -> Result<(Vec<Candidate<'k>>, Vec<Candidate<'k>>), LimitExceeded> {
    let (mut named, mut by_type) = (Vec::new(), Vec::new());
    for key in keys {
        let cert: Vec<&CertDer> = key.certificate().into_iter().collect();
        // The certificate's identifiers are read once, not once per recipient.
        let index = certid::CertIndex::new(&cert);
        let names = |rid: &Tlv<'_>| !index.all(rid, &cert).is_empty();
        let before = named.len();
        for (i, rec) in recips.iter().enumerate() {
            match &rec.kind {
                RecipKind::Ktri { rid, .. } if names(rid) => named.push(Candidate {
                    key,
                    recip: i,
                    rek: 0,
                }),
                RecipKind::Kari { keys: reks, .. } => {
                    for (j, (rid, _)) in reks.iter().enumerate() {
                        if names(rid) {
                            named.push(Candidate {
                                key,
                                recip: i,
                                rek: j,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        // Trial decryption is for keys without a certificate only.
        if named.len() > before || !cert.is_empty() {
            continue;
        }
        let before = by_type.len();
        for (i, rec) in recips.iter().enumerate() {
            match (&rec.kind, key.kind()) {
                (RecipKind::Ktri { .. }, KeyKind::Rsa { .. }) => by_type.push(Candidate {
                    key,
                    recip: i,
                    rek: 0,
                }),
                (
                    RecipKind::Kari {
                        curve, keys: reks, ..
                    },
                    KeyKind::Ec { curve: ours },
                ) if *curve == Some(ours) => {
                    by_type.extend((0..reks.len()).map(|j| Candidate {
                        key,
                        recip: i,
                        rek: j,
                    }));
                }
                _ => {}
            }
            LimitExceeded::check(
                "recipients to try a key without a certificate on",
                by_type.len() - before,
                LIMITS.trial_decryptions,
            )?;
        }
    }
    Ok((named, by_type))
}

/// The size of the stand-in key for a failed RSA unwrap (RC2: a 128-bit key).
fn random_key_len(cipher: ContentCipher) -> usize {
    match cipher {
        ContentCipher::Rc2Cbc(_) => 16,
        c => c.key_len(),
    }
}

/// Who a successful attempt decrypted for.
fn recipient_name(c: &Candidate<'_>, recips: &[Recip<'_>]) -> Result<String, MessageError> {
    if let Some(cert) = c.key.certificate() {
        return Ok(certinfo::primary_address(&certinfo::parse(cert)?));
    }
    let rid = match &recips[c.recip].kind {
        RecipKind::Ktri { rid, .. } => Some(rid),
        RecipKind::Kari { keys, .. } => keys.get(c.rek).map(|(rid, _)| rid),
        RecipKind::Other => None,
    };
    Ok(rid.map(describe_rid).unwrap_or_default())
}

fn describe_recipients(recips: &[Recip<'_>]) -> String {
    let mut out: Vec<String> = Vec::new();
    for r in recips {
        match &r.kind {
            RecipKind::Ktri { rid, .. } => out.push(describe_rid(rid)),
            RecipKind::Kari { keys, .. } => {
                out.extend(keys.iter().map(|(rid, _)| describe_rid(rid)))
            }
            RecipKind::Other => out.push(format!("{} recipient", r.alg_name)),
        }
    }
    out.join(", ")
}

/// A recipient identifier for people: `serial … from ISSUER` or `key id …`.
fn describe_rid(t: &Tlv<'_>) -> String {
    match t.tag {
        TAG_SEQUENCE => {
            let mut c = t.children();
            let issuer = c.next().ok().flatten();
            let serial = c.next().ok().flatten();
            let serial = serial.map(|s| hex::encode(s.content)).unwrap_or_default();
            match issuer.and_then(|i| certinfo::format_name(i.raw).ok()) {
                Some(name) => format!("serial {serial} from {name}"),
                None => format!("serial {serial}"),
            }
        }
        // rKeyId [0] { subjectKeyIdentifier … } of a key agreement.
        0xa0 => {
            let ski = t.children().next().ok().flatten();
            format!(
                "key id {}",
                ski.map(|s| hex::encode(s.content)).unwrap_or_default()
            )
        }
        _ => format!("key id {}", hex::encode(t.content)),
    }
}

/// Unwraps the content-encryption key of recipient `rec` (encrypted key `rek` of a key
/// agreement) with `key`.
async fn unwrap(
    engine: &CryptoEngine,
    rec: &Recip<'_>,
    rek: usize,
    key: &DecryptionKey,
) -> Result<Secret, MessageError> {
    match &rec.kind {
        RecipKind::Ktri { alg, wrapped, .. } => {
            let padding = rsa_padding(alg)?;
            Ok(key.decrypt_key(&padding, wrapped).await?)
        }
        RecipKind::Kari {
            originator_point,
            ukm,
            alg,
            keys,
            ..
        } => {
            let Some((_, wrapped)) = keys.get(rek) else {
                return Err(MessageError::Malformed(
                    "no such recipientEncryptedKey".into(),
                ));
            };
            let mut ar = alg.children();
            let kdf_oid = read_oid(&mut ar, "keyEncryptionAlgorithm")?;
            let kdf = match kdf_oid {
                oids::DH_SHA1KDF => DigestAlg::Sha1,
                oids::DH_SHA224KDF => DigestAlg::Sha224,
                oids::DH_SHA256KDF => DigestAlg::Sha256,
                oids::DH_SHA384KDF => DigestAlg::Sha384,
                oids::DH_SHA512KDF => DigestAlg::Sha512,
                other => {
                    return Err(MessageError::Unsupported(format!(
                        "key agreement {}",
                        oids::name(&other)
                    )));
                }
            };
            let wrap_alg = ar.read_tag(TAG_SEQUENCE, "key wrap algorithm")?;
            let wrap_oid = read_oid(&mut wrap_alg.children(), "key wrap OID")?;
            let kek_len = match wrap_oid {
                oids::AES128_WRAP => 16,
                oids::AES192_WRAP => 24,
                oids::AES256_WRAP => 32,
                // RFC 3217 3DES wrap (OpenSSL 1.1.1 sent it with 3DES content): a 24-byte KEK.
                oids::CMS3DES_WRAP => 24,
                other => {
                    return Err(MessageError::Unsupported(format!(
                        "key wrap {}",
                        oids::name(&other)
                    )));
                }
            };
            let z = key.ecdh(originator_point).await?;
            // SharedInfo's keyInfo is the wrap AlgorithmIdentifier as received.
            let shared = ecc_cms_shared_info(wrap_alg.raw, ukm.as_deref(), kek_len);
            let kek = engine
                .key_transport
                .kdf_x963(kdf, z.expose(), &shared, kek_len)?;
            Ok(if wrap_oid == oids::CMS3DES_WRAP {
                engine.key_transport.des3_unwrap(kek.expose(), wrapped)?
            } else {
                engine.key_transport.aes_unwrap(kek.expose(), wrapped)?
            })
        }
        RecipKind::Other => Err(MessageError::Unsupported(format!(
            "{} recipients",
            rec.alg_name
        ))),
    }
}

/// The named curve of an EC public key: from the algorithm's parameters when given, else
/// from the size of the point (uncompressed or compressed).
fn ec_curve(params: Option<&Oid>, point: &[u8]) -> Option<&'static str> {
    if let Some(p) = params {
        return match p.to_string().as_str() {
            "1.2.840.10045.3.1.7" => Some("P-256"),
            "1.3.132.0.34" => Some("P-384"),
            "1.3.132.0.35" => Some("P-521"),
            _ => None,
        };
    }
    match point.len() {
        65 | 33 => Some("P-256"),
        97 | 49 => Some("P-384"),
        133 | 67 => Some("P-521"),
        _ => None,
    }
}

fn parse_recipient<'a>(ri: &Tlv<'a>) -> Result<Recip<'a>, MessageError> {
    match ri.tag {
        TAG_SEQUENCE => {
            let mut r = ri.children();
            r.read("version")?;
            let rid = r.read("rid")?;
            let alg = r.read_tag(TAG_SEQUENCE, "keyEncryptionAlgorithm")?;
            let wrapped = r
                .read_tag(TAG_OCTET_STRING, "encryptedKey")?
                .octets()?
                .into_owned();
            let alg_name = oids::name(&read_oid(&mut alg.children(), "alg")?);
            Ok(Recip {
                kind: RecipKind::Ktri { rid, alg, wrapped },
                alg_name,
            })
        }
        0xa1 => {
            let mut r = ri.children();
            r.read("version")?;
            let originator = r.read_tag(0xa0, "originator")?;
            let orig = originator.children().read("originator key")?;
            let (originator_point, curve) = if orig.tag == 0xa1 {
                let mut or = orig.children();
                let oalg = or.read_tag(TAG_SEQUENCE, "originator algorithm")?;
                let mut oar = oalg.children();
                read_oid(&mut oar, "originator algorithm")?;
                // Parameters are absent or NULL (RFC 5753), or name the curve.
                let params = match oar.next()? {
                    Some(p) if p.tag == asn1::TAG_OID => oids::parse(p.content),
                    _ => None,
                };
                let bits = or
                    .read_tag(asn1::TAG_BIT_STRING, "originator public key")?
                    .octets()?;
                let point = bits.get(1..).unwrap_or_default().to_vec();
                let curve = ec_curve(params.as_ref(), &point);
                (point, curve)
            } else {
                return Err(MessageError::Unsupported(
                    "key agreement with a static originator certificate".into(),
                ));
            };
            let mut ukm = None;
            let mut next = r.read("keyEncryptionAlgorithm")?;
            if next.tag == 0xa1 {
                ukm = Some(
                    next.children()
                        .read_tag(TAG_OCTET_STRING, "ukm")?
                        .octets()?
                        .into_owned(),
                );
                next = r.read("keyEncryptionAlgorithm")?;
            }
            let alg = next.expect(TAG_SEQUENCE, "keyEncryptionAlgorithm")?;
            let reks = r.read_tag(TAG_SEQUENCE, "recipientEncryptedKeys")?;
            let mut keys = Vec::new();
            let mut kr = reks.children();
            while let Some(rek) = kr.next()? {
                LimitExceeded::check(RECIPIENTS, keys.len() + 1, LIMITS.recipient_infos)?;
                let mut rr = rek.children();
                let rid = rr.read("rid")?;
                let ek = rr
                    .read_tag(TAG_OCTET_STRING, "encryptedKey")?
                    .octets()?
                    .into_owned();
                keys.push((rid, ek));
            }
            let alg_name = oids::name(&read_oid(&mut alg.children(), "alg")?);
            Ok(Recip {
                kind: RecipKind::Kari {
                    originator_point,
                    curve,
                    ukm,
                    alg,
                    keys,
                },
                alg_name,
            })
        }
        0xa2 => Ok(Recip {
            kind: RecipKind::Other,
            alg_name: "kekri".into(),
        }),
        0xa3 => Ok(Recip {
            kind: RecipKind::Other,
            alg_name: "pwri".into(),
        }),
        _ => Ok(Recip {
            kind: RecipKind::Other,
            alg_name: "ori".into(),
        }),
    }
}

fn rsa_padding(alg: &Tlv<'_>) -> Result<RsaPadding, MessageError> {
    let mut r = alg.children();
    let oid = read_oid(&mut r, "keyEncryptionAlgorithm")?;
    match oid {
        oids::RSA_ENCRYPTION => Ok(RsaPadding::Pkcs1v15),
        oids::RSAES_OAEP => {
            // RSAES-OAEP-params: [0] hash (default SHA-1), [1] MGF1(hash) (default SHA-1), [2] label.
            let (mut hash, mut mgf1, mut label) = (DigestAlg::Sha1, DigestAlg::Sha1, Vec::new());
            if let Some(params) = r.next()? {
                let mut pr = params.children();
                while let Some(p) = pr.next()? {
                    let inner = p.children().read_tag(TAG_SEQUENCE, "OAEP parameter")?;
                    let mut ir = inner.children();
                    let poid = read_oid(&mut ir, "OAEP parameter OID")?;
                    match p.tag {
                        0xa0 => {
                            hash = oids::digest_from_oid(&poid).ok_or_else(|| {
                                MessageError::Unsupported(format!(
                                    "OAEP hash {}",
                                    oids::name(&poid)
                                ))
                            })?;
                        }
                        0xa1 => {
                            let h = ir.read_tag(TAG_SEQUENCE, "MGF1 hash")?;
                            let hoid = read_oid(&mut h.children(), "MGF1 hash OID")?;
                            mgf1 = oids::digest_from_oid(&hoid).ok_or_else(|| {
                                MessageError::Unsupported(format!(
                                    "MGF1 hash {}",
                                    oids::name(&hoid)
                                ))
                            })?;
                        }
                        0xa2 => {
                            if let Some(l) = ir.next()? {
                                label = l.octets()?.into_owned();
                            }
                        }
                        _ => {}
                    }
                }
            }
            Ok(RsaPadding::Oaep { hash, mgf1, label })
        }
        other => Err(MessageError::Unsupported(format!(
            "key transport {}",
            oids::name(&other)
        ))),
    }
}

/// The content cipher, IV (or GCM nonce) and, for GCM, the ICV (tag) length from a
/// contentEncryptionAlgorithm.
fn content_cipher(alg: &Tlv<'_>) -> Result<(ContentCipher, Vec<u8>, Option<usize>), MessageError> {
    let mut r = alg.children();
    let oid = read_oid(&mut r, "contentEncryptionAlgorithm")?;
    let params = r.next()?;
    let iv_of = |p: Option<Tlv<'_>>| -> Result<Vec<u8>, MessageError> {
        let p = p.ok_or_else(|| MessageError::Malformed("cipher parameters missing".into()))?;
        Ok(p.expect(TAG_OCTET_STRING, "IV")?.octets()?.into_owned())
    };
    let cipher = match oid {
        oids::AES128_CBC => ContentCipher::Aes128Cbc,
        oids::AES192_CBC => ContentCipher::Aes192Cbc,
        oids::AES256_CBC => ContentCipher::Aes256Cbc,
        oids::DES_EDE3_CBC => ContentCipher::DesEde3Cbc,
        oids::DES_CBC => ContentCipher::DesCbc,
        oids::AES128_GCM | oids::AES192_GCM | oids::AES256_GCM => {
            let p =
                params.ok_or_else(|| MessageError::Malformed("GCM parameters missing".into()))?;
            // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
            let mut pr = p.expect(TAG_SEQUENCE, "GCM parameters")?.children();
            let nonce = pr
                .read_tag(TAG_OCTET_STRING, "GCM nonce")?
                .octets()?
                .into_owned();
            let icv_len = match pr.next()? {
                Some(t) => t
                    .expect(asn1::TAG_INTEGER, "GCM ICV length")?
                    .small_uint()?,
                None => 12,
            };
            if !(12..=16).contains(&icv_len) {
                return Err(MessageError::Malformed(format!(
                    "GCM ICV length {icv_len}: must be 12 to 16 bytes"
                )));
            }
            let c = match oid {
                oids::AES128_GCM => ContentCipher::Aes128Gcm,
                oids::AES192_GCM => ContentCipher::Aes192Gcm,
                _ => ContentCipher::Aes256Gcm,
            };
            return Ok((c, nonce, Some(icv_len as usize)));
        }
        oids::RC2_CBC => {
            // RC2-CBC-Parameter ::= SEQUENCE { rc2ParameterVersion INTEGER OPTIONAL, iv OCTET STRING }
            let p =
                params.ok_or_else(|| MessageError::Malformed("RC2 parameters missing".into()))?;
            let (bits, iv) = if p.tag == TAG_SEQUENCE {
                let mut pr = p.children();
                let first = pr.read("RC2 parameters")?;
                if first.tag == asn1::TAG_INTEGER {
                    let v = first.small_uint()?;
                    let bits = match v {
                        160 => 40,
                        120 => 64,
                        58 => 128,
                        v if v >= 256 => v as u16,
                        v => {
                            return Err(MessageError::Unsupported(format!(
                                "RC2 parameter version {v}"
                            )));
                        }
                    };
                    (
                        bits,
                        pr.read_tag(TAG_OCTET_STRING, "RC2 IV")?
                            .octets()?
                            .into_owned(),
                    )
                } else {
                    (
                        32,
                        first
                            .expect(TAG_OCTET_STRING, "RC2 IV")?
                            .octets()?
                            .into_owned(),
                    )
                }
            } else {
                (32, iv_of(Some(p))?)
            };
            return Ok((ContentCipher::Rc2Cbc(bits), iv, None));
        }
        other => {
            return Err(MessageError::Unsupported(format!(
                "content encryption {}",
                oids::name(&other)
            )));
        }
    };
    Ok((cipher, iv_of(params)?, None))
}
