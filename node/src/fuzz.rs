//! Entry points of the fuzz targets (`node/fuzz`, `make fuzz`) and of their
//! regression replay (`node/tests/fuzz_regressions.rs`, in `make test` on stable).
//!
//! Each takes arbitrary bytes, drives the same code a stranger's (or a peer's) bytes
//! reach, and must return without panicking, aborting or growing without bound,
//! whatever the input. They live in the library so the fuzzer and the replay run
//! exactly the same thing.

use std::sync::LazyLock;
use std::time::SystemTime;

use bytes::Bytes;
use castmesh_proto::mesh::v1 as pb;
use prost::Message as _;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use crate::client_addr::{self, Networks};
use crate::config::{Config, RtmpConfig};
use crate::mesh::wire;
use crate::rtmp::guard::{ChunkGuard, GuardLimits};
use castmesh_media::codecs::Codecs;
use castmesh_media::hls::packager::{CutRules, Packager};
use castmesh_media::hls::window::{Position, Window, WindowConfig};
use castmesh_media::hls::{blocking, playlist, replica};
use castmesh_media::{MediaEvent, aggregate, flv};

/// The node's RTMP limits, read once: the targets run millions of times.
static RTMP_DEFAULTS: LazyLock<RtmpConfig> = LazyLock::new(RtmpConfig::default);

/// The RTMP connection input through the real session code: the first byte picks the
/// mode and how the rest is cut into reads. Even: the rest is a client's handshake.
/// Odd: the rest is what a client sends once the handshake is done (a completed
/// handshake leaves the session nothing: see the replay test), checked by
/// [`ChunkGuard`] (default limits), then handled by rml_rtmp's session, which accepts
/// `connect` and `publish` as the node would for a good key; media is parsed as
/// ingest does, aggregates are split as the connection does.
pub fn rtmp_session(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let reads = read_sizes(mode);
    if mode & 1 == 0 {
        let mut server = Handshake::new(PeerType::Server);
        for piece in input.chunks(reads) {
            match server.process_bytes(piece) {
                Ok(HandshakeProcessResult::InProgress { .. }) => {}
                Ok(HandshakeProcessResult::Completed { .. }) | Err(_) => return,
            }
        }
        return;
    }
    let rtmp = &*RTMP_DEFAULTS;
    let mut guard = ChunkGuard::new(GuardLimits {
        max_media_message: rtmp.max_pending_bytes,
        max_command_message: rtmp.max_command_bytes,
        max_commands: rtmp.max_commands,
        max_amf_depth: rtmp.max_amf_depth,
    });
    let Ok((mut session, _)) = ServerSession::new(ServerSessionConfig::new()) else {
        return;
    };
    let mut media = MediaSink::default();
    for piece in input.chunks(reads) {
        if guard.check(piece).is_err() {
            return;
        }
        let Ok(results) = session.handle_input(piece) else {
            return;
        };
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(result) = queue.pop_front() {
            match result {
                ServerSessionResult::RaisedEvent(event) => match event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                        let publish =
                            matches!(event, ServerSessionEvent::PublishStreamRequested { .. });
                        let Ok(more) = session.accept_request(request_id) else {
                            return;
                        };
                        if publish {
                            guard.publishing();
                        }
                        queue.extend(more);
                    }
                    ServerSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => media.tag(flv::AUDIO_TAG, timestamp.value, data),
                    ServerSessionEvent::VideoDataReceived {
                        data, timestamp, ..
                    } => media.tag(flv::VIDEO_TAG, timestamp.value, data),
                    _ => {}
                },
                ServerSessionResult::UnhandleableMessageReceived(payload)
                    if payload.type_id == aggregate::MESSAGE_TYPE =>
                {
                    media.aggregate(payload.timestamp.value, payload.data);
                }
                _ => {}
            }
        }
    }
    media.finish();
}

/// Completes a handshake between a real client (rml_rtmp's) and the server; returns
/// what the server had left over for the session.
pub fn handshake_leftover() -> Option<Vec<u8>> {
    let mut client = Handshake::new(PeerType::Client);
    let mut server = Handshake::new(PeerType::Server);
    let c0c1 = client.generate_outbound_p0_and_p1().ok()?;
    let HandshakeProcessResult::InProgress { response_bytes } = server.process_bytes(&c0c1).ok()?
    else {
        return None;
    };
    let HandshakeProcessResult::Completed { response_bytes, .. } =
        client.process_bytes(&response_bytes).ok()?
    else {
        return None;
    };
    match server.process_bytes(&response_bytes).ok()? {
        HandshakeProcessResult::Completed {
            remaining_bytes, ..
        } => Some(remaining_bytes),
        HandshakeProcessResult::InProgress { .. } => None,
    }
}

