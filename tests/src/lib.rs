//! Harness for castmesh's black-box tests: start real `castmesh` processes,
//! publish with the real `ffmpeg`, read back with `ffmpeg`/`ffprobe`, and check
//! playlists against the rules in `docs/hls-rules.md`.
//!
//! Nothing here fakes the server or the clients; hand-made bytes are used only
//! for malformed RTMP input that no real client would send.

pub mod ffmpeg;
pub mod hls_check;
pub mod node;
pub mod rtmp_raw;

use std::time::{Duration, Instant};

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

/// Directory for test artifacts (fixtures, node logs) inside the target directory.
pub fn artifacts_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/castmesh-tests
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("castmesh-tests");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}
