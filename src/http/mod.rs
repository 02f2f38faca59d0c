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

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
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
    let router = api
        .merge(pages)
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
        });
    // Everything every request needs is one layer, `frame`: each layer of
    // its own cost an allocation per request (axum clones and boxes the
    // inner service and the body at every layer), about a fifth of a read's
    // time (BENCHMARKS.md, "What each middleware layer costs"). A layer
    // added with `Router::layer` runs after routing, so `frame` sees the
    // matched route and its parameters, and checks the path too.
    let router = if without_layer("body_limit") {
        router
    } else {
        router.layer(axum::extract::DefaultBodyLimit::max(body_max_bytes))
    };
    let frame = Arc::new(Frame {
        registry: app.metrics.clone(),
        ids: SequentialIds::new(),
        request_timeout,
        check_path: !without_layer("check_path"),
        request_id: !without_layer("request_id"),
        trace: !without_layer("trace"),
        catch_panic: !without_layer("catch_panic"),
        metrics: !without_layer("metrics"),
        deadline: !without_layer("deadline"),
        routes: std::sync::RwLock::default(),
    });
    let router = if without_layer("frame") {
        router
    } else {
        router.layer(axum::middleware::from_fn_with_state(frame, framed))
    };
    router.with_state(app)
}

/// Whether a benchmark asked to leave out this middleware layer, or this
/// part of [`framed`] (`BENCH_WITHOUT_LAYERS=trace,metrics,...`), to
/// measure what each costs (`BENCH_ONLY=layers benches/run.sh`). Read once,
/// when the router is built. Not for production: without them requests
/// lose their id, their metrics, their deadline or their panic guard.
fn without_layer(name: &str) -> bool {
    std::env::var("BENCH_WITHOUT_LAYERS").is_ok_and(|v| v.split(',').any(|l| l.trim() == name))
}

/// What [`framed`] needs: the parts a benchmark may switch off, the
/// request ids, and the route labels of the metrics.
struct Frame {
    registry: Arc<crate::metrics::Metrics>,
    ids: SequentialIds,
    request_timeout: std::time::Duration,
    check_path: bool,
    request_id: bool,
    trace: bool,
    catch_panic: bool,
    metrics: bool,
    deadline: bool,
    /// Each matched route's label, made once: a route set is finite (the
    /// router's), so this never grows past it.
    routes: std::sync::RwLock<rustc_hash::FxHashSet<&'static str>>,
}

impl Frame {
    /// The metrics label of a matched route, without an allocation per
    /// request.
    fn route_label(&self, route: Option<&MatchedPath>) -> &'static str {
        let Some(route) = route.map(MatchedPath::as_str) else {
            return "unmatched";
        };
        let read = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = read.get(route) {
            return label;
        }
        drop(read);
        let mut write = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = write.get(route) {
            return label;
        }
        // Leaked once per route of the router (a fixed set, matched paths
        // only: a made-up path is "unmatched").
        let label: &'static str = Box::leak(route.to_string().into_boxed_str());
        write.insert(label);
        label
    }
}

