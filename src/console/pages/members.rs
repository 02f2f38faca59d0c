//! Team members: the list, search, add, change role, remove, and what the rules allow when no seat is free (R09, R11, R18).

use crate::console::page::at;
use crate::console::page::{Escaped, Text};
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::{App, AppState};
use crate::console::page::{
    csrf_refused, problem_page, render, see_other, Chrome, ErrorView, PageForm,
};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command, Principal, SupportRole};

use super::common::*;

pub struct MemberRow {
    id: Escaped,
    /// Shared with the read cache: its name and address are written from
    /// here, not copied into the row.
    user: std::sync::Arc<crate::domain::User>,
    verified: bool,
    role: &'static str,
    is_self: bool,
    /// Never set a password: the invitation can be mailed again.
    invited: bool,
    /// Deactivated (by the directory or an admin): holds no seat.
    deactivated: bool,
    last_sign_in: Option<crate::console::page::When>,
}

impl MemberRow {
    fn name(&self) -> Text<'_> {
        Text(&self.user.name)
    }

    fn address(&self) -> Text<'_> {
        Text(self.user.primary_address())
    }

    fn role(&self) -> Text<'_> {
        Text(self.role)
    }
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    c: Chrome,
    base: Escaped,
    seats_line: String,
    /// The role filter in force (empty: everyone).
    role: String,
    /// Temporary seats and when each grant ends (R11, R18).
    expiring: Vec<String>,
    q: String,
    /// `name`, `role`, or empty (the owner first, then by id).
    sort: String,
    /// Whether sorting is offered (accounts of at most `SEARCH_SCAN_MAX`
    /// members: a sort reads them all).
    sortable: bool,
    rows: Vec<MemberRow>,
    /// "Members 51–100 of 230".
    range_line: String,
    prev_href: Option<String>,
    next_href: Option<String>,
    error: Option<ErrorView>,
    add_name: String,
    add_email: String,
    no_seat: bool,
    viewer_is_owner: bool,
    /// "The account owner, <name>, can buy more seats…": who can act.
    no_seat_buy: String,
    /// Only the owner asks for temporary seats (R18): who to ask.
    ask_owner: String,
    /// The pending request for temporary Support seats, if one waits.
    pending_request: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct MembersQuery {
    after: Option<String>,
    /// The page before this member (in id order).
    before: Option<String>,
    /// Where the page starts among the members listed (0-based): the
    /// offset of a sorted or filtered list, the count shown otherwise.
    from: Option<usize>,
    q: Option<String>,
    /// `admin`, `agent`, `end_user` or `deactivated`: only those.
    role: Option<String>,
    /// `name` or `role`.
    sort: Option<String>,
    done: Option<String>,
}

/// Where a role sorts: the owner, admins, agents, end users.
fn role_rank(m: &query::MemberView) -> u8 {
    match (m.is_owner, m.user.support_role) {
        (true, _) => 0,
        (_, SupportRole::Admin) => 1,
        (_, SupportRole::Agent) => 2,
        (_, SupportRole::EndUser) => 3,
    }
}

/// Whether a member is among those the `role` filter names.
fn in_role(filter: &str, user: &crate::domain::User) -> bool {
    match filter {
        "deactivated" => !user.is_active(),
        "" => true,
        role => user.is_active() && role_value(user.support_role) == role,
    }
}

