//! Bounds the password hashing a client can start.
//!
//! Every sign-in, reset confirmation and password set runs argon2id, which
//! holds `argon2_memory_kib` (19 MiB by default) for tens of milliseconds.
//! Spreading attempts over many addresses escapes any per-address limit, so
//! the work itself is bounded: at most `in_flight` hashes run at once (on
//! that many dedicated threads), at most `queue_max` more requests wait, and
//! the rest are shed at once (503 `overloaded` with Retry-After) before any
//! hashing. The admission travels into the job, so a client that hangs up
//! cannot make room while its hash still runs or waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// Seconds a shed client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why the gate gave no answer.
#[derive(Debug)]
pub enum GateError {
    /// Too many hashes running and waiting: the request was not admitted.
    Overloaded,
    /// The hashing thread panicked or is gone.
    Failed(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs password hashing on its own `in_flight` threads. Dedicated threads,
/// not the blocking pool: argon2's 19 MiB blocks are then allocated and
/// reused by the same few threads, so the process holds at most `in_flight`
/// of them (on the blocking pool every new thread kept its own malloc arena
/// with a freed block in it: 3 x 150 sign-ins left 459 MiB).
pub struct PasswordGate {
    jobs: mpsc::Sender<Job>,
    /// Requests admitted: running plus waiting.
    admitted: Arc<AtomicUsize>,
    admitted_max: usize,
}

/// Releases an admission when dropped (work done, or never started).
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
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..in_flight {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("admind-hash-{n}"))
                .spawn(move || loop {
                    // The lock is held only to take the next job.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the gate was dropped
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "starting a password-hashing thread failed");
            }
        }
        PasswordGate {
            jobs: tx,
            admitted: Arc::new(AtomicUsize::new(0)),
            admitted_max: in_flight + queue_max,
        }
    }

    /// Runs `work` (a hash or a verification) on a hashing thread, or
    /// refuses at once when too many already run and wait.
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
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Held until the work is done, even if the caller left; released
            // before the answer, so a caller that got one sees the room.
            let result = work();
            drop(admission);
            let _ = answer.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| GateError::Failed("the hashing threads are gone".into()))?;
        answered
            .await
            .map_err(|_| GateError::Failed("the hashing thread failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sheds_past_running_plus_queued_and_never_runs_more_than_the_slots() {
        let gate = Arc::new(PasswordGate::new(2, 3));
        let gate_threads = 2;
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
        assert!(peak.load(Ordering::SeqCst) <= gate_threads);
        assert!(done >= 5, "the running and queued ones finish: {done}");
        assert!(shed > 0, "the rest are shed");
        assert_eq!(gate.admitted.load(Ordering::SeqCst), 0);
    }
}
