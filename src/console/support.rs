//! Platform support's pages (`/support/...`): signed in with the operator
//! token, exchanged for a cookie that never contains it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::page::{csrf_refused, problem_page, render, see_other, set_cookie, Chrome, ErrorView};
use super::pages::{audit_view, AuditQuery};
use super::visitor::{self, Visitor, SESSION_COOKIE};
use crate::domain::{query, Principal};
use crate::http::api::{AppState, ClientIp};
use crate::http::problem::Problem;
use crate::secret;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    c: Chrome,
    heading: String,
    intro: String,
    action: String,
    reset_action: String,
    operator: bool,
    email: String,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

fn sign_in_view(v: &Visitor, flash: Option<&str>, error: Option<ErrorView>) -> SignInPage {
    SignInPage {
        c: Chrome::new(v, "/support/sign-in", "support.signin.heading", flash),
        heading: v.t.s("support.signin.heading").to_string(),
        intro: v.t.s("support.signin.intro").to_string(),
        action: "/support/sign-in".into(),
        reset_action: String::new(),
        operator: true,
        email: String::new(),
        error,
    }
}

pub async fn sign_in_page(v: Visitor, Query(f): Query<Flash>) -> Response {
    render(
        &v,
        StatusCode::OK,
        &sign_in_view(&v, f.done.as_deref(), None),
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn sign_in(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    Form(form): Form<TokenForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, "/support/sign-in");
    }
    // Guessing the token costs attempts like guessing a password.
    if let Some(ip) = ip {
        if let Err(p) = app.check_ip(ip) {
            let error = Some(ErrorView::from_problem(v.t, &p));
            return render(
                &v,
                StatusCode::TOO_MANY_REQUESTS,
                &sign_in_view(&v, None, error),
            );
        }
    }
    if !secret::secrets_equal(form.token.trim(), &app.operator_token) {
        let p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the token is wrong",
        );
        let error = Some(ErrorView::from_problem(v.t, &p));
        return render(&v, StatusCode::UNAUTHORIZED, &sign_in_view(&v, None, error));
    }
    let mut response = see_other("/support/accounts");
    let secure = if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            visitor::operator_cookie(&app),
            visitor::OPERATOR_SESSION_SECS
        ),
    );
    response
}

pub async fn home() -> Response {
    see_other("/support/accounts")
}

pub struct AccountRow {
    id: String,
    name: String,
    seats: String,
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct AccountsPage {
    c: Chrome,
    q: String,
    rows: Vec<AccountRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct AccountsQuery {
    after: Option<String>,
    q: Option<String>,
}

pub async fn accounts_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(q): Query<AccountsQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = "/support/accounts";
    let search = q.q.clone().unwrap_or_default();
    match query::accounts(
        &app.store,
        &Principal::Operator,
        q.after.as_deref(),
        Some(search.as_str()).filter(|s| !s.trim().is_empty()),
        None,
        chrono::Utc::now(),
    ) {
        Ok(page) => {
            let rows = page
                .items
                .into_iter()
                .map(|s| AccountRow {
                    seats: format!("{} / {}", s.support.seats_used, s.support.seats_total),
                    id: s.account.id,
                    name: s.account.name,
                })
                .collect();
            let page = AccountsPage {
                c: Chrome::new(&v, path, "accounts.heading", None),
                q: search,
                rows,
                next: page.next,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, path, "/", &r.into()),
    }
}

pub async fn audit_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = format!("/support/accounts/{a}/audit");
    match audit_view(&app, &v, &Principal::Operator, &a, &path, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, "/support/accounts", &p),
    }
}
