//! Certificates: parsing what a request carries (PEM, DER, PKCS#7, SST), showing and
//! exporting. Reading and writing files is the frontend's job.

use smimekit_core::CertDer;
use smimekit_pki::{certinfo, container};

use crate::{ErrorKind, Named, Service, ServiceError};

/// What `cert show` and `keys list` print for a certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub emails: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// `valid`, `expired` or `not-yet-valid` at the service's clock.
    pub validity: &'static str,
    /// SHA-1 thumbprint, uppercase hex, as Exchange shows it.
    pub sha1_thumbprint: String,
    pub sha256_fingerprint: String,
    pub is_ca: bool,
}

/// `cert export` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Der,
    Pem,
}

pub(crate) fn summarize(cert: &CertDer, now: i64) -> CertSummary {
    match certinfo::parse(cert) {
        Ok(i) => CertSummary {
            validity: if now < i.not_before {
                "not-yet-valid"
            } else if now > i.not_after {
                "expired"
            } else {
                "valid"
            },
            subject: i.subject,
            issuer: i.issuer,
            serial: i.serial_hex,
            emails: i.emails,
            not_before: rfc3339(i.not_before),
            not_after: rfc3339(i.not_after),
            sha1_thumbprint: i.sha1_thumbprint,
            sha256_fingerprint: i.sha256_fingerprint,
            is_ca: i.is_ca,
        },
        Err(e) => CertSummary {
            subject: format!("<unreadable: {e}>"),
            issuer: String::new(),
            serial: String::new(),
            emails: Vec::new(),
            not_before: String::new(),
            not_after: String::new(),
            validity: "unknown",
            sha1_thumbprint: String::new(),
            sha256_fingerprint: String::new(),
            is_ca: false,
        },
    }
}

pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

impl Service {
    /// Every certificate in `input` (PEM, DER, PKCS#7 certs-only, SST, sniffed from the bytes);
    /// none at all is an error naming the input.
    pub fn certificates(&self, input: &Named<Vec<u8>>) -> Result<Vec<CertDer>, ServiceError> {
        let certs = container::load_certificates(&input.data, &input.name)?;
        if certs.is_empty() {
            return Err(ServiceError::new(
                ErrorKind::Malformed,
                format!("{}: holds no certificate", input.name),
            ));
        }
        Ok(certs)
    }

    /// [`Service::certificates`] of every input, in order.
    pub fn all_certificates(
        &self,
        inputs: &[Named<Vec<u8>>],
    ) -> Result<Vec<CertDer>, ServiceError> {
        let mut out = Vec::new();
        for i in inputs {
            out.extend(self.certificates(i)?);
        }
        Ok(out)
    }

    pub fn summarize(&self, cert: &CertDer) -> CertSummary {
        summarize(cert, self.now())
    }

    /// Encodes certificates for `cert export`: DER holds one certificate, PEM any number.
    pub fn export_certificates(
        &self,
        certs: &[CertDer],
        format: ExportFormat,
    ) -> Result<Vec<u8>, ServiceError> {
        match format {
            ExportFormat::Pem => Ok(container::write_pem(certs).into_bytes()),
            ExportFormat::Der => match certs {
                [one] => Ok(one.as_bytes().to_vec()),
                _ => Err(ServiceError::new(
                    ErrorKind::Invalid,
                    format!("DER holds one certificate, not {}", certs.len()),
                )
                .for_field("format")),
            },
        }
    }
}

/// The CRLs in a file's bytes, as DER: one DER CRL, or any number of PEM `X509 CRL` blocks.
pub fn crls_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ServiceError> {
    let malformed = |d: &str| ServiceError::new(ErrorKind::Malformed, format!("CRL: {d}"));
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("neither DER nor PEM"))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN X509 CRL-----") {
        let body = &rest[begin + "-----BEGIN X509 CRL-----".len()..];
        let end = body
            .find("-----END X509 CRL-----")
            .ok_or_else(|| malformed("PEM block without END"))?;
        let b64: String = body[..end].split_whitespace().collect();
        use base64::Engine as _;
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| malformed(&format!("bad base64: {e}")))?,
        );
        rest = &body[end..];
    }
    if out.is_empty() {
        return Err(malformed("no X509 CRL PEM block and not DER"));
    }
    Ok(out)
}

impl Service {
    /// Every CRL in the inputs (one DER CRL, or PEM `X509 CRL` blocks), for
    /// [`crate::OpenRequest::crls`] and directory audits; errors name the input.
    pub fn crls(&self, inputs: &[Named<Vec<u8>>]) -> Result<Vec<Vec<u8>>, ServiceError> {
        let mut out = Vec::new();
        for i in inputs {
            out.extend(crls_from_bytes(&i.data).map_err(|e| e.context(&i.name))?);
        }
        Ok(out)
    }
}
