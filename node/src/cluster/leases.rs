//! The origin leases this node holds, and their renewal.
//!
//! One entry per stream this node is origin of. A renewal task per lease renews it
//! every third of the TTL; when the cluster answers that the lease is gone (taken over,
//! ended by an operator, stream deleted), or when renewals fail for a whole TTL (this
//! node is cut off from the quorum, so another node may take over), the lease's `lost`
//! channel carries the reason and the stream stops acting as origin here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castmesh_cluster::command::{Command, Rejection, Response};
use castmesh_cluster::member::{ClusterError, ClusterMember};
use castmesh_cluster::model::{Lease, MediaReach, NodeId};
use castmesh_cluster::state::NO_NODE;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::seams::Clock;
use crate::stream::registry::{LeaseLoss, OriginLease, PublishDenied, ReachSource, StreamId};

struct Held {
    epoch: u64,
    reach: ReachSource,
    lost: watch::Sender<Option<LeaseLoss>>,
    renewal: JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    member: ClusterMember,
    node: NodeId,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    held: BTreeMap<StreamId, Held>,
    /// Per stream, the newest epoch another node said it took the stream over with
    /// (see [`Leases::fence`]): no older lease may start producing here.
    fences: BTreeMap<StreamId, u64>,
}

impl Leases {
    pub fn new(
        member: ClusterMember,
        node: NodeId,
        ttl: Duration,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                member,
                node,
                ttl,
                clock,
                metrics,
                table: Mutex::default(),
            }),
        }
    }

    pub fn ttl_ms(&self) -> u64 {
        self.inner.ttl.as_millis() as u64
    }

    /// Records a lease just acquired (replacing an older local one) and starts renewing
    /// it. The lease is kept while its `lost` receiver lives: when every receiver is
    /// dropped (the publish never attached, the stream stopped), it is released.
    pub fn hold(&self, stream: StreamId, lease: Lease, acquired_at: Instant) -> OriginLease {
        let mut table = self.table();
        if let Some(fence) = table.fences.get(&stream).filter(|f| **f > lease.epoch) {
            // Another node took the stream over while this publish was acquiring:
            // this lease is lost before it is used.
            let reason = format!("another node took the stream over (epoch {fence})");
            return OriginLease {
                epoch: lease.epoch,
                floor: lease.reach,
                reach: ReachSource::default(),
                lost: watch::channel(Some(LeaseLoss::moved(reason))).1,
            };
        }
        table.fences.remove(&stream);
        let (lost, receiver) = watch::channel(None);
        let held = &mut table.held;
        if held.get(&stream).is_some_and(|h| h.epoch > lease.epoch) {
            // A concurrent publish here already holds a newer epoch; this one is stale
            // (its attach is refused) and nothing renews it.
            return OriginLease {
                epoch: lease.epoch,
                floor: lease.reach,
                reach: ReachSource::default(),
                lost: receiver,
            };
        }
        // The simulation's one-origin-per-epoch check reads this event (target and
        // fields are its interface); operators can follow origin moves with it too.
        tracing::info!(
            target: "castmesh::origin",
            node = self.inner.node,
            stream = %stream,
            epoch = lease.epoch,
            "holding the origin lease"
        );
        let renewal = tokio::spawn(self.clone().renew(stream.clone(), lease.epoch, acquired_at));
        let reach = ReachSource::default();
        held.insert(
            stream,
            Held {
                epoch: lease.epoch,
                reach: reach.clone(),
                lost,
                renewal,
            },
        );
        self.count(held);
        OriginLease {
            epoch: lease.epoch,
            floor: lease.reach,
            reach,
            lost: receiver,
        }
    }

    fn count(&self, held: &BTreeMap<StreamId, Held>) {
        self.inner.metrics.origin_leases.set(held.len() as i64);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Another node holds stream's lease of `epoch`: a lease held here of an older
    /// epoch is lost now, and one acquired later of an older epoch is lost at once.
    /// `Err(held)` when this node holds the lease of `epoch` or a newer one.
    pub fn fence(&self, stream: &StreamId, epoch: u64) -> Result<(), u64> {
        let mut table = self.table();
        if let Some(held) = table.held.get(stream).map(|h| h.epoch) {
            if held >= epoch {
                return Err(held);
            }
            drop(table);
            self.revoke(
                stream,
                held,
                LeaseLoss::moved(format!("another node took the stream over (epoch {epoch})")),
            );
            table = self.table();
        }
        let fence = table.fences.entry(stream.clone()).or_default();
        *fence = (*fence).max(epoch);
        // Take-overs are rare, so this is where fences of deleted streams go: the table
        // stays within one entry per stream the cluster knows. (The cluster state is
        // read without the table locked: no lock is ever held while taking the other.)
        let fenced: Vec<StreamId> = table.fences.keys().cloned().collect();
        drop(table);
        let deleted = self.inner.member.read_local(|s| {
            fenced
                .into_iter()
                .filter(|id| id != stream && !s.streams.contains_key(id))
                .collect::<Vec<_>>()
        });
        let mut table = self.table();
        for id in deleted {
            table.fences.remove(&id);
        }
        Ok(())
    }

    /// Whether the lease of `epoch` is still held and someone still uses it.
    fn in_use(&self, stream: &StreamId, epoch: u64) -> Option<bool> {
        self.with_held(stream, epoch, |h| !h.lost.is_closed())
    }

    /// Where the stream's reach is read for a renewal of the lease of `epoch`.
    fn reach_source(&self, stream: &StreamId, epoch: u64) -> Option<ReachSource> {
        self.with_held(stream, epoch, |h| h.reach.clone())
    }

    fn with_held<T>(&self, stream: &StreamId, epoch: u64, f: impl FnOnce(&Held) -> T) -> Option<T> {
        self.table()
            .held
            .get(stream)
            .filter(|h| h.epoch == epoch)
            .map(f)
    }

    /// Records in the lease of `epoch` (renewing it) that the stream's media starts no
    /// further than `start`. Refused when the lease is lost, unavailable without a
    /// quorum: either way the publish must not produce.
    pub async fn record(
        &self,
        stream: &StreamId,
        epoch: u64,
        start: MediaReach,
    ) -> Result<(), PublishDenied> {
        let command = Command::RenewLease {
            stream: stream.clone(),
            node: self.inner.node,
            epoch,
            now: self.inner.clock.now_ms(),
            ttl_ms: self.ttl_ms(),
            reach: start,
        };
        match self.inner.member.write(command).await {
            Ok(Response::Lease(_)) => Ok(()),
            Ok(Response::Rejected(r)) => Err(PublishDenied::Superseded(r.to_string())),
            Ok(other) => {
                tracing::error!(%stream, epoch, answer = ?other, "unexpected answer recording the stream's start");
                Err(PublishDenied::ClusterUnavailable)
            }
            Err(e) => {
                tracing::warn!(%stream, epoch, error = %e, "could not record the stream's start");
                Err(PublishDenied::ClusterUnavailable)
            }
        }
    }

    /// Forgets the lease of `epoch` if it is still the one held; true if it was.
    pub fn forget(&self, stream: &StreamId, epoch: u64) -> bool {
        let mut table = self.table();
        let current = table.held.get(stream).is_some_and(|h| h.epoch == epoch);
        if current {
            table.held.remove(stream);
        }
        self.count(&table.held);
        current
    }

    /// Gives a lease up in the cluster (the stream ended here), so the next origin does
    /// not have to wait for it to expire.
    pub async fn release(&self, stream: &StreamId, epoch: u64) {
        if self.in_use(stream, epoch).is_some() {
            self.write_release(stream, epoch).await;
            self.forget(stream, epoch);
        }
    }

    async fn write_release(&self, stream: &StreamId, epoch: u64) {
        let command = Command::ReleaseLease {
            stream: stream.clone(),
            node: self.inner.node,
            epoch,
        };
        if let Err(e) = self.inner.member.write(command).await {
            tracing::warn!(%stream, epoch, error = %e, "could not release the origin lease; it will expire");
        }
    }

    fn revoke(&self, stream: &StreamId, epoch: u64, loss: LeaseLoss) {
        let mut table = self.table();
        let held = &mut table.held;
        if held.get(stream).is_some_and(|h| h.epoch == epoch) {
            tracing::warn!(%stream, epoch, reason = %loss.reason, "origin lease lost: this node stops acting as origin");
            self.inner.metrics.origin_leases_lost.inc();
            if let Some(h) = held.remove(stream) {
                let _ = h.lost.send(Some(loss));
            }
        }
        self.count(held);
    }

    async fn renew(self, stream: StreamId, epoch: u64, acquired_at: Instant) {
        let ttl = self.inner.ttl;
        // Measured on this node's monotonic clock from before the acquiring write was
        // sent, so the local view expires no later than the cluster's.
        let mut valid_until = acquired_at + ttl;
        loop {
            tokio::time::sleep(ttl / 3).await;
            match self.in_use(&stream, epoch) {
                None => return,
                Some(false) => {
                    // Nobody feeds or serves the stream under this lease any more. The
                    // task ends with `forget` (which aborts it), after the write.
                    self.write_release(&stream, epoch).await;
                    self.forget(&stream, epoch);
                    return;
                }
                Some(true) => {}
            }
            let attempt = Instant::now();
            let reach = self.reach_source(&stream, epoch).and_then(|r| r.read());
            let command = Command::RenewLease {
                stream: stream.clone(),
                node: self.inner.node,
                epoch,
                now: self.inner.clock.now_ms(),
                ttl_ms: self.ttl_ms(),
                reach: reach.unwrap_or_default(),
            };
            // Past `valid_until` another node may already be origin: stop waiting then.
            let answer = tokio::time::timeout_at(valid_until, self.inner.member.write(command))
                .await
                .unwrap_or(Err(ClusterError::Unavailable(ttl)));
            match answer {
                Ok(Response::Lease(_)) => valid_until = attempt + ttl,
                Ok(Response::Rejected(r)) => {
                    let reason = r.to_string();
                    // The leader's lease names nobody, one epoch on: an end (stop,
                    // delete, sweeper) fenced this very lease. A take-over names the
                    // new origin; a later epoch is someone else's lease, ended or not.
                    let loss = match r {
                        Rejection::LeaseLost(l) if l.node == NO_NODE && l.epoch == epoch + 1 => {
                            LeaseLoss::ended(reason)
                        }
                        _ => LeaseLoss::moved(reason),
                    };
                    return self.revoke(&stream, epoch, loss);
                }
                Ok(other) => {
                    let reason = format!("unexpected answer {other:?}");
                    return self.revoke(&stream, epoch, LeaseLoss::moved(reason));
                }
                Err(e) if Instant::now() >= valid_until => {
                    let reason = format!(
                        "not renewed within {}: {e}",
                        humantime::format_duration(ttl)
                    );
                    return self.revoke(&stream, epoch, LeaseLoss::moved(reason));
                }
                Err(e) => {
                    tracing::warn!(%stream, epoch, error = %e, "origin lease renewal failed; retrying");
                }
            }
        }
    }
}

