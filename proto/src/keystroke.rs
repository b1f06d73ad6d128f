//! Keystroke-duration password hardening (seed 004).
//!
//! Paper: 민수홍, 나인순, 조동섭, "자바 애플릿을 이용한 시간 기반 사용자 인증 시스템"
//! (The Time Based Authentication System using Java Applet), Ewha Womans University;
//! the algorithm is its §3.3, steps 1-2-1 … 1-3, equations (1) and (2) and Figure 5.
//!
//! The client measures, for each password character, how long its key was held
//! (key press → key release, `keydown` → `keyup` in a browser). Each hold is
//! classified long (`1`) or short (`0`) relative to the others, and the
//! password's characters together with those bits give the *hardened password*,
//! which the client feeds into the slow password KDF instead of the bare
//! password. The server only ever sees the KDF's output, never the bits.
//!
//! ```text
//!  registration (1단계)                          sign-in (2단계)
//!  user types the password 2–3 times            user types the password once
//!      │ chars + hold durations                     │ chars + hold durations
//!      ▼                                            ▼
//!  enrol(password, samples)                     harden(password, durations)
//!      │ all typings classify alike?                │ classify → bits
//!      ▼                                            ▼
//!  HardenedPassword ── slow KDF ──► verifier    HardenedPassword ── slow KDF ──► compare
//!                                   (LDAP)
//! ```
//!
//! # Classification (§3.3 1-2, Figure 5)
//!
//! For durations `T_1 … T_N` (milliseconds):
//!
//! 1. **Even typing** (1-2-2): if `max T − min T ≤ 100 ms` ([`EVEN_TYPING_SPREAD_MS`])
//!    the user did not use a rhythm: every bit is `0` ([`Rhythm::Even`]).
//! 2. Otherwise the mean `T_a = ΣT_i / N` (eq. 1) splits the durations: those
//!    strictly above `T_a` form the upper group, the rest the lower group (1-2-1).
//! 3. **Ambiguous rhythm** (1-2-3): if `min(upper) − max(lower) ≤ 100 ms`
//!    ([`AMBIGUITY_GAP_MS`]) the user's long and short keys are too close to be
//!    told apart reliably: [`KeystrokeError::Ambiguous`] — ask the user to enrol
//!    again (at sign-in: to type the password again).
//! 4. **Pattern** (1-2-1): threshold `T_t = (min(upper) + max(lower)) / 2` (eq. 2);
//!    a duration `> T_t` is long (`1`), otherwise short (`0`) ([`Rhythm::Pattern`]).
//!
//! All arithmetic is on integers: `T_i > T_a` is tested as `N·T_i > ΣT`, and
//! `T_i > T_t` as `2·T_i > min(upper) + max(lower)`, so no rounding decides a bit.
//!
//! # The hardened password (§3.3 1-3)
//!
//! The paper says only that the new password is made from the characters and
//! their long/short values (its Figure 4 is not reproduced in the text). We use
//! an unambiguous, versioned encoding, hashed to a fixed length:
//!
//! ```text
//! hardened = SHA-256( "dirbroker keystroke-hardened password v1"     (DOMAIN_TAG, 40 bytes)
//!                     ‖ u32be(N)
//!                     ‖ for i in 1..=N:  u32be(scalar value of char_i) ‖ u8(bit_i) )
//! ```
//!
//! Every character record is fixed-width (5 bytes) and the count comes first,
//! so two different (password, bits) pairs never produce the same message; the
//! domain tag keeps the value apart from any other SHA-256 use and carries a
//! version for a future encoding (e.g. the paper's planned three-level
//! long/medium/short classes). Hashing gives a fixed 32-byte value, so a KDF
//! that truncates long inputs (bcrypt stops at 72 bytes) still sees all of it;
//! it costs no security because the slow, salted KDF comes after. Feed
//! [`HardenedPassword::as_bytes`] to a KDF that takes arbitrary bytes (Argon2id,
//! scrypt, PBKDF2); for a sink that wants text (or stops at a NUL byte), use
//! [`HardenedPassword::to_hex`].
//!
//! # Where this deviates from the paper, and why
//!
//! - **Eq. (2)** is printed `T_t = T_{n,min} + T_{l,max} / 2`; by the text of 1-2-1
//!   ("the mean of the upper group's minimum and the lower group's maximum") it
//!   means `(min(upper) + max(lower)) / 2`, which is what we compute.
//! - **Figure 5** tests even typing as `Tmax + Tmin/2 <= 100`; the text of 1-2-2
//!   says the *difference* of maximum and minimum, which we use. Like Figure 5,
//!   the even-typing test comes before the ambiguity test.
//! - **A duration equal to the mean** is not placed by the paper ("above the
//!   mean → upper, below → lower"); we put it in the lower group (short). A
//!   duration equal to the threshold is short, as in Figure 5 (`T_t >= T_i → 0`).
//!   Note that with this grouping the threshold split always equals the mean
//!   split (every upper duration is ≥ min(upper) > T_t, every lower one is
//!   ≤ max(lower) < T_t); the threshold is kept because it is the paper's rule.
//! - **The ambiguous case** asks the user to reset the password (1-2-3); we
//!   return an error that asks to enrol again, and at sign-in to retype.
//! - **The per-key tolerances** `T_i − E_i ≤ T_i ≤ T_i + E_i` in Figure 5 are
//!   never defined; reproducibility here comes from the classes themselves,
//!   and [`enrol`] checks it by requiring 2–10 typings that classify alike.
//! - **Storage**: the paper stores the new password in the database and
//!   compares it directly (1-4, 2-2). Here the hardened password is only an
//!   input to the slow salted KDF; it is never stored or sent.
//! - **Bounds the paper does not set**: each hold must be 1 ms ..= 10 s
//!   ([`MIN_DURATION_MS`], [`MAX_DURATION_MS`]); a 0 ms hold or a key held for
//!   longer than 10 s is a measuring fault, not a rhythm. Passwords may have at
//!   most [`MAX_PASSWORD_CHARS`] characters, which also keeps the integer sums
//!   far from overflow.
//! - **A one-character password** has no rhythm (its spread is 0), so it
//!   classifies as [`Rhythm::Even`] with the single bit `0`; it is accepted —
//!   password policy is not this module's job.
//!
//! # What the caller must do
//!
//! - One duration per Unicode scalar value of the password as given (a
//!   precomposed Korean syllable such as `한` is one character, so one
//!   duration). Normalise the password (e.g. NFC) the same way at enrolment and
//!   sign-in. With an input method that composes one character from several
//!   keys, the caller decides which hold stands for the character.
//! - Ignore auto-repeat (1-1-1): a held key must yield one character and one
//!   duration (`KeyboardEvent.repeat` in a browser).
//!
//! # What it is worth
//!
//! The bits add at most `log2(2^N − 1)` bits of guessing work, realistically far
//! fewer (people choose few, predictable long keys; even typing adds nothing).
//! A key logger that records key-up events sees the rhythm too. It is a
//! hardening of the password, not a second factor.
//!
//! # Secrets
//!
//! The bits and the hardened password zeroize on drop and have no `Debug` that
//! shows them; the SHA-256 state is zeroized on drop (`sha2` feature
//! `zeroize`); comparisons use `subtle`. [`Enrolment`] reports only the number
//! of long keys, never which ones.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Durations whose maximum and minimum differ by at most this much are *even
/// typing*: all bits `0` (paper §3.3 1-2-2: 100 ms).
pub const EVEN_TYPING_SPREAD_MS: u32 = 100;

