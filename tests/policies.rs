//! The policy layer end to end: hot reload under load, the sandbox, fail
//! closed, after-hooks across SIGKILL, order, plugin configuration, each
//! shipped policy and plugin, and the authors' tools.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn policies(d: &Daemon) -> Vec<Value> {
    let r = d.get("/v1/policies", &d.operator).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body["items"].as_array().unwrap().clone()
}

async fn script_status(d: &Daemon, file: &str) -> Option<Value> {
    policies(d)
        .await
        .into_iter()
        .find(|p| p["kind"] == "script" && p["name"] == file)
}

/// Waits until `check` holds for the script's status (or its absence).
async fn wait_status(
    d: &Daemon,
    file: &str,
    what: &str,
    check: impl Fn(Option<&Value>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let s = script_status(d, file).await;
        if check(s.as_ref()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{file}: never {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn write(d: &Daemon, file: &str, source: &str) {
    d.write_script(file, source);
}

const DENY_ALL: &str = "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) { deny(\"frozen for the audit\"); }";

/// A transfer from the owner to `to`, then back with `back` as the new owner.
async fn try_transfer(d: &Daemon, a: &str, token: &str, to: &str) -> common::Answer {
    d.put(
        &format!("/v1/accounts/{a}/owner"),
        token,
        json!({"user_id": to}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_scripts_reload_while_requests_run_and_broken_files_keep_the_previous_version() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    // Readers hammer the API during every reload; none may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (http, url, ot, stop) = (
            d.http.clone(),
            format!("{}/v1/accounts/{a}", d.base),
            ot.clone(),
            stop.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http.get(&url).bearer_auth(&ot).send().await.expect("sent");
                assert_eq!(r.status(), StatusCode::OK);
                n += 1;
            }
            n
        }));
    }
    // Add: the veto applies.
    write(&d, "freeze.rhai", DENY_ALL);
    let took = wait_status(&d, "freeze.rhai", "loaded", |s| {
        s.is_some_and(|s| {
            s["hooks"] == json!(["before_owner_change"]) && s["capabilities"] == json!(["deny"])
        })
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "a save takes effect in well under a second: {took:?}"
    );
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "policy_denied")
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("freeze.rhai")
            && r.body["detail"]
                .as_str()
                .unwrap()
                .contains("frozen for the audit")
    );
    let v1 = script_status(&d, "freeze.rhai").await.unwrap()["version"].clone();
    // Change: a new reason, a new version.
    write(
        &d,
        "freeze.rhai",
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) { deny(\"still frozen\"); }",
    );
    wait_status(&d, "freeze.rhai", "changed", |s| {
        s.is_some_and(|s| s["version"] != v1)
    })
    .await;
    assert!(try_transfer(&d, &a, &ot, &b).await.body["detail"]
        .as_str()
        .unwrap()
        .contains("still frozen"));
    let v2 = script_status(&d, "freeze.rhai").await.unwrap()["version"].clone();
    // Break: the error is reported with line and column; v2 stays in force.
    write(
        &d,
        "freeze.rhai",
        "fn before_owner_change(event) {\n  deny(\"x\"\n}",
    );
    wait_status(&d, "freeze.rhai", "reported broken", |s| {
        s.is_some_and(|s| s["last_error"].is_object())
    })
    .await;
    let s = script_status(&d, "freeze.rhai").await.unwrap();
    assert_eq!(s["version"], v2, "the previous version stays in force");
    assert!(
        s["last_error"]["line"].as_u64().is_some() && s["last_error"]["column"].as_u64().is_some(),
        "{s}"
    );
    assert!(try_transfer(&d, &a, &ot, &b).await.body["detail"]
        .as_str()
        .unwrap()
        .contains("still frozen"));
    // Fix: the error clears.
    write(&d, "freeze.rhai", DENY_ALL);
    wait_status(&d, "freeze.rhai", "fixed", |s| {
        s.is_some_and(|s| s["last_error"].is_null() && s["version"] == v1)
    })
    .await;
    // Delete: it stops applying.
    std::fs::remove_file(d.scripts_dir().join("freeze.rhai")).unwrap();
    wait_status(&d, "freeze.rhai", "dropped", |s| s.is_none()).await;
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r.await.expect("no reader failed");
    }
    assert!(total > 20, "readers ran during the reloads: {total}");
    let text = d
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await
        .body;
    assert!(text
        .as_str()
        .unwrap()
        .contains("admind_policy_reloads_total{result=\"failed\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_runaway_scripts_are_stopped_and_before_hooks_fail_closed() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    for (file, source) in [
        ("loop.rhai", "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(event) { loop { } }"),
        (
            "recurse.rhai",
            "// hooks: before_owner_change\n// calls: none\nfn down(n) { down(n + 1) } fn before_owner_change(event) { down(0) }",
        ),
        (
            "string.rhai",
            "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(event) { let s = \"abcdefgh\"; loop { s += s; } }",
        ),
    ] {
        write(&d, file, source);
        wait_status(&d, file, "loaded", |s| s.is_some()).await;
        // /healthz keeps answering while the script runs.
        let (r, health) = tokio::join!(
            try_transfer(&d, &a, &ot, &b),
            d.call(reqwest::Method::GET, "/healthz", None, None)
        );
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "policy_denied"),
            "{file}"
        );
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(file) && detail.contains("fails closed") && detail.contains("stopped"),
            "{detail}"
        );
        let s = script_status(&d, file).await.unwrap();
        assert_eq!(s["failures"], 1, "{s}");
        std::fs::remove_file(d.scripts_dir().join(file)).unwrap();
        wait_status(&d, file, "dropped", |s| s.is_none()).await;
    }
    let owner = d.get(&format!("/v1/accounts/{a}/owner"), &ot).await.body;
    assert_ne!(
        owner["id"],
        b.as_str(),
        "no failing policy let the transfer through"
    );
}

