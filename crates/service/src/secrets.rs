//! Where the service finds passwords and PINs: the one order of [`smimekit_core::secret`]
//! (the object's own sources, `--password-file`, `SMIMEKIT_PIN` for PINs, `SMIMEKIT_PASSWORD`,
//! a terminal prompt) with this process's environment and files and what the app hands over
//! when it builds the service: its password file ([`crate::ServiceBuilder::password_file`])
//! and, only when it has a terminal, a [`Prompt`] ([`crate::ServiceBuilder::prompt`]).
//!
//! Every secret goes through here: key-store passwords and token PINs when a store reports
//! itself locked ([`Service::open_key_store`]), the Exchange Online app credential and LDAP
//! bind passwords (through the directory plugins' [`smimekit_core::plugin::KeyOpener`]), and
//! the passwords the apps need for new files ([`Service::secret`]). It does not know terminals:
//! prompting is the app's [`Prompt`]. Secrets are never logged or put in a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use smimekit_core::secret::{self, SecretIo};
use smimekit_core::{
    KeyStoreError, Resolved, Secret, SecretError, SecretKind, SecretRequest, SecretSource,
};

use crate::{ErrorKind, Service, ServiceError};

/// The app's terminal: asks for a secret without echo. An app hands one to the service only
/// when it can ask (the CLI: when standard input is a terminal).
pub trait Prompt: Send + Sync {
    fn ask(&self, text: &str) -> std::io::Result<Secret>;
}

