//! Pre-stage, stage 1 and stage 2 of the paper: registering a client's P_c
//! without the password or pw ever leaving the client.
//!
//! ```text
//! client                broker                  AMS                    ANS
//!   │ RegistrationRequest │                       │                      │
//!   │  (ID_c, G1=g^pw1,   │                       │                      │
//!   │   salt, kdf, epk_c) │                       │                      │
//!   │────────────────────▶│ AgentRequest          │                      │
//!   │                     │ (M_a, ID_a, G1, …)    │                      │
//!   │                     │──────────────────────▶│ McodeToAns           │
//!   │                     │                       │ (M_code=E_ANS(R_A,   │
//!   │                     │                       │  S_A, M_info), …)    │
//!   │                     │       AgentCreated    │─────────────────────▶│ keeps K,
//!   │                     │◀──────────────────────│                      │ Userlevel =
//!   │            AgentToClient (M_code, E_c(r, H(M_A)), T, S_A)        │ Sig(M_code‖T‖lvl)
//!   │◀────────────────────────────────────────────│                      │
//!   │ recompute S_A from own G1; equal?           │                      │
//!   │ ShareToAns (G2 = g^pw2, bound to K) ─────────────────────────────▶│
//!   │                     │        AnsToBroker (Userlevel, G2, Sig_ANS)  │
//!   │                     │◀─────────────────────────────────────────────│
//!   │                     │ P_c = G1·G2 → Published (ID_c, P_c, T_c, level, salt, kdf)
//! ```
//!
//! States, named after the message they wait for: [`ClientAwaitingAgent`]
//! (client waits for [`AgentToClient`]), [`BrokerAwaitingAgentCreated`] and
//! [`BrokerAwaitingUserLevel`] (broker waits for [`AgentCreated`], then
//! [`AnsToBroker`]), [`AnsAwaitingShare`] (ANS waits for [`ShareToAns`]).
//! The AMS is stateless: [`Ams::create_agent`].

use std::fmt;

use ed25519_dalek::VerifyingKey;
use num_bigint::BigUint;
use num_traits::Zero;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::sso::error::SsoError;
use crate::sso::kdf::{KdfParams, SALT_LEN, derive_pw};
use crate::sso::level::Level;
use crate::sso::primitives::{
    Bytes, Ed25519Key, Lp, Scalar, SealedBox, X25519KeyPair, decode_element, ed25519_verify, fixed, group, hkdf32,
    hmac_sha256, seal_to, split_lp,
};

const LABEL_MCODE: &str = "M_code";
const LABEL_EC: &str = "E_c";

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// Pre-stage, client → broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// ID_c.
    pub id_c: String,
    /// The Argon2id salt the client drew (public; stored with P_c).
    pub salt: Bytes,
    /// Argon2id parameters used (public).
    pub kdf: KdfParams,
    /// G1 = g^pw1.
    pub g1: Bytes,
    /// The client's ephemeral X25519 public key for E_c.
    pub client_box_key: Bytes,
}

/// Stage 1 ①, broker → AMS: "M_a, ID_a, g^pw1".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// The broker's id for this registration (16 random bytes).
    pub registration_id: Bytes,
    /// ID_a: the broker's identity.
    pub id_a: String,
    /// M_a: the broker's agent-creation request, `Lp("M_a", registration
    /// id, ID_c, agent code id)`.
    pub m_a: Bytes,
    /// ID_c.
    pub id_c: String,
    /// G1 as the broker stored it.
    pub g1: Bytes,
    /// Forwarded from [`RegistrationRequest::client_box_key`].
    pub client_box_key: Bytes,
    /// The level the broker asks ANS to grant.
    pub level: Level,
}

/// M_info: what the AMS says about the agent it made (paper: creation
/// timestamp, AMS name, mobile agent ID). Serialized as JSON inside M_code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MInfo {
    /// AMS name.
    pub ams: String,
    /// Mobile agent id (16 random bytes).
    pub agent_id: Bytes,
    /// Creation time (unix s).
    pub created: i64,
    /// The registration this agent serves.
    pub registration_id: Bytes,
    /// ID_c.
    pub id_c: String,
    /// Requested level.
    pub level: Level,
}

