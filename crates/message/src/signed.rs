//! CMS SignedData (RFC 5652 §5): build with a [`PrivateKey`], verify into reports.
//!
//! Building always uses signed attributes (contentType, signingTime, messageDigest,
//! SMIMECapabilities) and identifies the signer by issuerAndSerialNumber, the form every
//! client reads. Verification accepts what others send: BER, several signers, signers
//! identified by subjectKeyIdentifier, no signed attributes, RSA/PSS/ECDSA/DSA.

use std::borrow::Cow;
use std::cell::OnceCell;

use const_oid::ObjectIdentifier as Oid;
use smimekit_core::{
    CertDer, ChainRequest, CryptoEngine, DigestAlg, KeyKind, PrivateKey, SignatureScheme,
};
use smimekit_pki::{LIMITS, LimitExceeded, ber, certinfo};

use crate::asn1::{self, Reader, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET, Tlv};
use crate::report::{SignerReport, SignerStatus};
use crate::sender::Senders;
use crate::{MessageError, certid, oids, time_fmt};

/// How to sign.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub digest: DigestAlg,
    /// RSA-PSS instead of PKCS#1 v1.5 (RSA keys only).
    pub pss: bool,
    /// Detached (multipart/signed) rather than encapsulated (opaque).
    pub detached: bool,
    /// The signingTime attribute, seconds since the Unix epoch.
    pub signing_time: i64,
    /// The certificates carried besides the signer's, nearest issuer first (the signer's
    /// chain; the service builds it with `smimekit_pki::chain`). Self-signed roots are left out.
    pub chain: Vec<CertDer>,
}

/// The content types, capabilities and algorithms we announce in SMIMECapabilities, most
/// preferred first (interop.md: without it Outlook falls back by build).
const CAPABILITIES: [Oid; 4] = [
    oids::AES256_CBC,
    oids::AES192_CBC,
    oids::AES128_CBC,
    oids::DES_EDE3_CBC,
];

