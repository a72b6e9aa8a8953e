//! token enroll, token import.

use anyhow::Result;
use smimekit_service::{
    CaKeyType, ErrorKind, Service, ServiceError, TokenEnrollRequest, TokenImportRequest,
};

use super::{EXIT_OK, p12_password, print_json};
use crate::cli::TokenCommand;
use crate::io;

/// The password of the PKCS#12 to import.
fn p12_secret(
    service: &Service,
    p12: &std::path::Path,
    file: Option<&std::path::Path>,
) -> Result<smimekit_service::Secret> {
    p12_password(
        service,
        format!("PKCS#12 password for {}", p12.display()),
        file,
    )
}

/// `keys import --store KEYREF F.p12`: the store's own import (Windows: PFXImportCertStore,
/// each identity in its own container; tokens: objects under one CKA_ID). The store's PIN is
/// found by the service only when the store reports itself locked.
pub async fn keys_import(
    service: &Service,
    p12: std::path::PathBuf,
    store: String,
    label: Option<String>,
    p12_password_file: Option<std::path::PathBuf>,
    json: bool,
) -> Result<u8> {
    let p12_secret = p12_secret(service, &p12, p12_password_file.as_deref())?;
    let req = TokenImportRequest {
        token: store,
        secret: None,
        p12: io::read_named(&p12)?,
        p12_secret,
        label,
    };
    let k = service.token_import(&req).await?;
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
        } => {
            let key_type = CaKeyType::from_name(&key_type).ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Invalid,
                    format!("--key-type {key_type}: use rsa2048, rsa3072, rsa4096, p256 or p384"),
                )
            })?;
            // The token's PIN and the CA key's password are found by the service when the
            // token or the key is locked.
            let r = service
                .token_enroll(&TokenEnrollRequest {
                    token,
                    secret: None,
                    label,
                    email,
                    key_type,
                    ca,
                    ca_secret: None,
                    days,
                })
                .await?;
            if let Some(out) = &csr_out {
                io::write_file(out, r.csr_pem.as_bytes(), io::Access::Default)?;
            }
            let csr_file = csr_out.map(|p| p.display().to_string());
            if json {
                let mut v = serde_json::to_value(&r).map_err(super::internal)?;
                if let Some(map) = v.as_object_mut() {
                    map.insert("csr_file".into(), csr_file.clone().into());
                }
                print_json(&v)?;
            } else {
                outln!("key:         {}", r.key);
                if let Some(f) = &csr_file {
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
        } => {
            let p12_secret = p12_secret(service, &p12, p12_password_file.as_deref())?;
            let k = service
                .token_import(&TokenImportRequest {
                    token,
                    secret: None,
                    p12: io::read_named(&p12)?,
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
