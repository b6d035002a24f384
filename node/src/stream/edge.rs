//! The edge supervisor: one per stream this node serves for another node's origin,
//! parent of `relay` (the mesh subscription) and `viewer-counter`.
//!
//! Started by the first HTTP request for a stream whose origin lease names another
//! node; stops when its relay finds the stream idle here. A failed child is
//! restarted alone, within the restart intensity.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::relay::{RelayActor, RelayArgs, RelayMsg};
use super::supervisor::spawn_viewer_counter;
use super::viewer_counter::ViewerMsg;
use crate::supervision::{Exit, Restarts, StreamChild};

/// How long stopping waits for each child.
const CHILD_STOP: std::time::Duration = std::time::Duration::from_secs(1);

/// Without the `test-hooks` feature an edge takes no messages: it only supervises.
pub enum EdgeMsg {
    /// Fault injection: make a child panic.
    #[cfg(feature = "test-hooks")]
    Crash(StreamChild),
}

pub struct EdgeSupervisor;

/// What an edge is started with: what its relay needs (the edge keeps it to restart
/// the relay).
pub type EdgeArgs = RelayArgs;

pub struct EdgeState {
    relay_args: RelayArgs,
    relay: ActorRef<RelayMsg>,
    viewers: ActorRef<ViewerMsg>,
    restarts: Restarts,
}

async fn spawn_relay(
    myself: &ActorRef<EdgeMsg>,
    args: &RelayArgs,
) -> Result<ActorRef<RelayMsg>, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(None, RelayActor, args.clone(), myself.get_cell()).await?;
    Ok(actor)
}

impl Actor for EdgeSupervisor {
    type Msg = EdgeMsg;
    type State = EdgeState;
    type Arguments = EdgeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EdgeMsg>,
        args: EdgeArgs,
    ) -> Result<EdgeState, ActorProcessingErr> {
        let streams = &args.ctx.config.streams;
        let restarts = Restarts::new(
            args.id.as_str(),
            streams.max_restarts,
            streams.restart_window,
        );
        // The request that started the edge counts: the idle clock starts now.
        args.stats.requested(args.ctx.seams.clock.now_ms());
        let relay = spawn_relay(&myself, &args).await?;
        let viewers =
            spawn_viewer_counter(myself.get_cell(), &args.id, &args.stats, &args.ctx).await?;
        tracing::info!(stream = %args.id, "relaying the stream from its origin");
        Ok(EdgeState {
            relay_args: args,
            relay,
            viewers,
            restarts,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EdgeMsg>,
        state: &mut EdgeState,
    ) -> Result<(), ActorProcessingErr> {
        // Waited for: when this node becomes the stream's origin, the relay must have
        // stopped writing to the window before the segmenter starts.
        let _ = state.relay.stop_and_wait(None, Some(CHILD_STOP)).await;
        let _ = state.viewers.stop_and_wait(None, Some(CHILD_STOP)).await;
        state.relay_args.stats.sessions.stop();
        Ok(())
    }

    /// Only fault injection sends an edge messages; without it the default
    /// (ignore) stands.
    #[cfg(feature = "test-hooks")]
    async fn handle(
        &self,
        _myself: ActorRef<EdgeMsg>,
        msg: EdgeMsg,
        state: &mut EdgeState,
    ) -> Result<(), ActorProcessingErr> {
        let EdgeMsg::Crash(child) = msg;
        tracing::warn!(stream = %state.relay_args.id, actor = child.name(), "fault injection: crashing actor");
        let _ = match child {
            StreamChild::Relay => state.relay.send_message(RelayMsg::Crash).map_err(|_| ()),
            StreamChild::ViewerCounter => {
                state.viewers.send_message(ViewerMsg::Crash).map_err(|_| ())
            }
            StreamChild::Ingest | StreamChild::Segmenter | StreamChild::Restream => Err(()),
        };
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<EdgeMsg>,
        event: SupervisionEvent,
        state: &mut EdgeState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, exit)) = Exit::of(event) else {
            return Ok(());
        };
        let child = if state.relay.get_id() == id {
            // A relay that finished (idle) ends the edge; one that failed is restarted.
            if let Exit::Stopped(Some(reason)) = exit {
                myself.stop(Some(reason));
                return Ok(());
            }
            StreamChild::Relay
        } else if state.viewers.get_id() == id {
            StreamChild::ViewerCounter
        } else {
            return Ok(());
        };
        let metrics = &state.relay_args.ctx.metrics;
        state.restarts.restart(child, &exit, metrics)?;
        let a = &state.relay_args;
        match child {
            StreamChild::Relay => state.relay = spawn_relay(&myself, a).await?,
            _ => {
                state.viewers =
                    spawn_viewer_counter(myself.get_cell(), &a.id, &a.stats, &a.ctx).await?;
            }
        }
        Ok(())
    }
}
