//! The audit log: newest first, filtered by person, action, outcome and
//! dates, in words, with causal links; and the same as CSV.

use crate::console::page::{at, When};
use askama::Template;
use axum::extract::State;

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::{App, AppState};
use crate::console::i18n::Catalogue;
use crate::console::page::{problem_page, render, Chrome, ErrorView};
use crate::console::visitor::Visitor;
use crate::domain::{query, AuditEntry, Principal};

use super::common::*;

/// Entries a page's search looks through at most before answering what it
/// found with a link to go on.
const AUDIT_SCAN_MAX: usize = 20_000;
/// Rows of the CSV export, and the entries it looks through, at most.
const AUDIT_EXPORT_MAX: usize = 10_000;
const AUDIT_EXPORT_SCAN_MAX: usize = 200_000;

/// The actions the filter offers, as the core writes them (each has its
/// words in the catalogue, `action.<name>`).
pub const ACTIONS: &[&str] = &[
    "account.create",
    "account.language",
    "billing.set_payment_method",
    "billing.set_seats",
    "email.add",
    "email.make_primary",
    "email.remove",
    "email.request_primary",
    "email.verify",
    "integration.add",
    "integration.authorize",
    "integration.flag",
    "integration.token_revoked",
    "licence_request.deny",
    "licence_request.file",
    "licence_request.grant",
    "member.add",
    "member.change_role",
    "member.deactivate",
    "member.reactivate",
    "member.remove",
    "member.rename",
    "member.resend_invitation",
    "member.set_directory_ids",
    "owner.transfer",
    "password_reset.confirm",
    "password_reset.request",
    "policy.call",
    "policy.disable",
    "policy.enable",
    "policy.notify",
    "policy.save",
    "scim.token_create",
    "scim.token_revoke",
    "security_investigation.open",
    "sell.appoint_admin",
    "sell.change_role",
    "sell.grant",
    "sell.remove",
    "sell.start_trial",
    "session.create",
    "session.revoke",
    "webhook.receive",
];

