//! The HTTP control API: thin handlers that parse, authenticate, call the
//! core and render. Routing, middleware and the OpenAPI document live here.

pub mod dto;
pub mod handlers;
pub mod problem;
mod products;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::domain::{query, token_hash, Principal, Settings};
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::ratelimit::RateLimiter;
use crate::secret::{self, PasswordCost};
use crate::store::writer::Writer;
use crate::store::Store;
use problem::Problem;

pub struct App {
    pub store: Store,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub operator_token: String,
    pub limiter: RateLimiter,
    pub password_cost: PasswordCost,
    /// Verified against when an address is unknown (equal sign-in cost).
    pub decoy_hash: String,
    pub settings: Settings,
    pub policies: Arc<crate::policy::PolicyHost>,
    pub verifier: crate::webhooks::Verifier,
}

pub type AppState = Arc<App>;

/// An authenticated caller: the operator or a member with a live session.
pub struct Authed(pub Principal, pub Option<String>);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
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
        if secret::secrets_equal(token, &app.operator_token) {
            return Ok(Authed(Principal::Operator, None));
        }
        let hash = token_hash(token);
        let principal = query::session_principal(&app.store, &hash, Utc::now())?;
        Ok(Authed(principal, Some(hash)))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "admind", description = "Account-administration daemon: the HTTP control API, version 1 (see API.md)."),
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
pub fn router(app: AppState, body_max_bytes: usize) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(handlers::routes())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.route(
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
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
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
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    app.metrics
        .http_request_seconds
        .get_or_create(&RouteLabels {
            method: method.clone(),
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
