//! Sealing secrets before they reach LDAP (OTP seeds, physical-server TOTP
//! secrets, pre-shared keys): AES-256-GCM under a key derived from a broker
//! master key kept in a file outside the directory, so an LDAP dump alone
//! reveals no secret.
//!
//! ```text
//!  master key k (keyring line) ──HKDF-SHA256(salt "dirbroker-keyring-v2")─┬─ info "seal" ─▶ AES-256-GCM key
//!                                                                         └─ info "hmac" ─▶ key of derive()
//!  sealed = "DBS2" ‖ key id (8) ‖ nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16)
//!  AAD    = "dirbroker-seal-v2" ‖ 0 ‖ key id ‖ context
//!  context = kind ‖ ("id", id) ‖ (name, value)*      every part u32-length-prefixed
//! ```
//!
//! The context names what the secret belongs to and everything that decides
//! whom it serves: an OTP token's id, owner DN and parameters, a physical
//! server's id, data center and TOTP parameters, a pre-shared key's id and
//! its parties (sorted). Someone who can write LDAP but has no keyring can
//! neither copy a sealed value onto another entry nor re-point an entry at
//! another user or data center: the value no longer opens (audit F8). The
//! admin commands that create these entries seal for their final
//! attributes; none changes them afterwards.
//!
//! Version 1 (`DBS1`, the master key itself as the AES key and as the HMAC
//! key, a context naming only the entry id) is refused by [`Keyring::open`]:
//! a v1 value would let the re-pointing above go on unnoticed. Only
//! [`Keyring::open_for_upgrade`] opens it, for `dirbroker secrets upgrade`
//! (and `rotate`), which re-seal every v1 value as v2 for the entry's
//! attributes at that moment.
//!
//! The keyring file holds several keys, the last one current: `dirbroker
//! secrets rotate` adds a key and re-seals every value, while values under
//! older keys still open in the meantime.

use dirbroker_proto::encoding::hex;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use base64::Engine;
use zeroize::Zeroizing;

use crate::model::Sealed;

const MAGIC_V1: &[u8; 4] = b"DBS1";
const MAGIC_V2: &[u8; 4] = b"DBS2";
const ID_LEN: usize = 8;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const LINE_TAG: &str = "dbk1";

/// The command that re-seals v1 values.
pub const UPGRADE_COMMAND: &str = "dirbroker secrets upgrade";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed under key {0}, which is not in the keyring")]
    UnknownKey(String),
    #[error(
        "sealed value does not open: it was altered, or its entry was changed (owner, parties, data center or \
         parameters) or it belongs to another entry"
    )]
    Tampered,
    #[error(
        "sealed in the old v1 format, which does not bind the owner: run `{UPGRADE_COMMAND}` once to re-seal \
         every v1 value"
    )]
    Legacy,
    #[error("cannot seal: {0}")]
    Crypto(String),
}

/// The sealing format a value was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `DBS1`: the entry id only; opened by [`Keyring::open_for_upgrade`] alone.
    V1,
    /// `DBS2`: the current format.
    V2,
}

impl Format {
    /// The format of `sealed`, from its magic.
    pub fn of(sealed: &Sealed) -> Option<Format> {
        match sealed.0.get(..4) {
            Some(m) if m == MAGIC_V1 => Some(Format::V1),
            Some(m) if m == MAGIC_V2 => Some(Format::V2),
            _ => None,
        }
    }
}

struct MasterKey {
    id: [u8; ID_LEN],
    raw: Zeroizing<[u8; KEY_LEN]>,
    /// v1: the raw key as the AES key (upgrade only).
    v1: LessSafeKey,
    /// v2: HKDF(raw, "seal").
    seal: LessSafeKey,
    /// v2: HKDF(raw, "hmac"), the key of [`Keyring::derive`].
    hmac: Zeroizing<[u8; KEY_LEN]>,
}

/// The broker's master keys; the last one seals.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| hex(&k.id)).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    crate::clock::fill_random(&mut out).map_err(|_| SealError::Crypto("no randomness".into()))?;
    Ok(out)
}

/// One key per use of a master key (audit F14: no key serves both AES-GCM
/// and HMAC).
fn subkey(raw: &[u8; KEY_LEN], usage: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    dirbroker_proto::crypto::hkdf32(raw, b"dirbroker-keyring-v2", &[usage.as_bytes()])
        .map_err(|e| SealError::Crypto(e.to_string()))
}

fn aes_key(raw: &[u8]) -> Result<LessSafeKey, SealError> {
    dirbroker_proto::crypto::aes256gcm(raw).map_err(|e| SealError::Crypto(e.to_string()))
}

