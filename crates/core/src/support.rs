//! Platform support's own acts on an account (R19), and the account's
//! requests to it (an ownership investigation, R19; the first Sell admin,
//! R23).

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{Ctx, Decide, Draft};
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSecurityInvestigation {
    pub account_id: AccountId,
    pub note: String,
}

impl Decide for OpenSecurityInvestigation {
    fn info(&self) -> CommandInfo<'_> {
        let OpenSecurityInvestigation { account_id, .. } = self;
        CommandInfo::of(
            "security_investigation.open",
            Some(account_id),
            Target::Account(account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let OpenSecurityInvestigation { account_id, note } = self;
        open_security_investigation(view, ctx, draft, account_id, note)
    }
}

pub(crate) fn open_security_investigation(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    note: String,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    operator_only(
        view,
        actor,
        &account_id,
        "security investigations are opened by platform support",
    )?;
    let note = validate::note("note", &note)?;
    if view.account(&account_id)?.is_none() {
        return Err(Refusal::not_found("account"));
    }
    let investigation = SecurityInvestigation {
        id: ctx.entropy.id("inv"),
        account_id: account_id.clone(),
        note,
        opened_at: now,
        topic: "investigation".into(),
        requested_by: None,
        member_id: None,
        closed_at: None,
        closing_note: None,
    };
    Ok(Outcome {
        changes: vec![Change::PutInvestigation(investigation.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("investigation:{}", investigation.id),
            "security investigation opened; the owner is unchanged (R19)",
        ),
        reply: Reply::Investigation(investigation),
    })
}

/// Open requests an account may have waiting for platform support at once.
pub const OPEN_SUPPORT_REQUESTS_MAX: usize = 5;

/// The account's admins ask platform support for what only it can do:
/// an investigation when the owner is lost (R19), the first Sell admin
/// (R23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSupport {
    pub account_id: AccountId,
    /// One of [`SUPPORT_TOPICS`].
    pub topic: String,
    /// `sell_admin`: the member to appoint.
    #[serde(default)]
    pub member_id: Option<UserId>,
    pub message: String,
}

impl Decide for ContactSupport {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "support_request.file",
            Some(&self.account_id),
            Target::Account(&self.account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let ContactSupport {
            account_id,
            topic,
            member_id,
            message,
        } = self;
        let (account, _) = member_with(view, draft.actor, &account_id, Need::Admin)?;
        if !SUPPORT_TOPICS.contains(&topic.as_str()) {
            return Err(Refusal::invalid(format!(
                "topic must be one of: {}",
                SUPPORT_TOPICS.join(", ")
            )));
        }
        let message = validate::note("message", &message)?;
        let member_id = match (topic.as_str(), member_id) {
            ("sell_admin", Some(member)) => {
                // R23: only while Sell has no admin, for a member who is here.
                if account.sell.admin_count > 0 {
                    return Err(Refusal::conflict(
                        "sell_admin_exists",
                        "Sell already has an admin: they grant Sell access and roles",
                    ));
                }
                let user = view
                    .user(&account_id, &member)?
                    .filter(|u| u.is_active())
                    .ok_or_else(|| Refusal::not_found("member"))?;
                Some(user.id)
            }
            ("sell_admin", None) => {
                return Err(Refusal::invalid(
                    "member_id is required: the member to appoint as the first Sell admin",
                ))
            }
            _ => None,
        };
        let open = view
            .investigations(Some(&account_id), OPEN_SUPPORT_REQUESTS_MAX * 20)?
            .into_iter()
            .filter(|c| c.requested_by.is_some() && c.closed_at.is_none())
            .count();
        if open >= OPEN_SUPPORT_REQUESTS_MAX {
            return Err(Refusal::conflict(
                "too_many_pending_requests",
                format!("{OPEN_SUPPORT_REQUESTS_MAX} requests already wait for platform support; wait for an answer"),
            ));
        }
        let request = SecurityInvestigation {
            id: ctx.entropy.id("sup"),
            account_id: account_id.clone(),
            note: message,
            opened_at: ctx.now,
            topic,
            requested_by: Some(draft.actor.audit_name()),
            member_id,
            closed_at: None,
            closing_note: None,
        };
        Ok(Outcome {
            changes: vec![Change::PutInvestigation(request.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &account_id,
                format!("support:{}", request.id),
                format!("asked platform support: {}", request.topic),
            ),
            reply: Reply::Investigation(request),
        })
    }
}

/// Platform support closes a case, with what it tells the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseSupportCase {
    pub account_id: AccountId,
    pub case_id: String,
    pub note: String,
}

impl Decide for CloseSupportCase {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "support_case.close",
            Some(&self.account_id),
            Target::Account(&self.account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let CloseSupportCase {
            account_id,
            case_id,
            note,
        } = self;
        operator_only(
            view,
            draft.actor,
            &account_id,
            "support cases are closed by platform support",
        )?;
        let note = validate::note("note", &note)?;
        let mut case = view
            .investigations(Some(&account_id), 10_000)?
            .into_iter()
            .find(|c| c.id == case_id)
            .ok_or_else(|| Refusal::not_found("support case"))?;
        if case.closed_at.is_some() {
            return Ok(Outcome::unchanged(Reply::Investigation(case)));
        }
        case.closed_at = Some(ctx.now);
        case.closing_note = Some(note);
        Ok(Outcome {
            changes: vec![Change::PutInvestigation(case.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &account_id,
                format!("support:{}", case.id),
                "closed by platform support",
            ),
            reply: Reply::Investigation(case),
        })
    }
}