/// How a connection's input is cut into reads, by the mode byte's upper bits: a
/// client's bytes arrive in pieces of any size, and the guard must not care.
fn read_sizes(mode: u8) -> usize {
    [1, 7, 128, 4096][usize::from(mode >> 1) & 3]
}

/// FLV tag bodies through ingest's parsing (AVC/AAC configurations, frames) and the
/// segmenter (timeline, cutting, CMAF writing). The input is a sequence of
/// `[tag type][timestamp: u32 BE][length: u16 BE][body]`.
pub fn flv_media(data: &[u8]) {
    let mut media = MediaSink::default();
    let mut rest = data;
    while rest.len() >= 7 {
        let tag_type = rest[0];
        let timestamp = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]]));
        rest = &rest[7..];
        let body = &rest[..len.min(rest.len())];
        rest = &rest[body.len()..];
        media.tag(tag_type, timestamp, Bytes::copy_from_slice(body));
    }
    media.finish();
}

/// An RTMP aggregate message (type 22) split as a publishing connection splits it,
/// its sub-messages parsed as media. The first four bytes are the message timestamp.
pub fn aggregate_message(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let timestamp = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let mut media = MediaSink::default();
    media.aggregate(timestamp, Bytes::copy_from_slice(&data[4..]));
    media.finish();
}

/// What ingest and the segmenter do with media tags, without actors: down to the
/// window and its rendered playlist.
struct MediaSink {
    codecs: Codecs,
    packager: Packager,
    window: Window,
}

/// The fuzz targets' window: small, so a long input also exercises retiring segments.
fn fuzz_window() -> Window {
    let config = WindowConfig {
        target_duration_s: 2,
        part_target_ms: 200,
        segments: 3,
    };
    Window::new(config, 1)
}

impl Default for MediaSink {
    fn default() -> Self {
        let rules = CutRules {
            segment_target_ms: 2000,
            segment_max_ms: 2499,
            part_target_ms: 200,
            jump_threshold_ms: 1000,
        };
        Self {
            codecs: Codecs::default(),
            packager: Packager::new(rules, 0, false),
            window: fuzz_window(),
        }
    }
}

impl MediaSink {
    fn tag(&mut self, tag_type: u8, timestamp: u32, body: Bytes) {
        let event = match tag_type {
            flv::AUDIO_TAG => flv::audio_event(timestamp, body),
            flv::VIDEO_TAG => flv::video_event(timestamp, body),
            _ => return,
        };
        let (now, w) = (SystemTime::UNIX_EPOCH, &mut self.window);
        // Errors are what a bad publisher gets: its tag is dropped, nothing else.
        let _ = match event {
            Ok(MediaEvent::VideoConfig(v)) => {
                self.codecs.video = Some(v.into());
                self.packager.set_codecs(self.codecs.clone(), now, w)
            }
            Ok(MediaEvent::AudioConfig(a)) => {
                self.codecs.audio = Some(a.into());
                self.packager.set_codecs(self.codecs.clone(), now, w)
            }
            Ok(MediaEvent::Frame(frame)) => self.packager.push(frame, now, w),
            Ok(MediaEvent::Ignored) | Err(_) => return,
        };
        w.take_events();
    }

    fn aggregate(&mut self, timestamp: u32, body: Bytes) {
        let max_tags = RTMP_DEFAULTS.max_aggregate_tags;
        if let Ok(messages) = aggregate::split(timestamp, body, max_tags) {
            for m in messages {
                self.tag(m.tag_type, m.timestamp_ms, m.body);
            }
        }
    }

    fn finish(&mut self) {
        let _ = self
            .packager
            .finish(SystemTime::UNIX_EPOCH, &mut self.window);
        self.window.end_stream();
        playlist::render(&self.window);
        playlist::render_multivariant(&self.window);
    }
}

