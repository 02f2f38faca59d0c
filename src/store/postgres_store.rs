//! The PostgreSQL backend: one table per kind of record (values as JSON
//! text beside the key columns an operator queries by), one SQL transaction per
//! [`Transaction`], ids from one sequence, a schema created and upgraded by
//! versioned migrations at start-up.
//!
//! The driver is tokio-postgres driven on the caller's thread
//! (`postgres_conn`), with an r2d2 pool: the store interface is synchronous
//! (the writer is a thread), and writes are pipelined. Called from an async
//! task, a query leaves the runtime first (`block_in_place`), so the
//! connection's own runtime never nests in tokio's.
//!
//! Several daemons (replicas) may serve one database. A command runs in one
//! SQL transaction: the writer's `lock_command` opens it and takes
//! transaction advisory locks (the account's, exclusive, and a shared
//! "everything" lock that the few commands without one account take
//! exclusive, see [`LockScope`]); the command's reads on that thread use
//! the same connection (a thread-local `Held`), and its commit writes and
//! COMMITs there, which releases the locks. Reads run at READ COMMITTED
//! after the locks are granted, so they see every commit made under them.
//! A commit is durable when it returns (`synchronous_commit` on, the
//! default), so `flush` has nothing to do and every committed id is
//! durable.

use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};
use serde::Deserialize;
use std::sync::Arc;

use super::cache::{ReadCache, MEMBER_LIST_CACHED_MAX};
use super::codec::key2;
use super::postgres_cache::{SharedCache, Touched};
use super::postgres_conn::{owned, CodecJson, Conn, JsonRecord, JsonText, Manager, Run};

use crate::domain::*;

use super::backend::{
    About, Backend, CommandLock, Coordination, Hide, LockScope, OutboxItem, OutboxMail, Prefetch,
    QueuedEvent, ReplicaInfo, Store, StoreError, Transaction,
};
use super::codec::{decode, encode};
use super::records::{Kind, Order, QueueName, Restore, RowVisit, Write};

/// The schema versions this build knows, in order; each runs once.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_replicas.sql"),
    include_str!("postgres/0003_policy_switches.sql"),
    include_str!("postgres/0004_queue_lanes.sql"),
    include_str!("postgres/0005_queue_lz4.sql"),
    include_str!("postgres/0006_values_text.sql"),
];

/// Advisory lock held while migrating (replicas starting together migrate
/// one at a time).
const MIGRATION_LOCK_KEY: i64 = 0x6164_6d69_6e64; // "admind"
/// Advisory lock every command holds: shared for one account's commands,
/// exclusive for the others.
const EVERYTHING_LOCK_KEY: i64 = 0x6164_6d69_6e65;

/// The advisory lock key of an account: the same on every replica.
fn account_lock_key(account_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("admind account\0{account_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// How a command's transaction and locks are taken (`lock_command`).
enum Opening {
    /// Now, in one round trip (a group, or an exclusive command).
    Now(String),
    /// Sent with the command's first read.
    WithFirstRead { account_key: i64 },
    /// A group's: sent with its prefetch (or its first read), its
    /// accounts' keys locked in key order; or, unless it `wait`s, those
    /// no other transaction holds (the others are named by the prefetch).
    Group { keys: Vec<i64>, wait: bool },
}

/// Rows a scan reads per round trip.
const SCAN_PAGE: i64 = 500;

type Pool = r2d2::Pool<Manager>;
type Pooled = r2d2::PooledConnection<Manager>;

/// The connection of the command a writer thread runs: an open SQL
/// transaction holding the command's advisory locks, which the command's
/// reads and its commit use (see [`Backend::lock_command`]).
struct Held {
    /// Which store it belongs to (a process may open several).
    store: usize,
    conn: Pooled,
    /// Whether its transaction is still open (not committed).
    open: bool,
    /// A group of commands (`LockScope::Accounts`): each runs inside a
    /// savepoint, the transaction commits at `flush`. The advisory lock
    /// keys it holds.
    group: Option<Vec<i64>>,
    /// In a group: whether the running command's writes were written (else
    /// its savepoint is rolled back when its lock is dropped).
    command_written: bool,
    /// The cached keys its writes touched, forgotten after its COMMIT.
    touched: Touched,
    /// The new queue items it inserted (mails, hook events), handed to
    /// this process's workers after its COMMIT.
    handed: Vec<HandedItem>,
    /// Who new queue items are inserted claimed by (`own_new_items`).
    owner: Option<Arc<ItemOwner>>,
    /// Ids drawn ahead (a group's, with its locks), used in order; more
    /// are drawn when they run out, so they grow in commit order.
    ids: std::collections::VecDeque<u64>,
    /// A group's reads fetched with its locks ([`Backend::prefetch`]),
    /// kept true by its commands' writes.
    overlay: Option<Overlay>,
    /// A group's rows of the tables every command writes, written at its
    /// COMMIT, one statement per table.
    rows: GroupRows,
    /// In a group: the running command's writes could not be batched and
    /// went inside a savepoint of their own.
    savepoint: bool,
    /// A group whose COMMIT must fail (a command's rows were half staged):
    /// the writer then runs its commands one by one.
    poisoned: bool,
}

impl Held {
    fn new(
        store: usize,
        conn: Pooled,
        group: Option<Vec<i64>>,
        owner: Option<Arc<ItemOwner>>,
    ) -> Held {
        Held {
            store,
            conn,
            open: true,
            group,
            command_written: false,
            touched: Touched::new(),
            handed: Vec::new(),
            owner,
            ids: std::collections::VecDeque::new(),
            overlay: None,
            rows: GroupRows::default(),
            savepoint: false,
            poisoned: false,
        }
    }
}

/// What a group of commands reads, fetched with its locks in one round
/// trip, then changed by its commands' own writes: each command reads from
/// memory what the one before it left. A key it does not hold is read from
/// the database (after the group's rows so far are sent).
#[derive(Default)]
struct Overlay {
    accounts: std::collections::HashMap<String, Option<Account>>,
    members: std::collections::HashMap<Vec<u8>, Option<Arc<User>>>,
    /// Each account's integrations in id order, the first
    /// `integrations_max` of them.
    integrations: std::collections::HashMap<String, Vec<Integration>>,
    integrations_max: usize,
}

impl Overlay {
    /// The account's integrations, first `limit`, if it holds them all.
    fn integrations(&self, account_id: &str, limit: usize) -> Option<Vec<Integration>> {
        if limit > self.integrations_max {
            return None;
        }
        let list = self.integrations.get(account_id)?;
        Some(list.iter().take(limit).cloned().collect())
    }

    /// What a committed change leaves.
    fn note(&mut self, change: &Change) {
        match change {
            Change::PutAccount(a) => {
                self.accounts.insert(a.id.clone(), Some(a.clone()));
            }
            Change::PutUser(u) => {
                self.members
                    .insert(key2(&u.account_id, &u.id), Some(Arc::new(u.clone())));
            }
            Change::DeleteUser {
                account_id,
                user_id,
            } => {
                self.members.insert(key2(account_id, user_id), None);
            }
            Change::PutIntegration(i) => {
                // Read again: where it sorts among the others is the
                // database's to say.
                self.integrations.remove(&i.account_id);
            }
            _ => {}
        }
    }
}

/// A group's accounts, audit entries and new queue items, as its commands
/// commit: one multi-row statement per table at the group's COMMIT instead
/// of one statement per command each.
#[derive(Default)]
struct GroupRows {
    /// id, name, value; an account put twice keeps its last value.
    accounts: Vec<(String, String, JsonText)>,
    audit: Vec<AuditRow>,
    queue: NewItems,
}

type AuditRow = (String, i64, DateTime<Utc>, String, JsonText);

impl GroupRows {
    fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.audit.is_empty() && self.queue.ids.is_empty()
    }

    /// Defers the rows' statements (sent with the next one that waits),
    /// and forgets them.
    fn defer(&mut self, tx: &mut impl Run, owner: Option<&ItemOwner>) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        let GroupRows {
            accounts,
            audit,
            queue,
        } = std::mem::take(self);
        if !accounts.is_empty() {
            // The same row twice in one INSERT … ON CONFLICT is refused:
            // the last put of each account wins.
            let mut seen = std::collections::HashSet::new();
            let (mut ids, mut names, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for (id, name, value) in accounts.into_iter().rev() {
                if seen.insert(id.clone()) {
                    ids.push(id);
                    names.push(name);
                    values.push(value);
                }
            }
            tx.defer(
                "INSERT INTO accounts (id, name, value)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, value = EXCLUDED.value",
                owned![ids, names, values],
            );
        }
        if !audit.is_empty() {
            let n = audit.len();
            let (mut scopes, mut seqs, mut ats, mut actions, mut values) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (scope, seq, at, action, value) in audit {
                scopes.push(scope);
                seqs.push(seq);
                ats.push(at);
                actions.push(action);
                values.push(value);
            }
            tx.defer(
                "INSERT INTO audit (scope, seq, at, action, value)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[])",
                owned![scopes, seqs, ats, actions, values],
            );
        }
        queue.insert(tx, owner)
    }
}

thread_local! {
    static HELD: std::cell::RefCell<Option<Held>> = const { std::cell::RefCell::new(None) };
}

pub struct PostgresStore {
    /// Dropped on a thread of its own (see `Drop`).
    pool: std::mem::ManuallyDrop<Pool>,
    /// For the announcement listener's own connection.
    config: postgres::Config,
    installation_id: String,
    /// Writer threads: `store.writer_threads`, at most half the pool (each
    /// holds a connection while its group runs; the rest serve reads and
    /// the workers).
    writers: usize,
    /// Accounts, members and sessions for reads outside commands, kept true
    /// across replicas by announcements (`postgres_cache`); none when
    /// `store.cache_entries_max` is 0.
    cache: Option<std::sync::Arc<SharedCache>>,
    /// Who this process's new queue items are inserted claimed by, once
    /// its workers run (`own_new_items`).
    owner: std::sync::OnceLock<Arc<ItemOwner>>,
    /// New mails and hook events committed by this process, not yet taken
    /// by its workers (see `Backend::take_committed`).
    committed: std::sync::Mutex<Committed>,
}

/// Writer threads of a replica unless configured (`store.writer_threads`).
/// A group costs two round trips and one COMMIT whatever its size, so few
/// threads with large groups carry more than many with small ones: on a
/// 2-core machine 2 threads carried 2,438–2,569 transfers/s at 64 clients
/// against 1,660 for 8 and 1,190 for 16 (BENCHMARKS.md); the second thread
/// keeps a replica writing while one waits on a lock another replica holds.
pub const WRITER_THREADS_DEFAULT: usize = 2;

/// New items kept per queue for this process's worker, at most (their
/// values are held: about half a KiB each); past it the worker scans the
/// queue instead.
const COMMITTED_MAX: usize = 16_384;

/// A new queue item, handed to this process's worker after its COMMIT:
/// its queue, id and value (in the codec's format).
type HandedItem = (QueueName, u64, Vec<u8>);

/// Who this process's new queue items are inserted claimed by, and how
/// long before another replica takes them over.
#[derive(Debug)]
struct ItemOwner {
    owner: String,
    lease_secs: f64,
    stale_secs: f64,
}

/// New items of one queue waiting for this process's worker.
#[derive(Default)]
struct Waiting {
    items: Vec<(u64, Vec<u8>)>,
    /// Some were dropped (more than [`COMMITTED_MAX`] waited).
    dropped: bool,
    /// When the oldest waiting item was committed: past half a lease its
    /// claim may lapse before the worker renews it, so it is scanned for
    /// and claimed again instead.
    since: Option<std::time::Instant>,
}

#[derive(Default)]
struct Committed {
    outbox: Waiting,
    hooks: Waiting,
}

/// The read cache of a replica: values per table, and the age past which a
/// value is read again even if no announcement said it changed.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    pub entries_max: usize,
    pub max_age: std::time::Duration,
}

