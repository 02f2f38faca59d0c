//! The account's pages (`/a/{account}/...`): each parses its form, calls
//! the core (`App::submit`, `domain::query`), and renders the answer, or
//! the refusal next to the control that caused it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;

use super::page::{
    csrf_refused, problem_page, render, see_other, set_cookie, Chrome, ErrorView, PageForm,
};
use super::visitor::{self, Visitor, SESSION_COOKIE};
use crate::domain::{query, token_hash, Command, Principal, Refusal, StateView, SupportRole};
use crate::http::api::{App, AppState, ClientIp};
use crate::http::problem::Problem;

/// Members shown per page.
const MEMBERS_PAGE: usize = 50;
/// Members a search looks through, at most (a search is a scan).
const SEARCH_SCAN_MAX: usize = 5_000;
/// Audit entries shown per page.
const AUDIT_PAGE: usize = 100;

#[derive(Deserialize)]
pub struct Flash {
    pub done: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// The member signed in to account `a`, or a redirect to its sign-in page.
#[allow(clippy::result_large_err)]
fn member_of(v: &Visitor, a: &str) -> Result<Principal, Response> {
    match &v.who {
        Some(p @ Principal::Member { account_id, .. }) if account_id == a => Ok(p.clone()),
        Some(Principal::Operator) => Ok(Principal::Operator),
        _ => Err(see_other(&format!("/a/{a}/sign-in"))),
    }
}

fn refusal(p: impl Into<Problem>) -> Problem {
    p.into()
}

// ---------------------------------------------------------------- sign-in

/// The sign-in page of an account, and of platform support (`operator`).
#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub struct SignInPage {
    pub c: Chrome,
    pub heading: String,
    pub intro: String,
    pub action: String,
    pub reset_action: String,
    pub operator: bool,
    pub email: String,
    pub error: Option<ErrorView>,
}

fn sign_in_view(
    v: &Visitor,
    app: &App,
    a: &str,
    flash: Option<&str>,
    email: String,
    error: Option<ErrorView>,
) -> SignInPage {
    // The account's name if it exists; its id otherwise (the page says the
    // same whether the account exists or not).
    let name = app
        .store
        .account(a)
        .ok()
        .flatten()
        .map_or_else(|| a.to_string(), |acc| acc.name);
    SignInPage {
        c: Chrome::new(v, &format!("/a/{a}/sign-in"), "signin.heading", flash),
        heading: v.t.s("signin.heading").to_string(),
        intro: v.t.s("signin.intro").replace("{account}", &name),
        action: format!("/a/{a}/sign-in"),
        reset_action: format!("/a/{a}/password-reset"),
        operator: false,
        email,
        error,
    }
}

pub async fn sign_in_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    render(
        &v,
        StatusCode::OK,
        &sign_in_view(&v, &app, &a, f.done.as_deref(), String::new(), None),
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    PageForm(form): PageForm<SignInForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &format!("/a/{a}/sign-in"));
    }
    match crate::http::sessions::sign_in_with_password(
        &app,
        ip,
        a.clone(),
        form.email.clone(),
        form.password,
    )
    .await
    {
        Ok((token, session)) => {
            let mut response = see_other(&format!("/a/{a}"));
            let ttl = (session.expires_at - chrono::Utc::now())
                .num_seconds()
                .max(0);
            set_cookie(
                &mut response,
                &format!(
                    "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{}",
                    secure(&app)
                ),
            );
            response
        }
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(
                &v,
                status,
                &sign_in_view(&v, &app, &a, None, form.email, error),
            )
        }
    }
}

fn secure(app: &App) -> &'static str {
    if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Asks for a reset link; the same answer whether the address exists.
pub async fn request_reset(
    State(app): State<AppState>,
    v: Visitor,
    ClientIp(ip): ClientIp,
    Path(a): Path<String>,
    PageForm(form): PageForm<EmailForm>,
) -> Response {
    let path = format!("/a/{a}/sign-in");
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    match crate::http::sessions::request_reset(&app, ip, a.clone(), form.email).await {
        Ok(()) => see_other(&format!("{path}?done=signin.reset_sent")),
        Err(p) => problem_page(&v, &path, &path, &p),
    }
}

