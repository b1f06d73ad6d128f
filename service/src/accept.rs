//! The one mutual-TLS accept loop, for `dirbroker serve` and the agents'
//! HTTPS services (AMS, ANS): a connection slot (at most `max_connections`),
//! the TLS handshake in its own task with a timeout, the verified client
//! certificate handed to the handlers as [`Peer`], HTTP/1.1 and HTTP/2, and on
//! shutdown no new connections, a graceful close, and at most `shutdown_grace`
//! to drain.
//!
//! ```text
//!  accept ─► permit (max_connections) ─► spawn: TLS handshake (timeout)
//!         client cert? (verified by the acceptor) ─► Peer{kind,name,serial}
//!         ─► hyper connection ─► router
//!  shutdown: stop accepting ─► graceful close ─► wait ≤ grace
//! ```

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

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
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1.1).
    pub header_timeout: Duration,
    /// Time open connections get to finish after shutdown was asked for.
    pub shutdown_grace: Duration,
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
    let max = limits.max_connections;
    let permits = Arc::new(Semaphore::new(max));
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
        inc(&metrics.connections_total);
        let conn = Connection {
            acceptor: acceptor(),
            app: app.clone(),
            metrics: metrics.clone(),
            handshake_timeout: limits.handshake_timeout,
            header_timeout: limits.header_timeout,
            stop: stop_rx.clone(),
            _permit: permit,
        };
        tokio::spawn(conn.serve(tcp, addr));
    }
    tracing::info!("shutting down: no new connections, draining for up to {} s", limits.shutdown_grace.as_secs());
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// One accepted TCP connection, from handshake to close.
struct Connection {
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    metrics: Arc<Metrics>,
    handshake_timeout: Duration,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
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
        inc(&self.metrics.connections_open);
        self.serve_inner(tcp, addr).await;
        dec(&self.metrics.connections_open);
    }

    async fn serve_inner(&mut self, tcp: TcpStream, addr: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    inc(&self.metrics.handshake_failures);
                    tracing::info!(peer = %addr, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    inc(&self.metrics.handshake_timeouts);
                    tracing::info!(peer = %addr, "TLS handshake timed out");
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
        }
        let svc = TowerToHyperService::new(self.app.clone().layer(axum::Extension(Peer(peer))));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(self.header_timeout);
        builder.http2().timer(TokioTimer::new()).max_concurrent_streams(64);
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let mut conn = pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %addr, "connection: {e}");
                }
            }
            () = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}
