//! `plan`, `apply`, `status`: the organisation's S/MIME state from one deploy file.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The deploy file (deploy.toml; its paths are relative to it).
    #[arg(long, value_name = "F")]
    pub file: PathBuf,
    /// Save the plan (JSON, with the certificates it names) for `smimekit apply PLAN`.
    #[arg(long, value_name = "F")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error (as Terraform).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also remove this person's certificates that smimekit did not publish (needs
    /// `unmanaged = "report"`); repeatable.
    #[arg(long, value_name = "ADDRESS")]
    pub replace_unmanaged: Vec<String>,
    /// Read every directory, even for people the inventory saw in the last 5 minutes.
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `smimekit plan --out` (refused when a directory changed since).
    #[arg(value_name = "PLAN", conflicts_with = "file")]
    pub plan: Option<PathBuf>,
    /// The deploy file: plan it, show the plan, ask, apply.
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Do not call the directories: write the plan as a PowerShell 7 script for Exchange
    /// Online (and the LDAP steps as an LDIF file beside it).
    #[arg(long, value_name = "F")]
    pub emit_powershell: Option<PathBuf>,
    /// Free the apply lock held by this id (its holder is gone) and stop.
    #[arg(long, value_name = "ID", conflicts_with_all = ["plan", "file"])]
    pub force_unlock: Option<String>,
    /// Where certificates the CA issues go: ADDRESS.p12 and ADDRESS.p12.pass, mode 0600.
    #[arg(long, value_name = "DIR")]
    pub deliver: Option<PathBuf>,
    /// Also remove this person's unmanaged certificates (with --file; needs
    /// `unmanaged = "report"`); repeatable.
    #[arg(long, value_name = "ADDRESS")]
    pub replace_unmanaged: Vec<String>,
    /// How long to keep retrying steps a directory throttles (90s, 30m, 2h; default 1h).
    #[arg(long, value_name = "DURATION", value_parser = super::directory::parse_duration)]
    pub time_budget: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The people of this deploy file (default: everyone in every configured directory).
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// A person whose last certificate ends within N days is expiring.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub expiring_days: u32,
}
