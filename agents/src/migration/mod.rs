//! OTP-based dynamic authentication for VM migration (seeds 000/001),
//! as separate actors: the admin console, the data-center daemon (source or
//! destination) and the physical-server daemon.
//!
//! - [`messages`]: every message of the paper as a named struct;
//! - [`request`]: the request module (OTP-gated request, DC↔DC request with
//!   certificates and a signed acknowledgement), one type per waiting state;
//! - [`operation`]: the DC↔PS TOTP mutual authentication and `E_TOTP(SK)`;
//! - [`speke_session`]: SPEKE between the data centers;
//! - [`crypto`]: the sound constructions behind the paper's `E_…` and `Sig_…`.
//!
//! docs/protocols/migration.md maps each paper message to this code and
//! lists every deviation from the paper with its reason.

pub mod crypto;
pub mod messages;
pub mod operation;
pub mod request;

use std::time::Duration;

use dirbroker_proto::fault::Fault;
use dirbroker_proto::speke::{PreparedPassword, Speke, SpekeError};
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use crate::wire::{self, WireError};
pub use crypto::CryptoError;
use messages::{SpekeConfirm, SpekeValue};

/// Any failure of a migration step, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("SPEKE: {0}")]
    Speke(#[from] SpekeError),
    /// A message seen before, or outside its time window.
    #[error("replayed {what} refused: {detail}")]
    Replay { what: &'static str, detail: String },
    /// Well-formed and authentic, but not what this session expects.
    #[error("{what} refused: {detail}")]
    Mismatch { what: &'static str, detail: String },
    #[error("the user's OTP was refused: {0}")]
    OtpRefused(String),
    #[error("unknown {what} {name:?}")]
    Unknown { what: &'static str, name: String },
    #[error("{0}")]
    Refused(String),
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

/// Operation module step 1: SPEKE between the source (`initiator`) and the
/// destination data center over an authenticated connection, with the
/// mandatory key confirmation: the source sends its value, the destination
/// answers with its own, the source confirms first, then the destination.
/// SK is bound to the migration id. `password` is the pair's SPEKE password
/// prepared once ([`Speke::prepare`]) and reused for every session.
pub async fn speke_session<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    password: &PreparedPassword<'_>,
    my_id: &str,
    peer_id: &str,
    initiator: bool,
    migration_id: &[u8; 16],
    timeout: Duration,
) -> Result<DcSession, MigrationError> {
    let names = messages::kind_name;
    let (state, mine) = Speke::start_prepared(password, my_id.as_bytes(), peer_id.as_bytes(), &mut rand::rng())?;
    let mine = SpekeValue { id: my_id.to_string(), value: mine.to_bytes() };
    let theirs: SpekeValue = if initiator {
        wire::send(io, &mine).await?;
        wire::recv(io, names, timeout).await?
    } else {
        let v = wire::recv(io, names, timeout).await?;
        wire::send(io, &mine).await?;
        v
    };
    if theirs.id != peer_id {
        return Err(MigrationError::Mismatch {
            what: "SPEKE value",
            detail: format!("it comes from {:?}, expected {peer_id:?}", theirs.id),
        });
    }
    let confirming = state.receive(&theirs.value)?;
    let my_tag = SpekeConfirm { tag: confirming.my_tag() };
    let key = if initiator {
        wire::send(io, &my_tag).await?;
        let peer: SpekeConfirm = wire::recv(io, names, timeout).await?;
        confirming.confirm(&peer.tag)?
    } else {
        let peer: SpekeConfirm = wire::recv(io, names, timeout).await?;
        let key = confirming.confirm(&peer.tag);
        if key.is_err() {
            wire::refuse(io, Fault::PeerMisbehaved, "SPEKE key confirmation failed").await;
        }
        let key = key?;
        wire::send(io, &my_tag).await?;
        key
    };
    let sk = crypto::derive_key(key.expose(), b"", &[b"dirbroker migration SK", migration_id]);
    let channel = crypto::Channel::derive(key.expose(), &[b"DC-DC session", migration_id], initiator)?;
    Ok(DcSession { sk, channel })
}

#[cfg(test)]
mod tests;
