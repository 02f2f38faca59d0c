//! What policies do through the core: notify members, record their calls (causal audit).

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{Ctx, Decide, Draft};
use crate::limits::*;
use crate::model::{AccountId, PolicySwitch};
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

/// A policy mails a member of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyNotify {
    pub account_id: AccountId,
    pub address: String,
    pub subject: String,
    pub body: String,
}

impl Decide for PolicyNotify {
    fn info(&self) -> CommandInfo<'_> {
        let PolicyNotify {
            account_id,
            address,
            ..
        } = self;
        CommandInfo::of("policy.notify", Some(account_id), Target::Email(address))
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let PolicyNotify {
            account_id,
            address,
            subject,
            body,
        } = self;
        policy_notify(view, draft, &account_id, &address, &subject, &body)
    }
}

/// A policy mails a member of the event's account (never an outside address).
pub(crate) fn policy_notify(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    address: &str,
    subject: &str,
    body: &str,
) -> Result<Outcome, Refusal> {
    policy_only(view, draft.actor, account_id)?;
    let address = validate::email("address", address)?;
    if view.user_by_email(account_id, &address)?.is_none() {
        return Err(Refusal::forbidden(
            "policies mail members of the account only",
        ));
    }
    let subject = validate::name("subject", subject).map_err(|_| {
        Refusal::invalid(format!(
            "subject must be 1 to {POLICY_SUBJECT_MAX_CHARS} characters"
        ))
    })?;
    if body.is_empty() || body.chars().count() > POLICY_BODY_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "body must be 1 to {POLICY_BODY_MAX_CHARS} characters"
        )));
    }
    Ok(Outcome {
        changes: vec![],
        notices: vec![Notice::Custom {
            to: address.clone(),
            account_id: account_id.to_string(),
            subject: subject.clone(),
            body: body.to_string(),
        }],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("email:{address}"),
            format!("mailed: {subject}"),
        ),
        reply: Reply::Done,
    })
}

/// The audit scope of entries that concern no account (platform support
/// reads it at `GET /v1/audit`). It cannot collide with an account id,
/// which always has the shape `acc_<hex>`.
pub const PLATFORM_AUDIT_SCOPE: &str = "platform";

/// Records a hook call that decided or acted (causal audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPolicyCall {
    pub account_id: AccountId,
    pub call: PolicyCallRecord,
}

impl Decide for RecordPolicyCall {
    fn info(&self) -> CommandInfo<'_> {
        let RecordPolicyCall { account_id, call } = self;
        CommandInfo::of("policy.call", Some(account_id), Target::Hook(&call.hook))
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RecordPolicyCall { account_id, call } = self;
        record_policy_call(view, draft, &account_id, call)
    }
}

pub(crate) fn record_policy_call(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    call: PolicyCallRecord,
) -> Result<Outcome, Refusal> {
    if account_id == PLATFORM_AUDIT_SCOPE {
        // A call about no account (a webhook without `data.account_id`) is
        // recorded in the platform's own log.
        if !matches!(draft.actor, Principal::Policy { .. }) {
            return Err(Refusal::forbidden("only policies use this"));
        }
    } else {
        policy_only(view, draft.actor, account_id)?;
    }
    let mut audit = draft.ok(
        account_id,
        format!("hook:{}", call.hook),
        format!(
            "version {}; {}; actions [{}]; {} us{}",
            call.version,
            call.decision,
            call.actions.join(", "),
            call.duration_us,
            call.error
                .as_deref()
                .map(|e| format!("; error: {e}"))
                .unwrap_or_default()
        ),
    );
    if let Some(a) = audit.as_mut() {
        a.outcome = call.decision.clone();
        a.cause = call.cause_seq;
    }
    Ok(Outcome {
        changes: vec![],
        notices: vec![],
        events: vec![],
        audit,
        reply: Reply::Done,
    })
}

/// Longest policy name a switch takes (script file names are shorter).
pub const POLICY_NAME_MAX_CHARS: usize = 128;
/// Longest reason for switching a policy off or on.
pub const POLICY_SWITCH_REASON_MAX_CHARS: usize = 500;

