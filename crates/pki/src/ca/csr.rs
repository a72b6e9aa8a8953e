//! PKCS#10 certificate requests (RFC 2986): parse, check the self-signature through the
//! engine's [`SignatureVerifier`], and pull out the public key and the requested address.

use base64::Engine;
use smimekit_core::{DigestAlg, SignatureScheme, SignatureVerifier};

use crate::asn1::{self, TAG_BIT_STRING, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET, Tlv};

use super::der::{self, oid_content};
use super::{CaError, spki_parts};

/// A verified certificate request.
#[derive(Debug, Clone)]
pub struct Csr {
    /// The SubjectPublicKeyInfo DER, as sent.
    pub spki: Vec<u8>,
    /// The subject Name DER, as sent (informational: the CA sets its own subject).
    pub subject: Vec<u8>,
    /// The address asked for: SAN rfc822Name in an extensionRequest, else subject
    /// emailAddress, else a subject CN that looks like an address.
    pub email: Option<String>,
}

const PEM_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// DER from DER or PEM input.
fn to_der(data: &[u8]) -> Result<Vec<u8>, CaError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(data.to_vec());
    };
    let Some(begin) = text.find("-----BEGIN ") else {
        return Ok(data.to_vec());
    };
    let rest = &text[begin + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| CaError::malformed("certificate request", "unterminated PEM header"))?;
    let label = &rest[..label_end];
    if !PEM_LABELS.contains(&label) {
        return Err(CaError::malformed(
            "certificate request",
            format!("PEM block is {label:?}, not CERTIFICATE REQUEST"),
        ));
    }
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| CaError::malformed("certificate request", "PEM END line missing"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| CaError::malformed("certificate request", format!("PEM base64: {e}")))
}

fn scheme_for(alg_oid: &[u8]) -> Option<SignatureScheme> {
    let table: [(&[u64], SignatureScheme); 6] = [
        (
            &[1, 2, 840, 113549, 1, 1, 11],
            SignatureScheme::RsaPkcs1(DigestAlg::Sha256),
        ),
        (
            &[1, 2, 840, 113549, 1, 1, 12],
            SignatureScheme::RsaPkcs1(DigestAlg::Sha384),
        ),
        (
            &[1, 2, 840, 113549, 1, 1, 13],
            SignatureScheme::RsaPkcs1(DigestAlg::Sha512),
        ),
        (
            &[1, 2, 840, 10045, 4, 3, 2],
            SignatureScheme::Ecdsa(DigestAlg::Sha256),
        ),
        (
            &[1, 2, 840, 10045, 4, 3, 3],
            SignatureScheme::Ecdsa(DigestAlg::Sha384),
        ),
        (
            &[1, 2, 840, 10045, 4, 3, 4],
            SignatureScheme::Ecdsa(DigestAlg::Sha512),
        ),
    ];
    table
        .iter()
        .find(|(arcs, _)| oid_content(arcs) == alg_oid)
        .map(|(_, s)| *s)
}

/// Parses a PKCS#10 request (DER or PEM) and verifies its signature with its own key.
pub fn parse_csr(data: &[u8], verifier: &dyn SignatureVerifier) -> Result<Csr, CaError> {
    let der = to_der(data)?;
    let e = |err: asn1::Asn1Error| CaError::malformed("certificate request", err);
    let top = asn1::parse_single(&der)
        .map_err(e)?
        .expect(TAG_SEQUENCE, "CertificationRequest")
        .map_err(e)?;
    let mut r = top.children();
    let info = r
        .read_tag(TAG_SEQUENCE, "certificationRequestInfo")
        .map_err(e)?;
    let alg = r.read_tag(TAG_SEQUENCE, "signatureAlgorithm").map_err(e)?;
    let sig = r.read_tag(TAG_BIT_STRING, "signature").map_err(e)?;
    if r.next().map_err(e)?.is_some() {
        return Err(CaError::malformed(
            "certificate request",
            "trailing elements",
        ));
    }
    let mut ir = info.children();
    let version = ir.read_tag(asn1::TAG_INTEGER, "version").map_err(e)?;
    if version.small_uint().map_err(e)? != 0 {
        return Err(CaError::malformed(
            "certificate request",
            "version is not v1 (0)",
        ));
    }
    let subject = ir.read_tag(TAG_SEQUENCE, "subject").map_err(e)?;
    let spki = ir.read_tag(TAG_SEQUENCE, "subjectPKInfo").map_err(e)?;
    let attributes = ir.optional(0xa0).map_err(e)?;
    spki_parts(spki.raw)?;

    let alg_oid = alg.children().read_tag(TAG_OID, "algorithm").map_err(e)?;
    let scheme = scheme_for(alg_oid.content).ok_or_else(|| {
        CaError::Unsupported("CSR signature algorithm: use sha256/384/512 with RSA or ECDSA".into())
    })?;
    let signature = match sig.content.split_first() {
        Some((0, rest)) => rest,
        _ => {
            return Err(CaError::malformed(
                "certificate request",
                "signature BIT STRING has unused bits",
            ));
        }
    };
    let ok = verifier
        .verify(spki.raw, scheme, info.raw, signature)
        .map_err(|err| CaError::malformed("certificate request", err))?;
    if !ok {
        return Err(CaError::BadSignature);
    }

    let mut email = match attributes {
        Some(a) => san_email(a).map_err(e)?,
        None => None,
    };
    if email.is_none() {
        email = subject_email(subject).map_err(e)?;
    }
    Ok(Csr {
        spki: spki.raw.to_vec(),
        subject: subject.raw.to_vec(),
        email,
    })
}

