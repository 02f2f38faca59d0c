//! The policy layer: the hooks of docs/rules.md handled by compiled plugins (in
//! config order) then Rhai scripts (by file name). `before_` hooks decide
//! inside the operation (first deny wins; a failure denies unless the hook's
//! `on_failure` says `allow`); the others run after the commit from the
//! durable hook queue, and their actions go through the core as
//! `Principal::Policy`.

pub mod record;
pub mod registry;
pub mod replay;
pub mod script;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admind_plugin_api::{
    Action, Capability, Context, Event, Hook, IntegrationInfo, Plugin, PrimaryUser, UserInfo,
};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{DomainEvent, PolicyGate, PolicySwitch, Proposal, UserSnapshot, Veto};
use crate::metrics::{Metrics, PolicyLabels};
use script::{Compiled, Lookups, ScriptEngine, ScriptError};

/// Most script files loaded from the folder.
pub const SCRIPTS_MAX: usize = 256;
/// Most policy switches read from the store (a switch names a loaded
/// policy, so there are about as many as policies ever loaded).
pub const SWITCHES_MAX: usize = 1024;

#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub total_us: AtomicU64,
    /// Shadow policies: decisions that differed from the enforced outcome.
    pub disagreements: AtomicU64,
}

/// The subfolder of the scripts folder whose scripts run in shadow: on live
/// events beside the enforced set, recorded and compared, never enforced.
/// Promoting one is moving it up a folder.
pub const SHADOW_DIR: &str = "shadow";

impl Stats {
    fn record(&self, elapsed: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct PluginEntry {
    pub plugin: Box<dyn Plugin>,
    pub hooks: Vec<Hook>,
    pub capabilities: Vec<Capability>,
    pub version: String,
    pub loaded_at: DateTime<Utc>,
    pub stats: Arc<Stats>,
}

#[derive(Clone)]
pub struct ScriptEntry {
    /// The file name; `shadow/<file>` for a shadow script.
    pub file: String,
    pub shadow: bool,
    pub version: String,
    pub loaded_at: DateTime<Utc>,
    /// The version in force (the last that compiled), if any.
    pub compiled: Option<Arc<Compiled>>,
    pub hooks: Vec<Hook>,
    pub last_error: Option<ScriptError>,
    /// Content hash of the file that failed to compile, so the same broken
    /// save is not compiled (and reported) again on every watcher event.
    pub failed_version: Option<String>,
    pub stats: Arc<Stats>,
}

/// One handler call and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub policy: String,
    pub kind: &'static str,
    pub version: String,
    pub hook: &'static str,
    pub denied: Option<String>,
    /// The veto's reason in other languages (`deny(reason, #{fr: …})`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_in: Vec<(String, String)>,
    pub actions: Vec<Action>,
    pub error: Option<String>,
    pub duration_us: u64,
}

/// Per-policy status for `GET /v1/policies`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub kind: &'static str,
    pub name: String,
    pub hooks: Vec<&'static str>,
    /// The host functions (scripts) or capabilities (plugins) it declares.
    pub capabilities: Vec<&'static str>,
    /// Switched off by platform support (never called meanwhile).
    pub switched_off: Option<PolicySwitch>,
    /// Runs in shadow (`scripts/shadow/`): recorded, never enforced.
    pub shadow: bool,
    /// Shadow only: decisions that differed from the enforced outcome.
    pub disagreements: u64,
    pub version: String,
    pub loaded_at: DateTime<Utc>,
    pub last_error: Option<ScriptError>,
    pub calls: u64,
    pub failures: u64,
    pub mean_latency_us: u64,
}

