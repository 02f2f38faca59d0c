//! The read cache of a PostgreSQL replica: the [`ReadCache`] sled has,
//! kept true across replicas by announcements.
//!
//! A replica invalidates what its own commits wrote right after each
//! COMMIT, as sled does, and hands those keys to its *announcer* thread,
//! which sends them (`NOTIFY admind_cache`, on a connection of its own,
//! never inside a command's transaction: a notification there would
//! serialize every commit behind it) batched, so that under load one
//! notification carries the keys of many commits. The commit waits until
//! its keys are sent (at most [`ANNOUNCE_WAIT_MAX`]) before it returns,
//! so a client that has its 2xx and asks another replica finds the
//! notification there already. Every replica's *listener* thread (`LISTEN
//! admind_cache`, its own connection) forgets the keys the others
//! announce as it hears them.
//!
//! What keeps it true when something is lost:
//! - the cache is read and filled only while the listener is connected
//!   and listening; it is emptied when it connects and when it fails;
//! - a read racing an invalidation cannot put a stale value back (the
//!   tickets of [`super::cache::Table`]);
//! - an entry older than the heartbeat (`store.heartbeat_ms`) is a miss, so
//!   a lost announcement (a replica killed between its COMMIT and its
//!   NOTIFY) is stale at most that long;
//! - more keys waiting than the announcer queue holds become one "forget
//!   everything";
//! - a replica starting (perhaps after being killed between a COMMIT and
//!   its announcement) first tells the others to forget everything.
//!
//! A command never reads the cache: it reads the database under its locks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::NoTls;

use super::backend::StoreError;
use super::cache::ReadCache;
use super::records::Kind;

/// The notification channel.
const CHANNEL: &str = "admind_cache";
/// A notification's payload, at most (PostgreSQL's limit is 8,000 bytes).
const PAYLOAD_MAX: usize = 7_000;
/// Keys waiting for the announcer, at most; past it, the next
/// announcement tells the others to forget everything.
const WAITING_KEYS_MAX: usize = 65_536;
/// How long a commit waits for its keys to be announced, at most (while
/// the announcer is failing, it does not wait).
pub const ANNOUNCE_WAIT_MAX: Duration = Duration::from_millis(250);
/// Notifications one announcement sends at most; more keys than fit are
/// announced as "forget everything".
const NOTIFICATIONS_PER_ROUND_MAX: usize = 16;
/// How often the listener looks whether its store is still open.
const LISTEN_POLL: Duration = Duration::from_secs(1);
/// Wait before connecting again after a failure.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// The keys one commit wrote, of the kinds the cache holds.
pub type Touched = Vec<(Kind, Vec<u8>)>;

/// A replica's cache and the keys it has to announce.
pub struct SharedCache {
    pub tables: ReadCache,
    /// Whether the listener hears the other replicas now: only then is the
    /// cache read or filled.
    live: AtomicBool,
    /// This replica's tag in announcements (it skips its own).
    me: String,
    outbox: Mutex<Outbox>,
    /// Wakes the announcer.
    to_announce: Condvar,
    /// Wakes the commits waiting for their announcement.
    announced: Condvar,
    /// Whether the last announcement went out (commits wait only then).
    announcer_ok: AtomicBool,
}

/// What waits for the announcer.
#[derive(Default)]
struct Outbox {
    keys: Touched,
    /// More keys than [`WAITING_KEYS_MAX`] arrived: announce "forget
    /// everything".
    overflowed: bool,
    /// Commits handed over so far, and how many of them are announced.
    queued: u64,
    sent: u64,
}

