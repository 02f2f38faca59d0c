//! The single writer with group commit.
//!
//! Every command goes through one thread: it runs the core against the
//! store, commits each outcome with everything it implies (where the
//! store groups commits, a batch's commands that name an account in one
//! transaction per group of [`GROUP_MAX`]), and after a
//! batch (everything that queued while the previous flush ran, up to
//! [`BATCH_MAX`]) flushes once and only then answers every caller of the
//! batch. Concurrent writers thus share fsyncs, a refused command changes
//! nothing but its audit entry, and R01/R11 hold under concurrency because
//! commands never interleave: within a process by this one thread, across
//! replicas of a shared store by the lock each command holds
//! ([`Backend::lock_command`](super::Backend::lock_command)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

/// Wakes the background workers after a flush made new items durable.
#[derive(Default)]
pub struct Wakers {
    pub outbox: tokio::sync::Notify,
    pub hooks: tokio::sync::Notify,
    pub outbound: tokio::sync::Notify,
}

use super::{LockScope, OutboxMail, Prefetch, Store, StoreError, Transaction, Write};
use crate::domain::*;
use crate::metrics::Metrics;

/// Writes one maintenance transaction carries at most (pruning passes
/// commit in steps of this size).
pub const MAINTENANCE_WRITES_MAX: usize = 10_000;

/// Most commands committed under one flush.
pub const BATCH_MAX: usize = 256;
/// Commands waiting for the writer; past this, callers wait for room
/// (back-pressure instead of unbounded memory).
pub const QUEUE_MAX: usize = 4096;
/// How long a batch that holds only the workers' bookkeeping (settled
/// queue items) waits, on a store one process opens, for a command's flush
/// to cover it before it is flushed on its own. Nobody waits on those
/// writes but the worker that settles (a crash before the flush only
/// repeats an attempt), and a flush of their own cost the commands
/// behind them a flush's wait: under load every other batch was one.
pub const BOOKKEEPING_FLUSH_WAIT: Duration = Duration::from_millis(2);
/// Bookkeeping waits for a command's flush only while commands come: one
/// was committed this recently. Otherwise (a queue draining after the
/// load) the wait would only slow each pass of its worker.
const COMMANDS_RECENT: Duration = Duration::from_millis(10);

/// Makes a notice's outbox mail (templates and links live outside the
/// core); given the notice's account when the command changed it, so its
/// language is known without a read.
pub type Render = Arc<dyn Fn(&Notice, Option<&Account>) -> OutboxMail + Send + Sync>;

struct Job {
    actor: Principal,
    work: Work,
    reply: oneshot::Sender<Answer>,
    /// Workers' bookkeeping: its flush may wait for the next batch's
    /// ([`BOOKKEEPING_FLUSH_WAIT`]).
    bookkeeping: bool,
    /// The `before_` hook's answer, decided off the writer (see
    /// [`Writer::submit`]); None: the writer asks the gate itself.
    decided: Option<Decided>,
}

/// What the writer tells a caller.
#[allow(
    clippy::large_enum_variant,
    reason = "sent once per command through its oneshot channel; boxing the reply would add an allocation to every command for a variant that carries nothing"
)]
enum Answer {
    Done(Result<Reply, Refusal>),
    /// The command asked a `before_` hook something other than what was
    /// decided for it (the state changed in between): nothing was
    /// committed; decide again.
    Stale,
}

/// A command's `before_` hooks decided ahead of the writer, and the
/// version of its account's state they were decided on.
#[derive(Clone)]
struct Decided {
    account_version: u64,
    /// Each question the command asked, in order, with its answer (none:
    /// it did not reach a hook when it was decided).
    answers: Vec<(Proposal, Result<GateNotes, Veto>)>,
}

/// Times a command's `before_` hooks are decided again off the writer
/// because the state moved under them, before the writer asks the policy
/// itself (so progress never depends on winning a race).
pub const PREDECIDE_ATTEMPTS_MAX: usize = 3;

/// The gate the writer runs a command with when its hooks were decided
/// ahead: the decided answer for the same question asked in the same
/// place, else "stale".
struct DecidedGate {
    decided: Decided,
    asked: std::sync::atomic::AtomicUsize,
    stale: std::sync::atomic::AtomicBool,
}

impl PolicyGate for DecidedGate {
    fn before(&self, proposal: &Proposal) -> Result<GateNotes, Veto> {
        let n = self
            .asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.decided.answers.get(n) {
            Some((p, answer)) if p == proposal => answer.clone(),
            _ => {
                self.stale.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(Veto {
                    policy: String::new(),
                    version: String::new(),
                    reason: "decided on another state".into(),
                    translations: Box::default(),
                    duration_us: 0,
                    ignored: Vec::new(),
                })
            }
        }
    }
}

/// The gate a command is decided with off the writer: the real one, its
/// answers kept.
struct RecordingGate<'a> {
    real: &'a dyn PolicyGate,
    seen: std::sync::Mutex<Vec<(Proposal, Result<GateNotes, Veto>)>>,
}

