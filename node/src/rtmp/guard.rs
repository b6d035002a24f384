//! A gate in front of rml_rtmp: every byte a client sends after the handshake passes
//! through [`ChunkGuard::check`] before rml_rtmp's session sees it, and input that
//! would crash or bloat the crate is refused with a reason.
//!
//! Written here because rml_rtmp 0.8 (the RTMP crate castmesh builds on) trusts its
//! input, and none of these can be fixed from outside it except by looking first:
//! - its chunk deserializer keeps one payload buffer for all chunk streams and
//!   computes `length - received` unchecked: a chunk header that re-declares a
//!   shorter length mid-message never completes and the buffer grows with input;
//!   interleaved messages on two chunk streams are glued together;
//! - it reserves a message's whole declared length (up to 16 MiB) at its first
//!   chunk, for any message type, before a stream key has been checked (so until
//!   the connection publishes, media messages are held to the command limit too);
//! - AMF0 values are decoded with unbounded recursion ([`super::amf_check`]);
//! - a command with fewer than three values (`drain(..3)`), a `publish` or `play`
//!   without its arguments, and a data message that is only `@setDataFrame` (or
//!   `@setDataFrame`, `onMetaData` with no object) index past the end and panic;
//! - every `createStream` adds an entry to a map that is never bounded.
//!
//! The guard follows the chunk framing exactly as that deserializer does (header
//! formats, extended timestamps that repeat on continuation chunks, the peer's
//! chunk size) but keeps only each chunk stream's last header and the bytes of the
//! message in progress when it is a small non-media one; media payloads are
//! counted, not copied.

use std::collections::HashMap;

use super::amf_check::{self, AmfError};

/// The bounds one connection's input is held to (from `[rtmp]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    /// Largest audio, video or aggregate message once the connection publishes.
    pub max_media_message: u32,
    /// Largest message of any other type (commands, metadata, control).
    pub max_command_message: u32,
    /// Command messages one connection may send in its life.
    pub max_commands: u32,
    /// AMF0 containers nested inside each other.
    pub max_amf_depth: usize,
}

/// Why a connection's input was refused; the label is the metric's reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    #[error("a {length}-byte message of type {type_id} exceeds the {limit}-byte limit")]
    MessageTooLarge {
        type_id: u8,
        length: u32,
        limit: u32,
    },
    #[error(
        "a chunk on chunk stream {csid} started before the message on chunk stream {open} ended"
    )]
    Interleaved { csid: u32, open: u32 },
    #[error("a new message header on chunk stream {0} in the middle of a message")]
    HeaderMidMessage(u32),
    #[error("a compressed chunk header on chunk stream {0}, which has no previous header")]
    NoPreviousHeader(u32),
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    #[error("chunk size {0} (must be 1 to 2^31-1)")]
    BadChunkSize(u64),
    #[error("more than {0} command messages on one connection")]
    TooManyCommands(u32),
    #[error("{0}")]
    BadAmf(#[from] AmfError),
    #[error("malformed {0}")]
    MalformedCommand(&'static str),
}

impl Violation {
    pub fn label(&self) -> &'static str {
        match self {
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::Interleaved { .. } | Self::HeaderMidMessage(_) | Self::NoPreviousHeader(_) => {
                "bad_chunking"
            }
            Self::TooManyChunkStreams(_) => "too_many_chunk_streams",
            Self::BadChunkSize(_) => "bad_chunk_size",
            Self::TooManyCommands(_) => "too_many_commands",
            Self::BadAmf(AmfError::TooDeep(_)) => "amf_too_deep",
            Self::BadAmf(_) => "bad_amf",
            Self::MalformedCommand(_) => "malformed_command",
        }
    }
}

/// Real encoders use a handful of chunk streams (2 to 8); the deserializer keeps a
/// header for each one ever used.
const MAX_CHUNK_STREAMS: usize = 64;
/// The chunk size every RTMP connection starts with.
const INITIAL_CHUNK_SIZE: u32 = 128;
/// A timestamp field of this value means a 4-byte extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// The longest chunk header: 3-byte basic header, 11-byte type 0 header, extended
/// timestamp.
const MAX_HEADER: usize = 18;

const SET_CHUNK_SIZE: u8 = 1;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const AMF3_DATA: u8 = 15;
const AMF3_COMMAND: u8 = 17;
const AMF0_DATA: u8 = 18;
const AMF0_COMMAND: u8 = 20;
const AGGREGATE: u8 = 22;

