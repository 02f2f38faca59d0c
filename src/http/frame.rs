//! The one layer every request goes through ([`FrameLayer`]): its id, its
//! log span, the check of its path's parameters, a panic turned into a 500
//! problem, its deadline (`limits.request_timeout_ms`), and its count and
//! latency by route and status.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::app::problem::Problem;
use crate::domain::validate::id_has_shape;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::secret;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// What [`FrameLayer`] needs: the parts a benchmark may switch off, the
/// request ids, and the route labels of the metrics.
pub(super) struct Frame {
    registry: Arc<crate::metrics::Metrics>,
    ids: SequentialIds,
    request_timeout: std::time::Duration,
    /// The body limit every extractor that reads a body applies, set on
    /// each request that may carry one (not GET or HEAD: no such route
    /// reads a body). Here rather than as `DefaultBodyLimit`'s own layer,
    /// which wraps every route in one more boxed service per request.
    body_limit: Option<axum::extract::DefaultBodyLimit>,
    check_path: bool,
    request_id: bool,
    trace: bool,
    catch_panic: bool,
    metrics: bool,
    deadline: bool,
    /// Each matched route's label, made once: a route set is finite (the
    /// router's), so this never grows past it.
    routes: std::sync::RwLock<rustc_hash::FxHashSet<&'static str>>,
    /// The latency histogram and request counter of each method, route
    /// and status seen, taken from the registry's families once: a lookup
    /// here is one FxHash of three labels instead of two SipHash lookups
    /// in the families. No larger than the families themselves (methods
    /// and routes are fixed sets, statuses are the handlers').
    counted: std::sync::RwLock<rustc_hash::FxHashMap<CountKey, (Histogram, Counter)>>,
}

/// What [`Frame::begin`] set up for a request.
struct Begun {
    started: Instant,
    method: &'static str,
    id: Option<HeaderValue>,
    span: tracing::Span,
}

/// Method label, route label and status of a counted request.
type CountKey = (&'static str, &'static str, u16);

impl Frame {
    /// The frame of every request, leaving out the parts `without` names
    /// (a benchmark's `BENCH_WITHOUT_LAYERS`).
    pub(super) fn new(
        registry: Arc<crate::metrics::Metrics>,
        request_timeout: Duration,
        body_max_bytes: usize,
        without: impl Fn(&str) -> bool,
    ) -> Frame {
        Frame {
            registry,
            ids: SequentialIds::new(),
            request_timeout,
            body_limit: (!without("body_limit"))
                .then(|| axum::extract::DefaultBodyLimit::max(body_max_bytes)),
            check_path: !without("check_path"),
            request_id: !without("request_id"),
            trace: !without("trace"),
            catch_panic: !without("catch_panic"),
            metrics: !without("metrics"),
            deadline: !without("deadline"),
            routes: std::sync::RwLock::default(),
            counted: std::sync::RwLock::default(),
        }
    }

    /// What every request gets before its route runs: its method's label,
    /// its id (the client's `x-request-id`, else a new one, set on the
    /// request for the handlers) and its log span.
    fn begin<B>(&self, req: &mut axum::http::Request<B>) -> Begun {
        let started = Instant::now();
        let method = crate::metrics::method_label(req.method());
        let id = if self.request_id {
            match req.headers().get(X_REQUEST_ID) {
                Some(id) => Some(id.clone()),
                None => {
                    let id = self.ids.next();
                    if let Some(id) = &id {
                        req.headers_mut().insert(X_REQUEST_ID, id.clone());
                    }
                    id
                }
            }
        } else {
            None
        };
        let span = if self.trace {
            tracing::info_span!(
                "request",
                id = %crate::logsafe::Clean(id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")),
                method = %crate::logsafe::Clean(req.method().as_str()),
                path = %crate::logsafe::Clean(req.uri().path())
            )
        } else {
            tracing::Span::none()
        };
        Begun {
            started,
            method,
            id,
            span,
        }
    }

    /// A request answered at once by `handler`, in the same frame as a
    /// routed one: its id, its span, a panic turned into a 500, its count
    /// under `route` (the router's template of the route it stands for).
    /// For the read lane (`super::lane`), whose handlers never wait, so no
    /// deadline is armed, as for a routed request answered at its first
    /// poll.
    pub(super) fn answer_now<B>(
        &self,
        mut req: axum::http::Request<B>,
        route: &'static str,
        handler: impl FnOnce(&axum::http::Request<B>) -> Response,
    ) -> Response {
        let begun = self.begin(&mut req);
        let response = {
            let _entered = begun.span.enter();
            if self.catch_panic {
                std::panic::catch_unwind(AssertUnwindSafe(|| handler(&req)))
                    .unwrap_or_else(|_| panicked(route))
            } else {
                handler(&req)
            }
        };
        finish(self, response, begun.started, route, begun.method, begun.id)
    }

    /// Counts one request and its latency.
    fn count(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
        let key = (method, route, status);
        {
            let counted = self.counted.read().unwrap_or_else(|e| e.into_inner());
            if let Some((latency, requests)) = counted.get(&key) {
                latency.observe(seconds);
                requests.inc();
                return;
            }
        }
        let metrics = &self.registry;
        let latency = metrics
            .http_request_seconds
            .get_or_create(&RouteLabels { method, route })
            .clone();
        let requests = metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .clone();
        latency.observe(seconds);
        requests.inc();
        self.counted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (latency, requests));
    }

