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
pub struct PolicyList {
    pub items: Vec<PolicyOut>,
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
    Ok(axum::Json(PolicyList { items }))
}
