//! The memory backend: the whole store in maps, nothing durable. It
//! implements the same [`Backend`] as sled, so the writer, the queues and
//! the core run on it unchanged: the proof that nothing above the store
//! needs sled, and a fast store for tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use super::backend::{
    forward_state_view, Backend, Order, QueueName, QueuedEvent, Record, RecordVisit, Restore,
    StoreError, Transaction, Visit, Write,
};
use crate::domain::*;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    pub accounts: BTreeMap<String, Account>,
    pub users: BTreeMap<(String, String), User>,
    pub email_index: BTreeMap<(String, String), String>,
    pub integrations: BTreeMap<(String, String), Integration>,
    pub tokens: BTreeMap<String, Token>,
    pub sessions: BTreeMap<String, Session>,
    pub invoices: Vec<Invoice>,
    pub investigations: Vec<SecurityInvestigation>,
    pub audit: Vec<AuditEntry>,
    pub licence_requests: BTreeMap<String, LicenceRequest>,
    pub policy_switches: BTreeMap<String, PolicySwitch>,
    pub webhooks_seen: BTreeMap<(String, String), chrono::DateTime<chrono::Utc>>,
}

impl MemoryStore {
    /// Applies domain changes the way the sled store does, minus durability.
    pub fn apply_changes(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::PutAccount(a) => {
                    self.accounts.insert(a.id.clone(), a);
                }
                Change::PutUser(u) => {
                    self.users.insert((u.account_id.clone(), u.id.clone()), u);
                }
                Change::DeleteUser {
                    account_id,
                    user_id,
                } => {
                    self.users.remove(&(account_id, user_id));
                }
                Change::PutEmailIndex {
                    account_id,
                    email,
                    user_id,
                } => {
                    self.email_index
                        .insert((account_id, normalize_email(&email)), user_id);
                }
                Change::DeleteEmailIndex { account_id, email } => {
                    self.email_index
                        .remove(&(account_id, normalize_email(&email)));
                }
                Change::PutIntegration(i) => {
                    self.integrations
                        .insert((i.account_id.clone(), i.id.clone()), i);
                }
                Change::PutToken(t) => {
                    self.tokens.insert(t.hash.clone(), t);
                }
                Change::DeleteToken { hash } => {
                    self.tokens.remove(&hash);
                }
                Change::PutSession(s) => {
                    self.sessions.insert(s.hash.clone(), s);
                }
                Change::DeleteSession { hash } => {
                    self.sessions.remove(&hash);
                }
                Change::DeleteUserSessions {
                    account_id,
                    user_id,
                } => {
                    self.sessions
                        .retain(|_, s| !(s.account_id == account_id && s.user_id == user_id));
                }
                Change::DeleteSessionsSignedInWith {
                    account_id,
                    user_id,
                    email,
                } => {
                    self.sessions.retain(|_, s| {
                        !(s.account_id == account_id
                            && s.user_id == user_id
                            && normalize_email(&s.email) == normalize_email(&email))
                    });
                }
                Change::PutLicenceRequest(r) => {
                    self.licence_requests.insert(r.id.clone(), r);
                }
                Change::PutPolicySwitch(p) => {
                    self.policy_switches.insert(p.name.clone(), p);
                }
                Change::PutWebhookSeen {
                    source,
                    webhook_id,
                    at,
                } => {
                    self.webhooks_seen.insert((source, webhook_id), at);
                }
                Change::PutInvoice(i) => self.invoices.push(i),
                Change::PutInvestigation(i) => self.investigations.push(i),
            }
        }
    }
}

impl StateView for MemoryStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.accounts.get(id).cloned())
    }
    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError> {
        Ok(self
            .accounts
            .values()
            .filter(|a| after.is_none_or(|after| a.id.as_str() > after))
            .take(limit)
            .cloned()
            .collect())
    }
    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError> {
        Ok(self
            .users
            .get(&(account_id.to_string(), user_id.to_string()))
            .cloned())
    }
    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError> {
        match self
            .email_index
            .get(&(account_id.to_string(), normalize_email(email)))
        {
            Some(id) => self.user(account_id, id),
            None => Ok(None),
        }
    }
    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, ViewError> {
        Ok(self
            .users
            .iter()
            .filter(|((a, u), _)| a == account_id && after.is_none_or(|after| u.as_str() > after))
            .take(limit)
            .map(|(_, u)| u.clone())
            .collect())
    }
    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError> {
        Ok(self
            .integrations
            .iter()
            .filter(|((a, _), _)| a == account_id)
            .take(limit)
            .map(|(_, i)| i.clone())
            .collect())
    }
    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError> {
        Ok(self
            .integrations
            .get(&(account_id.to_string(), id.to_string()))
            .cloned())
    }
    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError> {
        Ok(self.tokens.get(hash).cloned())
    }
    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError> {
        Ok(self.sessions.get(hash).cloned())
    }
    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError> {
        Ok(self
            .invoices
            .iter()
            .rev()
            .filter(|i| i.account_id == account_id)
            .take(limit)
            .cloned()
            .collect())
    }
    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError> {
        Ok(self
            .webhooks_seen
            .contains_key(&(source.to_string(), webhook_id.to_string())))
    }
    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError> {
        Ok(self.policy_switches.values().take(limit).cloned().collect())
    }
    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError> {
        Ok(self.licence_requests.get(id).cloned())
    }
    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let mut out: Vec<_> = self
            .licence_requests
            .values()
            .filter(|r| r.account_id == account_id)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.created_at);
        out.truncate(limit);
        Ok(out)
    }
    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError> {
        let mut out: Vec<_> = self
            .licence_requests
            .values()
            .filter(|r| status.is_none_or(|s| s == r.status))
            .cloned()
            .collect();
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
        Ok(self
            .audit
            .iter()
            .filter(|e| e.account_id == account_id && after.is_none_or(|a| e.seq > a))
            .take(limit)
            .cloned()
            .collect())
    }
}

