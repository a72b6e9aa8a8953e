//! `apply`: makes the directories hold what a plan says, safely, again and again.
//!
//! One apply runs at a time per store: a lock with an id, its holder (host, process, actor)
//! and start time, kept alive by a heartbeat. A lock whose holder died is free again: on the
//! same host when its process is gone, anywhere when its heartbeat is older than
//! [`LOCK_LEASE_SECS`]. A saved plan is refused when a directory it read changed since.
//!
//! Every step is journaled in the store before and after it runs, and every certificate
//! smimekit publishes is recorded as managed *before* the write; each step reads the entry
//! afresh and writes only what is still missing or still there. So a run killed at any
//! moment, re-run, converges: nothing done twice (a contact is created once: the step finds
//! it), nothing lost. A step that fails does not stop the others; a busy directory's steps go
//! back to the end of the queue until the run's time budget is spent. A step's place among
//! its directory's steps in flight is given to the next one as soon as its write is read back:
//! the store's records of it (audit, inventory, ownership confirmed, the journal's `done`) are
//! written beside the next steps, and the report waits for them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use smimekit_core::store::{JournalEntry, LockInfo, ManagedCert, Store};
use smimekit_core::{CertDer, Directory, Mailbox, PublishMode, RecipientKind};

use super::plan::{
    ChangeAction, Plan, TRUST_READ, read_entries, read_key, read_trust, thumbprint, trust_key,
};
use crate::audit_log::Change;
use crate::jobs::{JobContext, JobOutput};
use crate::runner::{self, Ended, Try};
use crate::store::store_error;
use crate::{ErrorKind, Job, Service, ServiceError};

/// The store lock apply takes.
pub const APPLY_LOCK: &str = "apply";
/// A lock whose heartbeat is older than this is free (its holder is gone).
pub const LOCK_LEASE_SECS: i64 = 120;
/// How often a running apply renews its lock.
const HEARTBEAT: Duration = Duration::from_secs(20);
/// Steps in flight per directory (each directory has its own: a throttled one's waits hold
/// back no other).
const PARALLEL: usize = 16;
/// The default time budget of a run.
const DEFAULT_BUDGET: Duration = Duration::from_secs(3600);

/// A certificate the CA issued during apply, for the frontend to hand over (`--deliver`).
#[derive(Clone)]
pub struct Delivery {
    pub address: String,
    /// Key + certificate + chain.
    pub pkcs12: Vec<u8>,
    /// The PKCS#12's password (random).
    pub password: smimekit_core::Secret,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Hands a new PKCS#12 to its owner (the CLI writes `ADDRESS.p12` and `ADDRESS.p12.pass`).
/// Called as soon as the certificate is issued, before it is published.
pub trait Deliver: Send + Sync {
    fn deliver(&self, delivery: &Delivery) -> Result<String, ServiceError>;
}

/// What `apply` gets.
#[derive(Clone)]
pub struct ApplyRequest {
    pub plan: Plan,
    /// Where issued certificates go; required when the plan issues or renews.
    pub deliver: Option<Arc<dyn Deliver>>,
    /// The CA key's password, when it has one and no other source has it.
    pub ca_secret: Option<smimekit_core::Secret>,
    /// Default: 1 h.
    pub time_budget: Option<Duration>,
    /// The plan was made by this caller just now, nobody reviewing it in between
    /// (`apply --file F --auto-approve`): the up-front re-read of every directory that refuses a
    /// stale plan is skipped. Each step still re-reads its own entry before it writes, so a
    /// value that appeared meanwhile is kept. A saved or reviewed plan leaves this `false`.
    pub just_planned: bool,
}

impl std::fmt::Debug for ApplyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyRequest")
            .field("file", &self.plan.file)
            .finish_non_exhaustive()
    }
}

/// One step of an apply and how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyStep {
    pub directory: String,
    /// The address, or `trust chain`, or the address of an issue step.
    pub target: String,
    /// `publish`, `trust`, `issue`, `renew`.
    pub operation: String,
    /// `done`, `unchanged` (already as wanted when re-read), `failed`, `not-attempted`.
    pub status: &'static str,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    /// Not attempted because the run's time budget was spent (not cancelled).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_time: bool,
    /// For issue steps: where the PKCS#12 went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<String>,
}

/// What `apply` did.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// The run's id (journal and lock).
    pub run: String,
    pub file: String,
    pub done: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub not_attempted: usize,
    /// Steps of earlier runs that were interrupted (killed), re-checked by this one.
    pub interrupted_before: usize,
    pub requeued: usize,
    pub seconds: f64,
    pub steps: Vec<ApplyStep>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.not_attempted == 0
    }
}

impl JobOutput for ApplyReport {
    fn outcome(&self) -> String {
        if self.succeeded() {
            "ok".into()
        } else {
            format!(
                "failed: {} failed, {} not attempted",
                self.failed, self.not_attempted
            )
        }
    }

    fn items(&self) -> serde_json::Value {
        serde_json::to_value(&self.steps).unwrap_or_default()
    }
}

/// One unit of work: a person's changes in one directory, a trust chain, an issuance.
#[derive(Clone, Debug)]
enum Work {
    Person {
        directory: String,
        address: Mailbox,
        kind: RecipientKind,
        add: Vec<CertDer>,
        remove: Vec<CertDer>,
    },
    Trust {
        directory: String,
        chain: Vec<CertDer>,
    },
}

