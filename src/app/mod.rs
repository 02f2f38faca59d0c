//! The application both front ends use: the state (`App`, with the one
//! command path `App::submit`, the limits and the gates), the problem type
//! every refusal becomes, the shared extractors (`ClientIp`, `Json`,
//! `Query`) and the sign-in flows. The HTTP API (`crate::http`) and the
//! console (`crate::console`) stand side by side on it: neither imports the
//! other.

pub mod client_ip;
pub mod problem;
pub mod sign_in;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::domain::{cmd, Command, Principal, Reply, Settings};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::secret::PasswordCost;
use crate::store::writer::Writer;
use crate::store::Store;
use problem::Problem;

pub struct App {
    pub store: Store,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub operator_token: String,
    /// The operator token's SHA-256 digest, made once: a bearer check
    /// digests the presented token once and compares it with this, then
    /// looks the same digest up as a session.
    pub operator_token_digest: [u8; 32],
    /// The key the console signs its `?done=` messages with (derived from
    /// the operator token once, at start).
    pub console_flash_key: [u8; 32],
    /// Sign-in and reset attempts per user (all addresses of a profile
    /// share one budget; unknown addresses are keyed by address).
    pub limiter: RateLimiter,
    /// The limiter's budget, also counted across replicas.
    pub attempts_per_minute: u32,
    /// Failed attempts per client network address (0 per minute: off).
    pub ip_limiter: Option<RateLimiter>,
    /// Its budget, also counted across replicas.
    pub attempts_per_minute_per_ip: u32,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<client_ip::Cidr>,
    /// Refused requests per caller (each is an audit entry).
    pub refusals: RateLimiter,
    /// Verification mails per target address and per member asking (an
    /// hour's window).
    pub verification_mails: RateLimiter,
    /// Bounds the password hashes running and waiting.
    pub password_gate: crate::password_gate::PasswordGate,
    pub password_cost: PasswordCost,
    /// Verified against when an address is unknown (equal sign-in cost).
    pub decoy_hash: String,
    pub settings: Settings,
    pub policies: Arc<crate::policy::PolicyHost>,
    pub verifier: crate::webhooks::Verifier,
    /// Base of the links in mails; its scheme decides whether cookies are
    /// `Secure`.
    pub public_url: String,
    /// This replica (its id, for `GET /v1/policies`).
    pub me: Arc<crate::replicas::Me>,
    /// `[console] policy_save`: the console's editor may write scripts.
    pub policy_save: bool,
    /// `[mail] default_language`: the language of the mails of accounts
    /// that chose none (shown on their settings page).
    pub default_language: String,
}

pub type AppState = Arc<App>;

impl App {
    /// Runs a command for an HTTP caller within the caller's budget of
    /// refused requests: past it the command does not run (429
    /// `too_many_refusals`), so a caller cannot fill the audit log with
    /// refusals. Anonymous callers are bounded by the attempt limits instead
    /// (their refusals are not rule refusals, so they write no audit entry).
    pub async fn submit(&self, who: Principal, command: Command) -> Result<Reply, Problem> {
        let key = who.audit_name();
        // Adding an address mails it a verification link: bounded per
        // address and per member, so adding and removing one address over
        // and over floods nobody's mailbox.
        let verification = match &command {
            Command::AddEmail(cmd::AddEmail { address, .. }) => {
                Some(crate::domain::normalize_email(address))
            }
            // Its mail goes to the member's primary address.
            Command::ResendInvitation(cmd::ResendInvitation { user_id, .. }) => {
                Some(format!("member {user_id}"))
            }
            _ => None,
        };
        if let Some(to) = &verification {
            let limited = self
                .verification_mails
                .peek(&["to", to])
                .and_then(|()| self.verification_mails.peek(&["by", &key]));
            if let Err(secs) = limited {
                self.shed("too_many_verification_mails");
                return Err(Problem::too_many_verification_mails(secs));
            }
        }
        let budgeted = who != Principal::Anonymous;
        if budgeted {
            if let Err(secs) = self.refusals.peek(&[&key]) {
                self.metrics
                    .requests_shed
                    .get_or_create(&crate::metrics::ReasonLabels {
                        reason: "too_many_refusals",
                    })
                    .inc();
                return Err(Problem::too_many_refusals(secs));
            }
        }
        match self.writer.submit(who, command).await {
            Ok(reply) => {
                if let Some(to) = &verification {
                    let _ = self.verification_mails.check(&["to", to]);
                    let _ = self.verification_mails.check(&["by", &key]);
                }
                Ok(reply)
            }
            Err(refusal) => {
                if budgeted && refusal.is_rule_refusal() {
                    let _ = self.refusals.check(&[&key]);
                }
                Err(refusal.into())
            }
        }
    }

