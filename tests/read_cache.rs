//! The read cache (sled keeps decoded accounts, members and sessions in
//! memory): a read that follows a 2xx write sees it, while other clients
//! keep reading the same values as fast as they can (each such read may
//! put a value back in the cache while the write commits). On PostgreSQL
//! the daemon has no cache, and the same tests hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{Daemon, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Readers hammering `paths` with `token` until `stop`.
fn hammer(
    d: &Daemon,
    paths: Vec<String>,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    (0..4)
        .map(|_| {
            let (base, paths, token, stop) =
                (d.base.clone(), paths.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    for p in &paths {
                        let _ = client
                            .get(format!("{base}{p}"))
                            .bearer_auth(&token)
                            .send()
                            .await;
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect()
}

fn owner_of(members: &Value) -> Vec<String> {
    members["items"]
        .as_array()
        .expect("a member page")
        .iter()
        .filter(|m| m["is_owner"] == true)
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn r01_a_read_after_a_transfer_sees_the_new_owner_while_others_read() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(
        &d,
        vec![
            format!("/v1/accounts/{a}/owner"),
            format!("/v1/accounts/{a}/members"),
        ],
        ot.clone(),
        stop.clone(),
    );
    let path = format!("/v1/accounts/{a}/owner");
    let (mut from, mut to) = ((&owner, &ot), (&b, &bt));
    for round in 0..40 {
        let r = d.put(&path, from.1, json!({"user_id": to.0})).await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: {:?}", r.body);
        // Straight after the 2xx, through both readers of the account.
        let seen = d.get(&path, to.1).await.body;
        assert_eq!(
            seen["id"].as_str(),
            Some(to.0.as_str()),
            "round {round}: {seen}"
        );
        let members = d.get(&format!("/v1/accounts/{a}/members"), to.1).await.body;
        assert_eq!(owner_of(&members), vec![to.0.clone()], "round {round}");
        std::mem::swap(&mut from, &mut to);
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap_or(0);
    }
    assert!(reads > 40, "the readers ran ({reads} reads)");
}

#[tokio::test]
async fn r11_seats_in_use_read_after_each_addition_are_exact() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(6).await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(
        &d,
        vec![
            format!("/v1/accounts/{a}"),
            format!("/v1/accounts/{a}/members"),
        ],
        ot.clone(),
        stop.clone(),
    );
    for i in 1..=8u32 {
        let r = d
            .post(
                &format!("/v1/accounts/{a}/members"),
                Some(&ot),
                json!({"name": "A", "email": format!("a{i}@acme.test"), "role": "agent"}),
            )
            .await;
        let acc = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
        let used = acc["support"]["seats_used"].as_u64().unwrap_or(99);
        if i <= 5 {
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            // The owner holds one seat.
            assert_eq!(used, u64::from(i) + 1, "after addition {i}: {acc}");
            let members = d.all_members(&a, &ot).await;
            assert_eq!(members.len(), i as usize + 1, "after addition {i}");
        } else {
            assert_eq!(r.code(), "agent_seat_exhausted");
            assert_eq!(used, 6, "never more than owned: {acc}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
}

#[tokio::test]
async fn a_signed_out_session_is_refused_on_the_next_request() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(3).await;
    for round in 0..10 {
        let token = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
        let path = format!("/v1/accounts/{a}");
        // Read it enough to be cached.
        for _ in 0..3 {
            assert_eq!(d.get(&path, &token).await.status, StatusCode::OK);
        }
        let out = d.delete("/v1/sessions/current", &token).await;
        assert!(out.status.is_success(), "round {round}: {:?}", out.body);
        let after = d.get(&path, &token).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "round {round}");
    }
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.status,
        StatusCode::OK
    );
}