    /// The metrics label of a matched route, without an allocation per
    /// request.
    fn route_label(&self, route: Option<&MatchedPath>) -> &'static str {
        let Some(route) = route.map(MatchedPath::as_str) else {
            return "unmatched";
        };
        let read = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = read.get(route) {
            return label;
        }
        drop(read);
        let mut write = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = write.get(route) {
            return label;
        }
        // Leaked once per route of the router (a fixed set, matched paths
        // only: a made-up path is "unmatched").
        let label: &'static str = Box::leak(route.to_string().into_boxed_str());
        write.insert(label);
        label
    }
}

const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// [`Frame`] as a tower layer, put around every route by `Router::layer`
/// (so it runs after routing and sees the matched route and its
/// parameters). Written as a service and a future of its own rather than
/// `axum::middleware::from_fn`: that one clones the inner service, boxes a
/// future holding the whole request and copies it at every step, and a
/// deadline timer was armed for every request; here a request answered at
/// its first poll (a cached read) arms no timer at all.
#[derive(Clone)]
pub(super) struct FrameLayer(pub(super) Arc<Frame>);

impl<S> Layer<S> for FrameLayer {
    type Service = FrameService<S>;

    fn layer(&self, inner: S) -> FrameService<S> {
        FrameService {
            frame: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(super) struct FrameService<S> {
    frame: Arc<Frame>,
    inner: S,
}

impl<S> Service<Request> for FrameService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrameFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Everything before the handler: the request's id (the client's
    /// `x-request-id`, else a new one), its log span, the check of its
    /// path's parameters ([`path_refusal`]); then the route's own call.
    fn call(&mut self, mut req: Request) -> Self::Future {
        let frame = &self.frame;
        let matched = req.extensions().get::<MatchedPath>();
        let route = frame.route_label(matched);
        // Only a matched route has parameters; the fallback answers 404
        // itself.
        let mut refused = None;
        if frame.check_path && matched.is_some() {
            let (mut parts, body) = req.into_parts();
            // Reading the parameters axum stored is ready at once.
            refused = match axum::extract::RawPathParams::from_request_parts(&mut parts, &())
                .now_or_never()
            {
                Some(params) => path_refusal(params, route),
                None => Some(Problem::internal("the path could not be read").into_response()),
            };
            req = Request::from_parts(parts, body);
        }
        if let Some(limit) = frame.body_limit {
            if !matches!(
                *req.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            ) {
                limit.apply(&mut req);
            }
        }
        let Begun {
            started,
            method,
            id,
            span,
        } = frame.begin(&mut req);
        let inner = match refused {
            Some(refused) => Err(refused),
            None => {
                let _entered = span.enter();
                if frame.catch_panic {
                    let inner = &mut self.inner;
                    std::panic::catch_unwind(AssertUnwindSafe(move || inner.call(req)))
                        .map_err(|_| panicked(route))
                } else {
                    Ok(self.inner.call(req))
                }
            }
        };
        let (inner, answer) = match inner {
            Ok(future) => (Some(future), None),
            Err(answer) => (None, Some(answer)),
        };
        FrameFuture {
            inner,
            answer,
            timer: None,
            frame: self.frame.clone(),
            span,
            started,
            route,
            method,
            id,
        }
    }
}

/// The answer to a request whose handler panicked (logged, with its route).
fn panicked(route: &'static str) -> Response {
    tracing::error!(route, "a request panicked; answered 500");
    Problem::internal("the request failed unexpectedly; it was logged").into_response()
}

/// Answers a request that runs past `limits.request_timeout_ms` with 503
/// `request_timeout` instead of holding its connection. A write it started
/// may still commit (the writer finishes what it took), as after any lost
/// answer; the client is told so.
fn timed_out(limit: Duration) -> Response {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
        format!(
            "the request took longer than {} ms; a change it asked for may still complete",
            limit.as_millis()
        ),
    );
    p.retry_after_secs = Some(1);
    p.into_response()
}

pin_project! {
    /// A request in its frame: the route's future polled inside the
    /// request's span with panics caught, a deadline armed only if the
    /// route does not answer at its first poll, then the id sent back and
    /// the request counted.
    pub(super) struct FrameFuture<F> {
        #[pin]
        inner: Option<F>,
        // An answer made before the route ran (a refused path, a panic).
        answer: Option<Response>,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        frame: Arc<Frame>,
        span: tracing::Span,
        started: Instant,
        route: &'static str,
        method: &'static str,
        id: Option<HeaderValue>,
    }
}

impl<F> Future for FrameFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.answer.take() {
            Some(answer) => answer,
            None => {
                let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                    return Poll::Ready(Ok(Problem::internal(
                        "a request was polled after its answer",
                    )
                    .into_response()));
                };
                let polled = {
                    let _entered = this.span.enter();
                    if this.frame.catch_panic {
                        std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
                            .unwrap_or_else(|_| Poll::Ready(Ok(panicked(this.route))))
                    } else {
                        inner.poll(cx)
                    }
                };
                match polled {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending if !this.frame.deadline => return Poll::Pending,
                    Poll::Pending => {
                        let limit = this.frame.request_timeout;
                        if this.timer.is_none() {
                            let at = tokio::time::Instant::from_std(*this.started + limit);
                            this.timer.set(Some(tokio::time::sleep_until(at)));
                        }
                        match this.timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
                            Some(Poll::Ready(())) => timed_out(limit),
                            _ => return Poll::Pending,
                        }
                    }
                }
            }
        };
        // Done: the route's future is dropped now, inside the span.
        {
            let _entered = this.span.enter();
            this.inner.set(None);
        }
        Poll::Ready(Ok(finish(
            this.frame,
            response,
            *this.started,
            this.route,
            this.method,
            this.id.take(),
        )))
    }
}

