//! Rhai policies: one engine, configured once; each script compiled once per
//! change into an AST; each call sandboxed (operations, wall clock, call and
//! expression depth, string/array/map sizes; no files, network or
//! environment — Rhai has none unless a host registers it, and we register
//! none).
//!
//! Capabilities: a script's header declares the hooks it handles and the
//! host functions it may call (`// hooks: before_owner_change`,
//! `// calls: deny`); compiling checks both against the AST (an undeclared
//! call is an error at its line and column), and each host function checks
//! again at run time (a call through a function pointer is refused).
//! `log_info` and `log_warn` need no declaration.
//!
//! Calls share no lock: the engine and the ASTs are immutable and `Sync`;
//! the per-call state (deadline, veto, actions) lives in a thread-local set
//! around each call, which is also how the host functions reach it.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admind_plugin_api::{Action, Capability, Context, Event, Hook};
use rhai::{
    ASTNode, CallFnOptions, Dynamic, Engine, EvalAltResult, Expr, Position, Scope, Stmt, AST,
};
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
    /// What the script declared it may call.
    calls: Vec<Capability>,
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

/// Refuses a host function the running script did not declare: the load
/// check sees direct calls; this catches calls through function pointers.
fn allowed(s: &CallState, capability: Capability) -> Result<(), Box<EvalAltResult>> {
    if s.calls.contains(&capability) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not declared in this script's `// calls:` header",
            capability.name()
        )
        .into())
    }
}

fn act(action: Action) -> Result<(), Box<EvalAltResult>> {
    let capability = Capability::of_action(&action);
    with_call(|s| {
        allowed(s, capability)?;
        s.ctx.act(action).map_err(|e| e.into())
    })?
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
    /// The hooks it declares (and defines).
    pub hooks: Vec<Hook>,
    /// The host functions it declares.
    pub calls: Vec<Capability>,
}

/// Host functions every script may call without declaring them.
const ALWAYS_ALLOWED: [&str; 2] = ["log_info", "log_warn"];

/// A script's header: the leading `//` lines, where `hooks:` and `calls:`
/// declare what it handles and what it may call.
struct Header {
    /// The names and the line they were declared on.
    hooks: Option<(Vec<Hook>, usize)>,
    calls: Option<(Vec<Capability>, usize)>,
}

