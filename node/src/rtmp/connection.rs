//! One RTMP connection: handshake, connect, publish, media.
//!
//! The socket is read by this task only; rml_rtmp does the protocol work
//! (chunking, extended timestamps, chunk-size changes). Media goes to the
//! stream's ingest actor, one bounded-pipeline credit per message, so a slow
//! pipeline stops the reads here and TCP pushes back on the publisher.
//!
//! Every byte after the handshake passes [`ChunkGuard`] before rml_rtmp sees it
//! (why: `guard.rs`), and every write has a deadline, so no client can crash the
//! process, grow its memory or hold its task by not reading.
//!
//! The stream key is secret: it is never logged; the span carries the stream id
//! once the registry has resolved it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::ActorRef;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::guard::{ChunkGuard, GuardLimits, Violation};
use super::read_ticks::ReadTicks;
use crate::metrics::ReasonLabel;
use crate::stream::context::NodeContext;
use crate::stream::ingest::IngestMsg;
use crate::stream::publish::{self as stream, PublishRequest};
use crate::stream::registry::PublishDenied;
use crate::stream::requests::NodeMsg;
use crate::stream::supervisor::PublisherBinding;
use castmesh_media::{TrackKind, aggregate, flv};

const READ_BUFFER: usize = 64 * 1024;

/// The NetStream status code a refused publish is answered with.
fn status_code(denied: &PublishDenied) -> &'static str {
    match denied {
        PublishDenied::UnknownKey
        | PublishDenied::NameTaken
        | PublishDenied::InvalidName(_)
        | PublishDenied::Closed { .. }
        | PublishDenied::Stopped(_)
        | PublishDenied::Superseded(_)
        | PublishDenied::AlreadyPublishing => "NetStream.Publish.BadName",
        PublishDenied::TooManyRefusals { .. } | PublishDenied::HookRefused(_) => {
            "NetStream.Publish.Unauthorized"
        }
        PublishDenied::NodeFull(_) => "NetStream.Publish.Rejected",
        PublishDenied::TooManyStreams { .. }
        | PublishDenied::ClusterUnavailable
        | PublishDenied::Contended
        | PublishDenied::Internal
        | PublishDenied::HookUnavailable
        | PublishDenied::AttachTimeout => "NetStream.Publish.Failed",
    }
}

