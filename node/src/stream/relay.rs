//! The relay actor: on an edge, keeps the stream's window a copy of its origin's.
//!
//! It subscribes over the mesh to whichever node the origin lease names, applies the
//! origin's replay and changes to the local [`LiveStream`] (so `/hls` serves the
//! edge exactly as it serves an origin, blocking reloads included), and follows the
//! lease when it moves. One relay per stream per edge, however many viewers; it ends
//! after `mesh.edge_idle_timeout` without a request.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::registry::{OriginLookup, StreamId};
use super::relay_policy::{AfterFollow, FollowEnded, Join, Joined, Lookup, RelayPolicy};
use super::stats::{Phase, StreamStats};
use crate::live::LiveStream;
use crate::mesh::Mesh;
use crate::mesh::subscription::{Subscription, SubscriptionError};
use crate::metrics::{GaugeHold, ReasonLabel};
use crate::stream::context::NodeContext;
use castmesh_media::hls::replica::{self, Merged};
use castmesh_media::hls::window::WindowEvent;

/// How often the relay checks that the lease still names the node it follows and
/// that someone still watches.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Pause between attempts when the origin cannot be reached or has no stream yet.
const RETRY: Duration = Duration::from_millis(250);
/// How often the edge tells the origin its viewer count (well within
/// `stats::REPORT_TTL_MS`).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Changes read ahead of the window; the QUIC stream holds back the rest.
const CHANGES_QUEUE: usize = 64;

pub enum RelayMsg {
    /// The relay's task finished: the stream is idle here.
    Finished(String),
    /// The relay's task panicked.
    Failed(String),
    /// Fault injection: panic.
    #[cfg(feature = "test-hooks")]
    Crash,
}

pub struct RelayActor;

#[derive(Clone)]
pub struct RelayArgs {
    pub id: StreamId,
    pub live: Arc<LiveStream>,
    pub stats: Arc<StreamStats>,
    pub ctx: Arc<NodeContext>,
    pub mesh: Arc<Mesh>,
}

pub struct RelayState {
    /// The relay loop; aborted when the actor stops, panics or is killed (dropped
    /// state), so it never outlives the actor.
    relay: tokio::task::AbortHandle,
    /// Waits for the loop and tells the actor how it ended (a panic included).
    watcher: Option<JoinHandle<()>>,
}

