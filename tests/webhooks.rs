//! Webhooks both ways. Deliveries are signed and checked with an
//! independent implementation (the `standardwebhooks` crate).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::Daemon;
use reqwest::StatusCode;
use serde_json::{json, Value};
use standardwebhooks::Webhook;

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SUB_SECRET: &str = "whsec_dGhlIHN1YnNjcmliZXIncyBvd24gc2VjcmV0IQ==";

fn source_config() -> String {
    format!(
        "[[webhooks.sources]]\nname = \"crm\"\nsecrets = [\"{OLD_SECRET}\", \"{NEW_SECRET}\"]\n"
    )
}

struct Signed {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

fn signed(secret: &str, id: &str, timestamp: i64, body: &Value) -> Signed {
    let body = serde_json::to_vec(body).unwrap();
    let signature = Webhook::new(secret)
        .unwrap()
        .sign(id, timestamp, &body)
        .unwrap();
    Signed {
        id: id.into(),
        timestamp,
        signature,
        body,
    }
}

async fn deliver(d: &Daemon, source: &str, s: &Signed) -> (StatusCode, Value) {
    let res = d
        .http
        .post(format!("{}/v1/webhooks/{source}", d.base))
        .header("content-type", "application/json")
        .header("webhook-id", &s.id)
        .header("webhook-timestamp", s.timestamp.to_string())
        .header("webhook-signature", &s.signature)
        .body(s.body.clone())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.json().await.unwrap_or(Value::Null);
    assert!(!status.is_server_error(), "{status} {body}");
    (status, body)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An account with an integration configured by its owner.
async fn setup(d: &Daemon) -> (String, String, String) {
    let (a, _, ot) = d.account_with_owner(5).await;
    let i = d
        .post(
            &format!("/v1/accounts/{a}/integrations"),
            Some(&ot),
            json!({"name": "Slack"}),
        )
        .await;
    (a, ot, i.body["id"].as_str().unwrap().to_string())
}

async fn integration_status(d: &Daemon, a: &str, ot: &str, id: &str) -> String {
    let list = d
        .get(&format!("/v1/accounts/{a}/integrations"), ot)
        .await
        .body;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn revoked(a: &str, i: &str) -> Value {
    json!({"type": "integration.token_revoked", "data": {"account_id": a, "integration_id": i}})
}

fn revocation_mails(d: &Daemon) -> usize {
    d.mails()
        .iter()
        .filter(|m| m.subject.contains("needs to be reauthorized"))
        .count()
}

#[tokio::test]
async fn verified_deliveries_take_effect_once_and_everything_else_is_refused() {
    let d = Daemon::start_with(&source_config());
    let (a, ot, i) = setup(&d).await;
    let body = revoked(&a, &i);
    let refused = |label: &'static str| {
        move |(status, problem): (StatusCode, Value)| {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {problem}");
            assert_eq!(problem["code"], "webhook_signature_invalid", "{label}");
        }
    };
    // Tampered body, tampered id, stale, future, unknown source, empty signature, missing header.
    let good = signed(NEW_SECRET, "msg_1", now(), &body);
    let mut tampered = signed(NEW_SECRET, "msg_1", now(), &body);
    tampered.body = serde_json::to_vec(&revoked(&a, "int_other")).unwrap();
    refused("tampered body")(deliver(&d, "crm", &tampered).await);
    let mut other_id = signed(NEW_SECRET, "msg_1", now(), &body);
    other_id.id = "msg_2".into();
    refused("tampered id")(deliver(&d, "crm", &other_id).await);
    refused("stale")(deliver(&d, "crm", &signed(NEW_SECRET, "msg_3", now() - 400, &body)).await);
    refused("future")(deliver(&d, "crm", &signed(NEW_SECRET, "msg_4", now() + 400, &body)).await);
    refused("unknown source")(deliver(&d, "billing", &good).await);
    let mut empty = signed(NEW_SECRET, "msg_5", now(), &body);
    empty.signature = "v1,".into();
    refused("empty signature")(deliver(&d, "crm", &empty).await);
    let wrong_secret = signed(
        "whsec_aW50cnVkZXIncyBvd24gc2VjcmV0IGtleQ==",
        "msg_6",
        now(),
        &body,
    );
    refused("wrong secret")(deliver(&d, "crm", &wrong_secret).await);
    let res = d
        .http
        .post(format!("{}/v1/webhooks/crm", d.base))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "missing headers");
    assert_eq!(
        integration_status(&d, &a, &ot, &i).await,
        "active",
        "nothing changed"
    );
    // Valid: the integration needs reauthorization and its configurer is told.
    let (status, answer) = deliver(&d, "crm", &good).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(
        integration_status(&d, &a, &ot, &i).await,
        "needs_reauthorization"
    );
    d.wait_mail("owner@acme.test", "needs to be reauthorized", 1)
        .await;
    // Replayed (a retry re-signs with a new timestamp): 200, duplicate, no second effect.
    let (status, answer) = deliver(&d, "crm", &signed(NEW_SECRET, "msg_1", now(), &body)).await;
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    // Rotation: the old secret is accepted too.
    let (status, _) = deliver(
        &d,
        "crm",
        &signed(
            OLD_SECRET,
            "msg_7",
            now(),
            &json!({"type": "crm.ping", "data": {}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Not JSON (but signed): 400. Oversized: 413.
    let not_json = Signed {
        body: b"not json".to_vec(),
        ..signed(NEW_SECRET, "msg_8", now(), &json!({}))
    };
    let not_json = Signed {
        signature: Webhook::new(NEW_SECRET)
            .unwrap()
            .sign("msg_8", not_json.timestamp, b"not json")
            .unwrap(),
        ..not_json
    };
    let (status, problem) = deliver(&d, "crm", &not_json).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("validation_failed"))
    );
    let big = json!({"type": "crm.big", "data": {"blob": "x".repeat(300 * 1024)}});
    let (status, problem) = deliver(&d, "crm", &signed(NEW_SECRET, "msg_9", now(), &big)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(revocation_mails(&d), 1, "exactly one effect");
}

#[tokio::test]
async fn a_sigkill_between_receipt_and_answer_then_redelivery_has_exactly_one_effect() {
    let mut d = Daemon::start_with(&source_config());
    let (a, ot, i) = setup(&d).await;
    let first = signed(NEW_SECRET, "msg_crash", now(), &revoked(&a, &i));
    let (http, url) = (d.http.clone(), format!("{}/v1/webhooks/crm", d.base));
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("webhook-id", &first.id)
            .header("webhook-timestamp", first.timestamp.to_string())
            .header("webhook-signature", &first.signature)
            .body(first.body.clone())
            .send()
            .await
            .map(|r| r.status())
    });
    // Kill while the delivery is in flight (before, during or after its commit).
    tokio::time::sleep(Duration::from_millis(3)).await;
    d.kill();
    let _ = in_flight.await;
    d.restart();
    // The sender did not get (or trust) an answer: it redelivers, re-signed.
    let (status, _) = deliver(
        &d,
        "crm",
        &signed(NEW_SECRET, "msg_crash", now(), &revoked(&a, &i)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        integration_status(&d, &a, &ot, &i).await,
        "needs_reauthorization"
    );
    d.wait_mail("owner@acme.test", "needs to be reauthorized", 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(revocation_mails(&d), 1, "exactly one effect");
}

#[tokio::test]
async fn shipped_crm_events_maps_an_outside_event_to_an_action() {
    let d = Daemon::start_with(&source_config());
    d.install_script("crm_events.rhai");
    let (a, ot, i) = setup(&d).await;
    d.wait_policy_loaded("crm_events.rhai").await;
    let body = json!({"type": "crm.integration_compromised", "data": {"account_id": a, "integration_id": i}});
    let (status, _) = deliver(&d, "crm", &signed(NEW_SECRET, "msg_crm", now(), &body)).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    while integration_status(&d, &a, &ot, &i).await != "needs_reauthorization" {
        assert!(Instant::now() < deadline, "the script did not act");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "integration.flag" && e["actor"] == "policy:crm_events.rhai"));
}

// ---- outbound ----

/// An answer to give: status and optional Retry-After.
type Answer = (u16, Option<&'static str>);
/// What arrived: when, its headers and body, and the status answered.
type Arrival = (Instant, HeaderMap, Vec<u8>, u16);

#[derive(Clone, Default)]
struct Receiver {
    /// Answers to give, in order; 200 once they run out.
    plan: Arc<Mutex<Vec<Answer>>>,
    got: Arc<Mutex<Vec<Arrival>>>,
}

async fn receiver(plan: Vec<Answer>) -> (String, Receiver) {
    let r = Receiver {
        plan: Arc::new(Mutex::new(plan)),
        got: Arc::default(),
    };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let (status, retry_after) = {
                    let mut plan = state.plan.lock().unwrap();
                    if plan.is_empty() {
                        (200, None)
                    } else {
                        plan.remove(0)
                    }
                };
                state
                    .got
                    .lock()
                    .unwrap()
                    .push((Instant::now(), headers, body.to_vec(), status));
                let mut res = axum::response::Response::builder().status(status);
                if let Some(ra) = retry_after {
                    res = res.header("retry-after", ra);
                }
                res.body(axum::body::Body::empty()).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn subscriber_config(url: &str, schedule: &str) -> String {
    format!(
        "[[subscribers]]\nname = \"crm\"\nurl = \"{url}\"\nsecret = \"{SUB_SECRET}\"\nevents = [\"licence_request.filed\", \"owner.changed\"]\n[outbound]\nretry_schedule_ms = {schedule}\n"
    )
}

async fn file_request(d: &Daemon, a: &str, ot: &str) {
    let r = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(ot),
            json!({"product": "support", "seats": 1, "reason": "busy week"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Decided at once: an account has one pending request per product,
    // and the next call files a new one.
    let id = r.body["id"].as_str().unwrap();
    let denied = d
        .post(
            &format!("/v1/licence-requests/{id}/deny"),
            Some(&d.operator),
            json!({"reason": "test"}),
        )
        .await;
    assert!(denied.status.is_success(), "{}", denied.body);
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failing_subscriber_gets_the_event_once_it_recovers_signed_with_its_secret() {
    let (url, rx) = receiver(vec![(500, None), (502, None)]).await;
    let d = Daemon::start_with(&subscriber_config(&url, "[0, 50, 50, 50]"));
    let (a, _, ot) = d.account_with_owner(3).await;
    file_request(&d, &a, &ot).await;
    let got = wait_for("a successful delivery", || {
        let got = rx.got.lock().unwrap().clone();
        got.iter().any(|g| g.3 == 200).then_some(got)
    })
    .await;
    assert_eq!(got.len(), 3, "two failures, then success");
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|g| g.1["webhook-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "one event: the same webhook-id on every attempt"
    );
    let (_, headers, body, _) = got.last().unwrap();
    Webhook::new(SUB_SECRET)
        .unwrap()
        .verify(body, headers)
        .expect("signed with the subscriber's secret");
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "licence_request.filed");
    assert_eq!(event["data"]["account_id"], a.as_str());
    // The worker records the success after the receiver answered: wait
    // for that commit rather than race it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let list = loop {
        let list = d.get("/v1/deliveries", &d.operator).await.body;
        if list["items"][0]["state"] == "delivered" || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(list["items"][0]["state"], "delivered");
    assert_eq!(list["items"][0]["attempts"], 3);
    assert_eq!(
        d.get("/v1/deliveries", &ot).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_410_disables_the_subscriber_at_once_and_redelivery_re_enables_it() {
    let (url, rx) = receiver(vec![(410, None)]).await;
    let d = Daemon::start_with(&subscriber_config(&url, "[0, 50, 50]"));
    let (a, _, ot) = d.account_with_owner(3).await;
    file_request(&d, &a, &ot).await;
    wait_for("the 410", || {
        (!rx.got.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let id = wait_for_state(&d, "failed").await;
    // Disabled: the next event is not queued for it.
    file_request(&d, &a, &ot).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.got.lock().unwrap().len(),
        1,
        "no retry after 410, nothing new"
    );
    let r = d
        .post(
            &format!("/v1/deliveries/{id}/redeliver"),
            Some(&d.operator),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    wait_for("the redelivery", || {
        (rx.got.lock().unwrap().len() == 2).then_some(())
    })
    .await;
}

async fn wait_for_state(d: &Daemon, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = d.get("/v1/deliveries", &d.operator).await.body;
        if let Some(item) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["state"] == state)
        {
            return item["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no delivery {state}: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_last_retry_disables_the_subscriber_and_retry_after_is_honoured() {
    let (url, rx) = receiver(vec![(429, Some("1")), (503, None), (500, None)]).await;
    let d = Daemon::start_with(&subscriber_config(&url, "[0, 20, 20]"));
    let (a, _, ot) = d.account_with_owner(3).await;
    file_request(&d, &a, &ot).await;
    wait_for_state(&d, "failed").await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "one attempt per step of the schedule");
    assert!(
        got[1].0.duration_since(got[0].0) >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    let list = d.get("/v1/deliveries", &d.operator).await.body;
    assert_eq!(list["items"][0]["last_status"], 500);
}

#[tokio::test]
async fn pending_retries_survive_a_restart() {
    let (url, rx) = receiver(vec![(500, None)]).await;
    let mut d = Daemon::start_with(&subscriber_config(&url, "[0, 1500, 100]"));
    let (a, _, ot) = d.account_with_owner(3).await;
    file_request(&d, &a, &ot).await;
    wait_for("the first attempt", || {
        (!rx.got.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    d.kill();
    d.restart();
    wait_for("the retry after the restart", || {
        rx.got
            .lock()
            .unwrap()
            .iter()
            .any(|g| g.3 == 200)
            .then_some(())
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|g| g.1["webhook-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);
}
