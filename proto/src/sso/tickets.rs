//! Stages 3 and 4: service registration, and ticket issuance split like
//! Kerberos into a login (AS exchange: one Diffie–Hellman per login) and
//! ticket requests (TGS exchange: signatures, AEAD and HKDF only); the
//! JWT/JWKS layer shared by stages 5–7.
//!
//! ```text
//! service → broker   ServiceRegistration (ID_k, P_k = g^r_k, T_k)               stage 3
//!
//! client → broker    LoginRequest { PreAuthProof(ID_c, aud = broker) }           stage 4a (AS-REQ)
//! broker             checks the proof; a ∈R [1, 2^256), α = g^a, SK ∈R {0,1}^256
//!                    K_c = HKDF(P_c^a; α ‖ ID_c ‖ broker ‖ "login")
//! broker → client    LoginReply {                                                 (AS-REP)
//!                      tgt = JWS_EdDSA{iss, sub=ID_c, aud=broker, …, tkt="tgt",
//!                              cnf={dirbroker_tgt: AEAD_{HKDF(K_tgt; jti)}(SK; aad = claims)}}
//!                      client_part = {α, AEAD_{K_c}(SK ‖ jti ‖ exp; aad = tgt ‖ α)} }
//!
//! client → broker    TicketRequest { tgt, ID_k, AEAD_{SK}(ID_c ‖ jti ‖ ctime ‖ nonce ‖ ID_k) }   4b (TGS-REQ)
//! broker             opens the TGT with K_tgt, the authenticator with SK; C_ck ∈R {0,1}^256
//!                    epoch e, b = HKDF(epoch seed; e), B = g^b            (cached per epoch)
//!                    K_k,e = HKDF(P_k^b; B ‖ ID_k ‖ e)                    (cached per service, epoch)
//! broker → client    TicketReply {                                                 (TGS-REP)
//!                      client_ticket = JWS_EdDSA{iss, sub=ID_c, aud=ID_k, iat, nbf, exp, jti, level, tkt="client"}
//!                      client_part   = {AEAD_{HKDF(SK; jti)}(C_ck ‖ jti ‖ exp; aad = client_ticket)}
//!                      server_ticket = JWS_EdDSA{…same claims…, tkt="service",
//!                          cnf = {dirbroker_sealed: {e, B, AEAD_{HKDF(K_k,e; jti ‖ ID_c)}(C_ck; aad = claims ‖ e ‖ B)}}} }
//! ```
//!
//! Only the holder of pw (α^pw = P_c^a) can open the login reply, only the
//! broker (K_tgt, from its keyring) can open a TGT, only the holder of SK can
//! make a TGS authenticator or open the client part, and only the holder of
//! r_k (B^r_k = P_k^b) can derive K_k,e: this replaces the paper's
//! K_a1 = H(P_c·g^pw2 ‖ ID_c), which anyone can compute from public values.

use std::collections::HashSet;

use std::fmt;

use crate::group::{Element, Group};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use ed25519_dalek::VerifyingKey;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::sso::epoch::{BrokerSecrets, EpochKeys, epoch_of};
use crate::sso::error::SsoError;
use crate::sso::level::Level;
use crate::sso::preauth::{PreAuthProof, check_proof_shape, verify_pw_proof, verify_schnorr};
use crate::sso::primitives::{
    Bytes, Ed25519Key, Lp, Scalar, aead_open, aead_seal, b64, decode_element, fixed, generator, group, hkdf_expand32,
    hkdf32, sha256, split_lp, unb64,
};
use crate::sso::registration::Published;
use crate::sso::replay::{MAX_SKEW, ReplayCache, check_skew};

// ---------------------------------------------------------------------------
// Stage 3: services
// ---------------------------------------------------------------------------

/// Stage 3, service → broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistration {
    /// ID_k.
    pub id_k: String,
    /// P_k = g^r_k.
    pub p_k: Bytes,
    /// T_k.
    pub t_k: i64,
}

/// A Kerberized service's long-term secret r_k (a 256-bit short exponent:
/// the same SP 800-56A argument as for a) and its P_k.
#[derive(Debug)]
pub struct ServiceKey {
    id_k: String,
    r_k: Scalar,
    p_k: Element,
}

impl ServiceKey {
    /// Draws r_k.
    pub fn generate<R: CryptoRng + ?Sized>(id_k: &str, rng: &mut R) -> Result<Self, SsoError> {
        let r_k = Scalar::random_short(rng);
        let p_k = r_k.public()?;
        Ok(ServiceKey { id_k: id_k.to_owned(), r_k, p_k })
    }

