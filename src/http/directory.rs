//! The account's directory (SCIM) tokens, and deactivating and
//! reactivating members (what SCIM's `active` does, for admins too). The
//! SCIM endpoints themselves are in `crate::scim`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{cmd, query, Command, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scim_tokens, create_scim_token))
        .routes(routes!(revoke_scim_token))
        .routes(routes!(deactivate_member))
        .routes(routes!(reactivate_member))
}

#[utoipa::path(get, path = "/v1/accounts/{a}/scim/tokens", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = ScimTokenList), Errors), security(("bearer" = [])))]
async fn list_scim_tokens(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<ScimTokenList>> {
    let items = query::scim_tokens(&app.store, &who, &a)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(ScimTokenList { items }))
}

/// Creates a directory token (owner or admin): the directory acts with the
/// creator's powers, never ownership or billing. The token is in this
/// answer only.
#[utoipa::path(post, path = "/v1/accounts/{a}/scim/tokens", tag = "members", request_body = CreateScimTokenRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = CreatedScimToken), Errors), security(("bearer" = [])))]
async fn create_scim_token(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<CreateScimTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedScimToken>)> {
    let command = Command::CreateScimToken(cmd::CreateScimToken {
        account_id: a,
        name: body.name,
    });
    match app.submit(who, command).await? {
        Reply::ScimToken { token, secret } => Ok((
            StatusCode::CREATED,
            axum::Json(CreatedScimToken {
                id: token.id,
                name: token.name,
                token: secret,
                created_at: token.created_at,
            }),
        )),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(delete, path = "/v1/accounts/{a}/scim/tokens/{token_id}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("token_id" = String, Path, description = "directory token id")),
    responses((status = 204), Errors), security(("bearer" = [])))]
async fn revoke_scim_token(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let command = Command::RevokeScimToken(cmd::RevokeScimToken {
        account_id: a,
        token_id,
    });
    match app.submit(who, command).await? {
        Reply::Done => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}

/// Deactivates a member: sessions end, seats are freed, sign-in is
/// refused; the profile, roles and history are kept. Not the owner (R08).
#[utoipa::path(post, path = "/v1/accounts/{a}/members/{u}/deactivate", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn deactivate_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<axum::Json<MemberOut>> {
    set_active(&app, who, a, u, false).await
}

/// Reactivates a member: their seats are taken again (`agent_seat_exhausted`
/// / `sell_seat_exhausted` when none is free).
#[utoipa::path(post, path = "/v1/accounts/{a}/members/{u}/reactivate", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn reactivate_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<axum::Json<MemberOut>> {
    set_active(&app, who, a, u, true).await
}

async fn set_active(
    app: &App,
    who: crate::domain::Principal,
    account_id: String,
    user_id: String,
    active: bool,
) -> ApiResult<axum::Json<MemberOut>> {
    let command = Command::SetMemberActive(cmd::SetMemberActive {
        account_id,
        user_id,
        active,
    });
    member_out(app.submit(who, command).await?)
}
