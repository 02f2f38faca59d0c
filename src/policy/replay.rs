//! Replay: a draft script run, in the same sandbox as live calls, against
//! the recorded hook calls (`record.rs`), with no effect of any kind: its
//! denials and actions are only compared. The report lists every decision
//! that would differ from what happened, errors and limit hits, and the
//! draft's latency.
//!
//! "What happened" is the recorded decision of the enforced policy of the
//! draft's name when the record has one (the draft is a new version of
//! it), else the recorded outcome of the whole enforced set.

use std::sync::Arc;
use std::time::Instant;

use admind_plugin_api::{Action, Event, Hook};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::record::{self, HookCall};
use super::script::{Lookups, ScriptEngine, ScriptError};
use crate::store::{Store, StoreError};

/// Records a replay reads, at most.
pub const RECORDS_MAX: usize = 100_000;

/// What to replay and on which records.
pub struct ReplayRequest<'a> {
    /// The draft's file name (compared with the recorded policy of that name).
    pub name: &'a str,
    pub source: &'a str,
    /// Only this hook (else every hook the draft handles).
    pub hook: Option<Hook>,
    pub since: Option<DateTime<Utc>>,
    pub account: Option<&'a str>,
    /// Records read, at most ([`RECORDS_MAX`] at most).
    pub limit: usize,
    /// Set when the request that asked for the replay ended: it stops.
    pub stop: Option<super::script::Stop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `allow` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub record: u64,
    pub at: DateTime<Utc>,
    pub hook: String,
    pub account_id: Option<String>,
    /// `policy <name>` or `the enforced outcome`.
    pub compared_with: String,
    pub was: Decision,
    pub now: Decision,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayError {
    pub record: u64,
    pub at: DateTime<Utc>,
    pub hook: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub draft: String,
    pub hooks: Vec<&'static str>,
    /// Recorded calls the draft ran on.
    pub replayed: usize,
    /// Those whose decision (allow or deny) or actions would differ.
    pub differing: Vec<Difference>,
    /// Calls where the draft failed (limit hits included).
    pub errors: Vec<ReplayError>,
    /// Errors that were a sandbox limit (operations, time, memory, depth).
    pub limit_hits: usize,
    pub latency: Latency,
}

/// Why a replay did not run.
#[derive(Debug)]
pub enum ReplayFailure {
    /// The draft does not compile (or its header is wrong).
    Draft(ScriptError),
    Store(StoreError),
    /// Its request ended (the client left, or the deadline passed) first.
    Stopped,
}

impl std::fmt::Display for ReplayFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayFailure::Draft(e) => write!(f, "the draft does not load: {e}"),
            ReplayFailure::Store(e) => write!(f, "reading the record: {e}"),
            ReplayFailure::Stopped => write!(f, "stopped: its request ended"),
        }
    }
}

fn is_limit(error: &str) -> bool {
    error.starts_with("stopped:")
}

