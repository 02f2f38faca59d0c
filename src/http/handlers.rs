//! One function per endpoint: parse, authenticate, call the core, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa::IntoResponses;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::*;
use super::problem::{Json, Problem, Query};
use super::{AppState, Authed, ClientIp};
use crate::domain::{query, token_hash, validate, Command, Principal, Refusal, Reply};
use crate::secret;

pub(super) type ApiResult<T> = Result<T, Problem>;

/// The error answers every endpoint may give (problem+json with `code`).
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum Errors {
    /// Bad input: malformed JSON, unknown field, bad value (`validation_failed`, `malformed_json`, `invalid_token`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] Problem),
    /// No or bad credentials.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Authenticated but not allowed (`not_account_owner`, `billing_owner_only`, `forbidden`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Not found, or in an account the caller is not a member of.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// A rule refuses it (`agent_seat_exhausted`, `new_owner_not_admin`, `owner_role_locked`, ...).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// Body larger than the limit (1 MiB by default).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// A body that is not sent as `application/json` (`unsupported_media_type`).
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Too many attempts (`rate_limited`, with Retry-After).
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The store is unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(create_account))
        .routes(routes!(get_account))
        .routes(routes!(open_investigation))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(get_owner, transfer_owner))
        .routes(routes!(owner_candidates))
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, change_role, remove_member))
        .routes(routes!(list_invoices))
        .routes(routes!(get_payment_method, set_payment_method))
        .routes(routes!(set_seats))
        .routes(routes!(list_integrations, add_integration))
        .routes(routes!(authorize_integration))
        .routes(routes!(list_audit))
        .routes(routes!(list_platform_audit))
        .merge(super::products::routes())
        .merge(super::webhooks::routes())
}

pub(super) fn unexpected(reply: Reply) -> Problem {
    tracing::error!(?reply, "the core answered with an unexpected reply");
    Problem::internal("unexpected answer from the core")
}

fn summary(app: &AppState, who: &Principal, account_id: &str) -> ApiResult<AccountOut> {
    Ok(query::account_summary(&app.store, who, account_id, Utc::now())?.into())
}

#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// Creates an account and its owner; mails the owner a password-set link.
#[utoipa::path(post, path = "/v1/accounts", tag = "operator", request_body = CreateAccountRequest,
    responses((status = 201, body = AccountOut), Errors), security(("bearer" = [])))]
async fn create_account(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Json(body): Json<CreateAccountRequest>,
) -> ApiResult<(StatusCode, axum::Json<AccountOut>)> {
    let reply = app
        .submit(
            who.clone(),
            Command::CreateAccount {
                name: body.name,
                owner_name: body.owner.name,
                owner_email: body.owner.email,
                support_seats: body.support_seats,
            },
        )
        .await?;
    match reply {
        Reply::Account(a) => Ok((
            StatusCode::CREATED,
            axum::Json(summary(&app, &Principal::Operator, &a.id)?),
        )),
        other => Err(unexpected(other)),
    }
}

/// The account summary (agents, admins, operator).
#[utoipa::path(get, path = "/v1/accounts/{a}", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn get_account(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<AccountOut>> {
    Ok(axum::Json(summary(&app, &who, &a)?))
}

/// Records a security investigation (R19); the owner does not change.
#[utoipa::path(post, path = "/v1/accounts/{a}/security-investigations", tag = "operator", request_body = InvestigationRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = InvestigationOut), Errors), security(("bearer" = [])))]
async fn open_investigation(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<InvestigationRequest>,
) -> ApiResult<(StatusCode, axum::Json<InvestigationOut>)> {
    match app
        .submit(
            who,
            Command::OpenSecurityInvestigation {
                account_id: a,
                note: body.note,
            },
        )
        .await?
    {
        Reply::Investigation(i) => Ok((
            StatusCode::CREATED,
            axum::Json(InvestigationOut {
                id: i.id,
                account_id: i.account_id,
                note: i.note,
                opened_at: i.opened_at,
            }),
        )),
        other => Err(unexpected(other)),
    }
}

/// The attempt-limit key of a sign-in or reset: the profile when the
/// address belongs to one (all its addresses share one budget), else the
/// address itself (so unknown addresses are limited alike and the limit
/// reveals nothing).
fn attempt_key<'a>(
    purpose: &'a str,
    account_id: &'a str,
    user: Option<&'a crate::domain::User>,
    normalized_email: &'a str,
) -> [&'a str; 4] {
    match user {
        Some(u) => [purpose, account_id, "user", u.id.as_str()],
        None => [purpose, account_id, "address", normalized_email],
    }
}

