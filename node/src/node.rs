//! The node supervisor: owns the RTMP and HTTP listeners and the per-stream
//! supervisors, and keeps the stream directory in step with them.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::context::NodeContext;
use crate::hls::live::LiveStream;
use crate::hls::window::WindowConfig;
use crate::seams::Network;
use crate::stream::directory::StreamHandle;
use crate::stream::registry::{PublishDenied, StreamId};
use crate::stream::stats::StreamStats;
use crate::stream::supervisor::{
    PublisherBinding, PublisherConn, StreamArgs, StreamMsg, StreamSupervisor,
};
use crate::supervision::StreamChild;
use crate::{http, rtmp};

pub enum NodeMsg {
    /// Attach a publisher to a stream, creating the stream if it is new.
    Publish {
        id: StreamId,
        conn: PublisherConn,
        reply: RpcReplyPort<Result<PublisherBinding, PublishDenied>>,
    },
    /// Fault injection: make one of a stream's actors panic.
    Crash {
        id: StreamId,
        child: StreamChild,
        reply: RpcReplyPort<bool>,
    },
}

pub struct NodeSupervisor<N>(PhantomData<fn() -> N>);

impl<N> Default for NodeSupervisor<N> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct NodeArgs<N> {
    pub ctx: Arc<NodeContext>,
    pub network: N,
}

pub struct NodeState {
    ctx: Arc<NodeContext>,
    streams: BTreeMap<StreamId, ActorRef<StreamMsg>>,
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
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        tracing::info!(%rtmp_addr, %http_addr, "castmesh node listening");
        let listeners = vec![
            tokio::spawn(rtmp::listener::run(
                rtmp_listener,
                ctx.clone(),
                myself.clone(),
            )),
            tokio::spawn(http::serve(http_listener, ctx.clone(), myself.clone())),
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
            stream.stop(Some("node shutting down".into()));
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
                    Some(s) => s.clone(),
                    None => match state.start_stream(&myself, id).await {
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
            NodeMsg::Crash { id, child, reply } => {
                let found = state
                    .streams
                    .get(&id)
                    .is_some_and(|s| s.send_message(StreamMsg::Crash(child)).is_ok());
                let _ = reply.send(found);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        // A stream supervisor exits when its retention ends or when it gave up after
        // too many restarts; either way the stream is gone. Not restarted: its
        // publisher is gone too and will create it again by reconnecting.
        let (cell, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        if let Some(id) = state.by_actor.remove(&cell.get_id()) {
            state.streams.remove(&id);
            state.ctx.directory.remove(&id);
            state.ctx.metrics.forget_stream(id.as_str());
            state.ctx.metrics.streams_live.dec();
            tracing::info!(stream = %id, reason = reason.as_deref().unwrap_or("stopped"), "stream supervisor exited");
        }
        Ok(())
    }
}

impl NodeState {
    async fn start_stream(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        id: StreamId,
    ) -> Result<ActorRef<StreamMsg>, PublishDenied> {
        let config = &self.ctx.config;
        if self.streams.len() >= config.streams.max_streams {
            return Err(PublishDenied {
                code: "NetStream.Publish.Rejected",
                reason: format!(
                    "this node already serves its limit of {} streams",
                    config.streams.max_streams
                ),
            });
        }
        let live = Arc::new(LiveStream::new(
            WindowConfig {
                target_duration_s: config.target_duration_s(),
                part_target_ms: config.hls.part_target.as_millis() as u32,
                segments: config.hls.window_segments,
            },
            self.ctx.seams.entropy.next_u64() as u32,
            config.mesh.subscriber_queue,
        ));
        let stats = StreamStats::new(self.ctx.seams.clock.wall());
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
                return Err(PublishDenied {
                    code: "NetStream.Publish.Failed",
                    reason: "internal error starting the stream".into(),
                });
            }
        };
        tracing::info!(stream = %id, "stream created");
        self.ctx.directory.insert(Arc::new(StreamHandle {
            id: id.clone(),
            actor: actor.clone(),
            live,
            stats,
        }));
        self.ctx.metrics.streams_live.inc();
        self.by_actor.insert(actor.get_id(), id.clone());
        self.streams.insert(id, actor.clone());
        Ok(actor)
    }
}
