//! The user's authorisation of one migration, signed by the broker (not in
//! the paper; audit F11, issue #13 item 19).
//!
//! The paper has the destination "confirm the user via the UID" (seed 001
//! l.215), but only the source data center ever sees the OTP: the UID in
//! `Mig_Request_DC` is the source's word. Here the broker, when it accepts
//! (and consumes) the user's OTP for a source data center, signs what is
//! known at that moment:
//!
//! ```text
//!  "dirbroker migration authorisation v1" ‖ len‖UID ‖ len‖Src_DID ‖ migration_id
//!    ‖ issued_at (i64 BE) ‖ expires_at (i64 BE)
//! ```
//!
//! - `UID`: the user whose OTP the broker accepted;
//! - `Src_DID`: the data center that asked (the CN of its mutual-TLS
//!   certificate, not a value it chose);
//! - `migration_id`: 16 random bytes the source drew *before* asking, then
//!   used as the migration id of `Mig_Request_DC` (and so as the transfer id
//!   and in SK);
//! - `issued_at`, `expires_at`: the broker's clock, [`LIFETIME_SECS`] apart.
//!
//! The OTP is consumed in step 3, before the admin names the VM, the servers
//! and the destination (`Mig_Request_Admin`, step 4), so those are *not*
//! bound: the signature says "this user authorised one migration from this
//! data center, with this id, now", not which one.
//!
//! The broker signs with the key of its HTTPS certificate (ECDSA P-256,
//! issued by the broker CA with O = `dirbroker broker`), and the
//! authorisation carries that certificate. The destination checks the
//! certificate against the CA and CRL it already holds, then the signature,
//! then that UID, `Src_DID` and the migration id are those of the request,
//! and the time ([`UserAuthorisation::verify`]). Its replay cache, keyed by
//! the migration id, makes each authorisation good for one request.

use crate::encoding::Lp;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls_pki_types::UnixTime;
use serde::{Deserialize, Serialize};

use super::MigrationError;
use super::crypto::{self, CryptoError, Trust};
use super::request::MAX_SKEW_SECS;

/// How long an authorisation is good for after the broker accepted the OTP.
/// The console sends `Mig_Request_Admin` right after `Auth_Reply`, and the
/// source sends `Mig_Request_DC` after one directory lookup.
pub const LIFETIME_SECS: i64 = 300;

/// The subject O of the broker's certificate (`dirbroker ca issue broker`).
pub const BROKER_ORGANIZATION: &str = "dirbroker broker";

const WHAT: &str = "migration authorisation";

/// The broker's signed statement that `uid` authorised migration
/// `migration_id` from `src_did` (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthorisation {
    /// The user whose OTP the broker accepted.
    pub uid: String,
    /// The data center that asked the broker: the CN of its certificate.
    pub src_did: String,
    /// The migration id the source drew before asking.
    pub migration_id: [u8; 16],
    /// Unix seconds, the broker's clock, when the OTP was accepted.
    pub issued_at: i64,
    /// Unix seconds after which the authorisation is refused.
    pub expires_at: i64,
    /// The broker's certificate (DER), issued by the broker CA.
    pub broker_cert: Vec<u8>,
    /// ECDSA P-256 / SHA-256 (ASN.1) over [`signed_bytes`].
    pub signature: Vec<u8>,
}

/// What the broker signs.
pub fn signed_bytes(uid: &str, src_did: &str, migration_id: &[u8; 16], issued_at: i64, expires_at: i64) -> Vec<u8> {
    Lp::default()
        .raw(b"dirbroker migration authorisation v1")
        .part(uid.as_bytes())
        .part(src_did.as_bytes())
        .raw(migration_id)
        .raw(&issued_at.to_be_bytes())
        .raw(&expires_at.to_be_bytes())
        .into_bytes()
}

/// The broker's signer: its HTTPS key and certificate.
pub struct Authoriser {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for Authoriser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authoriser").finish_non_exhaustive()
    }
}

impl Authoriser {
    /// From the broker's private key (PKCS#8 or SEC1 DER, P-256) and the
    /// certificate (DER) that certifies it.
    pub fn from_der(key_der: &[u8], cert_der: Vec<u8>) -> Result<Authoriser, CryptoError> {
        let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, key_der)
            .map_err(|e| CryptoError::Local(format!("the broker's key is not a P-256 key: {e}")))?;
        let info = crypto::cert_info(&cert_der)?;
        if info.public_point != key.public_key().as_ref() {
            return Err(CryptoError::Local("the broker's certificate does not certify its key".into()));
        }
        Ok(Authoriser { key, cert_der })
    }

    /// Signs that `uid`, whose OTP was just accepted for `src_did`,
    /// authorised migration `migration_id`, at `now` (Unix seconds).
    pub fn authorise(
        &self,
        uid: &str,
        src_did: &str,
        migration_id: &[u8; 16],
        now: i64,
    ) -> Result<UserAuthorisation, CryptoError> {
        let expires_at = now.saturating_add(LIFETIME_SECS);
        let msg = signed_bytes(uid, src_did, migration_id, now, expires_at);
        let signature = self
            .key
            .sign(&SystemRandom::new(), &msg)
            .map_err(|_| CryptoError::Local("ECDSA signing failed".into()))?
            .as_ref()
            .to_vec();
        Ok(UserAuthorisation {
            uid: uid.into(),
            src_did: src_did.into(),
            migration_id: *migration_id,
            issued_at: now,
            expires_at,
            broker_cert: self.cert_der.clone(),
            signature,
        })
    }
}

impl UserAuthorisation {
    /// The destination's check: the certificate is the broker's (CA, CRL,
    /// O = [`BROKER_ORGANIZATION`]), the signature verifies with it, it is
    /// for this UID, this source and this migration, and `now` lies in
    /// [issued_at − skew, expires_at].
    pub fn verify(
        &self,
        trust: &Trust,
        uid: &str,
        src_did: &str,
        migration_id: &[u8; 16],
        now: UnixTime,
    ) -> Result<(), MigrationError> {
        let broker = trust.verify_broker(&self.broker_cert, now)?;
        let msg = signed_bytes(&self.uid, &self.src_did, &self.migration_id, self.issued_at, self.expires_at);
        crypto::verify_signature(&broker.public_point, &msg, &self.signature, WHAT)?;
        let mismatch = |detail: String| MigrationError::Mismatch { what: WHAT, detail };
        if self.uid != uid {
            return Err(mismatch(format!("it is {:?}'s, the request names {uid:?}", self.uid)));
        }
        if self.src_did != src_did {
            return Err(mismatch(format!("it was given to {:?}, the request is from {src_did:?}", self.src_did)));
        }
        if &self.migration_id != migration_id {
            return Err(mismatch("it is for another migration id".into()));
        }
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now > self.expires_at {
            return Err(MigrationError::Replay {
                what: WHAT,
                detail: format!("it expired {} s ago", now.saturating_sub(self.expires_at)),
            });
        }
        if self.issued_at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(MigrationError::Replay {
                what: WHAT,
                detail: format!("it is issued {} s in the future", self.issued_at.saturating_sub(now)),
            });
        }
        Ok(())
    }
}
