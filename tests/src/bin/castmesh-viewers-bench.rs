//! `make bench-viewers`: many LL-HLS viewers of one low-bitrate stream on one node
//! (320x180 at 300 kbit/s, so loopback bytes are not the limit), driven by
//! castmesh_tests::viewer_load on the same machine. Prints requests per second, errors,
//! the parts viewers missed, the fan-out spread (each viewer's receipt of a part's
//! playlist less the first viewer's), the server's CPU per request and memory, and the
//! generator's CPU, and the time from a part's end (its EXT-X-PROGRAM-DATE-TIME plus
//! durations) to its delivery to each viewer.
//!
//! Then the reference, in the same run: nginx serving the same stream as static files
//! (copied from the node as a packager writing to disk would), the same number of
//! viewers asking for the playlist once per part duration (a static server cannot
//! hold a blocking reload) and then the new parts — the same mix of requests and
//! objects, at the same rate. Its spread is a polling one (up to a part duration) and
//! not comparable; its CPU per request and whether it keeps up are.
//!
//! Then the same viewers spread over `--edges` (3) edges of a cluster whose origin
//! (a fourth node) takes the publisher and no viewers: the same table, and the
//! origin's egress to the edges (`castmesh_mesh_forwarded_bytes`) per byte the
//! publisher sends it (`castmesh_ingest_bytes`) against the reference of one copy per
//! edge.
//!
//! Flags: `--viewers 10000 --ramp-seconds 20 --measure-seconds 30 --per-address 200`,
//! `--reference 0` to skip nginx, `--edges 0` to skip the cluster.
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::time::{Duration, Instant};

use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, small_sample_flv};
use castmesh_tests::nginx::StaticNginx;
use castmesh_tests::node::Node;
use castmesh_tests::viewer_load::{self, LoadConfig, Reload, Report, Target};
use castmesh_tests::{bench_arg, percentile, proc};

/// The generator must leave the server its core: glibc's malloc took a third of the
/// generator's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The sample's part duration (the node's default `hls.part_target`).
const PART: Duration = Duration::from_millis(200);

/// One load run and what it cost, over the measured window (after the ramp).
struct Measured {
    report: Report,
    server_cpu: f64,
    server_rss_kib: u64,
    generator_cpu: f64,
    /// Each of the `counters` given to `measure`, per second of the window.
    rates: Vec<f64>,
}

impl Measured {
    /// Requests per second during the measurement (all viewers watching).
    fn requests_per_s(&self) -> f64 {
        self.report.requests as f64 / self.report.measured.as_secs_f64()
    }

    /// Server CPU seconds per request.
    fn cpu_per_request(&self) -> f64 {
        self.server_cpu / self.requests_per_s().max(1.0)
    }
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    config: LoadConfig,
    server: &[u32],
    counters: &[&dyn Fn() -> f64],
) -> Measured {
    let me = [std::process::id()];
    let (ramp, window) = (config.ramp, config.measure);
    eprintln!(
        "{} viewers over {} s, then {} s measured…",
        config.viewers,
        ramp.as_secs(),
        window.as_secs()
    );
    let load = runtime.spawn(viewer_load::run(config));
    std::thread::sleep(ramp);
    let counted: Vec<f64> = counters.iter().map(|c| c()).collect();
    let (server_before, me_before, t0) = (
        proc::cpu_seconds(server),
        proc::cpu_seconds(&me),
        Instant::now(),
    );
    std::thread::sleep(window);
    let elapsed = t0.elapsed().as_secs_f64();
    let rates = counters
        .iter()
        .zip(counted)
        .map(|(c, before)| (c() - before) / elapsed)
        .collect();
    let server_cpu = (proc::cpu_seconds(server) - server_before) / elapsed;
    let generator_cpu = (proc::cpu_seconds(&me) - me_before) / elapsed;
    let server_rss_kib = proc::peak_rss_kib(server);
    let report = runtime.block_on(load).expect("the load generator");
    Measured {
        report,
        server_cpu,
        server_rss_kib,
        generator_cpu,
        rates,
    }
}

