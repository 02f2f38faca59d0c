//! Property test of the core through the real writer and sled store: random
//! operations from several principals; after every step R01, R08, R11, R14,
//! R15, R24 and the Sell seat count hold, hook events commit with their
//! cause, and a refused operation changed nothing but the audit log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use admind::domain::cmd;
use std::sync::Arc;

use admind::domain::*;
use admind::metrics::Metrics;
use admind::queue::Wakers;
use admind::store::memory::MemoryBackend;
use admind::store::writer::{Writer, WriterDeps};
use admind::store::{OutboxItem, OutboxMail, QueueName, Store};
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
    AddEmail {
        actor: usize,
        target: usize,
    },
    VerifyEmail {
        target: usize,
    },
    MakePrimary {
        actor: usize,
        target: usize,
        which: usize,
    },
    RemoveEmail {
        actor: usize,
        target: usize,
        which: usize,
    },
    SellTrial {
        actor: usize,
    },
    SellSeats {
        actor: usize,
        seats: u32,
    },
    GrantSell {
        actor: usize,
        target: usize,
        admin: bool,
    },
    ChangeSell {
        actor: usize,
        target: usize,
        admin: bool,
    },
    RemoveSell {
        actor: usize,
        target: usize,
    },
    AppointSell {
        target: usize,
    },
    SetActive {
        actor: usize,
        target: usize,
        active: bool,
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
        1 => who.clone().prop_map(|actor| Op::AddIntegration { actor }),
        2 => (who.clone(), who.clone()).prop_map(|(actor, target)| Op::AddEmail { actor, target }),
        2 => who.clone().prop_map(|target| Op::VerifyEmail { target }),
        2 => (who.clone(), who.clone(), 0usize..3).prop_map(|(actor, target, which)| Op::MakePrimary { actor, target, which }),
        1 => (who.clone(), who.clone(), 0usize..3).prop_map(|(actor, target, which)| Op::RemoveEmail { actor, target, which }),
        1 => who.clone().prop_map(|actor| Op::SellTrial { actor }),
        1 => (who.clone(), 0u32..4).prop_map(|(actor, seats)| Op::SellSeats { actor, seats }),
        2 => (who.clone(), who.clone(), any::<bool>()).prop_map(|(actor, target, admin)| Op::GrantSell { actor, target, admin }),
        1 => (who.clone(), who.clone(), any::<bool>()).prop_map(|(actor, target, admin)| Op::ChangeSell { actor, target, admin }),
        1 => (who.clone(), who.clone()).prop_map(|(actor, target)| Op::RemoveSell { actor, target }),
        1 => who.clone().prop_map(|target| Op::AppointSell { target }),
        2 => (who.clone(), who, any::<bool>()).prop_map(|(actor, target, active)| Op::SetActive { actor, target, active }),
    ]
}