impl Work {
    fn step(&self, run: &str) -> String {
        match self {
            Work::Person {
                directory, address, ..
            } => format!("{run}/{directory}/{}", address.key()),
            Work::Trust { directory, .. } => format!("{run}/{directory}/{TRUST_READ}"),
        }
    }

    fn directory(&self) -> &str {
        match self {
            Work::Person { directory, .. } | Work::Trust { directory, .. } => directory,
        }
    }

    fn label(&self) -> String {
        match self {
            Work::Person {
                directory, address, ..
            } => format!("{directory}: {address}"),
            Work::Trust { directory, .. } => format!("{directory}: trust chain"),
        }
    }
}

/// What a finished step did.
#[derive(Debug)]
struct Did {
    added: Vec<String>,
    removed: Vec<String>,
}

/// How a step's work ended: finished, or its write done and read back with the store's
/// records of it still being written.
/// (`Later` is the records' answer, not their task's handle: a finished task's memory is
/// kept while its handle is, and 10,000 people make 30,000 steps.)
#[derive(Debug)]
enum Finish {
    Now(Did),
    Later(tokio::sync::oneshot::Receiver<Result<Did, ServiceError>>),
}

impl Finish {
    /// The step's outcome once its records are written (a failure to record fails the step,
    /// as when it was recorded before the step ended).
    async fn outcome(self) -> Result<Did, String> {
        match self {
            Finish::Now(did) => Ok(did),
            Finish::Later(records) => match records.await {
                Ok(Ok(did)) => Ok(did),
                Ok(Err(e)) => Err(e.message),
                // The task ended without answering (a panic).
                Err(_) => Err("writing its records ended abnormally".into()),
            },
        }
    }
}

/// What is left of a person's step once its write was read back as intended: the store's
/// records (the audit row and inventory, the ownership confirmed, removed values forgotten,
/// the journal's `done`), in that order.
struct Record {
    svc: Service,
    store: Arc<dyn Store>,
    run: String,
    step: String,
    directory: String,
    address: Mailbox,
    before: Vec<CertDer>,
    after_kind: Option<RecipientKind>,
    after: Vec<CertDer>,
    added: Vec<CertDer>,
    removed: Vec<CertDer>,
    owned: Vec<ManagedCert>,
}

impl Record {
    async fn finish(self) -> Result<Did, ServiceError> {
        let recorded = self.write().await;
        if let Err(e) = &recorded {
            let journal = self
                .svc
                .journal(
                    &self.store,
                    &self.run,
                    &self.step,
                    "failed",
                    e.message.clone(),
                )
                .await;
            if let Err(je) = journal {
                tracing::warn!(error = %je, "journal");
            }
        }
        recorded
    }

    async fn write(&self) -> Result<Did, ServiceError> {
        let change = Change::new("apply", &self.directory, &self.address, &self.before);
        self.svc
            .record_write(
                &change,
                Some((self.after_kind, self.after.as_slice())),
                self.added.first(),
                &Ok(()),
            )
            .await?;
        // The rows kept before the write, confirmed (no other writer records this address's
        // rows while the apply lock is held, so they need not be read again).
        let confirmed: Vec<ManagedCert> = self
            .owned
            .iter()
            .map(|m| ManagedCert {
                confirmed: true,
                ..m.clone()
            })
            .collect();
        if !confirmed.is_empty() {
            self.store
                .managed_put(&confirmed)
                .await
                .map_err(store_error)?;
        }
        let key = self.address.key();
        for c in &self.removed {
            self.store
                .managed_forget(&self.directory, &key, &thumbprint(c))
                .await
                .map_err(store_error)?;
        }
        self.svc
            .journal(&self.store, &self.run, &self.step, "done", String::new())
            .await?;
        Ok(Did {
            added: self.added.iter().map(thumbprint).collect(),
            removed: self.removed.iter().map(thumbprint).collect(),
        })
    }
}

/// The host name, for lock holders.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Wall-clock seconds (locks use real time even when the service clock is pinned).
fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Whether a process of this host is running (Linux: its /proc entry).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Why a lock's holder is gone, or `None` while it may be alive.
fn holder_gone(holder: &LockInfo, host: &str, now: i64) -> Option<String> {
    if holder.host == host && holder.pid != std::process::id() && !process_alive(holder.pid) {
        return Some(format!("process {} on {host} is gone", holder.pid));
    }
    if now - holder.heartbeat > LOCK_LEASE_SECS {
        return Some(format!(
            "its last heartbeat is {} s old",
            now - holder.heartbeat
        ));
    }
    None
}

fn describe_lock(l: &LockInfo) -> String {
    format!(
        "apply lock {} is held by {} (process {} on {}) since {}",
        l.id,
        l.actor,
        l.pid,
        l.host,
        crate::certs::rfc3339(l.started)
    )
}

/// The apply lock while a run holds it: released when the run ends (and its heartbeat stops).
struct Held {
    store: Arc<dyn Store>,
    id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Held {
    async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self.store.lock_release(APPLY_LOCK, &self.id).await {
            tracing::warn!(error = %store_error(e), "apply lock not released");
        }
    }
}

impl Service {
    /// `smimekit apply`: runs the plan as a job (see the module documentation).
    pub fn apply(&self, req: ApplyRequest) -> Job<ApplyReport> {
        self.spawn_job("apply", move |svc, ctx| async move {
            svc.apply_run(req, &ctx).await
        })
    }

