//! Sell (R20-R25).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{query, Command};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_trial))
        .routes(routes!(list_sell_users, grant_sell))
        .routes(routes!(change_sell_role, remove_sell))
        .routes(routes!(appoint_sell_admin))
}

/// Starts a Sell trial; the caller becomes the first Sell admin (R20).
#[utoipa::path(post, path = "/v1/accounts/{a}/sell/trial", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = AccountOut), Errors), security(("bearer" = [])))]
async fn start_trial(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<AccountOut>)> {
    let reply = app
        .submit(
            who,
            Command::StartSellTrial(cmd::StartSellTrial { account_id: a }),
        )
        .await?;
    Ok((StatusCode::CREATED, account_out(reply)?))
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
    let reply = app
        .submit(
            who,
            Command::GrantSell(cmd::GrantSell {
                account_id: a,
                user_id: body.user_id,
                role: body.role,
            }),
        )
        .await?;
    Ok((StatusCode::CREATED, member_out(reply)?))
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
    let reply = app
        .submit(
            who,
            Command::ChangeSellRole(cmd::ChangeSellRole {
                account_id: a,
                user_id: u,
                role: body.role,
            }),
        )
        .await?;
    member_out(reply)
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
        Command::RemoveSell(cmd::RemoveSell {
            account_id: a,
            user_id: u,
        }),
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
    let reply = app
        .submit(
            who,
            Command::AppointSellAdmin(cmd::AppointSellAdmin {
                account_id: a,
                user_id: body.user_id,
            }),
        )
        .await?;
    Ok((StatusCode::CREATED, member_out(reply)?))
}
