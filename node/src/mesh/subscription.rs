//! Stream subscriptions over the mesh: the serving side pushes a stream's window
//! (replay) and then each change as it happens; the subscribing side reads them.
//!
//! The serving side never waits for a subscriber: changes reach it through the
//! stream's bounded broadcast ([`LiveStream::subscribe`]); a subscriber that falls
//! more than that queue behind, or stops reading, has its QUIC stream reset with
//! [`RESET_OVERFLOW`] and subscribes again (see `hls::replica` for how it rejoins).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use castmesh_proto::mesh::v1::{self as pb, delivery};
use prost::Message as _;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{framing, wire};
use crate::live::LiveStream;
use crate::metrics::{GaugeHold, Metrics, ReasonLabel};
use crate::seams::Clock;
use castmesh_media::hls::window::{Replay, WindowEvent};

/// QUIC stream reset code: the subscriber fell behind and was cut off.
pub const RESET_OVERFLOW: u32 = 1;

/// Longest a single message may wait for a subscriber to read before it is cut off
/// (the same as falling behind: reset with [`RESET_OVERFLOW`]).
const STALLED_SUBSCRIBER: Duration = Duration::from_secs(10);

/// Largest replay accepted: a window of 100 segments of 2 s at 20 Mbit/s, twice.
const MAX_REPLAY_BYTES: usize = 1 << 30;

/// Longest the replay may take to arrive.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// The streams a node serves to subscribers: its own, as origin or as an edge.
/// Implemented by the stream layer; the mesh knows streams only through it.
#[async_trait::async_trait]
pub trait StreamSource: Send + Sync + 'static {
    fn stream(&self, id: &str) -> Option<Served>;
    /// The streams this node is the origin of, with their viewer reports.
    fn origins(&self) -> Vec<(String, Arc<dyn ViewerReports>)>;
    /// Node `by` says it holds stream `id`'s origin lease of `epoch`: if the
    /// replicated lease confirms it, stop producing the stream under any older epoch,
    /// now and later (see `Subscribe.take_over_epoch`).
    async fn hand_over(&self, id: &str, epoch: u64, by: u64) -> HandOver;
    /// What stream `id`'s restream destinations are doing, when this node is its
    /// origin (none otherwise).
    fn restream_statuses(&self, id: &str) -> Vec<castmesh_proto::mesh::v1::DestinationStatus>;
}

/// One stream as the mesh serves it.
pub struct Served {
    pub live: Arc<LiveStream>,
    /// Where subscribers' viewer counts go, and where a node's question for the
    /// stream's viewers by node is answered from.
    pub viewers: Arc<dyn ViewerReports>,
}

/// Viewer counts of one stream by node: edges report theirs to the origin.
pub trait ViewerReports: Send + Sync {
    /// Node `node` had `viewers` viewers at `now_ms`.
    fn report(&self, node: u64, viewers: u64, now_ms: u64);
    /// Viewers by node as known at `now_ms`: node `me`'s own and the recent reports.
    fn by_node(&self, me: u64, now_ms: u64) -> std::collections::BTreeMap<u64, u64>;
}

/// What a node did when another took a stream over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// It holds the lease of that epoch or a newer one: the asker's lease is stale.
    Refused { held: u64 },
    /// It was the origin under lease `epoch` and has stopped: its window is final.
    Stopped { epoch: u64 },
    /// It was not producing the stream.
    NotProducing,
    /// The cluster's lease of the stream is not the asker's of that epoch (or could
    /// not be read): nothing was fenced or stopped.
    Unconfirmed,
}

/// What the serving side needs besides the request.
pub(super) struct Serving {
    pub source: Arc<dyn StreamSource>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// The subscribing node.
    pub peer: u64,
}

