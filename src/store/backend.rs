//! The store interface (see the parent module): the [`Backend`] trait, the
//! [`Transaction`] and [`Write`]s it commits, and [`Store`], the handle
//! everything above holds.

use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::codec::{decode, encode};
use crate::domain::*;

/// A durable queue, the dead or finished items of one, or a kept list
/// (hook call records, policy versions). Items are keyed by a `u64` (an id
/// from [`Backend::next_id`] for queues) and read in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// Rendered mail waiting to be written or sent.
    Outbox,
    /// Mail given up on.
    OutboxDead,
    /// After-hook events waiting for their handlers.
    Hooks,
    /// Outbound deliveries pending.
    Deliveries,
    /// Outbound deliveries delivered or failed (kept for a while).
    DeliveriesDone,
    /// The record of hook calls (what each policy saw and decided), for
    /// replay; kept by age and count, not drained by a worker.
    HookCalls,
    /// Every policy version ever loaded, keyed by a hash of its name and
    /// version (so a version is kept once); not drained.
    PolicyVersions,
}

impl QueueName {
    /// Whether its items are keyed by ids from [`Backend::next_id`] (so a
    /// restore moves the id counter past them); policy versions are keyed
    /// by a hash instead.
    pub fn keyed_by_id(self) -> bool {
        self != QueueName::PolicyVersions
    }
}

/// A write that is not a domain change: the queues' bookkeeping, worker
/// records, and what retention forgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    QueuePut {
        queue: QueueName,
        id: u64,
        value: Vec<u8>,
    },
    QueueRemove {
        queue: QueueName,
        id: u64,
    },
    /// An outbound subscriber's state (enabled, or disabled and why).
    PutSubscriberState {
        name: String,
        value: Vec<u8>,
    },
    /// An audit entry past retention.
    ForgetAudit {
        scope: String,
        seq: u64,
    },
    /// A received webhook id kept long enough.
    ForgetWebhook {
        source: String,
        webhook_id: String,
    },
}

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

/// Called with each item's id and value by [`Backend::queue_scan`];
/// returns whether to go on.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, StoreError> + 'a;

/// One stored record, whole, in the store's neutral terms: what `admind
/// export` writes (one JSON line each) and `admind import` restores. Ids,
/// sequence numbers and queue ids are kept, so causal links and
/// `webhook-id`s survive a move between backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Account {
        value: Account,
    },
    User {
        value: User,
    },
    EmailIndex {
        account_id: String,
        email: String,
        user_id: String,
    },
    Integration {
        value: Integration,
    },
    Token {
        value: Token,
    },
    Session {
        value: Session,
    },
    Invoice {
        value: Invoice,
    },
    Investigation {
        value: SecurityInvestigation,
    },
    LicenceRequest {
        value: LicenceRequest,
    },
    PolicySwitch {
        value: PolicySwitch,
    },
    WebhookSeen {
        source: String,
        webhook_id: String,
        at: DateTime<Utc>,
    },
    Audit {
        value: AuditEntry,
    },
    QueueItem {
        queue: QueueName,
        id: u64,
        value: serde_json::Value,
    },
    SubscriberState {
        name: String,
        value: serde_json::Value,
    },
}

/// What restoring a record writes: a domain change (so each backend keeps
/// its own indexes the way it does for a command), or one of the records
/// only the store keeps, as it was.
pub enum Restore {
    Change(Change),
    Audit(AuditEntry),
    QueueItem {
        queue: QueueName,
        id: u64,
        value: serde_json::Value,
    },
    SubscriberState {
        name: String,
        value: serde_json::Value,
    },
}

impl Record {
    /// The record's `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Account { .. } => "account",
            Record::User { .. } => "user",
            Record::EmailIndex { .. } => "email_index",
            Record::Integration { .. } => "integration",
            Record::Token { .. } => "token",
            Record::Session { .. } => "session",
            Record::Invoice { .. } => "invoice",
            Record::Investigation { .. } => "investigation",
            Record::LicenceRequest { .. } => "licence_request",
            Record::PolicySwitch { .. } => "policy_switch",
            Record::WebhookSeen { .. } => "webhook_seen",
            Record::Audit { .. } => "audit",
            Record::QueueItem { .. } => "queue_item",
            Record::SubscriberState { .. } => "subscriber_state",
        }
    }

    /// What a backend writes to restore the record.
    pub fn into_restore(self) -> Restore {
        match self {
            Record::Account { value } => Restore::Change(Change::PutAccount(value)),
            Record::User { value } => Restore::Change(Change::PutUser(value)),
            Record::EmailIndex {
                account_id,
                email,
                user_id,
            } => Restore::Change(Change::PutEmailIndex {
                account_id,
                email,
                user_id,
            }),
            Record::Integration { value } => Restore::Change(Change::PutIntegration(value)),
            Record::Token { value } => Restore::Change(Change::PutToken(value)),
            Record::Session { value } => Restore::Change(Change::PutSession(value)),
            Record::Invoice { value } => Restore::Change(Change::PutInvoice(value)),
            Record::Investigation { value } => Restore::Change(Change::PutInvestigation(value)),
            Record::LicenceRequest { value } => Restore::Change(Change::PutLicenceRequest(value)),
            Record::PolicySwitch { value } => Restore::Change(Change::PutPolicySwitch(value)),
            Record::WebhookSeen {
                source,
                webhook_id,
                at,
            } => Restore::Change(Change::PutWebhookSeen {
                source,
                webhook_id,
                at,
            }),
            Record::Audit { value } => Restore::Audit(value),
            Record::QueueItem { queue, id, value } => Restore::QueueItem { queue, id, value },
            Record::SubscriberState { name, value } => Restore::SubscriberState { name, value },
        }
    }
}

