//! Rhai policies: one engine, configured once; each script compiled once per
//! change into an AST; each call sandboxed (operations, wall clock, call and
//! expression depth, string/array/map sizes, memory; no files, network or
//! environment). The engine carries only what a policy needs: Rhai's
//! language packages without the ones that block, sleep or read the clock
//! (`sleep`, `timestamp`, `exit`, …), plus the host functions below; a call
//! to any other function is a load error at its line and column, so a
//! typo (`deni(…)`) is caught when the file is read, not at the first
//! owner change. A call that panics is a failed call, like any other
//! failure. `print`, `debug`, `log_info` and `log_warn` draw on one log
//! budget per policy ([`LOG_LINES_PER_MINUTE`]).
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

/// Set when whoever waits for a call has gone (its request ended): the call
/// and whatever loop runs it stop at their next check.
pub type Stop = Arc<std::sync::atomic::AtomicBool>;

/// Sets its [`Stop`] when dropped: held by a request's future, so a client
/// that leaves, or a request past its deadline, stops the work it started.
pub struct StopOnDrop(pub Stop);

impl StopOnDrop {
    pub fn new() -> Self {
        StopOnDrop(Arc::new(std::sync::atomic::AtomicBool::new(false)))
    }
}

impl Default for StopOnDrop {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

struct CallState {
    policy: String,
    /// Whoever asked for this call has gone: stop.
    stop: Option<Stop>,
    /// What the script declared it may call.
    calls: Vec<Capability>,
    deadline: Instant,
    ctx: Context,
    account_id: Option<String>,
    lookups: Option<Arc<dyn Lookups>>,
}

/// The token a call is stopped with when it holds too much memory.
const MEMORY_STOP: &str = "memory";
/// The token a call is stopped with when its request ended.
const REQUEST_ENDED: &str = "request ended";

/// Lines one policy may log (`print`, `debug`, `log_info`, `log_warn`) in
/// a minute; past that its lines are counted and one line says how many
/// were dropped. A `loop { print(..) }` must not fill the operator's disk.
pub const LOG_LINES_PER_MINUTE: u32 = 60;

/// Functions Rhai's full engine has that policies do not get, and why
/// (the load error says it).
const WITHHELD: [&str; 6] = [
    "sleep",
    "timestamp",
    "exit",
    "parse_json",
    "get_fn_metadata_list",
    "elapsed",
];

/// Rhai's keyword functions, handled by the language itself.
const KEYWORD_FUNCTIONS: [&str; 9] = [
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// Each policy's log lines in the current minute: (policy, minute start,
/// lines logged, lines dropped). As many entries as policies log; cleared
/// past 1,000 so removed policies do not pile up.
static LOG_BUDGET: std::sync::Mutex<Vec<(String, Instant, u32, u32)>> =
    std::sync::Mutex::new(Vec::new());

/// Whether `policy` may log one more line now; says once a minute how many
/// lines it dropped.
fn log_allowed(policy: &str) -> bool {
    let Ok(mut budget) = LOG_BUDGET.lock() else {
        return false;
    };
    if budget.len() > 1000 {
        budget.clear();
    }
    let now = Instant::now();
    let i = match budget.iter().position(|(p, ..)| p == policy) {
        Some(i) => i,
        None => {
            budget.push((policy.to_string(), now, 0, 0));
            budget.len() - 1
        }
    };
    let entry = &mut budget[i];
    if now.duration_since(entry.1) >= Duration::from_secs(60) {
        if entry.3 > 0 {
            tracing::warn!(policy = %policy, dropped = entry.3, "policy log lines dropped: past {LOG_LINES_PER_MINUTE} a minute");
        }
        *entry = (policy.to_string(), now, 0, 0);
    }
    if entry.2 < LOG_LINES_PER_MINUTE {
        entry.2 += 1;
        true
    } else {
        entry.3 = entry.3.saturating_add(1);
        false
    }
}

/// Logs a line of the running call's policy, within its budget.
fn policy_log(level: tracing::Level, msg: &str) {
    let policy = CALL.with(|c| c.borrow().as_ref().map(|s| s.policy.clone()));
    let Some(policy) = policy else { return };
    if !log_allowed(&policy) {
        return;
    }
    let msg = crate::logsafe::Clean(msg);
    match level {
        tracing::Level::WARN => {
            tracing::warn!(target: "admind::policy::script", policy = %policy, "{msg}")
        }
        tracing::Level::DEBUG => {
            tracing::debug!(target: "admind::policy::script", policy = %policy, "{msg}")
        }
        _ => tracing::info!(target: "admind::policy::script", policy = %policy, "{msg}"),
    }
}

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
    /// Every function the engine has (Rhai's packages and the host's), by
    /// name: a call to a name outside it and the script does not load.
    known: std::collections::HashSet<String>,
}

impl ScriptEngine {
    pub fn new(limits: ScriptLimits) -> Self {
        use rhai::packages::Package;
        // Rhai's packages but the language core (sleep, exit, parse_json)
        // and time (timestamp): nothing that blocks or reads the clock.
        let mut engine = Engine::new_raw();
        rhai::packages::ArithmeticPackage::new().register_into_engine(&mut engine);
        rhai::packages::LogicPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicStringPackage::new().register_into_engine(&mut engine);
        rhai::packages::MoreStringPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicIteratorPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicFnPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicMathPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicArrayPackage::new().register_into_engine(&mut engine);
        rhai::packages::BasicMapPackage::new().register_into_engine(&mut engine);
        rhai::packages::BitFieldPackage::new().register_into_engine(&mut engine);
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
        // Script output may carry webhook data (client text): escaped, and
        // within the policy's log budget.
        engine.on_print(|s| policy_log(tracing::Level::INFO, s));
        engine.on_debug(|s, _, _| policy_log(tracing::Level::DEBUG, s));
        // The wall clock, checked every 256 operations (Instant::now is not free).
        engine.on_progress(|ops| {
            let ceiling = MEMORY_CEILING.with(|c| c.get());
            if crate::alloc_budget::thread_live_bytes() > ceiling {
                return Some(Dynamic::from(MEMORY_STOP));
            }
            if ops % 256 != 0 {
                return None;
            }
            CALL.with(|c| {
                let call = c.borrow();
                let s = call.as_ref()?;
                if s.stop
                    .as_ref()
                    .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::Relaxed))
                {
                    return Some(Dynamic::from(REQUEST_ENDED));
                }
                (Instant::now() > s.deadline)
                    .then(|| Dynamic::from("the script ran past its wall-clock limit"))
            })
        });
        engine.register_fn("deny", |reason: &str| {
            with_call(|s| {
                allowed(s, Capability::Deny)?;
                s.ctx.deny(reason);
                Ok::<(), Box<EvalAltResult>>(())
            })?
        });
        // `deny(reason, #{fr: "…"})`: the reason in other languages too,
        // for the console pages of readers of those languages.
        engine.register_fn("deny", |reason: &str, translations: rhai::Map| {
            let translations: Vec<(String, String)> = translations
                .into_iter()
                .take(8)
                .map(|(language, text)| (language.to_string(), text.to_string()))
                .collect();
            with_call(|s| {
                allowed(s, Capability::Deny)?;
                s.ctx.deny_in(reason, translations);
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
            with_call(|_| ())?;
            policy_log(tracing::Level::INFO, msg);
            Ok::<(), Box<EvalAltResult>>(())
        });
        engine.register_fn("log_warn", |msg: &str| {
            with_call(|_| ())?;
            policy_log(tracing::Level::WARN, msg);
            Ok::<(), Box<EvalAltResult>>(())
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
        // A host function that panics, to prove a panic stays in its call.
        #[cfg(test)]
        engine.register_fn("panic_for_tests", || -> bool { panic!("a test panic") });
        let known = engine
            .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
            .into_iter()
            .collect();
        ScriptEngine {
            engine,
            limits,
            known,
        }
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
        // Every call of a host function, where it is; every call of a
        // function that exists nowhere.
        let mut used: Vec<(Capability, Position)> = Vec::new();
        let mut unknown: Option<(String, Position)> = None;
        let script_fns: std::collections::HashSet<&str> =
            ast.iter_functions().map(|f| f.name).collect();
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
                let name = call.name.as_str();
                if let Some(c) = Capability::from_name(name) {
                    used.push((c, *pos));
                }
                let is_identifier = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_');
                if unknown.is_none()
                    && call.op_token.is_none()
                    && is_identifier
                    && !script_fns.contains(name)
                    && !self.known.contains(name)
                    && !KEYWORD_FUNCTIONS.contains(&name)
                {
                    unknown = Some((name.to_string(), *pos));
                }
            }
            true
        });
        if let Some((name, pos)) = unknown {
            let message = if WITHHELD.contains(&name.as_str()) {
                format!("`{name}` is not available to policies: nothing that blocks, sleeps or reads the time, files or the environment")
            } else {
                format!("`{name}` is not a function: neither defined in this script, nor a host function, nor Rhai's")
            };
            return Err(ScriptError::at(message, pos));
        }
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
        self.call_until(policy, compiled, hook, event, lookups, None)
    }

