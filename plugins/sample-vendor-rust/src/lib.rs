//! A sample vendor plugin written with `smimekit-plugin-sdk`: a directory of kind
//! `sample-json`, backed by one JSON file (`{"alice@example.com": ["<base64 DER>", …]}`).
//!
//! ```toml
//! [directory.vendor]
//! kind = "sample-json"
//! path = "vendor.json"
//! ```
//!
//! It exists to show and test the ABI, not to be a good directory: no locking between
//! processes, every write rewrites the file. Looking up an address that starts with
//! `panic@` panics on purpose, so the tests can check the panic boundary.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use smimekit_plugin_sdk::{DirectoryPlugin, Error, RecipientEntry, abi, export_plugin};

/// One open `sample-json` directory.
#[derive(Debug)]
pub struct JsonDirectory {
    path: PathBuf,
    /// Serialises this process's writers.
    lock: Mutex<()>,
}

type Entries = BTreeMap<String, Vec<String>>;

impl JsonDirectory {
    fn read(&self) -> Result<Entries, Error> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::new(
                    abi::Status::MALFORMED,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entries::new()),
            Err(e) => Err(Error::io(format!("{}: {e}", self.path.display()))),
        }
    }

    fn certs(entries: &Entries, address: &str) -> Result<Vec<Vec<u8>>, Error> {
        entries
            .get(&address.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .map(|c| {
                B64.decode(c)
                    .map_err(|e| Error::new(abi::Status::MALFORMED, e.to_string()))
            })
            .collect()
    }
}

/// The `path = "…"` of a TOML table, read without a TOML parser (the sample has no deps
/// beyond the SDK and JSON): the host hands the table with `path` already absolute.
fn path_setting(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "path").then(|| v.trim().trim_matches('"').replace("\\\\", "\\"))
    })
}

impl DirectoryPlugin for JsonDirectory {
    const KIND: &'static CStr = c"sample-json";
    const VERSION: &'static CStr = c"0.1.0";
    const DESCRIPTION: &'static CStr = c"Sample vendor directory: one JSON file (Rust SDK)";
    const THREAD_SAFE: bool = true;

    fn open(name: &str, config: &str) -> Result<Self, Error> {
        let path = path_setting(config)
            .ok_or_else(|| Error::config(format!("[directory.{name}] needs path = \"…\"")))?;
        Ok(Self {
            path: PathBuf::from(path),
            lock: Mutex::new(()),
        })
    }

    fn lookup(&self, address: &str) -> Result<Vec<Vec<u8>>, Error> {
        if address.starts_with("panic@") {
            panic!("sample plugin: asked to panic for {address}");
        }
        Self::certs(&self.read()?, address)
    }

    fn recipients(&self) -> Result<Vec<RecipientEntry>, Error> {
        let entries = self.read()?;
        entries
            .keys()
            .map(|a| {
                Ok(RecipientEntry {
                    address: a.clone(),
                    kind: abi::RECIPIENT_MAILBOX,
                    certificates: Self::certs(&entries, a)?,
                })
            })
            .collect()
    }

    fn publish(
        &self,
        address: &str,
        _kind: u32,
        cert: &[u8],
        mode: u32,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = self.read()?;
        let list = entries.entry(address.to_ascii_lowercase()).or_default();
        let enc = B64.encode(cert);
        if mode == abi::PUBLISH_REPLACE {
            list.clear();
        }
        if !list.contains(&enc) {
            list.push(enc);
        }
        let text = serde_json::to_vec_pretty(&entries).map_err(|e| Error::failed(e.to_string()))?;
        std::fs::write(&self.path, text)
            .map_err(|e| Error::io(format!("{}: {e}", self.path.display())))?;
        Self::certs(&self.read()?, address)
    }

    fn unpublish(&self, address: &str, cert: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = self.read()?;
        let enc = B64.encode(cert);
        let Some(list) = entries.get_mut(&address.to_ascii_lowercase()) else {
            return Err(Error::not_found(format!("{address}: no such recipient")));
        };
        list.retain(|c| c != &enc);
        let text = serde_json::to_vec_pretty(&entries).map_err(|e| Error::failed(e.to_string()))?;
        std::fs::write(&self.path, text)
            .map_err(|e| Error::io(format!("{}: {e}", self.path.display())))?;
        Self::certs(&self.read()?, address)
    }
}

export_plugin!(directory = JsonDirectory);