/// An HLS request target (the input: path and query) read as `hls::serve` reads it:
/// the stream id and file name percent-decoded, the blocking-reload query (`_HLS_msn`,
/// `_HLS_part`); then the media file name parsed and the query checked against a live
/// edge.
pub fn hls_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // hyper hands the handler only request targets that parse as a URI.
    let Ok(request) = axum::http::Request::get(text).body(()) else {
        return;
    };
    let Some(asked) = crate::http::hls::Request::of(&request) else {
        return;
    };
    let _ = playlist::parse_name(&asked.file);
    if let Ok(Some(request)) = blocking::parse(asked.msn.as_deref(), asked.part.as_deref()) {
        let edge = Position {
            last_complete: Some(5),
            open_msn: 6,
            open_parts: 3,
            ended: false,
        };
        let _ = blocking::readiness(request, &edge, blocking::advance_limit_parts(200));
    }
}

/// What a mesh peer sends, as an edge takes it: frames of `[length: u16 BE][protobuf]`.
/// The first is also tried as a request; deliveries then follow as a subscription's
/// do: a `Subscribed` answer merged into the edge's window with the replay events
/// before `ReplayDone`, then live events followed one by one.
pub fn mesh_frames(data: &[u8]) {
    let mut frames = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        frames.push(frame);
    }
    if let Some(first) = frames.first() {
        let _ = pb::Request::decode(*first);
    }
    let mut window = fuzz_window();
    let mut replay = None;
    for frame in frames {
        let Ok(pb::Delivery {
            kind: Some(kind), ..
        }) = pb::Delivery::decode(frame)
        else {
            continue;
        };
        match kind {
            pb::delivery::Kind::Subscribed(s) => replay = wire::replay_from_wire(s).ok(),
            pb::delivery::Kind::Event(e) => {
                let Ok(event) = wire::event_from_wire(e) else {
                    continue;
                };
                match replay.as_mut() {
                    Some(r) => r.events.push(event),
                    None => {
                        let _ = replica::follow(&mut window, event);
                    }
                }
            }
            pb::delivery::Kind::ReplayDone(_) => {
                if let Some(r) = replay.take() {
                    replica::merge(&mut window, r);
                }
            }
            _ => {}
        }
    }
}

/// The forwarding headers of an HTTP request from a trusted proxy (every address is
/// trusted here, so every hop is read). The input is header lines `name: value`.
pub fn forwarded_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut headers = axum::http::HeaderMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
            axum::http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let everyone = Networks::try_from(vec!["0.0.0.0/0".to_string(), "::/0".to_string()])
        .expect("valid ranges");
    let _ = everyone.http_client(std::net::Ipv4Addr::LOCALHOST.into(), &headers);
}

/// The first bytes of an RTMP connection from a trusted TCP load balancer. The
/// listener splits its input at the length a complete header reports, so that length
/// must lie within the input.
pub fn proxy_header(data: &[u8]) {
    if let client_addr::ProxyHeader::Done { len, .. } = client_addr::proxy_header(data) {
        assert!(
            len <= data.len(),
            "a {len}-byte header in {} bytes",
            data.len()
        );
    }
}

/// A configuration file's text, parsed and validated as `--config` does.
pub fn config_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_text(text, std::path::Path::new("fuzz.toml"));
    }
}

/// What a restream destination's server sends, through the real push client
/// (`rtmp::push`): after a real server handshake, the rest of the input (the first
/// byte picks the size of the writes it is cut into, as in `rtmp_session`) is all the
/// server says, then it closes; what the client writes is read and dropped. The client connects and
/// publishes as it does for a destination and, once a publish is accepted, sends a
/// keyframe. Every run ends by itself: the server's end is the client's.
pub fn push_replies(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let pieces: Vec<Vec<u8>> = input.chunks(read_sizes(mode)).map(<[u8]>::to_vec).collect();
    let _ = push_against(|theirs| scripted_server(theirs, pieces));
}

/// One push (see `push_once`) against `server` on the other end of an in-memory
/// connection, on a runtime of its own; what the server returned.
fn push_against<S, F>(server: S) -> Result<F::Output, tokio::task::JoinError>
where
    S: FnOnce(tokio::io::DuplexStream) -> F,
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(server(theirs));
        push_once(ours).await;
        server.await
    })
}

/// What a real rml_rtmp server session says to the push client after the handshake,
/// accepting its connect and publish, up to the first frame: the fuzzer's starting
/// input for `push_replies` (with a mode byte first) and the replay test's.
pub fn push_replies_seed() -> Vec<u8> {
    push_against(recording_server).unwrap_or_default()
}

