//! The store interface (see the parent module): the [`Backend`] trait, the
//! [`Transaction`] and [`Write`]s it commits, and [`Store`], the handle
//! everything above holds.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::codec::{decode, encode};
pub use super::error::StoreError;
use super::records;
pub use super::records::{Kind, Order, QueueName, Record, RecordVisit, Restore, RowVisit, Write};
use crate::domain::*;

/// One command's writes, committed atomically. The store numbers the audit
/// entry, the mails and the events; the events are caused by the audit
/// entry (causal audit).
#[derive(Debug, Default)]
pub struct Transaction {
    pub changes: Vec<Change>,
    pub audit: Option<AuditDraft>,
    pub mails: Vec<OutboxMail>,
    pub events: Vec<DomainEvent>,
    pub writes: Vec<Write>,
}

impl Transaction {
    pub fn of_writes(writes: Vec<Write>) -> Self {
        Transaction {
            writes,
            ..Transaction::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.audit.is_none()
            && self.mails.is_empty()
            && self.events.is_empty()
            && self.writes.is_empty()
    }
}

/// Called with each item's id and value by [`Store::queue_scan`];
/// returns whether to go on.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, StoreError> + 'a;

/// What a command holds while it reads and commits, so that no command on
/// another replica interleaves with it (R01, R11 across replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope<'a> {
    /// The one account the command names: commands on other accounts run
    /// beside it.
    Account(&'a str),
    /// Everything: commands that find their account from a token, a
    /// request id or a webhook's body, and account creation.
    Everything,
    /// A group of commands of these accounts, run together and committed
    /// by one `flush` (group commit on a shared store). Each command of
    /// the group then takes `Account` inside it, which isolates it: a
    /// command that writes nothing (refused, or its writes failed) leaves
    /// no trace and fails no other.
    Accounts(&'a [String]),
    /// The same, without waiting: the accounts another transaction (another
    /// replica's, or this one's other writer thread) holds are left out,
    /// and [`Backend::prefetch`] names them. Their commands run elsewhere;
    /// the group never waits behind a lock (one busy account must not hold
    /// back the others).
    AccountsIfFree(&'a [String]),
}

/// What a group of commands will read ([`Backend::prefetch`]): its
/// accounts, the members its commands name (the actor and the target), each
/// account's integrations up to `integrations_max`, and about how many ids
/// its commits will draw.
#[derive(Debug, Clone, Default)]
pub struct Prefetch<'a> {
    pub accounts: &'a [String],
    pub members: Vec<(&'a str, &'a str)>,
    pub integrations_max: usize,
    pub ids: usize,
}

/// Held while a command runs and commits; released when dropped.
pub struct CommandLock<'a>(Option<Box<dyn FnOnce() + 'a>>);

impl<'a> CommandLock<'a> {
    /// Nothing to hold (one process owns the store).
    pub fn none() -> Self {
        CommandLock(None)
    }
    /// Runs `release` when dropped.
    pub fn releasing(release: impl FnOnce() + 'a) -> Self {
        CommandLock(Some(Box::new(release)))
    }
}

impl Drop for CommandLock<'_> {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

/// A replica as the others see it: the policy versions it has loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// `(policy name, version)`, sorted by name.
    pub policies: Vec<(String, String)>,
}

/// Which backend a store is and how it may be used.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Which backend, for logs and errors.
    pub kind: &'static str,
    /// 128 random bits made when the store was created: with a sequence
    /// number it makes ids that no other installation (nor this one after
    /// its data was reset) sends: outbound `webhook-id`s and mail
    /// Message-IDs, which receivers deduplicate on.
    pub installation_id: &'a str,
    /// Whether several daemons may serve this store at once.
    pub shared: bool,
    /// How many writer threads may run commands at once: one unless the
    /// backend's `lock_command` keeps commands on one account apart.
    pub writer_threads: usize,
    /// Whether a group of commands (`LockScope::Accounts`) is committed as
    /// one transaction by its `flush`: each command's `commit` only stages
    /// its writes, which the group's later commands read.
    pub groups_commits: bool,
}

