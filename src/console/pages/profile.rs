//! Profile: addresses and the hand-over (R12–R16).

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::{Path, State};

use crate::app::problem::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::app::problem::Problem;
use crate::app::AppState;
use crate::console::page::{problem_page, render, see_other, Chrome, ErrorView, PageForm};
use crate::console::visitor::Visitor;
use crate::domain::{query, Command, Refusal, StateView};

use super::common::*;

pub struct AddressRow {
    address: String,
    primary: bool,
    verified: bool,
}

/// A member's place in the account, offered to those who manage the team
/// (admins): their role, the invitation, removing them. The owner has
/// none: ownership changes on the Account owner page.
pub struct Membership {
    /// "Role: Agent", as the API labels it.
    role_line: String,
    /// The role as the form names it (`admin`, `agent`, `end_user`).
    role_value: &'static str,
    /// Never set a password: the invitation can be mailed again.
    invited: bool,
    /// Deactivated (by the directory or an admin): holds no seat.
    deactivated: bool,
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    c: Chrome,
    base: String,
    user_id: String,
    of_line: String,
    /// The profile's name, in its field.
    name: String,
    /// The owner on their own profile: the hand-over steps (R16).
    show_handover: bool,
    /// Whether the visitor manages this profile (R12): else no form.
    manageable: bool,
    /// Who manages it, when the visitor does not.
    read_only_line: String,
    addresses: Vec<AddressRow>,
    membership: Option<Membership>,
    error: Option<ErrorView>,
}

pub async fn own_profile(v: Visitor, Path(a): Path<String>, Query(f): Query<Flash>) -> Response {
    match v.user_id() {
        Some(u) if v.account_id() == Some(a.as_str()) => {
            let to = at(&a, ["profile", u]);
            // A message signed for this address goes on, signed for the
            // profile's own.
            match f.done.as_deref().and_then(|done| v.flash_key(done)) {
                Some(key) => see_other(&v.flash_url(&to, key)),
                None => see_other(&to),
            }
        }
        _ => see_other(&at(&a, ["sign-in"])),
    }
}

pub async fn profile_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Path((_, u)): Path<(String, String)>,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["profile", &u]);
    let loaded = (|| -> Result<ProfilePage, Problem> {
        let addresses = query::emails(&app.store, &who, &a, &u)?;
        let name = app
            .store
            .user(&a, &u)
            .map_err(Refusal::from)?
            .map(|u| u.name)
            .unwrap_or_default();
        // R12: whether this visitor manages this profile (the person, an
        // admin for agents and end users), asked of the rules themselves
        // by rehearsing a rename to the same name; a form that could only
        // be refused is not offered.
        let manageable = crate::domain::rules::rehearse(
            &app.store,
            &crate::policy::Rehearsal(&app.policies),
            &app.settings,
            &who,
            Command::RenameMember(cmd::RenameMember {
                account_id: a.clone(),
                user_id: u.clone(),
                name: name.clone(),
            }),
            chrono::Utc::now(),
        )
        .is_ok();
        let read_only_line = v.t.s("profile.read_only").replace("{name}", &name);
        let owner_here = app
            .store
            .account(&a)
            .map_err(Refusal::from)?
            .is_some_and(|acc| acc.owner_id == u && v.user_id() == Some(u.as_str()));
        // The team's controls for this member, when the visitor may see
        // the team (the same question the Team members page asks).
        let membership = query::member(&app.store, &who, &a, &u)
            .ok()
            .filter(|m| !m.is_owner)
            .map(|m| Membership {
                role_line: v
                    .t
                    .s("profile.role_line")
                    .replace("{role}", v.t.role(m.role_label)),
                role_value: super::members::role_value(m.user.support_role),
                invited: m.user.password_hash.is_none(),
                deactivated: !m.user.is_active(),
            });
        Ok(ProfilePage {
            c: Chrome::new(&v, &path, "profile.heading", f.done.as_deref()),
            base: at(&a, []),
            user_id: u.clone(),
            of_line: v.t.s("profile.of").replace("{name}", &name),
            name,
            show_handover: owner_here,
            manageable,
            read_only_line,
            addresses: addresses
                .into_iter()
                .map(|e| AddressRow {
                    address: e.address,
                    primary: e.primary,
                    verified: e.verified,
                })
                .collect(),
            membership,
            error: None,
        })
    })();
    match loaded {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
    }
}

#[derive(Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    confirmed: String,
}

pub async fn add_address(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<AddressForm>,
) -> Response {
    let back = at(&a, ["profile", &u]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "profile.added", |_| {
        Ok(Command::AddEmail(cmd::AddEmail {
            account_id,
            user_id: u,
            address: form.address,
        }))
    })
    .await
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub async fn rename(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<NameForm>,
) -> Response {
    let back = at(&a, ["profile", &u]);
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "profile.renamed", |_| {
        Ok(Command::RenameMember(cmd::RenameMember {
            account_id,
            user_id: u,
            name: form.name,
        }))
    })
    .await
}

pub async fn make_primary(
    State(app): State<AppState>,
    v: Visitor,
    Path((a, u)): Path<(String, String)>,
    PageForm(form): PageForm<AddressForm>,
) -> Response {
    let back = at(&a, ["profile", &u]);
    if !confirmed(&form.confirmed) {
        let key = if v.user_id() == Some(u.as_str()) {
            "confirm.make_primary_own"
        } else {
            "confirm.make_primary"
        };
        let what =
            v.t.s(key)
                .replace("{address}", &form.address)
                .replace("{name}", &member_name(&app, &a, &u));
        return confirm_first(
            &v,
            &at(&a, ["profile", &u, "primary"]),
            &back,
            what,
            &[("address", form.address.as_str())],
        );
    }
    let account_id = a.clone();
    act(
        &app,
        &v,
        &a,
        &form.csrf,
        &back,
        "profile.made_primary",
        |_| {
            Ok(Command::MakePrimaryEmail(cmd::MakePrimaryEmail {
                account_id,
                user_id: u,
                address: form.address,
            }))
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
    let back = at(&a, ["profile", &u]);
    if !confirmed(&form.confirmed) {
        let key = if v.user_id() == Some(u.as_str()) {
            "confirm.remove_address_own"
        } else {
            "confirm.remove_address"
        };
        let what =
            v.t.s(key)
                .replace("{address}", &form.address)
                .replace("{name}", &member_name(&app, &a, &u));
        return confirm_first(
            &v,
            &at(&a, ["profile", &u, "remove"]),
            &back,
            what,
            &[("address", form.address.as_str())],
        );
    }
    let account_id = a.clone();
    act(&app, &v, &a, &form.csrf, &back, "profile.removed", |_| {
        Ok(Command::RemoveEmail(cmd::RemoveEmail {
            account_id,
            user_id: u,
            address: form.address,
        }))
    })
    .await
}
