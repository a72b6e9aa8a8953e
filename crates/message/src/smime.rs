//! Whole S/MIME messages: sign, encrypt, decrypt, and `open` (what a mail client does with a
//! received message: peel every layer in any order, verify each signature, return the
//! innermost content with a report).

use std::borrow::Cow;

use smimekit_core::{CertDer, CryptoEngine, DecryptionKey, DigestAlg, PrivateKey};

use crate::asn1::{self, TAG_SEQUENCE, Tlv};
use crate::envelope::{self, EncryptOptions};
use crate::mime::{self, SmimeKind};
use crate::report::{Layer, LayerKind, OpenReport, SignerReport};
use crate::sender::Senders;
use crate::signed::{self, ContentDigests, SignOptions, SignedData, VerifyContext, read_oid};
use crate::{MessageError, oids};

/// The deepest nesting `open` peels before giving up (hostile input): [`smimekit_pki::LIMITS`]`.layers`.
pub const MAX_LAYERS: usize = smimekit_pki::LIMITS.layers;

/// Signs a message: detached `multipart/signed` or opaque `application/pkcs7-mime`.
///
/// A full RFC 5322 message keeps its envelope headers (From, To, Subject…) outside; its
/// content headers and body become the signed entity, in canonical CRLF, 7-bit form.
pub async fn sign_message(
    engine: &CryptoEngine,
    key: &dyn PrivateKey,
    message: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>, MessageError> {
    let (mut outer, inner) = mime::split_for_protection(message)?;
    let inner = mime::to_7bit_safe(&inner);
    let der = signed::sign(engine, key, &inner, opts).await?;
    outer.push(("MIME-Version".into(), "1.0".into()));
    Ok(if opts.detached {
        mime::build_signed_multipart(&inner, &der, opts.digest.micalg(), &outer)
    } else {
        mime::build_pkcs7_mime("signed-data", &der, &outer)
    })
}

/// Encrypts a message to the given certificates.
pub fn encrypt_message(
    engine: &CryptoEngine,
    recipients: &[CertDer],
    message: &[u8],
    opts: &EncryptOptions,
) -> Result<Vec<u8>, MessageError> {
    let (mut outer, inner) = mime::split_for_protection(message)?;
    let der = envelope::encrypt(engine, recipients, &inner, opts)?;
    outer.push(("MIME-Version".into(), "1.0".into()));
    let smime_type = if opts.cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    Ok(mime::build_pkcs7_mime(smime_type, &der, &outer))
}

/// What `open` returns: the report and the innermost content.
#[derive(Debug)]
pub struct Opened {
    pub report: OpenReport,
    pub content: Vec<u8>,
}

/// One peeled layer: its report, the content inside, and that content's SHA-256 when a
/// signature check already computed it.
struct Peeled {
    layer: Layer,
    content: Vec<u8>,
    sha256: Option<Vec<u8>>,
}

impl From<(Layer, Vec<u8>)> for Peeled {
    fn from((layer, content): (Layer, Vec<u8>)) -> Self {
        Self {
            layer,
            content,
            sha256: None,
        }
    }
}

/// Options for [`open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub verify: VerifyContext,
    /// Content for a raw CMS detached signature (not needed for multipart/signed).
    pub detached_content: Option<Vec<u8>>,
    /// Stop after the first layer (what `decrypt` does).
    pub single_layer: bool,
}

/// Peels every layer of `input`, verifying signatures and decrypting with `keys`.
pub async fn open(
    engine: &CryptoEngine,
    input: Vec<u8>,
    keys: &[DecryptionKey],
    opts: &OpenOptions,
) -> Result<Opened, MessageError> {
    let mut ctx = opts.verify.clone();
    let mut current = input;
    let mut layers: Vec<Layer> = Vec::new();
    let mut detached = opts.detached_content.clone();
    // SHA-256 of `current`, when a signature check already computed it.
    let mut current_sha256 = None;
    loop {
        let first = layers.is_empty();
        let Some(peeled) = peel(engine, &current, keys, &mut ctx, first, detached.take()).await?
        else {
            break;
        };
        if layers.len() == MAX_LAYERS {
            return Err(MessageError::TooDeep(MAX_LAYERS));
        }
        if !peeled.layer.signers.is_empty() {
            // The sender is the outermost signer's business: an inner signature (forwarded,
            // or signed again by someone else) is judged on itself.
            ctx.senders = Senders::Unknown;
        }
        layers.push(peeled.layer);
        current = peeled.content;
        current_sha256 = peeled.sha256;
        if opts.single_layer {
            break;
        }
    }
    // Plain MIME is opened as it is: nothing is signed, so the verdict is null.
    let valid = verdict(&layers);
    let signer = layers
        .iter()
        .find(|l| !l.signers.is_empty())
        .and_then(|l| l.signers[0].address.clone());
    let digest = match current_sha256 {
        Some(d) => d,
        None => engine.primitives.digest(DigestAlg::Sha256, &[&current])?,
    };
    Ok(Opened {
        report: OpenReport {
            valid,
            signer,
            content_sha256: hex::encode(digest),
            layers,
        },
        content: current,
    })
}

