//! The customer's directory (SCIM): its tokens, and what it does to
//! members beyond adding, renaming and removing them — deactivating and
//! reactivating (seats freed and taken again, R09–R11), the directory's own
//! id of a person. A directory acts through `Principal::Directory`, with the
//! powers of the admin who created its token (`access::member_with`), so
//! every other rule holds for it as for that admin: the owner is never
//! deactivated or removed (R08), addresses follow R12–R16, ownership and
//! billing are never its to change (R02, R05).

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::accounts::password_set_token;
use crate::command::*;
use crate::context::{token_hash, Ctx, Decide, Draft};
use crate::limits::*;
use crate::model::*;
use crate::refusal::Refusal;
use crate::seats::*;
use crate::validate;
use crate::view::StateView;

/// Prefix of every SCIM token, so a leaked one is recognisable (secret
/// scanners) and never mistaken for a session.
pub const SCIM_TOKEN_PREFIX: &str = "admind_scim";

/// The bearer token as the directory sends it: the prefix, the account and
/// the token's id (to find its hash without an index), and the secret.
pub fn scim_token_text(account_id: &str, token_id: &str, secret: &str) -> String {
    format!("{SCIM_TOKEN_PREFIX}.{account_id}.{token_id}.{secret}")
}

/// The account and token id a bearer token names, if it has the shape of
/// one; whether it is genuine is for its hash to say.
pub fn scim_token_parts(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.split('.');
    let (Some(SCIM_TOKEN_PREFIX), Some(account_id), Some(token_id), Some(secret), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let shaped = validate::id_has_shape("acc", account_id)
        && validate::id_has_shape("sct", token_id)
        && !secret.is_empty();
    shaped.then_some((account_id, token_id))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateScimToken {
    pub account_id: AccountId,
    pub name: String,
}

impl Decide for CreateScimToken {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "scim.token_create",
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
        let name = validate::name("name", &self.name)?;
        // The owner or an admin, in person: a directory makes no tokens.
        if matches!(draft.actor, Principal::Directory { .. }) {
            return Err(Refusal::forbidden(
                "a directory cannot create directory tokens; an admin does, in the Admin Center",
            ));
        }
        let (mut account, me) = member_with(view, draft.actor, &self.account_id, Need::Admin)?;
        if account.scim_tokens.len() >= SCIM_TOKENS_PER_ACCOUNT_MAX {
            return Err(Refusal::conflict(
                "scim_token_limit_reached",
                format!(
                    "an account holds at most {SCIM_TOKENS_PER_ACCOUNT_MAX} directory tokens; revoke one first"
                ),
            ));
        }
        let id = ctx.entropy.id("sct");
        let secret = scim_token_text(&account.id, &id, &ctx.entropy.token());
        let token = ScimToken {
            id,
            name,
            hash: token_hash(&secret),
            created_by: me.id.clone(),
            created_at: ctx.now,
            last_used_at: None,
        };
        account.scim_tokens.push(token.clone());
        Ok(Outcome {
            changes: vec![Change::PutAccount(account)],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &self.account_id,
                format!("scim_token:{}", token.id),
                format!("directory token {:?} created", token.name),
            ),
            reply: Reply::ScimToken { token, secret },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeScimToken {
    pub account_id: AccountId,
    pub token_id: String,
}

impl Decide for RevokeScimToken {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "scim.token_revoke",
            Some(&self.account_id),
            Target::Account(&self.account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let (mut account, _) = member_with(view, draft.actor, &self.account_id, Need::Admin)?;
        let at = account
            .scim_tokens
            .iter()
            .position(|t| t.id == self.token_id)
            .ok_or_else(|| Refusal::not_found("directory token"))?;
        let token = account.scim_tokens.remove(at);
        Ok(Outcome {
            changes: vec![Change::PutAccount(account)],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &self.account_id,
                format!("scim_token:{}", token.id),
                format!("directory token {:?} revoked", token.name),
            ),
            reply: Reply::Done,
        })
    }
}

/// Records that a directory used its token: at most once per
/// `SCIM_TOKEN_USE_PRECISION_MINUTES`, so a busy directory does not
/// rewrite the account on every request. Not audited (the requests it
/// makes are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteScimTokenUse {
    pub account_id: AccountId,
}

impl Decide for NoteScimTokenUse {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "scim.token_use",
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
        let Principal::Directory {
            account_id,
            token_id,
            ..
        } = draft.actor
        else {
            return Err(Refusal::forbidden("only a directory notes its token's use"));
        };
        let mut account = view
            .account(&self.account_id)?
            .filter(|a| a.id == *account_id)
            .ok_or_else(|| Refusal::not_found("account"))?;
        let precision = Duration::minutes(SCIM_TOKEN_USE_PRECISION_MINUTES);
        let Some(token) = account.scim_tokens.iter_mut().find(|t| t.id == *token_id) else {
            return Err(Refusal::not_found("directory token"));
        };
        if token
            .last_used_at
            .is_some_and(|at| at + precision > ctx.now)
        {
            return Ok(Outcome::unchanged(Reply::Done));
        }
        token.last_used_at = Some(ctx.now);
        Ok(Outcome {
            changes: vec![Change::PutAccount(account)],
            notices: vec![],
            events: vec![],
            audit: None,
            reply: Reply::Done,
        })
    }
}

/// Deactivates a member (`active: false`) or brings one back (`true`).
/// Deactivating ends their sessions, frees their Support and Sell seats and
/// keeps the profile, roles and history; the owner cannot be deactivated
/// (R08) nor the last Sell admin (R24). Reactivating takes the seats again
/// (R09, R11, R25: `agent_seat_exhausted` / `sell_seat_exhausted` and their
/// hooks when none is free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMemberActive {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub active: bool,
}

