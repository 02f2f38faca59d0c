//! Crash campaign: mixed writes (owner transfers, member changes, address
//! changes, webhooks) from many clients, SIGKILL at random moments, restart
//! on the same data dir, and after every restart: every acknowledged write
//! is there and R01, R11, R15 hold. At the end every mail has been
//! delivered once, and every outbound event delivered, none lost; one is
//! delivered again only when needed: its first copy's sender was killed
//! (or PostgreSQL stopped) before it could record the delivery.
//!
//! Rounds: `CRASH_CAMPAIGN_ROUNDS` (5 by default, as in CI). The campaign
//! command: `CRASH_CAMPAIGN_ROUNDS=100 cargo test --release --test crash_campaign -- --nocapture`.
//!
//! On PostgreSQL (`TEST_STORE=postgres`) with `CRASH_CAMPAIGN_REPLICAS=2`,
//! two replicas share the database, the clients are split between them
//! (both write to the same accounts), and each round SIGKILLs one replica
//! at random while the other serves on. With `TEST_POSTGRES_DIR` (the
//! throwaway cluster's directory) the campaign then stops PostgreSQL
//! itself: writes fail cleanly with 503 meanwhile and succeed again once
//! it is back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Daemon;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SOURCE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SUB_SECRET: &str = "whsec_dGhlIHN1YnNjcmliZXIncyBvd24gc2VjcmV0IQ==";
const TRANSFER_ACCOUNTS: usize = 4;

#[derive(Default)]
struct Acked {
    members: Vec<(String, String)>,
    emails: Vec<String>,
    webhooks: Vec<String>,
    /// Per transfer account: (owner after the last acknowledged transfer,
    /// the target of a transfer in flight when the daemon died).
    owners: HashMap<String, (String, Option<String>)>,
    transfers_acked: usize,
}

struct TransferAccount {
    id: String,
    users: [(String, String); 2],
}

/// One webhook the receiver got: its `webhook-id`, when it came, and the
/// process that sent it (`None` when its socket could not be traced).
struct Receipt {
    id: String,
    at: Instant,
    sender: Option<u32>,
}

type Receipts = Arc<Mutex<Vec<Receipt>>>;

/// The subscriber's receiver. `senders` are the daemons' current process
/// ids, among which each request's sender is looked for.
async fn owner_receiver(senders: Arc<Mutex<Vec<u32>>>) -> (String, Receipts) {
    let got: Receipts = Arc::default();
    let state = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                std::net::SocketAddr,
            >,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let (state, senders) = (state.clone(), senders.clone());
                async move {
                    let at = Instant::now();
                    standardwebhooks::Webhook::new(SUB_SECRET)
                        .unwrap()
                        .verify(&body, &headers)
                        .expect("signed by admind");
                    let id = headers["webhook-id"].to_str().unwrap().to_string();
                    let _event: Value = serde_json::from_slice(&body).expect("a JSON event");
                    // Traced before answering, while the sender waits for
                    // the answer (its socket still open).
                    let pids = senders.lock().unwrap().clone();
                    let sender = sender_of(peer.port(), local.port(), &pids);
                    state.lock().unwrap().push(Receipt { id, at, sender });
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let url = format!("http://{local}/hook");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (url, got)
}

/// Which of `pids` holds the client end of the loopback connection from
/// `peer_port` to `our_port`: its socket's inode from `/proc/net/tcp`,
/// then the process whose descriptors include it.
fn sender_of(peer_port: u16, our_port: u16, pids: &[u32]) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && port_of(f[1]) == Some(peer_port) && port_of(f[2]) == Some(our_port))
            .then(|| f[9].to_string())
    })?;
    let wanted = format!("socket:[{inode}]");
    let holds = |pid: &u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(&wanted)))
    };
    // A daemon restarted a moment ago delivers before the campaign has
    // noted its new process id: then any child of this test may be it.
    pids.iter()
        .copied()
        .find(holds)
        .or_else(|| children().into_iter().find(holds))
}

