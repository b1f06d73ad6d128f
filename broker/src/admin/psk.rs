//! Pre-shared keys of VM migration (seeds 000/001): K1 between an admin
//! console and a data center (handed to the admin once, in a bundle), or a
//! SPEKE password between two data centers (no bundle: the data centers
//! fetch it from `dirbroker serve`). The directory keeps each key sealed.

use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use super::{AdminError, bundle, existing_user, load_named, random_key};
use crate::directory::{Directory, Dn};
use crate::model::{DataCenter, DirEntry, PreSharedKey};
use crate::seal::{Keyring, context};

/// Who shares a new key.
#[derive(Debug, Clone)]
pub enum Parties<'a> {
    /// K1: an admin (uid) and a data center (DID); the admin's bundle goes to `bundle`.
    Admin { uid: &'a str, did: &'a str, bundle: &'a Path },
    /// A SPEKE password between two different data centers.
    DataCenters(&'a str, &'a str),
}

/// Create the key `id` for `parties`; returns its DN.
pub async fn create(dir: &Directory, ring: &Keyring, id: &str, parties: &Parties<'_>) -> Result<Dn, AdminError> {
    let mut members = Vec::new();
    let dcs: Vec<&str> = match parties {
        Parties::Admin { uid, did, .. } => {
            members.push(existing_user(dir, uid).await?.dn(dir.layout())?);
            vec![*did]
        }
        Parties::DataCenters(a, b) => vec![*a, *b],
    };
    for d in dcs {
        members.push(load_named::<DataCenter>(dir, d, "data center").await?.dn(dir.layout())?);
    }
    crate::directory::dn::check_value("psk id", id)?;
    let key = random_key()?;
    let mut psk = PreSharedKey {
        id: id.to_string(),
        parties: members,
        secret: crate::model::Sealed(Vec::new()),
        not_before: None,
        not_after: None,
        disabled: false,
    };
    // Sealed for exactly these parties.
    psk.secret = ring.seal(&context::psk(&psk), &key).map_err(|e| AdminError::Failed(e.to_string()))?;
    let out = match parties {
        Parties::Admin { uid, did, bundle } => Some((*bundle, *uid, *did)),
        Parties::DataCenters(..) => None,
    };
    let mut file = match out {
        Some((p, _, _)) => Some(bundle::create_new(p)?),
        None => None,
    };
    let dn = match dir.create(&psk).await {
        Ok(dn) => dn,
        Err(e) => {
            if let Some((p, _, _)) = out {
                let _ = std::fs::remove_file(p);
            }
            return Err(e.into());
        }
    };
    if let (Some(f), Some((p, uid, did))) = (file.as_mut(), out)
        && let Err(e) = bundle::write(f, p, &bundle_text(id, uid, did, &key))
    {
        let _ = dir.delete(&dn).await;
        let _ = std::fs::remove_file(p);
        return Err(e);
    }
    Ok(dn)
}

/// Replace the key `id` with a fresh one; a key with an admin party needs
/// `out` for the admin's new bundle, a key between data centers takes none.
pub async fn rotate(dir: &Directory, ring: &Keyring, id: &str, out: Option<&Path>) -> Result<(), AdminError> {
    let psk = load_named::<PreSharedKey>(dir, id, "pre-shared key").await?;
    let key = random_key()?;
    let sealed = ring.seal(&context::psk(&psk), &key).map_err(|e| AdminError::Failed(e.to_string()))?;
    let layout = dir.layout();
    let name = |within: &Dn| {
        psk.parties.iter().find(|d| d.is_within(within)).and_then(|d| d.first_rdn()).map(|(_, v)| v).unwrap_or_default()
    };
    let has_admin = psk.parties.iter().any(|d| d.is_within(&layout.people));
    let (admin, did) = (name(&layout.people), name(&layout.datacenters));
    let dn = psk.dn(dir.layout())?;
    let text = bundle_text(id, &admin, &did, &key);
    let out = match (out, has_admin) {
        (Some(p), true) => Some((p, text.as_str())),
        (None, true) => return Err(AdminError::Usage(format!("{id} has an admin party: give --out"))),
        (Some(_), false) => return Err(AdminError::Usage(format!("{id} is between data centers: it has no bundle"))),
        (None, false) => None,
    };
    bundle::replace_sealed(dir, &dn, "dirbrokerPskSecret", psk.secret, sealed, out).await
}

/// The admin console's K1 bundle.
fn bundle_text(id: &str, admin: &str, did: &str, key: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
    Zeroizing::new(format!(
        "# dirbroker pre-shared key (K1) for the admin console. Keep it 0600.\n\
         psk_id = {id:?}\nadmin = {admin:?}\ndatacenter = {did:?}\nkey_base64 = {:?}\n",
        b64.as_str()
    ))
}
