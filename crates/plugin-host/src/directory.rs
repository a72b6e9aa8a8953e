//! A plugin's directory as a core [`Directory`].

use std::sync::Arc;

use async_trait::async_trait;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};
use smimekit_plugin_abi::{self as abi, Dir, Status, list};

use crate::ffi::{CallError, Handle, HandleId, HandleKind, LaneFail, Library, call_buf};

/// `address`: the recipient a write concerns, so that `SMK_NOT_FOUND` (no such recipient)
/// is the port's [`DirectoryError::NotFound`] naming it.
///
/// Messages start `NAME: ` once: the port's errors say "directory" themselves
/// ("directory unavailable: acme: …"), so no "directory: directory acme:".
fn map_err(name: &str, address: Option<&Mailbox>, e: CallError) -> DirectoryError {
    let msg = if e.message.is_empty() {
        format!("{name}: {}", e.status.c_name().unwrap_or("unknown status"))
    } else {
        format!("{name}: {}", e.message)
    };
    match (e.status, address) {
        (Status::NOT_FOUND, Some(a)) => DirectoryError::NotFound(a.clone()),
        // Unsupported's message is shown alone: it names the directory itself.
        (Status::UNSUPPORTED, _) => DirectoryError::Unsupported(format!("directory {msg}")),
        _ => map_status(e.status, msg),
    }
}

/// The port's error for each status a directory call returns (SMK_NOT_FOUND from a write
/// is [`DirectoryError::NotFound`] naming the address, above; from a lookup it means "no
/// such recipient here" and is not an error at all). The table in docs/plugin-abi.md
/// ("Status codes and exit codes") is this function's; an e2e test holds them equal.
pub fn map_status(status: Status, msg: String) -> DirectoryError {
    match status {
        Status::REJECTED | Status::ALREADY_EXISTS => DirectoryError::Rejected(msg),
        Status::UNAVAILABLE | Status::IO => DirectoryError::Unavailable(msg),
        Status::CONFIG => DirectoryError::Config(msg),
        Status::MALFORMED => DirectoryError::Corrupt(msg),
        Status::UNSUPPORTED => DirectoryError::Unsupported(msg),
        _ => DirectoryError::Other(msg),
    }
}

fn stopped(name: &str) -> DirectoryError {
    lane_fail(name, LaneFail::Stopped)
}

/// A call that got no answer: the lane stopped, or the call timed out (a retry may help).
fn lane_fail(name: &str, e: LaneFail) -> DirectoryError {
    DirectoryError::Unavailable(format!("{name}: {e}"))
}

fn certs(name: &str, what: &str, data: &[u8]) -> Result<Vec<CertDer>, DirectoryError> {
    list::decode(data)
        .map(|l| l.into_iter().map(|c| CertDer::new(c.to_vec())).collect())
        .ok_or_else(|| {
            DirectoryError::Corrupt(format!(
                "{name}: {what} returned a malformed list (items are a 4-byte little-endian length, then the bytes)"
            ))
        })
}

/// A directory's configuration table as `dir_open_pairs` receives it: a list (the ABI's
/// list encoding) alternating key and value, in the table's order. Nested tables give dotted
/// keys (`protocol.byte_encoding`); an array gives one pair per element under the same key
/// (an array of tables: `key.0.sub`, `key.1.sub`); strings are their text (no quotes, no
/// escapes), booleans `true`/`false`, numbers and dates as TOML writes them.
pub fn config_pairs(toml_text: &str) -> Result<Vec<u8>, String> {
    let table: toml::Table = toml_text
        .parse()
        .map_err(|e: toml::de::Error| e.message().trim_end().to_string())?;
    let mut out = Vec::new();
    flatten("", &table, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<u8>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        pair(&key, v, out);
    }
}

