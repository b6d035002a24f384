//! [`ClusterRegistry`]: the publish check against the replicated metadata.
//!
//! A publish is accepted only after a linearizable read of the key's stream (so a key
//! rotated or a stream deleted a moment ago anywhere in the cluster is seen) and a
//! compare-and-set acquisition of the stream's origin lease. Taking the lease from
//! another node is how a publisher takeover across nodes works: the old origin's next
//! renewal fails and it drops its publisher.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use castmesh_cluster::command::{Command, Fence, Rejection, Response};
use castmesh_cluster::keys;
use castmesh_cluster::member::{ClusterMember, NotReady};
use castmesh_cluster::model::{MediaReach, NodeId, StreamStatus};
use castmesh_cluster::restream::Destination;
use castmesh_cluster::sabotage::{self, Bug};
use castmesh_cluster::state::{ClusterState, NO_NODE};
use castmesh_cluster::transport::Channels;
use tokio::time::Instant;
use tonic_health::pb::health_client::HealthClient;

use super::leases::Leases;
use super::probe::{self, Health};
use crate::seams::Clock;
use crate::stream::registry::{
    FenceRefused, KeyedStream, OriginLookup, PublishDenied, PublishGrant, StreamId, StreamKey,
    StreamRegistry,
};

/// Compare-and-set rounds lost to concurrent publishes before giving up.
const ACQUIRE_ATTEMPTS: usize = 5;

pub struct ClusterRegistry {
    member: ClusterMember,
    node: NodeId,
    clock: Arc<dyn Clock>,
    leases: Leases,
    /// To peers' gRPC servers, for [`StreamRegistry::down`].
    channels: Channels,
}

fn unavailable(e: impl std::fmt::Display) -> PublishDenied {
    tracing::warn!(error = %e, "publish check failed: cluster unavailable");
    PublishDenied::ClusterUnavailable
}

impl ClusterRegistry {
    pub fn new(
        member: ClusterMember,
        node: NodeId,
        clock: Arc<dyn Clock>,
        leases: Leases,
        channels: Channels,
    ) -> Self {
        Self {
            member,
            node,
            clock,
            leases,
            channels,
        }
    }

    /// The cluster's answer; `None` when none came.
    async fn set_status(
        &self,
        id: &StreamId,
        status: StreamStatus,
        epoch: u64,
    ) -> Option<Response> {
        let command = Command::SetStatus {
            id: id.clone(),
            status,
            now: self.clock.now_ms(),
            fence: Some(Fence {
                node: self.node,
                epoch,
            }),
        };
        match self.member.write(command).await {
            Ok(answer) => {
                if let Response::Rejected(r) = &answer {
                    tracing::info!(stream = %id, ?status, epoch, reason = %r, "status not changed");
                }
                Some(answer)
            }
            Err(e) => {
                tracing::error!(stream = %id, ?status, error = %e, "could not record the stream status");
                None
            }
        }
    }
}

#[async_trait]
impl StreamRegistry for ClusterRegistry {
    async fn stream_for_key(&self, key: &StreamKey) -> Result<Option<KeyedStream>, PublishDenied> {
        self.member
            .read(|s| {
                s.stream_for_key(key).map(|r| KeyedStream {
                    id: r.id.clone(),
                    status: r.status,
                    accepting: r.accepting,
                    epoch: s.leases.get(&r.id).map_or(0, |l| l.epoch),
                })
            })
            .await
            .map_err(unavailable)
    }

