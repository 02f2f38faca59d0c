//! Test harness: runs the real `admind` binary on an ephemeral port with a
//! temporary data dir, talks HTTP to it, and reads its mail as `.eml` files.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a step that fails fails the test"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub base: String,
    pub operator: String,
    pub http: Client,
    extra_config: String,
    options: SpawnOptions,
    /// The database of this daemon when the suite runs on PostgreSQL
    /// (`TEST_STORE=postgres`), kept across restarts.
    pub postgres_url: Option<String>,
}

/// Which backend the suite runs on: `TEST_STORE=postgres` (with
/// `TEST_POSTGRES_URL`, as `tests/run.sh` sets them) or sled.
pub fn on_postgres() -> bool {
    std::env::var("TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A new database on the test server (`TEST_POSTGRES_URL`).
pub fn fresh_postgres_database() -> String {
    const NEEDS: &str = "TEST_STORE=postgres needs TEST_POSTGRES_URL (tests/run.sh sets both)";
    let admin = std::env::var("TEST_POSTGRES_URL").expect(NEEDS);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "admind_it_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    // The driver runs its own runtime: off any async test's threads.
    let create = format!("CREATE DATABASE {name}");
    let server = admin.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&server, postgres::NoTls).expect(NEEDS);
        client
            .batch_execute(&create)
            .expect("creating a test database");
    })
    .join()
    .expect("creating the test database");
    format!("{admin} dbname={name}")
}

/// How the daemon process is started, beyond its config.
#[derive(Default, Clone)]
pub struct SpawnOptions {
    /// Soft and hard limit of open descriptors (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Write stderr (logs at info) to `<dir>/daemon.log` instead of the test's.
    pub log_to_file: bool,
    /// More environment (`ADMIND_*` settings the TOML already has a table for).
    pub env: Vec<(String, String)>,
    /// Another daemon's mail folder (replicas share one).
    pub mail_dir: Option<PathBuf>,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// `extra_config` is appended to the test config (TOML).
    pub fn start_with(extra_config: &str) -> Daemon {
        Self::start_opts(extra_config, SpawnOptions::default())
    }

