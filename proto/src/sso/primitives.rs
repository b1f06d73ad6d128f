//! Building blocks shared by every stage: wire bytes, length-prefixed
//! hashing, exponent arithmetic mod q, the fixed generator, AEAD, ECIES
//! (X25519 + HKDF-SHA256 + AES-256-GCM) and Ed25519 key pairs.
//!
//! [`Scalar`] exists because `crate::group::Exponent` keeps its
//! value private and has no addition / multiplication mod q; the multiplicative
//! password split (pw2 = pw − pw1) and the Schnorr response (s = k + e·pw)
//! need both. It belongs in `group.rs` eventually.

use std::fmt;
use std::sync::LazyLock;

use crate::crypto::NONCE_LEN;
use crate::group::{Element, Exponent, Group};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use num_bigint::BigUint;
use num_traits::Zero;
use rand::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::sso::error::SsoError;

/// Domain prefix of every hash, KDF label and signature in this protocol.
pub const PROTOCOL: &str = "dirbroker-sso-v1";

/// The group: RFC 3526 group 14, its order-q subgroup.
pub fn group() -> &'static Group {
    Group::modp2048()
}

static GENERATOR: LazyLock<Element> =
    LazyLock::new(|| group().hash_to_element(b"dirbroker-sso-v1 generator", b"RFC 3526 group 14"));

/// The fixed generator g of the order-q subgroup, hashed to the group
/// (nothing up the sleeve; any non-identity subgroup element generates it).
pub fn generator() -> &'static Element {
    &GENERATOR
}

// ---------------------------------------------------------------------------
// Wire bytes
// ---------------------------------------------------------------------------

/// Bytes on the wire, serialized as unpadded base64url (RFC 4648 §5), the
/// JOSE convention.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Borrow the bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes[{}](", self.0.len())?;
        for b in self.0.iter().take(6) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        URL_SAFE_NO_PAD.decode(s.as_bytes()).map(Bytes).map_err(serde::de::Error::custom)
    }
}

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url.
pub fn unb64(s: &str) -> Result<Vec<u8>, SsoError> {
    URL_SAFE_NO_PAD.decode(s.as_bytes()).map_err(|_| SsoError::Malformed("base64url"))
}

/// Decodes and validates a group element from the wire.
pub fn decode_element(b: &Bytes) -> Result<Element, SsoError> {
    Ok(group().decode(b.as_slice())?)
}

/// A fixed-size array from wire bytes.
pub fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], SsoError> {
    <[u8; N]>::try_from(b).map_err(|_| SsoError::Malformed(what))
}

// ---------------------------------------------------------------------------
// Length-prefixed encoding and hashing
// ---------------------------------------------------------------------------

pub use crate::encoding::Lp;

impl Lp {
    /// Starts an encoding in the SSO protocol's domain: [`PROTOCOL`] and
    /// `label`, both length-prefixed.
    pub fn sso(label: &str) -> Self {
        Lp::domain(PROTOCOL, label)
    }

    /// SHA-256 of the encoding.
    pub fn hash(&self) -> [u8; 32] {
        sha256(self.bytes())
    }
}

/// Splits a length-prefixed concatenation (no domain label) into parts.
pub fn split_lp(b: &[u8]) -> Result<Vec<&[u8]>, SsoError> {
    crate::encoding::split_lp(b).map_err(SsoError::Malformed)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], SsoError> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&k, data);
    fixed::<32>(tag.as_ref(), "HMAC tag").map_err(|_| SsoError::Internal("HMAC length"))
}

/// HKDF-SHA256 to a 32-byte key, no salt ([`crate::crypto::hkdf`]); on
/// the per-ticket path.
pub fn hkdf32(ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    crate::crypto::hkdf32(ikm, &[], &[info]).map_err(|_| SsoError::Internal("HKDF"))
}

/// HKDF-Expand only, for a key that is already uniform: per-ticket keys
/// under K_tgt, SK and K_k,e.
pub fn hkdf_expand32(key: &[u8; 32], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    crate::crypto::hkdf_expand32(key, &[info]).map_err(|_| SsoError::Internal("HKDF"))
}

// ---------------------------------------------------------------------------
// Scalars mod q
// ---------------------------------------------------------------------------

/// An integer mod q with the arithmetic the protocol needs; wiped on drop.
/// Converted to a `group::Exponent` for exponentiation.
pub struct Scalar(BigUint);

