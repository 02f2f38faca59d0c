//! The team: members and their Support roles (R07-R09).

use crate::domain::cmd;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use super::dto::*;
use crate::app::problem::{Json, Query};
use crate::domain::{query, Command, Principal, Reply};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, change_role, remove_member))
        .routes(routes!(rename_member))
        .routes(routes!(resend_invitation))
}

/// Mails a member who never set a password a new password-set link (admins).
#[utoipa::path(post, path = "/v1/accounts/{a}/members/{u}/invitation", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 202, description = "a new password-set link was mailed"), Errors), security(("bearer" = [])))]
async fn resend_invitation(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.submit(
        who,
        Command::ResendInvitation(cmd::ResendInvitation {
            account_id: a,
            user_id: u,
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a member's name: the person, or an admin for agents and end users
/// (R12); the last step of the profile hand-over (R16).
#[utoipa::path(put, path = "/v1/accounts/{a}/members/{u}/name", tag = "members", request_body = RenameRequest,
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn rename_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
    Json(body): Json<RenameRequest>,
) -> ApiResult<axum::Json<MemberOut>> {
    let reply = app
        .submit(
            who,
            Command::RenameMember(cmd::RenameMember {
                account_id: a.clone(),
                user_id: u,
                name: body.name,
            }),
        )
        .await?;
    // The member as the command left them: the person may not be an admin,
    // who alone reads other members.
    let Reply::User(user) = reply else {
        return Err(unexpected(reply));
    };
    use crate::domain::StateView;
    let account = app
        .store
        .account(&a)
        .map_err(crate::domain::Refusal::from)?
        .ok_or_else(|| {
            crate::app::problem::Problem::from(crate::domain::Refusal::not_found("account"))
        })?;
    Ok(axum::Json(
        query::MemberView {
            is_owner: account.owner_id == user.id,
            role_label: crate::domain::role_label(&account, &user),
            user: user.into(),
        }
        .into(),
    ))
}

/// The team list, paged (admins; R07).
#[utoipa::path(get, path = "/v1/accounts/{a}/members", tag = "members", params(("a" = String, Path, description = "account id"), PageQuery),
    responses((status = 200, body = MemberList), Errors), security(("bearer" = [])))]
async fn list_members(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    members_answer(&app, &who, &a, q.after.as_deref(), q.limit)
}

/// `list_members`'s answer, also given by the read lane (`super::lane`)
/// for the first page at the default size.
pub(super) fn members_answer(
    app: &App,
    who: &Principal,
    a: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> ApiResult<Response> {
    let page = query::members(&app.store, who, a, after, limit)?;
    let mut body = Vec::with_capacity(64 + page.items.len() * MEMBER_JSON_BYTES);
    MemberListJson {
        items: &page.items,
        next: page.next.as_deref(),
    }
    .write(&mut body);
    Ok(json_response(body))
}

/// Adds a member; agents and admins take a seat (R09). Mails a password-set link.
#[utoipa::path(post, path = "/v1/accounts/{a}/members", tag = "members", request_body = AddMemberRequest,
    params(("a" = String, Path, description = "account id")),
    responses((status = 201, body = MemberOut), Errors), security(("bearer" = [])))]
async fn add_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(a): Path<String>,
    Json(body): Json<AddMemberRequest>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    match app
        .submit(
            who.clone(),
            Command::AddMember(cmd::AddMember {
                account_id: a.clone(),
                name: body.name,
                email: body.email,
                role: body.role,
            }),
        )
        .await?
    {
        Reply::User(u) => Ok((
            StatusCode::CREATED,
            axum::Json(query::member(&app.store, &who, &a, &u.id)?.into()),
        )),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(get, path = "/v1/accounts/{a}/members/{u}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn get_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<axum::Json<MemberOut>> {
    Ok(axum::Json(query::member(&app.store, &who, &a, &u)?.into()))
}

/// Changes a member's role (R08: not the owner's; R09: seats).
#[utoipa::path(patch, path = "/v1/accounts/{a}/members/{u}", tag = "members", request_body = ChangeRoleRequest,
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 200, body = MemberOut), Errors), security(("bearer" = [])))]
async fn change_role(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
    Json(body): Json<ChangeRoleRequest>,
) -> ApiResult<axum::Json<MemberOut>> {
    app.submit(
        who.clone(),
        Command::ChangeRole(cmd::ChangeRole {
            account_id: a.clone(),
            user_id: u.clone(),
            role: body.role,
        }),
    )
    .await?;
    Ok(axum::Json(query::member(&app.store, &who, &a, &u)?.into()))
}

/// Removes a member (R08: never the owner); frees their seat.
#[utoipa::path(delete, path = "/v1/accounts/{a}/members/{u}", tag = "members",
    params(("a" = String, Path, description = "account id"), ("u" = String, Path, description = "user id")),
    responses((status = 204, description = "removed"), Errors), security(("bearer" = [])))]
async fn remove_member(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((a, u)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.submit(
        who,
        Command::RemoveMember(cmd::RemoveMember {
            account_id: a,
            user_id: u,
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
