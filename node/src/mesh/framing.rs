//! Length-prefixed protobuf messages on QUIC streams: a big-endian u32 length, then
//! the message. Hand-written because it is six lines of framing around prost, and the
//! codec crates that do it (tokio-util's length-delimited codec) would add a
//! Sink/Stream layer over quinn's plain read/write calls.

use prost::Message;
use quinn::{RecvStream, SendStream};

/// Largest message accepted: an init segment or a part with its metadata fits easily.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Writes one message; returns the bytes it took on the stream.
pub async fn write<M: Message>(stream: &mut SendStream, message: &M) -> anyhow::Result<usize> {
    let body = message.encode_to_vec();
    stream.write_all(&(body.len() as u32).to_be_bytes()).await?;
    stream.write_all(&body).await?;
    Ok(4 + body.len())
}

/// The next message, or `None` at a clean end of stream.
pub async fn read<M: Message + Default>(stream: &mut RecvStream) -> anyhow::Result<Option<M>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    anyhow::ensure!(
        len <= MAX_FRAME,
        "mesh frame of {len} bytes exceeds {MAX_FRAME}"
    );
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    Ok(Some(M::decode(body.as_slice())?))
}
