//! `make bench-restream`: what one restream destination costs castmesh, against the
//! seed's way (GoStream runs one `ffmpeg -i rtmp://… -c copy -f flv rtmp://dest` per
//! destination), side by side in one run; and the latency a frame gains on its way
//! from castmesh's ingest to a destination.
//!
//! The publisher is `ffmpeg -re -c copy` of the 720p30 sample (2.5 Mbit/s), the
//! destinations are one nginx-rtmp (a stream name each).
//!
//! - CPU: castmesh with 0, 1, 5 and 10 destinations (a fresh node each time): its CPU
//!   time over a window, less the 0-destination run's, per destination and second.
//!   The seed's way: the publisher into nginx-rtmp (its ingest) and N ffmpeg copies
//!   from there to the destination; the ffmpeg processes' CPU per process and second
//!   (nginx's own share of serving them is not counted, which favours ffmpeg).
//! - Latency: a small RTMP server in this binary is the destination; each video and
//!   audio frame it receives is matched by its bytes to the sample's frame, which the
//!   publisher sent at its start + the frame's timestamp (`-re`); video and audio are
//!   reported apart (castmesh lets audio wait for the next video frame's write, see
//!   node/src/stream/restream/queue.rs). Three paths: the publisher
//!   straight into the sink (the reference), through castmesh, and the seed's way.
//!   Only the sample's first pass counts (its loops would make matches ambiguous),
//!   after its first 3 s (connecting).
//!
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castmesh_tests::api;
use castmesh_tests::ffmpeg::{PacedPublisher, sample_flv};
use castmesh_tests::nginx::{Nginx, NginxOptions};
use castmesh_tests::node::Node;
use castmesh_tests::{bench_arg, percentile, proc, wait_for};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use serde_json::json;

const AUDIO: u8 = 8;
const VIDEO: u8 = 9;

/// A frame's identity: its FLV tag type and the hash of its payload after the codec
/// header (5 bytes for AVC, 2 for AAC; ffmpeg's remux rewrites nothing after them).
type FrameId = (u8, u64);

fn frame_hash(tag_type: u8, body: &[u8]) -> Option<FrameId> {
    let header = match tag_type {
        VIDEO => 5,
        AUDIO => 2,
        _ => return None,
    };
    // An AVC NALU packet or a raw AAC frame, not a sequence header.
    if body.len() <= header || body[1] != 1 {
        return None;
    }
    let mut h = DefaultHasher::new();
    body[header..].hash(&mut h);
    Some((tag_type, h.finish()))
}

/// The frames of an FLV file: identity → timestamp (ms).
fn sample_frames(file: &Path) -> HashMap<FrameId, u32> {
    let data = std::fs::read(file).expect("read the sample");
    let mut frames = HashMap::new();
    let mut at = 9 + 4; // header, first PreviousTagSize
    while at + 11 <= data.len() {
        let tag = &data[at..];
        let size = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        let ts = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
        let Some(body) = data.get(at + 11..at + 11 + size) else {
            break;
        };
        if let Some(h) = frame_hash(tag[0], body) {
            frames.entry(h).or_insert(ts);
        }
        at += 11 + size + 4;
    }
    frames
}

/// When a frame arrived.
type Arrivals = Arc<Mutex<Vec<(Instant, FrameId)>>>;

/// A one-purpose RTMP server: accepts any publish and notes when each frame arrives.
struct Sink {
    addr: SocketAddr,
    arrivals: Arrivals,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let a = arrivals.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                let a = a.clone();
                std::thread::spawn(move || serve_sink(socket, a));
            }
        });
        Sink { addr, arrivals }
    }

    fn url(&self) -> String {
        format!("rtmp://{}/live", self.addr)
    }

    fn take(&self) -> Vec<(Instant, FrameId)> {
        std::mem::take(&mut self.arrivals.lock().unwrap())
    }
}

