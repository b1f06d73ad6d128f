//! The prime-order subgroup of a safe-prime MODP group, by default RFC 3526
//! group 14 (2048-bit).
//!
//! p = 2q + 1 with p and q prime. The subgroup of order q is the set of
//! quadratic residues mod p; every element of it other than 1 generates it.
//! We never use RFC 3526's generator 2: protocols derive their own generator
//! (SPEKE: g = H(π)² mod p, see [`Group::hash_to_element`]).
//!
//! Three types keep the invariants in the type system:
//!
//! - [`Group`]: p, q and the fixed element width.
//! - [`Element`]: a value V with 2 ≤ V ≤ p−2 and V^q ≡ 1 (mod p), i.e. a
//!   member of the order-q subgroup other than the identity. Values from the
//!   wire only become `Element`s through [`Group::decode`], which performs the
//!   checks Jablon (1996) and ISO/IEC 11770-4 ask of every received value.
//! - [`Exponent`]: an integer in [1, q−1], wiped when dropped.
//!
//! Elements and exponents remember which group made them (a fingerprint of
//! p); mixing groups is reported as [`GroupError::WrongGroup`] instead of
//! silently computing nonsense.
//!
//! `num-bigint` is not constant-time and does not wipe its temporaries; we
//! avoid branching on secrets where it costs nothing and wipe the values we
//! own, which is best effort, not a guarantee.

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use num_bigint::BigUint;
use num_traits::{CheckedSub, One, Zero};
use rand::CryptoRng;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// RFC 3526 §3, the 2048-bit MODP group (group 14):
/// p = 2^2048 − 2^1984 − 1 + 2^64·(⌊2^1918·π⌋ + 124476).
const MODP2048_P_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/// Bits in a short exponent. NIST SP 800-56A Rev. 3 §5.6.1.1.4 allows
/// private keys of 2·s bits (s = security strength, 112 for 2048-bit groups)
/// in safe-prime groups; we use exactly that minimum for group 14 (s = 112).
pub const SHORT_EXPONENT_BITS: u64 = 224;
const SHORT_EXPONENT_BYTES: usize = (SHORT_EXPONENT_BITS as usize).div_ceil(8);

/// Extra bits drawn beyond |p| (or |q|) before reducing, so the reduction
/// bias is below 2^-128.
const REDUCTION_MARGIN_BITS: usize = 128;

/// Miller–Rabin bases for [`Group::new_safe_prime`]: deterministic below
/// 3.3·10^24, a strong probabilistic test above.
const MILLER_RABIN_BASES: [u32; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];

/// What is wrong with a value or an operation in the group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The encoding does not have the group's fixed width (a malformed
    /// message, before any arithmetic).
    #[error("value has {actual} bytes, expected {expected}")]
    WrongLength {
        /// Bytes received.
        actual: usize,
        /// The group's element width.
        expected: usize,
    },
    /// V < 2 or V > p−2: 0, 1, p−1 and anything ≥ p.
    #[error("value out of range [2, p\u{2212}2]")]
    OutOfRange,
    /// V is in range but not a quadratic residue, so it lies outside the
    /// order-q subgroup (a small-subgroup / subgroup-confinement attempt).
    #[error("value not in the prime-order subgroup")]
    NotInSubgroup,
    /// An element or exponent was used with a group other than the one that
    /// made it (a local bug).
    #[error("element or exponent belongs to a different group")]
    WrongGroup,
    /// An exponent reduced to 0 mod q.
    #[error("exponent is zero modulo q")]
    ZeroExponent,
    /// An operation would produce the identity, which is not an [`Element`].
    #[error("result is the identity element")]
    Identity,
    /// [`Group::exp_fixed`] was given an exponent longer than a short one.
    #[error("exponent longer than {SHORT_EXPONENT_BITS} bits for a fixed-base table")]
    ExponentTooLong,
    /// `new_safe_prime` was given a p that is not a safe prime p = 2q+1 ≥ 7.
    #[error("not a safe prime p = 2q+1 with p \u{2265} 7")]
    NotSafePrime,
}

/// A safe-prime group p = 2q + 1, working in its order-q subgroup.
#[derive(Clone)]
pub struct Group {
    p: BigUint,
    q: BigUint,
    p_minus_2: BigUint,
    two: BigUint,
    /// Bytes in the fixed-width big-endian encoding of an element.
    element_len: usize,
    /// First 8 bytes of SHA-256(p), to tell groups apart cheaply.
    fingerprint: [u8; 8],
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("p_bits", &self.p.bits()).field("fingerprint", &self.fingerprint).finish()
    }
}

static MODP2048: LazyLock<Group> = LazyLock::new(|| {
    // The constant is valid hex; parse failure cannot happen, and falling
    // back to zero would only produce a group every check rejects.
    let p = BigUint::parse_bytes(MODP2048_P_HEX.as_bytes(), 16).unwrap_or_default();
    Group::from_safe_prime_unchecked(p)
});

