//! An agent service (AMS or ANS): a `dirbrokerAgent` + `pkiUser` entry under `ou=agents`.

use crate::directory::Result;

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
