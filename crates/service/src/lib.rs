//! The application API of smimekit: the only crate the CLI (and later the web and TUI
//! front ends) call.
//!
//! Requests are plain structs, results are DTOs that derive `Serialize`, and errors carry a
//! small stable [`ErrorKind`] that each app maps once (the CLI to its exit codes). The service
//! knows nothing of clap, HTTP or terminals; prompting for a password is the app's job: a
//! locked key comes back as [`ErrorKind::Locked`], the app asks, then calls again with the
//! secret.

mod audit;
mod ca;
mod certs;
mod config;
mod demo;
mod directory;
mod error;
mod keys;
mod lint;
mod mail;
mod pki_ops;
mod token;

use std::sync::Arc;

use smimekit_core::{CryptoEngine, plugin};

pub use audit::{AuditFinding, AuditProblem, AuditRequest, AuditResult, DirectoryAudit};
pub use ca::{
    CaCrlRequest, CaCrlResult, CaInitRequest, CaInitResult, CaIssueRequest, CaIssueResult,
    CaKeyType, CaRevokeRequest, CaRevokeResult, DEFAULT_LEAF_DAYS, IssueSource, IssuedRecord,
};
pub use certs::{CertSummary, ExportFormat, crls_from_bytes};
pub use config::{Config, DirectoryConfig, KeyStoreConfig};
pub use demo::{
    DEMO_ALICE, DEMO_BOB, DEMO_DIRECTORY, DEMO_PASSWORD, DemoReport, DemoRequest, DemoStep,
};
pub use directory::{
    DirectoryCert, LookupRequest, LookupResult, PublishRequest, PublishResult, TrustPushRequest,
    TrustResult, UnpublishRequest,
};
pub use error::{ErrorKind, ServiceError};
pub use keys::{KeyRequest, KeySummary};
pub use lint::{Finding, LintRequest, LintResult, LintedFileCert, Profile, RULES, Rule, Severity};
pub use mail::{DecryptRequest, EncryptRequest, EncryptTo, OpenRequest, OpenResult, SignRequest};
pub use pki_ops::{
    ChainBench, ChainBuildReport, ChainBuildRequest, ExtractedCert, PathCert, PathSummary,
    ProblemSummary, SstBench, StoreEntry, StoreFormat, StoreListing, StoreProperty, bench_sst,
};
pub use smimekit_core::{CertDer, ContentCipher, DigestAlg, PrivateKey, Secret};
pub use smimekit_message::report::{Layer, OpenReport, SignerReport, SignerStatus};
pub use smimekit_pki::ca::RevocationReason;
pub use token::{TokenEnrollRequest, TokenEnrollResult, TokenImportRequest};

/// Where the current time comes from (pinned in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The smimekit service: one per process, cheap to share.
#[derive(Clone)]
pub struct Service {
    engine: &'static CryptoEngine,
    clock: Clock,
    config: Arc<Config>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("engine", &self.engine.name)
            .finish()
    }
}

/// Builds a [`Service`].
#[derive(Default)]
pub struct ServiceBuilder {
    engine: Option<String>,
    clock: Option<Clock>,
    config: Option<Config>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("engine", &self.engine)
            .finish()
    }
}

impl ServiceBuilder {
    /// Chooses a crypto engine by plugin id (default: the first registered, `openssl`).
    pub fn engine(mut self, id: impl Into<String>) -> Self {
        self.engine = Some(id.into());
        self
    }

    /// The configuration (directories); default: [`Config::embedded_default`]. Load it
    /// with [`Config::load`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Pins the clock (seconds since the Unix epoch).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn build(self) -> Result<Service, ServiceError> {
        smimekit_builtins::link();
        let factory = match &self.engine {
            Some(id) => plugin::engines().find(|e| e.id == id).ok_or_else(|| {
                ServiceError::new(ErrorKind::Usage, format!("no crypto engine named {id:?}"))
            })?,
            None => plugin::engines().next().ok_or_else(|| {
                ServiceError::new(ErrorKind::Unsupported, "no crypto engine is registered")
            })?,
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(|| time::OffsetDateTime::now_utc().unix_timestamp()));
        Ok(Service {
            engine: (factory.engine)(),
            clock,
            config: Arc::new(self.config.unwrap_or_else(Config::embedded_default)),
        })
    }
}

/// A registered plugin, for `smimekit plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginSummary {
    pub port: &'static str,
    pub id: &'static str,
    pub description: &'static str,
    pub origin: &'static str,
}

impl Service {
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder::default()
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Every registered plugin, by port.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        let mut out = Vec::new();
        for e in plugin::engines() {
            out.push(PluginSummary {
                port: "crypto-engine",
                id: e.id,
                description: e.description,
                origin: "built-in",
            });
        }
        for k in plugin::key_stores() {
            out.push(PluginSummary {
                port: "key-store",
                id: k.id,
                description: k.description,
                origin: "built-in",
            });
        }
        for d in plugin::directories() {
            out.push(PluginSummary {
                port: "directory",
                id: d.kind,
                description: d.description,
                origin: "built-in",
            });
        }
        out
    }

    pub(crate) fn engine(&self) -> &'static CryptoEngine {
        self.engine
    }
}
