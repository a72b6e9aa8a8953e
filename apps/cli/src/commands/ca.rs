//! ca init, ca issue, ca revoke, ca crl.

use anyhow::Result;
use smimekit_service::{
    CaCrlRequest, CaInitRequest, CaIssueRequest, CaKeyType, CaRevokeRequest, ErrorKind,
    IssueSource, RevocationReason, RevokeTarget, SecretKind, SecretRequest, Service, ServiceError,
};

use super::{EXIT_OK, p12_password, print_json};
use crate::cli::CaCommand;
use crate::io;

/// A result as JSON with the files the CLI wrote added (`cert_file`, `p12_file`, `out`): the
/// service hands back data, the file names are the CLI's.
fn print_json_with(value: &impl serde::Serialize, files: &[(&str, Option<String>)]) -> Result<()> {
    let mut v = serde_json::to_value(value).map_err(super::internal)?;
    if let Some(map) = v.as_object_mut() {
        for (k, f) in files {
            map.insert((*k).to_string(), f.clone().into());
        }
    }
    print_json(&v)
}

fn key_type(name: &str) -> Result<CaKeyType> {
    CaKeyType::from_name(name).ok_or_else(|| {
        ServiceError::new(
            ErrorKind::Invalid,
            format!("--key-type {name}: use rsa2048, rsa3072, rsa4096, p256 or p384"),
        )
        .into()
    })
}

pub async fn run(service: &Service, c: CaCommand, json: bool) -> Result<u8> {
    match c {
        CaCommand::Init {
            dir,
            key_type: kt,
            name,
            crl_url,
            key_store,
        } => {
            // The token's PIN (its URI's pin-value/pin-source first), or the password that
            // will protect the new CA key files; the CA keys are opened later with it.
            let secret = match &key_store {
                Some(store) => service.key_secret(store, None)?,
                None => service.secret(&SecretRequest::new(
                    SecretKind::Password,
                    format!("password for the new CA keys in {}", dir.display()),
                ))?,
            };
            let req = CaInitRequest {
                dir,
                name,
                key_type: key_type(&kt)?,
                secret,
                crl_url,
            };
            let r = service.ca_init_on(&req, key_store.as_deref()).await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("CA created in {}", r.dir);
                outln!(
                    "  root:    {} (sha1 {})",
                    r.root.subject,
                    r.root.sha1_thumbprint
                );
                outln!(
                    "  issuing: {} (sha1 {})",
                    r.issuing.subject,
                    r.issuing.sha1_thumbprint
                );
                outln!("  trust anchor: {}", r.root_cert);
                outln!("  chain:        {}", r.chain);
                outln!("  keys:         {}, {}", r.root_key, r.issuing_key);
            }
            Ok(EXIT_OK)
        }
        CaCommand::Issue {
            dir,
            csr,
            out,
            email,
            p12,
            key_type: kt,
            days,
            legacy_p12,
            renew,
            p12_password_file,
        } => {
            // The source, and the file the result goes to.
            let (source, output) = match (csr, p12) {
                (Some(csr), None) => {
                    let out = out.ok_or_else(|| {
                        ServiceError::new(ErrorKind::Invalid, "ca issue --csr needs --out CERT")
                    })?;
                    let csr = io::read_named(&csr)?;
                    (IssueSource::Csr { csr, email }, out)
                }
                (None, Some(p12)) => {
                    let email = email.ok_or_else(|| {
                        ServiceError::new(ErrorKind::Invalid, "ca issue --p12 needs --email ADDR")
                    })?;
                    let p12_secret = p12_password(
                        service,
                        format!("password for the new PKCS#12 {}", p12.display()),
                        p12_password_file.as_deref(),
                    )?;
                    (
                        IssueSource::Generate {
                            email,
                            key_type: key_type(&kt)?,
                            p12_name: p12.display().to_string(),
                            p12_secret,
                            legacy: legacy_p12,
                        },
                        p12,
                    )
                }
                _ => {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        "ca issue needs either --csr F --out CERT, or --email ADDR --p12 OUT",
                    )
                    .into());
                }
            };
            // The CA key's password is found by the service when the key is locked.
            let req = CaIssueRequest {
                dir,
                ca_secret: None,
                source,
                days,
                renew,
            };
            let r = service.ca_issue(&req).await?;
            let written = Some(output.display().to_string());
            let (cert_file, p12_file) = match &r.pkcs12 {
                // The key leaves the CA only in its PKCS#12: readable by its owner alone.
                Some(p12) => {
                    io::write_file(&output, p12, io::Access::Owner)?;
                    (None, written)
                }
                None => {
                    io::write_file(&output, r.pem.as_bytes(), io::Access::Default)?;
                    (written, None)
                }
            };
            if json {
                print_json_with(&r, &[("cert_file", cert_file), ("p12_file", p12_file)])?;
            } else {
                outln!("issued {} serial {}", r.email, r.serial);
                outln!("  valid:  {} .. {}", r.not_before, r.not_after);
                outln!("  sha1:   {}", r.sha1_thumbprint);
                if let Some(f) = &cert_file {
                    outln!("  certificate: {f}");
                }
                if let Some(f) = &p12_file {
                    outln!("  PKCS#12:     {f}");
                }
                if !r.supersedes.is_empty() {
                    outln!("  supersedes:  {}", r.supersedes.join(", "));
                }
            }
            Ok(EXIT_OK)
        }
        CaCommand::Revoke {
            dir,
            serial,
            cert,
            reason,
        } => {
            let reason = RevocationReason::from_name(&reason).ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!("--reason {reason}: use unspecified, key-compromise, affiliation-changed, superseded or cessation-of-operation"),
                )
            })?;
            // clap lets exactly one of --serial and --cert through.
            let target = match (serial, cert) {
                (Some(s), _) => RevokeTarget::Serial(s),
                (None, Some(cert)) => RevokeTarget::Certificate(io::read_named(&cert)?),
                (None, None) => return Err(super::usage("ca revoke needs --serial or --cert")),
            };
            let r = service
                .ca_revoke(&CaRevokeRequest {
                    dir,
                    target,
                    reason,
                })
                .await?;
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "revoked {} ({}) at {}: run `smimekit ca crl` to publish",
                    r.serial,
                    r.email,
                    r.revoked_at
                );
            }
            Ok(EXIT_OK)
        }
        CaCommand::Crl { dir, out, days } => {
            let r = service
                .ca_crl(&CaCrlRequest {
                    dir,
                    ca_secret: None,
                    days,
                })
                .await?;
            io::write_file(&out, r.pem.as_bytes(), io::Access::Default)?;
            let out = out.display().to_string();
            if json {
                print_json_with(&r, &[("out", Some(out))])?;
            } else {
                outln!(
                    "CRL #{} with {} revoked certificate(s) written to {out} (next update {})",
                    r.crl_number,
                    r.revoked.len(),
                    r.next_update
                );
            }
            Ok(EXIT_OK)
        }
    }
}
