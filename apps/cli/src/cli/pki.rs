//! clap definitions for `chain`, `sst` and `lint`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Build every certification path from a certificate to the trust anchors and name each
    /// problem (unknown-issuer, bad-signature, expired, not-a-ca, …). Exit 0 when a valid
    /// path exists, 1 otherwise.
    Build {
        /// The certificate (the first one in the file; any others join the pool).
        #[arg(value_name = "CERT")]
        cert: PathBuf,
        /// Candidate intermediates (PEM, DER, PKCS#7, SST); repeatable, several per flag.
        #[arg(long, value_name = "F", num_args = 1..)]
        pool: Vec<PathBuf>,
        /// Trust anchors (PEM, DER, PKCS#7, SST); repeatable.
        #[arg(long, value_name = "F")]
        trust: Vec<PathBuf>,
        /// Validate at this time (RFC 3339) instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StoreFormatArg {
    /// Microsoft serialized store (.sst), with the SHA-1 hash property as Windows writes it.
    Sst,
    /// PKCS#7 certs-only (.p7b), DER.
    P7b,
    /// Concatenated PEM certificates.
    Pem,
}

#[derive(Debug, Subcommand)]
pub enum SstCommand {
    /// Write certificates to a store (.sst by default; .p7b/.pem by --format or the --out
    /// extension). Exact duplicates are written once.
    Create {
        #[arg(long = "out", value_name = "F")]
        output: PathBuf,
        /// Output format (default: from the --out extension: .p7b/.p7c, .pem/.crt, else sst).
        #[arg(long, value_enum)]
        format: Option<StoreFormatArg>,
        /// Certificate files (PEM, DER, PKCS#7, SST).
        #[arg(value_name = "CERT", required_unless_present = "from_store")]
        certs: Vec<PathBuf>,
        /// Also take the certificates (and chains) a key store lists, e.g.
        /// 'windows:my?email=alice@example.org' (repeatable).
        #[arg(long = "from-store", value_name = "KEYREF")]
        from_store: Vec<String>,
    },
    /// List a store's certificates: subject, issuer, SHA-1 thumbprint, SHA-256, expiry and
    /// SST properties. Reads .sst, .p7b and PEM.
    List {
        #[arg(value_name = "F")]
        file: PathBuf,
    },
    /// Write each certificate of a store to DIR as <SHA-1 thumbprint>.cer (DER).
    Extract {
        #[arg(value_name = "F")]
        file: PathBuf,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    Generic,
    Owa,
    Outlook,
    Thunderbird,
    Apple,
}

/// `smimekit lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Certificate files (PEM, DER, PKCS#7, SST); every certificate in them is linted as a
    /// user's S/MIME certificate.
    #[arg(value_name = "CERT", required = true)]
    pub certs: Vec<PathBuf>,
    /// Whose expectations to apply (docs/lint.md lists the severities per profile).
    #[arg(long, value_enum, default_value = "generic")]
    pub profile: ProfileArg,
    /// The trust store the certificates must chain to (e.g. the .sst uploaded with
    /// Set-SmimeConfig -SMIMECertificateIssuingCA).
    #[arg(long, value_name = "STORE")]
    pub chain: Option<PathBuf>,
    /// The mailbox the certificates are for (primary SMTP address).
    #[arg(long, value_name = "ADDRESS")]
    pub address: Option<String>,
    /// Check at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Warn when a certificate expires within this many days.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub expiring_days: u32,
}
