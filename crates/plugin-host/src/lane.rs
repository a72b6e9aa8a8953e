//! Where plugin calls run: never on the async executor.
//!
//! A `THREAD_SAFE` plugin gets a bounded `spawn_blocking` lane (a semaphore caps how many of its
//! calls run at once); any other plugin gets one worker thread that runs its calls one at a
//! time: a [`smimekit_lane::Lane`], the same lane the PKCS#11 key store gives each token (async
//! callers send a boxed job and await a oneshot reply; a panicking job is caught and the lane
//! keeps serving).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub use smimekit_lane::{StillRunning, Stopped};

/// How many calls of one thread-safe plugin may run at once.
pub const PARALLEL_CALLS: usize = 8;

/// Work a shared lane defers until no call is running (closing a handle).
type Deferred = Box<dyn FnOnce() + Send>;

/// What a shared lane's calls are doing.
#[derive(Default)]
struct State {
    /// Calls running.
    running: usize,
    /// Stopped: no call starts after that.
    stopped: bool,
    /// Closes waiting for the calls running now to end.
    deferred: Vec<Deferred>,
}

/// How many calls of a shared lane are running, so that a handle is never closed while a
/// call (one that timed out, even) may still be using it, and stopping can wait for them.
#[derive(Default)]
pub struct InFlight {
    state: Mutex<State>,
    idle: Condvar,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("InFlight")
            .field("running", &st.running)
            .field("stopped", &st.stopped)
            .field("deferred", &st.deferred.len())
            .finish()
    }
}

/// One running call; dropped when the call ends (or when its job is dropped unrun). The last
/// call to end runs what was deferred meanwhile, still counted as running.
struct Running(Arc<InFlight>);

impl Drop for Running {
    fn drop(&mut self) {
        loop {
            let jobs = {
                let mut st = self.0.lock();
                if st.running > 1 || st.deferred.is_empty() {
                    st.running -= 1;
                    break;
                }
                std::mem::take(&mut st.deferred)
            };
            for job in jobs {
                job();
            }
        }
        self.0.idle.notify_all();
    }
}

impl InFlight {
    /// The state; every update is one step, so a poisoned lock is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(self: &Arc<Self>) -> Result<Running, Stopped> {
        let mut st = self.lock();
        if st.stopped {
            return Err(Stopped);
        }
        st.running += 1;
        Ok(Running(self.clone()))
    }

    /// Runs `job` now when no call is running, else when the last running one ends; never
    /// once stopped.
    fn run_or_defer(self: &Arc<Self>, job: Deferred) {
        let mut st = self.lock();
        if st.stopped {
            return;
        }
        if st.running > 0 {
            st.deferred.push(job);
            return;
        }
        st.running += 1;
        drop(st);
        let running = Running(self.clone());
        job();
        drop(running);
    }

    /// Refuses new calls and waits up to `timeout` for the running ones (and what they
    /// deferred).
    fn stop(&self, timeout: Duration, name: &str) -> Result<(), StillRunning> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        st.stopped = true;
        while st.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StillRunning {
                    thread: format!("plugin-{name} (blocking pool)"),
                    waited: timeout,
                });
            }
            st = self
                .idle
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

/// A plugin's lane.
#[derive(Debug)]
pub enum Lane {
    /// Bounded `spawn_blocking`; the calls running are counted for [`Lane::stop`].
    Shared(Arc<Semaphore>, Arc<InFlight>),
    /// One worker thread.
    Worker(smimekit_lane::Lane<()>),
    /// On the caller's thread: only for callers that are already on a blocking thread and
    /// call one at a time (the ABI benchmark, sync tools). See [`crate::load_inline`].
    Inline,
}

impl Lane {
    pub fn new(thread_safe: bool, name: &str) -> std::io::Result<Self> {
        if thread_safe {
            return Ok(Lane::Shared(
                Arc::new(Semaphore::new(PARALLEL_CALLS)),
                Arc::new(InFlight::default()),
            ));
        }
        Ok(Lane::Worker(smimekit_lane::Lane::spawn(
            format!("plugin-{name}"),
            (),
        )?))
    }

