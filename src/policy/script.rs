//! Rhai policies: one engine, configured once; each script compiled once per
//! change into an AST; each call sandboxed (operations, wall clock, call and
//! expression depth, string/array/map sizes; no files, network or
//! environment — Rhai has none unless a host registers it, and we register
//! none).
//!
//! Calls share no lock: the engine and the ASTs are immutable and `Sync`;
//! the per-call state (deadline, veto, actions) lives in a thread-local set
//! around each call, which is also how the host functions reach it.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admind_plugin_api::{Action, Context, Event, Hook};
use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, Position, Scope, AST};
use serde::{Deserialize, Serialize};

/// Read-only questions a script may ask about its event's account.
pub trait Lookups: Send + Sync {
    fn pending_licence_request(&self, account_id: &str, product: &str) -> bool;
}

/// The sandbox of every call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub timeout_ms: u64,
    pub max_call_depth: usize,
    pub max_expr_depth: usize,
    pub max_string_bytes: usize,
    pub max_array_len: usize,
    pub max_map_len: usize,
    /// Largest script file read.
    pub max_file_bytes: u64,
    /// Heap one call may hold beyond what it started with: every value it
    /// builds, map keys included.
    pub max_memory_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            timeout_ms: 50,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_string_bytes: 64 * 1024,
            max_array_len: 10_000,
            max_map_len: 10_000,
            max_file_bytes: 256 * 1024,
            max_memory_bytes: 16 * 1024 * 1024,
        }
    }
}

struct CallState {
    policy: String,
    deadline: Instant,
    ctx: Context,
    account_id: Option<String>,
    lookups: Option<Arc<dyn Lookups>>,
}

/// The token a call is stopped with when it holds too much memory.
const MEMORY_STOP: &str = "memory";

thread_local! {
    static CALL: RefCell<Option<CallState>> = const { RefCell::new(None) };
    /// Live heap bytes of this thread past which the running call stops
    /// (`isize::MAX` outside calls). Checked on every operation: one
    /// operation adds at most one string of `max_string_bytes`.
    static MEMORY_CEILING: std::cell::Cell<isize> = const { std::cell::Cell::new(isize::MAX) };
}

fn with_call<T>(f: impl FnOnce(&mut CallState) -> T) -> Result<T, Box<EvalAltResult>> {
    CALL.with(|c| match c.borrow_mut().as_mut() {
        Some(state) => Ok(f(state)),
        None => Err("host functions are available inside hook calls only".into()),
    })
}

fn act(action: Action) -> Result<(), Box<EvalAltResult>> {
    with_call(|s| s.ctx.act(action))?.map_err(|e| e.into())
}

/// Where a compile error is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl ScriptError {
    fn at(message: String, pos: Position) -> Self {
        ScriptError {
            message,
            line: pos.line(),
            column: pos.position(),
        }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// A compiled script.
pub struct Compiled {
    pub ast: AST,
    pub hooks: Vec<Hook>,
}

pub struct ScriptEngine {
    engine: Engine,
    pub limits: ScriptLimits,
}

impl ScriptEngine {
    pub fn new(limits: ScriptLimits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_bytes)
            .set_max_array_size(limits.max_array_len)
            .set_max_map_size(limits.max_map_len)
            .set_max_modules(0);
        // `eval` would compile code outside the checked AST.
        engine.disable_symbol("eval");
        // Script output may carry webhook data (client text): escaped.
        engine.on_print(
            |s| tracing::info!(target: "admind::policy::script", "{}", crate::logsafe::Clean(s)),
        );
        engine.on_debug(|s, _, _| tracing::debug!(target: "admind::policy::script", "{}", crate::logsafe::Clean(s)));
        // The wall clock, checked every 256 operations (Instant::now is not free).
        engine.on_progress(|ops| {
            let ceiling = MEMORY_CEILING.with(|c| c.get());
            if crate::alloc_budget::thread_live_bytes() > ceiling {
                return Some(Dynamic::from(MEMORY_STOP));
            }
            if ops % 256 != 0 {
                return None;
            }
            let late = CALL.with(|c| {
                c.borrow()
                    .as_ref()
                    .is_some_and(|s| Instant::now() > s.deadline)
            });
            late.then(|| Dynamic::from("the script ran past its wall-clock limit"))
        });
        engine.register_fn("deny", |reason: &str| with_call(|s| s.ctx.deny(reason)));
        engine.register_fn("notify", |address: &str, subject: &str, body: &str| {
            act(Action::Notify {
                address: address.into(),
                subject: subject.into(),
                body: body.into(),
            })
        });
        engine.register_fn(
            "request_licence",
            |product: &str, seats: i64, reason: &str| {
                let seats =
                    u32::try_from(seats).map_err(|_| format!("seats out of range: {seats}"))?;
                act(Action::RequestLicence {
                    product: product.into(),
                    seats,
                    reason: reason.into(),
                })
            },
        );
        engine.register_fn("flag_integration", |id: &str| {
            act(Action::FlagIntegration {
                integration_id: id.into(),
            })
        });
        engine.register_fn("log_info", |msg: &str| {
            with_call(|s| tracing::info!(policy = %s.policy, "{}", crate::logsafe::Clean(msg)))
        });
        engine.register_fn("log_warn", |msg: &str| {
            with_call(|s| tracing::warn!(policy = %s.policy, "{}", crate::logsafe::Clean(msg)))
        });
        engine.register_fn("pending_licence_request", |product: &str| {
            with_call(|s| match (&s.lookups, &s.account_id) {
                (Some(l), Some(a)) => l.pending_licence_request(a, product),
                _ => false,
            })
        });
        ScriptEngine { engine, limits }
    }

    /// Compiles a script and lists the hooks it handles (functions named
    /// after a hook, taking one parameter).
    pub fn compile(&self, source: &str) -> Result<Compiled, ScriptError> {
        let ast = self
            .engine
            .compile(source)
            .map_err(|e| ScriptError::at(e.err_type().to_string(), e.position()))?;
        let mut hooks: Vec<Hook> = ast
            .iter_functions()
            .filter(|f| f.params.len() == 1)
            .filter_map(|f| Hook::from_name(f.name))
            .collect();
        hooks.sort_by_key(|h| h.name());
        hooks.dedup();
        Ok(Compiled { ast, hooks })
    }

    /// Calls the script's function for `hook`. Returns its veto and actions,
    /// or the error that stopped it (a failure).
    pub fn call(
        &self,
        policy: &str,
        compiled: &Compiled,
        hook: Hook,
        event: &Event,
        lookups: Option<Arc<dyn Lookups>>,
    ) -> Result<Context, String> {
        let argument =
            rhai::serde::to_dynamic(event).map_err(|e| format!("event conversion: {e}"))?;
        let state = CallState {
            policy: policy.to_string(),
            deadline: Instant::now() + Duration::from_millis(self.limits.timeout_ms),
            ctx: Context::new(),
            account_id: event.account_id().map(str::to_string),
            lookups,
        };
        CALL.with(|c| *c.borrow_mut() = Some(state));
        let budget = isize::try_from(self.limits.max_memory_bytes).unwrap_or(isize::MAX);
        MEMORY_CEILING
            .with(|c| c.set(crate::alloc_budget::thread_live_bytes().saturating_add(budget)));
        let mut scope = Scope::new();
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let result = self.engine.call_fn_with_options::<Dynamic>(
            options,
            &mut scope,
            &compiled.ast,
            hook.name(),
            (argument,),
        );
        MEMORY_CEILING.with(|c| c.set(isize::MAX));
        let state = CALL.with(|c| c.borrow_mut().take());
        match result {
            Ok(_) => Ok(state.map(|s| s.ctx).unwrap_or_default()),
            Err(e) => Err(describe(&e)),
        }
    }
}

