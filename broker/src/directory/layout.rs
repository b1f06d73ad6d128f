//! Where each kind of entry lives under the base DN (see docs/directory.md).

use super::dn::Dn;
use super::error::Result;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub base: Dn,
    /// Users (inetOrgPerson + ldapPublicKey + dirbrokerUser).
    pub people: Dn,
    pub groups: Dn,
    /// Hosts (device + ipHost + ldapPublicKey + dirbrokerHost).
    pub hosts: Dn,
    /// OTP tokens.
    pub otp: Dn,
    pub datacenters: Dn,
    /// Physical servers.
    pub servers: Dn,
    /// Kerberized services.
    pub services: Dn,
    /// AMS and ANS.
    pub agents: Dn,
    /// Pre-shared keys.
    pub psk: Dn,
    /// CA certificate and CRL.
    pub pki: Dn,
    /// Service identities: the broker, the node reader.
    pub system: Dn,
}

impl Layout {
    pub fn new(base: Dn) -> Result<Layout> {
        let ou = |name| base.child("ou", name);
        Ok(Layout {
            people: ou("people")?,
            groups: ou("groups")?,
            hosts: ou("hosts")?,
            otp: ou("otp")?,
            datacenters: ou("datacenters")?,
            servers: ou("servers")?,
            services: ou("services")?,
            agents: ou("agents")?,
            psk: ou("psk")?,
            pki: ou("pki")?,
            system: ou("system")?,
            base,
        })
    }

    /// Every organizational unit, in creation order.
    pub fn units(&self) -> [&Dn; 11] {
        [
            &self.people,
            &self.groups,
            &self.hosts,
            &self.otp,
            &self.datacenters,
            &self.servers,
            &self.services,
            &self.agents,
            &self.psk,
            &self.pki,
            &self.system,
        ]
    }

    /// The broker's service identity.
    pub fn broker_dn(&self) -> Result<Dn> {
        self.system.child("cn", "broker")
    }

    /// The read-only identity nodes use for SSH key lookups.
    pub fn node_reader_dn(&self) -> Result<Dn> {
        self.system.child("cn", "node-reader")
    }
}
