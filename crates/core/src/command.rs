//! What callers ask the core to do, and what it answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::{DomainEvent, IntegrationRef};
use super::model::*;

/// Who is asking. The core decides every permission from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    Anonymous,
    /// Platform support (R19): outside every account.
    Operator,
    Member {
        account_id: AccountId,
        user_id: UserId,
    },
    /// A policy script or plugin acting through the same commands (docs/rules.md
    /// "Hooks"); named as the actor in the audit log.
    Policy {
        name: String,
    },
    /// A verified webhook from a configured source.
    Webhook {
        source: String,
    },
    /// The customer's directory (SCIM) through one of the account's
    /// tokens: the powers of the admin who created the token (`acting_for`),
    /// never ownership or billing, never "the person" of a profile.
    Directory {
        account_id: AccountId,
        token_id: String,
        name: String,
        acting_for: UserId,
    },
}

impl Principal {
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Operator => "operator".into(),
            Principal::Member { user_id, .. } => format!("user:{user_id}"),
            Principal::Policy { name } => format!("policy:{name}"),
            Principal::Webhook { source } => format!("webhook:{source}"),
            Principal::Directory { name, .. } => format!("directory:{name}"),
        }
    }
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::Member { user_id, .. } => Some(user_id),
            _ => None,
        }
    }
}

/// One hook call, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCallRecord {
    pub hook: String,
    pub version: String,
    /// `allowed`, `denied`, `acted` or `failed`.
    pub decision: String,
    pub actions: Vec<String>,
    pub duration_us: u64,
    pub error: Option<String>,
    pub cause_seq: Option<u64>,
}

/// What the audit log says of a command: its stable action name, the
/// account it belongs to (when known before it runs) and what it acts on
/// (never a secret).
pub struct CommandInfo<'a> {
    pub action: &'static str,
    pub account_id: Option<&'a str>,
    pub target: Target<'a>,
}

/// What a command acts on, formatted only when an audit entry is written.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Account(&'a str),
    User(&'a str),
    Email(&'a str),
    UserEmail(&'a str, &'a str),
    Integration(&'a str),
    LicenceRequest(&'a str),
    Webhook(&'a str, &'a str),
    Hook(&'a str),
    Policy(&'a str),
    Named(&'static str),
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Account(a) => write!(f, "account:{a}"),
            Target::User(u) => write!(f, "user:{u}"),
            Target::Email(e) => write!(f, "email:{e}"),
            Target::UserEmail(u, e) => write!(f, "user:{u} email:{e}"),
            Target::Integration(i) => write!(f, "integration:{i}"),
            Target::LicenceRequest(r) => write!(f, "licence_request:{r}"),
            Target::Webhook(s, id) => write!(f, "webhook:{s}/{id}"),
            Target::Hook(h) => write!(f, "hook:{h}"),
            Target::Policy(p) => write!(f, "policy:{p}"),
            Target::Named(n) => f.write_str(n),
        }
    }
}

/// The audit view of a command kept while the command runs (it is moved
/// into the core): what a refusal's audit entry needs, and no more.
#[derive(Debug, Clone)]
pub struct AuditSubject {
    pub action: &'static str,
    pub account_id: Option<AccountId>,
    pub target: String,
}

impl<'a> CommandInfo<'a> {
    pub(crate) fn of(
        action: &'static str,
        account_id: Option<&'a str>,
        target: Target<'a>,
    ) -> CommandInfo<'a> {
        CommandInfo {
            action,
            account_id,
            target,
        }
    }

    pub fn subject(&self) -> AuditSubject {
        AuditSubject {
            action: self.action,
            account_id: self.account_id.map(str::to_string),
            target: self.target.to_string(),
        }
    }
}

/// A state change for the store to apply, all of one outcome atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PutAccount(Account),
    PutUser(User),
    DeleteUser {
        account_id: AccountId,
        user_id: UserId,
    },
    PutEmailIndex {
        account_id: AccountId,
        email: String,
        user_id: UserId,
    },
    DeleteEmailIndex {
        account_id: AccountId,
        email: String,
    },
    PutIntegration(Integration),
    PutToken(Token),
    DeleteToken {
        hash: String,
    },
    PutSession(Session),
    DeleteSession {
        hash: String,
    },
    /// Ends every session of a user (password change, removal).
    DeleteUserSessions {
        account_id: AccountId,
        user_id: UserId,
    },
    /// Ends the sessions a user opened with `email` (R16: removing the
    /// address signs its holder out).
    DeleteSessionsSignedInWith {
        account_id: AccountId,
        user_id: UserId,
        email: String,
    },
    PutInvoice(Invoice),
    PutInvestigation(SecurityInvestigation),
    PutLicenceRequest(LicenceRequest),
    /// Remembers a webhook id (for deduplication) with when it arrived.
    PutWebhookSeen {
        source: String,
        webhook_id: String,
        at: DateTime<Utc>,
    },
    PutPolicySwitch(PolicySwitch),
}

impl Change {
    /// The account whose state, as a policy sees it (its members, seats,
    /// integrations, licence requests), this change touches; None for
    /// sessions, tokens and records of no account.
    pub fn account_state_of(&self) -> Option<&str> {
        match self {
            Change::PutAccount(a) => Some(&a.id),
            Change::PutUser(u) => Some(&u.account_id),
            Change::PutIntegration(i) => Some(&i.account_id),
            Change::PutInvoice(i) => Some(&i.account_id),
            Change::PutInvestigation(i) => Some(&i.account_id),
            Change::PutLicenceRequest(r) => Some(&r.account_id),
            Change::DeleteUser { account_id, .. }
            | Change::PutEmailIndex { account_id, .. }
            | Change::DeleteEmailIndex { account_id, .. } => Some(account_id),
            Change::PutToken(_)
            | Change::DeleteToken { .. }
            | Change::PutSession(_)
            | Change::DeleteSession { .. }
            | Change::DeleteUserSessions { .. }
            | Change::DeleteSessionsSignedInWith { .. }
            | Change::PutWebhookSeen { .. }
            | Change::PutPolicySwitch(_) => None,
        }
    }
}

/// A message to mail. Rendered and queued in the outbox in the same
/// transaction as the change that causes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    PasswordSet {
        to: String,
        user_name: String,
        account_name: String,
        account_id: AccountId,
        token: String,
    },
    PasswordReset {
        to: String,
        account_name: String,
        account_id: AccountId,
        token: String,
    },
    OwnershipReceived {
        to: String,
        account_id: AccountId,
        account_name: String,
        previous_owner_name: String,
        integrations: Vec<IntegrationRef>,
    },
    OwnershipHandedOver {
        to: String,
        account_id: AccountId,
        account_name: String,
        new_owner_name: String,
    },
    /// R13: told to every address the profile already had.
    EmailAdded {
        to: String,
        account_id: AccountId,
        account_name: String,
        user_name: String,
        added: String,
    },
    EmailVerification {
        to: String,
        account_id: AccountId,
        account_name: String,
        token: String,
    },
    PrimaryEmailChanged {
        to: String,
        account_id: AccountId,
        account_name: String,
        new_primary: String,
    },
    IntegrationRevoked {
        to: String,
        account_id: AccountId,
        account_name: String,
        integration_name: String,
        source: String,
    },
    /// A policy's own message (`notify`).
    Custom {
        to: String,
        account_id: AccountId,
        subject: String,
        body: String,
    },
    /// An invoice, to the owner and the billing contacts.
    InvoiceIssued {
        to: String,
        account_id: AccountId,
        account_name: String,
        support_seats: u32,
        sell_seats: u32,
        amount_cents: u64,
        currency: String,
    },
    LicenceRequestDecided {
        to: String,
        account_id: AccountId,
        account_name: String,
        product: Product,
        granted_seats: Option<u32>,
        expires_at: Option<DateTime<Utc>>,
        deny_reason: Option<String>,
    },
}