    /// From stored secret bytes (big-endian r_k, as from [`ServiceKey::secret_bytes`]).
    pub fn from_secret(id_k: &str, secret: &[u8]) -> Result<Self, SsoError> {
        let r_k = Scalar::from_canonical(secret)?;
        let p_k = r_k.public()?;
        Ok(ServiceKey { id_k: id_k.to_owned(), r_k, p_k })
    }

    /// r_k, fixed width, to store (0600).
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.r_k.to_fixed_bytes()
    }

    /// ID_k.
    pub fn id(&self) -> &str {
        &self.id_k
    }

    /// P_k.
    pub fn public(&self) -> &Element {
        &self.p_k
    }

    /// Stage 3's message.
    pub fn registration(&self, now: i64) -> ServiceRegistration {
        ServiceRegistration { id_k: self.id_k.clone(), p_k: Bytes(self.p_k.to_bytes()), t_k: now }
    }

    pub(crate) fn r_k(&self) -> &Scalar {
        &self.r_k
    }
}

/// The service's key file (JSON, written 0600 by `dirbroker service add`;
/// r_k never goes to LDAP).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceKeyFile {
    /// ID_k.
    pub service_id: String,
    /// r_k, fixed-width big-endian.
    pub r_k: Bytes,
}

impl fmt::Debug for ServiceKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKeyFile").field("service_id", &self.service_id).finish_non_exhaustive()
    }
}

impl ServiceKeyFile {
    /// The file form of `key`.
    pub fn of(key: &ServiceKey) -> Self {
        ServiceKeyFile { service_id: key.id().to_owned(), r_k: Bytes(key.secret_bytes().to_vec()) }
    }

    /// The key back (checks r_k's range).
    pub fn key(&self) -> Result<ServiceKey, SsoError> {
        ServiceKey::from_secret(&self.service_id, self.r_k.as_slice())
    }
}

/// A validated service directory entry (P_k passed the subgroup checks).
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// ID_k.
    pub id_k: String,
    /// P_k.
    pub p_k: Element,
    /// The lowest level the broker issues tickets for this service to.
    pub min_level: Level,
}

impl TryFrom<&ServiceRegistration> for ServiceEntry {
    type Error = SsoError;
    fn try_from(r: &ServiceRegistration) -> Result<Self, SsoError> {
        Ok(ServiceEntry { id_k: r.id_k.clone(), p_k: decode_element(&r.p_k)?, min_level: Level::Temporary })
    }
}

/// A validated client directory entry.
#[derive(Debug, Clone)]
pub struct ClientEntry {
    /// ID_c.
    pub id_c: String,
    /// P_c.
    pub p_c: Element,
    /// The level ANS granted.
    pub level: Level,
}

impl TryFrom<&Published> for ClientEntry {
    type Error = SsoError;
    fn try_from(p: &Published) -> Result<Self, SsoError> {
        Ok(ClientEntry { id_c: p.id_c.clone(), p_c: decode_element(&p.p_c)?, level: p.level })
    }
}

// ---------------------------------------------------------------------------
// JWT claims and JWKS
// ---------------------------------------------------------------------------

/// Which half of a ticket pair a JWT is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// A ticket-granting ticket (aud = the broker itself; carries `cnf`
    /// with the login session key sealed for the broker).
    Tgt,
    /// The client's ticket.
    Client,
    /// The service's ticket (carries `cnf`).
    Service,
}

/// The login session key sealed for the client (AS-REP's client part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// α = g^a (fresh per login).
    pub alpha: Bytes,
    /// V = AEAD_{K_c}(SK ‖ jti ‖ exp).
    pub v: Bytes,
}

/// C_ck sealed for the service (RFC 7800 §3.3 shape: a key encrypted for
/// the recipient inside `cnf`; no JWE `alg` exists for MODP Diffie–Hellman,
/// so the member has a private name instead of `jwe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSealed {
    /// The broker epoch e (unix time / [`crate::sso::epoch::EPOCH_SECONDS`]).
    pub epoch: i64,
    /// B = g^b, the broker's value for epoch e.
    pub b: Bytes,
    /// V_k = AEAD_{K_k,e}(C_ck).
    pub v: Bytes,
}

