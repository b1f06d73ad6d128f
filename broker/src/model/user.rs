//! A person: an `inetOrgPerson` + `ldapPublicKey` + `dirbrokerUser` (+ `posixAccount`) entry under `ou=people`.

use time::OffsetDateTime;

use super::Sealed;
use crate::directory::Result;

/// SSO user level (seed 002): what a user may do at Kerberized services;
/// the protocol's own type, so the directory and the tickets agree.
pub use dirbroker_proto::sso::level::Level;

/// POSIX account data, when the user has a Unix login.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Posix {
    pub uid_number: u32,
    pub gid_number: u32,
    pub home_directory: String,
    pub login_shell: Option<String>,
}

/// A person (or a broker-assigned anonymous identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: String,
    /// Full name (`cn`).
    pub cn: String,
    /// Surname (`sn`, required by inetOrgPerson).
    pub sn: String,
    pub mail: Option<String>,
    pub level: Level,
    pub anonymous: bool,
    pub disabled: bool,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub posix: Option<Posix>,
    /// `sshPublicKey` values, authorized_keys lines.
    pub ssh_public_keys: Vec<String>,
    /// `dirbrokerAllowedFrom`: hosts a login may come from.
    pub allowed_from: Vec<String>,
    /// P_c = g^pw (seed 002) and T_c.
    pub public_value: Option<Vec<u8>>,
    pub public_value_time: Option<OffsetDateTime>,
    pub password_kdf: Option<Vec<u8>>,
    pub keystroke_hardening: bool,
    pub sealed_ssh_private_key: Option<Sealed>,
    /// `dirbrokerOtpVerifier`: the data centers that may verify this user's
    /// OTP codes for a migration; empty: any enabled data center.
    pub otp_verifiers: Vec<crate::directory::Dn>,
}

impl User {
    /// A new normal-level user; `uid` and `cn` are checked as DN/attribute input.
    pub fn new(uid: &str, cn: &str) -> Result<User> {
        crate::directory::dn::check_value("uid", uid)?;
        crate::directory::dn::check_value("name", cn)?;
        let sn = cn.rsplit(' ').next().filter(|s| !s.is_empty()).unwrap_or(cn).to_string();
        Ok(User {
            uid: uid.to_string(),
            cn: cn.to_string(),
            sn,
            mail: None,
            level: Level::Normal,
            anonymous: false,
            disabled: false,
            not_before: None,
            not_after: None,
            posix: None,
            ssh_public_keys: Vec::new(),
            allowed_from: Vec::new(),
            public_value: None,
            public_value_time: None,
            password_kdf: None,
            keystroke_hardening: false,
            sealed_ssh_private_key: None,
            otp_verifiers: Vec::new(),
        })
    }
}
