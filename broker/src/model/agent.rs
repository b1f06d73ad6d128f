//! An agent service (AMS or ANS): a `dirbrokerAgent` + `pkiUser` entry under `ou=agents`.

use super::{AttrsBuilder, DirEntry, certificate, flag, owned};
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

/// Which agent service (seed 002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    /// Agent Management System: creates and manages mobile agents.
    Ams,
    /// Agent Name Server: holds authority information, signs user levels.
    Ans,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Ams => "ams",
            AgentRole::Ans => "ans",
        }
    }
}

/// An agent service with its public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub role: AgentRole,
    pub endpoint: Option<String>,
    /// Ed25519 public key (32 bytes).
    pub signing_key: Option<Vec<u8>>,
    /// X25519 public key (32 bytes).
    pub encryption_key: Option<Vec<u8>>,
    pub certificate: Option<Vec<u8>>,
    pub disabled: bool,
}

impl Agent {
    pub fn new(name: &str, role: AgentRole) -> Result<Agent> {
        crate::directory::dn::check_value("agent name", name)?;
        Ok(Agent {
            name: name.to_string(),
            role,
            endpoint: None,
            signing_key: None,
            encryption_key: None,
            certificate: None,
            disabled: false,
        })
    }
}

impl DirEntry for Agent {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerAgent", "pkiUser"];
    const KIND_CLASS: &'static str = "dirbrokerAgent";
    const RDN_ATTR: &'static str = "cn";

    fn container(layout: &Layout) -> &Dn {
        &layout.agents
    }
    fn rdn_value(&self) -> &str {
        &self.name
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("cn", &self.name);
        b.str("dirbrokerAgentRole", self.role.as_str());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerSigningKey", self.signing_key.as_deref());
        b.opt_bytes("dirbrokerEncryptionKey", self.encryption_key.as_deref());
        b.opt_bytes("userCertificate;binary", self.certificate.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Agent> {
        let role_text = e.required_str("dirbrokerAgentRole")?;
        let role = match role_text.to_ascii_lowercase().as_str() {
            "ams" => AgentRole::Ams,
            "ans" => AgentRole::Ans,
            other => {
                return Err(DirError::MalformedEntry {
                    dn: e.dn.to_string(),
                    attr: "dirbrokerAgentRole".into(),
                    reason: format!("{other:?} is not ams or ans"),
                });
            }
        };
        Ok(Agent {
            name: e.dn.first_rdn().map(|(_, v)| v).unwrap_or_default(),
            role,
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            signing_key: e.bytes("dirbrokerSigningKey")?.map(<[u8]>::to_vec),
            encryption_key: e.bytes("dirbrokerEncryptionKey")?.map(<[u8]>::to_vec),
            certificate: certificate(e)?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