pub async fn sign_out(
    State(app): State<AppState>,
    v: Visitor,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, "/");
    }
    let back = match (&v.who, v.account_id()) {
        (Some(who), Some(a)) => {
            if let Some(hash) = &v.session_hash {
                if let Err(p) = app
                    .submit(
                        who.clone(),
                        Command::RevokeSession {
                            token_hash: hash.clone(),
                        },
                    )
                    .await
                {
                    return problem_page(&v, "/", "/", &p);
                }
            }
            format!("/a/{a}/sign-in?done=signin.signed_out")
        }
        _ => {
            if let Some(nonce) = &v.operator_nonce {
                visitor::revoke_operator(nonce);
            }
            "/support/sign-in?done=signin.signed_out".to_string()
        }
    };
    let mut response = see_other(&back);
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct HomePage {
    c: Chrome,
    error: Option<ErrorView>,
    back: String,
}

/// `/`: a member goes to their account; others are told where to sign in.
pub async fn home(v: Visitor) -> Response {
    if let Some(a) = v.account_id() {
        return see_other(&format!("/a/{a}"));
    }
    if v.is_operator() {
        return see_other("/support/accounts");
    }
    let page = HomePage {
        c: Chrome::new(&v, "/", "signin.heading", None),
        error: Some(ErrorView {
            code: "unauthorized".into(),
            summary: v.t.s("error.unauthorized").to_string(),
            detail: String::new(),
        }),
        back: "/support/sign-in".into(),
    };
    render(&v, StatusCode::OK, &page)
}

/// `/a/{a}`: admins land on Team members, everyone else on their profile.
pub async fn account_home(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let admin = who
        .user_id()
        .and_then(|u| app.store.user(&a, u).ok().flatten())
        .is_some_and(|u| u.support_role == SupportRole::Admin);
    if admin {
        see_other(&format!("/a/{a}/members"))
    } else {
        see_other(&format!("/a/{a}/profile"))
    }
}

// ------------------------------------------------- mailed links (tokens)

#[derive(Template)]
#[template(path = "console/token_form.html")]
struct TokenPage {
    c: Chrome,
    heading: String,
    intro: String,
    action: String,
    token: String,
    password: bool,
    button: String,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn password_view(v: &Visitor, path: &str, token: String, error: Option<ErrorView>) -> TokenPage {
    TokenPage {
        c: Chrome::new(v, path, "password.heading", None),
        heading: v.t.s("password.heading").to_string(),
        intro: v.t.s("password.intro").to_string(),
        action: path.to_string(),
        token,
        password: true,
        button: v.t.s("password.button").to_string(),
        error,
    }
}

/// The account a mailed token belongs to (to send its holder to the
/// account's own pages).
fn token_account(app: &App, token: &str) -> Option<String> {
    if token.is_empty() || token.len() > crate::domain::validate::TOKEN_MAX_CHARS {
        return None;
    }
    app.store
        .token(&token_hash(token))
        .ok()
        .flatten()
        .map(|t| t.account_id)
}

/// `/password/set` and `/password/reset` without an account (links mailed
/// before links named their account): on to the account's page.
pub async fn password_page(
    State(app): State<AppState>,
    v: Visitor,
    uri: Uri,
    Query(q): Query<TokenQuery>,
) -> Response {
    match token_account(&app, &q.token) {
        Some(a) => see_other(&format!(
            "/a/{a}{}?token={}",
            uri.path(),
            super::page::encode_component(&q.token)
        )),
        None => problem_page(&v, uri.path(), "/", &invalid_token()),
    }
}

fn invalid_token() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_token",
        "the link is invalid, already used or expired; ask for a new one",
    )
}

pub async fn account_password_page(v: Visitor, uri: Uri, Query(q): Query<TokenQuery>) -> Response {
    render(
        &v,
        StatusCode::OK,
        &password_view(&v, uri.path(), q.token, None),
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub async fn set_password(
    State(app): State<AppState>,
    v: Visitor,
    uri: Uri,
    Path(a): Path<String>,
    PageForm(form): PageForm<PasswordForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, uri.path());
    }
    match crate::http::sessions::set_password(&app, &form.token, form.password).await {
        Ok(()) => see_other(&format!("/a/{a}/sign-in?done=signin.password_set")),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(
                &v,
                status,
                &password_view(&v, uri.path(), form.token, error),
            )
        }
    }
}

