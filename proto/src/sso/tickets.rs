//! Stages 3 and 4: service registration and ticket issuance; the JWT/JWKS
//! layer shared by stages 5–7.
//!
//! ```text
//! service → broker   ServiceRegistration (ID_k, P_k = g^r_k, T_k)          stage 3
//! broker             a ∈R [1, 2^256), α = g^a, C_ck ∈R {0,1}^256           stage 4
//!                    K_c = HKDF(P_c^a; α ‖ ID_c ‖ ID_k ‖ "client")
//!                    K_k = HKDF(P_k^a; α ‖ ID_k ‖ ID_c ‖ "service")
//! broker → client    TicketReply {
//!                      client_ticket = JWS_EdDSA{iss, sub=ID_c, aud=ID_k, iat, nbf, exp, jti, level, tkt="client"}
//!                      client_part   = {α, V_c = AEAD_{K_c}(C_ck ‖ jti ‖ exp; aad = client_ticket ‖ α)}
//!                      server_ticket = JWS_EdDSA{…same claims…, tkt="service",
//!                                        cnf = {dirbroker_sealed: {α, V_k = AEAD_{K_k}(C_ck; aad = claims ‖ α)}}} }
//! ```
//!
//! Only the holder of pw (α^pw = P_c^a) can derive K_c, and only the holder
//! of r_k (α^r_k = P_k^a) can derive K_k: this replaces the paper's
//! K_a1 = H(P_c·g^pw2 ‖ ID_c), which anyone can compute from public values.

use std::collections::HashSet;

use crate::group::Element;
use ed25519_dalek::VerifyingKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::sso::error::SsoError;
use crate::sso::level::Level;
use crate::sso::primitives::{
    Bytes, Ed25519Key, Lp, Scalar, aead_seal, b64, decode_element, generator, group, hkdf32, sha256, unb64,
};
use crate::sso::registration::Published;
use crate::sso::replay::MAX_SKEW;

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

/// A validated service directory entry (P_k passed the subgroup checks).
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// ID_k.
    pub id_k: String,
    /// P_k.
    pub p_k: Element,
}

impl TryFrom<&ServiceRegistration> for ServiceEntry {
    type Error = SsoError;
    fn try_from(r: &ServiceRegistration) -> Result<Self, SsoError> {
        Ok(ServiceEntry { id_k: r.id_k.clone(), p_k: decode_element(&r.p_k)? })
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
    /// The client's ticket.
    Client,
    /// The service's ticket (carries `cnf`).
    Service,
}

/// The sealed session key (RFC 7800 §3.3 shape: a key encrypted for the
/// recipient inside `cnf`; no JWE `alg` exists for MODP Diffie–Hellman, so
/// the member has a private name instead of `jwe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// α = g^a.
    pub alpha: Bytes,
    /// V = AEAD(C_ck …).
    pub v: Bytes,
}

/// The `cnf` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cnf {
    /// C_ck sealed for the service.
    pub dirbroker_sealed: SealedKey,
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
    /// Sealed session key (service tickets only).
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
    if now < c.nbf.saturating_sub(MAX_SKEW) {
        return Err(SsoError::NotYetValid);
    }
    if now > c.exp.saturating_add(MAX_SKEW) {
        return Err(SsoError::Expired);
    }
    Ok(c)
}

// ---------------------------------------------------------------------------
// Stage 4: the broker
// ---------------------------------------------------------------------------

/// Stage 4, broker → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketReply {
    /// The client ticket (compact JWS).
    pub client_ticket: String,
    /// C_ck sealed for the client.
    pub client_part: SealedKey,
    /// The server ticket (compact JWS), which the client forwards.
    pub server_ticket: String,
}

/// Key derivation for the two sealed copies of C_ck.
pub(crate) fn ticket_key(
    shared: &Element,
    alpha: &[u8],
    first: &str,
    second: &str,
    role: &str,
) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    let info = Lp::new("ticket key").part(alpha).part(first.as_bytes()).part(second.as_bytes()).part(role.as_bytes());
    hkdf32(shared.as_bytes(), info.bytes())
}

pub(crate) const ROLE_CLIENT: &str = "client";
pub(crate) const ROLE_SERVICE: &str = "service";

/// AAD of V_c: the whole client ticket (this is where the paper's Z_c, a
/// keyed hash of the ticket under the client's key, lives now) and α.
pub(crate) fn v_c_aad(client_ticket: &str, alpha: &[u8]) -> Vec<u8> {
    Lp::new("V_c").part(client_ticket.as_bytes()).part(alpha).into_bytes()
}

