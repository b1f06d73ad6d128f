//! The client's side of stages 4–5 and the service's side of stages 6–7.
//!
//! ```text
//! client                          broker                          service k
//!  ClientCredential (pw from the password)
//!   ── LoginRequest ──────────────▶ AS: proof ─▶ TGT, {SK}K_c
//!  ◀─ LoginReply ─────────────────
//!  LoginSession (TGT, SK)           (stored in the 0600 ccache)
//!   ── TicketRequest ─────────────▶ TGS: TGT, authenticator ─▶ tickets
//!  ◀─ TicketReply ────────────────
//!  ClientAwaitingTicketReply ─▶ ClientSession (C_ck)
//!   ServiceRequest { server_ticket, nonce,
//!     V_ck = AEAD_{C_ck}(authenticator{ID_c, jti, ctime, nonce} ‖ M_request) }
//!   ───────────────────────────────────────────────────────────▶  verify JWS (alg pinned, kid, iss,
//!                                                                 aud = ID_k, nbf/exp ± 300 s)
//!                                                                 K_k,e from B^r_k (cached) → C_ck
//!                                                                 open V_ck; ID_c = sub, jti = jti,
//!                                                                 |now − ctime| ≤ 300 s, replay cache
//!   ServiceReply { AEAD_{C_ck}(ctime ‖ nonce ‖ answer) }  ◀───── Authorized { client, level, request }
//! ```

use std::fmt;

use crate::group::Element;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::sso::epoch::ServiceEpochCache;
use crate::sso::error::SsoError;
use crate::sso::kdf::{KdfParams, derive_pw};
use crate::sso::level::Level;
use crate::sso::preauth::{PreAuthProof, prove_pw};
use crate::sso::primitives::{
    Bytes, Lp, Scalar, aead_open, aead_seal, decode_element, fixed, group, random_nonce, sha256, split_lp,
};
use crate::sso::replay::{MAX_SKEW, ReplayCache, check_skew};
use crate::sso::tickets::{
    ANONYMOUS, Jwks, LABEL_CLIENT_PART, LABEL_SERVICE, LoginReply, LoginRequest, ServiceKey, TicketClaims, TicketKind,
    TicketReply, TicketRequest, check_validity, login_aad, login_key, open_key_plain, per_ticket_key, tgs_aad,
    tgs_authenticator, unverified_claims, v_c_aad, v_k_aad, verify_ticket,
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

/// Stage 7, service → client (Kerberos KRB_AP_REP, with the service's
/// answer inside, so the answer is authenticated too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReply {
    /// AEAD nonce.
    pub nonce: Bytes,
    /// AEAD_{C_ck}(ctime ‖ authenticator nonce ‖ answer).
    pub ct: Bytes,
}

/// What the service learns about an accepted request; it answers with
/// [`Authorized::reply`].
#[derive(Clone, PartialEq, Eq)]
pub struct Authorized {
    /// ID_c (the ticket's `sub`).
    pub client: String,
    /// Userlevel (apply with [`crate::sso::level::require_level`]).
    pub level: Level,
    /// M_request.
    pub request: Vec<u8>,
    /// Ticket id.
    pub jti: String,
    /// Ticket expiry.
    pub exp: i64,
    c_ck: Zeroizing<[u8; 32]>,
    ctime: i64,
    nonce: [u8; 16],
    ticket_hash: [u8; 32],
}

impl fmt::Debug for Authorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized")
            .field("client", &self.client)
            .field("level", &self.level)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

fn ap_req_aad(server_ticket: &str) -> Vec<u8> {
    Lp::sso("AP-REQ").part(&sha256(server_ticket.as_bytes())).into_bytes()
}

fn ap_rep_aad(ticket_hash: &[u8; 32]) -> Vec<u8> {
    Lp::sso("AP-REP").part(ticket_hash).into_bytes()
}

fn nonce12(b: &Bytes) -> Result<[u8; 12], SsoError> {
    fixed::<12>(b.as_slice(), "AEAD nonce")
}

fn reply_plain(ctime: i64, nonce: &[u8], answer: &[u8]) -> Vec<u8> {
    Lp::default().int(ctime).part(nonce).part(answer).into_bytes()
}

