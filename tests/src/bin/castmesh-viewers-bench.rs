//! `make bench-viewers`: many LL-HLS viewers of one low-bitrate stream on one node
//! (320x180 at 300 kbit/s, so loopback bytes are not the limit), driven by
//! castmesh_tests::viewer_load on the same machine. Prints requests per second, errors,
//! the parts viewers missed, the fan-out spread (each viewer's receipt of a part's
//! playlist less the first viewer's), and the node's and the generator's CPU and memory.
//!
//! Flags: `--viewers 10000 --ramp-seconds 20 --measure-seconds 30 --per-address 200`.
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::time::{Duration, Instant};

/// The generator must leave the node its core: glibc's malloc took a third of the
/// generator's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use castmesh_tests::ffmpeg::{Publisher, small_sample_flv};
use castmesh_tests::node::Node;
use castmesh_tests::viewer_load::{self, LoadConfig, Target};
use castmesh_tests::{bench_arg, percentile, proc};

fn main() {
    let viewers = bench_arg("--viewers", 10_000usize);
    let ramp = Duration::from_secs(bench_arg("--ramp-seconds", 20u64));
    let measure = Duration::from_secs(bench_arg("--measure-seconds", 30u64));
    let per_address = bench_arg("--per-address", 200usize);
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let node = Node::start("viewers-bench", &[]);
    let _publisher = Publisher::start_file(&node.rtmp_url("bench"), &small_sample_flv());
    node.wait_for_stream("bench", 3);
    let pid = [node.child.id()];
    let me = [std::process::id()];

    let config = LoadConfig {
        targets: vec![Target {
            http: node.http,
            stream: "bench".into(),
        }],
        viewers,
        ramp,
        measure,
        per_address,
        multivariant_every: Duration::from_secs(30),
    };
    eprintln!(
        "{viewers} viewers over {} s, then {} s measured…",
        ramp.as_secs(),
        measure.as_secs()
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let load = runtime.spawn(viewer_load::run(config));
    // CPU over the measured window only (after the ramp).
    std::thread::sleep(ramp);
    let (node_before, me_before, t0) = (
        proc::cpu_seconds(&pid),
        proc::cpu_seconds(&me),
        Instant::now(),
    );
    std::thread::sleep(measure);
    let elapsed = t0.elapsed().as_secs_f64();
    let node_cpu = (proc::cpu_seconds(&pid) - node_before) / elapsed;
    let me_cpu = (proc::cpu_seconds(&me) - me_before) / elapsed;
    let rss_kib = proc::peak_rss_kib(&pid);
    let mut report = runtime.block_on(load).expect("the load generator");

    let seconds = report.measured.as_secs_f64();
    println!(
        "| viewers | requests/s | errors | parts | missed (part, viewer) pairs | viewers missing any | fan-out spread ms p50 / p99 / max | node CPU (cores) | node peak RSS MiB | generator CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let errors = if report.errors.is_empty() {
        "0".to_string()
    } else {
        report
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let spread = &mut report.spread_ms;
    println!(
        "| {} | {:.0} | {errors} | {} | {} | {} | {:.0} / {:.0} / {:.0} | {node_cpu:.2} | {:.0} | {me_cpu:.2} |",
        report.viewers,
        // Requests over the whole run include the ramp; per second of the run.
        report.requests as f64 / (seconds + ramp.as_secs_f64()),
        report.parts,
        report.missed,
        report.viewers_missing,
        percentile(spread, 50.0),
        percentile(spread, 99.0),
        spread.iter().copied().fold(0.0, f64::max),
        rss_kib as f64 / 1024.0,
    );
}