impl Group {
    /// RFC 3526 group 14: the 2048-bit MODP group, q = (p−1)/2.
    pub fn modp2048() -> &'static Group {
        &MODP2048
    }

    /// A group from a safe prime p = 2q+1 (p ≥ 7), checking that p and q
    /// are prime (Miller–Rabin). Meant for tests with toy groups (p = 23).
    pub fn new_safe_prime(p: BigUint) -> Result<Group, GroupError> {
        if p < BigUint::from(7u32) {
            return Err(GroupError::NotSafePrime);
        }
        let q: BigUint = (&p - 1u32) >> 1u32;
        if !is_probable_prime(&p) || !is_probable_prime(&q) {
            return Err(GroupError::NotSafePrime);
        }
        Ok(Group::from_safe_prime_unchecked(p))
    }

    fn from_safe_prime_unchecked(p: BigUint) -> Group {
        // Saturating: only `modp2048` skips the p ≥ 7 check, with a constant p.
        let p_minus_1 = p.checked_sub(&BigUint::one()).unwrap_or_default();
        let p_minus_2 = p_minus_1.checked_sub(&BigUint::one()).unwrap_or_default();
        let q = &p_minus_1 >> 1u32;
        let element_len = usize::try_from(p.bits().div_ceil(8)).unwrap_or(usize::MAX);
        let digest = Sha256::digest(p.to_bytes_be());
        let mut fingerprint = [0u8; 8];
        for (dst, src) in fingerprint.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        Group { p, q, p_minus_2, two: BigUint::from(2u32), element_len, fingerprint }
    }

    /// The modulus p.
    pub fn p(&self) -> &BigUint {
        &self.p
    }

    /// The subgroup order q = (p−1)/2.
    pub fn q(&self) -> &BigUint {
        &self.q
    }

    /// Bytes in an element's fixed-width encoding (256 for group 14).
    pub fn element_len(&self) -> usize {
        self.element_len
    }

    /// Validates a received value: exact length, 2 ≤ V ≤ p−2, and membership
    /// of the order-q subgroup (Legendre symbol (V/p) = 1, equivalent to
    /// V^q ≡ 1 for a safe prime, at a fraction of the cost).
    pub fn decode(&self, bytes: &[u8]) -> Result<Element, GroupError> {
        if bytes.len() != self.element_len {
            return Err(GroupError::WrongLength { actual: bytes.len(), expected: self.element_len });
        }
        let value = BigUint::from_bytes_be(bytes);
        if value < self.two || value > self.p_minus_2 {
            return Err(GroupError::OutOfRange);
        }
        if jacobi(&value, &self.p) != 1 {
            return Err(GroupError::NotInSubgroup);
        }
        Ok(self.element_unchecked(value))
    }

    /// Wraps a value already known to satisfy the `Element` invariant.
    fn element_unchecked(&self, value: BigUint) -> Element {
        let bytes = fixed_width_be(&value, self.element_len);
        Element { value, bytes, group: self.fingerprint }
    }

    /// Rejects 0 and 1 (the only results of arithmetic on subgroup elements
    /// that fall outside the `Element` invariant; p−1 is a non-residue).
    fn element_from_result(&self, value: BigUint) -> Result<Element, GroupError> {
        if value.is_zero() || value.is_one() {
            return Err(GroupError::Identity);
        }
        Ok(self.element_unchecked(value))
    }

    fn check_element(&self, e: &Element) -> Result<(), GroupError> {
        if e.group == self.fingerprint { Ok(()) } else { Err(GroupError::WrongGroup) }
    }

    fn check_exponent(&self, e: &Exponent) -> Result<(), GroupError> {
        if e.group == self.fingerprint { Ok(()) } else { Err(GroupError::WrongGroup) }
    }

    /// base^e mod p. With e in [1, q−1] and base ≠ 1 in the subgroup the
    /// result is again a non-identity subgroup element.
    pub fn exp(&self, base: &Element, e: &Exponent) -> Result<Element, GroupError> {
        self.check_element(base)?;
        self.check_exponent(e)?;
        self.element_from_result(base.value.modpow(&e.value, &self.p))
    }

    /// A table of powers of `base` for fast exponentiation by short
    /// exponents ([`Group::exp_fixed`]): for each 8-bit window i of the
    /// exponent and each digit d, base^(d·256^i). Building it costs about
    /// 7,000 multiplications (tens of ms) and 1.8 MB; each exponentiation
    /// then costs 28 multiplications instead of a 224-step
    /// square-and-multiply. Worth it when one base serves many exponents —
    /// SPEKE's password-derived generator between two data centers, reused
    /// for every session with that peer.
    pub fn fixed_base(&self, base: &Element) -> Result<FixedBase, GroupError> {
        self.check_element(base)?;
        let mont = Montgomery::new(&self.p);
        let limbs = mont.p.len();
        // Entries in Montgomery form (x·R mod p), so that exp_fixed multiplies
        // with fixed-width, branch-free Montgomery products.
        let r = BigUint::one() << (64 * limbs);
        let mut table = Zeroizing::new(Vec::with_capacity(SHORT_EXPONENT_BYTES * 256 * limbs));
        let mut scratch = Zeroizing::new(vec![0u64; limbs + 2]);
        let mut one_r = &r % &self.p;
        let mut converted = (&base.value * &r) % &self.p;
        // base^(256^i)·R, then each entry from the one before: all in Montgomery form.
        let mut power = Zeroizing::new(vec![0u64; limbs]);
        let mut entry = Zeroizing::new(vec![0u64; limbs]);
        let mut next = Zeroizing::new(vec![0u64; limbs]);
        set_limbs(&mut power, &converted);
        for _ in 0..SHORT_EXPONENT_BYTES {
            set_limbs(&mut entry, &one_r);
            table.extend_from_slice(&entry);
            for _ in 1..256 {
                mont.mul(&entry, &power, &mut next, &mut scratch);
                entry.copy_from_slice(&next);
                table.extend_from_slice(&entry);
            }
            mont.mul(&entry, &power, &mut next, &mut scratch); // base^(256^(i+1))·R
            power.copy_from_slice(&next);
        }
        wipe_biguint(&mut one_r);
        wipe_biguint(&mut converted);
        Ok(FixedBase { table, limbs, mont, group: self.fingerprint })
    }

    /// base^e with a [`FixedBase`] table; e must be a short exponent
    /// ([`Exponent::random_short`]).
    ///
    /// The table lookups do not depend on e: every window reads all 256
    /// entries of its row and keeps the one whose digit matches with a
    /// masked select ([`FixedBase::select`]), and every window multiplies
    /// (digit 0 picks base⁰ = 1), so neither the memory addresses touched
    /// nor the number of multiplications tell the digits (audit F12: the
    /// cache lines of an indexed lookup gave x away, and with it the pair's
    /// SPEKE generator). The multiplications are fixed-width Montgomery
    /// products without branches on the values ([`Montgomery::mul`]; the
    /// entries are stored in Montgomery form), so they do not tell the
    /// digits either. [`Group::exp`] (num-bigint's `modpow`) is not constant
    /// time.
    pub fn exp_fixed(&self, table: &FixedBase, e: &Exponent) -> Result<Element, GroupError> {
        self.check_exponent(e)?;
        if table.group != self.fingerprint {
            return Err(GroupError::WrongGroup);
        }
        if e.value.bits() > SHORT_EXPONENT_BITS {
            return Err(GroupError::ExponentTooLong);
        }
        // All 28 windows, leading zero bytes included: the loop's length is not the exponent's.
        let mut digits = Zeroizing::new([0u8; SHORT_EXPONENT_BYTES]);
        let le = Zeroizing::new(e.value.to_bytes_le());
        for (d, s) in digits.iter_mut().zip(le.iter()) {
            *d = *s;
        }
        let mont = &table.mont;
        let mut picked = Zeroizing::new(vec![0u64; table.limbs]);
        // 1 in Montgomery form is window 0's entry for digit 0 (R mod p).
        let mut acc = Zeroizing::new(table.row(0).get(..table.limbs).unwrap_or(&[]).to_vec());
        let mut product = Zeroizing::new(vec![0u64; table.limbs]);
        let mut scratch = Zeroizing::new(vec![0u64; table.limbs + 2]);
        for (window, &digit) in digits.iter().enumerate() {
            table.select(window, digit, &mut picked);
            mont.mul(&acc, &picked, &mut product, &mut scratch);
            acc.copy_from_slice(&product);
        }
        // Out of Montgomery form: acc·1·R⁻¹.
        let mut one = vec![0u64; table.limbs];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        mont.mul(&acc, &one, &mut product, &mut scratch);
        let mut bytes = Zeroizing::new(Vec::with_capacity(8 * table.limbs));
        for limb in product.iter() {
            bytes.extend_from_slice(&limb.to_le_bytes());
        }
        self.element_from_result(BigUint::from_bytes_le(&bytes))
    }

    /// a·b mod p; fails with [`GroupError::Identity`] when b = a⁻¹.
    pub fn mul(&self, a: &Element, b: &Element) -> Result<Element, GroupError> {
        self.check_element(a)?;
        self.check_element(b)?;
        self.element_from_result((&a.value * &b.value) % &self.p)
    }

    /// a⁻¹ mod p.
    pub fn inverse(&self, a: &Element) -> Result<Element, GroupError> {
        self.check_element(a)?;
        // p is prime and 2 ≤ a ≤ p−2, so the inverse exists; the Fermat
        // fallback (a^(q−1) = a⁻¹ in the subgroup) only avoids a panic path.
        let inv = match a.value.modinv(&self.p) {
            Some(inv) => inv,
            None => a.value.modpow(&(&self.q - 1u32), &self.p),
        };
        self.element_from_result(inv)
    }

    /// Hashes `input` to a subgroup element (SPEKE's g = H(π)² mod p).
    ///
    /// H is SHA-512 in counter mode over
    /// `u32(len(domain)) ‖ domain ‖ u32(attempt) ‖ u32(block) ‖ input`,
    /// expanded to at least |p| + 128 bits so that reducing mod p leaves a
    /// bias below 2^-128. Squaring lands in the quadratic residues; the
    /// results 0 and 1 (h ≡ 0, ±1) are rejected and the next attempt tried.
    pub fn hash_to_element(&self, domain: &[u8], input: &[u8]) -> Element {
        let wanted_bytes = self.element_len.saturating_add(REDUCTION_MARGIN_BITS / 8);
        let blocks = wanted_bytes.div_ceil(Sha512::output_size());
        let domain_len = u32::try_from(domain.len()).unwrap_or(u32::MAX).to_be_bytes();
        let mut attempt: u32 = 0;
        loop {
            let mut expanded = Zeroizing::new(Vec::with_capacity(blocks.saturating_mul(Sha512::output_size())));
            for block in 0..blocks {
                let block = u32::try_from(block).unwrap_or(u32::MAX);
                let digest = Sha512::new()
                    .chain_update(domain_len)
                    .chain_update(domain)
                    .chain_update(attempt.to_be_bytes())
                    .chain_update(block.to_be_bytes())
                    .chain_update(input)
                    .finalize();
                expanded.extend_from_slice(&digest);
            }
            let mut h = BigUint::from_bytes_be(&expanded) % &self.p;
            let squared = (&h * &h) % &self.p;
            wipe_biguint(&mut h);
            if let Ok(element) = self.element_from_result(squared) {
                return element;
            }
            attempt = attempt.wrapping_add(1);
        }
    }

    /// Uniform integer in [1, bound) from 128 more random bits than
    /// `bound` has, reduced (bias < 2^-128); retried on 0.
    fn random_below<R: CryptoRng + ?Sized>(&self, bound: &BigUint, rng: &mut R) -> Exponent {
        let bits = usize::try_from(bound.bits()).unwrap_or(usize::MAX).saturating_add(REDUCTION_MARGIN_BITS);
        let mut buf = Zeroizing::new(vec![0u8; bits.div_ceil(8)]);
        loop {
            rng.fill_bytes(&mut buf);
            let value = BigUint::from_bytes_be(&buf) % bound;
            if !value.is_zero() {
                return Exponent { value, group: self.fingerprint };
            }
        }
    }
}

