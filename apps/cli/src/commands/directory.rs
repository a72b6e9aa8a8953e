//! lookup, publish, unpublish, trust push, trust show, directory audit.

use anyhow::Result;
use std::sync::Arc;

use smimekit_service::deploy::{DeploySource, FsDeploySource};
use smimekit_service::{
    AuditRequest, BulkList, BulkPublishRequest, CertSummary, DirectoryCert, EmitResult, ErrorKind,
    LookupRequest, Named, OrgSettingsResult, PublishRequest, PublishResult, Service, ServiceError,
    TrustPushRequest, TrustResult, UnpublishRequest,
};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{
    DirectoryCommand, ExchangeCommand, ExchangeConfigCommand, LookupArgs, PublishArgs,
    TrustCommand, UnpublishArgs,
};
use crate::io;

fn cert_line(mark: &str, c: &DirectoryCert) {
    outln!(
        "  {mark} {}  {}  [{}, {} .. {}]",
        c.cert.sha1_thumbprint,
        c.cert.subject,
        c.cert.validity,
        c.cert.not_before,
        c.cert.not_after
    );
}

fn summary_line(mark: &str, c: &CertSummary) {
    outln!(
        "  {mark} {}  {}  [{}, until {}]",
        c.sha1_thumbprint,
        c.subject,
        c.validity,
        c.not_after
    );
}

pub async fn lookup(service: &Service, a: LookupArgs, json: bool) -> Result<u8> {
    let r = service
        .lookup(&LookupRequest {
            address: a.address,
            directory: a.directory,
        })
        .await?;
    if json {
        print_json(&r)?;
        return Ok(EXIT_OK);
    }
    let kind = r
        .kind
        .map(|k| serde_json::to_value(k).unwrap_or_default())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    outln!("{} ({kind}) in directory {}:", r.address, r.directory);
    for c in &r.certificates {
        outln!("  subject:     {}", c.cert.subject);
        outln!("  address:     {}", c.address);
        outln!(
            "  validity:    {} .. {} ({})",
            c.cert.not_before,
            c.cert.not_after,
            c.cert.validity
        );
        outln!("  thumbprint:  {} (SHA-1)", c.cert.sha1_thumbprint);
        outln!("  sha256:      {}", c.cert.sha256_fingerprint);
        match &c.unusable_reason {
            None => outln!("  encryption:  usable"),
            Some(why) => outln!("  encryption:  not usable: {why}"),
        }
        outln!();
    }
    Ok(EXIT_OK)
}

fn print_change(verb: &str, r: &PublishResult) {
    outln!(
        "{verb} {} in directory {}: {} added, {} kept, {} removed",
        r.address,
        r.directory,
        r.added.len(),
        r.kept.len(),
        r.removed.len()
    );
    for c in &r.added {
        cert_line("+", c);
    }
    for c in &r.kept {
        cert_line("=", c);
    }
    for c in &r.removed {
        cert_line("-", c);
    }
}

/// Saves the script of `--emit-powershell` and says what it does. A file that cannot be
/// written is a usage error (exit 2), as it always was.
fn print_emit(r: &EmitResult, file: &std::path::Path, json: bool) -> Result<()> {
    io::write_file(file, r.script.as_bytes(), io::Access::Default)
        .map_err(|e| super::usage(super::render(&e)))?;
    if json {
        print_json(&serde_json::json!({
            "file": file,
            "operations": r.operations,
        }))?;
    } else {
        outln!(
            "wrote {} ({} operation(s); nothing was sent): run it with pwsh after Connect-ExchangeOnline",
            file.display(),
            r.operations.len()
        );
        for op in &r.operations {
            outln!("  {op}");
        }
    }
    Ok(())
}

pub async fn publish(service: &Service, a: PublishArgs, json: bool) -> Result<u8> {
    if let Some(from) = a.from {
        return publish_bulk(
            service,
            a.emit_powershell,
            from,
            a.report,
            a.parallel,
            a.time_budget,
            a.directory,
            a.contact,
            a.replace,
            a.prune_expired,
            a.force,
            json,
        )
        .await;
    }
    let (Some(address), Some(cert)) = (a.address, a.cert) else {
        return Err(super::usage(
            "publish needs ADDRESS and --cert F (or --from FILE)",
        ));
    };
    let req = PublishRequest {
        address,
        certificate: io::read_named(&cert)?,
        directory: a.directory,
        contact: a.contact,
        replace: a.replace,
        prune_expired: a.prune_expired,
        force: a.force,
    };
    if let Some(file) = a.emit_powershell {
        print_emit(&service.emit_powershell_publish(&[req])?, &file, json)?;
        return Ok(EXIT_OK);
    }
    let r = service.publish(&req).await?;
    if json {
        print_json(&r)?;
    } else {
        print_change("published for", &r);
        if let Some(name) = &r.created_contact {
            // The address-book advice is Exchange's and Active Directory's; a vendor
            // plugin's directory gets the plain fact.
            if service.is_plugin_directory(&r.directory) {
                outln!("  created the external contact {name:?}");
            } else {
                outln!(
                    "  created the external contact {name:?}: senders must pick it in the address book (GAL) by this name, not type the address"
                );
            }
        }
    }
    Ok(EXIT_OK)
}

