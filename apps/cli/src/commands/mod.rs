//! Thin command bodies: build the request, call the service, render.

mod ca;
mod cert;
mod demo;
mod deploy;
mod directory;
mod lint;
mod mail;
mod pki;
mod plugins;
mod progress;
mod store;
mod token;

use std::sync::Arc;

use anyhow::Result;
use clap::CommandFactory;
use smimekit_service::{DecryptionKey, ErrorKind, KeyRequest, PrivateKey, Service, ServiceError};

use crate::cli::{Cli, Command, KeysCommand};
use crate::io;

pub const EXIT_OK: u8 = 0;
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_MALFORMED: u8 = 3;
pub const EXIT_KEY: u8 = 4;
pub const EXIT_IO: u8 = 5;

/// The one table from error kind ([`ErrorKind::name`]) to documented exit code. The README
/// names six codes; each newer kind keeps the code its errors had before it existed: a missing
/// recipient or key is a recipient or key problem (4); another run holding a lock, a directory
/// or store that is down or throttling, a refused permission and our own faults are I/O (5).
const EXIT_CODES: &[(&str, u8)] = &[
    ("invalid", EXIT_USAGE),
    ("malformed", EXIT_MALFORMED),
    ("unsupported", EXIT_MALFORMED),
    ("key", EXIT_KEY),
    ("locked", EXIT_KEY),
    ("not-found", EXIT_KEY),
    ("io", EXIT_IO),
    ("conflict", EXIT_IO),
    // A saved plan made stale by a directory change: refused as `apply` documents (4).
    ("stale", EXIT_KEY),
    ("unavailable", EXIT_IO),
    ("permission-denied", EXIT_IO),
    ("internal", EXIT_IO),
];

/// Maps an error to the documented exit code, once: the kind of the first `ServiceError` in the
/// chain; an `std::io::Error` without one is an I/O failure. Errors are built as `ServiceError`s
/// (see [`usage`]), never with `anyhow::bail!`, so a usage mistake cannot fall through to "I/O".
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<ServiceError>())
        .map_or("io", |s| s.kind.name());
    EXIT_CODES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(EXIT_IO, |(_, code)| *code)
}

/// How the CLI names a request field the service points at (the service names fields, never
/// flags): the option, put before the message, or advice, put after it.
enum Hint {
    Option(&'static str),
    Advice(&'static str),
}

/// The flag hints, by the request field a [`ServiceError`] names.
const HINTS: &[(&str, Hint)] = &[
    ("force", Hint::Advice("use --force to publish it anyway")),
    (
        "renew",
        Hint::Advice("use --renew to issue another, or revoke it first"),
    ),
    ("email", Hint::Advice("pass --email")),
    ("keys", Hint::Advice("give a key with --key")),
    (
        "format",
        Hint::Advice("use --pem for a chain (or export each)"),
    ),
    (
        "dir",
        Hint::Advice("create one with `smimekit ca init --dir DIR`"),
    ),
    ("days", Hint::Option("--days")),
    ("pss", Hint::Option("--pss")),
    ("to", Hint::Option("--to")),
];

/// An error as the CLI prints it: each cause in turn (`context: cause`), as anyhow's `{:#}`
/// does, but ending at the first [`ServiceError`] (its message already says what its source
/// says), with the flag hint for the request field it names.
pub fn render(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        let Some(s) = cause.downcast_ref::<ServiceError>() else {
            parts.push(cause.to_string());
            continue;
        };
        let hint = s
            .field
            .and_then(|f| HINTS.iter().find(|(name, _)| *name == f))
            .map(|(_, h)| h);
        parts.push(match hint {
            Some(Hint::Option(flag)) => format!("{flag}: {}", s.message),
            Some(Hint::Advice(advice)) => format!("{}; {advice}", s.message),
            None => s.message.clone(),
        });
        break;
    }
    parts.join(": ")
}

/// A usage error (exit 2): the request itself is wrong.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    ServiceError::new(ErrorKind::Invalid, message).into()
}

/// A failure of our own making (serialising a report): exit 5, the catch-all code.
fn internal(e: impl std::fmt::Display) -> anyhow::Error {
    ServiceError::new(ErrorKind::Internal, e.to_string()).into()
}