/// Stage 1 ②, AMS → ANS: M_code = E_ANS(R_A, S_A, M_info), with M_a, ID_a
/// and T_AMS in the clear so ANS can recheck M_A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McodeToAns {
    /// Registration id.
    pub registration_id: Bytes,
    /// M_code.
    pub m_code: SealedBox,
    /// M_a.
    pub m_a: Bytes,
    /// ID_a.
    pub id_a: String,
    /// T_AMS.
    pub t_ams: i64,
}

/// AMS → broker: the M_code that Userlevel will cover (the paper's broker
/// "checks integrity with the agent's initial value"; it needs M_code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCreated {
    /// Registration id.
    pub registration_id: Bytes,
    /// M_code (opaque to the broker).
    pub m_code: SealedBox,
    /// T_AMS.
    pub t_ams: i64,
}

/// Stage 2 ①, AMS → client: M_code, E_c(r, H(M_A)), T_AMS, S_A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentToClient {
    /// Registration id.
    pub registration_id: Bytes,
    /// M_code.
    pub m_code: SealedBox,
    /// E_c(r, H(M_A)), sealed to the client's registration key.
    pub e_c: SealedBox,
    /// T_AMS.
    pub t_ams: i64,
    /// S_A = G1·(K + H(M_A))⁻¹ mod p, fixed width.
    pub s_a: Bytes,
}

/// Userlevel = Sig_ANS(M_code ‖ T_ANS ‖ level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLevel {
    /// T_ANS.
    pub t_ans: i64,
    /// The granted level.
    pub level: Level,
    /// Ed25519 over `Lp("Userlevel", M_code, T_ANS, level)`.
    pub signature: Bytes,
}

impl UserLevel {
    fn message(m_code: &SealedBox, t_ans: i64, level: Level) -> Vec<u8> {
        Lp::sso("Userlevel").part(&m_code.to_bytes()).int(t_ans).part(&[level.as_u8()]).into_bytes()
    }

    /// Verifies ANS's signature over this M_code (non-repudiation).
    pub fn verify(&self, ans_key: &VerifyingKey, m_code: &SealedBox) -> Result<(), SsoError> {
        let msg = UserLevel::message(m_code, self.t_ans, self.level);
        if ed25519_verify(ans_key, &msg, self.signature.as_slice()) { Ok(()) } else { Err(SsoError::AnsSignature) }
    }
}

/// Stage 2 ①(가), client → ANS: G2 = g^pw2, bound to this agent's K.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareToAns {
    /// Registration id.
    pub registration_id: Bytes,
    /// ID_c.
    pub id_c: String,
    /// G2 = g^pw2.
    pub g2: Bytes,
    /// HMAC(HKDF(K), Lp("ShareToAns", registration id, ID_c, G2, M_code)):
    /// only the client that opened E_c (and so knows K = g^r) can make it.
    pub binder: Bytes,
}

/// Stage 2 ②, ANS → broker: Userlevel and G2, signed by ANS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsToBroker {
    /// Registration id.
    pub registration_id: Bytes,
    /// ID_c.
    pub id_c: String,
    /// Userlevel.
    pub user_level: UserLevel,
    /// G2.
    pub g2: Bytes,
    /// Ed25519 over `Lp("AnsToBroker", registration id, ID_c, Userlevel, G2)`.
    pub signature: Bytes,
}

impl AnsToBroker {
    fn message(registration_id: &[u8], id_c: &str, ul: &UserLevel, g2: &[u8]) -> Vec<u8> {
        Lp::sso("AnsToBroker")
            .part(registration_id)
            .part(id_c.as_bytes())
            .int(ul.t_ans)
            .part(&[ul.level.as_u8()])
            .part(ul.signature.as_slice())
            .part(g2)
            .into_bytes()
    }
}

/// Stage 2 ③: what the broker publishes in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// ID_c.
    pub id_c: String,
    /// P_c = g^pw.
    pub p_c: Bytes,
    /// T_c: publication time.
    pub t_c: i64,
    /// The level ANS granted.
    pub level: Level,
    /// Argon2id salt.
    pub salt: Bytes,
    /// Argon2id parameters.
    pub kdf: KdfParams,
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// Client, after sending [`RegistrationRequest`]: waits for [`AgentToClient`].
pub struct ClientAwaitingAgent {
    id_c: String,
    g1: crate::group::Element,
    g2: crate::group::Element,
    box_key: X25519KeyPair,
}

