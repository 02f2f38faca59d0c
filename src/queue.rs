//! The durable queues and the one worker that drains them.
//!
//! The writer commits a queue item (a mail, an after-hook event, an
//! outbound delivery) in the transaction of its change and, once the batch
//! is flushed, wakes the queue's worker. Every queue is drained by the same
//! [`QueueWorker`]: it claims items that are on disk and due, attempts them
//! (one or several at once), counts attempts, reschedules a failure on the
//! queue's retry schedule or gives up on it (dead letter) and keeps the
//! queue's metrics. Its bookkeeping (removals, reschedules, dead letters)
//! goes through the writer like every other write, each item's as soon as
//! it is attempted; the next attempts do not wait for that commit (the
//! writer commits those that arrive together at once, and a pass ends when
//! all of its items are settled). A [`Queue`] supplies only what differs:
//! how to attempt an item, its retry schedule, and the writes that settle
//! it. A queue with a [`Queue::BATCH`] (the outbox) attempts that many
//! items at once and settles them in one commit.
//!
//! On a store several replicas share, a pass attempts only the items it
//! claimed ([`crate::store::Backend::queue_claim`]): no item is attempted
//! by two live replicas, and a dead replica's claims lapse after
//! `store.claim_lease_ms` for another to take over.
//!
//! A queue may run in lanes ([`Queue::LANES`]): each item names its lane
//! (the after-hooks: the event's account); one lane's items run one at a
//! time in id (commit) order, different lanes in parallel, at most `LANES`
//! at once; the items a lane runs in a row (up to [`LANE_SETTLE_MAX`])
//! are settled together, after the last of them. On a shared
//! store the order holds across replicas: a lane whose earlier item another
//! replica holds waits for it to be settled (`QueueWorker::in_lane_order`). So one
//! account's slow policy delays only that account's events, and the
//! dispatcher never waits for a lane: it hands new items to their lanes and
//! looks again. Items handed out are not read again until settled (at most
//! [`IN_FLIGHT_MAX`] at once), so a long lane never hides newer items of
//! other lanes from the scan.
//!
//! Delivery is at least once: an item whose removal a crash lost is
//! attempted again, which every queue tolerates (a mail file is rewritten
//! under the same name, hooks are at least once, deliveries keep their
//! `webhook-id`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use crate::domain::Refusal;
pub use crate::metrics::QueueMetrics;
use crate::store::writer::Writer;
use crate::store::{QueueName, Store, StoreError, Write};

pub use crate::store::writer::Wakers;

/// Due items a pass takes, at most.
pub const SCAN_MAX: usize = 256;
/// Items a pass looks at to find due ones, at most: items in back-off
/// (not due yet) are stepped over, so a few hundred retries waiting for
/// their time never hide newer items that are due.
pub const LOOK_MAX: usize = 16_384;
/// Items of one lane run before they are settled together, at most.
pub const LANE_SETTLE_MAX: usize = 32;
/// Items a shared store's window hands over per round trip.
const WINDOW_PAGE: usize = 300;
/// On a shared store, how long a woken worker lets more commits arrive
/// before it scans: under load one query then finds the items of many
/// commands (each scan was ~5 queries per transfer on PostgreSQL).
pub const WAKE_COALESCE: Duration = Duration::from_millis(10);
/// A worker with nothing due looks again after this, woken or not.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// On a shared store, how often a laned worker looks at the queue for items
/// no live replica holds (released to it by a replica whose lane waited, or
/// held by one that died); its own new items come handed between looks.
/// A look steps over every item the replicas hold: made at every wake-up
/// under load, those looks were the largest part of PostgreSQL's time.
pub const FREE_LOOK_EVERY: Duration = Duration::from_millis(250);
/// Items a laned queue has handed to its lanes and not yet settled, at
/// most: what it holds in memory, and what each scan steps over.
pub const IN_FLIGHT_MAX: usize = 4096;

/// How a scan of a shared store looks at claimed items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// A worker in passes: it skips what other replicas hold.
    Passes,
    /// A laned worker: it sees only what no live replica holds (released
    /// to it, or its holder died); its own new items come handed, and the
    /// order the others' items impose comes from
    /// `Backend::queue_lane_blockers`.
    Lanes,
    /// Everything: a laned worker whose hand-over was dropped finds its
    /// own new items this way.
    Everything,
}

/// What one attempt came to.
pub enum Attempt {
    Done,
    /// Try again later (`after`: the receiver's own wish, e.g. Retry-After).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// No point trying again.
    GiveUp {
        error: String,
    },
}

/// How an item left its queue.
pub enum Settled {
    Done,
    /// Given up on (its last error is on the item).
    Dead,
}