impl PolicyGate for RecordingGate<'_> {
    fn before(&self, proposal: &Proposal) -> Result<GateNotes, Veto> {
        let answer = self.real.before(proposal);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((proposal.clone(), answer.clone()));
        }
        answer
    }
}

/// Writes that are not a domain command (sending an outbound event again):
/// computed on the writer thread against the current state and committed in
/// one transaction, flushed with the batch, like a command's. Every write an
/// HTTP request causes goes through the writer, these included.
pub type Maintenance = Box<dyn FnOnce(&Store) -> Result<Vec<Write>, StoreError> + Send>;

enum Work {
    Command(Command),
    Maintenance(Maintenance),
}

/// More writes an outcome implies, added to its transaction by whatever the
/// server plugs in (outbound deliveries today). The writer knows no worker:
/// a sink is asked for writes and knows nothing of the writer.
pub trait Sink: Send + Sync {
    /// The writes to add for these events and changes (a refusal's events
    /// come with no changes).
    fn writes(
        &self,
        store: &Store,
        events: &[DomainEvent],
        changes: &[Change],
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, StoreError>;
}

#[derive(Clone)]
pub struct Writer {
    /// One queue per writer thread (see `thread_of`).
    txs: Arc<[mpsc::Sender<Job>]>,
    /// A shared store's first thread runs every account's commands in
    /// groups that never wait for a lock (`Role::Groups`).
    split: bool,
    /// What deciding a `before_` hook ahead of the writer needs.
    deps: Arc<WriterDeps>,
    /// Versions of the accounts' state, bumped by the writer threads.
    versions: Arc<AccountVersions>,
    /// The policy decision threads' queue.
    decide_jobs: mpsc::Sender<DecideJob>,
}

/// A `before_` hook decided off the writer.
type DecideJob = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a decision thread; past this, callers wait for room.
const DECIDE_QUEUE_MAX: usize = 1024;

/// Starts the threads `before_` hooks are decided on: their own few (one
/// per core, at least two), not the blocking pool, whose many short-lived
/// threads would each keep a malloc arena holding what a policy allocated
/// (up to its memory limit) and whose size would not bound how many
/// policies run at once. They stop when the last `Writer` is dropped.
fn start_decide_threads() -> mpsc::Sender<DecideJob> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let (tx, rx) = mpsc::channel::<DecideJob>(DECIDE_QUEUE_MAX);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for n in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("admind-policy-{n}"))
            .spawn(move || loop {
                // One thread waits on the queue at a time; the others wait
                // for the lock.
                let job = match rx.lock() {
                    Ok(mut rx) => rx.blocking_recv(),
                    Err(_) => None,
                };
                match job {
                    // A panic in a decision fails that request (its answer
                    // is dropped), not the thread.
                    Some(job) => {
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            tracing::error!("deciding a policy hook panicked");
                        }
                    }
                    None => return,
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "starting a policy decision thread failed");
        }
    }
    tx
}

/// A version per account (hashed into a fixed number of slots: two
/// accounts sharing a slot only cost a needless re-decision), bumped after
/// every commit that changes an account's state as a policy sees it
/// ([`Change::account_state_of`]). A decision taken at one version is
/// stale at another.
pub struct AccountVersions {
    slots: Vec<std::sync::atomic::AtomicU64>,
}

impl AccountVersions {
    const SLOTS: usize = 4096;

    fn new() -> Self {
        AccountVersions {
            slots: (0..Self::SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(&self, account_id: &str) -> &std::sync::atomic::AtomicU64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(account_id);
        &self.slots[(h % Self::SLOTS as u64) as usize]
    }

    fn get(&self, account_id: &str) -> u64 {
        self.slot(account_id)
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self, account_ids: &[String]) {
        for account_id in account_ids {
            self.slot(account_id)
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

struct OsEntropy;

impl Entropy for OsEntropy {
    fn id(&mut self, prefix: &str) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("{prefix}_{}", hex::encode(bytes))
    }
    fn token(&mut self) -> String {
        crate::secret::random_token()
    }
}

#[derive(Clone)]
pub struct WriterDeps {
    pub store: Store,
    pub settings: Settings,
    pub gate: Arc<dyn PolicyGate>,
    pub render: Render,
    pub metrics: Arc<Metrics>,
    pub wakers: Arc<Wakers>,
    /// Asked for more writes of each committed outcome (may be empty).
    pub sinks: Vec<Arc<dyn Sink>>,
}

impl Writer {
    /// Starts the writer threads: as many as the store allows
    /// ([`About::writer_threads`](super::About::writer_threads): one for
    /// sled and memory, whose commands never interleave, several for a
    /// store whose commands lock what they touch). They stop once every
    /// `Writer` clone is dropped, after flushing what they committed; the
    /// handle returned joins them all.
    #[allow(
        clippy::expect_used,
        reason = "at start-up only: a daemon that cannot start its writer threads cannot serve"
    )]
    pub fn start(deps: WriterDeps) -> (Writer, std::thread::JoinHandle<()>) {
        let threads = deps.store.writer_threads().max(1);
        let versions = Arc::new(AccountVersions::new());
        let split = deps.store.shared() && threads >= 2;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| mpsc::channel::<Job>(QUEUE_MAX / threads.min(QUEUE_MAX)))
            .unzip();
        let mut handles = Vec::with_capacity(threads);
        for (n, rx) in rxs.into_iter().enumerate() {
            let (deps, versions) = (deps.clone(), versions.clone());
            // On a shared store with two threads or more, the first runs
            // every account's commands in groups that never wait for a
            // lock; the others run what it found busy, and the commands
            // that lock everything, waiting for their locks.
            let role = if split && n == 0 {
                Role::Groups {
                    busy_to: txs[1..].to_vec(),
                }
            } else {
                Role::Waits
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("admind-writer-{n}"))
                    .spawn(move || run(deps, versions, rx, role))
                    .expect("spawning a writer thread"),
            );
        }
        let joiner = std::thread::Builder::new()
            .name("admind-writer-join".into())
            .spawn(move || {
                for handle in handles {
                    let _ = handle.join();
                }
            })
            .expect("spawning the writer joiner");
        (
            Writer {
                split,
                txs: txs.into(),
                deps: Arc::new(deps),
                versions,
                decide_jobs: start_decide_threads(),
            },
            joiner,
        )
    }

