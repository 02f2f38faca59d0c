//! RFC 9457 problem details with a `code` member, and extractors whose
//! rejections are problems too (never axum's plain-text bodies).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Refusal, RefusalKind};

/// An error answer (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code (docs/api.md "Errors").
    pub code: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_secs: Option<u64>,
    /// The refusal's figures by name, for pages that say it in their own
    /// language (not part of the JSON answer: `detail` has them). Boxed:
    /// a problem is the `Err` of every handler, and most have none.
    #[serde(skip)]
    #[schema(ignore)]
    pub args: Option<Box<Figures>>,
}

/// A refusal's figures by name (`used`, `total`, `reason_fr`).
#[derive(Debug, Clone, Default)]
pub struct Figures(pub Vec<(&'static str, String)>);

impl Problem {
    /// The refusal's figures (none for most problems).
    pub fn figures(&self) -> &[(&'static str, String)] {
        self.args.as_deref().map_or(&[], |f| f.0.as_slice())
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: format!("urn:admind:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            retry_after_secs: None,
            args: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// A problem that passes with time: its `Retry-After` and the detail
    /// saying when.
    fn retry_later(status: StatusCode, code: &str, what: &str, retry_after_secs: u64) -> Self {
        let mut p = Self::new(
            status,
            code,
            format!("{what}; try again in {retry_after_secs} s"),
        );
        p.retry_after_secs = Some(retry_after_secs);
        p
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts for this address",
            retry_after_secs,
        )
    }
    /// Too many failed attempts from one network address (`rate_limited`, 429).
    pub fn network_rate_limited(retry_after_secs: u64) -> Self {
        Self::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed attempts from this network address",
            retry_after_secs,
        )
    }
    /// Too many verification mails to one address or by one member
    /// (`too_many_verification_mails`, 429).
    pub fn too_many_verification_mails(retry_after_secs: u64) -> Self {
        Self::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_verification_mails",
            "too many verification mails for this address or from you this hour",
            retry_after_secs,
        )
    }
    /// Too much work queued: try again shortly (`overloaded`, 503).
    pub fn overloaded(retry_after_secs: u64) -> Self {
        Self::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is busy",
            retry_after_secs,
        )
    }
    /// A caller past its budget of refused requests (`too_many_refusals`).
    pub fn too_many_refusals(retry_after_secs: u64) -> Self {
        Self::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_refusals",
            "too many refused requests from this caller",
            retry_after_secs,
        )
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<Refusal> for Problem {
    fn from(r: Refusal) -> Self {
        let status = match r.kind {
            RefusalKind::Invalid => StatusCode::BAD_REQUEST,
            RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            RefusalKind::Forbidden => StatusCode::FORBIDDEN,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RefusalKind::Broken => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if r.kind == RefusalKind::Broken {
            // A bug in the state, not the client's doing: details to the log.
            tracing::error!(detail = %r.detail, code = r.code, "an invariant of the core is broken");
            return Problem::internal("the request failed unexpectedly; it was logged");
        }
        if r.kind == RefusalKind::Unavailable {
            // Store details stay in the log, not in answers.
            tracing::error!(detail = %r.detail, "store unavailable");
            return Problem::new(status, r.code, "the store is unavailable; try again");
        }
        let mut problem = Problem::new(status, r.code, r.detail);
        if !r.args.is_empty() {
            problem.args = Some(Box::new(Figures(r.args)));
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after_secs;
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// JSON body extractor: malformed JSON, unknown fields, wrong types → 400;
/// too large → 413; not JSON → 415. All as problems.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = rejection.status();
    match rejection {
        JsonRejection::JsonDataError(e) => {
            Problem::bad_request(format!("invalid body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        other if status == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is too large: {}", other.body_text()),
        ),
        other => Problem::bad_request(format!("could not read the body: {}", other.body_text())),
    }
}

/// Query-string extractor with problem rejections.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(query_problem(e)),
        }
    }
}

fn query_problem(e: QueryRejection) -> Problem {
    Problem::bad_request(format!("invalid query string: {}", e.body_text()))
}
