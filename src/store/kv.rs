//! What the key-value backends (sled, memory) share: each keeps every
//! [`Kind`] as an ordered map of bytes ([`Kv`]: get and scan), and all of
//! the rest — the rows a transaction writes, the core's `StateView`,
//! export, restore, retention scans and the format census — is written
//! once here, from the description in [`super::records`].

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::sync::Arc;

use super::backend::{OutboxItem, QueuedEvent, Transaction};
use super::codec::{self, decode, encode, key2, key_seq, prefix};
use super::error::StoreError;
use super::records::{self, split_key, KeyValue, Kind, Row, RowLookup, ValueFormat};
use super::records::{Order, RowVisit, Write};
use crate::domain::*;

/// An ordered map of bytes per kind.
pub trait Kv: Send + Sync {
    fn kv_get(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Visits the rows whose key starts with `prefix`: oldest first from
    /// the first key ≥ `from` (`from` starts with `prefix` or is empty),
    /// newest first from the last key < `from` when `from` is longer than
    /// `prefix`, else from the last.
    fn kv_scan(
        &self,
        kind: Kind,
        prefix: &[u8],
        from: &[u8],
        order: Order,
        each: &mut RowVisit<'_>,
    ) -> Result<(), StoreError>;
}

impl<T: Kv + ?Sized> RowLookup for T {
    fn get_row(&self, kind: Kind, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv_get(kind, key)
    }

    fn rows_with_prefix(&self, kind: Kind, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        self.kv_scan(kind, prefix, prefix, Order::OldestFirst, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }
}

/// A value, decoded.
pub fn get<V: DeserializeOwned>(
    kv: &impl Kv,
    kind: Kind,
    key: &[u8],
) -> Result<Option<V>, StoreError> {
    match kv.kv_get(kind, key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Up to `limit` values under `prefix` from `from`, decoded.
pub fn list<V: DeserializeOwned>(
    kv: &impl Kv,
    kind: Kind,
    prefix: &[u8],
    from: &[u8],
    order: Order,
    limit: usize,
) -> Result<Vec<V>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    kv.kv_scan(kind, prefix, from, order, &mut |_, v| {
        out.push(decode(v)?);
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// `prefix` with a NUL byte after `after`: the first key past it.
fn just_past(prefix: &[u8], after: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(after.as_bytes());
    k.push(0);
    k
}

/// The prefix of an account's member rows, and the first key of those
/// after member `after` (the prefix itself from the first).
pub fn members_from(account_id: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let p = prefix(account_id);
    let from = after.map(|a| just_past(&p, a)).unwrap_or_else(|| p.clone());
    (p, from)
}

/// The core's view of a key-value store, read through [`Kv`].
pub struct KvState<'a, T: ?Sized>(pub &'a T);

impl<T: Kv> KvState<'_, T> {
    /// Members ordered by id, strictly after `after`, at most `limit`, as
    /// the store holds them (what the read cache keeps).
    pub fn members_owned(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        let (p, from) = members_from(account_id, after);
        Ok(list(
            self.0,
            Kind::Users,
            &p,
            &from,
            Order::OldestFirst,
            limit,
        )?)
    }
}

impl<T: Kv> StateView for KvState<'_, T> {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(get(self.0, Kind::Accounts, id.as_bytes())?)
    }

    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
        let from = after.map(|a| just_past(b"", a)).unwrap_or_default();
        Ok(list(
            self.0,
            Kind::Accounts,
            b"",
            &from,
            Order::OldestFirst,
            limit,
        )?)
    }

    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(get(self.0, Kind::Users, &key2(account_id, user_id))?)
    }

    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        let key = key2(account_id, &normalize_email(email));
        match self.0.kv_get(Kind::EmailIndex, &key)? {
            Some(user_id) => self.user(account_id, &String::from_utf8_lossy(&user_id)),
            None => Ok(None),
        }
    }

    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        Ok(self
            .members_owned(account_id, after, limit)?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    fn members_before(
        &self,
        account_id: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        let p = prefix(account_id);
        let mut from = p.clone();
        from.extend_from_slice(before.as_bytes());
        if from.len() == p.len() {
            return Ok(Vec::new());
        }
        Ok(list(
            self.0,
            Kind::Users,
            &p,
            &from,
            Order::NewestFirst,
            limit,
        )?)
    }

    fn investigations(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SecurityInvestigation>, ViewError> {
        let p = account_id.map(prefix).unwrap_or_default();
        Ok(list(
            self.0,
            Kind::Investigations,
            &p,
            &p,
            Order::OldestFirst,
            limit,
        )?)
    }

    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        let p = prefix(account_id);
        Ok(list(
            self.0,
            Kind::Integrations,
            &p,
            &p,
            Order::OldestFirst,
            limit,
        )?)
    }

    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        Ok(get(self.0, Kind::Integrations, &key2(account_id, id))?)
    }

    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        Ok(get(self.0, Kind::Tokens, hash.as_bytes())?)
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(get(self.0, Kind::Sessions, hash.as_bytes())?)
    }

    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        let p = prefix(account_id);
        Ok(list(
            self.0,
            Kind::Invoices,
            &p,
            &p,
            Order::NewestFirst,
            limit,
        )?)
    }

    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        Ok(self
            .0
            .kv_get(Kind::WebhooksSeen, &key2(source, webhook_id))?
            .is_some())
    }

    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        Ok(get(self.0, Kind::LicenceRequests, id.as_bytes())?)
    }

    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
        Ok(list(
            self.0,
            Kind::PolicySwitches,
            b"",
            b"",
            Order::OldestFirst,
            limit,
        )?)
    }

    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let p = prefix(account_id);
        let mut ids = Vec::new();
        self.0.kv_scan(
            Kind::AccountLicences,
            &p,
            &p,
            Order::OldestFirst,
            &mut |k, _| {
                ids.push(k[p.len()..].to_vec());
                Ok(ids.len() < limit)
            },
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = get::<LicenceRequest>(self.0, Kind::LicenceRequests, &id)? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// Scans every request: fine while requests number in the thousands; an
    /// index by status is the next step past that.
    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let mut out = Vec::new();
        self.0.kv_scan(
            Kind::LicenceRequests,
            b"",
            b"",
            Order::OldestFirst,
            &mut |_, v| {
                let r: LicenceRequest = decode(v)?;
                if status.is_none_or(|s| s == r.status) {
                    out.push(r);
                }
                Ok(true)
            },
        )?;
        out.sort_by_key(|r| r.created_at);
        out.truncate(limit);
        Ok(out)
    }

    fn audit(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        let p = prefix(account_id);
        let from = key_seq(account_id, after.map(|a| a.saturating_add(1)).unwrap_or(0));
        Ok(list(
            self.0,
            Kind::Audit,
            &p,
            &from,
            Order::OldestFirst,
            limit,
        )?)
    }

    fn audit_newest(
        &self,
        account_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError> {
        let p = prefix(account_id);
        let from = before.map_or_else(|| p.clone(), |b| key_seq(account_id, b));
        Ok(list(
            self.0,
            Kind::Audit,
            &p,
            &from,
            Order::NewestFirst,
            limit,
        )?)
    }
}

