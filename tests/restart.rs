//! Real restarts: SIGKILL while writing, start again on the same data dir.
//! Every acknowledged write is there, the rules hold, and every queued mail
//! is delivered exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Daemon;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r01_r11_acknowledged_writes_and_mail_survive_sigkill() {
    let mut d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10_000).await;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for round in 0..3 {
        let mut writers = Vec::new();
        for w in 0..8 {
            let (http, base, a, ot, acked) = (
                d.http.clone(),
                d.base.clone(),
                a.clone(),
                ot.clone(),
                acked.clone(),
            );
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let email = format!("r{round}-w{w}-{i}@acme.test");
                    let role = if i % 3 == 0 { "end_user" } else { "agent" };
                    let sent = http
                        .post(format!("{base}/v1/accounts/{a}/members"))
                        .bearer_auth(&ot)
                        .json(&json!({"name": "M", "email": email, "role": role}))
                        .send()
                        .await;
                    let Ok(res) = sent else { return };
                    if res.status() != StatusCode::CREATED {
                        return;
                    }
                    let Ok(body) = res.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .push((body["id"].as_str().unwrap().to_string(), email));
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        d.kill();
        for w in writers {
            let _ = w.await;
        }
        d.restart();
    }
    // The owner's session is durable too.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the writers got some writes in: {}",
        acked.len()
    );
    let members = d.all_members(&a, &ot).await;
    let by_id: HashMap<&str, &Value> = members
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m))
        .collect();
    for (id, email) in &acked {
        let m = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged member {email} lost"));
        assert_eq!(m["primary_email"], email.as_str());
    }
    // R01: one owner. R11: seats used match the seat holders and fit the total.
    assert_eq!(members.iter().filter(|m| m["is_owner"] == true).count(), 1);
    let holders = members.iter().filter(|m| m["role"] != "end_user").count() as u64;
    let account = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(account["support"]["seats_used"].as_u64().unwrap(), holders);
    assert!(holders <= account["support"]["seats_total"].as_u64().unwrap());
    // Every member present got exactly one password-set mail; nobody else did.
    let expected: HashMap<String, ()> = members
        .iter()
        .map(|m| (m["primary_email"].as_str().unwrap().to_lowercase(), ()))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for m in d
            .mails()
            .into_iter()
            .filter(|m| m.subject.starts_with("Set your password"))
        {
            *counts.entry(m.to.to_lowercase()).or_default() += 1;
        }
        for (to, n) in &counts {
            assert!(
                expected.contains_key(to),
                "mail to {to}, whose creation never committed"
            );
            assert_eq!(*n, 1, "{to} got {n} password-set mails");
        }
        if counts.len() == expected.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} mails delivered",
            counts.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_finishes_cleanly_and_keeps_the_data() {
    let mut d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(5).await;
    let status = d.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    d.restart();
    let r = d.get(&format!("/v1/accounts/{a}/owner"), &ot).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], owner.as_str());
    // The operator token persisted in the data dir.
    d.create_account("Second", "s@s.test", 1).await;
}