#[derive(Debug, Clone, Copy)]
struct Header {
    timestamp_field: u32,
    length: u32,
    type_id: u8,
}

struct Message {
    csid: u32,
    type_id: u8,
    length: u32,
    received: u32,
    /// The payload, kept for the non-media messages that are checked when complete.
    body: Option<Vec<u8>>,
}

pub struct ChunkGuard {
    limits: GuardLimits,
    chunk_size: u32,
    headers: HashMap<u32, Header>,
    /// Bytes of a chunk header not complete yet.
    partial: Vec<u8>,
    /// Payload bytes of the current chunk still to come.
    payload_left: u32,
    message: Option<Message>,
    commands: u32,
    /// The connection publishes: media messages may be up to the media limit.
    publishing: bool,
    connect: ConnectInfo,
}

/// What the client's `connect` command object said that rml_rtmp does not raise
/// (the publish hooks pass it on). Kept here because the guard already reassembles
/// and walks every command; decoded only after that walk found it safe to decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectInfo {
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
}

impl ConnectInfo {
    /// Longest value kept; the whole command is already bounded by
    /// `rtmp.max_command_bytes`.
    const MAX_VALUE: usize = 1024;

    fn of(command: &[u8]) -> Self {
        use rml_rtmp::rml_amf0::{self, Amf0Value};
        let values = rml_amf0::deserialize(&mut std::io::Cursor::new(command)).unwrap_or_default();
        let Some(Amf0Value::Object(properties)) = values.get(2) else {
            return Self::default();
        };
        let text = |name: &str| match properties.get(name) {
            Some(Amf0Value::Utf8String(v)) if v.len() <= Self::MAX_VALUE => Some(v.clone()),
            _ => None,
        };
        Self {
            tc_url: text("tcUrl"),
            flash_ver: text("flashVer"),
            swf_url: text("swfUrl"),
            page_url: text("pageUrl"),
        }
    }
}

impl ChunkGuard {
    pub fn new(limits: GuardLimits) -> Self {
        Self {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            headers: HashMap::new(),
            partial: Vec::with_capacity(MAX_HEADER),
            payload_left: 0,
            message: None,
            commands: 0,
            publishing: false,
            connect: ConnectInfo::default(),
        }
    }

    /// What the last `connect` command said.
    pub fn connect_info(&self) -> &ConnectInfo {
        &self.connect
    }

    /// The connection's publish was accepted: media may now be large.
    pub fn publishing(&mut self) {
        self.publishing = true;
    }

    /// Follows `input` (the next bytes after the handshake); an error means the
    /// connection must be closed without passing these bytes on.
    pub fn check(&mut self, mut input: &[u8]) -> Result<(), Violation> {
        loop {
            if input.is_empty() {
                return Ok(());
            }
            if self.payload_left > 0 {
                let n = (self.payload_left as usize).min(input.len());
                let (bytes, rest) = input.split_at(n);
                input = rest;
                self.payload_left -= n as u32;
                let message = self.message.as_mut().expect("payload belongs to a message");
                message.received += n as u32;
                if let Some(body) = &mut message.body {
                    body.extend_from_slice(bytes);
                }
                if self.payload_left == 0 && message.received == message.length {
                    let done = self.message.take().expect("checked above");
                    self.complete(done)?;
                }
                continue;
            }
            // Header bytes: take only as many as the header needs.
            loop {
                let need = self.header_len()?;
                if self.partial.len() >= need {
                    break;
                }
                let n = (need - self.partial.len()).min(input.len());
                if n == 0 {
                    return Ok(());
                }
                self.partial.extend_from_slice(&input[..n]);
                input = &input[n..];
            }
            self.chunk_header()?;
        }
    }

    /// The length of the chunk header being read, as far as its bytes so far tell.
    fn header_len(&self) -> Result<usize, Violation> {
        let p = &self.partial;
        let Some(&first) = p.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if p.len() < basic {
            return Ok(basic);
        }
        let fmt = first >> 6;
        let message_header = [11, 7, 3, 0][fmt as usize];
        let fixed = basic + message_header;
        if p.len() < fixed {
            return Ok(fixed);
        }
        let timestamp_field = if fmt == 3 {
            let csid = csid(p);
            self.headers
                .get(&csid)
                .ok_or(Violation::NoPreviousHeader(csid))?
                .timestamp_field
        } else {
            u24(&p[basic..])
        };
        Ok(if timestamp_field >= EXTENDED_TIMESTAMP {
            fixed + 4
        } else {
            fixed
        })
    }

