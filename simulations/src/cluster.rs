//! Simulated castmesh nodes: each turmoil host runs the real node (Raft member,
//! gRPC, QUIC mesh, RTMP and HTTP servers, per-stream actors) on the simulated
//! network, with its own drifting clock, a seeded random source, and a disk that
//! outlives the host's crashes.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use castmesh_cluster::openraft::ServerState;
use castmesh_cluster::raft::memory::MemoryStore;
use castmesh_node::cluster::storage::Storage;
use castmesh_node::config::{Config, Secret};
use castmesh_node::mesh::certs::{self, Pem};
use castmesh_node::metrics::Metrics;
use castmesh_node::seams::{Entropy, Seams};
use castmesh_node::stream::context::NodeContext;

use crate::clock::SimClock;
use crate::net::SimNetwork;
use crate::record::Recorder;

pub const ADMIN_TOKEN: &str = "simulated-admin-token";
pub const GRPC_PORT: u16 = 50051;

pub fn host_name(node: u32) -> String {
    format!("node{node}")
}

/// One CA and node certificates for every run of the process (key generation is
/// slow next to a run; Ed25519 keeps handshakes the same size with any keys).
pub struct Certs {
    pub ca: Pem,
    pub nodes: Vec<Pem>,
}

pub fn certs(nodes: u32) -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    let certs = CERTS.get_or_init(|| {
        let ca = certs::new_ca().expect("simulation CA");
        let nodes = (1..=9)
            .map(|id| certs::new_node(&ca, id, &[]).expect("simulation node certificate"))
            .collect();
        Certs { ca, nodes }
    });
    assert!(nodes as usize <= certs.nodes.len(), "at most 9 nodes");
    certs
}

/// What a node keeps across crashes of its host.
#[derive(Clone)]
pub struct NodeSpec {
    pub id: u32,
    pub nodes: u32,
    pub seed: u64,
    pub disk: Arc<MemoryStore>,
    pub clock: SimClock,
    pub boots: Arc<AtomicU64>,
}

fn ip(node: u32) -> IpAddr {
    turmoil::lookup(host_name(node))
}

fn config(spec: &NodeSpec) -> Config {
    let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
    let mut config = Config::default();
    // The simulated publishers pick their own keys, as on a --dev node.
    config.cluster.open_publishing = true;
    config.rtmp.listen = any(1935);
    config.http.listen = any(8080);
    config.mesh.listen = any(4433);
    let c = &mut config.cluster;
    c.node_id = u64::from(spec.id);
    c.grpc_listen = any(GRPC_PORT);
    c.advertise_host = ip(spec.id).to_string();
    c.initial_members = (1..=spec.nodes)
        .map(|n| format!("{n}={}:{GRPC_PORT}", ip(n)))
        .collect();
    c.bootstrap = spec.id == 1;
    c.secret = Secret("simulated-cluster-secret".into());
    c.admin_token = Secret(ADMIN_TOKEN.into());
    // Cheap password hashes: the simulation checks who may sign in, not argon2's cost.
    config.accounts.password_memory_kib = 1024;
    config.accounts.password_iterations = 1;
    config.accounts.signup = castmesh_node::config::SignupPolicy::Open;
    config
}

/// The host's software: boots the node and runs until the host crashes.
pub async fn run_node(spec: NodeSpec, recorder: Recorder) -> turmoil::Result {
    let boot = spec.boots.fetch_add(1, Ordering::Relaxed);
    recorder.event(format!("node{} boots (boot {boot})", spec.id));
    let config = config(&spec);
    let seams = Seams {
        clock: Arc::new(spec.clock),
        // A restarted node must not replay its first boot's random choices.
        entropy: Arc::new(Entropy::seeded(
            spec.seed ^ (u64::from(spec.id) << 48) ^ (boot << 32),
        )),
    };
    let metrics = Arc::new(Metrics::new());
    let certs = certs(spec.nodes);
    let storage = Storage::in_memory(spec.disk.clone(), ADMIN_TOKEN.into());
    let (mesh, cluster) = castmesh_node::start_cluster(
        &config,
        &seams,
        &SimNetwork,
        &metrics,
        storage,
        &certs.ca.cert,
        &certs.nodes[spec.id as usize - 1],
    )
    .await?;
    tokio::spawn(observe_raft(cluster.member.clone(), recorder));
    let registry = Arc::new(cluster.registry(&config, &seams));
    let platform = cluster.platform.clone();
    // Restreaming is not simulated (no destination is ever added): the real client.
    let pusher = Arc::new(castmesh_node::rtmp::push::RtmpPusher::new(&config)?);
    let ctx = NodeContext::new(
        config,
        seams,
        metrics,
        registry,
        Some(mesh),
        cluster.hooks.clone(),
        pusher,
    );
    let (_node, handle) = castmesh_node::start(ctx, SimNetwork, platform).await?;
    handle.await?;
    // Keeps the member alive as long as the node (it is dropped with the host).
    drop(cluster);
    Ok(())
}

/// Records every change of this node's Raft state: leadership per term for the
/// one-leader-per-term check, and the log's progress for the trace.
async fn observe_raft(member: castmesh_cluster::member::ClusterMember, recorder: Recorder) {
    let mut metrics = member.raft().metrics();
    let id = member.id();
    let mut last = None;
    loop {
        let m = metrics.borrow_and_update().clone();
        if m.state == ServerState::Leader {
            recorder.leader(m.current_term, id);
        }
        // Heartbeats refresh the metrics too: only changes go in the trace.
        let now = (
            m.state,
            m.current_term,
            m.last_log_index,
            m.last_applied.map(|l| l.index),
        );
        if last != Some(now) {
            recorder.event(format!(
                "node{id} raft {:?} term {} last log {:?} applied {:?}",
                now.0, now.1, now.2, now.3
            ));
            last = Some(now);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
