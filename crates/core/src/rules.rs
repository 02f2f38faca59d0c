//! The rules of docs/rules.md as one function: a command and the current state
//! in; changes, mails, events and an audit draft out, or a refusal. Nothing
//! here does I/O; time, randomness and policy decisions come in through
//! [`Ctx`].

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::command::*;
use super::event::*;
use super::model::*;
use super::refusal::{Refusal, RefusalKind};
use super::validate;
use super::view::StateView;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            password_set_ttl: Duration::hours(72),
            password_reset_ttl: Duration::hours(1),
            session_ttl: Duration::hours(12),
            integrations_per_account_max: 1000,
            members_per_account_max: 1_000_000,
        }
    }
}

pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub entropy: &'a mut dyn Entropy,
    pub gate: &'a dyn PolicyGate,
    pub settings: &'a Settings,
}

/// Stored form of a mailed or bearer token: hex SHA-256. Tokens carry 256
/// random bits, so a fast hash is enough (no dictionary to attack).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Role label of the member list (R07).
pub fn role_label(account: &Account, user: &User) -> &'static str {
    if account.owner_id == user.id {
        return "Administrator (owner)";
    }
    match user.support_role {
        SupportRole::Admin => "Administrator",
        SupportRole::Agent => "Agent",
        SupportRole::EndUser => "End user",
    }
}

pub fn snapshot(user: &User) -> UserSnapshot {
    UserSnapshot {
        id: user.id.clone(),
        name: user.name.clone(),
        primary_email: user.primary_address().to_string(),
        email_verified: user.primary_verified(),
        signed_in_before: user.signed_in_before,
    }
}

/// What a caller needs to act on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any member, end users included.
    Member,
    Agent,
    Admin,
    Owner,
    Billing,
}

