//! What replicas of one store tell each other: who is alive with which
//! policy versions (a heartbeat), sign-in attempt counts, and signed-out
//! platform-support cookies.
//!
//! On a store one process opens (sled, memory) the backend's defaults make
//! every call here a no-op and the in-process structures (the rate
//! limiters, the revoked-cookie set) are the whole truth. On PostgreSQL the
//! rows live in the database: written directly, not through the writer,
//! because they are coordination, not account state (no audit entry, no
//! mail, no hook), and each is bounded and pruned every minute.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::policy::PolicyHost;
use crate::store::{ReplicaInfo, Store};

/// How often a replica says it is alive, by default (`store.heartbeat_ms`).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A replica not heard from for this long is not live.
pub const LIVE_WITHIN: Duration = Duration::from_secs(20);
/// Replicas not heard from for this long are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Announced when a policy is switched off or on: every replica re-reads
/// the switches.
pub const TOPIC_SWITCHES: &str = "policy_switches";

/// Re-reads what other replicas announce changed (on a shared store; a
/// no-op elsewhere): the policy switches within a second of a change, not
/// at the next heartbeat.
pub fn listen(store: &Store, policies: Arc<PolicyHost>) {
    let s = store.clone();
    let on = Box::new(move |topic: &str| {
        if topic == TOPIC_SWITCHES {
            if let Err(e) = policies.load_switches(&*s) {
                tracing::warn!(error = %e, "reading the policy switches failed");
            }
        }
    });
    if let Err(e) = store.listen(on) {
        tracing::warn!(error = %e, "listening to the other replicas failed; the heartbeat still carries changes");
    }
}

/// This replica: its id and when it started.
pub struct Me {
    pub id: Arc<str>,
    pub started_at: DateTime<Utc>,
}

/// The `(name, version)` of every policy this replica has in force, sorted.
pub fn policy_set(policies: &PolicyHost) -> Vec<(String, String)> {
    let mut set: Vec<(String, String)> = policies
        .status()
        .into_iter()
        .map(|p| (format!("{}:{}", p.kind, p.name), p.version))
        .collect();
    set.sort();
    set
}

/// This replica's record as of now.
pub fn info(me: &Me, policies: &PolicyHost) -> ReplicaInfo {
    ReplicaInfo {
        id: me.id.to_string(),
        started_at: me.started_at,
        seen_at: Utc::now(),
        policies: policy_set(policies),
    }
}

/// The live replicas, this one first and always (whether or not its last
/// heartbeat reached the store), each with whether its policy set agrees
/// with this one's.
pub fn live(store: &Store, me: &Me, policies: &PolicyHost) -> Vec<(ReplicaInfo, bool)> {
    let mine = info(me, policies);
    let since = Utc::now() - chrono::Duration::from_std(LIVE_WITHIN).unwrap_or_default();
    let others = match store.replicas(since) {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "reading the replicas failed");
            Vec::new()
        }
    };
    let mut out = vec![(mine.clone(), true)];
    for other in others.into_iter().filter(|r| r.id != mine.id) {
        let agrees = other.policies == mine.policies;
        out.push((other, agrees));
    }
    out
}

/// Every `every` ([`HEARTBEAT_EVERY`] by default): records this replica and its policy set,
/// re-reads the policy switches, updates the replica metrics; every minute
/// forgets expired shared rows.
pub async fn heartbeat_loop(
    store: Store,
    me: Arc<Me>,
    policies: Arc<PolicyHost>,
    metrics: Arc<Metrics>,
    every: Duration,
) {
    let mut beats: u64 = 0;
    // Shared rows are pruned about once a minute.
    let prune_every = (60_000 / every.as_millis().max(1)).max(1) as u64;
    loop {
        let (s, m, p, mt) = (store.clone(), me.clone(), policies.clone(), metrics.clone());
        let prune = beats % prune_every == 0;
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = s.heartbeat(&info(&m, &p)) {
                tracing::warn!(error = %e, "recording this replica failed");
            }
            // Another replica may have switched a policy off or on (a store
            // only this process opens changes only through this process).
            if s.shared() {
                if let Err(e) = p.load_switches(&*s) {
                    tracing::warn!(error = %e, "reading the policy switches failed");
                }
            }
            let live = live(&s, &m, &p);
            mt.replicas_live.set(live.len() as i64);
            let disagreeing = live.iter().filter(|(_, agrees)| !agrees).count();
            mt.policy_replicas_disagreeing.set(disagreeing as i64);
            if disagreeing > 0 {
                tracing::warn!(
                    disagreeing,
                    "replicas have different policy versions loaded: they may decide differently"
                );
            }
            if prune {
                let before =
                    Utc::now() - chrono::Duration::from_std(FORGET_AFTER).unwrap_or_default();
                if let Err(e) = s.prune_shared(before) {
                    tracing::warn!(error = %e, "pruning shared rows failed");
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "the heartbeat task failed");
        }
        beats = beats.wrapping_add(1);
        tokio::time::sleep(every).await;
    }
}

