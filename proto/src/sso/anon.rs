//! Anonymous users (paper §5: "a broker-assigned unique ID plus the user's
//! public information").
//!
//! ID = "anon-" ‖ base32(HMAC-SHA256(broker_secret, public info))[..32 chars],
//! at level 1. Deterministic for the same public info (the user keeps the
//! same pseudonym), and unlinkable to that info by anyone without the broker
//! secret (HMAC is a PRF). 160 bits of the tag are kept.

use crate::sso::error::SsoError;
use crate::sso::level::Level;
use crate::sso::primitives::{Lp, base32_lower, hmac_sha256};

/// What every pseudonym starts with.
pub const PREFIX: &str = "anon-";

/// Whether `id` has the form of a broker-assigned pseudonym (a directory
/// entry of that name, if any, still decides: see the ticket route).
pub fn is_pseudonym(id: &str) -> bool {
    id.starts_with(PREFIX)
}

/// A pseudonymous identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousIdentity {
    /// "anon-…".
    pub id: String,
    /// Always [`Level::Temporary`].
    pub level: Level,
}

/// Assigns the pseudonym for `public_info` (e.g. the user's public key or
/// the P_c they present).
pub fn anonymous_id(broker_secret: &[u8; 32], public_info: &[u8]) -> Result<AnonymousIdentity, SsoError> {
    let tag = hmac_sha256(broker_secret, Lp::sso("anonymous id").part(public_info).bytes())?;
    let short = tag.get(..20).ok_or(SsoError::Internal("tag length"))?;
    Ok(AnonymousIdentity { id: format!("{PREFIX}{}", base32_lower(short)), level: Level::Temporary })
}