/// Runs the draft against the matching records.
pub fn replay(
    engine: &ScriptEngine,
    request: &ReplayRequest<'_>,
    store: &Store,
    lookups: Option<Arc<dyn Lookups>>,
) -> Result<ReplayReport, ReplayFailure> {
    let compiled = engine
        .compile(request.source)
        .map_err(ReplayFailure::Draft)?;
    let hooks: Vec<Hook> = compiled
        .hooks
        .iter()
        .copied()
        .filter(|h| request.hook.is_none_or(|only| only == *h))
        .collect();
    let names: Vec<&str> = hooks.iter().map(|h| h.name()).collect();
    let calls = record::matching(
        store,
        &names,
        request.since,
        request.account,
        request.limit.min(RECORDS_MAX),
    )
    .map_err(ReplayFailure::Store)?;
    let mut report = ReplayReport {
        draft: request.name.to_string(),
        hooks: names.clone(),
        replayed: 0,
        differing: Vec::new(),
        errors: Vec::new(),
        limit_hits: 0,
        latency: Latency::default(),
    };
    let mut durations = Vec::with_capacity(calls.len());
    for call in calls {
        if request
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(ReplayFailure::Stopped);
        }
        let Some(hook) = Hook::from_name(&call.hook) else {
            continue;
        };
        let Ok(event) = serde_json::from_value::<Event>(call.event.clone()) else {
            report.errors.push(ReplayError {
                record: call.id,
                at: call.at,
                hook: call.hook.clone(),
                error: "the recorded event does not read as an event of this version".into(),
            });
            continue;
        };
        report.replayed += 1;
        let started = Instant::now();
        let result = engine.call_until(
            request.name,
            &compiled,
            hook,
            &event,
            lookups.clone(),
            request.stop.clone(),
        );
        durations.push(started.elapsed().as_micros() as u64);
        let ctx = match result {
            Ok(ctx) => ctx,
            Err(error) => {
                if is_limit(&error) {
                    report.limit_hits += 1;
                }
                report.errors.push(ReplayError {
                    record: call.id,
                    at: call.at,
                    hook: call.hook.clone(),
                    error,
                });
                continue;
            }
        };
        let (denied, actions) = ctx.into_parts();
        let now = Decision {
            decision: if hook.may_veto() && denied.is_some() {
                "deny"
            } else {
                "allow"
            }
            .into(),
            reason: denied.filter(|_| hook.may_veto()),
            actions,
        };
        let (compared_with, was) = what_happened(&call, request.name, hook);
        if was.decision != now.decision || was.actions != now.actions {
            report.differing.push(Difference {
                record: call.id,
                at: call.at,
                hook: call.hook.clone(),
                account_id: call.account_id.clone(),
                compared_with,
                was,
                now,
            });
        }
    }
    durations.sort_unstable();
    let at = |q: f64| -> u64 {
        if durations.is_empty() {
            return 0;
        }
        let i = ((durations.len() as f64 - 1.0) * q).round() as usize;
        durations[i.min(durations.len() - 1)]
    };
    report.latency = Latency {
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        max_us: durations.last().copied().unwrap_or(0),
    };
    Ok(report)
}

fn what_happened(call: &HookCall, name: &str, hook: Hook) -> (String, Decision) {
    if let Some(same) = call.policies.iter().find(|p| !p.shadow && p.policy == name) {
        let denied = same.denied.is_some() && hook.may_veto();
        return (
            format!("policy {name}"),
            Decision {
                decision: if denied { "deny" } else { "allow" }.into(),
                reason: same.denied.clone().filter(|_| denied),
                actions: same.actions.clone(),
            },
        );
    }
    (
        "the enforced outcome".into(),
        Decision {
            decision: call.decision.clone(),
            reason: call.reason.clone(),
            actions: call.actions.clone(),
        },
    )
}

/// The report as a table for a terminal.
pub fn table(report: &ReplayReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} recorded calls replayed ({}), {} would differ, {} errors ({} limit hits); latency p50 {} us, p99 {} us, max {} us",
        report.draft,
        report.replayed,
        report.hooks.join(", "),
        report.differing.len(),
        report.errors.len(),
        report.limit_hits,
        report.latency.p50_us,
        report.latency.p99_us,
        report.latency.max_us,
    );
    if !report.differing.is_empty() {
        let _ = writeln!(out, "\nrecord  at                    hook                 account                    was -> now");
        for d in &report.differing {
            let side = |x: &Decision| {
                let mut s = x.decision.clone();
                if let Some(r) = &x.reason {
                    let _ = write!(s, " ({r})");
                }
                if !x.actions.is_empty() {
                    let _ = write!(
                        s,
                        " [{}]",
                        x.actions
                            .iter()
                            .map(record::describe)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                s
            };
            let _ = writeln!(
                out,
                "{:<7} {} {:<20} {:<26} {} -> {}",
                d.record,
                d.at.format("%Y-%m-%d %H:%M:%S"),
                d.hook,
                d.account_id.as_deref().unwrap_or("-"),
                side(&d.was),
                side(&d.now),
            );
        }
    }
    for e in &report.errors {
        let _ = writeln!(
            out,
            "error in record {} ({}): {}",
            e.record, e.hook, e.error
        );
    }
    out
}
