//! SPEKE with the ISO/IEC 11770-4:2017 repair: the source and destination
//! data centers agree a session key from a shared password (BRIEF §2.2,
//! operation module step 1).
//!
//! References: Jablon, "Strong password-only authenticated key exchange",
//! ACM CCR 26(5), 1996; Hao & Shahandashti, "The SPEKE Protocol Revisited",
//! SSR 2014 (the impersonation and key-malleability attacks); Hao, Metere,
//! Shahandashti & Dong, "Analysing and Patching SPEKE in ISO/IEC", IEEE TIFS
//! 2018 (the patch adopted in 11770-4:2017).
//!
//! ```text
//!   A (password π)                                  B (password π)
//!   g = H2G(π)                                      g = H2G(π)
//!   x ∈R [1, 2^224)                                 y ∈R [1, 2^224)
//!                  ── A, X = g^x ──────────────▶
//!                  ◀────────────── B, Y = g^y ──      (one round, any order)
//!   check Y; K = Y^x                                check X; K = X^y
//!   sID = max(s_A, s_B) ‖ min(s_A, s_B),  s_A = A‖X, s_B = B‖Y
//!   κ_kc ‖ κ_s = HKDF(K, "dirbroker SPEKE v1 keys" ‖ sID)
//!                  ── T_A = HMAC(κ_kc, "KC_1_U"‖A‖B‖X‖Y) ──▶
//!                  ◀── T_B = HMAC(κ_kc, "KC_1_U"‖B‖A‖Y‖X) ──
//!   verify T_B → κ_s                                verify T_A → κ_s
//! ```
//!
//! One type per waiting state: [`Speke::start`] → [`AwaitingPeerValue`] →
//! [`AwaitingKeyConfirmation`] → [`SessionKey`]. Every transition consumes
//! the state, so a failed check aborts the run, and the session key exists
//! only after the peer's confirmation tag has verified.
//!
//! Why each piece is there:
//! - range and subgroup checks on Y: a value outside the order-q subgroup
//!   would confine K to a small set (Jablon 1996);
//! - identities and both values in sID and the tags: a man in the middle who
//!   raises X and Y to z (key malleability) or splices two sessions
//!   (impersonation) changes sID, so the keys, and hence the tags, differ;
//! - directional tags: a tag cannot be reflected back to its sender;
//! - Y ≠ X: our own addition, refusing the plainest reflection outright.
//!
//! Deviations from the 2017 text (which we have not read; see
//! protocol-facts.md §1): exponents are 224-bit short exponents (NIST SP
//! 800-56A) instead of [1, q−1]; the KDF is HKDF-SHA256 with sID in `info`;
//! tags follow Hao–Shahandashti's NIST-style form, with u32 length prefixes
//! on identities; key confirmation is mandatory.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rand::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::encoding::Lp;
use crate::group::{Element, Exponent, FixedBase, Group, GroupError};

/// Domain tag for hashing the password to the generator g.
pub const GENERATOR_DOMAIN: &[u8] = b"dirbroker SPEKE v1 generator";
/// HKDF `info` prefix; sID follows it.
pub const KDF_INFO: &[u8] = b"dirbroker SPEKE v1 keys";
/// Label that opens both confirmation MACs (NIST SP 800-56A "KC_1_U").
pub const KC_LABEL: &[u8] = b"KC_1_U";
/// Bytes in a confirmation tag (HMAC-SHA256).
pub const TAG_LEN: usize = 32;
/// Bytes in the session key κ_s.
pub const SESSION_KEY_LEN: usize = 32;

