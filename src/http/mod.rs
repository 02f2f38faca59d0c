//! The HTTP control API: thin handlers that parse, authenticate, call the
//! core and render. Routing, middleware and the OpenAPI document live here.

// Shared by every endpoint: the app state, extractors, the error type.
pub mod api;
pub mod dto;
pub mod listener;

// One module per capability, each with its `routes()`.
mod accounts;
mod addresses;
mod billing;
mod directory;
mod integrations;
mod licences;
mod members;
mod ownership;
mod policies;
mod sell;
pub mod sessions;
mod support;
mod system;
mod webhooks;

pub use crate::app::refresh_switches as refresh_policy_switches;
pub use api::{App, AppState, Authed, ClientIp};

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::problem::Problem;
use crate::domain::validate::id_has_shape;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::secret::{self};

#[derive(OpenApi)]
#[openapi(
    info(title = "admind", description = "Account-administration daemon: the HTTP control API, version 1 (see docs/api.md)."),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "operator", description = "Platform support (operator token)"),
        (name = "public", description = "No credentials"),
        (name = "members", description = "Account members (session token)"),
        (name = "billing", description = "Owner-only subscription pages (R05)"),
        (name = "system", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router with every route, and the OpenAPI document generated from it.
pub fn router(
    app: AppState,
    pages: Router<AppState>,
    body_max_bytes: usize,
    request_timeout_ms: u64,
) -> Router {
    let request_timeout = std::time::Duration::from_millis(request_timeout_ms.max(1));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes())
        .merge(accounts::routes())
        .merge(sessions::routes())
        .merge(ownership::routes())
        .merge(members::routes())
        .merge(billing::routes())
        .merge(integrations::routes())
        .merge(addresses::routes())
        .merge(licences::routes())
        .merge(sell::routes())
        .merge(policies::routes())
        .merge(webhooks::routes())
        .merge(directory::routes())
        .merge(support::routes())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.merge(pages)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .route_layer(axum::middleware::from_fn(check_path))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| deadline(request_timeout, req, next),
        ))
        .layer(axum::middleware::from_fn_with_state(app.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(body_max_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal("the request failed unexpectedly; it was logged").into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                id = %crate::logsafe::Clean(id),
                method = %crate::logsafe::Clean(req.method().as_str()),
                path = %crate::logsafe::Clean(req.uri().path())
            )
        }))
        .layer(SetRequestIdLayer::x_request_id(SequentialIds::new()))
        .with_state(app)
}

/// Counts requests by route and status, and their latency.
async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = crate::metrics::method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    app.metrics
        .http_request_seconds
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Answers a request that runs past `limits.request_timeout_ms` with 503
/// `request_timeout` instead of holding its connection. A write it started
/// may still commit (the writer finishes what it took), as after any lost
/// answer; the client is told so.
async fn deadline(limit: std::time::Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "the request took longer than {} ms; a change it asked for may still complete",
                    limit.as_millis()
                ),
            );
            p.retry_after_secs = Some(1);
            p.into_response()
        }
    }
}

/// Checks the path's parameters before any handler runs: a segment that is
/// not UTF-8 after percent-decoding is a 400 problem (never axum's plain
/// text), and an id that does not have the shape admind issues is a 404
/// before any store read, rate-limit key or other per-id work.
async fn check_path(
    params: Result<axum::extract::RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(rejection) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("the path is not valid: {}", rejection.body_text()),
            )
            .into_response()
        }
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("");
    for (name, value) in &params {
        let (shaped, what) = match (name, route) {
            ("a", _) => (id_has_shape("acc", value), "account"),
            ("u", _) => (id_has_shape("usr", value), "member"),
            ("i", _) => (id_has_shape("int", value), "integration"),
            ("token_id", _) => (id_has_shape("sct", value), "directory token"),
            ("id", r) if r.starts_with("/v1/licence-requests/") => {
                (id_has_shape("lic", value), "licence request")
            }
            // Delivery ids are sequence numbers.
            ("id", r) if r.starts_with("/v1/deliveries/") => (
                !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()),
                "delivery",
            ),
            // Addresses and webhook sources: bounded, checked by their handler.
            _ => (
                value.len() <= crate::domain::validate::EMAIL_MAX_CHARS,
                "resource",
            ),
        };
        if !shaped {
            return Problem::from(crate::domain::Refusal::not_found(what)).into_response();
        }
    }
    next.run(req).await
}

/// Request ids: a random per-process prefix and a counter. Unique across
/// restarts without a random-number syscall per request (UUIDv4 had one).
#[derive(Clone)]
struct SequentialIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialIds {
    fn new() -> Self {
        let token = secret::random_token();
        SequentialIds {
            prefix: token[..8].into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
