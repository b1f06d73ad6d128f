//! A data center: a `dirbrokerDataCenter` + `pkiUser` entry under `ou=datacenters`.

use crate::directory::Result;

/// A data center (seed 000/001): its DID, endpoint and X.509 certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataCenter {
    pub id: String,
    pub name: Option<String>,
    pub endpoint: Option<String>,
    /// DER certificate issued by the broker CA (`userCertificate;binary`).
    pub certificate: Option<Vec<u8>>,
    pub disabled: bool,
}

impl DataCenter {
    pub fn new(id: &str) -> Result<DataCenter> {
        crate::directory::dn::check_value("data-center id", id)?;
        Ok(DataCenter { id: id.to_string(), name: None, endpoint: None, certificate: None, disabled: false })
    }
}
