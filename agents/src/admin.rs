//! The admin console: takes the user's `Mig_Auth_Request` (UID and a fresh
//! OTP typed at the console), authenticates them at the source data center
//! with K1, orders the migration and waits for the outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::migration::MigrationError;
use crate::migration::messages::*;
use crate::migration::request::{self, K1};
use crate::wire;

/// One migration, as the admin orders it.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The K1 bundle written by `dirbroker psk add`.
    pub k1: PathBuf,
    /// The broker CA certificate (PEM), to check the data center's.
    pub ca: PathBuf,
    /// The source data center's endpoint (host:port).
    pub endpoint: String,
    pub uid: String,
    pub mig_rqst: MigRqst,
    pub from: String,
    pub to: String,
    pub timeout: Duration,
    pub transfer_timeout: Duration,
}

#[derive(Deserialize)]
struct K1Bundle {
    psk_id: String,
    admin: String,
    datacenter: String,
    key_base64: String,
}

fn local(e: impl std::fmt::Display) -> MigrationError {
    MigrationError::Local(e.to_string())
}

/// Reads a K1 bundle (refusing one that others can read).
pub fn load_k1(path: &Path) -> Result<K1, MigrationError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
    if meta.mode() & 0o077 != 0 {
        return Err(local(format!("{}: others may read this key; chmod 600 it", path.display())));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| local(format!("{}: {e}", path.display())))?);
    let b: K1Bundle = toml::from_str(&text).map_err(|e| local(format!("{}: {e}", path.display())))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b.key_base64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| local(format!("{}: key_base64: {e}", path.display())))?;
    K1::new(&b.psk_id, &b.admin, &b.datacenter, key)
}

/// What the source data center reported.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub migration_id: [u8; 16],
    pub transferred: Transferred,
}

/// Runs the request module from the admin side; the operation module runs
/// between the data centers and servers, and its outcome comes back here.
pub async fn migrate(opts: &MigrateOptions, otp: Zeroizing<String>) -> Result<Outcome, MigrationError> {
    crate::tls::install_provider();
    let k1 = load_k1(&opts.k1)?;
    if k1.dc != opts.from {
        return Err(local(format!("{} is K1 with {}, not with {}", opts.k1.display(), k1.dc, opts.from)));
    }
    let ca_pem = std::fs::read(&opts.ca).map_err(|e| local(format!("{}: {e}", opts.ca.display())))?;
    let ca = CertificateDer::from_pem_slice(&ca_pem).map_err(|e| local(format!("{}: {e}", opts.ca.display())))?;
    let tls = Arc::new(crate::tls::client_config(&ca, None, None).map_err(local)?);
    // Step 1: Mig_Auth_Request = UID ‖ OTP, read at the console.
    let user = MigAuthRequest { uid: opts.uid.clone(), otp };
    let now = i64::try_from(dirbroker_service::clock::unix_time().as_secs()).unwrap_or(i64::MAX);
    let (auth, waiting) = request::start(&k1, &user, now, &mut dirbroker_service::clock::rng())?;
    let mut dc = crate::tls::connect(tls, &opts.endpoint).await.map_err(local)?;
    let cert = dc.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
    let info = cert.as_deref().map(crate::migration::crypto::cert_info).transpose()?;
    let name = info.filter(|i| i.organization == crate::migration::crypto::DC_ORGANIZATION).map(|i| i.common_name);
    if name.as_deref() != Some(opts.from.as_str()) {
        return Err(MigrationError::Mismatch {
            what: "TLS certificate",
            detail: format!("{} presented {:?}, expected the data center {}", opts.endpoint, name, opts.from),
        });
    }
    // Step 2: Auth_Request; step 3 happens at the DC; step 4: Mig_Request_Admin.
    wire::send(&mut dc, &auth).await?;
    let reply: AuthReply = wire::recv(&mut dc, kind_name, opts.timeout).await?;
    let (order, waiting) = waiting.receive(&k1, &reply, opts.mig_rqst.clone(), &opts.to)?;
    wire::send(&mut dc, &order).await?;
    let done: MigrationDone = wire::recv(&mut dc, kind_name, opts.transfer_timeout).await?;
    let done = waiting.receive(&done)?;
    match done.outcome {
        Ok(transferred) => Ok(Outcome { migration_id: done.migration_id, transferred }),
        Err(e) => Err(MigrationError::Refused(e)),
    }
}
