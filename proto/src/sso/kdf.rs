//! pw = Argon2id(password or keystroke-hardened password, salt) mod q.
//!
//! The paper takes pw as "the client's unique secret" with no derivation.
//! Because P_c = g^pw is *published* (stage 2), anyone can test password
//! guesses offline against P_c; a slow, salted, memory-hard KDF is the only
//! thing standing between a published P_c and the password, so it is not
//! optional. Salt and parameters are public and stored by the broker with
//! P_c (see [`crate::sso::registration::Published`]).
//!
//! Output: |q| + 128 bits (272 bytes) of Argon2id output reduced mod q, so pw
//! is within 2^-128 of uniform over Z_q given the Argon2 output.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::sso::error::SsoError;
use crate::sso::primitives::{Scalar, group};

/// Argon2id cost parameters (RFC 9106 §3.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The production setting: 64 MiB, 3 passes, 1 lane (RFC 9106 §4's
    /// second recommended option uses 64 MiB / t=3; one lane because the
    /// RustCrypto implementation runs lanes sequentially without its
    /// `parallel` feature, and the broker never runs this KDF — clients do).
    pub const INTERACTIVE: KdfParams = KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };

    /// The floor a client accepts from a broker (OWASP's Argon2id minimum,
    /// 19 MiB / t=2): a hostile broker must not talk a client into a cheap
    /// KDF that makes P_c easy to attack.
    pub const MINIMUM: KdfParams = KdfParams { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 };

    /// Cheap parameters for tests only (8 KiB, 1 pass). Never in production.
    pub const INSECURE_TEST: KdfParams = KdfParams { m_cost_kib: 8, t_cost: 1, p_cost: 1 };

    /// True if these parameters are at least [`KdfParams::MINIMUM`].
    pub fn meets_minimum(&self) -> bool {
        self.m_cost_kib >= Self::MINIMUM.m_cost_kib && self.t_cost >= Self::MINIMUM.t_cost && self.p_cost >= 1
    }
}

/// Salt length the client draws at registration.
pub const SALT_LEN: usize = 16;

/// Bytes of Argon2 output reduced mod q.
pub const PW_OUTPUT_LEN: usize = 272;

/// Derives pw ∈ Z_q from the password (or the bytes of a
/// `crate::keystroke::HardenedPassword`).
pub fn derive_pw(password_or_hardened: &[u8], salt: &[u8], params: &KdfParams) -> Result<Scalar, SsoError> {
    let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(PW_OUTPUT_LEN))
        .map_err(|_| SsoError::Kdf("Argon2 parameters out of range"))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new(vec![0u8; PW_OUTPUT_LEN]);
    a.hash_password_into(password_or_hardened, salt, &mut out)
        .map_err(|_| SsoError::Kdf("Argon2 refused the input"))?;
    // `group()` is group 14: q has 2047 bits, so 272 bytes are |q| + 128 bits.
    let _ = group();
    Scalar::from_bytes_mod_q(&out).map_err(|_| SsoError::Kdf("derived pw is zero mod q"))
}

/// The text form stored on the user entry (`dirbrokerPasswordKdf`) and
/// handed to clients: `argon2id$m=65536,t=3,p=1$<base64url salt>`.
pub fn encode_record(salt: &[u8], params: &KdfParams) -> String {
    format!(
        "argon2id$m={},t={},p={}${}",
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        crate::sso::primitives::b64(salt)
    )
}

/// Parses [`encode_record`]'s form.
pub fn parse_record(s: &str) -> Result<(Vec<u8>, KdfParams), SsoError> {
    let bad = SsoError::Malformed("KDF record (want argon2id$m=…,t=…,p=…$salt)");
    let mut it = s.trim().split('$');
    let (Some("argon2id"), Some(params), Some(salt), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad);
    };
    let mut p = KdfParams { m_cost_kib: 0, t_cost: 0, p_cost: 0 };
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=').ok_or(bad.clone())?;
        let v: u32 = v.parse().map_err(|_| bad.clone())?;
        match k {
            "m" => p.m_cost_kib = v,
            "t" => p.t_cost = v,
            "p" => p.p_cost = v,
            _ => return Err(bad),
        }
    }
    if p.m_cost_kib == 0 || p.t_cost == 0 || p.p_cost == 0 {
        return Err(bad);
    }
    Ok((crate::sso::primitives::unb64(salt)?, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let r = encode_record(b"0123456789abcdef", &KdfParams::INTERACTIVE);
        assert!(r.starts_with("argon2id$m=65536,t=3,p=1$"));
        assert_eq!(parse_record(&r).unwrap(), (b"0123456789abcdef".to_vec(), KdfParams::INTERACTIVE));
        assert!(parse_record("argon2id$m=1,t=1$x$y").is_err());
        assert!(parse_record("scrypt$m=1,t=1,p=1$AAAA").is_err());
    }

    #[test]
    fn derive_is_deterministic_and_salted() {
        let p = KdfParams::INSECURE_TEST;
        let a = derive_pw(b"pw", b"saltsaltsalt", &p).unwrap();
        let b = derive_pw(b"pw", b"saltsaltsalt", &p).unwrap();
        let c = derive_pw(b"pw", b"saltsaltsalu", &p).unwrap();
        assert_eq!(a.to_fixed_bytes(), b.to_fixed_bytes());
        assert_ne!(a.to_fixed_bytes(), c.to_fixed_bytes());
        assert_eq!(derive_pw(b"pw", b"short", &p).unwrap_err(), SsoError::Kdf("Argon2 refused the input"));
        assert!(!p.meets_minimum() && KdfParams::INTERACTIVE.meets_minimum());
    }
}