/// If the shortest long key is at most this much longer than the longest short
/// key, the rhythm is *ambiguous* and the user must enrol again (paper §3.3
/// 1-2-3: 100 ms).
pub const AMBIGUITY_GAP_MS: u32 = 100;

/// Shortest accepted key hold. A 0 ms hold is a measuring fault (our bound).
pub const MIN_DURATION_MS: u32 = 1;

/// Longest accepted key hold: 10 s. Longer is a stuck key or a fault (our bound).
pub const MAX_DURATION_MS: u32 = 10_000;

/// Longest accepted password, in characters (our bound).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Fewest typings [`enrol`] accepts.
pub const MIN_ENROL_SAMPLES: usize = 2;

/// Most typings [`enrol`] accepts.
pub const MAX_ENROL_SAMPLES: usize = 10;

/// Length of a [`HardenedPassword`] in bytes.
pub const HARDENED_LEN: usize = 32;

/// Domain separation and version tag at the start of the hashed encoding.
pub const DOMAIN_TAG: &[u8; 40] = b"dirbroker keystroke-hardened password v1";

/// Why durations or a password could not be turned into a hardened password.
///
/// All of these are bad input from the person typing (or the client measuring
/// for them); the messages say what to do. None of them reveals which keys were
/// long.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystrokeError {
    /// The password has no characters.
    #[error("the password is empty")]
    EmptyPassword,
    /// No durations were given to classify.
    #[error("no key durations were measured; type the password again")]
    NoDurations,
    /// More characters (or durations) than [`MAX_PASSWORD_CHARS`].
    #[error("the password has {chars} characters; at most {max} are accepted", max = MAX_PASSWORD_CHARS)]
    PasswordTooLong {
        /// How many were given.
        chars: usize,
    },
    /// The number of durations is not the number of characters.
    #[error(
        "{durations} key durations were measured for a password of {chars} characters; \
         there must be exactly one per character — type the password again"
    )]
    LengthMismatch {
        /// Characters (Unicode scalar values) in the password.
        chars: usize,
        /// Durations given.
        durations: usize,
    },
    /// A hold outside [`MIN_DURATION_MS`]`..=`[`MAX_DURATION_MS`].
    #[error(
        "key {position} was held for {duration_ms} ms; a key hold must be between {min} and {max} ms — \
         type the password again",
        min = MIN_DURATION_MS,
        max = MAX_DURATION_MS
    )]
    DurationOutOfRange {
        /// 1-based position of the key in the password.
        position: usize,
        /// The measured duration.
        duration_ms: u32,
    },
    /// Long and short keys are too close to tell apart (paper §3.3 1-2-3).
    #[error(
        "the typing rhythm is ambiguous: the shortest long key is only {gap_ms} ms longer than the longest \
         short key (more than {need} ms is needed); ask the user to enrol again with clearly long and short \
         keys (at sign-in: to type the password again)",
        need = AMBIGUITY_GAP_MS
    )]
    Ambiguous {
        /// `min(upper) − max(lower)` in milliseconds.
        gap_ms: u32,
    },
    /// [`enrol`] got too few or too many typings.
    #[error("enrolment needs {min} to {max} typings of the password; got {got}", min = MIN_ENROL_SAMPLES, max = MAX_ENROL_SAMPLES)]
    SampleCount {
        /// Typings given.
        got: usize,
    },
    /// The typings given to [`enrol`] do not classify to the same long/short keys.
    #[error(
        "typing {sample} does not hold the same keys long and short as typing 1; \
         ask the user to enrol again, holding the same keys long each time"
    )]
    SamplesDisagree {
        /// 1-based number of the first typing that differs from the first one.
        sample: usize,
    },
}

