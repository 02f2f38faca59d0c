//! SCIM 2.0 (RFC 7643, RFC 7644): the customer's identity provider (Okta,
//! Entra ID, Google Workspace, JumpCloud) provisions the account's members
//! at `<public_url>/scim/v2`. A bearer token of the account (see
//! `domain::query::directory_principal`) makes the caller
//! `Principal::Directory`; every change is one of the core's commands, run
//! through `App::submit` as the console's are (policies, seats, audit,
//! refusal budget). This module only translates: SCIM resources and
//! errors in, commands and queries out.

pub mod filter;
pub mod protocol;
pub mod resource;

use std::ops::ControlFlow;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{App, AppState};
use crate::domain::validate::id_has_shape;
use crate::domain::{cmd, normalize_email, query, Command, Principal, SellRole, SupportRole, User};
use filter::{field, parse_filter, Filter, Pinned};
use protocol::scim_json;
pub use protocol::{ScimError, BODY_MAX_BYTES, PAGE_COUNT_MAX, SCAN_MAX};
pub use resource::PATCH_OPERATIONS_MAX;
use resource::{group_json, in_group, project, user_json, Desired, GROUPS, LIST_SCHEMA};

/// Attributes of a User a directory may change.
const USER_WRITABLE: &[&str] = &[
    "username",
    "name",
    "displayname",
    "active",
    "emails",
    "externalid",
];
const GROUP_WRITABLE: &[&str] = &["members"];

type ScimResult = Result<Response, ScimError>;

/// The directory calling: a bearer token of one account. Failed attempts
/// count against the token's own budget and the client's network address
/// (as sign-in attempts do); a success costs nothing.
pub struct Directory {
    pub who: Principal,
    pub account_id: String,
}

impl FromRequestParts<AppState> for Directory {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        let unauthorized =
            |detail: &str| ScimError::new(401, None, format!("unauthorized: {detail}"));
        let ip = crate::app::ClientIp::from_request_parts(parts, app)
            .await
            .ok()
            .and_then(|c| c.0);
        if let Some(ip) = ip {
            app.check_ip(ip).map_err(ScimError::from)?;
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <directory token>"))?;
        // The token's own budget, keyed by the id it names (not secret).
        let token_id = crate::domain::scim_token_parts(token).map(|(_, id)| id.to_string());
        if let Some(id) = &token_id {
            if let Err(secs) = app.limiter.peek(&["scim", id]) {
                app.shed("rate_limited");
                let mut e = ScimError::new(
                    429,
                    None,
                    "rate_limited: too many failed attempts with this token; wait",
                );
                e.retry_after_secs = Some(secs);
                return Err(e);
            }
        }
        match query::directory_principal(&app.store, token) {
            Ok(who) => {
                let Principal::Directory { account_id, .. } = &who else {
                    return Err(unauthorized("not a directory token"));
                };
                let account_id = account_id.clone();
                note_use(app, &who, &account_id);
                Ok(Directory { who, account_id })
            }
            Err(refusal) if refusal.kind == crate::domain::RefusalKind::Unavailable => {
                Err(ScimError::from(refusal))
            }
            Err(_) => {
                if let Some(id) = &token_id {
                    let _ = app.limiter.check(&["scim", id]);
                }
                app.count_ip_failure(ip);
                Err(unauthorized("the directory token is invalid or revoked"))
            }
        }
    }
}

/// Records the token's use when the stored one is older than its
/// precision, without holding the request for it.
fn note_use(app: &AppState, who: &Principal, account_id: &str) {
    let Principal::Directory { token_id, .. } = who else {
        return;
    };
    let precision =
        chrono::Duration::minutes(crate::domain::limits::SCIM_TOKEN_USE_PRECISION_MINUTES);
    let stale = match app.store.account(account_id) {
        Ok(Some(account)) => account
            .scim_tokens
            .iter()
            .find(|t| t.id == *token_id)
            .is_some_and(|t| {
                t.last_used_at
                    .is_none_or(|at| at + precision <= chrono::Utc::now())
            }),
        _ => false,
    };
    if !stale {
        return;
    }
    let app = app.clone();
    let who = who.clone();
    let command = Command::NoteScimTokenUse(cmd::NoteScimTokenUse {
        account_id: account_id.to_string(),
    });
    tokio::spawn(async move {
        if let Err(refusal) = app.writer.submit(who, command).await {
            tracing::debug!(code = %refusal.code, "noting a directory token's use failed");
        }
    });
}

