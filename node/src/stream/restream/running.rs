//! Which of a stream's destinations have an actor: the stream supervisor reconciles
//! them with the replicated destinations about once a second, and whenever its
//! origin status changes (see `supervisor`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use castmesh_cluster::restream::Destination;
use ractor::{Actor, ActorCell, ActorId, ActorRef};

use super::actor::{RestreamActor, RestreamArgs, RestreamMsg};
use super::status::DestinationStatus;
use super::tap::MediaTap;
use crate::stream::context::NodeContext;
use crate::stream::stats::StreamStats;
use crate::supervision::{Exit, Restarts, StreamChild};

/// Longest a stopping restream actor is waited for (it closes its connection
/// politely within its own, shorter bound).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

struct Running {
    actor: ActorRef<RestreamMsg>,
    destination: Destination,
}

pub struct Restreams {
    stream: String,
    tap: Arc<MediaTap>,
    stats: Arc<StreamStats>,
    ctx: Arc<NodeContext>,
    running: BTreeMap<u64, Running>,
    /// Actors stopped on purpose; their exit is expected.
    stopping: BTreeSet<ActorId>,
    /// A destination's failures never take the stream down: beyond this intensity
    /// the destination is left in `error`.
    restarts: Restarts,
}

impl Restreams {
    pub fn new(
        stream: &str,
        tap: Arc<MediaTap>,
        stats: Arc<StreamStats>,
        ctx: Arc<NodeContext>,
    ) -> Self {
        let limits = &ctx.config.streams;
        Self {
            restarts: Restarts::new(stream, limits.max_restarts, limits.restart_window),
            stream: stream.to_string(),
            tap,
            stats,
            ctx,
            running: BTreeMap::new(),
            stopping: BTreeSet::new(),
        }
    }

    /// Runs exactly the wanted destinations of `all` while `producing` (this node is
    /// the stream's origin, live or in its grace period), none otherwise; a
    /// destination whose server URL or key changed starts over.
    pub async fn reconcile(&mut self, parent: &ActorCell, all: &[Destination], producing: bool) {
        let wanted: BTreeMap<u64, &Destination> = all
            .iter()
            .filter(|d| producing && d.wanted())
            .map(|d| (d.id, d))
            .collect();
        let stale: Vec<u64> = self
            .running
            .iter()
            .filter(|(id, r)| {
                wanted
                    .get(id)
                    .is_none_or(|d| d.url != r.destination.url || d.key != r.destination.key)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.stop(id);
        }
        for (id, d) in wanted {
            if !self.running.contains_key(&id) {
                self.start(parent, d.clone()).await;
            }
        }
        // Statuses of destinations deleted from the stream go with them.
        let board = &self.stats.restream;
        for id in board.ids() {
            if !all.iter().any(|d| d.id == id) {
                board.remove(id);
                self.ctx.metrics.forget_destination(&self.stream, id);
            }
        }
    }

    /// Stops every running destination and waits until each has closed its
    /// connection (or was cut off after a bound).
    pub async fn stop_all_and_wait(&mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for actor in ids.into_iter().filter_map(|id| self.take(id)) {
            stopping.spawn(async move { actor.stop_and_wait(None, Some(STOP_WAIT)).await });
        }
        stopping.join_all().await;
    }

    /// The stream is removed: its destinations' series go.
    pub fn forget(&self) {
        for id in self.stats.restream.ids() {
            self.ctx.metrics.forget_destination(&self.stream, id);
        }
    }

    fn stop(&mut self, id: u64) {
        if let Some(actor) = self.take(id) {
            actor.stop(None);
        }
    }

    /// Destination `id`'s actor, no longer running here: its exit will be expected.
    fn take(&mut self, id: u64) -> Option<ActorRef<RestreamMsg>> {
        let r = self.running.remove(&id)?;
        tracing::info!(stream = %self.stream, destination = id, "stopping restream");
        self.stopping.insert(r.actor.get_id());
        Some(r.actor)
    }

    async fn start(&mut self, parent: &ActorCell, destination: Destination) {
        let id = destination.id;
        let metrics = &self.ctx.metrics;
        let status = self
            .stats
            .restream
            .get_or_insert(id, || DestinationStatus::new(metrics, &self.stream, id));
        tracing::info!(stream = %self.stream, destination = id, "starting restream");
        let args = RestreamArgs {
            stream: self.stream.clone(),
            destination: destination.clone(),
            tap: self.tap.clone(),
            status: status.clone(),
            ctx: self.ctx.clone(),
        };
        match Actor::spawn_linked(None, RestreamActor, args, parent.clone()).await {
            Ok((actor, _)) => {
                self.running.insert(id, Running { actor, destination });
            }
            Err(e) => {
                let now = self.ctx.seams.clock.now_ms();
                status.failed(&format!("could not start: {e}"), now, None);
            }
        }
    }

    /// A child of the stream supervisor exited: `true` when it was a restream actor
    /// (restarted if it failed, within the intensity).
    pub async fn exited(&mut self, parent: &ActorCell, id: ActorId, exit: &Exit) -> bool {
        if self.stopping.remove(&id) {
            return true;
        }
        let Some(dest) = self
            .running
            .iter()
            .find(|(_, r)| r.actor.get_id() == id)
            .map(|(d, _)| *d)
        else {
            return false;
        };
        let Some(r) = self.running.remove(&dest) else {
            return true;
        };
        if self
            .restarts
            .restart(StreamChild::Restream, exit, &self.ctx.metrics)
            .is_ok()
        {
            self.start(parent, r.destination).await;
        } else if let Some(status) = self.stats.restream.get(dest) {
            let now = self.ctx.seams.clock.now_ms();
            status.failed(
                &format!("the restream actor failed too often: {}", exit.reason()),
                now,
                None,
            );
        }
        true
    }

    /// Fault injection: the running restream actor of the lowest destination id.
    #[cfg(feature = "test-hooks")]
    pub fn any(&self) -> Option<ActorRef<RestreamMsg>> {
        self.running.values().next().map(|r| r.actor.clone())
    }
}
