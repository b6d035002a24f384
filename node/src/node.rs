//! The node supervisor: owns the RTMP and HTTP listeners and the per-stream
//! supervisors (origin or edge), and keeps the stream directory in step with them.
//!
//! A stream served here as an edge becomes an origin when a publisher arrives: the
//! edge's window (the same `LiveStream`) is handed to the new origin, which continues
//! it after a discontinuity, so viewers here see no break in names or numbers.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::live::LiveStream;
use crate::platform::Platform;
use crate::seams::Network;
use crate::stream::context::NodeContext;
use crate::stream::directory::{self, StreamHandle};
use crate::stream::edge::{EdgeArgs, EdgeMsg, EdgeSupervisor};
use crate::stream::registry::{PublishDenied, StreamId};
use crate::stream::requests::NodeMsg;
use crate::stream::stats::{Phase, StreamStats};
use crate::stream::supervisor::{StreamArgs, StreamMsg, StreamSupervisor};
use crate::supervision::{Exit, StopReason};
use crate::{http, rtmp};
use castmesh_media::hls::window::WindowConfig;

/// How long a publish waits for the stream's edge here to stop before it takes its
/// window over.
const EDGE_STOP: std::time::Duration = std::time::Duration::from_secs(3);

pub struct NodeSupervisor<N>(PhantomData<fn() -> N>);

impl<N> Default for NodeSupervisor<N> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct NodeArgs<N> {
    pub ctx: Arc<NodeContext>,
    pub network: N,
    pub platform: Platform,
}

/// A stream's supervisor on this node.
#[derive(Clone)]
enum Role {
    Origin(ActorRef<StreamMsg>),
    Edge(ActorRef<EdgeMsg>),
}

impl Role {
    fn cell(&self) -> ractor::ActorCell {
        match self {
            Role::Origin(a) => a.get_cell(),
            Role::Edge(a) => a.get_cell(),
        }
    }
}

