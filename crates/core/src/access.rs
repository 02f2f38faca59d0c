//! Who may act: membership and role checks, operator-only and policy-only actions.

use std::sync::Arc;

use crate::command::*;
use crate::event::*;
use crate::model::*;
use crate::refusal::{Refusal, RefusalKind};
use crate::view::StateView;

pub fn snapshot(user: &User) -> UserSnapshot {
    UserSnapshot {
        id: user.id.clone(),
        name: user.name.clone(),
        primary_email: user.primary_address().to_string(),
        email_verified: user.primary_verified(),
        signed_in_before: user.signed_in_before,
    }
}

/// A member as a `before_` hook sees them.
pub fn member_snapshot(account: &Account, user: &User) -> MemberSnapshot {
    MemberSnapshot {
        user: snapshot(user),
        role: user.support_role.as_str().to_string(),
        sell_role: user.sell_role.as_str().to_string(),
        is_owner: account.owner_id == user.id,
    }
}

/// Who acts, as a hook's `actor_id`: a member's user id, else the
/// principal's audit name (`operator`, `policy:<name>`, …).
pub fn actor_id(actor: &Principal) -> String {
    match actor.user_id() {
        Some(id) => id.to_string(),
        None => actor.audit_name(),
    }
}

/// Role label of the member list (R07).
pub fn role_label(account: &Account, user: &User) -> &'static str {
    if account.owner_id == user.id {
        return "Administrator (owner)";
    }
    match user.support_role {
        SupportRole::Admin => "Administrator",
        SupportRole::Agent => "Agent",
        SupportRole::EndUser => "End user",
    }
}

/// What a caller needs to act on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any member, end users included.
    Member,
    Agent,
    Admin,
    Owner,
    Billing,
}

/// The caller as a member of `account_id`, with the role `need` asks for.
/// Non-members get 404 (they must not learn the account exists).
pub fn member_with(
    view: &dyn StateView,
    principal: &Principal,
    account_id: &str,
    need: Need,
) -> Result<(Account, Arc<User>), Refusal> {
    let (account, user) = member_with_shared(view, principal, account_id, need)?;
    Ok((Arc::unwrap_or_clone(account), user))
}

