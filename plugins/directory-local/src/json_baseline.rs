//! The local directory as it was before the store: one JSON file, rewritten whole on every
//! write under an exclusive lock on `<file>.lock` (temporary file, fsync, rename, fsync of the
//! folder, read back), and lookups from a copy cached while the file is unchanged. Kept only
//! as the baseline that `cargo xtask bench-store` measures the store against, in the same
//! run; smimekit itself reads and writes this format only to import and export.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smimekit_core::store::DirectoryData;
use smimekit_core::{DirectoryError, Recipient, directory_file};

fn unavailable(path: &Path, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{}: {e}", path.display()))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The JSON file directory.
#[derive(Debug)]
pub(crate) struct JsonFile {
    pub path: PathBuf,
}

impl JsonFile {
    pub fn read(&self) -> Result<DirectoryData, DirectoryError> {
        match fs::read(&self.path) {
            Ok(b) => directory_file::decode(&self.path.display().to_string(), &b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DirectoryData::default()),
            Err(e) => Err(unavailable(&self.path, e)),
        }
    }

    /// Recipients by key, as the old handle cached them.
    pub fn index(&self) -> Result<BTreeMap<String, Recipient>, DirectoryError> {
        Ok(self
            .read()?
            .recipients
            .into_iter()
            .map(|r| (r.address.key(), r))
            .collect())
    }

    /// One read-modify-write under the lock; returns the content as read back from disk.
    pub fn write(
        &self,
        change: impl FnOnce(&mut DirectoryData),
    ) -> Result<DirectoryData, DirectoryError> {
        let _lock = self.lock(Duration::from_secs(30))?;
        let mut data = self.read()?;
        change(&mut data);
        self.replace(&directory_file::encode(&data))?;
        self.read()
    }

    fn replace(&self, bytes: &[u8]) -> Result<(), DirectoryError> {
        let dir = parent(&self.path);
        let tmp = dir.join(format!(".bench-json.{}.tmp", std::process::id()));
        (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        })()
        .map_err(|e| unavailable(&self.path, e))
    }

    fn lock(&self, timeout: Duration) -> Result<File, DirectoryError> {
        let mut lock_path = self.path.as_os_str().to_owned();
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
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(unavailable(&lock_path, e)),
            }
        }
    }
}