const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Everything each request goes through, in one layer: its id (the
/// client's `x-request-id`, else a new one, sent back on the answer), its
/// log span, the check of its path's parameters ([`path_refusal`]), a
/// panic turned into a 500 problem, its deadline
/// (`limits.request_timeout_ms`), and its count and latency by route and
/// status.
async fn framed(State(frame): State<Arc<Frame>>, mut req: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    use futures_util::FutureExt;
    use tracing::Instrument;
    let started = Instant::now();
    let matched = req.extensions().get::<MatchedPath>();
    let route = frame.route_label(matched);
    // Only a matched route has parameters; the fallback answers 404 itself.
    let refusal = if frame.check_path && matched.is_some() {
        let (mut parts, body) = req.into_parts();
        let params = axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await;
        req = Request::from_parts(parts, body);
        path_refusal(params, route)
    } else {
        None
    };
    let method = crate::metrics::method_label(req.method());
    let id = if frame.request_id {
        match req.headers().get(X_REQUEST_ID) {
            Some(id) => Some(id.clone()),
            None => {
                let id = frame.ids.next();
                if let Some(id) = &id {
                    req.headers_mut().insert(X_REQUEST_ID, id.clone());
                }
                id
            }
        }
    } else {
        None
    };
    let span = if frame.trace {
        tracing::info_span!(
            "request",
            id = %crate::logsafe::Clean(id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")),
            method = %crate::logsafe::Clean(req.method().as_str()),
            path = %crate::logsafe::Clean(req.uri().path())
        )
    } else {
        tracing::Span::none()
    };
    let run = async move {
        match refusal {
            Some(refused) => refused,
            None => next.run(req).await,
        }
    };
    let run = async {
        if frame.deadline {
            deadline(frame.request_timeout, run).await
        } else {
            run.await
        }
    };
    let mut response = if frame.catch_panic {
        match std::panic::AssertUnwindSafe(run.instrument(span))
            .catch_unwind()
            .await
        {
            Ok(response) => response,
            Err(_) => {
                tracing::error!(route, "a request panicked; answered 500");
                Problem::internal("the request failed unexpectedly; it was logged").into_response()
            }
        }
    } else {
        run.instrument(span).await
    };
    // A server error is logged with its request id, as tower-http's trace
    // layer did before it was folded in here.
    let status = response.status();
    if status.is_server_error() {
        let request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
        let latency_ms = started.elapsed().as_millis() as u64;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id = %crate::logsafe::Clean(request_id), route, status = status.as_u16(), latency_ms, "response failed");
        } else {
            tracing::warn!(request_id = %crate::logsafe::Clean(request_id), route, status = status.as_u16(), latency_ms, "response failed");
        }
    }
    if let Some(id) = id {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    if frame.metrics {
        let metrics = &frame.registry;
        metrics
            .http_request_seconds
            .get_or_create(&RouteLabels { method, route })
            .observe(started.elapsed().as_secs_f64());
        metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: response.status().as_u16(),
            })
            .inc();
    }
    response
}

/// Answers a request that runs past `limits.request_timeout_ms` with 503
/// `request_timeout` instead of holding its connection. A write it started
/// may still commit (the writer finishes what it took), as after any lost
/// answer; the client is told so.
async fn deadline(limit: std::time::Duration, run: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, run).await {
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

/// The answer to a request whose path's parameters fail their check,
/// before any handler runs: a segment that is not UTF-8 after
/// percent-decoding is a 400 problem (never axum's plain text), and an id
/// that does not have the shape admind issues is a 404 before any store
/// read, rate-limit key or other per-id work. `route` is the matched one.
fn path_refusal(
    params: Result<axum::extract::RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    route: &str,
) -> Option<Response> {
    let params = match params {
        Ok(params) => params,
        Err(rejection) => {
            return Some(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!("the path is not valid: {}", rejection.body_text()),
                )
                .into_response(),
            )
        }
    };
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
            return Some(Problem::from(crate::domain::Refusal::not_found(what)).into_response());
        }
    }
    None
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

impl SequentialIds {
    fn next(&self) -> Option<axum::http::HeaderValue> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Written by hand into one buffer: `format!` was a fiftieth of a
        // cached read.
        let mut id = Vec::with_capacity(self.prefix.len() + 17);
        id.extend_from_slice(self.prefix.as_bytes());
        id.push(b'-');
        let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            id.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
        }
        axum::http::HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::SequentialIds;
    use std::sync::atomic::Ordering;

    /// A request id is the process's prefix, a dash and the counter in
    /// lowercase hex, as `format!("{prefix}-{n:x}")` wrote it.
    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = SequentialIds::new();
        for n in [0, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX - 1] {
            ids.next.store(n, Ordering::Relaxed);
            let id = ids.next().expect("an id is a valid header value");
            assert_eq!(
                id.to_str().ok(),
                Some(format!("{}-{n:x}", ids.prefix).as_str())
            );
        }
    }
}
