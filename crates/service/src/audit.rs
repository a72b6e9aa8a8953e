//! `smimekit directory audit`: hygiene of the certificates published in a directory.
//!
//! Works for every backend through the port: [`Directory::recipient_values`] when the backend
//! keeps several attributes (LDAP: `userCertificate` and `userSMIMECertificate`), else
//! [`Directory::recipients`]. Per recipient it names expired, revoked (when CRLs are given),
//! superseded, wrong-EKU and mismatched-address certificates, unreadable values, and stale
//! `userSMIMECertificate` values that shadow a newer `userCertificate` (Outlook reads
//! `userSMIMECertificate` first). Every certificate read is recorded in the inventory, with
//! the attribute holding it.
//!
//! An audit is a [`Job`] (`directory-audit`): one event per directory audited; cancelled,
//! it audits no further directory and says so.

use serde::Serialize;
use smimekit_core::{CertDer, Directory, RecipientValues, StoredValue};
use smimekit_pki::asn1::Reader;
use smimekit_pki::certinfo::{self, CertInfo};

use crate::certs::{CertSummary, summarize};
use crate::jobs::{Job, JobContext, JobOutput};
use crate::{ErrorKind, Named, Service, ServiceError};

const OID_EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
const OID_ANY_EKU: &str = "2.5.29.37.0";

/// `smimekit directory audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditRequest {
    /// Only this directory (default: every configured one).
    pub directory: Option<String>,
    /// CRLs (DER or PEM): certificates listed there are reported revoked.
    pub crls: Vec<Named<Vec<u8>>>,
}

/// What is wrong with a certificate or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditProblem {
    Expired,
    Revoked,
    /// A newer certificate for the same address is published beside it.
    Superseded,
    /// extendedKeyUsage without emailProtection.
    WrongEku,
    /// The certificate names none of the recipient's addresses.
    MismatchedAddress,
    /// A userSMIMECertificate value that Outlook reads instead of a newer userCertificate.
    StaleSmime,
    /// A value that is not a certificate (or PKCS#7) at all.
    Unreadable,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditFinding {
    pub address: String,
    pub problem: AuditProblem,
    /// The attribute holding the value, for multi-attribute backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertSummary>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectoryAudit {
    pub directory: String,
    pub recipients: usize,
    pub certificates: usize,
    pub findings: Vec<AuditFinding>,
    /// Why this directory was not audited, when it was not: it cannot list its recipients
    /// (a vendor plugin without `dir_recipients`). Only when every directory is audited; a
    /// directory named alone that cannot list is an `Unsupported` error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    pub directories: Vec<DirectoryAudit>,
    /// The directories left unaudited because the audit was cancelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_audited: Vec<String>,
}

impl JobOutput for AuditResult {
    fn outcome(&self) -> String {
        let findings: usize = self.directories.iter().map(|d| d.findings.len()).sum();
        if self.not_audited.is_empty() {
            format!("ok: {findings} finding(s)")
        } else {
            format!(
                "cancelled: {} directory(ies) not audited",
                self.not_audited.len()
            )
        }
    }

    fn items(&self) -> serde_json::Value {
        let mut items: Vec<serde_json::Value> = self
            .directories
            .iter()
            .map(|d| {
                serde_json::json!({
                    "directory": d.directory,
                    "recipients": d.recipients,
                    "certificates": d.certificates,
                    "findings": d.findings.len(),
                })
            })
            .collect();
        items.extend(
            self.not_audited
                .iter()
                .map(|d| serde_json::json!({"directory": d, "status": "cancelled"})),
        );
        serde_json::Value::Array(items)
    }
}

impl AuditResult {
    pub fn is_clean(&self) -> bool {
        self.directories.iter().all(|d| d.findings.is_empty())
    }
}

/// (issuer Name DER, serial content octets) of every revoked entry in the CRLs.
fn revoked_entries(crls: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for crl in crls {
        let _ = (|| -> Result<(), smimekit_pki::asn1::Asn1Error> {
            let list = Reader::new(crl).read_tag(0x30, "CertificateList")?;
            let tbs = list.children().read_tag(0x30, "TBSCertList")?;
            let mut r = tbs.children();
            let _ = r.optional(0x02)?; // version
            r.read_tag(0x30, "signature")?;
            let issuer = r.read_tag(0x30, "issuer")?;
            r.read("thisUpdate")?;
            if matches!(r.peek_tag(), Some(0x17) | Some(0x18)) {
                r.read("nextUpdate")?;
            }
            if let Some(revoked) = r.optional(0x30)? {
                let mut rr = revoked.children();
                while let Some(entry) = rr.next()? {
                    let serial = entry.children().read_tag(0x02, "serial")?;
                    out.push((issuer.raw.to_vec(), serial.content.to_vec()));
                }
            }
            Ok(())
        })();
    }
    out
}

