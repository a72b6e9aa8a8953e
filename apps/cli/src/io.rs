//! Input, output and the terminal for the CLI: files or stdio, and the prompt the service asks
//! for passwords and PINs when it has no other source (never argv).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use smimekit_service::{ErrorKind, Named, Prompt, Secret, ServiceError};

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

/// A file's bytes named by its path, for the service (which never opens files); a missing or
/// unreadable file is an I/O error naming it.
pub fn read_named(path: &Path) -> anyhow::Result<Named<Vec<u8>>> {
    let data = std::fs::read(path).map_err(|e| io_err(path, e))?;
    Ok(Named::new(path.display().to_string(), data))
}

/// [`read_named`] for each file, in order.
pub fn read_all_named(paths: &[PathBuf]) -> anyhow::Result<Vec<Named<Vec<u8>>>> {
    paths.iter().map(|p| read_named(p)).collect()
}

/// Creates a folder and its parents; a failure is an I/O error naming it.
pub fn create_dir_all(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).map_err(|e| io_err(path, e))
}

/// Who may read a file the CLI writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As the umask says (or as the file it replaces was).
    Default,
    /// Its owner only (0600): private keys, PKCS#12 files, password files, decrypted content.
    Owner,
}

/// Writes a file whole or not at all: a temporary file in the target's folder, with an
/// unpredictable name and created exclusively (never an object someone planted there), synced,
/// then renamed over the target, so that a crash or a full disk leaves the old file, never half
/// a new one. A file it replaces keeps its permissions; [`Access::Owner`] files are created
/// 0600 (on Unix) and keep 0600 whatever they replace.
///
/// What is not a regular file (`/dev/null`, a FIFO, a symbolic link, a folder), and a
/// read-only file, is written in place, as before, except for [`Access::Owner`]: a secret is
/// never written through a symbolic link (it could point anywhere: a link planted at the path
/// is refused, not followed), nor into a FIFO or anything else but a regular file or a
/// character device such as `/dev/null`.
pub fn write_file(path: &Path, data: &[u8], access: Access) -> anyhow::Result<()> {
    let existing = std::fs::symlink_metadata(path).ok();
    if let Some(m) = &existing {
        let kind = m.file_type();
        if access == Access::Owner && !kind.is_file() {
            if is_char_device(&kind) {
                return std::fs::write(path, data).map_err(|e| io_err(path, e));
            }
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else if kind.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(ServiceError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{}: is {what}; a file holding a secret is only written as a new regular file (remove it or choose another path)",
                    path.display()
                ),
            )
            .into());
        }
        if access == Access::Default && (!kind.is_file() || m.permissions().readonly()) {
            return std::fs::write(path, data).map_err(|e| io_err(path, e));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    // tempfile: O_CREAT|O_EXCL under a random name, retried on a collision.
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".smimekit.tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(match access {
            Access::Owner => 0o600,
            // The umask applies, as to any new file.
            Access::Default => 0o666,
        }));
    }
    let mut file = builder.tempfile_in(dir).map_err(|e| io_err(path, e))?;
    let written = (|| {
        file.write_all(data)?;
        if access == Access::Default
            && let Some(m) = &existing
        {
            file.as_file().set_permissions(m.permissions())?;
        }
        file.as_file().sync_all()?;
        // rename(2) replaces the name; it never writes through what was there.
        file.persist(path).map_err(|e| e.error)?;
        // Persist the rename; not every platform can open a folder, so best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    // A failed write drops the temporary file, which removes it.
    written.map_err(|e: std::io::Error| io_err(path, e))
}

#[cfg(unix)]
fn is_char_device(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    kind.is_char_device()
}

#[cfg(not(unix))]
fn is_char_device(_: &std::fs::FileType) -> bool {
    false
}

/// [`write_output`] for content that is secret (decrypted mail): a file is written owner-only
/// (see [`Access::Owner`]).
pub fn write_secret_output(path: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => write_file(p, data, Access::Owner),
        None => write_output(None, data),
    }
}

/// The output of a command: a file (written by [`write_file`]), or standard output.
pub fn write_output(path: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => write_file(p, data, Access::Default),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fresh folder of this test's own under the system's temporary folder.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smimekit-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_are_replaced_whole_and_secrets_are_owner_only() {
        let dir = scratch("write-file");
        let out = dir.join("out.pem");
        write_file(&out, b"first", Access::Default).unwrap();
        write_file(&out, b"second", Access::Default).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.pem"], "no temporary file left");

        // A missing folder is an I/O error naming the target.
        let e = write_file(&dir.join("no/such/out.pem"), b"x", Access::Default).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", dir.join("no/such/out.pem").display())),
            "{e}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let key = dir.join("key.p12");
            write_file(&key, b"pkcs12", Access::Owner).unwrap();
            assert_eq!(mode(&key), 0o600);
            // A file that is replaced keeps its mode.
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
            write_file(&out, b"third", Access::Default).unwrap();
            assert_eq!(mode(&out), 0o640);
            // Not a regular file: written in place.
            write_file(Path::new("/dev/null"), b"gone", Access::Default).unwrap();
            write_file(Path::new("/dev/null"), b"gone", Access::Owner).unwrap();

            // A secret replacing a readable file is owner-only all the same.
            let open = dir.join("open.eml");
            write_file(&open, b"old", Access::Default).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
            write_file(&open, b"decrypted", Access::Owner).unwrap();
            assert_eq!(mode(&open), 0o600);
            assert_eq!(std::fs::read(&open).unwrap(), b"decrypted");

            // A symbolic link planted where a secret goes is refused, never followed.
            let victim = dir.join("victim");
            std::fs::write(&victim, b"precious").unwrap();
            let planted = dir.join("planted.key");
            std::os::unix::fs::symlink(&victim, &planted).unwrap();
            let e = write_file(&planted, b"secret", Access::Owner).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
            // A dangling link (to where the attacker will read) is refused too.
            let dangling = dir.join("dangling.p12");
            std::os::unix::fs::symlink(dir.join("later"), &dangling).unwrap();
            write_file(&dangling, b"secret", Access::Owner).unwrap_err();
            assert!(!dir.join("later").exists());
            // No temporary file left behind by any of these.
            let mut left: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            left.sort();
            assert!(left.is_empty(), "{left:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
