//! Load scenarios for `benches/run.sh`. Each prints one JSON line with its
//! figures. Talks to a running daemon over loopback, except `store`, `hmac`
//! and `seed`, which run in-process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One account with an owner and `members` members; prints its id and the owner's token.
    SetupReads {
        #[arg(long)]
        base: String,
        #[arg(long)]
        mail_dir: PathBuf,
        #[arg(long)]
        operator: String,
        #[arg(long, default_value_t = 20)]
        members: usize,
    },
    /// Durable owner transfers, each client on its own account.
    Transfers {
        #[arg(long)]
        base: String,
        /// A second replica: odd-numbered clients send to it.
        #[arg(long)]
        base2: Option<String>,
        /// The figure's name (default `transfers_<clients>`).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        mail_dir: PathBuf,
        #[arg(long)]
        operator: String,
        #[arg(long)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The slow-policy figure: the first client's account gets a
        /// `before_owner_change` policy taking this long per call (0: no
        /// policy, the baseline), written into `--scripts-dir`; the figure
        /// counts the other clients only.
        #[arg(long)]
        slow_policy_ms: Option<u64>,
        #[arg(long)]
        scripts_dir: Option<PathBuf>,
    },
    /// Signed webhook deliveries with unique ids.
    Webhooks {
        #[arg(long)]
        base: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value = "crm")]
        source: String,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// HMAC verification alone, in-process, on every core.
    Hmac {
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// sled transaction + flush: one writer, or `clients` writers sharing flushes.
    Store {
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        batched: bool,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Script save → first decision that uses it, under read load.
    Reload {
        #[arg(long)]
        base: String,
        #[arg(long)]
        mail_dir: PathBuf,
        #[arg(long)]
        operator: String,
        #[arg(long)]
        scripts_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        saves: usize,
        #[arg(long, default_value_t = 16)]
        readers: usize,
    },
    /// Seeds a data dir in-process: `accounts` × `members`, plus one account of `big` members.
    /// Hostile load: `clients` concurrent sign-ins for unknown addresses while
    /// `/healthz` is timed and the daemon's RSS sampled; with `--clients 0`
    /// the same probes on an idle daemon (the baseline).
    HostileSignins {
        #[arg(long)]
        base: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 150)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Hostile load: requests with `count` made-up methods; prints the size
    /// of `/metrics` before and after.
    MadeUpMethods {
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 20_000)]
        count: usize,
    },
    /// Replay throughput of a policy over recorded calls beside live
    /// dispatch of the same policy on the same events, in-process.
    Replay {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
    },
    Seed {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        accounts: usize,
        #[arg(long)]
        members: usize,
        #[arg(long)]
        big: usize,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(scenario: &str, extra: Value, mut latencies_ms: Vec<f64>, ops: u64, elapsed: Duration) {
    latencies_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut out = json!({
        "scenario": scenario,
        "ops": ops,
        "seconds": elapsed.as_secs_f64(),
        "rate": ops as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&latencies_ms, 0.5),
        "p99_ms": percentile(&latencies_ms, 0.99),
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    println!("{out}");
}

/// How many mails are in the folder.
fn count_mail(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

/// The token in the newest mail to `to` whose subject starts with `subject`.
fn mail_token(dir: &Path, to: &str, subject: &str) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    for f in files.iter().rev() {
        let text = std::fs::read_to_string(f).ok()?;
        if !text.contains(&format!("To: {to}\r\n"))
            || !text.contains(&format!("Subject: {subject}"))
        {
            continue;
        }
        let body = text.replace("=\r\n", "").replace("=3D", "=");
        let start = body.find("token=")? + 6;
        return Some(
            body[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        );
    }
    None
}

struct Client {
    http: reqwest::Client,
    base: String,
    mail_dir: PathBuf,
    operator: String,
}

impl Client {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn activate(&self, account: &str, email: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let token = loop {
            if let Some(t) = mail_token(&self.mail_dir, email, "Set your password") {
                break t;
            }
            assert!(Instant::now() < deadline, "no mail to {email}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (s, b) = self
            .post(
                "/v1/password-resets/confirm",
                None,
                json!({"token": token, "password": "benchmark password"}),
            )
            .await;
        assert_eq!(s, 204, "{b}");
        let (s, b) = self
            .post(
                &format!("/v1/accounts/{account}/sessions"),
                None,
                json!({"email": email, "password": "benchmark password"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["token"].as_str().unwrap().to_string()
    }

    async fn account(&self, tag: &str, seats: u32) -> (String, String, String) {
        let email = format!("owner-{tag}@bench.test");
        let (s, b) = self
            .post("/v1/accounts", Some(&self.operator), json!({"name": tag, "owner": {"name": "Owner", "email": email}, "support_seats": seats}))
            .await;
        assert_eq!(s, 201, "{b}");
        let a = b["id"].as_str().unwrap().to_string();
        let owner = b["owner_id"].as_str().unwrap().to_string();
        let t = self.activate(&a, &email).await;
        (a, owner, t)
    }

    async fn member(&self, a: &str, token: &str, email: &str, role: &str) -> String {
        let (s, b) = self
            .post(
                &format!("/v1/accounts/{a}/members"),
                Some(token),
                json!({"name": "M", "email": email, "role": role}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }
}

/// The busy loop of the slow policy: policies may not read the clock, so
/// it runs a number of iterations, calibrated here on the same engine.
const SLOW_LOOP: &str =
    "for i in 0..ITERATIONS { let a = [5, 3, 1, 4, 2, 9, 8, 7, 6, 0]; a.sort(); }";

/// Iterations of [`SLOW_LOOP`] that take about `ms` on this machine.
fn slow_iterations(ms: u64) -> u64 {
    if ms == 0 {
        return 0;
    }
    let mut engine = rhai::Engine::new();
    engine.set_max_operations(0);
    let probe = 20_000u64;
    let ast = engine
        .compile(SLOW_LOOP.replace("ITERATIONS", &probe.to_string()))
        .expect("the slow loop compiles");
    let started = Instant::now();
    engine.run_ast(&ast).expect("the slow loop runs");
    let per_ms = probe as f64 / (started.elapsed().as_secs_f64() * 1000.0);
    (per_ms * ms as f64).round().max(1.0) as u64
}

/// Writes a policy that spends about `ms` on each `before_owner_change` of
/// `account` (a busy loop of calibrated length: the sandbox has no sleep
/// and no clock), and waits until the daemon has loaded it. The daemon
/// must allow the loop (`[scripts] max_operations`, `timeout_ms`).
async fn slow_policy(c: &Client, scripts_dir: &std::path::Path, account: &str, ms: u64) {
    let body = SLOW_LOOP.replace("ITERATIONS", &slow_iterations(ms).to_string());
    let script = format!(
        "// hooks: before_owner_change\n// calls: none\n// Benchmark only: about {ms} ms on one account's transfers.\nfn before_owner_change(event) {{\n    if event.account_id == \"{account}\" {{\n        {body}\n    }}\n}}\n"
    );
    std::fs::write(scripts_dir.join("slow.rhai"), script).expect("writing the slow policy");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .http
            .get(format!("{}/v1/policies", c.base))
            .bearer_auth(&c.operator)
            .send()
            .await
            .expect("policies");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let loaded = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "slow.rhai" && p["last_error"].is_null());
        if loaded {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slow policy did not load: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client(base: String, mail_dir: PathBuf, operator: String) -> Client {
    Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        base,
        mail_dir,
        operator,
    }
}

#[tokio::main]
async fn main() {
    match Cli::parse().cmd {
        Cmd::SetupReads {
            base,
            mail_dir,
            operator,
            members,
        } => {
            let c = client(base, mail_dir, operator);
            let (a, _, t) = c.account("reads", members as u32 + 1).await;
            for i in 0..members {
                c.member(&a, &t, &format!("m{i}@reads.test"), "agent").await;
            }
            println!("{}", json!({"account": a, "token": t}));
        }
        Cmd::Transfers {
            base,
            base2,
            name,
            mail_dir,
            operator,
            clients,
            seconds,
            slow_policy_ms,
            scripts_dir,
        } => {
            let bases = [base.clone(), base2.unwrap_or_else(|| base.clone())];
            let c = Arc::new(client(base, mail_dir, operator));
            let mut accounts = Vec::new();
            for k in 0..clients {
                let (a, o, ot) = c.account(&format!("t{clients}-{k}"), 5).await;
                let email = format!("b-{clients}-{k}@bench.test");
                let b = c.member(&a, &ot, &email, "admin").await;
                let bt = c.activate(&a, &email).await;
                accounts.push((a, [(o, ot), (b, bt)]));
            }
            if let Some(ms) = slow_policy_ms.filter(|ms| *ms > 0) {
                slow_policy(
                    &c,
                    scripts_dir.as_deref().expect("--scripts-dir"),
                    &accounts[0].0,
                    ms,
                )
                .await;
            }
            let skip_first = slow_policy_ms.is_some();
            let mails_before = count_mail(&c.mail_dir);
            let stop = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = accounts
                .into_iter()
                .enumerate()
                .map(|(k, (a, users))| {
                    let c = c.clone();
                    let base = bases[k % 2].clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut cur = 0;
                        let mut errors = 0u64;
                        while Instant::now() < stop {
                            let (from, to) = (&users[cur], &users[1 - cur]);
                            let t0 = Instant::now();
                            let res = c
                                .http
                                .put(format!("{base}/v1/accounts/{a}/owner"))
                                .bearer_auth(&from.1)
                                .json(&json!({"user_id": to.0}))
                                .send()
                                .await;
                            match res {
                                Ok(r) if r.status() == 200 => {
                                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                                    cur = 1 - cur;
                                }
                                _ => errors += 1,
                            }
                        }
                        (lat, errors)
                    })
                })
                .collect();
            let mut all = Vec::new();
            let mut errors = 0;
            let mut slow_ops = 0;
            for (k, t) in tasks.into_iter().enumerate() {
                let (l, e) = t.await.unwrap();
                if k == 0 && skip_first {
                    slow_ops = l.len();
                    continue;
                }
                all.extend(l);
                errors += e;
            }
            let n = all.len() as u64;
            let elapsed = started.elapsed();
            // How long the workers take, once the load stops, to write the
            // two mails of every transfer it made (the backlog it left).
            let expected = mails_before + 2 * (n as usize + slow_ops);
            let load_ended = Instant::now();
            let mut drained_ms = None;
            while load_ended.elapsed() < Duration::from_secs(120) {
                if count_mail(&c.mail_dir) >= expected {
                    drained_ms = Some(load_ended.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            report(
                &name.unwrap_or_else(|| format!("transfers_{clients}")),
                json!({"clients": clients, "errors": errors, "slow_account_ops": slow_ops, "slow_policy_ms": slow_policy_ms, "drain_ms": drained_ms}),
                all,
                n,
                elapsed,
            );
        }
        Cmd::Webhooks {
            base,
            secret,
            source,
            clients,
            seconds,
        } => {
            let key = admind::webhooks::decode_secret(&secret).expect("secret");
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap();
            let next = Arc::new(AtomicU64::new(0));
            let stop = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (http, key, next, base, source) = (
                        http.clone(),
                        key.clone(),
                        next.clone(),
                        base.clone(),
                        source.clone(),
                    );
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut errors = 0u64;
                        while Instant::now() < stop {
                            let id = format!("bench-{}", next.fetch_add(1, Ordering::Relaxed));
                            let body = br#"{"type":"crm.ping","data":{"n":1}}"#;
                            let ts = chrono::Utc::now().timestamp();
                            let sig = admind::webhooks::sign(&key, &id, ts, body);
                            let t0 = Instant::now();
                            let res = http
                                .post(format!("{base}/v1/webhooks/{source}"))
                                .header("webhook-id", &id)
                                .header("webhook-timestamp", ts.to_string())
                                .header("webhook-signature", sig)
                                .body(body.to_vec())
                                .send()
                                .await;
                            match res {
                                Ok(r) if r.status() == 200 => {
                                    lat.push(t0.elapsed().as_secs_f64() * 1000.0)
                                }
                                _ => errors += 1,
                            }
                        }
                        (lat, errors)
                    })
                })
                .collect();
            let mut all = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await.unwrap();
                all.extend(l);
                errors += e;
            }
            let n = all.len() as u64;
            report(
                "webhooks",
                json!({"clients": clients, "errors": errors}),
                all,
                n,
                started.elapsed(),
            );
        }
        Cmd::Hmac { secret, seconds } => {
            let verifier = Arc::new(
                admind::webhooks::Verifier::from_config(&[admind::webhooks::WebhookSource {
                    name: "crm".into(),
                    secrets: vec![secret.clone()],
                }])
                .unwrap(),
            );
            let key = admind::webhooks::decode_secret(&secret).unwrap();
            let body = br#"{"type":"crm.ping","data":{"n":1}}"#;
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            let started = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (verifier, key) = (verifier.clone(), key.clone());
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        let stop = Instant::now() + Duration::from_secs(seconds);
                        while Instant::now() < stop {
                            let id = format!("bench-{t}-{n}");
                            let ts = chrono::Utc::now().timestamp();
                            let sig = admind::webhooks::sign(&key, &id, ts, body);
                            verifier
                                .verify(
                                    "crm",
                                    Some(&id),
                                    Some(&ts.to_string()),
                                    Some(&sig),
                                    body,
                                    ts,
                                )
                                .unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let n: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            report(
                "hmac_verify_alone",
                json!({"threads": threads, "note": "sign + verify per op"}),
                vec![],
                n,
                started.elapsed(),
            );
        }
        Cmd::Store {
            clients,
            batched,
            seconds,
        } => store_bench(clients, batched, seconds),
        Cmd::Reload {
            base,
            mail_dir,
            operator,
            scripts_dir,
            saves,
            readers,
        } => {
            let c = Arc::new(client(base, mail_dir, operator));
            let (a, _, ot) = c.account("reload", 5).await;
            let b = c.member(&a, &ot, "b@reload.test", "admin").await;
            let bt = c.activate(&a, "b@reload.test").await;
            let owner_id = c
                .http
                .get(format!("{}/v1/accounts/{a}/owner", c.base))
                .bearer_auth(&ot)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            // Whoever owns the account tries to hand it to the other; a 200
            // (before a script loaded) just swaps who tries.
            let mut turn = [(owner_id, ot.clone()), (b, bt)];
            let stop = Arc::new(AtomicBool::new(false));
            let failed = Arc::new(AtomicU64::new(0));
            let read = Arc::new(AtomicU64::new(0));
            let reader_tasks: Vec<_> = (0..readers)
                .map(|_| {
                    let (c, a, ot, stop, failed, read) = (
                        c.clone(),
                        a.clone(),
                        ot.clone(),
                        stop.clone(),
                        failed.clone(),
                        read.clone(),
                    );
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            match c
                                .http
                                .get(format!("{}/v1/accounts/{a}", c.base))
                                .bearer_auth(&ot)
                                .send()
                                .await
                            {
                                Ok(r) if r.status() == 200 => read.fetch_add(1, Ordering::Relaxed),
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    })
                })
                .collect();
            // A denying script first, so no attempt below can transfer.
            std::fs::write(
                scripts_dir.join("bench.rhai"),
                "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) { deny(\"bench warm-up\"); }",
            )
            .unwrap();
            let t0 = Instant::now();
            loop {
                let (s, body) = c.post_put(&a, &turn[0].1, &turn[1].0).await;
                if s == 200 {
                    turn.swap(0, 1);
                    continue;
                }
                if body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("bench warm-up"))
                {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "the warm-up script never loaded: {s} {body}"
                );
            }
            let mut lat = Vec::new();
            let started = Instant::now();
            for i in 0..saves {
                let reason = format!("bench save {i}");
                let tmp = scripts_dir.join(".bench.rhai.tmp");
                std::fs::write(
                    &tmp,
                    format!("// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) {{ deny(\"{reason}\"); }}"),
                )
                .unwrap();
                let t0 = Instant::now();
                std::fs::rename(&tmp, scripts_dir.join("bench.rhai")).unwrap();
                loop {
                    let (s, body) = c.post_put(&a, &turn[0].1, &turn[1].0).await;
                    if s == 200 {
                        turn.swap(0, 1);
                        continue;
                    }
                    if s == 409 && body["detail"].as_str().is_some_and(|d| d.contains(&reason)) {
                        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                    assert!(
                        t0.elapsed() < Duration::from_secs(10),
                        "save {i} never took effect"
                    );
                }
            }
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            for t in reader_tasks {
                let _ = t.await;
            }
            let _ = std::fs::remove_file(scripts_dir.join("bench.rhai"));
            report(
                "reload",
                json!({"saves": saves, "reads": read.load(Ordering::Relaxed), "failed_requests": failed.load(Ordering::Relaxed)}),
                lat,
                saves as u64,
                elapsed,
            );
        }
        Cmd::Seed {
            data_dir,
            accounts,
            members,
            big,
        } => seed(&data_dir, accounts, members, big).await,
        Cmd::Replay { events } => replay_bench(events),
        Cmd::HostileSignins {
            base,
            account,
            pid,
            clients,
            rounds,
        } => hostile_signins(&base, &account, pid, clients, rounds).await,
        Cmd::MadeUpMethods { base, count } => made_up_methods(&base, count).await,
    }
}

impl Client {
    async fn post_put(&self, a: &str, token: &str, to: &str) -> (u16, Value) {
        let res = self
            .http
            .put(format!("{}/v1/accounts/{a}/owner", self.base))
            .bearer_auth(token)
            .json(&json!({"user_id": to}))
            .send()
            .await
            .expect("request");
        let s = res.status().as_u16();
        (s, res.json().await.unwrap_or(Value::Null))
    }
}

/// The pure-sled baselines of the transfer figure: one transaction per
/// transfer (three keys, as a transfer writes the account, an integration
/// and the audit entry), flushed each time by one writer; or the same with
/// `clients` threads sharing flushes.
fn store_bench(clients: usize, batched: bool, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    let trees: Vec<sled::Tree> = ["a", "b", "c"]
        .iter()
        .map(|n| db.open_tree(n).unwrap())
        .collect();
    let value = vec![7u8; 300];
    let commit = |i: u64| {
        use sled::Transactional;
        let r: sled::transaction::TransactionResult<(), ()> = trees.as_slice().transaction(|t| {
            for (k, tree) in t.iter().enumerate() {
                tree.insert(
                    format!("key{}-{}", k, i % 1000).as_bytes(),
                    value.as_slice(),
                )?;
            }
            Ok(())
        });
        r.unwrap();
    };
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    if !batched {
        let mut lat = Vec::new();
        let mut n = 0u64;
        while Instant::now() < stop {
            let t0 = Instant::now();
            commit(n);
            db.flush().unwrap();
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            n += 1;
        }
        report(
            "sled_one_writer",
            json!({"clients": 1}),
            lat,
            n,
            started.elapsed(),
        );
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<()>>();
    let done = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..clients)
        .map(|_| {
            let (tx, done) = (tx.clone(), done.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < stop {
                    let (ack, wait) = std::sync::mpsc::channel();
                    let t0 = Instant::now();
                    if tx.send(ack).is_err() || wait.recv().is_err() {
                        break;
                    }
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                lat
            })
        })
        .collect();
    drop(tx);
    let mut n = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        for _ in &batch {
            commit(n);
            n += 1;
        }
        db.flush().unwrap();
        for ack in batch {
            let _ = ack.send(());
        }
    }
    let lat: Vec<f64> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    report(
        &format!("sled_batched_{clients}"),
        json!({"clients": clients}),
        lat,
        done.load(Ordering::Relaxed),
        started.elapsed(),
    );
}

/// Replays the shipped guard over `events` recorded calls; beside it, the
/// same events dispatched live through the policy host (recording off).
fn replay_bench(events: usize) {
    use admind::policy::record::{HookCall, PolicyDecision};
    use admind::policy::replay::{ReplayRequest, RECORDS_MAX};
    use admind::policy::script::ScriptEngine;
    use admind::policy::PolicyHost;
    use admind::store::{Store, Transaction, Write};
    use admind_plugin_api::{Event, Hook, UserInfo};
    let scripts = tempfile::tempdir().unwrap();
    let guard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/owner_change_guard.rhai"),
    )
    .unwrap();
    std::fs::write(scripts.path().join("owner_change_guard.rhai"), &guard).unwrap();
    let host = PolicyHost::new(
        ScriptEngine::new(Default::default()),
        Vec::new(),
        scripts.path().to_path_buf(),
        Default::default(),
        None,
        Arc::new(admind::metrics::Metrics::new()),
    );
    host.reload();
    let user = |id: &str, signed: bool| UserInfo {
        id: id.into(),
        name: id.into(),
        primary_email: format!("{id}@bench.test"),
        email_verified: true,
        signed_in_before: signed,
    };
    let event = |n: usize| Event::OwnerChange {
        account_id: format!("acc_{n:020}"),
        actor_id: "usr_o".into(),
        from: user("usr_o", true),
        to: user(&format!("usr_{n}"), n % 2 == 0),
        integrations: None,
    };
    let store = Store::new(admind::store::memory::MemoryBackend::default());
    let calls: Vec<HookCall> = (0..events)
        .map(|n| {
            let denied = n % 2 == 1;
            let call = HookCall {
                id: n as u64 + 1,
                at: chrono::Utc::now(),
                hook: "before_owner_change".into(),
                account_id: Some(format!("acc_{n:020}")),
                event: serde_json::to_value(event(n)).unwrap(),
                decision: if denied { "deny" } else { "allow" }.into(),
                reason: denied.then(|| "the new owner must have signed in at least once".into()),
                actions: Vec::new(),
                policies: vec![PolicyDecision {
                    policy: "owner_change_guard.rhai".into(),
                    kind: "script".into(),
                    version: "v".into(),
                    shadow: false,
                    denied: denied
                        .then(|| "the new owner must have signed in at least once".into()),
                    actions: Vec::new(),
                    error: None,
                    duration_us: 10,
                }],
                duration_us: 10,
            };
            call
        })
        .collect();
    // Stored as the daemon stores them: pages keyed by their first call.
    let writes: Vec<Write> = calls
        .chunks(admind::policy::record::PAGE_MAX)
        .map(admind::policy::record::page_write)
        .collect();
    store.commit(Transaction::of_writes(writes)).unwrap();
    // Retention's minute pass when nothing is over: it counts every call
    // (keep_max is the number recorded) and stops at the first young page.
    // The first pass after a start reads each page once; later ones know
    // every page from the index.
    let retention = admind::policy::record::RecordConfig {
        enabled: true,
        keep_days: 7,
        keep_max: events,
    };
    let index = admind::policy::record::PageIndex::default();
    let started = Instant::now();
    let gone = admind::policy::record::expired(&store, &retention, &index, 10_000).unwrap();
    let retention_pass = started.elapsed();
    assert!(gone.is_empty());
    let started = Instant::now();
    let gone = admind::policy::record::expired(&store, &retention, &index, 10_000).unwrap();
    let retention_pass_known = started.elapsed();
    assert!(gone.is_empty());
    let live_events: Vec<Event> = (0..events).map(event).collect();
    let started = Instant::now();
    for e in &live_events {
        let _ = host.run(Hook::BeforeOwnerChange, e);
    }
    let live = started.elapsed();
    let started = Instant::now();
    let report = host
        .replay(
            &ReplayRequest {
                name: "owner_change_guard.rhai",
                source: &guard,
                hook: None,
                since: None,
                account: None,
                limit: RECORDS_MAX,
                stop: None,
            },
            &store,
        )
        .unwrap();
    let replay = started.elapsed();
    assert_eq!(report.replayed, events);
    assert!(
        report.differing.is_empty(),
        "the same policy decides the same"
    );
    println!(
        "{}",
        json!({
            "scenario": "replay",
            "events": events,
            "replay_rate": events as f64 / replay.as_secs_f64(),
            "live_rate": events as f64 / live.as_secs_f64(),
            "retention_pass_ms": retention_pass.as_secs_f64() * 1000.0,
            "retention_pass_known_ms": retention_pass_known.as_secs_f64() * 1000.0,
        })
    );
}

/// Seeds through the real core and writer, in-process (no HTTP, no mail
/// delivery), then activates one owner of a small and of the big account.
async fn seed(data_dir: &Path, accounts: usize, members: usize, big: usize) {
    use admind::domain::*;
    use admind::queue::Wakers;
    use admind::store::writer::{Writer, WriterDeps};
    use admind::store::{OutboxItem, OutboxMail, QueueName, Store};
    std::fs::create_dir_all(data_dir).unwrap();
    let store = Store::open_sled(&data_dir.join("db")).unwrap();
    let (writer, thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: Arc::new(AllowAll),
        render: Arc::new(|n, _| admind::mail::render(n, "http://bench", "en")),
        metrics: Arc::new(admind::metrics::Metrics::new()),
        wakers: Arc::new(Wakers::default()),
        sinks: Vec::new(),
    });
    let started = Instant::now();
    let small = seed_account(
        writer.clone(),
        "small".into(),
        "owner-small@seed.test".into(),
    )
    .await;
    seed_members(writer.clone(), small.clone(), members, "s".into()).await;
    let large = seed_account(writer.clone(), "big".into(), "owner-big@seed.test".into()).await;
    // The big account, filled by 32 concurrent adders.
    let per = big.div_ceil(32);
    let fills: Vec<_> = (0..32)
        .map(|k| {
            tokio::spawn(seed_members(
                writer.clone(),
                large.clone(),
                per.min(big.saturating_sub(k * per)),
                format!("b{k}-"),
            ))
        })
        .collect();
    for f in fills {
        f.await.unwrap();
    }
    // The other accounts, 64 at a time.
    let mut i = 0;
    while i < accounts {
        let batch: Vec<_> = (i..(i + 64).min(accounts))
            .map(|k| {
                let w = writer.clone();
                tokio::spawn(async move {
                    let a =
                        seed_account(w.clone(), format!("acc{k}"), format!("o{k}@seed.test")).await;
                    seed_members(w, a, members, format!("a{k}-")).await;
                })
            })
            .collect();
        for b in batch {
            b.await.unwrap();
        }
        i += 64;
    }
    // Activate the two owners we will sign in as; drop the seeding mail.
    let items: Vec<OutboxItem> = store.items(QueueName::Outbox, false, usize::MAX).unwrap();
    let mails: Vec<&OutboxMail> = items.iter().flat_map(|item| &item.mails).collect();
    for who in ["owner-small@seed.test", "owner-big@seed.test"] {
        let m = mails.iter().find(|m| m.to == who).unwrap();
        let start = m.body.find("token=").unwrap() + 6;
        let token: String = m.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let hash = admind::secret::hash_password("benchmark password", Default::default()).unwrap();
        writer
            .submit(
                Principal::Anonymous,
                Command::ConfirmPasswordReset(cmd::ConfirmPasswordReset {
                    token_hash: token_hash(&token),
                    password_hash: hash,
                }),
            )
            .await
            .unwrap();
    }
    let left: Vec<OutboxItem> = store.items(QueueName::Outbox, false, usize::MAX).unwrap();
    for chunk in left.chunks(admind::store::writer::MAINTENANCE_WRITES_MAX) {
        let writes = chunk
            .iter()
            .map(|m| Store::queue_remove(QueueName::Outbox, m.id))
            .collect();
        writer.submit_writes(writes).await.unwrap();
    }
    drop(writer);
    let _ = thread.join();
    println!(
        "{}",
        json!({"scenario": "seed", "small": small.id, "big": large.id, "seconds": started.elapsed().as_secs_f64(),
        "accounts": accounts + 2, "members": accounts * members + members + big})
    );
}

async fn seed_account(
    w: admind::store::writer::Writer,
    name: String,
    email: String,
) -> admind::domain::Account {
    use admind::domain::*;
    match w
        .submit(
            Principal::Operator,
            Command::CreateAccount(cmd::CreateAccount {
                name,
                owner_name: "Owner".into(),
                owner_email: email,
                support_seats: 5,
                language: None,
            }),
        )
        .await
        .unwrap()
    {
        Reply::Account(a) => a,
        other => panic!("{other:?}"),
    }
}

async fn seed_members(
    w: admind::store::writer::Writer,
    a: admind::domain::Account,
    n: usize,
    prefix: String,
) {
    use admind::domain::*;
    let owner = Principal::Member {
        account_id: a.id.clone(),
        user_id: a.owner_id.clone(),
    };
    for i in 0..n {
        w.submit(
            owner.clone(),
            Command::AddMember(cmd::AddMember {
                account_id: a.id.clone(),
                name: "M".into(),
                email: format!("{prefix}{i}@seed.test"),
                role: SupportRole::EndUser,
            }),
        )
        .await
        .unwrap();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn hostile_signins(base: &str, account: &str, pid: u32, clients: usize, rounds: usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let probe = {
        let (http, base, done) = (http.clone(), base.to_string(), done.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            lat
        })
    };
    let started = Instant::now();
    let (mut answered, mut shed, mut other) = (0u64, 0u64, 0u64);
    if clients == 0 {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for round in 0..rounds.max(1) {
        if clients == 0 {
            break;
        }
        let calls = (0..clients).map(|n| {
            let http = http.clone();
            let url = format!("{base}/v1/accounts/{account}/sessions");
            async move {
                http.post(url)
                    .json(&json!({"email": format!("nobody{round}-{n}@hostile.test"), "password": "not the password"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        for status in futures::future::join_all(calls).await {
            match status {
                401 => answered += 1,
                503 => shed += 1,
                _ => other += 1,
            }
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let mut lat = probe.await.unwrap_or_default();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({
            "scenario": if clients == 0 { "hostile_idle_baseline" } else { "hostile_signins" },
            "clients": clients,
            "rounds": rounds,
            "peak_rss_kib": peak.load(Ordering::Relaxed),
            "healthz_p50_ms": percentile(&lat, 0.50),
            "healthz_p99_ms": percentile(&lat, 0.99),
            "healthz_probes": lat.len(),
            "answered_401": answered,
            "shed_503": shed,
            "other": other,
            "seconds": elapsed.as_secs_f64(),
        })
    );
}

async fn made_up_methods(base: &str, count: usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let size = |http: reqwest::Client| async move {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
            .len()
    };
    // The first made-up method creates the `other` series once; what must
    // not happen is growth with the number of methods.
    for n in 0..100 {
        let method = reqwest::Method::from_bytes(format!("WARMUP{n}").as_bytes()).unwrap();
        let _ = http.request(method, format!("{base}/healthz")).send().await;
    }
    // Reading /metrics adds its own series the first time: read it once
    // before the figure.
    let _ = size(http.clone()).await;
    let before = size(http.clone()).await;
    let next = Arc::new(AtomicU64::new(0));
    let workers = (0..32).map(|_| {
        let (http, next, base) = (http.clone(), next.clone(), base.to_string());
        async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= count {
                    break;
                }
                let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
                let _ = http.request(method, format!("{base}/healthz")).send().await;
            }
        }
    });
    futures::future::join_all(workers).await;
    let after = size(http).await;
    println!(
        "{}",
        json!({"scenario": "made_up_methods", "methods": count, "metrics_bytes_before": before, "metrics_bytes_after": after})
    );
}
