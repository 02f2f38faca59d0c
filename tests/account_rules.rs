//! One test per rule of the account core (R01–R11, R17, R19), over HTTP
//! against a real daemon.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use common::{Daemon, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn owners(members: &Value) -> Vec<String> {
    members["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_owner"] == true)
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn r01_exactly_one_owner_under_concurrent_transfers() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let (c, _) = d.member(&ot, &a, "c@acme.test", "admin").await;
    let path = format!("/v1/accounts/{a}/owner");
    let (rb, rc) = tokio::join!(
        d.put(&path, &ot, json!({"user_id": b})),
        d.put(&path, &ot, json!({"user_id": c}))
    );
    let ok: Vec<_> = [&rb, &rc]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.body["owner_id"].clone())
        .collect();
    assert_eq!(
        ok.len(),
        1,
        "exactly one transfer wins: {:?} / {:?}",
        rb.body,
        rc.body
    );
    let loser = if rb.status == StatusCode::OK {
        &rc
    } else {
        &rb
    };
    assert_eq!(loser.status, StatusCode::FORBIDDEN);
    assert_eq!(loser.code(), "not_account_owner");
    let bt = d.sign_in(&a, "b@acme.test", PASSWORD).await;
    let members = d.get(&format!("/v1/accounts/{a}/members"), &bt).await.body;
    let o = owners(&members);
    assert_eq!(o.len(), 1);
    assert_ne!(o[0], owner);
    assert_eq!(Value::String(o[0].clone()), ok[0]);
}

#[tokio::test]
async fn r02_only_the_owner_can_transfer() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let (_, ct) = d.member(&ot, &a, "c@acme.test", "agent").await;
    let path = format!("/v1/accounts/{a}/owner");
    for (who, token) in [
        ("admin", bt.as_str()),
        ("agent", ct.as_str()),
        ("operator", d.operator.as_str()),
    ] {
        let r = d.put(&path, token, json!({"user_id": b})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {:?}", r.body);
        assert_eq!(r.code(), "not_account_owner", "{who}");
    }
    let anon = d
        .call(
            reqwest::Method::PUT,
            &path,
            None,
            Some(json!({"user_id": b})),
        )
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let now = d.get(&format!("/v1/accounts/{a}/owner"), &ot).await;
    assert_eq!(now.body["id"], owner.as_str());
    // Every refusal by the rule is in the audit log.
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "owner.transfer" && e["outcome"] == "refused:not_account_owner")
        .count();
    assert_eq!(refused, 3);
}

#[tokio::test]
async fn r03_new_owner_must_be_an_admin_with_a_verified_address() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (agent, _) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let path = format!("/v1/accounts/{a}/owner");
    let r = d.put(&path, &ot, json!({"user_id": agent})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "new_owner_not_admin")
    );
    // An admin who never set a password has not verified an address yet.
    let fresh = d.add_member(&ot, &a, "fresh@acme.test", "admin").await;
    let r = d.put(&path, &ot, json!({"user_id": fresh})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "email_unverified")
    );
    // First add them as admin: promote the agent, then hand over.
    let p = d
        .patch(
            &format!("/v1/accounts/{a}/members/{agent}"),
            &ot,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    let r = d.put(&path, &ot, json!({"user_id": agent})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["owner_id"], agent.as_str());
}

#[tokio::test]
async fn r04_candidates_are_the_other_admins_and_may_be_empty() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let path = format!("/v1/accounts/{a}/owner/candidates");
    let r = d.get(&path, &ot).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"], json!([]), "no other admin: empty list");
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    d.member(&ot, &a, "c@acme.test", "agent").await;
    d.add_member(&ot, &a, "e@acme.test", "end_user").await;
    let r = d.get(&path, &ot).await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.as_str()]);
    // Only the owner sees the list.
    let r = d.get(&path, &bt).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "not_account_owner")
    );
}

