//! Every message of the VM-migration paper (seed 001, §4) as a named struct.
//!
//! Request module (§4.1): [`MigAuthRequest`], [`AuthRequest`], [`AuthReply`],
//! [`MigRequestAdmin`], [`MigRequestDc`], [`MigResponseDc`].
//! Operation module (§4.2): [`SpekeValue`] and [`SpekeConfirm`] (SPEKE with
//! key confirmation), [`DcPsAuthRequest`], [`DcPsAuthResponse`],
//! [`SkDelivery`] (`E_TOTP(SK)`), then `VM_Data_Tran`, which is not a frame
//! but the chunked stream of `crate::stream`.
//! Messages the paper leaves implicit (who tells the physical servers where
//! to send, how the outcome travels back) are named too: [`PsReady`],
//! [`DestReady`], [`TransferReport`], [`MigrationCommitted`], [`MigrationDone`].
//!
//! A struct holds what travels; a `…Body` struct is the plaintext inside its
//! seal. Bodies are postcard-encoded before sealing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::crypto::PbCiphertext;
use super::wire::{Message, WireError};

macro_rules! messages {
    ($($ty:ident = $kind:literal, $name:literal;)*) => {
        $(impl Message for $ty {
            const KIND: u8 = $kind;
            const NAME: &'static str = $name;
        })*
        /// The paper's name of a message kind, for errors.
        pub fn kind_name(kind: u8) -> Option<&'static str> {
            match kind {
                $($kind => Some($name),)*
                _ => None,
            }
        }
    };
}

messages! {
    AuthRequest = 0x02, "Auth_Request";
    AuthReply = 0x03, "Auth_Reply";
    MigRequestAdmin = 0x04, "Mig_Request_Admin";
    MigRequestDc = 0x05, "Mig_Request_DC";
    MigResponseDc = 0x06, "Mig_Response_DC";
    SpekeValue = 0x10, "SPEKE value";
    SpekeConfirm = 0x11, "SPEKE key confirmation";
    DestReady = 0x12, "Dest_Ready";
    MigrationCommitted = 0x13, "Migration_Committed";
    DcPsAuthRequest = 0x20, "DC_PS_Auth_Request";
    DcPsAuthResponse = 0x21, "DC_PS_Auth_Response";
    SkDelivery = 0x22, "E_TOTP(SK)";
    PsReady = 0x23, "PS_Ready";
    TransferReport = 0x24, "Transfer_Report";
    MigrationDone = 0x30, "Migration_Done";
}

/// Encodes a body for sealing.
pub fn body_bytes<T: Serialize>(body: &T, what: &'static str) -> Result<Zeroizing<Vec<u8>>, WireError> {
    postcard::to_stdvec(body).map(Zeroizing::new).map_err(|e| WireError::Encode { what, reason: e.to_string() })
}

/// Decodes an opened body; trailing bytes are refused.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, WireError> {
    let (v, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| WireError::Malformed { what, reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(WireError::Malformed { what, reason: format!("{} trailing bytes", rest.len()) });
    }
    Ok(v)
}

// ---- Request module ------------------------------------------------------

/// `Mig_Auth_Request = UID ‖ E_OTP(UID)`, user → admin. The user types at
/// the admin console, so this one never crosses a network: it is the pair
/// the console reads. The OTP is not a key (20 bits); the source DC verifies
/// and consumes it through the broker.
pub struct MigAuthRequest {
    /// `UID`: the user who asks for the migration.
    pub uid: String,
    /// The OTP the user typed; wiped on drop.
    pub otp: Zeroizing<String>,
}

/// `Auth_Request = E_OTP(UID) ‖ E_K1(nonce1)`, admin → source DC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Which pre-shared K1 (clear, bound as associated data).
    pub psk_id: String,
    /// The admin console's identity (clear, bound as associated data).
    pub admin: String,
    /// [`AuthRequestBody`] sealed under K1's admin→DC key.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`AuthRequest`].
#[derive(Serialize, Deserialize)]
pub struct AuthRequestBody {
    /// `UID`: the user whose OTP this is.
    pub uid: String,
    /// The user's OTP, for the DC to hand to the broker (never a key).
    pub otp: String,
    /// `nonce1`: fresh per request; the DC's replay cache holds it and `Auth_Reply` returns it.
    pub nonce1: [u8; 16],
    /// Unix seconds; the DC refuses requests outside its replay window.
    pub timestamp: i64,
}

/// `Auth_Reply = E_K1(UID ‖ nonce1)`, source DC → admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthReply {
    /// [`AuthReplyBody`] sealed under K1's DC→admin key.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`AuthReply`].
