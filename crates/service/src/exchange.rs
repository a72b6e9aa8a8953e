//! Exchange Online extras on top of the directory commands: bulk publishing
//! (`publish --from FILE`), PowerShell emission (`--emit-powershell FILE`: the same
//! operations as a PowerShell 7 script for admins who must run them themselves), and the
//! organisation's OWA S/MIME settings (`exchange config show|set`) with lint warnings.
//!
//! A bulk run loses no update to throttling: an item the directory is too busy for (its
//! request ran out of tries, or a write's answer was lost) goes back to the end of the queue,
//! to be tried again after the directory's Retry-After, with a fresh read first, so that no
//! certificate is added twice. Only when the run's time budget is spent are the items left
//! reported as not done; re-running the same list finishes them (items done are no-ops).
//! The directory paces its own requests (the Exchange transport shrinks its request slots
//! while the service throttles). A bulk run is a [`Job`]: its events say how many items are
//! done; cancelled, it starts no further item and reports the rest not done.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use smimekit_core::plugin::{ScriptEmitter, ScriptOperation, ScriptRequest};
use smimekit_core::{Directory, ProbeStatus};

use crate::deploy::DeploySource;
use crate::directory::{PublishRequest, parse_address};
use crate::jobs::{Job, JobContext, JobOutput};
use crate::runner::{human, requeue_wait};
use crate::{ErrorKind, Named, Service, ServiceError};

/// How long a bulk run may go on retrying the items a directory throttles, unless the request
/// or the directory's `bulk_time_budget_secs` says otherwise.
pub const DEFAULT_BULK_TIME_BUDGET: Duration = Duration::from_secs(3600);

/// The list of a bulk run, as data: what the app read (`publish --from FILE` reads the file or
/// lists the folder).
#[derive(Debug, Clone)]
pub enum BulkList {
    /// A list's text, named (`list.csv`: messages name it, and a name ending `.json` or a text
    /// starting with `[` or `{` is JSON): CSV (`address,certificate`), or JSON
    /// (`[{"address","certificate"}]` or `{"address": "certificate"}`). Certificate paths are
    /// as written: relative ones are read relative to the list through the request's `files`.
    Text(Named<String>),
    /// A folder of certificate files named by address (`alice@example.org.pem`): its name and
    /// the names of the files in it (others are skipped), read through the request's `files`.
    Folder(Named<Vec<String>>),
}

impl Default for BulkList {
    fn default() -> Self {
        Self::Text(Named::default())
    }
}

/// `smimekit publish --from FILE`.
#[derive(Clone)]
pub struct BulkPublishRequest {
    pub list: BulkList,
    /// Reads the certificate files the list names (relative to the list's folder, or to the
    /// folder listed), each when its item is tried, so that a run of any length holds one
    /// certificate per item in flight. The app implements it (the CLI over the file system).
    pub files: Arc<dyn DeploySource>,
    pub directory: Option<String>,
    pub contact: bool,
    pub replace: bool,
    pub prune_expired: bool,
    pub force: bool,
    /// Items in flight at once (the directory limits its own HTTP concurrency too).
    pub parallel: usize,
    /// How long the run may go on retrying items the directory throttles: default the
    /// directory's `bulk_time_budget_secs`, else [`DEFAULT_BULK_TIME_BUDGET`].
    pub time_budget: Option<Duration>,
}

impl BulkPublishRequest {
    /// A request for `list` with certificates read through `files`, and the defaults: the first
    /// directory, no contacts, nothing replaced or pruned, one item at a time, the directory's
    /// time budget.
    pub fn new(list: BulkList, files: Arc<dyn DeploySource>) -> Self {
        Self {
            list,
            files,
            directory: None,
            contact: false,
            replace: false,
            prune_expired: false,
            force: false,
            parallel: 1,
            time_budget: None,
        }
    }

    /// The list's name (the file or folder), for messages.
    fn list_name(&self) -> &str {
        match &self.list {
            BulkList::Text(t) => &t.name,
            BulkList::Folder(f) => &f.name,
        }
    }
}

