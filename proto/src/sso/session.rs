//! Stages 5–7: the client opens its part, sends the server ticket with an
//! authenticator under C_ck; the service opens `cnf`, checks the
//! authenticator and answers with a mutual-authentication reply.
//!
//! ```text
//! client                                           service k
//!   K_c = HKDF(α^pw …) → C_ck
//!   ServiceRequest { server_ticket, nonce,
//!     V_ck = AEAD_{C_ck}(authenticator{ID_c, jti, ctime, nonce} ‖ M_request) }
//!   ─────────────────────────────────────────────▶  verify JWS (alg pinned, kid, iss,
//!                                                    aud = ID_k, nbf/exp ± 300 s)
//!                                                    K_k = HKDF(α^r_k …) → C_ck from cnf
//!                                                    open V_ck; ID_c = sub, jti = jti,
//!                                                    |now − ctime| ≤ 300 s, replay cache
//!   ServiceReply { AEAD_{C_ck}(ctime ‖ nonce) }  ◀── Authorized { client, level, request }
//! ```

use std::fmt;

use crate::group::Element;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::sso::error::SsoError;
use crate::sso::kdf::{KdfParams, derive_pw};
use crate::sso::level::Level;
use crate::sso::preauth::{PreAuthProof, prove_pw};
use crate::sso::primitives::{
    Bytes, Lp, Scalar, aead_open, aead_seal, decode_element, fixed, group, random_nonce, sha256, split_lp,
};
use crate::sso::replay::{MAX_SKEW, ReplayCache, check_skew};
use crate::sso::tickets::{
    Jwks, ROLE_CLIENT, ROLE_SERVICE, ServiceKey, TicketClaims, TicketKind, TicketReply, ticket_key, v_c_aad, v_k_aad,
    verify_ticket,
};

/// Stage 5, client → service (Kerberos KRB_AP_REQ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRequest {
    /// The server ticket, as the broker issued it.
    pub server_ticket: String,
    /// AEAD nonce (C_ck is used for several messages: random nonces).
    pub nonce: Bytes,
    /// V_ck = AEAD_{C_ck}(authenticator ‖ M_request).
    pub v_ck: Bytes,
}

/// Stage 7, service → client (Kerberos KRB_AP_REP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReply {
    /// AEAD nonce.
    pub nonce: Bytes,
    /// AEAD_{C_ck}(ctime ‖ authenticator nonce).
    pub ct: Bytes,
}

/// What the service learns about an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// ID_c (the ticket's `sub`).
    pub client: String,
    /// Userlevel (apply with [`crate::sso::level::require_level`]).
    pub level: Level,
    /// M_request.
    pub request: Vec<u8>,
    /// Ticket id.
    pub jti: String,
}

fn ap_req_aad(server_ticket: &str) -> Vec<u8> {
    Lp::new("AP-REQ").part(&sha256(server_ticket.as_bytes())).into_bytes()
}

fn ap_rep_aad(server_ticket: &str) -> Vec<u8> {
    Lp::new("AP-REP").part(&sha256(server_ticket.as_bytes())).into_bytes()
}

fn nonce12(b: &Bytes) -> Result<[u8; 12], SsoError> {
    fixed::<12>(b.as_slice(), "AEAD nonce")
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// The client's login state: ID_c, pw and P_c = g^pw. Made fresh from the
/// password at each login; pw is wiped on drop.
pub struct ClientCredential {
    id_c: String,
    pw: Scalar,
    p_c: Element,
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredential").field("id_c", &self.id_c).finish_non_exhaustive()
    }
}

impl ClientCredential {
    /// Derives pw from the password (or hardened password) with the salt and
    /// parameters the broker published.
    pub fn derive(id_c: &str, password_or_hardened: &[u8], salt: &[u8], kdf: &KdfParams) -> Result<Self, SsoError> {
        let pw = derive_pw(password_or_hardened, salt, kdf)?;
        let p_c = pw.public()?;
        Ok(ClientCredential { id_c: id_c.to_owned(), pw, p_c })
    }

    /// P_c = g^pw (compare with the published one to catch a typo early).
    pub fn p_c(&self) -> &Element {
        &self.p_c
    }

    /// ID_c.
    pub fn id(&self) -> &str {
        &self.id_c
    }

    /// Pre-authentication proof for a ticket to `service`.
    pub fn prove<R: CryptoRng + ?Sized>(&self, service: &str, now: i64, rng: &mut R) -> Result<PreAuthProof, SsoError> {
        prove_pw(&self.pw, &self.p_c, &self.id_c, service, now, rng)
    }

