//! Loads vendor plugins through the C ABI (`smimekit-plugin-abi`) and makes each a normal
//! [`KeyStore`](smimekit_core::KeyStore) or [`Directory`](smimekit_core::Directory).
//!
//! * [`discover`] expands the configured paths (files, or folders of shared libraries);
//! * [`load`] opens one library with `libloading`, calls its entry symbol and validates every
//!   table it returns (ABI major, `size`, required functions, name) before anything else runs;
//!   failures are a [`LoadError`] naming the file and the reason, and leave the process as it
//!   was;
//! * [`Plugins`] is the loaded set, checked for name clashes;
//! * the adapters ([`keystore`], [`directory`]) run every call on the plugin's [`lane::Lane`]:
//!   a bounded `spawn_blocking` pool for `THREAD_SAFE` plugins, one worker thread otherwise.
//!   Library code never calls `block_on`.
//!
//! Libraries are never unloaded (leaked when loaded: no `dlclose`, whichever thread drops
//! the last reference): adapters hold function pointers into them, and unloading a library
//! that started threads is unsound in general.
//!
//! Every handle a plugin opens is recorded in its [`Library`] and closed exactly once: when
//! its adapter is dropped, or by [`Plugins::shutdown`], which the host calls before the
//! process exits (and before libcrypto's exit-time cleanup runs): it closes what is still
//! open, stops the lanes and joins the worker threads within a bounded wait.
//!
//! Not done here: crash isolation (a plugin can still abort the process; the transport-neutral
//! ABI allows a runner process later).

// The FFI boundary: confined to `ffi` (table copies, calls) and the Send impls of handles.
#![allow(unsafe_code)]

pub mod check;
pub mod directory;
mod ffi;
pub mod keystore;
pub mod lane;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use ffi::{Library, PluginInfo};

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {}: {reason}", file.display())]
pub struct LoadError {
    pub file: PathBuf,
    pub reason: String,
}

/// The file names [`discover`] takes from a folder.
fn is_library(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}

/// Expands plugin paths: a file is taken as is; a folder gives its shared libraries, sorted.
/// A relative path (a bare file name too) is a file relative to the working directory, never
/// a name for the system's library search: it is made absolute here.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let p = &std::path::absolute(p).map_err(|e| LoadError {
            file: p.clone(),
            reason: format!("cannot make the path absolute: {e}"),
        })?;
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| LoadError {
                file: p.clone(),
                reason: format!("cannot read the folder: {e}"),
            })?;
            let mut libs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_library(p))
                .collect();
            libs.sort();
            out.extend(libs);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads and validates one plugin library (a relative path is relative to the working
/// directory, never searched for).
pub fn load(path: &Path) -> Result<Arc<Library>, LoadError> {
    ffi::Library::load(path).map(Arc::new)
}

/// Loads a plugin whose calls run on the caller's thread, one at a time (no lane). Only for
/// callers that already run on a blocking thread and never call concurrently: the benchmark
/// uses it to measure the ABI alone. The service always uses [`load`].
pub fn load_inline(path: &Path) -> Result<Arc<Library>, LoadError> {
    ffi::Library::load_with(path, true).map(Arc::new)
}

/// The loaded plugins.
#[derive(Debug, Default, Clone)]
pub struct Plugins {
    libs: Vec<Arc<Library>>,
}

impl Plugins {
    /// Loads every path; names must not clash with `reserved` (the built-ins' key-store ids and
    /// directory kinds) nor with each other. The same file named twice (the configuration and
    /// `--plugin`, or through a link) is loaded once. The first failure is returned.
    pub fn load_all(paths: &[PathBuf], reserved: &[&str]) -> Result<Self, LoadError> {
        let mut set = Self::default();
        for p in discover(paths)? {
            if let Ok(c) = std::fs::canonicalize(&p)
                && set.libs.iter().any(|l| l.canonical_path() == c)
            {
                continue;
            }
            let lib = load(&p)?;
            set.add(lib, reserved)?;
        }
        Ok(set)
    }

    /// Adds a loaded library, refusing name clashes; the same file again is not added twice.
    pub fn add(&mut self, lib: Arc<Library>, reserved: &[&str]) -> Result<(), LoadError> {
        if self
            .libs
            .iter()
            .any(|l| l.canonical_path() == lib.canonical_path())
        {
            return Ok(());
        }
        for name in lib.names() {
            if reserved.contains(&name) {
                return Err(LoadError {
                    file: lib.path().to_path_buf(),
                    reason: format!("name {name:?} clashes with a built-in plugin"),
                });
            }
            if let Some(other) = self.libs.iter().find(|l| l.names().contains(&name)) {
                return Err(LoadError {
                    file: lib.path().to_path_buf(),
                    reason: format!(
                        "name {name:?} is already provided by plugin {}",
                        other.path().display()
                    ),
                });
            }
        }
        self.libs.push(lib);
        Ok(())
    }

    pub fn libraries(&self) -> &[Arc<Library>] {
        &self.libs
    }

    /// Limits how long each call waits for a plugin (see [`Library::set_call_timeout`]).
    pub fn set_call_timeout(&self, limit: Option<Duration>) {
        for lib in &self.libs {
            lib.set_call_timeout(limit);
        }
    }

    /// Ends every library's use before the process exits: the handles still open are closed
    /// (keys, then stores, then directories), then each lane stops and its worker thread is
    /// joined, waiting at most `timeout` per library. Every library is shut down even when
    /// one fails; the first failure is returned (it names the file and the thread still in
    /// the plugin). Idempotent; a call on a handle after this fails (`UNAVAILABLE`).
    pub fn shutdown(&self, timeout: Duration) -> Result<(), LoadError> {
        let mut first = Ok(());
        for lib in &self.libs {
            if let Err(e) = lib.shutdown(timeout)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// The library whose key store accepts `reference`.
    pub fn key_store_for(&self, reference: &str) -> Option<&Arc<Library>> {
        self.libs.iter().find(|l| l.accepts(reference))
    }

    /// The library providing directory kind `kind`.
    pub fn directory_kind(&self, kind: &str) -> Option<&Arc<Library>> {
        self.libs
            .iter()
            .find(|l| l.directory_info().is_some_and(|i| i.name == kind))
    }

    /// Every directory kind the plugins provide.
    pub fn directory_kinds(&self) -> Vec<&str> {
        self.libs
            .iter()
            .filter_map(|l| l.directory_info().map(|i| i.name.as_str()))
            .collect()
    }
}
