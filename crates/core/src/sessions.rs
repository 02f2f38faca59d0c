//! Sessions and passwords: sign-in, sign-out, password resets and set links (R17).

use serde::{Deserialize, Serialize};

use crate::access::redeem_token;
use crate::command::*;
use crate::context::{token_hash, Ctx, Decide, Draft};
use crate::model::*;
use crate::refusal::{Refusal, RefusalKind};
use crate::validate;
use crate::view::StateView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPasswordReset {
    pub account_id: AccountId,
    pub email: String,
}

impl Decide for RequestPasswordReset {
    fn info(&self) -> CommandInfo<'_> {
        let RequestPasswordReset { account_id, .. } = self;
        CommandInfo::of(
            "password_reset.request",
            Some(account_id),
            Target::Named("password"),
        )
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RequestPasswordReset { account_id, email } = self;
        request_password_reset(view, ctx, draft, account_id, email)
    }
}

pub(crate) fn request_password_reset(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    account_id: AccountId,
    email: String,
) -> Result<Outcome, Refusal> {
    let now = ctx.now;
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
    // A deactivated member gets no mail either: the same answer (R17).
    if normalize_email(user.primary_address()) != normalize_email(&email) || !user.is_active() {
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

/// `token_hash` is the SHA-256 of the mailed token; `password_hash` the
/// argon2id PHC string of the new password (hashed off the write path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmPasswordReset {
    pub token_hash: String,
    pub password_hash: String,
}

impl Decide for ConfirmPasswordReset {
    fn info(&self) -> CommandInfo<'_> {
        let ConfirmPasswordReset { .. } = self;
        CommandInfo::of("password_reset.confirm", None, Target::Named("password"))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let ConfirmPasswordReset {
            token_hash,
            password_hash,
        } = self;
        confirm_password_reset(view, ctx, draft, token_hash, password_hash)
    }
}

pub(crate) fn confirm_password_reset(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    token_hash: String,
    password_hash: String,
) -> Result<Outcome, Refusal> {
    // Setting the password from the link proves the address it was mailed
    // to (R17) — if the profile still has that address.
    let (token, mut user) = redeem_token(
        view,
        &token_hash,
        &[TokenPurpose::PasswordSet, TokenPurpose::PasswordReset],
        ctx.now,
        "the link is invalid, already used or expired; ask for a new one",
    )?;
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

/// The edge checked the password against `verified_hash`; the core
/// re-checks that it is still the user's hash (compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub email: String,
    pub verified_hash: String,
    pub token_hash: String,
}

impl Decide for CreateSession {
    fn info(&self) -> CommandInfo<'_> {
        let CreateSession {
            account_id,
            user_id,
            ..
        } = self;
        CommandInfo::of("session.create", Some(account_id), Target::User(user_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        _draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let CreateSession {
            account_id,
            user_id,
            email,
            verified_hash,
            token_hash,
        } = self;
        create_session(
            view,
            ctx,
            account_id,
            user_id,
            email,
            verified_hash,
            token_hash,
        )
    }
}

pub(crate) fn create_session(
    view: &dyn StateView,
    ctx: &mut Ctx,
    account_id: AccountId,
    user_id: UserId,
    email: String,
    verified_hash: String,
    token_hash: String,
) -> Result<Outcome, Refusal> {
    let now = ctx.now;
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
    // Told only to whoever knows the password.
    if !user.is_active() {
        return Err(Refusal::new(
            RefusalKind::Forbidden,
            "member_deactivated",
            "this member is deactivated (by the account's directory or an admin); an admin can reactivate them",
        ));
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
    // The last sign-in, to the day: one write per member per day at most.
    let same_day = user
        .last_signed_in_at
        .is_some_and(|last| last.date_naive() == now.date_naive());
    if !user.signed_in_before || !same_day {
        user.signed_in_before = true;
        user.last_signed_in_at = Some(now);
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeSession {
    pub token_hash: String,
}

impl Decide for RevokeSession {
    fn info(&self) -> CommandInfo<'_> {
        let RevokeSession { .. } = self;
        CommandInfo::of("session.revoke", None, Target::Named("session"))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let RevokeSession { token_hash } = self;
        revoke_session(view, ctx, draft, token_hash)
    }
}

pub(crate) fn revoke_session(
    _view: &dyn StateView,
    _ctx: &mut Ctx,
    _draft: &Draft,
    token_hash: String,
) -> Result<Outcome, Refusal> {
    Ok(Outcome {
        changes: vec![Change::DeleteSession { hash: token_hash }],
        notices: vec![],
        events: vec![],
        audit: None,
        reply: Reply::Done,
    })
}
