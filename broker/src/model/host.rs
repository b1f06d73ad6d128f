//! A host: a `device` + `ipHost` + `ldapPublicKey` + `dirbrokerHost` entry under `ou=hosts`.

use crate::directory::Result;

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
