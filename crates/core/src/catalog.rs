//! The catalog of commands: one line per command, naming its type and the
//! capability module that holds it (type, audit wording, before-hook and
//! decision, see `Decide`). From it come the [`Command`] enum the daemon
//! passes around, the command types by name (re-exported as `cmd`) and the
//! dispatch. Only this module (and `rules`, which calls it) names every
//! capability; the capabilities never import it.

use serde::{Deserialize, Serialize};

use crate::command::{CommandInfo, Outcome};
use crate::context::{Ctx, Decide, Draft};
use crate::refusal::Refusal;
use crate::view::StateView;
use crate::{
    accounts, addresses, billing, directory, integrations, licences, members, ownership,
    policy_actions, sell, sessions, support, webhooks,
};

/// Declares the commands: one line each, naming the type and the capability
/// module it lives in. Generates the [`Command`] enum the daemon passes
/// around (and serializes: a variant holds its type, so the JSON shape is
/// `{"AddMember": {...}}` as before), a re-export of every command type,
/// and the dispatch to each type's [`Decide`] impl.
macro_rules! commands {
    ($($name:ident in $module:ident,)*) => {
        /// Every command of the core. Each is a type of its own in its
        /// capability's module (`cmd::AddMember` in `members`), which says
        /// what it does, how the audit log names it and which before-hook
        /// it asks.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Command {
            $($name($module::$name),)*
        }

        // The command types, by name (`cmd::AddMember`: the crate root
        // re-exports this module as `cmd`).
        $(pub use $module::$name;)*

        $(impl From<$module::$name> for Command {
            fn from(command: $module::$name) -> Self {
                Command::$name(command)
            }
        })*

        impl Command {
            /// Stable action name for the audit log and metrics.
            pub fn action(&self) -> &'static str {
                self.info().action
            }

            /// The `before_` hook running it may ask, if any.
            pub fn before_hook(&self) -> Option<&'static str> {
                match self {
                    $(Command::$name(_) => <$module::$name as Decide>::BEFORE_HOOK,)*
                }
            }

            /// The audit log's view of the command.
            pub fn info(&self) -> CommandInfo<'_> {
                match self {
                    $(Command::$name(command) => command.info(),)*
                }
            }

            pub(crate) fn decide(
                self,
                view: &dyn StateView,
                ctx: &mut Ctx,
                draft: &Draft,
            ) -> Result<Outcome, Refusal> {
                match self {
                    $(Command::$name(command) => command.decide(view, ctx, draft),)*
                }
            }
        }
    };
}

// Adding a command: its type and `Decide` impl in its capability module,
// one line here, its test, its HTTP route and its console page.
commands! {
    CreateAccount in accounts,
    SetAccountLanguage in accounts,
    AddMember in members,
    ChangeRole in members,
    RemoveMember in members,
    TransferOwnership in ownership,
    SetSeats in billing,
    SetPaymentMethod in billing,
    SetBillingContacts in billing,
    AddIntegration in integrations,
    AuthorizeIntegration in integrations,
    RequestPasswordReset in sessions,
    ConfirmPasswordReset in sessions,
    CreateSession in sessions,
    RevokeSession in sessions,
    OpenSecurityInvestigation in support,
    ContactSupport in support,
    CloseSupportCase in support,
    AddEmail in addresses,
    ConfirmEmailVerification in addresses,
    MakePrimaryEmail in addresses,
    RemoveEmail in addresses,
    ResendInvitation in members,
    RenameMember in addresses,
    RequestLicence in licences,
    GrantLicence in licences,
    DenyLicence in licences,
    StartSellTrial in sell,
    GrantSell in sell,
    ChangeSellRole in sell,
    RemoveSell in sell,
    AppointSellAdmin in sell,
    PolicyNotify in policy_actions,
    ReceiveWebhook in webhooks,
    FlagIntegration in integrations,
    RecordPolicyCall in policy_actions,
    RecordPolicySave in policy_actions,
    SetPolicySwitch in policy_actions,
    CreateScimToken in directory,
    RevokeScimToken in directory,
    NoteScimTokenUse in directory,
    SetMemberActive in directory,
    SetDirectoryIds in directory,
    ProvisionMember in directory,
    RequestPrimaryEmail in directory,
}