pub struct PolicyHost {
    engine: ScriptEngine,
    plugins: Vec<PluginEntry>,
    scripts: ArcSwap<Vec<ScriptEntry>>,
    scripts_dir: PathBuf,
    /// Reloads run one at a time; calls never take this.
    reload_lock: Mutex<()>,
    fail_open: HashSet<Hook>,
    lookups: Option<Arc<dyn Lookups>>,
    metrics: Arc<Metrics>,
    /// Policies platform support switched off (break-glass), by name: as
    /// the store holds them, refreshed after each switch and every few
    /// seconds (another replica may have switched one).
    switched_off: ArcSwap<HashMap<String, PolicySwitch>>,
    /// Where hook call records go (set once the writer runs).
    recorder: std::sync::OnceLock<record::Recorder>,
    /// Versions loaded before the recorder was set (start-up).
    pending_versions: Mutex<Vec<record::PolicyVersion>>,
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

impl PolicyHost {
    pub fn new(
        engine: ScriptEngine,
        plugins: Vec<Box<dyn Plugin>>,
        scripts_dir: PathBuf,
        fail_open: HashSet<Hook>,
        lookups: Option<Arc<dyn Lookups>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = Utc::now();
        let plugins = plugins
            .into_iter()
            .map(|plugin| PluginEntry {
                hooks: plugin.hooks(),
                capabilities: plugin.capabilities(),
                version: format!("{}@{}", plugin.name(), env!("CARGO_PKG_VERSION")),
                plugin,
                loaded_at: now,
                stats: Arc::default(),
            })
            .collect();
        PolicyHost {
            engine,
            plugins,
            scripts: ArcSwap::from_pointee(Vec::new()),
            scripts_dir,
            reload_lock: Mutex::new(()),
            fail_open,
            lookups,
            metrics,
            switched_off: ArcSwap::from_pointee(HashMap::new()),
            recorder: std::sync::OnceLock::new(),
            pending_versions: Mutex::new(Vec::new()),
        }
    }

    /// Reads the switches from the store (at start-up, after a switch, and
    /// at each heartbeat of a shared store) and takes them.
    pub fn load_switches(
        &self,
        view: &dyn crate::domain::StateView,
    ) -> Result<(), crate::domain::ViewError> {
        self.set_switches(view.policy_switches(SWITCHES_MAX)?);
        Ok(())
    }

    /// Takes the store's switches: those saying "off" are skipped by every
    /// call from now on.
    pub fn set_switches(&self, switches: Vec<PolicySwitch>) {
        let off: HashMap<String, PolicySwitch> = switches
            .into_iter()
            .filter(|s| s.disabled)
            .map(|s| (s.name.clone(), s))
            .collect();
        self.switched_off.store(Arc::new(off));
    }

    fn is_off(&self, name: &str) -> bool {
        self.switched_off.load().contains_key(name)
    }

    /// Runs a draft against the recorded hook calls with this host's
    /// sandbox and lookups (see [`replay`]).
    pub fn replay(
        &self,
        request: &replay::ReplayRequest<'_>,
        store: &crate::store::Store,
    ) -> Result<replay::ReplayReport, replay::ReplayFailure> {
        self.metrics.policy_replays_running.inc();
        let report = replay::replay(&self.engine, request, store, self.lookups.clone());
        self.metrics.policy_replays_running.dec();
        if matches!(report, Err(replay::ReplayFailure::Stopped)) {
            self.metrics.policy_replays_stopped.inc();
        }
        report
    }

    /// Compiles a draft with this host's engine (the header checks too).
    pub fn check_draft(&self, source: &str) -> Result<Arc<script::Compiled>, ScriptError> {
        self.engine.compile(source).map(Arc::new)
    }

    /// Runs a compiled draft once on an event, in the live sandbox, with no
    /// effect: its veto and actions, or the error that stopped it.
    pub fn try_draft(
        &self,
        name: &str,
        compiled: &script::Compiled,
        hook: Hook,
        event: &Event,
        stop: Option<script::Stop>,
    ) -> Result<Context, String> {
        self.engine
            .call_until(name, compiled, hook, event, self.lookups.clone(), stop)
    }

    /// Largest script the host loads (drafts too).
    pub fn max_file_bytes(&self) -> u64 {
        self.engine.limits.max_file_bytes
    }

    /// Whether a plugin or script of this name is loaded.
    pub fn knows(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| p.plugin.name() == name)
            || self.scripts.load().iter().any(|s| s.file == name)
    }

    pub fn scripts_dir(&self) -> &Path {
        &self.scripts_dir
    }

