//! Dialling with failover, the connection pool, and the single connection
//! of a one-shot command.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, RecycleResult};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

use super::config::{Bind, DirectoryConfig};
use super::error::{DirError, Result};

/// Opens bound connections, trying each URI in turn.
pub(crate) struct Dialer {
    cfg: DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Index of the URI that answered last; dialling starts there.
    preferred: AtomicUsize,
}

impl Dialer {
    pub(crate) fn new(cfg: DirectoryConfig) -> Result<Dialer> {
        let tls = cfg.rustls_config()?;
        Ok(Dialer { cfg, tls, preferred: AtomicUsize::new(0) })
    }

    pub(crate) fn config(&self) -> &DirectoryConfig {
        &self.cfg
    }

    pub(crate) fn uris(&self) -> &[String] {
        &self.cfg.uris
    }

    /// Connect and bind as `bind`. Unreachable servers are skipped; a bind
    /// the server refuses is returned as is (another replica would refuse it too).
    pub(crate) async fn dial(&self, bind: &Bind) -> Result<Ldap> {
        let n = self.cfg.uris.len();
        let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut failures = Vec::new();
        for i in (0..n).map(|k| (start + k) % n) {
            let Some(uri) = self.cfg.uris.get(i) else {
                continue;
            };
            match self.dial_one(uri, bind).await {
                Ok(ldap) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(ldap);
                }
                Err(e) if e.is_retryable() => failures.push(format!("{uri}: {e}")),
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
    type Type = Ldap;
    type Error = DirError;

    async fn create(&self) -> Result<Ldap> {
        self.dialer.dial(&self.dialer.cfg.bind).await
    }

    async fn recycle(&self, conn: &mut Ldap, _: &Metrics) -> RecycleResult<DirError> {
        if conn.is_closed() { Err(RecycleError::message("connection closed")) } else { Ok(()) }
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
    slot: tokio::sync::Mutex<Option<Ldap>>,
}

/// A connection lent to one operation.
pub(crate) enum Lease {
    Pooled(Object<Manager>),
    Single(Ldap, Arc<Single>),
}

impl std::ops::Deref for Lease {
    type Target = Ldap;
    fn deref(&self) -> &Ldap {
        match self {
            Lease::Pooled(o) => o,
            Lease::Single(l, _) => l,
        }
    }
}

impl Lease {
    /// Give up a connection that broke, so the next operation dials afresh.
    pub(crate) async fn discard(self) {
        match self {
            Lease::Pooled(o) => drop(Object::take(o)),
            Lease::Single(_, single) => *single.slot.lock().await = None,
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
                if let Some(l) = slot.as_mut()
                    && !l.is_closed()
                {
                    return Ok(Lease::Single(l.clone(), single.clone()));
                }
                let ldap = single.dialer.dial(&single.dialer.cfg.bind).await?;
                *slot = Some(ldap.clone());
                Ok(Lease::Single(ldap, single.clone()))
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
