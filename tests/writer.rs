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
    let (writer, store, metrics) = sled_writer(dir.path());
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (writer, store) = (writer.clone(), store.clone());
        callers.push(tokio::spawn(async move {
            for n in 0..COMMANDS_EACH {
                let reply = writer
                    .submit(
                        Principal::Operator,
                        new_account(format!("acme-{c}-{n}"), format!("o{n}@c{c}.test")),
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
    let flushes = flushes(&metrics);
    assert!(
        flushes < (CALLERS * COMMANDS_EACH) as f64,
        "{flushes} flushes for {} commands",
        CALLERS * COMMANDS_EACH
    );
}

fn flushes(metrics: &Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("admind_store_flush_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the flush histogram")
}

fn sled_writer(dir: &std::path::Path) -> (Writer, Store, Arc<Metrics>) {
    let store = Store::open_sled(dir).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: Arc::new(AllowAll),
        render: Arc::new(|n, _| admind::mail::render(n, "http://t", "en")),
        metrics: metrics.clone(),
        wakers: Arc::new(Wakers::default()),
        sinks: Vec::new(),
    });
    (writer, store, metrics)
}

/// A worker's bookkeeping may wait for the next command's flush instead of
/// a flush of its own (while commands come: each round commits one just
/// before), but with no command behind it it is flushed on its own soon
/// after, and its worker is answered only once it has been.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookkeeping_alone_is_answered_once_flushed_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _, metrics) = sled_writer(dir.path());
    for round in 1..=3 {
        let reply = writer
            .submit(
                Principal::Operator,
                new_account(format!("acme-{round}"), format!("o@c{round}.test")),
            )
            .await;
        assert!(matches!(reply, Ok(Reply::Account(_))), "{reply:?}");
        let before = flushes(&metrics);
        let settled = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            writer.submit_writes(vec![admind::store::Write::PutSubscriberState {
                name: format!("crm-{round}"),
                value: b"{}".to_vec(),
            }]),
        )
        .await
        .expect("bookkeeping with no command behind it is still answered");
        settled.unwrap();
        assert!(
            flushes(&metrics) > before,
            "answered before a flush covered it"
        );
    }
}

/// Bookkeeping sent just before a command is answered with it: neither
/// waits for the other beyond one flush, whichever batch each lands in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookkeeping_and_a_command_behind_it_are_both_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _, metrics) = sled_writer(dir.path());
    for n in 0..20 {
        let bookkeeping = writer.submit_writes(vec![admind::store::Write::PutSubscriberState {
            name: format!("crm-{n}"),
            value: b"{}".to_vec(),
        }]);
        let command = writer.submit(
            Principal::Operator,
            new_account(format!("acme-{n}"), format!("o@c{n}.test")),
        );
        let (settled, reply) = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            futures::future::join(bookkeeping, command),
        )
        .await
        .expect("both answered");
        settled.unwrap();
        assert!(matches!(reply, Ok(Reply::Account(_))), "{reply:?}");
    }
    assert!(flushes(&metrics) >= 1.0);
}

/// R09 in a batch committed as one transaction: the commands of one batch
/// are staged together and applied by its flush, so each must read what
/// the ones before it wrote. Twenty adds of agents (each address twice)
/// to two accounts of five seats, sent at once: whatever the batches,
/// each account ends with exactly its four free seats taken, each address
/// once, the others refused with `email_taken` or `agent_seat_exhausted`
/// (a refusal's audit entry staged beside the others' commits), and the
/// store agrees. The last check makes sure the run did batch commands
/// together (else it would prove nothing about a group's reads): with
/// reads that missed the stage, addresses were added twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_commands_of_one_batch_see_each_others_seats_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, store, metrics) = sled_writer(dir.path());
    let mut accounts = Vec::new();
    for n in 0..2 {
        let reply = writer
            .submit(
                Principal::Operator,
                new_account(format!("acme-{n}"), format!("o@c{n}.test")),
            )
            .await;
        let Ok(Reply::Account(account)) = reply else {
            panic!("an account: {reply:?}")
        };
        accounts.push(account);
    }
    let mut adds = Vec::new();
    for account in &accounts {
        let owner = Principal::Member {
            account_id: account.id.clone(),
            user_id: account.owner_id.clone(),
        };
        for n in 0..10 {
            let email = format!("agent{}@acme.test", n / 2);
            let (writer, owner, account_id) = (writer.clone(), owner.clone(), account.id.clone());
            adds.push(async move {
                let reply = writer
                    .submit(
                        owner,
                        Command::AddMember(cmd::AddMember {
                            account_id: account_id.clone(),
                            name: "Agent".into(),
                            email: email.clone(),
                            role: SupportRole::Agent,
                        }),
                    )
                    .await;
                (account_id, email, reply)
            });
        }
    }
    let replies = futures::future::join_all(adds).await;
    for account in &accounts {
        let mut added = Vec::new();
        for (account_id, email, reply) in &replies {
            if *account_id != account.id {
                continue;
            }
            match reply {
                Ok(_) => added.push(email.clone()),
                Err(refusal) => assert!(
                    ["email_taken", "agent_seat_exhausted"].contains(&refusal.code),
                    "{email}: {refusal:?}"
                ),
            }
        }
        added.sort();
        let mut distinct = added.clone();
        distinct.dedup();
        assert_eq!(added, distinct, "an address added twice: {added:?}");
        assert_eq!(added.len(), 4, "the four free seats: {added:?}");
        let stored = store.account(&account.id).unwrap().expect("the account");
        assert_eq!(stored.support_seats_used, 5, "{stored:?}");
        assert_eq!(stored.member_count, 5, "{stored:?}");
        for email in &added {
            assert!(
                store.user_by_email(&account.id, email).unwrap().is_some(),
                "{email}"
            );
        }
    }
    let rendered = metrics.render();
    let metric = |name: &str| {
        rendered
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (commands, batches) = (
        metric("admind_store_batch_size_sum"),
        metric("admind_store_batch_size_count"),
    );
    assert!(
        commands > batches,
        "no batch held two commands: {commands} commands in {batches} groups"
    );
}

/// A command creating an account of five seats.
fn new_account(name: String, owner_email: String) -> Command {
    Command::CreateAccount(cmd::CreateAccount {
        name,
        owner_name: "O".into(),
        owner_email,
        support_seats: 5,
        language: None,
    })
}
