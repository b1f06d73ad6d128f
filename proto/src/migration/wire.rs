//! Framed, versioned messages between the actors of VM migration: the
//! messages, the frame format and its errors (sans-I/O; the agents read and
//! write frames on their sockets).
//!
//! Every message of the papers is a named struct implementing [`Message`].
//! On the wire each travels in one frame:
//!
//! ```text
//!  u32 BE length of what follows ‖ u8 protocol version ‖ u8 message kind ‖ postcard body
//! ```
//!
//! A reader states which message it waits for; any other kind is refused
//! ("expected Auth_Reply, got Mig_Request_Admin"), so a state that waits for
//! one message has no code path that accepts another. A peer that gives up
//! sends [`Refusal`] with its reason instead of closing silently.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fault::Fault;

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Largest control frame accepted (certificates and sealed bodies fit easily).
pub const MAX_FRAME: usize = 64 * 1024;
/// How long a peer may take to send the next message.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A message of one of the papers' protocols.
pub trait Message: Serialize + DeserializeOwned {
    /// The kind byte on the wire; unique across all messages.
    const KIND: u8;
    /// The paper's name for the message, used in errors and logs.
    const NAME: &'static str;
}

/// A peer's reasoned refusal, sent instead of the next expected message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// Who is at fault ([`Fault::code`]).
    pub code: u8,
    /// For the peer to read: never our own error text ([`Fault::for_peer`]).
    pub reason: String,
}

impl Message for Refusal {
    const KIND: u8 = 0xff;
    const NAME: &'static str = "Refusal";
}

/// What went wrong on the wire, split by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed under us.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection before the next message was whole.
    #[error("peer closed the connection while we waited for {expected}")]
    Closed {
        /// The message we waited for.
        expected: &'static str,
    },
    /// The peer took longer than its time for one message.
    #[error("timed out after {secs} s waiting for {expected}")]
    Timeout {
        /// The message we waited for.
        expected: &'static str,
        /// How long we waited.
        secs: u64,
    },
    /// A length prefix above [`MAX_FRAME`], refused before anything is read.
    #[error("peer sent a frame of {len} bytes; the limit is {MAX_FRAME}")]
    TooLarge {
        /// The length the peer announced.
        len: usize,
    },
    /// A frame of another protocol version than [`VERSION`].
    #[error("peer speaks protocol version {got}; this build speaks {VERSION}")]
    Version {
        /// The version byte received.
        got: u8,
    },
    /// A well-formed frame of another kind than the state waits for.
    #[error("expected {expected}, got {got} (out of order or duplicated)")]
    Unexpected {
        /// The message the state waits for.
        expected: &'static str,
        /// The name of the kind that came instead (or its byte, if unknown).
        got: String,
    },
    /// A frame, or a body inside a seal, that does not parse or has trailing bytes.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The message that does not parse.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer sent [`Refusal`] instead of the message we waited for: its reason.
    #[error("peer refused: {reason}")]
    Refused {
        /// Who the refusing peer says is at fault ([`Fault::from_code`]).
        fault: Fault,
        /// Its reason, for a person to read.
        reason: String,
    },
    /// A message we could not encode, or one larger than [`MAX_FRAME`]: our bug.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The message being encoded.
        what: &'static str,
        /// Why it could not be.
        reason: String,
    },
}

impl WireError {
    /// Who is at fault: the network or the peer's silence, the peer's bytes,
    /// a refusal the peer sent, or our own encoding.
    pub fn fault(&self) -> Fault {
        match self {
            WireError::Io(_) | WireError::Closed { .. } | WireError::Timeout { .. } => Fault::Unavailable,
            WireError::TooLarge { .. } | WireError::Malformed { .. } => Fault::Malformed,
            WireError::Version { .. } => Fault::PeerIncompatible,
            WireError::Unexpected { .. } => Fault::PeerMisbehaved,
            // The peer failed on its side: to us it is unavailable; else it refused us.
            WireError::Refused { fault, .. } if fault.is_ours() => Fault::Unavailable,
            WireError::Refused { .. } => Fault::User,
            WireError::Encode { .. } => Fault::Bug,
        }
    }
}

/// Names for kind bytes, for error messages about unexpected frames.
pub type KindNames = fn(u8) -> Option<&'static str>;

fn describe(kind: u8, names: KindNames) -> String {
    match (kind, names(kind)) {
        (Refusal::KIND, _) => Refusal::NAME.to_string(),
        (_, Some(n)) => n.to_string(),
        (k, None) => format!("unknown message kind {k:#04x}"),
    }
}

/// Encodes one message as a complete frame.
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, WireError> {
    let body = postcard::to_stdvec(msg).map_err(|e| WireError::Encode { what: M::NAME, reason: e.to_string() })?;
    let len = body.len() + 2;
    if len > MAX_FRAME {
        return Err(WireError::Encode { what: M::NAME, reason: format!("{len} bytes exceed the frame limit") });
    }
    let mut frame = Vec::with_capacity(len + 4);
    frame.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    frame.push(VERSION);
    frame.push(M::KIND);
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes a frame's payload (version, kind, body) as the expected message.
pub fn decode<M: Message>(payload: &[u8], names: KindNames) -> Result<M, WireError> {
    let (&version, rest) =
        payload.split_first().ok_or(WireError::Malformed { what: M::NAME, reason: "empty frame".into() })?;
    if version != VERSION {
        return Err(WireError::Version { got: version });
    }
    let (&kind, body) =
        rest.split_first().ok_or(WireError::Malformed { what: M::NAME, reason: "no message kind".into() })?;
    if kind == Refusal::KIND && M::KIND != Refusal::KIND {
        let r: Refusal = postcard::from_bytes(body)
            .map_err(|e| WireError::Malformed { what: Refusal::NAME, reason: e.to_string() })?;
        // A peer relaying a refusal it got (a data center passing on a
        // server's) sends "peer refused: …" as its reason: say it once.
        let mut reason = r.reason.as_str();
        while let Some(rest) = reason.strip_prefix("peer refused: ") {
            reason = rest;
        }
        return Err(WireError::Refused { fault: Fault::from_code(r.code), reason: reason.to_string() });
    }
    if kind != M::KIND {
        return Err(WireError::Unexpected { expected: M::NAME, got: describe(kind, names) });
    }
    let (msg, extra) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed { what: M::NAME, reason: e.to_string() })?;
    if !extra.is_empty() {
        return Err(WireError::Malformed { what: M::NAME, reason: format!("{} trailing bytes", extra.len()) });
    }
    Ok(msg)
}