fn verify_view(v: &Visitor, a: &str, token: String, error: Option<ErrorView>) -> TokenPage {
    let path = format!("/a/{a}/email/verify");
    TokenPage {
        c: Chrome::new(v, &path, "verify.heading", None),
        heading: v.t.s("verify.heading").to_string(),
        intro: v.t.s("verify.intro").to_string(),
        action: path,
        token,
        password: false,
        button: v.t.s("verify.button").to_string(),
        error,
    }
}

/// The link only shows a button: mail scanners open links, and opening
/// one must not verify anything.
pub async fn verify_page(
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Response {
    render(&v, StatusCode::OK, &verify_view(&v, &a, q.token, None))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn verify(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<TokenForm>,
) -> Response {
    let path = format!("/a/{a}/email/verify");
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let result = if token_account(&app, &form.token).is_none() {
        Err(invalid_token())
    } else {
        app.submit(
            Principal::Anonymous,
            Command::ConfirmEmailVerification {
                token_hash: token_hash(&form.token),
            },
        )
        .await
        .map(|_| ())
    };
    match result {
        Ok(()) if v.account_id() == Some(a.as_str()) => {
            see_other(&format!("/a/{a}/profile?done=verify.done"))
        }
        Ok(()) => see_other(&format!("/a/{a}/sign-in?done=verify.done")),
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let error = Some(ErrorView::from_problem(v.t, &p));
            render(&v, status, &verify_view(&v, &a, form.token, error))
        }
    }
}

// ----------------------------------------------------------- team members

pub struct MemberRow {
    id: String,
    name: String,
    email: String,
    verified: bool,
    role: String,
    role_value: &'static str,
    is_owner: bool,
    is_self: bool,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    c: Chrome,
    base: String,
    seats_line: String,
    q: String,
    rows: Vec<MemberRow>,
    next: Option<String>,
    error: Option<ErrorView>,
    add_name: String,
    add_email: String,
    no_seat: bool,
    viewer_is_owner: bool,
}

#[derive(Deserialize, Default)]
pub struct MembersQuery {
    after: Option<String>,
    q: Option<String>,
    done: Option<String>,
}

fn role_value(role: SupportRole) -> &'static str {
    match role {
        SupportRole::Admin => "admin",
        SupportRole::Agent => "agent",
        SupportRole::EndUser => "end_user",
    }
}

/// The members page's content, or the refusal that stops it.
fn members_view(
    app: &App,
    v: &Visitor,
    who: &Principal,
    a: &str,
    q: &MembersQuery,
) -> Result<MembersPage, Problem> {
    let search = q.q.as_deref().map(str::trim).unwrap_or("").to_lowercase();
    let (summary, first) = query::team(
        &app.store,
        who,
        a,
        q.after.as_deref(),
        Some(MEMBERS_PAGE),
        chrono::Utc::now(),
    )?;
    let (items, next) = if search.is_empty() {
        (first.items, first.next)
    } else {
        // A bounded scan: names and addresses are not indexed.
        let mut found = Vec::new();
        let mut after = q.after.clone();
        let mut scanned = 0;
        let mut next = None;
        while scanned < SEARCH_SCAN_MAX {
            let page = query::members(&app.store, who, a, after.as_deref(), Some(MEMBERS_PAGE))?;
            scanned += page.items.len();
            for m in page.items {
                let hit = m.user.name.to_lowercase().contains(&search)
                    || m.user
                        .emails
                        .iter()
                        .any(|e| e.address.to_lowercase().contains(&search));
                if hit {
                    found.push(m);
                }
            }
            after = page.next;
            if after.is_none() || found.len() >= MEMBERS_PAGE {
                next = after.clone().filter(|_| found.len() >= MEMBERS_PAGE);
                break;
            }
        }
        (found, next)
    };
    let me = v.user_id().unwrap_or("");
    let rows = items
        .into_iter()
        .map(|m| MemberRow {
            id: m.user.id.clone(),
            name: m.user.name.clone(),
            email: m.user.primary_address().to_string(),
            verified: m.user.primary_verified(),
            role: v.t.role(m.role_label).to_string(),
            role_value: role_value(m.user.support_role),
            is_owner: m.is_owner,
            is_self: m.user.id == me,
        })
        .collect();
    Ok(MembersPage {
        c: Chrome::new(
            v,
            &format!("/a/{a}/members"),
            "members.heading",
            q.done.as_deref(),
        ),
        base: format!("/a/{a}"),
        seats_line: v
            .t
            .s("members.seats")
            .replace("{used}", &summary.support.seats_used.to_string())
            .replace("{total}", &summary.support.seats_total.to_string()),
        q: q.q.clone().unwrap_or_default(),
        rows,
        next,
        error: None,
        add_name: String::new(),
        add_email: String::new(),
        no_seat: summary.support.seats_used >= summary.support.seats_total,
        viewer_is_owner: me == summary.account.owner_id,
    })
}

