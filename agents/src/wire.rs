//! Reading and writing the migration protocol's frames
//! ([`dirbroker_proto::migration::wire`]) on a socket, with timeouts; a peer
//! that gives up sends a [`Refusal`] instead of closing silently.

use std::time::Duration;

use dirbroker_proto::fault::Fault;
pub use dirbroker_proto::migration::wire::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes one message.
pub async fn send<M: Message, W: AsyncWrite + Unpin>(w: &mut W, msg: &M) -> Result<(), WireError> {
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Sends a refusal, ignoring failures (the connection is being abandoned).
pub async fn refuse<W: AsyncWrite + Unpin, E: std::fmt::Display + Sync + ?Sized>(w: &mut W, fault: Fault, error: &E) {
    let reason = fault.for_peer(&error);
    let _ = send(w, &Refusal { code: fault.code(), reason }).await;
}

/// Reads one frame's payload (version ‖ kind ‖ body), without decoding it.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    expected: &'static str,
    timeout: Duration,
) -> Result<Vec<u8>, WireError> {
    let read = async {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed { expected }),
            Err(e) => return Err(e.into()),
        }
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(WireError::TooLarge { len });
        }
        let mut payload = vec![0u8; len];
        match r.read_exact(&mut payload).await {
            Ok(_) => Ok(payload),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WireError::Closed { expected }),
            Err(e) => Err(e.into()),
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| WireError::Timeout { expected, secs: timeout.as_secs() })?
}

/// Reads the next message, which must be `M`.
pub async fn recv<M: Message, R: AsyncRead + Unpin>(
    r: &mut R,
    names: KindNames,
    timeout: Duration,
) -> Result<M, WireError> {
    let payload = read_frame(r, M::NAME, timeout).await?;
    decode(&payload, names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
        data: Vec<u8>,
    }
    impl Message for Ping {
        const KIND: u8 = 1;
        const NAME: &'static str = "Ping";
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong {
        n: u32,
    }
    impl Message for Pong {
        const KIND: u8 = 2;
        const NAME: &'static str = "Pong";
    }
    fn names(k: u8) -> Option<&'static str> {
        match k {
            1 => Some("Ping"),
            2 => Some("Pong"),
            _ => None,
        }
    }
    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn round_trip_and_order() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        send(&mut a, &Ping { n: 7, data: vec![1, 2, 3] }).await.unwrap();
        send(&mut a, &Pong { n: 8 }).await.unwrap();
        assert_eq!(recv::<Ping, _>(&mut b, names, T).await.unwrap(), Ping { n: 7, data: vec![1, 2, 3] });
        // A Pong where a Ping is awaited is refused by name.
        let e = recv::<Ping, _>(&mut b, names, T).await.unwrap_err();
        assert_eq!(e.to_string(), "expected Ping, got Pong (out of order or duplicated)");
        assert!(e.fault().blames_peer());
    }

    #[tokio::test]
    async fn hostile_frames() {
        // Wrong version.
        let mut f = encode(&Pong { n: 1 }).unwrap();
        f[4] = 9;
        assert!(matches!(decode::<Pong>(&f[4..], names), Err(WireError::Version { got: 9 })));
        // Trailing garbage.
        let mut f = encode(&Pong { n: 1 }).unwrap();
        f.push(0);
        let e = decode::<Pong>(&f[4..], names).unwrap_err();
        assert!(e.to_string().contains("1 trailing bytes"), "{e}");
        // Truncated body.
        let f = encode(&Ping { n: 1, data: vec![9; 40] }).unwrap();
        assert!(matches!(decode::<Ping>(&f[4..20], names), Err(WireError::Malformed { .. })));
        // Empty payload and unknown kind.
        assert!(matches!(decode::<Ping>(&[], names), Err(WireError::Malformed { .. })));
        let e = decode::<Ping>(&[VERSION, 0x42], names).unwrap_err();
        assert!(e.to_string().contains("unknown message kind 0x42"), "{e}");
        // A length prefix beyond the limit is refused before allocating.
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(read_frame(&mut b, "Ping", T).await, Err(WireError::TooLarge { .. })));
        // Closed mid-frame.
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, VERSION]).await.unwrap();
        drop(a);
        assert!(matches!(read_frame(&mut b, "Ping", T).await, Err(WireError::Closed { expected: "Ping" })));
    }

    #[tokio::test]
    async fn refusal_carries_the_reason() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        refuse(&mut a, Fault::User, "OTP already used").await;
        let e = recv::<Ping, _>(&mut b, names, T).await.unwrap_err();
        assert_eq!(e.to_string(), "peer refused: OTP already used");
        // A refusal relayed from a further peer says "peer refused" once.
        let (mut a, mut b) = tokio::io::duplex(1024);
        refuse(&mut a, Fault::User, &e).await;
        let relayed = recv::<Ping, _>(&mut b, names, T).await.unwrap_err();
        assert_eq!(relayed.to_string(), "peer refused: OTP already used");
    }

    /// Our own trouble reaches the peer as its fault class only, never as
    /// our error text (a path, a file, a lock).
    #[tokio::test]
    async fn refusal_for_our_own_fault_hides_our_error_text() {
        for fault in [Fault::Local, Fault::Config, Fault::Bug, Fault::Unavailable] {
            let (mut a, mut b) = tokio::io::duplex(1024);
            refuse(&mut a, fault, "cannot open /etc/dirbroker/keyring: replay cache poisoned").await;
            let e = recv::<Ping, _>(&mut b, names, T).await.unwrap_err();
            let shown = e.to_string();
            assert!(shown.starts_with("peer refused: "), "{shown}");
            assert!(!shown.contains("keyring") && !shown.contains("poisoned"), "{fault}: {shown}");
            // To us, a peer that failed on its own side is unavailable, not a refusal.
            assert_eq!(e.fault(), Fault::Unavailable, "{fault}");
        }
    }

    #[tokio::test]
    async fn silence_times_out() {
        let (_a, mut b) = tokio::io::duplex(64);
        let e = recv::<Ping, _>(&mut b, names, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(e, WireError::Timeout { expected: "Ping", .. }), "{e}");
    }
}
