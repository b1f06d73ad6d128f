//! The one mutual-TLS accept loop, for `dirbroker serve` and the agents'
//! HTTPS services (AMS, ANS): a connection slot, the TLS handshake in its own
//! task with a timeout, the verified client certificate handed to the
//! handlers as [`Peer`], HTTP/1.1 and HTTP/2, and on shutdown no new
//! connections, a graceful close, and at most `shutdown_grace` to drain.
//!
//! One client cannot starve the others: a source address holds at most
//! `max_per_source` connections (more are closed at once), a connection
//! without a request in flight for `idle_timeout` is closed (HTTP/1.1
//! keep-alive and HTTP/2 alike), and `reserved_for_certificates` of the
//! slots are only for connections that presented a verified client
//! certificate: a connection takes an open slot for its handshake and moves
//! to a reserved one when it has a certificate, so anonymous connections
//! never fill the slots certificate holders need once they are in.
//!
//! ```text
//!  accept ─► open slot (max - reserved) ─► source over its cap? ─► close
//!         ─► spawn: TLS handshake (timeout)
//!         client cert? (verified by the acceptor) ─► Peer{kind,name,serial}
//!                       └► move to a reserved slot if one is free
//!         ─► hyper connection ─► router      (idle ─► graceful close)
//!  shutdown: stop accepting ─► graceful close ─► wait ≤ grace
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::Peer;
use super::metrics::{Metrics, dec, inc};
use crate::holder;

/// The limits of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; the next one waits for a slot.
    pub max_connections: usize,
    /// Of those, slots only connections with a verified client certificate hold.
    pub reserved_for_certificates: usize,
    /// Connections one source address may hold at once.
    pub max_per_source: usize,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1.1).
    pub header_timeout: Duration,
    /// Time open connections get to finish after shutdown was asked for.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            reserved_for_certificates: 256,
            max_per_source: 64,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Connections per source address; a [`SourceSlot`] gives its place back when dropped.
#[derive(Debug, Default)]
pub struct Sources(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`Sources`].
#[derive(Debug)]
pub struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Sources {
    /// A place for one more connection from `ip`; `None` when it holds `cap`.
    pub fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<SourceSlot> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot { sources: self.clone(), ip })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.sources.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// At most a few lines a minute of one kind; the rest are counted and the
/// count said with the next line that gets through (a flood of failed
/// handshakes must not become a flood of log lines).
#[derive(Debug, Default)]
pub struct LogLimit {
    window: AtomicU64,
    lines: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    const PER_MINUTE: u64 = 10;

