//! `make bench-viewers`: many LL-HLS viewers of one low-bitrate stream on one node
//! (320x180 at 300 kbit/s, so loopback bytes are not the limit), driven by
//! castmesh_tests::viewer_load on the same machine. Prints requests per second, errors,
//! the parts viewers missed, the fan-out spread (each viewer's receipt of a part's
//! playlist less the first viewer's), the server's CPU per request and memory, and the
//! generator's CPU.
//!
//! Then the reference, in the same run: nginx serving the same stream as static files
//! (copied from the node as a packager writing to disk would), the same number of
//! viewers asking for the playlist once per part duration (a static server cannot
//! hold a blocking reload) and then the new parts — the same mix of requests and
//! objects, at the same rate. Its spread is a polling one (up to a part duration) and
//! not comparable; its CPU per request and whether it keeps up are.
//!
//! Flags: `--viewers 10000 --ramp-seconds 20 --measure-seconds 30 --per-address 200`,
//! `--reference 0` to skip nginx.
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::time::{Duration, Instant};

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
}

fn measure(runtime: &tokio::runtime::Runtime, config: LoadConfig, server: &[u32]) -> Measured {
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
    let (server_before, me_before, t0) = (
        proc::cpu_seconds(server),
        proc::cpu_seconds(&me),
        Instant::now(),
    );
    std::thread::sleep(window);
    let elapsed = t0.elapsed().as_secs_f64();
    let server_cpu = (proc::cpu_seconds(server) - server_before) / elapsed;
    let generator_cpu = (proc::cpu_seconds(&me) - me_before) / elapsed;
    let server_rss_kib = proc::peak_rss_kib(server);
    let report = runtime.block_on(load).expect("the load generator");
    Measured {
        report,
        server_cpu,
        server_rss_kib,
        generator_cpu,
    }
}

fn row(server: &str, m: &mut Measured) {
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
    // During the measurement, when every viewer watches.
    let per_s = r.requests as f64 / r.measured.as_secs_f64();
    let spread = &mut r.spread_ms;
    println!(
        "| {server} | {} | {per_s:.0} | {errors} | {} | {} | {} | {:.0} / {:.0} / {:.0} | {:.2} | {:.1} | {:.0} | {:.2} |",
        r.viewers,
        r.parts,
        r.missed,
        r.viewers_missing,
        percentile(spread, 50.0),
        percentile(spread, 99.0),
        spread.iter().copied().fold(0.0, f64::max),
        m.server_cpu,
        m.server_cpu * 1e6 / per_s.max(1.0),
        m.server_rss_kib as f64 / 1024.0,
        m.generator_cpu,
    );
}

fn main() {
    let viewers = bench_arg("--viewers", 10_000usize);
    let ramp = Duration::from_secs(bench_arg("--ramp-seconds", 20u64));
    let window = Duration::from_secs(bench_arg("--measure-seconds", 30u64));
    let per_address = bench_arg("--per-address", 200usize);
    let reference = bench_arg("--reference", 1u8) != 0;
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let node = Node::start("viewers-bench", &[]);
    let _publisher = Publisher::start_file(&node.rtmp_url("bench"), &small_sample_flv());
    node.wait_for_stream("bench", 3);
    let stream = Target {
        http: node.http,
        stream: "bench".into(),
    };
    let config = |target: Target, reload: Reload| LoadConfig {
        targets: vec![target],
        viewers,
        ramp,
        measure: window,
        per_address,
        multivariant_every: Duration::from_secs(30),
        reload,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    println!(
        "| server | viewers | requests/s | errors | parts | missed (part, viewer) pairs | viewers missing any | fan-out spread ms p50 / p99 / max | server CPU (cores) | server CPU µs/request | server peak RSS MiB | generator CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ours = measure(
        &runtime,
        config(stream.clone(), Reload::Blocking),
        &[node.child.id()],
    );
    row("castmesh (blocking reloads)", &mut ours);
    if !reference {
        return;
    }

    let nginx = StaticNginx::start("viewers-bench", false);
    let copying = ramp + window + Duration::from_secs(10);
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
    let mut theirs = measure(&runtime, config(files, Reload::Poll(PART)), &nginx.pids());
    row("nginx (files, polled every part)", &mut theirs);
    mirror.abort();
}
