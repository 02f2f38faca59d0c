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
    invoices: Vec<InvoiceRow>,
    /// The billing contacts, one per line in their field.
    contacts: String,
    /// What the subscription amounts to a month now.
    monthly: String,
    error: Option<ErrorView>,
}

pub struct InvoiceRow {
    issued: crate::console::page::When,
    description: String,
    seats: String,
    amount: String,
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
        contacts: String::new(),
        monthly: String::new(),
        error: None,
    };
    let loaded = (|| -> Result<(), Problem> {
        let payment = query::payment_method(&app.store, &who, &a)?;
        let invoices = query::invoices(&app.store, &who, &a)?;
        let summary = query::account_summary(&app.store, &who, &a, chrono::Utc::now())?;
        page.allowed = true;
        page.payment = payment.map(|p| format!("{} •••• {}", p.kind, p.last4));
        let t = v.t;
        let money = |cents: u64, currency: &str| crate::mail::money(cents, currency, t.lang);
        page.invoices = invoices
            .into_iter()
            .map(|i| InvoiceRow {
                issued: crate::console::page::When::day(t, i.issued_at),
                description: t.s("billing.seat_change").to_string(),
                seats: t.fill(
                    "billing.invoice_seats",
                    &[
                        ("agents", &i.support_seats.to_string()),
                        ("sell", &i.sell_seats.to_string()),
                    ],
                ),
                amount: if i.currency.is_empty() {
                    "—".to_string()
                } else {
                    t.fill(
                        "billing.per_month",
                        &[("amount", &money(i.amount_cents, &i.currency))],
                    )
                },
            })
            .collect();
        page.contacts = query::billing_contacts(&app.store, &who, &a)?.join("\n");
        let s = &app.settings;
        page.monthly = t.fill(
            "billing.monthly",
            &[
                (
                    "amount",
                    &money(
                        u64::from(summary.account.support_seats_bought)
                            .saturating_mul(s.agent_seat_price_cents)
                            .saturating_add(
                                u64::from(summary.account.sell.seats_bought)
                                    .saturating_mul(s.sell_seat_price_cents),
                            ),
                        &s.currency,
                    ),
                ),
                ("agent_price", &money(s.agent_seat_price_cents, &s.currency)),
                ("sell_price", &money(s.sell_seat_price_cents, &s.currency)),
            ],
        );
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
            let mut error = ErrorView::from_problem(v.t, &p);
            // Who can act, by name (R05: the owner).
            if p.code == "billing_owner_only" {
                if let Ok(owner) = query::owner(&app.store, &who, &a) {
                    error.detail = v.t.fill(
                        "billing.ask_owner",
                        &[
                            ("owner", &owner.user.name),
                            ("email", owner.user.primary_address()),
                        ],
                    );
                }
            }
            page.error = Some(error);
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

#[derive(Deserialize)]
pub struct PaymentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    last4: String,
}

/// The payment method as the platform's payment provider reports it: its
/// kind and the last four digits (admind never sees a full card number).
pub async fn set_payment_method(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<PaymentForm>,
) -> Response {
    let back = at(&a, ["billing"]);
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "billing.payment_set",
        |_| {
            Ok(Command::SetPaymentMethod(cmd::SetPaymentMethod {
                account_id,
                kind: form.kind,
                last4: form.last4.trim().to_string(),
            }))
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct ContactsForm {
    #[serde(default)]
    csrf: String,
    /// One address per line (or separated by commas).
    #[serde(default)]
    contacts: String,
}

pub async fn set_billing_contacts(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<ContactsForm>,
) -> Response {
    let back = at(&a, ["billing"]);
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "billing.contacts_set",
        |_| {
            if form.contacts.len() > 5_000 {
                return Err(Problem::bad_request("the contacts are too long"));
            }
            Ok(Command::SetBillingContacts(cmd::SetBillingContacts {
                account_id,
                contacts: form
                    .contacts
                    .split(['\n', ','])
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
            }))
        },
    )
    .await
}