fn parse_header(source: &str) -> Result<Header, ScriptError> {
    let mut header = Header {
        hooks: None,
        calls: None,
    };
    for (n, line) in source.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("//") else {
            break;
        };
        let content = comment.trim_start_matches(['/', '!']).trim();
        let (key, rest) = match content.split_once(':') {
            Some((k, rest)) if k.trim() == "hooks" || k.trim() == "calls" => (k.trim(), rest),
            _ => continue,
        };
        // Where the names start, for errors (1-based column); a remark in
        // parentheses may follow them.
        let names_at = line.len() - rest.len();
        let rest = rest.split('(').next().unwrap_or_default();
        let mut names = Vec::new();
        let mut offset = 0;
        for word in rest.split(|c: char| c == ',' || c.is_whitespace()) {
            let column = names_at + offset + 1;
            offset += word.len() + 1;
            if word.is_empty() || (key == "calls" && word == "none") {
                continue;
            }
            names.push((word, column));
        }
        let error = |message: String, column: usize| ScriptError {
            message,
            line: Some(line_no),
            column: Some(column),
        };
        if key == "hooks" {
            let mut hooks = Vec::new();
            for (word, column) in names {
                hooks.push(Hook::from_name(word).ok_or_else(|| {
                    error(
                        format!(
                            "`{word}` is not a hook (known: {})",
                            Hook::ALL.map(|h| h.name()).join(", ")
                        ),
                        column,
                    )
                })?);
            }
            header.hooks = Some((hooks, line_no));
        } else {
            let mut calls = Vec::new();
            for (word, column) in names {
                if ALWAYS_ALLOWED.contains(&word) {
                    continue;
                }
                calls.push(Capability::from_name(word).ok_or_else(|| {
                    error(
                        format!(
                            "`{word}` is not a host function a script may declare (known: {})",
                            Capability::ALL
                                .into_iter()
                                .filter(|c| *c != Capability::SendPasswordReset)
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        column,
                    )
                })?);
            }
            header.calls = Some((calls, line_no));
        }
    }
    Ok(header)
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
        engine.register_fn("deny", |reason: &str| {
            with_call(|s| {
                allowed(s, Capability::Deny)?;
                s.ctx.deny(reason);
                Ok::<(), Box<EvalAltResult>>(())
            })?
        });
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
            with_call(|s| {
                allowed(s, Capability::PendingLicenceRequest)?;
                Ok::<bool, Box<EvalAltResult>>(match (&s.lookups, &s.account_id) {
                    (Some(l), Some(a)) => l.pending_licence_request(a, product),
                    _ => false,
                })
            })?
        });
        ScriptEngine { engine, limits }
    }

    /// Compiles a script and checks it against its header: the hooks it
    /// defines (functions named after a hook, taking one parameter) are the
    /// ones it declares, and every host function it calls is declared.
    pub fn compile(&self, source: &str) -> Result<Compiled, ScriptError> {
        let ast = self
            .engine
            .compile(source)
            .map_err(|e| ScriptError::at(e.err_type().to_string(), e.position()))?;
        let mut defined: Vec<Hook> = ast
            .iter_functions()
            .filter(|f| f.params.len() == 1)
            .filter_map(|f| Hook::from_name(f.name))
            .collect();
        defined.sort_by_key(|h| h.name());
        defined.dedup();
        // Every call of a host function, where it is.
        let mut used: Vec<(Capability, Position)> = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            // A call is an expression, or a statement of its own.
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, pos) | Expr::MethodCall(call, pos))) => {
                    Some((call, pos))
                }
                Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
                _ => None,
            };
            if let Some((call, pos)) = call {
                if let Some(c) = Capability::from_name(call.name.as_str()) {
                    used.push((c, *pos));
                }
            }
            true
        });
        let header = parse_header(source)?;
        let suggestion = |names: Vec<&str>| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let at_line = |message: String, line: usize| ScriptError {
            message,
            line: Some(line),
            column: Some(1),
        };
        let Some((declared_hooks, hooks_line)) = header.hooks else {
            return Err(at_line(
                format!(
                    "the header must declare the hooks this script handles: `// hooks: {}`",
                    suggestion(defined.iter().map(|h| h.name()).collect())
                ),
                1,
            ));
        };
        let Some((calls, calls_line)) = header.calls else {
            let mut names: Vec<&str> = used.iter().map(|(c, _)| c.name()).collect();
            names.sort_unstable();
            names.dedup();
            return Err(at_line(
                format!(
                    "the header must declare the host functions this script calls: `// calls: {}`",
                    suggestion(names)
                ),
                1,
            ));
        };
        if let Some(h) = defined.iter().find(|h| !declared_hooks.contains(h)) {
            return Err(at_line(
                format!("`{}` is defined but not declared in `// hooks:`", h.name()),
                hooks_line,
            ));
        }
        if let Some(h) = declared_hooks.iter().find(|h| !defined.contains(h)) {
            return Err(at_line(
                format!(
                    "`{}` is declared in `// hooks:` but no `fn {}(event)` is defined",
                    h.name(),
                    h.name()
                ),
                hooks_line,
            ));
        }
        if let Some((c, pos)) = used.iter().find(|(c, _)| !calls.contains(c)) {
            return Err(ScriptError::at(
                format!(
                    "`{}` is not declared in this script's `// calls:` header (line {calls_line})",
                    c.name()
                ),
                *pos,
            ));
        }
        Ok(Compiled {
            ast,
            hooks: defined,
            calls,
        })
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
            calls: compiled.calls.clone(),
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
pub(crate) mod tests {
    use super::*;
    use admind_plugin_api::UserInfo;