    /// `smimekit apply --force-unlock ID`: frees the apply lock held by `id`.
    pub async fn apply_force_unlock(&self, id: &str) -> Result<LockInfo, ServiceError> {
        let store = self.store().await?;
        let held = store.lock_get(APPLY_LOCK).await.map_err(store_error)?;
        match held {
            Some(l) if l.id == id => {
                store
                    .lock_release(APPLY_LOCK, id)
                    .await
                    .map_err(store_error)?;
                self.audit_change(
                    "apply-force-unlock",
                    "",
                    "",
                    vec![describe_lock(&l)],
                    Vec::new(),
                    "ok".into(),
                )
                .await?;
                Ok(l)
            }
            Some(l) => Err(ServiceError::new(
                ErrorKind::NotFound,
                format!("no apply lock with id {id}: {}", describe_lock(&l)),
            )),
            None => Err(ServiceError::new(
                ErrorKind::NotFound,
                format!("no apply lock with id {id}: the apply lock is free"),
            )),
        }
    }

    /// The apply lock's holder, if any (for status pages).
    pub async fn apply_lock(&self) -> Result<Option<LockInfo>, ServiceError> {
        let store = self.store().await?;
        store.lock_get(APPLY_LOCK).await.map_err(store_error)
    }

    async fn take_apply_lock(&self, store: &Arc<dyn Store>) -> Result<Held, ServiceError> {
        let mut raw = [0u8; 8];
        self.engine()
            .primitives
            .fill_random(&mut raw)
            .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("random: {e}")))?;
        let id = hex::encode(raw);
        let host = host_name();
        let now = wall_now();
        let mine = LockInfo {
            name: APPLY_LOCK.into(),
            id: id.clone(),
            host: host.clone(),
            pid: std::process::id(),
            actor: format!("{} ({})", self.actor.user, self.actor.frontend),
            started: now,
            heartbeat: now,
        };
        let mut replace: Option<String> = None;
        loop {
            match store
                .lock_acquire(&mine, replace.as_deref())
                .await
                .map_err(store_error)?
            {
                None => break,
                Some(holder) => {
                    if replace.as_deref() == Some(holder.id.as_str()) {
                        // We tried to take over this very holder and lost a race: held.
                        return Err(self.lock_held(&holder));
                    }
                    match holder_gone(&holder, &host, now) {
                        Some(why) => {
                            tracing::warn!(holder = %holder.id, why, "taking over a dead apply lock");
                            replace = Some(holder.id.clone());
                        }
                        None => return Err(self.lock_held(&holder)),
                    }
                }
            }
        }
        let beat_store = store.clone();
        let beat_id = id.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match beat_store
                    .lock_heartbeat(APPLY_LOCK, &beat_id, wall_now())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!("the apply lock was taken from this run");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %store_error(e), "apply lock heartbeat"),
                }
            }
        });
        Ok(Held {
            store: store.clone(),
            id,
            heartbeat,
        })
    }

    fn lock_held(&self, holder: &LockInfo) -> ServiceError {
        ServiceError::new(
            ErrorKind::Conflict,
            format!(
                "{}; another apply is running (if it is gone, unlock it with its id)",
                describe_lock(holder)
            ),
        )
        .for_field("force_unlock")
    }

    async fn apply_run(
        &self,
        req: ApplyRequest,
        ctx: &JobContext,
    ) -> Result<ApplyReport, ServiceError> {
        let started = tokio::time::Instant::now();
        let store = self.store().await?;
        let held = self.take_apply_lock(&store).await?;
        let result = self.apply_locked(&req, ctx, &store, &held.id).await;
        held.release().await;
        result.map(|mut r| {
            r.seconds = started.elapsed().as_secs_f64();
            r
        })
    }

    async fn apply_locked(
        &self,
        req: &ApplyRequest,
        ctx: &JobContext,
        store: &Arc<dyn Store>,
        run: &str,
    ) -> Result<ApplyReport, ServiceError> {
        let plan = &req.plan;
        if plan.format != super::plan::PLAN_FORMAT {
            return Err(ServiceError::new(
                ErrorKind::Malformed,
                format!(
                    "plan format {} is not {} (made by another version): plan again",
                    plan.format,
                    super::plan::PLAN_FORMAT
                ),
            ));
        }
        // Refuse a plan that no longer matches the directories. They are opened and read all
        // at once (the wait is the slowest one's, not the sum); the first stale or failing one
        // in the plan's order is the one named, as when they were read one after another.
        let fresh = req.just_planned;
        let checks = plan
            .directories
            .iter()
            .map(|d| {
                Box::pin(async move {
                    let dir = self.open_directory(&d.name).await?;
                    if !fresh {
                        self.check_fresh(&dir, d).await?;
                    }
                    Ok::<_, ServiceError>((d.name.clone(), dir))
                }) as Pending<'_, _>
            })
            .collect();
        let mut dirs: BTreeMap<String, Arc<dyn Directory>> = BTreeMap::new();
        for checked in join_all(checks).await {
            let (name, dir) = checked?;
            dirs.insert(name, dir);
        }
        self.confirm_read_back(store, plan).await?;
        let interrupted = store.journal_interrupted().await.map_err(store_error)?;

        // The work: trust chains first, then issuance, then people.
        let mut work = Vec::new();
        for d in &plan.directories {
            if let Some(t) = &d.trust {
                let chain = t
                    .chain
                    .iter()
                    .map(|th| plan.certificate(th))
                    .collect::<Result<Vec<_>, _>>()?;
                work.push(Work::Trust {
                    directory: d.name.clone(),
                    chain,
                });
            }
        }
        let mut steps: Vec<ApplyStep> = Vec::new();
        let mut issued: Vec<(String, Vec<String>, CertDer)> = Vec::new();
        for step in &plan.issue {
            match self.apply_issue(req, step).await {
                Ok((cert, delivered)) => {
                    steps.push(ApplyStep {
                        directory: String::new(),
                        target: step.address.clone(),
                        operation: step.action.clone(),
                        status: "done",
                        added: vec![thumbprint(&cert)],
                        removed: Vec::new(),
                        error: None,
                        attempts: 1,
                        out_of_time: false,
                        delivered: Some(delivered),
                    });
                    issued.push((step.address.clone(), step.directories.clone(), cert));
                }
                Err(e) => steps.push(ApplyStep {
                    directory: String::new(),
                    target: step.address.clone(),
                    operation: step.action.clone(),
                    status: "failed",
                    added: Vec::new(),
                    removed: Vec::new(),
                    error: Some(e.message),
                    attempts: 1,
                    out_of_time: false,
                    delivered: None,
                }),
            }
        }
        for d in &plan.directories {
            for p in &d.people {
                if p.changes.is_empty() {
                    continue;
                }
                let mut add = Vec::new();
                let mut remove = Vec::new();
                for c in &p.changes {
                    match c {
                        ChangeAction::Add { certificate } => {
                            add.push(plan.certificate(&certificate.thumbprint)?);
                        }
                        ChangeAction::Remove { certificate, .. } => {
                            remove.push(plan.certificate(&certificate.thumbprint)?);
                        }
                    }
                }
                let address = crate::directory::parse_address(&p.address)?;
                work.push(Work::Person {
                    directory: d.name.clone(),
                    address,
                    kind: p.kind,
                    add,
                    remove,
                });
            }
        }
        // Issued certificates join their person's step in each directory.
        for (address, directories, cert) in issued {
            let address = crate::directory::parse_address(&address)?;
            for directory in directories {
                let existing = work.iter_mut().find(|w| {
                    matches!(w, Work::Person { directory: d, address: a, .. } if *d == directory && *a == address)
                });
                match existing {
                    Some(Work::Person { add, .. }) => add.push(cert.clone()),
                    _ => {
                        let kind = plan
                            .directories
                            .iter()
                            .find(|d| d.name == directory)
                            .and_then(|d| d.people.iter().find(|p| p.address == address.as_str()))
                            .map(|p| p.kind)
                            .unwrap_or(RecipientKind::Mailbox);
                        if !dirs.contains_key(&directory) {
                            dirs.insert(directory.clone(), self.open_directory(&directory).await?);
                        }
                        work.push(Work::Person {
                            directory,
                            address: address.clone(),
                            kind,
                            add: vec![cert.clone()],
                            remove: Vec::new(),
                        });
                    }
                }
            }
        }

        let budget = req.time_budget.unwrap_or(DEFAULT_BUDGET);
        // Each directory's steps whose records are still being written: as many as its steps
        // in flight, so a fast directory's records cannot pile up in the store's queue.
        let records: Arc<BTreeMap<String, Arc<tokio::sync::Semaphore>>> = Arc::new(
            dirs.keys()
                .map(|d| (d.clone(), Arc::new(tokio::sync::Semaphore::new(PARALLEL))))
                .collect(),
        );
        let dirs = Arc::new(dirs);
        let run_id = run.to_string();
        let outcome = runner::run(
            work.clone(),
            runner::Schedule {
                parallel: PARALLEL,
                budget,
                what: "apply",
            },
            ctx,
            |w| w.directory().to_string(),
            Work::label,
            |w| {
                let svc = self.clone();
                let dirs = dirs.clone();
                let records = records.clone();
                let store = store.clone();
                let run = run_id.clone();
                async move { svc.apply_step(&store, &dirs, &records, &run, w).await }
            },
        )
        .await;
        for (w, ended) in work.iter().zip(outcome.ended) {
            // A step whose write was done waits here for the store's records of it.
            let ended = match ended {
                Ended::Done { result, attempts } => match result.outcome().await {
                    Ok(result) => Ended::Done { result, attempts },
                    Err(error) => Ended::Failed { error, attempts },
                },
                Ended::Failed { error, attempts } => Ended::Failed { error, attempts },
                Ended::NotAttempted {
                    reason,
                    attempts,
                    out_of_time,
                } => Ended::NotAttempted {
                    reason,
                    attempts,
                    out_of_time,
                },
            };
            let (directory, target, operation) = match w {
                Work::Person {
                    directory, address, ..
                } => (directory.clone(), address.to_string(), "publish"),
                Work::Trust { directory, .. } => (directory.clone(), "trust chain".into(), "trust"),
            };
            let step = |status, error, attempts| ApplyStep {
                directory: directory.clone(),
                target: target.clone(),
                operation: operation.into(),
                status,
                added: Vec::new(),
                removed: Vec::new(),
                error,
                attempts,
                out_of_time: false,
                delivered: None,
            };
            steps.push(match ended {
                Ended::Done { result, attempts } => ApplyStep {
                    status: if result.added.is_empty() && result.removed.is_empty() {
                        "unchanged"
                    } else {
                        "done"
                    },
                    added: result.added,
                    removed: result.removed,
                    ..step("done", None, attempts)
                },
                Ended::Failed { error, attempts } => step("failed", Some(error), attempts),
                Ended::NotAttempted {
                    reason,
                    attempts,
                    out_of_time,
                } => ApplyStep {
                    out_of_time,
                    ..step("not-attempted", Some(reason), attempts)
                },
            });
        }
        // The interrupted steps of earlier runs were re-read by this run's plan and steps.
        let now = self.now();
        for i in &interrupted {
            if let Err(e) = store.journal_resolve(&i.step, now).await {
                tracing::warn!(error = %store_error(e), step = %i.step, "journal");
            }
        }
        let count = |s: &str| steps.iter().filter(|x| x.status == s).count();
        Ok(ApplyReport {
            run: run.to_string(),
            file: plan.file.clone(),
            done: count("done"),
            unchanged: count("unchanged"),
            failed: count("failed"),
            not_attempted: count("not-attempted"),
            interrupted_before: interrupted.len(),
            requeued: outcome.requeued,
            seconds: 0.0,
            steps,
        })
    }

    /// Confirms the managed values an interrupted run wrote but was killed before reading back:
    /// the plan's read (just checked fresh) shows them in the directory, and no step of this
    /// run touches a person whose directory already holds what the file wants.
    async fn confirm_read_back(
        &self,
        store: &Arc<dyn Store>,
        plan: &Plan,
    ) -> Result<(), ServiceError> {
        for d in &plan.directories {
            let rows = store.managed(Some(&d.name)).await.map_err(store_error)?;
            let seen: Vec<ManagedCert> = rows
                .into_iter()
                .filter(|m| !m.confirmed)
                .filter(|m| {
                    d.read
                        .get(&m.address)
                        .and_then(|r| r.split_once(':'))
                        .is_some_and(|(_, thumbs)| thumbs.split(',').any(|t| t == m.thumbprint))
                })
                .map(|m| ManagedCert {
                    confirmed: true,
                    ..m
                })
                .collect();
            if !seen.is_empty() {
                store.managed_put(&seen).await.map_err(store_error)?;
            }
        }
        Ok(())
    }

    /// Refuses when a directory changed since the plan read it, naming what changed.
    async fn check_fresh(
        &self,
        dir: &Arc<dyn Directory>,
        d: &super::plan::DirectoryPlan,
    ) -> Result<(), ServiceError> {
        let addresses: Vec<Mailbox> = d
            .read
            .keys()
            .filter(|k| k.as_str() != TRUST_READ)
            .filter_map(|k| Mailbox::parse(k).ok())
            .collect();
        let entries = read_entries(dir, &addresses)
            .await
            .map_err(|e| ServiceError::from(e).context(format!("apply: directory {}", d.name)))?;
        let mut changed = Vec::new();
        for a in &addresses {
            let now = read_key(entries.get(&a.key()).and_then(Option::as_ref));
            if d.read.get(&a.key()) != Some(&now) {
                changed.push(a.to_string());
            }
        }
        if let Some(before) = d.read.get(TRUST_READ) {
            let held = read_trust(dir.as_ref())
                .await
                .map_err(|e| ServiceError::from(e).context(format!("apply: directory {}", d.name)))?
                .unwrap_or_default();
            if &trust_key(&held) != before {
                changed.push("its trust chain".into());
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = changed.iter().take(10).map(String::as_str).collect();
        let more = if changed.len() > 10 {
            format!(" and {} more", changed.len() - 10)
        } else {
            String::new()
        };
        Err(ServiceError::new(
            ErrorKind::Stale,
            format!(
                "the saved plan is stale: directory {} changed since it was made ({}{more}); plan again",
                d.name,
                shown.join(", ")
            ),
        ))
    }

    /// One step: re-read, journal, record ownership, write, read back, record.
    async fn apply_step(
        &self,
        store: &Arc<dyn Store>,
        dirs: &BTreeMap<String, Arc<dyn Directory>>,
        records: &BTreeMap<String, Arc<tokio::sync::Semaphore>>,
        run: &str,
        w: Work,
    ) -> Try<Finish> {
        let dir_name = match &w {
            Work::Person { directory, .. } | Work::Trust { directory, .. } => directory.clone(),
        };
        let (Some(dir), Some(records)) = (dirs.get(&dir_name), records.get(&dir_name)) else {
            return Try::Failed(format!("directory {dir_name} is not open"));
        };
        let step = w.step(run);
        let result = match &w {
            Work::Person {
                address,
                kind,
                add,
                remove,
                ..
            } => {
                self.apply_person(
                    store,
                    dir.as_ref(),
                    records,
                    run,
                    &step,
                    address,
                    *kind,
                    add,
                    remove,
                )
                .await
            }
            Work::Trust { chain, .. } => self
                .apply_trust(store, dir.as_ref(), run, &step, chain)
                .await
                .map(Finish::Now),
        };
        match result {
            Ok(did) => Try::Done(did),
            Err(e) => {
                let journal = JournalEntry {
                    run: run.to_string(),
                    step: step.clone(),
                    phase: "failed".into(),
                    detail: e.message.clone(),
                    at: self.now(),
                };
                if let Err(je) = store.journal_append(&journal).await {
                    tracing::warn!(error = %store_error(je), "journal");
                }
                match e.busy() {
                    Some(b) => Try::Busy {
                        message: e.message,
                        retry_after: b.retry_after,
                    },
                    None => Try::Failed(e.message),
                }
            }
        }
    }

    async fn journal(
        &self,
        store: &Arc<dyn Store>,
        run: &str,
        step: &str,
        phase: &str,
        detail: String,
    ) -> Result<(), ServiceError> {
        store
            .journal_append(&JournalEntry {
                run: run.to_string(),
                step: step.to_string(),
                phase: phase.into(),
                detail,
                at: self.now(),
            })
            .await
            .map_err(store_error)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_person(
        &self,
        store: &Arc<dyn Store>,
        dir: &dyn Directory,
        records: &Arc<tokio::sync::Semaphore>,
        run: &str,
        step: &str,
        address: &Mailbox,
        kind: RecipientKind,
        add: &[CertDer],
        remove: &[CertDer],
    ) -> Result<Finish, ServiceError> {
        // Read afresh: an earlier (killed) run, or another writer, may have done part of it.
        let current = dir.recipient(address).await?;
        let before: Vec<CertDer> = current
            .as_ref()
            .map(|r| r.certificates.clone())
            .unwrap_or_default();
        let kind = current.as_ref().map(|r| r.kind).unwrap_or(kind);
        let to_add: Vec<&CertDer> = add.iter().filter(|c| !before.contains(c)).collect();
        let to_remove: Vec<CertDer> = remove
            .iter()
            .filter(|c| before.contains(c) && !add.contains(c))
            .cloned()
            .collect();
        let directory = dir.name().to_string();
        let key = address.key();
        let now = self.now();
        // Ownership of what this step publishes, even of values an interrupted run wrote.
        let owned: Vec<ManagedCert> = add
            .iter()
            .map(|c| ManagedCert {
                directory: directory.clone(),
                address: key.clone(),
                thumbprint: thumbprint(c),
                certificate: c.clone(),
                published: now,
                confirmed: before.contains(c),
                superseded: None,
            })
            .collect();
        if to_add.is_empty() && to_remove.is_empty() {
            if !owned.is_empty() {
                self.keep_managed(store, &owned).await?;
            }
            return Ok(Finish::Now(Did {
                added: Vec::new(),
                removed: Vec::new(),
            }));
        }
        let detail = serde_json::json!({
            "add": to_add.iter().map(|c| thumbprint(c)).collect::<Vec<_>>(),
            "remove": to_remove.iter().map(thumbprint).collect::<Vec<_>>(),
        })
        .to_string();
        // Both before the write, in either order: a run killed between them leaves a step open
        // in the journal, or an unconfirmed ownership row, and a re-run handles either.
        let (started, owned) = tokio::join!(
            self.journal(store, run, step, "start", detail),
            self.keep_managed(store, &owned)
        );
        started?;
        let owned = owned?;
        let mut intended: Vec<CertDer> = before
            .iter()
            .filter(|c| !to_remove.contains(c))
            .cloned()
            .collect();
        for c in &to_add {
            intended.push((*c).clone());
        }
        let written = async {
            match to_add.split_first() {
                Some((first, rest)) => {
                    dir.publish_removing(address, kind, first, PublishMode::Merge, &to_remove)
                        .await?;
                    for c in rest {
                        dir.publish(address, kind, c, PublishMode::Merge).await?;
                    }
                }
                None => {
                    for c in &to_remove {
                        dir.unpublish(address, c).await?;
                    }
                }
            }
            Ok::<_, smimekit_core::DirectoryError>(())
        }
        .await
        .map_err(ServiceError::from);
        let change = Change::new("apply", &directory, address, &before);
        if written.is_err() {
            self.record_write(&change, None, None, &written).await?;
            written?;
        }
        let back = dir.recipient(address).await?;
        let (after_kind, after) = match back {
            Some(r) => (Some(r.kind), r.certificates),
            None => (None, Vec::new()),
        };
        // Others may write beside us: what we added must be there and what we removed gone.
        let missing: Vec<String> = to_add
            .iter()
            .filter(|c| !after.contains(c))
            .map(|c| thumbprint(c))
            .collect();
        let lingering: Vec<String> = to_remove
            .iter()
            .filter(|c| after.contains(c))
            .map(thumbprint)
            .collect();
        let checked = if missing.is_empty() && lingering.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::new(
                ErrorKind::Key,
                format!(
                    "directory {directory}: read-back for {address} contradicts the write (missing {}; still there {})",
                    if missing.is_empty() {
                        "none".into()
                    } else {
                        missing.join(", ")
                    },
                    if lingering.is_empty() {
                        "none".into()
                    } else {
                        lingering.join(", ")
                    },
                ),
            ))
        };
        if checked.is_err() {
            self.record_write(
                &change,
                Some((after_kind, after.as_slice())),
                to_add.first().copied(),
                &checked,
            )
            .await?;
            checked?;
        }
        // The write is done and read back: what is left is the store's record of it (audit,
        // inventory, ownership confirmed, the journal's `done`), which waits for no directory.
        // It goes on beside the next steps, so this directory's place is free for the next
        // one at once (a killed run may lose these rows as it could before: the step stays
        // open in the journal and the next run re-reads and confirms it).
        let record = Record {
            svc: self.clone(),
            store: store.clone(),
            run: run.to_string(),
            step: step.to_string(),
            directory,
            address: address.clone(),
            before,
            after_kind,
            after,
            added: to_add.into_iter().cloned().collect(),
            removed: to_remove,
            owned,
        };
        match records.clone().acquire_owned().await {
            Ok(place) => {
                let (answer, later) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let recorded = record.finish().await;
                    drop(place);
                    // The report may be gone (the run aborted): nobody to tell.
                    let _ = answer.send(recorded);
                });
                Ok(Finish::Later(later))
            }
            // The semaphore is never closed; were it, the records are written here.
            Err(_) => Ok(Finish::Now(record.finish().await?)),
        }
    }

    /// Records ownership (rows of one directory and address), keeping the first publication
    /// time of values already recorded; returns the rows as recorded.
    async fn keep_managed(
        &self,
        store: &Arc<dyn Store>,
        rows: &[ManagedCert],
    ) -> Result<Vec<ManagedCert>, ServiceError> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let known = store
            .managed_for(&first.directory, &first.address)
            .await
            .map_err(store_error)?;
        let rows: Vec<ManagedCert> = rows
            .iter()
            .map(|r| {
                match known
                    .iter()
                    .find(|k| k.address == r.address && k.thumbprint == r.thumbprint)
                {
                    Some(k) => ManagedCert {
                        published: k.published,
                        confirmed: k.confirmed || r.confirmed,
                        superseded: k.superseded,
                        ..r.clone()
                    },
                    None => r.clone(),
                }
            })
            .collect();
        store.managed_put(&rows).await.map_err(store_error)?;
        Ok(rows)
    }

    async fn apply_trust(
        &self,
        store: &Arc<dyn Store>,
        dir: &dyn Directory,
        run: &str,
        step: &str,
        chain: &[CertDer],
    ) -> Result<Did, ServiceError> {
        let before = dir.trust_chain().await?;
        let same = before.len() == chain.len() && chain.iter().all(|c| before.contains(c));
        if same {
            return Ok(Did {
                added: Vec::new(),
                removed: Vec::new(),
            });
        }
        self.journal(store, run, step, "start", trust_key(chain))
            .await?;
        let outcome = dir.set_trust_chain(chain).await.map_err(ServiceError::from);
        let after = match &outcome {
            Ok(after) => after.clone(),
            Err(_) => Vec::new(),
        };
        let checked = match outcome {
            Ok(after) if after.len() == chain.len() && chain.iter().all(|c| after.contains(c)) => {
                Ok(())
            }
            Ok(_) => Err(ServiceError::new(
                ErrorKind::Key,
                format!(
                    "directory {}: the trust chain read back differs from the one uploaded",
                    dir.name()
                ),
            )),
            Err(e) => Err(e),
        };
        let result = match &checked {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        self.audit_change(
            "apply-trust",
            dir.name(),
            "",
            before.iter().map(thumbprint).collect(),
            after.iter().map(thumbprint).collect(),
            result,
        )
        .await?;
        checked?;
        self.journal(store, run, step, "done", String::new())
            .await?;
        Ok(Did {
            added: chain
                .iter()
                .filter(|c| !before.contains(c))
                .map(thumbprint)
                .collect(),
            removed: before
                .iter()
                .filter(|c| !chain.contains(c))
                .map(thumbprint)
                .collect(),
        })
    }

    /// Issues (or renews) a person's certificate with a new key and hands the PKCS#12 over;
    /// returns the certificate and where it went.
    async fn apply_issue(
        &self,
        req: &ApplyRequest,
        step: &super::plan::IssueStep,
    ) -> Result<(CertDer, String), ServiceError> {
        let deliver = req.deliver.as_ref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Invalid,
                format!(
                    "{}: a certificate is to be {} but there is nowhere to deliver its key",
                    step.address,
                    if step.action == "renew" {
                        "renewed"
                    } else {
                        "issued"
                    }
                ),
            )
            .for_field("deliver")
        })?;
        let mut raw = [0u8; 18];
        self.engine()
            .primitives
            .fill_random(&mut raw)
            .map_err(|e| ServiceError::new(ErrorKind::Internal, format!("random: {e}")))?;
        use base64::Engine as _;
        let password = smimekit_core::Secret::from(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        );
        let result = self
            .ca_issue(&crate::CaIssueRequest {
                dir: std::path::PathBuf::from(&step.ca),
                ca_secret: req.ca_secret.clone(),
                source: crate::IssueSource::Generate {
                    email: step.address.clone(),
                    key_type: crate::CaKeyType::Rsa2048,
                    p12_name: format!("{}.p12", step.address),
                    p12_secret: password.clone(),
                    legacy: false,
                },
                days: crate::DEFAULT_LEAF_DAYS,
                renew: true,
            })
            .await?;
        let pkcs12 = result.pkcs12.clone().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Internal,
                "the CA returned no PKCS#12 for a new key",
            )
        })?;
        let delivered = deliver.deliver(&Delivery {
            address: step.address.clone(),
            pkcs12,
            password,
        });
        let replaced: Vec<String> = step.replaces.iter().map(|c| c.thumbprint.clone()).collect();
        self.audit_change(
            &format!("apply-{}", step.action),
            "",
            &step.address,
            replaced,
            vec![result.sha1_thumbprint.clone()],
            match &delivered {
                Ok(to) => format!("ok: key delivered to {to}"),
                Err(e) => format!(
                    "failed: issued serial {} but the key was not delivered: {e}",
                    result.serial
                ),
            },
        )
        .await?;
        let delivered = delivered.map_err(|e| {
            e.context(format!(
                "certificate serial {} was issued for {} (revoke it with the CA)",
                result.serial, step.address
            ))
        })?;
        Ok((result.der, delivered))
    }
}

