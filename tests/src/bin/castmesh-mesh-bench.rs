//! The media mesh with real node processes, published to with ffmpeg, read by LL-HLS
//! clients doing blocking playlist reloads:
//!
//! 1. **Edge added latency**: when a part is listed on an edge (node 3) minus when it
//!    is listed on its origin (node 1), per part, with 1 and 50 streams. Reference,
//!    in the same run: a second client on the origin, measured the same way against
//!    the first (what the measurement itself adds).
//! 2. **Origin egress**: bytes the origin sends to edges (`castmesh_mesh_forwarded_bytes`)
//!    per byte the publisher sends it (`castmesh_ingest_bytes`), with 1 and 3 edges and
//!    `--readers` (100) readers on each edge. Reference: the number of edges (one copy
//!    of the stream per edge, whatever the readers).
//! 3. **Republish → first part on an edge**: the origin is killed (-9) and the
//!    publisher starts again on another node; time from that ffmpeg start to the first
//!    new part listed on an edge. Reference: the same on the new origin itself.
//!
//! Not a test: it asserts nothing. `make bench-mesh`; figures in docs/benchmarks.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use castmesh_tests::bench_arg;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::hls_check;

/// When each part name was first listed, as an LL-HLS client doing blocking reloads
/// for the next part sees it.
fn watch(base: String, id: String, stop: Arc<AtomicBool>) -> JoinHandle<HashMap<String, Instant>> {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut seen = HashMap::new();
        let mut next: Option<(u64, usize)> = None;
        while !stop.load(Ordering::Relaxed) {
            let mut url = format!("{base}/hls/{id}/media.m3u8");
            if let Some((msn, part)) = next {
                url.push_str(&format!("?_HLS_msn={msn}&_HLS_part={part}"));
            }
            let text = match client.get(&url).send() {
                Ok(r) if r.status() == 200 => r.text().unwrap_or_default(),
                _ => {
                    next = None;
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let now = Instant::now();
            let playlist = hls_check::parse(&text);
            for (_, uri) in playlist.part_uris() {
                seen.entry(uri).or_insert(now);
            }
            next = playlist.last_part().map(|(msn, i)| (msn, i + 1));
        }
        seen
    })
}

