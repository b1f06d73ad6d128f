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
//! - [`crypto`]: the sound constructions behind the paper's `E_…` and `Sig_…`;
//! - [`authorisation`]: the broker's signed statement that the user
//!   authorised this migration, which the destination checks.
//!
//! docs/protocols/migration.md maps each paper message to this code and
//! lists every deviation from the paper with its reason.

pub mod authorisation;
pub mod crypto;
pub mod messages;
pub mod operation;
pub mod request;
pub mod wire;

use zeroize::Zeroizing;

use crate::fault::Fault;
use crate::speke::SpekeError;
pub use crypto::CryptoError;
use wire::{Message as _, WireError};

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

/// The result of SPEKE between the two data centers: SK for both physical
/// servers, and the source↔destination channel, whose remaining messages
/// are typed by role ([`DcSession::source`], [`DcSession::destination`]).
pub struct DcSession {
    /// The migration's SK, handed to both physical servers.
    pub sk: Zeroizing<[u8; 32]>,
    channel: crypto::Channel,
    initiator: bool,
}

impl std::fmt::Debug for DcSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcSession").field("initiator", &self.initiator).finish_non_exhaustive()
    }
}

impl DcSession {
    /// SK and the channel from SPEKE's confirmed key, bound to the migration
    /// id; `initiator` is the source data center.
    pub fn from_speke(
        key: &crate::speke::SessionKey,
        migration_id: &[u8; 16],
        initiator: bool,
    ) -> Result<DcSession, MigrationError> {
        let sk = crypto::derive_key(key.expose(), b"", &[b"dirbroker migration SK", migration_id]);
        let channel = crypto::Channel::derive(key.expose(), &[b"DC-DC session", migration_id], initiator)?;
        Ok(DcSession { sk, channel, initiator })
    }

    /// The source's side: wait for `Dest_Ready`.
    pub fn source(self) -> Result<(Zeroizing<[u8; 32]>, AwaitingDestReady), MigrationError> {
        if !self.initiator {
            return Err(MigrationError::Local("the destination's session used as the source's".into()));
        }
        Ok((self.sk, AwaitingDestReady { channel: self.channel }))
    }

    /// The destination's side: prepare the receiving server, then send `Dest_Ready`.
    pub fn destination(self) -> Result<(Zeroizing<[u8; 32]>, DestPreparing), MigrationError> {
        if self.initiator {
            return Err(MigrationError::Local("the source's session used as the destination's".into()));
        }
        Ok((self.sk, DestPreparing { channel: self.channel }))
    }
}

/// The source waits for `Dest_Ready` (the destination's data port).
#[derive(Debug)]
pub struct AwaitingDestReady {
    channel: crypto::Channel,
}

impl AwaitingDestReady {
    /// `Dest_Ready`: where our server sends the image; then wait for the commit.
    pub fn receive(
        mut self,
        m: &messages::DestReady,
    ) -> Result<(messages::DestReadyBody, AwaitingMigrationCommitted), MigrationError> {
        use messages::DestReady;
        let body = messages::parse_body(&self.channel.open(DestReady::NAME, &m.sealed)?, DestReady::NAME)?;
        Ok((body, AwaitingMigrationCommitted { channel: self.channel }))
    }
}

/// The source waits for `Migration_Committed` while its server sends.
#[derive(Debug)]
pub struct AwaitingMigrationCommitted {
    channel: crypto::Channel,
}

impl AwaitingMigrationCommitted {
    /// `Migration_Committed`: what the destination stored; the session ends.
    pub fn receive(
        mut self,
        m: &messages::MigrationCommitted,
    ) -> Result<messages::MigrationCommittedBody, MigrationError> {
        use messages::MigrationCommitted;
        let plain = self.channel.open(MigrationCommitted::NAME, &m.sealed)?;
        Ok(messages::parse_body(&plain, MigrationCommitted::NAME)?)
    }
}

/// The destination prepares its receiving server.
#[derive(Debug)]
pub struct DestPreparing {
    channel: crypto::Channel,
}

impl DestPreparing {
    /// `Dest_Ready` with the receiving server's data port; then the transfer runs.
    pub fn ready(
        mut self,
        body: &messages::DestReadyBody,
    ) -> Result<(messages::DestReady, DestReceiving), MigrationError> {
        use messages::DestReady;
        let sealed = self.channel.seal(DestReady::NAME, &messages::body_bytes(body, DestReady::NAME)?)?;
        Ok((DestReady { sealed }, DestReceiving { channel: self.channel }))
    }
}

/// The destination's server receives the image.
#[derive(Debug)]
pub struct DestReceiving {
    channel: crypto::Channel,
}

impl DestReceiving {
    /// `Migration_Committed`: what we stored (or why not); the session ends.
    pub fn committed(
        mut self,
        body: &messages::MigrationCommittedBody,
    ) -> Result<messages::MigrationCommitted, MigrationError> {
        use messages::MigrationCommitted;
        let sealed =
            self.channel.seal(MigrationCommitted::NAME, &messages::body_bytes(body, MigrationCommitted::NAME)?)?;
        Ok(MigrationCommitted { sealed })
    }
}