/// A driver connection closes by running its own runtime, which may not
/// start inside tokio's (the daemon drops its store inside `block_on`):
/// connections are closed on a thread of their own.
fn close_elsewhere(client: Option<Client>) {
    if let Some(client) = client {
        let _ = std::thread::spawn(move || drop(client)).join();
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // SAFETY: `pool` is not used again: this is the store's last use.
        let pool = unsafe { std::mem::ManuallyDrop::take(&mut self.pool) };
        let _ = std::thread::spawn(move || drop(pool)).join();
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's own words (the driver's Display says only "db error").
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        StoreError::Backend {
            backend: "postgres",
            detail,
        }
    }
}

/// A row count for SQL (`LIMIT`): `usize::MAX` means no limit.
fn rows(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Backend {
            backend: "postgres",
            detail: format!("no connection: {e}"),
        }
    }
}

/// Runs blocking database work from anywhere: leaves the async runtime
/// first when called from one of its workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        detail: format!("a stored value does not decode: {e}"),
    }
}

fn queue_name(q: QueueName) -> &'static str {
    match q {
        QueueName::Outbox => "outbox",
        QueueName::OutboxDead => "outbox_dead",
        QueueName::Hooks => "hook_events",
        QueueName::Deliveries => "deliveries",
        QueueName::DeliveriesDone => "deliveries_done",
        QueueName::HookCalls => "hook_calls",
        QueueName::PolicyVersions => "policy_versions",
    }
}

fn id_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Connects and runs the migrations this build knows (refusing a
    /// schema newer than it).
    pub fn open(url: &str, pool_size: u32) -> Result<PostgresStore, StoreError> {
        Self::open_cached(url, pool_size, WRITER_THREADS_DEFAULT, None)
    }

    /// Opens the store with a read cache (`None`, or no entries: without).
    pub fn open_cached(
        url: &str,
        pool_size: u32,
        writer_threads: usize,
        cache: Option<CacheOptions>,
    ) -> Result<PostgresStore, StoreError> {
        blocking(|| {
            let config: postgres::Config = url.parse()?;
            let mut lock = config.connect(NoTls)?;
            lock.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?;
            migrate(&mut lock)?;
            lock.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])?;
            let installation_id: String = lock
                .query_one(
                    "SELECT value FROM admind_meta WHERE key = 'installation_id'",
                    &[],
                )?
                .get(0);
            let manager = Manager::new(url.parse()?);
            // Connections open as work needs them, up to `pool_size` (each
            // one holds a socket and the driver's own event loop).
            let pool = r2d2::Pool::builder()
                .max_size(pool_size.max(1))
                .min_idle(Some(1))
                // A broken connection shows itself on its first query (and
                // is then dropped); testing each one before use would
                // double every round trip.
                .test_on_check_out(false)
                // While the server is down a request waits this long for a
                // connection, then fails (503), well inside the request
                // timeout.
                .connection_timeout(std::time::Duration::from_secs(3))
                .build(manager)?;
            close_elsewhere(Some(lock));
            let cache = match cache {
                Some(c) if c.entries_max > 0 => {
                    Some(SharedCache::start(&config, c.entries_max, c.max_age)?)
                }
                _ => None,
            };
            Ok(PostgresStore {
                pool: std::mem::ManuallyDrop::new(pool),
                config,
                installation_id,
                writers: writer_threads.clamp(1, (pool_size as usize / 2).max(1)),
                cache,
                owner: std::sync::OnceLock::new(),
                committed: std::sync::Mutex::new(Committed::default()),
            })
        })
    }

    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// The read cache, when reads may use it: never inside a command (it
    /// reads under its locks), and only while this replica hears the
    /// others' changes.
    fn cache(&self) -> Option<&ReadCache> {
        let cache = self.cache.as_deref()?;
        if !cache.live() || self.with_held(|_| ()).is_some() {
            return None;
        }
        Some(&cache.tables)
    }

    /// After a COMMIT (or one whose outcome is unknown): what it wrote is
    /// read from the database again, here and on the other replicas; the
    /// new queue items of a COMMIT that succeeded go to this process's
    /// workers.
    fn committed(&self, touched: Touched, handed: Vec<HandedItem>, succeeded: bool) {
        if let Some(cache) = &self.cache {
            cache.committed(touched);
        }
        if handed.is_empty() || self.owner.get().is_none() {
            return;
        }
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        for (queue, id, value) in handed {
            let waiting = match queue {
                QueueName::Outbox => &mut committed.outbox,
                QueueName::Hooks => &mut committed.hooks,
                _ => continue,
            };
            // A COMMIT whose outcome is unknown may have written them: the
            // worker scans for them (nothing not committed is handed over).
            if !succeeded || waiting.items.len() >= COMMITTED_MAX {
                waiting.dropped = true;
                continue;
            }
            waiting.since.get_or_insert_with(std::time::Instant::now);
            waiting.items.push((id, value));
        }
    }

    /// Runs `f` on this thread's held command connection, if it holds one
    /// of this store with its transaction open.
    fn with_held<T>(&self, f: impl FnOnce(&mut Held) -> T) -> Option<T> {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held.as_mut() {
                Some(h) if h.store == self.id() && h.open => Some(f(h)),
                _ => None,
            }
        })
    }

    /// What this thread's group holds in memory for a read (`None`: read
    /// the database).
    fn in_overlay<T>(&self, read: impl FnOnce(&Overlay) -> Option<T>) -> Option<T> {
        self.with_held(|h| h.overlay.as_ref().and_then(read))
            .flatten()
    }

    /// A command of a group (`LockScope::Accounts` held on this thread): a
    /// savepoint in the group's transaction, rolled back when the command
    /// wrote nothing (refused, or its writes failed) so that it fails no
    /// other command of the group. `None` when no group is open here.
    fn savepoint_in_group(&self, account_id: &str) -> Option<Result<CommandLock<'_>, StoreError>> {
        let key = account_lock_key(account_id);
        let in_group = self.with_held(|h| -> Result<bool, StoreError> {
            let Some(keys) = &mut h.group else {
                return Ok(false);
            };
            // Sent with the command's first read.
            if !keys.contains(&key) {
                // Not among the accounts the group locked up front.
                h.conn
                    .defer("SELECT pg_advisory_xact_lock($1)", owned![key]);
                keys.push(key);
            }
            // Its savepoint is opened only if its writes cannot join the
            // group's rows (`commit_in_savepoint`): a command refused, or
            // staged, needs none.
            h.command_written = false;
            h.savepoint = false;
            Ok(true)
        });
        match in_group? {
            Err(e) => return Some(Err(e)),
            Ok(false) => return None,
            Ok(true) => {}
        }
        Some(Ok(CommandLock::releasing(move || {
            let rolled_back = self.with_held(|h| {
                if h.command_written || !std::mem::take(&mut h.savepoint) {
                    return Ok(());
                }
                // What it deferred goes first (its SAVEPOINT among it); a
                // failure there is what is being rolled back.
                let _ = h.conn.send_deferred();
                h.conn
                    .batch_execute("ROLLBACK TO SAVEPOINT command; RELEASE SAVEPOINT command")
            });
            if let Some(Err(e)) = rolled_back {
                tracing::warn!(error = %StoreError::from(e), "rolling back a command of a group failed");
            }
        })))
    }

    /// Runs `f` on a connection: the command's own while a writer thread
    /// runs one (its reads see what it locked), else one from the pool.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        blocking(|| {
            let mut f = Some(f);
            let ran_twice = || StoreError::Backend {
                backend: "postgres",
                detail: "a query closure was called twice".into(),
            };
            if let Some(result) = self.with_held(|h| match f.take() {
                // The group's rows go first: the read sees them.
                Some(f) => h
                    .rows
                    .defer(&mut *h.conn, h.owner.as_deref())
                    .and_then(|()| f(&mut h.conn)),
                None => Err(ran_twice()),
            }) {
                return result;
            }
            let mut conn = self.pool.get()?;
            match f.take() {
                Some(f) => f(&mut conn),
                None => Err(ran_twice()),
            }
        })
    }

    fn one<V: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<V>, ViewError> {
        Ok(self.with(|c| {
            Ok(c.query_opt(sql, params)?
                .map(|row| row.try_get::<_, JsonRecord<V>>(0).map(|v| v.0))
                .transpose()?)
        })?)
    }

    /// [`Self::one`], shared through the read cache's `table` (when the
    /// cache may be used: see [`Self::cache`]) under `key`.
    fn one_cached<V: serde::de::DeserializeOwned>(
        &self,
        table: impl FnOnce(&ReadCache) -> &super::cache::Table<Arc<V>>,
        key: &[u8],
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<Arc<V>>, ViewError> {
        let read = || Ok::<_, ViewError>(self.one::<V>(sql, params)?.map(Arc::new));
        match self.cache() {
            Some(cache) => ReadCache::value(table(cache), key, read),
            None => read(),
        }
    }

    fn many<V: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<V>, ViewError> {
        Ok(self.with(|c| {
            Ok(c.query(sql, params)?
                .into_iter()
                .map(|row| row.try_get::<_, JsonRecord<V>>(0).map(|v| v.0))
                .collect::<Result<_, _>>()?)
        })?)
    }
}

