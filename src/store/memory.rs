//! The memory backend: every kind of record in an ordered map of bytes,
//! nothing durable. It is a key-value store like sled and shares all of
//! its record handling ([`super::kv`], [`super::records`]), so the
//! writer, the queues and the core run on it unchanged: the proof that
//! nothing above the store needs sled, and a fast store for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use super::backend::{forward_state_view, About, Backend, StoreError, Transaction};
use super::kv::{self, Kv, KvState};
use super::records::{self, Kind, Row, SPECS};
use super::records::{Order, RowVisit, Write};
use crate::domain::*;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The memory backend (see the module's documentation).
pub struct MemoryBackend {
    /// One map per kind, in [`Kind`] order.
    maps: RwLock<Vec<Map>>,
    last_id: AtomicU64,
    installation_id: String,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            maps: RwLock::new(vec![Map::new(); SPECS.len()]),
            last_id: AtomicU64::new(0),
            installation_id: "0".repeat(32),
        }
    }
}

impl MemoryBackend {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Map>> {
        // A panic while holding the lock leaves maps that are still whole
        // (every write is one insert or remove), so poisoning is ignored.
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self) -> Result<u64, StoreError> {
        Ok(self.last_id.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Applies rows under one write lock: readers see all of them or none.
    fn apply(&self, rows: Vec<Row>) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        for Row { kind, key, value } in rows {
            let map = &mut maps[kind as usize];
            match value {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
    }
}

impl Kv for MemoryBackend {
    fn kv_get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()[kind as usize].get(key).cloned())
    }

    fn kv_scan(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError> {
        // Copied out a page at a time, so `each` may take as long as it
        // likes (and read the store) without the lock.
        const PAGE: usize = 256;
        let end = records::prefix_end(prefix);
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let lower = match (order, &cursor) {
                (Order::OldestFirst, None) => Bound::Included(from.max(prefix).to_vec()),
                (Order::OldestFirst, Some(c)) => Bound::Excluded(c.clone()),
                (Order::NewestFirst, _) => Bound::Included(prefix.to_vec()),
            };
            let upper = match (order, &cursor) {
                (Order::NewestFirst, Some(c)) => Bound::Excluded(c.clone()),
                (Order::NewestFirst, None)
                    if from.len() > prefix.len() && from.starts_with(prefix) =>
                {
                    Bound::Excluded(from.to_vec())
                }
                _ => end.clone().map_or(Bound::Unbounded, Bound::Excluded),
            };
            if !records::bounds_ordered(&lower, &upper) {
                return Ok(());
            }
            let page: Vec<(Vec<u8>, Vec<u8>)> = {
                let maps = self.read();
                let rows = maps[kind as usize].range((lower, upper));
                let copy = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
                match order {
                    Order::OldestFirst => rows.take(PAGE).map(copy).collect(),
                    Order::NewestFirst => rows.rev().take(PAGE).map(copy).collect(),
                }
            };
            for (k, v) in &page {
                if !each(k, v)? {
                    return Ok(());
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => cursor = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }
}

forward_state_view!(MemoryBackend, self => KvState(self));

impl Backend for MemoryBackend {
    fn about(&self) -> About<'_> {
        About {
            kind: "memory",
            installation_id: &self.installation_id,
            shared: false,
            writer_threads: 1,
            groups_commits: false,
        }
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.id()
    }

    fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let (rows, restored_id_max) = kv::rows_of_transaction(self, &mut || self.id(), tx)?;
        self.last_id.fetch_max(restored_id_max, Ordering::AcqRel);
        self.apply(rows);
        Ok(())
    }

    /// Nothing is on disk; everything committed counts as durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn durable_id(&self) -> u64 {
        u64::MAX
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
        Ok(self.read()[kind as usize].len())
    }

    fn expired(
        &self,
        kind: Kind,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        kv::expired(self, kind, cutoff, max)
    }
}