/// A JSON body within `BODY_MAX_BYTES` (SCIM's `application/scim+json`
/// or plain JSON).
pub struct ScimBody(pub Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ScimError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ScimError::new(
                        413,
                        None,
                        "body_too_large: the body is larger than the limit",
                    )
                } else {
                    ScimError::invalid_syntax(format!(
                        "the body could not be read: {}",
                        e.body_text()
                    ))
                }
            })?;
        if bytes.len() > BODY_MAX_BYTES {
            return Err(ScimError::new(
                413,
                None,
                format!("body_too_large: a SCIM body is at most {BODY_MAX_BYTES} bytes"),
            ));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))?;
        Ok(ScimBody(value))
    }
}

pub fn routes() -> Router<AppState> {
    let v2 = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/.search", axum::routing::post(search_all))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", axum::routing::post(search_users))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Groups", get(list_groups).post(create_group))
        .route("/Groups/.search", axum::routing::post(search_groups))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .fallback(|| async { ScimError::new(404, None, "not_found: no such SCIM endpoint") })
        .method_not_allowed_fallback(|| async {
            ScimError::new(
                405,
                None,
                "method_not_allowed: this endpoint does not take that method",
            )
        });
    Router::new().nest("/scim/v2", v2)
}

fn base(app: &App) -> String {
    format!("{}/scim/v2", app.public_url.trim_end_matches('/'))
}

// ---- discovery ----

async fn service_provider_config(State(app): State<AppState>, _d: Directory) -> Response {
    scim_json(
        StatusCode::OK,
        discovery::service_provider_config(&base(&app)),
    )
}

async fn resource_types(State(app): State<AppState>, _d: Directory) -> Response {
    let items = discovery::resource_types(&base(&app));
    scim_json(StatusCode::OK, list_response(items.len(), 1, items))
}

async fn resource_type(
    State(app): State<AppState>,
    _d: Directory,
    Path(id): Path<String>,
) -> ScimResult {
    discovery::resource_types(&base(&app))
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .map(|t| scim_json(StatusCode::OK, t))
        .ok_or_else(|| ScimError::not_found("resource type"))
}

async fn schemas(State(app): State<AppState>, _d: Directory) -> Response {
    let items = discovery::schemas(&base(&app));
    scim_json(StatusCode::OK, list_response(items.len(), 1, items))
}

async fn schema(State(app): State<AppState>, _d: Directory, Path(id): Path<String>) -> ScimResult {
    discovery::schemas(&base(&app))
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .map(|t| scim_json(StatusCode::OK, t))
        .ok_or_else(|| ScimError::not_found("schema"))
}

