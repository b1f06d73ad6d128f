//! OTP-based dynamic authentication for VM migration (seeds 000/001), sans
//! I/O: the messages and the protocol states of the actors (the admin
//! console, the data centers, the physical servers), which run as processes
//! in `dirbroker-agents` (the SPEKE exchange between the data centers over
//! a socket is its `migration::speke_session`).
//!
//! - [`messages`]: every message of the paper as a named struct;
//! - [`request`]: the request module (OTP-gated request, DC↔DC request with
//!   certificates and a signed acknowledgement), one type per waiting state;
//! - [`operation`]: the DC↔PS TOTP mutual authentication and `E_TOTP(SK)`;
//! - [`wire`]: the frame format, the messages' kind bytes and wire errors;
//! - [`crypto`]: the sound constructions behind the paper's `E_…` and `Sig_…`.
//!
//! docs/protocols/migration.md maps each paper message to this code and
//! lists every deviation from the paper with its reason.

pub mod crypto;
pub mod messages;
pub mod operation;
pub mod request;
pub mod wire;

use zeroize::Zeroizing;

use crate::fault::Fault;
use crate::speke::SpekeError;
pub use crypto::CryptoError;
use wire::WireError;

/// Any failure of a migration step, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A frame that did not arrive, parse or come in order, or the peer's `Refusal`.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A seal, signature or certificate that failed, or our own credentials.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// SPEKE between the data centers failed: a bad or reflected value, or a tag that does not verify.
    #[error("SPEKE: {0}")]
    Speke(#[from] SpekeError),
    /// A message seen before, or outside its time window.
    #[error("replayed {what} refused: {detail}")]
    Replay {
        /// The paper's name of the message.
        what: &'static str,
        /// Why it counts as a replay: the timestamp, the nonce or the time step.
        detail: String,
    },
    /// Well-formed and authentic, but not what this session expects.
    #[error("{what} refused: {detail}")]
    Mismatch {
        /// The message (or the check) refused.
        what: &'static str,
        /// What differs from what this session expects.
        detail: String,
    },
    /// The broker refused the user's OTP (`POST /v1/otp/verify`), with its reason.
    #[error("the user's OTP was refused: {0}")]
    OtpRefused(String),
    /// A name this side holds nothing for: a pre-shared key id, a physical server.
    #[error("unknown {what} {name:?}")]
    Unknown {
        /// What kind of name.
        what: &'static str,
        /// The name as asked for.
        name: String,
    },
    /// A refusal whose reason the person or the peer may read: the destination's signed
    /// `Ack::Refused`, an image that exists already, a disabled data center, a failed `Migration_Done`.
    #[error("{0}")]
    Refused(String),
    /// `VM_Data_Tran` failed, or the destination committed other bytes than were sent;
    /// the text is what the physical server or the destination reported.
    #[error("transfer: {0}")]
    Transfer(String),
    /// Our own configuration or environment.
    #[error("{0}")]
    Local(String),
}

impl MigrationError {
    /// Who is at fault; decides what is logged as a security event and what
    /// text a peer may see ([`Fault::for_peer`]).
    pub fn fault(&self) -> Fault {
        match self {
            MigrationError::Wire(w) => w.fault(),
            MigrationError::Crypto(c) => c.fault(),
            MigrationError::Speke(s) => s.fault(),
            MigrationError::Replay { .. } | MigrationError::Mismatch { .. } => Fault::PeerMisbehaved,
            // Refusals with a reason for the person or the other side to read;
            // a transfer failure carries what the far side reported.
            MigrationError::OtpRefused(_)
            | MigrationError::Unknown { .. }
            | MigrationError::Refused(_)
            | MigrationError::Transfer(_) => Fault::User,
            MigrationError::Local(_) => Fault::Local,
        }
    }

    /// The text a peer may see for this error.
    pub fn for_peer(&self) -> String {
        self.fault().for_peer(self)
    }
}

/// The result of SPEKE between the two data centers.
pub struct DcSession {
    /// The migration's SK, handed to both physical servers.
    pub sk: Zeroizing<[u8; 32]>,
    /// Source↔destination channel for the rest of the migration.
    pub channel: crypto::Channel,
}

impl std::fmt::Debug for DcSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcSession").finish_non_exhaustive()
    }
}
