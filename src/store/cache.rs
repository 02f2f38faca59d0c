//! A bounded in-memory cache of decoded values, for a store only this
//! process writes (sled): a read that hits it decodes nothing.
//!
//! Correctness rests on one rule: the backend invalidates every key a
//! commit touched *after* the commit is applied and *before* the commit
//! returns, so a read that starts after a 2xx write misses and reads the
//! store. A read racing a commit cannot put a stale value back: it takes a
//! ticket (its shard's generation) before reading the store and fills only
//! if no invalidation in that shard happened since ([`Table::fill`]).
//!
//! A store that other processes write too (PostgreSQL replicas) uses it
//! only for reads outside a command (a command reads under its locks, from
//! the database), and only while it hears the other replicas: each replica
//! announces the keys its commits touched, the others invalidate them as
//! they hear them (`postgres_store`), and an entry older than the
//! heartbeat is dropped in case an announcement was lost.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Account, Session, User};

use super::records::Kind;

/// Values each cached table holds at most unless configured
/// (`[store] cache_entries_max`).
pub const CACHE_ENTRIES_MAX_DEFAULT: usize = 20_000;

/// Shards per table: a lock per shard, so readers on two cores rarely meet.
const SHARDS: usize = 16;

/// What a miss hands back: fill with it, and the fill is dropped if the
/// shard was invalidated in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// What [`ReadCache::users_scanned`] hands its scan: called with each row's
/// key and value, it answers whether to go on.
pub type RowSink<'a, E> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<bool, E>;

/// Every shard's ticket at one moment, taken before a scan of the store:
/// a value the scan read is kept only if its shard was not invalidated
/// since ([`Table::ticket_of`]).
pub struct Tickets([u64; SHARDS]);

struct Shard<V> {
    /// Value, weight, the sequence number of its insertion, and when it was
    /// filled.
    /// FxHash: keys are ids admind issues, not chosen by clients, and
    /// SipHash was a twentieth of a cached read's work.
    map: FxHashMap<Box<[u8]>, (V, usize, u64, Instant)>,
    /// Insertion order, for eviction (first in, first out), with each
    /// insertion's sequence number: an entry whose number is not the
    /// map's (the key was invalidated, perhaps filled again since) is
    /// stale; stale entries are dropped when they reach the front or when
    /// they are half the queue, which bounds it at twice the entries.
    order: VecDeque<(Box<[u8]>, u64)>,
    /// The next insertion's sequence number.
    next_seq: u64,
    /// Sum of the entries' weights.
    weight: usize,
    /// Bumped by every invalidation.
    generation: u64,
}

/// One table of cached values keyed by the store's key bytes, bounded by a
/// total weight (an entry's weight is 1, or the number of values it holds).
pub struct Table<V> {
    shards: Vec<Mutex<Shard<V>>>,
    weight_max_per_shard: usize,
    /// Entries older than this are misses (none: kept until invalidated).
    max_age: Option<Duration>,
}

