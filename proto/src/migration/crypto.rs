//! The keys and seals behind the migration messages.
//!
//! The paper writes `E_OTP(…)`, `E_K1(…)`, `E_Pb(…)`, `E_TOTP(…)` and
//! `E_SK(…)`; this module gives each a sound construction (see
//! docs/protocols/migration.md for the reasons):
//!
//! | paper        | here                                                                  |
//! |--------------|-----------------------------------------------------------------------|
//! | `E_K1(x)`    | AES-256-GCM under HKDF(K1), one key per direction, bound to the session |
//! | `E_OTP(UID)` | the OTP is *verified* (and consumed) by the broker, never a cipher key |
//! | `E_Pb(x)`    | ECIES on P-256: ephemeral ECDH to the certified key, HKDF, AES-256-GCM |
//! | `Sig_Pr(x)`  | ECDSA P-256 / SHA-256 with the certified key                          |
//! | `E_TOTP(x)`  | AES-256-GCM under HKDF(full TOTP HMAC of the step ‖ X25519 secret, identities, nonces, ephemeral keys) |
//! | `E_SK(x)`    | per-direction [`Channel`]s and the streaming AEAD of `crate::stream` |
//!
//! All AEAD work uses aws-lc-rs; AEAD nonces and ECIES ephemeral keys come
//! from its system RNG, the protocol's nonces and the DC↔PS X25519 keys
//! ([`Ephemeral`]) from the caller's RNG ([`nonce`]).

use crate::encoding::Lp;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivatePkcs8KeyDer, UnixTime};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A failure of the cryptography, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A seal did not open: wrong key, tampered, replayed into another
    /// session or direction.
    #[error("{what}: authentication failed (tampered, replayed or not for us)")]
    Tampered {
        /// The message whose seal did not open.
        what: &'static str,
    },
    /// `Sig_Pr` does not verify with the certified key.
    #[error("{what}: signature does not verify")]
    BadSignature {
        /// The signed message.
        what: &'static str,
    },
    /// A peer's certificate or key refused: not from the broker CA, expired, revoked, not a
    /// data center's, another DID than expected, or not a P-256 key.
    #[error("certificate refused: {0}")]
    Certificate(String),
    /// Bytes that do not parse.
    #[error("{0}")]
    Malformed(String),
    /// Our own credentials could not be loaded or used.
    #[error("local credentials: {0}")]
    Local(String),
}

impl CryptoError {
    /// Who is at fault: a peer whose message or certificate is wrong, or our own credentials.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            CryptoError::Tampered { .. } | CryptoError::BadSignature { .. } | CryptoError::Certificate(_) => {
                Fault::PeerMisbehaved
            }
            CryptoError::Malformed(_) => Fault::Malformed,
            CryptoError::Local(_) => Fault::Config,
        }
    }
}

const HKDF_SALT: &[u8] = b"dirbroker migration v1";

/// HKDF-SHA256 with length-prefixed info parts, so no two different lists
/// of parts give the same info string.
pub fn derive_key(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let info_bytes = info.iter().fold(Lp::default(), |lp, part| lp.part(part));
    let salt = if salt.is_empty() { HKDF_SALT } else { salt };
    // HKDF-Expand only fails when asked for more than 255 blocks, never for 32 bytes.
    crate::crypto::hkdf32(ikm, salt, &[info_bytes.bytes()]).unwrap_or_else(|_| Zeroizing::new([0u8; 32]))
}

/// A protocol nonce or id (`Nonce1`, `Nonce_DC`, `Nonce2`, `Nonce_PS`, the
/// migration id) from the caller's RNG, so the state transitions take their
/// randomness as a parameter and tests can seed it. AEAD nonces and ECIES
/// ephemeral keys stay with aws-lc-rs's system RNG: they are not protocol
/// values, and a seeded RNG must never choose them. (The DC↔PS X25519 keys,
/// [`Ephemeral`], are protocol values of the operation module and come from
/// the caller's RNG, which in the daemons is the process CSPRNG.)
pub fn nonce<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
}

