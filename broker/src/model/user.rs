//! A person: an `inetOrgPerson` + `ldapPublicKey` + `dirbrokerUser` (+ `posixAccount`) entry under `ou=people`.

use time::OffsetDateTime;

use super::{AttrsBuilder, DirEntry, Sealed, flag, owned, sealed, small_int, strings};
use crate::directory::values::int_value;
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

/// SSO user level (seed 002): what a user may do at Kerberized services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum UserLevel {
    /// 1: temporary user, read-only.
    Temporary = 1,
    /// 2: normal user.
    Normal = 2,
    /// 3: every service but administration.
    Power = 3,
    /// 4: administrator.
    Admin = 4,
}

impl UserLevel {
    pub fn from_number(n: i64) -> Option<UserLevel> {
        match n {
            1 => Some(UserLevel::Temporary),
            2 => Some(UserLevel::Normal),
            3 => Some(UserLevel::Power),
            4 => Some(UserLevel::Admin),
            _ => None,
        }
    }

    pub fn number(self) -> i64 {
        self as i64
    }
}

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
    pub level: UserLevel,
    pub anonymous: bool,
    pub disabled: bool,
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
            level: UserLevel::Normal,
            anonymous: false,
            disabled: false,
            not_after: None,
            posix: None,
            ssh_public_keys: Vec::new(),
            allowed_from: Vec::new(),
            public_value: None,
            public_value_time: None,
            password_kdf: None,
            keystroke_hardening: false,
            sealed_ssh_private_key: None,
        })
    }
}

impl DirEntry for User {
    const OBJECT_CLASSES: &'static [&'static str] = &["inetOrgPerson", "ldapPublicKey", "dirbrokerUser"];
    const KIND_CLASS: &'static str = "inetOrgPerson";
    const RDN_ATTR: &'static str = "uid";

    fn container(layout: &Layout) -> &Dn {
        &layout.people
    }
    fn rdn_value(&self) -> &str {
        &self.uid
    }

    fn to_attrs(&self) -> Attrs {
        let mut classes = Self::OBJECT_CLASSES.to_vec();
        if self.posix.is_some() {
            classes.push("posixAccount");
        }
        let mut b = AttrsBuilder::classes(&classes);
        b.str("uid", &self.uid);
        b.str("cn", &self.cn);
        b.str("sn", &self.sn);
        b.opt_str("mail", self.mail.as_deref());
        b.bytes("dirbrokerUserLevel", int_value(self.level.number()));
        b.flag("dirbrokerAnonymous", self.anonymous);
        b.flag("dirbrokerDisabled", self.disabled);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        if let Some(p) = &self.posix {
            b.bytes("uidNumber", int_value(p.uid_number.into()));
            b.bytes("gidNumber", int_value(p.gid_number.into()));
            b.str("homeDirectory", &p.home_directory);
            b.opt_str("loginShell", p.login_shell.as_deref());
        }
        b.strs("sshPublicKey", &self.ssh_public_keys);
        b.strs("dirbrokerAllowedFrom", &self.allowed_from);
        b.opt_bytes("dirbrokerPublicValue", self.public_value.as_deref());
        b.opt_time("dirbrokerPublicValueTime", self.public_value_time);
        b.opt_bytes("dirbrokerPasswordKdf", self.password_kdf.as_deref());
        b.flag("dirbrokerKeystrokeHardening", self.keystroke_hardening);
        b.opt_bytes("dirbrokerSealedSshPrivateKey", self.sealed_ssh_private_key.as_ref().map(|s| s.0.as_slice()));
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<User> {
        let level = match e.int("dirbrokerUserLevel")? {
            None => UserLevel::Normal,
            Some(n) => UserLevel::from_number(n).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerUserLevel".into(),
                reason: format!("{n} is not a level from 1 to 4"),
            })?,
        };
        let posix = if e.has_class("posixAccount") {
            Some(Posix {
                uid_number: small_int(e, "uidNumber", "a uid number")?.unwrap_or_default(),
                gid_number: small_int(e, "gidNumber", "a gid number")?.unwrap_or_default(),
                home_directory: e.required_str("homeDirectory")?.to_string(),
                login_shell: owned(e.str("loginShell")?),
            })
        } else {
            None
        };
        // cn and sn may hold several values in entries other tools wrote; take the first.
        let first = |attr: &str| -> Result<String> {
            e.strs(attr)?.first().map(|s| s.to_string()).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: attr.to_string(),
                reason: "missing".into(),
            })
        };
        let uid = first("uid")?;
        Ok(User {
            cn: first("cn").unwrap_or_else(|_| uid.clone()),
            uid,
            sn: first("sn").unwrap_or_default(),
            mail: e.strs("mail")?.first().map(|s| s.to_string()),
            level,
            anonymous: flag(e, "dirbrokerAnonymous")?,
            disabled: flag(e, "dirbrokerDisabled")?,
            not_after: e.time("dirbrokerNotAfter")?,
            posix,
            ssh_public_keys: strings(e, "sshPublicKey")?,
            allowed_from: strings(e, "dirbrokerAllowedFrom")?,
            public_value: e.bytes("dirbrokerPublicValue")?.map(<[u8]>::to_vec),
            public_value_time: e.time("dirbrokerPublicValueTime")?,
            password_kdf: e.bytes("dirbrokerPasswordKdf")?.map(<[u8]>::to_vec),
            keystroke_hardening: flag(e, "dirbrokerKeystrokeHardening")?,
            sealed_ssh_private_key: sealed(e, "dirbrokerSealedSshPrivateKey")?,
        })
    }
}
