//! `plan`, `apply`, `status`: read the deploy file and what it names, call the service, render
//! the plan (the service's text, the same the web and TUI show), ask, save.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use smimekit_service::deploy::{
    self, ApplyReport, ApplyRequest, Deliver, Delivery, FsDeploySource, Plan, PlanRequest,
    StatusRequest,
};
use smimekit_service::{ErrorKind, Service, ServiceError};

use super::{EXIT_INVALID, EXIT_IO, EXIT_OK, EXIT_USAGE, internal, print_json, usage};
use crate::cli::{ApplyArgs, PlanArgs, StatusArgs};
use crate::io;

/// Reads a deploy file and everything it names (relative to its folder).
fn load(service: &Service, file: &Path) -> Result<deploy::Desired> {
    Ok(load_opening(service, file, None)?.0)
}

/// [`load`], for a plan: with `ahead`, what the plan will read starts while the certificate
/// files the deploy file names are read: its directories are opened, and listed with
/// `Some(true)` (see [`Service::plan_ahead`]); keep the guard until the plan is made.
fn load_opening(
    service: &Service,
    file: &Path,
    ahead: Option<bool>,
) -> Result<(deploy::Desired, Option<smimekit_service::OpeningAhead>)> {
    let text = std::fs::read(file).map_err(|e| io_err(file, e))?;
    let text = String::from_utf8(text).map_err(|_| {
        ServiceError::new(
            ErrorKind::Invalid,
            format!("{}: not UTF-8 text", file.display()),
        )
    })?;
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let source = FsDeploySource { base };
    let name = file.display().to_string();
    let opening = ahead.map(|list| service.plan_ahead(&text, &source, list));
    let desired = deploy::load(&name, &text, &source, &service.directory_names())
        .map_err(ServiceError::from)?;
    Ok((desired, opening))
}

fn io_err(path: &Path, e: std::io::Error) -> anyhow::Error {
    ServiceError::new(ErrorKind::Io, format!("{}: {e}", path.display())).into()
}

pub async fn plan(service: &Service, a: PlanArgs, json: bool) -> Result<u8> {
    let detailed = a.detailed_exitcode;
    match plan_inner(service, a, json).await {
        Ok(code) => Ok(code),
        // Terraform's convention: 1 for an error when asked for detailed exit codes.
        Err(e) if detailed => {
            let text = super::render(&e);
            if json {
                outln!("{}", serde_json::json!({ "error": text, "exit_code": 1 }));
            }
            eprintln!("smimekit: {text}");
            Ok(EXIT_INVALID)
        }
        Err(e) => Err(e),
    }
}

async fn plan_inner(service: &Service, a: PlanArgs, json: bool) -> Result<u8> {
    let (desired, _opening) = load_opening(service, &a.file, Some(a.refresh))?;
    let request = PlanRequest {
        desired,
        replace_unmanaged: a.replace_unmanaged,
        inventory_max_age: (!a.refresh).then_some(deploy::DEFAULT_INVENTORY_MAX_AGE),
    };
    let plan = service.plan(&request).await?;
    if let Some(out) = &a.out {
        let bytes = serde_json::to_vec_pretty(&plan).map_err(internal)?;
        io::write_file(out, &bytes, io::Access::Default)?;
    }
    if json {
        print_json(&plan.shown())?;
    } else {
        out_text(&plan.render());
        if let Some(out) = &a.out {
            outln!(
                "Saved the plan to {}: apply it with `smimekit apply {}`.",
                out.display(),
                out.display()
            );
        }
    }
    let code = match (a.detailed_exitcode, plan.has_changes()) {
        (true, true) => EXIT_USAGE,
        _ => EXIT_OK,
    };
    // The process ends with the command: the file's people and the plan (tens of thousands
    // of entries, no secret among them) are left to the operating system instead of being
    // freed one by one (a tenth of the time after the last directory was read).
    std::mem::forget((request, plan));
    Ok(code)
}

