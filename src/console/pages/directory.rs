//! Directory provisioning (SCIM): the account's directory tokens, created
//! (shown once, on the page that answers the form), listed and revoked by
//! the owner and the admins.

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::{App, AppState};
use crate::console::page::{csrf_refused, problem_page, render, Chrome, ErrorView, PageForm, When};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command, Principal, Reply, StateView};

use super::common::*;

pub struct TokenRow {
    id: String,
    name: String,
    created_by: String,
    created_at: When,
    last_used_at: Option<When>,
}

#[derive(Template)]
#[template(path = "console/directory.html")]
struct DirectoryPage {
    c: Chrome,
    base: String,
    scim_url: String,
    rows: Vec<TokenRow>,
    /// The token just created: shown on this answer only.
    created: Option<(String, String)>,
    name: String,
    error: Option<ErrorView>,
}

/// What the creation form answered: the token made, or the name typed and
/// why it was refused.
#[derive(Default)]
struct Answered {
    created: Option<(String, String)>,
    name: String,
    error: Option<ErrorView>,
}

fn page(
    app: &App,
    v: &Visitor,
    a: &str,
    who: &Principal,
    done: Option<&str>,
    answered: Answered,
) -> Result<DirectoryPage, crate::app::problem::Problem> {
    let Answered {
        created,
        name,
        error,
    } = answered;
    let path = at(a, ["directory"]);
    let tokens = query::scim_tokens(&app.store, who, a)?;
    let rows = tokens
        .into_iter()
        .map(|t| TokenRow {
            created_by: app
                .store
                .user(a, &t.created_by)
                .ok()
                .flatten()
                .map_or(t.created_by.clone(), |u| u.name),
            created_at: When::new(v.t, t.created_at),
            last_used_at: t.last_used_at.map(|at| When::new(v.t, at)),
            id: t.id,
            name: t.name,
        })
        .collect();
    Ok(DirectoryPage {
        c: Chrome::new(v, &path, "directory.heading", done),
        base: at(a, []),
        scim_url: format!("{}/scim/v2", app.public_url.trim_end_matches('/')),
        rows,
        created,
        name,
        error,
    })
}

pub async fn directory_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    match page(&app, &v, &a, &who, f.done.as_deref(), Answered::default()) {
        Ok(p) => render(&v, StatusCode::OK, &p),
        Err(p) => problem_page(&v, &at(&a, ["directory"]), &at(&a, []), &p),
    }
}

#[derive(Deserialize)]
pub struct TokenNameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Creates a token and shows it on the answer itself (never in a URL, a
/// redirect or a flash): the one time anyone sees it.
pub async fn create_directory_token(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    PageForm(form): PageForm<TokenNameForm>,
) -> Response {
    let path = at(&a, ["directory"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let command = Command::CreateScimToken(cmd::CreateScimToken {
        account_id: a.clone(),
        name: form.name.clone(),
    });
    let (status, answered) = match app.submit(who.clone(), command).await {
        Ok(Reply::ScimToken { token, secret }) => (
            StatusCode::CREATED,
            Answered {
                created: Some((token.name, secret)),
                ..Answered::default()
            },
        ),
        Ok(other) => {
            let p = crate::app::unexpected(other);
            return problem_page(&v, &path, &path, &p);
        }
        Err(p) => (
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST),
            Answered {
                name: form.name,
                error: Some(ErrorView::from_problem(v.t, &p)),
                ..Answered::default()
            },
        ),
    };
    match page(&app, &v, &a, &who, None, answered) {
        Ok(p) => render(&v, status, &p),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
    }
}

/// Revokes a token, once confirmed: the directory using it stops at once.
pub async fn revoke_directory_token(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, t)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = at(&a, ["directory"]);
    if !confirmed(&form.confirmed) {
        if !v.csrf_ok(&form.csrf) {
            return csrf_refused(&v, &back);
        }
        let name = app
            .store
            .account(&a)
            .ok()
            .flatten()
            .and_then(|acc| acc.scim_tokens.into_iter().find(|x| x.id == t))
            .map_or(t.clone(), |x| x.name);
        let what =
            v.t.s("confirm.revoke_directory_token")
                .replace("{name}", &name);
        return confirm_first(
            &v,
            &at(&a, ["directory", &t, "revoke"]),
            &back,
            what,
            &[("csrf", &form.csrf)],
        );
    }
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "directory.revoked", |_| {
        Ok(Command::RevokeScimToken(cmd::RevokeScimToken {
            account_id,
            token_id: t,
        }))
    })
    .await
}
