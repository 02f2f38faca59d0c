//! The sled backend, the embedded default: one tree per kind of record,
//! values in the [`codec`](super::codec) format, durability from explicit
//! flushes (group commit).
//!
//! A [`Transaction`] is one sled transaction, except in a group of commands
//! (`LockScope::Accounts`, the writer's batch): there each command's rows
//! are staged on the writer thread, the group's later commands read them
//! through the stage, and the group's `flush` applies them all in one sled
//! transaction. Why: each sled transaction seals the log buffer before and
//! after itself, and each sealed buffer is written and synced on its own
//! (`sync_file_range`), two synced writes per transaction whatever its
//! size (BENCHMARKS.md, "One sled transaction per batch").
//!
//! Only the writer thread commits, so a command's reads and its transaction
//! see the same state without retries.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::domain::*;

use super::backend::{
    About, Backend, CommandLock, Coordination, LockScope, Store, StoreError, Transaction,
};
use super::cache::{ReadCache, MEMBER_LIST_CACHED_MAX};
use super::codec::key2;
use super::kv::{self, Kv, KvState};
use super::records::{Kind, Row, SPECS};
use super::records::{Order, RowVisit, Write};

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
    /// Whether anything was written since the last flush began: a flush
    /// with nothing to write is skipped (the writer's flush after a
    /// group's own found nothing new, yet sealed and synced a log buffer).
    written: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Decoded accounts, members, sessions and small accounts' member
    /// lists (this process is sled's only writer, so its commits are the
    /// only invalidations there are).
    cache: std::sync::Arc<ReadCache>,
}

pub use super::cache::CACHE_ENTRIES_MAX_DEFAULT;

/// A group's staged rows on the writer thread, from the group's
/// `lock_command` to its `flush` (or its lock's release): what its
/// commands committed, in order, and the latest value of each key they
/// wrote, which the group's reads see before sled's. Other threads never
/// see it: they read what sled has committed, as before.
struct Staged {
    /// The store it stages for ([`SledStore::identity`]).
    store: usize,
    rows: Vec<Row>,
    /// Per kind (indexed as `SPECS`): looked up and ranged by the key's
    /// bytes as they are, without building an owned key.
    latest: Vec<std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Staged {
    fn new(store: usize) -> Staged {
        Staged {
            store,
            rows: Vec::new(),
            latest: vec![std::collections::BTreeMap::new(); SPECS.len()],
        }
    }

    /// The staged keys of `kind` from `prefix` on that start with it.
    fn under<'a>(
        &'a self,
        kind: Kind,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        use std::ops::Bound;
        self.latest[kind as usize]
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }
}

thread_local! {
    static STAGED: std::cell::RefCell<Option<Staged>> = const { std::cell::RefCell::new(None) };
}