impl Decide for SetMemberActive {
    const BEFORE_HOOK: Option<&'static str> = Some("before_member_active_change");
    fn info(&self) -> CommandInfo<'_> {
        let action = if self.active {
            "member.reactivate"
        } else {
            "member.deactivate"
        };
        CommandInfo::of(action, Some(&self.account_id), Target::User(&self.user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let SetMemberActive {
            account_id,
            user_id,
            active,
        } = self;
        let actor = draft.actor;
        let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
        let mut user = view
            .user(&account_id, &user_id)?
            .ok_or_else(|| Refusal::not_found("member"))?;
        if user.is_active() == active {
            return Ok(Outcome::unchanged(member_reply(&account, user)));
        }
        let mut changes = vec![];
        let mut notices = vec![];
        let detail;
        if active {
            if user.support_role.holds_seat() {
                take_support_seat(&mut account, actor, ctx.now, "member.reactivate")?;
            }
            if user.sell_role.holds_seat() {
                sell_seat(&mut account, actor, ctx.now, "member.reactivate")?;
            }
            if user.sell_role == SellRole::Admin {
                account.sell.admin_count += 1;
            }
            user.deactivated_at = None;
            if let Some((token, invitation)) = invitation_on_reactivation(ctx, &account, &user) {
                changes.push(token);
                notices.push(invitation);
            }
            detail = "reactivated; seats taken again".to_string();
        } else {
            if account.owner_id == user.id {
                return Err(Refusal::conflict(
                    "owner_role_locked",
                    "the owner cannot be deactivated; hand ownership over first",
                ));
            }
            free_seats(&mut account, &user)?;
            changes.extend(crate::members::orphaned_integrations(
                view,
                ctx,
                &account_id,
                &user.id,
            )?);
            changes.push(Change::DeleteUserSessions {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
            });
            user.deactivated_at = Some(ctx.now);
            detail = "deactivated; seats freed, sessions ended".to_string();
        }
        // Every rule allowed it: the policies may still refuse.
        let ignored = ctx.ask(&crate::event::Proposal::MemberActiveChange {
            account_id: account_id.clone(),
            actor_id: actor_id(actor),
            member: member_snapshot(&account, &user),
            active,
        })?;
        let detail = format!("{detail}{}", crate::context::ignored_note(&ignored));
        changes.push(Change::PutUser(user.clone()));
        changes.push(Change::PutAccount(account.clone()));
        Ok(Outcome {
            changes,
            notices,
            events: vec![],
            audit: draft.ok(&account_id, format!("user:{user_id}"), detail),
            reply: member_reply(&account, user),
        })
    }
}

/// The directory's names for a member: its login name (SCIM `userName`,
/// unique in the account) and its own id (`externalId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDirectoryIds {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
}

