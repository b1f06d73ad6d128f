//! Physical servers of data centers and their TOTP secrets (seed 001's DC↔PS
//! mutual authentication): the secret is generated here, stored sealed, and
//! handed to the server once in an enrolment bundle.

use std::path::Path;

use zeroize::Zeroizing;

use super::{AdminError, bundle, load_named};
use crate::directory::{Directory, Dn};
use crate::model::{DataCenter, DirEntry, PhysicalServer};
use crate::otp::codes::Algorithm;
use crate::otp::enroll;
use crate::seal::{Keyring, context};

/// A server to register.
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    /// Its PID.
    pub id: &'a str,
    /// Its data center's DID.
    pub dc: &'a str,
    /// Its control endpoint (host:port).
    pub endpoint: Option<String>,
    /// TOTP parameters.
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

/// Register the server with a fresh TOTP secret, handed out in the bundle at
/// `out` (which must not exist); returns its DN.
pub async fn add(dir: &Directory, ring: &Keyring, spec: &NewServer<'_>, out: &Path) -> Result<Dn, AdminError> {
    let dc = load_named::<DataCenter>(dir, spec.dc, "data center").await?;
    let mut ps = PhysicalServer::new(spec.id, dc.dn(dir.layout())?)?;
    let secret = enroll::generate_secret().map_err(|e| AdminError::Failed(e.to_string()))?;
    ps.endpoint.clone_from(&spec.endpoint);
    ps.algorithm = Some(spec.algorithm.as_str().into());
    ps.digits = Some(spec.digits);
    ps.period = Some(spec.period);
    ps.totp_watermark = Some(0);
    // Sealed for the server's final data center and parameters (set above).
    ps.totp_secret =
        Some(ring.seal(&context::server_totp(&ps), &secret).map_err(|e| AdminError::Failed(e.to_string()))?);
    let mut file = bundle::create_new(out)?;
    let dn = match dir.create(&ps).await {
        Ok(dn) => dn,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
    };
    if let Err(e) = bundle::write(&mut file, out, &bundle_text(&ps, &dc.id, &secret)) {
        let _ = dir.delete(&dn).await;
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    Ok(dn)
}

/// Give the server a new TOTP secret (the old one stops working) and a new
/// bundle at `out`; returns the server's id as stored.
pub async fn rotate(dir: &Directory, ring: &Keyring, id: &str, out: &Path) -> Result<String, AdminError> {
    let ps = load_named::<PhysicalServer>(dir, id, "physical server").await?;
    let old = ps.totp_secret.clone().ok_or_else(|| AdminError::Refused(format!("{id} has no secret")))?;
    let secret = enroll::generate_secret().map_err(|e| AdminError::Failed(e.to_string()))?;
    let sealed = ring.seal(&context::server_totp(&ps), &secret).map_err(|e| AdminError::Failed(e.to_string()))?;
    let did = ps.datacenter.first_rdn().map(|(_, v)| v).unwrap_or_default();
    let text = bundle_text(&ps, &did, &secret);
    bundle::replace_sealed(dir, &ps.dn(dir.layout())?, "dirbrokerServerTotpSecret", old, sealed, Some((out, &text)))
        .await?;
    Ok(ps.id)
}

/// The server's enrolment bundle.
fn bundle_text(ps: &PhysicalServer, did: &str, secret: &[u8]) -> Zeroizing<String> {
    let b32 = totp_rs::Secret::new(secret.to_vec().into_boxed_slice()).to_base32();
    Zeroizing::new(format!(
        "# dirbroker physical-server enrolment bundle. Keep it 0600; install it on the\n\
         # server and delete every other copy. It is written once and cannot be fetched again.\n\
         server_id = {:?}\ndatacenter = {did:?}\nalgorithm = {:?}\ndigits = {}\nperiod = {}\nsecret_base32 = {b32:?}\n",
        ps.id,
        ps.algorithm.as_deref().unwrap_or("sha1"),
        ps.digits.unwrap_or(6),
        ps.period.unwrap_or(30),
    ))
}
