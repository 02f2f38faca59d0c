//! Request and response bodies of the HTTP contract (docs/api.md). Requests deny
//! unknown fields; responses are built from the core's answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::query::{AccountSummary, MemberView};
use crate::domain::*;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOwner {
    pub name: String,
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    pub name: String,
    pub owner: NewOwner,
    /// Agent seats bought; at least 1 (the owner holds one).
    pub support_seats: u32,
    /// The language of the account's mails, `en` or `fr`; absent: the
    /// platform's default (`[mail] default_language`).
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LanguageRequest {
    /// `en` or `fr`; `null`: the platform's default.
    pub language: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatsOut {
    pub seats_total: u32,
    pub seats_used: u32,
}

#[derive(Serialize, ToSchema)]
pub struct SellOut {
    /// `not_started`, `trial` or `active`.
    #[schema(value_type = String)]
    pub status: SellStatus,
    pub seats_total: u32,
    pub seats_used: u32,
}

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub created_at: DateTime<Utc>,
    pub support: SeatsOut,
    pub sell: SellOut,
    /// The language of its mails (`en`, `fr`); `null`: the platform's
    /// default.
    pub language: Option<String>,
}

impl From<AccountSummary> for AccountOut {
    fn from(s: AccountSummary) -> Self {
        AccountOut {
            id: s.account.id,
            name: s.account.name,
            owner_id: s.account.owner_id,
            created_at: s.account.created_at,
            support: SeatsOut {
                seats_total: s.support.seats_total,
                seats_used: s.support.seats_used,
            },
            sell: SellOut {
                status: s.sell_status,
                seats_total: s.sell.seats_total,
                seats_used: s.sell.seats_used,
            },
            language: s.account.language,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub id: String,
    pub name: String,
    pub primary_email: String,
    pub email_verified: bool,
    /// `end_user`, `agent` or `admin`.
    #[schema(value_type = String)]
    pub role: SupportRole,
    /// `Administrator (owner)`, `Administrator`, `Agent` or `End user`.
    pub role_label: String,
    pub is_owner: bool,
    /// `none`, `user` or `admin`.
    #[schema(value_type = String)]
    pub sell_role: SellRole,
    /// False once deactivated (by the account's directory or an admin): no
    /// seat held, no sign-in; profile and roles kept.
    pub active: bool,
    /// The directory's id of this person (SCIM `externalId`), if it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The member's last sign-in, to the day; `null`: never (or not since
    /// this was recorded).
    pub last_signed_in_at: Option<DateTime<Utc>>,
}

impl From<MemberView> for MemberOut {
    fn from(m: MemberView) -> Self {
        MemberOut {
            active: m.user.is_active(),
            external_id: m.user.external_id.clone(),
            primary_email: m.user.primary_address().to_string(),
            email_verified: m.user.primary_verified(),
            id: m.user.id.clone(),
            name: m.user.name.clone(),
            role: m.user.support_role,
            role_label: m.role_label.to_string(),
            is_owner: m.is_owner,
            sell_role: m.user.sell_role,
            last_signed_in_at: m.user.last_signed_in_at,
        }
    }
}

/// A page of the team list written as [`MemberList`] (same fields, same
/// order, byte for byte: tested against it), straight from the members the
/// read cache shares. No [`MemberOut`] is built and serde is not asked to
/// escape the field names again for every member: the most read list of
/// the API costs a third less this way (benches/analysis.md).
pub struct MemberListJson<'a> {
    pub items: &'a [MemberView],
    pub next: Option<&'a str>,
}

impl MemberListJson<'_> {
    /// The JSON text, appended to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"items\":[");
        for (i, m) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_member(out, m);
        }
        out.extend_from_slice(b"],\"next\":");
        match self.next {
            Some(next) => write_json_str(out, next),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// The object's opening and the three fields a member and the owner both
/// begin with, in their documented order.
fn write_identity(out: &mut Vec<u8>, u: &User) {
    out.extend_from_slice(b"{\"id\":");
    write_json_str(out, &u.id);
    out.extend_from_slice(b",\"name\":");
    write_json_str(out, &u.name);
    out.extend_from_slice(b",\"primary_email\":");
    write_json_str(out, u.primary_address());
}

fn write_member(out: &mut Vec<u8>, m: &MemberView) {
    let u = &m.user;
    // Each piece is a constant of its own, even where a value picks one
    // (a flag, a role): a constant length is copied inline, a length known
    // only at run time is a `memcpy` call (five a member before).
    write_identity(out, u);
    out.extend_from_slice(b",\"email_verified\":");
    put_flag(out, u.primary_verified());
    match u.support_role {
        SupportRole::EndUser => out.extend_from_slice(b",\"role\":\"end_user\",\"role_label\":"),
        SupportRole::Agent => out.extend_from_slice(b",\"role\":\"agent\",\"role_label\":"),
        SupportRole::Admin => out.extend_from_slice(b",\"role\":\"admin\",\"role_label\":"),
    }
    write_json_str(out, m.role_label);
    out.extend_from_slice(b",\"is_owner\":");
    put_flag(out, m.is_owner);
    match u.sell_role {
        SellRole::None => out.extend_from_slice(b",\"sell_role\":\"none\",\"active\":"),
        SellRole::User => out.extend_from_slice(b",\"sell_role\":\"user\",\"active\":"),
        SellRole::Admin => out.extend_from_slice(b",\"sell_role\":\"admin\",\"active\":"),
    }
    put_flag(out, u.is_active());
    if let Some(id) = &u.external_id {
        out.extend_from_slice(b",\"external_id\":");
        write_json_str(out, id);
    }
    out.extend_from_slice(b",\"last_signed_in_at\":");
    match u.last_signed_in_at {
        Some(at) => {
            out.push(b'"');
            out.extend_from_slice(
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// A JSON boolean, each spelling a constant copy.
#[inline(always)]
fn put_flag(out: &mut Vec<u8>, value: bool) {
    if value {
        out.extend_from_slice(b"true");
    } else {
        out.extend_from_slice(b"false");
    }
}

/// `text` as a JSON string: copied whole when nothing in it needs escaping
/// (ids, most names and addresses), else written by serde_json.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if !needs_json_escape(text.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Whether `bytes` hold one JSON escapes: a quote, a backslash or a control
/// character. Looked at 16 bytes at a time, each block whole (no early exit
/// inside it), which the compiler turns into a few vector compares: byte by
/// byte this check was a fifth of a team list's instructions. The rest of a
/// long string is its last 16 bytes, overlapping the blocks before, and a
/// string of 8 to 15 bytes is two overlapping 8-byte words: no copy of a
/// tail into a padded block (a `memcpy` call for each of the four strings
/// of every member).
fn needs_json_escape(bytes: &[u8]) -> bool {
    let len = bytes.len();
    if len >= 16 {
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            if block_needs_escape(block) {
                return true;
            }
        }
        return !blocks.remainder().is_empty() && block_needs_escape(&bytes[len - 16..]);
    }
    if len >= 8 {
        let mut first = [0u8; 8];
        let mut last = [0u8; 8];
        first.copy_from_slice(&bytes[..8]);
        last.copy_from_slice(&bytes[len - 8..]);
        return word_needs_escape(first) | word_needs_escape(last);
    }
    block_needs_escape(bytes)
}

fn byte_needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Whether any of `bytes` needs escaping, every byte looked at (a block of
/// 16, or a string shorter than 8).
fn block_needs_escape(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(false, |any, &b| any | byte_needs_escape(b))
}

/// [`byte_needs_escape`] for any of eight bytes at once: the classic
/// "has a byte less than n" and "has a zero byte" word tricks, exact about
/// whether one exists (not about which).
fn word_needs_escape(word: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES * 0x80;
    let w = u64::from_ne_bytes(word);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) != 0
}

#[derive(Serialize, ToSchema)]
pub struct OwnerOut {
    pub id: String,
    pub name: String,
    pub primary_email: String,
    pub role_label: String,
}

/// The owner written as [`OwnerOut`] (same fields, same order, byte for
/// byte: tested against it) straight from the shared user, as
/// [`MemberListJson`] writes the team list: the API's most read answer.
pub struct OwnerJson<'a>(pub &'a MemberView);

impl OwnerJson<'_> {
    /// The JSON text, appended to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_identity(out, &self.0.user);
        out.extend_from_slice(b",\"role_label\":");
        write_json_str(out, self.0.role_label);
        out.push(b'}');
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberOut>,
    /// Cursor for the next page (`after=`), absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<AccountOut>,
    /// Cursor for the next page (`after=`), absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountListQuery {
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
    /// Only accounts whose name contains this (any case). A page looks
    /// through at most 10,000 accounts; follow `next` for more.
    pub q: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Sequence number from the previous page's `next`.
    pub after: Option<u64>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub name: String,
    pub email: String,
    /// `end_user`, `agent` or `admin`.
    #[schema(value_type = String)]
    pub role: SupportRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    #[schema(value_type = String)]
    pub role: SupportRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// 1 to 200 characters.
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub user_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatsRequest {
    pub support_seats: Option<u32>,
    pub sell_seats: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodRequest {
    /// e.g. `card`.
    pub kind: String,
    pub last4: String,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentMethodOut {
    pub kind: String,
    pub last4: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentMethodAnswer {
    pub payment_method: Option<PaymentMethodOut>,
}

impl From<Option<PaymentMethod>> for PaymentMethodAnswer {
    fn from(p: Option<PaymentMethod>) -> Self {
        PaymentMethodAnswer {
            payment_method: p.map(|p| PaymentMethodOut {
                kind: p.kind,
                last4: p.last4,
                updated_at: p.updated_at,
            }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InvoiceOut {
    pub id: String,
    pub issued_at: DateTime<Utc>,
    pub description: String,
    pub support_seats: u32,
    pub sell_seats: u32,
    /// What it amounts to a month, in the currency's smallest unit (0 with
    /// an empty `currency` for invoices issued before amounts were kept).
    pub amount_cents: u64,
    /// ISO 4217 code (`[billing] currency`).
    pub currency: String,
}

/// Who receives the invoices besides the owner.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingContacts {
    /// At most 5 addresses.
    pub contacts: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InvoiceList {
    pub items: Vec<InvoiceOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIntegrationRequest {
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScimTokenRequest {
    /// What the admins call it: the directory's name ("Okta"), shown in the
    /// audit log as the actor of its changes.
    pub name: String,
}

/// A directory token as listed: never the token itself.
#[derive(Serialize, ToSchema)]
pub struct ScimTokenOut {
    pub id: String,
    pub name: String,
    /// The admin whose powers it acts with.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// To ten minutes.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ScimToken> for ScimTokenOut {
    fn from(t: ScimToken) -> Self {
        ScimTokenOut {
            id: t.id,
            name: t.name,
            created_by: t.created_by,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new directory token: `token` is shown this once (only its hash is kept).
#[derive(Serialize, ToSchema)]
pub struct CreatedScimToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ScimTokenList {
    pub items: Vec<ScimTokenOut>,
}

#[derive(Serialize, ToSchema)]
pub struct IntegrationOut {
    pub id: String,
    pub name: String,
    pub configured_by: String,
    /// `active` or `needs_reauthorization`.
    #[schema(value_type = String)]
    pub status: IntegrationStatus,
    pub updated_at: DateTime<Utc>,
}

impl From<Integration> for IntegrationOut {
    fn from(i: Integration) -> Self {
        IntegrationOut {
            id: i.id,
            name: i.name,
            configured_by: i.configured_by,
            status: i.status,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    pub items: Vec<IntegrationOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    pub token: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationRequest {
    pub note: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvestigationOut {
    pub id: String,
    pub account_id: String,
    pub note: String,
    pub opened_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// `seq` of the entry whose operation caused this one (hook calls).
    pub cause: Option<u64>,
}

impl From<crate::domain::AuditEntry> for AuditEntryOut {
    fn from(e: crate::domain::AuditEntry) -> Self {
        AuditEntryOut {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
            cause: e.cause,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntryOut>,
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailOut {
    pub address: String,
    pub verified: bool,
    pub primary: bool,
    pub added_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct EmailList {
    pub items: Vec<EmailOut>,
}

impl From<Vec<EmailAddress>> for EmailList {
    fn from(v: Vec<EmailAddress>) -> Self {
        EmailList {
            items: v
                .into_iter()
                .map(|e| EmailOut {
                    address: e.address,
                    verified: e.verified,
                    primary: e.primary,
                    added_at: e.added_at,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEmailRequest {
    pub address: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenceRequestBody {
    /// `support` or `sell`.
    #[schema(value_type = String)]
    pub product: Product,
    pub seats: u32,
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub seats: u32,
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyRequest {
    pub reason: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LicenceQuery {
    /// `pending`, `granted` or `denied`; all when absent.
    #[param(value_type = Option<String>)]
    pub status: Option<LicenceStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct LicenceRequestOut {
    pub id: String,
    pub account_id: String,
    #[schema(value_type = String)]
    pub product: Product,
    pub seats: u32,
    pub reason: String,
    #[schema(value_type = String)]
    pub status: LicenceStatus,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub granted_seats: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deny_reason: Option<String>,
}

impl From<LicenceRequest> for LicenceRequestOut {
    fn from(r: LicenceRequest) -> Self {
        LicenceRequestOut {
            id: r.id,
            account_id: r.account_id,
            product: r.product,
            seats: r.seats,
            reason: r.reason,
            status: r.status,
            requested_by: r.requested_by,
            created_at: r.created_at,
            decided_at: r.decided_at,
            granted_seats: r.granted_seats,
            expires_at: r.expires_at,
            deny_reason: r.deny_reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LicenceRequestList {
    pub items: Vec<LicenceRequestOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SellUserRequest {
    pub user_id: String,
    /// `user` or `admin`.
    #[schema(value_type = String)]
    pub role: SellRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SellRoleRequest {
    #[schema(value_type = String)]
    pub role: SellRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIdRequest {
    pub user_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportRequestIn {
    /// `ownership` or `sell_admin`.
    pub topic: String,
    /// `sell_admin`: the member to appoint.
    #[serde(default)]
    pub member_id: Option<String>,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct SupportCaseOut {
    pub id: String,
    pub account_id: String,
    /// `investigation` (opened by platform support), `ownership` or
    /// `sell_admin` (asked by the account).
    pub topic: String,
    pub message: String,
    /// Who asked (`user:…`), absent for support's own investigations.
    pub requested_by: Option<String>,
    pub member_id: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Support's answer, once closed.
    pub answer: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SupportCaseList {
    pub items: Vec<SupportCaseOut>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-wise check finds a quote, a backslash or each control
    /// character at every place of strings from empty to three blocks and
    /// a bit long, and passes every other ASCII and multi-byte text.
    #[test]
    fn needs_json_escape_finds_every_escaped_byte_wherever_it_is() {
        for len in 0..50 {
            let plain = "aé".repeat(len).into_bytes();
            let plain = &plain[..len.min(plain.len())];
            assert!(!needs_json_escape(plain), "{len} plain bytes");
            for at in 0..len {
                for bad in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut text = plain.to_vec();
                    text[at] = bad;
                    assert!(needs_json_escape(&text), "byte {bad:#x} at {at} of {len}");
                }
            }
        }
        let printable: Vec<u8> = (0x20u8..0x7f)
            .filter(|b| !matches!(b, b'"' | b'\\'))
            .collect();
        assert!(!needs_json_escape(&printable));
        // Every byte that needs no escape, at every place of every length
        // up to 40, beside bytes that do not either: no false alarm from
        // the word tricks (a borrow, a high byte).
        let safe: Vec<u8> = (0x20u8..=0xff)
            .filter(|b| !matches!(b, b'"' | b'\\'))
            .collect();
        for len in 1..40 {
            for &b in &safe {
                for at in 0..len {
                    let mut text = vec![b' '; len];
                    text[at] = b;
                    assert!(!needs_json_escape(&text), "byte {b:#x} at {at} of {len}");
                    let mut text = vec![0xffu8; len];
                    text[at] = b;
                    assert!(!needs_json_escape(&text), "byte {b:#x} among 0xff");
                    let mut text = vec![b'!'; len];
                    text[at] = b;
                    assert!(!needs_json_escape(&text), "byte {b:#x} among '!'");
                }
            }
        }
    }

    fn member(n: u32, external_id: Option<&str>, signed_in: bool, owner: bool) -> MemberView {
        // Whole seconds, milliseconds, nanoseconds: each way a time is written.
        let nanos = [0, 120_000_000, 123_456_789][n as usize % 3];
        let at = chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(n), nanos)
            .unwrap_or_default();
        MemberView {
            user: std::sync::Arc::new(User {
                id: format!("usr_{n}"),
                account_id: "acc_1".into(),
                name: [
                    format!("Member {n}"),
                    format!("Zoë \"{n}\" <b>"),
                    format!("back\\slash\ttab\nline\u{1}{n}"),
                ][n as usize % 3]
                    .clone(),
                emails: vec![EmailAddress {
                    address: format!("m{n}@example.test"),
                    verified: n % 2 == 0,
                    primary: true,
                    added_at: at,
                }],
                password_hash: Some("secret".into()),
                support_role: [SupportRole::EndUser, SupportRole::Agent, SupportRole::Admin]
                    [n as usize % 3],
                sell_role: [SellRole::None, SellRole::User, SellRole::Admin][n as usize % 3],
                signed_in_before: signed_in,
                created_at: at,
                deactivated_at: (n == 3).then_some(at),
                external_id: external_id.map(Into::into),
                user_name: None,
                primary_requested: None,
                modified_at: None,
                last_signed_in_at: signed_in.then_some(at),
            }),
            is_owner: owner,
            role_label: if owner {
                "Administrator (owner)"
            } else {
                "Agent"
            },
        }
    }

    /// The list written from shared members is byte for byte what the
    /// documented `MemberList` gives, whatever is set or absent.
    #[test]
    fn r07_the_team_list_is_written_as_its_documented_schema() {
        let items = vec![
            member(1, None, false, true),
            member(2, Some("ext-2"), true, false),
            member(3, Some("quote\"d"), true, false),
            member(4, None, true, false),
        ];
        for next in [None, Some("usr_4"), Some("odd\"cursor")] {
            let mut fast = Vec::new();
            MemberListJson {
                items: &items,
                next,
            }
            .write(&mut fast);
            let fast = String::from_utf8(fast).unwrap_or_default();
            let documented = serde_json::to_string(&MemberList {
                items: items
                    .iter()
                    .map(|m| {
                        MemberOut::from(MemberView {
                            user: m.user.clone(),
                            is_owner: m.is_owner,
                            role_label: m.role_label,
                        })
                    })
                    .collect(),
                next: next.map(Into::into),
            })
            .unwrap_or_default();
            assert!(!fast.is_empty());
            assert_eq!(fast, documented);
        }
    }

    /// R01: the account's one owner, as `GET .../owner` documents it,
    /// whatever its name or address holds.
    #[test]
    fn r01_the_owner_is_written_as_its_documented_schema() {
        for m in [
            member(1, None, true, true),
            member(3, Some("quote\"d"), true, false),
        ] {
            let mut owner = (*m.user).clone();
            owner.name = "Zoë \"Z\" \\ O'Brien\u{1}".into();
            let m = MemberView {
                user: std::sync::Arc::new(owner),
                is_owner: true,
                role_label: m.role_label,
            };
            let mut fast = Vec::new();
            OwnerJson(&m).write(&mut fast);
            let documented = serde_json::to_string(&OwnerOut {
                id: m.user.id.clone(),
                name: m.user.name.clone(),
                primary_email: m.user.primary_address().to_string(),
                role_label: m.role_label.to_string(),
            })
            .unwrap_or_default();
            assert!(!documented.is_empty());
            assert_eq!(String::from_utf8(fast).unwrap_or_default(), documented);
        }
    }
}