#[tokio::test]
async fn r05_billing_is_owner_only_and_follows_the_transfer() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let inv = format!("/v1/accounts/{a}/billing/invoices");
    let pm = format!("/v1/accounts/{a}/billing/payment-method");
    let seats = format!("/v1/accounts/{a}/billing/seats");
    assert_eq!(d.get(&inv, &ot).await.status, StatusCode::OK);
    assert_eq!(
        d.put(&pm, &ot, json!({"kind": "card", "last4": "4242"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        d.put(&seats, &ot, json!({"support_seats": 12}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(d.get(&inv, &bt).await.code(), "billing_owner_only");
    assert_eq!(
        d.put(
            &format!("/v1/accounts/{a}/owner"),
            &ot,
            json!({"user_id": b})
        )
        .await
        .status,
        StatusCode::OK
    );
    // The previous owner stays an admin but loses the subscription pages.
    for r in [
        d.get(&inv, &ot).await,
        d.get(&pm, &ot).await,
        d.put(&pm, &ot, json!({"kind": "card", "last4": "1111"}))
            .await,
        d.put(&seats, &ot, json!({"support_seats": 20})).await,
    ] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "billing_owner_only")
        );
    }
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members"), &ot)
            .await
            .status,
        StatusCode::OK,
        "still an admin"
    );
    let r = d.get(&pm, &bt).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["payment_method"]["last4"], "4242");
    let invoices = d.get(&inv, &bt).await;
    assert_eq!(invoices.body["items"][0]["support_seats"], 12);
}

#[tokio::test]
async fn r06_integrations_of_the_previous_owner_need_reauthorization() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let ints = format!("/v1/accounts/{a}/integrations");
    let mine = d.post(&ints, Some(&ot), json!({"name": "Slack"})).await;
    assert_eq!(mine.status, StatusCode::CREATED);
    assert_eq!(mine.body["configured_by"], owner.as_str());
    let theirs = d.post(&ints, Some(&bt), json!({"name": "Jira"})).await;
    assert_eq!(
        d.put(
            &format!("/v1/accounts/{a}/owner"),
            &ot,
            json!({"user_id": b})
        )
        .await
        .status,
        StatusCode::OK
    );
    let list = d.get(&ints, &bt).await.body;
    let status = |id: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| &i["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&mine.body["id"]), "needs_reauthorization");
    assert_eq!(status(&theirs.body["id"]), "active");
    // The new owner is told which ones (the default reauth-reminder plugin).
    let mail = d
        .wait_mail("b@acme.test", "Integrations to reauthorize", 1)
        .await;
    assert!(mail.body.contains("Slack"), "{}", mail.body);
    assert!(!mail.body.contains("Jira"), "{}", mail.body);
    let owner_mail = d.wait_mail("b@acme.test", "You are now the owner", 1).await;
    assert!(
        owner_mail.body.contains("1 integration"),
        "{}",
        owner_mail.body
    );
    // Re-authorizing makes that admin the configurer and the integration active.
    let id = mine.body["id"].as_str().unwrap();
    let r = d
        .post(&format!("{ints}/{id}/authorize"), Some(&bt), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["configured_by"], b.as_str());
}

#[tokio::test]
async fn r07_agents_find_the_owner_and_admins_see_the_label() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (_, agent) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let (_, admin) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    let (_, end_user) = d.member(&ot, &a, "user@acme.test", "end_user").await;
    let r = d.get(&format!("/v1/accounts/{a}/owner"), &agent).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], owner.as_str());
    assert_eq!(r.body["primary_email"], "owner@acme.test");
    assert_eq!(r.body["role_label"], "Administrator (owner)");
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &end_user)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members"), &agent)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let members = d
        .get(&format!("/v1/accounts/{a}/members"), &admin)
        .await
        .body;
    let labels: Vec<(String, String)> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["primary_email"].as_str().unwrap().to_string(),
                m["role_label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        labels.contains(&("owner@acme.test".into(), "Administrator (owner)".into())),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("admin@acme.test".into(), "Administrator".into())),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("agent@acme.test".into(), "Agent".into())),
        "{labels:?}"
    );
}

