//! The entry of the core: `execute` hands each command to its type's
//! decision (in the module of its capability, see `command::Decide`); a command and the current state in, changes, mails, events
//! and an audit draft out, or a refusal. Nothing here does I/O; time,
//! randomness and policy decisions come in through [`Ctx`].

use chrono::{DateTime, Utc};

use crate::catalog::Command;
use crate::command::*;
use crate::context::{Ctx, Draft};
use crate::refusal::Refusal;
use crate::view::StateView;

/// Runs one command against the state in `view`.
pub fn execute(
    view: &dyn StateView,
    ctx: &mut Ctx,
    actor: &Principal,
    command: Command,
) -> Result<Outcome, Refusal> {
    let draft = Draft {
        actor,
        action: command.action(),
        now: ctx.now,
    };
    let mut outcome = command.decide(view, ctx, &draft)?;
    // Every member a command writes was modified now (SCIM's
    // `meta.lastModified`): stamped here once rather than by each command.
    // Signing in changes nothing the directory manages.
    let stamps = draft.action != "session.create";
    for change in outcome.changes.iter_mut().filter(|_| stamps) {
        if let Change::PutUser(user) = change {
            user.modified_at = Some(ctx.now);
        }
    }
    if let (true, Reply::User(user) | Reply::Member { user, .. }) = (stamps, &mut outcome.reply) {
        user.modified_at = Some(ctx.now);
    }
    Ok(outcome)
}

/// Decides `command` as [`execute`] would, against `view` and `gate`,
/// and keeps nothing: whether it would be carried out now, or the refusal
/// it would meet (a rule, or a `before_` hook's veto when `gate` asks the
/// policies). What the console uses to say who can take over before the
/// owner picks (ids and tokens it draws are thrown away).
pub fn rehearse(
    view: &dyn StateView,
    gate: &dyn crate::event::PolicyGate,
    settings: &crate::context::Settings,
    actor: &Principal,
    command: Command,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    struct Unused;
    impl crate::context::Entropy for Unused {
        fn id(&mut self, prefix: &str) -> String {
            format!("{prefix}_rehearsal")
        }
        fn token(&mut self) -> String {
            "rehearsal".into()
        }
    }
    let mut ctx = Ctx {
        now,
        entropy: &mut Unused,
        gate,
        settings,
    };
    execute(view, &mut ctx, actor, command).map(|_| ())
}

pub fn refusal_audit(
    actor: &Principal,
    subject: &AuditSubject,
    refusal: &Refusal,
    now: DateTime<Utc>,
) -> Option<AuditDraft> {
    if !refusal.is_rule_refusal() {
        return None;
    }
    let account_id = subject.account_id.as_ref()?;
    Some(AuditDraft {
        account_id: account_id.clone(),
        actor: actor.audit_name(),
        action: subject.action.to_string(),
        target: subject.target.clone(),
        outcome: format!("refused:{}", refusal.code),
        detail: refusal.detail.clone(),
        at: now,
        cause: None,
    })
}
