//! Loaded policies (platform support).

use crate::domain::cmd;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use crate::app::problem::Json;
use crate::domain::{query, Command, Refusal};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies))
        .routes(routes!(disable_policy))
        .routes(routes!(enable_policy))
        .routes(routes!(replay_policy))
        .routes(routes!(policy_versions))
        .routes(routes!(policy_version))
}

/// A version of a policy as loaded.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyVersionItem {
    /// `script` or `plugin`.
    pub kind: String,
    /// A script's content hash; a plugin's `name@crate version`.
    pub version: String,
    /// A plugin's settings, hashed.
    pub settings_hash: Option<String>,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// A script's source (in `.../versions/{version}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyVersionList {
    /// Newest load first.
    pub items: Vec<PolicyVersionItem>,
}

fn version_item(v: crate::policy::record::PolicyVersion, with_source: bool) -> PolicyVersionItem {
    PolicyVersionItem {
        kind: v.kind,
        version: v.version,
        settings_hash: v.settings_hash,
        loaded_at: v.loaded_at,
        source: v.source.filter(|_| with_source),
    }
}

/// Every version of a policy ever loaded (by any replica), newest first
/// (platform support). A script's name in a shadow folder is `shadow/<file>`
/// (`shadow%2F<file>` in the path).
#[utoipa::path(get, path = "/v1/policies/{name}/versions", tag = "operator",
    params(("name" = String, Path, description = "a plugin's name or a script's file name")),
    responses((status = 200, body = PolicyVersionList), Errors), security(("bearer" = [])))]
pub(super) async fn policy_versions(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<PolicyVersionList>> {
    query::platform_support_only(&who, "policy versions")?;
    let store = app.store.clone();
    let versions =
        tokio::task::spawn_blocking(move || crate::policy::record::versions(&store, &name))
            .await
            .map_err(|e| crate::app::problem::Problem::internal(format!("reading versions: {e}")))?
            .map_err(Refusal::from)?;
    Ok(axum::Json(PolicyVersionList {
        items: versions
            .into_iter()
            .map(|v| version_item(v, false))
            .collect(),
    }))
}

/// One version of a policy with its source: what an audit entry's or a
/// record's policy version ran (platform support).
#[utoipa::path(get, path = "/v1/policies/{name}/versions/{version}", tag = "operator",
    params(("name" = String, Path, description = "a plugin's name or a script's file name"),
           ("version" = String, Path, description = "a script's content hash or a plugin's name@version")),
    responses((status = 200, body = PolicyVersionItem), Errors), security(("bearer" = [])))]
pub(super) async fn policy_version(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<axum::Json<PolicyVersionItem>> {
    query::platform_support_only(&who, "policy versions")?;
    let store = app.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        crate::policy::record::version(&store, &name, &version)
    })
    .await
    .map_err(|e| crate::app::problem::Problem::internal(format!("reading a version: {e}")))?
    .map_err(Refusal::from)?;
    found
        .map(|v| axum::Json(version_item(v, true)))
        .ok_or_else(|| Refusal::not_found("policy version").into())
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The draft's file name: its decisions are compared with the recorded
    /// ones of the enforced policy of that name, when there is one.
    #[serde(default = "draft_name")]
    pub name: String,
    /// The draft's source (with its `// hooks:` and `// calls:` header).
    pub source: String,
    /// Only this hook (default: every hook the draft handles).
    pub hook: Option<String>,
    /// From when: an RFC 3339 time, a date or an age (`36h`, `7d`; default `7d`).
    pub since: Option<String>,
    pub account: Option<String>,
    /// Records read, at most (default and most: 100,000).
    pub limit: Option<usize>,
}

fn draft_name() -> String {
    "draft.rhai".into()
}

/// Runs a draft against the recorded hook calls, in the same sandbox as
/// live calls, with no effect of any kind: every decision that would differ
/// from what happened, errors, limit hits, latency (platform support).
#[utoipa::path(post, path = "/v1/policies/replay", tag = "operator", request_body = ReplayBody,
    responses((status = 200, description = "the replay report", body = serde_json::Value), Errors), security(("bearer" = [])))]