    /// The thread a job goes to. On a shared store with two threads or
    /// more: an account's command to the first (its groups never wait for
    /// a lock), a command that locks everything to the second (it waits
    /// for every group). Otherwise its account's (so one account's commands
    /// keep their order and never wait for each other's locks), else the
    /// first.
    fn thread_of(&self, account_id: Option<&str>, maintenance: bool) -> &mpsc::Sender<Job> {
        let n = match account_id {
            _ if self.split => usize::from(account_id.is_none() && !maintenance),
            Some(id) => thread_of_account(id, 0, self.txs.len()),
            None => 0,
        };
        &self.txs[n]
    }

    /// Commits `work`'s writes in one transaction on the writer thread;
    /// returns once they are durable. Wakes the event workers after.
    pub async fn submit_maintenance(&self, work: Maintenance) -> Result<(), Refusal> {
        self.maintain(work, false).await
    }

    /// Commits blind writes (a worker's bookkeeping) like a maintenance
    /// step: in one transaction, durable on return. On a store one process
    /// opens, the flush that makes them durable may be the next batch's,
    /// up to [`BOOKKEEPING_FLUSH_WAIT`] later.
    pub async fn submit_writes(&self, writes: Vec<Write>) -> Result<(), Refusal> {
        if writes.is_empty() {
            return Ok(());
        }
        self.maintain(Box::new(move |_| Ok(writes)), true).await
    }

    async fn maintain(&self, work: Maintenance, bookkeeping: bool) -> Result<(), Refusal> {
        let job = Work::Maintenance(work);
        match self
            .send(Principal::Operator, job, None, bookkeeping)
            .await?
        {
            Answer::Done(answer) => answer.map(|_| ()),
            Answer::Stale => Ok(()),
        }
    }

    /// Runs `command` as `actor`; returns once the outcome is durable.
    ///
    /// A command that may ask a `before_` hook, when a policy handles it,
    /// is first run off the writer (on a policy decision thread, against the
    /// current state, nothing committed) to decide the hook; the writer
    /// then runs it again with that answer, and commits only if the
    /// command asked the very same question (the same proposal: account,
    /// actor, both users as the policy sees them). Otherwise nothing is
    /// committed and it is decided again, up to [`PREDECIDE_ATTEMPTS_MAX`]
    /// times, after which the writer asks the policy itself. So a slow
    /// policy delays its own command, not the writer every account shares.
    pub async fn submit(&self, actor: Principal, command: Command) -> Result<Reply, Refusal> {
        if command
            .before_hook()
            .is_some_and(|hook| self.deps.gate.handles(hook))
        {
            for _ in 0..PREDECIDE_ATTEMPTS_MAX {
                let decided = self.decide(&actor, &command).await?;
                match self
                    .send(
                        actor.clone(),
                        Work::Command(command.clone()),
                        Some(decided),
                        false,
                    )
                    .await?
                {
                    Answer::Done(answer) => return answer,
                    Answer::Stale => {
                        self.deps.metrics.policy_decided_again.inc();
                    }
                }
            }
        }
        match self
            .send(actor, Work::Command(command), None, false)
            .await?
        {
            Answer::Done(answer) => answer,
            Answer::Stale => Err(Refusal::store("a command without a decided hook was stale")),
        }
    }

    /// Runs `command` off the writer with the real gate and keeps what its
    /// `before_` hook answered.
    async fn decide(&self, actor: &Principal, command: &Command) -> Result<Decided, Refusal> {
        let (deps, actor, command) = (self.deps.clone(), actor.clone(), command.clone());
        let versions = self.versions.clone();
        let (answer_tx, answer_rx) = oneshot::channel();
        let job: DecideJob = Box::new(move || {
            let gate = RecordingGate {
                real: deps.gate.as_ref(),
                seen: std::sync::Mutex::new(Vec::new()),
            };
            let mut entropy = OsEntropy;
            let mut ctx = Ctx {
                now: Utc::now(),
                entropy: &mut entropy,
                gate: &gate,
                settings: &deps.settings,
            };
            // Taken before the command reads anything: a commit after
            // this makes the decision stale, even one the reads saw.
            let account_version = command.info().account_id.map_or(0, |a| versions.get(a));
            // The outcome is dropped: only the hook's answer is kept.
            let _ = execute(&deps.store, &mut ctx, &actor, command);
            let answers = gate.seen.into_inner().unwrap_or_default();
            let _ = answer_tx.send(Decided {
                account_version,
                answers,
            });
        });
        let closed = || Refusal::store("the policy decision threads stopped");
        self.decide_jobs.send(job).await.map_err(|_| closed())?;
        answer_rx.await.map_err(|_| closed())
    }

