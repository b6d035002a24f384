//! A Raft cluster of [`ClusterMember`]s in one process, on loopback gRPC, each with its
//! own RocksDB directory: the real stores and transport, without node processes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::member::{ClusterMember, MemberConfig};
use castmesh_cluster::raft::rocks::RocksStore;
use castmesh_cluster::transport::Channels;
use openraft::{BasicNode, Config};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

pub const SECRET: &str = "loopback-cluster-secret";

pub struct LoopbackNode {
    pub member: ClusterMember,
    pub addr: SocketAddr,
    /// Its gRPC server and the signal that stops it, until stopped.
    server: Option<(JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>,
}

impl LoopbackNode {
    /// Starts a member with its data in `dir`, serving on `listener`, snapshotting
    /// every `snapshot_every` log entries.
    pub async fn start(
        id: u64,
        dir: &TempDir,
        listener: TcpListener,
        snapshot_every: u64,
    ) -> LoopbackNode {
        let addr = listener.local_addr().unwrap();
        let member = ClusterMember::open(MemberConfig {
            id,
            store: Arc::new(RocksStore::open(dir.path()).expect("open rocksdb")),
            channels: Channels::tcp(),
            secret: BearerToken::new(SECRET),
            raft: Config {
                heartbeat_interval: 100,
                election_timeout_min: 400,
                election_timeout_max: 800,
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
                max_in_snapshot_log_to_keep: 0,
                ..Default::default()
            },
        })
        .await
        .expect("open cluster member");
        let (raft_service, internal_service) = member.services();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // Raft RPCs are small request/response pairs: without TCP_NODELAY, Nagle's
            // algorithm and delayed ACKs add tens of milliseconds to every commit.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener)
                .map(|s| s.and_then(|s| s.set_nodelay(true).map(|()| s)));
            let _ = tonic::transport::Server::builder()
                .add_service(raft_service)
                .add_service(internal_service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        LoopbackNode {
            member,
            addr,
            server: Some((server, stop)),
        }
    }

    /// Like a dead process: Raft stops and every connection to it is closed.
    pub async fn kill(mut self) {
        self.member.raft().shutdown().await.expect("raft shutdown");
        self.stop_serving().await;
    }

    /// Closes its gRPC server (and every connection to it) while Raft keeps running:
    /// the leader's replication no longer reaches it, its own requests still go out.
    pub async fn stop_serving(&mut self) {
        if let Some((server, stop)) = self.server.take() {
            let _ = stop.send(());
            let _ = server.await;
        }
    }
}

/// `n` members with ids 1..=n, initialized as one cluster.
pub struct LoopbackCluster {
    snapshot_every: u64,
    pub dirs: BTreeMap<u64, TempDir>,
    pub nodes: BTreeMap<u64, LoopbackNode>,
}

impl LoopbackCluster {
    pub async fn start(n: u64) -> LoopbackCluster {
        Self::with_snapshots_every(n, 5000).await
    }

    pub async fn with_snapshots_every(n: u64, snapshot_every: u64) -> LoopbackCluster {
        let subnet = crate::private_subnet();
        let mut dirs = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let listener = TcpListener::bind((format!("127.{subnet}.0.{id}"), 0))
                .await
                .unwrap();
            nodes.insert(
                id,
                LoopbackNode::start(id, &dir, listener, snapshot_every).await,
            );
            dirs.insert(id, dir);
        }
        let members: BTreeMap<u64, BasicNode> = nodes
            .iter()
            .map(|(id, n)| (*id, BasicNode::new(n.addr.to_string())))
            .collect();
        nodes[&1]
            .member
            .raft()
            .initialize(members)
            .await
            .expect("initialize");
        LoopbackCluster {
            snapshot_every,
            dirs,
            nodes,
        }
    }

    /// The current leader among the running nodes.
    pub async fn leader(&self) -> u64 {
        let any = self.nodes.values().next().unwrap();
        let m = any
            .member
            .raft()
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| {
                    m.current_leader
                        .is_some_and(|l| self.nodes.contains_key(&l))
                },
                "a leader",
            )
            .await
            .expect("a leader within 10 s");
        m.current_leader.unwrap()
    }

    pub fn followers(&self, leader: u64) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|id| *id != leader)
            .collect()
    }

    /// Restarts a killed node from its directory on its old address.
    pub async fn restart(&mut self, id: u64, addr: SocketAddr) {
        let listener = TcpListener::bind(addr).await.unwrap();
        let node = LoopbackNode::start(id, &self.dirs[&id], listener, self.snapshot_every).await;
        self.nodes.insert(id, node);
    }

    pub async fn stop(self) {
        for (_, node) in self.nodes {
            node.kill().await;
        }
    }
}
