//! The audit log, filtered, with causal links.

use crate::console::page::at;
use askama::Template;
use axum::extract::State;

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::{App, AppState};
use crate::console::page::{problem_page, render, Chrome, ErrorView};
use crate::console::visitor::Visitor;
use crate::domain::{query, Principal};

use super::common::*;

pub struct AuditRow {
    seq: u64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    cause: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    c: Chrome,
    action: String,
    filter: String,
    rows: Vec<AuditRow>,
    next: Option<u64>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<u64>,
    action: Option<String>,
}

/// One page of a scope's audit log, filtered by action (shared with
/// platform support's view of an account).
pub fn audit_view(
    app: &App,
    v: &Visitor,
    who: &Principal,
    scope: &str,
    path: &str,
    q: &AuditQuery,
) -> Result<AuditPage, Problem> {
    let page = query::audit(&app.store, who, scope, q.after, Some(AUDIT_PAGE))?;
    let filter = q.action.clone().unwrap_or_default();
    let next = page.next.as_deref().and_then(|n| n.parse().ok());
    let rows = page
        .items
        .into_iter()
        .filter(|e| filter.is_empty() || e.action.contains(filter.as_str()))
        .map(|e| AuditRow {
            seq: e.seq,
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
            cause: e.cause,
        })
        .collect();
    Ok(AuditPage {
        c: Chrome::new(v, path, "audit.heading", None),
        action: path.to_string(),
        filter,
        rows,
        next,
        error: None,
    })
}

pub async fn audit_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    let path = at(&a, ["audit"]);
    match audit_view(&app, &v, &who, &a, &path, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
    }
}
