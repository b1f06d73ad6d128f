//! The HTTPS JSON server and client of the SSO agent services (AMS, ANS):
//! axum over hyper over tokio-rustls, with the agent's own certificate from
//! its bundle (`dirbroker agent add`), client certificates optional but,
//! when sent, checked against the broker CA and the CRL in force. The CRL
//! is read from the broker at start and again every `--crl-refresh`
//! seconds, from the first of the brokers (`--broker URL,URL…`) that
//! answers; one past its nextUpdate refuses every certificate
//! ([`dirbroker_service::pki`]). The agent's client to the broker accepts
//! only a broker certificate. The caller's identity reaches the handlers as
//! the broker's own [`dirbroker_service::Peer`], so the same `require` checks apply.
//!
//! ```text
//!  start: bundle (key.pem, cert.pem, ca.pem) ─► GET broker/v1/pki/ca ─► CA (= the bundle's) + CRL
//!  every --crl-refresh s: GET broker/v1/pki/ca ─► CRL in force for the next handshakes
//!  accept (the broker's loop) ─► spawn: TLS handshake (timeout) ─► Peer{kind,name,serial} ─► router
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use dirbroker_service::holder::CertKind;
use dirbroker_service::pki::Pki;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use dirbroker_service::accept::{Limits, serve_tls};
use dirbroker_service::client::ApiClient;
use dirbroker_service::metrics::Metrics;

/// An agent's TLS identity and trust, from its bundle and the broker.
pub struct Tls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pki: Arc<Pki>,
    source: CrlSource,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("has_crl", &self.pki.crl().is_some()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PkiReply {
    ca_pem: String,
    crl_pem: Option<String>,
}

fn file(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Where the CRL comes from: the broker's `GET /v1/pki/ca` (public), read
/// with a client that presents no certificate (a broker whose CRL is stale
/// refuses ours) and checks the broker's (CA, kind, revocations) but not the
/// CRL's nextUpdate, so a stale CRL can be replaced.
#[derive(Clone)]
struct CrlSource {
    api: ApiClient,
    ca: CertificateDer<'static>,
    pki: Arc<Pki>,
}

impl CrlSource {
    /// Reads the CA and CRL and puts the CRL in force; `Ok(true)` when it is new.
    async fn read(&self) -> Result<bool, String> {
        let url = "/v1/pki/ca";
        let pki: PkiReply = self.api.get(url).await.map_err(|e| e.to_string())?;
        let published = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
        if published != self.ca {
            return Err(format!("{url}: the broker publishes another CA than the bundle's ca.pem"));
        }
        let crl = pki.crl_pem.ok_or_else(|| format!("{url}: the broker publishes no CRL"))?;
        let crl = CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).map_err(|e| format!("CRL: {e}"))?;
        self.pki.set_crl(crl).map_err(|e| format!("{url}: {e}"))
    }
}

fn now_unix() -> i64 {
    i64::try_from(dirbroker_service::clock::unix_time().as_secs()).unwrap_or(i64::MAX)
}

impl Tls {
    /// Reads key.pem (must be 0600 or stricter), cert.pem and ca.pem from
    /// `bundle`, then the CA and CRL the broker publishes (`GET /v1/pki/ca`),
    /// which must be the bundle's CA.
    pub async fn load(bundle: &Path, brokers: &[String]) -> Result<Tls, String> {
        use std::os::unix::fs::PermissionsExt;
        crate::tls::install_provider();
        let key_file = bundle.join("key.pem");
        let mode = std::fs::metadata(&key_file).map_err(|e| file(&key_file, e))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file(&key_file, format!("mode {mode:o}; run: chmod 600 {}", key_file.display())));
        }
        let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| file(&key_file, e))?;
        let cert_file = bundle.join("cert.pem");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
            .map_err(|e| file(&cert_file, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file(&cert_file, e))?;
        let ca_file = bundle.join("ca.pem");
        let ca = CertificateDer::from_pem_file(&ca_file).map_err(|e| file(&ca_file, e))?;
        let pki = Pki::new(ca.clone(), None).map_err(|e| file(&ca_file, e))?;
        let fetching = pki.fetching_client_config(CertKind::Broker, None).map_err(|e| e.to_string())?;
        let source = CrlSource { api: api_client(brokers, fetching)?, ca, pki: pki.clone() };
        source.read().await?;
        pki.warn_if_stale("start", now_unix());
        Ok(Tls { chain, key, pki, source })
    }

    /// Reads the CRL from the broker every `every` (the source it was read
    /// from at start) and puts it in force; a failed read keeps the CRL in
    /// force and is logged, and a CRL past its nextUpdate is logged at each
    /// turn (every certificate is refused meanwhile).
    pub fn keep_fresh(&self, who: &'static str, every: Duration) -> tokio::task::JoinHandle<()> {
        let source = self.source.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match source.read().await {
                    Ok(true) => tracing::info!("{who}: new CRL in force"),
                    Ok(false) => tracing::debug!("{who}: CRL unchanged"),
                    Err(e) => tracing::warn!("{who}: CRL refresh failed, keeping the CRL in force: {e}"),
                }
                source.pki.warn_if_stale(who, now_unix());
            }
        })
    }

    /// The server side: our certificate; client certificates optional, and
    /// checked against the CA and the CRL in force when sent.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let mut config = self.pki.server_config(self.chain.clone(), self.key.clone_key()).map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// An HTTPS client of the brokers (the ones the CRL is read from):
    /// presents our certificate, accepts only a broker certificate of the
    /// CA not revoked by the CRL in force.
    pub fn client(&self) -> Result<ApiClient, String> {
        let config = self
            .pki
            .client_config(CertKind::Broker, Some((self.chain.clone(), self.key.clone_key())))
            .map_err(|e| e.to_string())?;
        self.source.api.with_tls(config, CLIENT_TIMEOUT).map_err(|e| e.to_string())
    }
}

/// The one HTTPS client ([`ApiClient`]) of the brokers, failing over
/// between them; it keeps no connection, so every request dials and is
/// judged by the CRL in force then.
fn api_client(brokers: &[String], config: rustls::ClientConfig) -> Result<ApiClient, String> {
    ApiClient::new(brokers, config, CLIENT_TIMEOUT).map_err(|e| e.to_string())
}

const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Binds `listen` and prints `listening on ADDR` on stdout (what scripts and
/// tests wait for).
pub async fn bind(listen: &str) -> Result<TcpListener, String> {
    use std::io::Write;
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    Ok(listener)
}

/// Serves `app` until the process is stopped, with the broker's accept loop
/// and limits (`dirbroker_service::accept`).
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    let limits = Limits::default();
    let metrics = Arc::new(Metrics::default());
    serve_tls(listener, move || acceptor.clone(), app, &limits, metrics, std::future::pending()).await;
}

/// A 32-byte secret from a bundle file (base64url, mode 0600).
pub fn read_key32(path: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    use base64::Engine;
    let text = dirbroker_service::secret::read_secret_file(path).map_err(|e| e.to_string())?;
    let raw = zeroize::Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.expose().trim().as_bytes())
            .map_err(|e| file(path, e))?,
    );
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(file(path, "not a 32-byte key"));
    }
    out.copy_from_slice(&raw);
    Ok(out)
}

/// The agent's name from the bundle's agent.json.
pub fn agent_name(bundle: &Path) -> Result<String, String> {
    let path = bundle.join("agent.json");
    let text = std::fs::read_to_string(&path).map_err(|e| file(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| file(&path, e))?;
    v.get("name").and_then(|n| n.as_str()).map(str::to_string).ok_or_else(|| file(&path, "no name"))
}