/// Signs `content` and returns a DER ContentInfo holding SignedData.
pub async fn sign(
    engine: &CryptoEngine,
    key: &dyn PrivateKey,
    content: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>, MessageError> {
    let cert = key.certificate();
    let scheme = match key.kind() {
        KeyKind::Rsa { .. } if opts.pss => SignatureScheme::RsaPss(opts.digest),
        KeyKind::Rsa { .. } => SignatureScheme::RsaPkcs1(opts.digest),
        KeyKind::Ec { .. } => SignatureScheme::Ecdsa(opts.digest),
        KeyKind::Other => {
            return Err(MessageError::Unsupported(
                "signing with this key type (only RSA and EC keys sign)".into(),
            ));
        }
    };
    let digest = engine.primitives.digest(opts.digest, &[content])?;
    let digest_alg = asn1::seq(&[&oids::encode(&oids::digest_oid(opts.digest))]);

    let attr = |oid: Oid, value: Vec<u8>| {
        asn1::seq(&[&oids::encode(&oid), &asn1::constructed(TAG_SET, &[&value])])
    };
    let caps: Vec<Vec<u8>> = CAPABILITIES
        .iter()
        .map(|oid| asn1::seq(&[&oids::encode(oid)]))
        .collect();
    let caps_refs: Vec<&[u8]> = caps.iter().map(Vec::as_slice).collect();
    let signed_attrs = asn1::set_of(vec![
        attr(oids::ATTR_CONTENT_TYPE, oids::encode(&oids::ID_DATA)),
        attr(
            oids::ATTR_SIGNING_TIME,
            time_fmt::encode_time(opts.signing_time),
        ),
        attr(oids::ATTR_MESSAGE_DIGEST, asn1::octet_string(&digest)),
        attr(oids::ATTR_SMIME_CAPABILITIES, asn1::seq(&caps_refs)),
    ]);
    let attrs_digest = engine.primitives.digest(opts.digest, &[&signed_attrs])?;
    let signature = key.sign_digest(scheme, &attrs_digest).await?;

    let (issuer, serial) = certinfo::issuer_and_serial(cert)?;
    let sid = asn1::seq(&[&issuer, &asn1::encode(asn1::TAG_INTEGER, &serial)]);
    let sig_alg = signature_algorithm(scheme);
    // The signed attributes go in as [0] IMPLICIT: same bytes, different tag.
    let mut attrs_implicit = signed_attrs;
    attrs_implicit[0] = 0xa0;
    let signer_info = asn1::seq(&[
        &asn1::small_int(1),
        &sid,
        &digest_alg,
        &attrs_implicit,
        &sig_alg,
        &asn1::octet_string(&signature),
    ]);

    // The signer's certificate and its chain, without self-signed roots or repeats.
    let mut certs: Vec<&[u8]> = vec![cert.as_bytes()];
    for c in &opts.chain {
        let self_signed = certinfo::parse(c).map(|i| i.self_signed).unwrap_or(false);
        if !self_signed && !certs.contains(&c.as_bytes()) {
            certs.push(c.as_bytes());
        }
    }
    let encap = if opts.detached {
        asn1::seq(&[&oids::encode(&oids::ID_DATA)])
    } else {
        asn1::seq(&[
            &oids::encode(&oids::ID_DATA),
            &asn1::context_constructed(0, &[&asn1::octet_string(content)]),
        ])
    };
    let signed_data = asn1::seq(&[
        &asn1::small_int(1),
        &asn1::constructed(TAG_SET, &[&digest_alg]),
        &encap,
        &asn1::context_constructed(0, &certs),
        &asn1::constructed(TAG_SET, &[&signer_info]),
    ]);
    Ok(asn1::seq(&[
        &oids::encode(&oids::ID_SIGNED_DATA),
        &asn1::context_constructed(0, &[&signed_data]),
    ]))
}

fn signature_algorithm(scheme: SignatureScheme) -> Vec<u8> {
    match scheme {
        SignatureScheme::RsaPss(d) => {
            let hash = asn1::seq(&[&oids::encode(&oids::digest_oid(d))]);
            let mgf = asn1::seq(&[&oids::encode(&oids::MGF1), &hash]);
            let params = asn1::seq(&[
                &asn1::context_constructed(0, &[&hash]),
                &asn1::context_constructed(1, &[&mgf]),
                &asn1::context_constructed(2, &[&asn1::small_int(d.output_len() as u32)]),
            ]);
            asn1::seq(&[&oids::encode(&oids::RSASSA_PSS), &params])
        }
        SignatureScheme::Ecdsa(d) => {
            let oid = match d {
                DigestAlg::Sha1 => oids::ECDSA_WITH_SHA1,
                DigestAlg::Sha224 => oids::ECDSA_WITH_SHA224,
                DigestAlg::Sha384 => oids::ECDSA_WITH_SHA384,
                DigestAlg::Sha512 => oids::ECDSA_WITH_SHA512,
                _ => oids::ECDSA_WITH_SHA256,
            };
            asn1::seq(&[&oids::encode(&oid)])
        }
        // rsaEncryption with NULL parameters: what OpenSSL, NSS and Outlook all write and read.
        _ => asn1::seq(&[&oids::encode(&oids::RSA_ENCRYPTION), &asn1::null()]),
    }
}

/// What verification needs besides the message.
#[derive(Debug, Clone, Default)]
pub struct VerifyContext {
    pub anchors: Vec<CertDer>,
    /// Untrusted certificates that may complete a chain or identify a signer.
    pub extra_certs: Vec<CertDer>,
    pub crls: Vec<Vec<u8>>,
    /// Validation time, Unix seconds.
    pub at: i64,
    /// The message's `From:` and `Sender:` addresses, which the signer's certificate must name.
    pub senders: Senders,
    /// What the caller chose to accept beyond the defaults.
    pub policy: VerifyPolicy,
}

/// Exceptions to the verdict rules, each chosen by the caller (never a default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Accept SHA-1 signatures (and SHA-1 certificate signatures in the chain) for old mail;
    /// the report still says so. MD5 is never accepted.
    pub allow_sha1: bool,
    /// Accept a signer whose certificate does not name the message's sender; the report still
    /// says so.
    pub allow_address_mismatch: bool,
}

impl VerifyPolicy {
    /// The OpenSSL security level chain validation runs at: 1 (80 bits: RSA and DSA keys of at
    /// least 1024 bits, no MD5 or SHA-1 certificate signatures below the anchor), 0 when SHA-1
    /// is allowed.
    pub fn chain_security_level(&self) -> u8 {
        if self.allow_sha1 { 0 } else { 1 }
    }
}

