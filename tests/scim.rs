//! Provisioning from the customer's identity provider (SCIM 2.0) under the
//! account's rules, over HTTP against a real daemon: tokens, seats
//! (R09, R11), the owner (R02, R05, R08), addresses (R12–R16), roles as
//! groups (R22, R23), the audit log naming the directory, and limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use common::{Daemon, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A directory token of account `a`, created by `by` (owner or admin).
async fn directory_token(d: &Daemon, a: &str, by: &str, name: &str) -> (String, String) {
    let r = d
        .post(
            &format!("/v1/accounts/{a}/scim/tokens"),
            Some(by),
            json!({"name": name}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["token"].as_str().unwrap().to_string(),
    )
}

/// A SCIM call: paths are relative to `/scim/v2`.
async fn scim(
    d: &Daemon,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> common::Answer {
    d.call(method, &format!("/scim/v2{path}"), Some(token), body)
        .await
}

fn new_user(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "displayName": user_name.split('@').next().unwrap(),
        "emails": [{"value": email, "primary": true}],
        "active": true,
    })
}

async fn create(d: &Daemon, t: &str, user_name: &str, email: &str) -> common::Answer {
    scim(
        d,
        Method::POST,
        "/Users",
        t,
        Some(new_user(user_name, email)),
    )
    .await
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

/// A SCIM error: the schema, the status as text, the rule's code first in
/// the detail.
fn assert_scim_error(r: &common::Answer, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["schemas"][0], ERROR, "{}", r.body);
    assert_eq!(r.body["status"], status.as_u16().to_string(), "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with(code), "{code} expected: {}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/scim+json",
        "{}",
        r.body
    );
}

async fn seats_used(d: &Daemon, a: &str, ot: &str) -> u64 {
    let r = d.get(&format!("/v1/accounts/{a}"), ot).await;
    r.body["support"]["seats_used"].as_u64().unwrap()
}

