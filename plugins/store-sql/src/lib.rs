//! The [`Store`] port on SQL databases: SQLite embedded (the default, one file beside the
//! user's data), PostgreSQL when several smimekit servers share one database.
//!
//! Both backends run the same migrations (`migrations/`, embedded with refinery; SQL that
//! both accept) and the same statements ([`sql`](self) module; SQLite reads PostgreSQL's `$1`
//! placeholders as `?1`), and share the merge rule, the audit hash chain and its
//! verification (`common`). What differs is how writers are kept apart: SQLite's file lock
//! taken at `BEGIN IMMEDIATE`, PostgreSQL's row locks. See [`SqliteStore`] and
//! [`PostgresStore`].
//!
//! Registered with `inventory` as [`StoreFactory`]s for the URL schemes `sqlite`
//! (`sqlite:PATH`, also `sqlite://PATH`) and `postgres`/`postgresql`.
//!
//! This crate keeps no cache of its own and parses no certificate: callers (the service, the
//! local directory) bring the facts.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
mod common;
mod postgres;
mod sql;
mod sqlite;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use smimekit_core::plugin::StoreFactory;
use smimekit_core::store::{Store, StoreError, redact_url};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a SQLite writer waits for another process's write before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The file of a `sqlite:PATH` URL (`sqlite://PATH` too).
pub fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite:")
        .ok_or_else(|| StoreError::Config(format!("store url {url:?}: not sqlite:PATH")))?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err(StoreError::Config(format!(
            "store url {url:?}: names no file (sqlite:PATH)"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Opens the store a URL names: `sqlite:PATH` or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match smimekit_core::store::url_scheme(url) {
        Some("sqlite") => Ok(Arc::new(
            SqliteStore::open(sqlite_path(url)?, DEFAULT_BUSY_TIMEOUT).await?,
        )),
        Some("postgres" | "postgresql") => Ok(Arc::new(PostgresStore::open(url).await?)),
        _ => Err(StoreError::Config(format!(
            "store url {}: expected sqlite:PATH or postgres://…",
            redact_url(url)
        ))),
    }
}

/// The highest migration version of this build.
pub(crate) fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

type Opening<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn Store>, StoreError>> + Send + 'a>>;

fn open_factory(url: &str) -> Opening<'_> {
    Box::pin(open(url))
}

inventory::submit! {
    StoreFactory {
        schemes: &["sqlite"],
        description: "SQLite, embedded: one file, WAL, writers queue on the file lock",
        open: open_factory,
    }
}

inventory::submit! {
    StoreFactory {
        schemes: &["postgres", "postgresql"],
        description: "PostgreSQL: several smimekit servers on one database (row locks)",
        open: open_factory,
    }
}

/// Referenced by `smimekit-builtins` so that the linker keeps the registrations.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            sqlite_path("sqlite:/var/lib/x.db").unwrap(),
            PathBuf::from("/var/lib/x.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/x.db").unwrap(),
            PathBuf::from("/var/lib/x.db")
        );
        assert_eq!(
            sqlite_path("sqlite:rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
        assert!(matches!(sqlite_path("sqlite:"), Err(StoreError::Config(_))));
    }

    #[test]
    fn both_schemes_are_registered() {
        link();
        let schemes: Vec<&str> = smimekit_core::plugin::stores()
            .flat_map(|f| f.schemes.iter().copied())
            .collect();
        for s in ["sqlite", "postgres", "postgresql"] {
            assert!(schemes.contains(&s), "{schemes:?}");
        }
    }
}
