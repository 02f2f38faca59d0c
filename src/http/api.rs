//! What every endpoint of the API shares beyond the application
//! (`crate::app`, re-exported here): the bearer-token extractor (`Authed`),
//! the result and error types. Imports no endpoint module.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::Utc;
use utoipa::IntoResponses;

use super::dto::*;
pub use crate::app::problem::Problem;
pub use crate::app::{unexpected, App, AppState, ClientIp};
use crate::domain::{query, token_digest, token_hash_in, Principal, Reply};
use crate::secret;

/// An authenticated caller: the operator or a member with a live session,
/// and for a member the digest of their session's token (its stored hash
/// is `token_hash_of` it: made only when a handler needs it, sign-out).
pub struct Authed(pub Principal, pub Option<[u8; 32]>);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Authed::from_headers(&parts.headers, app)
    }
}

impl Authed {
    /// The caller a request's `Authorization: Bearer` header names (the
    /// extractor's work, also called by the read lane that answers
    /// without the router).
    pub fn from_headers(headers: &axum::http::HeaderMap, app: &App) -> Result<Self, Problem> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <token>"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be Bearer <token>")
            })?;
        // One digest serves both checks: equal-time against the
        // operator's, then its hex as the session's key.
        let digest = token_digest(token);
        if secret::digests_equal(&digest, &app.operator_token_digest) {
            return Ok(Authed(Principal::Operator, None));
        }
        let mut hex = [0u8; 64];
        let hash = token_hash_in(&digest, &mut hex);
        let principal = query::session_principal(&app.store, hash, Utc::now())?;
        Ok(Authed(principal, Some(digest)))
    }
}

pub type ApiResult<T> = Result<T, Problem>;

/// The error answers every endpoint may give (problem+json with `code`).
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum Errors {
    /// Bad input: malformed JSON, unknown field, bad value (`validation_failed`, `malformed_json`, `invalid_token`, `invalid_path`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No or bad credentials.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Authenticated but not allowed (`not_account_owner`, `billing_owner_only`, `forbidden`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Not found, an id admind never issues, or an account the caller is not a member of (the same answer whether it exists or not).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// A rule refuses it (`agent_seat_exhausted`, `new_owner_not_admin`, `owner_role_locked`, ...).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// Body larger than the limit (1 MiB by default).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// A body that is not sent as `application/json` (`unsupported_media_type`).
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Too many attempts (`rate_limited`) or refused requests (`too_many_refusals`), with Retry-After.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// Busy (`overloaded`, with Retry-After), too slow (`request_timeout`) or the store is unavailable (`store_unavailable`).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The account a command answered with, summarized (the state the command
/// left, read from its reply, not from the store with extra privileges).
pub fn account_out(reply: Reply) -> ApiResult<axum::Json<AccountOut>> {
    match reply {
        Reply::Account(account) => Ok(axum::Json(query::summarize(account, Utc::now()).into())),
        other => Err(unexpected(other)),
    }
}

/// The member a command answered with, as the account's admins see them.
pub fn member_out(reply: Reply) -> ApiResult<axum::Json<MemberOut>> {
    match reply {
        Reply::Member {
            user,
            is_owner,
            role_label,
        } => Ok(axum::Json(
            query::MemberView {
                user: user.into(),
                is_owner,
                role_label,
            }
            .into(),
        )),
        other => Err(unexpected(other)),
    }
}

/// A 200 with JSON written by hand (`MemberListJson`, `OwnerJson`): the
/// body as it is and a constant content type, without the header parsing
/// a `(headers, body)` answer goes through.
pub fn json_response(body: Vec<u8>) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// About how many bytes one member takes in a list (ids, names, addresses
/// and flags; a little more than a typical one): the list's buffer starts
/// at about its size instead of doubling and copying six times.
pub const MEMBER_JSON_BYTES: usize = 256;
