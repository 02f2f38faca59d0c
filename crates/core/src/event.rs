//! Events the core emits for the hooks of docs/rules.md. The policy layer
//! consumes them; the core only describes what happened.

use serde::{Deserialize, Serialize};

use super::model::{AccountId, UserId};

/// A user as a hook sees it (docs/api.md "Policy scripts").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub id: UserId,
    pub name: String,
    pub primary_email: String,
    pub email_verified: bool,
    pub signed_in_before: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationRef {
    pub id: String,
    pub name: String,
}

/// Input of `before_owner_change`: may veto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChangeProposal {
    pub account_id: AccountId,
    pub actor_id: UserId,
    pub from: UserSnapshot,
    pub to: UserSnapshot,
}

/// After-hooks: run once the change committed, from a durable queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hook", rename_all = "snake_case")]
pub enum DomainEvent {
    AfterOwnerChange {
        account_id: AccountId,
        actor_id: UserId,
        from: UserSnapshot,
        to: UserSnapshot,
        integrations: Vec<IntegrationRef>,
    },
    AgentSeatExhausted {
        account_id: AccountId,
        actor_id: String,
        seats_total: u32,
        seats_used: u32,
        attempt: String,
    },
    SellSeatExhausted {
        account_id: AccountId,
        actor_id: String,
        seats_total: u32,
        seats_used: u32,
        attempt: String,
    },
    AfterEmailPrimary {
        account_id: AccountId,
        user: PrimaryChangeUser,
        old_primary: String,
        new_primary: String,
    },
    WebhookReceived {
        source: String,
        id: String,
        kind: String,
        data: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryChangeUser {
    pub id: UserId,
    pub name: String,
    pub is_owner: bool,
}

impl DomainEvent {
    pub fn hook_name(&self) -> &'static str {
        match self {
            DomainEvent::AfterOwnerChange { .. } => "after_owner_change",
            DomainEvent::AgentSeatExhausted { .. } => "agent_seat_exhausted",
            DomainEvent::SellSeatExhausted { .. } => "sell_seat_exhausted",
            DomainEvent::AfterEmailPrimary { .. } => "after_email_primary",
            DomainEvent::WebhookReceived { .. } => "webhook_received",
        }
    }

    /// The account the event is about: its after-hooks run in that
    /// account's commit order. A received webhook names it in its data
    /// (`account_id`, a string), if at all. (On PostgreSQL the store writes
    /// it beside a queued event: the `lane` column of `queue_items`.)
    pub fn account_id(&self) -> Option<&str> {
        match self {
            DomainEvent::AfterOwnerChange { account_id, .. }
            | DomainEvent::AgentSeatExhausted { account_id, .. }
            | DomainEvent::SellSeatExhausted { account_id, .. }
            | DomainEvent::AfterEmailPrimary { account_id, .. } => Some(account_id.as_str()),
            DomainEvent::WebhookReceived { data, .. } => {
                data.get("account_id").and_then(|v| v.as_str())
            }
        }
    }
}

/// A veto from a `before_` hook: the policy's name and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veto {
    pub policy: String,
    /// Content hash of the policy version that decided.
    pub version: String,
    pub reason: String,
    /// The reason in other languages (`("fr", "…")`), as the policy gave it.
    /// (A boxed slice: keeps the veto, an `Err` on every before-hook's
    /// path, small.)
    pub translations: Box<[(String, String)]>,
    /// How long the deciding call took.
    pub duration_us: u64,
    /// Actions asked in the hook and not carried out (see [`GateNotes`]).
    pub ignored: GateNotes,
}

/// Actions policies asked for in a `before_` hook, which are never carried
/// out (deciding and acting are separate), each described with its policy.
/// The core writes them into the operation's audit entry, so no action
/// disappears without a trace.
pub type GateNotes = Vec<String>;

/// A member as a `before_` hook sees them, with their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    #[serde(flatten)]
    pub user: UserSnapshot,
    /// `admin`, `agent` or `end_user`; the owner is an admin.
    pub role: String,
    /// `none`, `user` or `admin`.
    pub sell_role: String,
    pub is_owner: bool,
}

/// What a `before_` hook is asked: the change a command is about to make,
/// once every rule allowed it. A policy may veto it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hook", rename_all = "snake_case")]
pub enum Proposal {
    /// `before_owner_change`.
    OwnerChange(OwnerChangeProposal),
    /// `before_member_add`: who is about to be added, as what.
    MemberAdd {
        account_id: AccountId,
        actor_id: String,
        name: String,
        email: String,
        role: String,
    },
    /// `before_member_remove`.
    MemberRemove {
        account_id: AccountId,
        actor_id: String,
        member: MemberSnapshot,
    },
    /// `before_member_active_change`: deactivated (`active` false) or
    /// brought back.
    MemberActiveChange {
        account_id: AccountId,
        actor_id: String,
        member: MemberSnapshot,
        active: bool,
    },
    /// `before_role_change`: a Support role.
    RoleChange {
        account_id: AccountId,
        actor_id: String,
        member: MemberSnapshot,
        from_role: String,
        to_role: String,
    },
    /// `before_seat_change`: seats bought, per product (`support`, `sell`).
    SeatChange {
        account_id: AccountId,
        actor_id: String,
        product: String,
        seats_from: u32,
        seats_to: u32,
    },
    /// `before_email_primary`.
    EmailPrimary {
        account_id: AccountId,
        actor_id: String,
        user: PrimaryChangeUser,
        old_primary: String,
        new_primary: String,
    },
    /// `before_sell_role_change`: Sell access given, changed or taken.
    SellRoleChange {
        account_id: AccountId,
        actor_id: String,
        member: MemberSnapshot,
        from_sell_role: String,
        to_sell_role: String,
    },
}

impl Proposal {
    /// The hook that is asked.
    pub fn hook_name(&self) -> &'static str {
        match self {
            Proposal::OwnerChange(_) => "before_owner_change",
            Proposal::MemberAdd { .. } => "before_member_add",
            Proposal::MemberRemove { .. } => "before_member_remove",
            Proposal::MemberActiveChange { .. } => "before_member_active_change",
            Proposal::RoleChange { .. } => "before_role_change",
            Proposal::SeatChange { .. } => "before_seat_change",
            Proposal::EmailPrimary { .. } => "before_email_primary",
            Proposal::SellRoleChange { .. } => "before_sell_role_change",
        }
    }
}

/// What the core asks before a change commits. The policy layer implements
/// it; the default allows everything.
pub trait PolicyGate: Send + Sync {
    fn before(&self, proposal: &Proposal) -> Result<GateNotes, Veto>;

    /// Whether anything handles the `before_` hook `hook` (when nothing
    /// does, the host need not decide it ahead of the writer).
    fn handles(&self, _hook: &str) -> bool {
        true
    }
}

pub struct AllowAll;

impl PolicyGate for AllowAll {
    fn before(&self, _: &Proposal) -> Result<GateNotes, Veto> {
        Ok(Vec::new())
    }
    fn handles(&self, _hook: &str) -> bool {
        false
    }
}