/// How the user typed: with no rhythm, or with a long/short pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rhythm {
    /// Spread ≤ [`EVEN_TYPING_SPREAD_MS`]: all bits `0` (paper 1-2-2).
    Even,
    /// A clear long/short pattern: at least one `1` and at least one `0` (paper 1-2-1).
    Pattern,
}

/// One long (`true`) / short (`false`) bit per password character.
///
/// Secret: zeroized on drop; `Debug` shows only the count.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyBits(Vec<bool>);

impl KeyBits {
    /// Number of keys (= characters).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys (never true for a value made by this module).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of long keys.
    pub fn long_keys(&self) -> usize {
        self.0.iter().filter(|b| **b).count()
    }

    /// The bit of key `index` (0-based), if there is one.
    pub fn get(&self, index: usize) -> Option<bool> {
        self.0.get(index).copied()
    }

    /// The bits in password order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        self.0.iter().copied()
    }
}

impl ConstantTimeEq for KeyBits {
    fn ct_eq(&self, other: &Self) -> Choice {
        // The length is not secret (it is the password's length); the bits are.
        if self.0.len() != other.0.len() {
            return Choice::from(0);
        }
        self.0.iter().zip(other.0.iter()).fold(Choice::from(1), |acc, (a, b)| acc & u8::from(*a).ct_eq(&u8::from(*b)))
    }
}

impl fmt::Debug for KeyBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBits").field("keys", &self.0.len()).finish_non_exhaustive()
    }
}

/// The result of [`classify`]: the rhythm and one bit per key.
///
/// `Debug` shows only the number of keys: which kind of rhythm was used is
/// itself a hint (even typing means all bits are `0`).
#[derive(Clone)]
pub struct Classification {
    rhythm: Rhythm,
    bits: KeyBits,
}

impl Classification {
    /// Even typing or a pattern.
    pub fn rhythm(&self) -> Rhythm {
        self.rhythm
    }

    /// The long/short bits, one per key.
    pub fn bits(&self) -> &KeyBits {
        &self.bits
    }

    /// Number of long keys (0 for even typing).
    pub fn long_keys(&self) -> usize {
        self.bits.long_keys()
    }

    fn even(keys: usize) -> Classification {
        Classification { rhythm: Rhythm::Even, bits: KeyBits(vec![false; keys]) }
    }
}

impl fmt::Debug for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classification").field("keys", &self.bits.len()).finish_non_exhaustive()
    }
}

