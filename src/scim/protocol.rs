//! What every SCIM endpoint shares and imports nothing of them: the error
//! format (RFC 7644 §3.12), the media type, the limits.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::app::problem::Problem;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Resources in one page of a list, at most (and when `count` is not given).
pub const PAGE_COUNT_MAX: usize = 200;
/// Members a filter or a group's member list looks through, at most.
pub const SCAN_MAX: usize = 100_000;
/// The largest body a directory may send (bytes).
pub const BODY_MAX_BYTES: usize = 256 * 1024;
const CONTENT_TYPE: &str = "application/scim+json";

/// An error in SCIM's format (RFC 7644 §3.12), with the rule's code at the
/// head of `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    pub retry_after_secs: Option<u64>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(404, None, format!("not_found: no such {what}"))
    }
}

impl From<Problem> for ScimError {
    fn from(p: Problem) -> Self {
        let scim_type = match (p.status, p.code.as_str()) {
            (409, "email_taken") => Some("uniqueness"),
            (400, "too_many") => Some("tooMany"),
            (400, _) => Some("invalidValue"),
            _ => None,
        };
        ScimError {
            status: p.status,
            scim_type,
            detail: format!("{}: {}", p.code, p.detail),
            retry_after_secs: p.retry_after_secs,
        }
    }
}

impl From<crate::domain::Refusal> for ScimError {
    fn from(r: crate::domain::Refusal) -> Self {
        Problem::from(r).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(o)) = (self.scim_type, body.as_object_mut()) {
            o.insert("scimType".into(), json!(t));
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = scim_json(status, body);
        if let Some(secs) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

pub fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