impl MasterKey {
    fn new(id: [u8; ID_LEN], raw: Zeroizing<[u8; KEY_LEN]>) -> Result<MasterKey, SealError> {
        let seal = aes_key(subkey(&raw, "seal")?.as_slice())?;
        let hmac = subkey(&raw, "hmac")?;
        Ok(MasterKey { id, v1: aes_key(raw.as_slice())?, seal, hmac, raw })
    }

    fn generate() -> Result<MasterKey, SealError> {
        MasterKey::new(random()?, Zeroizing::new(random()?))
    }

    fn line(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{LINE_TAG} {} {}\n",
            hex(&self.id),
            base64::engine::general_purpose::STANDARD.encode(self.raw.as_slice())
        ))
    }
}

fn aad_v1(id: &[u8; ID_LEN], context: &Context) -> Vec<u8> {
    let mut a = b"dirbroker-seal-v1\0".to_vec();
    a.extend_from_slice(id);
    a.extend_from_slice(context.v1().as_bytes());
    a
}

fn aad_v2(id: &[u8; ID_LEN], context: &Context) -> Vec<u8> {
    let mut a = b"dirbroker-seal-v2\0".to_vec();
    a.extend_from_slice(id);
    a.extend_from_slice(&context.encode());
    a
}
impl Keyring {
    /// Create a keyring file with one fresh key (mode 0600; refuses to overwrite).
    pub fn create(path: &Path) -> Result<Keyring, SealError> {
        let key = MasterKey::generate()?;
        let mut text = Zeroizing::new(String::from(
            "# dirbroker master keys: one per line, the last one seals. Keep this file\n\
             # 0600, outside LDAP, and backed up: without it sealed secrets are lost.\n",
        ));
        text.push_str(&key.line());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| keyring_err(path, e.to_string()))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| keyring_err(path, e.to_string()))?;
        Ok(Keyring { keys: vec![key] })
    }

    /// Read a keyring file; it must not be readable by group or others.
    pub fn load(path: &Path) -> Result<Keyring, SealError> {
        let meta = std::fs::metadata(path).map_err(|e| keyring_err(path, e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(keyring_err(
                path,
                format!("mode {mode:o} lets others read it; run: chmod 600 {}", path.display()),
            ));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| keyring_err(path, e.to_string()))?);
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| keyring_err(path, format!("line {}: {what}", n + 1));
            let mut parts = line.split_whitespace();
            let (Some(LINE_TAG), Some(id), Some(b64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected 'dbk1 <id> <base64 key>'"));
            };
            let id_bytes: Vec<u8> = (0..id.len())
                .step_by(2)
                .map(|i| id.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("key id is not hex"))?;
            let id: [u8; ID_LEN] = id_bytes.try_into().map_err(|_| bad("key id must be 16 hex digits"))?;
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad("key is not base64"))?,
            );
            let raw: [u8; KEY_LEN] = raw.as_slice().try_into().map_err(|_| bad("key must be 32 bytes"))?;
            if keys.iter().any(|k: &MasterKey| k.id == id) {
                return Err(bad("duplicate key id"));
            }
            keys.push(MasterKey::new(id, Zeroizing::new(raw))?);
        }
        if keys.is_empty() {
            return Err(keyring_err(path, "holds no key; create one with: dirbroker secrets init".into()));
        }
        Ok(Keyring { keys })
    }

    /// Add a fresh key to the file (it becomes current) and return the new keyring.
    pub fn rotate(path: &Path) -> Result<Keyring, SealError> {
        let mut ring = Keyring::load(path)?;
        let key = MasterKey::generate()?;
        let mut text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| keyring_err(path, e.to_string()))?);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&key.line());
        crate::secret::write_private_file(path, text.as_bytes()).map_err(|e| keyring_err(path, e.to_string()))?;
        ring.keys.push(key);
        Ok(ring)
    }

    fn current(&self) -> Result<&MasterKey, SealError> {
        self.keys.last().ok_or(SealError::Crypto("empty keyring".into()))
    }

    /// A 32-byte key for `label` derived from the current master key
    /// (HMAC-SHA256 under its "hmac" subkey), for secrets that must be the
    /// same on every broker replica without being stored anywhere (the SSO
    /// ticket keys). Rotating the keyring changes it.
    pub fn derive(&self, label: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        let key = self.current()?;
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.hmac.as_slice());
        let mut msg = b"dirbroker-derive-v2\0".to_vec();
        msg.extend_from_slice(label.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&k, &msg);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Hex id of the key that seals now.
    pub fn current_id(&self) -> String {
        self.keys.last().map(|k| hex(&k.id)).unwrap_or_default()
    }

    /// Seal `plaintext` for `context` under the current key (format v2).
    pub fn seal(&self, context: &Context, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let key = self.current()?;
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        key.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad_v2(&key.id, context)),
                &mut *buf,
            )
            .map_err(|_| SealError::Crypto("AES-GCM seal failed".into()))?;
        let mut out = Vec::with_capacity(4 + ID_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC_V2);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(Sealed(out))
    }

    /// Open a value sealed for `context`. A v1 value is refused
    /// ([`SealError::Legacy`]): run [`UPGRADE_COMMAND`].
    pub fn open(&self, context: &Context, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SealError> {
        match Format::of(sealed) {
            Some(Format::V2) => self.open_as(Format::V2, context, sealed),
            Some(Format::V1) => Err(SealError::Legacy),
            None => Err(SealError::Malformed("not a dirbroker sealed value")),
        }
    }

    /// Open a value of either format, for the commands that re-seal
    /// (`dirbroker secrets upgrade` and `rotate`) and nothing else: a v1
    /// value opens for the entry id in `context` alone, whatever the rest of
    /// the entry says.
    pub fn open_for_upgrade(
        &self,
        context: &Context,
        sealed: &Sealed,
    ) -> Result<(Zeroizing<Vec<u8>>, Format), SealError> {
        let format = Format::of(sealed).ok_or(SealError::Malformed("not a dirbroker sealed value"))?;
        Ok((self.open_as(format, context, sealed)?, format))
    }

    fn open_as(&self, format: Format, context: &Context, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let rest = sealed.0.get(4..).ok_or(SealError::Malformed("truncated"))?;
        let (id, rest) = rest.split_first_chunk::<ID_LEN>().ok_or(SealError::Malformed("truncated"))?;
        let (nonce, ct) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SealError::Malformed("truncated"))?;
        if ct.len() < TAG_LEN {
            return Err(SealError::Malformed("truncated"));
        }
        let key = self.keys.iter().find(|k| k.id == *id).ok_or_else(|| SealError::UnknownKey(hex(id)))?;
        let (aead, aad) = match format {
            Format::V1 => (&key.v1, aad_v1(id, context)),
            Format::V2 => (&key.seal, aad_v2(id, context)),
        };
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = aead
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Tampered)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// Whether `sealed` should be sealed again: it is in the v1 format, or
    /// under an older key than the current one.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        let current = self.keys.last().map(|k| k.id);
        Format::of(sealed) != Some(Format::V2)
            || sealed.0.get(4..4 + ID_LEN).is_some_and(|id| Some(id) != current.as_ref().map(|c| c.as_slice()))
    }
}