fn pair(key: &str, v: &toml::Value, out: &mut Vec<u8>) {
    match v {
        toml::Value::Table(t) => flatten(key, t, out),
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    toml::Value::Table(t) => flatten(&format!("{key}.{i}"), t, out),
                    other => pair(key, other, out),
                }
            }
        }
        toml::Value::String(s) => {
            list::push(out, key.as_bytes());
            list::push(out, s.as_bytes());
        }
        other => {
            list::push(out, key.as_bytes());
            list::push(out, other.to_string().as_bytes());
        }
    }
}

/// An open directory of a plugin.
#[derive(Debug)]
pub struct PluginDirectory {
    lib: Arc<Library>,
    handle: Handle<Dir>,
    id: HandleId,
    name: String,
}

impl PluginDirectory {
    /// Opens configured directory `name` (its table as TOML text, no `[directory.NAME]`
    /// header). Sync, like the core's `DirectoryFactory::open`: a non-thread-safe plugin is
    /// called on its worker, waited for. A plugin with `dir_open_pairs` gets the table as
    /// key/value pairs ([`config_pairs`]) instead.
    pub fn open(lib: Arc<Library>, name: &str, config: &str) -> Result<Self, DirectoryError> {
        let pairs = match lib.dir().and_then(|t| t.dir_open_pairs) {
            Some(_) => Some(config_pairs(config).map_err(|e| {
                DirectoryError::Config(format!("{name}: the configuration table: {e}"))
            })?),
            None => None,
        };
        let (n, c) = (name.to_string(), config.to_string());
        let l = lib.clone();
        let limit = lib.call_timeout();
        let h = lib
            .lane
            .call_blocking_within(limit, move || {
                let t = l.dir()?;
                let (open, c) = match (t.dir_open_pairs, pairs) {
                    (Some(open), Some(p)) => (open, p),
                    _ => (t.dir_open?, c.into_bytes()),
                };
                let mut h: *mut Dir = std::ptr::null_mut();
                let r = call_buf(t.free_buf, |err| {
                    // SAFETY: slices and the out-pointer are valid for the call; serialised
                    // by the lane as the plugin's flags require.
                    unsafe { open(n.as_ptr(), n.len(), c.as_ptr(), c.len(), &mut h, err) }
                });
                Some(r.and_then(|_| {
                    if h.is_null() {
                        return Err(CallError {
                            status: Status::FAILED,
                            message: "dir_open returned SMK_OK with a null handle".into(),
                        });
                    }
                    let id = l.register_on_lane(HandleKind::Dir, Handle(h))?;
                    Ok((Handle(h), id))
                }))
            })
            .map_err(|_| stopped(name))?
            .ok_or_else(|| lane_fail(name, LaneFail::TimedOut(limit.unwrap_or_default())))?
            .ok_or_else(|| {
                DirectoryError::Unsupported(format!("directory {name}: not a directory plugin"))
            })?
            .map_err(|e| map_err(name, None, e))?;
        Ok(Self {
            lib,
            handle: h.0,
            id: h.1,
            name: name.to_string(),
        })
    }

    /// Calls the plugin on its lane: the outer error when the call could not be made (the
    /// lane stopped, the function is NULL), the inner one what the plugin returned.
    async fn raw_call(
        &self,
        what: &str,
        f: impl FnOnce(&abi::DirectoryV1, *mut Dir, *mut abi::Buf) -> Option<Status> + Send + 'static,
    ) -> Result<Result<Vec<u8>, CallError>, DirectoryError> {
        let r = crate::ffi::call_on_lane(&self.lib, Library::dir, self.handle, self.id, f)
            .await
            .map_err(|e| lane_fail(&self.name, e))?;
        r.ok_or_else(|| {
            DirectoryError::Unsupported(format!(
                "directory {}: the plugin does not support {what} (its `{}` is NULL)",
                self.name,
                fn_name(what)
            ))
        })
    }

    /// Calls the plugin on its lane; `address` is the recipient a write concerns.
    async fn call(
        &self,
        what: &str,
        address: Option<&Mailbox>,
        f: impl FnOnce(&abi::DirectoryV1, *mut Dir, *mut abi::Buf) -> Option<Status> + Send + 'static,
    ) -> Result<Vec<u8>, DirectoryError> {
        self.raw_call(what, f)
            .await?
            .map_err(|e| map_err(&self.name, address, e))
    }
}

