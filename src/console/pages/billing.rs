//! Billing, the owner's alone (R02).

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
use crate::console::page::{render, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command};

use super::common::*;

#[derive(Template)]
#[template(path = "console/billing.html")]
struct BillingPage {
    c: Chrome,
    base: String,
    allowed: bool,
    seats_line: String,
    seats_total: u32,
    sell_seats: u32,
    payment: Option<String>,
    invoices: Vec<(String, String, String)>,
    error: Option<ErrorView>,
}

pub async fn billing_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["billing"]);
    let mut page = BillingPage {
        c: Chrome::new(&v, &path, "billing.heading", f.done.as_deref()),
        base: at(&a, []),
        allowed: false,
        seats_line: String::new(),
        seats_total: 0,
        sell_seats: 0,
        payment: None,
        invoices: Vec::new(),
        error: None,
    };
    let loaded = (|| -> Result<(), Problem> {
        let payment = query::payment_method(&app.store, &who, &a)?;
        let invoices = query::invoices(&app.store, &who, &a)?;
        let summary = query::account_summary(&app.store, &who, &a, chrono::Utc::now())?;
        page.allowed = true;
        page.payment = payment.map(|p| format!("{} •••• {}", p.kind, p.last4));
        page.invoices = invoices
            .into_iter()
            .map(|i| {
                (
                    i.issued_at.format("%Y-%m-%d").to_string(),
                    i.description,
                    format!("{} seats", i.support_seats),
                )
            })
            .collect();
        page.seats_total = summary.account.support_seats_bought;
        page.sell_seats = summary.account.sell.seats_bought;
        page.seats_line =
            v.t.s("members.seats")
                .replace("{used}", &summary.support.seats_used.to_string())
                .replace("{total}", &summary.support.seats_total.to_string());
        Ok(())
    })();
    match loaded {
        Ok(()) => render(&v, StatusCode::OK, &page),
        // Not the owner: the page says why, in words (R02).
        Err(p) => {
            page.error = Some(ErrorView::from_problem(v.t, &p));
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::FORBIDDEN);
            render(&v, status, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct SeatsForm {
    #[serde(default)]
    csrf: String,
    support_seats: Option<u32>,
    sell_seats: Option<u32>,
}

pub async fn set_seats(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<SeatsForm>,
) -> Response {
    let back = at(&a, ["billing"]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "billing.seats_set", |_| {
        Ok(Command::SetSeats(cmd::SetSeats {
            account_id,
            support_seats: Some(
                form.support_seats
                    .ok_or_else(|| Problem::bad_request("give a number of seats"))?,
            ),
            sell_seats: form.sell_seats,
        }))
    })
    .await
}
