//! Configuration: embedded defaults < TOML file < `ADMIND_*` environment <
//! command-line flags (figment). Unknown keys are errors, so a typo is
//! caught at start-up instead of silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub scripts_dir: PathBuf,
    /// Where the file transport writes `.eml` files; `<data_dir>/mail` when unset.
    pub mail_dir: Option<PathBuf>,
    /// Base of the links in mails (`<public_url>/...?token=`).
    pub public_url: String,
    /// Platform support's bearer token. Generated into
    /// `<data_dir>/operator.token` when unset.
    pub operator_token: Option<String>,
    pub log_format: LogFormat,
    pub mail: MailConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub webhooks: WebhooksConfig,
    /// Compiled plugins to enable, in call order. When absent, the shipped
    /// ones (`reauth-reminder`, `owner-password-reset`) are enabled.
    pub plugins: Option<Vec<PluginConfig>>,
    /// Per-hook settings, e.g. `[hooks.before_owner_change] on_failure = "allow"`.
    pub hooks: std::collections::BTreeMap<String, HookConfig>,
    /// The sandbox of every script call.
    pub scripts: crate::policy::script::ScriptLimits,
    /// The record of hook calls (replay runs on it): retention, off switch.
    pub policy_record: crate::policy::record::RecordConfig,
    pub console: ConsoleConfig,
    /// Seat prices: what each invoice amounts to.
    pub billing: BillingConfig,
    /// Receivers of the daemon's events (Standard Webhooks deliveries).
    pub subscribers: Vec<crate::outbound::SubscriberConfig>,
    pub outbound: OutboundConfig,
    pub audit: AuditConfig,
    pub store: StoreConfig,
}

/// Seat prices, per month, in the currency's smallest unit: an invoice
/// amounts to the seats bought times their price.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// ISO 4217 code.
    pub currency: String,
    pub agent_seat_price_cents: u64,
    pub sell_seat_price_cents: u64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            currency: "EUR".into(),
            agent_seat_price_cents: 4_900,
            sell_seat_price_cents: 1_900,
        }
    }
}

/// The web console.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether platform support may save a script from the console's
    /// policy editor into the scripts folder (off: check, test and replay
    /// only).
    pub policy_save: bool,
}