/// Key (in sled's default tree) of the installation id.
const INSTALLATION_ID_KEY: &[u8] = b"installation_id";

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
        let trees = SPECS
            .iter()
            .map(|spec| db.open_tree(spec.name))
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
            written: std::sync::Arc::new(true.into()),
            cache: std::sync::Arc::new(ReadCache::new(cache_entries_max, None)),
        })
    }

    /// A value of a cached tree, shared: from the cache, else read and kept.
    fn cached<V: serde::de::DeserializeOwned>(
        &self,
        table: &super::cache::Table<Arc<V>>,
        kind: Kind,
        key: &[u8],
    ) -> Result<Option<Arc<V>>, StoreError> {
        let read = || Ok(kv::get::<V>(self, kind, key)?.map(Arc::new));
        // Staged by this thread's group: not what the others see, so
        // neither taken from the cache nor kept in it.
        if self.is_staged(kind, key) {
            return read();
        }
        ReadCache::value(table, key, read)
    }

    fn members_uncached(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        KvState(self).members_owned(account_id, after, limit)
    }

    /// How many values of each tree are in each format version:
    /// `(tree, [version 1, version 2, other])`, index trees left out. Shows
    /// how far an upgraded store has been rewritten.
    pub fn format_census(&self) -> Result<Vec<(&'static str, [usize; 3])>, StoreError> {
        kv::census(self)
    }

    /// This open store, among others in the process (tests open several):
    /// the address of its cache, shared by its clones.
    fn identity(&self) -> usize {
        Arc::as_ptr(&self.cache) as *const () as usize
    }

    /// `f` of this thread's group, if it stages for this store.
    fn with_staged<R>(&self, f: impl FnOnce(&Staged) -> R) -> Option<R> {
        let identity = self.identity();
        STAGED.with(|staged| {
            staged
                .borrow()
                .as_ref()
                .filter(|g| g.store == identity)
                .map(f)
        })
    }

    /// The staged value of a key (`Some(None)`: staged as removed), or
    /// `None` when no group of this thread staged it.
    fn staged_value(&self, kind: Kind, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.with_staged(|g| g.latest[kind as usize].get(key).cloned())
            .flatten()
    }

    /// Whether this thread's group staged a key (its reads then bypass the
    /// read cache).
    fn is_staged(&self, kind: Kind, key: &[u8]) -> bool {
        self.with_staged(|g| g.latest[kind as usize].contains_key(key))
            .unwrap_or(false)
    }

    /// Whether this thread's group staged a key of `kind` starting with
    /// `prefix` (so a cached list of them is not what the group sees).
    fn staged_under(&self, kind: Kind, prefix: &[u8]) -> bool {
        self.with_staged(|g| g.under(kind, prefix).next().is_some())
            .unwrap_or(false)
    }

    /// Stages `rows` in this thread's group; gives them back when there is
    /// none (they are then applied at once).
    fn stage(&self, rows: Vec<Row>) -> Option<Vec<Row>> {
        let identity = self.identity();
        STAGED.with(|staged| match staged.borrow_mut().as_mut() {
            Some(group) if group.store == identity => {
                for row in &rows {
                    group.latest[row.kind as usize].insert(row.key.clone(), row.value.clone());
                }
                group.rows.extend(rows);
                None
            }
            _ => Some(rows),
        })
    }

    /// Takes this thread's group's rows (the group stays open, empty).
    fn take_staged(&self) -> Option<Vec<Row>> {
        let identity = self.identity();
        STAGED.with(|staged| match staged.borrow_mut().as_mut() {
            Some(group) if group.store == identity => {
                group
                    .latest
                    .iter_mut()
                    .for_each(std::collections::BTreeMap::clear);
                Some(std::mem::take(&mut group.rows))
            }
            _ => None,
        })
    }

    /// Forgets what a commit wrote (after it is applied, before it returns).
    fn invalidate(&self, rows: &[Row]) {
        for Row { kind, key, .. } in rows {
            self.cache.invalidate(*kind, key);
        }
    }

    fn tree(&self, kind: Kind) -> &sled::Tree {
        &self.trees[kind as usize]
    }

    /// A new id (sled's monotonic counter), remembered as issued.
    fn issue_id(&self) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        self.last_issued_id
            .fetch_max(id, std::sync::atomic::Ordering::AcqRel);
        Ok(id)
    }

    /// Applies writes atomically (one sled transaction across trees).
    fn apply(&self, rows: &[Row]) -> Result<(), StoreError> {
        self.written
            .store(true, std::sync::atomic::Ordering::Release);
        let result = self.apply_uncached(rows);
        // Also after a failure: whatever part sled kept, nobody reads it
        // from the cache.
        self.invalidate(rows);
        result
    }

    fn apply_uncached(&self, rows: &[Row]) -> Result<(), StoreError> {
        // Only the trees the writes touch take part (a sled transaction
        // stages and commits every tree it is given).
        let mut position = [usize::MAX; SPECS.len()];
        let mut touched: Vec<&sled::Tree> = Vec::with_capacity(8);
        for row in rows {
            if position[row.kind as usize] == usize::MAX {
                position[row.kind as usize] = touched.len();
                touched.push(self.tree(row.kind));
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        let result: Result<(), TransactionError<()>> = touched.as_slice().transaction(|txs| {
            for Row { kind, key, value } in rows {
                let tx = &txs[position[*kind as usize]];
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

/// The tree of marks ([`Coordination::put_mark`]), and how many it holds.
const MARKS_TREE: &str = "marks";
const MARKS_MAX: usize = 100_000;

fn mark_until(value: &[u8]) -> i64 {
    value.try_into().map(i64::from_be_bytes).unwrap_or(i64::MIN)
}

impl Kv for SledStore {
    fn kv_get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(staged) = self.staged_value(kind, key) {
            return Ok(staged);
        }
        Ok(self.tree(kind).get(key)?.map(|v| v.to_vec()))
    }

    fn kv_scan(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError> {
        // What this thread's group staged in the scanned range, in the
        // scan's order: merged with sled's rows (a staged key replaces
        // sled's, a staged removal hides it).
        let newest_first = matches!(order, Order::NewestFirst);
        let staged: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .with_staged(|g| {
                let in_range = |key: &[u8]| match order {
                    Order::OldestFirst => key >= from,
                    Order::NewestFirst if from.len() > prefix.len() && from.starts_with(prefix) => {
                        key < from
                    }
                    Order::NewestFirst => true,
                };
                let mut rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = g
                    .under(kind, prefix)
                    .filter(|(key, _)| in_range(key))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                if newest_first {
                    rows.reverse();
                }
                rows
            })
            .unwrap_or_default();
        let mut staged = staged.into_iter().peekable();
        // Whether `a` comes before `b` in the scan's order.
        let before = |a: &[u8], b: &[u8]| if newest_first { a > b } else { a < b };
        let tree = self.tree(kind);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match order {
            Order::OldestFirst => Box::new(tree.range(from.max(prefix)..)),
            Order::NewestFirst if from.len() > prefix.len() && from.starts_with(prefix) => {
                Box::new(tree.range(prefix..from).rev())
            }
            Order::NewestFirst => Box::new(tree.scan_prefix(prefix).rev()),
        };
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            // Staged keys that come first, then this one as staged or not.
            while let Some((key, value)) = staged.next_if(|(key, _)| before(key, &k)) {
                if let Some(value) = value {
                    if !each(&key, &value)? {
                        return Ok(());
                    }
                }
            }
            let visited = match staged.next_if(|(key, _)| key.as_slice() == &*k) {
                Some((_, Some(value))) => each(&k, &value)?,
                Some((_, None)) => true,
                None => each(&k, &v)?,
            };
            if !visited {
                return Ok(());
            }
        }
        for (key, value) in staged {
            if let Some(value) = value {
                if !each(&key, &value)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Backend for SledStore {
    fn about(&self) -> About<'_> {
        About {
            kind: "sled",
            installation_id: &self.installation_id,
            shared: false,
            writer_threads: 1,
            groups_commits: true,
        }
    }

    /// A group (`LockScope::Accounts`) opens a stage on this thread, which
    /// its `flush` applies and its release drops (rows a failed flush left
    /// are then run again by the writer, one command at a time). One
    /// process opens the store: there is nothing else to lock.
    fn lock_command(&self, scope: LockScope<'_>) -> Result<CommandLock<'_>, StoreError> {
        if !matches!(scope, LockScope::Accounts(_) | LockScope::AccountsIfFree(_)) {
            return Ok(CommandLock::none());
        }
        let identity = self.identity();
        STAGED.with(|staged| *staged.borrow_mut() = Some(Staged::new(identity)));
        Ok(CommandLock::releasing(move || {
            STAGED.with(|staged| {
                let mut staged = staged.borrow_mut();
                if staged.as_ref().is_some_and(|g| g.store == identity) {
                    *staged = None;
                }
            })
        }))
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.issue_id()
    }

    fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let (rows, restored_id_max) = kv::rows_of_transaction(self, &mut || self.issue_id(), tx)?;
        if restored_id_max > 0 {
            // Ids handed out from now on are larger than every restored one
            // (sled's counter only steps; a file claiming absurd ids is
            // refused rather than stepped through).
            const RESTORE_ID_STEPS_MAX: u64 = 1 << 32;
            let current = self.issue_id()?;
            if restored_id_max.saturating_sub(current) > RESTORE_ID_STEPS_MAX {
                return Err(StoreError::Backend {
                    backend: "sled",
                    detail: format!("the records hold an id ({restored_id_max}) far beyond any this store could have handed out"),
                });
            }
            while self.issue_id()? < restored_id_max {}
        }
        match self.stage(rows) {
            Some(rows) => self.apply(&rows),
            None => Ok(()),
        }
    }

    fn append(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (rows, _) = kv::rows_of_transaction(
            self,
            &mut || self.issue_id(),
            Transaction::of_writes(writes),
        )?;
        self.written
            .store(true, std::sync::atomic::Ordering::Release);
        let result = rows.iter().try_for_each(|Row { kind, key, value }| {
            let tree = self.tree(*kind);
            match value {
                Some(v) => tree.insert(key.as_slice(), v.as_slice()).map(drop),
                None => tree.remove(key.as_slice()).map(drop),
            }
        });
        self.invalidate(&rows);
        Ok(result?)
    }

    /// Ids issued before the flush started are on disk once it returns
    /// (sled's reads see a committed write before the batch's flush, hence
    /// the watermark).
    fn flush(&self) -> Result<(), StoreError> {
        // A group's commit: its rows in one transaction, all or none (if
        // it fails, the writer runs the group's commands again one by
        // one, on a state without them).
        if let Some(rows) = self.take_staged() {
            self.apply(&rows)?;
        }
        // Nothing written since the last flush began: nothing to make
        // durable. The watermark stays (ids issued since may still be
        // committed, and must not count as durable before their flush).
        if !self
            .written
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        let issued = self
            .last_issued_id
            .load(std::sync::atomic::Ordering::Acquire);
        if let Err(e) = self.db.flush() {
            self.written
                .store(true, std::sync::atomic::Ordering::Release);
            return Err(e.into());
        }
        self.durable_id
            .fetch_max(issued, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    fn durable_id(&self) -> u64 {
        self.durable_id.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv_get(kind, key)
    }

    fn scan(
        &self,
        kind: Kind,
        scope: Option<&str>,
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError> {
        kv::scan_scope(self, kind, scope, order, each)
    }

    fn queue_window(
        &self,
        queue: super::records::QueueName,
        after: u64,
        _hide: super::backend::Hide<'_>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        kv::queue_window(self, queue, after, limit)
    }

    fn count(&self, kind: Kind) -> Result<usize, StoreError> {
        Ok(self.tree(kind).len())
    }

    fn expired(
        &self,
        kind: Kind,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        kv::expired(self, kind, cutoff, max)
    }

    fn coordination(&self) -> &dyn Coordination {
        self
    }
}

impl Coordination for SledStore {
    /// Marks (a console sign-out) outlive a restart: kept in a tree of
    /// their own, outside the domain's records (not exported: each expires
    /// within hours), flushed before the answer. Expired ones are dropped
    /// when more than `MARKS_MAX` are held.
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
}

impl StateView for SledStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.account_shared(id)?.map(Arc::unwrap_or_clone))
    }

    fn account_shared(&self, id: &str) -> Result<Option<Arc<Account>>, ViewError> {
        Ok(self.cached(&self.cache.accounts, Kind::Accounts, id.as_bytes())?)
    }

    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(self
            .user_shared(account_id, user_id)?
            .map(Arc::unwrap_or_clone))
    }

    fn user_shared(&self, account_id: &str, user_id: &str) -> Result<Option<Arc<User>>, ViewError> {
        let key = key2(account_id, user_id);
        Ok(self.cached(&self.cache.users, Kind::Users, &key)?)
    }

    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        let key = key2(account_id, &normalize_email(email));
        match self.kv_get(Kind::EmailIndex, &key)? {
            Some(user_id) => {
                let user_id = String::from_utf8_lossy(&user_id).into_owned();
                self.user(account_id, &user_id)
            }
            None => Ok(None),
        }
    }

    fn investigations(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SecurityInvestigation>, ViewError> {
        KvState(self).investigations(account_id, limit)
    }
    fn members_before(
        &self,
        account_id: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        KvState(self).members_before(account_id, before, limit)
    }
    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        // A long list is paged from the store (the account's member count
        // says so without reading the list).
        let long = self
            .account(account_id)?
            .is_some_and(|a| a.member_count as usize > MEMBER_LIST_CACHED_MAX);
        let (p, from) = kv::members_from(account_id, after);
        // Members this thread's group staged: the list as the group sees
        // it, read through the stage, not the cache.
        if self.staged_under(Kind::Users, &p) {
            return Ok(self
                .members_uncached(account_id, after, limit)?
                .into_iter()
                .map(Arc::new)
                .collect());
        }
        if long {
            // A page of a long list: its members from the user cache when
            // there, so that it costs about what a short list's page does.
            return Ok(self.cache.users_scanned(
                limit,
                |each| {
                    self.kv_scan(Kind::Users, &p, &from, Order::OldestFirst, &mut |k, v| {
                        each(k, v)
                    })
                },
                |bytes| Ok(super::codec::decode(bytes)?),
            )?);
        }
        self.cache
            .members(account_id, after, limit, false, |after, limit| {
                self.members_uncached(account_id, after, limit)
            })
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(self.session_shared(hash)?.map(Arc::unwrap_or_clone))
    }

    fn session_shared(&self, hash: &str) -> Result<Option<Arc<Session>>, ViewError> {
        Ok(self.cached(&self.cache.sessions, Kind::Sessions, hash.as_bytes())?)
    }

    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
        KvState(self).accounts(after, limit)
    }
    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        KvState(self).integrations(account_id, limit)
    }
    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        KvState(self).integration(account_id, id)
    }
    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        KvState(self).token(hash)
    }
    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        KvState(self).invoices(account_id, limit)
    }
    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        KvState(self).webhook_seen(source, webhook_id)
    }
    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        KvState(self).licence_request(id)
    }
    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
        KvState(self).policy_switches(limit)
    }
    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        KvState(self).account_licence_requests(account_id, limit)
    }
    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        KvState(self).licence_requests(status, limit)
    }
    fn audit(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        KvState(self).audit(account_id, after, limit)
    }
    fn audit_newest(
        &self,
        account_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        KvState(self).audit_newest(account_id, before, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// Every row `kv_scan` visits, in its order.
    fn scanned(
        store: &SledStore,
        prefix: &[u8],
        from: &[u8],
        order: Order,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut seen = Vec::new();
        store
            .kv_scan(Kind::Users, prefix, from, order, &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                Ok(true)
            })
            .unwrap();
        seen
    }

    /// What a scan of `model` visits: the same rules as sled's scan.
    fn expected(
        model: &BTreeMap<Vec<u8>, Vec<u8>>,
        prefix: &[u8],
        from: &[u8],
        order: Order,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let under = model
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()));
        match order {
            Order::OldestFirst => under.filter(|(k, _)| k.as_slice() >= from).collect(),
            Order::NewestFirst => {
                let bounded = from.len() > prefix.len() && from.starts_with(prefix);
                let mut rows: Vec<_> = under
                    .filter(|(k, _)| !bounded || k.as_slice() < from)
                    .collect();
                rows.reverse();
                rows
            }
        }
    }

    /// Inside a group, reads see what its commands staged over what sled
    /// holds (a staged value replaces sled's, a staged removal hides it,
    /// new keys appear in order), in both scan orders, from any starting
    /// key; outside the group (another thread) nothing staged shows; the
    /// group's flush applies it all, and the release of a group that was
    /// not flushed drops it.
    #[test]
    fn a_group_reads_its_staged_rows_merged_with_the_store_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = |n: u8| vec![b'a' + n % 3, b'/', b'0' + n / 3];
        for round in 0..40 {
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            // What sled holds before the group.
            let committed: Vec<Row> = (0..rng.gen_range(0..12))
                .map(|_| {
                    let k = key(rng.gen_range(0..30));
                    let v = vec![round, rng.gen()];
                    model.insert(k.clone(), v.clone());
                    Row::put(Kind::Users, k, v)
                })
                .collect();
            store.apply(&committed).unwrap();
            let before = model.clone();
            let lock = store.lock_command(LockScope::Accounts(&[])).unwrap();
            for _ in 0..rng.gen_range(0..12) {
                let k = key(rng.gen_range(0..30));
                let row = if rng.gen_bool(0.3) {
                    model.remove(&k);
                    Row {
                        kind: Kind::Users,
                        key: k,
                        value: None,
                    }
                } else {
                    let v = vec![round, rng.gen(), 1];
                    model.insert(k.clone(), v.clone());
                    Row::put(Kind::Users, k, v)
                };
                assert!(store.stage(vec![row]).is_none(), "staged in the group");
            }
            for prefix in [&b""[..], b"a/", b"b/", b"c/"] {
                for from in [
                    prefix.to_vec(),
                    [prefix, b"3"].concat(),
                    [prefix, b"5"].concat(),
                ] {
                    for order in [Order::OldestFirst, Order::NewestFirst] {
                        assert_eq!(
                            scanned(&store, prefix, &from, order),
                            expected(&model, prefix, &from, order),
                            "round {round}, prefix {prefix:?}, from {from:?}, {order:?}"
                        );
                    }
                }
            }
            for n in 0..30 {
                let k = key(n);
                assert_eq!(
                    store.kv_get(Kind::Users, &k).unwrap(),
                    model.get(&k).cloned()
                );
            }
            // Another thread sees only what sled holds.
            let other = store.clone();
            let seen = std::thread::spawn(move || scanned(&other, b"", b"", Order::OldestFirst))
                .join()
                .unwrap();
            assert_eq!(seen, expected(&before, b"", b"", Order::OldestFirst));
            if round % 2 == 0 {
                // Flushed: applied, then visible to all.
                store.flush().unwrap();
                drop(lock);
            } else {
                // Released without a flush: nothing of it stays.
                drop(lock);
                model = before;
            }
            assert_eq!(
                scanned(&store, b"", b"", Order::OldestFirst),
                expected(&model, b"", b"", Order::OldestFirst)
            );
            // The next round starts from what sled holds.
            let clear: Vec<Row> = model
                .keys()
                .map(|k| Row {
                    kind: Kind::Users,
                    key: k.clone(),
                    value: None,
                })
                .collect();
            store.apply(&clear).unwrap();
        }
    }
}
