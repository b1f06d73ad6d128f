//! A Unix group: an RFC 2307 `posixGroup` under `ou=groups`, its members
//! named by `memberUid` (login names, not DNs).
//!
//! RFC 2307 rather than rfc2307bis (`groupOfNames`/`member` DNs): the nis
//! schema Debian's slapd ships (and the testbed loads) is RFC 2307, where
//! `posixGroup` is structural and cannot be combined with `groupOfNames`;
//! rfc2307bis needs a different schema on the server. SSSD reads `memberUid`
//! with its default `ldap_schema = rfc2307`.

use crate::directory::Result;

/// A posixGroup entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `cn`, the group name.
    pub name: String,
    pub gid_number: u32,
    /// `memberUid` values: the uids of supplementary members, sorted.
    pub members: Vec<String>,
    pub description: Option<String>,
}

impl Group {
    /// A new group with no members; the name must be a POSIX group name.
    pub fn new(name: &str, gid_number: u32) -> Result<Group> {
        crate::model::posix_name::check("group name", name)?;
        Ok(Group { name: name.to_string(), gid_number, members: Vec::new(), description: None })
    }
}
