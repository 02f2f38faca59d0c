//! Temporary licences: requests, grants and denials (R18).

use chrono::{DateTime, Duration, Utc};

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{Ctx, Decide, Draft};
use crate::limits::*;
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLicence {
    pub account_id: AccountId,
    pub product: Product,
    pub seats: u32,
    pub reason: String,
}

impl Decide for RequestLicence {
    fn info(&self) -> CommandInfo<'_> {
        let RequestLicence { account_id, .. } = self;
        CommandInfo::of(
            "licence_request.file",
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
        let RequestLicence {
            account_id,
            product,
            seats,
            reason,
        } = self;
        request_licence(view, ctx, draft, &account_id, product, seats, &reason)
    }
}

pub(crate) fn request_licence(
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
    let pending: Vec<LicenceRequest> = view
        .account_licence_requests(account_id, 10_000)?
        .into_iter()
        .filter(|r| r.status == LicenceStatus::Pending)
        .collect();
    // One pending request per account and product (a decision): asking
    // again while one waits updates it (its seats and reason), so support
    // decides once, and an owner who asks twice or two replicas running
    // the same policy file no duplicate.
    if let Some(mut request) = pending.iter().find(|r| r.product == product).cloned() {
        let unchanged = request.seats == seats && request.reason == reason;
        if unchanged {
            return Ok(Outcome::unchanged(Reply::LicenceRequestUpdated(request)));
        }
        let before = request.seats;
        request.seats = seats;
        request.reason = reason;
        return Ok(Outcome {
            changes: vec![Change::PutLicenceRequest(request.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                account_id,
                format!("licence_request:{}", request.id),
                format!(
                    "pending request updated: {before} -> {seats} temporary {} seat(s)",
                    product.as_str()
                ),
            ),
            reply: Reply::LicenceRequestUpdated(request),
        });
    }
    if pending.len() >= PENDING_LICENCE_REQUESTS_MAX {
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
    Ok(Outcome {
        changes: vec![Change::PutLicenceRequest(request.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            account_id,
            format!("licence_request:{}", request.id),
            format!("{seats} temporary {} seat(s) requested", product.as_str()),
        ),
        reply: Reply::LicenceRequest(request),
    })
}

pub(crate) fn pending_request(
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

pub(crate) fn owner_address(view: &dyn StateView, account: &Account) -> Result<String, Refusal> {
    Ok(view
        .user(&account.id, &account.owner_id)?
        .map(|u| u.primary_address().to_string())
        .unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantLicence {
    pub request_id: String,
    pub seats: u32,
    pub expires_at: DateTime<Utc>,
}

impl Decide for GrantLicence {
    fn info(&self) -> CommandInfo<'_> {
        let GrantLicence { request_id, .. } = self;
        CommandInfo::of(
            "licence_request.grant",
            None,
            Target::LicenceRequest(request_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let GrantLicence {
            request_id,
            seats,
            expires_at,
        } = self;
        grant_licence(view, ctx, draft, &request_id, seats, expires_at)
    }
}

pub(crate) fn grant_licence(
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
        account_id: account.id.clone(),
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
    Ok(Outcome {
        changes: vec![
            Change::PutAccount(account),
            Change::PutLicenceRequest(request.clone()),
        ],
        notices: vec![notice],
        events: vec![],
        audit,
        reply: Reply::LicenceRequest(request),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyLicence {
    pub request_id: String,
    pub reason: String,
}

impl Decide for DenyLicence {
    fn info(&self) -> CommandInfo<'_> {
        let DenyLicence { request_id, .. } = self;
        CommandInfo::of(
            "licence_request.deny",
            None,
            Target::LicenceRequest(request_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let DenyLicence { request_id, reason } = self;
        deny_licence(view, ctx, draft, &request_id, &reason)
    }
}

pub(crate) fn deny_licence(
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
        account_id: account.id.clone(),
        account_name: account.name.clone(),
        product: request.product,
        granted_seats: None,
        expires_at: None,
        deny_reason: Some(reason),
    };
    Ok(Outcome {
        changes: vec![Change::PutLicenceRequest(request.clone())],
        notices: vec![notice],
        events: vec![],
        audit: draft.ok(&account.id, format!("licence_request:{id}"), "denied"),
        reply: Reply::LicenceRequest(request),
    })
}
