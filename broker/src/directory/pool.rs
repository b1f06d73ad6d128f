//! Dialling with failover, the connection pool, and the single connection
//! of a one-shot command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, RecycleResult};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

use super::config::{Bind, DirectoryConfig};
use super::error::{DirError, Result};

/// How long a URI that timed out, could not be reached or refused a write as
/// read-only is tried last (reads and writes) before it is tried in its
/// place again.
pub const SKIP_FAILED_FOR: Duration = Duration::from_secs(2);

/// Which operations a [`Dialer`] opens connections for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Any server will do: start at the URI that answered last (sticky).
    Read,
    /// Always the writer first (not sticky): with several writable providers,
    /// two brokers writing to two of them would each accept the same OTP
    /// code (docs/replication.md). A URI that failed or answered
    /// `unwillingToPerform` (a read-only provider) is skipped for
    /// [`SKIP_FAILED_FOR`], then tried first again.
    Write,
}

/// A bound connection and the index of the URI it went to.
pub(crate) struct Bound {
    pub(crate) ldap: Ldap,
    pub(crate) uri: usize,
}

/// Opens bound connections, trying each URI in turn.
pub(crate) struct Dialer {
    cfg: DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    route: Route,
    /// The URIs (indices into `cfg.uris`) in the order they are tried.
    order: Vec<usize>,
    /// Reads: the position in `order` that answered last; dialling starts there.
    preferred: AtomicUsize,
    /// Per URI: until when (ms since `epoch`) the write dialer skips it.
    skip_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Dialer {
    /// `tls` is built once from `cfg` by the caller and shared by the read
    /// and write dialers (the CA file is read once per process).
    pub(crate) fn new(cfg: DirectoryConfig, route: Route, tls: Option<Arc<rustls::ClientConfig>>) -> Dialer {
        let writer = cfg.writer_index();
        let mut order: Vec<usize> = (0..cfg.uris.len()).collect();
        if route == Route::Write {
            order.retain(|&i| i != writer);
            order.insert(0, writer);
        }
        let skip_until = (0..cfg.uris.len()).map(|_| AtomicU64::new(0)).collect();
        let dialer =
            Dialer { cfg, tls, route, order, preferred: AtomicUsize::new(0), skip_until, epoch: Instant::now() };
        for (i, uri) in dialer.cfg.uris.iter().enumerate() {
            if dialer.cfg.try_last.contains(uri) {
                dialer.mark_failed(i);
            }
        }
        dialer
    }

    /// The URIs that failed (or were handed in as `try_last`) within the
    /// last [`SKIP_FAILED_FOR`].
    pub(crate) fn failed_uris(&self) -> Vec<String> {
        self.cfg.uris.iter().enumerate().filter(|(i, _)| self.skipped(*i)).map(|(_, u)| u.clone()).collect()
    }

    pub(crate) fn config(&self) -> &DirectoryConfig {
        &self.cfg
    }

    pub(crate) fn uris(&self) -> &[String] {
        &self.cfg.uris
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Try URI `uri` last for a while.
    pub(crate) fn mark_failed(&self, uri: usize) {
        if let Some(slot) = self.skip_until.get(uri) {
            let until = self.now_ms().saturating_add(u64::try_from(SKIP_FAILED_FOR.as_millis()).unwrap_or(u64::MAX));
            slot.store(until, Ordering::Relaxed);
        }
    }

    fn skipped(&self, uri: usize) -> bool {
        self.skip_until.get(uri).is_some_and(|s| s.load(Ordering::Relaxed) > self.now_ms())
    }

    /// The URI a new write connection would go to first: the writer unless it
    /// is being skipped. A pooled write connection elsewhere is given up as
    /// soon as this changes, so every broker writes to the same server.
    pub(crate) fn first_choice(&self) -> Option<usize> {
        self.order.iter().copied().find(|&i| !self.skipped(i)).or_else(|| self.order.first().copied())
    }

    /// The URIs in the order this dial tries them.
    fn candidates(&self) -> Vec<usize> {
        let n = self.order.len();
        match self.route {
            Route::Read => {
                let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
                let (fresh, skipped): (Vec<usize>, Vec<usize>) =
                    (0..n).filter_map(|k| self.order.get((start + k) % n).copied()).partition(|&i| !self.skipped(i));
                fresh.into_iter().chain(skipped).collect()
            }
            Route::Write => {
                // Skipped URIs last, not never: when every server failed a
                // moment ago, trying them again beats giving up.
                let (fresh, skipped): (Vec<usize>, Vec<usize>) =
                    self.order.iter().copied().partition(|&i| !self.skipped(i));
                fresh.into_iter().chain(skipped).collect()
            }
        }
    }

    /// Connect and bind as `bind`. Unreachable servers are skipped; a bind
    /// the server refuses is returned as is (another replica would refuse it too).
    pub(crate) async fn dial(&self, bind: &Bind) -> Result<Ldap> {
        self.dial_bound(bind).await.map(|b| b.ldap)
    }

    pub(crate) async fn dial_bound(&self, bind: &Bind) -> Result<Bound> {
        let mut failures = Vec::new();
        for i in self.candidates() {
            let Some(uri) = self.cfg.uris.get(i) else {
                continue;
            };
            match self.dial_one(uri, bind).await {
                Ok(ldap) => {
                    if let Some(pos) = self.order.iter().position(|&o| o == i) {
                        self.preferred.store(pos, Ordering::Relaxed);
                    }
                    return Ok(Bound { ldap, uri: i });
                }
                Err(e) if e.is_retryable() => {
                    self.mark_failed(i);
                    failures.push(format!("{uri}: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        Err(DirError::Unavailable { detail: failures.join("; ") })
    }

    async fn dial_one(&self, uri: &str, bind: &Bind) -> Result<Ldap> {
        let is_ldap = uri.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("ldap://"));
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.connect_timeout)
            .set_starttls(self.cfg.tls.starttls && is_ldap);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // The connect timeout covers TCP and TLS; StartTLS and bind run under
        // the operation timeout.
        let (conn, mut ldap) = tokio::time::timeout(
            self.cfg.connect_timeout + self.cfg.op_timeout,
            LdapConnAsync::with_settings(settings, uri),
        )
        .await
        .map_err(|_| DirError::Unavailable { detail: "connect timed out".into() })?
        .map_err(|e| DirError::from_ldap(e, uri))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.cfg.op_timeout);
        let res = match bind {
            Bind::Anonymous => return Ok(ldap),
            Bind::Simple { dn, password } => ldap.simple_bind(dn, password.expose()).await,
            Bind::External => ldap.sasl_external_bind().await,
        };
        let who = match bind {
            Bind::Simple { dn, .. } => dn.as_str(),
            _ => uri,
        };
        res.and_then(|r| r.success()).map_err(|e| DirError::from_ldap(e, who))?;
        Ok(ldap)
    }
}

pub(crate) struct Manager {
    dialer: Arc<Dialer>,
}

impl managed::Manager for Manager {
    type Type = Bound;
    type Error = DirError;

    async fn create(&self) -> Result<Bound> {
        self.dialer.dial_bound(&self.dialer.cfg.bind).await
    }

    async fn recycle(&self, conn: &mut Bound, _: &Metrics) -> RecycleResult<DirError> {
        if conn.ldap.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if self.dialer.route == Route::Write && self.dialer.first_choice().is_some_and(|first| first != conn.uri) {
            return Err(RecycleError::message("not the writer's connection"));
        }
        Ok(())
    }
}

pub(crate) fn build(dialer: Arc<Dialer>) -> Result<Pool<Manager>> {
    let cfg = &dialer.cfg;
    let n = u32::try_from(cfg.uris.len()).unwrap_or(u32::MAX);
    let create = (cfg.connect_timeout + cfg.op_timeout).saturating_mul(n);
    let size = cfg.pool_size;
    let wait = cfg.op_timeout;
    Pool::builder(Manager { dialer })
        .max_size(size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(create))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DirError::Config(format!("connection pool: {e}")))
}

/// Where a [`super::Directory`] gets its connections.
#[derive(Clone)]
pub(crate) enum Conns {
    /// Bound connections shared by concurrent operations (long-running services).
    Pool(Pool<Manager>),
    /// One connection, dialled on first use: for a command that makes a few
    /// operations and exits (sshd's AuthorizedKeysCommand). Building a pool
    /// costs such a command more than its LDAP work: deadpool sizes itself
    /// from the CPU count, which reads the cgroup files under /proc.
    Single(Arc<Single>),
}

pub(crate) struct Single {
    dialer: Arc<Dialer>,
    slot: tokio::sync::Mutex<Option<(Ldap, usize)>>,
}

/// A connection lent to one operation.
pub(crate) enum Lease {
    Pooled(Object<Manager>),
    Single(Ldap, usize, Arc<Single>),
}

impl std::ops::Deref for Lease {
    type Target = Ldap;
    fn deref(&self) -> &Ldap {
        match self {
            Lease::Pooled(o) => &o.ldap,
            Lease::Single(l, _, _) => l,
        }
    }
}

impl Lease {
    /// The index of the URI this connection went to.
    pub(crate) fn uri(&self) -> usize {
        match self {
            Lease::Pooled(o) => o.uri,
            Lease::Single(_, uri, _) => *uri,
        }
    }

    /// Give up a connection that broke, so the next operation dials afresh.
    pub(crate) async fn discard(self) {
        match self {
            Lease::Pooled(o) => drop(Object::take(o)),
            Lease::Single(_, _, single) => *single.slot.lock().await = None,
        }
    }
}

impl Conns {
    pub(crate) fn single(dialer: Arc<Dialer>) -> Conns {
        Conns::Single(Arc::new(Single { dialer, slot: tokio::sync::Mutex::new(None) }))
    }

    pub(crate) async fn get(&self, op_timeout: Duration) -> Result<Lease> {
        match self {
            Conns::Pool(pool) => pool.get().await.map(Lease::Pooled).map_err(|e| match e {
                PoolError::Backend(e) => e,
                PoolError::Timeout(_) => {
                    DirError::Unavailable { detail: format!("no directory connection within {op_timeout:?}") }
                }
                other => DirError::Unavailable { detail: other.to_string() },
            }),
            Conns::Single(single) => {
                let mut slot = single.slot.lock().await;
                if let Some((l, uri)) = slot.as_mut()
                    && !l.is_closed()
                {
                    return Ok(Lease::Single(l.clone(), *uri, single.clone()));
                }
                let bound = single.dialer.dial_bound(&single.dialer.cfg.bind).await?;
                *slot = Some((bound.ldap.clone(), bound.uri));
                Ok(Lease::Single(bound.ldap, bound.uri, single.clone()))
            }
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Conns::Pool(pool) => pool.close(),
            Conns::Single(single) => {
                if let Ok(mut slot) = single.slot.try_lock() {
                    *slot = None;
                }
            }
        }
    }
}