/// A future of [`join_all`].
type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Runs `futures` together on the calling task; their outputs in their order.
async fn join_all<T>(futures: Vec<Pending<'_, T>>) -> Vec<T> {
    let mut pending: Vec<Option<Pending<'_, T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(f) = slot
                && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *out = Some(v);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// A plan written as scripts for an administrator to run (`apply --emit-powershell`).
#[derive(Clone, Debug, Serialize)]
pub struct ApplyEmit {
    /// The PowerShell 7 script of the directories that have an emitter (Exchange Online).
    #[serde(skip)]
    pub powershell: String,
    /// The LDAP directories' changes as LDIF (`ldapmodify -f`), when the plan has some.
    #[serde(skip)]
    pub ldif: Option<String>,
    /// One line per operation, for people.
    pub operations: Vec<String>,
}

impl Service {
    /// The plan as a PowerShell script (directories with a script emitter) and an LDIF file
    /// (LDAP directories, whose entries' DNs are read from the directory); changes nothing.
    pub async fn apply_emit(&self, plan: &Plan) -> Result<ApplyEmit, ServiceError> {
        use smimekit_core::plugin::ScriptOperation;
        let mut scripts = Vec::new();
        let mut operations = Vec::new();
        let mut ldif = String::new();
        for d in &plan.directories {
            let kind = self
                .config
                .directories
                .iter()
                .find(|c| c.name == d.name)
                .map(|c| c.kind.clone())
                .unwrap_or_default();
            let has_emitter = smimekit_core::plugin::script_emitters()
                .any(|e| e.language == "powershell" && e.kind == kind);
            let mut ops = Vec::new();
            if let Some(t) = &d.trust {
                let chain = t
                    .chain
                    .iter()
                    .map(|th| plan.certificate(th))
                    .collect::<Result<Vec<_>, _>>()?;
                ops.push(ScriptOperation::SetTrustChain { chain });
            }
            for p in &d.people {
                let address = crate::directory::parse_address(&p.address)?;
                for c in &p.changes {
                    match c {
                        ChangeAction::Add { certificate } => {
                            ops.push(ScriptOperation::AddCertificate {
                                address: address.clone(),
                                certificate: plan.certificate(&certificate.thumbprint)?,
                                replace: false,
                                prune_expired: false,
                                create_contact: p.create_contact,
                            });
                        }
                        ChangeAction::Remove { certificate, .. } => {
                            ops.push(ScriptOperation::RemoveCertificate {
                                address: address.clone(),
                                thumbprint: certificate.thumbprint.clone(),
                            });
                        }
                    }
                }
            }
            if ops.is_empty() {
                continue;
            }
            if has_emitter {
                let emitted = self.emit_powershell(Some(&d.name), &ops)?;
                operations.extend(
                    emitted
                        .operations
                        .into_iter()
                        .map(|o| format!("{}: {o}", d.name)),
                );
                scripts.push(emitted.script);
            } else if kind == "ldap" {
                let (text, lines) = self.ldif_for(d, plan).await?;
                ldif.push_str(&text);
                operations.extend(lines);
            } else {
                return Err(ServiceError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "directory {} (kind {kind}): its changes cannot be written as a script; apply them instead",
                        d.name
                    ),
                ));
            }
        }
        if !plan.issue.is_empty() {
            return Err(ServiceError::new(
                ErrorKind::Unsupported,
                "the plan issues or renews certificates, which a script cannot do (the CA's key is \
                 used and a new key delivered): apply it instead",
            ));
        }
        Ok(ApplyEmit {
            powershell: scripts.join("\n"),
            ldif: (!ldif.is_empty()).then_some(ldif),
            operations,
        })
    }

    /// An LDAP directory's changes as LDIF: `userCertificate;binary` values added and
    /// deleted on each entry (found by its address in the directory).
    async fn ldif_for(
        &self,
        d: &super::plan::DirectoryPlan,
        plan: &Plan,
    ) -> Result<(String, Vec<String>), ServiceError> {
        use base64::Engine as _;
        let dir = self.open_directory(&d.name).await?;
        let values = dir.recipient_values().await?.unwrap_or_default();
        let b64 = |c: &CertDer| base64::engine::general_purpose::STANDARD.encode(c.as_bytes());
        let mut out = format!(
            "# smimekit apply: directory {} (plan of {}, {})\n",
            d.name, plan.file, plan.created
        );
        let mut lines = Vec::new();
        for p in &d.people {
            let Some(v) = values.iter().find(|v| {
                v.recipient
                    .address
                    .as_str()
                    .eq_ignore_ascii_case(&p.address)
                    || v.aliases.iter().any(|a| a.eq_ignore_ascii_case(&p.address))
            }) else {
                out.push_str(&format!(
                    "# {}: no entry in the directory; create it first (not scripted)\n",
                    ldif_comment(&p.address)
                ));
                lines.push(format!("{}: {}: no entry, skipped", d.name, p.address));
                continue;
            };
            let Some(dn) = &v.location else { continue };
            out.push_str(&format!(
                "\ndn:: {}\nchangetype: modify\n",
                base64::engine::general_purpose::STANDARD.encode(dn)
            ));
            for c in &p.changes {
                match c {
                    ChangeAction::Add { certificate } => {
                        let der = plan.certificate(&certificate.thumbprint)?;
                        out.push_str(&format!(
                            "add: userCertificate;binary\nuserCertificate;binary:: {}\n-\n",
                            b64(&der)
                        ));
                        lines.push(format!(
                            "{}: {}: add {}",
                            d.name, p.address, certificate.thumbprint
                        ));
                    }
                    ChangeAction::Remove { certificate, .. } => {
                        let der = plan.certificate(&certificate.thumbprint)?;
                        out.push_str(&format!(
                            "delete: userCertificate;binary\nuserCertificate;binary:: {}\n-\n",
                            b64(&der)
                        ));
                        lines.push(format!(
                            "{}: {}: remove {}",
                            d.name, p.address, certificate.thumbprint
                        ));
                    }
                }
            }
        }
        Ok((out, lines))
    }
}

/// A value inside an LDIF comment line: one line, printable.
fn ldif_comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
