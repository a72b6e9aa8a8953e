//! lookup, publish, unpublish, trust push, trust show, directory audit.

use anyhow::Result;
use smimekit_service::{
    AuditRequest, CertSummary, DirectoryCert, LookupRequest, PublishRequest, PublishResult,
    Service, TrustPushRequest, TrustResult, UnpublishRequest,
};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{DirectoryCommand, LookupArgs, PublishArgs, TrustCommand, UnpublishArgs};

fn cert_line(mark: &str, c: &DirectoryCert) {
    println!(
        "  {mark} {}  {}  [{}, {} .. {}]",
        c.cert.sha1_thumbprint,
        c.cert.subject,
        c.cert.validity,
        c.cert.not_before,
        c.cert.not_after
    );
}

fn summary_line(mark: &str, c: &CertSummary) {
    println!(
        "  {mark} {}  {}  [{}, until {}]",
        c.sha1_thumbprint, c.subject, c.validity, c.not_after
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
    println!("{} ({kind}) in directory {}:", r.address, r.directory);
    for c in &r.certificates {
        println!("  subject:     {}", c.cert.subject);
        println!("  address:     {}", c.address);
        println!(
            "  validity:    {} .. {} ({})",
            c.cert.not_before, c.cert.not_after, c.cert.validity
        );
        println!("  thumbprint:  {} (SHA-1)", c.cert.sha1_thumbprint);
        println!("  sha256:      {}", c.cert.sha256_fingerprint);
        match &c.unusable_reason {
            None => println!("  encryption:  usable"),
            Some(why) => println!("  encryption:  not usable: {why}"),
        }
        println!();
    }
    Ok(EXIT_OK)
}

fn print_change(verb: &str, r: &PublishResult) {
    println!(
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

pub async fn publish(service: &Service, a: PublishArgs, json: bool) -> Result<u8> {
    let r = service
        .publish(&PublishRequest {
            address: a.address,
            certificate: a.cert,
            directory: a.directory,
            contact: a.contact,
            replace: a.replace,
            prune_expired: a.prune_expired,
            force: a.force,
        })
        .await?;
    if json {
        print_json(&r)?;
    } else {
        print_change("published for", &r);
    }
    Ok(EXIT_OK)
}

pub async fn unpublish(service: &Service, a: UnpublishArgs, json: bool) -> Result<u8> {
    let r = service
        .unpublish(&UnpublishRequest {
            address: a.address,
            certificate: a.cert,
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
    println!(
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
        } => {
            let files = sst.into_iter().chain(certs).collect();
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
    let DirectoryCommand::Audit { directory, crls } = c;
    let r = service.audit(&AuditRequest { directory, crls }).await?;
    if json {
        print_json(&r)?;
    } else {
        for d in &r.directories {
            println!(
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
                println!("  {} {problem}{attr}{thumb}: {}", f.address, f.detail);
            }
        }
    }
    Ok(if r.is_clean() { EXIT_OK } else { EXIT_INVALID })
}
