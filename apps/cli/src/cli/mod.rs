//! The command-line contract (clap definitions). Scripts depend on these names: extend,
//! never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod deploy;
mod directory;
pub use deploy::{ApplyArgs, PlanArgs, StatusArgs};
pub use directory::{
    DirectoryCommand, ExchangeCommand, ExchangeConfigCommand, LookupArgs, PublishArgs,
    TrustCommand, UnpublishArgs,
};

mod pki;
mod store;
mod token;
pub use pki::{ChainCommand, LintArgs, ProfileArg, SstCommand, StoreFormatArg};
pub use store::{AuditCommand, InventoryArgs};
pub use token::TokenCommand;

#[derive(Debug, Parser)]
#[command(
    name = "smimekit",
    version,
    about = "S/MIME for an organisation: sign, verify, encrypt, decrypt and open mail; manage keys and certificates.",
    after_help = "Exit codes: 0 success (every signature valid), 1 a signature invalid or untrusted, \
2 usage error, 3 malformed input, 4 key/password/recipient problem, 5 other I/O.\n\
Passwords and PINs, in this order: the object's own source (a config key such as \
certificate_password_env or password_file, pin-value=/pin-source= in a pkcs11: URI, --p12-password-file), \
then --password-file, then SMIMEKIT_PIN (PINs only), then SMIMEKIT_PASSWORD, then a prompt when standard \
input is a terminal."
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Config file (directories) [default: $XDG_CONFIG_HOME/smimekit/config.toml, else the
    /// embedded local directory].
    #[arg(long, global = true, value_name = "F", env = "SMIMEKIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Load a vendor plugin library (repeatable; before or after the subcommand), besides the
    /// config's [plugins] paths and SMIMEKIT_PLUGIN_PATH. One that cannot be loaded is an error.
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    pub plugins: Vec<PathBuf>,
    /// Read a password or PIN from this file (first line), for whatever needs one and has no
    /// source of its own (the order: `smimekit --help`). Never give a secret on the command line.
    #[arg(long, global = true, value_name = "F")]
    pub password_file: Option<PathBuf>,
    /// Log what smimekit does on standard error: -v info, -vv debug, -vvv trace (directory
    /// requests, jobs, sign-ins; never a secret). SMIMEKIT_LOG or RUST_LOG take a filter
    /// (`debug`, `smimekit_service=trace`) and turn logging on too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Every `--plugin FILE` of the command line, in order. clap keeps only one occurrence list
/// of a global option (the subcommand's replaces the top level's), so `--plugin` given before
/// and after the subcommand is read back from the arguments clap has already validated.
pub fn plugin_files(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    parsed: &[PathBuf],
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--plugin" {
            if let Some(v) = args.next() {
                out.push(PathBuf::from(v));
            }
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--plugin=")) {
            out.push(PathBuf::from(v));
        }
    }
    // Whatever the scan missed (it cannot, for clap-valid input) is still loaded.
    for p in parsed {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign a message (detached multipart/signed by default).
    Sign(SignArgs),
    /// Encrypt a message to recipients' certificates.
    Encrypt(EncryptArgs),
    /// Verify a signed message and write its content.
    Verify(VerifyArgs),
    /// Remove the encryption layer of a message.
    Decrypt(DecryptArgs),
    /// Do what a mail client does: decrypt and verify every layer, write the innermost content.
    Open(OpenArgs),
    /// Keys in a key store.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Certificates: show and export.
    #[command(subcommand)]
    Cert(CertCommand),
    /// A private S/MIME CA: init, issue, revoke, crl.
    #[command(subcommand)]
    Ca(CaCommand),
    /// PKCS#11 tokens (smartcards, HSMs): enroll a key generated on the token, import a .p12.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Certification paths: build every path from a certificate to trust anchors.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Certificate stores: Microsoft .sst (and .p7b/PEM) create, list, extract.
    #[command(subcommand)]
    Sst(SstCommand),
    /// Check certificates against the rules of Outlook, OWA, Thunderbird and Apple Mail.
    Lint(LintArgs),
    /// Look up the certificates published for an address.
    Lookup(LookupArgs),
    /// Publish a certificate for an address (added; --replace / --prune-expired drop others).
    Publish(PublishArgs),
    /// Remove a published certificate.
    Unpublish(UnpublishArgs),
    /// The organisation's trust chain kept in the directory.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Directory hygiene: audit the published certificates; export and import the JSON form.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Every certificate seen in any directory (from the store; no directory is asked).
    Inventory(InventoryArgs),
    /// What apply would do to make the directories hold what a deploy file says (writes
    /// nothing).
    Plan(PlanArgs),
    /// Make the directories hold what a deploy file (or a saved plan) says.
    Apply(ApplyArgs),
    /// Per person and directory: ready for encrypted mail or not, and expiring certificates
    /// (exit 1 when anything is not ready or expiring).
    Status(StatusArgs),
    /// The audit log of every change smimekit made: show it, verify its hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Exchange Online: organisation S/MIME settings (OWA).
    #[command(subcommand)]
    Exchange(ExchangeCommand),
    /// Sign in to a directory now (Exchange Online with auth = "device-code": the device-code
    /// prompt), to check the credentials and permissions.
    Login {
        #[arg(long, value_name = "NAME")]
        directory: Option<String>,
    },
    /// Run the main job end to end on this machine, no server needed: a CA, two users, the
    /// local directory, the Exchange Online .sst, lint, sign, encrypt, open, and an openssl
    /// cross-check.
    Demo(DemoArgs),
    /// List the registered plugins, by port; `plugins check FILE` tests a vendor plugin.
    Plugins(PluginsArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(subcommand)]
    pub command: Option<PluginsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Run the conformance suite against a plugin library (loaded alone, through the real
    /// plugin host) and report each check: passed, failed with what was expected and seen, or
    /// skipped with why. Exit 0 when every required check passes, 1 otherwise. The directory
    /// checks publish two probe certificates to a test address and remove them again: run it
    /// against a test directory (its table from --config, [directory.NAME] kind = "<kind>").
    Check(PluginCheckArgs),
}

#[derive(Debug, Args)]
pub struct PluginCheckArgs {
    /// The plugin library (.so, .dylib, .dll).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The configured directory whose table dir_open gets [default: the first of the plugin's
    /// kind in the config, else a table with only `kind`].
    #[arg(long, value_name = "NAME")]
    pub directory: Option<String>,
    /// The test recipient the directory checks publish to and remove again
    /// [default: smimekit-check@example.invalid].
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// A KEYREF of a test key, for a key-store plugin (its checks are skipped without one, and
    /// the run fails as incomplete). A locked store's secret: --password-file.
    #[arg(long, value_name = "KEYREF")]
    pub key: Option<String>,
    /// The certificate handed to store_open with --key.
    #[arg(long, value_name = "F")]
    pub cert: Option<String>,
    /// How long one call of the plugin may take before it is reported as hung.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this directory (created if missing, must be empty) and keep the files;
    /// default: a temporary directory, removed at the end.
    #[arg(long, value_name = "D")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct IoArgs {
    /// Input file (default: standard input).
    #[arg(long = "in", value_name = "F")]
    pub input: Option<PathBuf>,
    /// Output file (default: standard output).
    #[arg(long = "out", value_name = "F")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The signing key: a .p12/.pfx file, or a PEM/DER key file with --cert.
    #[arg(long, value_name = "KEYREF")]
    pub key: String,
    /// The certificate for a key file that holds none.
    #[arg(long, value_name = "F")]
    pub cert: Option<String>,
    /// Opaque application/pkcs7-mime signed-data instead of multipart/signed.
    #[arg(long)]
    pub opaque: bool,
    /// Digest algorithm: sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    pub digest: String,
    /// RSA-PSS instead of RSA PKCS#1 v1.5 (RSA keys only).
    #[arg(long)]
    pub pss: bool,
    /// Issuer certificates for the signer's chain (PEM, DER, .p7b, .sst), used when the key
    /// store and the directories' trust chains lack them; repeatable. Roots are not sent.
    #[arg(long, value_name = "F")]
    pub chain: Vec<PathBuf>,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CipherArg {
    #[value(name = "aes-256-cbc")]
    Aes256Cbc,
    #[value(name = "aes-192-cbc")]
    Aes192Cbc,
    #[value(name = "aes-128-cbc")]
    Aes128Cbc,
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Recipient certificate file (PEM, DER, PKCS#7, SST), or an address looked up in the
    /// configured directories; repeat for several recipients.
    #[arg(long, value_name = "CERTFILE|ADDRESS", required = true, num_args = 1..)]
    pub to: Vec<String>,
    /// Content cipher. AES-256-GCM (AuthEnvelopedData) only for recipients known to read it.
    #[arg(long, value_enum, default_value = "aes-256-cbc")]
    pub cipher: CipherArg,
    /// RSA-OAEP (SHA-256) key transport instead of PKCS#1 v1.5.
    #[arg(long)]
    pub oaep: bool,
    /// For an ADDRESS: encrypt to its certificate even when it does not name the address or
    /// does not chain to the directory's trust chain.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Args, Clone)]
pub struct TrustArgs {
    /// Trust anchors (PEM, DER, SST, PKCS#7); repeatable.
    #[arg(long, value_name = "F")]
    pub trust: Vec<PathBuf>,
    /// Untrusted intermediate or signer certificates; repeatable.
    #[arg(long, value_name = "F")]
    pub cert: Vec<PathBuf>,
    /// Validate at this time (RFC 3339, e.g. 2026-01-26T14:40:07Z) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// For a raw CMS detached signature: the signed content.
    #[arg(long, value_name = "F")]
    pub content: Option<PathBuf>,
    /// Accept SHA-1 signatures, for old mail (the report still says so; MD5 is never accepted).
    #[arg(long)]
    pub allow_sha1: bool,
    /// Accept a signer whose certificate does not name the message's From (or Sender)
    /// address (the report still says so).
    #[arg(long)]
    pub allow_address_mismatch: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The recipient key: a .p12/.pfx file, or a PEM/DER key file with --cert.
    #[arg(long, value_name = "KEYREF")]
    pub key: String,
    /// The certificate for a key file that holds none.
    #[arg(long = "cert", alias = "key-cert", value_name = "F")]
    pub key_cert: Option<String>,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Recipient keys to try; repeatable.
    #[arg(long, value_name = "KEYREF")]
    pub key: Vec<String>,
    /// The certificate for a key file that holds none (else each --cert file is tried).
    #[arg(long = "key-cert", value_name = "F")]
    pub key_cert: Option<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys in a store with their certificates.
    List {
        /// The store: a .p12/.pfx or key file, a pkcs11: URI, windows:my.
        #[arg(long, value_name = "KEYREF")]
        store: String,
        #[arg(long, value_name = "F")]
        cert: Option<String>,
    },
    /// Import a PKCS#12's identities into a key store (`windows:my`, a pkcs11: token):
    /// each identity's key in its own container, never exportable.
    Import {
        /// The .p12/.pfx file.
        #[arg(value_name = "P12")]
        p12: PathBuf,
        /// The key store, e.g. windows:my or windows:my?location=machine.
        #[arg(long, value_name = "KEYREF")]
        store: String,
        /// Label for stores that take one (default: from the certificate).
        #[arg(long)]
        label: Option<String>,
        /// The PKCS#12 password (else SMIMEKIT_P12_PASSWORD, --password-file, SMIMEKIT_PASSWORD,
        /// a prompt).
        #[arg(long, value_name = "F")]
        p12_password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show the certificates in a file (PEM, DER, PKCS#7, SST, or a .p12 with --p12).
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Export a key's certificate (and chain) as DER or PEM, as Exchange's -UserCertificate wants.
    Export {
        /// A key store (.p12/.pfx) or a certificate file.
        #[arg(value_name = "KEYREF")]
        source: String,
        #[arg(long, conflicts_with = "pem")]
        der: bool,
        #[arg(long)]
        pem: bool,
        /// Include the issuers (PEM only).
        #[arg(long)]
        chain: bool,
        #[arg(long = "out", value_name = "F")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root and an issuing intermediate CA in a directory.
    Init {
        /// The CA directory (created).
        #[arg(long, value_name = "D")]
        dir: PathBuf,
        /// CA key type: rsa2048, rsa3072, rsa4096, p256 or p384.
        #[arg(long, default_value = "p256")]
        key_type: String,
        /// Organisation name, used in the CA names.
        #[arg(long, default_value = "smimekit")]
        name: String,
        /// CRL distribution point URL written into issued certificates.
        #[arg(long, value_name = "URL")]
        crl_url: Option<String>,
        /// Generate the CA keys on this token (pkcs11:token=LABEL) instead of in .p12 files;
        /// ca.json then records their pkcs11: URIs and the secret asked for is the token PIN.
        #[arg(long, value_name = "URI")]
        key_store: Option<String>,
    },
    /// Issue an S/MIME certificate (BR mailbox-validated strict) from a CSR or for a new key.
    Issue {
        #[arg(long, value_name = "D")]
        dir: PathBuf,
        /// A PKCS#10 request (PEM or DER); the certificate goes to --out.
        #[arg(long, value_name = "F", conflicts_with = "p12")]
        csr: Option<PathBuf>,
        /// Where to write the certificate (PEM) for --csr.
        #[arg(long, value_name = "CERT")]
        out: Option<PathBuf>,
        /// The mailbox address (required with --p12; checked against the CSR otherwise).
        #[arg(long, value_name = "ADDR")]
        email: Option<String>,
        /// Generate the key and write key + certificate + chain to this PKCS#12.
        #[arg(long, value_name = "OUT")]
        p12: Option<PathBuf>,
        /// Key type for --p12: rsa2048, rsa3072, rsa4096, p256 or p384.
        #[arg(long, default_value = "rsa2048")]
        key_type: String,
        /// Validity in days (at most 825).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// 3DES PKCS#12 for old Windows instead of PBES2/AES-256.
        #[arg(long)]
        legacy_p12: bool,
        /// Issue although the address already has a valid certificate.
        #[arg(long, alias = "force")]
        renew: bool,
        /// Password of the new PKCS#12 (else SMIMEKIT_P12_PASSWORD, --password-file,
        /// SMIMEKIT_PASSWORD, a prompt).
        #[arg(long, value_name = "F")]
        p12_password_file: Option<PathBuf>,
    },
    /// Revoke an issued certificate (published by the next `ca crl`).
    Revoke {
        #[arg(long, value_name = "D")]
        dir: PathBuf,
        /// Serial number in hex.
        #[arg(
            long,
            value_name = "HEX",
            required_unless_present = "cert",
            conflicts_with = "cert"
        )]
        serial: Option<String>,
        /// Or the certificate file.
        #[arg(long, value_name = "F")]
        cert: Option<PathBuf>,
        /// unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Write a CRL signed by the issuing CA key.
    Crl {
        #[arg(long, value_name = "D")]
        dir: PathBuf,
        #[arg(long, value_name = "F")]
        out: PathBuf,
        /// nextUpdate, in days from now.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
}
