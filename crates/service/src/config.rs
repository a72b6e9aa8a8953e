//! The configuration file: named directories, in search order.
//!
//! ```toml
//! [directory.local]
//! kind = "local"
//! path = "~/.local/share/smimekit/directory.json"
//!
//! [directory.partners]
//! kind = "local"
//! path = "partners.json"      # relative paths are relative to this file's folder
//! ```
//!
//! Where it comes from: `--config F` (or `SMIMEKIT_CONFIG`), else
//! `$XDG_CONFIG_HOME/smimekit/config.toml` (`~/.config/smimekit/config.toml`; on Windows
//! `%APPDATA%\smimekit\config.toml`) when that file exists, else the embedded default: one
//! directory `local` of kind `local` at `$XDG_DATA_HOME/smimekit/directory.json`
//! (`~/.local/share/smimekit/directory.json`; `%APPDATA%\smimekit\directory.json`). A file
//! without `[directory.*]` tables also gets the embedded default.
//!
//! `[store] url = "sqlite:PATH"` or `"postgres://user@host/db"` names the store (the local
//! directories' data, the certificate inventory, the audit log, job records). Without it the
//! store is `smimekit.db` in the folder of the first `local` directory's `path` (so the
//! embedded default's is `$XDG_DATA_HOME/smimekit/smimekit.db`, beside where its
//! `directory.json` lived), else `$XDG_DATA_HOME/smimekit/smimekit.db`. A relative `sqlite:`
//! path is relative to this file's folder.
//!
//! Directories are searched in file order for lookups (and `encrypt --to ADDRESS`); writes go
//! to `--directory NAME`, else to the first one. Each table is handed, as TOML text, to the
//! plugin registered for its `kind`, which checks its own keys, except the keys the service
//! itself reads: `bulk_time_budget_secs` (how long `publish --from` may keep retrying items
//! the directory throttles; default 3600).

use std::path::{Path, PathBuf};

use smimekit_core::plugin;

use crate::{ErrorKind, ServiceError};

/// One `[directory.NAME]` table.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub name: String,
    pub kind: String,
    /// The table, with `path` made absolute, as TOML text for the plugin.
    pub settings: String,
    /// `bulk_time_budget_secs`: how long a bulk run may go on retrying throttled items.
    pub bulk_time_budget: Option<std::time::Duration>,
}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// In search order.
    pub directories: Vec<DirectoryConfig>,
    /// `[keystore.NAME]` tables (PKCS#11 modules), in file order.
    pub keystores: Vec<KeyStoreConfig>,
    /// `[plugins] paths = […]`: vendor plugin libraries or folders of them (absolute, or
    /// relative to the config file's folder), loaded at start-up.
    pub plugin_paths: Vec<PathBuf>,
    /// `[plugins] call_timeout_secs = N`: how long a call waits for a vendor plugin before
    /// it fails as unavailable (120 s when unset).
    pub plugin_call_timeout: std::time::Duration,
    /// The store's URL (`[store] url`, else the default above); `None` when no data folder
    /// is known.
    pub store_url: Option<String>,
    /// `[web]`: the web admin's settings.
    pub web: WebConfig,
}

/// The `[web]` table (read by `smimekit-web`):
///
/// ```toml
/// [web]
/// trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
/// ```
///
/// `trusted_proxies`: reverse proxies whose `X-Forwarded-For` names the client (for the audit
/// log and the sign-in rate limit); addresses or networks, checked by the web app.
/// `sign_in_per_minute = N`: the sign-in rate limit per client address (default 10).
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub trusted_proxies: Vec<String>,
    /// `sign_in_per_minute`: sign-in attempts allowed per client address and minute (the web
    /// app's default when unset).
    pub sign_in_per_minute: Option<u32>,
}

