//! Billing, the owner's alone (R05, R11, R21).

use crate::domain::cmd;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::Json;
use crate::domain::{query, Command, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invoices))
        .routes(routes!(get_payment_method, set_payment_method))
        .routes(routes!(set_seats))
        .routes(routes!(get_billing_contacts, set_billing_contacts))
}

/// Who receives the invoices besides the owner (the owner's, R05).
#[utoipa::path(get, path = "/v1/accounts/{a}/billing/contacts", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = BillingContacts), Errors), security(("bearer" = [])))]
async fn get_billing_contacts(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<BillingContacts>> {
    Ok(axum::Json(BillingContacts {
        contacts: query::billing_contacts(&app.store, &who, &a)?,
    }))
}

/// Replaces the billing contacts (at most 5; the owner's, R05).
#[utoipa::path(put, path = "/v1/accounts/{a}/billing/contacts", tag = "billing", request_body = BillingContacts,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = BillingContacts), Errors), security(("bearer" = [])))]
async fn set_billing_contacts(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<BillingContacts>,
) -> ApiResult<axum::Json<BillingContacts>> {
    let reply = app
        .submit(
            who,
            Command::SetBillingContacts(cmd::SetBillingContacts {
                account_id: a,
                contacts: body.contacts,
            }),
        )
        .await?;
    match reply {
        Reply::Account(account) => Ok(axum::Json(BillingContacts {
            contacts: account.billing_contacts,
        })),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(get, path = "/v1/accounts/{a}/billing/invoices", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = InvoiceList), Errors), security(("bearer" = [])))]
async fn list_invoices(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<InvoiceList>> {
    let items = query::invoices(&app.store, &who, &a)?
        .into_iter()
        .map(|i| InvoiceOut {
            id: i.id,
            issued_at: i.issued_at,
            description: i.description,
            support_seats: i.support_seats,
            sell_seats: i.sell_seats,
            amount_cents: i.amount_cents,
            currency: i.currency,
        })
        .collect();
    Ok(axum::Json(InvoiceList { items }))
}

#[utoipa::path(get, path = "/v1/accounts/{a}/billing/payment-method", tag = "billing", params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = PaymentMethodAnswer), Errors), security(("bearer" = [])))]
async fn get_payment_method(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
) -> ApiResult<axum::Json<PaymentMethodAnswer>> {
    Ok(axum::Json(
        query::payment_method(&app.store, &who, &a)?.into(),
    ))
}

#[utoipa::path(put, path = "/v1/accounts/{a}/billing/payment-method", tag = "billing", request_body = PaymentMethodRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = PaymentMethodAnswer), Errors), security(("bearer" = [])))]
async fn set_payment_method(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<PaymentMethodRequest>,
) -> ApiResult<axum::Json<PaymentMethodAnswer>> {
    let reply = app
        .submit(
            who,
            Command::SetPaymentMethod(cmd::SetPaymentMethod {
                account_id: a,
                kind: body.kind,
                last4: body.last4,
            }),
        )
        .await?;
    match reply {
        Reply::Account(acc) => Ok(axum::Json(acc.payment_method.into())),
        other => Err(unexpected(other)),
    }
}

/// Changes seat totals (R11: never below seats in use; R21: Sell seats activate Sell).
#[utoipa::path(put, path = "/v1/accounts/{a}/billing/seats", tag = "billing", request_body = SeatsRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 200, body = AccountOut), Errors), security(("bearer" = [])))]
async fn set_seats(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<SeatsRequest>,
) -> ApiResult<axum::Json<AccountOut>> {
    let reply = app
        .submit(
            who.clone(),
            Command::SetSeats(cmd::SetSeats {
                account_id: a.clone(),
                support_seats: body.support_seats,
                sell_seats: body.sell_seats,
            }),
        )
        .await?;
    account_out(reply)
}
