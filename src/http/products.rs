//! Endpoints for profiles and products: addresses (R12–R16), temporary
//! licences (R18), Sell (R20–R25).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::*;
use super::handlers::{unexpected, ApiResult, Errors};
use super::problem::{Json, Problem, Query};
use super::{AppState, Authed};
use crate::domain::{query, token_hash, validate, Command, Principal, Reply};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_emails, add_email))
        .routes(routes!(make_primary))
        .routes(routes!(remove_email))
        .routes(routes!(confirm_email))
        .routes(routes!(list_account_licences, request_licence))
        .routes(routes!(list_licences))
        .routes(routes!(grant_licence))
        .routes(routes!(deny_licence))
        .routes(routes!(start_trial))
        .routes(routes!(list_sell_users, grant_sell))
        .routes(routes!(change_sell_role, remove_sell))
        .routes(routes!(appoint_sell_admin))
        .routes(routes!(list_policies))
}

#[utoipa::path(get, path = "/v1/accounts/{a}/members/{u}/emails", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = EmailList), Errors), security(("bearer" = [])))]
async fn list_emails(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<axum::Json<EmailList>> {
    Ok(axum::Json(query::emails(&app.store, &who, &a, &u)?.into()))
}

/// Adds an address: notices to the profile's addresses, a verification link to the new one (R13).
#[utoipa::path(post, path = "/v1/accounts/{a}/members/{u}/emails", tag = "members", request_body = AddEmailRequest,
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 201, body = EmailList), Errors), security(("bearer" = [])))]
async fn add_email(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
    Json(body): Json<AddEmailRequest>,
) -> ApiResult<(StatusCode, axum::Json<EmailList>)> {
    match app
        .submit(
            who,
            Command::AddEmail {
                account_id: a,
                user_id: u,
                address: body.address,
            },
        )
        .await?
    {
        Reply::User(user) => Ok((StatusCode::CREATED, axum::Json(user.emails.into()))),
        other => Err(unexpected(other)),
    }
}

/// Makes a verified address primary (R14); fires `after_email_primary`.
#[utoipa::path(put, path = "/v1/accounts/{a}/members/{u}/emails/{address}/primary", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id"), ("address" = String, Path, description = "the address")),
    responses((status = 200, body = EmailList), Errors), security(("bearer" = [])))]
async fn make_primary(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u, address)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<EmailList>> {
    match app
        .submit(
            who,
            Command::MakePrimaryEmail {
                account_id: a,
                user_id: u,
                address,
            },
        )
        .await?
    {
        Reply::User(user) => Ok(axum::Json(user.emails.into())),
        other => Err(unexpected(other)),
    }
}

/// Removes an address (never the primary, R15); signs out sessions opened with it (R16).
#[utoipa::path(delete, path = "/v1/accounts/{a}/members/{u}/emails/{address}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id"), ("address" = String, Path, description = "the address")),
    responses((status = 204, description = "removed"), Errors), security(("bearer" = [])))]
async fn remove_email(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u, address)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    app.submit(
        who,
        Command::RemoveEmail {
            account_id: a,
            user_id: u,
            address,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verifies an address from the mailed link.
#[utoipa::path(post, path = "/v1/email-verifications/confirm", tag = "public", request_body = TokenRequest,
    responses((status = 204, description = "verified"), Errors))]
async fn confirm_email(
    State(app): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<StatusCode> {
    if body.token.is_empty() || body.token.len() > validate::TOKEN_MAX_CHARS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the link is invalid, already used or expired",
        ));
    }
    app.submit(
        Principal::Anonymous,
        Command::ConfirmEmailVerification {
            token_hash: token_hash(&body.token),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/accounts/{a}/licence-requests", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = LicenceRequestList), Errors), security(("bearer" = [])))]
async fn list_account_licences(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<LicenceRequestList>> {
    let items = query::account_licence_requests(&app.store, &who, &a)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(LicenceRequestList { items }))
}

/// The owner asks platform support for temporary seats (R18).
#[utoipa::path(post, path = "/v1/accounts/{a}/licence-requests", tag = "billing", request_body = LicenceRequestBody,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = LicenceRequestOut), Errors), security(("bearer" = [])))]
async fn request_licence(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<LicenceRequestBody>,
) -> ApiResult<(StatusCode, axum::Json<LicenceRequestOut>)> {
    match app
        .submit(
            who,
            Command::RequestLicence {
                account_id: a,
                product: body.product,
                seats: body.seats,
                reason: body.reason,
            },
        )
        .await?
    {
        Reply::LicenceRequest(r) => Ok((StatusCode::CREATED, axum::Json(r.into()))),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(get, path = "/v1/licence-requests", tag = "operator", params(LicenceQuery),
    responses((status = 200, body = LicenceRequestList), Errors), security(("bearer" = [])))]
async fn list_licences(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Query(q): Query<LicenceQuery>,
) -> ApiResult<axum::Json<LicenceRequestList>> {
    let items = query::licence_requests(&app.store, &who, q.status)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(LicenceRequestList { items }))
}

/// Grants temporary seats until `expires_at`; the owner is mailed.
#[utoipa::path(post, path = "/v1/licence-requests/{id}/grant", tag = "operator", request_body = GrantRequest,
    params(("id" = String, Path, description = "licence request id")),
    responses((status = 200, body = LicenceRequestOut), Errors), security(("bearer" = [])))]
async fn grant_licence(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(id): Path<String>,
    Json(body): Json<GrantRequest>,
) -> ApiResult<axum::Json<LicenceRequestOut>> {
    match app
        .submit(
            who,
            Command::GrantLicence {
                request_id: id,
                seats: body.seats,
                expires_at: body.expires_at,
            },
        )
        .await?
    {
        Reply::LicenceRequest(r) => Ok(axum::Json(r.into())),
        other => Err(unexpected(other)),
    }
}