/// Where the state lives: `sled` (embedded, under `data_dir`) or
/// `postgres` (`url`, also `ADMIND_STORE__URL` or `--store-url`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// A libpq connection string or URL (`postgres://user@host/db`,
    /// `host=/run/postgresql dbname=admind`).
    pub url: Option<String>,
    /// Connections the daemon keeps open at most.
    pub pool_size: u32,
    /// Threads that run and commit commands (PostgreSQL; at most half of
    /// `pool_size` are started): each runs a group of commands of different accounts in
    /// one transaction, whatever queued while its last group committed.
    /// Fewer threads make larger groups (fewer statements and COMMITs per
    /// command); more keep a replica writing while one waits on a lock.
    pub writer_threads: u32,
    /// How long a replica holds a queue item it claimed before another
    /// may take it (PostgreSQL): longer than any one attempt (a mail, an
    /// outbound post with its timeout), short enough for another replica
    /// to take over a dead one's work soon.
    pub claim_lease_ms: u64,
    /// How often a replica records itself alive with its policy versions
    /// and re-reads the policy switches (PostgreSQL; a switch reaches the
    /// other replicas at once by announcement, this is the fallback).
    pub heartbeat_ms: u64,
    /// This daemon's name among the replicas of one database (default: the
    /// host name and a random suffix, new at each start).
    pub replica_id: Option<String>,
    /// Decoded values the read cache keeps per table (accounts, members,
    /// sessions, and members of accounts with at most 200, counted one
    /// per member), about half a KiB each; 0 turns the cache off. On
    /// PostgreSQL each replica announces what its commits changed and the
    /// others forget it as they hear it; a value is read again after
    /// `heartbeat_ms` in any case (an announcement lost in a crash).
    pub cache_entries_max: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    #[default]
    Sled,
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sled,
            url: None,
            pool_size: 16,
            writer_threads: crate::store::postgres_store::WRITER_THREADS_DEFAULT as u32,
            claim_lease_ms: 120_000,
            heartbeat_ms: 5_000,
            replica_id: None,
            cache_entries_max: crate::store::cache::CACHE_ENTRIES_MAX_DEFAULT,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Delay before each attempt, the first included; after the last, the
    /// subscriber is disabled. Defaults to the Standard Webhooks schedule.
    pub retry_schedule_ms: Vec<u64>,
    pub timeout_ms: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            retry_schedule_ms: crate::outbound::DEFAULT_SCHEDULE_MS.to_vec(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub settings: serde_json::Value,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// What a failing or over-limit handler means: `deny` (default for
    /// `before_` hooks: fail closed) or `allow`. After-hooks never undo.
    pub on_failure: OnFailure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Deny,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailTransportKind {
    File,
    Smtp,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub transport: MailTransportKind,
    pub from: String,
    pub smtp: SmtpConfig,
    /// Attempts before a mail is moved to the dead-letter tree.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at one hour.
    pub retry_base_ms: u64,
    /// The language of the mails of accounts that chose none: `en` or `fr`.
    pub default_language: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local relays only).
    pub security: SmtpSecurity,
    pub timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub session_ttl_secs: u64,
    pub password_set_ttl_secs: u64,
    pub password_reset_ttl_secs: u64,
    /// Sign-in and reset attempts per address per minute before 429.
    pub attempts_per_minute: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Password hashes computed at once (each holds `argon2_memory_kib`);
    /// 0 means the number of cores.
    pub hashes_in_flight: usize,
    /// Requests that may wait for a hash slot; past this they get 503
    /// `overloaded` with Retry-After.
    pub hash_queue_max: usize,
    /// Failed sign-ins (and reset requests) per client network address per
    /// minute, past which that address is refused for the rest of the
    /// minute; a successful sign-in is not counted, so an office behind one
    /// NAT signs in freely. Shared across replicas. 0 turns it off.
    pub attempts_per_minute_per_ip: u32,
    /// Keys the attempt limiters remember at once (per user, per IP).
    pub limiter_keys_max: usize,
    /// Load balancers and proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For` names the client for the per-IP limit.
    pub trusted_proxies: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub body_max_bytes: usize,
    /// A request still running after this gets 503 `request_timeout`.
    pub request_timeout_ms: u64,
    pub members_per_account_max: u32,
    pub integrations_per_account_max: usize,
    /// Time a client has to send a request's headers, from their first
    /// byte (the wait for a keep-alive connection's next request is
    /// `idle_timeout_ms`'s).
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and no traffic for this long
    /// is closed (idle keep-alive, or a socket that never sends).
    pub idle_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen
    /// backlog until one closes. Keep it below the descriptor limit.
    pub connections_max: usize,
    /// Refused requests (403/409, each one audited) a caller may make per
    /// minute; past it they get 429 `too_many_refusals` and nothing is audited.
    pub refusals_per_minute: u32,
    /// Verification mails an hour to one address, and asked for by one
    /// member (adding an address sends one); past either, 429
    /// `too_many_verification_mails`, so nobody can flood a mailbox.
    pub verification_mails_per_hour: u32,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit entries older than this are deleted (hourly); 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 400,
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub sources: Vec<crate::webhooks::WebhookSource>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("./data"),
            scripts_dir: PathBuf::from("./scripts"),
            mail_dir: None,
            public_url: "http://127.0.0.1:7878".into(),
            operator_token: None,
            log_format: LogFormat::Human,
            mail: MailConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            webhooks: WebhooksConfig::default(),
            plugins: None,
            hooks: Default::default(),
            scripts: Default::default(),
            policy_record: Default::default(),
            console: ConsoleConfig::default(),
            billing: BillingConfig::default(),
            subscribers: Vec::new(),
            outbound: OutboundConfig::default(),
            audit: AuditConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: MailTransportKind::File,
            from: "admind <admind@localhost>".into(),
            smtp: SmtpConfig::default(),
            max_attempts: 12,
            retry_base_ms: 1000,
            default_language: "en".into(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 587,
            username: None,
            password: None,
            security: SmtpSecurity::Starttls,
            timeout_ms: 10_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_secs: 12 * 3600,
            password_set_ttl_secs: 72 * 3600,
            password_reset_ttl_secs: 3600,
            attempts_per_minute: 10,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            hashes_in_flight: 0,
            hash_queue_max: 32,
            attempts_per_minute_per_ip: 60,
            limiter_keys_max: 100_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_max_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            members_per_account_max: 1_000_000,
            integrations_per_account_max: 1000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 1024,
            verification_mails_per_hour: 5,
            refusals_per_minute: 60,
        }
    }
}