/// Classifies key hold durations (milliseconds) as long or short (paper §3.3 1-2,
/// Figure 5). See the module docs for the rules and the order they apply in.
pub fn classify(durations_ms: &[u32]) -> Result<Classification, KeystrokeError> {
    let n = durations_ms.len();
    if n == 0 {
        return Err(KeystrokeError::NoDurations);
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(KeystrokeError::PasswordTooLong { chars: n });
    }
    let mut min = u32::MAX;
    let mut max = 0_u32;
    let mut sum = 0_u64;
    for (i, &d) in durations_ms.iter().enumerate() {
        if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&d) {
            return Err(KeystrokeError::DurationOutOfRange { position: i.saturating_add(1), duration_ms: d });
        }
        min = min.min(d);
        max = max.max(d);
        // ≤ 1024 · 10 000: no overflow.
        sum = sum.saturating_add(u64::from(d));
    }

    // 1-2-2: even typing.
    if max.saturating_sub(min) <= EVEN_TYPING_SPREAD_MS {
        return Ok(Classification::even(n));
    }

    // 1-2-1, eq. (1): T_i > T_a  ⇔  N·T_i > ΣT  (exact).
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    let above_mean = |d: u32| u64::from(d).saturating_mul(n64) > sum;
    let min_upper = durations_ms.iter().copied().filter(|&d| above_mean(d)).min();
    let max_lower = durations_ms.iter().copied().filter(|&d| !above_mean(d)).max();
    let (Some(min_upper), Some(max_lower)) = (min_upper, max_lower) else {
        // Unreachable: a spread > 0 puts the maximum above the mean and the
        // minimum at or below it. Were every duration in one group they would
        // all be equal, which is even typing.
        return Ok(Classification::even(n));
    };

    // 1-2-3: ambiguous rhythm. min_upper > T_a ≥ max_lower, so the gap is > 0.
    let gap_ms = min_upper.saturating_sub(max_lower);
    if gap_ms <= AMBIGUITY_GAP_MS {
        return Err(KeystrokeError::Ambiguous { gap_ms });
    }

    // Eq. (2) and Figure 5: T_i > T_t  ⇔  2·T_i > min(upper) + max(lower)  (exact).
    let twice_threshold = u64::from(min_upper) + u64::from(max_lower);
    let bits = durations_ms.iter().map(|&d| 2 * u64::from(d) > twice_threshold).collect();
    Ok(Classification { rhythm: Rhythm::Pattern, bits: KeyBits(bits) })
}

/// The value the client feeds into the slow password KDF instead of the bare
/// password (see the module docs for its encoding).
///
/// Secret: zeroized on drop, compared in constant time, `Debug` redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HardenedPassword([u8; HARDENED_LEN]);

impl HardenedPassword {
    /// The 32 bytes to feed to the KDF.
    pub fn as_bytes(&self) -> &[u8; HARDENED_LEN] {
        &self.0
    }

    /// Lower-case hex (64 characters), for KDFs or protocols that take text.
    pub fn to_hex(&self) -> Zeroizing<String> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = Zeroizing::new(String::with_capacity(2 * HARDENED_LEN));
        for b in self.0 {
            for nibble in [b >> 4, b & 0x0f] {
                // nibble < 16: always found.
                if let Some(&c) = HEX.get(usize::from(nibble)) {
                    s.push(char::from(c));
                }
            }
        }
        s
    }
}

impl ConstantTimeEq for HardenedPassword {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for HardenedPassword {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for HardenedPassword {}

impl fmt::Debug for HardenedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HardenedPassword(<redacted>)")
    }
}

/// Hardens `password` with the hold durations measured while it was typed:
/// one duration per character (Unicode scalar value), in milliseconds.
///
/// [`KeystrokeError::Ambiguous`] means the user should type again (at
/// enrolment: enrol again with a clearer rhythm).
pub fn harden(password: &str, durations_ms: &[u32]) -> Result<HardenedPassword, KeystrokeError> {
    check_lengths(password, durations_ms)?;
    let classification = classify(durations_ms)?;
    Ok(encode(password, &classification.bits))
}

/// What a successful [`enrol`] gives: the hardened password for the KDF, and a
/// summary that is safe to show or log.
///
/// `Debug` shows the number of keys and of long keys, never which keys.
pub struct Enrolment {
    hardened: HardenedPassword,
    rhythm: Rhythm,
    keys: usize,
    long_keys: usize,
}

impl Enrolment {
    /// The hardened password to feed to the KDF at registration.
    pub fn hardened(&self) -> &HardenedPassword {
        &self.hardened
    }

    /// Consumes the enrolment, keeping only the hardened password.
    pub fn into_hardened(self) -> HardenedPassword {
        self.hardened
    }

    /// Whether the user typed evenly (then the hardening adds nothing; a UI
    /// may want to say so) or with a pattern.
    pub fn rhythm(&self) -> Rhythm {
        self.rhythm
    }

    /// Number of characters.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// Number of long keys (0 for even typing).
    pub fn long_keys(&self) -> usize {
        self.long_keys
    }
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolment")
            .field("keys", &self.keys)
            .field("long_keys", &self.long_keys)
            .finish_non_exhaustive()
    }
}

