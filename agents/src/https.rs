//! The HTTPS JSON server and client of the SSO agent services (AMS, ANS):
//! axum over hyper over tokio-rustls, with the agent's own certificate from
//! its bundle (`dirbroker agent add`), client certificates optional but,
//! when sent, checked against the broker CA and the CRL fetched from the
//! broker at start. The caller's identity reaches the handlers as the
//! broker's own [`dirbroker_service::Peer`], so the same `require` checks apply.
//!
//! ```text
//!  start: bundle (key.pem, cert.pem, ca.pem) ─► GET broker/v1/pki/ca ─► CA + CRL
//!  accept (the broker's loop) ─► spawn: TLS handshake (timeout) ─► Peer{kind,name,serial} ─► router
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use dirbroker_service::accept::{Limits, serve_tls};
use dirbroker_service::metrics::Metrics;

/// An agent's TLS identity and trust, from its bundle and the broker.
pub struct Tls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
    crl: Option<CertificateRevocationListDer<'static>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("has_crl", &self.crl.is_some()).finish_non_exhaustive()
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

impl Tls {
    /// Reads key.pem (must be 0600 or stricter), cert.pem and ca.pem from
    /// `bundle`, then the CA and CRL the broker publishes (`GET /v1/pki/ca`),
    /// which must be the bundle's CA.
    pub async fn load(bundle: &Path, broker: &str) -> Result<Tls, String> {
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
        let mut tls = Tls { chain, key, ca, crl: None };
        let http = tls.client()?;
        let url = format!("{}/v1/pki/ca", broker.trim_end_matches('/'));
        let resp = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: {}", resp.status()));
        }
        let pki: PkiReply = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
        let published = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
        if published != tls.ca {
            return Err(format!("the broker publishes another CA than {}", ca_file.display()));
        }
        let crl = pki.crl_pem.ok_or_else(|| format!("{url}: the broker publishes no CRL"))?;
        tls.crl = Some(CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).map_err(|e| format!("CRL: {e}"))?);
        Ok(tls)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| format!("the CA certificate is unusable: {e}"))?;
        Ok(Arc::new(roots))
    }

    /// The server side: our certificate; client certificates optional, and
    /// checked against the CA and CRL when sent.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let verifier = WebPkiClientVerifier::builder(self.roots()?)
            .with_crls(self.crl.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| format!("server certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// An HTTPS client presenting our certificate and trusting only the CA
    /// (and its CRL once fetched).
    pub fn client(&self) -> Result<reqwest::Client, String> {
        let verifier = rustls::client::WebPkiServerVerifier::builder(self.roots()?)
            .with_crls(self.crl.clone())
            .build()
            .map_err(|e| format!("server verifier: {e}"))?;
        let config = rustls::ClientConfig::builder()
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| format!("client certificate: {e}"))?;
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("HTTPS client: {e}"))
    }
}

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
