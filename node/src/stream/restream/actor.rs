//! The restream actor: one per active destination, a child of the stream supervisor
//! on the origin. It owns the destination's queue (attached to the stream's tap while
//! it lives) and the worker task that pushes it; a worker that panics fails the actor,
//! and the supervisor restarts it with a fresh queue.
//!
//! The worker is a task rather than the actor's own handler because a push is one
//! long loop: inside a handler it would keep the actor from hearing its stop.

use std::sync::Arc;
use std::time::Duration;

use castmesh_cluster::restream::Destination;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::AbortHandle;

use super::queue::FrameQueue;
use super::status::DestinationStatus;
use super::tap::MediaTap;
use super::worker::Worker;
use crate::stream::context::NodeContext;

/// How long a stopping actor lets its worker close the connection politely
/// (`FCUnpublish`, `deleteStream`) before cutting it.
/// Short: a node handing its stream over waits for this before the new origin may
/// push (see `supervisor`).
const POLITE_CLOSE: Duration = Duration::from_millis(300);

pub enum RestreamMsg {
    /// The worker task ended; `panic`: with this panic message.
    WorkerEnded { panic: Option<String> },
    /// Fault injection: make the worker panic.
    #[cfg(feature = "test-hooks")]
    Crash,
}

pub struct RestreamActor;

pub struct RestreamArgs {
    pub stream: String,
    pub destination: Destination,
    pub tap: Arc<MediaTap>,
    pub status: Arc<DestinationStatus>,
    pub ctx: Arc<NodeContext>,
}

pub struct RestreamState {
    queue: Arc<FrameQueue>,
    tap: Arc<MediaTap>,
    status: Arc<DestinationStatus>,
    worker: AbortHandle,
}

/// However the actor ends (stopped, failed, killed: ractor skips `post_stop` for the
/// last two), its queue leaves the tap and its worker ends.
impl Drop for RestreamState {
    fn drop(&mut self) {
        self.tap.detach(&self.queue);
        self.queue.close();
        self.worker.abort();
    }
}

impl Actor for RestreamActor {
    type Msg = RestreamMsg;
    type State = RestreamState;
    type Arguments = RestreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RestreamMsg>,
        args: RestreamArgs,
    ) -> Result<RestreamState, ActorProcessingErr> {
        let config = &args.ctx.config.restream;
        let span_ms = u32::try_from(config.queue.as_millis()).unwrap_or(u32::MAX);
        let queue = Arc::new(FrameQueue::new(
            span_ms,
            config.queue_bytes,
            args.status.drops(),
        ));
        args.tap.attach(queue.clone());
        let worker = tokio::spawn(
            Worker {
                stream: args.stream,
                destination: args.destination,
                queue: queue.clone(),
                tap: args.tap.clone(),
                status: args.status.clone(),
                ctx: args.ctx,
            }
            .run(),
        );
        let abort = worker.abort_handle();
        tokio::spawn(async move {
            let panic = match worker.await {
                Err(e) if e.is_panic() => Some(panic_message(e.into_panic())),
                _ => None,
            };
            let _ = myself.send_message(RestreamMsg::WorkerEnded { panic });
        });
        Ok(RestreamState {
            queue,
            tap: args.tap,
            status: args.status,
            worker: abort,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RestreamMsg>,
        state: &mut RestreamState,
    ) -> Result<(), ActorProcessingErr> {
        // A closed queue ends the push: the worker unpublishes and returns (what is
        // left is done when the state drops).
        state.queue.close();
        let deadline = tokio::time::Instant::now() + POLITE_CLOSE;
        while !state.worker.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.status.idle();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RestreamMsg>,
        msg: RestreamMsg,
        state: &mut RestreamState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // Gave up (its status says why) or stopped: the actor stays until the
            // supervisor stops it, so a given-up destination is not restarted; its
            // queue takes no more frames.
            RestreamMsg::WorkerEnded { panic: None } => {
                state.tap.detach(&state.queue);
                state.queue.close();
                Ok(())
            }
            RestreamMsg::WorkerEnded { panic: Some(panic) } => {
                Err(format!("restream worker panicked: {panic}").into())
            }
            #[cfg(feature = "test-hooks")]
            RestreamMsg::Crash => panic!("fault injection: restream crash requested"),
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
