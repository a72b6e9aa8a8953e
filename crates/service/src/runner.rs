//! Running many directory writes against a directory that throttles: the one scheduler of
//! the service's long jobs (plan/apply today).
//!
//! Items are grouped (by directory) and each group runs `parallel` at a time, so a throttled
//! directory never holds back another's items. An item whose directory answered busy
//! (throttled, or its answer lost) goes back to the end of its group's queue, not before the
//! directory's Retry-After (else a doubling wait), and holds no place while it waits; its next
//! try must read before it writes (the caller's try does). Only when the run's time budget is
//! spent is such an item reported not done. Cancelling stops between items: a try under way
//! finishes, none starts after, and the rest is reported not attempted.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    group: usize,
    item: I,
    attempts: u32,
    last_busy: Option<String>,
}

/// The items of one group (one directory): those never tried in order, those the directory
/// was busy for by when they may be tried again, and how many of its items are in flight.
struct Group<I> {
    fresh: VecDeque<Queued<I>>,
    /// By (ready at, a sequence number keeping the order of equal times).
    waiting: BTreeMap<(Instant, u64), Queued<I>>,
    running: usize,
}

impl<I> Group<I> {
    /// The next item that may start now: the fresh ones first (a busy item goes to the end of
    /// the queue), then a waiting one whose time has come.
    fn next(&mut self, now: Instant) -> Option<Queued<I>> {
        if let Some(q) = self.fresh.pop_front() {
            return Some(q);
        }
        let (&key, _) = self.waiting.first_key_value()?;
        if key.0 <= now {
            return self.waiting.remove(&key);
        }
        None
    }

    /// When the group's first waiting item may start, if it has free places and nothing else
    /// to start.
    fn wakes_at(&self, parallel: usize) -> Option<Instant> {
        if self.running >= parallel || !self.fresh.is_empty() {
            return None;
        }
        self.waiting.first_key_value().map(|(k, _)| k.0)
    }
}

/// How a run is scheduled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule<'a> {
    /// Items in flight per group (each directory has its own places: a throttled
    /// directory's waits never hold back another directory's items).
    pub parallel: usize,
    /// The run's time budget.
    pub budget: Duration,
    /// What the progress events call the items.
    pub what: &'a str,
}

