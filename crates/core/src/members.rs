//! Members: adding, changing the Support role of and removing members (R08, R09, R11).

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::accounts::*;
use crate::command::*;
use crate::context::{ignored_note, Ctx, Decide, Draft};
use crate::event::Proposal;
use crate::model::*;
use crate::refusal::Refusal;
use crate::seats::*;
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    pub account_id: AccountId,
    pub name: String,
    pub email: String,
    pub role: SupportRole,
}

impl Decide for AddMember {
    const BEFORE_HOOK: Option<&'static str> = Some("before_member_add");
    fn info(&self) -> CommandInfo<'_> {
        let AddMember {
            account_id, email, ..
        } = self;
        CommandInfo::of("member.add", Some(account_id), Target::Email(email))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let AddMember {
            account_id,
            name,
            email,
            role,
        } = self;
        add_member(
            view,
            ctx,
            draft,
            Joining {
                account_id,
                name,
                email,
                role,
                external_id: None,
                user_name: None,
                active: true,
            },
        )
    }
}

/// Who joins an account: by an admin (`AddMember`), or by the customer's
/// directory (`ProvisionMember`), which may add them deactivated and with
/// its own id of them.
pub(crate) struct Joining {
    pub account_id: AccountId,
    pub name: String,
    pub email: String,
    pub role: SupportRole,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
    pub active: bool,
}

