//! `admind export` / `admind import` over real data directories: a seeded
//! store round-trips exactly, the daemon runs on the imported copy (the
//! same people sign in, the same owner, the same audit log, ids going on),
//! and a damaged file or a non-empty store changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, PASSWORD};
use serde_json::json;

fn admind(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// `admind ARGS` on a daemon's store (whichever backend the suite runs on).
fn admind_on(args: &[&str], d: &Daemon) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(args)
        .arg("--config")
        .arg(d.config_path())
        .arg("--data-dir")
        .arg(d.data_dir())
        .output()
        .unwrap()
}

#[tokio::test]
async fn r01_r02_export_and_import_round_trip_a_store_exactly() {
    let mut d = Daemon::start();
    let (a, _owner, t) = d.account_with_owner(3).await;
    let (ada, ada_token) = d.member(&t, &a, "ada@acme.test", "admin").await;
    let r = d
        .put(
            &format!("/v1/accounts/{a}/owner"),
            &t,
            json!({"user_id": ada}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members/{ada}/emails"),
            Some(&ada_token),
            json!({"address": "ada@elsewhere.test"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let audit_before = d
        .all_audit(&a, &d.sign_in(&a, "ada@acme.test", PASSWORD).await)
        .await;
    d.terminate();

    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let out = admind_on(&["export", "--out", first.to_str().unwrap()], &d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (header, lines, trailer) = common::export_records(&first);
    assert_eq!(header["format"], "admind-export");
    assert_eq!(header["version"], 1);
    assert_eq!(
        trailer["end"]["records"].as_u64().unwrap() as usize,
        lines.len()
    );
    assert!(lines.iter().any(|l| l["kind"] == "audit"));
    assert!(lines.iter().any(|l| l["kind"] == "email_index"));

    // Into a new store: a second daemon's empty data directory.
    let mut e = Daemon::start();
    e.terminate();
    let out = admind_on(&["import", "--in", first.to_str().unwrap()], &e);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = dir.path().join("second.jsonl");
    let out = admind_on(&["export", "--out", second.to_str().unwrap()], &e);
    assert!(out.status.success());
    let (_, again, _) = common::export_records(&second);
    assert_eq!(lines, again, "the copy holds exactly the same records");

    // The daemon runs on the copy: same people, owner and log; ids go on.
    e.restart();
    let ta = e.sign_in(&a, "ada@acme.test", PASSWORD).await;
    let owner = e.get(&format!("/v1/accounts/{a}/owner"), &ta).await;
    assert_eq!(owner.body["id"], ada.as_str(), "R01: the owner survived");
    let invoices = e
        .get(&format!("/v1/accounts/{a}/billing/invoices"), &ta)
        .await;
    assert_eq!(
        invoices.status,
        reqwest::StatusCode::OK,
        "R02: billing is the owner's"
    );
    let audit_after = e.all_audit(&a, &ta).await;
    assert_eq!(
        audit_before.iter().map(|x| &x["seq"]).collect::<Vec<_>>(),
        audit_after
            .iter()
            .take(audit_before.len())
            .map(|x| &x["seq"])
            .collect::<Vec<_>>()
    );
    let max_seq = audit_before
        .iter()
        .map(|x| x["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    e.add_member(&ta, &a, "new@acme.test", "agent").await;
    let newest = e.all_audit(&a, &ta).await;
    assert!(
        newest.last().unwrap()["seq"].as_u64().unwrap() > max_seq,
        "ids go on past the imported ones"
    );
}

#[tokio::test]
async fn import_refuses_a_damaged_file_and_a_store_that_is_not_empty() {
    let mut d = Daemon::start();
    d.account_with_owner(2).await;
    d.terminate();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    assert!(admind_on(&["export", "--out", file.to_str().unwrap()], &d)
        .status
        .success());

    // Not into a store that holds data.
    let out = admind_on(&["import", "--in", file.to_str().unwrap()], &d);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // A file cut short (no trailer) changes nothing; the whole file then works.
    let text = std::fs::read_to_string(&file).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    let short = dir.path().join("short.jsonl");
    std::fs::write(&short, cut[..cut.len() - 1].join("\n")).unwrap();
    let target = dir.path().join("target");
    let out = admind(&["import", "--in", short.to_str().unwrap()], &target);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cut short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A version this build does not read.
    let newer = dir.path().join("newer.jsonl");
    std::fs::write(&newer, text.replacen("\"version\":1", "\"version\":99", 1)).unwrap();
    let out = admind(&["import", "--in", newer.to_str().unwrap()], &target);
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 99"));
    let out = admind(&["import", "--in", file.to_str().unwrap()], &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mail an earlier version queued on its own (one outbox row per mail,
/// rendered at commit) and that was still waiting when its store was
/// exported: imported into this build, which queues a change's mails as
/// one item, it is read as an item of that mail and delivered under its
/// own outbox id, and leaves the outbox (R03: the old owner's notice is
/// not lost across an upgrade).
#[tokio::test]
async fn r03_a_mail_queued_alone_by_an_earlier_version_is_delivered_after_import() {
    let mut d = Daemon::start();
    d.terminate();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("earlier.jsonl");
    let now = chrono::Utc::now().to_rfc3339();
    let lines = [
        json!({"format": "admind-export", "version": 1, "exported_at": now, "from": "sled"}),
        json!({"kind": "queue_item", "queue": "outbox", "id": 4242, "value": {
            "id": 4242,
            "to": "old-owner@acme.test",
            "subject": "You are no longer the owner of Acme",
            "body": "Ada is now the owner of Acme.\n",
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": null,
        }}),
        json!({"end": {"counts": {"queue_item": 1}, "records": 1}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let out = admind_on(&["import", "--in", file.to_str().unwrap()], &d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.restart();
    let mail = d
        .wait_mail("old-owner@acme.test", "no longer the owner", 1)
        .await;
    assert!(
        mail.file.ends_with(&format!("{:020}.eml", 4242)),
        "named after its own outbox id: {}",
        mail.file
    );
    assert!(mail.body.contains("Ada is now the owner"), "{}", mail.body);
    d.wait_metric("admind_mail_delivered_total", 1.0).await;
    // Off the outbox once its settling commits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while d.metric("admind_outbox_depth").await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mail stays queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
