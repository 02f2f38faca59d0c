//! Platform support's pages (`/support/...`): signed in with the operator
//! token, exchanged for a cookie that never contains it.

use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::page::{
    csrf_refused, problem_page, render, see_other, set_cookie, Chrome, ErrorView, PageForm,
};
use super::pages::{
    act_as_operator, audit_view, licence_row, AuditQuery, CsrfOnly, Flash, LicencesPage, SignInPage,
};
use super::visitor::{self, Visitor, SESSION_COOKIE};
use crate::app::problem::Problem;
use crate::app::{AppState, ClientIp};
use crate::domain::{query, Command, Principal};
use crate::secret;

fn sign_in_view(v: &Visitor, flash: Option<&str>, error: Option<ErrorView>) -> SignInPage {
    SignInPage {
        c: Chrome::new(v, "/support/sign-in", "support.signin.heading", flash),
        heading: v.t.s("support.signin.heading").to_string(),
        intro: v.t.s("support.signin.intro").to_string(),
        action: "/support/sign-in".into(),
        reset_action: String::new(),
        operator: true,
        email: String::new(),
        error,
    }
}

pub async fn sign_in_page(v: Visitor, Query(f): Query<Flash>) -> Response {
    render(
        &v,
        StatusCode::OK,
        &sign_in_view(&v, f.done.as_deref(), None),
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn sign_in(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    PageForm(form): PageForm<TokenForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, "/support/sign-in");
    }
    // Guessing the token costs attempts like guessing a password.
    if let Some(ip) = ip {
        if let Err(p) = app.check_ip(ip) {
            let error = Some(ErrorView::from_problem(v.t, &p));
            return render(
                &v,
                StatusCode::TOO_MANY_REQUESTS,
                &sign_in_view(&v, None, error),
            );
        }
    }
    if !secret::secrets_equal(form.token.trim(), &app.operator_token) {
        app.count_ip_failure(ip);
        let p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the token is wrong",
        );
        let error = Some(ErrorView::from_problem(v.t, &p));
        return render(&v, StatusCode::UNAUTHORIZED, &sign_in_view(&v, None, error));
    }
    let mut response = see_other("/support/accounts");
    let secure = if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            visitor::operator_cookie(&app),
            visitor::OPERATOR_SESSION_SECS
        ),
    );
    set_cookie(&mut response, &visitor::fresh_csrf_cookie(&app.public_url));
    response
}

pub async fn home() -> Response {
    see_other("/support/accounts")
}

pub struct AccountRow {
    id: String,
    name: String,
    seats: String,
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct AccountsPage {
    c: Chrome,
    q: String,
    rows: Vec<AccountRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct AccountsQuery {
    after: Option<String>,
    q: Option<String>,
}

pub async fn accounts_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(q): Query<AccountsQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = "/support/accounts";
    let search = q.q.clone().unwrap_or_default();
    match query::accounts(
        &app.store,
        &Principal::Operator,
        q.after.as_deref(),
        Some(search.as_str()).filter(|s| !s.trim().is_empty()),
        None,
        chrono::Utc::now(),
    ) {
        Ok(page) => {
            let rows = page
                .items
                .into_iter()
                .map(|s| AccountRow {
                    seats: v.t.fill(
                        "support.seats_of",
                        &[
                            ("used", &s.support.seats_used.to_string()),
                            ("total", &s.support.seats_total.to_string()),
                        ],
                    ),
                    id: s.account.id,
                    name: s.account.name,
                })
                .collect();
            let page = AccountsPage {
                c: Chrome::new(&v, path, "accounts.heading", None),
                q: search,
                rows,
                next: page.next,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, path, "/", &r.into()),
    }
}

pub async fn audit_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = format!("/support/accounts/{a}/audit");
    match audit_view(&app, &v, &Principal::Operator, &a, &path, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, "/support/accounts", &p),
    }
}

