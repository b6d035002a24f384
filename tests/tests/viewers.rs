//! Viewer counts: distinct HLS sessions on this node, in the API and /metrics,
//! expiring after the viewer timeout.

use std::process::{Command, Stdio};
use std::time::Duration;

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;

#[test]
fn distinct_viewers_are_counted_and_expire() {
    let node = Node::start("viewers", &["--streams-viewer-timeout", "3s"]);
    let _publisher = Publisher::start(&node.rtmp_url("watched"));
    node.wait_for_stream("watched", 1);
    // The harness's own playlist fetches count as a viewer too; let that session expire
    // (3 s timeout, swept every second) so only the three players below remain.
    wait_for("harness viewer to expire", Duration::from_secs(10), || {
        (node.json("/api/v1/streams/watched")["media"]["viewers"] == 0).then_some(())
    });
    // Three real players (ffmpeg, copying without decoding), told apart by User-Agent.
    let mut readers: Vec<_> = (0..3)
        .map(|i| {
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-user_agent"])
                .arg(format!("castmesh-viewer-{i}"))
                .args([
                    "-i",
                    &node.playlist_url("watched"),
                    "-c",
                    "copy",
                    "-f",
                    "null",
                    "-",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    wait_for("3 viewers in the API", Duration::from_secs(15), || {
        (node.json("/api/v1/streams/watched")["media"]["viewers"] == 3).then_some(())
    });
    // The gauge follows within a second (the counter publishes it when it sweeps).
    wait_for("3 viewers in /metrics", Duration::from_secs(3), || {
        (node.metric("castmesh_viewers{stream=\"watched\"}") == Some(3.0)).then_some(())
    });
    for r in &mut readers {
        let _ = r.kill();
        let _ = r.wait();
    }
    wait_for("viewers expire", Duration::from_secs(10), || {
        (node.json("/api/v1/streams/watched")["media"]["viewers"] == 0).then_some(())
    });
}
