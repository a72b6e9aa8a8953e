//! Vendor plugins loaded at run time (`smimekit-plugin-host`), registered beside the built-in
//! `inventory` ones: key stores are tried after the built-ins for a KEYREF, directory kinds
//! are looked up after the built-in kinds. Names may not clash with built-ins.

use std::ffi::OsStr;
use std::path::PathBuf;

use smimekit_core::plugin;
use smimekit_plugin_host::Plugins;

use crate::{Config, ErrorKind, PluginSummary, ServiceError};

/// Loads the configuration's `[plugins] paths`, then `SMIMEKIT_PLUGIN_PATH`, then `files`
/// (`--plugin`). The first failure is a usage error naming the file and the reason.
pub(crate) fn load(
    config: &Config,
    env: Option<&OsStr>,
    files: &[PathBuf],
) -> Result<Plugins, ServiceError> {
    let mut paths = config.plugin_paths.clone();
    if let Some(env) = env {
        paths.extend(std::env::split_paths(env).filter(|p| !p.as_os_str().is_empty()));
    }
    paths.extend(files.iter().cloned());
    if paths.is_empty() {
        return Ok(Plugins::default());
    }
    smimekit_builtins::link();
    let reserved: Vec<&str> = plugin::key_stores()
        .map(|k| k.id)
        .chain(plugin::directories().map(|d| d.kind))
        .collect();
    let plugins = Plugins::load_all(&paths, &reserved)
        .map_err(|e| ServiceError::new(ErrorKind::Invalid, e.to_string()))?;
    plugins.set_call_timeout(Some(config.plugin_call_timeout));
    Ok(plugins)
}

impl crate::Service {
    /// Whether the configured directory `name` is a vendor plugin's (not a built-in kind):
    /// frontends give no advice specific to a built-in backend (Exchange's address book) for
    /// it. `false` for an unknown name.
    pub fn is_plugin_directory(&self, name: &str) -> bool {
        self.config
            .directories
            .iter()
            .find(|d| d.name == name)
            .is_some_and(|d| {
                !plugin::directories().any(|f| f.kind == d.kind)
                    && self.plugins.directory_kind(&d.kind).is_some()
            })
    }
}

pub(crate) fn summaries(plugins: &Plugins) -> Vec<PluginSummary> {
    let mut out = Vec::new();
    for lib in plugins.libraries() {
        for (port, info) in [
            ("key-store", lib.keystore_info()),
            ("directory", lib.directory_info()),
        ] {
            let Some(i) = info else { continue };
            out.push(PluginSummary {
                port,
                id: i.name.clone(),
                description: i.description.clone(),
                origin: "plugin",
                version: i.version.clone(),
                capabilities: i.capabilities.iter().map(|c| c.to_string()).collect(),
                file: Some(lib.path().to_path_buf()),
                abi: Some(format!(
                    "v1.{}, {}",
                    i.abi_minor,
                    if i.thread_safe {
                        "thread-safe"
                    } else {
                        "one worker thread"
                    }
                )),
            });
        }
    }
    out
}
