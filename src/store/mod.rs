//! The sled store: named trees, versioned values, the [`StateView`] the core
//! reads, and the application of an outcome as one transaction.
//!
//! Only the writer thread ([`writer`]) changes account state, so a command's
//! reads and its transaction see the same state without retries; the
//! transaction is what makes its writes (state, audit, outbox, hook queue)
//! atomic through a crash.

pub mod codec;
pub mod memory;
pub mod writer;

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::domain::*;
use codec::{decode, encode, key2, key_seq, prefix};

/// The trees, in the order of [`Store::trees`] (the transaction view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum T {
    Accounts = 0,
    Users,
    EmailIndex,
    Integrations,
    Tokens,
    Sessions,
    UserSessions,
    Invoices,
    Investigations,
    Audit,
    Outbox,
    HookQueue,
    OutboxDead,
    LicenceRequests,
    AccountLicences,
    WebhooksSeen,
    Deliveries,
    DeliveriesDone,
    Subscribers,
}

const TREE_NAMES: [&str; 19] = [
    "accounts",
    "users",
    "email_index",
    "integrations",
    "tokens",
    "sessions",
    "user_sessions",
    "invoices",
    "investigations",
    "audit",
    "outbox",
    "hook_queue",
    "outbox_dead",
    "licence_requests",
    "account_licences",
    "webhooks_seen",
    "deliveries",
    "deliveries_done",
    "subscribers",
];

/// A rendered message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: u64,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// An after-hook event waiting to be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub id: u64,
    /// The audit entry of the operation that caused it (causal audit).
    pub cause_seq: Option<u64>,
    pub event: DomainEvent,
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Codec(#[from] codec::CodecError),
    #[error("store is shutting down")]
    Closed,
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> Self {
        ViewError(e.to_string())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::store(e.to_string())
    }
}

