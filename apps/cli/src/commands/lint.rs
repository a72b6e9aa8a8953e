//! `smimekit lint`.

use anyhow::Result;
use smimekit_service::{LintRequest, Profile, Service, Severity};

use super::pki::parse_at;
use super::{EXIT_INVALID, EXIT_OK, print_json};
use crate::cli::{LintArgs, ProfileArg};
use crate::io;

pub fn run(service: &Service, a: LintArgs, json: bool) -> Result<u8> {
    let profile = match a.profile {
        ProfileArg::Generic => Profile::Generic,
        ProfileArg::Owa => Profile::Owa,
        ProfileArg::Outlook => Profile::Outlook,
        ProfileArg::Thunderbird => Profile::Thunderbird,
        ProfileArg::Apple => Profile::Apple,
    };
    let result = service.lint(&LintRequest {
        certs: io::read_all_named(&a.certs)?,
        profile,
        chain: a.chain.as_deref().map(io::read_named).transpose()?,
        at: parse_at(a.at.as_deref())?,
        expiring_days: a.expiring_days,
        address: a.address,
    })?;
    if json {
        print_json(&result)?;
    } else {
        for c in &result.certificates {
            let who = if c.cert.emails.is_empty() {
                c.cert.subject.clone()
            } else {
                format!("{} <{}>", c.cert.subject, c.cert.emails.join(", "))
            };
            outln!("{} #{}: {who}", c.file, c.cert.index + 1);
            outln!(
                "  sha1 {}, expires {}",
                c.cert.sha1_thumbprint,
                c.cert.not_after
            );
            if c.cert.findings.is_empty() {
                outln!("  ok");
            }
            for f in &c.cert.findings {
                let tag = match f.severity {
                    Severity::Error => "ERROR",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                outln!("  {tag} [{}] {}: {}", f.rule, f.title, f.detail);
                outln!("      why: {}", squash(f.explanation));
                outln!("      fix: {}", squash(f.fix));
            }
        }
        outln!(
            "{} error(s), {} warning(s), {} note(s) (profile {}, at {})",
            result.errors,
            result.warnings,
            result.infos,
            profile_name(result.profile),
            result.at
        );
    }
    Ok(if result.has_errors() {
        EXIT_INVALID
    } else {
        EXIT_OK
    })
}

fn profile_name(p: Profile) -> &'static str {
    p.name()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
