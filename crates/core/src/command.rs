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
}

impl Principal {
    pub fn audit_name(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Operator => "operator".into(),
            Principal::Member { user_id, .. } => format!("user:{user_id}"),
            Principal::Policy { name } => format!("policy:{name}"),
            Principal::Webhook { source } => format!("webhook:{source}"),
        }
    }
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::Member { user_id, .. } => Some(user_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateAccount {
        name: String,
        owner_name: String,
        owner_email: String,
        support_seats: u32,
    },
    AddMember {
        account_id: AccountId,
        name: String,
        email: String,
        role: SupportRole,
    },
    ChangeRole {
        account_id: AccountId,
        user_id: UserId,
        role: SupportRole,
    },
    RemoveMember {
        account_id: AccountId,
        user_id: UserId,
    },
    TransferOwnership {
        account_id: AccountId,
        to_user_id: UserId,
    },
    SetSeats {
        account_id: AccountId,
        support_seats: Option<u32>,
        sell_seats: Option<u32>,
    },
    SetPaymentMethod {
        account_id: AccountId,
        kind: String,
        last4: String,
    },
    AddIntegration {
        account_id: AccountId,
        name: String,
    },
    AuthorizeIntegration {
        account_id: AccountId,
        integration_id: String,
    },
    RequestPasswordReset {
        account_id: AccountId,
        email: String,
    },
    /// `token_hash` is the SHA-256 of the mailed token; `password_hash` the
    /// argon2id PHC string of the new password (hashed off the write path).
    ConfirmPasswordReset {
        token_hash: String,
        password_hash: String,
    },
    /// The edge checked the password against `verified_hash`; the core
    /// re-checks that it is still the user's hash (compare-and-set).
    CreateSession {
        account_id: AccountId,
        user_id: UserId,
        email: String,
        verified_hash: String,
        token_hash: String,
    },
    RevokeSession {
        token_hash: String,
    },
    OpenSecurityInvestigation {
        account_id: AccountId,
        note: String,
    },
    AddEmail {
        account_id: AccountId,
        user_id: UserId,
        address: String,
    },
    ConfirmEmailVerification {
        token_hash: String,
    },
    MakePrimaryEmail {
        account_id: AccountId,
        user_id: UserId,
        address: String,
    },
    RemoveEmail {
        account_id: AccountId,
        user_id: UserId,
        address: String,
    },
    /// Mails a member who never set a password a new password-set link.
    ResendInvitation {
        account_id: AccountId,
        user_id: UserId,
    },
    /// A member's name (the profile hand-over ends with it, R16).
    RenameMember {
        account_id: AccountId,
        user_id: UserId,
        name: String,
    },
    RequestLicence {
        account_id: AccountId,
        product: Product,
        seats: u32,
        reason: String,
    },
    GrantLicence {
        request_id: String,
        seats: u32,
        expires_at: DateTime<Utc>,
    },
    DenyLicence {
        request_id: String,
        reason: String,
    },
    StartSellTrial {
        account_id: AccountId,
    },
    GrantSell {
        account_id: AccountId,
        user_id: UserId,
        role: SellRole,
    },
    ChangeSellRole {
        account_id: AccountId,
        user_id: UserId,
        role: SellRole,
    },
    RemoveSell {
        account_id: AccountId,
        user_id: UserId,
    },
    AppointSellAdmin {
        account_id: AccountId,
        user_id: UserId,
    },
    /// A policy mails a member of the account.
    PolicyNotify {
        account_id: AccountId,
        address: String,
        subject: String,
        body: String,
    },
    /// A verified webhook delivery: recorded (deduplicated by `webhook_id`)
    /// with its effect in one transaction.
    ReceiveWebhook {
        source: String,
        webhook_id: String,
        kind: String,
        data: serde_json::Value,
    },
    /// A policy (or an admin) marks an integration as needing reauthorization.
    FlagIntegration {
        account_id: AccountId,
        integration_id: String,
    },
    /// Records a hook call that decided or acted (causal audit).
    RecordPolicyCall {
        account_id: AccountId,
        call: PolicyCallRecord,
    },
    /// Audits a script saved from the console (platform support): its name
    /// and the diff from the version it replaced.
    RecordPolicySave {
        name: String,
        diff: String,
    },
    /// Switches a policy off (break-glass) or back on (platform support).
    SetPolicySwitch {
        name: String,
        disabled: bool,
        reason: String,
    },
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

impl CommandInfo<'_> {
    pub fn subject(&self) -> AuditSubject {
        AuditSubject {
            action: self.action,
            account_id: self.account_id.map(str::to_string),
            target: self.target.to_string(),
        }
    }
}