impl fmt::Debug for ClientAwaitingAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAwaitingAgent").field("id_c", &self.id_c).finish_non_exhaustive()
    }
}

/// Pre-stage: derives pw, splits it pw = pw1 + pw2 (mod q) with pw1
/// uniform, and sends G1 = g^pw1. pw, pw1 and pw2 are wiped on return; only
/// G1 and G2 are kept.
pub fn client_start_registration<R: CryptoRng + ?Sized>(
    id_c: &str,
    password_or_hardened: &[u8],
    kdf: KdfParams,
    rng: &mut R,
) -> Result<(RegistrationRequest, ClientAwaitingAgent), SsoError> {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let pw = derive_pw(password_or_hardened, &salt, &kdf)?;
    let pw1 = Scalar::random(rng);
    let pw2 = pw.sub(&pw1);
    if pw2.is_zero() {
        return Err(SsoError::Internal("pw2 is zero"));
    }
    let g1 = pw1.public()?;
    let g2 = pw2.public()?;
    let box_key = X25519KeyPair::generate(rng)?;
    let req = RegistrationRequest {
        id_c: id_c.to_owned(),
        salt: Bytes(salt.to_vec()),
        kdf,
        g1: Bytes(g1.to_bytes()),
        client_box_key: Bytes(box_key.public().to_vec()),
    };
    Ok((req, ClientAwaitingAgent { id_c: id_c.to_owned(), g1, g2, box_key }))
}

impl ClientAwaitingAgent {
    /// Stage 2 ①(가): opens E_c, recomputes S_A' = G1 / (g^r + H(M_A)) from
    /// the client's own G1 and refuses unless S_A' = S_A; then sends G2 to ANS.
    pub fn receive_agent(self, msg: &AgentToClient) -> Result<ShareToAns, SsoError> {
        let aad = Lp::default().part(msg.registration_id.as_slice()).part(&msg.m_code.to_bytes()).into_bytes();
        let opened = self.box_key.open(LABEL_EC, &aad, &msg.e_c)?;
        let elen = group().element_len();
        let r_bytes = opened.get(..elen).ok_or(SsoError::Malformed("E_c too short"))?;
        let h_ma = fixed::<32>(opened.get(elen..).ok_or(SsoError::Malformed("E_c too short"))?, "E_c length")?;
        let r = Scalar::from_canonical(r_bytes)?;
        let mut k = r.public()?;
        let expected = compute_s_a(&self.g1, &k, &h_ma)?;
        if !bool::from(expected.ct_eq(msg.s_a.as_slice())) {
            k.zeroize();
            return Err(SsoError::SaMismatch);
        }
        let g2 = self.g2.to_bytes();
        let binder = share_binder(&k, msg.registration_id.as_slice(), &self.id_c, &g2, &msg.m_code)?;
        k.zeroize();
        Ok(ShareToAns {
            registration_id: msg.registration_id.clone(),
            id_c: self.id_c,
            g2: Bytes(g2),
            binder: Bytes(binder.to_vec()),
        })
    }
}

// ---------------------------------------------------------------------------
// Shared stage-1 math
// ---------------------------------------------------------------------------

/// H(M_A) as used in S_A: SHA-256 of `Lp("H(M_A)", M_A)`.
fn h_of_ma(m_a_cap: &[u8; 32]) -> [u8; 32] {
    Lp::sso("H(M_A)").part(m_a_cap).hash()
}

/// M_A = H(M_a ‖ ID_a) ⊕ H(M_info), each hash over a length-prefixed encoding.
pub fn compute_m_a(m_a: &[u8], id_a: &str, m_info: &[u8]) -> [u8; 32] {
    let left = Lp::sso("H(M_a||ID_a)").part(m_a).part(id_a.as_bytes()).hash();
    let right = Lp::sso("H(M_info)").part(m_info).hash();
    let mut out = [0u8; 32];
    for ((o, l), r) in out.iter_mut().zip(left.iter()).zip(right.iter()) {
        *o = l ^ r;
    }
    out
}