pub async fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    let config = smimekit_service::Config::load(cli.config.as_deref())?;
    // `plugins check` loads the file under test alone: a broken plugin is a report, and the
    // configuration's own plugins (which may include it) are not loaded.
    if let Command::Plugins(crate::cli::PluginsArgs {
        command: Some(crate::cli::PluginsCommand::Check(a)),
    }) = &cli.command
    {
        return plugins::check(&config, a, cli.password_file.as_deref(), json).await;
    }
    let mut builder = Service::builder()
        .config(config)
        .plugin_path_env(std::env::var_os("SMIMEKIT_PLUGIN_PATH"))
        .plugins(crate::cli::plugin_files(std::env::args_os(), &cli.plugins))
        .password_file(cli.password_file.clone())
        .password_file_name("--password-file")
        .actor(smimekit_service::os_user(), "cli");
    // The last source of passwords and PINs, only when someone is there to answer.
    if let Some(prompt) = io::terminal_prompt() {
        builder = builder.prompt(prompt);
    }
    let service = builder.build()?;
    // Interactive sign-ins (a device code), shown on standard error while the command runs.
    let _sign_ins = directory::show_sign_ins(&service);
    let code = dispatch(&service, cli.command, json).await;
    tracing::debug!("command done");
    // What plugins asked to tell the user (fallbacks they took), after the result.
    for n in service.take_notices() {
        eprintln!("note: {n}");
    }
    // The orderly end, whatever the outcome: every directory, key store and plugin handle
    // closed once and every plugin thread joined before the process exits (and before
    // libcrypto's exit-time cleanup runs). A plugin still running is an error of its own.
    let shutdown = service.shutdown().await;
    tracing::debug!("service shut down");
    match (code, shutdown) {
        (code, Ok(())) => code,
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(first), Err(e)) => {
            eprintln!("smimekit: at exit: {e}");
            Err(first)
        }
    }
}

async fn dispatch(service: &Service, command: Command, json: bool) -> Result<u8> {
    let service = service.clone();
    match command {
        Command::Sign(a) => mail::sign(&service, a, json).await,
        Command::Encrypt(a) => mail::encrypt(&service, a, json).await,
        Command::Verify(a) => mail::verify(&service, a, json).await,
        Command::Decrypt(a) => mail::decrypt(&service, a, json).await,
        Command::Open(a) => mail::open(&service, a, json).await,
        Command::Keys(KeysCommand::List { store, cert }) => {
            cert::keys_list(&service, store, cert, json).await
        }
        Command::Keys(KeysCommand::Import {
            p12,
            store,
            label,
            p12_password_file,
        }) => token::keys_import(&service, p12, store, label, p12_password_file, json).await,
        Command::Cert(c) => cert::run(&service, c, json).await,
        Command::Ca(c) => ca::run(&service, c, json).await,
        Command::Token(c) => token::run(&service, c, json).await,
        Command::Chain(c) => pki::chain(&service, c, json),
        Command::Sst(c) => pki::sst(&service, c, json).await,
        Command::Lint(a) => lint::run(&service, a, json),
        Command::Lookup(a) => directory::lookup(&service, a, json).await,
        Command::Publish(a) => directory::publish(&service, a, json).await,
        Command::Unpublish(a) => directory::unpublish(&service, a, json).await,
        Command::Trust(c) => directory::trust(&service, c, json).await,
        Command::Directory(c) => directory::directory(&service, c, json).await,
        Command::Inventory(a) => store::inventory(&service, a, json).await,
        Command::Plan(a) => deploy::plan(&service, a, json).await,
        Command::Apply(a) => deploy::apply(&service, a, json).await,
        Command::Status(a) => deploy::status(&service, a, json).await,
        Command::Audit(c) => store::audit(&service, c, json).await,
        Command::Exchange(c) => directory::exchange(&service, c, json).await,
        Command::Login { directory } => directory::login(&service, directory, json).await,
        Command::Demo(a) => demo::run(a, json).await,
        Command::Plugins(a) => plugins::run(&service, a, json),
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails: render first, then write once.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "smimekit", &mut script);
            io::write_output(None, &script)?;
            Ok(EXIT_OK)
        }
    }
}

