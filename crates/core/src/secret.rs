//! Secrets (passwords, PINs, derived keys) that are wiped on drop and never printed, and the
//! one order in which every password and PIN is found ([`resolve`]).
//!
//! The order, the same for key-store passwords, token PINs, LDAP bind passwords and the
//! Exchange Online app credential:
//!
//! 1. the object's own sources, as its configuration names them ([`SecretRequest::sources`]):
//!    a config key (`certificate_password_env`, `password_env`, `password_file`), a URI
//!    attribute (`pin-value`, `pin-source`), a command option (`--p12-password-file`);
//! 2. the host's password file (the CLI's `--password-file`, named as the host names it);
//! 3. `SMIMEKIT_PIN` (PINs only), then `SMIMEKIT_PASSWORD`;
//! 4. a prompt, only when the host has a terminal to ask on.
//!
//! An unset variable moves on to the next source; a named file that cannot be read is an
//! error (the person meant it). This module does no I/O: the host reads variables and files
//! and prompts through [`SecretIo`], so the order is written once and tested as a table.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Bytes that must not leak: zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes; the caller's copy is moved, not duplicated.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret's bytes, for the one call that consumes them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text (passwords), if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first line, without its line end: how a password file is read.
    pub fn first_line(&self) -> Secret {
        let first = self.0.split(|b| *b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        Secret::new(first.to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// The variable for passwords, and for PINs after [`PIN_VAR`].
pub const PASSWORD_VAR: &str = "SMIMEKIT_PASSWORD";
/// The variable for token PINs, asked before [`PASSWORD_VAR`].
pub const PIN_VAR: &str = "SMIMEKIT_PIN";

/// Whether a secret is a password or a token PIN (only PINs come from `SMIMEKIT_PIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    Password,
    Pin,
}

/// One of an object's own sources, named as the person configured it.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// An environment variable named by `name` (a config key such as
    /// `certificate_password_env`), or fixed (`SMIMEKIT_P12_PASSWORD`: `name` is the variable).
    Env { name: String, var: String },
    /// A file whose first line is the secret (`password_file`, `pin-source`,
    /// `--p12-password-file`).
    File { name: String, path: PathBuf },
    /// The secret itself (`pin-value=` in a `pkcs11:` URI).
    Value { name: String, value: Secret },
}

impl SecretSource {
    pub fn env(name: impl Into<String>, var: impl Into<String>) -> Self {
        Self::Env {
            name: name.into(),
            var: var.into(),
        }
    }

    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::File {
            name: name.into(),
            path: path.into(),
        }
    }

    pub fn value(name: impl Into<String>, value: Secret) -> Self {
        Self::Value {
            name: name.into(),
            value,
        }
    }

    /// How the source is named in messages (never the secret itself).
    pub fn label(&self) -> String {
        match self {
            Self::Env { name, var } if name == var => var.clone(),
            Self::Env { name, var } => format!("{name} ({var})"),
            Self::File { name, path } => format!("{name} {}", path.display()),
            Self::Value { name, .. } => name.clone(),
        }
    }
}

/// A secret someone needs.
#[derive(Clone, Debug)]
pub struct SecretRequest {
    /// What is asked for, for a person: `PKCS#12 password for app.p12 (directory exo)`.
    /// It starts every message and the prompt.
    pub object: String,
    pub kind: SecretKind,
    /// The object's own sources, tried first, in order.
    pub sources: Vec<SecretSource>,
}

impl SecretRequest {
    pub fn new(kind: SecretKind, object: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            kind,
            sources: Vec::new(),
        }
    }

    /// Adds one of the object's own sources (tried in the order added).
    pub fn source(mut self, source: SecretSource) -> Self {
        self.sources.push(source);
        self
    }
}

/// What the host offers: variables, files, its password file and a terminal. Core does no I/O.
pub trait SecretIo {
    /// An environment variable (`None` when unset).
    fn var(&self, name: &str) -> Option<Secret>;
    /// A whole file; the error says why it cannot be read.
    fn read_file(&self, path: &Path) -> Result<Secret, String>;
    /// The host's password file (`--password-file`), if one was given.
    fn password_file(&self) -> Option<&Path>;
    /// How messages name the host's password file (the CLI's `--password-file`); `None` when
    /// the host has none to offer, and messages leave it out.
    fn password_file_name(&self) -> Option<&str> {
        None
    }
    /// Asks the person with `text`; `None` when there is no terminal to ask on.
    fn prompt(&self, text: &str) -> Option<Result<Secret, String>>;
}

/// A secret, and where it came from (for "wrong password … (from SMIMEKIT_PASSWORD)").
#[derive(Clone, Debug)]
pub struct Resolved {
    pub secret: Secret,
    pub from: String,
}