    /// Re-reads the scripts folder: compiles what changed, keeps the previous
    /// version of a file that no longer compiles, drops deleted files, and
    /// swaps the new set in at once.
    pub fn reload(&self) {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.scripts.load_full();
        let previous: HashMap<&str, &ScriptEntry> =
            current.iter().map(|e| (e.file.as_str(), e)).collect();
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (folder, prefix) in [
            (self.scripts_dir.clone(), ""),
            (self.scripts_dir.join(SHADOW_DIR), "shadow/"),
        ] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // Type checks happen in read_script, on the opened file.
                if path.extension().is_some_and(|x| x == "rhai") {
                    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                        files.insert(format!("{prefix}{name}"), path);
                    }
                }
            }
        }
        let mut next = Vec::with_capacity(files.len());
        let mut changed = 0;
        for (file, path) in files.into_iter().take(SCRIPTS_MAX) {
            let old = previous.get(file.as_str()).copied();
            let source =
                match read_script(&path, &self.scripts_dir, self.engine.limits.max_file_bytes) {
                    Ok(s) => s,
                    Err(message) => {
                        let mut e = old.cloned().unwrap_or_else(|| empty_entry(&file));
                        e.last_error = Some(ScriptError {
                            message,
                            line: None,
                            column: None,
                        });
                        next.push(e);
                        continue;
                    }
                };
            let version = hash(source.as_bytes());
            if let Some(old) = old {
                let unchanged = old.version == version && old.last_error.is_none();
                if unchanged || old.failed_version.as_deref() == Some(version.as_str()) {
                    next.push(old.clone());
                    continue;
                }
            }
            changed += 1;
            match self.engine.compile(&source) {
                Ok(compiled) => {
                    tracing::info!(file = %file, version = %version, hooks = ?compiled.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(), "policy loaded");
                    self.note_version(record::PolicyVersion {
                        name: file.clone(),
                        kind: "script".into(),
                        version: version.clone(),
                        source: Some(source.clone()),
                        settings_hash: None,
                        loaded_at: Utc::now(),
                    });
                    self.metrics
                        .policy_reloads
                        .get_or_create(&crate::metrics::ResultLabels {
                            result: "loaded".into(),
                        })
                        .inc();
                    next.push(ScriptEntry {
                        shadow: file.starts_with("shadow/"),
                        file: file.clone(),
                        version,
                        loaded_at: Utc::now(),
                        hooks: compiled.hooks.clone(),
                        compiled: Some(Arc::new(compiled)),
                        last_error: None,
                        failed_version: None,
                        stats: old.map(|o| o.stats.clone()).unwrap_or_default(),
                    });
                }
                Err(error) => {
                    tracing::warn!(file = %file, %error, "policy does not compile; its previous version stays in force");
                    self.metrics
                        .policy_reloads
                        .get_or_create(&crate::metrics::ResultLabels {
                            result: "failed".into(),
                        })
                        .inc();
                    let mut e = old.cloned().unwrap_or_else(|| empty_entry(&file));
                    e.last_error = Some(error);
                    e.failed_version = Some(version);
                    next.push(e);
                }
            }
        }
        let removed = previous
            .keys()
            .filter(|f| !next.iter().any(|e| &e.file == *f))
            .count();
        if changed > 0 || removed > 0 || next.len() != current.len() {
            tracing::info!(scripts = next.len(), changed, removed, "policy set swapped");
        }
        self.scripts.store(Arc::new(next));
    }

    fn call_plugin(&self, entry: &PluginEntry, hook: Hook, event: &Event) -> CallRecord {
        let started = Instant::now();
        let mut ctx = Context::new();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            entry.plugin.handle(hook, event, &mut ctx)
        }));
        let mut error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the plugin panicked".to_string()),
        };
        // What it did beyond what it declared fails the call, and none of
        // it is carried out.
        let used = ctx
            .denied()
            .map(|_| Capability::Deny)
            .into_iter()
            .chain(ctx.actions().iter().map(Capability::of_action));
        if let Some(undeclared) = used.into_iter().find(|c| !entry.capabilities.contains(c)) {
            error = Some(format!(
                "the plugin used `{}`, which it does not declare in its capabilities",
                undeclared.name()
            ));
            ctx = Context::new();
        }
        self.finish(
            entry.plugin.name(),
            "plugin",
            &entry.version,
            &entry.stats,
            hook,
            started,
            ctx,
            error,
        )
    }

    fn call_script(
        &self,
        entry: &ScriptEntry,
        compiled: &Compiled,
        hook: Hook,
        event: &Event,
    ) -> CallRecord {
        let started = Instant::now();
        let (ctx, error) =
            match self
                .engine
                .call(&entry.file, compiled, hook, event, self.lookups.clone())
            {
                Ok(ctx) => (ctx, None),
                Err(e) => (Context::new(), Some(e)),
            };
        self.finish(
            &entry.file,
            "script",
            &entry.version,
            &entry.stats,
            hook,
            started,
            ctx,
            error,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        name: &str,
        kind: &'static str,
        version: &str,
        stats: &Stats,
        hook: Hook,
        started: Instant,
        ctx: Context,
        error: Option<String>,
    ) -> CallRecord {
        let elapsed = started.elapsed();
        stats.record(elapsed, error.is_some());
        let labels = PolicyLabels {
            policy: name.to_string(),
            hook: hook.name().to_string(),
        };
        self.metrics.policy_calls.get_or_create(&labels).inc();
        self.metrics
            .policy_call_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(e) = &error {
            self.metrics.policy_failures.get_or_create(&labels).inc();
            tracing::warn!(policy = %name, hook = hook.name(), error = %e, "policy call failed");
        }
        let denied_in = ctx.denied_in().to_vec();
        let (denied, actions) = ctx.into_parts();
        CallRecord {
            policy: name.to_string(),
            kind,
            version: version.to_string(),
            hook: hook.name(),
            denied,
            denied_in,
            actions,
            error,
            duration_us: elapsed.as_micros() as u64,
        }
    }

    /// Runs every handler of `hook` in order: plugins, then scripts. For a
    /// `before_` hook it stops at the first deny (or failure, fail closed).
    /// Shadow scripts run after, on the same event, and are compared and
    /// recorded, never enforced: the records returned are the enforced
    /// ones only.
    pub fn run(&self, hook: Hook, event: &Event) -> Vec<CallRecord> {
        let started = Instant::now();
        let records = self.run_enforced(hook, event);
        let shadow = self.run_shadow(hook, event, &records);
        if !records.is_empty() || !shadow.is_empty() {
            self.record_call(hook, event, &records, &shadow, started);
        }
        records
    }

    fn run_enforced(&self, hook: Hook, event: &Event) -> Vec<CallRecord> {
        let mut records = Vec::new();
        let stop = |r: &CallRecord| self.denies(hook, r);
        for entry in self
            .plugins
            .iter()
            .filter(|p| p.hooks.contains(&hook) && !self.is_off(p.plugin.name()))
        {
            let r = self.call_plugin(entry, hook, event);
            let done = stop(&r);
            records.push(r);
            if done {
                return records;
            }
        }
        let scripts = self.scripts.load();
        for entry in scripts
            .iter()
            .filter(|s| !s.shadow && s.hooks.contains(&hook) && !self.is_off(&s.file))
        {
            let Some(compiled) = &entry.compiled else {
                continue;
            };
            let r = self.call_script(entry, compiled, hook, event);
            let done = stop(&r);
            records.push(r);
            if done {
                return records;
            }
        }
        records
    }

    /// Runs the shadow scripts of `hook` and counts each decision that
    /// differs from what was enforced: from the enforced policy of the same
    /// file name when there is one (a new version of it), else from the
    /// enforced outcome as a whole.
    fn run_shadow(&self, hook: Hook, event: &Event, enforced: &[CallRecord]) -> Vec<CallRecord> {
        let scripts = self.scripts.load();
        let mut out = Vec::new();
        for entry in scripts
            .iter()
            .filter(|s| s.shadow && s.hooks.contains(&hook) && !self.is_off(&s.file))
        {
            let Some(compiled) = &entry.compiled else {
                continue;
            };
            let r = self.call_script(entry, compiled, hook, event);
            let plain = entry.file.trim_start_matches("shadow/");
            let (was_denied, was_actions) = match enforced.iter().find(|e| e.policy == plain) {
                Some(same) => (self.denies(hook, same), same.actions.clone()),
                None => (
                    self.veto(hook, enforced).is_some(),
                    enforced.iter().flat_map(|e| e.actions.clone()).collect(),
                ),
            };
            let disagrees = (hook.may_veto() && self.denies(hook, &r) != was_denied)
                || (!hook.may_veto() && r.actions != was_actions);
            if disagrees {
                entry.stats.disagreements.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .policy_shadow_disagreements
                    .get_or_create(&PolicyLabels {
                        policy: entry.file.clone(),
                        hook: hook.name().to_string(),
                    })
                    .inc();
            }
            out.push(r);
        }
        out
    }

    /// Whether a call denies (a failure does unless the hook fails open).
    fn denies(&self, hook: Hook, r: &CallRecord) -> bool {
        hook.may_veto()
            && (r.denied.is_some() || (r.error.is_some() && !self.fail_open.contains(&hook)))
    }

    /// Where loaded versions and (when recording is on) hook call records
    /// go from now on; versions loaded before are handed over at once.
    pub fn set_recorder(&self, recorder: record::Recorder) {
        let pending = std::mem::take(
            &mut *self
                .pending_versions
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for v in pending {
            recorder.version(v);
        }
        let _ = self.recorder.set(recorder);
    }

    fn note_version(&self, version: record::PolicyVersion) {
        match self.recorder.get() {
            Some(recorder) => recorder.version(version),
            None => {
                let mut pending = self
                    .pending_versions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                // Start-up loads each file once; bounded all the same.
                if pending.len() < 4 * SCRIPTS_MAX {
                    pending.push(version);
                }
            }
        }
    }

    /// Records each plugin's version with a hash of its settings.
    pub fn note_plugin_settings(&self, settings: &[(String, serde_json::Value)]) {
        for p in &self.plugins {
            let value = settings
                .iter()
                .find(|(name, _)| name == p.plugin.name())
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            self.note_version(record::PolicyVersion {
                name: p.plugin.name().to_string(),
                kind: "plugin".into(),
                version: p.version.clone(),
                source: None,
                settings_hash: Some(hex::encode(Sha256::digest(value.as_bytes()))),
                loaded_at: p.loaded_at,
            });
        }
    }

    fn record_call(
        &self,
        hook: Hook,
        event: &Event,
        enforced: &[CallRecord],
        shadow: &[CallRecord],
        started: Instant,
    ) {
        let Some(recorder) = self.recorder.get() else {
            return;
        };
        let veto = self.veto(hook, enforced);
        let decision = |r: &CallRecord, shadow: bool| record::PolicyDecision {
            policy: r.policy.clone(),
            kind: r.kind.to_string(),
            version: r.version.clone(),
            shadow,
            denied: r.denied.clone(),
            actions: r.actions.clone(),
            error: r.error.clone(),
            duration_us: r.duration_us,
        };
        // The event is turned into JSON by the recorder's task, not here
        // (before-hooks run on the writer thread).
        recorder.record(
            event.clone(),
            record::HookCall {
                id: 0,
                at: Utc::now(),
                hook: hook.name().to_string(),
                account_id: event.account_id().map(str::to_string),
                event: serde_json::Value::Null,
                decision: if veto.is_some() { "deny" } else { "allow" }.into(),
                reason: veto.map(|v| v.reason),
                actions: enforced.iter().flat_map(|r| r.actions.clone()).collect(),
                policies: enforced
                    .iter()
                    .map(|r| decision(r, false))
                    .chain(shadow.iter().map(|r| decision(r, true)))
                    .collect(),
                duration_us: started.elapsed().as_micros() as u64,
            },
        );
    }

    /// The veto of a `before_` hook's records, if any.
    pub fn veto(&self, hook: Hook, records: &[CallRecord]) -> Option<Veto> {
        records.iter().find_map(|r| {
            if let Some(reason) = &r.denied {
                return Some(Veto {
                    policy: r.policy.clone(),
                    version: r.version.clone(),
                    reason: reason.clone(),
                    translations: r.denied_in.clone().into_boxed_slice(),
                    duration_us: r.duration_us,
                    ignored: Vec::new(),
                });
            }
            match &r.error {
                Some(e) if !self.fail_open.contains(&hook) => Some(Veto {
                    policy: r.policy.clone(),
                    version: r.version.clone(),
                    duration_us: r.duration_us,
                    reason: format!("the policy failed, and this hook fails closed: {e}"),
                    translations: Box::default(),
                    ignored: Vec::new(),
                }),
                _ => None,
            }
        })
    }

    pub fn status(&self) -> Vec<PolicyStatus> {
        let row = |kind,
                   name: &str,
                   hooks: &[Hook],
                   capabilities: &[Capability],
                   version: &str,
                   loaded_at,
                   last_error: Option<ScriptError>,
                   stats: &Stats| {
            let calls = stats.calls.load(Ordering::Relaxed);
            PolicyStatus {
                kind,
                name: name.to_string(),
                hooks: hooks.iter().map(|h| h.name()).collect(),
                capabilities: capabilities.iter().map(|c| c.name()).collect(),
                switched_off: self.switched_off.load().get(name).cloned(),
                shadow: name.starts_with("shadow/"),
                disagreements: stats.disagreements.load(Ordering::Relaxed),
                version: version.to_string(),
                loaded_at,
                last_error,
                calls,
                failures: stats.failures.load(Ordering::Relaxed),
                mean_latency_us: stats
                    .total_us
                    .load(Ordering::Relaxed)
                    .checked_div(calls)
                    .unwrap_or(0),
            }
        };
        let mut out: Vec<PolicyStatus> = self
            .plugins
            .iter()
            .map(|p| {
                row(
                    "plugin",
                    p.plugin.name(),
                    &p.hooks,
                    &p.capabilities,
                    &p.version,
                    p.loaded_at,
                    None,
                    &p.stats,
                )
            })
            .collect();
        for s in self.scripts.load().iter() {
            out.push(row(
                "script",
                &s.file,
                &s.hooks,
                s.compiled.as_ref().map_or(&[][..], |c| &c.calls[..]),
                &s.version,
                s.loaded_at,
                s.last_error.clone(),
                &s.stats,
            ));
        }
        out
    }
}

fn empty_entry(file: &str) -> ScriptEntry {
    ScriptEntry {
        file: file.to_string(),
        shadow: file.starts_with("shadow/"),
        version: String::new(),
        loaded_at: Utc::now(),
        compiled: None,
        hooks: Vec::new(),
        last_error: None,
        failed_version: None,
        stats: Arc::default(),
    }
}

/// Reads one script, trusting neither the directory entry nor its metadata:
/// only a regular file (or a symlink that resolves to one inside the
/// scripts folder) is read, without blocking on FIFOs or devices, and never
/// more than `max_bytes` + 1 bytes whatever size the metadata claims
/// (`/proc` files say 0).
fn read_script(path: &Path, scripts_dir: &Path, max_bytes: u64) -> Result<String, String> {
    use std::io::Read;
    let link = std::fs::symlink_metadata(path).map_err(|e| format!("reading: {e}"))?;
    let target = if link.file_type().is_symlink() {
        let resolved =
            std::fs::canonicalize(path).map_err(|e| format!("resolving the link: {e}"))?;
        let folder = std::fs::canonicalize(scripts_dir)
            .map_err(|e| format!("resolving the scripts folder: {e}"))?;
        if !resolved.starts_with(&folder) {
            return Err("a symbolic link pointing outside the scripts folder is not loaded".into());
        }
        resolved
    } else if link.file_type().is_file() {
        path.to_path_buf()
    } else {
        return Err("not a regular file".into());
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // No following a link swapped in since the check, no blocking open
        // of a FIFO.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(&target).map_err(|e| format!("reading: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("reading: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("the file is larger than {max_bytes} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())
}

/// The policies asked for a rehearsal ([`crate::domain::rules::rehearse`]):
/// the enforced handlers run as for real, but nothing is recorded (no hook
/// call record, no shadow comparison) and nothing they ask is carried out.
/// Their calls count in their statistics like any other.
pub struct Rehearsal<'a>(pub &'a PolicyHost);

impl PolicyGate for Rehearsal<'_> {
    fn before(&self, proposal: &Proposal) -> Result<crate::domain::GateNotes, Veto> {
        let (hook, event) = proposal_event(proposal);
        let records = self.0.run_enforced(hook, &event);
        match self.0.veto(hook, &records) {
            Some(v) => Err(v),
            None => Ok(Vec::new()),
        }
    }

    fn handles(&self, hook: &str) -> bool {
        self.0.handles(hook)
    }
}