/// Why a connection ended; the label is the metric's reason.
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("publisher finished the stream")]
    Finished,
    #[error("handshake not completed within {}", humantime::format_duration(*.0))]
    HandshakeTimeout(Duration),
    #[error("publishing not started within {}", humantime::format_duration(*.0))]
    PublishTimeout(Duration),
    #[error("connection closed during the handshake")]
    HandshakeIncomplete,
    #[error("nothing received for {}", humantime::format_duration(*.0))]
    Idle(Duration),
    #[error("malformed RTMP: {0}")]
    Malformed(String),
    #[error("refused input: {0}")]
    Violation(#[from] Violation),
    #[error("the client did not take a write within {}", humantime::format_duration(*.0))]
    WriteTimeout(Duration),
    #[error("a second connect on one connection")]
    SecondConnect,
    #[error("refused: too many refused publish attempts from this address")]
    FailedPublishLimit,
    #[error("refused: {0}")]
    Refused(String),
    #[error("closed by the server: {0}")]
    Kicked(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Closed {
    fn label(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::Finished => "finished",
            Self::HandshakeTimeout(_) => "handshake_timeout",
            Self::PublishTimeout(_) => "publish_timeout",
            Self::HandshakeIncomplete => "handshake_incomplete",
            Self::Idle(_) => "idle_timeout",
            Self::Malformed(_) => "malformed",
            Self::Violation(v) => v.label(),
            Self::WriteTimeout(_) => "write_timeout",
            Self::SecondConnect => "second_connect",
            Self::FailedPublishLimit => "failed_publish_limit",
            Self::Refused(_) => "refused",
            Self::Kicked(_) => "kicked",
            Self::Io(_) => "io_error",
        }
    }

    fn is_normal(&self) -> bool {
        matches!(self, Self::PeerClosed | Self::Finished | Self::Kicked(_))
    }
}

/// Serves one connection from `peer` (the client: behind a trusted proxy, the address
/// its PROXY header named); `early` is what the client sent that was read already.
pub async fn serve<S>(
    socket: S,
    peer: SocketAddr,
    early: Vec<u8>,
    ctx: Arc<NodeContext>,
    node: ActorRef<NodeMsg>,
    ticks: ReadTicks,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client_id = ctx.next_rtmp_client();
    let span =
        tracing::info_span!("rtmp", client = client_id, %peer, stream = tracing::field::Empty);
    let closing_ctx = ctx.clone();
    async move {
        tracing::debug!("connection accepted");
        ctx.metrics.rtmp_connections.inc();
        let rtmp = &ctx.config.rtmp;
        let guard = ChunkGuard::new(GuardLimits {
            max_media_message: rtmp.max_pending_bytes,
            max_command_message: rtmp.max_command_bytes,
            max_commands: rtmp.max_commands,
            max_amf_depth: rtmp.max_amf_depth,
        });
        let mut conn = Connection {
            socket,
            peer,
            client_id,
            guard,
            connected: false,
            ctx,
            node,
            buf: vec![0; READ_BUFFER],
            ticks,
            early,
            session: None,
            binding: None,
            kicked: None,
        };
        let closed = conn.run().await;
        drop(conn);
        if closed.is_normal() {
            tracing::info!(reason = %closed, "connection closed");
        } else {
            tracing::warn!(reason = %closed, "connection closed");
        }
        closing_ctx
            .metrics
            .rtmp_closed
            .get_or_create(&ReasonLabel {
                reason: closed.label(),
            })
            .inc();
    }
    .instrument(span)
    .await;
}

struct Connection<S> {
    socket: S,
    peer: SocketAddr,
    /// This connection's number on the node.
    client_id: u64,
    guard: ChunkGuard,
    /// The client's `connect` was accepted (a second one is refused).
    connected: bool,
    ctx: Arc<NodeContext>,
    node: ActorRef<NodeMsg>,
    buf: Vec<u8>,
    /// When a publisher's next read may go (`rtmp.read_interval`).
    ticks: ReadTicks,
    /// Handshake bytes read before the connection was served (after a PROXY header).
    early: Vec<u8>,
    session: Option<ServerSession>,
    binding: Option<PublisherBinding>,
    /// Resolves when the stream wants this publisher gone (takeover, bad media).
    kicked: Option<oneshot::Receiver<String>>,
}

/// Runs however the connection ends, a panic included, so a stream never stays
/// attached to a connection that is gone.
impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        if let Some(binding) = self.binding.take() {
            // Queued behind the last frames, so nothing the publisher sent is lost.
            let _ = binding.ingest.send_message(IngestMsg::End);
        }
        self.ctx.metrics.rtmp_connections.dec();
    }
}

fn malformed(e: impl std::fmt::Display) -> Closed {
    Closed::Malformed(e.to_string())
}

