//! Platform support's own acts on an account (R19).

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
