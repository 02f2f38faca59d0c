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
mod pages;
mod support;
pub mod visitor;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::api::AppState;
use crate::http::problem::Problem;
use i18n::Catalogue;
use visitor::{Visitor, CSRF_COOKIE, LANG_COOKIE};

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
        .route("/a/{a}/members/{u}/role", post(pages::change_role))
        .route("/a/{a}/members/{u}/remove", post(pages::remove_member))
        .route("/a/{a}/owner", get(pages::owner_page))
        .route("/a/{a}/owner/change", post(pages::owner_change))
        .route("/a/{a}/owner/confirm", post(pages::owner_confirm))
        .route("/a/{a}/billing", get(pages::billing_page))
        .route("/a/{a}/billing/seats", post(pages::set_seats))
        .route("/a/{a}/integrations", get(pages::integrations_page))
        .route(
            "/a/{a}/integrations/{i}/authorize",
            post(pages::authorize_integration),
        )
        .route("/a/{a}/profile", get(pages::own_profile))
        .route("/a/{a}/profile/{u}", get(pages::profile_page))
        .route("/a/{a}/profile/{u}/addresses", post(pages::add_address))
        .route("/a/{a}/profile/{u}/primary", post(pages::make_primary))
        .route("/a/{a}/profile/{u}/remove", post(pages::remove_address))
        .route("/a/{a}/licences", post(pages::request_seats))
        .route("/a/{a}/audit", get(pages::audit_page))
        .route(
            "/support/sign-in",
            get(support::sign_in_page).post(support::sign_in),
        )
        .route("/support", get(support::home))
        .route("/support/accounts", get(support::accounts_page))
        .route("/support/accounts/{a}/audit", get(support::audit_page))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers on every console answer: no script but our own files, no
/// framing, no sniffing, no referrer (links carry tokens), no caching of
/// pages that show account data.
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
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
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

/// The language switch: remembers the choice and goes back to the page.
async fn switch_language(
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<Back>,
) -> Response {
    let code = if code == "fr" { "fr" } else { "en" };
    let mut response = Redirect::to(local_path(q.back.as_deref())).into_response();
    set_cookie(
        &mut response,
        &format!("{LANG_COOKIE}={code}; Path=/; SameSite=Lax; Max-Age=31536000"),
    );
    response
}

/// A path on this site to go back to (never another site).
fn local_path(back: Option<&str>) -> &str {
    match back {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b,
        _ => "/",
    }
}

pub(crate) fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link of the navigation.
pub struct NavLink {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// What every page shows around its content.
pub struct Chrome {
    pub t: &'static Catalogue,
    pub title: String,
    pub csrf: String,
    pub nav: Vec<NavLink>,
    pub signed_in: bool,
    pub lang_href: String,
    pub flash: Option<String>,
}

impl Chrome {
    /// The chrome of a page at `path` titled by catalogue key `title`.
    pub fn new(v: &Visitor, path: &str, title: &str, flash: Option<&str>) -> Chrome {
        let t = v.t;
        let nav = match (&v.who, v.account_id()) {
            (Some(_), Some(a)) => account_nav(t, a, path),
            (Some(crate::domain::Principal::Operator), _) => vec![NavLink {
                href: "/support/accounts".into(),
                label: t.s("nav.accounts"),
                current: path.starts_with("/support/accounts"),
            }],
            _ => Vec::new(),
        };
        Chrome {
            t,
            title: t.s(title).to_string(),
            csrf: v.csrf.clone(),
            nav,
            signed_in: v.who.is_some(),
            lang_href: format!("/lang/{}?back={}", t.other_lang, encode_component(path)),
            // Only messages of the catalogue are shown (never text from a URL).
            flash: flash
                .filter(|key| t.has(key))
                .map(|key| t.s(key).to_string()),
        }
    }
}

fn account_nav(t: &'static Catalogue, a: &str, path: &str) -> Vec<NavLink> {
    [
        ("members", "nav.members"),
        ("owner", "nav.owner"),
        ("billing", "nav.billing"),
        ("integrations", "nav.integrations"),
        ("profile", "nav.profile"),
        ("audit", "nav.audit"),
    ]
    .into_iter()
    .map(|(page, key)| {
        let href = format!("/a/{a}/{page}");
        NavLink {
            current: path.starts_with(&href),
            href,
            label: t.s(key),
        }
    })
    .collect()
}

/// A refusal or error as a person reads it, next to what caused it.
pub struct ErrorView {
    pub code: String,
    pub summary: String,
    pub detail: String,
}

impl ErrorView {
    pub fn from_problem(t: &Catalogue, p: &Problem) -> ErrorView {
        let summary = t
            .refusal(&p.code)
            .map(str::to_string)
            .unwrap_or_else(|| t.s("problem.heading").to_string());
        // The server's own words add what the summary cannot know (a
        // policy's reason, which field was wrong); a summary that says it
        // all keeps the page short.
        let detail = match p.code.as_str() {
            "invalid_credentials"
            | "invalid_token"
            | "csrf_failed"
            | "not_found"
            | "unauthorized" => String::new(),
            _ => p.detail.clone(),
        };
        ErrorView {
            code: p.code.clone(),
            summary,
            detail,
        }
    }

    pub fn csrf(t: &Catalogue) -> ErrorView {
        ErrorView {
            code: "csrf_failed".into(),
            summary: t.s("error.csrf_failed").to_string(),
            detail: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    c: Chrome,
    error: Option<ErrorView>,
    back: String,
}

/// Renders a page with its status; sets the CSRF cookie when the visitor
/// had none.
pub fn render(v: &Visitor, status: StatusCode, page: &impl Template) -> Response {
    let mut response = match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            Problem::internal("the page could not be rendered").into_response()
        }
    };
    if v.new_csrf {
        set_cookie(
            &mut response,
            &format!(
                "{CSRF_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                v.csrf
            ),
        );
    }
    response
}

/// A page saying what went wrong, with the status of the problem.
pub fn problem_page(v: &Visitor, path: &str, back: &str, p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    let page = ProblemPage {
        c: Chrome::new(v, path, "problem.heading", None),
        error: Some(ErrorView::from_problem(v.t, p)),
        back: back.to_string(),
    };
    render(v, status, &page)
}

/// 403 for a post whose CSRF token or origin is wrong; nothing ran.
pub fn csrf_refused(v: &Visitor, path: &str) -> Response {
    let page = ProblemPage {
        c: Chrome::new(v, path, "problem.heading", None),
        error: Some(ErrorView::csrf(v.t)),
        back: path.to_string(),
    };
    render(v, StatusCode::FORBIDDEN, &page)
}

/// 303 to `to` (after a post: the browser then gets the page).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