/// S_A = G1 · (K + H(M_A))⁻¹ mod p, fixed-width. The paper's division is a
/// modular inverse; K + H(M_A) is an integer sum, so S_A lies in Z_p^*, not
/// necessarily in the order-q subgroup — it is compared, never used as a
/// group element.
pub fn compute_s_a(
    g1: &crate::group::Element,
    k: &crate::group::Element,
    h_ma_input: &[u8; 32],
) -> Result<Vec<u8>, SsoError> {
    let p = group().p();
    let h = BigUint::from_bytes_be(&h_of_ma(h_ma_input));
    let sum = (k.value() + h) % p;
    if sum.is_zero() {
        return Err(SsoError::SaUndefined);
    }
    let inv = sum.modinv(p).ok_or(SsoError::SaUndefined)?;
    let s = (g1.value() * inv) % p;
    let raw = s.to_bytes_be();
    let mut out = vec![0u8; group().element_len().saturating_sub(raw.len())];
    out.extend_from_slice(&raw);
    Ok(out)
}

fn share_binder(
    k: &crate::group::Element,
    registration_id: &[u8],
    id_c: &str,
    g2: &[u8],
    m_code: &SealedBox,
) -> Result<[u8; 32], SsoError> {
    let key = hkdf32(k.as_bytes(), Lp::sso("share binder key").bytes())?;
    let msg = Lp::sso("ShareToAns").part(registration_id).part(id_c.as_bytes()).part(g2).part(&m_code.to_bytes());
    hmac_sha256(key.as_slice(), msg.bytes())
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

/// Broker, after forwarding [`AgentRequest`]: waits for [`AgentCreated`].
#[derive(Debug)]
pub struct BrokerAwaitingAgentCreated {
    registration_id: Vec<u8>,
    id_c: String,
    g1: crate::group::Element,
    salt: Bytes,
    kdf: KdfParams,
}

/// Broker, holding M_code: waits for [`AnsToBroker`].
#[derive(Debug)]
pub struct BrokerAwaitingUserLevel {
    inner: BrokerAwaitingAgentCreated,
    m_code: SealedBox,
}

/// Stage 1 ①: the broker validates G1, stores it with ID_c and asks the AMS
/// for a mobile agent. `agent_code_id` names the agent code to run.
pub fn broker_receive_registration<R: CryptoRng + ?Sized>(
    req: &RegistrationRequest,
    broker_id: &str,
    agent_code_id: &str,
    level: Level,
    rng: &mut R,
) -> Result<(AgentRequest, BrokerAwaitingAgentCreated), SsoError> {
    let g1 = decode_element(&req.g1)?;
    fixed::<32>(req.client_box_key.as_slice(), "client box key")?;
    if req.salt.as_slice().len() < SALT_LEN {
        return Err(SsoError::Malformed("salt too short"));
    }
    let mut registration_id = [0u8; 16];
    rng.fill_bytes(&mut registration_id);
    let m_a = Lp::sso("M_a").part(&registration_id).part(req.id_c.as_bytes()).part(agent_code_id.as_bytes());
    let out = AgentRequest {
        registration_id: Bytes(registration_id.to_vec()),
        id_a: broker_id.to_owned(),
        m_a: Bytes(m_a.into_bytes()),
        id_c: req.id_c.clone(),
        g1: req.g1.clone(),
        client_box_key: req.client_box_key.clone(),
        level,
    };
    let state = BrokerAwaitingAgentCreated {
        registration_id: registration_id.to_vec(),
        id_c: req.id_c.clone(),
        g1,
        salt: req.salt.clone(),
        kdf: req.kdf,
    };
    Ok((out, state))
}

impl BrokerAwaitingAgentCreated {
    /// Keeps the M_code that Userlevel must cover.
    pub fn receive_agent_created(self, msg: &AgentCreated) -> Result<BrokerAwaitingUserLevel, SsoError> {
        if msg.registration_id.as_slice() != self.registration_id.as_slice() {
            return Err(SsoError::WrongRegistration);
        }
        Ok(BrokerAwaitingUserLevel { inner: self, m_code: msg.m_code.clone() })
    }

    /// The registration id.
    pub fn registration_id(&self) -> &[u8] {
        &self.registration_id
    }
}

/// Everything [`BrokerAwaitingUserLevel`] holds, as plain public data, so a
/// broker that keeps no state between requests can seal it, hand it to the
/// client and take it back (none of it is secret: G1, salt, KDF parameters,
/// M_code; sealing is for integrity and binding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationState {
    /// Registration id.
    pub registration_id: Bytes,
    /// ID_c.
    pub id_c: String,
    /// G1 = g^pw1.
    pub g1: Bytes,
    /// Argon2id salt.
    pub salt: Bytes,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// M_code from the AMS.
    pub m_code: SealedBox,
}

