//! The record of hook calls and of policy versions.
//!
//! Versions: every version of a policy ever loaded (a script's source and
//! hash; a plugin's name, crate version and settings hash), kept once per
//! name and version, so that every version an audit entry or a record
//! names resolves to its source.
//!
//! Calls: for each call of a hook that at least one
//! policy handled, the event as the policies saw it, what each policy
//! decided (enforced and shadow), the outcome and the time it took. Replay
//! runs drafts against it.
//!
//! Recording never slows or fails a decision: a call's record goes into a
//! bounded channel (full: dropped and counted), and a task appends records
//! in batches beside the writer (`Backend::append`: no transaction),
//! durable with its next flush. A batch's calls are stored as pages, one
//! row of up to [`PAGE_MAX`] calls keyed by its first call's id (a row per
//! call cost a fifth of the transfers a policy sees, in sled's per-row
//! inserts); rows written before pages hold one call, and are read as a
//! page of one. Kept by age and count
//! (`[policy_record]`), pruned every minute. The records hold names and
//! addresses (the events carry them).

use std::sync::Arc;
use std::time::Duration;

use admind_plugin_api::Action;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{Order, QueueName, Store, StoreError, Write};

/// Records waiting to be appended, at most.
pub const CHANNEL_MAX: usize = 4096;
/// Records appended in one go, at most.
const BATCH_MAX: usize = 1024;
/// Calls stored in one row, at most (~780 bytes each as JSON).
pub const PAGE_MAX: usize = 256;
/// Records gather this long before they are appended: few, large batches
/// cost least (one spawn, one id round trip on PostgreSQL).
const GATHER: Duration = Duration::from_millis(200);

/// Retention of the record (`[policy_record]` in the config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Off: nothing is recorded (and replay has nothing to run on).
    pub enabled: bool,
    /// Records older than this are forgotten.
    pub keep_days: u32,
    /// At most this many records are kept (the oldest go first).
    pub keep_max: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            enabled: true,
            keep_days: 7,
            keep_max: 100_000,
        }
    }
}

/// What one policy decided in a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub policy: String,
    pub kind: String,
    pub version: String,
    /// Run beside the enforced set, never enforced.
    #[serde(default)]
    pub shadow: bool,
    pub denied: Option<String>,
    pub actions: Vec<Action>,
    pub error: Option<String>,
    pub duration_us: u64,
}

/// One recorded hook call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookCall {
    /// Set when appended; a page is stored under its first call's id.
    #[serde(default)]
    pub id: u64,
    pub at: DateTime<Utc>,
    pub hook: String,
    pub account_id: Option<String>,
    /// The event as the policies saw it.
    pub event: serde_json::Value,
    /// The enforced outcome: `allow` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    /// Actions of the enforced policies (carried out for after-hooks).
    pub actions: Vec<Action>,
    pub policies: Vec<PolicyDecision>,
    pub duration_us: u64,
}

/// A policy version as loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// As `GET /v1/policies` names it.
    pub name: String,
    /// `script` or `plugin`.
    pub kind: String,
    /// A script's content hash; a plugin's `name@crate version`.
    pub version: String,
    /// A script's source.
    pub source: Option<String>,
    /// A plugin's settings, hashed (SHA-256, hex).
    pub settings_hash: Option<String>,
    /// When it was last loaded.
    pub loaded_at: DateTime<Utc>,
}

/// The key of a version: the same on every replica, below `i64::MAX`.
pub fn version_key(name: &str, version: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{name}\0{version}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 2
}

/// Versions scanned for one policy's list, at most.
pub const VERSIONS_SCAN_MAX: usize = 100_000;

/// The versions of a policy, newest load first.
pub fn versions(store: &Store, name: &str) -> Result<Vec<PolicyVersion>, StoreError> {
    let mut out: Vec<PolicyVersion> = Vec::new();
    let mut seen = 0;
    store.queue_scan(
        QueueName::PolicyVersions,
        Order::OldestFirst,
        &mut |_, bytes| {
            seen += 1;
            let v: PolicyVersion = crate::store::codec::decode(bytes)?;
            if v.name == name {
                out.push(v);
            }
            Ok(seen < VERSIONS_SCAN_MAX)
        },
    )?;
    out.sort_by_key(|v| std::cmp::Reverse(v.loaded_at));
    Ok(out)
}

