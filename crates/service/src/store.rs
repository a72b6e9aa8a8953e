//! The service's store (`[store] url`, opened on first use and shared by every call), who is
//! acting (for the audit log), and `directory export`/`import` in the reviewable JSON form.
//!
//! The inventory and the audit log that this store keeps are in `inventory` and `audit_log`.

use std::sync::Arc;

use serde::Serialize;
use smimekit_core::store::{
    DirectoryData, ImportMode, ImportOutcome, LazyStore, Store, StoreError,
};
use smimekit_core::{DirectoryError, directory_file};

use crate::{ErrorKind, Named, Service, ServiceError};

/// Who acts through this service: the OS user for the CLI, the signed-in user for the web.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    pub user: String,
    /// `cli`, `web`, `tui`.
    pub frontend: String,
}

impl Default for Actor {
    fn default() -> Self {
        Self {
            user: os_user(),
            frontend: "library".into(),
        }
    }
}

/// The OS user running this process (`USER`, `LOGNAME`, `USERNAME`), or `unknown`.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// The store's error as the service's (kinds as [`ServiceError`]'s `From<StoreError>` maps them).
pub(crate) fn store_error(e: StoreError) -> ServiceError {
    e.into()
}

/// `smimekit directory export`: the JSON form of a directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryExport {
    pub directory: String,
    pub recipients: usize,
    pub certificates: usize,
    pub trust_chain: usize,
    /// The JSON document (see `smimekit_core::directory_file`).
    #[serde(skip)]
    pub json: Vec<u8>,
}

/// `smimekit directory import F`.
#[derive(Debug, Clone)]
pub struct DirectoryImportRequest {
    /// The JSON document, named (a file name).
    pub json: Named<Vec<u8>>,
    pub directory: Option<String>,
    /// Make the directory exactly the file's content (default: merge, nothing dropped).
    pub replace: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectoryImportResult {
    pub directory: String,
    pub source: String,
    pub mode: ImportMode,
    pub recipients: u64,
    pub certificates: u64,
    pub trust_chain: u64,
}

impl Service {
    /// The store, opened on first use (creating the SQLite file and its folder, or checking
    /// the PostgreSQL schema).
    pub(crate) async fn store(&self) -> Result<Arc<dyn Store>, ServiceError> {
        self.lazy_store()?.get().await.map_err(store_error)
    }

    pub(crate) fn lazy_store(&self) -> Result<&Arc<LazyStore>, ServiceError> {
        self.store.as_ref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Invalid,
                "no store configured and no data folder known (set XDG_DATA_HOME or HOME, or [store] url in the config)",
            )
        })
    }

    /// The store's URL without its password, for reports.
    pub fn store_description(&self) -> Option<String> {
        self.store.as_ref().map(|s| s.describe())
    }

    fn is_local(&self, name: &str) -> bool {
        self.config
            .directories
            .iter()
            .any(|d| d.name == name && d.kind == "local")
    }

    /// `smimekit directory export`: every recipient and the trust chain of a directory (any
    /// kind; a directory without a trust chain exports an empty one).
    pub async fn export_directory(
        &self,
        directory: Option<&str>,
    ) -> Result<DirectoryExport, ServiceError> {
        let dir = self.target_directory(directory).await?;
        let mut recipients = dir.recipients().await?;
        recipients.sort_by_key(|r| r.address.key());
        let trust_chain = match dir.trust_chain().await {
            Ok(c) => c,
            Err(DirectoryError::Unsupported(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let data = DirectoryData {
            recipients,
            trust_chain,
        };
        Ok(DirectoryExport {
            directory: dir.name().to_string(),
            recipients: data.recipients.len(),
            certificates: data.recipients.iter().map(|r| r.certificates.len()).sum(),
            trust_chain: data.trust_chain.len(),
            json: directory_file::encode(&data),
        })
    }

    /// `smimekit directory import F`: a JSON document into a local directory, in one
    /// transaction, with an audit row.
    pub async fn import_directory(
        &self,
        req: &DirectoryImportRequest,
    ) -> Result<DirectoryImportResult, ServiceError> {
        let dir = self.target_directory(req.directory.as_deref()).await?;
        let name = dir.name().to_string();
        if !self.is_local(&name) {
            return Err(ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "directory {name} is not a local directory: import publishes into local directories only"
                ),
            ));
        }
        let data = directory_file::decode(&req.json.name, &req.json.data)?;
        // Through the directory first: a directory.json waiting for its first-use import
        // goes in before this one.
        dir.recipients().await?;
        let store = self.store().await?;
        let mode = if req.replace {
            ImportMode::Replace
        } else {
            ImportMode::Merge
        };
        let outcome = store
            .import_directory(&name, &data, mode, None)
            .await
            .map_err(store_error);
        let (recipients, certificates, trust_chain) = match &outcome {
            Ok(ImportOutcome::Imported {
                recipients,
                certificates,
                trust_chain,
            }) => (*recipients, *certificates, *trust_chain),
            _ => (0, 0, 0),
        };
        let result = match &outcome {
            Ok(_) => format!(
                "ok: {recipients} recipients, {certificates} certificates, {trust_chain} in the trust chain from {}",
                req.json.name
            ),
            Err(e) => format!("failed: {e}"),
        };
        self.audit_change("import", &name, "", Vec::new(), Vec::new(), result)
            .await?;
        outcome?;
        let now = self.now();
        let mut sightings = Vec::new();
        for r in &data.recipients {
            sightings.push((r.address.clone(), r.kind, r.certificates.clone()));
        }
        self.record_imported(&name, &sightings, now).await?;
        Ok(DirectoryImportResult {
            directory: name,
            source: req.json.name.clone(),
            mode,
            recipients,
            certificates,
            trust_chain,
        })
    }
}
