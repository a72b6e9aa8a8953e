//! Input, output and the terminal for the CLI: files or stdio, and the prompt the service asks
//! for passwords and PINs when it has no other source (never argv).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use smimekit_service::{ErrorKind, Prompt, Secret, ServiceError};

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

/// The terminal, for the service's last source of passwords and PINs: only when standard
/// input is a terminal (never in scripts, pipes or CI). The answer is not echoed; the question
/// and the typing go to the terminal itself, never to standard output.
pub fn terminal_prompt() -> Option<Arc<dyn Prompt>> {
    std::io::stdin()
        .is_terminal()
        .then(|| Arc::new(Terminal) as Arc<dyn Prompt>)
}

struct Terminal;

impl Prompt for Terminal {
    fn ask(&self, text: &str) -> std::io::Result<Secret> {
        rpassword::prompt_password(text).map(Secret::from)
    }
}