    async fn send(
        &self,
        actor: Principal,
        work: Work,
        decided: Option<Decided>,
        bookkeeping: bool,
    ) -> Result<Answer, Refusal> {
        let (reply, answer) = oneshot::channel();
        let account_id = match &work {
            Work::Command(command) => command.info().account_id,
            Work::Maintenance(_) => None,
        };
        self.thread_of(account_id, matches!(work, Work::Maintenance(_)))
            .send(Job {
                actor,
                work,
                reply,
                bookkeeping,
                decided,
            })
            .await
            .map_err(|_| Refusal::store(StoreError::Closed.to_string()))?;
        answer
            .await
            .map_err(|_| Refusal::store(StoreError::Closed.to_string()))
    }
}

/// One of `count` threads from `first` on, the same for an account every
/// time (its commands keep their order).
fn thread_of_account(account_id: &str, first: usize, count: usize) -> usize {
    if count <= first + 1 {
        return first.min(count.saturating_sub(1));
    }
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(account_id);
    first + (h % (count - first) as u64) as usize
}

/// What a writer thread runs.
enum Role {
    /// Whatever comes, waiting for the locks its commands take.
    Waits,
    /// Groups of commands that never wait for an account's lock: the
    /// commands of an account another transaction holds go to one of
    /// `busy_to` (always the same for an account), whose thread waits.
    Groups { busy_to: Vec<mpsc::Sender<Job>> },
}

/// Which workers a commit gave work to: each is woken only for its own
/// queue (the outbound worker, woken by every hook event, read an empty
/// queue from PostgreSQL some 80 times a second under load).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Queued {
    /// Mail (the outbox worker).
    mail: bool,
    /// Hook events (the hook worker).
    hook_events: bool,
    /// Writes of a sink (the outbound deliveries' worker).
    sink_writes: bool,
}

impl Queued {
    const NOTHING: Queued = Queued {
        mail: false,
        hook_events: false,
        sink_writes: false,
    };

    /// Whom workers' writes give work to (an item put back for a retry, or
    /// moved).
    fn of_writes(writes: &[Write]) -> Queued {
        let mut queued = Queued::NOTHING;
        for write in writes {
            if let Write::QueuePut { queue, .. } = write {
                match queue {
                    super::QueueName::Outbox => queued.mail = true,
                    super::QueueName::Hooks => queued.hook_events = true,
                    super::QueueName::Deliveries => queued.sink_writes = true,
                    _ => {}
                }
            }
        }
        queued
    }
}

impl std::ops::BitOrAssign for Queued {
    fn bitor_assign(&mut self, other: Queued) {
        self.mail |= other.mail;
        self.hook_events |= other.hook_events;
        self.sink_writes |= other.sink_writes;
    }
}

/// Answers committed but not yet flushed, waiting for the flush that makes
/// them durable, and the workers that flush should wake.
#[derive(Default)]
struct Unflushed {
    answers: Vec<(oneshot::Sender<Answer>, Answer)>,
    since: Option<Instant>,
    queued: Queued,
}

impl Unflushed {
    /// Flushes, then answers every caller waiting and wakes the workers.
    fn flush(&mut self, deps: &WriterDeps) {
        let answers = std::mem::take(&mut self.answers);
        self.since = None;
        let started = Instant::now();
        let flushed = deps.store.flush();
        deps.metrics
            .store_flush_seconds
            .observe(started.elapsed().as_secs_f64());
        deps.metrics.store_batch_size.observe(answers.len() as f64);
        if let Err(e) = flushed {
            tracing::error!(error = %e, "flush failed; answering the batch with an error");
            for (reply, _) in answers {
                let _ = reply.send(Answer::Done(Err(Refusal::store(format!(
                    "flush failed: {e}"
                )))));
            }
            return;
        }
        for (reply, answer) in answers {
            // A caller that went away (timeout, disconnect) still had its
            // change committed; nobody is left to tell.
            let _ = reply.send(answer);
        }
        let queued = std::mem::take(&mut self.queued);
        if queued.mail {
            deps.wakers.outbox.notify_one();
        }
        if queued.hook_events {
            deps.wakers.hooks.notify_one();
        }
        if queued.sink_writes {
            deps.wakers.outbound.notify_one();
        }
    }
}

