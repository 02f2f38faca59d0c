//! Rules of profiles and products (R12–R16, R18, R20–R25), over HTTP
//! against a real daemon, reading mail as the recipients would.
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

fn emails_path(a: &str, u: &str) -> String {
    format!("/v1/accounts/{a}/members/{u}/emails")
}

#[tokio::test]
async fn r12_who_may_manage_whose_addresses() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (admin, at) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    let (agent, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let (end_user, _) = d.member(&ot, &a, "user@acme.test", "end_user").await;
    // Their own.
    assert_eq!(
        d.post(
            &emails_path(&a, &agent),
            Some(&gt),
            json!({"address": "agent2@acme.test"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    // An admin: agents' and end users'.
    assert_eq!(
        d.post(
            &emails_path(&a, &end_user),
            Some(&at),
            json!({"address": "user2@acme.test"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        d.post(
            &emails_path(&a, &agent),
            Some(&at),
            json!({"address": "agent3@acme.test"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    // Never another admin's or the owner's, even for the owner.
    let r = d
        .post(
            &emails_path(&a, &owner),
            Some(&at),
            json!({"address": "x@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d
        .post(
            &emails_path(&a, &admin),
            Some(&ot),
            json!({"address": "y@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d
        .delete(&format!("{}/admin@acme.test", emails_path(&a, &admin)), &ot)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An agent cannot touch someone else's.
    let r = d
        .post(
            &emails_path(&a, &end_user),
            Some(&gt),
            json!({"address": "z@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Unique per account, case-insensitively.
    let r = d
        .post(
            &emails_path(&a, &agent),
            Some(&gt),
            json!({"address": "ADMIN@acme.test"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "email_taken"));
}

#[tokio::test]
async fn r13_adding_an_address_notifies_the_profile_and_verifies_the_new_one() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let r = d
        .post(
            &emails_path(&a, &owner),
            Some(&ot),
            json!({"address": "ana.perso@home.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let notice = d
        .wait_mail("owner@acme.test", "An address was added", 1)
        .await;
    assert!(notice.body.contains("ana.perso@home.test"));
    let link = d
        .wait_mail("ana.perso@home.test", "Verify your address", 1)
        .await;
    let list = d.get(&emails_path(&a, &owner), &ot).await.body;
    assert_eq!(list["items"][1]["verified"], false);
    let r = d
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": link.token()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let list = d.get(&emails_path(&a, &owner), &ot).await.body;
    assert_eq!(list["items"][1]["verified"], true);
    // Single use.
    let r = d
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": link.token()}),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
}

#[tokio::test]
async fn r14_only_a_verified_address_becomes_primary() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (agent, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    d.post(
        &emails_path(&a, &agent),
        Some(&gt),
        json!({"address": "new@acme.test"}),
    )
    .await;
    let primary = format!("{}/new@acme.test/primary", emails_path(&a, &agent));
    let r = d.put(&primary, &gt, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "email_unverified")
    );
    let link = d.wait_mail("new@acme.test", "Verify your address", 1).await;
    d.post(
        "/v1/email-verifications/confirm",
        None,
        json!({"token": link.token()}),
    )
    .await;
    let r = d.put(&primary, &gt, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap().clone();
    assert!(items
        .iter()
        .any(|e| e["address"] == "new@acme.test" && e["primary"] == true));
    assert_eq!(items.iter().filter(|e| e["primary"] == true).count(), 1);
    // The old primary is told, and password resets now go to the new one.
    d.wait_mail("agent@acme.test", "primary address", 1).await;
}

#[tokio::test]
async fn r15_the_primary_address_cannot_be_removed() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let r = d
        .delete(&format!("{}/owner@acme.test", emails_path(&a, &owner)), &ot)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "cannot_remove_primary_email")
    );
    let list = d.get(&emails_path(&a, &owner), &ot).await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// The whole profile hand-over of R16, as the article describes it.
#[tokio::test]
async fn r16_profile_hand_over_when_no_seat_is_free() {
    let d = Daemon::start();
    let (a, owner, old_session) = d.account_with_owner(2).await;
    d.add_member(&old_session, &a, "agent@acme.test", "agent")
        .await;
    // No seat is free: adding the successor as admin is impossible.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&old_session),
            json!({"name": "Bea", "email": "bea@acme.test", "role": "admin"}),
        )
        .await;
    assert_eq!(r.code(), "agent_seat_exhausted");
    // 1. The owner adds the new person's address to their own profile.
    let r = d
        .post(
            &emails_path(&a, &owner),
            Some(&old_session),
            json!({"address": "bea@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // 2. The new person verifies it from their inbox.
    let link = d.wait_mail("bea@acme.test", "Verify your address", 1).await;
    assert_eq!(
        d.post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": link.token()})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    // 3. The owner makes it primary, 4. and removes the old address.
    let r = d
        .put(
            &format!("{}/bea@acme.test/primary", emails_path(&a, &owner)),
            &old_session,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = d
        .delete(
            &format!("{}/owner@acme.test", emails_path(&a, &owner)),
            &old_session,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The old holder's session, opened with the removed address, is over.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &old_session)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The new person resets the password through the new address...
    d.post(
        &format!("/v1/accounts/{a}/password-resets"),
        None,
        json!({"email": "bea@acme.test"}),
    )
    .await;
    let reset = d.wait_mail("bea@acme.test", "Reset your password", 1).await;
    let r = d
        .post(
            "/v1/password-resets/confirm",
            None,
            json!({"token": reset.token(), "password": "bea's own secret"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // ...and signs in as the owner.
    let bea = d.sign_in(&a, "bea@acme.test", "bea's own secret").await;
    let me = d.get(&format!("/v1/accounts/{a}/owner"), &bea).await.body;
    assert_eq!(me["id"], owner.as_str());
    assert_eq!(me["primary_email"], "bea@acme.test");
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/billing/invoices"), &bea)
            .await
            .status,
        StatusCode::OK
    );
    // The old address no longer signs in, with any password.
    for password in [PASSWORD, "bea's own secret"] {
        let r = d
            .post(
                &format!("/v1/accounts/{a}/sessions"),
                None,
                json!({"email": "owner@acme.test", "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // No seat was used.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &bea).await.body["support"]["seats_used"],
        2
    );
    // 5. The article's last step: the rest of the profile is updated, the
    // name first; the owner is now shown as Bea.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/members/{owner}/name"),
            &bea,
            json!({"name": "Bea Martin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "Bea Martin");
    let owner_now = d.get(&format!("/v1/accounts/{a}/owner"), &bea).await.body;
    assert_eq!(owner_now["name"], "Bea Martin");
}

#[tokio::test]
async fn r12_r16_a_name_is_changed_by_the_person_or_an_admin_for_agents() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(5).await;
    let (admin, at) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    let (agent, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let name = |u: &str| format!("/v1/accounts/{a}/members/{u}/name");
    // The person.
    let r = d.put(&name(&agent), &gt, json!({"name": "Agnes"})).await;
    assert_eq!(
        (r.status, r.body["name"].clone()),
        (StatusCode::OK, json!("Agnes")),
        "{}",
        r.body
    );
    // An admin, for an agent.
    let r = d.put(&name(&agent), &at, json!({"name": "Agnes B."})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Not an agent for anyone else, nor an admin for another admin or the owner.
    for (token, target) in [(&gt, &admin), (&at, &owner)] {
        let r = d
            .put(&name(target), token, json!({"name": "Mallory"}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    // Names are validated like everywhere else.
    for bad in ["", "   ", "Ana\u{202E}nimdA"] {
        let r = d.put(&name(&agent), &gt, json!({"name": bad})).await;
        assert_eq!(r.code(), "validation_failed", "{bad:?}");
    }
    // Audited, with the name before and after.
    let audit = d.all_audit(&a, &ot).await;
    assert!(
        audit.iter().any(|e| e["action"] == "member.rename"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("\"Agnes\" -> \"Agnes B.\"")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn r18_temporary_licences_are_requested_granted_and_expire_without_evicting() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(1).await;
    let (_, admin) = {
        let r = d
            .put(
                &format!("/v1/accounts/{a}/billing/seats"),
                &ot,
                json!({"support_seats": 2}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        d.member(&ot, &a, "admin@acme.test", "admin").await
    };
    // Only the owner asks.
    let body = json!({"product": "support", "seats": 2, "reason": "onboarding week"});
    let r = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(&admin),
            body.clone(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "not_account_owner")
    );
    let r = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(&ot),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let queue = d
        .get("/v1/licence-requests?status=pending", &d.operator)
        .await;
    assert!(queue.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == id.as_str()));
    assert_eq!(
        d.get("/v1/licence-requests", &ot).await.status,
        StatusCode::FORBIDDEN
    );
    // The operator grants two seats for a short while; the owner is mailed.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let r = d
        .post(
            &format!("/v1/licence-requests/{id}/grant"),
            Some(&d.operator),
            json!({"seats": 2, "expires_at": expires}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    d.wait_mail("owner@acme.test", "Temporary support seats granted", 1)
        .await;
    let again = d
        .post(
            &format!("/v1/licence-requests/{id}/deny"),
            Some(&d.operator),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(again.code(), "licence_request_decided");
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.body["support"]["seats_total"],
        4
    );
    let (_, agent) = d.member(&ot, &a, "t1@acme.test", "agent").await;
    d.add_member(&ot, &a, "t2@acme.test", "agent").await;
    // Expiry: computed from the stored time, across a restart too.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let mut d = d;
    d.restart();
    let acc = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(acc["support"], json!({"seats_total": 2, "seats_used": 4}));
    // Nobody loses access, but no new seat is taken until usage fits.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &agent)
            .await
            .status,
        StatusCode::OK
    );
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&ot),
            json!({"name": "T", "email": "t3@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.code(), "agent_seat_exhausted");
    // Denials are mailed too.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(&ot),
            json!({"product": "sell", "seats": 1, "reason": "demo"}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap();
    let r = d
        .post(
            &format!("/v1/licence-requests/{id}/deny"),
            Some(&d.operator),
            json!({"reason": "buy Sell instead"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mail = d.wait_mail("owner@acme.test", "denied", 1).await;
    assert!(mail.body.contains("buy Sell instead"));
}

#[tokio::test]
async fn r20_r21_a_trial_makes_its_starter_the_only_sell_admin_until_sell_is_bought() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (admin, at) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    let (_, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    assert_eq!(
        d.post(
            &format!("/v1/accounts/{a}/sell/trial"),
            Some(&gt),
            json!({})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/trial"),
            Some(&at),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["sell"],
        json!({"status": "trial", "seats_total": 1, "seats_used": 1})
    );
    let users = d
        .get(&format!("/v1/accounts/{a}/sell/users"), &ot)
        .await
        .body;
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], admin.as_str());
    assert_eq!(items[0]["sell_role"], "admin");
    assert_eq!(
        d.post(
            &format!("/v1/accounts/{a}/sell/trial"),
            Some(&ot),
            json!({})
        )
        .await
        .code(),
        "sell_already_started"
    );
    // R21: the owner adds Sell to the subscription.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"sell_seats": 3}),
        )
        .await;
    assert_eq!(
        r.body["sell"],
        json!({"status": "active", "seats_total": 3, "seats_used": 1})
    );
}

#[tokio::test]
async fn r22_support_admins_grant_sell_and_sell_admins_configure_it() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (agent, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let (eu, _) = d.member(&ot, &a, "user@acme.test", "end_user").await;
    let (admin, at) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    d.post(
        &format!("/v1/accounts/{a}/sell/trial"),
        Some(&ot),
        json!({}),
    )
    .await;
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        json!({"sell_seats": 5}),
    )
    .await;
    let users = format!("/v1/accounts/{a}/sell/users");
    // An agent cannot grant Sell; a Support admin can (a Sell seat each).
    assert_eq!(
        d.post(&users, Some(&gt), json!({"user_id": eu, "role": "user"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = d
        .post(&users, Some(&at), json!({"user_id": eu, "role": "user"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["sell_role"], "user");
    // An end user holds a Sell seat and no Support seat (R10).
    let acc = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(acc["sell"]["seats_used"], 2);
    assert_eq!(acc["support"]["seats_used"], 3);
    // Configuring Sell roles needs a Sell admin: the Support admin is not one.
    let r = d
        .patch(&format!("{users}/{eu}"), &at, json!({"role": "admin"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d
        .post(
            &users,
            Some(&at),
            json!({"user_id": agent, "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The owner, Sell admin since the trial, can.
    let r = d
        .patch(&format!("{users}/{eu}"), &ot, json!({"role": "admin"}))
        .await;
    assert_eq!(
        (r.status, r.body["sell_role"].clone()),
        (StatusCode::OK, json!("admin"))
    );
    let list = d.get(&format!("/v1/accounts/{a}/members"), &ot).await.body;
    let roles: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["sell_role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(roles.contains(&(owner.clone(), "admin".into())));
    assert!(roles.contains(&(admin, "none".into())));
}

#[tokio::test]
async fn r23_without_a_sell_admin_only_platform_support_opens_sell_to_others() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (bob, bt) = d.member(&ot, &a, "bob@acme.test", "agent").await;
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        json!({"sell_seats": 3}),
    )
    .await;
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/users"),
            Some(&ot),
            json!({"user_id": bob, "role": "admin"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "sell_admin_required")
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("platform support"),
        "{:?}",
        r.body
    );
    // Members cannot appoint; the operator can, once.
    let admins = format!("/v1/accounts/{a}/sell/admins");
    assert_eq!(
        d.post(&admins, Some(&ot), json!({"user_id": bob}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = d
        .post(&admins, Some(&d.operator), json!({"user_id": bob}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["sell_role"], "admin");
    assert_eq!(
        d.post(&admins, Some(&d.operator), json!({"user_id": bob}))
            .await
            .code(),
        "sell_admin_exists"
    );
    // Bob, Sell admin, now configures Sell.
    let (eu, _) = d.member(&ot, &a, "eu@acme.test", "end_user").await;
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/users"),
            Some(&ot),
            json!({"user_id": eu, "role": "user"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        d.patch(
            &format!("/v1/accounts/{a}/sell/users/{eu}"),
            &bt,
            json!({"role": "admin"})
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn r24_the_enabler_may_leave_but_the_last_sell_admin_stays() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (bea, bt) = d.member(&ot, &a, "bea@acme.test", "admin").await;
    d.post(
        &format!("/v1/accounts/{a}/sell/trial"),
        Some(&ot),
        json!({}),
    )
    .await;
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        json!({"sell_seats": 2}),
    )
    .await;
    let users = format!("/v1/accounts/{a}/sell/users");
    // Alone, the enabler cannot leave.
    let r = d.delete(&format!("{users}/{owner}"), &ot).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "last_sell_admin")
    );
    let r = d
        .patch(&format!("{users}/{owner}"), &ot, json!({"role": "user"}))
        .await;
    assert_eq!(r.code(), "last_sell_admin");
    // They add another Sell admin, who removes them.
    assert_eq!(
        d.post(&users, Some(&ot), json!({"user_id": bea, "role": "admin"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        d.delete(&format!("{users}/{owner}"), &bt).await.status,
        StatusCode::NO_CONTENT
    );
    let r = d.delete(&format!("{users}/{bea}"), &bt).await;
    assert_eq!(r.code(), "last_sell_admin");
    // Removing the last Sell admin from the account is refused too.
    let r = d
        .delete(&format!("/v1/accounts/{a}/members/{bea}"), &ot)
        .await;
    assert_eq!(r.code(), "last_sell_admin");
    let acc = d.get(&format!("/v1/accounts/{a}"), &ot).await.body;
    assert_eq!(acc["sell"]["seats_used"], 1);
}

/// R25 as one story: handing Sell over needs two seats for a moment.
#[tokio::test]
async fn r25_handing_sell_over_needs_a_second_seat() {
    let d = Daemon::start_with(
        "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 1000\n",
    );
    let (a, owner, ot) = d.account_with_owner(10).await;
    let (bea, bt) = d.member(&ot, &a, "bea@acme.test", "admin").await;
    d.post(
        &format!("/v1/accounts/{a}/sell/trial"),
        Some(&ot),
        json!({}),
    )
    .await;
    let users = format!("/v1/accounts/{a}/sell/users");
    // The trial's only seat is taken: the hand-over step fails.
    let r = d
        .post(&users, Some(&ot), json!({"user_id": bea, "role": "admin"}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "sell_seat_exhausted")
    );
    // The refusal is audited, Bea has no Sell, and the hook event reached
    // the dispatcher.
    wait_for_dispatched_hooks(&d, 1).await;
    let audit = d
        .get(&format!("/v1/accounts/{a}/audit?limit=200"), &ot)
        .await
        .body;
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["outcome"] == "refused:sell_seat_exhausted"));
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members/{bea}"), &ot)
            .await
            .body["sell_role"],
        "none"
    );
    // With a second seat both hold one for a moment, then the enabler leaves.
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        json!({"sell_seats": 2}),
    )
    .await;
    assert_eq!(
        d.post(&users, Some(&ot), json!({"user_id": bea, "role": "admin"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.body["sell"]["seats_used"],
        2
    );
    assert_eq!(
        d.delete(&format!("{users}/{owner}"), &bt).await.status,
        StatusCode::NO_CONTENT
    );
    let list = d.get(&users, &bt).await.body;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], bea.as_str());
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}"), &ot).await.body["sell"]["seats_used"],
        1
    );
}

async fn wait_for_dispatched_hooks(d: &Daemon, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = d
            .call(reqwest::Method::GET, "/metrics", None, None)
            .await
            .body;
        let n = text
            .as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("admind_hook_events_dispatched_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if n >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hook events dispatched: {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn r12_an_admin_cannot_take_over_the_profile_of_a_member_with_powers_the_admin_lacks() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(10).await;
    let (_, at) = d.member(&ot, &a, "admin@acme.test", "admin").await;
    let (agent, _) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    // The owner (Sell admin by the trial) makes the agent a Sell admin.
    d.post(
        &format!("/v1/accounts/{a}/sell/trial"),
        Some(&ot),
        json!({}),
    )
    .await;
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        json!({"sell_seats": 5}),
    )
    .await;
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/users"),
            Some(&ot),
            json!({"user_id": agent, "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The Support admin, no Sell admin, may not add a mailbox to the
    // agent's profile (then make it primary and reset the password).
    let emails = format!("/v1/accounts/{a}/members/{agent}/emails");
    let r = d
        .post(&emails, Some(&at), json!({"address": "mine@evil.test"}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "member_holds_powers_you_lack"),
        "{}",
        r.body
    );
    assert!(r.body["detail"].as_str().unwrap().contains("Sell admin"));
    // Nor remove or promote what is there.
    let r = d.delete(&format!("{emails}/agent@acme.test"), &at).await;
    assert_eq!(r.code(), "member_holds_powers_you_lack", "{}", r.body);
    // The owner, a Sell admin too, may.
    let r = d
        .post(&emails, Some(&ot), json!({"address": "agent2@acme.test"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Once the agent is no Sell admin, the Support admin may again.
    let r = d
        .patch(
            &format!("/v1/accounts/{a}/sell/users/{agent}"),
            &ot,
            json!({"role": "user"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = d
        .post(&emails, Some(&at), json!({"address": "agent3@acme.test"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn r18_one_pending_licence_request_per_product_asking_again_updates_it() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(2).await;
    let requests = format!("/v1/accounts/{a}/licence-requests");
    let first = d
        .post(
            &requests,
            Some(&ot),
            json!({"product": "support", "seats": 2, "reason": "busy week"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // Asked again (a second click, a policy on another replica): the
    // pending request is updated, not doubled.
    let again = d
        .post(
            &requests,
            Some(&ot),
            json!({"product": "support", "seats": 5, "reason": "busier week"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["seats"], 5);
    assert_eq!(again.body["reason"], "busier week");
    // Racing asks for the same product still leave one.
    let racing = (0..8).map(|n| {
        d.post(
            &requests,
            Some(&ot),
            json!({"product": "support", "seats": 3, "reason": format!("race {n}")}),
        )
    });
    for r in futures::future::join_all(racing).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Another product is a request of its own.
    let sell = d
        .post(
            &requests,
            Some(&ot),
            json!({"product": "sell", "seats": 1, "reason": "demo"}),
        )
        .await;
    assert_eq!(sell.status, StatusCode::CREATED, "{}", sell.body);
    let list = d.get(&requests, &ot).await.body;
    let pending: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "{list}");
    // Once decided, a new ask files a new request.
    let id = first.body["id"].as_str().unwrap();
    let r = d
        .post(
            &format!("/v1/licence-requests/{id}/deny"),
            Some(&d.operator),
            json!({"reason": "no"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let after = d
        .post(
            &requests,
            Some(&ot),
            json!({"product": "support", "seats": 1, "reason": "again"}),
        )
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    assert_ne!(after.body["id"], first.body["id"]);
}
