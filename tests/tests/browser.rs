//! A viewer in a real browser: headless Chromium playing the stream with hls.js in
//! low-latency mode (tests/browser/play.mjs). hls.js is the strictest LL-HLS web client;
//! it must play continuously from parts, without errors.

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::node::Node;

#[test]
fn hls_js_plays_from_parts_in_chromium() {
    let node = Node::start("browser", &[]);
    let _publisher = Publisher::start(&node.rtmp_url("web"));
    node.wait_for_stream("web", 1);
    let playlist = node.playlist_url("web");
    let report = castmesh_tests::browser::run("play.mjs", &[&playlist, "8"]);
    let errors = report["errors"].as_array().unwrap();
    assert!(
        !errors.iter().any(|e| e["fatal"] == true),
        "hls.js fatal errors: {report}"
    );
    // Continuous playback: media time advanced nearly as long as we watched.
    assert!(report["played"].as_f64().unwrap() >= 6.5, "{report}");
    // Low-latency mode really used parts and blocking reloads.
    assert!(report["parts"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["canBlockReload"], true, "{report}");
    assert_eq!(report["partTarget"], 0.2, "{report}");
    assert_eq!(report["codecs"], "avc1.64001f,mp4a.40.2", "{report}");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(1280), Some(720))
    );
}