impl SharedCache {
    /// A cache of `entries_max` values per table whose entries are misses
    /// after `max_age`, with its listener and announcer running on
    /// connections of their own (made from `config`) until the returned
    /// cache is dropped.
    pub fn start(
        config: &postgres::Config,
        entries_max: usize,
        max_age: Duration,
    ) -> Result<Arc<SharedCache>, StoreError> {
        use rand::RngCore;
        let mut tag = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut tag);
        let cache = Arc::new(SharedCache {
            tables: ReadCache::new(entries_max, Some(max_age)),
            live: AtomicBool::new(false),
            me: hex::encode(tag),
            outbox: Mutex::new(Outbox::default()),
            to_announce: Condvar::new(),
            announced: Condvar::new(),
            announcer_ok: AtomicBool::new(true),
        });
        let weak = Arc::downgrade(&cache);
        let listen_config = config.clone();
        std::thread::Builder::new()
            .name("admind-cache-listen".into())
            .spawn(move || listen(listen_config, weak))?;
        // A replica starting may be one that was killed between a COMMIT
        // and its announcement: the others forget everything they cached
        // (before this one serves anything).
        let mut client = match announcer_connect(config) {
            Ok(mut c) => {
                if let Err(e) = notify(&mut c, &cache.payloads(&[], true)) {
                    tracing::warn!(error = %StoreError::from(e), "telling the other replicas to forget their caches failed");
                }
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %StoreError::from(e), "connecting to announce changes to the other replicas failed");
                None
            }
        };
        let weak = Arc::downgrade(&cache);
        let announce_config = config.clone();
        std::thread::Builder::new()
            .name("admind-cache-announce".into())
            .spawn(move || announce_loop(announce_config, weak, client.take()))?;
        Ok(cache)
    }

    /// Whether reads may use the cache now.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // Plain data: a panic elsewhere leaves it usable.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a COMMIT (or a failed one, whose outcome is unknown): forgets
    /// what it wrote here, hands it to the announcer and waits until the
    /// other replicas have been told (see the module doc).
    pub fn committed(&self, touched: Touched) {
        if touched.is_empty() {
            return;
        }
        for (kind, key) in &touched {
            self.tables.invalidate(*kind, key);
        }
        let mut outbox = self.outbox();
        if outbox.keys.len() + touched.len() > WAITING_KEYS_MAX {
            outbox.overflowed = true;
            outbox.keys.clear();
        } else {
            outbox.keys.extend(touched);
        }
        outbox.queued += 1;
        let mine = outbox.queued;
        self.to_announce.notify_one();
        let deadline = Instant::now() + ANNOUNCE_WAIT_MAX;
        while outbox.sent < mine && self.announcer_ok.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            outbox = self
                .announced
                .wait_timeout(outbox, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn went_deaf(&self) {
        self.live.store(false, Ordering::Release);
        self.tables.clear();
    }

    /// What another replica announced: `<tag> *` or `<tag> k:hex k:hex …`.
    fn heard(&self, payload: &str) {
        let mut words = payload.split(' ');
        if words.next() == Some(self.me.as_str()) {
            return;
        }
        for word in words {
            let Some((kind, key)) = word.split_once(':').map(|(k, v)| (k, hex::decode(v))) else {
                if word == "*" {
                    self.tables.clear();
                }
                continue;
            };
            let kind = match kind {
                "a" => Kind::Accounts,
                "u" => Kind::Users,
                "s" => Kind::Sessions,
                _ => continue,
            };
            match key {
                Ok(key) => self.tables.invalidate(kind, &key),
                // Not ours to read: forget everything rather than guess.
                Err(_) => self.tables.clear(),
            }
        }
    }

    /// The notifications that announce `keys` (one "forget everything"
    /// when there are too many).
    fn payloads(&self, keys: &[(Kind, Vec<u8>)], everything: bool) -> Vec<String> {
        let forget_all = vec![format!("{} *", self.me)];
        if everything {
            return forget_all;
        }
        let mut out: Vec<String> = Vec::new();
        let mut current = self.me.clone();
        for (kind, key) in keys {
            let code = match kind {
                Kind::Accounts => "a",
                Kind::Users => "u",
                Kind::Sessions => "s",
                _ => continue,
            };
            let word = format!(" {code}:{}", hex::encode(key));
            if current.len() + word.len() > PAYLOAD_MAX {
                out.push(std::mem::replace(&mut current, self.me.clone()));
                if out.len() >= NOTIFICATIONS_PER_ROUND_MAX {
                    return forget_all;
                }
            }
            current.push_str(&word);
        }
        if current.len() > self.me.len() {
            out.push(current);
        }
        out
    }
}

/// The announcer's connection. Its transactions commit without waiting
/// for the WAL to reach the disk: a `NOTIFY` takes a transaction id, so
/// each announcement was a commit flushed like a command's, one more
/// WAL sync per batch, for a transaction that writes nothing and whose
/// notifications no crash of the database keeps anyway. Listeners hear
/// it at its commit, flushed or not.
fn announcer_connect(config: &postgres::Config) -> Result<postgres::Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute("SET synchronous_commit = off")?;
    Ok(client)
}

/// Sends `payloads` on the channel, in one statement.
fn notify(client: &mut postgres::Client, payloads: &[String]) -> Result<u64, postgres::Error> {
    client.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&CHANNEL, &payloads],
    )
}

/// Hears the other replicas until the cache is dropped.
fn listen(config: postgres::Config, cache: Weak<SharedCache>) {
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        match config.connect(NoTls) {
            Ok(mut client) => match client.batch_execute(&format!("LISTEN {CHANNEL}")) {
                Ok(()) => {
                    // Whatever was announced before now was not heard.
                    if let Some(shared) = cache.upgrade() {
                        shared.tables.clear();
                        shared.live.store(true, Ordering::Release);
                    }
                    let mut notifications = client.notifications();
                    loop {
                        // A new wait each time: the postgres crate's timeout
                        // restarts only when a notification comes, so one
                        // iterator kept across a quiet second answered "none"
                        // at once ever after, and an idle replica spun a core.
                        match notifications.timeout_iter(LISTEN_POLL).next() {
                            Ok(Some(n)) => match cache.upgrade() {
                                Some(shared) => shared.heard(n.payload()),
                                None => return,
                            },
                            Ok(None) if cache.strong_count() == 0 => return,
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %StoreError::from(e), "the cache's announcement connection failed; the cache is off until it is open again");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %StoreError::from(e), "listening for the other replicas' changes failed");
                }
            },
            Err(e) => {
                tracing::warn!(error = %StoreError::from(e), "connecting to hear the other replicas' changes failed; trying again");
            }
        }
        match cache.upgrade() {
            Some(shared) => shared.went_deaf(),
            None => return,
        }
        std::thread::sleep(RECONNECT_WAIT);
    }
}