impl Drop for RelayState {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

impl Actor for RelayActor {
    type Msg = RelayMsg;
    type State = RelayState;
    type Arguments = RelayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RelayMsg>,
        args: RelayArgs,
    ) -> Result<RelayState, ActorProcessingErr> {
        let span = tracing::info_span!("relay", stream = %args.id);
        let relay_loop = tokio::spawn(tracing::Instrument::instrument(
            async move { relay(&args).await },
            span,
        ));
        let relay = relay_loop.abort_handle();
        let watcher = tokio::spawn(async move {
            let message = match relay_loop.await {
                Ok(reason) => RelayMsg::Finished(reason),
                Err(e) if e.is_panic() => RelayMsg::Failed(format!("relay task failed: {e}")),
                // Aborted: the actor is stopping anyway.
                Err(_) => return,
            };
            let _ = myself.send_message(message);
        });
        Ok(RelayState {
            relay,
            watcher: Some(watcher),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RelayMsg>,
        state: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        // Waited for, so the loop has stopped writing to the window when the actor
        // has stopped (a publish may take the window over next).
        state.relay.abort();
        if let Some(watcher) = state.watcher.take() {
            let _ = watcher.await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RelayMsg>,
        msg: RelayMsg,
        _state: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RelayMsg::Finished(reason) => myself.stop(Some(reason)),
            // Reported to the edge supervisor as a failure: it restarts the relay.
            RelayMsg::Failed(reason) => return Err(reason.into()),
            #[cfg(feature = "test-hooks")]
            RelayMsg::Crash => panic!("fault injection: relay crash requested"),
        }
        Ok(())
    }
}

/// Longest an edge keeps a window ahead of its origin's: the time the origin needs to
/// fill a window. Past it, the stream is taken to have started over (every copy of it
/// was lost) and the edge's media sequence goes back.
fn behind_limit(args: &RelayArgs) -> Duration {
    let config = &args.ctx.config;
    Duration::from_secs(u64::from(config.target_duration_s())) * config.hls.window_segments as u32
}

/// Follows the stream's origin until the stream is idle here; returns why it stopped.
/// The decisions are [`RelayPolicy`]'s; this carries them out.
async fn relay(args: &RelayArgs) -> String {
    let metrics = &args.ctx.metrics;
    let _upstream = GaugeHold::new(&metrics.mesh_upstream_subscriptions);
    let resubscribed = |reason: &'static str| {
        metrics
            .mesh_resubscribes
            .get_or_create(&ReasonLabel { reason })
            .inc();
    };
    let mut policy = RelayPolicy::new(args.ctx.registry.node_id(), behind_limit(args));
    while !idle(args) {
        let lookup = args.ctx.registry.locate_origin(&args.id);
        let (node, addr) = match policy.on_lookup(&lookup, args.live.snapshot().position) {
            Lookup::Subscribe { node, addr } => (node, addr),
            Lookup::Ended { end_window } => {
                // Over everywhere: what viewers hold stays, marked as ended.
                if end_window {
                    tracing::info!("the stream ended");
                    args.live.update(|w| w.end_stream());
                }
                args.stats.set_phase(Phase::Ended);
                tokio::time::sleep(CHECK_INTERVAL).await;
                continue;
            }
            Lookup::Retry => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let subscribed = args.mesh.subscribe(addr, node, args.id.as_str(), false);
        let (replay, subscription) = match subscribed.await {
            Ok(subscribed) => subscribed,
            Err(e) => {
                tracing::debug!(origin = node, error = %e, "cannot subscribe yet");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let had_media = args.live.snapshot().position.has_media();
        let merged = match policy.on_replay(had_media, replay.has_media(), Instant::now()) {
            Join::WaitForMedia => {
                tracing::debug!(origin = node, "the origin has no media yet");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Join::Merge => args.live.update(|w| replica::merge(w, replay)),
            Join::Replace => args.live.update(|w| {
                replica::replace(w, replay);
                Merged::Replaced
            }),
        };
        tracing::info!(origin = node, ?merged, "subscribed");
        match policy.on_joined(merged, had_media, Instant::now()) {
            Joined::WaitForOrigin => {
                resubscribed("origin_behind");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Joined::Follow { window_replaced } => {
                if window_replaced {
                    resubscribed("window_replaced");
                }
            }
        }
        args.stats.set_phase(Phase::Live);
        let ended = follow(args, node, subscription)
            .await
            .unwrap_or_else(FollowEnded::Failed);
        match policy.on_follow_end(&ended) {
            AfterFollow::Stop => break,
            AfterFollow::Resubscribe { reason, pause } => {
                match &ended {
                    FollowEnded::Failed(e) => {
                        tracing::warn!(origin = node, error = %e, "resubscribing")
                    }
                    _ => tracing::debug!(origin = node, ?ended, "resubscribing"),
                }
                resubscribed(reason);
                if pause {
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
    "idle".to_string()
}

/// Applies a subscription's changes until it ends, the lease moves or nobody watches;
/// reports this node's viewers to the origin meanwhile.
async fn follow(
    args: &RelayArgs,
    origin: u64,
    subscription: Subscription,
) -> Result<FollowEnded, SubscriptionError> {
    let (mut changes, mut reporter) = subscription.run(CHANGES_QUEUE);
    let mut check = tokio::time::interval(CHECK_INTERVAL);
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else {
                    return Ok(FollowEnded::Closed);
                };
                let change = change?;
                let is_part = matches!(change.event, WindowEvent::Part { .. });
                if let WindowEvent::BeginSegment { msn, discontinuity, .. } = &change.event {
                    tracing::debug!(msn, discontinuity, "segment begins");
                }
                args.live
                    .update(|w| replica::follow(w, change.event))
                    .map_err(anyhow::Error::from)?;
                if is_part {
                    let now = args.ctx.seams.clock.now_ms();
                    let lag_ms = now.saturating_sub(change.sent_at_ms);
                    args.ctx.metrics.mesh_forward_lag.observe(lag_ms as f64 / 1000.0);
                }
            }
            _ = report.tick() => {
                let viewers = args.stats.viewers.load(std::sync::atomic::Ordering::Relaxed);
                reporter.report_viewers(viewers).await?;
            }
            _ = check.tick() => {
                if idle(args) {
                    return Ok(FollowEnded::Idle);
                }
                let still = matches!(
                    args.ctx.registry.locate_origin(&args.id),
                    OriginLookup::Node { node, .. } if node == origin
                );
                if !still {
                    return Ok(FollowEnded::OriginMoved);
                }
            }
        }
    }
}

fn idle(args: &RelayArgs) -> bool {
    let now = args.ctx.seams.clock.now_ms();
    let timeout = args.ctx.config.mesh.edge_idle_timeout.as_millis() as u64;
    now.saturating_sub(args.stats.last_request_ms()) > timeout
}