/// Peels one layer; `None` when `data` is not (or no longer) S/MIME.
async fn peel(
    engine: &CryptoEngine,
    data: &[u8],
    keys: &[DecryptionKey],
    ctx: &mut VerifyContext,
    first: bool,
    detached: Option<Vec<u8>>,
) -> Result<Option<Peeled>, MessageError> {
    let entity = match mime::parse(data) {
        Ok(e) if !e.headers.is_empty() => e,
        parsed => {
            // Not a MIME entity: raw CMS (DER/BER or PEM), or plain content.
            if let Some(der) = raw_cms(data) {
                return cms_layer(engine, &der, keys, ctx, detached).await.map(Some);
            }
            if first {
                // Bytes that start as DER does but do not parse (cut short, nested too deep):
                // the reason is the ASN.1 one, not "not MIME".
                let trimmed = data.trim_ascii_start();
                if trimmed.first() == Some(&TAG_SEQUENCE)
                    && let Err(e) = asn1::parse_single(trimmed)
                {
                    return Err(e.into());
                }
                return Err(match parsed {
                    Err(e) => MessageError::Mime(e),
                    Ok(_) => MessageError::Malformed("not a MIME entity nor CMS".into()),
                });
            }
            return Ok(None);
        }
    };
    if first && ctx.senders == Senders::Unknown {
        ctx.senders = Senders::of(&entity);
    }
    match mime::smime_kind(&entity) {
        Some(SmimeKind::SignedMultipart) => {
            let parts = mime::multipart_parts(&entity)?;
            let [content, sig, ..] = parts.as_slice() else {
                return Err(MessageError::Malformed(
                    "multipart/signed needs two parts (content and signature)".into(),
                ));
            };
            let sig_entity = mime::parse(sig)?;
            let der = decode_cms_body(&sig_entity)?;
            let ci = asn1::parse_single(&der)?;
            let (oid, explicit) = content_info(&ci)?;
            if oid != oids::ID_SIGNED_DATA {
                return Err(MessageError::Malformed(format!(
                    "the signature part holds {}, not signedData",
                    oids::name(&oid)
                )));
            }
            let sd = SignedData::parse(&explicit)?;
            // The signature covers the first part in canonical (CRLF) form (RFC 8551 §3.1.1).
            // Bytes signed with bare LFs are not accepted: OpenSSL (text mode), NSS and
            // Thunderbird all reject them, and the corpus expects that.
            let canonical = mime::canonicalize_crlf(content);
            let mut digests = ContentDigests::default();
            let signers = sd.verify(engine, &canonical, ctx, &mut digests);
            Ok(Some(Peeled {
                layer: signed_layer(LayerKind::SignedDetached, signers),
                content: canonical.into_owned(),
                sha256: digests.sha256().map(<[u8]>::to_vec),
            }))
        }
        Some(SmimeKind::Pkcs7Mime) | Some(SmimeKind::Pkcs7Signature) => {
            let der = decode_cms_body(&entity)?;
            cms_layer(engine, &der, keys, ctx, detached).await.map(Some)
        }
        None if first => wrapper_layer(&entity),
        None => Ok(None),
    }
}

/// An outermost plain multipart (mailing-list footer added to a signed message, EFAIL-style
/// multipart/alternative, a PGP/MIME signature around S/MIME) whose direct child is S/MIME:
/// peel into the first such child and say, in the report, that the rest is unprotected.
fn wrapper_layer(entity: &mime::Entity<'_>) -> Result<Option<Peeled>, MessageError> {
    let ct = entity.content_type();
    if !ct.mime_type.starts_with("multipart/") {
        return Ok(None);
    }
    let parts = mime::multipart_parts(entity)?;
    for (i, part) in parts.iter().enumerate() {
        let Ok(child) = mime::parse(part) else {
            continue;
        };
        if matches!(
            mime::smime_kind(&child),
            Some(SmimeKind::SignedMultipart | SmimeKind::Pkcs7Mime)
        ) {
            let layer = Layer {
                kind: LayerKind::MimeWrapper,
                algorithm: ct.mime_type.clone(),
                key_algorithms: Vec::new(),
                recipient: None,
                signers: Vec::new(),
                valid: None,
                reason: Some(format!(
                    "only part {} of {} of the {} is S/MIME; the other parts are not protected",
                    i + 1,
                    parts.len(),
                    ct.mime_type
                )),
            };
            return Ok(Some((layer, part.to_vec()).into()));
        }
    }
    Ok(None)
}