/// The next job; while answers wait for a flush, only until their
/// [`BOOKKEEPING_FLUSH_WAIT`] is over (`Err`: time to flush them). `None`:
/// every sender is gone.
fn next_job(
    rx: &mut mpsc::Receiver<Job>,
    timer: Option<&tokio::runtime::Runtime>,
    since: Option<Instant>,
) -> Result<Option<Job>, ()> {
    match (timer, since) {
        (Some(timer), Some(since)) => {
            let left = BOOKKEEPING_FLUSH_WAIT.saturating_sub(since.elapsed());
            // The timeout is made inside the timer's runtime, whose clock it
            // needs.
            timer
                .block_on(async { tokio::time::timeout(left, rx.recv()).await })
                .map_err(|_| ())
        }
        _ => Ok(rx.blocking_recv()),
    }
}

fn run(deps: WriterDeps, versions: Arc<AccountVersions>, mut rx: mpsc::Receiver<Job>, role: Role) {
    let mut entropy = OsEntropy;
    let mut batch = Vec::with_capacity(BATCH_MAX);
    // Bookkeeping waits for a command's flush only on a store one process
    // opens: on a shared store the flush is the group's COMMIT, which must
    // not stay open.
    let timer = if deps.store.shared() {
        None
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no timer on the writer; bookkeeping is flushed on its own"))
            .ok()
    };
    let mut unflushed = Unflushed::default();
    let mut last_command: Option<Instant> = None;
    loop {
        let first = match next_job(&mut rx, timer.as_ref(), unflushed.since) {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(()) => {
                unflushed.flush(&deps);
                continue;
            }
        };
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let only_bookkeeping = batch.iter().all(|job| job.bookkeeping);
        if batch.iter().any(|job| matches!(job.work, Work::Command(_))) {
            last_command = Some(Instant::now());
        }
        let commands_come = last_command.is_some_and(|at| at.elapsed() < COMMANDS_RECENT);
        let answers = &mut unflushed.answers;
        let mut queued = Queued::NOTHING;
        // Where a group's commits are one transaction (PostgreSQL, sled),
        // the commands naming an account are run together and committed
        // by the group's flush (on PostgreSQL one WAL sync, on sled one
        // transaction: each of sled's costs two synced log writes); the
        // rest one by one after.
        let rest: Vec<Job> = if deps.store.groups_commits() {
            let (grouped, rest): (Vec<Job>, Vec<Job>) =
                batch.drain(..).partition(|job| match &job.work {
                    Work::Command(command) => command.info().account_id.is_some(),
                    Work::Maintenance(_) => false,
                });
            let mut grouped = grouped.into_iter().peekable();
            let mut busy = Vec::new();
            while grouped.peek().is_some() {
                let group: Vec<Job> = grouped.by_ref().take(GROUP_MAX).collect();
                let waits = matches!(role, Role::Waits);
                queued |= run_group(
                    &deps,
                    &versions,
                    &mut entropy,
                    group,
                    answers,
                    waits,
                    &mut busy,
                );
            }
            if let Role::Groups { busy_to } = &role {
                for job in busy {
                    let account_id = match &job.work {
                        Work::Command(command) => command.info().account_id.unwrap_or_default(),
                        Work::Maintenance(_) => "",
                    };
                    let to = &busy_to[thread_of_account(account_id, 0, busy_to.len())];
                    // A full queue there: run it here, after this batch.
                    if let Err(
                        mpsc::error::TrySendError::Full(job)
                        | mpsc::error::TrySendError::Closed(job),
                    ) = to.try_send(job)
                    {
                        batch.push(job);
                    }
                }
            }
            let (bookkeeping, rest): (Vec<Job>, Vec<Job>) = rest
                .into_iter()
                .partition(|job| matches!(job.work, Work::Maintenance(_)));
            queued |= run_bookkeeping_together(&deps, bookkeeping, answers);
            // Commands of busy accounts that could not be handed on.
            rest.into_iter().chain(batch.drain(..)).collect()
        } else {
            std::mem::take(&mut batch)
        };
        for job in rest {
            let (answer, q) = run_alone(
                &deps,
                &versions,
                &mut entropy,
                &job.actor,
                job.work,
                job.decided,
            );
            queued |= q;
            answers.push((job.reply, answer));
        }
        unflushed.queued |= queued;
        if only_bookkeeping
            && commands_come
            && timer.is_some()
            && unflushed.answers.len() < BATCH_MAX
        {
            unflushed.since.get_or_insert_with(Instant::now);
        } else {
            unflushed.flush(&deps);
        }
    }
    unflushed.flush(&deps);
}

