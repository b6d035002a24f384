//! Who this node can reach: a health check to every Raft member every couple of
//! seconds ("last seen" in `castctl cluster status`), a mesh ping to every registered
//! node (`castmesh_mesh_peer_reachable`: UDP or certificate problems show here), and
//! Raft figures for `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castmesh_cluster::member::ClusterMember;
use castmesh_cluster::transport::Channels;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::mesh::Mesh;
use crate::metrics::{Metrics, NodeLabel};

const INTERVAL: Duration = Duration::from_secs(2);
/// Longest a health check waits for its answer (and for the connection).
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// When each member last answered this node's health check.
#[derive(Clone, Default)]
pub struct LastSeen(Arc<Mutex<BTreeMap<u64, Instant>>>);

impl LastSeen {
    pub fn get(&self, id: u64) -> Option<Instant> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    fn saw(&self, id: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Instant::now());
    }
}

/// Runs until the task is aborted.
pub async fn run(
    member: ClusterMember,
    last_seen: LastSeen,
    metrics: Arc<Metrics>,
    mesh: Arc<Mesh>,
    channels: Channels,
) {
    let mut ticker = tokio::time::interval(INTERVAL);
    let mut clients: HashMap<String, HealthClient<Channel>> = HashMap::new();
    loop {
        ticker.tick().await;
        let m = member.raft().metrics().borrow().clone();
        metrics.raft_term.set(m.current_term as i64);
        metrics
            .raft_leader
            .set(i64::from(m.current_leader == Some(member.id())));
        metrics
            .raft_applied_index
            .set(m.last_applied.map_or(0, |l| l.index) as i64);
        last_seen.saw(member.id());
        let peers: Vec<(u64, String)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != member.id())
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        // One lazily connected channel per peer, kept across rounds: a dead peer fails
        // the call (and tonic reconnects), so reuse costs no accuracy.
        clients.retain(|addr, _| peers.iter().any(|(_, a)| a == addr));
        for (id, addr) in peers {
            let Some(client) = health_client(&mut clients, &channels, &addr) else {
                continue;
            };
            let last_seen = last_seen.clone();
            tokio::spawn(async move {
                if matches!(health(client).await, Health::Serving) {
                    last_seen.saw(id);
                }
            });
        }
        let mesh_peers: Vec<(u64, std::net::SocketAddr)> = member.read_local(|s| {
            s.nodes
                .values()
                .filter(|n| n.id != member.id())
                .filter_map(|n| Some((n.id, n.quic.parse().ok()?)))
                .collect()
        });
        for (id, addr) in mesh_peers {
            let (mesh, metrics) = (mesh.clone(), metrics.clone());
            tokio::spawn(async move {
                let answered = mesh.ping(addr, id).await;
                if let Err(e) = &answered {
                    tracing::debug!(peer = id, %addr, error = %format!("{e:#}"), "mesh ping failed");
                }
                metrics
                    .mesh_peer_reachable
                    .get_or_create(&NodeLabel { node: id })
                    .set(i64::from(answered.is_ok_and(|n| n == id)));
            });
        }
    }
}

fn health_client(
    cache: &mut HashMap<String, HealthClient<Channel>>,
    channels: &Channels,
    addr: &str,
) -> Option<HealthClient<Channel>> {
    if let Some(c) = cache.get(addr) {
        return Some(c.clone());
    }
    let channel = channels.to(addr, TIMEOUT).ok()?;
    let client = HealthClient::new(channel);
    cache.insert(addr.to_string(), client.clone());
    Some(client)
}

/// What a peer's gRPC health check gave.
pub enum Health {
    Serving,
    /// Refused or failed: nothing serves there (the process is gone, say).
    Failed(tonic::Status),
    /// No answer within [`TIMEOUT`]: cut off, or slow.
    Silent,
}

pub async fn health(mut client: HealthClient<Channel>) -> Health {
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(_)) => Health::Serving,
        Ok(Err(status)) => Health::Failed(status),
        Err(_) => Health::Silent,
    }
}
