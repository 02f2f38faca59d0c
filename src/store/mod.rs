//! The store interface: what every backend (sled, memory, and the next one)
//! provides, in the store's own terms. Nothing here names sled, a tree or a
//! key layout; the writer, the queue worker and the workers' queues speak
//! only this.
//!
//! A backend keeps three things:
//! - the domain's state, read through the core's [`StateView`](crate::domain::StateView) and changed
//!   by the core's [`Change`](crate::domain::Change)s;
//! - the audit log (entries numbered by the store);
//! - durable queues ([`QueueName`]: mail, hook events, outbound deliveries,
//!   and their dead or finished items) plus a few worker records, which it
//!   stores as opaque encoded values keyed by id or name.
//!
//! A [`Transaction`] carries all of one command's writes (changes, audit
//! entry, mails, hook events, queue writes) and commits atomically; only
//! the writer thread ([`writer`]) commits, then calls [`Backend::flush`]
//! once per batch. Workers read only queue items that are durable
//! ([`Backend::durable_id`]), so nothing is sent that a crash could undo.

pub mod backend;
pub mod cache;
pub mod codec;
pub mod error;
pub mod kv;
pub mod memory;
pub mod postgres_cache;
pub mod postgres_conn;
pub mod postgres_store;
pub mod records;
pub mod sled_store;
pub mod writer;

