//! Start-up and shutdown: open the store, start the writer and workers,
//! serve HTTP until SIGINT/SIGTERM, then drain and flush.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::domain::{Settings, StateView};
use crate::hooks::HookQueue;
use crate::http::{self, App};
use crate::mail::{self, Outbox, Transport};
use crate::metrics::Metrics;
use crate::policy::script::{Lookups, ScriptEngine};
use crate::policy::{registry, PolicyHost};
use crate::queue::{QueueWorker, Wakers};
use crate::ratelimit::RateLimiter;
use crate::secret::{self, PasswordCost};
use crate::store::writer::{Writer, WriterDeps};
use crate::store::Store;

const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// The operator token from config, else from `<data_dir>/operator.token`,
/// else a new one written there with mode 0600.
pub fn operator_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = config
        .operator_token
        .as_ref()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(token.trim().to_string());
    }
    let path = config.data_dir.join(OPERATOR_TOKEN_FILE);
    if path.exists() {
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let token = token.trim().to_string();
        anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
        return Ok(token);
    }
    let token = secret::random_token();
    write_private(&path, &token)?;
    tracing::info!(path = %path.display(), "generated the operator token");
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn settings(config: &Config) -> Settings {
    let secs = |s: u64| chrono::Duration::seconds(s.min(i64::MAX as u64 / 1000) as i64);
    Settings {
        password_set_ttl: secs(config.auth.password_set_ttl_secs),
        password_reset_ttl: secs(config.auth.password_reset_ttl_secs),
        session_ttl: secs(config.auth.session_ttl_secs),
        integrations_per_account_max: config.limits.integrations_per_account_max,
        members_per_account_max: config.limits.members_per_account_max,
        currency: config.billing.currency.clone(),
        agent_seat_price_cents: config.billing.agent_seat_price_cents,
        sell_seat_price_cents: config.billing.sell_seat_price_cents,
    }
}

/// Files the daemon creates are private: the store, the operator token and
/// the mail files (which carry password-set links) are the owner's alone.
/// Directories 0700, files 0600, including those an earlier version left
/// readable. Returns the directories it made private.
pub fn make_private(dirs: &[&Path]) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Everything created from now on (sled's files, mail, temp files).
        // SAFETY: umask only sets the process's file-mode mask.
        unsafe {
            libc::umask(0o077);
        }
        for dir in dirs {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            tighten(dir, 0o700)?;
            // One level down covers sled's db directory and the mail files;
            // the walk is bounded so a huge mail folder cannot stall start-up.
            let entries =
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            for entry in entries.flatten().take(PRIVATE_WALK_MAX) {
                let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                if meta.is_dir() {
                    tighten(&entry.path(), 0o700)?;
                    if let Ok(inner) = std::fs::read_dir(entry.path()) {
                        for e in inner.flatten().take(PRIVATE_WALK_MAX) {
                            if e.file_type().is_ok_and(|t| t.is_file()) {
                                tighten(&e.path(), 0o600)?;
                            }
                        }
                    }
                } else if meta.is_file() {
                    tighten(&entry.path(), 0o600)?;
                }
            }
        }
        fn tighten(path: &Path, mode: u32) -> anyhow::Result<()> {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("reading the mode of {}", path.display()))?;
            if meta.permissions().mode() & 0o777 != mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
            Ok(())
        }
    }
    #[cfg(not(unix))]
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Entries per directory whose mode start-up corrects.
const PRIVATE_WALK_MAX: usize = 100_000;

/// Large blocks (argon2's 19 MiB, big bodies) are mapped and unmapped on
/// their own instead of being kept in malloc's arenas. glibc raises its
/// mmap threshold after the first large free, after which every thread's
/// arena kept freed 19 MiB blocks: 231 MiB resident after 450 hostile
/// sign-ins, against 65 MiB at peak (27 MiB after) with a fixed threshold.
fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator parameter; called once at
    // start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES);
    }
}

