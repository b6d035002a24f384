//! `make bench`: castmesh against nginx-rtmp, side by side in one run.
//!
//! For each publisher count N, each server gets the same pre-encoded FLV published
//! by N `ffmpeg -re -c copy` processes, in two phases on a fresh server process:
//!
//! 1. latency: up to 4 streams are probed from the start. castmesh is read the way
//!    LL-HLS players read it (blocking reloads for the next part); nginx-rtmp, which has
//!    no blocking reload, is polled every 20 ms. A segment's (or part's) latency is when
//!    it first appears in the playlist minus when its first frame was sent, which is the
//!    publisher's start (from ffmpeg's progress output) plus the media time of the frame.
//! 2. CPU: no readers; the server's CPU time (all its processes and threads, from
//!    schedstat) over a fixed window, divided by N × window: CPU seconds per
//!    stream-second. Peak RSS is VmHWM (summed over nginx's master and worker).
//!
//! With `--baseline PATH` a second castmesh binary (say, one built before a change)
//! runs beside the new one in the same run, and their ratio is printed too.
//!
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use castmesh_tests::bench_arg;
use castmesh_tests::ffmpeg::{PacedPublisher, sample_flv};
use castmesh_tests::hls_check::parse;
use castmesh_tests::node::{binary, free_tcp_addrs};
use castmesh_tests::proc;
use castmesh_tests::{artifacts_dir, wait_for};

const PROBED_STREAMS: usize = 4;
const NGINX_POLL: Duration = Duration::from_millis(20);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_s() -> f64 {
    epoch().elapsed().as_secs_f64()
}

fn since_epoch(t: Instant) -> f64 {
    t.saturating_duration_since(epoch()).as_secs_f64()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Castmesh,
    /// Another castmesh binary (`--baseline PATH`, e.g. one built from an earlier
    /// commit), run the same way, to compare a change before and after in one run.
    Baseline,
    Nginx,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Castmesh => "castmesh",
            Kind::Baseline => "castmesh (baseline)",
            Kind::Nginx => "nginx-rtmp",
        }
    }

    fn is_castmesh(self) -> bool {
        self != Kind::Nginx
    }
}

fn baseline_binary() -> Option<PathBuf> {
    let path: String = bench_arg("--baseline", String::new());
    (!path.is_empty()).then(|| PathBuf::from(path))
}

struct Server {
    kind: Kind,
    child: Child,
    rtmp: SocketAddr,
    http: SocketAddr,
}