/// Whether the stored state of subscriber `name` says it is disabled (the
/// state is stored as JSON, see `outbound::SubscriberState`).
fn subscriber_disabled(kv: &impl Kv, name: &str) -> Result<bool, StoreError> {
    Ok(match kv.kv_get(Kind::Subscribers, name.as_bytes())? {
        Some(v) => super::codec::decode::<serde_json::Value>(&v)?["disabled"] == true,
        None => false,
    })
}

/// Every row a transaction writes: its changes (with their indexes), the
/// audit entry, mails and hook events numbered from `next_id`, its store
/// writes, and the records it restores; with the largest id a restored
/// record holds (the store's id counter must move past it).
pub fn rows_of_transaction(
    kv: &impl Kv,
    next_id: &mut dyn FnMut() -> Result<u64, StoreError>,
    tx: Transaction,
) -> Result<(Vec<Row>, u64), StoreError> {
    let mut changes = tx.changes;
    let mut written = Vec::with_capacity(tx.writes.len());
    let mut restored_id_max = 0u64;
    for write in tx.writes {
        match write {
            Write::Restore(record) => {
                let (change, row, id) = records::raw_rows_of((*record).into_restore())?;
                changes.extend(change);
                written.extend(row);
                restored_id_max = restored_id_max.max(id);
            }
            Write::DisableSubscriber { name, .. } if subscriber_disabled(kv, &name)? => {}
            other => written.extend(records::row_of_write(other)),
        }
    }
    let mut rows = records::rows_for(kv, next_id, &changes)?;
    let mut cause = None;
    if let Some(draft) = tx.audit {
        let seq = next_id()?;
        rows.push(records::audit_row(&draft.into_entry(seq)));
        cause = Some(seq);
    }
    // The change's mails as one outbox item (one key, not one per mail).
    if let Some(item) = OutboxItem::numbered(tx.mails, next_id)? {
        rows.push(Row::put(
            Kind::Outbox,
            records::number_key(item.id),
            encode(&item),
        ));
    }
    for event in tx.events {
        let id = next_id()?;
        let queued = QueuedEvent {
            id,
            cause_seq: cause,
            event,
            attempts: 0,
        };
        rows.push(Row::put(
            Kind::HookQueue,
            records::number_key(id),
            encode(&queued),
        ));
    }
    rows.extend(written);
    Ok((rows, restored_id_max))
}