impl std::fmt::Debug for BulkPublishRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkPublishRequest")
            .field("list", &self.list_name())
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// One line of the bulk report.
#[derive(Debug, Clone, Serialize)]
pub struct BulkItem {
    pub address: String,
    pub certificate: PathBuf,
    /// `published` (something changed), `unchanged` (already there: also when an earlier
    /// try of this run made the change but its answer or read-back was lost, see `attempts`),
    /// `failed`, or `cancelled` (the run was cancelled before the item was tried).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tries: one, plus one each time the item went back to the queue (0: never tried).
    pub attempts: u32,
    /// Failed because the run's time budget was spent while the directory was busy: not a
    /// problem of the item, re-running finishes it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_time: bool,
}

/// The JSON report of a bulk run.
#[derive(Debug, Clone, Serialize)]
pub struct BulkReport {
    pub directory: String,
    pub total: usize,
    pub published: usize,
    pub unchanged: usize,
    /// Items not done, whatever the cause (`out_of_time` of them for the time budget).
    pub failed: usize,
    /// Items not done because the time budget was spent.
    pub out_of_time: usize,
    /// Items not tried because the run was cancelled (not counted in `failed`).
    pub cancelled: usize,
    /// How many times an item went back to the end of the queue because the directory was busy.
    pub requeued: usize,
    pub time_budget_secs: u64,
    pub seconds: f64,
    /// The addresses of the items not done, in list order: re-running the same list
    /// finishes them (items done are then no-ops).
    pub not_done: Vec<String>,
    pub items: Vec<BulkItem>,
}

/// One bulk item, queued.
struct Pending {
    index: usize,
    address: String,
    /// As the list names it (read through the request's `files`).
    certificate: PathBuf,
    attempts: u32,
    /// Not to be tried before (the directory's Retry-After).
    ready_at: Option<tokio::time::Instant>,
    /// Why the last try did not finish.
    last_busy: Option<String>,
}

/// How one try of a bulk item ended.
enum Outcome {
    Done(crate::directory::PublishResult),
    Failed(String),
    /// The directory was busy: try again later.
    Busy {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The time budget was spent before (`started: false`) or during the try.
    OutOfTime {
        started: bool,
    },
    /// The run was cancelled before the try started.
    Cancelled,
}

/// Why an item was not done when the run was cancelled.
fn cancelled(last: Option<&str>) -> String {
    format!(
        "not done: the run was cancelled before it was tried{}; re-run to finish it",
        last.map(|l| format!(" again (last try: {l})"))
            .unwrap_or_default()
    )
}

/// A certificate file a bulk list names, read through the app's reader on the blocking pool
/// and named as the reader resolves it (the CLI: the file's absolute path).
async fn read_certificate_file(
    files: &Arc<dyn DeploySource>,
    path: &Path,
) -> Result<Named<Vec<u8>>, ServiceError> {
    let shown = files.resolve(path);
    let (reader, file) = (files.clone(), path.to_path_buf());
    let data = crate::keys::blocking(move || reader.read(&file))
        .await?
        .map_err(|e| ServiceError::io(&shown, e))?;
    Ok(Named::new(shown.display().to_string(), data))
}

/// A PowerShell script doing what the service would do (`--emit-powershell`), for the caller
/// to save or show.
#[derive(Debug, Clone, Serialize)]
pub struct EmitResult {
    /// The PowerShell 7 script.
    #[serde(skip)]
    pub script: String,
    /// One line per operation the script performs.
    pub operations: Vec<String>,
}

/// `smimekit exchange probe`: what the read-only self-test found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub directory: String,
    pub checks: Vec<ProbeLine>,
    /// Configuration lines the findings suggest for `[directory.NAME]`.
    pub suggestions: Vec<String>,
    /// No check failed.
    pub passed: bool,
}

/// One check of `exchange probe`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeLine {
    pub name: String,
    /// `passed`, `warning`, `failed` or `skipped`.
    pub status: &'static str,
    pub detail: String,
}