fn web_config(table: &toml::Table, file: &str) -> Result<WebConfig, ServiceError> {
    let Some(web) = table.get("web") else {
        return Ok(WebConfig::default());
    };
    let web = web
        .as_table()
        .ok_or_else(|| usage(format!("config file {file}: `web` must be a table ([web])")))?;
    let mut out = WebConfig::default();
    for (key, value) in web {
        match key.as_str() {
            "trusted_proxies" => {
                let list = value.as_array().ok_or_else(|| {
                    usage(format!(
                        "config file {file}: [web] trusted_proxies must be a list of strings"
                    ))
                })?;
                for v in list {
                    let s = v.as_str().ok_or_else(|| {
                        usage(format!(
                            "config file {file}: [web] trusted_proxies must be a list of strings (not {v})"
                        ))
                    })?;
                    out.trusted_proxies.push(s.to_string());
                }
            }
            "sign_in_per_minute" => match value.as_integer() {
                Some(n @ 1..=1_000_000) => out.sign_in_per_minute = Some(n as u32),
                _ => {
                    return Err(usage(format!(
                        "config file {file}: [web] sign_in_per_minute must be a whole number from 1 to 1000000 (not {value})"
                    )));
                }
            },
            other => {
                return Err(usage(format!(
                    "config file {file}: [web] unknown key {other:?} (known: trusted_proxies, sign_in_per_minute)"
                )));
            }
        }
    }
    Ok(out)
}

/// One `[keystore.NAME]` table:
///
/// ```toml
/// [keystore.hsm]
/// kind = "pkcs11"
/// module = "/usr/lib/softhsm/libsofthsm2.so"
/// ```
///
/// A `pkcs11:` KEYREF without `module-path=` uses the module of the table named by its
/// `module-name=` attribute, else that of the first `pkcs11` table.
#[derive(Debug, Clone)]
pub struct KeyStoreConfig {
    pub name: String,
    pub kind: String,
    /// The PKCS#11 module (absolute, or relative to the config file's folder).
    pub module: Option<PathBuf>,
}

/// The top-level keys a config file may have.
const KNOWN_KEYS: &[&str] = &["directory", "keystore", "plugins", "store", "web"];

fn usage(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::Invalid, msg)
}

