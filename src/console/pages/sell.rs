//! Sell: the trial, Sell users and roles (R20–R24).

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::AppState;
use crate::console::page::{problem_page, render, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command};

use super::common::*;

pub struct SellRow {
    id: String,
    name: String,
    role: &'static str,
    role_value: &'static str,
}

#[derive(Template)]
#[template(path = "console/sell.html")]
struct SellPage {
    c: Chrome,
    base: String,
    status_line: String,
    not_started: bool,
    seats_line: String,
    no_admin: bool,
    rows: Vec<SellRow>,
    others: Vec<(String, String)>,
    error: Option<ErrorView>,
}

pub async fn sell_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    use crate::domain::{SellRole, SellStatus};
    let path = at(&a, ["sell"]);
    let t = v.t;
    let loaded = (|| -> Result<SellPage, Problem> {
        let users = query::sell_users(&app.store, &who, &a)?;
        let summary = query::account_summary(&app.store, &who, &a, chrono::Utc::now())?;
        let members = query::members(&app.store, &who, &a, None, Some(query::PAGE_LIMIT_MAX))?;
        let status = match summary.sell_status {
            SellStatus::NotStarted => t.s("sell.status.not_started"),
            SellStatus::Trial => t.s("sell.status.trial"),
            SellStatus::Active => t.s("sell.status.active"),
        };
        Ok(SellPage {
            c: Chrome::new(&v, &path, "sell.heading", f.done.as_deref()),
            base: at(&a, []),
            status_line: t.s("sell.status").replace("{status}", status),
            not_started: summary.sell_status == SellStatus::NotStarted,
            seats_line: t
                .s("sell.seats")
                .replace("{used}", &summary.sell.seats_used.to_string())
                .replace("{total}", &summary.sell.seats_total.to_string()),
            no_admin: summary.sell_status != SellStatus::NotStarted
                && summary.account.sell.admin_count == 0,
            rows: users
                .into_iter()
                .map(|m| SellRow {
                    id: m.user.id.clone(),
                    name: m.user.name.clone(),
                    role: if m.user.sell_role == SellRole::Admin {
                        t.s("sell.role.admin")
                    } else {
                        t.s("sell.role.user")
                    },
                    role_value: if m.user.sell_role == SellRole::Admin {
                        "admin"
                    } else {
                        "user"
                    },
                })
                .collect(),
            others: members
                .items
                .into_iter()
                .filter(|m| m.user.sell_role == SellRole::None)
                .map(|m| (m.user.id.clone(), m.user.name.clone()))
                .collect(),
            error: None,
        })
    })();
    match loaded {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
    }
}

pub async fn start_trial(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = at(&a, ["sell"]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.started", |_| {
        Ok(Command::StartSellTrial(cmd::StartSellTrial { account_id }))
    })
    .await
}

#[derive(Deserialize)]
pub struct SellUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_id: String,
    role: Option<crate::domain::SellRole>,
}

pub async fn grant_sell(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<SellUserForm>,
) -> Response {
    let back = at(&a, ["sell"]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.granted", |_| {
        Ok(Command::GrantSell(cmd::GrantSell {
            account_id,
            user_id: form.user_id,
            role: form.role.unwrap_or(crate::domain::SellRole::User),
        }))
    })
    .await
}

#[derive(Deserialize)]
pub struct SellRoleForm {
    #[serde(default)]
    csrf: String,
    role: Option<crate::domain::SellRole>,
    #[serde(default)]
    confirmed: String,
}

pub async fn change_sell_role(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<SellRoleForm>,
) -> Response {
    let back = at(&a, ["sell"]);
    // `none` is not a Sell role to change to (the core refuses it): no
    // confirmation to ask.
    if let (false, Some(role @ (crate::domain::SellRole::User | crate::domain::SellRole::Admin))) =
        (confirmed(&form.confirmed), form.role)
    {
        let key = format!("sell.role.{}", role.as_str());
        let label = v.t.s(&key);
        let what =
            v.t.s("confirm.change_sell_role")
                .replace("{name}", &member_name(&app, &a, &u))
                .replace("{role}", label);
        return confirm_first(
            &v,
            &at(&a, ["sell", "users", &u, "role"]),
            &back,
            what,
            &[("role", role.as_str())],
        );
    }
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.role_changed", |_| {
        Ok(Command::ChangeSellRole(cmd::ChangeSellRole {
            account_id,
            user_id: u,
            role: form
                .role
                .ok_or_else(|| Problem::bad_request("pick a Sell role"))?,
        }))
    })
    .await
}

pub async fn remove_sell(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = at(&a, ["sell"]);
    if !confirmed(&form.confirmed) {
        let what =
            v.t.s("confirm.remove_sell")
                .replace("{name}", &member_name(&app, &a, &u));
        return confirm_first(
            &v,
            &at(&a, ["sell", "users", &u, "remove"]),
            &back,
            what,
            &[],
        );
    }
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.removed", |_| {
        Ok(Command::RemoveSell(cmd::RemoveSell {
            account_id,
            user_id: u,
        }))
    })
    .await
}
