//! The media mesh between nodes: QUIC (quinn) with mutual TLS from the cluster CA.
//!
//! It carries a ping (identity + reachability, probed for every member), stream
//! subscriptions, through which any edge serves any stream, viewer counts, and the
//! chat rooms that stream origins hold (see docs/mesh-protocol.md).

pub mod certs;
pub mod framing;
pub mod subscription;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use castmesh_proto::mesh::v1::{
    ChatAnswer, ChatEvent, ChatFollow, ChatModerate, ChatPost, DestinationStatus,
    OriginViewerTotals, OriginViewers, Ping, Pong, Request, RestreamStatusList, RestreamStatuses,
    Subscribe, ViewerCounts, Viewers, request,
};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::metrics::{Metrics, ReasonLabel};
use crate::seams::Clock;
use castmesh_media::hls::window::Replay;
use certs::Pem;
use subscription::{Replayed, Serving, StreamSource, Subscription, SubscriptionError};
use tls::{MeshTls, peer_node};

/// How long a mesh request may take before the peer counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's QUIC endpoint: accepts peers' requests and makes its own.
pub struct Mesh {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    /// One connection per peer, reused by every request to it.
    connections: Mutex<HashMap<u64, quinn::Connection>>,
    accept: JoinHandle<()>,
}

/// What the mesh asks of this node's chat rooms (`chat::Hub` answers; see
/// `ChatFollow` in mesh.proto).
#[async_trait::async_trait]
pub trait ChatRooms: Send + Sync {
    /// Sends a stream's room to a peer on `send` until the room closes.
    async fn follow(&self, send: quinn::SendStream, request: ChatFollow);
    async fn post(&self, post: ChatPost) -> ChatAnswer;
    async fn moderate(&self, request: ChatModerate) -> ChatAnswer;
}

/// Whether a node id names a current member of the cluster (as this node's copy of
/// the Raft membership says).
pub type Members = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// What the request handlers of every connection share.
struct Shared {
    node_id: u64,
    metrics: Arc<Metrics>,
    /// Who may make requests, once the cluster member runs (nobody before): a
    /// certificate from the cluster CA is not enough, its node must be a member.
    members: OnceLock<Members>,
    /// The node's streams, once its media side runs (subscriptions are refused
    /// before). Weak: the streams' owner also holds the mesh.
    streams: OnceLock<(Weak<dyn StreamSource>, Arc<dyn Clock>)>,
    /// The node's chat rooms, once its platform runs (chat requests are refused before).
    chat: OnceLock<Weak<dyn ChatRooms>>,
}

