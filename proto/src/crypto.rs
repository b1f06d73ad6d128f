//! The symmetric primitives every protocol and the keyring use, one
//! definition each: HKDF-SHA256 and AES-256-GCM, from aws-lc (assembly
//! SHA-256 and AES). Protocol modules wrap them with their own labels,
//! layouts and error types.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use zeroize::Zeroizing;

pub use aws_lc_rs::aead::NONCE_LEN;

/// The AES-256-GCM tag length.
pub const TAG_LEN: usize = 16;

/// The backend refused: a wrong key or output length, i.e. our bug, never
/// the peer's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the crypto backend refused: {0}")]
pub struct BackendError(pub &'static str);

struct OutLen(usize);

impl KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), BackendError> {
    let okm = prk.expand(info, OutLen(out.len())).map_err(|_| BackendError("HKDF output length"))?;
    okm.fill(out).map_err(|_| BackendError("HKDF output length"))
}

/// HKDF-SHA256 (RFC 5869) into `out` (at most 255 × 32 bytes): extract with
/// `salt` (empty means HashLen zero bytes: HMAC pads both to the same key),
/// then expand with the `info` parts concatenated.
pub fn hkdf(ikm: &[u8], salt: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), BackendError> {
    expand(&Salt::new(HKDF_SHA256, salt).extract(ikm), info, out)
}

/// [`hkdf`] to one 32-byte key.
pub fn hkdf32(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, BackendError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf(ikm, salt, info, out.as_mut_slice())?;
    Ok(out)
}

/// HKDF-Expand only, for a key that is already uniform (RFC 5869 §3.3: the
/// extract step may then be skipped); one HMAC instead of two.
pub fn hkdf_expand32(key: &[u8; 32], info: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, BackendError> {
    let mut out = Zeroizing::new([0u8; 32]);
    expand(&Prk::new_less_safe(HKDF_SHA256, key), info, out.as_mut_slice())?;
    Ok(out)
}

/// An AES-256-GCM key (aws-lc keeps its own copy of the key schedule and
/// cleanses it on drop).
pub fn aes256gcm(key: &[u8]) -> Result<LessSafeKey, BackendError> {
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| BackendError("AES-256-GCM key length"))
}

/// AES-256-GCM: `ciphertext ‖ tag`. The caller owns nonce uniqueness.
pub fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BackendError> {
    let mut buf = plaintext.to_vec();
    aes256gcm(key)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .map_err(|_| BackendError("AES-256-GCM input length"))?;
    Ok(buf)
}

/// Opens what [`seal`] made; `None` when the tag does not verify.
pub fn open(key: &[u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(sealed.to_vec());
    let len =
        aes256gcm(key).ok()?.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf).ok()?.len();
    buf.truncate(len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 5869 A.1 and A.3 (no salt, no info).
    #[test]
    fn hkdf_matches_rfc5869() {
        let mut okm = [0u8; 42];
        let ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        hkdf(&ikm, &unhex("000102030405060708090a0b0c"), &[&info[..5], &info[5..]], &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
        hkdf(&ikm, &[], &[], &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        );
        assert_eq!(hkdf32(&ikm, &[0u8; 32], &[]).unwrap()[..], okm[..32], "empty salt = HashLen zeros");
    }

    #[test]
    fn sealed_opens_only_with_its_key_nonce_and_aad() {
        let (key, nonce) = ([7u8; 32], [1u8; NONCE_LEN]);
        let sealed = seal(&key, nonce, b"aad", b"secret").unwrap();
        assert_eq!(sealed.len(), 6 + TAG_LEN);
        assert_eq!(open(&key, nonce, b"aad", &sealed).as_deref().map(Vec::as_slice), Some(&b"secret"[..]));
        assert!(open(&[8u8; 32], nonce, b"aad", &sealed).is_none());
        assert!(open(&key, [2u8; NONCE_LEN], b"aad", &sealed).is_none());
        assert!(open(&key, nonce, b"other", &sealed).is_none());
        assert!(open(&key, nonce, b"aad", &sealed[..TAG_LEN - 1]).is_none());
        assert!(aes256gcm(&[0u8; 32]).is_ok() && aes256gcm(&[0u8; 16]).is_err());
    }
}
