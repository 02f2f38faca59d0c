//! The account's settings (admins): the language of its mails.

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::State;

use crate::app::problem::{Problem, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::AppState;
use crate::console::page::{problem_page, render, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command};

use super::common::*;

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    c: Chrome,
    base: String,
    account_name: String,
    account_id: String,
    /// The account's own choice, empty for the platform's default.
    language: String,
    /// The platform's default, for the label of that choice.
    default_language: String,
    error: Option<ErrorView>,
}

pub async fn settings_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["settings"]);
    match query::account_settings(&app.store, &who, &a) {
        Ok(account) => {
            let page = SettingsPage {
                c: Chrome::new(&v, &path, "settings.heading", f.done.as_deref()),
                base: at(&a, []),
                account_name: account.name,
                account_id: account.id,
                language: account.language.unwrap_or_default(),
                default_language: app.default_language.clone(),
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, &path, &at(&a, []), &refusal(r)),
    }
}

#[derive(Deserialize)]
pub struct LanguageForm {
    #[serde(default)]
    csrf: String,
    /// `en`, `fr`, or empty for the platform's default.
    #[serde(default)]
    language: String,
}

pub async fn set_language(
    State(app): State<AppState>,
    v: Visitor,
    axum::extract::Path(a): axum::extract::Path<String>,
    PageForm(form): PageForm<LanguageForm>,
) -> Response {
    let back = at(&a, ["settings"]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "settings.saved", |_| {
        if form.language.len() > 16 {
            return Err(Problem::bad_request("language is too long"));
        }
        Ok(Command::SetAccountLanguage(cmd::SetAccountLanguage {
            account_id,
            language: Some(form.language).filter(|l| !l.is_empty()),
        }))
    })
    .await
}
