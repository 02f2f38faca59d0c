//! Accounts: creating one with its owner, and the password-set link every new member gets.

use serde::{Deserialize, Serialize};

use crate::command::*;
use crate::context::{token_hash, Ctx, Decide, Draft};
use crate::model::*;
use crate::refusal::Refusal;
use crate::validate;
use crate::view::StateView;

pub(crate) fn password_set_token(
    ctx: &mut Ctx,
    account: &Account,
    user: &User,
) -> (Change, Notice) {
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

pub(crate) fn new_user(
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
        deactivated_at: None,
        external_id: None,
        user_name: None,
        primary_requested: None,
        modified_at: None,
        last_signed_in_at: None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    pub name: String,
    pub owner_name: String,
    pub owner_email: String,
    pub support_seats: u32,
    /// The language of its mails; `None`: the platform's default.
    #[serde(default)]
    pub language: Option<String>,
}

impl Decide for CreateAccount {
    fn info(&self) -> CommandInfo<'_> {
        let CreateAccount { name, .. } = self;
        CommandInfo::of("account.create", None, Target::Account(name))
    }

    fn decide(
        self,
        _view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        create_account(ctx, draft, self)
    }
}

/// The language an account's mails are written in (R-less: a setting of
/// the account, changed by its admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAccountLanguage {
    pub account_id: AccountId,
    /// `None`: the platform's default.
    pub language: Option<String>,
}

impl Decide for SetAccountLanguage {
    fn info(&self) -> CommandInfo<'_> {
        CommandInfo::of(
            "account.language",
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
        let SetAccountLanguage {
            account_id,
            language,
        } = self;
        let language = language
            .map(|l| validate::language("language", &l))
            .transpose()?;
        let (mut account, _) =
            crate::access::member_with(view, draft.actor, &account_id, crate::access::Need::Admin)?;
        if account.language == language {
            return Ok(Outcome::unchanged(Reply::Account(account)));
        }
        account.language = language;
        Ok(Outcome {
            changes: vec![Change::PutAccount(account.clone())],
            notices: vec![],
            events: vec![],
            audit: draft.ok(
                &account_id,
                format!("account:{account_id}"),
                format!(
                    "mails in {}",
                    account
                        .language
                        .as_deref()
                        .unwrap_or("the platform's default")
                ),
            ),
            reply: Reply::Account(account),
        })
    }
}

pub(crate) fn create_account(
    ctx: &mut Ctx,
    draft: &Draft,
    command: CreateAccount,
) -> Result<Outcome, Refusal> {
    let CreateAccount {
        name,
        owner_name,
        owner_email,
        support_seats,
        language,
    } = command;
    let actor = draft.actor;
    let now = ctx.now;
    if *actor != Principal::Operator {
        return Err(Refusal::forbidden("only platform support creates accounts"));
    }
    let name = validate::name("name", &name)?;
    let owner_name = validate::name("owner.name", &owner_name)?;
    let owner_email = validate::email("owner.email", &owner_email)?;
    let support_seats = validate::seats("support_seats", support_seats)?;
    let language = language
        .map(|l| validate::language("language", &l))
        .transpose()?;
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
        scim_tokens: Vec::new(),
        language,
        billing_contacts: Vec::new(),
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