impl PluginDirectory {
    fn bad_list(&self, what: &str) -> DirectoryError {
        DirectoryError::Corrupt(format!(
            "{}: {what} returned a malformed recipient list (each item: address, kind byte, list of DER)",
            self.name
        ))
    }

    /// Recipient items: each a list of three (address, kind as one byte, list of DER).
    fn parse_recipients(
        &self,
        what: &str,
        items: &[&[u8]],
    ) -> Result<Vec<Recipient>, DirectoryError> {
        let mut out = Vec::new();
        for item in items {
            let parts = list::decode(item).ok_or_else(|| self.bad_list(what))?;
            let [addr, kind, cs] = parts[..] else {
                return Err(self.bad_list(what));
            };
            let addr = std::str::from_utf8(addr).map_err(|_| {
                DirectoryError::Corrupt(format!("{}: {what}: an address is not UTF-8", self.name))
            })?;
            let address = Mailbox::parse(addr)
                .map_err(|e| DirectoryError::Corrupt(format!("{}: {what}: {e}", self.name)))?;
            let kind = match kind {
                [k] if u32::from(*k) == abi::RECIPIENT_CONTACT => RecipientKind::Contact,
                [k] if u32::from(*k) == abi::RECIPIENT_MAILBOX => RecipientKind::Mailbox,
                _ => {
                    return Err(DirectoryError::Corrupt(format!(
                        "{}: {what}: kind of {address} is not one byte SMK_RECIPIENT_MAILBOX (1) or _CONTACT (2)",
                        self.name
                    )));
                }
            };
            out.push(Recipient {
                address,
                kind,
                certificates: certs(&self.name, what, cs)?,
            });
        }
        Ok(out)
    }
}

/// The table function behind an operation, for messages.
fn fn_name(what: &str) -> &'static str {
    match what {
        "listing recipients" => "dir_recipients",
        "one recipient" => "dir_recipient",
        "publishing" => "dir_publish",
        "unpublishing" => "dir_unpublish",
        _ => "dir_lookup",
    }
}

impl PluginDirectory {
    /// `dir_lookup`: `Ok(None)` when the plugin says `SMK_NOT_FOUND` (no such recipient).
    async fn lookup_call(&self, address: &Mailbox) -> Result<Option<Vec<CertDer>>, DirectoryError> {
        let a = address.as_str().to_string();
        let r = self
            .raw_call("lookup", move |t, d, out| {
                // SAFETY: live handle; `a` valid for the call.
                t.dir_lookup
                    .map(|f| unsafe { f(d, a.as_ptr(), a.len(), out) })
            })
            .await?;
        match r {
            Ok(data) => certs(&self.name, "dir_lookup", &data).map(Some),
            Err(e) if e.status == Status::NOT_FOUND => Ok(None),
            Err(e) => Err(map_err(&self.name, None, e)),
        }
    }
}

impl Drop for PluginDirectory {
    fn drop(&mut self) {
        // Closed once: here, unless the library's shutdown closed it first.
        self.lib
            .close_detached(self.id, HandleKind::Dir, self.handle.get() as usize);
    }
}

