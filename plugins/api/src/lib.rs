//! The API of compiled admind plugins. A plugin depends on this crate alone:
//! it implements [`Plugin`], reads [`Event`]s, and answers through a
//! [`Context`] — deny (in `before_` hooks) or ask for actions, which the
//! daemon carries out through the same rules as a person's, with the plugin
//! named as the actor in the audit log.

use serde::{Deserialize, Serialize};

/// The hooks of docs/rules.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    BeforeOwnerChange,
    AfterOwnerChange,
    AfterEmailPrimary,
    AgentSeatExhausted,
    SellSeatExhausted,
    WebhookReceived,
    BeforeMemberAdd,
    BeforeMemberRemove,
    BeforeRoleChange,
    BeforeSeatChange,
    BeforeEmailPrimary,
    BeforeSellRoleChange,
    BeforeMemberActiveChange,
}

impl Hook {
    pub const ALL: [Hook; 13] = [
        Hook::BeforeOwnerChange,
        Hook::AfterOwnerChange,
        Hook::AfterEmailPrimary,
        Hook::AgentSeatExhausted,
        Hook::SellSeatExhausted,
        Hook::WebhookReceived,
        Hook::BeforeMemberAdd,
        Hook::BeforeMemberRemove,
        Hook::BeforeRoleChange,
        Hook::BeforeSeatChange,
        Hook::BeforeEmailPrimary,
        Hook::BeforeSellRoleChange,
        Hook::BeforeMemberActiveChange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeOwnerChange => "before_owner_change",
            Hook::AfterOwnerChange => "after_owner_change",
            Hook::AfterEmailPrimary => "after_email_primary",
            Hook::AgentSeatExhausted => "agent_seat_exhausted",
            Hook::SellSeatExhausted => "sell_seat_exhausted",
            Hook::WebhookReceived => "webhook_received",
            Hook::BeforeMemberAdd => "before_member_add",
            Hook::BeforeMemberRemove => "before_member_remove",
            Hook::BeforeRoleChange => "before_role_change",
            Hook::BeforeSeatChange => "before_seat_change",
            Hook::BeforeEmailPrimary => "before_email_primary",
            Hook::BeforeSellRoleChange => "before_sell_role_change",
            Hook::BeforeMemberActiveChange => "before_member_active_change",
        }
    }

    pub fn from_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == name)
    }

    /// `before_` hooks may veto; the others run after the commit.
    pub fn may_veto(self) -> bool {
        self.name().starts_with("before_")
    }
}

/// A user as a hook sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub primary_email: String,
    pub email_verified: bool,
    pub signed_in_before: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationInfo {
    pub id: String,
    pub name: String,
}

/// A member as a `before_` hook sees them: the user, and their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    #[serde(flatten)]
    pub user: UserInfo,
    /// `admin`, `agent` or `end_user` (the owner is an admin).
    pub role: String,
    /// `none`, `user` or `admin`.
    pub sell_role: String,
    pub is_owner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryUser {
    pub id: String,
    pub name: String,
    pub is_owner: bool,
}

/// The event of a hook, with the fields of docs/api.md "Policy scripts".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    OwnerChange {
        account_id: String,
        actor_id: String,
        from: UserInfo,
        to: UserInfo,
        /// After the change only: integrations now needing reauthorization.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        integrations: Option<Vec<IntegrationInfo>>,
    },
    EmailPrimary {
        account_id: String,
        user: PrimaryUser,
        old_primary: String,
        new_primary: String,
        /// Before the change only: who asks for it.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        actor_id: Option<String>,
    },
    SeatExhausted {
        account_id: String,
        actor_id: String,
        seats_total: u32,
        seats_used: u32,
        attempt: String,
    },
    /// `before_role_change`: a Support role.
    RoleChange {
        account_id: String,
        actor_id: String,
        member: MemberInfo,
        from_role: String,
        to_role: String,
    },
    /// `before_sell_role_change`: Sell access given (`from_sell_role`
    /// `none`), changed, or taken (`to_sell_role` `none`).
    SellRoleChange {
        account_id: String,
        actor_id: String,
        member: MemberInfo,
        from_sell_role: String,
        to_sell_role: String,
    },
    /// `before_member_remove`.
    MemberRemove {
        account_id: String,
        actor_id: String,
        member: MemberInfo,
    },
    /// `before_member_active_change`: a member about to be deactivated
    /// (`active` false) or reactivated.
    MemberActiveChange {
        account_id: String,
        actor_id: String,
        member: MemberInfo,
        active: bool,
    },
    /// `before_member_add`: who is about to join, as what.
    MemberAdd {
        account_id: String,
        actor_id: String,
        name: String,
        email: String,
        role: String,
    },
    /// `before_seat_change`: seats bought of one product.
    SeatChange {
        account_id: String,
        actor_id: String,
        product: String,
        seats_from: u32,
        seats_to: u32,
    },
    Webhook {
        source: String,
        id: String,
        #[serde(rename = "type")]
        kind: String,
        data: serde_json::Value,
    },
}

impl Event {
    /// The account the event concerns (webhooks may name one in `data`).
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Event::OwnerChange { account_id, .. }
            | Event::EmailPrimary { account_id, .. }
            | Event::SeatExhausted { account_id, .. }
            | Event::RoleChange { account_id, .. }
            | Event::SellRoleChange { account_id, .. }
            | Event::MemberRemove { account_id, .. }
            | Event::MemberActiveChange { account_id, .. }
            | Event::MemberAdd { account_id, .. }
            | Event::SeatChange { account_id, .. } => Some(account_id),
            Event::Webhook { data, .. } => data.get("account_id").and_then(|v| v.as_str()),
        }
    }
}