fn keyring_err(path: &Path, reason: String) -> SealError {
    SealError::Keyring { path: path.display().to_string(), reason }
}

/// What a sealed value belongs to: a kind, the entry id, and the attributes
/// that decide whom the secret serves, all bound into the AAD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    kind: &'static str,
    id: String,
    bound: Vec<(&'static str, String)>,
}

impl Context {
    pub fn new(kind: &'static str, id: &str) -> Context {
        Context { kind, id: id.to_string(), bound: Vec::new() }
    }

    /// Bind one more attribute (order matters: constructors fix it).
    pub fn bind(mut self, name: &'static str, value: impl Into<String>) -> Context {
        self.bound.push((name, value.into()));
        self
    }

    /// The v1 context: the entry id alone.
    fn v1(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }

    /// The v2 context bytes: every part length-prefixed, so no two
    /// contexts encode alike.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut part = |b: &[u8]| {
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(b);
        };
        part(self.kind.as_bytes());
        part(b"id");
        part(self.id.as_bytes());
        for (name, value) in &self.bound {
            part(name.as_bytes());
            part(value.as_bytes());
        }
        out
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)?;
        for (name, value) in &self.bound {
            write!(f, " {name}={value:?}")?;
        }
        Ok(())
    }
}

/// Seal contexts: what a secret belongs to and whom it serves.
pub mod context {
    use super::Context;
    use crate::model::{OtpToken, PhysicalServer, PreSharedKey, TokenType};
    use crate::otp::codes::Algorithm;

    /// An algorithm name as the verifier reads it (absent: SHA-1).
    fn algorithm(a: Option<&str>) -> String {
        match a {
            None => Algorithm::Sha1.as_str().to_string(),
            Some(a) => Algorithm::parse(a).map_or_else(|| a.to_ascii_lowercase(), |x| x.as_str().to_string()),
        }
    }

