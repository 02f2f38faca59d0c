//! A slow `before_owner_change` policy delays its own command, not the
//! writer every account shares: the hook is decided off the writer, and
//! the writer commits only if the command asks it the very same question.
//! Each test holds the policy inside its call (no clocks): a test that
//! could only pass by timing would prove nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use admind::domain::cmd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admind::domain::*;
use admind::metrics::Metrics;
use admind::queue::Wakers;
use admind::store::memory::MemoryBackend;
use admind::store::writer::{Writer, WriterDeps};
use admind::store::{Store, Transaction};

/// A policy that, on its first call for `held_account`, waits until the
/// test lets it go; it refuses new owners who never signed in.
struct HeldPolicy {
    held_account: Mutex<Option<String>>,
    entered: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    calls: AtomicUsize,
    /// When set, the policy also reads the store (as a script's lookup
    /// does): it refuses while the account has fewer than 6 seats bought.
    store: Mutex<Option<Store>>,
}

impl PolicyGate for HeldPolicy {
    fn handles(&self, hook: &str) -> bool {
        hook == "before_owner_change"
    }

    fn before(&self, p: &Proposal) -> Result<GateNotes, Veto> {
        let Proposal::OwnerChange(p) = p else {
            return Ok(Vec::new());
        };
        self.calls.fetch_add(1, Ordering::SeqCst);
        let hold = self
            .held_account
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|a| a == p.account_id);
        if hold {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
                if let Some(release) = self.release.lock().unwrap().take() {
                    let _ = release.recv();
                }
            }
        }
        let store = self.store.lock().unwrap().clone();
        let seats = store.map(|s| {
            s.account(&p.account_id)
                .unwrap()
                .unwrap()
                .support_seats_bought
        });
        if seats.is_some_and(|n| n < 6) {
            return Err(Veto {
                translations: Box::default(),
                policy: "held.rhai".into(),
                version: "v1".into(),
                reason: "fewer than 6 seats".into(),
                duration_us: 1,
                ignored: Vec::new(),
            });
        }
        if p.to.signed_in_before {
            Ok(Vec::new())
        } else {
            Err(Veto {
                translations: Box::default(),
                policy: "held.rhai".into(),
                version: "v1".into(),
                reason: "the new owner never signed in".into(),
                duration_us: 1,
                ignored: Vec::new(),
            })
        }
    }
}