/// One version of a policy, with its source.
pub fn version(
    store: &Store,
    name: &str,
    version: &str,
) -> Result<Option<PolicyVersion>, StoreError> {
    Ok(store
        .item::<PolicyVersion>(QueueName::PolicyVersions, version_key(name, version))?
        .filter(|v| v.name == name && v.version == version))
}

enum Recorded {
    /// A call's record and its event (turned into JSON by the task).
    Call(Box<(HookCall, admind_plugin_api::Event)>),
    Version(PolicyVersion),
}

/// Where the policy host sends call records and loaded versions.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Recorded>,
    metrics: Arc<Metrics>,
    /// `[policy_record] enabled`; versions are kept either way.
    calls: bool,
}

impl Recorder {
    /// Hands a call's record over without waiting; a full channel drops it.
    pub fn record(&self, event: admind_plugin_api::Event, call: HookCall) {
        if self.calls
            && self
                .tx
                .try_send(Recorded::Call(Box::new((call, event))))
                .is_err()
        {
            self.metrics.hook_records_dropped.inc();
        }
    }

    /// Hands a loaded version over; when the channel is full it is sent by
    /// a task that waits for room (versions are few and must not be lost).
    pub fn version(&self, version: PolicyVersion) {
        if let Err(e) = self.tx.try_send(Recorded::Version(version)) {
            let item = match e {
                mpsc::error::TrySendError::Full(item) => item,
                mpsc::error::TrySendError::Closed(_) => return,
            };
            let tx = self.tx.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tx.send(item).await;
                });
            }
        }
    }
}

/// A recorder and the task that commits what it receives; the pages it
/// writes are noted in `index` for retention.
pub fn start(
    store: Store,
    metrics: Arc<Metrics>,
    record_calls: bool,
    index: PageIndex,
) -> (Recorder, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_MAX);
    let task = tokio::spawn(commit_loop(rx, store, index));
    let recorder = Recorder {
        tx,
        metrics,
        calls: record_calls,
    };
    (recorder, task)
}

async fn commit_loop(mut rx: mpsc::Receiver<Recorded>, store: Store, index: PageIndex) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    // The largest call id appended and not yet known durable: the writer's
    // flushes cover it under load; when the daemon goes quiet first, the
    // loop flushes it itself one gathering later.
    let mut unflushed: Option<u64> = None;
    loop {
        let received = match unflushed {
            None => rx.recv_many(&mut batch, BATCH_MAX).await,
            Some(id) => {
                match tokio::time::timeout(GATHER, rx.recv_many(&mut batch, BATCH_MAX)).await {
                    Ok(received) => received,
                    Err(_quiet) => {
                        unflushed = None;
                        flush_unless_durable(&store, id).await;
                        continue;
                    }
                }
            }
        };
        if received == 0 {
            break;
        }
        // Gather until the batch is full or GATHER has passed, whichever
        // comes first: a full batch goes at once (sleeping a fixed time per
        // batch capped the record at BATCH_MAX per GATHER, and dropped
        // the rest under load).
        let deadline = tokio::time::Instant::now() + GATHER;
        while batch.len() < BATCH_MAX {
            let room = BATCH_MAX - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let items = std::mem::take(&mut batch);
        let s = store.clone();
        let index = index.clone();
        let appended = tokio::task::spawn_blocking(move || -> Result<Option<u64>, StoreError> {
            // The batch's ids in one go (on PostgreSQL one round trip, not
            // one per call).
            let calls = items
                .iter()
                .filter(|item| matches!(item, Recorded::Call(_)))
                .count();
            let versions = items.len() - calls;
            let ids = s.next_ids(calls)?;
            let last_id = ids.last().copied();
            let mut ids = ids.into_iter();
            let mut writes = Vec::new();
            let mut summaries = Vec::new();
            let mut page = Vec::with_capacity(calls.min(PAGE_MAX));
            for item in items {
                match item {
                    Recorded::Call(boxed) => {
                        let (mut call, event) = *boxed;
                        call.id = ids.next().ok_or(StoreError::Backend {
                            backend: s.kind(),
                            detail: "the store returned too few ids".into(),
                        })?;
                        page.push((call, event));
                        if page.len() == PAGE_MAX {
                            summaries.push(PageSummary::of_events(&page));
                            writes.push(page_of_events(&std::mem::take(&mut page)));
                        }
                    }
                    Recorded::Version(v) => writes.push(Store::queue_put(
                        QueueName::PolicyVersions,
                        version_key(&v.name, &v.version),
                        &v,
                    )),
                }
            }
            if !page.is_empty() {
                summaries.push(PageSummary::of_events(&page));
                writes.push(page_of_events(&page));
            }
            // Outside the writer: records are no part of any command, and
            // committing them there (one transaction of up to a thousand
            // rows) held back the commands queued behind it. Calls become
            // durable with the writer's next flush; a version an audit
            // entry may name is flushed at once (versions are few).
            s.append(writes)?;
            index.note(summaries);
            if versions > 0 {
                s.flush()?;
            }
            Ok(last_id.filter(|&id| s.durable_id() < id))
        })
        .await;
        match appended {
            Ok(Ok(pending)) => unflushed = pending.max(unflushed),
            Ok(Err(e)) => tracing::warn!(error = %e, "committing hook call records failed"),
            Err(e) => tracing::warn!(error = %e, "the hook record task failed"),
        }
    }
}