fn env_dir(var: &str) -> Option<PathBuf> {
    // The XDG spec says relative values are to be ignored.
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Option<PathBuf> {
    env_dir("HOME").or_else(|| env_dir("USERPROFILE"))
}

impl Config {
    /// `$XDG_CONFIG_HOME/smimekit/config.toml` or its fallbacks.
    pub fn default_path() -> Option<PathBuf> {
        let base = env_dir("XDG_CONFIG_HOME")
            .or_else(|| cfg!(windows).then(|| env_dir("APPDATA")).flatten())
            .or_else(|| home().map(|h| h.join(".config")))?;
        Some(base.join("smimekit").join("config.toml"))
    }

    /// The default store: `$XDG_DATA_HOME/smimekit/smimekit.db` or its fallbacks.
    pub fn default_store_path() -> Option<PathBuf> {
        Self::default_directory_path().map(|p| p.with_file_name("smimekit.db"))
    }

    /// Where the embedded default directory lives.
    pub fn default_directory_path() -> Option<PathBuf> {
        let base = env_dir("XDG_DATA_HOME")
            .or_else(|| cfg!(windows).then(|| env_dir("APPDATA")).flatten())
            .or_else(|| home().map(|h| h.join(".local").join("share")))?;
        Some(base.join("smimekit").join("directory.json"))
    }

    /// The configuration used without a file: the `local` directory at its XDG data path
    /// (none when neither `XDG_DATA_HOME` nor a home folder is known).
    pub fn embedded_default() -> Self {
        let directories = Self::default_directory_path()
            .map(|p| {
                let mut t = toml::Table::new();
                t.insert("kind".into(), "local".into());
                t.insert("path".into(), p.display().to_string().into());
                vec![DirectoryConfig {
                    name: "local".into(),
                    kind: "local".into(),
                    settings: t.to_string(),
                    bulk_time_budget: None,
                }]
            })
            .unwrap_or_default();
        Self {
            source: None,
            directories,
            keystores: Vec::new(),
            plugin_paths: Vec::new(),
            plugin_call_timeout: DEFAULT_PLUGIN_CALL_TIMEOUT,
            store_url: Self::default_store_path().map(|p| format!("sqlite:{}", p.display())),
            web: WebConfig::default(),
        }
    }

    /// The configuration for this run: `explicit` (which must exist), else the default file
    /// if present, else [`Config::embedded_default`].
    pub fn load(explicit: Option<&Path>) -> Result<Self, ServiceError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match Self::default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(Self::embedded_default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| usage(format!("config file {}: {e}", path.display())))?;
        Self::from_toml(&text, &path)
    }

    /// Parses config text; `source` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, source: &Path) -> Result<Self, ServiceError> {
        let file = source.display();
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = line_col(text, s.start);
                    format!("line {line} column {col}: ")
                })
                .unwrap_or_default();
            usage(format!(
                "config file {file}: {at}{}",
                e.message().trim_end()
            ))
        })?;
        for key in table.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(usage(format!(
                    "config file {file}: unknown key {key:?} (known: {})",
                    KNOWN_KEYS.join(", ")
                )));
            }
        }
        // Relative values are relative to the file's folder, and reach plugins absolute
        // (`--config cfg.toml` too: its folder is the working directory).
        let absolute = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        let base = absolute.parent().unwrap_or(Path::new(""));
        let mut directories = Vec::new();
        if let Some(dirs) = table.get("directory") {
            let dirs = dirs.as_table().ok_or_else(|| {
                usage(format!(
                    "config file {file}: `directory` must be tables like [directory.local]"
                ))
            })?;
            smimekit_builtins::link();
            for (name, value) in dirs {
                let mut t = value
                    .as_table()
                    .ok_or_else(|| {
                        usage(format!(
                            "config file {file}: directory.{name} must be a table ([directory.{name}])"
                        ))
                    })?
                    .clone();
                let kind = t
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .ok_or_else(|| {
                        usage(format!(
                            "config file {file}: [directory.{name}] needs kind = \"…\" (a string)"
                        ))
                    })?
                    .to_string();
                // Kinds of vendor plugins are known only once they are loaded: the service
                // checks every kind when it is built ([`Config::check_kinds`]).
                // File keys: `path`, and the LDAP backend's `*_file` keys (password_file,
                // ca_file, chain_file) are relative to the config file's folder.
                let file_keys: Vec<String> = t
                    .keys()
                    .filter(|k| *k == "path" || k.ends_with("_file"))
                    .cloned()
                    .collect();
                for key in file_keys {
                    let p = t.get(&key).and_then(|p| p.as_str()).ok_or_else(|| {
                        usage(format!(
                            "config file {file}: [directory.{name}] {key} must be a string"
                        ))
                    })?;
                    let resolved = resolve_path(base, p);
                    t.insert(key, resolved.display().to_string().into());
                }
                // The Exchange Online app credential: a KEYREF that is a plain path (no
                // `pkcs11:`-style scheme) is relative to the config file's folder too.
                if kind == "exchange-online"
                    && let Some(c) = t.get("certificate").and_then(|v| v.as_str())
                    && !c.contains(':')
                {
                    let resolved = resolve_path(base, c);
                    t.insert("certificate".into(), resolved.display().to_string().into());
                }
                // A service key, on any kind of directory: the plugin never sees it.
                let bulk_time_budget = match t.remove("bulk_time_budget_secs") {
                    None => None,
                    Some(v) => match v.as_integer() {
                        Some(n @ 1..) => Some(std::time::Duration::from_secs(n.unsigned_abs())),
                        _ => {
                            return Err(usage(format!(
                                "config file {file}: [directory.{name}] bulk_time_budget_secs must be a whole number of seconds, at least 1 (not {v})"
                            )));
                        }
                    },
                };
                directories.push(DirectoryConfig {
                    name: name.clone(),
                    kind,
                    settings: t.to_string(),
                    bulk_time_budget,
                });
            }
        }
        let keystores = keystores(&table, &file.to_string(), base)?;
        let plugin_paths = plugin_paths(&table, &file.to_string(), base)?;
        let plugin_call_timeout = plugin_call_timeout(&table, &file.to_string())?;
        let store = store_url(&table, &file.to_string(), base)?;
        let web = web_config(&table, &file.to_string())?;
        if directories.is_empty() {
            let mut d = Self::embedded_default();
            d.source = Some(source.to_path_buf());
            d.keystores = keystores;
            d.plugin_paths = plugin_paths;
            d.plugin_call_timeout = plugin_call_timeout;
            d.store_url = store.or(d.store_url);
            d.web = web;
            return Ok(d);
        }
        let store_url = store
            .or_else(|| default_store_beside(&directories))
            .or_else(|| Self::default_store_path().map(|p| format!("sqlite:{}", p.display())));
        Ok(Self {
            source: Some(source.to_path_buf()),
            directories,
            keystores,
            plugin_paths,
            plugin_call_timeout,
            store_url,
            web,
        })
    }

    /// Fails when a directory's kind is neither built in nor in `extra` (the loaded vendor
    /// plugins' kinds).
    pub fn check_kinds(&self, extra: &[&str]) -> Result<(), ServiceError> {
        smimekit_builtins::link();
        for d in &self.directories {
            if plugin::directories().any(|f| f.kind == d.kind) || extra.contains(&d.kind.as_str()) {
                continue;
            }
            let mut kinds: Vec<&str> = plugin::directories().map(|f| f.kind).collect();
            kinds.extend(extra);
            let file = self
                .source
                .as_deref()
                .map_or("(embedded)".into(), |p| p.display().to_string());
            return Err(usage(format!(
                "config file {file}: [directory.{}] kind {:?} is not a known directory kind (known: {})",
                d.name,
                d.kind,
                kinds.join(", ")
            )));
        }
        Ok(())
    }

    /// The PKCS#11 module for a `pkcs11:` reference without `module-path=`: the
    /// `[keystore.NAME]` its `module-name=` names, else the first `pkcs11` table.
    pub fn pkcs11_module(&self, module_name: Option<&str>) -> Option<&Path> {
        let p11 = || self.keystores.iter().filter(|k| k.kind == "pkcs11");
        module_name
            .and_then(|n| p11().find(|k| k.name == n))
            .or_else(|| p11().next())
            .and_then(|k| k.module.as_deref())
    }

    /// The configured directory names, in search order.
    pub fn directory_names(&self) -> Vec<&str> {
        self.directories.iter().map(|d| d.name.as_str()).collect()
    }
}

