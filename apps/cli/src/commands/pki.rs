//! chain build, sst create|list|extract.

use std::path::Path;

use anyhow::Result;
use smimekit_service::{ChainBuildRequest, Named, Service, StoreFormat};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{ChainCommand, SstCommand, StoreFormatArg};
use crate::io;

/// The format of `sst create` from its output file name: `.p7b`/`.p7c` → PKCS#7, `.pem`/`.crt`
/// → PEM, else SST.
fn format_of(path: &Path) -> StoreFormat {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("p7b" | "p7c") => StoreFormat::P7b,
        Some("pem" | "crt") => StoreFormat::Pem,
        _ => StoreFormat::Sst,
    }
}

/// RFC 3339 `--at` → Unix seconds (a usage error otherwise).
pub fn parse_at(at: Option<&str>) -> Result<Option<i64>> {
    at.map(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| {
                smimekit_service::ServiceError::new(
                    smimekit_service::ErrorKind::Invalid,
                    format!("--at {s}: not an RFC 3339 time ({e})"),
                )
                .into()
            })
    })
    .transpose()
}

pub fn chain(service: &Service, c: ChainCommand, json: bool) -> Result<u8> {
    let ChainCommand::Build {
        cert,
        pool,
        trust,
        at,
    } = c;
    let at = parse_at(at.as_deref())?;
    let report = service.build_chain(&ChainBuildRequest {
        leaf: io::read_named(&cert)?,
        pool: io::read_all_named(&pool)?,
        trust: io::read_all_named(&trust)?,
        at,
    })?;
    if json {
        print_json(&report)?;
    } else {
        outln!(
            "{}: {} at {}",
            report.leaf,
            if report.valid {
                "valid path"
            } else {
                "NO valid path"
            },
            report.at
        );
        for s in &report.skipped {
            outln!("  skipped {s}");
        }
        for (i, p) in report.paths.iter().enumerate() {
            outln!(
                "path {} ({}):",
                i + 1,
                if p.valid {
                    "valid"
                } else if p.anchored {
                    "anchored, with problems"
                } else {
                    "not anchored"
                }
            );
            for (n, c) in p.certificates.iter().enumerate() {
                outln!(
                    "  [{n}] {}  (sha1 {}, until {})",
                    c.subject,
                    c.sha1_thumbprint,
                    c.not_after
                );
            }
            for x in &p.problems {
                outln!("  {}: {}", x.kind, x.message);
            }
        }
        if report.paths.is_empty() {
            outln!("  no path");
        }
    }
    Ok(if report.valid { EXIT_OK } else { EXIT_INVALID })
}

pub async fn sst(service: &Service, c: SstCommand, json: bool) -> Result<u8> {
    match c {
        SstCommand::Create {
            output,
            format,
            certs,
            from_store,
        } => {
            let format = match format {
                Some(StoreFormatArg::Sst) => StoreFormat::Sst,
                Some(StoreFormatArg::P7b) => StoreFormat::P7b,
                Some(StoreFormatArg::Pem) => StoreFormat::Pem,
                None => format_of(&output),
            };
            let mut list = service.all_certificates(&io::read_all_named(&certs)?)?;
            for reference in from_store {
                let req = smimekit_service::KeyRequest {
                    reference,
                    ..Default::default()
                };
                list.extend(service.store_certificates(&req).await?);
            }
            let bytes = service.create_store(&list, format)?;
            io::write_output(Some(&output), &bytes)?;
            let size = bytes.len();
            let listing = service.list_store(&Named::new(output.display().to_string(), bytes))?;
            if json {
                print_json(&listing)?;
            } else {
                outln!(
                    "{}: {} certificate(s), {} bytes ({})",
                    output.display(),
                    listing.count,
                    size,
                    listing.format
                );
            }
            Ok(EXIT_OK)
        }
        SstCommand::List { file } => {
            let listing = service.list_store(&io::read_named(&file)?)?;
            if json {
                print_json(&listing)?;
            } else {
                outln!(
                    "{}: {} certificate(s) ({})",
                    file.display(),
                    listing.count,
                    listing.format
                );
                for e in &listing.certificates {
                    outln!("{:>4}  {}", e.index + 1, e.subject);
                    outln!("      issuer:  {}", e.issuer);
                    outln!("      sha1:    {}", e.sha1_thumbprint);
                    outln!("      sha256:  {}", e.sha256_fingerprint);
                    outln!("      expires: {}", e.not_after);
                    if !e.properties.is_empty() {
                        let names: Vec<String> = e
                            .properties
                            .iter()
                            .map(|p| {
                                if p.name == "FRIENDLY_NAME" {
                                    format!("{}={:?}", p.name, p.value)
                                } else {
                                    p.name.clone()
                                }
                            })
                            .collect();
                        outln!("      props:   {}", names.join(", "));
                    }
                }
            }
            Ok(EXIT_OK)
        }
        SstCommand::Extract { file, dir } => {
            let certs = service.extract_store(&io::read_named(&file)?)?;
            io::create_dir_all(&dir)?;
            let mut written = Vec::with_capacity(certs.len());
            for c in &certs {
                let path = dir.join(&c.file_name);
                io::write_file(&path, c.der.as_bytes(), io::Access::Default)?;
                written.push(serde_json::json!({
                    "path": path.display().to_string(),
                    "subject": c.subject,
                    "sha1_thumbprint": c.sha1_thumbprint,
                }));
            }
            if json {
                print_json(&written)?;
            } else {
                for (w, c) in written.iter().zip(&certs) {
                    outln!("{}  {}", w["path"].as_str().unwrap_or_default(), c.subject);
                }
            }
            Ok(EXIT_OK)
        }
    }
}