/// Flushes the store unless a flush since already covered call `id`.
async fn flush_unless_durable(store: &Store, id: u64) {
    if store.durable_id() >= id {
        return;
    }
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "flushing hook call records failed"),
        Err(e) => tracing::warn!(error = %e, "the hook record task failed"),
    }
}

/// The write that stores `page` (non-empty) under its first call's id:
/// how the record keys a page, for pages already built (tests, the replay
/// bench); the record's own task writes its pages from the events as asked.
pub fn page_write(page: &[HookCall]) -> Write {
    let first = page.first().map_or(0, |call| call.id);
    Store::queue_put(QueueName::HookCalls, first, &page)
}

/// A call as stored, its event serialized where it is (building a
/// `serde_json::Value` of every event first cost an allocation per field).
/// Same fields, same order as [`HookCall`].
#[derive(Serialize)]
struct StoredCall<'a> {
    id: u64,
    at: &'a DateTime<Utc>,
    hook: &'a str,
    account_id: &'a Option<String>,
    event: &'a admind_plugin_api::Event,
    decision: &'a str,
    reason: &'a Option<String>,
    actions: &'a [Action],
    policies: &'a [PolicyDecision],
    duration_us: u64,
}

/// The write that stores a page of calls with the events they were asked
/// (non-empty), under its first call's id.
fn page_of_events(page: &[(HookCall, admind_plugin_api::Event)]) -> Write {
    let first = page.first().map_or(0, |(call, _)| call.id);
    let stored: Vec<StoredCall<'_>> = page
        .iter()
        .map(|(call, event)| {
            // Every field named: a field added to HookCall fails to
            // compile here instead of going unrecorded.
            let HookCall {
                id,
                at,
                hook,
                account_id,
                event: _,
                decision,
                reason,
                actions,
                policies,
                duration_us,
            } = call;
            StoredCall {
                id: *id,
                at,
                hook,
                account_id,
                event,
                decision,
                reason,
                actions,
                policies,
                duration_us: *duration_us,
            }
        })
        .collect();
    Store::queue_put(QueueName::HookCalls, first, &stored)
}

/// Whether a stored row is a page (a JSON array) rather than a call
/// written before pages (an object). Opaque queue items are codec format
/// 1: one version byte, then JSON.
fn is_page(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .skip(1)
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[')
}

/// The calls one stored row holds, oldest first.
fn decode_row(bytes: &[u8]) -> Result<Vec<HookCall>, StoreError> {
    if is_page(bytes) {
        Ok(crate::store::codec::decode(bytes)?)
    } else {
        Ok(vec![crate::store::codec::decode(bytes)?])
    }
}

/// What retention knows of a stored row of the record without reading it
/// again: how many calls it holds and when its newest was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageSummary {
    calls: usize,
    /// `None` for an empty page (none is written; one read as such goes).
    newest_at: Option<DateTime<Utc>>,
}

impl PageSummary {
    fn of_events(page: &[(HookCall, admind_plugin_api::Event)]) -> (u64, PageSummary) {
        let first = page.first().map_or(0, |(call, _)| call.id);
        let summary = PageSummary {
            calls: page.len(),
            newest_at: page.last().map(|(call, _)| call.at),
        };
        (first, summary)
    }

