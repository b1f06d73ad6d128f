//! Escrow of a user's private key (seed 003's third method, done safely):
//! the passphrase-protected OpenSSH private key is stored in the user's entry,
//! readable by its owner only (schema/acl.ldif rule {3}), fetched by binding
//! as the user and handed to ssh-agent through `ssh-add -` — never written to
//! disk, never in argv.
//!
//! The passphrase is the seal: keys without one are refused, so a directory
//! dump or a stolen LDAP password alone does not give the key.

use base64::Engine;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscrowError {
    #[error("not an OpenSSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----)")]
    NotOpenSsh,
    #[error("the private key is not protected by a passphrase; add one with: ssh-keygen -p -f KEYFILE")]
    Unprotected,
    #[error("private key file is larger than 16 KiB")]
    TooLarge,
    #[error("malformed OpenSSH private key: {0}")]
    Malformed(&'static str),
}

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// Check that `pem` is an OpenSSH private key encrypted with a passphrase
/// (its cipher is not "none"). Returns the cipher name.
pub fn check_private_key(pem: &str) -> Result<String, EscrowError> {
    if pem.len() > 16 * 1024 {
        return Err(EscrowError::TooLarge);
    }
    let body = pem.trim().strip_prefix(BEGIN).and_then(|r| r.strip_suffix(END)).ok_or(EscrowError::NotOpenSsh)?;
    let b64: String = body.split_whitespace().collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| EscrowError::Malformed("base64"))?;
    let rest = raw.strip_prefix(b"openssh-key-v1\0").ok_or(EscrowError::Malformed("magic"))?;
    let (len_bytes, rest) = rest.split_first_chunk::<4>().ok_or(EscrowError::Malformed("cipher length"))?;
    let len = u32::from_be_bytes(*len_bytes) as usize;
    let cipher = rest.get(..len).ok_or(EscrowError::Malformed("cipher name"))?;
    let cipher = std::str::from_utf8(cipher).map_err(|_| EscrowError::Malformed("cipher name"))?;
    if cipher == "none" {
        return Err(EscrowError::Unprotected);
    }
    Ok(cipher.to_string())
}
