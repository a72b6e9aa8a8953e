//! Commands on the store: the certificate inventory and the audit log (`directory export` and
//! `import` are in `directory`).

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Only certificates still valid that expire within N days.
    #[arg(long, value_name = "N")]
    pub expiring_days: Option<u32>,
    /// Only certificates seen in this configured directory.
    #[arg(long, value_name = "NAME")]
    pub directory: Option<String>,
    /// Also certificates no longer there when their address was last looked at.
    #[arg(long)]
    pub all: bool,
}

/// `smimekit audit …`: the log of every change smimekit made.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The changes, oldest first: time, who, frontend, operation, directory, address,
    /// thumbprints before and after, result.
    Log {
        /// Only changes at or after this time (RFC 3339, e.g. 2026-01-26T14:40:07Z, or a
        /// date, 2026-01-26).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only changes for this address.
        #[arg(long, value_name = "ADDRESS")]
        address: Option<String>,
        /// Only changes in this configured directory.
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
    },
    /// Recompute the hash chain of the log. Exit 1, naming the first bad row, when a row
    /// was changed or removed.
    Verify,
}