/// Why no secret could be had. Messages name the object and the sources, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Every source was tried, in order, and none had it.
    #[error("{object}: not found in {}; no terminal to prompt on", tried.join(", "))]
    NotFound { object: String, tried: Vec<String> },
    /// A file named as a source cannot be read.
    #[error("{object}: {from}: {detail}")]
    Unreadable {
        object: String,
        from: String,
        detail: String,
    },
    /// The terminal prompt failed.
    #[error("{object}: the prompt failed: {detail}")]
    Prompt { object: String, detail: String },
    /// The host supplies no secrets (a plugin used outside smimekit's service).
    #[error("{object}: this host cannot supply passwords or PINs")]
    NoHost { object: String },
}

/// Finds the secret `req` asks for, in the documented order (see the module documentation).
pub fn resolve(req: &SecretRequest, io: &dyn SecretIo) -> Result<Resolved, SecretError> {
    let mut tried = Vec::new();
    let found = |secret: Secret, from: String| Ok(Resolved { secret, from });
    let read = |from: String, path: &Path| {
        io.read_file(path)
            .map(|s| s.first_line())
            .map_err(|detail| SecretError::Unreadable {
                object: req.object.clone(),
                from,
                detail,
            })
    };
    for source in &req.sources {
        match source {
            SecretSource::Value { value, .. } => return found(value.clone(), source.label()),
            SecretSource::Env { var, .. } => match io.var(var) {
                Some(s) => return found(s, source.label()),
                None => tried.push(source.label()),
            },
            SecretSource::File { path, .. } => {
                return found(read(source.label(), path)?, source.label());
            }
        }
    }
    match (io.password_file(), io.password_file_name()) {
        (Some(path), name) => {
            let from = format!("{} {}", name.unwrap_or("password file"), path.display());
            return found(read(from.clone(), path)?, from);
        }
        (None, Some(name)) => tried.push(name.into()),
        (None, None) => {}
    }
    let vars: &[&str] = match req.kind {
        SecretKind::Pin => &[PIN_VAR, PASSWORD_VAR],
        SecretKind::Password => &[PASSWORD_VAR],
    };
    for var in vars {
        match io.var(var) {
            Some(s) => return found(s, (*var).into()),
            None => tried.push((*var).into()),
        }
    }
    match io.prompt(&format!("{}: ", req.object)) {
        Some(Ok(s)) => found(s, "the prompt".into()),
        Some(Err(detail)) => Err(SecretError::Prompt {
            object: req.object.clone(),
            detail,
        }),
        None => Err(SecretError::NotFound {
            object: req.object.clone(),
            tried,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("7 bytes"));
    }

    #[test]
    fn first_line_drops_the_line_end() {
        for (file, want) in [
            ("pw\n", "pw"),
            ("pw\r\nrest\n", "pw"),
            ("pw", "pw"),
            ("", ""),
            ("\nsecond", ""),
        ] {
            assert_eq!(
                Secret::from(file).first_line().as_str(),
                Some(want),
                "{file:?}"
            );
        }
    }

    /// A host with these variables, files, password file and (maybe) a terminal answering
    /// `typed`.
    struct Host {
        vars: Vec<(&'static str, &'static str)>,
        files: Vec<(&'static str, &'static str)>,
        password_file: Option<PathBuf>,
        typed: Option<&'static str>,
    }

    impl SecretIo for Host {
        fn var(&self, name: &str) -> Option<Secret> {
            self.vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Secret::from(*v))
        }
        fn read_file(&self, path: &Path) -> Result<Secret, String> {
            self.files
                .iter()
                .find(|(k, _)| Path::new(k) == path)
                .map(|(_, v)| Secret::from(*v))
                .ok_or_else(|| "No such file or directory (os error 2)".into())
        }
        fn password_file(&self) -> Option<&Path> {
            self.password_file.as_deref()
        }

        fn password_file_name(&self) -> Option<&str> {
            Some("--password-file")
        }
        fn prompt(&self, _text: &str) -> Option<Result<Secret, String>> {
            self.typed.map(|t| Ok(Secret::from(t)))
        }
    }

    /// The order as a table: (case, kind, own sources, variables set, --password-file,
    /// terminal answer) → the secret and where it came from, or the error message.
    #[test]
    fn the_order() {
        use SecretKind::{Password, Pin};
        let env = || SecretSource::env("certificate_password_env", "EXO_PW");
        let file = || SecretSource::file("password_file", "/cfg/pw");
        let pin_value = || SecretSource::value("pin-value", Secret::from("uri-pin"));
        let files = vec![("/cfg/pw", "from-config\n"), ("/pf", "from-pf\r\n")];
        type Case = (
            &'static str,
            SecretKind,
            Vec<SecretSource>,
            Vec<(&'static str, &'static str)>,
            Option<&'static str>,
            Option<&'static str>,
            Result<(&'static str, &'static str), &'static str>,
        );
        let all = vec![
            ("EXO_PW", "env"),
            ("SMIMEKIT_PIN", "pin"),
            ("SMIMEKIT_PASSWORD", "pw"),
        ];
        let cases: Vec<Case> = vec![
            (
                "config env first",
                Password,
                vec![env()],
                all.clone(),
                Some("/pf"),
                Some("typed"),
                Ok(("env", "certificate_password_env (EXO_PW)")),
            ),
            (
                "config file first",
                Password,
                vec![file()],
                all.clone(),
                Some("/pf"),
                None,
                Ok(("from-config", "password_file /cfg/pw")),
            ),
            (
                "URI value first",
                Pin,
                vec![pin_value()],
                all.clone(),
                Some("/pf"),
                None,
                Ok(("uri-pin", "pin-value")),
            ),
            (
                "unset config env: --password-file",
                Password,
                vec![env()],
                vec![("SMIMEKIT_PASSWORD", "pw")],
                Some("/pf"),
                None,
                Ok(("from-pf", "--password-file /pf")),
            ),
            (
                "no own source: --password-file",
                Pin,
                vec![],
                all.clone(),
                Some("/pf"),
                None,
                Ok(("from-pf", "--password-file /pf")),
            ),
            (
                "PIN: SMIMEKIT_PIN before SMIMEKIT_PASSWORD",
                Pin,
                vec![],
                all.clone(),
                None,
                None,
                Ok(("pin", "SMIMEKIT_PIN")),
            ),
            (
                "PIN: SMIMEKIT_PASSWORD",
                Pin,
                vec![],
                vec![("SMIMEKIT_PASSWORD", "pw")],
                None,
                None,
                Ok(("pw", "SMIMEKIT_PASSWORD")),
            ),
            (
                "password: never SMIMEKIT_PIN",
                Password,
                vec![],
                vec![("SMIMEKIT_PIN", "pin")],
                None,
                Some("typed"),
                Ok(("typed", "the prompt")),
            ),
            (
                "password: SMIMEKIT_PASSWORD",
                Password,
                vec![env()],
                vec![("SMIMEKIT_PASSWORD", "pw")],
                None,
                Some("typed"),
                Ok(("pw", "SMIMEKIT_PASSWORD")),
            ),
            (
                "terminal last",
                Pin,
                vec![],
                vec![],
                None,
                Some("typed"),
                Ok(("typed", "the prompt")),
            ),
            (
                "nothing, no terminal",
                Password,
                vec![env()],
                vec![],
                None,
                None,
                Err(
                    "PKCS#12 password for app.p12 (directory exo): not found in certificate_password_env (EXO_PW), --password-file, SMIMEKIT_PASSWORD; no terminal to prompt on",
                ),
            ),
            (
                "nothing for a PIN",
                Pin,
                vec![],
                vec![("SMIMEKIT_P12_PASSWORD", "x")],
                None,
                None,
                Err(
                    "PKCS#12 password for app.p12 (directory exo): not found in --password-file, SMIMEKIT_PIN, SMIMEKIT_PASSWORD; no terminal to prompt on",
                ),
            ),
            (
                "a named file that is missing is an error",
                Password,
                vec![SecretSource::file("password_file", "/gone")],
                all.clone(),
                Some("/pf"),
                None,
                Err(
                    "PKCS#12 password for app.p12 (directory exo): password_file /gone: No such file or directory (os error 2)",
                ),
            ),
            (
                "a missing --password-file is an error",
                Password,
                vec![],
                all.clone(),
                Some("/gone"),
                Some("typed"),
                Err(
                    "PKCS#12 password for app.p12 (directory exo): --password-file /gone: No such file or directory (os error 2)",
                ),
            ),
        ];
        for (name, kind, sources, vars, pf, typed, want) in cases {
            let host = Host {
                vars,
                files: files.clone(),
                password_file: pf.map(PathBuf::from),
                typed,
            };
            let req = SecretRequest {
                object: "PKCS#12 password for app.p12 (directory exo)".into(),
                kind,
                sources,
            };
            let got = resolve(&req, &host)
                .map(|r| (r.secret.as_str().unwrap().to_string(), r.from))
                .map_err(|e| e.to_string());
            let want = want
                .map(|(s, f)| (s.to_string(), f.to_string()))
                .map_err(str::to_string);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn messages_never_carry_the_secret() {
        let req = SecretRequest::new(SecretKind::Pin, "PIN for token t")
            .source(SecretSource::value("pin-value", Secret::from("4711")));
        let r = resolve(
            &req,
            &Host {
                vars: vec![],
                files: vec![],
                password_file: None,
                typed: None,
            },
        )
        .unwrap();
        assert_eq!(r.from, "pin-value");
        assert!(!format!("{req:?}").contains("4711"));
    }
}