/// Something a policy asks the daemon to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Mail a member of the event's account.
    Notify {
        address: String,
        subject: String,
        body: String,
    },
    /// File a temporary licence request (`support` or `sell`) for the event's account.
    RequestLicence {
        product: String,
        seats: u32,
        reason: String,
    },
    /// Mark an integration of the event's account `needs_reauthorization`.
    FlagIntegration { integration_id: String },
    /// Mail a password-reset link to a primary address of the event's account.
    SendPasswordReset { address: String },
}

/// What a policy may do beyond reading its event: each script declares its
/// own in its header (`// calls: deny, notify`), each plugin in code
/// ([`Plugin::capabilities`]). Using one undeclared is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Veto the operation (`deny(reason)`).
    Deny,
    /// `notify(address, subject, body)`.
    Notify,
    /// `request_licence(product, seats, reason)`.
    RequestLicence,
    /// `flag_integration(id)`.
    FlagIntegration,
    /// Mail a password-reset link (plugins).
    SendPasswordReset,
    /// Read whether a licence request is pending
    /// (`pending_licence_request(product)`).
    PendingLicenceRequest,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Deny,
        Capability::Notify,
        Capability::RequestLicence,
        Capability::FlagIntegration,
        Capability::SendPasswordReset,
        Capability::PendingLicenceRequest,
    ];

    /// The name scripts call it by (and declare it as).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Notify => "notify",
            Capability::RequestLicence => "request_licence",
            Capability::FlagIntegration => "flag_integration",
            Capability::SendPasswordReset => "send_password_reset",
            Capability::PendingLicenceRequest => "pending_licence_request",
        }
    }

    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The capability an action needs.
    pub fn of_action(action: &Action) -> Capability {
        match action {
            Action::Notify { .. } => Capability::Notify,
            Action::RequestLicence { .. } => Capability::RequestLicence,
            Action::FlagIntegration { .. } => Capability::FlagIntegration,
            Action::SendPasswordReset { .. } => Capability::SendPasswordReset,
        }
    }
}

/// What a handler returns through: a veto and the actions it asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Context {
    denied: Option<String>,
    /// The veto's reason in other languages (`("fr", "…")`), for the
    /// pages that show it in their reader's language.
    denied_in: Vec<(String, String)>,
    actions: Vec<Action>,
}

/// Most actions one handler call may ask for.
pub const ACTIONS_PER_CALL_MAX: usize = 32;

impl Context {
    pub fn new() -> Self {
        Self::default()
    }
    /// Vetoes the operation (honoured in `before_` hooks only).
    pub fn deny(&mut self, reason: impl Into<String>) {
        if self.denied.is_none() {
            self.denied = Some(reason.into());
        }
    }
    /// Vetoes the operation with its reason in other languages too
    /// (`[("fr", "…")]`): the console shows the reader's, the API and the
    /// audit log the first.
    pub fn deny_in(&mut self, reason: impl Into<String>, translations: Vec<(String, String)>) {
        if self.denied.is_none() {
            self.denied = Some(reason.into());
            self.denied_in = translations;
        }
    }
    /// The veto's reason in other languages.
    pub fn denied_in(&self) -> &[(String, String)] {
        &self.denied_in
    }
    /// Asks for an action; past [`ACTIONS_PER_CALL_MAX`] it is refused.
    pub fn act(&mut self, action: Action) -> Result<(), String> {
        if self.actions.len() >= ACTIONS_PER_CALL_MAX {
            return Err(format!("at most {ACTIONS_PER_CALL_MAX} actions per call"));
        }
        self.actions.push(action);
        Ok(())
    }
    pub fn denied(&self) -> Option<&str> {
        self.denied.as_deref()
    }
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
    pub fn into_parts(self) -> (Option<String>, Vec<Action>) {
        (self.denied, self.actions)
    }
}

/// A compiled plugin. Built once at start-up from its settings (a factory
/// in the daemon's registry), then called from several threads.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &str;
    /// The hooks it handles.
    fn hooks(&self) -> Vec<Hook>;
    /// What it may do (a veto, actions): a call that does more fails.
    fn capabilities(&self) -> Vec<Capability>;
    /// Handles one event. An `Err` is a failure: it denies a `before_` hook
    /// (fail closed) and is logged on the others.
    fn handle(&self, hook: Hook, event: &Event, ctx: &mut Context) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_round_trip_and_context_bounds_actions() {
        for h in Hook::ALL {
            assert_eq!(Hook::from_name(h.name()), Some(h));
        }
        for c in Capability::ALL {
            assert_eq!(Capability::from_name(c.name()), Some(c));
        }
        let mut ctx = Context::new();
        ctx.deny("first");
        ctx.deny("second");
        assert_eq!(ctx.denied(), Some("first"));
        for _ in 0..ACTIONS_PER_CALL_MAX {
            ctx.act(Action::FlagIntegration {
                integration_id: "i".into(),
            })
            .unwrap();
        }
        assert!(ctx
            .act(Action::FlagIntegration {
                integration_id: "i".into()
            })
            .is_err());
    }
}