#[derive(Clone)]
pub struct Store {
    pub db: sled::Db,
    trees: Vec<sled::Tree>,
    installation_id: std::sync::Arc<str>,
    /// The highest id handed out, and the highest known to be on disk. Queue
    /// items (mail, hook events, deliveries) carry ids from the same counter,
    /// so a worker that takes only items up to `durable_id` never acts on a
    /// change a crash could still undo (sled's reads see a committed write
    /// before the batch's flush).
    last_issued_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    durable_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Key (in sled's default tree) of the installation id.
const INSTALLATION_ID_KEY: &[u8] = b"installation_id";

/// One write of a transaction: tree, key, value (`None` removes).
pub type Op = (T, Vec<u8>, Option<Vec<u8>>);

fn new_installation_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from explicit group-commit flushes, not a timer.
            .flush_every_ms(None)
            .open()?;
        let trees = TREE_NAMES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let installation_id = match db.get(INSTALLATION_ID_KEY)? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let id = new_installation_id();
                db.insert(INSTALLATION_ID_KEY, id.as_bytes())?;
                db.flush()?;
                id
            }
        };
        // Everything on disk at start is durable.
        let opened_at_id = db.generate_id()?;
        Ok(Store {
            db,
            trees,
            installation_id: installation_id.into(),
            last_issued_id: std::sync::Arc::new(opened_at_id.into()),
            durable_id: std::sync::Arc::new(opened_at_id.into()),
        })
    }

    /// 128 random bits made when the data directory was created: with a
    /// sequence number it makes ids that no other installation (nor this one
    /// after its data was reset) sends: outbound `webhook-id`s and mail
    /// Message-IDs, which receivers deduplicate on.
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    pub fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t as usize]
    }

    fn get<V: serde::de::DeserializeOwned>(
        &self,
        t: T,
        key: &[u8],
    ) -> Result<Option<V>, StoreError> {
        match self.tree(t).get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn next_id(&self) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        self.last_issued_id
            .fetch_max(id, std::sync::atomic::Ordering::AcqRel);
        Ok(id)
    }

    /// The highest id handed out so far (read before a flush).
    pub fn last_issued_id(&self) -> u64 {
        self.last_issued_id
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// After a flush: every id up to `id` is on disk.
    pub fn mark_durable(&self, id: u64) {
        self.durable_id
            .fetch_max(id, std::sync::atomic::Ordering::AcqRel);
    }

    /// Applies all writes atomically (one sled transaction across trees).
    pub fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<()>> = self.trees.as_slice().transaction(|txs| {
            for (t, key, value) in ops {
                let tx = &txs[*t as usize];
                match value {
                    Some(v) => {
                        tx.insert(key.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx.remove(key.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(())) => unreachable!("the closure never aborts"),
        }
    }

    /// Turns domain changes into writes. Runs on the writer thread, so the
    /// scans it does (sessions of a user) see exactly the state the command
    /// saw.
    pub fn ops_for(&self, changes: &[Change]) -> Result<Vec<Op>, StoreError> {
        let mut ops = Vec::with_capacity(changes.len() + 4);
        for change in changes {
            match change {
                Change::PutAccount(a) => {
                    ops.push((T::Accounts, a.id.as_bytes().to_vec(), Some(encode(a))))
                }
                Change::PutUser(u) => {
                    ops.push((T::Users, key2(&u.account_id, &u.id), Some(encode(u))))
                }
                Change::DeleteUser {
                    account_id,
                    user_id,
                } => ops.push((T::Users, key2(account_id, user_id), None)),
                Change::PutEmailIndex {
                    account_id,
                    email,
                    user_id,
                } => ops.push((
                    T::EmailIndex,
                    key2(account_id, &normalize_email(email)),
                    Some(user_id.as_bytes().to_vec()),
                )),
                Change::DeleteEmailIndex { account_id, email } => ops.push((
                    T::EmailIndex,
                    key2(account_id, &normalize_email(email)),
                    None,
                )),
                Change::PutIntegration(i) => {
                    ops.push((T::Integrations, key2(&i.account_id, &i.id), Some(encode(i))))
                }
                Change::PutToken(t) => {
                    ops.push((T::Tokens, t.hash.as_bytes().to_vec(), Some(encode(t))))
                }
                Change::DeleteToken { hash } => {
                    ops.push((T::Tokens, hash.as_bytes().to_vec(), None))
                }
                Change::PutSession(s) => {
                    ops.push((T::Sessions, s.hash.as_bytes().to_vec(), Some(encode(s))));
                    let mut k = key2(&s.account_id, &s.user_id);
                    k.push(0);
                    k.extend_from_slice(s.hash.as_bytes());
                    ops.push((T::UserSessions, k, Some(Vec::new())));
                }
                Change::DeleteSession { hash } => {
                    if let Some(s) = self.get::<Session>(T::Sessions, hash.as_bytes())? {
                        let mut k = key2(&s.account_id, &s.user_id);
                        k.push(0);
                        k.extend_from_slice(s.hash.as_bytes());
                        ops.push((T::UserSessions, k, None));
                    }
                    ops.push((T::Sessions, hash.as_bytes().to_vec(), None));
                }
                Change::DeleteUserSessions {
                    account_id,
                    user_id,
                } => {
                    let mut p = key2(account_id, user_id);
                    p.push(0);
                    for item in self.tree(T::UserSessions).scan_prefix(&p) {
                        let (k, _) = item?;
                        let hash = k[p.len()..].to_vec();
                        ops.push((T::Sessions, hash, None));
                        ops.push((T::UserSessions, k.to_vec(), None));
                    }
                }
                Change::DeleteSessionsSignedInWith {
                    account_id,
                    user_id,
                    email,
                } => {
                    let mut p = key2(account_id, user_id);
                    p.push(0);
                    for item in self.tree(T::UserSessions).scan_prefix(&p) {
                        let (k, _) = item?;
                        let hash = &k[p.len()..];
                        let session: Option<Session> = self.get(T::Sessions, hash)?;
                        if session
                            .is_some_and(|s| normalize_email(&s.email) == normalize_email(email))
                        {
                            ops.push((T::Sessions, hash.to_vec(), None));
                            ops.push((T::UserSessions, k.to_vec(), None));
                        }
                    }
                }
                Change::PutLicenceRequest(r) => {
                    ops.push((
                        T::LicenceRequests,
                        r.id.as_bytes().to_vec(),
                        Some(encode(r)),
                    ));
                    ops.push((
                        T::AccountLicences,
                        key2(&r.account_id, &r.id),
                        Some(Vec::new()),
                    ));
                }
                Change::PutWebhookSeen {
                    source,
                    webhook_id,
                    at,
                } => {
                    ops.push((T::WebhooksSeen, key2(source, webhook_id), Some(encode(at))));
                }
                Change::PutInvoice(i) => {
                    let seq = self.next_id()?;
                    ops.push((T::Invoices, key_seq(&i.account_id, seq), Some(encode(i))))
                }
                Change::PutInvestigation(i) => ops.push((
                    T::Investigations,
                    key2(&i.account_id, &i.id),
                    Some(encode(i)),
                )),
            }
        }
        Ok(ops)
    }

    pub fn audit_op(&self, draft: AuditDraft) -> Result<(u64, Op), StoreError> {
        let seq = self.next_id()?;
        let key = key_seq(&draft.account_id, seq);
        let entry = draft.into_entry(seq);
        Ok((seq, (T::Audit, key, Some(encode(&entry)))))
    }

    pub fn outbox_op(&self, mut mail: OutboxMail) -> Result<Op, StoreError> {
        mail.id = self.next_id()?;
        Ok((
            T::Outbox,
            mail.id.to_be_bytes().to_vec(),
            Some(encode(&mail)),
        ))
    }

    pub fn event_op(&self, event: DomainEvent, cause_seq: Option<u64>) -> Result<Op, StoreError> {
        let id = self.next_id()?;
        let queued = QueuedEvent {
            id,
            cause_seq,
            event,
            attempts: 0,
        };
        Ok((
            T::HookQueue,
            id.to_be_bytes().to_vec(),
            Some(encode(&queued)),
        ))
    }

    /// Items of a queue tree (outbox, hook queue), oldest first, at most `limit`.
    pub fn queue_items<V: serde::de::DeserializeOwned>(
        &self,
        t: T,
        limit: usize,
    ) -> Result<Vec<V>, StoreError> {
        self.queue_items_up_to(t, u64::MAX, limit)
    }

    /// Items of a queue tree that are on disk (ids up to the last flush),
    /// oldest first, at most `limit`: what a worker may act on.
    pub fn durable_queue_items<V: serde::de::DeserializeOwned>(
        &self,
        t: T,
        limit: usize,
    ) -> Result<Vec<V>, StoreError> {
        let durable = self.durable_id.load(std::sync::atomic::Ordering::Acquire);
        self.queue_items_up_to(t, durable, limit)
    }

    fn queue_items_up_to<V: serde::de::DeserializeOwned>(
        &self,
        t: T,
        last_id: u64,
        limit: usize,
    ) -> Result<Vec<V>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(t).range(..=last_id.to_be_bytes()).take(limit) {
            let (_, v) = item?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    /// The write that puts a queue item (for the writer to commit).
    pub fn queue_put<V: Serialize>(t: T, id: u64, value: &V) -> Op {
        (t, id.to_be_bytes().to_vec(), Some(encode(value)))
    }

    /// The write that removes a queue item (for the writer to commit).
    pub fn queue_remove(t: T, id: u64) -> Op {
        (t, id.to_be_bytes().to_vec(), None)
    }

    pub fn queue_len(&self, t: T) -> usize {
        self.tree(t).len()
    }
}

impl StateView for Store {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.get(T::Accounts, id.as_bytes())?)
    }

    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(self.get(T::Users, &key2(account_id, user_id))?)
    }

    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        let key = key2(account_id, &normalize_email(email));
        match self
            .tree(T::EmailIndex)
            .get(key)
            .map_err(StoreError::from)?
        {
            Some(user_id) => {
                let user_id = String::from_utf8_lossy(&user_id).into_owned();
                self.user(account_id, &user_id)
            }
            None => Ok(None),
        }
    }

    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        let p = prefix(account_id);
        let start = match after {
            // Just past `after`: append a NUL byte, the smallest suffix.
            Some(a) => {
                let mut k = key2(account_id, a);
                k.push(0);
                k
            }
            None => p.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree(T::Users).range(start..) {
            let (k, v) = item.map_err(StoreError::from)?;
            if !k.starts_with(&p) || out.len() >= limit {
                break;
            }
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        let mut out = Vec::new();
        for item in self
            .tree(T::Integrations)
            .scan_prefix(prefix(account_id))
            .take(limit)
        {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        Ok(self.get(T::Integrations, &key2(account_id, id))?)
    }

    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        Ok(self.get(T::Tokens, hash.as_bytes())?)
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(self.get(T::Sessions, hash.as_bytes())?)
    }

    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        let mut out = Vec::new();
        for item in self
            .tree(T::Invoices)
            .scan_prefix(prefix(account_id))
            .rev()
            .take(limit)
        {
            let (_, v) = item.map_err(StoreError::from)?;
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        Ok(self
            .tree(T::WebhooksSeen)
            .contains_key(key2(source, webhook_id))
            .map_err(StoreError::from)?)
    }

    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        Ok(self.get(T::LicenceRequests, id.as_bytes())?)
    }

    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let p = prefix(account_id);
        let mut out = Vec::new();
        for item in self.tree(T::AccountLicences).scan_prefix(&p).take(limit) {
            let (k, _) = item.map_err(StoreError::from)?;
            if let Some(r) = self.get(T::LicenceRequests, &k[p.len()..])? {
                out.push(r);
            }
        }
        out.sort_by_key(|r: &LicenceRequest| r.created_at);
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
        for item in self.tree(T::LicenceRequests).iter() {
            let (_, v) = item.map_err(StoreError::from)?;
            let r: LicenceRequest = decode(&v).map_err(StoreError::from)?;
            if status.is_none_or(|s| s == r.status) {
                out.push(r);
            }
        }
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
        let start = key_seq(account_id, after.map(|a| a.saturating_add(1)).unwrap_or(0));
        let mut out = Vec::new();
        for item in self.tree(T::Audit).range(start..) {
            let (k, v) = item.map_err(StoreError::from)?;
            if !k.starts_with(&p) || out.len() >= limit {
                break;
            }
            out.push(decode(&v).map_err(StoreError::from)?);
        }
        Ok(out)
    }
}