    pub(crate) fn owner_change(signed_in: bool) -> Event {
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
            .compile("// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) { if !event.to.signed_in_before { deny(\"never signed in\"); } }")
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
            ("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { loop { } }", "limit"),
            (
                "// hooks: before_owner_change\n// calls: none\nfn f(n) { f(n + 1) } fn before_owner_change(e) { f(0) }",
                "call-depth",
            ),
            (
                "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { let s = \"x\"; loop { s += s; } }",
                "grew past",
            ),
            ("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { eval(\"1\") }", ""),
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
    #[test]
    fn capabilities_a_script_calls_only_what_its_header_declares() {
        let engine = ScriptEngine::new(ScriptLimits::default());
        // An undeclared host function: refused at load, at the call.
        let err = engine
            .compile("// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) {\n  deny(\"x\");\n  notify(\"a@x.test\", \"s\", \"b\");\n}")
            .err()
            .expect("notify is not declared");
        assert!(err.message.contains("`notify` is not declared"), "{err}");
        assert_eq!((err.line, err.column), (Some(5), Some(3)), "{err}");
        // As a method call too.
        let err = engine
            .compile("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { \"x\".deny(); }")
            .err()
            .expect("deny is not declared");
        assert!(err.message.contains("`deny`"), "{err}");
        // No header: the error says what to write.
        let err = engine
            .compile("fn before_owner_change(e) { deny(\"x\"); }")
            .err()
            .unwrap();
        assert!(
            err.message.contains("`// hooks: before_owner_change`"),
            "{err}"
        );
        let err = engine
            .compile("// hooks: before_owner_change\nfn before_owner_change(e) { deny(\"x\"); }")
            .err()
            .unwrap();
        assert!(err.message.contains("`// calls: deny`"), "{err}");
        // Hooks declared and defined must agree; unknown names are refused.
        for (source, says) in [
            ("// hooks: before_owner_change\n// calls: none\nfn after_owner_change(e) { }", "after_owner_change"),
            ("// hooks: before_owner_change, after_owner_change\n// calls: none\nfn before_owner_change(e) { }", "no `fn after_owner_change"),
            ("// hooks: before_owner_change\n// calls: delete_everything\nfn before_owner_change(e) { }", "`delete_everything` is not a host function"),
            ("// hooks: on_everything\n// calls: none\nfn before_owner_change(e) { }", "`on_everything` is not a hook"),
        ] {
            let err = engine.compile(source).err().expect(source);
            assert!(err.message.contains(says), "{source}: {err}");
            assert!(err.line.is_some(), "{err}");
        }
        // Declared, with a remark: loads, and lists its calls.
        let ok = engine
            .compile("// hooks: before_owner_change (may veto)\n// calls: deny, log_info\nfn before_owner_change(e) { log_info(\"x\"); deny(\"x\"); }")
            .unwrap();
        assert_eq!(ok.calls, vec![Capability::Deny]);
    }

    #[test]
    fn capabilities_a_call_the_load_check_cannot_see_is_refused_when_it_runs() {
        let engine = ScriptEngine::new(ScriptLimits::default());
        let sneaky = engine
            .compile("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { let f = Fn(\"deny\"); f.call(\"through a pointer\"); }")
            .expect("the load check sees no call of deny");
        let err = engine
            .call(
                "sneaky",
                &sneaky,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap_err();
        assert!(err.contains("`deny` is not declared"), "{err}");
        // Declared, the same call works.
        let fine = engine
            .compile("// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) { let f = Fn(\"deny\"); f.call(\"through a pointer\"); }")
            .unwrap();
        let ctx = engine
            .call(
                "fine",
                &fine,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap();
        assert_eq!(ctx.denied(), Some("through a pointer"));
    }
}