/// An X25519 key pair for one DC↔PS session (audit F3): its secret is drawn
/// from the caller's RNG, like [`nonce`], so a seeded test replays a session
/// exactly; the daemons pass their process CSPRNG. Used once, by
/// [`Ephemeral::agree`], then dropped (aws-lc-rs frees and wipes the key).
pub struct Ephemeral {
    private: PrivateKey,
    /// The public key sent to the peer.
    pub public: [u8; 32],
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ephemeral").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Ephemeral {
    /// A fresh key pair; 32 bytes from `rng` are the X25519 scalar (RFC 7748 clamps it).
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Result<Ephemeral, CryptoError> {
        let mut scalar = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(scalar.as_mut_slice());
        let private = PrivateKey::from_private_key(&X25519, scalar.as_slice())
            .map_err(|_| CryptoError::Local("X25519 key setup failed".into()))?;
        let public = private.compute_public_key().map_err(|_| CryptoError::Local("X25519 public key".into()))?;
        let public = <[u8; 32]>::try_from(public.as_ref())
            .map_err(|_| CryptoError::Local("X25519 public key is not 32 bytes".into()))?;
        Ok(Ephemeral { private, public })
    }

    /// X25519 with the peer's public key; an all-zero result (a low-order
    /// point from the peer) is refused as `what` tampered.
    pub fn agree(self, peer: &[u8; 32], what: &'static str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&X25519, peer.as_slice()),
            CryptoError::Tampered { what },
            |z| {
                let mut out = Zeroizing::new([0u8; 32]);
                if z.len() != out.len() {
                    return Err(CryptoError::Tampered { what });
                }
                out.copy_from_slice(z);
                Ok(out)
            },
        )
    }
}

/// Fresh random bytes from the system RNG.
pub fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| CryptoError::Local("the system RNG failed".into()))?;
    Ok(b)
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    crate::crypto::aes256gcm(key).map_err(|e| CryptoError::Local(e.to_string()))
}

/// Seals under a single-message key with a random nonce: `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random::<NONCE_LEN>()?;
    let sealed = crate::crypto::seal(key, nonce, aad, plaintext).map_err(|e| CryptoError::Local(e.to_string()))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// Opens what [`seal`] made.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (nonce, ct) = sealed.split_first_chunk::<NONCE_LEN>().ok_or(CryptoError::Tampered { what })?;
    crate::crypto::open(key, *nonce, aad, ct).ok_or(CryptoError::Tampered { what })
}

/// Two directional keys with counters: each sealed message carries its
/// sequence number implicitly in the nonce, so a replayed, dropped or
/// reordered message fails to open, and nothing sent one way can be
/// reflected back.
pub struct Channel {
    send: LessSafeKey,
    recv: LessSafeKey,
    send_seq: u64,
    recv_seq: u64,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("send_seq", &self.send_seq).field("recv_seq", &self.recv_seq).finish()
    }
}

fn seq_nonce(seq: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    if let Some(tail) = n.get_mut(4..) {
        tail.copy_from_slice(&seq.to_be_bytes());
    }
    Nonce::assume_unique_for_key(n)
}

impl Channel {
    /// A channel from a shared secret: both ends derive the same two keys and
    /// pick them by role (`initiator` sends with the first).
    pub fn derive(secret: &[u8], context: &[&[u8]], initiator: bool) -> Result<Channel, CryptoError> {
        let mut a_info: Vec<&[u8]> = context.to_vec();
        a_info.push(b"initiator->responder");
        let mut b_info: Vec<&[u8]> = context.to_vec();
        b_info.push(b"responder->initiator");
        let a = derive_key(secret, b"", &a_info);
        let b = derive_key(secret, b"", &b_info);
        let (send, recv) = if initiator { (a, b) } else { (b, a) };
        Ok(Channel { send: aead_key(&send)?, recv: aead_key(&recv)?, send_seq: 0, recv_seq: 0 })
    }

    /// Seals the next message to the peer: `ciphertext ‖ tag`, with the message name `what` as AAD and
    /// the send counter as nonce.
    pub fn seal(&mut self, what: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = plaintext.to_vec();
        self.send
            .seal_in_place_append_tag(seq_nonce(self.send_seq), Aad::from(what.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Local("AEAD seal failed".into()))?;
        self.send_seq += 1;
        Ok(buf)
    }

    /// Opens the next message from the peer, which must be named `what` and be next in order; a
    /// replayed, dropped, reordered or reflected message fails as [`CryptoError::Tampered`].
    pub fn open(&mut self, what: &'static str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .recv
            .open_in_place(seq_nonce(self.recv_seq), Aad::from(what.as_bytes()), buf.as_mut_slice())
            .map_err(|_| CryptoError::Tampered { what })?
            .len();
        buf.truncate(len);
        self.recv_seq += 1;
        Ok(buf)
    }
}

/// `E_Pb(x)`: ECIES on P-256 to a certified public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbCiphertext {
    /// The sender's ephemeral public key (uncompressed point).
    pub ephemeral: Vec<u8>,
    /// AES-256-GCM ciphertext and tag (the key is single-use: zero nonce).
    pub sealed: Vec<u8>,
}

