//! The adaptive request limit of one client: how many InvokeCommand requests may be in flight.
//!
//! AIMD, as TCP congestion control does it: the limit starts at the configured `concurrency`,
//! halves when the service throttles (at most once per round of requests, so that the answers
//! to requests sent before the cut do not cut again), and grows by one after `limit` requests
//! in a row succeed, back up to `concurrency`. It only paces requests; retrying, Retry-After
//! and giving up are the transport's business ([`crate::client`]).

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

/// The limit. Invariant: the semaphore's permits (handed out or not) = `limit + debt`.
#[derive(Debug)]
pub struct AdaptiveLimit {
    permits: Semaphore,
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits to retire as they come back: the limit fell below what was handed out.
    debt: usize,
    /// Successes since the limit last changed.
    successes: usize,
    /// Requests sent so far, numbering them.
    sent: u64,
    /// The number of the last request sent before the last cut.
    cut_at: u64,
}

/// Leave to send: one place in the limit, held for one try (not while waiting to retry).
#[derive(Debug)]
pub struct Slot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    limit: &'a AdaptiveLimit,
    /// The number of this slot's latest request.
    request: u64,
}

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            permits: Semaphore::new(max),
            max,
            state: Mutex::new(State {
                limit: max,
                debt: 0,
                successes: 0,
                sent: 0,
                cut_at: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement: a panic elsewhere
        // while the lock was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place (first come, first served).
    pub async fn acquire(&self) -> Result<Slot<'_>, AcquireError> {
        let permit = self.permits.acquire().await?;
        Ok(Slot {
            permit: Some(permit),
            limit: self,
            request: 0,
        })
    }

    /// The current limit.
    pub fn current(&self) -> usize {
        self.state().limit
    }
}

impl Slot<'_> {
    /// Called before the request goes out.
    pub fn sending(&mut self) {
        let mut s = self.limit.state();
        s.sent += 1;
        self.request = s.sent;
    }

    /// The service answered this slot's latest request with "slow down".
    pub fn throttled(&mut self) {
        let mut s = self.limit.state();
        s.successes = 0;
        if self.request <= s.cut_at || s.limit == 1 {
            return;
        }
        let new = (s.limit / 2).max(1);
        s.debt += s.limit - new;
        s.limit = new;
        s.cut_at = s.sent;
        // Retire the permits nobody holds now; the others as they come back.
        while s.debt > 0 {
            match self.limit.permits.try_acquire() {
                Ok(p) => {
                    p.forget();
                    s.debt -= 1;
                }
                Err(_) => break,
            }
        }
    }

    /// The service answered this slot's latest request.
    pub fn succeeded(&mut self) {
        let mut s = self.limit.state();
        s.successes += 1;
        if s.successes < s.limit || s.limit >= self.limit.max {
            return;
        }
        s.successes = 0;
        s.limit += 1;
        if s.debt > 0 {
            s.debt -= 1;
        } else {
            self.limit.permits.add_permits(1);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(p) = self.permit.take() else {
            return;
        };
        let retire = {
            let mut s = self.limit.state();
            let retire = s.debt > 0;
            if retire {
                s.debt -= 1;
            }
            retire
        };
        if retire {
            p.forget();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn available(l: &AdaptiveLimit) -> usize {
        l.permits.available_permits()
    }

    #[tokio::test]
    async fn halves_once_per_round_and_grows_back() {
        let l = AdaptiveLimit::new(4);
        let mut a = l.acquire().await.unwrap();
        let mut b = l.acquire().await.unwrap();
        a.sending();
        b.sending();
        // Both requests of one round are throttled: one cut, 4 -> 2.
        a.throttled();
        b.throttled();
        assert_eq!(l.current(), 2);
        // Two permits were free and are retired; the two held ones stay in use.
        assert_eq!(available(&l), 0);
        // A retry sent after the cut is new information: 2 -> 1.
        a.sending();
        a.throttled();
        assert_eq!(l.current(), 1);
        drop(b);
        // b's permit went to the debt, a still holds one: nobody else may send.
        assert_eq!(available(&l), 0);
        assert!(l.permits.try_acquire().is_err());
        // Successes grow it back by one per `limit` successes, up to the maximum.
        a.sending();
        a.succeeded();
        assert_eq!(l.current(), 2);
        assert_eq!(available(&l), 1);
        for _ in 0..2 {
            a.sending();
            a.succeeded();
        }
        assert_eq!(l.current(), 3);
        for _ in 0..20 {
            a.sending();
            a.succeeded();
        }
        assert_eq!(l.current(), 4);
        drop(a);
        assert_eq!(available(&l), 4);
    }

    #[tokio::test]
    async fn a_limit_of_one_stays_usable() {
        let l = AdaptiveLimit::new(1);
        let mut a = l.acquire().await.unwrap();
        a.sending();
        a.throttled();
        assert_eq!(l.current(), 1);
        drop(a);
        let mut b = l.acquire().await.unwrap();
        b.sending();
        b.succeeded();
        drop(b);
        assert_eq!(available(&l), 1);
    }
}