/// Asks for a password reset; always 202, whether the address exists or not (R17).
#[utoipa::path(post, path = "/v1/accounts/{a}/password-resets", tag = "public", request_body = PasswordResetRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 202, description = "accepted; a link is mailed if the address is a primary address of the account"), Errors))]
async fn request_password_reset(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    Json(body): Json<PasswordResetRequest>,
) -> ApiResult<StatusCode> {
    if body.email.len() > validate::EMAIL_MAX_CHARS * 4 {
        return Err(Problem::bad_request("email is too long"));
    }
    if let Some(ip) = ip {
        app.check_ip(ip)?;
    }
    use crate::domain::StateView;
    let user = app
        .store
        .user_by_email(&a, &body.email)
        .map_err(Refusal::from)?;
    let email = crate::domain::normalize_email(&body.email);
    app.limiter
        .check(&attempt_key("reset", &a, user.as_ref(), &email))
        .map_err(|secs| {
            app.shed("rate_limited");
            Problem::rate_limited(secs)
        })?;
    app.submit(
        Principal::Anonymous,
        Command::RequestPasswordReset {
            account_id: a,
            email: body.email,
        },
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a password from a mailed link; verifies the address it was mailed to.
#[utoipa::path(post, path = "/v1/password-resets/confirm", tag = "public", request_body = PasswordResetConfirm,
    responses((status = 204, description = "password set"), Errors))]
async fn confirm_password_reset(
    State(app): State<AppState>,
    Json(body): Json<PasswordResetConfirm>,
) -> ApiResult<StatusCode> {
    validate::password(&body.password)?;
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the link is invalid, already used or expired; ask for a new one",
        )
    };
    if body.token.is_empty() || body.token.len() > validate::TOKEN_MAX_CHARS {
        return Err(invalid());
    }
    let hash = token_hash(&body.token);
    // Cheap check first, so bad tokens cost no password hashing.
    use crate::domain::StateView;
    if app.store.token(&hash).map_err(Refusal::from)?.is_none() {
        return Err(invalid());
    }
    let cost = app.password_cost;
    let password = body.password;
    let password_hash = app
        .hash_work(move || secret::hash_password(&password, cost))
        .await?
        .map_err(Problem::internal)?;
    app.submit(
        Principal::Anonymous,
        Command::ConfirmPasswordReset {
            token_hash: hash,
            password_hash,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs in; one answer for every failure.
#[utoipa::path(post, path = "/v1/accounts/{a}/sessions", tag = "public", request_body = SignInRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = SessionOut), Errors))]
async fn sign_in(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    Json(body): Json<SignInRequest>,
) -> ApiResult<(StatusCode, axum::Json<SessionOut>)> {
    let failed = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the address or password is wrong",
        )
    };
    if body.email.len() > validate::EMAIL_MAX_CHARS
        || body.password.len() > validate::PASSWORD_MAX_CHARS * 4
    {
        return Err(failed());
    }
    if let Some(ip) = ip {
        app.check_ip(ip)?;
    }
    use crate::domain::StateView;
    let user = app
        .store
        .user_by_email(&a, &body.email)
        .map_err(Refusal::from)?;
    let email = crate::domain::normalize_email(&body.email);
    app.limiter
        .check(&attempt_key("signin", &a, user.as_ref(), &email))
        .map_err(|secs| {
            app.shed("rate_limited");
            Problem::rate_limited(secs)
        })?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let against = stored.clone().unwrap_or_else(|| app.decoy_hash.clone());
    let password = body.password;
    let ok = app
        .hash_work(move || secret::verify_password(&password, &against))
        .await?;
    let (Some(user), Some(verified_hash), true) = (user, stored, ok) else {
        return Err(failed());
    };
    let token = secret::random_token();
    let reply = app
        .submit(
            Principal::Anonymous,
            Command::CreateSession {
                account_id: a,
                user_id: user.id.clone(),
                email: body.email,
                verified_hash,
                token_hash: token_hash(&token),
            },
        )
        .await
        .map_err(|r| {
            if r.code == "invalid_credentials" {
                failed()
            } else {
                r
            }
        })?;
    match reply {
        Reply::Session(s) => Ok((
            StatusCode::CREATED,
            axum::Json(SessionOut {
                token,
                user_id: s.user_id,
                expires_at: s.expires_at,
            }),
        )),
        other => Err(unexpected(other)),
    }
}

/// Ends the caller's session.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "members",
    responses((status = 204, description = "signed out"), Errors), security(("bearer" = [])))]
