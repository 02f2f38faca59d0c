//! Addresses and their verification (R12-R16).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::{Json, Problem};
use crate::domain::{query, token_hash, validate, Command, Principal, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_emails, add_email))
        .routes(routes!(make_primary))
        .routes(routes!(remove_email))
        .routes(routes!(confirm_email))
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
            Command::AddEmail(cmd::AddEmail {
                account_id: a,
                user_id: u,
                address: body.address,
            }),
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
            Command::MakePrimaryEmail(cmd::MakePrimaryEmail {
                account_id: a,
                user_id: u,
                address,
            }),
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
        Command::RemoveEmail(cmd::RemoveEmail {
            account_id: a,
            user_id: u,
            address,
        }),
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
        Command::ConfirmEmailVerification(cmd::ConfirmEmailVerification {
            token_hash: token_hash(&body.token),
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
