//! TLS for the actors: data centers serve and dial with the certificates
//! the broker CA issued them (mutual TLS between data centers, as the paper
//! has certificates there); the admin console checks the data center's
//! certificate. Every peer certificate is judged by the broker CA and, where
//! we have it, its CRL, whose nextUpdate is enforced (a stale CRL refuses
//! every certificate; the DC daemon rebuilds these with each CRL it reads).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::migration::crypto::{DcIdentity, Trust};

/// Installs the process-wide rustls provider (aws-lc-rs) once.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| format!("the CA certificate is unusable: {e}"))?;
    Ok(Arc::new(roots))
}

fn key_of(me: &DcIdentity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(me.key_der.to_vec()))
}

/// The data center's listener: its own certificate; client certificates
/// optional (the admin console has none) but, when present, checked against
/// the CA and the CRL.
pub fn dc_server(me: &DcIdentity, trust: &Trust) -> Result<TlsAcceptor, String> {
    let verifier = WebPkiClientVerifier::builder(roots(trust.ca_der())?)
        .with_crls([trust.crl_der().clone()])
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(me.cert_der.clone())], key_of(me))
        .map_err(|e| format!("server certificate: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client configuration trusting only the broker CA (and its CRL when
/// given), presenting `me` when given.
pub fn client_config(
    ca: &CertificateDer<'static>,
    crl: Option<&Trust>,
    me: Option<&DcIdentity>,
) -> Result<ClientConfig, String> {
    let mut verifier = WebPkiServerVerifier::builder(roots(ca)?);
    if let Some(t) = crl {
        verifier = verifier.with_crls([t.crl_der().clone()]).enforce_revocation_expiration();
    }
    let verifier = verifier.build().map_err(|e| format!("server verifier: {e}"))?;
    let builder = ClientConfig::builder().with_webpki_verifier(verifier);
    match me {
        Some(me) => builder
            .with_client_auth_cert(vec![CertificateDer::from(me.cert_der.clone())], key_of(me))
            .map_err(|e| format!("client certificate: {e}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Dials `endpoint` (host:port) over TLS, checking the certificate names `host`.
pub async fn connect(
    config: Arc<ClientConfig>,
    endpoint: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let (host, _) = endpoint.rsplit_once(':').ok_or_else(|| format!("{endpoint:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let name = ServerName::try_from(host).map_err(|e| format!("{endpoint:?}: {e}"))?;
    let tcp = TcpStream::connect(endpoint).await.map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("TLS with {endpoint}: {e}"))
}
