//! A Kerberized service: a `dirbrokerService` entry under `ou=services`.

use time::OffsetDateTime;

use super::{AttrsBuilder, DirEntry, UserLevel, flag, owned};
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

/// A Kerberized service (seed 002): ID_k, P_k = g^r_k and T_k.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub endpoint: Option<String>,
    pub public_value: Option<Vec<u8>>,
    pub public_value_time: Option<OffsetDateTime>,
    pub min_level: Option<UserLevel>,
    pub disabled: bool,
}

impl Service {
    pub fn new(id: &str) -> Result<Service> {
        crate::directory::dn::check_value("service id", id)?;
        Ok(Service {
            id: id.to_string(),
            endpoint: None,
            public_value: None,
            public_value_time: None,
            min_level: None,
            disabled: false,
        })
    }
}

impl DirEntry for Service {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerService"];
    const KIND_CLASS: &'static str = "dirbrokerService";
    const RDN_ATTR: &'static str = "dirbrokerServiceId";

    fn container(layout: &Layout) -> &Dn {
        &layout.services
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerServiceId", &self.id);
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerPublicValue", self.public_value.as_deref());
        b.opt_time("dirbrokerPublicValueTime", self.public_value_time);
        b.opt_int("dirbrokerMinLevel", self.min_level.map(UserLevel::number));
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Service> {
        let min_level = match e.int("dirbrokerMinLevel")? {
            None => None,
            Some(n) => Some(UserLevel::from_number(n).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerMinLevel".into(),
                reason: format!("{n} is not a level from 1 to 4"),
            })?),
        };
        Ok(Service {
            id: e.required_str("dirbrokerServiceId")?.to_string(),
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            public_value: e.bytes("dirbrokerPublicValue")?.map(<[u8]>::to_vec),
            public_value_time: e.time("dirbrokerPublicValueTime")?,
            min_level,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