#[async_trait]
impl Directory for PluginDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    /// `dir_lookup`; `SMK_NOT_FOUND` (no such recipient here) is an empty list, so a search
    /// goes on to the next directory, for `lookup` and `encrypt --to` alike.
    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        Ok(self.lookup_call(address).await?.unwrap_or_default())
    }

    /// One recipient without listing the directory: `dir_recipient` when the plugin has it
    /// (ABI 1.1: with its kind), else `dir_lookup` alone (`SMK_NOT_FOUND` or an empty list:
    /// none; certificates: a recipient whose kind the plugin does not say, reported as a
    /// mailbox). `dir_recipients` is never called for one address.
    async fn recipient(&self, address: &Mailbox) -> Result<Option<Recipient>, DirectoryError> {
        let a = address.as_str().to_string();
        let r = self
            .raw_call("one recipient", move |t, d, out| {
                // SAFETY: live handle; `a` valid for the call.
                t.dir_recipient
                    .map(|f| unsafe { f(d, a.as_ptr(), a.len(), out) })
            })
            .await;
        match r {
            Ok(Ok(data)) => {
                let mut one = self.parse_recipients("dir_recipient", &[data.as_slice()])?;
                Ok(one.pop())
            }
            Ok(Err(e)) if e.status == Status::NOT_FOUND => Ok(None),
            Ok(Err(e)) => Err(map_err(&self.name, None, e)),
            // NULL: dir_lookup alone.
            Err(DirectoryError::Unsupported(_)) => Ok(match self.lookup_call(address).await? {
                Some(certificates) if !certificates.is_empty() => Some(Recipient {
                    address: address.clone(),
                    kind: RecipientKind::Mailbox,
                    certificates,
                }),
                _ => None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        let data = self
            .call("listing recipients", None, |t, d, out| {
                // SAFETY: live handle, valid out buffer.
                t.dir_recipients.map(|f| unsafe { f(d, out) })
            })
            .await?;
        let items = list::decode(&data).ok_or_else(|| self.bad_list("dir_recipients"))?;
        self.parse_recipients("dir_recipients", &items)
    }

    async fn publish(
        &self,
        address: &Mailbox,
        kind: RecipientKind,
        certificate: &CertDer,
        mode: PublishMode,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let a = address.as_str().to_string();
        let c = certificate.as_bytes().to_vec();
        let k = match kind {
            RecipientKind::Mailbox => abi::RECIPIENT_MAILBOX,
            RecipientKind::Contact => abi::RECIPIENT_CONTACT,
        };
        let m = match mode {
            PublishMode::Merge => abi::PUBLISH_MERGE,
            PublishMode::Replace => abi::PUBLISH_REPLACE,
        };
        let data = self
            .call("publishing", Some(address), move |t, d, out| {
                t.dir_publish.map(|f| {
                    // SAFETY: live handle; `a` and `c` valid for the call.
                    unsafe { f(d, a.as_ptr(), a.len(), k, c.as_ptr(), c.len(), m, out) }
                })
            })
            .await?;
        certs(&self.name, "dir_publish", &data)
    }

    async fn unpublish(
        &self,
        address: &Mailbox,
        certificate: &CertDer,
    ) -> Result<Vec<CertDer>, DirectoryError> {
        let a = address.as_str().to_string();
        let c = certificate.as_bytes().to_vec();
        let data = self
            .call("unpublishing", Some(address), move |t, d, out| {
                t.dir_unpublish.map(|f| {
                    // SAFETY: live handle; `a` and `c` valid for the call.
                    unsafe { f(d, a.as_ptr(), a.len(), c.as_ptr(), c.len(), out) }
                })
            })
            .await?;
        certs(&self.name, "dir_unpublish", &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_pairs_flatten_the_table_in_order() {
        let text = "kind = \"acme\"\npath = \"/d/a b\\\"c\"\nport = 636\ntls = true\nhosts = [\"h1\", \"h2\"]\n\n[protocol]\nbyte_encoding = \"base64\"\n\n[[servers]]\nname = \"s0\"\n";
        let pairs = config_pairs(text).unwrap();
        let items = list::decode(&pairs).unwrap();
        let got: Vec<(&str, &str)> = items
            .chunks(2)
            .map(|kv| {
                (
                    std::str::from_utf8(kv[0]).unwrap(),
                    std::str::from_utf8(kv[1]).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("kind", "acme"),
                ("path", "/d/a b\"c"),
                ("port", "636"),
                ("tls", "true"),
                ("hosts", "h1"),
                ("hosts", "h2"),
                ("protocol.byte_encoding", "base64"),
                ("servers.0.name", "s0"),
            ]
        );
        assert!(config_pairs("x = ").is_err());
        assert_eq!(config_pairs("").unwrap(), Vec::<u8>::new());
    }
}