impl Command {
    /// The `before_` hook running it may ask ([`super::PolicyGate`]):
    /// every command that changes people or money asks one.
    pub fn before_hook(&self) -> Option<&'static str> {
        Some(match self {
            Command::TransferOwnership { .. } => "before_owner_change",
            Command::AddMember { .. } => "before_member_add",
            Command::RemoveMember { .. } => "before_member_remove",
            Command::ChangeRole { .. } => "before_role_change",
            Command::SetSeats { .. } => "before_seat_change",
            Command::MakePrimaryEmail { .. } => "before_email_primary",
            Command::GrantSell { .. }
            | Command::ChangeSellRole { .. }
            | Command::RemoveSell { .. } => "before_sell_role_change",
            _ => return None,
        })
    }

    /// The audit log's view of the command: one arm per command, so adding
    /// a command adds one line here. Allocates nothing.
    pub fn info(&self) -> CommandInfo<'_> {
        fn with<'a>(
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
        use Command as C;
        match self {
            C::CreateAccount { name, .. } => with("account.create", None, Target::Account(name)),
            C::AddMember {
                account_id, email, ..
            } => with("member.add", Some(account_id), Target::Email(email)),
            C::ChangeRole {
                account_id,
                user_id,
                ..
            } => with(
                "member.change_role",
                Some(account_id),
                Target::User(user_id),
            ),
            C::RemoveMember {
                account_id,
                user_id,
            } => with("member.remove", Some(account_id), Target::User(user_id)),
            C::TransferOwnership {
                account_id,
                to_user_id,
            } => with("owner.transfer", Some(account_id), Target::User(to_user_id)),
            C::SetSeats { account_id, .. } => with(
                "billing.set_seats",
                Some(account_id),
                Target::Account(account_id),
            ),
            C::SetPaymentMethod { account_id, .. } => with(
                "billing.set_payment_method",
                Some(account_id),
                Target::Account(account_id),
            ),
            C::AddIntegration { account_id, name } => with(
                "integration.add",
                Some(account_id),
                Target::Integration(name),
            ),
            C::AuthorizeIntegration {
                account_id,
                integration_id,
            } => with(
                "integration.authorize",
                Some(account_id),
                Target::Integration(integration_id),
            ),
            C::RequestPasswordReset { account_id, .. } => with(
                "password_reset.request",
                Some(account_id),
                Target::Named("password"),
            ),
            C::ConfirmPasswordReset { .. } => {
                with("password_reset.confirm", None, Target::Named("password"))
            }
            C::CreateSession {
                account_id,
                user_id,
                ..
            } => with("session.create", Some(account_id), Target::User(user_id)),
            C::RevokeSession { .. } => with("session.revoke", None, Target::Named("session")),
            C::OpenSecurityInvestigation { account_id, .. } => with(
                "security_investigation.open",
                Some(account_id),
                Target::Account(account_id),
            ),
            C::AddEmail {
                account_id,
                user_id,
                address,
            } => with(
                "email.add",
                Some(account_id),
                Target::UserEmail(user_id, address),
            ),
            C::ConfirmEmailVerification { .. } => {
                with("email.verify", None, Target::Named("email"))
            }
            C::MakePrimaryEmail {
                account_id,
                user_id,
                address,
            } => with(
                "email.make_primary",
                Some(account_id),
                Target::UserEmail(user_id, address),
            ),
            C::RemoveEmail {
                account_id,
                user_id,
                address,
            } => with(
                "email.remove",
                Some(account_id),
                Target::UserEmail(user_id, address),
            ),
            C::RenameMember {
                account_id,
                user_id,
                ..
            } => with("member.rename", Some(account_id), Target::User(user_id)),
            C::ResendInvitation {
                account_id,
                user_id,
            } => with(
                "member.resend_invitation",
                Some(account_id),
                Target::User(user_id),
            ),
            C::RequestLicence { account_id, .. } => with(
                "licence_request.file",
                Some(account_id),
                Target::Account(account_id),
            ),
            C::GrantLicence { request_id, .. } => with(
                "licence_request.grant",
                None,
                Target::LicenceRequest(request_id),
            ),
            C::DenyLicence { request_id, .. } => with(
                "licence_request.deny",
                None,
                Target::LicenceRequest(request_id),
            ),
            C::StartSellTrial { account_id } => with(
                "sell.start_trial",
                Some(account_id),
                Target::Account(account_id),
            ),
            C::GrantSell {
                account_id,
                user_id,
                ..
            } => with("sell.grant", Some(account_id), Target::User(user_id)),
            C::ChangeSellRole {
                account_id,
                user_id,
                ..
            } => with("sell.change_role", Some(account_id), Target::User(user_id)),
            C::RemoveSell {
                account_id,
                user_id,
            } => with("sell.remove", Some(account_id), Target::User(user_id)),
            C::AppointSellAdmin {
                account_id,
                user_id,
            } => with(
                "sell.appoint_admin",
                Some(account_id),
                Target::User(user_id),
            ),
            C::PolicyNotify {
                account_id,
                address,
                ..
            } => with("policy.notify", Some(account_id), Target::Email(address)),
            C::ReceiveWebhook {
                source, webhook_id, ..
            } => with("webhook.receive", None, Target::Webhook(source, webhook_id)),
            C::FlagIntegration {
                account_id,
                integration_id,
            } => with(
                "integration.flag",
                Some(account_id),
                Target::Integration(integration_id),
            ),
            C::RecordPolicyCall { account_id, call } => {
                with("policy.call", Some(account_id), Target::Hook(&call.hook))
            }
            C::RecordPolicySave { name, .. } => with("policy.save", None, Target::Policy(name)),
            C::SetPolicySwitch { name, disabled, .. } => with(
                if *disabled {
                    "policy.disable"
                } else {
                    "policy.enable"
                },
                None,
                Target::Policy(name),
            ),
        }
    }

    /// Stable action name for the audit log and metrics.
    pub fn action(&self) -> &'static str {
        self.info().action
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
