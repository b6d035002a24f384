//! Length-prefixed protobuf messages on QUIC streams: a big-endian u32 length, then
//! the message. Hand-written because it is a few lines of framing around prost, and the
//! codec crates that do it (tokio-util's length-delimited codec) would add a
//! Sink/Stream layer over quinn's plain read/write calls.
//!
//! A frame's announced length is only a ceiling: the body grows as its bytes arrive,
//! so a peer announcing 16 MiB and sending nothing costs nothing.

use bytes::BytesMut;
use prost::Message;
use quinn::{RecvStream, SendStream};

/// Largest delivery accepted: an init segment or a part with its metadata fits easily.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Largest request, answer to a request or viewer report: they carry a stream id and
/// a few numbers.
pub const MAX_SMALL_FRAME: u32 = 64 * 1024;
/// A listing answer (viewer totals of every stream a node originates: at most
/// `streams.max_streams` ids of ≤ 128 bytes and their counts).
pub const MAX_LIST_FRAME: u32 = 4 * 1024 * 1024;

/// Room reserved before a body's first bytes arrive.
const FIRST_CHUNK: usize = 64 * 1024;

/// Writes one message; returns the bytes it took on the stream.
pub async fn write<M: Message>(stream: &mut SendStream, message: &M) -> anyhow::Result<usize> {
    let body = message.encode_to_vec();
    stream.write_all(&(body.len() as u32).to_be_bytes()).await?;
    stream.write_all(&body).await?;
    Ok(4 + body.len())
}

/// The next message of at most `max` bytes, or `None` at a clean end of stream.
pub async fn read<M: Message + Default>(
    stream: &mut RecvStream,
    max: u32,
) -> anyhow::Result<Option<M>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = checked_len(len, max)?;
    let mut body = BytesMut::with_capacity(len.min(FIRST_CHUNK));
    while body.len() < len {
        let chunk = stream
            .read_chunk(len - body.len(), true)
            .await
            // One error type for the whole frame, whichever read failed (a reset is
            // told apart by its code).
            .map_err(quinn::ReadExactError::ReadError)?
            .ok_or_else(|| anyhow::anyhow!("the stream ended inside a frame of {len} bytes"))?;
        body.extend_from_slice(&chunk.bytes);
    }
    Ok(Some(M::decode(body.freeze())?))
}

/// Reads frames from a stream like [`read`], but keeps a partly received frame in
/// itself: `next` may be cancelled (a `select!`, a timeout) and called again without
/// losing bytes, which `read` cannot promise.
pub struct FrameReader {
    stream: RecvStream,
    max: u32,
    buf: BytesMut,
}

impl FrameReader {
    pub fn new(stream: RecvStream, max: u32) -> Self {
        Self {
            stream,
            max,
            buf: BytesMut::new(),
        }
    }

    /// The next message, or `None` at a clean end of stream. Cancel-safe: quinn's
    /// `read_chunk` hands over no bytes unless it completes.
    pub async fn next<M: Message + Default>(&mut self) -> anyhow::Result<Option<M>> {
        loop {
            if self.buf.len() >= 4 {
                let prefix: [u8; 4] = self.buf[..4].try_into().expect("four bytes");
                let len = checked_len(prefix, self.max)?;
                if self.buf.len() >= 4 + len {
                    let _ = self.buf.split_to(4);
                    return Ok(Some(M::decode(self.buf.split_to(len).freeze())?));
                }
            }
            let wanted = match self.buf.len() {
                n if n < 4 => 4 - n,
                n => 4 + checked_len(self.buf[..4].try_into().expect("four bytes"), self.max)? - n,
            };
            let chunk = self
                .stream
                .read_chunk(wanted.min(FIRST_CHUNK), true)
                .await
                .map_err(quinn::ReadExactError::ReadError)?;
            match chunk {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => anyhow::bail!("the stream ended inside a frame"),
            }
        }
    }
}

/// The body length a frame's prefix announces, if it is at most `max`.
fn checked_len(prefix: [u8; 4], max: u32) -> anyhow::Result<usize> {
    let len = u32::from_be_bytes(prefix);
    anyhow::ensure!(len <= max, "mesh frame of {len} bytes exceeds {max}");
    Ok(len as usize)
}
