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
    let mut people = People::new(app, v, scope);
    let rows = page
        .items
        .into_iter()
        .filter(|e| filter.is_empty() || e.action.contains(filter.as_str()))
        .map(|e| AuditRow {
            seq: e.seq,
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            actor: people.say(&e.actor),
            action: e.action,
            target: people.say(&e.target),
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

/// Who an audit entry names, as a person reads it: a member by name (looked
/// up once per page), the directory, a policy, platform support; anything
/// else as written.
struct People<'a> {
    app: &'a App,
    v: &'a Visitor,
    scope: &'a str,
    names: std::collections::HashMap<String, String>,
}

impl<'a> People<'a> {
    fn new(app: &'a App, v: &'a Visitor, scope: &'a str) -> Self {
        People {
            app,
            v,
            scope,
            names: Default::default(),
        }
    }

    fn say(&mut self, named: &str) -> String {
        use crate::domain::StateView;
        let t = self.v.t;
        if let Some(id) = named.strip_prefix("user:") {
            let (app, scope) = (self.app, self.scope);
            return self
                .names
                .entry(id.to_string())
                .or_insert_with(|| {
                    app.store
                        .user(scope, id)
                        .ok()
                        .flatten()
                        .map_or_else(|| t.s("audit.former_member").to_string(), |u| u.name)
                })
                .clone();
        }
        if let Some(name) = named.strip_prefix("directory:") {
            return format!("{name} ({})", t.s("audit.directory"));
        }
        if let Some(name) = named.strip_prefix("policy:") {
            return format!("{} {name}", t.s("audit.policy"));
        }
        match named {
            "operator" => t.s("audit.operator").to_string(),
            "anonymous" => t.s("audit.anonymous").to_string(),
            other => other.to_string(),
        }
    }
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
