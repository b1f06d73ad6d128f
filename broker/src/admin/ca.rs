//! The broker CA's directory side: publishing a new CA with an empty CRL,
//! re-issuing the CRL (with a revoked serial), and the bundle directory a
//! certificate and its key are handed out in.

use std::path::Path;

use time::OffsetDateTime;

use super::AdminError;
use crate::ca::{self, Ca};
use crate::directory::{Change, Directory, Dn, Filter};
use crate::serve::tls::binary;

/// Where the CA is published: `cn=ca,ou=pki,<base>`.
pub fn ca_dn(dir: &Directory) -> Result<Dn, AdminError> {
    Ok(dir.layout().pki.child("cn", "ca")?)
}

/// Create the CA (key and certificate files) and publish its certificate and
/// an empty CRL; nothing is left half-made (the files go with a failed
/// publication). Returns the CA and the DN it is published at.
pub async fn init(
    dir: &Directory,
    key_file: &Path,
    cert_file: &Path,
    name: &str,
    years: i64,
    now: OffsetDateTime,
) -> Result<(Ca, Dn), AdminError> {
    let dn = ca_dn(dir)?;
    if dir.read(&dn, &["cn"]).await.is_ok() {
        return Err(AdminError::Refused(format!("{dn} exists already: the CA was initialised")));
    }
    let authority = Ca::init(key_file, cert_file, name, now, years).map_err(|e| AdminError::Refused(e.to_string()))?;
    let crl = authority.crl(&[], 1, now).map_err(|e| AdminError::Refused(e.to_string()))?;
    let added = dir
        .add(
            &dn,
            vec![
                ("objectClass".into(), vec![b"applicationProcess".to_vec(), b"pkiCA".to_vec()]),
                ("cn".into(), vec![b"ca".to_vec()]),
                ("cACertificate;binary".into(), vec![authority.cert_der.clone()]),
                ("certificateRevocationList;binary".into(), vec![crl]),
            ],
        )
        .await;
    if let Err(e) = added {
        let _ = std::fs::remove_file(key_file);
        let _ = std::fs::remove_file(cert_file);
        return Err(e.into());
    }
    Ok((authority, dn))
}

/// Re-issue the CRL from the published one, adding `serial` if given; returns
/// the new CRL number. A read-modify-write guarded by the entry's `entryCSN`
/// (RFC 4528 Assertion control): when another revocation or a
/// `refresh-crl` wrote in between, the write fails and is done again on the
/// new CRL, so concurrent revocations are never lost.
pub async fn reissue_crl(
    dir: &Directory,
    authority: &Ca,
    serial: Option<Vec<u8>>,
    now: OffsetDateTime,
) -> Result<u64, AdminError> {
    const ATTEMPTS: usize = 200;
    let dn = ca_dn(dir)?;
    let attr = "certificateRevocationList;binary";
    for _ in 0..ATTEMPTS {
        let entry = dir.read(&dn, &[attr, "entryCSN"]).await?;
        let csn = entry.required_str("entryCSN")?.to_string();
        let old = binary(&entry, attr).ok_or_else(|| AdminError::Refused("the CA has no CRL".into()))?;
        let (number, mut revoked) = ca::parse_crl(&old).map_err(|e| AdminError::Refused(e.to_string()))?;
        if let Some(serial) = &serial
            && !revoked.iter().any(|(s, _)| s == serial)
        {
            revoked.push((serial.clone(), now));
        }
        let crl = authority.crl(&revoked, number + 1, now).map_err(|e| AdminError::Refused(e.to_string()))?;
        let change = Change::Replace(attr.as_bytes().to_vec(), [crl].into_iter().collect());
        match dir.modify_if(&dn, vec![change], &Filter::eq("entryCSN", csn), &["entryCSN"]).await {
            Ok(_) => return Ok(number + 1),
            Err(e) if e.is_stale_value() => tokio::task::yield_now().await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Failed(format!("the CRL kept changing under {ATTEMPTS} attempts to re-issue it; try again")))
}

/// Write a certificate bundle: a new directory `out` (0700) with key.pem,
/// cert.pem and ca.pem (each 0600).
pub fn write_cert_bundle(out: &Path, issued: &ca::Issued, ca_pem: &str) -> Result<(), AdminError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .map_err(|e| AdminError::Usage(format!("cannot create {}: {e} (it must not exist yet)", out.display())))?;
    let w = |name: &str, data: &[u8]| {
        crate::secret::write_private_file(&out.join(name), data)
            .map_err(|e| AdminError::Failed(format!("{}: {e}", out.join(name).display())))
    };
    w("key.pem", issued.key_pem.as_bytes())?;
    w("cert.pem", issued.cert_pem.as_bytes())?;
    w("ca.pem", ca_pem.as_bytes())
}
