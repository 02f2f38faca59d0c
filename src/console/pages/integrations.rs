//! Integrations and their reauthorization (R06).

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::AppState;
use crate::console::page::{problem_page, render, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command, StateView};

use super::common::*;

pub struct IntegrationRow {
    id: String,
    name: String,
    configured_by: String,
    needs_reauth: bool,
}

#[derive(Template)]
#[template(path = "console/integrations.html")]
struct IntegrationsPage {
    c: Chrome,
    base: String,
    rows: Vec<IntegrationRow>,
    error: Option<ErrorView>,
}

pub async fn integrations_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["integrations"]);
    match query::integrations(&app.store, &who, &a) {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|i| IntegrationRow {
                    configured_by: app
                        .store
                        .user(&a, &i.configured_by)
                        .ok()
                        .flatten()
                        .map_or(i.configured_by.clone(), |u| u.name),
                    needs_reauth: i.status
                        == crate::domain::IntegrationStatus::NeedsReauthorization,
                    id: i.id,
                    name: i.name,
                })
                .collect();
            let page = IntegrationsPage {
                c: Chrome::new(&v, &path, "integrations.heading", f.done.as_deref()),
                base: at(&a, []),
                rows,
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, &path, &at(&a, []), &refusal(r)),
    }
}

pub async fn authorize_integration(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, i)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = at(&a, ["integrations"]);
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "integrations.authorized",
        |_| {
            Ok(Command::AuthorizeIntegration(cmd::AuthorizeIntegration {
                account_id,
                integration_id: i,
            }))
        },
    )
    .await
}