    /// An OTP token: its owner and the parameters its codes are computed
    /// with, as the verifier reads them (defaults filled in).
    pub fn otp_token(t: &OtpToken) -> Context {
        let period = match t.kind {
            TokenType::Totp => t.period.unwrap_or(30).to_string(),
            TokenType::Hotp | TokenType::Skey => "-".into(),
        };
        Context::new("otp-token", &t.id)
            .bind("owner", t.owner.normalized())
            .bind("type", t.kind.as_str())
            .bind("algorithm", algorithm(t.algorithm.as_deref()))
            .bind("digits", t.digits.unwrap_or(6).to_string())
            .bind("period", period)
    }

    /// A physical server's TOTP secret: its data center and TOTP parameters.
    pub fn server_totp(ps: &PhysicalServer) -> Context {
        Context::new("server-totp", &ps.id)
            .bind("datacenter", ps.datacenter.normalized())
            .bind("algorithm", algorithm(ps.algorithm.as_deref()))
            .bind("digits", ps.digits.unwrap_or(6).to_string())
            .bind("period", ps.period.unwrap_or(30).to_string())
    }

    /// A pre-shared key: its parties, normalised and sorted.
    pub fn psk(p: &PreSharedKey) -> Context {
        let mut parties: Vec<String> = p.parties.iter().map(|d| d.normalized()).collect();
        parties.sort();
        parties.dedup();
        parties.into_iter().fold(Context::new("psk", &p.id), |c, d| c.bind("party", d))
    }