/// Decodes the body of an `application/pkcs7-*` entity to DER/BER bytes.
fn decode_cms_body(entity: &mime::Entity<'_>) -> Result<Vec<u8>, MessageError> {
    let body = entity.decoded_body()?;
    if body.is_empty() {
        return Err(MessageError::Malformed("the CMS body is empty".into()));
    }
    // Borrowed means the body is already the DER/BER object: keep it, with no copy.
    Ok(match raw_cms(&body) {
        Some(Cow::Owned(decoded)) => decoded,
        Some(Cow::Borrowed(der)) if der.len() != body.len() => der.to_vec(),
        _ => body,
    })
}

/// Recognises a bare CMS object: BER/DER starting with a SEQUENCE, or PEM armour.
fn raw_cms(data: &[u8]) -> Option<Cow<'_, [u8]>> {
    let trimmed = data.trim_ascii_start();
    if trimmed.first() == Some(&TAG_SEQUENCE) {
        let ci = asn1::parse_single(trimmed).ok()?;
        let oid = read_oid(&mut ci.children(), "contentType").ok()?;
        let known = [
            oids::ID_DATA,
            oids::ID_SIGNED_DATA,
            oids::ID_ENVELOPED_DATA,
            oids::ID_AUTH_ENVELOPED_DATA,
            oids::ID_DIGESTED_DATA,
            oids::ID_ENCRYPTED_DATA,
            oids::ID_COMPRESSED_DATA,
        ];
        return known.contains(&oid).then_some(Cow::Borrowed(trimmed));
    }
    let text = std::str::from_utf8(trimmed).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let rest = &text[begin..];
    let label_end = rest[11..].find("-----")? + 11;
    let label = &rest[11..label_end];
    if !matches!(label, "PKCS7" | "CMS" | "PKCS #7 SIGNED DATA") {
        return None;
    }
    let body_start = label_end + 5;
    let end = rest.find("-----END ")?;
    let b64: String = rest.get(body_start..end)?.split_whitespace().collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    raw_cms(&der)?;
    Some(Cow::Owned(der))
}

/// Splits a ContentInfo into its type and `[0]` element.
fn content_info<'a>(ci: &Tlv<'a>) -> Result<(const_oid::ObjectIdentifier, Tlv<'a>), MessageError> {
    let ci = ci.expect(TAG_SEQUENCE, "ContentInfo")?;
    let mut r = ci.children();
    let oid = read_oid(&mut r, "contentType")?;
    let explicit = r.read_tag(0xa0, "content")?;
    Ok((oid, explicit))
}

