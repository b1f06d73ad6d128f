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

#[cfg(test)]
mod tests {
    use super::*;

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
