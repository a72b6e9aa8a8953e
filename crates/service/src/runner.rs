//! Running many directory writes against a directory that throttles: the one scheduler of
//! the service's long jobs (plan/apply today).
//!
//! Items run `parallel` at a time. An item whose directory answered busy (throttled, or its
//! answer lost) goes back to the end of the queue, not before the directory's Retry-After
//! (else a doubling wait), and its next try must read before it writes (the caller's try does);
//! only when the run's time budget is spent is such an item reported not done. Cancelling
//! stops between items: a try under way finishes, none starts after, and the rest is reported
//! not attempted.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::jobs::JobContext;

/// How one try of an item ended.
#[derive(Debug)]
pub(crate) enum Try<R> {
    Done(R),
    /// Failed for good (the directory's refusal, bad data): not tried again.
    Failed(String),
    /// The directory was busy: try again later (after `retry_after` when it said).
    Busy {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// How an item ended in the run.
#[derive(Debug)]
pub(crate) enum Ended<R> {
    Done {
        result: R,
        attempts: u32,
    },
    Failed {
        error: String,
        attempts: u32,
    },
    /// Never finished: cancelled, or the time budget was spent (`out_of_time`); `last` is
    /// why its last try did not finish, when it was tried.
    NotAttempted {
        reason: String,
        attempts: u32,
        out_of_time: bool,
    },
}

/// What a run did: one [`Ended`] per item, in the items' order, and how often items were
/// put back in the queue.
#[derive(Debug)]
pub(crate) struct RunOutcome<R> {
    pub ended: Vec<Ended<R>>,
    pub requeued: usize,
}

/// The wait before an item the directory was busy for (and that gave no Retry-After) is
/// tried again: 0.5 s, 1 s, 2 s… up to 30 s.
pub(crate) fn requeue_wait(attempts: u32) -> Duration {
    Duration::from_millis(500u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(30))
}

/// A duration as people say it (`90 s`, `5 min`, `2 h`).
pub(crate) fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s.is_multiple_of(3600) => format!("{} h", s / 3600),
        s if s >= 60 && s.is_multiple_of(60) => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

struct Queued<I> {
    index: usize,
    item: I,
    attempts: u32,
    ready_at: Option<Instant>,
    last_busy: Option<String>,
}

/// Runs `try_one` over `items`, `parallel` at a time, until each is done, failed, or not
/// attempted (cancelled, or out of `budget`). `label` names an item for the progress events
/// (`what`); `try_one` gets a clone of the item and must read before it writes.
pub(crate) async fn run<I, R, F, Fut>(
    items: Vec<I>,
    parallel: usize,
    budget: Duration,
    what: &str,
    ctx: &JobContext,
    label: impl Fn(&I) -> String,
    try_one: F,
) -> RunOutcome<R>
where
    I: Clone + Send + 'static,
    R: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Try<R>> + Send + 'static,
{
    let deadline = Instant::now() + budget;
    let total = items.len();
    let parallel = parallel.max(1);
    let mut queue: VecDeque<Queued<I>> = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| Queued {
            index,
            item,
            attempts: 0,
            ready_at: None,
            last_busy: None,
        })
        .collect();
    let mut ended: Vec<Option<Ended<R>>> = (0..total).map(|_| None).collect();
    let mut finished = 0;
    let mut requeued = 0;
    let mut running = tokio::task::JoinSet::new();
    let not_done = |attempts: u32, last: Option<&str>, out_of_time: bool| {
        let last = last
            .map(|l| format!(" (last try: {l})"))
            .unwrap_or_default();
        let reason = if out_of_time {
            format!(
                "not done: the time budget of {} was spent{last}; run again to finish it",
                human(budget)
            )
        } else {
            format!("not attempted: the run was cancelled{last}; run again to finish it")
        };
        Ended::NotAttempted {
            reason,
            attempts,
            out_of_time,
        }
    };
    loop {
        while running.len() < parallel && !ctx.is_cancelled() {
            let Some(q) = queue.pop_front() else {
                break;
            };
            let work = try_one(q.item.clone());
            let ctx = ctx.clone();
            running.spawn(async move {
                if let Some(t) = q.ready_at {
                    tokio::select! {
                        () = tokio::time::sleep_until(t.min(deadline)) => {}
                        () = ctx.cancelled() => return (q, None),
                    }
                }
                if ctx.is_cancelled() || Instant::now() >= deadline {
                    return (q, None);
                }
                // Stopping a try half-way is safe: the next one reads before it writes.
                let outcome = tokio::time::timeout_at(deadline, work).await.ok();
                (q, Some(outcome))
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (mut q, outcome) = match joined {
            Ok(x) => x,
            // A panicking try: the item's slot is lost with the task, so it cannot be
            // reported by index; this does not happen with the service's own tries.
            Err(e) => {
                tracing::error!(error = %e, "{what}: a task ended abnormally");
                continue;
            }
        };
        let result = match outcome {
            // Not started (cancelled or out of time before the try).
            None => not_done(q.attempts, q.last_busy.as_deref(), !ctx.is_cancelled()),
            // Out of time during the try.
            Some(None) => {
                q.attempts += 1;
                not_done(q.attempts, q.last_busy.as_deref(), true)
            }
            Some(Some(Try::Done(result))) => Ended::Done {
                result,
                attempts: q.attempts + 1,
            },
            Some(Some(Try::Failed(error))) => Ended::Failed {
                error,
                attempts: q.attempts + 1,
            },
            Some(Some(Try::Busy {
                message,
                retry_after,
            })) => {
                q.attempts += 1;
                let ready =
                    Instant::now() + retry_after.unwrap_or_else(|| requeue_wait(q.attempts));
                if ready < deadline && !ctx.is_cancelled() {
                    q.ready_at = Some(ready);
                    q.last_busy = Some(message);
                    queue.push_back(q);
                    requeued += 1;
                    continue;
                }
                not_done(q.attempts, Some(&message), !ctx.is_cancelled())
            }
        };
        finished += 1;
        ctx.event(what, finished, total, Some(&label(&q.item)));
        ended[q.index] = Some(result);
    }
    // Cancelled: the items never started are not attempted, in order.
    for q in queue {
        ended[q.index] = Some(not_done(q.attempts, q.last_busy.as_deref(), false));
    }
    RunOutcome {
        ended: ended
            .into_iter()
            .map(|e| {
                e.unwrap_or_else(|| Ended::NotAttempted {
                    reason: "not attempted: its task ended abnormally".into(),
                    attempts: 0,
                    out_of_time: false,
                })
            })
            .collect(),
        requeued,
    }
}
