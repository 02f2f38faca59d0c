//! The entry of the core: `execute` hands each command to the module of its
//! capability; a command and the current state in, changes, mails, events
//! and an audit draft out, or a refusal. Nothing here does I/O; time,
//! randomness and policy decisions come in through [`Ctx`].

use chrono::{DateTime, Utc};

use crate::command::*;
use crate::context::{Ctx, Draft};
use crate::refusal::Refusal;
use crate::view::StateView;

use crate::{
    accounts, addresses, billing, integrations, licences, members, ownership, policy_actions, sell,
    sessions, support, webhooks,
};

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
    match command {
        Command::CreateAccount {
            name,
            owner_name,
            owner_email,
            support_seats,
        } => accounts::create_account(
            view,
            ctx,
            &draft,
            name,
            owner_name,
            owner_email,
            support_seats,
        ),
        Command::AddMember {
            account_id,
            name,
            email,
            role,
        } => members::add_member(view, ctx, &draft, account_id, name, email, role),
        Command::ChangeRole {
            account_id,
            user_id,
            role,
        } => members::change_role(view, ctx, &draft, account_id, user_id, role),
        Command::RemoveMember {
            account_id,
            user_id,
        } => members::remove_member(view, ctx, &draft, account_id, user_id),
        Command::TransferOwnership {
            account_id,
            to_user_id,
        } => ownership::transfer_ownership(view, ctx, &draft, account_id, to_user_id),
        Command::SetSeats {
            account_id,
            support_seats,
            sell_seats,
        } => billing::set_seats(view, ctx, &draft, account_id, support_seats, sell_seats),
        Command::SetPaymentMethod {
            account_id,
            kind,
            last4,
        } => billing::set_payment_method(view, ctx, &draft, account_id, kind, last4),
        Command::AddIntegration { account_id, name } => {
            integrations::add_integration(view, ctx, &draft, account_id, name)
        }
        Command::AuthorizeIntegration {
            account_id,
            integration_id,
        } => integrations::authorize_integration(view, ctx, &draft, account_id, integration_id),
        Command::RequestPasswordReset { account_id, email } => {
            sessions::request_password_reset(view, ctx, &draft, account_id, email)
        }
        Command::ConfirmPasswordReset {
            token_hash,
            password_hash,
        } => sessions::confirm_password_reset(view, ctx, &draft, token_hash, password_hash),
        Command::CreateSession {
            account_id,
            user_id,
            email,
            verified_hash,
            token_hash,
        } => sessions::create_session(
            view,
            ctx,
            account_id,
            user_id,
            email,
            verified_hash,
            token_hash,
        ),
        Command::RevokeSession { token_hash } => {
            sessions::revoke_session(view, ctx, &draft, token_hash)
        }
        Command::AddEmail {
            account_id,
            user_id,
            address,
        } => addresses::add_email(view, ctx, &draft, &account_id, &user_id, &address),
        Command::ConfirmEmailVerification { token_hash } => {
            addresses::confirm_email(view, ctx, &draft, &token_hash)
        }
        Command::MakePrimaryEmail {
            account_id,
            user_id,
            address,
        } => addresses::make_primary(view, ctx, &draft, &account_id, &user_id, &address),
        Command::RemoveEmail {
            account_id,
            user_id,
            address,
        } => addresses::remove_email(view, &draft, &account_id, &user_id, &address),
        Command::ResendInvitation {
            account_id,
            user_id,
        } => members::resend_invitation(view, ctx, &draft, account_id, user_id),
        Command::RenameMember {
            account_id,
            user_id,
            name,
        } => addresses::rename_member(view, &draft, &account_id, &user_id, &name),
        Command::RequestLicence {
            account_id,
            product,
            seats,
            reason,
        } => licences::request_licence(view, ctx, &draft, &account_id, product, seats, &reason),
        Command::GrantLicence {
            request_id,
            seats,
            expires_at,
        } => licences::grant_licence(view, ctx, &draft, &request_id, seats, expires_at),
        Command::DenyLicence { request_id, reason } => {
            licences::deny_licence(view, ctx, &draft, &request_id, &reason)
        }
        Command::StartSellTrial { account_id } => {
            sell::start_sell_trial(view, ctx, &draft, &account_id)
        }
        Command::GrantSell {
            account_id,
            user_id,
            role,
        } => sell::grant_sell(view, ctx, &draft, &account_id, &user_id, role),
        Command::ChangeSellRole {
            account_id,
            user_id,
            role,
        } => sell::change_sell_role(view, ctx, &draft, &account_id, &user_id, role),
        Command::RemoveSell {
            account_id,
            user_id,
        } => sell::remove_sell(view, ctx, &draft, &account_id, &user_id),
        Command::AppointSellAdmin {
            account_id,
            user_id,
        } => sell::appoint_sell_admin(view, ctx, &draft, &account_id, &user_id),
        Command::PolicyNotify {
            account_id,
            address,
            subject,
            body,
        } => policy_actions::policy_notify(view, &draft, &account_id, &address, &subject, &body),
        Command::FlagIntegration {
            account_id,
            integration_id,
        } => integrations::flag_integration(view, ctx, &draft, &account_id, &integration_id),
        Command::ReceiveWebhook {
            source,
            webhook_id,
            kind,
            data,
        } => webhooks::receive_webhook(view, ctx, &draft, source, webhook_id, kind, data),
        Command::RecordPolicyCall { account_id, call } => {
            policy_actions::record_policy_call(view, &draft, &account_id, call)
        }
        Command::OpenSecurityInvestigation { account_id, note } => {
            support::open_security_investigation(view, ctx, &draft, account_id, note)
        }
        Command::SetPolicySwitch {
            name,
            disabled,
            reason,
        } => policy_actions::set_policy_switch(ctx, &draft, name, disabled, reason),
        Command::RecordPolicySave { name, diff } => {
            policy_actions::record_policy_save(&draft, name, diff)
        }
    }
}

pub fn refusal_audit(
    actor: &Principal,
    subject: &AuditSubject,
    refusal: &Refusal,
    now: DateTime<Utc>,
) -> Option<AuditDraft> {
    if !refusal.is_rule_refusal() {
        return None;
    }
    let account_id = subject.account_id.as_ref()?;
    Some(AuditDraft {
        account_id: account_id.clone(),
        actor: actor.audit_name(),
        action: subject.action.to_string(),
        target: subject.target.clone(),
        outcome: format!("refused:{}", refusal.code),
        detail: refusal.detail.clone(),
        at: now,
        cause: None,
    })
}
