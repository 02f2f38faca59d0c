//! Bounds the password hashing a client can start.
//!
//! Every sign-in, reset confirmation and password set runs argon2id, which
//! holds `argon2_memory_kib` (19 MiB by default) for tens of milliseconds on
//! the blocking pool. Spreading attempts over many addresses escapes any
//! per-address limit, so the work itself is bounded: at most `in_flight`
//! hashes run at once, at most `queue_max` more requests wait for a slot,
//! and the rest are shed at once (503 `overloaded` with Retry-After) before
//! any hashing. The slot travels into the blocking task, so a client that
//! hangs up cannot free a slot while its hash still runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Seconds a shed client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The gate was full: the request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// The hashing task ended without an answer (it panicked).
#[derive(Debug)]
pub enum GateError {
    Overloaded,
    Failed(String),
}

pub struct PasswordGate {
    slots: Arc<Semaphore>,
    /// Requests admitted: running plus waiting.
    admitted: Arc<AtomicUsize>,
    admitted_max: usize,
}

/// Releases an admission when dropped (answer sent, or client gone).
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordGate {
    /// `in_flight` 0 means the number of cores.
    pub fn new(in_flight: usize, queue_max: usize) -> Self {
        let in_flight = if in_flight == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            in_flight
        };
        PasswordGate {
            slots: Arc::new(Semaphore::new(in_flight)),
            admitted: Arc::new(AtomicUsize::new(0)),
            admitted_max: in_flight + queue_max,
        }
    }

    /// Runs `work` (a hash or a verification) on the blocking pool once a
    /// slot is free, or refuses at once when too many already wait.
    pub async fn run<T, F>(&self, work: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.admitted.clone());
        if before >= self.admitted_max {
            return Err(GateError::Overloaded);
        }
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| GateError::Overloaded)?;
        tokio::task::spawn_blocking(move || {
            // Both are held until the hash is done, even if the caller left.
            let _slot = slot;
            let _admission = admission;
            work()
        })
        .await
        .map_err(|e| GateError::Failed(format!("the hashing task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sheds_past_running_plus_queued_and_never_runs_more_than_the_slots() {
        let gate = Arc::new(PasswordGate::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                gate.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut done = 0;
        let mut shed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => done += 1,
                Err(GateError::Overloaded) => shed += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert!(done >= 5, "the running and queued ones finish: {done}");
        assert!(shed > 0, "the rest are shed");
        assert_eq!(gate.admitted.load(Ordering::SeqCst), 0);
    }
}