/// Digests of one content, computed at most once per algorithm (several signers, and the
/// report's SHA-256, share them: a 10 MiB message is hashed once, not three times).
#[derive(Debug, Default)]
pub struct ContentDigests {
    computed: Vec<(DigestAlg, Vec<u8>)>,
}

impl ContentDigests {
    /// The digest of `content` (always the same content for one cache) under `alg`.
    pub fn of(
        &mut self,
        engine: &CryptoEngine,
        alg: DigestAlg,
        content: &[u8],
    ) -> Result<Vec<u8>, smimekit_core::EngineError> {
        if let Some((_, d)) = self.computed.iter().find(|(a, _)| *a == alg) {
            return Ok(d.clone());
        }
        let d = engine.primitives.digest(alg, &[content])?;
        self.computed.push((alg, d.clone()));
        Ok(d)
    }

    /// The SHA-256 digest, if it has been computed.
    pub fn sha256(&self) -> Option<&[u8]> {
        self.computed
            .iter()
            .find(|(a, _)| *a == DigestAlg::Sha256)
            .map(|(_, d)| d.as_slice())
    }
}

/// A parsed SignedData.
#[derive(Debug)]
pub struct SignedData<'a> {
    pub econtent_type: Oid,
    /// The encapsulated content, when present (opaque signing).
    pub econtent: Option<Cow<'a, [u8]>>,
    pub certificates: Vec<CertDer>,
    pub crls: Vec<Vec<u8>>,
    signer_infos: Vec<Tlv<'a>>,
    /// The index of `certificates` and the caller's certificates (keyed by that slice).
    index: OnceCell<((usize, usize), certid::CertIndex)>,
}

impl<'a> SignedData<'a> {
    /// Parses the `content` of a ContentInfo of type signedData (the `[0] EXPLICIT` element).
    pub fn parse(explicit: &Tlv<'a>) -> Result<Self, MessageError> {
        let sd = explicit.children().read_tag(TAG_SEQUENCE, "SignedData")?;
        let mut r = sd.children();
        r.read(asn1_what::VERSION)?;
        r.read_tag(TAG_SET, "digestAlgorithms")?;
        let encap = r.read_tag(TAG_SEQUENCE, "encapContentInfo")?;
        let mut er = encap.children();
        let econtent_type = read_oid(&mut er, "eContentType")?;
        let econtent = match er.next()? {
            Some(explicit) if explicit.tag == 0xa0 => {
                let inner = explicit.children().read("eContent")?;
                // Some producers put a SEQUENCE rather than an OCTET STRING here (PKCS#7 v1.5).
                Some(if inner.tag & 0x1f == TAG_OCTET_STRING {
                    inner.octets()?
                } else {
                    Cow::Borrowed(inner.content)
                })
            }
            _ => None,
        };
        let mut certificates = Vec::new();
        let mut crls = Vec::new();
        let mut signer_infos = Vec::new();
        while let Some(t) = r.next()? {
            match t.tag {
                // Every element is counted against its limit before it is kept or converted.
                0xa0 => {
                    let mut cr = t.children();
                    let mut n = 0;
                    while let Some(c) = cr.next()? {
                        n += 1;
                        LimitExceeded::check(
                            "certificates in one SignedData",
                            n,
                            LIMITS.certificates,
                        )?;
                        // Only X.509 certificates; attribute and other certificate choices are skipped.
                        if c.tag == TAG_SEQUENCE {
                            certificates.push(CertDer::new(ber::ber_to_der(c.raw)?));
                        }
                    }
                }
                0xa1 => {
                    let mut cr = t.children();
                    let mut n = 0;
                    while let Some(c) = cr.next()? {
                        n += 1;
                        LimitExceeded::check("CRLs in one SignedData", n, LIMITS.crls)?;
                        if c.tag == TAG_SEQUENCE {
                            crls.push(c.raw.to_vec());
                        }
                    }
                }
                TAG_SET => {
                    let mut sr = t.children();
                    while let Some(si) = sr.next()? {
                        LimitExceeded::check(
                            "SignerInfos in one SignedData",
                            signer_infos.len() + 1,
                            LIMITS.signer_infos,
                        )?;
                        signer_infos.push(si.expect(TAG_SEQUENCE, "SignerInfo")?);
                    }
                }
                other => {
                    return Err(MessageError::Malformed(format!(
                        "unexpected element with tag 0x{other:02x} in SignedData"
                    )));
                }
            }
        }
        Ok(Self {
            econtent_type,
            econtent,
            certificates,
            crls,
            signer_infos,
            index: OnceCell::new(),
        })
    }