struct Fixture {
    store: Store,
    writer: Writer,
    policy: Arc<HeldPolicy>,
    metrics: Arc<Metrics>,
    entered: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

fn fixture() -> Fixture {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let policy = Arc::new(HeldPolicy {
        held_account: Mutex::new(None),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
        calls: AtomicUsize::new(0),
        store: Mutex::new(None),
    });
    let store = Store::new(MemoryBackend::default());
    let metrics = Arc::new(Metrics::new());
    let (writer, _thread) = Writer::start(WriterDeps {
        store: store.clone(),
        settings: Settings::default(),
        gate: policy.clone(),
        render: Arc::new(|n, _| admind::mail::render(n, "http://t", "en")),
        metrics: metrics.clone(),
        wakers: Arc::new(Wakers::default()),
        sinks: Vec::new(),
    });
    Fixture {
        store,
        writer,
        policy,
        metrics,
        entered,
        release,
    }
}

/// An account with its owner and a verified admin who may or may not have
/// signed in before; returns (account, owner, admin).
async fn account(f: &Fixture, name: &str, admin_signed_in: bool) -> (String, String, String) {
    let Ok(Reply::Account(acc)) = f
        .writer
        .submit(
            Principal::Operator,
            Command::CreateAccount(cmd::CreateAccount {
                name: name.into(),
                owner_name: "O".into(),
                owner_email: format!("o@{name}.test"),
                support_seats: 5,
                language: None,
            }),
        )
        .await
    else {
        panic!("an account")
    };
    let owner = acc.owner_id.clone();
    let admin = add_admin(
        f,
        &acc.id,
        &owner,
        &format!("b@{name}.test"),
        admin_signed_in,
    )
    .await;
    (acc.id, owner, admin)
}

/// Adds a verified admin (as if they had followed their verification
/// link, and signed in or not); returns their id.
async fn add_admin(
    f: &Fixture,
    account: &str,
    owner: &str,
    email: &str,
    signed_in: bool,
) -> String {
    f.writer
        .submit(
            Principal::Member {
                account_id: account.to_string(),
                user_id: owner.to_string(),
            },
            Command::AddMember(cmd::AddMember {
                account_id: account.to_string(),
                name: "A".into(),
                email: email.to_string(),
                role: SupportRole::Admin,
            }),
        )
        .await
        .expect("adding an admin");
    let mut admin = f
        .store
        .user_by_email(account, email)
        .unwrap()
        .expect("the admin");
    admin.emails[0].verified = true;
    admin.signed_in_before = signed_in;
    let id = admin.id.clone();
    f.store
        .commit(Transaction {
            changes: vec![Change::PutUser(admin)],
            ..Transaction::default()
        })
        .unwrap();
    id
}

fn transfer(
    f: &Fixture,
    account: &str,
    owner: &str,
    to: &str,
) -> tokio::task::JoinHandle<Result<Reply, Refusal>> {
    let writer = f.writer.clone();
    let (account, owner, to) = (account.to_string(), owner.to_string(), to.to_string());
    tokio::spawn(async move {
        writer
            .submit(
                Principal::Member {
                    account_id: account.clone(),
                    user_id: owner,
                },
                Command::TransferOwnership(cmd::TransferOwnership {
                    account_id: account,
                    to_user_id: to,
                }),
            )
            .await
    })
}

fn owner_of(store: &Store, account: &str) -> String {
    store.account(account).unwrap().unwrap().owner_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_a_policy_held_on_one_account_stalls_no_other_accounts_transfer() {
    let f = fixture();
    let (slow, slow_owner, slow_admin) = account(&f, "slow", true).await;
    let (quick, quick_owner, quick_admin) = account(&f, "quick", true).await;
    *f.policy.held_account.lock().unwrap() = Some(slow.clone());
    let held = transfer(&f, &slow, &slow_owner, &slow_admin);
    f.entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the slow account's policy is running");
    // While that policy is still inside its call, another account's
    // transfer commits (with the policy on the writer, this waited for it).
    let other = tokio::time::timeout(
        Duration::from_secs(30),
        transfer(&f, &quick, &quick_owner, &quick_admin),
    )
    .await
    .expect("the other account's transfer did not wait for the held policy")
    .unwrap();
    assert!(other.is_ok(), "{other:?}");
    assert_eq!(owner_of(&f.store, &quick), quick_admin);
    assert_eq!(owner_of(&f.store, &slow), slow_owner, "not yet");
    f.release.send(()).unwrap();
    let held = held.await.unwrap();
    assert!(held.is_ok(), "{held:?}");
    assert_eq!(owner_of(&f.store, &slow), slow_admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_a_decision_taken_on_a_state_that_moved_is_decided_again() {
    let f = fixture();
    // The admin never signed in: the policy refuses them...
    let (a, owner, admin) = account(&f, "moved", false).await;
    *f.policy.held_account.lock().unwrap() = Some(a.clone());
    let held = transfer(&f, &a, &owner, &admin);
    f.entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the policy is deciding");
    // ...but while it decides, they sign in (the state the policy was
    // shown is no longer the state).
    let mut user = f.store.user(&a, &admin).unwrap().unwrap();
    user.signed_in_before = true;
    f.store
        .commit(Transaction {
            changes: vec![Change::PutUser(user)],
            ..Transaction::default()
        })
        .unwrap();
    f.release.send(()).unwrap();
    let answer = held.await.unwrap();
    // The stale veto was not used: decided again on the new state.
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(owner_of(&f.store, &a), admin);
    assert_eq!(f.metrics.policy_decided_again.get(), 1);
    assert_eq!(f.policy.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_a_decision_is_stale_once_its_account_changed_even_outside_the_proposal() {
    let f = fixture();
    let (a, owner, admin) = account(&f, "lookup", true).await;
    *f.policy.store.lock().unwrap() = Some(f.store.clone());
    *f.policy.held_account.lock().unwrap() = Some(a.clone());
    let held = transfer(&f, &a, &owner, &admin);
    f.entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the policy is deciding (5 seats: it will refuse)");
    // The owner buys a sixth seat while it decides: nothing in the
    // proposal changes, but what the policy read did.
    let bought = f
        .writer
        .submit(
            Principal::Member {
                account_id: a.clone(),
                user_id: owner.clone(),
            },
            Command::SetSeats(cmd::SetSeats {
                account_id: a.clone(),
                support_seats: Some(6),
                sell_seats: None,
            }),
        )
        .await;
    assert!(bought.is_ok(), "{bought:?}");
    f.release.send(()).unwrap();
    let answer = held.await.unwrap();
    assert!(answer.is_ok(), "decided again on 6 seats: {answer:?}");
    assert_eq!(owner_of(&f.store, &a), admin);
    assert_eq!(f.metrics.policy_decided_again.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_racing_transfers_with_a_deciding_policy_leave_exactly_one_owner() {
    let f = fixture();
    for round in 0..20 {
        let (a, owner, b) = account(&f, &format!("race{round}"), true).await;
        let c_id = add_admin(&f, &a, &owner, &format!("c@race{round}.test"), true).await;
        let (rb, rc) = (
            transfer(&f, &a, &owner, &b),
            transfer(&f, &a, &owner, &c_id),
        );
        let (rb, rc) = (rb.await.unwrap(), rc.await.unwrap());
        assert_eq!(
            usize::from(rb.is_ok()) + usize::from(rc.is_ok()),
            1,
            "round {round}: {rb:?} / {rc:?}"
        );
        let new_owner = owner_of(&f.store, &a);
        assert!(new_owner == b || new_owner == c_id);
        let owners = f
            .store
            .members(&a, None, 100)
            .unwrap()
            .iter()
            .filter(|u| u.id == new_owner)
            .count();
        assert_eq!(owners, 1);
    }
}
