//! The migration protocol ([`dirbroker_proto::migration`]) on sockets:
//! SPEKE between the two data centers, and the in-process attack tests of the
//! paper's Table 1 claims.

use std::time::Duration;

use dirbroker_proto::fault::Fault;
pub use dirbroker_proto::migration::{
    CryptoError, DcSession, MigrationError, authorisation, crypto, messages, operation, request,
};
use dirbroker_proto::speke::{PreparedPassword, Speke};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::wire;
use messages::{SpekeConfirm, SpekeValue};

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
    let (state, mine) =
        Speke::start_prepared(password, my_id.as_bytes(), peer_id.as_bytes(), &mut dirbroker_service::clock::rng())?;
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
    DcSession::from_speke(&key, migration_id, initiator)
}

#[cfg(test)]
mod tests;