pub(crate) fn add_member(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    joining: Joining,
) -> Result<Outcome, Refusal> {
    let Joining {
        account_id,
        name,
        email,
        role,
        external_id,
        user_name,
        active,
    } = joining;
    let actor = draft.actor;
    let now = ctx.now;
    let name = validate::name("name", &name)?;
    let email = validate::email("email", &email)?;
    let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
    if view.user_by_email(&account_id, &email)?.is_some() {
        return Err(Refusal::conflict(
            "email_taken",
            "that address already belongs to a member of this account",
        ));
    }
    if let Some(name) = &user_name {
        if view
            .user_by_email(&account_id, &directory_name_key(name))?
            .is_some()
        {
            return Err(user_name_taken());
        }
    }
    if account.member_count >= ctx.settings.members_per_account_max {
        return Err(Refusal::conflict(
            "member_limit_reached",
            format!(
                "an account holds at most {} members",
                ctx.settings.members_per_account_max
            ),
        ));
    }
    if active && role.holds_seat() {
        take_support_seat(&mut account, actor, now, "member.add")?;
    }
    let ignored = ctx.ask(&Proposal::MemberAdd {
        account_id: account_id.clone(),
        actor_id: actor_id(actor),
        name: name.clone(),
        email: email.clone(),
        role: role.as_str().to_string(),
    })?;
    account.member_count += 1;
    let mut user = new_user(ctx, &account_id, name, email.clone(), role);
    user.external_id = external_id;
    let mut changes = vec![
        Change::PutAccount(account.clone()),
        Change::PutEmailIndex {
            account_id: account_id.clone(),
            email: normalize_email(&email),
            user_id: user.id.clone(),
        },
    ];
    if let Some(name) = &user_name {
        changes.push(Change::PutEmailIndex {
            account_id: account_id.clone(),
            email: directory_name_key(name),
            user_id: user.id.clone(),
        });
    }
    user.user_name = user_name;
    let mut notices = vec![];
    if active {
        let (token_change, notice) = password_set_token(ctx, &account, &user);
        changes.push(token_change);
        notices.push(notice);
    } else {
        // Added deactivated: no seat, no mail until reactivated.
        user.deactivated_at = Some(now);
    }
    changes.push(Change::PutUser(user.clone()));
    let deactivated = if active { "" } else { ", deactivated" };
    Ok(Outcome {
        changes,
        notices,
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("user:{}", user.id),
            format!(
                "added as {}{deactivated}{}",
                role.as_str(),
                ignored_note(&ignored)
            ),
        ),
        reply: Reply::User(user),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRole {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub role: SupportRole,
}

impl Decide for ChangeRole {
    const BEFORE_HOOK: Option<&'static str> = Some("before_role_change");
    fn info(&self) -> CommandInfo<'_> {
        let ChangeRole {
            account_id,
            user_id,
            ..
        } = self;
        CommandInfo::of(
            "member.change_role",
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
        let ChangeRole {
            account_id,
            user_id,
            role,
        } = self;
        change_role(view, ctx, draft, account_id, user_id, role)
    }
}

pub(crate) fn change_role(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    user_id: UserId,
    role: SupportRole,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
    let mut user = view
        .user(&account_id, &user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if account.owner_id == user.id && role != SupportRole::Admin {
        return Err(Refusal::conflict(
            "owner_role_locked",
            "the owner's role cannot be lowered; hand ownership over first",
        ));
    }
    if user.support_role == role {
        return Ok(Outcome::unchanged(Reply::User(user)));
    }
    // A deactivated member holds no seat and takes none until reactivated.
    match (
        user.holds_support_seat(),
        user.is_active() && role.holds_seat(),
    ) {
        (false, true) => take_support_seat(&mut account, actor, now, "member.change_role")?,
        (true, false) => give_back(&mut account.support_seats_used, "support seats used")?,
        _ => {}
    }
    let ignored = ctx.ask(&Proposal::RoleChange {
        account_id: account_id.clone(),
        actor_id: actor_id(actor),
        member: member_snapshot(&account, &user),
        from_role: user.support_role.as_str().to_string(),
        to_role: role.as_str().to_string(),
    })?;
    let from = user.support_role;
    user.support_role = role;
    Ok(Outcome {
        changes: vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("user:{user_id}"),
            format!(
                "{} -> {}{}",
                from.as_str(),
                role.as_str(),
                ignored_note(&ignored)
            ),
        ),
        reply: Reply::User(user),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveMember {
    pub account_id: AccountId,
    pub user_id: UserId,
}

impl Decide for RemoveMember {
    const BEFORE_HOOK: Option<&'static str> = Some("before_member_remove");
    fn info(&self) -> CommandInfo<'_> {
        let RemoveMember {
            account_id,
            user_id,
        } = self;
        CommandInfo::of("member.remove", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RemoveMember {
            account_id,
            user_id,
        } = self;
        remove_member(view, ctx, draft, account_id, user_id)
    }
}

pub(crate) fn remove_member(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    user_id: UserId,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
    let user = view
        .user(&account_id, &user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if account.owner_id == user.id {
        return Err(Refusal::conflict(
            "owner_role_locked",
            "the owner cannot be removed; hand ownership over first",
        ));
    }
    free_seats(&mut account, &user)?;
    give_back(&mut account.member_count, "members")?;
    let ignored = ctx.ask(&Proposal::MemberRemove {
        account_id: account_id.clone(),
        actor_id: actor_id(actor),
        member: member_snapshot(&account, &user),
    })?;
    let mut changes = vec![];
    for e in &user.emails {
        changes.push(Change::DeleteEmailIndex {
            account_id: account_id.clone(),
            email: normalize_email(&e.address),
        });
    }
    if let Some(name) = &user.user_name {
        changes.push(Change::DeleteEmailIndex {
            account_id: account_id.clone(),
            email: directory_name_key(name),
        });
    }
    changes.extend(orphaned_integrations(view, ctx, &account_id, &user.id)?);
    changes.push(Change::DeleteUserSessions {
        account_id: account_id.clone(),
        user_id: user_id.clone(),
    });
    changes.push(Change::DeleteUser {
        account_id: account_id.clone(),
        user_id: user_id.clone(),
    });
    changes.push(Change::PutAccount(account));
    Ok(Outcome {
        changes,
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("user:{user_id}"),
            format!("removed{}", ignored_note(&ignored)),
        ),
        reply: Reply::Done,
    })
}

/// An integration whose configurer is gone (removed or deactivated) has
/// nobody to keep it authorized: flagged as a transfer flags it (R06).
pub(crate) fn orphaned_integrations(
    view: &dyn StateView,
    ctx: &Ctx,
    account_id: &str,
    user_id: &str,
) -> Result<Vec<Change>, Refusal> {
    Ok(view
        .integrations(account_id, ctx.settings.integrations_per_account_max)?
        .into_iter()
        .filter(|i| i.configured_by == user_id && i.status == IntegrationStatus::Active)
        .map(|mut i| {
            i.status = IntegrationStatus::NeedsReauthorization;
            i.updated_at = ctx.now;
            Change::PutIntegration(i)
        })
        .collect())
}

pub(crate) fn user_name_taken() -> Refusal {
    Refusal::conflict(
        "user_name_taken",
        "another member of this account has that directory user name",
    )
}

/// Mails a member who never set a password a new password-set link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendInvitation {
    pub account_id: AccountId,
    pub user_id: UserId,
}

impl Decide for ResendInvitation {
    fn info(&self) -> CommandInfo<'_> {
        let ResendInvitation {
            account_id,
            user_id,
        } = self;
        CommandInfo::of(
            "member.resend_invitation",
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
        let ResendInvitation {
            account_id,
            user_id,
        } = self;
        resend_invitation(view, ctx, draft, account_id, user_id)
    }
}

/// Mails a new password-set link to a member who never set a password
/// (the first mail was lost or expired); admins, as they add members.
pub(crate) fn resend_invitation(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    user_id: UserId,
) -> Result<Outcome, Refusal> {
    let (account, _) = member_with(view, draft.actor, &account_id, Need::Admin)?;
    let user = view
        .user(&account_id, &user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if user.password_hash.is_some() {
        return Err(Refusal::conflict(
            "invitation_accepted",
            "this member has set a password already; they can ask for a reset from the sign-in page",
        ));
    }
    let (token_change, notice) = password_set_token(ctx, &account, &user);
    Ok(Outcome {
        changes: vec![token_change],
        notices: vec![notice],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("user:{user_id}"),
            "password-set link mailed again",
        ),
        reply: Reply::Accepted,
    })
}