/// Everything of [`MemoryStore`] plus the queues and worker records.
#[derive(Default)]
struct Inner {
    state: MemoryStore,
    queues: BTreeMap<(QueueName, u64), Vec<u8>>,
    subscribers: BTreeMap<String, Vec<u8>>,
}

/// The memory backend (see the module's documentation).
pub struct MemoryBackend {
    inner: RwLock<Inner>,
    last_id: AtomicU64,
    installation_id: String,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            inner: RwLock::default(),
            last_id: AtomicU64::new(0),
            installation_id: "0".repeat(32),
        }
    }
}

impl MemoryBackend {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are still whole
        // (every write is one insert or remove), so poisoning is ignored.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn id(&self) -> u64 {
        self.last_id.fetch_add(1, Ordering::AcqRel) + 1
    }
}

forward_state_view!(MemoryBackend, self => self.read().state);

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn installation_id(&self) -> &str {
        &self.installation_id
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.id())
    }

    fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        // Ids first, then one write lock: readers see all of it or none.
        let seq = tx.audit.as_ref().map(|_| self.id());
        let mails: Vec<_> = tx
            .mails
            .into_iter()
            .map(|mut m| {
                m.id = self.id();
                m
            })
            .collect();
        let events: Vec<_> = tx
            .events
            .into_iter()
            .map(|event| QueuedEvent {
                id: self.id(),
                cause_seq: seq,
                event,
                attempts: 0,
            })
            .collect();
        let mut inner = self.write();
        inner.state.apply_changes(tx.changes);
        if let (Some(draft), Some(seq)) = (tx.audit, seq) {
            inner.state.audit.push(draft.into_entry(seq));
        }
        for mail in mails {
            inner
                .queues
                .insert((QueueName::Outbox, mail.id), super::codec::encode(&mail));
        }
        for event in events {
            inner
                .queues
                .insert((QueueName::Hooks, event.id), super::codec::encode(&event));
        }
        for write in tx.writes {
            match write {
                Write::QueuePut { queue, id, value } => {
                    inner.queues.insert((queue, id), value);
                }
                Write::QueueRemove { queue, id } => {
                    inner.queues.remove(&(queue, id));
                }
                Write::PutSubscriberState { name, value } => {
                    inner.subscribers.insert(name, value);
                }
                Write::ForgetAudit { scope, seq } => inner
                    .state
                    .audit
                    .retain(|e| !(e.account_id == scope && e.seq == seq)),
                Write::ForgetWebhook { source, webhook_id } => {
                    inner.state.webhooks_seen.remove(&(source, webhook_id));
                }
            }
        }
        Ok(())
    }

    /// Nothing is on disk; everything committed counts as durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn durable_id(&self) -> u64 {
        u64::MAX
    }

    fn queue_scan(
        &self,
        queue: QueueName,
        order: Order,
        each: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        // Copied out so `each` may take as long as it likes without the lock.
        let items: Vec<(u64, Vec<u8>)> = self
            .read()
            .queues
            .range((queue, 0)..=(queue, u64::MAX))
            .map(|((_, id), v)| (*id, v.clone()))
            .collect();
        let mut visit = |(id, v): (u64, Vec<u8>)| each(id, &v);
        match order {
            Order::OldestFirst => {
                for item in items {
                    if !visit(item)? {
                        break;
                    }
                }
            }
            Order::NewestFirst => {
                for item in items.into_iter().rev() {
                    if !visit(item)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn queue_item(&self, queue: QueueName, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().queues.get(&(queue, id)).cloned())
    }

    fn queue_len(&self, queue: QueueName) -> Result<usize, StoreError> {
        Ok(self
            .read()
            .queues
            .range((queue, 0)..=(queue, u64::MAX))
            .count())
    }

    fn subscriber_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().subscribers.get(name).cloned())
    }

    fn expired_audit(&self, cutoff: DateTime<Utc>, max: usize) -> Result<Vec<Write>, StoreError> {
        Ok(self
            .read()
            .state
            .audit
            .iter()
            .filter(|e| e.at < cutoff)
            .take(max)
            .map(|e| Write::ForgetAudit {
                scope: e.account_id.clone(),
                seq: e.seq,
            })
            .collect())
    }

    fn expired_webhook_ids(
        &self,
        cutoff: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<Write>, StoreError> {
        Ok(self
            .read()
            .state
            .webhooks_seen
            .iter()
            .filter(|(_, at)| **at < cutoff)
            .take(max)
            .map(|((source, webhook_id), _)| Write::ForgetWebhook {
                source: source.clone(),
                webhook_id: webhook_id.clone(),
            })
            .collect())
    }

    fn audit_since(
        &self,
        since: DateTime<Utc>,
        scope: Option<&str>,
        each: &mut dyn FnMut(&AuditEntry) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut entries: Vec<AuditEntry> = self
            .read()
            .state
            .audit
            .iter()
            .filter(|e| e.at >= since && scope.is_none_or(|s| e.account_id == s))
            .cloned()
            .collect();
        entries.sort_by(|a, b| (&a.account_id, a.seq).cmp(&(&b.account_id, b.seq)));
        for entry in &entries {
            each(entry)?;
        }
        Ok(entries.len() as u64)
    }

    fn export(&self, each: &mut RecordVisit<'_>) -> Result<(), StoreError> {
        let records: Vec<Record> = {
            let inner = self.read();
            let st = &inner.state;
            let mut out: Vec<Record> = Vec::new();
            out.extend(
                st.accounts
                    .values()
                    .cloned()
                    .map(|value| Record::Account { value }),
            );
            out.extend(
                st.users
                    .values()
                    .cloned()
                    .map(|value| Record::User { value }),
            );
            out.extend(st.email_index.iter().map(|((a, e), u)| Record::EmailIndex {
                account_id: a.clone(),
                email: e.clone(),
                user_id: u.clone(),
            }));
            out.extend(
                st.integrations
                    .values()
                    .cloned()
                    .map(|value| Record::Integration { value }),
            );
            out.extend(
                st.tokens
                    .values()
                    .cloned()
                    .map(|value| Record::Token { value }),
            );
            out.extend(
                st.sessions
                    .values()
                    .cloned()
                    .map(|value| Record::Session { value }),
            );
            out.extend(
                st.invoices
                    .iter()
                    .cloned()
                    .map(|value| Record::Invoice { value }),
            );
            out.extend(
                st.investigations
                    .iter()
                    .cloned()
                    .map(|value| Record::Investigation { value }),
            );
            out.extend(
                st.licence_requests
                    .values()
                    .cloned()
                    .map(|value| Record::LicenceRequest { value }),
            );
            out.extend(
                st.policy_switches
                    .values()
                    .cloned()
                    .map(|value| Record::PolicySwitch { value }),
            );
            out.extend(
                st.webhooks_seen
                    .iter()
                    .map(|((source, id), at)| Record::WebhookSeen {
                        source: source.clone(),
                        webhook_id: id.clone(),
                        at: *at,
                    }),
            );
            out.extend(
                st.audit
                    .iter()
                    .cloned()
                    .map(|value| Record::Audit { value }),
            );
            for ((queue, id), v) in &inner.queues {
                out.push(Record::QueueItem {
                    queue: *queue,
                    id: *id,
                    value: super::codec::decode(v)?,
                });
            }
            for (name, v) in &inner.subscribers {
                out.push(Record::SubscriberState {
                    name: name.clone(),
                    value: super::codec::decode(v)?,
                });
            }
            out
        };
        for record in records {
            if !each(record)? {
                break;
            }
        }
        Ok(())
    }

    fn restore(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut inner = self.write();
        let mut changes = Vec::new();
        let mut max_id = 0;
        for record in records {
            match record.into_restore() {
                Restore::Change(change) => changes.push(change),
                Restore::Audit(value) => {
                    max_id = max_id.max(value.seq);
                    inner.state.audit.push(value);
                }
                Restore::QueueItem { queue, id, value } => {
                    if queue.keyed_by_id() {
                        max_id = max_id.max(id);
                    }
                    inner
                        .queues
                        .insert((queue, id), super::codec::encode(&value));
                }
                Restore::SubscriberState { name, value } => {
                    inner.subscribers.insert(name, super::codec::encode(&value));
                }
            }
        }
        inner.state.apply_changes(changes);
        inner.state.audit.sort_by_key(|e| e.seq);
        self.last_id.fetch_max(max_id, Ordering::AcqRel);
        Ok(())
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        let inner = self.read();
        Ok(inner.state.accounts.is_empty() && inner.state.audit.is_empty())
    }
}
