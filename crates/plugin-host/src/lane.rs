//! Where plugin calls run: never on the async executor.
//!
//! A `THREAD_SAFE` plugin gets a bounded `spawn_blocking` lane (a semaphore caps how many of its
//! calls run at once); any other plugin gets one worker thread that runs its calls one at a
//! time: a [`smimekit_lane::Lane`], the same lane the PKCS#11 key store gives each token (async
//! callers send a boxed job and await a oneshot reply; a panicking job is caught and the lane
//! keeps serving).

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use smimekit_lane::Stopped;

/// How many calls of one thread-safe plugin may run at once.
pub const PARALLEL_CALLS: usize = 8;

/// A plugin's lane.
#[derive(Debug)]
pub enum Lane {
    /// Bounded `spawn_blocking`.
    Shared(Arc<Semaphore>),
    /// One worker thread.
    Worker(smimekit_lane::Lane<()>),
    /// On the caller's thread: only for callers that are already on a blocking thread and
    /// call one at a time (the ABI benchmark, sync tools). See [`crate::load_inline`].
    Inline,
}

impl Lane {
    pub fn new(thread_safe: bool, name: &str) -> std::io::Result<Self> {
        if thread_safe {
            return Ok(Lane::Shared(Arc::new(Semaphore::new(PARALLEL_CALLS))));
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
            Lane::Shared(sem) => {
                let _permit = sem.acquire().await.map_err(|_| Stopped)?;
                tokio::task::spawn_blocking(f).await.map_err(|_| Stopped)
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
            Lane::Shared(_) | Lane::Inline => Ok(f()),
            Lane::Worker(lane) => lane.call_blocking(move |_| f()),
        }
    }

    /// Runs `f` on the lane without waiting (closing handles from `Drop`).
    pub fn detach<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Lane::Shared(_) | Lane::Inline => f(),
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

    #[tokio::test(flavor = "current_thread")]
    async fn shared_lane_runs_off_the_executor_thread() {
        let lane = Lane::new(true, "t").expect("no thread needed");
        let here = std::thread::current().id();
        let there = lane.call(|| std::thread::current().id()).await.ok();
        assert!(there.is_some_and(|t| t != here));
    }
}