pub async fn members_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/members");
    match members_view(&app, &v, &who, &a, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &format!("/a/{a}/profile"), &p),
    }
}

#[derive(Deserialize)]
pub struct AddMemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    role: Option<SupportRole>,
}

pub async fn add_member(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<AddMemberForm>,
) -> Response {
    let path = format!("/a/{a}/members");
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let submitted = app
        .submit(
            who.clone(),
            Command::AddMember {
                account_id: a.clone(),
                name: form.name.clone(),
                email: form.email.clone(),
                role: form.role.unwrap_or(SupportRole::Agent),
            },
        )
        .await;
    match submitted {
        Ok(_) => see_other(&format!("{path}?done=members.added")),
        Err(p) => {
            // The refusal beside the form, with what was typed kept.
            match members_view(&app, &v, &who, &a, &MembersQuery::default()) {
                Ok(mut page) => {
                    page.error = Some(ErrorView::from_problem(v.t, &p));
                    page.add_name = form.name;
                    page.add_email = form.email;
                    page.no_seat |= p.code == "agent_seat_exhausted";
                    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::CONFLICT);
                    render(&v, status, &page)
                }
                Err(_) => problem_page(&v, &path, &path, &p),
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    csrf: String,
    role: Option<SupportRole>,
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
    let sep = if back.contains('?') { "&" } else { "?" };
    match result {
        Ok(()) => see_other(&format!("{back}{sep}done={done}")),
        // Back to the page of the control, the refusal in words on it;
        // a refusal without a sentence of its own keeps its detail on a
        // page of its own.
        Err(p) if v.t.refusal(&p.code).is_some() => {
            see_other(&format!("{back}{sep}done=error.{}", p.code))
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
        Ok(()) => see_other(&format!("{back}?done={done}")),
        Err(p) if v.t.refusal(&p.code).is_some() => {
            see_other(&format!("{back}?done=error.{}", p.code))
        }
        Err(p) => problem_page(v, back, back, &p),
    }
}

pub async fn change_role(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<RoleForm>,
) -> Response {
    let back = format!("/a/{a}/members");
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "members.role_changed",
        |_| {
            Ok(Command::ChangeRole {
                account_id,
                user_id: u,
                role: form
                    .role
                    .ok_or_else(|| Problem::bad_request("pick a role"))?,
            })
        },
    )
    .await
}

pub async fn remove_member(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = format!("/a/{a}/members");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "members.removed", |_| {
        Ok(Command::RemoveMember {
            account_id,
            user_id: u,
        })
    })
    .await
}

#[derive(Deserialize)]
pub struct SeatRequestForm {
    #[serde(default)]
    csrf: String,
    product: Option<crate::domain::Product>,
    seats: Option<u32>,
    #[serde(default)]
    reason: String,
    /// `licences` when sent from the Licence requests page.
    back: Option<String>,
}

/// "Request temporary seats" (R18), from Team members or Licence requests.
pub async fn request_seats(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<SeatRequestForm>,
) -> Response {
    let back = match form.back.as_deref() {
        Some("licences") => format!("/a/{a}/licences"),
        _ => format!("/a/{a}/members"),
    };
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "members.request_sent",
        |_| {
            Ok(Command::RequestLicence {
                account_id,
                product: form.product.unwrap_or(crate::domain::Product::Support),
                seats: form
                    .seats
                    .ok_or_else(|| Problem::bad_request("say how many seats"))?,
                reason: form.reason,
            })
        },
    )
    .await
}

pub struct LicenceRow {
    pub id: String,
    pub account_id: String,
    pub created: String,
    pub product: &'static str,
    pub seats: u32,
    pub reason: String,
    pub status: String,
    pub pending: bool,
}