#[tokio::test]
async fn scim_tokens_are_shown_once_named_in_the_audit_log_and_revocable() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let (id, t) = directory_token(&d, &a, &ot, "Okta").await;
    assert!(t.starts_with("admind_scim."), "{t}");
    // Listed without the token; an agent may not list them.
    let list = d.get(&format!("/v1/accounts/{a}/scim/tokens"), &ot).await;
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert_eq!(list.body["items"][0]["name"], "Okta");
    assert!(
        !list.body.to_string().contains(&t[t.len() - 20..]),
        "{}",
        list.body
    );
    let (_, gt) = d.member(&ot, &a, "agent@acme.test", "agent").await;
    let r = d.get(&format!("/v1/accounts/{a}/scim/tokens"), &gt).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // It works, and the audit log names the directory as the actor.
    let r = create(&d, &t, "bob@acme.test", "bob@acme.test").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/scim+json"
    );
    assert!(r
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with(r.body["id"].as_str().unwrap()));
    let audit = d.all_audit(&a, &ot).await;
    assert!(
        audit
            .iter()
            .any(|e| e["actor"] == "directory:Okta" && e["action"] == "member.add"),
        "{audit:?}"
    );
    // Its use is recorded (to ten minutes).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = d.get(&format!("/v1/accounts/{a}/scim/tokens"), &ot).await;
        if list.body["items"][0]["last_used_at"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last use never recorded: {}",
            list.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // It is no session token, and no session token is a directory token.
    let r = d.get(&format!("/v1/accounts/{a}/members"), &t).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_scim_error(
        &scim(&d, Method::GET, "/Users", &ot, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Revoked, it opens nothing.
    let r = d
        .delete(&format!("/v1/accounts/{a}/scim/tokens/{id}"), &ot)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_scim_error(
        &scim(&d, Method::GET, "/Users", &t, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert!(d
        .get(&format!("/v1/accounts/{a}/scim/tokens"), &ot)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn scim_bad_tokens_spend_that_tokens_own_attempt_budget() {
    let d = Daemon::start_opts(
        "[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nattempts_per_minute = 3\nattempts_per_minute_per_ip = 100000\n",
        common::SpawnOptions {
            log_to_file: true,
            ..Default::default()
        },
    );
    let (a, _, ot) = d.account_with_owner(5).await;
    let (_, okta) = directory_token(&d, &a, &ot, "Okta").await;
    let (_, entra) = directory_token(&d, &a, &ot, "Entra").await;
    // Guessing Okta's secret: three failures, then even the right one waits.
    let (prefix, _) = okta.rsplit_once('.').unwrap();
    for _ in 0..3 {
        let r = scim(&d, Method::GET, "/Users", &format!("{prefix}.guess"), None).await;
        assert_scim_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let r = scim(&d, Method::GET, "/Users", &okta, None).await;
    assert_scim_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    // The other directory is not held back by it.
    assert_eq!(
        scim(&d, Method::GET, "/Users", &entra, None).await.status,
        StatusCode::OK
    );
    // The secret never reaches the log.
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert!(
        !log.contains(okta.rsplit_once('.').unwrap().1),
        "a token in the log"
    );
}

#[tokio::test]
async fn r09_a_provisioned_member_takes_a_seat_and_the_hook_fires_when_none_is_free() {
    let d = Daemon::start();
    d.install_script("temporary_licences.rhai");
    let (a, _, ot) = d.account_with_owner(2).await;
    d.wait_policy_loaded("temporary_licences.rhai").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let r = create(&d, &t, "bob@acme.test", "bob@acme.test").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["groups"][0]["value"], "agents", "{}", r.body);
    assert_eq!(seats_used(&d, &a, &ot).await, 2);
    // No seat left: refused as in the console, nothing created, and the
    // temporary-licence policy files its request (agent_seat_exhausted).
    let r = create(&d, &t, "cy@acme.test", "cy@acme.test").await;
    assert_scim_error(&r, StatusCode::CONFLICT, "agent_seat_exhausted");
    let found = scim(
        &d,
        Method::GET,
        "/Users?filter=userName%20eq%20%22cy@acme.test%22",
        &t,
        None,
    )
    .await;
    assert_eq!(found.body["totalResults"], 0, "{}", found.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = d
            .get(&format!("/v1/accounts/{a}/licence-requests"), &ot)
            .await;
        if list.body["items"].as_array().is_some_and(|i| !i.is_empty()) {
            assert_eq!(list.body["items"][0]["product"], "support");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no licence request: {}",
            list.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Created inactive, a member takes no seat and gets no mail yet.
    let mut inactive = new_user("dee@acme.test", "dee@acme.test");
    inactive["active"] = json!(false);
    let r = scim(&d, Method::POST, "/Users", &t, Some(inactive)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(seats_used(&d, &a, &ot).await, 2);
    assert!(d.mails().iter().all(|m| m.to != "dee@acme.test"));
}

#[tokio::test]
async fn r11_deactivating_frees_the_seat_ends_sessions_and_reactivating_takes_it_again() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(2).await;
    let (bob, bt) = d.member(&ot, &a, "bob@acme.test", "agent").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let user = format!("/Users/{bob}");
    let r = scim(
        &d,
        Method::PATCH,
        &user,
        &t,
        Some(patch(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(seats_used(&d, &a, &ot).await, 1, "the seat is free");
    // Sessions ended, sign-in refused, the profile and its role kept.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &bt).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sessions"),
            None,
            json!({"email": "bob@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "member_deactivated"),
        "{}",
        r.body
    );
    let m = d.get(&format!("/v1/accounts/{a}/members/{bob}"), &ot).await;
    assert_eq!(
        (m.body["active"].clone(), m.body["role"].clone()),
        (json!(false), json!("agent"))
    );
    // The free seat goes to someone else; Bob's comeback then finds none.
    d.add_member(&ot, &a, "cy@acme.test", "agent").await;
    let back = patch(json!([{"op": "Replace", "path": "active", "value": "True"}]));
    let r = scim(&d, Method::PATCH, &user, &t, Some(back.clone())).await;
    assert_scim_error(&r, StatusCode::CONFLICT, "agent_seat_exhausted");
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            json!({"support_seats": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = scim(&d, Method::PATCH, &user, &t, Some(back)).await;
    assert_eq!(
        (r.status, r.body["active"].clone()),
        (StatusCode::OK, json!(true)),
        "{}",
        r.body
    );
    assert_eq!(seats_used(&d, &a, &ot).await, 3);
    d.sign_in(&a, "bob@acme.test", PASSWORD).await;
}

#[tokio::test]
async fn r08_the_directory_never_deactivates_deletes_or_demotes_the_owner() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(3).await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let user = format!("/Users/{owner}");
    let r = scim(
        &d,
        Method::PATCH,
        &user,
        &t,
        Some(patch(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    )
    .await;
    assert_scim_error(&r, StatusCode::CONFLICT, "owner_role_locked");
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("hand ownership over first"));
    assert_scim_error(
        &scim(&d, Method::DELETE, &user, &t, None).await,
        StatusCode::CONFLICT,
        "owner_role_locked",
    );
    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{owner}\"]")}]));
    let r = scim(
        &d,
        Method::PATCH,
        "/Groups/administrators",
        &t,
        Some(remove),
    )
    .await;
    assert_scim_error(&r, StatusCode::CONFLICT, "owner_role_locked");
    let m = d
        .get(&format!("/v1/accounts/{a}/members/{owner}"), &ot)
        .await;
    assert_eq!(
        (m.body["active"].clone(), m.body["role"].clone()),
        (json!(true), json!("admin"))
    );
}

#[tokio::test]
async fn r02_r05_a_directory_token_never_reaches_ownership_or_billing() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(3).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    // The owner's own token acts with the owner's powers, except these.
    let r = d
        .put(
            &format!("/v1/accounts/{a}/owner"),
            &t,
            json!({"user_id": b}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = d
        .get(&format!("/v1/accounts/{a}/billing/invoices"), &t)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // Nor does SCIM offer them: no attribute or group names the owner.
    let r = scim(
        &d,
        Method::PATCH,
        &format!("/Users/{b}"),
        &t,
        Some(patch(
            json!([{"op": "add", "path": "owner", "value": true}]),
        )),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, "no attribute");
    let owner = d.get(&format!("/v1/accounts/{a}/owner"), &ot).await;
    assert_ne!(owner.body["id"], b.as_str());
}

#[tokio::test]
async fn r12_r13_r14_r16_addresses_from_the_directory_follow_the_profile_rules() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let (ana, _) = d.member(&ot, &a, "ana@acme.test", "agent").await;
    let (admin, _) = d.member(&ot, &a, "adm@acme.test", "admin").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    // R16 through the directory: the profile is renamed to Nadia.
    let renamed = json!({
        "schemas": [USER], "userName": "nadia@acme.test", "displayName": "Nadia",
        "emails": [{"value": "nadia@acme.test", "primary": true}], "active": true,
    });
    let r = scim(
        &d,
        Method::PUT,
        &format!("/Users/{ana}"),
        &t,
        Some(renamed.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // R14: unverified, the new address is not primary yet; R15 keeps the old.
    let primary = |body: &Value| {
        body["emails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["primary"] == true)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(primary(&r.body), "ana@acme.test", "{}", r.body);
    assert_eq!(r.body["displayName"], "Nadia");
    // R13: the profile is told, the new address gets its link.
    d.wait_mail("ana@acme.test", "An address was added", 1)
        .await;
    let link = d
        .wait_mail("nadia@acme.test", "Verify your address", 1)
        .await;
    let v = d
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": link.token()}),
        )
        .await;
    assert_eq!(v.status, StatusCode::NO_CONTENT, "{}", v.body);
    // Verified, it is primary at once (the old address is told, R14's
    // hook fires); the old address goes at the directory's next push.
    let r = scim(&d, Method::GET, &format!("/Users/{ana}"), &t, None).await;
    assert_eq!(primary(&r.body), "nadia@acme.test", "{}", r.body);
    d.wait_mail("ana@acme.test", "primary address", 1).await;
    let r = scim(&d, Method::PUT, &format!("/Users/{ana}"), &t, Some(renamed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(primary(&r.body), "nadia@acme.test", "{}", r.body);
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 1, "{}", r.body);
    // R12: an admin's addresses are that admin's alone, even for the owner's directory.
    let r = scim(
        &d,
        Method::PATCH,
        &format!("/Users/{admin}"),
        &t,
        Some(patch(
            json!([{"op": "add", "path": "emails", "value": [{"value": "other@evil.test"}]}]),
        )),
    )
    .await;
    assert_scim_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn scim_users_filter_page_select_and_search() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(20).await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    for i in 0..5 {
        let mut u = new_user(&format!("u{i}"), &format!("u{i}@acme.test"));
        u["externalId"] = json!(format!("ext-{i}"));
        let r = scim(&d, Method::POST, "/Users", &t, Some(u)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    // userName is unique without case.
    let r = create(&d, &t, "U1", "other@acme.test").await;
    assert_scim_error(&r, StatusCode::CONFLICT, "user_name_taken");
    let total = |r: &common::Answer| r.body["totalResults"].as_u64().unwrap();
    let q = |f: &str| {
        format!(
            "/Users?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    assert_eq!(
        total(&scim(&d, Method::GET, &q(r#"userName eq "U3""#), &t, None).await),
        1
    );
    assert_eq!(
        total(&scim(&d, Method::GET, &q(r#"externalId eq "ext-2""#), &t, None).await),
        1
    );
    assert_eq!(
        total(&scim(&d, Method::GET, &q(r#"externalId eq "EXT-2""#), &t, None).await),
        0
    );
    assert_eq!(
        total(
            &scim(
                &d,
                Method::GET,
                &q(r#"emails.value eq "u4@acme.test""#),
                &t,
                None
            )
            .await
        ),
        1
    );
    assert_eq!(
        total(
            &scim(
                &d,
                Method::GET,
                &q(r#"userName eq "u1" or (externalId sw "ext" and not (active eq false))"#),
                &t,
                None
            )
            .await
        ),
        5
    );
    // Pages: 6 members (the owner too), 2 per page from the 3rd.
    let page = scim(
        &d,
        Method::GET,
        "/Users?startIndex=3&count=2&attributes=userName",
        &t,
        None,
    )
    .await;
    assert_eq!(
        (
            total(&page),
            page.body["itemsPerPage"].clone(),
            page.body["startIndex"].clone()
        ),
        (6, json!(2), json!(3))
    );
    let first = &page.body["Resources"][0];
    assert!(
        first["userName"].is_string() && first["id"].is_string() && first["emails"].is_null(),
        "{first}"
    );
    let r = scim(
        &d,
        Method::GET,
        "/Users?count=100000&excludedAttributes=emails,groups",
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["Resources"].as_array().unwrap().len(), 6);
    assert!(
        r.body["Resources"][0]["emails"].is_null()
            && r.body["Resources"][0]["userName"].is_string()
    );
    let r = scim(
        &d,
        Method::POST,
        "/Users/.search",
        &t,
        Some(json!({"filter": "userName sw \"u\"", "count": 2})),
    )
    .await;
    assert_eq!(
        (total(&r), r.body["Resources"].as_array().unwrap().len()),
        (5, 2),
        "{}",
        r.body
    );
    // Malformed: a SCIM 400 that names its kind.
    let r = scim(&d, Method::GET, &q("userName eq"), &t, None).await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, "invalid_filter");
    assert_eq!(r.body["scimType"], "invalidFilter");
    let r = scim(
        &d,
        Method::POST,
        "/Users",
        &t,
        Some(json!({"schemas": [USER], "displayName": "No name"})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidValue")),
        "{}",
        r.body
    );
    let id = scim(&d, Method::GET, &q(r#"userName eq "u0""#), &t, None)
        .await
        .body["Resources"][0]["id"]
        .clone();
    let r = scim(
        &d,
        Method::PATCH,
        &format!("/Users/{}", id.as_str().unwrap()),
        &t,
        Some(json!({"Operations": []})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidSyntax")),
        "{}",
        r.body
    );
    assert_scim_error(
        &scim(&d, Method::GET, "/Users/usr_00000000000000000000", &t, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn r22_r23_groups_are_the_accounts_roles() {
    let d = Daemon::start();
    let (a, _, ot) = d.account_with_owner(5).await;
    let (bob, _) = d.member(&ot, &a, "bob@acme.test", "agent").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let list = scim(
        &d,
        Method::GET,
        "/Groups?excludedAttributes=members",
        &t,
        None,
    )
    .await;
    let names: Vec<&str> = list.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Administrators", "Agents", "Sell users", "Sell admins"]
    );
    // Joining Administrators makes Bob an admin; leaving, an agent again.
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": bob}]}]));
    let r = scim(&d, Method::PATCH, "/Groups/administrators", &t, Some(add)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["value"] == bob.as_str()));
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members/{bob}"), &ot)
            .await
            .body["role"],
        "admin"
    );
    // Entra ID removes by value, without a filter.
    let remove = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": bob}]}]));
    assert_eq!(
        scim(
            &d,
            Method::PATCH,
            "/Groups/administrators",
            &t,
            Some(remove)
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members/{bob}"), &ot)
            .await
            .body["role"],
        "agent"
    );
    // R23: Sell has no admin yet, so nobody can be given Sell but by support.
    let sell = patch(json!([{"op": "add", "path": "members", "value": [{"value": bob}]}]));
    let r = scim(&d, Method::PATCH, "/Groups/sell-users", &t, Some(sell)).await;
    assert_scim_error(&r, StatusCode::CONFLICT, "sell_admin_required");
    // Roles are not created, renamed or deleted.
    let r = scim(
        &d,
        Method::POST,
        "/Groups",
        &t,
        Some(json!({"displayName": "Sales"})),
    )
    .await;
    assert_scim_error(&r, StatusCode::FORBIDDEN, "groups_are_roles");
    assert_scim_error(
        &scim(&d, Method::DELETE, "/Groups/agents", &t, None).await,
        StatusCode::FORBIDDEN,
        "groups_are_roles",
    );
    let r = scim(
        &d,
        Method::PUT,
        "/Groups/agents",
        &t,
        Some(json!({"displayName": "Reps", "members": []})),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, "groups_are_roles");
}

#[tokio::test]
async fn scim_limits_hold_against_hostile_directories() {
    let d = Daemon::start();
    let (a, owner, ot) = d.account_with_owner(5).await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let user = format!("/Users/{owner}");
    // Too many operations, too long a filter, too deep a one, too big a body.
    let ops: Vec<Value> = (0..101)
        .map(|_| json!({"op": "replace", "path": "displayName", "value": "x"}))
        .collect();
    let r = scim(&d, Method::PATCH, &user, &t, Some(patch(Value::Array(ops)))).await;
    assert_eq!(
        (r.status, r.body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidSyntax")),
        "{}",
        r.body
    );
    let long = format!("/Users?filter=userName%20eq%20%22{}%22", "a".repeat(1100));
    assert_eq!(
        scim(&d, Method::GET, &long, &t, None).await.body["scimType"],
        "invalidFilter"
    );
    let deep = format!(
        "/Users?filter={}userName%20pr{}",
        "(".repeat(40),
        ")".repeat(40)
    );
    assert_eq!(
        scim(&d, Method::GET, &deep, &t, None).await.body["scimType"],
        "invalidFilter"
    );
    let big = json!({"schemas": [USER], "userName": "x", "displayName": "y".repeat(300 * 1024)});
    let r = scim(&d, Method::POST, "/Users", &t, Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    for body in ["{", "[]", "null", "{\"userName\": 5}"] {
        let r = d.http_raw(Method::POST, "/scim/v2/Users", &t, body).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{body}: {}", r.1);
    }
    // Nothing of it changed anything.
    let r = scim(&d, Method::GET, "/Users", &t, None).await;
    assert_eq!(r.body["totalResults"], 1);
}

/// Deactivating and reactivating go through the policies like every change
/// of people: `before_member_active_change` may veto (fail closed), and the
/// refusal reaches the directory in SCIM's format; nothing changed.
#[tokio::test]
async fn r09_a_policy_may_veto_a_deactivation_from_the_directory() {
    let d = Daemon::start();
    d.write_script(
        "keep_on_call.rhai",
        "// hooks: before_member_active_change\n// calls: deny\n\
         fn before_member_active_change(event) {\n\
             if !event.active && event.member.name == \"On Call\" { deny(\"on-call staff stay active\"); }\n\
         }\n",
    );
    let (a, _, ot) = d.account_with_owner(5).await;
    d.wait_policy_loaded("keep_on_call.rhai").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let mut on_call = new_user("oc@acme.test", "oc@acme.test");
    on_call["displayName"] = json!("On Call");
    let id = scim(&d, Method::POST, "/Users", &t, Some(on_call))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    let r = scim(
        &d,
        Method::PATCH,
        &format!("/Users/{id}"),
        &t,
        Some(off.clone()),
    )
    .await;
    assert_scim_error(&r, StatusCode::CONFLICT, "policy_denied");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("on-call staff stay active"),
        "{}",
        r.body
    );
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/members/{id}"), &ot)
            .await
            .body["active"],
        true
    );
    // Anyone else is deactivated as asked.
    let other = create(&d, &t, "x@acme.test", "x@acme.test").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = scim(&d, Method::PATCH, &format!("/Users/{other}"), &t, Some(off)).await;
    assert_eq!(
        (r.status, r.body["active"].clone()),
        (StatusCode::OK, json!(false)),
        "{}",
        r.body
    );
}

/// R14 with a policy: an address the directory asked as primary becomes
/// primary when verified only if `before_email_primary` allows; refused,
/// the link still verifies it and the old primary stays.
#[tokio::test]
async fn r14_a_requested_primary_is_verified_even_when_a_policy_keeps_the_old_one() {
    let d = Daemon::start();
    d.write_script(
        "company_primary.rhai",
        "// hooks: before_email_primary\n// calls: deny\n\
         fn before_email_primary(event) {\n\
             if event.new_primary.ends_with(\"@outside.test\") { deny(\"primary addresses stay in the company\"); }\n\
         }\n",
    );
    let (a, _, ot) = d.account_with_owner(5).await;
    d.wait_policy_loaded("company_primary.rhai").await;
    let (bo, _) = d.member(&ot, &a, "bo@acme.test", "agent").await;
    let (_, t) = directory_token(&d, &a, &ot, "Okta").await;
    let body = json!({
        "schemas": [USER], "userName": "bo", "displayName": "Bo",
        "emails": [{"value": "bo@outside.test", "primary": true}, {"value": "bo@acme.test"}], "active": true,
    });
    let r = scim(&d, Method::PUT, &format!("/Users/{bo}"), &t, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let link = d
        .wait_mail("bo@outside.test", "Verify your address", 1)
        .await;
    let v = d
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": link.token()}),
        )
        .await;
    assert_eq!(v.status, StatusCode::NO_CONTENT, "{}", v.body);
    let emails = d
        .get(&format!("/v1/accounts/{a}/members/{bo}/emails"), &ot)
        .await
        .body;
    let outside = emails["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "bo@outside.test")
        .unwrap()
        .clone();
    assert_eq!(
        (outside["verified"].clone(), outside["primary"].clone()),
        (json!(true), json!(false)),
        "{emails}"
    );
    let audit = d.all_audit(&a, &ot).await;
    assert!(
        audit.iter().any(|e| {
            e["detail"].as_str().is_some_and(|s| {
                s.contains("not made primary: ") && s.contains("stay in the company")
            })
        }),
        "{audit:?}"
    );
}
