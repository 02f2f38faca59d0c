//! Rules for profiles and products: email addresses and the profile
//! hand-over (R12–R16), temporary licences (R18), Sell (R20–R25).

use chrono::{DateTime, Duration, Utc};

use super::command::*;
use super::event::*;
use super::model::*;
use super::refusal::{Refusal, RefusalKind};
use super::rules::{member_with, token_hash, Ctx, Draft, Need};
use super::validate;
use super::view::StateView;

pub const EMAILS_PER_USER_MAX: usize = 10;
pub const PENDING_LICENCE_REQUESTS_MAX: usize = 20;
pub const ACTIVE_GRANTS_MAX: usize = 100;
pub const GRANT_DURATION_MAX_DAYS: i64 = 366;
pub const EMAIL_VERIFICATION_TTL_HOURS: i64 = 24;

fn done(
    changes: Vec<Change>,
    notices: Vec<Notice>,
    events: Vec<DomainEvent>,
    audit: Option<AuditDraft>,
    reply: Reply,
) -> Result<Outcome, Refusal> {
    Ok(Outcome {
        changes,
        notices,
        events,
        audit,
        reply,
    })
}

/// R12: a user manages their own addresses; an admin those of agents and
/// end users; nobody another admin's or the owner's.
fn address_owner(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
    user_id: &str,
) -> Result<(Account, User), Refusal> {
    let (account, me) = member_with(view, actor, account_id, Need::Member)?;
    if me.id == user_id {
        return Ok((account, me));
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
    Ok((account, target))
}

pub(super) fn add_email(
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
            account_name: account.name.clone(),
            user_name: user.name.clone(),
            added: address.clone(),
        })
        .collect();
    let token = ctx.entropy.token();
    notices.push(Notice::EmailVerification {
        to: address.clone(),
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
    done(
        vec![
            Change::PutEmailIndex {
                account_id: account_id.to_string(),
                email: normalize_email(&address),
                user_id: user.id.clone(),
            },
            Change::PutUser(user.clone()),
            Change::PutToken(record),
        ],
        notices,
        vec![],
        draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("address {address} added"),
        ),
        Reply::User(user),
    )
}

pub(super) fn confirm_email(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    hash: &str,
) -> Result<Outcome, Refusal> {
    let invalid = || {
        Refusal::new(
            RefusalKind::Invalid,
            "invalid_token",
            "the link is invalid, already used or expired",
        )
    };
    let token = view.token(hash)?.ok_or_else(invalid)?;
    if token.purpose != TokenPurpose::EmailVerification || token.expires_at <= ctx.now {
        return Err(invalid());
    }
    let mut user = view
        .user(&token.account_id, &token.user_id)?
        .ok_or_else(invalid)?;
    let address = user.email_mut(&token.email).ok_or_else(invalid)?;
    address.verified = true;
    done(
        vec![
            Change::DeleteToken {
                hash: token.hash.clone(),
            },
            Change::PutUser(user.clone()),
        ],
        vec![],
        vec![],
        draft.ok(
            &token.account_id,
            format!("user:{}", user.id),
            format!("address {} verified", token.email),
        ),
        Reply::Done,
    )
}

pub(super) fn make_primary(
    view: &dyn StateView,
    _ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
    address: &str,
) -> Result<Outcome, Refusal> {
    let (account, mut user) = address_owner(view, draft.actor, account_id, user_id)?;
    let old = user.primary_address().to_string();
    let wanted = user
        .email(address)
        .ok_or_else(|| Refusal::not_found("address"))?
        .clone();
    if wanted.primary {
        return done(vec![], vec![], vec![], None, Reply::User(user));
    }
    // R14: only a verified address becomes primary.
    if !wanted.verified {
        return Err(Refusal::conflict(
            "email_unverified",
            "verify the address (use the link mailed to it) before making it primary",
        ));
    }
    for e in &mut user.emails {
        e.primary = normalize_email(&e.address) == normalize_email(&wanted.address);
    }
    let event = DomainEvent::AfterEmailPrimary {
        account_id: account_id.to_string(),
        user: PrimaryChangeUser {
            id: user.id.clone(),
            name: user.name.clone(),
            is_owner: account.owner_id == user.id,
        },
        old_primary: old.clone(),
        new_primary: wanted.address.clone(),
    };
    done(
        vec![Change::PutUser(user.clone())],
        vec![Notice::PrimaryEmailChanged {
            to: old.clone(),
            account_name: account.name.clone(),
            new_primary: wanted.address.clone(),
        }],
        vec![event],
        draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("primary {old} -> {}", wanted.address),
        ),
        Reply::User(user),
    )
}