/// A licence request as a row of a page (the account's or support's).
pub fn licence_row(t: &super::i18n::Catalogue, r: crate::domain::LicenceRequest) -> LicenceRow {
    use crate::domain::{LicenceStatus, Product};
    let status = match r.status {
        LicenceStatus::Pending => t.s("licences.status.pending").to_string(),
        LicenceStatus::Granted => t
            .s("licences.status.granted")
            .replace("{seats}", &r.granted_seats.unwrap_or(r.seats).to_string())
            .replace(
                "{until}",
                &r.expires_at
                    .map(|e| e.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
            ),
        LicenceStatus::Denied => t
            .s("licences.status.denied")
            .replace("{reason}", r.deny_reason.as_deref().unwrap_or("")),
    };
    LicenceRow {
        pending: r.status == LicenceStatus::Pending,
        id: r.id,
        account_id: r.account_id,
        created: r.created_at.format("%Y-%m-%d %H:%M").to_string(),
        product: match r.product {
            Product::Support => t.s("licences.product.support"),
            Product::Sell => t.s("licences.product.sell"),
        },
        seats: r.seats,
        reason: r.reason,
        status,
    }
}

#[derive(Template)]
#[template(path = "console/licences.html")]
pub struct LicencesPage {
    pub c: Chrome,
    pub base: String,
    pub support: bool,
    pub rows: Vec<LicenceRow>,
    pub error: Option<ErrorView>,
}

pub async fn licences_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/licences");
    let mut page = LicencesPage {
        c: Chrome::new(&v, &path, "licences.heading", f.done.as_deref()),
        base: format!("/a/{a}"),
        support: false,
        rows: Vec::new(),
        error: None,
    };
    match query::account_licence_requests(&app.store, &who, &a) {
        Ok(list) => {
            page.rows = list
                .into_iter()
                .rev()
                .map(|r| licence_row(v.t, r))
                .collect();
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => {
            let p: Problem = r.into();
            page.error = Some(ErrorView::from_problem(v.t, &p));
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::FORBIDDEN);
            render(&v, status, &page)
        }
    }
}

// -------------------------------------------------------------------- Sell

pub struct SellRow {
    id: String,
    name: String,
    role: &'static str,
    role_value: &'static str,
}

#[derive(Template)]
#[template(path = "console/sell.html")]
struct SellPage {
    c: Chrome,
    base: String,
    status_line: String,
    not_started: bool,
    seats_line: String,
    no_admin: bool,
    rows: Vec<SellRow>,
    others: Vec<(String, String)>,
    error: Option<ErrorView>,
}

pub async fn sell_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    use crate::domain::{SellRole, SellStatus};
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/sell");
    let t = v.t;
    let loaded = (|| -> Result<SellPage, Problem> {
        let users = query::sell_users(&app.store, &who, &a)?;
        let summary = query::account_summary(&app.store, &who, &a, chrono::Utc::now())?;
        let members = query::members(&app.store, &who, &a, None, Some(query::PAGE_LIMIT_MAX))?;
        let status = match summary.sell_status {
            SellStatus::NotStarted => t.s("sell.status.not_started"),
            SellStatus::Trial => t.s("sell.status.trial"),
            SellStatus::Active => t.s("sell.status.active"),
        };
        Ok(SellPage {
            c: Chrome::new(&v, &path, "sell.heading", f.done.as_deref()),
            base: format!("/a/{a}"),
            status_line: t.s("sell.status").replace("{status}", status),
            not_started: summary.sell_status == SellStatus::NotStarted,
            seats_line: t
                .s("sell.seats")
                .replace("{used}", &summary.sell.seats_used.to_string())
                .replace("{total}", &summary.sell.seats_total.to_string()),
            no_admin: summary.sell_status != SellStatus::NotStarted
                && summary.account.sell.admin_count == 0,
            rows: users
                .into_iter()
                .map(|m| SellRow {
                    id: m.user.id,
                    name: m.user.name,
                    role: if m.user.sell_role == SellRole::Admin {
                        t.s("sell.role.admin")
                    } else {
                        t.s("sell.role.user")
                    },
                    role_value: if m.user.sell_role == SellRole::Admin {
                        "admin"
                    } else {
                        "user"
                    },
                })
                .collect(),
            others: members
                .items
                .into_iter()
                .filter(|m| m.user.sell_role == SellRole::None)
                .map(|m| (m.user.id, m.user.name))
                .collect(),
            error: None,
        })
    })();
    match loaded {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &format!("/a/{a}"), &p),
    }
}