/// Creates the schema or upgrades it; refuses one newer than this build.
fn migrate(c: &mut Client) -> Result<(), StoreError> {
    c.batch_execute("CREATE TABLE IF NOT EXISTS admind_schema (version integer NOT NULL);")?;
    let current: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM admind_schema",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Backend {
            backend: "postgres",
            detail: format!(
                "the database's schema is version {current}, newer than this build knows ({known}): run a newer admind"
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let mut tx = c.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO admind_schema (version) VALUES ($1)",
            &[&version],
        )?;
        if version == 1 {
            use rand::RngCore;
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            tx.execute(
                "INSERT INTO admind_meta (key, value) VALUES ('installation_id', $1)",
                &[&hex::encode(bytes)],
            )?;
        }
        tx.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

/// Writes a transaction's rows (the caller commits): ids for its audit
/// entry, mails and events come from the sequence in one round trip.
fn write_transaction(
    tx: &mut impl Run,
    t: Transaction,
    touched: &mut Touched,
    handed: &mut Vec<HandedItem>,
    pool: &mut std::collections::VecDeque<u64>,
    owner: Option<&ItemOwner>,
) -> Result<(), StoreError> {
    // The ids first: the only answer the writes wait for; the writes then
    // go in one round trip (deferred, sent with the commit).
    let mut ids = take_ids(tx, pool, ids_wanted(&t))?.into_iter();
    let mut next = || ids.next().ok_or_else(too_few_ids);
    for change in t.changes {
        apply_change(tx, change, touched)?;
    }
    let mut cause = None;
    if let Some(draft) = t.audit {
        let seq = next()?;
        put_audit(tx, &draft.into_entry(seq))?;
        cause = Some(seq);
    }
    // The new queue items (mails, hook events) in one statement.
    let mut queued = NewItems::default();
    queued.push_mails_and_events(t.mails, t.events, cause, &mut next, handed)?;
    queued.insert(tx, owner)?;
    // Removals that follow each other (a worker settling a pass) in one
    // statement, and so puts (records of hook calls, retries); every other
    // write in its place, in order.
    let mut removals = Removals::default();
    let mut puts = Puts::default();
    for write in t.writes {
        match write {
            Write::QueueRemove { queue, id } => {
                puts.upsert(tx)?;
                removals.push(queue, id);
            }
            Write::QueuePut { queue, id, value } => {
                removals.delete(tx)?;
                if puts.has(queue, id) {
                    // The same item twice in one statement is refused.
                    puts.upsert(tx)?;
                }
                let lane = lane_of_stored(queue, || decode(&value).ok());
                puts.push(queue, id, queue_value_json(value)?, lane);
            }
            other => {
                removals.delete(tx)?;
                puts.upsert(tx)?;
                apply_write(tx, other, touched)?;
            }
        }
    }
    removals.delete(tx)?;
    puts.upsert(tx)
}

/// A queue item's stored value as JSON text for its column. Queue
/// items are written as the codec's JSON (version 1), whose text goes as
/// it is: a hook-record page of 256 calls (about 150 KB) was parsed into a
/// `serde_json::Value` and written out again at every write.
fn queue_value_json(value: Vec<u8>) -> Result<JsonText, StoreError> {
    match JsonText::of_codec(value) {
        Ok(text) => Ok(text),
        Err(value) => {
            let value: serde_json::Value = decode(&value)?;
            JsonText::of(&value).map_err(json_err)
        }
    }
}

/// The ids a transaction's audit entry, mails and events take.
fn ids_wanted(t: &Transaction) -> usize {
    usize::from(t.audit.is_some()) + t.mails.len() + t.events.len()
}

fn too_few_ids() -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        detail: "the id sequence returned too few ids".into(),
    }
}

/// `n` ids, oldest first: from `pool` (drawn ahead), and from the sequence
/// when it holds fewer. Those drawn now are larger than any left in the
/// pool, so the ids a thread uses keep growing.
fn take_ids(
    tx: &mut impl Run,
    pool: &mut std::collections::VecDeque<u64>,
    n: usize,
) -> Result<Vec<u64>, StoreError> {
    if pool.len() < n {
        let more = (n - pool.len()) as i64;
        let mut drawn: Vec<u64> = tx
            .query(
                "SELECT nextval('admind_ids') FROM generate_series(1, $1::bigint)",
                &[&more],
            )?
            .into_iter()
            .map(|row| row.get::<_, i64>(0) as u64)
            .collect();
        drawn.sort_unstable();
        pool.extend(drawn);
    }
    if pool.len() < n {
        return Err(too_few_ids());
    }
    Ok(pool.drain(..n).collect())
}

/// Whether a command's transaction can join its group's rows
/// ([`stage_transaction`]): no workers' writes, and no change that needs an
/// answer from the database (a DELETE … RETURNING, an invoice's number).
fn batchable(t: &Transaction) -> bool {
    t.writes.is_empty()
        && t.changes.iter().all(|c| {
            !matches!(
                c,
                Change::DeleteUserSessions { .. }
                    | Change::DeleteSessionsSignedInWith { .. }
                    | Change::PutInvoice(_)
            )
        })
}

/// A command of a group commits: its account, audit entry and queue items
/// join the group's rows (written at the group's COMMIT), its other
/// changes are deferred in order, and the group's reads see its changes.
/// No round trip unless the ids drawn ahead ran out.
fn stage_transaction(h: &mut Held, t: Transaction) -> Result<(), StoreError> {
    let mut ids = take_ids(&mut *h.conn, &mut h.ids, ids_wanted(&t))?.into_iter();
    let mut next = || ids.next().ok_or_else(too_few_ids);
    for change in t.changes {
        if let Some(overlay) = h.overlay.as_mut() {
            overlay.note(&change);
        }
        match change {
            Change::PutAccount(a) => {
                h.touched.push((Kind::Accounts, a.id.as_bytes().to_vec()));
                let value = JsonText::of(&a).map_err(json_err)?;
                h.rows.accounts.push((a.id, a.name, value));
            }
            other => apply_change(&mut *h.conn, other, &mut h.touched)?,
        }
    }
    let mut cause = None;
    if let Some(draft) = t.audit {
        let seq = next()?;
        let entry = draft.into_entry(seq);
        let value = JsonText::of(&entry).map_err(json_err)?;
        h.rows
            .audit
            .push((entry.account_id, id_i64(seq), entry.at, entry.action, value));
        cause = Some(seq);
    }
    h.rows
        .queue
        .push_mails_and_events(t.mails, t.events, cause, &mut next, &mut h.handed)
}

/// A command of a group whose writes cannot join the group's rows: the
/// rows so far, then its writes inside a savepoint, in one round trip. If
/// they fail, the savepoint is rolled back when its lock is dropped, and
/// the group's reads go to the database from then on.
fn commit_in_savepoint(h: &mut Held, t: Transaction) -> Result<(), StoreError> {
    let handed_before = h.handed.len();
    let owner = h.owner.clone();
    h.rows.defer(&mut *h.conn, owner.as_deref())?;
    h.conn.defer("SAVEPOINT command", Vec::new());
    h.savepoint = true;
    if let Some(overlay) = h.overlay.as_mut() {
        for change in &t.changes {
            overlay.note(change);
        }
    }
    let result = write_transaction(
        &mut *h.conn,
        t,
        &mut h.touched,
        &mut h.handed,
        &mut h.ids,
        owner.as_deref(),
    )
    .and_then(|()| {
        h.conn.defer("RELEASE SAVEPOINT command", Vec::new());
        Ok(h.conn.send_deferred()?)
    });
    if result.is_err() {
        h.overlay = None;
        // Rolled back with its savepoint: nothing of it is handed over.
        h.handed.truncate(handed_before);
    }
    result
}

/// A queued hook event's lane (the `lane` column, which
/// `queue_lane_blockers` looks up): the account whose after-hooks run in
/// commit order, as the hook worker runs them (`DomainEvent::account_id`),
/// or "" for an event of no account. Items of other queues have none.
fn hook_lane(event: &DomainEvent) -> Option<String> {
    Some(event.account_id().unwrap_or_default().to_owned())
}

/// The lane of an item written again (a retry, a restore), `read` from
/// its value for a hook event; none for the other queues. A value that is
/// no event (its worker will set it aside) gets the lane of no account, as
/// the column derived by schema version 4 gave it.
fn lane_of_stored(queue: QueueName, read: impl FnOnce() -> Option<QueuedEvent>) -> Option<String> {
    if queue != QueueName::Hooks {
        return None;
    }
    read().map_or_else(|| Some(String::new()), |item| hook_lane(&item.event))
}

/// Queue items to insert together.
#[derive(Default)]
struct NewItems {
    queues: Vec<&'static str>,
    ids: Vec<i64>,
    values: Vec<JsonText>,
    lanes: Vec<Option<String>>,
}

impl NewItems {
    fn push(&mut self, queue: QueueName, id: u64, value: JsonText, lane: Option<String>) {
        self.queues.push(queue_name(queue));
        self.ids.push(id_i64(id));
        self.values.push(value);
        self.lanes.push(lane);
    }

    /// A new item, serialized once: its row's value (the codec's JSON, as
    /// it is), and what is handed to this process's worker after the
    /// COMMIT.
    fn push_new<T: serde::Serialize>(
        &mut self,
        queue: QueueName,
        id: u64,
        item: &T,
        lane: Option<String>,
        handed: &mut Vec<HandedItem>,
    ) -> Result<(), StoreError> {
        let encoded = encode(item);
        handed.push((queue, id, encoded.clone()));
        self.push(queue, id, queue_value_json(encoded)?, lane);
        Ok(())
    }

    /// A transaction's new mails and hook events, numbered by `next` in
    /// that order (an event names the audit entry that caused it).
    fn push_mails_and_events(
        &mut self,
        mails: Vec<OutboxMail>,
        events: Vec<DomainEvent>,
        cause: Option<u64>,
        next: &mut impl FnMut() -> Result<u64, StoreError>,
        handed: &mut Vec<HandedItem>,
    ) -> Result<(), StoreError> {
        // The transaction's mails as one item: one row written and one
        // removed per change, not per mail (rows were most of the
        // database's work per transfer: benches/analysis.md).
        if let Some(item) = OutboxItem::numbered(mails, next)? {
            self.push_new(QueueName::Outbox, item.id, &item, None, handed)?;
        }
        for event in events {
            let id = next()?;
            let lane = hook_lane(&event);
            let item = QueuedEvent {
                id,
                cause_seq: cause,
                event,
                attempts: 0,
            };
            self.push_new(QueueName::Hooks, id, &item, lane, handed)?;
        }
        Ok(())
    }

    /// Inserts the new items, claimed by `owner` when this process's
    /// workers take them as handed (see `Backend::own_new_items`).
    fn insert(self, tx: &mut impl Run, owner: Option<&ItemOwner>) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let (by, lease_secs) = match owner {
            Some(o) => (Some(o.owner.clone()), Some(o.lease_secs)),
            None => (None, None),
        };
        tx.defer(
            "INSERT INTO queue_items (queue, id, value, lane, claimed_by, claimed_until)
             SELECT q, i, v, l, $5::text, now() + make_interval(secs => $6::float8)
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS t(q, i, v, l)",
            owned![
                self.queues,
                self.ids,
                self.values,
                self.lanes,
                by,
                lease_secs
            ],
        );
        Ok(())
    }
}

