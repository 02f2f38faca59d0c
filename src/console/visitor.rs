//! Who is looking at a console page: their session (the API's sessions,
//! carried in a cookie), their language, and the CSRF token their forms
//! carry.
//!
//! - A member's cookie holds the same token the API's `Authorization:
//!   Bearer` does; it resolves through the core (`query::session_principal`),
//!   so expiry, sign-out and R16 apply alike.
//! - Platform support's cookie is `op.<expiry>.<nonce>.<mac>`, a MAC of the
//!   operator token: it never contains the token, stops working when the
//!   token changes, and sign-out revokes its nonce (in this process, and
//!   for every replica through the store when it is shared).
//! - CSRF: a random nonce in a cookie (HttpOnly, SameSite=Strict;
//!   `__Host-admind_csrf` with `Secure` when `public_url` is https, so no
//!   sibling host or plain-http page can plant one), and in every form a
//!   hidden field that is a MAC (keyed by the operator token) of that nonce
//!   and the visitor's session: a token is good for one browser and one
//!   session only. A new nonce is set at sign-in and sign-out. A post whose
//!   field does not match, or whose `Origin` is another scheme or host, is
//!   refused before any work.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::i18n::{self, Catalogue};
use crate::app::{App, AppState};
use crate::domain::{query, token_hash, Principal};
use crate::secret;

pub const SESSION_COOKIE: &str = "admind_session";
pub const CSRF_COOKIE: &str = "admind_csrf";
/// The CSRF cookie's name when the console is served over https.
pub const CSRF_COOKIE_SECURE: &str = "__Host-admind_csrf";

/// The CSRF cookie's name for this daemon's `public_url`.
pub fn csrf_cookie_name(public_url: &str) -> &'static str {
    if public_url.starts_with("https://") {
        CSRF_COOKIE_SECURE
    } else {
        CSRF_COOKIE
    }
}

/// A `Set-Cookie` value with a fresh CSRF nonce: set at sign-in and
/// sign-out, so a token seen before either is worth nothing after.
pub fn fresh_csrf_cookie(public_url: &str) -> String {
    csrf_cookie(public_url, &secret::random_token())
}

/// The `Set-Cookie` value carrying CSRF nonce `nonce`.
pub fn csrf_cookie(public_url: &str, nonce: &str) -> String {
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={nonce}; Path=/; HttpOnly; SameSite=Strict{secure}",
        csrf_cookie_name(public_url)
    )
}

/// A form's CSRF field: a MAC of the cookie's nonce and the session it is
/// for (a member's session hash, support's cookie nonce, or none).
fn csrf_field(key: &str, nonce: &str, binding: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"admind console csrf\0");
    h.update(key.as_bytes());
    h.update(b"\0");
    h.update(nonce.as_bytes());
    h.update(b"\0");
    h.update(binding.as_bytes());
    hex::encode(&h.finalize()[..20])
}
pub const LANG_COOKIE: &str = "admind_lang";
/// How long a platform-support cookie lasts.
pub const OPERATOR_SESSION_SECS: i64 = 8 * 3600;
/// Signed-out operator cookies remembered (oldest forgotten first; they
/// expire on their own within [`OPERATOR_SESSION_SECS`] anyway).
const REVOKED_MAX: usize = 10_000;

/// What a signed-in member may see, for the navigation: links that could
/// only refuse are not offered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Powers {
    pub owner: bool,
    pub admin: bool,
    pub agent: bool,
    /// Any Sell role (a Sell user or admin).
    pub sell: bool,
}

pub struct Visitor {
    /// `None`: not signed in (or the session ended).
    pub who: Option<Principal>,
    /// A member's powers in their account (none for anyone else).
    pub powers: Powers,
    /// The hash of a member's session token (for sign-out).
    pub session_hash: Option<String>,
    /// The operator cookie's nonce (for sign-out).
    pub operator_nonce: Option<String>,
    pub t: &'static Catalogue,
    /// The token this visitor's forms carry (bound to the nonce and the
    /// session).
    pub csrf: String,
    /// The CSRF cookie's nonce.
    pub csrf_nonce: String,
    /// Whether `csrf_nonce` is new and its cookie must be set.
    pub new_csrf: bool,
    /// The `Set-Cookie` value that sets `csrf_nonce` (empty unless
    /// `new_csrf`: only then is it sent).
    pub csrf_set_cookie: String,
    /// The expected `Origin` scheme: `https` when `public_url` is.
    pub https_only: bool,
    /// The `Origin` header of the request, when sent.
    pub origin: Option<String>,
    /// The `Host` header of the request.
    pub host: Option<String>,
    /// The field the cookie's nonce calls for, when a nonce was sent.
    pub expected_csrf: Option<String>,
    /// The path this request asked for (a message in `?done=` is signed
    /// for one path).
    pub request_path: String,
    /// The key messages in `?done=` are signed with (derived from the
    /// operator token: a link nobody signed shows no message).
    flash_key: [u8; 32],
}

