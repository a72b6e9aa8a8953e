//! The application API of smimekit: the only crate the CLI (and later the web and TUI
//! front ends) call.
//!
//! Requests are plain structs that carry data, never paths (files as [`Named`] bytes: the app
//! reads them); results are DTOs that derive `Serialize`, with whatever is to be saved as bytes or
//! text (the app writes it); errors carry a stable [`ErrorKind`] that each app maps once (the CLI
//! to its exit codes) and the request field they concern. The service knows nothing of clap, HTTP
//! or terminals. Passwords and PINs follow one order (see
//! [`smimekit_core::secret`]): the object's own sources, the app's password file, `SMIMEKIT_PIN`/
//! `SMIMEKIT_PASSWORD`, then the app's [`Prompt`] when it has a terminal; when none has the
//! secret, a locked key comes back as [`ErrorKind::Locked`] naming every source tried, and an
//! app may ask and call again with the secret.

mod audit;
mod audit_log;
mod ca;
mod certs;
mod config;
pub mod deploy;
mod directory;
mod error;
mod exchange;
mod inventory;
mod jobs;
mod keys;
mod lint;
mod mail;
mod named;
mod people;
mod pki_ops;
mod plugin_check;
mod plugins;
mod runner;
mod secrets;
mod session;
mod signer_chain;
mod store;
mod token;
mod users;

use std::sync::Arc;

use smimekit_core::{CryptoEngine, plugin};

pub use audit::{AuditFinding, AuditProblem, AuditRequest, AuditResult, DirectoryAudit};
pub use audit_log::{AuditBadRow, AuditLogRequest, AuditLogResult, AuditLogRow, AuditVerifyResult};
pub use ca::{
    CaCrlRequest, CaCrlResult, CaInitRequest, CaInitResult, CaIssueRequest, CaIssueResult,
    CaKeyType, CaRevokeRequest, CaRevokeResult, DEFAULT_LEAF_DAYS, IssueSource, IssuedRecord,
    RevokeTarget,
};
pub use certs::{CertSummary, ExportFormat, crls_from_bytes};
pub use config::{Config, DirectoryConfig, KeyStoreConfig, WebConfig};
pub use directory::{
    DirectoryCert, LookupRequest, LookupResult, PublishRequest, PublishResult, TrustPushRequest,
    TrustResult, UnpublishRequest,
};
pub use error::{ErrorKind, ServiceError};
pub use exchange::{
    BulkItem, BulkList, BulkPublishRequest, BulkReport, EmitResult, LoginResult, OrgSettingsResult,
    ProbeLine, ProbeResult, bulk_items,
};
pub use inventory::{InventoryItem, InventoryRequest, InventoryResult};
pub use jobs::{Job, JobCanceller, JobEvent, JobRecord, JobResult};
pub use keys::{KeyRequest, KeySummary};
pub use lint::{Finding, LintRequest, LintResult, LintedFileCert, Profile, RULES, Rule, Severity};
pub use mail::{
    DecryptRequest, EncryptRequest, EncryptTo, OpenRequest, OpenResult, SignRequest, SignResult,
};
pub use named::Named;
pub use people::{
    MAX_PAGE_SIZE, PeoplePage, PeopleQuery, PeopleSort, PersonCert, PersonDetail, PersonDirectory,
    PersonRow, PersonStatus,
};
pub use pki_ops::{
    ChainBuildReport, ChainBuildRequest, ExtractedCert, PathCert, PathSummary, ProblemSummary,
    StoreEntry, StoreFormat, StoreListing, StoreProperty,
};
pub use plugin_check::{
    CheckedItem, CheckedPlugin, PluginCheckReport, PluginCheckRequest, check_plugin,
};
pub use secrets::Prompt;
pub use session::{OpenSessions, OpeningAhead};
pub use signer_chain::SignerChain;
pub use smimekit_core::{
    CertDer, ContentCipher, DecryptionKey, DigestAlg, PrivateKey, RecipientKind, Secret,
    SecretKind, SecretRequest, SecretSource, SignInChallenge,
};
pub use smimekit_message::report::{Layer, LayerKind, OpenReport, SignerReport, SignerStatus};
pub use smimekit_pki::ca::RevocationReason;
pub use store::{DirectoryExport, DirectoryImportRequest, DirectoryImportResult, os_user};
pub use token::{TokenEnrollRequest, TokenEnrollResult, TokenImportRequest};
pub use users::{Role, SessionPolicy, SignIn, SignInRequest, WebSessionInfo, WebUserInfo};

/// Where the current time comes from (pinned in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The smimekit service: one per process, cheap to share.
#[derive(Clone)]
pub struct Service {
    engine: &'static CryptoEngine,
    clock: Clock,
    config: Arc<Config>,
    /// Vendor plugins loaded at start-up (beside the built-in `inventory` ones).
    plugins: Arc<smimekit_plugin_host::Plugins>,
    /// Where passwords and PINs come from besides the environment.
    secrets: secrets::Sources,
    /// The store (`[store] url`), opened on first use; `None` when no data folder is known.
    store: Option<Arc<smimekit_core::store::LazyStore>>,
    /// Who acts, for the audit log.
    actor: Arc<store::Actor>,
    /// The directories and key stores kept open between calls (see `session`).
    sessions: Arc<session::Sessions>,
    /// Interactive sign-ins for the frontends to show ([`Service::sign_in_challenges`]).
    sign_in: Arc<session::SignIns>,
    /// The people list between calls ([`Service::people`]).
    people_cache: Arc<people::PeopleCache>,
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
    plugin_files: Vec<std::path::PathBuf>,
    plugin_env: Option<std::ffi::OsString>,
    secrets: secrets::Sources,
    actor: Option<store::Actor>,
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