/// What the app handed over, plus this process's environment and files.
#[derive(Clone, Default)]
pub(crate) struct Sources {
    pub(crate) password_file: Option<PathBuf>,
    /// How the app names its password file in messages (the CLI: `--password-file`).
    pub(crate) password_file_name: Option<String>,
    pub(crate) prompt: Option<Arc<dyn Prompt>>,
    /// What plugins asked to tell the user (fallbacks they took), until the app takes it:
    /// the other way of the host's conversation with the user.
    pub(crate) notices: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SecretIo for Sources {
    fn var(&self, name: &str) -> Option<Secret> {
        std::env::var_os(name).map(|v| Secret::new(v.into_encoded_bytes()))
    }

    fn read_file(&self, path: &Path) -> Result<Secret, String> {
        std::fs::read(path)
            .map(Secret::new)
            .map_err(|e| e.to_string())
    }

    fn password_file(&self) -> Option<&Path> {
        self.password_file.as_deref()
    }

    fn password_file_name(&self) -> Option<&str> {
        self.password_file_name.as_deref()
    }

    fn prompt(&self, text: &str) -> Option<Result<Secret, String>> {
        self.prompt
            .as_ref()
            .map(|p| p.ask(text).map_err(|e| e.to_string()))
    }
}

impl From<SecretError> for ServiceError {
    fn from(e: SecretError) -> Self {
        let kind = match &e {
            // Nothing to unlock with: the app may ask and call again (exit 4 in the CLI).
            SecretError::NotFound { object, tried } => ErrorKind::Locked {
                object: object.clone(),
                hint: format!("not found in {}", tried.join(", ")),
                tries_left: None,
            },
            SecretError::NoHost { object } => ErrorKind::Locked {
                object: object.clone(),
                hint: "this host cannot supply passwords or PINs".into(),
                tries_left: None,
            },
            _ => ErrorKind::Io,
        };
        ServiceError::new(kind, e.to_string()).with_source(e)
    }
}

fn is_pkcs11(reference: &str) -> bool {
    reference
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
}

/// A `pkcs11:` URI's query attributes, `(name, raw value)`.
fn query_attributes(reference: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = reference.split_once('?').map_or("", |(_, q)| q);
    query.split('&').filter_map(|p| p.split_once('='))
}

/// A KEYREF fit for messages: a `pkcs11:` URI without its `pin-value`.
pub(crate) fn redact(reference: &str) -> String {
    if !is_pkcs11(reference) {
        return reference.to_string();
    }
    let Some((path, query)) = reference.split_once('?') else {
        return reference.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.to_ascii_lowercase().starts_with("pin-value"))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// RFC 3986 percent-decoding; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The request for the password or PIN of the key store `reference` names: a PIN for
/// `pkcs11:` tokens, whose URI's `pin-value` and `pin-source` come first, and for any store
/// whose word for it says PIN; `what` is the store's own word (`PKCS#12 password`, `PIN of
/// token "Alice"`), `purpose` who needs the key (`directory exo`), `sources` the caller's own
/// (the Exchange `certificate_password_env`).
pub(crate) fn key_secret_request(
    reference: &str,
    what: Option<&str>,
    purpose: Option<&str>,
    sources: &[SecretSource],
) -> Result<SecretRequest, ServiceError> {
    let token = is_pkcs11(reference);
    let says_pin =
        what.is_some_and(|w| w.split(|c: char| !c.is_alphanumeric()).any(|t| t == "PIN"));
    let pin = token || says_pin;
    let kind = if pin {
        SecretKind::Pin
    } else {
        SecretKind::Password
    };
    let what = what
        .filter(|w| !w.is_empty())
        .unwrap_or(if pin { "PIN" } else { "password" });
    let purpose = purpose.map(|p| format!(" ({p})")).unwrap_or_default();
    let mut req = SecretRequest::new(kind, format!("{what} for {}{purpose}", redact(reference)));
    req.sources.extend_from_slice(sources);
    if token {
        let malformed = |name: &str| {
            ServiceError::new(
                ErrorKind::Malformed,
                format!(
                    "{}: {name} is not percent-encoded correctly",
                    redact(reference)
                ),
            )
        };
        for (name, raw) in query_attributes(reference) {
            if name.eq_ignore_ascii_case("pin-value") {
                let v = percent_decode(raw).ok_or_else(|| malformed("pin-value"))?;
                req.sources
                    .insert(0, SecretSource::value("pin-value", Secret::new(v)));
            } else if name.eq_ignore_ascii_case("pin-source") {
                let v = percent_decode(raw).ok_or_else(|| malformed("pin-source"))?;
                let v = String::from_utf8(v).map_err(|_| malformed("pin-source"))?;
                // RFC 7512: a file URI (`file:/run/pin`, `file:///run/pin`) or a plain path.
                let path = v.strip_prefix("file:").unwrap_or(&v);
                let path = path.strip_prefix("//").unwrap_or(path);
                req.sources.push(SecretSource::file("pin-source", path));
            }
        }
    }
    Ok(req)
}

impl Service {
    /// What plugins asked to tell the user since the last call (a fallback they took, such
    /// as another signature algorithm or byte encoding), each once, for the app to show
    /// after the operation.
    pub fn take_notices(&self) -> Vec<String> {
        self.secrets
            .notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    pub(crate) fn notice(&self, text: &str) {
        if let Ok(mut n) = self.secrets.notices.lock()
            && !n.iter().any(|t| t == text)
        {
            n.push(text.to_string());
        }
    }

    /// Finds a secret in the documented order: the request's own sources, `--password-file`,
    /// `SMIMEKIT_PIN` (PINs), `SMIMEKIT_PASSWORD`, the app's prompt. For the passwords an app
    /// needs itself (a new PKCS#12's, a new CA's). Nothing found is [`ErrorKind::Locked`],
    /// naming the object and every source tried; an unreadable file is [`ErrorKind::Io`].
    pub fn secret(&self, req: &SecretRequest) -> Result<Secret, ServiceError> {
        Ok(self.resolve_secret(req)?.secret)
    }

    /// [`Service::secret`] for the password or PIN of a key store (a PIN with the `pin-value`
    /// and `pin-source` of a `pkcs11:` URI first), before the store is opened: the PIN of a
    /// token CA keys go to, the password protecting new CA key files.
    pub fn key_secret(&self, reference: &str, what: Option<&str>) -> Result<Secret, ServiceError> {
        let req = key_secret_request(reference, what, None, &[])?;
        self.secret(&req)
    }

    pub(crate) fn resolve_secret(&self, req: &SecretRequest) -> Result<Resolved, ServiceError> {
        Ok(secret::resolve(req, &self.secrets)?)
    }
}

/// What unlocking with a resolved secret says when the store refuses it: the store's own
/// "wrong password or PIN for KEY", who needed it, and where the secret came from.
pub(crate) fn wrong_secret(e: KeyStoreError, purpose: Option<&str>, from: &str) -> ServiceError {
    let bad = matches!(e, KeyStoreError::BadSecret { .. });
    let mut err = ServiceError::from(e);
    if bad {
        if let Some(p) = purpose {
            err.message.push_str(&format!(" ({p})"));
        }
        err.message.push_str(&format!("; it came from {from}"));
    }
    err
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(req: &SecretRequest) -> Vec<String> {
        req.sources.iter().map(SecretSource::label).collect()
    }

    #[test]
    fn token_uris_are_pins_with_their_own_sources_first() {
        let r = key_secret_request(
            "pkcs11:token=A%20B;object=a?module-path=/m.so&pin-source=file:///run/p%69n&pin-value=12%334",
            Some("PIN of token \"A B\""),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(r.kind, SecretKind::Pin);
        assert_eq!(labels(&r), ["pin-value", "pin-source /run/pin"]);
        match &r.sources[0] {
            SecretSource::Value { value, .. } => assert_eq!(value.expose(), b"1234"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.object,
            "PIN of token \"A B\" for pkcs11:token=A%20B;object=a?module-path=/m.so&pin-source=file:///run/p%69n"
        );
        assert!(key_secret_request("pkcs11:?pin-value=%zz", None, None, &[]).is_err());
    }

    #[test]
    fn files_are_passwords_named_with_their_purpose() {
        let own = [SecretSource::env("certificate_password_env", "EXO_PW")];
        let r = key_secret_request(
            "/etc/app.p12",
            Some("PKCS#12 password"),
            Some("directory exo"),
            &own,
        )
        .unwrap();
        assert_eq!(r.kind, SecretKind::Password);
        assert_eq!(
            r.object,
            "PKCS#12 password for /etc/app.p12 (directory exo)"
        );
        assert_eq!(labels(&r), ["certificate_password_env (EXO_PW)"]);
        let r = key_secret_request("k.pem", None, None, &[]).unwrap();
        assert_eq!(r.object, "password for k.pem");
        // A vendor store that asks for a PIN gets SMIMEKIT_PIN too.
        let r = key_secret_request("vendor-c:card", Some("card PIN"), None, &[]).unwrap();
        assert_eq!(r.kind, SecretKind::Pin);
        let r = key_secret_request("a.p12", Some("PKCS#12 password"), None, &[]).unwrap();
        assert_eq!(r.kind, SecretKind::Password);
    }

    #[test]
    fn redaction_drops_only_the_pin_value() {
        assert_eq!(
            redact("pkcs11:token=t?pin-value=1&module-path=/m"),
            "pkcs11:token=t?module-path=/m"
        );
        assert_eq!(redact("pkcs11:token=t?PIN-VALUE=1"), "pkcs11:token=t");
        assert_eq!(redact("a.p12"), "a.p12");
    }
}