/// Why a SPEKE run was aborted, by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpekeError {
    /// The peer sent bytes that do not parse (wrong length).
    #[error("malformed SPEKE value from peer: {0}")]
    MalformedValue(#[source] GroupError),
    /// The peer sent a tag of the wrong length.
    #[error("malformed SPEKE confirmation tag: {actual} bytes, expected {TAG_LEN}")]
    MalformedTag {
        /// Bytes received.
        actual: usize,
    },
    /// The peer's value parsed but fails the range or subgroup check: a
    /// misbehaving peer or an attacker (log as a security event).
    #[error("invalid SPEKE value from peer: {0}")]
    InvalidValue(#[source] GroupError),
    /// The peer's value equals the one we sent: a reflection.
    #[error("peer echoed our own SPEKE value (reflection)")]
    ReflectedValue,
    /// The peer's tag does not verify: a different password, or the
    /// exchange was tampered with (log as a security event).
    #[error("SPEKE key confirmation failed (wrong password or tampering)")]
    KeyConfirmationFailed,
    /// The caller used the API wrongly (our own bug, not the peer's).
    #[error("SPEKE misuse: {0}")]
    Misuse(&'static str),
}

impl SpekeError {
    /// Who is at fault: the peer (or someone on the path), or our own misuse.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            SpekeError::Misuse(_) => Fault::Bug,
            SpekeError::MalformedValue(_) | SpekeError::MalformedTag { .. } => Fault::Malformed,
            _ => Fault::PeerMisbehaved,
        }
    }

    /// True when the peer (or someone on the path) is at fault, false for
    /// local misuse.
    pub fn is_peer_fault(&self) -> bool {
        self.fault().blames_peer()
    }

    fn from_received(err: GroupError) -> SpekeError {
        match err {
            GroupError::WrongLength { .. } => SpekeError::MalformedValue(err),
            GroupError::OutOfRange | GroupError::NotInSubgroup => SpekeError::InvalidValue(err),
            GroupError::WrongGroup
            | GroupError::ZeroExponent
            | GroupError::Identity
            | GroupError::NotSafePrime
            | GroupError::ExponentTooLong => SpekeError::Misuse("group arithmetic on a received value failed"),
        }
    }
}

/// Entry point of the protocol.
#[derive(Debug)]
pub struct Speke;

impl Speke {
    /// Steps 1–2: derive g = H2G(π), pick x, and return the state awaiting
    /// the peer's value together with X = g^x to send (with `my_id`).
    ///
    /// Identities must be non-empty and distinct; both sides must pass the
    /// same two identities (each its own first).
    pub fn start<'g, R: CryptoRng + ?Sized>(
        group: &'g Group,
        password: &[u8],
        my_id: &[u8],
        peer_id: &[u8],
        rng: &mut R,
    ) -> Result<(AwaitingPeerValue<'g>, Element), SpekeError> {
        check_identities(my_id, peer_id)?;
        let mut generator = group.hash_to_element(GENERATOR_DOMAIN, password);
        let x = Exponent::random_short(group, rng);
        let exchanged = group.exp(&generator, &x);
        // g is as sensitive as the password: it allows offline guessing.
        generator.zeroize();
        begin(group, x, exchanged, my_id, peer_id)
    }

    /// Step 1 done once for a password: g with a fixed-base table, so that
    /// every later session with the same peer ([`Speke::start_prepared`])
    /// computes g^x with ≤ 28 multiplications instead of a full
    /// exponentiation. The table is as secret as the password.
    pub fn prepare<'g>(group: &'g Group, password: &[u8]) -> Result<PreparedPassword<'g>, SpekeError> {
        let mut generator = group.hash_to_element(GENERATOR_DOMAIN, password);
        let table = group.fixed_base(&generator);
        generator.zeroize();
        let table = table.map_err(|_| SpekeError::Misuse("generator from another group"))?;
        Ok(PreparedPassword { group, table })
    }

    /// [`Speke::start`] with a prepared password.
    pub fn start_prepared<'g, R: CryptoRng + ?Sized>(
        prepared: &PreparedPassword<'g>,
        my_id: &[u8],
        peer_id: &[u8],
        rng: &mut R,
    ) -> Result<(AwaitingPeerValue<'g>, Element), SpekeError> {
        check_identities(my_id, peer_id)?;
        let group = prepared.group;
        let x = Exponent::random_short(group, rng);
        let exchanged = group.exp_fixed(&prepared.table, &x);
        begin(group, x, exchanged, my_id, peer_id)
    }
}

/// A password's generator with its fixed-base table ([`Speke::prepare`]).
#[derive(Debug)]
pub struct PreparedPassword<'g> {
    group: &'g Group,
    table: FixedBase,
}