fn list_response(total: usize, start: usize, items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

// ---- listing ----

/// `filter`, `startIndex`, `count`, `attributes`, `excludedAttributes`,
/// from the query (GET) or the body (`POST .search`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

struct Listing {
    filter: Option<Filter>,
    start: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn names(list: &Option<String>) -> Vec<String> {
    list.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .take(50)
        .collect()
}

impl ListParams {
    fn from_search(body: &Value) -> Result<Self, ScimError> {
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match field(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match field(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
            }
        };
        Ok(ListParams {
            filter: text("filter")?,
            start_index: number("startIndex")?,
            count: number("count")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        })
    }

    fn listing(self) -> Result<Listing, ScimError> {
        let filter = self
            .filter
            .as_deref()
            .map(|f| {
                parse_filter(f)
                    .map_err(|e| ScimError::invalid_filter(format!("invalid_filter: {e}")))
            })
            .transpose()?;
        Ok(Listing {
            filter,
            // RFC 7644 §3.4.2.4: below 1 is 1; a negative count is 0.
            start: self.start_index.unwrap_or(1).max(1) as usize,
            count: (self
                .count
                .unwrap_or(PAGE_COUNT_MAX as i64)
                .clamp(0, PAGE_COUNT_MAX as i64)) as usize,
            attributes: names(&self.attributes),
            excluded: names(&self.excluded_attributes),
        })
    }
}

/// Collects the page of matches and counts all of them.
struct Pager {
    start: usize,
    count: usize,
    total: usize,
    items: Vec<Value>,
}

impl Pager {
    fn new(listing: &Listing) -> Self {
        Pager {
            start: listing.start,
            count: listing.count,
            total: 0,
            items: vec![],
        }
    }

    fn answer(self, listing: &Listing) -> Response {
        let items = self
            .items
            .into_iter()
            .map(|r| project(r, &listing.attributes, &listing.excluded))
            .collect();
        scim_json(
            StatusCode::OK,
            list_response(self.total, listing.start, items),
        )
    }

    fn offer(&mut self, resource: Value, filter: Option<&Filter>) {
        if filter.is_some_and(|f| !f.matches(&resource)) {
            return;
        }
        self.total += 1;
        if self.total >= self.start && self.items.len() < self.count {
            self.items.push(resource);
        }
    }
}

async fn list_users(
    State(app): State<AppState>,
    d: Directory,
    Query(params): Query<ListParams>,
) -> ScimResult {
    users_page(&app, &d, params.listing()?)
}

async fn search_users(
    State(app): State<AppState>,
    d: Directory,
    ScimBody(body): ScimBody,
) -> ScimResult {
    users_page(&app, &d, ListParams::from_search(&body)?.listing()?)
}

/// Every resource type at once (RFC 7644 §3.4.3): members, then roles.
async fn search_all(
    State(app): State<AppState>,
    d: Directory,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let listing = ListParams::from_search(&body)?.listing()?;
    let mut pager = Pager::new(&listing);
    offer_users(&app, &d, &listing, &mut pager)?;
    offer_groups(&app, &d, &listing, &mut pager)?;
    Ok(pager.answer(&listing))
}

fn users_page(app: &App, d: &Directory, listing: Listing) -> ScimResult {
    let mut pager = Pager::new(&listing);
    offer_users(app, d, &listing, &mut pager)?;
    Ok(pager.answer(&listing))
}

fn offer_users(
    app: &App,
    d: &Directory,
    listing: &Listing,
    pager: &mut Pager,
) -> Result<(), ScimError> {
    let base = base(app);
    let filter = listing.filter.as_ref();
    match filter.and_then(Filter::pinned) {
        // `userName eq` (what directories ask before creating someone):
        // the address index answers it.
        Some(Pinned::UserName(name)) => {
            for user in query::members_by_user_name(&app.store, &d.who, &d.account_id, name)? {
                pager.offer(user_json(&user, &base), filter);
            }
        }
        Some(Pinned::Address(address)) => {
            let (_, user) = query::member_by_email(&app.store, &d.who, &d.account_id, address)?;
            if let Some(user) = user {
                pager.offer(user_json(&user, &base), filter);
            }
        }
        None => {
            query::each_member(&app.store, &d.who, &d.account_id, SCAN_MAX, |_, user| {
                pager.offer(user_json(&user, &base), filter);
                ControlFlow::Continue(())
            })?;
        }
    }
    Ok(())
}

// ---- one user ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn member(app: &App, d: &Directory, id: &str) -> Result<User, ScimError> {
    if !id_has_shape("usr", id) {
        return Err(ScimError::not_found("User"));
    }
    Ok(std::sync::Arc::unwrap_or_clone(
        query::member(&app.store, &d.who, &d.account_id, id)?.user,
    ))
}

fn user_answer(app: &App, status: StatusCode, user: &User, projection: &Projection) -> Response {
    let resource = project(
        user_json(user, &base(app)),
        &names(&projection.attributes),
        &names(&projection.excluded_attributes),
    );
    let mut response = scim_json(status, resource);
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&format!("{}/Users/{}", base(app), user.id)) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    response
}

async fn get_user(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
) -> ScimResult {
    let user = member(&app, &d, &id)?;
    Ok(user_answer(&app, StatusCode::OK, &user, &projection))
}