/// Runs the workers' bookkeeping jobs of one batch (settled queue items)
/// in one transaction of a store that groups commits: one commit (one WAL
/// sync, or one sled transaction) instead of one per item. A job whose writes cannot be computed fails alone; if
/// the joint commit fails, each job's writes are committed on their own,
/// so one bad write fails no other. Returns whom what committed gives work
/// to (see [`Queued::of_writes`]).
fn run_bookkeeping_together(
    deps: &WriterDeps,
    jobs: Vec<Job>,
    answers: &mut Vec<(oneshot::Sender<Answer>, Answer)>,
) -> Queued {
    let mut computed: Vec<(oneshot::Sender<Answer>, Vec<Write>)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Work::Maintenance(work) = job.work else {
            continue;
        };
        match work(&deps.store) {
            Ok(writes) => computed.push((job.reply, writes)),
            Err(e) => {
                tracing::error!(error = %e, "a maintenance write failed");
                answers.push((job.reply, Answer::Done(Err(Refusal::store(e.to_string())))));
            }
        }
    }
    if computed.is_empty() {
        return Queued::NOTHING;
    }
    let all: Vec<Write> = computed
        .iter()
        .flat_map(|(_, w)| w.iter().cloned())
        .collect();
    let wakes = Queued::of_writes(&all);
    if deps.store.commit(Transaction::of_writes(all)).is_ok() {
        answers.extend(
            computed
                .into_iter()
                .map(|(reply, _)| (reply, Answer::Done(Ok(Reply::Done)))),
        );
        return wakes;
    }
    let mut queued = Queued::NOTHING;
    for (reply, writes) in computed {
        let q = Queued::of_writes(&writes);
        let answer = match deps.store.commit(Transaction::of_writes(writes)) {
            Ok(()) => {
                queued |= q;
                Ok(Reply::Done)
            }
            Err(e) => {
                tracing::error!(error = %e, "a maintenance write failed");
                Err(Refusal::store(e.to_string()))
            }
        };
        answers.push((reply, Answer::Done(answer)));
    }
    queued
}

/// Runs one job on its own: a command, or workers' bookkeeping. Returns
/// the answer and which workers it gave work to.
fn run_alone(
    deps: &WriterDeps,
    versions: &AccountVersions,
    entropy: &mut OsEntropy,
    actor: &Principal,
    work: Work,
    decided: Option<Decided>,
) -> (Answer, Queued) {
    match work {
        Work::Command(command) => run_one(deps, versions, entropy, actor, command, decided, None),
        Work::Maintenance(work) => {
            let committed = work(&deps.store).and_then(|writes| {
                let wakes = Queued::of_writes(&writes);
                deps.store.commit(Transaction::of_writes(writes))?;
                Ok(wakes)
            });
            match committed {
                Ok(queued) => (Answer::Done(Ok(Reply::Done)), queued),
                Err(e) => {
                    tracing::error!(error = %e, "a maintenance write failed");
                    (
                        Answer::Done(Err(Refusal::store(e.to_string()))),
                        Queued::NOTHING,
                    )
                }
            }
        }
    }
}

/// Commands in one group, at most: each runs in a savepoint of the group's
/// transaction, and PostgreSQL keeps a transaction's first 64
/// subtransactions in shared memory.
pub const GROUP_MAX: usize = 32;

/// What a group of commands shares while it runs: the accounts whose state
/// it changed (their versions are bumped once the group is committed; a
/// command decided ahead on one of them is decided again).
#[derive(Default)]
struct Group {
    touched: std::collections::HashSet<String>,
}