/// The processes this test started (their parent is this process).
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| common::proc_stat(*pid).is_some_and(|fields| fields.get(1) == Some(&me)))
        .collect()
}

/// How long before the receiver's handler starts a request may have been
/// sent: the handler runs on the test's busy runtime, so a sender killed
/// just after it sent the request can be dead before the receipt is timed.
const RECEIPT_LAG: Duration = Duration::from_millis(500);

/// An outage: a replica killed (its process id; starts and ends at once)
/// or PostgreSQL stopped (`None`, from the stop until writes went through
/// again).
type Outage = (Option<u32>, Instant, Instant);

/// Received more than once, and which of those no outage explains: the
/// first copy's sender (or PostgreSQL, `None`) was down at some time after
/// it sent the copy and before the second arrived. Only then could the
/// sender not have recorded the delivery, and only then is sending it
/// again needed.
fn duplicates(received: &[Receipt], outages: &[Outage]) -> (usize, Vec<String>) {
    let mut first: HashMap<&str, &Receipt> = HashMap::new();
    let (mut total, mut without_need) = (0, Vec::new());
    // In the order they came (two handlers may push out of it).
    let mut in_order: Vec<&Receipt> = received.iter().collect();
    in_order.sort_by_key(|r| r.at);
    for r in in_order {
        let Some(f) = first.get(r.id.as_str()) else {
            first.insert(&r.id, r);
            continue;
        };
        total += 1;
        let explained = outages.iter().any(|(who, from, to)| {
            (*to + RECEIPT_LAG >= f.at && *from <= r.at)
                && (who.is_none() || f.sender.is_none() || *who == f.sender)
        });
        if !explained {
            without_need.push(format!(
                "{} (first from {:?} {:?} before the second, from {:?})",
                r.id,
                f.sender,
                r.at - f.at,
                r.sender
            ));
        }
    }
    (total, without_need)
}

fn sign(id: &str, body: &Value) -> (String, i64, Vec<u8>) {
    let body = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let sig = standardwebhooks::Webhook::new(SOURCE_SECRET)
        .unwrap()
        .sign(id, ts, &body)
        .unwrap();
    (sig, ts, body)
}

