//! A data directory written by the release before the binary value format
//! (every value JSON, format version 1; `tests/fixtures/store-v1/`, with
//! that release's `admind export` of it) opens with this build: it exports
//! the same records, the daemon serves it, and what it writes is version 2
//! while what it has not written stays version 1 and still reads.
//!
//! The fixture: one account ("reads"), its owner `owner-reads@bench.test`
//! (password `benchmark password`), three agents of whom one made admin,
//! an integration, a payment method and seat change (an invoice), a
//! pending licence request, a policy switched off, the audit log of it all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{on_postgres, Daemon};
use serde_json::{json, Value};

const ACCOUNT: &str = "acc_4e37e89650159b4a091c";
const OWNER_EMAIL: &str = "owner-reads@bench.test";
const OWNER_PASSWORD: &str = "benchmark password";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The records of an export (header and trailer apart), sorted, and its
/// trailer's counts.
fn export(data_dir: &Path) -> (Vec<Value>, Value) {
    let out = data_dir.with_extension("jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_admind"))
        .args(["export", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    parse(&out)
}

/// Fields records gained after the fixture's release (the directory's,
/// issue 25), removed where they hold their default: what is left must be
/// what that release exported.
fn without_fields_added_since(records: Vec<Value>) -> Vec<Value> {
    let added = [
        ("account", "scim_tokens", Value::Array(vec![])),
        ("account", "language", Value::Null),
        ("account", "billing_contacts", Value::Array(vec![])),
        ("invoice", "amount_cents", Value::from(0)),
        ("invoice", "currency", Value::from("")),
        ("user", "deactivated_at", Value::Null),
        ("user", "external_id", Value::Null),
        ("user", "user_name", Value::Null),
        ("user", "primary_requested", Value::Null),
        ("user", "modified_at", Value::Null),
        ("user", "last_signed_in_at", Value::Null),
    ];
    records
        .into_iter()
        .map(|mut record| {
            let kind = record["kind"].as_str().unwrap_or("").to_string();
            if let Some(value) = record.get_mut("value").and_then(Value::as_object_mut) {
                // Written by the test's own sign-ins, whatever the release.
                if kind == "user" {
                    value.remove("last_signed_in_at");
                }
                for (k, field, default) in &added {
                    if *k == kind && value.get(*field) == Some(default) {
                        value.remove(*field);
                    }
                }
            }
            record
        })
        .collect()
}

fn parse(file: &Path) -> (Vec<Value>, Value) {
    let (_, lines, trailer) = common::export_records(file);
    (lines, trailer)
}

fn census(data_dir: &Path) -> std::collections::BTreeMap<String, [usize; 3]> {
    let store = admind::store::SledStore::open(&data_dir.join("db")).unwrap();
    store
        .format_census()
        .unwrap()
        .into_iter()
        .map(|(tree, counts)| (tree.to_string(), counts))
        .collect()
}

#[tokio::test]
async fn a_store_written_by_the_previous_release_reads_exports_and_upgrades() {
    if on_postgres() {
        // The fixture is a sled directory; PostgreSQL keeps JSON.
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    copy_dir(&fixture().join("data"), &data);
    let before = census(&data);
    assert!(
        before.values().all(|c| c[1] == 0 && c[2] == 0),
        "all version 1: {before:?}"
    );
    assert_eq!(before["accounts"], [1, 0, 0]);
    assert_eq!(before["users"], [4, 0, 0]);

    // Read by this build, the same records as that release exported, with
    // the fields added since at their defaults.
    let (records, trailer) = export(&data);
    let records = without_fields_added_since(records);
    let (expected, expected_trailer) = parse(&fixture().join("export-v1.jsonl"));
    assert_eq!(trailer, expected_trailer);
    assert_eq!(records, expected);

    // The daemon serves it.
    let mut d = Daemon::start();
    d.terminate();
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    copy_dir(&data, &d.data_dir());
    d.operator = std::fs::read_to_string(d.data_dir().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    d.restart();
    let token = d.sign_in(ACCOUNT, OWNER_EMAIL, OWNER_PASSWORD).await;
    let members = d.all_members(ACCOUNT, &token).await;
    assert_eq!(members.len(), 4);
    assert_eq!(members.iter().filter(|m| m["role"] == "admin").count(), 2);
    let acc = d.get(&format!("/v1/accounts/{ACCOUNT}"), &token).await.body;
    assert_eq!(acc["support"], json!({"seats_total": 6, "seats_used": 4}));
    let integrations = d
        .get(&format!("/v1/accounts/{ACCOUNT}/integrations"), &token)
        .await
        .body;
    assert_eq!(
        integrations["items"][0]["name"], "CRM sync",
        "{integrations}"
    );
    let audit = d.all_audit(ACCOUNT, &token).await;
    assert!(audit.len() >= 10, "{}", audit.len());
    // A write: the account is written again.
    let r = d
        .put(
            &format!("/v1/accounts/{ACCOUNT}/billing/seats"),
            &token,
            json!({"support_seats": 7}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    d.terminate();

    // What was written is version 2; what was not is still version 1.
    let after = census(&d.data_dir());
    assert_eq!(after["accounts"], [0, 1, 0], "{after:?}");
    assert_eq!(
        after["users"],
        [3, 1, 0],
        "only the member who signed in is rewritten (their last sign-in): {after:?}"
    );
    assert!(after["sessions"][1] >= 1, "the new session: {after:?}");
    assert_eq!(after["audit"][0], 11, "old entries stay as written");
    assert!(after["audit"][1] >= 1, "new entries are version 2");

    // And both read after a restart, through the API and the export.
    d.restart();
    let token = d.sign_in(ACCOUNT, OWNER_EMAIL, OWNER_PASSWORD).await;
    let acc = d.get(&format!("/v1/accounts/{ACCOUNT}"), &token).await.body;
    assert_eq!(acc["support"]["seats_total"], 7);
    d.terminate();
    let (records, _) = export(&d.data_dir());
    let records = without_fields_added_since(records);
    let account = records
        .iter()
        .find(|r| r["kind"] == "account")
        .expect("the account");
    let old = expected.iter().find(|r| r["kind"] == "account").unwrap();
    assert_eq!(account["value"]["support_seats_bought"], 7);
    assert_eq!(
        account["value"]["created_at"], old["value"]["created_at"],
        "times come back as the same RFC 3339 text"
    );
    for r in &expected {
        if r["kind"] == "user" || r["kind"] == "integration" || r["kind"] == "licence_request" {
            assert!(records.contains(r), "unchanged: {r}");
        }
    }
}