/// Answers one `Subscribe` request on its QUIC stream.
pub(super) async fn serve(
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    request: pb::Subscribe,
    serving: Serving,
) -> anyhow::Result<()> {
    let mut handed_over_epoch = 0;
    if request.take_over_epoch > 0 {
        let epoch = request.take_over_epoch;
        match serving
            .source
            .hand_over(&request.stream, epoch, serving.peer)
            .await
        {
            HandOver::Refused { held } => {
                let refused = delivery::Kind::Refused(pb::Refused {
                    reason: format!("this node holds the stream's lease of epoch {held}"),
                    held_epoch: held,
                });
                write(&mut send, refused, 0).await?;
                send.finish()?;
                return Ok(());
            }
            HandOver::Unconfirmed => {
                serving
                    .metrics
                    .mesh_requests_refused
                    .get_or_create(&ReasonLabel {
                        reason: "takeover_unconfirmed",
                    })
                    .inc();
                let refused = delivery::Kind::Refused(pb::Refused {
                    reason: format!(
                        "the cluster's lease does not confirm epoch {epoch} for node {}",
                        serving.peer
                    ),
                    held_epoch: 0,
                });
                write(&mut send, refused, 0).await?;
                send.finish()?;
                return Ok(());
            }
            HandOver::Stopped { epoch } => handed_over_epoch = epoch,
            HandOver::NotProducing => {}
        }
    }
    let Some(stream) = serving.source.stream(&request.stream) else {
        let refused = delivery::Kind::Refused(pb::Refused {
            reason: "no such stream on this node".into(),
            held_epoch: 0,
        });
        write(&mut send, refused, 0).await?;
        send.finish()?;
        return Ok(());
    };
    let (replay, mut changes) = stream.live.subscribe();
    if !request.replay_only {
        tokio::spawn(take_reports(
            recv,
            stream.viewers.clone(),
            serving.peer,
            serving.clock.clone(),
        ));
    }
    // The subscription must not keep a removed stream alive: once it is gone, its
    // broadcast closes and the subscription ends.
    drop(stream);
    let label = Metrics::stream(&request.stream);
    let _served = GaugeHold::new(&serving.metrics.mesh_subscriptions.get_or_create(&label));
    let forwarded = serving
        .metrics
        .mesh_forwarded_bytes
        .get_or_create(&label)
        .clone();
    let now = serving.clock.now_ms();
    let mut bytes = write(
        &mut send,
        delivery::Kind::Subscribed(wire::subscribed(&replay, handed_over_epoch)),
        now,
    )
    .await?;
    for event in &replay.events {
        bytes += write_event(&mut send, event, now).await?;
    }
    bytes += write(
        &mut send,
        delivery::Kind::ReplayDone(pb::ReplayDone {}),
        now,
    )
    .await?;
    forwarded.inc_by(bytes as u64);
    if request.replay_only {
        send.finish()?;
        return Ok(());
    }
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            // The subscriber went away (its edge idled out, restarted, moved on): end
            // now rather than at the stream's next change, which may be far off.
            _ = send.stopped() => return Ok(()),
        };
        match change {
            Ok(batch) => {
                let now = serving.clock.now_ms();
                let mut bytes = 0;
                for event in batch.iter() {
                    match write_event(&mut send, event, now).await {
                        Ok(n) => bytes += n,
                        Err(e) if e.is::<Stalled>() => {
                            serving.metrics.mesh_subscriber_overflows.inc();
                            tracing::warn!(stream = %request.stream, "subscriber stopped reading; cutting it off");
                            let _ = send.reset(RESET_OVERFLOW.into());
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                forwarded.inc_by(bytes as u64);
            }
            Err(RecvError::Lagged(missed)) => {
                serving.metrics.mesh_subscriber_overflows.inc();
                tracing::warn!(stream = %request.stream, missed, "subscriber fell behind; cutting it off");
                let _ = send.reset(RESET_OVERFLOW.into());
                return Ok(());
            }
            Err(RecvError::Closed) => {
                send.finish()?;
                return Ok(());
            }
        }
    }
}

/// Records the viewer counts a subscriber reports, until it closes its side.
async fn take_reports(
    mut recv: quinn::RecvStream,
    viewers: Arc<dyn ViewerReports>,
    peer: u64,
    clock: Arc<dyn Clock>,
) {
    while let Ok(Some(report)) =
        framing::read::<pb::SubscriberReport>(&mut recv, framing::MAX_SMALL_FRAME).await
    {
        viewers.report(peer, report.viewers, clock.now_ms());
    }
}

async fn write_event(
    send: &mut quinn::SendStream,
    event: &WindowEvent,
    now: u64,
) -> anyhow::Result<usize> {
    write(send, delivery::Kind::Event(wire::event_to_wire(event)), now).await
}

/// Writes one delivery; returns its size on the wire.
async fn write(
    send: &mut quinn::SendStream,
    kind: delivery::Kind,
    sent_at_ms: u64,
) -> anyhow::Result<usize> {
    let message = pb::Delivery {
        kind: Some(kind),
        sent_at_ms,
    };
    tokio::time::timeout(STALLED_SUBSCRIBER, framing::write(send, &message))
        .await
        .map_err(|_| Stalled)?
}

/// A write waited `STALLED_SUBSCRIBER` for the subscriber to read.
#[derive(Debug, thiserror::Error)]
#[error("the subscriber stopped reading")]
struct Stalled;

/// Why a subscription could not start or ended.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The node does not have the stream.
    #[error("refused: {0}")]
    Refused(String),
    /// A take-over was refused: the node holds the stream's lease of this epoch, not
    /// older than the asker's.
    #[error("the node holds the stream's lease of epoch {0}")]
    Superseded(u64),
    /// The subscriber fell behind and was cut off; subscribing again catches up.
    #[error("fell behind the origin and was cut off")]
    Overflow,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The subscribing side: live changes after the replay.
pub struct Subscription {
    recv: quinn::RecvStream,
    /// Carries the subscriber's viewer reports; closing it would end the request.
    /// Taken by the [`Reporter`].
    send_half: Option<quinn::SendStream>,
}

/// The subscriber's half of a running subscription: viewer reports go up it.
pub struct Reporter {
    send: Option<quinn::SendStream>,
    reader: tokio::task::AbortHandle,
}

impl Reporter {
    /// Tells the serving node how many viewers this node has.
    pub async fn report_viewers(&mut self, viewers: u64) -> anyhow::Result<()> {
        let send = self.send.as_mut().context("subscription already closed")?;
        let report = pb::SubscriberReport { viewers };
        tokio::time::timeout(STALLED_SUBSCRIBER, framing::write(send, &report))
            .await
            .context("the origin stopped reading reports")??;
        Ok(())
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One live change and the serving node's clock when it sent it.
pub struct Change {
    pub event: WindowEvent,
    pub sent_at_ms: u64,
}

/// The replay a subscription starts with.
pub struct Replayed {
    pub replay: Replay,
    /// Set when the serving node was the stream's origin under this epoch and stopped
    /// producing when asked to (a take-over): the replay is that epoch's final window.
    pub handed_over: Option<u64>,
}

impl Subscription {
    /// Sends the request and reads the replay.
    pub(super) async fn start(
        connection: &quinn::Connection,
        request: pb::Subscribe,
    ) -> Result<(Replayed, Subscription), SubscriptionError> {
        let (mut send, recv) = connection.open_bi().await.map_err(anyhow::Error::from)?;
        let request = pb::Request {
            kind: Some(pb::request::Kind::Subscribe(request)),
        };
        framing::write(&mut send, &request).await?;
        let mut sub = Subscription {
            recv,
            send_half: Some(send),
        };
        let replayed = tokio::time::timeout(REPLAY_TIMEOUT, sub.read_replay())
            .await
            .context("the replay did not arrive in time")??;
        Ok((replayed, sub))
    }

    async fn read_replay(&mut self) -> Result<Replayed, SubscriptionError> {
        let (mut replay, handed_over) = match self.read().await?.context("no answer")? {
            delivery::Kind::Subscribed(s) => {
                let handed_over = Some(s.handed_over_epoch).filter(|e| *e > 0);
                (wire::replay_from_wire(s)?, handed_over)
            }
            delivery::Kind::Refused(r) if r.held_epoch > 0 => {
                return Err(SubscriptionError::Superseded(r.held_epoch));
            }
            delivery::Kind::Refused(r) => return Err(SubscriptionError::Refused(r.reason)),
            _ => return Err(anyhow::anyhow!("subscription answer out of order").into()),
        };
        let mut bytes = 0usize;
        loop {
            match self.read().await?.context("the replay ended early")? {
                delivery::Kind::Event(e) => {
                    bytes += e.encoded_len();
                    if bytes > MAX_REPLAY_BYTES {
                        return Err(
                            anyhow::anyhow!("replay larger than {MAX_REPLAY_BYTES} bytes").into(),
                        );
                    }
                    replay.events.push(wire::event_from_wire(e)?)
                }
                delivery::Kind::ReplayDone(_) => {
                    return Ok(Replayed {
                        replay,
                        handed_over,
                    });
                }
                _ => return Err(anyhow::anyhow!("unexpected message in a replay").into()),
            }
        }
    }

    /// Starts reading the changes in a task of its own: waiting on the returned
    /// channel can be abandoned at any point (a read of a frame cannot). The channel
    /// closes when the serving node ends the subscription, after an error if it failed.
    /// Dropping the [`Reporter`] stops the reading.
    pub fn run(
        mut self,
        queue: usize,
    ) -> (mpsc::Receiver<Result<Change, SubscriptionError>>, Reporter) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let send = self.send_half.take();
        let reader = tokio::spawn(async move {
            loop {
                let next = match self.next().await {
                    Ok(Some(change)) => Ok(change),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        (
            rx,
            Reporter {
                send,
                reader: reader.abort_handle(),
            },
        )
    }

    /// The next change; `None` when the serving node ended the subscription.
    async fn next(&mut self) -> Result<Option<Change>, SubscriptionError> {
        let Some(message) = self.read_delivery().await? else {
            return Ok(None);
        };
        match message.kind {
            Some(delivery::Kind::Event(e)) => Ok(Some(Change {
                event: wire::event_from_wire(e)?,
                sent_at_ms: message.sent_at_ms,
            })),
            _ => Err(anyhow::anyhow!("unexpected message in a subscription").into()),
        }
    }

    async fn read(&mut self) -> Result<Option<delivery::Kind>, SubscriptionError> {
        Ok(self.read_delivery().await?.and_then(|d| d.kind))
    }

    async fn read_delivery(&mut self) -> Result<Option<pb::Delivery>, SubscriptionError> {
        match framing::read::<pb::Delivery>(&mut self.recv, framing::MAX_FRAME).await {
            Ok(d) => Ok(d),
            Err(e) => {
                let reset = e
                    .downcast_ref::<quinn::ReadExactError>()
                    .is_some_and(|r| {
                        matches!(r, quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code)) if *code == RESET_OVERFLOW.into())
                    });
                Err(if reset {
                    SubscriptionError::Overflow
                } else {
                    SubscriptionError::Failed(e)
                })
            }
        }
    }
}
