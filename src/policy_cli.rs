//! `admind policy check`, `test` and `replay`: tools for policy authors.
//! Nothing here writes to a store or sends anything (replay reads the
//! record of hook calls).

use std::path::{Path, PathBuf};

use admind_plugin_api::{Event, Hook};
use serde_json::json;

use crate::policy::script::{ScriptEngine, ScriptLimits};

/// Compiles each file and prints the hooks it handles or its error with
/// line and column. Returns whether every file compiled.
pub fn check(files: &[PathBuf], limits: ScriptLimits) -> bool {
    let engine = ScriptEngine::new(limits);
    let mut ok = true;
    for file in files {
        match std::fs::read_to_string(file) {
            Err(e) => {
                ok = false;
                println!("{}: error: cannot read: {e}", file.display());
            }
            Ok(source) => match engine.compile(&source) {
                Ok(compiled) => {
                    let hooks: Vec<&str> = compiled.hooks.iter().map(|h| h.name()).collect();
                    if hooks.is_empty() {
                        println!(
                            "{}: ok, but handles no hook (define fn <hook>(event))",
                            file.display()
                        );
                    } else {
                        println!("{}: ok: {}", file.display(), hooks.join(", "));
                    }
                }
                Err(e) => {
                    ok = false;
                    let at = match (e.line, e.column) {
                        (Some(l), Some(c)) => format!(":{l}:{c}"),
                        _ => String::new(),
                    };
                    println!("{}{at}: error: {}", file.display(), e.message);
                }
            },
        }
    }
    ok
}

/// Runs one hook of one script on an event read from a JSON file, printing
/// the decision and the actions it would take (a dry run: none is taken).
pub fn test(
    file: &Path,
    hook: &str,
    event_file: &Path,
    limits: ScriptLimits,
) -> anyhow::Result<bool> {
    let hook = Hook::from_name(hook).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown hook {hook:?}; known: {}",
            Hook::ALL.map(|h| h.name()).join(", ")
        )
    })?;
    let source = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let event_text = std::fs::read_to_string(event_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", event_file.display()))?;
    let event: Event = serde_json::from_str(&event_text)
        .map_err(|e| anyhow::anyhow!("{} is not an event: {e}", event_file.display()))?;
    let engine = ScriptEngine::new(limits);
    let compiled = engine
        .compile(&source)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if !compiled.hooks.contains(&hook) {
        anyhow::bail!("{} does not handle {}", file.display(), hook.name());
    }
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("script");
    let report = match engine.call(name, &compiled, hook, &event, None) {
        Ok(ctx) => {
            let decision = match (hook.may_veto(), ctx.denied()) {
                (true, Some(_)) => "deny",
                (true, None) => "allow",
                (false, _) => "done",
            };
            json!({"hook": hook.name(), "decision": decision, "reason": ctx.denied(), "actions": ctx.actions(), "dry_run": true})
        }
        Err(e) => {
            json!({"hook": hook.name(), "decision": if hook.may_veto() { "deny (failed, fails closed)" } else { "failed" }, "error": e, "dry_run": true})
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report.get("error").is_none())
}

/// Runs a draft against the recorded hook calls and prints the report (a
/// table, or JSON). Returns whether any decision would differ.
pub fn replay(
    store: &crate::store::Store,
    draft: &Path,
    hook: Option<&str>,
    since: chrono::DateTime<chrono::Utc>,
    account: Option<&str>,
    json: bool,
    limits: ScriptLimits,
) -> anyhow::Result<bool> {
    use crate::policy::replay;
    let hook = hook
        .map(|h| {
            Hook::from_name(h).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown hook {h:?}; known: {}",
                    Hook::ALL.map(|h| h.name()).join(", ")
                )
            })
        })
        .transpose()?;
    let source = std::fs::read_to_string(draft)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", draft.display()))?;
    let name = draft
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("draft.rhai");
    let engine = ScriptEngine::new(limits);
    let report = replay::replay(
        &engine,
        &replay::ReplayRequest {
            name,
            source: &source,
            hook,
            since: Some(since),
            account,
            limit: replay::RECORDS_MAX,
            stop: None,
        },
        store,
        None,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", draft.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replay::table(&report));
    }
    Ok(!report.differing.is_empty())
}