/// A queue: its items, how one is attempted, and where it goes after.
pub trait Queue: Send + Sync + 'static {
    type Item: Serialize + DeserializeOwned + Send + Sync;
    /// For logs.
    const NAME: &'static str;
    const QUEUE: QueueName;
    /// Items attempted at once.
    const PARALLEL: usize = 1;
    /// Whether each item is settled right after its own attempt and a
    /// chunk ends when all of its items are settled (committed): a crash
    /// then repeats at most the chunk's items attempted and not yet
    /// settled, at the cost of waiting for those commits. Off, the next
    /// attempts go on while settlements commit, and a crash may repeat
    /// more of a pass.
    const SETTLE_EACH_CHUNK: bool = false;
    /// Items attempted together by [`Queue::attempt_batch`] and settled in
    /// one commit; 0: each on its own ([`Queue::attempt`], `PARALLEL` at
    /// once, each settled as soon as it is attempted).
    const BATCH: usize = 0;
    /// Lanes run at once; 0: no lanes, items are attempted in passes.
    const LANES: usize = 0;
    /// The lane of an item (laned queues only): its items run in order.
    fn lane(_item: &Self::Item) -> String {
        String::new()
    }

    fn id(item: &Self::Item) -> u64;
    fn due_at(item: &Self::Item) -> DateTime<Utc>;
    /// Schedules the item's next attempt.
    fn set_due_at(item: &mut Self::Item, at: DateTime<Utc>);
    /// Notes a failed attempt on the item (its error, and its count where
    /// `attempt` does not keep it).
    fn record_failure(item: &mut Self::Item, error: &str);

    /// One attempt; may note what it learnt on the item.
    fn attempt(&self, item: &mut Self::Item) -> impl Future<Output = Attempt> + Send;
    /// Several attempts at once (queues with a `BATCH`, and a lane's run of
    /// items): what each came to, one per item, in the items' order. By
    /// default one after another.
    fn attempt_batch(&self, items: &mut [Self::Item]) -> impl Future<Output = Vec<Attempt>> + Send {
        async move {
            let mut results = Vec::with_capacity(items.len());
            for item in items.iter_mut() {
                results.push(self.attempt(item).await);
            }
            results
        }
    }
    /// When to try again after a failure (`wish`: the receiver's own), or
    /// `None` to give up.
    fn retry_in(&self, item: &Self::Item, wish: Option<Duration>) -> Option<Duration>;
    /// The writes that keep an item for its next attempt (`set_due_at`
    /// has scheduled it): by default, the item written again.
    fn reschedule(&self, item: Self::Item) -> Vec<Write> {
        vec![Store::queue_put(Self::QUEUE, Self::id(&item), &item)]
    }
    /// What an item's attempt counts in the queue's metrics, once it is
    /// concluded (`None`: to be retried). By default the item is one
    /// unit: done, or failed (and, when `Dead`, given up on).
    fn tally(_item: &Self::Item, attempt: &Attempt, how: Option<&Settled>) -> Tally {
        Tally {
            done: u64::from(matches!(how, Some(Settled::Done))),
            failures: u64::from(!matches!(attempt, Attempt::Done)),
            dead: u64::from(matches!(how, Some(Settled::Dead))),
        }
    }
    /// The writes that take a settled item off the queue (remove it, or move
    /// it to a done or dead tree, and whatever else settling implies).
    fn settle(
        &self,
        store: &Store,
        item: Self::Item,
        how: Settled,
    ) -> Result<Vec<Write>, StoreError>;
}

/// What an attempt counts in its queue's metrics ([`Queue::tally`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub done: u64,
    pub failures: u64,
    pub dead: u64,
}

/// Who claims queue items on a shared store, and for how long.
#[derive(Clone)]
pub struct Claims {
    /// This replica's id.
    pub owner: Arc<str>,
    pub lease: Duration,
}

