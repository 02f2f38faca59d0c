//! The sled backend, the embedded default: one tree per kind of record,
//! values in the [`codec`](super::codec) format, one sled transaction per
//! [`Transaction`], durability from explicit flushes (group commit).
//!
//! Only the writer thread commits, so a command's reads and its transaction
//! see the same state without retries.

use std::path::Path;

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::domain::*;

use super::backend::{
    Backend, Order, QueueName, QueuedEvent, Record, RecordVisit, Restore, Store, StoreError,
    Transaction, Visit, Write,
};
use super::cache::Table;
use super::codec::{decode, encode, encode_record, key2, key_seq, prefix};

/// The trees, in the order of [`Store::trees`] (the transaction view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum T {
    Accounts = 0,
    Users,
    EmailIndex,
    Integrations,
    Tokens,
    Sessions,
    UserSessions,
    Invoices,
    Investigations,
    Audit,
    Outbox,
    HookQueue,
    OutboxDead,
    LicenceRequests,
    AccountLicences,
    WebhooksSeen,
    Deliveries,
    DeliveriesDone,
    Subscribers,
    PolicySwitches,
    HookCalls,
    PolicyVersions,
}

const TREE_NAMES: [&str; 22] = [
    "accounts",
    "users",
    "email_index",
    "integrations",
    "tokens",
    "sessions",
    "user_sessions",
    "invoices",
    "investigations",
    "audit",
    "outbox",
    "hook_queue",
    "outbox_dead",
    "licence_requests",
    "account_licences",
    "webhooks_seen",
    "deliveries",
    "deliveries_done",
    "subscribers",
    "policy_switches",
    "hook_calls",
    "policy_versions",
];

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend {
            backend: "sled",
            detail: e.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct SledStore {
    pub db: sled::Db,
    trees: Vec<sled::Tree>,
    installation_id: std::sync::Arc<str>,
    /// The highest id handed out, and the highest known to be on disk. Queue
    /// items (mail, hook events, deliveries) carry ids from the same counter,
    /// so a worker that takes only items up to `durable_id` never acts on a
    /// change a crash could still undo (sled's reads see a committed write
    /// before the batch's flush).
    last_issued_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    durable_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Decoded accounts, members, sessions and small accounts' member
    /// lists (this process is sled's only writer, so its commits are the
    /// only invalidations there are).
    cache: std::sync::Arc<ReadCache>,
}

/// The cached tables of a sled store.
struct ReadCache {
    accounts: Table<Account>,
    users: Table<User>,
    sessions: Table<Session>,
    /// An account's whole member list, when it has at most
    /// [`MEMBER_LIST_CACHED_MAX`] members, weighing its length.
    members: Table<Option<std::sync::Arc<Vec<User>>>>,
}

/// Member lists longer than this are read from the store page by page.
const MEMBER_LIST_CACHED_MAX: usize = 200;

pub use super::cache::CACHE_ENTRIES_MAX_DEFAULT;

/// Key (in sled's default tree) of the installation id.
const INSTALLATION_ID_KEY: &[u8] = b"installation_id";

/// One write of a sled transaction: tree, key, value (`None` removes).
type Op = (T, Vec<u8>, Option<Vec<u8>>);

fn new_installation_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_with_cache(dir, CACHE_ENTRIES_MAX_DEFAULT)
    }

    /// Opens the store with a read cache of at most `cache_entries_max`
    /// values per table (0: no cache).
    pub fn open_with_cache(dir: &Path, cache_entries_max: usize) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from explicit group-commit flushes, not a timer.
            .flush_every_ms(None)
            .open()?;
        let trees = TREE_NAMES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let installation_id = match db.get(INSTALLATION_ID_KEY)? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let id = new_installation_id();
                db.insert(INSTALLATION_ID_KEY, id.as_bytes())?;
                db.flush()?;
                id
            }
        };
        // Everything on disk at start is durable.
        let opened_at_id = db.generate_id()?;
        Ok(SledStore {
            db,
            trees,
            installation_id: installation_id.into(),
            last_issued_id: std::sync::Arc::new(opened_at_id.into()),
            durable_id: std::sync::Arc::new(opened_at_id.into()),
            cache: std::sync::Arc::new(ReadCache {
                accounts: Table::new(cache_entries_max),
                users: Table::new(cache_entries_max),
                sessions: Table::new(cache_entries_max),
                members: Table::new(cache_entries_max),
            }),
        })
    }

    /// A value of a cached tree: from the cache, else read and kept.
    fn cached<V: serde::de::DeserializeOwned + Clone>(
        &self,
        table: &Table<V>,
        t: T,
        key: &[u8],
    ) -> Result<Option<V>, StoreError> {
        match table.get(key) {
            Ok(v) => Ok(Some(v)),
            Err(ticket) => {
                let v: Option<V> = self.get(t, key)?;
                if let Some(v) = &v {
                    table.fill(key, ticket, v.clone(), 1);
                }
                Ok(v)
            }
        }
    }

    fn members_uncached(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        let p = prefix(account_id);
        let start = match after {
            // Just past `after`: append a NUL byte, the smallest suffix.
            Some(a) => {
                let mut k = key2(account_id, a);
                k.push(0);
                k
            }
            None => p.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree(T::Users).range(start..) {
            let (k, v) = item.map_err(StoreError::from)?;
            if !k.starts_with(&p) || out.len() >= limit {
                break;
            }
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    /// How many values of each tree are in each format version:
    /// `(tree, [version 1, version 2, other])`, trees holding no encoded
    /// values left out. Shows how far an upgraded store has been rewritten.
    pub fn format_census(&self) -> Result<Vec<(&'static str, [usize; 3])>, StoreError> {
        let mut out = Vec::new();
        for (n, name) in TREE_NAMES.iter().enumerate() {
            // Index trees hold raw ids or nothing, not encoded values.
            let index = [T::EmailIndex, T::UserSessions, T::AccountLicences];
            if index.iter().any(|t| *t as usize == n) {
                continue;
            }
            let mut counts = [0usize; 3];
            for item in self.trees[n].iter() {
                let (_, v) = item?;
                match super::codec::version(&v) {
                    Some(super::codec::FORMAT_JSON) => counts[0] += 1,
                    Some(super::codec::FORMAT_BINARY) => counts[1] += 1,
                    _ => counts[2] += 1,
                }
            }
            out.push((*name, counts));
        }
        Ok(out)
    }

    /// Forgets what a commit wrote (after it is applied, before it returns).
    fn invalidate(&self, ops: &[Op]) {
        for (t, key, _) in ops {
            match t {
                T::Accounts => self.cache.accounts.invalidate(key),
                T::Sessions => self.cache.sessions.invalidate(key),
                T::Users => {
                    self.cache.users.invalidate(key);
                    let account = key.split(|b| *b == 0).next().unwrap_or(key);
                    self.cache.members.invalidate(account);
                }
                _ => {}
            }
        }
    }

    fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t as usize]
    }

    fn get<V: serde::de::DeserializeOwned>(
        &self,
        t: T,
        key: &[u8],
    ) -> Result<Option<V>, StoreError> {
        match self.tree(t).get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// A new id (sled's monotonic counter), remembered as issued.
    fn issue_id(&self) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        self.last_issued_id
            .fetch_max(id, std::sync::atomic::Ordering::AcqRel);
        Ok(id)
    }

    /// Applies writes atomically (one sled transaction across trees).
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let result = self.apply_uncached(ops);
        // Also after a failure: whatever part sled kept, nobody reads it
        // from the cache.
        self.invalidate(ops);
        result
    }

    fn apply_uncached(&self, ops: &[Op]) -> Result<(), StoreError> {
        // Only the trees the writes touch take part (a sled transaction
        // stages and commits every tree it is given).
        let mut position = [usize::MAX; TREE_NAMES.len()];
        let mut touched: Vec<&sled::Tree> = Vec::with_capacity(8);
        for (t, _, _) in ops {
            if position[*t as usize] == usize::MAX {
                position[*t as usize] = touched.len();
                touched.push(self.tree(*t));
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        let result: Result<(), TransactionError<()>> = touched.as_slice().transaction(|txs| {
            for (t, key, value) in ops {
                let tx = &txs[position[*t as usize]];
                match value {
                    Some(v) => {
                        tx.insert(key.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx.remove(key.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(())) => unreachable!("the closure never aborts"),
        }
    }

    /// Turns domain changes into writes. Runs on the writer thread, so the
    /// scans it does (sessions of a user) see exactly the state the command
    /// saw.
    fn ops_for(&self, changes: &[Change]) -> Result<Vec<Op>, StoreError> {
        let mut ops = Vec::with_capacity(changes.len() + 4);
        for change in changes {
            match change {
                Change::PutAccount(a) => ops.push((
                    T::Accounts,
                    a.id.as_bytes().to_vec(),
                    Some(encode_record(a)),
                )),
                Change::PutUser(u) => {
                    ops.push((T::Users, key2(&u.account_id, &u.id), Some(encode_record(u))))
                }
                Change::DeleteUser {
                    account_id,
                    user_id,
                } => ops.push((T::Users, key2(account_id, user_id), None)),
                Change::PutEmailIndex {
                    account_id,
                    email,
                    user_id,
                } => ops.push((
                    T::EmailIndex,
                    key2(account_id, &normalize_email(email)),
                    Some(user_id.as_bytes().to_vec()),
                )),
                Change::DeleteEmailIndex { account_id, email } => ops.push((
                    T::EmailIndex,
                    key2(account_id, &normalize_email(email)),
                    None,
                )),
                Change::PutIntegration(i) => ops.push((
                    T::Integrations,
                    key2(&i.account_id, &i.id),
                    Some(encode_record(i)),
                )),
                Change::PutToken(t) => ops.push((
                    T::Tokens,
                    t.hash.as_bytes().to_vec(),
                    Some(encode_record(t)),
                )),
                Change::DeleteToken { hash } => {
                    ops.push((T::Tokens, hash.as_bytes().to_vec(), None))
                }
                Change::PutSession(s) => {
                    ops.push((
                        T::Sessions,
                        s.hash.as_bytes().to_vec(),
                        Some(encode_record(s)),
                    ));
                    let mut k = key2(&s.account_id, &s.user_id);
                    k.push(0);
                    k.extend_from_slice(s.hash.as_bytes());
                    ops.push((T::UserSessions, k, Some(Vec::new())));
                }
                Change::DeleteSession { hash } => {
                    if let Some(s) = self.get::<Session>(T::Sessions, hash.as_bytes())? {
                        let mut k = key2(&s.account_id, &s.user_id);
                        k.push(0);
                        k.extend_from_slice(s.hash.as_bytes());
                        ops.push((T::UserSessions, k, None));
                    }
                    ops.push((T::Sessions, hash.as_bytes().to_vec(), None));
                }
                Change::DeleteUserSessions {
                    account_id,
                    user_id,
                } => {
                    let mut p = key2(account_id, user_id);
                    p.push(0);
                    for item in self.tree(T::UserSessions).scan_prefix(&p) {
                        let (k, _) = item?;
                        let hash = k[p.len()..].to_vec();
                        ops.push((T::Sessions, hash, None));
                        ops.push((T::UserSessions, k.to_vec(), None));
                    }
                }
                Change::DeleteSessionsSignedInWith {
                    account_id,
                    user_id,
                    email,
                } => {
                    let mut p = key2(account_id, user_id);
                    p.push(0);
                    for item in self.tree(T::UserSessions).scan_prefix(&p) {
                        let (k, _) = item?;
                        let hash = &k[p.len()..];
                        let session: Option<Session> = self.get(T::Sessions, hash)?;
                        if session
                            .is_some_and(|s| normalize_email(&s.email) == normalize_email(email))
                        {
                            ops.push((T::Sessions, hash.to_vec(), None));
                            ops.push((T::UserSessions, k.to_vec(), None));
                        }
                    }
                }
                Change::PutLicenceRequest(r) => {
                    ops.push((
                        T::LicenceRequests,
                        r.id.as_bytes().to_vec(),
                        Some(encode_record(r)),
                    ));
                    ops.push((
                        T::AccountLicences,
                        key2(&r.account_id, &r.id),
                        Some(Vec::new()),
                    ));
                }
                Change::PutWebhookSeen {
                    source,
                    webhook_id,
                    at,
                } => {
                    ops.push((
                        T::WebhooksSeen,
                        key2(source, webhook_id),
                        Some(encode_record(at)),
                    ));
                }
                Change::PutPolicySwitch(p) => {
                    ops.push((
                        T::PolicySwitches,
                        p.name.as_bytes().to_vec(),
                        Some(encode_record(p)),
                    ));
                }
                Change::PutInvoice(i) => {
                    let seq = self.issue_id()?;
                    ops.push((
                        T::Invoices,
                        key_seq(&i.account_id, seq),
                        Some(encode_record(i)),
                    ))
                }
                Change::PutInvestigation(i) => ops.push((
                    T::Investigations,
                    key2(&i.account_id, &i.id),
                    Some(encode_record(i)),
                )),
            }
        }
        Ok(ops)
    }

    /// A store write in sled's terms.
    fn op_for(write: Write) -> Op {
        match write {
            Write::QueuePut { queue, id, value } => {
                (queue_tree(queue), id.to_be_bytes().to_vec(), Some(value))
            }
            Write::QueueRemove { queue, id } => {
                (queue_tree(queue), id.to_be_bytes().to_vec(), None)
            }
            Write::PutSubscriberState { name, value } => {
                (T::Subscribers, name.into_bytes(), Some(value))
            }
            Write::ForgetAudit { scope, seq } => (T::Audit, key_seq(&scope, seq), None),
            Write::ForgetWebhook { source, webhook_id } => {
                (T::WebhooksSeen, key2(&source, &webhook_id), None)
            }
        }
    }
}

fn queue_tree(queue: QueueName) -> T {
    match queue {
        QueueName::Outbox => T::Outbox,
        QueueName::OutboxDead => T::OutboxDead,
        QueueName::Hooks => T::HookQueue,
        QueueName::Deliveries => T::Deliveries,
        QueueName::DeliveriesDone => T::DeliveriesDone,
        QueueName::HookCalls => T::HookCalls,
        QueueName::PolicyVersions => T::PolicyVersions,
    }
}

fn queue_id(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}

impl Store {
    /// The embedded default: a sled directory.
    pub fn open_sled(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(SledStore::open(dir)?))
    }

    /// A sled directory with a read cache of at most `cache_entries_max`
    /// values per table.
    pub fn open_sled_with_cache(dir: &Path, cache_entries_max: usize) -> Result<Store, StoreError> {
        Ok(Store::new(SledStore::open_with_cache(
            dir,
            cache_entries_max,
        )?))
    }
}

/// The tree of marks ([`Backend::put_mark`]), and how many it holds.
const MARKS_TREE: &str = "marks";
const MARKS_MAX: usize = 100_000;

fn mark_until(value: &[u8]) -> i64 {
    value.try_into().map(i64::from_be_bytes).unwrap_or(i64::MIN)
}

impl Backend for SledStore {
    fn kind(&self) -> &'static str {
        "sled"
    }

    fn installation_id(&self) -> &str {
        &self.installation_id
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.issue_id()
    }

    fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let mut ops = self.ops_for(&tx.changes)?;
        let mut cause = None;
        if let Some(draft) = tx.audit {
            let seq = self.issue_id()?;
            let key = key_seq(&draft.account_id, seq);
            ops.push((T::Audit, key, Some(encode_record(&draft.into_entry(seq)))));
            cause = Some(seq);
        }
        for mut mail in tx.mails {
            mail.id = self.issue_id()?;
            ops.push((
                T::Outbox,
                mail.id.to_be_bytes().to_vec(),
                Some(encode(&mail)),
            ));
        }
        for event in tx.events {
            let id = self.issue_id()?;
            let queued = QueuedEvent {
                id,
                cause_seq: cause,
                event,
                attempts: 0,
            };
            ops.push((
                T::HookQueue,
                id.to_be_bytes().to_vec(),
                Some(encode(&queued)),
            ));
        }
        ops.extend(tx.writes.into_iter().map(Self::op_for));
        self.apply(&ops)
    }

    /// Ids issued before the flush started are on disk once it returns
    /// (sled's reads see a committed write before the batch's flush, hence
    /// the watermark).
    fn flush(&self) -> Result<(), StoreError> {
        let issued = self
            .last_issued_id
            .load(std::sync::atomic::Ordering::Acquire);
        self.db.flush()?;
        self.durable_id
            .fetch_max(issued, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    fn durable_id(&self) -> u64 {
        self.durable_id.load(std::sync::atomic::Ordering::Acquire)
    }

    fn queue_scan(
        &self,
        queue: QueueName,
        order: Order,
        each: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let tree = self.tree(queue_tree(queue));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match order {
            Order::OldestFirst => Box::new(tree.iter()),
            Order::NewestFirst => Box::new(tree.iter().rev()),
        };
        for item in iter {
            let (k, v) = item?;
            if !each(queue_id(&k), &v)? {
                break;
            }
        }
        Ok(())
    }

    fn queue_item(&self, queue: QueueName, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(queue_tree(queue))
            .get(id.to_be_bytes())?
            .map(|v| v.to_vec()))
    }

    fn queue_len(&self, queue: QueueName) -> Result<usize, StoreError> {
        Ok(self.tree(queue_tree(queue)).len())
    }

    /// Marks (a console sign-out) outlive a restart: kept in a tree of
    /// their own, outside the domain's records (not exported: each expires
    /// within hours), flushed before the answer. Expired ones are dropped
    /// when more than [`MARKS_MAX`] are held.
    fn put_mark(&self, key: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let marks = self.db.open_tree(MARKS_TREE)?;
        if marks.len() >= MARKS_MAX {
            let now = Utc::now().timestamp();
            for item in marks.iter() {
                let (k, v) = item?;
                if mark_until(&v) <= now {
                    marks.remove(k)?;
                }
            }
            if marks.len() >= MARKS_MAX {
                return Err(StoreError::Backend {
                    backend: "sled",
                    detail: format!("more than {MARKS_MAX} live marks"),
                });
            }
        }
        marks.insert(key.as_bytes(), &until.timestamp().to_be_bytes())?;
        marks.flush()?;
        Ok(())
    }

    fn has_mark(&self, key: &str) -> Result<bool, StoreError> {
        let marks = self.db.open_tree(MARKS_TREE)?;
        Ok(marks
            .get(key.as_bytes())?
            .is_some_and(|v| mark_until(&v) > Utc::now().timestamp()))
    }

    fn subscriber_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(T::Subscribers)
            .get(name.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Entries of one scope (account) are stored in sequence order, which is
    /// time order, so each scope is read from its start only until its
    /// first young entry, then the scan jumps to the next scope.
    fn expired_audit(&self, cutoff: DateTime<Utc>, max: usize) -> Result<Vec<Write>, StoreError> {
        let tree = self.tree(T::Audit);
        let mut out: Vec<Write> = Vec::new();
        let mut cursor: Vec<u8> = Vec::new();
        while out.len() < max {
            let Some(first) = tree.range(cursor.as_slice()..).next() else {
                break;
            };
            let (first_key, _) = first?;
            let Some(nul) = first_key.iter().position(|b| *b == 0) else {
                // Not an audit key; step over it.
                cursor = first_key.to_vec();
                cursor.push(0);
                continue;
            };
            let scope = first_key[..=nul].to_vec();
            for item in tree.scan_prefix(&scope) {
                let (_, v) = item?;
                let entry: AuditEntry = decode(&v)?;
                if entry.at >= cutoff || out.len() >= max {
                    break;
                }
                out.push(Write::ForgetAudit {
                    scope: entry.account_id,
                    seq: entry.seq,
                });
            }
            // The next scope starts after `scope \0 \xff...`: bump the NUL.
            cursor = scope;
            let last = cursor.len() - 1;
            cursor[last] = 1;
        }
        Ok(out)
    }

    fn expired_webhook_ids(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(T::WebhooksSeen).iter() {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            let at: DateTime<Utc> = decode(&v)?;
            if at < cutoff {
                let text = String::from_utf8_lossy(&k);
                let (source, webhook_id) = text.split_once('\0').unwrap_or((&text, ""));
                out.push(Write::ForgetWebhook {
                    source: source.to_string(),
                    webhook_id: webhook_id.to_string(),
                });
            }
        }
        Ok(out)
    }

    fn audit_since(
        &self,
        since: DateTime<Utc>,
        scope: Option<&str>,
        each: &mut dyn FnMut(&AuditEntry) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let tree = self.tree(T::Audit);
        let iter = match scope {
            Some(s) => tree.scan_prefix(prefix(s)),
            None => tree.iter(),
        };
        let mut visited = 0;
        for item in iter {
            let (_, v) = item?;
            let entry: AuditEntry = decode(&v)?;
            if entry.at >= since {
                each(&entry)?;
                visited += 1;
            }
        }
        Ok(visited)
    }

    fn export(&self, each: &mut RecordVisit<'_>) -> Result<(), StoreError> {
        /// Visits a tree's values as records; false when `each` said stop.
        fn values<V: serde::de::DeserializeOwned>(
            tree: &sled::Tree,
            each: &mut RecordVisit<'_>,
            make: impl Fn(&[u8], V) -> Record,
        ) -> Result<bool, StoreError> {
            for item in tree.iter() {
                let (k, v) = item?;
                if !each(make(&k, decode(&v)?))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        fn split(key: &[u8]) -> (String, String) {
            let text = String::from_utf8_lossy(key);
            let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
            (a.to_string(), b.to_string())
        }
        let go = values(self.tree(T::Accounts), each, |_, value| Record::Account {
            value,
        })? && values(self.tree(T::Users), each, |_, value| Record::User { value })?
            && {
                let mut go = true;
                for item in self.tree(T::EmailIndex).iter() {
                    let (k, v) = item?;
                    let (account_id, email) = split(&k);
                    let user_id = String::from_utf8_lossy(&v).into_owned();
                    if !each(Record::EmailIndex {
                        account_id,
                        email,
                        user_id,
                    })? {
                        go = false;
                        break;
                    }
                }
                go
            }
            && values(self.tree(T::Integrations), each, |_, value| {
                Record::Integration { value }
            })?
            && values(self.tree(T::Tokens), each, |_, value| Record::Token {
                value,
            })?
            && values(self.tree(T::Sessions), each, |_, value| Record::Session {
                value,
            })?
            && values(self.tree(T::Invoices), each, |_, value| Record::Invoice {
                value,
            })?
            && values(self.tree(T::Investigations), each, |_, value| {
                Record::Investigation { value }
            })?
            && values(self.tree(T::LicenceRequests), each, |_, value| {
                Record::LicenceRequest { value }
            })?
            && values(self.tree(T::PolicySwitches), each, |_, value| {
                Record::PolicySwitch { value }
            })?
            && values(self.tree(T::WebhooksSeen), each, |k, at| {
                let (source, webhook_id) = split(k);
                Record::WebhookSeen {
                    source,
                    webhook_id,
                    at,
                }
            })?
            && values(self.tree(T::Audit), each, |_, value| Record::Audit {
                value,
            })?;
        if !go {
            return Ok(());
        }
        for queue in [
            QueueName::Outbox,
            QueueName::OutboxDead,
            QueueName::Hooks,
            QueueName::Deliveries,
            QueueName::DeliveriesDone,
            QueueName::HookCalls,
            QueueName::PolicyVersions,
        ] {
            if !values(self.tree(queue_tree(queue)), each, |k, value| {
                Record::QueueItem {
                    queue,
                    id: queue_id(k),
                    value,
                }
            })? {
                return Ok(());
            }
        }
        values(self.tree(T::Subscribers), each, |k, value| {
            Record::SubscriberState {
                name: String::from_utf8_lossy(k).into_owned(),
                value,
            }
        })?;
        Ok(())
    }

    fn restore(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut changes = Vec::new();
        let mut raw: Vec<Op> = Vec::new();
        let mut max_id = 0u64;
        for record in records {
            match record.into_restore() {
                Restore::Change(change) => changes.push(change),
                Restore::Audit(value) => {
                    max_id = max_id.max(value.seq);
                    raw.push((
                        T::Audit,
                        key_seq(&value.account_id, value.seq),
                        Some(encode_record(&value)),
                    ));
                }
                Restore::QueueItem { queue, id, value } => {
                    if queue.keyed_by_id() {
                        max_id = max_id.max(id);
                    }
                    raw.push((
                        queue_tree(queue),
                        id.to_be_bytes().to_vec(),
                        Some(encode(&value)),
                    ));
                }
                Restore::SubscriberState { name, value } => {
                    raw.push((T::Subscribers, name.into_bytes(), Some(encode(&value))));
                }
            }
        }
        // Ids handed out from now on are larger than every restored one
        // (sled's counter only steps; a file claiming absurd ids is refused
        // rather than stepped through).
        const RESTORE_ID_STEPS_MAX: u64 = 1 << 32;
        let current = self.issue_id()?;
        if max_id.saturating_sub(current) > RESTORE_ID_STEPS_MAX {
            return Err(StoreError::Backend {
                backend: "sled",
                detail: format!("the records hold an id ({max_id}) far beyond any this store could have handed out"),
            });
        }
        while self.issue_id()? < max_id {}
        let mut ops = self.ops_for(&changes)?;
        ops.extend(raw);
        self.apply(&ops)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.tree(T::Accounts).is_empty() && self.tree(T::Audit).is_empty())
    }
}

impl StateView for SledStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.cached(&self.cache.accounts, T::Accounts, id.as_bytes())?)
    }

    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
        let tree = self.tree(T::Accounts);
        let iter = match after {
            // Just past `after`: append a NUL byte, the smallest suffix.
            Some(a) => {
                let mut k = a.as_bytes().to_vec();
                k.push(0);
                tree.range(k..)
            }
            None => tree.range::<&[u8], _>(..),
        };
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(self.cached(&self.cache.users, T::Users, &key2(account_id, user_id))?)
    }

    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        let key = key2(account_id, &normalize_email(email));
        match self
            .tree(T::EmailIndex)
            .get(key)
            .map_err(StoreError::from)?
        {
            Some(user_id) => {
                let user_id = String::from_utf8_lossy(&user_id).into_owned();
                self.user(account_id, &user_id)
            }
            None => Ok(None),
        }
    }

    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        // A long list is paged from the store (the account's member count
        // says so without reading the list).
        let long = self
            .account(account_id)?
            .is_some_and(|a| a.member_count as usize > MEMBER_LIST_CACHED_MAX);
        if long {
            return self.members_uncached(account_id, after, limit);
        }
        let list = match self.cache.members.get(account_id.as_bytes()) {
            Ok(list) => list,
            Err(ticket) => {
                let all = self.members_uncached(account_id, None, MEMBER_LIST_CACHED_MAX + 1)?;
                // Longer than its count said (a race with a commit): not kept.
                let list = (all.len() <= MEMBER_LIST_CACHED_MAX).then(|| std::sync::Arc::new(all));
                if let Some(l) = &list {
                    let weight = l.len().max(1);
                    self.cache
                        .members
                        .fill(account_id.as_bytes(), ticket, Some(l.clone()), weight);
                }
                list
            }
        };
        let Some(list) = list else {
            return self.members_uncached(account_id, after, limit);
        };
        // The list is in key order, which is id order.
        let start = match after {
            Some(a) => list.partition_point(|u| u.id.as_str() <= a),
            None => 0,
        };
        Ok(list[start..].iter().take(limit).cloned().collect())
    }

    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        let mut out = Vec::new();
        for item in self
            .tree(T::Integrations)
            .scan_prefix(prefix(account_id))
            .take(limit)
        {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        Ok(self.get(T::Integrations, &key2(account_id, id))?)
    }

    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        Ok(self.get(T::Tokens, hash.as_bytes())?)
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(self.cached(&self.cache.sessions, T::Sessions, hash.as_bytes())?)
    }

    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        let mut out = Vec::new();
        for item in self
            .tree(T::Invoices)
            .scan_prefix(prefix(account_id))
            .rev()
            .take(limit)
        {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        Ok(self
            .tree(T::WebhooksSeen)
            .contains_key(key2(source, webhook_id))
            .map_err(StoreError::from)?)
    }

    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
        let mut out = Vec::new();
        for item in self.tree(T::PolicySwitches).iter().take(limit) {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }
    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        Ok(self.get(T::LicenceRequests, id.as_bytes())?)
    }

    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let p = prefix(account_id);
        let mut out = Vec::new();
        for item in self.tree(T::AccountLicences).scan_prefix(&p).take(limit) {
            let (k, _) = item.map_err(StoreError::from)?;
            if let Some(r) = self.get(T::LicenceRequests, &k[p.len()..])? {
                out.push(r);
            }
        }
        out.sort_by_key(|r: &LicenceRequest| r.created_at);
        Ok(out)
    }

    /// Scans every request: fine while requests number in the thousands; an
    /// index by status is the next step past that.
    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let mut out = Vec::new();
        for item in self.tree(T::LicenceRequests).iter() {
            let (_, v) = item.map_err(StoreError::from)?;
            let r: LicenceRequest = decode(&v).map_err(StoreError::from)?;
            if status.is_none_or(|s| s == r.status) {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.created_at);
        out.truncate(limit);
        Ok(out)
    }

    fn audit(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        let p = prefix(account_id);
        let start = key_seq(account_id, after.map(|a| a.saturating_add(1)).unwrap_or(0));
        let mut out = Vec::new();
        for item in self.tree(T::Audit).range(start..) {
            let (k, v) = item.map_err(StoreError::from)?;
            if !k.starts_with(&p) || out.len() >= limit {
                break;
            }
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }
}