/// The `[keystore.NAME]` tables.
fn keystores(
    table: &toml::Table,
    file: &str,
    base: &Path,
) -> Result<Vec<KeyStoreConfig>, ServiceError> {
    let Some(stores) = table.get("keystore") else {
        return Ok(Vec::new());
    };
    let stores = stores.as_table().ok_or_else(|| {
        usage(format!(
            "config file {file}: `keystore` must be tables like [keystore.hsm]"
        ))
    })?;
    let mut out = Vec::new();
    for (name, value) in stores {
        let t = value.as_table().ok_or_else(|| {
            usage(format!(
                "config file {file}: keystore.{name} must be a table ([keystore.{name}])"
            ))
        })?;
        let kind = t.get("kind").and_then(|k| k.as_str()).ok_or_else(|| {
            usage(format!(
                "config file {file}: [keystore.{name}] needs kind = \"pkcs11\""
            ))
        })?;
        if kind != "pkcs11" {
            return Err(usage(format!(
                "config file {file}: [keystore.{name}] kind {kind:?} is not a known key store kind (known: pkcs11)"
            )));
        }
        for key in t.keys() {
            if !["kind", "module"].contains(&key.as_str()) {
                return Err(usage(format!(
                    "config file {file}: [keystore.{name}] unknown key {key:?} (known: kind, module)"
                )));
            }
        }
        let module = match t.get("module") {
            None => None,
            Some(m) => Some(resolve_path(
                base,
                m.as_str().ok_or_else(|| {
                    usage(format!(
                        "config file {file}: [keystore.{name}] module must be a string"
                    ))
                })?,
            )),
        };
        out.push(KeyStoreConfig {
            name: name.clone(),
            kind: kind.to_string(),
            module,
        });
    }
    Ok(out)
}