/// The CA and node certificate from config, or, when none are configured (`--dev`), a
/// throwaway CA that only this node trusts.
pub fn load_certs(config: &Config) -> anyhow::Result<(String, Pem)> {
    let m = &config.mesh;
    if m.ca_cert.as_os_str().is_empty() {
        let ca = certs::new_ca()?;
        let node = certs::new_node(&ca, config.cluster.node_id, &[])?;
        return Ok((ca.cert, node));
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    Ok((
        read(&m.ca_cert)?,
        Pem {
            cert: read(&m.cert)?,
            key: read(&m.key)?,
        },
    ))
}

impl Mesh {
    /// Runs the endpoint on `socket` (from the network seam) and starts accepting
    /// peers. `rng_seed` drives quinn's connection ids and the like: random in
    /// production, the run's seed under simulation.
    pub fn start(
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        node_id: u64,
        ca_cert: &str,
        node: &Pem,
        metrics: Arc<Metrics>,
        rng_seed: [u8; 32],
    ) -> anyhow::Result<Mesh> {
        let tls = MeshTls::new(ca_cert, node)?;
        let mut config = quinn::EndpointConfig::default();
        config.rng_seed(Some(rng_seed));
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            config,
            Some(tls.server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .context("cannot start the QUIC mesh endpoint")?;
        endpoint.set_default_client_config(tls.client);
        let shared = Arc::new(Shared {
            node_id,
            metrics,
            members: OnceLock::new(),
            streams: OnceLock::new(),
            chat: OnceLock::new(),
        });
        let accept = tokio::spawn(accept(endpoint.clone(), shared.clone()));
        Ok(Mesh {
            endpoint,
            shared,
            connections: Mutex::new(HashMap::new()),
            accept,
        })
    }

    /// Starts answering the peers `members` admits (set once, when the cluster member
    /// runs); a peer's connection is closed as soon as it is not a member any more.
    pub fn admit(&self, members: Members) {
        let _ = self.shared.members.set(members);
    }

    /// Starts serving subscriptions to `streams` (set once, when the media side runs).
    pub fn serve_streams(&self, streams: Weak<dyn StreamSource>, clock: Arc<dyn Clock>) {
        let _ = self.shared.streams.set((streams, clock));
    }

    /// Starts answering chat requests from `rooms` (set once, when the platform runs).
    pub fn serve_chat(&self, rooms: Weak<dyn ChatRooms>) {
        let _ = self.shared.chat.set(rooms);
    }

    /// Follows `stream`'s chat room on its origin `peer` (see `ChatFollow`).
    pub async fn chat_follow(
        &self,
        addr: SocketAddr,
        peer: u64,
        stream: &str,
    ) -> anyhow::Result<ChatEvents> {
        let open = async {
            let connection = self.connect(addr, peer).await?;
            let (mut send, recv) = connection.open_bi().await?;
            let request = request::Kind::ChatFollow(ChatFollow {
                stream: stream.to_string(),
            });
            framing::write(
                &mut send,
                &Request {
                    kind: Some(request),
                },
            )
            .await?;
            send.finish()?;
            anyhow::Ok(recv)
        };
        let opened = tokio::time::timeout(REQUEST_TIMEOUT, open)
            .await
            .context("mesh request timed out")
            .and_then(|r| r);
        if opened.is_err() {
            self.forget(peer);
        }
        opened.map(|recv| ChatEvents {
            frames: framing::FrameReader::new(recv, framing::MAX_LIST_FRAME),
        })
    }

    /// A chat post or moderation (`request::Kind::ChatPost`, `ChatModerate`) for the
    /// stream's origin `peer`, answered with one `ChatAnswer`.
    pub async fn chat(
        &self,
        addr: SocketAddr,
        peer: u64,
        request: request::Kind,
    ) -> anyhow::Result<ChatAnswer> {
        self.call(addr, peer, request, framing::MAX_SMALL_FRAME)
            .await
    }

    /// Subscribes to `stream` on node `peer`: its window now, then its changes (or
    /// only the window, with `replay_only`).
    pub async fn subscribe(
        &self,
        addr: SocketAddr,
        peer: u64,
        stream: &str,
        replay_only: bool,
    ) -> Result<(Replay, Subscription), SubscriptionError> {
        let request = Subscribe {
            stream: stream.to_string(),
            replay_only,
            take_over_epoch: 0,
        };
        let (replayed, subscription) = self.start_subscription(addr, peer, request).await?;
        Ok((replayed.replay, subscription))
    }

    /// Tells node `peer` that this node holds `stream`'s origin lease of `epoch`: it
    /// stops producing the stream under an older epoch, and answers with its window
    /// (final, if it was producing). `Err(Superseded)`: it holds a lease not older.
    pub async fn take_over(
        &self,
        addr: SocketAddr,
        peer: u64,
        stream: &str,
        epoch: u64,
    ) -> Result<Replayed, SubscriptionError> {
        let request = Subscribe {
            stream: stream.to_string(),
            replay_only: true,
            take_over_epoch: epoch,
        };
        Ok(self.start_subscription(addr, peer, request).await?.0)
    }

    async fn start_subscription(
        &self,
        addr: SocketAddr,
        peer: u64,
        request: Subscribe,
    ) -> Result<(Replayed, Subscription), SubscriptionError> {
        let connection = self.connect(addr, peer).await?;
        let started = Subscription::start(&connection, request).await;
        if matches!(started, Err(SubscriptionError::Failed(_))) {
            self.forget(peer);
        }
        started
    }

    /// Viewer counts by node of `stream`, as its origin `peer` knows them.
    pub async fn viewers(
        &self,
        addr: SocketAddr,
        peer: u64,
        stream: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<u64, u64>> {
        let request = request::Kind::Viewers(Viewers {
            stream: stream.to_string(),
        });
        let counts: ViewerCounts = self
            .call(addr, peer, request, framing::MAX_SMALL_FRAME)
            .await?;
        Ok(counts.by_node.into_iter().collect())
    }

    /// What the restream destinations of `stream` are doing, on its origin `peer`.
    pub async fn restream_statuses(
        &self,
        addr: SocketAddr,
        peer: u64,
        stream: &str,
    ) -> anyhow::Result<Vec<DestinationStatus>> {
        let request = request::Kind::RestreamStatuses(RestreamStatuses {
            stream: stream.to_string(),
        });
        let list: RestreamStatusList = self
            .call(addr, peer, request, framing::MAX_LIST_FRAME)
            .await?;
        Ok(list.destinations)
    }

    /// Viewer totals across the cluster of every stream node `peer` is the origin of.
    pub async fn origin_viewers(
        &self,
        addr: SocketAddr,
        peer: u64,
    ) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let request = request::Kind::OriginViewers(OriginViewers {});
        let totals: OriginViewerTotals = self
            .call(addr, peer, request, framing::MAX_LIST_FRAME)
            .await?;
        Ok(totals.viewers.into_iter().collect())
    }

    /// Asks node `peer` at `addr` who it is; returns the id it answers with.
    pub async fn ping(&self, addr: SocketAddr, peer: u64) -> anyhow::Result<u64> {
        let pong: Pong = self
            .call(
                addr,
                peer,
                request::Kind::Ping(Ping {}),
                framing::MAX_SMALL_FRAME,
            )
            .await?;
        Ok(pong.node_id)
    }

    /// One request, one answer of at most `max_answer` bytes, within `REQUEST_TIMEOUT`.
    async fn call<A: prost::Message + Default>(
        &self,
        addr: SocketAddr,
        peer: u64,
        kind: request::Kind,
        max_answer: u32,
    ) -> anyhow::Result<A> {
        let call = async {
            let connection = self.connect(addr, peer).await?;
            let (mut send, mut recv) = connection.open_bi().await?;
            framing::write(&mut send, &Request { kind: Some(kind) }).await?;
            send.finish()?;
            framing::read(&mut recv, max_answer)
                .await?
                .context("the peer closed the stream without answering")
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .context("mesh request timed out")
            .and_then(|r| r);
        if answer.is_err() {
            // The peer may have restarted: the next request makes a new connection
            // rather than waiting out the old one's idle timeout.
            self.forget(peer);
        }
        answer
    }

    fn forget(&self, peer: u64) {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The open connection to node `peer` at `addr`, or a new one; the handshake
    /// verifies that the peer's certificate names it.
    pub async fn connect(&self, addr: SocketAddr, peer: u64) -> anyhow::Result<quinn::Connection> {
        let cached = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .filter(|c| c.close_reason().is_none() && c.remote_address() == addr)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let connecting = self.endpoint.connect(addr, &certs::node_name(peer))?;
        let connection = tokio::time::timeout(REQUEST_TIMEOUT, connecting)
            .await
            .context("QUIC handshake timed out")??;
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, connection.clone());
        Ok(connection)
    }

    pub async fn shutdown(self) {
        self.accept.abort();
        self.endpoint.close(0u32.into(), b"shutting down");
        self.endpoint.wait_idle().await;
    }
}

/// A chat room's events as its origin sends them.
pub struct ChatEvents {
    // A history of `chat.history` (≤ 200) lines of ≤ 1,000 characters fits.
    frames: framing::FrameReader,
}

impl ChatEvents {
    /// The next event; `None` when the origin closed the room. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<ChatEvent>> {
        self.frames.next().await
    }
}

async fn accept(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let metrics = &shared.metrics;
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    // Includes peers without a certificate from the cluster CA.
                    metrics.mesh_handshakes_refused.inc();
                    tracing::warn!(error = %e, "mesh handshake refused");
                    return;
                }
            };
            let Some(peer) = peer_node(&connection) else {
                metrics.mesh_handshakes_refused.inc();
                tracing::warn!(remote = %connection.remote_address(), "mesh peer certificate names no node");
                connection.close(1u32.into(), b"certificate names no node");
                return;
            };
            if !shared.admits(peer, &connection) {
                return;
            }
            let span = tracing::info_span!("mesh", peer);
            let served = serve(connection, peer, shared.clone());
            let _ = tracing::Instrument::instrument(served, span).await;
        });
    }
}

