//! What policies do through the core: notify members, record their calls (causal audit).

use crate::access::*;
use crate::command::*;
use crate::context::Draft;
use crate::limits::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

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