/// `--from FILE`: the list's text, or a folder's file names, with the certificates it names to
/// be read relative to the list's folder (or the folder), each when its item is tried.
fn bulk_list(from: &std::path::Path) -> std::result::Result<BulkPublishRequest, ServiceError> {
    let unreadable = |e: std::io::Error| {
        ServiceError::new(ErrorKind::Invalid, format!("{}: {e}", from.display()))
    };
    let name = from.display().to_string();
    let (list, base) = if from.is_dir() {
        let files = FsDeploySource {
            base: from.to_path_buf(),
        };
        let names = files.list(std::path::Path::new("")).map_err(unreadable)?;
        (BulkList::Folder(Named::new(name, names)), files.base)
    } else {
        let text = std::fs::read_to_string(from).map_err(unreadable)?;
        let base = from
            .parent()
            .unwrap_or(std::path::Path::new(""))
            .to_path_buf();
        (BulkList::Text(Named::new(name, text)), base)
    };
    Ok(BulkPublishRequest::new(
        list,
        Arc::new(FsDeploySource { base }),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn publish_bulk(
    service: &Service,
    emit: Option<std::path::PathBuf>,
    from: std::path::PathBuf,
    report: Option<std::path::PathBuf>,
    parallel: usize,
    time_budget: Option<std::time::Duration>,
    directory: Option<String>,
    contact: bool,
    replace: bool,
    prune_expired: bool,
    force: bool,
    json: bool,
) -> Result<u8> {
    let req = BulkPublishRequest {
        directory,
        contact,
        replace,
        prune_expired,
        force,
        parallel,
        time_budget,
        ..bulk_list(&from)?
    };
    if let Some(file) = emit {
        let items = service.bulk_requests(&req).await?;
        print_emit(&service.emit_powershell_publish(&items)?, &file, json)?;
        return Ok(EXIT_OK);
    }
    // Ctrl-C stops the run between items (those in flight finish, the rest are reported not
    // done, exit 5).
    let r = super::progress::watch(service.bulk_publish(req), "items").await?;
    if let Some(path) = &report {
        let report = serde_json::to_vec_pretty(&r).map_err(super::internal)?;
        io::write_file(path, &report, io::Access::Default)?;
    }
    if json {
        print_json(&r)?;
    } else {
        for i in r.items.iter().filter(|i| i.status == "failed") {
            outln!(
                "  FAILED {}: {}",
                i.address,
                i.error.as_deref().unwrap_or("")
            );
        }
        outln!(
            "bulk publish to directory {}: {} item(s): {} published, {} unchanged, {} failed{} in {:.1} s{}{}",
            r.directory,
            r.total,
            r.published,
            r.unchanged,
            r.failed,
            if r.cancelled > 0 {
                format!(", {} cancelled", r.cancelled)
            } else {
                String::new()
            },
            r.seconds,
            if r.out_of_time > 0 {
                format!(
                    " ({} of them not done when the {} s time budget was spent)",
                    r.out_of_time, r.time_budget_secs
                )
            } else {
                String::new()
            },
            report
                .map(|p| format!("; report {}", p.display()))
                .unwrap_or_default()
        );
        if !r.not_done.is_empty() {
            outln!(
                "not done: {}; re-run the same command to finish them (items done are no-ops)",
                r.not_done.join(", ")
            );
        }
    }
    // A failed item is a recipient problem, like a failed single publish; items left only
    // because the directory kept throttling until the time budget was spent are "try later".
    Ok(if r.failed == 0 && r.cancelled == 0 {
        EXIT_OK
    } else if r.failed > r.out_of_time {
        super::EXIT_KEY
    } else {
        super::EXIT_IO
    })
}

pub async fn unpublish(service: &Service, a: UnpublishArgs, json: bool) -> Result<u8> {
    let r = service
        .unpublish(&UnpublishRequest {
            address: a.address,
            certificate: io::read_named(&a.cert)?,
            directory: a.directory,
        })
        .await?;
    if json {
        print_json(&r)?;
    } else {
        print_change("unpublished from", &r);
    }
    Ok(EXIT_OK)
}

fn print_trust(r: &TrustResult, changed: bool) {
    outln!(
        "trust chain in directory {}: {} certificate(s){}",
        r.directory,
        r.certificates.len(),
        if changed {
            format!(
                " ({} added, {} kept, {} removed)",
                r.added.len(),
                r.kept.len(),
                r.removed.len()
            )
        } else {
            String::new()
        }
    );
    if changed {
        for c in &r.added {
            summary_line("+", c);
        }
        for c in &r.kept {
            summary_line("=", c);
        }
        for c in &r.removed {
            summary_line("-", c);
        }
    } else {
        for c in &r.certificates {
            summary_line("*", c);
        }
    }
}

pub async fn trust(service: &Service, c: TrustCommand, json: bool) -> Result<u8> {
    let (r, changed) = match c {
        TrustCommand::Push {
            sst,
            certs,
            directory,
            emit_powershell,
        } => {
            let files: Vec<std::path::PathBuf> = sst.into_iter().chain(certs).collect();
            let files = io::read_all_named(&files)?;
            if let Some(file) = emit_powershell {
                print_emit(
                    &service.emit_powershell_trust(directory.as_deref(), &files)?,
                    &file,
                    json,
                )?;
                return Ok(EXIT_OK);
            }
            (
                service
                    .trust_push(&TrustPushRequest { files, directory })
                    .await?,
                true,
            )
        }
        TrustCommand::Show { directory } => {
            (service.trust_show(directory.as_deref()).await?, false)
        }
    };
    if json {
        print_json(&r)?;
    } else {
        print_trust(&r, changed);
    }
    Ok(EXIT_OK)
}

pub async fn directory(service: &Service, c: DirectoryCommand, json: bool) -> Result<u8> {
    let (directory, crls) = match c {
        DirectoryCommand::Audit { directory, crls } => (directory, crls),
        DirectoryCommand::Export { directory, output } => {
            return super::store::export(service, directory, output, json).await;
        }
        DirectoryCommand::Import {
            file,
            directory,
            replace,
        } => return super::store::import(service, file, directory, replace, json).await,
    };
    let crls = io::read_all_named(&crls)?;
    let r = service.audit(AuditRequest { directory, crls }).await?;
    if json {
        print_json(&r)?;
    } else {
        for d in &r.directories {
            if let Some(why) = &d.skipped {
                // The reason names the directory itself.
                outln!("{why}: not audited");
                continue;
            }
            outln!(
                "directory {}: {} recipient(s), {} certificate(s), {} finding(s)",
                d.directory,
                d.recipients,
                d.certificates,
                d.findings.len()
            );
            for f in &d.findings {
                let problem = serde_json::to_value(f.problem)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let attr = f
                    .attribute
                    .as_deref()
                    .map(|a| format!(" [{a}]"))
                    .unwrap_or_default();
                let thumb = f
                    .certificate
                    .as_ref()
                    .map(|c| format!(" {}", c.sha1_thumbprint))
                    .unwrap_or_default();
                outln!("  {} {problem}{attr}{thumb}: {}", f.address, f.detail);
            }
        }
    }
    Ok(if r.is_clean() { EXIT_OK } else { EXIT_INVALID })
}

fn print_settings(r: &OrgSettingsResult, json: bool) -> Result<()> {
    if json {
        print_json(r)?;
        return Ok(());
    }
    outln!("S/MIME settings of directory {}:", r.directory);
    for (k, v) in &r.settings {
        outln!("  {k:<52} {v}");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

pub async fn exchange(service: &Service, c: ExchangeCommand, json: bool) -> Result<u8> {
    let c = match c {
        ExchangeCommand::Config(c) => c,
        ExchangeCommand::Probe { directory, address } => {
            let r = service
                .exchange_probe(directory.as_deref(), address.as_deref())
                .await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("probe of directory {}:", r.directory);
                for c in &r.checks {
                    outln!("  {:<8} {:<40} {}", c.status, c.name, c.detail);
                }
                for s in &r.suggestions {
                    outln!("suggested setting: {s}");
                }
            }
            return Ok(if r.passed { EXIT_OK } else { super::EXIT_KEY });
        }
    };
    match c {
        ExchangeConfigCommand::Show { directory } => {
            print_settings(&service.org_settings(directory.as_deref()).await?, json)?;
        }
        ExchangeConfigCommand::Set { values, directory } => {
            let mut pairs = Vec::new();
            for v in values {
                let Some((k, val)) = v.split_once('=') else {
                    return Err(super::usage(format!("{v:?}: expected NAME=VALUE")));
                };
                pairs.push((k.trim().to_string(), val.trim().to_string()));
            }
            print_settings(
                &service
                    .set_org_settings(directory.as_deref(), &pairs)
                    .await?,
                json,
            )?;
        }
    }
    Ok(EXIT_OK)
}

pub async fn login(service: &Service, directory: Option<String>, json: bool) -> Result<u8> {
    // The device-code prompt itself was shown on standard error as it happened (see
    // `show_sign_ins`).
    let r = service.login(directory.as_deref()).await?;
    if json {
        print_json(&r)?;
    } else {
        outln!("{}", r.status);
    }
    Ok(EXIT_OK)
}

/// Shows every interactive sign-in on standard error while a command runs (a device-code
/// sign-in can happen in any command that needs a directory token, not only `login`).
pub fn show_sign_ins(service: &Service) -> tokio::task::JoinHandle<()> {
    let mut challenges = service.sign_in_challenges();
    tokio::spawn(async move {
        loop {
            match challenges.recv().await {
                Ok(c) => eprintln!("{}", c.message),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}
