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
use std::sync::{Mutex, mpsc};
use std::time::Duration;

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

/// [`Lane::stop`] waited its time and the thread is still running a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillRunning {
    /// The lane's thread name.
    pub thread: String,
    pub waited: Duration,
}

impl std::fmt::Display for StillRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker thread {} still running a job after {} ms",
            self.thread,
            self.waited.as_millis()
        )
    }
}

impl std::error::Error for StillRunning {}

/// One worker thread owning a state `S`; jobs get `&mut S`. Dropping the lane ends the
/// thread once the jobs already sent have run, without waiting for it; [`Lane::stop`] waits.
pub struct Lane<S> {
    /// `None` once [`Lane::stop`] ran: nothing more is accepted.
    tx: Mutex<Option<mpsc::Sender<Job<S>>>>,
    /// Signalled by the thread when its loop has ended (after the last job).
    done: Mutex<Option<(mpsc::Receiver<()>, std::thread::JoinHandle<()>)>>,
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
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                for job in rx {
                    // A panicking job drops its reply sender, so its caller sees `Stopped`.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut state)));
                }
                drop(state);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some((done_rx, thread))),
            name,
        })
    }

    /// Accepts no more jobs, lets the thread run those already sent, and waits at most
    /// `timeout` for it to end (then joins it). `Err` names the thread when it is still in a
    /// job: it is left running. Stopping a stopped lane returns at once.
    pub fn stop(&self, timeout: Duration) -> Result<(), StillRunning> {
        drop(lock(&self.tx).take());
        let Some((done, thread)) = lock(&self.done).take() else {
            return Ok(());
        };
        match done.recv_timeout(timeout) {
            // Disconnected: the thread ended without signalling (it cannot panic outside a
            // job, so only when it was torn down); joining it does not block either way.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                Ok(())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Put it back, so a later stop can wait again.
                *lock(&self.done) = Some((done, thread));
                Err(StillRunning {
                    thread: self.name.clone(),
                    waited: timeout,
                })
            }
        }
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

    /// [`Lane::call_blocking`], waiting at most `timeout`: `Ok(None)` when the job has not
    /// ended by then (it still runs, and its result is dropped).
    pub fn call_blocking_within<R, F>(&self, timeout: Duration, f: F) -> Result<Option<R>, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.detach(move |s| {
            let _ = tx.send(f(s));
        })?;
        match rx.recv_timeout(timeout) {
            Ok(r) => Ok(Some(r)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Stopped),
        }
    }

    /// Queues `f` without waiting for it (closing handles from `Drop`).
    pub fn detach<F>(&self, f: F) -> Result<(), Stopped>
    where
        F: FnOnce(&mut S) + Send + 'static,
    {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(Box::new(f)).map_err(|_| Stopped),
            None => Err(Stopped),
        }
    }
}

/// The lane's mutexes guard one `Option` each, taken or replaced in one step: a poisoned
/// lock still holds a consistent value.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

    #[test]
    fn stop_runs_the_jobs_already_sent_then_refuses_and_joins() {
        let (tx, rx) = mpsc::channel();
        let lane = Lane::spawn("lane-s", ()).expect("thread starts");
        for i in 0..3 {
            let tx = tx.clone();
            lane.detach(move |_| {
                let _ = tx.send(i);
            })
            .expect("queued");
        }
        assert_eq!(lane.stop(Duration::from_secs(60)), Ok(()));
        // Every job sent before stop ran, in order, before stop returned.
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(lane.detach(|_| ()), Err(Stopped));
        assert_eq!(lane.call_blocking(|_| 1), Err(Stopped));
        assert_eq!(lane.stop(Duration::ZERO), Ok(()));
    }

    #[test]
    fn a_blocking_call_can_give_up_waiting() {
        let lane = Lane::spawn("lane-w", ()).expect("thread starts");
        let (release, wait) = mpsc::channel::<()>();
        let r = lane.call_blocking_within(Duration::from_millis(1), move |_| {
            let _ = wait.recv();
            1
        });
        assert_eq!(r, Ok(None));
        release.send(()).expect("job waiting");
        // The lane goes on serving once the slow job ends.
        assert_eq!(
            lane.call_blocking_within(Duration::from_secs(60), |_| 2),
            Ok(Some(2))
        );
    }

    #[test]
    fn stop_gives_up_after_its_timeout_on_a_job_that_does_not_end() {
        let lane = Lane::spawn("lane-busy", ()).expect("thread starts");
        let (started_tx, started) = mpsc::channel();
        let (release, wait) = mpsc::channel::<()>();
        lane.detach(move |_| {
            let _ = started_tx.send(());
            let _ = wait.recv();
        })
        .expect("queued");
        started.recv().expect("job started");
        let e = lane.stop(Duration::from_millis(1)).unwrap_err();
        assert_eq!(e.thread, "lane-busy");
        assert!(e.to_string().contains("still running"), "{e}");
        // Once the job ends, a second stop joins the thread.
        release.send(()).expect("job waiting");
        assert_eq!(lane.stop(Duration::from_secs(60)), Ok(()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_executor_thread_is_never_used() {
        let lane = Lane::spawn("lane-x", ()).expect("thread starts");
        let here = std::thread::current().id();
        let there = lane.call(|_: &mut ()| std::thread::current().id()).await;
        assert!(there.is_ok_and(|t| t != here));
    }
}
