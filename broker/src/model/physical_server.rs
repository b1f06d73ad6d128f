//! A physical server: a `dirbrokerPhysicalServer` entry under `ou=servers`.

use super::Sealed;
use crate::directory::{Dn, Result};

/// A physical server of a data center, with its sealed TOTP secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalServer {
    pub id: String,
    pub datacenter: Dn,
    pub endpoint: Option<String>,
    pub totp_secret: Option<Sealed>,
    pub algorithm: Option<String>,
    pub digits: Option<u8>,
    pub period: Option<u32>,
    pub totp_watermark: Option<i64>,
    pub disabled: bool,
}

impl PhysicalServer {
    pub fn new(id: &str, datacenter: Dn) -> Result<PhysicalServer> {
        crate::directory::dn::check_value("server id", id)?;
        Ok(PhysicalServer {
            id: id.to_string(),
            datacenter,
            endpoint: None,
            totp_secret: None,
            algorithm: None,
            digits: None,
            period: None,
            totp_watermark: None,
            disabled: false,
        })
    }
}