pub struct QueueWorker<Q: Queue> {
    pub queue: Q,
    pub claims: Claims,
    pub store: Store,
    pub writer: Writer,
    pub wake: Arc<Wakers>,
    pub waker: fn(&Wakers) -> &Notify,
    pub metrics: QueueMetrics,
    /// On a shared store, the ids this replica claimed and has not settled
    /// yet: their claims are renewed while they wait or run.
    held: Mutex<HashSet<u64>>,
    /// On a shared store that hands this process its own new items
    /// (`Backend::take_committed`), when the queue is next scanned: between
    /// scans a pass takes only what was handed (no query for the queue).
    next_scan: Mutex<std::time::Instant>,
    /// How many due items a pass's scan takes: `SCAN_MAX`, doubled after
    /// each full scan up to `IN_FLIGHT_MAX` (a queue behind its load takes
    /// more a pass, each pass costing about the same wait for its
    /// settlements), back to `SCAN_MAX` once a scan is not full.
    scan_room: Mutex<usize>,
    /// The ids the last scan of a shared store found: an item committed
    /// between a hand-over and that scan is found by both, and the next
    /// hand-over leaves it out (the scan's pass attempted it).
    last_scanned: Mutex<HashSet<u64>>,
    /// A laned worker on a shared store whose hand-over was dropped: it
    /// looks at the whole queue, its own claims included, until a look
    /// finds less than it has room for.
    catching_up: Mutex<bool>,
    /// A laned worker on a store only this process opens: the highest id
    /// it handed to a lane, and when it next looks at the whole queue.
    /// Between those looks it reads only what lies past that id (ids grow
    /// in commit order there, and laned items are never rescheduled): a
    /// look from the start stepped over every item in flight, thousands
    /// under load, at every wake-up.
    lane_cursor: Mutex<LaneCursor>,
}

struct LaneCursor {
    handed_up_to: u64,
    full_look_at: std::time::Instant,
}

