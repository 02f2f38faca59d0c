//! The HTTP control API: thin handlers that parse, authenticate, call the
//! core and render. Routing, middleware and the OpenAPI document live here.

pub mod dto;
pub mod handlers;
pub mod listener;
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

use crate::domain::{query, token_hash, Command, Principal, Reply, Settings};
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
    /// Sign-in and reset attempts per user (all addresses of a profile
    /// share one budget; unknown addresses are keyed by address).
    pub limiter: RateLimiter,
    /// The same attempts per client IP (0 per minute: off).
    pub ip_limiter: Option<RateLimiter>,
    /// Refused requests per caller (each is an audit entry).
    pub refusals: RateLimiter,
    /// Bounds the password hashes running and waiting.
    pub password_gate: crate::password_gate::PasswordGate,
    pub password_cost: PasswordCost,
    /// Verified against when an address is unknown (equal sign-in cost).
    pub decoy_hash: String,
    pub settings: Settings,
    pub policies: Arc<crate::policy::PolicyHost>,
    pub verifier: crate::webhooks::Verifier,
}

pub type AppState = Arc<App>;

impl App {
    /// Runs a command for an HTTP caller within the caller's budget of
    /// refused requests: past it the command does not run (429
    /// `too_many_refusals`), so a caller cannot fill the audit log with
    /// refusals. Anonymous callers are bounded by the attempt limits instead
    /// (their refusals are not rule refusals, so they write no audit entry).
    pub async fn submit(&self, who: Principal, command: Command) -> Result<Reply, Problem> {
        let key = who.audit_name();
        let budgeted = who != Principal::Anonymous;
        if budgeted {
            if let Err(secs) = self.refusals.peek(&[&key]) {
                self.metrics
                    .requests_shed
                    .get_or_create(&crate::metrics::ShedLabels {
                        reason: "too_many_refusals",
                    })
                    .inc();
                return Err(Problem::too_many_refusals(secs));
            }
        }
        match self.writer.submit(who, command).await {
            Ok(reply) => Ok(reply),
            Err(refusal) => {
                if budgeted && refusal.is_rule_refusal() {
                    let _ = self.refusals.check(&[&key]);
                }
                Err(refusal.into())
            }
        }
    }

    /// Counts an attempt (sign-in, reset) for the client IP; 429 past it.
    pub fn check_ip(&self, ip: std::net::IpAddr) -> Result<(), Problem> {
        let Some(limiter) = &self.ip_limiter else {
            return Ok(());
        };
        limiter.check(&[&ip.to_string()]).map_err(|secs| {
            self.shed("rate_limited");
            Problem::rate_limited(secs)
        })
    }

    pub fn shed(&self, reason: &'static str) {
        self.metrics
            .requests_shed
            .get_or_create(&crate::metrics::ShedLabels { reason })
            .inc();
    }

    /// Runs a password hash or verification through the gate; 503 when full.
    pub async fn hash_work<T, F>(&self, work: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        use crate::password_gate::{GateError, RETRY_AFTER_SECS};
        self.password_gate.run(work).await.map_err(|e| match e {
            GateError::Overloaded => {
                self.shed("overloaded");
                Problem::overloaded(RETRY_AFTER_SECS)
            }
            GateError::Failed(detail) => Problem::internal(detail),
        })
    }
}

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

/// The client's IP address, when the request came through the listener
/// (in-process callers have none).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

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
    .route_layer(axum::middleware::from_fn(check_path))
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
    for (name, value) in &params {
        let prefix = match name {
            "a" => "acc",
            "u" => "usr",
            "i" => "int",
            _ => {
                if value.len() > crate::domain::validate::EMAIL_MAX_CHARS {
                    return Problem::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
                        .into_response();
                }
                continue;
            }
        };
        if !crate::domain::validate::id_has_shape(prefix, value) {
            let what = match prefix {
                "acc" => "account",
                "usr" => "member",
                _ => "integration",
            };
            return Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            )
            .into_response();
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