    pub fn signer_count(&self) -> usize {
        self.signer_infos.len()
    }

    /// Verifies every signer over `content` (the encapsulated content, or the detached one).
    /// Digests of the content are computed once per algorithm and left in `digests`.
    pub fn verify(
        &self,
        engine: &CryptoEngine,
        content: &[u8],
        ctx: &VerifyContext,
        digests: &mut ContentDigests,
    ) -> Vec<SignerReport> {
        self.signer_infos
            .iter()
            .map(|si| self.verify_signer(engine, si, content, ctx, digests))
            .collect()
    }

    fn verify_signer(
        &self,
        engine: &CryptoEngine,
        si: &Tlv<'a>,
        content: &[u8],
        ctx: &VerifyContext,
        digests: &mut ContentDigests,
    ) -> SignerReport {
        let mut report = SignerReport {
            status: SignerStatus::Unsupported,
            address: None,
            subject: None,
            digest: String::new(),
            signature_algorithm: String::new(),
            signing_time: None,
            signature_ok: false,
            chain_ok: false,
            chain: Vec::new(),
            matches_from: None,
            sender: None,
            warnings: Vec::new(),
            reason: None,
        };
        if let Err(e) = self.check_signer(engine, si, content, ctx, digests, &mut report) {
            report.status = e.0;
            report.reason = Some(e.1);
        }
        report
    }

