//! Re-sealing every sealed attribute under the keyring's current key, in
//! the current format: after a rotation (`dirbroker secrets rotate`), and
//! once after upgrading from sealing v1 (`dirbroker secrets upgrade`). These
//! are the only callers of [`Keyring::open_for_upgrade`].

use super::AdminError;
use crate::directory::{Change, Directory, Dn, Entry, Filter, Scope};
use crate::model::{DirEntry, OtpToken, PhysicalServer, PreSharedKey, Sealed};
use crate::seal::{Context, Format, Keyring, context};

/// What a re-seal did.
#[derive(Debug, Default)]
pub struct Resealed {
    /// Values sealed again (under the current key, in the current format).
    pub resealed: usize,
    /// The v1 values among them, each as "DN: what it is now bound to". A v1
    /// value bound only its entry id, so its owner, parties or data center
    /// are taken as the entry has them now: an admin should read this list.
    pub upgraded: Vec<String>,
}

/// Re-seal every sealed attribute that is under an older key or in the v1
/// format, each with a delete-old/add-new modify so a concurrent change is
/// not overwritten. The context is built from the entry as it is now.
pub async fn reseal_all(dir: &Directory, ring: &Keyring) -> Result<Resealed, AdminError> {
    let layout = dir.layout();
    let mut out = Resealed::default();
    for e in sealed_entries(dir, &layout.otp, "dirbrokerOtpSecret").await? {
        let t = OtpToken::from_entry(&e)?;
        if let Some(old) = &t.secret {
            reseal(dir, ring, &e.dn, "dirbrokerOtpSecret", old, &context::otp_token(&t), &mut out).await?;
        }
    }
    for e in sealed_entries(dir, &layout.servers, "dirbrokerServerTotpSecret").await? {
        let ps = PhysicalServer::from_entry(&e)?;
        if let Some(old) = &ps.totp_secret {
            reseal(dir, ring, &e.dn, "dirbrokerServerTotpSecret", old, &context::server_totp(&ps), &mut out).await?;
        }
    }
    for e in sealed_entries(dir, &layout.psk, "dirbrokerPskSecret").await? {
        let p = PreSharedKey::from_entry(&e)?;
        reseal(dir, ring, &e.dn, "dirbrokerPskSecret", &p.secret, &context::psk(&p), &mut out).await?;
    }
    Ok(out)
}

async fn sealed_entries(dir: &Directory, base: &Dn, attr: &'static str) -> Result<Vec<Entry>, AdminError> {
    Ok(dir.search(base, Scope::OneLevel, &Filter::Present(attr), &["*"]).await?)
}

async fn reseal(
    dir: &Directory,
    ring: &Keyring,
    dn: &Dn,
    attr: &str,
    old: &Sealed,
    context: &Context,
    out: &mut Resealed,
) -> Result<(), AdminError> {
    if !ring.needs_reseal(old) {
        return Ok(());
    }
    let (plain, format) =
        ring.open_for_upgrade(context, old).map_err(|err| AdminError::Failed(format!("{dn}: {err}")))?;
    let fresh = ring.seal(context, &plain).map_err(|err| AdminError::Failed(err.to_string()))?;
    let changes = vec![
        Change::Delete(attr.as_bytes().to_vec(), [old.0.clone()].into_iter().collect()),
        Change::Add(attr.as_bytes().to_vec(), [fresh.0].into_iter().collect()),
    ];
    dir.modify(dn, changes).await?;
    out.resealed += 1;
    if format == Format::V1 {
        tracing::info!(dn = %dn, "sealed value upgraded from v1: now bound to {context}");
        out.upgraded.push(format!("{dn}: {context}"));
    }
    Ok(())
}
