//! The PostgreSQL backend: one table per kind of record (values as `jsonb`
//! beside the key columns an operator queries by), one SQL transaction per
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
use postgres::types::Json;
use postgres::{Client, NoTls};
use std::sync::Arc;

use super::cache::{ReadCache, MEMBER_LIST_CACHED_MAX};
use super::codec::key2;
use super::postgres_cache::{SharedCache, Touched};
use super::postgres_conn::{owned, Conn, JsonText, Manager, Run};

use crate::domain::*;

use super::backend::{
    About, Backend, CommandLock, Coordination, Hide, LockScope, QueuedEvent, ReplicaInfo, Store,
    StoreError, Transaction,
};
use super::codec::{decode, encode};
use super::records::{Kind, Order, QueueName, Restore, RowVisit, Write};

/// The schema versions this build knows, in order; each runs once.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_replicas.sql"),
    include_str!("postgres/0003_policy_switches.sql"),
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
    /// The new mails it inserted, handed to the outbox worker after its
    /// COMMIT.
    mails: Vec<u64>,
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
    /// Writer threads: half the pool (each holds a connection while its
    /// command runs; the other half serves reads and the workers).
    writers: usize,
    /// Accounts, members and sessions for reads outside commands, kept true
    /// across replicas by announcements (`postgres_cache`); none when
    /// `store.cache_entries_max` is 0.
    cache: Option<std::sync::Arc<SharedCache>>,
    /// New mails committed by this process, not yet taken by its outbox
    /// worker (see `Backend::take_committed`), and whether some were
    /// dropped (more than [`COMMITTED_MAILS_MAX`] waiting).
    committed_mails: std::sync::Mutex<(Vec<u64>, bool)>,
}

