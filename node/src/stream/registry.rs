//! Who may publish, under which public stream id, and whether this node is still the
//! stream's origin.
//!
//! [`StreamRegistry`] is the seam between the media path and the cluster metadata:
//! the node uses the Raft-backed `cluster::registry::ClusterRegistry` (also in
//! `--dev`, as a one-node cluster); a simulator can substitute its own.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use tokio::sync::watch;

pub use castmesh_cluster::ids::{InvalidStreamId, StreamId, StreamKey};
use castmesh_cluster::member::NotReady;
use castmesh_cluster::model::{MediaReach, StreamStatus};
use castmesh_cluster::restream::Destination;

use crate::live::LiveStream;

/// Why a publish was refused. The words are safe to log and to send to the publisher
/// (never the key); each protocol maps the variants to its own status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishDenied {
    #[error("unknown stream key")]
    UnknownKey,
    /// Open publishing: the name is taken by a stream created with its own key.
    #[error("this name belongs to a stream with its own key")]
    NameTaken,
    /// Open publishing: the name cannot be a stream id.
    #[error("{0}")]
    InvalidName(#[from] InvalidStreamId),
    /// The `on_publish` hook refused (its words: the status it answered).
    #[error("refused: {0}")]
    HookRefused(String),
    /// The `on_publish` hook could not be asked, and it must be (docs/api.md).
    #[error("the publish check is unavailable; try again")]
    HookUnavailable,
    #[error("stream {id} is {status}")]
    Closed { id: StreamId, status: StreamStatus },
    /// Its owner stopped it; the key works again after a start.
    #[error("stream {0} was stopped; start it again to publish")]
    Stopped(StreamId),
    #[error("too many refused publish attempts from this address; try again in {wait_s} s")]
    TooManyRefusals { wait_s: u64 },
    #[error("this address created too many streams; try again in {wait_s} s")]
    TooManyStreams { wait_s: u64 },
    #[error("the cluster is unavailable; try again")]
    ClusterUnavailable,
    #[error("other publishers keep taking this stream over; try again")]
    Contended,
    /// A newer publish (here or on another node) holds the stream; the words say which.
    #[error("{0}")]
    Superseded(String),
    #[error("this node already serves its limit of {0} streams")]
    NodeFull(usize),
    #[error("this connection is already publishing")]
    AlreadyPublishing,
    #[error("internal error starting the stream")]
    Internal,
    #[error("the node could not attach the stream in time")]
    AttachTimeout,
}

/// A stream as the publish check reads it.
#[derive(Debug, Clone)]
pub struct KeyedStream {
    pub id: StreamId,
    pub status: StreamStatus,
    /// False after a stop, until the next start.
    pub accepting: bool,
    /// Its origin lease's epoch (0: never had an origin).
    pub epoch: u64,
}

impl KeyedStream {
    /// Whether the stream takes a publisher at all.
    pub fn publishable(&self) -> Result<(), PublishDenied> {
        if matches!(
            self.status,
            StreamStatus::Archived | StreamStatus::Cancelled
        ) {
            return Err(PublishDenied::Closed {
                id: self.id.clone(),
                status: self.status,
            });
        }
        if !self.accepting {
            return Err(PublishDenied::Stopped(self.id.clone()));
        }
        Ok(())
    }
}

/// Why an origin lease was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLoss {
    pub reason: String,
    /// The cluster ended the stream while this lease held it (a stop, a delete, the
    /// sweeper): nobody took it over, so the stream really ended under this epoch.
    pub ended: bool,
}

impl LeaseLoss {
    /// Another node holds the stream now, or this node could not renew in time.
    pub fn moved(reason: String) -> Self {
        Self {
            reason,
            ended: false,
        }
    }

    /// An end fenced the lease: the leader's lease names no node, one epoch on.
    pub fn ended(reason: String) -> Self {
        Self {
            reason,
            ended: true,
        }
    }
}

/// Permission to act as a stream's origin, held while the publisher feeds it.
pub struct OriginLease {
    /// The fencing epoch: it grows with every new origin.
    pub epoch: u64,
    /// How far the stream's numbering got by the cluster's record when this lease
    /// was acquired (see `stream::takeover`).
    pub floor: MediaReach,
    /// Where the lease's renewals read how far the stream got since.
    pub reach: ReachSource,
    /// Becomes `Some(loss)` when this node lost the lease (taken over elsewhere,
    /// ended by an operator, not renewable): it must stop acting as origin. A closed
    /// channel without a reason means a newer local lease replaced this one.
    pub lost: watch::Receiver<Option<LeaseLoss>>,
}