fn out_text(text: &str) {
    for line in text.lines() {
        outln!("{line}");
    }
}

/// Writes `ADDRESS.p12` and `ADDRESS.p12.pass` (0600) into a folder.
struct DeliverTo(PathBuf);

impl Deliver for DeliverTo {
    fn deliver(&self, d: &Delivery) -> Result<String, ServiceError> {
        let p12 = self.0.join(format!("{}.p12", d.address));
        let pass = self.0.join(format!("{}.p12.pass", d.address));
        let fail = |e: anyhow::Error| {
            ServiceError::new(
                ErrorKind::Io,
                format!("delivering the key of {}: {}", d.address, super::render(&e)),
            )
        };
        io::create_dir_all(&self.0).map_err(fail)?;
        // The password file's content is a secret too (zeroized when dropped).
        let line = smimekit_service::Secret::new([d.password.expose(), b"\n"].concat());
        io::write_file(&pass, line.expose(), io::Access::Owner)
            .and_then(|()| io::write_file(&p12, &d.pkcs12, io::Access::Owner))
            .map_err(fail)?;
        Ok(p12.display().to_string())
    }
}

pub async fn apply(service: &Service, a: ApplyArgs, json: bool) -> Result<u8> {
    if let Some(id) = &a.force_unlock {
        let lock = service.apply_force_unlock(id).await?;
        if json {
            print_json(&lock)?;
        } else {
            outln!(
                "Freed the apply lock {} held by {} (process {} on {}).",
                lock.id,
                lock.actor,
                lock.pid,
                lock.host
            );
        }
        return Ok(EXIT_OK);
    }
    let plan = match (&a.plan, &a.file) {
        (Some(saved), None) => {
            let bytes = std::fs::read(saved).map_err(|e| io_err(saved, e))?;
            let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| {
                ServiceError::new(
                    ErrorKind::Malformed,
                    format!("{}: not a saved plan: {e}", saved.display()),
                )
            })?;
            plan
        }
        (None, Some(file)) => {
            // Apply's plan lists every directory (see below).
            let (desired, _opening) = load_opening(service, file, Some(true))?;
            service
                .plan(&PlanRequest {
                    desired,
                    replace_unmanaged: a.replace_unmanaged.clone(),
                    // The writer reads every directory: what it changes must be what is there.
                    inventory_max_age: None,
                })
                .await?
        }
        _ => {
            return Err(usage(
                "give a deploy file (--file F) or a saved plan (PLAN)",
            ));
        }
    };
    if let Some(script) = &a.emit_powershell {
        let emitted = service.apply_emit(&plan).await?;
        io::write_file(script, emitted.powershell.as_bytes(), io::Access::Default)?;
        let mut written = vec![script.display().to_string()];
        if let Some(ldif) = &emitted.ldif {
            let path = script.with_extension("ldif");
            io::write_file(&path, ldif.as_bytes(), io::Access::Default)?;
            written.push(path.display().to_string());
        }
        if json {
            print_json(&serde_json::json!({ "written": written, "plan": plan.shown() }))?;
        } else {
            out_text(&plan.render());
            outln!("Wrote {} (nothing was changed).", written.join(" and "));
        }
        return Ok(EXIT_OK);
    }
    if !json || !a.auto_approve {
        // The plan goes to standard error with --json, so standard output stays one document.
        if json {
            eprint!("{}", plan.render());
        } else {
            out_text(&plan.render());
        }
    }
    if !plan.has_changes() {
        if json {
            print_json(&serde_json::json!({ "plan": plan.shown(), "applied": false }))?;
        }
        return Ok(EXIT_OK);
    }
    if !a.auto_approve && !confirm()? {
        if !json {
            outln!("Apply cancelled: nothing was changed.");
        }
        return Ok(EXIT_INVALID);
    }
    let deliver: Option<Arc<dyn Deliver>> = a
        .deliver
        .clone()
        .map(|d| Arc::new(DeliverTo(d)) as Arc<dyn Deliver>);
    let report = super::progress::watch(
        service.apply(ApplyRequest {
            plan,
            deliver,
            ca_secret: None,
            time_budget: a.time_budget,
            // Planned a moment ago in this process with nobody reviewing it: no up-front
            // re-read (each step re-reads its entry). A saved or confirmed plan is checked.
            just_planned: a.file.is_some() && a.auto_approve,
        }),
        "steps",
    )
    .await?;
    if json {
        print_json(&report)?;
    } else {
        render_report(&report);
    }
    Ok(if report.succeeded() { EXIT_OK } else { EXIT_IO })
}

