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
#[derive(Debug)]
pub struct MigAuthRequest {
    pub uid: String,
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

#[derive(Debug, Serialize, Deserialize)]
pub struct AuthRequestBody {
    pub uid: String,
    pub otp: String,
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

#[derive(Debug, Serialize, Deserialize)]
pub struct AuthReplyBody {
    pub uid: String,
    pub nonce1: [u8; 16],
    /// The DC's fresh nonce: with nonce1 it keys the rest of the session.
    pub nonce_dc: [u8; 16],
}

/// What the user asks for: the paper's `Mig_Rqst`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRqst {
    /// The VM image's name on the source physical server.
    pub vm: String,
    pub source_server: String,
    pub dest_server: String,
}

/// `Mig_Request_Admin = E_K1(Mig_Rqst ‖ Dest_DID ‖ UID)`, admin → source DC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestAdmin {
    /// [`MigRequestAdminBody`] on the session's K1 channel.
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestAdminBody {
    pub mig_rqst: MigRqst,
    pub dest_did: String,
    pub uid: String,
}

/// `Mig_Request_DC = E_PbDest(Mig_Rqst ‖ Src_DID ‖ Dest_DID ‖ UID) ‖ Cert_Src`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestDc {
    pub sealed: PbCiphertext,
    /// DER certificate of the source DC.
    pub cert_src: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigRequestDcBody {
    pub mig_rqst: MigRqst,
    pub src_did: String,
    pub dest_did: String,
    pub uid: String,
    /// Fresh per migration; names the transfer and is signed in the response.
    pub migration_id: [u8; 16],
    pub timestamp: i64,
}

/// The destination's answer inside the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ack {
    Accepted,
    Refused(String),
}

/// `Mig_Response_DC = E_PbSrc(Sig_PrDest(Dest_DID ‖ Ack)) ‖ Cert_Dest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigResponseDc {
    pub sealed: PbCiphertext,
    /// DER certificate of the destination DC.
    pub cert_dest: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigResponseDcBody {
    pub dest_did: String,
    pub ack: Ack,
    pub migration_id: [u8; 16],
    /// ECDSA over [`super::request::response_signed_bytes`].
    pub signature: Vec<u8>,
}

// ---- Operation module ----------------------------------------------------

/// One SPEKE public value `g^x` with its sender's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpekeValue {
    pub id: String,
    pub value: Vec<u8>,
}

/// SPEKE key confirmation (ISO/IEC 11770-4:2017; mandatory here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpekeConfirm {
    pub tag: [u8; 32],
}

/// `DC_PS_Auth_Request = E_TOTP(DID ‖ PID ‖ nonce2)`, DC → its physical server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcPsAuthRequest {
    pub did: String,
    pub pid: String,
    /// The TOTP time step whose HMAC keys this session (clear: the server
    /// must know which step to derive from; it accepts each step once).
    pub step: u64,
    /// [`DcPsAuthRequestBody`] sealed under the step's DC→PS request key.
    pub sealed: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DcPsAuthRequestBody {
    pub did: String,
    pub pid: String,
    pub nonce2: [u8; 16],
}

/// `DC_PS_Auth_Response = E_TOTP(DID ‖ nonce2)`, physical server → DC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcPsAuthResponse {
    /// The server's fresh nonce (clear; bound into every later key).
    pub nonce_ps: [u8; 16],
    /// [`DcPsAuthResponseBody`] sealed under the PS→DC response key.
    pub sealed: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DcPsAuthResponseBody {
    pub did: String,
    pub nonce2: [u8; 16],
}

/// `E_TOTP(SK)`: the session key and the job, DC → physical server, on the
/// DC↔PS channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkDelivery {
    pub sealed: Vec<u8>,
}

/// What a physical server is to do with the session key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Job {
    /// Stream image `vm` to the destination server at `to`.
    Send { vm: String, to: String },
    /// Accept image `vm` on a fresh data port and commit it.
    Receive { vm: String },
}

#[derive(Serialize, Deserialize)]
pub struct SkDeliveryBody {
    pub sk: [u8; 32],
    pub migration_id: [u8; 16],
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
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsReadyBody {
    pub data_addr: Option<String>,
}

/// Physical server → DC when the transfer ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReport {
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReportBody {
    pub outcome: Result<Transferred, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// Destination DC → source DC, on the SK channel: where to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestReady {
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestReadyBody {
    pub data_addr: String,
}

/// Destination DC → source DC: the image is committed (or why not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCommitted {
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCommittedBody {
    pub outcome: Result<Transferred, String>,
}

/// Source DC → admin, on the K1 channel: the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationDone {
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationDoneBody {
    pub migration_id: [u8; 16],
    pub outcome: Result<Transferred, String>,
}