/// Enrols a keystroke-hardened password from several typings of it (the
/// paper's 1단계, with a repeat check the paper does not have): every typing
/// must classify to the same bits, else [`KeystrokeError::SamplesDisagree`].
/// An error in any typing (ambiguous rhythm, wrong count, bad duration) is
/// returned as it is.
pub fn enrol<S: AsRef<[u32]>>(password: &str, samples: &[S]) -> Result<Enrolment, KeystrokeError> {
    if !(MIN_ENROL_SAMPLES..=MAX_ENROL_SAMPLES).contains(&samples.len()) {
        return Err(KeystrokeError::SampleCount { got: samples.len() });
    }
    let mut first: Option<Classification> = None;
    for (i, sample) in samples.iter().enumerate() {
        let durations = sample.as_ref();
        check_lengths(password, durations)?;
        let c = classify(durations)?;
        match &first {
            None => first = Some(c),
            Some(f) => {
                if !bool::from(f.bits.ct_eq(&c.bits)) {
                    return Err(KeystrokeError::SamplesDisagree { sample: i.saturating_add(1) });
                }
            }
        }
    }
    let Some(c) = first else {
        // Unreachable: at least MIN_ENROL_SAMPLES typings were checked.
        return Err(KeystrokeError::SampleCount { got: samples.len() });
    };
    Ok(Enrolment {
        hardened: encode(password, &c.bits),
        rhythm: c.rhythm,
        keys: c.bits.len(),
        long_keys: c.long_keys(),
    })
}

fn check_lengths(password: &str, durations_ms: &[u32]) -> Result<(), KeystrokeError> {
    if password.is_empty() {
        return Err(KeystrokeError::EmptyPassword);
    }
    let chars = password.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return Err(KeystrokeError::PasswordTooLong { chars });
    }
    if chars != durations_ms.len() {
        return Err(KeystrokeError::LengthMismatch { chars, durations: durations_ms.len() });
    }
    Ok(())
}

