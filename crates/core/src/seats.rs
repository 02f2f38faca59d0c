//! Seat counting: taking and giving back Support and Sell seats (R09-R11, R25).

use chrono::{DateTime, Utc};

use crate::command::*;
use crate::event::*;
use crate::model::*;
use crate::refusal::Refusal;

/// Takes one agent seat or refuses (R09, R11): used never exceeds owned.
pub(crate) fn take_support_seat(
    account: &mut Account,
    actor: &Principal,
    now: DateTime<Utc>,
    attempt: &str,
) -> Result<(), Refusal> {
    if account.support_seats_used >= account.support_seats_total(now) {
        return Err(seat_exhausted(account, actor, now, attempt));
    }
    account.support_seats_used += 1;
    Ok(())
}

pub(crate) fn seat_exhausted(
    account: &Account,
    actor: &Principal,
    now: DateTime<Utc>,
    attempt: &str,
) -> Refusal {
    let total = account.support_seats_total(now);
    Refusal::conflict(
        "agent_seat_exhausted",
        format!(
            "every agent seat is taken ({} of {total}); buy seats, free one, or ask platform support for temporary seats",
            account.support_seats_used
        ),
    )
    .with_arg("used", account.support_seats_used)
    .with_arg("total", total)
    .with_event(DomainEvent::AgentSeatExhausted {
        account_id: account.id.clone(),
        actor_id: actor.user_id().unwrap_or("").to_string(),
        seats_total: total,
        seats_used: account.support_seats_used,
        attempt: attempt.to_string(),
    })
}

pub(crate) fn sell_seat(
    account: &mut Account,
    actor: &Principal,
    now: DateTime<Utc>,
    attempt: &str,
) -> Result<(), Refusal> {
    let total = account.sell_seats_total(now);
    if account.sell.seats_used >= total {
        return Err(Refusal::conflict(
            "sell_seat_exhausted",
            format!(
                "every Sell seat is taken ({} of {total}); buy Sell seats, free one, or ask platform support for temporary seats",
                account.sell.seats_used
            ),
        )
        .with_arg("used", account.sell.seats_used)
        .with_arg("total", total)
        .with_event(DomainEvent::SellSeatExhausted {
            account_id: account.id.clone(),
            actor_id: actor.user_id().unwrap_or("").to_string(),
            seats_total: total,
            seats_used: account.sell.seats_used,
            attempt: attempt.to_string(),
        }));
    }
    account.sell.seats_used += 1;
    Ok(())
}

/// Frees what an active member holds when they leave or are deactivated:
/// their agent seat, their Sell seat and their place among the Sell admins
/// (R24: never the last one). A deactivated member holds none of them.
pub(crate) fn free_seats(account: &mut Account, user: &User) -> Result<(), Refusal> {
    if !user.is_active() {
        return Ok(());
    }
    if user.sell_role == SellRole::Admin {
        if account.sell.admin_count <= 1 {
            return Err(Refusal::conflict(
                "last_sell_admin",
                "this member is the last Sell admin; make someone else Sell admin first",
            ));
        }
        give_back(&mut account.sell.admin_count, "Sell admins")?;
    }
    if user.holds_support_seat() {
        give_back(&mut account.support_seats_used, "support seats used")?;
    }
    if user.holds_sell_seat() {
        give_back(&mut account.sell.seats_used, "Sell seats used")?;
    }
    Ok(())
}

/// Gives back one unit of a counter the core keeps in step with the members
/// (seats used, Sell admins, members). Below zero the counter has drifted
/// from what the members hold: a bug to surface (the command fails and
/// commits nothing), not to hide by saturating.
pub(crate) fn give_back(counter: &mut u32, what: &str) -> Result<(), Refusal> {
    *counter = counter
        .checked_sub(1)
        .ok_or_else(|| Refusal::broken(format!("{what} would go below zero")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_below_zero_is_a_bug_surfaced_not_saturated() {
        let mut used = 1;
        give_back(&mut used, "seats").unwrap();
        assert_eq!(used, 0);
        let refused = give_back(&mut used, "seats").unwrap_err();
        assert_eq!(refused.kind, crate::RefusalKind::Broken);
        assert_eq!(used, 0, "nothing changed");
    }
}
