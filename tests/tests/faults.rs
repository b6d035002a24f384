//! Supervision: a panicking segmenter is restarted and the stream continues;
//! no part that was ever listed returns 404. Too many restarts end the stream.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::hls_check::{Checker, parse};
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;

#[test]
fn segmenter_panic_is_restarted_and_no_listed_part_404s() {
    let node = Node::start("faults", &["--debug-fault-injection", "true"]);
    let _publisher = Publisher::start(&node.rtmp_url("crashy"));
    node.wait_for_stream("crashy", 1);

    let mut checker = Checker::default();
    let mut fetched = HashSet::new();
    let mut crashed_at = None;
    let mut msn_at_crash = 0;
    let mut discontinuity_after_crash = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(16) {
        let (_, text) = node.get_text("/hls/crashy/media.m3u8");
        let (playlist, violations) = checker.check(&text);
        assert!(violations.is_empty(), "{violations:#?}\n{text}");
        // Every part listed, now or before, is still served while listed.
        for ((msn, i), uri) in playlist.part_uris() {
            if fetched.insert((msn, i)) || msn + 2 >= playlist.open_msn() {
                let (status, _) = node.get(&format!("/hls/crashy/{uri}")).unwrap();
                assert_eq!(status, 200, "listed part {uri} returned {status}");
            }
        }
        for s in &playlist.segments {
            let (status, _) = node.get(&format!("/hls/crashy/{}", s.uri)).unwrap();
            assert_eq!(status, 200, "listed segment {} returned {status}", s.uri);
            if crashed_at.is_some() && s.msn >= msn_at_crash && s.discontinuity {
                discontinuity_after_crash = true;
            }
        }
        if crashed_at.is_none() && started.elapsed() > Duration::from_secs(4) {
            assert_eq!(node.post("/debug/streams/crashy/crash/segmenter"), 202);
            crashed_at = Some(Instant::now());
            msn_at_crash = playlist.open_msn();
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        node.metric("castmesh_actor_restarts_total{actor=\"segmenter\"}"),
        Some(1.0)
    );
    assert!(
        discontinuity_after_crash,
        "the restart is not marked as a discontinuity"
    );
    let open = parse(&node.get_text("/hls/crashy/media.m3u8").1).open_msn();
    assert!(
        open >= msn_at_crash + 3,
        "stream did not continue: {msn_at_crash} → {open}"
    );
    assert!(
        node.log_text()
            .contains("fault injection: segmenter crash requested")
    );

    // The viewer counter is restarted too.
    assert_eq!(node.post("/debug/streams/crashy/crash/viewer-counter"), 202);
    wait_for("viewer-counter restart", Duration::from_secs(5), || {
        node.metric("castmesh_actor_restarts_total{actor=\"viewer-counter\"}")
            .filter(|v| *v == 1.0)
    });
}

#[test]
fn too_many_restarts_end_the_stream() {
    let node = Node::start(
        "intensity",
        &[
            "--debug-fault-injection",
            "true",
            "--streams-max-restarts",
            "2",
        ],
    );
    let mut publisher = Publisher::start(&node.rtmp_url("doomed"));
    node.wait_for_stream("doomed", 1);
    // Each crash must hit a running segmenter: wait for the restart before the next
    // one (a crash request sent while the failed actor is still being torn down is
    // dropped with it, and panics are slow to unwind with RUST_BACKTRACE set).
    for restarted in 1..=2 {
        assert_eq!(node.post("/debug/streams/doomed/crash/segmenter"), 202);
        wait_for("segmenter restarted", Duration::from_secs(10), || {
            (node.metric("castmesh_actor_restarts_total{actor=\"segmenter\"}")
                >= Some(f64::from(restarted)))
            .then_some(())
        });
    }
    assert_eq!(node.post("/debug/streams/doomed/crash/segmenter"), 202);
    wait_for(
        "stream removed after the restart limit",
        Duration::from_secs(10),
        || (node.get_text("/hls/doomed/media.m3u8").0 == 404).then_some(()),
    );
    assert!(
        publisher.wait_exit(Duration::from_secs(10)).is_some(),
        "publisher not disconnected"
    );
    assert!(node.log_text().contains("giving up on the stream"));
    // The node itself is fine: a new publish works.
    let _again = Publisher::start(&node.rtmp_url("doomed"));
    node.wait_for_stream("doomed", 1);
}
