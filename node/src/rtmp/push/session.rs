//! One RTMP publish to a destination: handshake, `connect` (with tcUrl), the commands
//! real ingest servers expect before a publish (`releaseStream`, `FCPublish`, as OBS
//! and ffmpeg send them), `createStream` + `publish`, then `@setDataFrame onMetaData`,
//! the codec sequence headers and the frames, timestamps starting at zero.
//!
//! rml_rtmp's `ClientSession` does the protocol; it has no `releaseStream` or
//! `FCPublish`, so those two (and `FCUnpublish` at the end) are framed here, each as
//! whole type-0 chunks on a chunk stream of their own so they cannot disturb the
//! session's header compression. What the server sends passes the same
//! [`ChunkGuard`] as a publisher's input (the crate's deserializer trusts its input
//! either way), and at most `MAX_INBOUND` bytes of it: a server sends only replies
//! and acknowledgements.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use castmesh_cluster::restream::RtmpUrl;
use castmesh_media::{Codecs, TrackKind};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::dial::Io;
use crate::deadline_io::DeadlineIo;
use crate::rtmp::guard::{ChunkGuard, GuardLimits};
use crate::seams::Clock;
use crate::stream::restream::PushError;
use crate::stream::restream::queue::FrameQueue;
use crate::stream::restream::status::DestinationStatus;
use crate::stream::restream::tap::{MediaTap, TapFrame};

/// Chunk size announced to the destination (OBS and ffmpeg use 4096 too).
const CHUNK_SIZE: u32 = 4096;
/// The chunk stream of the commands framed here (rml_rtmp uses 2 to 6).
const COMMAND_CSID: u8 = 8;
const AMF0_COMMAND: u8 = 20;
/// A destination sends replies, pings and acknowledgements; far more is refused.
const MAX_INBOUND: u64 = 64 * 1024 * 1024;
/// Commands a destination may send on one connection.
const MAX_INBOUND_COMMANDS: u32 = 100_000;
/// A timestamp jump larger than this is a new publisher (or a reset clock): the
/// destination's timeline continues where it was instead of jumping with it.
const MAX_JUMP_MS: i64 = 10_000;

pub struct Publish {
    io: DeadlineIo<Box<dyn Io>>,
    session: ClientSession,
    guard: ChunkGuard,
    buf: Vec<u8>,
    /// A batch of frames, serialized for one write.
    out: Vec<u8>,
    inbound: u64,
    key: String,
    timeline: Timeline,
    /// The metadata and sequence headers went out (before the first frame).
    started: bool,
}

fn failed(e: impl std::fmt::Display) -> PushError {
    PushError::Failed(e.to_string())
}

/// Maps the publisher's timestamps onto the destination's, which start at zero and
/// never jump: a new publisher (a republish within the grace period) restarts its
/// clock, the destination's continues where it was.
#[derive(Default)]
struct Timeline {
    /// The publisher's clock, unwrapped past 32 bits (`None` before the first frame).
    input: Option<(u32, i64)>,
    /// Subtracted from the unwrapped input clock.
    base: i64,
    /// The publisher the last frame came from.
    publisher: u64,
}

impl Timeline {
    fn map(&mut self, publisher: u64, ts: u32) -> u32 {
        let clock = match self.input {
            None => {
                self.base = i64::from(ts);
                i64::from(ts)
            }
            Some((last, clock)) => {
                let delta = i64::from(ts.wrapping_sub(last) as i32);
                if publisher != self.publisher || delta.abs() > MAX_JUMP_MS {
                    self.base += delta;
                }
                clock + delta
            }
        };
        self.publisher = publisher;
        self.input = Some((ts, clock));
        // A frame slightly older than the first (audio before the first keyframe).
        u32::try_from((clock - self.base).max(0)).unwrap_or(u32::MAX)
    }
}