    pub fn start_opts(extra_config: &str, options: SpawnOptions) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut d = Daemon {
            dir,
            child: None,
            base: String::new(),
            operator: String::new(),
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            extra_config: extra_config.to_string(),
            options,
            postgres_url: on_postgres().then(fresh_postgres_database),
        };
        d.spawn();
        d
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// CPU time the daemon has spent so far (user and system), in clock
    /// ticks (100 a second on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let fields = proc_stat(self.pid()).expect("the daemon's /proc stat");
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("a running daemon")
    }

    /// A line of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`) in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Read system calls the daemon made so far (`/proc/<pid>/io` syscr).
    pub fn read_calls(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid())).expect("io");
        io.lines()
            .find_map(|l| l.strip_prefix("syscr:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("syscr")
    }

    /// The config file the daemon runs with (its store among the rest).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("admind.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn mail_dir(&self) -> PathBuf {
        match &self.options.mail_dir {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("mail"),
        }
    }

    /// Another replica on this daemon's database (on PostgreSQL): the same
    /// operator token, the same mail folder, its own scripts folder and
    /// configuration (`extra_config`).
    pub fn replica(&self, extra_config: &str) -> Daemon {
        let url = self
            .postgres_url
            .clone()
            .expect("replicas share a PostgreSQL database (TEST_STORE=postgres)");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        std::fs::write(
            dir.path().join("data").join("operator.token"),
            &self.operator,
        )
        .expect("operator token");
        let mut options = self.options.clone();
        options.mail_dir = Some(self.mail_dir());
        let mut d = Daemon {
            dir,
            child: None,
            base: String::new(),
            operator: String::new(),
            http: self.http.clone(),
            extra_config: extra_config.to_string(),
            options,
            postgres_url: Some(url),
        };
        d.spawn();
        d
    }

    /// This daemon's own scripts folder (empty unless a test writes to it).
    pub fn scripts_dir(&self) -> PathBuf {
        self.dir.path().join("scripts")
    }

    /// Copies a shipped policy from the repository's `scripts/`.
    pub fn install_script(&self, name: &str) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name);
        std::fs::create_dir_all(self.scripts_dir()).expect("scripts dir");
        std::fs::copy(&from, self.scripts_dir().join(name)).expect("copy script");
    }

    /// Writes a policy into this daemon's scripts folder the way editors
    /// save: a temporary file renamed over the old one.
    pub fn write_script(&self, file: &str, source: &str) {
        std::fs::create_dir_all(self.scripts_dir()).expect("scripts dir");
        let tmp = self.scripts_dir().join(format!(".{file}.swp"));
        std::fs::write(&tmp, source).expect("write script");
        std::fs::rename(&tmp, self.scripts_dir().join(file)).expect("rename script");
    }

    fn spawn(&mut self) {
        let config = self.dir.path().join("admind.toml");
        let has_auth = self.extra_config.contains("[auth]");
        let auth = if has_auth {
            String::new()
        } else {
            // Cheap hashes keep tests fast; the production default is in Config.
            "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 1000\nattempts_per_minute_per_ip = 100000\n"
                .to_string()
        };
        // A short claim lease: a SIGKILLed replica's queue items go to the
        // other soon. Into the test's own `[store]` table when it has one.
        let (extra, store) = match &self.postgres_url {
            Some(url) => {
                let lines = format!("backend = \"postgres\"\nurl = \"{url}\"\npool_size = 8\nclaim_lease_ms = 3000\n");
                if self.extra_config.contains("[store]\n") {
                    (
                        self.extra_config
                            .replacen("[store]\n", &format!("[store]\n{lines}"), 1),
                        String::new(),
                    )
                } else {
                    (self.extra_config.clone(), format!("[store]\n{lines}"))
                }
            }
            None => (self.extra_config.clone(), String::new()),
        };
        // Fast mail retries, into the test's own `[mail]` table when it has one.
        let (extra, mail) = if extra.contains("[mail]\n") {
            (
                extra.replacen("[mail]\n", "[mail]\nretry_base_ms = 50\n", 1),
                String::new(),
            )
        } else {
            (extra, "[mail]\nretry_base_ms = 50\n".to_string())
        };
        std::fs::write(
            &config,
            format!("public_url = \"http://admind.test\"\n{mail}{auth}{extra}\n{store}"),
        )
        .expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_admind"));
        if let Some(limit) = self.options.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
            unsafe {
                command.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let (log_level, stderr) = if self.options.log_to_file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("log file");
            ("info", Stdio::from(file))
        } else {
            ("warn", Stdio::inherit())
        };
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--mail-dir")
            .arg(self.mail_dir())
            .arg("--scripts-dir")
            .arg(self.scripts_dir())
            .env("ADMIND_LOG", log_level)
            .envs(
                self.options
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn admind");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("admind listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        self.base = addr;
        self.operator = std::fs::read_to_string(self.data_dir().join("operator.token"))
            .expect("operator token file")
            .trim()
            .to_string();
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        let pid = c.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let mut c = c;
        c.wait().expect("wait")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_server_error() {
            panic!("{path} answered {status}: {body}");
        }
        Answer {
            status,
            body,
            headers,
        }
    }

    /// A request with a body sent as is (`application/scim+json`): the
    /// status and the text answered.
    pub async fn http_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &str,
    ) -> (StatusCode, String) {
        let res = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        assert!(
            !status.is_server_error(),
            "{path} answered {status}: {text}"
        );
        (status, text)
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Every mail delivered so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        read_mails(&self.mail_dir())
    }

    /// The value of one series of `/metrics` (its name with its labels,
    /// as the text writes them), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics", &self.operator).await.body;
        text.as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (30 s at most: a failure guard) until `series` reaches `at_least`.
    pub async fn wait_metric(&self, series: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(series).await;
            if value >= at_least {
                return;
            }
            assert!(Instant::now() < deadline, "{series} stayed at {value}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the policy `name` (a script file name) is loaded: the
    /// watcher loads a new file a moment after it appears.
    pub async fn wait_policy_loaded(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = self.get("/v1/policies", &self.operator).await.body;
            let loaded = list["items"].as_array().is_some_and(|items| {
                items.iter().any(|p| {
                    p["name"] == name && p["version"].as_str().is_some_and(|v| !v.is_empty())
                })
            });
            if loaded {
                return;
            }
            assert!(Instant::now() < deadline, "{name} never loaded: {list}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `n`th mail (1-based) to `to` whose subject contains `subject`.
    pub async fn wait_mail(&self, to: &str, subject: &str, n: usize) -> Mail {
        // Generous: CI machines may be loaded; a mail normally lands in ms.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| m.to.eq_ignore_ascii_case(to) && m.subject.contains(subject))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no mail #{n} to {to} about {subject:?}; have: {:?}",
                    self.mails()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates an account; returns (account id, owner id).
    pub async fn create_account(
        &self,
        name: &str,
        owner_email: &str,
        seats: u32,
    ) -> (String, String) {
        let a = self
            .post(
                "/v1/accounts",
                Some(&self.operator),
                json!({"name": name, "owner": {"name": "Owner", "email": owner_email}, "support_seats": seats}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        (
            a.body["id"].as_str().unwrap().to_string(),
            a.body["owner_id"].as_str().unwrap().to_string(),
        )
    }

    /// Sets a password from the newest password-set mail to `email`, then signs in.
    pub async fn activate(&self, account: &str, email: &str) -> String {
        let mail = self.wait_mail(email, "Set your password", 1).await;
        let r = self
            .post(
                "/v1/password-resets/confirm",
                None,
                json!({"token": mail.token(), "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        self.sign_in(account, email, PASSWORD).await
    }

    pub async fn sign_in(&self, account: &str, email: &str, password: &str) -> String {
        let r = self
            .post(
                &format!("/v1/accounts/{account}/sessions"),
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "sign-in of {email}: {:?}",
            r.body
        );
        r.body["token"].as_str().unwrap().to_string()
    }

    /// Adds a member as `by`; returns the new user's id.
    pub async fn add_member(&self, by: &str, account: &str, email: &str, role: &str) -> String {
        let r = self
            .post(
                &format!("/v1/accounts/{account}/members"),
                Some(by),
                json!({"name": email.split('@').next().unwrap(), "email": email, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Every member of an account, following the pages.
    pub async fn all_members(&self, a: &str, token: &str) -> Vec<Value> {
        self.all_pages(&format!("/v1/accounts/{a}/members"), token)
            .await
    }

    /// Every entry of an account's audit log, following `next`.
    pub async fn all_audit(&self, a: &str, token: &str) -> Vec<Value> {
        self.all_pages(&format!("/v1/accounts/{a}/audit"), token)
            .await
    }

    /// Every item of a paged list, following `next`.
    pub async fn all_pages(&self, path: &str, token: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let q = after
                .as_ref()
                .map(|x| format!("&after={x}"))
                .unwrap_or_default();
            let page = self.get(&format!("{path}?limit=200{q}"), token).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            out.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => return out,
            }
        }
    }

    /// A new account with a signed-in owner: (account, owner id, owner token).
    /// An account's audited policy calls by `actor` as (seq, cause) and its
    /// successful transfers' seqs, both in commit order, read as `token`.
    pub async fn policy_calls_and_transfers(
        &self,
        account: &str,
        token: &str,
        actor: &str,
    ) -> (Vec<(u64, u64)>, Vec<u64>) {
        let items = self
            .get(&format!("/v1/accounts/{account}/audit?limit=200"), token)
            .await
            .body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let seq = |e: &Value| e["seq"].as_u64().unwrap_or_default();
        let mut calls: Vec<(u64, u64)> = items
            .iter()
            .filter(|e| e["action"] == "policy.call" && e["actor"] == actor)
            .map(|e| (seq(e), e["cause"].as_u64().unwrap_or_default()))
            .collect();
        let mut transfers: Vec<u64> = items
            .iter()
            .filter(|e| e["action"] == "owner.transfer" && e["outcome"] == "ok")
            .map(seq)
            .collect();
        calls.sort();
        transfers.sort();
        (calls, transfers)
    }

    pub async fn account_with_owner(&self, seats: u32) -> (String, String, String) {
        let (a, o) = self.create_account("Acme", "owner@acme.test", seats).await;
        let t = self.activate(&a, "owner@acme.test").await;
        (a, o, t)
    }

    /// A signed-in member: (user id, token).
    pub async fn member(
        &self,
        by: &str,
        account: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let id = self.add_member(by, account, email, role).await;
        let token = self.activate(account, email).await;
        (id, token)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mail {
    /// The token of the link in the mail.
    pub fn token(&self) -> String {
        let start = self.body.find("token=").expect("a token link in the mail") + "token=".len();
        self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

pub fn read_mails(dir: &Path) -> Vec<Mail> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(_) => return Vec::new(),
    };
    names.sort();
    names
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let (head, body) = text
                .split_once("\r\n\r\n")
                .or_else(|| text.split_once("\n\n"))?;
            // Folded lines joined, encoded words (RFC 2047) decoded: the
            // header as the recipient's mail client shows it.
            let unfolded = head.replace("\r\n ", " ").replace("\n ", " ");
            let header = |name: &str| {
                decode_encoded_words(
                    unfolded
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .unwrap_or("")
                        .trim(),
                )
            };
            let body =
                if header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable") {
                    decode_quoted_printable(body)
                } else {
                    body.to_string()
                };
            Some(Mail {
                file: p.file_name()?.to_string_lossy().into_owned(),
                to: header("To"),
                subject: header("Subject"),
                body: body.replace("\r\n", "\n"),
            })
        })
        .collect()
}

/// `=?utf-8?b?…?=` words of a header in plain text (the space between two
/// encoded words is not part of the text).
pub fn decode_encoded_words(value: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let Some(end) = rest[start + 2..].find("?=").map(|e| start + 2 + e) else {
            break;
        };
        let word = &rest[start + 2..end];
        let mut parts = word.splitn(3, '?');
        let (_, encoding, text) = (parts.next(), parts.next(), parts.next());
        let decoded = match (encoding.map(str::to_ascii_lowercase).as_deref(), text) {
            (Some("b"), Some(t)) => base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
            (Some("q"), Some(t)) => Some(decode_quoted_printable(&t.replace('_', " "))),
            _ => None,
        };
        let Some(decoded) = decoded else { break };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&decoded);
        last_was_word = true;
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What a mail client does with a quoted-printable body (RFC 2045 6.7).
pub fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The record lines of an export (header and trailer apart), sorted.
pub fn export_records(file: &Path) -> (Value, Vec<Value>, Value) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trailer = lines.pop().unwrap();
    let header = lines.remove(0);
    lines.sort_by_key(|v| v.to_string());
    (header, lines, trailer)
}

/// The fields of `/proc/<pid>/stat` after the command's name (which is in
/// parentheses and may hold spaces): the state is `[0]`, the parent's id
/// `[1]`, user and system CPU ticks `[11]` and `[12]`. `None` once the
/// process is gone.
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}
