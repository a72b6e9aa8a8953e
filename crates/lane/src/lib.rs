//! A *lane*: one std thread that owns some state and runs jobs on it, one at a time.
//!
//! Synchronous code that must not run on the async executor and must not run concurrently
//! (a PKCS#11 session, a plugin that is not thread-safe) gets a lane. Async callers send a boxed
//! job over a channel and await a `tokio::sync::oneshot` reply, so the runtime never blocks;
//! sync callers wait on a std channel; `Drop` code can send a job and not wait. A panicking job
//! is caught: its caller gets [`Stopped`] and the lane goes on serving the others.
//!
//! Used by `smimekit-plugin-host` (vendor plugins that are not thread-safe) and
//! `smimekit-keystore-pkcs11` (one lane per token). It deliberately knows nothing of either:
//! no plugin, PKCS#11 or error vocabulary, no runtime of its own (tokio's `sync` only), and
//! no pool: a lane is exactly one thread.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// The lane cannot run a job: its thread has ended, or the job panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the worker thread stopped")
    }
}

impl std::error::Error for Stopped {}

/// One worker thread owning a state `S`; jobs get `&mut S`. Dropping the lane ends the
/// thread once the jobs already sent have run.
pub struct Lane<S> {
    tx: mpsc::Sender<Job<S>>,
    name: String,
}

impl<S> std::fmt::Debug for Lane<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("thread", &self.name).finish()
    }
}

impl<S: Send + 'static> Lane<S> {
    /// Starts the thread `name`, which owns `state` from now on.
    pub fn spawn(name: impl Into<String>, mut state: S) -> std::io::Result<Self> {
        let name = name.into();
        let (tx, rx) = mpsc::channel::<Job<S>>();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                for job in rx {
                    // A panicking job drops its reply sender, so its caller sees `Stopped`.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut state)));
                }
            })?;
        Ok(Self { tx, name })
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the lane and awaits its result without blocking the runtime.
    pub async fn call<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.detach(move |s| {
            let _ = tx.send(f(s));
        })?;
        rx.await.map_err(|_| Stopped)
    }

    /// Runs `f` on the lane and waits, for sync callers (never from an async task).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.detach(move |s| {
            let _ = tx.send(f(s));
        })?;
        rx.recv().map_err(|_| Stopped)
    }

    /// Queues `f` without waiting for it (closing handles from `Drop`).
    pub fn detach<F>(&self, f: F) -> Result<(), Stopped>
    where
        F: FnOnce(&mut S) + Send + 'static,
    {
        self.tx.send(Box::new(f)).map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_in_order_on_the_lane_thread_and_a_panic_is_survived() {
        let lane = Lane::spawn("lane-t", Vec::<u32>::new()).expect("thread starts");
        let seen: Vec<_> = (0..3)
            .map(|i| {
                lane.call(move |log: &mut Vec<u32>| {
                    log.push(i);
                    (std::thread::current().name().map(String::from), log.clone())
                })
            })
            .collect();
        let mut last = Vec::new();
        for s in seen {
            let (thread, log) = s.await.expect("lane runs");
            assert_eq!(thread.as_deref(), Some("lane-t"));
            last = log;
        }
        // One state, the jobs applied in the order they were sent.
        assert_eq!(last, [0, 1, 2]);
        assert_eq!(
            lane.call(|_: &mut Vec<u32>| -> u8 { panic!("job panicked") })
                .await,
            Err(Stopped)
        );
        assert_eq!(lane.call(|log: &mut Vec<u32>| log.len()).await, Ok(3));
        assert_eq!(lane.call_blocking(|log: &mut Vec<u32>| log.len()), Ok(3));
        lane.detach(|log: &mut Vec<u32>| log.push(9))
            .expect("queued");
        assert_eq!(
            lane.call(|log: &mut Vec<u32>| log.last().copied()).await,
            Ok(Some(9))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_executor_thread_is_never_used() {
        let lane = Lane::spawn("lane-x", ()).expect("thread starts");
        let here = std::thread::current().id();
        let there = lane.call(|_: &mut ()| std::thread::current().id()).await;
        assert!(there.is_ok_and(|t| t != here));
    }
}
