//! The queue worker on a real store and writer, in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use admind::domain::*;
use admind::metrics::Metrics;
use admind::queue::{
    Attempt, Claims, Queue, QueueMetrics, QueueWorker, Settled, Wakers, IN_FLIGHT_MAX, SCAN_MAX,
};
use admind::store::writer::{Writer, WriterDeps};
use admind::store::{QueueName, Store, StoreError, Transaction, Write};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Item {
    id: u64,
    due_at: DateTime<Utc>,
}

/// Records what it attempted; everything succeeds.
struct Recording {
    attempted: Arc<Mutex<Vec<u64>>>,
}

impl Queue for Recording {
    type Item = Item;
    const NAME: &'static str = "test";
    const QUEUE: QueueName = QueueName::Deliveries;

    fn id(item: &Item) -> u64 {
        item.id
    }
    fn due_at(item: &Item) -> DateTime<Utc> {
        item.due_at
    }
    fn set_due_at(item: &mut Item, at: DateTime<Utc>) {
        item.due_at = at;
    }
    fn record_failure(_item: &mut Item, _error: &str) {}
    async fn attempt(&self, item: &mut Item) -> Attempt {
        self.attempted.lock().unwrap().push(item.id);
        Attempt::Done
    }
    fn retry_in(&self, _item: &Item, _wish: Option<Duration>) -> Option<Duration> {
        None
    }
    fn settle(&self, _store: &Store, item: Item, _how: Settled) -> Result<Vec<Write>, StoreError> {
        Ok(vec![Store::queue_remove(QueueName::Deliveries, item.id)])
    }
}

/// A worker of `queue` on `store` with its real writer, woken by `waker`.
fn worker_of<Q: Queue>(
    store: &Store,
    queue: Q,
    waker: fn(&Wakers) -> &tokio::sync::Notify,
    lease: Duration,
) -> QueueWorker<Q> {
    let wakers = Arc::new(Wakers::default());
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: Arc::new(AllowAll),
        render: Arc::new(|n, _| admind::mail::render(n, "http://t", "en")),
        metrics: Arc::new(Metrics::new()),
        wakers: wakers.clone(),
        sinks: Vec::new(),
    });
    QueueWorker::new(
        queue,
        Claims {
            owner: "me".into(),
            lease,
        },
        store.clone(),
        writer,
        wakers,
        waker,
        QueueMetrics::default(),
    )
}

/// A worker on sled with its real writer, and what it attempted.
fn recording_worker(store: &Store) -> (QueueWorker<Recording>, Arc<Mutex<Vec<u64>>>) {
    let attempted = Arc::new(Mutex::new(Vec::new()));
    let queue = Recording {
        attempted: attempted.clone(),
    };
    let worker = worker_of(store, queue, |w| &w.outbound, Duration::from_secs(30));
    (worker, attempted)
}

/// A queue behind its load: each pass that finds a full batch takes
/// twice as many the next time (up to `IN_FLIGHT_MAX`), so a backlog is
/// worked off in a few passes instead of one `SCAN_MAX` at a time; a pass
/// that is not full brings it back to `SCAN_MAX`.
#[tokio::test]
async fn a_queue_behind_takes_more_each_full_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled(dir.path()).unwrap();
    let backlog = SCAN_MAX * 7 + 10;
    let now = Utc::now() - chrono::Duration::seconds(1);
    let writes = (0..backlog)
        .map(|_| {
            let id = store.next_id().unwrap();
            Store::queue_put(QueueName::Deliveries, id, &Item { id, due_at: now })
        })
        .collect();
    store.commit(Transaction::of_writes(writes)).unwrap();
    store.flush().unwrap();
    let (worker, attempted) = recording_worker(&store);
    let mut taken = Vec::new();
    while store.queue_len(QueueName::Deliveries).unwrap() > 0 {
        let before = attempted.lock().unwrap().len();
        worker.pass().await.unwrap();
        taken.push(attempted.lock().unwrap().len() - before);
        assert!(taken.len() <= 8, "the backlog is not shrinking: {taken:?}");
    }
    // 256, 512, 1,024, then the 10 left (the room was 2,048).
    let expected: Vec<usize> = vec![SCAN_MAX, SCAN_MAX * 2, SCAN_MAX * 4, 10];
    assert_eq!(taken, expected, "taken by each pass");
    // The room this test reaches stays under the cap.
    const { assert!(SCAN_MAX * 8 <= IN_FLIGHT_MAX) };
}