impl Authorized {
    /// The mutual-authentication reply carrying `answer`, under C_ck.
    pub fn reply<R: CryptoRng + ?Sized>(&self, answer: &[u8], rng: &mut R) -> Result<ServiceReply, SsoError> {
        let reply_nonce = random_nonce(rng);
        let ct = aead_seal(
            &self.c_ck,
            reply_nonce,
            &ap_rep_aad(&self.ticket_hash),
            &reply_plain(self.ctime, &self.nonce, answer),
        )?;
        Ok(ServiceReply { nonce: Bytes(reply_nonce.to_vec()), ct: Bytes(ct) })
    }
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
    anonymous: bool,
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
        Ok(ClientCredential { id_c: id_c.to_owned(), pw, p_c, anonymous: false })
    }

    /// An anonymous credential (paper §5): a fresh secret x whose g^x is the
    /// "public information" the broker's pseudonym is made from.
    pub fn anonymous<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, SsoError> {
        let pw = Scalar::random(rng);
        let p_c = pw.public()?;
        Ok(ClientCredential { id_c: ANONYMOUS.to_owned(), pw, p_c, anonymous: true })
    }

    /// P_c = g^pw (compare with the published one to catch a typo early).
    pub fn p_c(&self) -> &Element {
        &self.p_c
    }

    /// ID_c.
    pub fn id(&self) -> &str {
        &self.id_c
    }

    /// Pre-authentication proof addressed to `service` (the broker's issuer
    /// name for a login).
    pub fn prove<R: CryptoRng + ?Sized>(&self, service: &str, now: i64, rng: &mut R) -> Result<PreAuthProof, SsoError> {
        prove_pw(&self.pw, &self.p_c, &self.id_c, service, now, rng)
    }

    /// Stage 4a: the login request to broker `issuer`.
    pub fn login_request<R: CryptoRng + ?Sized>(
        &self,
        issuer: &str,
        now: i64,
        rng: &mut R,
    ) -> Result<LoginRequest, SsoError> {
        let proof = self.prove(issuer, now, rng)?;
        let p_anon = self.anonymous.then(|| Bytes(self.p_c.to_bytes()));
        Ok(LoginRequest { proof, p_anon })
    }

    /// Stage 4a's answer: verifies the TGT (signature, iss, aud = broker,
    /// sub, validity), derives K_c from α^pw and opens SK.
    pub fn open_login(
        &self,
        reply: &LoginReply,
        jwks: &Jwks,
        issuer: &str,
        now: i64,
    ) -> Result<LoginSession, SsoError> {
        let claims = verify_ticket(&reply.tgt, jwks, issuer, now)?;
        if claims.tkt != TicketKind::Tgt {
            return Err(SsoError::WrongTicketKind);
        }
        if claims.aud != issuer {
            return Err(SsoError::WrongAudience);
        }
        let sub_ok = if self.anonymous { claims.sub.starts_with("anon-") } else { claims.sub == self.id_c };
        if !sub_ok {
            return Err(SsoError::WrongSubject);
        }
        let alpha = decode_element(&reply.client_part.alpha)?;
        let k_c = {
            let shared = Zeroizing::new(group().exp(&alpha, &self.pw.to_exponent()?)?);
            login_key(&shared, alpha.as_bytes(), &self.id_c_for_key(&claims), issuer)?
        };
        let plain =
            aead_open(&k_c, [0u8; 12], &login_aad(&reply.tgt, alpha.as_bytes()), reply.client_part.v.as_slice())
                .ok_or(SsoError::SessionKeyOpen)?;
        let sk = open_key_plain(&plain, &claims.jti, claims.exp)?;
        Ok(LoginSession { claims, tgt: reply.tgt.clone(), sk })
    }

    fn id_c_for_key(&self, claims: &TicketClaims) -> String {
        if self.anonymous { claims.sub.clone() } else { self.id_c.clone() }
    }
}

/// What a credential cache holds for a login: the TGT and SK (in clear, like
/// a Kerberos ccache: the file is 0600; neither the password nor pw).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLogin {
    /// The TGT.
    pub tgt: String,
    /// SK.
    pub session_key: Bytes,
}

impl fmt::Debug for CachedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedLogin").finish_non_exhaustive()
    }
}

/// What a credential cache holds for a service ticket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTicket {
    /// The client ticket.
    pub client_ticket: String,
    /// The server ticket.
    pub server_ticket: String,
    /// C_ck.
    pub session_key: Bytes,
}

impl fmt::Debug for CachedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTicket").finish_non_exhaustive()
    }
}

/// A logged-in client: the TGT and the login session key SK.
pub struct LoginSession {
    claims: TicketClaims,
    tgt: String,
    sk: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for LoginSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginSession").field("claims", &self.claims).finish_non_exhaustive()
    }
}

/// The client after a [`TicketRequest`]: waits for the [`TicketReply`].
pub struct ClientAwaitingTicketReply {
    sub: String,
    service: String,
    sk: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ClientAwaitingTicketReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAwaitingTicketReply").field("service", &self.service).finish_non_exhaustive()
    }
}

impl LoginSession {
    /// The TGT's claims (principal, level, validity).
    pub fn claims(&self) -> &TicketClaims {
        &self.claims
    }