/// QUIC connection close code: the peer's node is not a member of the cluster.
const CLOSE_NOT_MEMBER: u32 = 3;

impl Shared {
    /// Whether node `peer` may make requests; if not, its connection is closed.
    fn admits(&self, peer: u64, connection: &quinn::Connection) -> bool {
        if self.members.get().is_some_and(|m| m(peer)) {
            return true;
        }
        refused(&self.metrics, "not_member");
        tracing::warn!(peer, remote = %connection.remote_address(), "mesh peer is not a cluster member; closing");
        connection.close(CLOSE_NOT_MEMBER.into(), b"not a cluster member");
        false
    }

    /// The node's chat, or (before the platform runs) the request's stream reset.
    fn chat_or_reset(&self, send: &mut quinn::SendStream) -> Option<Arc<dyn ChatRooms>> {
        let hub = self.chat.get().and_then(Weak::upgrade);
        if hub.is_none() {
            let _ = send.reset(RESET_BAD_REQUEST.into());
        }
        hub
    }

    /// What serving a stream request needs, once the media side runs.
    fn serving(&self, peer: u64) -> Option<Serving> {
        let (streams, clock) = self.streams.get()?;
        Some(Serving {
            source: streams.upgrade()?,
            clock: clock.clone(),
            metrics: self.metrics.clone(),
            peer,
        })
    }
}