    /// `Some(suppressed since the last line)` when this line may be written.
    pub fn allow(&self, now_secs: u64) -> Option<u64> {
        let minute = now_secs / 60;
        if self.window.swap(minute, Ordering::Relaxed) != minute {
            self.lines.store(0, Ordering::Relaxed);
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) < Self::PER_MINUTE {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// What the loop's connections share.
struct Shared {
    app: axum::Router,
    metrics: Arc<Metrics>,
    limits: Limits,
    reserved: Arc<Semaphore>,
    sources: Arc<Sources>,
    log_limit: LogLimit,
    started: Instant,
}

impl Shared {
    /// Logs a line about a failed or refused connection, rate-limited.
    fn note(&self, addr: SocketAddr, what: &str) {
        if let Some(suppressed) = self.log_limit.allow(self.started.elapsed().as_secs()) {
            if suppressed > 0 {
                tracing::info!(peer = %addr, "{what} ({suppressed} similar lines suppressed)");
            } else {
                tracing::info!(peer = %addr, "{what}");
            }
        }
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, taking each new
/// connection's TLS acceptor from `acceptor` (so a re-read CRL applies to new
/// connections), then drain.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: impl Fn() -> TlsAcceptor,
    app: axum::Router,
    limits: &Limits,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let reserved = limits.reserved_for_certificates.min(limits.max_connections.saturating_sub(1));
    let open = limits.max_connections.saturating_sub(reserved).max(1);
    let permits = Arc::new(Semaphore::new(open));
    let shared = Arc::new(Shared {
        app,
        metrics,
        limits: limits.clone(),
        reserved: Arc::new(Semaphore::new(reserved)),
        sources: Arc::default(),
        log_limit: LogLimit::default(),
        started: Instant::now(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors and the like: back off, do not spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        inc(&shared.metrics.connections_total);
        let Some(source) = shared.sources.take(addr.ip(), limits.max_per_source) else {
            inc(&shared.metrics.connections_refused);
            shared.note(addr, "connection refused: this source holds max_connections_per_source already");
            drop(tcp);
            continue;
        };
        let conn = Connection {
            acceptor: acceptor(),
            shared: shared.clone(),
            stop: stop_rx.clone(),
            slot: permit,
            _source: source,
        };
        tokio::spawn(conn.serve(tcp, addr));
    }
    tracing::info!("shutting down: no new connections, draining for up to {} s", limits.shutdown_grace.as_secs());
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async {
        let _open = permits.acquire_many(u32::try_from(open).unwrap_or(u32::MAX)).await;
        let _reserved = shared.reserved.acquire_many(u32::try_from(reserved).unwrap_or(u32::MAX)).await;
    };
    match tokio::time::timeout(limits.shutdown_grace, drained).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// One accepted TCP connection, from handshake to close.
struct Connection {
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    /// An open slot for the handshake; a reserved one for a certificate holder when free.
    slot: OwnedSemaphorePermit,
    _source: SourceSlot,
}

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    since: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { in_flight: AtomicUsize::new(0), since: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let tick = (timeout / 4).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(tick).await;
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if self.in_flight.load(Ordering::Relaxed) == 0 && self.since.elapsed().saturating_sub(last) >= timeout {
                return;
            }
        }
    }
}

/// Counts a request in flight until dropped (also when its handler panics).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Resolves once shutdown was asked for (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop || rx.changed().await.is_err() {
            return;
        }
    }
}

impl Connection {
    async fn serve(mut self, tcp: TcpStream, addr: SocketAddr) {
        let metrics = self.shared.metrics.clone();
        inc(&metrics.connections_open);
        self.serve_inner(tcp, addr).await;
        dec(&metrics.connections_open);
    }

    async fn serve_inner(&mut self, tcp: TcpStream, addr: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let shared = self.shared.clone();
        let handshake = tokio::time::timeout(shared.limits.handshake_timeout, self.acceptor.accept(tcp));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    inc(&shared.metrics.handshake_failures);
                    shared.note(addr, &format!("TLS handshake failed: {e}"));
                    return;
                }
                Err(_) => {
                    inc(&shared.metrics.handshake_timeouts);
                    shared.note(addr, "TLS handshake timed out");
                    return;
                }
            },
            () = stopped(&mut self.stop) => return,
        };
        let peer = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|leaf| holder::holder(leaf));
        let peer = match peer {
            None => None,
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                // Verified by WebPKI yet unreadable to us: treat as anonymous.
                tracing::warn!(peer = %addr, "client certificate not understood: {e}");
                None
            }
        };
        if let Some(h) = &peer {
            tracing::debug!(peer = %addr, kind = %h.kind, name = %h.name, serial = %h.serial_hex(), "client certificate");
            // A certificate holder leaves the open share to anonymous callers.
            if let Ok(reserved) = shared.reserved.clone().try_acquire_owned() {
                self.slot = reserved;
            }
        }
        let activity = Arc::new(Activity::new());
        let track = activity.clone();
        // The source address, for per-source limits (`ConnectInfo<SocketAddr>`).
        let app = shared
            .app
            .clone()
            .layer(axum::Extension(Peer(peer)))
            .layer(axum::Extension(axum::extract::ConnectInfo(addr)))
            .layer(axum::middleware::from_fn(catch_panic))
            .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                track.in_flight.fetch_add(1, Ordering::Relaxed);
                let guard = InFlight(track.clone());
                async move {
                    let response = next.run(req).await;
                    drop(guard);
                    response
                }
            }));
        let svc = TowerToHyperService::new(app);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(shared.limits.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(64)
            .keep_alive_interval(Some(shared.limits.idle_timeout / 2))
            .keep_alive_timeout(shared.limits.handshake_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let mut conn = pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %addr, "connection: {e}");
                }
                return;
            }
            () = activity.idle_for(shared.limits.idle_timeout) => {
                inc(&shared.metrics.connections_idle_closed);
                tracing::debug!(peer = %addr, "idle connection closed");
            }
            () = stopped(&mut self.stop) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(shared.limits.shutdown_grace, conn).await;
    }
}

/// Runs the request in its own task: a handler that panics (a bug) gets its
/// caller a 500 with a JSON error, is logged, and the service goes on.
pub async fn catch_panic(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let route = req.uri().path().to_string();
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(%route, "request handler failed ({}); answered 500", if e.is_panic() { "panic" } else { "cancelled" });
            crate::api_error::ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (see the log)",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn boom() -> String {
        std::panic::resume_unwind(Box::new("a bug"))
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_and_the_next_request_is_served() {
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(catch_panic));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let r = http.get(format!("http://{addr}/boom")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "internal error (see the log)");
        let r = http.get(format!("http://{addr}/ok")).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "fine".to_string()));
    }

    #[test]
    fn a_source_holds_at_most_its_cap_and_gets_its_places_back() {
        let sources = Arc::new(Sources::default());
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<SourceSlot> = (0..3).map(|_| sources.take(ip, 3).unwrap()).collect();
        assert!(sources.take(ip, 3).is_none());
        assert!(sources.take("127.0.0.1".parse().unwrap(), 3).is_some(), "another source is not affected");
        drop(held);
        assert!(sources.take(ip, 3).is_some());
    }

    #[test]
    fn log_lines_are_limited_per_minute_and_the_rest_counted() {
        let limit = LogLimit::default();
        let allowed = (0..100).filter(|_| limit.allow(60).is_some()).count();
        assert_eq!(allowed, LogLimit::PER_MINUTE as usize);
        assert_eq!(limit.allow(120), Some(90), "the next minute says how many were left out");
    }
}
