//! Harness for castmesh's black-box tests: start real `castmesh` processes,
//! publish with the real `ffmpeg`, read back with `ffmpeg`/`ffprobe`, and check
//! playlists against the rules in `docs/hls-rules.md`.
//!
//! Nothing here fakes the server or the clients; hand-made bytes are used only
//! for malformed RTMP input that no real client would send.

pub mod api;
pub mod browser;
pub mod cluster;
pub mod ffmpeg;
pub mod hls_check;
pub mod hook_backend;
pub mod nginx;
pub mod node;
pub mod proc;
pub mod raft_loopback;
pub mod rtmp_raw;
pub mod viewer_load;
pub mod watch_socket;

use std::time::{Duration, Instant};

/// A TCP connection to `to` from the local address `local`: any 127.x address is
/// this machine, so tests can act as many clients with addresses of their own.
/// Reads time out after 100 ms, as [`rtmp_raw::closed_within`] polls.
pub fn connect_from(local: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::new(local.parse().expect("an IP address"), 0).into())
        .expect("bind a loopback source address");
    socket.connect(&to.into()).expect("connect");
    let s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    s
}

/// `GET path` from the local address `local` on a connection of its own, with one
/// extra header line (`Name: value`); the whole answer, or what came within 5 s.
pub fn http_get_from(local: &str, to: std::net::SocketAddr, path: &str, header: &str) -> String {
    use std::io::{Read, Write};
    let mut s = connect_from(local, to);
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `target/<profile>`: where cargo put this executable (tests live one level deeper,
/// in `deps/`) and the `castmesh` binary of the same build.
pub fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Directory for test artifacts (fixtures, node logs) inside the target directory.
/// A loopback subnet of its own (`127.K.0.0/16`) for each cluster a test process
/// starts. Tests run in parallel: a node killed and restarted on its old port must not
/// find that port taken by another test's new listener, which on the shared 127.0.0.1
/// happens (the kernel hands freed ports out again).
pub fn private_subnet() -> u8 {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(10);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A benchmark flag's value (`--name VALUE`), or `default`.
/// The `p`-th percentile (0–100) of `values` (sorted in place); NaN when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (values.len().max(1) - 1) as f64).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

pub fn bench_arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

pub fn artifacts_dir() -> std::path::PathBuf {
    let dir = profile_dir().join("castmesh-tests");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}
