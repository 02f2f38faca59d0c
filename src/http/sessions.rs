//! Sign-in, sign-out, password resets and set links (R17).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::{Json, Problem};
use crate::app::sign_in::{request_reset, set_password, sign_in_with_password};
use crate::domain::Command;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
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
    request_reset(&app, ip, a, body.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a password from a mailed link; verifies the address it was mailed to.
#[utoipa::path(post, path = "/v1/password-resets/confirm", tag = "public", request_body = PasswordResetConfirm,
    responses((status = 204, description = "password set"), Errors))]
async fn confirm_password_reset(
    State(app): State<AppState>,
    Json(body): Json<PasswordResetConfirm>,
) -> ApiResult<StatusCode> {
    set_password(&app, &body.token, body.password).await?;
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
    let (token, session) = sign_in_with_password(&app, ip, a, body.email, body.password).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionOut {
            token,
            user_id: session.user_id,
            expires_at: session.expires_at,
        }),
    ))
}

/// Ends the caller's session.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "members",
    responses((status = 204, description = "signed out"), Errors), security(("bearer" = [])))]
async fn sign_out(
    State(app): State<AppState>,
    Authed(who, digest): Authed,
) -> ApiResult<StatusCode> {
    let Some(digest) = digest else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "the operator token is not a session",
        ));
    };
    app.submit(
        who,
        Command::RevokeSession(cmd::RevokeSession {
            token_hash: crate::domain::token_hash_of(&digest),
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