#[tokio::test]
async fn r02_a_hook_configured_to_fail_open_allows_on_failure() {
    let d = Daemon::start_with("[hooks.before_owner_change]\non_failure = \"allow\"\n");
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    write(
        &d,
        "broken.rhai",
        "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(event) { let x = 1 / 0; }",
    );
    wait_status(&d, "broken.rhai", "loaded", |s| s.is_some()).await;
    assert_eq!(try_transfer(&d, &a, &ot, &b).await.status, StatusCode::OK);
}

#[tokio::test]
async fn scripts_run_in_file_name_order_and_the_first_deny_wins() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    write(
        &d,
        "b.rhai",
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) { deny(\"from b\"); }",
    );
    write(
        &d,
        "a.rhai",
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) { deny(\"from a\"); }",
    );
    wait_status(&d, "b.rhai", "loaded", |s| s.is_some()).await;
    wait_status(&d, "a.rhai", "loaded", |s| s.is_some()).await;
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert!(
        r.body["detail"].as_str().unwrap().contains("from a"),
        "{:?}",
        r.body
    );
    assert_eq!(
        script_status(&d, "b.rhai").await.unwrap()["calls"],
        0,
        "b never ran"
    );
    std::fs::rename(
        d.scripts_dir().join("a.rhai"),
        d.scripts_dir().join("c.rhai"),
    )
    .unwrap();
    wait_status(&d, "a.rhai", "renamed", |s| s.is_none()).await;
    wait_status(&d, "c.rhai", "loaded", |s| s.is_some()).await;
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert!(
        r.body["detail"].as_str().unwrap().contains("from b"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn shipped_owner_change_guard_refuses_a_new_owner_who_never_signed_in() {
    let d = Daemon::start();
    d.install_script("owner_change_guard.rhai");
    let (a, _, ot) = d.account_with_owner(10).await;
    // B is a verified admin (set a password) but never signed in.
    let b = d.add_member(&ot, &a, "b@acme.test", "admin").await;
    let mail = d.wait_mail("b@acme.test", "Set your password", 1).await;
    d.post(
        "/v1/password-resets/confirm",
        None,
        json!({"token": mail.token(), "password": common::PASSWORD}),
    )
    .await;
    wait_status(&d, "owner_change_guard.rhai", "loaded", |s| s.is_some()).await;
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "policy_denied")
    );
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("signed in at least once"));
    // The refusal names the policy and its version in the audit log.
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["outcome"] == "refused:policy_denied"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("owner_change_guard.rhai (version ")));
    d.sign_in(&a, "b@acme.test", common::PASSWORD).await;
    assert_eq!(try_transfer(&d, &a, &ot, &b).await.status, StatusCode::OK);
}