    /// Runs `f` on the lane and awaits its result without blocking the runtime.
    pub async fn call<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        match self {
            Lane::Shared(sem, inflight) => {
                let _permit = sem.acquire().await.map_err(|_| Stopped)?;
                let running = inflight.start()?;
                tokio::task::spawn_blocking(move || {
                    let r = f();
                    drop(running);
                    r
                })
                .await
                .map_err(|_| Stopped)
            }
            Lane::Inline => Ok(f()),
            Lane::Worker(lane) => lane.call(move |_| f()).await,
        }
    }

    /// Runs `f` on the lane and waits: for the few sync entry points (opening a configured
    /// directory, closing handles on drop). A shared lane runs it on the caller's thread.
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        match self {
            Lane::Shared(_, inflight) => {
                let _running = inflight.start()?;
                Ok(f())
            }
            Lane::Inline => Ok(f()),
            Lane::Worker(lane) => lane.call_blocking(move |_| f()),
        }
    }

    /// [`Lane::call_blocking`] waiting at most `timeout` on a worker (`Ok(None)`: no answer
    /// by then; the job goes on). A shared lane runs `f` on the caller's thread, unlimited.
    pub fn call_blocking_within<R, F>(
        &self,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<Option<R>, Stopped>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        match (self, timeout) {
            (Lane::Worker(lane), Some(t)) => lane.call_blocking_within(t, move |_| f()),
            _ => self.call_blocking(f).map(Some),
        }
    }

    /// Stops the lane with `last` as its last job: no call starts after this. A worker runs
    /// the jobs already sent, then `last`, and its thread is joined; a shared lane waits for
    /// its running calls, then runs `last` here. Waits at most `timeout` in all; `Err` when
    /// the plugin is still in a call (then `last` has not run on a shared lane).
    pub fn finish(
        &self,
        timeout: Duration,
        name: &str,
        last: impl FnOnce() + Send + 'static,
    ) -> Result<(), StillRunning> {
        match self {
            Lane::Shared(sem, inflight) => {
                sem.close();
                inflight.stop(timeout, name)?;
                last();
                Ok(())
            }
            Lane::Inline => {
                last();
                Ok(())
            }
            Lane::Worker(lane) => {
                // A lane stopped before has run its last job already.
                let _ = lane.detach(move |_| last());
                lane.stop(timeout)
            }
        }
    }

    /// Runs `f` on the lane without waiting (closing handles from `Drop`): a worker queues
    /// it behind the calls sent before; a shared lane runs it once no call is running.
    pub fn detach<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            // After the calls under way (a close never runs beside a call); a stopped lane
            // has nothing left to close the handle on.
            Lane::Shared(_, inflight) => inflight.run_or_defer(Box::new(f)),
            Lane::Inline => f(),
            Lane::Worker(lane) => {
                // A stopped lane has nothing left to close the handle on.
                let _ = lane.detach(move |_| f());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn worker_lane_serialises_and_survives_a_panic() {
        let lane = Lane::new(false, "t").expect("thread starts");
        let names: Vec<_> = (0..3)
            .map(|_| lane.call(|| std::thread::current().name().map(String::from)))
            .collect();
        for n in names {
            assert_eq!(n.await.ok().flatten().as_deref(), Some("plugin-t"));
        }
        assert!(
            lane.call(|| -> u8 { panic!("job panicked") })
                .await
                .is_err()
        );
        assert_eq!(lane.call(|| 7).await.ok(), Some(7));
        assert_eq!(lane.call_blocking(|| 8).ok(), Some(8));
    }

    #[test]
    fn finishing_waits_for_running_calls_runs_the_last_job_then_refuses() {
        use std::sync::mpsc;
        for thread_safe in [true, false] {
            let lane = Arc::new(Lane::new(thread_safe, "f").expect("lane"));
            let (started_tx, started) = mpsc::channel();
            let (release, wait) = mpsc::channel::<()>();
            let l = lane.clone();
            let caller = std::thread::spawn(move || {
                l.call_blocking(move || {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                    1
                })
            });
            started.recv().expect("call started");
            let (last_tx, last) = mpsc::channel();
            let tx = last_tx.clone();
            let e = lane
                .finish(Duration::from_millis(1), "f", move || {
                    let _ = tx.send("first");
                })
                .unwrap_err();
            assert!(e.to_string().contains("plugin-f"), "{e}");
            release.send(()).expect("call waiting");
            assert_eq!(caller.join().expect("caller"), Ok(1));
            lane.finish(Duration::from_secs(60), "f", move || {
                let _ = last_tx.send("second");
            })
            .expect("finished");
            // The worker ran its queued last job; the shared lane ran only the one it
            // reached after the running call ended.
            let ran: Vec<_> = last.try_iter().collect();
            if thread_safe {
                assert_eq!(ran, ["second"]);
            } else {
                assert_eq!(ran, ["first"]);
            }
            assert_eq!(lane.call_blocking(|| 2), Err(Stopped));
        }
    }

    #[test]
    fn a_shared_lane_closes_only_once_no_call_is_running() {
        use std::sync::mpsc;
        let lane = Arc::new(Lane::new(true, "d").expect("lane"));
        let (started_tx, started) = mpsc::channel();
        let (release, wait) = mpsc::channel::<()>();
        let (log_tx, log) = mpsc::channel();
        let (l, tx) = (lane.clone(), log_tx.clone());
        let caller = std::thread::spawn(move || {
            l.call_blocking(move || {
                let _ = started_tx.send(());
                let _ = wait.recv();
                let _ = tx.send("call ended");
            })
        });
        started.recv().expect("call started");
        let tx = log_tx.clone();
        lane.detach(move || {
            let _ = tx.send("closed");
        });
        // Deferred while the call runs.
        assert_eq!(log.try_iter().collect::<Vec<_>>(), Vec::<&str>::new());
        release.send(()).expect("call waiting");
        assert_eq!(caller.join().expect("caller"), Ok(()));
        assert_eq!(log.try_iter().collect::<Vec<_>>(), ["call ended", "closed"]);
        // With nothing running it runs at once.
        lane.detach(move || {
            let _ = log_tx.send("closed again");
        });
        assert_eq!(log.try_iter().collect::<Vec<_>>(), ["closed again"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shared_lane_runs_off_the_executor_thread() {
        let lane = Lane::new(true, "t").expect("no thread needed");
        let here = std::thread::current().id();
        let there = lane.call(|| std::thread::current().id()).await.ok();
        assert!(there.is_some_and(|t| t != here));
    }
}
