//! The writer on a real sled store, in-process: what its answers promise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::sync::Arc;

use admind::domain::cmd;
use admind::domain::*;
use admind::metrics::Metrics;
use admind::queue::Wakers;
use admind::store::writer::{Writer, WriterDeps};
use admind::store::Store;

/// A 2xx means durable: with many concurrent callers sharing each flush
/// (group commit), every caller hears back only once a flush that started
/// after its commit has finished. The store's durable watermark (ids
/// issued before a finished flush started) must cover the answered
/// command's audit entry the moment the answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_answered_only_once_a_flush_covers_its_commit() {
    const CALLERS: usize = 32;
    const COMMANDS_EACH: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: Arc::new(AllowAll),
        render: Arc::new(|n| admind::mail::render(n, "http://t", "en")),
        metrics: metrics.clone(),
        wakers: Arc::new(Wakers::default()),
        sinks: Vec::new(),
    });
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (writer, store) = (writer.clone(), store.clone());
        callers.push(tokio::spawn(async move {
            for n in 0..COMMANDS_EACH {
                let reply = writer
                    .submit(
                        Principal::Operator,
                        Command::CreateAccount(cmd::CreateAccount {
                            name: format!("acme-{c}-{n}"),
                            owner_name: "O".into(),
                            owner_email: format!("o{n}@c{c}.test"),
                            support_seats: 5,
                            language: None,
                        }),
                    )
                    .await;
                let durable = store.durable_id();
                let Ok(Reply::Account(account)) = reply else {
                    panic!("an account: {reply:?}")
                };
                let entries = store.audit(&account.id, None, 10).unwrap();
                let seq = entries.iter().map(|e| e.seq).max().expect("its audit entry");
                assert!(
                    durable >= seq,
                    "answered before its commit was flushed: audit seq {seq}, durable up to {durable}"
                );
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    // The flushes were shared: fewer flushes than commands.
    let text = metrics.render();
    let flushes = text
        .lines()
        .find_map(|l| l.strip_prefix("admind_store_flush_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the flush histogram");
    assert!(
        flushes < (CALLERS * COMMANDS_EACH) as f64,
        "{flushes} flushes for {} commands",
        CALLERS * COMMANDS_EACH
    );
}
