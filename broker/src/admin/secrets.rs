//! Master-key rotation: every sealed attribute re-sealed under the keyring's
//! current key.

use super::AdminError;
use crate::directory::{Change, Directory, Dn, Filter, Scope};
use crate::seal::{Keyring, context};

/// Re-seal every sealed attribute under the current key, each with a
/// delete-old/add-new modify so a concurrent change is not overwritten.
pub async fn reseal_all(dir: &Directory, ring: &Keyring) -> Result<usize, AdminError> {
    type Kind<'a> = (&'a Dn, &'static str, &'static str, fn(&str) -> String);
    let kinds: [Kind<'_>; 3] = [
        (&dir.layout().otp, "dirbrokerOtpSecret", "dirbrokerTokenId", context::otp_token),
        (&dir.layout().servers, "dirbrokerServerTotpSecret", "dirbrokerServerId", context::server_totp),
        (&dir.layout().psk, "dirbrokerPskSecret", "dirbrokerPskId", context::psk),
    ];
    let mut count = 0;
    for (base, attr, id_attr, ctx_of) in kinds {
        let entries = dir.search(base, Scope::OneLevel, &Filter::Present(attr), &[attr, id_attr]).await?;
        for e in entries {
            let (Some(old), Ok(Some(id))) = (e.bytes(attr)?, e.str(id_attr)) else { continue };
            let sealed = crate::model::Sealed(old.to_vec());
            if !ring.is_stale(&sealed) {
                continue;
            }
            let context = ctx_of(id);
            let plain = ring.open(&context, &sealed).map_err(|err| AdminError::Failed(format!("{}: {err}", e.dn)))?;
            let fresh = ring.seal(&context, &plain).map_err(|err| AdminError::Failed(err.to_string()))?;
            let changes = vec![
                Change::Delete(attr.as_bytes().to_vec(), [old.to_vec()].into_iter().collect()),
                Change::Add(attr.as_bytes().to_vec(), [fresh.0].into_iter().collect()),
            ];
            dir.modify(&e.dn, changes).await?;
            count += 1;
        }
    }
    Ok(count)
}