pub async fn start_trial(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = format!("/a/{a}/sell");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.started", |_| {
        Ok(Command::StartSellTrial { account_id })
    })
    .await
}

#[derive(Deserialize)]
pub struct SellUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_id: String,
    role: Option<crate::domain::SellRole>,
}

pub async fn grant_sell(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<SellUserForm>,
) -> Response {
    let back = format!("/a/{a}/sell");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.granted", |_| {
        Ok(Command::GrantSell {
            account_id,
            user_id: form.user_id,
            role: form.role.unwrap_or(crate::domain::SellRole::User),
        })
    })
    .await
}

#[derive(Deserialize)]
pub struct SellRoleForm {
    #[serde(default)]
    csrf: String,
    role: Option<crate::domain::SellRole>,
}

pub async fn change_sell_role(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<SellRoleForm>,
) -> Response {
    let back = format!("/a/{a}/sell");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.role_changed", |_| {
        Ok(Command::ChangeSellRole {
            account_id,
            user_id: u,
            role: form
                .role
                .ok_or_else(|| Problem::bad_request("pick a Sell role"))?,
        })
    })
    .await
}

pub async fn remove_sell(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = format!("/a/{a}/sell");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "sell.removed", |_| {
        Ok(Command::RemoveSell {
            account_id,
            user_id: u,
        })
    })
    .await
}

// ----------------------------------------------------------- account owner

pub struct Candidate {
    id: String,
    name: String,
    email: String,
}

pub struct Confirm {
    to: String,
    intro: String,
    billing: String,
    integrations: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/owner.html")]
struct OwnerPage {
    c: Chrome,
    base: String,
    current_line: String,
    viewer_is_owner: bool,
    candidates: Vec<Candidate>,
    confirm: Option<Confirm>,
    error: Option<ErrorView>,
}

fn owner_view(
    app: &App,
    v: &Visitor,
    who: &Principal,
    a: &str,
    flash: Option<&str>,
) -> Result<OwnerPage, Problem> {
    let owner = query::owner(&app.store, who, a)?;
    let viewer_is_owner = v.user_id() == Some(owner.user.id.as_str());
    let candidates = if viewer_is_owner {
        query::owner_candidates(&app.store, who, a)?
            .into_iter()
            // R03: only a verified administrator can receive the account.
            .filter(|m| m.user.primary_verified())
            .map(|m| Candidate {
                email: m.user.primary_address().to_string(),
                id: m.user.id,
                name: m.user.name,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(OwnerPage {
        c: Chrome::new(v, &format!("/a/{a}/owner"), "owner.heading", flash),
        base: format!("/a/{a}"),
        current_line: v
            .t
            .s("owner.current")
            .replace("{name}", &owner.user.name)
            .replace("{email}", owner.user.primary_address()),
        viewer_is_owner,
        candidates,
        confirm: None,
        error: None,
    })
}

pub async fn owner_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/owner");
    match owner_view(&app, &v, &who, &a, f.done.as_deref()) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &format!("/a/{a}"), &p),
    }
}

#[derive(Deserialize)]
pub struct OwnerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

/// Step 2: what the change will do, before "Confirm change".
pub async fn owner_change(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<OwnerForm>,
) -> Response {
    let path = format!("/a/{a}/owner");
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let built = (|| -> Result<OwnerPage, Problem> {
        let mut page = owner_view(&app, &v, &who, &a, None)?;
        let to = query::member(&app.store, &who, &a, &form.to)?;
        // R06: what the current owner set up needs reauthorizing.
        let owner_id = v.user_id().unwrap_or("");
        let integrations = query::integrations(&app.store, &who, &a)?
            .into_iter()
            .filter(|i| i.configured_by == owner_id)
            .map(|i| i.name)
            .collect();
        page.confirm = Some(Confirm {
            to: to.user.id.clone(),
            intro: v
                .t
                .s("owner.confirm_intro")
                .replace("{name}", &to.user.name),
            billing: v
                .t
                .s("owner.effect_billing")
                .replace("{name}", &to.user.name),
            integrations,
        });
        Ok(page)
    })();
    match built {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &path, &p),
    }
}