/// A non-identity element of the order-q subgroup, 2 ≤ V ≤ p−2.
///
/// Public values (SPEKE's X and Y) are elements; so is the shared secret K,
/// whose holder should [`Zeroize`] it when done.
#[derive(Clone)]
pub struct Element {
    value: BigUint,
    /// Fixed-width big-endian encoding, cached for transcripts.
    bytes: Vec<u8>,
    group: [u8; 8],
}

impl Element {
    /// Fixed-width big-endian encoding ([`Group::element_len`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The fixed-width encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as an integer.
    pub fn value(&self) -> &BigUint {
        &self.value
    }
}

impl PartialEq for Element {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group && self.bytes == other.bytes
    }
}

impl Eq for Element {}

impl fmt::Debug for Element {
    /// Shows only the first bytes: enough to tell public values apart in a
    /// log, and it does not dump a whole secret K by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Element(")?;
        for b in self.bytes.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Zeroize for Element {
    fn zeroize(&mut self) {
        wipe_biguint(&mut self.value);
        self.bytes.zeroize();
    }
}

/// Precomputed powers of one base ([`Group::fixed_base`]); as secret as the
/// base (SPEKE's generator is password-derived), so wiped on drop.
///
/// Window i, digit d is base^(d·256^i) as `limbs` little-endian `u32`
/// digits, zero-padded to the element width, at
/// `table[(i·256 + d)·limbs ..][..limbs]`: fixed-width entries, so a row can
/// be scanned with masks.
pub struct FixedBase {
    table: Zeroizing<Vec<u64>>,
    limbs: usize,
    mont: Montgomery,
    group: [u8; 8],
}

/// Montgomery multiplication modulo an odd p of `limbs` 64-bit words, in
/// fixed width and without branches on the values (CIOS, the final
/// subtraction chosen by a mask), so [`Group::exp_fixed`]'s products take
/// the same time whatever the secret digits picked.
#[derive(Clone, Debug)]
struct Montgomery {
    /// p, little-endian words.
    p: Vec<u64>,
    /// −p⁻¹ mod 2⁶⁴.
    n0: u64,
}

impl Montgomery {
    fn new(p: &BigUint) -> Montgomery {
        let p = p.to_u64_digits();
        let p0 = p.first().copied().unwrap_or(1);
        // Newton's iteration doubles the correct low bits each step: 1 → 64.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p0.wrapping_mul(inv)));
        }
        Montgomery { p, n0: inv.wrapping_neg() }
    }