async fn send_webhook(http: &reqwest::Client, base: &str, id: &str) -> Option<Value> {
    let (sig, ts, body) = sign(id, &json!({"type": "crm.ping", "data": {"n": id}}));
    let res = http
        .post(format!("{base}/v1/webhooks/crm"))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .ok()?;
    if res.status() != StatusCode::OK {
        return None;
    }
    res.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r01_r11_r15_crash_campaign() {
    let rounds: usize = std::env::var("CRASH_CAMPAIGN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let replicas: usize = std::env::var("CRASH_CAMPAIGN_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 4);
    let senders: Arc<Mutex<Vec<u32>>> = Arc::default();
    // When each replica was killed (its process id) or PostgreSQL stopped
    // (`None`): what may explain an event received twice.
    let mut outages: Vec<Outage> = Vec::new();
    let (url, received) = owner_receiver(senders.clone()).await;
    let config = format!(
        "[[webhooks.sources]]\nname = \"crm\"\nsecrets = [\"{SOURCE_SECRET}\"]\n\
         [[subscribers]]\nname = \"audit-sink\"\nurl = \"{url}\"\nsecret = \"{SUB_SECRET}\"\nevents = [\"owner.changed\"]\n\
         [outbound]\nretry_schedule_ms = [0, 50, 50, 50, 50, 50, 50, 50, 50, 50]\n"
    );
    let first = Daemon::start_with(&config);
    let mut ds = vec![];
    for _ in 1..replicas {
        ds.push(first.replica(&config));
    }
    ds.insert(0, first);
    *senders.lock().unwrap() = ds.iter().map(Daemon::pid).collect();
    // A shared account for member and address changes, and accounts whose
    // ownership goes back and forth.
    let (m, _, mt) = ds[0].account_with_owner(100_000).await;
    let m_owner = ds[0]
        .get(&format!("/v1/accounts/{m}/owner"), &mt)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut transfer_accounts = Vec::new();
    for k in 0..TRANSFER_ACCOUNTS {
        let (a, o) = ds[0]
            .create_account(&format!("T{k}"), &format!("o{k}@t.test"), 5)
            .await;
        let ot = ds[0].activate(&a, &format!("o{k}@t.test")).await;
        let (b, bt) = ds[0]
            .member(&ot, &a, &format!("b{k}@t.test"), "admin")
            .await;
        transfer_accounts.push(TransferAccount {
            id: a,
            users: [(o, ot), (b, bt)],
        });
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    for t in &transfer_accounts {
        acked
            .lock()
            .unwrap()
            .owners
            .insert(t.id.clone(), (t.users[0].0.clone(), None));
    }
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    for round in 0..rounds {
        let mut clients = Vec::new();
        let stop = Arc::new(AtomicBool::new(false));
        let on = |n: usize| &ds[(n + round) % replicas];
        // Owner transfers, one client per account (so its last ack is the owner).
        for (k, t) in transfer_accounts.iter().enumerate() {
            let (http, base, acked, stop) = (
                on(k).http.clone(),
                on(k).base.clone(),
                acked.clone(),
                stop.clone(),
            );
            let (a, users) = (t.id.clone(), t.users.clone());
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let current = acked.lock().unwrap().owners[&a].0.clone();
                    let (from, to) = if current == users[0].0 {
                        (&users[0], &users[1])
                    } else {
                        (&users[1], &users[0])
                    };
                    acked.lock().unwrap().owners.get_mut(&a).unwrap().1 = Some(to.0.clone());
                    let res = http
                        .put(format!("{base}/v1/accounts/{a}/owner"))
                        .bearer_auth(&from.1)
                        .json(&json!({"user_id": to.0}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let mut g = acked.lock().unwrap();
                            *g.owners.get_mut(&a).unwrap() = (to.0.clone(), None);
                            g.transfers_acked += 1;
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Member adds (agents take seats, end users do not).
        for w in 0..2 {
            let (http, base, m, mt, acked, stop) = (
                on(w).http.clone(),
                on(w).base.clone(),
                m.clone(),
                mt.clone(),
                acked.clone(),
                stop.clone(),
            );
            clients.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let email = format!("m{round}-{w}-{i}@m.test");
                    let role = if i % 2 == 0 { "agent" } else { "end_user" };
                    let res = http
                        .post(format!("{base}/v1/accounts/{m}/members"))
                        .bearer_auth(&mt)
                        .json(&json!({"name": "M", "email": email, "role": role}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            let id = r
                                .json::<Value>()
                                .await
                                .map(|b| b["id"].as_str().unwrap_or_default().to_string())
                                .unwrap_or_default();
                            acked.lock().unwrap().members.push((id, email));
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Address adds on the owner's own profile (at most 10 per profile).
        {
            let (http, base, m, mt, owner, acked) = (
                on(0).http.clone(),
                on(0).base.clone(),
                m.clone(),
                mt.clone(),
                m_owner.clone(),
                acked.clone(),
            );
            clients.push(tokio::spawn(async move {
                if acked.lock().unwrap().emails.len() >= 8 {
                    return;
                }
                let address = format!("alias{round}@m.test");
                let res = http
                    .post(format!("{base}/v1/accounts/{m}/members/{owner}/emails"))
                    .bearer_auth(&mt)
                    .json(&json!({"address": address}))
                    .send()
                    .await;
                if let Ok(r) = res {
                    if r.status() == StatusCode::CREATED {
                        acked.lock().unwrap().emails.push(address);
                    }
                }
            }));
        }
        // Webhooks with unique ids.
        {
            let (http, base, acked, stop) = (
                on(1).http.clone(),
                on(1).base.clone(),
                acked.clone(),
                stop.clone(),
            );
            clients.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("wh-{round}-{i}");
                    match send_webhook(&http, &base, &id).await {
                        Some(answer) if answer["duplicate"] == false => {
                            acked.lock().unwrap().webhooks.push(id)
                        }
                        _ => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        // One replica dies; the others serve on until the round ends.
        let victim = rng.gen_range(0..replicas);
        let killed = Instant::now();
        outages.push((Some(ds[victim].pid()), killed, killed));
        ds[victim].kill();
        if replicas > 1 {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..300))).await;
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }
        ds[victim].restart();
        *senders.lock().unwrap() = ds.iter().map(Daemon::pid).collect();
        let d = &ds[round % replicas];
        check(d, &m, &mt, &m_owner, &transfer_accounts, &acked).await;
        // In-flight transfers are resolved by what the restart shows.
        for t in &transfer_accounts {
            let owner = d
                .get(&format!("/v1/accounts/{}/owner", t.id), &t.users[0].1)
                .await
                .body["id"]
                .as_str()
                .unwrap()
                .to_string();
            *acked.lock().unwrap().owners.get_mut(&t.id).unwrap() = (owner, None);
        }
        let (members, transfers, webhooks) = {
            let g = acked.lock().unwrap();
            (g.members.len(), g.transfers_acked, g.webhooks.len())
        };
        eprintln!("round {}/{rounds}: ok ({members} members, {transfers} transfers, {webhooks} webhooks acknowledged so far; replica {victim} of {replicas} killed)", round + 1);
    }
    let d = &ds[0];
    if let Ok(cluster) = std::env::var("TEST_POSTGRES_DIR") {
        if replicas > 1 {
            let stopped = Instant::now();
            postgres_restart(d, &m, &mt, &cluster).await;
            outages.push((None, stopped, Instant::now()));
        }
    }
    // Redelivered webhooks have no second effect.
    let webhooks = acked.lock().unwrap().webhooks.clone();
    for id in webhooks.iter().take(20) {
        let answer = send_webhook(&d.http, &d.base, id).await.expect("200");
        assert_eq!(answer["duplicate"], true, "{id}");
    }
    // Every mail once: one password-set mail per member present, none for
    // a member whose creation never committed.
    let members = d.all_members(&m, &mt).await;
    let expected: HashSet<String> = members
        .iter()
        .map(|u| u["primary_email"].as_str().unwrap().to_lowercase())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for mail in d
            .mails()
            .into_iter()
            .filter(|x| x.subject.starts_with("Set your password") && x.to.ends_with("@m.test"))
        {
            *counts.entry(mail.to.to_lowercase()).or_default() += 1;
        }
        assert!(
            counts.values().all(|n| *n == 1),
            "a mail was sent twice: {counts:?}"
        );
        assert!(
            counts.keys().all(|k| expected.contains(k)),
            "mail for a change that never committed"
        );
        if counts.len() + 1 == expected.len() {
            break; // the owner's own set-password mail is not an @m.test member mail
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} mails delivered",
            counts.len(),
            expected.len() - 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every outbound event delivered, none lost: one owner.changed per
    // committed transfer, each id received (receivers dedupe by id).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = d.get("/v1/deliveries", &d.operator).await.body;
        let items = list["items"].as_array().unwrap().clone();
        let pending = items.iter().filter(|i| i["state"] == "pending").count();
        if pending == 0 {
            assert!(
                items.iter().all(|i| i["state"] == "delivered"),
                "a delivery failed: {list}"
            );
            let delivered: HashSet<String> = items
                .iter()
                .map(|i| i["msg_id"].as_str().unwrap().to_string())
                .collect();
            let got: HashSet<String> = received
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.id.clone())
                .collect();
            assert!(delivered.is_subset(&got), "an outbound event was lost");
            let transfers_acked = acked.lock().unwrap().transfers_acked;
            let receipts = received.lock().unwrap().len();
            let (twice, without_need) = duplicates(&received.lock().unwrap(), &outages);
            let traced = received
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.sender.is_some())
                .count();
            eprintln!(
                "outbound: {} events, {receipts} receipts ({traced} traced to their sender), {twice} duplicates, {} of them without need",
                got.len(),
                without_need.len()
            );
            // At least once: a sender killed (or cut off from its
            // database) after the receiver had the event and before it
            // recorded the delivery sends it again. Nothing else may.
            assert!(
                without_need.is_empty(),
                "delivered again with no outage to explain it: {without_need:?}"
            );
            assert!(
                got.len() >= transfers_acked,
                "{} events for {transfers_acked} acknowledged transfers",
                got.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} deliveries still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("crash campaign: {rounds} rounds in {:?}", started.elapsed());
}

/// Stops PostgreSQL under a running daemon: a write then fails cleanly
/// (503 with a problem code, no hang past the request timeout) and, once
/// the server is back, writes succeed again without a daemon restart.
async fn postgres_restart(d: &Daemon, m: &str, mt: &str, cluster: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/cluster.sh");
    let run = |what: &str| {
        let ok = std::process::Command::new("bash")
            .args([script, what, cluster])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cluster.sh {what}");
    };
    // Straight through the client: the harness refuses any 5xx.
    let add = |n: usize| async move {
        let r = d
            .http
            .post(format!("{}/v1/accounts/{m}/members", d.base))
            .bearer_auth(mt)
            .json(&json!({"name": "P", "email": format!("pg-restart-{n}@m.test"), "role": "end_user"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    run("pause");
    let (status, body) = add(0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "store_unavailable", "{body}");
    run("resume");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 1;
    loop {
        let (status, body) = add(n).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "writes never resumed: {body}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("PostgreSQL restart: writes failed with 503 while it was down and resumed after");
}

async fn check(
    d: &Daemon,
    m: &str,
    mt: &str,
    m_owner: &str,
    transfer_accounts: &[TransferAccount],
    acked: &Mutex<Acked>,
) {
    let members = d.all_members(m, mt).await;
    let ids: HashSet<&str> = members.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let (acked_members, acked_emails, owners) = {
        let g = acked.lock().unwrap();
        (g.members.clone(), g.emails.clone(), g.owners.clone())
    };
    for (id, email) in &acked_members {
        assert!(
            ids.contains(id.as_str()),
            "acknowledged member {email} lost"
        );
    }
    // R01 and R11 on the shared account.
    assert_eq!(
        members.iter().filter(|u| u["is_owner"] == true).count(),
        1,
        "R01"
    );
    let holders = members.iter().filter(|u| u["role"] != "end_user").count() as u64;
    let acc = d.get(&format!("/v1/accounts/{m}"), mt).await.body;
    assert_eq!(
        acc["support"]["seats_used"].as_u64().unwrap(),
        holders,
        "R11 seats used"
    );
    assert!(
        holders <= acc["support"]["seats_total"].as_u64().unwrap(),
        "R11 never exceeds"
    );
    // R15 and the acknowledged addresses.
    let emails = d
        .get(&format!("/v1/accounts/{m}/members/{m_owner}/emails"), mt)
        .await
        .body;
    let items = emails["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|e| e["primary"] == true).count(),
        1,
        "R15"
    );
    for a in &acked_emails {
        assert!(
            items.iter().any(|e| e["address"] == a.as_str()),
            "acknowledged address {a} lost"
        );
    }
    // R01 on the transfer accounts: the owner is the last acknowledged one,
    // or the target of the transfer in flight at the kill.
    for t in transfer_accounts {
        let owner = d
            .get(&format!("/v1/accounts/{}/owner", t.id), &t.users[0].1)
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (last, in_flight) = &owners[&t.id];
        assert!(
            &owner == last || in_flight.as_ref() == Some(&owner),
            "R01: owner {owner}, acknowledged {last}, in flight {in_flight:?}"
        );
        let list = d
            .get(&format!("/v1/accounts/{}/members", t.id), &t.users[0].1)
            .await
            .body;
        assert_eq!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["is_owner"] == true)
                .count(),
            1,
            "R01"
        );
    }
}
