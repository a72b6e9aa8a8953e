//! The `smimekit-web` command line (clap): what `main` parses, and what `cargo xtask man`
//! renders as the smimekit-web(1) manual pages. Definitions only; `main` runs them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "smimekit-web", version, about = "The smimekit web admin")]
pub struct Cli {
    /// The configuration file (default: the usual places, else the embedded default).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web admin: HTTPS with --tls-cert/--tls-key, else plain HTTP on a loopback
    /// address only (unless --insecure-http, behind a TLS-terminating proxy).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: SocketAddr,
        /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
        #[arg(long, conflicts_with = "tls_cert")]
        insecure_http: bool,
        /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage the web admin's users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        name: String,
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// Read the password from the first line of this file (else ask on the terminal).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the users.
    List,
    /// Remove a user and their sessions.
    Remove { name: String },
    /// Change a user's password (also lifts a lockout).
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}