/// The `cnf` claim: on a server ticket, C_ck for the service; on a TGT, the
/// login session key for the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cnf {
    /// C_ck sealed for the service (server tickets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirbroker_sealed: Option<EpochSealed>,
    /// SK sealed for the broker under K_tgt (TGTs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirbroker_tgt: Option<Bytes>,
}

/// Ticket claims (RFC 7519 §4.1 plus `level`, `tkt` and, on server
/// tickets, `cnf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// The broker.
    pub iss: String,
    /// ID_c.
    pub sub: String,
    /// ID_k.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Ticket id (shared by the pair).
    pub jti: String,
    /// Userlevel.
    pub level: Level,
    /// Client or service ticket.
    pub tkt: TicketKind,
    /// Sealed session key (service tickets and TGTs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
}

/// An RFC 8037 OKP/Ed25519 JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// "OKP".
    pub kty: String,
    /// "Ed25519".
    pub crv: String,
    /// base64url public key.
    pub x: String,
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// "EdDSA".
    pub alg: String,
    /// "sig".
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(public: &VerifyingKey) -> Jwk {
        let x = b64(&public.to_bytes());
        // RFC 7638 §3.2: required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = b64(&sha256(canonical.as_bytes()));
        Jwk { kty: "OKP".into(), crv: "Ed25519".into(), x, kid, alg: "EdDSA".into(), use_: "sig".into() }
    }
}

impl Jwks {
    /// Finds a usable Ed25519 key by kid.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid && k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
    }
}

/// Verifies a ticket JWT: pinned alg EdDSA (RFC 8725 §3.1), kid in the JWKS,
/// the signature, `iss`, and nbf/exp with the 300 s skew. Audience, subject
/// and kind are checked by the caller, who knows what it expects.
pub fn verify_ticket(token: &str, jwks: &Jwks, issuer: &str, now: i64) -> Result<TicketClaims, SsoError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SsoError::Malformed("JWT is not three segments"));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&unb64(h)?).map_err(|_| SsoError::Malformed("JWT header JSON"))?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if alg != "EdDSA" {
        return Err(SsoError::AlgorithmNotAllowed(alg.to_owned()));
    }
    let kid = header.get("kid").and_then(|k| k.as_str()).ok_or(SsoError::UnknownKeyId)?;
    let jwk = jwks.find(kid).ok_or(SsoError::UnknownKeyId)?;
    let key = DecodingKey::from_ed_components(&jwk.x).map_err(|_| SsoError::Malformed("JWK x"))?;
    let mut v = Validation::new(Algorithm::EdDSA);
    // Time, audience and issuer are checked below against `now` (the
    // library's clock is the caller's, not the system's).
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<TicketClaims>(token, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => SsoError::BadSignature,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => SsoError::AlgorithmNotAllowed(alg.to_owned()),
        _ => SsoError::Malformed("JWT claims"),
    })?;
    let c = data.claims;
    if c.iss != issuer {
        return Err(SsoError::WrongIssuer);
    }
    check_validity(&c, now)?;
    Ok(c)
}

/// The claims of a compact JWS, *without* checking its signature: for the
/// broker's TGS (which authenticates a TGT with K_tgt instead, see
/// [`TicketIssuer::grant`]) and for reading a ticket back from the 0600
/// credential cache. The header must still name EdDSA.
pub fn unverified_claims(token: &str) -> Result<TicketClaims, SsoError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SsoError::Malformed("JWT is not three segments"));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&unb64(h)?).map_err(|_| SsoError::Malformed("JWT header JSON"))?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if alg != "EdDSA" {
        return Err(SsoError::AlgorithmNotAllowed(alg.to_owned()));
    }
    serde_json::from_slice(&unb64(p)?).map_err(|_| SsoError::Malformed("JWT claims"))
}