    /// `out` = a·b·R⁻¹ mod p for a, b < p (R = 2^(64·limbs)); `t` is
    /// scratch of limbs + 2 words.
    fn mul(&self, a: &[u64], b: &[u64], out: &mut [u64], t: &mut [u64]) {
        let n = self.p.len();
        t.fill(0);
        for &bi in b.iter().take(n) {
            // t += a·bᵢ
            let mut carry: u64 = 0;
            for (tj, &aj) in t.iter_mut().zip(a.iter()).take(n) {
                let s = u128::from(*tj) + u128::from(aj) * u128::from(bi) + u128::from(carry);
                *tj = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = u128::from(t.get(n).copied().unwrap_or(0)) + u128::from(carry);
            if let Some([tn, tn1]) = t.get_mut(n..n + 2) {
                (*tn, *tn1) = (s as u64, (s >> 64) as u64);
            }
            // t = (t + m·p) / 2⁶⁴, m chosen so the low word vanishes.
            let m = t.first().copied().unwrap_or(0).wrapping_mul(self.n0);
            let s = u128::from(t.first().copied().unwrap_or(0))
                + u128::from(m) * u128::from(self.p.first().copied().unwrap_or(0));
            let mut carry = (s >> 64) as u64;
            for j in 1..n {
                let s = u128::from(t.get(j).copied().unwrap_or(0))
                    + u128::from(m) * u128::from(self.p.get(j).copied().unwrap_or(0))
                    + u128::from(carry);
                if let Some(prev) = t.get_mut(j - 1) {
                    *prev = s as u64;
                }
                carry = (s >> 64) as u64;
            }
            let s = u128::from(t.get(n).copied().unwrap_or(0)) + u128::from(carry);
            let top = t.get(n + 1).copied().unwrap_or(0) + (s >> 64) as u64;
            if let Some([prev, tn]) = t.get_mut(n - 1..n + 1) {
                (*prev, *tn) = (s as u64, top);
            }
        }
        // t < 2p: subtract p once if t ≥ p, chosen by mask.
        let mut borrow: u64 = 0;
        for (o, (&tj, &pj)) in out.iter_mut().zip(t.iter().zip(self.p.iter())) {
            let (d1, b1) = tj.overflowing_sub(pj);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *o = d2;
            borrow = u64::from(b1 | b2);
        }
        // Keep t when the subtraction borrowed past t's top word (t < p).
        let top = t.get(n).copied().unwrap_or(0);
        let keep_t = u64::from(borrow > top).wrapping_neg();
        for (o, &tj) in out.iter_mut().zip(t.iter()) {
            *o = (tj & keep_t) | (*o & !keep_t);
        }
        t.zeroize();
    }
}

impl fmt::Debug for FixedBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FixedBase(<redacted>)")
    }
}

impl FixedBase {
    /// The entries of window `window`, one per digit 0..=255.
    fn row(&self, window: usize) -> &[u64] {
        let len = 256 * self.limbs;
        self.table.get(window * len..(window + 1) * len).unwrap_or(&[])
    }

    /// `out` = the entry for `digit` in window `window`, read without
    /// branching on `digit` or indexing by it: every entry of the row is
    /// read, and a mask built with `subtle` (all ones for the matching digit,
    /// zero otherwise) decides which one is kept.
    fn select(&self, window: usize, digit: u8, out: &mut [u64]) {
        out.fill(0);
        for (d, entry) in (0u8..=255).zip(self.row(window).chunks_exact(self.limbs)) {
            // All ones for the matching digit, 0 for the others (`subtle`'s comparison).
            let mask = 0u64.wrapping_sub(u64::from(d.ct_eq(&digit).unwrap_u8()));
            for (o, v) in out.iter_mut().zip(entry) {
                *o |= v & mask;
            }
        }
    }
}