/// Milliseconds `later` listed each part after `earlier`, for parts both listed.
fn deltas(earlier: &HashMap<String, Instant>, later: &HashMap<String, Instant>) -> Vec<f64> {
    let mut d: Vec<f64> = later
        .iter()
        .filter_map(|(name, t)| {
            let e = earlier.get(name)?;
            Some(if t >= e {
                (*t - *e).as_secs_f64() * 1000.0
            } else {
                -((*e - *t).as_secs_f64() * 1000.0)
            })
        })
        .collect();
    d.sort_by(|a, b| a.total_cmp(b));
    d
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn create(c: &ProcessCluster, id: &str) -> String {
    let created = c
        .castctl(1, &["stream", "create", "--id", id, "-o", "json"])
        .json();
    created["key"].as_str().unwrap().to_string()
}

fn edge_latency(streams: usize, seconds: u64) {
    let c = ProcessCluster::start(&format!("bench-edge-{streams}"), 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    let ids: Vec<String> = (0..streams).map(|i| format!("s{i}")).collect();
    let _publishers: Vec<Publisher> = ids
        .iter()
        .map(|id| Publisher::start(&c.node(1).rtmp_url(&create(&c, id))))
        .collect();
    for id in &ids {
        c.node(1).wait_for_stream(id, 1);
    }
    // Every stream is relayed by node 3 (one request each starts its relay); up to 4
    // are measured closely.
    for id in &ids {
        let _ = c.node(3).get(&format!("/hls/{id}/media.m3u8"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measured: Vec<_> = ids
        .iter()
        .take(4)
        .map(|id| {
            let w = |node: u64| watch(c.node(node).url(""), id.clone(), stop.clone());
            (w(1), w(1), w(3))
        })
        .collect();
    let keepalive = {
        let stop = stop.clone();
        let urls: Vec<String> = ids
            .iter()
            .map(|id| c.node(3).url(&format!("/hls/{id}/media.m3u8")))
            .collect();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    let _ = client.get(u).send();
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    keepalive.join().unwrap();
    let (mut edge, mut reference) = (Vec::new(), Vec::new());
    for (origin, origin_again, on_edge) in measured {
        let (origin, origin_again, on_edge) = (
            origin.join().unwrap(),
            origin_again.join().unwrap(),
            on_edge.join().unwrap(),
        );
        edge.extend(deltas(&origin, &on_edge));
        reference.extend(deltas(&origin, &origin_again));
    }
    edge.sort_by(|a, b| a.total_cmp(b));
    reference.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {streams} | {:.1} / {:.1} (n={}) | {:.1} / {:.1} (n={}) |",
        percentile(&edge, 0.5),
        percentile(&edge, 0.99),
        edge.len(),
        percentile(&reference, 0.5),
        percentile(&reference, 0.99),
        reference.len()
    );
}

/// A counter's value on a node (0 when absent).
fn counter(c: &ProcessCluster, node: u64, name: &str) -> f64 {
    c.node(node).metric(name).unwrap_or(0.0)
}

/// Readers of `id` on `node` that each do blocking reloads and fetch every new part.
fn readers(
    c: &ProcessCluster,
    node: u64,
    id: &str,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let base = c.node(node).url("");
            let id = id.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .user_agent(format!("reader-{node}-{i}"))
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut next: Option<(u64, usize)> = None;
                let mut fetched = std::collections::HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut url = format!("{base}/hls/{id}/media.m3u8");
                    if let Some((msn, part)) = next {
                        url.push_str(&format!("?_HLS_msn={msn}&_HLS_part={part}"));
                    }
                    let Ok(text) = client.get(&url).send().and_then(|r| r.text()) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    let playlist = hls_check::parse(&text);
                    if let Some((_, uri)) = playlist.part_uris().last()
                        && fetched.insert(uri.clone())
                    {
                        let _ = client
                            .get(format!("{base}/hls/{id}/{uri}"))
                            .send()
                            .and_then(|r| r.bytes());
                    }
                    next = playlist.last_part().map(|(msn, i)| (msn, i + 1));
                }
            })
        })
        .collect()
}

