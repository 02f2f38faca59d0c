//! Bad input gets a clear problem+json error with its code, changes
//! nothing, and never a 5xx.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use common::Daemon;
use reqwest::StatusCode;
use serde_json::json;

async fn raw(
    d: &Daemon,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value, String) {
    // A fresh connection per call: a refused body may leave one half-read.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut req = client.post(format!("{}{}", d.base, path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    assert!(!status.is_server_error(), "{path}: {status} {body}");
    (status, body, ct)
}

/// Posts `len` bytes over raw TCP, ignoring a reset while writing, and
/// returns the status and problem the daemon answered.
async fn oversized_post(
    d: &Daemon,
    path: &str,
    token: &str,
    len: usize,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn malformed_unknown_oversized_and_invalid_bodies_are_refused_without_change() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let members = format!("/v1/accounts/{a}/members");
    let before = d.get(&members, &ot).await.body;
    let json_ct = Some("application/json");
    let cases: Vec<(Vec<u8>, Option<&str>, u16, &str)> = vec![
        (b"{not json".to_vec(), json_ct, 400, "malformed_json"),
        (
            br#"{"name":"A","email":"a@b.test","role":"agent","extra":1}"#.to_vec(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            br#"{"name":"A","email":"a@b.test"}"#.to_vec(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            br#"{"name":7,"email":"a@b.test","role":"agent"}"#.to_vec(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            br#"{"name":"A","email":"a@b.test","role":"superuser"}"#.to_vec(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            br#"{"name":"A","email":"not-an-address","role":"agent"}"#.to_vec(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            format!(
                r#"{{"name":"{}","email":"a@b.test","role":"agent"}}"#,
                "x".repeat(500)
            )
            .into_bytes(),
            json_ct,
            400,
            "validation_failed",
        ),
        (
            br#"{"name":"A","email":"a@b.test","role":"agent"}"#.to_vec(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            vec![b' '; 2 * 1024 * 1024],
            json_ct,
            413,
            "payload_too_large",
        ),
    ];
    for (body, ct, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let (s, problem, content_type) = raw(&d, &members, Some(&ot), ct, body).await;
        assert_eq!(s.as_u16(), status, "{preview}: {problem}");
        assert_eq!(problem["code"], code, "{preview}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(content_type, "application/problem+json");
    }
    // Over the 1 MiB limit: the daemon answers 413 before reading it all and
    // closes, so send it as a client that reads the answer while writing.
    let (status, problem) = oversized_post(&d, &members, &ot, 2 * 1024 * 1024).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "payload_too_large");
    assert_eq!(d.get(&members, &ot).await.body, before, "nothing changed");
    // Seats beyond the limit, bad page sizes, bad query strings.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"support_seats": 4_000_000_000u64}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = d
        .put(&format!("/v1/accounts/{a}/billing/seats"), &ot, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        d.get(&format!("{members}?limit=0"), &ot).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        d.get(&format!("{members}?limit=5000"), &ot).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/audit?after=x"), &ot)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        d.get(&format!("{members}?bogus=1"), &ot).await.status,
        StatusCode::BAD_REQUEST
    );
    // Unknown routes and methods are problems too.
    let r = d.get("/v1/nothing-here", &ot).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = d
        .call(reqwest::Method::PATCH, "/v1/accounts", Some(&ot), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // Bad credentials.
    let r = d.get(&format!("/v1/accounts/{a}"), "not-a-token").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": "x".repeat(5000), "password": "long enough"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": "abc", "password": "short"}),
        )
        .await;
    assert_eq!(r.code(), "validation_failed");
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let d = Daemon::start();
    let doc = d
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await
        .body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/accounts", "post"),
        ("/v1/accounts", "get"),
        ("/v1/accounts/{a}", "get"),
        ("/v1/accounts/{a}/owner", "put"),
        ("/v1/accounts/{a}/owner", "get"),
        ("/v1/accounts/{a}/owner/candidates", "get"),
        ("/v1/accounts/{a}/members", "post"),
        ("/v1/accounts/{a}/members/{u}", "patch"),
        ("/v1/accounts/{a}/members/{u}", "delete"),
        ("/v1/accounts/{a}/billing/seats", "put"),
        ("/v1/accounts/{a}/billing/invoices", "get"),
        ("/v1/accounts/{a}/billing/payment-method", "put"),
        ("/v1/accounts/{a}/integrations/{i}/authorize", "post"),
        ("/v1/accounts/{a}/sessions", "post"),
        ("/v1/accounts/{a}/password-resets", "post"),
        ("/v1/password-resets/confirm", "post"),
        ("/v1/sessions/current", "delete"),
        ("/v1/accounts/{a}/security-investigations", "post"),
        ("/v1/accounts/{a}/audit", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        if path.starts_with("/v1") {
            assert!(
                op["responses"]["409"].is_object() && op["responses"]["400"].is_object(),
                "{method} {path} documents its errors"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // Every error answer of every operation is the one Problem schema (a
    // generated client gets one error model, not one per operation).
    let mut errors = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for (status, answer) in op["responses"].as_object().into_iter().flatten() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                for (_, content) in answer["content"].as_object().into_iter().flatten() {
                    assert_eq!(
                        content["schema"]["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 100, "{errors}");
}

#[tokio::test]
async fn metrics_count_requests_commits_and_the_outbox() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    d.get(&format!("/v1/accounts/{a}"), &ot).await;
    let text = d
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await
        .body;
    let text = text.as_str().unwrap();
    for needle in [
        "admind_http_requests_total{method=\"GET\",route=\"/v1/accounts/{a}\",status=\"200\"} 1",
        "admind_http_request_seconds_bucket",
        "admind_store_commits_total",
        "admind_store_flush_seconds_count",
        "admind_outbox_depth",
        "admind_mail_delivered_total",
        "admind_mail_delivery_failures_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}