/// now within [nbf − skew, exp + skew].
pub(crate) fn check_validity(c: &TicketClaims, now: i64) -> Result<(), SsoError> {
    if now < c.nbf.saturating_sub(MAX_SKEW) {
        return Err(SsoError::NotYetValid);
    }
    if now > c.exp.saturating_add(MAX_SKEW) {
        return Err(SsoError::Expired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Stage 4: the broker
// ---------------------------------------------------------------------------

/// Stage 4a, client → broker (AS-REQ): the pre-authentication proof, for
/// `service` = the broker's issuer name. An anonymous login (paper §5)
/// names no user and sends its public value instead of a published P_c.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// Proof of knowledge of pw (or of the anonymous secret x).
    pub proof: PreAuthProof,
    /// Anonymous logins: g^x, the "user's public information".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_anon: Option<Bytes>,
}

/// Stage 4a, broker → client (AS-REP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReply {
    /// The ticket-granting ticket (compact JWS, aud = the broker).
    pub tgt: String,
    /// SK sealed for the client under K_c (from α and P_c).
    pub client_part: SealedKey,
}

/// Stage 4b, client → broker (TGS-REQ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRequest {
    /// The TGT from the login.
    pub tgt: String,
    /// ID_k asked for.
    pub service: String,
    /// AEAD nonce (SK seals many authenticators: random nonces).
    pub nonce: Bytes,
    /// AEAD_{SK}(ID_c ‖ TGT jti ‖ ctime ‖ nonce ‖ ID_k).
    pub authenticator: Bytes,
}

/// Stage 4b, broker → client (TGS-REP): the paper's Client ticket and
/// Server ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketReply {
    /// The client ticket (compact JWS).
    pub client_ticket: String,
    /// C_ck sealed for the client under a key derived from SK.
    pub client_part: Bytes,
    /// The server ticket (compact JWS), which the client forwards.
    pub server_ticket: String,
}

/// K_c: the login reply key from the DH value P_c^a (client: α^pw).
pub(crate) fn login_key(
    shared: &Element,
    alpha: &[u8],
    id_c: &str,
    broker: &str,
) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    let info = Lp::sso("login key").part(alpha).part(id_c.as_bytes()).part(broker.as_bytes());
    hkdf32(shared.as_bytes(), info.bytes())
}

/// AAD of the login client part: the whole TGT and α.
pub(crate) fn login_aad(tgt: &str, alpha: &[u8]) -> Vec<u8> {
    Lp::sso("AS-REP").part(tgt.as_bytes()).part(alpha).into_bytes()
}

/// The plaintext of a sealed key with its ticket's jti and exp.
pub(crate) fn key_plain(key: &[u8; 32], jti: &str, exp: i64) -> Vec<u8> {
    Lp::default().part(key).part(jti.as_bytes()).int(exp).into_bytes()
}

/// Opens [`key_plain`] and checks jti / exp.
pub(crate) fn open_key_plain(plain: &[u8], jti: &str, exp: i64) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    let parts = split_lp(plain)?;
    let [key, j, e] = parts.as_slice() else {
        return Err(SsoError::Malformed("sealed key contents"));
    };
    if *j != jti.as_bytes() || *e != exp.to_be_bytes().as_slice() {
        return Err(SsoError::SessionKeyOpen);
    }
    Ok(Zeroizing::new(fixed::<32>(key, "session key")?))
}

/// Every claim except `cnf` (so a sealed key moved into another ticket, or
/// a claim changed even by someone holding the signing key, does not open).
pub(crate) fn claims_aad(label: &str, c: &TicketClaims) -> Lp {
    let kind: &[u8] = match c.tkt {
        TicketKind::Tgt => b"tgt",
        TicketKind::Client => b"client",
        TicketKind::Service => b"service",
    };
    Lp::sso(label)
        .part(c.iss.as_bytes())
        .part(c.sub.as_bytes())
        .part(c.aud.as_bytes())
        .int(c.iat)
        .int(c.nbf)
        .int(c.exp)
        .part(c.jti.as_bytes())
        .part(&[c.level.as_u8()])
        .part(kind)
}

/// The per-ticket key under a long-lived key (K_tgt, SK, K_k,e): each
/// ticket's seal gets its own key, so the all-zero nonce is sound.
pub(crate) fn per_ticket_key(
    key: &[u8; 32],
    label: &str,
    jti: &str,
    sub: &str,
) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    hkdf_expand32(key, Lp::sso(label).part(jti.as_bytes()).part(sub.as_bytes()).bytes())
}

/// AAD of V_k: the claims, e and B.
pub(crate) fn v_k_aad(c: &TicketClaims, epoch: i64, big_b: &[u8]) -> Vec<u8> {
    claims_aad("V_k", c).int(epoch).part(big_b).into_bytes()
}

/// AAD of the client part of a TGS-REP: the whole client ticket.
pub(crate) fn v_c_aad(client_ticket: &str) -> Vec<u8> {
    Lp::sso("V_c").part(client_ticket.as_bytes()).into_bytes()
}