/// A member created by the directory: an agent (who takes an agent seat,
/// or the answer is `agent_seat_exhausted` and its hook fires), with every
/// address it sent (each mailed a verification link, R13).
async fn create_user(
    State(app): State<AppState>,
    d: Directory,
    Query(projection): Query<Projection>,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let desired = Desired::from_resource(&body)?;
    let command = Command::ProvisionMember(cmd::ProvisionMember {
        account_id: d.account_id.clone(),
        name: desired.name.clone(),
        email: desired.primary.clone(),
        role: SupportRole::Agent,
        external_id: desired.external_id.clone(),
        user_name: Some(desired.user_name.clone()),
        active: desired.active,
    });
    let user = match app.submit(d.who.clone(), command).await? {
        crate::domain::Reply::User(user) => user,
        other => return Err(crate::app::unexpected(other).into()),
    };
    let user = converge(&app, &d, user, &desired).await?;
    Ok(user_answer(&app, StatusCode::CREATED, &user, &projection))
}

async fn replace_user(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let user = member(&app, &d, &id)?;
    let desired = Desired::from_resource(&body)?;
    let user = converge(&app, &d, user, &desired).await?;
    Ok(user_answer(&app, StatusCode::OK, &user, &projection))
}

async fn patch_user(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let user = member(&app, &d, &id)?;
    let mut resource = user_json(&user, &base(&app));
    resource::apply_patch(&mut resource, &body, USER_WRITABLE)?;
    let desired = Desired::from_resource(&resource)?;
    let user = converge(&app, &d, user, &desired).await?;
    Ok(user_answer(&app, StatusCode::OK, &user, &projection))
}

/// Removes the member (R08: never the owner; the answer says to hand
/// ownership over first).
async fn delete_user(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
) -> ScimResult {
    let user = member(&app, &d, &id)?;
    let command = Command::RemoveMember(cmd::RemoveMember {
        account_id: d.account_id.clone(),
        user_id: user.id,
    });
    app.submit(d.who.clone(), command).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Brings a member to what the directory describes, one command per
/// difference, in the order the rules allow: reactivated first (so the
/// rest applies to a member holding their seat), then name and external
/// id, new addresses (R13: the profile told, the address sent a
/// verification link), the primary address (R14: only once verified — an
/// unverified one becomes primary when its link is used), addresses no
/// longer listed (never the primary, R15, nor the one waiting to become
/// it), deactivated last. A refused
/// step ends the request with its error; the steps before it stay done,
/// as they would in the console.
async fn converge(
    app: &App,
    d: &Directory,
    user: User,
    desired: &Desired,
) -> Result<User, ScimError> {
    let account_id = &d.account_id;
    let user_id = user.id.clone();
    let submit = |command: Command| app.submit(d.who.clone(), command);
    if desired.active && !user.is_active() {
        submit(Command::SetMemberActive(cmd::SetMemberActive {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            active: true,
        }))
        .await?;
    }
    if desired.name != user.name {
        submit(Command::RenameMember(cmd::RenameMember {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            name: desired.name.clone(),
        }))
        .await?;
    }
    let user_name = Some(desired.user_name.clone());
    if desired.external_id != user.external_id || user_name != user.user_name {
        submit(Command::SetDirectoryIds(cmd::SetDirectoryIds {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            user_name,
            external_id: desired.external_id.clone(),
        }))
        .await?;
    }
    for address in &desired.emails {
        if user.email(address).is_none() {
            submit(Command::AddEmail(cmd::AddEmail {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                address: address.clone(),
            }))
            .await?;
        }
    }
    let now = member(app, d, &user_id)?;
    // R14: only a verified address becomes primary. An unverified one was
    // added above and mailed its link; it becomes primary when that link
    // is used.
    let wanted_primary = now.email(&desired.primary).cloned();
    if let Some(address) = wanted_primary.filter(|e| !e.primary) {
        submit(Command::RequestPrimaryEmail(cmd::RequestPrimaryEmail {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            address: address.address,
        }))
        .await?;
    }
    let now = member(app, d, &user_id)?;
    let wanted = |address: &str| {
        desired
            .emails
            .iter()
            .any(|e| normalize_email(e) == normalize_email(address))
    };
    for e in now
        .emails
        .iter()
        .filter(|e| !e.primary && !wanted(&e.address))
    {
        submit(Command::RemoveEmail(cmd::RemoveEmail {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            address: e.address.clone(),
        }))
        .await?;
    }
    if !desired.active && user.is_active() {
        submit(Command::SetMemberActive(cmd::SetMemberActive {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            active: false,
        }))
        .await?;
    }
    member(app, d, &user_id)
}

// ---- groups: the account's roles ----

fn group_name(id: &str) -> Result<&'static str, ScimError> {
    GROUPS
        .iter()
        .find(|(g, _)| *g == id)
        .map(|(_, name)| *name)
        .ok_or_else(|| ScimError::not_found("Group"))
}