/// Queue items to write together (new or rewritten: a rewrite ends the
/// item's claim, as [`put_queue`] does).
#[derive(Default)]
struct Puts {
    items: NewItems,
    seen: std::collections::HashSet<(&'static str, i64)>,
}

impl Puts {
    fn push(&mut self, queue: QueueName, id: u64, value: JsonText, lane: Option<String>) {
        self.seen.insert((queue_name(queue), id_i64(id)));
        self.items.push(queue, id, value, lane);
    }

    fn has(&self, queue: QueueName, id: u64) -> bool {
        self.seen.contains(&(queue_name(queue), id_i64(id)))
    }

    /// Writes what was pushed, and forgets it.
    fn upsert(&mut self, tx: &mut impl Run) -> Result<(), StoreError> {
        let items = std::mem::take(&mut self.items);
        self.seen.clear();
        if items.ids.is_empty() {
            return Ok(());
        }
        tx.defer(
            "INSERT INTO queue_items (queue, id, value, lane)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
             ON CONFLICT (queue, id) DO UPDATE
             SET value = EXCLUDED.value, lane = EXCLUDED.lane,
                 claimed_by = NULL, claimed_until = NULL",
            owned![items.queues, items.ids, items.values, items.lanes],
        );
        Ok(())
    }
}

/// Queue items to remove together.
#[derive(Default)]
struct Removals {
    queues: Vec<&'static str>,
    ids: Vec<i64>,
}

impl Removals {
    fn push(&mut self, queue: QueueName, id: u64) {
        self.queues.push(queue_name(queue));
        self.ids.push(id_i64(id));
    }

    /// Deletes what was pushed, and forgets it.
    fn delete(&mut self, tx: &mut impl Run) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        // One statement per queue (usually one): `id = ANY` on the primary
        // key is an index lookup per id, where a join with `unnest` let the
        // planner, misled by the queue's stale statistics, scan the table.
        let mut queues: Vec<&'static str> = self.queues.clone();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            let ids: Vec<i64> = self
                .queues
                .iter()
                .zip(&self.ids)
                .filter(|(q, _)| **q == queue)
                .map(|(_, id)| *id)
                .collect();
            tx.defer(
                "DELETE FROM queue_items WHERE queue = $1 AND id = ANY($2)",
                owned![queue, ids],
            );
        }
        self.queues.clear();
        self.ids.clear();
        Ok(())
    }
}

fn next_id(tx: &mut impl Run) -> Result<u64, StoreError> {
    let id: i64 = tx.query_one("SELECT nextval('admind_ids')", &[])?.get(0);
    Ok(id as u64)
}

/// Writes one change; the keys it wrote of the kinds the read cache holds
/// go to `touched`.
fn apply_change(
    tx: &mut impl Run,
    change: Change,
    touched: &mut Touched,
) -> Result<(), StoreError> {
    match change {
        Change::PutAccount(a) => {
            touched.push((Kind::Accounts, a.id.as_bytes().to_vec()));
            tx.defer(
                "INSERT INTO accounts (id, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, value = EXCLUDED.value",
                owned![
                    a.id.to_owned(),
                    a.name.to_owned(),
                    JsonText::of(&a).map_err(json_err)?
                ],
            );
        }
        Change::PutUser(u) => {
            touched.push((Kind::Users, key2(&u.account_id, &u.id)));
            tx.defer(
                "INSERT INTO members (account_id, id, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, id) DO UPDATE SET value = EXCLUDED.value",
                owned![
                    u.account_id.to_owned(),
                    u.id.to_owned(),
                    JsonText::of(&u).map_err(json_err)?
                ],
            );
        }
        Change::DeleteUser {
            account_id,
            user_id,
        } => {
            touched.push((Kind::Users, key2(&account_id, &user_id)));
            tx.defer(
                "DELETE FROM members WHERE account_id = $1 AND id = $2",
                owned![account_id.to_owned(), user_id.to_owned()],
            );
        }
        Change::PutEmailIndex {
            account_id,
            email,
            user_id,
        } => {
            tx.defer(
                "INSERT INTO email_index (account_id, email, user_id) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, email) DO UPDATE SET user_id = EXCLUDED.user_id",
                owned![
                    account_id.to_owned(),
                    normalize_email(&email),
                    user_id.to_owned()
                ],
            );
        }
        Change::DeleteEmailIndex { account_id, email } => {
            tx.defer(
                "DELETE FROM email_index WHERE account_id = $1 AND email = $2",
                owned![account_id.to_owned(), normalize_email(&email)],
            );
        }
        Change::PutIntegration(i) => {
            tx.defer(
                "INSERT INTO integrations (account_id, id, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, id) DO UPDATE SET value = EXCLUDED.value",
                owned![
                    i.account_id.to_owned(),
                    i.id.to_owned(),
                    JsonText::of(&i).map_err(json_err)?
                ],
            );
        }
        Change::PutToken(t) => {
            tx.defer(
                "INSERT INTO tokens (hash, value) VALUES ($1, $2)
                 ON CONFLICT (hash) DO UPDATE SET value = EXCLUDED.value",
                owned![t.hash.to_owned(), JsonText::of(&t).map_err(json_err)?],
            );
        }
        Change::DeleteToken { hash } => {
            tx.defer(
                "DELETE FROM tokens WHERE hash = $1",
                owned![hash.to_owned()],
            );
        }
        Change::PutSession(s) => {
            touched.push((Kind::Sessions, s.hash.as_bytes().to_vec()));
            tx.defer(
                "INSERT INTO sessions (hash, account_id, user_id, email, value) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE SET value = EXCLUDED.value",
                owned![s.hash.to_owned(), s.account_id.to_owned(), s.user_id.to_owned(), (normalize_email(&s.email)).to_owned(), JsonText::of(&s).map_err(json_err)?],
            );
        }
        Change::DeleteSession { hash } => {
            tx.defer(
                "DELETE FROM sessions WHERE hash = $1",
                owned![hash.to_owned()],
            );
            touched.push((Kind::Sessions, hash.into_bytes()));
        }
        Change::DeleteUserSessions {
            account_id,
            user_id,
        } => {
            let ended = tx.query(
                "DELETE FROM sessions WHERE account_id = $1 AND user_id = $2 RETURNING hash",
                &[&account_id, &user_id],
            )?;
            sessions_touched(ended, touched);
        }
        Change::DeleteSessionsSignedInWith {
            account_id,
            user_id,
            email,
        } => {
            let ended = tx.query(
                "DELETE FROM sessions WHERE account_id = $1 AND user_id = $2 AND email = $3 RETURNING hash",
                &[&account_id, &user_id, &normalize_email(&email)],
            )?;
            sessions_touched(ended, touched);
        }
        Change::PutLicenceRequest(r) => {
            let status = serde_json::to_value(r.status).map_err(json_err)?;
            tx.defer(
                "INSERT INTO licence_requests (id, account_id, status, created_at, value) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, value = EXCLUDED.value",
                owned![r.id.to_owned(), r.account_id.to_owned(), (status.as_str().unwrap_or("")).to_owned(), r.created_at.to_owned(), JsonText::of(&r).map_err(json_err)?],
            );
        }
        Change::PutPolicySwitch(p) => {
            tx.defer(
                "INSERT INTO policy_switches (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                owned![p.name.to_owned(), JsonText::of(&p).map_err(json_err)?],
            );
        }
        Change::PutWebhookSeen {
            source,
            webhook_id,
            at,
        } => {
            tx.defer(
                "INSERT INTO webhooks_seen (source, webhook_id, at, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                owned![
                    source.to_owned(),
                    webhook_id.to_owned(),
                    at.to_owned(),
                    JsonText::of(&at).map_err(json_err)?
                ],
            );
        }
        Change::PutInvoice(i) => {
            let seq = next_id(tx)?;
            tx.defer(
                "INSERT INTO invoices (account_id, seq, value) VALUES ($1, $2, $3)",
                owned![
                    i.account_id.to_owned(),
                    (id_i64(seq)).to_owned(),
                    JsonText::of(&i).map_err(json_err)?
                ],
            );
        }
        Change::PutInvestigation(i) => {
            tx.defer(
                "INSERT INTO investigations (account_id, id, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, id) DO UPDATE SET value = EXCLUDED.value",
                owned![
                    i.account_id.to_owned(),
                    i.id.to_owned(),
                    JsonText::of(&i).map_err(json_err)?
                ],
            );
        }
    }
    Ok(())
}

/// The sessions a DELETE … RETURNING hash ended.
fn sessions_touched(ended: Vec<postgres::Row>, touched: &mut Touched) {
    for row in ended {
        let hash: String = row.get(0);
        touched.push((Kind::Sessions, hash.into_bytes()));
    }
}

fn put_audit(tx: &mut impl Run, entry: &AuditEntry) -> Result<(), StoreError> {
    tx.defer(
        "INSERT INTO audit (scope, seq, at, action, value) VALUES ($1, $2, $3, $4, $5)",
        owned![
            entry.account_id.to_owned(),
            (id_i64(entry.seq)).to_owned(),
            entry.at.to_owned(),
            entry.action.to_owned(),
            JsonText::of(&entry).map_err(json_err)?
        ],
    );
    Ok(())
}

fn put_queue(
    tx: &mut impl Run,
    queue: QueueName,
    id: u64,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    let lane = lane_of_stored(queue, || QueuedEvent::deserialize(value).ok());
    // Writing an item (a retry's new schedule) ends whatever claim it had.
    tx.defer(
        "INSERT INTO queue_items (queue, id, value, lane) VALUES ($1, $2, $3, $4)
         ON CONFLICT (queue, id) DO UPDATE
         SET value = EXCLUDED.value, lane = EXCLUDED.lane,
             claimed_by = NULL, claimed_until = NULL",
        owned![
            (queue_name(queue)).to_owned(),
            (id_i64(id)).to_owned(),
            JsonText::of(&value).map_err(json_err)?,
            lane
        ],
    );
    Ok(())
}