fn eku_ok(info: &CertInfo) -> bool {
    info.extended_key_usage.as_ref().is_none_or(|e| {
        e.iter()
            .any(|o| o == OID_EMAIL_PROTECTION || o == OID_ANY_EKU)
    })
}

impl Service {
    /// `smimekit directory audit`, as a job: an event after each directory.
    pub fn audit(&self, req: AuditRequest) -> Job<AuditResult> {
        self.spawn_job("directory-audit", move |svc, ctx| async move {
            svc.audit_run(&req, &ctx).await
        })
    }

    async fn audit_run(
        &self,
        req: &AuditRequest,
        ctx: &JobContext,
    ) -> Result<AuditResult, ServiceError> {
        let crls = self.crls(&req.crls)?;
        let revoked = revoked_entries(&crls);
        let names: Vec<String> = match &req.directory {
            Some(n) => vec![n.clone()],
            None => self.directory_names(),
        };
        let total = names.len();
        let mut directories = Vec::new();
        let mut not_audited = Vec::new();
        for n in names {
            if ctx.is_cancelled() {
                not_audited.push(n);
                continue;
            }
            let dir = self.open_directory(&n).await?;
            let audited = match self.audit_one(dir.as_ref(), &revoked).await {
                // One directory that cannot list its recipients does not stop the audit of
                // the others; named alone, it is the error.
                Err(e) if e.kind == ErrorKind::Unsupported && req.directory.is_none() => {
                    DirectoryAudit {
                        directory: n.clone(),
                        recipients: 0,
                        certificates: 0,
                        findings: Vec::new(),
                        skipped: Some(e.message),
                    }
                }
                r => r?,
            };
            directories.push(audited);
            ctx.event("audit", directories.len(), total, Some(&n));
        }
        Ok(AuditResult {
            directories,
            not_audited,
        })
    }