impl Scalar {
    /// Uniform in [1, q−1] (|q| + 128 random bits, reduced).
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
        let len = usize::try_from(group().q().bits()).unwrap_or(2048).div_ceil(8) + 16;
        let mut buf = Zeroizing::new(vec![0u8; len]);
        loop {
            rng.fill_bytes(&mut buf);
            let v = BigUint::from_bytes_be(&buf) % group().q();
            if !v.is_zero() {
                return Scalar(v);
            }
        }
    }

    /// Uniform in [1, 2^256): a short exponent (NIST SP 800-56A Rev. 3
    /// §5.6.1.1.4 allows 2·s bits in safe-prime groups).
    pub fn random_short<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
        let mut buf = Zeroizing::new([0u8; 32]);
        loop {
            rng.fill_bytes(buf.as_mut_slice());
            let v = BigUint::from_bytes_be(buf.as_slice());
            if !v.is_zero() {
                return Scalar(v);
            }
        }
    }

    /// A big-endian integer reduced mod q; zero is refused.
    pub fn from_bytes_mod_q(bytes: &[u8]) -> Result<Scalar, SsoError> {
        let v = BigUint::from_bytes_be(bytes) % group().q();
        if v.is_zero() {
            return Err(SsoError::Internal("scalar is zero mod q"));
        }
        Ok(Scalar(v))
    }

    /// A canonical encoding: refuses values ≥ q or zero (no malleable
    /// encodings of the same scalar on the wire).
    pub fn from_canonical(bytes: &[u8]) -> Result<Scalar, SsoError> {
        let v = BigUint::from_bytes_be(bytes);
        if v.is_zero() || &v >= group().q() {
            return Err(SsoError::Malformed("scalar not in [1, q-1]"));
        }
        Ok(Scalar(v))
    }

    /// Fixed-width (element width) big-endian encoding.
    pub fn to_fixed_bytes(&self) -> Zeroizing<Vec<u8>> {
        let raw = Zeroizing::new(self.0.to_bytes_be());
        let len = group().element_len();
        let mut out = Zeroizing::new(vec![0u8; len.saturating_sub(raw.len())]);
        out.extend_from_slice(&raw);
        out
    }

    /// (self + other) mod q.
    pub fn add(&self, other: &Scalar) -> Scalar {
        Scalar((&self.0 + &other.0) % group().q())
    }

    /// (self − other) mod q.
    pub fn sub(&self, other: &Scalar) -> Scalar {
        let q = group().q();
        Scalar(((&self.0 % q) + q - (&other.0 % q)) % q)
    }

    /// (self · other) mod q.
    pub fn mul(&self, other: &Scalar) -> Scalar {
        Scalar((&self.0 * &other.0) % group().q())
    }

    /// True for 0 mod q.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// As a group exponent (fails for 0).
    pub fn to_exponent(&self) -> Result<Exponent, SsoError> {
        let bytes = self.to_fixed_bytes();
        Exponent::from_bytes_mod_q(group(), &bytes).map_err(|_| SsoError::Internal("zero exponent"))
    }

    /// g^self.
    pub fn public(&self) -> Result<Element, SsoError> {
        Ok(group().exp(generator(), &self.to_exponent()?)?)
    }
}

impl Drop for Scalar {
    fn drop(&mut self) {
        let words = usize::try_from(self.0.bits().div_ceil(32)).unwrap_or(0);
        self.0.assign_from_slice(&vec![0u32; words]);
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scalar(<redacted>)")
    }
}

// ---------------------------------------------------------------------------
// AEAD
// ---------------------------------------------------------------------------

/// AES-256-GCM seal; returns ciphertext ‖ tag.
pub fn aead_seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SsoError> {
    crate::crypto::seal(key, nonce, aad, plaintext).map_err(|_| SsoError::Internal("AES-256-GCM seal"))
}

/// AES-256-GCM open; `None` if the tag does not verify.
pub fn aead_open(key: &[u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    crate::crypto::open(key, nonce, aad, ct)
}

/// A fresh random AEAD nonce (for keys used more than once, like C_ck).
pub fn random_nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}

// ---------------------------------------------------------------------------
// ECIES: X25519 + HKDF-SHA256 + AES-256-GCM
// ---------------------------------------------------------------------------

/// A sealed box: `E_X(…)` of the paper. The ephemeral key makes the AEAD key
/// single-use, so the all-zero nonce is sound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    /// Sender's ephemeral X25519 public key.
    pub epk: Bytes,
    /// AES-256-GCM ciphertext ‖ tag.
    pub ct: Bytes,
}

impl SealedBox {
    /// Canonical bytes (what Userlevel signs as "M_code").
    pub fn to_bytes(&self) -> Vec<u8> {
        Lp::default().part(self.epk.as_slice()).part(self.ct.as_slice()).into_bytes()
    }
}

/// An X25519 key pair (ANS's long-term key; the client's registration key).
pub struct X25519KeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl fmt::Debug for X25519KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519KeyPair").field("public", &b64(&self.public)).finish_non_exhaustive()
    }
}

fn x25519_private(secret: &[u8; 32]) -> Result<PrivateKey, SsoError> {
    PrivateKey::from_private_key(&X25519, secret).map_err(|_| SsoError::Internal("X25519 private key"))
}

impl X25519KeyPair {
    /// From 32 secret bytes (e.g. read from a 0600 file).
    pub fn from_secret(secret: [u8; 32]) -> Result<Self, SsoError> {
        let secret = Zeroizing::new(secret);
        let pk = x25519_private(&secret)?.compute_public_key().map_err(|_| SsoError::Internal("X25519 public"))?;
        let public = fixed::<32>(pk.as_ref(), "X25519 public key")?;
        Ok(X25519KeyPair { secret, public })
    }