    /// Acts on a complete chunk header in `partial`.
    fn chunk_header(&mut self) -> Result<(), Violation> {
        let p = std::mem::take(&mut self.partial);
        let fmt = p[0] >> 6;
        let csid = csid(&p);
        let basic = match p[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let previous = self.headers.get(&csid).copied();
        let header = match (fmt, previous) {
            (0, _) => Header {
                timestamp_field: u24(&p[basic..]),
                length: u24(&p[basic + 3..]),
                type_id: p[basic + 6],
            },
            (_, None) => return Err(Violation::NoPreviousHeader(csid)),
            (1, Some(_)) => Header {
                timestamp_field: u24(&p[basic..]),
                length: u24(&p[basic + 3..]),
                type_id: p[basic + 6],
            },
            (2, Some(prev)) => Header {
                timestamp_field: u24(&p[basic..]),
                ..prev
            },
            (_, Some(prev)) => prev,
        };
        self.partial = p;
        self.partial.clear();

        if let Some(open) = &self.message {
            if open.csid != csid {
                return Err(Violation::Interleaved {
                    csid,
                    open: open.csid,
                });
            }
            if fmt != 3 {
                return Err(Violation::HeaderMidMessage(csid));
            }
            self.payload_left = (open.length - open.received).min(self.chunk_size);
            return Ok(());
        }

        if previous.is_none() && self.headers.len() >= MAX_CHUNK_STREAMS {
            return Err(Violation::TooManyChunkStreams(MAX_CHUNK_STREAMS));
        }
        self.headers.insert(csid, header);
        let media = matches!(header.type_id, AUDIO | VIDEO | AGGREGATE);
        let limit = if media && self.publishing {
            self.limits.max_media_message
        } else {
            self.limits.max_command_message
        };
        if header.length > limit {
            return Err(Violation::MessageTooLarge {
                type_id: header.type_id,
                length: header.length,
                limit,
            });
        }
        let message = Message {
            csid,
            type_id: header.type_id,
            length: header.length,
            received: 0,
            body: (!media).then(|| Vec::with_capacity(header.length as usize)),
        };
        if header.length == 0 {
            return self.complete(message);
        }
        self.payload_left = header.length.min(self.chunk_size);
        self.message = Some(message);
        Ok(())
    }

    fn complete(&mut self, message: Message) -> Result<(), Violation> {
        let Some(body) = message.body else {
            return Ok(());
        };
        match message.type_id {
            SET_CHUNK_SIZE => {
                let size = body
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(Violation::MalformedCommand("Set Chunk Size message"))?;
                if size == 0 || size > 0x7FFF_FFFF {
                    return Err(Violation::BadChunkSize(size.into()));
                }
                self.chunk_size = size;
            }
            AMF0_DATA | AMF3_DATA => {
                let values = amf_check::summarize(&body, self.limits.max_amf_depth)?;
                // rml_rtmp reads the two values after `@setDataFrame` unchecked.
                if values.first_string.as_deref() == Some("@setDataFrame") && values.values < 3 {
                    return Err(Violation::MalformedCommand(
                        "@setDataFrame without a name and a value",
                    ));
                }
            }
            AMF0_COMMAND | AMF3_COMMAND => {
                self.commands += 1;
                if self.commands > self.limits.max_commands {
                    return Err(Violation::TooManyCommands(self.limits.max_commands));
                }
                // rml_rtmp skips the leading zero byte of an AMF3-flagged command.
                let amf = match (message.type_id, body.first()) {
                    (AMF3_COMMAND, Some(0)) => &body[1..],
                    _ => &body[..],
                };
                let values = amf_check::summarize(amf, self.limits.max_amf_depth)?;
                let Some(name) = values.first_string else {
                    return Err(Violation::MalformedCommand("command without a name"));
                };
                // Name, transaction id and command object, then the arguments
                // rml_rtmp takes without checking they are there.
                let needed = match name.as_str() {
                    "publish" => 5, // stream key, publish type
                    "play" => 4,    // stream name
                    _ => 3,
                };
                if values.values < needed {
                    return Err(Violation::MalformedCommand(
                        "command without its required arguments",
                    ));
                }
                if name == "connect" {
                    self.connect = ConnectInfo::of(amf);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The chunk stream id of a basic header whose bytes are all present.
fn csid(p: &[u8]) -> u32 {
    match p[0] & 0x3f {
        0 => p[1] as u32 + 64,
        1 => p[2] as u32 * 256 + p[1] as u32 + 64,
        id => id as u32,
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    use super::*;

    fn limits() -> GuardLimits {
        GuardLimits {
            max_media_message: 1 << 20,
            max_command_message: 64 * 1024,
            max_commands: 20,
            max_amf_depth: 16,
        }
    }

    /// Chunks as rml_rtmp's own serializer writes them (the format real clients use).
    fn chunks(serializer: &mut ChunkSerializer, type_id: u8, ts: u32, data: &[u8]) -> Vec<u8> {
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            message_stream_id: 1,
            type_id,
            data: Bytes::copy_from_slice(data),
        };
        serializer.serialize(&payload, false, false).unwrap().bytes
    }

    fn amf(values: Vec<rml_rtmp::rml_amf0::Amf0Value>) -> Vec<u8> {
        rml_rtmp::rml_amf0::serialize(&values).unwrap()
    }

    fn command(name: &str, args: Vec<rml_rtmp::rml_amf0::Amf0Value>) -> Vec<u8> {
        use rml_rtmp::rml_amf0::Amf0Value::*;
        let mut v = vec![Utf8String(name.into()), Number(1.0), Null];
        v.extend(args);
        amf(v)
    }

    #[test]
    fn the_connect_objects_tc_url_and_flash_ver_are_kept() {
        use rml_rtmp::rml_amf0::Amf0Value::*;
        let object = Object(HashMap::from([
            ("app".into(), Utf8String("live".into())),
            ("tcUrl".into(), Utf8String("rtmp://host/live".into())),
            ("flashVer".into(), Utf8String("FMLE/3.0".into())),
            (
                "pageUrl".into(),
                Utf8String("https://example.com/studio".into()),
            ),
        ]));
        let body = amf(vec![Utf8String("connect".into()), Number(1.0), object]);
        let mut guard = ChunkGuard::new(limits());
        assert_eq!(guard.connect_info(), &ConnectInfo::default());
        let bytes = chunks(&mut ChunkSerializer::new(), AMF0_COMMAND, 0, &body);
        guard.check(&bytes).unwrap();
        let expected = ConnectInfo {
            tc_url: Some("rtmp://host/live".into()),
            flash_ver: Some("FMLE/3.0".into()),
            swf_url: None,
            page_url: Some("https://example.com/studio".into()),
        };
        assert_eq!(guard.connect_info(), &expected);
    }

    #[test]
    fn a_real_session_passes_byte_by_byte_and_at_once() {
        use rml_rtmp::rml_amf0::Amf0Value::*;
        let mut s = ChunkSerializer::new();
        let mut stream = Vec::new();
        stream.extend(chunks(&mut s, AMF0_COMMAND, 0, &command("connect", vec![])));
        // The serializer writes the Set Chunk Size message itself.
        stream.extend(
            s.set_max_chunk_size(4096, RtmpTimestamp::new(0))
                .unwrap()
                .bytes,
        );
        stream.extend(chunks(
            &mut s,
            AMF0_COMMAND,
            0,
            &command(
                "publish",
                vec![Utf8String("key".into()), Utf8String("live".into())],
            ),
        ));
        // Timestamps past 2^24 ms use extended timestamps on every chunk.
        for (i, ts) in [0u32, 40, 0x0100_0000, 0x0100_0028].into_iter().enumerate() {
            let frame = vec![i as u8; 10_000];
            stream.extend(chunks(&mut s, VIDEO, ts, &frame));
            stream.extend(chunks(&mut s, AUDIO, ts, &[0xAF, 1, 2, 3]));
        }
        let mut whole = ChunkGuard::new(limits());
        assert_eq!(whole.check(&stream), Ok(()));
        assert_eq!(whole.chunk_size, 4096);
        assert!(whole.message.is_none() && whole.payload_left == 0);
        let mut bytewise = ChunkGuard::new(limits());
        for b in &stream {
            assert_eq!(bytewise.check(std::slice::from_ref(b)), Ok(()));
        }
        assert!(bytewise.message.is_none() && bytewise.partial.is_empty());
    }

    fn full_header(csid: u8, type_id: u8, length: u32) -> Vec<u8> {
        let mut h = vec![csid, 0, 0, 0];
        h.extend_from_slice(&length.to_be_bytes()[1..]);
        h.push(type_id);
        h.extend_from_slice(&[1, 0, 0, 0]);
        h
    }

    #[test]
    fn oversized_messages_are_refused_at_their_header() {
        let mut g = ChunkGuard::new(limits());
        assert_eq!(
            g.check(&full_header(3, AMF0_COMMAND, 2_000_000)),
            Err(Violation::MessageTooLarge {
                type_id: AMF0_COMMAND,
                length: 2_000_000,
                limit: 64 * 1024
            })
        );
        // Media is held to the command limit until the connection publishes.
        let mut g = ChunkGuard::new(limits());
        assert!(g.check(&full_header(4, VIDEO, 1 << 20)).is_err());
        let mut g = ChunkGuard::new(limits());
        g.publishing();
        assert!(g.check(&full_header(4, VIDEO, 1 << 20)).is_ok());
        let mut g = ChunkGuard::new(limits());
        g.publishing();
        assert!(g.check(&full_header(4, VIDEO, (1 << 20) + 1)).is_err());
    }

    #[test]
    fn a_shorter_length_mid_message_and_interleaving_are_refused() {
        let mut g = ChunkGuard::new(limits());
        let mut input = full_header(4, VIDEO, 1000);
        input.extend([0u8; 128]);
        // Type 1 header re-declaring 10 bytes on the same chunk stream.
        input.extend([0x44, 0, 0, 0, 0, 0, 10, VIDEO]);
        assert_eq!(g.check(&input), Err(Violation::HeaderMidMessage(4)));

        let mut g = ChunkGuard::new(limits());
        let mut input = full_header(4, VIDEO, 1000);
        input.extend([0u8; 128]);
        input.extend(full_header(6, AUDIO, 10));
        assert_eq!(
            g.check(&input),
            Err(Violation::Interleaved { csid: 6, open: 4 })
        );
    }

    #[test]
    fn nested_amf_and_crashing_commands_are_refused() {
        let mut g = ChunkGuard::new(GuardLimits {
            max_command_message: 4 << 20,
            ..limits()
        });
        let nested = [0x0a, 0, 0, 0, 1].repeat(400_000);
        let mut s = ChunkSerializer::new();
        assert_eq!(
            g.check(&chunks(&mut s, AMF0_DATA, 0, &nested)),
            Err(Violation::BadAmf(AmfError::TooDeep(16)))
        );

        use rml_rtmp::rml_amf0::Amf0Value::*;
        for (type_id, body) in [
            (AMF0_DATA, amf(vec![Utf8String("@setDataFrame".into())])),
            (
                AMF0_DATA,
                amf(vec![
                    Utf8String("@setDataFrame".into()),
                    Utf8String("onMetaData".into()),
                ]),
            ),
            (AMF0_COMMAND, amf(vec![Utf8String("connect".into())])),
            (
                AMF0_COMMAND,
                command("publish", vec![Utf8String("k".into())]),
            ),
            (AMF0_COMMAND, command("play", vec![])),
            (AMF0_COMMAND, amf(vec![Number(1.0), Number(1.0), Null])),
        ] {
            let mut g = ChunkGuard::new(limits());
            let mut s = ChunkSerializer::new();
            assert!(
                matches!(
                    g.check(&chunks(&mut s, type_id, 0, &body)),
                    Err(Violation::MalformedCommand(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn commands_and_chunk_streams_are_counted() {
        let mut g = ChunkGuard::new(limits());
        let mut s = ChunkSerializer::new();
        let create = command("createStream", vec![]);
        for _ in 0..20 {
            assert_eq!(g.check(&chunks(&mut s, AMF0_COMMAND, 0, &create)), Ok(()));
        }
        assert_eq!(
            g.check(&chunks(&mut s, AMF0_COMMAND, 0, &create)),
            Err(Violation::TooManyCommands(20))
        );

        let mut g = ChunkGuard::new(limits());
        let mut input = Vec::new();
        for csid in 0..=MAX_CHUNK_STREAMS as u32 {
            // Two-byte basic headers: chunk streams 64 and up.
            input.extend([0, csid as u8, 0, 0, 0, 0, 0, 1, AUDIO, 1, 0, 0, 0, 0xAF]);
        }
        assert_eq!(
            g.check(&input),
            Err(Violation::TooManyChunkStreams(MAX_CHUNK_STREAMS))
        );
    }

    #[test]
    fn chunk_size_zero_and_compressed_headers_without_a_first_are_refused() {
        let mut g = ChunkGuard::new(limits());
        let mut input = full_header(2, SET_CHUNK_SIZE, 4);
        input.extend(0u32.to_be_bytes());
        assert_eq!(g.check(&input), Err(Violation::BadChunkSize(0)));
        let mut g = ChunkGuard::new(limits());
        assert_eq!(g.check(&[0xC5]), Err(Violation::NoPreviousHeader(5)));
    }
}