    /// Stage 5 (first half): verifies both tickets, derives K_c from
    /// α^pw and opens C_ck.
    pub fn open_ticket(
        &self,
        reply: &TicketReply,
        jwks: &Jwks,
        issuer: &str,
        service: &str,
        now: i64,
    ) -> Result<ClientSession, SsoError> {
        let claims = verify_ticket(&reply.client_ticket, jwks, issuer, now)?;
        if claims.tkt != TicketKind::Client || claims.cnf.is_some() {
            return Err(SsoError::WrongTicketKind);
        }
        if claims.sub != self.id_c {
            return Err(SsoError::WrongSubject);
        }
        if claims.aud != service {
            return Err(SsoError::WrongAudience);
        }
        let server = verify_ticket(&reply.server_ticket, jwks, issuer, now)?;
        if server.tkt != TicketKind::Service || server.cnf.is_none() {
            return Err(SsoError::WrongTicketKind);
        }
        if server.jti != claims.jti || server.sub != claims.sub || server.aud != claims.aud {
            return Err(SsoError::AuthenticatorMismatch);
        }
        let alpha = decode_element(&reply.client_part.alpha)?;
        let k_c = {
            let shared = Zeroizing::new(group().exp(&alpha, &self.pw.to_exponent()?)?);
            ticket_key(&shared, alpha.as_bytes(), &self.id_c, &claims.aud, ROLE_CLIENT)?
        };
        let plain = aead_open(
            &k_c,
            [0u8; 12],
            &v_c_aad(&reply.client_ticket, alpha.as_bytes()),
            reply.client_part.v.as_slice(),
        )
        .ok_or(SsoError::SessionKeyOpen)?;
        let parts = split_lp(&plain)?;
        let [c_ck, jti, exp] = parts.as_slice() else {
            return Err(SsoError::Malformed("V_c contents"));
        };
        if *jti != claims.jti.as_bytes() || *exp != claims.exp.to_be_bytes().as_slice() {
            return Err(SsoError::SessionKeyOpen);
        }
        let c_ck = Zeroizing::new(fixed::<32>(c_ck, "C_ck")?);
        Ok(ClientSession { claims, c_ck, server_ticket: reply.server_ticket.clone() })
    }
}

/// The client holding C_ck for one ticket.
pub struct ClientSession {
    claims: TicketClaims,
    c_ck: Zeroizing<[u8; 32]>,
    server_ticket: String,
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession").field("claims", &self.claims).finish_non_exhaustive()
    }
}

/// The client, after a [`ServiceRequest`]: waits for [`ServiceReply`].
pub struct ClientAwaitingServiceReply {
    c_ck: Zeroizing<[u8; 32]>,
    server_ticket: String,
    ctime: i64,
    nonce: [u8; 16],
}

impl fmt::Debug for ClientAwaitingServiceReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAwaitingServiceReply").field("ctime", &self.ctime).finish_non_exhaustive()
    }
}

fn authenticator_plain(id_c: &str, jti: &str, ctime: i64, nonce: &[u8; 16], request: &[u8]) -> Vec<u8> {
    Lp::default().part(id_c.as_bytes()).part(jti.as_bytes()).int(ctime).part(nonce).part(request).into_bytes()
}

fn reply_plain(ctime: i64, nonce: &[u8]) -> Vec<u8> {
    Lp::default().int(ctime).part(nonce).into_bytes()
}

impl ClientSession {
    /// The client ticket's claims.
    pub fn claims(&self) -> &TicketClaims {
        &self.claims
    }

    /// Stage 5 (second half): V_ck = AEAD_{C_ck}(authenticator ‖ M_request).
    pub fn request<R: CryptoRng + ?Sized>(
        &self,
        m_request: &[u8],
        now: i64,
        rng: &mut R,
    ) -> Result<(ServiceRequest, ClientAwaitingServiceReply), SsoError> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let aead_nonce = random_nonce(rng);
        let plain = authenticator_plain(&self.claims.sub, &self.claims.jti, now, &nonce, m_request);
        let v_ck = aead_seal(&self.c_ck, aead_nonce, &ap_req_aad(&self.server_ticket), &plain)?;
        let req = ServiceRequest {
            server_ticket: self.server_ticket.clone(),
            nonce: Bytes(aead_nonce.to_vec()),
            v_ck: Bytes(v_ck),
        };
        let state = ClientAwaitingServiceReply {
            c_ck: self.c_ck.clone(),
            server_ticket: self.server_ticket.clone(),
            ctime: now,
            nonce,
        };
        Ok((req, state))
    }
}