pub struct NodeState {
    ctx: Arc<NodeContext>,
    streams: BTreeMap<StreamId, Role>,
    by_actor: BTreeMap<ActorId, StreamId>,
    listeners: Vec<JoinHandle<()>>,
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

impl<N: Network> Actor for NodeSupervisor<N> {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeArgs<N>;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        args: NodeArgs<N>,
    ) -> Result<NodeState, ActorProcessingErr> {
        use axum::serve::Listener;
        let ctx = args.ctx;
        let rtmp_listener = args
            .network
            .bind(ctx.config.rtmp.listen)
            .await
            .map_err(|e| format!("cannot listen for RTMP on {}: {e}", ctx.config.rtmp.listen))?;
        let http_listener = args
            .network
            .bind(ctx.config.http.listen)
            .await
            .map_err(|e| format!("cannot listen for HTTP on {}: {e}", ctx.config.http.listen))?;
        let tls = http::tls::acceptor(&ctx.config.http).map_err(|e| format!("{e:#}"))?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        tracing::info!(%rtmp_addr, %http_addr, "castmesh node listening");
        let listeners = vec![
            tokio::spawn(rtmp::listener::run(
                rtmp_listener,
                ctx.clone(),
                myself.clone(),
            )),
            tokio::spawn(http::serve(
                http_listener,
                ctx.clone(),
                myself.clone(),
                args.platform,
                tls,
            )),
        ];
        Ok(NodeState {
            ctx,
            streams: BTreeMap::new(),
            by_actor: BTreeMap::new(),
            listeners,
            rtmp_addr,
            http_addr,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NodeMsg>,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        for l in &state.listeners {
            l.abort();
        }
        for stream in state.streams.values() {
            stream.cell().stop(Some("node shutting down".into()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Publish { id, conn, reply } => {
                let stream = match state.streams.get(&id) {
                    Some(Role::Origin(s)) => s.clone(),
                    _ => match state.start_origin(&myself, id).await {
                        Ok(s) => s,
                        Err(denied) => {
                            let _ = reply.send(Err(denied));
                            return Ok(());
                        }
                    },
                };
                // The stream answers the publisher itself; the node does not wait.
                let _ = stream.send_message(StreamMsg::Attach { conn, reply });
            }
            NodeMsg::Relay { id, reply } => {
                let here = state.ctx.directory.get(id.as_str());
                let handle = match state.streams.get(&id) {
                    Some(Role::Origin(origin)) => {
                        // It ended here and lives on another node now: the stream becomes
                        // an edge of that node with the same window (see
                        // `handle_supervisor_evt`); this request is served as it is.
                        if here
                            .as_ref()
                            .is_some_and(|h| h.stats.phase() == Phase::Ended)
                        {
                            origin.stop(Some(StopReason::Superseded.into()));
                        }
                        here
                    }
                    Some(Role::Edge(_)) => here,
                    None => state.start_edge(&myself, id, None).await,
                };
                let _ = reply.send(handle);
            }
            #[cfg(feature = "test-hooks")]
            NodeMsg::Crash { id, child, reply } => {
                let found = match state.streams.get(&id) {
                    Some(Role::Origin(s)) => s.send_message(StreamMsg::Crash(child)).is_ok(),
                    Some(Role::Edge(s)) => s.send_message(EdgeMsg::Crash(child)).is_ok(),
                    None => false,
                };
                let _ = reply.send(found);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        // A stream supervisor exits when its retention ends or when it gave up after
        // too many restarts; either way the stream is gone. Not restarted: its
        // publisher is gone too and will create it again by reconnecting.
        let Some((actor, exit)) = Exit::of(event) else {
            return Ok(());
        };
        if let Some(id) = state.by_actor.remove(&actor) {
            let moved = exit.stopped_for(StopReason::Superseded);
            if let Some(here) = state.ctx.directory.get(id.as_str()).filter(|_| moved) {
                // Another node took the stream over: keep serving its window, now
                // relayed from that node.
                let existing = (here.live.clone(), here.stats.clone());
                if state
                    .start_edge(&myself, id.clone(), Some(existing))
                    .await
                    .is_some()
                {
                    return Ok(());
                }
            }
            state.streams.remove(&id);
            state.ctx.directory.remove(&id);
            state.ctx.metrics.forget_stream(id.as_str());
            state.ctx.metrics.streams_live.dec();
            tracing::info!(stream = %id, reason = %exit.reason(), "stream supervisor exited");
        }
        Ok(())
    }
}

impl NodeState {
    /// Starts the origin side of a stream. Its window is the edge's, when this node
    /// was serving the stream as an edge, or a new one; the first publisher's attach
    /// makes it continue the stream (see `stream::takeover`).
    async fn start_origin(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        id: StreamId,
    ) -> Result<ActorRef<StreamMsg>, PublishDenied> {
        let config = &self.ctx.config;
        let was_edge = matches!(self.streams.get(&id), Some(Role::Edge(_)));
        if !was_edge && self.streams.len() >= config.streams.max_streams {
            return Err(PublishDenied::NodeFull(config.streams.max_streams));
        }
        let (live, stats) = match self.stop_edge(&id).await {
            Some(edge) => {
                tracing::info!(stream = %id, "publisher arrived: the edge becomes the origin");
                (edge.live.clone(), edge.stats.clone())
            }
            None => (
                self.new_live(),
                StreamStats::new(self.ctx.seams.clock.wall()),
            ),
        };
        let spawned = Actor::spawn_linked(
            None,
            StreamSupervisor,
            StreamArgs {
                id: id.clone(),
                live: live.clone(),
                stats: stats.clone(),
                ctx: self.ctx.clone(),
            },
            myself.get_cell(),
        )
        .await;
        let actor = match spawned {
            Ok((actor, _)) => actor,
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "cannot start stream");
                if was_edge {
                    // Its edge is already stopped: the stream is not served here now.
                    self.streams.remove(&id);
                    self.ctx.directory.remove(&id);
                    self.ctx.metrics.streams_live.dec();
                }
                return Err(PublishDenied::Internal);
            }
        };
        tracing::info!(stream = %id, "stream created");
        self.register(id, Role::Origin(actor.clone()), live, stats);
        Ok(actor)
    }

    /// Starts relaying a stream whose origin is another node, into the window and
    /// stats of `existing` (this node was the stream's origin until now) or new ones.
    async fn start_edge(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        id: StreamId,
        existing: Option<(Arc<LiveStream>, Arc<StreamStats>)>,
    ) -> Option<Arc<StreamHandle>> {
        let mesh = self.ctx.mesh.clone()?;
        let (live, stats) = match existing {
            Some(existing) => existing,
            None if self.streams.len() >= self.ctx.config.streams.max_streams => {
                tracing::warn!(stream = %id, "not relaying: this node serves its limit of streams");
                return None;
            }
            None => (
                self.new_live(),
                StreamStats::new(self.ctx.seams.clock.wall()),
            ),
        };
        let args = EdgeArgs {
            id: id.clone(),
            live: live.clone(),
            stats: stats.clone(),
            ctx: self.ctx.clone(),
            mesh,
        };
        let actor = match Actor::spawn_linked(None, EdgeSupervisor, args, myself.get_cell()).await {
            Ok((actor, _)) => actor,
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "cannot start relaying");
                return None;
            }
        };
        Some(self.register(id, Role::Edge(actor), live, stats))
    }

    fn new_live(&self) -> Arc<LiveStream> {
        let config = &self.ctx.config;
        Arc::new(LiveStream::new(
            WindowConfig {
                target_duration_s: config.target_duration_s(),
                part_target_ms: config.hls.part_target.as_millis() as u32,
                segments: config.hls.window_segments,
            },
            self.ctx.seams.entropy.next_u64() as u32,
            config.mesh.subscriber_queue,
        ))
    }

    fn register(
        &mut self,
        id: StreamId,
        role: Role,
        live: Arc<LiveStream>,
        stats: Arc<StreamStats>,
    ) -> Arc<StreamHandle> {
        let handle = Arc::new(StreamHandle {
            id: id.clone(),
            role: match role {
                Role::Origin(_) => directory::Role::Origin,
                Role::Edge(_) => directory::Role::Edge,
            },
            live,
            stats,
            origin: match &role {
                Role::Origin(actor) => Some(actor.clone()),
                Role::Edge(_) => None,
            },
        });
        self.ctx.directory.insert(handle.clone());
        if !self.streams.contains_key(&id) {
            self.ctx.metrics.streams_live.inc();
        }
        self.by_actor.insert(role.cell().get_id(), id.clone());
        self.streams.insert(id, role);
        handle
    }

    /// Stops the edge of `id`, if there is one, and returns what it served once it has
    /// stopped writing to it. Its exit is then not taken for the stream's end.
    async fn stop_edge(&mut self, id: &StreamId) -> Option<Arc<StreamHandle>> {
        let Some(Role::Edge(edge)) = self.streams.get(id) else {
            return None;
        };
        let edge = edge.clone();
        self.by_actor.remove(&edge.get_id());
        let reason = Some("this node became the stream's origin".to_string());
        if let Err(e) = edge.stop_and_wait(reason, Some(EDGE_STOP)).await {
            tracing::warn!(stream = %id, error = %e, "the edge did not stop in time");
        }
        self.ctx.directory.get(id.as_str())
    }
}