/// Everything after the handler: a server error logged with its request
/// id (as tower-http's trace layer did before it was folded in here), the
/// id sent back, the request counted by route and status with its latency.
fn finish(
    frame: &Frame,
    mut response: Response,
    started: Instant,
    route: &'static str,
    method: &'static str,
    id: Option<HeaderValue>,
) -> Response {
    let status = response.status();
    if status.is_server_error() {
        let request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
        let latency_ms = started.elapsed().as_millis() as u64;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id = %crate::logsafe::Clean(request_id), route, status = status.as_u16(), latency_ms, "response failed");
        } else {
            tracing::warn!(request_id = %crate::logsafe::Clean(request_id), route, status = status.as_u16(), latency_ms, "response failed");
        }
    }
    if let Some(id) = id {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    if frame.metrics {
        frame.count(
            method,
            route,
            status.as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

/// The answer to a request whose path's parameters fail their check,
/// before any handler runs: a segment that is not UTF-8 after
/// percent-decoding is a 400 problem (never axum's plain text), and an id
/// that does not have the shape admind issues is a 404 before any store
/// read, rate-limit key or other per-id work. `route` is the matched one.
fn path_refusal(
    params: Result<axum::extract::RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    route: &str,
) -> Option<Response> {
    let params = match params {
        Ok(params) => params,
        Err(rejection) => {
            return Some(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!("the path is not valid: {}", rejection.body_text()),
                )
                .into_response(),
            )
        }
    };
    for (name, value) in &params {
        let (shaped, what) = match (name, route) {
            ("a", _) => (id_has_shape("acc", value), "account"),
            ("u", _) => (id_has_shape("usr", value), "member"),
            ("i", _) => (id_has_shape("int", value), "integration"),
            ("token_id", _) => (id_has_shape("sct", value), "directory token"),
            ("id", r) if r.starts_with("/v1/licence-requests/") => {
                (id_has_shape("lic", value), "licence request")
            }
            // Delivery ids are sequence numbers.
            ("id", r) if r.starts_with("/v1/deliveries/") => (
                !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()),
                "delivery",
            ),
            // Addresses and webhook sources: bounded, checked by their handler.
            _ => (
                value.len() <= crate::domain::validate::EMAIL_MAX_CHARS,
                "resource",
            ),
        };
        if !shaped {
            return Some(Problem::from(crate::domain::Refusal::not_found(what)).into_response());
        }
    }
    None
}

/// Request ids: a random per-process prefix and a counter. Unique across
/// restarts without a random-number syscall per request (UUIDv4 had one).
#[derive(Clone)]
struct SequentialIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialIds {
    fn new() -> Self {
        let token = secret::random_token();
        SequentialIds {
            prefix: token[..8].into(),
            next: Arc::default(),
        }
    }
}

impl SequentialIds {
    fn next(&self) -> Option<axum::http::HeaderValue> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Written by hand into one buffer: `format!` was a fiftieth of a
        // cached read.
        let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1);
        // Exactly its length: `Bytes` takes a full vector as it is, and
        // allocates a second block for one with spare capacity.
        let mut id = Vec::with_capacity(self.prefix.len() + 1 + digits as usize);
        id.extend_from_slice(self.prefix.as_bytes());
        id.push(b'-');
        for shift in (0..digits).rev() {
            id.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
        }
        axum::http::HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::SequentialIds;
    use std::sync::atomic::Ordering;

    /// A request id is the process's prefix, a dash and the counter in
    /// lowercase hex, as `format!("{prefix}-{n:x}")` wrote it.
    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = SequentialIds::new();
        for n in [0, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX - 1] {
            ids.next.store(n, Ordering::Relaxed);
            let id = ids.next().expect("an id is a valid header value");
            assert_eq!(
                id.to_str().ok(),
                Some(format!("{}-{n:x}", ids.prefix).as_str())
            );
        }
    }
}