    fn check_signer(
        &self,
        engine: &CryptoEngine,
        si: &Tlv<'a>,
        content: &[u8],
        ctx: &VerifyContext,
        digests: &mut ContentDigests,
        report: &mut SignerReport,
    ) -> Result<(), (SignerStatus, String)> {
        let malformed = |e: &dyn std::fmt::Display| {
            (
                SignerStatus::BadAttributes,
                format!("malformed SignerInfo: {e}"),
            )
        };
        let mut r = si.children();
        r.read("version").map_err(|e| malformed(&e))?;
        let sid = r.read("sid").map_err(|e| malformed(&e))?;
        let digest_alg_tlv = r
            .read_tag(TAG_SEQUENCE, "digestAlgorithm")
            .map_err(|e| malformed(&e))?;
        let digest_oid =
            read_oid(&mut digest_alg_tlv.children(), "digest OID").map_err(|e| malformed(&e))?;
        report.digest = oids::name(&digest_oid);
        let signed_attrs = r.optional(0xa0).map_err(|e| malformed(&e))?;
        let sig_alg_tlv = r
            .read_tag(TAG_SEQUENCE, "signatureAlgorithm")
            .map_err(|e| malformed(&e))?;
        let signature = r
            .read("signature")
            .and_then(|t| t.expect(TAG_OCTET_STRING, "signature"))
            .and_then(|t| t.octets())
            .map_err(|e| malformed(&e))?;

        // Who signed: every certificate the identifier names, from the message and the
        // caller's, is a candidate (a decoy with the same issuer and serial must not hide the
        // real one).
        let candidates = self.signer_certificates(&sid, &ctx.extra_certs);
        let Some(first) = candidates.first() else {
            return Err((
                SignerStatus::MissingCertificate,
                "the signer's certificate is neither in the message nor among the given certificates"
                    .to_string(),
            ));
        };
        let describe = |cert: &CertDer, report: &mut SignerReport| {
            certinfo::parse(cert)
                .inspect(|info| {
                    report.address = Some(certinfo::primary_address(info));
                    report.subject = Some(info.subject.clone());
                })
                .map_err(|e| {
                    (
                        SignerStatus::MissingCertificate,
                        format!("signer certificate unreadable: {e}"),
                    )
                })
        };
        describe(first, report)?;

        let digest_alg = oids::digest_from_oid(&digest_oid).ok_or_else(|| {
            (
                SignerStatus::Unsupported,
                format!(
                    "digest algorithm {} is not supported",
                    oids::name(&digest_oid)
                ),
            )
        })?;
        let scheme = signature_scheme(&sig_alg_tlv, digest_alg)
            .map_err(|detail| (SignerStatus::Unsupported, detail))?;
        report.signature_algorithm = scheme.name();

        // What the signature covers: the DER signed attributes, or the content itself.
        let content_digest = digests
            .of(engine, digest_alg, content)
            .map_err(|e| (SignerStatus::Unsupported, e.to_string()))?;
        let signed_bytes: Cow<'_, [u8]> = match &signed_attrs {
            Some(attrs) => {
                self.check_attributes(attrs, &content_digest, report)?;
                let mut der = if attrs.indefinite {
                    ber::ber_to_der(attrs.raw).map_err(|e| malformed(&e))?
                } else {
                    attrs.raw.to_vec()
                };
                der[0] = TAG_SET;
                Cow::Owned(der)
            }
            None => Cow::Borrowed(content),
        };
        let mut cert = None;
        let mut engine_error = None;
        for candidate in &candidates {
            let Ok(spki) = certinfo::spki_der(candidate) else {
                continue;
            };
            match engine
                .verifier
                .verify(&spki, scheme, &signed_bytes, &signature)
            {
                Ok(true) => {
                    cert = Some((candidate.clone(), spki));
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    engine_error.get_or_insert(e.to_string());
                }
            }
        }
        let Some((cert, spki)) = cert else {
            if let Some(e) = engine_error {
                return Err((SignerStatus::Unsupported, e));
            }
            return Err((
                SignerStatus::BadSignature,
                if signed_attrs.is_some() {
                    "the signature over the signed attributes does not verify with the signer's key"
                } else {
                    "the signature does not match the content"
                }
                .to_string(),
            ));
        };
        report.signature_ok = true;
        let info = describe(&cert, report)?;
        if let Ok(pk) = engine.verifier.public_key_info(&spki) {
            match pk.algorithm.as_str() {
                "rsa" if pk.bits < 2048 => report.warnings.push(format!(
                    "the signer's RSA key has {} bits, under the 2048 that mail clients now require",
                    pk.bits
                )),
                "dsa" => report.warnings.push(
                    "the signer's key is DSA, which no current mail client signs with".into(),
                ),
                _ => {}
            }
        }

        // Chain.
        let mut intermediates = self.certificates.clone();
        intermediates.extend(ctx.extra_certs.iter().cloned());
        let mut crls = self.crls.clone();
        crls.extend(ctx.crls.iter().cloned());
        let outcome = engine.chain.validate(&ChainRequest {
            leaf: cert.clone(),
            intermediates,
            anchors: ctx.anchors.clone(),
            at: ctx.at,
            crls,
            smime_purpose: true,
            security_level: ctx.policy.chain_security_level(),
        });
        report.chain = outcome
            .path
            .iter()
            .map(|c| certinfo::parse(c).map(|i| i.subject).unwrap_or_default())
            .collect();
        if !outcome.trusted {
            return Err((
                SignerStatus::Untrusted,
                outcome
                    .reason
                    .unwrap_or_else(|| "no path to a trust anchor".into()),
            ));
        }
        report.chain_ok = true;
        check_usage(&info)?;

        // Weak digests: a good signature over MD5 or SHA-1 proves little (chosen-prefix
        // collisions), so they are invalid unless the caller accepts SHA-1 for old mail.
        let weak = [digest_alg, scheme.digest()]
            .into_iter()
            .find(|d| matches!(d, DigestAlg::Md5 | DigestAlg::Sha1));
        match weak {
            Some(DigestAlg::Md5) => {
                return Err((
                    SignerStatus::WeakAlgorithm,
                    "signed with MD5, which is broken: such a signature proves nothing".into(),
                ));
            }
            Some(_) if !ctx.policy.allow_sha1 => {
                return Err((
                    SignerStatus::WeakAlgorithm,
                    "signed with SHA-1, which is no longer accepted (collisions can be made); \
                     SHA-1 may be accepted for old mail"
                        .into(),
                ));
            }
            Some(_) => report
                .warnings
                .push("signed with SHA-1, accepted for old mail as asked".into()),
            None => {}
        }