impl PolicyGate for PolicyHost {
    fn before(&self, proposal: &Proposal) -> Result<crate::domain::GateNotes, Veto> {
        let (hook, event) = proposal_event(proposal);
        let records = self.run(hook, &event);
        let mut ignored = Vec::new();
        for r in &records {
            for action in &r.actions {
                tracing::warn!(policy = %r.policy, action = %crate::logsafe::Clean(&describe(action)), "an action asked in a before_ hook is not carried out; act in after_ hooks");
                self.metrics
                    .policy_actions_dropped
                    .get_or_create(&crate::metrics::ReasonLabels {
                        reason: "asked_in_before_hook",
                    })
                    .inc();
                ignored.push(format!("{} by policy {}", describe(action), r.policy));
            }
        }
        match self.veto(hook, &records) {
            Some(mut v) => {
                v.ignored = ignored;
                Err(v)
            }
            None => Ok(ignored),
        }
    }

    fn handles(&self, hook: &str) -> bool {
        let Some(hook) = Hook::from_name(hook) else {
            return false;
        };
        self.plugins.iter().any(|p| p.hooks.contains(&hook))
            || self.scripts.load().iter().any(|s| s.hooks.contains(&hook))
    }
}

/// A member as the plugin API shows them.
fn member_info(m: &crate::domain::MemberSnapshot) -> admind_plugin_api::MemberInfo {
    admind_plugin_api::MemberInfo {
        user: user_info(&m.user),
        role: m.role.clone(),
        sell_role: m.sell_role.clone(),
        is_owner: m.is_owner,
    }
}