pub(super) async fn replay_policy(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Json(body): Json<ReplayBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    use crate::app::problem::Problem;
    use crate::policy::replay::{ReplayFailure, ReplayRequest, RECORDS_MAX};
    query::platform_support_only(&who, "policy replay")?;
    if body.source.len() as u64 > app.policies.max_file_bytes() {
        return Err(Problem::bad_request(format!(
            "source is larger than {} bytes",
            app.policies.max_file_bytes()
        )));
    }
    if body.name.is_empty() || body.name.len() > 128 || body.name.chars().any(char::is_control) {
        return Err(Problem::bad_request("name must be 1 to 128 characters"));
    }
    let hook = match body.hook.as_deref() {
        Some(h) => Some(
            admind_plugin_api::Hook::from_name(h)
                .ok_or_else(|| Problem::bad_request(format!("unknown hook {h:?}")))?,
        ),
        None => None,
    };
    let since =
        crate::audit::parse_since(body.since.as_deref().unwrap_or("7d"), chrono::Utc::now())
            .map_err(Problem::bad_request)?;
    let limit = body.limit.unwrap_or(RECORDS_MAX).clamp(1, RECORDS_MAX);
    let (store, policies) = (app.store.clone(), app.policies.clone());
    // Dropped with this request (the client left, or the deadline passed):
    // the replay stops instead of running on for nobody.
    let stop = crate::policy::script::StopOnDrop::new();
    let stop_flag = stop.0.clone();
    let report = tokio::task::spawn_blocking(move || {
        policies.replay(
            &ReplayRequest {
                name: &body.name,
                source: &body.source,
                hook,
                since: Some(since),
                account: body.account.as_deref(),
                limit,
                stop: Some(stop_flag),
            },
            &store,
        )
    })
    .await
    .map_err(|e| Problem::internal(format!("the replay task failed: {e}")))?;
    drop(stop);
    match report {
        Ok(report) => Ok(axum::Json(
            serde_json::to_value(report).map_err(|e| Problem::internal(e.to_string()))?,
        )),
        Err(ReplayFailure::Draft(e)) => Err(Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "draft_invalid",
            format!("the draft does not load: {e}"),
        )),
        Err(ReplayFailure::Store(e)) => Err(Refusal::from(e).into()),
        // Only when this request's future was dropped, so nobody reads it.
        Err(ReplayFailure::Stopped) => Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "the replay stopped: its request ended",
        )),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// Why (required to switch off; kept in the audit log and shown).
    #[serde(default)]
    pub reason: String,
}

/// A policy switched off, as `GET /v1/policies` shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SwitchedOffOut {
    pub reason: String,
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Switches a policy off at run time (break-glass): no replica calls it
/// until it is switched back on; kept across restarts, audited.
#[utoipa::path(post, path = "/v1/policies/{name}/disable", tag = "operator", request_body = SwitchRequest,
    params(("name" = String, Path, description = "a plugin's name or a script's file name, as GET /v1/policies shows it")),
    responses((status = 200, body = PolicyOut), Errors), security(("bearer" = [])))]
pub(super) async fn disable_policy(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(name): Path<String>,
    Json(body): Json<SwitchRequest>,
) -> ApiResult<axum::Json<PolicyOut>> {
    switch(app, who, name, true, body.reason).await
}

/// Switches a policy back on.
#[utoipa::path(post, path = "/v1/policies/{name}/enable", tag = "operator", request_body = SwitchRequest,
    params(("name" = String, Path, description = "a plugin's name or a script's file name")),
    responses((status = 200, body = PolicyOut), Errors), security(("bearer" = [])))]
pub(super) async fn enable_policy(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(name): Path<String>,
    Json(body): Json<SwitchRequest>,
) -> ApiResult<axum::Json<PolicyOut>> {
    switch(app, who, name, false, body.reason).await
}

async fn switch(
    app: AppState,
    who: crate::domain::Principal,
    name: String,
    disabled: bool,
    reason: String,
) -> ApiResult<axum::Json<PolicyOut>> {
    query::platform_support_only(&who, "policy switches")?;
    if !app.policies.knows(&name) {
        return Err(Refusal::not_found("policy").into());
    }
    app.submit(
        who,
        Command::SetPolicySwitch(cmd::SetPolicySwitch {
            name: name.clone(),
            disabled,
            reason,
        }),
    )
    .await?;
    crate::app::refresh_switches(&app).await;
    app.policies
        .status()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| axum::Json(policy_out(p)))
        .ok_or_else(|| Refusal::not_found("policy").into())
}

