//! The operations behind the administration commands, as library calls the
//! CLI, the HTTPS service and the tests can all use: each takes the
//! directory, the keyring and a plain description of what to do, and leaves
//! nothing half-done (no bundle without the directory change, no directory
//! change without its bundle).
//!
//! - [`psk`]: pre-shared keys (K1 admin ↔ data center, SPEKE passwords
//!   between data centers): create, rotate;
//! - [`ps`]: physical servers and their TOTP secrets: add, rotate;
//! - [`ca`], [`dc`]: publishing the CA, the CRL, data centers' certificates;
//! - [`secrets`]: re-sealing every secret after a master-key rotation;
//! - [`users`]: account state (disable, enable);
//! - [`posix`]: POSIX ids from the directory's counter, POSIX accounts, groups;
//! - [`bundle`]: the 0600 files a secret is handed out in, once.

pub mod bundle;
pub mod ca;
pub mod cluster;
pub mod dc;
pub mod otp;
pub mod posix;
pub mod ps;
pub mod psk;
pub mod secrets;
pub mod users;

use dirbroker_proto::fault::Fault;

use crate::directory::{DirError, Directory};
use crate::model::{DirEntry, User};

/// Why an administrative operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// What was asked does not make sense (fix the request).
    #[error("{0}")]
    Usage(String),
    /// Refused: something named does not exist or is in the wrong state.
    #[error("{0}")]
    Refused(String),
    /// The directory said no or is unavailable.
    #[error(transparent)]
    Directory(#[from] DirError),
    /// Our side failed: randomness, sealing, writing a bundle.
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            AdminError::Usage(_) => Fault::Malformed,
            AdminError::Refused(_) => Fault::User,
            AdminError::Directory(e) => e.fault(),
            AdminError::Failed(_) => Fault::Local,
        }
    }
}

/// The entry of kind `T` named `id`; a missing one is "no WHAT ID".
pub async fn load_named<T: DirEntry>(dir: &Directory, id: &str, what: &str) -> Result<T, AdminError> {
    match dir.load::<T>(id).await {
        Ok(v) => Ok(v),
        Err(DirError::NotFound { .. }) => Err(AdminError::Refused(format!("no {what} {id:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// The user with this uid; a missing one is "no user with uid …".
pub async fn existing_user(dir: &Directory, uid: &str) -> Result<User, AdminError> {
    dir.find_user(uid).await?.ok_or_else(|| AdminError::Refused(format!("no user with uid {uid:?}")))
}

/// 32 fresh random bytes.
fn random_key() -> Result<zeroize::Zeroizing<Vec<u8>>, AdminError> {
    let mut key = zeroize::Zeroizing::new(vec![0u8; 32]);
    crate::clock::fill_random(&mut key).map_err(|_| AdminError::Failed("no randomness".into()))?;
    Ok(key)
}
