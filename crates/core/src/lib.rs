//! The domain core: the rules of docs/rules.md with no I/O. It never names an
//! HTTP, sled, mail or script type; it sees the state through [`StateView`]
//! and answers with an [`Outcome`] (changes, mails, events, audit) or a
//! [`Refusal`].

// Shared by every capability.
mod access;
pub mod catalog;
pub mod command;
pub mod context;
pub mod event;
pub mod limits;
pub mod model;
pub mod refusal;
pub mod rules;
mod seats;
pub mod stamp;
pub mod validate;
pub mod view;

// One module per capability: its commands, checks, events and audit wording.
mod accounts;
mod addresses;
mod billing;
mod directory;
mod integrations;
mod licences;
mod members;
mod ownership;
mod policy_actions;
mod sell;
mod sessions;
mod support;
mod webhooks;

// The read side.
pub mod query;

pub use access::{role_label, snapshot};
/// Every command type by name: `Command::AddMember(cmd::AddMember { .. })`.
pub use catalog as cmd;
pub use catalog::Command;
pub use command::*;
pub use context::{token_digest, token_hash, token_hash_in, token_hash_of, Ctx, Entropy, Settings};
pub use directory::{scim_token_parts, SCIM_TOKEN_PREFIX};
pub use event::*;
pub use model::*;
pub use policy_actions::PLATFORM_AUDIT_SCOPE;
pub use refusal::*;
pub use rules::{execute, refusal_audit};
pub use view::StateView;