    /// Vendor plugin libraries to load (`--plugin FILE`), besides the configuration's
    /// `[plugins] paths`; one that cannot be loaded fails [`ServiceBuilder::build`].
    pub fn plugins(mut self, files: impl IntoIterator<Item = std::path::PathBuf>) -> Self {
        self.plugin_files.extend(files);
        self
    }

    /// The value of `SMIMEKIT_PLUGIN_PATH` (a path list of files or folders), loaded after
    /// the configuration's paths and before [`ServiceBuilder::plugins`].
    pub fn plugin_path_env(mut self, value: Option<std::ffi::OsString>) -> Self {
        self.plugin_env = value;
        self
    }

    /// The app's password file: the first line is the secret for whatever needs one and has no
    /// source of its own (see [`smimekit_core::secret`]).
    pub fn password_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.secrets.password_file = file;
        self
    }

    /// How messages name the app's password file, given or not (the CLI: `--password-file`,
    /// listed among the sources tried when a secret is missing). Without it, messages name a
    /// given file "password file" and leave it out otherwise.
    pub fn password_file_name(mut self, name: impl Into<String>) -> Self {
        self.secrets.password_file_name = Some(name.into());
        self
    }

    /// The app's terminal, the last source of passwords and PINs. Give it only when there is
    /// someone to ask (never in scripts): without it a missing secret is an error.
    pub fn prompt(mut self, prompt: Arc<dyn Prompt>) -> Self {
        self.secrets.prompt = Some(prompt);
        self
    }

    /// Who acts through this service, as the audit log records it: a user (the OS user for
    /// the CLI, the signed-in user for the web) and the frontend (`cli`, `web`, `tui`).
    pub fn actor(mut self, user: impl Into<String>, frontend: impl Into<String>) -> Self {
        self.actor = Some(store::Actor {
            user: user.into(),
            frontend: frontend.into(),
        });
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
                ServiceError::new(ErrorKind::Invalid, format!("no crypto engine named {id:?}"))
            })?,
            None => plugin::engines().next().ok_or_else(|| {
                ServiceError::new(ErrorKind::Unsupported, "no crypto engine is registered")
            })?,
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(|| time::OffsetDateTime::now_utc().unix_timestamp()));
        let config = self.config.unwrap_or_else(Config::embedded_default);
        let plugins = plugins::load(&config, self.plugin_env.as_deref(), &self.plugin_files)?;
        config.check_kinds(&plugins.directory_kinds())?;
        let store = config
            .store_url
            .clone()
            .map(|url| Arc::new(smimekit_core::store::LazyStore::new(url)));
        Ok(Service {
            engine: (factory.engine)(),
            clock,
            config: Arc::new(config),
            plugins: Arc::new(plugins),
            secrets: self.secrets,
            store,
            actor: Arc::new(self.actor.unwrap_or_default()),
            sessions: Arc::default(),
            sign_in: Arc::default(),
            people_cache: Arc::default(),
        })
    }
}

/// A registered plugin, for `smimekit plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginSummary {
    pub port: &'static str,
    pub id: String,
    pub description: String,
    /// `built-in`, or `plugin` for a vendor library loaded at run time.
    pub origin: &'static str,
    /// The vendor plugin's version (built-ins share smimekit's).
    pub version: String,
    /// The optional operations a vendor plugin provides (`sign`, `decrypt`, `publish`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The library a vendor plugin was loaded from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
    /// For vendor plugins: the ABI version and threading (`v1.0, thread-safe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<String>,
}

impl PluginSummary {
    fn builtin(port: &'static str, id: &str, description: &str) -> Self {
        Self {
            port,
            id: id.into(),
            description: description.into(),
            origin: "built-in",
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Vec::new(),
            file: None,
            abi: None,
        }
    }
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
            out.push(PluginSummary::builtin("crypto-engine", e.id, e.description));
        }
        for k in plugin::key_stores() {
            out.push(PluginSummary::builtin("key-store", k.id, k.description));
        }
        for d in plugin::directories() {
            out.push(PluginSummary::builtin("directory", d.kind, d.description));
        }
        out.extend(plugins::summaries(&self.plugins));
        out
    }

    pub(crate) fn engine(&self) -> &'static CryptoEngine {
        self.engine
    }

    /// This service with sessions of its own, for the host services a directory keeps (its
    /// key opener): a kept directory holding the service that keeps it would never be freed.
    pub(crate) fn detached(&self) -> Service {
        Service {
            sessions: Arc::default(),
            ..self.clone()
        }
    }
}
