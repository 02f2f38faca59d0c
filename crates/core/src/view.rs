//! The narrow read interface the core needs from a store. A second store
//! implements this trait (and applies [`super::Change`]s); the rules do not
//! change.

use std::sync::Arc;

use super::model::*;
use super::refusal::ViewError;

pub trait StateView {
    fn account(&self, id: &str) -> Result<Option<Account>, ViewError>;
    /// [`StateView::account`], shared: a store that caches accounts hands
    /// out its cached value without copying it (every account-scoped read
    /// checks its caller against the account).
    fn account_shared(&self, id: &str) -> Result<Option<Arc<Account>>, ViewError> {
        Ok(self.account(id)?.map(Arc::new))
    }
    /// Accounts ordered by id, strictly after `after`, at most `limit`.
    fn accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, ViewError>;
    fn user(&self, account_id: &str, user_id: &str) -> Result<Option<User>, ViewError>;
    /// [`StateView::user`], shared: a store that caches users hands out
    /// its cached value without copying it (a read's access check and the
    /// owner it answers with are two users per request).
    fn user_shared(&self, account_id: &str, user_id: &str) -> Result<Option<Arc<User>>, ViewError> {
        Ok(self.user(account_id, user_id)?.map(Arc::new))
    }
    /// The user holding `email` (any case) in the account.
    fn user_by_email(&self, account_id: &str, email: &str) -> Result<Option<User>, ViewError>;
    /// Members ordered by id, strictly after `after`, at most `limit`.
    /// Shared (`Arc`): a store that caches an account's members hands out
    /// its cached values without copying them for every read.
    fn members(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<User>>, ViewError>;
    /// Members ordered by id, strictly before `before`, the nearest first,
    /// at most `limit` (the team list's previous page).
    fn members_before(
        &self,
        account_id: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<User>, ViewError>;
    fn integrations(&self, account_id: &str, limit: usize) -> Result<Vec<Integration>, ViewError>;
    /// Support cases (investigations and the account's requests) of one
    /// account, or of every account (`None`), in key order, at most `limit`.
    fn investigations(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SecurityInvestigation>, ViewError>;
    fn integration(&self, account_id: &str, id: &str) -> Result<Option<Integration>, ViewError>;
    fn token(&self, hash: &str) -> Result<Option<Token>, ViewError>;
    fn session(&self, hash: &str) -> Result<Option<Session>, ViewError>;
    /// [`StateView::session`], shared from a store's cache (every request
    /// of a signed-in member looks one up).
    fn session_shared(&self, hash: &str) -> Result<Option<Arc<Session>>, ViewError> {
        Ok(self.session(hash)?.map(Arc::new))
    }
    /// Newest first, at most `limit`.
    fn invoices(&self, account_id: &str, limit: usize) -> Result<Vec<Invoice>, ViewError>;
    /// Whether a webhook id from `source` was already recorded.
    fn webhook_seen(&self, source: &str, webhook_id: &str) -> Result<bool, ViewError>;
    fn licence_request(&self, id: &str) -> Result<Option<LicenceRequest>, ViewError>;
    /// An account's requests, oldest first, at most `limit`.
    fn account_licence_requests(
        &self,
        account_id: &str,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError>;
    /// Requests of every account in `status`, oldest first, at most `limit`.
    fn licence_requests(
        &self,
        status: Option<LicenceStatus>,
        limit: usize,
    ) -> Result<Vec<LicenceRequest>, ViewError>;
    /// Policies switched off or back on, by name, at most `limit`.
    fn policy_switches(&self, limit: usize) -> Result<Vec<PolicySwitch>, ViewError>;
    /// Oldest first, entries with `seq > after`, at most `limit`.
    fn audit(
        &self,
        account_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError>;
    /// Newest first, entries with `seq < before`, at most `limit`.
    fn audit_newest(
        &self,
        account_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ViewError>;
}
