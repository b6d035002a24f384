//! The REST API's costs on one real `--dev` node (default settings: argon2id 19 MiB,
//! 2 passes, one hash at a time):
//!
//! - sign-ins per second and their p99 with 1 and 16 clients, against the reference
//!   measured in the same run: the password hash alone (`platform::password::Hasher`
//!   with the node's settings, in this process, one at a time);
//! - `GET /api/v1/streams?status=scheduled` with `--streams` streams in the cluster,
//!   and `GET /api/v1/streams?status=live` with `--live` streams live (each with a
//!   publisher: a raw RTMP connection that publishes and then sends nothing), against
//!   `/healthz` on the same node (the floor of an HTTP answer).
//!
//! Not a test: it asserts nothing. `make bench-api`; figures in docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use castmesh_node::config::AccountsConfig;
use castmesh_node::platform::password::Hasher;
use castmesh_node::seams::Entropy;
use castmesh_tests::api;
use castmesh_tests::bench_arg;
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw;
use serde_json::json;

struct Run {
    ops: usize,
    errors: usize,
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

/// `clients` threads calling `op` (true: success) until `duration` has passed.
fn drive(
    clients: usize,
    duration: Duration,
    op: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Run {
    let op = Arc::new(op);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let op = op.clone();
            std::thread::spawn(move || {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while start.elapsed() < duration {
                    let t = Instant::now();
                    if !op(client) {
                        errors += 1;
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut run = Run {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_ms: Vec::new(),
    };
    for t in threads {
        let (latencies, errors) = t.join().unwrap();
        run.ops += latencies.len();
        run.errors += errors;
        run.latencies_ms.extend(latencies);
    }
    run.elapsed = start.elapsed();
    run
}

fn main() {
    let seconds: u64 = bench_arg("--seconds", 10);
    let streams: usize = bench_arg("--streams", 1000);
    let live: usize = bench_arg("--live", 1000);
    // A socket per publisher here, and as many in the node.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let duration = Duration::from_secs(seconds);

    // The reference: the hash alone, as the node computes it (before and after the
    // node's runs: the machine's speed drifts, and the slower one is reported too).
    let hash_alone = || {
        let hasher = Hasher::new(&AccountsConfig::default(), Arc::new(Entropy::from_os())).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let stored = hasher.hash("benchmark password").await.unwrap();
            let start = Instant::now();
            let mut latencies_ms = Vec::new();
            while start.elapsed() < duration {
                let t = Instant::now();
                hasher
                    .verify("benchmark password", Some(&stored))
                    .await
                    .unwrap();
                latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Run {
                ops: latencies_ms.len(),
                errors: 0,
                elapsed: start.elapsed(),
                latencies_ms,
            }
        })
    };
    let hash_before = hash_alone();

    // Failed sign-ins are never counted here: a distinct email per client and the
    // right password, so the per-address limit does not apply.
    let node = Node::start(
        "api-bench",
        &[
            "--accounts-max-queued-hashes",
            "64",
            "--accounts-max-streams-per-user",
            "100000",
            "--accounts-max-failed-logins",
            "100",
            // The live streams' publishers: one address, idle after publishing.
            "--rtmp-idle-timeout",
            "1h",
            "--rtmp-max-connections",
            "100000",
            "--rtmp-max-connections-per-ip",
            "100000",
            "--cluster-max-open-streams-per-ip",
            "100000",
            "--streams-max-streams",
            "100000",
        ],
    );
    let base = node.url("");
    for client in 0..16 {
        let reply = api::post(
            &format!("{base}/api/v1/auth/signup"),
            None,
            json!({ "email": format!("bench{client}@example.com"), "password": "benchmark password" }),
        );
        assert_eq!(reply.status, 201, "{}", reply.json);
    }
    let login = |base: String| {
        move |client: usize| {
            let reply = api::post(
                &format!("{base}/api/v1/auth/login"),
                None,
                json!({ "email": format!("bench{client}@example.com"), "password": "benchmark password" }),
            );
            reply.status == 200
        }
    };
    let mut one = drive(1, duration, login(base.clone()));
    let mut sixteen = drive(16, duration, login(base.clone()));

    // A session of its own: the sign-ins above evicted the oldest ones (32 per user).
    let owner = api::post(
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({ "email": "bench0@example.com", "password": "benchmark password" }),
    );
    let token = owner.json["token"].as_str().unwrap().to_string();
    for i in 0..streams {
        let reply = api::post(
            &format!("{base}/api/v1/streams"),
            Some(&token),
            json!({ "id": format!("bench-{i:05}"), "title": format!("Bench stream {i}") }),
        );
        assert_eq!(reply.status, 201, "{}", reply.json);
    }
    let get = |url: String| move |_| api::get(&url, None).status == 200;
    let listing_url = format!("{base}/api/v1/streams?status=scheduled&limit=200");
    let mut listing = drive(4, duration, get(listing_url));
    let mut healthz = drive(4, duration, get(format!("{base}/healthz")));

    // Live streams: open publishing makes each; live once its publisher attached.
    let publishers: Vec<_> = (0..live)
        .map(|i| {
            let mut s = rtmp_raw::connect(node.rtmp);
            rtmp_raw::handshake(&mut s);
            rtmp_raw::connect_and_publish(&mut s, "live", &format!("live-{i:05}"));
            rtmp_raw::read_until(&mut s, "NetStream.Publish.Start", Duration::from_secs(10));
            s
        })
        .collect();
    let live_url = format!("{base}/api/v1/streams?status=live&limit=200");
    let listed = |url: &str| {
        let (mut count, mut cursor) = (0, String::new());
        loop {
            let page = api::get(&format!("{url}&cursor={cursor}"), None).json;
            count += page["streams"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return count,
            }
        }
    };
    let seen = listed(&live_url);
    assert_eq!(seen, live, "every publisher's stream is listed live");
    let mut live_listing = drive(4, duration, get(live_url));
    let mut live_healthz = drive(4, duration, get(format!("{base}/healthz")));
    drop(publishers);
    let hash_after = hash_alone();

    println!(
        "castmesh API benchmark: {seconds} s per run, one --dev node, 2 cores shared with the clients"
    );
    println!();
    println!(
        "| sign-ins | per second | p50 ms | p99 ms | errors | vs the hash alone (mean of both) |"
    );
    println!("|---|---|---|---|---|---|");
    let hash_rate = (hash_before.per_second() + hash_after.per_second()) / 2.0;
    for (name, mut hash) in [("before", hash_before), ("after", hash_after)] {
        println!(
            "| argon2id verify alone, {name} (reference) | {:.1} | {:.1} | {:.1} | 0 | {:.2} |",
            hash.per_second(),
            hash.percentile(50.0),
            hash.percentile(99.0),
            hash.per_second() / hash_rate
        );
    }
    for (name, run) in [("1 client", &mut one), ("16 clients", &mut sixteen)] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {} | {:.2} |",
            run.per_second(),
            run.percentile(50.0),
            run.percentile(99.0),
            run.errors,
            run.per_second() / hash_rate
        );
    }
    println!();
    println!("| request (4 clients) | per second | p50 ms | p99 ms | errors | vs /healthz |");
    println!("|---|---|---|---|---|---|");
    let floor = healthz.per_second();
    println!(
        "| /healthz (reference) | {:.0} | {:.2} | {:.2} | {} | 1.00 |",
        floor,
        healthz.percentile(50.0),
        healthz.percentile(99.0),
        healthz.errors
    );
    println!(
        "| /api/v1/streams?status=scheduled&limit=200 of {streams} streams | {:.0} | {:.2} | {:.2} | {} | {:.3} |",
        listing.per_second(),
        listing.percentile(50.0),
        listing.percentile(99.0),
        listing.errors,
        listing.per_second() / floor
    );
    let floor = live_healthz.per_second();
    println!(
        "| /healthz with {live} streams live (reference) | {:.0} | {:.2} | {:.2} | {} | 1.00 |",
        floor,
        live_healthz.percentile(50.0),
        live_healthz.percentile(99.0),
        live_healthz.errors
    );
    println!(
        "| /api/v1/streams?status=live&limit=200 of {live} live streams | {:.0} | {:.2} | {:.2} | {} | {:.3} |",
        live_listing.per_second(),
        live_listing.percentile(50.0),
        live_listing.percentile(99.0),
        live_listing.errors,
        live_listing.per_second() / floor
    );
}
