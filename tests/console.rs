//! The web console over a real daemon: forms posted as a browser posts
//! them (cookies, CSRF field, redirects), mail links followed from the
//! real `.eml` files. The browser tests (`tests/browser/`) drive the same
//! pages in Chromium; these prove the rules and the security properties
//! without a browser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

mod common;

use std::collections::BTreeMap;

use common::{Daemon, PASSWORD};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

/// A browser reduced to what the console needs: a cookie jar, forms, and
/// redirects it can see.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF field");
        let rest = &self.html[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    fn new(d: &Daemon) -> Browser {
        Browser {
            base: d.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    /// Gets a page, following redirects.
    async fn open(&mut self, path: &str) -> Page {
        let mut page = self.get(path).await;
        let mut hops = 0;
        while page.status.is_redirection() && hops < 5 {
            let to = page.location().to_string();
            page = self.get(&to).await;
            hops += 1;
        }
        page
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    /// A post carrying an `Origin` header, as a browser sends one.
    async fn post_from(&mut self, origin: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("origin", origin)
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    async fn page(&mut self, res: reqwest::Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        self.keep_cookies(&headers);
        let html = res.text().await.unwrap();
        assert!(!status.is_server_error(), "{status}: {html}");
        Page {
            status,
            headers,
            html,
        }
    }

    /// Opens a mailed link (its path), sets the password, signs in.
    async fn set_password_and_sign_in(&mut self, a: &str, link: &str, email: &str) {
        let page = self.open(link).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.html.contains("<h1>Set password</h1>"));
        let csrf = page.csrf();
        let token = link.split("token=").nth(1).unwrap();
        let set = self
            .post(
                &format!("/a/{a}/password/set"),
                &[("csrf", &csrf), ("token", token), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.html);
        self.sign_in(a, email).await;
    }

    async fn sign_in(&mut self, a: &str, email: &str) {
        let page = self.open(&format!("/a/{a}/sign-in")).await;
        let csrf = page.csrf();
        let signed = self
            .post(
                &format!("/a/{a}/sign-in"),
                &[("csrf", &csrf), ("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
        assert!(self.cookies.contains_key("admind_session"));
    }
}

/// A new account whose owner set their password from the mail and signed
/// in: (account, owner id, the owner's browser).
async fn signed_in_owner(d: &Daemon, seats: u32) -> (String, String, Browser) {
    let (a, owner_id) = d.create_account("Acme", "owner@acme.test", seats).await;
    let mut owner = Browser::new(d);
    let mail = d.wait_mail("owner@acme.test", "Set your password", 1).await;
    owner
        .set_password_and_sign_in(&a, &link_path(&mail.body), "owner@acme.test")
        .await;
    (a, owner_id, owner)
}

/// The path of the link in a mail (`http://admind.test/a/...` → `/a/...`).
fn link_path(body: &str) -> String {
    let start = body.find("http://admind.test").expect("a link") + "http://admind.test".len();
    body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

#[tokio::test]
async fn r02_r03_r05_console_owner_hands_over_and_the_previous_owner_loses_billing() {
    let d = Daemon::start();
    let (a, _owner) = d.create_account("Acme", "owner@acme.test", 3).await;
    let mut owner = Browser::new(&d);
    let mail = d.wait_mail("owner@acme.test", "Set your password", 1).await;
    let link = link_path(&mail.body);
    assert!(
        link.starts_with(&format!("/a/{a}/password/set?token=")),
        "mails link to the account's own address: {link}"
    );
    owner
        .set_password_and_sign_in(&a, &link, "owner@acme.test")
        .await;

    // The owner adds an admin from Team members.
    let members = owner.open(&format!("/a/{a}")).await;
    assert!(
        members.html.contains("<h1>Team members</h1>"),
        "{}",
        members.html
    );
    assert!(members.html.contains("Administrator (owner)"));
    assert!(members.html.contains("Agent seats used: 1 of 3"));
    let added = owner
        .post(
            &format!("/a/{a}/members"),
            &[
                ("csrf", &members.csrf()),
                ("name", "Ada"),
                ("email", "ada@acme.test"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);

    // Ada sets her password from her mail and signs in.
    let mut ada = Browser::new(&d);
    let mail = d.wait_mail("ada@acme.test", "Set your password", 1).await;
    ada.set_password_and_sign_in(&a, &link_path(&mail.body), "ada@acme.test")
        .await;

    // The owner changes the owner: pick, read the consequences, confirm.
    let owner_page = owner.open(&format!("/a/{a}/owner")).await;
    assert!(owner_page.html.contains("Change owner"));
    let ada_id = {
        let at = owner_page.html.find("name=\"to\" id=\"to-").unwrap();
        owner_page.html[at + "name=\"to\" id=\"to-".len()..][..24].to_string()
    };
    let confirm = owner
        .post(
            &format!("/a/{a}/owner/change"),
            &[("csrf", &owner_page.csrf()), ("to", &ada_id)],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(confirm
        .html
        .contains("billing (subscription, invoices, payment method) moves to Ada"));
    assert!(confirm.html.contains("Confirm change"));
    let done = owner
        .post(
            &format!("/a/{a}/owner/confirm"),
            &[("csrf", &confirm.csrf()), ("to", &ada_id)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);

    // R02: billing follows the owner.
    let billing = owner.open(&format!("/a/{a}/billing")).await;
    assert_eq!(billing.status, StatusCode::FORBIDDEN);
    assert!(billing.html.contains("Only the account owner sees billing"));
    assert!(
        billing
            .html
            .contains("The owner is Ada (ada@acme.test): ask them."),
        "who can act, by name: {}",
        billing.html
    );
    let billing = ada.open(&format!("/a/{a}/billing")).await;
    assert_eq!(billing.status, StatusCode::OK);
    assert!(billing.html.contains("Set seats"));
    let owner_page = owner.open(&format!("/a/{a}/owner")).await;
    assert!(owner_page.html.contains("The owner of this account is Ada"));
    // Every mail leads to the account's own sign-in address.
    let told = d
        .wait_mail("ada@acme.test", "You are now the owner", 1)
        .await;
    assert_eq!(
        link_path(&told.body),
        format!("/a/{a}/sign-in"),
        "{}",
        told.body
    );
}

#[tokio::test]
async fn console_posts_without_the_csrf_token_change_nothing() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 3).await;
    let form = |csrf: &'static str| {
        [
            ("csrf", csrf),
            ("name", "Eve"),
            ("email", "eve@acme.test"),
            ("role", "admin"),
        ]
    };
    for csrf in ["", "wrong-wrong-wrong-wrong-wrong-wrong-wrong"] {
        let refused = owner.post(&format!("/a/{a}/members"), &form(csrf)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
        assert!(refused.html.contains("Reload the page"));
    }
    // The right token from another site (Origin) is refused too.
    let page = owner.open(&format!("/a/{a}/members")).await;
    let csrf = page.csrf();
    let res = owner
        .http
        .post(format!("{}/a/{a}/members", owner.base))
        .header(COOKIE, owner.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Eve"),
            ("email", "eve@acme.test"),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let t = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let members = d.all_members(&a, &t).await;
    assert_eq!(members.len(), 1, "nothing was added: {members:?}");
}

#[tokio::test]
async fn r07_console_escapes_what_people_typed_and_sends_security_headers() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 3).await;
    let page = owner.open(&format!("/a/{a}/members")).await;
    let added = owner
        .post(
            &format!("/a/{a}/members"),
            &[
                ("csrf", &page.csrf()),
                ("name", "<script>alert(1)</script>"),
                ("email", "x@acme.test"),
                ("role", "agent"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let page = owner.open(&format!("/a/{a}/members")).await;
    assert!(
        page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || page
                .html
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("<script>alert"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    // Never to another site, but a plain form post keeps its Origin.
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert_eq!(page.headers["cache-control"], "no-store");
    let cookie = page_cookie_flags(&d, &a).await;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // No inline script anywhere: every script is a file of ours.
    assert!(!page.html.contains("<script>"));
    assert!(page
        .html
        .contains("<script src=\"/assets/htmx.min.js\" defer></script>"));
    let js = owner.get("/assets/htmx.min.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    // An asset gets the same headers but stays cacheable.
    assert_eq!(js.headers["x-content-type-options"], "nosniff");
    assert_eq!(js.headers["cache-control"], "public, max-age=3600");
}

/// The flags of the session cookie a sign-in sets.
async fn page_cookie_flags(d: &Daemon, a: &str) -> String {
    let mut b = Browser::new(d);
    let page = b.open(&format!("/a/{a}/sign-in")).await;
    let res = b
        .http
        .post(format!("{}/a/{a}/sign-in", b.base))
        .header(COOKIE, b.cookie_header())
        .form(&[
            ("csrf", page.csrf().as_str()),
            ("email", "owner@acme.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("admind_session="))
        .expect("a session cookie")
}

#[tokio::test]
async fn r07_a_console_session_cannot_reach_another_account() {
    let d = Daemon::start();
    let (a, _) = d.create_account("Acme", "owner@acme.test", 3).await;
    let (b, _) = d.create_account("Other", "owner@other.test", 3).await;
    let mut owner = Browser::new(&d);
    let mail = d.wait_mail("owner@acme.test", "Set your password", 1).await;
    owner
        .set_password_and_sign_in(&a, &link_path(&mail.body), "owner@acme.test")
        .await;
    // Pages of the other account send to its sign-in, showing nothing.
    let other = owner.get(&format!("/a/{b}/members")).await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);
    assert_eq!(other.location(), format!("/a/{b}/sign-in"));
    // A post with a valid CSRF token changes nothing there either.
    let page = owner.open(&format!("/a/{a}/members")).await;
    let post = owner
        .post(
            &format!("/a/{b}/members"),
            &[
                ("csrf", &page.csrf()),
                ("name", "Mallory"),
                ("email", "m@other.test"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    let t = d.activate(&b, "owner@other.test").await;
    assert_eq!(d.all_members(&b, &t).await.len(), 1);
}

#[tokio::test]
async fn r09_r11_console_says_no_seat_is_free_and_offers_what_the_rules_allow() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 1).await;
    let page = owner.open(&format!("/a/{a}/members")).await;
    let refused = owner
        .post(
            &format!("/a/{a}/members"),
            &[
                ("csrf", &page.csrf()),
                ("name", "Bea"),
                ("email", "bea@acme.test"),
                ("role", "agent"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
    assert!(refused.html.contains("No agent seat is free"));
    assert!(refused.html.contains("Request temporary seats"));
    assert!(refused.html.contains("hand an existing profile"));
    // What was typed stays in the form.
    assert!(refused.html.contains("value=\"bea@acme.test\""));
}

#[tokio::test]
async fn console_pages_speak_french_when_asked() {
    let d = Daemon::start();
    let (a, _) = d.create_account("Acme", "owner@acme.test", 1).await;
    let res = reqwest::Client::new()
        .get(format!("{}/a/{a}/sign-in", d.base))
        .header("accept-language", "fr-FR,fr;q=0.9")
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("Se connecter"));
    // A query that does not parse is a problem, not plain text.
    let bad = reqwest::Client::new()
        .get(format!("{}/support/accounts/{a}/audit?before=soon", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("problem+json"));
    let switched = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/lang/en?back=//evil.example", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        switched.headers()[LOCATION],
        "/",
        "never back to another site"
    );
}

#[tokio::test]
async fn console_bad_forms_get_a_problem_and_support_pages_need_the_operator() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 3).await;
    let page = owner.open(&format!("/a/{a}/billing")).await;
    // A number that is not one: a 400 problem with its code, nothing set.
    let bad = owner
        .post(
            &format!("/a/{a}/billing/seats"),
            &[("csrf", &page.csrf()), ("support_seats", "many")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("validation_failed"), "{}", bad.html);
    // Not form-encoded at all.
    let res = owner
        .http
        .post(format!("{}/a/{a}/billing/seats", owner.base))
        .header(COOKIE, owner.cookie_header())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let t = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let acc = d.get(&format!("/v1/accounts/{a}"), &t).await;
    assert_eq!(acc.body["support"]["seats_total"], 3);
    // A member's session does not open platform support's pages.
    for path in [
        "/support/accounts",
        "/support/licences",
        "/support/deliveries",
        "/support/policies",
    ] {
        let p = owner.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(p.location(), "/support/sign-in");
    }
    let p = owner.get(&format!("/support/accounts/{a}")).await;
    assert_eq!(p.location(), "/support/sign-in");
    // A forged operator cookie is no session.
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/support/accounts", d.base))
        .header(COOKIE, "admind_session=op.99999999999.nonce.0000")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn console_support_cookie_never_holds_the_operator_token() {
    let d = Daemon::start();
    let mut support = Browser::new(&d);
    let page = support.open("/support/sign-in").await;
    let signed = support
        .post(
            "/support/sign-in",
            &[("csrf", &page.csrf()), ("token", &d.operator.clone())],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
    let cookie = support.cookies["admind_session"].clone();
    assert!(!cookie.contains(&d.operator));
    let accounts = support.open("/support/accounts").await;
    assert!(accounts.html.contains("<h1>Accounts</h1>"));
    let page = support.open("/support/accounts").await;
    let out = support.post("/sign-out", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // The signed-out cookie does not work again, even if replayed.
    support.cookies.insert("admind_session".into(), cookie);
    let again = support.get("/support/accounts").await;
    assert_eq!(again.location(), "/support/sign-in");
    // Nor after a restart (the sign-out is kept on disk until the cookie
    // would have expired), while a cookie nobody signed out still works.
    let mut other = support_browser(&d).await;
    let mut d = d;
    d.restart();
    support.base = d.base.clone();
    other.base = d.base.clone();
    let again = support.get("/support/accounts").await;
    assert_eq!(again.location(), "/support/sign-in");
    let still = other.open("/support/accounts").await;
    assert!(still.html.contains("<h1>Accounts</h1>"), "{}", still.html);
}

#[tokio::test]
async fn r15_a_refused_row_action_shows_its_reason_on_the_page_of_its_control() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 3).await;
    let profile = owner.open(&format!("/a/{a}/profile/{owner_id}")).await;
    // The primary address cannot be removed (R15); a crafted post tries.
    // First the confirmation, on a page of its own.
    let asked = owner
        .post(
            &format!("/a/{a}/profile/{owner_id}/remove"),
            &[("csrf", &profile.csrf()), ("address", "owner@acme.test")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(
        asked
            .html
            .contains("Remove owner@acme.test from your profile?"),
        "{}",
        asked.html
    );
    assert!(asked.html.contains("name=\"confirmed\" value=\"yes\""));
    let refused = owner
        .post(
            &format!("/a/{a}/profile/{owner_id}/remove"),
            &[
                ("csrf", &asked.csrf()),
                ("address", "owner@acme.test"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let back = refused.location().to_string();
    assert!(
        back.starts_with(&format!("/a/{a}/profile/{owner_id}?done=error.")),
        "{back}"
    );
    let page = owner.open(&back).await;
    assert!(page.html.contains("role=\"alert\""), "{}", page.html);
    assert!(page.html.contains("<h1>Profile</h1>"));
    // Text in the URL that is not a sentence of the catalogue is not shown.
    let crafted = owner
        .open(&format!(
            "/a/{a}/profile/{owner_id}?done=error.%3Cb%3Eyou+won%3C%2Fb%3E"
        ))
        .await;
    assert!(!crafted.html.contains("role=\"alert\""));
    assert!(!crafted.html.contains("you won"));
}

/// Waits until the daemon has loaded a policy named `name`.
async fn wait_policy_loaded(d: &Daemon, name: &str) {
    let started = std::time::Instant::now();
    loop {
        let list = d.get("/v1/policies", &d.operator).await.body;
        if list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name)
        {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{name} never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A browser signed in as platform support.
async fn support_browser(d: &Daemon) -> Browser {
    let mut support = Browser::new(d);
    let page = support.open("/support/sign-in").await;
    support
        .post(
            "/support/sign-in",
            &[("csrf", &page.csrf()), ("token", &d.operator.clone())],
        )
        .await;
    support
}

#[tokio::test]
async fn break_glass_support_switches_a_policy_off_and_on_from_the_policies_page() {
    let d = Daemon::start();
    std::fs::create_dir_all(d.scripts_dir()).unwrap();
    std::fs::write(
        d.scripts_dir().join("freeze.rhai"),
        "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(e) { deny(\"frozen\"); }\n",
    )
    .unwrap();
    let (a, _, ot) = d.account_with_owner(5).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let owner_path = format!("/v1/accounts/{a}/owner");
    let transfer = || d.put(&owner_path, &ot, serde_json::json!({"user_id": b}));
    wait_policy_loaded(&d, "freeze.rhai").await;
    assert_eq!(transfer().await.code(), "policy_denied");
    let mut support = support_browser(&d).await;
    let page = support.open("/support/policies").await;
    assert!(
        page.html.contains("freeze.rhai") && page.html.contains("deny"),
        "{}",
        page.html
    );
    // Without a reason: refused, nothing switched.
    let csrf = page.csrf();
    let refused = support
        .post(
            "/support/policies/switch",
            &[
                ("csrf", &csrf),
                ("name", "freeze.rhai"),
                ("to", "off"),
                ("reason", ""),
            ],
        )
        .await;
    assert!(refused.status.is_redirection() || refused.status == StatusCode::BAD_REQUEST);
    assert_eq!(transfer().await.code(), "policy_denied");
    let done = support
        .post(
            "/support/policies/switch",
            &[
                ("csrf", &csrf),
                ("name", "freeze.rhai"),
                ("to", "off"),
                ("reason", "blocks every hand-over"),
            ],
        )
        .await;
    assert!(done
        .location()
        .starts_with("/support/policies?done=policies.switched~"));
    let page = support.open("/support/policies").await;
    assert!(
        page.html.contains("blocks every hand-over"),
        "{}",
        page.html
    );
    let r = transfer().await;
    assert_eq!(r.status, StatusCode::OK, "switched off: {}", r.body);
    // Back on: the page says enforced again.
    let csrf = page.csrf();
    let done = support
        .post(
            "/support/policies/switch",
            &[("csrf", &csrf), ("name", "freeze.rhai"), ("to", "on")],
        )
        .await;
    assert!(done
        .location()
        .starts_with("/support/policies?done=policies.switched~"));
    let page = support.open("/support/policies").await;
    assert!(
        !page.html.contains("blocks every hand-over"),
        "{}",
        page.html
    );
    assert!(page.html.contains("Enforced"), "{}", page.html);
}

#[tokio::test]
async fn workbench_support_edits_checks_tests_replays_and_saves_a_policy_that_is_then_enforced() {
    let d = Daemon::start_with("[console]\npolicy_save = true\n");
    d.install_script("owner_change_guard.rhai");
    let (a, _, ot) = d.account_with_owner(5).await;
    let (b, _) = d.member(&ot, &a, "b@acme.test", "admin").await;
    let owner_path = format!("/v1/accounts/{a}/owner");
    // One recorded call: B signed in, so the guard allows (and the record keeps it).
    wait_policy_loaded(&d, "owner_change_guard.rhai").await;
    let mut support = support_browser(&d).await;
    let r = d
        .put(&owner_path, &ot, serde_json::json!({"user_id": b}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The record is committed a moment after the transfer: wait for the
    // editor to offer it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let editor = loop {
        let editor = support
            .open("/support/policies/editor?name=owner_change_guard.rhai")
            .await;
        if editor.html.contains("before_owner_change · ") {
            break editor;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the call was never recorded: {}",
            editor.html
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        editor.html.contains("signed_in_before"),
        "the current source is loaded"
    );
    let csrf = editor.csrf();
    let draft = "// hooks: before_owner_change\n// calls: deny\nfn before_owner_change(event) {\n  deny(\"no hand-over this week\");\n}\n";
    // Check: a broken draft says where.
    let checked = support
        .post("/support/policies/editor", &[("csrf", &csrf), ("name", "owner_change_guard.rhai"), ("source", "// hooks: before_owner_change\n// calls: none\nfn before_owner_change(e) { deny(\"x\"); }\n"), ("op", "check")])
        .await;
    assert!(
        checked.html.contains("owner_change_guard.rhai:3:"),
        "{}",
        checked.html
    );
    // Test on the recorded call: the draft would refuse what was allowed.
    // The recorded before_owner_change call (after-hooks are recorded too).
    let record = {
        let at = checked
            .html
            .find("before_owner_change · ")
            .expect("a recorded before-hook call");
        let option = checked.html[..at].rfind("<option value=\"").unwrap() + 15;
        let rest = &checked.html[option..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let tested = support
        .post(
            "/support/policies/editor",
            &[
                ("csrf", &csrf),
                ("name", "owner_change_guard.rhai"),
                ("source", draft),
                ("op", "test"),
                ("record", &record),
            ],
        )
        .await;
    assert!(
        tested.html.contains("deny: no hand-over this week"),
        "{}",
        tested.html
    );
    // Replay over the period: one decision would change.
    let replayed = support
        .post(
            "/support/policies/editor",
            &[
                ("csrf", &csrf),
                ("name", "owner_change_guard.rhai"),
                ("source", draft),
                ("op", "replay"),
                ("since", "1d"),
            ],
        )
        .await;
    assert!(
        replayed.html.contains("1 would differ"),
        "{}",
        replayed.html
    );
    // Save: written for the watcher, audited with the diff, then enforced.
    let version_of_guard = |list: &serde_json::Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "owner_change_guard.rhai")
            .map(|g| g["version"].clone())
    };
    let before = version_of_guard(&d.get("/v1/policies", &d.operator).await.body);
    // Saving shows the diff against the enforced file first; nothing is
    // written until it is confirmed.
    let asked = support
        .post(
            "/support/policies/editor",
            &[
                ("csrf", &csrf),
                ("name", "owner_change_guard.rhai"),
                ("source", draft),
                ("op", "save"),
            ],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.html.contains("Save this draft?"), "{}", asked.html);
    assert!(
        asked
            .html
            .contains("+  deny(&#34;no hand-over this week&#34;);"),
        "the added line: {}",
        asked.html
    );
    assert!(
        asked.html.contains("-    if !event.to.signed_in_before {"),
        "the removed line: {}",
        asked.html
    );
    assert_ne!(
        std::fs::read_to_string(d.scripts_dir().join("owner_change_guard.rhai")).unwrap(),
        draft,
        "nothing written before the confirmation"
    );
    let saved = support
        .post(
            "/support/policies/editor",
            &[
                ("csrf", &asked.csrf()),
                ("name", "owner_change_guard.rhai"),
                ("source", draft),
                ("op", "save"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert!(saved
        .location()
        .starts_with("/support/policies?done=workbench.saved~"));
    let on_disk = std::fs::read_to_string(d.scripts_dir().join("owner_change_guard.rhai")).unwrap();
    assert_eq!(on_disk, draft);
    // The watcher loads the saved version; then it decides.
    let started = std::time::Instant::now();
    loop {
        let list = d.get("/v1/policies", &d.operator).await.body;
        if version_of_guard(&list) != before {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let bt = d.sign_in(&a, "b@acme.test", common::PASSWORD).await;
    let owner_id = d.get(&format!("/v1/accounts/{a}/members"), &bt).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] != b.as_str())
        .unwrap()["id"]
        .clone();
    let r = d
        .put(&owner_path, &bt, serde_json::json!({"user_id": owner_id}))
        .await;
    assert_eq!(r.code(), "policy_denied", "{}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("no hand-over this week"));
    let audit = d.get("/v1/audit", &d.operator).await.body;
    let save = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.save")
        .expect("the save is audited");
    assert!(
        save["detail"]
            .as_str()
            .unwrap()
            .contains("+  deny(\"no hand-over this week\");"),
        "{save}"
    );
    // Both versions are kept; the versions page compares them.
    let versions = support
        .open("/support/policies/owner_change_guard.rhai/versions")
        .await;
    assert!(versions.html.contains("<table>"), "{}", versions.html);
}

#[tokio::test]
async fn console_csrf_tokens_are_bound_to_one_session_renewed_at_sign_in_and_checked_by_origin() {
    let d = Daemon::start();
    let host = d.base.trim_start_matches("http://").to_string();
    let mut support = Browser::new(&d);
    let page = support.open("/support/sign-in").await;
    let before = page.csrf();
    let nonce_before = support.cookies["admind_csrf"].clone();
    let signed = support
        .post(
            "/support/sign-in",
            &[("csrf", &before), ("token", &d.operator.clone())],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
    // Signing in set a new nonce, and the token seen before is no good now,
    // even with the old nonce sent back.
    assert_ne!(support.cookies["admind_csrf"], nonce_before);
    support
        .cookies
        .insert("admind_csrf".into(), nonce_before.clone());
    let stale = support.post("/sign-out", &[("csrf", &before)]).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.html);
    let accounts = support.open("/support/accounts").await;
    assert!(
        accounts.html.contains("<h1>Accounts</h1>"),
        "still signed in"
    );
    // A token is bound to its session: another support session, same
    // browser nonce, cannot use it.
    let mine = accounts.csrf();
    let mut other = support_browser(&d).await;
    other
        .cookies
        .insert("admind_csrf".into(), support.cookies["admind_csrf"].clone());
    let borrowed = other.post("/sign-out", &[("csrf", &mine)]).await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    // Origin: another scheme for the same host and port is another site.
    for origin in [
        format!("evil://{host}"),
        format!("http://{host}.evil.example"),
        "null".to_string(),
    ] {
        let r = support
            .post_from(&origin, "/sign-out", &[("csrf", &mine)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
    }
    let out = support
        .post_from(&format!("http://{host}"), "/sign-out", &[("csrf", &mine)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.html);
    // Signing out sets a new nonce too.
    assert!(out
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("admind_csrf=")));

    // Served over https: the cookie is __Host- prefixed and Secure, and
    // only an https origin is this site.
    let d = Daemon::start_opts(
        "",
        common::SpawnOptions {
            env: vec![("ADMIND_PUBLIC_URL".into(), "https://admind.test".into())],
            ..Default::default()
        },
    );
    let host = d.base.trim_start_matches("http://").to_string();
    let mut support = Browser::new(&d);
    let page = support.get("/support/sign-in").await;
    let set: Vec<String> = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let csrf_cookie = set
        .iter()
        .find(|c| c.starts_with("__Host-admind_csrf="))
        .unwrap_or_else(|| panic!("{set:?}"));
    assert!(csrf_cookie.contains("; Secure") && csrf_cookie.contains("Path=/"));
    assert!(!csrf_cookie.contains("Domain"));
    let token = page.csrf();
    let r = support
        .post_from(
            &format!("http://{host}"),
            "/support/sign-in",
            &[("csrf", &token), ("token", &d.operator.clone())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = support
        .post_from(
            &format!("https://{host}"),
            "/support/sign-in",
            &[("csrf", &token), ("token", &d.operator.clone())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
}

#[tokio::test]
async fn r16_console_the_profile_takes_a_new_name_and_explains_the_hand_over() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 3).await;
    let profile = owner.open(&format!("/a/{a}/profile/{owner_id}")).await;
    assert!(profile.html.contains("Save name"), "{}", profile.html);
    assert!(profile.html.contains("To hand this profile over"));
    let saved = owner
        .post(
            &format!("/a/{a}/profile/{owner_id}/name"),
            &[("csrf", &profile.csrf()), ("name", "Bea Martin")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let page = owner.open(saved.location()).await;
    assert!(page.html.contains("The name was saved."), "{}", page.html);
    assert!(page.html.contains("value=\"Bea Martin\""));
    let members = owner.open(&format!("/a/{a}/members")).await;
    assert!(members.html.contains("Bea Martin"));
}

#[tokio::test]
async fn console_irreversible_actions_ask_first_on_a_page_of_their_own() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 5).await;
    let (agent, _) = d
        .member(
            &d.sign_in(&a, "owner@acme.test", PASSWORD).await,
            &a,
            "agent@acme.test",
            "agent",
        )
        .await;
    let members = owner.open(&format!("/a/{a}/members")).await;
    let csrf = members.csrf();
    // Remove: asked first, nothing done; then done.
    let asked = owner
        .post(
            &format!("/a/{a}/members/{agent}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(
        asked.html.contains("Remove agent from this account?"),
        "{}",
        asked.html
    );
    assert!(
        asked.html.contains(&format!("href=\"/a/{a}/members\"")),
        "a way back"
    );
    assert_eq!(
        d.all_members(&a, &d.sign_in(&a, "owner@acme.test", PASSWORD).await)
            .await
            .len(),
        2
    );
    // A role change says what it changes to.
    let asked_role = owner
        .post(
            &format!("/a/{a}/members/{agent}/role"),
            &[("csrf", &csrf), ("role", "admin")],
        )
        .await;
    assert!(
        asked_role
            .html
            .contains("Change the role of agent to Administrator?"),
        "{}",
        asked_role.html
    );
    let done = owner
        .post(
            &format!("/a/{a}/members/{agent}/remove"),
            &[("csrf", &asked.csrf()), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert!(done.location().contains("done=members.removed"));
    // Making another address primary on one's own profile says it hands
    // the profile over; in French too.
    owner.cookies.insert("admind_lang".into(), "fr".into());
    let profile = owner.open(&format!("/a/{a}/profile/{owner_id}")).await;
    let asked = owner
        .post(
            &format!("/a/{a}/profile/{owner_id}/primary"),
            &[("csrf", &profile.csrf()), ("address", "other@acme.test")],
        )
        .await;
    assert!(
        asked
            .html
            .contains("Définir other@acme.test comme contact principal"),
        "{}",
        asked.html
    );
    assert!(asked.html.contains("Confirmer") && asked.html.contains("Annuler"));
}

#[tokio::test]
async fn console_an_unknown_page_is_a_page_in_the_consoles_look() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 3).await;
    for path in [
        format!("/a/{a}/nope"),
        format!("/a/{a}/members/x/y"),
        "/support/nope".to_string(),
    ] {
        let page = owner.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            page.html.contains("role=\"alert\""),
            "{path}: {}",
            page.html
        );
        assert!(
            page.html.contains(&format!("href=\"/a/{a}\"")),
            "a way home: {}",
            page.html
        );
    }
    // The API's unknown routes stay problem+json.
    let api = owner.get("/v1/nope").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
}

#[tokio::test]
async fn console_navigation_offers_each_person_only_what_they_may_use() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "admin@acme.test", "admin").await;
    d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    let links = |html: &str| -> Vec<String> {
        [
            "members",
            "owner",
            "billing",
            "integrations",
            "profile",
            "sell",
            "licences",
            "audit",
        ]
        .into_iter()
        .filter(|p| html.contains(&format!("href=\"/a/{a}/{p}\"")))
        .map(str::to_string)
        .collect()
    };
    let page = owner.open(&format!("/a/{a}/profile")).await;
    assert_eq!(
        links(&page.html),
        [
            "members",
            "owner",
            "billing",
            "integrations",
            "profile",
            "sell",
            "licences",
            "audit"
        ]
    );
    for (email, expected) in [
        (
            "admin@acme.test",
            vec![
                "members",
                "owner",
                "integrations",
                "profile",
                "sell",
                "audit",
            ],
        ),
        ("agent@acme.test", vec!["owner", "profile"]),
    ] {
        let mut b = Browser::new(&d);
        let mail = d.wait_mail(email, "Set your password", 1).await;
        b.set_password_and_sign_in(&a, &link_path(&mail.body), email)
            .await;
        let page = b.open(&format!("/a/{a}/profile")).await;
        assert_eq!(links(&page.html), expected, "{email}");
    }
}

#[tokio::test]
async fn r17_console_the_members_page_mails_an_invitation_again() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let new = d.add_member(&ot, &a, "new@acme.test", "agent").await;
    // The team list marks who never set a password and links to their
    // page, which holds the team's controls for them.
    let list = owner.open(&format!("/a/{a}/members")).await;
    assert!(list.html.contains(">invited<"), "{}", list.html);
    assert!(
        list.html.contains(&format!("/a/{a}/profile/{new}\"")),
        "{}",
        list.html
    );
    let page = owner.open(&format!("/a/{a}/profile/{new}")).await;
    assert!(page.html.contains("Resend invitation"), "{}", page.html);
    let sent = owner
        .post(
            &format!("/a/{a}/members/{new}/invitation"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert!(
        sent.location().contains("done=members.resent")
            && sent.location().contains(&format!("/a/{a}/profile/{new}")),
        "back on the member's page: {}",
        sent.location()
    );
    d.wait_mail("new@acme.test", "Set your password", 2).await;
}

#[tokio::test]
async fn r08_console_a_members_role_and_removal_are_on_their_page_never_the_owners() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let agent = d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    // The list itself carries no form per member: one light page.
    let list = owner.open(&format!("/a/{a}/members")).await;
    for action in ["/role\"", "/invitation\"", "/remove\""] {
        assert!(
            !list.html.contains(action),
            "{action} on the list: {}",
            list.html
        );
    }
    // An admin (here the owner) finds the controls on the member's page,
    // the member's current role selected.
    let page = owner.open(&format!("/a/{a}/profile/{agent}")).await;
    assert!(page.html.contains("Role in the account"), "{}", page.html);
    // Reached from the team list, it is part of the team in the navigation.
    assert!(
        page.html
            .contains(&format!("href=\"/a/{a}/members\" aria-current=\"page\""))
            && !page
                .html
                .contains(&format!("href=\"/a/{a}/profile\" aria-current")),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains(&format!("action=\"/a/{a}/members/{agent}/role\""))
            && page
                .html
                .contains(&format!("action=\"/a/{a}/members/{agent}/remove\""))
            && page.html.contains("<option value=\"agent\" selected>"),
        "{}",
        page.html
    );
    // The owner's own page offers none: ownership moves on its own page.
    let own = owner.open(&format!("/a/{a}/profile/{owner_id}")).await;
    assert!(
        own.html.contains("Addresses")
            && own
                .html
                .contains(&format!("href=\"/a/{a}/profile\" aria-current=\"page\"")),
        "{}",
        own.html
    );
    assert!(
        !own.html.contains(&format!("/members/{owner_id}/"))
            && !own.html.contains("Role in the account"),
        "{}",
        own.html
    );
    // A role change goes back to the member's page; a removal, once done,
    // to the list (the member's page is gone).
    let changed = owner
        .post(
            &format!("/a/{a}/members/{agent}/role"),
            &[
                ("csrf", &page.csrf()),
                ("role", "admin"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert!(
        changed
            .location()
            .contains(&format!("/a/{a}/profile/{agent}?"))
            && changed.location().contains("done=members.role_changed"),
        "{}",
        changed.location()
    );
    let removed = owner
        .post(
            &format!("/a/{a}/members/{agent}/remove"),
            &[("csrf", &page.csrf()), ("confirmed", "yes")],
        )
        .await;
    assert!(
        removed.location().contains(&format!("/a/{a}/members?"))
            && removed.location().contains("done=members.removed"),
        "{}",
        removed.location()
    );
}

#[tokio::test]
async fn console_a_message_shows_only_after_the_daemons_own_redirect() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 3).await;
    // A crafted link announcing a new owner nobody chose: no message.
    let crafted = owner
        .open(&format!("/a/{a}/owner?done=owner.changed_flash"))
        .await;
    assert!(
        !crafted.html.contains("The account has a new owner"),
        "{}",
        crafted.html
    );
    let forged = owner
        .open(&format!(
            "/a/{a}/owner?done=owner.changed_flash~99999999~0123456789abcdef01234567"
        ))
        .await;
    assert!(!forged.html.contains("The account has a new owner"));
    // The daemon's own redirect after a real post shows its message, on
    // the page it was signed for only.
    let page = owner.open(&format!("/a/{a}/members")).await;
    let added = owner
        .post(
            &format!("/a/{a}/members"),
            &[
                ("csrf", &page.csrf()),
                ("name", "Ada"),
                ("email", "ada@acme.test"),
                ("role", "agent"),
            ],
        )
        .await;
    let to = added.location().to_string();
    assert!(to.contains("done=members.added~"), "{to}");
    let shown = owner.open(&to).await;
    assert!(
        shown.html.contains("The member was added"),
        "{}",
        shown.html
    );
    let elsewhere = to.replace("/members?", "/owner?");
    let other = owner.open(&elsewhere).await;
    assert!(!other.html.contains("The member was added"));
}

#[tokio::test]
async fn r18_console_the_no_seat_panel_names_who_can_act_and_a_pending_request() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 2).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "admin@acme.test", "admin").await;
    // Both seats are taken: the owner sees who can buy (the owner, by
    // name) and the request form.
    let page = owner.open(&format!("/a/{a}/members")).await;
    assert!(page.html.contains("id=\"no-seat\""), "{}", page.html);
    assert!(page
        .html
        .contains("The account owner, Owner, can buy more seats"));
    assert!(page.html.contains("Request temporary seats"));
    assert!(!page.html.contains("is waiting for platform support"));
    let r = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(&ot),
            serde_json::json!({"product": "support", "seats": 3, "reason": "busy"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let page = owner.open(&format!("/a/{a}/members")).await;
    assert!(
        page.html
            .contains("A request for 3 temporary seats is waiting for platform support"),
        "{}",
        page.html
    );
    // Support's queue names the account and who filed.
    let mut support = support_browser(&d).await;
    let queue = support.open("/support/licences").await;
    assert!(
        queue
            .html
            .contains(&format!("<a href=\"/support/accounts/{a}\">Acme</a>")),
        "{}",
        queue.html
    );
    assert!(
        queue.html.contains("data-label=\"Filed by\">Owner<"),
        "{}",
        queue.html
    );
    // An admin is not offered a form that can only fail: told whom to ask.
    let mut admin = Browser::new(&d);
    let mail = d.wait_mail("admin@acme.test", "Set your password", 1).await;
    admin
        .set_password_and_sign_in(&a, &link_path(&mail.body), "admin@acme.test")
        .await;
    let page = admin.open(&format!("/a/{a}/members")).await;
    assert!(page.html.contains("id=\"no-seat\""), "{}", page.html);
    assert!(!page.html.contains("Request temporary seats"));
    assert!(page.html.contains("ask Owner."), "{}", page.html);
}

/// Directory provisioning (issue 25): the owner creates a token in the
/// console and sees it once, on the answer only; it works on `/scim/v2`;
/// the list never shows it again; revoking asks first, then the directory
/// is refused.
#[tokio::test]
async fn console_directory_tokens_are_shown_once_and_revoked_after_a_confirmation() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 5).await;
    let page = owner.open(&format!("/a/{a}/directory")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("/scim/v2</code>"), "{}", page.html);
    let csrf = page.csrf();
    let created = owner
        .post(
            &format!("/a/{a}/directory"),
            &[("csrf", &csrf), ("name", "Okta")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.html);
    let start = created
        .html
        .find("id=\"token-value\">")
        .expect("the token shown")
        + "id=\"token-value\">".len();
    let token: String = created.html[start..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    assert!(token.starts_with("admind_scim."), "{token}");
    let users = d
        .call(reqwest::Method::GET, "/scim/v2/Users", Some(&token), None)
        .await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    // Listed by name, never again in full.
    let listed = owner.open(&format!("/a/{a}/directory")).await;
    assert!(listed.html.contains(">Okta</td>"), "{}", listed.html);
    assert!(!listed.html.contains(&token), "the token shown again");
    // Revoke: a confirmation page first, nothing revoked yet.
    let revoke = listed
        .html
        .split("action=\"")
        .find_map(|s| {
            s.split('"')
                .next()
                .filter(|p| p.ends_with("/revoke"))
                .map(str::to_string)
        })
        .expect("a revoke form");
    let asked = owner.post(&revoke, &[("csrf", &csrf)]).await;
    assert!(
        asked.html.contains("Revoke the token Okta?"),
        "{}",
        asked.html
    );
    let still = d
        .call(reqwest::Method::GET, "/scim/v2/Users", Some(&token), None)
        .await;
    assert_eq!(still.status, StatusCode::OK);
    let done = owner
        .post(&revoke, &[("csrf", &csrf), ("confirmed", "yes")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let refused = d
        .call(reqwest::Method::GET, "/scim/v2/Users", Some(&token), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
}

/// Issue 24, the audit log: people by name, the directory and platform
/// support in words, never `user:usr_…`.
#[tokio::test]
async fn console_the_audit_log_names_people_not_ids() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    let token = d
        .post(
            &format!("/v1/accounts/{a}/scim/tokens"),
            Some(&ot),
            serde_json::json!({"name": "Okta"}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dee",
        "displayName": "Dee Directory", "emails": [{"value": "dee@acme.test", "primary": true}], "active": true});
    let r = d
        .call(
            reqwest::Method::POST,
            "/scim/v2/Users",
            Some(&token),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let page = owner.open(&format!("/a/{a}/audit")).await;
    assert!(page.html.contains(">Platform support<"), "{}", page.html);
    assert!(page.html.contains(">Okta (directory)<"), "{}", page.html);
    assert!(
        page.html.contains(">Dee Directory<"),
        "the new member as the target: {}",
        page.html
    );
    assert!(
        page.html.contains(">agent<"),
        "the agent by name: {}",
        page.html
    );
    assert!(!page.html.contains(">user:usr_"), "{}", page.html);
}

/// Issue 24, temporary seats (R11, R18): the team page says how many seats
/// are temporary and when they end.
#[tokio::test]
async fn r18_console_the_team_page_shows_which_seats_expire_and_when() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 1).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let request = d
        .post(
            &format!("/v1/accounts/{a}/licence-requests"),
            Some(&ot),
            serde_json::json!({"product": "support", "seats": 2, "reason": "busy season"}),
        )
        .await;
    assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
    let id = request.body["id"].as_str().unwrap();
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let r = d
        .post(
            &format!("/v1/licence-requests/{id}/grant"),
            Some(&d.operator),
            serde_json::json!({"seats": 2, "expires_at": until.to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = owner.open(&format!("/a/{a}/members")).await;
    assert!(
        page.html.contains("Agent seats used: 1 of 3"),
        "{}",
        page.html
    );
    assert!(
        page.html.contains(&format!(
            "2 of them temporary, until {} {} {}, {} UTC",
            until.format("%-d"),
            until.format("%b"),
            until.format("%Y"),
            until.format("%H:%M")
        )),
        "{}",
        page.html
    );
}

/// Issue 24, the team page: the owner first, a filter by role (and by
/// deactivated), and the team as CSV with formulas defused.
#[tokio::test]
async fn r07_console_the_team_page_puts_the_owner_first_filters_by_role_and_exports_csv() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 10).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    // Several members, one with a name a spreadsheet would run.
    for (email, role) in [
        ("ann@acme.test", "admin"),
        ("bob@acme.test", "agent"),
        ("cy@acme.test", "end_user"),
    ] {
        d.add_member(&ot, &a, email, role).await;
    }
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&ot),
            serde_json::json!({"name": "=HYPERLINK(\"http://evil.test\")", "email": "eve@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let page = owner.open(&format!("/a/{a}/members")).await;
    let first_row = page.html.find("<tbody>").map(|i| &page.html[i..]).unwrap();
    let first_name = &first_row[first_row.find("/profile/").unwrap()..][..200];
    assert!(
        first_name.contains(">Owner</a>"),
        "the owner first: {first_name}"
    );
    // By role.
    let admins = owner.open(&format!("/a/{a}/members?role=admin")).await;
    assert!(admins.html.contains("ann@acme.test") && admins.html.contains("owner@acme.test"));
    assert!(!admins.html.contains("bob@acme.test") && !admins.html.contains("cy@acme.test"));
    let end_users = owner.open(&format!("/a/{a}/members?role=end_user")).await;
    assert!(end_users.html.contains("cy@acme.test") && !end_users.html.contains("ann@acme.test"));
    // CSV: every member, the owner marked, the formula defused.
    let csv = owner.get(&format!("/a/{a}/members.csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(csv.html.lines().count(), 6, "{}", csv.html);
    assert!(
        csv.html.contains("Owner,owner@acme.test,owner,"),
        "{}",
        csv.html
    );
    assert!(
        csv.html
            .contains("\"'=HYPERLINK(\"\"http://evil.test\"\")\",eve@acme.test,agent"),
        "{}",
        csv.html
    );
    // An agent gets no export.
    let (_, _) = d.member(&ot, &a, "gus@acme.test", "agent").await;
    let mut agent = Browser::new(&d);
    agent.sign_in(&a, "gus@acme.test").await;
    let refused = agent.get(&format!("/a/{a}/members.csv")).await;
    assert_ne!(refused.status, StatusCode::OK);
    assert!(!refused.html.contains("owner@acme.test"));
}

/// Issue 24, support's account page (R19, R23): the owner, the admins and
/// the Sell admins by name; the first Sell admin picked from the members by
/// name, and the choice gone once Sell has one.
#[tokio::test]
async fn r23_console_support_sees_the_accounts_people_and_appoints_a_sell_admin_by_name() {
    let d = Daemon::start();
    let (a, _, _owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let (ann, _) = d.member(&ot, &a, "ann@acme.test", "admin").await;
    let mut support = support_browser(&d).await;
    let page = support.open(&format!("/support/accounts/{a}")).await;
    assert!(
        page.html.contains("Owner (owner@acme.test)"),
        "{}",
        page.html
    );
    assert!(page.html.contains("ann (ann@acme.test)"), "{}", page.html);
    assert!(
        page.html.contains(&format!(
            "<option value=\"{ann}\">ann (ann@acme.test)</option>"
        )),
        "{}",
        page.html
    );
    let done = support
        .post(
            &format!("/support/accounts/{a}/sell-admin"),
            &[("csrf", &page.csrf()), ("user_id", &ann)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let after = support.open(&format!("/support/accounts/{a}")).await;
    assert!(
        !after.html.contains("<select id=\"member-id\""),
        "{}",
        after.html
    );
    let sell_admins = &after.html[after.html.find("id=\"sell-admins\"").unwrap()..][..80];
    assert!(sell_admins.contains("ann (ann@acme.test)"), "{sell_admins}");
}

/// R17's mails (invitations, resets) go out in the language an admin picks
/// on the account's settings page; an agent is not offered the page.
#[tokio::test]
async fn r17_console_an_admin_picks_the_language_of_the_accounts_mails() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 5).await;
    let page = owner.open(&format!("/a/{a}/settings")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains(&format!("href=\"/a/{a}/settings\"")));
    assert!(
        page.html
            .contains("<option value=\"\" selected>The platform&#39;s default (English)")
            || page
                .html
                .contains("<option value=\"\" selected>The platform's default (English)"),
        "{}",
        page.html
    );
    // A language the daemon does not write is refused, nothing changes.
    let csrf = page.csrf();
    let bad = owner
        .post(
            &format!("/a/{a}/settings/language"),
            &[("csrf", &csrf), ("language", "de")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER, "{}", bad.html);
    let page = owner.open(bad.location()).await;
    assert!(page.html.contains("Check what you typed."), "{}", page.html);
    assert!(
        page.html.contains("<option value=\"\" selected>"),
        "{}",
        page.html
    );
    let saved = owner
        .post(
            &format!("/a/{a}/settings/language"),
            &[("csrf", &csrf), ("language", "fr")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let page = owner.open(saved.location()).await;
    assert!(
        page.html
            .contains("The language of the account&#39;s mails was saved.")
            || page
                .html
                .contains("The language of the account's mails was saved."),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains("<option value=\"fr\" lang=\"fr\" selected>"),
        "{}",
        page.html
    );
    // The next invitation is French.
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    let mail = d
        .wait_mail(
            "agent@acme.test",
            "Définissez votre mot de passe pour Acme",
            1,
        )
        .await;
    let mut agent = Browser::new(&d);
    agent
        .set_password_and_sign_in(&a, &link_path(&mail.body), "agent@acme.test")
        .await;
    let page = agent.open(&format!("/a/{a}/profile")).await;
    assert!(!page.html.contains(&format!("href=\"/a/{a}/settings\"")));
    let page = agent.get(&format!("/a/{a}/settings")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
}

/// R02/R03 refused by the guard policy on a French page: the summary, the
/// policy's reason and the owner all in French, no English detail.
#[tokio::test]
async fn r03_console_a_refusal_on_a_french_page_is_french_throughout() {
    let d = Daemon::start();
    d.install_script("owner_change_guard.rhai");
    wait_policy_loaded(&d, "owner_change_guard.rhai").await;
    let (a, _, mut owner) = signed_in_owner(&d, 1).await;
    owner.cookies.insert("admind_lang".into(), "fr".into());
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    // No seat is free: the refusal has its figures, in French.
    let members = owner.open(&format!("/a/{a}/members")).await;
    assert!(
        members.html.contains("<html lang=\"fr\">"),
        "{}",
        members.html
    );
    let refused = owner
        .post(
            &format!("/a/{a}/members"),
            &[
                ("csrf", &members.csrf()),
                ("name", "Ben"),
                ("email", "ben@acme.test"),
                ("role", "admin"),
            ],
        )
        .await;
    assert!(
        refused
            .html
            .contains("Aucune licence d&#39;agent n&#39;est libre (1 sur 1 prises)")
            || refused
                .html
                .contains("Aucune licence d'agent n'est libre (1 sur 1 prises)"),
        "{}",
        refused.html
    );
    assert!(
        !refused.html.contains("every agent seat is taken"),
        "{}",
        refused.html
    );
    // A verified admin who never signed in: the guard refuses, in French.
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        serde_json::json!({"support_seats": 3}),
    )
    .await;
    let ben = d.add_member(&ot, &a, "ben@acme.test", "admin").await;
    let mail = d.wait_mail("ben@acme.test", "Set your password", 1).await;
    d.post(
        "/v1/password-resets/confirm",
        None,
        serde_json::json!({"token": mail.token(), "password": PASSWORD}),
    )
    .await;
    let page = owner.open(&format!("/a/{a}/owner")).await;
    let confirm = owner
        .post(
            &format!("/a/{a}/owner/change"),
            &[("csrf", &page.csrf()), ("to", &ben)],
        )
        .await;
    let done = owner
        .post(
            &format!("/a/{a}/owner/confirm"),
            &[("csrf", &confirm.csrf()), ("to", &ben)],
        )
        .await;
    let page = if done.status.is_redirection() {
        owner.open(done.location()).await
    } else {
        done
    };
    assert!(
        page.html
            .contains("le nouveau propriétaire doit s&#39;être connecté au moins une fois")
            || page
                .html
                .contains("le nouveau propriétaire doit s'être connecté au moins une fois"),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains("signed in at least once"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("version"), "{}", page.html);
}

/// R09's refusals and R02's hand-over in the audit log: newest first, in
/// words, filtered by who, action, outcome and dates, paged back, and the
/// same rows as CSV.
#[tokio::test]
async fn r09_console_the_audit_log_is_newest_first_filtered_and_exported() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 2).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "agent@acme.test", "agent").await;
    // A refusal (no seat is free: R09).
    let r = d
        .post(
            &format!("/v1/accounts/{a}/members"),
            Some(&ot),
            serde_json::json!({"name": "Zed", "email": "zed@acme.test", "role": "agent"}),
        )
        .await;
    assert_eq!(r.code(), "agent_seat_exhausted");
    let page = owner.open(&format!("/a/{a}/audit")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let refused = page
        .html
        .find("Refused: No agent seat is free.")
        .expect("the refusal in words");
    let added = page.html.find("added as agent").expect("the member added");
    let created = page
        .html
        .find("created with owner")
        .expect("the account created");
    assert!(
        refused < added && added < created,
        "newest first: {}",
        page.html
    );
    assert!(page.html.contains("<time datetime=\""), "{}", page.html);
    // Filters: outcome, action, who, dates.
    let only = |q: &str| format!("/a/{a}/audit?{q}");
    let page = owner.open(&only("outcome=refused")).await;
    assert!(page.html.contains("Refused: No agent seat is free."));
    assert!(!page.html.contains("added as agent"), "{}", page.html);
    let page = owner.open(&only("action=member.add")).await;
    assert!(page.html.contains("data-label=\"What\">Added a member<"));
    assert!(!page
        .html
        .contains("data-label=\"What\">Created the account<"));
    let page = owner.open(&only("who=platform")).await;
    assert!(page
        .html
        .contains("data-label=\"What\">Created the account<"));
    assert!(
        !page.html.contains("data-label=\"What\">Added a member<"),
        "{}",
        page.html
    );
    let page = owner.open(&only("from=2000-01-01&to=2000-12-31")).await;
    assert!(page.html.contains("No entry."), "{}", page.html);
    let page = owner.open(&only("from=yesterday")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    // Paged back: the older page starts where the first ended.
    for _ in 0..120 {
        d.put(
            &format!("/v1/accounts/{a}/language"),
            &ot,
            serde_json::json!({"language": "en"}),
        )
        .await;
        d.put(
            &format!("/v1/accounts/{a}/language"),
            &ot,
            serde_json::json!({"language": null}),
        )
        .await;
    }
    let first = owner.open(&only("action=account.language")).await;
    assert_eq!(
        first
            .html
            .matches("data-label=\"What\">Changed the language of the mails<")
            .count(),
        100
    );
    let older = first
        .html
        .split("?before=")
        .nth(1)
        .expect("an older page")
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let second = owner
        .open(&only(&format!("before={older}&action=account.language")))
        .await;
    assert_eq!(
        second
            .html
            .matches("data-label=\"What\">Changed the language of the mails<")
            .count(),
        100
    );
    // CSV: the filtered rows, in words, newest first.
    let csv = owner
        .get(&format!("/a/{a}/audit.csv?outcome=refused"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.html.lines().collect();
    assert_eq!(
        lines[0],
        "seq,at,who,action,action_code,on,outcome,detail,caused_by"
    );
    assert_eq!(lines.len(), 2, "{}", csv.html);
    assert!(
        lines[1].contains("Owner,Added a member,member.add"),
        "{}",
        lines[1]
    );
    // In French, the actions in French.
    owner.cookies.insert("admind_lang".into(), "fr".into());
    let page = owner.open(&only("action=member.add")).await;
    assert!(
        page.html
            .contains("data-label=\"Quoi\">A ajouté un membre<"),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains("Refusé : Aucune licence d&#39;agent n&#39;est libre.")
            || page
                .html
                .contains("Refusé : Aucune licence d'agent n'est libre."),
        "{}",
        page.html
    );
}

/// R07 on the team page: pages both ways with counts, the owner heading
/// the first, sorted by name or role, each member's last sign-in.
#[tokio::test]
async fn r07_console_the_team_pages_both_ways_with_counts_sorts_and_shows_last_sign_in() {
    let d = Daemon::start();
    let (a, _, mut owner) = signed_in_owner(&d, 200).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    for n in 0..119 {
        d.add_member(
            &ot,
            &a,
            &format!("m{n:03}@acme.test"),
            if n % 10 == 0 { "admin" } else { "agent" },
        )
        .await;
    }
    let rows = |html: &str| html.matches("data-label=\"Name\"><a href=").count();
    let page1 = owner.open(&format!("/a/{a}/members")).await;
    assert!(page1.html.contains("Members 1–51 of 120"), "{}", page1.html);
    assert_eq!(rows(&page1.html), 51, "the owner and 50 others");
    assert!(!page1.html.contains("rel=\"prev\""));
    let first_row = page1.html.find("data-label=\"Name\"><a href=").unwrap();
    assert!(page1.html[first_row..]
        .starts_with(&format!("data-label=\"Name\"><a href=\"/a/{a}/profile/")));
    assert!(
        page1.html[first_row..first_row + 200].contains(">Owner<"),
        "the owner first"
    );
    // The owner signed in today; the others never did.
    assert!(page1.html.contains("data-day>"), "{}", page1.html);
    assert!(page1.html.contains("data-label=\"Last sign-in\">never<"));
    let next = |html: &str, rel: &str| -> String {
        let at = html.find(&format!("rel=\"{rel}\"")).expect(rel);
        let start = html[..at].rfind("href=\"").unwrap() + 6;
        html[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
            .replace("&#38;", "&")
    };
    let page2 = owner.open(&next(&page1.html, "next")).await;
    assert!(
        page2.html.contains("Members 52–101 of 120"),
        "{}",
        page2.html
    );
    assert_eq!(rows(&page2.html), 50);
    let page3 = owner.open(&next(&page2.html, "next")).await;
    assert!(
        page3.html.contains("Members 102–120 of 120"),
        "{}",
        page3.html
    );
    assert!(!page3.html.contains("rel=\"next\""));
    let back2 = owner.open(&next(&page3.html, "prev")).await;
    assert!(
        back2.html.contains("Members 52–101 of 120"),
        "{}",
        back2.html
    );
    let back1 = owner.open(&next(&back2.html, "prev")).await;
    assert!(back1.html.contains("Members 1–51 of 120"), "{}", back1.html);
    assert!(!back1.html.contains("rel=\"prev\""));
    // Every member exactly once across the pages.
    let ids = |html: &str| -> Vec<String> {
        html.match_indices(&format!("<a href=\"/a/{a}/profile/"))
            .map(|(i, _)| html[i..].split('"').nth(1).unwrap().to_string())
            .collect()
    };
    let mut all: Vec<String> = [&page1.html, &page2.html, &page3.html]
        .iter()
        .flat_map(|h| ids(h))
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120);
    // Sorted by role: the owner, then the admins, then the agents.
    let by_role = owner.open(&format!("/a/{a}/members?sort=role")).await;
    let admin_at = by_role
        .html
        .find("data-label=\"Role\">Administrator<")
        .unwrap();
    let agent_at = by_role.html.find("data-label=\"Role\">Agent<").unwrap();
    assert!(
        by_role
            .html
            .find("data-label=\"Role\">Administrator (owner)<")
            .unwrap()
            < admin_at
            && admin_at < agent_at
    );
    assert!(by_role.html.contains("Members 1–50 of 120"));
    let by_name = owner
        .open(&format!("/a/{a}/members?sort=name&role=admin"))
        .await;
    assert!(
        by_name.html.contains("Members 1–13 of 13"),
        "{}",
        by_name.html
    );
    let m000 = by_name.html.find(">m000<").unwrap();
    let m010 = by_name.html.find(">m010<").unwrap();
    assert!(m000 < m010);
}

/// R03 with the guard policy: the owner page says, before anyone picks,
/// who can take over now; the one the policy would refuse is marked with
/// its reason and not picked in advance. Nothing changes by looking.
#[tokio::test]
async fn r03_console_the_owner_page_says_who_the_guard_policy_would_refuse() {
    let d = Daemon::start();
    d.install_script("owner_change_guard.rhai");
    wait_policy_loaded(&d, "owner_change_guard.rhai").await;
    let (a, owner_id, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    // Ben set his password but never signed in; Cleo did.
    let ben = d.add_member(&ot, &a, "ben@acme.test", "admin").await;
    let mail = d.wait_mail("ben@acme.test", "Set your password", 1).await;
    d.post(
        "/v1/password-resets/confirm",
        None,
        serde_json::json!({"token": mail.token(), "password": PASSWORD}),
    )
    .await;
    let (cleo, _) = d.member(&ot, &a, "cleo@acme.test", "admin").await;
    let page = owner.open(&format!("/a/{a}/owner")).await;
    let row = |id: &str| -> String {
        let at = page
            .html
            .find(&format!("id=\"to-{id}\""))
            .expect("a candidate");
        page.html[at..].split("</div>").next().unwrap().to_string()
    };
    let ben_row = row(&ben);
    assert!(ben_row.contains("Cannot take over now:"), "{ben_row}");
    assert!(
        ben_row.contains("the new owner must have signed in at least once"),
        "{ben_row}"
    );
    assert!(!ben_row.contains(" checked"), "{ben_row}");
    let cleo_row = row(&cleo);
    assert!(cleo_row.contains(" checked"), "{cleo_row}");
    assert!(!cleo_row.contains("Cannot take over"), "{cleo_row}");
    // Looking changed nothing: the same owner, no hand-over in the log.
    let r = d.get(&format!("/v1/accounts/{a}/owner"), &ot).await;
    assert_eq!(r.body["id"], owner_id);
    let audit = d.all_audit(&a, &ot).await;
    assert!(
        !audit.iter().any(|e| e["action"] == "owner.transfer"),
        "{audit:?}"
    );
}

/// R12 and R23: a form that could only be refused is not offered: an
/// admin sees the owner's profile without its forms (and why), an agent's
/// with them; without a Sell admin there is no "Grant Sell access".
#[tokio::test]
async fn r12_r23_console_offers_no_form_that_can_only_fail() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    d.add_member(&ot, &a, "ada@acme.test", "admin").await;
    let agent = d.add_member(&ot, &a, "al@acme.test", "agent").await;
    let mut ada = Browser::new(&d);
    let mail = d.wait_mail("ada@acme.test", "Set your password", 1).await;
    ada.set_password_and_sign_in(&a, &link_path(&mail.body), "ada@acme.test")
        .await;
    let page = ada.open(&format!("/a/{a}/profile/{owner_id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(!page.html.contains("/addresses\""), "{}", page.html);
    assert!(!page.html.contains("Save name"), "{}", page.html);
    assert!(
        page.html.contains("Only Owner manages this profile"),
        "{}",
        page.html
    );
    let page = ada.open(&format!("/a/{a}/profile/{agent}")).await;
    assert!(
        page.html.contains(&format!("/profile/{agent}/addresses\"")),
        "{}",
        page.html
    );
    assert!(page.html.contains("Save name"));
    // Sell bought without a trial has no admin yet: only platform
    // support can appoint one (R21, R23).
    let r = d
        .put(
            &format!("/v1/accounts/{a}/billing/seats"),
            &ot,
            serde_json::json!({"support_seats": 5, "sell_seats": 3}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let page = owner.open(&format!("/a/{a}/sell")).await;
    assert!(page.html.contains("Sell has no admin"), "{}", page.html);
    assert!(
        !page.html.contains("Grant Sell access</button>"),
        "{}",
        page.html
    );
}

/// R19 and R23 from the console: an admin asks platform support for the
/// first Sell admin and for an ownership investigation; support's queue
/// lists them with the account's name and closes them with an answer the
/// account reads; the owner never changes.
#[tokio::test]
async fn r19_r23_console_contact_support_and_the_answer_the_account_reads() {
    let d = Daemon::start();
    let (a, owner_id, mut owner) = signed_in_owner(&d, 5).await;
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let (ada, _) = d.member(&ot, &a, "ada@acme.test", "admin").await;
    d.put(
        &format!("/v1/accounts/{a}/billing/seats"),
        &ot,
        serde_json::json!({"support_seats": 5, "sell_seats": 3}),
    )
    .await;
    // The Sell page leads to the request, the topic picked.
    let sell = owner.open(&format!("/a/{a}/sell")).await;
    assert!(
        sell.html
            .contains(&format!("href=\"/a/{a}/support?topic=sell_admin\"")),
        "{}",
        sell.html
    );
    let page = owner
        .open(&format!("/a/{a}/support?topic=sell_admin"))
        .await;
    assert!(
        page.html.contains("value=\"sell_admin\" checked"),
        "{}",
        page.html
    );
    let sent = owner
        .post(
            &format!("/a/{a}/support"),
            &[
                ("csrf", &page.csrf()),
                ("topic", "sell_admin"),
                ("member_id", &ada),
                ("message", "Ada runs sales"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.html);
    // A request with no message keeps what was chosen and says why.
    let refused = owner
        .post(
            &format!("/a/{a}/support"),
            &[
                ("csrf", &page.csrf()),
                ("topic", "ownership"),
                ("message", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(
        refused.html.contains("value=\"ownership\" checked"),
        "{}",
        refused.html
    );
    let sent = owner
        .post(
            &format!("/a/{a}/support"),
            &[
                ("csrf", &page.csrf()),
                ("topic", "ownership"),
                ("message", "Our owner left the company"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.html);
    let mine = owner.open(&format!("/a/{a}/support")).await;
    assert!(
        mine.html.contains("Appoint ada first Sell admin"),
        "{}",
        mine.html
    );
    assert_eq!(mine.html.matches(">open<").count(), 2, "{}", mine.html);
    // Support's queue: both, with the account's name; closing answers.
    let mut support = support_browser(&d).await;
    let queue = support.open("/support/cases").await;
    assert!(
        queue
            .html
            .contains(&format!("<a href=\"/support/accounts/{a}\">Acme</a>")),
        "{}",
        queue.html
    );
    assert!(queue.html.contains("Our owner left the company"));
    let at = queue.html.find("Our owner left the company").unwrap();
    let action_at = queue.html[at..].find("action=\"").unwrap() + at + 8;
    let action = queue.html[action_at..]
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let closed = support
        .post(
            &action,
            &[
                ("csrf", &queue.csrf()),
                ("note", "Reset the password through the owner's mailbox"),
            ],
        )
        .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER, "{}", closed.html);
    let queue = support.open("/support/cases").await;
    assert!(
        !queue.html.contains("Our owner left the company"),
        "{}",
        queue.html
    );
    let mine = owner.open(&format!("/a/{a}/support")).await;
    assert!(
        mine.html
            .contains("Reset the password through the owner&#39;s mailbox")
            || mine
                .html
                .contains("Reset the password through the owner's mailbox"),
        "{}",
        mine.html
    );
    // R19: nothing of this changed the owner.
    assert_eq!(
        d.get(&format!("/v1/accounts/{a}/owner"), &ot).await.body["id"],
        owner_id
    );
    // R23: once Sell has an admin, the account cannot ask for a first one.
    let r = d
        .post(
            &format!("/v1/accounts/{a}/sell/admins"),
            Some(&d.operator),
            serde_json::json!({"user_id": ada}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let page = owner.open(&format!("/a/{a}/support")).await;
    assert!(!page.html.contains("value=\"sell_admin\""), "{}", page.html);
}

/// R05 on the Billing page: the owner records the payment method, names
/// the billing contacts, and every seat change is an invoice with its
/// amount, mailed to the owner and the contacts; an admin sees none of it.
#[tokio::test]
async fn r05_console_billing_has_the_payment_form_contacts_and_invoices_with_amounts() {
    let d = Daemon::start_with("[billing]\ncurrency = \"EUR\"\nagent_seat_price_cents = 4900\nsell_seat_price_cents = 1900\n");
    let (a, _, mut owner) = signed_in_owner(&d, 2).await;
    let page = owner.open(&format!("/a/{a}/billing")).await;
    assert!(
        page.html
            .contains("The subscription amounts to 98.00 EUR a month"),
        "{}",
        page.html
    );
    let csrf = page.csrf();
    let saved = owner
        .post(
            &format!("/a/{a}/billing/payment-method"),
            &[("csrf", &csrf), ("kind", "card"), ("last4", "4242")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let bad = owner
        .post(
            &format!("/a/{a}/billing/contacts"),
            &[
                ("csrf", &csrf),
                ("contacts", "ap@acme.test\nnot an address"),
            ],
        )
        .await;
    let bad = owner.open(bad.location()).await;
    assert!(bad.html.contains("Check what you typed."), "{}", bad.html);
    let saved = owner
        .post(
            &format!("/a/{a}/billing/contacts"),
            &[("csrf", &csrf), ("contacts", "ap@acme.test\ncfo@acme.test")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let seats = owner
        .post(
            &format!("/a/{a}/billing/seats"),
            &[("csrf", &csrf), ("support_seats", "5"), ("sell_seats", "2")],
        )
        .await;
    assert_eq!(seats.status, StatusCode::SEE_OTHER, "{}", seats.html);
    let page = owner.open(&format!("/a/{a}/billing")).await;
    assert!(page.html.contains("card •••• 4242"), "{}", page.html);
    assert!(
        page.html.contains("ap@acme.test\ncfo@acme.test</textarea>"),
        "{}",
        page.html
    );
    assert!(
        page.html.contains("5 agent seats, 2 Sell seats"),
        "{}",
        page.html
    );
    assert!(page.html.contains("283.00 EUR a month"), "{}", page.html);
    // The invoice, mailed to the owner and each contact.
    for to in ["owner@acme.test", "ap@acme.test", "cfo@acme.test"] {
        let mail = d.wait_mail(to, "Invoice for Acme: 283.00 EUR", 1).await;
        assert!(
            mail.body.contains("5 agent seat(s), 2 Sell seat(s)"),
            "{}",
            mail.body
        );
    }
    // In French, the amount as French readers write it.
    owner.cookies.insert("admind_lang".into(), "fr".into());
    let page = owner.open(&format!("/a/{a}/billing")).await;
    assert!(page.html.contains("283,00 EUR par mois"), "{}", page.html);
    // The API says the same.
    let ot = d.sign_in(&a, "owner@acme.test", PASSWORD).await;
    let invoices = d
        .get(&format!("/v1/accounts/{a}/billing/invoices"), &ot)
        .await
        .body;
    assert_eq!(invoices["items"][0]["amount_cents"], 28_300);
    assert_eq!(invoices["items"][0]["currency"], "EUR");
    let contacts = d
        .get(&format!("/v1/accounts/{a}/billing/contacts"), &ot)
        .await;
    assert_eq!(
        contacts.body["contacts"],
        serde_json::json!(["ap@acme.test", "cfo@acme.test"])
    );
    // An admin is told why not (R05) and sees no contact or amount.
    let (_, at) = d.member(&ot, &a, "ada@acme.test", "admin").await;
    let r = d
        .get(&format!("/v1/accounts/{a}/billing/contacts"), &at)
        .await;
    assert_eq!(r.code(), "billing_owner_only");
}