fn check_identities(my_id: &[u8], peer_id: &[u8]) -> Result<(), SpekeError> {
    if my_id.is_empty() || peer_id.is_empty() {
        return Err(SpekeError::Misuse("identities must not be empty"));
    }
    if my_id == peer_id {
        return Err(SpekeError::Misuse("my identity and the peer's must differ"));
    }
    if u32::try_from(my_id.len()).is_err() || u32::try_from(peer_id.len()).is_err() {
        return Err(SpekeError::Misuse("identity longer than 2^32 − 1 bytes"));
    }
    Ok(())
}

fn begin<'g>(
    group: &'g Group,
    x: Exponent,
    exchanged: Result<Element, GroupError>,
    my_id: &[u8],
    peer_id: &[u8],
) -> Result<(AwaitingPeerValue<'g>, Element), SpekeError> {
    let my_value = exchanged.map_err(|_| SpekeError::Misuse("exponentiation left the subgroup"))?;
    let state =
        AwaitingPeerValue { group, x, my_id: my_id.to_vec(), peer_id: peer_id.to_vec(), my_value: my_value.clone() };
    Ok((state, my_value))
}

/// Waiting for the peer's value (Y for A, X for B).
pub struct AwaitingPeerValue<'g> {
    group: &'g Group,
    x: Exponent,
    my_id: Vec<u8>,
    peer_id: Vec<u8>,
    my_value: Element,
}

impl fmt::Debug for AwaitingPeerValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingPeerValue")
            .field("my_id", &String::from_utf8_lossy(&self.my_id))
            .field("peer_id", &String::from_utf8_lossy(&self.peer_id))
            .field("my_value", &self.my_value)
            .finish_non_exhaustive()
    }
}

impl<'g> AwaitingPeerValue<'g> {
    /// The value this side sends (X = g^x).
    pub fn my_value(&self) -> &Element {
        &self.my_value
    }

    /// Steps 3–6: validate the peer's value (length, 2 ≤ Y ≤ p−2, subgroup,
    /// Y ≠ X), compute K = Y^x, build sID and derive κ_kc ‖ κ_s; both
    /// confirmation tags are computed here.
    pub fn receive(self, peer_value: &[u8]) -> Result<AwaitingKeyConfirmation, SpekeError> {
        let peer_value = self.group.decode(peer_value).map_err(SpekeError::from_received)?;
        if peer_value == self.my_value {
            return Err(SpekeError::ReflectedValue);
        }
        let mut shared =
            self.group.exp(&peer_value, &self.x).map_err(|_| SpekeError::Misuse("exponentiation left the subgroup"))?;

        let sid = session_id(&self.my_id, &self.my_value, &self.peer_id, &peer_value);

        let mut okm = Zeroizing::new([0u8; 2 * SESSION_KEY_LEN]);
        let derived = crate::crypto::hkdf(shared.as_bytes(), &[], &[KDF_INFO, &sid], okm.as_mut_slice());
        shared.zeroize();
        derived.map_err(|_| SpekeError::Misuse("HKDF output length"))?;
        let (kc_key, session_key) = okm.split_at(SESSION_KEY_LEN);

        let my_tag = confirmation_tag(kc_key, &self.my_id, &self.peer_id, &self.my_value, &peer_value)?;
        let expected_peer_tag = confirmation_tag(kc_key, &self.peer_id, &self.my_id, &peer_value, &self.my_value)?;
        let mut key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
        key.copy_from_slice(session_key);

        Ok(AwaitingKeyConfirmation {
            my_tag,
            expected_peer_tag: Zeroizing::new(expected_peer_tag),
            session_key: key,
            session_id: sid,
        })
    }
}

/// Waiting for the peer's confirmation tag (step 7). Holds κ_s but will not
/// hand it out until the tag verifies.
pub struct AwaitingKeyConfirmation {
    my_tag: [u8; TAG_LEN],
    expected_peer_tag: Zeroizing<[u8; TAG_LEN]>,
    session_key: Zeroizing<[u8; SESSION_KEY_LEN]>,
    session_id: Vec<u8>,
}

impl fmt::Debug for AwaitingKeyConfirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingKeyConfirmation").finish_non_exhaustive()
    }
}

impl AwaitingKeyConfirmation {
    /// Our confirmation tag to send: HMAC(κ_kc, "KC_1_U" ‖ me ‖ peer ‖ my
    /// value ‖ peer's value). Safe to send before the peer's tag arrives.
    pub fn my_tag(&self) -> [u8; TAG_LEN] {
        self.my_tag
    }