impl BrokerAwaitingUserLevel {
    /// The state as data (see [`BrokerRegistrationState`]).
    pub fn to_state(&self) -> BrokerRegistrationState {
        let s = &self.inner;
        BrokerRegistrationState {
            registration_id: Bytes(s.registration_id.clone()),
            id_c: s.id_c.clone(),
            g1: Bytes(s.g1.to_bytes()),
            salt: s.salt.clone(),
            kdf: s.kdf,
            m_code: self.m_code.clone(),
        }
    }

    /// Rebuilds the state; G1 passes the group checks again.
    pub fn from_state(state: &BrokerRegistrationState) -> Result<BrokerAwaitingUserLevel, SsoError> {
        let g1 = decode_element(&state.g1)?;
        Ok(BrokerAwaitingUserLevel {
            inner: BrokerAwaitingAgentCreated {
                registration_id: state.registration_id.0.clone(),
                id_c: state.id_c.clone(),
                g1,
                salt: state.salt.clone(),
                kdf: state.kdf,
            },
            m_code: state.m_code.clone(),
        })
    }

    /// The registration id.
    pub fn registration_id(&self) -> &[u8] {
        &self.inner.registration_id
    }

    /// Stage 2 ③: verifies ANS's signatures (on the message and on
    /// Userlevel over *this* registration's M_code), computes
    /// P_c = G1·G2 and returns what to publish.
    pub fn receive_user_level(
        self,
        msg: &AnsToBroker,
        ans_key: &VerifyingKey,
        now: i64,
    ) -> Result<Published, SsoError> {
        let s = &self.inner;
        if msg.registration_id.as_slice() != s.registration_id.as_slice() || msg.id_c != s.id_c {
            return Err(SsoError::WrongRegistration);
        }
        let signed = AnsToBroker::message(&s.registration_id, &msg.id_c, &msg.user_level, msg.g2.as_slice());
        if !ed25519_verify(ans_key, &signed, msg.signature.as_slice()) {
            return Err(SsoError::AnsSignature);
        }
        msg.user_level.verify(ans_key, &self.m_code)?;
        let g2 = decode_element(&msg.g2)?;
        let p_c = group().mul(&s.g1, &g2).map_err(|_| SsoError::IdentityPublicKey)?;
        Ok(Published {
            id_c: s.id_c.clone(),
            p_c: Bytes(p_c.to_bytes()),
            t_c: now,
            level: msg.user_level.level,
            salt: s.salt.clone(),
            kdf: s.kdf,
        })
    }
}

// ---------------------------------------------------------------------------
// AMS
// ---------------------------------------------------------------------------

/// The Agent Management System: makes mobile agents.
#[derive(Debug, Clone)]
pub struct Ams {
    /// AMS name (goes into M_info).
    pub id: String,
    /// ANS's X25519 public key (E_ANS).
    pub ans_box_key: [u8; 32],
}

/// The three messages the AMS sends for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCreation {
    /// To ANS.
    pub to_ans: McodeToAns,
    /// To the client.
    pub to_client: AgentToClient,
    /// To the broker.
    pub to_broker: AgentCreated,
}

