//! A pre-shared key: a `dirbrokerPreSharedKey` entry under `ou=psk`.

use time::OffsetDateTime;

use super::Sealed;
use crate::directory::Dn;

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