impl Store {
    /// Forgets webhook ids received before `cutoff` (senders retry for a
    /// few days; ids are kept longer than that). Returns how many went.
    /// The writes that forget webhook ids received before `cutoff`, at most
    /// `max` (for the writer to commit).
    pub fn expired_webhook_ids(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Op>, StoreError> {
        let mut ops = Vec::new();
        for item in self.tree(T::WebhooksSeen).iter() {
            if ops.len() >= max {
                break;
            }
            let (k, v) = item?;
            let at: DateTime<Utc> = decode(&v)?;
            if at < cutoff {
                ops.push((T::WebhooksSeen, k.to_vec(), None));
            }
        }
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_kept_seven_days_then_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let old = now - chrono::Duration::days(8);
        let ops = store
            .ops_for(&[
                Change::PutWebhookSeen {
                    source: "crm".into(),
                    webhook_id: "old".into(),
                    at: old,
                },
                Change::PutWebhookSeen {
                    source: "crm".into(),
                    webhook_id: "new".into(),
                    at: now,
                },
            ])
            .unwrap();
        store.commit(&ops).unwrap();
        let expired = store
            .expired_webhook_ids(
                now - chrono::Duration::days(crate::webhooks::SEEN_KEEP_DAYS),
                100,
            )
            .unwrap();
        assert_eq!(expired.len(), 1);
        store.commit(&expired).unwrap();
        assert!(!store.webhook_seen("crm", "old").unwrap());
        assert!(store.webhook_seen("crm", "new").unwrap());
    }
}