/// The caller as a member of `account_id`, with the role `need` asks for.
/// Non-members get 404 (they must not learn the account exists).
pub fn member_with(
    view: &dyn StateView,
    principal: &Principal,
    account_id: &str,
    need: Need,
) -> Result<(Account, User), Refusal> {
    let refuse_outsider = |p: &Principal| match (p, need) {
        // The operator is outside every account; R02/R19 say it never acts
        // as the owner, so it gets the same codes a non-owner gets.
        (Principal::Operator, Need::Owner) => Refusal::new(
            RefusalKind::Forbidden,
            "not_account_owner",
            "only the account owner can do this; platform support cannot",
        ),
        (Principal::Operator, Need::Billing) => Refusal::new(
            RefusalKind::Forbidden,
            "billing_owner_only",
            "billing is available to the account owner only",
        ),
        (Principal::Operator, _) => {
            Refusal::forbidden("platform support does not act as a member of an account")
        }
        (Principal::Anonymous, _) => Refusal::new(
            RefusalKind::Unauthenticated,
            "unauthorized",
            "sign in first",
        ),
        (Principal::Policy { .. }, _) => {
            Refusal::forbidden("policies act only through their own host functions")
        }
        (Principal::Webhook { .. }, _) => {
            Refusal::forbidden("webhooks act only through their effects")
        }
        (Principal::Member { .. }, _) => Refusal::not_found("account"),
    };
    let user_id = match principal {
        Principal::Member {
            account_id: a,
            user_id,
        } if a == account_id => user_id,
        other => {
            // Outsiders learn nothing about accounts that do not exist.
            if view.account(account_id)?.is_none() {
                return Err(Refusal::not_found("account"));
            }
            return Err(refuse_outsider(other));
        }
    };
    let account = view
        .account(account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    let user = view.user(account_id, user_id)?.ok_or_else(|| {
        Refusal::new(
            RefusalKind::Unauthenticated,
            "unauthorized",
            "sign in first",
        )
    })?;
    let is_owner = account.owner_id == user.id;
    let ok = match need {
        Need::Member => true,
        Need::Agent => user.support_role.holds_seat(),
        Need::Admin => user.support_role == SupportRole::Admin,
        Need::Owner | Need::Billing => is_owner,
    };
    if !ok {
        return Err(match need {
            Need::Member => Refusal::not_found("account"),
            Need::Agent => Refusal::forbidden("this needs an agent or admin"),
            Need::Admin => Refusal::forbidden("this needs an admin of the account"),
            Need::Owner => Refusal::new(
                RefusalKind::Forbidden,
                "not_account_owner",
                "only the account owner can do this",
            ),
            Need::Billing => Refusal::new(
                RefusalKind::Forbidden,
                "billing_owner_only",
                "billing (invoices, payment method, seats) is available to the account owner only",
            ),
        });
    }
    Ok((account, user))
}

fn seat_exhausted(
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
    .with_event(DomainEvent::AgentSeatExhausted {
        account_id: account.id.clone(),
        actor_id: actor.user_id().unwrap_or("").to_string(),
        seats_total: total,
        seats_used: account.support_seats_used,
        attempt: attempt.to_string(),
    })
}

/// Takes one agent seat or refuses (R09, R11): used never exceeds owned.
fn take_support_seat(
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

pub(super) struct Draft<'a> {
    pub actor: &'a Principal,
    pub action: &'static str,
    pub now: DateTime<Utc>,
}

impl Draft<'_> {
    pub(super) fn ok(
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

fn new_user(
    ctx: &mut Ctx,
    account_id: &str,
    name: String,
    email: String,
    role: SupportRole,
) -> User {
    User {
        id: ctx.entropy.id("usr"),
        account_id: account_id.to_string(),
        name,
        emails: vec![EmailAddress {
            address: email,
            verified: false,
            primary: true,
            added_at: ctx.now,
        }],
        password_hash: None,
        support_role: role,
        sell_role: SellRole::None,
        signed_in_before: false,
        created_at: ctx.now,
    }
}

fn password_set_token(ctx: &mut Ctx, account: &Account, user: &User) -> (Change, Notice) {
    let token = ctx.entropy.token();
    let record = Token {
        hash: token_hash(&token),
        purpose: TokenPurpose::PasswordSet,
        account_id: account.id.clone(),
        user_id: user.id.clone(),
        email: user.primary_address().to_string(),
        expires_at: ctx.now + ctx.settings.password_set_ttl,
    };
    let notice = Notice::PasswordSet {
        to: user.primary_address().to_string(),
        user_name: user.name.clone(),
        account_name: account.name.clone(),
        account_id: account.id.clone(),
        token,
    };
    (Change::PutToken(record), notice)
}

/// Runs one command against the state in `view`.
pub fn execute(
    view: &dyn StateView,
    ctx: &mut Ctx,
    actor: &Principal,
    command: Command,
) -> Result<Outcome, Refusal> {
    let draft = Draft {
        actor,
        action: command.action(),
        now: ctx.now,
    };
    let now = ctx.now;
    match command {
        Command::CreateAccount {
            name,
            owner_name,
            owner_email,
            support_seats,
        } => {
            if *actor != Principal::Operator {
                return Err(Refusal::forbidden("only platform support creates accounts"));
            }
            let name = validate::name("name", &name)?;
            let owner_name = validate::name("owner.name", &owner_name)?;
            let owner_email = validate::email("owner.email", &owner_email)?;
            let support_seats = validate::seats("support_seats", support_seats)?;
            if support_seats < 1 {
                return Err(Refusal::invalid(
                    "support_seats must be at least 1: the owner is an admin and takes a seat",
                ));
            }
            let account_id = ctx.entropy.id("acc");
            let owner = new_user(
                ctx,
                &account_id,
                owner_name,
                owner_email.clone(),
                SupportRole::Admin,
            );
            let account = Account {
                id: account_id.clone(),
                name,
                owner_id: owner.id.clone(),
                created_at: now,
                support_seats_bought: support_seats,
                support_seats_used: 1,
                sell: SellState::default(),
                grants: Vec::new(),
                payment_method: None,
                member_count: 1,
            };
            let (token_change, notice) = password_set_token(ctx, &account, &owner);
            Ok(Outcome {
                changes: vec![
                    Change::PutAccount(account.clone()),
                    Change::PutEmailIndex {
                        account_id: account_id.clone(),
                        email: normalize_email(&owner_email),
                        user_id: owner.id.clone(),
                    },
                    Change::PutUser(owner.clone()),
                    token_change,
                ],
                notices: vec![notice],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("account:{account_id}"),
                    format!("created with owner {} and {support_seats} seats", owner.id),
                ),
                reply: Reply::Account(account),
            })
        }

        Command::AddMember {
            account_id,
            name,
            email,
            role,
        } => {
            let name = validate::name("name", &name)?;
            let email = validate::email("email", &email)?;
            let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
            if view.user_by_email(&account_id, &email)?.is_some() {
                return Err(Refusal::conflict(
                    "email_taken",
                    "that address already belongs to a member of this account",
                ));
            }
            if account.member_count >= ctx.settings.members_per_account_max {
                return Err(Refusal::conflict(
                    "member_limit_reached",
                    format!(
                        "an account holds at most {} members",
                        ctx.settings.members_per_account_max
                    ),
                ));
            }
            if role.holds_seat() {
                take_support_seat(&mut account, actor, now, "member.add")?;
            }
            account.member_count += 1;
            let user = new_user(ctx, &account_id, name, email.clone(), role);
            let (token_change, notice) = password_set_token(ctx, &account, &user);
            Ok(Outcome {
                changes: vec![
                    Change::PutAccount(account),
                    Change::PutEmailIndex {
                        account_id: account_id.clone(),
                        email: normalize_email(&email),
                        user_id: user.id.clone(),
                    },
                    Change::PutUser(user.clone()),
                    token_change,
                ],
                notices: vec![notice],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("user:{}", user.id),
                    format!("added as {}", role.as_str()),
                ),
                reply: Reply::User(user),
            })
        }

        Command::ChangeRole {
            account_id,
            user_id,
            role,
        } => {
            let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
            let mut user = view
                .user(&account_id, &user_id)?
                .ok_or_else(|| Refusal::not_found("member"))?;
            if account.owner_id == user.id && role != SupportRole::Admin {
                return Err(Refusal::conflict(
                    "owner_role_locked",
                    "the owner's role cannot be lowered; hand ownership over first",
                ));
            }
            if user.support_role == role {
                return Ok(Outcome {
                    changes: vec![],
                    notices: vec![],
                    events: vec![],
                    audit: None,
                    reply: Reply::User(user),
                });
            }
            match (user.support_role.holds_seat(), role.holds_seat()) {
                (false, true) => take_support_seat(&mut account, actor, now, "member.change_role")?,
                (true, false) => {
                    account.support_seats_used = account.support_seats_used.saturating_sub(1)
                }
                _ => {}
            }
            let from = user.support_role;
            user.support_role = role;
            Ok(Outcome {
                changes: vec![Change::PutAccount(account), Change::PutUser(user.clone())],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("user:{user_id}"),
                    format!("{} -> {}", from.as_str(), role.as_str()),
                ),
                reply: Reply::User(user),
            })
        }

        Command::RemoveMember {
            account_id,
            user_id,
        } => {
            let (mut account, _) = member_with(view, actor, &account_id, Need::Admin)?;
            let user = view
                .user(&account_id, &user_id)?
                .ok_or_else(|| Refusal::not_found("member"))?;
            if account.owner_id == user.id {
                return Err(Refusal::conflict(
                    "owner_role_locked",
                    "the owner cannot be removed; hand ownership over first",
                ));
            }
            if user.support_role.holds_seat() {
                account.support_seats_used = account.support_seats_used.saturating_sub(1);
            }
            if user.sell_role == SellRole::Admin {
                if account.sell.admin_count <= 1 {
                    return Err(Refusal::conflict(
                        "last_sell_admin",
                        "this member is the last Sell admin; make someone else Sell admin first",
                    ));
                }
                account.sell.admin_count -= 1;
            }
            if user.sell_role.holds_seat() {
                account.sell.seats_used = account.sell.seats_used.saturating_sub(1);
            }
            account.member_count = account.member_count.saturating_sub(1);
            let mut changes = vec![];
            for e in &user.emails {
                changes.push(Change::DeleteEmailIndex {
                    account_id: account_id.clone(),
                    email: normalize_email(&e.address),
                });
            }
            // An integration whose configurer is gone has nobody to keep it
            // authorized: flag it like a transfer does (R06).
            for mut i in
                view.integrations(&account_id, ctx.settings.integrations_per_account_max)?
            {
                if i.configured_by == user.id && i.status == IntegrationStatus::Active {
                    i.status = IntegrationStatus::NeedsReauthorization;
                    i.updated_at = now;
                    changes.push(Change::PutIntegration(i));
                }
            }
            changes.push(Change::DeleteUserSessions {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
            });
            changes.push(Change::DeleteUser {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
            });
            changes.push(Change::PutAccount(account));
            Ok(Outcome {
                changes,
                notices: vec![],
                events: vec![],
                audit: draft.ok(&account_id, format!("user:{user_id}"), "removed"),
                reply: Reply::Done,
            })
        }

        Command::TransferOwnership {
            account_id,
            to_user_id,
        } => {
            // R02: the owner alone, no back door for anyone else.
            let (mut account, from) = member_with(view, actor, &account_id, Need::Owner)?;
            if to_user_id == from.id {
                return Err(Refusal::conflict(
                    "already_owner",
                    "that user already owns the account",
                ));
            }
            let to = view
                .user(&account_id, &to_user_id)?
                .ok_or_else(|| Refusal::not_found("member"))?;
            // R03: an admin with a verified primary address.
            if to.support_role != SupportRole::Admin {
                return Err(Refusal::conflict(
                    "new_owner_not_admin",
                    "the new owner must already be an admin of the account; add them as admin first",
                ));
            }
            if !to.primary_verified() {
                return Err(Refusal::conflict(
                    "email_unverified",
                    "the new owner's primary address is not verified yet",
                ));
            }
            let proposal = OwnerChangeProposal {
                account_id: account_id.clone(),
                actor_id: from.id.clone(),
                from: snapshot(&from),
                to: snapshot(&to),
            };
            let ignored = match ctx.gate.before_owner_change(&proposal) {
                Ok(ignored) => ignored,
                Err(veto) => {
                    return Err(Refusal::conflict(
                        "policy_denied",
                        format!(
                            "policy {} (version {}, {} us) denied: {}{}",
                            veto.policy,
                            veto.version,
                            veto.duration_us,
                            veto.reason,
                            ignored_note(&veto.ignored)
                        ),
                    ));
                }
            };
            account.owner_id = to.id.clone();
            let mut changes = vec![];
            let mut flagged = vec![];
            // R06: what the previous owner authorized may stop working.
            for mut i in
                view.integrations(&account_id, ctx.settings.integrations_per_account_max)?
            {
                if i.configured_by == from.id && i.status == IntegrationStatus::Active {
                    i.status = IntegrationStatus::NeedsReauthorization;
                    i.updated_at = now;
                    flagged.push(IntegrationRef {
                        id: i.id.clone(),
                        name: i.name.clone(),
                    });
                    changes.push(Change::PutIntegration(i));
                }
            }
            changes.push(Change::PutAccount(account.clone()));
            let notices = vec![
                Notice::OwnershipReceived {
                    to: to.primary_address().to_string(),
                    account_name: account.name.clone(),
                    previous_owner_name: from.name.clone(),
                    integrations: flagged.clone(),
                },
                Notice::OwnershipHandedOver {
                    to: from.primary_address().to_string(),
                    account_name: account.name.clone(),
                    new_owner_name: to.name.clone(),
                },
            ];
            let event = DomainEvent::AfterOwnerChange {
                account_id: account_id.clone(),
                actor_id: from.id.clone(),
                from: proposal.from,
                to: proposal.to,
                integrations: flagged.clone(),
            };
            Ok(Outcome {
                changes,
                notices,
                events: vec![event],
                audit: draft.ok(
                    &account_id,
                    format!("user:{}", to.id),
                    format!(
                        "owner {} -> {}; {} integration(s) need reauthorization{}",
                        from.id,
                        to.id,
                        flagged.len(),
                        ignored_note(&ignored)
                    ),
                ),
                reply: Reply::Account(account),
            })
        }

        Command::SetSeats {
            account_id,
            support_seats,
            sell_seats,
        } => {
            let (mut account, _) = member_with(view, actor, &account_id, Need::Billing)?;
            if support_seats.is_none() && sell_seats.is_none() {
                return Err(Refusal::invalid("give support_seats, sell_seats or both"));
            }
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
            let invoice = Invoice {
                id: ctx.entropy.id("inv"),
                account_id: account_id.clone(),
                issued_at: now,
                description: "seat change".into(),
                support_seats: account.support_seats_bought,
                sell_seats: account.sell.seats_bought,
            };
            Ok(Outcome {
                changes: vec![
                    Change::PutAccount(account.clone()),
                    Change::PutInvoice(invoice),
                ],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("account:{account_id}"),
                    format!(
                        "support seats {}, sell seats {}",
                        account.support_seats_bought, account.sell.seats_bought
                    ),
                ),
                reply: Reply::Account(account),
            })
        }

        Command::SetPaymentMethod {
            account_id,
            kind,
            last4,
        } => {
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

        Command::AddIntegration { account_id, name } => {
            let name = validate::name("name", &name)?;
            let (_, admin) = member_with(view, actor, &account_id, Need::Admin)?;
            let max = ctx.settings.integrations_per_account_max;
            if view.integrations(&account_id, max)?.len() >= max {
                return Err(Refusal::conflict(
                    "integration_limit_reached",
                    format!("an account holds at most {max} integrations"),
                ));
            }
            let integration = Integration {
                id: ctx.entropy.id("int"),
                account_id: account_id.clone(),
                name,
                configured_by: admin.id.clone(),
                status: IntegrationStatus::Active,
                updated_at: now,
            };
            Ok(Outcome {
                changes: vec![Change::PutIntegration(integration.clone())],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("integration:{}", integration.id),
                    format!("configured by {}", admin.id),
                ),
                reply: Reply::Integration(integration),
            })
        }

        Command::AuthorizeIntegration {
            account_id,
            integration_id,
        } => {
            let (_, admin) = member_with(view, actor, &account_id, Need::Admin)?;
            let mut integration = view
                .integration(&account_id, &integration_id)?
                .ok_or_else(|| Refusal::not_found("integration"))?;
            // R06: re-authorizing makes this admin the configurer.
            integration.configured_by = admin.id.clone();
            integration.status = IntegrationStatus::Active;
            integration.updated_at = now;
            Ok(Outcome {
                changes: vec![Change::PutIntegration(integration.clone())],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("integration:{integration_id}"),
                    format!("authorized by {}", admin.id),
                ),
                reply: Reply::Integration(integration),
            })
        }

        Command::RequestPasswordReset { account_id, email } => {
            // R17: the answer is the same whatever exists; only a primary
            // address of a member of an existing account gets mail.
            let accepted = Outcome {
                changes: vec![],
                notices: vec![],
                events: vec![],
                audit: None,
                reply: Reply::Accepted,
            };
            let Ok(email) = validate::email("email", &email) else {
                return Ok(accepted);
            };
            let Some(account) = view.account(&account_id)? else {
                return Ok(accepted);
            };
            let Some(user) = view.user_by_email(&account_id, &email)? else {
                return Ok(accepted);
            };
            if normalize_email(user.primary_address()) != normalize_email(&email) {
                return Ok(accepted);
            }
            let token = ctx.entropy.token();
            let record = Token {
                hash: token_hash(&token),
                purpose: TokenPurpose::PasswordReset,
                account_id: account_id.clone(),
                user_id: user.id.clone(),
                email: user.primary_address().to_string(),
                expires_at: now + ctx.settings.password_reset_ttl,
            };
            Ok(Outcome {
                changes: vec![Change::PutToken(record)],
                notices: vec![Notice::PasswordReset {
                    to: user.primary_address().to_string(),
                    account_name: account.name,
                    account_id: account_id.clone(),
                    token,
                }],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("user:{}", user.id),
                    "reset link mailed",
                ),
                reply: Reply::Accepted,
            })
        }

        Command::ConfirmPasswordReset {
            token_hash,
            password_hash,
        } => {
            let invalid = || {
                Refusal::new(
                    RefusalKind::Invalid,
                    "invalid_token",
                    "the link is invalid, already used or expired; ask for a new one",
                )
            };
            let token = view.token(&token_hash)?.ok_or_else(invalid)?;
            if !matches!(
                token.purpose,
                TokenPurpose::PasswordSet | TokenPurpose::PasswordReset
            ) || token.expires_at <= now
            {
                return Err(invalid());
            }
            let mut user = view
                .user(&token.account_id, &token.user_id)?
                .ok_or_else(invalid)?;
            // Setting the password from the link proves the address it was
            // mailed to (R17) — if the profile still has that address.
            let Some(address) = user.email_mut(&token.email) else {
                return Err(invalid());
            };
            address.verified = true;
            user.password_hash = Some(password_hash);
            Ok(Outcome {
                changes: vec![
                    Change::DeleteToken {
                        hash: token.hash.clone(),
                    },
                    Change::PutUser(user.clone()),
                    // A new password ends every existing session.
                    Change::DeleteUserSessions {
                        account_id: user.account_id.clone(),
                        user_id: user.id.clone(),
                    },
                ],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &token.account_id,
                    format!("user:{}", user.id),
                    format!("password set; address {} verified", token.email),
                ),
                reply: Reply::Done,
            })
        }

        Command::CreateSession {
            account_id,
            user_id,
            email,
            verified_hash,
            token_hash,
        } => {
            let bad = || {
                Refusal::new(
                    RefusalKind::Unauthenticated,
                    "invalid_credentials",
                    "the address or password is wrong",
                )
            };
            let mut user = view.user(&account_id, &user_id)?.ok_or_else(bad)?;
            if user.password_hash.as_deref() != Some(verified_hash.as_str()) {
                return Err(bad());
            }
            let address = user.email(&email).ok_or_else(bad)?;
            if !address.verified {
                return Err(bad());
            }
            let session = Session {
                hash: token_hash,
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                email: address.address.clone(),
                created_at: now,
                expires_at: now + ctx.settings.session_ttl,
            };
            let mut changes = vec![Change::PutSession(session.clone())];
            if !user.signed_in_before {
                user.signed_in_before = true;
                changes.push(Change::PutUser(user));
            }
            Ok(Outcome {
                changes,
                notices: vec![],
                events: vec![],
                audit: None,
                reply: Reply::Session(session),
            })
        }

        Command::RevokeSession { token_hash } => Ok(Outcome {
            changes: vec![Change::DeleteSession { hash: token_hash }],
            notices: vec![],
            events: vec![],
            audit: None,
            reply: Reply::Done,
        }),

        Command::AddEmail {
            account_id,
            user_id,
            address,
        } => super::products::add_email(view, ctx, &draft, &account_id, &user_id, &address),
        Command::ConfirmEmailVerification { token_hash } => {
            super::products::confirm_email(view, ctx, &draft, &token_hash)
        }
        Command::MakePrimaryEmail {
            account_id,
            user_id,
            address,
        } => super::products::make_primary(view, ctx, &draft, &account_id, &user_id, &address),
        Command::RemoveEmail {
            account_id,
            user_id,
            address,
        } => super::products::remove_email(view, &draft, &account_id, &user_id, &address),
        Command::RequestLicence {
            account_id,
            product,
            seats,
            reason,
        } => super::products::request_licence(
            view,
            ctx,
            &draft,
            &account_id,
            product,
            seats,
            &reason,
        ),
        Command::GrantLicence {
            request_id,
            seats,
            expires_at,
        } => super::products::grant_licence(view, ctx, &draft, &request_id, seats, expires_at),
        Command::DenyLicence { request_id, reason } => {
            super::products::deny_licence(view, ctx, &draft, &request_id, &reason)
        }
        Command::StartSellTrial { account_id } => {
            super::products::start_sell_trial(view, ctx, &draft, &account_id)
        }
        Command::GrantSell {
            account_id,
            user_id,
            role,
        } => super::products::grant_sell(view, ctx, &draft, &account_id, &user_id, role),
        Command::ChangeSellRole {
            account_id,
            user_id,
            role,
        } => super::products::change_sell_role(view, &draft, &account_id, &user_id, role),
        Command::RemoveSell {
            account_id,
            user_id,
        } => super::products::remove_sell(view, &draft, &account_id, &user_id),
        Command::AppointSellAdmin {
            account_id,
            user_id,
        } => super::products::appoint_sell_admin(view, ctx, &draft, &account_id, &user_id),

        Command::PolicyNotify {
            account_id,
            address,
            subject,
            body,
        } => super::products::policy_notify(view, &draft, &account_id, &address, &subject, &body),
        Command::FlagIntegration {
            account_id,
            integration_id,
        } => super::products::flag_integration(view, ctx, &draft, &account_id, &integration_id),
        Command::ReceiveWebhook {
            source,
            webhook_id,
            kind,
            data,
        } => super::products::receive_webhook(view, ctx, &draft, source, webhook_id, kind, data),
        Command::RecordPolicyCall { account_id, call } => {
            super::products::record_policy_call(view, &draft, &account_id, call)
        }

        Command::OpenSecurityInvestigation { account_id, note } => {
            operator_only(
                view,
                actor,
                &account_id,
                "security investigations are opened by platform support",
            )?;
            let note = validate::note("note", &note)?;
            if view.account(&account_id)?.is_none() {
                return Err(Refusal::not_found("account"));
            }
            let investigation = SecurityInvestigation {
                id: ctx.entropy.id("inv"),
                account_id: account_id.clone(),
                note,
                opened_at: now,
            };
            Ok(Outcome {
                changes: vec![Change::PutInvestigation(investigation.clone())],
                notices: vec![],
                events: vec![],
                audit: draft.ok(
                    &account_id,
                    format!("investigation:{}", investigation.id),
                    "security investigation opened; the owner is unchanged (R19)",
                ),
                reply: Reply::Investigation(investigation),
            })
        }
    }
}

