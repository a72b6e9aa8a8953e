//! Jobs: long operations (a bulk publish, a directory audit) run as tasks that a frontend
//! watches, cancels and awaits.
//!
//! A [`Job`] is a handle on a task spawned on the caller's tokio runtime. It gives a stream
//! of [`JobEvent`]s (what is being done, how many of how many, the current item), in the
//! order they happened; [`Job::cancel`] asks the job to stop between items (an item being
//! written is finished, none is started after; the ones left are reported not done); and
//! awaiting the handle gives the job's typed result. The CLI renders the events as a
//! progress bar; a web or TUI frontend renders the same events.
//!
//! Every job is recorded in the store (`Store::job_start`/`job_finish`: kind, actor and
//! frontend, start and end, outcome, per-item results as JSON), so frontends can list past
//! jobs ([`Service::jobs`]); without a configured store (no data folder) jobs are not
//! recorded, and a store that refuses the record is logged as a warning, never the job's
//! failure. Each job runs in a `tracing` span named `job` with its kind and record id. The
//! job runs on whether or not its handle is kept: dropping the handle does not stop it.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use serde::Serialize;
pub use smimekit_core::store::JobRecord;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::store::store_error;
use crate::{ErrorKind, Service, ServiceError};

/// One step of a job's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobEvent {
    /// What the job is doing (`publish`, `audit`).
    pub what: String,
    /// Items finished so far (done, failed or skipped), out of `total`.
    pub done: usize,
    pub total: usize,
    /// The item just finished (an address, a directory name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_item: Option<String>,
}

/// What a job's result says for its record: the outcome, and per-item results.
pub(crate) trait JobOutput {
    /// `ok`, `cancelled`, or `failed: …`.
    fn outcome(&self) -> String;
    /// Per-item results, a JSON array.
    fn items(&self) -> serde_json::Value;
}

/// A running job: its events, its cancellation, and (awaited) its result.
pub struct Job<T> {
    kind: &'static str,
    events: mpsc::UnboundedReceiver<JobEvent>,
    cancel: CancellationToken,
    record: Arc<OnceLock<i64>>,
    task: Result<tokio::task::JoinHandle<Result<T, ServiceError>>, Option<ServiceError>>,
}

impl<T> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("kind", &self.kind)
            .field("record", &self.record.get())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

/// Cancels a job from elsewhere (a signal handler, a web request), cheap to clone.
#[derive(Debug, Clone)]
pub struct JobCanceller(CancellationToken);

impl JobCanceller {
    /// Asks the job to stop between items; it still returns its result.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

impl<T> Job<T> {
    /// `bulk-publish`, `directory-audit`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The job's id in the store, once recorded (`None` before, or without a store).
    pub fn record_id(&self) -> Option<i64> {
        self.record.get().copied()
    }

    /// The next progress event, in order; `None` once the job has ended and every event
    /// was read.
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        self.events.recv().await
    }

    /// Asks the job to stop between items.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this job.
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller(self.cancel.clone())
    }
}

/// Awaiting a job gives its result.
impl<T: Send + 'static> IntoFuture for Job<T> {
    type Output = Result<T, ServiceError>;
    type IntoFuture = JobResult<T>;

    fn into_future(self) -> Self::IntoFuture {
        JobResult { task: self.task }
    }
}

/// The result of a [`Job`], as a future.
#[derive(Debug)]
pub struct JobResult<T> {
    task: Result<tokio::task::JoinHandle<Result<T, ServiceError>>, Option<ServiceError>>,
}

impl<T> Future for JobResult<T> {
    type Output = Result<T, ServiceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.task {
            Ok(handle) => Pin::new(handle).poll(cx).map(|joined| {
                joined.unwrap_or_else(|e| {
                    Err(ServiceError::new(
                        ErrorKind::Internal,
                        format!("job task: {e}"),
                    ))
                })
            }),
            Err(e) => Poll::Ready(Err(e.take().unwrap_or_else(|| {
                ServiceError::new(ErrorKind::Internal, "job polled after its end")
            }))),
        }
    }
}

/// What the job's body gets: where its events go and whether it was cancelled.
#[derive(Debug, Clone)]
pub(crate) struct JobContext {
    events: mpsc::UnboundedSender<JobEvent>,
    cancel: CancellationToken,
}

impl JobContext {
    /// Reports progress (nobody listening is fine).
    pub(crate) fn event(&self, what: &str, done: usize, total: usize, item: Option<&str>) {
        tracing::debug!(what, done, total, item, "progress");
        let _ = self.events.send(JobEvent {
            what: what.to_string(),
            done,
            total,
            current_item: item.map(String::from),
        });
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled.
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}

#[cfg(test)]
impl JobContext {
    /// A context nobody listens to, and its canceller, for tests of job bodies.
    pub(crate) fn detached() -> (Self, CancellationToken) {
        let (events, _) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        (
            Self {
                events,
                cancel: cancel.clone(),
            },
            cancel,
        )
    }
}

impl Service {
    /// Starts `body` as a job of `kind` on the caller's runtime; records it in the store.
    pub(crate) fn spawn_job<T, F, Fut>(&self, kind: &'static str, body: F) -> Job<T>
    where
        T: JobOutput + Send + 'static,
        F: FnOnce(Service, JobContext) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>> + Send + 'static,
    {
        let (tx, events) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let record = Arc::new(OnceLock::new());
        let ctx = JobContext {
            events: tx,
            cancel: cancel.clone(),
        };
        let task = match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let work = body(self.clone(), ctx);
                let svc = self.clone();
                let id = record.clone();
                let span = tracing::info_span!("job", kind, id = tracing::field::Empty);
                Ok(rt.spawn(async move { svc.run_job(kind, id, work).await }.instrument(span)))
            }
            Err(e) => Err(Some(ServiceError::new(
                ErrorKind::Internal,
                format!("{kind}: a job needs a tokio runtime: {e}"),
            ))),
        };
        Job {
            kind,
            events,
            cancel,
            record,
            task,
        }
    }

    /// The most recent jobs from the store (every frontend's, newest first).
    pub async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, ServiceError> {
        self.store().await?.jobs(limit).await.map_err(store_error)
    }

    /// Records the job's start, runs it, records its end.
    async fn run_job<T: JobOutput>(
        &self,
        kind: &'static str,
        id: Arc<OnceLock<i64>>,
        work: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        // The record is bookkeeping: a store that cannot take it neither stops the job nor
        // loses its result (the job's own writes report their store errors).
        let store = match &self.store {
            Some(_) => self
                .store()
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "job not recorded"))
                .ok(),
            None => None,
        };
        if let Some(store) = &store {
            match store
                .job_start(kind, &self.actor.user, &self.actor.frontend, self.now())
                .await
            {
                Ok(started) => {
                    tracing::Span::current().record("id", started);
                    let _ = id.set(started);
                }
                Err(e) => tracing::warn!(error = %store_error(e), "job not recorded"),
            }
        }
        tracing::info!("started");
        let result = work.await;
        let (outcome, items) = match &result {
            Ok(r) => (r.outcome(), r.items()),
            Err(e) => (format!("failed: {e}"), serde_json::Value::Array(Vec::new())),
        };
        tracing::info!(outcome = %outcome, "ended");
        if let (Some(store), Some(job)) = (&store, id.get())
            && let Err(e) = store
                .job_finish(*job, self.now(), &outcome, &items.to_string())
                .await
        {
            tracing::warn!(error = %store_error(e), "job end not recorded");
        }
        result
    }
}
