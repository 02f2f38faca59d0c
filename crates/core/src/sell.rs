//! Sell: trial, users, Sell roles and admins (R20-R25).

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{ignored_note, Ctx, Decide, Draft};
use crate::event::{GateNotes, Proposal};
use crate::model::*;
use crate::refusal::Refusal;
use crate::seats::*;
use crate::view::StateView;

/// Asks `before_sell_role_change` for `user` going to Sell role `to`.
fn ask_sell_role(
    ctx: &Ctx,
    draft: &Draft,
    account: &Account,
    user: &User,
    to: SellRole,
) -> Result<GateNotes, Refusal> {
    ctx.ask(&Proposal::SellRoleChange {
        account_id: account.id.clone(),
        actor_id: actor_id(draft.actor),
        member: member_snapshot(account, user),
        from_sell_role: user.sell_role.as_str().to_string(),
        to_sell_role: to.as_str().to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartSellTrial {
    pub account_id: AccountId,
}

impl Decide for StartSellTrial {
    fn info(&self) -> CommandInfo<'_> {
        let StartSellTrial { account_id } = self;
        CommandInfo::of(
            "sell.start_trial",
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
        let StartSellTrial { account_id } = self;
        start_sell_trial(view, ctx, draft, &account_id)
    }
}

pub(crate) fn start_sell_trial(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
) -> Result<Outcome, Refusal> {
    // R20: the owner or an admin starts it and is its first Sell admin, in
    // person: not a directory acting for them.
    if matches!(draft.actor, Principal::Directory { .. }) {
        return Err(Refusal::forbidden(
            "a directory does not start Sell; the owner or an admin starts the trial in the Admin Center",
        ));
    }
    let (mut account, me) = member_with(view, draft.actor, account_id, Need::Admin)?;
    let mut me = std::sync::Arc::unwrap_or_clone(me);
    if account.sell.status != SellStatus::NotStarted || account.sell.admin_count > 0 {
        return Err(Refusal::conflict(
            "sell_already_started",
            "Sell has already been started for this account",
        ));
    }
    account.sell.status = SellStatus::Trial;
    if !me.sell_role.holds_seat() {
        sell_seat(&mut account, draft.actor, ctx.now, "sell.start_trial")?;
    }
    me.sell_role = SellRole::Admin;
    account.sell.admin_count = 1;
    Ok(Outcome {
        changes: vec![
            Change::PutAccount(account.clone()),
            Change::PutUser(me.clone()),
        ],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("user:{}", me.id),
            "Sell trial started; first Sell admin",
        ),
        reply: Reply::Account(account),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSell {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub role: SellRole,
}

impl Decide for GrantSell {
    const BEFORE_HOOK: Option<&'static str> = Some("before_sell_role_change");
    fn info(&self) -> CommandInfo<'_> {
        let GrantSell {
            account_id,
            user_id,
            ..
        } = self;
        CommandInfo::of("sell.grant", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let GrantSell {
            account_id,
            user_id,
            role,
        } = self;
        grant_sell(view, ctx, draft, &account_id, &user_id, role)
    }
}

pub(crate) fn grant_sell(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    role: SellRole,
) -> Result<Outcome, Refusal> {
    if role == SellRole::None {
        return Err(Refusal::invalid(
            "role must be user or admin; remove Sell access with DELETE",
        ));
    }
    // R22: Support admins grant Sell access.
    let (mut account, me) = member_with(view, draft.actor, account_id, Need::Admin)?;
    if account.sell.admin_count == 0 {
        // Starting Sell is the starter's own step (R20): a directory acting
        // for an admin is not that admin in person.
        if user_id == me.id && !matches!(draft.actor, Principal::Directory { .. }) {
            return start_sell_trial(view, ctx, draft, account_id);
        }
        // R23: nobody can hand Sell to someone else before Sell has an admin.
        return Err(Refusal::conflict(
            "sell_admin_required",
            format!(
                "Sell has no admin yet: start a Sell trial yourself, or ask platform support to appoint the first Sell admin (POST /v1/accounts/{account_id}/sell/admins)"
            ),
        ));
    }
    if role == SellRole::Admin && me.sell_role != SellRole::Admin {
        return Err(Refusal::forbidden(
            "making someone a Sell admin needs a Sell admin",
        ));
    }
    let mut user = active_member(
        view.user(account_id, user_id)?
            .ok_or_else(|| Refusal::not_found("member"))?,
    )?;
    if user.sell_role != SellRole::None {
        return Err(Refusal::conflict(
            "already_sell_user",
            "this member already has Sell; change their Sell role instead",
        ));
    }
    sell_seat(&mut account, draft.actor, ctx.now, "sell.grant")?;
    let ignored = ask_sell_role(ctx, draft, &account, &user, role)?;
    user.sell_role = role;
    if role == SellRole::Admin {
        account.sell.admin_count += 1;
    }
    member_changed(
        draft,
        account,
        user,
        format!(
            "{}{}",
            format!("Sell {role:?} granted").to_lowercase(),
            ignored_note(&ignored)
        ),
    )
}

/// The caller must be a Sell admin (R22: configuring Sell needs one).
pub(crate) fn sell_admin(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
) -> Result<(Account, User), Refusal> {
    let (account, me) = member_with(view, actor, account_id, Need::Member)?;
    if account.sell.admin_count == 0 {
        return Err(Refusal::conflict(
            "sell_admin_required",
            format!("Sell has no admin yet; platform support can appoint one (POST /v1/accounts/{account_id}/sell/admins)"),
        ));
    }
    if me.sell_role != SellRole::Admin {
        return Err(Refusal::forbidden("configuring Sell needs a Sell admin"));
    }
    Ok((account, std::sync::Arc::unwrap_or_clone(me)))
}

pub(crate) fn sell_user(
    view: &dyn StateView,
    account_id: &str,
    user_id: &str,
) -> Result<User, Refusal> {
    active_member(
        view.user(account_id, user_id)?
            .filter(|u| u.sell_role != SellRole::None)
            .ok_or_else(|| Refusal::not_found("Sell user"))?,
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSellRole {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub role: SellRole,
}

impl Decide for ChangeSellRole {
    const BEFORE_HOOK: Option<&'static str> = Some("before_sell_role_change");
    fn info(&self) -> CommandInfo<'_> {
        let ChangeSellRole {
            account_id,
            user_id,
            ..
        } = self;
        CommandInfo::of("sell.change_role", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let ChangeSellRole {
            account_id,
            user_id,
            role,
        } = self;
        change_sell_role(view, ctx, draft, &account_id, &user_id, role)
    }
}

pub(crate) fn change_sell_role(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    role: SellRole,
) -> Result<Outcome, Refusal> {
    if role == SellRole::None {
        return Err(Refusal::invalid(
            "role must be user or admin; remove Sell access with DELETE",
        ));
    }
    let (mut account, _) = sell_admin(view, draft.actor, account_id)?;
    let mut user = sell_user(view, account_id, user_id)?;
    if user.sell_role == role {
        return Ok(Outcome::unchanged(member_reply(&account, user)));
    }
    if user.sell_role == SellRole::Admin {
        if account.sell.admin_count <= 1 {
            return Err(Refusal::conflict(
                "last_sell_admin",
                "the last Sell admin cannot be lowered; make someone else Sell admin first",
            ));
        }
        give_back(&mut account.sell.admin_count, "Sell admins")?;
    } else {
        account.sell.admin_count += 1;
    }
    let ignored = ask_sell_role(ctx, draft, &account, &user, role)?;
    user.sell_role = role;
    member_changed(
        draft,
        account,
        user,
        format!(
            "{}{}",
            format!("Sell role {role:?}").to_lowercase(),
            ignored_note(&ignored)
        ),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveSell {
    pub account_id: AccountId,
    pub user_id: UserId,
}

impl Decide for RemoveSell {
    const BEFORE_HOOK: Option<&'static str> = Some("before_sell_role_change");
    fn info(&self) -> CommandInfo<'_> {
        let RemoveSell {
            account_id,
            user_id,
        } = self;
        CommandInfo::of("sell.remove", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RemoveSell {
            account_id,
            user_id,
        } = self;
        remove_sell(view, ctx, draft, &account_id, &user_id)
    }
}

pub(crate) fn remove_sell(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
) -> Result<Outcome, Refusal> {
    let (mut account, _) = sell_admin(view, draft.actor, account_id)?;
    let mut user = sell_user(view, account_id, user_id)?;
    // R24: the last Sell admin stays.
    if user.sell_role == SellRole::Admin {
        if account.sell.admin_count <= 1 {
            return Err(Refusal::conflict(
                "last_sell_admin",
                "the last Sell admin cannot be removed; make someone else Sell admin first",
            ));
        }
        give_back(&mut account.sell.admin_count, "Sell admins")?;
    }
    give_back(&mut account.sell.seats_used, "Sell seats used")?;
    let ignored = ask_sell_role(ctx, draft, &account, &user, SellRole::None)?;
    user.sell_role = SellRole::None;
    Ok(Outcome {
        changes: vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("user:{user_id}"),
            format!("Sell access removed{}", ignored_note(&ignored)),
        ),
        reply: Reply::Done,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointSellAdmin {
    pub account_id: AccountId,
    pub user_id: UserId,
}

impl Decide for AppointSellAdmin {
    fn info(&self) -> CommandInfo<'_> {
        let AppointSellAdmin {
            account_id,
            user_id,
        } = self;
        CommandInfo::of(
            "sell.appoint_admin",
            Some(account_id),
            Target::User(user_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let AppointSellAdmin {
            account_id,
            user_id,
        } = self;
        appoint_sell_admin(view, ctx, draft, &account_id, &user_id)
    }
}

pub(crate) fn appoint_sell_admin(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
) -> Result<Outcome, Refusal> {
    operator_only(
        view,
        draft.actor,
        account_id,
        "the first Sell admin is appointed by platform support",
    )?;
    let mut account = view
        .account(account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    if account.sell.admin_count > 0 {
        return Err(Refusal::conflict(
            "sell_admin_exists",
            "Sell already has an admin; they add others",
        ));
    }
    let mut user = active_member(
        view.user(account_id, user_id)?
            .ok_or_else(|| Refusal::not_found("member"))?,
    )?;
    if account.sell.status == SellStatus::NotStarted {
        account.sell.status = SellStatus::Trial;
    }
    if !user.sell_role.holds_seat() {
        sell_seat(&mut account, draft.actor, ctx.now, "sell.appoint_admin")?;
    }
    user.sell_role = SellRole::Admin;
    account.sell.admin_count = 1;
    member_changed(
        draft,
        account,
        user,
        "appointed first Sell admin by platform support (R23)",
    )
}

/// The outcome of a change to a member's Sell access or role: the account
/// and the member written, the member in the reply.
fn member_changed(
    draft: &Draft,
    account: Account,
    user: User,
    detail: impl Into<String>,
) -> Result<Outcome, Refusal> {
    Ok(Outcome {
        audit: draft.ok(&account.id, format!("user:{}", user.id), detail),
        changes: vec![
            Change::PutAccount(account.clone()),
            Change::PutUser(user.clone()),
        ],
        notices: vec![],
        events: vec![],
        reply: member_reply(&account, user),
    })
}