/// New mail ids kept for the outbox worker, at most; past it the worker
/// scans the queue instead.
const COMMITTED_MAILS_MAX: usize = 65_536;

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
        Self::open_cached(url, pool_size, None)
    }

    /// Opens the store with a read cache (`None`, or no entries: without).
    pub fn open_cached(
        url: &str,
        pool_size: u32,
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
                writers: (pool_size as usize / 2).max(1),
                cache,
                committed_mails: std::sync::Mutex::new((Vec::new(), false)),
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
    /// new mails of a COMMIT that succeeded go to the outbox worker.
    fn committed(&self, touched: Touched, mails: Vec<u64>, succeeded: bool) {
        if let Some(cache) = &self.cache {
            cache.committed(touched);
        }
        if succeeded && !mails.is_empty() {
            let mut waiting = self
                .committed_mails
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if waiting.0.len() + mails.len() > COMMITTED_MAILS_MAX {
                waiting.1 = true;
            } else {
                waiting.0.extend(mails);
            }
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
            h.command_written = false;
            h.conn.defer("SAVEPOINT command", Vec::new());
            Ok(true)
        });
        match in_group? {
            Err(e) => return Some(Err(e)),
            Ok(false) => return None,
            Ok(true) => {}
        }
        Some(Ok(CommandLock::releasing(move || {
            let rolled_back = self.with_held(|h| {
                if h.command_written {
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
                Some(f) => f(&mut h.conn),
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
                .map(|row| row.get::<_, Json<V>>(0).0))
        })?)
    }

    fn many<V: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<V>, ViewError> {
        Ok(self.with(|c| {
            Ok(c.query(sql, params)?
                .into_iter()
                .map(|row| row.get::<_, Json<V>>(0).0)
                .collect())
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
    mails: &mut Vec<u64>,
) -> Result<(), StoreError> {
    // The ids first: the only answer the writes wait for; the writes then
    // go in one round trip (deferred, sent with the commit).
    let wanted = i64::from(t.audit.is_some()) + (t.mails.len() + t.events.len()) as i64;
    let mut ids = if wanted > 0 {
        tx.query(
            "SELECT nextval('admind_ids') FROM generate_series(1, $1::bigint)",
            &[&wanted],
        )?
        .into_iter()
        .map(|row| row.get::<_, i64>(0) as u64)
        .collect::<Vec<u64>>()
    } else {
        Vec::new()
    };
    ids.sort_unstable();
    let mut ids = ids.into_iter();
    let mut next = || {
        ids.next().ok_or(StoreError::Backend {
            backend: "postgres",
            detail: "the id sequence returned too few ids".into(),
        })
    };
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
    for mut mail in t.mails {
        mail.id = next()?;
        let value = serde_json::to_value(&mail).map_err(json_err)?;
        queued.push(QueueName::Outbox, mail.id, value);
        mails.push(mail.id);
    }
    for event in t.events {
        let id = next()?;
        let item = QueuedEvent {
            id,
            cause_seq: cause,
            event,
            attempts: 0,
        };
        let value = serde_json::to_value(&item).map_err(json_err)?;
        queued.push(QueueName::Hooks, id, value);
    }
    queued.insert(tx)?;
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
                puts.push(queue, id, decode(&value)?);
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

/// Queue items to insert together.
#[derive(Default)]
struct NewItems {
    queues: Vec<&'static str>,
    ids: Vec<i64>,
    values: Vec<Json<serde_json::Value>>,
}

impl NewItems {
    fn push(&mut self, queue: QueueName, id: u64, value: serde_json::Value) {
        self.queues.push(queue_name(queue));
        self.ids.push(id_i64(id));
        self.values.push(Json(value));
    }

    fn insert(self, tx: &mut impl Run) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        tx.defer(
            "INSERT INTO queue_items (queue, id, value)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[])",
            owned![self.queues, self.ids, self.values],
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
    fn push(&mut self, queue: QueueName, id: u64, value: serde_json::Value) {
        self.seen.insert((queue_name(queue), id_i64(id)));
        self.items.push(queue, id, value);
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
            "INSERT INTO queue_items (queue, id, value)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[])
             ON CONFLICT (queue, id) DO UPDATE
             SET value = EXCLUDED.value, claimed_by = NULL, claimed_until = NULL",
            owned![items.queues, items.ids, items.values],
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
    // Writing an item (a retry's new schedule) ends whatever claim it had.
    tx.defer(
        "INSERT INTO queue_items (queue, id, value) VALUES ($1, $2, $3)
         ON CONFLICT (queue, id) DO UPDATE
         SET value = EXCLUDED.value, claimed_by = NULL, claimed_until = NULL",
        owned![
            (queue_name(queue)).to_owned(),
            (id_i64(id)).to_owned(),
            JsonText::of(&value).map_err(json_err)?
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
                 WHERE NOT COALESCE((subscribers.value->>'disabled')::boolean, false)",
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

/// A row's value in the codec's format (`jsonb` values as its JSON form;
/// the email index's user id as it is).
fn value_of(shape: &Shape, row: &postgres::Row, at: usize) -> Vec<u8> {
    if shape.value == "value" {
        encode(&row.get::<_, Json<serde_json::Value>>(at).0)
    } else {
        row.get::<_, String>(at).into_bytes()
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
        cache: CacheOptions,
    ) -> Result<Store, StoreError> {
        Ok(Store::new(PostgresStore::open_cached(
            url,
            pool_size,
            Some(cache),
        )?))
    }
}

impl StateView for PostgresStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        let read = || self.one("SELECT value FROM accounts WHERE id = $1", &[&id]);
        match self.cache() {
            Some(cache) => ReadCache::value(&cache.accounts, id.as_bytes(), read),
            None => read(),
        }
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
        let read = || {
            Ok::<_, ViewError>(
                self.one::<User>(
                    "SELECT value FROM members WHERE account_id = $1 AND id = $2",
                    &[&account_id, &user_id],
                )?
                .map(Arc::new),
            )
        };
        match self.cache() {
            Some(cache) => ReadCache::value(&cache.users, &key2(account_id, user_id), read),
            None => read(),
        }
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
        let read = || self.one("SELECT value FROM sessions WHERE hash = $1", &[&hash]);
        match self.cache() {
            Some(cache) => ReadCache::value(&cache.sessions, hash.as_bytes(), read),
            None => read(),
        }
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
            let written = match t.take() {
                Some(t) => write_transaction(&mut *h.conn, t, &mut h.touched, &mut h.mails),
                None => Err(StoreError::Backend {
                    backend: "postgres",
                    detail: "a commit was written twice".into(),
                }),
            };
            if h.group.is_some() {
                // In a group: written inside the command's savepoint, in
                // one round trip with its release; the group's transaction
                // commits at `flush`.
                let result = written.and_then(|()| {
                    h.conn.defer("RELEASE SAVEPOINT command", Vec::new());
                    Ok(h.conn.send_deferred()?)
                });
                h.command_written = result.is_ok();
                return result;
            }
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
                std::mem::take(&mut h.mails),
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
        let (mut touched, mut mails) = (Touched::new(), Vec::new());
        let result = blocking(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction();
            write_transaction(&mut tx, t, &mut touched, &mut mails)?;
            tx.commit()?;
            Ok(())
        });
        self.committed(touched, mails, result.is_ok());
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
            let result = h.conn.batch_execute("COMMIT");
            self.committed(
                std::mem::take(&mut h.touched),
                std::mem::take(&mut h.mails),
                result.is_ok(),
            );
            Ok(result?)
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
            Ok(c.query_opt(sql.as_str(), &params)?
                .map(|row| value_of(&shape, &row, 0)))
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
                "SELECT {}, {} FROM {} WHERE TRUE",
                columns.join(", "),
                shape.value,
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
                if !each(&key, &value_of(&shape, row, columns.len()))? {
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
            LockScope::Accounts(ids) => {
                let mut keys: Vec<i64> = ids.iter().map(|id| account_lock_key(id)).collect();
                keys.sort_unstable();
                keys.dedup();
                let mut sql =
                    format!("BEGIN; SELECT pg_advisory_xact_lock_shared({EVERYTHING_LOCK_KEY});");
                for key in &keys {
                    sql.push_str(&format!(" SELECT pg_advisory_xact_lock({key});"));
                }
                group = Some(keys);
                Opening::Now(sql)
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
                Opening::WithFirstRead { account_key } => {
                    conn.defer("BEGIN", Vec::new());
                    conn.defer(
                        "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2)",
                        owned![EVERYTHING_LOCK_KEY, *account_key],
                    );
                }
            }
            HELD.with(|held| {
                *held.borrow_mut() = Some(Held {
                    store: self.id(),
                    conn,
                    open: true,
                    group,
                    command_written: false,
                    touched: Touched::new(),
                    mails: Vec::new(),
                })
            });
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
        // A live claim is shown when "claimed by me" is what `$4` says.
        let (me, show_mine) = match hide {
            Hide::HeldElsewhere { me } => (me, true),
            Hide::HeldHere { me } => (me, false),
        };
        self.with(|c| {
            let rows = c.query(
                "SELECT id, value FROM queue_items
                 WHERE queue = $1 AND id > $2
                   AND (claimed_until IS NULL OR claimed_until < now() OR (claimed_by = $3) = $4)
                 ORDER BY id LIMIT $5",
                &[
                    &queue_name(queue),
                    &id_i64(after),
                    &me,
                    &show_mine,
                    &rows(limit),
                ],
            )?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let id: i64 = row.get(0);
                    let value: Json<serde_json::Value> = row.get(1);
                    (id as u64, encode(&value.0))
                })
                .collect())
        })
    }

    fn take_committed(&self, queue: QueueName) -> Option<Vec<u64>> {
        if queue != QueueName::Outbox {
            return None;
        }
        let mut waiting = self
            .committed_mails
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut waiting.1);
        let ids = std::mem::take(&mut waiting.0);
        (!dropped).then_some(ids)
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
        self.with(|c| {
            let rows = c.query(
                "WITH free AS (
                   SELECT queue, id FROM queue_items
                   WHERE queue = $1 AND id = ANY($2)
                     AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $3)
                   FOR UPDATE SKIP LOCKED)
                 UPDATE queue_items q
                 SET claimed_by = $3, claimed_until = now() + make_interval(secs => $4)
                 FROM free WHERE q.queue = free.queue AND q.id = free.id
                 RETURNING q.id, q.value",
                &[&queue_name(queue), &ids, &owner, &lease_secs],
            )?;
            let mut out: Vec<(u64, Vec<u8>)> = rows
                .into_iter()
                .map(|row| {
                    let id: i64 = row.get(0);
                    let value: Json<serde_json::Value> = row.get(1);
                    (id as u64, encode(&value.0))
                })
                .collect();
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
                &[&me.id, &me.started_at, &me.seen_at, &Json(me)],
            )?;
            Ok(())
        })
    }

    fn replicas(&self, since: DateTime<Utc>) -> Result<Vec<ReplicaInfo>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT value FROM replicas WHERE seen_at >= $1 ORDER BY id",
                &[&since],
            )?
            .into_iter()
            .map(|row| row.get::<_, Json<ReplicaInfo>>(0).0)
            .collect())
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