#[derive(Debug, Serialize, Deserialize)]
pub struct AuthReplyBody {
    /// `UID` of the `Auth_Request` answered.
    pub uid: String,
    /// `nonce1` of the `Auth_Request` answered.
    pub nonce1: [u8; 16],
    /// The DC's fresh nonce: with nonce1 it keys the rest of the session.
    pub nonce_dc: [u8; 16],
}

/// What the user asks for: the paper's `Mig_Rqst`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRqst {
    /// The VM image's name on the source physical server.
    pub vm: String,
    /// PID of the physical server, in the source DC, that holds the image.
    pub source_server: String,
    /// PID of the physical server, in the destination DC, that is to receive it.
    pub dest_server: String,
}

/// `Mig_Request_Admin = E_K1(Mig_Rqst ‖ Dest_DID ‖ UID)`, admin → source DC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestAdmin {
    /// [`MigRequestAdminBody`] on the session's K1 channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`MigRequestAdmin`]: the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestAdminBody {
    /// `Mig_Rqst`: what to migrate, from which server to which.
    pub mig_rqst: MigRqst,
    /// `Dest_DID`: the destination data center, never the source itself.
    pub dest_did: String,
    /// `UID`: must be the user who just authenticated in this session.
    pub uid: String,
}

/// `Mig_Request_DC = E_PbDest(Mig_Rqst ‖ Src_DID ‖ Dest_DID ‖ UID) ‖ Cert_Src`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestDc {
    /// [`MigRequestDcBody`] under `E_Pb` to the destination's certified key (label `Mig_Request_DC`).
    pub sealed: PbCiphertext,
    /// DER certificate of the source DC.
    pub cert_src: Vec<u8>,
}

/// The plaintext of [`MigRequestDc`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestDcBody {
    /// `Mig_Rqst`, as the admin ordered it.
    pub mig_rqst: MigRqst,
    /// `Src_DID`: must be the CN of `Cert_Src`.
    pub src_did: String,
    /// `Dest_DID`: must be the data center that receives the request.
    pub dest_did: String,
    /// `UID`: the user who authenticated at the source (the destination logs it).
    pub uid: String,
    /// Fresh per migration; names the transfer and is signed in the response.
    pub migration_id: [u8; 16],
    /// Unix seconds; the destination refuses requests outside its replay window.
    pub timestamp: i64,
    /// The broker's signed statement that `uid` authorised this migration from `src_did`
    /// (not in the paper; audit F11). The destination refuses a request without one.
    pub authorisation: Option<super::authorisation::UserAuthorisation>,
}

/// The destination's answer inside the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ack {
    /// The destination takes the migration.
    Accepted,
    /// The destination refuses it, with its reason (no such server of its own, no SPEKE password shared).
    Refused(String),
}

/// `Mig_Response_DC = E_PbSrc(Sig_PrDest(Dest_DID ‖ Ack)) ‖ Cert_Dest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigResponseDc {
    /// [`MigResponseDcBody`] under `E_Pb` to the source's certified key (label `Mig_Response_DC`).
    pub sealed: PbCiphertext,
    /// DER certificate of the destination DC.
    pub cert_dest: Vec<u8>,
}

/// The plaintext of [`MigResponseDc`]: `Sig_PrDest(Dest_DID ‖ Ack)` with what it signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigResponseDcBody {
    /// `Dest_DID`: the signer.
    pub dest_did: String,
    /// `Ack`: the destination's answer.
    pub ack: Ack,
    /// The migration id of the request answered.
    pub migration_id: [u8; 16],
    /// ECDSA over [`super::request::response_signed_bytes`].
    pub signature: Vec<u8>,
}

// ---- Operation module ----------------------------------------------------

/// One SPEKE public value `g^x` with its sender's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpekeValue {
    /// The sender's DID; must be the peer the data center expects.
    pub id: String,
    /// `g^x` (or `g^y`), fixed-width big-endian; range- and subgroup-checked on receipt.
    pub value: Vec<u8>,
}

/// SPEKE key confirmation (ISO/IEC 11770-4:2017; mandatory here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpekeConfirm {
    /// The sender's directional HMAC tag (`T_Src` or `T_Dest`), compared in constant time.
    pub tag: [u8; 32],
}

/// `DC_PS_Auth_Request = E_TOTP(DID ‖ PID ‖ nonce2)`, DC → its physical server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcPsAuthRequest {
    /// `DID`: the data center (clear, bound as associated data).
    pub did: String,
    /// `PID`: the physical server addressed (clear, bound as associated data).
    pub pid: String,
    /// The TOTP time step whose HMAC keys this session (clear: the server
    /// must know which step to derive from; it accepts each step once).
    pub step: u64,
    /// [`DcPsAuthRequestBody`] sealed under the step's DC→PS request key.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`DcPsAuthRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub struct DcPsAuthRequestBody {
    /// `DID` under the seal; must equal the clear one.
    pub did: String,
    /// `PID` under the seal; must equal the clear one.
    pub pid: String,
    /// `nonce2`: the DC's fresh nonce; the response returns it and every later key binds it.
    pub nonce2: [u8; 16],
    /// The DC's ephemeral X25519 public key for this session (not in the paper: forward
    /// secrecy for SK, audit F3); authenticated by this seal, bound into every later key.
    pub dc_ephemeral: [u8; 32],
}

