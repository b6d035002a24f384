//! Malformed RTMP input: each bad connection is closed with a logged reason,
//! the node keeps serving its live stream, and memory stays bounded.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::hls_check::parse;
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw::{closed_within, connect, control_message, handshake};
use castmesh_tests::wait_for;

#[test]
fn bad_connections_are_closed_and_the_node_keeps_serving() {
    let mut node = Node::start(
        "malformed",
        &[
            "--rtmp-handshake-timeout",
            "1s",
            "--rtmp-idle-timeout",
            "2s",
            // Forty stalled connections come from one address.
            "--set",
            "rtmp.max_connections_per_ip=100",
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("healthy"));
    node.wait_for_stream("healthy", 1);
    let msn_before = parse(&node.get_text("/hls/healthy/media.m3u8").1).open_msn();
    let rss_before = node.rss_kib();

    // Random bytes instead of a handshake.
    let mut s = connect(node.rtmp);
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write_all(&noise).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "random bytes: not closed"
    );

    // A truncated handshake: half of C1, then the client goes away.
    let mut s = connect(node.rtmp);
    s.write_all(&[3u8; 700]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "truncated handshake: not closed"
    );

    // A stalled handshake: connect and say nothing.
    let mut s = connect(node.rtmp);
    assert!(
        closed_within(&mut s, Duration::from_secs(4)),
        "stalled handshake: not closed"
    );

    // An absurd chunk size (Set Chunk Size above 2^31 - 1).
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    s.write_all(&control_message(1, &0xFFFF_FFFFu32.to_be_bytes()))
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "absurd chunk size: not closed"
    );

    // A 16 MiB message before publishing is refused at its header (the guard holds
    // every message to 64 KiB until the connection publishes).
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    s.write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x09, 1, 0, 0, 0])
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "16 MiB message before publishing: not closed"
    );

    // Many connections each declaring the largest message allowed before publishing
    // and then stalling: the idle timeout closes them and the memory they pinned is
    // released.
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut s = connect(node.rtmp);
        handshake(&mut s);
        let mut header = vec![0x03, 0, 0, 0, 0x00, 0xFF, 0x00, 0x09, 1, 0, 0, 0];
        header.extend(std::iter::repeat_n(0u8, 128));
        s.write_all(&header).unwrap();
        stalled.push(s);
    }
    for mut s in stalled {
        assert!(
            closed_within(&mut s, Duration::from_secs(6)),
            "stalled message: not closed"
        );
    }

    let log = node.log_text();
    for reason in [
        "bad handshake",
        "connection closed during the handshake",
        "handshake not completed within 1s",
        "malformed RTMP",
        "chunk size 4294967295",
        "exceeds the 65536-byte limit",
        "nothing received for 2s",
    ] {
        assert!(log.contains(reason), "no log line with {reason:?}");
    }
    assert!(node.is_running());
    // The live stream kept going throughout.
    wait_for("healthy stream advancing", Duration::from_secs(10), || {
        let now = parse(&node.get_text("/hls/healthy/media.m3u8").1).open_msn();
        (now >= msn_before + 3).then_some(())
    });
    let rss_after = node.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    for (reason, at_least) in [
        ("malformed", 1.0),
        ("bad_chunk_size", 1.0),
        ("message_too_large", 1.0),
        ("idle_timeout", 40.0),
    ] {
        let counted = node
            .metric(&format!(
                "castmesh_rtmp_connections_closed_total{{reason=\"{reason}\"}}"
            ))
            .unwrap_or(0.0);
        assert!(counted >= at_least, "{reason}: {counted}");
    }
}