fn egress(readers_per_edge: usize, seconds: u64) {
    let c = ProcessCluster::start("bench-egress", 4, &[]);
    c.wait_leader(Duration::from_secs(15));
    let _publisher = Publisher::start(&c.node(1).rtmp_url(&create(&c, "egress")));
    c.node(1).wait_for_stream("egress", 1);
    let forwarded = "castmesh_mesh_forwarded_bytes_total{stream=\"egress\"}";
    let ingest = "castmesh_ingest_bytes_total{stream=\"egress\"}";
    let mut all = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    for edges in [1u64, 3] {
        for node in 2..=edges + 1 {
            if !all.iter().any(|(n, _)| *n == node) {
                all.push((node, readers(&c, node, "egress", readers_per_edge, &stop)));
            }
        }
        // Let subscriptions start and readers settle before measuring.
        std::thread::sleep(Duration::from_secs(5));
        let subscriptions = c
            .node(1)
            .metric("castmesh_mesh_subscriptions{stream=\"egress\"}");
        let (f0, i0) = (counter(&c, 1, forwarded), counter(&c, 1, ingest));
        std::thread::sleep(Duration::from_secs(seconds));
        let (f1, i1) = (counter(&c, 1, forwarded), counter(&c, 1, ingest));
        let ratio = (f1 - f0) / (i1 - i0);
        println!(
            "| {edges} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            edges as usize * readers_per_edge,
            (f1 - f0) * 8.0 / seconds as f64 / 1000.0,
            (i1 - i0) * 8.0 / seconds as f64 / 1e6,
            ratio,
            edges,
            ratio / edges as f64,
            // The origin's subscription gauge: one per edge.
        );
        eprintln!("subscriptions on the origin: {subscriptions:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for (_, handles) in all {
        for h in handles {
            h.join().unwrap();
        }
    }
}

/// The media sequence number in a part name (`part-RUN-MSN.INDEX.m4s`).
fn part_msn(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?
        .split('-')
        .nth(1)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn republish(rounds: usize) {
    let mut c = ProcessCluster::start("bench-republish", 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    let key = create(&c, "move");
    // Reference: a first publish on a healthy cluster → its first part listed there.
    let stop = Arc::new(AtomicBool::new(false));
    let first_watch = watch(c.node(1).url(""), "move".into(), stop.clone());
    let started = Instant::now();
    let mut publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("move", 1);
    stop.store(true, Ordering::Relaxed);
    let first_publish = first_watch
        .join()
        .unwrap()
        .values()
        .min()
        .map_or(f64::NAN, |t| (*t - started).as_secs_f64() * 1000.0);
    eprintln!("first publish: first part after {first_publish:.0} ms");
    let (mut on_edge, mut on_origin) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Origin a dies; the publisher moves to b; c is an edge throughout.
        let a = (round % 3) as u64 + 1;
        let b = a % 3 + 1;
        let edge = b % 3 + 1;
        let stop = Arc::new(AtomicBool::new(false));
        let edge_watch = watch(c.node(edge).url(""), "move".into(), stop.clone());
        std::thread::sleep(Duration::from_secs(6));
        // Parts of later segments than any listed now are the new origin's.
        let (_, text) = c.node(edge).get_text("/hls/move/media.m3u8");
        let last_msn = hls_check::parse(&text).open_msn();
        c.kill(a);
        publisher.kill();
        let origin_watch = watch(c.node(b).url(""), "move".into(), stop.clone());
        let started = Instant::now();
        publisher = Publisher::start(&c.node(b).rtmp_url(&key));
        // Long enough for a new run to list a full live window (3 target durations)
        // after the take-over, which is when edges switch to it.
        std::thread::sleep(Duration::from_secs(15));
        stop.store(true, Ordering::Relaxed);
        let first_after = |seen: HashMap<String, Instant>| {
            seen.iter()
                .filter(|(name, _)| part_msn(name).is_some_and(|msn| msn > last_msn))
                .map(|(_, t)| t)
                .min()
                .map(|t| (*t - started).as_secs_f64() * 1000.0)
                .unwrap_or(f64::NAN)
        };
        let e = first_after(edge_watch.join().unwrap());
        let o = first_after(origin_watch.join().unwrap());
        eprintln!(
            "round {round}: node {a} killed, republished on {b}: first part on the origin after {o:.0} ms, on edge {edge} after {e:.0} ms"
        );
        on_edge.push(e);
        on_origin.push(o);
        c.start_node(a);
        c.wait_caught_up(Duration::from_secs(30));
    }
    on_edge.sort_by(|a, b| a.total_cmp(b));
    on_origin.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {rounds} | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {first_publish:.0} | {:.2} |",
        percentile(&on_edge, 0.5),
        on_edge[0],
        on_edge[on_edge.len() - 1],
        percentile(&on_origin, 0.5),
        on_origin[0],
        on_origin[on_origin.len() - 1],
        percentile(&on_edge, 0.5) / first_publish
    );
}

fn main() {
    let seconds: u64 = bench_arg("--seconds", 20);
    let streams: String = bench_arg("--streams", "1,50".to_string());
    let readers: usize = bench_arg("--readers", 100);
    let rounds: usize = bench_arg("--rounds", 3);
    let only: String = bench_arg("--only", "latency,egress,republish".to_string());
    if only.contains("latency") {
        println!("\n### Edge added latency (part listed on edge − listed on origin)\n");
        println!(
            "| streams | edge − origin ms median / p99 | reference: origin − origin ms median / p99 |"
        );
        println!("|---|---|---|");
        for n in streams.split(',').filter_map(|s| s.trim().parse().ok()) {
            edge_latency(n, seconds);
        }
    }
    if only.contains("egress") {
        println!("\n### Origin egress to edges\n");
        println!(
            "| edges | readers | origin → edges kbit/s | publisher Mbit/s | egress / ingest | reference: edges | ratio / edges |"
        );
        println!("|---|---|---|---|---|---|---|");
        egress(readers, seconds);
    }
    if only.contains("republish") {
        println!("\n### Republish on a new origin → first new part listed\n");
        println!(
            "| rounds | on an edge ms median (min–max) | on the new origin ms median (min–max) | reference: first publish → first part ms | edge / reference |"
        );
        println!("|---|---|---|---|---|");
        republish(rounds);
    }
}
