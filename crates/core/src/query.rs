//! Read-side questions, with the same permission rules as the commands.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::access::{member_with, member_with_shared, role_label, Need};
use super::command::Principal;
use super::model::*;
use super::refusal::{Refusal, RefusalKind};
use super::view::StateView;
pub use crate::limits::{
    ACCOUNT_SEARCH_SCAN_MAX, CANDIDATES_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, SELL_USERS_MAX,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSummary {
    pub seats_total: u32,
    pub seats_used: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub account: Account,
    pub support: SeatSummary,
    pub sell_status: SellStatus,
    pub sell: SeatSummary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Shared with the store's read cache (a page of the team list copies
    /// no member).
    pub user: Arc<User>,
    pub is_owner: bool,
    pub role_label: &'static str,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

fn clamp_limit(limit: Option<usize>) -> Result<usize, Refusal> {
    match limit {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(0) => Err(Refusal::invalid("limit must be at least 1")),
        Some(n) if n > PAGE_LIMIT_MAX => Err(Refusal::invalid(format!(
            "limit must be at most {PAGE_LIMIT_MAX}"
        ))),
        Some(n) => Ok(n),
    }
}

pub fn summarize(account: Account, now: DateTime<Utc>) -> AccountSummary {
    AccountSummary {
        support: SeatSummary {
            seats_total: account.support_seats_total(now),
            seats_used: account.support_seats_used,
        },
        sell_status: account.sell.status,
        sell: SeatSummary {
            seats_total: account.sell_seats_total(now),
            seats_used: account.sell.seats_used,
        },
        account,
    }
}

/// Agents and admins see the summary; platform support too (it needs it to
/// help, and it changes nothing).
pub fn account_summary(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<AccountSummary, Refusal> {
    if *who == Principal::Operator {
        let account = view
            .account(account_id)?
            .ok_or_else(|| Refusal::not_found("account"))?;
        return Ok(summarize(account, now));
    }
    let (account, _) = member_with(view, who, account_id, Need::Agent)?;
    Ok(summarize(account, now))
}

/// The account's settings (its language): its admins, and platform
/// support.
pub fn account_settings(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Account, Refusal> {
    if *who == Principal::Operator {
        return view
            .account(account_id)?
            .ok_or_else(|| Refusal::not_found("account"));
    }
    Ok(member_with(view, who, account_id, Need::Admin)?.0)
}

/// Support cases looked through at most, per read.
pub const SUPPORT_CASES_SCAN_MAX: usize = 10_000;

/// The account's support cases, newest first: its requests to platform
/// support and the investigations support opened (R19, R23). Its admins,
/// and platform support.
pub fn support_cases(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<SecurityInvestigation>, Refusal> {
    account_settings(view, who, account_id)?;
    let mut cases = view.investigations(Some(account_id), SUPPORT_CASES_SCAN_MAX)?;
    cases.sort_by_key(|c| std::cmp::Reverse(c.opened_at));
    Ok(cases)
}

/// Every account's open support cases, oldest first (platform support).
pub fn open_support_cases(
    view: &dyn StateView,
    who: &Principal,
) -> Result<Vec<SecurityInvestigation>, Refusal> {
    platform_support_only(who, "the support queue")?;
    let mut cases: Vec<_> = view
        .investigations(None, SUPPORT_CASES_SCAN_MAX)?
        .into_iter()
        .filter(|c| c.closed_at.is_none())
        .collect();
    cases.sort_by_key(|c| c.opened_at);
    Ok(cases)
}

/// Platform support's list of accounts, by id, with their seats; `search`
/// keeps those whose name contains it (any case), looking through at most
/// [`ACCOUNT_SEARCH_SCAN_MAX`] accounts per page asked for.
pub fn accounts(
    view: &dyn StateView,
    who: &Principal,
    after: Option<&str>,
    search: Option<&str>,
    limit: Option<usize>,
    now: DateTime<Utc>,
) -> Result<Page<AccountSummary>, Refusal> {
    platform_support_only(who, "the account list")?;
    let limit = clamp_limit(limit)?;
    let needle = search.map(|s| s.trim().to_lowercase()).unwrap_or_default();
    let mut items = Vec::new();
    let mut cursor = after.map(str::to_string);
    let mut scanned = 0;
    loop {
        let batch = view.accounts(cursor.as_deref(), PAGE_LIMIT_MAX)?;
        let full = batch.len() == PAGE_LIMIT_MAX;
        for account in batch {
            scanned += 1;
            cursor = Some(account.id.clone());
            if needle.is_empty() || account.name.to_lowercase().contains(&needle) {
                items.push(summarize(account, now));
                if items.len() == limit {
                    // More may follow: the next page starts after this one.
                    return Ok(Page {
                        items,
                        next: cursor,
                    });
                }
            }
        }
        if !full {
            return Ok(Page { items, next: None });
        }
        if scanned >= ACCOUNT_SEARCH_SCAN_MAX {
            return Ok(Page {
                items,
                next: cursor,
            });
        }
    }
}

/// R07: any agent or admin can find out who the owner is.
pub fn owner(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<MemberView, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Agent)?;
    let user = view
        .user_shared(account_id, &account.owner_id)?
        .ok_or_else(|| Refusal::store("the owner's profile is missing"))?;
    Ok(MemberView {
        role_label: role_label(&account, &user),
        is_owner: true,
        user,
    })
}

/// R07: admins see the team list, paged by user id.
pub fn members(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Page<MemberView>, Refusal> {
    let limit = clamp_limit(limit)?;
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    members_of(view, &account, after, limit)
}

/// R07: the page of the team list just before member `before` (in id
/// order), and whether members come before it (its first id, the cursor
/// of the page before).
pub fn members_before(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    before: &str,
    limit: Option<usize>,
) -> Result<Page<MemberView>, Refusal> {
    let limit = clamp_limit(limit)?;
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    let mut users = view.members_before(&account.id, before, limit + 1)?;
    let more = users.len() > limit;
    users.truncate(limit);
    users.reverse();
    let items: Vec<MemberView> = users
        .into_iter()
        .map(|user| MemberView {
            role_label: role_label(&account, &user),
            is_owner: account.owner_id == user.id,
            user: Arc::new(user),
        })
        .collect();
    let next = if more {
        items.first().map(|m| m.user.id.clone())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// The Team members page in one read of the account: its summary (seats)
/// and a page of members, with the permission of `members`.
pub fn team(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    after: Option<&str>,
    limit: Option<usize>,
    now: DateTime<Utc>,
) -> Result<(AccountSummary, Page<MemberView>), Refusal> {
    let limit = clamp_limit(limit)?;
    let (account, _) = member_with(view, who, account_id, Need::Admin)?;
    let page = members_of(view, &account, after, limit)?;
    Ok((summarize(account, now), page))
}

fn members_of(
    view: &dyn StateView,
    account: &Account,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<MemberView>, Refusal> {
    let users = view.members(&account.id, after, limit + 1)?;
    let more = users.len() > limit;
    let items: Vec<MemberView> = users
        .into_iter()
        .take(limit)
        .map(|user| MemberView {
            role_label: role_label(account, &user),
            is_owner: account.owner_id == user.id,
            user,
        })
        .collect();
    let next = if more {
        items.last().map(|m| m.user.id.clone())
    } else {
        None
    };
    Ok(Page { items, next })
}

pub fn member(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    user_id: &str,
) -> Result<MemberView, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    let user = view
        .user(account_id, user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    Ok(MemberView {
        role_label: role_label(&account, &user),
        is_owner: account.owner_id == user.id,
        user: Arc::new(user),
    })
}

/// R04: the owner picks from the other admins; the list may be empty. The
/// scan is bounded: a transfer list longer than this is not useful to a person.
const CANDIDATE_SCAN_PAGE: usize = 500;

pub fn owner_candidates(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<MemberView>, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Owner)?;
    scan_members(view, &account, CANDIDATES_MAX, |u| {
        u.support_role == SupportRole::Admin && u.id != account.owner_id && u.is_active()
    })
}

/// Members of `account` that `keep` selects, at most `max`, scanning page by
/// page (bounded lists a person reads; not for the member list itself).
fn scan_members(
    view: &dyn StateView,
    account: &Account,
    max: usize,
    keep: impl Fn(&User) -> bool,
) -> Result<Vec<MemberView>, Refusal> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = view.members(&account.id, after.as_deref(), CANDIDATE_SCAN_PAGE)?;
        let done = page.len() < CANDIDATE_SCAN_PAGE;
        after = page.last().map(|u| u.id.clone());
        for user in page.into_iter().filter(|u| keep(u)) {
            out.push(MemberView {
                role_label: role_label(account, &user),
                is_owner: account.owner_id == user.id,
                user,
            });
            if out.len() >= max {
                return Ok(out);
            }
        }
        if done {
            return Ok(out);
        }
    }
}

pub fn invoices(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<Invoice>, Refusal> {
    member_with_shared(view, who, account_id, Need::Billing)?;
    Ok(view.invoices(account_id, PAGE_LIMIT_MAX)?)
}

/// The billing contacts (the owner's, R05).
pub fn billing_contacts(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<String>, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Billing)?;
    Ok(account.billing_contacts.clone())
}

pub fn payment_method(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Option<PaymentMethod>, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Billing)?;
    Ok(account.payment_method.clone())
}

pub fn integrations(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<Integration>, Refusal> {
    member_with_shared(view, who, account_id, Need::Admin)?;
    Ok(view.integrations(account_id, PAGE_LIMIT_MAX * 5)?)
}

/// Admins page through their account's audit log; platform support may read
/// it too (it records investigations from it).
pub fn audit(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<Page<AuditEntry>, Refusal> {
    let limit = clamp_limit(limit)?;
    if account_id == super::PLATFORM_AUDIT_SCOPE {
        if *who != Principal::Operator {
            return Err(Refusal::forbidden(
                "the platform audit log is platform support's",
            ));
        }
    } else if *who == Principal::Operator {
        view.account(account_id)?
            .ok_or_else(|| Refusal::not_found("account"))?;
    } else {
        member_with_shared(view, who, account_id, Need::Admin)?;
    }
    let mut items = view.audit(account_id, after, limit + 1)?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// What [`audit_search`] found: matching entries newest first, and where
/// the next search goes on from (the last entry it looked at) when it
/// stopped before the log's start.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSearch {
    pub items: Vec<AuditEntry>,
    pub next: Option<u64>,
}

/// Where an [`audit_search`] starts and how far it goes.
#[derive(Debug, Clone, Copy)]
pub struct AuditAsk {
    /// Entries before this sequence number (`None`: from the newest).
    pub before: Option<u64>,
    /// Entries at or after this moment.
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
    pub scan_max: usize,
}

/// Entries of a scope's audit log newest first, from before `before`, that
/// `keep` keeps, at most `limit` of them, looking at no more than
/// `scan_max` entries (a search of a long log is a scan: past the budget
/// it answers what it found and where to go on). Entries older than
/// `since` end the search: sequence numbers follow commit order, so every
/// later one is older too. Readers: as [`audit`].
pub fn audit_search(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    ask: AuditAsk,
    keep: &mut dyn FnMut(&AuditEntry) -> bool,
) -> Result<AuditSearch, Refusal> {
    let AuditAsk {
        before,
        since,
        limit,
        scan_max,
    } = ask;
    // Who may read it, as the paged read decides.
    audit(view, who, account_id, None, Some(1))?;
    const CHUNK: usize = 200;
    let mut items = Vec::new();
    let mut cursor = before;
    let mut scanned = 0;
    loop {
        let chunk = view.audit_newest(account_id, cursor, CHUNK)?;
        let exhausted = chunk.len() < CHUNK;
        for entry in chunk {
            scanned += 1;
            cursor = Some(entry.seq);
            if since.is_some_and(|since| entry.at < since) {
                return Ok(AuditSearch { items, next: None });
            }
            if keep(&entry) {
                items.push(entry);
                if items.len() >= limit {
                    return Ok(AuditSearch {
                        items,
                        next: cursor,
                    });
                }
            }
            if scanned >= scan_max {
                return Ok(AuditSearch {
                    items,
                    next: cursor,
                });
            }
        }
        if exhausted {
            return Ok(AuditSearch { items, next: None });
        }
    }
}

/// Who a bearer session token belongs to, if it is live.
pub fn session_principal(
    view: &dyn StateView,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Principal, Refusal> {
    let unauthorized = || {
        Refusal::new(
            RefusalKind::Unauthenticated,
            "unauthorized",
            "the session is invalid or expired; sign in again",
        )
    };
    let session = view.session_shared(token_hash)?.ok_or_else(unauthorized)?;
    if session.expires_at <= now {
        return Err(unauthorized());
    }
    Ok(Principal::Member {
        account_id: session.account_id.clone(),
        user_id: session.user_id.clone(),
    })
}

/// A profile's addresses: the user themselves, or an admin.
pub fn emails(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    user_id: &str,
) -> Result<Vec<EmailAddress>, Refusal> {
    let (_, me) = member_with_shared(view, who, account_id, Need::Member)?;
    if me.id == user_id {
        return Ok(std::sync::Arc::unwrap_or_clone(me).emails);
    }
    if me.support_role != SupportRole::Admin {
        return Err(Refusal::forbidden(
            "only the user or an admin sees these addresses",
        ));
    }
    let user = view
        .user(account_id, user_id)?
        .ok_or_else(|| Refusal::not_found("member"))?;
    Ok(user.emails)
}

/// The owner sees the account's licence requests (R18).
pub fn account_licence_requests(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<LicenceRequest>, Refusal> {
    member_with_shared(view, who, account_id, Need::Owner)?;
    Ok(view.account_licence_requests(account_id, PAGE_LIMIT_MAX)?)
}

/// Platform support's queue of licence requests.
pub fn licence_requests(
    view: &dyn StateView,
    who: &Principal,
    status: Option<LicenceStatus>,
) -> Result<Vec<LicenceRequest>, Refusal> {
    platform_support_only(who, "licence requests")?;
    Ok(view.licence_requests(status, PAGE_LIMIT_MAX)?)
}

/// Members holding Sell (admins of the account see it).
pub fn sell_users(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<MemberView>, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    scan_members(view, &account, SELL_USERS_MAX, |u| {
        u.sell_role != SellRole::None
    })
}

/// For what platform support alone reads (queues, deliveries, policies).
pub fn platform_support_only(who: &Principal, what: &str) -> Result<(), Refusal> {
    if *who != Principal::Operator {
        return Err(Refusal::forbidden(format!("{what} are platform support's")));
    }
    Ok(())
}

/// Who a directory (SCIM) bearer token belongs to: the account it names,
/// one of that account's tokens by id, the token's hash equal to the
/// stored one. Any failure is the same `unauthorized`.
pub fn directory_principal(view: &dyn StateView, token: &str) -> Result<Principal, Refusal> {
    let unauthorized = || {
        Refusal::new(
            RefusalKind::Unauthenticated,
            "unauthorized",
            "the directory token is invalid or revoked",
        )
    };
    let (account_id, token_id) =
        crate::directory::scim_token_parts(token).ok_or_else(unauthorized)?;
    let account = view.account(account_id)?.ok_or_else(unauthorized)?;
    let presented = crate::context::token_hash(token);
    let stored = account
        .scim_tokens
        .iter()
        .find(|t| t.id == token_id)
        .ok_or_else(unauthorized)?;
    // Equal-time comparison of two hex digests of one length.
    let differing = presented
        .bytes()
        .zip(stored.hash.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differing != 0 || presented.len() != stored.hash.len() {
        return Err(unauthorized());
    }
    Ok(Principal::Directory {
        account_id: account.id.clone(),
        token_id: stored.id.clone(),
        name: stored.name.clone(),
        acting_for: stored.created_by.clone(),
    })
}

/// The account's directory tokens (never the tokens themselves: only their
/// hashes are kept), for its owner and admins in person.
pub fn scim_tokens(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<ScimToken>, Refusal> {
    if matches!(who, Principal::Directory { .. }) {
        return Err(Refusal::forbidden(
            "a directory does not see the account's directory tokens",
        ));
    }
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    Ok(account.scim_tokens.clone())
}

/// Every member of an account, in id order, handed to `each` one at a
/// time until it says stop (a directory's filtered listing counts its
/// matches over the whole team without holding it in memory); at most
/// `scan_max` are looked at: past it the answer is `too_many`.
pub fn each_member(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    scan_max: usize,
    mut each: impl FnMut(&Account, Arc<User>) -> std::ops::ControlFlow<()>,
) -> Result<Account, Refusal> {
    const SCAN_PAGE: usize = 500;
    let (account, _) = member_with(view, who, account_id, Need::Admin)?;
    let mut after: Option<String> = None;
    let mut seen = 0usize;
    loop {
        let page = view.members(&account.id, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        after = page.last().map(|u| u.id.clone());
        for user in page {
            seen += 1;
            if seen > scan_max {
                return Err(Refusal::new(
                    RefusalKind::Invalid,
                    "too_many",
                    format!("the account has more than {scan_max} members to look through; narrow the filter (userName eq, emails.value eq)"),
                ));
            }
            if each(&account, user).is_break() {
                return Ok(account);
            }
        }
        if done {
            return Ok(account);
        }
    }
}

/// The member an address belongs to (any of their addresses), as an admin
/// of the account sees them.
pub fn member_by_email(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    email: &str,
) -> Result<(Account, Option<User>), Refusal> {
    let (account, _) = member_with(view, who, account_id, Need::Admin)?;
    let user = view.user_by_email(account_id, email)?;
    Ok((account, user))
}

/// The members a directory's `userName` may name: the one holding that
/// directory login name, and the one holding it as an address (members
/// added in the console go by their primary address).
pub fn members_by_user_name(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
    user_name: &str,
) -> Result<Vec<User>, Refusal> {
    member_with_shared(view, who, account_id, Need::Admin)?;
    let mut found = vec![];
    for key in [directory_name_key(user_name), normalize_email(user_name)] {
        if let Some(user) = view.user_by_email(account_id, &key)? {
            if !found.iter().any(|u: &User| u.id == user.id) {
                found.push(user);
            }
        }
    }
    Ok(found)
}

/// An account's people as platform support needs them (R19, R23): its
/// owner, admins and Sell admins by name, and the active members one of
/// whom support may appoint first Sell admin (at most `CANDIDATES_MAX` each).
pub struct AccountPeople {
    pub owner: Option<User>,
    pub admins: Vec<User>,
    pub sell_admins: Vec<User>,
    pub members: Vec<User>,
}

/// Members the account's admins may ask platform support to appoint as
/// the first Sell admin (R23): none once Sell has an admin; at most
/// `CANDIDATES_MAX`.
pub fn sell_admin_candidates(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<Vec<User>, Refusal> {
    let (account, _) = member_with_shared(view, who, account_id, Need::Admin)?;
    if account.sell.admin_count > 0 {
        return Ok(Vec::new());
    }
    Ok(
        scan_members(view, &account, CANDIDATES_MAX, |u| u.is_active())?
            .into_iter()
            .map(|m| Arc::unwrap_or_clone(m.user))
            .collect(),
    )
}

pub fn account_people(
    view: &dyn StateView,
    who: &Principal,
    account_id: &str,
) -> Result<AccountPeople, Refusal> {
    platform_support_only(who, "an account's people")?;
    let account = view
        .account(account_id)?
        .ok_or_else(|| Refusal::not_found("account"))?;
    let mut people = AccountPeople {
        owner: view.user(account_id, &account.owner_id)?,
        admins: vec![],
        sell_admins: vec![],
        members: vec![],
    };
    for m in scan_members(view, &account, CANDIDATES_MAX, |u| u.is_active())? {
        let user = Arc::unwrap_or_clone(m.user);
        if user.support_role == SupportRole::Admin && user.id != account.owner_id {
            people.admins.push(user.clone());
        }
        if user.sell_role == SellRole::Admin {
            people.sell_admins.push(user.clone());
        }
        people.members.push(user);
    }
    Ok(people)
}