/// Index 0 is the operator, 1 anonymous, 7 a directory acting for the
/// first member; the rest are members by position.
fn principal(account: &str, members: &[User], i: usize) -> Principal {
    match i {
        0 => Principal::Operator,
        1 => Principal::Anonymous,
        7 => Principal::Directory {
            account_id: account.into(),
            token_id: "sct_00000000000000000000".into(),
            name: "Okta".into(),
            acting_for: members.first().map(|u| u.id.clone()).unwrap_or_default(),
        },
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
    (
        acc,
        users
            .into_iter()
            .map(std::sync::Arc::unwrap_or_clone)
            .collect(),
    )
}

fn check_invariants(store: &Store, account: &str, sell_had_admin: &mut bool) {
    let (acc, users) = snapshot(store, account);
    // Sell seats: used are the holders and never exceed those owned.
    let sell_holders = users.iter().filter(|u| u.holds_sell_seat()).count() as u32;
    assert_eq!(acc.sell.seats_used, sell_holders, "Sell seat count");
    assert!(
        acc.sell.seats_used <= acc.sell_seats_total(chrono::Utc::now()),
        "R25/R10 Sell seats never exceed"
    );
    let sell_admins = users
        .iter()
        .filter(|u| u.is_active() && u.sell_role == SellRole::Admin)
        .count() as u32;
    assert_eq!(acc.sell.admin_count, sell_admins, "Sell admin count");
    // R24: once Sell has an admin it always keeps one.
    if *sell_had_admin {
        assert!(sell_admins >= 1, "R24: Sell lost its last admin");
    }
    *sell_had_admin |= sell_admins >= 1;
    for u in &users {
        // R14: a primary address other than the one the profile was created
        // with was verified before it became primary.
        let primary = u.primary().expect("R15: a primary address");
        if primary.address != u.emails[0].address || !u.emails[0].primary {
            assert!(
                primary.verified,
                "R14: unverified primary {}",
                primary.address
            );
        }
    }
    let owner = users.iter().find(|u| u.id == acc.owner_id);
    // R01: exactly one owner, and it exists.
    let owner = owner.expect("R01: the owner is a member");
    // R08: the owner is an admin.
    assert_eq!(owner.support_role, SupportRole::Admin, "R08");
    // R11: seats used are the seat holders and never exceed the seats owned.
    let holders = users.iter().filter(|u| u.holds_support_seat()).count() as u32;
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
    mailed_token(store, address, "Set your password")
}

fn mailed_token(store: &Store, address: &str, subject: &str) -> Option<String> {
    let items: Vec<OutboxItem> = store.items(QueueName::Outbox, false, 100_000).unwrap();
    let mails: Vec<OutboxMail> = items.into_iter().flat_map(|item| item.mails).collect();
    mails
        .iter()
        .rev()
        .find(|m| m.to == address && m.subject.starts_with(subject))
        .map(|m| {
            let start = m.body.find("token=").unwrap() + 6;
            m.body[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
}

/// Every case runs on each backend: the rules hold whatever the store.
/// On sled a `before_owner_change` policy is loaded (so transfers are
/// decided off the writer first), on memory none is.
async fn run_case(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    run_case_on(
        Store::open_sled(dir.path()).unwrap(),
        Arc::new(VetoesHalf),
        ops.clone(),
    )
    .await;
    run_case_on(
        Store::new(MemoryBackend::default()),
        Arc::new(AllowAll),
        ops,
    )
    .await;
}

/// A `before_owner_change` policy refusing about half the new owners (by
/// their id), so both of its answers go through the writer.
struct VetoesHalf;

impl PolicyGate for VetoesHalf {
    fn handles(&self, hook: &str) -> bool {
        hook == "before_owner_change"
    }

    fn before(&self, p: &Proposal) -> Result<GateNotes, Veto> {
        let Proposal::OwnerChange(p) = p else {
            return Ok(Vec::new());
        };
        if p.to.id.ends_with(['0', '1', '2', '3', '4', '5', '6', '7']) {
            return Err(Veto {
                translations: Box::default(),
                policy: "half.rhai".into(),
                version: "v1".into(),
                reason: "half".into(),
                duration_us: 1,
                ignored: Vec::new(),
            });
        }
        Ok(Vec::new())
    }
}

async fn run_case_on(store: Store, gate: Arc<dyn PolicyGate>, ops: Vec<Op>) {
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate,
        render: Arc::new(|n, _| admind::mail::render(n, "http://t", "en")),
        metrics: Arc::new(Metrics::new()),
        wakers: Arc::new(Wakers::default()),
        sinks: Vec::new(),
    });
    let created = writer
        .submit(
            Principal::Operator,
            Command::CreateAccount(cmd::CreateAccount {
                name: "P".into(),
                owner_name: "O".into(),
                owner_email: "o@p.test".into(),
                support_seats: 3,
                language: None,
            }),
        )
        .await
        .unwrap();
    let Reply::Account(acc) = created else {
        panic!("account")
    };
    let a = acc.id;
    let mut n = 0;
    let mut sell_had_admin = false;
    for op in ops {
        let (_, members) = snapshot(&store, &a);
        let pick = |i: usize| members[i % members.len()].id.clone();
        let command = match op.clone() {
            Op::AddMember { actor, role } => {
                n += 1;
                (
                    principal(&a, &members, actor),
                    Command::AddMember(cmd::AddMember {
                        account_id: a.clone(),
                        name: "M".into(),
                        email: format!("m{n}@p.test"),
                        role,
                    }),
                )
            }
            Op::ChangeRole {
                actor,
                target,
                role,
            } => (
                principal(&a, &members, actor),
                Command::ChangeRole(cmd::ChangeRole {
                    account_id: a.clone(),
                    user_id: pick(target),
                    role,
                }),
            ),
            Op::Remove { actor, target } => (
                principal(&a, &members, actor),
                Command::RemoveMember(cmd::RemoveMember {
                    account_id: a.clone(),
                    user_id: pick(target),
                }),
            ),
            Op::Transfer { actor, target } => (
                principal(&a, &members, actor),
                Command::TransferOwnership(cmd::TransferOwnership {
                    account_id: a.clone(),
                    to_user_id: pick(target),
                }),
            ),
            Op::SetSeats { actor, seats } => (
                principal(&a, &members, actor),
                Command::SetSeats(cmd::SetSeats {
                    account_id: a.clone(),
                    support_seats: Some(seats),
                    sell_seats: None,
                }),
            ),
            Op::Verify { target } => {
                let user = &members[target % members.len()];
                let Some(token) = token_for(&store, user.primary_address()) else {
                    continue;
                };
                (
                    Principal::Anonymous,
                    Command::ConfirmPasswordReset(cmd::ConfirmPasswordReset {
                        token_hash: token_hash(&token),
                        password_hash: "$argon2id$x".into(),
                    }),
                )
            }
            Op::AddIntegration { actor } => (
                principal(&a, &members, actor),
                Command::AddIntegration(cmd::AddIntegration {
                    account_id: a.clone(),
                    name: "I".into(),
                }),
            ),
            Op::AddEmail { actor, target } => {
                n += 1;
                (
                    principal(&a, &members, actor),
                    Command::AddEmail(cmd::AddEmail {
                        account_id: a.clone(),
                        user_id: pick(target),
                        address: format!("x{n}@p.test"),
                    }),
                )
            }
            Op::VerifyEmail { target } => {
                let user = &members[target % members.len()];
                let Some(address) = user
                    .emails
                    .iter()
                    .find(|e| !e.verified)
                    .map(|e| e.address.clone())
                else {
                    continue;
                };
                let Some(token) = mailed_token(&store, &address, "Verify your address") else {
                    continue;
                };
                (
                    Principal::Anonymous,
                    Command::ConfirmEmailVerification(cmd::ConfirmEmailVerification {
                        token_hash: token_hash(&token),
                    }),
                )
            }
            Op::MakePrimary {
                actor,
                target,
                which,
            } => {
                let user = &members[target % members.len()];
                let address = user.emails[which % user.emails.len()].address.clone();
                (
                    principal(&a, &members, actor),
                    Command::MakePrimaryEmail(cmd::MakePrimaryEmail {
                        account_id: a.clone(),
                        user_id: user.id.clone(),
                        address,
                    }),
                )
            }
            Op::RemoveEmail {
                actor,
                target,
                which,
            } => {
                let user = &members[target % members.len()];
                let address = user.emails[which % user.emails.len()].address.clone();
                (
                    principal(&a, &members, actor),
                    Command::RemoveEmail(cmd::RemoveEmail {
                        account_id: a.clone(),
                        user_id: user.id.clone(),
                        address,
                    }),
                )
            }
            Op::SellTrial { actor } => (
                principal(&a, &members, actor),
                Command::StartSellTrial(cmd::StartSellTrial {
                    account_id: a.clone(),
                }),
            ),
            Op::SellSeats { actor, seats } => (
                principal(&a, &members, actor),
                Command::SetSeats(cmd::SetSeats {
                    account_id: a.clone(),
                    support_seats: None,
                    sell_seats: Some(seats),
                }),
            ),
            Op::GrantSell {
                actor,
                target,
                admin,
            } => {
                let role = if admin {
                    SellRole::Admin
                } else {
                    SellRole::User
                };
                (
                    principal(&a, &members, actor),
                    Command::GrantSell(cmd::GrantSell {
                        account_id: a.clone(),
                        user_id: pick(target),
                        role,
                    }),
                )
            }
            Op::ChangeSell {
                actor,
                target,
                admin,
            } => {
                let role = if admin {
                    SellRole::Admin
                } else {
                    SellRole::User
                };
                (
                    principal(&a, &members, actor),
                    Command::ChangeSellRole(cmd::ChangeSellRole {
                        account_id: a.clone(),
                        user_id: pick(target),
                        role,
                    }),
                )
            }
            Op::RemoveSell { actor, target } => (
                principal(&a, &members, actor),
                Command::RemoveSell(cmd::RemoveSell {
                    account_id: a.clone(),
                    user_id: pick(target),
                }),
            ),
            Op::AppointSell { target } => (
                Principal::Operator,
                Command::AppointSellAdmin(cmd::AppointSellAdmin {
                    account_id: a.clone(),
                    user_id: pick(target),
                }),
            ),
            Op::SetActive {
                actor,
                target,
                active,
            } => (
                principal(&a, &members, actor),
                Command::SetMemberActive(cmd::SetMemberActive {
                    account_id: a.clone(),
                    user_id: pick(target),
                    active,
                }),
            ),
        };
        let before = snapshot(&store, &a);
        let audit_before = store.audit(&a, None, 100_000).unwrap().len();
        let queued_before = store.queue_len(QueueName::Hooks).unwrap();
        let result = writer.submit(command.0, command.1).await;
        let queued = store.queue_len(QueueName::Hooks).unwrap() - queued_before;
        // Hook events commit with what caused them.
        match &result {
            Err(r) if r.code == "agent_seat_exhausted" || r.code == "sell_seat_exhausted" => {
                assert_eq!(queued, 1, "{op:?}")
            }
            Ok(_) if matches!(op, Op::Transfer { .. }) => {
                assert_eq!(queued, 1, "after_owner_change for {op:?}")
            }
            Err(_) => assert_eq!(queued, 0, "{op:?}"),
            Ok(_) => {}
        }
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
        check_invariants(&store, &a, &mut sell_had_admin);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn r01_r08_r11_r14_r15_r24_hold_after_every_step_and_refusals_change_nothing(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(ops));
    }
}
