//! The `[directory.NAME]` table of an LDAP directory, checked and resolved.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use smimekit_core::secret::{self, SecretIo};
use smimekit_core::{DirectoryError, Secret, SecretError, SecretKind, SecretRequest, SecretSource};

/// Finds a secret for the plugin: the host's resolver (smimekit's service), or [`Environment`].
pub type FindSecret<'a> = &'a dyn Fn(&SecretRequest) -> Result<Secret, SecretError>;

/// The secret sources of a host that gives none (the plugin used as a library): the process
/// environment and files, in smimekit's order, without `--password-file` or a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Environment;

impl SecretIo for Environment {
    fn var(&self, name: &str) -> Option<Secret> {
        std::env::var_os(name).map(|v| Secret::new(v.into_encoded_bytes()))
    }

    fn read_file(&self, path: &std::path::Path) -> Result<Secret, String> {
        std::fs::read(path)
            .map(Secret::new)
            .map_err(|e| e.to_string())
    }

    fn password_file(&self) -> Option<&std::path::Path> {
        None
    }

    fn prompt(&self, _text: &str) -> Option<Result<Secret, String>> {
        None
    }
}

impl Environment {
    /// [`secret::resolve`] on the process environment.
    pub fn find(req: &SecretRequest) -> Result<Secret, SecretError> {
        secret::resolve(req, &Environment).map(|r| r.secret)
    }
}

/// Which schema conventions the server follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// OpenLDAP (inetOrgPerson): `userCertificate;binary`, plain `userSMIMECertificate`, `mail`.
    Openldap,
    /// Active Directory: plain `userCertificate`, `userSMIMECertificate`, `mail` and
    /// `proxyAddresses` (`SMTP:`/`smtp:`), external partners as `contact` objects.
    ActiveDirectory,
}

/// The TOML table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    url: String,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    allow_cleartext_bind: bool,
    base_dn: String,
    #[serde(default)]
    bind_dn: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "yes")]
    tls_verify: bool,
    #[serde(default = "openldap")]
    flavor: Flavor,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    mail_attribute: Option<String>,
    #[serde(default)]
    proxy_addresses_attribute: Option<String>,
    #[serde(default)]
    certificate_attribute: Option<String>,
    #[serde(default)]
    smime_attribute: Option<String>,
    #[serde(default = "yes")]
    write_smime: bool,
    #[serde(default)]
    contacts_dn: Option<String>,
    #[serde(default)]
    chain_file: Option<PathBuf>,
    #[serde(default)]
    page_size: Option<i32>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    max_value_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

fn openldap() -> Flavor {
    Flavor::Openldap
}

/// AD's rangeUpper for `userCertificate` and `userSMIMECertificate`.
pub const AD_MAX_VALUE_BYTES: usize = 32_768;

/// The resolved settings of one LDAP directory.
#[derive(Debug)]
pub struct Settings {
    pub url: String,
    pub starttls: bool,
    /// A simple bind (DN and password) may go over a connection without TLS (`ldap://`
    /// without StartTLS): off unless the configuration says so (slapd on loopback in tests).
    pub allow_cleartext_bind: bool,
    pub base_dn: String,
    pub bind_dn: Option<String>,
    /// The bind password; never logged (`Secret` redacts itself in `Debug`).
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
    pub flavor: Flavor,
    /// Extra filter ANDed to every search, e.g. `(objectClass=person)`.
    pub filter: Option<String>,
    pub mail_attr: String,
    pub proxy_attr: Option<String>,
    pub cert_attr: String,
    pub smime_attr: String,
    pub write_smime: bool,
    pub contacts_dn: Option<String>,
    pub chain_file: Option<PathBuf>,
    pub page_size: i32,
    pub timeout: Duration,
    pub max_value_bytes: usize,
}

impl Settings {
    /// Parses and checks a `[directory.NAME]` table with the secret sources of the process
    /// environment ([`Environment`]); see [`Settings::from_toml_with`].
    pub fn from_toml(name: &str, text: &str) -> Result<Self, DirectoryError> {
        Self::from_toml_with(name, text, &Environment::find)
    }