type ServerHalves = (
    tokio::io::ReadHalf<tokio::io::DuplexStream>,
    tokio::io::WriteHalf<tokio::io::DuplexStream>,
);

/// The server's part of a real handshake (C2 read too).
async fn server_handshake(io: tokio::io::DuplexStream) -> Option<ServerHalves> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rx, mut tx) = tokio::io::split(io);
    let mut c0c1 = vec![0u8; 1537];
    rx.read_exact(&mut c0c1).await.ok()?;
    let mut handshake = Handshake::new(PeerType::Server);
    let HandshakeProcessResult::InProgress { response_bytes } =
        handshake.process_bytes(&c0c1).ok()?
    else {
        return None;
    };
    tx.write_all(&response_bytes).await.ok()?;
    let mut c2 = vec![0u8; 1536];
    rx.read_exact(&mut c2).await.ok()?;
    Some((rx, tx))
}

/// Says `pieces` whatever the client does, then closes; drops what the client sends.
async fn scripted_server(io: tokio::io::DuplexStream, pieces: Vec<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((mut rx, mut tx)) = server_handshake(io).await else {
        return;
    };
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while rx.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    for piece in pieces {
        if tx.write_all(&piece).await.is_err() {
            break;
        }
        // The client reads each piece before the next (the runtime runs one task at a
        // time), so replies arrive as a conversation would deliver them.
        tokio::task::yield_now().await;
    }
    let _ = tx.shutdown().await;
    let _ = drain.await;
}

/// A real server session answering the client until its first frame; what it said.
async fn recording_server(io: tokio::io::DuplexStream) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut said = Vec::new();
    let Some((mut rx, mut tx)) = server_handshake(io).await else {
        return said;
    };
    let Ok((mut session, first)) = ServerSession::new(ServerSessionConfig::new()) else {
        return said;
    };
    let mut pending = std::collections::VecDeque::from(first);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut framed = false;
        while let Some(result) = pending.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(p) => {
                    said.extend_from_slice(&p.bytes);
                    if tx.write_all(&p.bytes).await.is_err() {
                        return said;
                    }
                }
                ServerSessionResult::RaisedEvent(
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. },
                ) => pending.extend(session.accept_request(request_id).unwrap_or_default()),
                ServerSessionResult::RaisedEvent(ServerSessionEvent::VideoDataReceived {
                    ..
                }) => framed = true,
                _ => {}
            }
        }
        if framed {
            let _ = tx.shutdown().await;
            return said;
        }
        match rx.read(&mut buf).await {
            Ok(n) if n > 0 => pending.extend(session.handle_input(&buf[..n]).unwrap_or_default()),
            _ => return said,
        }
    }
}

/// The push client over `io`: connect, publish and, once accepted, one keyframe.
async fn push_once(io: tokio::io::DuplexStream) {
    use prometheus_client::metrics::counter::Counter;

    use crate::rtmp::push::session::Publish;
    use crate::stream::restream::queue::FrameQueue;
    use crate::stream::restream::status::DestinationStatus;
    use crate::stream::restream::tap::{MediaTap, TapFrame};

    static METRICS: LazyLock<crate::metrics::Metrics> = LazyLock::new(crate::metrics::Metrics::new);
    let rtmp = &*RTMP_DEFAULTS;
    let limits = GuardLimits {
        max_media_message: rtmp.max_command_bytes,
        max_command_message: rtmp.max_command_bytes,
        max_commands: rtmp.max_commands,
        max_amf_depth: rtmp.max_amf_depth,
    };
    let url = castmesh_cluster::restream::RtmpUrl::parse("rtmp://destination.invalid/live")
        .expect("a valid URL");
    let opened = Publish::open(
        Box::new(io),
        &url,
        "key",
        limits,
        std::time::Duration::from_secs(1),
    );
    let Ok(mut publish) = opened.await else {
        return;
    };
    let queue = FrameQueue::new(10_000, 1 << 20, Counter::default());
    queue.push(TapFrame {
        kind: castmesh_media::TrackKind::Video,
        publisher: 0,
        timestamp_ms: 0,
        body: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
        keyframe: true,
        config: false,
    });
    let status = DestinationStatus::new(&METRICS, "fuzz", 1);
    let _ = publish
        .run(
            &queue,
            &MediaTap::default(),
            &status,
            &crate::seams::SystemClock,
        )
        .await;
}
