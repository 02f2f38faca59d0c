//! `owner-password-reset`: when the owner's profile gets a new primary
//! address, mails a password-reset link to it, so whoever now holds the
//! profile can set the password (R16's "reset the password"). No settings.

use admind_plugin_api::{Action, Capability, Context, Event, Hook, Plugin};

pub const NAME: &str = "owner-password-reset";

pub struct OwnerPasswordReset;

pub fn build(settings: &serde_json::Value) -> Result<Box<dyn Plugin>, String> {
    match settings {
        serde_json::Value::Null => Ok(Box::new(OwnerPasswordReset)),
        serde_json::Value::Object(m) if m.is_empty() => Ok(Box::new(OwnerPasswordReset)),
        _ => Err("takes no settings".into()),
    }
}

impl Plugin for OwnerPasswordReset {
    fn name(&self) -> &str {
        NAME
    }

    fn hooks(&self) -> Vec<Hook> {
        vec![Hook::AfterEmailPrimary]
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::SendPasswordReset]
    }

    fn handle(&self, _hook: Hook, event: &Event, ctx: &mut Context) -> Result<(), String> {
        match event {
            Event::EmailPrimary {
                user, new_primary, ..
            } if user.is_owner => ctx.act(Action::SendPasswordReset {
                address: new_primary.clone(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use admind_plugin_api::PrimaryUser;

    #[test]
    fn only_the_owners_new_primary_gets_a_reset() {
        let p = build(&serde_json::Value::Null).unwrap();
        for (is_owner, expected) in [(true, 1), (false, 0)] {
            let event = Event::EmailPrimary {
                account_id: "a".into(),
                user: PrimaryUser {
                    id: "u".into(),
                    name: "U".into(),
                    is_owner,
                },
                old_primary: "old@x.test".into(),
                new_primary: "new@x.test".into(),
                actor_id: None,
            };
            let mut ctx = Context::new();
            p.handle(Hook::AfterEmailPrimary, &event, &mut ctx).unwrap();
            assert_eq!(ctx.actions().len(), expected);
        }
        assert!(build(&serde_json::json!({"x": 1})).is_err());
    }
}
