//! inventory, audit log, audit verify, directory export, directory import.

use std::path::PathBuf;

use anyhow::Result;
use smimekit_service::{
    AuditLogRequest, AuditLogRow, DirectoryImportRequest, InventoryRequest, Service,
};

use super::{EXIT_INVALID, EXIT_OK, print_json, usage};
use crate::cli::{AuditCommand, InventoryArgs};
use crate::io;

/// `--since`: RFC 3339, or a date (midnight UTC).
fn parse_since(s: &str) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| {
            usage(format!(
                "--since {s}: not a time (RFC 3339, e.g. 2026-01-26T14:40:07Z) or a date (2026-01-26)"
            ))
        })
}

pub async fn inventory(service: &Service, a: InventoryArgs, json: bool) -> Result<u8> {
    let r = service
        .inventory(&InventoryRequest {
            expiring_days: a.expiring_days,
            directory: a.directory,
            include_gone: a.all,
        })
        .await?;
    if json {
        print_json(&r)?;
        return Ok(EXIT_OK);
    }
    let scope = match (r.expiring_days, &r.directory) {
        (Some(d), Some(dir)) => format!(" expiring within {d} days in directory {dir}"),
        (Some(d), None) => format!(" expiring within {d} days"),
        (None, Some(dir)) => format!(" in directory {dir}"),
        (None, None) => String::new(),
    };
    outln!(
        "{} certificate(s){scope} (store {}, at {})",
        r.certificates.len(),
        r.store,
        r.now
    );
    for c in &r.certificates {
        let mut notes = Vec::new();
        if let Some(attribute) = &c.source_attribute {
            notes.push(format!("in {attribute}"));
        }
        if c.published_by_smimekit {
            notes.push("published by smimekit".into());
        }
        if !c.present {
            notes.push("gone".into());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        outln!(
            "  {}  {:>5}d  {:<12} {}  {}  {}  {}{notes}",
            c.not_after,
            c.days_left,
            c.directory,
            c.address,
            c.sha1_thumbprint,
            c.key_type,
            c.subject
        );
    }
    Ok(EXIT_OK)
}

fn print_row(r: &AuditLogRow) {
    let address = if r.address.is_empty() {
        String::new()
    } else {
        format!(" {}", r.address)
    };
    outln!(
        "#{} {} {} ({}) {} {}{address}: {}",
        r.seq,
        r.time,
        r.actor,
        r.frontend,
        r.operation,
        r.directory,
        r.result
    );
    if !r.before.is_empty() || !r.after.is_empty() {
        outln!("    before: {}", r.before.join(", "));
        outln!("    after:  {}", r.after.join(", "));
    }
}

pub async fn audit(service: &Service, c: AuditCommand, json: bool) -> Result<u8> {
    match c {
        AuditCommand::Log {
            since,
            address,
            directory,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let r = service
                .audit_log(&AuditLogRequest {
                    since,
                    address,
                    directory,
                })
                .await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("{} change(s) (store {})", r.rows.len(), r.store);
                for row in &r.rows {
                    print_row(row);
                }
            }
            Ok(EXIT_OK)
        }
        AuditCommand::Verify => {
            let r = service.audit_verify().await?;
            if json {
                print_json(&r)?;
            } else if let Some(bad) = &r.first_bad {
                outln!(
                    "audit log broken at row {}: {} ({} row(s) before it intact; store {})",
                    bad.seq,
                    bad.problem,
                    r.rows_ok,
                    r.store
                );
                if let Some(row) = &bad.row {
                    print_row(row);
                }
            } else {
                outln!("audit log intact: {} row(s) (store {})", r.rows_ok, r.store);
            }
            Ok(if r.intact { EXIT_OK } else { EXIT_INVALID })
        }
    }
}

/// `directory export [--out F]`: the JSON form to the file or standard output.
pub async fn export(
    service: &Service,
    directory: Option<String>,
    output: Option<PathBuf>,
    json: bool,
) -> Result<u8> {
    let r = service.export_directory(directory.as_deref()).await?;
    io::write_output(output.as_deref(), &r.json)?;
    if let Some(path) = &output {
        if json {
            print_json(&r)?;
        } else {
            outln!(
                "directory {}: {} recipient(s), {} certificate(s), trust chain of {} written to {}",
                r.directory,
                r.recipients,
                r.certificates,
                r.trust_chain,
                path.display()
            );
        }
    }
    Ok(EXIT_OK)
}

/// `directory import F [--replace]`.
pub async fn import(
    service: &Service,
    file: PathBuf,
    directory: Option<String>,
    replace: bool,
    json: bool,
) -> Result<u8> {
    let r = service
        .import_directory(&DirectoryImportRequest {
            json: io::read_named(&file)?,
            directory,
            replace,
        })
        .await?;
    if json {
        print_json(&r)?;
    } else {
        outln!(
            "imported {} into directory {} ({}): {} recipient(s), {} certificate(s), trust chain of {}",
            r.source,
            r.directory,
            if replace { "replaced" } else { "merged" },
            r.recipients,
            r.certificates,
            r.trust_chain
        );
    }
    Ok(EXIT_OK)
}