    /// The TGT.
    pub fn tgt(&self) -> &str {
        &self.tgt
    }

    /// For the credential cache.
    pub fn to_cached(&self) -> CachedLogin {
        CachedLogin { tgt: self.tgt.clone(), session_key: Bytes(self.sk.to_vec()) }
    }

    /// From the credential cache (the TGT was verified when it was stored;
    /// the broker checks it again on every use).
    pub fn from_cached(c: &CachedLogin) -> Result<Self, SsoError> {
        let claims = unverified_claims(&c.tgt)?;
        if claims.tkt != TicketKind::Tgt {
            return Err(SsoError::WrongTicketKind);
        }
        let sk = Zeroizing::new(fixed::<32>(c.session_key.as_slice(), "session key")?);
        Ok(LoginSession { claims, tgt: c.tgt.clone(), sk })
    }

    /// Stage 4b: asks for tickets to `service`, with an authenticator under SK.
    pub fn request_ticket<R: CryptoRng + ?Sized>(
        &self,
        service: &str,
        now: i64,
        rng: &mut R,
    ) -> Result<(TicketRequest, ClientAwaitingTicketReply), SsoError> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let aead_nonce = random_nonce(rng);
        let plain = tgs_authenticator(&self.claims.sub, &self.claims.jti, now, &nonce, service);
        let authenticator = aead_seal(&self.sk, aead_nonce, &tgs_aad(&self.tgt, service), &plain)?;
        let req = TicketRequest {
            tgt: self.tgt.clone(),
            service: service.to_owned(),
            nonce: Bytes(aead_nonce.to_vec()),
            authenticator: Bytes(authenticator),
        };
        Ok((
            req,
            ClientAwaitingTicketReply {
                sub: self.claims.sub.clone(),
                service: service.to_owned(),
                sk: self.sk.clone(),
            },
        ))
    }
}

impl ClientAwaitingTicketReply {
    /// Stage 5 (first half): verifies both tickets and opens C_ck with SK.
    pub fn receive(&self, reply: &TicketReply, jwks: &Jwks, issuer: &str, now: i64) -> Result<ClientSession, SsoError> {
        let claims = verify_ticket(&reply.client_ticket, jwks, issuer, now)?;
        if claims.tkt != TicketKind::Client || claims.cnf.is_some() {
            return Err(SsoError::WrongTicketKind);
        }
        if claims.sub != self.sub {
            return Err(SsoError::WrongSubject);
        }
        if claims.aud != self.service {
            return Err(SsoError::WrongAudience);
        }
        let server = verify_ticket(&reply.server_ticket, jwks, issuer, now)?;
        if server.tkt != TicketKind::Service || server.cnf.is_none() {
            return Err(SsoError::WrongTicketKind);
        }
        if server.jti != claims.jti || server.sub != claims.sub || server.aud != claims.aud {
            return Err(SsoError::AuthenticatorMismatch);
        }
        let k_part = per_ticket_key(&self.sk, LABEL_CLIENT_PART, &claims.jti, &claims.sub)?;
        let plain = aead_open(&k_part, [0u8; 12], &v_c_aad(&reply.client_ticket), reply.client_part.as_slice())
            .ok_or(SsoError::SessionKeyOpen)?;
        let c_ck = open_key_plain(&plain, &claims.jti, claims.exp)?;
        Ok(ClientSession {
            claims,
            c_ck,
            client_ticket: reply.client_ticket.clone(),
            server_ticket: reply.server_ticket.clone(),
        })
    }
}

/// The client holding C_ck for one ticket.
pub struct ClientSession {
    claims: TicketClaims,
    c_ck: Zeroizing<[u8; 32]>,
    client_ticket: String,
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
    ticket_hash: [u8; 32],
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

impl ClientSession {
    /// The client ticket's claims.
    pub fn claims(&self) -> &TicketClaims {
        &self.claims
    }

    /// For the credential cache.
    pub fn to_cached(&self) -> CachedTicket {
        CachedTicket {
            client_ticket: self.client_ticket.clone(),
            server_ticket: self.server_ticket.clone(),
            session_key: Bytes(self.c_ck.to_vec()),
        }
    }

    /// From the credential cache.
    pub fn from_cached(c: &CachedTicket) -> Result<Self, SsoError> {
        let claims = unverified_claims(&c.client_ticket)?;
        if claims.tkt != TicketKind::Client {
            return Err(SsoError::WrongTicketKind);
        }
        let c_ck = Zeroizing::new(fixed::<32>(c.session_key.as_slice(), "session key")?);
        Ok(ClientSession {
            claims,
            c_ck,
            client_ticket: c.client_ticket.clone(),
            server_ticket: c.server_ticket.clone(),
        })
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
            ticket_hash: sha256(self.server_ticket.as_bytes()),
            ctime: now,
            nonce,
        };
        Ok((req, state))
    }
}