/// `@setDataFrame onMetaData` for the stream's codecs (H.264 = 7, AAC = 10 in FLV).
fn metadata(codecs: &Codecs) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    if let Some(v) = &codecs.video {
        m.video_codec_id = Some(7);
        m.video_width = Some(v.width);
        m.video_height = Some(v.height);
        m.video_frame_rate = v.frame_rate.map(|f| f as f32);
    }
    if let Some(a) = &codecs.audio {
        m.audio_codec_id = Some(10);
        m.audio_sample_rate = Some(a.sample_rate);
        m.audio_channels = Some(u32::from(a.channels));
        m.audio_is_stereo = Some(a.channels > 1);
    }
    m.encoder = Some(concat!("castmesh ", env!("CARGO_PKG_VERSION")).into());
    m
}

/// One AMF0 command on message stream 0, as type-0 chunks on [`COMMAND_CSID`].
fn command(name: &str, transaction: f64, args: Vec<Amf0Value>) -> Result<Vec<u8>, PushError> {
    let mut values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(transaction),
        Amf0Value::Null,
    ];
    values.extend(args);
    let body = rml_amf0::serialize(&values).map_err(|e| failed(format!("{name}: {e:?}")))?;
    let len = u32::try_from(body.len()).map_err(|_| failed(format!("{name}: too long")))?;
    let mut out = Vec::with_capacity(body.len() + 16);
    out.push(COMMAND_CSID); // format 0, chunk stream id
    out.extend_from_slice(&[0, 0, 0]); // timestamp
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(AMF0_COMMAND);
    out.extend_from_slice(&0u32.to_le_bytes()); // message stream id
    for (i, piece) in body.chunks(CHUNK_SIZE as usize).enumerate() {
        if i > 0 {
            out.push(0xC0 | COMMAND_CSID); // format 3: continuation
        }
        out.extend_from_slice(piece);
    }
    Ok(out)
}

/// Whether an onStatus code refuses the publish (the key, the app, the server).
fn refuses(code: &str) -> bool {
    code.starts_with("NetStream.Publish.") || code.starts_with("NetConnection.Connect.")
}

impl Publish {
    /// Connects and publishes on `io`; returns once the destination accepted.
    pub async fn open(
        io: Box<dyn Io>,
        url: &RtmpUrl,
        key: &str,
        limits: GuardLimits,
        write_timeout: Duration,
    ) -> Result<Self, PushError> {
        let limits = GuardLimits {
            // A destination sends no media.
            max_media_message: limits.max_command_message,
            max_commands: MAX_INBOUND_COMMANDS,
            ..limits
        };
        let config = ClientSessionConfig {
            tc_url: Some(url.tc_url()),
            chunk_size: CHUNK_SIZE,
            flash_version: "FMLE/3.0 (compatible; castmesh)".into(),
            ..ClientSessionConfig::new()
        };
        let (session, _) = ClientSession::new(config).map_err(failed)?;
        let mut publish = Self {
            io: DeadlineIo::new(io, None, write_timeout),
            session,
            guard: ChunkGuard::new(limits),
            buf: vec![0; 16 * 1024],
            out: Vec::new(),
            inbound: 0,
            key: key.to_string(),
            timeline: Timeline::default(),
            started: false,
        };
        let leftover = publish.handshake().await?;
        let connect = publish
            .session
            .request_connection(url.app.clone())
            .map_err(failed)?;
        publish.results(vec![connect]).await?;
        let mut connected = false;
        let mut events = publish.input(&leftover).await?;
        loop {
            while let Some(event) = events.pop_front() {
                match event {
                    ClientSessionEvent::ConnectionRequestAccepted if !connected => {
                        connected = true;
                        publish.request_publish().await?;
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok(publish),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(PushError::Rejected(format!(
                            "the server refused the connection: {description}"
                        )));
                    }
                    ClientSessionEvent::UnhandleableOnStatusCode { code } if refuses(&code) => {
                        return Err(PushError::Rejected(format!(
                            "the server refused the publish: {code}"
                        )));
                    }
                    _ => {}
                }
            }
            events = match publish.read().await? {
                Some(events) => events,
                None => {
                    return Err(PushError::Rejected(
                        "the server closed the connection before accepting the publish".into(),
                    ));
                }
            };
        }
    }