/// Values given as flags; `None` leaves the lower layers' value.
#[derive(Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scripts_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--store-url`: PostgreSQL at this address (sets the backend too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreFlag>,
}

#[derive(Default, Serialize)]
pub struct StoreFlag {
    pub backend: StoreBackend,
    pub url: String,
}

impl Config {
    /// This daemon's name among the replicas of its store.
    pub fn replica_id(&self) -> String {
        if let Some(id) = &self.store.replica_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(48)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "admind".into());
        let mut suffix = [0u8; 3];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut suffix);
        format!("{host}-{}", hex::encode(suffix))
    }

    /// Opens the configured store (for a daemon, or a command beside one).
    pub fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        match self.store.backend {
            StoreBackend::Sled => crate::store::Store::open_sled_with_cache(
                &self.data_dir.join("db"),
                self.store.cache_entries_max,
            )
            .with_context(|| format!("opening the store under {}", self.data_dir.display())),
            StoreBackend::Postgres => {
                let url = self.store.url.as_deref().unwrap_or_default();
                crate::store::Store::open_postgres_cached(
                    url,
                    self.store.pool_size,
                    self.store.writer_threads as usize,
                    crate::store::postgres_store::CacheOptions {
                        entries_max: self.store.cache_entries_max,
                        // A change whose announcement was lost is read
                        // again after a heartbeat, like the switches.
                        max_age: std::time::Duration::from_millis(self.store.heartbeat_ms),
                    },
                )
                .context("opening the PostgreSQL store (store.url)")
            }
        }
    }
}

impl Config {
    /// The configuration of a command run beside the daemon (export,
    /// import, audit export, policy replay): the file and the environment,
    /// with `--data-dir` as its only flag.
    pub fn load_offline(file: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
        Config::load(
            file,
            FlagOverrides {
                data_dir,
                ..Default::default()
            },
        )
    }

