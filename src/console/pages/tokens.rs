//! The pages the mails link to: set or reset a password, verify an address.

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::{App, AppState};
use crate::console::page::{
    csrf_refused, problem_page, render, see_other, Chrome, ErrorView, PageForm,
};
use crate::console::visitor::Visitor;
use crate::domain::{token_hash, Command, Principal, StateView};

#[derive(Template)]
#[template(path = "console/token_form.html")]
struct TokenPage {
    c: Chrome,
    heading: String,
    intro: String,
    action: String,
    token: String,
    password: bool,
    button: String,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn password_view(v: &Visitor, path: &str, token: String, error: Option<ErrorView>) -> TokenPage {
    TokenPage {
        c: Chrome::new(v, path, "password.heading", None),
        heading: v.t.s("password.heading").to_string(),
        intro: v.t.s("password.intro").to_string(),
        action: path.to_string(),
        token,
        password: true,
        button: v.t.s("password.button").to_string(),
        error,
    }
}

/// The account a mailed token belongs to (to send its holder to the
/// account's own pages).
fn token_account(app: &App, token: &str) -> Option<String> {
    if token.is_empty() || token.len() > crate::domain::validate::TOKEN_MAX_CHARS {
        return None;
    }
    app.store
        .token(&token_hash(token))
        .ok()
        .flatten()
        .map(|t| t.account_id)
}

/// `/password/set` and `/password/reset` without an account (links mailed
/// before links named their account): on to the account's page.
pub async fn password_page(
    State(app): State<AppState>,
    v: Visitor,
    uri: Uri,
    Query(q): Query<TokenQuery>,
) -> Response {
    match token_account(&app, &q.token) {
        Some(a) => see_other(&format!(
            "/a/{a}{}?token={}",
            uri.path(),
            crate::console::page::encode_component(&q.token)
        )),
        None => problem_page(&v, uri.path(), "/", &invalid_token()),
    }
}

fn invalid_token() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_token",
        "the link is invalid, already used or expired; ask for a new one",
    )
}

pub async fn account_password_page(v: Visitor, uri: Uri, Query(q): Query<TokenQuery>) -> Response {
    render(
        &v,
        StatusCode::OK,
        &password_view(&v, uri.path(), q.token, None),
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub async fn set_password(
    State(app): State<AppState>,
    v: Visitor,
    uri: Uri,
    Path(a): Path<String>,
    PageForm(form): PageForm<PasswordForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, uri.path());
    }
    match crate::app::sign_in::set_password(&app, &form.token, form.password).await {
        Ok(()) => see_other(&v.flash_url(&at(&a, ["sign-in"]), "signin.password_set")),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(
                &v,
                status,
                &password_view(&v, uri.path(), form.token, error),
            )
        }
    }
}

fn verify_view(v: &Visitor, a: &str, token: String, error: Option<ErrorView>) -> TokenPage {
    let path = at(a, ["email", "verify"]);
    TokenPage {
        c: Chrome::new(v, &path, "verify.heading", None),
        heading: v.t.s("verify.heading").to_string(),
        intro: v.t.s("verify.intro").to_string(),
        action: path,
        token,
        password: false,
        button: v.t.s("verify.button").to_string(),
        error,
    }
}

/// The link only shows a button: mail scanners open links, and opening
/// one must not verify anything.
pub async fn verify_page(
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    render(&v, StatusCode::OK, &verify_view(&v, &a, q.token, None))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn verify(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<TokenForm>,
) -> Response {
    let path = at(&a, ["email", "verify"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let result = if token_account(&app, &form.token).is_none() {
        Err(invalid_token())
    } else {
        app.submit(
            Principal::Anonymous,
            Command::ConfirmEmailVerification(cmd::ConfirmEmailVerification {
                token_hash: token_hash(&form.token),
            }),
        )
        .await
        .map(|_| ())
    };
    match result {
        Ok(()) if v.account_id() == Some(a.as_str()) => {
            see_other(&v.flash_url(&at(&a, ["profile"]), "verify.done"))
        }
        Ok(()) => see_other(&v.flash_url(&at(&a, ["sign-in"]), "verify.done")),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(&v, status, &verify_view(&v, &a, form.token, error))
        }
    }
}