/// Sends what this replica's commits wrote, batched, until the store is
/// dropped.
fn announce_loop(
    config: postgres::Config,
    cache: Weak<SharedCache>,
    mut client: Option<postgres::Client>,
) {
    loop {
        let Some(shared) = cache.upgrade() else {
            return;
        };
        let (keys, everything, upto) = {
            let mut outbox = shared.outbox();
            if outbox.sent == outbox.queued {
                // Nothing to send: wait, and look again whether the store
                // is still open.
                let _ = shared.to_announce.wait_timeout(outbox, LISTEN_POLL);
                continue;
            }
            let keys = std::mem::take(&mut outbox.keys);
            let everything = std::mem::take(&mut outbox.overflowed);
            (keys, everything, outbox.queued)
        };
        let payloads = shared.payloads(&keys, everything);
        // Once more on a new connection if the old one failed; then the
        // others' entries age out (`max_age`).
        let mut ok = payloads.is_empty();
        for _ in 0..2 {
            if ok {
                break;
            }
            if client.is_none() {
                match announcer_connect(&config) {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %StoreError::from(e), "connecting to announce changes to the other replicas failed");
                        continue;
                    }
                }
            }
            if let Some(c) = client.as_mut() {
                match notify(c, &payloads) {
                    Ok(_) => ok = true,
                    Err(e) => {
                        tracing::warn!(error = %StoreError::from(e), "announcing changes to the other replicas failed");
                        client = None;
                    }
                }
            }
        }
        shared.announcer_ok.store(ok, Ordering::Release);
        let mut outbox = shared.outbox();
        outbox.sent = outbox.sent.max(upto);
        shared.announced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(me: &str) -> SharedCache {
        SharedCache {
            tables: ReadCache::new(1_000, None),
            live: AtomicBool::new(true),
            me: me.into(),
            outbox: Mutex::new(Outbox::default()),
            to_announce: Condvar::new(),
            announced: Condvar::new(),
            announcer_ok: AtomicBool::new(true),
        }
    }

    /// Caches account `acc_1`'s member list (as `None`: the value does not
    /// matter here) and says whether it is still cached after `payload`.
    fn kept_after(c: &SharedCache, payload: &str) -> bool {
        c.tables.members.invalidate(b"acc_1");
        let ticket = c.tables.members.get(b"acc_1").unwrap_err();
        c.tables.members.fill(b"acc_1", ticket, None, 1);
        c.heard(payload);
        c.tables.members.get(b"acc_1").is_ok()
    }

    #[test]
    fn announced_keys_are_forgotten_by_the_others_and_too_many_become_forget_everything() {
        let (a, b) = (cache("a"), cache("b"));
        let keys: Touched = vec![
            (Kind::Accounts, b"acc_9".to_vec()),
            (Kind::Users, b"acc_1\0usr_2".to_vec()),
            (Kind::Sessions, b"hash".to_vec()),
            (Kind::Audit, b"not cached".to_vec()),
        ];
        let payloads = a.payloads(&keys, false);
        assert_eq!(payloads.len(), 1);
        assert!(!payloads[0].contains('\0') && !payloads[0].contains("not"));
        assert!(
            !kept_after(&b, &payloads[0]),
            "a member's change forgets the account's list"
        );
        assert!(
            kept_after(&a, &payloads[0]),
            "a replica skips its own announcements"
        );
        assert!(kept_after(&b, "a a:6163635f39"), "another account's change");
        assert!(!kept_after(&b, "a *"));
        assert!(
            !kept_after(&b, "a u:zz"),
            "an unreadable key forgets everything"
        );
        // Far more keys than a round sends: one "forget everything".
        let many: Touched = (0..10_000)
            .map(|i| (Kind::Sessions, format!("session-hash-{i:040}").into_bytes()))
            .collect();
        assert_eq!(a.payloads(&many, false), vec!["a *".to_string()]);
        assert_eq!(a.payloads(&keys, true), vec!["a *".to_string()]);
        // A few notifications' worth: each within PostgreSQL's limit.
        let payloads = a.payloads(&many[..200], false);
        assert!(payloads.len() > 1 && payloads.iter().all(|p| p.len() <= PAYLOAD_MAX));
    }
}
