//! Stream life: a publisher that drops and comes back within the grace period
//! continues the same playlist after one discontinuity; a second publisher with
//! the same key takes over at once; after the grace period the playlist ends,
//! and after retention the stream is gone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::hls_check::Checker;
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;

#[test]
fn republish_within_grace_continues_after_one_discontinuity() {
    let node = Node::start("republish", &["--streams-grace-period", "10s"]);
    let mut first = Publisher::start(&node.rtmp_url("again"));
    node.wait_for_stream("again", 2);
    let reader = Reader::start(&node.playlist_url("again"), 24, "castmesh-republish-reader");

    let mut checker = Checker::default();
    let mut discontinuities = BTreeSet::new();
    let mut second = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(26) {
        if second.is_none() && started.elapsed() > Duration::from_secs(6) {
            first.kill();
            std::thread::sleep(Duration::from_secs(2));
            second = Some(Publisher::start(&node.rtmp_url("again")));
        }
        let (status, text) = node.get_text("/hls/again/media.m3u8");
        assert_eq!(status, 200);
        let (playlist, violations) = checker.check(&text);
        assert!(violations.is_empty(), "{violations:#?}\n{text}");
        discontinuities.extend(
            playlist
                .segments
                .iter()
                .filter(|s| s.discontinuity)
                .map(|s| s.msn),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        discontinuities.len(),
        1,
        "discontinuities at {discontinuities:?}"
    );
    let read = reader.finish();
    assert!(
        read.status.success(),
        "reader failed across the republish:\n{}",
        read.stderr
    );
    assert!(
        read.seconds >= 23.9,
        "reader stopped at {} s:\n{}",
        read.seconds,
        read.stderr
    );
}

#[test]
fn a_second_publisher_takes_over_at_once() {
    let node = Node::start("takeover", &[]);
    let mut first = Publisher::start(&node.rtmp_url("obs"));
    node.wait_for_stream("obs", 1);
    let mut second = Publisher::start(&node.rtmp_url("obs"));
    // The old connection is closed by the server, not left to time out.
    let exited = first.wait_exit(Duration::from_secs(10));
    assert!(exited.is_some(), "first publisher was not disconnected");
    assert!(second.wait_exit(Duration::from_millis(100)).is_none());
    wait_for("takeover logged", Duration::from_secs(5), || {
        node.log_text()
            .contains("another publisher took over")
            .then_some(())
    });
    // The stream keeps advancing with the new publisher.
    let before =
        castmesh_tests::hls_check::parse(&node.get_text("/hls/obs/media.m3u8").1).open_msn();
    wait_for(
        "stream advances after takeover",
        Duration::from_secs(15),
        || {
            let now = castmesh_tests::hls_check::parse(&node.get_text("/hls/obs/media.m3u8").1);
            (now.open_msn() >= before + 2).then_some(())
        },
    );
    assert_eq!(node.json("/api/v1/streams/obs")["media"]["state"], "live");
}

#[test]
fn grace_period_ends_the_stream_and_retention_removes_it() {
    let node = Node::start(
        "ending",
        &["--streams-grace-period", "2s", "--streams-retention", "3s"],
    );
    let mut publisher = Publisher::start(&node.rtmp_url("bye"));
    node.wait_for_stream("bye", 1);
    publisher.kill();
    // The node notices the closed socket a moment after the kill.
    wait_for("grace period", Duration::from_secs(5), || {
        (node.json("/api/v1/streams/bye")["media"]["state"] == "grace").then_some(())
    });
    let text = wait_for("ENDLIST", Duration::from_secs(10), || {
        let (_, text) = node.get_text("/hls/bye/media.m3u8");
        text.contains("#EXT-X-ENDLIST").then_some(text)
    });
    let (_, violations) = Checker::default().check(&text);
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(node.json("/api/v1/streams/bye")["media"]["state"], "ended");
    wait_for("stream removed", Duration::from_secs(10), || {
        (node.get_text("/hls/bye/media.m3u8").0 == 404).then_some(())
    });
    assert_eq!(node.json("/api/v1/node/streams"), serde_json::json!([]));
    assert_eq!(node.metric("castmesh_streams_live"), Some(0.0));
}
