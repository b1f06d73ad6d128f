//! TLS for `dirbroker serve`: the broker's server certificate, optional client
//! certificates checked against the broker CA and its CRL, and the CRL kept
//! fresh from LDAP (rustls configs are immutable, so a new CRL means a new
//! acceptor, swapped in for the connections that come next).

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServeError;
use crate::directory::{DirError, Directory, Dn, Entry};

/// What the acceptor is built from; kept to rebuild it when the CRL changes.
pub struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: CertificateDer<'static>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::Config(format!("{}: {reason}", path.display()))
}

impl Material {
    /// Read the server certificate chain and key (the key file must be 0600
    /// or stricter) and take `client_ca` (DER) as the only client trust anchor.
    pub fn load(cert_file: &Path, key_file: &Path, client_ca: Vec<u8>) -> Result<Material, ServeError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_file).map_err(|e| file_error(key_file, e))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_error(key_file, format!("mode {mode:o}; run: chmod 600 {}", key_file.display())));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .map_err(|e| file_error(cert_file, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(cert_file, e))?;
        if chain.is_empty() {
            return Err(file_error(cert_file, "no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| file_error(key_file, e))?;
        Ok(Material { chain, key, client_ca: CertificateDer::from(client_ca) })
    }

    /// The signer of migration authorisations (`/v1/otp/verify` with a
    /// `migration_id`): our own certificate's key, which must be P-256.
    pub fn authoriser(&self) -> Result<dirbroker_proto::migration::authorisation::Authoriser, String> {
        let cert = self.chain.first().ok_or("no certificate")?;
        dirbroker_proto::migration::authorisation::Authoriser::from_der(self.key.secret_der(), cert.as_ref().to_vec())
            .map_err(|e| e.to_string())
    }

    /// A rustls server config: our chain, client certificates optional but,
    /// when sent, verified against the CA and `crl` (past its nextUpdate,
    /// `crl` refuses every certificate); ALPN h2 and http/1.1.
    pub fn acceptor(&self, crl: Option<&[u8]>) -> Result<TlsAcceptor, ServeError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.client_ca.clone()).map_err(|e| ServeError::Config(format!("client CA: {e}")))?;
        let crls: Vec<CertificateRevocationListDer<'static>> =
            crl.map(|c| CertificateRevocationListDer::from(c.to_vec())).into_iter().collect();
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .with_crls(crls)
            .enforce_revocation_expiration()
            .allow_unauthenticated()
            .build()
            .map_err(|e| ServeError::Config(format!("client verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| ServeError::Config(format!("server certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // A resumed session skips the client certificate, and so the CRL
        // (revoked since, or past its nextUpdate).
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The acceptor in force; replaced whole when the CRL changes.
#[derive(Clone)]
pub struct Current(Arc<RwLock<TlsAcceptor>>);

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Current(TlsAcceptor)")
    }
}

impl Current {
    pub fn new(a: TlsAcceptor) -> Current {
        Current(Arc::new(RwLock::new(a)))
    }
    pub fn get(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
    pub fn set(&self, a: TlsAcceptor) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = a;
    }
}

const CA_ATTR: &str = "cACertificate;binary";
const CRL_ATTR: &str = "certificateRevocationList;binary";

/// The entry where `dirbroker ca init` publishes the CA.
pub fn ca_dn(dir: &Directory) -> Result<Dn, DirError> {
    dir.layout().pki.child("cn", "ca")
}

/// A `;binary` attribute as slapd returns it (with or without the option).
pub fn binary(e: &Entry, attr: &str) -> Option<Vec<u8>> {
    let plain = attr.split(';').next().unwrap_or(attr);
    e.bytes(attr).ok().flatten().or_else(|| e.bytes(plain).ok().flatten()).map(<[u8]>::to_vec)
}

/// The published CA certificate and CRL (DER), each if present.
pub async fn published(dir: &Directory) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), DirError> {
    let entry = dir.read(&ca_dn(dir)?, &[CA_ATTR, CRL_ATTR]).await?;
    Ok((binary(&entry, CA_ATTR), binary(&entry, CRL_ATTR)))
}