async fn sign_out(State(app): State<AppState>, Authed(who, hash): Authed) -> ApiResult<StatusCode> {
    let Some(hash) = hash else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "the operator token is not a session",
        ));
    };
    app.submit(who, Command::RevokeSession { token_hash: hash })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who owns the account (R07; agents and admins).
#[utoipa::path(get, path = "/v1/accounts/{a}/owner", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = OwnerOut), Errors), security(("bearer" = [])))]
async fn get_owner(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<OwnerOut>> {
    let owner = query::owner(&app.store, &who, &a)?;
    Ok(axum::Json(OwnerOut {
        primary_email: owner.user.primary_address().to_string(),
        id: owner.user.id,
        name: owner.user.name,
        role_label: owner.role_label.to_string(),
    }))
}

/// Hands the account over to another admin (owner only; R01–R06).
#[utoipa::path(put, path = "/v1/accounts/{a}/owner", tag = "members", request_body = TransferRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn transfer_owner(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<TransferRequest>,
) -> ApiResult<axum::Json<AccountOut>> {
    match app
        .submit(
            who.clone(),
            Command::TransferOwnership {
                account_id: a.clone(),
                to_user_id: body.user_id,
            },
        )
        .await?
    {
        Reply::Account(acc) => Ok(axum::Json(summary(&app, &Principal::Operator, &acc.id)?)),
        other => Err(unexpected(other)),
    }
}

/// The admins the owner may hand the account to (R04; may be empty).
#[utoipa::path(get, path = "/v1/accounts/{a}/owner/candidates", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = MemberList), Errors), security(("bearer" = [])))]
async fn owner_candidates(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<MemberList>> {
    let items = query::owner_candidates(&app.store, &who, &a)?;
    Ok(axum::Json(MemberList {
        items: items.into_iter().map(Into::into).collect(),
        next: None,
    }))
}

/// The team list, paged (admins; R07).
#[utoipa::path(get, path = "/v1/accounts/{a}/members", tag = "members", params(("a" = String, Path, description = "account id"), PageQuery),
    responses((status = 200, body = MemberList), Errors), security(("bearer" = [])))]
