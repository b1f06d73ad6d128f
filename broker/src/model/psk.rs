//! A pre-shared key: a `dirbrokerPreSharedKey` entry under `ou=psk`.

use time::OffsetDateTime;

use super::{AttrsBuilder, DirEntry, Sealed, flag, sealed};
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

/// A pre-shared key between parties (the paper's K1, admin console ↔ data center).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreSharedKey {
    pub id: String,
    pub parties: Vec<Dn>,
    pub secret: Sealed,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub disabled: bool,
}

impl DirEntry for PreSharedKey {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerPreSharedKey"];
    const KIND_CLASS: &'static str = "dirbrokerPreSharedKey";
    const RDN_ATTR: &'static str = "dirbrokerPskId";

    fn container(layout: &Layout) -> &Dn {
        &layout.psk
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerPskId", &self.id);
        b.dns("dirbrokerPskParty", &self.parties);
        b.bytes("dirbrokerPskSecret", self.secret.0.clone());
        b.opt_time("dirbrokerNotBefore", self.not_before);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<PreSharedKey> {
        Ok(PreSharedKey {
            id: e.required_str("dirbrokerPskId")?.to_string(),
            parties: {
                let mut p = e.dns("dirbrokerPskParty")?;
                p.sort();
                p
            },
            secret: sealed(e, "dirbrokerPskSecret")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerPskSecret".into(),
                reason: "missing".into(),
            })?,
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}
