//! Loaded policies (platform support).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::*;
use crate::domain::query;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_policies))
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
    let items = app
        .policies
        .status()
        .into_iter()
        .map(|p| PolicyOut {
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
            calls: p.calls,
            failures: p.failures,
            mean_latency_us: p.mean_latency_us,
        })
        .collect();
    let (store, me, policies) = (app.store.clone(), app.me.clone(), app.policies.clone());
    let live = tokio::task::spawn_blocking(move || crate::replicas::live(&store, &me, &policies))
        .await
        .map_err(|e| super::problem::Problem::internal(format!("reading the replicas: {e}")))?;
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