/// The hook and plugin-API event of a `before_` hook's proposal.
pub fn proposal_event(proposal: &Proposal) -> (Hook, Event) {
    match proposal.clone() {
        Proposal::OwnerChange(p) => (
            Hook::BeforeOwnerChange,
            Event::OwnerChange {
                account_id: p.account_id,
                actor_id: p.actor_id,
                from: user_info(&p.from),
                to: user_info(&p.to),
                integrations: None,
            },
        ),
        Proposal::MemberAdd {
            account_id,
            actor_id,
            name,
            email,
            role,
        } => (
            Hook::BeforeMemberAdd,
            Event::MemberAdd {
                account_id,
                actor_id,
                name,
                email,
                role,
            },
        ),
        Proposal::MemberRemove {
            account_id,
            actor_id,
            member,
        } => (
            Hook::BeforeMemberRemove,
            Event::MemberRemove {
                account_id,
                actor_id,
                member: member_info(&member),
            },
        ),
        Proposal::MemberActiveChange {
            account_id,
            actor_id,
            member,
            active,
        } => (
            Hook::BeforeMemberActiveChange,
            Event::MemberActiveChange {
                account_id,
                actor_id,
                member: member_info(&member),
                active,
            },
        ),
        Proposal::RoleChange {
            account_id,
            actor_id,
            member,
            from_role,
            to_role,
        } => (
            Hook::BeforeRoleChange,
            Event::RoleChange {
                account_id,
                actor_id,
                member: member_info(&member),
                from_role,
                to_role,
            },
        ),
        Proposal::SeatChange {
            account_id,
            actor_id,
            product,
            seats_from,
            seats_to,
        } => (
            Hook::BeforeSeatChange,
            Event::SeatChange {
                account_id,
                actor_id,
                product,
                seats_from,
                seats_to,
            },
        ),
        Proposal::EmailPrimary {
            account_id,
            actor_id,
            user,
            old_primary,
            new_primary,
        } => (
            Hook::BeforeEmailPrimary,
            Event::EmailPrimary {
                account_id,
                user: admind_plugin_api::PrimaryUser {
                    id: user.id,
                    name: user.name,
                    is_owner: user.is_owner,
                },
                old_primary,
                new_primary,
                actor_id: Some(actor_id),
            },
        ),
        Proposal::SellRoleChange {
            account_id,
            actor_id,
            member,
            from_sell_role,
            to_sell_role,
        } => (
            Hook::BeforeSellRoleChange,
            Event::SellRoleChange {
                account_id,
                actor_id,
                member: member_info(&member),
                from_sell_role,
                to_sell_role,
            },
        ),
    }
}