/// The key of signed `?done=` messages, derived from the operator token
/// (they stop verifying when the token changes, like support's cookies).
pub fn flash_key_of(operator_token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"admind console flash\0");
    h.update(operator_token.as_bytes());
    h.finalize().into()
}

/// How long a signed message in `?done=` may be shown after its redirect.
const FLASH_MINUTES: i64 = 10;

impl Visitor {
    fn flash_sig(&self, path: &str, key: &str, minute: i64) -> String {
        let mut h = Sha256::new();
        h.update(self.flash_key);
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(key.as_bytes());
        h.update(b"\0");
        h.update(minute.to_string().as_bytes());
        hex::encode(&h.finalize()[..12])
    }

    /// `to` with the message `key` (a catalogue key) in `?done=`, signed
    /// for `to`'s path and the current minute: the page shows it only when
    /// it came from this daemon's own redirect, never from a crafted link.
    pub fn flash_url(&self, to: &str, key: &str) -> String {
        let path = to.split('?').next().unwrap_or(to);
        let minute = Utc::now().timestamp().div_euclid(60);
        let sep = if to.contains('?') { '&' } else { '?' };
        format!(
            "{to}{sep}done={key}~{minute}~{}",
            self.flash_sig(path, key, minute)
        )
    }

    /// The catalogue key of a `?done=` value, when its signature holds for
    /// this request's path and it is recent.
    pub fn flash_key<'a>(&self, done: &'a str) -> Option<&'a str> {
        let mut parts = done.splitn(3, '~');
        let (key, minute, sig) = (parts.next()?, parts.next()?, parts.next()?);
        let minute: i64 = minute.parse().ok()?;
        let now = Utc::now().timestamp().div_euclid(60);
        if !(now - FLASH_MINUTES..=now).contains(&minute) {
            return None;
        }
        secret::secrets_equal(sig, &self.flash_sig(&self.request_path, key, minute)).then_some(key)
    }
}

/// One cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

fn revoked() -> &'static Mutex<(HashSet<String>, std::collections::VecDeque<String>)> {
    static R: std::sync::OnceLock<Mutex<(HashSet<String>, std::collections::VecDeque<String>)>> =
        std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

fn operator_mac(operator_token: &str, expiry: i64, nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"admind console operator session\0");
    h.update(operator_token.as_bytes());
    h.update(b"\0");
    h.update(expiry.to_string().as_bytes());
    h.update(b"\0");
    h.update(nonce.as_bytes());
    hex::encode(h.finalize())
}

/// A new platform-support cookie value.
pub fn operator_cookie(app: &App) -> String {
    let expiry = Utc::now().timestamp() + OPERATOR_SESSION_SECS;
    let nonce = secret::random_token();
    let mac = operator_mac(&app.operator_token, expiry, &nonce);
    format!("op.{expiry}.{nonce}.{mac}")
}

/// The nonce of a valid, unexpired, unrevoked operator cookie.
fn operator_nonce(app: &App, value: &str) -> Option<String> {
    let rest = value.strip_prefix("op.")?;
    let mut parts = rest.splitn(3, '.');
    let expiry: i64 = parts.next()?.parse().ok()?;
    let nonce = parts.next()?;
    let mac = parts.next()?;
    if expiry < Utc::now().timestamp() {
        return None;
    }
    if !secret::secrets_equal(mac, &operator_mac(&app.operator_token, expiry, nonce)) {
        return None;
    }
    let revoked_here = revoked()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .0
        .contains(nonce);
    if revoked_here || crate::replicas::cookie_revoked(&app.store, nonce) {
        return None;
    }
    Some(nonce.to_string())
}