async fn licence_requests(d: &Daemon, a: &str, ot: &str) -> Vec<Value> {
    d.get(&format!("/v1/accounts/{a}/licence-requests"), ot)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn shipped_temporary_licences_files_one_request_per_product_while_pending() {
    let d = Daemon::start();
    d.install_script("temporary_licences.rhai");
    let (a, _, ot) = d.account_with_owner(1).await;
    wait_status(&d, "temporary_licences.rhai", "loaded", |s| s.is_some()).await;
    for i in 0..3 {
        let r = d
            .post(
                &format!("/v1/accounts/{a}/members"),
                Some(&ot),
                json!({"name": "X", "email": format!("x{i}@acme.test"), "role": "agent"}),
            )
            .await;
        assert_eq!(r.code(), "agent_seat_exhausted");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while licence_requests(&d, &a, &ot).await.is_empty() {
        assert!(Instant::now() < deadline, "no request was filed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every one of the three events has run the policy; then count.
    d.wait_metric(
        "admind_policy_calls_total{policy=\"temporary_licences.rhai\",hook=\"agent_seat_exhausted\"}",
        3.0,
    )
    .await;
    let list = licence_requests(&d, &a, &ot).await;
    assert_eq!(list.len(), 1, "once while pending: {list:?}");
    assert_eq!(list[0]["product"], "support");
    assert_eq!(list[0]["requested_by"], "policy:temporary_licences.rhai");
    // Sell: a trial has one seat; a second Sell user exhausts it.
    d.post(
        &format!("/v1/accounts/{a}/sell/trial"),
        Some(&ot),
        json!({}),
    )
    .await;
    let eu = d.add_member(&ot, &a, "eu@acme.test", "end_user").await;
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/users"),
            Some(&ot),
            json!({"user_id": eu, "role": "user"}),
        )
        .await;
    assert_eq!(r.code(), "sell_seat_exhausted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !licence_requests(&d, &a, &ot)
        .await
        .iter()
        .any(|r| r["product"] == "sell")
    {
        assert!(Instant::now() < deadline, "no Sell request was filed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The call that acted is in the audit log, linked to what caused it.
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    let items = audit["items"].as_array().unwrap();
    let call = items
        .iter()
        .find(|e| e["action"] == "policy.call" && e["outcome"] == "acted")
        .expect("a policy.call entry");
    assert_eq!(call["actor"], "policy:temporary_licences.rhai");
    assert!(call["detail"]
        .as_str()
        .unwrap()
        .contains("request_licence support 1"));
}

#[tokio::test]
async fn shipped_owner_password_reset_mails_the_owners_new_primary() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(1).await;
    d.post(
        &format!("/v1/accounts/{a}/members/{owner}/emails"),
        Some(&ot),
        json!({"address": "next@acme.test"}),
    )
    .await;
    let link = d
        .wait_mail("next@acme.test", "Verify your address", 1)
        .await;
    d.post(
        "/v1/email-verifications/confirm",
        None,
        json!({"token": link.token()}),
    )
    .await;
    let r = d
        .put(
            &format!("/v1/accounts/{a}/members/{owner}/emails/next@acme.test/primary"),
            &ot,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Nobody asked: the plugin mailed the reset link to the new address.
    let reset = d
        .wait_mail("next@acme.test", "Reset your password", 1)
        .await;
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": reset.token(), "password": "the successor's"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    d.sign_in(&a, "next@acme.test", "the successor's").await;
    let p = policies(&d).await;
    let plugin = p
        .iter()
        .find(|p| p["name"] == "owner-password-reset")
        .unwrap();
    assert_eq!(plugin["kind"], "plugin");
    assert_eq!(plugin["calls"], 1);
}

#[tokio::test]
async fn after_hooks_run_at_least_once_across_a_sigkill_right_after_commit() {
    // A slow after-hook: the kill lands while the event is still queued.
    let mut d = Daemon::start_with("[scripts]\nmax_operations = 100000000\ntimeout_ms = 20000\n");
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    write(
        &d,
        "slow_welcome.rhai",
        "// hooks: after_owner_change\n// calls: notify\nfn after_owner_change(event) { let i = 0; while i < 300000 { i += 1; } notify(event.to.primary_email, \"Welcome, owner\", \"slow but sure\"); }",
    );
    wait_status(&d, "slow_welcome.rhai", "loaded", |s| s.is_some()).await;
    assert_eq!(try_transfer(&d, &a, &ot, &b).await.status, StatusCode::OK);
    d.kill();
    assert!(
        d.mails().iter().all(|m| m.subject != "Welcome, owner"),
        "the kill came first"
    );
    d.restart();
    let mail = d.wait_mail("b@acme.test", "Welcome, owner", 1).await;
    assert!(mail.body.contains("slow but sure"));
}

#[tokio::test]
async fn plugins_run_before_scripts_and_their_calls_are_audited_with_their_cause() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    d.post(
        &format!("/v1/accounts/{a}/integrations"),
        Some(&ot),
        json!({"name": "Slack"}),
    )
    .await;
    write(
        &d,
        "also_flag.rhai",
        "// hooks: after_owner_change\n// calls: flag_integration\nfn after_owner_change(event) { for i in event.integrations { flag_integration(i.id); } }",
    );
    wait_status(&d, "also_flag.rhai", "loaded", |s| s.is_some()).await;
    assert_eq!(try_transfer(&d, &a, &ot, &b).await.status, StatusCode::OK);
    d.wait_mail("b@acme.test", "Integrations to reauthorize", 1)
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let audit = d
            .get(&format!("/v1/accounts/{a}/audit?limit=200"), &bt)
            .await
            .body;
        let items = audit["items"].as_array().unwrap().clone();
        let calls: Vec<Value> = items
            .iter()
            .filter(|e| e["action"] == "policy.call")
            .cloned()
            .collect();
        if calls.len() >= 2 {
            let transfer = items
                .iter()
                .find(|e| e["action"] == "owner.transfer" && e["outcome"] == "ok")
                .unwrap()
                .clone();
            break (calls, transfer);
        }
        assert!(
            Instant::now() < deadline,
            "policy calls not recorded: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (calls, transfer) = calls;
    assert_eq!(
        calls[0]["actor"], "policy:reauth-reminder",
        "the plugin ran first"
    );
    assert_eq!(calls[1]["actor"], "policy:also_flag.rhai");
    for c in &calls {
        assert_eq!(
            c["cause"], transfer["seq"],
            "linked to the transfer's entry"
        );
    }
}

fn admind() -> Command {
    Command::new(env!("CARGO_BIN_EXE_admind"))
}

#[test]
fn an_unknown_plugin_or_a_bad_setting_stops_start_up_naming_it() {
    for (config, needle) in [
        ("[[plugins]]\nname = \"no-such-plugin\"\n", "no-such-plugin"),
        (
            "[[plugins]]\nname = \"reauth-reminder\"\nsettings = { subjct = \"typo\" }\n",
            "reauth-reminder",
        ),
        (
            "[hooks.before_everything]\non_failure = \"allow\"\n",
            "before_everything",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admind.toml");
        std::fs::write(&file, config).unwrap();
        let out = admind()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{needle} not named in: {stderr}");
    }
}

#[test]
fn policy_check_and_policy_test_work_on_good_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let bad = dir.path().join("bad.rhai");
    std::fs::write(&bad, "fn before_owner_change(e) {\n    deny(\"x\"\n}\n").unwrap();
    let out = admind()
        .args(["policy", "check"])
        .arg(shipped.join("owner_change_guard.rhai"))
        .arg(shipped.join("temporary_licences.rhai"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("owner_change_guard.rhai: ok: before_owner_change"),
        "{text}"
    );
    assert!(
        text.contains("agent_seat_exhausted, sell_seat_exhausted"),
        "{text}"
    );
    let out = admind()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("bad.rhai:3:") || text.contains("bad.rhai:2:"),
        "line and column: {text}"
    );
    // A call its header does not declare: file, line and column of the call.
    let overreach = dir.path().join("overreach.rhai");
    std::fs::write(
        &overreach,
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) {\n    notify(e.to.primary_email, \"s\", \"b\");\n}\n",
    )
    .unwrap();
    let out = admind()
        .args(["policy", "check"])
        .arg(&overreach)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("overreach.rhai:4:5: error: `notify` is not declared"),
        "{text}"
    );
    // A dry run on an event.
    let event = dir.path().join("event.json");
    let user = |signed: bool| json!({"id": "u", "name": "U", "primary_email": "u@x.test", "email_verified": true, "signed_in_before": signed});
    std::fs::write(
        &event,
        json!({"account_id": "acc_1", "actor_id": "o", "from": user(true), "to": user(false)})
            .to_string(),
    )
    .unwrap();
    let out = admind()
        .args(["policy", "test"])
        .arg(shipped.join("owner_change_guard.rhai"))
        .args(["--hook", "before_owner_change", "--event"])
        .arg(&event)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["decision"], "deny");
    assert_eq!(report["dry_run"], true);
    let seats = dir.path().join("seats.json");
    std::fs::write(&seats, json!({"account_id": "acc_1", "actor_id": "o", "seats_total": 3, "seats_used": 3, "attempt": "member.add"}).to_string()).unwrap();
    let out = admind()
        .args(["policy", "test"])
        .arg(shipped.join("temporary_licences.rhai"))
        .args(["--hook", "agent_seat_exhausted", "--event"])
        .arg(&seats)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["actions"][0]["action"], "request_licence",
        "{report}"
    );
    assert_eq!(report["actions"][0]["product"], "support");
    let out = admind()
        .args(["policy", "test"])
        .arg(&bad)
        .args(["--hook", "before_owner_change", "--event"])
        .arg(&event)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn break_glass_platform_support_switches_a_policy_off_and_on_across_a_restart() {
    let mut d = Daemon::start();
    write(&d, "freeze.rhai", DENY_ALL);
    wait_status(&d, "freeze.rhai", "loaded", |s| s.is_some()).await;
    let (a, owner, ot) = d.account_with_owner(5).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(r.code(), "policy_denied");

    // Only platform support, only a loaded policy, and a reason to switch off.
    let path = "/v1/policies/freeze.rhai/disable";
    let r = d.post(path, Some(&ot), json!({"reason": "stuck"})).await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
        "{}",
        r.body
    );
    let r = d
        .post(
            "/v1/policies/nothing.rhai/disable",
            Some(&d.operator),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = d
        .post(path, Some(&d.operator), json!({"reason": " "}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    let r = d
        .post(
            path,
            Some(&d.operator),
            json!({"reason": "denies every owner change"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["switched_off"]["reason"],
        "denies every owner change"
    );
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(r.status, StatusCode::OK, "switched off: {}", r.body);

    // Kept across a restart.
    d.kill();
    d.restart();
    let s = wait_status(&d, "freeze.rhai", "loaded", |s| s.is_some()).await;
    let _ = s;
    let status = script_status(&d, "freeze.rhai").await.unwrap();
    assert_eq!(status["switched_off"]["by"], "operator", "{status}");
    let r = try_transfer(&d, &a, &bt, &owner).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "still off after a restart: {}",
        r.body
    );

    // Back on: it decides again.
    let r = d
        .post(
            "/v1/policies/freeze.rhai/enable",
            Some(&d.operator),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["switched_off"].is_null());
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(r.code(), "policy_denied");

    // Both switches are in the platform's audit log, with who and why.
    let audit = d.get("/v1/audit", &d.operator).await.body;
    let items = audit["items"].as_array().unwrap();
    let off = items
        .iter()
        .find(|e| e["action"] == "policy.disable")
        .expect("audited");
    assert_eq!(off["target"], "policy:freeze.rhai");
    assert!(off["detail"]
        .as_str()
        .unwrap()
        .contains("denies every owner change"));
    assert!(items.iter().any(|e| e["action"] == "policy.enable"));
}

/// Replays `source` (named `name`) on the daemon until `n` calls were
/// replayed (records are committed a moment after the calls).
async fn replay_until(d: &Daemon, name: &str, source: &str, n: u64) -> Value {
    let started = Instant::now();
    loop {
        let r = d
            .post(
                "/v1/policies/replay",
                Some(&d.operator),
                json!({"name": name, "source": source}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["replayed"].as_u64() >= Some(n) {
            return r.body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replay_reports_exactly_the_decisions_a_draft_would_change_and_shadow_changes_no_outcome() {
    let d = Daemon::start();
    d.install_script("owner_change_guard.rhai");
    // A shadow version that allows everyone: recorded and compared, never enforced.
    std::fs::create_dir_all(d.scripts_dir().join("shadow")).unwrap();
    std::fs::write(
        d.scripts_dir().join("shadow/owner_change_guard.rhai"),
        "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(event) { }\n",
    )
    .unwrap();
    wait_status(&d, "owner_change_guard.rhai", "loaded", |s| s.is_some()).await;
    wait_status(&d, "shadow/owner_change_guard.rhai", "loaded", |s| {
        s.is_some_and(|s| s["shadow"] == true)
    })
    .await;
    let (a, owner, ot) = d.account_with_owner(10).await;
    // B set a password but never signed in; C signed in.
    let b = d.add_member(&ot, &a, "b@acme.test", "admin").await;
    let mail = d.wait_mail("b@acme.test", "Set your password", 1).await;
    d.post(
        "/v1/password-resets/confirm",
        None,
        json!({"token": mail.token(), "password": common::PASSWORD}),
    )
    .await;
    let (c, ct) = d.member(&ot, &a, "c@acme.test", "admin").await;

    // Three real calls: to B denied by the guard (the shadow's allow is not
    // enforced), to C allowed, back to the owner allowed.
    let r = try_transfer(&d, &a, &ot, &b).await;
    assert_eq!(r.code(), "policy_denied", "shadow never changes an outcome");
    assert_eq!(try_transfer(&d, &a, &ot, &c).await.status, StatusCode::OK);
    assert_eq!(
        try_transfer(&d, &a, &ct, &owner).await.status,
        StatusCode::OK
    );
    let shadow = script_status(&d, "shadow/owner_change_guard.rhai")
        .await
        .unwrap();
    assert_eq!(
        shadow["disagreements"], 1,
        "it would have allowed B: {shadow}"
    );

    // The shipped guard itself: nothing differs.
    let guard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/owner_change_guard.rhai"),
    )
    .unwrap();
    let same = replay_until(&d, "owner_change_guard.rhai", &guard, 3).await;
    assert_eq!(same["replayed"], 3, "{same}");
    assert_eq!(same["differing"], json!([]), "{same}");

    // A draft that flips one rule: anyone may become owner, except C.
    let audit_before = d.all_audit(&a, &ot).await.len();
    // The transfers' own mails first (they leave the outbox a moment later).
    let mut mails_before = d.mails().len();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = d.mails().len();
        if now == mails_before {
            break;
        }
        mails_before = now;
    }
    let draft = "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) {\n  if event.to.primary_email == \"c@acme.test\" { deny(\"not C\"); }\n}\n";
    let report = replay_until(&d, "owner_change_guard.rhai", draft, 3).await;
    // README shows this report.
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    let differing = report["differing"].as_array().unwrap();
    assert_eq!(differing.len(), 2, "{report}");
    let to = |d: &Value| d["now"]["decision"].as_str().unwrap().to_string();
    assert_eq!(differing[0]["was"]["decision"], "deny");
    assert_eq!(to(&differing[0]), "allow", "B would now be allowed");
    assert_eq!(differing[1]["was"]["decision"], "allow");
    assert_eq!(to(&differing[1]), "deny", "C would now be refused");
    assert_eq!(differing[1]["now"]["reason"], "not C");
    assert_eq!(
        differing[0]["compared_with"],
        "policy owner_change_guard.rhai"
    );
    assert_eq!(report["errors"], json!([]));
    assert!(report["latency"]["p99_us"].as_u64().is_some());
    // No effect of any kind.
    assert_eq!(d.all_audit(&a, &ot).await.len(), audit_before);
    assert_eq!(d.mails().len(), mails_before);

    // Errors and limit hits are reported, not fatal.
    let endless = "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(event) { loop { } }\n";
    let report = replay_until(&d, "endless.rhai", endless, 3).await;
    assert_eq!(report["limit_hits"], 3, "{report}");
    assert_eq!(report["errors"].as_array().unwrap().len(), 3);
    // A draft that does not load is a clear 400.
    let r = d
        .post(
            "/v1/policies/replay",
            Some(&d.operator),
            json!({"source": "fn before_owner_change(e) { deny(\"x\"); }"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "draft_invalid")
    );
    // Platform support only.
    let r = d
        .post("/v1/policies/replay", Some(&ot), json!({"source": draft}))
        .await;
    assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND);
}

/// Records are appended beside the writer and made durable by its next
/// flush; when no command follows, the record task flushes them itself a
/// moment later. A crash after that loses none.
#[tokio::test]
async fn hook_call_records_survive_a_crash_once_the_daemon_goes_quiet() {
    let mut d = Daemon::start();
    d.install_script("owner_change_guard.rhai");
    wait_status(&d, "owner_change_guard.rhai", "loaded", |s| s.is_some()).await;
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (c, ct) = d.member(&ot, &a, "c@acme.test", "admin").await;
    assert_eq!(try_transfer(&d, &a, &ot, &c).await.status, StatusCode::OK);
    assert_eq!(
        try_transfer(&d, &a, &ct, &owner).await.status,
        StatusCode::OK
    );
    let guard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/owner_change_guard.rhai"),
    )
    .unwrap();
    replay_until(&d, "owner_change_guard.rhai", &guard, 2).await;
    // Quiet: nothing commits now; the record task's own flush follows its
    // gathering time (200 ms), well inside this.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.restart();
    let after = replay_until(&d, "owner_change_guard.rhai", &guard, 2).await;
    assert_eq!(after["replayed"], 2, "{after}");
}

#[tokio::test]
async fn every_loaded_version_is_kept_and_an_audit_entrys_version_resolves_to_its_source() {
    let d = Daemon::start();
    let v1 = DENY_ALL.to_string();
    write(&d, "freeze.rhai", &v1);
    let first = wait_status(&d, "freeze.rhai", "loaded", |s| s.is_some()).await;
    let _ = first;
    let hash1 = script_status(&d, "freeze.rhai").await.unwrap()["version"]
        .as_str()
        .unwrap()
        .to_string();
    // A refusal names the version in the audit log.
    let (a, _, ot) = d.account_with_owner(5).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    assert_eq!(try_transfer(&d, &a, &ot, &b).await.code(), "policy_denied");
    let v2 = v1.replace("frozen for the audit", "frozen again");
    write(&d, "freeze.rhai", &v2);
    wait_status(&d, "freeze.rhai", "changed", |s| {
        s.is_some_and(|s| s["version"] != hash1.as_str())
    })
    .await;
    let started = Instant::now();
    let list = loop {
        let list = d
            .get("/v1/policies/freeze.rhai/versions", &d.operator)
            .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        if list.body["items"].as_array().unwrap().len() == 2 {
            break list.body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", list.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        list["items"][1]["version"],
        hash1.as_str(),
        "newest first: {list}"
    );
    let audit = d.all_audit(&a, &ot).await;
    let refusal = audit
        .iter()
        .find(|e| e["outcome"] == "refused:policy_denied")
        .expect("the refusal is audited");
    assert!(
        refusal["detail"].as_str().unwrap().contains(&hash1),
        "{refusal}"
    );
    let source = d
        .get(
            &format!("/v1/policies/freeze.rhai/versions/{hash1}"),
            &d.operator,
        )
        .await;
    assert_eq!(source.status, StatusCode::OK);
    assert_eq!(source.body["source"], v1.as_str());
    // Plugins: name, crate version, settings hash.
    let plugin = d
        .get("/v1/policies/reauth-reminder/versions", &d.operator)
        .await;
    let item = &plugin.body["items"][0];
    assert!(
        item["version"]
            .as_str()
            .unwrap()
            .starts_with("reauth-reminder@"),
        "{plugin:?}",
        plugin = plugin.body
    );
    assert_eq!(item["settings_hash"].as_str().map(str::len), Some(64));
    // Unknown versions are 404; members cannot read sources.
    let r = d
        .get("/v1/policies/freeze.rhai/versions/0000", &d.operator)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = d.get("/v1/policies/freeze.rhai/versions", &ot).await;
    assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND);
}

/// A policy for every `before_` hook that changes people or money, each
/// refusing one case a platform might want to forbid.
const GUARD_ALL: &str = r#"// hooks: before_member_add, before_member_remove, before_role_change, before_seat_change, before_email_primary, before_sell_role_change
// calls: deny
fn before_member_add(event) {
    if event.email.ends_with("@blocked.test") { deny("that domain is not allowed"); }
}
fn before_member_remove(event) {
    if event.member.name == "Under Investigation" { deny("this member is under investigation"); }
}
fn before_role_change(event) {
    if event.to_role == "admin" && event.actor_id != event.member.id && event.member.name == "Temp" { deny("temps stay agents"); }
}
fn before_seat_change(event) {
    if event.seats_to > 50 { deny(`at most 50 ${event.product} seats without a contract`); }
}
fn before_email_primary(event) {
    if event.new_primary.ends_with("@outside.test") { deny("primary addresses stay in the company"); }
}
fn before_sell_role_change(event) {
    if event.member.sell_role == "admin" && event.to_sell_role != "admin" { deny("Sell admins stay Sell admins"); }
}
"#;

#[tokio::test]
async fn before_hooks_every_change_of_people_or_money_can_be_vetoed_by_a_policy() {
    let d = Daemon::start_with("[limits]\nrefusals_per_minute = 1000\n");
    write(&d, "guard_all.rhai", GUARD_ALL);
    wait_status(&d, "guard_all.rhai", "loaded", |s| {
        s.is_some_and(|s| s["last_error"].is_null())
    })
    .await;
    let (a, owner, ot) = d.account_with_owner(10).await;
    let denied = |r: &common::Answer, reason: &str| {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "policy_denied"),
            "{}",
            r.body
        );
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("guard_all.rhai") && detail.contains(reason),
            "{detail}"
        );
    };
    let members = format!("/v1/accounts/{a}/members");
    let count = || async {
        d.get(&members, &ot).await.body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    // before_member_add
    let before = count().await;
    let r = d
        .post(
            &members,
            Some(&ot),
            json!({"name": "X", "email": "x@blocked.test", "role": "agent"}),
        )
        .await;
    denied(&r, "that domain is not allowed");
    assert_eq!(count().await, before, "nobody was added");
    let mut ids = Vec::new();
    for (name, email) in [
        ("Temp", "temp@acme.test"),
        ("Under Investigation", "inv@acme.test"),
    ] {
        let r = d
            .post(
                &members,
                Some(&ot),
                json!({"name": name, "email": email, "role": "agent"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let (temp, inv) = (ids[0].clone(), ids[1].clone());
    // before_role_change
    let r = d
        .patch(&format!("{members}/{temp}"), &ot, json!({"role": "admin"}))
        .await;
    denied(&r, "temps stay agents");
    let r = d
        .patch(
            &format!("{members}/{temp}"),
            &ot,
            json!({"role": "end_user"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // before_member_remove
    let r = d.delete(&format!("{members}/{inv}"), &ot).await;
    denied(&r, "under investigation");
    assert_eq!(
        d.get(&format!("{members}/{inv}"), &ot).await.status,
        StatusCode::OK
    );
    let r = d.delete(&format!("{members}/{temp}"), &ot).await;
    assert!(r.status.is_success(), "{}", r.body);
    // before_seat_change
    let seats = format!("/v1/accounts/{a}/billing/seats");
    let r = d.put(&seats, &ot, json!({"support_seats": 60})).await;
    denied(&r, "at most 50 support seats");
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.body["support"]["seats_total"],
        10
    );
    let r = d
        .put(&seats, &ot, json!({"support_seats": 20, "sell_seats": 2}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // before_email_primary
    let emails = format!("{members}/{owner}/emails");
    for address in ["me@outside.test", "me2@acme.test"] {
        let r = d
            .post(&emails, Some(&ot), json!({"address": address}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let mail = d.wait_mail(address, "Verify your address", 1).await;
        d.post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": mail.token()}),
        )
        .await;
    }
    let r = d
        .put(&format!("{emails}/me@outside.test/primary"), &ot, json!({}))
        .await;
    denied(&r, "stay in the company");
    let r = d
        .put(&format!("{emails}/me2@acme.test/primary"), &ot, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // before_sell_role_change: platform support appoints the owner first
    // Sell admin (R23); another Sell admin may not be lowered.
    let sell = format!("/v1/accounts/{a}/sell/users");
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/admins"),
            Some(&d.operator),
            json!({"user_id": owner}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = d
        .post(&sell, Some(&ot), json!({"user_id": inv, "role": "admin"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = d
        .patch(&format!("{sell}/{inv}"), &ot, json!({"role": "user"}))
        .await;
    denied(&r, "Sell admins stay Sell admins");
    let r = d.delete(&format!("{sell}/{inv}"), &ot).await;
    denied(&r, "Sell admins stay Sell admins");
    // Each refusal is in the audit log, naming the policy.
    let audit = d.all_audit(&a, &ot).await;
    let refused = audit
        .iter()
        .filter(|e| e["outcome"] == "refused:policy_denied")
        .count();
    assert_eq!(refused, 7, "{audit:?}");
}

#[tokio::test]
async fn before_hooks_every_new_hook_fails_closed_unless_configured_to_fail_open() {
    let hooks = [
        "before_member_add",
        "before_member_remove",
        "before_role_change",
        "before_seat_change",
        "before_email_primary",
        "before_sell_role_change",
    ];
    // Every hook's policy fails; before_member_add is configured to allow.
    let d = Daemon::start_with(
        "[limits]\nrefusals_per_minute = 1000\n[hooks.before_member_add]\non_failure = \"allow\"\n",
    );
    let source = format!(
        "// hooks: {}\n// calls: none\n{}",
        hooks.join(", "),
        hooks
            .iter()
            .map(|h| format!("fn {h}(event) {{ throw \"broken\"; }}\n"))
            .collect::<String>()
    );
    let (a, owner, ot) = d.account_with_owner(10).await;
    let agent = d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    let emails = format!("/v1/accounts/{a}/members/{owner}/emails");
    d.post(&emails, Some(&ot), json!({"address": "two@acme.test"}))
        .await;
    let mail = d.wait_mail("two@acme.test", "Verify your address", 1).await;
    d.post(
        "/v1/email-verifications/confirm",
        None,
        json!({"token": mail.token()}),
    )
    .await;
    // Sell with seats and an admin (the owner), before the policy loads.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/admins"),
            Some(&d.operator),
            json!({"user_id": owner}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"sell_seats": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    write(&d, "broken.rhai", &source);
    wait_status(&d, "broken.rhai", "loaded", |s| {
        s.is_some_and(|s| s["last_error"].is_null())
    })
    .await;
    let failed_closed = |r: common::Answer| {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "policy_denied"),
            "{}",
            r.body
        );
        assert!(r.body["detail"].as_str().unwrap().contains("broken.rhai"));
    };
    let members = format!("/v1/accounts/{a}/members");
    failed_closed(d.delete(&format!("{members}/{agent}"), &ot).await);
    failed_closed(
        d.patch(&format!("{members}/{agent}"), &ot, json!({"role": "admin"}))
            .await,
    );
    failed_closed(
        d.put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"support_seats": 12}),
        )
        .await,
    );
    failed_closed(
        d.put(&format!("{emails}/two@acme.test/primary"), &ot, json!({}))
            .await,
    );
    failed_closed(
        d.post(
            &format!("/v1/accounts/{a}/sell/users"),
            Some(&ot),
            json!({"user_id": agent, "role": "user"}),
        )
        .await,
    );
    // Configured to fail open: the failure is counted, the member added.
    let r = d
        .post(
            &members,
            Some(&ot),
            json!({"name": "N", "email": "n@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let status = script_status(&d, "broken.rhai").await.unwrap();
    assert!(status["failures"].as_u64().unwrap() >= 6, "{status}");
}

/// Each before-hook is checked against the script's header the same way as
/// `before_owner_change`: declared and defined, it loads; defined but not
/// declared, or calling a host function its `// calls:` does not name, the
/// file is refused with the place of the fault.
#[test]
fn before_hooks_every_new_hook_is_held_to_the_capability_header() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, source: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, source).unwrap();
        let out = admind()
            .args(["policy", "check"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for hook in [
        "before_member_add",
        "before_member_remove",
        "before_role_change",
        "before_seat_change",
        "before_email_primary",
        "before_sell_role_change",
    ] {
        let (ok, text) = check(
            &format!("{hook}_ok.rhai"),
            &format!("// hooks: {hook}\n// calls: deny\nfn {hook}(e) {{\n    deny(\"no\");\n}}\n"),
        );
        assert!(ok, "{hook}: {text}");
        assert!(text.contains(&format!("ok: {hook}")), "{hook}: {text}");

        let (ok, text) = check(
            &format!("{hook}_undeclared.rhai"),
            &format!("// hooks: after_owner_change\n// calls: none\nfn after_owner_change(e) {{}}\nfn {hook}(e) {{}}\n"),
        );
        assert!(!ok, "{hook} defined but not declared loaded: {text}");
        assert!(
            text.contains(&format!("`{hook}` is defined but not declared")),
            "{hook}: {text}"
        );

        let (ok, text) = check(
            &format!("{hook}_overreach.rhai"),
            &format!("// hooks: {hook}\n// calls: deny\nfn {hook}(e) {{\n    notify(\"a@b.test\", \"s\", \"b\");\n}}\n"),
        );
        assert!(!ok, "{hook} called an undeclared function: {text}");
        assert!(
            text.contains(&format!(
                "{hook}_overreach.rhai:4:5: error: `notify` is not declared"
            )),
            "{hook}: {text}"
        );
    }
}

/// A lane's run of after-hook events is handed to the handlers together,
/// and a run stops at a call that acts: each action is carried out, with
/// its own transfer as its cause, before the next event's handlers run.
/// The policy acts only for transfers to `b`, slowly, so the account's
/// later events wait in its lane and run as one run, acting and idle ones
/// mixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_hooks_of_a_lane_act_for_their_own_transfer_in_commit_order() {
    let d = Daemon::start_with("[scripts]\nmax_operations = 100000000\ntimeout_ms = 20000\n");
    let (a, owner, ot) = d.account_with_owner(5).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    write(
        &d,
        "to_b.rhai",
        "// hooks: after_owner_change\n// calls: notify\n\
         fn after_owner_change(event) {\n\
           if event.to.primary_email == \"b@acme.test\" {\n\
             let i = 0; while i < 200000 { i += 1; }\n\
             notify(event.to.primary_email, \"Owner again\", \"yes\");\n\
           }\n\
         }\n",
    );
    wait_status(&d, "to_b.rhai", "loaded", |s| s.is_some()).await;
    let transfers = 8;
    for n in 0..transfers {
        let (token, to) = if n % 2 == 0 { (&ot, &b) } else { (&bt, &owner) };
        let r = try_transfer(&d, &a, token, to).await;
        assert_eq!(r.status, StatusCode::OK, "transfer {n}: {}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (calls, to_b) = loop {
        let (calls, transfers_seen) = d
            .policy_calls_and_transfers(&a, &ot, "policy:to_b.rhai")
            .await;
        // Transfers to b are the 1st, 3rd, ...
        let to_b: Vec<u64> = transfers_seen.iter().step_by(2).copied().collect();
        if calls.len() >= transfers / 2 && transfers_seen.len() == transfers {
            break (calls, to_b);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} calls",
            calls.len(),
            transfers / 2
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let causes: Vec<u64> = calls.iter().map(|(_, cause)| *cause).collect();
    assert_eq!(
        causes, to_b,
        "one acting call per transfer to b, caused by it, in commit order (calls: {calls:?})"
    );
    d.wait_mail("b@acme.test", "Owner again", transfers / 2)
        .await;
    assert_eq!(
        d.mails()
            .iter()
            .filter(|m| m.subject == "Owner again")
            .count(),
        transfers / 2,
        "each acting call carried out once"
    );
}