impl ClientAwaitingServiceReply {
    /// Mutual authentication: the reply must open under C_ck and echo this
    /// request's ctime and nonce. Takes `&self`: a forged reply must not
    /// end the wait for the genuine one.
    pub fn receive_reply(&self, reply: &ServiceReply) -> Result<(), SsoError> {
        let plain =
            aead_open(&self.c_ck, nonce12(&reply.nonce)?, &ap_rep_aad(&self.server_ticket), reply.ct.as_slice())
                .ok_or(SsoError::ReplyInvalid)?;
        let expected = reply_plain(self.ctime, &self.nonce);
        if bool::from(expected.as_slice().ct_eq(plain.as_slice())) { Ok(()) } else { Err(SsoError::ReplyInvalid) }
    }
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

/// A Kerberized service's verifier: its key, the broker it trusts, and the
/// broker's JWKS.
#[derive(Debug)]
pub struct ServiceVerifier {
    /// r_k, ID_k.
    pub key: ServiceKey,
    /// Trusted `iss`.
    pub issuer: String,
    /// The broker's keys.
    pub jwks: Jwks,
}

impl ServiceVerifier {
    /// Stages 6–7: checks the server ticket, opens `cnf` with r_k, opens
    /// and checks the authenticator (sub match, skew, replay), and returns
    /// the authorization and the AP-REP.
    pub fn accept<R: CryptoRng + ?Sized>(
        &self,
        req: &ServiceRequest,
        now: i64,
        cache: &mut ReplayCache,
        rng: &mut R,
    ) -> Result<(Authorized, ServiceReply), SsoError> {
        let claims = verify_ticket(&req.server_ticket, &self.jwks, &self.issuer, now)?;
        if claims.aud != self.key.id() {
            return Err(SsoError::WrongAudience);
        }
        let (TicketKind::Service, Some(cnf)) = (claims.tkt, claims.cnf.as_ref()) else {
            return Err(SsoError::WrongTicketKind);
        };
        let sealed = &cnf.dirbroker_sealed;
        let alpha = decode_element(&sealed.alpha)?;
        let k_k = {
            let shared = Zeroizing::new(group().exp(&alpha, &self.key.r_k().to_exponent()?)?);
            ticket_key(&shared, alpha.as_bytes(), self.key.id(), &claims.sub, ROLE_SERVICE)?
        };
        let c_ck = aead_open(&k_k, [0u8; 12], &v_k_aad(&claims, alpha.as_bytes()), sealed.v.as_slice())
            .ok_or(SsoError::SessionKeyOpen)?;
        let c_ck = Zeroizing::new(fixed::<32>(&c_ck, "C_ck")?);
        let plain = aead_open(&c_ck, nonce12(&req.nonce)?, &ap_req_aad(&req.server_ticket), req.v_ck.as_slice())
            .ok_or(SsoError::AuthenticatorOpen)?;
        let parts = split_lp(&plain)?;
        let [id_c, jti, ctime, nonce, request] = parts.as_slice() else {
            return Err(SsoError::Malformed("authenticator"));
        };
        if *id_c != claims.sub.as_bytes() || *jti != claims.jti.as_bytes() {
            return Err(SsoError::AuthenticatorMismatch);
        }
        let ctime = i64::from_be_bytes(fixed::<8>(ctime, "ctime")?);
        let nonce = fixed::<16>(nonce, "authenticator nonce")?;
        check_skew(ctime, now)?;
        let replay_key = Lp::new("AP-REQ replay")
            .part(self.key.id().as_bytes())
            .part(claims.sub.as_bytes())
            .part(claims.jti.as_bytes())
            .int(ctime)
            .part(&nonce)
            .hash();
        cache.check_and_insert(replay_key, claims.exp.saturating_add(MAX_SKEW), now)?;
        let reply_nonce = random_nonce(rng);
        let ct = aead_seal(&c_ck, reply_nonce, &ap_rep_aad(&req.server_ticket), &reply_plain(ctime, &nonce))?;
        Ok((
            Authorized { client: claims.sub, level: claims.level, request: request.to_vec(), jti: claims.jti },
            ServiceReply { nonce: Bytes(reply_nonce.to_vec()), ct: Bytes(ct) },
        ))
    }
}
