//! Signing in and out, and where `/` and `/a/{account}` lead.

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::{App, AppState, ClientIp};
use crate::console::page::{
    csrf_refused, problem_page, render, see_other, set_cookie, Chrome, ErrorView, PageForm,
};
use crate::console::visitor::{self, Visitor, SESSION_COOKIE};
use crate::domain::{Command, StateView};

use super::common::*;

/// The sign-in page of an account, and of platform support (`operator`).
#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub struct SignInPage {
    pub c: Chrome,
    pub heading: String,
    pub intro: String,
    pub action: String,
    pub reset_action: String,
    pub operator: bool,
    pub email: String,
    pub error: Option<ErrorView>,
}

fn sign_in_view(
    v: &Visitor,
    app: &App,
    a: &str,
    flash: Option<&str>,
    email: String,
    error: Option<ErrorView>,
) -> SignInPage {
    // The account's name if it exists; its id otherwise (the page says the
    // same whether the account exists or not).
    let name = app
        .store
        .account(a)
        .ok()
        .flatten()
        .map_or_else(|| a.to_string(), |acc| acc.name);
    SignInPage {
        c: Chrome::new(v, &at(a, ["sign-in"]), "signin.heading", flash),
        heading: v.t.s("signin.heading").to_string(),
        intro: v.t.s("signin.intro").replace("{account}", &name),
        action: at(a, ["sign-in"]),
        reset_action: at(a, ["password-reset"]),
        operator: false,
        email,
        error,
    }
}

pub async fn sign_in_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    render(
        &v,
        StatusCode::OK,
        &sign_in_view(&v, &app, &a, f.done.as_deref(), String::new(), None),
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    PageForm(form): PageForm<SignInForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &at(&a, ["sign-in"]));
    }
    match crate::app::sign_in::sign_in_with_password(
        &app,
        ip,
        a.clone(),
        form.email.clone(),
        form.password,
    )
    .await
    {
        Ok((token, session)) => {
            let mut response = see_other(&at(&a, []));
            let ttl = (session.expires_at - chrono::Utc::now())
                .num_seconds()
                .max(0);
            set_cookie(
                &mut response,
                &format!(
                    "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{}",
                    secure(&app)
                ),
            );
            set_cookie(&mut response, &visitor::fresh_csrf_cookie(&app.public_url));
            response
        }
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(
                &v,
                status,
                &sign_in_view(&v, &app, &a, None, form.email, error),
            )
        }
    }
}

fn secure(app: &App) -> &'static str {
    if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Asks for a reset link; the same answer whether the address exists.
pub async fn request_reset(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    PageForm(form): PageForm<EmailForm>,
) -> Response {
    let path = at(&a, ["sign-in"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    match crate::app::sign_in::request_reset(&app, ip, a.clone(), form.email).await {
        Ok(()) => see_other(&v.flash_url(&path, "signin.reset_sent")),
        Err(p) => problem_page(&v, &path, &path, &p),
    }
}

pub async fn sign_out(
    State(app): State<AppState>,
    v: Visitor,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, "/");
    }
    let back = match (&v.who, v.account_id()) {
        (Some(who), Some(a)) => {
            if let Some(hash) = &v.session_hash {
                if let Err(p) = app
                    .submit(
                        who.clone(),
                        Command::RevokeSession(cmd::RevokeSession {
                            token_hash: hash.clone(),
                        }),
                    )
                    .await
                {
                    return problem_page(&v, "/", "/", &p);
                }
            }
            v.flash_url(&at(a, ["sign-in"]), "signin.signed_out")
        }
        _ => {
            if let Some(nonce) = &v.operator_nonce {
                visitor::revoke_operator(&app, nonce);
            }
            v.flash_url("/support/sign-in", "signin.signed_out")
        }
    };
    let mut response = see_other(&back);
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    set_cookie(&mut response, &visitor::fresh_csrf_cookie(&app.public_url));
    response
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage {
    c: Chrome,
}

/// `/`: a member goes to their account, platform support to the accounts;
/// anyone else is told where people sign in.
pub async fn home(v: Visitor) -> Response {
    if let Some(a) = v.account_id() {
        return see_other(&at(a, []));
    }
    if v.is_operator() {
        return see_other("/support/accounts");
    }
    let page = HomePage {
        c: Chrome::new(&v, "/", "app.name", None),
    };
    render(&v, StatusCode::OK, &page)
}

/// `/a/{a}`: admins land on Team members, everyone else on their profile.
pub async fn account_home(SignedIn { v, a, .. }: SignedIn) -> Response {
    if v.powers.admin {
        see_other(&at(&a, ["members"]))
    } else {
        see_other(&at(&a, ["profile"]))
    }
}
