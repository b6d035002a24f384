//! Three cluster members in one process, talking real gRPC over loopback: a leader is
//! elected; writes sent to followers are forwarded; a linearizable read on another
//! follower sees an acknowledged write at once; a dead leader is replaced while writes
//! keep working; the restarted node catches up from its RocksDB directory; a peer
//! without the cluster secret is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::member::{ClusterMember, MemberConfig};
use castmesh_cluster::{Command, Response, StreamId, keys};
use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_client::RaftTransportClient;
use openraft::{BasicNode, Config};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SECRET: &str = "test-cluster-secret";

struct TestNode {
    member: ClusterMember,
    server: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl TestNode {
    /// Like a dead process: Raft stops and every connection to it is closed.
    async fn kill(self) {
        self.member.raft().shutdown().await.unwrap();
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

async fn start(id: u64, dir: &TempDir, listener: TcpListener) -> TestNode {
    let member = ClusterMember::open(MemberConfig {
        id,
        data_dir: dir.path().to_path_buf(),
        secret: BearerToken::new(SECRET),
        raft: Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        },
    })
    .await
    .unwrap();
    let (raft_service, internal_service) = member.services();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(raft_service)
            .add_service(internal_service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    TestNode {
        member,
        server,
        stop,
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
        .member
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)),
            "a leader",
        )
        .await
        .unwrap();
    m.current_leader.unwrap()
}

fn followers(nodes: &BTreeMap<u64, TestNode>, leader: u64) -> Vec<u64> {
    nodes.keys().copied().filter(|id| *id != leader).collect()
}

async fn streams(node: &TestNode) -> usize {
    node.member.read(|s| s.streams.len()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_forward_read_fail_over_and_catch_up() {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut addrs: BTreeMap<u64, SocketAddr> = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, l.local_addr().unwrap());
        nodes.insert(id, start(id, &dirs[id as usize - 1], l).await);
    }
    let members: BTreeMap<u64, BasicNode> = addrs
        .iter()
        .map(|(id, a)| (*id, BasicNode::new(a.to_string())))
        .collect();
    nodes[&1].member.raft().initialize(members).await.unwrap();

    // A write sent to a follower is forwarded to the leader…
    let first = leader(&nodes).await;
    let f = followers(&nodes, first);
    let r = nodes[&f[0]].member.write(create("one", 1)).await.unwrap();
    assert!(matches!(r, Response::Stream(_)), "{r:?}");
    // …and a linearizable read on the other follower sees it immediately.
    assert_eq!(streams(&nodes[&f[1]]).await, 1);

    // Kill the leader: writes through a follower keep working after the election.
    nodes.remove(&first).unwrap().kill().await;
    let f = followers(&nodes, first);
    let r = nodes[&f[0]].member.write(create("two", 2)).await.unwrap();
    assert!(matches!(r, Response::Stream(_)), "{r:?}");
    let second = leader(&nodes).await;
    assert_ne!(second, first);

    // The dead node restarts from its directory on the same address and catches up.
    let listener = TcpListener::bind(addrs[&first]).await.unwrap();
    let back = start(first, &dirs[first as usize - 1], listener).await;
    assert_eq!(streams(&back).await, 2);
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

    for (_, node) in nodes {
        node.kill().await;
    }
}
