//! The horse protocol's framing: each frame is a 4-byte big-endian length, then that many
//! bytes of one JSON object. Pure I/O over any async stream; what the objects mean is
//! [`super::message`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted from a horse (a return value can be big; garbage lengths are not).
pub const MAX_FRAME: u32 = 256 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended (the horse exited or closed its end).
    #[error("the horse closed the protocol stream")]
    Closed,
    /// Reading or writing failed.
    #[error("protocol I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is larger than [`MAX_FRAME`]: not our protocol.
    #[error("frame of {0} bytes announced (more than {MAX_FRAME}): not rqw's horse protocol")]
    TooLarge(u32),
}

/// Reads one frame's body.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, FrameError> {
    let length = match reader.read_u32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    };
    if length > MAX_FRAME {
        return Err(FrameError::TooLarge(length));
    }
    let mut body = vec![0; length as usize];
    match reader.read_exact(&mut body).await {
        Ok(_) => Ok(body),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Writes one frame (length prefix and body) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    let length = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(u32::MAX))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, br#"{"type":"hello"}"#).await.unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 16]);
        let mut reader = &buf[..];
        assert_eq!(
            read_frame(&mut reader).await.unwrap(),
            br#"{"type":"hello"}"#
        );
        assert!(matches!(
            read_frame(&mut reader).await,
            Err(FrameError::Closed)
        ));
        // A print that reached the protocol stream reads as a huge length.
        let mut garbage: &[u8] = b"hello world\n";
        assert!(matches!(
            read_frame(&mut garbage).await,
            Err(FrameError::TooLarge(_))
        ));
        let mut short: &[u8] = &[0, 0, 0, 9, b'{'];
        assert!(matches!(
            read_frame(&mut short).await,
            Err(FrameError::Closed)
        ));
    }
}
