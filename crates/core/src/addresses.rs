//! Addresses and the profile hand-over (R12-R16).

use chrono::Duration;

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{token_hash, Ctx, Decide, Draft};
use crate::event::*;
use crate::limits::*;
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

/// R12: a user manages their own addresses; an admin those of agents and
/// end users; nobody another admin's or the owner's. And (a decision,
/// docs/rules.md) an admin manages only the addresses of a member who holds
/// no power the admin lacks: managing addresses is taking the profile over
/// (add a mailbox, make it primary, reset the password, R16/R17), so a
/// Support admin who is no Sell admin would become one through an agent
/// who is.
pub(crate) fn address_owner(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
    user_id: &str,
) -> Result<(Account, User), Refusal> {
    let (account, me) = member_with(view, actor, account_id, Need::Member)?;
    // A directory acts with its token's admin's powers, never as that
    // admin in person: their own profile is theirs alone.
    if me.id == user_id && !matches!(actor, Principal::Directory { .. }) {
        return Ok((account, std::sync::Arc::unwrap_or_clone(me)));
    }
    let target = view
        .user(account_id, user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if me.support_role != SupportRole::Admin {
        return Err(Refusal::forbidden(
            "only the user, or an admin for agents and end users, manages these addresses",
        ));
    }
    if target.support_role == SupportRole::Admin {
        return Err(Refusal::forbidden(
            "an admin's or the owner's addresses are managed by that person alone",
        ));
    }
    if target.sell_role == SellRole::Admin && me.sell_role != SellRole::Admin {
        return Err(Refusal::new(
            crate::refusal::RefusalKind::Forbidden,
            "member_holds_powers_you_lack",
            "this member is a Sell admin and you are not: their addresses are managed by them, or by an admin who is also a Sell admin",
        ));
    }
    Ok((account, target))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddEmail {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub address: String,
}

impl Decide for AddEmail {
    fn info(&self) -> CommandInfo<'_> {
        let AddEmail {
            account_id,
            user_id,
            address,
        } = self;
        CommandInfo::of(
            "email.add",
            Some(account_id),
            Target::UserEmail(user_id, address),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let AddEmail {
            account_id,
            user_id,
            address,
        } = self;
        add_email(view, ctx, draft, &account_id, &user_id, &address)
    }
}

pub(crate) fn add_email(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    address: &str,
) -> Result<Outcome, Refusal> {
    let address = validate::email("address", address)?;
    let (account, mut user) = address_owner(view, draft.actor, account_id, user_id)?;
    if view.user_by_email(account_id, &address)?.is_some() {
        return Err(Refusal::conflict(
            "email_taken",
            "that address already belongs to a member of this account",
        ));
    }
    if user.emails.len() >= EMAILS_PER_USER_MAX {
        return Err(Refusal::conflict(
            "email_limit_reached",
            format!("a profile holds at most {EMAILS_PER_USER_MAX} addresses"),
        ));
    }
    // R13: everyone already on the profile hears of it (the owner too).
    let mut notices: Vec<Notice> = user
        .emails
        .iter()
        .map(|e| Notice::EmailAdded {
            to: e.address.clone(),
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            user_name: user.name.clone(),
            added: address.clone(),
        })
        .collect();
    let token = ctx.entropy.token();
    notices.push(Notice::EmailVerification {
        to: address.clone(),
        account_id: account.id.clone(),
        account_name: account.name.clone(),
        token: token.clone(),
    });
    user.emails.push(EmailAddress {
        address: address.clone(),
        verified: false,
        primary: false,
        added_at: ctx.now,
    });
    let record = Token {
        hash: token_hash(&token),
        purpose: TokenPurpose::EmailVerification,
        account_id: account_id.to_string(),
        user_id: user.id.clone(),
        email: address.clone(),
        expires_at: ctx.now + Duration::hours(EMAIL_VERIFICATION_TTL_HOURS),
    };
    Ok(Outcome {
        changes: vec![
            Change::PutEmailIndex {
                account_id: account_id.to_string(),
                email: normalize_email(&address),
                user_id: user.id.clone(),
            },
            Change::PutUser(user.clone()),
            Change::PutToken(record),
        ],
        notices,
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("address {address} added"),
        ),
        reply: Reply::User(user),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmEmailVerification {
    pub token_hash: String,
}

impl Decide for ConfirmEmailVerification {
    /// When the directory asked for the address as primary (R14).
    const BEFORE_HOOK: Option<&'static str> = Some("before_email_primary");
    fn info(&self) -> CommandInfo<'_> {
        let ConfirmEmailVerification { .. } = self;
        CommandInfo::of("email.verify", None, Target::Named("email"))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let ConfirmEmailVerification { token_hash } = self;
        confirm_email(view, ctx, draft, &token_hash)
    }
}

pub(crate) fn confirm_email(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    hash: &str,
) -> Result<Outcome, Refusal> {
    let (token, mut user) = redeem_token(
        view,
        hash,
        &[TokenPurpose::EmailVerification],
        ctx.now,
        "the link is invalid, already used or expired",
    )?;
    // The directory asked for this address as primary: verified, it is
    // (R14, with its before- and after-hooks), in the same transaction.
    let requested = user
        .primary_requested
        .as_deref()
        .is_some_and(|r| normalize_email(r) == normalize_email(&token.email));
    if requested {
        let account = view
            .account(&token.account_id)?
            .ok_or_else(|| Refusal::not_found("account"))?;
        let wanted = user
            .email(&token.email)
            .cloned()
            .ok_or_else(|| Refusal::not_found("address"))?;
        let mut outcome = match switch_primary(ctx, draft, &account, user.clone(), wanted) {
            Ok(outcome) => outcome,
            // A policy keeps the old primary: the address is verified all
            // the same, and asked no more.
            Err(refusal) if refusal.code == "policy_denied" => {
                user.primary_requested = None;
                let mut plain = verified(token, user, draft);
                if let Some(audit) = &mut plain.audit {
                    audit.detail =
                        format!("{}; not made primary: {}", audit.detail, refusal.detail);
                }
                return Ok(plain);
            }
            Err(refusal) => return Err(refusal),
        };
        outcome.changes.insert(
            0,
            Change::DeleteToken {
                hash: token.hash.clone(),
            },
        );
        if let Some(audit) = &mut outcome.audit {
            audit.detail = format!("address {} verified; {}", token.email, audit.detail);
        }
        outcome.reply = Reply::Done;
        return Ok(outcome);
    }
    Ok(verified(token, user, draft))
}

/// The outcome of a used verification link: the token gone, the address
/// verified.
fn verified(token: Token, user: User, draft: &Draft) -> Outcome {
    Outcome {
        changes: vec![
            Change::DeleteToken {
                hash: token.hash.clone(),
            },
            Change::PutUser(user.clone()),
        ],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &token.account_id,
            format!("user:{}", user.id),
            format!("address {} verified", token.email),
        ),
        reply: Reply::Done,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MakePrimaryEmail {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub address: String,
}

impl Decide for MakePrimaryEmail {
    const BEFORE_HOOK: Option<&'static str> = Some("before_email_primary");
    fn info(&self) -> CommandInfo<'_> {
        let MakePrimaryEmail {
            account_id,
            user_id,
            address,
        } = self;
        CommandInfo::of(
            "email.make_primary",
            Some(account_id),
            Target::UserEmail(user_id, address),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let MakePrimaryEmail {
            account_id,
            user_id,
            address,
        } = self;
        make_primary(view, ctx, draft, &account_id, &user_id, &address)
    }
}

pub(crate) fn make_primary(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    address: &str,
) -> Result<Outcome, Refusal> {
    let (account, user) = address_owner(view, draft.actor, account_id, user_id)?;
    let wanted = user
        .email(address)
        .ok_or_else(|| Refusal::not_found("address"))?
        .clone();
    if wanted.primary {
        return Ok(Outcome::unchanged(Reply::User(user)));
    }
    // R14: only a verified address becomes primary.
    if !wanted.verified {
        return Err(Refusal::conflict(
            "email_unverified",
            "verify the address (use the link mailed to it) before making it primary",
        ));
    }
    switch_primary(ctx, draft, &account, user, wanted)
}

/// Makes `wanted`, a verified address of `user`, the primary one: asks
/// `before_email_primary`, tells the old primary address, fires
/// `after_email_primary` (R14).
fn switch_primary(
    ctx: &mut Ctx,
    draft: &Draft,
    account: &Account,
    mut user: User,
    wanted: EmailAddress,
) -> Result<Outcome, Refusal> {
    let account_id = account.id.as_str();
    let old = user.primary_address().to_string();
    let whose = PrimaryChangeUser {
        id: user.id.clone(),
        name: user.name.clone(),
        is_owner: account.owner_id == user.id,
    };
    let ignored = ctx.ask(&Proposal::EmailPrimary {
        account_id: account_id.to_string(),
        actor_id: actor_id(draft.actor),
        user: whose.clone(),
        old_primary: old.clone(),
        new_primary: wanted.address.clone(),
    })?;
    for e in &mut user.emails {
        e.primary = normalize_email(&e.address) == normalize_email(&wanted.address);
    }
    user.primary_requested = None;
    let event = DomainEvent::AfterEmailPrimary {
        account_id: account_id.to_string(),
        user: whose,
        old_primary: old.clone(),
        new_primary: wanted.address.clone(),
    };
    Ok(Outcome {
        changes: vec![Change::PutUser(user.clone())],
        notices: vec![Notice::PrimaryEmailChanged {
            to: old.clone(),
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            new_primary: wanted.address.clone(),
        }],
        events: vec![event],
        audit: draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!(
                "primary {old} -> {}{}",
                wanted.address,
                crate::context::ignored_note(&ignored)
            ),
        ),
        reply: Reply::User(user),
    })
}

/// A member's name (the profile hand-over ends with it, R16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameMember {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub name: String,
}

impl Decide for RenameMember {
    fn info(&self) -> CommandInfo<'_> {
        let RenameMember {
            account_id,
            user_id,
            ..
        } = self;
        CommandInfo::of("member.rename", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RenameMember {
            account_id,
            user_id,
            name,
        } = self;
        rename_member(view, draft, &account_id, &user_id, &name)
    }
}

/// A member's name, by whoever manages the profile's addresses (R12): the
/// person, or an admin for agents and end users. The last step of the
/// profile hand-over (R16): the successor's name on the owner's profile.
pub(crate) fn rename_member(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    name: &str,
) -> Result<Outcome, Refusal> {
    let name = validate::name("name", name)?;
    let (_, mut user) = address_owner(view, draft.actor, account_id, user_id)?;
    if user.name == name {
        return Ok(Outcome::unchanged(Reply::User(user)));
    }
    let before = std::mem::replace(&mut user.name, name);
    Ok(Outcome {
        changes: vec![Change::PutUser(user.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("name {before:?} -> {:?}", user.name),
        ),
        reply: Reply::User(user),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveEmail {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub address: String,
}

impl Decide for RemoveEmail {
    fn info(&self) -> CommandInfo<'_> {
        let RemoveEmail {
            account_id,
            user_id,
            address,
        } = self;
        CommandInfo::of(
            "email.remove",
            Some(account_id),
            Target::UserEmail(user_id, address),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RemoveEmail {
            account_id,
            user_id,
            address,
        } = self;
        remove_email(view, draft, &account_id, &user_id, &address)
    }
}

pub(crate) fn remove_email(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    address: &str,
) -> Result<Outcome, Refusal> {
    let (_, mut user) = address_owner(view, draft.actor, account_id, user_id)?;
    let found = user
        .email(address)
        .ok_or_else(|| Refusal::not_found("address"))?
        .clone();
    // R15: a profile always keeps its primary address.
    if found.primary {
        return Err(Refusal::conflict(
            "cannot_remove_primary_email",
            "the primary address cannot be removed; make another verified address primary first",
        ));
    }
    user.emails
        .retain(|e| normalize_email(&e.address) != normalize_email(&found.address));
    if user
        .primary_requested
        .as_deref()
        .is_some_and(|r| normalize_email(r) == normalize_email(&found.address))
    {
        user.primary_requested = None;
    }
    Ok(Outcome {
        changes: vec![
            Change::PutUser(user.clone()),
            Change::DeleteEmailIndex {
                account_id: account_id.to_string(),
                email: normalize_email(&found.address),
            },
            // R16: whoever signed in with the removed address is signed out.
            Change::DeleteSessionsSignedInWith {
                account_id: account_id.to_string(),
                user_id: user.id.clone(),
                email: found.address.clone(),
            },
        ],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("address {} removed", found.address),
        ),
        reply: Reply::User(user),
    })
}
