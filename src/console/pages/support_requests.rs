//! Contact support: the account's requests to platform support (an
//! ownership investigation when the owner is lost, R19; the first Sell
//! admin, R23) and what became of them.

use crate::console::page::{at, When};
use crate::domain::cmd;
use askama::Template;
use axum::extract::State;

use crate::app::problem::{Problem, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::{App, AppState};
use crate::console::i18n::Catalogue;
use crate::console::page::{problem_page, render, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command, SecurityInvestigation};

use super::common::*;

pub struct CaseRow {
    pub id: String,
    pub account_id: String,
    pub account_name: String,
    pub topic: String,
    pub opened: When,
    pub from: String,
    pub message: String,
    pub status: String,
    pub open: bool,
}

/// A case as a row, in words (shared with support's queue).
pub fn case_row(app: &App, t: &Catalogue, c: SecurityInvestigation) -> CaseRow {
    use crate::domain::StateView;
    let from = match c
        .requested_by
        .as_deref()
        .and_then(|r| r.strip_prefix("user:"))
    {
        Some(id) => app
            .store
            .user(&c.account_id, id)
            .ok()
            .flatten()
            .map_or_else(|| t.s("audit.former_member").to_string(), |u| u.name),
        None => t.s("audit.operator").to_string(),
    };
    let member = c
        .member_id
        .as_deref()
        .map(|id| member_name(app, &c.account_id, id));
    let topic = match (c.topic.as_str(), member) {
        ("sell_admin", Some(name)) => {
            t.fill("support_requests.topic.sell_admin_for", &[("name", &name)])
        }
        (topic, _) => t.s(&format!("support_requests.topic.{topic}")).to_string(),
    };
    let status = match (&c.closed_at, &c.closing_note) {
        (Some(at), note) => t.fill(
            "support_requests.closed",
            &[
                ("date", &t.day(*at)),
                ("note", note.as_deref().unwrap_or("")),
            ],
        ),
        (None, _) => t.s("support_requests.open").to_string(),
    };
    CaseRow {
        account_name: app
            .store
            .account(&c.account_id)
            .ok()
            .flatten()
            .map_or_else(|| c.account_id.clone(), |a| a.name),
        open: c.closed_at.is_none(),
        opened: When::new(t, c.opened_at),
        id: c.id,
        account_id: c.account_id,
        topic,
        from,
        message: c.note,
        status,
    }
}

#[derive(Template)]
#[template(path = "console/support_requests.html")]
struct SupportRequestsPage {
    c: Chrome,
    base: String,
    rows: Vec<CaseRow>,
    /// The topic picked in advance (`?topic=sell_admin` from the Sell page).
    topic: String,
    /// Members who could be the first Sell admin, while Sell has none.
    members: Vec<(String, String)>,
    message: String,
    error: Option<ErrorView>,
}

#[derive(Deserialize, Default)]
pub struct SupportQuery {
    done: Option<String>,
    #[serde(default)]
    topic: String,
}

fn requests_view(
    app: &App,
    v: &Visitor,
    who: &crate::domain::Principal,
    a: &str,
    q: &SupportQuery,
) -> Result<SupportRequestsPage, Problem> {
    let cases = query::support_cases(&app.store, who, a)?;
    let members: Vec<(String, String)> = query::sell_admin_candidates(&app.store, who, a)?
        .iter()
        .map(|u| {
            (
                u.id.clone(),
                format!("{} ({})", u.name, u.primary_address()),
            )
        })
        .collect();
    Ok(SupportRequestsPage {
        c: Chrome::new(
            v,
            &at(a, ["support"]),
            "support_requests.heading",
            q.done.as_deref(),
        ),
        base: at(a, []),
        rows: cases.into_iter().map(|c| case_row(app, v.t, c)).collect(),
        topic: if q.topic == "sell_admin" && !members.is_empty() {
            "sell_admin".into()
        } else {
            "ownership".into()
        },
        members,
        message: String::new(),
        error: None,
    })
}

pub async fn support_requests_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(q): Query<SupportQuery>,
) -> Response {
    let path = at(&a, ["support"]);
    match requests_view(&app, &v, &who, &a, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
    }
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    member_id: String,
    #[serde(default)]
    message: String,
}

pub async fn contact_support(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    PageForm(form): PageForm<ContactForm>,
) -> Response {
    let path = at(&a, ["support"]);
    if !v.csrf_ok(&form.csrf) {
        return crate::console::page::csrf_refused(&v, &path);
    }
    let submitted = app
        .submit(
            who.clone(),
            Command::ContactSupport(cmd::ContactSupport {
                account_id: a.clone(),
                topic: form.topic.clone(),
                member_id: Some(form.member_id.clone())
                    .filter(|m| !m.is_empty() && form.topic == "sell_admin"),
                message: form.message.clone(),
            }),
        )
        .await;
    match submitted {
        Ok(_) => crate::console::page::see_other(&v.flash_url(&path, "support_requests.sent")),
        // The refusal beside the form, what was typed kept.
        Err(p) => match requests_view(&app, &v, &who, &a, &SupportQuery::default()) {
            Ok(mut page) => {
                page.error = Some(ErrorView::from_problem(v.t, &p));
                page.topic = form.topic;
                page.message = form.message;
                let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::CONFLICT);
                render(&v, status, &page)
            }
            Err(_) => problem_page(&v, &path, &path, &p),
        },
    }
}
