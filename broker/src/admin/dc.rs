//! Data centers: registered with a certificate from the broker CA (their key
//! handed out once in a bundle directory), revoked through the CRL.

use std::path::Path;

use time::OffsetDateTime;

use super::{AdminError, ca as admin_ca, load_named};
use crate::ca::{self, Ca};
use crate::directory::{Change, Directory, Dn};
use crate::model::{DataCenter, DirEntry};

/// Register data center `did` listening at `endpoint` (host:port): issue its
/// key and certificate, publish the certificate, write the bundle to `out`.
/// No entry without its bundle. Returns the entry's DN.
pub async fn add(
    dir: &Directory,
    authority: &Ca,
    did: &str,
    endpoint: &str,
    days: i64,
    out: &Path,
    now: OffsetDateTime,
) -> Result<Dn, AdminError> {
    let mut dc = DataCenter::new(did)?;
    let host = endpoint
        .rsplit_once(':')
        .filter(|(_, p)| p.parse::<u16>().is_ok())
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .ok_or_else(|| AdminError::Usage(format!("--endpoint {endpoint:?} is not host:port")))?;
    let issued = authority.issue_dc(did, &host, now, days).map_err(|e| AdminError::Usage(e.to_string()))?;
    dc.endpoint = Some(endpoint.to_string());
    dc.certificate = Some(issued.cert_der.clone());
    let dn = dir.create(&dc).await?;
    if let Err(e) = admin_ca::write_cert_bundle(out, &issued, &authority.cert_pem) {
        let _ = dir.delete(&dn).await;
        let _ = std::fs::remove_dir_all(out);
        return Err(e);
    }
    Ok(dn)
}

/// Revoke `did`'s certificate (a new CRL) and disable its entry; returns the CRL number.
pub async fn revoke(dir: &Directory, authority: &Ca, did: &str, now: OffsetDateTime) -> Result<u64, AdminError> {
    let dc = load_named::<DataCenter>(dir, did, "data center").await?;
    let cert = dc.certificate.clone().ok_or_else(|| AdminError::Refused(format!("{did} has no certificate")))?;
    let serial = ca::cert_serial(&cert).map_err(|e| AdminError::Refused(e.to_string()))?;
    let number = admin_ca::reissue_crl(dir, authority, Some(serial), now).await?;
    let v = crate::directory::values::bool_value(true);
    dir.modify(&dc.dn(dir.layout())?, vec![Change::Replace(b"dirbrokerDisabled".to_vec(), [v].into_iter().collect())])
        .await?;
    Ok(number)
}