/// A Support role as the forms name it.
pub(super) fn role_value(role: SupportRole) -> &'static str {
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
    let role = match q.role.as_deref().unwrap_or("") {
        r @ ("admin" | "agent" | "end_user" | "deactivated") => r,
        _ => "",
    };
    let sort = match q.sort.as_deref().unwrap_or("") {
        r @ ("name" | "role") => r,
        _ => "",
    };
    let (summary, first) = query::team(
        &app.store,
        who,
        a,
        q.after.as_deref(),
        // One more than a page: the owner may be among them.
        Some(MEMBERS_PAGE + 1),
        chrono::Utc::now(),
    )?;
    let total = summary.account.member_count as usize;
    let sortable = total <= SEARCH_SCAN_MAX;
    let hit = |m: &query::MemberView| {
        in_role(role, &m.user)
            && (m.user.name.to_lowercase().contains(&search)
                || m.user
                    .emails
                    .iter()
                    .any(|e| e.address.to_lowercase().contains(&search)))
    };
    let filtered = !(search.is_empty() && role.is_empty());
    let from = q.from.unwrap_or(0);
    let link = |cursor: &str, from: usize| {
        let mut href = format!(
            "{}?from={from}&q={}&role={}&sort={}",
            at(a, ["members"]),
            crate::console::page::encode_component(&search),
            role,
            sort
        );
        if !cursor.is_empty() {
            href.push('&');
            href.push_str(cursor);
        }
        href
    };
    let shown = |first: usize, count: usize, of: usize| {
        if count == 0 {
            String::new()
        } else {
            v.t.fill(
                "members.range",
                &[
                    ("first", &(first + 1).to_string()),
                    ("last", &(first + count).to_string()),
                    ("total", &of.to_string()),
                ],
            )
        }
    };
    let (items, prev_href, next_href, range_line);
    if sortable && (filtered || !sort.is_empty()) {
        // The whole team fits in one read: filtered, sorted and paged by
        // offset, with exact counts.
        let mut all = Vec::with_capacity(total);
        query::each_member(&app.store, who, a, SEARCH_SCAN_MAX, |account, user| {
            let m = query::MemberView {
                role_label: crate::domain::role_label(account, &user),
                is_owner: account.owner_id == user.id,
                user,
            };
            if hit(&m) {
                all.push(m);
            }
            std::ops::ControlFlow::Continue(())
        })?;
        match sort {
            "name" => all.sort_by_cached_key(|m| (m.user.name.to_lowercase(), m.user.id.clone())),
            "role" => all.sort_by_cached_key(|m| {
                (role_rank(m), m.user.name.to_lowercase(), m.user.id.clone())
            }),
            _ => all.sort_by_key(|m| (!m.is_owner, m.user.id.clone())),
        }
        let count = all.len();
        let start = from.min(count.saturating_sub(1) / MEMBERS_PAGE * MEMBERS_PAGE);
        items = all
            .into_iter()
            .skip(start)
            .take(MEMBERS_PAGE)
            .collect::<Vec<_>>();
        range_line = shown(start, items.len(), count);
        prev_href = (start > 0).then(|| link("", start.saturating_sub(MEMBERS_PAGE)));
        next_href = (start + MEMBERS_PAGE < count).then(|| link("", start + MEMBERS_PAGE));
    } else if filtered {
        // A bounded scan from the page already read: names, addresses and
        // roles are not indexed. `next` goes on from wherever it stopped.
        let mut scanned = first.items.len();
        let mut found: Vec<_> = first.items.into_iter().filter(|m| hit(m)).collect();
        let mut after = first.next;
        while let Some(cursor) = after.clone() {
            if found.len() >= MEMBERS_PAGE || scanned >= SEARCH_SCAN_MAX {
                break;
            }
            let page = query::members(&app.store, who, a, Some(&cursor), Some(MEMBERS_PAGE))?;
            scanned += page.items.len();
            found.extend(page.items.into_iter().filter(|m| hit(m)));
            after = page.next;
        }
        range_line = String::new();
        prev_href = None;
        next_href = after.map(|n| {
            link(
                &format!("after={}", crate::console::page::encode_component(&n)),
                0,
            )
        });
        items = found;
    } else {
        // Everyone in id order, by cursor both ways (any size of team),
        // 50 members a page besides the owner, who heads the first page.
        let owner_id = summary.account.owner_id.clone();
        let wanted = MEMBERS_PAGE + 1;
        // The owner, when the page read holds them (a team's first page
        // usually does): not read a second time.
        let mut owner_read = None;
        let (others, has_prev, has_next) = match q.before.as_deref() {
            Some(before) => {
                let page = query::members_before(&app.store, who, a, before, Some(wanted))?;
                let mut others: Vec<_> = page
                    .items
                    .into_iter()
                    .filter(|m| m.user.id != owner_id)
                    .collect();
                let more_before = page.next.is_some() || others.len() > MEMBERS_PAGE;
                let excess = others.len().saturating_sub(MEMBERS_PAGE);
                others.drain(..excess);
                (others, more_before, true)
            }
            None => {
                let page = first;
                let mut others = Vec::with_capacity(page.items.len());
                for m in page.items {
                    if m.user.id == owner_id {
                        owner_read = Some(m);
                    } else {
                        others.push(m);
                    }
                }
                let more = page.next.is_some() || others.len() > MEMBERS_PAGE;
                others.truncate(MEMBERS_PAGE);
                (others, q.after.is_some(), more)
            }
        };
        let first_other = others.first().map(|m| m.user.id.clone());
        let last_other = others.last().map(|m| m.user.id.clone());
        let mut page_items = others;
        let start = if has_prev { from } else { 0 };
        if !has_prev {
            let owner = match owner_read {
                Some(owner) => owner,
                None => query::member(&app.store, who, a, &owner_id)?,
            };
            page_items.insert(0, owner);
        }
        range_line = shown(start, page_items.len(), total);
        prev_href = match (has_prev, &first_other) {
            (true, Some(id)) => Some(link(
                &format!("before={}", crate::console::page::encode_component(id)),
                // The first page ignores it (it starts with the owner).
                start.saturating_sub(MEMBERS_PAGE),
            )),
            _ => None,
        };
        next_href = match (has_next, &last_other) {
            (true, Some(id)) => Some(link(
                &format!("after={}", crate::console::page::encode_component(id)),
                start + page_items.len(),
            )),
            _ => None,
        };
        items = page_items;
    }
    let me = v.user_id().unwrap_or("");
    use crate::domain::StateView;
    // Who can act when no seat is free, and whether a request waits.
    let owner_name = match items.iter().find(|m| m.is_owner) {
        Some(owner) => owner.user.name.clone(),
        None => app
            .store
            .user(a, &summary.account.owner_id)
            .map_err(crate::domain::Refusal::from)?
            .map(|u| u.name)
            .unwrap_or_default(),
    };
    let no_seat = summary.support.seats_used >= summary.support.seats_total;
    // Only the no-seat panel shows a pending request: read only for it.
    let pending = if no_seat {
        app.store
            .account_licence_requests(a, 1_000)
            .map_err(crate::domain::Refusal::from)?
            .into_iter()
            .find(|r| {
                r.status == crate::domain::LicenceStatus::Pending
                    && r.product == crate::domain::Product::Support
            })
            .map(|r| r.seats)
    } else {
        None
    };
    let rows = items
        .into_iter()
        .map(|m| MemberRow {
            id: Escaped::new(&m.user.id),
            verified: m.user.primary_verified(),
            role: v.t.role(m.role_label),
            is_self: m.user.id == me,
            invited: m.user.password_hash.is_none(),
            deactivated: !m.user.is_active(),
            last_sign_in: m
                .user
                .last_signed_in_at
                .map(|at| crate::console::page::When::day(v.t, at)),
            user: m.user,
        })
        .collect();
    Ok(MembersPage {
        c: Chrome::new(v, &at(a, ["members"]), "members.heading", q.done.as_deref()),
        base: Escaped::new(&at(a, [])),
        seats_line: v
            .t
            .s("members.seats")
            .replace("{used}", &summary.support.seats_used.to_string())
            .replace("{total}", &summary.support.seats_total.to_string()),
        expiring: {
            let now = chrono::Utc::now();
            let mut grants: Vec<_> = summary
                .account
                .grants
                .iter()
                .filter(|g| g.product == crate::domain::Product::Support && g.expires_at > now)
                .collect();
            grants.sort_by_key(|g| g.expires_at);
            grants
                .into_iter()
                .map(|g| {
                    v.t.s(v.t.count_key("members.grant_expires", u64::from(g.seats)))
                        .replace("{seats}", &g.seats.to_string())
                        .replace("{date}", &v.t.when(g.expires_at))
                })
                .collect()
        },
        q: q.q.clone().unwrap_or_default(),
        role: role.to_string(),
        sort: sort.to_string(),
        sortable,
        rows,
        range_line,
        prev_href,
        next_href,
        error: None,
        add_name: String::new(),
        add_email: String::new(),
        no_seat,
        viewer_is_owner: me == summary.account.owner_id,
        no_seat_buy: v.t.s("members.no_seat_buy").replace("{owner}", &owner_name),
        ask_owner: v.t.s("members.ask_owner").replace("{owner}", &owner_name),
        pending_request: pending.map(|seats| {
            v.t.s(v.t.count_key("members.request_pending", u64::from(seats)))
                .replace("{seats}", &seats.to_string())
        }),
    })
}

