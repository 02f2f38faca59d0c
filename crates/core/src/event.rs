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
}

/// A veto from a `before_` hook: the policy's name and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veto {
    pub policy: String,
    /// Content hash of the policy version that decided.
    pub version: String,
    pub reason: String,
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

/// What the core asks before a transfer commits. The policy layer implements
/// it; the default allows everything.
pub trait PolicyGate: Send + Sync {
    fn before_owner_change(&self, proposal: &OwnerChangeProposal) -> Result<GateNotes, Veto>;

    /// Whether anything handles `before_owner_change` (when nothing does,
    /// the host need not decide the hook ahead of the writer).
    fn handles_before_owner_change(&self) -> bool {
        true
    }
}

pub struct AllowAll;

impl PolicyGate for AllowAll {
    fn before_owner_change(&self, _: &OwnerChangeProposal) -> Result<GateNotes, Veto> {
        Ok(Vec::new())
    }
    fn handles_before_owner_change(&self) -> bool {
        false
    }
}