/// Allocations of at least this many bytes are mapped on their own.
const LARGE_BLOCK_BYTES: i32 = 1 << 20;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    return_large_blocks_to_the_os();
    make_private(&[&config.data_dir, &config.mail_dir()])
        .with_context(|| format!("preparing the data directory {}", config.data_dir.display()))?;
    let store = config.open_store()?;
    tracing::info!(backend = store.kind(), "store open");
    let operator_token = operator_token(&config)?;
    let metrics = Arc::new(Metrics::new());
    let wakers = Arc::new(Wakers::default());
    let settings = settings(&config);
    let plugins = registry::build(&config.enabled_plugins()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policies = Arc::new(PolicyHost::new(
        ScriptEngine::new(config.scripts.clone()),
        plugins,
        config.scripts_dir.clone(),
        config.fail_open_hooks(),
        Some(Arc::new(StoreLookups(store.clone()))),
        metrics.clone(),
    ));
    policies.reload();
    policies.note_plugin_settings(&config.enabled_plugins());
    policies
        .load_switches(&*store)
        .map_err(|e| anyhow::anyhow!("reading the policy switches: {e}"))?;
    let _watcher = crate::policy::watch(policies.clone())?;
    let verifier = crate::webhooks::Verifier::from_config(&config.webhooks.sources)?;
    let outbound = Arc::new(crate::outbound::Outbound::new(
        &config.subscribers,
        &config.outbound.retry_schedule_ms,
        config.outbound.timeout_ms,
    )?);
    let me = Arc::new(crate::replicas::Me {
        id: config.replica_id().into(),
        started_at: chrono::Utc::now(),
    });
    if store.shared() {
        tracing::info!(replica = %me.id, "serving as one replica of a shared store");
        crate::replicas::listen(&store, policies.clone());
    }
    let claims = crate::queue::Claims {
        owner: me.id.clone(),
        lease: std::time::Duration::from_millis(config.store.claim_lease_ms),
    };
    if store.shared() {
        // New mails and hook events go to this replica's workers claimed
        // from their insert (no claim UPDATE per item); another replica
        // takes them over once the lease lapses, or once three heartbeats
        // were missed (this one died).
        store.own_new_items(
            &claims.owner,
            claims.lease,
            std::time::Duration::from_millis(config.store.heartbeat_ms.saturating_mul(3)),
        );
    }
    let (writer, writer_thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: settings.clone(),
        gate: policies.clone(),
        render: {
            let default_language = config.mail.default_language.clone();
            Arc::new(move |notice, account| {
                let language = account.map(|a| {
                    a.language
                        .clone()
                        .unwrap_or_else(|| default_language.clone())
                });
                mail::pending(notice, language)
            })
        },
        metrics: metrics.clone(),
        wakers: wakers.clone(),
        sinks: vec![outbound.clone()],
    });

    // One worker kind for every durable queue; each queue says only what
    // differs (queue::Queue).
    let outbound_worker = tokio::spawn(
        QueueWorker::new(
            crate::outbound::OutboundQueue {
                store: store.clone(),
                outbound: outbound.clone(),
                client: reqwest::Client::builder()
                    .user_agent(concat!("admind/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .context("building the HTTP client for outbound events")?,
                claims: claims.clone(),
            },
            claims.clone(),
            store.clone(),
            writer.clone(),
            wakers.clone(),
            |w| &w.outbound,
            metrics.outbound_queue.clone(),
        )
        .run(),
    );
    let finished_deliveries = tokio::spawn(crate::outbound::prune_done_loop(
        store.clone(),
        writer.clone(),
    ));

    let transport = Transport::from_config(&config.mail, config.mail_dir())?;
    let outbox = tokio::spawn(
        QueueWorker::new(
            Outbox {
                transport,
                from: config.mail.from.clone(),
                max_attempts: config.mail.max_attempts,
                retry_base_ms: config.mail.retry_base_ms,
                installation_id: store.installation_id().to_string(),
                public_url: config.public_url.clone(),
                accounts: Some(store.clone()),
                default_language: config.mail.default_language.clone(),
            },
            claims.clone(),
            store.clone(),
            writer.clone(),
            wakers.clone(),
            |w| &w.outbox,
            metrics.outbox_queue.clone(),
        )
        .run(),
    );
    let hooks = tokio::spawn(
        QueueWorker::new(
            HookQueue {
                host: policies.clone(),
                writer: writer.clone(),
                metrics: metrics.clone(),
            },
            claims.clone(),
            store.clone(),
            writer.clone(),
            wakers.clone(),
            |w| &w.hooks,
            metrics.hook_queue.clone(),
        )
        .run(),
    );

    let webhook_ids = tokio::spawn(crate::webhooks::prune_seen_loop(
        store.clone(),
        writer.clone(),
    ));
    // The record of policy versions and hook calls, and its retention.
    let record_index = crate::policy::record::PageIndex::default();
    let (recorder, record_task) = crate::policy::record::start(
        store.clone(),
        metrics.clone(),
        config.policy_record.enabled,
        record_index.clone(),
    );
    policies.set_recorder(recorder);
    let record_prune = config.policy_record.enabled.then(|| {
        let retention = config.policy_record.clone();
        tokio::spawn(crate::store::writer::prune_every(
            crate::policy::record::PRUNE_EVERY,
            "hook call records",
            store.clone(),
            writer.clone(),
            move |s, max| crate::policy::record::expired(s, &retention, &record_index, max),
            |_| {},
        ))
    });
    let heartbeat = tokio::spawn(crate::replicas::heartbeat_loop(
        store.clone(),
        me.clone(),
        policies.clone(),
        metrics.clone(),
        std::time::Duration::from_millis(config.store.heartbeat_ms),
    ));
    let retention = tokio::spawn(crate::audit::retention_loop(
        store.clone(),
        writer.clone(),
        config.audit.retention_days,
        metrics.clone(),
    ));

    let password_cost = PasswordCost {
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
    };
    let console_flash_key = crate::console::visitor::flash_key_of(&operator_token);
    let operator_token_digest = crate::domain::token_digest(&operator_token);
    let app = Arc::new(App {
        store: store.clone(),
        writer,
        metrics: metrics.clone(),
        operator_token,
        operator_token_digest,
        console_flash_key,
        limiter: RateLimiter::new(
            config.auth.attempts_per_minute,
            config.auth.limiter_keys_max,
        ),
        attempts_per_minute: config.auth.attempts_per_minute,
        attempts_per_minute_per_ip: config.auth.attempts_per_minute_per_ip,
        ip_limiter: (config.auth.attempts_per_minute_per_ip > 0).then(|| {
            RateLimiter::new(
                config.auth.attempts_per_minute_per_ip,
                config.auth.limiter_keys_max,
            )
        }),
        trusted_proxies: config
            .auth
            .trusted_proxies
            .iter()
            .filter_map(|p| crate::app::client_ip::Cidr::parse(p).ok())
            .collect(),
        refusals: RateLimiter::new(
            config.limits.refusals_per_minute,
            config.auth.limiter_keys_max,
        ),
        verification_mails: RateLimiter::with_window(
            config.limits.verification_mails_per_hour.max(1),
            std::time::Duration::from_secs(3600),
            config.auth.limiter_keys_max,
        ),
        password_gate: crate::password_gate::PasswordGate::new(
            config.auth.hashes_in_flight,
            config.auth.hash_queue_max,
        ),
        password_cost,
        decoy_hash: secret::decoy_hash(password_cost),
        settings,
        policies: policies.clone(),
        verifier,
        public_url: config.public_url.clone(),
        me,
        policy_save: config.console.policy_save,
        default_language: config.mail.default_language.clone(),
    });
    let routes = http::router(
        app.clone(),
        crate::console::routes().merge(crate::scim::routes()),
        config.limits.body_max_bytes,
        config.limits.request_timeout_ms,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        addr = %bound,
        data_dir = %config.data_dir.display(),
        "admind serving"
    );
    // Tests and scripts read this line to learn an ephemeral port.
    println!("admind listening on http://{bound}");

    http::listener::serve(
        listener,
        routes,
        http::listener::ConnectionLimits {
            connections_max: config.limits.connections_max,
            header_read_timeout: std::time::Duration::from_millis(
                config.limits.header_read_timeout_ms,
            ),
            idle_timeout: std::time::Duration::from_millis(config.limits.idle_timeout_ms),
        },
        metrics.clone(),
        shutdown_signal(),
    )
    .await;

    tracing::info!("stopped taking connections; in-flight requests finished");
    drop(app);
    outbox.abort();
    hooks.abort();
    outbound_worker.abort();
    finished_deliveries.abort();
    retention.abort();
    webhook_ids.abort();
    heartbeat.abort();
    record_task.abort();
    if let Some(task) = record_prune {
        task.abort();
    }
    // The writer ends once the last sender (the app's, the hook worker's) is gone.
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    let flushing = store.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .context("final flush")?
        .context("final flush")?;
    tracing::info!("flushed; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Store reads scripts may make (read-only).
struct StoreLookups(Store);

impl Lookups for StoreLookups {
    fn pending_licence_request(&self, account_id: &str, product: &str) -> bool {
        self.0
            .account_licence_requests(account_id, 1000)
            .map(|list| {
                list.iter().any(|r| {
                    r.status == crate::domain::LicenceStatus::Pending
                        && r.product.as_str() == product
                })
            })
            .unwrap_or(false)
    }
}
