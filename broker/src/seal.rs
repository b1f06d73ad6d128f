//! Sealing secrets before they reach LDAP (OTP seeds, physical-server TOTP
//! secrets, pre-shared keys): AES-256-GCM under a broker master key kept in a
//! file outside the directory, so an LDAP dump alone reveals no secret.
//!
//! ```text
//!  sealed = "DBS1" ‖ key id (8) ‖ nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16)
//!  AAD    = "dirbroker-seal-v1" ‖ 0 ‖ key id ‖ context
//! ```
//!
//! The context names what the secret belongs to ("otp-token:tok-1"), so a
//! sealed value copied onto another entry does not open there. The keyring
//! file holds several keys, the last one current: `dirbroker secrets rotate`
//! adds a key and re-seals every value, while values under older keys still
//! open in the meantime.

use dirbroker_proto::encoding::hex;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use zeroize::Zeroizing;

use crate::model::Sealed;

const MAGIC: &[u8; 4] = b"DBS1";
const ID_LEN: usize = 8;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const LINE_TAG: &str = "dbk1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed under key {0}, which is not in the keyring")]
    UnknownKey(String),
    #[error("sealed value does not open: it was altered, or belongs to another entry")]
    Tampered,
    #[error("cannot seal: {0}")]
    Crypto(String),
}

struct MasterKey {
    id: [u8; ID_LEN],
    raw: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
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

impl MasterKey {
    fn new(id: [u8; ID_LEN], raw: Zeroizing<[u8; KEY_LEN]>) -> Result<MasterKey, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, raw.as_slice()).map_err(|_| SealError::Crypto("bad key".into()))?;
        Ok(MasterKey { id, raw, key: LessSafeKey::new(unbound) })
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

fn aad(id: &[u8; ID_LEN], context: &str) -> Vec<u8> {
    let mut a = b"dirbroker-seal-v1\0".to_vec();
    a.extend_from_slice(id);
    a.extend_from_slice(context.as_bytes());
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
    /// (HMAC-SHA256), for secrets that must be the same on every broker
    /// replica without being stored anywhere (the SSO ticket keys).
    /// Rotating the keyring changes it.
    pub fn derive(&self, label: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        let key = self.current()?;
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.raw.as_slice());
        let mut msg = b"dirbroker-derive-v1\0".to_vec();
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

    /// Seal `plaintext` for `context` under the current key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let key = self.current()?;
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad(&key.id, context)),
                &mut *buf,
            )
            .map_err(|_| SealError::Crypto("AES-GCM seal failed".into()))?;
        let mut out = Vec::with_capacity(4 + ID_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(Sealed(out))
    }

    /// Open a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let rest = sealed.0.strip_prefix(MAGIC).ok_or(SealError::Malformed("not a dirbroker sealed value"))?;
        let (id, rest) = rest.split_first_chunk::<ID_LEN>().ok_or(SealError::Malformed("truncated"))?;
        let (nonce, ct) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SealError::Malformed("truncated"))?;
        if ct.len() < TAG_LEN {
            return Err(SealError::Malformed("truncated"));
        }
        let key = self.keys.iter().find(|k| k.id == *id).ok_or_else(|| SealError::UnknownKey(hex(id)))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = key
            .key
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad(id, context)), &mut buf)
            .map_err(|_| SealError::Tampered)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// Whether `sealed` is under an older key than the current one.
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        let current = self.keys.last().map(|k| k.id);
        sealed.0.get(4..4 + ID_LEN).is_some_and(|id| Some(id) != current.as_ref().map(|c| c.as_slice()))
    }
}

fn keyring_err(path: &Path, reason: String) -> SealError {
    SealError::Keyring { path: path.display().to_string(), reason }
}

/// Seal contexts: what a secret belongs to.
pub mod context {
    pub fn otp_token(id: &str) -> String {
        format!("otp-token:{id}")
    }
    pub fn server_totp(id: &str) -> String {
        format!("server-totp:{id}")
    }
    pub fn psk(id: &str) -> String {
        format!("psk:{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn seal_open_bind_context_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = Keyring::create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(Keyring::create(&path).is_err(), "never overwrite a keyring");
        let s = ring.seal("otp-token:a", b"12345678901234567890").unwrap();
        assert!(!s.0.windows(8).any(|w| w == b"12345678"), "plaintext visible");
        assert_eq!(ring.open("otp-token:a", &s).unwrap().as_slice(), b"12345678901234567890");
        // Swapped onto another entry: refused.
        assert!(matches!(ring.open("otp-token:b", &s), Err(SealError::Tampered)));
        // Every single bit flip is detected.
        for i in 0..s.0.len() * 8 {
            let mut t = s.clone();
            t.0[i / 8] ^= 1 << (i % 8);
            assert!(ring.open("otp-token:a", &t).is_err(), "bit {i}");
        }
        // Truncation.
        for n in 0..s.0.len() {
            assert!(ring.open("otp-token:a", &Sealed(s.0[..n].to_vec())).is_err());
        }
        // Two seals of the same secret differ (fresh nonces).
        assert_ne!(ring.seal("otp-token:a", b"x").unwrap(), ring.seal("otp-token:a", b"x").unwrap());
    }

    #[test]
    fn rotation_keeps_old_values_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = Keyring::create(&path).unwrap();
        let old = ring.seal("psk:k1", b"secret").unwrap();
        let ring2 = Keyring::rotate(&path).unwrap();
        assert_ne!(ring.current_id(), ring2.current_id());
        assert!(ring2.is_stale(&old));
        assert_eq!(ring2.open("psk:k1", &old).unwrap().as_slice(), b"secret");
        let new = ring2.seal("psk:k1", b"secret").unwrap();
        assert!(!ring2.is_stale(&new));
        assert!(matches!(ring.open("psk:k1", &new), Err(SealError::UnknownKey(_))));
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
