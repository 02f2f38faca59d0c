//! Every endpoint called as anonymous, end user, agent, admin, owner,
//! previous owner, operator and a member of another account; each answer
//! checked against the role the endpoint needs (docs/api.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use common::Daemon;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ROLES: [&str; 8] = [
    "anonymous",
    "end_user",
    "agent",
    "admin",
    "owner",
    "previous_owner",
    "operator",
    "outsider",
];

/// The body a role sends (most endpoints send the same one).
type BodyFor = Box<dyn Fn(&str) -> Option<Value>>;

struct Case {
    method: Method,
    path: String,
    /// Body per role (most endpoints use the same one).
    body: BodyFor,
    expect: [u16; 8],
}

fn same(v: Value) -> BodyFor {
    Box::new(move |_| Some(v.clone()))
}

fn none() -> BodyFor {
    Box::new(|_| None)
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_contract_says() {
    let d = Daemon::start();
    let (a, previous_owner_id, prev_token) = d.account_with_owner(100).await;
    let (owner_id, owner_token) = d.member(&prev_token, &a, "owner2@acme.test", "admin").await;
    let r = d
        .put(
            &format!("/v1/accounts/{a}/owner"),
            &prev_token,
            json!({"user_id": owner_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, admin) = d.member(&owner_token, &a, "admin@acme.test", "admin").await;
    let (_, agent) = d.member(&owner_token, &a, "agent@acme.test", "agent").await;
    let (_, end_user) = d
        .member(&owner_token, &a, "user@acme.test", "end_user")
        .await;
    let (other, _) = d.create_account("Other", "boss@other.test", 3).await;
    let outsider = d.activate(&other, "boss@other.test").await;
    let tokens: Vec<Option<String>> = vec![
        None,
        Some(end_user),
        Some(agent),
        Some(admin),
        Some(owner_token.clone()),
        Some(prev_token),
        Some(d.operator.clone()),
        Some(outsider),
    ];
    // Targets that a successful call changes are made per role.
    let mut removable = Vec::new();
    for role in ROLES {
        removable.push(
            d.add_member(
                &owner_token,
                &a,
                &format!("rm-{role}@acme.test"),
                "end_user",
            )
            .await,
        );
    }
    let integration = d
        .post(
            &format!("/v1/accounts/{a}/integrations"),
            Some(&owner_token),
            json!({"name": "Slack"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let acc = format!("/v1/accounts/{a}");
    let cases = vec![
        Case {
            method: Method::GET,
            path: acc.clone(),
            body: none(),
            expect: [401, 403, 200, 200, 200, 200, 200, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/owner"),
            body: none(),
            expect: [401, 403, 200, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/members"),
            body: none(),
            expect: [401, 403, 403, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/members/{owner_id}"),
            body: none(),
            expect: [401, 403, 403, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::POST,
            path: format!("{acc}/members"),
            body: Box::new(|role| {
                Some(
                    json!({"name": "N", "email": format!("new-{role}@acme.test"), "role": "end_user"}),
                )
            }),
            expect: [401, 403, 403, 201, 201, 201, 403, 404],
        },
        Case {
            method: Method::PATCH,
            path: format!("{acc}/members/{previous_owner_id}"),
            body: same(json!({"role": "admin"})),
            expect: [401, 403, 403, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/owner/candidates"),
            body: none(),
            expect: [401, 403, 403, 403, 200, 403, 403, 404],
        },
        // The owner passes the permission check and meets the unknown target.
        Case {
            method: Method::PUT,
            path: format!("{acc}/owner"),
            body: same(json!({"user_id": "usr_nobody"})),
            expect: [401, 403, 403, 403, 404, 403, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/billing/invoices"),
            body: none(),
            expect: [401, 403, 403, 403, 200, 403, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/billing/payment-method"),
            body: none(),
            expect: [401, 403, 403, 403, 200, 403, 403, 404],
        },
        Case {
            method: Method::PUT,
            path: format!("{acc}/billing/payment-method"),
            body: same(json!({"kind": "card", "last4": "4242"})),
            expect: [401, 403, 403, 403, 200, 403, 403, 404],
        },
        Case {
            method: Method::PUT,
            path: format!("{acc}/billing/seats"),
            body: same(json!({"support_seats": 100})),
            expect: [401, 403, 403, 403, 200, 403, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/integrations"),
            body: none(),
            expect: [401, 403, 403, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::POST,
            path: format!("{acc}/integrations"),
            body: same(json!({"name": "Jira"})),
            expect: [401, 403, 403, 201, 201, 201, 403, 404],
        },
        Case {
            method: Method::POST,
            path: format!("{acc}/integrations/{integration}/authorize"),
            body: same(json!({})),
            expect: [401, 403, 403, 200, 200, 200, 403, 404],
        },
        Case {
            method: Method::GET,
            path: format!("{acc}/audit"),
            body: none(),
            expect: [401, 403, 403, 200, 200, 200, 200, 404],
        },
        Case {
            method: Method::POST,
            path: format!("{acc}/security-investigations"),
            body: same(json!({"note": "checking"})),
            expect: [401, 403, 403, 403, 403, 403, 201, 404],
        },
        Case {
            method: Method::POST,
            path: "/v1/accounts".into(),
            body: Box::new(|role| {
                Some(
                    json!({"name": "N", "owner": {"name": "O", "email": format!("o-{role}@n.test")}, "support_seats": 1}),
                )
            }),
            expect: [401, 403, 403, 403, 403, 403, 201, 403],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        for (i, role) in ROLES.iter().enumerate() {
            let r = d
                .call(
                    case.method.clone(),
                    &case.path,
                    tokens[i].as_deref(),
                    (case.body)(role),
                )
                .await;
            if r.status.as_u16() != case.expect[i] {
                failures.push(format!(
                    "{} {} as {role}: {} (expected {}) {}",
                    case.method, case.path, r.status, case.expect[i], r.body
                ));
            }
            if !r.status.is_success() {
                assert!(
                    r.body["code"].is_string(),
                    "problem+json with a code: {} {} as {role}: {}",
                    case.method,
                    case.path,
                    r.body
                );
            }
        }
    }
    // DELETE a member: each role gets its own target.
    for (i, role) in ROLES.iter().enumerate() {
        let expect = [401, 403, 403, 204, 204, 204, 403, 404][i];
        let r = d
            .call(
                Method::DELETE,
                &format!("{acc}/members/{}", removable[i]),
                tokens[i].as_deref(),
                None,
            )
            .await;
        if r.status.as_u16() != expect {
            failures.push(format!(
                "DELETE member as {role}: {} (expected {expect})",
                r.status
            ));
        }
    }
    // Signing out, last: sessions end; the operator token is no session.
    for (i, role) in ROLES.iter().enumerate() {
        let expect = [401, 204, 204, 204, 204, 204, 400, 204][i];
        let r = d
            .call(
                Method::DELETE,
                "/v1/sessions/current",
                tokens[i].as_deref(),
                None,
            )
            .await;
        if r.status.as_u16() != expect {
            failures.push(format!(
                "sign-out as {role}: {} (expected {expect})",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
