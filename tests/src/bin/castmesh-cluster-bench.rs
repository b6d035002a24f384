//! Cluster behaviour with real node processes: time from `kill -9` of the Raft leader
//! to the first successful write (median of N), and time for a new node to join and
//! catch up with a large state (100k streams by default).
//!
//! References, measured or derived in the same run:
//! - failover: the floor the configuration allows: followers refuse votes for the
//!   leader lease (2 × election timeout) and then wait an election timeout before they
//!   stand, so lease + election_timeout is the earliest a new leader can exist;
//! - join: copying the same state once in-process: JSON-encode the state machine with
//!   the same streams, write it with fsync, read and decode it back.
//!
//! Not a test: it asserts nothing. `make bench-cluster`; figures in docs/benchmarks.md.

use std::io::Write;
use std::time::{Duration, Instant};

use castmesh_cluster::{ClusterState, Command, StreamId, keys};
use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::cluster_admin_client::ClusterAdminClient;
use castmesh_proto::admin::v1::stream_admin_client::StreamAdminClient;
use castmesh_tests::bench_arg;
use castmesh_tests::cluster::{ProcessCluster, TOKEN};
use tonic::transport::Channel;

/// The node default; the floor below is derived from it.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(300);

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

async fn channel(c: &ProcessCluster, id: u64) -> Channel {
    Channel::from_shared(format!("http://{}", c.grpc(id)))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

async fn create(channel: Channel, id: String) -> Result<(), tonic::Status> {
    StreamAdminClient::new(channel)
        .create_stream(request(pb::CreateStreamRequest {
            id,
            ..Default::default()
        }))
        .await
        .map(|_| ())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn failover(rounds: usize) {
    let mut c = ProcessCluster::start("bench-failover", 3, &[]);
    let mut times = Vec::new();
    for round in 0..rounds {
        let leader = c.wait_leader(Duration::from_secs(15));
        let survivor = (1..=3).find(|id| *id != leader).unwrap();
        let ch = channel(&c, survivor).await;
        create(ch.clone(), format!("warm-{round}"))
            .await
            .expect("write before the kill");
        let killed = Instant::now();
        c.kill(leader);
        // The survivor retries internally while there is no leader; retry here too if
        // its own 5 s window runs out.
        let mut attempt = 0;
        while create(ch.clone(), format!("after-{round}-{attempt}"))
            .await
            .is_err()
        {
            attempt += 1;
        }
        let took = killed.elapsed();
        eprintln!("round {round}: leader {leader} killed, first write after {took:?}");
        times.push(took);
        c.start_node(leader);
        // Measure each round from a healthy cluster: a lagging follower cannot win the
        // next election and would slow it down.
        c.wait_caught_up(Duration::from_secs(30));
    }
    let floor = ELECTION_TIMEOUT * 2 + ELECTION_TIMEOUT;
    let m = median(times.clone());
    println!(
        "\n| kill -9 leader → first write | median | min | max | floor (lease + election timeout) | median/floor |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {rounds} rounds | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} |",
        m.as_secs_f64() * 1000.0,
        times.iter().min().unwrap().as_secs_f64() * 1000.0,
        times.iter().max().unwrap().as_secs_f64() * 1000.0,
        floor.as_secs_f64() * 1000.0,
        m.as_secs_f64() / floor.as_secs_f64()
    );
}

/// The reference: the same state encoded, written with fsync, read and decoded once.
fn copy_state_once(streams: usize) -> (Duration, usize) {
    let mut state = ClusterState::default();
    for i in 0..streams {
        let mut bytes = [0u8; keys::KEY_BYTES];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        state.apply(Command::CreateStream {
            id: StreamId::parse(&format!("s-{i:012x}")).unwrap(),
            title: String::new(),
            owner: String::new(),
            key_hash: keys::hash(&keys::generate(bytes)),
            scheduled_at: None,
            now: 0,
            owner_id: None,
            description: String::new(),
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let started = Instant::now();
    let encoded = serde_json::to_vec(&state).unwrap();
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&encoded).unwrap();
    f.sync_all().unwrap();
    let read = std::fs::read(&path).unwrap();
    let decoded: ClusterState = serde_json::from_slice(&read).unwrap();
    assert_eq!(decoded.streams.len(), streams);
    (started.elapsed(), encoded.len())
}

async fn join(streams: usize, clients: usize) {
    let mut c = ProcessCluster::start("bench-join", 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(15));
    let ch = channel(&c, leader).await;
    let filling = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let ch = ch.clone();
            tokio::spawn(async move {
                for i in (client..streams).step_by(clients) {
                    create(ch.clone(), format!("s-{i:012x}"))
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "{streams} streams created in {:?} ({clients} clients)",
        filling.elapsed()
    );
    c.start_joiner(4);
    let started = Instant::now();
    // Returns once the learner has caught up and been promoted to voter.
    ClusterAdminClient::new(ch)
        .add_node(request(pb::AddNodeRequest {
            id: 4,
            grpc_address: c.grpc(4).to_string(),
            learner_only: false,
        }))
        .await
        .expect("add node");
    let took = started.elapsed();
    eprintln!("node 4 joined in {took:?}");
    let (reference, bytes) = copy_state_once(streams);
    println!(
        "\n| join + catch up | streams | state size | took | copy the state once (reference) | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| learner → voter | {streams} | {:.1} MiB | {:.2} s | {:.2} s | {:.1} |",
        bytes as f64 / (1024.0 * 1024.0),
        took.as_secs_f64(),
        reference.as_secs_f64(),
        took.as_secs_f64() / reference.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let rounds = bench_arg("--rounds", 10);
    if rounds > 0 {
        failover(rounds).await;
    }
    let streams = bench_arg("--streams", 100_000);
    if streams > 0 {
        join(streams, bench_arg("--clients", 64)).await;
    }
}