    /// Read from a stored row, its calls' other fields skipped.
    fn of_row(bytes: &[u8]) -> Result<PageSummary, StoreError> {
        #[derive(Deserialize)]
        struct At {
            at: DateTime<Utc>,
        }
        let times: Vec<At> = if is_page(bytes) {
            crate::store::codec::decode(bytes)?
        } else {
            vec![crate::store::codec::decode(bytes)?]
        };
        Ok(PageSummary {
            calls: times.len(),
            newest_at: times.last().map(|t| t.at),
        })
    }
}

/// Rows of the record whose summary is kept, at most (~50 bytes each):
/// a record of pages of one call each (a quiet platform's) past this is
/// read again at each pass beyond it, as all of it was before the index.
const PAGE_INDEX_MAX: usize = 200_000;

/// The summaries of the record's rows, by row id, shared by the task that
/// writes pages (it knows them without reading) and retention (it reads a
/// row only the first time it meets one another replica wrote, or one
/// written before a restart). A row never changes once written, so a
/// summary never goes stale; retention drops those of rows gone.
#[derive(Clone, Default)]
pub struct PageIndex(Arc<std::sync::Mutex<std::collections::BTreeMap<u64, PageSummary>>>);

impl PageIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, PageSummary>> {
        // A panic elsewhere while holding it leaves a map that is still
        // whole (every change is one insert or remove).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note(&self, summaries: impl IntoIterator<Item = (u64, PageSummary)>) {
        let mut map = self.lock();
        for (id, summary) in summaries {
            if map.len() < PAGE_INDEX_MAX || map.contains_key(&id) {
                map.insert(id, summary);
            }
        }
    }

    /// Row `id`'s summary, read from the store when not known; `None`
    /// when the row is gone.
    fn summary(&self, store: &Store, id: u64) -> Result<Option<PageSummary>, StoreError> {
        if let Some(known) = self.lock().get(&id) {
            return Ok(Some(*known));
        }
        let Some(bytes) = store.queue_item(QueueName::HookCalls, id)? else {
            return Ok(None);
        };
        let summary = PageSummary::of_row(&bytes)?;
        self.note([(id, summary)]);
        Ok(Some(summary))
    }

    /// Forgets the summaries of rows older than `oldest_kept` (all of them
    /// when `None`): the record loses rows only from its oldest end.
    fn forget_before(&self, oldest_kept: Option<u64>) {
        let mut map = self.lock();
        match oldest_kept {
            Some(id) => *map = map.split_off(&id),
            None => map.clear(),
        }
    }

    /// How many summaries are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The writes that forget records past retention: pages whose newest call