#[cfg(all(test, feature = "rocksdb"))]
mod tests {
    use std::collections::BTreeMap;

    use castmesh_cluster::auth::BearerToken;
    use castmesh_cluster::keys::KeyHash;
    use castmesh_cluster::member::MemberConfig;
    use castmesh_cluster::openraft::{self, BasicNode};
    use castmesh_cluster::raft::rocks::RocksStore;
    use castmesh_cluster::transport::Channels;

    use super::*;
    use crate::seams::clock::SystemClock;

    /// A one-node cluster on a real RocksDB store (it needs no network).
    async fn alone(dir: &tempfile::TempDir) -> ClusterMember {
        let member = ClusterMember::open(MemberConfig {
            id: 1,
            store: Arc::new(RocksStore::open(dir.path()).unwrap()),
            channels: Channels::tcp(),
            secret: BearerToken::new("secret"),
            raft: openraft::Config {
                heartbeat_interval: 50,
                election_timeout_min: 100,
                election_timeout_max: 200,
                ..Default::default()
            },
        })
        .await
        .unwrap();
        let voters = BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]);
        member.raft().initialize(voters).await.unwrap();
        member
            .raft()
            .wait(Some(Duration::from_secs(10)))
            .current_leader(1, "the node leads itself")
            .await
            .unwrap();
        member
    }

    async fn create(member: &ClusterMember, id: &StreamId) {
        let command = Command::CreateStream {
            id: id.clone(),
            title: String::new(),
            owner: String::new(),
            key_hash: KeyHash([id.as_str().len() as u8; 32]),
            scheduled_at: None,
            now: 0,
            owner_id: None,
            description: String::new(),
        };
        member.write(command).await.unwrap();
    }

    #[tokio::test]
    async fn fences_of_deleted_streams_are_dropped_at_the_next_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let member = alone(&dir).await;
        let (a, b) = (
            StreamId::parse("a").unwrap(),
            StreamId::parse("bb").unwrap(),
        );
        create(&member, &a).await;
        create(&member, &b).await;
        let leases = Leases::new(
            member.clone(),
            1,
            Duration::from_secs(5),
            Arc::new(SystemClock),
            Arc::new(Metrics::new()),
        );
        leases.fence(&a, 2).unwrap();
        leases.fence(&b, 2).unwrap();
        let fenced = || leases.table().fences.clone();
        assert_eq!(fenced(), BTreeMap::from([(a.clone(), 2), (b.clone(), 2)]));

        member
            .write(Command::DeleteStream { id: a.clone() })
            .await
            .unwrap();
        leases.fence(&b, 3).unwrap();
        assert_eq!(fenced(), BTreeMap::from([(b.clone(), 3)]));
        member.raft().shutdown().await.unwrap();
    }
}
