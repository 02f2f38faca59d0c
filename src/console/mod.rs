//! The web console (the Admin Center): server-rendered pages (askama
//! templates under `templates/console/`, checked at compile time) over the
//! same core the API calls. Every action is the API's command through
//! `App::submit`; every read is a `domain::query` function with its
//! permission checks. No rule lives here: a page handler parses a form,
//! calls the core, and renders its answer or its refusal.
//!
//! Forms are plain HTML posts (they work without JavaScript); htmx, vendored
//! and embedded, only boosts links and forms into partial page loads.

pub mod i18n;
mod page;
mod pages;
mod support;
pub mod visitor;
mod workbench;

use crate::console::page::at;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;
use page::{local_path, set_cookie};
use visitor::LANG_COOKIE;

/// The console's routes (merged into the daemon's router by the server).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-out", post(pages::sign_out))
        .route("/lang/{code}", get(switch_language))
        .route("/assets/{file}", get(asset))
        .route("/password/set", get(pages::password_page))
        .route("/password/reset", get(pages::password_page))
        .route("/a/{a}", get(pages::account_home))
        // Any other path under the console's own prefixes is a page that
        // does not exist: an HTML page in the console's look, not the
        // API's problem+json.
        .route("/a/{a}/{*rest}", axum::routing::any(no_such_page))
        .route("/support/{*rest}", axum::routing::any(no_such_page))
        .route(
            "/a/{a}/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/a/{a}/password-reset", post(pages::request_reset))
        .route(
            "/a/{a}/password/set",
            get(pages::account_password_page).post(pages::set_password),
        )
        .route(
            "/a/{a}/password/reset",
            get(pages::account_password_page).post(pages::set_password),
        )
        .route(
            "/a/{a}/email/verify",
            get(pages::verify_page).post(pages::verify),
        )
        .route(
            "/a/{a}/members",
            get(pages::members_page).post(pages::add_member),
        )
        .route("/a/{a}/members.csv", get(pages::members_csv))
        .route("/a/{a}/members/{u}/role", post(pages::change_role))
        .route(
            "/a/{a}/members/{u}/invitation",
            post(pages::resend_invitation),
        )
        .route("/a/{a}/members/{u}/remove", post(pages::remove_member))
        .route("/a/{a}/owner", get(pages::owner_page))
        .route("/a/{a}/owner/change", post(pages::owner_change))
        .route("/a/{a}/owner/confirm", post(pages::owner_confirm))
        .route("/a/{a}/billing", get(pages::billing_page))
        .route("/a/{a}/billing/seats", post(pages::set_seats))
        .route(
            "/a/{a}/billing/payment-method",
            post(pages::set_payment_method),
        )
        .route("/a/{a}/billing/contacts", post(pages::set_billing_contacts))
        .route("/a/{a}/integrations", get(pages::integrations_page))
        .route(
            "/a/{a}/directory",
            get(pages::directory_page).post(pages::create_directory_token),
        )
        .route(
            "/a/{a}/directory/{t}/revoke",
            post(pages::revoke_directory_token),
        )
        .route(
            "/a/{a}/integrations/{i}/authorize",
            post(pages::authorize_integration),
        )
        .route("/a/{a}/profile", get(pages::own_profile))
        .route("/a/{a}/profile/{u}", get(pages::profile_page))
        .route("/a/{a}/profile/{u}/addresses", post(pages::add_address))
        .route("/a/{a}/profile/{u}/primary", post(pages::make_primary))
        .route("/a/{a}/profile/{u}/remove", post(pages::remove_address))
        .route("/a/{a}/profile/{u}/name", post(pages::rename))
        .route(
            "/a/{a}/licences",
            get(pages::licences_page).post(pages::request_seats),
        )
        .route("/a/{a}/sell", get(pages::sell_page))
        .route("/a/{a}/sell/trial", post(pages::start_trial))
        .route("/a/{a}/sell/users", post(pages::grant_sell))
        .route("/a/{a}/sell/users/{u}/role", post(pages::change_sell_role))
        .route("/a/{a}/sell/users/{u}/remove", post(pages::remove_sell))
        .route("/a/{a}/audit", get(pages::audit_page))
        .route("/a/{a}/audit.csv", get(pages::audit_csv))
        .route("/a/{a}/settings", get(pages::settings_page))
        .route(
            "/a/{a}/support",
            get(pages::support_requests_page).post(pages::contact_support),
        )
        .route("/a/{a}/settings/language", post(pages::set_language))
        .route(
            "/support/sign-in",
            get(support::sign_in_page).post(support::sign_in),
        )
        .route("/support", get(support::home))
        .route("/support/accounts", get(support::accounts_page))
        .route("/support/accounts/{a}", get(support::account_page))
        .route("/support/accounts/{a}/audit", get(support::audit_page))
        .route(
            "/support/accounts/{a}/investigations",
            post(support::open_investigation),
        )
        .route(
            "/support/accounts/{a}/sell-admin",
            post(support::appoint_sell_admin),
        )
        .route("/support/licences", get(support::licences_page))
        .route("/support/cases", get(support::cases_page))
        .route(
            "/support/accounts/{a}/cases/{id}/close",
            post(support::close_case),
        )
        .route("/support/licences/{id}/grant", post(support::grant))
        .route("/support/licences/{id}/deny", post(support::deny))
        .route("/support/deliveries", get(support::deliveries_page))
        .route(
            "/support/deliveries/{id}/redeliver",
            post(support::redeliver),
        )
        .route("/support/policies", get(support::policies_page))
        .route("/support/policies/switch", post(support::switch_policy))
        .route(
            "/support/policies/editor",
            get(workbench::editor_page).post(workbench::editor_post),
        )
        .route(
            "/support/policies/{name}/versions",
            get(workbench::versions_page),
        )
        .layer(axum::middleware::from_fn(security_headers))
        // Pages and assets gzip'd for browsers that ask (htmx is 52 KB
        // plain, 16 KB compressed); the API's answers stay as they are.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

/// Headers on every console answer: no script but our own files, no
/// framing, no sniffing, no referrer to other sites (links carry tokens),
/// no caching of pages that show account data.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Never to another site (links carry tokens), but kept on our own:
    // with `no-referrer` a browser sends `Origin: null` on a plain form
    // post, and every form failed the CSRF origin check without script.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The vendored assets, embedded in the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (
            include_bytes!("../../assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.js" => (
            include_bytes!("../../assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_bytes!("../../assets/console.css"),
            "text/css; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Back {
    back: Option<String>,
}

/// A console path that names no page: 404 in the console's look, in the
/// visitor's language, with a way home.
async fn no_such_page(v: visitor::Visitor, uri: axum::http::Uri) -> Response {
    let problem = crate::app::problem::Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "there is no such page",
    );
    let home = match v.account_id() {
        Some(a) => at(a, []),
        None if v.is_operator() => "/support/accounts".to_string(),
        None => "/".to_string(),
    };
    page::problem_page(&v, uri.path(), &home, &problem)
}

/// The language switch: remembers the choice and goes back to the page.
async fn switch_language(
    axum::extract::Path(code): axum::extract::Path<String>,
    crate::app::problem::Query(q): crate::app::problem::Query<Back>,
) -> Response {
    let code = if code == "fr" { "fr" } else { "en" };
    let mut response = Redirect::to(local_path(q.back.as_deref())).into_response();
    set_cookie(
        &mut response,
        &format!("{LANG_COOKIE}={code}; Path=/; SameSite=Lax; Max-Age=31536000"),
    );
    response
}