/// `DC_PS_Auth_Response = E_TOTP(DID ‖ nonce2)`, physical server → DC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcPsAuthResponse {
    /// The server's fresh nonce (clear; bound into every later key).
    pub nonce_ps: [u8; 16],
    /// The server's ephemeral X25519 public key (clear; the seal's associated data binds it with
    /// the DC's, and the X25519 secret of the two keys every later key).
    pub ps_ephemeral: [u8; 32],
    /// [`DcPsAuthResponseBody`] sealed under the PS→DC response key.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`DcPsAuthResponse`].
#[derive(Debug, Serialize, Deserialize)]
pub struct DcPsAuthResponseBody {
    /// `DID`: the data center the server answers.
    pub did: String,
    /// `nonce2` of the request answered.
    pub nonce2: [u8; 16],
}

/// `E_TOTP(SK)`: the session key and the job, DC → physical server, on the
/// DC↔PS channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkDelivery {
    /// [`SkDeliveryBody`] on the DC↔PS channel.
    pub sealed: Vec<u8>,
}

/// What a physical server is to do with the session key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Job {
    /// Stream image `vm` to the destination server at `to`.
    Send {
        /// The image's file name in the server's images directory.
        vm: String,
        /// The destination server's data address (`host:port`), from `Dest_Ready`.
        to: String,
    },
    /// Accept image `vm` on a fresh data port and commit it.
    Receive {
        /// The file name to commit the image under; it must not exist yet.
        vm: String,
    },
}

/// The plaintext of [`SkDelivery`]; `sk` is wiped on drop.
#[derive(Serialize, Deserialize)]
pub struct SkDeliveryBody {
    /// `SK`: the migration's session key from SPEKE, from which the stream key derives.
    pub sk: [u8; 32],
    /// The migration id, which is also the transfer id of `VM_Data_Tran`.
    pub migration_id: [u8; 16],
    /// What the server is to do with SK.
    pub job: Job,
}

impl Drop for SkDeliveryBody {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.sk);
    }
}

impl std::fmt::Debug for SkDeliveryBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkDeliveryBody").field("job", &self.job).finish_non_exhaustive()
    }
}

/// Physical server → DC: ready for the job (a receiver names its data port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsReady {
    /// [`PsReadyBody`] on the DC↔PS channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`PsReady`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsReadyBody {
    /// The receiving server's fresh data port (`host:port`); `None` from the sending server.
    pub data_addr: Option<String>,
}

/// Physical server → DC when the transfer ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReport {
    /// [`TransferReportBody`] on the DC↔PS channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`TransferReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReportBody {
    /// What the server sent or committed, or why the transfer failed (text a peer may see).
    pub outcome: Result<Transferred, String>,
}

/// An image as moved: what both data centers compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    /// The image's length in bytes.
    pub bytes: u64,
    /// BLAKE3 of the image (`Hash(VM_Data)` of the stream's final record; what `b3sum` prints).
    pub blake3: [u8; 32],
}

/// Destination DC → source DC, on the DC↔DC channel (from κ_s, not SK): where to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestReady {
    /// [`DestReadyBody`] on the DC↔DC channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`DestReady`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestReadyBody {
    /// The destination server's data port (`host:port`), for `Job::Send { to }`.
    pub data_addr: String,
}

/// Destination DC → source DC: the image is committed (or why not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCommitted {
    /// [`MigrationCommittedBody`] on the DC↔DC channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`MigrationCommitted`]; encoded as [`TransferReportBody`] is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCommittedBody {
    /// What the destination server committed, or why it did not (text a peer may see).
    pub outcome: Result<Transferred, String>,
}

/// Source DC → admin, on the K1 channel: the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationDone {
    /// [`MigrationDoneBody`] on the K1 session channel.
    pub sealed: Vec<u8>,
}

/// The plaintext of [`MigrationDone`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationDoneBody {
    /// The migration id; all zeros when the migration failed before the request drew one.
    pub migration_id: [u8; 16],
    /// The image as committed, or why the migration failed (text the admin may see).
    pub outcome: Result<Transferred, String>,
}

// The OTP never reaches a log through Debug.
impl std::fmt::Debug for MigAuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigAuthRequest").field("uid", &self.uid).field("otp", &"<redacted>").finish()
    }
}

impl std::fmt::Debug for AuthRequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequestBody").field("uid", &self.uid).field("otp", &"<redacted>").finish_non_exhaustive()
    }
}