fn row(server: &str, m: &mut Measured) {
    let (per_s, cpu_per_request) = (m.requests_per_s(), m.cpu_per_request());
    let r = &mut m.report;
    let errors = if r.errors.is_empty() {
        "0".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let spread = &mut r.spread_ms;
    let (spread_50, spread_99) = (percentile(spread, 50.0), percentile(spread, 99.0));
    let spread_max = spread.iter().copied().fold(0.0, f64::max);
    let delivered = &mut r.delivered_ms;
    println!(
        "| {server} | {} | {per_s:.0} | {errors} | {} | {} | {} | {spread_50:.0} / {spread_99:.0} / {spread_max:.0} | {:.0} / {:.0} | {:.2} | {:.1} | {:.0} | {:.2} |",
        r.viewers,
        r.parts,
        r.missed,
        r.viewers_missing,
        percentile(delivered, 50.0),
        percentile(delivered, 99.0),
        m.server_cpu,
        cpu_per_request * 1e6,
        m.server_rss_kib as f64 / 1024.0,
        m.generator_cpu,
    );
}

/// The table's header; `row` prints its lines.
fn header() {
    println!(
        "| server | viewers | requests/s | errors | parts | missed (part, viewer) pairs | viewers missing any | fan-out spread ms p50 / p99 / max | part end → delivered ms p50 / p99 | server CPU (cores) | server CPU µs/request | server peak RSS MiB | generator CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

/// The load spread over `edges` edges of a cluster whose origin takes the publisher.
fn over_edges(
    runtime: &tokio::runtime::Runtime,
    edges: u64,
    config: impl Fn(Vec<Target>) -> LoadConfig,
) {
    let c = ProcessCluster::start("viewers-bench-edges", edges + 1, &[]);
    c.wait_leader(Duration::from_secs(15));
    let created = c
        .castctl(1, &["stream", "create", "--id", "bench", "-o", "json"])
        .json();
    let key = created["key"].as_str().expect("the stream's key");
    let _publisher = Publisher::start_file(&c.node(1).rtmp_url(key), &small_sample_flv());
    c.node(1).wait_for_stream("bench", 3);
    let targets = (2..=edges + 1)
        .map(|id| Target {
            http: c.node(id).http,
            stream: "bench".into(),
        })
        .collect();
    let pids: Vec<u32> = c.nodes.values().map(|n| n.child.id()).collect();
    let origin = c.node(1);
    let forwarded = || {
        origin
            .metric("castmesh_mesh_forwarded_bytes_total{stream=\"bench\"}")
            .unwrap_or(0.0)
    };
    let ingest = || {
        origin
            .metric("castmesh_ingest_bytes_total{stream=\"bench\"}")
            .unwrap_or(0.0)
    };
    let mut m = measure(runtime, config(targets), &pids, &[&forwarded, &ingest]);
    header();
    row(
        &format!("castmesh, {edges} edges + origin (blocking reloads)"),
        &mut m,
    );
    let (egress, ingest) = (m.rates[0], m.rates[1]);
    println!(
        "\n| origin → edges kbit/s | publisher → origin kbit/s | egress / ingest | reference: one copy per edge |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.2} | {edges} |",
        egress * 8.0 / 1000.0,
        ingest * 8.0 / 1000.0,
        egress / ingest.max(1.0),
    );
}

/// The load on one node, then (with `reference`) on nginx serving the same stream as
/// files.
fn on_one_node(
    runtime: &tokio::runtime::Runtime,
    reference: bool,
    config: impl Fn(Target, Reload) -> LoadConfig,
) {
    let node = Node::start("viewers-bench", &[]);
    let _publisher = Publisher::start_file(&node.rtmp_url("bench"), &small_sample_flv());
    node.wait_for_stream("bench", 3);
    let stream = Target {
        http: node.http,
        stream: "bench".into(),
    };
    header();
    let mut ours = measure(
        runtime,
        config(stream.clone(), Reload::Blocking),
        &[node.child.id()],
        &[],
    );
    row("castmesh (blocking reloads)", &mut ours);
    if !reference {
        return;
    }

    let nginx = StaticNginx::start("viewers-bench", false);
    let load = config(stream.clone(), Reload::Poll(PART));
    let copying = load.ramp + load.measure + Duration::from_secs(10);
    let mirror = runtime.spawn(viewer_load::mirror(
        stream,
        nginx.root.clone(),
        Instant::now() + copying,
    ));
    let playlist = nginx.root.join("hls/bench/media.m3u8");
    castmesh_tests::wait_for("the mirror's playlist", Duration::from_secs(10), || {
        playlist.exists().then_some(())
    });
    let files = Target {
        http: nginx.http,
        stream: "bench".into(),
    };
    let load = LoadConfig {
        targets: vec![files],
        ..load
    };
    let mut theirs = measure(runtime, load, &nginx.pids(), &[]);
    row("nginx (files, polled every part)", &mut theirs);
    mirror.abort();
    println!(
        "\ncastmesh / nginx, server CPU per request: {:.2}",
        ours.cpu_per_request() / theirs.cpu_per_request()
    );
}

fn main() {
    let viewers = bench_arg("--viewers", 10_000usize);
    let ramp = Duration::from_secs(bench_arg("--ramp-seconds", 20u64));
    let window = Duration::from_secs(bench_arg("--measure-seconds", 30u64));
    let per_address = bench_arg("--per-address", 200usize);
    let reference = bench_arg("--reference", 1u8) != 0;
    let edges = bench_arg("--edges", 3u64);
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let config = |targets: Vec<Target>, reload: Reload| LoadConfig {
        targets,
        viewers,
        ramp,
        measure: window,
        per_address,
        multivariant_every: Duration::from_secs(30),
        reload,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    on_one_node(&runtime, reference, |target, reload| {
        config(vec![target], reload)
    });
    if edges > 0 {
        println!();
        over_edges(&runtime, edges, |targets| config(targets, Reload::Blocking));
    }
}