fn serve_sink(mut socket: TcpStream, arrivals: Arrivals) {
    let _ = socket.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut handshake = Handshake::new(PeerType::Server);
    let leftover = loop {
        let Ok(n) = socket.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        match handshake.process_bytes(&buf[..n]) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                let _ = socket.write_all(&response_bytes);
            }
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => {
                let _ = socket.write_all(&response_bytes);
                break remaining_bytes;
            }
            Err(_) => return,
        }
    };
    let Ok((mut session, first)) = ServerSession::new(ServerSessionConfig::new()) else {
        return;
    };
    let mut pending = first;
    let mut input = leftover;
    loop {
        if !input.is_empty() {
            match session.handle_input(&input) {
                Ok(results) => pending.extend(results),
                Err(_) => return,
            }
        }
        while !pending.is_empty() {
            let results = std::mem::take(&mut pending);
            for result in results {
                match result {
                    ServerSessionResult::OutboundResponse(p) => {
                        let _ = socket.write_all(&p.bytes);
                    }
                    ServerSessionResult::RaisedEvent(event) => match event {
                        ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                            if let Ok(more) = session.accept_request(request_id) {
                                pending.extend(more);
                            }
                        }
                        ServerSessionEvent::VideoDataReceived { data, .. } => {
                            if let Some(h) = frame_hash(VIDEO, &data) {
                                arrivals.lock().unwrap().push((Instant::now(), h));
                            }
                        }
                        ServerSessionEvent::AudioDataReceived { data, .. } => {
                            if let Some(h) = frame_hash(AUDIO, &data) {
                                arrivals.lock().unwrap().push((Instant::now(), h));
                            }
                        }
                        _ => {}
                    },
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
        let Ok(n) = socket.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        input = buf[..n].to_vec();
    }
}

const WARMUP_MS: u32 = 3000;

/// Milliseconds from each first-pass frame's send time to its arrival: video's,
/// audio's.
fn latencies(
    arrivals: &[(Instant, FrameId)],
    started: Instant,
    frames: &HashMap<FrameId, u32>,
    pass_ms: u32,
) -> Latencies {
    let mut seen = std::collections::HashSet::new();
    let all = arrivals
        .iter()
        .filter(|(_, h)| seen.insert(*h))
        .filter_map(|(at, h)| {
            let ts = *frames.get(h)?;
            // The first seconds include connecting (castmesh's destination connects
            // when the stream goes live): steady state only.
            if ts < WARMUP_MS {
                return None;
            }
            let sent = started + Duration::from_millis(u64::from(ts));
            let since_start = at.saturating_duration_since(started);
            (since_start < Duration::from_millis(u64::from(pass_ms))).then(|| {
                (
                    h.0,
                    at.saturating_duration_since(sent).as_secs_f64() * 1000.0,
                )
            })
        });
    let (video, audio): (Vec<_>, Vec<_>) = all.partition(|(kind, _)| *kind == VIDEO);
    let ms = |v: Vec<(u8, f64)>| v.into_iter().map(|(_, ms)| ms).collect();
    Latencies {
        video: ms(video),
        audio: ms(audio),
    }
}

#[derive(Default)]
struct Latencies {
    video: Vec<f64>,
    audio: Vec<f64>,
}

/// A castmesh node with an account and a stream; its publish URL.
fn castmesh(name: &str) -> (Node, String, String) {
    let node = Node::start(
        name,
        &[
            "--accounts-signup",
            "open",
            "--restream-allow-networks",
            "127.0.0.0/8",
            "--log",
            "warn",
        ],
    );
    let base = node.url("");
    let token = api::sign_up(&base, "bench@example.com");
    let made = api::post(
        &format!("{base}/api/v1/streams"),
        Some(&token),
        json!({ "id": "bench", "title": "bench" }),
    );
    let key = made.json["stream_key"].as_str().unwrap();
    let publish = format!("rtmp://{}/live/{key}", node.rtmp);
    (node, token, publish)
}

fn add_destination(node: &Node, token: &str, url: &str, key: &str) {
    let added = api::post(
        &node.url("/api/v1/streams/bench/destinations"),
        Some(token),
        json!({ "name": key, "platform": "custom", "server_url": url, "stream_key": key }),
    );
    assert_eq!(added.status, 201, "{}", added.json);
}

fn live_destinations(node: &Node, token: &str) -> usize {
    let list = api::get(&node.url("/api/v1/streams/bench/destinations"), Some(token));
    list.json.as_array().map_or(0, |l| {
        l.iter().filter(|d| d["status"]["state"] == "live").count()
    })
}

/// castmesh's CPU seconds per second with `n` destinations on `dest`.
fn castmesh_cpu(n: usize, dest: &Nginx, sample: &Path, warmup: Duration, window: Duration) -> f64 {
    let (node, token, publish) = castmesh(&format!("restream-bench-{n}"));
    for i in 0..n {
        add_destination(&node, &token, &dest.url(), &format!("c{n}-{i}"));
    }
    let _publisher = PacedPublisher::start(sample, &publish);
    wait_for("the destinations live", Duration::from_secs(30), || {
        (live_destinations(&node, &token) == n).then_some(())
    });
    std::thread::sleep(warmup);
    let pids = [node.child.id()];
    let before = proc::cpu_seconds(&pids);
    let t0 = Instant::now();
    std::thread::sleep(window);
    (proc::cpu_seconds(&pids) - before) / t0.elapsed().as_secs_f64()
}

fn copy_process(from: &str, to: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostats", "-i", from])
        .args(["-c", "copy", "-f", "flv", to])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

/// The seed's way: CPU seconds per second of one `ffmpeg -c copy` process, with `n`
/// of them copying from `ingest` to `dest`.
fn ffmpeg_cpu(
    n: usize,
    ingest: &Nginx,
    dest: &Nginx,
    sample: &Path,
    warmup: Duration,
    window: Duration,
) -> f64 {
    let _publisher = PacedPublisher::start(sample, &format!("{}/src{n}", ingest.url()));
    std::thread::sleep(Duration::from_secs(2));
    let mut copies: Vec<Child> = (0..n)
        .map(|i| {
            copy_process(
                &format!("{}/src{n}", ingest.url()),
                &format!("{}/f{n}-{i}", dest.url()),
            )
        })
        .collect();
    std::thread::sleep(warmup);
    let pids: Vec<u32> = copies.iter().map(Child::id).collect();
    let before = proc::cpu_seconds(&pids);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let per_s = (proc::cpu_seconds(&pids) - before) / t0.elapsed().as_secs_f64();
    for c in &mut copies {
        let _ = c.kill();
        let _ = c.wait();
    }
    per_s / n as f64
}

fn summary(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    format!(
        "{:.0} / {:.0} (n={})",
        percentile(v, 50.0),
        percentile(v, 95.0),
        v.len()
    )
}

fn main() {
    let counts: Vec<usize> = bench_arg("--destinations", "1,5,10".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let warmup = Duration::from_secs(bench_arg("--warmup-seconds", 5u64));
    let window = Duration::from_secs(bench_arg("--measure-seconds", 15u64));
    let sample = sample_flv();
    let frames = sample_frames(&sample);
    let pass_ms = frames.values().max().copied().unwrap_or(0);
    eprintln!(
        "sample: {} ({} video frames, {} audio frames)",
        sample.display(),
        frames.keys().filter(|(kind, _)| *kind == VIDEO).count(),
        frames.keys().filter(|(kind, _)| *kind == AUDIO).count(),
    );
    let options = || NginxOptions {
        on_publish: None,
        tls: None,
        record: false,
    };
    let dest = Nginx::start("restream-bench-dest", options());
    let ingest = Nginx::start("restream-bench-ingest", options());

    eprintln!("castmesh without destinations…");
    let base = castmesh_cpu(0, &dest, &sample, warmup, window);
    let mut rows = Vec::new();
    for &n in &counts {
        eprintln!("castmesh with {n} destinations…");
        let with = castmesh_cpu(n, &dest, &sample, warmup, window);
        eprintln!("the seed's way with {n} ffmpeg copies…");
        let ffmpeg = ffmpeg_cpu(n, &ingest, &dest, &sample, warmup, window);
        rows.push((n, with, (with - base) / n as f64, ffmpeg));
    }

    eprintln!("latency…");
    let sink = Sink::start();
    let measure = |publish: &str, sink: &Sink| {
        sink.take();
        let publisher = PacedPublisher::start(&sample, publish);
        std::thread::sleep(Duration::from_millis(u64::from(pass_ms) + 3000));
        let started = publisher.started();
        drop(publisher);
        let arrivals = sink.take();
        started.map_or_else(Latencies::default, |s| {
            latencies(&arrivals, s, &frames, pass_ms)
        })
    };
    let mut direct = measure(&format!("{}/direct", sink.url()), &sink);
    let mut through_castmesh = {
        let (node, token, publish) = castmesh("restream-bench-latency");
        add_destination(&node, &token, &sink.url(), "via-castmesh");
        measure(&publish, &sink)
    };
    let mut seed_way = {
        let mut copy = copy_process(
            &format!("{}/lat", ingest.url()),
            &format!("{}/via-ffmpeg", sink.url()),
        );
        // nginx-rtmp holds a player until the stream starts: the copy is there first.
        let publisher = PacedPublisher::start(&sample, &format!("{}/lat", ingest.url()));
        sink.take();
        std::thread::sleep(Duration::from_millis(u64::from(pass_ms) + 3000));
        let started = publisher.started();
        drop(publisher);
        let _ = copy.kill();
        let _ = copy.wait();
        let arrivals = sink.take();
        started.map_or_else(Latencies::default, |s| {
            latencies(&arrivals, s, &frames, pass_ms)
        })
    };

    println!(
        "| destinations | castmesh CPU s/s (0 destinations: {base:.4}) | castmesh added CPU s per destination-s | ffmpeg copy CPU s per destination-s | ratio castmesh/ffmpeg |"
    );
    println!("|---|---|---|---|---|");
    for (n, with, per_dest, ffmpeg) in rows {
        println!(
            "| {n} | {with:.4} | {per_dest:.4} | {ffmpeg:.4} | {:.2} |",
            per_dest / ffmpeg
        );
    }
    println!();
    println!(
        "| path (frame sent by the publisher → received by the destination) | video latency ms median / p95 | audio latency ms median / p95 |"
    );
    println!("|---|---|---|");
    let paths = [
        ("publisher → destination (reference)", &mut direct),
        ("publisher → castmesh → destination", &mut through_castmesh),
        (
            "publisher → nginx-rtmp → ffmpeg -c copy → destination (the seed's way)",
            &mut seed_way,
        ),
    ];
    for (path, l) in paths {
        println!(
            "| {path} | {} | {} |",
            summary(&mut l.video),
            summary(&mut l.audio)
        );
    }
}
