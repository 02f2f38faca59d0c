//! What the account's pages share: the visitor's membership, posts that
//! run one command and come back, the query strings.

use crate::console::page::at;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::App;
use crate::console::page::{csrf_refused, problem_page, see_other};
use crate::console::visitor::Visitor;
use crate::domain::{Command, Principal};

/// Members shown per page.
pub const MEMBERS_PAGE: usize = 50;
/// Members a search looks through, at most (a search is a scan).
pub const SEARCH_SCAN_MAX: usize = 5_000;
/// Audit entries shown per page.
pub const AUDIT_PAGE: usize = 100;

#[derive(Deserialize)]
pub struct Flash {
    pub done: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
    /// `yes` once the visitor confirmed an irreversible action.
    #[serde(default)]
    pub confirmed: String,
}

#[derive(askama::Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    c: crate::console::page::Chrome,
    what: String,
    action: String,
    fields: Vec<(String, String)>,
    back: String,
}

/// Asks before an irreversible action, on a page of its own that needs no
/// script: it says what will happen (`what`), and its button posts the
/// same fields to `action` again with `confirmed=yes`; Cancel goes back.
/// Only a post that says `confirmed=yes` runs the command.
pub fn confirm_first(
    v: &Visitor,
    action: &str,
    back: &str,
    what: String,
    fields: &[(&str, &str)],
) -> Response {
    let page = ConfirmPage {
        c: crate::console::page::Chrome::new(v, back, "confirm.heading", None),
        what,
        action: action.to_string(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        back: back.to_string(),
    };
    crate::console::page::render(v, axum::http::StatusCode::OK, &page)
}

/// Whether a post already carries the visitor's confirmation.
pub fn confirmed(field: &str) -> bool {
    field == "yes"
}

/// A member's name for a confirmation (their id when it cannot be read).
pub fn member_name(app: &App, a: &str, u: &str) -> String {
    use crate::domain::StateView;
    app.store
        .user(a, u)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| u.to_string())
}

/// A visitor signed in to the account of the page's path (`/a/{a}/…`):
/// its member, or platform support. A page handler that takes it runs for
/// them only; anyone else is sent to that account's sign-in page. The one
/// place the account pages learn who is looking.
pub struct SignedIn {
    pub v: Visitor,
    /// The account of the path.
    pub a: String,
    pub who: Principal,
}

impl axum::extract::FromRequestParts<crate::app::AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        let v = match Visitor::from_request_parts(parts, app).await {
            Ok(v) => v,
            Err(never) => match never {},
        };
        let a = parts
            .uri
            .path()
            .strip_prefix("/a/")
            .and_then(|rest| rest.split('/').next())
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let Some(a) = a else {
            return Err(see_other("/"));
        };
        let who = member_of(&v, &a)?;
        Ok(SignedIn { v, a, who })
    }
}

/// The member signed in to account `a`, or a redirect to its sign-in page.
#[allow(clippy::result_large_err)]
pub fn member_of(v: &Visitor, a: &str) -> Result<Principal, Response> {
    match &v.who {
        Some(p @ Principal::Member { account_id, .. }) if account_id == a => Ok(p.clone()),
        Some(Principal::Operator) => Ok(Principal::Operator),
        _ => Err(see_other(&at(a, ["sign-in"]))),
    }
}

pub fn refusal(p: impl Into<Problem>) -> Problem {
    p.into()
}

/// Runs a member command from a post and goes back to `back` with a
/// message, or shows the refusal.
pub async fn act(
    app: &App,
    v: &Visitor,
    a: &str,
    csrf: &str,
    back: &str,
    done: &str,
    command: impl FnOnce(&Principal) -> Result<Command, Problem>,
) -> Response {
    act_then(app, v, a, csrf, back, back, done, command).await
}

/// [`act`], going on to `after` once done (a removal leaves the page of
/// what it removed); a refusal still comes back to `back`.
#[allow(clippy::too_many_arguments)]
pub async fn act_then(
    app: &App,
    v: &Visitor,
    a: &str,
    csrf: &str,
    back: &str,
    after: &str,
    done: &str,
    command: impl FnOnce(&Principal) -> Result<Command, Problem>,
) -> Response {
    if !v.csrf_ok(csrf) {
        return csrf_refused(v, back);
    }
    let who = match member_of(v, a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let result = match command(&who) {
        Ok(c) => app.submit(who, c).await.map(|_| ()),
        Err(p) => Err(p),
    };
    match result {
        Ok(()) => see_other(&v.flash_url(after, done)),
        // Back to the page of the control, the refusal in words on it;
        // a refusal without a sentence of its own keeps its detail on a
        // page of its own.
        Err(p) if v.t.refusal(&p.code).is_some() => {
            see_other(&v.flash_url(back, &format!("error.{}", p.code)))
        }
        Err(p) => problem_page(v, back, back, &p),
    }
}

/// Runs a command as platform support from a post (the caller checked
/// that the visitor is platform support).
pub async fn act_as_operator(
    app: &App,
    v: &Visitor,
    csrf: &str,
    back: &str,
    done: &str,
    command: impl FnOnce() -> Result<Command, Problem>,
) -> Response {
    if !v.csrf_ok(csrf) {
        return csrf_refused(v, back);
    }
    let result = match command() {
        Ok(c) => app.submit(Principal::Operator, c).await.map(|_| ()),
        Err(p) => Err(p),
    };
    match result {
        Ok(()) => see_other(&v.flash_url(back, done)),
        Err(p) if v.t.refusal(&p.code).is_some() => {
            see_other(&v.flash_url(back, &format!("error.{}", p.code)))
        }
        Err(p) => problem_page(v, back, back, &p),
    }
}

/// One CSV cell: quoted when it holds a comma, quote or line break, and
/// never read as a formula.
pub fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A CSV download named `filename`.
pub fn csv_response(filename: &str, body: String) -> Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}