fn apply_write(tx: &mut impl Run, write: Write, touched: &mut Touched) -> Result<(), StoreError> {
    match write {
        Write::QueuePut { queue, id, value } => {
            let value: serde_json::Value = decode(&value)?;
            put_queue(tx, queue, id, &value)?;
        }
        Write::QueueRemove { queue, id } => {
            tx.defer(
                "DELETE FROM queue_items WHERE queue = $1 AND id = $2",
                owned![(queue_name(queue)).to_owned(), (id_i64(id)).to_owned()],
            );
        }
        Write::PutSubscriberState { name, value } => {
            let value: serde_json::Value = decode(&value)?;
            tx.defer(
                "INSERT INTO subscribers (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                owned![name.to_owned(), JsonText::of(&value).map_err(json_err)?],
            );
        }
        Write::DisableSubscriber { name, value } => {
            let value: serde_json::Value = decode(&value)?;
            tx.defer(
                "INSERT INTO subscribers (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
                 WHERE NOT COALESCE((subscribers.value::jsonb ->> 'disabled')::boolean, false)",
                owned![name.to_owned(), JsonText::of(&value).map_err(json_err)?],
            );
        }
        Write::ForgetAudit { scope, seq } => {
            tx.defer(
                "DELETE FROM audit WHERE scope = $1 AND seq = $2",
                owned![scope.to_owned(), (id_i64(seq)).to_owned()],
            );
        }
        Write::ForgetWebhook { source, webhook_id } => {
            tx.defer(
                "DELETE FROM webhooks_seen WHERE source = $1 AND webhook_id = $2",
                owned![source.to_owned(), webhook_id.to_owned()],
            );
        }
        Write::Restore(record) => {
            let id = match (*record).into_restore() {
                Restore::Change(change) => {
                    apply_change(tx, change, touched)?;
                    0
                }
                Restore::Audit(value) => {
                    put_audit(tx, &value)?;
                    id_i64(value.seq)
                }
                Restore::QueueItem { queue, id, value } => {
                    put_queue(tx, queue, id, &value)?;
                    if queue.keyed_by_id() {
                        id_i64(id)
                    } else {
                        0
                    }
                }
                Restore::SubscriberState { name, value } => {
                    tx.defer(
                        "INSERT INTO subscribers (name, value) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                        owned![name.to_owned(), JsonText::of(&value).map_err(json_err)?],
                    );
                    0
                }
            };
            if id > 0 {
                // Ids handed out from now on are larger than every restored one.
                tx.defer(
                "SELECT setval('admind_ids', GREATEST((SELECT last_value FROM admind_ids), $1))",
                owned![id.to_owned()],
            );
            }
        }
    }
    Ok(())
}

/// How a [`Kind`] is kept on PostgreSQL: its table, the columns of its key
/// (in the order of the key's parts), the column holding its value, and
/// for a queue the `queue` column's value. Index kinds have none: they are
/// columns of their table here.
struct Shape {
    table: &'static str,
    keys: &'static [(&'static str, Column)],
    value: &'static str,
    queue: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Text,
    BigInt,
}

fn shape(kind: Kind) -> Result<Shape, StoreError> {
    use Column::{BigInt, Text};
    const ID: &[(&str, Column)] = &[("id", Text)];
    const ACCOUNT_ID: &[(&str, Column)] = &[("account_id", Text), ("id", Text)];
    let spec = kind.spec();
    let (keys, value): (&'static [(&'static str, Column)], &'static str) = match kind {
        Kind::Accounts | Kind::LicenceRequests => (ID, "value"),
        Kind::Users | Kind::Integrations | Kind::Investigations => (ACCOUNT_ID, "value"),
        Kind::EmailIndex => (&[("account_id", Text), ("email", Text)], "user_id"),
        Kind::Tokens | Kind::Sessions => (&[("hash", Text)], "value"),
        Kind::Invoices => (&[("account_id", Text), ("seq", BigInt)], "value"),
        Kind::Audit => (&[("scope", Text), ("seq", BigInt)], "value"),
        Kind::WebhooksSeen => (&[("source", Text), ("webhook_id", Text)], "value"),
        Kind::Subscribers | Kind::PolicySwitches => (&[("name", Text)], "value"),
        Kind::UserSessions | Kind::AccountLicences => {
            return Err(StoreError::Backend {
                backend: "postgres",
                detail: format!("{} is a column of {}, not records", spec.name, spec.table),
            })
        }
        _ => (&[("id", BigInt)], "value"),
    };
    Ok(Shape {
        table: spec.table,
        keys,
        value,
        queue: kind.queue().map(queue_name),
    })
}

/// A key column's value, as a query parameter.
enum KeyPart {
    Text(String),
    BigInt(i64),
}

impl KeyPart {
    fn param(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            KeyPart::Text(t) => t,
            KeyPart::BigInt(n) => n,
        }
    }
}

/// The parts of a key in the layout of `records`.
fn key_parts(kind: Kind, key: &[u8]) -> Vec<KeyPart> {
    use super::records::KeyLayout;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match kind.spec().key {
        KeyLayout::Id => vec![KeyPart::Text(text(key))],
        KeyLayout::Number => vec![KeyPart::BigInt(id_i64(super::records::number_of(key)))],
        KeyLayout::ScopeId | KeyLayout::ScopeIdId => {
            let (a, b) = super::records::split_key(key);
            vec![KeyPart::Text(a), KeyPart::Text(b)]
        }
        KeyLayout::ScopeSeq => {
            let nul = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let seq = key
                .get(nul + 1..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(i64::MAX, |b| id_i64(u64::from_be_bytes(b)));
            vec![KeyPart::Text(text(&key[..nul])), KeyPart::BigInt(seq)]
        }
    }
}

/// A row's key in the layout of `records`, from its key columns.
fn key_of(kind: Kind, row: &postgres::Row) -> Vec<u8> {
    use super::codec::{key2, key_seq};
    use super::records::KeyLayout;
    match kind.spec().key {
        KeyLayout::Id => row.get::<_, String>(0).into_bytes(),
        KeyLayout::Number => super::records::number_key(row.get::<_, i64>(0) as u64),
        KeyLayout::ScopeId | KeyLayout::ScopeIdId => {
            key2(&row.get::<_, String>(0), &row.get::<_, String>(1))
        }
        KeyLayout::ScopeSeq => key_seq(&row.get::<_, String>(0), row.get::<_, i64>(1) as u64),
    }
}

/// A row's value in the codec's format (JSON values as their text;
/// the email index's user id as it is).
fn value_of(shape: &Shape, row: &postgres::Row, at: usize) -> Result<Vec<u8>, StoreError> {
    if shape.value == "value" {
        Ok(row.try_get::<_, CodecJson>(at)?.0)
    } else {
        Ok(row.try_get::<_, String>(at)?.into_bytes())
    }
}

impl PostgresStore {
    /// [`Backend::scan`], with the values or (`values` false) without.
    fn scan_rows(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        values: bool,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError> {
        let shape = shape(kind)?;
        let columns: Vec<&str> = shape.keys.iter().map(|(c, _)| *c).collect();
        let (direction, past) = match order {
            Order::OldestFirst => ("ASC", ">"),
            Order::NewestFirst => ("DESC", "<"),
        };
        let mut cursor: Option<Vec<KeyPart>> = None;
        loop {
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
            let mut sql = format!(
                "SELECT {}{} FROM {} WHERE TRUE",
                columns.join(", "),
                if values {
                    format!(", {}", shape.value)
                } else {
                    String::new()
                },
                shape.table
            );
            if let Some(queue) = &shape.queue {
                params.push(queue);
                sql.push_str(&format!(" AND queue = ${}", params.len()));
            }
            let scope_owned = scope.map(str::to_string);
            if let (Some(scope), true) = (&scope_owned, columns.len() > 1) {
                params.push(scope);
                sql.push_str(&format!(" AND {} = ${}", columns[0], params.len()));
            }
            if let Some(after) = &cursor {
                let first = params.len() + 1;
                params.extend(after.iter().map(KeyPart::param));
                let placeholders: Vec<String> = (first..first + after.len())
                    .map(|i| format!("${i}"))
                    .collect();
                sql.push_str(&format!(
                    " AND ({}) {past} ({})",
                    columns.join(", "),
                    placeholders.join(", ")
                ));
            }
            let ordered: Vec<String> = columns.iter().map(|c| format!("{c} {direction}")).collect();
            sql.push_str(&format!(
                " ORDER BY {} LIMIT {SCAN_PAGE}",
                ordered.join(", ")
            ));
            let rows = self.with(|c| Ok(c.query(sql.as_str(), &params)?))?;
            let full = rows.len() as i64 == SCAN_PAGE;
            for row in &rows {
                let key = key_of(kind, row);
                let value = if values {
                    value_of(&shape, row, columns.len())?
                } else {
                    Vec::new()
                };
                if !each(&key, &value)? {
                    return Ok(());
                }
                cursor = Some(
                    shape
                        .keys
                        .iter()
                        .enumerate()
                        .map(|(i, (_, column))| match column {
                            Column::Text => KeyPart::Text(row.get(i)),
                            Column::BigInt => KeyPart::BigInt(row.get(i)),
                        })
                        .collect(),
                );
            }
            if !full {
                return Ok(());
            }
        }
    }
}

impl Store {
    /// A PostgreSQL database (`[store] backend = "postgres"`).
    pub fn open_postgres(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        Ok(Store::new(PostgresStore::open(url, pool_size)?))
    }

    /// A PostgreSQL database with a read cache (a replica's daemon).
    pub fn open_postgres_cached(
        url: &str,
        pool_size: u32,
        writer_threads: usize,
        cache: CacheOptions,
    ) -> Result<Store, StoreError> {
        Ok(Store::new(PostgresStore::open_cached(
            url,
            pool_size,
            writer_threads,
            Some(cache),
        )?))
    }
}

impl StateView for PostgresStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.account_shared(id)?.map(Arc::unwrap_or_clone))
    }

    fn account_shared(&self, id: &str) -> Result<Option<Arc<Account>>, ViewError> {
        if let Some(hit) = self.in_overlay(|o| o.accounts.get(id).cloned()) {
            return Ok(hit.map(Arc::new));
        }
        self.one_cached(
            |c| &c.accounts,
            id.as_bytes(),
            "SELECT value FROM accounts WHERE id = $1",
            &[&id],
        )
    }

    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
        self.many(
            "SELECT value FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after.unwrap_or(""), &rows(limit)],
        )
    }

    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(self
            .user_shared(account_id, user_id)?
            .map(Arc::unwrap_or_clone))
    }

    fn user_shared(&self, account_id: &str, user_id: &str) -> Result<Option<Arc<User>>, ViewError> {
        if let Some(hit) = self.in_overlay(|o| o.members.get(&key2(account_id, user_id)).cloned()) {
            return Ok(hit);
        }
        self.one_cached(
            |c| &c.users,
            &key2(account_id, user_id),
            "SELECT value FROM members WHERE account_id = $1 AND id = $2",
            &[&account_id, &user_id],
        )
    }

    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        self.one(
            "SELECT m.value FROM email_index e JOIN members m
               ON m.account_id = e.account_id AND m.id = e.user_id
             WHERE e.account_id = $1 AND e.email = $2",
            &[&account_id, &normalize_email(email)],
        )
    }

    fn investigations(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SecurityInvestigation>, ViewError> {
        self.many(
            "SELECT value FROM investigations WHERE ($1::text IS NULL OR account_id = $1)
             ORDER BY account_id, id LIMIT $2",
            &[&account_id, &rows(limit)],
        )
    }
    fn members_before(
        &self,
        account_id: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        self.many(
            "SELECT value FROM members WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            &[&account_id, &before, &rows(limit)],
        )
    }
    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        let uncached = |after: Option<&str>, limit: usize| {
            self.many(
                "SELECT value FROM members WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&account_id, &after.unwrap_or(""), &rows(limit)],
            )
        };
        let Some(cache) = self.cache() else {
            return Ok(uncached(after, limit)?.into_iter().map(Arc::new).collect());
        };
        let long = self
            .account(account_id)?
            .is_some_and(|a| a.member_count as usize > MEMBER_LIST_CACHED_MAX);
        cache.members(account_id, after, limit, long, uncached)
    }

    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        if let Some(hit) = self.in_overlay(|o| o.integrations(account_id, limit)) {
            return Ok(hit);
        }
        self.many(
            "SELECT value FROM integrations WHERE account_id = $1 ORDER BY id LIMIT $2",
            &[&account_id, &rows(limit)],
        )
    }

    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        self.one(
            "SELECT value FROM integrations WHERE account_id = $1 AND id = $2",
            &[&account_id, &id],
        )
    }

    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        self.one("SELECT value FROM tokens WHERE hash = $1", &[&hash])
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(self.session_shared(hash)?.map(Arc::unwrap_or_clone))
    }

    fn session_shared(&self, hash: &str) -> Result<Option<Arc<Session>>, ViewError> {
        self.one_cached(
            |c| &c.sessions,
            hash.as_bytes(),
            "SELECT value FROM sessions WHERE hash = $1",
            &[&hash],
        )
    }

    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        self.many(
            "SELECT value FROM invoices WHERE account_id = $1 ORDER BY seq DESC LIMIT $2",
            &[&account_id, &rows(limit)],
        )
    }

    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        Ok(self.with(|c| {
            Ok(c.query_opt(
                "SELECT 1 FROM webhooks_seen WHERE source = $1 AND webhook_id = $2",
                &[&source, &webhook_id],
            )?
            .is_some())
        })?)
    }

    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        self.one("SELECT value FROM licence_requests WHERE id = $1", &[&id])
    }

    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
        self.many(
            "SELECT value FROM policy_switches ORDER BY name LIMIT $1",
            &[&rows(limit)],
        )
    }

    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        self.many(
            "SELECT value FROM licence_requests WHERE account_id = $1 ORDER BY created_at, id LIMIT $2",
            &[&account_id, &rows(limit)],
        )
    }

    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let status = status
            .map(|s| serde_json::to_value(s).map_err(json_err))
            .transpose()?
            .and_then(|v| v.as_str().map(str::to_string));
        self.many(
            "SELECT value FROM licence_requests WHERE ($1::text IS NULL OR status = $1)
             ORDER BY created_at, id LIMIT $2",
            &[&status, &rows(limit)],
        )
    }

    fn audit(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        self.many(
            "SELECT value FROM audit WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&account_id, &after.map_or(-1, id_i64), &rows(limit)],
        )
    }

    fn audit_newest(
        &self,
        account_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        self.many(
            "SELECT value FROM audit WHERE scope = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            &[&account_id, &before.map_or(i64::MAX, id_i64), &rows(limit)],
        )
    }
}

