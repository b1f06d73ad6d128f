//! A Kerberized service: a `dirbrokerService` entry under `ou=services`.

use time::OffsetDateTime;

use super::Level;
use crate::directory::Result;

/// A Kerberized service (seed 002): ID_k, P_k = g^r_k and T_k.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub endpoint: Option<String>,
    pub public_value: Option<Vec<u8>>,
    pub public_value_time: Option<OffsetDateTime>,
    pub min_level: Option<Level>,
    /// Whether the broker issues tickets for it to anonymous users (paper
    /// §5); off unless the service was added with `--allow-anonymous`.
    pub allow_anonymous: bool,
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
            allow_anonymous: false,
            disabled: false,
        })
    }
}