/// Platform support's posts: the CSRF check, the operator check, the
/// command, back to `back` with a message or the refusal.
async fn operator_act(
    app: &crate::app::App,
    v: &Visitor,
    csrf: &str,
    back: &str,
    done: &str,
    command: impl FnOnce() -> Result<Command, Problem>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    act_as_operator(app, v, csrf, back, done, command).await
}

#[derive(Template)]
#[template(path = "console/support_account.html")]
struct AccountPage {
    c: Chrome,
    id: String,
    name: String,
    seats: String,
    sell: String,
    /// "Name (address)" of the owner, the other admins, the Sell admins.
    owner: String,
    admins: Vec<String>,
    sell_admins: Vec<String>,
    /// Whom support may appoint first Sell admin (R23): (id, "Name
    /// (address)"); empty once Sell has an admin.
    appointable: Vec<(String, String)>,
    error: Option<ErrorView>,
}

fn person(u: &crate::domain::User) -> String {
    format!("{} ({})", u.name, u.primary_address())
}

/// One account as support sees it: its summary (no member data), a
/// security investigation (R19), appointing a Sell admin (R23).
pub async fn account_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = format!("/support/accounts/{a}");
    let summary = query::account_summary(&app.store, &Principal::Operator, &a, chrono::Utc::now())
        .and_then(|s| {
            Ok((
                s,
                query::account_people(&app.store, &Principal::Operator, &a)?,
            ))
        });
    match summary {
        Ok((s, people)) => {
            let page = AccountPage {
                owner: people.owner.as_ref().map(person).unwrap_or_default(),
                admins: people.admins.iter().map(person).collect(),
                sell_admins: people.sell_admins.iter().map(person).collect(),
                appointable: if people.sell_admins.is_empty() {
                    people
                        .members
                        .iter()
                        .map(|u| (u.id.clone(), person(u)))
                        .collect()
                } else {
                    vec![]
                },
                c: Chrome::new(&v, &path, "accounts.heading", f.done.as_deref()),
                id: s.account.id.clone(),
                name: s.account.name.clone(),
                seats: v.t.fill(
                    "support.seats_of",
                    &[
                        ("used", &s.support.seats_used.to_string()),
                        ("total", &s.support.seats_total.to_string()),
                    ],
                ),
                sell: v.t.fill(
                    "support.sell_of",
                    &[
                        (
                            "status",
                            v.t.s(match s.sell_status {
                                crate::domain::SellStatus::NotStarted => "sell.status.not_started",
                                crate::domain::SellStatus::Trial => "sell.status.trial",
                                crate::domain::SellStatus::Active => "sell.status.active",
                            }),
                        ),
                        ("used", &s.sell.seats_used.to_string()),
                        ("total", &s.sell.seats_total.to_string()),
                    ],
                ),
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, &path, "/support/accounts", &r.into()),
    }
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

pub async fn open_investigation(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<NoteForm>,
) -> Response {
    let back = format!("/support/accounts/{a}");
    operator_act(
        &app,
        &v,
        &form.csrf,
        &back,
        "support.investigation_opened",
        || {
            Ok(Command::OpenSecurityInvestigation(
                cmd::OpenSecurityInvestigation {
                    account_id: a,
                    note: form.note,
                },
            ))
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_id: String,
}

pub async fn appoint_sell_admin(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<UserForm>,
) -> Response {
    let back = format!("/support/accounts/{a}");
    operator_act(&app, &v, &form.csrf, &back, "support.appointed", || {
        Ok(Command::AppointSellAdmin(cmd::AppointSellAdmin {
            account_id: a,
            user_id: form.user_id.trim().to_string(),
        }))
    })
    .await
}

/// The licence-request queue: pending first (oldest first), then decided.
pub async fn licences_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(f): Query<Flash>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = "/support/licences";
    let pending = query::licence_requests(
        &app.store,
        &Principal::Operator,
        Some(crate::domain::LicenceStatus::Pending),
    );
    let all = query::licence_requests(&app.store, &Principal::Operator, None);
    match (pending, all) {
        (Ok(pending), Ok(all)) => {
            let mut rows: Vec<_> = pending
                .into_iter()
                .map(|r| licence_row(&app, v.t, r))
                .collect();
            rows.extend(
                all.into_iter()
                    .rev()
                    .filter(|r| r.status != crate::domain::LicenceStatus::Pending)
                    .map(|r| licence_row(&app, v.t, r)),
            );
            let page = LicencesPage {
                c: Chrome::new(&v, path, "licences.heading", f.done.as_deref()),
                base: String::new(),
                support: true,
                rows,
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        (Err(r), _) | (_, Err(r)) => problem_page(&v, path, "/support/accounts", &r.into()),
    }
}

#[derive(Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    csrf: String,
    seats: Option<u32>,
    days: Option<u32>,
}

pub async fn grant(
    State(app): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    PageForm(form): PageForm<GrantForm>,
) -> Response {
    operator_act(
        &app,
        &v,
        &form.csrf,
        "/support/licences",
        "support.granted",
        || {
            let days = form
                .days
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| Problem::bad_request("the grant lasts 1 to 365 days"))?;
            Ok(Command::GrantLicence(cmd::GrantLicence {
                request_id: id,
                seats: form
                    .seats
                    .ok_or_else(|| Problem::bad_request("say how many seats"))?,
                expires_at: chrono::Utc::now() + chrono::Duration::days(i64::from(days)),
            }))
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct DenyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn deny(
    State(app): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    PageForm(form): PageForm<DenyForm>,
) -> Response {
    operator_act(
        &app,
        &v,
        &form.csrf,
        "/support/licences",
        "support.denied",
        || {
            Ok(Command::DenyLicence(cmd::DenyLicence {
                request_id: id,
                reason: form.reason,
            }))
        },
    )
    .await
}

pub struct DeliveryRow {
    id: u64,
    subscriber: String,
    event: String,
    state: String,
    attempts: u32,
    last_error: String,
}

#[derive(Template)]
#[template(path = "console/deliveries.html")]
struct DeliveriesPage {
    c: Chrome,
    rows: Vec<DeliveryRow>,
    error: Option<ErrorView>,
}

/// Shown at most (pending first, then the latest finished).
const DELIVERIES_SHOWN: usize = 200;

pub async fn deliveries_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(f): Query<Flash>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = "/support/deliveries";
    match crate::outbound::list(&app.store, DELIVERIES_SHOWN) {
        Ok(list) => {
            let page = DeliveriesPage {
                c: Chrome::new(&v, path, "deliveries.heading", f.done.as_deref()),
                rows: list
                    .into_iter()
                    .map(|d| DeliveryRow {
                        id: d.id,
                        subscriber: d.subscriber,
                        event: d.event_type,
                        state: format!("{:?}", d.state).to_lowercase(),
                        attempts: d.attempts,
                        last_error: d.last_error.unwrap_or_default(),
                    })
                    .collect(),
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(e) => problem_page(
            &v,
            path,
            "/support/accounts",
            &crate::domain::Refusal::from(e).into(),
        ),
    }
}

/// Sends a delivery again (the API's maintenance write, through the writer).
pub async fn redeliver(
    State(app): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let path = "/support/deliveries";
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, path);
    }
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let Ok(id) = id.parse::<u64>() else {
        return problem_page(
            &v,
            path,
            path,
            &crate::domain::Refusal::not_found("delivery").into(),
        );
    };
    let result = app
        .writer
        .submit_maintenance(Box::new(move |store| {
            crate::outbound::redelivery_writes(store, id)
        }))
        .await;
    match result {
        Ok(()) => see_other(&v.flash_url(path, "deliveries.redelivered")),
        Err(r) => problem_page(&v, path, path, &r.into()),
    }
}

pub struct PolicyRow {
    name: String,
    versions_href: String,
    kind: String,
    hooks: String,
    capabilities: String,
    version: String,
    calls: u64,
    failures: u64,
    error: Option<String>,
    shadow: bool,
    disagreements: u64,
    /// Why it was switched off, by whom, when.
    switched_off: Option<String>,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    c: Chrome,
    rows: Vec<PolicyRow>,
}

/// Loaded policies with their errors (file, line, column).
pub async fn policies_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(f): Query<Flash>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let rows = app
        .policies
        .status()
        .into_iter()
        .map(|p| PolicyRow {
            error: p.last_error.map(|e| match (e.line, e.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", p.name, e.message),
                _ => e.message,
            }),
            versions_href: format!(
                "/support/policies/{}/versions",
                super::page::encode_component(&p.name).replace('/', "%2F")
            ),
            name: p.name,
            kind: p.kind.to_string(),
            hooks: p.hooks.join(", "),
            capabilities: p.capabilities.join(", "),
            version: p.version.chars().take(12).collect(),
            calls: p.calls,
            failures: p.failures,
            shadow: p.shadow,
            disagreements: p.disagreements,
            switched_off: p.switched_off.map(|s| {
                format!(
                    "{} ({}, {})",
                    s.reason,
                    s.by,
                    s.at.format("%Y-%m-%d %H:%M UTC")
                )
            }),
        })
        .collect();
    let page = PoliciesPage {
        c: Chrome::new(
            &v,
            "/support/policies",
            "policies.heading",
            f.done.as_deref(),
        ),
        rows,
    };
    render(&v, StatusCode::OK, &page)
}

#[derive(serde::Deserialize)]
pub struct SwitchForm {
    csrf: String,
    name: String,
    /// `off` or `on`.
    to: String,
    #[serde(default)]
    reason: String,
}

/// Break-glass from the console: switches a policy off (with a reason) or
/// back on, as `POST /v1/policies/{name}/disable|enable` does.
pub async fn switch_policy(
    State(app): State<AppState>,
    v: Visitor,
    PageForm(f): PageForm<SwitchForm>,
) -> Response {
    let known = app.policies.knows(&f.name);
    let disabled = f.to == "off";
    let response = operator_act(
        &app,
        &v,
        &f.csrf,
        "/support/policies",
        "policies.switched",
        || {
            if !known {
                return Err(crate::domain::Refusal::not_found("policy").into());
            }
            Ok(Command::SetPolicySwitch(cmd::SetPolicySwitch {
                name: f.name.clone(),
                disabled,
                reason: f.reason.clone(),
            }))
        },
    )
    .await;
    crate::app::refresh_switches(&app).await;
    response
}

#[derive(Template)]
#[template(path = "console/cases.html")]
struct CasesPage {
    c: Chrome,
    rows: Vec<super::pages::CaseRow>,
    error: Option<ErrorView>,
}

/// Every account's open requests and investigations, oldest first, each
/// closed with an answer the account reads (R19, R23).
pub async fn cases_page(
    State(app): State<AppState>,
    v: Visitor,
    Query(f): Query<Flash>,
) -> Response {
    if !v.is_operator() {
        return see_other("/support/sign-in");
    }
    let path = "/support/cases";
    match query::open_support_cases(&app.store, &Principal::Operator) {
        Ok(cases) => {
            let page = CasesPage {
                c: Chrome::new(&v, path, "cases.heading", f.done.as_deref()),
                rows: cases
                    .into_iter()
                    .map(|c| super::pages::case_row(&app, v.t, c))
                    .collect(),
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, path, "/support/accounts", &r.into()),
    }
}

pub async fn close_case(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, id)): Path<(String, String)>,
    PageForm(form): PageForm<NoteForm>,
) -> Response {
    operator_act(
        &app,
        &v,
        &form.csrf,
        "/support/cases",
        "cases.closed",
        || {
            Ok(Command::CloseSupportCase(cmd::CloseSupportCase {
                account_id: a,
                case_id: id,
                note: form.note,
            }))
        },
    )
    .await
}