pub use backend::{
    About, Backend, CommandLock, Coordination, Hide, Kind, LockScope, MailsAttempted, NotShared,
    Order, OutboxItem, OutboxMail, Prefetch, QueueName, QueuedEvent, Record, RecordVisit,
    ReplicaInfo, Restore, RowVisit, Store, StoreError, Transaction, Visit, Write,
};
pub use sled_store::SledStore;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::*;
    use chrono::Utc;

    /// One store of each backend (the directory lives as long as its store);
    /// PostgreSQL too when `TEST_POSTGRES_URL` names a server (`tests/run.sh`
    /// starts a throwaway one), each call on a database of its own.
    pub fn every_backend() -> Vec<(Option<tempfile::TempDir>, Store)> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sled = Store::open_sled(dir.path()).expect("opening sled");
        let mut all = vec![
            (Some(dir), sled),
            (None, Store::new(memory::MemoryBackend::default())),
        ];
        if let Some(url) = fresh_postgres_database() {
            all.push((
                None,
                Store::open_postgres(&url, 4).expect("opening PostgreSQL"),
            ));
        }
        all
    }

    /// A new, empty database on the test server, if there is one.
    pub fn fresh_postgres_database() -> Option<String> {
        let admin = std::env::var("TEST_POSTGRES_URL").ok()?;
        let name = format!(
            "admind_t{}",
            &crate::secret::random_token()
                .to_lowercase()
                .replace(['-', '_'], "")[..16]
        );
        let mut client =
            postgres::Client::connect(&admin, postgres::NoTls).expect("the test server");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        Some(format!("{admin} dbname={name}"))
    }

    /// A scan of a queue's ids visits the ids a scan of its items does, in
    /// either order and across the backend's pages (PostgreSQL reads 500
    /// rows a round trip), and stops when asked: retention counts the hook
    /// record by ids, reading no values.
    #[test]
    fn a_scan_of_ids_visits_what_a_scan_of_items_does() {
        for (_dir, store) in every_backend() {
            let writes = (1..=1_203u64)
                .map(|n| Store::queue_put(QueueName::HookCalls, n * 3, &serde_json::json!([n])))
                .collect();
            store
                .commit(Transaction::of_writes(writes))
                .expect("committing");
            for order in [Order::OldestFirst, Order::NewestFirst] {
                let mut items = Vec::new();
                store
                    .queue_scan(QueueName::HookCalls, order, &mut |id, _| {
                        items.push(id);
                        Ok(true)
                    })
                    .expect("a scan of items");
                let mut ids = Vec::new();
                store
                    .queue_scan_ids(QueueName::HookCalls, order, &mut |id| {
                        ids.push(id);
                        Ok(true)
                    })
                    .expect("a scan of ids");
                assert_eq!(ids.len(), 1_203, "{} {order:?}", store.kind());
                assert_eq!(ids, items, "{} {order:?}", store.kind());
                let mut first = Vec::new();
                store
                    .queue_scan_ids(QueueName::HookCalls, order, &mut |id| {
                        first.push(id);
                        Ok(first.len() < 2)
                    })
                    .expect("a scan of ids");
                assert_eq!(first, items[..2], "{} {order:?}", store.kind());
            }
        }
    }

    /// A queue item written again (a page of the hook-call record, about
    /// 125 KB) reads back exactly on every backend; on PostgreSQL its JSON
    /// text goes to the text column as it is, and the column compresses
    /// with lz4 where the server can (schema 5).
    #[test]
    fn a_large_queue_value_reads_back_exactly_and_postgresql_compresses_it_with_lz4() {
        let page: Vec<serde_json::Value> = (0..1_000u64)
            .map(|n| {
                serde_json::json!({
                    "id": n,
                    "hook": "after_owner_change",
                    "event": {"account_id": format!("acc_{n:016x}"), "note": "é \" \\ \u{1}"},
                    "decision": {"allow": n % 2 == 0, "took_us": n * 7},
                })
            })
            .collect();
        let bytes = serde_json::to_vec(&page).expect("JSON");
        assert!(bytes.len() > 100_000, "{}", bytes.len());
        for (_dir, store) in every_backend() {
            for round in 0..2 {
                store
                    .commit(Transaction::of_writes(vec![Store::queue_put(
                        QueueName::HookCalls,
                        7,
                        &page,
                    )]))
                    .expect("committing");
                let mut read = Vec::new();
                store
                    .queue_scan(
                        QueueName::HookCalls,
                        Order::OldestFirst,
                        &mut |id, value| {
                            read.push((id, value.to_vec()));
                            Ok(true)
                        },
                    )
                    .expect("a scan");
                assert_eq!(read.len(), 1, "{} round {round}", store.kind());
                let back: Vec<serde_json::Value> =
                    codec::decode(&read[0].1).expect("decoding the page");
                assert_eq!(back, page, "{} round {round}", store.kind());
            }
        }
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        Store::open_postgres(&url, 2)
            .expect("opening PostgreSQL")
            .commit(Transaction::of_writes(vec![Store::queue_put(
                QueueName::HookCalls,
                7,
                &page,
            )]))
            .expect("committing");
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connecting");
        let lz4: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals))",
                &[],
            )
            .expect("asking for lz4")
            .get(0);
        let method: Option<String> = client
            .query_one(
                "SELECT pg_column_compression(value) FROM queue_items WHERE id = 7",
                &[],
            )
            .expect("reading the compression")
            .get(0);
        let want = if lz4 { "lz4" } else { "pglz" };
        assert_eq!(method.as_deref(), Some(want));
    }

    /// A worker's window on a queue starts past the id it is given, on
    /// every backend: the key-value stores seek there (a laned worker
    /// reads only what follows what it handed out), PostgreSQL asks for
    /// `id > after`. Oldest first, at most the limit, nothing past the end.
    #[test]
    fn a_queue_window_holds_exactly_the_items_past_its_start() {
        for (_dir, store) in every_backend() {
            let ids: Vec<u64> = (1..=700).map(|n| n * 10).collect();
            let writes = ids
                .iter()
                .map(|&id| {
                    Store::queue_put(QueueName::Deliveries, id, &serde_json::json!({ "id": id }))
                })
                .collect();
            store
                .commit(Transaction::of_writes(writes))
                .expect("committing");
            store.flush().expect("flushing");
            let me = Hide::HeldElsewhere { me: "me" };
            let window = |after, limit| -> Vec<u64> {
                store
                    .queue_window(QueueName::Deliveries, after, me, limit)
                    .expect("a window")
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            };
            let expected: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|&id| id > 995)
                .take(300)
                .collect();
            assert_eq!(window(995, 300), expected, "{}", store.kind());
            assert_eq!(window(1000, 2), vec![1010, 1020], "{}", store.kind());
            assert_eq!(window(0, 1), vec![10], "{}", store.kind());
            assert!(window(7000, 300).is_empty(), "{}", store.kind());
            assert!(window(u64::MAX, 300).is_empty(), "{}", store.kind());
            assert!(window(0, 0).is_empty(), "{}", store.kind());
        }
    }

    /// A mail to `to`, numbered by its commit.
    fn test_mail(to: &str) -> OutboxMail {
        let now = Utc::now();
        OutboxMail {
            id: 0,
            to: to.into(),
            subject: "s".into(),
            body: "b".into(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            notice: None,
            language: None,
        }
    }

    /// An account of one owner, `usr_o`.
    pub(crate) fn test_account(id: &str, name: &str) -> Account {
        Account {
            id: id.into(),
            name: name.into(),
            owner_id: "usr_o".into(),
            created_at: Utc::now(),
            support_seats_bought: 1,
            support_seats_used: 1,
            sell: SellState::default(),
            grants: Vec::new(),
            payment_method: None,
            member_count: 1,
            scim_tokens: Vec::new(),
            language: None,
            billing_contacts: Vec::new(),
        }
    }

    /// Group commit on a shared store: commands of several accounts in one
    /// transaction, each in a savepoint. One that is refused (writes
    /// nothing) and one whose writes fail in the database leave nothing
    /// and fail no other; the rest are committed by the one flush, and not
    /// before it.
    #[test]
    fn a_group_commits_the_others_when_one_is_refused_and_one_fails() {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let store = Store::open_postgres(&url, 4).expect("opening PostgreSQL");
        let other = Store::open_postgres(&url, 2).expect("a second replica");
        let lease = std::time::Duration::from_secs(60);
        store.own_new_items("replica-a", lease, lease);
        let mail = test_mail;
        let account = |id: &str| test_account(id, id);
        let entry = AuditEntry {
            seq: 7,
            account_id: "acc_b".into(),
            at: Utc::now(),
            actor: "operator".into(),
            action: "x".into(),
            target: "t".into(),
            outcome: "ok".into(),
            detail: String::new(),
            cause: None,
        };
        store
            .commit(Transaction::of_writes(vec![Write::Restore(Box::new(
                Record::Audit {
                    value: entry.clone(),
                },
            ))]))
            .unwrap();
        let accounts: Vec<String> = ["acc_a", "acc_b", "acc_c", "acc_d"]
            .map(String::from)
            .into();
        let group = store.lock_command(LockScope::Accounts(&accounts)).unwrap();
        // a: committed.
        {
            let _command = store.lock_command(LockScope::Account("acc_a")).unwrap();
            store
                .commit(Transaction {
                    changes: vec![Change::PutAccount(account("acc_a"))],
                    mails: vec![mail("a@example.com")],
                    ..Transaction::default()
                })
                .unwrap();
        }
        // b: its writes fail in the database (the audit entry exists).
        {
            let _command = store.lock_command(LockScope::Account("acc_b")).unwrap();
            let failed = store.commit(Transaction {
                changes: vec![Change::PutAccount(account("acc_b"))],
                mails: vec![mail("b@example.com")],
                writes: vec![Write::Restore(Box::new(Record::Audit { value: entry }))],
                ..Transaction::default()
            });
            assert!(failed.is_err());
        }
        // c: refused, nothing written.
        {
            let _command = store.lock_command(LockScope::Account("acc_c")).unwrap();
        }
        // d: committed after the failure.
        {
            let _command = store.lock_command(LockScope::Account("acc_d")).unwrap();
            store
                .commit(Transaction {
                    changes: vec![Change::PutAccount(account("acc_d"))],
                    ..Transaction::default()
                })
                .unwrap();
        }
        assert!(
            other.account("acc_a").unwrap().is_none(),
            "nothing of a group is seen before its flush"
        );
        store.flush().unwrap();
        drop(group);
        assert!(other.account("acc_a").unwrap().is_some());
        assert!(other.account("acc_b").unwrap().is_none());
        assert!(other.account("acc_c").unwrap().is_none());
        assert!(other.account("acc_d").unwrap().is_some());
        // Only what was committed is handed to the workers.
        let handed = store
            .take_committed(QueueName::Outbox)
            .expect("handed over");
        let to: Vec<String> = handed
            .iter()
            .flat_map(|(_, v)| codec::decode::<OutboxItem>(v).expect("mails").mails)
            .map(|mail| mail.to)
            .collect();
        assert_eq!(to, ["a@example.com"]);
    }

    /// A group on a shared store reads what it prefetched with its locks,
    /// and each command reads what the commands before it in the group
    /// wrote (from memory, or from the database after their rows are sent)
    /// while another replica sees none of it before the flush; the group's
    /// ids grow in command order, and its audit entries and mails link up.
    #[test]
    fn a_group_reads_what_its_earlier_commands_wrote_and_numbers_them_in_order() {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let store = Store::open_postgres(&url, 4).expect("opening PostgreSQL");
        let other = Store::open_postgres(&url, 2).expect("a second replica");
        let now = Utc::now();
        let account = test_account;
        let draft = |account_id: &str, action: &str| AuditDraft {
            account_id: account_id.into(),
            actor: "operator".into(),
            action: action.into(),
            target: "t".into(),
            outcome: "ok".into(),
            detail: String::new(),
            at: now,
            cause: None,
        };
        let mail = test_mail("a@example.com");
        store
            .commit(Transaction {
                changes: vec![Change::PutAccount(account("acc_a", "one"))],
                ..Transaction::default()
            })
            .unwrap();
        let name_of = |store: &Store, id: &str| store.account(id).unwrap().map(|a| a.name);
        let accounts: Vec<String> = ["acc_a", "acc_b"].map(String::from).into();
        let group = store.lock_command(LockScope::Accounts(&accounts)).unwrap();
        store
            .prefetch(&Prefetch {
                accounts: &accounts,
                members: vec![("acc_a", "usr_o")],
                integrations_max: 10,
                ids: 2,
            })
            .unwrap();
        {
            let _command = store.lock_command(LockScope::Account("acc_a")).unwrap();
            assert_eq!(name_of(&store, "acc_a").as_deref(), Some("one"));
            assert!(store.user("acc_a", "usr_o").unwrap().is_none());
            store
                .commit(Transaction {
                    changes: vec![Change::PutAccount(account("acc_a", "two"))],
                    audit: Some(draft("acc_a", "first")),
                    mails: vec![mail.clone(), mail.clone()],
                    ..Transaction::default()
                })
                .unwrap();
        }
        {
            let _command = store.lock_command(LockScope::Account("acc_a")).unwrap();
            assert_eq!(
                name_of(&store, "acc_a").as_deref(),
                Some("two"),
                "the earlier command's account, from memory"
            );
            let listed = store.accounts(None, 10).unwrap();
            assert_eq!(
                listed.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                ["two"],
                "a read the group did not fetch sees the rows written before it"
            );
            assert!(store.integrations("acc_a", 10).unwrap().is_empty());
            store
                .commit(Transaction {
                    changes: vec![Change::PutAccount(account("acc_a", "three"))],
                    audit: Some(draft("acc_a", "second")),
                    ..Transaction::default()
                })
                .unwrap();
        }
        {
            let _command = store.lock_command(LockScope::Account("acc_b")).unwrap();
            assert_eq!(name_of(&store, "acc_b"), None, "fetched, and absent");
        }
        assert_eq!(
            name_of(&other, "acc_a").as_deref(),
            Some("one"),
            "nothing of a group is seen before its flush"
        );
        store.flush().unwrap();
        drop(group);
        assert_eq!(name_of(&other, "acc_a").as_deref(), Some("three"));
        let entries = other.audit("acc_a", None, 10).unwrap();
        let seq_of = |action: &str| {
            entries
                .iter()
                .find(|e| e.action == action)
                .map(|e| e.seq)
                .expect("the entry")
        };
        let items: Vec<OutboxItem> = other.items(QueueName::Outbox, true, 10).unwrap();
        assert_eq!(items.len(), 1, "a command's mails are one item");
        let mails = &items[0].mails;
        assert_eq!(mails.len(), 2);
        assert_eq!(items[0].id, mails[0].id);
        assert!(
            seq_of("first") < mails[0].id
                && mails[0].id < mails[1].id
                && mails[1].id < seq_of("second"),
            "ids in command order, past the two drawn ahead: {:?} {:?}",
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            mails.iter().map(|m| m.id).collect::<Vec<_>>()
        );
    }

    /// On a shared store a replica's new items are claimed by it from
    /// their insert and handed to its workers with their values (no claim
    /// UPDATE, no scan); another replica neither sees nor claims them while
    /// the claim is live, and takes them over once the owner's heartbeat
    /// is three beats old.
    #[test]
    fn new_items_are_claimed_by_their_replica_from_insert_and_taken_over_when_its_heartbeat_is_stale(
    ) {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let a = Store::open_postgres(&url, 4).expect("opening PostgreSQL");
        let b = Store::open_postgres(&url, 4).expect("a second replica");
        let lease = std::time::Duration::from_secs(60);
        let stale_after = std::time::Duration::from_secs(15);
        a.own_new_items("replica-a", lease, stale_after);
        b.own_new_items("replica-b", lease, stale_after);
        let now = Utc::now();
        let beat = |store: &Store, id: &str, seen_at| {
            store
                .coordination()
                .heartbeat(&ReplicaInfo {
                    id: id.into(),
                    started_at: now,
                    seen_at,
                    policies: Vec::new(),
                })
                .expect("a heartbeat")
        };
        beat(&a, "replica-a", now);
        beat(&b, "replica-b", now);
        let mail = test_mail("a@example.com");
        a.commit(Transaction {
            mails: vec![mail],
            ..Transaction::default()
        })
        .unwrap();
        let handed = a.take_committed(QueueName::Outbox).expect("handed over");
        assert_eq!(handed.len(), 1);
        let (id, value) = &handed[0];
        let handed_mail: OutboxItem = codec::decode(value).expect("a mail");
        assert_eq!(handed_mail.id, *id, "handed with its value");
        assert_eq!(
            a.take_committed(QueueName::Outbox).map(|h| h.len()),
            Some(0),
            "handed once"
        );
        let held_elsewhere = Hide::HeldElsewhere { me: "replica-b" };
        assert!(b
            .queue_window(QueueName::Outbox, 0, held_elsewhere, 10)
            .unwrap()
            .is_empty());
        assert!(
            b.queue_claim(QueueName::Outbox, &[*id], "replica-b", lease)
                .unwrap()
                .is_empty(),
            "claimed by replica-a from its insert"
        );
        // replica-a stopped beating 20 s ago: presumed dead.
        beat(&a, "replica-a", now - chrono::Duration::seconds(20));
        assert_eq!(
            b.queue_window(QueueName::Outbox, 0, held_elsewhere, 10)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            b.queue_claim(QueueName::Outbox, &[*id], "replica-b", lease)
                .unwrap()
                .len(),
            1,
            "taken over"
        );
    }

    /// The PostgreSQL store writes a queued hook event's lane (its `lane`
    /// column) beside the event; the hook worker derives it from the event
    /// (`HookQueue::lane`). They must agree, or a replica would not see
    /// that another holds an earlier event of the same account and run
    /// that account's hooks out of commit order. And an event a replica
    /// holds is no blocker for that replica's own later events.
    #[test]
    fn a_hook_events_lane_on_postgresql_is_the_one_its_worker_runs_it_in() {
        use crate::queue::Queue;
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let store = Store::open_postgres(&url, 4).expect("opening PostgreSQL");
        let seats = |account_id: &str| DomainEvent::AgentSeatExhausted {
            account_id: account_id.into(),
            actor_id: "usr_x".into(),
            seats_total: 1,
            seats_used: 1,
            attempt: "add_member".into(),
        };
        let snapshot = |id: &str| UserSnapshot {
            id: id.into(),
            name: "Ann \"Quote\"".into(),
            primary_email: "ann@example.com".into(),
            email_verified: true,
            signed_in_before: true,
        };
        let webhook = |data: serde_json::Value| DomainEvent::WebhookReceived {
            source: "crm".into(),
            id: "msg_1".into(),
            kind: "account.updated".into(),
            data,
        };
        let events = vec![
            DomainEvent::AfterOwnerChange {
                account_id: "acc_owner".into(),
                actor_id: "usr_a".into(),
                from: snapshot("usr_a"),
                to: snapshot("usr_b"),
                integrations: Vec::new(),
            },
            seats("acc_seats"),
            DomainEvent::SellSeatExhausted {
                account_id: "acc_sell".into(),
                actor_id: "usr_a".into(),
                seats_total: 2,
                seats_used: 2,
                attempt: "grant".into(),
            },
            DomainEvent::AfterEmailPrimary {
                account_id: "acc_email".into(),
                user: PrimaryChangeUser {
                    id: "usr_a".into(),
                    name: "Ann".into(),
                    is_owner: true,
                },
                old_primary: "a@example.com".into(),
                new_primary: "b@example.com".into(),
            },
            seats("acc_seats"),
            webhook(serde_json::json!({"account_id": "acc_hook", "nested": {"account_id": "x"}})),
            webhook(serde_json::json!({"account_id": 7})),
            webhook(serde_json::json!({"other": "acc_hook"})),
            webhook(serde_json::json!(["acc_hook"])),
        ];
        store
            .commit(Transaction {
                events,
                mails: vec![test_mail("a@example.com")],
                ..Transaction::default()
            })
            .unwrap();
        let queued: Vec<QueuedEvent> = store.items(QueueName::Hooks, true, 20).unwrap();
        assert_eq!(queued.len(), 9);
        let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
        for event in &queued {
            let lane = crate::hooks::HookQueue::lane(event);
            let first = expected.entry(lane).or_insert(event.id);
            *first = (*first).min(event.id);
        }
        assert_eq!(
            expected.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "",
                "acc_email",
                "acc_hook",
                "acc_owner",
                "acc_seats",
                "acc_sell"
            ]
        );
        let lanes: Vec<&str> = expected.keys().map(String::as_str).collect();
        let blockers = |store: &Store, me: &str, lanes: &[&str]| {
            store
                .queue_lane_blockers(QueueName::Hooks, lanes, me)
                .unwrap()
                .into_iter()
                .collect::<std::collections::BTreeMap<String, u64>>()
        };
        assert_eq!(blockers(&store, "replica-a", &lanes), expected);
        // Mails have no lane.
        assert!(store
            .queue_lane_blockers(QueueName::Outbox, &[""], "replica-a")
            .unwrap()
            .is_empty());

        // Events a replica inserts are claimed by it: no blocker for it,
        // one for any other replica, and one for it once it gives them back.
        let a = Store::open_postgres(&url, 4).expect("a replica");
        let lease = std::time::Duration::from_secs(60);
        a.own_new_items("replica-a", lease, std::time::Duration::from_secs(15));
        a.commit(Transaction {
            events: vec![seats("acc_new")],
            ..Transaction::default()
        })
        .unwrap();
        assert!(blockers(&a, "replica-a", &["acc_new"]).is_empty());
        let held = blockers(&a, "replica-b", &["acc_new"]);
        assert_eq!(held.len(), 1, "{held:?}");
        let id = held["acc_new"];
        a.queue_release(QueueName::Hooks, &[id], "replica-a")
            .unwrap();
        assert_eq!(blockers(&a, "replica-a", &["acc_new"])["acc_new"], id);
    }

    #[test]
    fn webhook_ids_are_kept_seven_days_then_pruned_on_every_backend() {
        for (_dir, store) in every_backend() {
            let now = Utc::now();
            let seen = |id: &str, at| Change::PutWebhookSeen {
                source: "crm".into(),
                webhook_id: id.into(),
                at,
            };
            store
                .commit(Transaction {
                    changes: vec![
                        seen("old", now - chrono::Duration::days(8)),
                        seen("new", now),
                    ],
                    ..Transaction::default()
                })
                .unwrap();
            let cutoff = now - chrono::Duration::days(crate::webhooks::SEEN_KEEP_DAYS);
            let expired = store.expired_webhook_ids(cutoff, 100).unwrap();
            assert_eq!(expired.len(), 1, "on {}", store.kind());
            store.commit(Transaction::of_writes(expired)).unwrap();
            assert!(!store.webhook_seen("crm", "old").unwrap());
            assert!(store.webhook_seen("crm", "new").unwrap());
        }
    }

    #[test]
    fn a_transaction_numbers_its_audit_entry_mails_and_events_on_every_backend() {
        for (_dir, store) in every_backend() {
            let now = Utc::now();
            let mail = test_mail("a@example.com");
            store
                .commit(Transaction {
                    audit: Some(AuditDraft {
                        account_id: "acc_x".into(),
                        actor: "operator".into(),
                        action: "x".into(),
                        target: "t".into(),
                        outcome: "ok".into(),
                        detail: String::new(),
                        at: now,
                        cause: None,
                    }),
                    mails: vec![mail.clone(), mail],
                    events: vec![DomainEvent::AgentSeatExhausted {
                        account_id: "acc_x".into(),
                        actor_id: "usr_x".into(),
                        seats_total: 1,
                        seats_used: 1,
                        attempt: "add_member".into(),
                    }],
                    writes: vec![Store::queue_put(QueueName::DeliveriesDone, 7, &"done")],
                    ..Transaction::default()
                })
                .unwrap();
            store.flush().unwrap();
            let kind = store.kind();
            let entry = &store.audit("acc_x", None, 10).unwrap()[0];
            let items: Vec<OutboxItem> = store.items(QueueName::Outbox, true, 10).unwrap();
            let events: Vec<QueuedEvent> = store.items(QueueName::Hooks, true, 10).unwrap();
            assert_eq!(items.len(), 1, "a commit's mails are one item on {kind}");
            let mails = &items[0].mails;
            assert_eq!(mails.len(), 2, "on {kind}");
            assert!(mails[0].id < mails[1].id, "ids in order on {kind}");
            assert_eq!(items[0].id, mails[0].id, "on {kind}");
            assert_eq!(
                events[0].cause_seq,
                Some(entry.seq),
                "causal link on {kind}"
            );
            assert_eq!(store.queue_len(QueueName::DeliveriesDone).unwrap(), 1);
            let done: Option<String> = store.item(QueueName::DeliveriesDone, 7).unwrap();
            assert_eq!(done.as_deref(), Some("done"));
            store
                .commit(Transaction::of_writes(vec![Store::queue_remove(
                    QueueName::Outbox,
                    items[0].id,
                )]))
                .unwrap();
            assert_eq!(store.queue_len(QueueName::Outbox).unwrap(), 0, "on {kind}");
        }
    }

    fn all_records(store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        store
            .export(&mut |r| {
                out.push(serde_json::to_string(&r).unwrap());
                Ok(true)
            })
            .unwrap();
        out.sort();
        out
    }

    /// Records move between backends unchanged, whichever way (the ground
    /// `admind import` and a future `store copy` stand on).
    #[test]
    fn records_copy_between_every_pair_of_backends() {
        for (_dir, from) in every_backend() {
            let now = Utc::now();
            from.commit(Transaction {
                changes: vec![
                    Change::PutWebhookSeen {
                        source: "crm".into(),
                        webhook_id: "w1".into(),
                        at: now,
                    },
                    Change::PutPolicySwitch(PolicySwitch {
                        name: "freeze.rhai".into(),
                        disabled: true,
                        reason: "denies everything".into(),
                        by: "operator".into(),
                        at: now,
                    }),
                ],
                audit: Some(AuditDraft {
                    account_id: "acc_x".into(),
                    actor: "operator".into(),
                    action: "x".into(),
                    target: "t".into(),
                    outcome: "ok".into(),
                    detail: String::new(),
                    at: now,
                    cause: None,
                }),
                events: vec![DomainEvent::AgentSeatExhausted {
                    account_id: "acc_x".into(),
                    actor_id: "usr_x".into(),
                    seats_total: 1,
                    seats_used: 1,
                    attempt: "add_member".into(),
                }],
                ..Transaction::default()
            })
            .unwrap();
            let records = all_records(&from);
            assert_eq!(records.len(), 4, "on {}", from.kind());
            assert_eq!(from.policy_switches(10).unwrap()[0].name, "freeze.rhai");
            for (_dir2, to) in every_backend() {
                assert!(to.is_empty().unwrap());
                let mut parsed = Vec::new();
                from.export(&mut |r| {
                    parsed.push(r);
                    Ok(true)
                })
                .unwrap();
                to.restore(parsed).unwrap();
                assert_eq!(all_records(&to), records, "{} → {}", from.kind(), to.kind());
                assert!(!to.is_empty().unwrap());
                let seq = to.audit("acc_x", None, 10).unwrap()[0].seq;
                assert!(to.next_id().unwrap() > seq, "ids go on past restored ones");
            }
        }
    }
}
