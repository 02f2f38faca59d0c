//! The account state the rules reason about. Plain data: no store, no HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type AccountId = String;
pub type UserId = String;

/// Support role of a member (docs/rules.md, vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupportRole {
    EndUser,
    Agent,
    Admin,
}

impl SupportRole {
    /// Agents and admins hold an agent seat (R09); end users do not.
    pub fn holds_seat(self) -> bool {
        matches!(self, SupportRole::Agent | SupportRole::Admin)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SupportRole::EndUser => "end_user",
            SupportRole::Agent => "agent",
            SupportRole::Admin => "admin",
        }
    }
}

/// Sell role of a member; `user` and `admin` hold one Sell seat (R10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SellRole {
    #[default]
    None,
    User,
    Admin,
}

impl SellRole {
    pub fn holds_seat(self) -> bool {
        matches!(self, SellRole::User | SellRole::Admin)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SellRole::None => "none",
            SellRole::User => "user",
            SellRole::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SellStatus {
    /// Nobody has started Sell.
    #[default]
    NotStarted,
    Trial,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    Support,
    Sell,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Support => "support",
            Product::Sell => "sell",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceStatus {
    Pending,
    Granted,
    Denied,
}

/// A policy platform support switched off at run time (break-glass), or
/// back on: kept in the store so that it holds across restarts and on every
/// replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySwitch {
    /// The policy's name as `GET /v1/policies` shows it (a plugin's name,
    /// a script's file name).
    pub name: String,
    pub disabled: bool,
    pub reason: String,
    /// Who switched it (the audit name of the actor).
    pub by: String,
    #[serde(with = "crate::stamp")]
    pub at: DateTime<Utc>,
}

/// A request to platform support for temporary seats (R18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceRequest {
    pub id: String,
    pub account_id: AccountId,
    pub product: Product,
    pub seats: u32,
    pub reason: String,
    pub status: LicenceStatus,
    /// Audit name of who filed it (`user:…` or `policy:…`).
    pub requested_by: String,
    #[serde(with = "crate::stamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::stamp::option")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Seats granted (may differ from those asked) and until when.
    pub granted_seats: Option<u32>,
    #[serde(default, with = "crate::stamp::option")]
    pub expires_at: Option<DateTime<Utc>>,
    pub deny_reason: Option<String>,
}

/// Seats granted for a while by platform support (R11, R18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatGrant {
    pub product: Product,
    pub seats: u32,
    #[serde(with = "crate::stamp")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SellState {
    pub status: SellStatus,
    pub seats_bought: u32,
    pub seats_used: u32,
    /// Members whose Sell role is `admin`; once Sell has started it never
    /// drops to zero (R24).
    #[serde(default)]
    pub admin_count: u32,
}

/// A trial gives its starter one Sell seat (R20) until Sell is bought.
pub const SELL_TRIAL_SEATS: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub kind: String,
    pub last4: String,
    #[serde(with = "crate::stamp")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    /// The single source of truth for ownership (R01): one field, so there is
    /// never zero or two owners.
    pub owner_id: UserId,
    #[serde(with = "crate::stamp")]
    pub created_at: DateTime<Utc>,
    pub support_seats_bought: u32,
    pub support_seats_used: u32,
    pub sell: SellState,
    pub grants: Vec<SeatGrant>,
    pub payment_method: Option<PaymentMethod>,
    pub member_count: u32,
    /// The bearer tokens the account's identity providers provision
    /// members with (SCIM), hashed; a handful per account.
    #[serde(default)]
    pub scim_tokens: Vec<ScimToken>,
    /// The language its mails are written in (`en`, `fr`, see
    /// `validate::LANGUAGES`); `None`: the platform's default
    /// (`[mail] default_language`).
    #[serde(default)]
    pub language: Option<String>,
    /// Who receives the invoices besides the owner (the article's
    /// "Facturation > Contacts"); set by the owner (R05), a handful.
    #[serde(default)]
    pub billing_contacts: Vec<String>,
}

