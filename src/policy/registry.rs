//! The compiled plugins linked into the daemon, by name. Adding a plugin:
//! a crate under `plugins/`, a dependency in Cargo.toml, a line here.

use admind_plugin_api::Plugin;

pub type Factory = fn(&serde_json::Value) -> Result<Box<dyn Plugin>, String>;

pub const AVAILABLE: &[(&str, Factory)] = &[
    (
        admind_plugin_reauth_reminder::NAME,
        admind_plugin_reauth_reminder::build,
    ),
    (
        admind_plugin_owner_password_reset::NAME,
        admind_plugin_owner_password_reset::build,
    ),
];

/// Enabled when the config names no plugins.
pub const DEFAULT_ENABLED: &[&str] = &[
    admind_plugin_reauth_reminder::NAME,
    admind_plugin_owner_password_reset::NAME,
];

/// Builds the plugins named in `enabled`, in that order. An unknown name or
/// a bad setting is an error naming it.
pub fn build(enabled: &[(String, serde_json::Value)]) -> Result<Vec<Box<dyn Plugin>>, String> {
    let mut out = Vec::new();
    for (name, settings) in enabled {
        let factory = AVAILABLE
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
            .ok_or_else(|| {
                let known: Vec<&str> = AVAILABLE.iter().map(|(n, _)| *n).collect();
                format!("unknown plugin {name:?}; available: {}", known.join(", "))
            })?;
        out.push(factory(settings).map_err(|e| format!("plugin {name:?}: bad settings: {e}"))?);
    }
    Ok(out)
}