    /// Loads the layers. `file` must exist when given; otherwise
    /// `./admind.toml` is read when present.
    pub fn load(file: Option<&Path>, flags: FlagOverrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => {
                if Path::new("admind.toml").exists() {
                    figment = figment.merge(Toml::file("admind.toml"));
                }
            }
        }
        figment = figment
            .merge(
                Env::prefixed("ADMIND_")
                    .split("__")
                    .ignore(&["config", "log"]),
            )
            .merge(Serialized::defaults(flags));
        let config: Config = figment.extract().context("reading the configuration")?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.store.backend != StoreBackend::Postgres || self.store.url.is_some(),
            "store.backend = \"postgres\" needs store.url (or ADMIND_STORE__URL, or --store-url)"
        );
        anyhow::ensure!(
            (1..=3650).contains(&self.policy_record.keep_days)
                && (1..=10_000_000).contains(&self.policy_record.keep_max),
            "policy_record.keep_days must be 1 to 3650 and policy_record.keep_max 1 to 10000000"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.store.pool_size),
            "store.pool_size must be 1 to 1000"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.store.writer_threads),
            "store.writer_threads must be 1 to 64"
        );
        anyhow::ensure!(
            (1_000..=3_600_000).contains(&self.store.claim_lease_ms),
            "store.claim_lease_ms must be 1000 to 3600000"
        );
        anyhow::ensure!(
            (100..=600_000).contains(&self.store.heartbeat_ms),
            "store.heartbeat_ms must be 100 to 600000"
        );
        anyhow::ensure!(
            self.store
                .replica_id
                .as_deref()
                .is_none_or(|id| !id.is_empty()
                    && id.len() <= 64
                    && id.chars().all(|c| c.is_ascii_graphic())),
            "store.replica_id must be 1 to 64 visible ASCII characters"
        );
        anyhow::ensure!(
            self.public_url.starts_with("http://") || self.public_url.starts_with("https://"),
            "public_url must start with http:// or https://"
        );
        anyhow::ensure!(
            self.auth.attempts_per_minute > 0,
            "auth.attempts_per_minute must be at least 1"
        );
        anyhow::ensure!(
            self.mail.max_attempts > 0,
            "mail.max_attempts must be at least 1"
        );
        anyhow::ensure!(
            self.billing.currency.len() == 3
                && self
                    .billing
                    .currency
                    .bytes()
                    .all(|b| b.is_ascii_uppercase()),
            "billing.currency must be an ISO 4217 code such as EUR"
        );
        anyhow::ensure!(
            crate::domain::validate::LANGUAGES.contains(&self.mail.default_language.as_str()),
            "mail.default_language must be one of: {}",
            crate::domain::validate::LANGUAGES.join(", ")
        );
        anyhow::ensure!(
            self.limits.body_max_bytes >= 1024,
            "limits.body_max_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.auth.limiter_keys_max >= 100,
            "auth.limiter_keys_max must be at least 100"
        );
        anyhow::ensure!(
            self.limits.connections_max >= 1,
            "limits.connections_max must be at least 1"
        );
        anyhow::ensure!(
            self.limits.idle_timeout_ms >= 100 && self.limits.header_read_timeout_ms >= 100,
            "limits.idle_timeout_ms and limits.header_read_timeout_ms must be at least 100"
        );
        anyhow::ensure!(
            self.limits.refusals_per_minute >= 1,
            "limits.refusals_per_minute must be at least 1"
        );
        for p in &self.auth.trusted_proxies {
            crate::app::client_ip::Cidr::parse(p)
                .map_err(|e| anyhow::anyhow!("auth.trusted_proxies: {e}"))?;
        }
        for name in self.hooks.keys() {
            anyhow::ensure!(
                admind_plugin_api::Hook::from_name(name).is_some(),
                "[hooks.{name}]: unknown hook; known: {}",
                admind_plugin_api::Hook::ALL.map(|h| h.name()).join(", ")
            );
        }
        anyhow::ensure!(
            self.scripts.timeout_ms >= 1,
            "scripts.timeout_ms must be at least 1"
        );
        for s in &self.webhooks.sources {
            anyhow::ensure!(
                !s.secrets.is_empty(),
                "webhook source {} has no secret",
                s.name
            );
        }
        Ok(())
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.mail_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("mail"))
    }
}

impl Config {
    /// Plugins to enable with their settings, in order.
    pub fn enabled_plugins(&self) -> Vec<(String, serde_json::Value)> {
        match &self.plugins {
            Some(list) => list
                .iter()
                .map(|p| (p.name.clone(), p.settings.clone()))
                .collect(),
            None => crate::policy::registry::DEFAULT_ENABLED
                .iter()
                .map(|n| (n.to_string(), serde_json::Value::Null))
                .collect(),
        }
    }

    /// Hooks whose failing handlers allow instead of deny.
    pub fn fail_open_hooks(&self) -> std::collections::HashSet<admind_plugin_api::Hook> {
        self.hooks
            .iter()
            .filter(|(_, c)| c.on_failure == OnFailure::Allow)
            .filter_map(|(n, _)| admind_plugin_api::Hook::from_name(n))
            .collect()
    }
}