fn ecies_key(z: &[u8], ephemeral: &[u8], recipient: &[u8], label: &str) -> Zeroizing<[u8; 32]> {
    derive_key(z, b"dirbroker E_Pb v1", &[ephemeral, recipient, label.as_bytes()])
}

/// Encrypts to the holder of the private key for `recipient` (an uncompressed P-256 point).
pub fn seal_to(recipient: &[u8], label: &str, plaintext: &[u8]) -> Result<PbCiphertext, CryptoError> {
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| CryptoError::Local("ECDH keygen".into()))?;
    let eph_pub = eph.compute_public_key().map_err(|_| CryptoError::Local("ECDH public key".into()))?.as_ref().to_vec();
    let key = agreement::agree_ephemeral(
        eph,
        UnparsedPublicKey::new(&ECDH_P256, recipient),
        CryptoError::Certificate("the recipient's public key is not a P-256 point".into()),
        |z| Ok(ecies_key(z, &eph_pub, recipient, label)),
    )?;
    // The ephemeral key makes the AEAD key single-use: the zero nonce is sound.
    let sealed = crate::crypto::seal(&key, [0u8; NONCE_LEN], label.as_bytes(), plaintext)
        .map_err(|e| CryptoError::Local(e.to_string()))?;
    Ok(PbCiphertext { ephemeral: eph_pub, sealed })
}

/// Opens a [`PbCiphertext`] with our certified key.
pub fn open_from(me: &DcIdentity, label: &'static str, ct: &PbCiphertext) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key = agreement::agree(
        &me.ecdh,
        UnparsedPublicKey::new(&ECDH_P256, ct.ephemeral.as_slice()),
        CryptoError::Tampered { what: label },
        |z| Ok(ecies_key(z, &ct.ephemeral, &me.public_point, label)),
    )?;
    crate::crypto::open(&key, [0u8; NONCE_LEN], label.as_bytes(), &ct.sealed)
        .ok_or(CryptoError::Tampered { what: label })
}

/// A data center's own credentials: the key pair its certificate certifies.
pub struct DcIdentity {
    /// The data center's DID: its certificate's CN.
    pub did: String,
    /// Its certificate (DER): `Cert_Src` or `Cert_Dest`, and its TLS certificate.
    pub cert_der: Vec<u8>,
    /// Its PKCS#8 private key (DER), for the TLS configurations; wiped on drop.
    pub key_der: Zeroizing<Vec<u8>>,
    signing: EcdsaKeyPair,
    ecdh: PrivateKey,
    public_point: Vec<u8>,
}

impl std::fmt::Debug for DcIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcIdentity").field("did", &self.did).finish_non_exhaustive()
    }
}

impl DcIdentity {
    /// From a PKCS#8 PEM key and the PEM certificate issued for it.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<DcIdentity, CryptoError> {
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem)
            .map_err(|e| CryptoError::Local(format!("key.pem is not a PKCS#8 PEM key: {e}")))?;
        let cert = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| CryptoError::Local(format!("cert.pem is not a PEM certificate: {e}")))?;
        let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.secret_pkcs8_der())
            .map_err(|e| CryptoError::Local(format!("key.pem is not a P-256 key: {e}")))?;
        let ecdh = PrivateKey::from_private_key_der(&ECDH_P256, key.secret_pkcs8_der())
            .map_err(|e| CryptoError::Local(format!("key.pem cannot do ECDH: {e}")))?;
        let public_point = signing.public_key().as_ref().to_vec();
        let info = cert_info(cert.as_ref())?;
        if info.public_point != public_point {
            return Err(CryptoError::Local("cert.pem does not certify key.pem".into()));
        }
        Ok(DcIdentity {
            did: info.common_name,
            cert_der: cert.as_ref().to_vec(),
            key_der: Zeroizing::new(key.secret_pkcs8_der().to_vec()),
            signing,
            ecdh,
            public_point,
        })
    }

    /// From a bundle directory written by `dirbroker dc add` (key.pem, cert.pem).
    pub fn load(dir: &Path) -> Result<DcIdentity, CryptoError> {
        use std::os::unix::fs::MetadataExt;
        let key_path = dir.join("key.pem");
        let meta =
            std::fs::metadata(&key_path).map_err(|e| CryptoError::Local(format!("{}: {e}", key_path.display())))?;
        if meta.mode() & 0o077 != 0 {
            return Err(CryptoError::Local(format!("{}: others may read this key; chmod 600 it", key_path.display())));
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| CryptoError::Local(format!("{}: {e}", dir.join(name).display())))
        };
        let key = Zeroizing::new(read("key.pem")?);
        DcIdentity::from_pem(&key, &read("cert.pem")?)
    }

    /// `Sig_Pr(msg)`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.signing
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CryptoError::Local("ECDSA signing failed".into()))
    }
}

