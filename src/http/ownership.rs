//! The owner and the hand-over (R01-R07).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{query, Command, Principal};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_owner, transfer_owner))
        .routes(routes!(owner_candidates))
}

/// Who owns the account (R07; agents and admins).
#[utoipa::path(get, path = "/v1/accounts/{a}/owner", tag = "members", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = OwnerOut), Errors), security(("bearer" = [])))]
async fn get_owner(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<Response> {
    owner_answer(&app, &who, &a)
}

/// `get_owner`'s answer, also given by the read lane (`super::lane`).
pub(super) fn owner_answer(app: &App, who: &Principal, a: &str) -> ApiResult<Response> {
    let owner = query::owner(&app.store, who, a)?;
    let mut body = Vec::with_capacity(MEMBER_JSON_BYTES);
    OwnerJson(&owner).write(&mut body);
    Ok(json_response(body))
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
    let reply = app
        .submit(
            who.clone(),
            Command::TransferOwnership(cmd::TransferOwnership {
                account_id: a.clone(),
                to_user_id: body.user_id,
            }),
        )
        .await?;
    account_out(reply)
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
