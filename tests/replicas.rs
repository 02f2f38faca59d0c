//! Two replicas on one PostgreSQL database: the rules hold with commands
//! on the same account split between them, a webhook delivered to both at
//! once has one effect, limits and sign-outs hold across them, and each
//! replica's policy versions are visible from the other.
//!
//! Ignored by a plain `cargo test` (no database there); `tests/run.sh` runs
//! them with `TEST_STORE=postgres`. The SIGKILL campaign across replicas is
//! `tests/crash_campaign.rs` with `CRASH_CAMPAIGN_REPLICAS=2`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const NEEDS: &str = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres";
const SOURCE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Two replicas on one fresh database.
fn pair(extra_config: &str) -> (Daemon, Daemon) {
    assert!(common::on_postgres(), "{NEEDS}");
    let a = Daemon::start_with(extra_config);
    let b = a.replica(extra_config);
    (a, b)
}

async fn owner_of(d: &Daemon, a: &str, t: &str) -> String {
    d.get(&format!("/v1/accounts/{a}/owner"), t).await.body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn r01_two_replicas_racing_owner_transfers_leave_exactly_one_owner() {
    let (ra, rb) = pair("");
    let (a, owner, t) = ra.account_with_owner(5).await;
    let mut people = vec![(owner, t)];
    for n in 0..2 {
        let (id, token) = ra
            .member(&people[0].1, &a, &format!("admin{n}@acme.test"), "admin")
            .await;
        people.push((id, token));
    }
    for round in 0..12 {
        let current = owner_of(&rb, &a, &people[0].1).await;
        let from = people
            .iter()
            .find(|(id, _)| *id == current)
            .unwrap()
            .1
            .clone();
        let others: Vec<String> = people
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| *id != current)
            .collect();
        // The owner hands the account to two people at once, one request
        // on each replica: one wins, the other finds it no longer owns.
        let path = format!("/v1/accounts/{a}/owner");
        let (x, y) = tokio::join!(
            ra.put(&path, &from, json!({"user_id": others[0]})),
            rb.put(&path, &from, json!({"user_id": others[1]})),
        );
        let won: Vec<&common::Answer> = [&x, &y]
            .into_iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one transfer wins: {} {} / {} {}",
            x.status,
            x.body,
            y.status,
            y.body
        );
        for r in [&x, &y] {
            assert!(r.status.as_u16() < 500, "{} {}", r.status, r.body);
        }
        let winner = if x.status == StatusCode::OK {
            &others[0]
        } else {
            &others[1]
        };
        // Each replica reads through its cache, which forgets a change the
        // other made as soon as it hears of it (about a millisecond).
        for d in [&ra, &rb] {
            let owner_path = format!("/v1/accounts/{a}/owner");
            read_until(d, &owner_path, &people[0].1, |r| {
                r.body["id"] == winner.as_str()
            })
            .await;
            let owners: Vec<String> = d
                .all_members(&a, &people[0].1)
                .await
                .into_iter()
                .filter(|u| u["is_owner"] == true)
                .map(|u| u["id"].as_str().unwrap_or_default().to_string())
                .collect();
            assert_eq!(
                owners,
                std::slice::from_ref(winner),
                "R01 on every replica: the winner alone"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn r11_seats_are_never_exceeded_by_additions_split_between_replicas() {
    let (ra, rb) = pair("");
    // Five seats, the owner holds one: four agents fit.
    let (a, _owner, t) = ra.account_with_owner(5).await;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let (http, base) = if n % 2 == 0 {
            (ra.http.clone(), ra.base.clone())
        } else {
            (rb.http.clone(), rb.base.clone())
        };
        let (a, t) = (a.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/accounts/{a}/members"))
                .bearer_auth(&t)
                .json(
                    &json!({"name": "A", "email": format!("agent{n}@acme.test"), "role": "agent"}),
                )
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut added = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => added += 1,
            _ => assert_eq!(body["code"], "agent_seat_exhausted", "{status} {body}"),
        }
    }
    assert_eq!(added, 4, "R11: exactly the free seats were taken");
    for d in [&ra, &rb] {
        // As soon as this replica has heard of the other's last commit.
        read_until(d, &format!("/v1/accounts/{a}"), &t, |r| {
            r.body["support"]["seats_used"] == 5
        })
        .await;
        let holders = d
            .all_members(&a, &t)
            .await
            .into_iter()
            .filter(|u| u["role"] != "end_user")
            .count();
        assert_eq!(holders, 5, "R11: one seat per holder");
    }
}

fn signed_webhook(id: &str) -> (String, i64, Vec<u8>) {
    let body = serde_json::to_vec(&json!({"type": "crm.ping", "data": {"n": id}})).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let sig = standardwebhooks::Webhook::new(SOURCE_SECRET)
        .unwrap()
        .sign(id, ts, &body)
        .unwrap();
    (sig, ts, body)
}

async fn deliver(d: &Daemon, id: &str, signed: &(String, i64, Vec<u8>)) -> Value {
    let r = d
        .http
        .post(format!("{}/v1/webhooks/crm", d.base))
        .header("webhook-id", id)
        .header("webhook-timestamp", signed.1.to_string())
        .header("webhook-signature", &signed.0)
        .body(signed.2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn a_webhook_delivered_to_both_replicas_at_once_has_one_effect() {
    let config = format!("[[webhooks.sources]]\nname = \"crm\"\nsecrets = [\"{SOURCE_SECRET}\"]\n");
    let (ra, rb) = pair(&config);
    for n in 0..20 {
        let id = format!("msg_both_{n}");
        let signed = signed_webhook(&id);
        let (x, y) = tokio::join!(deliver(&ra, &id, &signed), deliver(&rb, &id, &signed));
        let firsts = [&x, &y]
            .iter()
            .filter(|answer| answer["duplicate"] == false)
            .count();
        assert_eq!(firsts, 1, "{id}: {x} / {y}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn r16_sign_in_attempt_limits_hold_across_replicas() {
    let auth = "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 4\nattempts_per_minute_per_ip = 100000\n";
    let (ra, rb) = pair(auth);
    let (a, _owner, _t) = ra.account_with_owner(3).await;
    let path = format!("/v1/accounts/{a}/sessions");
    // The shared count has one-minute windows: a round that straddles one
    // is tried again with an address of its own (addresses of no profile
    // each have their own budget; the owner's sign-in while setting up
    // counted against the owner's).
    for round in 0..3 {
        let nobody = format!("nobody{round}@acme.test");
        let window = chrono::Utc::now().timestamp().div_euclid(60);
        let wrong = json!({"email": nobody, "password": "not the password"});
        // Two wrong attempts on each replica: four in all, the budget.
        for d in [&ra, &rb, &ra, &rb] {
            let r = d.post(&path, None, wrong.clone()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        }
        // Either replica now refuses: spreading the attempts over replicas
        // gained nothing.
        let mut answers = Vec::new();
        for d in [&ra, &rb] {
            let r = d
                .post(&path, None, json!({"email": nobody, "password": PASSWORD}))
                .await;
            answers.push(r.status);
        }
        if chrono::Utc::now().timestamp().div_euclid(60) != window {
            continue;
        }
        assert_eq!(answers, [StatusCode::TOO_MANY_REQUESTS; 2]);
        return;
    }
    panic!("three rounds in a row straddled a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn r17_failed_attempts_from_one_network_address_are_counted_across_replicas() {
    // Behind a trusted proxy, each round comes from a network address of
    // its own (X-Forwarded-For), so a round that straddles a minute (the
    // shared count's window) is simply tried again with a fresh one.
    let auth =
        "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 1000\n\
                attempts_per_minute_per_ip = 4\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    let (ra, rb) = pair(auth);
    let (a, _owner, _t) = ra.account_with_owner(3).await;
    let path = format!("/v1/accounts/{a}/sessions");
    let attempt = |d: &Daemon, from: String, body: Value| {
        let request = d
            .http
            .post(format!("{}{}", d.base, path))
            .header("x-forwarded-for", from)
            .json(&body);
        async move { request.send().await.unwrap().status() }
    };
    for round in 1..=3 {
        let from = format!("203.0.113.{round}");
        let window = chrono::Utc::now().timestamp().div_euclid(60);
        // Two failures on each replica: four in all, the budget.
        for (n, d) in [&ra, &rb, &ra, &rb].into_iter().enumerate() {
            let wrong = json!({"email": format!("guess{n}@acme.test"), "password": "not it"});
            assert_eq!(
                attempt(d, from.clone(), wrong).await,
                StatusCode::UNAUTHORIZED
            );
        }
        // Either replica now refuses that address, right password or not.
        let right = json!({"email": "owner@acme.test", "password": PASSWORD});
        let answers = [
            attempt(&ra, from.clone(), right.clone()).await,
            attempt(&rb, from.clone(), right.clone()).await,
        ];
        if chrono::Utc::now().timestamp().div_euclid(60) != window {
            continue;
        }
        assert_eq!(answers, [StatusCode::TOO_MANY_REQUESTS; 2]);
        // Another address of the same office is not held back.
        assert_eq!(
            attempt(&rb, "203.0.113.200".into(), right).await,
            StatusCode::CREATED
        );
        return;
    }
    panic!("three rounds in a row straddled a minute");
}

/// A cookie jar just big enough for the console's sign-in.
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (k, val) = v.split(';').next().unwrap().split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.0.remove(k);
            } else {
                self.0.insert(k.into(), val.into());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

async fn page(http: &reqwest::Client, jar: &mut Jar, url: String) -> (StatusCode, String) {
    let res = http
        .get(url)
        .header(reqwest::header::COOKIE, jar.header())
        .send()
        .await
        .unwrap();
    jar.keep(&res);
    (res.status(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn console_sessions_work_on_every_replica_and_a_sign_out_ends_them_on_all() {
    let (ra, rb) = pair("");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar = Jar(BTreeMap::new());
    let (_, html) = page(&http, &mut jar, format!("{}/support/sign-in", ra.base)).await;
    let res = http
        .post(format!("{}/support/sign-in", ra.base))
        .header(reqwest::header::COOKIE, jar.header())
        .form(&[("csrf", csrf_of(&html)), ("token", ra.operator.clone())])
        .send()
        .await
        .unwrap();
    jar.keep(&res);
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Signed in on A, served by B.
    let (status, html) = page(&http, &mut jar, format!("{}/support/accounts", rb.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Accounts</h1>"), "{html}");
    let cookie = jar.0["admind_session"].clone();
    // Signed out on B: A no longer takes the cookie either.
    let res = http
        .post(format!("{}/sign-out", rb.base))
        .header(reqwest::header::COOKIE, jar.header())
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.0.insert("admind_session".into(), cookie);
    let res = http
        .get(format!("{}/support/accounts", ra.base))
        .header(reqwest::header::COOKIE, jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()[reqwest::header::LOCATION],
        "/support/sign-in",
        "the replayed cookie is refused by the other replica"
    );
}

async fn policies(d: &Daemon) -> Value {
    d.get("/v1/policies", &d.operator).await.body
}

/// Waits until `check` holds for `GET /v1/policies` on `d`.
async fn wait_policies(d: &Daemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = policies(d).await;
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn every_replica_shows_the_policy_versions_of_all_and_flags_a_disagreement() {
    let (ra, rb) = pair("");
    let both = wait_policies(&rb, "both replicas live", |l| {
        l["replicas"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert_eq!(both["replicas_agree"], true, "{both}");
    assert_eq!(both["replicas"][0]["this"], true);
    // A new script on replica A only: the replicas now decide differently.
    ra.install_script("crm_events.rhai");
    let list = wait_policies(&rb, "the disagreement seen from B", |l| {
        l["replicas_agree"] == false
    })
    .await;
    let a_entry = list["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["this"] == false)
        .unwrap()
        .clone();
    assert_eq!(a_entry["agrees"], false);
    assert!(
        a_entry["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["policy"] == "script:crm_events.rhai"),
        "{a_entry}"
    );
    let metrics = rb
        .http
        .get(format!("{}/metrics", rb.base))
        .bearer_auth(&rb.operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut metrics = metrics;
    while !metrics.contains("admind_policy_replicas_disagreeing 1") {
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        metrics = rb
            .http
            .get(format!("{}/metrics", rb.base))
            .bearer_auth(&rb.operator)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    // The same script on B: they agree again.
    rb.install_script("crm_events.rhai");
    wait_policies(&ra, "agreement again", |l| l["replicas_agree"] == true).await;
}

/// Break-glass reaches every replica at once: a policy switched off on one
/// replica is off on the other by announcement (LISTEN/NOTIFY), not at the
/// next heartbeat — the heartbeat here is a minute, longer than the test's
/// guard, so only the announcement can carry it. Switched back on, the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn a_policy_switched_off_on_one_replica_is_off_on_the_other_at_once() {
    let config = "[store]\nheartbeat_ms = 60000\n";
    let (ra, rb) = pair(config);
    ra.install_script("owner_change_guard.rhai");
    rb.install_script("owner_change_guard.rhai");
    let name = "owner_change_guard.rhai";
    let listed_with = |off: bool| {
        move |l: &Value| {
            l["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|p| p["name"] == name && p["switched_off"].is_null() != off)
            })
        }
    };
    // Each replica loads its scripts directory on its own watcher: A must
    // know the policy before it can switch it off.
    wait_policies(&ra, "the script loaded on A", listed_with(false)).await;
    wait_policies(&rb, "the script loaded on B", listed_with(false)).await;
    for round in 0..2 {
        let r = ra
            .post(
                &format!("/v1/policies/{name}/disable"),
                Some(&ra.operator),
                json!({"reason": format!("incident {round}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // Well inside the 60 s heartbeat: only the announcement gets here.
        let started = Instant::now();
        wait_policies(&rb, "switched off on B", listed_with(true)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "round {round}");
        let r = ra
            .post(
                &format!("/v1/policies/{name}/enable"),
                Some(&ra.operator),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let started = Instant::now();
        wait_policies(&rb, "back on on B", listed_with(false)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "round {round}");
    }
}

/// An account whose owner hands it to an admin and back `transfers`
/// times, each transfer on the other replica than the one before (the
/// first on `ra`); returns the account and its first owner's token.
async fn transfers_alternating_between(
    ra: &Daemon,
    rb: &Daemon,
    transfers: usize,
) -> (String, String) {
    let (a, owner, ot) = ra.account_with_owner(5).await;
    let (b, bt) = ra.member(&ot, &a, "b@acme.test", "admin").await;
    for n in 0..transfers {
        let (replica, token, to) = match n % 2 {
            0 => (ra, &ot, &b),
            _ => (rb, &bt, &owner),
        };
        let r = replica
            .put(
                &format!("/v1/accounts/{a}/owner"),
                token,
                json!({"user_id": to}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "transfer {n}: {}", r.body);
    }
    (a, ot)
}

/// One account's after-hooks run in commit order whichever replica runs
/// them. Transfers alternate between the replicas; the policy is slow for
/// every other one, so a replica free to run the next event at once would
/// finish it first. Each call that acts is audited (`policy.call`, linked
/// to its transfer's entry): in the order they committed, their causes
/// must be the transfers' order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn after_hooks_of_one_account_run_in_commit_order_across_replicas() {
    let (ra, rb) = pair("[scripts]\ntimeout_ms = 20000\n");
    let probe = "order_probe.rhai";
    let source = "// hooks: after_owner_change\n// calls: notify\n\
        fn after_owner_change(event) {\n\
          if event.to.primary_email == \"b@acme.test\" { let i = 0; while i < 200000 { i += 1; } }\n\
          notify(event.to.primary_email, \"Owner\", \"in order\");\n\
        }\n";
    for d in [&ra, &rb] {
        d.write_script(probe, source);
        d.wait_policy_loaded(probe).await;
    }
    let transfers = 8;
    let (a, ot) = transfers_alternating_between(&ra, &rb, transfers).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (calls, transfers_seen) = loop {
        let (calls, transfers_seen) = ra
            .policy_calls_and_transfers(&a, &ot, "policy:order_probe.rhai")
            .await;
        if calls.len() >= transfers {
            break (calls, transfers_seen);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {transfers} calls",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let causes: Vec<u64> = calls.iter().map(|(_, cause)| *cause).collect();
    assert_eq!(
        causes, transfers_seen,
        "after-hooks in the order of their transfers (calls by commit: {calls:?})"
    );
}

const SUB_SECRET: &str = "whsec_dGhlIHN1YnNjcmliZXIncyBvd24gc2VjcmV0IQ==";

/// A receiver that answers 204 after `delay`, recording each arrival's
/// `webhook-id` when it arrives.
async fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_string();
                state.lock().unwrap().push(id);
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// An outbound delivery is sent once across replicas. A receiver slower
/// than the claim lease (3 s in the tests; it answers after 5 s) does not
/// make the other replica take the delivery over and send it again: the
/// replica sending it renews its claim while it waits (fails without the
/// renewal: every delivery arrived twice). A replica killed and restarted
/// once its deliveries settled sends none of them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn outbound_deliveries_are_sent_once_across_replicas_slow_receivers_and_a_restart() {
    let (url, got) = slow_receiver(Duration::from_secs(5)).await;
    let config = format!(
        "[[subscribers]]\nname = \"crm\"\nurl = \"{url}\"\nsecret = \"{SUB_SECRET}\"\nevents = [\"owner.changed\"]\n"
    );
    let (mut ra, rb) = pair(&config);
    let transfers = 4;
    let _ = transfers_alternating_between(&ra, &rb, transfers).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = ra.get("/v1/deliveries", &ra.operator).await.body;
        let items = list["items"].as_array().unwrap();
        let delivered = items.iter().filter(|d| d["state"] == "delivered").count();
        if delivered >= transfers {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arrivals = |got: &Arc<Mutex<Vec<String>>>| {
        let got = got.lock().unwrap();
        let unique: std::collections::HashSet<&String> = got.iter().collect();
        (got.len(), unique.len())
    };
    assert_eq!(
        arrivals(&got),
        (transfers, transfers),
        "each delivery arrived once: {:?}",
        got.lock().unwrap()
    );
    // Killed and restarted with nothing pending: nothing is sent again,
    // by it or by the other replica, however long past the lease.
    ra.restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(arrivals(&got), (transfers, transfers), "nothing sent again");
}

/// Runs `sql` on the replicas' database behind their backs.
fn sql_behind_their_backs(d: &Daemon, sql: &str) {
    let url = d.postgres_url.clone().unwrap();
    let sql = sql.to_string();
    // The driver runs its own runtime: off the test's threads.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

/// Reads on `d` until `check` holds (30 s at most); how long it took.
async fn read_until(
    d: &Daemon,
    path: &str,
    token: &str,
    check: impl Fn(&common::Answer) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let r = d.get(path, token).await;
        if check(&r) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{path}: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn each_replica_caches_its_reads_and_forgets_what_the_other_changes_at_once() {
    // Cached values live as long as the heartbeat (the fallback for a lost
    // announcement): a minute here, so only the announcements can explain
    // what the test sees.
    let (ra, rb) = pair("[store]\nheartbeat_ms = 60000\n");
    let (a, owner, t) = ra.account_with_owner(3).await;
    let owner_path = format!("/v1/accounts/{a}/owner");
    // B reads from its cache: a name changed in the database behind both
    // replicas' backs is not seen (once B hears announcements, which it
    // starts doing a moment after it starts).
    let mut cached = false;
    for i in 0..200 {
        assert_eq!(rb.get(&owner_path, &t).await.status, StatusCode::OK);
        let name = format!("Behind {i}");
        sql_behind_their_backs(
            &rb,
            &format!("UPDATE members SET value = jsonb_set(value::jsonb, '{{name}}', '\"{name}\"')::text WHERE account_id = '{a}' AND id = '{owner}'"),
        );
        if rb.get(&owner_path, &t).await.body["name"] != name.as_str() {
            cached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cached, "B never served a read from its cache");
    // A change made through A: B reads it at once (A's commit returned
    // after announcing what it wrote).
    let r = ra
        .put(
            &format!("/v1/accounts/{a}/members/{owner}/name"),
            &t,
            json!({"name": "Nadia Petrova"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let took_name = read_until(&rb, &owner_path, &t, |r| r.body["name"] == "Nadia Petrova").await;
    assert!(
        took_name < Duration::from_secs(1),
        "B saw the new name after {took_name:?}"
    );
    // The member list B cached follows too.
    let members = format!("/v1/accounts/{a}/members");
    assert_eq!(
        rb.get(&members, &t).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let added = ra.add_member(&t, &a, "agent@acme.test", "agent").await;
    let took_member = read_until(&rb, &members, &t, |r| {
        r.body["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|u| u["id"] == added.as_str()))
    })
    .await;
    assert!(
        took_member < Duration::from_secs(1),
        "B listed the new member after {took_member:?}"
    );
    // A session B has cached, ended on A: B refuses it.
    let session = ra.sign_in(&a, "owner@acme.test", PASSWORD).await;
    assert_eq!(rb.get(&owner_path, &session).await.status, StatusCode::OK);
    assert_eq!(rb.get(&owner_path, &session).await.status, StatusCode::OK);
    let r = ra.delete("/v1/sessions/current", &session).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let took = read_until(&rb, &owner_path, &session, |r| {
        r.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "B took the ended session for {took:?}"
    );
    eprintln!("seen on the other replica after: name {took_name:?}, member {took_member:?}, sign-out {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn idle_replicas_spend_almost_no_cpu() {
    let (ra, rb) = pair("");
    // Something to announce, then silence longer than the listeners'
    // wait for an announcement (1 s): a listener that lost its wait after
    // a quiet second spun a core from then on.
    let (_a, _owner, _t) = ra.account_with_owner(2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = (ra.cpu_ticks(), rb.cpu_ticks());
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (ra.cpu_ticks(), rb.cpu_ticks());
    let secs = watched.elapsed().as_secs_f64();
    for (name, spent) in [("A", after.0 - before.0), ("B", after.1 - before.1)] {
        // Idle, a replica's heartbeat, listeners and workers take about
        // 1 % of a core; a spinning thread takes most of one. A fifth of a
        // core keeps room for a slow shared machine and still catches it.
        let share = spent as f64 / 100.0 / secs;
        assert!(
            share < 0.2,
            "idle replica {name} used {:.0} % of a core over {secs:.1} s",
            share * 100.0
        );
    }
}

/// The advisory lock key admind takes for `account_id` (the same on every
/// replica): the first 8 bytes of a SHA-256 digest.
fn account_lock_key(account_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("admind account\0{account_id}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().unwrap())
}

/// One account's lock, held by another replica (here a session behind the
/// replicas' backs, as a replica's long transaction would), holds back no
/// other account's commands on this replica: they commit while a transfer
/// of the held account waits, and that transfer commits once the lock is
/// released. (A group of commands used to wait for every lock it needed,
/// holding back every account in it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tests/run.sh runs it with TEST_STORE=postgres"]
async fn an_account_another_replica_holds_holds_back_no_other_accounts_commands() {
    let (ra, _rb) = pair("");
    let (held, _, held_token) = ra.account_with_owner(5).await;
    let (held_admin, _) = ra.member(&held_token, &held, "b@acme.test", "admin").await;
    let mut others = Vec::new();
    for n in 0..8 {
        let owner = format!("owner{n}@acme.test");
        let (a, _) = ra.create_account("Acme", &owner, 5).await;
        let t = ra.activate(&a, &owner).await;
        let (b, _) = ra.member(&t, &a, &format!("b{n}@acme.test"), "admin").await;
        others.push((a, t, b));
    }
    // The lock, held until `release` is sent.
    let url = ra.postgres_url.clone().unwrap();
    let key = account_lock_key(&held);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
        tx.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    let waiting = async {
        let r = ra
            .put(
                &format!("/v1/accounts/{held}/owner"),
                &held_token,
                json!({"user_id": held_admin}),
            )
            .await;
        (r, Instant::now())
    };
    let others_then_release = async {
        // Let the held account's transfer reach the writer first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (n, (a, t, b)) in others.iter().enumerate() {
            let path = format!("/v1/accounts/{a}/owner");
            let transfer = ra.put(&path, t, json!({"user_id": b}));
            let r = tokio::time::timeout(Duration::from_secs(10), transfer)
                .await
                .unwrap_or_else(|_| panic!("account {n}'s transfer waited behind the held lock"));
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let released_at = Instant::now();
        release.send(()).unwrap();
        released_at
    };
    let ((held_transfer, done_at), released_at) = tokio::join!(waiting, others_then_release);
    assert_eq!(
        held_transfer.status,
        StatusCode::OK,
        "{}",
        held_transfer.body
    );
    assert!(
        done_at >= released_at,
        "the held account's transfer committed without its lock"
    );
    holder.join().unwrap();
}
