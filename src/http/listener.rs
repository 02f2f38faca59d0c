//! The accept loop: what `axum::serve` does, plus the limits a server facing
//! untrusted clients needs.
//!
//! - At most `connections_max` connections are served at once. The loop
//!   takes a slot *before* `accept`, so past the cap new clients wait in the
//!   kernel's backlog instead of costing a descriptor each.
//! - hyper closes a connection whose request headers do not arrive within
//!   `header_read_timeout` (slow senders).
//! - A watchdog closes a connection that has no request in flight and has
//!   moved no byte for `idle_timeout` (idle keep-alive, or a socket opened
//!   and never used).
//! - An `accept` error (`EMFILE`, `ENFILE`, `ECONNABORTED`, ...) is logged at
//!   most once a second and the loop goes on after a short pause: a full
//!   descriptor table is a moment to wait out, not a reason to stop serving.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
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
            router: router.clone(),
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
        let idle_timeout = limits.idle_timeout;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            metrics.open_connections.inc();
            let check_every =
                (idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
            tokio::pin!(conn);
            let mut idle = IdleClock::new(&activity);
            loop {
                tokio::select! {
                    _ = &mut conn => break,
                    _ = tokio::time::sleep(check_every) => {
                        if idle.idle_for(&activity) >= idle_timeout {
                            metrics.idle_connections_closed.inc();
                            // Dropping the connection closes the socket.
                            break;
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

/// Whether a connection moves bytes, and how many requests it has in
/// flight (a request waiting on the store moves no byte but is not idle).
/// A read or write only bumps a counter (no clock read per I/O: three per
/// request cost about a fiftieth of a cached read); the watchdog, which
/// wakes every quarter of the idle timeout, notes when the counter last
/// changed, so a connection is closed between one and one and a quarter
/// idle timeouts after its last byte.
struct Activity {
    moves: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            moves: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }
}

/// The watchdog's view of one connection's [`Activity`]: the count it
/// last saw and since when that count has not moved.
struct IdleClock {
    seen: u64,
    since: Instant,
}

impl IdleClock {
    fn new(activity: &Activity) -> Self {
        IdleClock {
            seen: activity.moves.load(Ordering::Relaxed),
            since: Instant::now(),
        }
    }

    /// How long the connection has moved no byte with no request in
    /// flight, as of this check.
    fn idle_for(&mut self, activity: &Activity) -> Duration {
        let now = Instant::now();
        let moves = activity.moves.load(Ordering::Relaxed);
        if moves != self.seen || activity.in_flight.load(Ordering::Acquire) > 0 {
            self.seen = moves;
            self.since = now;
        }
        now.saturating_duration_since(self.since)
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
    router: Router,
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

    fn call(&mut self, mut req: hyper::Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.activity.clone());
        req.extensions_mut().insert(ConnectInfo(self.remote));
        // The router is always ready (axum's `poll_ready` answers Ready);
        // its future is kept as it is, not boxed again.
        InFlightFuture {
            inner: tower::Service::call(&mut self.router, req),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way, counted in flight until it is ready.
    struct InFlightFuture {
        #[pin]
        inner: axum::routing::future::RouteFuture<std::convert::Infallible>,
        guard: Option<InFlight>,
    }
}

impl Future for InFlightFuture {
    type Output = Result<axum::response::Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
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
            self.activity.touch();
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
