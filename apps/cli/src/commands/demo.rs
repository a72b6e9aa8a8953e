//! `smimekit demo`: the main job end to end; the service does the work, this prints it.

use anyhow::Result;
use smimekit_service::{DemoReport, DemoRequest, Service};

use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::DemoArgs;

pub async fn run(service: &Service, a: DemoArgs, json: bool) -> Result<u8> {
    let report = service.demo(&DemoRequest { dir: a.dir }).await?;
    if json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_INVALID })
}

fn print_text(r: &DemoReport) {
    outln!("smimekit demo in {}", r.dir);
    outln!(
        "  key files (ca/*.p12, alice.p12, bob.p12) use the demo password {:?}\n",
        r.password
    );
    for s in &r.steps {
        let mark = match (s.ok, s.skipped) {
            (true, false) => "✓",
            (true, true) => "-",
            (false, _) => "✗",
        };
        outln!("{mark} {}: {}", s.name, s.detail);
        if !s.files.is_empty() {
            outln!("    {}", s.files.join(", "));
        }
    }
    outln!();
    let passed = r.steps.iter().filter(|s| s.ok && !s.skipped).count();
    let skipped = r.steps.iter().filter(|s| s.skipped).count();
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    if r.ok {
        outln!("demo: all {passed} steps passed{skipped}");
    } else {
        outln!(
            "demo: FAILED at step {:?} ({passed} passed before it{skipped})",
            r.steps.last().map(|s| s.name.as_str()).unwrap_or("?")
        );
    }
    if r.kept {
        outln!(
            "files kept in {} (its config: smimekit --config {}/{} lookup bob@example.org)",
            r.dir,
            r.dir,
            r.config
        );
    } else {
        outln!("work files were in a temporary directory, removed now (keep them with --dir D)");
    }
}
