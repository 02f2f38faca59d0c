//! Attempt limits: a fixed one-minute window per key, in memory, bounded.
//!
//! Keys are hashed (SipHash with a per-process random key) to a `u64`, so a
//! key costs the same few bytes however long the text a client sent.
//! The table holds at most `keys_max` keys. When it is full, a sweep drops
//! expired windows and then windows that are not locked out (a partial
//! count); **a live lock-out is never dropped early**. If live lock-outs
//! alone fill the table, new keys are refused until the earliest one ends
//! (fail closed), and no sweep runs before then, so a full table costs no
//! CPU per request.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

struct Table {
    windows: HashMap<u64, Window>,
    /// After a sweep that freed nothing: no new key until then.
    full_until: Option<Instant>,
}

pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    keys_max: usize,
    hasher: std::collections::hash_map::RandomState,
    table: Mutex<Table>,
}

impl RateLimiter {
    pub fn new(per_window: u32, keys_max: usize) -> Self {
        Self::with_window(per_window, WINDOW, keys_max)
    }

    /// A limiter counting in windows of `window` instead of a minute.
    pub fn with_window(per_window: u32, window: Duration, keys_max: usize) -> Self {
        RateLimiter {
            per_window,
            window,
            keys_max: keys_max.max(1),
            hasher: Default::default(),
            table: Mutex::new(Table {
                windows: HashMap::new(),
                full_until: None,
            }),
        }
    }

    fn key(&self, parts: &[&str]) -> u64 {
        self.hasher.hash_one(parts)
    }

    /// Counts an attempt under `key`; `Err(seconds)` says how long until
    /// the next is allowed.
    pub fn check(&self, key: &[&str]) -> Result<(), u64> {
        self.apply(key, true)
    }

    /// Whether `key` is locked out now, without counting an attempt.
    pub fn peek(&self, key: &[&str]) -> Result<(), u64> {
        self.apply(key, false)
    }

    fn apply(&self, key: &[&str], count: bool) -> Result<(), u64> {
        let key = self.key(key);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.windows.contains_key(&key) {
            if !count {
                return Ok(());
            }
            if table.windows.len() >= self.keys_max {
                if let Some(until) = table.full_until {
                    if now < until {
                        return Err(secs(until - now));
                    }
                }
                self.sweep(&mut table, now);
                if table.windows.len() >= self.keys_max {
                    // Only live lock-outs are left: wait for the first to end.
                    let first_end = table
                        .windows
                        .values()
                        .map(|w| w.start + self.window)
                        .min()
                        .unwrap_or(now + self.window);
                    table.full_until = Some(first_end);
                    return Err(secs(first_end.saturating_duration_since(now)));
                }
            }
        }
        let per_window = self.per_window;
        let window = table.windows.entry(key).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(window.start) >= self.window {
            *window = Window {
                start: now,
                count: 0,
            };
        }
        if window.count >= per_window {
            return Err(secs(
                self.window.saturating_sub(now.duration_since(window.start)),
            ));
        }
        if count {
            window.count += 1;
        }
        Ok(())
    }

    fn sweep(&self, table: &mut Table, now: Instant) {
        table
            .windows
            .retain(|_, w| now.duration_since(w.start) < self.window);
        if table.windows.len() >= self.keys_max {
            let per_window = self.per_window;
            table.windows.retain(|_, w| w.count >= per_window);
        }
        table.full_until = None;
    }

    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .windows
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_per_key() {
        let limiter = RateLimiter::new(2, 100);
        assert!(limiter.check(&["a"]).is_ok());
        assert!(limiter.check(&["a"]).is_ok());
        assert!(limiter.check(&["a"]).is_err());
        assert!(limiter.check(&["b"]).is_ok());
        assert!(limiter.peek(&["a"]).is_err());
        assert!(limiter.peek(&["c"]).is_ok());
        assert_eq!(limiter.len(), 2, "peeking adds no key");
    }

    #[test]
    fn a_full_table_never_forgets_a_live_lock_out() {
        let limiter = RateLimiter::new(3, 100);
        for _ in 0..3 {
            limiter.check(&["victim"]).unwrap();
        }
        assert!(limiter.check(&["victim"]).is_err());
        // Spray far more keys than the table holds.
        for n in 0..10_000 {
            let _ = limiter.check(&["spray", &n.to_string()]);
            assert!(limiter.len() <= 100);
        }
        assert!(limiter.check(&["victim"]).is_err(), "still locked out");
    }

    #[test]
    fn a_table_full_of_lock_outs_refuses_new_keys_without_sweeping_each_time() {
        let limiter = RateLimiter::new(1, 100);
        for n in 0..100 {
            limiter.check(&[&n.to_string()]).unwrap();
        }
        assert!(limiter.check(&["new"]).is_err());
        assert!(limiter.check(&["0"]).is_err());
        assert_eq!(limiter.len(), 100);
    }

    #[test]
    fn a_key_costs_the_same_whatever_its_length() {
        let limiter = RateLimiter::new(5, 1000);
        let long = "x".repeat(1 << 20);
        limiter.check(&[&long]).unwrap();
        assert_eq!(limiter.len(), 1);
    }
}
