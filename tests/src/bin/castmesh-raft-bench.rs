//! Metadata writes per second through the Raft leader, 1 and 64 concurrent clients.
//!
//! Three cluster members run in this process on loopback gRPC with their real RocksDB
//! stores (fsync on every log append). Clients propose `CreateStream` commands on the
//! leader and wait for each answer (committed by a quorum and applied). The reference,
//! measured side by side in the same run, is the storage floor: the same number of
//! clients each doing fsync'd single-record RocksDB writes on this disk.
//!
//! Not a test: it asserts nothing. `make bench-raft`; figures in docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use castmesh_cluster::{Command, StreamId, keys};
use castmesh_tests::bench_arg;
use castmesh_tests::raft_loopback::LoopbackCluster;

struct Run {
    ops: usize,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> f64 {
        castmesh_tests::percentile(&mut self.latencies_ms, p)
    }
}

/// Runs `clients` tasks calling `op` until `duration` has passed.
async fn drive<F, Fut>(clients: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while start.elapsed() < duration {
                    let t = Instant::now();
                    op(client, i).await;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    for t in tasks {
        latencies_ms.extend(t.await.unwrap());
    }
    Run {
        ops: latencies_ms.len(),
        elapsed: start.elapsed(),
        latencies_ms,
    }
}

async fn raft_writes(clients: usize, duration: Duration) -> Run {
    let cluster = LoopbackCluster::start(3).await;
    let leader = cluster.leader().await;
    let member = cluster.nodes[&leader].member.clone();
    let run = drive(clients, duration, move |client, i| {
        let member = member.clone();
        async move {
            let seed = (client * 1_000_003 + i) as u64;
            let mut random = [0u8; keys::KEY_BYTES];
            random[..8].copy_from_slice(&seed.to_be_bytes());
            let command = Command::CreateStream {
                id: StreamId::parse(&format!("bench-{client}-{i}")).unwrap(),
                title: String::new(),
                owner: "bench".into(),
                key_hash: keys::hash(&keys::generate(random)),
                scheduled_at: None,
                now: 0,
                owner_id: None,
                description: String::new(),
            };
            member.write(command).await.expect("write");
        }
    })
    .await;
    cluster.stop().await;
    run
}

async fn fsync_writes(clients: usize, duration: Duration) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(rocksdb::DB::open_default(dir.path()).unwrap());
    drive(clients, duration, move |client, i| {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut batch = rocksdb::WriteBatch::default();
                batch.put(format!("{client}-{i}"), [0u8; 200]);
                let mut opts = rocksdb::WriteOptions::default();
                opts.set_sync(true);
                db.write_opt(batch, &opts).unwrap();
            })
            .await
            .unwrap();
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let seconds = bench_arg("--seconds", 10u64);
    let duration = Duration::from_secs(seconds);
    let counts: Vec<usize> = bench_arg("--clients", "1,64".to_string())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    println!(
        "| clients | raft writes/s | p50 ms | p99 ms | fsync'd RocksDB writes/s (reference) | ratio raft/reference |"
    );
    println!("|---|---|---|---|---|---|");
    for clients in counts {
        eprintln!("{clients} client(s): Raft…");
        let mut raft = raft_writes(clients, duration).await;
        eprintln!("{clients} client(s): RocksDB fsync reference…");
        let reference = fsync_writes(clients, duration).await;
        println!(
            "| {clients} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2} |",
            raft.per_second(),
            raft.percentile(50.0),
            raft.percentile(99.0),
            reference.per_second(),
            raft.per_second() / reference.per_second()
        );
    }
}