pub struct AuditRow {
    seq: u64,
    at: When,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    refused: bool,
    detail: String,
    cause: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    c: Chrome,
    action: String,
    q: AuditQuery,
    /// The filter's query string, for the "older" link and the CSV link.
    query_string: String,
    actions: Vec<(&'static str, String)>,
    rows: Vec<AuditRow>,
    next: Option<u64>,
    error: Option<ErrorView>,
}

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    /// Entries older than this sequence number (the "older" link).
    pub before: Option<u64>,
    /// Part of the name of who acted (a member, the directory, a policy,
    /// platform support), any case.
    #[serde(default)]
    pub who: String,
    /// One action, as the core writes it.
    #[serde(default)]
    pub action: String,
    /// `ok` or `refused`.
    #[serde(default)]
    pub outcome: String,
    /// First and last day, `YYYY-MM-DD`, in UTC.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// The filter as the search applies it.
struct Filter {
    who: String,
    action: String,
    outcome: String,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
}

fn day(field: &str, text: &str) -> Result<Option<chrono::NaiveDate>, Problem> {
    if text.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Problem::bad_request(format!("{field} must be a date written YYYY-MM-DD")))
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter, Problem> {
        if self.who.chars().count() > 200 {
            return Err(Problem::bad_request("who is longer than 200 characters"));
        }
        if !self.action.is_empty() && !ACTIONS.contains(&self.action.as_str()) {
            return Err(Problem::bad_request(
                "action is not one of the log's actions",
            ));
        }
        if !["", "ok", "refused"].contains(&self.outcome.as_str()) {
            return Err(Problem::bad_request("outcome must be ok or refused"));
        }
        let start_of = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        Ok(Filter {
            who: self.who.trim().to_lowercase(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            since: day("from", &self.from)?.map(start_of),
            until: day("to", &self.to)?
                .and_then(|d| d.succ_opt())
                .map(start_of),
        })
    }

    fn query_string(&self) -> String {
        use crate::console::page::encode_component as e;
        format!(
            "who={}&action={}&outcome={}&from={}&to={}",
            e(&self.who),
            e(&self.action),
            e(&self.outcome),
            e(&self.from),
            e(&self.to)
        )
    }
}

/// An entry with who acted and what it was about, in words.
type Named = (AuditEntry, String, String);

/// The entries of a scope that the filter keeps, newest first, with who
/// acted said as a person reads it.
fn search(
    app: &App,
    t: &'static Catalogue,
    who: &Principal,
    scope: &str,
    q: &AuditQuery,
    limit: usize,
    scan_max: usize,
) -> Result<(Vec<Named>, Option<u64>), Problem> {
    let filter = q.filter()?;
    let mut people = People::new(app, t, scope);
    let mut keep = |e: &AuditEntry| {
        (filter.action.is_empty() || e.action == filter.action)
            && match filter.outcome.as_str() {
                "ok" => e.outcome == "ok",
                "refused" => e.outcome != "ok",
                _ => true,
            }
            && filter.until.is_none_or(|until| e.at < until)
            && (filter.who.is_empty() || people.say(&e.actor).to_lowercase().contains(&filter.who))
    };
    let found = query::audit_search(
        &app.store,
        who,
        scope,
        query::AuditAsk {
            before: q.before,
            since: filter.since,
            limit,
            scan_max,
        },
        &mut keep,
    )?;
    // The names the filter looked up serve the rows too.
    let rows = found
        .items
        .into_iter()
        .map(|e| {
            let actor = people.say(&e.actor);
            let target = people.say(&e.target);
            (e, actor, target)
        })
        .collect();
    Ok((rows, found.next))
}

/// An action in words (as written when the catalogue has no words for it).
fn action_words(t: &Catalogue, action: &str) -> String {
    let key = format!("action.{action}");
    if t.has(&key) {
        t.s(&key).to_string()
    } else {
        action.to_string()
    }
}

/// An outcome in words: done, or refused with the refusal's sentence.
fn outcome_words(t: &Catalogue, outcome: &str) -> String {
    match outcome.strip_prefix("refused:") {
        None if outcome == "ok" => t.s("audit.outcome_ok").to_string(),
        None => outcome.to_string(),
        Some(code) => format!(
            "{} {}",
            t.s("audit.outcome_refused"),
            t.refusal(code).unwrap_or(code)
        ),
    }
}

/// One page of a scope's audit log, newest first, filtered (shared with
/// platform support's view of an account).
pub fn audit_view(
    app: &App,
    v: &Visitor,
    who: &Principal,
    scope: &str,
    path: &str,
    q: &AuditQuery,
) -> Result<AuditPage, Problem> {
    let (found, next) = search(app, v.t, who, scope, q, AUDIT_PAGE, AUDIT_SCAN_MAX)?;
    let t = v.t;
    let rows = found
        .into_iter()
        .map(|(e, actor, target)| AuditRow {
            seq: e.seq,
            at: When::new(t, e.at),
            actor,
            action: action_words(t, &e.action),
            target,
            refused: e.outcome != "ok",
            outcome: outcome_words(t, &e.outcome),
            detail: e.detail,
            cause: e.cause,
        })
        .collect();
    let mut actions: Vec<(&'static str, String)> =
        ACTIONS.iter().map(|a| (*a, action_words(t, a))).collect();
    actions.sort_by(|x, y| x.1.cmp(&y.1));
    Ok(AuditPage {
        c: Chrome::new(v, path, "audit.heading", None),
        action: path.to_string(),
        query_string: q.query_string(),
        q: q.clone(),
        actions,
        rows,
        next,
        error: None,
    })
}

/// Who an audit entry names, as a person reads it: a member by name (looked
/// up once per page), the directory, a policy, platform support; anything
/// else as written.
struct People<'a> {
    app: &'a App,
    t: &'static Catalogue,
    scope: &'a str,
    names: std::collections::HashMap<String, String>,
}

impl<'a> People<'a> {
    fn new(app: &'a App, t: &'static Catalogue, scope: &'a str) -> Self {
        People {
            app,
            t,
            scope,
            names: Default::default(),
        }
    }

