//! One `before_owner_change` decision through the hook dispatch: no handler
//! (the baseline), the guard rule as a compiled plugin, the same rule as a
//! Rhai script. Run: `cargo bench --bench hook_dispatch`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::collections::HashSet;
use std::sync::Arc;

use admind::domain::{OwnerChangeProposal, PolicyGate, Proposal, UserSnapshot};
use admind::metrics::Metrics;
use admind::policy::script::{ScriptEngine, ScriptLimits};
use admind::policy::PolicyHost;
use admind_plugin_api::{Capability, Context, Event, Hook, Plugin};
use criterion::{criterion_group, criterion_main, Criterion};

/// owner_change_guard.rhai, compiled.
struct GuardPlugin;

impl Plugin for GuardPlugin {
    fn name(&self) -> &str {
        "guard"
    }
    fn hooks(&self) -> Vec<Hook> {
        vec![Hook::BeforeOwnerChange]
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::Deny]
    }
    fn handle(&self, _: Hook, event: &Event, ctx: &mut Context) -> Result<(), String> {
        if let Event::OwnerChange { to, .. } = event {
            if !to.signed_in_before {
                ctx.deny("the new owner must have signed in at least once");
            }
        }
        Ok(())
    }
}

fn host(plugins: Vec<Box<dyn Plugin>>, scripts_dir: std::path::PathBuf) -> PolicyHost {
    let host = PolicyHost::new(
        ScriptEngine::new(ScriptLimits::default()),
        plugins,
        scripts_dir,
        HashSet::new(),
        None,
        Arc::new(Metrics::new()),
    );
    host.reload();
    host
}

fn proposal() -> OwnerChangeProposal {
    let user = |id: &str| UserSnapshot {
        id: id.into(),
        name: id.into(),
        primary_email: format!("{id}@acme.test"),
        email_verified: true,
        signed_in_before: true,
    };
    OwnerChangeProposal {
        account_id: "acc_1".into(),
        actor_id: "usr_a".into(),
        from: user("usr_a"),
        to: user("usr_b"),
    }
}

fn bench(c: &mut Criterion) {
    let empty = tempfile::tempdir().unwrap();
    let with_script = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/owner_change_guard.rhai"),
        with_script.path().join("owner_change_guard.rhai"),
    )
    .unwrap();
    let none = host(vec![], empty.path().to_path_buf());
    let plugin = host(vec![Box::new(GuardPlugin)], empty.path().to_path_buf());
    let script = host(vec![], with_script.path().to_path_buf());
    let p = Proposal::OwnerChange(proposal());
    assert!(script.before(&p).is_ok());
    let mut g = c.benchmark_group("before_owner_change");
    g.bench_function("no_handler", |b| {
        b.iter(|| none.before(std::hint::black_box(&p)))
    });
    g.bench_function("compiled_plugin", |b| {
        b.iter(|| plugin.before(std::hint::black_box(&p)))
    });
    g.bench_function("rhai_script", |b| {
        b.iter(|| script.before(std::hint::black_box(&p)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