/// QUIC stream reset code: the request was not understood or cannot be served.
const RESET_BAD_REQUEST: u32 = 2;

/// Answers one peer's requests, one bidirectional stream each.
async fn serve(
    connection: quinn::Connection,
    peer: u64,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    loop {
        let (send, recv) = connection.accept_bi().await?;
        // Membership is checked per request: a node removed from the cluster loses
        // its open connection at its next request.
        if !shared.admits(peer, &connection) {
            return Ok(());
        }
        let task = answer(send, recv, peer, shared.clone());
        tokio::spawn(tracing::Instrument::in_current_span(task));
    }
}

fn refused(metrics: &Metrics, reason: &'static str) {
    metrics
        .mesh_requests_refused
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Answers one request. The request itself, and a one-shot answer, must go through
/// within [`REQUEST_TIMEOUT`]; a subscription then lives as long as both sides want.
async fn answer(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: u64,
    shared: Arc<Shared>,
) {
    let read = framing::read::<Request>(&mut recv, framing::MAX_SMALL_FRAME);
    let kind = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(Some(Request { kind: Some(kind) }))) => kind,
        Ok(Ok(_)) | Ok(Err(_)) => {
            refused(&shared.metrics, "bad_request");
            let _ = send.reset(RESET_BAD_REQUEST.into());
            return;
        }
        Err(_) => {
            refused(&shared.metrics, "request_timeout");
            let _ = send.reset(RESET_BAD_REQUEST.into());
            return;
        }
    };
    match kind {
        request::Kind::Ping(Ping {}) => {
            let pong = Pong {
                node_id: shared.node_id,
            };
            reply(send, &pong).await;
        }
        request::Kind::Viewers(Viewers { stream }) => {
            let Some(serving) = shared.serving(peer) else {
                let _ = send.reset(RESET_BAD_REQUEST.into());
                return;
            };
            let by_node = serving.source.stream(&stream).map(|s| {
                s.viewers
                    .by_node(shared.node_id, serving.clock.now_ms())
                    .into_iter()
                    .collect()
            });
            let counts = ViewerCounts {
                by_node: by_node.unwrap_or_default(),
            };
            reply(send, &counts).await;
        }
        request::Kind::OriginViewers(OriginViewers {}) => {
            let Some(serving) = shared.serving(peer) else {
                let _ = send.reset(RESET_BAD_REQUEST.into());
                return;
            };
            let now = serving.clock.now_ms();
            let viewers = serving
                .source
                .origins()
                .into_iter()
                .map(|(id, reports)| (id, reports.by_node(shared.node_id, now).values().sum()))
                .collect();
            reply(send, &OriginViewerTotals { viewers }).await;
        }
        request::Kind::RestreamStatuses(RestreamStatuses { stream }) => {
            let Some(serving) = shared.serving(peer) else {
                let _ = send.reset(RESET_BAD_REQUEST.into());
                return;
            };
            let destinations = serving.source.restream_statuses(&stream);
            reply(send, &RestreamStatusList { destinations }).await;
        }
        request::Kind::ChatFollow(follow) => {
            let Some(hub) = shared.chat_or_reset(&mut send) else {
                return;
            };
            let span = tracing::info_span!("chat_follow", stream = %follow.stream);
            tracing::Instrument::instrument(hub.follow(send, follow), span).await;
        }
        request::Kind::ChatPost(post) => {
            let Some(hub) = shared.chat_or_reset(&mut send) else {
                return;
            };
            reply(send, &hub.post(post).await).await;
        }
        request::Kind::ChatModerate(moderate) => {
            let Some(hub) = shared.chat_or_reset(&mut send) else {
                return;
            };
            reply(send, &hub.moderate(moderate).await).await;
        }
        request::Kind::Subscribe(sub) => {
            let Some(serving) = shared.serving(peer) else {
                let _ = send.reset(RESET_BAD_REQUEST.into());
                return;
            };
            let span = tracing::info_span!("subscription", stream = %sub.stream);
            let served = tracing::Instrument::instrument(
                subscription::serve(send, recv, sub, serving),
                span,
            );
            if let Err(e) = served.await {
                tracing::debug!(error = %e, "subscription ended");
            }
        }
    }
}

/// Sends a one-shot answer; a peer that does not take it in time has the stream reset.
async fn reply<M: prost::Message>(mut send: quinn::SendStream, answer: &M) {
    let written = tokio::time::timeout(REQUEST_TIMEOUT, framing::write(&mut send, answer)).await;
    if matches!(written, Ok(Ok(_))) {
        let _ = send.finish();
    } else {
        let _ = send.reset(RESET_BAD_REQUEST.into());
    }
}
