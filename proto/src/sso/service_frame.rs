//! One request and one answer between a client and a Kerberized service on a
//! plain TCP connection (seed 002 stages 6–7, as the example service and
//! `dirbroker ticket use` run them): each frame is a u32 big-endian length,
//! then JSON. The request is a [`ServiceRequest`](super::session::ServiceRequest),
//! the answer a [`ServiceAnswer`]. Sans-I/O: [`encode`] and [`body_len`];
//! `dirbroker_service::frame` reads and writes them on sockets.

use serde::{Deserialize, Serialize};

use super::session::ServiceReply;

/// The largest frame either side reads.
pub const MAX_FRAME: usize = 256 * 1024;

/// The service's answer: `{"reply": AP-REP}` (mutual authentication with the
/// answer sealed under C_ck) or `{"error": "…"}` (text a peer may read).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAnswer {
    /// The request was authorised and done.
    Reply(ServiceReply),
    /// The request was refused, and why.
    Error(String),
}

/// A frame that cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME`].
    #[error("frame of {len} bytes is larger than {MAX_FRAME}")]
    TooLarge {
        /// The length announced or asked for.
        len: usize,
    },
    /// The JSON does not parse as the expected message.
    #[error("frame does not parse: {0}")]
    Json(String),
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `len ‖ JSON(msg)`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Json(e.to_string()))?;
    let len = u32::try_from(body.len()).ok().filter(|&l| l as usize <= MAX_FRAME);
    let len = len.ok_or(FrameError::TooLarge { len: body.len() })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length a frame header announces, refused above [`MAX_FRAME`].
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Parses a frame's body as `T`.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let f = encode(&ServiceAnswer::Error("denied".into())).unwrap();
        let len = body_len([f[0], f[1], f[2], f[3]]).unwrap();
        assert_eq!(&f[4..], br#"{"error":"denied"}"#);
        assert!(matches!(decode::<ServiceAnswer>(&f[4..4 + len]).unwrap(), ServiceAnswer::Error(e) if e == "denied"));
        assert!(matches!(body_len(u32::MAX.to_be_bytes()), Err(FrameError::TooLarge { .. })));
        assert!(matches!(encode(&"x".repeat(MAX_FRAME)), Err(FrameError::TooLarge { .. })));
        assert!(matches!(decode::<ServiceAnswer>(b"{\"nope\":1}"), Err(FrameError::Json(_))));
    }
}
