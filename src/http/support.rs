//! Support cases: an account's requests to platform support (an
//! ownership investigation, R19; the first Sell admin, R23), and platform
//! support's queue of open cases, closed with an answer.

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{query, Command, Reply, SecurityInvestigation};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(contact_support, list_support_cases))
        .routes(routes!(open_support_cases))
        .routes(routes!(close_support_case))
}

fn case_out(c: SecurityInvestigation) -> SupportCaseOut {
    SupportCaseOut {
        id: c.id,
        account_id: c.account_id,
        topic: c.topic,
        message: c.note,
        requested_by: c.requested_by,
        member_id: c.member_id,
        opened_at: c.opened_at,
        closed_at: c.closed_at,
        answer: c.closing_note,
    }
}

/// Asks platform support (admins): `ownership` when the owner is lost
/// (R19: support records an investigation, never changes the owner) or
/// `sell_admin` with the `member_id` to appoint while Sell has no admin
/// (R23). At most 5 open requests (`too_many_pending_requests`).
#[utoipa::path(post, path = "/v1/accounts/{a}/support-requests", tag = "members", request_body = SupportRequestIn,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = SupportCaseOut), Errors), security(("bearer" = [])))]
async fn contact_support(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<SupportRequestIn>,
) -> ApiResult<(StatusCode, axum::Json<SupportCaseOut>)> {
    match app
        .submit(
            who,
            Command::ContactSupport(cmd::ContactSupport {
                account_id: a,
                topic: body.topic,
                member_id: body.member_id,
                message: body.message,
            }),
        )
        .await?
    {
        Reply::Investigation(c) => Ok((StatusCode::CREATED, axum::Json(case_out(c)))),
        other => Err(unexpected(other)),
    }
}

/// The account's requests and the investigations support opened, newest
/// first (admins, platform support).
#[utoipa::path(get, path = "/v1/accounts/{a}/support-requests", tag = "members",
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = SupportCaseList), Errors), security(("bearer" = [])))]
async fn list_support_cases(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<SupportCaseList>> {
    let items = query::support_cases(&app.store, &who, &a)?
        .into_iter()
        .map(case_out)
        .collect();
    Ok(axum::Json(SupportCaseList { items }))
}

/// Every account's open cases, oldest first (platform support).
#[utoipa::path(get, path = "/v1/support-requests", tag = "operator",
    responses((status = 200, body = SupportCaseList), Errors), security(("bearer" = [])))]
async fn open_support_cases(
    State(app): State<AppState>,
    Authed(who, _): Authed,
) -> ApiResult<axum::Json<SupportCaseList>> {
    let items = query::open_support_cases(&app.store, &who)?
        .into_iter()
        .map(case_out)
        .collect();
    Ok(axum::Json(SupportCaseList { items }))
}

/// Closes a case with the answer the account reads (platform support).
#[utoipa::path(post, path = "/v1/accounts/{a}/support-requests/{id}/close", tag = "operator", request_body = InvestigationRequest,
    params(("a" = String, Path, description = "account id"), ("id" = String, Path, description = "case id")),
    responses((status = 200, body = SupportCaseOut), Errors), security(("bearer" = [])))]
async fn close_support_case(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, id)): Path<(String, String)>,
    Json(body): Json<InvestigationRequest>,
) -> ApiResult<axum::Json<SupportCaseOut>> {
    match app
        .submit(
            who,
            Command::CloseSupportCase(cmd::CloseSupportCase {
                account_id: a,
                case_id: id,
                note: body.note,
            }),
        )
        .await?
    {
        Reply::Investigation(c) => Ok(axum::Json(case_out(c))),
        other => Err(unexpected(other)),
    }
}