/// AAD of a TGS authenticator: the TGT's hash and the service asked for.
pub(crate) fn tgs_aad(tgt: &str, service: &str) -> Vec<u8> {
    Lp::sso("TGS-REQ").part(&sha256(tgt.as_bytes())).part(service.as_bytes()).into_bytes()
}

/// The authenticator inside a TGS-REQ.
pub(crate) fn tgs_authenticator(id_c: &str, jti: &str, ctime: i64, nonce: &[u8; 16], service: &str) -> Vec<u8> {
    Lp::default()
        .part(id_c.as_bytes())
        .part(jti.as_bytes())
        .int(ctime)
        .part(nonce)
        .part(service.as_bytes())
        .into_bytes()
}

pub(crate) const LABEL_TGT: &str = "TGT key";
pub(crate) const LABEL_CLIENT_PART: &str = "client part key";
pub(crate) const LABEL_SERVICE: &str = "service ticket key";

/// The Ed25519 JWS signer. jsonwebtoken 11's `encode` builds a signer from
/// the PKCS#8 bytes on every call (aws-lc re-parses the key and recomputes
/// the public point: a second scalar multiplication per ticket); this keeps
/// one parsed key pair and one encoded header. Verification stays with
/// jsonwebtoken ([`verify_ticket`]) and external verifiers (PyJWT).
pub struct TicketSigner {
    issuer: String,
    key: Ed25519Key,
    pair: Ed25519KeyPair,
    header_b64: String,
    jwk: Jwk,
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner").field("issuer", &self.issuer).field("kid", &self.jwk.kid).finish_non_exhaustive()
    }
}

impl TicketSigner {
    /// A signer for issuer `iss` with `key`.
    pub fn new(issuer: &str, key: Ed25519Key) -> Result<Self, SsoError> {
        let seed = Zeroizing::new(key.signing_key().to_bytes());
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.as_slice()).map_err(|_| SsoError::Internal("Ed25519 key"))?;
        if pair.public_key().as_ref() != key.public_bytes().as_slice() {
            return Err(SsoError::Internal("Ed25519 key pair mismatch"));
        }
        let jwk = Jwk::ed25519(&key.verifying_key());
        let header = serde_json::json!({ "typ": "JWT", "alg": "EdDSA", "kid": jwk.kid });
        let header_b64 = b64(&serde_json::to_vec(&header).map_err(|_| SsoError::Internal("JWT header"))?);
        Ok(TicketSigner { issuer: issuer.to_owned(), key, pair, header_b64, jwk })
    }

    /// Compact JWS over `claims`.
    pub fn sign(&self, claims: &TicketClaims) -> Result<String, SsoError> {
        self.sign_json(claims)
    }

    /// Compact JWS over any claims (OpenID Connect id_tokens).
    pub fn sign_json<C: Serialize>(&self, claims: &C) -> Result<String, SsoError> {
        let payload = serde_json::to_vec(claims).map_err(|_| SsoError::Internal("JWT claims"))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        token.push_str(&b64(&payload));
        let sig = self.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&b64(sig.as_ref()));
        Ok(token)
    }

    /// The JWKS to publish (RFC 8037).
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: vec![self.jwk.clone()] }
    }

    /// The key id of the signing key.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key's public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

/// The longest ticket the broker issues (10 h, Kerberos's usual default).
pub const MAX_LIFETIME: i64 = 10 * 3600;

/// The broker's ticket machinery (Kerberos's AS and TGS): the signer, the
/// secrets derived from the broker keyring (K_tgt, the epoch seed, the
/// anonymous-ID secret) and the per-epoch key caches. Holds no state another
/// replica needs: two brokers with the same keyring and signing key issue
/// interchangeable tickets.
pub struct TicketIssuer {
    signer: TicketSigner,
    secrets: BrokerSecrets,
    epochs: EpochKeys,
}

impl fmt::Debug for TicketIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketIssuer").field("signer", &self.signer).finish_non_exhaustive()
    }
}

fn random_jti<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut jti = [0u8; 16];
    rng.fill_bytes(&mut jti);
    b64(&jti)
}

impl TicketIssuer {
    /// A broker named `issuer`, signing with `key`, with its symmetric
    /// secrets derived from `master` (a keyring key).
    pub fn new(issuer: &str, key: Ed25519Key, master: &[u8]) -> Result<Self, SsoError> {
        Ok(TicketIssuer {
            signer: TicketSigner::new(issuer, key)?,
            secrets: BrokerSecrets::derive(master)?,
            epochs: EpochKeys::default(),
        })
    }

