//! Account state: disable and enable a user (the account rule,
//! [`crate::model::Validity`], refuses a disabled user on every path, and
//! slapd refuses their bind).

use crate::directory::values::bool_value;
use crate::directory::{Change, Directory};
use crate::model::{DataCenter, DirEntry, User};

use super::{AdminError, existing_user};

/// Sets `dirbrokerDisabled` on the user `uid`; returns the user as it was
/// before. Adds the `dirbrokerUser` object class when a user written by
/// another tool lacks it (the attribute needs it).
pub async fn set_disabled(dir: &Directory, uid: &str, disabled: bool) -> Result<User, AdminError> {
    let user = existing_user(dir, uid).await?;
    let dn = user.dn(dir.layout())?;
    let entry = dir.read(&dn, &["objectClass"]).await?;
    let mut changes = Vec::new();
    if !entry.has_class("dirbrokerUser") {
        changes.push(Change::Add(b"objectClass".to_vec(), [b"dirbrokerUser".to_vec()].into_iter().collect()));
    }
    changes.push(Change::Replace(b"dirbrokerDisabled".to_vec(), [bool_value(disabled)].into_iter().collect()));
    dir.modify(&dn, changes).await?;
    Ok(user)
}

/// Binds the user `uid` to the data centers `dids`: only they may verify the
/// user's OTP codes at `/v1/otp/verify`; an empty list lets any enabled data
/// center do it again. Every DID must name a data center. Returns the user
/// as it is afterwards.
pub async fn set_otp_verifiers(dir: &Directory, uid: &str, dids: &[String]) -> Result<User, AdminError> {
    let mut user = existing_user(dir, uid).await?;
    let mut dns = Vec::new();
    for did in dids {
        let dc = super::load_named::<DataCenter>(dir, did, "data center").await?;
        dns.push(dc.dn(dir.layout())?);
    }
    let dn = user.dn(dir.layout())?;
    let entry = dir.read(&dn, &["objectClass"]).await?;
    let mut changes = Vec::new();
    if !entry.has_class("dirbrokerUser") {
        changes.push(Change::Add(b"objectClass".to_vec(), [b"dirbrokerUser".to_vec()].into_iter().collect()));
    }
    let values = dns.iter().map(|d| d.as_str().as_bytes().to_vec()).collect();
    changes.push(Change::Replace(b"dirbrokerOtpVerifier".to_vec(), values));
    dir.modify(&dn, changes).await?;
    user.otp_verifiers = dns;
    Ok(user)
}
