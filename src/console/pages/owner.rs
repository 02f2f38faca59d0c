//! Account owner: pick, consequences, confirm (R03–R06).

use crate::console::page::at;
use crate::domain::cmd;
use askama::Template;
use axum::extract::State;

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
use crate::domain::{query, Command, Principal};

use super::common::*;

pub struct Candidate {
    id: String,
    name: String,
    email: String,
    /// Why handing the account to them would be refused now (a policy's
    /// reason, found by rehearsing the change), if it would.
    refused: Option<String>,
    /// The first who can take over now is picked in advance.
    preselected: bool,
}

/// Candidates whose hand-over is rehearsed on each view of the page, at
/// most (each runs the `before_owner_change` policies).
const REHEARSED_CANDIDATES_MAX: usize = 50;

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
    /// An admin who is not the owner: told the way when the owner is lost.
    viewer_is_admin: bool,
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
    // Policies run here, synchronously and time-bounded: off the
    // runtime's worker, as the store's own blocking reads do.
    let mut candidates: Vec<Candidate> = if viewer_is_owner {
        tokio::task::block_in_place(|| -> Result<Vec<Candidate>, Problem> {
            Ok(query::owner_candidates(&app.store, who, a)?
                .into_iter()
                // R03: only a verified administrator can receive the account.
                .filter(|m| m.user.primary_verified())
                .enumerate()
                .map(|(n, m)| Candidate {
                    // Who can take over now: the change rehearsed, the
                    // policies asked, nothing kept.
                    refused: (n < REHEARSED_CANDIDATES_MAX)
                        .then(|| {
                            crate::domain::rules::rehearse(
                                &app.store,
                                &crate::policy::Rehearsal(&app.policies),
                                &app.settings,
                                who,
                                Command::TransferOwnership(cmd::TransferOwnership {
                                    account_id: a.to_string(),
                                    to_user_id: m.user.id.clone(),
                                }),
                                chrono::Utc::now(),
                            )
                            .err()
                        })
                        .flatten()
                        .map(|refusal| {
                            let e = ErrorView::from_problem(v.t, &Problem::from(refusal));
                            if e.detail.is_empty() {
                                e.summary
                            } else {
                                format!("{} {}", e.summary, e.detail)
                            }
                        }),
                    preselected: false,
                    email: m.user.primary_address().to_string(),
                    id: m.user.id.clone(),
                    name: m.user.name.clone(),
                })
                .collect())
        })?
    } else {
        Vec::new()
    };
    if let Some(first) = candidates.iter_mut().find(|c| c.refused.is_none()) {
        first.preselected = true;
    }
    Ok(OwnerPage {
        c: Chrome::new(v, &at(a, ["owner"]), "owner.heading", flash),
        base: at(a, []),
        current_line: v
            .t
            .s("owner.current")
            .replace("{name}", &owner.user.name)
            .replace("{email}", owner.user.primary_address()),
        viewer_is_owner,
        viewer_is_admin: v.powers.admin,
        candidates,
        confirm: None,
        error: None,
    })
}

pub async fn owner_page(
    State(app): State<AppState>,
    SignedIn { v, a, who }: SignedIn,
    Query(f): Query<Flash>,
) -> Response {
    let path = at(&a, ["owner"]);
    match owner_view(&app, &v, &who, &a, f.done.as_deref()) {
        Ok(page) => render(&v, StatusCode::OK, &page),
        Err(p) => problem_page(&v, &path, &at(&a, []), &p),
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
    SignedIn { v, a, who }: SignedIn,
    PageForm(form): PageForm<OwnerForm>,
) -> Response {
    let path = at(&a, ["owner"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
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
    SignedIn { v, a, who }: SignedIn,
    PageForm(form): PageForm<OwnerForm>,
) -> Response {
    let path = at(&a, ["owner"]);
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&v, &path);
    }
    let result = app
        .submit(
            who.clone(),
            Command::TransferOwnership(cmd::TransferOwnership {
                account_id: a.clone(),
                to_user_id: form.to,
            }),
        )
        .await;
    match result {
        Ok(_) => see_other(&v.flash_url(&path, "owner.changed_flash")),
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