/// `out` = `v`'s `u64` digits, little-endian, zero-padded to its length.
fn set_limbs(out: &mut [u64], v: &BigUint) {
    let mut digits = v.to_u64_digits();
    out.fill(0);
    for (o, d) in out.iter_mut().zip(digits.iter()) {
        *o = *d;
    }
    digits.zeroize();
}

/// A secret exponent in [1, q−1], wiped on drop.
pub struct Exponent {
    value: BigUint,
    group: [u8; 8],
}

impl Exponent {
    /// Uniform in [1, 2^224): the short exponents NIST SP 800-56A permits for
    /// safe-prime groups. In groups with q ≤ 2^224 (toy groups) this is
    /// [`Exponent::random_full`], since a short exponent would not be short.
    pub fn random_short<R: CryptoRng + ?Sized>(group: &Group, rng: &mut R) -> Exponent {
        if group.q.bits() <= SHORT_EXPONENT_BITS {
            return Exponent::random_full(group, rng);
        }
        let mut buf = Zeroizing::new([0u8; SHORT_EXPONENT_BYTES]);
        loop {
            rng.fill_bytes(buf.as_mut_slice());
            let value = BigUint::from_bytes_be(buf.as_slice());
            if !value.is_zero() {
                return Exponent { value, group: group.fingerprint };
            }
        }
    }

    /// Uniform in [1, q−1].
    pub fn random_full<R: CryptoRng + ?Sized>(group: &Group, rng: &mut R) -> Exponent {
        group.random_below(&group.q, rng)
    }

    /// A big-endian integer reduced mod q; fails if it is ≡ 0.
    pub fn from_bytes_mod_q(group: &Group, bytes: &[u8]) -> Result<Exponent, GroupError> {
        let value = BigUint::from_bytes_be(bytes) % &group.q;
        if value.is_zero() {
            return Err(GroupError::ZeroExponent);
        }
        Ok(Exponent { value, group: group.fingerprint })
    }
}

impl Drop for Exponent {
    fn drop(&mut self) {
        wipe_biguint(&mut self.value);
    }
}

impl fmt::Debug for Exponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exponent(<redacted>)")
    }
}

/// Overwrites a `BigUint`'s digits with zeros in place. `assign_from_slice`
/// clears the digit vector and refills it within its existing allocation, so
/// the old digits are overwritten before the value normalises to 0. Best
/// effort: relies on num-bigint's current behaviour and cannot reach copies
/// num-bigint made internally.
fn wipe_biguint(n: &mut BigUint) {
    let words = usize::try_from(n.bits().div_ceil(32)).unwrap_or(0);
    let zeros = vec![0u32; words];
    n.assign_from_slice(&zeros);
    std::hint::black_box(&*n);
}

/// Big-endian encoding left-padded with zeros to `len` bytes (values are
/// always < p, so they fit).
fn fixed_width_be(value: &BigUint, len: usize) -> Vec<u8> {
    let raw = value.to_bytes_be();
    let raw = if value.is_zero() { Vec::new() } else { raw };
    let mut out = vec![0u8; len.saturating_sub(raw.len())];
    out.extend_from_slice(&raw);
    out
}

/// The lowest 64 bits of `n`.
fn low_u64(n: &BigUint) -> u64 {
    n.iter_u64_digits().next().unwrap_or(0)
}

/// Jacobi symbol (a/n) for odd n > 0, by the binary algorithm (Cohen,
/// "A Course in Computational Algebraic Number Theory", Alg. 1.4.10, with
/// subtraction instead of division). For prime n it is the Legendre symbol:
/// 1 for a non-zero quadratic residue, −1 for a non-residue, 0 if n | a.
///
/// Invariant: the answer is t·(a/n). Steps:
/// - (2/n) = −1 iff n ≡ 3, 5 (mod 8): strip factors of 2 from a.
/// - reciprocity for odd a, n: (a/n) = −(n/a) iff a ≡ n ≡ 3 (mod 4).
/// - (a/n) = ((a−n)/n).
pub fn jacobi(a: &BigUint, n: &BigUint) -> i8 {
    if n.is_zero() || !n.bit(0) {
        return 0;
    }
    let mut a = a % n;
    let mut n = n.clone();
    let mut t: i8 = 1;
    while !a.is_zero() {
        let twos = a.trailing_zeros().unwrap_or(0);
        if twos > 0 {
            a >>= twos;
            let n8 = low_u64(&n) & 7;
            if twos & 1 == 1 && (n8 == 3 || n8 == 5) {
                t = -t;
            }
        }
        // a and n are both odd here.
        if a.cmp(&n) == Ordering::Less {
            std::mem::swap(&mut a, &mut n);
            if low_u64(&a) & 3 == 3 && low_u64(&n) & 3 == 3 {
                t = -t;
            }
        }
        a -= &n;
    }
    if n.is_one() { t } else { 0 }
}

