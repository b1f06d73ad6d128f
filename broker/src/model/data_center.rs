//! A data center: a `dirbrokerDataCenter` + `pkiUser` entry under `ou=datacenters`.

use super::{AttrsBuilder, DirEntry, certificate, flag, owned};
use crate::directory::{Attrs, Dn, Entry, Layout, Result};

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

impl DirEntry for DataCenter {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerDataCenter", "pkiUser"];
    const KIND_CLASS: &'static str = "dirbrokerDataCenter";
    const RDN_ATTR: &'static str = "dirbrokerDcId";

    fn container(layout: &Layout) -> &Dn {
        &layout.datacenters
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerDcId", &self.id);
        b.opt_str("cn", self.name.as_deref());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("userCertificate;binary", self.certificate.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<DataCenter> {
        Ok(DataCenter {
            id: e.required_str("dirbrokerDcId")?.to_string(),
            name: e.strs("cn")?.first().map(|s| s.to_string()),
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            certificate: certificate(e)?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
