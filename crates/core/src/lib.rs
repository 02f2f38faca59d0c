//! The domain core: the rules of docs/rules.md with no I/O. It never names an
//! HTTP, sled, mail or script type; it sees the state through [`StateView`]
//! and answers with an [`Outcome`] (changes, mails, events, audit) or a
//! [`Refusal`].

pub mod command;
pub mod event;
pub mod model;
mod products;
pub mod query;
pub mod refusal;
pub mod rules;
pub mod validate;
pub mod view;

pub use command::*;
pub use event::*;
pub use model::*;
pub use products::PLATFORM_AUDIT_SCOPE;
pub use refusal::*;
pub use rules::{execute, refusal_audit, token_hash, Ctx, Entropy, Settings};
pub use view::StateView;
