//! Billing: seats bought and the payment method, the owner's alone (R05, R11, R21).

use serde::{Deserialize, Serialize};

use crate::access::*;
use crate::command::*;
use crate::context::{ignored_note, Ctx, Decide, Draft};
use crate::event::Proposal;
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSeats {
    pub account_id: AccountId,
    pub support_seats: Option<u32>,
    pub sell_seats: Option<u32>,
}

impl Decide for SetSeats {
    const BEFORE_HOOK: Option<&'static str> = Some("before_seat_change");
    fn info(&self) -> CommandInfo<'_> {
        let SetSeats { account_id, .. } = self;
        CommandInfo::of(
            "billing.set_seats",
            Some(account_id),
            Target::Account(account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let SetSeats {
            account_id,
            support_seats,
            sell_seats,
        } = self;
        set_seats(view, ctx, draft, account_id, support_seats, sell_seats)
    }
}

pub(crate) fn set_seats(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    support_seats: Option<u32>,
    sell_seats: Option<u32>,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    let (mut account, _) = member_with(view, actor, &account_id, Need::Billing)?;
    if support_seats.is_none() && sell_seats.is_none() {
        return Err(Refusal::invalid("give support_seats, sell_seats or both"));
    }
    let before = (account.support_seats_bought, account.sell.seats_bought);
    if let Some(n) = support_seats {
        let n = validate::seats("support_seats", n)?;
        // R11: never fewer seats than are in use.
        if n < account.support_seats_used {
            return Err(Refusal::conflict(
                "seats_in_use",
                format!(
                    "{} agent seats are in use; free seats before buying fewer",
                    account.support_seats_used
                ),
            ));
        }
        account.support_seats_bought = n;
    }
    if let Some(n) = sell_seats {
        let n = validate::seats("sell_seats", n)?;
        if n < account.sell.seats_used {
            return Err(Refusal::conflict(
                "seats_in_use",
                format!(
                    "{} Sell seats are in use; free seats before buying fewer",
                    account.sell.seats_used
                ),
            ));
        }
        account.sell.seats_bought = n;
        // R21: buying Sell seats adds Sell to the subscription.
        if n > 0 {
            account.sell.status = SellStatus::Active;
        }
    }
    // `before_seat_change`, once per product whose seats change.
    let mut ignored = Vec::new();
    for (product, from, to) in [
        ("support", before.0, account.support_seats_bought),
        ("sell", before.1, account.sell.seats_bought),
    ] {
        if from != to {
            ignored.extend(ctx.ask(&Proposal::SeatChange {
                account_id: account_id.clone(),
                actor_id: actor_id(actor),
                product: product.to_string(),
                seats_from: from,
                seats_to: to,
            })?);
        }
    }
    let invoice = Invoice {
        id: ctx.entropy.id("inv"),
        account_id: account_id.clone(),
        issued_at: now,
        description: "seat change".into(),
        support_seats: account.support_seats_bought,
        sell_seats: account.sell.seats_bought,
        amount_cents: u64::from(account.support_seats_bought)
            .saturating_mul(ctx.settings.agent_seat_price_cents)
            .saturating_add(
                u64::from(account.sell.seats_bought)
                    .saturating_mul(ctx.settings.sell_seat_price_cents),
            ),
        currency: ctx.settings.currency.clone(),
    };
    // The invoice goes to the owner and the billing contacts.
    let owner = view.user(&account_id, &account.owner_id)?;
    let notices = owner
        .iter()
        .map(|o| o.primary_address().to_string())
        .chain(account.billing_contacts.iter().cloned())
        .map(|to| Notice::InvoiceIssued {
            to,
            account_id: account_id.clone(),
            account_name: account.name.clone(),
            support_seats: invoice.support_seats,
            sell_seats: invoice.sell_seats,
            amount_cents: invoice.amount_cents,
            currency: invoice.currency.clone(),
        })
        .collect();
    Ok(Outcome {
        changes: vec![
            Change::PutAccount(account.clone()),
            Change::PutInvoice(invoice),
        ],
        notices,
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("account:{account_id}"),
            format!(
                "support seats {}, sell seats {}{}",
                account.support_seats_bought,
                account.sell.seats_bought,
                ignored_note(&ignored)
            ),
        ),
        reply: Reply::Account(account),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPaymentMethod {
    pub account_id: AccountId,
    pub kind: String,
    pub last4: String,
}

impl Decide for SetPaymentMethod {
    fn info(&self) -> CommandInfo<'_> {
        let SetPaymentMethod { account_id, .. } = self;
        CommandInfo::of(
            "billing.set_payment_method",
            Some(account_id),
            Target::Account(account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let SetPaymentMethod {
            account_id,
            kind,
            last4,
        } = self;
        set_payment_method(view, ctx, draft, account_id, kind, last4)
    }
}

pub(crate) fn set_payment_method(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    kind: String,
    last4: String,
) -> Result<Outcome, Refusal> {
    let actor = draft.actor;
    let now = ctx.now;
    let (mut account, _) = member_with(view, actor, &account_id, Need::Billing)?;
    let kind = validate::name("kind", &kind)?;
    if last4.len() != 4 || !last4.chars().all(|c| c.is_ascii_digit()) {
        return Err(Refusal::invalid("last4 must be exactly four digits"));
    }
    account.payment_method = Some(PaymentMethod {
        kind,
        last4,
        updated_at: now,
    });
    Ok(Outcome {
        changes: vec![Change::PutAccount(account.clone())],
        notices: vec![],
        events: vec![],
        audit: draft.ok(
            &account_id,
            format!("account:{account_id}"),
            "payment method updated",
        ),
        reply: Reply::Account(account),
    })
}

/// Billing contacts an account may have.
pub const BILLING_CONTACTS_MAX: usize = 5;

/// Who receives the invoices besides the owner (the article's
/// "Facturation > Contacts"): the owner's, like the rest of billing (R05).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBillingContacts {
    pub account_id: AccountId,
    pub contacts: Vec<String>,
}

impl Decide for SetBillingContacts {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "billing.set_contacts",
            Some(&self.account_id),
            Target::Account(&self.account_id),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        _ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let SetBillingContacts {
            account_id,
            contacts,
        } = self;
        let (mut account, _) = member_with(view, draft.actor, &account_id, Need::Billing)?;
        if contacts.len() > BILLING_CONTACTS_MAX {
            return Err(Refusal::invalid(format!(
                "at most {BILLING_CONTACTS_MAX} billing contacts"
            )));
        }
        let mut checked: Vec<String> = Vec::with_capacity(contacts.len());
        for contact in &contacts {
            let address = validate::email("contacts", contact)?;
            if !checked.iter().any(|c| c.eq_ignore_ascii_case(&address)) {
                checked.push(address);
            }
        }
        if account.billing_contacts == checked {
            return Ok(Outcome::unchanged(Reply::Account(account)));
        }
        account.billing_contacts = checked;
        Ok(Outcome {
            changes: vec![Change::PutAccount(account.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &account_id,
                format!("account:{account_id}"),
                format!("billing contacts: {}", account.billing_contacts.join(", ")),
            ),
            reply: Reply::Account(account),
        })
    }
}