/// Step 3: the transfer itself (the API's command, with its before-hook).
pub async fn owner_confirm(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<OwnerForm>,
) -> Response {
    let path = format!("/a/{a}/owner");
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let result = app
        .submit(
            who.clone(),
            Command::TransferOwnership {
                account_id: a.clone(),
                to_user_id: form.to,
            },
        )
        .await;
    match result {
        Ok(_) => see_other(&format!("{path}?done=owner.changed_flash")),
        Err(p) => match owner_view(&app, &v, &who, &a, None) {
            // The refusal (a rule's, or a policy's reason) on the owner page.
            Ok(mut page) => {
                page.error = Some(ErrorView::from_problem(v.t, &p));
                let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::CONFLICT);
                render(&v, status, &page)
            }
            Err(_) => problem_page(&v, &path, &path, &p),
        },
    }
}

// ------------------------------------------------------------------ billing

#[derive(Template)]
#[template(path = "console/billing.html")]
struct BillingPage {
    c: Chrome,
    base: String,
    allowed: bool,
    seats_line: String,
    seats_total: u32,
    sell_seats: u32,
    payment: Option<String>,
    invoices: Vec<(String, String, String)>,
    error: Option<ErrorView>,
}

pub async fn billing_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/billing");
    let mut page = BillingPage {
        c: Chrome::new(&v, &path, "billing.heading", f.done.as_deref()),
        base: format!("/a/{a}"),
        allowed: false,
        seats_line: String::new(),
        seats_total: 0,
        sell_seats: 0,
        payment: None,
        invoices: Vec::new(),
        error: None,
    };
    let loaded = (|| -> Result<(), Problem> {
        let payment = query::payment_method(&app.store, &who, &a)?;
        let invoices = query::invoices(&app.store, &who, &a)?;
        let summary = query::account_summary(&app.store, &who, &a, chrono::Utc::now())?;
        page.allowed = true;
        page.payment = payment.map(|p| format!("{} •••• {}", p.kind, p.last4));
        page.invoices = invoices
            .into_iter()
            .map(|i| {
                (
                    i.issued_at.format("%Y-%m-%d").to_string(),
                    i.description,
                    format!("{} seats", i.support_seats),
                )
            })
            .collect();
        page.seats_total = summary.account.support_seats_bought;
        page.sell_seats = summary.account.sell.seats_bought;
        page.seats_line =
            v.t.s("members.seats")
                .replace("{used}", &summary.support.seats_used.to_string())
                .replace("{total}", &summary.support.seats_total.to_string());
        Ok(())
    })();
    match loaded {
        Ok(()) => render(&v, StatusCode::OK, &page),
        // Not the owner: the page says why, in words (R02).
        Err(p) => {
            page.error = Some(ErrorView::from_problem(v.t, &p));
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::FORBIDDEN);
            render(&v, status, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct SeatsForm {
    #[serde(default)]
    csrf: String,
    support_seats: Option<u32>,
    sell_seats: Option<u32>,
}

pub async fn set_seats(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    PageForm(form): PageForm<SeatsForm>,
) -> Response {
    let back = format!("/a/{a}/billing");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "billing.seats_set", |_| {
        Ok(Command::SetSeats {
            account_id,
            support_seats: Some(
                form.support_seats
                    .ok_or_else(|| Problem::bad_request("give a number of seats"))?,
            ),
            sell_seats: form.sell_seats,
        })
    })
    .await
}

// ------------------------------------------------------------- integrations

pub struct IntegrationRow {
    id: String,
    name: String,
    configured_by: String,
    needs_reauth: bool,
}

#[derive(Template)]
#[template(path = "console/integrations.html")]
struct IntegrationsPage {
    c: Chrome,
    base: String,
    rows: Vec<IntegrationRow>,
    error: Option<ErrorView>,
}

pub async fn integrations_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/integrations");
    match query::integrations(&app.store, &who, &a) {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|i| IntegrationRow {
                    configured_by: app
                        .store
                        .user(&a, &i.configured_by)
                        .ok()
                        .flatten()
                        .map_or(i.configured_by.clone(), |u| u.name),
                    needs_reauth: i.status
                        == crate::domain::IntegrationStatus::NeedsReauthorization,
                    id: i.id,
                    name: i.name,
                })
                .collect();
            let page = IntegrationsPage {
                c: Chrome::new(&v, &path, "integrations.heading", f.done.as_deref()),
                base: format!("/a/{a}"),
                rows,
                error: None,
            };
            render(&v, StatusCode::OK, &page)
        }
        Err(r) => problem_page(&v, &path, &format!("/a/{a}"), &refusal(r)),
    }
}