pub async fn members_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(q): Query<MembersQuery>,
) -> Response {
    let path = at(&a, ["members"]);
    match members_view(&app, &v, &who, &a, &q) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, ["profile"]), &p),
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
    SignedIn { v, a, who }: SignedIn,
    PageForm(form): PageForm<AddMemberForm>,
) -> Response {
    let path = at(&a, ["members"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let submitted = app
        .submit(
            who.clone(),
            Command::AddMember(cmd::AddMember {
                account_id: a.clone(),
                name: form.name.clone(),
                email: form.email.clone(),
                role: form.role.unwrap_or(SupportRole::Agent),
            }),
        )
        .await;
    match submitted {
        Ok(_) => see_other(&v.flash_url(&path, "members.added")),
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
    #[serde(default)]
    confirmed: String,
}

pub async fn change_role(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<RoleForm>,
) -> Response {
    // The form is on the member's own page.
    let back = at(&a, ["profile", &u]);
    if let (false, Some(role)) = (confirmed(&form.confirmed), form.role) {
        let key = format!("role.{}", role.as_str());
        let label = v.t.s(&key);
        let what =
            v.t.s("confirm.change_role")
                .replace("{name}", &member_name(&app, &a, &u))
                .replace("{role}", label);
        return confirm_first(
            &v,
            &at(&a, ["members", &u, "role"]),
            &back,
            what,
            &[("role", role.as_str())],
        );
    }
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "members.role_changed",
        |_| {
            Ok(Command::ChangeRole(cmd::ChangeRole {
                account_id,
                user_id: u,
                role: form
                    .role
                    .ok_or_else(|| Problem::bad_request("pick a role"))?,
            }))
        },
    )
    .await
}

pub async fn resend_invitation(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    let back = at(&a, ["profile", &u]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "members.resent", |_| {
        Ok(Command::ResendInvitation(cmd::ResendInvitation {
            account_id,
            user_id: u,
        }))
    })
    .await
}

pub async fn remove_member(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    // Asked from the member's own page; once removed, the page is gone.
    let back = at(&a, ["profile", &u]);
    let after = at(&a, ["members"]);
    if !confirmed(&form.confirmed) {
        let what =
            v.t.s("confirm.remove_member")
                .replace("{name}", &member_name(&app, &a, &u));
        return confirm_first(&v, &at(&a, ["members", &u, "remove"]), &back, what, &[]);
    }
    let account_id = a.clone();
    act_then(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        &after,
        "members.removed",
        |_| {
            Ok(Command::RemoveMember(cmd::RemoveMember {
                account_id,
                user_id: u,
            }))
        },
    )
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
        Some("licences") => at(&a, ["licences"]),
        _ => at(&a, ["members"]),
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
            Ok(Command::RequestLicence(cmd::RequestLicence {
                account_id,
                product: form.product.unwrap_or(crate::domain::Product::Support),
                seats: form
                    .seats
                    .ok_or_else(|| Problem::bad_request("say how many seats"))?,
                reason: form.reason,
            }))
        },
    )
    .await
}

