//! The accept loop: what `axum::serve` does, plus the limits a server facing
//! untrusted clients needs.
//!
//! - At most `connections_max` connections are served at once. The loop
//!   takes a slot *before* `accept`, so past the cap new clients wait in the
//!   kernel's backlog instead of costing a descriptor each.
//! - A watchdog closes a connection whose request headers, once begun, are
//!   not complete within `header_read_timeout` (slow senders), and one that
//!   has no request in flight and has moved no byte for `idle_timeout`
//!   (idle keep-alive, or a socket opened and never used). hyper's own
//!   header timer is not used: it armed, polled and dropped a timer for
//!   every request (about a thirtieth of a cached read), and it ran while a
//!   keep-alive connection waited for its next request, closing it after
//!   `header_read_timeout` instead of `idle_timeout`.
//! - An `accept` error (`EMFILE`, `ENFILE`, `ECONNABORTED`, ...) is logged at
//!   most once a second and the loop goes on after a short pause: a full
//!   descriptor table is a moment to wait out, not a reason to stop serving.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Connection limits (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Pause after a failed `accept`, so a full descriptor table is not spun on.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// connections finish their requests (graceful shutdown) and returns.
pub async fn serve(
    listener: TcpListener,
    routes: super::Routes,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No timer: the watchdog below keeps the header deadline.
    builder.http1().keep_alive(true);
    let builder = Arc::new(builder);
    let mut last_error_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                metrics.accept_errors.inc();
                if last_error_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accepting a connection failed; still serving");
                    last_error_logged = Some(Instant::now());
                }
                drop(slot);
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(ActivityIo {
            inner: stream,
            activity: activity.clone(),
        });
        let service = ConnectionService {
            routes: routes.clone(),
            remote,
            activity: activity.clone(),
        };
        let conn = builder
            .serve_connection_with_upgrades(
                io,
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            metrics.open_connections.inc();
            let check_every = (limits.idle_timeout.min(limits.header_read_timeout) / 4)
                .clamp(Duration::from_millis(20), Duration::from_secs(1));
            tokio::pin!(conn);
            let mut watch = Watch::new(&activity);
            loop {
                tokio::select! {
                    _ = &mut conn => break,
                    _ = tokio::time::sleep(check_every) => {
                        match watch.check(&activity, &limits) {
                            Verdict::Keep => {}
                            // Dropping the connection closes the socket.
                            Verdict::Idle => {
                                metrics.idle_connections_closed.inc();
                                break;
                            }
                            Verdict::SlowHeaders => {
                                metrics.slow_headers_closed.inc();
                                break;
                            }
                        }
                    }
                }
            }
            metrics.open_connections.dec();
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Whether a connection moves bytes, how many requests it has in flight
/// (a request waiting on the store moves no byte but is not idle), and
/// whether a request's headers are arriving. A read or write only bumps
/// counters and a flag (no clock read per I/O: three per request cost
/// about a fiftieth of a cached read); the watchdog ([`Watch`]) keeps the
/// time.
struct Activity {
    /// Reads and writes that moved bytes.
    moves: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests whose headers were complete (handed to the router).
    heads: AtomicU64,
    /// Bytes arrived with no request in flight: a request's headers are
    /// coming (cleared when they are complete).
    reading_head: AtomicBool,
    /// An HTTP/2 connection (seen at its first request): its frames flow
    /// between requests (pings, window updates), so only the idle timeout
    /// applies to it, as hyper's header timeout applied to HTTP/1 only.
    http2: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            moves: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            heads: AtomicU64::new(0),
            reading_head: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    fn read_some(&self) {
        self.touch();
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.reading_head.store(true, Ordering::Relaxed);
        }
    }

    /// A request's headers are complete (the router is called): it is in
    /// flight until its [`InFlight`] guard drops.
    fn head_complete(self: &Arc<Self>, version: hyper::Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.reading_head.store(false, Ordering::Relaxed);
        self.heads.fetch_add(1, Ordering::AcqRel);
        if version == hyper::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }
}

/// What the watchdog decided about a connection at one check.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Idle,
    SlowHeaders,
}

/// The watchdog's clock for one connection's [`Activity`]: the counts it
/// last saw and since when they have not moved. It wakes every quarter of
/// the shorter limit (at most a second), so a connection is closed
/// between one and 1.25 limits after the fact.
struct Watch {
    moves_seen: u64,
    idle_since: Instant,
    /// The head being timed: how many heads were complete when the watchdog
    /// first saw it arriving, and when that was.
    head: Option<(u64, Instant)>,
}

impl Watch {
    fn new(activity: &Activity) -> Self {
        Watch {
            moves_seen: activity.moves.load(Ordering::Relaxed),
            idle_since: Instant::now(),
            head: None,
        }
    }