/// is older than `keep_days`, and the oldest pages beyond the newest
/// `keep_max` calls (a page counts whole: up to [`PAGE_MAX`] - 1 calls more
/// may be kept); at most `max` writes.
///
/// It reads the record's ids, not its rows: each row's count and newest
/// time come from `index` (a row is read once, the first time a pass
/// meets it unknown). Reading every row kept at every pass moved the whole
/// record (on PostgreSQL ~150 KB a page, 73 MB a scan page) each minute.
pub fn expired(
    store: &Store,
    config: &RecordConfig,
    index: &PageIndex,
    max: usize,
) -> Result<Vec<Write>, StoreError> {
    let mut out = Vec::new();
    // By count: the newest pages holding keep_max calls stay, every older
    // one goes.
    let mut kept_calls = 0usize;
    let mut oldest_kept = None;
    let mut over = Vec::new();
    let mut complete = true;
    store.queue_scan_ids(QueueName::HookCalls, Order::NewestFirst, &mut |id| {
        if kept_calls >= config.keep_max {
            over.push(id);
            if over.len() >= max {
                complete = false;
                return Ok(false);
            }
            return Ok(true);
        }
        if let Some(summary) = index.summary(store, id)? {
            kept_calls += summary.calls;
            oldest_kept = Some(id);
        }
        Ok(true)
    })?;
    over.reverse();
    out.extend(
        over.iter()
            .map(|&id| Store::queue_remove(QueueName::HookCalls, id)),
    );
    // Summaries of rows no longer there (pruned, here or by another
    // replica) go; a pass that stopped early keeps the older ones.
    if complete {
        index.forget_before(oldest_kept);
    }
    // By age, oldest first, past what the count already removes.
    let after = over.last().copied().unwrap_or(0);
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(config.keep_days));
    store.queue_scan_ids(QueueName::HookCalls, Order::OldestFirst, &mut |id| {
        if out.len() >= max {
            return Ok(false);
        }
        // Already removed by count (ids start at 1: 0 skips none).
        if id <= after {
            return Ok(true);
        }
        let Some(summary) = index.summary(store, id)? else {
            return Ok(true);
        };
        // A page goes once its newest call is old; oldest first, so
        // nothing after a young page is expired.
        if summary.newest_at.is_some_and(|at| at >= cutoff) {
            return Ok(false);
        }
        out.push(Store::queue_remove(QueueName::HookCalls, id));
        Ok(true)
    })?;
    Ok(out)
}

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Calls matching a replay's filter, oldest first, at most `limit`.
pub fn matching(
    store: &Store,
    hooks: &[&str],
    since: Option<DateTime<Utc>>,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<HookCall>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    store.queue_scan(QueueName::HookCalls, Order::OldestFirst, &mut |_, bytes| {
        for call in decode_row(bytes)? {
            let wanted = hooks.contains(&call.hook.as_str())
                && since.is_none_or(|s| call.at >= s)
                && account.is_none_or(|a| call.account_id.as_deref() == Some(a));
            if wanted {
                out.push(call);
                if out.len() >= limit {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    })?;
    Ok(out)
}

/// The newest calls, newest first, at most `limit`; rows that do not
/// decode are passed over.
pub fn newest(store: &Store, limit: usize) -> Result<Vec<HookCall>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    store.queue_scan(QueueName::HookCalls, Order::NewestFirst, &mut |_, bytes| {
        if let Ok(calls) = decode_row(bytes) {
            out.extend(calls.into_iter().rev().take(limit - out.len()));
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// The call with id `id`: in the page with the greatest first id at or
/// below it.
pub fn by_id(store: &Store, id: u64) -> Result<Option<HookCall>, StoreError> {
    let mut found = None;
    store.queue_scan(
        QueueName::HookCalls,
        Order::NewestFirst,
        &mut |first, bytes| {
            if first > id {
                return Ok(true);
            }
            found = decode_row(bytes)?.into_iter().find(|call| call.id == id);
            Ok(false)
        },
    )?;
    Ok(found)
}

/// How many calls the record holds (every row is read).
#[cfg(test)]
fn count(store: &Store) -> Result<usize, StoreError> {
    let mut total = 0;
    store.queue_scan(QueueName::HookCalls, Order::OldestFirst, &mut |_, bytes| {
        total += PageSummary::of_row(bytes)?.calls;
        Ok(true)
    })?;
    Ok(total)
}

/// An action as the audit log and the logs name it.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Notify {
            address, subject, ..
        } => format!("notify {address} {subject:?}"),
        Action::RequestLicence { product, seats, .. } => {
            format!("request_licence {product} {seats}")
        }
        Action::FlagIntegration { integration_id } => format!("flag_integration {integration_id}"),
        Action::SendPasswordReset { address } => format!("send_password_reset {address}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryBackend;
    use crate::store::Transaction;

    fn user(id: &str) -> admind_plugin_api::UserInfo {
        admind_plugin_api::UserInfo {
            id: id.into(),
            name: id.into(),
            primary_email: format!("{id}@acme.test"),
            email_verified: true,
            signed_in_before: true,
        }
    }

    /// usr_1 hands acc_1 over to usr_2.
    fn owner_change() -> admind_plugin_api::Event {
        admind_plugin_api::Event::OwnerChange {
            account_id: "acc_1".into(),
            actor_id: "usr_1".into(),
            from: user("usr_1"),
            to: user("usr_2"),
            integrations: None,
        }
    }

    fn call(id: u64, days_old: i64) -> HookCall {
        HookCall {
            id,
            at: Utc::now() - chrono::Duration::days(days_old),
            hook: "before_owner_change".into(),
            account_id: None,
            event: serde_json::Value::Null,
            decision: "allow".into(),
            reason: None,
            actions: Vec::new(),
            policies: Vec::new(),
            duration_us: 1,
        }
    }

    /// More calls per second than one batch per gathering time: every one
    /// is kept (a fixed sleep per batch capped the record at
    /// BATCH_MAX / GATHER, about 5,000 a second, and dropped the rest).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_record_keeps_up_with_more_calls_than_one_batch_per_gathering() {
        let store = Store::new(MemoryBackend::default());
        let metrics = Arc::new(Metrics::new());
        let (recorder, task) = start(store.clone(), metrics.clone(), true, PageIndex::default());
        let event = owner_change();
        // 12,000 calls at about 20,000 a second: past the channel's room
        // (4,096) unless batches go as soon as they fill.
        let calls = 12_000u64;
        for n in 0..calls {
            recorder.record(event.clone(), call(0, 0));
            if n % 20 == 19 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(metrics.hook_records_dropped.get(), 0);
        drop(recorder);
        task.await.unwrap();
        assert_eq!(count(&store).unwrap() as u64, calls);
        // Stored as pages, not a row per call.
        let rows = store.queue_len(QueueName::HookCalls).unwrap();
        assert!(rows < calls as usize / 8, "{rows} rows for {calls} calls");
        let first = matching(&store, &["before_owner_change"], None, None, 1).unwrap();
        assert_eq!(first[0].event["to"]["id"], "usr_2", "{:?}", first[0]);
    }

    /// Retention reads a row of the record once: the pages the recorder
    /// wrote it knows from the start, another's (here written directly) from
    /// the first pass that meets them. A later pass reads none again (rows
    /// made unreadable behind its back change nothing), and the summaries
    /// of rows gone are dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_reads_each_page_of_the_record_once() {
        let store = Store::new(MemoryBackend::default());
        let metrics = Arc::new(Metrics::new());
        let index = PageIndex::default();
        let (recorder, task) = start(store.clone(), metrics, true, index.clone());
        let event = owner_change();
        for _ in 0..(PAGE_MAX + 10) {
            recorder.record(event.clone(), call(0, 0));
        }
        drop(recorder);
        task.await.unwrap();
        let written = store.queue_len(QueueName::HookCalls).unwrap();
        assert!(written >= 2, "{written} rows");
        assert_eq!(index.len(), written, "the recorder notes what it wrote");
        // Another writer's old page, ids past the recorder's.
        let old: Vec<HookCall> = (1_000_000..1_000_003).map(|id| call(id, 10)).collect();
        store
            .commit(Transaction::of_writes(vec![page_write(&old)]))
            .unwrap();
        let config = RecordConfig {
            enabled: true,
            keep_days: 7,
            keep_max: 1_000_000,
        };
        assert!(expired(&store, &config, &index, 100).unwrap().is_empty());
        assert_eq!(index.len(), written + 1, "the unknown page was read once");
        // Every row made unreadable: what the index knows is what counts.
        let mut ids = Vec::new();
        store
            .queue_scan_ids(QueueName::HookCalls, Order::OldestFirst, &mut |id| {
                ids.push(id);
                Ok(true)
            })
            .unwrap();
        let oldest_calls = decode_row(
            &store
                .queue_item(QueueName::HookCalls, ids[0])
                .unwrap()
                .unwrap(),
        )
        .unwrap()
        .len();
        let garbage: Vec<Write> = ids
            .iter()
            .map(|&id| Store::queue_put(QueueName::HookCalls, id, &"not a page"))
            .collect();
        store.commit(Transaction::of_writes(garbage)).unwrap();
        // keep_max = every call but the oldest row's: that row is over.
        let config = RecordConfig {
            keep_max: PAGE_MAX + 10 + 3 - oldest_calls,
            ..config
        };
        let gone = expired(&store, &config, &index, 100).unwrap();
        assert_eq!(gone, [Store::queue_remove(QueueName::HookCalls, ids[0])]);
        store.commit(Transaction::of_writes(gone)).unwrap();
        // The next pass drops the summary of the row gone; nothing else
        // is over.
        assert!(expired(&store, &config, &index, 100).unwrap().is_empty());
        assert_eq!(index.len(), written);
        // A fresh index (a restart) reads the rows again: unreadable now.
        assert!(expired(&store, &config, &PageIndex::default(), 100).is_err());
    }

    /// A page written from the events as asked reads back as the calls
    /// with each event as JSON, the same as a page of calls.
    #[test]
    fn a_page_stored_from_events_reads_as_the_calls_with_their_events() {
        let event = owner_change();
        let mut asked = call(7, 0);
        asked.account_id = Some("acc_1".into());
        asked.reason = Some("no".into());
        asked.policies = vec![PolicyDecision {
            policy: "guard".into(),
            kind: "script".into(),
            version: "abc".into(),
            shadow: false,
            denied: Some("no".into()),
            actions: Vec::new(),
            error: None,
            duration_us: 3,
        }];
        let Write::QueuePut { value, .. } = page_of_events(&[(asked.clone(), event.clone())])
        else {
            panic!("a page is a queue item");
        };
        let mut expected = asked;
        expected.event = serde_json::to_value(&event).unwrap();
        assert_eq!(decode_row(&value).unwrap(), [expected]);
    }

    /// Pages of `sizes` calls, `days_old` each, ids counted from 1.
    fn pages(store: &Store, sizes: &[(u64, i64)]) {
        let mut id = 0;
        let writes = sizes
            .iter()
            .map(|&(size, days_old)| {
                let page: Vec<HookCall> = (0..size)
                    .map(|_| {
                        id += 1;
                        call(id, days_old)
                    })
                    .collect();
                page_write(&page)
            })
            .collect();
        store.commit(Transaction::of_writes(writes)).unwrap();
    }

    #[test]
    fn the_record_keeps_whole_pages_by_age_and_count() {
        let store = Store::new(MemoryBackend::default());
        let index = PageIndex::default();
        // Ids 1..=4 (10 days old), 5..=7, 8..=10 (fresh).
        pages(&store, &[(4, 10), (3, 0), (3, 0)]);
        assert_eq!(count(&store).unwrap(), 10);
        assert_eq!(by_id(&store, 6).unwrap().map(|c| c.id), Some(6));
        assert_eq!(by_id(&store, 11).unwrap(), None);
        let newest: Vec<u64> = newest(&store, 4).unwrap().iter().map(|c| c.id).collect();
        assert_eq!(newest, [10, 9, 8, 7]);
        // keep_max 5: the newest two pages hold 6 calls, enough; the oldest
        // page goes.
        let config = RecordConfig {
            enabled: true,
            keep_days: 7,
            keep_max: 5,
        };
        let gone = expired(&store, &config, &index, 100).unwrap();
        assert_eq!(gone, [Store::queue_remove(QueueName::HookCalls, 1)]);
        // By age alone: the old page goes, the fresh ones stay.
        let config = RecordConfig {
            keep_max: 1000,
            ..config
        };
        assert_eq!(expired(&store, &config, &index, 100).unwrap(), gone);
        store.commit(Transaction::of_writes(gone)).unwrap();
        assert_eq!(count(&store).unwrap(), 6);
        assert!(expired(&store, &config, &index, 100).unwrap().is_empty());
        let ids: Vec<u64> = matching(&store, &["before_owner_change"], None, None, 4)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, [5, 6, 7, 8]);
    }

    /// Rows written before pages hold one call each: still read and kept
    /// by the same rules.
    #[test]
    fn the_record_keeps_what_its_age_and_count_allow() {
        let store = Store::new(MemoryBackend::default());
        let index = PageIndex::default();
        // Ten calls: ids 1..=4 are 10 days old, 5..=10 are fresh.
        let writes = (1..=10)
            .map(|id| {
                Store::queue_put(
                    QueueName::HookCalls,
                    id,
                    &call(id, if id <= 4 { 10 } else { 0 }),
                )
            })
            .collect();
        store.commit(Transaction::of_writes(writes)).unwrap();
        let config = RecordConfig {
            enabled: true,
            keep_days: 7,
            keep_max: 5,
        };
        let gone = expired(&store, &config, &index, 100).unwrap();
        // Past the count: the oldest five go (1..=5), which covers the old ones.
        assert_eq!(gone.len(), 5, "{gone:?}");
        store.commit(Transaction::of_writes(gone)).unwrap();
        assert_eq!(store.queue_len(QueueName::HookCalls).unwrap(), 5);
        // By age alone.
        let config = RecordConfig {
            keep_max: 1000,
            ..config
        };
        store
            .commit(Transaction::of_writes(vec![Store::queue_put(
                QueueName::HookCalls,
                11,
                &call(11, 30),
            )]))
            .unwrap();
        // Id 11 is newest by id but old by time: retention by age reads
        // oldest first and stops at the first young call (id 6).
        let gone = expired(&store, &config, &index, 100).unwrap();
        assert!(gone.is_empty(), "{gone:?}");
        assert_eq!(
            matching(&store, &["before_owner_change"], None, None, 100)
                .unwrap()
                .len(),
            6
        );
    }
}
