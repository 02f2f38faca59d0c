use anyhow::Context;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use admind::config::{Config, FlagOverrides, LogFormat};

#[derive(Parser)]
#[command(name = "admind", version, about = "Account-administration daemon")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP control API.
    Serve(ServeArgs),
    /// Tools for policy authors.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write every record of the store as versioned JSON lines (a backup
    /// that survives the store's on-disk format). Run it with the daemon
    /// stopped, or on a copy of the data directory.
    Export {
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// TOML config file (for data_dir; default ./admind.toml when present).
        #[arg(long, env = "ADMIND_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default from the config, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Moving a store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Restore an export into an empty store (a new data directory). The
    /// file is checked whole before anything is written.
    Import {
        /// The export file.
        #[arg(long = "in")]
        input: PathBuf,
        /// TOML config file (for data_dir; default ./admind.toml when present).
        #[arg(long, env = "ADMIND_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default from the config, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every record from one store into another, empty one (a sled
    /// data directory or a PostgreSQL connection string each), then check
    /// counts and a content checksum per kind of record. Stop the daemons
    /// of both first.
    Copy {
        /// A sled data directory (holding db/) or a PostgreSQL connection string.
        #[arg(long)]
        from: String,
        /// The same, empty.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write audit entries as JSON lines on stdout, oldest first per account.
    /// Reads the store directly: run it with the daemon stopped, or on a copy
    /// of the data directory.
    Export {
        /// From when: an RFC 3339 time, a date (2026-11-01) or an age (36h, 7d).
        #[arg(long)]
        since: String,
        /// One account only (`platform` for the platform's own log).
        #[arg(long)]
        account: Option<String>,
        /// TOML config file (for data_dir; default ./admind.toml when present).
        #[arg(long, env = "ADMIND_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default from the config, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Compile scripts, list the hooks each handles, report errors with line
    /// and column (exit 1 on any error).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one hook of a script on an event (JSON) and print the decision and
    /// the actions it would take. A dry run: nothing is carried out.
    Test {
        file: PathBuf,
        #[arg(long)]
        hook: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Run a draft against the recorded hook calls, in the same sandbox, with
    /// no effect of any kind; print every decision that would differ from
    /// what happened, errors, limit hits and latency. Reads the store
    /// directly (a stopped daemon's sled data directory, or PostgreSQL any
    /// time); a running daemon answers the same at POST /v1/policies/replay.
    Replay {
        draft: PathBuf,
        /// Only this hook (default: every hook the draft handles).
        #[arg(long)]
        hook: Option<String>,
        /// From when: an RFC 3339 time, a date or an age (36h, 7d).
        #[arg(long, default_value = "7d")]
        since: String,
        /// One account only.
        #[arg(long)]
        account: Option<String>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "ADMIND_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (default: ./admind.toml when present).
    #[arg(long, env = "ADMIND_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Directory of the sled store, the operator token and mail (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Directory of the Rhai policies (default ./scripts).
    #[arg(long)]
    scripts_dir: Option<PathBuf>,
    /// Where the file mail transport writes .eml files (default <data-dir>/mail).
    #[arg(long)]
    mail_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text (also `log_format = "json"`, ADMIND_LOG_FORMAT=json).
    #[arg(long)]
    log_json: bool,
    /// PostgreSQL connection string: the store is that database instead of
    /// sled (same as `[store] backend = "postgres"` with `url`).
    #[arg(long)]
    store_url: Option<String>,
}

/// Logs on stderr: coloured text on a terminal, plain text into a file or a
/// pipe (no escape codes for a collector to trip on; `NO_COLOR` turns colour
/// off on a terminal too), or one JSON object a line when asked
/// (`log_format = "json"`, `ADMIND_LOG_FORMAT=json` or `--log-json`).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADMIND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Human => builder.with_ansi(colour).init(),
    }
}

fn main() -> anyhow::Result<()> {
    admind::alloc_budget::return_freed_memory_promptly();
    let cli = Cli::parse();
    match cli.command {
        Commands::Serve(args) => {
            let flags = FlagOverrides {
                listen: args.listen,
                data_dir: args.data_dir,
                scripts_dir: args.scripts_dir,
                mail_dir: args.mail_dir,
                log_format: args.log_json.then_some(LogFormat::Json),
                store: args.store_url.map(|url| admind::config::StoreFlag {
                    backend: admind::config::StoreBackend::Postgres,
                    url,
                }),
            };
            let config = Config::load(args.config.as_deref(), flags)?;
            init_tracing(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(admind::server::serve(config))
        }
        Commands::Export {
            out,
            config,
            data_dir,
        } => {
            let config = Config::load_offline(config.as_deref(), data_dir)?;
            let store = admind::export::open_offline(&config, false)?;
            let summary = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    admind::export::export(&store, &mut std::io::BufWriter::new(file))?
                }
                None => {
                    let stdout = std::io::stdout();
                    admind::export::export(&store, &mut std::io::BufWriter::new(stdout.lock()))?
                }
            };
            eprintln!("exported {} records: {:?}", summary.records, summary.counts);
            Ok(())
        }
        Commands::Store(StoreCommand::Copy { from, to }) => {
            let source = admind::export::open_named(&from, false)?;
            let destination = admind::export::open_named(&to, true)?;
            let (digest, _) = admind::export::copy(&source, &destination)?;
            for (kind, (count, sum)) in &digest {
                println!("{kind:<18} {count:>10}  {sum:032x}  same");
            }
            eprintln!("copied; counts and checksums agree for every kind of record");
            Ok(())
        }
        Commands::Import {
            input,
            config,
            data_dir,
        } => {
            let config = Config::load_offline(config.as_deref(), data_dir)?;
            let store = admind::export::open_offline(&config, true)?;
            let summary = admind::export::import_file(&store, &input)?;
            store.flush()?;
            eprintln!("imported {} records: {:?}", summary.records, summary.counts);
            Ok(())
        }
        Commands::Audit(AuditCommand::Export {
            since,
            account,
            config,
            data_dir,
        }) => {
            let config = Config::load_offline(config.as_deref(), data_dir)?;
            let since = admind::audit::parse_since(&since, chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!(e))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = admind::audit::export(&config, since, account.as_deref(), &mut out)?;
            eprintln!("{n} audit entries since {}", since.to_rfc3339());
            Ok(())
        }
        Commands::Policy(PolicyCommand::Check { files }) => {
            if !admind::policy_cli::check(&files, Default::default()) {
                std::process::exit(1);
            }
            Ok(())
        }
        Commands::Policy(PolicyCommand::Replay {
            draft,
            hook,
            since,
            account,
            json,
            config,
            data_dir,
        }) => {
            let config = Config::load_offline(config.as_deref(), data_dir)?;
            let since = admind::audit::parse_since(&since, chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!(e))?;
            let store = admind::export::open_offline(&config, false)?;
            let differs = admind::policy_cli::replay(
                &store,
                &draft,
                hook.as_deref(),
                since,
                account.as_deref(),
                json,
                config.scripts.clone(),
            )?;
            // Like diff(1): 1 when decisions would change.
            if differs {
                std::process::exit(1);
            }
            Ok(())
        }
        Commands::Policy(PolicyCommand::Test { file, hook, event }) => {
            if !admind::policy_cli::test(&file, &hook, &event, Default::default())? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
