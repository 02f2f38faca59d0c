//! The HTTP control API: thin handlers that parse, authenticate, call the
//! core and render. Routing, middleware and the OpenAPI document live here.

// Shared by every endpoint: the app state, extractors, the error type.
pub mod api;
pub mod dto;
mod frame;
mod lane;
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

use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::problem::Problem;
use frame::{Frame, FrameLayer};

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

/// What answers the daemon's requests: axum's router with every route
/// (and the OpenAPI document generated from it), and the read lane in
/// front of it, which answers the two most frequent reads itself
/// (`src/http/lane.rs`).
#[derive(Clone)]
pub struct Routes {
    pub(crate) router: Router,
    pub(crate) lane: Option<Arc<lane::ReadLane>>,
}

/// Every route: the router, and the read lane that shares its frame.
pub fn router(
    app: AppState,
    pages: Router<AppState>,
    body_max_bytes: usize,
    request_timeout_ms: u64,
) -> Routes {
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
    // matched route and its parameters, checks the path too, and sets the body
    // limit.
    // The body limit is part of the frame; without the frame (a
    // benchmark's), it is a layer of its own.
    let mut lane = None;
    let router = if without_layer("frame") {
        if without_layer("body_limit") {
            router
        } else {
            router.layer(axum::extract::DefaultBodyLimit::max(body_max_bytes))
        }
    } else {
        let frame = Arc::new(Frame::new(
            app.metrics.clone(),
            request_timeout,
            body_max_bytes,
            without_layer,
        ));
        // The lane answers in the same frame as the router (one sequence
        // of request ids, one set of metrics).
        if !without_layer("lane") {
            lane = Some(Arc::new(lane::ReadLane::new(app.clone(), frame.clone())));
        }
        router.layer(FrameLayer(frame))
    };
    Routes {
        router: router.with_state(app),
        lane,
    }
}

/// Whether a benchmark asked to leave out this middleware layer, or this
/// part of the frame ([`FrameLayer`]) (`BENCH_WITHOUT_LAYERS=trace,metrics,...`), to
/// measure what each costs (`BENCH_ONLY=layers benches/run.sh`). Read once,
/// when the router is built. Not for production: without them requests
/// lose their id, their metrics, their deadline or their panic guard.
fn without_layer(name: &str) -> bool {
    std::env::var("BENCH_WITHOUT_LAYERS").is_ok_and(|v| v.split(',').any(|l| l.trim() == name))
}