/// [`super::Backend::queue_window`] on a key-value store: it seeks to the
/// first key after `after` (a queue's keys are its ids, big-endian)
/// instead of stepping over every item before it. Nothing is claimed on a
/// store only this process opens: nothing is hidden.
pub fn queue_window(
    kv: &impl Kv,
    queue: super::records::QueueName,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    let Some(from) = after.checked_add(1) else {
        return Ok(out);
    };
    if limit == 0 {
        return Ok(out);
    }
    kv.kv_scan(
        Kind::of_queue(queue),
        &[],
        &records::number_key(from),
        Order::OldestFirst,
        &mut |k, v| {
            out.push((records::number_of(k), v.to_vec()));
            Ok(out.len() < limit)
        },
    )?;
    Ok(out)
}

/// [`super::Backend::scan`] on a key-value store: a scope is a key prefix.
pub fn scan_scope(
    kv: &impl Kv,
    kind: Kind,
    scope: Option<&str>,
    order: Order,
    each: &mut RowVisit<'_>,
) -> Result<(), StoreError> {
    let p = scope.map(prefix).unwrap_or_default();
    kv.kv_scan(kind, &p, &p, order, each)
}

/// [`super::Backend::expired`] on a key-value store.
pub fn expired(
    kv: &impl Kv,
    kind: Kind,
    cutoff: DateTime<Utc>,
    max: usize,
) -> Result<Vec<Write>, StoreError> {
    match kind {
        Kind::Audit => expired_audit(kv, cutoff, max),
        Kind::WebhooksSeen => expired_webhook_ids(kv, cutoff, max),
        other => Err(StoreError::Backend {
            backend: "key-value",
            detail: format!("{} records do not expire", other.name()),
        }),
    }
}

/// How many values of each kind are in each format version: `(kind,
/// [version 1, version 2, other])`, indexes left out. Shows how far an
/// upgraded store has been rewritten.
pub fn census(kv: &(impl Kv + ?Sized)) -> Result<Vec<(&'static str, [usize; 3])>, StoreError> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        if kind.spec().value == ValueFormat::Index {
            continue;
        }
        let mut counts = [0usize; 3];
        kv.kv_scan(kind, b"", b"", Order::OldestFirst, &mut |_, v| {
            match codec::version(v) {
                Some(codec::FORMAT_JSON) => counts[0] += 1,
                Some(codec::FORMAT_BINARY) => counts[1] += 1,
                _ => counts[2] += 1,
            }
            Ok(true)
        })?;
        out.push((kind.name(), counts));
    }
    Ok(out)
}

/// Audit entries older than `cutoff`, at most `max`. Entries of one scope
/// (account) are stored in sequence order, which is time order, so each
/// scope is read from its start only until its first young entry, then
/// the scan jumps to the next scope.
fn expired_audit(
    kv: &impl Kv,
    cutoff: DateTime<Utc>,
    max: usize,
) -> Result<Vec<Write>, StoreError> {
    let mut out: Vec<Write> = Vec::new();
    let mut cursor: Vec<u8> = Vec::new();
    while out.len() < max {
        let mut first = None;
        kv.kv_scan(
            Kind::Audit,
            b"",
            &cursor,
            Order::OldestFirst,
            &mut |k, _| {
                first = Some(k.to_vec());
                Ok(false)
            },
        )?;
        let Some(first_key) = first else {
            break;
        };
        let Some(nul) = first_key.iter().position(|b| *b == 0) else {
            // Not an audit key; step over it.
            cursor = first_key;
            cursor.push(0);
            continue;
        };
        let scope = first_key[..=nul].to_vec();
        kv.kv_scan(
            Kind::Audit,
            &scope,
            &scope,
            Order::OldestFirst,
            &mut |_, v| {
                let entry: AuditEntry = decode(v)?;
                if entry.at >= cutoff || out.len() >= max {
                    return Ok(false);
                }
                out.push(Write::ForgetAudit {
                    scope: entry.account_id,
                    seq: entry.seq,
                });
                Ok(true)
            },
        )?;
        // The next scope starts after `scope \0 \xff...`: bump the NUL.
        cursor = scope;
        let last = cursor.len() - 1;
        cursor[last] = 1;
    }
    Ok(out)
}

/// Received webhook ids older than `cutoff`, at most `max`.
fn expired_webhook_ids(
    kv: &impl Kv,
    cutoff: DateTime<Utc>,
    max: usize,
) -> Result<Vec<Write>, StoreError> {
    let mut out = Vec::new();
    kv.kv_scan(
        Kind::WebhooksSeen,
        b"",
        b"",
        Order::OldestFirst,
        &mut |k, v| {
            if out.len() >= max {
                return Ok(false);
            }
            let at: DateTime<Utc> = decode(v)?;
            if at < cutoff {
                let (source, webhook_id) = split_key(k);
                out.push(Write::ForgetWebhook { source, webhook_id });
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

/// How many rows a kind holds.
pub fn count(kv: &impl Kv, kind: Kind) -> Result<usize, StoreError> {
    let mut n = 0;
    kv.kv_scan(kind, b"", b"", Order::OldestFirst, &mut |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}