pub(super) fn remove_email(
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
    done(
        vec![
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
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("user:{}", user.id),
            format!("address {} removed", found.address),
        ),
        Reply::User(user),
    )
}

pub(super) fn request_licence(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    product: Product,
    seats: u32,
    reason: &str,
) -> Result<Outcome, Refusal> {
    // R18: the owner asks; policies may ask on the owner's behalf.
    if !matches!(draft.actor, Principal::Policy { .. }) {
        member_with(view, draft.actor, account_id, Need::Owner)?;
    } else if view.account(account_id)?.is_none() {
        return Err(Refusal::not_found("account"));
    }
    let reason = validate::note("reason", reason)?;
    let seats = validate::seats("seats", seats)?;
    if seats == 0 {
        return Err(Refusal::invalid("seats must be at least 1"));
    }
    let pending = view
        .account_licence_requests(account_id, 10_000)?
        .into_iter()
        .filter(|r| r.status == LicenceStatus::Pending)
        .count();
    if pending >= PENDING_LICENCE_REQUESTS_MAX {
        return Err(Refusal::conflict(
            "too_many_pending_requests",
            format!(
                "an account has at most {PENDING_LICENCE_REQUESTS_MAX} pending licence requests"
            ),
        ));
    }
    let request = LicenceRequest {
        id: ctx.entropy.id("lic"),
        account_id: account_id.to_string(),
        product,
        seats,
        reason,
        status: LicenceStatus::Pending,
        requested_by: draft.actor.audit_name(),
        created_at: ctx.now,
        decided_at: None,
        granted_seats: None,
        expires_at: None,
        deny_reason: None,
    };
    done(
        vec![Change::PutLicenceRequest(request.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("licence_request:{}", request.id),
            format!("{seats} temporary {} seat(s) requested", product.as_str()),
        ),
        Reply::LicenceRequest(request),
    )
}

fn pending_request(
    view: &dyn StateView,
    draft: &Draft,
    id: &str,
) -> Result<(LicenceRequest, Account), Refusal> {
    if *draft.actor != Principal::Operator {
        return Err(Refusal::forbidden(
            "licence requests are decided by platform support",
        ));
    }
    let request = view
        .licence_request(id)?
        .ok_or_else(|| Refusal::not_found("licence request"))?;
    if request.status != LicenceStatus::Pending {
        return Err(Refusal::conflict(
            "licence_request_decided",
            "this licence request was already decided",
        ));
    }
    let account = view
        .account(&request.account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    Ok((request, account))
}

fn owner_address(view: &dyn StateView, account: &Account) -> Result<String, Refusal> {
    Ok(view
        .user(&account.id, &account.owner_id)?
        .map(|u| u.primary_address().to_string())
        .unwrap_or_default())
}

pub(super) fn grant_licence(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    id: &str,
    seats: u32,
    expires_at: DateTime<Utc>,
) -> Result<Outcome, Refusal> {
    let (mut request, mut account) = pending_request(view, draft, id)?;
    let seats = validate::seats("seats", seats)?;
    if seats == 0 {
        return Err(Refusal::invalid("seats must be at least 1"));
    }
    if expires_at <= ctx.now || expires_at > ctx.now + Duration::days(GRANT_DURATION_MAX_DAYS) {
        return Err(Refusal::invalid(format!(
            "expires_at must be in the future and within {GRANT_DURATION_MAX_DAYS} days"
        )));
    }
    let now = ctx.now;
    account.grants.retain(|g| g.expires_at > now);
    if account.grants.len() >= ACTIVE_GRANTS_MAX {
        return Err(Refusal::conflict(
            "too_many_grants",
            format!("an account holds at most {ACTIVE_GRANTS_MAX} unexpired grants"),
        ));
    }
    account.grants.push(SeatGrant {
        product: request.product,
        seats,
        expires_at,
    });
    request.status = LicenceStatus::Granted;
    request.decided_at = Some(now);
    request.granted_seats = Some(seats);
    request.expires_at = Some(expires_at);
    let notice = Notice::LicenceRequestDecided {
        to: owner_address(view, &account)?,
        account_name: account.name.clone(),
        product: request.product,
        granted_seats: Some(seats),
        expires_at: Some(expires_at),
        deny_reason: None,
    };
    let audit = draft.ok(
        &account.id,
        format!("licence_request:{id}"),
        format!(
            "{seats} {} seat(s) granted until {expires_at}",
            request.product.as_str()
        ),
    );
    done(
        vec![
            Change::PutAccount(account),
            Change::PutLicenceRequest(request.clone()),
        ],
        vec![notice],
        vec![],
        audit,
        Reply::LicenceRequest(request),
    )
}

pub(super) fn deny_licence(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    id: &str,
    reason: &str,
) -> Result<Outcome, Refusal> {
    let (mut request, account) = pending_request(view, draft, id)?;
    let reason = validate::note("reason", reason)?;
    request.status = LicenceStatus::Denied;
    request.decided_at = Some(ctx.now);
    request.deny_reason = Some(reason.clone());
    let notice = Notice::LicenceRequestDecided {
        to: owner_address(view, &account)?,
        account_name: account.name.clone(),
        product: request.product,
        granted_seats: None,
        expires_at: None,
        deny_reason: Some(reason),
    };
    done(
        vec![Change::PutLicenceRequest(request.clone())],
        vec![notice],
        vec![],
        draft.ok(&account.id, format!("licence_request:{id}"), "denied"),
        Reply::LicenceRequest(request),
    )
}

fn sell_seat(
    account: &mut Account,
    actor: &Principal,
    now: DateTime<Utc>,
    attempt: &str,
) -> Result<(), Refusal> {
    let total = account.sell_seats_total(now);
    if account.sell.seats_used >= total {
        return Err(Refusal::conflict(
            "sell_seat_exhausted",
            format!(
                "every Sell seat is taken ({} of {total}); buy Sell seats, free one, or ask platform support for temporary seats",
                account.sell.seats_used
            ),
        )
        .with_event(DomainEvent::SellSeatExhausted {
            account_id: account.id.clone(),
            actor_id: actor.user_id().unwrap_or("").to_string(),
            seats_total: total,
            seats_used: account.sell.seats_used,
            attempt: attempt.to_string(),
        }));
    }
    account.sell.seats_used += 1;
    Ok(())
}

pub(super) fn start_sell_trial(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
) -> Result<Outcome, Refusal> {
    // R20: the owner or an admin starts it and is its first Sell admin.
    let (mut account, mut me) = member_with(view, draft.actor, account_id, Need::Admin)?;
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
    done(
        vec![Change::PutAccount(account), Change::PutUser(me.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("user:{}", me.id),
            "Sell trial started; first Sell admin",
        ),
        Reply::User(me),
    )
}

pub(super) fn grant_sell(
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
        if user_id == me.id {
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
    let mut user = view
        .user(account_id, user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if user.sell_role != SellRole::None {
        return Err(Refusal::conflict(
            "already_sell_user",
            "this member already has Sell; change their Sell role instead",
        ));
    }
    sell_seat(&mut account, draft.actor, ctx.now, "sell.grant")?;
    user.sell_role = role;
    if role == SellRole::Admin {
        account.sell.admin_count += 1;
    }
    done(
        vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("user:{user_id}"),
            format!("Sell {role:?} granted").to_lowercase(),
        ),
        Reply::User(user),
    )
}

/// The caller must be a Sell admin (R22: configuring Sell needs one).
fn sell_admin(
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
    Ok((account, me))
}

fn sell_user(view: &dyn StateView, account_id: &str, user_id: &str) -> Result<User, Refusal> {
    view.user(account_id, user_id)?
        .filter(|u| u.sell_role != SellRole::None)
        .ok_or_else(|| Refusal::not_found("Sell user"))
}

pub(super) fn change_sell_role(
    view: &dyn StateView,
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
        return done(vec![], vec![], vec![], None, Reply::User(user));
    }
    if user.sell_role == SellRole::Admin {
        if account.sell.admin_count <= 1 {
            return Err(Refusal::conflict(
                "last_sell_admin",
                "the last Sell admin cannot be lowered; make someone else Sell admin first",
            ));
        }
        account.sell.admin_count -= 1;
    } else {
        account.sell.admin_count += 1;
    }
    user.sell_role = role;
    done(
        vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("user:{user_id}"),
            format!("Sell role {role:?}").to_lowercase(),
        ),
        Reply::User(user),
    )
}

pub(super) fn remove_sell(
    view: &dyn StateView,
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
        account.sell.admin_count -= 1;
    }
    account.sell.seats_used = account.sell.seats_used.saturating_sub(1);
    user.sell_role = SellRole::None;
    done(
        vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        vec![],
        vec![],
        draft.ok(account_id, format!("user:{user_id}"), "Sell access removed"),
        Reply::Done,
    )
}

pub(super) fn appoint_sell_admin(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: &str,
    user_id: &str,
) -> Result<Outcome, Refusal> {
    super::rules::operator_only(
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
    let mut user = view
        .user(account_id, user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    if account.sell.status == SellStatus::NotStarted {
        account.sell.status = SellStatus::Trial;
    }
    if !user.sell_role.holds_seat() {
        sell_seat(&mut account, draft.actor, ctx.now, "sell.appoint_admin")?;
    }
    user.sell_role = SellRole::Admin;
    account.sell.admin_count = 1;
    done(
        vec![Change::PutAccount(account), Change::PutUser(user.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("user:{user_id}"),
            "appointed first Sell admin by platform support (R23)",
        ),
        Reply::User(user),
    )
}

pub const POLICY_SUBJECT_MAX_CHARS: usize = 200;
pub const POLICY_BODY_MAX_CHARS: usize = 10_000;

fn policy_only(
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

/// A policy mails a member of the event's account (never an outside address).
pub(super) fn policy_notify(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    address: &str,
    subject: &str,
    body: &str,
) -> Result<Outcome, Refusal> {
    policy_only(view, draft.actor, account_id)?;
    let address = validate::email("address", address)?;
    if view.user_by_email(account_id, &address)?.is_none() {
        return Err(Refusal::forbidden(
            "policies mail members of the account only",
        ));
    }
    let subject = validate::name("subject", subject).map_err(|_| {
        Refusal::invalid(format!(
            "subject must be 1 to {POLICY_SUBJECT_MAX_CHARS} characters"
        ))
    })?;
    if body.is_empty() || body.chars().count() > POLICY_BODY_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "body must be 1 to {POLICY_BODY_MAX_CHARS} characters"
        )));
    }
    done(
        vec![],
        vec![Notice::Custom {
            to: address.clone(),
            subject: subject.clone(),
            body: body.to_string(),
        }],
        vec![],
        draft.ok(
            account_id,
            format!("email:{address}"),
            format!("mailed: {subject}"),
        ),
        Reply::Done,
    )
}

pub(super) fn flag_integration(
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
    done(
        vec![Change::PutIntegration(integration.clone())],
        vec![],
        vec![],
        draft.ok(
            account_id,
            format!("integration:{integration_id}"),
            "flagged: needs reauthorization",
        ),
        Reply::Integration(integration),
    )
}

/// The audit scope of entries that concern no account (platform support
/// reads it at `GET /v1/audit`). It cannot collide with an account id,
/// which always has the shape `acc_<hex>`.
pub const PLATFORM_AUDIT_SCOPE: &str = "platform";

pub(super) fn record_policy_call(
    view: &dyn StateView,
    draft: &Draft,
    account_id: &str,
    call: PolicyCallRecord,
) -> Result<Outcome, Refusal> {
    if account_id == PLATFORM_AUDIT_SCOPE {
        // A call about no account (a webhook without `data.account_id`) is
        // recorded in the platform's own log.
        if !matches!(draft.actor, Principal::Policy { .. }) {
            return Err(Refusal::forbidden("only policies use this"));
        }
    } else {
        policy_only(view, draft.actor, account_id)?;
    }
    let mut audit = draft.ok(
        account_id,
        format!("hook:{}", call.hook),
        format!(
            "version {}; {}; actions [{}]; {} us{}",
            call.version,
            call.decision,
            call.actions.join(", "),
            call.duration_us,
            call.error
                .as_deref()
                .map(|e| format!("; error: {e}"))
                .unwrap_or_default()
        ),
    );
    if let Some(a) = audit.as_mut() {
        a.outcome = call.decision.clone();
        a.cause = call.cause_seq;
    }
    done(vec![], vec![], vec![], audit, Reply::Done)
}

pub const WEBHOOK_ID_MAX_CHARS: usize = 256;
pub const WEBHOOK_TYPE_MAX_CHARS: usize = 200;

/// A verified webhook: its id is recorded with its effect in one
/// transaction, so a redelivery (also after a crash) has no second effect.
/// The daemon understands `integration.token_revoked`; every delivery fires
/// `webhook_received`.
pub(super) fn receive_webhook(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    source: String,
    webhook_id: String,
    kind: String,
    data: serde_json::Value,
) -> Result<Outcome, Refusal> {
    if webhook_id.is_empty() || webhook_id.chars().count() > WEBHOOK_ID_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "webhook-id must be 1 to {WEBHOOK_ID_MAX_CHARS} characters"
        )));
    }
    if kind.is_empty() || kind.chars().count() > WEBHOOK_TYPE_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "type must be 1 to {WEBHOOK_TYPE_MAX_CHARS} characters"
        )));
    }
    if view.webhook_seen(&source, &webhook_id)? {
        return done(
            vec![],
            vec![],
            vec![],
            None,
            Reply::Webhook {
                duplicate: true,
                effect: "none (already received)".into(),
            },
        );
    }
    let mut changes = vec![Change::PutWebhookSeen {
        source: source.clone(),
        webhook_id: webhook_id.clone(),
        at: ctx.now,
    }];
    let mut notices = vec![];
    let mut audit = None;
    let mut effect = "none".to_string();
    if kind == "integration.token_revoked" {
        let field = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
        match (field("account_id"), field("integration_id")) {
            (Some(account_id), Some(integration_id)) => match (
                view.account(&account_id)?,
                view.integration(&account_id, &integration_id)?,
            ) {
                (Some(account), Some(mut integration)) => {
                    integration.status = IntegrationStatus::NeedsReauthorization;
                    integration.updated_at = ctx.now;
                    if let Some(admin) = view.user(&account_id, &integration.configured_by)? {
                        notices.push(Notice::IntegrationRevoked {
                            to: admin.primary_address().to_string(),
                            account_name: account.name.clone(),
                            integration_name: integration.name.clone(),
                            source: source.clone(),
                        });
                    }
                    audit = draft.ok(
                        &account_id,
                        format!("integration:{integration_id}"),
                        format!("token revoked (webhook {webhook_id}); needs reauthorization"),
                    );
                    changes.push(Change::PutIntegration(integration));
                    effect = "integration needs reauthorization".into();
                }
                _ => effect = "ignored: unknown account or integration".into(),
            },
            _ => effect = "ignored: data needs account_id and integration_id".into(),
        }
    }
    let event = DomainEvent::WebhookReceived {
        source,
        id: webhook_id,
        kind,
        data,
    };
    done(
        changes,
        notices,
        vec![event],
        audit,
        Reply::Webhook {
            duplicate: false,
            effect,
        },
    )
}
