//! Accounts: creation (platform support), summary, security investigations, audit logs.

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::{Json, Query};
use crate::domain::{query, Command, Principal, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(set_language))
        .routes(routes!(open_investigation))
        .routes(routes!(list_audit))
        .routes(routes!(list_platform_audit))
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
            Command::CreateAccount(cmd::CreateAccount {
                name: body.name,
                owner_name: body.owner.name,
                owner_email: body.owner.email,
                support_seats: body.support_seats,
                language: body.language,
            }),
        )
        .await?;
    Ok((StatusCode::CREATED, account_out(reply)?))
}

/// Sets the language of the account's mails (admins); `null` returns to
/// the platform's default (`[mail] default_language`).
#[utoipa::path(put, path = "/v1/accounts/{a}/language", tag = "members", request_body = LanguageRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn set_language(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<LanguageRequest>,
) -> ApiResult<axum::Json<AccountOut>> {
    let reply = app
        .submit(
            who,
            Command::SetAccountLanguage(cmd::SetAccountLanguage {
                account_id: a,
                language: body.language,
            }),
        )
        .await?;
    account_out(reply)
}

/// Every account, by id, paged and searchable by name (platform support).
#[utoipa::path(get, path = "/v1/accounts", tag = "operator", params(AccountListQuery),
    responses((status = 200, body = AccountList), Errors), security(("bearer" = [])))]
async fn list_accounts(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Query(q): Query<AccountListQuery>,
) -> ApiResult<axum::Json<AccountList>> {
    if q.q
        .as_ref()
        .is_some_and(|s| s.len() > crate::domain::validate::NAME_MAX_CHARS)
    {
        return Err(crate::app::problem::Problem::bad_request("q is too long"));
    }
    let page = query::accounts(
        &app.store,
        &who,
        q.after.as_deref(),
        q.q.as_deref(),
        q.limit,
        chrono::Utc::now(),
    )?;
    Ok(axum::Json(AccountList {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// The account summary (agents, admins, operator).
#[utoipa::path(get, path = "/v1/accounts/{a}", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn get_account(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<AccountOut>> {
    Ok(axum::Json(
        query::account_summary(&app.store, &who, &a, chrono::Utc::now())?.into(),
    ))
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
            Command::OpenSecurityInvestigation(cmd::OpenSecurityInvestigation {
                account_id: a,
                note: body.note,
            }),
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
