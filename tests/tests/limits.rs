//! Explicit limits: each one ends the offending connection with a logged reason and
//! leaves everything else running.

use std::io::Write;
use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw::{closed_within, connect, handshake};
use castmesh_tests::wait_for;

#[test]
fn a_connection_that_never_publishes_is_closed() {
    let node = Node::start("publish-timeout", &["--rtmp-publish-timeout", "1s"]);
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    // Trickle bytes of a chunk header so the idle timeout never fires.
    let started = Instant::now();
    let mut closed = false;
    for byte in [0x03u8, 0, 0, 0, 0, 0, 0x20, 0x14, 0, 0, 0, 0] {
        if s.write_all(&[byte]).is_err() || closed_within(&mut s, Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after {:?}", started.elapsed());
    wait_for("publish timeout logged", Duration::from_secs(5), || {
        node.log_text()
            .contains("publishing not started within 1s")
            .then_some(())
    });
}

#[test]
fn a_publisher_above_the_bitrate_limit_is_disconnected() {
    let node = Node::start("bitrate", &["--rtmp-max-bitrate-kbps", "500"]);
    let mut publisher = Publisher::start(&node.rtmp_url("fat"));
    assert!(
        publisher.wait_exit(Duration::from_secs(15)).is_some(),
        "a 2.6 Mbit/s publisher was not disconnected"
    );
    assert!(
        node.log_text().contains("exceeds rtmp.max_bitrate_kbps"),
        "{}",
        node.log_text()
    );
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let node = Node::start("conn-limit", &["--rtmp-max-connections", "2"]);
    let _a = connect(node.rtmp);
    let _b = connect(node.rtmp);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = connect(node.rtmp);
    assert!(
        closed_within(&mut c, Duration::from_secs(3)),
        "third connection accepted"
    );
    assert!(node.log_text().contains("connection limit reached"));
    assert_eq!(
        node.metric("castmesh_rtmp_connections_closed_total{reason=\"connection_limit\"}"),
        Some(1.0)
    );
}