    fn say(&mut self, named: &str) -> String {
        use crate::domain::StateView;
        let t = self.t;
        if let Some(address) = named.strip_prefix("email:") {
            return address.to_string();
        }
        // A member's address: "Ana (ana@…)".
        if let Some((user, address)) = named
            .strip_prefix("user:")
            .and_then(|rest| rest.split_once(" email:"))
        {
            let name = self.say(&format!("user:{user}"));
            return format!("{name} ({address})");
        }
        if let Some(id) = named.strip_prefix("user:") {
            let (app, scope) = (self.app, self.scope);
            // Bounded: a page's search meets at most its scan budget of
            // distinct people.
            return self
                .names
                .entry(id.to_string())
                .or_insert_with(|| {
                    app.store
                        .user(scope, id)
                        .ok()
                        .flatten()
                        .map_or_else(|| t.s("audit.former_member").to_string(), |u| u.name)
                })
                .clone();
        }
        if named.starts_with("account:") {
            return t.s("audit.the_account").to_string();
        }
        if let Some(name) = named.strip_prefix("directory:") {
            return format!("{name} ({})", t.s("audit.directory"));
        }
        if let Some(name) = named.strip_prefix("policy:") {
            return format!("{} {name}", t.s("audit.policy"));
        }
        match named {
            "operator" => t.s("audit.operator").to_string(),
            "anonymous" => t.s("audit.anonymous").to_string(),
            other => other.to_string(),
        }
    }
}

pub async fn audit_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    let path = at(&a, ["audit"]);
    match audit_view(&app, &v, &who, &a, &path, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &path, &p),
    }
}

/// The filtered log as CSV (admins), newest first: at most
/// `AUDIT_EXPORT_MAX` rows; cells never read as formulas.
pub async fn audit_csv(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    match search(
        &app,
        v.t,
        &who,
        &a,
        &q,
        AUDIT_EXPORT_MAX,
        AUDIT_EXPORT_SCAN_MAX,
    ) {
        Ok((rows, _)) => {
            let mut out =
                String::from("seq,at,who,action,action_code,on,outcome,detail,caused_by\r\n");
            for (e, actor, target) in rows {
                let cells = [
                    e.seq.to_string(),
                    e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    actor,
                    action_words(v.t, &e.action),
                    e.action.clone(),
                    target,
                    outcome_words(v.t, &e.outcome),
                    e.detail,
                    e.cause.map(|c| c.to_string()).unwrap_or_default(),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&line.join(","));
                out.push_str("\r\n");
            }
            csv_response(&format!("audit-{a}.csv"), out)
        }
        Err(p) => problem_page(&v, &at(&a, ["audit"]), &at(&a, []), &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_the_filter_offers_has_words_in_both_languages() {
        for t in [
            crate::console::i18n::english(),
            crate::console::i18n::french(),
        ] {
            for action in ACTIONS {
                assert!(t.has(&format!("action.{action}")), "{} {action}", t.lang);
            }
        }
    }

    #[test]
    fn a_filter_refuses_what_it_cannot_apply() {
        let q = |action: &str, outcome: &str, from: &str| AuditQuery {
            action: action.into(),
            outcome: outcome.into(),
            from: from.into(),
            ..Default::default()
        };
        assert!(q("member.add", "refused", "2026-12-01").filter().is_ok());
        assert!(q("member.explode", "", "").filter().is_err());
        assert!(q("", "maybe", "").filter().is_err());
        assert!(q("", "", "01/12/2026").filter().is_err());
    }
}