    /// Parses and checks a `[directory.NAME]` table. With `bind_dn`, finds the bind password
    /// now, before any connection is made, through `find` in smimekit's order: `password_env`
    /// or `password_file`, then the host's `--password-file`, `SMIMEKIT_PASSWORD`, a prompt.
    pub fn from_toml_with(
        name: &str,
        text: &str,
        find: FindSecret<'_>,
    ) -> Result<Self, DirectoryError> {
        let cfg = |m: String| DirectoryError::Config(format!("directory {name}: {m}"));
        let r: Raw = toml::from_str(text).map_err(|e| cfg(e.message().trim_end().to_string()))?;
        let lower = r.url.to_ascii_lowercase();
        let tls_url = lower.starts_with("ldaps://");
        if !tls_url && !lower.starts_with("ldap://") {
            return Err(cfg(format!(
                "url {:?} must start with ldap:// or ldaps://",
                r.url
            )));
        }
        if tls_url && r.starttls {
            return Err(cfg(
                "starttls = true needs an ldap:// url (ldaps:// is TLS already)".into(),
            ));
        }
        if r.base_dn.trim().is_empty() {
            return Err(cfg("base_dn is empty".into()));
        }
        if let Some(f) = &r.filter
            && !(f.starts_with('(') && f.ends_with(')'))
        {
            return Err(cfg(format!(
                "filter {f:?} must be an LDAP filter in parentheses"
            )));
        }
        if r.password_env.is_some() && r.password_file.is_some() {
            return Err(cfg("set password_env or password_file, not both".into()));
        }
        if r.bind_dn.is_none() && (r.password_env.is_some() || r.password_file.is_some()) {
            return Err(cfg("a password is set but bind_dn is not".into()));
        }
        // The password would cross the network in clear: refused before it is even looked up.
        if let Some(dn) = &r.bind_dn
            && !tls_url
            && !r.starttls
            && !r.allow_cleartext_bind
        {
            return Err(cfg(format!(
                "a simple bind as {dn:?} over {} without TLS would send the password in clear: \
                 use an ldaps:// url or starttls = true, or set allow_cleartext_bind = true \
                 (a server on this machine's loopback, say)",
                r.url
            )));
        }
        let password = match &r.bind_dn {
            Some(dn) => {
                let mut req = SecretRequest::new(
                    SecretKind::Password,
                    format!("LDAP bind password for {dn} (directory {name})"),
                );
                if let Some(var) = &r.password_env {
                    req = req.source(SecretSource::env("password_env", var));
                }
                if let Some(path) = &r.password_file {
                    req = req.source(SecretSource::file("password_file", path));
                }
                // A bind password that cannot be had is this directory's configuration
                // problem (exit 2), as it always was; the message lists every source tried.
                Some(find(&req).map_err(|e| DirectoryError::Config(e.to_string()))?)
            }
            None => None,
        };
        let ad = r.flavor == Flavor::ActiveDirectory;
        let page_size = r.page_size.unwrap_or(500);
        if page_size < 1 {
            return Err(cfg("page_size must be at least 1".into()));
        }
        Ok(Self {
            url: r.url,
            starttls: r.starttls,
            allow_cleartext_bind: r.allow_cleartext_bind,
            base_dn: r.base_dn,
            bind_dn: r.bind_dn,
            password,
            ca_file: r.ca_file,
            tls_verify: r.tls_verify,
            flavor: r.flavor,
            filter: r.filter,
            mail_attr: r.mail_attribute.unwrap_or_else(|| "mail".into()),
            proxy_attr: r
                .proxy_addresses_attribute
                .or_else(|| ad.then(|| "proxyAddresses".into()))
                .filter(|a| !a.is_empty()),
            cert_attr: r.certificate_attribute.unwrap_or_else(|| {
                if ad {
                    "userCertificate".into()
                } else {
                    "userCertificate;binary".into()
                }
            }),
            smime_attr: r
                .smime_attribute
                .unwrap_or_else(|| "userSMIMECertificate".into()),
            write_smime: r.write_smime,
            contacts_dn: r.contacts_dn,
            chain_file: r.chain_file,
            page_size,
            timeout: Duration::from_secs(r.timeout_secs.unwrap_or(15).max(1)),
            max_value_bytes: r.max_value_bytes.unwrap_or(AD_MAX_VALUE_BYTES),
        })
    }

    /// Whether the connection uses TLS (ldaps:// or StartTLS).
    pub fn uses_tls(&self) -> bool {
        self.starttls || self.url.to_ascii_lowercase().starts_with("ldaps://")
    }
}

/// An attribute name without its options (`userCertificate;binary` → `userCertificate`).
pub fn base_name(attr: &str) -> &str {
    attr.split(';').next().unwrap_or(attr)
}

/// Whether a returned attribute name is the configured one (case and options ignored).
pub fn same_attr(returned: &str, configured: &str) -> bool {
    base_name(returned).eq_ignore_ascii_case(base_name(configured))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<Settings, DirectoryError> {
        let text = format!(
            "kind = \"ldap\"\nbase_dn = \"dc=example,dc=org\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\npassword_env = \"SMIMEKIT_TEST_LDAP_PW\"\n{extra}"
        );
        Settings::from_toml_with("corp", &text, &|_| Ok(Secret::from("pw")))
    }

    #[test]
    fn a_simple_bind_in_clear_is_refused_unless_allowed() {
        let e = parse("url = \"ldap://127.0.0.1:389\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allow_cleartext_bind = true")
                && e.contains("ldaps://")
                && e.contains("starttls"),
            "{e}"
        );
        // Allowed, or over TLS: accepted.
        for extra in [
            "url = \"ldap://127.0.0.1:389\"\nallow_cleartext_bind = true\n",
            "url = \"ldap://ldap.example.org\"\nstarttls = true\n",
            "url = \"ldaps://ldap.example.org\"\n",
        ] {
            parse(extra).unwrap();
        }
        // An anonymous connection sends no password: nothing to refuse.
        Settings::from_toml_with(
            "corp",
            "kind = \"ldap\"\nurl = \"ldap://127.0.0.1\"\nbase_dn = \"dc=example,dc=org\"\n",
            &|_| Ok(Secret::from("pw")),
        )
        .unwrap();
    }
}