        // The sender: the From (and Sender) address must be the signer's.
        let addresses = certinfo::mail_addresses(&info);
        if let Some(outcome) = ctx.senders.check(addresses) {
            report.matches_from = Some(outcome.is_ok());
            if let Err(sender) = outcome {
                let signer = if addresses.is_empty() {
                    "no address".to_string()
                } else {
                    addresses.join(", ")
                };
                let what = format!(
                    "the message is from {sender}, but the signer's certificate is for {signer}"
                );
                report.sender = Some(sender);
                if !ctx.policy.allow_address_mismatch {
                    return Err((SignerStatus::AddressMismatch, what));
                }
                report.warnings.push(format!("{what}; accepted as asked"));
            }
        }
        report.status = SignerStatus::Valid;
        Ok(())
    }

    fn check_attributes(
        &self,
        attrs: &Tlv<'_>,
        content_digest: &[u8],
        report: &mut SignerReport,
    ) -> Result<(), (SignerStatus, String)> {
        let bad = |s: String| (SignerStatus::BadAttributes, s);
        let mut content_type = Vec::new();
        let mut message_digest = Vec::new();
        let mut r = attrs.children();
        while let Some(attr) = r.next().map_err(|e| bad(e.to_string()))? {
            let mut ar = attr.children();
            let oid = read_oid(&mut ar, "attribute type").map_err(|e| bad(e.to_string()))?;
            let values = ar
                .read_tag(TAG_SET, "attribute values")
                .map_err(|e| bad(e.to_string()))?;
            let mut vals = Vec::new();
            let mut vr = values.children();
            while let Some(v) = vr.next().map_err(|e| bad(e.to_string()))? {
                vals.push(v);
            }
            match oid {
                oids::ATTR_CONTENT_TYPE => content_type.push(vals),
                oids::ATTR_MESSAGE_DIGEST => message_digest.push(vals),
                oids::ATTR_SIGNING_TIME => {
                    let [v] = vals.as_slice() else {
                        return Err(bad("signingTime must have exactly one value".into()));
                    };
                    let t = time_fmt::decode_time(v)
                        .ok_or_else(|| bad("signingTime is not a valid time".into()))?;
                    report.signing_time = Some(time_fmt::rfc3339(t));
                }
                _ => {}
            }
        }
        match content_type.as_slice() {
            [vals] => match vals.as_slice() {
                [v] if v.tag == TAG_OID && oids::parse(v.content) == Some(self.econtent_type) => {}
                [_] => {
                    return Err(bad(
                        "contentType attribute differs from the content's type".into()
                    ));
                }
                _ => {
                    return Err(bad(
                        "contentType attribute must have exactly one value".into()
                    ));
                }
            },
            [] => return Err(bad("signed attributes lack contentType".into())),
            _ => return Err(bad("contentType attribute appears more than once".into())),
        }
        match message_digest.as_slice() {
            [vals] => match vals.as_slice() {
                [v] if v.tag == TAG_OCTET_STRING => {
                    if v.content != content_digest {
                        return Err((
                            SignerStatus::BadSignature,
                            "message digest mismatch: the content was changed after signing".into(),
                        ));
                    }
                }
                _ => {
                    return Err(bad(
                        "messageDigest attribute must have exactly one OCTET STRING".into(),
                    ));
                }
            },
            [] => return Err(bad("signed attributes lack messageDigest".into())),
            _ => return Err(bad("messageDigest attribute appears more than once".into())),
        }
        Ok(())
    }

    /// Every certificate the signer identifier names: the message's first, then the caller's,
    /// each once.
    fn signer_certificates(&self, sid: &Tlv<'_>, extra: &[CertDer]) -> Vec<CertDer> {
        let all: Vec<&CertDer> = self.certificates.iter().chain(extra.iter()).collect();
        // Indexed once per SignedData and caller's certificates (`verify` passes the same
        // slice for every signer), so each signer costs a lookup.
        let key = (extra.as_ptr() as usize, extra.len());
        let index = match self.index.get() {
            Some((k, index)) if *k == key => index,
            _ => {
                let _ = self.index.set((key, certid::CertIndex::new(&all)));
                match self.index.get() {
                    Some((k, index)) if *k == key => index,
                    // Indexed earlier for other certificates: build one for these.
                    _ => &certid::CertIndex::new(&all),
                }
            }
        };
        let mut found: Vec<CertDer> = Vec::new();
        for c in index.all(sid, &all) {
            if !found.contains(c) {
                found.push(c.clone());
            }
        }
        found
    }
}

