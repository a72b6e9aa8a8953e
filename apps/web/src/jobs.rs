//! The jobs this server started (an apply), watched from the browser: their events kept in
//! order so that a late watcher gets them all, their result once ended, their canceller. A job
//! another server started is found through the store's job records instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use smimekit_service::{Job, JobCanceller, JobEvent, ServiceError};
use tokio::sync::watch;

/// A job's end: its outcome and its typed result (or error) as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct JobEnd {
    /// `ok`, or `failed: …`.
    pub outcome: String,
    pub succeeded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One job started here.
#[derive(Debug)]
pub struct WebJob {
    pub id: String,
    pub kind: &'static str,
    /// Who started it.
    pub user: String,
    events: Mutex<Vec<JobEvent>>,
    end: Mutex<Option<JobEnd>>,
    /// The store's record id, once the job is recorded.
    record: Mutex<Option<i64>>,
    canceller: JobCanceller,
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl WebJob {
    /// The event at `i`, if it happened.
    pub fn event(&self, i: usize) -> Option<JobEvent> {
        lock(&self.events).get(i).cloned()
    }

    pub fn events(&self) -> Vec<JobEvent> {
        lock(&self.events).clone()
    }

    /// Set once the job ended, after its last event.
    pub fn end(&self) -> Option<JobEnd> {
        lock(&self.end).clone()
    }

    pub fn record(&self) -> Option<i64> {
        *lock(&self.record)
    }

    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// Wakes when an event arrives or the job ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The jobs of this process, by id.
#[derive(Debug, Default)]
pub struct JobRegistry {
    jobs: Mutex<HashMap<String, Arc<WebJob>>>,
    next: Mutex<u64>,
}

/// Jobs kept after their end (the oldest ended ones are forgotten first).
const KEEP: usize = 256;

impl JobRegistry {
    pub fn get(&self, id: &str) -> Option<Arc<WebJob>> {
        lock(&self.jobs).get(id).cloned()
    }

    /// Watches `job` on a task of its own: its events and end are kept for
    /// [`JobRegistry::get`].
    pub fn watch<T: Serialize + Send + 'static>(
        &self,
        user: &str,
        job: Job<T>,
        outcome: fn(&T) -> (bool, String),
    ) -> Arc<WebJob> {
        let id = {
            let mut n = lock(&self.next);
            *n += 1;
            format!("w{}", *n)
        };
        let web = Arc::new(WebJob {
            id: id.clone(),
            kind: job.kind(),
            user: user.to_string(),
            events: Mutex::new(Vec::new()),
            end: Mutex::new(None),
            record: Mutex::new(None),
            canceller: job.canceller(),
            changed: watch::channel(0).0,
        });
        {
            let mut jobs = lock(&self.jobs);
            if jobs.len() >= KEEP {
                let ended: Vec<String> = jobs
                    .iter()
                    .filter(|(_, j)| j.end().is_some())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in ended.iter().take(jobs.len() + 1 - KEEP) {
                    jobs.remove(k);
                }
            }
            jobs.insert(id, web.clone());
        }
        let w = web.clone();
        tokio::spawn(async move {
            let mut job = job;
            while let Some(e) = job.next_event().await {
                lock(&w.events).push(e);
                if let Some(r) = job.record_id() {
                    *lock(&w.record) = Some(r);
                }
                w.bump();
            }
            if let Some(r) = job.record_id() {
                *lock(&w.record) = Some(r);
            }
            let result: Result<T, ServiceError> = job.await;
            let end = match result {
                Ok(r) => {
                    let (succeeded, outcome) = outcome(&r);
                    JobEnd {
                        outcome,
                        succeeded,
                        result: serde_json::to_value(&r).ok(),
                        error: None,
                    }
                }
                Err(e) => JobEnd {
                    outcome: format!("failed: {}", e.message),
                    succeeded: false,
                    result: None,
                    error: Some(e.message),
                },
            };
            *lock(&w.end) = Some(end);
            w.bump();
        });
        web
    }
}