/// Miller–Rabin with fixed bases; only used to vet caller-supplied groups.
fn is_probable_prime(n: &BigUint) -> bool {
    let two = BigUint::from(2u32);
    if *n < two {
        return false;
    }
    for base in MILLER_RABIN_BASES {
        let b = BigUint::from(base);
        if *n == b {
            return true;
        }
        if (n % &b).is_zero() {
            return false;
        }
    }
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    'bases: for base in MILLER_RABIN_BASES {
        let mut x = BigUint::from(base).modpow(&d, n);
        if x.is_one() || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    fn toy() -> Group {
        Group::new_safe_prime(BigUint::from(23u32)).unwrap()
    }

    fn encode(group: &Group, v: &BigUint) -> Vec<u8> {
        fixed_width_be(v, group.element_len())
    }

    #[test]
    fn toy_group_facts() {
        let g = toy();
        assert_eq!(g.q(), &BigUint::from(11u32));
        assert_eq!(g.element_len(), 1);
        for v in [0u32, 1, 22, 23] {
            assert_eq!(g.decode(&[v as u8]), Err(GroupError::OutOfRange), "{v}");
        }
        // 5 is in range but a non-residue mod 23: fails only the subgroup check.
        assert_eq!(g.decode(&[5]), Err(GroupError::NotInSubgroup));
        assert_eq!(BigUint::from(5u32).modpow(&BigUint::from(11u32), g.p()), BigUint::from(22u32));
        for v in [2u8, 13] {
            let e = g.decode(&[v]).unwrap();
            assert!(e.value().modpow(g.q(), g.p()).is_one());
        }
        assert_eq!(g.decode(&[]), Err(GroupError::WrongLength { actual: 0, expected: 1 }));
    }

    #[test]
    fn toy_subgroup_is_exactly_the_residues() {
        let g = toy();
        let decoded: Vec<u32> = (0u32..23).filter(|&v| g.decode(&[v as u8]).is_ok()).collect();
        // Quadratic residues mod 23 other than 1.
        assert_eq!(decoded, vec![2, 3, 4, 6, 8, 9, 12, 13, 16, 18]);
    }

    #[test]
    fn toy_malleability_arithmetic_from_protocol_facts() {
        // g = 2, x = 3, y = 7, z = 4: the altered values 18 and 2 are valid
        // and both sides reach K = 13.
        let g = toy();
        let generator = g.decode(&[2]).unwrap();
        let ex = |v: u8| Exponent::from_bytes_mod_q(&g, &[v]).unwrap();
        let x_val = g.exp(&generator, &ex(3)).unwrap();
        let y_val = g.exp(&generator, &ex(7)).unwrap();
        let x_mauled = g.exp(&x_val, &ex(4)).unwrap();
        let y_mauled = g.exp(&y_val, &ex(4)).unwrap();
        assert_eq!(x_mauled.as_bytes(), &[2]);
        assert_eq!(y_mauled.as_bytes(), &[18]);
        assert!(g.decode(x_mauled.as_bytes()).is_ok() && g.decode(y_mauled.as_bytes()).is_ok());
        assert_eq!(g.exp(&y_mauled, &ex(3)).unwrap().as_bytes(), &[13]);
        assert_eq!(g.exp(&x_mauled, &ex(7)).unwrap().as_bytes(), &[13]);
    }

    #[test]
    fn new_safe_prime_rejects_non_safe_primes() {
        for p in [0u32, 1, 2, 3, 5, 13, 21, 29, 25] {
            assert_eq!(Group::new_safe_prime(BigUint::from(p)).unwrap_err(), GroupError::NotSafePrime, "{p}");
        }
        for p in [7u32, 11, 23, 47, 59, 83, 107] {
            assert!(Group::new_safe_prime(BigUint::from(p)).is_ok(), "{p}");
        }
    }

    /// Recomputes RFC 3526's formula with π from Machin's formula, so the
    /// hex constant is checked against its definition, not against itself.
    #[test]
    fn modp2048_matches_its_definition() {
        fn arctan_inv(x: u32, one: &BigUint) -> (BigUint, BigUint) {
            // Returns (positive terms, negative terms) of arctan(1/x)·one.
            let x2 = BigUint::from(x * x);
            let mut term = one / x;
            let (mut pos, mut neg) = (BigUint::zero(), BigUint::zero());
            let mut k = 1u32;
            let mut plus = true;
            while !term.is_zero() {
                if plus {
                    pos += &term / k;
                } else {
                    neg += &term / k;
                }
                term /= &x2;
                k += 2;
                plus = !plus;
            }
            (pos, neg)
        }
        let guard = 64u32;
        let one = BigUint::one() << (1918 + guard);
        let (p5, n5) = arctan_inv(5, &one);
        let (p239, n239) = arctan_inv(239, &one);
        let pi = (BigUint::from(16u32) * (p5 - n5)) - (BigUint::from(4u32) * (p239 - n239));
        let floor_pi = pi >> guard;
        let expected =
            (BigUint::one() << 2048u32) - (BigUint::one() << 1984u32) - 1u32 + ((floor_pi + 124_476u32) << 64u32);
        let g = Group::modp2048();
        assert_eq!(g.p(), &expected);
        assert!(format!("{:X}", g.p()).ends_with("8AACAA68FFFFFFFFFFFFFFFF"));
        assert_eq!(g.p().bits(), 2048);
        assert_eq!(g.element_len(), 256);
        assert_eq!(g.q(), &((g.p() - 1u32) >> 1u32));
        assert!(is_probable_prime(g.q()));
    }

    #[test]
    fn jacobi_agrees_with_euler_criterion_in_group14() {
        let g = Group::modp2048();
        let mut rng = StdRng::seed_from_u64(14);
        let mut residues = 0;
        for _ in 0..200 {
            let mut buf = [0u8; 256];
            rng.fill(&mut buf[..]);
            let v = BigUint::from_bytes_be(&buf) % g.p();
            let euler = v.modpow(g.q(), g.p());
            let j = jacobi(&v, g.p());
            assert_eq!(j == 1, euler.is_one());
            assert_eq!(j == -1, euler == g.p() - 1u32);
            residues += usize::from(j == 1);
        }
        // Roughly half are residues; a broken symbol would be lopsided.
        assert!((60..140).contains(&residues), "{residues}");
    }

    #[test]
    fn jacobi_small_table() {
        // (a/n) for n = 15 and 21, checked by hand / against Cohen's table.
        let row = |n: u32| (0..n).map(|a| jacobi(&BigUint::from(a), &BigUint::from(n))).collect::<Vec<_>>();
        assert_eq!(row(15), vec![0, 1, 1, 0, 1, 0, 0, -1, 1, 0, 0, -1, 0, -1, -1]);
        assert_eq!(row(21), vec![0, 1, -1, 0, 1, 1, 0, 0, -1, 0, -1, -1, 0, -1, 0, 0, 1, 1, 0, -1, 1]);
        assert_eq!(jacobi(&BigUint::from(3u32), &BigUint::from(4u32)), 0);
    }

    #[test]
    fn group14_decode_rejects_out_of_range_and_wrong_length() {
        let g = Group::modp2048();
        let p = g.p().clone();
        let all_ones = (BigUint::one() << 2048u32) - 1u32;
        for v in [BigUint::zero(), BigUint::one(), &p - 1u32, p.clone(), &p + 1u32, all_ones] {
            assert_eq!(g.decode(&encode(g, &v)), Err(GroupError::OutOfRange));
        }
        for len in [0usize, 255, 257] {
            let err = g.decode(&vec![0x42; len]).unwrap_err();
            assert_eq!(err, GroupError::WrongLength { actual: len, expected: 256 });
        }
        assert_eq!(
            GroupError::WrongLength { actual: 255, expected: 256 }.to_string(),
            "value has 255 bytes, expected 256"
        );
        assert_eq!(GroupError::OutOfRange.to_string(), "value out of range [2, p\u{2212}2]");
        assert_eq!(GroupError::NotInSubgroup.to_string(), "value not in the prime-order subgroup");
    }

    #[test]
    fn group14_decode_rejects_non_residues() {
        let g = Group::modp2048();
        let smallest = (2u32..).map(BigUint::from).find(|a| jacobi(a, g.p()) == -1).unwrap();
        assert_eq!(smallest.modpow(g.q(), g.p()), g.p() - 1u32);
        assert_eq!(g.decode(&encode(g, &smallest)), Err(GroupError::NotInSubgroup));
        // A large non-residue: smallest · r² for random r.
        let mut rng = StdRng::seed_from_u64(7);
        let r = g.hash_to_element(b"test", &rng.random::<[u8; 16]>());
        let big = (&smallest * r.value()) % g.p();
        assert!(big.bits() > 2000);
        assert_eq!(g.decode(&encode(g, &big)), Err(GroupError::NotInSubgroup));
    }

    #[test]
    fn hash_to_element_lands_in_subgroup_and_separates_domains() {
        let g = Group::modp2048();
        let a = g.hash_to_element(b"dirbroker SPEKE v1 generator", b"correct horse");
        let b = g.hash_to_element(b"dirbroker SPEKE v1 generator", b"correct horse");
        let c = g.hash_to_element(b"other domain", b"correct horse");
        let d = g.hash_to_element(b"dirbroker SPEKE v1 generator", b"correct horsf");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.value().modpow(g.q(), g.p()).is_one());
        assert_eq!(g.decode(a.as_bytes()).unwrap(), a);
        assert_eq!(a.as_bytes().len(), 256);
    }

    #[test]
    fn hash_to_element_in_toy_group_skips_identity() {
        let g = toy();
        for i in 0u32..200 {
            let e = g.hash_to_element(b"t", &i.to_be_bytes());
            assert!(g.decode(e.as_bytes()).is_ok());
        }
    }

    #[test]
    fn fixed_base_tables_agree_with_exp() {
        let mut rng = StdRng::seed_from_u64(7);
        let g14 = Group::modp2048();
        let base = g14.hash_to_element(b"t", b"fixed");
        let table = g14.fixed_base(&base).unwrap();
        for _ in 0..20 {
            let e = Exponent::random_short(g14, &mut rng);
            assert_eq!(g14.exp_fixed(&table, &e).unwrap(), g14.exp(&base, &e).unwrap());
        }
        // Exponents with zero windows and the largest short exponent.
        for bytes in [vec![1u8], vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], vec![0xff; 28]] {
            let e = Exponent { value: BigUint::from_bytes_be(&bytes), group: g14.fingerprint };
            assert_eq!(g14.exp_fixed(&table, &e).unwrap(), g14.exp(&base, &e).unwrap());
        }
        // A full-length exponent is refused, not silently truncated.
        let mut full = Exponent::random_full(g14, &mut rng);
        while full.value.bits() <= SHORT_EXPONENT_BITS {
            full = Exponent::random_full(g14, &mut rng);
        }
        assert_eq!(g14.exp_fixed(&table, &full), Err(GroupError::ExponentTooLong));
        // Tables of the toy group (all exponents short there) and mixing groups.
        let t = toy();
        let b = t.decode(&[13]).unwrap();
        let tt = t.fixed_base(&b).unwrap();
        for v in 1u8..11 {
            let e = Exponent { value: BigUint::from(v), group: t.fingerprint };
            assert_eq!(t.exp_fixed(&tt, &e).ok(), t.exp(&b, &e).ok(), "13^{v}");
        }
        let e = Exponent::random_short(g14, &mut rng);
        assert_eq!(t.exp_fixed(&tt, &e), Err(GroupError::WrongGroup));
        assert_eq!(g14.exp_fixed(&tt, &e), Err(GroupError::WrongGroup));
    }

    /// The lookup before audit F12, kept verbatim as the reference: a table
    /// of `BigUint` rows indexed by the secret digit, skipping zero digits.
    fn exp_fixed_indexed(g: &Group, base: &Element, e: &Exponent) -> Element {
        let mut rows = Vec::new();
        let mut power = base.value.clone();
        for _ in 0..SHORT_EXPONENT_BITS.div_ceil(8) {
            let mut row = vec![BigUint::one()];
            let mut acc = BigUint::one();
            for _ in 1..256 {
                acc = (&acc * &power) % &g.p;
                row.push(acc.clone());
            }
            power = (&acc * &power) % &g.p;
            rows.push(row);
        }
        let digits = e.value.to_bytes_le();
        let mut acc = BigUint::one();
        for (row, &digit) in rows.iter().zip(digits.iter()) {
            if digit != 0 {
                acc = (&acc * &row[usize::from(digit)]) % &g.p;
            }
        }
        g.element_from_result(acc).unwrap()
    }

    /// The masked scan gives what the indexed lookup gave, over random short
    /// exponents, exponents with zero and 0xff windows, and short ones whose
    /// high windows are all zero.
    #[test]
    fn masked_lookup_equals_indexed_lookup() {
        let mut rng = StdRng::seed_from_u64(21);
        let g14 = Group::modp2048();
        let base = g14.hash_to_element(b"t", b"masked");
        let table = g14.fixed_base(&base).unwrap();
        let mut exps: Vec<Exponent> = (0..24).map(|_| Exponent::random_short(g14, &mut rng)).collect();
        for bytes in [
            vec![2u8],
            vec![0xff, 0, 0xff],
            vec![0x80; 28],
            vec![0xff; 28],
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            exps.push(Exponent { value: BigUint::from_bytes_be(&bytes), group: g14.fingerprint });
        }
        for e in &exps {
            assert_eq!(g14.exp_fixed(&table, e).unwrap(), exp_fixed_indexed(g14, &base, e));
        }
        // The select itself: each digit of a row picks exactly its entry.
        let mut out = vec![0u64; table.limbs];
        for digit in [0u8, 1, 2, 127, 128, 254, 255] {
            table.select(3, digit, &mut out);
            let start = usize::from(digit) * table.limbs;
            assert_eq!(out.as_slice(), &table.row(3)[start..start + table.limbs], "digit {digit}");
        }
    }

    /// Montgomery products equal a·b·R⁻¹ mod p computed with num-bigint,
    /// at the edges (0, 1, p − 1, values with every word full) and at random.
    #[test]
    fn montgomery_products_match_bigint() {
        let mut rng = StdRng::seed_from_u64(44);
        for g in [Group::modp2048(), &toy()] {
            let mont = Montgomery::new(g.p());
            let n = mont.p.len();
            let r_inv = (BigUint::one() << (64 * n)).modpow(&(g.p() - 2u32), g.p());
            let limbs = |v: &BigUint| {
                let mut out = vec![0u64; n];
                set_limbs(&mut out, v);
                out
            };
            let mut values = vec![BigUint::zero(), BigUint::one(), g.p() - 1u32, g.p() - 2u32];
            for _ in 0..40 {
                let mut bytes = vec![0u8; g.element_len()];
                rng.fill_bytes(&mut bytes);
                values.push(BigUint::from_bytes_be(&bytes) % g.p());
            }
            let (mut out, mut scratch) = (vec![0u64; n], vec![0u64; n + 2]);
            for a in &values {
                for b in values.iter().take(8) {
                    mont.mul(&limbs(a), &limbs(b), &mut out, &mut scratch);
                    assert_eq!(out, limbs(&(a * b * &r_inv % g.p())), "{a} · {b}");
                }
            }
        }
    }

    #[test]
    fn exponents_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let g14 = Group::modp2048();
        let mut widest = 0;
        for _ in 0..50 {
            let e = Exponent::random_short(g14, &mut rng);
            assert!(!e.value.is_zero() && e.value.bits() <= SHORT_EXPONENT_BITS);
            widest = widest.max(e.value.bits());
            let f = Exponent::random_full(g14, &mut rng);
            assert!(!f.value.is_zero() && &f.value < g14.q());
        }
        // The full width is used (probability 2^-50 of failing by chance).
        assert_eq!(widest, SHORT_EXPONENT_BITS);
        let t = toy();
        for _ in 0..200 {
            let e = Exponent::random_short(&t, &mut rng);
            assert!(!e.value.is_zero() && &e.value < t.q());
        }
        assert_eq!(Exponent::from_bytes_mod_q(&t, &[22]).unwrap_err(), GroupError::ZeroExponent);
        assert_eq!(Exponent::from_bytes_mod_q(&t, &[12]).unwrap().value, BigUint::one());
    }

    #[test]
    fn arithmetic_and_group_mixing() {
        let g = Group::modp2048();
        let mut rng = StdRng::seed_from_u64(2);
        let a = g.hash_to_element(b"t", b"a");
        let x = Exponent::random_short(g, &mut rng);
        let y = Exponent::random_short(g, &mut rng);
        // (a^x)^y = (a^y)^x
        let axy = g.exp(&g.exp(&a, &x).unwrap(), &y).unwrap();
        let ayx = g.exp(&g.exp(&a, &y).unwrap(), &x).unwrap();
        assert_eq!(axy, ayx);
        let inv = g.inverse(&a).unwrap();
        assert_eq!(g.mul(&a, &inv), Err(GroupError::Identity));
        let b = g.hash_to_element(b"t", b"b");
        let ab = g.mul(&a, &b).unwrap();
        assert_eq!(g.mul(&ab, &inv).unwrap(), b);
        // Elements and exponents from the toy group are refused.
        let t = toy();
        let toy_el = t.decode(&[2]).unwrap();
        let toy_ex = Exponent::from_bytes_mod_q(&t, &[3]).unwrap();
        assert_eq!(g.exp(&toy_el, &x), Err(GroupError::WrongGroup));
        assert_eq!(g.exp(&a, &toy_ex), Err(GroupError::WrongGroup));
        assert_eq!(g.mul(&a, &toy_el), Err(GroupError::WrongGroup));
    }

    #[test]
    fn wipe_zeroes_value() {
        let mut n = BigUint::from_bytes_be(&[0xAB; 64]);
        wipe_biguint(&mut n);
        assert!(n.is_zero());
        let mut e = Group::modp2048().hash_to_element(b"t", b"k");
        e.zeroize();
        assert!(e.value().is_zero() && e.as_bytes().iter().all(|&b| b == 0));
    }
}