    /// The JWKS to publish (RFC 8037).
    pub fn jwks(&self) -> Jwks {
        self.signer.jwks()
    }

    /// The issuer name (also the TGT's audience).
    pub fn issuer(&self) -> &str {
        self.signer.issuer()
    }

    /// The signer.
    pub fn signer(&self) -> &TicketSigner {
        &self.signer
    }

    /// The secret behind anonymous IDs ([`crate::sso::anon::anonymous_id`]).
    pub fn anonymous_secret(&self) -> &[u8; 32] {
        self.secrets.anon()
    }

    /// Stage 4a, first half: checks a login proof for `p_c` (skew, replay,
    /// Schnorr proof) in one call. The proof must be addressed to this
    /// broker. A server that shares `cache` between requests should rather
    /// call [`Self::precheck_login`], then
    /// [`crate::sso::preauth::remember_proof`] under its lock, then
    /// [`Self::verify_login`] outside it.
    pub fn check_login(
        &self,
        p_c: &Element,
        req: &LoginRequest,
        now: i64,
        cache: &mut ReplayCache,
    ) -> Result<(), SsoError> {
        if req.proof.service != self.issuer() {
            return Err(SsoError::WrongAudience);
        }
        verify_pw_proof(p_c, &req.proof, now, cache)
    }

    /// The cheap checks of a login, before any exponentiation: addressed to
    /// this broker, within the skew, fields of the right widths.
    pub fn precheck_login(&self, req: &LoginRequest, now: i64) -> Result<(), SsoError> {
        if req.proof.service != self.issuer() {
            return Err(SsoError::WrongAudience);
        }
        check_proof_shape(&req.proof, now)
    }

    /// A stand-in P_c for `id_c` when no user publishes one: an element no
    /// one knows the logarithm of, stable per id, so a login for an unknown
    /// user costs the broker and tells the caller what a wrong password does.
    pub fn unregistered_p_c(&self, id_c: &str) -> Element {
        let mut input = self.anonymous_secret().to_vec();
        input.extend_from_slice(id_c.as_bytes());
        Group::modp2048().hash_to_element(b"dirbroker unregistered P_c", &input)
    }

    /// The expensive check of a login (two full-length exponentiations),
    /// with no clock and no cache: run it outside any lock, after
    /// [`Self::precheck_login`] and the replay cache.
    pub fn verify_login(&self, p_c: &Element, req: &LoginRequest) -> Result<(), SsoError> {
        verify_schnorr(p_c, &req.proof)
    }

    /// The cheap checks of an anonymous login ([`Self::precheck_login`],
    /// plus the subject and the public value g^x, which is returned).
    pub fn precheck_anonymous_login(&self, req: &LoginRequest, now: i64) -> Result<Element, SsoError> {
        let p = req.p_anon.as_ref().ok_or(SsoError::Malformed("anonymous login without a public value"))?;
        let p_anon = decode_element(p)?;
        if req.proof.id_c != ANONYMOUS {
            return Err(SsoError::WrongSubject);
        }
        self.precheck_login(req, now)?;
        Ok(p_anon)
    }

    /// The expensive check of an anonymous login (the proof of knowledge of
    /// x for `p_anon`), and the pseudonymous entry (level 1) to log in.
    pub fn verify_anonymous_login(&self, p_anon: &Element, req: &LoginRequest) -> Result<ClientEntry, SsoError> {
        self.verify_login(p_anon, req)?;
        let id = crate::sso::anon::anonymous_id(self.secrets.anon(), p_anon.as_bytes())?;
        Ok(ClientEntry { id_c: id.id, p_c: p_anon.clone(), level: id.level })
    }

    /// An anonymous login (paper §5) in one call: checks the proof of
    /// knowledge of x for g^x and returns the pseudonymous entry (level 1).
    pub fn check_anonymous_login(
        &self,
        req: &LoginRequest,
        now: i64,
        cache: &mut ReplayCache,
    ) -> Result<ClientEntry, SsoError> {
        let p_anon = self.precheck_anonymous_login(req, now)?;
        crate::sso::preauth::remember_proof(&req.proof, now, cache)?;
        self.verify_anonymous_login(&p_anon, req)
    }