pub use record::describe;

pub fn user_info(u: &UserSnapshot) -> UserInfo {
    UserInfo {
        id: u.id.clone(),
        name: u.name.clone(),
        primary_email: u.primary_email.clone(),
        email_verified: u.email_verified,
        signed_in_before: u.signed_in_before,
    }
}

/// The hook and plugin-API event of a queued domain event.
pub fn hook_event(event: &DomainEvent) -> (Hook, Event) {
    match event {
        DomainEvent::AfterOwnerChange {
            account_id,
            actor_id,
            from,
            to,
            integrations,
        } => (
            Hook::AfterOwnerChange,
            Event::OwnerChange {
                account_id: account_id.clone(),
                actor_id: actor_id.clone(),
                from: user_info(from),
                to: user_info(to),
                integrations: Some(
                    integrations
                        .iter()
                        .map(|i| IntegrationInfo {
                            id: i.id.clone(),
                            name: i.name.clone(),
                        })
                        .collect(),
                ),
            },
        ),
        DomainEvent::AgentSeatExhausted {
            account_id,
            actor_id,
            seats_total,
            seats_used,
            attempt,
        }
        | DomainEvent::SellSeatExhausted {
            account_id,
            actor_id,
            seats_total,
            seats_used,
            attempt,
        } => (
            if matches!(event, DomainEvent::AgentSeatExhausted { .. }) {
                Hook::AgentSeatExhausted
            } else {
                Hook::SellSeatExhausted
            },
            Event::SeatExhausted {
                account_id: account_id.clone(),
                actor_id: actor_id.clone(),
                seats_total: *seats_total,
                seats_used: *seats_used,
                attempt: attempt.clone(),
            },
        ),
        DomainEvent::WebhookReceived {
            source,
            id,
            kind,
            data,
        } => (
            Hook::WebhookReceived,
            Event::Webhook {
                source: source.clone(),
                id: id.clone(),
                kind: kind.clone(),
                data: data.clone(),
            },
        ),
        DomainEvent::AfterEmailPrimary {
            account_id,
            user,
            old_primary,
            new_primary,
        } => (
            Hook::AfterEmailPrimary,
            Event::EmailPrimary {
                account_id: account_id.clone(),
                user: PrimaryUser {
                    id: user.id.clone(),
                    name: user.name.clone(),
                    is_owner: user.is_owner,
                },
                old_primary: old_primary.clone(),
                new_primary: new_primary.clone(),
                actor_id: None,
            },
        ),
    }
}