/// Forgets an operator cookie for good (sign-out), on every replica.
pub fn revoke_operator(app: &App, nonce: &str) {
    crate::replicas::revoke_cookie(
        &app.store,
        nonce,
        Utc::now() + chrono::Duration::seconds(OPERATOR_SESSION_SECS),
    );
    let mut revoked = revoked().lock().unwrap_or_else(|e| e.into_inner());
    if revoked.0.insert(nonce.to_string()) {
        revoked.1.push_back(nonce.to_string());
        while revoked.1.len() > REVOKED_MAX {
            if let Some(old) = revoked.1.pop_front() {
                revoked.0.remove(&old);
            }
        }
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let t = i18n::pick(
            cookie(headers, LANG_COOKIE),
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let mut who = None;
        let mut session_hash = None;
        let mut operator_nonce_found = None;
        if let Some(value) = cookie(headers, SESSION_COOKIE) {
            if value.starts_with("op.") {
                if let Some(nonce) = operator_nonce(app, value) {
                    who = Some(Principal::Operator);
                    operator_nonce_found = Some(nonce);
                }
            } else {
                let hash = token_hash(value);
                if let Ok(principal) = query::session_principal(&app.store, &hash, Utc::now()) {
                    who = Some(principal);
                    session_hash = Some(hash);
                }
            }
        }
        let powers = match &who {
            Some(Principal::Member {
                account_id,
                user_id,
            }) => {
                use crate::domain::StateView;
                let user = app.store.user(account_id, user_id).ok().flatten();
                let owner = app
                    .store
                    .account(account_id)
                    .ok()
                    .flatten()
                    .is_some_and(|acc| acc.owner_id == *user_id);
                user.map(|u| Powers {
                    owner,
                    admin: u.support_role == crate::domain::SupportRole::Admin,
                    agent: u.support_role.holds_seat(),
                    sell: u.sell_role != crate::domain::SellRole::None,
                })
                .unwrap_or_default()
            }
            _ => Powers::default(),
        };
        let (csrf_nonce, new_csrf) =
            match cookie(headers, csrf_cookie_name(&app.public_url)).filter(|v| v.len() >= 32) {
                Some(c) => (c.to_string(), false),
                None => (secret::random_token(), true),
            };
        let binding = session_hash
            .clone()
            .or_else(|| operator_nonce_found.clone())
            .unwrap_or_default();
        let csrf = csrf_field(&app.operator_token, &csrf_nonce, &binding);
        // The field a post must carry is the one a page shows when the
        // cookie was sent (the same nonce): one MAC per request, not two.
        let expected_csrf = (!new_csrf).then(|| csrf.clone());
        Ok(Visitor {
            who,
            powers,
            session_hash,
            operator_nonce: operator_nonce_found,
            t,
            csrf,
            csrf_set_cookie: if new_csrf {
                csrf_cookie(&app.public_url, &csrf_nonce)
            } else {
                String::new()
            },
            csrf_nonce,
            new_csrf,
            https_only: app.public_url.starts_with("https://"),
            origin: headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            host: headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            expected_csrf,
            request_path: parts.uri.path().to_string(),
            flash_key: app.console_flash_key,
        })
    }
}

impl Visitor {
    /// Whether a post's hidden field is the one this visitor's CSRF cookie
    /// and session call for, and its `Origin`, when sent, is this site: the
    /// host the request was sent to, over http or https (https only when
    /// `public_url` is).
    pub fn csrf_ok(&self, field: &str) -> bool {
        let Some(expected) = &self.expected_csrf else {
            return false;
        };
        if let Some(origin) = &self.origin {
            let Some((scheme, host)) = origin.split_once("://") else {
                return false;
            };
            let scheme_ok = match scheme {
                "https" => true,
                "http" => !self.https_only,
                _ => false,
            };
            if !scheme_ok || Some(host.trim_end_matches('/')) != self.host.as_deref() {
                return false;
            }
        }
        secret::secrets_equal(field, expected)
    }

    /// The account a member's session belongs to.
    pub fn account_id(&self) -> Option<&str> {
        match &self.who {
            Some(Principal::Member { account_id, .. }) => Some(account_id),
            _ => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.who.as_ref().and_then(|w| w.user_id())
    }

    pub fn is_operator(&self) -> bool {
        self.who == Some(Principal::Operator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; admind_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
