//! Pre-authentication (our addition; Kerberos's PA-ENC-TIMESTAMP plays this
//! role in RFC 4120 §5.2.7.2). The broker never learns pw, so the client
//! proves knowledge of it with a Schnorr proof in the group, bound to the
//! client, the service asked for, a timestamp and a nonce:
//!
//! ```text
//! R = g^k                      k ∈R [1, q−1] (full length: a short k would
//!                              leak pw through lattice attacks on s)
//! e = H(domain ‖ P_c ‖ ID_c ‖ R ‖ timestamp ‖ nonce ‖ service)   (256 bits)
//! s = k + e·pw mod q
//! broker: |now − timestamp| ≤ 300 s, (ID_c, nonce, timestamp) unseen (then
//!         remembered, valid or not), g^s == R · P_c^e
//! ```

use crate::group::Element;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::sso::error::SsoError;
use crate::sso::primitives::{Bytes, Lp, Scalar, decode_element, fixed, generator, group};
use crate::sso::replay::{MAX_SKEW, ReplayCache, check_skew};

/// Client → broker: proof of knowledge of pw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreAuthProof {
    /// ID_c.
    pub id_c: String,
    /// The service the client asks a ticket for (ID_k).
    pub service: String,
    /// Client clock (unix s).
    pub timestamp: i64,
    /// 16 random bytes.
    pub nonce: Bytes,
    /// R = g^k.
    pub r: Bytes,
    /// s = k + e·pw mod q, fixed width.
    pub s: Bytes,
}

fn challenge(
    p_c: &Element,
    id_c: &str,
    r: &[u8],
    timestamp: i64,
    nonce: &[u8],
    service: &str,
) -> Result<Scalar, SsoError> {
    let h = Lp::sso("pre-auth challenge")
        .part(p_c.as_bytes())
        .part(id_c.as_bytes())
        .part(r)
        .int(timestamp)
        .part(nonce)
        .part(service.as_bytes())
        .hash();
    Scalar::from_bytes_mod_q(&h).map_err(|_| SsoError::ProofInvalid)
}

/// Client: proves knowledge of pw (with P_c = g^pw) for `service`.
pub fn prove_pw<R: CryptoRng + ?Sized>(
    pw: &Scalar,
    p_c: &Element,
    id_c: &str,
    service: &str,
    now: i64,
    rng: &mut R,
) -> Result<PreAuthProof, SsoError> {
    let k = Scalar::random(rng);
    let r = k.public()?;
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let e = challenge(p_c, id_c, r.as_bytes(), now, &nonce, service)?;
    let s = k.add(&e.mul(pw));
    Ok(PreAuthProof {
        id_c: id_c.to_owned(),
        service: service.to_owned(),
        timestamp: now,
        nonce: Bytes(nonce.to_vec()),
        r: Bytes(r.to_bytes()),
        s: Bytes(s.to_fixed_bytes().to_vec()),
    })
}

/// The replay-cache key of a proof: (ID_c, nonce, timestamp).
pub fn replay_key(proof: &PreAuthProof) -> [u8; 32] {
    Lp::sso("pre-auth replay").part(proof.id_c.as_bytes()).part(proof.nonce.as_slice()).int(proof.timestamp).hash()
}

/// Broker, before any group operation: the skew and the widths of the
/// nonce and of s. Cheap, so a request that fails them costs nothing.
pub fn check_proof_shape(proof: &PreAuthProof, now: i64) -> Result<(), SsoError> {
    check_skew(proof.timestamp, now)?;
    fixed::<16>(proof.nonce.as_slice(), "nonce")?;
    if proof.s.as_slice().len() != group().element_len() {
        return Err(SsoError::Malformed("s width"));
    }
    Ok(())
}

/// Broker: records the proof in the replay cache until its timestamp leaves
/// the skew window. Every proof enters it *before* it is verified, valid or
/// not, so the same bytes sent again (a captured login, or a bogus one
/// replayed to burn the broker's CPU) are refused without an exponentiation.
pub fn remember_proof(proof: &PreAuthProof, now: i64, cache: &mut ReplayCache) -> Result<(), SsoError> {
    Ok(cache.check_and_insert(replay_key(proof), proof.timestamp.saturating_add(MAX_SKEW), now)?)
}

/// Broker: the Schnorr equation g^s == R · P_c^e (two full-length
/// exponentiations). No clock and no cache: callers run it outside any lock,
/// after [`check_proof_shape`] and [`remember_proof`].
pub fn verify_schnorr(p_c: &Element, proof: &PreAuthProof) -> Result<(), SsoError> {
    let r = decode_element(&proof.r)?;
    let s = Scalar::from_canonical(proof.s.as_slice())?;
    let e = challenge(p_c, &proof.id_c, proof.r.as_slice(), proof.timestamp, proof.nonce.as_slice(), &proof.service)?;
    let lhs = group().exp(generator(), &s.to_exponent()?)?;
    let rhs = group().mul(&r, &group().exp(p_c, &e.to_exponent()?)?).map_err(|_| SsoError::ProofInvalid)?;
    if lhs != rhs {
        return Err(SsoError::ProofInvalid);
    }
    Ok(())
}

/// Broker, in one call: the shape, then the replay cache (every proof
/// enters it, verified or not), then the proof against the published P_c of
/// `proof.id_c`.
pub fn verify_pw_proof(p_c: &Element, proof: &PreAuthProof, now: i64, cache: &mut ReplayCache) -> Result<(), SsoError> {
    check_proof_shape(proof, now)?;
    remember_proof(proof, now, cache)?;
    verify_schnorr(p_c, proof)
}
