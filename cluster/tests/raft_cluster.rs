//! Three Raft nodes in one process, talking real gRPC over loopback: a leader is
//! elected, writes replicate to every node, a dead leader is replaced, the restarted
//! node catches up from its RocksDB directory, and a peer with the wrong cluster
//! secret is refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::raft::log_store::LogStore;
use castmesh_cluster::raft::network::Network;
use castmesh_cluster::raft::service::RaftService;
use castmesh_cluster::raft::state_machine::{SharedState, StateMachineStore};
use castmesh_cluster::raft::{Raft, db};
use castmesh_cluster::{Command, Response, StreamId, keys};
use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_client::RaftTransportClient;
use openraft::{BasicNode, Config, ServerState};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SECRET: &str = "test-cluster-secret";

struct TestNode {
    raft: Raft,
    state: SharedState,
    server: JoinHandle<()>,
}

fn config() -> Arc<Config> {
    Arc::new(
        Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

async fn start(id: u64, dir: &TempDir, listener: TcpListener) -> TestNode {
    let db = db::open(dir.path()).unwrap();
    let sm = StateMachineStore::open(db.clone()).unwrap();
    let state = sm.shared();
    let raft = Raft::new(
        id,
        config(),
        Network::new(BearerToken::new(SECRET)),
        LogStore::new(db),
        sm,
    )
    .await
    .unwrap();
    let service = RaftService::server(raft.clone(), BearerToken::new(SECRET));
    let server = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    TestNode {
        raft,
        state,
        server,
    }
}

fn create(name: &str, seed: u8) -> Command {
    Command::CreateStream {
        id: StreamId::parse(name).unwrap(),
        title: name.into(),
        owner: "test".into(),
        key_hash: keys::hash(&keys::generate([seed; keys::KEY_BYTES])),
        scheduled_at: None,
        now: 0,
    }
}

async fn leader(nodes: &BTreeMap<u64, TestNode>) -> u64 {
    let any = nodes.values().next().unwrap();
    let m = any
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)),
            "a leader",
        )
        .await
        .unwrap();
    m.current_leader.unwrap()
}

async fn wait_streams(node: &TestNode, n: usize) {
    for _ in 0..100 {
        if node.state.read().unwrap().state.streams.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never applied {n} streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut addrs = BTreeMap::new();
    let mut listeners = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, l.local_addr().unwrap());
        listeners.insert(id, l);
    }
    let mut nodes = BTreeMap::new();
    for (id, l) in listeners {
        nodes.insert(id, start(id, &dirs[id as usize - 1], l).await);
    }
    let members: BTreeMap<u64, BasicNode> = addrs
        .iter()
        .map(|(id, a)| (*id, BasicNode::new(a.to_string())))
        .collect();
    nodes[&1].raft.initialize(members).await.unwrap();

    let first = leader(&nodes).await;
    let r = nodes[&first]
        .raft
        .client_write(create("one", 1))
        .await
        .unwrap();
    assert!(matches!(r.data, Response::Stream(_)));
    for node in nodes.values() {
        wait_streams(node, 1).await;
    }

    // Kill the leader: the other two elect a new one and keep accepting writes.
    let dead = nodes.remove(&first).unwrap();
    dead.server.abort();
    dead.raft.shutdown().await.unwrap();
    drop(dead);
    let second = leader(&nodes).await;
    assert_ne!(second, first);
    let metrics = nodes[&second].raft.metrics().borrow().clone();
    assert_eq!(metrics.state, ServerState::Leader);
    nodes[&second]
        .raft
        .client_write(create("two", 2))
        .await
        .unwrap();

    // The dead node restarts from its directory on the same address and catches up.
    let listener = TcpListener::bind(addrs[&first]).await.unwrap();
    let back = start(first, &dirs[first as usize - 1], listener).await;
    wait_streams(&back, 2).await;
    assert_eq!(back.state.read().unwrap().state.streams.len(), 2);
    nodes.insert(first, back);

    // A peer without the cluster secret is refused.
    let mut client = RaftTransportClient::connect(format!("http://{}", addrs[&second]))
        .await
        .unwrap();
    let mut request = tonic::Request::new(RaftPayload { payload: vec![] });
    BearerToken::new("wrong").attach(&mut request);
    let status = client.vote(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = client
        .vote(tonic::Request::new(RaftPayload { payload: vec![] }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
        node.server.abort();
    }
}