    async fn audit_one(
        &self,
        dir: &dyn Directory,
        revoked: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<DirectoryAudit, ServiceError> {
        let now = self.now();
        let all: Vec<RecipientValues> = match dir.recipient_values().await? {
            Some(v) => v,
            None => dir
                .recipients()
                .await?
                .into_iter()
                .map(|r| {
                    let values = r
                        .certificates
                        .iter()
                        .map(|c| StoredValue {
                            attribute: String::new(),
                            certificates: vec![c.clone()],
                            preferred: false,
                            problem: None,
                        })
                        .collect();
                    RecipientValues {
                        recipient: r,
                        aliases: Vec::new(),
                        location: None,
                        values,
                    }
                })
                .collect(),
        };
        // The inventory learns what the audit read (with the attributes, where there are several).
        self.record_recipient_values(dir.name(), &all).await?;
        let mut findings = Vec::new();
        let mut count = 0;
        for rv in &all {
            let address = rv.recipient.address.to_string();
            let mut addresses = vec![address.clone()];
            addresses.extend(rv.aliases.iter().cloned());
            let finding =
                |problem, attribute: &str, cert: Option<&CertDer>, detail: String| AuditFinding {
                    address: address.clone(),
                    problem,
                    attribute: (!attribute.is_empty()).then(|| attribute.to_string()),
                    location: rv.location.clone(),
                    certificate: cert.map(|c| summarize(c, now)),
                    detail,
                };
            // End-entity certificates of every value, once each, with their attribute.
            let mut seen: Vec<(CertDer, CertInfo, String)> = Vec::new();
            for v in &rv.values {
                if let Some(p) = &v.problem {
                    findings.push(finding(
                        AuditProblem::Unreadable,
                        &v.attribute,
                        None,
                        p.clone(),
                    ));
                    continue;
                }
                for c in &v.certificates {
                    let Ok(info) = certinfo::parse(c) else {
                        findings.push(finding(
                            AuditProblem::Unreadable,
                            &v.attribute,
                            None,
                            "not a certificate".into(),
                        ));
                        continue;
                    };
                    if info.is_ca || seen.iter().any(|(s, _, _)| s == c) {
                        continue;
                    }
                    seen.push((c.clone(), info, v.attribute.clone()));
                }
            }
            count += seen.len();
            for (c, info, attr) in &seen {
                if info.not_after < now {
                    findings.push(finding(
                        AuditProblem::Expired,
                        attr,
                        Some(c),
                        format!("expired on {}", crate::certs::rfc3339(info.not_after)),
                    ));
                }
                if let Ok((issuer, serial)) = certinfo::issuer_and_serial(c)
                    && revoked.iter().any(|(i, s)| *i == issuer && *s == serial)
                {
                    findings.push(finding(
                        AuditProblem::Revoked,
                        attr,
                        Some(c),
                        format!("serial {} is on a given CRL", info.serial_hex),
                    ));
                }
                if !eku_ok(info) {
                    findings.push(finding(
                        AuditProblem::WrongEku,
                        attr,
                        Some(c),
                        "extendedKeyUsage lacks emailProtection".into(),
                    ));
                }
                if !info
                    .emails
                    .iter()
                    .any(|e| addresses.iter().any(|a| a.eq_ignore_ascii_case(e)))
                {
                    findings.push(finding(
                        AuditProblem::MismatchedAddress,
                        attr,
                        Some(c),
                        format!(
                            "names {}, not {}",
                            if info.emails.is_empty() {
                                "no e-mail address".to_string()
                            } else {
                                info.emails.join(", ")
                            },
                            addresses.join(" / ")
                        ),
                    ));
                }
                // Superseded: a newer, currently valid certificate for one of its addresses.
                if let Some((_, newer, _)) = seen.iter().find(|(o, oi, _)| {
                    o != c
                        && oi.not_before > info.not_before
                        && oi.not_before <= now
                        && now <= oi.not_after
                        && eku_ok(oi)
                        && oi
                            .emails
                            .iter()
                            .any(|e| info.emails.iter().any(|x| x.eq_ignore_ascii_case(e)))
                }) {
                    findings.push(finding(
                        AuditProblem::Superseded,
                        attr,
                        Some(c),
                        format!(
                            "superseded by {} (issued {})",
                            newer.sha1_thumbprint,
                            crate::certs::rfc3339(newer.not_before)
                        ),
                    ));
                }
            }
            // Stale preferred values: Outlook reads them and never sees a newer plain one.
            let plain: Vec<&(CertDer, CertInfo, String)> = rv
                .values
                .iter()
                .filter(|v| !v.preferred)
                .flat_map(|v| v.certificates.iter())
                .filter_map(|c| seen.iter().find(|(s, _, _)| s == c))
                .collect();
            for v in rv
                .values
                .iter()
                .filter(|v| v.preferred && v.problem.is_none())
            {
                let leaves: Vec<&(CertDer, CertInfo, String)> = v
                    .certificates
                    .iter()
                    .filter_map(|c| seen.iter().find(|(s, _, _)| s == c))
                    .collect();
                let newest = leaves.iter().map(|(_, i, _)| i.not_before).max();
                // Useless to a sender: every leaf expired or naming none of the addresses.
                let useless = leaves.iter().all(|(_, i, _)| {
                    i.not_after < now
                        || !i
                            .emails
                            .iter()
                            .any(|e| addresses.iter().any(|a| a.eq_ignore_ascii_case(e)))
                });
                let covered = |c: &CertDer| {
                    rv.values
                        .iter()
                        .any(|o| o.preferred && o.certificates.contains(c))
                };
                if let Some(newer) = plain.iter().find(|(pc, pi, _)| {
                    !covered(pc) && (useless || newest.is_none_or(|n| pi.not_before > n))
                }) {
                    findings.push(finding(
                        AuditProblem::StaleSmime,
                        &v.attribute,
                        leaves.first().map(|(c, _, _)| c),
                        format!(
                            "{} is read before {} and shadows its certificate {}: republish to make them consistent",
                            v.attribute, newer.2, newer.1.sha1_thumbprint
                        ),
                    ));
                }
            }
        }
        Ok(DirectoryAudit {
            directory: dir.name().to_string(),
            recipients: all.len(),
            certificates: count,
            findings,
            skipped: None,
        })
    }
}
