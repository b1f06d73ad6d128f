//! A host: a `device` + `ipHost` + `ldapPublicKey` + `dirbrokerHost` entry under `ou=hosts`.

use super::{AttrsBuilder, DirEntry, flag, small_int, strings};
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

/// A host: names, addresses, host keys and who may log in from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Primary name (the RDN `cn`).
    pub name: String,
    /// Further names (more `cn` values), e.g. the FQDN.
    pub aliases: Vec<String>,
    /// `ipHostNumber` values (ipHost requires one).
    pub addresses: Vec<String>,
    /// Host public keys (`sshPublicKey`).
    pub ssh_public_keys: Vec<String>,
    /// The paper's hosts.equiv: hosts trusted by this one.
    pub allowed_from: Vec<String>,
    pub ssh_port: Option<u16>,
    pub disabled: bool,
}

impl Host {
    pub fn new(name: &str, address: &str) -> Result<Host> {
        crate::directory::dn::check_value("host name", name)?;
        crate::directory::dn::check_value("address", address)?;
        Ok(Host {
            name: name.to_string(),
            aliases: Vec::new(),
            addresses: vec![address.to_string()],
            ssh_public_keys: Vec::new(),
            allowed_from: Vec::new(),
            ssh_port: None,
            disabled: false,
        })
    }
}

impl DirEntry for Host {
    const OBJECT_CLASSES: &'static [&'static str] = &["device", "ipHost", "ldapPublicKey", "dirbrokerHost"];
    const KIND_CLASS: &'static str = "ipHost";
    const RDN_ATTR: &'static str = "cn";

    fn container(layout: &Layout) -> &Dn {
        &layout.hosts
    }
    fn rdn_value(&self) -> &str {
        &self.name
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        let names: Vec<String> = std::iter::once(self.name.clone()).chain(self.aliases.iter().cloned()).collect();
        b.strs("cn", &names);
        b.strs("ipHostNumber", &self.addresses);
        b.strs("sshPublicKey", &self.ssh_public_keys);
        b.strs("dirbrokerAllowedFrom", &self.allowed_from);
        b.opt_int("dirbrokerSshPort", self.ssh_port.map(i64::from));
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Host> {
        let rdn_name = e.dn.first_rdn().map(|(_, v)| v);
        let names = strings(e, "cn")?;
        let name = rdn_name.or_else(|| names.first().cloned()).ok_or_else(|| DirError::MalformedEntry {
            dn: e.dn.to_string(),
            attr: "cn".into(),
            reason: "missing".into(),
        })?;
        Ok(Host {
            aliases: names.into_iter().filter(|n| !n.eq_ignore_ascii_case(&name)).collect(),
            name,
            addresses: strings(e, "ipHostNumber")?,
            ssh_public_keys: strings(e, "sshPublicKey")?,
            allowed_from: strings(e, "dirbrokerAllowedFrom")?,
            ssh_port: small_int(e, "dirbrokerSshPort", "a port")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