async fn kicked(rx: &mut Option<oneshot::Receiver<String>>) -> Closed {
    match rx {
        Some(rx) => Closed::Kicked(
            rx.await
                .unwrap_or_else(|_| "the stream's pipeline stopped".into()),
        ),
        None => std::future::pending().await,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    async fn run(&mut self) -> Closed {
        match self.serve().await {
            Ok(()) => Closed::PeerClosed,
            Err(closed) => closed,
        }
    }

    async fn serve(&mut self) -> Result<(), Closed> {
        let limit = self.ctx.config.rtmp.handshake_timeout;
        let leftover = tokio::time::timeout(limit, self.handshake())
            .await
            .map_err(|_| Closed::HandshakeTimeout(limit))??;
        let (session, results) =
            ServerSession::new(ServerSessionConfig::new()).map_err(malformed)?;
        self.session = Some(session);
        self.process(results).await?;
        self.input(&leftover).await?;
        let idle = self.ctx.config.rtmp.idle_timeout;
        let publish_within = self.ctx.config.rtmp.publish_timeout;
        // Connections that never publish must not hold a connection slot for long.
        let publish_deadline = tokio::time::Instant::now() + publish_within;
        // A read that filled the buffer left more behind: the next one goes at once.
        let mut filled = false;
        loop {
            // A publisher's next read waits for the node's next read tick.
            let tick = match self.binding {
                Some(_) if !filled => self.ticks.next_tick(),
                _ => None,
            };
            let limit = if self.binding.is_some() {
                idle
            } else {
                idle.min(publish_deadline.saturating_duration_since(tokio::time::Instant::now()))
            };
            let (socket, buf) = (&mut self.socket, &mut self.buf);
            let paced_read = async move {
                if let Some(tick) = tick {
                    tokio::time::sleep_until(tick).await;
                }
                tokio::time::timeout(limit, socket.read(buf)).await
            };
            let read = tokio::select! {
                biased;
                closed = kicked(&mut self.kicked) => return Err(closed),
                read = paced_read => read,
            };
            let n = read.map_err(|_| {
                if self.binding.is_none() && tokio::time::Instant::now() >= publish_deadline {
                    Closed::PublishTimeout(publish_within)
                } else {
                    Closed::Idle(idle)
                }
            })??;
            if n == 0 {
                return Ok(());
            }
            filled = n == self.buf.len();
            // Taken out and put back so the session can borrow it without a copy.
            let buf = std::mem::take(&mut self.buf);
            let result = self.input(&buf[..n]).await;
            self.buf = buf;
            result?;
        }
    }

    async fn handshake(&mut self) -> Result<Vec<u8>, Closed> {
        let mut handshake = Handshake::new(PeerType::Server);
        let mut early = std::mem::take(&mut self.early);
        loop {
            let processed = if early.is_empty() {
                let n = self.socket.read(&mut self.buf).await?;
                if n == 0 {
                    return Err(Closed::HandshakeIncomplete);
                }
                handshake.process_bytes(&self.buf[..n])
            } else {
                handshake.process_bytes(&std::mem::take(&mut early))
            };
            match processed.map_err(|e| Closed::Malformed(format!("bad handshake: {e}")))? {
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

    /// Writes all of `bytes`, or fails once the client has not taken them in time.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        let limit = self.ctx.config.rtmp.write_timeout;
        tokio::time::timeout(limit, self.socket.write_all(bytes))
            .await
            .map_err(|_| Closed::WriteTimeout(limit))?
            .map_err(Closed::Io)
    }

    fn session(&mut self) -> &mut ServerSession {
        self.session
            .as_mut()
            .expect("session exists after the handshake")
    }

    async fn input(&mut self, data: &[u8]) -> Result<(), Closed> {
        if data.is_empty() {
            return Ok(());
        }
        self.guard.check(data)?;
        let results = self.session().handle_input(data).map_err(malformed)?;
        self.process(results).await
    }

    /// Writes responses and acts on events, in the order the session produced them
    /// (RTMP header compression requires that order).
    async fn process(&mut self, results: Vec<ServerSessionResult>) -> Result<(), Closed> {
        let mut queue = VecDeque::from(results);
        while let Some(result) = queue.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.write(&packet.bytes).await?;
                }
                ServerSessionResult::RaisedEvent(event) => {
                    queue.extend(self.event(event).await?);
                }
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    // Aggregates carry media: only a publishing connection's are split.
                    if payload.type_id == aggregate::MESSAGE_TYPE && self.binding.is_some() {
                        self.aggregate(payload.timestamp.value, payload.data)
                            .await?;
                    } else {
                        tracing::debug!(type_id = payload.type_id, "ignoring RTMP message");
                    }
                }
            }
        }
        Ok(())
    }

    async fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        reason: &str,
    ) -> Result<Vec<ServerSessionResult>, Closed> {
        let results = self
            .session()
            .reject_request(request_id, code, reason)
            .map_err(malformed)?;
        // A rejection produces only responses; send them before closing.
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                self.write(&packet.bytes).await?;
            }
        }
        Err(Closed::Refused(reason.to_string()))
    }

    async fn event(
        &mut self,
        event: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, Closed> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if self.connected {
                    return Err(Closed::SecondConnect);
                }
                if app_name != self.ctx.config.rtmp.app {
                    // The requested name is not repeated: a misconfigured URL can put
                    // the stream key into it.
                    let reason = format!(
                        "unknown application; publish to rtmp://host/{}/STREAM_KEY",
                        self.ctx.config.rtmp.app
                    );
                    return self
                        .reject(request_id, "NetConnection.Connect.Rejected", &reason)
                        .await;
                }
                self.connected = true;
                self.session().accept_request(request_id).map_err(malformed)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish(request_id, app_name, stream_key).await,
            ServerSessionEvent::PublishStreamFinished { .. } => Err(Closed::Finished),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.forward(TrackKind::Audio, timestamp.value, data)
                    .await?;
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.forward(TrackKind::Video, timestamp.value, data)
                    .await?;
                Ok(Vec::new())
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                tracing::debug!(
                    width = ?metadata.video_width,
                    height = ?metadata.video_height,
                    video_codec = ?metadata.video_codec_id,
                    audio_codec = ?metadata.audio_codec_id,
                    "publisher metadata"
                );
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "castmesh plays streams over HLS: http://host:8080/hls/STREAM_ID/index.m3u8",
                )
                .await
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn publish(
        &mut self,
        request_id: u32,
        app: String,
        name: String,
    ) -> Result<Vec<ServerSessionResult>, Closed> {
        let published = if self.binding.is_some() {
            Err(PublishDenied::AlreadyPublishing)
        } else {
            let (name, query) = PublishRequest::split_name(name);
            let connect = self.guard.connect_info().clone();
            let request = PublishRequest {
                app,
                name,
                query,
                tc_url: connect.tc_url,
                flash_ver: connect.flash_ver,
                swf_url: connect.swf_url,
                page_url: connect.page_url,
                peer: self.peer,
                client_id: self.client_id,
            };
            stream::publish(&self.ctx, &self.node, &request).await
        };
        match published {
            Ok(publisher) => {
                self.binding = Some(publisher.binding);
                self.kicked = Some(publisher.kicked);
                self.guard.publishing();
                tracing::info!("publishing");
                self.session().accept_request(request_id).map_err(malformed)
            }
            Err(denied) => {
                let refused = self
                    .reject(request_id, status_code(&denied), &denied.to_string())
                    .await;
                match (refused, denied) {
                    (Err(Closed::Refused(_)), PublishDenied::TooManyRefusals { .. }) => {
                        Err(Closed::FailedPublishLimit)
                    }
                    (refused, _) => refused,
                }
            }
        }
    }

    /// Hands one media message to ingest, waiting for a pipeline credit.
    async fn forward(
        &mut self,
        kind: TrackKind,
        timestamp_ms: u32,
        body: Bytes,
    ) -> Result<(), Closed> {
        let Some(binding) = &self.binding else {
            return Ok(()); // rml_rtmp only raises media for publishing streams.
        };
        let limit = self.ctx.config.rtmp.max_pending_bytes;
        let size = u32::try_from(body.len()).unwrap_or(u32::MAX).max(1);
        if size > limit {
            return Err(Closed::Malformed(format!(
                "a {size}-byte media message exceeds rtmp.max_pending_bytes ({limit})"
            )));
        }
        let permit = tokio::select! {
            biased;
            closed = kicked(&mut self.kicked) => return Err(closed),
            permit = binding.credits.clone().acquire_many_owned(size) => permit
                .map_err(|_| Closed::Kicked("the stream's pipeline stopped".into()))?,
        };
        binding
            .ingest
            .send_message(IngestMsg::Media {
                kind,
                timestamp_ms,
                body,
                permit,
            })
            .map_err(|_| Closed::Kicked("the stream's pipeline stopped".into()))
    }

    async fn aggregate(&mut self, timestamp_ms: u32, body: Bytes) -> Result<(), Closed> {
        let max_tags = self.ctx.config.rtmp.max_aggregate_tags;
        let messages = aggregate::split(timestamp_ms, body, max_tags)
            .map_err(|e| Closed::Malformed(e.to_string()))?;
        for m in messages {
            match m.tag_type {
                flv::AUDIO_TAG => {
                    self.forward(TrackKind::Audio, m.timestamp_ms, m.body)
                        .await?
                }
                flv::VIDEO_TAG => {
                    self.forward(TrackKind::Video, m.timestamp_ms, m.body)
                        .await?
                }
                _ => {}
            }
        }
        Ok(())
    }
}