impl Ams {
    /// Stage 1 ②: M_A, K = g^r, S_A, R_A = K ‖ M_A, M_code = E_ANS(R_A, S_A,
    /// M_info), and stage 2 ①'s E_c(r, H(M_A)). r is wiped on return.
    pub fn create_agent<R: CryptoRng + ?Sized>(
        &self,
        req: &AgentRequest,
        now: i64,
        rng: &mut R,
    ) -> Result<AgentCreation, SsoError> {
        let g1 = decode_element(&req.g1)?;
        let client_key = fixed::<32>(req.client_box_key.as_slice(), "client box key")?;
        let mut agent_id = [0u8; 16];
        rng.fill_bytes(&mut agent_id);
        let info = MInfo {
            ams: self.id.clone(),
            agent_id: Bytes(agent_id.to_vec()),
            created: now,
            registration_id: req.registration_id.clone(),
            id_c: req.id_c.clone(),
            level: req.level,
        };
        let m_info = serde_json::to_vec(&info).map_err(|_| SsoError::Internal("M_info JSON"))?;
        let m_a_cap = compute_m_a(req.m_a.as_slice(), &req.id_a, &m_info);
        let r = Scalar::random(rng);
        let mut k = r.public()?;
        let s_a = compute_s_a(&g1, &k, &m_a_cap)?;
        let plaintext = Lp::default().part(k.as_bytes()).part(&m_a_cap).part(&s_a).part(&m_info);
        k.zeroize();
        let m_code = seal_to(&self.ans_box_key, LABEL_MCODE, req.registration_id.as_slice(), plaintext.bytes(), rng)?;
        let mut ec_plain = r.to_fixed_bytes();
        ec_plain.extend_from_slice(&m_a_cap);
        let ec_aad = Lp::default().part(req.registration_id.as_slice()).part(&m_code.to_bytes()).into_bytes();
        let e_c = seal_to(&client_key, LABEL_EC, &ec_aad, &ec_plain, rng)?;
        Ok(AgentCreation {
            to_ans: McodeToAns {
                registration_id: req.registration_id.clone(),
                m_code: m_code.clone(),
                m_a: req.m_a.clone(),
                id_a: req.id_a.clone(),
                t_ams: now,
            },
            to_client: AgentToClient {
                registration_id: req.registration_id.clone(),
                m_code: m_code.clone(),
                e_c,
                t_ams: now,
                s_a: Bytes(s_a),
            },
            to_broker: AgentCreated { registration_id: req.registration_id.clone(), m_code, t_ams: now },
        })
    }
}

// ---------------------------------------------------------------------------
// ANS
// ---------------------------------------------------------------------------

/// The Agent Name Server: its X25519 key (E_ANS) and Ed25519 key (Sig_ANS).
#[derive(Debug)]
pub struct Ans {
    /// Opens M_code.
    pub box_key: X25519KeyPair,
    /// Signs Userlevel and its messages to the broker.
    pub signing_key: Ed25519Key,
}

/// ANS, after opening M_code and signing Userlevel: waits for [`ShareToAns`].
pub struct AnsAwaitingShare {
    registration_id: Vec<u8>,
    id_c: String,
    k: crate::group::Element,
    m_code: SealedBox,
    user_level: UserLevel,
}

impl fmt::Debug for AnsAwaitingShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnsAwaitingShare").field("id_c", &self.id_c).finish_non_exhaustive()
    }
}