/// A key every replica computes alike for the same parts (the in-process
/// limiter's keys are hashed with a per-process secret, so they are not).
/// Hashed, so the store holds no address in clear.
fn shared_key(namespace: &str, installation_id: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0]);
    h.update(installation_id.as_bytes());
    for part in parts {
        h.update([0]);
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Counts a sign-in attempt under `parts` for every replica; `Err(secs)`
/// when the window already holds `per_window` attempts. A store error lets
/// the attempt through: the replica's own limiter has already counted it.
pub fn count_attempt(store: &Store, per_window: u32, parts: &[&str]) -> Result<(), u64> {
    let now = Utc::now().timestamp();
    let window = now.div_euclid(60);
    let key = shared_key("attempts", store.installation_id(), parts);
    match store.count_attempt(&key, window) {
        Ok(Some(count)) if count > per_window => {
            Err(u64::try_from(60 - now.rem_euclid(60)).unwrap_or(60).max(1))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "counting an attempt in the store failed");
            Ok(())
        }
    }
}

/// Counts a failed attempt from a network address for every replica; once
/// the window holds `per_window` of them, the address is locked out on
/// every replica until the window ends (a mark the others read). A no-op
/// on a store only this process opens: its own limiter counts.
pub fn count_network_failure(store: &Store, per_window: u32, address: &str) {
    if !store.shared() {
        return;
    }
    let now = Utc::now().timestamp();
    let key = shared_key("network failures", store.installation_id(), &[address]);
    match store.count_attempt(&key, now.div_euclid(60)) {
        Ok(Some(count)) if count >= per_window => {
            let until = Utc::now() + chrono::Duration::seconds(60 - now.rem_euclid(60));
            let mark = shared_key("network locked", store.installation_id(), &[address]);
            if let Err(e) = store.put_mark(&mark, until) {
                tracing::warn!(error = %e, "recording a network lock-out in the store failed");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "counting a failed attempt in the store failed"),
    }
}

/// Seconds until a network address another replica locked out may try
/// again, if it is locked out. A store error lets it through: this
/// replica's limiter still holds.
pub fn network_locked(store: &Store, address: &str) -> Option<u64> {
    if !store.shared() {
        return None;
    }
    let mark = shared_key("network locked", store.installation_id(), &[address]);
    match store.has_mark(&mark) {
        Ok(true) => Some(u64::try_from(60 - Utc::now().timestamp().rem_euclid(60)).unwrap_or(60)),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "reading a network lock-out failed");
            None
        }
    }
}

/// Records for every replica that the operator cookie `nonce` is signed
/// out (until it would have expired anyway).
pub fn revoke_cookie(store: &Store, nonce: &str, until: DateTime<Utc>) {
    let key = shared_key("operator cookie", store.installation_id(), &[nonce]);
    if let Err(e) = store.put_mark(&key, until) {
        tracing::warn!(error = %e, "recording a sign-out in the store failed");
    }
}

/// Whether the operator cookie `nonce` was signed out, by this process
/// before a restart or by another replica. Fails closed: a store that
/// cannot answer counts as signed out.
pub fn cookie_revoked(store: &Store, nonce: &str) -> bool {
    let key = shared_key("operator cookie", store.installation_id(), &[nonce]);
    store.has_mark(&key).unwrap_or(true)
}