impl<Q: Queue> QueueWorker<Q> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        queue: Q,
        claims: Claims,
        store: Store,
        writer: Writer,
        wake: Arc<Wakers>,
        waker: fn(&Wakers) -> &Notify,
        metrics: QueueMetrics,
    ) -> Self {
        QueueWorker {
            queue,
            claims,
            store,
            writer,
            wake,
            waker,
            metrics,
            held: Mutex::new(HashSet::new()),
            next_scan: Mutex::new(std::time::Instant::now()),
            scan_room: Mutex::new(SCAN_MAX),
            last_scanned: Mutex::new(HashSet::new()),
            catching_up: Mutex::new(false),
            lane_cursor: Mutex::new(LaneCursor {
                handed_up_to: 0,
                full_look_at: std::time::Instant::now(),
            }),
        }
    }

    pub async fn run(self) {
        let this = Arc::new(self);
        let work = async {
            if Q::LANES > 0 {
                this.clone().run_in_lanes().await
            } else {
                this.clone().run_passes().await
            }
        };
        // In this task, not a task of its own: aborting the worker at
        // shutdown ends the renewal too (a renewal left running would hold
        // the writer, whose thread shutdown waits for).
        if this.store.shared() {
            tokio::select! {
                () = this.clone().renew_claims() => {}
                () = work => {}
            }
        } else {
            work.await
        }
    }

    /// Keeps this replica's claims on the items it holds (waiting in a lane
    /// or in a pass, or being attempted) from lapsing: renewed every third
    /// of the lease. Without it an item that waited or ran longer than the
    /// lease was taken and attempted again by another replica, alive as
    /// this one was (a delivery sent twice, an account's hooks out of
    /// order). A dead replica renews nothing: its items lapse as before.
    async fn renew_claims(self: Arc<Self>) {
        let every = (self.claims.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<u64> = lock(&self.held).iter().copied().collect();
            if ids.is_empty() {
                continue;
            }
            if let Err(e) =
                self.store
                    .queue_claim(Q::QUEUE, &ids, &self.claims.owner, self.claims.lease)
            {
                tracing::warn!(queue = Q::NAME, error = %e, "renewing claims failed");
            }
        }
    }

    async fn run_passes(self: Arc<Self>) {
        loop {
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(queue = Q::NAME, error = %e, "queue pass failed");
                    IDLE_POLL
                }
            };
            if !wait.is_zero() {
                self.wait_for_work(wait).await;
            }
        }
    }

    /// Waits until woken (the writer committed items) or `wait` passed. On
    /// a shared store a wake is followed by [`WAKE_COALESCE`], so that one
    /// scan of the queue (a database query) takes the items of many
    /// commits instead of one each.
    async fn wait_for_work(&self, wait: Duration) {
        let woken = tokio::time::timeout(wait, (self.waker)(&self.wake).notified())
            .await
            .is_ok();
        if woken && self.store.shared() {
            tokio::time::sleep(WAKE_COALESCE).await;
        }
    }

    /// Attempts what is durable and due; returns how long to wait before
    /// the next pass (zero when it did something: more may wait).
    pub async fn pass(&self) -> Result<Duration, Refusal> {
        let (due, next, looked) = match self.handed()? {
            Ok(handed) => handed,
            Err(waiting) => {
                // The scan takes at least what was handed since the last
                // pass and SCAN_MAX more: at SCAN_MAX alone, a load that
                // commits more than that during a pass kept every pass
                // scanning (each one full) and the backlog grew.
                let room = (*lock(&self.scan_room))
                    .max(waiting + SCAN_MAX)
                    .min(IN_FLIGHT_MAX);
                let (items, next, looked) =
                    self.scan_due(0, &HashSet::new(), room, Look::Passes)?;
                // A full batch: more may be due, scan again next pass,
                // and take more.
                let full = items.len() >= room;
                *lock(&self.scan_room) = if full {
                    (room * 2).min(IN_FLIGHT_MAX)
                } else {
                    SCAN_MAX
                };
                let (due, claimed_next) = self.claimed(items)?;
                let next = next.min(claimed_next);
                *lock(&self.next_scan) =
                    std::time::Instant::now() + if full { Duration::ZERO } else { next };
                (due, next, looked)
            }
        };
        let scanned = looked as i64;
        self.metrics.depth.set(scanned);
        if due.is_empty() {
            return Ok(next);
        }
        let taken = due.len();
        let mut due = due.into_iter();
        let mut settled = 0;
        // Each item's settling goes to the writer as soon as the item is
        // attempted, not with the pass: a crash between an attempt and its
        // settling repeats the attempt (a mail rewritten, a delivery sent
        // again under its `webhook-id`), so the window is one item's. The
        // next attempts do not wait for those commits (one commit per item
        // would bound a queue to the writer's round trips: mail fell
        // behind the load on PostgreSQL); the writer commits the
        // settlements in flight together, and the pass ends once all are.
        let mut settling = futures_util::stream::FuturesUnordered::new();
        let mut failed = None;
        // Counts what left the queue; keeps the first failure.
        let mut tally = |done: Result<i64, Refusal>| match done {
            Ok(left) => settled += left,
            Err(e) => {
                if failed.is_none() {
                    failed = Some(e);
                }
            }
        };
        let size = if Q::BATCH > 0 {
            Q::BATCH
        } else {
            Q::PARALLEL.max(1)
        };
        loop {
            let mut chunk: Vec<Q::Item> = due.by_ref().take(size).collect();
            if chunk.is_empty() {
                break;
            }
            if Q::BATCH > 0 {
                // Attempted together, settled in one commit while the next
                // batch is attempted: a crash repeats at most this batch.
                let results = self.queue.attempt_batch(&mut chunk).await;
                settling.push(self.settle_attempted(chunk.into_iter().zip(results).collect()));
                while let Some(Some(done)) = settling.next().now_or_never() {
                    tally(done);
                }
                continue;
            }
            if Q::SETTLE_EACH_CHUNK {
                // Each item settled right after its own attempt, the chunk
                // over once all are: a crash repeats at most this chunk's
                // items that were attempted and not yet settled.
                let each = chunk.into_iter().map(|mut item| async move {
                    let result = self.queue.attempt(&mut item).await;
                    self.settle_attempted(vec![(item, result)]).await
                });
                for done in futures_util::future::join_all(each).await {
                    tally(done);
                }
                continue;
            }
            let attempts = chunk.into_iter().map(|mut item| async move {
                let result = self.queue.attempt(&mut item).await;
                (item, result)
            });
            for (item, result) in futures_util::future::join_all(attempts).await {
                settling.push(self.settle_attempted(vec![(item, result)]));
            }
            // Hands the new settlements to the writer now (a future does
            // nothing until polled), and counts those already committed.
            while let Some(Some(done)) = settling.next().now_or_never() {
                tally(done);
            }
        }
        // Every settlement is awaited, failed or not (each forgets its item
        // from `held`); the first failure is the pass's.
        while let Some(done) = settling.next().await {
            tally(done);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // What is left once this pass's items are off the queue.
        self.metrics.depth.set(scanned - settled);
        Ok(self.after_work(taken))
    }

    /// How long to wait after a pass (or a dispatch) that took `taken`
    /// items: none when it took a full batch (more may wait); on a shared
    /// store otherwise [`WAKE_COALESCE`], so that the next scan (a database
    /// query) finds the items of many commits, not of one or two (scans
    /// were most of PostgreSQL's time under load).
    fn after_work(&self, taken: usize) -> Duration {
        if taken >= SCAN_MAX || !self.store.shared() {
            Duration::ZERO
        } else {
            WAKE_COALESCE
        }
    }

    /// Durable items that are due, oldest first, at most `room`, stepping
    /// over those in `skip` (handed out already) and those not due yet (at
    /// most [`LOOK_MAX`] looked at); how long until the first not-due one
    /// is due; and how many it looked at. On a shared store the store
    /// itself leaves out the claimed items `laned` says: a worker in passes
    /// skips those other replicas hold; a laned one those it holds (in its
    /// lanes, `skip`), and sees the others' (they keep their lanes' order).
    /// `skip` is still checked here (a claim that lapsed while in a lane).
    fn scan_due(
        &self,
        after: u64,
        skip: &HashSet<u64>,
        room: usize,
        mode: Look,
    ) -> Result<(Vec<Q::Item>, Duration, usize), Refusal> {
        let last = self.store.durable_id();
        let now = Utc::now();
        let mut next = IDLE_POLL;
        let mut due = Vec::new();
        let mut looked = 0usize;
        if room == 0 {
            return Ok((due, next, looked));
        }
        let mut look = |id: u64, value: &[u8]| -> Result<bool, StoreError> {
            if id > last {
                return Ok(false);
            }
            looked += 1;
            if !skip.contains(&id) {
                let item: Q::Item = crate::store::codec::decode(value)?;
                let at = Q::due_at(&item);
                if at > now {
                    next = next.min((at - now).to_std().unwrap_or_default());
                } else {
                    due.push(item);
                }
            }
            Ok(due.len() < room && looked < LOOK_MAX)
        };
        if !self.store.shared() && after == 0 {
            self.store.queue_scan(
                Q::QUEUE,
                crate::store::Order::OldestFirst,
                &mut |id, value| look(id, value),
            )?;
        } else {
            // Pages of the items past `after` this replica may take, the
            // filtering done by the store (on a shared store the window
            // leaves out `skip` too; on one only this process opens it
            // seeks past `after`).
            let me = &*self.claims.owner;
            let hide = match mode {
                Look::Passes => crate::store::Hide::HeldElsewhere { me },
                Look::Lanes => crate::store::Hide::Held,
                Look::Everything => crate::store::Hide::Nothing,
            };
            let mut after = after;
            'pages: loop {
                let page = self
                    .store
                    .queue_window(Q::QUEUE, after, hide, WINDOW_PAGE)?;
                let full = page.len() == WINDOW_PAGE;
                for (id, value) in page {
                    after = id;
                    if !look(id, &value)? {
                        break 'pages;
                    }
                }
                if !full {
                    break;
                }
            }
        }
        if self.store.shared() {
            *lock(&self.last_scanned) = due.iter().map(Q::id).collect();
        }
        Ok((due, next, looked))
    }

    /// Between scans, on a store that hands this process its own new
    /// items: those, claimed (another replica's scan may have taken some),
    /// with how long until the next scan. `Err(n)`: scan now (its time has
    /// come, the store keeps no such list, or it dropped some), `n` items
    /// having been handed since the last pass (the scan finds them).
    #[allow(clippy::type_complexity)]
    fn handed(&self) -> Result<Result<(Vec<Q::Item>, Duration, usize), usize>, Refusal> {
        if !self.store.shared() {
            return Ok(Err(0));
        }
        let handed = self.store.take_committed(Q::QUEUE);
        let until_scan = lock(&self.next_scan).saturating_duration_since(std::time::Instant::now());
        // At the scan's time, what was handed is found by the scan.
        let handed = match handed {
            Some(items) if !until_scan.is_zero() => items,
            Some(items) => return Ok(Err(items.len())),
            None => return Ok(Err(0)),
        };
        let count = handed.len();
        let now = Utc::now();
        // New items are due; one that is not waits for the next scan
        // (which shows this replica its own claims).
        let due: Vec<Q::Item> = self
            .decode_handed(handed)?
            .into_iter()
            .filter(|item| Q::due_at(item) <= now)
            .collect();
        lock(&self.held).extend(due.iter().map(Q::id));
        Ok(Ok((due, until_scan, count)))
    }

    /// Items handed over by the store (`take_committed`): claimed by this
    /// replica from their insert, so taken without a claim; those the last
    /// scan found already are left out.
    fn decode_handed(&self, handed: Vec<(u64, Vec<u8>)>) -> Result<Vec<Q::Item>, Refusal> {
        let scanned = std::mem::take(&mut *lock(&self.last_scanned));
        let mut items = Vec::with_capacity(handed.len());
        for (id, value) in handed {
            if scanned.contains(&id) {
                continue;
            }
            items.push(crate::store::codec::decode(&value).map_err(StoreError::from)?);
        }
        Ok(items)
    }

    /// The due items claimed for this replica on a shared store (other
    /// replicas drain the same queue: attempt only what this one claimed,
    /// in its current state); all of them on a store this process owns.
    fn claimed(&self, due: Vec<Q::Item>) -> Result<(Vec<Q::Item>, Duration), Refusal> {
        if due.is_empty() || !self.store.shared() {
            return Ok((due, IDLE_POLL));
        }
        let ids: Vec<u64> = due.iter().map(Q::id).collect();
        let claimed =
            self.store
                .queue_claim(Q::QUEUE, &ids, &self.claims.owner, self.claims.lease)?;
        let due: Vec<Q::Item> = claimed
            .iter()
            .map(|(_, value)| crate::store::codec::decode(value).map_err(StoreError::from))
            .collect::<Result<_, StoreError>>()?;
        lock(&self.held).extend(due.iter().map(Q::id));
        Ok((due, IDLE_POLL))
    }

    /// Hands due items to their lanes, again and again (see the module
    /// doc); never waits for a lane.
    async fn run_in_lanes(self: Arc<Self>) {
        let lanes = Arc::new(Lanes::<Q::Item> {
            state: Mutex::new(LaneState {
                in_flight: HashSet::new(),
                waiting: HashMap::new(),
            }),
            permits: tokio::sync::Semaphore::new(Q::LANES),
        });
        loop {
            let wait = match self.dispatch(&lanes) {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(queue = Q::NAME, error = %e, "queue dispatch failed");
                    IDLE_POLL
                }
            };
            if !wait.is_zero() {
                self.wait_for_work(wait).await;
            }
        }
    }

    /// One look at the queue: new due items go to their lanes (a lane task
    /// is started for a lane that has none). Returns how long to wait.
    fn dispatch(self: &Arc<Self>, lanes: &Arc<Lanes<Q::Item>>) -> Result<Duration, Refusal> {
        let after = self.lane_look_after();
        let (room, in_flight, in_flight_count) = {
            let state = lanes.lock();
            let count = state.in_flight.len();
            // Past the cursor nothing is in flight: nothing to skip.
            let skip = if after == 0 {
                state.in_flight.clone()
            } else {
                HashSet::new()
            };
            (
                SCAN_MAX.min(IN_FLIGHT_MAX.saturating_sub(count)),
                skip,
                count,
            )
        };
        self.metrics.depth.set(in_flight_count as i64);
        if room == 0 {
            // Full: a lane that settles an item wakes this worker.
            return Ok(IDLE_POLL);
        }
        // On a shared store this process's new items come handed, claimed
        // by it from their insert; a look at the queue (every
        // FREE_LOOK_EVERY) finds what no live replica holds. A hand-over
        // that was dropped, or is more than there is room for, leaves those
        // items to looks at the whole queue, until one is not full (a look
        // that hides this replica's claims would not see them).
        let shared = self.store.shared();
        let mut catching_up = lock(&self.catching_up);
        let mut handed = Vec::new();
        if shared {
            match self.store.take_committed(Q::QUEUE) {
                Some(items) if items.len() <= room => handed = self.decode_handed(items)?,
                _ => *catching_up = true,
            }
        }
        let look = if *catching_up {
            Look::Everything
        } else {
            Look::Lanes
        };
        let room = room - handed.len();
        let (fresh, next) = match self.free_look_in(shared, *catching_up) {
            None => {
                let (fresh, next, _) = self.scan_due(after, &in_flight, room, look)?;
                if fresh.len() < room {
                    *catching_up = false;
                }
                (fresh, next)
            }
            Some(until_look) => (Vec::new(), until_look),
        };
        drop(catching_up);
        if let Some(highest) = fresh.iter().map(Q::id).max() {
            let mut cursor = lock(&self.lane_cursor);
            cursor.handed_up_to = cursor.handed_up_to.max(highest);
        }
        let mut scanned: Vec<(u64, String)> = fresh
            .iter()
            .chain(&handed)
            .map(|i| (Q::id(i), Q::lane(i)))
            .collect();
        scanned.sort_unstable_by_key(|(id, _)| *id);
        let (mut due, _) = self.claimed(fresh)?;
        lock(&self.held).extend(handed.iter().map(Q::id));
        due.extend(handed);
        due.sort_unstable_by_key(Q::id);
        let due = self.in_lane_order(&scanned, due)?;
        if due.is_empty() {
            return Ok(next);
        }
        let taken = due.len();
        let mut state = lanes.lock();
        for item in due {
            let id = Q::id(&item);
            if !state.in_flight.insert(id) {
                continue;
            }
            let lane = Q::lane(&item);
            match state.waiting.get_mut(&lane) {
                Some(queue) => queue.push_back(item),
                None => {
                    state.waiting.insert(lane.clone(), VecDeque::from([item]));
                    tokio::spawn(self.clone().run_lane(lanes.clone(), lane));
                }
            }
        }
        self.metrics.depth.set(state.in_flight.len() as i64);
        Ok(self.after_work(taken))
    }

    /// On a shared store, unless it catches up: `None` when the time of a
    /// look at the queue has come (then the next is FREE_LOOK_EVERY
    /// later), else how long until it comes. `None` on a store only this
    /// process opens (it looks at every dispatch, from `lane_look_after`).
    fn free_look_in(&self, shared: bool, catching_up: bool) -> Option<Duration> {
        if !shared {
            return None;
        }
        let mut cursor = lock(&self.lane_cursor);
        let now = std::time::Instant::now();
        if catching_up || now >= cursor.full_look_at {
            cursor.full_look_at = now + FREE_LOOK_EVERY;
            return None;
        }
        Some(cursor.full_look_at - now)
    }

    /// Where a laned worker's next look at the queue starts: past the
    /// highest id it handed to a lane, on a store only this process opens;
    /// from the start (0) on a shared store, and once every
    /// [`IDLE_POLL`] (the fallback that finds an item whose settling
    /// failed, or one committed out of id order).
    fn lane_look_after(&self) -> u64 {
        if self.store.shared() {
            return 0;
        }
        let mut cursor = lock(&self.lane_cursor);
        let now = std::time::Instant::now();
        if now >= cursor.full_look_at {
            cursor.full_look_at = now + IDLE_POLL;
            return 0;
        }
        cursor.handed_up_to
    }

    /// On a shared store, the claimed items no earlier item of their lane
    /// precedes elsewhere: an item `scanned` but not claimed here, or one
    /// the store names (`queue_lane_blockers`: held by another replica, or
    /// by none), holds its lane's later items until it is gone, so one
    /// account's after-hooks run in commit order whichever replica runs
    /// them. The claims of the items that wait
    /// are given back at once: the replica running the lane takes them
    /// next. (Laned items are never rescheduled, so none waits in back-off
    /// ahead of its lane.)
    fn in_lane_order(
        &self,
        scanned: &[(u64, String)],
        claimed: Vec<Q::Item>,
    ) -> Result<Vec<Q::Item>, Refusal> {
        if !self.store.shared() {
            return Ok(claimed);
        }
        let mine: HashSet<u64> = claimed.iter().map(Q::id).collect();
        let mut held_elsewhere: HashSet<&str> = HashSet::new();
        let mut runnable: HashSet<u64> = HashSet::new();
        for (id, lane) in scanned {
            if held_elsewhere.contains(lane.as_str()) {
                continue;
            }
            if mine.contains(id) {
                runnable.insert(*id);
            } else {
                held_elsewhere.insert(lane);
            }
        }
        let lanes: HashSet<&str> = scanned
            .iter()
            .filter(|(id, _)| runnable.contains(id))
            .map(|(_, lane)| lane.as_str())
            .collect();
        let lanes: Vec<&str> = lanes.into_iter().collect();
        let blockers: HashMap<String, u64> = self
            .store
            .queue_lane_blockers(Q::QUEUE, &lanes, &self.claims.owner)?
            .into_iter()
            .collect();
        let (keep, wait): (Vec<Q::Item>, Vec<Q::Item>) = claimed.into_iter().partition(|item| {
            let id = Q::id(item);
            runnable.contains(&id)
                && blockers
                    .get(Q::lane(item).as_str())
                    .is_none_or(|&first| first > id)
        });
        let wait: Vec<u64> = wait.iter().map(Q::id).collect();
        {
            let mut held = lock(&self.held);
            for id in &wait {
                held.remove(id);
            }
        }
        self.store
            .queue_release(Q::QUEUE, &wait, &self.claims.owner)?;
        Ok(keep)
    }

    /// Runs one lane's items in order until it has none; each is settled
    /// (committed) before the next starts.
    async fn run_lane(self: Arc<Self>, lanes: Arc<Lanes<Q::Item>>, lane: String) {
        // The semaphore is never closed.
        let Ok(_permit) = lanes.permits.acquire().await else {
            return;
        };
        loop {
            // What the lane has waiting, in order, up to LANE_SETTLE_MAX: run
            // one after another, then settled in one commit (one writer
            // round trip per item made a busy account's lane fall behind
            // its commits). A crash repeats at most those, in order.
            let mut batch: Vec<Q::Item> = {
                let mut state = lanes.lock();
                let taken: Vec<Q::Item> = match state.waiting.get_mut(&lane) {
                    Some(waiting) => {
                        let n = waiting.len().min(LANE_SETTLE_MAX);
                        waiting.drain(..n).collect()
                    }
                    None => Vec::new(),
                };
                if taken.is_empty() {
                    // Under the lock: the dispatcher sees no lane and
                    // starts a new task for this lane's next item.
                    state.waiting.remove(&lane);
                    break;
                }
                taken
            };
            let ids: Vec<u64> = batch.iter().map(Q::id).collect();
            // In the lane's order (`attempt_batch` keeps it).
            let results = self.queue.attempt_batch(&mut batch).await;
            let attempted: Vec<(Q::Item, Attempt)> = batch.into_iter().zip(results).collect();
            if let Err(e) = self.settle_attempted(attempted).await {
                // Still on the queue: a later scan hands them out again.
                tracing::error!(queue = Q::NAME, ids = ?ids, error = %e, "settling items failed");
            }
            let was_full = {
                let mut state = lanes.lock();
                let was_full = state.in_flight.len() >= IN_FLIGHT_MAX;
                for id in &ids {
                    state.in_flight.remove(id);
                }
                was_full
            };
            if was_full {
                (self.waker)(&self.wake).notify_one();
            }
        }
    }

    /// Commits what attempts came to, in one transaction; how many items
    /// left the queue.
    async fn settle_attempted(&self, attempted: Vec<(Q::Item, Attempt)>) -> Result<i64, Refusal> {
        let ids: Vec<u64> = attempted.iter().map(|(item, _)| Q::id(item)).collect();
        let mut writes = Vec::new();
        let mut left = 0;
        let mut failed = None;
        for (item, result) in attempted {
            match self.conclude(item, result) {
                Ok((ops, done)) => {
                    writes.extend(ops);
                    left += i64::from(done);
                }
                Err(e) => {
                    if failed.is_none() {
                        failed = Some(Refusal::from(e));
                    }
                }
            }
        }
        // What was concluded is committed even when an item could not be
        // (that one stays for a later pass).
        let committed = self.writer.submit_writes(writes).await;
        let settled = match (failed, committed) {
            (None, Ok(())) => Ok(left),
            (Some(e), _) | (None, Err(e)) => Err(e),
        };
        // Settled or not, no longer held: a later scan hands an item whose
        // settling failed out again.
        let mut held = lock(&self.held);
        for id in &ids {
            held.remove(id);
        }
        settled
    }

    /// The writes that conclude an attempt, and whether the item left the
    /// queue.
    fn conclude(
        &self,
        mut item: Q::Item,
        result: Attempt,
    ) -> Result<(Vec<Write>, bool), StoreError> {
        let id = Q::id(&item);
        let count = |item: &Q::Item, how: Option<&Settled>| {
            let tally = Q::tally(item, &result, how);
            self.metrics.done.inc_by(tally.done);
            self.metrics.failures.inc_by(tally.failures);
            self.metrics.dead.inc_by(tally.dead);
        };
        match &result {
            Attempt::Done => {
                count(&item, Some(&Settled::Done));
                Ok((self.queue.settle(&self.store, item, Settled::Done)?, true))
            }
            Attempt::GiveUp { error } => {
                Q::record_failure(&mut item, error);
                count(&item, Some(&Settled::Dead));
                tracing::error!(queue = Q::NAME, id, error = %error, "given up");
                Ok((self.queue.settle(&self.store, item, Settled::Dead)?, true))
            }
            Attempt::Retry { error, after } => {
                Q::record_failure(&mut item, error);
                match self.queue.retry_in(&item, *after) {
                    Some(delay) => {
                        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                        Q::set_due_at(&mut item, at);
                        count(&item, None);
                        tracing::warn!(queue = Q::NAME, id, retry_in_ms = delay.as_millis() as u64, error = %error, "attempt failed; will retry");
                        Ok((self.queue.reschedule(item), false))
                    }
                    None => {
                        count(&item, Some(&Settled::Dead));
                        tracing::error!(queue = Q::NAME, id, error = %error, "the last attempt failed; given up");
                        Ok((self.queue.settle(&self.store, item, Settled::Dead)?, true))
                    }
                }
            }
        }
    }
}

/// The lanes of a laned queue: what each lane has waiting, what was handed
/// out and not yet settled, and the permits that bound lanes running.
struct Lanes<Item> {
    state: Mutex<LaneState<Item>>,
    permits: tokio::sync::Semaphore,
}

struct LaneState<Item> {
    in_flight: HashSet<u64>,
    waiting: HashMap<String, VecDeque<Item>>,
}

impl<Item> Lanes<Item> {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState<Item>> {
        lock(&self.state)
    }
}

/// A set's lock; a panic while holding it leaves the set usable.
fn lock<T>(set: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