/// Every group with its members, in one pass over the team.
fn groups_with_members(
    app: &App,
    d: &Directory,
    with_members: bool,
) -> Result<Vec<Value>, ScimError> {
    let mut members: Vec<Vec<(String, String)>> = vec![vec![]; GROUPS.len()];
    if with_members {
        query::each_member(&app.store, &d.who, &d.account_id, SCAN_MAX, |_, user| {
            for (i, (id, _)) in GROUPS.iter().enumerate() {
                if in_group(id, &user) {
                    members[i].push((user.id.clone(), user.name.clone()));
                }
            }
            ControlFlow::Continue(())
        })?;
    } else {
        // The permission check a scan would have made.
        query::member_by_email(&app.store, &d.who, &d.account_id, "")?;
    }
    let base = base(app);
    Ok(GROUPS
        .iter()
        .zip(members)
        .map(|((id, name), m)| group_json(id, name, &m, &base))
        .collect())
}

fn wants_members(listing: &Listing) -> bool {
    let named = |list: &[String], what: &str| list.iter().any(|a| filter::strip_schema(a) == what);
    let filter_needs = listing.filter.is_some();
    if !listing.attributes.is_empty() {
        return named(&listing.attributes, "members") || filter_needs;
    }
    !named(&listing.excluded, "members") || filter_needs
}

async fn list_groups(
    State(app): State<AppState>,
    d: Directory,
    Query(params): Query<ListParams>,
) -> ScimResult {
    groups_page(&app, &d, params.listing()?)
}

async fn search_groups(
    State(app): State<AppState>,
    d: Directory,
    ScimBody(body): ScimBody,
) -> ScimResult {
    groups_page(&app, &d, ListParams::from_search(&body)?.listing()?)
}

fn groups_page(app: &App, d: &Directory, listing: Listing) -> ScimResult {
    let mut pager = Pager::new(&listing);
    offer_groups(app, d, &listing, &mut pager)?;
    Ok(pager.answer(&listing))
}

fn offer_groups(
    app: &App,
    d: &Directory,
    listing: &Listing,
    pager: &mut Pager,
) -> Result<(), ScimError> {
    for group in groups_with_members(app, d, wants_members(listing))? {
        pager.offer(group, listing.filter.as_ref());
    }
    Ok(())
}

fn group(app: &App, d: &Directory, id: &str) -> Result<Value, ScimError> {
    group_name(id)?;
    groups_with_members(app, d, true)?
        .into_iter()
        .find(|g| g["id"] == id)
        .ok_or_else(|| ScimError::not_found("Group"))
}

async fn get_group(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
) -> ScimResult {
    let g = group(&app, &d, &id)?;
    let g = project(
        g,
        &names(&projection.attributes),
        &names(&projection.excluded_attributes),
    );
    Ok(scim_json(StatusCode::OK, g))
}

async fn create_group(_d: Directory) -> ScimError {
    ScimError::new(
        403,
        None,
        "groups_are_roles: the groups are the account's roles (Administrators, Agents, Sell users, Sell admins); link your directory's groups to them instead of creating new ones",
    )
}

async fn delete_group(_d: Directory, Path(_id): Path<String>) -> ScimError {
    ScimError::new(
        403,
        None,
        "groups_are_roles: the account's roles cannot be deleted; remove their members instead",
    )
}

fn member_ids(group: &Value) -> Result<Vec<String>, ScimError> {
    match field(group, "members") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                field(m, "value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ScimError::invalid_value("every member needs a value (a user id)")
                    })
            })
            .collect(),
        Some(_) => Err(ScimError::invalid_value("members must be a list")),
    }
}