impl<V: Clone> Table<V> {
    /// A table holding at most `weight_max` (0: caches nothing).
    pub fn new(weight_max: usize) -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: FxHashMap::default(),
                        order: VecDeque::new(),
                        next_seq: 0,
                        weight: 0,
                        generation: 0,
                    })
                })
                .collect(),
            weight_max_per_shard: weight_max / SHARDS,
            max_age: None,
        }
    }

    /// A table whose entries are misses once older than `max_age`.
    pub fn with_max_age(weight_max: usize, max_age: Duration) -> Self {
        Table {
            max_age: Some(max_age),
            ..Table::new(weight_max)
        }
    }

    fn shard_index(key: &[u8]) -> usize {
        // FNV-1a: cheap, and keys are ids chosen by us, not by clients.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % SHARDS as u64) as usize
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard<V>> {
        // A panic while holding a shard leaves plain data behind: go on.
        self.shards[Self::shard_index(key)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every shard's ticket now, before scanning the store.
    pub fn tickets(&self) -> Tickets {
        let mut tickets = [0; SHARDS];
        for (ticket, shard) in tickets.iter_mut().zip(&self.shards) {
            *ticket = shard.lock().unwrap_or_else(|p| p.into_inner()).generation;
        }
        Tickets(tickets)
    }

    /// The ticket to fill `key` with, from a snapshot taken before the
    /// scan that read its value.
    pub fn ticket_of(tickets: &Tickets, key: &[u8]) -> Ticket {
        Ticket(tickets.0[Self::shard_index(key)])
    }

    /// The cached value, or the ticket to fill it with after reading the
    /// store.
    pub fn get(&self, key: &[u8]) -> Result<V, Ticket> {
        let mut shard = self.shard(key);
        match shard.map.get(key) {
            Some((v, _, _, at)) if self.max_age.is_none_or(|max| at.elapsed() <= max) => {
                return Ok(v.clone())
            }
            Some(_) => {
                // Too old: forgotten, so that the fill after this read
                // takes its place.
                if let Some((_, w, _, _)) = shard.map.remove(key) {
                    shard.weight -= w;
                }
            }
            None => {}
        }
        Err(Ticket(shard.generation))
    }

    /// Keeps `value` (read from the store after `ticket` was taken) unless
    /// the shard was invalidated since, or it weighs more than a shard holds.
    pub fn fill(&self, key: &[u8], ticket: Ticket, value: V, weight: usize) {
        if weight > self.weight_max_per_shard {
            return;
        }
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        if shard.generation != ticket.0 || shard.map.contains_key(key) {
            return;
        }
        while shard.weight + weight > self.weight_max_per_shard {
            let Some((old, seq)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&old).is_some_and(|e| e.2 == seq) {
                if let Some((_, w, _, _)) = shard.map.remove(&old) {
                    shard.weight -= w;
                }
            }
        }
        let key: Box<[u8]> = key.into();
        let seq = shard.next_seq;
        shard.next_seq += 1;
        shard.order.push_back((key.clone(), seq));
        shard.map.insert(key, (value, weight, seq, Instant::now()));
        shard.weight += weight;
        if shard.order.len() > 2 * shard.map.len() + SHARDS {
            let map = &shard.map;
            shard
                .order
                .retain(|(k, seq)| map.get(k).is_some_and(|e| e.2 == *seq));
        }
    }

    /// Forgets `key` and refuses fills begun before now (called by the
    /// backend for every key a commit wrote, after applying it).
    pub fn invalidate(&self, key: &[u8]) {
        let mut shard = self.shard(key);
        shard.generation = shard.generation.wrapping_add(1);
        if let Some((_, w, _, _)) = shard.map.remove(key) {
            shard.weight -= w;
        }
    }

    /// Forgets everything (a restore, or announcements that may have been
    /// missed).
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.generation = shard.generation.wrapping_add(1);
            shard.map.clear();
            shard.order.clear();
            shard.weight = 0;
        }
    }

    /// Entries and total weight.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, w), shard| {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            (n + shard.map.len(), w + shard.weight)
        })
    }
}

/// Member lists longer than this are read from the store page by page.
pub const MEMBER_LIST_CACHED_MAX: usize = 200;

/// The cached tables of a store: decoded accounts, members, sessions, and
/// small accounts' whole member lists.
pub struct ReadCache {
    pub accounts: Table<Arc<Account>>,
    /// Shared, so that a page of a long team list takes its members from
    /// here without copying them ([`ReadCache::users_scanned`]).
    pub users: Table<Arc<User>>,
    pub sessions: Table<Arc<Session>>,
    /// An account's whole member list, when it has at most
    /// [`MEMBER_LIST_CACHED_MAX`] members, weighing its length.
    pub members: Table<Option<Arc<Vec<Arc<User>>>>>,
}

impl ReadCache {
    /// Tables of at most `entries_max` values each; entries older than
    /// `max_age` (when given) are misses.
    pub fn new(entries_max: usize, max_age: Option<Duration>) -> Self {
        fn table<V: Clone>(n: usize, max_age: Option<Duration>) -> Table<V> {
            match max_age {
                Some(age) => Table::with_max_age(n, age),
                None => Table::new(n),
            }
        }
        ReadCache {
            accounts: table(entries_max, max_age),
            users: table(entries_max, max_age),
            sessions: table(entries_max, max_age),
            members: table(entries_max, max_age),
        }
    }

    /// Whether values of `kind` are cached (a commit that writes one must
    /// invalidate it).
    pub fn caches(kind: Kind) -> bool {
        matches!(kind, Kind::Accounts | Kind::Sessions | Kind::Users)
    }

    /// Forgets a key a commit wrote (a member also forgets its account's
    /// list).
    pub fn invalidate(&self, kind: Kind, key: &[u8]) {
        match kind {
            Kind::Accounts => self.accounts.invalidate(key),
            Kind::Sessions => self.sessions.invalidate(key),
            Kind::Users => {
                self.users.invalidate(key);
                let account = key.split(|b| *b == 0).next().unwrap_or(key);
                self.members.invalidate(account);
            }
            _ => {}
        }
    }

    pub fn clear(&self) {
        self.accounts.clear();
        self.users.clear();
        self.sessions.clear();
        self.members.clear();
    }

