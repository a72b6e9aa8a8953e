//! Input, output and secrets for the CLI: files or stdio, passwords from the environment, a
//! file or a prompt (never from argv).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use smimekit_service::{ErrorKind, Secret, ServiceError};

use crate::cli::PasswordArgs;

/// `println!` that never panics: standard output closed by the reader (`smimekit plugins | head -1`)
/// ends the process with success, as ripgrep does; any other write failure exits with the I/O code.
macro_rules! outln {
    () => {
        $crate::io::print_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::io::print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output; see [`outln!`].
pub fn print_out(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|_| out.flush()) {
        stdout_failed(&e);
    }
}

/// Standard output cannot be written: a closed pipe is the reader's choice and a success; anything
/// else (a full disk behind a redirection) is an I/O failure. Either way there is no one to print to.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(crate::commands::EXIT_OK));
    }
    eprintln!("smimekit: writing standard output: {e}");
    std::process::exit(i32::from(crate::commands::EXIT_IO));
}

/// An input file that is missing or unreadable is an I/O error naming the file.
pub fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).map_err(|e| io_err(p, e)),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            Ok(buf)
        }
    }
}

pub fn write_output(path: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, data).map_err(|e| io_err(p, e)),
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(data).and_then(|_| out.flush()) {
                stdout_failed(&e);
            }
            Ok(())
        }
    }
}

fn io_err(p: &Path, e: std::io::Error) -> anyhow::Error {
    ServiceError::new(ErrorKind::Io, format!("{}: {e}", p.display())).into()
}

/// The secret for a locked key store: --password-file, then (for `pkcs11:` tokens)
/// SMIMEKIT_PIN, then SMIMEKIT_PASSWORD, then SMIMEKIT_PIN, then a prompt when a terminal is
/// attached. Never echoed, never logged.
pub fn secret(args: &PasswordArgs, what: &str) -> anyhow::Result<Secret> {
    let token = what
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"));
    if let Some(file) = &args.password_file {
        return read_password_file(file);
    }
    if token && let Ok(p) = std::env::var("SMIMEKIT_PIN") {
        return Ok(Secret::from(p));
    }
    if let Ok(p) = std::env::var("SMIMEKIT_PASSWORD") {
        return Ok(Secret::from(p));
    }
    if let Ok(p) = std::env::var("SMIMEKIT_PIN") {
        return Ok(Secret::from(p));
    }
    let word = if token { "PIN" } else { "Password" };
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("{word} for {what}: "))
            .context("reading the password")?;
        return Ok(Secret::from(p));
    }
    let how = if token {
        "a PIN: set SMIMEKIT_PIN, use --password-file, or pin-source= in the URI"
    } else {
        "a password: set SMIMEKIT_PASSWORD or use --password-file"
    };
    Err(ServiceError::new(ErrorKind::Key, format!("{what} needs {how}")).into())
}

fn read_password_file(file: &PathBuf) -> anyhow::Result<Secret> {
    let text = std::fs::read(file).map_err(|e| io_err(file, e))?;
    let text = Secret::new(text);
    // The password is the first line, without its line end.
    let first = text
        .expose()
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    Ok(Secret::new(first.to_vec()))
}
