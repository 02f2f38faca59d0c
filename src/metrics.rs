//! Prometheus metrics (text format at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The method label: one of a fixed list, so a client cannot grow the
/// metric set by inventing methods.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
    pub hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// A reason from a closed set (why a request was shed, why a policy action
/// was not carried out): never client text.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// The metrics of one queue (existing series keep their names).
#[derive(Clone, Default)]
pub struct QueueMetrics {
    pub depth: Gauge,
    pub done: Counter,
    pub failures: Counter,
    pub dead: Counter,
}

pub struct Metrics {
    pub accept_errors: Counter,
    pub open_connections: Gauge,
    pub idle_connections_closed: Counter,
    pub slow_headers_closed: Counter,
    pub requests_shed: Family<ReasonLabels, Counter>,
    pub policy_actions_dropped: Family<ReasonLabels, Counter>,
    pub audit_entries_pruned: Counter,
    pub policy_calls: Family<PolicyLabels, Counter>,
    pub policy_failures: Family<PolicyLabels, Counter>,
    pub policy_call_seconds: Family<PolicyLabels, Histogram>,
    pub policy_reloads: Family<ResultLabels, Counter>,
    /// Shadow policies' decisions that differ from the enforced outcome.
    pub policy_shadow_disagreements: Family<PolicyLabels, Counter>,
    /// Hook call records dropped because the recorder's queue was full.
    pub hook_records_dropped: Counter,
    /// Live replicas of the store (1 on a store only this process opens).
    pub replicas_live: Gauge,
    /// Live replicas whose loaded policy versions differ from this one's.
    pub policy_replicas_disagreeing: Gauge,
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_seconds: Family<RouteLabels, Histogram>,
    pub store_commits: Counter,
    /// Commands whose `before_` hook was decided again because the state
    /// moved between the decision and the writer.
    pub policy_decided_again: Counter,
    /// Replays running now, and those stopped because their request ended.
    pub policy_replays_running: Gauge,
    pub policy_replays_stopped: Counter,
    pub store_flush_seconds: Histogram,
    pub store_batch_size: Histogram,
    pub outbox_depth: Gauge,
    pub mail_delivered: Counter,
    pub mail_delivery_failures: Counter,
    pub mail_dead_lettered: Counter,
    pub hook_queue_depth: Gauge,
    pub hook_events_dispatched: Counter,
    /// The series of each durable queue, as its worker keeps them.
    pub outbox_queue: QueueMetrics,
    pub hook_queue: QueueMetrics,
    pub outbound_queue: QueueMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("admind");
        let accept_errors = Counter::default();
        let open_connections = Gauge::default();
        let idle_connections_closed = Counter::default();
        let slow_headers_closed = Counter::default();
        let requests_shed = Family::<ReasonLabels, Counter>::default();
        let policy_actions_dropped = Family::<ReasonLabels, Counter>::default();
        let audit_entries_pruned = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accept calls (e.g. out of descriptors); serving continues",
            accept_errors.clone(),
        );
        registry.register(
            "open_connections",
            "HTTP connections open now",
            open_connections.clone(),
        );
        registry.register(
            "idle_connections_closed",
            "Connections closed for idleness",
            idle_connections_closed.clone(),
        );
        registry.register(
            "slow_headers_closed",
            "Connections closed because a request's headers took longer than limits.header_read_timeout_ms",
            slow_headers_closed.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests answered 429/503 without running, by reason",
            requests_shed.clone(),
        );
        registry.register(
            "policy_actions_dropped",
            "Actions asked by a policy and not carried out, by reason",
            policy_actions_dropped.clone(),
        );
        registry.register(
            "audit_entries_pruned",
            "Audit entries deleted by the retention setting",
            audit_entries_pruned.clone(),
        );
        let policy_calls = Family::<PolicyLabels, Counter>::default();
        let policy_failures = Family::<PolicyLabels, Counter>::default();
        let policy_call_seconds = Family::<PolicyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000001, 3.0, 14))
        });
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_calls",
            "Hook handler calls by policy and hook",
            policy_calls.clone(),
        );
        registry.register(
            "policy_failures",
            "Hook handler failures by policy and hook",
            policy_failures.clone(),
        );
        registry.register(
            "policy_call_seconds",
            "Hook handler latency",
            policy_call_seconds.clone(),
        );
        registry.register(
            "policy_reloads",
            "Script (re)loads by result",
            policy_reloads.clone(),
        );
        let policy_shadow_disagreements = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_shadow_disagreements",
            "Decisions of shadow policies that differ from the enforced outcome",
            policy_shadow_disagreements.clone(),
        );
        let hook_records_dropped = Counter::default();
        registry.register(
            "hook_records_dropped",
            "Hook call records dropped (the recorder's queue was full)",
            hook_records_dropped.clone(),
        );
        let replicas_live = Gauge::default();
        let policy_replicas_disagreeing = Gauge::default();
        registry.register(
            "replicas_live",
            "Live replicas serving this store",
            replicas_live.clone(),
        );
        registry.register(
            "policy_replicas_disagreeing",
            "Live replicas whose loaded policy versions differ from this replica's",
            policy_replicas_disagreeing.clone(),
        );
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 14))
        });
        let store_commits = Counter::default();
        let policy_decided_again = Counter::default();
        let policy_replays_running = Gauge::default();
        let policy_replays_stopped = Counter::default();
        registry.register(
            "policy_replays_running",
            "Policy replays running now",
            policy_replays_running.clone(),
        );
        registry.register(
            "policy_replays_stopped",
            "Policy replays stopped because their request ended first",
            policy_replays_stopped.clone(),
        );
        let store_flush_seconds = Histogram::new(exponential_buckets(0.00005, 2.5, 14));
        let store_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let outbox_depth = Gauge::default();
        let mail_delivered = Counter::default();
        let mail_delivery_failures = Counter::default();
        let mail_dead_lettered = Counter::default();
        let hook_queue_depth = Gauge::default();
        let hook_events_dispatched = Counter::default();
        let hook_events_failed = Counter::default();
        let outbound_depth = Gauge::default();
        let outbound_delivered = Counter::default();
        let outbound_failures = Counter::default();
        let outbound_given_up = Counter::default();
        registry.register(
            "hook_events_failed",
            "After-hook events whose handlers could not run",
            hook_events_failed.clone(),
        );
        registry.register(
            "outbound_depth",
            "Outbound deliveries waiting",
            outbound_depth.clone(),
        );
        registry.register(
            "outbound_delivered",
            "Outbound deliveries answered 2xx",
            outbound_delivered.clone(),
        );
        registry.register(
            "outbound_delivery_failures",
            "Failed outbound delivery attempts",
            outbound_failures.clone(),
        );
        registry.register(
            "outbound_given_up",
            "Outbound deliveries given up on (410 or the last retry)",
            outbound_given_up.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency",
            http_request_seconds.clone(),
        );
        registry.register(
            "store_commits",
            "Committed store transactions",
            store_commits.clone(),
        );
        registry.register(
            "policy_decided_again",
            "Commands whose before_ hook was decided again because the state moved before the writer ran them",
            policy_decided_again.clone(),
        );
        registry.register(
            "store_flush_seconds",
            "Latency of one group-commit flush",
            store_flush_seconds.clone(),
        );
        registry.register(
            "store_batch_size",
            "Commands committed under one flush",
            store_batch_size.clone(),
        );
        registry.register(
            "outbox_depth",
            "Outbox items waiting (the mails one change queued are one item)",
            outbox_depth.clone(),
        );
        registry.register("mail_delivered", "Mails delivered", mail_delivered.clone());
        registry.register(
            "mail_delivery_failures",
            "Failed mail delivery attempts",
            mail_delivery_failures.clone(),
        );
        registry.register(
            "mail_dead_lettered",
            "Mails given up on after the last retry",
            mail_dead_lettered.clone(),
        );
        registry.register(
            "hook_queue_depth",
            "After-hook events waiting",
            hook_queue_depth.clone(),
        );
        registry.register(
            "hook_events_dispatched",
            "After-hook events dispatched",
            hook_events_dispatched.clone(),
        );
        let outbox_queue = QueueMetrics {
            depth: outbox_depth.clone(),
            done: mail_delivered.clone(),
            failures: mail_delivery_failures.clone(),
            dead: mail_dead_lettered.clone(),
        };
        let hook_queue = QueueMetrics {
            depth: hook_queue_depth.clone(),
            done: hook_events_dispatched.clone(),
            failures: hook_events_failed,
            // Hook events are never retried: a failure is also the end, and
            // is counted once, as a failure.
            dead: Counter::default(),
        };
        let outbound_queue = QueueMetrics {
            depth: outbound_depth,
            done: outbound_delivered,
            failures: outbound_failures,
            dead: outbound_given_up,
        };
        Metrics {
            hook_records_dropped,
            policy_shadow_disagreements,
            replicas_live,
            policy_replicas_disagreeing,
            accept_errors,
            open_connections,
            idle_connections_closed,
            slow_headers_closed,
            requests_shed,
            policy_actions_dropped,
            audit_entries_pruned,
            policy_calls,
            policy_failures,
            policy_call_seconds,
            policy_reloads,
            registry,
            http_requests,
            http_request_seconds,
            store_commits,
            policy_decided_again,
            policy_replays_running,
            policy_replays_stopped,
            store_flush_seconds,
            store_batch_size,
            outbox_depth,
            mail_delivered,
            mail_delivery_failures,
            mail_dead_lettered,
            outbox_queue,
            hook_queue,
            outbound_queue,
            hook_queue_depth,
            hook_events_dispatched,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
