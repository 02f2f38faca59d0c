//! Property test of the core through the real writer and sled store: random
//! operations from several principals; after every step R01, R08 and R11
//! hold, and a refused operation changed nothing but the audit log.

use std::sync::Arc;

use admind::domain::*;
use admind::metrics::Metrics;
use admind::store::writer::{Wakers, Writer, WriterDeps};
use admind::store::{OutboxMail, Store, T};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    AddMember {
        actor: usize,
        role: SupportRole,
    },
    ChangeRole {
        actor: usize,
        target: usize,
        role: SupportRole,
    },
    Remove {
        actor: usize,
        target: usize,
    },
    Transfer {
        actor: usize,
        target: usize,
    },
    SetSeats {
        actor: usize,
        seats: u32,
    },
    Verify {
        target: usize,
    },
    AddIntegration {
        actor: usize,
    },
}

fn role() -> impl Strategy<Value = SupportRole> {
    prop_oneof![
        Just(SupportRole::EndUser),
        Just(SupportRole::Agent),
        Just(SupportRole::Admin)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..8;
    prop_oneof![
        3 => (who.clone(), role()).prop_map(|(actor, role)| Op::AddMember { actor, role }),
        2 => (who.clone(), who.clone(), role()).prop_map(|(actor, target, role)| Op::ChangeRole { actor, target, role }),
        1 => (who.clone(), who.clone()).prop_map(|(actor, target)| Op::Remove { actor, target }),
        2 => (who.clone(), who.clone()).prop_map(|(actor, target)| Op::Transfer { actor, target }),
        1 => (who.clone(), 0u32..8).prop_map(|(actor, seats)| Op::SetSeats { actor, seats }),
        2 => who.clone().prop_map(|target| Op::Verify { target }),
        1 => who.prop_map(|actor| Op::AddIntegration { actor }),
    ]
}

/// Index 0 is the operator, 1 anonymous; the rest are members by position.
fn principal(account: &str, members: &[User], i: usize) -> Principal {
    match i {
        0 => Principal::Operator,
        1 => Principal::Anonymous,
        n => match members.get((n - 2) % members.len().max(1)) {
            Some(u) => Principal::Member {
                account_id: account.into(),
                user_id: u.id.clone(),
            },
            None => Principal::Anonymous,
        },
    }
}

fn snapshot(store: &Store, account: &str) -> (Account, Vec<User>) {
    let acc = store.account(account).unwrap().unwrap();
    let users = store.members(account, None, 10_000).unwrap();
    (acc, users)
}

fn check_invariants(store: &Store, account: &str) {
    let (acc, users) = snapshot(store, account);
    let owner = users.iter().find(|u| u.id == acc.owner_id);
    // R01: exactly one owner, and it exists.
    let owner = owner.expect("R01: the owner is a member");
    // R08: the owner is an admin.
    assert_eq!(owner.support_role, SupportRole::Admin, "R08");
    // R11: seats used are the seat holders and never exceed the seats owned.
    let holders = users.iter().filter(|u| u.support_role.holds_seat()).count() as u32;
    assert_eq!(acc.support_seats_used, holders, "R11 seat count");
    assert!(
        acc.support_seats_used <= acc.support_seats_total(chrono::Utc::now()),
        "R11 never exceeds"
    );
    assert_eq!(acc.member_count as usize, users.len());
    for u in &users {
        assert_eq!(
            u.emails.iter().filter(|e| e.primary).count(),
            1,
            "one primary"
        );
        let found = store
            .user_by_email(account, u.primary_address())
            .unwrap()
            .unwrap();
        assert_eq!(found.id, u.id, "address index");
    }
}

fn token_for(store: &Store, address: &str) -> Option<String> {
    let mails: Vec<OutboxMail> = store.queue_items(T::Outbox, 100_000).unwrap();
    mails
        .iter()
        .rev()
        .find(|m| m.to == address && m.subject.starts_with("Set your password"))
        .map(|m| {
            let start = m.body.find("token=").unwrap() + 6;
            m.body[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
}

async fn run_case(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: Arc::new(AllowAll),
        render: Arc::new(|n| admind::mail::render(n, "http://t")),
        metrics: Arc::new(Metrics::new()),
        wakers: Arc::new(Wakers::default()),
    });
    let created = writer
        .submit(
            Principal::Operator,
            Command::CreateAccount {
                name: "P".into(),
                owner_name: "O".into(),
                owner_email: "o@p.test".into(),
                support_seats: 3,
            },
        )
        .await
        .unwrap();
    let Reply::Account(acc) = created else {
        panic!("account")
    };
    let a = acc.id;
    let mut n = 0;
    for op in ops {
        let (_, members) = snapshot(&store, &a);
        let pick = |i: usize| members[i % members.len()].id.clone();
        let command = match op.clone() {
            Op::AddMember { actor, role } => {
                n += 1;
                (
                    principal(&a, &members, actor),
                    Command::AddMember {
                        account_id: a.clone(),
                        name: "M".into(),
                        email: format!("m{n}@p.test"),
                        role,
                    },
                )
            }
            Op::ChangeRole {
                actor,
                target,
                role,
            } => (
                principal(&a, &members, actor),
                Command::ChangeRole {
                    account_id: a.clone(),
                    user_id: pick(target),
                    role,
                },
            ),
            Op::Remove { actor, target } => (
                principal(&a, &members, actor),
                Command::RemoveMember {
                    account_id: a.clone(),
                    user_id: pick(target),
                },
            ),
            Op::Transfer { actor, target } => (
                principal(&a, &members, actor),
                Command::TransferOwnership {
                    account_id: a.clone(),
                    to_user_id: pick(target),
                },
            ),
            Op::SetSeats { actor, seats } => (
                principal(&a, &members, actor),
                Command::SetSeats {
                    account_id: a.clone(),
                    support_seats: Some(seats),
                    sell_seats: None,
                },
            ),
            Op::Verify { target } => {
                let user = &members[target % members.len()];
                let Some(token) = token_for(&store, user.primary_address()) else {
                    continue;
                };
                (
                    Principal::Anonymous,
                    Command::ConfirmPasswordReset {
                        token_hash: token_hash(&token),
                        password_hash: "$argon2id$x".into(),
                    },
                )
            }
            Op::AddIntegration { actor } => (
                principal(&a, &members, actor),
                Command::AddIntegration {
                    account_id: a.clone(),
                    name: "I".into(),
                },
            ),
        };
        let before = snapshot(&store, &a);
        let audit_before = store.audit(&a, None, 100_000).unwrap().len();
        let result = writer.submit(command.0, command.1).await;
        if let Err(refusal) = &result {
            assert_ne!(refusal.kind, RefusalKind::Unavailable, "{op:?}: {refusal}");
            assert_eq!(
                snapshot(&store, &a),
                before,
                "refused {op:?} ({}) changed state",
                refusal.code
            );
            let audit_after = store.audit(&a, None, 100_000).unwrap().len();
            assert!(
                audit_after - audit_before <= 1,
                "a refusal appends at most its audit entry"
            );
        }
        check_invariants(&store, &a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn r01_r08_r11_hold_after_every_step_and_refusals_change_nothing(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(ops));
    }
}
