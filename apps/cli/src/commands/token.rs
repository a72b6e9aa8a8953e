//! token enroll, token import.

use anyhow::Result;
use smimekit_service::{
    CaKeyType, ErrorKind, Secret, Service, ServiceError, TokenEnrollRequest, TokenImportRequest,
};

use super::{EXIT_OK, print_json};
use crate::cli::{PasswordArgs, TokenCommand};
use crate::io;

/// The token PIN, unless the URI names its own (`pin-value`, `pin-source`). `None` when no
/// source is available: the service then reports the token as locked if it needs a PIN.
fn pin(token: &str, password: &PasswordArgs) -> Result<Option<Secret>> {
    let lower = token.to_ascii_lowercase();
    if lower.contains("pin-value=") || lower.contains("pin-source=") {
        return Ok(None);
    }
    Ok(Some(io::secret(password, token)?))
}

/// The PKCS#12 password: `--p12-password-file`, else SMIMEKIT_P12_PASSWORD, else the usual
/// password sources.
fn p12_secret(file: &Option<std::path::PathBuf>) -> Result<Secret> {
    Ok(match file {
        Some(f) => io::secret(
            &PasswordArgs {
                password_file: Some(f.clone()),
            },
            "the PKCS#12 file",
        )?,
        None => match std::env::var("SMIMEKIT_P12_PASSWORD") {
            Ok(p) => Secret::from(p),
            Err(_) => io::secret(&PasswordArgs::default(), "the PKCS#12 file")?,
        },
    })
}

/// `keys import --store KEYREF F.p12`: the store's own import (Windows: PFXImportCertStore,
/// each identity in its own container; tokens: objects under one CKA_ID). The store PIN is
/// asked for only when the store reports itself locked.
pub async fn keys_import(
    service: &Service,
    p12: std::path::PathBuf,
    store: String,
    label: Option<String>,
    p12_password_file: Option<std::path::PathBuf>,
    password: &PasswordArgs,
    json: bool,
) -> Result<u8> {
    let p12_secret = p12_secret(&p12_password_file)?;
    let mut req = TokenImportRequest {
        token: store.clone(),
        secret: None,
        p12,
        p12_secret,
        label,
    };
    let k = match service.token_import(&req).await {
        Err(e) if e.kind == ErrorKind::Locked => {
            req.secret = Some(io::secret(password, &store)?);
            service.token_import(&req).await?
        }
        other => other?,
    };
    if json {
        print_json(&k)?;
    } else {
        outln!("imported: {} {}", k.store, k.selector);
        if let Some(c) = &k.certificate {
            outln!("certificate: {} (serial {})", c.subject, c.serial);
        }
    }
    Ok(EXIT_OK)
}

pub async fn run(service: &Service, c: TokenCommand, json: bool) -> Result<u8> {
    match c {
        TokenCommand::Enroll {
            token,
            email,
            label,
            key_type,
            ca,
            csr_out,
            days,
            password,
        } => {
            let key_type = CaKeyType::from_name(&key_type).ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Usage,
                    format!("--key-type {key_type}: use rsa2048, rsa3072, rsa4096, p256 or p384"),
                )
            })?;
            let secret = pin(&token, &password)?;
            let ca_secret = match &ca {
                Some(_) => std::env::var("SMIMEKIT_PASSWORD")
                    .ok()
                    .map(Secret::from)
                    .or_else(|| secret.clone()),
                None => None,
            };
            let r = service
                .token_enroll(&TokenEnrollRequest {
                    token,
                    secret,
                    label,
                    email,
                    key_type,
                    ca,
                    ca_secret,
                    csr_out,
                    days,
                })
                .await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("key:         {}", r.key);
                if let Some(f) = &r.csr_file {
                    outln!("request:     {f}");
                }
                if let Some(c) = &r.certificate {
                    outln!(
                        "certificate: {} (serial {}), written to the token",
                        c.subject,
                        c.serial
                    );
                }
            }
            Ok(EXIT_OK)
        }
        TokenCommand::Import {
            p12,
            token,
            label,
            p12_password_file,
            password,
        } => {
            let p12_secret = match &p12_password_file {
                Some(f) => io::secret(
                    &PasswordArgs {
                        password_file: Some(f.clone()),
                    },
                    "the PKCS#12 file",
                )?,
                None => match std::env::var("SMIMEKIT_P12_PASSWORD") {
                    Ok(p) => Secret::from(p),
                    Err(_) => io::secret(&PasswordArgs::default(), "the PKCS#12 file")?,
                },
            };
            let secret = pin(&token, &password)?;
            let k = service
                .token_import(&TokenImportRequest {
                    token,
                    secret,
                    p12,
                    p12_secret,
                    label,
                })
                .await?;
            if json {
                print_json(&k)?;
            } else {
                outln!("imported: {}", k.selector);
                if let Some(c) = &k.certificate {
                    outln!("  subject: {}", c.subject);
                }
                for c in &k.chain {
                    outln!("  issuer certificate: {}", c.subject);
                }
            }
            Ok(EXIT_OK)
        }
    }
}