/// Verifies `Sig_Pr(msg)` with a certified public key.
pub fn verify_signature(point: &[u8], msg: &[u8], sig: &[u8], what: &'static str) -> Result<(), CryptoError> {
    signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature { what })
}

/// What we use from a certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The subject's CN, empty if it has none; for a data center, its DID.
    pub common_name: String,
    /// The subject's O, empty if it has none; [`DC_ORGANIZATION`] for a data center.
    pub organization: String,
    /// The subject public key: for P-256 the uncompressed point that `E_Pb` seals to and `Sig_Pr`
    /// verifies with.
    pub public_point: Vec<u8>,
}

/// Reads the subject and public key of a DER certificate (no trust decision).
pub fn cert_info(der: &[u8]) -> Result<CertInfo, CryptoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CryptoError::Certificate(format!("not a DER certificate: {e}")))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string).unwrap_or_default()
    };
    Ok(CertInfo {
        common_name: first(&mut subject.iter_common_name()),
        organization: first(&mut subject.iter_organization()),
        public_point: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// The broker CA and its current CRL: what every certificate is judged by.
#[derive(Clone, Debug)]
pub struct Trust {
    ca: CertificateDer<'static>,
    crl: CertificateRevocationListDer<'static>,
}

/// The organisation the CA writes into data-center certificates.
pub const DC_ORGANIZATION: &str = "dirbroker data center";

impl Trust {
    /// From DER (the CA certificate and the CRL); neither is parsed until used.
    pub fn new(ca_der: Vec<u8>, crl_der: Vec<u8>) -> Trust {
        Trust { ca: CertificateDer::from(ca_der), crl: CertificateRevocationListDer::from(crl_der) }
    }

    /// From PEM texts (the CA certificate and the CRL).
    pub fn from_pem(ca_pem: &[u8], crl_pem: &[u8]) -> Result<Trust, CryptoError> {
        let ca =
            CertificateDer::from_pem_slice(ca_pem).map_err(|e| CryptoError::Local(format!("CA certificate: {e}")))?;
        let crl = CertificateRevocationListDer::from_pem_slice(crl_pem)
            .map_err(|e| CryptoError::Local(format!("CRL: {e}")))?;
        Ok(Trust { ca, crl })
    }

    /// The broker CA certificate: the trust anchor of the TLS configurations too.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CRL in force, for the TLS verifiers (and to tell whether a refresh brought a new one).
    pub fn crl_der(&self) -> &CertificateRevocationListDer<'static> {
        &self.crl
    }

    /// Accepts a data center's certificate only if the broker CA issued it,
    /// it is valid now, not revoked by the CRL, and (when given) names the
    /// expected DID. Returns its subject and key.
    pub fn verify_dc(&self, der: &[u8], expected_did: Option<&str>, now: UnixTime) -> Result<CertInfo, CryptoError> {
        self.verify_chain(der, webpki::KeyUsage::client_auth(), now)?;
        let info = cert_info(der)?;
        if info.organization != DC_ORGANIZATION {
            return Err(CryptoError::Certificate(format!("{:?} is not a data-center certificate", info.common_name)));
        }
        if let Some(did) = expected_did
            && info.common_name != did
        {
            return Err(CryptoError::Certificate(format!(
                "the certificate names {:?}, expected {did:?}",
                info.common_name
            )));
        }
        Ok(info)
    }

    /// Accepts the broker's certificate (the signer of migration
    /// authorisations) only if the broker CA issued it for a TLS server, it
    /// is valid now, not revoked, and its O is the broker's.
    pub fn verify_broker(&self, der: &[u8], now: UnixTime) -> Result<CertInfo, CryptoError> {
        self.verify_chain(der, webpki::KeyUsage::server_auth(), now)?;
        let info = cert_info(der)?;
        if info.organization != super::authorisation::BROKER_ORGANIZATION {
            return Err(CryptoError::Certificate(format!("{:?} is not the broker's certificate", info.common_name)));
        }
        Ok(info)
    }

    fn verify_chain(&self, der: &[u8], usage: webpki::KeyUsage, now: UnixTime) -> Result<(), CryptoError> {
        let anchor = webpki::anchor_from_trusted_cert(&self.ca)
            .map_err(|e| CryptoError::Local(format!("the CA certificate is unusable: {e:?}")))?;
        let crl = webpki::OwnedCertRevocationList::from_der(self.crl.as_ref())
            .map_err(|e| CryptoError::Local(format!("the CRL is unusable: {e:?}")))?;
        let crl = webpki::CertRevocationList::from(crl);
        let crls = [&crl];
        let revocation = webpki::RevocationOptionsBuilder::new(&crls)
            .map_err(|_| CryptoError::Local("no CRL".into()))?
            .with_depth(webpki::RevocationCheckDepth::EndEntity)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .build();
        let cert = CertificateDer::from(der);
        let ee = webpki::EndEntityCert::try_from(&cert)
            .map_err(|e| CryptoError::Certificate(format!("not a certificate: {e:?}")))?;
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all;
        ee.verify_for_usage(algs, &[anchor], &[], now, usage, Some(revocation), None)
            .map_err(|e| CryptoError::Certificate(describe_webpki(&e)))?;
        Ok(())
    }
}

fn describe_webpki(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertRevoked => "the certificate is revoked (CRL)".into(),
        webpki::Error::UnknownIssuer => "not issued by the broker CA".into(),
        webpki::Error::InvalidSignatureForPublicKey => "the CA signature does not verify (forged)".into(),
        webpki::Error::CertExpired { .. } => "the certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet".into(),
        other => format!("{other:?}"),
    }
}

