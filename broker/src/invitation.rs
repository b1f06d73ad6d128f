//! One-time SSO registration invitations (the enrolment proof of
//! `POST /v1/sso/register`; docs/protocols/sso-registration.md).
//!
//! An admin runs `dirbroker user invite USER`: a random code is shown once
//! (or written 0600), and only its hash, the granted level and the expiry go
//! to LDAP, in the user's single-valued `dirbrokerInvitation`:
//!
//! ```text
//!  v1;level=N;expires=UNIX;sha256=B64URL(SHA-256("dirbroker-invitation-v1" ‖ 0 ‖ uid ‖ 0 ‖ code))
//! ```
//!
//! The broker consumes it in the same modify that publishes P_c, by deleting
//! this exact value: a second use, or a racing broker replica, finds it gone
//! (noSuchAttribute) and writes nothing, as OTP counters do.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The attribute on the user entry.
pub const ATTR: &str = "dirbrokerInvitation";
/// What every code starts with (so a pasted value is recognisable).
pub const CODE_PREFIX: &str = "dbinv1-";

/// A parsed `dirbrokerInvitation` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The SSO level the registration is granted (1–4).
    pub level: u8,
    /// Unix time after which the code is refused.
    pub expires: i64,
    hash: [u8; 32],
}

fn hash(uid: &str, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"dirbroker-invitation-v1\0");
    h.update(uid.as_bytes());
    h.update(b"\0");
    h.update(code.trim().as_bytes());
    h.finalize().into()
}

impl Invitation {
    /// A fresh invitation for `uid` and its code (shown once, never stored).
    pub fn new(uid: &str, level: u8, expires: i64) -> Result<(Invitation, Zeroizing<String>), String> {
        if !(1..=4).contains(&level) {
            return Err("the level must be 1 to 4".into());
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        crate::clock::fill_random(raw.as_mut_slice()).map_err(|_| "no randomness".to_string())?;
        let code = Zeroizing::new(format!("{CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw.as_slice())));
        Ok((Invitation { level, expires, hash: hash(uid, &code) }, code))
    }

    /// The attribute value.
    pub fn to_value(&self) -> Vec<u8> {
        format!("v1;level={};expires={};sha256={}", self.level, self.expires, URL_SAFE_NO_PAD.encode(self.hash))
            .into_bytes()
    }

    /// Parses an attribute value; `None` for anything else.
    pub fn parse(value: &[u8]) -> Option<Invitation> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split(';');
        if parts.next()? != "v1" {
            return None;
        }
        let level = parts.next()?.strip_prefix("level=")?.parse::<u8>().ok().filter(|l| (1..=4).contains(l))?;
        let expires = parts.next()?.strip_prefix("expires=")?.parse::<i64>().ok()?;
        let digest = URL_SAFE_NO_PAD.decode(parts.next()?.strip_prefix("sha256=")?).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Invitation { level, expires, hash: <[u8; 32]>::try_from(digest.as_slice()).ok()? })
    }

    /// True if `code` is this invitation's code for `uid` (constant time).
    pub fn matches(&self, uid: &str, code: &str) -> bool {
        bool::from(self.hash.ct_eq(&hash(uid, code)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_match() {
        let (inv, code) = Invitation::new("alice", 3, 1_900_000_000).unwrap();
        assert!(code.starts_with(CODE_PREFIX));
        let parsed = Invitation::parse(&inv.to_value()).unwrap();
        assert_eq!(parsed, inv);
        assert!(parsed.matches("alice", &code));
        assert!(parsed.matches("alice", &format!("{}\n", code.as_str())));
        assert!(!parsed.matches("bob", &code));
        assert!(!parsed.matches("alice", "dbinv1-x"));
        assert!(Invitation::parse(b"v2;level=2;expires=1;sha256=AA").is_none());
        assert!(Invitation::parse(b"v1;level=9;expires=1;sha256=AA").is_none());
        assert!(Invitation::new("a", 0, 1).is_err());
        assert!(!String::from_utf8(inv.to_value()).unwrap().contains(code.as_str()));
    }
}
