//! The stream supervisor: one per live stream, parent of `ingest`, `segmenter`,
//! `viewer-counter` and one `restream` actor per destination it pushes to.
//!
//! Lifecycle: a publisher attaches (live) → it leaves (grace period) → it comes
//! back (live again, after a discontinuity) or the grace period runs out (ended,
//! ENDLIST) → retention runs out (removed). A second publisher with the same
//! key takes over at once: the old connection is closed. When this node loses the
//! stream's origin lease (another node took the publisher over, an operator ended
//! it), the stream ends here at once: publisher dropped, playlist ended.
//!
//! A real end (grace period over, or ended by the cluster while this node held the
//! lease) is reported to the `on_publish_done` hook with what the last publisher sent,
//! which only this node knows; a take-over or a reconnect within the grace period is
//! no end.
//!
//! Restarts are one-for-one with an intensity limit: a failed segmenter or
//! viewer-counter is restarted alone; ingest is not restarted because it is
//! bound to its connection (see `ingest`); a restream actor that fails too often
//! leaves its destination in `error`, never the stream down.
//!
//! Restreaming follows the origin lease: destinations run from the first attach
//! under a lease until the lease is lost, handed over or the stream ends (they stay
//! through the grace period, so a publisher that comes back continues them). A node
//! taking the stream over starts them only once it holds the newer lease and the old
//! origin has stopped producing (`takeover`), so two nodes never push one destination.

use std::collections::BTreeSet;
use std::sync::Arc;

use castmesh_cluster::model::MediaReach;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::hooks::DoneEvent;
use super::ingest::{IngestActor, IngestArgs, IngestMsg};
use super::lifecycle::{Attach, HandOverAnswer, LeaseLost, OriginMoved, StreamLifecycle, Timer};
use super::publish::PublishRequest;
use super::registry::{OriginLease, OriginLookup, PublishDenied, StreamId, StreamRegistry};
use super::restream::running::Restreams;
use super::restream::tap::MediaTap;
use super::segmenter::{SegmenterActor, SegmenterArgs, SegmenterMsg};
use super::stats::{Phase, StreamStats};
use super::takeover::{self, Predecessor};
use super::viewer_counter::{ViewerArgs, ViewerCounter, ViewerMsg};
use crate::live::LiveStream;
use crate::mesh::subscription::HandOver;
use crate::stream::context::NodeContext;
use crate::supervision::{Exit, Restarts, StopReason, StreamChild};

/// A publishing connection asking to feed this stream.
pub struct PublisherConn {
    /// What the publisher sent (its key among it: kept for `on_publish_done`). Boxed:
    /// it is most of the message's size.
    pub request: Box<PublishRequest>,
    /// Fired with a reason when the connection must close (takeover, bad media).
    pub kick: oneshot::Sender<String>,
    /// The origin lease the publish was granted under.
    pub lease: OriginLease,
    /// How the stream was produced before that lease's epoch.
    pub predecessor: Predecessor,
    /// Where a new run starts, as recorded in the lease (`takeover::start_of`).
    pub start: MediaReach,
}

/// What a connection feeds once attached.
pub struct PublisherBinding {
    pub ingest: ActorRef<IngestMsg>,
    /// Bounds media bytes in flight from socket to segmenter (back-pressure).
    pub credits: Arc<Semaphore>,
}

pub enum StreamMsg {
    Attach {
        conn: PublisherConn,
        reply: RpcReplyPort<Result<PublisherBinding, PublishDenied>>,
    },
    GraceExpired {
        generation: u64,
    },
    RetentionExpired {
        generation: u64,
    },
    /// The origin lease of publisher number `publisher` is gone; `ended`: because the
    /// cluster ended the stream.
    LeaseLost {
        publisher: u64,
        reason: String,
        ended: bool,
    },
    /// Where the stream went after that: another node's lease (`to`), or nowhere.
    OriginMoved {
        publisher: u64,
        to: Option<u64>,
        reason: String,
    },
    /// Another node holds the stream's lease of `epoch`: stop producing (see
    /// `takeover`).
    HandOver {
        epoch: u64,
        reply: RpcReplyPort<HandOver>,
    },
    /// Time to match the running restream actors with the replicated destinations.
    Restream,
    /// Fault injection: make a child panic.
    #[cfg(feature = "test-hooks")]
    Crash(StreamChild),
}

