//! The webhook receiver and the operator's view of outbound deliveries.

use crate::domain::cmd;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{unexpected, ApiResult, AppState, Authed, Errors};
use crate::app::problem::Problem;
use crate::domain::{query, Command, Principal, Reply};
use crate::outbound::{self, Delivery};
use crate::webhooks::BODY_MAX_BYTES;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// The body of a delivery, read after the signature is checked.
#[derive(Deserialize, ToSchema)]
pub struct WebhookBody {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// True when this `webhook-id` was already received: no second effect.
    pub duplicate: bool,
    pub effect: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A Standard Webhooks delivery from a configured source. The signature is
/// checked over the raw body before anything parses it.
#[utoipa::path(post, path = "/v1/webhooks/{source}", tag = "public", request_body = WebhookBody,
    params(("source" = String, Path, description = "a source named in the config"),
           ("webhook-id" = String, Header, description = "unique delivery id"),
           ("webhook-timestamp" = String, Header, description = "Unix seconds"),
           ("webhook-signature" = String, Header, description = "v1,<base64 HMAC-SHA256>")),
    responses((status = 200, body = WebhookAnswer), Errors))]
async fn receive(
    State(app): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<WebhookAnswer>> {
    let body = body.map_err(|e| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("could not read the body: {}", e.body_text()),
        )
    })?;
    if body.len() > BODY_MAX_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("webhook bodies are at most {BODY_MAX_BYTES} bytes"),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    app.verifier
        .verify(
            &source,
            header(&headers, "webhook-id"),
            header(&headers, "webhook-timestamp"),
            header(&headers, "webhook-signature"),
            &body,
            now,
        )
        .map_err(|r| {
            tracing::warn!(source = %crate::logsafe::Clean(&source), reason = ?r, "webhook refused");
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "webhook_signature_invalid",
                r.detail(),
            )
        })?;
    let parsed: WebhookBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request(format!(
            "the body must be JSON {{\"type\": ..., \"data\": {{...}}}}: {e}"
        ))
    })?;
    let webhook_id = header(&headers, "webhook-id")
        .unwrap_or_default()
        .to_string();
    let command = Command::ReceiveWebhook(cmd::ReceiveWebhook {
        source: source.clone(),
        webhook_id,
        kind: parsed.kind,
        data: parsed.data,
    });
    match app.submit(Principal::Webhook { source }, command).await? {
        Reply::Webhook { duplicate, effect } => Ok(axum::Json(WebhookAnswer { duplicate, effect })),
        other => Err(unexpected(other)),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    pub msg_id: String,
    pub subscriber: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id.to_string(),
            msg_id: d.msg_id,
            subscriber: d.subscriber,
            event_type: d.event_type,
            state: serde_json::to_value(d.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
            payload: d.payload,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryOut>,
}

/// Outbound deliveries: pending first, then the latest finished.
#[utoipa::path(get, path = "/v1/deliveries", tag = "operator",
    responses((status = 200, body = DeliveryList), Errors), security(("bearer" = [])))]
async fn list_deliveries(
    State(app): State<AppState>,
    Authed(who, _): Authed,
) -> ApiResult<axum::Json<DeliveryList>> {
    query::platform_support_only(&who, "deliveries")?;
    let items = outbound::list(&app.store, 200).map_err(crate::domain::Refusal::from)?;
    Ok(axum::Json(DeliveryList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Sends a delivery again from its first attempt; re-enables its subscriber.
#[utoipa::path(post, path = "/v1/deliveries/{id}/redeliver", tag = "operator",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 200, body = DeliveryOut), Errors), security(("bearer" = [])))]
async fn redeliver(
    State(app): State<AppState>,
    Authed(who, _): Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeliveryOut>> {
    query::platform_support_only(&who, "deliveries")?;
    let not_found = || Problem::new(StatusCode::NOT_FOUND, "not_found", "no such delivery");
    let id: u64 = id.parse().map_err(|_| not_found())?;
    outbound::delivery(&app.store, id)
        .map_err(crate::domain::Refusal::from)?
        .ok_or_else(not_found)?;
    app.writer
        .submit_maintenance(Box::new(move |store| {
            outbound::redelivery_writes(store, id)
        }))
        .await?;
    let d = outbound::delivery(&app.store, id)
        .map_err(crate::domain::Refusal::from)?
        .ok_or_else(not_found)?;
    Ok(axum::Json(d.into()))
}