    /// Stage 4a, second half: the TGT and the login session key SK sealed
    /// under K_c = HKDF(P_c^a …) with a fresh α = g^a (256-bit a).
    pub fn issue_tgt<R: CryptoRng + ?Sized>(
        &self,
        client: &ClientEntry,
        lifetime: i64,
        now: i64,
        rng: &mut R,
    ) -> Result<LoginReply, SsoError> {
        let lifetime = lifetime.clamp(1, MAX_LIFETIME);
        let a = Scalar::random_short(rng).to_exponent()?;
        let alpha = group().exp(generator(), &a)?;
        let mut sk = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(sk.as_mut_slice());
        let mut claims = TicketClaims {
            iss: self.issuer().to_owned(),
            sub: client.id_c.clone(),
            aud: self.issuer().to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime),
            jti: random_jti(rng),
            level: client.level,
            tkt: TicketKind::Tgt,
            cnf: None,
        };
        let k_tgt = per_ticket_key(self.secrets.tgt(), LABEL_TGT, &claims.jti, &claims.sub)?;
        let v_tgt = aead_seal(&k_tgt, [0u8; 12], claims_aad("V_tgt", &claims).bytes(), sk.as_slice())?;
        claims.cnf = Some(Cnf { dirbroker_sealed: None, dirbroker_tgt: Some(Bytes(v_tgt)) });
        let tgt = self.signer.sign(&claims)?;
        let k_c = {
            let shared = Zeroizing::new(group().exp(&client.p_c, &a)?);
            login_key(&shared, alpha.as_bytes(), &client.id_c, self.issuer())?
        };
        let v = aead_seal(
            &k_c,
            [0u8; 12],
            &login_aad(&tgt, alpha.as_bytes()),
            &Zeroizing::new(key_plain(&sk, &claims.jti, claims.exp)),
        )?;
        Ok(LoginReply { tgt, client_part: SealedKey { alpha: Bytes(alpha.to_bytes()), v: Bytes(v) } })
    }

    /// Stage 4a in one call (proof check, then TGT).
    pub fn login<R: CryptoRng + ?Sized>(
        &self,
        client: &ClientEntry,
        req: &LoginRequest,
        lifetime: i64,
        now: i64,
        cache: &mut ReplayCache,
        rng: &mut R,
    ) -> Result<LoginReply, SsoError> {
        if req.proof.id_c != client.id_c {
            return Err(SsoError::WrongSubject);
        }
        self.check_login(&client.p_c, req, now, cache)?;
        self.issue_tgt(client, lifetime, now, rng)
    }

    /// Opens a TGT this broker issued: pinned alg, iss, aud = this broker,
    /// kind, validity window, and the sealed SK under K_tgt with every claim
    /// as AAD (Kerberos's krbtgt key: only this broker's keyring opens it,
    /// and any altered claim fails the tag). The signature is for everyone
    /// else; this check needs no public-key operation.
    pub fn open_tgt(&self, tgt: &str, now: i64) -> Result<(TicketClaims, Zeroizing<[u8; 32]>), SsoError> {
        // Our TGTs carry exactly our header (alg EdDSA, our kid): compare
        // the segment instead of parsing it.
        let mut parts = tgt.split('.');
        let (Some(h), Some(p), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(SsoError::Malformed("JWT is not three segments"));
        };
        if h != self.signer.header_b64 {
            return Err(SsoError::TgtInvalid);
        }
        let claims: TicketClaims = serde_json::from_slice(&unb64(p)?).map_err(|_| SsoError::Malformed("JWT claims"))?;
        if claims.iss != self.issuer() {
            return Err(SsoError::WrongIssuer);
        }
        if claims.aud != self.issuer() {
            return Err(SsoError::WrongAudience);
        }
        let (TicketKind::Tgt, Some(Cnf { dirbroker_tgt: Some(v), .. })) = (claims.tkt, claims.cnf.as_ref()) else {
            return Err(SsoError::WrongTicketKind);
        };
        let k_tgt = per_ticket_key(self.secrets.tgt(), LABEL_TGT, &claims.jti, &claims.sub)?;
        let sk = aead_open(&k_tgt, [0u8; 12], claims_aad("V_tgt", &claims).bytes(), v.as_slice())
            .ok_or(SsoError::TgtInvalid)?;
        let sk = Zeroizing::new(fixed::<32>(&sk, "SK")?);
        check_validity(&claims, now)?;
        Ok((claims, sk))
    }

    /// Stage 4b (TGS): checks the TGT and its authenticator (client match,
    /// skew, replay), then issues the client ticket and the server ticket
    /// for `service`: two signatures, three HKDFs, two AEAD seals; the only
    /// exponentiation, P_k^b, is cached per (service, epoch).
    pub fn grant<R: CryptoRng + ?Sized>(
        &self,
        req: &TicketRequest,
        service: &ServiceEntry,
        lifetime: i64,
        now: i64,
        cache: &mut ReplayCache,
        rng: &mut R,
    ) -> Result<TicketReply, SsoError> {
        let (tgt, sk) = self.open_tgt(&req.tgt, now)?;
        if req.service != service.id_k {
            return Err(SsoError::WrongAudience);
        }
        let plain = aead_open(
            &sk,
            fixed::<12>(req.nonce.as_slice(), "AEAD nonce")?,
            &tgs_aad(&req.tgt, &req.service),
            req.authenticator.as_slice(),
        )
        .ok_or(SsoError::AuthenticatorOpen)?;
        let parts = split_lp(&plain)?;
        let [id_c, jti, ctime, nonce, svc] = parts.as_slice() else {
            return Err(SsoError::Malformed("TGS authenticator"));
        };
        if *id_c != tgt.sub.as_bytes() || *jti != tgt.jti.as_bytes() || *svc != req.service.as_bytes() {
            return Err(SsoError::AuthenticatorMismatch);
        }
        let ctime = i64::from_be_bytes(fixed::<8>(ctime, "ctime")?);
        let nonce = fixed::<16>(nonce, "authenticator nonce")?;
        check_skew(ctime, now)?;
        if tgt.level < service.min_level {
            return Err(SsoError::InsufficientLevel { have: tgt.level.as_u8(), need: service.min_level.as_u8() });
        }
        let replay_key =
            Lp::sso("TGS-REQ replay").part(tgt.sub.as_bytes()).part(tgt.jti.as_bytes()).int(ctime).part(&nonce).hash();
        cache.check_and_insert(replay_key, ctime.saturating_add(MAX_SKEW), now)?;
        self.issue(&tgt, &sk, service, lifetime, now, rng)
    }

    /// The ticket pair for the holder of `tgt` (whose SK is `sk`).
    pub fn issue<R: CryptoRng + ?Sized>(
        &self,
        tgt: &TicketClaims,
        sk: &[u8; 32],
        service: &ServiceEntry,
        lifetime: i64,
        now: i64,
        rng: &mut R,
    ) -> Result<TicketReply, SsoError> {
        // A ticket never outlives the TGT it came from (Kerberos).
        let exp = now.saturating_add(lifetime.clamp(1, MAX_LIFETIME)).min(tgt.exp);
        // The TGT is still accepted for the clock skew past its end, but a
        // ticket issued then would be born expired: refuse instead.
        if exp <= now {
            return Err(SsoError::Expired);
        }
        let mut c_ck = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(c_ck.as_mut_slice());
        let mut claims = TicketClaims {
            iss: self.issuer().to_owned(),
            sub: tgt.sub.clone(),
            aud: service.id_k.clone(),
            iat: now,
            nbf: now,
            exp,
            jti: random_jti(rng),
            level: tgt.level,
            tkt: TicketKind::Client,
            cnf: None,
        };
        let client_ticket = self.signer.sign(&claims)?;
        let k_part = per_ticket_key(sk, LABEL_CLIENT_PART, &claims.jti, &claims.sub)?;
        let client_part = aead_seal(
            &k_part,
            [0u8; 12],
            &v_c_aad(&client_ticket),
            &Zeroizing::new(key_plain(&c_ck, &claims.jti, claims.exp)),
        )?;
        let epoch = epoch_of(now);
        let (big_b, k_epoch) = self.epochs.service_key(&self.secrets, epoch, &service.id_k, &service.p_k)?;
        claims.tkt = TicketKind::Service;
        let k_k = per_ticket_key(&k_epoch, LABEL_SERVICE, &claims.jti, &claims.sub)?;
        let v_k = aead_seal(&k_k, [0u8; 12], &v_k_aad(&claims, epoch, &big_b), c_ck.as_slice())?;
        claims.cnf = Some(Cnf {
            dirbroker_sealed: Some(EpochSealed { epoch, b: Bytes(big_b), v: Bytes(v_k) }),
            dirbroker_tgt: None,
        });
        let server_ticket = self.signer.sign(&claims)?;
        Ok(TicketReply { client_ticket, client_part: Bytes(client_part), server_ticket })
    }
}

/// `id_c` of an anonymous login's proof.
pub const ANONYMOUS: &str = "anonymous";