/// Denies a request; the owner is mailed the reason.
#[utoipa::path(post, path = "/v1/licence-requests/{id}/deny", tag = "operator", request_body = DenyRequest,
    params(("id" = String, Path, description = "licence request id")),
    responses((status = 200, body = LicenceRequestOut), Errors), security(("bearer" = [])))]
async fn deny_licence(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(id): Path<String>,
    Json(body): Json<DenyRequest>,
) -> ApiResult<axum::Json<LicenceRequestOut>> {
    match app
        .submit(
            who,
            Command::DenyLicence {
                request_id: id,
                reason: body.reason,
            },
        )
        .await?
    {
        Reply::LicenceRequest(r) => Ok(axum::Json(r.into())),
        other => Err(unexpected(other)),
    }
}

/// Starts a Sell trial; the caller becomes the first Sell admin (R20).
#[utoipa::path(post, path = "/v1/accounts/{a}/sell/trial", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = AccountOut), Errors), security(("bearer" = [])))]
async fn start_trial(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<AccountOut>)> {
    app.submit(
        who.clone(),
        Command::StartSellTrial {
            account_id: a.clone(),
        },
    )
    .await?;
    let summary = query::account_summary(&app.store, &Principal::Operator, &a, chrono::Utc::now())?;
    Ok((StatusCode::CREATED, axum::Json(summary.into())))
}

#[utoipa::path(get, path = "/v1/accounts/{a}/sell/users", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = MemberList), Errors), security(("bearer" = [])))]
async fn list_sell_users(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<MemberList>> {
    let items = query::sell_users(&app.store, &who, &a)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(MemberList { items, next: None }))
}

/// Gives a member Sell (a Sell seat; R22, R23, R25).
#[utoipa::path(post, path = "/v1/accounts/{a}/sell/users", tag = "members", request_body = SellUserRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = MemberOut), Errors), security(("bearer" = [])))]
async fn grant_sell(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<SellUserRequest>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    let u = body.user_id.clone();
    app.submit(
        who.clone(),
        Command::GrantSell {
            account_id: a.clone(),
            user_id: body.user_id,
            role: body.role,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, member_view(&app, &a, &u)?))
}

/// Changes a Sell role (Sell admin; R24: never the last Sell admin).
#[utoipa::path(patch, path = "/v1/accounts/{a}/sell/users/{u}", tag = "members", request_body = SellRoleRequest,
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn change_sell_role(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
    Json(body): Json<SellRoleRequest>,
) -> ApiResult<axum::Json<MemberOut>> {
    app.submit(
        who,
        Command::ChangeSellRole {
            account_id: a.clone(),
            user_id: u.clone(),
            role: body.role,
        },
    )
    .await?;
    member_view(&app, &a, &u)
}

/// Removes a member's Sell access (Sell admin; R24).
#[utoipa::path(delete, path = "/v1/accounts/{a}/sell/users/{u}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 204, description = "removed"), Errors), security(("bearer" = [])))]
async fn remove_sell(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.submit(
        who,
        Command::RemoveSell {
            account_id: a,
            user_id: u,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Platform support appoints the first Sell admin of an account without one (R23).
#[utoipa::path(post, path = "/v1/accounts/{a}/sell/admins", tag = "operator", request_body = UserIdRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = MemberOut), Errors), security(("bearer" = [])))]
async fn appoint_sell_admin(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<UserIdRequest>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    let u = body.user_id.clone();
    app.submit(
        who,
        Command::AppointSellAdmin {
            account_id: a.clone(),
            user_id: body.user_id,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, member_view(&app, &a, &u)?))
}

/// The member as the account's admins see it, after a change the caller was
/// allowed to make (the caller may not be an admin).
fn member_view(app: &AppState, a: &str, u: &str) -> ApiResult<axum::Json<MemberOut>> {
    let view = crate::domain::query::member_unchecked(&app.store, a, u)?;
    Ok(axum::Json(view.into()))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyErrorOut {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyOut {
    /// `plugin` or `script`.
    pub kind: String,
    pub name: String,
    pub hooks: Vec<String>,
    /// Content hash (scripts) or crate version (plugins).
    pub version: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Why the file on disk is not in force (the previous version is).
    pub last_error: Option<PolicyErrorOut>,
    pub calls: u64,
    pub failures: u64,
    pub mean_latency_us: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub items: Vec<PolicyOut>,
}

/// Loaded plugins and scripts, their hooks, versions and health (operator).
#[utoipa::path(get, path = "/v1/policies", tag = "operator",
    responses((status = 200, body = PolicyList), Errors), security(("bearer" = [])))]
pub(super) async fn list_policies(
    State(app): State<AppState>,
    Authed(who, _): Authed,
) -> ApiResult<axum::Json<PolicyList>> {
    if who != Principal::Operator {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the policy list is platform support's",
        ));
    }
    let items = app
        .policies
        .status()
        .into_iter()
        .map(|p| PolicyOut {
            kind: p.kind.to_string(),
            name: p.name,
            hooks: p.hooks.into_iter().map(str::to_string).collect(),
            version: p.version,
            loaded_at: p.loaded_at,
            last_error: p.last_error.map(|e| PolicyErrorOut {
                message: e.message,
                line: e.line,
                column: e.column,
            }),
            calls: p.calls,
            failures: p.failures,
            mean_latency_us: p.mean_latency_us,
        })
        .collect();
    Ok(axum::Json(PolicyList { items }))
}