#[tokio::test]
async fn r08_the_owner_cannot_be_lowered_or_removed() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let me = format!("/v1/accounts/{a}/members/{owner}");
    for role in ["agent", "end_user"] {
        let r = d.patch(&me, &bt, json!({"role": role})).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "owner_role_locked")
        );
    }
    let r = d.delete(&me, &bt).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "owner_role_locked")
    );
    assert_eq!(d.get(&me, &bt).await.body["role"], "admin");
    // Hand ownership over first; then the former owner can be lowered.
    assert_eq!(
        d.put(
            &format!("/v1/accounts/{a}/owner"),
            &ot,
            json!({"user_id": b})
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = d.patch(&me, &bt, json!({"role": "agent"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["role"], "agent");
}

#[tokio::test]
async fn r09_adding_or_promoting_without_a_free_seat_fails_and_changes_nothing() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(2).await;
    d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    let before = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(
        before["support"],
        json!({"seats_total": 2, "seats_used": 2})
    );
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&ot),
            json!({"name": "X", "email": "x@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "agent_seat_exhausted")
    );
    let eu = d.add_member(&ot, &a, "eu@acme.test", "end_user").await;
    let r = d
        .patch(
            &format!("/v1/accounts/{a}/members/{eu}"),
            &ot,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "agent_seat_exhausted")
    );
    let after = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(after["support"], before["support"]);
    let members = d.get(&format!("/v1/accounts/{a}/members"), &ot).await.body;
    assert_eq!(
        members["items"].as_array().unwrap().len(),
        3,
        "x was not added"
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members/{eu}"), &ot)
            .await
            .body["role"],
        "end_user"
    );
}

#[tokio::test]
async fn r10_support_and_sell_seats_are_separate() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(1).await;
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"sell_seats": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["support"],
        json!({"seats_total": 1, "seats_used": 1})
    );
    assert_eq!(r.body["sell"]["seats_total"], 5);
    assert_eq!(r.body["sell"]["seats_used"], 0);
    // Sell seats do not make room for an agent.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&ot),
            json!({"name": "X", "email": "x@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.code(), "agent_seat_exhausted");
    // Support seats do not change Sell's.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"support_seats": 3}),
        )
        .await;
    assert_eq!(r.body["sell"]["seats_total"], 5);
    assert_eq!(r.body["support"]["seats_total"], 3);
}

