//! A second store, in memory: the core runs against it unchanged. Used by
//! the property tests and benchmarks, and the proof that the core needs
//! nothing from sled.

use std::collections::BTreeMap;

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
    pub webhooks_seen: BTreeMap<(String, String), chrono::DateTime<chrono::Utc>>,
}

impl MemoryStore {
    /// Applies an outcome the way the sled store does, minus durability.
    pub fn apply(&mut self, outcome: &Outcome) {
        for change in &outcome.changes {
            match change.clone() {
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
        if let Some(draft) = outcome.audit.clone() {
            let seq = self.audit.len() as u64 + 1;
            self.audit.push(draft.into_entry(seq));
        }
    }
}

impl StateView for MemoryStore {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError> {
        Ok(self.accounts.get(id).cloned())
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