/// AAD of V_k: every claim except `cnf`, and α.
pub(crate) fn v_k_aad(c: &TicketClaims, alpha: &[u8]) -> Vec<u8> {
    Lp::new("V_k")
        .part(c.iss.as_bytes())
        .part(c.sub.as_bytes())
        .part(c.aud.as_bytes())
        .int(c.iat)
        .int(c.nbf)
        .int(c.exp)
        .part(c.jti.as_bytes())
        .part(&[c.level.as_u8()])
        .part(alpha)
        .into_bytes()
}

pub(crate) fn v_c_plain(c_ck: &[u8; 32], jti: &str, exp: i64) -> Vec<u8> {
    Lp::default().part(c_ck).part(jti.as_bytes()).int(exp).into_bytes()
}

/// The broker's ticket signer.
pub struct TicketIssuer {
    issuer: String,
    key: Ed25519Key,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for TicketIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketIssuer").field("issuer", &self.issuer).field("kid", &self.jwk.kid).finish_non_exhaustive()
    }
}

/// The longest ticket the broker issues (10 h, Kerberos's usual default).
pub const MAX_LIFETIME: i64 = 10 * 3600;

impl TicketIssuer {
    /// A signer for issuer `iss` with `key`.
    pub fn new(issuer: &str, key: Ed25519Key) -> Result<Self, SsoError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let der = key.signing_key().to_pkcs8_der().map_err(|_| SsoError::Internal("PKCS#8 encoding"))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let jwk = Jwk::ed25519(&key.verifying_key());
        Ok(TicketIssuer { issuer: issuer.to_owned(), key, encoding, jwk })
    }

    /// The JWKS to publish (RFC 8037).
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: vec![self.jwk.clone()] }
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key's public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn sign(&self, claims: &TicketClaims) -> Result<String, SsoError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| SsoError::Internal("JWT signing"))
    }

    /// Stage 4: issues the ticket pair for `client` at `service`. The
    /// level is the client's published level unless `level` asks for less.
    /// a is a 256-bit short exponent (see the crate docs).
    pub fn issue<R: CryptoRng + ?Sized>(
        &self,
        client: &ClientEntry,
        service: &ServiceEntry,
        level: Level,
        lifetime: i64,
        now: i64,
        rng: &mut R,
    ) -> Result<TicketReply, SsoError> {
        if level > client.level {
            return Err(SsoError::InsufficientLevel { have: client.level.as_u8(), need: level.as_u8() });
        }
        let lifetime = lifetime.clamp(1, MAX_LIFETIME);
        let a = Scalar::random_short(rng).to_exponent()?;
        let alpha = group().exp(generator(), &a)?;
        let mut c_ck = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(c_ck.as_mut_slice());
        let mut jti = [0u8; 16];
        rng.fill_bytes(&mut jti);
        let mut claims = TicketClaims {
            iss: self.issuer.clone(),
            sub: client.id_c.clone(),
            aud: service.id_k.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime),
            jti: b64(&jti),
            level,
            tkt: TicketKind::Client,
            cnf: None,
        };
        let client_ticket = self.sign(&claims)?;

        let k_c = {
            let shared = Zeroizing::new(group().exp(&client.p_c, &a)?);
            ticket_key(&shared, alpha.as_bytes(), &client.id_c, &service.id_k, ROLE_CLIENT)?
        };
        let v_c = aead_seal(
            &k_c,
            [0u8; 12],
            &v_c_aad(&client_ticket, alpha.as_bytes()),
            &Zeroizing::new(v_c_plain(&c_ck, &claims.jti, claims.exp)),
        )?;

        let k_k = {
            let shared = Zeroizing::new(group().exp(&service.p_k, &a)?);
            ticket_key(&shared, alpha.as_bytes(), &service.id_k, &client.id_c, ROLE_SERVICE)?
        };
        let v_k = aead_seal(&k_k, [0u8; 12], &v_k_aad(&claims, alpha.as_bytes()), c_ck.as_slice())?;
        claims.tkt = TicketKind::Service;
        claims.cnf = Some(Cnf { dirbroker_sealed: SealedKey { alpha: Bytes(alpha.to_bytes()), v: Bytes(v_k) } });
        let server_ticket = self.sign(&claims)?;
        Ok(TicketReply {
            client_ticket,
            client_part: SealedKey { alpha: Bytes(alpha.to_bytes()), v: Bytes(v_c) },
            server_ticket,
        })
    }
}