/// The full HMAC of the TOTP step (RFC 6238 before truncation): the key
/// material the DC and its physical server share for that step. The six
/// digits (~20 bits) are never used as a key.
pub fn totp_material(secret: &[u8], step: u64, algorithm: crate::otp::Algorithm) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(crate::otp::hmac_counter(secret, step, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = [7u8; 32];
        let s = seal(&k, b"Auth_Request", b"alice").unwrap();
        assert_eq!(&*open(&k, b"Auth_Request", &s, "Auth_Request").unwrap(), b"alice");
        // Another label (message type), a flipped bit, another key, a short input.
        assert!(open(&k, b"Auth_Reply", &s, "x").is_err());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(open(&k, b"Auth_Request", &t, "x").is_err(), "bit flip at {i} accepted");
        }
        assert!(open(&[8u8; 32], b"Auth_Request", &s, "x").is_err());
        assert!(open(&k, b"Auth_Request", &s[..5], "x").is_err());
    }

    #[test]
    fn channel_refuses_replay_reorder_and_reflection() {
        let ctx: &[&[u8]] = &[b"ctx"];
        let mut a = Channel::derive(b"shared", ctx, true).unwrap();
        let m0 = a.seal("m", b"zero").unwrap();
        let m1 = a.seal("m", b"one").unwrap();
        // Reordered: m1 where m0 is due fails.
        let mut b = Channel::derive(b"shared", ctx, false).unwrap();
        assert!(b.open("m", &m1).is_err());
        // In order it opens; the same message again (a replay) fails.
        let mut b = Channel::derive(b"shared", ctx, false).unwrap();
        assert_eq!(&*b.open("m", &m0).unwrap(), b"zero");
        assert!(b.open("m", &m0).is_err());
        let mut b = Channel::derive(b"shared", ctx, false).unwrap();
        b.open("m", &m0).unwrap();
        assert_eq!(&*b.open("m", &m1).unwrap(), b"one");
        // Another label for the same bytes fails.
        let mut b = Channel::derive(b"shared", ctx, false).unwrap();
        assert!(b.open("other", &m0).is_err());
        // Reflected: what the initiator sent cannot be opened as if it came back.
        let mut a2 = Channel::derive(b"shared", ctx, true).unwrap();
        assert!(a2.open("m", &m0).is_err());
        // Another context or secret cannot open it either.
        assert!(Channel::derive(b"shared", &[b"other"], false).unwrap().open("m", &m0).is_err());
        assert!(Channel::derive(b"shareD", ctx, false).unwrap().open("m", &m0).is_err());
    }
}
