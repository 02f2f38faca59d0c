//! The account's pages (`/a/{account}/...`), one module per capability:
//! each parses its form, calls the core (`App::submit`, `domain::query`),
//! and renders the answer, or the refusal next to the control that caused
//! it. `common` holds what they share and imports none of them.

mod audit;
mod billing;
mod common;
mod directory;
mod integrations;
mod members;
mod owner;
mod profile;
mod sell;
mod settings;
mod sign_in;
mod support_requests;
mod tokens;

pub use audit::*;
pub use billing::*;
pub use common::{act_as_operator, CsrfOnly, Flash};
pub use directory::*;
pub use integrations::*;
pub use members::*;
pub use owner::*;
pub use profile::*;
pub use sell::*;
pub use settings::*;
pub use sign_in::*;
pub use support_requests::*;
pub use tokens::*;
