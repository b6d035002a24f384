//! Replays every fuzz input kept in the repository through the fuzz targets' entry
//! points (`castmesh_node::fuzz`), on the stable toolchain: the starting seeds, the
//! minimised corpus `make fuzz` grew, and the inputs that once crashed a target
//! (`node/fuzz/regressions/TARGET/`, each named for what it found). Any panic fails.

use std::path::Path;

use castmesh_node::fuzz;

/// Runs `target` on every file under `node/fuzz/{seeds,corpus,regressions}/{name}`;
/// returns how many there were.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for kind in ["seeds", "corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(name)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{} panicked", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs for {name}");
    replayed
}

/// The session part of `rtmp_session` starts from nothing, as after a real handshake.
#[test]
fn a_real_handshake_leaves_the_session_nothing() {
    assert_eq!(fuzz::handshake_leftover(), Some(Vec::new()));
}

#[test]
fn rtmp_session() {
    replay("rtmp_session", fuzz::rtmp_session);
}

#[test]
fn flv_media() {
    replay("flv_media", fuzz::flv_media);
}

#[test]
fn aggregate_message() {
    replay("aggregate_message", fuzz::aggregate_message);
}

#[test]
fn hls_request() {
    replay("hls_request", fuzz::hls_request);
}

#[test]
fn mesh_frames() {
    replay("mesh_frames", fuzz::mesh_frames);
}

#[test]
fn config_file() {
    replay("config_file", fuzz::config_file);
}

#[test]
fn forwarded_headers() {
    replay("forwarded_headers", fuzz::forwarded_headers);
}

#[test]
fn proxy_header() {
    replay("proxy_header", fuzz::proxy_header);
}

/// The restream client against what a destination's server says: the kept inputs
/// (`seeds/push_replies` holds `fuzz::push_replies_seed()` as written when the
/// target was added, in writes of 1 and 7 bytes: small enough that the client answers
/// each reply before the next arrives, so it publishes and sends its frame), and a real
/// server session's replies made now, cut into writes of every size.
#[test]
fn push_replies() {
    let seed = fuzz::push_replies_seed();
    let accepted = b"NetStream.Publish.Start";
    assert!(
        seed.windows(accepted.len()).any(|w| w == accepted),
        "the server session accepted the publish"
    );
    for mode in [0x01u8, 0x03, 0x05, 0x07] {
        let mut input = vec![mode];
        input.extend_from_slice(&seed);
        fuzz::push_replies(&input);
    }
    replay("push_replies", fuzz::push_replies);
}