/// A PKCS#12 password (`what`: "PKCS#12 password for alice.p12"), from the command's own
/// sources first: `--p12-password-file`, then SMIMEKIT_P12_PASSWORD; then the usual order.
pub fn p12_password(
    service: &Service,
    what: String,
    file: Option<&std::path::Path>,
) -> Result<smimekit_service::Secret> {
    use smimekit_service::{SecretKind, SecretRequest, SecretSource};
    let mut req = SecretRequest::new(SecretKind::Password, what);
    if let Some(f) = file {
        req = req.source(SecretSource::file("--p12-password-file", f));
    }
    req = req.source(SecretSource::env(
        "SMIMEKIT_P12_PASSWORD",
        "SMIMEKIT_P12_PASSWORD",
    ));
    Ok(service.secret(&req)?)
}

/// Opens a key; a locked store is unlocked by the service with a password or PIN found in the
/// documented order (the prompt is the one the service was built with).
pub async fn open_key(
    service: &Service,
    reference: &str,
    certificate: Option<String>,
) -> Result<Arc<dyn PrivateKey>> {
    let req = KeyRequest {
        reference: reference.to_string(),
        certificate,
        ..KeyRequest::default()
    };
    Ok(service.open_key(&req).await?)
}

/// Opens a key to decrypt with, as [`open_key`] does; a key file without a certificate opens
/// bare.
pub async fn open_decryption_key(
    service: &Service,
    reference: &str,
    certificate: Option<String>,
) -> Result<DecryptionKey> {
    let req = KeyRequest {
        reference: reference.to_string(),
        certificate,
        ..KeyRequest::default()
    };
    Ok(service.open_decryption_key(&req).await?)
}

/// Prints a DTO as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(internal)?;
    outln!("{text}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code(kind: ErrorKind) -> u8 {
        exit_code(&ServiceError::new(kind, "x").into())
    }

    /// Every kind the service has, with the README's exit code for it.
    #[test]
    fn every_kind_has_its_documented_exit_code() {
        let table = [
            (ErrorKind::Invalid, EXIT_USAGE),
            (ErrorKind::Malformed, EXIT_MALFORMED),
            (ErrorKind::Unsupported, EXIT_MALFORMED),
            (ErrorKind::Key, EXIT_KEY),
            (
                ErrorKind::Locked {
                    object: "PIN of token \"t\"".into(),
                    hint: "not found in SMIMEKIT_PIN".into(),
                    tries_left: Some(2),
                },
                EXIT_KEY,
            ),
            (ErrorKind::NotFound, EXIT_KEY),
            (ErrorKind::Io, EXIT_IO),
            (ErrorKind::Conflict, EXIT_IO),
            (ErrorKind::Stale, EXIT_KEY),
            (ErrorKind::Unavailable, EXIT_IO),
            (ErrorKind::PermissionDenied, EXIT_IO),
            (ErrorKind::Internal, EXIT_IO),
        ];
        let mut names: Vec<&str> = table.iter().map(|(k, _)| k.name()).collect();
        names.sort_unstable();
        let mut every: Vec<&str> = ErrorKind::NAMES.to_vec();
        every.sort_unstable();
        assert_eq!(names, every, "a kind without an exit code");
        assert_eq!(EXIT_CODES.len(), ErrorKind::NAMES.len());
        for (kind, want) in table {
            assert_eq!(code(kind.clone()), want, "{kind:?}");
        }
        // Outside the service: an I/O failure.
        let other = anyhow::Error::from(std::io::Error::other("other"));
        assert_eq!(exit_code(&other), EXIT_IO);
    }

    #[test]
    fn rendering_ends_at_the_service_error_with_its_flag_hint() {
        let source = std::io::Error::other("disk on fire");
        let e: anyhow::Error = ServiceError::new(ErrorKind::Io, "a.pem: disk on fire")
            .with_source(source)
            .into();
        assert_eq!(render(&e), "a.pem: disk on fire");
        let e = anyhow::Error::from(
            ServiceError::new(ErrorKind::Key, "the certificate is for b, not a").for_field("force"),
        )
        .context("publishing");
        assert_eq!(
            render(&e),
            "publishing: the certificate is for b, not a; use --force to publish it anyway"
        );
        let e: anyhow::Error = ServiceError::new(ErrorKind::Invalid, "RSA-PSS needs an RSA key")
            .for_field("pss")
            .into();
        assert_eq!(render(&e), "--pss: RSA-PSS needs an RSA key");
        let e = anyhow::Error::from(std::io::Error::other("inner")).context("outer");
        assert_eq!(render(&e), format!("{e:#}"));
    }
}
