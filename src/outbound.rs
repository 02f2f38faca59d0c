//! Outbound events: the daemon's own events delivered to subscribers named
//! in the config, as Standard Webhooks deliveries signed with each
//! subscriber's secret. Deliveries are queued in the same transaction as the
//! change (so none is sent for a change that did not commit, and none is
//! lost), then sent by a worker with the specification's retry schedule,
//! honouring `Retry-After`, disabling a subscriber after the last retry or
//! at once on 410.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{Change, DomainEvent, LicenceRequest, LicenceStatus};
use crate::queue::{Attempt, Queue, Settled};
use crate::store::codec::{decode, encode};
use crate::store::writer::{Sink, Writer};
use crate::store::{Order, QueueName, Store, StoreError, Write};

/// Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE_MS: [u64; 8] = [
    0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];
/// Finished deliveries kept for `GET /v1/deliveries`.
pub const DONE_KEEP_DAYS: i64 = 7;
pub const RETRY_AFTER_MAX_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    /// The `webhook-id`: the same on every attempt, so receivers dedupe.
    pub msg_id: String,
    pub subscriber: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// A delivery not yet attempted, due at `now`.
    fn pending(
        id: u64,
        msg_id: String,
        subscriber: &str,
        event_type: &str,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Delivery {
        Delivery {
            id,
            msg_id,
            subscriber: subscriber.to_string(),
            event_type: event_type.to_string(),
            payload,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
            created_at: now,
            finished_at: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberState {
    pub disabled: bool,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    pub name: String,
    pub url: String,
    pub secret: String,
    /// Event types to receive; all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}

pub const EVENT_TYPES: [&str; 6] = [
    "owner.changed",
    "email.primary_changed",
    "seats.exhausted",
    "licence_request.filed",
    "licence_request.granted",
    "licence_request.denied",
];

struct Subscriber {
    name: String,
    url: String,
    key: Vec<u8>,
    events: HashSet<String>,
}

pub struct Outbound {
    subscribers: Vec<Subscriber>,
    schedule: Vec<Duration>,
    timeout: Duration,
}

impl Outbound {
    pub fn new(
        configs: &[SubscriberConfig],
        schedule_ms: &[u64],
        timeout_ms: u64,
    ) -> anyhow::Result<Outbound> {
        let mut subscribers = Vec::new();
        for c in configs {
            anyhow::ensure!(
                c.url.starts_with("http://") || c.url.starts_with("https://"),
                "subscriber {:?}: url must be http(s)",
                c.name
            );
            let key = crate::webhooks::decode_secret(&c.secret)
                .map_err(|e| anyhow::anyhow!("subscriber {:?}: {e}", c.name))?;
            for e in &c.events {
                anyhow::ensure!(
                    EVENT_TYPES.contains(&e.as_str()),
                    "subscriber {:?}: unknown event type {e:?}; known: {}",
                    c.name,
                    EVENT_TYPES.join(", ")
                );
            }
            anyhow::ensure!(
                !subscribers.iter().any(|s: &Subscriber| s.name == c.name),
                "subscriber {:?} is configured twice",
                c.name
            );
            subscribers.push(Subscriber {
                name: c.name.clone(),
                url: c.url.clone(),
                key,
                events: c.events.iter().cloned().collect(),
            });
        }
        anyhow::ensure!(
            !schedule_ms.is_empty(),
            "outbound.retry_schedule_ms needs at least one step"
        );
        Ok(Outbound {
            subscribers,
            schedule: schedule_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// The outbound events a committed outcome (or a refusal's events) carries.
    pub fn events(
        events: &[DomainEvent],
        changes: &[Change],
    ) -> Vec<(&'static str, serde_json::Value)> {
        let mut out = Vec::new();
        for e in events {
            match e {
                DomainEvent::AfterOwnerChange { account_id, from, to, integrations, .. } => out.push((
                    "owner.changed",
                    json!({"account_id": account_id, "from": {"id": from.id, "name": from.name}, "to": {"id": to.id, "name": to.name},
                           "integrations_needing_reauthorization": integrations.len()}),
                )),
                DomainEvent::AfterEmailPrimary { account_id, user, .. } => {
                    out.push(("email.primary_changed", json!({"account_id": account_id, "user_id": user.id, "is_owner": user.is_owner})))
                }
                DomainEvent::AgentSeatExhausted { account_id, seats_total, seats_used, .. } => out.push((
                    "seats.exhausted",
                    json!({"account_id": account_id, "product": "support", "seats_total": seats_total, "seats_used": seats_used}),
                )),
                DomainEvent::SellSeatExhausted { account_id, seats_total, seats_used, .. } => out.push((
                    "seats.exhausted",
                    json!({"account_id": account_id, "product": "sell", "seats_total": seats_total, "seats_used": seats_used}),
                )),
                DomainEvent::WebhookReceived { .. } => {}
            }
        }
        for c in changes {
            if let Change::PutLicenceRequest(r) = c {
                out.push((licence_type(r), licence_payload(r)));
            }
        }
        out
    }

    /// Queue writes: one delivery per event and interested, enabled subscriber.
    pub fn delivery_writes(
        &self,
        store: &Store,
        events: &[(&'static str, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, StoreError> {
        let mut writes = Vec::new();
        if self.subscribers.is_empty() {
            return Ok(writes);
        }
        for (kind, data) in events {
            for s in &self.subscribers {
                if !s.events.is_empty() && !s.events.contains(*kind) {
                    continue;
                }
                if subscriber_state(store, &s.name)?.disabled {
                    continue;
                }
                let id = store.next_id()?;
                let delivery = Delivery::pending(
                    id,
                    // Unique across installations and data resets; stored,
                    // so every attempt and redelivery sends the same one.
                    format!("msg_{}{id:016x}", store.installation_id()),
                    &s.name,
                    kind,
                    json!({"type": kind, "timestamp": now.to_rfc3339(), "data": data}),
                    now,
                );
                writes.push(Store::queue_put(QueueName::Deliveries, id, &delivery));
            }
        }
        Ok(writes)
    }
}

fn licence_type(r: &LicenceRequest) -> &'static str {
    match r.status {
        LicenceStatus::Pending => "licence_request.filed",
        LicenceStatus::Granted => "licence_request.granted",
        LicenceStatus::Denied => "licence_request.denied",
    }
}

fn licence_payload(r: &LicenceRequest) -> serde_json::Value {
    json!({"account_id": r.account_id, "id": r.id, "product": r.product.as_str(), "seats": r.seats,
           "granted_seats": r.granted_seats, "expires_at": r.expires_at, "requested_by": r.requested_by})
}

pub fn subscriber_state(store: &Store, name: &str) -> Result<SubscriberState, StoreError> {
    match store.subscriber_state(name)? {
        Some(v) => Ok(decode(&v)?),
        None => Ok(SubscriberState::default()),
    }
}

/// The write that records a subscriber's state.
fn subscriber_state_write(name: &str, state: &SubscriberState) -> Write {
    Write::PutSubscriberState {
        name: name.to_string(),
        value: encode(state),
    }
}

/// Pending first (oldest first), then finished (newest first), at most `limit`.
pub fn list(store: &Store, limit: usize) -> Result<Vec<Delivery>, StoreError> {
    let mut out: Vec<Delivery> = store.items(QueueName::Deliveries, false, limit)?;
    store.queue_scan(
        QueueName::DeliveriesDone,
        Order::NewestFirst,
        &mut |_, v| {
            if out.len() >= limit {
                return Ok(false);
            }
            out.push(decode(v)?);
            Ok(true)
        },
    )?;
    Ok(out)
}

/// One delivery, pending or finished.
pub fn delivery(store: &Store, id: u64) -> Result<Option<Delivery>, StoreError> {
    match store.item(QueueName::Deliveries, id)? {
        Some(d) => Ok(Some(d)),
        None => store.item(QueueName::DeliveriesDone, id),
    }
}

/// Pending deliveries looked at when a subscriber is disabled.
const DISABLE_SCAN_MAX: usize = 100_000;

/// The writes that queue a delivery again from its first attempt (same
/// `webhook-id`) and re-enable its subscriber; none when it is gone. Run by
/// the writer (`Writer::submit_maintenance`), like every request's write.
pub fn redelivery_writes(store: &Store, id: u64) -> Result<Vec<Write>, StoreError> {
    let Some(mut d) = delivery(store, id)? else {
        return Ok(Vec::new());
    };
    d.state = DeliveryState::Pending;
    d.attempts = 0;
    d.next_attempt_at = Utc::now();
    d.finished_at = None;
    d.last_error = None;
    Ok(vec![
        subscriber_state_write(&d.subscriber, &SubscriberState::default()),
        Store::queue_remove(QueueName::DeliveriesDone, id),
        Store::queue_put(QueueName::Deliveries, id, &d),
    ])
}

/// The outbound deliveries: committed with the change that caused them,
/// sent after it is on disk (see `queue::QueueWorker`), up to 64 at once,
/// retried on the schedule (honouring `Retry-After`), finished into
/// `deliveries_done`; a 410 or the last failure disables the subscriber.
pub struct OutboundQueue {
    pub store: Store,
    pub outbound: Arc<Outbound>,
    pub client: reqwest::Client,
    /// The worker's claims: disabling a subscriber fails only the pending
    /// deliveries no other replica holds.
    pub claims: crate::queue::Claims,
}

enum Sent {
    Ok(u16),
    Gone,
    /// Not sent: the subscriber is disabled (why).
    Disabled(String),
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

impl Queue for OutboundQueue {
    type Item = Delivery;
    const NAME: &'static str = "outbound";
    const QUEUE: QueueName = QueueName::Deliveries;
    const PARALLEL: usize = 64;
    /// A delivery repeated after a crash reaches a receiver twice (it
    /// dedupes by `webhook-id`, but should rarely have to): each chunk of
    /// 64 is settled before the next is sent.
    const SETTLE_EACH_CHUNK: bool = true;

    fn id(d: &Delivery) -> u64 {
        d.id
    }
    fn due_at(d: &Delivery) -> DateTime<Utc> {
        d.next_attempt_at
    }
    fn set_due_at(d: &mut Delivery, at: DateTime<Utc>) {
        d.next_attempt_at = at;
    }
    /// `attempt` counts attempts (successes included).
    fn record_failure(d: &mut Delivery, error: &str) {
        d.last_error = Some(error.to_string());
    }

    async fn attempt(&self, d: &mut Delivery) -> Attempt {
        d.attempts += 1;
        match self.send(d).await {
            Sent::Ok(status) => {
                d.last_status = Some(status);
                Attempt::Done
            }
            Sent::Gone => {
                d.last_status = Some(410);
                Attempt::GiveUp {
                    error: "the subscriber answered 410 Gone".into(),
                }
            }
            Sent::Disabled(reason) => Attempt::GiveUp {
                error: format!("subscriber disabled: {reason}"),
            },
            Sent::Retry {
                status,
                error,
                retry_after,
            } => {
                d.last_status = status;
                Attempt::Retry {
                    error,
                    after: retry_after,
                }
            }
        }
    }

    /// The schedule's next step (or the receiver's Retry-After when longer).
    fn retry_in(&self, d: &Delivery, wish: Option<Duration>) -> Option<Duration> {
        self.outbound
            .schedule
            .get(d.attempts as usize)
            .map(|step| wish.map_or(*step, |r| r.max(*step)))
    }

    /// A delivery given up on (410, or after the last retry) disables its
    /// subscriber, and its other pending deliveries fail with it.
    fn settle(&self, store: &Store, d: Delivery, how: Settled) -> Result<Vec<Write>, StoreError> {
        match how {
            Settled::Done => Ok(finish(d, DeliveryState::Delivered)),
            // Its subscriber was disabled before it was sent: nothing to
            // disable again.
            Settled::Dead if subscriber_state(store, &d.subscriber)?.disabled => {
                Ok(finish(d, DeliveryState::Failed))
            }
            Settled::Dead => {
                let reason = if d.last_status == Some(410) {
                    "answered 410 Gone"
                } else {
                    "the last retry failed"
                };
                let mut writes = self.disable(store, &d.subscriber, reason, d.id)?;
                writes.extend(finish(d, DeliveryState::Failed));
                Ok(writes)
            }
        }
    }
}

/// The writes that move a delivery to `deliveries_done` in its final state.
fn finish(mut d: Delivery, state: DeliveryState) -> Vec<Write> {
    d.state = state;
    d.finished_at = Some(Utc::now());
    tracing::info!(delivery = d.id, subscriber = %d.subscriber, event = %d.event_type, state = ?state, attempts = d.attempts, "delivery finished");
    vec![
        Store::queue_remove(QueueName::Deliveries, d.id),
        Store::queue_put(QueueName::DeliveriesDone, d.id, &d),
    ]
}

/// Forgets finished deliveries after [`DONE_KEEP_DAYS`], every 10 minutes.
pub async fn prune_done_loop(store: Store, writer: Writer) {
    crate::store::writer::prune_every(
        Duration::from_secs(600),
        "finished deliveries",
        store,
        writer,
        expired_deliveries,
        |_| {},
    )
    .await;
}

/// The writes that forget deliveries finished more than [`DONE_KEEP_DAYS`]
/// ago, at most `max`.
fn expired_deliveries(store: &Store, max: usize) -> Result<Vec<Write>, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(DONE_KEEP_DAYS);
    let mut writes = Vec::new();
    store.queue_scan(
        QueueName::DeliveriesDone,
        Order::OldestFirst,
        &mut |id, v| {
            if writes.len() >= max {
                return Ok(false);
            }
            let expired = decode::<Delivery>(v)
                .map(|d| d.finished_at.is_some_and(|f| f < cutoff))
                .unwrap_or(true);
            if expired {
                writes.push(Store::queue_remove(QueueName::DeliveriesDone, id));
            }
            Ok(true)
        },
    )?;
    Ok(writes)
}

impl OutboundQueue {
    /// The writes that disable a subscriber (unless it is already: the
    /// first reason stays) and fail its other pending deliveries
    /// (`except`: the one being settled). On a shared store only those
    /// this replica could claim, in their current state: one another
    /// replica is sending is left to it, which finds the subscriber
    /// disabled at its next attempt (no write of ours overwrites its
    /// outcome).
    fn disable(
        &self,
        store: &Store,
        name: &str,
        reason: &str,
        except: u64,
    ) -> Result<Vec<Write>, StoreError> {
        tracing::warn!(subscriber = %name, reason, "subscriber disabled");
        let state = SubscriberState {
            disabled: true,
            reason: Some(reason.into()),
            since: Some(Utc::now()),
        };
        let mut writes = vec![Write::DisableSubscriber {
            name: name.to_string(),
            value: encode(&state),
        }];
        let mut pending: Vec<Delivery> = store
            .items::<Delivery>(QueueName::Deliveries, false, DISABLE_SCAN_MAX)?
            .into_iter()
            .filter(|d| d.subscriber == name && d.id != except)
            .collect();
        if store.shared() && !pending.is_empty() {
            let ids: Vec<u64> = pending.iter().map(|d| d.id).collect();
            pending = store
                .queue_claim(
                    QueueName::Deliveries,
                    &ids,
                    &self.claims.owner,
                    self.claims.lease,
                )?
                .iter()
                .map(|(_, value)| decode(value).map_err(StoreError::from))
                .collect::<Result<_, StoreError>>()?;
        }
        for mut d in pending {
            d.last_error = Some(format!("subscriber disabled: {reason}"));
            writes.extend(finish(d, DeliveryState::Failed));
        }
        Ok(writes)
    }

    async fn send(&self, d: &Delivery) -> Sent {
        let Some(sub) = self
            .outbound
            .subscribers
            .iter()
            .find(|s| s.name == d.subscriber)
        else {
            return Sent::Retry {
                status: None,
                error: "subscriber no longer configured".into(),
                retry_after: None,
            };
        };
        match subscriber_state(&self.store, &sub.name) {
            Ok(s) if s.disabled => {
                return Sent::Disabled(s.reason.unwrap_or_else(|| "disabled".into()))
            }
            _ => {}
        }
        let body = serde_json::to_vec(&d.payload).unwrap_or_default();
        let ts = Utc::now().timestamp();
        let signature = crate::webhooks::sign(&sub.key, &d.msg_id, ts, &body);
        let sent = self
            .client
            .post(&sub.url)
            .timeout(self.outbound.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &d.msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Err(e) => Sent::Retry {
                status: None,
                error: format!("sending: {e}"),
                retry_after: None,
            },
            Ok(res) => {
                let status = res.status().as_u16();
                if res.status().is_success() {
                    return Sent::Ok(status);
                }
                if status == 410 {
                    return Sent::Gone;
                }
                let retry_after = if status == 429 || status == 503 {
                    res.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(RETRY_AFTER_MAX_SECS)))
                } else {
                    None
                };
                Sent::Retry {
                    status: Some(status),
                    error: format!("answered {status}"),
                    retry_after,
                }
            }
        }
    }
}

/// Outbound deliveries are written in the transaction of the change that
/// caused them.
impl Sink for Outbound {
    fn writes(
        &self,
        store: &Store,
        events: &[DomainEvent],
        changes: &[Change],
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, StoreError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        self.delivery_writes(store, &Outbound::events(events, changes), now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a step that fails stops them")]
    use super::*;
    use crate::store::Transaction;

    fn pending(id: u64) -> Delivery {
        let msg_id = format!("msg_{id}");
        Delivery::pending(id, msg_id, "crm", "owner.changed", json!({}), Utc::now())
    }

    fn queue(store: &Store, replica: &str) -> OutboundQueue {
        OutboundQueue {
            store: store.clone(),
            outbound: Arc::new(Outbound::new(&[], &[1000], 1000).unwrap()),
            client: reqwest::Client::new(),
            claims: crate::queue::Claims {
                owner: replica.into(),
                lease: Duration::from_secs(60),
            },
        }
    }

    /// Subscriber state is updated, not overwritten: disabled again (a
    /// later failure, another replica's) it keeps the first reason; a
    /// redelivery enables it; and disabling fails only the pending
    /// deliveries no other replica is sending (on PostgreSQL: one claimed
    /// elsewhere is left to its holder).
    #[test]
    fn a_disabled_subscriber_keeps_its_first_reason_and_fails_no_delivery_another_replica_holds() {
        for (_dir, store) in crate::store::tests::every_backend() {
            let kind = store.kind();
            let writes: Vec<Write> = (1..=3)
                .map(|id| Store::queue_put(QueueName::Deliveries, id, &pending(id)))
                .collect();
            store.commit(Transaction::of_writes(writes)).unwrap();
            // Another replica is sending delivery 3.
            if store.shared() {
                let held = store
                    .queue_claim(
                        QueueName::Deliveries,
                        &[3],
                        "replica-b",
                        Duration::from_secs(60),
                    )
                    .unwrap();
                assert_eq!(held.len(), 1);
            }
            let a = queue(&store, "replica-a");
            let first = a.disable(&store, "crm", "answered 410 Gone", 1).unwrap();
            store.commit(Transaction::of_writes(first)).unwrap();
            let again = a
                .disable(&store, "crm", "the last retry failed", 1)
                .unwrap();
            store.commit(Transaction::of_writes(again)).unwrap();
            let state = subscriber_state(&store, "crm").unwrap();
            assert!(state.disabled, "{kind}");
            assert_eq!(state.reason.as_deref(), Some("answered 410 Gone"), "{kind}");
            let two = delivery(&store, 2).unwrap().unwrap();
            assert_eq!(two.state, DeliveryState::Failed, "{kind}");
            let three = delivery(&store, 3).unwrap().unwrap();
            let expected = if store.shared() {
                DeliveryState::Pending
            } else {
                DeliveryState::Failed
            };
            assert_eq!(three.state, expected, "{kind}: delivery 3");
            // Enabled again by a redelivery; a new failure then records its own reason.
            store
                .commit(Transaction::of_writes(
                    redelivery_writes(&store, 2).unwrap(),
                ))
                .unwrap();
            assert!(!subscriber_state(&store, "crm").unwrap().disabled, "{kind}");
            let later = a
                .disable(&store, "crm", "the last retry failed", 2)
                .unwrap();
            store.commit(Transaction::of_writes(later)).unwrap();
            let state = subscriber_state(&store, "crm").unwrap();
            assert_eq!(
                state.reason.as_deref(),
                Some("the last retry failed"),
                "{kind}"
            );
        }
    }
}
