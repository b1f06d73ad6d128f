//! The service frames of [`dirbroker_proto::sso::service_frame`] on a socket.

use dirbroker_proto::sso::service_frame::{self, FrameError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Reads one frame and parses it as `T`.
pub async fn read<T: DeserializeOwned, S: AsyncRead + Unpin>(s: &mut S) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await?;
    let mut body = vec![0u8; service_frame::body_len(header)?];
    s.read_exact(&mut body).await?;
    service_frame::decode(&body)
}

/// Writes `msg` as one frame.
pub async fn write<T: Serialize, S: AsyncWrite + Unpin>(s: &mut S, msg: &T) -> Result<(), FrameError> {
    s.write_all(&service_frame::encode(msg)?).await?;
    s.flush().await?;
    Ok(())
}
