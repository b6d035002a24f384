//! `make bench-chat`: chat delivery latency across the cluster, against a bare
//! WebSocket echo in the same run.
//!
//! Two real nodes; a stream published to node 1 (its origin, which orders the chat);
//! 1,000 watch sockets on node 1 and 500 on node 2, reading only, and posters signed in
//! on node 1 that post 20 lines a second between them (each under the rate limit of 3
//! per 2 s). A line's latency is when a reader's socket delivered it minus when its
//! poster sent it: on node 1 the origin's own fan-out; on node 2 the mesh hop too.
//! The reference is a WebSocket echo server in this binary on the same machine (a
//! thread per socket, tungstenite): one client sending 20 messages a second, latency
//! from send to the echo's arrival (the same two legs: client → server → client).
//!
//! Not a test: it asserts nothing and prints figures for docs/benchmarks.md.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use castmesh_tests::api;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, small_sample_flv};
use castmesh_tests::{bench_arg, percentile, wait_for};
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// Lines a second in all.
const RATE: u64 = 20;
/// Posters sharing them: 20/s ÷ 14 < 1.5/s each, under 3 per 2 s.
const POSTERS: usize = 14;
const READ_TIMEOUT: Duration = Duration::from_millis(20);

type Socket = WebSocket<TcpStream>;

fn open(http: SocketAddr, stream: &str, token: Option<&str>) -> Socket {
    let mut request = format!("ws://{http}/api/v1/streams/{stream}/live")
        .into_client_request()
        .unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let tcp = TcpStream::connect(http).expect("connect");
    let _ = tcp.set_nodelay(true);
    let socket = tungstenite::client(request, tcp).expect("watch socket").0;
    // After the handshake: it must not be cut short by the timeout.
    socket
        .get_ref()
        .set_read_timeout(Some(READ_TIMEOUT))
        .unwrap();
    socket
}

/// The next text message, if one came within the read timeout.
fn read_text(socket: &mut Socket) -> Result<Option<String>, ()> {
    match socket.read() {
        Ok(Message::Text(t)) => Ok(Some(t.to_string())),
        Ok(Message::Close(_)) => Err(()),
        Ok(_) => Ok(None),
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(_) => Err(()),
    }
}