    /// sID = max(s_A, s_B) ‖ min(s_A, s_B), identical on both sides of an
    /// honest run; bind it into keys derived later.
    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }

    /// Step 7: verify the peer's tag (constant-time) and only then release
    /// the session key κ_s.
    pub fn confirm(self, peer_tag: &[u8]) -> Result<SessionKey, SpekeError> {
        if peer_tag.len() != TAG_LEN {
            return Err(SpekeError::MalformedTag { actual: peer_tag.len() });
        }
        if !bool::from(self.expected_peer_tag.as_slice().ct_eq(peer_tag)) {
            return Err(SpekeError::KeyConfirmationFailed);
        }
        Ok(SessionKey { key: self.session_key, session_id: self.session_id })
    }
}

/// The confirmed session key κ_s (32 bytes, wiped on drop) and the sID it
/// was derived under.
pub struct SessionKey {
    key: Zeroizing<[u8; SESSION_KEY_LEN]>,
    session_id: Vec<u8>,
}

impl SessionKey {
    /// The key bytes. Feed them to a KDF or AEAD; do not log them.
    pub fn expose(&self) -> &[u8; SESSION_KEY_LEN] {
        &self.key
    }

    /// The session identifier sID both sides agreed on.
    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// Step 5: s = u32(len(id)) ‖ id ‖ value (fixed width); sID = max ‖ min,
/// compared bytewise, so both sides build the same bytes.
fn session_id(my_id: &[u8], my_value: &Element, peer_id: &[u8], peer_value: &Element) -> Vec<u8> {
    let part = |id: &[u8], value: &Element| Lp::default().part(id).raw(value.as_bytes()).into_bytes();
    let mine = part(my_id, my_value);
    let theirs = part(peer_id, peer_value);
    let (hi, lo) = if mine >= theirs { (mine, theirs) } else { (theirs, mine) };
    let mut sid = hi;
    sid.extend_from_slice(&lo);
    sid
}

/// HMAC-SHA256(κ_kc, "KC_1_U" ‖ u32 len ‖ sender ‖ u32 len ‖ receiver ‖
/// sender's value ‖ receiver's value).
fn confirmation_tag(
    kc_key: &[u8],
    sender: &[u8],
    receiver: &[u8],
    sender_value: &Element,
    receiver_value: &Element,
) -> Result<[u8; TAG_LEN], SpekeError> {
    let ids = Lp::default().part(sender).part(receiver);
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(kc_key)
        .map_err(|_| SpekeError::Misuse("HMAC key length"))?
        .chain_update(KC_LABEL)
        .chain_update(ids.bytes())
        .chain_update(sender_value.as_bytes())
        .chain_update(receiver_value.as_bytes());
    Ok(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use num_traits::One;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const PW: &[u8] = b"correct horse battery staple";
    const SEOUL: &[u8] = b"DC-SEOUL-1";
    const BUSAN: &[u8] = b"DC-BUSAN-2";

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// Runs both sides to the confirmation state.
    fn exchange(
        group: &Group,
        pw_a: &[u8],
        pw_b: &[u8],
        seed: u64,
    ) -> (AwaitingKeyConfirmation, AwaitingKeyConfirmation) {
        let mut r = rng(seed);
        let (a, x) = Speke::start(group, pw_a, SEOUL, BUSAN, &mut r).unwrap();
        let (b, y) = Speke::start(group, pw_b, BUSAN, SEOUL, &mut r).unwrap();
        (a.receive(y.as_bytes()).unwrap(), b.receive(x.as_bytes()).unwrap())
    }

    fn encode(group: &Group, v: &BigUint) -> Vec<u8> {
        let raw = v.to_bytes_be();
        let mut out = vec![0u8; group.element_len().saturating_sub(raw.len())];
        out.extend_from_slice(&raw);
        out
    }

    #[test]
    fn honest_run_agrees_on_key_and_session_id() {
        let g = Group::modp2048();
        let (a, b) = exchange(g, PW, PW, 1);
        assert_eq!(a.session_id(), b.session_id());
        assert_eq!(a.session_id().len(), 2 * (4 + SEOUL.len() + 256));
        let (ta, tb) = (a.my_tag(), b.my_tag());
        assert_ne!(ta, tb, "tags are directional");
        let ka = a.confirm(&tb).unwrap();
        let kb = b.confirm(&ta).unwrap();
        assert_eq!(ka.expose(), kb.expose());
        assert_eq!(ka.session_id(), kb.session_id());
        assert_eq!(format!("{ka:?}"), "SessionKey(<redacted>)");
    }

    #[test]
    fn prepared_and_plain_sides_interoperate() {
        let g = Group::modp2048();
        let mut r = rng(11);
        let prepared = Speke::prepare(g, PW).unwrap();
        assert!(format!("{prepared:?}").contains("table: FixedBase(<redacted>)"));
        for _ in 0..3 {
            let (a, x) = Speke::start_prepared(&prepared, SEOUL, BUSAN, &mut r).unwrap();
            let (b, y) = Speke::start(g, PW, BUSAN, SEOUL, &mut r).unwrap();
            let (a, b) = (a.receive(y.as_bytes()).unwrap(), b.receive(x.as_bytes()).unwrap());
            let (ta, tb) = (a.my_tag(), b.my_tag());
            assert_eq!(a.confirm(&tb).unwrap().expose(), b.confirm(&ta).unwrap().expose());
        }
        // A prepared wrong password still fails confirmation.
        let wrong = Speke::prepare(g, b"another password").unwrap();
        let (a, x) = Speke::start_prepared(&wrong, SEOUL, BUSAN, &mut r).unwrap();
        let (b, y) = Speke::start(g, PW, BUSAN, SEOUL, &mut r).unwrap();
        let (a, b) = (a.receive(y.as_bytes()).unwrap(), b.receive(x.as_bytes()).unwrap());
        let (ta, tb) = (a.my_tag(), b.my_tag());
        assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(b.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    #[test]
    fn honest_run_in_toy_group() {
        let g = Group::new_safe_prime(BigUint::from(23u32)).unwrap();
        // In a group with 10 usable values X = Y happens by chance; such runs
        // abort as reflections, which is the documented behaviour.
        let mut completed = 0;
        for seed in 0..40 {
            let mut r = rng(seed);
            let (a, x) = Speke::start(&g, PW, SEOUL, BUSAN, &mut r).unwrap();
            let (b, y) = Speke::start(&g, PW, BUSAN, SEOUL, &mut r).unwrap();
            if x == y {
                assert_eq!(a.receive(y.as_bytes()).unwrap_err(), SpekeError::ReflectedValue);
                continue;
            }
            let (a, b) = (a.receive(y.as_bytes()).unwrap(), b.receive(x.as_bytes()).unwrap());
            let (ta, tb) = (a.my_tag(), b.my_tag());
            assert_eq!(a.confirm(&tb).unwrap().expose(), b.confirm(&ta).unwrap().expose());
            completed += 1;
        }
        assert!(completed > 20);
    }

    #[test]
    fn wrong_password_fails_confirmation_on_both_sides() {
        let g = Group::modp2048();
        let (a, b) = exchange(g, PW, b"correct horse battery stapler", 2);
        let (ta, tb) = (a.my_tag(), b.my_tag());
        assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(b.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    #[test]
    fn generator_is_in_subgroup() {
        let g = Group::modp2048();
        let generator = g.hash_to_element(GENERATOR_DOMAIN, PW);
        assert!(generator.value().modpow(g.q(), g.p()).is_one());
        assert_eq!(g.q(), &((g.p() - 1u32) >> 1u32));
    }

    /// Hao–Shahandashti 2014, key malleability: Mallory raises both values
    /// to z. Under the old protocol both sides derive H(g^{xyz}) and succeed
    /// without noticing; here sID differs, so confirmation fails both ways.
    #[test]
    fn key_malleability_attack_is_detected() {
        let g = Group::modp2048();
        let mut r = rng(3);
        let (alice, x) = Speke::start(g, PW, SEOUL, BUSAN, &mut r).unwrap();
        let (bob, y) = Speke::start(g, PW, BUSAN, SEOUL, &mut r).unwrap();

        let z = Exponent::random_short(g, &mut r);
        let x_mauled = g.exp(&x, &z).unwrap();
        let y_mauled = g.exp(&y, &z).unwrap();

        // The attack is real: the mauled values pass every value check and
        // the raw DH values agree, K = g^{xyz} on both sides.
        assert!(g.decode(x_mauled.as_bytes()).is_ok() && g.decode(y_mauled.as_bytes()).is_ok());
        let k_alice = g.exp(&y_mauled, &alice.x).unwrap();
        let k_bob = g.exp(&x_mauled, &bob.x).unwrap();
        assert_eq!(k_alice, k_bob);

        let alice = alice.receive(y_mauled.as_bytes()).unwrap();
        let bob = bob.receive(x_mauled.as_bytes()).unwrap();
        assert_ne!(alice.session_id(), bob.session_id());
        let (ta, tb) = (alice.my_tag(), bob.my_tag());
        assert_eq!(alice.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(bob.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    /// Hao–Shahandashti 2014, impersonation: Mallory (no password) opens two
    /// parallel sessions with Alice, both claiming to be Bob. Alice is the
    /// initiator of session 1 and the responder of session 2. Mallory feeds
    /// each session Alice's value from the other raised to z, so both
    /// sessions reach K = g^{x₁x₂z}, then reflects Alice's tag from one
    /// session into the other.
    #[test]
    fn two_session_impersonation_is_refused() {
        let g = Group::modp2048();
        let mut r = rng(4);
        let alice = b"DC-ALICE".as_slice();
        let bob = b"DC-BOB".as_slice();
        // Session 1: Alice initiates towards "Bob".
        let (s1, x1) = Speke::start(g, PW, alice, bob, &mut r).unwrap();
        // Session 2: "Bob" initiates; Alice responds.
        let (s2, x2) = Speke::start(g, PW, alice, bob, &mut r).unwrap();

        let z = Exponent::random_short(g, &mut r);
        let to_s1 = g.exp(&x2, &z).unwrap();
        let to_s2 = g.exp(&x1, &z).unwrap();

        // Old protocol: the two sessions share K = g^{x₁x₂z}.
        assert_eq!(g.exp(&to_s1, &s1.x).unwrap(), g.exp(&to_s2, &s2.x).unwrap());

        let s1 = s1.receive(to_s1.as_bytes()).unwrap();
        let s2 = s2.receive(to_s2.as_bytes()).unwrap();
        assert_ne!(s1.session_id(), s2.session_id());
        let (t1, t2) = (s1.my_tag(), s2.my_tag());
        assert_eq!(s2.confirm(&t1).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(s1.confirm(&t2).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    #[test]
    fn reflected_value_is_refused() {
        let g = Group::modp2048();
        let (a, x) = Speke::start(g, PW, SEOUL, BUSAN, &mut rng(5)).unwrap();
        assert_eq!(a.receive(x.as_bytes()).unwrap_err(), SpekeError::ReflectedValue);
    }

    #[test]
    fn reflected_tag_is_refused() {
        let g = Group::modp2048();
        let (a, b) = exchange(g, PW, PW, 6);
        let (ta, tb) = (a.my_tag(), b.my_tag());
        assert_eq!(a.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(b.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    #[test]
    fn tampered_tag_is_refused() {
        let g = Group::modp2048();
        for bit in [0usize, 7, 100, 255] {
            let (a, b) = exchange(g, PW, PW, 7);
            let mut tb = b.my_tag();
            tb[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
        }
        for len in [0usize, 31, 33] {
            let (a, b) = exchange(g, PW, PW, 8);
            let mut tb = b.my_tag().to_vec();
            tb.resize(len, 0);
            assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::MalformedTag { actual: len });
        }
    }

    /// A bit flipped in X in transit is caught either by the subgroup check
    /// (about half the time) or by key confirmation.
    #[test]
    fn tampered_value_is_refused() {
        let g = Group::modp2048();
        for bit in [0usize, 1, 1000, 2040] {
            let mut r = rng(9 + bit as u64);
            let (a, x) = Speke::start(g, PW, SEOUL, BUSAN, &mut r).unwrap();
            let (b, y) = Speke::start(g, PW, BUSAN, SEOUL, &mut r).unwrap();
            let mut x_bytes = x.to_bytes();
            x_bytes[255 - bit / 8] ^= 1 << (bit % 8);
            match b.receive(&x_bytes) {
                Err(e) => assert!(matches!(e, SpekeError::InvalidValue(_)), "{e}"),
                Ok(b) => {
                    let a = a.receive(y.as_bytes()).unwrap();
                    let (ta, tb) = (a.my_tag(), b.my_tag());
                    assert_eq!(b.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
                    assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
                }
            }
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let g = Group::modp2048();
        let p = g.p().clone();
        let all_ones = (BigUint::one() << 2048u32) - 1u32;
        for v in [BigUint::ZERO, BigUint::one(), &p - 1u32, p.clone(), &p + 1u32, all_ones] {
            let (a, _) = Speke::start(g, PW, SEOUL, BUSAN, &mut rng(10)).unwrap();
            let err = a.receive(&encode(g, &v)).unwrap_err();
            assert_eq!(err, SpekeError::InvalidValue(GroupError::OutOfRange));
            assert!(err.is_peer_fault());
        }
        for len in [0usize, 255, 257] {
            let (a, _) = Speke::start(g, PW, SEOUL, BUSAN, &mut rng(11)).unwrap();
            let err = a.receive(&vec![0x5a; len]).unwrap_err();
            assert_eq!(err, SpekeError::MalformedValue(GroupError::WrongLength { actual: len, expected: 256 }));
            assert_eq!(
                err.to_string(),
                format!("malformed SPEKE value from peer: value has {len} bytes, expected 256")
            );
        }
    }

    #[test]
    fn non_subgroup_values_are_refused() {
        let g = Group::modp2048();
        let smallest = (2u32..).map(BigUint::from).find(|a| crate::group::jacobi(a, g.p()) == -1).unwrap();
        // Scaled into the top of the range by a square, still a non-residue.
        let r = g.hash_to_element(b"test", b"scale");
        let scaled = (&smallest * r.value()) % g.p();
        for v in [smallest, scaled] {
            assert_eq!(v.modpow(g.q(), g.p()), g.p() - 1u32, "really a non-residue");
            let (a, _) = Speke::start(g, PW, SEOUL, BUSAN, &mut rng(12)).unwrap();
            let err = a.receive(&encode(g, &v)).unwrap_err();
            assert_eq!(err, SpekeError::InvalidValue(GroupError::NotInSubgroup));
        }
    }

    #[test]
    fn identities_must_be_distinct_and_non_empty() {
        let g = Group::modp2048();
        let mut r = rng(13);
        for (me, peer) in [(SEOUL, SEOUL), (b"".as_slice(), BUSAN), (SEOUL, b"".as_slice())] {
            let err = Speke::start(g, PW, me, peer, &mut r).unwrap_err();
            assert!(matches!(err, SpekeError::Misuse(_)));
            assert!(!err.is_peer_fault());
        }
    }

    /// Both parties must name the same pair; a side that thinks it talks to
    /// someone else derives a different sID and fails confirmation.
    #[test]
    fn mismatched_identity_fails_confirmation() {
        let g = Group::modp2048();
        let mut r = rng(14);
        let (a, x) = Speke::start(g, PW, SEOUL, BUSAN, &mut r).unwrap();
        let (b, y) = Speke::start(g, PW, BUSAN, b"DC-TOKYO-3", &mut r).unwrap();
        let (a, b) = (a.receive(y.as_bytes()).unwrap(), b.receive(x.as_bytes()).unwrap());
        let (ta, tb) = (a.my_tag(), b.my_tag());
        assert_eq!(a.confirm(&tb).unwrap_err(), SpekeError::KeyConfirmationFailed);
        assert_eq!(b.confirm(&ta).unwrap_err(), SpekeError::KeyConfirmationFailed);
    }

    #[test]
    fn session_id_is_order_independent_and_length_prefixed() {
        let g = Group::modp2048();
        let v1 = g.hash_to_element(b"t", b"1");
        let v2 = g.hash_to_element(b"t", b"2");
        assert_eq!(session_id(b"A", &v1, b"B", &v2), session_id(b"B", &v2, b"A", &v1));
        // Length prefixes keep ("AB", "C") and ("A", "BC") apart.
        assert_ne!(session_id(b"AB", &v1, b"C", &v2), session_id(b"A", &v1, b"BC", &v2));
    }
}
