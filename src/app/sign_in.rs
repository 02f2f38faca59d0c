//! Sign-in, password resets and set links (R17), as the API and the
//! console both run them: the attempt budgets, the equal-cost check, the
//! commands.

use axum::http::StatusCode;

use crate::domain::cmd;

use super::problem::Problem;
use super::{unexpected, App};
use crate::domain::{token_hash, validate, Command, Principal, Refusal, Reply};
use crate::secret;

type ApiResult<T> = Result<T, Problem>;

/// Checks that the client's network address is not locked out by its
/// failures, then counts the attempt against the person's budget; returns
/// the profile the address belongs to, if any. A reset asked for counts
/// against the network address too (it mails someone); a sign-in counts
/// there only when it fails.
fn count_attempt(
    app: &App,
    ip: Option<std::net::IpAddr>,
    purpose: &str,
    account_id: &str,
    email: &str,
) -> ApiResult<Option<crate::domain::User>> {
    if let Some(ip) = ip {
        app.check_ip(ip)?;
    }
    if purpose == "reset" {
        app.count_ip_failure(ip);
    }
    use crate::domain::StateView;
    let user = app
        .store
        .user_by_email(account_id, email)
        .map_err(Refusal::from)?;
    let email = crate::domain::normalize_email(email);
    let key = attempt_key(purpose, account_id, user.as_ref(), &email);
    // This replica's limiter first (bounded, in memory), then the count
    // every replica shares (a no-op on a store only this process opens):
    // spreading attempts over replicas gains nothing.
    app.limiter
        .check(&key)
        .and_then(|()| crate::replicas::count_attempt(&app.store, app.attempts_per_minute, &key))
        .map_err(|secs| {
            app.shed("rate_limited");
            Problem::rate_limited(secs)
        })?;
    Ok(user)
}

/// The attempt-limit key of a sign-in or reset: the profile when the
/// address belongs to one (all its addresses share one budget), else the
/// address itself (so unknown addresses are limited alike and the limit
/// reveals nothing).
fn attempt_key<'a>(
    purpose: &'a str,
    account_id: &'a str,
    user: Option<&'a crate::domain::User>,
    normalized_email: &'a str,
) -> [&'a str; 4] {
    match user {
        Some(u) => [purpose, account_id, "user", u.id.as_str()],
        None => [purpose, account_id, "address", normalized_email],
    }
}

/// Asks for a reset link (R17) within the attempt limits: the API's and
/// the console's one path. Succeeds whether the address exists or not.
pub async fn request_reset(
    app: &App,
    ip: Option<std::net::IpAddr>,
    a: String,
    email: String,
) -> ApiResult<()> {
    if email.len() > validate::EMAIL_MAX_CHARS * 4 {
        return Err(Problem::bad_request("email is too long"));
    }
    count_attempt(app, ip, "reset", &a, &email)?;
    app.submit(
        Principal::Anonymous,
        Command::RequestPasswordReset(cmd::RequestPasswordReset {
            account_id: a,
            email,
        }),
    )
    .await?;
    Ok(())
}

/// Sets a password from a mailed token (new member, reset): the API's and
/// the console's one path.
pub async fn set_password(app: &App, token: &str, password: String) -> ApiResult<()> {
    validate::password(&password)?;
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the link is invalid, already used or expired; ask for a new one",
        )
    };
    if token.is_empty() || token.len() > validate::TOKEN_MAX_CHARS {
        return Err(invalid());
    }
    let hash = token_hash(token);
    // Cheap check first, so bad tokens cost no password hashing.
    use crate::domain::StateView;
    if app.store.token(&hash).map_err(Refusal::from)?.is_none() {
        return Err(invalid());
    }
    let cost = app.password_cost;
    let password_hash = app
        .hash_work(move || secret::hash_password(&password, cost))
        .await?
        .map_err(Problem::internal)?;
    app.submit(
        Principal::Anonymous,
        Command::ConfirmPasswordReset(cmd::ConfirmPasswordReset {
            token_hash: hash,
            password_hash,
        }),
    )
    .await?;
    Ok(())
}

/// Checks an address and password and opens a session: the API's and the
/// console's one path (attempt limits, equal cost for unknown addresses,
/// one answer for every failure). Returns the raw token and the session.
pub async fn sign_in_with_password(
    app: &App,
    ip: Option<std::net::IpAddr>,
    a: String,
    email: String,
    password: String,
) -> ApiResult<(String, crate::domain::Session)> {
    let failed = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the address or password is wrong",
        )
    };
    if email.len() > validate::EMAIL_MAX_CHARS || password.len() > validate::PASSWORD_MAX_CHARS * 4
    {
        return Err(failed());
    }
    let user = count_attempt(app, ip, "signin", &a, &email)?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let against = stored.clone().unwrap_or_else(|| app.decoy_hash.clone());
    let ok = app
        .hash_work(move || secret::verify_password(&password, &against))
        .await?;
    let (Some(user), Some(verified_hash), true) = (user, stored, ok) else {
        app.count_ip_failure(ip);
        return Err(failed());
    };
    let token = secret::random_token();
    let reply = app
        .submit(
            Principal::Anonymous,
            Command::CreateSession(cmd::CreateSession {
                account_id: a,
                user_id: user.id.clone(),
                email,
                verified_hash,
                token_hash: token_hash(&token),
            }),
        )
        .await
        .map_err(|r| {
            if r.code == "invalid_credentials" {
                failed()
            } else {
                r
            }
        })?;
    match reply {
        Reply::Session(s) => Ok((token, s)),
        other => Err(unexpected(other)),
    }
}
