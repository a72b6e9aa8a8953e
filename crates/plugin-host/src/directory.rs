//! A plugin's directory as a core [`Directory`].

use std::sync::Arc;

use async_trait::async_trait;
use smimekit_core::{
    CertDer, Directory, DirectoryError, Mailbox, PublishMode, Recipient, RecipientKind,
};
use smimekit_plugin_abi::{self as abi, Dir, Status, list};

use crate::ffi::{CallError, Handle, Library, call_buf};

/// `address`: the recipient a write concerns, so that `SMK_NOT_FOUND` (no such recipient)
/// is the port's [`DirectoryError::NotFound`] naming it.
fn map_err(name: &str, address: Option<&Mailbox>, e: CallError) -> DirectoryError {
    let msg = if e.message.is_empty() {
        format!(
            "directory {name}: {}",
            e.status.c_name().unwrap_or("unknown status")
        )
    } else {
        format!("directory {name}: {}", e.message)
    };
    match (e.status, address) {
        (Status::NOT_FOUND, Some(a)) => DirectoryError::NotFound(a.clone()),
        _ => map_status(e.status, msg),
    }
}

fn map_status(status: Status, msg: String) -> DirectoryError {
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
    DirectoryError::Unavailable(format!("directory {name}: the plugin's lane stopped"))
}

fn certs(name: &str, data: &[u8]) -> Result<Vec<CertDer>, DirectoryError> {
    list::decode(data)
        .map(|l| l.into_iter().map(|c| CertDer::new(c.to_vec())).collect())
        .ok_or_else(|| {
            DirectoryError::Other(format!(
                "directory {name}: the plugin returned a malformed list"
            ))
        })
}

/// An open directory of a plugin.
#[derive(Debug)]
pub struct PluginDirectory {
    lib: Arc<Library>,
    handle: Handle<Dir>,
    name: String,
}

impl PluginDirectory {
    /// Opens configured directory `name` (its table as TOML text). Sync, like the core's
    /// `DirectoryFactory::open`: a non-thread-safe plugin is called on its worker, waited for.
    pub fn open(lib: Arc<Library>, name: &str, config: &str) -> Result<Self, DirectoryError> {
        let (n, c) = (name.to_string(), config.to_string());
        let l = lib.clone();
        let h = lib
            .lane
            .call_blocking(move || {
                let t = l.dir()?;
                let open = t.dir_open?;
                let mut h: *mut Dir = std::ptr::null_mut();
                let r = call_buf(t.free_buf, |err| {
                    // SAFETY: slices and the out-pointer are valid for the call; serialised
                    // by the lane as the plugin's flags require.
                    unsafe { open(n.as_ptr(), n.len(), c.as_ptr(), c.len(), &mut h, err) }
                });
                Some(r.map(|_| Handle(h)))
            })
            .map_err(|_| stopped(name))?
            .ok_or_else(|| {
                DirectoryError::Unsupported(format!("directory {name}: not a directory plugin"))
            })?
            .map_err(|e| map_err(name, None, e))?;
        if h.get().is_null() {
            return Err(DirectoryError::Other(format!(
                "directory {name}: dir_open returned SMK_OK with a null handle"
            )));
        }
        Ok(Self {
            lib,
            handle: h,
            name: name.to_string(),
        })
    }

    /// Calls the plugin on its lane; `address` is the recipient a write concerns.
    async fn call(
        &self,
        what: &str,
        address: Option<&Mailbox>,
        f: impl FnOnce(&abi::DirectoryV1, *mut Dir, *mut abi::Buf) -> Option<Status> + Send + 'static,
    ) -> Result<Vec<u8>, DirectoryError> {
        let r = crate::ffi::call_on_lane(&self.lib, Library::dir, self.handle, f)
            .await
            .map_err(|_| stopped(&self.name))?;
        match r {
            None => Err(DirectoryError::Unsupported(format!(
                "directory {}: the plugin does not support {what}",
                self.name
            ))),
            Some(r) => r.map_err(|e| map_err(&self.name, address, e)),
        }
    }
}

impl Drop for PluginDirectory {
    fn drop(&mut self) {
        let l = self.lib.clone();
        let h = self.handle;
        self.lib.lane.detach(move || {
            if let Some(close) = l.dir().and_then(|t| t.dir_close) {
                // SAFETY: the handle came from dir_open and is closed once.
                unsafe { close(h.get()) }
            }
        });
    }
}

#[async_trait]
impl Directory for PluginDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, address: &Mailbox) -> Result<Vec<CertDer>, DirectoryError> {
        let a = address.as_str().to_string();
        let data = self
            .call("lookup", None, move |t, d, out| {
                // SAFETY: live handle; `a` valid for the call.
                t.dir_lookup
                    .map(|f| unsafe { f(d, a.as_ptr(), a.len(), out) })
            })
            .await?;
        certs(&self.name, &data)
    }

    async fn recipients(&self) -> Result<Vec<Recipient>, DirectoryError> {
        let data = self
            .call("listing recipients", None, |t, d, out| {
                // SAFETY: live handle, valid out buffer.
                t.dir_recipients.map(|f| unsafe { f(d, out) })
            })
            .await?;
        let bad =
            || DirectoryError::Other(format!("directory {}: malformed recipient list", self.name));
        let mut out = Vec::new();
        for item in list::decode(&data).ok_or_else(bad)? {
            let parts = list::decode(item).ok_or_else(bad)?;
            let [addr, kind, cs] = parts[..] else {
                return Err(bad());
            };
            let address = Mailbox::parse(&String::from_utf8_lossy(addr))
                .map_err(|e| DirectoryError::Corrupt(format!("directory {}: {e}", self.name)))?;
            out.push(Recipient {
                address,
                kind: if kind.first() == Some(&(abi::RECIPIENT_CONTACT as u8)) {
                    RecipientKind::Contact
                } else {
                    RecipientKind::Mailbox
                },
                certificates: certs(&self.name, cs)?,
            });
        }
        Ok(out)
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
        certs(&self.name, &data)
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
        certs(&self.name, &data)
    }
}
