//! The directory file: its JSON layout, reading it with errors that name the file, and
//! replacing it atomically under a writer lock.
//!
//! Layout (version 1), addresses sorted by their lowercased form so the file diffs well:
//!
//! ```json
//! {
//!   "format": "smimekit-local-directory",
//!   "version": 1,
//!   "trust_chain": ["<base64 DER>", …],
//!   "recipients": [
//!     { "address": "alice@example.org", "kind": "mailbox", "certificates": ["<base64 DER>", …] }
//!   ]
//! }
//! ```
//!
//! Writes never touch the live file: the new content goes to a temporary file in the same
//! folder, is flushed to disk (`fsync`), renamed over the old file (atomic on POSIX and on
//! NTFS), and the folder is flushed so the rename itself survives a power cut. A crash at any
//! point leaves either the old or the new file, never a mix; a leftover temporary file is
//! ignored by readers and overwritten by the next writer of the same process id. Writers take
//! an exclusive OS lock on `<file>.lock` (released by the OS when a process dies, so a killed
//! writer never leaves a stale lock) for the whole read-modify-write.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use smimekit_core::{CertDer, DirectoryError, Mailbox, Recipient, RecipientKind};

pub(crate) const FORMAT: &str = "smimekit-local-directory";
pub(crate) const VERSION: u32 = 1;

/// What the file holds, in memory: recipients by their canonical key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    pub recipients: BTreeMap<String, Recipient>,
    pub trust_chain: Vec<CertDer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    format: String,
    version: u32,
    #[serde(default)]
    trust_chain: Vec<String>,
    #[serde(default)]
    recipients: Vec<FileRecipient>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecipient {
    address: String,
    kind: FileKind,
    #[serde(default)]
    certificates: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum FileKind {
    Mailbox,
    Contact,
}

impl From<RecipientKind> for FileKind {
    fn from(k: RecipientKind) -> Self {
        match k {
            RecipientKind::Mailbox => FileKind::Mailbox,
            RecipientKind::Contact => FileKind::Contact,
        }
    }
}

impl From<FileKind> for RecipientKind {
    fn from(k: FileKind) -> Self {
        match k {
            FileKind::Mailbox => RecipientKind::Mailbox,
            FileKind::Contact => RecipientKind::Contact,
        }
    }
}

/// Identifies one version of the file. Files are only ever replaced, never changed in place,
/// so a new inode (or, where there is none, a new size or time) means new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdent {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileIdent {
    pub fn of(m: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: m.len(),
            modified: m.modified().ok(),
            inode,
        }
    }
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Corrupt(format!("{}: {detail}", path.display()))
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{}: {e}", path.display()))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Reads the file; `Ok(None)` when it does not exist (an empty directory).
pub(crate) fn read(path: &Path) -> Result<Option<(FileIdent, Data)>, DirectoryError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable(path, e)),
    };
    // The identity of the very handle we read from: the file may be replaced meanwhile.
    let ident = FileIdent::of(&file.metadata().map_err(|e| unavailable(path, e))?);
    let mut bytes = Vec::with_capacity(usize::try_from(ident.len).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| unavailable(path, e))?;
    Ok(Some((ident, decode(path, &bytes)?)))
}

pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Data, DirectoryError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(corrupt(
            path,
            "empty file (not a smimekit directory; restore it from a backup or delete it to start empty)",
        ));
    }
    let doc: FileDoc = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(
            path,
            format!(
                "not a smimekit directory file: line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    if doc.format != FORMAT {
        return Err(corrupt(
            path,
            format!("format is {:?}, expected {FORMAT:?}", doc.format),
        ));
    }
    if doc.version != VERSION {
        return Err(corrupt(
            path,
            format!(
                "version {} (this smimekit reads version {VERSION}; a newer smimekit wrote it?)",
                doc.version
            ),
        ));
    }
    let cert = |s: &str, what: &dyn Fn() -> String| -> Result<CertDer, DirectoryError> {
        let der = b64()
            .decode(s)
            .map_err(|e| corrupt(path, format!("{}: bad base64: {e}", what())))?;
        if der.first() != Some(&0x30) {
            return Err(corrupt(path, format!("{}: not DER (no SEQUENCE)", what())));
        }
        Ok(CertDer::new(der))
    };
    let mut data = Data::default();
    for (i, c) in doc.trust_chain.iter().enumerate() {
        data.trust_chain
            .push(cert(c, &|| format!("trust_chain[{i}]"))?);
    }
    for (i, r) in doc.recipients.into_iter().enumerate() {
        let address = Mailbox::parse(&r.address)
            .map_err(|e| corrupt(path, format!("recipients[{i}]: {e}")))?;
        let mut certificates = Vec::with_capacity(r.certificates.len());
        for (j, c) in r.certificates.iter().enumerate() {
            certificates.push(cert(c, &|| format!("{address}: certificate {}", j + 1))?);
        }
        let key = address.key();
        let recipient = Recipient {
            address,
            kind: r.kind.into(),
            certificates,
        };
        if let Some(dup) = data.recipients.insert(key, recipient) {
            return Err(corrupt(
                path,
                format!("recipient {} is listed twice", dup.address),
            ));
        }
    }
    Ok(data)
}

pub(crate) fn encode(path: &Path, data: &Data) -> Result<Vec<u8>, DirectoryError> {
    let enc = |c: &CertDer| b64().encode(c.as_bytes());
    let doc = FileDoc {
        format: FORMAT.to_string(),
        version: VERSION,
        trust_chain: data.trust_chain.iter().map(enc).collect(),
        recipients: data
            .recipients
            .values()
            .map(|r| FileRecipient {
                address: r.address.as_str().to_string(),
                kind: r.kind.into(),
                certificates: r.certificates.iter().map(enc).collect(),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&doc).map_err(|e| unavailable(path, e))?;
    out.push(b'\n');
    Ok(out)
}

/// Where the simulated failure happens (tests and debug builds only; see `Fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFault {
    /// The temporary file is written and flushed, then the writer "dies" before the rename.
    BeforeRename,
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync of the folder.
pub(crate) fn replace(
    path: &Path,
    bytes: &[u8],
    fault: Option<WriteFault>,
) -> Result<(), DirectoryError> {
    let dir = parent(path);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "directory".to_string());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if fault == Some(WriteFault::BeforeRename) {
            // Leave the temporary file behind, as a killed process would.
            return Err(std::io::Error::other("simulated crash before rename"));
        }
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    result.map_err(|e| {
        if fault.is_none() {
            let _ = fs::remove_file(&tmp);
        }
        unavailable(path, format!("writing the directory failed: {e}"))
    })
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Windows cannot open a folder for flushing; MoveFileEx's rename is journaled by NTFS.
    Ok(())
}

/// Exclusive writer lock on `<path>.lock`, held until dropped (the OS releases it when the
/// process dies).
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

pub(crate) fn lock(path: &Path, timeout: Duration) -> Result<WriterLock, DirectoryError> {
    let dir = parent(path);
    fs::create_dir_all(&dir).map_err(|e| unavailable(&dir, e))?;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| unavailable(&lock_path, e))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WriterLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(unavailable(
                        &lock_path,
                        format!(
                            "another smimekit is writing this directory (still locked after {} s)",
                            timeout.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::Error(e)) => return Err(unavailable(&lock_path, e)),
        }
    }
}