pub struct StreamSupervisor;

pub struct StreamArgs {
    pub id: StreamId,
    pub live: Arc<LiveStream>,
    pub stats: Arc<StreamStats>,
    pub ctx: Arc<NodeContext>,
}

pub struct StreamState {
    args: StreamArgs,
    segmenter: ActorRef<SegmenterMsg>,
    viewers: ActorRef<ViewerMsg>,
    /// The attached publisher: its ingest actor and the handle that closes its
    /// connection with a reason.
    ingest: Option<(ActorRef<IngestMsg>, oneshot::Sender<String>)>,
    /// Ingest actors we stopped on purpose (takeover); their exit is expected.
    replaced: BTreeSet<ActorId>,
    /// The rules of the stream's life; this actor carries out what they decide.
    lifecycle: StreamLifecycle,
    /// Dropping it stops the watcher of the latest publisher's lease, which releases
    /// the lease (the stream stopped, or a newer lease replaced it).
    lease_watch: Option<oneshot::Sender<()>>,
    credits: Arc<Semaphore>,
    restarts: Restarts,
    /// Lifecycle events for the registry, delivered in order by one task per stream.
    reports: mpsc::UnboundedSender<Report>,
    /// What the latest attached publisher sent, for `on_publish_done`.
    publish: Option<PublishRequest>,
    /// Where the restream destinations take the publisher's media from.
    tap: Arc<MediaTap>,
    restreams: Restreams,
    /// This node produces the stream under a lease it holds (live or in the grace
    /// period): its destinations run.
    producing: bool,
    /// The timer that reconciles the destinations.
    restream_timer: tokio::task::JoinHandle<()>,
}

/// What the registry and the hooks hear about a stream. Rare (one per publish or
/// end), hence an unbounded channel.
enum Report {
    Live {
        epoch: u64,
    },
    /// The grace period ran out: this node ends the stream, if still its origin.
    Ended {
        epoch: u64,
        publish: Option<PublishRequest>,
    },
    /// The cluster ended the stream while this node held the lease of `epoch`.
    EndedByCluster {
        epoch: u64,
        publish: Option<PublishRequest>,
    },
}

async fn report_lifecycle(
    mut events: mpsc::UnboundedReceiver<Report>,
    ctx: Arc<NodeContext>,
    id: StreamId,
) {
    let done = |epoch, publish| DoneEvent {
        stream: id.to_string(),
        epoch,
        publish,
        app: ctx.config.rtmp.app.clone(),
    };
    while let Some(event) = events.recv().await {
        match event {
            Report::Live { epoch } => ctx.registry.stream_live(&id, epoch).await,
            Report::Ended { epoch, publish } => {
                if ctx.registry.stream_ended(&id, epoch).await {
                    ctx.hooks.publish_done(done(epoch, publish));
                }
            }
            Report::EndedByCluster { epoch, publish } => {
                ctx.hooks.publish_done(done(epoch, publish));
            }
        }
    }
}

/// Tells the stream when the lease of publisher number `publisher` is lost. Ends
/// quietly when a newer lease replaces it or when the returned sender is dropped; its
/// end drops the lease's receiver, which lets the lease go.
fn watch_lease(
    stream: ActorRef<StreamMsg>,
    publisher: u64,
    mut lease: OriginLease,
) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            lost = lease.lost.wait_for(Option::is_some) => {
                if let Ok(lost) = lost
                    && let Some(loss) = lost.clone()
                {
                    let _ = stream.send_message(StreamMsg::LeaseLost {
                        publisher,
                        reason: loss.reason,
                        ended: loss.ended,
                    });
                }
            }
            _ = stopped => {}
        }
    });
    stop
}

