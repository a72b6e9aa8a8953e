//! Certificate files: loading (PEM, DER, PKCS#7, SST), showing and exporting.

use std::path::Path;

use smimekit_core::CertDer;
use smimekit_pki::{certinfo, container};

use crate::{ErrorKind, Service, ServiceError};

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
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

impl Service {
    /// Reads every certificate in a file (PEM, DER, PKCS#7 certs-only, SST).
    pub fn load_certificates(&self, path: &Path) -> Result<Vec<CertDer>, ServiceError> {
        let bytes = std::fs::read(path).map_err(|e| ServiceError::io(path, e))?;
        let certs = container::load_certificates(&bytes, &path.display().to_string())?;
        if certs.is_empty() {
            return Err(ServiceError::new(
                ErrorKind::Malformed,
                format!("{}: holds no certificate", path.display()),
            ));
        }
        Ok(certs)
    }

    /// Reads every file and concatenates their certificates.
    pub fn load_all_certificates(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<CertDer>, ServiceError> {
        let mut out = Vec::new();
        for p in paths {
            out.extend(self.load_certificates(p.as_ref())?);
        }
        Ok(out)
    }

    pub fn summarize(&self, cert: &CertDer) -> CertSummary {
        summarize(cert, self.now())
    }

    /// Encodes certificates for `cert export`: DER holds one certificate, PEM any number.
    pub fn export_certificates(&self, certs: &[CertDer], format: ExportFormat) -> Result<Vec<u8>, ServiceError> {
        match format {
            ExportFormat::Pem => Ok(container::write_pem(certs).into_bytes()),
            ExportFormat::Der => match certs {
                [one] => Ok(one.as_bytes().to_vec()),
                _ => Err(ServiceError::new(
                    ErrorKind::Usage,
                    "DER holds one certificate: use --pem for a chain (or export each)",
                )),
            },
        }
    }
}