/// Runs `try_one` over `items` until each is done, failed, or not attempted (cancelled, or
/// out of the budget): at most `parallel` items of each group (`group` names an item's,
/// e.g. its directory) at a time. An item waiting out its directory's Retry-After holds no
/// place: the group's other items run meanwhile. `label` names an item for the progress
/// events; `try_one` gets a clone of the item and must read before it writes.
pub(crate) async fn run<I, R, F, Fut>(
    items: Vec<I>,
    schedule: Schedule<'_>,
    ctx: &JobContext,
    group: impl Fn(&I) -> String,
    label: impl Fn(&I) -> String,
    try_one: F,
) -> RunOutcome<R>
where
    I: Clone + Send + 'static,
    R: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Try<R>> + Send + 'static,
{
    let Schedule {
        parallel,
        budget,
        what,
    } = schedule;
    let deadline = Instant::now() + budget;
    let total = items.len();
    let parallel = parallel.max(1);
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group<I>> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let next = names.len();
        let g = *names.entry(group(&item)).or_insert(next);
        if g == groups.len() {
            groups.push(Group {
                fresh: VecDeque::new(),
                waiting: BTreeMap::new(),
                running: 0,
            });
        }
        groups[g].fresh.push_back(Queued {
            index,
            group: g,
            item,
            attempts: 0,
            last_busy: None,
        });
    }
    let mut ended: Vec<Option<Ended<R>>> = (0..total).map(|_| None).collect();
    let mut finished = 0;
    let mut requeued = 0;
    let mut sequence: u64 = 0;
    let mut running = tokio::task::JoinSet::new();
    // Which item each task runs, to account for one that ends abnormally (a panic).
    let mut tasks: HashMap<tokio::task::Id, (usize, usize, u32)> = HashMap::new();
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
        let now = Instant::now();
        if !ctx.is_cancelled() && now < deadline {
            for g in &mut groups {
                while g.running < parallel {
                    let Some(q) = g.next(now) else { break };
                    g.running += 1;
                    let work = try_one(q.item.clone());
                    let (index, group, attempts) = (q.index, q.group, q.attempts);
                    let handle = running.spawn(async move {
                        // Stopping a try half-way is safe: the next one reads before it writes.
                        let outcome = tokio::time::timeout_at(deadline, work).await.ok();
                        (q, outcome)
                    });
                    tasks.insert(handle.id(), (index, group, attempts));
                }
            }
        }
        let stopped = ctx.is_cancelled() || Instant::now() >= deadline;
        // The earliest moment a waiting item may start in a group with a free place.
        let wake = if stopped {
            None
        } else {
            groups.iter().filter_map(|g| g.wakes_at(parallel)).min()
        };
        if running.is_empty() && wake.is_none() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next_with_id(), if !running.is_empty() => joined,
            () = tokio::time::sleep_until(wake.unwrap_or(deadline).min(deadline)), if wake.is_some() => continue,
            () = ctx.cancelled(), if !ctx.is_cancelled() => continue,
        };
        let Some(joined) = joined else { continue };
        let (q, outcome) = match joined {
            Ok((id, x)) => {
                tasks.remove(&id);
                x
            }
            // A panicking try: the item is reported failed (its slot is given back).
            Err(e) => {
                tracing::error!(error = %e, "{what}: a task ended abnormally");
                if let Some((index, group, attempts)) = tasks.remove(&e.id()) {
                    groups[group].running -= 1;
                    finished += 1;
                    ctx.event(what, finished, total, None);
                    ended[index] = Some(Ended::Failed {
                        error: format!("its task ended abnormally: {e}"),
                        attempts: attempts + 1,
                    });
                }
                continue;
            }
        };
        let mut q = q;
        groups[q.group].running -= 1;
        let result = match outcome {
            // Out of time during the try.
            None => {
                q.attempts += 1;
                not_done(q.attempts, q.last_busy.as_deref(), true)
            }
            Some(Try::Done(result)) => Ended::Done {
                result,
                attempts: q.attempts + 1,
            },
            Some(Try::Failed(error)) => Ended::Failed {
                error,
                attempts: q.attempts + 1,
            },
            Some(Try::Busy {
                message,
                retry_after,
            }) => {
                q.attempts += 1;
                let ready =
                    Instant::now() + retry_after.unwrap_or_else(|| requeue_wait(q.attempts));
                if ready < deadline && !ctx.is_cancelled() {
                    q.last_busy = Some(message);
                    sequence += 1;
                    groups[q.group].waiting.insert((ready, sequence), q);
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
    // Cancelled or out of time: the items never started (again) are not done, in order.
    let out_of_time = !ctx.is_cancelled();
    for g in groups {
        for q in g.fresh.into_iter().chain(g.waiting.into_values()) {
            ended[q.index] = Some(not_done(q.attempts, q.last_busy.as_deref(), out_of_time));
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::*;

    fn schedule(parallel: usize, budget: Duration) -> Schedule<'static> {
        Schedule {
            parallel,
            budget,
            what: "test",
        }
    }

    /// Each directory has its own places: with one place each, an item of one directory that
    /// waits for an item of the other to start still finishes (a shared place would leave it
    /// waiting until the budget ends).
    #[tokio::test]
    async fn each_group_has_its_own_places() {
        let (ctx, _cancel) = JobContext::detached();
        let started = Arc::new(Notify::new());
        let items = vec![("a", 0), ("b", 1)];
        let out = run(
            items,
            schedule(1, Duration::from_secs(600)),
            &ctx,
            |i| i.0.to_string(),
            |i| i.0.to_string(),
            |i| {
                let started = started.clone();
                async move {
                    if i.1 == 0 {
                        started.notified().await;
                    } else {
                        started.notify_one();
                    }
                    Try::Done(i.1)
                }
            },
        )
        .await;
        let done: Vec<i32> = out
            .ended
            .iter()
            .filter_map(|e| match e {
                Ended::Done { result, .. } => Some(*result),
                _ => None,
            })
            .collect();
        assert_eq!(done, [0, 1], "{:?}", out.ended);
    }

    /// An item the directory was busy for waits without its place: the next item of the same
    /// directory runs meanwhile; cancelling reports the waiting one not attempted, with why
    /// its last try did not finish.
    #[tokio::test]
    async fn a_waiting_item_holds_no_place_and_cancelling_reports_it() {
        let (ctx, cancel) = JobContext::detached();
        let items = vec![0, 1];
        let out = run(
            items,
            schedule(1, Duration::from_secs(7200)),
            &ctx,
            |_| "exo".to_string(),
            |i| i.to_string(),
            |i| {
                let cancel = cancel.clone();
                async move {
                    if i == 0 {
                        Try::Busy {
                            message: "throttled".into(),
                            retry_after: Some(Duration::from_secs(3600)),
                        }
                    } else {
                        // Item 1 runs while item 0 waits out its hour; then the run stops.
                        cancel.cancel();
                        Try::Done(1)
                    }
                }
            },
        )
        .await;
        assert_eq!(out.requeued, 1);
        match &out.ended[0] {
            Ended::NotAttempted {
                reason,
                attempts: 1,
                out_of_time: false,
            } => assert!(
                reason.contains("cancelled") && reason.contains("throttled"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                out.ended[1],
                Ended::Done {
                    result: 1,
                    attempts: 1
                }
            ),
            "{:?}",
            out.ended[1]
        );
    }

    /// A busy item is tried again after its Retry-After and then done; a failed one is not
    /// tried again.
    #[tokio::test]
    async fn busy_items_are_tried_again_failed_ones_not() {
        let (ctx, _cancel) = JobContext::detached();
        let tries = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let out = run(
            vec![0, 1],
            schedule(4, Duration::from_secs(600)),
            &ctx,
            |_| "ldap".to_string(),
            |i| i.to_string(),
            |i| {
                let tries = tries.clone();
                async move {
                    if i == 1 {
                        return Try::Failed("refused".into());
                    }
                    if tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        Try::Busy {
                            message: "busy".into(),
                            retry_after: Some(Duration::from_millis(1)),
                        }
                    } else {
                        Try::Done(())
                    }
                }
            },
        )
        .await;
        assert!(
            matches!(out.ended[0], Ended::Done { attempts: 2, .. }),
            "{:?}",
            out.ended[0]
        );
        assert!(
            matches!(&out.ended[1], Ended::Failed { attempts: 1, error } if error == "refused")
        );
        assert_eq!(out.requeued, 1);
    }
}