/// Which claimed queue items a worker's window leaves out.
#[derive(Debug, Clone, Copy)]
pub enum Hide<'a> {
    /// Those another replica holds (a worker taking items in passes).
    HeldElsewhere { me: &'a str },
    /// Every live claim, whoever holds it (a laned worker: its own are in
    /// its lanes or handed to it; the order the others' impose comes from
    /// [`Backend::queue_lane_blockers`]). What is left is what no live
    /// replica holds: released to it, or its holder died.
    Held,
    /// None: every item past `after`, whoever holds it (a laned worker
    /// looking for its own new items, whose hand-over was dropped: they
    /// are claimed by it from their insert).
    Nothing,
}

/// What a backend provides: records by kind and key ([`Kind`], described
/// once in `records`), written a transaction at a time, and what replicas
/// coordinate through. Everything else the daemon asks of a store (queue
/// scans, retention, export and import, the audit export) is written once
/// on [`Store`] over these. Object safe: the daemon holds a [`Store`]
/// (`Arc<dyn Backend>`) and never knows which backend it has.
pub trait Backend: StateView + Send + Sync + 'static {
    fn about(&self) -> About<'_>;

    /// A new id, larger than every id handed out before (queue items are
    /// ordered by it).
    fn next_id(&self) -> Result<u64, StoreError>;

    /// `n` new ids, increasing (on PostgreSQL in one round trip).
    fn next_ids(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        (0..n).map(|_| self.next_id()).collect()
    }

    /// Applies a transaction atomically: all of it or nothing. Restored
    /// records (`Write::Restore`) also move the id counter past their ids.
    fn commit(&self, tx: Transaction) -> Result<(), StoreError>;

    /// Writes that belong to no command and need not land together (the
    /// records of hook calls): from any thread, outside the writer; they
    /// are durable with the next flush. By default one transaction; sled
    /// writes each row on its own, so a large batch never holds sled's
    /// global transaction lock that every command's commit waits on.
    fn append(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.commit(Transaction::of_writes(writes))
    }

    /// Makes everything committed so far durable; afterwards
    /// [`Backend::durable_id`] covers it.
    fn flush(&self) -> Result<(), StoreError>;

    /// Every queue item with an id up to this is durable.
    fn durable_id(&self) -> u64;

    /// One record by kind and key (the key in `records`' layout), in the
    /// codec's format.
    fn get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits a kind's records (those of one scope — the first part of a
    /// two-part key — when `scope` is given) in key `order`, one at a time
    /// whatever their number, until `each` returns false.
    fn scan(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError>;

    /// Visits a kind's keys as [`Backend::scan`] visits its records, for
    /// callers that need no value: a store that keeps values apart from
    /// keys (PostgreSQL) reads and sends none.
    fn scan_keys(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        each: &mut dyn FnMut(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.scan(kind, scope, order, &mut |key, _| each(key))
    }

    /// How many records a kind holds.
    fn count(&self, kind: Kind) -> Result<usize, StoreError>;

    /// The writes that forget records of `kind` (the audit log, received
    /// webhook ids) older than `cutoff`, at most `max`, for the writer to
    /// commit.
    fn expired(
        &self,
        kind: Kind,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError>;

    /// Holds `scope` against commands on other replicas until the lock is
    /// dropped (after the command's commit).
    fn lock_command(&self, _scope: LockScope<'_>) -> Result<CommandLock<'_>, StoreError> {
        Ok(CommandLock::none())
    }

    /// What a group of commands (`LockScope::Accounts`, held on this
    /// thread) is about to read, fetched with the group's locks in one
    /// round trip so that its commands read from memory; a store that
    /// needs no round trip for a read ignores it.
    /// Returns the accounts of the group whose locks it could not take
    /// (`LockScope::AccountsIfFree`): nothing of them was fetched, and no
    /// command of theirs may run in the group.
    fn prefetch(&self, _wanted: &Prefetch<'_>) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// A worker's look at a queue on a shared store: items with ids above
    /// `after`, oldest first, at most `limit`, leaving out those with a live
    /// claim `hide` names (so their values are not even read). The default
    /// hides nothing (a store only this process opens has no claims).
    fn queue_window(
        &self,
        queue: QueueName,
        after: u64,
        _hide: Hide<'_>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.scan(
            Kind::of_queue(queue),
            None,
            Order::OldestFirst,
            &mut |k, v| {
                let id = records::number_of(k);
                if id > after {
                    out.push((id, v.to_vec()));
                }
                Ok(out.len() < limit)
            },
        )?;
        Ok(out)
    }

    /// On a shared store, for each of `lanes` of a laned queue (the hook
    /// events'): the lowest id of its items that `me` does not hold (a
    /// claim it gave back, or that lapsed, is not held), held by another
    /// replica or by none. This replica's items of that lane
    /// with higher ids wait for it (one account's after-hooks run in
    /// commit order whichever replica runs them). A store only this
    /// process opens has none.
    fn queue_lane_blockers(
        &self,
        _queue: QueueName,
        _lanes: &[&str],
        _me: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(Vec::new())
    }

    /// The items this process committed to `queue` since the last call
    /// (new mails and hook events, on a shared store), ids and values, so
    /// that its worker takes them without scanning or claiming the queue
    /// (see [`Backend::own_new_items`]); `None` when the store does not
    /// keep them, or dropped some, or kept them for longer than half a
    /// claim's lease (then the worker scans).
    fn take_committed(&self, _queue: QueueName) -> Option<Vec<(u64, Vec<u8>)>> {
        None
    }

    /// On a shared store: from now on, the new items this process commits
    /// to the queues it hands to its own workers (`take_committed`) are
    /// inserted claimed by `owner` for `lease`, so those workers need no
    /// claim (an UPDATE of every row). Another replica takes them over once
    /// the lease lapses, or once `owner`'s heartbeat is older than
    /// `stale_after` (it died).
    fn own_new_items(&self, _owner: &str, _lease: Duration, _stale_after: Duration) {}

    /// Claims the queue items `ids` for `owner` during `lease`: returns the
    /// ones no other replica holds, with their current values. Writing an
    /// item (a retry) or removing it ends the claim.
    fn queue_claim(
        &self,
        queue: QueueName,
        ids: &[u64],
        _owner: &str,
        _lease: std::time::Duration,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let kind = Kind::of_queue(queue);
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(value) = self.get(kind, &records::number_key(id))? {
                out.push((id, value));
            }
        }
        Ok(out)
    }

    /// What replicas share beside records (attempt windows, marks,
    /// heartbeats). A store only one process opens keeps [`NotShared`]
    /// (or its own marks, which outlive a restart).
    fn coordination(&self) -> &dyn Coordination {
        &NotShared
    }
}

/// What several daemons on one store share beside records. The defaults
/// are a store one process owns: nothing to coordinate, the callers'
/// in-process structures are the whole truth.
pub trait Coordination {
    /// Counts an attempt under `key` in the one-minute window `window`
    /// (minutes since the epoch) for every replica; returns the window's
    /// count with this one, or `None` when the store is not shared.
    fn count_attempt(&self, _key: &str, _window: i64) -> Result<Option<u32>, StoreError> {
        Ok(None)
    }

    /// Records `key` for every replica (and across a restart) until `until`.
    fn put_mark(&self, _key: &str, _until: DateTime<Utc>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether `key` was marked and has not expired.
    fn has_mark(&self, _key: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Records this replica as alive with its policy set.
    fn heartbeat(&self, _me: &ReplicaInfo) -> Result<(), StoreError> {
        Ok(())
    }

    /// Replicas seen since `since` (empty when the store is not shared).
    fn replicas(&self, _since: DateTime<Utc>) -> Result<Vec<ReplicaInfo>, StoreError> {
        Ok(Vec::new())
    }

    /// Forgets expired attempt windows and marks, and replicas not seen
    /// since `replicas_before`; returns how many rows went.
    fn prune_shared(&self, _replicas_before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Tells every replica listening that `topic` changed (after the
    /// change is committed, outside any command's transaction).
    fn announce(&self, _topic: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Calls `on` with each topic another replica (or this one) announces,
    /// from a thread of its own, for as long as the process runs; a lost
    /// connection is opened again. Nothing to hear on a store one process
    /// owns.
    fn listen(&self, _on: Box<dyn Fn(&str) + Send>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store one process owns: nothing to coordinate.
pub struct NotShared;

impl Coordination for NotShared {}

/// The store the daemon runs on: any [`Backend`], shared.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        self.0.as_ref()
    }
}

impl Store {
    pub fn new(backend: impl Backend) -> Store {
        Store(Arc::new(backend))
    }

    /// Which backend this is.
    pub fn kind(&self) -> &'static str {
        self.0.about().kind
    }

    /// See [`About::installation_id`].
    pub fn installation_id(&self) -> &str {
        self.0.about().installation_id
    }

    /// Whether several daemons may serve this store at once.
    pub fn shared(&self) -> bool {
        self.0.about().shared
    }

    /// Whether the writer runs a batch's commands as a group committed by
    /// one transaction ([`About::groups_commits`]).
    pub fn groups_commits(&self) -> bool {
        self.0.about().groups_commits
    }

    /// How many writer threads may run commands at once.
    pub fn writer_threads(&self) -> usize {
        self.0.about().writer_threads
    }

    /// Visits a queue's items in `order` until `each` returns false.
    pub fn queue_scan(
        &self,
        queue: QueueName,
        order: Order,
        each: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        self.0
            .scan(Kind::of_queue(queue), None, order, &mut |k, v| {
                each(records::number_of(k), v)
            })
    }

    /// Visits a queue's ids in `order` until `each` returns false, without
    /// their values.
    pub fn queue_scan_ids(
        &self,
        queue: QueueName,
        order: Order,
        each: &mut dyn FnMut(u64) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.0
            .scan_keys(Kind::of_queue(queue), None, order, &mut |k| {
                each(records::number_of(k))
            })
    }

    pub fn queue_item(&self, queue: QueueName, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(Kind::of_queue(queue), &records::number_key(id))
    }

    /// Gives back this replica's claims on `ids` (a claim that lapses now),
    /// so another replica may take them at once.
    pub fn queue_release(
        &self,
        queue: QueueName,
        ids: &[u64],
        owner: &str,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.0
            .queue_claim(queue, ids, owner, std::time::Duration::ZERO)
            .map(drop)
    }

    pub fn queue_len(&self, queue: QueueName) -> Result<usize, StoreError> {
        self.0.count(Kind::of_queue(queue))
    }

    /// An outbound subscriber's stored state, if any was recorded.
    pub fn subscriber_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(Kind::Subscribers, name.as_bytes())
    }

    /// The writes that forget audit entries older than `cutoff`, at most
    /// `max` (for the writer to commit).
    pub fn expired_audit(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        self.0.expired(Kind::Audit, cutoff, max)
    }

    /// The writes that forget webhook ids received before `cutoff`, at most
    /// `max`.
    pub fn expired_webhook_ids(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        self.0.expired(Kind::WebhooksSeen, cutoff, max)
    }

    /// Calls `each` with every audit entry at or after `since`, scope by
    /// scope in sequence order (one scope when `scope` is given), one entry
    /// at a time whatever the log's size. Returns how many it visited.
    pub fn audit_since(
        &self,
        since: DateTime<Utc>,
        scope: Option<&str>,
        each: &mut dyn FnMut(&AuditEntry) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut visited = 0;
        self.0
            .scan(Kind::Audit, scope, Order::OldestFirst, &mut |_, v| {
                let entry: AuditEntry = decode(v)?;
                if entry.at >= since {
                    each(&entry)?;
                    visited += 1;
                }
                Ok(true)
            })?;
        Ok(visited)
    }

    /// Visits every record, kind by kind in `Kind` order, one at a time
    /// (memory stays flat whatever the store's size). Indexes are not
    /// records: a restore rebuilds them.
    pub fn export(&self, each: &mut RecordVisit<'_>) -> Result<(), StoreError> {
        for kind in Kind::ALL.into_iter().filter(|k| k.exported()) {
            let mut go = true;
            self.0.scan(kind, None, Order::OldestFirst, &mut |k, v| {
                if let Some(record) = records::record_of(kind, k, v)? {
                    go = each(record)?;
                }
                Ok(go)
            })?;
            if !go {
                break;
            }
        }
        Ok(())
    }

    /// Writes records as they are (ids and sequence numbers kept) in one
    /// transaction, and moves the id counter past every id they hold.
    /// For `admind import` into an empty store, with no daemon running:
    /// it bypasses the writer and every rule.
    pub fn restore(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.0.commit(Transaction::of_writes(
            records
                .into_iter()
                .map(|r| Write::Restore(Box::new(r)))
                .collect(),
        ))
    }

    /// Whether the store holds no account and no audit entry.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let mut any = false;
        for kind in [Kind::Accounts, Kind::Audit] {
            self.0.scan(kind, None, Order::OldestFirst, &mut |_, _| {
                any = true;
                Ok(false)
            })?;
        }
        Ok(!any)
    }

    /// Counts an attempt for every replica (see [`Coordination`]).
    pub fn count_attempt(&self, key: &str, window: i64) -> Result<Option<u32>, StoreError> {
        self.0.coordination().count_attempt(key, window)
    }

    pub fn put_mark(&self, key: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.0.coordination().put_mark(key, until)
    }

    pub fn has_mark(&self, key: &str) -> Result<bool, StoreError> {
        self.0.coordination().has_mark(key)
    }

    pub fn heartbeat(&self, me: &ReplicaInfo) -> Result<(), StoreError> {
        self.0.coordination().heartbeat(me)
    }

    pub fn replicas(&self, since: DateTime<Utc>) -> Result<Vec<ReplicaInfo>, StoreError> {
        self.0.coordination().replicas(since)
    }

    pub fn prune_shared(&self, replicas_before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.0.coordination().prune_shared(replicas_before)
    }

    /// See [`Coordination::announce`].
    pub fn announce(&self, topic: &str) -> Result<(), StoreError> {
        self.0.coordination().announce(topic)
    }

    /// See [`Coordination::listen`].
    pub fn listen(&self, on: Box<dyn Fn(&str) + Send>) -> Result<(), StoreError> {
        self.0.coordination().listen(on)
    }

    /// Items of a queue, oldest first, at most `limit`; only durable ones
    /// when `durable_only` (what a worker may act on).
    pub fn items<V: DeserializeOwned>(
        &self,
        queue: QueueName,
        durable_only: bool,
        limit: usize,
    ) -> Result<Vec<V>, StoreError> {
        let last = if durable_only {
            self.durable_id()
        } else {
            u64::MAX
        };
        let mut out = Vec::new();
        self.queue_scan(queue, Order::OldestFirst, &mut |id, value| {
            if id > last || out.len() >= limit {
                return Ok(false);
            }
            out.push(decode(value)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// One queue item, decoded.
    pub fn item<V: DeserializeOwned>(
        &self,
        queue: QueueName,
        id: u64,
    ) -> Result<Option<V>, StoreError> {
        self.queue_item(queue, id)?
            .map(|v| decode(&v).map_err(StoreError::from))
            .transpose()
    }

    /// The write that puts a queue item.
    pub fn queue_put<V: Serialize>(queue: QueueName, id: u64, value: &V) -> Write {
        Write::QueuePut {
            queue,
            id,
            value: encode(value),
        }
    }

    /// The write that removes a queue item.
    pub fn queue_remove(queue: QueueName, id: u64) -> Write {
        Write::QueueRemove { queue, id }
    }
}

/// Implements the core's [`StateView`] for `$ty` by reading `$target`.
macro_rules! forward_state_view {
    ($ty:ty, $self:ident => $target:expr) => {
        impl StateView for $ty {
            fn account(&$self, id: &str) -> Result<Option<Account>, ViewError> {
                $target.account(id)
            }
            fn account_shared(&$self, id: &str) -> Result<Option<std::sync::Arc<Account>>, ViewError> {
                $target.account_shared(id)
            }
            fn accounts(&$self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
                $target.accounts(after, limit)
            }
            fn user(&$self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
                $target.user(account_id, user_id)
            }
            fn user_shared(&$self, account_id: &str, user_id: &str) -> Result<Option<std::sync::Arc<User>>, ViewError> {
                $target.user_shared(account_id, user_id)
            }
            fn user_by_email(&$self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
                $target.user_by_email(account_id, email)
            }
            fn members(&$self, account_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<std::sync::Arc<User>>, ViewError> {
                $target.members(account_id, after, limit)
            }
            fn integrations(&$self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
                $target.integrations(account_id, limit)
            }
            fn integration(&$self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
                $target.integration(account_id, id)
            }
            fn token(&$self, hash: &str) -> Result<Option<Token>, ViewError> {
                $target.token(hash)
            }
            fn session(&$self, hash: &str) -> Result<Option<Session>, ViewError> {
                $target.session(hash)
            }
            fn session_shared(&$self, hash: &str) -> Result<Option<std::sync::Arc<Session>>, ViewError> {
                $target.session_shared(hash)
            }
            fn invoices(&$self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
                $target.invoices(account_id, limit)
            }
            fn webhook_seen(&$self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
                $target.webhook_seen(source, webhook_id)
            }
            fn licence_request(&$self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
                $target.licence_request(id)
            }
            fn policy_switches(&$self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
                $target.policy_switches(limit)
            }
            fn account_licence_requests(&$self, account_id: &str, limit: usize) -> Result<Vec<LicenceRequest>, ViewError> {
                $target.account_licence_requests(account_id, limit)
            }
            fn licence_requests(&$self, status: Option<LicenceStatus>, limit: usize) -> Result<Vec<LicenceRequest>, ViewError> {
                $target.licence_requests(status, limit)
            }
            fn audit(&$self, account_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>, ViewError> {
                $target.audit(account_id, after, limit)
            }
            fn investigations(&$self, account_id: Option<&str>, limit: usize) -> Result<Vec<SecurityInvestigation>, ViewError> {
                $target.investigations(account_id, limit)
            }
            fn members_before(&$self, account_id: &str, before: &str, limit: usize) -> Result<Vec<User>, ViewError> {
                $target.members_before(account_id, before, limit)
            }
            fn audit_newest(&$self, account_id: &str, before: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>, ViewError> {
                $target.audit_newest(account_id, before, limit)
            }
        }
    };
}
pub(crate) use forward_state_view;

forward_state_view!(Store, self => self.0);

/// A rendered message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: u64,
    pub to: String,
    /// Empty while `notice` is set: the outbox worker renders it.
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// What to say, rendered when the mail is sent (not on the writer's
    /// commit path). Mails queued by earlier versions come rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// The language to render `notice` in, when its account was at hand
    /// at commit (the command changed it): the account's own, else the
    /// platform's. Otherwise the worker reads the account when it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The mails one change queued, waiting in the outbox together: one queue
/// item (one row written and one removed) per change, not per mail. Each
/// mail keeps its own id, which names its file and its Message-ID; the
/// item's id is its first mail's.
///
/// A mail delivered leaves the item; one given up goes to `outbox_dead`
/// under its own id, as a mail queued alone did; the others are retried
/// together. An outbox value written by an earlier version (one mail) is
/// read as an item of that one mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxItem {
    pub id: u64,
    pub next_attempt_at: DateTime<Utc>,
    pub mails: Vec<OutboxMail>,
    /// What the last attempt came to, for the worker's settling and its
    /// metrics: never stored.
    #[serde(skip)]
    pub attempted: MailsAttempted,
}

/// What one attempt of an [`OutboxItem`] came to (not stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailsAttempted {
    /// Mails delivered (and taken off the item).
    pub delivered: u64,
    /// Mails whose delivery failed, given up on or not.
    pub failed: u64,
    /// Mails given up on (taken off the item, to be moved to
    /// `outbox_dead`).
    pub given_up: Vec<OutboxMail>,
}

impl OutboxItem {
    /// The item of a change's mails, each numbered by `next` in order;
    /// `None` for no mail.
    pub fn numbered(
        mails: Vec<OutboxMail>,
        next: &mut dyn FnMut() -> Result<u64, StoreError>,
    ) -> Result<Option<OutboxItem>, StoreError> {
        let mut numbered = Vec::with_capacity(mails.len());
        for mut mail in mails {
            mail.id = next()?;
            numbered.push(mail);
        }
        let (Some(id), Some(due)) = (
            numbered.first().map(|m| m.id),
            numbered.iter().map(|m| m.next_attempt_at).min(),
        ) else {
            return Ok(None);
        };
        Ok(Some(OutboxItem {
            id,
            next_attempt_at: due,
            mails: numbered,
            attempted: MailsAttempted::default(),
        }))
    }
}

impl<'de> Deserialize<'de> for OutboxItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            id: u64,
            next_attempt_at: DateTime<Utc>,
            mails: Vec<OutboxMail>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Item(Stored),
            // Written by versions that queued each mail on its own.
            Mail(Box<OutboxMail>),
        }
        Ok(match Either::deserialize(d)? {
            Either::Item(s) => OutboxItem {
                id: s.id,
                next_attempt_at: s.next_attempt_at,
                mails: s.mails,
                attempted: MailsAttempted::default(),
            },
            Either::Mail(mail) => OutboxItem {
                id: mail.id,
                next_attempt_at: mail.next_attempt_at,
                mails: vec![*mail],
                attempted: MailsAttempted::default(),
            },
        })
    }
}

/// An after-hook event waiting to be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub id: u64,
    /// The audit entry of the operation that caused it (causal audit).
    pub cause_seq: Option<u64>,
    pub event: DomainEvent,
    pub attempts: u32,
}
