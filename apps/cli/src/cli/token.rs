//! `smimekit token …`: provisioning PKCS#11 tokens.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Generate a key pair on a token, get it certified (smimekit CA or a CSR for an external
    /// CA), and write the certificate to the token under the key's ID and label.
    Enroll {
        /// The token: pkcs11:token=LABEL (module from ?module-path= or [keystore.NAME]).
        #[arg(long, value_name = "URI")]
        token: String,
        /// The mailbox address to certify.
        #[arg(long, value_name = "ADDR")]
        email: String,
        /// CKA_LABEL of the key pair and certificate (default: the address).
        #[arg(long)]
        label: Option<String>,
        /// rsa2048, rsa3072, rsa4096, p256 or p384.
        #[arg(long, default_value = "p256")]
        key_type: String,
        /// Have the smimekit CA in this directory issue the certificate.
        #[arg(long, value_name = "DIR", required_unless_present = "csr_out")]
        ca: Option<PathBuf>,
        /// Write the CSR (PEM) here, for an external CA.
        #[arg(long, value_name = "F")]
        csr_out: Option<PathBuf>,
        /// Validity in days (with --ca).
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Put a PKCS#12's key, certificate and chain on a token (private key, public key and
    /// certificate objects with one CKA_ID; EC keys keep CKA_DERIVE for ECDH).
    Import {
        /// The .p12/.pfx file.
        #[arg(value_name = "P12")]
        p12: PathBuf,
        #[arg(long, value_name = "URI")]
        token: String,
        /// CKA_LABEL (default: the certificate's address or common name).
        #[arg(long)]
        label: Option<String>,
        /// The PKCS#12 password (else SMIMEKIT_P12_PASSWORD, --password-file,
        /// SMIMEKIT_PASSWORD, a prompt).
        #[arg(long, value_name = "F")]
        p12_password_file: Option<PathBuf>,
    },
}