/// How often a stream's restream actors are matched with the replicated destinations
/// (a start, stop or change through the API takes effect within this).
const RESTREAM_RECONCILE: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest a segmenter may take to stop (it finishes the frame at hand).
const SEGMENTER_STOP: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a node that lost a stream's lease waits for its copy of the metadata to
/// name the new origin (the refusal may arrive before the new lease is applied here).
const NEW_ORIGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Finds which node holds the stream's lease now and tells the stream.
async fn find_new_origin(
    stream: ActorRef<StreamMsg>,
    registry: Arc<dyn StreamRegistry>,
    id: StreamId,
    publisher: u64,
    reason: String,
) {
    let me = registry.node_id();
    let deadline = tokio::time::Instant::now() + NEW_ORIGIN_WAIT;
    let to = loop {
        match registry.locate_origin(&id) {
            OriginLookup::Node { node, .. } if node != me => break Some(node),
            OriginLookup::Vacant { ended: true } => break None,
            _ if tokio::time::Instant::now() >= deadline => break None,
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let _ = stream.send_message(StreamMsg::OriginMoved {
        publisher,
        to,
        reason,
    });
}

impl StreamState {
    fn name(&self) -> &str {
        self.args.id.as_str()
    }

    /// A stream whose first publish was refused (or given up) never produced here: it
    /// stops and the node serves it as it did before, as an edge, with its window
    /// (see the node supervisor), instead of staying an origin nobody feeds.
    fn unless_attached(&self, myself: &ActorRef<StreamMsg>) {
        if self.lifecycle.unused() {
            myself.stop(Some(StopReason::Superseded.into()));
        }
    }

    /// Closes the attached publisher's connection with `reason`. Its ingest is stopped
    /// on purpose, so its exit does not start the grace period; the stop signal
    /// overtakes its queued frames, so none reach the segmenter afterwards.
    fn close_publisher(&mut self, reason: String) {
        if let Some((ingest, kick)) = self.ingest.take() {
            self.replaced.insert(ingest.get_id());
            ingest.stop(None);
            let _ = kick.send(reason);
        }
    }

    /// Stops the segmenter and waits until it has (it finishes the frame at hand): the
    /// window gets nothing more from it. False if it did not stop in time.
    async fn stop_segmenter(&mut self) -> bool {
        self.replaced.insert(self.segmenter.get_id());
        self.segmenter
            .stop_and_wait(None, Some(SEGMENTER_STOP))
            .await
            .is_ok()
    }

    /// Makes the window continue where the stream was before this node's new lease
    /// (see `takeover`); a changed window gets a new segmenter.
    async fn continue_from(
        &mut self,
        myself: &ActorRef<StreamMsg>,
        before: Predecessor,
        start: MediaReach,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(before, Predecessor::None) {
            return Ok(());
        }
        let ctx = &self.args.ctx;
        let run = ctx.seams.entropy.next_u64() as u32;
        // The old segmenter stops writing first: the window changes under nobody.
        self.stop_segmenter().await;
        self.args
            .live
            .update(|w| takeover::continue_window(w, before, start, run));
        self.segmenter = spawn_segmenter(myself, &self.args, self.lifecycle.publisher()).await?;
        Ok(())
    }

    /// A publisher asks to feed the stream: attach it, or refuse it, as the
    /// lifecycle decides.
    async fn attach(
        &mut self,
        myself: &ActorRef<StreamMsg>,
        conn: PublisherConn,
        reply: RpcReplyPort<Result<PublisherBinding, PublishDenied>>,
    ) -> Result<(), ActorProcessingErr> {
        if reply.is_closed() || conn.kick.is_closed() {
            // The connection gave up waiting (or went away) before we got here.
            self.unless_attached(myself);
            return Ok(());
        }
        let lost = conn.lease.lost.borrow().clone().map(|l| l.reason);
        let (publisher, close_previous, continue_from) =
            match self
                .lifecycle
                .handle_attach(conn.lease.epoch, lost, self.ingest.is_some())
            {
                Attach::Refused { reason, stop } => {
                    let _ = reply.send(Err(PublishDenied::Superseded(reason)));
                    if stop {
                        myself.stop(Some(StopReason::Superseded.into()));
                    }
                    return Ok(());
                }
                Attach::Accepted {
                    publisher,
                    close_previous,
                    continue_from_predecessor,
                } => (publisher, close_previous, continue_from_predecessor),
            };
        if close_previous {
            tracing::info!(stream = %self.name(), peer = %conn.request.peer, "publisher takeover: closing the previous connection");
            // None of its frames reach the segmenter after NewPublisher below.
            self.close_publisher("another publisher took over this stream".into());
        }
        if continue_from {
            self.continue_from(myself, conn.predecessor, conn.start)
                .await?;
        }
        let _ = self
            .segmenter
            .send_message(SegmenterMsg::NewPublisher(publisher));
        self.tap.new_publisher();
        let (ingest, _) = Actor::spawn_linked(
            None,
            IngestActor,
            IngestArgs {
                stream: self.name().to_string(),
                publisher,
                segmenter: self.segmenter.clone(),
                stats: self.args.stats.clone(),
                tap: self.tap.clone(),
                ctx: self.args.ctx.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        self.ingest = Some((ingest.clone(), conn.kick));
        self.publish = Some(*conn.request);
        let epoch = conn.lease.epoch;
        // From now on the lease's renewals record how far this node's media got.
        conn.lease.reach.follow(&self.args.live);
        self.lease_watch = Some(watch_lease(myself.clone(), publisher, conn.lease));
        self.show_phase();
        let _ = self.reports.send(Report::Live { epoch });
        let binding = PublisherBinding {
            ingest: ingest.clone(),
            credits: self.credits.clone(),
        };
        if reply.send(Ok(binding)).is_err() {
            // Gone in the meantime: the ingest's exit starts the grace period.
            ingest.stop(Some("publisher left before it was attached".into()));
        }
        self.producing = true;
        self.reconcile_restreams(myself).await;
        Ok(())
    }

    /// The API reads the phase from the stream's stats.
    fn show_phase(&self) {
        self.args.stats.set_phase(self.lifecycle.phase());
    }

    /// Starts and stops restream actors to match the replicated destinations.
    async fn reconcile_restreams(&mut self, myself: &ActorRef<StreamMsg>) {
        let all = self.args.ctx.registry.destinations(&self.args.id);
        self.restreams
            .reconcile(&myself.get_cell(), &all, self.producing)
            .await;
    }

    /// This node stops producing the stream: its destinations stop with it.
    async fn stop_restreams(&mut self) {
        self.producing = false;
        self.restreams.stop_all_and_wait().await;
    }

    /// Ends the stream here (ENDLIST) and removes it after the retention.
    async fn end(&mut self, myself: &ActorRef<StreamMsg>, generation: u64) {
        self.stop_restreams().await;
        self.show_phase();
        let _ = self.segmenter.send_message(SegmenterMsg::EndOfStream);
        let retention = self.args.ctx.config.streams.retention;
        myself.send_after(retention, move || StreamMsg::RetentionExpired {
            generation,
        });
    }
}

async fn spawn_segmenter(
    myself: &ActorRef<StreamMsg>,
    args: &StreamArgs,
    publisher: u64,
) -> Result<ActorRef<SegmenterMsg>, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(
        None,
        SegmenterActor,
        SegmenterArgs {
            stream: args.id.to_string(),
            publisher,
            live: args.live.clone(),
            ctx: args.ctx.clone(),
        },
        myself.get_cell(),
    )
    .await?;
    Ok(actor)
}

/// Starts a stream's viewer counter under `parent` (an origin's or an edge's supervisor).
pub(super) async fn spawn_viewer_counter(
    parent: ractor::ActorCell,
    id: &StreamId,
    stats: &Arc<StreamStats>,
    ctx: &Arc<NodeContext>,
) -> Result<ActorRef<ViewerMsg>, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(
        None,
        ViewerCounter,
        ViewerArgs {
            stream: id.to_string(),
            stats: stats.clone(),
            ctx: ctx.clone(),
        },
        parent,
    )
    .await?;
    Ok(actor)
}

impl Actor for StreamSupervisor {
    type Msg = StreamMsg;
    type State = StreamState;
    type Arguments = StreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StreamMsg>,
        args: StreamArgs,
    ) -> Result<StreamState, ActorProcessingErr> {
        let streams = &args.ctx.config.streams;
        let restarts = Restarts::new(
            args.id.as_str(),
            streams.max_restarts,
            streams.restart_window,
        );
        let credits = Arc::new(Semaphore::new(
            args.ctx.config.rtmp.max_pending_bytes as usize,
        ));
        let (reports, events) = mpsc::unbounded_channel();
        tokio::spawn(report_lifecycle(events, args.ctx.clone(), args.id.clone()));
        let segmenter = spawn_segmenter(&myself, &args, 0).await?;
        let viewers =
            spawn_viewer_counter(myself.get_cell(), &args.id, &args.stats, &args.ctx).await?;
        let tap = Arc::new(MediaTap::default());
        let restreams = Restreams::new(
            args.id.as_str(),
            tap.clone(),
            args.stats.clone(),
            args.ctx.clone(),
        );
        let restream_timer = myself.send_interval(RESTREAM_RECONCILE, || StreamMsg::Restream);
        Ok(StreamState {
            args,
            segmenter,
            viewers,
            ingest: None,
            replaced: BTreeSet::new(),
            lifecycle: StreamLifecycle::default(),
            lease_watch: None,
            credits,
            restarts,
            reports,
            publish: None,
            tap,
            restreams,
            producing: false,
            restream_timer,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StreamMsg>,
        state: &mut StreamState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.stats.sessions.stop();
        if let Some((ingest, kick)) = state.ingest.take() {
            let _ = kick.send("stream removed".into());
            ingest.stop(None);
        }
        state.segmenter.stop(None);
        state.viewers.stop(None);
        state.restream_timer.abort();
        state.stop_restreams().await;
        state.restreams.forget();
        tracing::info!(stream = %state.name(), "stream removed");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<StreamMsg>,
        msg: StreamMsg,
        state: &mut StreamState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StreamMsg::Attach { conn, reply } => state.attach(&myself, conn, reply).await?,
            StreamMsg::GraceExpired { generation } => {
                if let Timer::End { epoch, generation } =
                    state.lifecycle.handle_grace_expired(generation)
                {
                    tracing::info!(stream = %state.name(), "grace period over: stream ended");
                    let publish = state.publish.take();
                    let _ = state.reports.send(Report::Ended { epoch, publish });
                    state.end(&myself, generation).await;
                }
            }
            StreamMsg::RetentionExpired { generation } => {
                if state.lifecycle.handle_retention_expired(generation) == Timer::Remove {
                    myself.stop(Some("retention period over".into()));
                }
            }
            StreamMsg::LeaseLost {
                publisher,
                reason,
                ended,
            } => {
                if state.lifecycle.handle_lease_lost(publisher) == LeaseLost::FindNewOrigin {
                    tracing::warn!(stream = %state.name(), %reason, "no longer this stream's origin");
                    if ended {
                        let epoch = state.lifecycle.epoch();
                        let publish = state.publish.take();
                        let _ = state
                            .reports
                            .send(Report::EndedByCluster { epoch, publish });
                    }
                    state.close_publisher(format!(
                        "this node is no longer the stream's origin: {reason}"
                    ));
                    state.stop_restreams().await;
                    tokio::spawn(find_new_origin(
                        myself.clone(),
                        state.args.ctx.registry.clone(),
                        state.args.id.clone(),
                        publisher,
                        reason,
                    ));
                }
            }
            StreamMsg::OriginMoved {
                publisher,
                to,
                reason,
            } => match state.lifecycle.handle_origin_moved(publisher, to) {
                OriginMoved::Ignore => {}
                OriginMoved::Superseded => {
                    // The node supervisor turns this stream into an edge of the new
                    // origin, keeping its window: viewers here keep playing.
                    tracing::info!(stream = %state.name(), origin = ?to, "the stream moved to another node; following it as an edge");
                    myself.stop(Some(StopReason::Superseded.into()));
                }
                OriginMoved::EndHere { generation } => {
                    // Ended by an operator, or cut off from the cluster. The status is
                    // not this node's to write; an end by the cluster was reported to
                    // the hooks when the lease was lost.
                    tracing::warn!(stream = %state.name(), %reason, "ending the stream here");
                    state.end(&myself, generation).await;
                }
            },
            StreamMsg::HandOver { epoch, reply } => {
                match state.lifecycle.handle_hand_over(epoch) {
                    HandOverAnswer::Refuse { held } => {
                        let _ = reply.send(HandOver::Refused { held });
                    }
                    HandOverAnswer::NotProducing => {
                        let _ = reply.send(HandOver::NotProducing);
                    }
                    HandOverAnswer::HandOver { epoch: mine } => {
                        tracing::info!(stream = %state.name(), epoch, "another node took the stream over; handing it over");
                        state.close_publisher("another node took this stream over".into());
                        // Its destinations stop before the asker may start them.
                        state.stop_restreams().await;
                        // Once the segmenter has stopped, nothing more is produced here:
                        // the window is final for the asker to continue.
                        let stopped = state.stop_segmenter().await;
                        let _ = reply.send(if stopped {
                            HandOver::Stopped { epoch: mine }
                        } else {
                            HandOver::NotProducing
                        });
                        myself.stop(Some(StopReason::Superseded.into()));
                    }
                }
            }
            StreamMsg::Restream => state.reconcile_restreams(&myself).await,
            #[cfg(feature = "test-hooks")]
            StreamMsg::Crash(child) => {
                tracing::warn!(stream = %state.name(), actor = child.name(), "fault injection: crashing actor");
                let _ = match child {
                    StreamChild::Segmenter => state
                        .segmenter
                        .send_message(SegmenterMsg::Crash)
                        .map_err(|_| ()),
                    StreamChild::ViewerCounter => {
                        state.viewers.send_message(ViewerMsg::Crash).map_err(|_| ())
                    }
                    StreamChild::Ingest => match &state.ingest {
                        Some((i, _)) => i.send_message(IngestMsg::Crash).map_err(|_| ()),
                        None => Err(()),
                    },
                    StreamChild::Restream => match state.restreams.any() {
                        Some(r) => r
                            .send_message(super::restream::actor::RestreamMsg::Crash)
                            .map_err(|_| ()),
                        None => Err(()),
                    },
                    StreamChild::Relay => Err(()),
                };
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<StreamMsg>,
        event: SupervisionEvent,
        state: &mut StreamState,
    ) -> Result<(), ActorProcessingErr> {
        // ractor's default stops the supervisor when any child exits; we decide per child.
        let Some((id, exit)) = Exit::of(event) else {
            return Ok(());
        };
        if state.replaced.remove(&id) {
            return Ok(());
        }
        if state.restreams.exited(&myself.get_cell(), id, &exit).await {
            return Ok(());
        }
        if state.ingest.as_ref().is_some_and(|(i, _)| i.get_id() == id) {
            let reason = exit.reason();
            if let Some((_, kick)) = state.ingest.take() {
                let _ = kick.send(reason.clone());
            }
            let grace = state.args.ctx.config.streams.grace_period;
            tracing::info!(stream = %state.name(), %reason, grace = %humantime::format_duration(grace), "publisher gone; waiting for it to return");
            let generation = state.lifecycle.handle_publisher_gone();
            state.show_phase();
            myself.send_after(grace, move || StreamMsg::GraceExpired { generation });
            return Ok(());
        }
        let child = if state.segmenter.get_id() == id {
            StreamChild::Segmenter
        } else if state.viewers.get_id() == id {
            StreamChild::ViewerCounter
        } else {
            return Ok(());
        };
        let metrics = &state.args.ctx.metrics;
        state.restarts.restart(child, &exit, metrics)?;
        match child {
            StreamChild::Segmenter => {
                let publisher = state.lifecycle.publisher();
                state.segmenter = spawn_segmenter(&myself, &state.args, publisher).await?;
                if let Some((ingest, _)) = &state.ingest {
                    let _ = ingest.send_message(IngestMsg::Downstream(state.segmenter.clone()));
                }
                if state.lifecycle.phase() == Phase::Ended {
                    let _ = state.segmenter.send_message(SegmenterMsg::EndOfStream);
                }
            }
            StreamChild::ViewerCounter => {
                let a = &state.args;
                state.viewers =
                    spawn_viewer_counter(myself.get_cell(), &a.id, &a.stats, &a.ctx).await?;
            }
            StreamChild::Ingest | StreamChild::Relay | StreamChild::Restream => {
                unreachable!("ingest and restream are matched above; an origin has no relay")
            }
        }
        Ok(())
    }
}
