//! `reauth-reminder`: after an owner change, mails the new owner the list of
//! integrations the previous owner had set up, which now need
//! reauthorizing (the default behaviour of R06).
//!
//! Settings: `subject` (optional), the mail's subject.

use admind_plugin_api::{Action, Capability, Context, Event, Hook, Plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_subject")]
    subject: String,
}

fn default_subject() -> String {
    "Integrations to reauthorize".into()
}

pub struct ReauthReminder {
    subject: String,
}

pub const NAME: &str = "reauth-reminder";

/// Builds the plugin from its settings (a JSON object; `null` for none).
pub fn build(settings: &serde_json::Value) -> Result<Box<dyn Plugin>, String> {
    let settings: Settings = if settings.is_null() {
        Settings {
            subject: default_subject(),
        }
    } else {
        serde_json::from_value(settings.clone()).map_err(|e| e.to_string())?
    };
    if settings.subject.trim().is_empty() || settings.subject.len() > 200 {
        return Err("subject must be 1 to 200 characters".into());
    }
    Ok(Box::new(ReauthReminder {
        subject: settings.subject,
    }))
}

impl Plugin for ReauthReminder {
    fn name(&self) -> &str {
        NAME
    }

    fn hooks(&self) -> Vec<Hook> {
        vec![Hook::AfterOwnerChange]
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::Notify]
    }

    fn handle(&self, _hook: Hook, event: &Event, ctx: &mut Context) -> Result<(), String> {
        let Event::OwnerChange {
            to,
            integrations: Some(integrations),
            ..
        } = event
        else {
            return Ok(());
        };
        if integrations.is_empty() {
            return Ok(());
        }
        let mut body = format!(
            "Hello {},\n\nYou are now the owner. These integrations were set up by the previous owner and need to be reauthorized:\n\n",
            to.name
        );
        for i in integrations {
            body.push_str(&format!("- {} ({})\n", i.name, i.id));
        }
        body.push_str("\nOpen each one and authorize it again; until then it may stop working.\n");
        ctx.act(Action::Notify {
            address: to.primary_email.clone(),
            subject: self.subject.clone(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use admind_plugin_api::{IntegrationInfo, UserInfo};

    fn user(id: &str) -> UserInfo {
        UserInfo {
            id: id.into(),
            name: id.into(),
            primary_email: format!("{id}@x.test"),
            email_verified: true,
            signed_in_before: true,
        }
    }

    #[test]
    fn lists_the_integrations_to_the_new_owner_and_rejects_bad_settings() {
        let p = build(&serde_json::Value::Null).unwrap();
        let event = Event::OwnerChange {
            account_id: "a".into(),
            actor_id: "old".into(),
            from: user("old"),
            to: user("new"),
            integrations: Some(vec![IntegrationInfo {
                id: "int_1".into(),
                name: "Slack".into(),
            }]),
        };
        let mut ctx = Context::new();
        p.handle(Hook::AfterOwnerChange, &event, &mut ctx).unwrap();
        match &ctx.actions()[0] {
            Action::Notify { address, body, .. } => {
                assert_eq!(address, "new@x.test");
                assert!(body.contains("Slack"));
            }
            other => panic!("{other:?}"),
        }
        assert!(build(&serde_json::json!({"subjct": "typo"})).is_err());
    }
}