/// keyUsage, where present, must allow signing; extendedKeyUsage, where present, must allow
/// e-mail protection. (The chain validator checks the EKU of the issuers.)
fn check_usage(info: &certinfo::CertInfo) -> Result<(), (SignerStatus, String)> {
    if let Some(ku) = &info.key_usage
        && ku.0
            & (certinfo::KeyUsageBits::DIGITAL_SIGNATURE | certinfo::KeyUsageBits::NON_REPUDIATION)
            == 0
    {
        return Err((
            SignerStatus::WrongKeyUsage,
            "the certificate's keyUsage allows neither digitalSignature nor nonRepudiation".into(),
        ));
    }
    if let Some(eku) = &info.extended_key_usage {
        let ok = eku.iter().any(|o| {
            o == &oids::EKU_EMAIL_PROTECTION.to_string() || o == &oids::EKU_ANY.to_string()
        });
        if !ok {
            return Err((
                SignerStatus::WrongKeyUsage,
                "the certificate's extendedKeyUsage lacks emailProtection".into(),
            ));
        }
    }
    Ok(())
}

/// Maps a SignerInfo signatureAlgorithm (and its digestAlgorithm) to a scheme.
fn signature_scheme(alg: &Tlv<'_>, digest: DigestAlg) -> Result<SignatureScheme, String> {
    let mut r = alg.children();
    let oid = read_oid(&mut r, "signature algorithm").map_err(|e| e.to_string())?;
    let by_oid = oids::signature_digest(&oid);
    Ok(match oid {
        oids::RSA_ENCRYPTION => SignatureScheme::RsaPkcs1(digest),
        oids::RSASSA_PSS => {
            // RSASSA-PSS-params: [0] hashAlgorithm (default SHA-1), [1] mgf, [2] salt, [3] trailer.
            let mut hash = DigestAlg::Sha1;
            if let Ok(Some(params)) = r.next() {
                let mut pr = params.children();
                while let Ok(Some(p)) = pr.next() {
                    if p.tag == 0xa0 {
                        let h = p
                            .children()
                            .next()
                            .ok()
                            .flatten()
                            .and_then(|a| read_oid(&mut a.children(), "hash").ok())
                            .and_then(|o| oids::digest_from_oid(&o));
                        hash = h.ok_or("unsupported RSASSA-PSS hash")?;
                    }
                }
            }
            SignatureScheme::RsaPss(hash)
        }
        oids::EC_PUBLIC_KEY => SignatureScheme::Ecdsa(digest),
        oids::DSA => SignatureScheme::Dsa(digest),
        oids::ECDSA_WITH_SHA1
        | oids::ECDSA_WITH_SHA224
        | oids::ECDSA_WITH_SHA256
        | oids::ECDSA_WITH_SHA384
        | oids::ECDSA_WITH_SHA512 => SignatureScheme::Ecdsa(by_oid.unwrap_or(digest)),
        oids::DSA_WITH_SHA1 | oids::DSA_WITH_SHA224 | oids::DSA_WITH_SHA256 => {
            SignatureScheme::Dsa(by_oid.unwrap_or(digest))
        }
        _ if by_oid.is_some() => SignatureScheme::RsaPkcs1(by_oid.unwrap_or(digest)),
        other => {
            return Err(format!(
                "signature algorithm {} is not supported",
                oids::name(&other)
            ));
        }
    })
}

pub(crate) fn read_oid(r: &mut Reader<'_>, what: &'static str) -> Result<Oid, MessageError> {
    let t = r.read_tag(TAG_OID, what)?;
    oids::parse(t.content).ok_or_else(|| MessageError::Malformed(format!("{what}: invalid OID")))
}

mod asn1_what {
    pub const VERSION: &str = "version";
}
