//! The record of hook calls: for each call of a hook that at least one
//! policy handled, the event as the policies saw it, what each policy
//! decided (enforced and shadow), the outcome and the time it took. Replay
//! runs drafts against it.
//!
//! Recording never slows or fails a decision: a call's record goes into a
//! bounded channel (full: dropped and counted), and a task commits records
//! in batches through the writer. Kept by age and count
//! (`[policy_record]`), pruned every minute. The records hold names and
//! addresses (the events carry them).

use std::sync::Arc;
use std::time::Duration;

use admind_plugin_api::Action;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::writer::Writer;
use crate::store::{Order, QueueName, Store, StoreError, Write};

/// Records waiting for the writer, at most.
pub const CHANNEL_MAX: usize = 4096;
/// Records committed in one transaction, at most.
const BATCH_MAX: usize = 256;

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
    /// Set when committed (the queue id).
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

/// Where the policy host sends records.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<HookCall>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// Hands a record over without waiting; a full channel drops it.
    pub fn record(&self, call: HookCall) {
        if self.tx.try_send(call).is_err() {
            self.metrics.hook_records_dropped.inc();
        }
    }
}

/// A recorder and the task that commits what it receives.
pub fn start(
    store: Store,
    writer: Writer,
    metrics: Arc<Metrics>,
) -> (Recorder, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_MAX);
    let task = tokio::spawn(commit_loop(rx, store, writer));
    (Recorder { tx, metrics }, task)
}

async fn commit_loop(mut rx: mpsc::Receiver<HookCall>, store: Store, writer: Writer) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let calls = std::mem::take(&mut batch);
        let s = store.clone();
        let writes = tokio::task::spawn_blocking(move || -> Result<Vec<Write>, StoreError> {
            calls
                .into_iter()
                .map(|mut call| {
                    call.id = s.next_id()?;
                    Ok(Store::queue_put(QueueName::HookCalls, call.id, &call))
                })
                .collect()
        })
        .await;
        match writes {
            Ok(Ok(writes)) => {
                if let Err(e) = writer.submit_writes(writes).await {
                    tracing::warn!(error = %e, "committing hook call records failed");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "numbering hook call records failed"),
            Err(e) => tracing::warn!(error = %e, "the hook record task failed"),
        }
    }
}

/// The writes that forget records past retention: older than `keep_days`,
/// and the oldest beyond `keep_max`; at most `max`.
pub fn expired(store: &Store, config: &RecordConfig, max: usize) -> Result<Vec<Write>, StoreError> {
    let total = store.queue_len(QueueName::HookCalls)?;
    let mut over = total.saturating_sub(config.keep_max);
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(config.keep_days));
    let mut out = Vec::new();
    store.queue_scan(
        QueueName::HookCalls,
        Order::OldestFirst,
        &mut |id, bytes| {
            if out.len() >= max {
                return Ok(false);
            }
            let old = if over > 0 {
                over -= 1;
                true
            } else {
                let call: HookCall = crate::store::codec::decode(bytes)?;
                call.at < cutoff
            };
            if !old {
                // Oldest first: nothing after this one is expired.
                return Ok(false);
            }
            out.push(Store::queue_remove(QueueName::HookCalls, id));
            Ok(true)
        },
    )?;
    Ok(out)
}

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Records matching a replay's filter, oldest first, at most `limit`.
pub fn matching(
    store: &Store,
    hooks: &[&str],
    since: Option<DateTime<Utc>>,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<HookCall>, StoreError> {
    let mut out = Vec::new();
    store.queue_scan(QueueName::HookCalls, Order::OldestFirst, &mut |_, bytes| {
        let call: HookCall = crate::store::codec::decode(bytes)?;
        let wanted = hooks.contains(&call.hook.as_str())
            && since.is_none_or(|s| call.at >= s)
            && account.is_none_or(|a| call.account_id.as_deref() == Some(a));
        if wanted {
            out.push(call);
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
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
