//! keys list, cert show, cert export.

use std::path::Path;

use anyhow::Result;
use smimekit_service::{CertSummary, ErrorKind, ExportFormat, KeyRequest, Service, ServiceError};

use super::{EXIT_OK, open_key, print_json};
use crate::cli::CertCommand;
use crate::io;

pub async fn keys_list(
    service: &Service,
    store: String,
    cert: Option<String>,
    json: bool,
) -> Result<u8> {
    let req = KeyRequest {
        reference: store,
        certificate: cert,
        ..KeyRequest::default()
    };
    let keys = service.list_keys(&req).await?;
    if json {
        print_json(&keys)?;
    } else {
        for k in &keys {
            outln!(
                "{} {} {:?}{}",
                k.store,
                k.selector,
                k.kind,
                k.label
                    .as_deref()
                    .map(|l| format!(" \"{l}\""))
                    .unwrap_or_default()
            );
            if let Some(c) = &k.certificate {
                print_cert(c, "  ");
            }
            for c in &k.chain {
                outln!("  issuer certificate: {}", c.subject);
            }
        }
    }
    Ok(EXIT_OK)
}

fn print_cert(c: &CertSummary, indent: &str) {
    outln!("{indent}subject:  {}", c.subject);
    outln!("{indent}issuer:   {}", c.issuer);
    if !c.emails.is_empty() {
        outln!("{indent}email:    {}", c.emails.join(", "));
    }
    outln!(
        "{indent}valid:    {} .. {} ({})",
        c.not_before,
        c.not_after,
        c.validity
    );
    outln!("{indent}serial:   {}", c.serial);
    outln!("{indent}sha1:     {}", c.sha1_thumbprint);
    outln!("{indent}sha256:   {}", c.sha256_fingerprint);
}

fn is_key_store(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.ends_with(".p12")
        || lower.ends_with(".pfx")
        || source.contains(':') && !Path::new(source).exists()
}

pub async fn run(service: &Service, c: CertCommand, json: bool) -> Result<u8> {
    match c {
        CertCommand::Show { file } => {
            let certs = service.certificates(&io::read_named(&file)?)?;
            let summaries: Vec<CertSummary> = certs.iter().map(|c| service.summarize(c)).collect();
            if json {
                print_json(&summaries)?;
            } else {
                for (i, s) in summaries.iter().enumerate() {
                    outln!("certificate {}:", i + 1);
                    print_cert(s, "  ");
                }
            }
            Ok(EXIT_OK)
        }
        CertCommand::Export {
            source,
            der,
            pem,
            chain,
            output,
        } => {
            let format = match (der, pem) {
                (true, _) => ExportFormat::Der,
                (_, true) => ExportFormat::Pem,
                _ => {
                    return Err(ServiceError::new(
                        ErrorKind::Invalid,
                        "cert export needs --der or --pem",
                    )
                    .into());
                }
            };
            let mut certs = if is_key_store(&source) {
                let key = open_key(service, &source, None).await?;
                let mut v = vec![key.certificate().clone()];
                v.extend(key.chain().iter().cloned());
                v
            } else {
                service.certificates(&io::read_named(Path::new(&source))?)?
            };
            if !chain {
                certs.truncate(1);
            }
            let bytes = service.export_certificates(&certs, format)?;
            io::write_output(output.as_deref(), &bytes)?;
            if json && output.is_some() {
                let s: Vec<CertSummary> = certs.iter().map(|c| service.summarize(c)).collect();
                print_json(&s)?;
            }
            Ok(EXIT_OK)
        }
    }
}