impl Server {
    fn start(kind: Kind) -> Server {
        let [rtmp, http] = free_tcp_addrs("127.0.0.1", &[]);
        let child = match kind {
            Kind::Castmesh | Kind::Baseline => Command::new(match kind {
                Kind::Baseline => baseline_binary().expect("--baseline PATH"),
                _ => binary(),
            })
            .args(["--dev", "--log", "warn"])
            .args([
                "--rtmp-listen",
                &rtmp.to_string(),
                "--http-listen",
                &http.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start castmesh"),
            Kind::Nginx => {
                let dir = artifacts_dir().join("nginx-bench");
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(dir.join("hls")).unwrap();
                std::fs::create_dir_all(dir.join("logs")).unwrap();
                let conf = nginx_conf(&dir, rtmp, http);
                std::fs::write(dir.join("nginx.conf"), conf).unwrap();
                Command::new("nginx")
                    .arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start nginx (make bench installs nginx + libnginx-mod-rtmp)")
            }
        };
        let server = Server {
            kind,
            child,
            rtmp,
            http,
        };
        wait_for(
            &format!("{} listening", kind.name()),
            Duration::from_secs(20),
            || std::net::TcpStream::connect(rtmp).ok().map(|_| ()),
        );
        server
    }

    fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    fn playlist_url(&self, key: &str) -> String {
        match self.kind {
            Kind::Nginx => format!("http://{}/hls/{key}.m3u8", self.http),
            _ => format!("http://{}/hls/{key}/media.m3u8", self.http),
        }
    }

    /// The server process and its children (nginx's worker).
    fn pids(&self) -> Vec<u32> {
        proc::family(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.kind == Kind::Nginx {
            // nginx's worker outlives a killed master otherwise.
            let _ = Command::new("pkill").args(["-f", "nginx-bench"]).status();
        }
    }
}

fn nginx_conf(dir: &Path, rtmp: SocketAddr, http: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 4096; }}
rtmp {{
    server {{
        listen {rtmp};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {dir}/hls;
            hls_fragment 2s;
            hls_playlist_length 12s;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    server {{
        listen {http};
        location /hls/ {{
            alias {dir}/hls/;
            types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
            add_header Cache-Control no-cache;
        }}
    }}
}}
"#
    )
}

/// First time each segment / part was seen in the playlist, and its media start time.
#[derive(Default)]
struct Sightings {
    segment_durations: BTreeMap<u64, f64>,
    segment_seen: BTreeMap<u64, f64>,
    part_durations: BTreeMap<(u64, usize), f64>,
    part_seen: BTreeMap<(u64, usize), f64>,
}

impl Sightings {
    fn record(&mut self, text: &str) {
        let at = now_s();
        let p = parse(text);
        for s in &p.segments {
            self.segment_durations.entry(s.msn).or_insert(s.duration);
            self.segment_seen.entry(s.msn).or_insert(at);
            for (i, part) in s.parts.iter().enumerate() {
                self.part_durations
                    .entry((s.msn, i))
                    .or_insert(part.duration);
                self.part_seen.entry((s.msn, i)).or_insert(at);
            }
        }
        for (i, part) in p.open_parts.iter().enumerate() {
            self.part_durations
                .entry((p.open_msn(), i))
                .or_insert(part.duration);
            self.part_seen.entry((p.open_msn(), i)).or_insert(at);
        }
    }

    /// Latencies (ms) of segments and parts, given when the publisher started sending.
    fn latencies(&self, started: f64) -> (Vec<f64>, Vec<f64>) {
        // Media start of each segment, counted from the first segment (media time 0).
        // Servers number their first segment differently (castmesh 0, nginx-rtmp 1).
        let mut start = BTreeMap::new();
        let mut t = 0.0;
        let first = self.segment_durations.keys().next().copied().unwrap_or(0);
        for (i, (msn, d)) in self.segment_durations.iter().enumerate() {
            if *msn != first + i as u64 {
                break; // a gap: later starts would be unknown
            }
            start.insert(*msn, t);
            t += d;
        }
        let mut segments = Vec::new();
        for (msn, seen) in &self.segment_seen {
            if let Some(s) = start.get(msn) {
                segments.push((seen - started - s) * 1000.0);
            }
        }
        let mut parts = Vec::new();
        let mut offset_in_segment = 0.0;
        let mut current = None;
        for ((msn, i), d) in &self.part_durations {
            if current != Some(*msn) {
                current = Some(*msn);
                offset_in_segment = 0.0;
            }
            // Open segments have no entry in `start` yet: derive it from the previous one.
            let seg_start = start.get(msn).copied().or_else(|| {
                let prev = msn.checked_sub(1)?;
                Some(start.get(&prev)? + self.segment_durations.get(&prev)?)
            });
            if let (Some(s), Some(seen)) = (seg_start, self.part_seen.get(&(*msn, *i))) {
                parts.push((seen - started - s - offset_in_segment) * 1000.0);
            }
            offset_in_segment += d;
        }
        (segments, parts)
    }
}

fn probe(kind: Kind, url: String, until: Instant) -> Sightings {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut sightings = Sightings::default();
    let mut next: Option<(u64, usize)> = None;
    while Instant::now() < until {
        let target = match (kind, next) {
            (kind, Some((msn, part))) if kind.is_castmesh() => {
                format!("{url}?_HLS_msn={msn}&_HLS_part={part}")
            }
            _ => url.clone(),
        };
        let Ok(resp) = client.get(&target).send() else {
            std::thread::sleep(NGINX_POLL);
            continue;
        };
        if !resp.status().is_success() {
            std::thread::sleep(NGINX_POLL);
            continue;
        }
        let text = resp.text().unwrap_or_default();
        sightings.record(&text);
        if kind.is_castmesh() {
            let p = parse(&text);
            next = Some((p.open_msn(), p.open_parts.len()));
        } else {
            std::thread::sleep(NGINX_POLL);
        }
    }
    sightings
}

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    Some(values[rank])
}

struct Figures {
    cpu_per_stream_s: f64,
    segment_ms: (Option<f64>, Option<f64>, usize),
    part_ms: (Option<f64>, Option<f64>, usize),
    peak_rss_mib: f64,
}

fn run(
    kind: Kind,
    n: usize,
    sample: &Path,
    probe_s: u64,
    warmup_s: u64,
    measure_s: u64,
) -> Figures {
    // Phase 1: latency, probing the first streams from the moment they start.
    let (mut segments, mut parts) = (Vec::new(), Vec::new());
    {
        let server = Server::start(kind);
        let until = Instant::now() + Duration::from_secs(probe_s);
        let probes: Vec<_> = (0..n.min(PROBED_STREAMS))
            .map(|i| {
                let url = server.playlist_url(&format!("s{i}"));
                std::thread::spawn(move || probe(kind, url, until))
            })
            .collect();
        let publishers: Vec<_> = (0..n)
            .map(|i| PacedPublisher::start(sample, &server.rtmp_url(&format!("s{i}"))))
            .collect();
        for (i, p) in probes.into_iter().enumerate() {
            let sightings = p.join().unwrap();
            if let Some(started) = publishers[i].started().map(since_epoch) {
                let (s, p) = sightings.latencies(started);
                segments.extend(s);
                parts.extend(p);
            }
        }
    }
    // Phase 2: CPU and memory with no readers.
    let server = Server::start(kind);
    let _publishers: Vec<_> = (0..n)
        .map(|i| PacedPublisher::start(sample, &server.rtmp_url(&format!("s{i}"))))
        .collect();
    std::thread::sleep(Duration::from_secs(warmup_s));
    let before = proc::cpu_seconds(&server.pids());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(measure_s));
    let cpu_s = proc::cpu_seconds(&server.pids()) - before;
    let stream_s = n as f64 * t0.elapsed().as_secs_f64();
    let summary = |v: &mut Vec<f64>| (percentile(v, 50.0), percentile(v, 95.0), v.len());
    Figures {
        cpu_per_stream_s: cpu_s / stream_s,
        segment_ms: summary(&mut segments),
        part_ms: summary(&mut parts),
        peak_rss_mib: proc::peak_rss_kib(&server.pids()) as f64 / 1024.0,
    }
}