/// The first rfc822Name of a SAN inside an extensionRequest attribute.
fn san_email(attributes: Tlv<'_>) -> Result<Option<String>, asn1::Asn1Error> {
    let ext_req = oid_content(&[1, 2, 840, 113549, 1, 9, 14]);
    let san = oid_content(der::OID_EXT_SAN);
    let mut r = attributes.children();
    while let Some(attr) = r.next()? {
        let mut ar = attr.children();
        let id = ar.read_tag(TAG_OID, "attribute type")?;
        if id.content != ext_req.as_slice() {
            continue;
        }
        let values = ar.read_tag(TAG_SET, "attribute values")?;
        let mut vr = values.children();
        while let Some(exts) = vr.next()? {
            let mut er = exts.children();
            while let Some(ext) = er.next()? {
                let mut xr = ext.children();
                let xid = xr.read_tag(TAG_OID, "extnID")?;
                xr.optional(asn1::TAG_BOOLEAN)?;
                let value = xr.read_tag(TAG_OCTET_STRING, "extnValue")?;
                if xid.content != san.as_slice() {
                    continue;
                }
                let names = asn1::parse_single(value.content)?;
                let mut nr = names.children();
                while let Some(gn) = nr.next()? {
                    if gn.tag == 0x81 {
                        return Ok(Some(String::from_utf8_lossy(gn.content).into_owned()));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// Subject emailAddress, else a CN containing `@`.
fn subject_email(subject: Tlv<'_>) -> Result<Option<String>, asn1::Asn1Error> {
    let email_oid = oid_content(der::OID_EMAIL_ADDRESS);
    let cn_oid = oid_content(der::OID_CN);
    let mut cn = None;
    let mut r = subject.children();
    while let Some(rdn) = r.next()? {
        let mut rr = rdn.children();
        while let Some(atv) = rr.next()? {
            let mut ar = atv.children();
            let id = ar.read_tag(TAG_OID, "attribute type")?;
            let value = ar.read("attribute value")?;
            let text = String::from_utf8_lossy(value.content).into_owned();
            if id.content == email_oid.as_slice() {
                return Ok(Some(text));
            }
            if id.content == cn_oid.as_slice() && text.contains('@') {
                cn = Some(text);
            }
        }
    }
    Ok(cn)
}

/// Builds a PKCS#10 request for `spki` with `subject` (a DER Name) and, when `email` is given,
/// a subjectAltName rfc822Name in an extensionRequest; signed through the [`PrivateKey`] port
/// (so a token key signs its own request). Returns DER.
///
/// [`PrivateKey`]: smimekit_core::PrivateKey
pub async fn build_csr(
    subject: &[u8],
    spki: &[u8],
    email: Option<&str>,
    key: &dyn smimekit_core::PrivateKey,
    primitives: &dyn smimekit_core::Primitives,
) -> Result<Vec<u8>, CaError> {
    let attrs = match email {
        Some(addr) => {
            let san = asn1::seq(&[&asn1::context_primitive(1, addr.as_bytes())]);
            let ext = asn1::seq(&[&der::oid(der::OID_EXT_SAN), &asn1::octet_string(&san)]);
            let attr = asn1::seq(&[
                &der::oid(&[1, 2, 840, 113549, 1, 9, 14]),
                &asn1::set_of(vec![asn1::seq(&[&ext])]),
            ]);
            asn1::context_constructed(0, &[&attr])
        }
        None => asn1::context_constructed(0, &[]),
    };
    let info = asn1::seq(&[&asn1::small_int(0), subject, spki, &attrs]);
    let (scheme, alg) = super::signature_algorithm(key.kind())?;
    super::sign_tbs(&info, scheme, &alg, key, primitives).await
}
