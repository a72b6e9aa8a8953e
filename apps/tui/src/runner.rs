//! Runs [`Task`]s against the service as tokio tasks, each posting its result back as a
//! [`Msg`]; the loop that draws never awaits a service call.

use std::path::{Path, PathBuf};

use smimekit_service::deploy::{self, ApplyRequest, FsDeploySource, PlanRequest};
use smimekit_service::{
    AuditLogRequest, ErrorKind, JobCanceller, KeyRequest, Service, ServiceError,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::app::{EXPIRING_DAYS, Msg, Task};

/// Spawns tasks; holds the running apply so it can be cancelled and awaited at exit.
#[derive(Debug)]
pub struct Runner {
    service: Service,
    file: Option<PathBuf>,
    tx: UnboundedSender<Msg>,
    apply: Option<(JobCanceller, JoinHandle<()>)>,
}

impl Runner {
    pub fn new(service: Service, file: Option<PathBuf>, tx: UnboundedSender<Msg>) -> Self {
        Self {
            service,
            file,
            tx,
            apply: None,
        }
    }

    pub fn spawn(&mut self, task: Task) {
        let service = self.service.clone();
        let tx = self.tx.clone();
        match task {
            Task::LoadPeople { first } => {
                tokio::spawn(async move {
                    if let Some(n) = first {
                        match service.people_first(n, EXPIRING_DAYS).await {
                            // Fewer than asked for: that is everyone.
                            Ok(rows) if rows.len() < n => {
                                let _ = tx.send(Msg::People(Ok(rows)));
                                return;
                            }
                            Ok(rows) => {
                                let _ = tx.send(Msg::PeopleFirst(rows));
                            }
                            Err(e) => {
                                let _ = tx.send(Msg::People(Err(e)));
                                return;
                            }
                        }
                    }
                    let r = service.people_all(EXPIRING_DAYS).await;
                    let _ = tx.send(Msg::People(r));
                });
            }
            Task::Lookup { address } => {
                tokio::spawn(async move {
                    let result = service.person(&address).await.map(Box::new);
                    let _ = tx.send(Msg::Lookup { address, result });
                });
            }
            Task::LoadPlan => {
                let Some(file) = self.file.clone() else {
                    return;
                };
                tokio::spawn(async move {
                    let r = plan(&service, &file).await.map(Box::new);
                    let _ = tx.send(Msg::Plan(r));
                });
            }
            Task::Apply(plan) => {
                let mut job = service.apply(ApplyRequest {
                    plan: *plan,
                    deliver: None,
                    ca_secret: None,
                    time_budget: None,
                    just_planned: false,
                });
                let canceller = job.canceller();
                let handle = tokio::spawn(async move {
                    while let Some(ev) = job.next_event().await {
                        let _ = tx.send(Msg::Progress(ev));
                    }
                    let _ = tx.send(Msg::Applied(job.await));
                });
                self.apply = Some((canceller, handle));
            }
            Task::CancelApply => {
                if let Some((c, _)) = &self.apply {
                    c.cancel();
                }
            }
            Task::LoadTrust => {
                tokio::spawn(async move {
                    let mut dirs = Vec::new();
                    for name in service.directory_names() {
                        let r = service
                            .trust_show(Some(&name))
                            .await
                            .map(|t| t.certificates);
                        dirs.push((name, r));
                    }
                    let _ = tx.send(Msg::Trust(dirs));
                });
            }
            Task::LoadAudit => {
                tokio::spawn(async move {
                    let r = service.audit_log(&AuditLogRequest::default()).await;
                    let _ = tx.send(Msg::Audit(r));
                });
            }
            Task::ListKeys {
                store,
                reference,
                secret,
            } => {
                tokio::spawn(async move {
                    // The PIN moves into the request and is wiped when the request is dropped.
                    let req = KeyRequest {
                        reference,
                        secret,
                        ..KeyRequest::default()
                    };
                    let result = service.list_keys(&req).await;
                    drop(req);
                    let _ = tx.send(Msg::Keys { store, result });
                });
            }
        }
    }

    /// At exit: a running apply is cancelled and awaited (it finishes the write under way and
    /// releases its lock), then the service closes what it opened.
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        if let Some((c, handle)) = self.apply.take() {
            c.cancel();
            let _ = handle.await;
        }
        self.service.shutdown().await
    }
}

/// Reads the deploy file and what it names (relative to its folder), then plans.
async fn plan(service: &Service, file: &Path) -> Result<deploy::Plan, ServiceError> {
    let text = tokio::fs::read(file)
        .await
        .map_err(|e| ServiceError::new(ErrorKind::Io, format!("{}: {e}", file.display())))?;
    let text = String::from_utf8(text).map_err(|_| {
        ServiceError::new(
            ErrorKind::Invalid,
            format!("{}: not UTF-8 text", file.display()),
        )
    })?;
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = file.display().to_string();
    let names = service.directory_names();
    // The deploy file's CSV lists and certificates are read from disk: off the async threads.
    let desired = tokio::task::spawn_blocking(move || {
        let source = FsDeploySource { base };
        deploy::load(&name, &text, &source, &names).map_err(ServiceError::from)
    })
    .await
    .map_err(|e| {
        ServiceError::new(ErrorKind::Internal, format!("reading the deploy file: {e}"))
    })??;
    service
        .plan(&PlanRequest {
            desired,
            replace_unmanaged: Vec::new(),
            inventory_max_age: Some(deploy::DEFAULT_INVENTORY_MAX_AGE),
        })
        .await
}