/// More retries waiting in back-off than a pass takes (the oldest items)
/// must not hide a newer item that is due: a pass steps over what is not
/// due and attempts what is.
#[tokio::test]
async fn a_pass_finds_due_items_behind_more_retries_than_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled(dir.path()).unwrap();
    let later = Utc::now() + chrono::Duration::hours(1);
    let mut writes = Vec::new();
    for _ in 0..SCAN_MAX + 50 {
        let id = store.next_id().unwrap();
        writes.push(Store::queue_put(
            QueueName::Deliveries,
            id,
            &Item { id, due_at: later },
        ));
    }
    let due_id = store.next_id().unwrap();
    writes.push(Store::queue_put(
        QueueName::Deliveries,
        due_id,
        &Item {
            id: due_id,
            due_at: Utc::now() - chrono::Duration::seconds(1),
        },
    ));
    store.commit(Transaction::of_writes(writes)).unwrap();
    store.flush().unwrap();

    let (worker, attempted) = recording_worker(&store);
    worker.pass().await.unwrap();
    assert_eq!(*attempted.lock().unwrap(), vec![due_id]);
    assert!(store
        .item::<Item>(QueueName::Deliveries, due_id)
        .unwrap()
        .is_none());
    assert_eq!(
        store.queue_len(QueueName::Deliveries).unwrap(),
        SCAN_MAX + 50
    );
}

/// A laned queue of hook events (one lane per account), recording what it
/// ran.
struct LanedRecording {
    attempted: Arc<Mutex<Vec<u64>>>,
}

#[derive(Serialize, Deserialize)]
struct Event {
    id: u64,
    event: DomainEvent,
}

impl Queue for LanedRecording {
    type Item = Event;
    const NAME: &'static str = "laned test";
    const QUEUE: QueueName = QueueName::Hooks;
    const LANES: usize = 4;

    fn lane(item: &Event) -> String {
        match &item.event {
            DomainEvent::AgentSeatExhausted { account_id, .. } => account_id.clone(),
            _ => String::new(),
        }
    }
    fn id(item: &Event) -> u64 {
        item.id
    }
    fn due_at(_: &Event) -> DateTime<Utc> {
        DateTime::<Utc>::MIN_UTC
    }
    fn set_due_at(_: &mut Event, _: DateTime<Utc>) {}
    fn record_failure(_: &mut Event, _: &str) {}
    async fn attempt(&self, item: &mut Event) -> Attempt {
        self.attempted.lock().unwrap().push(item.id);
        Attempt::Done
    }
    fn retry_in(&self, _: &Event, _: Option<Duration>) -> Option<Duration> {
        None
    }
    fn settle(&self, _: &Store, item: Event, _: Settled) -> Result<Vec<Write>, StoreError> {
        Ok(vec![Store::queue_remove(QueueName::Hooks, item.id)])
    }
}

/// On a shared store a replica's new events are claimed by it from their
/// insert and handed to its laned worker. A hand-over larger than the
/// worker has room for is dropped: the worker then looks at the whole
/// queue, its own claims included, until it has caught up. A look that
/// hides its own claims would leave the rest until their lease lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laned_worker_whose_hand_over_was_dropped_finds_its_own_new_events() {
    if !common::on_postgres() {
        return;
    }
    let url = common::fresh_postgres_database();
    let store = Store::open_postgres(&url, 8).unwrap();
    let lease = Duration::from_secs(120);
    store.own_new_items("me", lease, lease);
    let events = SCAN_MAX * 3;
    let event = |n: usize| DomainEvent::AgentSeatExhausted {
        account_id: format!("acc_{}", n % 16),
        actor_id: "usr_x".into(),
        seats_total: 1,
        seats_used: 1,
        attempt: "add_member".into(),
    };
    store
        .commit(Transaction {
            events: (0..events).map(event).collect(),
            ..Transaction::default()
        })
        .unwrap();
    let attempted = Arc::new(Mutex::new(Vec::new()));
    let queue = LanedRecording {
        attempted: attempted.clone(),
    };
    let worker = worker_of(&store, queue, |w| &w.hooks, lease);
    let running = tokio::spawn(worker.run());
    // Far less than the lease: only a look at its own claims finds them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.queue_len(QueueName::Hooks).unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {events} events run in 30 s",
            attempted.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.abort();
    let mut ran = attempted.lock().unwrap().clone();
    assert_eq!(ran.len(), events, "as many runs as events");
    ran.sort_unstable();
    ran.dedup();
    assert_eq!(ran.len(), events, "each event run once");
}