/// A SCIM bearer token: the customer's directory ("Okta") acting on the
/// account with the powers of the admin who created it. Only the token's
/// SHA-256 is kept; the token itself is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimToken {
    pub id: String,
    /// What the admins call it: the directory's name, shown in the audit log.
    pub name: String,
    pub hash: String,
    /// The admin whose powers it acts with (checked at every use: a token
    /// of someone no longer an admin acts no more).
    pub created_by: UserId,
    #[serde(with = "crate::stamp")]
    pub created_at: DateTime<Utc>,
    /// Its last use, to the `SCIM_TOKEN_USE_PRECISION_MINUTES`.
    #[serde(default, with = "crate::stamp::option")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Account {
    fn granted(&self, product: Product, now: DateTime<Utc>) -> u32 {
        self.grants
            .iter()
            .filter(|g| g.product == product && g.expires_at > now)
            .fold(0u32, |sum, g| sum.saturating_add(g.seats))
    }
    /// Seats owned: bought plus unexpired temporary grants (R11). Computed from
    /// stored times, so expiry needs no timer and survives restarts.
    pub fn support_seats_total(&self, now: DateTime<Utc>) -> u32 {
        self.support_seats_bought
            .saturating_add(self.granted(Product::Support, now))
    }
    pub fn sell_seats_total(&self, now: DateTime<Utc>) -> u32 {
        let trial = if self.sell.status == SellStatus::Trial {
            SELL_TRIAL_SEATS
        } else {
            0
        };
        self.sell
            .seats_bought
            .saturating_add(trial)
            .saturating_add(self.granted(Product::Sell, now))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    pub address: String,
    pub verified: bool,
    pub primary: bool,
    #[serde(with = "crate::stamp")]
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    pub name: String,
    pub emails: Vec<EmailAddress>,
    /// PHC string (argon2id); `None` until the password-set link is used.
    pub password_hash: Option<String>,
    pub support_role: SupportRole,
    pub sell_role: SellRole,
    pub signed_in_before: bool,
    #[serde(with = "crate::stamp")]
    pub created_at: DateTime<Utc>,
    /// Since when the member is deactivated (by the customer's directory,
    /// SCIM `active: false`): no seat held, no sign-in, no session; the
    /// profile, its roles and its history kept for a reactivation.
    #[serde(default, with = "crate::stamp::option")]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The directory's own id for this person (SCIM `externalId`), kept as
    /// the directory sent it.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The directory's login name for this person (SCIM `userName`), unique
    /// in the account without case (kept in the address index under
    /// `directory_name_key`); sign-in stays by address.
    #[serde(default)]
    pub user_name: Option<String>,
    /// An address the customer's directory asked to be primary before it
    /// was verified: it becomes primary when its link is used (R14).
    #[serde(default)]
    pub primary_requested: Option<String>,
    /// When a command last changed this member (`None`: not since this
    /// was recorded; read `created_at`).
    #[serde(default, with = "crate::stamp::option")]
    pub modified_at: Option<DateTime<Utc>>,
    /// The member's last sign-in, to the day (`None`: not since this was
    /// recorded).
    #[serde(default, with = "crate::stamp::option")]
    pub last_signed_in_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn modified_at(&self) -> DateTime<Utc> {
        self.modified_at.unwrap_or(self.created_at)
    }
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }
    /// An active agent or admin holds an agent seat (R09); a deactivated
    /// member holds none.
    pub fn holds_support_seat(&self) -> bool {
        self.is_active() && self.support_role.holds_seat()
    }
    /// An active Sell user or admin holds a Sell seat (R10).
    pub fn holds_sell_seat(&self) -> bool {
        self.is_active() && self.sell_role.holds_seat()
    }
    /// Every user keeps exactly one primary address (R15); a user value
    /// without one is never written.
    pub fn primary(&self) -> Option<&EmailAddress> {
        self.emails.iter().find(|e| e.primary)
    }
    pub fn primary_address(&self) -> &str {
        self.primary().map(|e| e.address.as_str()).unwrap_or("")
    }
    pub fn primary_verified(&self) -> bool {
        self.primary().map(|e| e.verified).unwrap_or(false)
    }
    pub fn email(&self, address: &str) -> Option<&EmailAddress> {
        let wanted = normalize_email(address);
        self.emails
            .iter()
            .find(|e| normalize_email(&e.address) == wanted)
    }
    pub fn email_mut(&mut self, address: &str) -> Option<&mut EmailAddress> {
        let wanted = normalize_email(address);
        self.emails
            .iter_mut()
            .find(|e| normalize_email(&e.address) == wanted)
    }
}

/// Addresses are unique per account case-insensitively; this is the key form.
pub fn normalize_email(address: &str) -> String {
    address.trim().to_lowercase()
}

/// A directory login name's key in the account's address index: a space
/// and a colon, which no address has, keep it apart from every address.
pub fn directory_name_key(user_name: &str) -> String {
    format!("directory name: {}", user_name.trim().to_lowercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Active,
    NeedsReauthorization,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub account_id: AccountId,
    pub name: String,
    pub configured_by: UserId,
    pub status: IntegrationStatus,
    #[serde(with = "crate::stamp")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// First password of a new member or owner.
    PasswordSet,
    PasswordReset,
    EmailVerification,
}

/// A mailed single-use token. Only its SHA-256 is stored (R17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub hash: String,
    pub purpose: TokenPurpose,
    pub account_id: AccountId,
    pub user_id: UserId,
    /// The address the token was mailed to; using the token proves it.
    pub email: String,
    #[serde(with = "crate::stamp")]
    pub expires_at: DateTime<Utc>,
}

/// A bearer session. Only the token's SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub hash: String,
    pub account_id: AccountId,
    pub user_id: UserId,
    /// The address used to sign in: removing it ends the session (R16).
    pub email: String,
    #[serde(with = "crate::stamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::stamp")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub account_id: AccountId,
    #[serde(with = "crate::stamp")]
    pub issued_at: DateTime<Utc>,
    pub description: String,
    pub support_seats: u32,
    pub sell_seats: u32,
    /// What it amounts to (monthly), in the currency's smallest unit;
    /// `currency` empty for invoices issued before amounts were kept.
    #[serde(default)]
    pub amount_cents: u64,
    #[serde(default)]
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityInvestigation {
    pub id: String,
    pub account_id: AccountId,
    pub note: String,
    #[serde(with = "crate::stamp")]
    pub opened_at: DateTime<Utc>,
    /// What the case is about: `investigation` (opened by platform
    /// support, R19), `ownership` (the account's admins ask for one: the
    /// owner is lost, R19) or `sell_admin` (they ask for their first Sell
    /// admin, R23).
    #[serde(default = "investigation_topic")]
    pub topic: String,
    /// Who asked (audit name), for a request from the account.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// The member the account would have appointed (`sell_admin`).
    #[serde(default)]
    pub member_id: Option<UserId>,
    /// Closed by platform support, with what it says to the account.
    #[serde(default, with = "crate::stamp::option")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closing_note: Option<String>,
}

fn investigation_topic() -> String {
    "investigation".into()
}

/// The topics an account may ask platform support about.
pub const SUPPORT_TOPICS: &[&str] = &["ownership", "sell_admin"];

/// One line of the append-only audit log. `seq` is given by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub account_id: AccountId,
    #[serde(with = "crate::stamp")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// `ok`, or `refused:<code>`.
    pub outcome: String,
    pub detail: String,
    /// The entry of the operation that caused this one (hook calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<u64>,
}