async fn replace_group(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let current = group(&app, &d, &id)?;
    if let Some(name) = field(&body, "displayName").and_then(Value::as_str) {
        if name != group_name(&id)? {
            return Err(ScimError::new(
                400,
                Some("mutability"),
                "groups_are_roles: a role's name cannot change",
            ));
        }
    }
    set_members(&app, &d, &id, &member_ids(&current)?, &member_ids(&body)?).await?;
    Ok(scim_json(StatusCode::OK, group(&app, &d, &id)?))
}

async fn patch_group(
    State(app): State<AppState>,
    d: Directory,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ScimResult {
    let current = group(&app, &d, &id)?;
    let mut patched = current.clone();
    resource::apply_patch(&mut patched, &body, GROUP_WRITABLE)?;
    set_members(
        &app,
        &d,
        &id,
        &member_ids(&current)?,
        &member_ids(&patched)?,
    )
    .await?;
    Ok(scim_json(StatusCode::OK, group(&app, &d, &id)?))
}

/// Role changes that make `group`'s members `wanted`: one command per
/// member who joins or leaves, as in the console.
async fn set_members(
    app: &App,
    d: &Directory,
    group: &str,
    current: &[String],
    wanted: &[String],
) -> Result<(), ScimError> {
    if wanted.len() > SCAN_MAX {
        return Err(ScimError::new(
            400,
            Some("tooMany"),
            "too_many: too many members",
        ));
    }
    for id in wanted.iter().filter(|id| !current.contains(id)) {
        let user = member(app, d, id).map_err(|e| {
            if e.status == 404 {
                ScimError::invalid_value(format!("not_found: no member {id}"))
            } else {
                e
            }
        })?;
        if let Some(command) = joining(&d.account_id, group, &user) {
            app.submit(d.who.clone(), command).await?;
        }
    }
    for id in current.iter().filter(|id| !wanted.contains(id)) {
        let user = member(app, d, id)?;
        if let Some(command) = leaving(&d.account_id, group, &user) {
            app.submit(d.who.clone(), command).await?;
        }
    }
    Ok(())
}

fn change_role(account_id: &str, user: &User, role: SupportRole) -> Command {
    Command::ChangeRole(cmd::ChangeRole {
        account_id: account_id.to_string(),
        user_id: user.id.clone(),
        role,
    })
}

fn sell_role(account_id: &str, user: &User, role: SellRole) -> Command {
    let (account_id, user_id) = (account_id.to_string(), user.id.clone());
    match (user.sell_role, role) {
        (_, SellRole::None) => Command::RemoveSell(cmd::RemoveSell {
            account_id,
            user_id,
        }),
        (SellRole::None, role) => Command::GrantSell(cmd::GrantSell {
            account_id,
            user_id,
            role,
        }),
        (_, role) => Command::ChangeSellRole(cmd::ChangeSellRole {
            account_id,
            user_id,
            role,
        }),
    }
}

/// The command that puts `user` in `group`, if they are not in it.
fn joining(account_id: &str, group: &str, user: &User) -> Option<Command> {
    if in_group(group, user) {
        return None;
    }
    Some(match group {
        "administrators" => change_role(account_id, user, SupportRole::Admin),
        "agents" => change_role(account_id, user, SupportRole::Agent),
        "sell-users" => sell_role(account_id, user, SellRole::User),
        _ => sell_role(account_id, user, SellRole::Admin),
    })
}

/// The command that takes `user` out of `group`, if they are in it: an
/// administrator becomes an agent, an agent an end user (R08 refuses it
/// for the owner), a Sell admin a Sell user, a Sell user loses Sell.
fn leaving(account_id: &str, group: &str, user: &User) -> Option<Command> {
    if !in_group(group, user) {
        return None;
    }
    Some(match group {
        "administrators" => change_role(account_id, user, SupportRole::Agent),
        "agents" => change_role(account_id, user, SupportRole::EndUser),
        "sell-users" => sell_role(account_id, user, SellRole::None),
        _ => sell_role(account_id, user, SellRole::User),
    })
}

mod discovery;