fn describe(e: &EvalAltResult) -> String {
    let pos = e.position();
    let what = match e {
        EvalAltResult::ErrorTerminated(token, ..) if token.to_string() == MEMORY_STOP => {
            "stopped: the script held more memory than its limit".to_string()
        }
        EvalAltResult::ErrorTerminated(..) => {
            "stopped: the script ran past its wall-clock limit".to_string()
        }
        EvalAltResult::ErrorTooManyOperations(..) => {
            "stopped: the script ran past its operation limit".to_string()
        }
        EvalAltResult::ErrorStackOverflow(..) => {
            "stopped: the script recursed past its call-depth limit".to_string()
        }
        EvalAltResult::ErrorDataTooLarge(what, ..) => {
            format!("stopped: {what} grew past its limit")
        }
        // Rhai's own message already says where.
        other => return other.to_string(),
    };
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{what} (line {l}, column {c})"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use admind_plugin_api::UserInfo;

    fn owner_change(signed_in: bool) -> Event {
        let user = |id: &str| UserInfo {
            id: id.into(),
            name: id.into(),
            primary_email: format!("{id}@x.test"),
            email_verified: true,
            signed_in_before: signed_in,
        };
        Event::OwnerChange {
            account_id: "a".into(),
            actor_id: "o".into(),
            from: user("o"),
            to: user("n"),
            integrations: None,
        }
    }

    #[test]
    fn r02_scripts_decide_through_deny_and_cannot_escape_their_sandbox() {
        let engine = ScriptEngine::new(ScriptLimits {
            timeout_ms: 50,
            ..Default::default()
        });
        let guard = engine
            .compile("fn before_owner_change(event) { if !event.to.signed_in_before { deny(\"never signed in\"); } }")
            .unwrap();
        assert_eq!(guard.hooks, vec![Hook::BeforeOwnerChange]);
        let ctx = engine
            .call(
                "g",
                &guard,
                Hook::BeforeOwnerChange,
                &owner_change(false),
                None,
            )
            .unwrap();
        assert_eq!(ctx.denied(), Some("never signed in"));
        let ctx = engine
            .call(
                "g",
                &guard,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap();
        assert_eq!(ctx.denied(), None);
        for (source, expect) in [
            ("fn before_owner_change(e) { loop { } }", "limit"),
            (
                "fn f(n) { f(n + 1) } fn before_owner_change(e) { f(0) }",
                "call-depth",
            ),
            (
                "fn before_owner_change(e) { let s = \"x\"; loop { s += s; } }",
                "grew past",
            ),
            ("fn before_owner_change(e) { eval(\"1\") }", ""),
        ] {
            let compiled = engine.compile(source);
            if expect.is_empty() {
                assert!(compiled.is_err(), "eval is disabled");
                continue;
            }
            let started = Instant::now();
            let err = engine
                .call(
                    "bad",
                    &compiled.unwrap(),
                    Hook::BeforeOwnerChange,
                    &owner_change(true),
                    None,
                )
                .unwrap_err();
            assert!(err.contains(expect), "{source}: {err}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "stopped promptly"
            );
        }
        let err = engine
            .compile("fn before_owner_change(e) {\n  let x = ;\n}")
            .err()
            .unwrap();
        assert_eq!(err.line, Some(2));
        assert!(err.column.is_some());
    }
}
