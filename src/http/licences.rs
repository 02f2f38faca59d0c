//! Temporary licences (R18).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::{Json, Query};
use crate::domain::{query, Command, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_account_licences, request_licence))
        .routes(routes!(list_licences))
        .routes(routes!(grant_licence))
        .routes(routes!(deny_licence))
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
    responses((status = 201, description = "filed", body = LicenceRequestOut),
        (status = 200, description = "a request of that product was pending: it is updated instead (one pending request per product)", body = LicenceRequestOut),
        Errors), security(("bearer" = [])))]
async fn request_licence(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<LicenceRequestBody>,
) -> ApiResult<(StatusCode, axum::Json<LicenceRequestOut>)> {
    match app
        .submit(
            who,
            Command::RequestLicence(cmd::RequestLicence {
                account_id: a,
                product: body.product,
                seats: body.seats,
                reason: body.reason,
            }),
        )
        .await?
    {
        Reply::LicenceRequest(r) => Ok((StatusCode::CREATED, axum::Json(r.into()))),
        // The pending request of that product, updated.
        Reply::LicenceRequestUpdated(r) => Ok((StatusCode::OK, axum::Json(r.into()))),
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
            Command::GrantLicence(cmd::GrantLicence {
                request_id: id,
                seats: body.seats,
                expires_at: body.expires_at,
            }),
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
            Command::DenyLicence(cmd::DenyLicence {
                request_id: id,
                reason: body.reason,
            }),
        )
        .await?
    {
        Reply::LicenceRequest(r) => Ok(axum::Json(r.into())),
        other => Err(unexpected(other)),
    }
}