    /// Refuses a network address locked out by its failed attempts (429),
    /// on this replica or, on a shared store, on any; counts nothing: a
    /// success costs no budget, so a whole office behind one NAT signs in.
    pub fn check_ip(&self, ip: std::net::IpAddr) -> Result<(), Problem> {
        let Some(limiter) = &self.ip_limiter else {
            return Ok(());
        };
        let address = ip.to_string();
        let locked = limiter
            .peek(&[&address])
            .err()
            .or_else(|| crate::replicas::network_locked(&self.store, &address));
        match locked {
            Some(secs) => {
                self.shed("rate_limited");
                Err(Problem::network_rate_limited(secs))
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt (a wrong password or token, an unknown
    /// address) or a reset asked for, against the client's network
    /// address, here and for every replica.
    pub fn count_ip_failure(&self, ip: Option<std::net::IpAddr>) {
        let (Some(limiter), Some(ip)) = (&self.ip_limiter, ip) else {
            return;
        };
        let address = ip.to_string();
        let _ = limiter.check(&[&address]);
        crate::replicas::count_network_failure(
            &self.store,
            self.attempts_per_minute_per_ip,
            &address,
        );
    }

    pub fn shed(&self, reason: &'static str) {
        self.metrics
            .requests_shed
            .get_or_create(&crate::metrics::ReasonLabels { reason })
            .inc();
    }

    /// Runs a password hash or verification through the gate; 503 when full.
    pub async fn hash_work<T, F>(&self, work: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        use crate::password_gate::{GateError, RETRY_AFTER_SECS};
        self.password_gate.run(work).await.map_err(|e| match e {
            GateError::Overloaded => {
                self.shed("overloaded");
                Problem::overloaded(RETRY_AFTER_SECS)
            }
            GateError::Failed(detail) => Problem::internal(detail),
        })
    }
}

/// The client's IP address (see `client_ip`: the peer, or behind trusted
/// proxies the hop they forwarded), when the request came through the
/// listener (in-process callers have none).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|peer| {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            client_ip::client_ip(peer, forwarded, &app.trusted_proxies)
        })))
    }
}

pub fn unexpected(reply: Reply) -> Problem {
    tracing::error!(?reply, "the core answered with an unexpected reply");
    Problem::internal("unexpected answer from the core")
}

/// Takes the store's policy switches now: this replica at once after a
/// switch (the others at their next heartbeat). A failed read leaves the
/// previous set and is logged.
pub async fn refresh_switches(app: &App) {
    let (store, policies) = (app.store.clone(), app.policies.clone());
    let read = tokio::task::spawn_blocking(move || {
        // The other replicas hear of it at once (their heartbeat re-reads
        // the switches too, should the announcement be lost).
        if let Err(e) = store.announce(crate::replicas::TOPIC_SWITCHES) {
            tracing::warn!(error = %e, "announcing the policy switches failed");
        }
        policies.load_switches(&*store)
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "reading the policy switches failed"),
        Err(e) => tracing::warn!(error = %e, "reading the policy switches failed"),
    }
}