fn policy_out(p: crate::policy::PolicyStatus) -> PolicyOut {
    PolicyOut {
        kind: p.kind.to_string(),
        name: p.name,
        hooks: p.hooks.into_iter().map(str::to_string).collect(),
        capabilities: p.capabilities.into_iter().map(str::to_string).collect(),
        version: p.version,
        loaded_at: p.loaded_at,
        last_error: p.last_error.map(|e| PolicyErrorOut {
            message: e.message,
            line: e.line,
            column: e.column,
        }),
        switched_off: p.switched_off.map(|s| SwitchedOffOut {
            reason: s.reason,
            by: s.by,
            at: s.at,
        }),
        shadow: p.shadow,
        disagreements: p.disagreements,
        calls: p.calls,
        failures: p.failures,
        mean_latency_us: p.mean_latency_us,
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyErrorOut {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyOut {
    /// `plugin` or `script`.
    pub kind: String,
    pub name: String,
    pub hooks: Vec<String>,
    /// What it may do beyond reading its event: the host functions a
    /// script declares in its `// calls:` header, a plugin's capabilities.
    pub capabilities: Vec<String>,
    /// Content hash (scripts) or crate version (plugins).
    pub version: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Why the file on disk is not in force (the previous version is).
    pub last_error: Option<PolicyErrorOut>,
    /// Set while platform support has it switched off (break-glass).
    pub switched_off: Option<SwitchedOffOut>,
    /// A shadow script (`scripts/shadow/`): runs on live events, recorded,
    /// never enforced.
    pub shadow: bool,
    /// Shadow scripts: decisions that differed from the enforced outcome.
    pub disagreements: u64,
    pub calls: u64,
    pub failures: u64,
    pub mean_latency_us: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyVersionOut {
    /// `plugin:<name>` or `script:<file>`.
    pub policy: String,
    pub version: String,
}

/// A live replica of the store and the policy versions it has in force.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaOut {
    pub id: String,
    /// Whether this is the replica that answered.
    pub this: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Its last heartbeat.
    pub seen_at: chrono::DateTime<chrono::Utc>,
    /// Whether its policy versions are this replica's.
    pub agrees: bool,
    pub policies: Vec<PolicyVersionOut>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    /// The policies of the replica that answered.
    pub items: Vec<PolicyOut>,
    /// Every live replica (this one first; only this one when the store is
    /// not shared).
    pub replicas: Vec<ReplicaOut>,
    /// False when a live replica has other policy versions loaded: replicas
    /// would decide the same request differently.
    pub replicas_agree: bool,
}

/// Loaded plugins and scripts, their hooks, versions and health (operator).
#[utoipa::path(get, path = "/v1/policies", tag = "operator",
    responses((status = 200, body = PolicyList), Errors), security(("bearer" = [])))]
pub(super) async fn list_policies(
    State(app): State<AppState>,
    Authed(who, _): Authed,
) -> ApiResult<axum::Json<PolicyList>> {
    query::platform_support_only(&who, "loaded policies")?;
    let items = app.policies.status().into_iter().map(policy_out).collect();
    let (store, me, policies) = (app.store.clone(), app.me.clone(), app.policies.clone());
    let live = tokio::task::spawn_blocking(move || crate::replicas::live(&store, &me, &policies))
        .await
        .map_err(|e| {
            crate::app::problem::Problem::internal(format!("reading the replicas: {e}"))
        })?;
    let replicas_agree = live.iter().all(|(_, agrees)| *agrees);
    let replicas = live
        .into_iter()
        .enumerate()
        .map(|(i, (r, agrees))| ReplicaOut {
            id: r.id,
            this: i == 0,
            started_at: r.started_at,
            seen_at: r.seen_at,
            agrees,
            policies: r
                .policies
                .into_iter()
                .map(|(policy, version)| PolicyVersionOut { policy, version })
                .collect(),
        })
        .collect();
    Ok(axum::Json(PolicyList {
        items,
        replicas,
        replicas_agree,
    }))
}