    async fn create_for_key(&self, key: &StreamKey, id: StreamId) -> Result<bool, PublishDenied> {
        let command = Command::CreateOpenStream {
            id,
            key_hash: keys::hash(key),
            now: self.clock.now_ms(),
        };
        match self.member.write(command).await.map_err(unavailable)? {
            Response::Stream(_) => Ok(true),
            // Created concurrently by the same key elsewhere, or by a retried write
            // that had committed; or the id belongs to another key.
            Response::Rejected(Rejection::KeyInUse)
            | Response::Rejected(Rejection::StreamExists(_)) => Ok(false),
            other => Err(unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn acquire_origin(&self, mut found: KeyedStream) -> Result<PublishGrant, PublishDenied> {
        for _ in 0..ACQUIRE_ATTEMPTS {
            let started = Instant::now();
            let command = Command::AcquireLease {
                stream: found.id.clone(),
                node: self.node,
                expected_epoch: found.epoch,
                now: self.clock.now_ms(),
                ttl_ms: self.leases.ttl_ms(),
            };
            match self.member.write(command).await.map_err(unavailable)? {
                Response::Lease(lease) => {
                    if found.epoch > 0 {
                        tracing::info!(stream = %found.id, epoch = lease.epoch, "took the origin lease over");
                    }
                    let lease = self.leases.hold(found.id.clone(), lease, started);
                    return Ok(PublishGrant {
                        id: found.id,
                        lease,
                    });
                }
                // Someone else acquired in between: take over from the newer epoch.
                Response::Rejected(Rejection::StaleEpoch { current, .. }) => found.epoch = current,
                Response::Rejected(Rejection::NoSuchStream(_)) => {
                    return Err(PublishDenied::UnknownKey);
                }
                Response::Rejected(Rejection::StreamStopped(id)) => {
                    return Err(PublishDenied::Stopped(id));
                }
                other => return Err(unavailable(format!("unexpected answer {other:?}"))),
            }
        }
        Err(PublishDenied::Contended)
    }

    async fn record_start(
        &self,
        id: &StreamId,
        epoch: u64,
        start: MediaReach,
    ) -> Result<(), PublishDenied> {
        self.leases.record(id, epoch, start).await
    }

    async fn stream_live(&self, id: &StreamId, epoch: u64) {
        self.set_status(id, StreamStatus::Live, epoch).await;
    }

    async fn stream_ended(&self, id: &StreamId, epoch: u64) -> bool {
        let answer = self.set_status(id, StreamStatus::Ended, epoch).await;
        self.leases.release(id, epoch).await;
        match answer {
            Some(Response::Stream(_)) => true,
            // A stop or delete fenced this epoch during the grace period, before this
            // node's renewal noticed: the stream ended under this epoch all the same.
            Some(Response::Rejected(Rejection::LeaseLost(l))) => {
                l.node == NO_NODE && l.epoch == epoch + 1
            }
            _ => false,
        }
    }

    async fn fence(&self, id: &StreamId, epoch: u64, by: u64) -> Result<(), FenceRefused> {
        let confirms = |s: &ClusterState| {
            s.leases
                .get(id)
                .is_some_and(|l| l.node == by && l.epoch == epoch)
        };
        // The asker's lease was committed a moment ago and may not be applied here yet:
        // when the local copy does not show it, read up to the leader's commit index.
        let confirmed = self.member.read_local(confirms)
            || self
                .member
                .read(confirms)
                .await
                .map_err(|e| FenceRefused::Unconfirmed(e.to_string()))?;
        if !confirmed {
            return Err(FenceRefused::Unconfirmed(format!(
                "the cluster's lease of {id} is not node {by}'s of epoch {epoch}"
            )));
        }
        self.leases.fence(id, epoch).map_err(FenceRefused::Held)
    }

    fn locate_origin(&self, id: &StreamId) -> OriginLookup {
        let now = self.clock.now_ms();
        self.member.read_local(|s| {
            let Some(record) = s.streams.get(id) else {
                return OriginLookup::Vacant { ended: true };
            };
            // A lease names its holder until it is released or taken over, also past
            // its expiry as long as the stream is live: whether it expired depends on
            // whose clock reads it (nodes' clocks may disagree by seconds), and an
            // edge gains nothing by leaving an origin that may well be alive. A dead
            // one is found out by the subscription itself.
            let clock_bound = sabotage::active(Bug::ClockBoundFollow);
            let followed = s.leases.get(id).copied().filter(|l| {
                l.is_live(now)
                    || (l.expires_at > 0 && record.status == StreamStatus::Live && !clock_bound)
            });
            match followed {
                Some(lease) if lease.node != NO_NODE => OriginLookup::Node {
                    node: lease.node,
                    epoch: lease.epoch,
                    mesh: s.nodes.get(&lease.node).and_then(|n| n.quic.parse().ok()),
                },
                _ => OriginLookup::Vacant {
                    ended: record.status != StreamStatus::Live,
                },
            }
        })
    }

    fn destinations(&self, id: &StreamId) -> Vec<Destination> {
        self.member.read_local(|s| {
            s.destinations
                .get(id)
                .map(|d| d.list.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    fn peers(&self) -> Vec<(u64, SocketAddr)> {
        self.member.read_local(|s| {
            s.nodes
                .values()
                .filter(|n| n.id != self.node)
                .filter_map(|n| Some((n.id, n.quic.parse().ok()?)))
                .collect()
        })
    }

    async fn down(&self, id: u64) {
        let addr = self
            .member
            .read_local(|s| s.nodes.get(&id).map(|n| n.grpc.clone()));
        let Some(channel) = addr.and_then(|a| self.channels.to(&a, probe::TIMEOUT).ok()) else {
            return std::future::pending().await;
        };
        match probe::health(HealthClient::new(channel)).await {
            Health::Failed(status) => {
                tracing::debug!(node = id, error = %status, "peer is down");
            }
            // Answered, or too slow to tell: it may still be running.
            Health::Serving | Health::Silent => std::future::pending().await,
        }
    }

    fn node_id(&self) -> u64 {
        self.node
    }

    async fn readiness(&self) -> Result<(), NotReady> {
        self.member.readiness().await
    }
}