    /// A registration's state blob, handed to the client between stages.
    pub fn sso_registration(uid: &str, registration_id: &str) -> Context {
        Context::new("sso-registration", uid).bind("registration", registration_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(id: &str) -> Context {
        Context::new("otp-token", id).bind("owner", "uid=alice,ou=people,dc=example,dc=org")
    }

    /// A v1 value from before sealing v2 (tests/e2e/fixtures/seal-v1).
    const V1_KEY_LINE: &str = "dbk1 5eed5eed00000001 QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\n";
    const V1_HOTP: &str = "444253315eed5eed0000000101010101010101010101010182d7b9fe97364eb26047e0b2e81510e276251434e9ddf4fb3e4e6792dea6da8150b32dc1";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn derived_keys_are_stable_per_label_and_follow_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = Keyring::create(&path).unwrap();
        let a = ring.derive("sso-tickets-v1").unwrap();
        // Another process (a replica) loading the same file derives the same key.
        assert_eq!(*a, *Keyring::load(&path).unwrap().derive("sso-tickets-v1").unwrap());
        assert_ne!(*a, *ring.derive("other").unwrap());
        let rotated = Keyring::rotate(&path).unwrap();
        assert_ne!(*a, *rotated.derive("sso-tickets-v1").unwrap());
    }

    /// Audit F14: the AES key and the HMAC key are two HKDF outputs, neither
    /// of them the master key; v1 used the master key for both.
    #[test]
    fn sealing_and_derivation_use_separate_keys() {
        let raw = Zeroizing::new([7u8; KEY_LEN]);
        let seal = subkey(&raw, "seal").unwrap();
        let hmac = subkey(&raw, "hmac").unwrap();
        assert_ne!(*seal, *hmac);
        assert_ne!(*seal, *raw);
        assert_ne!(*hmac, *raw);
        let key = MasterKey::new([1; ID_LEN], raw.clone()).unwrap();
        assert_eq!(*key.hmac, *hmac);
        // derive() is HMAC under the hmac subkey, not under the master key.
        let ring = Keyring { keys: vec![key] };
        let under_raw = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, raw.as_slice()),
            b"dirbroker-derive-v1\0sso-tickets-v1",
        );
        assert_ne!(ring.derive("sso-tickets-v1").unwrap().as_slice(), under_raw.as_ref());
        // A v2 value does not open as v1 under the master key (the subkey sealed it).
        let s = ring.seal(&ctx("a"), b"secret").unwrap();
        let mut as_v1 = s.clone();
        as_v1.0[..4].copy_from_slice(MAGIC_V1);
        assert!(ring.open_for_upgrade(&ctx("a"), &as_v1).is_err());
    }

    #[test]
    fn seal_open_bind_context_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = Keyring::create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(Keyring::create(&path).is_err(), "never overwrite a keyring");
        let s = ring.seal(&ctx("a"), b"12345678901234567890").unwrap();
        assert_eq!(&s.0[..4], b"DBS2");
        assert!(!s.0.windows(8).any(|w| w == b"12345678"), "plaintext visible");
        assert_eq!(ring.open(&ctx("a"), &s).unwrap().as_slice(), b"12345678901234567890");
        // Swapped onto another entry: refused.
        assert!(matches!(ring.open(&ctx("b"), &s), Err(SealError::Tampered)));
        // Every single bit flip is detected.
        for i in 0..s.0.len() * 8 {
            let mut t = s.clone();
            t.0[i / 8] ^= 1 << (i % 8);
            assert!(ring.open(&ctx("a"), &t).is_err(), "bit {i}");
        }
        // Truncation.
        for n in 0..s.0.len() {
            assert!(ring.open(&ctx("a"), &Sealed(s.0[..n].to_vec())).is_err());
        }
        // Two seals of the same secret differ (fresh nonces).
        assert_ne!(ring.seal(&ctx("a"), b"x").unwrap(), ring.seal(&ctx("a"), b"x").unwrap());
    }

    /// Audit F8: re-pointing the entry (another owner, one party more or
    /// less, another data center, other parameters) makes the value useless.
    #[test]
    fn everything_bound_in_the_context_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::create(&dir.path().join("keys")).unwrap();
        let base = || Context::new("psk", "k1").bind("party", "a").bind("party", "b");
        let s = ring.seal(&base(), b"k").unwrap();
        assert!(ring.open(&base(), &s).is_ok());
        for other in [
            Context::new("psk", "k1").bind("party", "a"),
            base().bind("party", "c"),
            Context::new("psk", "k1").bind("party", "ab"),
            Context::new("psk", "k1").bind("party", "a").bind("party", "b,"),
            Context::new("psk", "k1").bind("part", "ya").bind("party", "b"),
            Context::new("psk", "k2").bind("party", "a").bind("party", "b"),
            Context::new("server-totp", "k1").bind("party", "a").bind("party", "b"),
        ] {
            assert!(matches!(ring.open(&other, &s), Err(SealError::Tampered)), "{other}");
        }
        // Length prefixes: a value cannot absorb the next part.
        assert_ne!(Context::new("k", "a").bind("x", "yz").encode(), Context::new("k", "a").bind("xy", "z").encode());
    }

    /// A value written before v2 opens only on the upgrade path, for its
    /// entry id; the normal path names the command to run.
    #[test]
    fn v1_values_open_only_for_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        crate::secret::write_private_file(&path, V1_KEY_LINE.as_bytes()).unwrap();
        let ring = Keyring::load(&path).unwrap();
        let old = Sealed(unhex(V1_HOTP));
        let c = ctx("legacy-hotp");
        let e = ring.open(&c, &old).unwrap_err();
        assert!(matches!(e, SealError::Legacy), "{e}");
        assert!(e.to_string().contains("dirbroker secrets upgrade"), "{e}");
        assert!(ring.needs_reseal(&old));
        let (plain, format) = ring.open_for_upgrade(&c, &old).unwrap();
        assert_eq!((plain.as_slice(), format), (&b"12345678901234567890"[..], Format::V1));
        // v1 bound the id only: another id does not open it, another owner does.
        assert!(ring.open_for_upgrade(&ctx("other"), &old).is_err());
        assert!(ring.open_for_upgrade(&Context::new("otp-token", "legacy-hotp"), &old).is_ok());
        let fresh = ring.seal(&c, &plain).unwrap();
        assert!(!ring.needs_reseal(&fresh));
        assert_eq!(ring.open(&c, &fresh).unwrap().as_slice(), b"12345678901234567890");
        assert_eq!(ring.open_for_upgrade(&c, &fresh).unwrap().1, Format::V2);
    }

    #[test]
    fn rotation_keeps_old_values_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = Keyring::create(&path).unwrap();
        let c = Context::new("psk", "k1");
        let old = ring.seal(&c, b"secret").unwrap();
        let ring2 = Keyring::rotate(&path).unwrap();
        assert_ne!(ring.current_id(), ring2.current_id());
        assert!(ring2.needs_reseal(&old));
        assert_eq!(ring2.open(&c, &old).unwrap().as_slice(), b"secret");
        let new = ring2.seal(&c, b"secret").unwrap();
        assert!(!ring2.needs_reseal(&new));
        assert!(matches!(ring.open(&c, &new), Err(SealError::UnknownKey(_))));
        let reloaded = Keyring::load(&path).unwrap();
        assert_eq!(reloaded.current_id(), ring2.current_id());
    }

    #[test]
    fn keyring_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        Keyring::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Keyring::load(&path).unwrap_err().to_string().contains("chmod 600"));
        for bad in ["", "dbk1 zz AAAA\n", "dbk1 0011223344556677 AAAA\n", "garbage\n"] {
            crate::secret::write_private_file(&path, bad.as_bytes()).unwrap();
            assert!(Keyring::load(&path).is_err(), "{bad:?}");
        }
    }
}
