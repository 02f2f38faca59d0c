//! The script loader on arbitrary source: compiling never panics, and a
//! script that compiles runs each hook it handles inside the sandbox, which
//! always stops it.
#![no_main]

use std::sync::OnceLock;

use admind::policy::script::{ScriptEngine, ScriptLimits};
use admind_plugin_api::{Event, UserInfo};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static ScriptEngine {
    static ENGINE: OnceLock<ScriptEngine> = OnceLock::new();
    ENGINE.get_or_init(|| ScriptEngine::new(ScriptLimits { max_operations: 10_000, timeout_ms: 20, ..Default::default() }))
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(compiled) = engine().compile(source) else { return };
    let user = UserInfo { id: "u".into(), name: "U".into(), primary_email: "u@x.test".into(), email_verified: true, signed_in_before: false };
    let event = Event::OwnerChange { account_id: "a".into(), actor_id: "o".into(), from: user.clone(), to: user, integrations: Some(vec![]) };
    for hook in compiled.hooks.clone() {
        let _ = engine().call("fuzz.rhai", &compiled, hook, &event, None);
    }
});
