//! What every command runs with: the time, fresh ids and secrets, the
//! policy gate and the settings ([`Ctx`]), and how its audit entry is
//! drafted (`Draft`). Imports no capability, so every capability can use it.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::command::*;
use crate::event::{GateNotes, PolicyGate, Proposal};
use crate::refusal::Refusal;
use crate::view::StateView;

/// Fresh ids and secrets. The daemon uses the OS random source; tests may
/// use a seeded one.
pub trait Entropy {
    /// An opaque id such as `usr_…`.
    fn id(&mut self, prefix: &str) -> String;
    /// A bearer secret (at least 256 bits).
    fn token(&mut self) -> String;
}

/// Durations and caps the rules apply.
#[derive(Debug, Clone)]
pub struct Settings {
    pub password_set_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub session_ttl: Duration,
    pub integrations_per_account_max: usize,
    pub members_per_account_max: u32,
    /// What invoices amount to: ISO 4217 currency, monthly seat prices in
    /// its smallest unit.
    pub currency: String,
    pub agent_seat_price_cents: u64,
    pub sell_seat_price_cents: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            password_set_ttl: Duration::hours(72),
            password_reset_ttl: Duration::hours(1),
            session_ttl: Duration::hours(12),
            integrations_per_account_max: 1000,
            members_per_account_max: 1_000_000,
            currency: "EUR".into(),
            agent_seat_price_cents: 4_900,
            sell_seat_price_cents: 1_900,
        }
    }
}

pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub entropy: &'a mut dyn Entropy,
    pub gate: &'a dyn PolicyGate,
    pub settings: &'a Settings,
}

impl Ctx<'_> {
    /// Asks the `before_` hook of `proposal`: its notes (actions asked and
    /// not carried out) when the policies allow, else the refusal
    /// `policy_denied` naming the policy, its version and its reason.
    pub(crate) fn ask(&self, proposal: &Proposal) -> Result<GateNotes, Refusal> {
        self.gate.before(proposal).map_err(|veto| {
            let refusal = Refusal::conflict(
                "policy_denied",
                format!(
                    "policy {} (version {}, {} us) denied: {}{}",
                    veto.policy,
                    veto.version,
                    veto.duration_us,
                    veto.reason,
                    ignored_note(&veto.ignored)
                ),
            );
            // The reason in the languages the pages speak, by name.
            veto.translations
                .iter()
                .fold(refusal, |refusal, (language, text)| {
                    match language.as_str() {
                        "fr" => refusal.with_arg("reason_fr", text),
                        "en" => refusal.with_arg("reason_en", text),
                        _ => refusal,
                    }
                })
        })
    }
}

/// The audit wording of actions a `before_` hook asked for and did not get.
pub(crate) fn ignored_note(ignored: &GateNotes) -> String {
    if ignored.is_empty() {
        return String::new();
    }
    format!(
        "; not carried out (before_ hooks decide, they do not act): {}",
        ignored.join(", ")
    )
}

/// Stored form of a mailed or bearer token: hex SHA-256. Tokens carry 256
/// random bits, so a fast hash is enough (no dictionary to attack).
pub fn token_hash(token: &str) -> String {
    token_hash_of(&token_digest(token))
}

/// The SHA-256 digest of a token, for a caller that compares it with a
/// digest of its own (the operator token) before looking the token up by
/// [`token_hash_of`]: one digest per request instead of one per use.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// [`token_hash`] of a token whose digest is already known: its lowercase
/// hex, written from a table into one buffer (`hex::encode` goes through a
/// `char` iterator, and pushing `char`s checks the capacity and encodes
/// each one: together a third of a bearer check's own work).
pub fn token_hash_of(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    token_hash_in(digest, &mut out).to_string()
}

/// [`token_hash_of`] written into `out`, for a lookup that needs no
/// `String` of its own (every bearer check).
pub fn token_hash_in<'a>(digest: &[u8; 32], out: &'a mut [u8; 64]) -> &'a str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    // Always ASCII: the check cannot fail.
    std::str::from_utf8(out).unwrap_or_default()
}

pub(crate) struct Draft<'a> {
    pub actor: &'a Principal,
    pub action: &'static str,
    pub now: DateTime<Utc>,
}

impl Draft<'_> {
    pub(crate) fn ok(
        &self,
        account_id: &str,
        target: String,
        detail: impl Into<String>,
    ) -> Option<AuditDraft> {
        Some(AuditDraft {
            account_id: account_id.to_string(),
            actor: self.actor.audit_name(),
            action: self.action.to_string(),
            target,
            outcome: "ok".into(),
            detail: detail.into(),
            at: self.now,
            cause: None,
        })
    }
}

/// The trait every command type implements, in its capability's module:
/// what the audit log says of it, the before-hook it asks, and its decision.
/// Crate-private: the rest of the daemon sees commands through `Command`.
pub(crate) trait Decide {
    /// The `before_` hook running it may ask (the policy gate): every
    /// command that changes people or money asks one.
    const BEFORE_HOOK: Option<&'static str> = None;
    /// The audit log's view of the command. Allocates nothing.
    fn info(&self) -> CommandInfo<'_>;
    /// Runs the command against the state in `view`.
    fn decide(self, view: &dyn StateView, ctx: &mut Ctx, draft: &Draft)
        -> Result<Outcome, Refusal>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bearer or mailed token is stored as the hex of its SHA-256
    /// digest; the table-driven hex must stay byte for byte what was
    /// stored before it (`hex::encode`), or every live session and link
    /// would stop matching.
    #[test]
    fn a_tokens_stored_hash_is_the_hex_of_its_digest() {
        for token in ["", "a", "operator-token", "é€𝄞", &"x".repeat(300)] {
            let digest = token_digest(token);
            assert_eq!(
                token_hash_of(&digest),
                hex::encode(Sha256::digest(token.as_bytes()))
            );
            assert_eq!(token_hash(token), hex::encode(digest));
        }
    }
}