/// The audit entry for a refusal by a rule, when it belongs to an account.
/// For what platform support alone does on an account: a member of the
/// account is told it is not theirs (403); anyone else gets the same 404
/// whether the account exists or not, so the answer reveals nothing.
pub(super) fn operator_only(
    view: &dyn StateView,
    actor: &Principal,
    account_id: &str,
    detail: &str,
) -> Result<(), Refusal> {
    if *actor == Principal::Operator {
        return Ok(());
    }
    let member_here = match actor {
        Principal::Member {
            account_id: own, ..
        } => own == account_id,
        _ => false,
    };
    if !member_here || view.account(account_id)?.is_none() {
        return Err(Refusal::not_found("account"));
    }
    Err(Refusal::forbidden(detail))
}

/// The audit wording of actions a `before_` hook asked for and did not get.
fn ignored_note(ignored: &GateNotes) -> String {
    if ignored.is_empty() {
        return String::new();
    }
    format!(
        "; not carried out (before_ hooks decide, they do not act): {}",
        ignored.join(", ")
    )
}

pub fn refusal_audit(
    actor: &Principal,
    command: &Command,
    refusal: &Refusal,
    now: DateTime<Utc>,
) -> Option<AuditDraft> {
    if !refusal.is_rule_refusal() {
        return None;
    }
    let account_id = command.account_id()?;
    Some(AuditDraft {
        account_id: account_id.to_string(),
        actor: actor.audit_name(),
        action: command.action().to_string(),
        target: command.target(),
        outcome: format!("refused:{}", refusal.code),
        detail: refusal.detail.clone(),
        at: now,
        cause: None,
    })
}