/// Watches the scripts folder itself (editors save by rename, so single
/// files are not watched) and reloads on every debounced change.
/// Whether a file-system event can change what the folder holds: a create,
/// a write, a remove or a rename. Reads (open, access, close after reading)
/// and metadata changes (atime) are not: reacting to them made every reload,
/// which reads the files, trigger the next one.
fn changes_scripts(kind: &notify_debouncer_full::notify::EventKind) -> bool {
    use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify_debouncer_full::notify::EventKind;
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        // `Any` and `Other` come from back-ends that cannot tell: reload.
        EventKind::Any | EventKind::Other => true,
    }
}

pub fn watch(
    host: Arc<PolicyHost>,
) -> anyhow::Result<
    notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
> {
    use notify_debouncer_full::notify::RecursiveMode;
    let dir = host.scripts_dir().to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("creating the scripts folder {}: {e}", dir.display()))?;
    let reloader = host.clone();
    // The debouncer drops a file created and removed within its window (a
    // quick save then delete, or a rename then delete), so after each
    // batch the folder is read once more when it has been quiet for
    // SETTLE_MS: a change is never lost, and an idle folder is not read.
    const SETTLE_MS: u64 = 250;
    let (settle, settling) = std::sync::mpsc::channel::<()>();
    let settler = host.clone();
    std::thread::Builder::new()
        .name("admind-scripts-settle".into())
        .spawn(move || {
            while settling.recv().is_ok() {
                loop {
                    match settling.recv_timeout(Duration::from_millis(SETTLE_MS)) {
                        Ok(()) => continue,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                settler.reload();
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the scripts folder's settle thread: {e}"))?;
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(50),
        None,
        move |result: notify_debouncer_full::DebounceEventResult| match result {
            Ok(events) => {
                if events.iter().any(|e| changes_scripts(&e.event.kind)) {
                    reloader.reload();
                    let _ = settle.send(());
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "watching the scripts folder");
                }
                reloader.reload();
                let _ = settle.send(());
            }
        },
    )?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    // Shadow scripts, when the folder can be made (a read-only scripts
    // folder simply has none).
    let shadow = dir.join(SHADOW_DIR);
    if std::fs::create_dir_all(&shadow).is_ok() {
        debouncer.watch(&shadow, RecursiveMode::NonRecursive)?;
    }
    Ok(debouncer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin declaring `declared` that denies and notifies.
    struct Overreaching {
        declared: Vec<Capability>,
    }

    impl Plugin for Overreaching {
        fn name(&self) -> &str {
            "overreaching"
        }
        fn hooks(&self) -> Vec<Hook> {
            vec![Hook::BeforeOwnerChange]
        }
        fn capabilities(&self) -> Vec<Capability> {
            self.declared.clone()
        }
        fn handle(&self, _: Hook, _: &Event, ctx: &mut Context) -> Result<(), String> {
            ctx.deny("no");
            ctx.act(Action::Notify {
                address: "a@x.test".into(),
                subject: "s".into(),
                body: "b".into(),
            })
        }
    }

    fn host(declared: Vec<Capability>) -> PolicyHost {
        PolicyHost::new(
            ScriptEngine::new(Default::default()),
            vec![Box::new(Overreaching { declared })],
            PathBuf::from("/nonexistent"),
            HashSet::new(),
            None,
            Arc::new(Metrics::new()),
        )
    }

    fn event() -> Event {
        script::tests::owner_change(true)
    }

    #[test]
    fn capabilities_a_plugin_doing_more_than_it_declares_fails_and_nothing_of_it_is_kept() {
        let records = host(vec![Capability::Deny]).run(Hook::BeforeOwnerChange, &event());
        let r = &records[0];
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("`notify`")),
            "{r:?}"
        );
        assert!(r.actions.is_empty() && r.denied.is_none(), "{r:?}");
        let records =
            host(vec![Capability::Deny, Capability::Notify]).run(Hook::BeforeOwnerChange, &event());
        assert_eq!(records[0].error, None);
        assert_eq!(records[0].denied.as_deref(), Some("no"));
        let status = host(vec![Capability::Deny]).status();
        assert_eq!(status[0].capabilities, vec!["deny"]);
    }
}