    /// [`Self::call`], stopped early when `stop` is set (its request ended).
    pub fn call_until(
        &self,
        policy: &str,
        compiled: &Compiled,
        hook: Hook,
        event: &Event,
        lookups: Option<Arc<dyn Lookups>>,
        stop: Option<Stop>,
    ) -> Result<Context, String> {
        let argument =
            rhai::serde::to_dynamic(event).map_err(|e| format!("event conversion: {e}"))?;
        let state = CallState {
            policy: policy.to_string(),
            stop,
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
        // A panic inside the engine (a bug of Rhai's or of a host
        // function) is this call's failure, never the thread's: the
        // before-hook fails closed, the after-hook is recorded as failed.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut scope,
                &compiled.ast,
                hook.name(),
                (argument,),
            )
        }));
        MEMORY_CEILING.with(|c| c.set(isize::MAX));
        let state = CALL.with(|c| c.borrow_mut().take());
        match result {
            Ok(Ok(_)) => Ok(state.map(|s| s.ctx).unwrap_or_default()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!(
                    "the script's call panicked: {}",
                    crate::logsafe::Clean(&what)
                ))
            }
        }
    }
}

fn describe(e: &EvalAltResult) -> String {
    let pos = e.position();
    let what = match e {
        EvalAltResult::ErrorTerminated(token, ..) if token.to_string() == MEMORY_STOP => {
            "stopped: the script held more memory than its limit".to_string()
        }
        EvalAltResult::ErrorTerminated(token, ..) if token.to_string() == REQUEST_ENDED => {
            "stopped: the request that ran it ended".to_string()
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
    fn r02_a_policy_cannot_sleep_or_read_the_clock_and_an_unknown_function_does_not_load() {
        let engine = ScriptEngine::new(ScriptLimits::default());
        let head = "// hooks: before_owner_change\n// calls: deny\n";
        for (body, name) in [
            ("fn before_owner_change(e) {\n  sleep(3);\n}", "sleep"),
            (
                "fn before_owner_change(e) {\n  let t = timestamp();\n}",
                "timestamp",
            ),
            ("fn before_owner_change(e) {\n  exit();\n}", "exit"),
        ] {
            let err = engine
                .compile(&format!("{head}{body}"))
                .err()
                .unwrap_or_else(|| panic!("{name} loaded"));
            assert!(
                err.message
                    .contains(&format!("`{name}` is not available to policies")),
                "{err}"
            );
            assert_eq!(err.line, Some(4), "{err}");
            assert!(err.column.is_some(), "{err}");
        }
        // A typo is caught at load, where it is, not at the first call.
        let err = engine
            .compile(&format!(
                "{head}fn before_owner_change(e) {{\n  if true {{ deni(\"x\"); }}\n}}"
            ))
            .err()
            .expect("deni is defined nowhere");
        assert!(err.message.contains("`deni` is not a function"), "{err}");
        assert_eq!((err.line, err.column), (Some(4), Some(13)), "{err}");
        // As a method, too.
        let err = engine
            .compile(&format!(
                "{head}fn before_owner_change(e) {{\n  let s = \"x\";\n  s.frobnicate();\n}}"
            ))
            .err()
            .expect("frobnicate is defined nowhere");
        assert_eq!(err.line, Some(5), "{err}");
        // Rhai's own functions, keywords and the script's functions load.
        engine
            .compile(&format!(
                "{head}fn helper(x) {{ x.len() + 1 }}\nfn before_owner_change(e) {{\n  let s = \"ab\";\n  let n = helper(s) + s.to_upper().len();\n  let m = #{{a: 1}};\n  if m.contains(\"a\") && type_of(n) == \"i64\" {{ print(`n=${{n}}`); }}\n  let f = Fn(\"helper\");\n  if f.call(\"x\") > 5 {{ deny(\"no\"); }}\n  for i in range(0, 3) {{ debug(i); }}\n}}"
            ))
            .unwrap();
        // Through a function pointer, a withheld function is not there either.
        let compiled = engine
            .compile(&format!(
                "{head}fn before_owner_change(e) {{\n  let f = Fn(\"sleep\");\n  f.call(1);\n}}"
            ))
            .unwrap();
        let err = engine
            .call(
                "p",
                &compiled,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap_err();
        assert!(err.contains("sleep"), "{err}");
    }

    #[test]
    fn r02_a_panic_inside_a_script_call_is_a_failed_call() {
        let engine = ScriptEngine::new(ScriptLimits::default());
        let compiled = engine
            .compile("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) {\n  panic_for_tests();\n}")
            .unwrap();
        let err = engine
            .call(
                "p",
                &compiled,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap_err();
        assert!(err.contains("panicked: a test panic"), "{err}");
        // The thread is fine and the next call runs with its own state.
        let ok = engine
            .compile("// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) { deny(\"after\"); }")
            .unwrap();
        let ctx = engine
            .call("q", &ok, Hook::BeforeOwnerChange, &owner_change(true), None)
            .unwrap();
        assert_eq!(ctx.denied(), Some("after"));
    }

    #[test]
    fn before_hooks_every_hook_is_declared_in_the_header_and_may_deny() {
        let engine = ScriptEngine::new(ScriptLimits::default());
        for hook in [
            Hook::BeforeMemberAdd,
            Hook::BeforeMemberRemove,
            Hook::BeforeRoleChange,
            Hook::BeforeSeatChange,
            Hook::BeforeEmailPrimary,
            Hook::BeforeSellRoleChange,
            Hook::BeforeMemberActiveChange,
        ] {
            let name = hook.name();
            assert!(hook.may_veto(), "{name}");
            let ok = engine
                .compile(&format!(
                    "// hooks: {name}\n// calls: deny\nfn {name}(event) {{ deny(\"no\"); }}"
                ))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ok.hooks, vec![hook]);
            // Defined but not declared: refused at load.
            let err = engine
                .compile(&format!(
                    "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) {{ }}\nfn {name}(event) {{ deny(\"no\"); }}"
                ))
                .err()
                .unwrap_or_else(|| panic!("{name} loaded undeclared"));
            assert!(err.message.contains("defined but not declared"), "{err}");
            // Denying without declaring `deny`: refused at load.
            let err = engine
                .compile(&format!(
                    "// hooks: {name}\n// calls: none\nfn {name}(event) {{ deny(\"no\"); }}"
                ))
                .err()
                .unwrap_or_else(|| panic!("{name} denied undeclared"));
            assert!(err.message.contains("`deny` is not declared"), "{err}");
        }
    }

    #[test]
    fn a_policy_logs_within_its_budget() {
        let engine = ScriptEngine::new(ScriptLimits {
            max_operations: 100_000_000,
            timeout_ms: 60_000,
            ..Default::default()
        });
        let compiled = engine
            .compile("// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) {\n  for i in 0..5000 { print(\"x\"); log_info(\"y\"); }\n}")
            .unwrap();
        engine
            .call(
                "budget_test.rhai",
                &compiled,
                Hook::BeforeOwnerChange,
                &owner_change(true),
                None,
            )
            .unwrap();
        let budget = LOG_BUDGET.lock().unwrap();
        let (_, _, logged, dropped) = budget
            .iter()
            .find(|(p, ..)| p == "budget_test.rhai")
            .cloned()
            .unwrap();
        assert_eq!(logged, LOG_LINES_PER_MINUTE);
        assert_eq!(dropped, 10_000 - LOG_LINES_PER_MINUTE);
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