pub struct LicenceRow {
    pub id: String,
    pub account_id: String,
    /// The account's name (support's queue).
    pub account_name: String,
    /// Who filed it: the owner by name, or the policy that did.
    pub filed_by: String,
    pub created: crate::console::page::When,
    pub product: &'static str,
    pub seats: u32,
    pub reason: String,
    pub status: String,
    pub pending: bool,
}

/// A licence request as a row of a page (the account's or support's).
pub fn licence_row(
    app: &App,
    t: &crate::console::i18n::Catalogue,
    r: crate::domain::LicenceRequest,
) -> LicenceRow {
    use crate::domain::{LicenceStatus, Product, StateView};
    let account_name = app
        .store
        .account(&r.account_id)
        .ok()
        .flatten()
        .map_or_else(|| r.account_id.clone(), |a| a.name);
    let filed_by = if let Some(id) = r.requested_by.strip_prefix("user:") {
        app.store
            .user(&r.account_id, id)
            .ok()
            .flatten()
            .map_or_else(|| t.s("audit.former_member").to_string(), |u| u.name)
    } else if let Some(policy) = r.requested_by.strip_prefix("policy:") {
        format!("{} {policy}", t.s("audit.policy"))
    } else {
        r.requested_by.clone()
    };
    let status = match r.status {
        LicenceStatus::Pending => t.s("licences.status.pending").to_string(),
        LicenceStatus::Granted => t
            .s(t.count_key(
                "licences.status.granted",
                u64::from(r.granted_seats.unwrap_or(r.seats)),
            ))
            .replace("{seats}", &r.granted_seats.unwrap_or(r.seats).to_string())
            .replace(
                "{until}",
                &r.expires_at.map(|e| t.day(e)).unwrap_or_default(),
            ),
        LicenceStatus::Denied => t
            .s("licences.status.denied")
            .replace("{reason}", r.deny_reason.as_deref().unwrap_or("")),
    };
    LicenceRow {
        pending: r.status == LicenceStatus::Pending,
        id: r.id,
        account_id: r.account_id,
        account_name,
        filed_by,
        created: crate::console::page::When::new(t, r.created_at),
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
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["licences"]);
    let mut page = LicencesPage {
        c: Chrome::new(&v, &path, "licences.heading", f.done.as_deref()),
        base: at(&a, []),
        support: false,
        rows: Vec::new(),
        error: None,
    };
    match query::account_licence_requests(&app.store, &who, &a) {
        Ok(list) => {
            page.rows = list
                .into_iter()
                .rev()
                .map(|r| licence_row(&app, v.t, r))
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

/// Members an export lists, at most (past it the export is refused, 400
/// `too_many`: a spreadsheet of more people is not the console's to make).
pub const EXPORT_MEMBERS_MAX: usize = 100_000;

/// The team as CSV (name, addresses, roles, state), for the admins: the
/// same permission as the list. Cells a spreadsheet would run as a formula
/// are quoted with a leading `'`.
pub async fn members_csv(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
) -> Response {
    let mut out = String::from(
        "name,primary_email,role,sell_role,active,invited,directory_user_name,external_id\r\n",
    );
    let scan = query::each_member(&app.store, &who, &a, EXPORT_MEMBERS_MAX, |account, user| {
        let role = if account.owner_id == user.id {
            "owner"
        } else {
            role_value(user.support_role)
        };
        let cells = [
            user.name.as_str(),
            user.primary_address(),
            role,
            user.sell_role.as_str(),
            if user.is_active() { "yes" } else { "no" },
            if user.password_hash.is_none() {
                "yes"
            } else {
                "no"
            },
            user.user_name.as_deref().unwrap_or(""),
            user.external_id.as_deref().unwrap_or(""),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
        std::ops::ControlFlow::Continue(())
    });
    match scan {
        Ok(_) => csv_response(&format!("members-{a}.csv"), out),
        Err(r) => problem_page(&v, &at(&a, ["members"]), &at(&a, []), &r.into()),
    }
}