impl ClientAwaitingServiceReply {
    /// Mutual authentication: the reply must open under C_ck and echo this
    /// request's ctime and nonce; returns the service's answer. Takes
    /// `&self`: a forged reply must not end the wait for the genuine one.
    pub fn receive_reply(&self, reply: &ServiceReply) -> Result<Vec<u8>, SsoError> {
        let plain = aead_open(&self.c_ck, nonce12(&reply.nonce)?, &ap_rep_aad(&self.ticket_hash), reply.ct.as_slice())
            .ok_or(SsoError::ReplyInvalid)?;
        let parts = split_lp(&plain)?;
        let [ctime, nonce, answer] = parts.as_slice() else {
            return Err(SsoError::ReplyInvalid);
        };
        let expected = Lp::default().int(self.ctime).part(&self.nonce).into_bytes();
        let got = Lp::default().part(ctime).part(nonce).into_bytes();
        let ok = got.len() == expected.len() && bool::from(expected.as_slice().ct_eq(got.as_slice()));
        if ok { Ok(answer.to_vec()) } else { Err(SsoError::ReplyInvalid) }
    }
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

/// A Kerberized service's verifier: its key, the broker it trusts, the
/// broker's JWKS, and its per-epoch key cache.
#[derive(Debug)]
pub struct ServiceVerifier {
    /// r_k, ID_k.
    pub key: ServiceKey,
    /// Trusted `iss`.
    pub issuer: String,
    /// The broker's keys.
    pub jwks: Jwks,
    epochs: ServiceEpochCache,
}

impl ServiceVerifier {
    /// A verifier for service `key` trusting `issuer` with `jwks`.
    pub fn new(key: ServiceKey, issuer: &str, jwks: Jwks) -> Self {
        ServiceVerifier { key, issuer: issuer.to_owned(), jwks, epochs: ServiceEpochCache::default() }
    }

    /// Epoch keys held (one exponentiation B^r_k per broker epoch).
    pub fn cached_epoch_keys(&self) -> usize {
        self.epochs.len()
    }

    /// Stages 6–7: checks the server ticket, opens `cnf` with K_k,e (from
    /// B^r_k, cached per epoch), opens and checks the authenticator (sub
    /// match, skew, replay), and returns the authorization and an AP-REP
    /// with an empty answer (answer with [`Authorized::reply`] instead to
    /// send data back).
    pub fn accept<R: CryptoRng + ?Sized>(
        &self,
        req: &ServiceRequest,
        now: i64,
        cache: &mut ReplayCache,
        rng: &mut R,
    ) -> Result<(Authorized, ServiceReply), SsoError> {
        let auth = self.authorize(req, now, cache)?;
        let reply = auth.reply(b"", rng)?;
        Ok((auth, reply))
    }

    /// Stages 6–7 without the reply.
    pub fn authorize(&self, req: &ServiceRequest, now: i64, cache: &mut ReplayCache) -> Result<Authorized, SsoError> {
        let claims = verify_ticket(&req.server_ticket, &self.jwks, &self.issuer, now)?;
        if claims.aud != self.key.id() {
            return Err(SsoError::WrongAudience);
        }
        let (TicketKind::Service, Some(sealed)) =
            (claims.tkt, claims.cnf.as_ref().and_then(|c| c.dirbroker_sealed.as_ref()))
        else {
            return Err(SsoError::WrongTicketKind);
        };
        let k_epoch = self.epochs.key(self.key.r_k(), self.key.id(), sealed.epoch, sealed.b.as_slice())?;
        let k_k = per_ticket_key(&k_epoch, LABEL_SERVICE, &claims.jti, &claims.sub)?;
        let c_ck =
            aead_open(&k_k, [0u8; 12], &v_k_aad(&claims, sealed.epoch, sealed.b.as_slice()), sealed.v.as_slice())
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
        check_validity(&claims, now)?;
        let replay_key = Lp::sso("AP-REQ replay")
            .part(self.key.id().as_bytes())
            .part(claims.sub.as_bytes())
            .part(claims.jti.as_bytes())
            .int(ctime)
            .part(&nonce)
            .hash();
        // Remembered only as long as the skew check would let it in again
        // (RFC 4120 §3.2.3): not for the ticket's whole life.
        cache.check_and_insert(replay_key, ctime.saturating_add(MAX_SKEW), now)?;
        Ok(Authorized {
            client: claims.sub,
            level: claims.level,
            request: request.to_vec(),
            jti: claims.jti,
            exp: claims.exp,
            c_ck,
            ctime,
            nonce,
            ticket_hash: sha256(req.server_ticket.as_bytes()),
        })
    }
}