async fn list_members(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<MemberList>> {
    let page = query::members(&app.store, &who, &a, q.after.as_deref(), q.limit)?;
    Ok(axum::Json(MemberList {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Adds a member; agents and admins take a seat (R09). Mails a password-set link.
#[utoipa::path(post, path = "/v1/accounts/{a}/members", tag = "members", request_body = AddMemberRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = MemberOut), Errors), security(("bearer" = [])))]
async fn add_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<AddMemberRequest>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    match app
        .submit(
            who.clone(),
            Command::AddMember {
                account_id: a.clone(),
                name: body.name,
                email: body.email,
                role: body.role,
            },
        )
        .await?
    {
        Reply::User(u) => Ok((
            StatusCode::CREATED,
            axum::Json(query::member(&app.store, &who, &a, &u.id)?.into()),
        )),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(get, path = "/v1/accounts/{a}/members/{u}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn get_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<axum::Json<MemberOut>> {
    Ok(axum::Json(query::member(&app.store, &who, &a, &u)?.into()))
}

/// Changes a member's role (R08: not the owner's; R09: seats).
#[utoipa::path(patch, path = "/v1/accounts/{a}/members/{u}", tag = "members", request_body = ChangeRoleRequest,
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn change_role(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
    Json(body): Json<ChangeRoleRequest>,
) -> ApiResult<axum::Json<MemberOut>> {
    app.submit(
        who.clone(),
        Command::ChangeRole {
            account_id: a.clone(),
            user_id: u.clone(),
            role: body.role,
        },
    )
    .await?;
    Ok(axum::Json(query::member(&app.store, &who, &a, &u)?.into()))
}

/// Removes a member (R08: never the owner); frees their seat.
#[utoipa::path(delete, path = "/v1/accounts/{a}/members/{u}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 204, description = "removed"), Errors), security(("bearer" = [])))]
async fn remove_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.submit(
        who,
        Command::RemoveMember {
            account_id: a,
            user_id: u,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/accounts/{a}/billing/invoices", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = InvoiceList), Errors), security(("bearer" = [])))]
async fn list_invoices(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<InvoiceList>> {
    let items = query::invoices(&app.store, &who, &a)?
        .into_iter()
        .map(|i| InvoiceOut {
            id: i.id,
            issued_at: i.issued_at,
            description: i.description,
            support_seats: i.support_seats,
            sell_seats: i.sell_seats,
        })
        .collect();
    Ok(axum::Json(InvoiceList { items }))
}

#[utoipa::path(get, path = "/v1/accounts/{a}/billing/payment-method", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = PaymentMethodAnswer), Errors), security(("bearer" = [])))]
async fn get_payment_method(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<PaymentMethodAnswer>> {
    Ok(axum::Json(
        query::payment_method(&app.store, &who, &a)?.into(),
    ))
}

#[utoipa::path(put, path = "/v1/accounts/{a}/billing/payment-method", tag = "billing", request_body = PaymentMethodRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = PaymentMethodAnswer), Errors), security(("bearer" = [])))]
async fn set_payment_method(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<PaymentMethodRequest>,
) -> ApiResult<axum::Json<PaymentMethodAnswer>> {
    match app
        .submit(
            who,
            Command::SetPaymentMethod {
                account_id: a,
                kind: body.kind,
                last4: body.last4,
            },
        )
        .await?
    {
        Reply::Account(acc) => Ok(axum::Json(acc.payment_method.into())),
        other => Err(unexpected(other)),
    }
}

/// Changes seat totals (R11: never below seats in use; R21: Sell seats activate Sell).
#[utoipa::path(put, path = "/v1/accounts/{a}/billing/seats", tag = "billing", request_body = SeatsRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn set_seats(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<SeatsRequest>,
) -> ApiResult<axum::Json<AccountOut>> {
    match app
        .submit(
            who.clone(),
            Command::SetSeats {
                account_id: a.clone(),
                support_seats: body.support_seats,
                sell_seats: body.sell_seats,
            },
        )
        .await?
    {
        Reply::Account(acc) => Ok(axum::Json(summary(&app, &Principal::Operator, &acc.id)?)),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(get, path = "/v1/accounts/{a}/integrations", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = IntegrationList), Errors), security(("bearer" = [])))]
async fn list_integrations(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<IntegrationList>> {
    let items = query::integrations(&app.store, &who, &a)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(IntegrationList { items }))
}

/// Connects an integration; the calling admin is its configurer.
#[utoipa::path(post, path = "/v1/accounts/{a}/integrations", tag = "members", request_body = AddIntegrationRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = IntegrationOut), Errors), security(("bearer" = [])))]
async fn add_integration(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<AddIntegrationRequest>,
) -> ApiResult<(StatusCode, axum::Json<IntegrationOut>)> {
    match app
        .submit(
            who,
            Command::AddIntegration {
                account_id: a,
                name: body.name,
            },
        )
        .await?
    {
        Reply::Integration(i) => Ok((StatusCode::CREATED, axum::Json(i.into()))),
        other => Err(unexpected(other)),
    }
}

/// Re-authorizes an integration: the caller becomes its configurer (R06).
#[utoipa::path(post, path = "/v1/accounts/{a}/integrations/{i}/authorize", tag = "members",
    params(("a" = String, Path, description = "account id"), ("i" = String, Path, description = "integration id")),
    responses((status = 200, body = IntegrationOut), Errors), security(("bearer" = [])))]
async fn authorize_integration(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, i)): Path<(String, String)>,
) -> ApiResult<axum::Json<IntegrationOut>> {
    match app
        .submit(
            who,
            Command::AuthorizeIntegration {
                account_id: a,
                integration_id: i,
            },
        )
        .await?
    {
        Reply::Integration(i) => Ok(axum::Json(i.into())),
        other => Err(unexpected(other)),
    }
}

/// The account's audit log, oldest first, paged by sequence.
#[utoipa::path(get, path = "/v1/accounts/{a}/audit", tag = "members", params(("a" = String, Path, description = "account id"), AuditQuery),
    responses((status = 200, body = AuditList), Errors), security(("bearer" = [])))]
async fn list_audit(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditList>> {
    audit_page(&app, &who, &a, q)
}

/// The platform's own audit log (entries about no account, such as policy
/// actions that could not be carried out), oldest first; platform support.
#[utoipa::path(get, path = "/v1/audit", tag = "operator", params(AuditQuery),
    responses((status = 200, body = AuditList), Errors), security(("bearer" = [])))]
async fn list_platform_audit(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditList>> {
    audit_page(&app, &who, crate::domain::PLATFORM_AUDIT_SCOPE, q)
}

fn audit_page(
    app: &AppState,
    who: &Principal,
    scope: &str,
    q: AuditQuery,
) -> ApiResult<axum::Json<AuditList>> {
    let page = query::audit(&app.store, who, scope, q.after, q.limit)?;
    let items = page.items.into_iter().map(AuditEntryOut::from).collect();
    Ok(axum::Json(AuditList {
        items,
        next: page.next,
    }))
}
