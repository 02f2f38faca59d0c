//! Ownership: handing the account over (R01-R06), asking `before_owner_change` first.

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{ignored_note, Ctx, Decide, Draft};
use crate::event::*;
use crate::model::*;
use crate::refusal::Refusal;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOwnership {
    pub account_id: AccountId,
    pub to_user_id: UserId,
}

impl Decide for TransferOwnership {
    const BEFORE_HOOK: Option<&'static str> = Some("before_owner_change");
    fn info(&self) -> CommandInfo<'_> {
        let TransferOwnership {
            account_id,
            to_user_id,
        } = self;
        CommandInfo::of("owner.transfer", Some(account_id), Target::User(to_user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let TransferOwnership {
            account_id,
            to_user_id,
        } = self;
        transfer_ownership(view, ctx, draft, account_id, to_user_id)
    }
}

pub(crate) fn transfer_ownership(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    to_user_id: UserId,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    // R02: the owner alone, no back door for anyone else.
    let (mut account, from) = member_with(view, actor, &account_id, Need::Owner)?;
    if to_user_id == from.id {
        return Err(Refusal::conflict(
            "already_owner",
            "that user already owns the account",
        ));
    }
    let to = view
        .user(&account_id, &to_user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    // R03: an admin with a verified primary address.
    if to.support_role != SupportRole::Admin {
        return Err(Refusal::conflict(
            "new_owner_not_admin",
            "the new owner must already be an admin of the account; add them as admin first",
        ));
    }
    if !to.is_active() {
        return Err(Refusal::conflict(
            "member_deactivated",
            "the new owner is deactivated; reactivate them first",
        ));
    }
    if !to.primary_verified() {
        return Err(Refusal::conflict(
            "email_unverified",
            "the new owner's primary address is not verified yet",
        ));
    }
    let proposal = OwnerChangeProposal {
        account_id: account_id.clone(),
        actor_id: from.id.clone(),
        from: snapshot(&from),
        to: snapshot(&to),
    };
    let asked = Proposal::OwnerChange(proposal);
    let ignored = ctx.ask(&asked)?;
    let Proposal::OwnerChange(proposal) = asked else {
        return Err(Refusal::broken("the proposal changed kind"));
    };
    account.owner_id = to.id.clone();
    let mut changes = vec![];
    let mut flagged = vec![];
    // R06: what the previous owner authorized may stop working.
    for mut i in view.integrations(&account_id, ctx.settings.integrations_per_account_max)? {
        if i.configured_by == from.id && i.status == IntegrationStatus::Active {
            i.status = IntegrationStatus::NeedsReauthorization;
            i.updated_at = now;
            flagged.push(IntegrationRef {
                id: i.id.clone(),
                name: i.name.clone(),
            });
            changes.push(Change::PutIntegration(i));
        }
    }
    changes.push(Change::PutAccount(account.clone()));
    let notices = vec![
        Notice::OwnershipReceived {
            to: to.primary_address().to_string(),
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            previous_owner_name: from.name.clone(),
            integrations: flagged.clone(),
        },
        Notice::OwnershipHandedOver {
            to: from.primary_address().to_string(),
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            new_owner_name: to.name.clone(),
        },
    ];
    let event = DomainEvent::AfterOwnerChange {
        account_id: account_id.clone(),
        actor_id: from.id.clone(),
        from: proposal.from,
        to: proposal.to,
        integrations: flagged.clone(),
    };
    Ok(Outcome {
        changes,
        notices,
        events: vec![event],
        audit: draft.ok(
            &account_id,
            format!("user:{}", to.id),
            format!(
                "owner {} -> {}; {} integration(s) need reauthorization{}",
                from.id,
                to.id,
                flagged.len(),
                ignored_note(&ignored)
            ),
        ),
        reply: Reply::Account(account),
    })
}