#[tokio::test]
async fn r11_concurrent_seat_takers_never_exceed_owned_seats() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let path = format!("/v1/accounts/{a}/members");
    let tries = (0..20).map(|i| {
        let d = &d;
        let path = path.clone();
        let ot = ot.clone();
        async move {
            d.post(
                &path,
                Some(&ot),
                json!({"name": "A", "email": format!("a{i}@acme.test"), "role": "agent"}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(tries).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let exhausted = answers
        .iter()
        .filter(|r| r.code() == "agent_seat_exhausted")
        .count();
    assert_eq!((created, exhausted), (4, 16));
    let acc = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(acc["support"], json!({"seats_total": 5, "seats_used": 5}));
    // Buying fewer seats than are in use is refused.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"support_seats": 3}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "seats_in_use"));
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.body["support"]["seats_total"],
        5
    );
}

#[tokio::test]
async fn r17_password_reset_is_single_use_primary_only_and_reveals_nothing() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    d.member(&ot, &a, "b@acme.test", "agent").await;
    let resets = format!("/v1/accounts/{a}/password-resets");
    // Unknown address, unknown account: the same 202, and no mail.
    let before = d.mails().len();
    let r = d
        .post(&resets, None, json!({"email": "nobody@acme.test"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // An account id of admind's shape that does not exist: the same 202.
    let r = d
        .post(
            "/v1/accounts/acc_00000000000000000000/password-resets",
            None,
            json!({"email": "b@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // One that cannot be an id at all is a 404 before any work (it reveals
    // nothing: the shape of ids is public).
    let r = d
        .post(
            "/v1/accounts/acc_nope/password-resets",
            None,
            json!({"email": "b@acme.test"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = d.post(&resets, None, json!({"email": "b@acme.test"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mail = d.wait_mail("b@acme.test", "Reset your password", 1).await;
    assert_eq!(
        d.mails().len(),
        before + 1,
        "only the known address got mail"
    );
    let confirm = |token: String, password: &str| json!({"token": token, "password": password});
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            confirm(mail.token(), "a brand new password"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Single use.
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            confirm(mail.token(), "another password"),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
    d.sign_in(&a, "b@acme.test", "a brand new password").await;
    let old = d
        .post(
            &format!("/v1/accounts/{a}/sessions"),
            None,
            json!({"email": "b@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (old.status, old.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // A wrong address gets the same answer as a wrong password.
    let unknown = d
        .post(
            &format!("/v1/accounts/{a}/sessions"),
            None,
            json!({"email": "zz@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(unknown.body["detail"], old.body["detail"]);
}

#[tokio::test]
async fn r17_tokens_expire_and_setting_a_password_verifies_the_address() {
    let d = Daemon::start_with("password_reset_ttl_secs = 1\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 1000\n".replace("password_reset", "[auth]\npassword_reset").as_str());
    let (a, o) = d.create_account("Acme", "owner@acme.test", 3).await;
    let ot = d.activate(&a, "owner@acme.test").await;
    let me = d.get(&format!("/v1/accounts/{a}/members/{o}"), &ot).await;
    assert_eq!(
        me.body["email_verified"], true,
        "the password-set link proved the address"
    );
    d.post(
        &format!("/v1/accounts/{a}/password-resets"),
        None,
        json!({"email": "owner@acme.test"}),
    )
    .await;
    let mail = d
        .wait_mail("owner@acme.test", "Reset your password", 1)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": mail.token(), "password": "too late password"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
}

#[tokio::test]
async fn r17_attempts_are_rate_limited_per_address() {
    let d = Daemon::start_with(
        "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 3\n",
    );
    let (a, _) = d.create_account("Acme", "owner@acme.test", 3).await;
    let path = format!("/v1/accounts/{a}/sessions");
    for _ in 0..3 {
        let r = d
            .post(
                &path,
                None,
                json!({"email": "owner@acme.test", "password": "wrong password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = d
        .post(
            &path,
            None,
            json!({"email": "owner@acme.test", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(r.headers.contains_key("retry-after"));
    // Another address is not affected.
    let r = d
        .post(
            &path,
            None,
            json!({"email": "other@acme.test", "password": "wrong password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let resets = format!("/v1/accounts/{a}/password-resets");
    for _ in 0..3 {
        assert_eq!(
            d.post(&resets, None, json!({"email": "owner@acme.test"}))
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        d.post(&resets, None, json!({"email": "owner@acme.test"}))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn r19_the_operator_records_investigations_but_never_changes_the_owner() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(5).await;
    let (b, bt) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let r = d
        .post(
            &format!("/v1/accounts/{a}/security-investigations"),
            Some(&d.operator),
            json!({"note": "owner left the company; caller claims to be IT"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = d
        .put(
            &format!("/v1/accounts/{a}/owner"),
            &d.operator,
            json!({"user_id": b}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "not_account_owner")
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &bt).await.body["id"],
        owner.as_str()
    );
    // Members cannot open investigations; the operator's is audited.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/security-investigations"),
            Some(&ot),
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "security_investigation.open"
            && e["actor"] == "operator"
            && e["outcome"] == "ok"));
    // The lost-owner path: a reset through the owner's mailbox.
    d.post(
        &format!("/v1/accounts/{a}/password-resets"),
        None,
        json!({"email": "owner@acme.test"}),
    )
    .await;
    let mail = d
        .wait_mail("owner@acme.test", "Reset your password", 1)
        .await;
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": mail.token(), "password": "recovered by IT"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let t = d.sign_in(&a, "owner@acme.test", "recovered by IT").await;
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner/candidates"), &t)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_end_on_sign_out_and_on_password_change() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let second = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    assert_eq!(
        d.delete("/v1/sessions/current", &ot).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &second).await.status,
        StatusCode::OK
    );
    d.post(
        &format!("/v1/accounts/{a}/password-resets"),
        None,
        json!({"email": "owner@acme.test"}),
    )
    .await;
    let mail = d
        .wait_mail("owner@acme.test", "Reset your password", 1)
        .await;
    d.post(
        "/v1/password-resets/confirm",
        None,
        json!({"token": mail.token(), "password": "changed password"}),
    )
    .await;
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &second).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn platform_support_lists_every_account_paged_and_searchable() {
    let d = Daemon::start();
    for i in 0..7 {
        let name = if i % 2 == 0 {
            format!("Acme {i}")
        } else {
            format!("Globex {i}")
        };
        d.create_account(&name, &format!("o{i}@x.test"), 1).await;
    }
    let all = d.all_pages("/v1/accounts", &d.operator).await;
    assert_eq!(all.len(), 7);
    let page = d.get("/v1/accounts?limit=3", &d.operator).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
    assert!(page.body["next"].is_string());
    let found = d.get("/v1/accounts?q=globex&limit=2", &d.operator).await;
    let names: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| n.starts_with("Globex")), "{names:?}");
    let rest = d
        .get(
            &format!(
                "/v1/accounts?q=GLOBEX&after={}",
                found.body["next"].as_str().unwrap()
            ),
            &d.operator,
        )
        .await;
    assert_eq!(
        rest.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        rest.body
    );
    // Members of an account do not see the others.
    let (_, _, owner) = d.account_with_owner(2).await;
    let refused = d.get("/v1/accounts", &owner).await;
    assert_eq!(
        refused.status,
        reqwest::StatusCode::FORBIDDEN,
        "{}",
        refused.body
    );
    let bad = d
        .get(&format!("/v1/accounts?q={}", "x".repeat(300)), &d.operator)
        .await;
    assert_eq!(bad.code(), "validation_failed");
}

#[tokio::test]
async fn r17_a_lost_invitation_is_mailed_again_until_the_password_is_set() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let new = d.add_member(&ot, &a, "new@acme.test", "agent").await;
    let (_, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let invitation = format!("/v1/accounts/{a}/members/{new}/invitation");
    // An agent cannot; an admin can.
    let r = d.post(&invitation, Some(&gt), json!(null)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = d.post(&invitation, Some(&ot), json!(null)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // A second link arrives, and it works.
    let second = d.wait_mail("new@acme.test", "Set your password", 2).await;
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": second.token(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // Once the password is set, there is no invitation to resend.
    let r = d.post(&invitation, Some(&ot), json!(null)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "invitation_accepted"),
        "{}",
        r.body
    );
    // Audited.
    let audit = d.all_audit(&a, &ot).await;
    assert!(audit
        .iter()
        .any(|e| e["action"] == "member.resend_invitation" && e["outcome"] == "ok"));
    // And bounded like every mail a member can make the daemon send.
    let other = d.add_member(&ot, &a, "other@acme.test", "agent").await;
    let again = format!("/v1/accounts/{a}/members/{other}/invitation");
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(d.post(&again, Some(&ot), json!(null)).await.status.as_u16());
    }
    // Five an hour per member asking: the owner's first resend counted.
    assert_eq!(codes, [202, 202, 202, 202, 429, 429]);
}

/// R05's hand-over mails, and every mail of the account, speak the
/// account's language: chosen at creation, changed by an admin, the
/// platform's default (`[mail] default_language`) otherwise.
#[tokio::test]
async fn r05_the_hand_over_mails_speak_the_accounts_language() {
    let d = Daemon::start_with("[mail]\ndefault_language = \"fr\"\n");
    // The platform's default: French.
    let (a, _) = d.create_account("Chez Nadia", "nadia@fr.test", 5).await;
    let set = d
        .wait_mail("nadia@fr.test", "Définissez votre mot de passe", 1)
        .await;
    assert!(set.body.contains("Bonjour Owner"), "{}", set.body);
    assert!(
        set.body.contains("Se connecter au compte :"),
        "{}",
        set.body
    );
    // Chosen at creation: English, whatever the default.
    let r = d
        .post(
            "/v1/accounts",
            Some(&d.operator),
            json!({"name": "Acme", "owner": {"name": "Owen", "email": "owen@acme.test"},
                   "support_seats": 5, "language": "en"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["language"], "en");
    let b = r.body["id"].as_str().unwrap().to_string();
    d.wait_mail("owen@acme.test", "Set your password for Acme", 1)
        .await;
    let ot = d.activate(&b, "owen@acme.test").await;
    let (admin, _) = d.member(&ot, &b, "ivan@acme.test", "admin").await;
    // An unknown language is refused and changes nothing.
    let lang = format!("/v1/accounts/{b}/language");
    let r = d.put(&lang, &ot, json!({"language": "de"})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{b}"), &ot).await.body["language"],
        "en"
    );
    // An admin switches it to French: the hand-over's mails are French.
    let r = d.put(&lang, &ot, json!({"language": "fr"})).await;
    assert_eq!(
        (r.status, &r.body["language"]),
        (StatusCode::OK, &json!("fr"))
    );
    let r = d
        .put(
            &format!("/v1/accounts/{b}/owner"),
            &ot,
            json!({"user_id": admin}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let received = d
        .wait_mail(
            "ivan@acme.test",
            "Vous êtes maintenant propriétaire de Acme",
            1,
        )
        .await;
    assert!(
        received
            .body
            .contains("factures, moyen de paiement et licences"),
        "{}",
        received.body
    );
    d.wait_mail(
        "owen@acme.test",
        "Vous avez transféré la propriété de Acme",
        1,
    )
    .await;
    // Back to the platform's default (null): still French here.
    let r = d.put(&lang, &ot, json!({"language": null})).await;
    assert_eq!(
        (r.status, &r.body["language"]),
        (StatusCode::OK, &Value::Null)
    );
    let _ = a;
}

/// R19 over the API: an admin asks platform support about a lost owner;
/// support sees it among the open cases and closes it with an answer the
/// account reads; the owner never changes. Bad requests change nothing.
#[tokio::test]
async fn r19_an_account_asks_support_and_reads_the_answer_but_the_owner_stays() {
    let d = Daemon::start();
    let (a, owner_id, ot) = d.account_with_owner(5).await;
    let (_, at) = d.member(&ot, &a, "ada@acme.test", "admin").await;
    let (_, gt) = d.member(&ot, &a, "al@acme.test", "agent").await;
    let path = format!("/v1/accounts/{a}/support-requests");
    let ask = |topic: &str| json!({"topic": topic, "message": "the owner left"});
    // Agents may not; a topic support does not handle is refused.
    assert_eq!(
        d.post(&path, Some(&gt), ask("ownership")).await.code(),
        "forbidden"
    );
    let r = d.post(&path, Some(&at), ask("refund")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let r = d.post(&path, Some(&at), ask("sell_admin")).await;
    assert_eq!(
        r.code(),
        "validation_failed",
        "the member to appoint is needed"
    );
    let r = d.post(&path, Some(&at), ask("ownership")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["requested_by"]
        .as_str()
        .unwrap()
        .starts_with("user:"));
    // Support's queue has it; it closes it with an answer.
    let open = d.get("/v1/support-requests", &d.operator).await;
    assert!(open.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));
    assert_eq!(d.get("/v1/support-requests", &at).await.code(), "forbidden");
    let r = d
        .post(
            &format!("{path}/{id}/close"),
            Some(&d.operator),
            json!({"note": "reset the password through the owner's mailbox"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mine = d.get(&path, &at).await;
    assert_eq!(
        mine.body["items"][0]["answer"],
        "reset the password through the owner's mailbox"
    );
    let open = d.get("/v1/support-requests", &d.operator).await;
    assert!(!open.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));
    // At most five open requests.
    for _ in 0..5 {
        assert_eq!(
            d.post(&path, Some(&at), ask("ownership")).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        d.post(&path, Some(&at), ask("ownership")).await.code(),
        "too_many_pending_requests"
    );
    // R19: the owner is who it was.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &ot).await.body["id"],
        owner_id
    );
}

/// The two most frequent reads (an account's owner, the first page of its
/// team) are answered by the read lane in front of the router; with a
/// query string the same reads go through the router. Both answer the
/// same, byte for byte, to every kind of caller (R07's agents and admins,
/// an end user, another account's owner, the operator, a bad or missing
/// token), echo the request id, and are counted under the same route.
#[tokio::test]
async fn r07_the_read_lane_answers_as_the_router_does() {
    let d = Daemon::start();
    let (a, _owner, owner_token) = d.account_with_owner(10).await;
    let (_, agent) = d.member(&owner_token, &a, "agent@acme.test", "agent").await;
    let (_, admin) = d.member(&owner_token, &a, "admin@acme.test", "admin").await;
    let (_, end_user) = d
        .member(&owner_token, &a, "user@acme.test", "end_user")
        .await;
    let (other_account, _) = d.create_account("Globex", "owner@globex.test", 3).await;
    let stranger = d.activate(&other_account, "owner@globex.test").await;
    let callers: Vec<(&str, Option<String>)> = vec![
        ("owner", Some(format!("Bearer {owner_token}"))),
        ("agent", Some(format!("Bearer {agent}"))),
        ("admin", Some(format!("Bearer {admin}"))),
        ("end user", Some(format!("Bearer {end_user}"))),
        (
            "another account's owner",
            Some(format!("Bearer {stranger}")),
        ),
        ("operator", Some(format!("Bearer {}", d.operator))),
        ("unknown token", Some("Bearer not-a-session".to_string())),
        ("not bearer", Some(format!("Basic {owner_token}"))),
        ("no header", None),
    ];
    let missing = "acc_00000000000000000000";
    let mut lane_answers = 0;
    for account in [a.as_str(), other_account.as_str(), missing] {
        for what in ["owner", "members"] {
            let path = format!("/v1/accounts/{account}/{what}");
            for (caller, authorization) in &callers {
                let mut answers = Vec::new();
                // The lane's path, then the router's (`limit=50` is the
                // default page size; the owner's read takes no query).
                for uri in [path.clone(), format!("{path}?limit=50")] {
                    let mut req = d
                        .http
                        .get(format!("{}{uri}", d.base))
                        .header("x-request-id", "lane-check");
                    if let Some(value) = authorization {
                        req = req.header("authorization", value);
                    }
                    let res = req.send().await.expect("request sent");
                    let status = res.status();
                    let headers = res.headers().clone();
                    let body = res.bytes().await.expect("body");
                    assert!(!status.is_server_error(), "{uri} ({caller}): {status}");
                    assert_eq!(
                        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                        Some("lane-check"),
                        "{uri} ({caller})"
                    );
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    answers.push((status, content_type, body));
                }
                assert_eq!(answers[0], answers[1], "{path} as {caller}");
                lane_answers += 1;
            }
        }
    }
    // Both counted under the router's route label: the lane's as many
    // as the router's.
    let counted = d
        .metric(r#"admind_http_requests_total{method="GET",route="/v1/accounts/{a}/owner",status="200"}"#)
        .await;
    // The owner, the agent and the admin read A's owner, and the other
    // account's owner its own (the operator is not a member of either):
    // four, twice each.
    assert_eq!(counted, 8.0, "{lane_answers} reads compared");
}
