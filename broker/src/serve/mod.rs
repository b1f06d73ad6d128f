//! `dirbroker serve`: the broker's HTTPS JSON service for the machine actors
//! (data centers, physical servers, AMS/ANS, admin consoles; seeds 000/001
//! and 002). axum over hyper (HTTP/1.1 and HTTP/2) over tokio-rustls.
//!
//! ```text
//!  accept ─► permit (max_connections) ─► spawn: TLS handshake (timeout)
//!         client cert? ─► broker CA + CRL (WebPKI) ─► Peer{kind,name,serial}
//!         ─► hyper connection ─► router (per-request timeout, metrics)
//!  every crl_refresh_s: CRL from LDAP ─► new acceptor for new connections,
//!                       and in force for the client to AMS/ANS; past nextUpdate: logged, refused
//!  SIGTERM/SIGINT: stop accepting ─► graceful close ─► wait ≤ grace ─► exit 0
//! ```
//!
//! The process keeps no state another instance would need: every answer is
//! read from (and OTP consumption written to) LDAP, so instances run side by
//! side behind any TCP balancer.

pub mod api;
pub mod oidc;
pub mod pages;
pub mod session;
pub mod sso_login;
pub mod sso_register;
pub mod sso_tickets;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, ServeSection};
use crate::directory::{DirError, Directory};
use crate::seal::Keyring;
use metrics::{Metrics, inc};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Directory(#[from] DirError),
}

pub use dirbroker_service::{Peer, accept, metrics};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub dir: Directory,
    pub keyring: Arc<Keyring>,
    pub otp_policy: crate::otp::verify::Policy,
    /// Token state between OTP verifications (writes are guarded by entryCSN).
    pub otp_cache: Arc<crate::otp::verify::TokenCache>,
    /// `/v1/otp/verify` requests per (data center, uid): one data center
    /// cannot grind through a user's codes or lockouts.
    pub otp_verify_limit: Arc<dirbroker_service::rate::RateLimit<(String, String)>>,
    /// Decisions of `/v1/otp/verify` by request key (data center, migration
    /// id, uid, code), for a data center that lost the answer and asks again.
    pub(crate) otp_decisions: Arc<dirbroker_service::idempotent::Decisions<[u8; 32], api::OtpDecision>>,
    pub metrics: Arc<Metrics>,
    pub request_timeout: Duration,
    /// The SSO ticket machinery; `None` until `dirbroker sso init` made a signing key.
    pub sso: Option<Arc<sso_tickets::SsoState>>,
    /// SSO registration (stages 1–2): how to reach AMS/ANS; `None` when not configured.
    pub sso_register: Option<Arc<sso_register::Registrar>>,
    /// Signs users' migration authorisations with our HTTPS key; `None` when that key is not
    /// P-256 (then `/v1/otp/verify` refuses requests that name a migration).
    pub authoriser: Option<Arc<dirbroker_proto::migration::authorisation::Authoriser>>,
    /// Browser sessions (`/web/login`): the origin, the lifetime, the sessions ended here.
    pub web: Arc<session::WebState>,
    /// The OpenID Connect provider; `None` while SSO is off.
    pub oidc: Option<Arc<oidc::OidcState>>,
}

/// A listening server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    settings: ServeSection,
    material: tls::Material,
    current: tls::Current,
    crl: Option<Vec<u8>>,
    state: AppState,
}