impl Notice {
    /// The account the message is about (its pages are linked from it).
    pub fn account_id(&self) -> &str {
        match self {
            Notice::PasswordSet { account_id, .. }
            | Notice::PasswordReset { account_id, .. }
            | Notice::OwnershipReceived { account_id, .. }
            | Notice::OwnershipHandedOver { account_id, .. }
            | Notice::EmailAdded { account_id, .. }
            | Notice::EmailVerification { account_id, .. }
            | Notice::PrimaryEmailChanged { account_id, .. }
            | Notice::LicenceRequestDecided { account_id, .. }
            | Notice::InvoiceIssued { account_id, .. }
            | Notice::Custom { account_id, .. }
            | Notice::IntegrationRevoked { account_id, .. } => account_id,
        }
    }

    pub fn recipient(&self) -> &str {
        match self {
            Notice::PasswordSet { to, .. }
            | Notice::PasswordReset { to, .. }
            | Notice::OwnershipReceived { to, .. }
            | Notice::OwnershipHandedOver { to, .. }
            | Notice::EmailAdded { to, .. }
            | Notice::EmailVerification { to, .. }
            | Notice::PrimaryEmailChanged { to, .. }
            | Notice::LicenceRequestDecided { to, .. }
            | Notice::InvoiceIssued { to, .. }
            | Notice::Custom { to, .. }
            | Notice::IntegrationRevoked { to, .. } => to,
        }
    }
}

/// The audit entry an outcome appends; the store gives it its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub account_id: AccountId,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
    pub cause: Option<u64>,
}

impl AuditDraft {
    pub fn into_entry(self, seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            account_id: self.account_id,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            detail: self.detail,
            cause: self.cause,
        }
    }
}

/// What a successful command hands back to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Account(Account),
    User(User),
    /// A member as the account's admins see them (the caller may not be one).
    Member {
        user: User,
        is_owner: bool,
        role_label: &'static str,
    },
    Integration(Integration),
    Investigation(SecurityInvestigation),
    LicenceRequest(LicenceRequest),
    /// A pending request of the same product, updated instead of a new one.
    LicenceRequestUpdated(LicenceRequest),
    Session(Session),
    /// A webhook delivery: whether it was seen before, and what it did.
    Webhook {
        duplicate: bool,
        effect: String,
    },
    /// A directory token, and the token itself: shown this once.
    ScimToken {
        token: ScimToken,
        secret: String,
    },
    /// Accepted without saying what happened (password-reset requests, R17).
    Accepted,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub notices: Vec<Notice>,
    pub events: Vec<DomainEvent>,
    pub audit: Option<AuditDraft>,
    pub reply: Reply,
}

impl Outcome {
    /// Nothing to change, mail, fire or audit (the request was already
    /// satisfied): just the reply.
    pub fn unchanged(reply: Reply) -> Self {
        Outcome {
            changes: vec![],
            notices: vec![],
            events: vec![],
            audit: None,
            reply,
        }
    }
}
