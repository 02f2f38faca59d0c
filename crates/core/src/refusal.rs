//! Why the core said no. Each refusal carries a stable `code` (docs/api.md
//! "Codes a client can act on") and a kind the edges map to a status.

use std::fmt;

use super::event::DomainEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Bad input: a value out of its limits or malformed (400).
    Invalid,
    /// No or bad credentials (401).
    Unauthenticated,
    /// Known caller, not allowed (403).
    Forbidden,
    /// Unknown, or in an account the caller is not a member of (404).
    NotFound,
    /// A rule of the domain refuses it (409).
    Conflict,
    /// Too many attempts (429).
    RateLimited,
    /// The state broke an invariant the core relies on (a counter below
    /// zero): a bug, surfaced instead of hidden (500, nothing committed).
    Broken,
    /// The store failed; not the client's doing (500/503).
    Unavailable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: &'static str,
    pub detail: String,
    /// Hooks that fire even though the command was refused
    /// (`agent_seat_exhausted`, `sell_seat_exhausted`).
    pub events: Vec<DomainEvent>,
    /// The figures of `detail` by name (`used`, `total`), so an edge can
    /// say the refusal in its reader's language with them.
    pub args: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn new(kind: RefusalKind, code: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            kind,
            code,
            detail: detail.into(),
            events: Vec::new(),
            args: Vec::new(),
        }
    }
    /// A figure of the detail, by name.
    pub fn with_arg(mut self, name: &'static str, value: impl ToString) -> Self {
        self.args.push((name, value.to_string()));
        self
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Invalid, "validation_failed", detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            RefusalKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Forbidden, "forbidden", detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Conflict, code, detail)
    }
    pub fn broken(detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Broken, "internal", detail)
    }
    pub fn store(detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Unavailable, "store_unavailable", detail)
    }
    pub fn with_event(mut self, event: DomainEvent) -> Self {
        self.events.push(event);
        self
    }
    /// Refusals by a rule of the domain are audited; malformed input and
    /// unknown targets are not (they would let anyone fill the log).
    pub fn is_rule_refusal(&self) -> bool {
        matches!(self.kind, RefusalKind::Forbidden | RefusalKind::Conflict)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Refusal {}

/// A read failed in the store behind a [`super::StateView`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("store read failed: {0}")]
pub struct ViewError(pub String);

impl From<ViewError> for Refusal {
    fn from(e: ViewError) -> Self {
        Refusal::store(e.0)
    }
}