async fn cms_layer(
    engine: &CryptoEngine,
    der: &[u8],
    keys: &[DecryptionKey],
    ctx: &VerifyContext,
    detached: Option<Vec<u8>>,
) -> Result<Peeled, MessageError> {
    let ci = asn1::parse_single(der)?;
    let (oid, explicit) = content_info(&ci)?;
    match oid {
        oids::ID_SIGNED_DATA => {
            let sd = SignedData::parse(&explicit)?;
            let (content, kind) = match (&sd.econtent, detached) {
                (Some(c), _) => (c.to_vec(), LayerKind::SignedOpaque),
                (None, Some(d)) => (d, LayerKind::SignedDetached),
                // No signer and no content: a certificates-only bundle. Nothing is signed.
                (None, None) if sd.signer_count() == 0 => (Vec::new(), LayerKind::SignedOpaque),
                (None, None) => {
                    return Err(MessageError::Malformed(
                        "detached signature without its content (give the content separately)"
                            .into(),
                    ));
                }
            };
            let mut digests = ContentDigests::default();
            let signers = sd.verify(engine, &content, ctx, &mut digests);
            Ok(Peeled {
                layer: signed_layer(kind, signers),
                sha256: digests.sha256().map(<[u8]>::to_vec),
                content,
            })
        }
        oids::ID_ENVELOPED_DATA | oids::ID_AUTH_ENVELOPED_DATA => {
            let auth = oid == oids::ID_AUTH_ENVELOPED_DATA;
            if keys.is_empty() {
                return Err(MessageError::NeedsKey);
            }
            let d = envelope::decrypt(engine, &explicit, auth, keys).await?;
            let layer = Layer {
                kind: if auth {
                    LayerKind::AuthEnveloped
                } else {
                    LayerKind::Enveloped
                },
                algorithm: d.cipher,
                key_algorithms: d.key_algorithms,
                recipient: Some(d.recipient),
                signers: Vec::new(),
                valid: None,
                reason: None,
            };
            Ok((layer, d.content).into())
        }
        oids::ID_DATA => {
            let content = explicit.children().read("data")?.octets()?.into_owned();
            Ok((
                Layer {
                    kind: LayerKind::Data,
                    algorithm: String::new(),
                    key_algorithms: Vec::new(),
                    recipient: None,
                    signers: Vec::new(),
                    valid: None,
                    reason: None,
                },
                content,
            )
                .into())
        }
        oids::ID_DIGESTED_DATA => digested_layer(engine, &explicit),
        other => Err(MessageError::Unsupported(format!(
            "CMS content type {}",
            oids::name(&other)
        ))),
    }
}

/// DigestedData (RFC 5652 §7): check the digest, return the content.
fn digested_layer(engine: &CryptoEngine, explicit: &Tlv<'_>) -> Result<Peeled, MessageError> {
    let dd = explicit.children().read_tag(TAG_SEQUENCE, "DigestedData")?;
    let mut r = dd.children();
    r.read("version")?;
    let alg = r.read_tag(TAG_SEQUENCE, "digestAlgorithm")?;
    let oid = read_oid(&mut alg.children(), "digest")?;
    let digest_alg = oids::digest_from_oid(&oid)
        .ok_or_else(|| MessageError::Unsupported(format!("digest {}", oids::name(&oid))))?;
    let encap = r.read_tag(TAG_SEQUENCE, "encapContentInfo")?;
    let mut er = encap.children();
    read_oid(&mut er, "eContentType")?;
    let content = match er.next()? {
        Some(e) => e.children().read("eContent")?.octets()?.into_owned(),
        None => Vec::new(),
    };
    let expected = r.read_tag(asn1::TAG_OCTET_STRING, "digest")?.octets()?;
    let actual = engine.primitives.digest(digest_alg, &[&content])?;
    let ok = actual.as_slice() == &*expected;
    Ok((
        Layer {
            kind: LayerKind::Digested,
            algorithm: digest_alg.name().into(),
            key_algorithms: Vec::new(),
            recipient: None,
            signers: Vec::new(),
            // A digest is not a signature: anyone can compute one. A matching digest says
            // nothing about who sent the content (null), a mismatch says it was damaged.
            valid: (!ok).then_some(false),
            reason: Some(if ok {
                "digested, not signed: the digest matches, but anyone could have computed it"
                    .to_string()
            } else {
                "digest mismatch: the content was changed".to_string()
            }),
        },
        content,
    )
        .into())
}

/// The message's verdict: true only when some layer has a signer and nothing failed; false
/// when any layer failed; null when no layer holds a signer.
fn verdict(layers: &[Layer]) -> Option<bool> {
    if layers.iter().any(|l| l.valid == Some(false)) {
        Some(false)
    } else if layers.iter().any(|l| !l.signers.is_empty()) {
        Some(layers.iter().all(|l| l.valid != Some(false)))
    } else {
        None
    }
}

fn signed_layer(kind: LayerKind, signers: Vec<SignerReport>) -> Layer {
    if signers.is_empty() {
        // An empty SignedData signs nothing: not valid, not invalid.
        return Layer {
            kind,
            algorithm: String::new(),
            key_algorithms: Vec::new(),
            recipient: None,
            signers,
            valid: None,
            reason: Some("SignedData without signers: nothing is signed".into()),
        };
    }
    let valid = signers.iter().all(SignerReport::is_valid);
    let reason = signers.iter().find_map(|s| s.reason.clone());
    let mut digests: Vec<String> = signers.iter().map(|s| s.digest.clone()).collect();
    digests.dedup();
    Layer {
        kind,
        algorithm: digests.join(","),
        key_algorithms: Vec::new(),
        recipient: None,
        signers,
        valid: Some(valid),
        reason,
    }
}