impl Backend for PostgresStore {
    fn about(&self) -> About<'_> {
        About {
            kind: "postgres",
            installation_id: &self.installation_id,
            shared: true,
            writer_threads: self.writers,
            groups_commits: true,
        }
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let id: i64 = c.query_one("SELECT nextval('admind_ids')", &[])?.get(0);
            Ok(id as u64)
        })
    }

    fn next_ids(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let mut ids: Vec<u64> = c
                .query(
                    "SELECT nextval('admind_ids') FROM generate_series(1, $1::bigint)",
                    &[&rows(n)],
                )?
                .into_iter()
                .map(|row| row.get::<_, i64>(0) as u64)
                .collect();
            ids.sort_unstable();
            Ok(ids)
        })
    }

    fn commit(&self, t: Transaction) -> Result<(), StoreError> {
        let mut t = Some(t);
        // A command's commit ends the transaction its lock opened.
        let held = self.with_held(|h| {
            let Some(t) = t.take() else {
                return Err(StoreError::Backend {
                    backend: "postgres",
                    detail: "a commit was written twice".into(),
                });
            };
            if h.group.is_some() {
                // In a group: staged with the group's rows, or written in
                // a savepoint; the group's transaction commits at `flush`.
                let result = if batchable(&t) {
                    let staged = stage_transaction(h, t);
                    // Half staged: nothing can take it back but failing
                    // the group (its commands then run one by one).
                    h.poisoned |= staged.is_err();
                    staged
                } else {
                    commit_in_savepoint(h, t)
                };
                h.command_written = result.is_ok();
                return result;
            }
            let written = write_transaction(
                &mut *h.conn,
                t,
                &mut h.touched,
                &mut h.handed,
                &mut h.ids,
                h.owner.clone().as_deref(),
            );
            // The writes and the COMMIT in one round trip.
            let result = match written {
                Ok(()) => h.conn.commit().map_err(StoreError::from),
                Err(e) => {
                    h.conn.rollback();
                    Err(e)
                }
            };
            h.open = false;
            self.committed(
                std::mem::take(&mut h.touched),
                std::mem::take(&mut h.handed),
                result.is_ok(),
            );
            result
        });
        if let Some(result) = held {
            return result;
        }
        let Some(t) = t.take() else {
            return Err(StoreError::Backend {
                backend: "postgres",
                detail: "a commit was written twice".into(),
            });
        };
        let (mut touched, mut handed) = (Touched::new(), Vec::new());
        let owner = self.owner.get().cloned();
        let result = blocking(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction();
            let mut ids = std::collections::VecDeque::new();
            write_transaction(
                &mut tx,
                t,
                &mut touched,
                &mut handed,
                &mut ids,
                owner.as_deref(),
            )?;
            tx.commit()?;
            Ok(())
        });
        self.committed(touched, handed, result.is_ok());
        result
    }

    /// A commit is on disk when it returns; a group's commands are
    /// committed here, together (one WAL sync for the group).
    fn flush(&self) -> Result<(), StoreError> {
        self.with_held(|h| {
            if h.group.is_none() {
                return Ok(());
            }
            h.open = false;
            // The group's rows and the COMMIT in one round trip.
            let result = if h.poisoned {
                h.conn.rollback();
                Err(StoreError::Backend {
                    backend: "postgres",
                    detail: "a command of the group could not be staged".into(),
                })
            } else {
                match h.rows.defer(&mut *h.conn, h.owner.as_deref()) {
                    Ok(()) => h.conn.commit().map_err(StoreError::from),
                    Err(e) => {
                        h.conn.rollback();
                        Err(e)
                    }
                }
            };
            self.committed(
                std::mem::take(&mut h.touched),
                std::mem::take(&mut h.handed),
                result.is_ok(),
            );
            result
        })
        .unwrap_or(Ok(()))
    }

    fn durable_id(&self) -> u64 {
        u64::MAX
    }

    fn get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let shape = shape(kind)?;
        let parts = key_parts(kind, key);
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            parts.iter().map(KeyPart::param).collect();
        let mut sql = format!("SELECT {} FROM {} WHERE ", shape.value, shape.table);
        for (i, (column, _)) in shape.keys.iter().enumerate() {
            sql.push_str(&format!(
                "{}{column} = ${}",
                if i > 0 { " AND " } else { "" },
                i + 1
            ));
        }
        if let Some(queue) = &shape.queue {
            params.push(queue);
            sql.push_str(&format!(" AND queue = ${}", params.len()));
        }
        self.with(|c| {
            c.query_opt(sql.as_str(), &params)?
                .map(|row| value_of(&shape, &row, 0))
                .transpose()
        })
    }

    /// Paged by key (`SCAN_PAGE` rows a round trip), so a large table never
    /// sits in memory.
    fn scan(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError> {
        self.scan_rows(kind, scope, order, true, each)
    }

    /// Selects the key columns only: a hook-call page is ~150 KB of JSON,
    /// which a scan of values would detoast, send and parse.
    fn scan_keys(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        each: &mut dyn FnMut(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.scan_rows(kind, scope, order, false, &mut |key, _| each(key))
    }

    fn count(&self, kind: Kind) -> Result<usize, StoreError> {
        let shape = shape(kind)?;
        let sql = format!(
            "SELECT count(*) FROM {}{}",
            shape.table,
            if shape.queue.is_some() {
                " WHERE queue = $1"
            } else {
                ""
            }
        );
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = match &shape.queue {
            Some(queue) => vec![queue],
            None => vec![],
        };
        self.with(|c| {
            let n: i64 = c.query_one(sql.as_str(), &params)?.get(0);
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// By the tables' time columns (indexed): no scan of what is young.
    fn expired(
        &self,
        kind: Kind,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        let sql = match kind {
            Kind::Audit => "SELECT scope, seq FROM audit WHERE at < $1 LIMIT $2",
            Kind::WebhooksSeen => {
                "SELECT source, webhook_id FROM webhooks_seen WHERE at < $1 LIMIT $2"
            }
            other => {
                return Err(StoreError::Backend {
                    backend: "postgres",
                    detail: format!("{} records do not expire", other.name()),
                })
            }
        };
        self.with(|c| {
            Ok(c.query(sql, &[&cutoff, &rows(max)])?
                .into_iter()
                .map(|row| match kind {
                    Kind::Audit => Write::ForgetAudit {
                        scope: row.get(0),
                        seq: row.get::<_, i64>(1) as u64,
                    },
                    _ => Write::ForgetWebhook {
                        source: row.get(0),
                        webhook_id: row.get(1),
                    },
                })
                .collect())
        })
    }

    fn lock_command(&self, scope: LockScope<'_>) -> Result<CommandLock<'_>, StoreError> {
        if let LockScope::Account(account_id) = scope {
            if let Some(in_group) = self.savepoint_in_group(account_id) {
                return in_group;
            }
        }
        // The transaction the command's (or group's) reads and commit run
        // in, and its locks, released by the server at COMMIT or ROLLBACK
        // (or when a dead replica's session ends). A group takes its
        // accounts' locks in key order, so two replicas' groups never wait
        // on each other in a circle.
        let mut group = None;
        let opening = match scope {
            LockScope::Account(id) => Opening::WithFirstRead {
                account_key: account_lock_key(id),
            },
            LockScope::Accounts(ids) | LockScope::AccountsIfFree(ids) => {
                let mut keys: Vec<i64> = ids.iter().map(|id| account_lock_key(id)).collect();
                keys.sort_unstable();
                keys.dedup();
                group = Some(keys.clone());
                Opening::Group {
                    keys,
                    wait: matches!(scope, LockScope::Accounts(_)),
                }
            }
            LockScope::Everything => Opening::Now(format!(
                "BEGIN; SELECT pg_advisory_xact_lock({EVERYTHING_LOCK_KEY})"
            )),
        };
        blocking(|| {
            let mut conn = self.pool.get()?;
            match &opening {
                Opening::Now(sql) => {
                    if let Err(e) = conn.batch_execute(sql) {
                        conn.rollback();
                        return Err(e.into());
                    }
                }
                Opening::Group { keys, wait } => {
                    conn.defer("BEGIN", Vec::new());
                    // The group's prefetch (five parts, one a lateral join)
                    // took PostgreSQL longer to plan than to run, and it was
                    // planned at every call: the planner kept preferring a
                    // plan made for the call's arrays. A generic plan, kept
                    // for the connection, is made again when the tables'
                    // statistics change. For this transaction only.
                    conn.defer(
                        "SELECT pg_advisory_xact_lock_shared($1),
                           set_config('plan_cache_mode', 'force_generic_plan', true)",
                        owned![EVERYTHING_LOCK_KEY],
                    );
                    if *wait {
                        // A subquery with ORDER BY is not flattened, and the
                        // volatile lock call is made on its rows in order.
                        conn.defer(
                            "SELECT pg_advisory_xact_lock(k)
                             FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS sorted",
                            owned![keys.clone()],
                        );
                    } else {
                        // The keys it could not take, kept for the
                        // transaction in a setting the prefetch reads back
                        // (a deferred statement's rows are not read). In a
                        // statement of their own: the prefetch's snapshot
                        // must be taken once the locks are held.
                        conn.defer(
                            "SELECT set_config('admind.busy_keys',
                               COALESCE(string_agg(k::text, ','), ''), true)
                             FROM (SELECT k FROM unnest($1::bigint[]) AS k
                                   WHERE NOT pg_try_advisory_xact_lock(k)) AS busy",
                            owned![keys.clone()],
                        );
                    }
                }
                Opening::WithFirstRead { account_key } => {
                    conn.defer("BEGIN", Vec::new());
                    conn.defer(
                        "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2)",
                        owned![EVERYTHING_LOCK_KEY, *account_key],
                    );
                }
            }
            let owner = self.owner.get().cloned();
            HELD.with(|held| *held.borrow_mut() = Some(Held::new(self.id(), conn, group, owner)));
            Ok(CommandLock::releasing(|| {
                let held = HELD.with(|held| held.borrow_mut().take());
                if let Some(mut held) = held {
                    if held.open {
                        // Refused, or its commit failed: nothing of it stays.
                        held.conn.rollback();
                    }
                }
            }))
        })
    }

    /// One statement, sent with the group's BEGIN and locks: its accounts,
    /// the members its commands name, each account's integrations, and ids
    /// for its commits (drawn under the locks, so one account's ids grow in
    /// commit order across replicas).
    fn prefetch(&self, wanted: &Prefetch<'_>) -> Result<Vec<String>, StoreError> {
        let accounts: Vec<&str> = wanted.accounts.iter().map(String::as_str).collect();
        let (member_accounts, member_ids): (Vec<&str>, Vec<&str>) =
            wanted.members.iter().copied().unzip();
        let fetched = self.with_held(|h| -> Result<Vec<String>, StoreError> {
            if h.group.is_none() {
                return Ok(Vec::new());
            }
            let found = h.conn.query(
                "SELECT 0, NULL::bigint, id, NULL::text, value FROM accounts WHERE id = ANY($1)
                 UNION ALL
                 SELECT 1, NULL, m.account_id, m.id, m.value
                   FROM unnest($2::text[], $3::text[]) AS w(account_id, id)
                   JOIN members m ON m.account_id = w.account_id AND m.id = w.id
                 UNION ALL
                 SELECT 2, NULL, i.account_id, i.id, i.value
                   FROM unnest($1::text[]) AS a(id)
                   CROSS JOIN LATERAL (SELECT account_id, id, value FROM integrations
                     WHERE account_id = a.id ORDER BY id LIMIT $4) AS i
                 UNION ALL
                 SELECT 3, nextval('admind_ids'), NULL, NULL, NULL
                   FROM generate_series(1, $5::bigint)
                 UNION ALL
                 SELECT 4, k::bigint, NULL, NULL, NULL
                   FROM unnest(string_to_array(
                     NULLIF(current_setting('admind.busy_keys', true), ''), ',')) AS k",
                &[
                    &accounts,
                    &member_accounts,
                    &member_ids,
                    &rows(wanted.integrations_max),
                    &(wanted.ids as i64),
                ],
            )?;
            // What was asked and not found is known absent.
            let mut overlay = Overlay {
                integrations_max: wanted.integrations_max,
                ..Overlay::default()
            };
            for id in wanted.accounts {
                overlay.accounts.insert(id.clone(), None);
                overlay.integrations.insert(id.clone(), Vec::new());
            }
            for (account_id, user_id) in &wanted.members {
                overlay.members.insert(key2(account_id, user_id), None);
            }
            let mut ids = Vec::new();
            let mut busy_keys = Vec::new();
            for row in found {
                let (part, first): (i32, Option<String>) = (row.try_get(0)?, row.try_get(2)?);
                let first = first.unwrap_or_default();
                match part {
                    0 => {
                        let a: JsonRecord<Account> = row.try_get(4)?;
                        overlay.accounts.insert(first, Some(a.0));
                    }
                    1 => {
                        let second: String = row.try_get(3)?;
                        let u: JsonRecord<User> = row.try_get(4)?;
                        overlay
                            .members
                            .insert(key2(&first, &second), Some(Arc::new(u.0)));
                    }
                    2 => {
                        let i: JsonRecord<Integration> = row.try_get(4)?;
                        overlay.integrations.entry(first).or_default().push(i.0);
                    }
                    3 => ids.push(row.try_get::<_, i64>(1)? as u64),
                    _ => busy_keys.push(row.try_get::<_, i64>(1)?),
                }
            }
            // What another transaction holds was read without its lock:
            // forgotten, and no command of it runs in the group.
            let mut busy = Vec::new();
            if !busy_keys.is_empty() {
                for id in wanted.accounts {
                    if busy_keys.contains(&account_lock_key(id)) {
                        overlay.accounts.remove(id);
                        overlay.integrations.remove(id);
                        let prefix = key2(id, "");
                        overlay.members.retain(|key, _| !key.starts_with(&prefix));
                        busy.push(id.clone());
                    }
                }
                if let Some(keys) = h.group.as_mut() {
                    keys.retain(|k| !busy_keys.contains(k));
                }
            }
            for list in overlay.integrations.values_mut() {
                list.sort_by(|a, b| a.id.cmp(&b.id));
            }
            ids.sort_unstable();
            h.ids.extend(ids);
            h.overlay = Some(overlay);
            Ok(busy)
        });
        fetched.unwrap_or(Ok(Vec::new()))
    }

    /// One statement: the filters run in the database, so neither the
    /// items handed out already nor those another replica holds are sent
    /// (reading every row's value was most of PostgreSQL's time under load).
    fn queue_window(
        &self,
        queue: QueueName,
        after: u64,
        hide: Hide<'_>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        // A live claim is shown when "claimed by `$3`" is what `$4` says, or
        // everything when `$6`; a claim whose owner's heartbeat is older
        // than `$7` seconds is no longer live (it died). No replica is
        // named "": `Held` shows no live claim.
        let (me, show_mine, show_all) = match hide {
            Hide::HeldElsewhere { me } => (me, true, false),
            Hide::Held => ("", true, false),
            Hide::Nothing => ("", false, true),
        };
        let stale_secs = self.owner.get().map(|o| o.stale_secs);
        self.with(|c| {
            let rows = c.query(
                "SELECT id, value FROM queue_items
                 WHERE queue = $1 AND id > $2
                   AND ($6 OR claimed_until IS NULL OR claimed_until < now()
                     OR (claimed_by = $3) = $4
                     OR claimed_by IN (SELECT r.id FROM replicas r
                       WHERE r.seen_at < now() - make_interval(secs => $7::float8)))
                 ORDER BY id LIMIT $5",
                &[
                    &queue_name(queue),
                    &id_i64(after),
                    &me,
                    &show_mine,
                    &rows(limit),
                    &show_all,
                    &stale_secs,
                ],
            )?;
            rows.into_iter()
                .map(|row| {
                    let id: i64 = row.try_get(0)?;
                    let value: CodecJson = row.try_get(1)?;
                    Ok((id as u64, value.0))
                })
                .collect()
        })
    }

    /// By the `lane` column's index (schema version 4): a few index
    /// entries per lane, where a look at the queue stepped over every item
    /// the other replicas hold.
    fn queue_lane_blockers(
        &self,
        queue: QueueName,
        lanes: &[&str],
        me: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        if lanes.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let rows = c.query(
                "SELECT lane, min(id) FROM queue_items
                 WHERE queue = $1 AND lane = ANY($2)
                   AND (claimed_by IS DISTINCT FROM $3 OR claimed_until < now())
                 GROUP BY lane",
                &[&queue_name(queue), &lanes, &me],
            )?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let lane: String = row.get(0);
                    let id: i64 = row.get(1);
                    (lane, id as u64)
                })
                .collect())
        })
    }

    fn take_committed(&self, queue: QueueName) -> Option<Vec<(u64, Vec<u8>)>> {
        let lease_secs = self.owner.get()?.lease_secs;
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = match queue {
            QueueName::Outbox => &mut committed.outbox,
            QueueName::Hooks => &mut committed.hooks,
            _ => return None,
        };
        let Waiting {
            items,
            dropped,
            since,
        } = std::mem::take(waiting);
        let too_old = since.is_some_and(|at| at.elapsed().as_secs_f64() > lease_secs / 2.0);
        (!dropped && !too_old).then_some(items)
    }

    fn own_new_items(
        &self,
        owner: &str,
        lease: std::time::Duration,
        stale_after: std::time::Duration,
    ) {
        let _ = self.owner.set(Arc::new(ItemOwner {
            owner: owner.to_string(),
            lease_secs: lease.as_secs_f64(),
            stale_secs: stale_after.as_secs_f64(),
        }));
    }

    fn queue_claim(
        &self,
        queue: QueueName,
        ids: &[u64],
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|&id| id_i64(id)).collect();
        let lease_secs = lease.as_secs_f64();
        // A claim whose owner's heartbeat is older than `$5` seconds is
        // taken over (it died), as one whose lease lapsed. An item `owner`
        // holds with more than half of `lease` left (most of what a scan
        // finds: new items are claimed from their insert) is taken as it
        // is: locked only to step over one being settled, not rewritten
        // (rewriting a few thousand such rows a second was a sixth of
        // PostgreSQL's time under load). A release (`lease` zero) rewrites
        // them all.
        let stale_secs = self.owner.get().map(|o| o.stale_secs);
        self.with(|c| {
            let rows = c.query(
                "WITH kept AS (
                   SELECT id, value FROM queue_items
                   WHERE queue = $1 AND id = ANY($2) AND $4::float8 > 0 AND claimed_by = $3
                     AND claimed_until > now() + make_interval(secs => $4::float8 / 2)
                   FOR SHARE SKIP LOCKED),
                 free AS (
                   SELECT queue, id FROM queue_items
                   WHERE queue = $1 AND id = ANY($2)
                     AND NOT COALESCE($4::float8 > 0 AND claimed_by = $3
                       AND claimed_until > now() + make_interval(secs => $4::float8 / 2), false)
                     AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $3
                       OR claimed_by IN (SELECT r.id FROM replicas r
                         WHERE r.seen_at < now() - make_interval(secs => $5::float8)))
                   FOR UPDATE OF queue_items SKIP LOCKED),
                 claimed AS (
                   UPDATE queue_items q
                   SET claimed_by = $3, claimed_until = now() + make_interval(secs => $4::float8)
                   FROM free WHERE q.queue = free.queue AND q.id = free.id
                   RETURNING q.id, q.value)
                 SELECT id, value FROM kept UNION ALL SELECT id, value FROM claimed",
                &[&queue_name(queue), &ids, &owner, &lease_secs, &stale_secs],
            )?;
            let mut out: Vec<(u64, Vec<u8>)> = rows
                .into_iter()
                .map(|row| {
                    let id: i64 = row.try_get(0)?;
                    let value: CodecJson = row.try_get(1)?;
                    Ok((id as u64, value.0))
                })
                .collect::<Result<_, StoreError>>()?;
            out.sort_by_key(|(id, _)| *id);
            Ok(out)
        })
    }

    fn coordination(&self) -> &dyn Coordination {
        self
    }
}