fn fmt_ms(v: (Option<f64>, Option<f64>, usize)) -> String {
    match v {
        (Some(m), Some(p), n) => format!("{m:.0} / {p:.0} (n={n})"),
        _ => "n/a".into(),
    }
}

fn main() {
    epoch();
    let counts: Vec<usize> = bench_arg("--publishers", "1,8,32".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let probe_s = bench_arg("--probe-seconds", 16u64);
    let warmup_s = bench_arg("--warmup-seconds", 5u64);
    let measure_s = bench_arg("--measure-seconds", 15u64);
    let sample: PathBuf = sample_flv();
    eprintln!("sample: {}", sample.display());
    let mut kinds = vec![Kind::Castmesh];
    if baseline_binary().is_some() {
        kinds.push(Kind::Baseline);
    }
    kinds.push(Kind::Nginx);
    let mut rows = Vec::new();
    for &n in &counts {
        let mut runs = Vec::new();
        for &kind in &kinds {
            eprintln!("running {} with {n} publishers…", kind.name());
            runs.push((kind, run(kind, n, &sample, probe_s, warmup_s, measure_s)));
        }
        rows.push((n, runs));
    }
    println!(
        "| publishers | server | CPU s per stream-s | CPU ratio to nginx | segment latency ms median / p95 | part latency ms median / p95 | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, runs) in rows {
        let nginx = runs.last().expect("nginx runs last").1.cpu_per_stream_s;
        for (kind, r) in &runs {
            println!(
                "| {n} | {} | {:.4} | {} | {} | {} | {:.1} |",
                kind.name(),
                r.cpu_per_stream_s,
                if kind.is_castmesh() {
                    format!("{:.2}", r.cpu_per_stream_s / nginx)
                } else {
                    String::new()
                },
                fmt_ms(r.segment_ms),
                fmt_ms(r.part_ms),
                r.peak_rss_mib
            );
        }
        if let [(Kind::Castmesh, new), (Kind::Baseline, old), ..] = runs.as_slice() {
            println!(
                "| {n} | castmesh / baseline | {:.2} | | | | {:.2} |",
                new.cpu_per_stream_s / old.cpu_per_stream_s,
                new.peak_rss_mib / old.peak_rss_mib
            );
        }
    }
}
