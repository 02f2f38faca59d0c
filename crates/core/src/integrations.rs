//! Integrations: connecting, reauthorizing (R06) and flagging them.

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{Ctx, Decide, Draft};
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddIntegration {
    pub account_id: AccountId,
    pub name: String,
}

impl Decide for AddIntegration {
    fn info(&self) -> CommandInfo<'_> {
        let AddIntegration { account_id, name } = self;
        CommandInfo::of(
            "integration.add",
            Some(account_id),
            Target::Integration(name),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let AddIntegration { account_id, name } = self;
        add_integration(view, ctx, draft, account_id, name)
    }
}

pub(crate) fn add_integration(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    name: String,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    let name = validate::name("name", &name)?;
    let (_, admin) = member_with(view, actor, &account_id, Need::Admin)?;
    let max = ctx.settings.integrations_per_account_max;
    if view.integrations(&account_id, max)?.len() >= max {
        return Err(Refusal::conflict(
            "integration_limit_reached",
            format!("an account holds at most {max} integrations"),
        ));
    }
    let integration = Integration {
        id: ctx.entropy.id("int"),
        account_id: account_id.clone(),
        name,
        configured_by: admin.id.clone(),
        status: IntegrationStatus::Active,
        updated_at: now,
    };
    Ok(Outcome {
        changes: vec![Change::PutIntegration(integration.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("integration:{}", integration.id),
            format!("configured by {}", admin.id),
        ),
        reply: Reply::Integration(integration),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeIntegration {
    pub account_id: AccountId,
    pub integration_id: String,
}

impl Decide for AuthorizeIntegration {
    fn info(&self) -> CommandInfo<'_> {
        let AuthorizeIntegration {
            account_id,
            integration_id,
        } = self;
        CommandInfo::of(
            "integration.authorize",
            Some(account_id),
            Target::Integration(integration_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let AuthorizeIntegration {
            account_id,
            integration_id,
        } = self;
        authorize_integration(view, ctx, draft, account_id, integration_id)
    }
}

pub(crate) fn authorize_integration(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    integration_id: String,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    let (_, admin) = member_with(view, actor, &account_id, Need::Admin)?;
    let mut integration = view
        .integration(&account_id, &integration_id)?
        .ok_or_else(|| Refusal::not_found("integration"))?;
    // R06: re-authorizing makes this admin the configurer.
    integration.configured_by = admin.id.clone();
    integration.status = IntegrationStatus::Active;
    integration.updated_at = now;
    Ok(Outcome {
        changes: vec![Change::PutIntegration(integration.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("integration:{integration_id}"),
            format!("authorized by {}", admin.id),
        ),
        reply: Reply::Integration(integration),
    })
}

/// A policy (or an admin) marks an integration as needing reauthorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagIntegration {
    pub account_id: AccountId,
    pub integration_id: String,
}

impl Decide for FlagIntegration {
    fn info(&self) -> CommandInfo<'_> {
        let FlagIntegration {
            account_id,
            integration_id,
        } = self;
        CommandInfo::of(
            "integration.flag",
            Some(account_id),
            Target::Integration(integration_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let FlagIntegration {
            account_id,
            integration_id,
        } = self;
        flag_integration(view, ctx, draft, &account_id, &integration_id)
    }
}

pub(crate) fn flag_integration(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    integration_id: &str,
) -> Result<Outcome, Refusal> {
    if matches!(draft.actor, Principal::Policy { .. }) {
        policy_only(view, draft.actor, account_id)?;
    } else {
        member_with(view, draft.actor, account_id, Need::Admin)?;
    }
    let mut integration = view
        .integration(account_id, integration_id)?
        .ok_or_else(|| Refusal::not_found("integration"))?;
    integration.status = IntegrationStatus::NeedsReauthorization;
    integration.updated_at = ctx.now;
    Ok(Outcome {
        changes: vec![Change::PutIntegration(integration.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("integration:{integration_id}"),
            "flagged: needs reauthorization",
        ),
        reply: Reply::Integration(integration),
    })
}
