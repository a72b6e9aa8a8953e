//! chain build, sst create|list|extract.

use anyhow::Result;
use smimekit_service::{ChainBuildRequest, Service, StoreFormat};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{ChainCommand, SstCommand, StoreFormatArg};

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
    let report = service.build_chain(&ChainBuildRequest {
        leaf: cert,
        pool,
        trust,
        at: parse_at(at.as_deref())?,
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
                None => StoreFormat::from_path(&output),
            };
            let mut list = service.load_all_certificates(&certs)?;
            for reference in from_store {
                let req = smimekit_service::KeyRequest {
                    reference,
                    ..Default::default()
                };
                list.extend(service.store_certificates(&req).await?);
            }
            let bytes = service.create_store(&list, format)?;
            crate::io::write_output(Some(&output), &bytes)?;
            let listing = service.list_store(&output)?;
            if json {
                print_json(&listing)?;
            } else {
                outln!(
                    "{}: {} certificate(s), {} bytes ({})",
                    output.display(),
                    listing.count,
                    bytes.len(),
                    listing.format
                );
            }
            Ok(EXIT_OK)
        }
        SstCommand::List { file } => {
            let listing = service.list_store(&file)?;
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
            let written = service.extract_store(&file, &dir)?;
            if json {
                print_json(&written)?;
            } else {
                for w in &written {
                    outln!("{}  {}", w.path, w.subject);
                }
            }
            Ok(EXIT_OK)
        }
    }
}