/// The sequence number of a chat line this benchmark posted ("b17" → 17).
fn posted_seq(text: &str) -> Option<usize> {
    if !text.contains("\"type\":\"line\"") {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    v["text"].as_str()?.strip_prefix('b')?.parse().ok()
}

/// Reads until `until`; when each posted line arrived.
fn reader(mut socket: Socket, until: Instant) -> Vec<(usize, Instant)> {
    let mut got = Vec::new();
    while Instant::now() < until {
        match read_text(&mut socket) {
            Ok(Some(text)) => {
                if let Some(seq) = posted_seq(&text) {
                    got.push((seq, Instant::now()));
                }
            }
            Ok(None) => {}
            Err(()) => break,
        }
    }
    got
}

/// Poster `i` sends lines i, i + POSTERS, … at their times from `start`; it reads
/// in between (a socket that does not read is dropped by the node).
fn poster(
    mut socket: Socket,
    i: usize,
    lines: usize,
    start: Instant,
    sent: Arc<Mutex<Vec<Option<Instant>>>>,
) {
    let period = Duration::from_millis(1000 / RATE);
    for seq in (i..lines).step_by(POSTERS) {
        let at = start + period * seq as u32;
        while Instant::now() < at {
            if read_text(&mut socket).is_err() {
                return;
            }
        }
        let post = json!({ "type": "post", "text": format!("b{seq}") }).to_string();
        sent.lock().unwrap()[seq] = Some(Instant::now());
        if socket.send(Message::text(post)).is_err() {
            return;
        }
    }
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && read_text(&mut socket).is_ok() {}
}

fn latencies(got: &[Vec<(usize, Instant)>], sent: &[Option<Instant>]) -> (Vec<f64>, usize) {
    let mut ms = Vec::new();
    for reader in got {
        for (seq, at) in reader {
            if let Some(Some(t)) = sent.get(*seq) {
                ms.push(at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
            }
        }
    }
    let expected = got.len() * sent.iter().filter(|s| s.is_some()).count();
    (ms, expected)
}

/// The reference: a WebSocket echo server here, one client at RATE messages a second.
fn echo_reference(messages: usize) -> Vec<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = tcp.set_nodelay(true);
                let Ok(mut ws) = tungstenite::accept(tcp) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if m.is_text() && ws.send(m).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let tcp = TcpStream::connect(addr).unwrap();
    let _ = tcp.set_nodelay(true);
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/echo"), tcp).unwrap();
    let period = Duration::from_millis(1000 / RATE);
    let start = Instant::now();
    let mut ms = Vec::new();
    for i in 0..messages {
        let at = start + period * i as u32;
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        ws.send(Message::text(format!("b{i}"))).unwrap();
        loop {
            if let Ok(Message::Text(_)) = ws.read() {
                break;
            }
        }
        ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    ms
}

fn row(name: &str, ms: &mut [f64], expected: usize) {
    let got = ms.len();
    println!(
        "| {name} | {:.1} | {:.1} | {got} of {expected} |",
        percentile(ms, 50.0),
        percentile(ms, 99.0),
    );
}

fn main() {
    let on_first: usize = bench_arg("--sockets-node1", 1000);
    let on_second: usize = bench_arg("--sockets-node2", 500);
    let seconds: u64 = bench_arg("--seconds", 20);
    let lines = (seconds * RATE) as usize;
    let c = ProcessCluster::start(
        "chat-bench",
        2,
        &[
            "--accounts-signup",
            "open",
            "--chat-max-sockets-per-ip",
            "4000",
            "--http-max-connections-per-ip",
            "8000",
            // The posters sign up from one address (sign-ups share this budget).
            "--accounts-max-failed-logins",
            "100",
            "--log",
            "warn",
        ],
    );
    c.wait_leader(Duration::from_secs(15));
    let created = c
        .castctl(1, &["stream", "create", "--id", "chat", "-o", "json"])
        .json();
    let key = created["key"].as_str().unwrap().to_string();
    let _publisher = Publisher::start_file(&c.node(1).rtmp_url(&key), &small_sample_flv());
    let (first, second) = (c.node(1).http, c.node(2).http);
    wait_for("chat open", Duration::from_secs(30), || {
        let mut s = open(first, "chat", None);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(t)) = read_text(&mut s)
                && t.contains("\"type\":\"chat\"")
                && t.contains("\"open\"")
            {
                return Some(());
            }
        }
        None
    });
    eprintln!("opening {on_first} + {on_second} watch sockets…");
    let sockets: Vec<(bool, Socket)> = (0..on_first)
        .map(|_| (true, open(first, "chat", None)))
        .chain((0..on_second).map(|_| (false, open(second, "chat", None))))
        .collect();
    let base = c.node(1).url("");
    let posters: Vec<Socket> = (0..POSTERS)
        .map(|i| {
            open(
                first,
                "chat",
                Some(&api::sign_up(&base, &format!("poster{i}@example.com"))),
            )
        })
        .collect();
    let start = Instant::now() + Duration::from_secs(2);
    let until = start + Duration::from_secs(seconds + 3);
    let sent = Arc::new(Mutex::new(vec![None; lines]));
    let ready = Arc::new(Barrier::new(sockets.len() + 1));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|(on_first, socket)| {
            let ready = ready.clone();
            let handle = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    ready.wait();
                    reader(socket, until)
                })
                .expect("reader thread");
            (on_first, handle)
        })
        .collect();
    ready.wait();
    eprintln!("posting {RATE} lines/s for {seconds} s…");
    let posting: Vec<_> = posters
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let sent = sent.clone();
            std::thread::spawn(move || poster(socket, i, lines, start, sent))
        })
        .collect();
    for p in posting {
        let _ = p.join();
    }
    let (mut near, mut far) = (Vec::new(), Vec::new());
    for (on_first, handle) in readers {
        let got = handle.join().unwrap_or_default();
        if on_first {
            near.push(got);
        } else {
            far.push(got);
        }
    }
    let sent = sent.lock().unwrap().clone();
    eprintln!("echo reference…");
    let mut echo = echo_reference(lines);
    let (mut near_ms, near_expected) = latencies(&near, &sent);
    let (mut far_ms, far_expected) = latencies(&far, &sent);
    println!("| {lines} lines at {RATE}/s | p50 ms | p99 ms | deliveries |");
    println!("|---|---|---|---|");
    row(
        "WebSocket echo on this machine (reference)",
        &mut echo,
        lines,
    );
    row(
        &format!("chat, {on_first} readers on the origin (node 1)"),
        &mut near_ms,
        near_expected,
    );
    row(
        &format!("chat, {on_second} readers on node 2 (over the mesh)"),
        &mut far_ms,
        far_expected,
    );
}
