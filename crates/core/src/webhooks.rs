//! Incoming webhooks: the id recorded with the effect in one transaction.

use serde::{Deserialize, Serialize};

use crate::command::*;
use crate::context::{Ctx, Decide, Draft};
use crate::event::*;
use crate::limits::*;
use crate::model::*;
use crate::refusal::Refusal;
use crate::view::StateView;

/// A verified webhook delivery: recorded (deduplicated by `webhook_id`)
/// with its effect in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveWebhook {
    pub source: String,
    pub webhook_id: String,
    pub kind: String,
    pub data: serde_json::Value,
}

impl Decide for ReceiveWebhook {
    fn info(&self) -> CommandInfo<'_> {
        let ReceiveWebhook {
            source, webhook_id, ..
        } = self;
        CommandInfo::of("webhook.receive", None, Target::Webhook(source, webhook_id))
    }

    fn decide(
        self,
        view: &dyn StateView,
        ctx: &mut Ctx,
        draft: &Draft,
    ) -> Result<Outcome, Refusal> {
        let ReceiveWebhook {
            source,
            webhook_id,
            kind,
            data,
        } = self;
        receive_webhook(view, ctx, draft, source, webhook_id, kind, data)
    }
}

/// A verified webhook: its id is recorded with its effect in one
/// transaction, so a redelivery (also after a crash) has no second effect.
/// The daemon understands `integration.token_revoked`; every delivery fires
/// `webhook_received`.
pub(crate) fn receive_webhook(
    view: &dyn StateView,
    ctx: &mut Ctx,
    draft: &Draft,
    source: String,
    webhook_id: String,
    kind: String,
    data: serde_json::Value,
) -> Result<Outcome, Refusal> {
    if webhook_id.is_empty() || webhook_id.chars().count() > WEBHOOK_ID_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "webhook-id must be 1 to {WEBHOOK_ID_MAX_CHARS} characters"
        )));
    }
    if kind.is_empty() || kind.chars().count() > WEBHOOK_TYPE_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "type must be 1 to {WEBHOOK_TYPE_MAX_CHARS} characters"
        )));
    }
    if view.webhook_seen(&source, &webhook_id)? {
        return Ok(Outcome::unchanged(Reply::Webhook {
            duplicate: true,
            effect: "none (already received)".into(),
        }));
    }
    let mut changes = vec![Change::PutWebhookSeen {
        source: source.clone(),
        webhook_id: webhook_id.clone(),
        at: ctx.now,
    }];
    let mut notices = vec![];
    let mut audit = None;
    let mut effect = "none".to_string();
    if kind == "integration.token_revoked" {
        let field = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
        match (field("account_id"), field("integration_id")) {
            (Some(account_id), Some(integration_id)) => match (
                view.account(&account_id)?,
                view.integration(&account_id, &integration_id)?,
            ) {
                (Some(account), Some(mut integration)) => {
                    integration.status = IntegrationStatus::NeedsReauthorization;
                    integration.updated_at = ctx.now;
                    if let Some(admin) = view.user(&account_id, &integration.configured_by)? {
                        notices.push(Notice::IntegrationRevoked {
                            to: admin.primary_address().to_string(),
                            account_id: account.id.clone(),
                            account_name: account.name.clone(),
                            integration_name: integration.name.clone(),
                            source: source.clone(),
                        });
                    }
                    audit = draft.ok(
                        &account_id,
                        format!("integration:{integration_id}"),
                        format!("token revoked (webhook {webhook_id}); needs reauthorization"),
                    );
                    changes.push(Change::PutIntegration(integration));
                    effect = "integration needs reauthorization".into();
                }
                _ => effect = "ignored: unknown account or integration".into(),
            },
            _ => effect = "ignored: data needs account_id and integration_id".into(),
        }
    }
    let event = DomainEvent::WebhookReceived {
        source,
        id: webhook_id,
        kind,
        data,
    };
    Ok(Outcome {
        changes,
        notices,
        events: vec![event],
        audit,
        reply: Reply::Webhook {
            duplicate: false,
            effect,
        },
    })
}