impl Drop for AnsAwaitingShare {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl Ans {
    /// Stage 1 ③: opens M_code, rechecks M_A against M_a, ID_a and M_info,
    /// keeps K and signs Userlevel with the `level` its policy grants.
    pub fn receive_mcode(&self, msg: &McodeToAns, level: Level, now: i64) -> Result<AnsAwaitingShare, SsoError> {
        let plain = self.box_key.open(LABEL_MCODE, msg.registration_id.as_slice(), &msg.m_code)?;
        let parts = split_lp(&plain)?;
        let [k_bytes, m_a_cap, _s_a, m_info] = parts.as_slice() else {
            return Err(SsoError::Malformed("R_A, S_A, M_info"));
        };
        let k = group().decode(k_bytes)?;
        let expected = compute_m_a(msg.m_a.as_slice(), &msg.id_a, m_info);
        if !bool::from(expected.as_slice().ct_eq(m_a_cap)) {
            return Err(SsoError::MaMismatch);
        }
        let info: MInfo = serde_json::from_slice(m_info).map_err(|_| SsoError::Malformed("M_info"))?;
        if info.registration_id != msg.registration_id {
            return Err(SsoError::WrongRegistration);
        }
        let sig = self.signing_key.sign(&UserLevel::message(&msg.m_code, now, level));
        Ok(AnsAwaitingShare {
            registration_id: msg.registration_id.0.clone(),
            id_c: info.id_c,
            k,
            m_code: msg.m_code.clone(),
            user_level: UserLevel { t_ans: now, level, signature: Bytes(sig.to_vec()) },
        })
    }
}

impl AnsAwaitingShare {
    /// Stage 2 ②: checks the client's share is bound to this agent's K and
    /// sends Userlevel with G2 to the broker, signed. A share that fails the
    /// check leaves the state as it was, so a wrong share sent by anyone who
    /// knows the registration id does not cancel the registration.
    pub fn receive_share(&self, ans: &Ans, share: &ShareToAns) -> Result<AnsToBroker, SsoError> {
        if share.registration_id.as_slice() != self.registration_id.as_slice() || share.id_c != self.id_c {
            return Err(SsoError::WrongRegistration);
        }
        decode_element(&share.g2)?;
        let expected = share_binder(&self.k, &self.registration_id, &self.id_c, share.g2.as_slice(), &self.m_code)?;
        if !bool::from(expected.as_slice().ct_eq(share.binder.as_slice())) {
            return Err(SsoError::ShareNotBound);
        }
        let msg = AnsToBroker::message(&self.registration_id, &self.id_c, &self.user_level, share.g2.as_slice());
        let signature = ans.signing_key.sign(&msg);
        Ok(AnsToBroker {
            registration_id: Bytes(self.registration_id.clone()),
            id_c: self.id_c.clone(),
            user_level: self.user_level.clone(),
            g2: share.g2.clone(),
            signature: Bytes(signature.to_vec()),
        })
    }

    /// The signed Userlevel.
    pub fn user_level(&self) -> &UserLevel {
        &self.user_level
    }

    /// ID_c, as M_info named it (ANS bounds the registrations it keeps per user).
    pub fn id_c(&self) -> &str {
        &self.id_c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn broker_state_survives_serde_and_is_checked_again() {
        let mut rng = crate::edge::rng();
        let ans =
            Ans { box_key: X25519KeyPair::generate(&mut rng).unwrap(), signing_key: Ed25519Key::generate(&mut rng) };
        let (req, client) = client_start_registration("alice", b"pw", KdfParams::INSECURE_TEST, &mut rng).unwrap();
        let (agent_req, broker) = broker_receive_registration(&req, "broker", "code", Level::Normal, &mut rng).unwrap();
        let ams = Ams { id: "ams".into(), ans_box_key: ans.box_key.public() };
        let made = ams.create_agent(&agent_req, 100, &mut rng).unwrap();
        let broker = broker.receive_agent_created(&made.to_broker).unwrap();
        let json = serde_json::to_string(&broker.to_state()).unwrap();
        let state: BrokerRegistrationState = serde_json::from_str(&json).unwrap();
        let restored = BrokerAwaitingUserLevel::from_state(&state).unwrap();
        assert_eq!(restored.registration_id(), broker.registration_id());
        let waiting = ans.receive_mcode(&made.to_ans, Level::Normal, 101).unwrap();
        let share = client.receive_agent(&made.to_client).unwrap();
        let to_broker = waiting.receive_share(&ans, &share).unwrap();
        let published = restored.receive_user_level(&to_broker, &ans.signing_key.verifying_key(), 102).unwrap();
        let expected = broker.receive_user_level(&to_broker, &ans.signing_key.verifying_key(), 102).unwrap();
        assert_eq!(published, expected);
        let mut bad = state.clone();
        bad.g1 = Bytes(vec![1]);
        assert!(BrokerAwaitingUserLevel::from_state(&bad).is_err());
    }

    #[test]
    fn split_lp_roundtrip() {
        let e = Lp::default().part(b"a").part(b"").part(b"xyz").into_bytes();
        assert_eq!(split_lp(&e).unwrap(), vec![&b"a"[..], &b""[..], &b"xyz"[..]]);
        assert!(split_lp(&[0, 0, 0, 5, 1]).is_err());
    }
}