impl Server {
    /// Load the TLS material, the CA and CRL from LDAP, and bind the listener.
    pub async fn bind(config: &Config, dir: Directory, keyring: Keyring) -> Result<Server, ServeError> {
        let s = config.serve.clone();
        let cert_file = s.cert_file.clone().ok_or_else(|| ServeError::Config("[serve] cert_file is not set".into()))?;
        let key_file = s.key_file.clone().ok_or_else(|| ServeError::Config("[serve] key_file is not set".into()))?;
        if s.max_connections == 0 || s.max_connections > Semaphore::MAX_PERMITS.min(1 << 20) {
            return Err(ServeError::Config("[serve] max_connections must be between 1 and 1048576".into()));
        }
        if s.handshake_timeout_s == 0 || s.request_timeout_s == 0 || s.crl_refresh_s == 0 {
            return Err(ServeError::Config("[serve] timeouts and crl_refresh_s must be at least 1 s".into()));
        }
        let (published_ca, crl) = match tls::published(&dir).await {
            Ok(v) => v,
            Err(DirError::NotFound { .. }) => (None, None),
            Err(e) => return Err(e.into()),
        };
        let client_ca = match &s.client_ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                rustls_pki_types::CertificateDer::from_pem_file(path)
                    .map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))?
                    .to_vec()
            }
            None => published_ca
                .ok_or_else(|| ServeError::Config("no CA in the directory: run `dirbroker ca init` first".into()))?,
        };
        let sso_register = sso_register::Registrar::from_config(config, &client_ca, crl.as_deref())?.map(Arc::new);
        let material = tls::Material::load(&cert_file, &key_file, client_ca)?;
        let current = tls::Current::new(material.acceptor(crl.as_deref())?);
        let authoriser = match material.authoriser() {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                tracing::warn!("migration authorisations cannot be signed ([serve] key_file): {e}");
                None
            }
        };
        let listener = TcpListener::bind(&s.listen)
            .await
            .map_err(|source| ServeError::Listen { addr: s.listen.clone(), source })?;
        let sso = sso_tickets::SsoState::load(&config.sso, &keyring).map_err(ServeError::Config)?.map(Arc::new);
        let web = Arc::new(session::WebState::from_config(config).map_err(ServeError::Config)?);
        let oidc = match &sso {
            Some(_) => Some(Arc::new(oidc::OidcState::load(config, &keyring).map_err(ServeError::Config)?)),
            None => None,
        };
        let state = AppState {
            oidc,
            web,
            sso,
            dir,
            keyring: Arc::new(keyring),
            otp_policy: config.otp_policy(),
            otp_cache: Arc::new(crate::otp::verify::TokenCache::new()),
            otp_verify_limit: Arc::new(api::otp_verify_limit()),
            otp_decisions: Arc::new(api::otp_decisions()),
            metrics: Arc::new(Metrics::default()),
            request_timeout: Duration::from_secs(s.request_timeout_s),
            sso_register,
            authoriser,
        };
        Ok(Server { listener, settings: s, material, current, crl, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes, then close gracefully: no new
    /// connections, in-flight requests get up to `shutdown_grace_s`.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Server { listener, settings, material, current, crl, state } = self;
        let app = api::router(state.clone(), settings.max_body_bytes);
        let refresher = tokio::spawn(refresh_crl(
            state.dir.clone(),
            material,
            current.clone(),
            state.sso_register.as_ref().map(|r| r.pki().clone()),
            crl,
            Duration::from_secs(settings.crl_refresh_s),
            state.metrics.clone(),
        ));
        let limits = accept::Limits {
            max_connections: settings.max_connections,
            reserved_for_certificates: settings.reserved_for_certificates,
            max_per_source: settings.max_connections_per_source,
            idle_timeout: Duration::from_secs(settings.idle_timeout_s),
            handshake_timeout: Duration::from_secs(settings.handshake_timeout_s),
            header_timeout: state.request_timeout,
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_s),
        };
        accept::serve_tls(listener, move || current.get(), app, &limits, state.metrics.clone(), shutdown).await;
        refresher.abort();
    }
}

/// Re-read the CRL every `every`; a changed CRL gives new connections a new
/// acceptor and is put in force for the client to AMS/ANS (`agents`). A
/// failed read keeps the CRL in force and is counted; a CRL past its
/// nextUpdate is logged at each turn (certificates are refused meanwhile).
async fn refresh_crl(
    dir: Directory,
    material: tls::Material,
    current: tls::Current,
    agents: Option<Arc<dirbroker_service::pki::Pki>>,
    mut last: Option<Vec<u8>>,
    every: Duration,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let crl = match tls::published(&dir).await {
            Ok((_, crl)) => crl,
            Err(e) => {
                inc(&metrics.ldap_errors);
                inc(&metrics.crl_refresh_failures);
                tracing::warn!("CRL refresh: {e}");
                continue;
            }
        };
        if let Some(der) = &crl
            && let Ok(Some(next_update)) = dirbroker_service::pki::crl_next_update(der)
            && next_update <= crate::clock::now().unix_timestamp()
        {
            tracing::warn!(
                security = true,
                next_update,
                "the CRL in LDAP is past its nextUpdate; every client certificate is refused until \
                 `dirbroker ca refresh-crl` publishes a fresh one"
            );
        }
        if crl == last {
            continue;
        }
        if let (Some(pki), Some(der)) = (&agents, &crl)
            && let Err(e) = pki.set_crl(rustls_pki_types::CertificateRevocationListDer::from(der.clone()))
        {
            inc(&metrics.crl_refresh_failures);
            tracing::warn!("CRL refresh (client to AMS/ANS): {e}");
            continue;
        }
        match material.acceptor(crl.as_deref()) {
            Ok(a) => {
                current.set(a);
                inc(&metrics.crl_refreshes);
                tracing::info!("new CRL in force");
                last = crl;
            }
            Err(e) => {
                inc(&metrics.crl_refresh_failures);
                tracing::warn!("CRL refresh: {e}");
            }
        }
    }
}