/// `smimekit login`.
#[derive(Debug, Clone, Serialize)]
pub struct LoginResult {
    pub directory: String,
    /// How the directory signed in (`signed in to tenant …`).
    pub status: String,
    /// The interactive sign-in this login went through, if any (already shown to the
    /// subscribers of [`Service::sign_in_challenges`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<smimekit_core::SignInChallenge>,
}

/// `smimekit exchange config show|set`.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSettingsResult {
    pub directory: String,
    pub settings: Vec<(String, String)>,
    /// Risky values (weak algorithms, CRL checks off…).
    pub warnings: Vec<String>,
}

fn usage(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::Invalid, msg)
}

const CERT_EXTENSIONS: &[&str] = &["pem", "cer", "crt", "der", "p7b", "p7c"];

/// The (address, certificate file) pairs of a bulk list, the files as the list names them.
pub fn bulk_items(list: &BulkList) -> Result<Vec<(String, PathBuf)>, ServiceError> {
    let text = match list {
        BulkList::Folder(folder) => {
            let mut out = Vec::new();
            for name in &folder.data {
                let path = Path::new(name);
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                if !CERT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
                    continue;
                }
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if stem.contains('@') {
                    out.push((stem.to_string(), path.to_path_buf()));
                }
            }
            out.sort();
            return Ok(out);
        }
        BulkList::Text(text) => text,
    };
    let source = &text.name;
    let rel = |p: &str| PathBuf::from(p.trim());
    let is_json = Path::new(source)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.data.trim_start().starts_with(['[', '{']);
    if is_json {
        let v: serde_json::Value =
            serde_json::from_str(&text.data).map_err(|e| usage(format!("{source}: {e}")))?;
        let mut out = Vec::new();
        match v {
            serde_json::Value::Object(m) => {
                for (a, c) in m {
                    let c = c.as_str().ok_or_else(|| {
                        usage(format!("{source}: {a}: the certificate must be a path"))
                    })?;
                    out.push((a, rel(c)));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, it) in items.iter().enumerate() {
                    let a = it["address"].as_str();
                    let c = it["certificate"].as_str().or_else(|| it["cert"].as_str());
                    match (a, c) {
                        (Some(a), Some(c)) => out.push((a.to_string(), rel(c))),
                        _ => {
                            return Err(usage(format!(
                                "{source}: item {i} needs \"address\" and \"certificate\""
                            )));
                        }
                    }
                }
            }
            _ => {
                return Err(usage(format!("{source}: expected an array or an object")));
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for (n, line) in text.data.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((a, c)) = line.split_once([',', ';', '\t']) else {
            return Err(usage(format!(
                "{source}: line {}: expected address,certificate",
                n + 1
            )));
        };
        let a = a.trim().trim_matches('"');
        if n == 0 && !a.contains('@') {
            continue; // a header line
        }
        out.push((a.to_string(), rel(c.trim().trim_matches('"'))));
    }
    Ok(out)
}

impl Service {
    /// The PowerShell emitter for directory `name` (else the first configured directory whose
    /// kind has one), with the directory's name and configuration: the one choice the service
    /// makes; what the script says is the directory plugin's (Exchange Online's). A directory
    /// that is not configured gets the first emitter registered and no configuration.
    fn powershell_emitter(
        &self,
        name: Option<&str>,
    ) -> Result<(String, String, &'static ScriptEmitter), ServiceError> {
        let emitter_for = |kind: &str| {
            smimekit_core::plugin::script_emitters()
                .find(|e| e.language == "powershell" && e.kind == kind)
        };
        let configured = match name {
            Some(n) => self.config.directories.iter().find(|d| d.name == n),
            None => self
                .config
                .directories
                .iter()
                .find(|d| emitter_for(&d.kind).is_some()),
        };
        if let Some(d) = configured {
            let e = emitter_for(&d.kind).ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "directory {} ({}): no PowerShell script can be written for this kind of directory",
                        d.name, d.kind
                    ),
                )
            })?;
            return Ok((d.name.clone(), d.settings.clone(), e));
        }
        let e = smimekit_core::plugin::script_emitters()
            .find(|e| e.language == "powershell")
            .ok_or_else(|| {
                ServiceError::new(ErrorKind::Unsupported, "no PowerShell emitter is linked")
            })?;
        Ok((name.unwrap_or("exchange").to_string(), String::new(), e))
    }

    /// Writes `operations` as the PowerShell script of directory `directory`'s kind (the
    /// `--emit-powershell` of publish, trust push and apply). What the directory would refuse
    /// (Set-SmimeConfig's refusals of an SST) is refused here too, as a key error.
    pub fn emit_powershell(
        &self,
        directory: Option<&str>,
        operations: &[ScriptOperation],
    ) -> Result<EmitResult, ServiceError> {
        let (name, settings, emitter) = self.powershell_emitter(directory)?;
        let script = (emitter.emit)(&ScriptRequest {
            directory: &name,
            config: &settings,
            operations,
            now: self.now(),
        })
        .map_err(|e| ServiceError::new(ErrorKind::Key, e.to_string()).with_source(e))?;
        Ok(EmitResult {
            script: script.text,
            operations: script.operations,
        })
    }

    /// `publish --emit-powershell F` (one or many): the script instead of API calls.
    pub fn emit_powershell_publish(
        &self,
        items: &[PublishRequest],
    ) -> Result<EmitResult, ServiceError> {
        let mut operations = Vec::new();
        for req in items {
            let address = parse_address(&req.address)?;
            let certificate =
                self.publishable_certificate(&req.certificate, &address, req.force)?;
            operations.push(ScriptOperation::AddCertificate {
                address,
                certificate,
                replace: req.replace,
                prune_expired: req.prune_expired,
                create_contact: req.contact,
            });
        }
        self.emit_powershell(
            items.first().and_then(|i| i.directory.as_deref()),
            &operations,
        )
    }

    /// `trust push --emit-powershell F`: Set-SmimeConfig with the SST built from `files`,
    /// refused here for what the service would refuse (expired, > 70,000 bytes).
    pub fn emit_powershell_trust(
        &self,
        directory: Option<&str>,
        files: &[Named<Vec<u8>>],
    ) -> Result<EmitResult, ServiceError> {
        let chain = self.trust_chain_from_files(files)?;
        self.emit_powershell(directory, &[ScriptOperation::SetTrustChain { chain }])
    }

    /// `publish --from FILE`, as a job (`bulk-publish`): every item through one opened
    /// directory, bounded parallelism, each checked by reading back; failures are reported per
    /// item, never silently dropped. Items the directory is busy for go back to the end of the
    /// queue until the time budget is spent (see the module documentation). An event follows
    /// each finished item; cancelled, the run finishes the items in flight and reports the
    /// others `cancelled`.
    pub fn bulk_publish(&self, req: BulkPublishRequest) -> Job<BulkReport> {
        self.spawn_job("bulk-publish", move |svc, ctx| async move {
            svc.bulk_run(&req, &ctx).await
        })
    }

    async fn bulk_run(
        &self,
        req: &BulkPublishRequest,
        ctx: &JobContext,
    ) -> Result<BulkReport, ServiceError> {
        let items = bulk_items(&req.list)?;
        let dir: Arc<dyn Directory> = self.target_directory(req.directory.as_deref()).await?;
        let budget = req
            .time_budget
            .or_else(|| {
                self.config
                    .directories
                    .iter()
                    .find(|d| d.name == dir.name())
                    .and_then(|d| d.bulk_time_budget)
            })
            .unwrap_or(DEFAULT_BULK_TIME_BUDGET);
        let start = tokio::time::Instant::now();
        let deadline = start + budget;
        let total = items.len();
        let parallel = req.parallel.clamp(1, 64);
        let mut queue: VecDeque<Pending> = items
            .into_iter()
            .enumerate()
            .map(|(index, (address, certificate))| Pending {
                index,
                address,
                certificate,
                attempts: 0,
                ready_at: None,
                last_busy: None,
            })
            .collect();
        let mut done: Vec<Option<BulkItem>> = vec![None; total];
        let mut finished = 0;
        let mut requeued = 0;
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < parallel && !ctx.is_cancelled() {
                let Some(p) = queue.pop_front() else {
                    break;
                };
                let svc = self.clone();
                let dir = dir.clone();
                let ctx = ctx.clone();
                // The certificate is read when the item is tried (bulk lists name files).
                let one = PublishRequest {
                    address: p.address.clone(),
                    certificate: Named::default(),
                    directory: None,
                    contact: req.contact,
                    replace: req.replace,
                    prune_expired: req.prune_expired,
                    force: req.force,
                };
                let (files, file) = (req.files.clone(), p.certificate.clone());
                running.spawn(async move {
                    let outcome = svc
                        .bulk_try(
                            dir.as_ref(),
                            one,
                            (&files, &file),
                            p.ready_at,
                            deadline,
                            &ctx,
                        )
                        .await;
                    (p, outcome)
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (mut p, outcome) = joined.map_err(|e| {
                ServiceError::new(ErrorKind::Unsupported, format!("bulk task: {e}"))
            })?;
            if !matches!(
                outcome,
                Outcome::OutOfTime { started: false } | Outcome::Cancelled
            ) {
                p.attempts += 1;
            }
            let item = |status, error: Option<String>, out_of_time| BulkItem {
                address: p.address.clone(),
                certificate: req.files.resolve(&p.certificate),
                status,
                added: Vec::new(),
                removed: Vec::new(),
                error,
                attempts: p.attempts,
                out_of_time,
            };
            let spent = |when: &str, last: Option<&str>| {
                format!(
                    "not done: the time budget of {} was spent {when}{}; re-run to finish it",
                    human(budget),
                    last.map(|l| format!(" (last try: {l})"))
                        .unwrap_or_default()
                )
            };
            let finished_item = match outcome {
                Outcome::Done(r) => BulkItem {
                    status: if r.added.is_empty() && r.removed.is_empty() {
                        "unchanged"
                    } else {
                        "published"
                    },
                    added: r
                        .added
                        .iter()
                        .map(|c| c.cert.sha1_thumbprint.clone())
                        .collect(),
                    removed: r
                        .removed
                        .iter()
                        .map(|c| c.cert.sha1_thumbprint.clone())
                        .collect(),
                    ..item("", None, false)
                },
                Outcome::Failed(message) => item("failed", Some(message), false),
                Outcome::Busy {
                    message,
                    retry_after,
                } => {
                    let ready = tokio::time::Instant::now()
                        + retry_after.unwrap_or_else(|| requeue_wait(p.attempts));
                    if ready < deadline && !ctx.is_cancelled() {
                        p.ready_at = Some(ready);
                        p.last_busy = Some(message);
                        queue.push_back(p);
                        requeued += 1;
                        continue;
                    }
                    if ctx.is_cancelled() {
                        item("cancelled", Some(cancelled(Some(&message))), false)
                    } else {
                        item("failed", Some(spent("", Some(&message))), true)
                    }
                }
                Outcome::Cancelled => {
                    item("cancelled", Some(cancelled(p.last_busy.as_deref())), false)
                }
                Outcome::OutOfTime { started } => item(
                    "failed",
                    Some(spent(
                        if started {
                            "while it was being published"
                        } else if p.attempts == 0 {
                            "before it could be tried"
                        } else {
                            "before it could be tried again"
                        },
                        p.last_busy.as_deref(),
                    )),
                    true,
                ),
            };
            finished += 1;
            ctx.event("publish", finished, total, Some(&finished_item.address));
            done[p.index] = Some(finished_item);
        }
        // Cancelled: the items never started are reported, in list order, not done.
        for p in queue {
            done[p.index] = Some(BulkItem {
                certificate: req.files.resolve(&p.certificate),
                address: p.address,
                status: "cancelled",
                added: Vec::new(),
                removed: Vec::new(),
                error: Some(cancelled(p.last_busy.as_deref())),
                attempts: p.attempts,
                out_of_time: false,
            });
        }
        // Every item was finished or cancelled: the loop ends only when the tasks are done and
        // the queue is empty or the run cancelled.
        let items: Vec<BulkItem> = done.into_iter().flatten().collect();
        let count = |s: &str| items.iter().filter(|i| i.status == s).count();
        Ok(BulkReport {
            directory: dir.name().to_string(),
            total,
            published: count("published"),
            unchanged: count("unchanged"),
            failed: count("failed"),
            out_of_time: items.iter().filter(|i| i.out_of_time).count(),
            cancelled: count("cancelled"),
            requeued,
            time_budget_secs: budget.as_secs(),
            seconds: start.elapsed().as_secs_f64(),
            not_done: items
                .iter()
                .filter(|i| i.status == "failed" || i.status == "cancelled")
                .map(|i| i.address.clone())
                .collect(),
            items,
        })
    }

    /// One try of a bulk item, not before `ready_at` and not past `deadline`; none once the
    /// run is cancelled (a try under way is finished: cancelling stops between items).
    async fn bulk_try(
        &self,
        dir: &dyn Directory,
        one: PublishRequest,
        (files, file): (&Arc<dyn DeploySource>, &Path),
        ready_at: Option<tokio::time::Instant>,
        deadline: tokio::time::Instant,
        ctx: &JobContext,
    ) -> Outcome {
        if let Some(t) = ready_at {
            tokio::select! {
                () = tokio::time::sleep_until(t.min(deadline)) => {}
                () = ctx.cancelled() => return Outcome::Cancelled,
            }
        }
        if ctx.is_cancelled() {
            return Outcome::Cancelled;
        }
        if tokio::time::Instant::now() >= deadline {
            return Outcome::OutOfTime { started: false };
        }
        let one = match read_certificate_file(files, file).await {
            Ok(certificate) => PublishRequest { certificate, ..one },
            Err(e) => return Outcome::Failed(e.message),
        };
        // Stopping a publish half-way is safe: the next run reads before it writes.
        match tokio::time::timeout_at(deadline, self.publish_to(dir, &one)).await {
            Err(_) => Outcome::OutOfTime { started: true },
            Ok(Ok(r)) => Outcome::Done(r),
            Ok(Err(e)) => match e.busy() {
                Some(b) => Outcome::Busy {
                    message: e.message,
                    retry_after: b.retry_after,
                },
                None => Outcome::Failed(e.message),
            },
        }
    }

    /// The bulk items as publish requests, their certificate files read (for
    /// `--emit-powershell` with `--from`: the script holds every certificate anyway).
    pub async fn bulk_requests(
        &self,
        req: &BulkPublishRequest,
    ) -> Result<Vec<PublishRequest>, ServiceError> {
        let mut out = Vec::new();
        for (address, file) in bulk_items(&req.list)? {
            let certificate = read_certificate_file(&req.files, &file).await?;
            out.push(PublishRequest {
                address,
                certificate,
                directory: req.directory.clone(),
                contact: req.contact,
                replace: req.replace,
                prune_expired: req.prune_expired,
                force: req.force,
            });
        }
        Ok(out)
    }

    /// `smimekit exchange probe`: the directory's read-only self-test (sign-in, the cmdlets
    /// the app may run, one mailbox read in both renderings, which byte encodings a
    /// `-WhatIf` write accepts), for an admin to run first against a real tenant.
    pub async fn exchange_probe(
        &self,
        directory: Option<&str>,
        address: Option<&str>,
    ) -> Result<ProbeResult, ServiceError> {
        let address = address.map(parse_address).transpose()?;
        // Opened afresh, not kept: the probe observes the sign-in and the route from scratch.
        let name = match directory {
            Some(n) => n.to_string(),
            None => self.target_directory(None).await?.name().to_string(),
        };
        let dir = self.open_directory_fresh(&name).await?;
        let report = dir.probe(address.as_ref()).await?;
        let checks: Vec<ProbeLine> = report
            .checks
            .into_iter()
            .map(|c| ProbeLine {
                name: c.name,
                status: match c.status {
                    ProbeStatus::Passed => "passed",
                    ProbeStatus::Warning => "warning",
                    ProbeStatus::Failed => "failed",
                    ProbeStatus::Skipped => "skipped",
                },
                detail: c.detail,
            })
            .collect();
        Ok(ProbeResult {
            directory: dir.name().to_string(),
            passed: checks.iter().all(|c| c.status != "failed"),
            checks,
            suggestions: report.suggestions,
        })
    }

    /// `smimekit login --directory NAME`: signs in now (device code for delegated auth: the
    /// challenge goes to [`Service::sign_in_challenges`] while the sign-in waits, and comes
    /// back in the result). The directory stays signed in for later calls on this service.
    pub async fn login(&self, directory: Option<&str>) -> Result<LoginResult, ServiceError> {
        let dir = self.target_directory(directory).await?;
        let _ = self.take_sign_in(dir.name());
        let status = dir.connect().await?;
        let sign_in = self.take_sign_in(dir.name());
        Ok(LoginResult {
            directory: dir.name().to_string(),
            status,
            sign_in,
        })
    }

    /// `exchange config show`.
    pub async fn org_settings(
        &self,
        directory: Option<&str>,
    ) -> Result<OrgSettingsResult, ServiceError> {
        let dir = self.target_directory(directory).await?;
        let settings = dir.org_settings().await?;
        Ok(OrgSettingsResult {
            directory: dir.name().to_string(),
            warnings: dir.settings_warnings(&settings),
            settings,
        })
    }

    /// `exchange config set NAME=VALUE…`: writes, reads back, and lints.
    pub async fn set_org_settings(
        &self,
        directory: Option<&str>,
        values: &[(String, String)],
    ) -> Result<OrgSettingsResult, ServiceError> {
        let dir = self.target_directory(directory).await?;
        let settings = dir.set_org_settings(values).await?;
        for (k, v) in values {
            let back = settings
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v);
            if back.is_none_or(|b| !b.eq_ignore_ascii_case(v)) {
                return Err(ServiceError::new(
                    ErrorKind::Key,
                    format!(
                        "directory {}: read-back shows {k} = {:?}, not {v:?}",
                        dir.name(),
                        back
                    ),
                ));
            }
        }
        Ok(OrgSettingsResult {
            directory: dir.name().to_string(),
            warnings: dir.settings_warnings(&settings),
            settings,
        })
    }
}

