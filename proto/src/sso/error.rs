//! Errors, split by who is at fault ([`crate::fault::Fault`]: bytes that do
//! not parse, a peer that misbehaved, the person, our own bug).

pub use crate::fault::Fault;
use crate::group::GroupError;

/// Everything that can go wrong in the SSO protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    // ---- malformed ----
    /// A field does not parse (wrong length, bad base64, bad JSON…).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A group value failed the range / subgroup checks.
    #[error("invalid group element: {0}")]
    BadElement(GroupError),
    /// A level outside 1–4.
    #[error("user level must be 1 to 4")]
    BadLevel,

    // ---- peer misbehaved: registration ----
    /// A message belongs to another registration.
    #[error("message is for another registration")]
    WrongRegistration,
    /// A sealed box (M_code, E_c) did not open: wrong recipient or tampered.
    #[error("sealed message does not open")]
    SealedBoxOpen,
    /// The AMS's S_A differs from the one the client recomputes from its own
    /// G1: the AMS lied, or the broker swapped G1.
    #[error("S_A from the AMS does not match the client's G1")]
    SaMismatch,
    /// M_A inside M_code does not match H(M_a ‖ ID_a) ⊕ H(M_info).
    #[error("M_A does not match M_a, ID_a and M_info")]
    MaMismatch,
    /// K + H(M_A) ≡ 0 (mod p): S_A undefined.
    #[error("K + H(M_A) is zero modulo p")]
    SaUndefined,
    /// The client's share is not bound to this agent's K (not from the
    /// client that received r).
    #[error("share to ANS is not bound to this agent")]
    ShareNotBound,
    /// ANS's signature (on Userlevel or on its message to the broker) fails.
    #[error("ANS signature does not verify")]
    AnsSignature,
    /// G1·G2 is the identity.
    #[error("P_c = G1·G2 is the identity")]
    IdentityPublicKey,

    // ---- peer misbehaved: pre-authentication ----
    /// The Schnorr proof of knowledge of pw fails (wrong password).
    #[error("password proof does not verify")]
    ProofInvalid,
    /// A timestamp outside the allowed skew.
    #[error("timestamp off by {0} s, more than the allowed skew")]
    Skew(i64),
    /// A proof or authenticator seen before.
    #[error("replayed message")]
    Replay,

    // ---- peer misbehaved: tickets ----
    /// The JWT header names an algorithm other than EdDSA (RFC 8725 §3.1).
    #[error("JWT algorithm {0:?} not allowed")]
    AlgorithmNotAllowed(String),
    /// The JWT `kid` is missing or not in the JWKS.
    #[error("JWT key id unknown")]
    UnknownKeyId,
    /// The JWS signature does not verify.
    #[error("JWT signature does not verify")]
    BadSignature,
    /// `iss` is not the broker we trust.
    #[error("ticket issuer not trusted")]
    WrongIssuer,
    /// `aud` is not this service.
    #[error("ticket audience is not this service")]
    WrongAudience,
    /// `sub` is not the expected client.
    #[error("ticket subject is not this client")]
    WrongSubject,
    /// A client ticket where a server ticket was expected, or vice versa.
    #[error("wrong kind of ticket")]
    WrongTicketKind,
    /// now > exp + skew.
    #[error("ticket expired")]
    Expired,
    /// now < nbf − skew.
    #[error("ticket not yet valid")]
    NotYetValid,
    /// The sealed session key (client part or `cnf`) does not open: not our
    /// key, or α / V / the ticket were tampered with.
    #[error("sealed session key does not open")]
    SessionKeyOpen,
    /// A TGT's sealed login key does not open under this broker's K_tgt:
    /// not issued by this broker (keyring), or a claim was altered.
    #[error("ticket-granting ticket was not issued by this broker or was altered")]
    TgtInvalid,
    /// The authenticator (V_ck) does not open under C_ck.
    #[error("authenticator does not open")]
    AuthenticatorOpen,
    /// Authenticator client ≠ ticket sub, or ticket jti mismatch
    /// (KRB_AP_ERR_BADMATCH).
    #[error("authenticator does not match the ticket")]
    AuthenticatorMismatch,
    /// The mutual-authentication reply does not open or echoes the wrong
    /// ctime / nonce.
    #[error("service reply does not authenticate the service")]
    ReplyInvalid,

    // ---- user ----
    /// The user's level is below what the operation needs.
    #[error("level {have} is below the required level {need}")]
    InsufficientLevel {
        /// The ticket's level.
        have: u8,
        /// The level the operation needs.
        need: u8,
    },
    /// A password / KDF input the KDF refuses (e.g. salt too short).
    #[error("password derivation failed: {0}")]
    Kdf(&'static str),

    // ---- local ----
    /// A local primitive failed or a bug (e.g. arithmetic in the wrong group).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl SsoError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        use SsoError as E;
        match self {
            E::Malformed(_) | E::BadElement(_) | E::BadLevel => Fault::Malformed,
            E::InsufficientLevel { .. } | E::Kdf(_) => Fault::User,
            E::Internal(_) => Fault::Bug,
            _ => Fault::PeerMisbehaved,
        }
    }
}

impl From<crate::replay::Replayed> for SsoError {
    fn from(_: crate::replay::Replayed) -> Self {
        SsoError::Replay
    }
}

impl From<GroupError> for SsoError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::WrongGroup | GroupError::ZeroExponent | GroupError::Identity | GroupError::NotSafePrime => {
                SsoError::Internal("group arithmetic")
            }
            other => SsoError::BadElement(other),
        }
    }
}