pub async fn authorize_integration(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, i)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = format!("/a/{a}/integrations");
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "integrations.authorized",
        |_| {
            Ok(Command::AuthorizeIntegration {
                account_id,
                integration_id: i,
            })
        },
    )
    .await
}

// ----------------------------------------------------------------- profile

pub struct AddressRow {
    address: String,
    primary: bool,
    verified: bool,
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    c: Chrome,
    base: String,
    user_id: String,
    of_line: String,
    addresses: Vec<AddressRow>,
    error: Option<ErrorView>,
}

pub async fn own_profile(v: Visitor, Path(a): Path<String>, uri: Uri) -> Response {
    match v.user_id() {
        Some(u) if v.account_id() == Some(a.as_str()) => see_other(&format!(
            "/a/{a}/profile/{u}{}",
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        )),
        _ => see_other(&format!("/a/{a}/sign-in")),
    }
}

pub async fn profile_page(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    Query(f): Query<Flash>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/profile/{u}");
    let loaded = (|| -> Result<ProfilePage, Problem> {
        let addresses = query::emails(&app.store, &who, &a, &u)?;
        let name = app
            .store
            .user(&a, &u)
            .map_err(Refusal::from)?
            .map(|u| u.name)
            .unwrap_or_default();
        Ok(ProfilePage {
            c: Chrome::new(&v, &path, "profile.heading", f.done.as_deref()),
            base: format!("/a/{a}"),
            user_id: u.clone(),
            of_line: v.t.s("profile.of").replace("{name}", &name),
            addresses: addresses
                .into_iter()
                .map(|e| AddressRow {
                    address: e.address,
                    primary: e.primary,
                    verified: e.verified,
                })
                .collect(),
            error: None,
        })
    })();
    match loaded {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &format!("/a/{a}"), &p),
    }
}

#[derive(Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
}

pub async fn add_address(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<AddressForm>,
) -> Response {
    let back = format!("/a/{a}/profile/{u}");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "profile.added", |_| {
        Ok(Command::AddEmail {
            account_id,
            user_id: u,
            address: form.address,
        })
    })
    .await
}

pub async fn make_primary(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<AddressForm>,
) -> Response {
    let back = format!("/a/{a}/profile/{u}");
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "profile.made_primary",
        |_| {
            Ok(Command::MakePrimaryEmail {
                account_id,
                user_id: u,
                address: form.address,
            })
        },
    )
    .await
}

pub async fn remove_address(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<AddressForm>,
) -> Response {
    let back = format!("/a/{a}/profile/{u}");
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "profile.removed", |_| {
        Ok(Command::RemoveEmail {
            account_id,
            user_id: u,
            address: form.address,
        })
    })
    .await
}

// --------------------------------------------------------------- audit log

pub struct AuditRow {
    seq: u64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    cause: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    c: Chrome,
    action: String,
    filter: String,
    rows: Vec<AuditRow>,
    next: Option<u64>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<u64>,
    action: Option<String>,
}

/// One page of a scope's audit log, filtered by action (shared with
/// platform support's view of an account).
pub fn audit_view(
    app: &App,
    v: &Visitor,
    who: &Principal,
    scope: &str,
    path: &str,
    q: &AuditQuery,
) -> Result<AuditPage, Problem> {
    let page = query::audit(&app.store, who, scope, q.after, Some(AUDIT_PAGE))?;
    let filter = q.action.clone().unwrap_or_default();
    let next = page.next.as_deref().and_then(|n| n.parse().ok());
    let rows = page
        .items
        .into_iter()
        .filter(|e| filter.is_empty() || e.action.contains(filter.as_str()))
        .map(|e| AuditRow {
            seq: e.seq,
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
            cause: e.cause,
        })
        .collect();
    Ok(AuditPage {
        c: Chrome::new(v, path, "audit.heading", None),
        action: path.to_string(),
        filter,
        rows,
        next,
        error: None,
    })
}

pub async fn audit_page(
    State(app): State<AppState>,
    v: Visitor,
    Path(a): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let who = match member_of(&v, &a) {
        Ok(who) => who,
        Err(r) => return r,
    };
    let path = format!("/a/{a}/audit");
    match audit_view(&app, &v, &who, &a, &path, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &format!("/a/{a}"), &p),
    }
}
