//! A physical server: a `dirbrokerPhysicalServer` entry under `ou=servers`.

use super::{AttrsBuilder, DirEntry, Sealed, flag, owned, sealed, small_int};
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

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

impl DirEntry for PhysicalServer {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerPhysicalServer"];
    const KIND_CLASS: &'static str = "dirbrokerPhysicalServer";
    const RDN_ATTR: &'static str = "dirbrokerServerId";

    fn container(layout: &Layout) -> &Dn {
        &layout.servers
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerServerId", &self.id);
        b.str("dirbrokerDataCenter", self.datacenter.as_str());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerServerTotpSecret", self.totp_secret.as_ref().map(|s| s.0.as_slice()));
        b.opt_str("dirbrokerOtpAlgorithm", self.algorithm.as_deref());
        b.opt_int("dirbrokerOtpDigits", self.digits.map(i64::from));
        b.opt_int("dirbrokerOtpPeriod", self.period.map(i64::from));
        b.opt_int("dirbrokerTotpWatermark", self.totp_watermark);
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<PhysicalServer> {
        Ok(PhysicalServer {
            id: e.required_str("dirbrokerServerId")?.to_string(),
            datacenter: e.dn_value("dirbrokerDataCenter")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerDataCenter".into(),
                reason: "missing".into(),
            })?,
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            totp_secret: sealed(e, "dirbrokerServerTotpSecret")?,
            algorithm: owned(e.str("dirbrokerOtpAlgorithm")?),
            digits: small_int(e, "dirbrokerOtpDigits", "a digit count")?,
            period: small_int(e, "dirbrokerOtpPeriod", "a period")?,
            totp_watermark: e.int("dirbrokerTotpWatermark")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
