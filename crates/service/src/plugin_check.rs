//! `plugins check`: the plugin host's conformance suite ([`smimekit_plugin_host::check`]) as a
//! request and a serializable report. The service picks the `dir_open` table from the
//! configuration (the named directory, else the first of the plugin's kind) and names the
//! built-ins the plugin may not clash with; the suite itself lives in the host, beside the
//! loader it exercises.
//!
//! Not done here: loading the configuration's own plugins (the file under test is loaded
//! alone, so that a broken one is a report rather than a start-up error).

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use serde::Serialize;
use smimekit_core::{
    CertDer, CryptoEngine, DigestAlg, RsaPadding, Secret, SignatureScheme, plugin,
};
use smimekit_plugin_host::check::{self, CheckInput, KeyProbe, Outcome};

use crate::{Config, ErrorKind, ServiceError};

/// What `plugins check` runs against.
#[derive(Debug, Default)]
pub struct PluginCheckRequest {
    /// The plugin library (loaded as `--plugin` would load it).
    pub file: PathBuf,
    /// The configured directory whose table `dir_open` gets; default: the first of the
    /// plugin's kind, else a table with only `kind`.
    pub directory: Option<String>,
    /// The test recipient the directory checks publish to and remove again.
    pub address: Option<String>,
    /// A KEYREF of a test key, for a key-store plugin.
    pub key: Option<String>,
    /// The certificate handed to `store_open` with `key`.
    pub key_cert: Option<String>,
    /// The password or PIN of a locked test key store.
    pub secret: Option<Secret>,
    /// How long one call may take before it is reported as hung (zero: 30 s).
    pub timeout: Duration,
}

/// One interface the library provides.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedPlugin {
    pub interface: &'static str,
    pub name: String,
    pub version: String,
    /// `v1.0, thread-safe` or `v1.0, one worker thread`.
    pub abi: String,
    pub capabilities: Vec<String>,
}

/// One check and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedItem {
    pub id: String,
    pub interface: &'static str,
    /// A MUST of the contract; an advisory check's failure does not fail the run.
    pub required: bool,
    pub title: String,
    /// `passed`, `failed` or `skipped`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The report of `plugins check`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginCheckReport {
    pub file: PathBuf,
    /// Every required check passed.
    pub passed: bool,
    pub plugins: Vec<CheckedPlugin>,
    pub checks: Vec<CheckedItem>,
}

/// Runs the conformance suite against `req.file`. A plugin that fails is a report with
/// `passed: false`, not an `Err`; errors are for a request that cannot run (a directory name
/// the configuration does not have).
pub async fn check_plugin(
    config: &Config,
    req: PluginCheckRequest,
) -> Result<PluginCheckReport, ServiceError> {
    smimekit_builtins::link();
    let reserved: Vec<String> = plugin::key_stores()
        .map(|k| k.id.to_string())
        .chain(plugin::directories().map(|d| d.kind.to_string()))
        .collect();
    let loaded = smimekit_plugin_host::load(&req.file);
    let kind = loaded
        .as_ref()
        .ok()
        .and_then(|l| l.directory_info())
        .map(|i| i.name.clone());
    let table = match (&req.directory, &kind) {
        (Some(name), _) => {
            let d = config
                .directories
                .iter()
                .find(|d| &d.name == name)
                .ok_or_else(|| {
                    ServiceError::new(
                        ErrorKind::Invalid,
                        format!(
                            "no directory named {name:?} in the configuration{}",
                            config
                                .source
                                .as_ref()
                                .map(|p| format!(" ({})", p.display()))
                                .unwrap_or_default()
                        ),
                    )
                    .for_field("directory")
                })?;
            Some(d)
        }
        (None, Some(kind)) => config.directories.iter().find(|d| &d.kind == kind),
        (None, None) => None,
    };
    let input = CheckInput {
        directory_name: table.map_or_else(|| "check".to_string(), |d| d.name.clone()),
        directory_config: table.map(|d| d.settings.clone()),
        address: req
            .address
            .unwrap_or_else(|| check::DEFAULT_ADDRESS.to_string()),
        key: req.key,
        key_cert: req.key_cert,
        secret: req.secret,
        reserved,
        call_timeout: if req.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            req.timeout
        },
        probe: plugin::engines()
            .next()
            .map(|e| Arc::new(EngineProbe((e.engine)())) as Arc<dyn KeyProbe>),
    };
    let report = check::check_library(&req.file, loaded, &input).await;
    Ok(PluginCheckReport {
        file: report.file.clone(),
        passed: report.passed(),
        plugins: report
            .plugins
            .iter()
            .map(|(iface, i)| CheckedPlugin {
                interface: iface,
                name: i.name.clone(),
                version: i.version.clone(),
                abi: format!(
                    "v1.{}, {}",
                    i.abi_minor,
                    if i.thread_safe {
                        "thread-safe"
                    } else {
                        "one worker thread"
                    }
                ),
                capabilities: i.capabilities.iter().map(|c| c.to_string()).collect(),
            })
            .collect(),
        checks: report
            .checks
            .into_iter()
            .map(|c| {
                let (outcome, expected, seen, why) = match c.outcome {
                    Outcome::Passed => ("passed", None, None, None),
                    Outcome::Failed { expected, seen } => {
                        ("failed", Some(expected), Some(seen), None)
                    }
                    Outcome::Skipped { why } => ("skipped", None, None, Some(why)),
                };
                CheckedItem {
                    id: c.id,
                    interface: c.interface,
                    required: c.required,
                    title: c.title,
                    outcome,
                    expected,
                    seen,
                    why,
                    note: c.note,
                }
            })
            .collect(),
    })
}

/// The suite's key checks on the crypto engine: the certificate's public key, read with pki.
#[derive(Debug)]
struct EngineProbe(&'static CryptoEngine);

fn spki(certificate: &[u8]) -> Result<Vec<u8>, String> {
    smimekit_pki::certinfo::spki_der(&CertDer::new(certificate.to_vec())).map_err(|e| e.to_string())
}

impl KeyProbe for EngineProbe {
    fn sha256(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.0
            .primitives
            .digest(DigestAlg::Sha256, &[message])
            .map_err(|e| e.to_string())
    }

    fn verify(
        &self,
        certificate: &[u8],
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, String> {
        self.0
            .verifier
            .verify(&spki(certificate)?, scheme, message, signature)
            .map_err(|e| e.to_string())
    }

    fn rsa_encrypt(&self, certificate: &[u8], key: &[u8], oaep: bool) -> Result<Vec<u8>, String> {
        let padding = if oaep {
            RsaPadding::Oaep {
                hash: DigestAlg::Sha256,
                mgf1: DigestAlg::Sha256,
                label: Vec::new(),
            }
        } else {
            RsaPadding::Pkcs1v15
        };
        self.0
            .key_transport
            .rsa_encrypt(&spki(certificate)?, &padding, key)
            .map_err(|e| e.to_string())
    }

    fn ecdh(&self, certificate: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let (point, z) = self
            .0
            .key_transport
            .ecdh_ephemeral(&spki(certificate)?)
            .map_err(|e| e.to_string())?;
        Ok((point, z.expose().to_vec()))
    }
}