/// A group's accounts, sorted and once each.
fn accounts_of(jobs: &[Job]) -> Vec<String> {
    let mut accounts: Vec<String> = jobs
        .iter()
        .filter_map(|job| match &job.work {
            Work::Command(command) => command.info().account_id.map(str::to_string),
            Work::Maintenance(_) => None,
        })
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

/// A copy of each command, kept until the group is committed to run each
/// again alone.
fn copies_of(jobs: &[Job]) -> Vec<(Principal, Command, Option<Decided>)> {
    jobs.iter()
        .filter_map(|job| match &job.work {
            Work::Command(command) => {
                Some((job.actor.clone(), command.clone(), job.decided.clone()))
            }
            Work::Maintenance(_) => None,
        })
        .collect()
}

/// Ids a group draws ahead per command (a transfer's audit entry, two
/// mails and its event); a commit that needs more draws them then.
const IDS_PER_COMMAND: usize = 4;

/// The members a group's commands name in their accounts (the acting
/// member, the target), each once: what the group will read.
fn members_named(jobs: &[Job]) -> Vec<(String, String)> {
    let mut named = Vec::with_capacity(jobs.len() * 2);
    for job in jobs {
        let Work::Command(command) = &job.work else {
            continue;
        };
        let info = command.info();
        let Some(account_id) = info.account_id else {
            continue;
        };
        if let Principal::Member {
            account_id: actor_account,
            user_id,
        } = &job.actor
        {
            if actor_account.as_str() == account_id {
                named.push((account_id.to_string(), user_id.to_string()));
            }
        }
        if let Target::User(user_id) | Target::UserEmail(user_id, _) = info.target {
            named.push((account_id.to_string(), user_id.to_string()));
        }
    }
    named.sort_unstable();
    named.dedup();
    named
}

/// Runs commands of different accounts (or several of one) in one
/// transaction of a store that groups commits, their accounts locked
/// together in key order on a shared store, each isolated (a refusal or a
/// failed write leaves nothing and fails no other), committed by one
/// flush: one WAL sync (one sled transaction) for the group.
/// If the group's commit fails, each command is run again on its own.
/// Unless it `waits`, the group takes only the locks no other transaction
/// holds, and the commands of the other accounts are pushed to `busy`, not
/// run. Answers are pushed to `answers`; returns which workers the group
/// gave work to.
fn run_group(
    deps: &WriterDeps,
    versions: &AccountVersions,
    entropy: &mut OsEntropy,
    jobs: Vec<Job>,
    answers: &mut Vec<(oneshot::Sender<Answer>, Answer)>,
    waits: bool,
    busy: &mut Vec<Job>,
) -> Queued {
    let accounts = accounts_of(&jobs);
    let mut replies = Vec::with_capacity(jobs.len());
    let mut results = Vec::with_capacity(jobs.len());
    let mut group = Group::default();
    let members = members_named(&jobs);
    let wanted = Prefetch {
        accounts: &accounts,
        members: members
            .iter()
            .map(|(a, u)| (a.as_str(), u.as_str()))
            .collect(),
        integrations_max: deps.settings.integrations_per_account_max,
        ids: jobs.len() * IDS_PER_COMMAND,
    };
    let scope = if waits {
        LockScope::Accounts(&accounts)
    } else {
        LockScope::AccountsIfFree(&accounts)
    };
    let opened = deps
        .store
        .lock_command(scope)
        .and_then(|lock| deps.store.prefetch(&wanted).map(|held| (lock, held)));
    let mut jobs = jobs;
    let opened = opened.map(|(lock, held_elsewhere)| {
        if !held_elsewhere.is_empty() {
            let (elsewhere, here): (Vec<Job>, Vec<Job>) = jobs.drain(..).partition(|job| {
                matches!(&job.work, Work::Command(command)
                    if command.info().account_id.is_some_and(|a| held_elsewhere.iter().any(|h| h == a)))
            });
            busy.extend(elsewhere);
            jobs = here;
        }
        lock
    });
    let copies = copies_of(&jobs);
    let committed = match opened {
        Ok(lock) => {
            for job in jobs {
                replies.push(job.reply);
                if let Work::Command(command) = job.work {
                    results.push(run_one(
                        deps,
                        versions,
                        entropy,
                        &job.actor,
                        command,
                        job.decided,
                        Some(&mut group),
                    ));
                }
            }
            let started = Instant::now();
            let flushed = deps.store.flush();
            deps.metrics
                .store_flush_seconds
                .observe(started.elapsed().as_secs_f64());
            drop(lock);
            flushed
        }
        Err(e) => {
            replies.extend(jobs.into_iter().map(|job| job.reply));
            Err(e)
        }
    };
    let mut queued = Queued::NOTHING;
    match committed {
        Ok(()) => {
            let touched: Vec<String> = group.touched.into_iter().collect();
            versions.bump(&touched);
            deps.metrics.store_batch_size.observe(results.len() as f64);
            for (reply, (answer, q)) in replies.into_iter().zip(results) {
                queued |= q;
                answers.push((reply, answer));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, commands = copies.len(), "a group's commit failed; running its commands one by one");
            // Whatever the group bumped may have been rolled back: a
            // decision made meanwhile is made again.
            versions.bump(&accounts);
            for (reply, (actor, command, decided)) in replies.into_iter().zip(copies) {
                let (answer, q) = run_one(deps, versions, entropy, &actor, command, decided, None);
                queued |= q;
                answers.push((reply, answer));
            }
        }
    }
    queued
}

/// Runs and commits one command (in `group`, when it runs in one). Returns
/// the answer and which workers it gave work to.
fn run_one(
    deps: &WriterDeps,
    versions: &AccountVersions,
    entropy: &mut OsEntropy,
    actor: &Principal,
    command: Command,
    decided: Option<Decided>,
    group: Option<&mut Group>,
) -> (Answer, Queued) {
    let now = Utc::now();
    let decided_gate = decided.map(|decided| DecidedGate {
        decided,
        asked: std::sync::atomic::AtomicUsize::new(0),
        stale: std::sync::atomic::AtomicBool::new(false),
    });
    let gate: &dyn PolicyGate = match &decided_gate {
        Some(g) => g,
        None => deps.gate.as_ref(),
    };
    let mut ctx = Ctx {
        now,
        entropy,
        gate,
        settings: &deps.settings,
    };
    // What a refusal's audit entry needs, kept while the command moves into
    // the core (cheaper than keeping a copy of the whole command).
    let subject = command.info().subject();
    // Held from before the command's first read until after its commit:
    // on a shared store no replica's command on the same account (or,
    // for commands without one, no command at all) interleaves.
    let scope = match subject.account_id.as_deref() {
        Some(account_id) => LockScope::Account(account_id),
        None => LockScope::Everything,
    };
    let _lock = match deps.store.lock_command(scope) {
        Ok(lock) => lock,
        Err(e) => {
            tracing::error!(error = %e, action = subject.action, "taking the command's lock failed");
            return (
                Answer::Done(Err(Refusal::store(e.to_string()))),
                Queued::NOTHING,
            );
        }
    };
    // Decided on another version of the account's state: decide again
    // (under the lock, so no commit of this account slips in between).
    if let (Some(g), Some(account_id)) = (&decided_gate, subject.account_id.as_deref()) {
        let changed_in_group = group
            .as_ref()
            .is_some_and(|group| group.touched.contains(account_id));
        if g.decided.account_version != versions.get(account_id) || changed_in_group {
            return (Answer::Stale, Queued::NOTHING);
        }
    }
    let executed = execute(&deps.store, &mut ctx, actor, command);
    if decided_gate
        .as_ref()
        .is_some_and(|g| g.stale.load(std::sync::atomic::Ordering::Relaxed))
    {
        return (Answer::Stale, Queued::NOTHING);
    }
    let (answer, queued) = match executed {
        Ok(outcome) => match commit_outcome(deps, versions, outcome, group) {
            Ok((reply, queued)) => {
                deps.metrics.store_commits.inc();
                (Ok(reply), queued)
            }
            Err(e) => {
                tracing::error!(error = %e, action = subject.action, "commit failed");
                (Err(Refusal::store(e.to_string())), Queued::NOTHING)
            }
        },
        Err(mut refusal) => {
            let audit = refusal_audit(actor, &subject, &refusal, now);
            let events = std::mem::take(&mut refusal.events);
            if audit.is_none() && events.is_empty() {
                return (Answer::Done(Err(refusal)), Queued::NOTHING);
            }
            let committed = (|| -> Result<Queued, StoreError> {
                let mut writes = Vec::new();
                for sink in &deps.sinks {
                    writes.extend(sink.writes(&deps.store, &events, &[], now)?);
                }
                let queued = Queued {
                    mail: false,
                    hook_events: !events.is_empty(),
                    sink_writes: !writes.is_empty(),
                };
                deps.store.commit(Transaction {
                    audit,
                    events,
                    writes,
                    ..Transaction::default()
                })?;
                Ok(queued)
            })();
            match committed {
                Ok(queued) => {
                    deps.metrics.store_commits.inc();
                    (Err(refusal), queued)
                }
                Err(e) => {
                    tracing::error!(error = %e, "committing a refusal's audit entry failed");
                    (Err(Refusal::store(e.to_string())), Queued::NOTHING)
                }
            }
        }
    };
    (Answer::Done(answer), queued)
}

/// Commits an outcome; returns its reply and which workers it queued work
/// for (mail, hook events, writes of a sink).
fn commit_outcome(
    deps: &WriterDeps,
    versions: &AccountVersions,
    outcome: Outcome,
    group: Option<&mut Group>,
) -> Result<(Reply, Queued), StoreError> {
    // The changes move into the transaction; their accounts' versions are
    // bumped once it is committed.
    let mut touched: Vec<&str> = outcome
        .changes
        .iter()
        .filter_map(Change::account_state_of)
        .collect();
    touched.dedup();
    let touched: Vec<String> = touched.into_iter().map(str::to_string).collect();
    let mut writes = Vec::new();
    for sink in &deps.sinks {
        writes.extend(sink.writes(&deps.store, &outcome.events, &outcome.changes, Utc::now())?);
    }
    let queued = Queued {
        mail: !outcome.notices.is_empty(),
        hook_events: !outcome.events.is_empty(),
        sink_writes: !writes.is_empty(),
    };
    // A notice's language is known when the command changed its account.
    let mails = outcome
        .notices
        .iter()
        .map(|n| {
            let account = outcome.changes.iter().find_map(|c| match c {
                Change::PutAccount(a) if a.id == n.account_id() => Some(a),
                _ => None,
            });
            (deps.render)(n, account)
        })
        .collect();
    deps.store.commit(Transaction {
        changes: outcome.changes,
        audit: outcome.audit,
        mails,
        events: outcome.events,
        writes,
    })?;
    match group {
        // Bumped once the group is committed (a decision thread reading
        // before that reads the state before it).
        Some(group) => group.touched.extend(touched),
        None => versions.bump(&touched),
    }
    Ok((outcome.reply, queued))
}

/// Every `period` (and once at start): deletes what `find` reports (run on
/// the blocking pool, at most [`MAINTENANCE_WRITES_MAX`] writes a step),
/// committing each step through the writer until nothing is left; reports
/// each step's count to `pruned`. Retention and pruning all run this way.
pub async fn prune_every<F>(
    period: std::time::Duration,
    what: &'static str,
    store: Store,
    writer: Writer,
    find: F,
    pruned: impl Fn(usize) + Send,
) where
    F: Fn(&Store, usize) -> Result<Vec<Write>, StoreError> + Clone + Send + 'static,
{
    loop {
        loop {
            let (s, f) = (store.clone(), find.clone());
            let writes =
                match tokio::task::spawn_blocking(move || f(&s, MAINTENANCE_WRITES_MAX)).await {
                    Ok(Ok(writes)) => writes,
                    Ok(Err(e)) => {
                        tracing::warn!(what, error = %e, "pruning: reading failed");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(what, error = %e, "pruning: the task failed");
                        break;
                    }
                };
            let n = writes.len();
            if n == 0 {
                break;
            }
            if let Err(e) = writer.submit_writes(writes).await {
                tracing::warn!(what, error = %e, "pruning: the commit failed");
                break;
            }
            tracing::info!(what, count = n, "pruned");
            pruned(n);
        }
        tokio::time::sleep(period).await;
    }
}
