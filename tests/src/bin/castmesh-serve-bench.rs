//! `make bench-serve`: castmesh against nginx serving the very same bytes as static
//! files, in the same run, with wrk (2 threads, 64 kept-alive connections by default)
//! on the same machine. The objects are a live stream's: its media playlist (with and
//! without gzip), a part and a whole segment of the 720p sample (2.5 Mbit/s), taken
//! from the node a moment before each pair of runs so they are still in its window.
//!
//! Prints, per object, requests per second for both, the ratio castmesh / nginx, and
//! each server's CPU time per request (wrk shares the cores, so CPU per request says
//! what the server costs where requests per second cannot).
//!
//! Flags: `--seconds 5 --connections 64 --threads 2`.
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::process::Command;

use castmesh_tests::ffmpeg::{Publisher, sample_flv};
use castmesh_tests::hls_check;
use castmesh_tests::nginx::StaticNginx;
use castmesh_tests::node::Node;
use castmesh_tests::{bench_arg, proc};

struct Wrk {
    seconds: u64,
    connections: usize,
    threads: usize,
}

/// What one wrk run measured.
struct Run {
    requests_per_s: f64,
    /// Server CPU time per request, in microseconds.
    cpu_us: f64,
    /// Responses other than 2xx/3xx and socket errors, as wrk reports them.
    errors: String,
}

impl Wrk {
    fn run(&self, url: &str, gzip: bool, server: &[u32]) -> Run {
        let before = proc::cpu_seconds(server);
        let mut cmd = Command::new("wrk");
        cmd.arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.seconds));
        if gzip {
            cmd.args(["-H", "Accept-Encoding: gzip"]);
        }
        let out = cmd
            .arg(url)
            .output()
            .expect("run wrk (`make bench-serve` installs it)");
        let cpu = proc::cpu_seconds(server) - before;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "wrk failed: {text}");
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let requests_per_s: f64 = field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
        let requests = requests_per_s * self.seconds as f64;
        let errors = [
            field("Non-2xx or 3xx responses:").map(|n| format!("{n} non-2xx")),
            field("Socket errors:").map(|s| format!("socket errors {s}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        Run {
            requests_per_s,
            cpu_us: cpu * 1e6 / requests.max(1.0),
            errors,
        }
    }
}

/// An object both servers serve: its path on the node and its bytes.
struct Object {
    label: &'static str,
    path: String,
    bytes: Vec<u8>,
    gzip: bool,
}

/// Picks `label`'s object from the live stream now: the media playlist itself, the
/// median-sized part of the newest complete segment, or that whole segment.
fn pick(node: &Node, label: &'static str) -> Object {
    let playlist_path = "/hls/bench/media.m3u8".to_string();
    let (status, text) = node.get_text(&playlist_path);
    assert_eq!(status, 200, "the node's playlist: {text}");
    let playlist = hls_check::parse(&text);
    let newest = playlist.segments.last().expect("a complete segment");
    let path = match label {
        "media playlist" | "media playlist, gzip" => playlist_path,
        "segment" => format!("/hls/bench/{}", newest.uri),
        _ => {
            let mut parts: Vec<(usize, &str)> = newest
                .parts
                .iter()
                .map(|p| {
                    let (_, body) = node.get(&format!("/hls/bench/{}", p.uri)).unwrap();
                    (body.len(), p.uri.as_str())
                })
                .collect();
            parts.sort();
            format!("/hls/bench/{}", parts[parts.len() / 2].1)
        }
    };
    let (status, bytes) = node.get(&path).expect("fetch the object");
    assert_eq!(status, 200, "{path}");
    Object {
        label,
        path,
        bytes,
        gzip: label.ends_with("gzip"),
    }
}

fn main() {
    let wrk = Wrk {
        seconds: bench_arg("--seconds", 5u64),
        connections: bench_arg("--connections", 64usize),
        threads: bench_arg("--threads", 2usize),
    };
    let node = Node::start("serve-bench", &[]);
    let _publisher = Publisher::start_file(&node.rtmp_url("bench"), &sample_flv());
    node.wait_for_stream("bench", 3);
    let nginx = StaticNginx::start("serve-bench", true);
    let node_pid = [node.child.id()];
    let nginx_pids = nginx.pids();

    println!(
        "wrk -t{} -c{} -d{}s, castmesh and nginx ({} workers) on the same 2 cores as wrk",
        wrk.threads,
        wrk.connections,
        wrk.seconds,
        nginx_pids.len() - 1
    );
    println!(
        "| object | bytes | castmesh req/s | nginx req/s | ratio | castmesh CPU µs/req | nginx CPU µs/req | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for label in ["media playlist", "media playlist, gzip", "part", "segment"] {
        let object = pick(&node, label);
        let file = object.path.trim_start_matches('/');
        let on_disk = nginx.root.join(file);
        std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
        std::fs::write(&on_disk, &object.bytes).unwrap();
        let ours = wrk.run(&node.url(&object.path), object.gzip, &node_pid);
        let theirs = wrk.run(
            &format!("http://{}/{file}", nginx.http),
            object.gzip,
            &nginx_pids,
        );
        let errors = match (ours.errors.as_str(), theirs.errors.as_str()) {
            ("", "") => "0".to_string(),
            (a, b) => format!("castmesh: {a}; nginx: {b}"),
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {errors} |",
            object.label,
            object.bytes.len(),
            ours.requests_per_s,
            theirs.requests_per_s,
            ours.requests_per_s / theirs.requests_per_s,
            ours.cpu_us,
            theirs.cpu_us,
        );
    }
}