    /// A fresh key pair from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, SsoError> {
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        let kp = X25519KeyPair::from_secret(s);
        s.zeroize();
        kp
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The secret bytes, to store.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Opens a box sealed to this key under `label` and `aad`.
    pub fn open(&self, label: &str, aad: &[u8], sealed: &SealedBox) -> Result<Zeroizing<Vec<u8>>, SsoError> {
        let epk = fixed::<32>(sealed.epk.as_slice(), "ephemeral key")?;
        let key = ecies_key(&x25519_private(&self.secret)?, &epk, &epk, &self.public, label)?;
        aead_open(&key, [0u8; NONCE_LEN], &ecies_aad(label, aad), sealed.ct.as_slice()).ok_or(SsoError::SealedBoxOpen)
    }
}

fn ecies_aad(label: &str, aad: &[u8]) -> Vec<u8> {
    Lp::sso(label).part(aad).into_bytes()
}

fn ecies_key(
    mine: &PrivateKey,
    peer: &[u8; 32],
    epk: &[u8; 32],
    recipient: &[u8; 32],
    label: &str,
) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    let info = Lp::sso("ecies").part(label.as_bytes()).part(epk).part(recipient);
    agreement::agree(mine, UnparsedPublicKey::new(&X25519, peer), SsoError::SealedBoxOpen, |shared| {
        // All-zero output means a low-order peer key: refuse.
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return Err(SsoError::SealedBoxOpen);
        }
        hkdf32(shared, info.bytes())
    })
}

/// Seals `plaintext` to `recipient` (an X25519 public key) under `label`,
/// binding `aad`.
pub fn seal_to<R: CryptoRng + ?Sized>(
    recipient: &[u8; 32],
    label: &str,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<SealedBox, SsoError> {
    let eph = X25519KeyPair::generate(rng)?;
    let key = ecies_key(&x25519_private(&eph.secret)?, recipient, &eph.public, recipient, label)?;
    let ct = aead_seal(&key, [0u8; NONCE_LEN], &ecies_aad(label, aad), plaintext)?;
    Ok(SealedBox { epk: Bytes(eph.public.to_vec()), ct: Bytes(ct) })
}

// ---------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------

/// An Ed25519 signing key (ANS's Userlevel key; the broker's ticket key).
pub struct Ed25519Key(SigningKey);

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key").field("public", &b64(&self.public_bytes())).finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// From a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut seed = Zeroizing::new(seed);
        let k = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Ed25519Key(k)
    }

    /// A fresh key from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let k = Ed25519Key::from_seed(seed);
        seed.zeroize();
        k
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// The public key bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs a message.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

/// Verifies an Ed25519 signature strictly (no malleable or small-order keys).
pub fn ed25519_verify(public: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(sig) else { return false };
    public.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
}

// ---------------------------------------------------------------------------
// Base32 (RFC 4648, lowercase, no padding) for anonymous ids
// ---------------------------------------------------------------------------

/// RFC 4648 base32, lowercase, unpadded.
pub fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = ((buffer >> bits) & 31) as usize;
            out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'a')));
        }
    }
    if bits > 0 {
        let idx = ((buffer << (5 - bits)) & 31) as usize;
        out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'a')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"fo"), "mzxq");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn scalar_arithmetic_composes_in_the_exponent() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = Scalar::random(&mut rng);
        let b = Scalar::random(&mut rng);
        let sum = a.add(&b);
        let back = sum.sub(&b);
        assert_eq!(back.to_fixed_bytes(), a.to_fixed_bytes());
        let ga = a.public().unwrap();
        let gb = b.public().unwrap();
        assert_eq!(group().mul(&ga, &gb).unwrap(), sum.public().unwrap());
        let prod = a.mul(&b);
        assert_eq!(group().exp(&ga, &b.to_exponent().unwrap()).unwrap(), prod.public().unwrap());
    }

    #[test]
    fn ecies_roundtrip_and_binding() {
        let mut rng = StdRng::seed_from_u64(4);
        let kp = X25519KeyPair::generate(&mut rng).unwrap();
        let other = X25519KeyPair::generate(&mut rng).unwrap();
        let sealed = seal_to(&kp.public(), "t", b"aad", b"hello", &mut rng).unwrap();
        assert_eq!(kp.open("t", b"aad", &sealed).unwrap().as_slice(), b"hello");
        assert_eq!(kp.open("u", b"aad", &sealed), Err(SsoError::SealedBoxOpen));
        assert_eq!(kp.open("t", b"aae", &sealed), Err(SsoError::SealedBoxOpen));
        assert_eq!(other.open("t", b"aad", &sealed), Err(SsoError::SealedBoxOpen));
        let zero = SealedBox { epk: Bytes(vec![0; 32]), ct: sealed.ct.clone() };
        assert_eq!(kp.open("t", b"aad", &zero), Err(SsoError::SealedBoxOpen));
    }
}
