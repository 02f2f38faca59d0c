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
//! A store that other processes write too (PostgreSQL replicas) does not
//! use this cache at all: a replica cannot see another's commits, and
//! asking the database whether a cached value is current costs the round
//! trip the cache would save.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Values each cached table holds at most unless configured
/// (`[store] cache_entries_max`).
pub const CACHE_ENTRIES_MAX_DEFAULT: usize = 20_000;

/// Shards per table: a lock per shard, so readers on two cores rarely meet.
const SHARDS: usize = 16;

/// What a miss hands back: fill with it, and the fill is dropped if the
/// shard was invalidated in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

struct Shard<V> {
    /// Value, weight, and the sequence number of its insertion.
    map: HashMap<Box<[u8]>, (V, usize, u64)>,
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
}

impl<V: Clone> Table<V> {
    /// A table holding at most `weight_max` (0: caches nothing).
    pub fn new(weight_max: usize) -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                        next_seq: 0,
                        weight: 0,
                        generation: 0,
                    })
                })
                .collect(),
            weight_max_per_shard: weight_max / SHARDS,
        }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard<V>> {
        // FNV-1a: cheap, and keys are ids chosen by us, not by clients.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let n = (h % SHARDS as u64) as usize;
        // A panic while holding a shard leaves plain data behind: go on.
        self.shards[n]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached value, or the ticket to fill it with after reading the
    /// store.
    pub fn get(&self, key: &[u8]) -> Result<V, Ticket> {
        let shard = self.shard(key);
        match shard.map.get(key) {
            Some((v, _, _)) => Ok(v.clone()),
            None => Err(Ticket(shard.generation)),
        }
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
                if let Some((_, w, _)) = shard.map.remove(&old) {
                    shard.weight -= w;
                }
            }
        }
        let key: Box<[u8]> = key.into();
        let seq = shard.next_seq;
        shard.next_seq += 1;
        shard.order.push_back((key.clone(), seq));
        shard.map.insert(key, (value, weight, seq));
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
        if let Some((_, w, _)) = shard.map.remove(key) {
            shard.weight -= w;
        }
    }

    /// Forgets everything (a restore).
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
}