impl JobOutput for BulkReport {
    fn outcome(&self) -> String {
        if self.cancelled > 0 {
            format!(
                "cancelled: {} of {} item(s) not done",
                self.not_done.len(),
                self.total
            )
        } else if self.failed > 0 {
            format!("failed: {} of {} item(s) not done", self.failed, self.total)
        } else {
            "ok".into()
        }
    }

    fn items(&self) -> serde_json::Value {
        serde_json::to_value(&self.items).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bulk_sources() {
        let text = |name: &str, t: &str| BulkList::Text(Named::new(name, t.to_string()));
        let items = bulk_items(&text(
            "list.csv",
            "address,certificate\na@x.org,a.pem\n\"b@x.org\";/abs/b.pem\n",
        ))
        .unwrap();
        // Paths as written: the app's reader resolves relative ones.
        assert_eq!(items[0], ("a@x.org".into(), PathBuf::from("a.pem")));
        assert_eq!(items[1].1, PathBuf::from("/abs/b.pem"));
        let items = bulk_items(&text("list.json", r#"{"c@x.org": "c.pem"}"#)).unwrap();
        assert_eq!(items[0].0, "c@x.org");
        let e = bulk_items(&text("list.csv", "a@x.org\n")).unwrap_err();
        assert_eq!(e.message, "list.csv: line 1: expected address,certificate");
        let e = bulk_items(&text("l.json", "[{\"address\": \"a@x.org\"}]")).unwrap_err();
        assert_eq!(
            e.message,
            "l.json: item 0 needs \"address\" and \"certificate\""
        );
        let folder = BulkList::Folder(Named::new(
            "certs",
            vec!["notes.txt".into(), "d@x.org.PEM".into(), "x.pem".into()],
        ));
        let items = bulk_items(&folder).unwrap();
        assert_eq!(items, [("d@x.org".into(), PathBuf::from("d@x.org.PEM"))]);
    }
}