    /// A value of `table`: cached, else `read` and kept.
    pub fn value<V: Clone, E>(
        table: &Table<V>,
        key: &[u8],
        read: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        match table.get(key) {
            Ok(v) => Ok(Some(v)),
            Err(ticket) => {
                let v = read()?;
                if let Some(v) = &v {
                    table.fill(key, ticket, v.clone(), 1);
                }
                Ok(v)
            }
        }
    }

    /// A page of members scanned from the store (a long list: its whole is
    /// not cached): `scan` visits each row's key and value in order and
    /// stops when `keep` says so; a member cached in `users` is taken from
    /// there, any other is decoded and kept (unless a commit invalidated
    /// its shard since the scan began). Only a page a person reads is kept
    /// (at most a page of the API, 200, and the one that tells whether
    /// more follow): the scans that read a whole team 500 at a time
    /// (exports, searches, candidates) would push out what people read.
    pub fn users_scanned<E>(
        &self,
        limit: usize,
        scan: impl FnOnce(RowSink<'_, E>) -> Result<(), E>,
        decode: impl Fn(&[u8]) -> Result<User, E>,
    ) -> Result<Vec<Arc<User>>, E> {
        let mut out = Vec::with_capacity(limit.min(MEMBER_LIST_CACHED_MAX));
        if limit == 0 {
            return Ok(out);
        }
        let keep = limit <= MEMBER_LIST_CACHED_MAX + 1;
        let tickets = self.users.tickets();
        scan(&mut |key, value| {
            let user = match self.users.get(key) {
                Ok(user) => user,
                Err(_) => {
                    let user = Arc::new(decode(value)?);
                    if keep {
                        let ticket = Table::<Arc<User>>::ticket_of(&tickets, key);
                        self.users.fill(key, ticket, user.clone(), 1);
                    }
                    user
                }
            };
            out.push(user);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// A page of an account's members: from its cached whole list when it
    /// is short (`long`: its member count says it is not), else `uncached`
    /// (`after`, `limit`) from the store.
    pub fn members<E>(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
        long: bool,
        uncached: impl Fn(Option<&str>, usize) -> Result<Vec<User>, E>,
    ) -> Result<Vec<Arc<User>>, E> {
        let shared = |users: Vec<User>| users.into_iter().map(Arc::new).collect();
        if long {
            return uncached(after, limit).map(shared);
        }
        let list = match self.members.get(account_id.as_bytes()) {
            Ok(list) => list,
            Err(ticket) => {
                let all = uncached(None, MEMBER_LIST_CACHED_MAX + 1)?;
                // Longer than its count said (a race with a commit): not kept.
                let list = (all.len() <= MEMBER_LIST_CACHED_MAX).then(|| Arc::new(shared(all)));
                if let Some(l) = &list {
                    let weight = l.len().max(1);
                    self.members
                        .fill(account_id.as_bytes(), ticket, Some(l.clone()), weight);
                }
                list
            }
        };
        let Some(list) = list else {
            return uncached(after, limit).map(shared);
        };
        // The list is in key order, which is id order.
        let start = match after {
            Some(a) => list.partition_point(|u| u.id.as_str() <= a),
            None => 0,
        };
        Ok(list[start..].iter().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let t = Table::<u32>::new(1600);
        let ticket = t.get(b"k").unwrap_err();
        // The writer commits and invalidates while the reader reads.
        t.invalidate(b"k");
        t.fill(b"k", ticket, 1, 1);
        assert!(t.get(b"k").is_err(), "a stale value was cached");
        let ticket = t.get(b"k").unwrap_err();
        t.fill(b"k", ticket, 2, 1);
        assert_eq!(t.get(b"k").ok(), Some(2));
        t.invalidate(b"k");
        assert!(t.get(b"k").is_err());
    }

    #[test]
    fn an_entry_older_than_its_max_age_is_a_miss_and_filled_again() {
        let t = Table::<u32>::with_max_age(1600, Duration::from_millis(20));
        let ticket = t.get(b"k").unwrap_err();
        t.fill(b"k", ticket, 1, 1);
        assert_eq!(t.get(b"k").ok(), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        let ticket = t.get(b"k").expect_err("an entry past its age is a miss");
        t.fill(b"k", ticket, 2, 1);
        assert_eq!(t.get(b"k").ok(), Some(2), "the fill after the miss is kept");
        assert_eq!(t.size(), (1, 1));
    }

    #[test]
    fn a_key_filled_and_invalidated_over_and_over_keeps_the_queue_short() {
        let t = Table::<u32>::new(1600);
        for i in 0..100_000u32 {
            let ticket = t.get(b"hot").unwrap_err();
            t.fill(b"hot", ticket, i, 1);
            t.invalidate(b"hot");
        }
        let ticket = t.get(b"hot").unwrap_err();
        t.fill(b"hot", ticket, 1, 1);
        for shard in &t.shards {
            let shard = shard.lock().unwrap();
            assert!(
                shard.order.len() <= 2 * shard.map.len() + SHARDS + 1,
                "{}",
                shard.order.len()
            );
        }
    }

    #[test]
    fn the_table_stays_within_its_weight() {
        let t = Table::<u32>::new(16 * 10);
        for i in 0..10_000u32 {
            let key = i.to_be_bytes();
            let ticket = t.get(&key).unwrap_err();
            t.fill(&key, ticket, i, 1 + (i as usize % 3));
            if i % 7 == 0 {
                t.invalidate(&key);
            }
        }
        let (entries, weight) = t.size();
        assert!(weight <= 160, "weight {weight}");
        assert!(entries > 0);
        for shard in &t.shards {
            let shard = shard.lock().unwrap();
            assert!(shard.order.len() <= 2 * shard.map.len() + SHARDS + 1);
        }
        // Heavier than a shard holds: never cached.
        let ticket = t.get(b"big").unwrap_err();
        t.fill(b"big", ticket, 0, 11);
        assert!(t.get(b"big").is_err());
        let none = Table::<u32>::new(0);
        let ticket = none.get(b"k").unwrap_err();
        none.fill(b"k", ticket, 1, 1);
        assert!(none.get(b"k").is_err(), "a zero-sized cache keeps nothing");
    }

    fn user_named(name: &[u8]) -> User {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        User {
            id: String::from_utf8_lossy(name).into_owned(),
            account_id: "acc".into(),
            name: String::from_utf8_lossy(name).into_owned(),
            emails: Vec::new(),
            password_hash: None,
            support_role: crate::domain::SupportRole::Agent,
            sell_role: crate::domain::SellRole::None,
            signed_in_before: false,
            created_at: at,
            deactivated_at: None,
            external_id: None,
            user_name: None,
            primary_requested: None,
            modified_at: None,
            last_signed_in_at: None,
        }
    }

    /// A page of a long team list takes its members from the user cache,
    /// fills it with what it decoded, never with a value a commit replaced
    /// while the scan ran, and a whole-team scan fills nothing.
    #[test]
    fn r07_a_long_lists_page_shares_the_user_cache_and_never_fills_it_stale() {
        let cache = ReadCache::new(1600, None);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = (1..=3)
            .map(|n| {
                (
                    format!("acc\0u{n}").into_bytes(),
                    format!("u{n}").into_bytes(),
                )
            })
            .collect();
        let decoded = std::cell::Cell::new(0);
        let decode = |bytes: &[u8]| {
            decoded.set(decoded.get() + 1);
            Ok::<_, ()>(user_named(bytes))
        };
        // A commit replaces u2 after the scan has begun, before u2 is read.
        let scan = |commit_during: bool| {
            let rows = &rows;
            let cache = &cache;
            move |each: RowSink<'_, ()>| {
                for (i, (k, v)) in rows.iter().enumerate() {
                    if commit_during && i == 1 {
                        cache.invalidate(Kind::Users, b"acc\0u2");
                    }
                    if !each(k, v)? {
                        break;
                    }
                }
                Ok(())
            }
        };

        // A whole-team scan (500 at a time) keeps nothing.
        cache
            .users_scanned(500, scan(false), decode)
            .unwrap_or_default();
        assert_eq!(decoded.get(), 3);
        assert!(
            cache.users.get(b"acc\0u1").is_err(),
            "a whole-team scan filled the cache"
        );

        // A page keeps what it decoded, except u2, replaced during the scan.
        let first = cache
            .users_scanned(3, scan(true), decode)
            .unwrap_or_default();
        assert_eq!(decoded.get(), 6);
        assert_eq!(first.len(), 3);
        assert!(cache.users.get(b"acc\0u1").is_ok());
        assert!(
            cache.users.get(b"acc\0u2").is_err(),
            "a value read before a commit was kept"
        );

        // The next page decodes only u2 and shares the others.
        let second = cache
            .users_scanned(3, scan(false), decode)
            .unwrap_or_default();
        assert_eq!(decoded.get(), 7);
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        assert_eq!(
            second.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["u1", "u2", "u3"]
        );

        // A limit stops the scan.
        assert_eq!(
            cache
                .users_scanned(2, scan(false), decode)
                .unwrap_or_default()
                .len(),
            2
        );
    }
}