/// Switches a policy off (break-glass) or back on (platform support).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPolicySwitch {
    pub name: String,
    pub disabled: bool,
    pub reason: String,
}

impl Decide for SetPolicySwitch {
    fn info(&self) -> CommandInfo<'_> {
        let SetPolicySwitch { name, disabled, .. } = self;
        CommandInfo::of(
            if *disabled {
                "policy.disable"
            } else {
                "policy.enable"
            },
            None,
            Target::Policy(name),
        )
    }

    fn decide(
        self,
        _view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let SetPolicySwitch {
            name,
            disabled,
            reason,
        } = self;
        set_policy_switch(ctx, draft, name, disabled, reason)
    }
}

/// Break-glass: platform support switches a policy off (with a reason) or
/// back on, audited in the platform's log. Which names exist is the
/// daemon's business (it refuses names it has not loaded before asking).
pub(crate) fn set_policy_switch(
    ctx: &mut Ctx,
    draft: &Draft,
    name: String,
    disabled: bool,
    reason: String,
) -> Result<Outcome, Refusal> {
    if *draft.actor != Principal::Operator {
        return Err(Refusal::forbidden(
            "only platform support switches policies",
        ));
    }
    if name.is_empty()
        || name.chars().count() > POLICY_NAME_MAX_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Refusal::invalid(format!(
            "name must be 1 to {POLICY_NAME_MAX_CHARS} characters without control characters"
        )));
    }
    let reason = reason.trim().to_string();
    if (disabled && reason.is_empty())
        || reason.chars().count() > POLICY_SWITCH_REASON_MAX_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(Refusal::invalid(format!(
            "reason must be 1 to {POLICY_SWITCH_REASON_MAX_CHARS} characters (required to switch a policy off)"
        )));
    }
    let switch = PolicySwitch {
        name: name.clone(),
        disabled,
        reason: reason.clone(),
        by: draft.actor.audit_name(),
        at: ctx.now,
    };
    let audit = draft.ok(
        PLATFORM_AUDIT_SCOPE,
        format!("policy:{name}"),
        if disabled {
            format!("switched off: {reason}")
        } else if reason.is_empty() {
            "switched back on".to_string()
        } else {
            format!("switched back on: {reason}")
        },
    );
    Ok(Outcome {
        changes: vec![Change::PutPolicySwitch(switch)],
        notices: vec![],
        events: vec![],
        audit,
        reply: Reply::Done,
    })
}

/// Longest diff a save's audit entry keeps (the rest is cut, and said so).
pub const POLICY_SAVE_DIFF_MAX_CHARS: usize = 8_000;

/// Audits a script saved from the console (platform support): its name
/// and the diff from the version it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPolicySave {
    pub name: String,
    pub diff: String,
}

impl Decide for RecordPolicySave {
    fn info(&self) -> CommandInfo<'_> {
        let RecordPolicySave { name, .. } = self;
        CommandInfo::of("policy.save", None, Target::Policy(name))
    }

    fn decide(
        self,
        _view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RecordPolicySave { name, diff } = self;
        record_policy_save(draft, name, diff)
    }
}

/// A script saved from the console: who saved what (the diff), in the
/// platform's log. The file itself is written by the daemon.
pub(crate) fn record_policy_save(
    draft: &Draft,
    name: String,
    diff: String,
) -> Result<Outcome, Refusal> {
    if *draft.actor != Principal::Operator {
        return Err(Refusal::forbidden("only platform support saves policies"));
    }
    if name.is_empty() || name.chars().count() > POLICY_NAME_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "name must be 1 to {POLICY_NAME_MAX_CHARS} characters"
        )));
    }
    let mut detail: String = diff.chars().take(POLICY_SAVE_DIFF_MAX_CHARS).collect();
    if diff.chars().count() > POLICY_SAVE_DIFF_MAX_CHARS {
        detail.push_str("\n[diff cut]");
    }
    Ok(Outcome {
        changes: vec![],
        notices: vec![],
        events: vec![],
        audit: draft.ok(PLATFORM_AUDIT_SCOPE, format!("policy:{name}"), detail),
        reply: Reply::Done,
    })
}
