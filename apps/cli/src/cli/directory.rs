//! Directory commands: lookup, publish, unpublish, trust push/show, directory audit, export
//! and import.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The recipient's e-mail address.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// Only this configured directory (default: all, in config order, first match).
    #[arg(long, value_name = "NAME")]
    pub directory: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The recipient's e-mail address.
    #[arg(
        value_name = "ADDRESS",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub address: Option<String>,
    /// The certificate file (PEM, DER, PKCS#7, SST); CA certificates beside it are ignored.
    #[arg(
        long,
        value_name = "F",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub cert: Option<PathBuf>,
    /// Bulk: a CSV (address,certificate), a JSON list/map, or a folder of certificate files
    /// named by address (alice@example.org.pem). Re-running is idempotent.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Bulk: write the JSON report here as well.
    #[arg(long, value_name = "F", requires = "from")]
    pub report: Option<PathBuf>,
    /// Bulk: items in flight at once (the directory also bounds its own requests).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallel: usize,
    /// Bulk: how long to keep retrying items the directory throttles (90s, 30m, 2h; default
    /// the directory's bulk_time_budget_secs, else 1h). Items still not done are then
    /// reported (exit 5); re-running the same command finishes them.
    #[arg(long, value_name = "DURATION", requires = "from", value_parser = parse_duration)]
    pub time_budget: Option<std::time::Duration>,
    /// Do not call the directory: write a PowerShell 7 script (ExchangeOnlineManagement) doing
    /// the same operations, with read-back checks.
    #[arg(long, value_name = "FILE")]
    pub emit_powershell: Option<PathBuf>,
    /// The configured directory to write (default: the first configured).
    #[arg(long, value_name = "NAME")]
    pub directory: Option<String>,
    /// Create the recipient as an external contact rather than a mailbox.
    #[arg(long)]
    pub contact: bool,
    /// Keep only this certificate (default: add it, keep the others).
    #[arg(long)]
    pub replace: bool,
    /// Remove the address's certificates that have expired.
    #[arg(long)]
    pub prune_expired: bool,
    /// Publish even when the certificate does not name ADDRESS.
    #[arg(long)]
    pub force: bool,
}

/// `90`, `90s`, `30m`, `2h`: a whole number of seconds, minutes or hours, at least 1 s.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(format!("{s:?}: expected a duration like 90s, 30m or 2h")),
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n.saturating_mul(scale))),
        _ => Err(format!(
            "{s:?}: expected a duration of at least 1 s, like 90s, 30m or 2h"
        )),
    }
}

#[derive(Debug, Args)]
pub struct UnpublishArgs {
    /// The recipient's e-mail address.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// The certificate(s) to remove (a file).
    #[arg(long, value_name = "F")]
    pub cert: PathBuf,
    #[arg(long, value_name = "NAME")]
    pub directory: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Replace the directory's trust chain (root and intermediates), as Set-SmimeConfig does.
    Push {
        /// A Microsoft serialized store (.sst) with the chain.
        #[arg(long, value_name = "F", required_unless_present = "certs")]
        sst: Option<PathBuf>,
        /// Certificate files (PEM, DER, PKCS#7).
        #[arg(value_name = "CERT")]
        certs: Vec<PathBuf>,
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        /// Do not call the directory: write a PowerShell 7 script running Set-SmimeConfig
        /// with this SST, and checking it by reading back.
        #[arg(long, value_name = "FILE")]
        emit_powershell: Option<PathBuf>,
    },
    /// Show the directory's trust chain.
    Show {
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Per recipient: expired, revoked (with --crl), superseded, wrong-EKU and
    /// mismatched-address certificates, and stale userSMIMECertificate values that shadow a
    /// newer userCertificate. Exit 1 when anything is found.
    Audit {
        /// Only this configured directory (default: every configured one).
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        /// A CRL (DER or PEM); repeat for several.
        #[arg(long = "crl", value_name = "F")]
        crls: Vec<PathBuf>,
    },
    /// Write a directory in its reviewable JSON form (recipients, kinds, certificates, trust
    /// chain), the form `directory import` reads.
    Export {
        /// The configured directory (default: the first configured).
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        /// Write here (default: standard output).
        #[arg(long = "out", value_name = "F")]
        output: Option<PathBuf>,
    },
    /// Import the JSON form into a local directory, in one transaction: every certificate is
    /// added (nothing dropped), unless --replace.
    Import {
        /// The JSON file (`directory export`'s form, or an older smimekit's directory.json).
        #[arg(value_name = "F")]
        file: PathBuf,
        /// The configured local directory (default: the first configured).
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        /// Make the directory exactly the file's content.
        #[arg(long)]
        replace: bool,
    },
}

/// `smimekit exchange …`: Exchange Online organisation settings and the tenant probe.
#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    /// The OWA S/MIME settings (Get-SmimeConfig), with warnings for risky values.
    #[command(subcommand)]
    Config(ExchangeConfigCommand),
    /// Read-only self-test against the tenant, to run first and send us: signs in, lists the
    /// cmdlets the app may run (EXOModuleFile), reads one mailbox's certificates as CLIXML and
    /// as JSON, and tries each byte encoding with Set-Mailbox -WhatIf and the list the mailbox
    /// already holds (nothing changes). Exit 4 when a check fails.
    Probe {
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
        /// The mailbox to read (best one holding a certificate; default: the first mailbox).
        #[arg(long, value_name = "ADDRESS")]
        address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExchangeConfigCommand {
    /// Show the settings.
    Show {
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
    },
    /// Change settings (Set-SmimeConfig), e.g. OWASigningAlgorithms=800C
    /// OWAIncludeCertificateChainWithoutRootCertificate=true; read back and linted.
    Set {
        /// NAME=VALUE pairs.
        #[arg(value_name = "NAME=VALUE", required = true)]
        values: Vec<String>,
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("30m", 1800),
            ("2 h", 7200),
            ("5min", 300),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "0s", "1.5h", "-3s", "10d", "h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