/// [`member_with`] for a read: the account as the store shares it, not
/// copied (a command, which changes it, takes [`member_with`]'s copy).
pub fn member_with_shared(
    view: &dyn StateView,
    principal: &Principal,
    account_id: &str,
    need: Need,
) -> Result<(Arc<Account>, Arc<User>), Refusal> {
    let refuse_outsider = |p: &Principal| {
        match (p, need) {
        // The operator is outside every account; R02/R19 say it never acts
        // as the owner, so it gets the same codes a non-owner gets.
        (Principal::Operator, Need::Owner) => Refusal::new(
            RefusalKind::Forbidden,
            "not_account_owner",
            "only the account owner can do this; platform support cannot",
        ),
        (Principal::Operator, Need::Billing) => Refusal::new(
            RefusalKind::Forbidden,
            "billing_owner_only",
            "billing is available to the account owner only",
        ),
        (Principal::Operator, _) => {
            Refusal::forbidden("platform support does not act as a member of an account")
        }
        (Principal::Anonymous, _) => Refusal::new(
            RefusalKind::Unauthenticated,
            "unauthorized",
            "sign in first",
        ),
        (Principal::Policy { .. }, _) => {
            Refusal::forbidden("policies act only through their own host functions")
        }
        (Principal::Webhook { .. }, _) => {
            Refusal::forbidden("webhooks act only through their effects")
        }
        // A directory provisions members: ownership and billing are the
        // owner's, in person (R02, R05).
        (Principal::Directory { account_id: a, .. }, Need::Owner) if a == account_id => {
            Refusal::new(
                RefusalKind::Forbidden,
                "not_account_owner",
                "a directory never changes ownership; the owner hands the account over in the Admin Center",
            )
        }
        (Principal::Directory { account_id: a, .. }, Need::Billing) if a == account_id => {
            Refusal::new(
                RefusalKind::Forbidden,
                "billing_owner_only",
                "a directory never changes billing; it is the account owner's",
            )
        }
        (Principal::Member { .. } | Principal::Directory { .. }, _) => {
            Refusal::not_found("account")
        }
    }
    };
    let user_id = match principal {
        Principal::Member {
            account_id: a,
            user_id,
        } if a == account_id => user_id,
        // The directory acts with the powers of the admin who created its
        // token, checked now: whatever that admin may no longer do, it may not.
        Principal::Directory {
            account_id: a,
            acting_for,
            ..
        } if a == account_id && !matches!(need, Need::Owner | Need::Billing) => acting_for,
        other => {
            // Outsiders learn nothing about accounts that do not exist.
            if view.account_shared(account_id)?.is_none() {
                return Err(Refusal::not_found("account"));
            }
            return Err(refuse_outsider(other));
        }
    };
    let account = view
        .account_shared(account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    let user = view
        .user_shared(account_id, user_id)?
        .filter(|u| u.is_active())
        .ok_or_else(|| {
            Refusal::new(
                RefusalKind::Unauthenticated,
                "unauthorized",
                "sign in first",
            )
        })?;
    let is_owner = account.owner_id == user.id;
    let ok = match need {
        Need::Member => true,
        Need::Agent => user.support_role.holds_seat(),
        Need::Admin => user.support_role == SupportRole::Admin,
        Need::Owner | Need::Billing => is_owner,
    };
    if !ok {
        return Err(match need {
            Need::Member => Refusal::not_found("account"),
            Need::Agent => Refusal::forbidden("this needs an agent or admin"),
            Need::Admin => Refusal::forbidden("this needs an admin of the account"),
            Need::Owner => Refusal::new(
                RefusalKind::Forbidden,
                "not_account_owner",
                "only the account owner can do this",
            ),
            Need::Billing => Refusal::new(
                RefusalKind::Forbidden,
                "billing_owner_only",
                "billing (invoices, payment method, seats) is available to the account owner only",
            ),
        });
    }
    Ok((account, user))
}

/// A member Sell may be given to or taken from: an active one (a
/// deactivated member's Sell seat and role wait for their reactivation).
pub(crate) fn active_member(user: User) -> Result<User, Refusal> {
    if user.is_active() {
        return Ok(user);
    }
    Err(Refusal::conflict(
        "member_deactivated",
        "this member is deactivated; reactivate them first",
    ))
}

/// The audit entry for a refusal by a rule, when it belongs to an account.
/// For what platform support alone does on an account: a member of the
/// account is told it is not theirs (403); anyone else gets the same 404
/// whether the account exists or not, so the answer reveals nothing.
pub(crate) fn operator_only(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
    detail: &str,
) -> Result<(), Refusal> {
    if *actor == Principal::Operator {
        return Ok(());
    }
    let member_here = match actor {
        Principal::Member {
            account_id: own, ..
        } => own == account_id,
        _ => false,
    };
    if !member_here || view.account(account_id)?.is_none() {
        return Err(Refusal::not_found("account"));
    }
    Err(Refusal::forbidden(detail))
}

pub(crate) fn policy_only(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
) -> Result<Account, Refusal> {
    let account = view
        .account(account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    if !matches!(actor, Principal::Policy { .. }) {
        return Err(Refusal::forbidden("only policies use this"));
    }
    Ok(account)
}

/// The reply of a command about a member: the member as the account's
/// admins see them, computed here so no edge reads state unchecked.
pub(crate) fn member_reply(account: &Account, user: User) -> Reply {
    Reply::Member {
        role_label: role_label(account, &user),
        is_owner: account.owner_id == user.id,
        user,
    }
}

/// Redeems a mailed link: the token must exist, be of one of `purposes` and
/// not have expired, and its profile must still hold the address it was
/// mailed to, which the link proves (marked verified on the returned user).
/// Any failure is the same `invalid_token`, saying `detail`.
pub(crate) fn redeem_token(
    view: &dyn StateView,
    hash: &str,
    purposes: &[TokenPurpose],
    now: chrono::DateTime<chrono::Utc>,
    detail: &str,
) -> Result<(Token, User), Refusal> {
    let invalid = || Refusal::new(RefusalKind::Invalid, "invalid_token", detail);
    let token = view.token(hash)?.ok_or_else(invalid)?;
    if !purposes.contains(&token.purpose) || token.expires_at <= now {
        return Err(invalid());
    }
    let mut user = view
        .user(&token.account_id, &token.user_id)?
        .ok_or_else(invalid)?;
    user.email_mut(&token.email).ok_or_else(invalid)?.verified = true;
    Ok((token, user))
}
