//! Integrations (R06).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{query, Command, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, add_integration))
        .routes(routes!(authorize_integration))
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
            Command::AddIntegration(cmd::AddIntegration {
                account_id: a,
                name: body.name,
            }),
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
            Command::AuthorizeIntegration(cmd::AuthorizeIntegration {
                account_id: a,
                integration_id: i,
            }),
        )
        .await?
    {
        Reply::Integration(i) => Ok(axum::Json(i.into())),
        other => Err(unexpected(other)),
    }
}
