//! Directory commands: lookup, publish, unpublish, trust push/show.

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
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// The certificate file (PEM, DER, PKCS#7, SST); CA certificates beside it are ignored.
    #[arg(long, value_name = "F")]
    pub cert: PathBuf,
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
}
