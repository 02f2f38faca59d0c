//! The daemon on PostgreSQL: a throwaway server (`tests/run.sh` starts one
//! and sets TEST_POSTGRES_URL), a database of its own per test. Ignored by
//! a plain `cargo test` (no server there); `tests/run.sh` runs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use common::{Daemon, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

fn fresh_database() -> String {
    common::fresh_postgres_database()
}

fn config(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npool_size = 4\n")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: tests/run.sh starts one (TEST_POSTGRES_URL)"]
async fn r01_r02_r11_the_rules_hold_on_postgres_across_a_sigkill() {
    let url = fresh_database();
    let mut d = Daemon::start_with(&config(&url));
    let (a, _owner, t) = d.account_with_owner(2).await;
    let (ada, _) = d.member(&t, &a, "ada@acme.test", "admin").await;
    // R11: both seats taken, a third agent is refused.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&t),
            json!({"name": "C", "email": "c@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.code(), "agent_seat_exhausted");
    // R01/R02: the hand-over, then billing is Ada's only.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/owner"),
            &t,
            json!({"user_id": ada}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let billing = d
        .get(&format!("/v1/accounts/{a}/billing/invoices"), &t)
        .await;
    assert_eq!(billing.code(), "billing_owner_only");

    // SIGKILL and a restart: every acknowledged change is in the database.
    d.kill();
    d.restart();
    let ta = d.sign_in(&a, "ada@acme.test", PASSWORD).await;
    let owner = d.get(&format!("/v1/accounts/{a}/owner"), &ta).await;
    assert_eq!(owner.body["id"], ada.as_str());
    let audit = d.all_audit(&a, &ta).await;
    assert!(
        audit.iter().any(|e| e["action"] == "owner.transfer"),
        "{audit:?}"
    );
    let summary = d.get(&format!("/v1/accounts/{a}"), &ta).await;
    assert_eq!(summary.body["support"]["seats_used"], 2);
}

/// Every record line of `admind export` of `store` (a data directory or a
/// connection string given as config), sorted, without the header's time.
fn export_lines(config_toml: &str, data_dir: &std::path::Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("admind.toml");
    std::fs::write(
        &cfg,
        format!("public_url = \"http://x.test\"\n{config_toml}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(["export", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn store_copy(from: &str, to: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(["store", "copy", "--from", from, "--to", to])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("agree"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: tests/run.sh starts one (TEST_POSTGRES_URL)"]
async fn store_copy_sled_to_postgres_to_sled_round_trips_exactly() {
    let mut d = Daemon::start();
    let (a, _owner, t) = d.account_with_owner(3).await;
    let (ada, _) = d.member(&t, &a, "ada@acme.test", "admin").await;
    d.put(
        &format!("/v1/accounts/{a}/owner"),
        &t,
        json!({"user_id": ada}),
    )
    .await;
    d.terminate();
    let original = export_lines("", &d.data_dir());
    let url = fresh_database();
    store_copy(d.data_dir().to_str().unwrap(), &url);
    let back = tempfile::tempdir().unwrap();
    store_copy(&url, back.path().to_str().unwrap());
    assert_eq!(
        export_lines("", back.path()),
        original,
        "sled → PostgreSQL → sled"
    );
    assert_eq!(
        export_lines(&config(&url), back.path()),
        original,
        "and the PostgreSQL copy itself"
    );
    // Never into a store that holds data.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(["store", "copy", "--from"])
        .arg(d.data_dir())
        .args(["--to", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