/// Called with each record by [`Backend::export`]; returns whether to go on.
pub type RecordVisit<'a> = dyn FnMut(Record) -> Result<bool, StoreError> + 'a;

/// Read order of a queue scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

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

/// What a backend provides. Object safe: the daemon holds a [`Store`]
/// (`Arc<dyn Backend>`) and never knows which backend it has.
pub trait Backend: StateView + Send + Sync + 'static {
    /// Which backend, for logs and errors.
    fn kind(&self) -> &'static str;

    /// 128 random bits made when the store was created: with a sequence
    /// number it makes ids that no other installation (nor this one after
    /// its data was reset) sends: outbound `webhook-id`s and mail
    /// Message-IDs, which receivers deduplicate on.
    fn installation_id(&self) -> &str;

    /// A new id, larger than every id handed out before (queue items are
    /// ordered by it).
    fn next_id(&self) -> Result<u64, StoreError>;

    /// Applies a transaction atomically: all of it or nothing.
    fn commit(&self, tx: Transaction) -> Result<(), StoreError>;

    /// Makes everything committed so far durable; afterwards
    /// [`Backend::durable_id`] covers it.
    fn flush(&self) -> Result<(), StoreError>;

    /// Every queue item with an id up to this is durable.
    fn durable_id(&self) -> u64;

    /// Visits a queue's items in `order` until `each` returns false.
    fn queue_scan(
        &self,
        queue: QueueName,
        order: Order,
        each: &mut Visit<'_>,
    ) -> Result<(), StoreError>;

    fn queue_item(&self, queue: QueueName, id: u64) -> Result<Option<Vec<u8>>, StoreError>;

    fn queue_len(&self, queue: QueueName) -> Result<usize, StoreError>;

    /// An outbound subscriber's stored state, if any was recorded.
    fn subscriber_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The writes that forget audit entries older than `cutoff`, at most
    /// `max` (for the writer to commit).
    fn expired_audit(&self, cutoff: DateTime<Utc>, max: usize) -> Result<Vec<Write>, StoreError>;

    /// The writes that forget webhook ids received before `cutoff`, at most
    /// `max`.
    fn expired_webhook_ids(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError>;

    /// Calls `each` with every audit entry at or after `since`, scope by
    /// scope in sequence order (one scope when `scope` is given), one entry
    /// at a time whatever the log's size. Returns how many it visited.
    fn audit_since(
        &self,
        since: DateTime<Utc>,
        scope: Option<&str>,
        each: &mut dyn FnMut(&AuditEntry) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError>;

    /// Visits every record, kind by kind, one at a time (memory stays flat
    /// whatever the store's size).
    fn export(&self, each: &mut RecordVisit<'_>) -> Result<(), StoreError>;

    /// Writes records as they are (ids and sequence numbers kept) in one
    /// transaction, and moves the id counter past every id they hold.
    /// For `admind import` into an empty store, with no daemon running:
    /// it bypasses the writer and every rule.
    fn restore(&self, records: Vec<Record>) -> Result<(), StoreError>;

    /// Whether the store holds no account and no audit entry.
    fn is_empty(&self) -> Result<bool, StoreError>;

    // What several daemons on one store share. A backend only one process
    // opens (sled, memory) keeps the defaults: nothing to coordinate, the
    // callers' in-process structures are the whole truth.

    /// Whether several daemons may serve this store at once.
    fn shared(&self) -> bool {
        false
    }

    /// How many writer threads may run commands at once: one unless the
    /// backend's `lock_command` keeps commands on one account apart.
    fn writer_threads(&self) -> usize {
        1
    }

    /// Holds `scope` against commands on other replicas until the lock is
    /// dropped (after the command's commit).
    fn lock_command(&self, _scope: LockScope<'_>) -> Result<CommandLock<'_>, StoreError> {
        Ok(CommandLock::none())
    }

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
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(value) = self.queue_item(queue, id)? {
                out.push((id, value));
            }
        }
        Ok(out)
    }

    /// Counts an attempt under `key` in the one-minute window `window`
    /// (minutes since the epoch) for every replica; returns the window's
    /// count with this one, or `None` when the store is not shared.
    fn count_attempt(&self, _key: &str, _window: i64) -> Result<Option<u32>, StoreError> {
        Ok(None)
    }

    /// Records `key` for every replica until `until`.
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
}

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
            fn accounts(&$self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
                $target.accounts(after, limit)
            }
            fn user(&$self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
                $target.user(account_id, user_id)
            }
            fn user_by_email(&$self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
                $target.user_by_email(account_id, email)
            }
            fn members(&$self, account_id: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, ViewError> {
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, database); its own words.
    #[error("{backend}: {detail}")]
    Backend {
        backend: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Codec(#[from] super::codec::CodecError),
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("store is shutting down")]
    Closed,
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> Self {
        ViewError(e.to_string())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::store(e.to_string())
    }
}