/// Asks on the terminal; refuses when nobody is there to answer.
fn confirm() -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(ServiceError::new(
            ErrorKind::Invalid,
            "apply asks before changing anything, and standard input is not a terminal: \
             review the plan and pass --auto-approve",
        )
        .into());
    }
    eprint!("Apply these changes? Only 'yes' is accepted: ");
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| ServiceError::new(ErrorKind::Io, format!("standard input: {e}")))?;
    Ok(line.trim() == "yes")
}

fn render_report(r: &ApplyReport) {
    for s in &r.steps {
        let target = if s.directory.is_empty() {
            s.target.clone()
        } else {
            format!("{}: {}", s.directory, s.target)
        };
        match s.status {
            "done" => {
                let mut what = Vec::new();
                if !s.added.is_empty() {
                    what.push(format!("added {}", s.added.join(", ")));
                }
                if !s.removed.is_empty() {
                    what.push(format!("removed {}", s.removed.join(", ")));
                }
                if let Some(d) = &s.delivered {
                    what.push(format!("key delivered to {d}"));
                }
                outln!("  done {target} ({}): {}", s.operation, what.join("; "));
            }
            "failed" => outln!(
                "  FAILED {target} ({}): {}",
                s.operation,
                s.error.as_deref().unwrap_or("")
            ),
            "not-attempted" => outln!(
                "  NOT ATTEMPTED {target}: {}",
                s.error.as_deref().unwrap_or("")
            ),
            _ => {}
        }
    }
    let interrupted = if r.interrupted_before > 0 {
        format!(
            "; {} step(s) of an interrupted earlier run re-checked",
            r.interrupted_before
        )
    } else {
        String::new()
    };
    outln!(
        "Apply {}: {} done, {} already as wanted, {} failed, {} not attempted in {:.1} s{interrupted}.",
        if r.succeeded() {
            "complete"
        } else {
            "incomplete"
        },
        r.done,
        r.unchanged,
        r.failed,
        r.not_attempted,
        r.seconds
    );
    if !r.succeeded() {
        outln!("Run apply again to finish: steps done are not repeated.");
    }
}

pub async fn status(service: &Service, a: StatusArgs, json: bool) -> Result<u8> {
    let desired = match &a.file {
        Some(f) => Some(load(service, f)?),
        None => None,
    };
    let r = service
        .status(&StatusRequest {
            desired,
            expiring_days: a.expiring_days,
        })
        .await?;
    if json {
        print_json(&r)?;
    } else {
        for e in &r.entries {
            if e.ready && e.expiring.is_empty() {
                continue;
            }
            let mut what = Vec::new();
            if !e.ready {
                what.push(format!("not ready: {}", e.reasons.join("; ")));
            }
            for c in &e.expiring {
                what.push(format!(
                    "expiring {} (SHA-1 {}, not after {})",
                    c.subject, c.thumbprint, c.not_after
                ));
            }
            outln!(
                "  {}: {}: {}{}",
                e.directory,
                e.address,
                what.join("; "),
                if e.new_reminder {
                    ""
                } else {
                    " (reminded today)"
                }
            );
        }
        outln!(
            "{} people: {} ready, {} not ready, {} expiring within {} days.",
            r.people,
            r.ready,
            r.not_ready,
            r.expiring,
            r.expiring_days
        );
    }
    Ok(if r.ok() { EXIT_OK } else { EXIT_INVALID })
}