impl Decide for SetDirectoryIds {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "member.set_directory_ids",
            Some(&self.account_id),
            Target::User(&self.user_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let external_id = optional_text("externalId", self.external_id.as_deref())?;
        let user_name = optional_text("userName", self.user_name.as_deref())?;
        let (account, _) = member_with(view, draft.actor, &self.account_id, Need::Admin)?;
        let mut user = view
            .user(&self.account_id, &self.user_id)?
            .ok_or_else(|| Refusal::not_found("member"))?;
        if user.external_id == external_id && user.user_name == user_name {
            return Ok(Outcome::unchanged(member_reply(&account, user)));
        }
        let mut changes = vec![];
        let key = |name: &Option<String>| name.as_deref().map(directory_name_key);
        if key(&user.user_name) != key(&user_name) {
            if let Some(new) = key(&user_name) {
                if view
                    .user_by_email(&self.account_id, &new)?
                    .is_some_and(|other| other.id != user.id)
                {
                    return Err(crate::members::user_name_taken());
                }
                changes.push(Change::PutEmailIndex {
                    account_id: self.account_id.clone(),
                    email: new,
                    user_id: user.id.clone(),
                });
            }
            if let Some(old) = key(&user.user_name) {
                changes.push(Change::DeleteEmailIndex {
                    account_id: self.account_id.clone(),
                    email: old,
                });
            }
        }
        user.external_id = external_id;
        user.user_name = user_name;
        changes.push(Change::PutUser(user.clone()));
        Ok(Outcome {
            changes,
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &self.account_id,
                format!("user:{}", self.user_id),
                format!(
                    "directory user name {:?}, external id {:?}",
                    user.user_name.as_deref().unwrap_or(""),
                    user.external_id.as_deref().unwrap_or("")
                ),
            ),
            reply: member_reply(&account, user),
        })
    }
}

fn optional_text(field: &str, value: Option<&str>) -> Result<Option<String>, Refusal> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| validate::name(field, v))
        .transpose()
}

/// A member the directory provisions: added as an agent (who takes a seat,
/// R09, firing `agent_seat_exhausted` when none is free, as in the console)
/// with the directory's id, or added deactivated (no seat, no mail) when
/// the directory creates them inactive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionMember {
    pub account_id: AccountId,
    pub name: String,
    pub email: String,
    pub role: SupportRole,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
    pub active: bool,
}

impl Decide for ProvisionMember {
    const BEFORE_HOOK: Option<&'static str> = Some("before_member_add");
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "member.add",
            Some(&self.account_id),
            Target::Email(&self.email),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let external_id = optional_text("externalId", self.external_id.as_deref())?;
        let user_name = optional_text("userName", self.user_name.as_deref())?;
        crate::members::add_member(
            view,
            ctx,
            draft,
            crate::members::Joining {
                account_id: self.account_id,
                name: self.name,
                email: self.email,
                role: self.role,
                external_id,
                user_name,
                active: self.active,
            },
        )
    }
}

/// The password-set link of a reactivated member who never set a password
/// (none was mailed while they were deactivated).
pub(crate) fn invitation_on_reactivation(
    ctx: &mut Ctx,
    account: &Account,
    user: &User,
) -> Option<(Change, Notice)> {
    (user.password_hash.is_none()).then(|| password_set_token(ctx, account, user))
}

/// The directory names a member's primary address: a verified one becomes
/// primary now (as `MakePrimaryEmail`); one not yet verified is remembered
/// and becomes primary when its link is used (R14), so a profile the
/// directory renamed is handed over (R16) without another push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPrimaryEmail {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub address: String,
}

impl Decide for RequestPrimaryEmail {
    const BEFORE_HOOK: Option<&'static str> = Some("before_email_primary");
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "email.request_primary",
            Some(&self.account_id),
            Target::UserEmail(&self.user_id, &self.address),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let (_, mut user) =
            crate::addresses::address_owner(view, draft.actor, &self.account_id, &self.user_id)?;
        let wanted = user
            .email(&self.address)
            .cloned()
            .ok_or_else(|| Refusal::not_found("address"))?;
        if wanted.verified {
            return crate::addresses::make_primary(
                view,
                ctx,
                draft,
                &self.account_id,
                &self.user_id,
                &self.address,
            );
        }
        if user.primary_requested.as_deref() == Some(wanted.address.as_str()) {
            return Ok(Outcome::unchanged(Reply::User(user)));
        }
        user.primary_requested = Some(wanted.address.clone());
        Ok(Outcome {
            changes: vec![Change::PutUser(user.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &self.account_id,
                format!("user:{}", user.id),
                format!(
                    "{} asked as primary; it becomes primary once verified",
                    wanted.address
                ),
            ),
            reply: Reply::User(user),
        })
    }
}