impl Coordination for PostgresStore {
    fn count_attempt(&self, key: &str, window: i64) -> Result<Option<u32>, StoreError> {
        self.with(|c| {
            let count: i32 = c
                .query_one(
                    "INSERT INTO attempt_windows (key, window_start, count) VALUES ($1, $2, 1)
                     ON CONFLICT (key) DO UPDATE SET
                       count = CASE WHEN attempt_windows.window_start = EXCLUDED.window_start
                                    THEN attempt_windows.count + 1 ELSE 1 END,
                       window_start = EXCLUDED.window_start
                     RETURNING count",
                    &[&key, &window],
                )?
                .get(0);
            Ok(Some(u32::try_from(count).unwrap_or(u32::MAX)))
        })
    }

    fn put_mark(&self, key: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO marks (key, until) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET until = GREATEST(marks.until, EXCLUDED.until)",
                &[&key, &until],
            )?;
            Ok(())
        })
    }

    fn has_mark(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM marks WHERE key = $1 AND until > now())",
                &[&key],
            )?
            .get(0))
        })
    }

    fn heartbeat(&self, me: &ReplicaInfo) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO replicas (id, started_at, seen_at, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, value = EXCLUDED.value",
                &[
                    &me.id,
                    &me.started_at,
                    &me.seen_at,
                    &JsonText::of(me).map_err(json_err)?,
                ],
            )?;
            Ok(())
        })
    }

    fn replicas(&self, since: DateTime<Utc>) -> Result<Vec<ReplicaInfo>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT value FROM replicas WHERE seen_at >= $1 ORDER BY id",
                &[&since],
            )?
            .into_iter()
            .map(|row| Ok(row.try_get::<_, JsonRecord<ReplicaInfo>>(0)?.0))
            .collect()
        })
    }

    fn prune_shared(&self, replicas_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let window_now = Utc::now().timestamp().div_euclid(60);
        self.with(|c| {
            let mut tx = c.transaction();
            let mut n = tx.execute(
                "DELETE FROM attempt_windows WHERE window_start < $1",
                &[&window_now],
            )?;
            n += tx.execute("DELETE FROM marks WHERE until < now()", &[])?;
            n += tx.execute(
                "DELETE FROM replicas WHERE seen_at < $1",
                &[&replicas_before],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// `NOTIFY` on the `admind` channel, on a connection of its own (never
    /// inside a command's transaction: a notification inside one would
    /// serialize every commit behind it).
    fn announce(&self, topic: &str) -> Result<(), StoreError> {
        blocking(|| {
            let mut conn = self.pool.get()?;
            conn.execute("SELECT pg_notify('admind', $1)", &[&topic])?;
            Ok(())
        })
    }

    fn listen(&self, on: Box<dyn Fn(&str) + Send>) -> Result<(), StoreError> {
        let config = self.config.clone();
        std::thread::Builder::new()
            .name("admind-listen".into())
            .spawn(move || loop {
                match config.connect(NoTls) {
                    Ok(mut client) => {
                        if let Err(e) = client.batch_execute("LISTEN admind") {
                            tracing::warn!(error = %StoreError::from(e), "listening for announcements failed");
                        } else {
                            let mut heard = client.notifications();
                            let mut each = heard.blocking_iter();
                            loop {
                                match postgres::fallible_iterator::FallibleIterator::next(&mut each) {
                                    Ok(Some(n)) => on(n.payload()),
                                    Ok(None) => break,
                                    Err(e) => {
                                        tracing::warn!(error = %StoreError::from(e), "the announcement connection failed; opening it again");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %StoreError::from(e), "connecting for announcements failed; trying again");
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            })
            .map(|_| ())
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::Record;
    use crate::store::tests::fresh_postgres_database;
    use postgres::types::Json;

    /// A database at schema version 5 (values as jsonb, a queued event's
    /// lane a column PostgreSQL derived) is upgraded to version 6 with its
    /// records and items: each reads back as it was written, an event keeps
    /// its lane, and the values are text from then on.
    #[test]
    fn a_version_5_database_is_upgraded_to_text_values_with_its_records_and_lanes() {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let mut client = postgres::Client::connect(&url, NoTls).expect("connecting");
        client
            .batch_execute("CREATE TABLE admind_schema (version integer NOT NULL)")
            .expect("the schema table");
        for (i, sql) in MIGRATIONS[..5].iter().enumerate() {
            client.batch_execute(sql).expect("an older migration");
            client
                .execute("INSERT INTO admind_schema VALUES ($1)", &[&(i as i32 + 1)])
                .expect("its version");
        }
        client
            .execute(
                "INSERT INTO admind_meta (key, value) VALUES ('installation_id', 'abc')",
                &[],
            )
            .expect("the installation id");
        let event = QueuedEvent {
            id: 11,
            cause_seq: Some(4),
            event: DomainEvent::AgentSeatExhausted {
                account_id: "acc_ünï \"q\"".into(),
                actor_id: "usr_x".into(),
                seats_total: 1,
                seats_used: 1,
                attempt: "add_member".into(),
            },
            attempts: 2,
        };
        let account = crate::store::tests::test_account("acc_1", "Ünï \"Co\"\n");
        client
            .execute(
                "INSERT INTO accounts (id, name, value) VALUES ($1, $2, $3)",
                &[&"acc_1", &account.name, &Json(&account)],
            )
            .expect("an account at version 5");
        let mail = serde_json::json!({"id": 12, "to": "ann@example.com", "body": "é\n\"x\""});
        for (queue, id, value) in [
            (
                "hook_events",
                11i64,
                serde_json::to_value(&event).expect("json"),
            ),
            ("outbox", 12, mail.clone()),
        ] {
            client
                .execute(
                    "INSERT INTO queue_items (queue, id, value) VALUES ($1, $2, $3)",
                    &[&queue, &id, &Json(value)],
                )
                .expect("an item at version 5");
        }
        drop(client);

        let store = Store::open_postgres(&url, 2).expect("opening upgrades the schema");
        let mut client = postgres::Client::connect(&url, NoTls).expect("connecting");
        let version: i32 = client
            .query_one("SELECT max(version) FROM admind_schema", &[])
            .expect("the version")
            .get(0);
        assert_eq!(version, MIGRATIONS.len() as i32);
        let (kind, generated): (String, String) = client
            .query_one(
                "SELECT data_type, (SELECT is_generated FROM information_schema.columns
                   WHERE table_name = 'queue_items' AND column_name = 'lane')
                 FROM information_schema.columns
                 WHERE table_name = 'queue_items' AND column_name = 'value'",
                &[],
            )
            .map(|row| (row.get(0), row.get(1)))
            .expect("the columns");
        assert_eq!((kind.as_str(), generated.as_str()), ("text", "NEVER"));
        let jsonb_columns: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND data_type IN ('json', 'jsonb')",
                &[],
            )
            .expect("the columns")
            .get(0);
        assert_eq!(jsonb_columns, 0, "every value is text");
        assert_eq!(
            StateView::account(&store, "acc_1").expect("reading the account"),
            Some(account)
        );
        // Each item's id and lane, from `first_id` on.
        let lanes = |client: &mut postgres::Client, first_id: i64| {
            client
                .query(
                    "SELECT id, lane FROM queue_items WHERE id >= $1 ORDER BY id",
                    &[&first_id],
                )
                .expect("the lanes")
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect::<Vec<(i64, Option<String>)>>()
        };
        assert_eq!(
            lanes(&mut client, 0),
            vec![(11, Some("acc_ünï \"q\"".to_owned())), (12, None)]
        );

        let mut hooks = Vec::new();
        store
            .queue_scan(QueueName::Hooks, Order::OldestFirst, &mut |id, value| {
                hooks.push((id, decode::<QueuedEvent>(value)?));
                Ok(true)
            })
            .expect("scanning the hook events");
        assert_eq!(hooks, vec![(11, event.clone())]);
        let mut mails = Vec::new();
        store
            .queue_scan(QueueName::Outbox, Order::OldestFirst, &mut |id, value| {
                mails.push((id, decode::<serde_json::Value>(value)?));
                Ok(true)
            })
            .expect("scanning the outbox");
        assert_eq!(mails, vec![(12, mail)]);

        // Written again (a retry), the event keeps its lane, now given by
        // the daemon.
        let again = QueuedEvent {
            attempts: 3,
            ..event
        };
        store
            .commit(Transaction::of_writes(vec![Store::queue_put(
                QueueName::Hooks,
                11,
                &again,
            )]))
            .expect("writing the event again");
        assert_eq!(
            lanes(&mut client, 11)[0],
            (11, Some("acc_ünï \"q\"".to_owned()))
        );

        // Restored (`admind import`), an event gets its lane too, and a
        // value that is no event the lane of no account.
        let restored = QueuedEvent { id: 21, ..again };
        store
            .restore(vec![
                Record::QueueItem {
                    queue: QueueName::Hooks,
                    id: 21,
                    value: serde_json::to_value(&restored).expect("json"),
                },
                Record::QueueItem {
                    queue: QueueName::Hooks,
                    id: 22,
                    value: serde_json::json!({"not": "an event"}),
                },
            ])
            .expect("restoring");
        assert_eq!(
            lanes(&mut client, 21),
            vec![
                (21, Some("acc_ünï \"q\"".to_owned())),
                (22, Some(String::new()))
            ]
        );
    }
}
