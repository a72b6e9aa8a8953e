//! `smimekit plugins`: list the registered plugins; `plugins check FILE`: the vendor
//! conformance suite (the service's `check_plugin`), rendered as a report a vendor can act on.

use std::path::Path;

use anyhow::Result;
use smimekit_service::{
    Config, ErrorKind, PluginCheckReport, PluginCheckRequest, Secret, Service, ServiceError,
};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{PluginCheckArgs, PluginsArgs};

/// `smimekit plugins` (the list; `check` is run before a service is built).
pub fn run(service: &Service, _args: PluginsArgs, json: bool) -> Result<u8> {
    let plugins = service.plugins();
    if json {
        print_json(&plugins)?;
    } else {
        for p in plugins {
            outln!(
                "{:<14} {:<12} {:<9} {:<8} {}",
                p.port,
                p.id,
                p.origin,
                p.version,
                p.description
            );
            if let Some(file) = &p.file {
                outln!(
                    "{:<14} {} ({}; {})",
                    "",
                    file.display(),
                    p.abi.as_deref().unwrap_or(""),
                    p.capabilities.join(", ")
                );
            }
        }
    }
    Ok(EXIT_OK)
}

/// `smimekit plugins check FILE`: exit 0 when every required check passed, 1 otherwise.
pub async fn check(
    config: &Config,
    a: &PluginCheckArgs,
    password_file: Option<&Path>,
    json: bool,
) -> Result<u8> {
    let secret = match password_file {
        Some(f) => Some(
            std::fs::read(f)
                .map(|b| Secret::new(b).first_line())
                .map_err(|e| {
                    ServiceError::new(
                        ErrorKind::Io,
                        format!("--password-file {}: {e}", f.display()),
                    )
                })?,
        ),
        None => None,
    };
    let req = PluginCheckRequest {
        file: a.file.clone(),
        directory: a.directory.clone(),
        address: a.address.clone(),
        key: a.key.clone(),
        key_cert: a.cert.clone(),
        secret,
        timeout: std::time::Duration::from_secs(a.timeout),
    };
    let report = smimekit_service::check_plugin(config, req).await?;
    if json {
        print_json(&report)?;
    } else {
        render(&report);
    }
    Ok(if report.passed { EXIT_OK } else { EXIT_INVALID })
}

fn render(r: &PluginCheckReport) {
    outln!("plugin {}", r.file.display());
    for p in &r.plugins {
        outln!(
            "  {} {:?} {} ({}; {})",
            p.interface,
            p.name,
            p.version,
            p.abi,
            p.capabilities.join(", ")
        );
    }
    let (mut passed, mut failed, mut advisory, mut skipped) = (0, 0, 0, 0);
    for c in &r.checks {
        let mark = match (c.outcome, c.required) {
            ("passed", _) => {
                passed += 1;
                "ok  "
            }
            ("failed", true) => {
                failed += 1;
                "FAIL"
            }
            ("failed", false) => {
                advisory += 1;
                "warn"
            }
            _ => {
                skipped += 1;
                "skip"
            }
        };
        outln!("{mark} {:<34} {}", c.id, c.title);
        if let Some(e) = &c.expected {
            outln!("       expected: {e}");
        }
        if let Some(s) = &c.seen {
            outln!("       seen:     {s}");
        }
        if let Some(w) = &c.why {
            let req = if c.required { " (required)" } else { "" };
            outln!("       skipped{req}: {w}");
        }
        if let Some(n) = &c.note {
            outln!("       {n}");
        }
    }
    outln!(
        "{}: {passed} passed, {failed} failed, {advisory} advisory warnings, {skipped} skipped",
        if r.passed {
            "PASSED"
        } else {
            "FAILED (a required check failed or was skipped)"
        }
    );
}