/// `[store] url = "…"`: a `sqlite:` path made absolute, anything else as written.
fn store_url(table: &toml::Table, file: &str, base: &Path) -> Result<Option<String>, ServiceError> {
    let Some(store) = table.get("store") else {
        return Ok(None);
    };
    let bad = || {
        usage(format!(
            "config file {file}: [store] must be url = \"sqlite:PATH\" or \"postgres://user@host/database\""
        ))
    };
    let t = store.as_table().ok_or_else(bad)?;
    if let Some(key) = t.keys().find(|k| *k != "url") {
        return Err(usage(format!(
            "config file {file}: [store] unknown key {key:?} (known: url)"
        )));
    }
    let url = t.get("url").and_then(|u| u.as_str()).ok_or_else(bad)?;
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(bad());
        }
        return Ok(Some(format!(
            "sqlite:{}",
            resolve_path(base, path).display()
        )));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Some(url.to_string()));
    }
    Err(bad())
}

/// `smimekit.db` in the folder of the first `local` directory's `path`.
fn default_store_beside(directories: &[DirectoryConfig]) -> Option<String> {
    directories
        .iter()
        .filter(|d| d.kind == "local")
        .find_map(|d| {
            let t: toml::Table = d.settings.parse().ok()?;
            let path = PathBuf::from(t.get("path")?.as_str()?);
            Some(format!(
                "sqlite:{}",
                path.parent()?.join("smimekit.db").display()
            ))
        })
}

/// `[plugins] paths = ["…", …]`.
fn plugin_paths(
    table: &toml::Table,
    file: &str,
    base: &Path,
) -> Result<Vec<PathBuf>, ServiceError> {
    let Some(plugins) = table.get("plugins") else {
        return Ok(Vec::new());
    };
    let bad = || {
        usage(format!(
            "config file {file}: [plugins] must be paths = [\"FILE or FOLDER\", …]"
        ))
    };
    let t = plugins.as_table().ok_or_else(bad)?;
    if let Some(key) = t
        .keys()
        .find(|k| *k != "paths" && *k != "call_timeout_secs")
    {
        return Err(usage(format!(
            "config file {file}: [plugins] unknown key {key:?} (known: paths, call_timeout_secs)"
        )));
    }
    let Some(paths) = t.get("paths") else {
        return Ok(Vec::new());
    };
    paths
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|p| p.as_str().map(|p| resolve_path(base, p)).ok_or_else(bad))
        .collect()
}

/// How long a call waits for a vendor plugin when `[plugins] call_timeout_secs` is unset.
pub(crate) const DEFAULT_PLUGIN_CALL_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(120);

/// `[plugins] call_timeout_secs = N` (whole seconds, at least 1).
fn plugin_call_timeout(
    table: &toml::Table,
    file: &str,
) -> Result<std::time::Duration, ServiceError> {
    let Some(v) = table
        .get("plugins")
        .and_then(|p| p.as_table())
        .and_then(|t| t.get("call_timeout_secs"))
    else {
        return Ok(DEFAULT_PLUGIN_CALL_TIMEOUT);
    };
    match v.as_integer() {
        Some(n @ 1..) => Ok(std::time::Duration::from_secs(n.unsigned_abs())),
        _ => Err(usage(format!(
            "config file {file}: [plugins] call_timeout_secs must be a whole number of seconds, at least 1 (not {v})"
        ))),
    }
}