    async fn handshake(&mut self) -> Result<Vec<u8>, PushError> {
        let mut handshake = Handshake::new(PeerType::Client);
        let hello = handshake.generate_outbound_p0_and_p1().map_err(failed)?;
        self.write(&hello).await?;
        loop {
            let n = self.io.read(&mut self.buf).await.map_err(failed)?;
            if n == 0 {
                return Err(failed(
                    "the server closed the connection during the handshake",
                ));
            }
            match handshake
                .process_bytes(&self.buf[..n])
                .map_err(|e| failed(format!("bad handshake: {e}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.write(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.write(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    /// `releaseStream`, `FCPublish` (transaction ids the session never uses), then
    /// the session's `createStream` and `publish`.
    async fn request_publish(&mut self) -> Result<(), PushError> {
        let key = || vec![Amf0Value::Utf8String(self.key.clone())];
        let mut bytes = command("releaseStream", 3.0, key())?;
        bytes.extend(command("FCPublish", 4.0, key())?);
        self.write(&bytes).await?;
        let create = self
            .session
            .request_publishing(self.key.clone(), PublishRequestType::Live)
            .map_err(failed)?;
        self.results(vec![create]).await?;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), PushError> {
        self.io.write_all(bytes).await.map_err(failed)
    }

    /// Writes the session's packets in order; returns its events.
    async fn results(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<VecDeque<ClientSessionEvent>, PushError> {
        let mut events = VecDeque::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ClientSessionResult::RaisedEvent(event) => events.push_back(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// What the server sent in `data`, checked first.
    async fn input(&mut self, data: &[u8]) -> Result<VecDeque<ClientSessionEvent>, PushError> {
        if data.is_empty() {
            return Ok(VecDeque::new());
        }
        self.inbound += data.len() as u64;
        if self.inbound > MAX_INBOUND {
            return Err(failed(format!(
                "the server sent more than {MAX_INBOUND} bytes"
            )));
        }
        self.guard
            .check(data)
            .map_err(|v| failed(format!("the server sent refused input: {v}")))?;
        let results = self
            .session
            .handle_input(data)
            .map_err(|e| failed(format!("malformed RTMP from the server: {e}")))?;
        self.results(results).await
    }

    /// Reads once; `None` when the server closed the connection.
    async fn read(&mut self) -> Result<Option<VecDeque<ClientSessionEvent>>, PushError> {
        let n = self.io.read(&mut self.buf).await.map_err(failed)?;
        self.received(n).await
    }

    /// The `n` bytes just read into `buf` (0: the server closed the connection). What
    /// a server sends is little: it is copied out for the session.
    async fn received(
        &mut self,
        n: usize,
    ) -> Result<Option<VecDeque<ClientSessionEvent>>, PushError> {
        tracing::debug!(bytes = n, "from the destination");
        if n == 0 {
            return Ok(None);
        }
        let data = self.buf[..n].to_vec();
        self.input(&data).await.map(Some)
    }

    /// Sends the queue's frames until the queue closes (then unpublishes politely:
    /// [`PushError::Stopped`]) or the connection fails.
    pub async fn run(
        &mut self,
        queue: &FrameQueue,
        tap: &MediaTap,
        status: &DestinationStatus,
        clock: &dyn Clock,
    ) -> PushError {
        let mut batch = Vec::new();
        loop {
            // Only the waits race (both cancel-safe); what follows either runs whole,
            // so no write is ever cut in the middle of a chunk.
            let outcome = tokio::select! {
                more = queue.next_batch(&mut batch) => if more {
                    self.send(&mut batch, tap, status, clock).await
                } else {
                    self.unpublish().await;
                    return PushError::Stopped;
                },
                read = self.io.read(&mut self.buf) => match read {
                    Ok(n) => match self.received(n).await {
                        Ok(Some(events)) => Self::live_events(events),
                        Ok(None) => Err(failed("the server closed the connection")),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(failed(e)),
                },
            };
            if let Err(e) = outcome {
                return e;
            }
        }
    }

    /// While publishing, only a status that ends the publish matters.
    fn live_events(events: VecDeque<ClientSessionEvent>) -> Result<(), PushError> {
        for event in events {
            if let ClientSessionEvent::UnhandleableOnStatusCode { code } = event
                && refuses(&code)
            {
                return Err(failed(format!("the server ended the publish: {code}")));
            }
        }
        Ok(())
    }

    /// Writes a batch of frames at once (preceded, on a connection's first, by the
    /// metadata and the sequence headers).
    async fn send(
        &mut self,
        batch: &mut Vec<TapFrame>,
        tap: &MediaTap,
        status: &DestinationStatus,
        clock: &dyn Clock,
    ) -> Result<(), PushError> {
        self.out.clear();
        if !self.started {
            self.started = true;
            let headers = tap.headers();
            let meta = self
                .session
                .publish_metadata(&metadata(&headers.codecs))
                .map_err(failed)?;
            self.serialized(meta);
            let first = [
                (TrackKind::Video, headers.video),
                (TrackKind::Audio, headers.audio),
            ];
            for (kind, body) in first {
                if let Some(body) = body {
                    self.media(kind, body, 0)?;
                }
            }
        }
        for frame in batch.drain(..) {
            let ts = self.timeline.map(frame.publisher, frame.timestamp_ms);
            self.media(frame.kind, frame.body, ts)?;
        }
        // Fields borrowed apart: the batch is written straight from its buffer.
        self.io.write_all(&self.out).await.map_err(failed)?;
        status.sent(self.out.len() as u64, clock.now_ms());
        Ok(())
    }

    fn media(&mut self, kind: TrackKind, body: Bytes, ts: u32) -> Result<(), PushError> {
        let ts = RtmpTimestamp::new(ts);
        let packet = match kind {
            TrackKind::Video => self.session.publish_video_data(body, ts, false),
            TrackKind::Audio => self.session.publish_audio_data(body, ts, false),
        }
        .map_err(failed)?;
        self.serialized(packet);
        Ok(())
    }

    /// Appends a serialized message to the batch being written.
    fn serialized(&mut self, result: ClientSessionResult) {
        if let ClientSessionResult::OutboundResponse(packet) = result {
            self.out.extend_from_slice(&packet.bytes);
        }
    }

    /// `FCUnpublish` and `deleteStream`, as encoders end a publish; best effort.
    async fn unpublish(&mut self) {
        if let Ok(bytes) = command(
            "FCUnpublish",
            5.0,
            vec![Amf0Value::Utf8String(self.key.clone())],
        ) {
            let _ = self.write(&bytes).await;
        }
        if let Ok(results) = self.session.stop_publishing() {
            let _ = self.results(results).await;
        }
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_starts_at_zero_and_continues_over_a_restarted_clock() {
        let mut t = Timeline::default();
        let out: Vec<u32> = [1000, 980, 1033, 1066, 5066, 60_000, 0, 33]
            .into_iter()
            .map(|ts| t.map(0, ts))
            .collect();
        // Audio slightly before the first keyframe is clamped, never drifts; a jump
        // within the bound is kept; beyond it (either way) the timeline continues.
        assert_eq!(out, [0, 0, 33, 66, 4066, 4066, 4066, 4099]);
        // A new publisher a few seconds in: its clock starts over, the timeline not.
        assert_eq!(t.map(1, 0), 4099);
        assert_eq!(t.map(1, 40), 4139);
        let mut wrap = Timeline::default();
        assert_eq!(wrap.map(0, u32::MAX - 10), 0);
        assert_eq!(wrap.map(0, 5), 16);
    }

    #[test]
    fn framed_commands_are_type_0_chunks_on_their_own_chunk_stream() {
        let bytes = command("FCPublish", 4.0, vec![Amf0Value::Utf8String("k".into())]).unwrap();
        assert_eq!(bytes[0], COMMAND_CSID);
        let len = u32::from_be_bytes([0, bytes[4], bytes[5], bytes[6]]) as usize;
        assert_eq!(bytes[7], AMF0_COMMAND);
        assert_eq!(bytes.len(), 12 + len);
        let values = rml_amf0::deserialize(&mut std::io::Cursor::new(&bytes[12..])).unwrap();
        assert_eq!(values[0], Amf0Value::Utf8String("FCPublish".into()));
        assert_eq!(values[3], Amf0Value::Utf8String("k".into()));
        let long = "x".repeat(5000);
        let bytes = command("releaseStream", 3.0, vec![Amf0Value::Utf8String(long)]).unwrap();
        assert_eq!(bytes[12 + CHUNK_SIZE as usize], 0xC0 | COMMAND_CSID);
    }
}