/// `SHA-256(DOMAIN_TAG ‖ u32be(N) ‖ (u32be(char) ‖ u8(bit))*)`; the caller has
/// checked that there is one bit per character.
fn encode(password: &str, bits: &KeyBits) -> HardenedPassword {
    let mut h = Sha256::new();
    h.update(DOMAIN_TAG);
    // N ≤ MAX_PASSWORD_CHARS, so it fits.
    h.update(u32::try_from(bits.len()).unwrap_or(u32::MAX).to_be_bytes());
    let mut record = Zeroizing::new([0_u8; 5]);
    for (c, bit) in password.chars().zip(bits.iter()) {
        let [a, b, c2, d] = u32::from(c).to_be_bytes();
        *record = [a, b, c2, d, u8::from(bit)];
        h.update(record.as_slice());
    }
    let mut out = HardenedPassword([0_u8; HARDENED_LEN]);
    h.finalize_into((&mut out.0).into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(c: &Classification) -> Vec<u8> {
        c.bits().iter().map(u8::from).collect()
    }

    /// The encoding written out by hand, hashed independently of `encode`.
    fn by_hand(password: &str, bits: &[u8]) -> [u8; 32] {
        let mut msg = DOMAIN_TAG.to_vec();
        msg.extend_from_slice(&(password.chars().count() as u32).to_be_bytes());
        for (c, b) in password.chars().zip(bits) {
            msg.extend_from_slice(&(c as u32).to_be_bytes());
            msg.push(*b);
        }
        Sha256::digest(&msg).into()
    }

    // --- case 1: a clear long/short pattern (1-2-1) -------------------------

    #[test]
    fn clear_pattern_gives_the_expected_bits() {
        // ΣT = 860, T_a = 143.3; upper {250, 260}, lower max 95; gap 155; T_t = 172.5.
        let c = classify(&[80, 250, 90, 260, 85, 95]).unwrap();
        assert_eq!(c.rhythm(), Rhythm::Pattern);
        assert_eq!(bits(&c), [0, 1, 0, 1, 0, 0]);
        assert_eq!(c.long_keys(), 2);
    }

    #[test]
    fn pattern_hardening_depends_on_the_bits() {
        let a = harden("secret", &[80, 250, 90, 260, 85, 95]).unwrap();
        let b = harden("secret", &[250, 80, 90, 260, 85, 95]).unwrap(); // 1,0,0,1,0,0
        let even = harden("secret", &[80, 120, 90, 100, 85, 95]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, even);
        assert_ne!(b, even);
        assert_eq!(a.as_bytes(), &by_hand("secret", &[0, 1, 0, 1, 0, 0]));
        assert_eq!(b.as_bytes(), &by_hand("secret", &[1, 0, 0, 1, 0, 0]));
    }

    #[test]
    fn one_flipped_bit_changes_the_output() {
        // The same password with each single key made long in turn: all distinct.
        let base = [100_u32; 6];
        let mut seen = vec![harden("secret", &base).unwrap()];
        for i in 0..6 {
            let mut d = base;
            d[i] = 400;
            let h = harden("secret", &d).unwrap();
            assert!(seen.iter().all(|s| *s != h), "key {i}");
            seen.push(h);
        }
    }

    #[test]
    fn threshold_split_matches_mean_split() {
        // The paper's threshold rule and the mean split agree whenever a pattern is accepted.
        let samples: [&[u32]; 4] =
            [&[80, 250, 90, 260, 85, 95], &[100, 149, 250], &[10, 500, 500, 500], &[300, 20, 700, 40, 900]];
        for d in samples {
            let c = classify(d).unwrap();
            let sum: u64 = d.iter().map(|&x| u64::from(x)).sum();
            let n = d.len() as u64;
            let by_mean: Vec<u8> = d.iter().map(|&x| u8::from(u64::from(x) * n > sum)).collect();
            assert_eq!(bits(&c), by_mean, "{d:?}");
        }
    }

    #[test]
    fn value_equal_to_the_mean_is_short() {
        // ΣT = 1000, T_a = 250 exactly; 250 goes to the lower group.
        // upper {500}, lower {100, 150, 250}: gap 250, T_t = 375.
        let c = classify(&[100, 150, 250, 500]).unwrap();
        assert_eq!(bits(&c), [0, 0, 0, 1]);
    }

    #[test]
    fn pattern_always_has_a_long_and_a_short_key() {
        // All-long is impossible (the minimum is never above the mean); all-short is Even.
        let c = classify(&[10, 500, 500, 500]).unwrap();
        assert_eq!(bits(&c), [0, 1, 1, 1]);
    }

    // --- case 2: even typing (1-2-2) ----------------------------------------

    #[test]
    fn even_typing_gives_all_zeros() {
        let c = classify(&[110, 150, 130, 200, 120]).unwrap();
        assert_eq!(c.rhythm(), Rhythm::Even);
        assert_eq!(bits(&c), [0, 0, 0, 0, 0]);
        assert_eq!(c.long_keys(), 0);
        assert_eq!(harden("abcde", &[110, 150, 130, 200, 120]).unwrap().as_bytes(), &by_hand("abcde", &[0; 5]));
    }

    #[test]
    fn even_typing_boundary_100_vs_101_ms() {
        let c = classify(&[100, 200]).unwrap(); // spread exactly 100 → even
        assert_eq!(c.rhythm(), Rhythm::Even);
        assert_eq!(bits(&c), [0, 0]);

        let c = classify(&[100, 201]).unwrap(); // spread 101 → not even; gap 101 → pattern
        assert_eq!(c.rhythm(), Rhythm::Pattern);
        assert_eq!(bits(&c), [0, 1]);

        assert_ne!(harden("ab", &[100, 200]).unwrap(), harden("ab", &[100, 201]).unwrap());
    }

    #[test]
    fn even_typing_at_any_tempo_hardens_alike() {
        assert_eq!(harden("ab", &[100, 200]).unwrap(), harden("ab", &[1000, 1050]).unwrap());
    }

    // --- case 3: ambiguous rhythm (1-2-3) -----------------------------------

    #[test]
    fn ambiguous_rhythm_asks_to_enrol_again() {
        // ΣT = 480, T_a = 160; 160 is lower; upper {220}, lower max 160: gap 60.
        let err = classify(&[100, 160, 220]).unwrap_err();
        assert_eq!(err, KeystrokeError::Ambiguous { gap_ms: 60 });
        assert!(err.to_string().contains("enrol again"), "{err}");
        assert_eq!(harden("abc", &[100, 160, 220]).unwrap_err(), err);
    }

    #[test]
    fn ambiguous_boundary_100_vs_101_ms() {
        // T_a = 166.7; upper {250}, lower {100, 150}: gap exactly 100 → ambiguous.
        assert_eq!(classify(&[100, 150, 250]).unwrap_err(), KeystrokeError::Ambiguous { gap_ms: 100 });
        // gap 101 → pattern.
        let c = classify(&[100, 149, 250]).unwrap();
        assert_eq!(c.rhythm(), Rhythm::Pattern);
        assert_eq!(bits(&c), [0, 0, 1]);
    }

    #[test]
    fn even_test_comes_before_ambiguity_test() {
        // Gap 10 would be ambiguous, but spread 30 ≤ 100 makes it even first (Figure 5 order).
        assert_eq!(classify(&[100, 110, 120, 130]).unwrap().rhythm(), Rhythm::Even);
    }

    // --- reproducibility ----------------------------------------------------

    #[test]
    fn jittered_typings_of_the_same_pattern_harden_alike() {
        let reference = harden("secret", &[80, 250, 90, 260, 85, 95]).unwrap();
        for d in [[95, 240, 80, 275, 70, 110], [60, 300, 120, 230, 75, 88], [150, 600, 140, 480, 160, 155]] {
            assert_eq!(harden("secret", &d).unwrap(), reference, "{d:?}");
        }
    }

    #[test]
    fn hardened_is_not_the_password() {
        let h = harden("secret", &[80, 250, 90, 260, 85, 95]).unwrap();
        assert_ne!(h.as_slice_for_test(), b"secret".as_slice());
        let plain: [u8; 32] = Sha256::digest(b"secret").into();
        assert_ne!(h.as_bytes(), &plain);
        // Even typing adds no bits but is still not the bare password.
        let e = harden("secret", &[100; 6]).unwrap();
        assert_ne!(e.as_bytes(), &plain);
    }

    #[test]
    fn different_passwords_same_rhythm_differ() {
        let d = [80, 250, 90, 260, 85, 95];
        assert_ne!(harden("secret", &d).unwrap(), harden("secreT", &d).unwrap());
        assert_ne!(harden("ab", &[100, 100]).unwrap(), harden("ba", &[100, 100]).unwrap());
    }

    #[test]
    fn known_answer_vectors() {
        // Computed independently (Python hashlib) from the encoding in the module docs,
        // so another client (the sign-in page's script) can check itself against them.
        let h = harden("ab", &[80, 250]).unwrap();
        assert_eq!(h.to_hex().as_str(), KAT_AB_01);
        let h = harden("비밀", &[120, 130]).unwrap();
        assert_eq!(h.to_hex().as_str(), KAT_KOREAN_EVEN);
    }

    const KAT_AB_01: &str = "d2b97dd28d165f51db26bcfead88b1f6550e01c1495e1a097d64d0c174b16a1c";
    const KAT_KOREAN_EVEN: &str = "98ff0504320641ef2ee8821d469147239e2704f8d8994413089954e81108e612";

    // --- input errors -------------------------------------------------------

    #[test]
    fn length_mismatch_is_refused() {
        assert_eq!(
            harden("secret", &[80, 250, 90]).unwrap_err(),
            KeystrokeError::LengthMismatch { chars: 6, durations: 3 }
        );
        assert_eq!(
            harden("ab", &[80, 250, 90]).unwrap_err(),
            KeystrokeError::LengthMismatch { chars: 2, durations: 3 }
        );
    }

    #[test]
    fn empty_input_is_refused() {
        assert_eq!(harden("", &[]).unwrap_err(), KeystrokeError::EmptyPassword);
        assert_eq!(harden("", &[100]).unwrap_err(), KeystrokeError::EmptyPassword);
        assert_eq!(classify(&[]).unwrap_err(), KeystrokeError::NoDurations);
    }

    #[test]
    fn durations_out_of_bounds_are_refused() {
        assert_eq!(
            classify(&[80, 0, 90]).unwrap_err(),
            KeystrokeError::DurationOutOfRange { position: 2, duration_ms: 0 }
        );
        assert_eq!(
            harden("abc", &[80, 250, 10_001]).unwrap_err(),
            KeystrokeError::DurationOutOfRange { position: 3, duration_ms: 10_001 }
        );
        assert_eq!(
            classify(&[1, u32::MAX]).unwrap_err(),
            KeystrokeError::DurationOutOfRange { position: 2, duration_ms: u32::MAX }
        );
        // The bounds themselves are accepted: spread 9 999, upper {10 000}, lower {1}.
        assert_eq!(bits(&classify(&[MIN_DURATION_MS, MAX_DURATION_MS]).unwrap()), [0, 1]);
    }

    #[test]
    fn too_long_password_is_refused() {
        let pw = "a".repeat(MAX_PASSWORD_CHARS + 1);
        let d = vec![100; MAX_PASSWORD_CHARS + 1];
        assert_eq!(harden(&pw, &d).unwrap_err(), KeystrokeError::PasswordTooLong { chars: MAX_PASSWORD_CHARS + 1 });
        assert_eq!(classify(&d).unwrap_err(), KeystrokeError::PasswordTooLong { chars: MAX_PASSWORD_CHARS + 1 });
        // The maximum itself works, with extreme values and no overflow.
        let pw = "a".repeat(MAX_PASSWORD_CHARS);
        let mut d = vec![MAX_DURATION_MS; MAX_PASSWORD_CHARS];
        d[0] = MIN_DURATION_MS;
        let c = classify(&d).unwrap();
        assert_eq!(c.long_keys(), MAX_PASSWORD_CHARS - 1);
        harden(&pw, &d).unwrap();
    }

    #[test]
    fn korean_characters_count_as_one_key_each() {
        let pw = "비밀번호"; // 4 chars, 12 bytes
        assert_eq!(pw.len(), 12);
        let c = classify(&[90, 300, 85, 310]).unwrap();
        assert_eq!(bits(&c), [0, 1, 0, 1]);
        let h = harden(pw, &[90, 300, 85, 310]).unwrap();
        assert_eq!(h.as_bytes(), &by_hand(pw, &[0, 1, 0, 1]));
        assert_eq!(harden(pw, &[90; 12]).unwrap_err(), KeystrokeError::LengthMismatch { chars: 4, durations: 12 });
        assert_ne!(h, harden(pw, &[300, 90, 85, 310]).unwrap());
    }

    #[test]
    fn one_character_password_is_even() {
        let c = classify(&[250]).unwrap();
        assert_eq!(c.rhythm(), Rhythm::Even);
        assert_eq!(bits(&c), [0]);
        let h = harden("x", &[250]).unwrap();
        assert_eq!(h, harden("x", &[40]).unwrap());
        assert_eq!(h.as_bytes(), &by_hand("x", &[0]));
    }

    // --- enrolment ----------------------------------------------------------

    #[test]
    fn enrol_with_agreeing_typings() {
        let samples =
            vec![vec![80, 250, 90, 260, 85, 95], vec![95, 240, 80, 275, 70, 110], vec![60, 300, 120, 230, 75, 88]];
        let e = enrol("secret", &samples).unwrap();
        assert_eq!(e.rhythm(), Rhythm::Pattern);
        assert_eq!(e.keys(), 6);
        assert_eq!(e.long_keys(), 2);
        // Sign-in with any later typing of the same rhythm gives the enrolled value.
        assert_eq!(e.hardened(), &harden("secret", &[100, 280, 70, 250, 90, 105]).unwrap());
    }

    #[test]
    fn enrol_even_typings() {
        let e = enrol("secret", &[[100; 6], [120, 130, 110, 100, 150, 140]]).unwrap();
        assert_eq!(e.rhythm(), Rhythm::Even);
        assert_eq!(e.long_keys(), 0);
        assert_eq!(e.into_hardened(), harden("secret", &[90; 6]).unwrap());
    }

    #[test]
    fn enrol_with_disagreeing_typings() {
        let samples = [
            vec![80, 250, 90, 260, 85, 95],
            vec![95, 240, 80, 275, 70, 110],
            vec![80, 250, 300, 260, 85, 95], // third key now long
        ];
        let err = enrol("secret", &samples).unwrap_err();
        assert_eq!(err, KeystrokeError::SamplesDisagree { sample: 3 });
        assert!(err.to_string().contains("enrol again"), "{err}");
        // A pattern and an even typing disagree too.
        let err = enrol("secret", &[vec![80, 250, 90, 260, 85, 95], vec![100; 6]]).unwrap_err();
        assert_eq!(err, KeystrokeError::SamplesDisagree { sample: 2 });
    }

    #[test]
    fn enrol_propagates_errors_of_a_typing() {
        let err = enrol("abc", &[vec![100, 300, 110], vec![100, 160, 220]]).unwrap_err();
        assert_eq!(err, KeystrokeError::Ambiguous { gap_ms: 60 });
        let err = enrol("abc", &[vec![100, 300, 110], vec![100, 300]]).unwrap_err();
        assert_eq!(err, KeystrokeError::LengthMismatch { chars: 3, durations: 2 });
        let err = enrol("", &[vec![100], vec![100]]).unwrap_err();
        assert_eq!(err, KeystrokeError::EmptyPassword);
    }

    #[test]
    fn enrol_sample_count_bounds() {
        assert_eq!(enrol("ab", &[[100, 300]]).unwrap_err(), KeystrokeError::SampleCount { got: 1 });
        assert_eq!(enrol::<Vec<u32>>("ab", &[]).unwrap_err(), KeystrokeError::SampleCount { got: 0 });
        assert_eq!(enrol("ab", &[[100, 300]; 11]).unwrap_err(), KeystrokeError::SampleCount { got: 11 });
        enrol("ab", &[[100, 300]; 10]).unwrap();
        enrol("ab", &[[100, 300]; 2]).unwrap();
    }

    // --- secrets ------------------------------------------------------------

    #[test]
    fn debug_reveals_neither_bits_nor_hardened_password() {
        let d = [80, 250, 90, 260, 85, 95];
        let c = classify(&d).unwrap();
        let h = harden("secret", &d).unwrap();
        let e = enrol("secret", &[d, d]).unwrap();
        let shown = format!("{c:?} {:?} {h:?} {e:?}", c.bits());
        assert!(!shown.contains("true") && !shown.contains("false"), "{shown}");
        assert!(!shown.contains("Pattern") && !shown.contains("Even"), "{shown}");
        assert!(!shown.contains(&h.to_hex()[..8]), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("long_keys: 2"), "{shown}");
    }

    #[test]
    fn bits_compare_in_constant_time_api() {
        let a = classify(&[80, 250, 90, 260, 85, 95]).unwrap();
        let b = classify(&[95, 240, 80, 275, 70, 110]).unwrap();
        let c = classify(&[250, 80, 90, 260, 85, 95]).unwrap();
        let short = classify(&[80, 250]).unwrap();
        assert!(bool::from(a.bits().ct_eq(b.bits())));
        assert!(!bool::from(a.bits().ct_eq(c.bits())));
        assert!(!bool::from(a.bits().ct_eq(short.bits())));
    }

    impl HardenedPassword {
        fn as_slice_for_test(&self) -> &[u8] {
            &self.0
        }
    }
}