/// `~/x` is in the home folder; a relative path is relative to the config file's folder.
fn resolve_path(base: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(h) = home()
    {
        return h.join(rest);
    }
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_directories_in_file_order_with_paths_resolved() {
        let c = Config::from_toml(
            "[directory.zeta]\nkind = \"local\"\npath = \"z.json\"\n\n[directory.alpha]\nkind = \"local\"\npath = \"/abs/a.json\"\n",
            Path::new("/etc/smimekit/config.toml"),
        )
        .unwrap();
        assert_eq!(c.directory_names(), ["zeta", "alpha"]);
        assert!(
            c.directories[0].settings.contains("/etc/smimekit/z.json"),
            "{}",
            c.directories[0].settings
        );
        assert!(c.directories[1].settings.contains("\"/abs/a.json\""));
    }

    #[test]
    fn a_relative_config_file_gives_absolute_paths() {
        // `--config cfg.toml`: path values and plugin files are relative to the file's folder
        // (the working directory here) and reach plugins absolute; a bare file name is a file.
        let c = Config::from_toml(
            "[plugins]\npaths = [\"libv.so\"]\n[directory.v]\nkind = \"local\"\npath = \"v.json\"\nca_file = \"sub/ca.pem\"\n",
            Path::new("cfg.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.plugin_paths, [cwd.join("libv.so")]);
        assert_eq!(c.plugin_call_timeout, DEFAULT_PLUGIN_CALL_TIMEOUT);
        let seven =
            Config::from_toml("[plugins]\ncall_timeout_secs = 7\n", Path::new("c.toml")).unwrap();
        assert_eq!(seven.plugin_call_timeout, std::time::Duration::from_secs(7));
        for bad in ["0", "\"7s\"", "1.5"] {
            let e = Config::from_toml(
                &format!("[plugins]\ncall_timeout_secs = {bad}\n"),
                Path::new("c.toml"),
            )
            .unwrap_err();
            assert!(e.message.contains("call_timeout_secs"), "{}", e.message);
        }
        let t: toml::Table = c.directories[0].settings.parse().unwrap();
        for (key, want) in [("path", "v.json"), ("ca_file", "sub/ca.pem")] {
            let got = t[key].as_str().unwrap();
            assert_eq!(Path::new(got), cwd.join(want), "{key}");
        }
    }

    #[test]
    fn bulk_time_budget_is_a_service_key_on_any_directory() {
        let c = Config::from_toml(
            "[directory.l]\nkind = \"local\"\npath = \"/a.json\"\nbulk_time_budget_secs = 90\n",
            Path::new("/x/config.toml"),
        )
        .unwrap();
        let d = &c.directories[0];
        assert_eq!(d.bulk_time_budget, Some(std::time::Duration::from_secs(90)));
        assert!(!d.settings.contains("bulk_time_budget"), "{}", d.settings);
        for bad in ["0", "-5", "\"1h\"", "1.5"] {
            let e = Config::from_toml(
                &format!("[directory.l]\nkind = \"local\"\nbulk_time_budget_secs = {bad}\n"),
                Path::new("/x/config.toml"),
            )
            .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid);
            assert!(
                e.message.contains("/x/config.toml")
                    && e.message.contains("[directory.l] bulk_time_budget_secs"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn the_store_is_configured_or_beside_the_first_local_directory() {
        let c = Config::from_toml(
            "[directory.corp]\nkind = \"ldap\"\n[directory.l]\nkind = \"local\"\npath = \"data/l.json\"\n",
            Path::new("/etc/smimekit/config.toml"),
        )
        .unwrap();
        assert_eq!(
            c.store_url.as_deref(),
            Some("sqlite:/etc/smimekit/data/smimekit.db")
        );
        let c = Config::from_toml(
            "[store]\nurl = \"sqlite:state/s.db\"\n[directory.l]\nkind = \"local\"\npath = \"l.json\"\n",
            Path::new("/etc/smimekit/config.toml"),
        )
        .unwrap();
        assert_eq!(
            c.store_url.as_deref(),
            Some("sqlite:/etc/smimekit/state/s.db")
        );
        let c = Config::from_toml(
            "[store]\nurl = \"postgres://smimekit@db.example/smimekit\"\n",
            Path::new("/etc/smimekit/config.toml"),
        )
        .unwrap();
        assert_eq!(
            c.store_url.as_deref(),
            Some("postgres://smimekit@db.example/smimekit")
        );
        for bad in [
            "[store]\nurl = \"mysql://x\"\n",
            "[store]\nurl = \"sqlite:\"\n",
            "[store]\nuri = \"sqlite:x\"\n",
            "store = \"sqlite:x\"\n",
        ] {
            let e = Config::from_toml(bad, Path::new("/x/config.toml")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid, "{bad}");
            assert!(
                e.message.contains("/x/config.toml") && e.message.contains("[store]"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn bad_toml_names_file_line_and_cause() {
        let e = Config::from_toml(
            "[directory.local]\nkind = \"local\"\npath = \n",
            Path::new("/x/config.toml"),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message.contains("/x/config.toml") && e.message.contains("line 3"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_kind_and_keys_are_usage_errors() {
        let e = Config::from_toml("[directory.x]\nkind = \"ldap9\"\n", Path::new("c.toml"))
            .and_then(|c| c.check_kinds(&[]))
            .unwrap_err();
        assert!(
            e.message.contains("ldap9") && e.message.contains("local"),
            "{}",
            e.message
        );
        let e =
            Config::from_toml("[directry.x]\nkind = \"local\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("directry"), "{}", e.message);
        let e =
            Config::from_toml("[directory.x]\npath = \"p\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("kind"), "{}", e.message);
    }

    #[test]
    fn the_web_table_names_trusted_proxies_and_the_sign_in_limit() {
        let c = Config::from_toml(
            "[web]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\nsign_in_per_minute = 30\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.web.trusted_proxies, ["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(c.web.sign_in_per_minute, Some(30));
        let c = Config::from_toml("[store]\nurl = \"sqlite:s.db\"\n", Path::new("c.toml")).unwrap();
        assert!(c.web.trusted_proxies.is_empty() && c.web.sign_in_per_minute.is_none());
        for (bad, says) in [
            (
                "[web]\ntrusted_proxy = []\n",
                "unknown key \"trusted_proxy\"",
            ),
            (
                "[web]\ntrusted_proxies = \"10.0.0.1\"\n",
                "trusted_proxies must be a list",
            ),
            ("[web]\ntrusted_proxies = [1]\n", "list of strings"),
            (
                "[web]\nsign_in_per_minute = 0\n",
                "sign_in_per_minute must be",
            ),
            ("web = 1\n", "`web` must be a table"),
        ] {
            let e = Config::from_toml(bad, Path::new("c.toml")).unwrap_err();
            assert!(
                e.message.contains("c.toml") && e.message.contains(says),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn keystore_tables_name_pkcs11_modules() {
        let c = Config::from_toml(
            "[keystore.hsm]\nkind = \"pkcs11\"\nmodule = \"lib/p11.so\"\n[keystore.card]\nkind = \"pkcs11\"\nmodule = \"/usr/lib/opensc-pkcs11.so\"\n",
            Path::new("/etc/smimekit/config.toml"),
        )
        .unwrap();
        assert_eq!(
            c.pkcs11_module(None),
            Some(Path::new("/etc/smimekit/lib/p11.so"))
        );
        assert_eq!(
            c.pkcs11_module(Some("card")),
            Some(Path::new("/usr/lib/opensc-pkcs11.so"))
        );
        assert!(!c.directories.is_empty() || Config::default_directory_path().is_none());
        let e =
            Config::from_toml("[keystore.x]\nkind = \"tpm\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("pkcs11"), "{}", e.message);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