/// The window a lease's renewals read the stream's reach from, once a publisher has
/// attached (before that they record nothing new).
#[derive(Clone, Default)]
pub struct ReachSource(Arc<OnceLock<Weak<LiveStream>>>);

impl ReachSource {
    pub fn follow(&self, live: &Arc<LiveStream>) {
        let _ = self.0.set(Arc::downgrade(live));
    }

    pub fn read(&self) -> Option<MediaReach> {
        let live = self.0.get()?.upgrade()?;
        let w = live.read();
        let ((m1, d1), (m2, d2)) = (w.reach(), w.listed().reach());
        Some(MediaReach {
            next_msn: m1.max(m2),
            discontinuities: d1.max(d2),
        })
    }
}

/// An accepted publish.
pub struct PublishGrant {
    pub id: StreamId,
    pub lease: OriginLease,
}

/// Why a take-over did not fence this node's leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceRefused {
    /// This node holds a lease of epoch `held`, not older than the asker's.
    Held(u64),
    /// The replicated lease is not the asker's of that epoch, or could not be read.
    Unconfirmed(String),
}

/// Where a stream's media comes from, as this node's copy of the metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginLookup {
    /// The origin lease names `node` (live, or expired by this node's clock but neither
    /// released nor taken over); `mesh` is where it serves subscriptions.
    Node {
        node: u64,
        epoch: u64,
        mesh: Option<SocketAddr>,
    },
    /// No lease names a node (released, ended by an operator, never taken, or expired
    /// on a stream that is not live). `ended`: the stream is not live any more, or does
    /// not exist.
    Vacant { ended: bool },
}

#[async_trait]
pub trait StreamRegistry: Send + Sync + 'static {
    /// The stream whose key `key` is, by a linearizable read: a key rotated or a
    /// stream deleted a moment ago anywhere in the cluster is seen.
    async fn stream_for_key(&self, key: &StreamKey) -> Result<Option<KeyedStream>, PublishDenied>;
    /// Makes stream `id`, owned by nobody, with `key` (open publishing, or a name the
    /// publish hook accepted). `Ok(false)`: not made, because the key or the id is
    /// taken (maybe by a concurrent publish of the same key): look the key up again.
    async fn create_for_key(&self, key: &StreamKey, id: StreamId) -> Result<bool, PublishDenied>;
    /// Makes this node the stream's origin (a compare-and-set of its lease, taking it
    /// over from another node); called before "publish started" is sent.
    async fn acquire_origin(&self, stream: KeyedStream) -> Result<PublishGrant, PublishDenied>;
    /// Records in the lease of `epoch` that the stream's media starts no further than
    /// `start` (`stream::takeover::start_of`); the new origin produces only after.
    async fn record_start(
        &self,
        id: &StreamId,
        epoch: u64,
        start: MediaReach,
    ) -> Result<(), PublishDenied>;
    /// The stream has a publisher on this node, under the lease of `epoch`.
    async fn stream_live(&self, id: &StreamId, epoch: u64);
    /// The grace period after the publisher of `epoch` left ran out: the stream ended.
    /// True when the stream ended under `epoch`: this call ended it, or a stop or
    /// delete had fenced that epoch first. False after a take-over, or without an
    /// answer from the cluster.
    async fn stream_ended(&self, id: &StreamId, epoch: u64) -> bool;
    /// Who serves the stream's media now. A local read: edges follow the lease as
    /// replicated to them, without a round trip to the Raft leader per request.
    fn locate_origin(&self, id: &StreamId) -> OriginLookup;
    /// Node `by` says it holds the stream's origin lease of `epoch`: once the
    /// replicated lease confirms it, a lease of an older epoch held or acquired here
    /// is lost.
    async fn fence(&self, id: &StreamId, epoch: u64, by: u64) -> Result<(), FenceRefused>;
    /// The stream's restream destinations (keys included), oldest first, as this
    /// node's copy of the metadata has them.
    fn destinations(&self, id: &StreamId) -> Vec<Destination>;
    /// The other nodes' mesh addresses.
    fn peers(&self) -> Vec<(u64, SocketAddr)>;
    /// Resolves once node `id` is known not to be running: its gRPC server refused the
    /// connection or failed a health check. Never resolves for a node that answers.
    async fn down(&self, id: u64);
    /// This node's id.
    fn node_id(&self) -> u64;
    /// Whether the node can take its share of work (`/readyz`); `Err` says why not.
    async fn readiness(&self) -> Result<(), NotReady>;
}