    fn check(&mut self, activity: &Activity, limits: &ConnectionLimits) -> Verdict {
        let now = Instant::now();
        let moves = activity.moves.load(Ordering::Relaxed);
        let busy = activity.in_flight.load(Ordering::Acquire) > 0;
        if moves != self.moves_seen || busy {
            self.moves_seen = moves;
            self.idle_since = now;
        }
        let heads = activity.heads.load(Ordering::Acquire);
        if busy
            || !activity.reading_head.load(Ordering::Relaxed)
            || activity.http2.load(Ordering::Relaxed)
        {
            self.head = None;
        } else {
            match self.head {
                // The same request's headers, still arriving.
                Some((seen, since)) if seen == heads => {
                    if now.saturating_duration_since(since) >= limits.header_read_timeout {
                        return Verdict::SlowHeaders;
                    }
                }
                _ => self.head = Some((heads, now)),
            }
        }
        if now.saturating_duration_since(self.idle_since) >= limits.idle_timeout {
            return Verdict::Idle;
        }
        Verdict::Keep
    }
}

/// Decrements the in-flight count when the response is done (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router for one connection: adds the client's address (for per-IP
/// limits) and counts the request as in flight.
#[derive(Clone)]
struct ConnectionService {
    routes: super::Routes,
    remote: SocketAddr,
    activity: Arc<Activity>,
}

impl tower::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = InFlightFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<Incoming>) -> Self::Future {
        let guard = self.activity.head_complete(req.version());
        let mut req = match &self.routes.lane {
            Some(lane) => match lane.answer(req) {
                super::lane::Lane::Answered(answer) => {
                    return InFlightFuture {
                        inner: None,
                        answer: Some(answer),
                        guard: Some(guard),
                    }
                }
                super::lane::Lane::ForTheRouter(req) => req,
            },
            None => req,
        };
        req.extensions_mut().insert(ConnectInfo(self.remote));
        // The router is always ready (axum's `poll_ready` answers Ready);
        // its future is kept as it is, not boxed again.
        InFlightFuture {
            inner: Some(tower::Service::call(&mut self.routes.router, req)),
            answer: None,
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way, counted in flight until it is ready:
    /// the router's future, or the read lane's answer, ready at once.
    struct InFlightFuture {
        #[pin]
        inner: Option<axum::routing::future::RouteFuture<std::convert::Infallible>>,
        answer: Option<axum::response::Response>,
        guard: Option<InFlight>,
    }
}

impl Future for InFlightFuture {
    type Output = Result<axum::response::Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = match this.answer.take() {
            Some(answer) => Ok(answer),
            None => match this.inner.as_pin_mut() {
                Some(inner) => std::task::ready!(inner.poll(cx)),
                None => Ok(axum::response::IntoResponse::into_response(
                    crate::app::problem::Problem::internal("a request was polled after its answer"),
                )),
            },
        };
        // Ready: the request is no longer in flight (the guard's drop).
        this.guard.take();
        Poll::Ready(answer)
    }
}

/// The socket, noting each read or write that moved bytes.
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        result
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(header_ms: u64, idle_ms: u64) -> ConnectionLimits {
        ConnectionLimits {
            connections_max: 1,
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
        }
    }

    fn pause() {
        std::thread::sleep(Duration::from_millis(40));
    }

    /// Headers arriving for longer than the deadline are cut; a request in
    /// flight, or a new request's headers, start the clock again; waiting
    /// for the next request is the idle timeout's, not the deadline's.
    #[test]
    fn the_header_deadline_runs_from_a_heads_first_byte_to_its_last() {
        let limits = limits(30, 10_000);
        let a = Arc::new(Activity::new());
        let mut watch = Watch::new(&a);
        // Nothing sent yet: no head to time.
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
        // A head begins, and is still arriving past the deadline.
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
        pause();
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::SlowHeaders);

        // A head completed in time (the router's call), then a wait for
        // the next request longer than the deadline.
        let a = Arc::new(Activity::new());
        let mut watch = Watch::new(&a);
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
        let request = a.head_complete(hyper::Version::HTTP_11);
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep, "in flight");
        drop(request);
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep, "waiting");
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep, "still waiting");

        // Two heads in a row seen arriving at two checks (the first one
        // served between them): each is timed from its own start.
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
        drop(a.head_complete(hyper::Version::HTTP_11));
        a.read_some();
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep, "a new head");
    }

    /// An HTTP/2 connection's frames between requests are not a head.
    #[test]
    fn http2_connections_get_only_the_idle_timeout() {
        let limits = limits(30, 10_000);
        let a = Arc::new(Activity::new());
        let mut watch = Watch::new(&a);
        drop(a.head_complete(hyper::Version::HTTP_2));
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
        pause();
        a.read_some();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
    }

    /// No byte and no request for the idle timeout: closed as idle.
    #[test]
    fn a_connection_silent_for_the_idle_timeout_is_idle() {
        let limits = limits(10_000, 30);
        let a = Activity::new();
        let mut watch = Watch::new(&a);
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Idle);
        // A request in flight is never idle, however long it takes.
        let a = Arc::new(Activity::new());
        let mut watch = Watch::new(&a);
        let _request = a.head_complete(hyper::Version::HTTP_11);
        pause();
        assert_eq!(watch.check(&a, &limits), Verdict::Keep);
    }
}
