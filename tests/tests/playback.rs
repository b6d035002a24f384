//! Acceptance: ffmpeg publishes 720p30 H.264 High (B-frames) + AAC to
//! rtmp://127.0.0.1:1935/live/demo; ffmpeg decodes the HLS back with -xerror,
//! ffprobe sees both streams, and every playlist poll over 20 s obeys the rules.

use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::{Publisher, Reader, probe_streams};
use castmesh_tests::hls_check::{Checker, check_multivariant};
use castmesh_tests::node::Node;

#[test]
fn publish_then_play_on_the_default_ports() {
    let node = Node::start_on(
        "playback",
        "127.0.0.1:1935".parse().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
        &[],
    );
    let _publisher = Publisher::start("rtmp://127.0.0.1:1935/live/demo");
    node.wait_for_stream("demo", 1);
    let url = "http://127.0.0.1:8080/hls/demo/index.m3u8";

    let reader = Reader::start(url, 10, "castmesh-test-reader");

    // Meanwhile: every poll over 20 s passes the playlist checker.
    let mut checker = Checker::default();
    let started = Instant::now();
    let mut last_msn = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let (status, text) = node.get_text("/hls/demo/media.m3u8");
        assert_eq!(status, 200, "{text}");
        let (playlist, violations) = checker.check(&text);
        assert!(
            violations.is_empty(),
            "poll {}: {violations:#?}\n{text}",
            checker.polls
        );
        last_msn = playlist.open_msn();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(checker.polls >= 40, "only {} polls", checker.polls);
    assert!(
        last_msn >= 10,
        "stream did not advance: open msn {last_msn}"
    );

    let read = reader.finish();
    assert!(
        read.status.success(),
        "ffmpeg -xerror failed:\n{}",
        read.stderr
    );
    assert!(
        read.seconds >= 9.9,
        "decoded only {} s:\n{}",
        read.seconds,
        read.stderr
    );
    assert!(
        read.video_kb > 0.0 && read.audio_kb > 0.0,
        "{}",
        read.stderr
    );

    let probe = probe_streams(url);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["profile"], "High");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "44100");

    // The entry playlist carries what a player needs to pick the rendition.
    let (status, text) = node.get_text("/hls/demo/index.m3u8");
    assert_eq!(status, 200);
    let (variant, violations) = check_multivariant(&text);
    assert!(violations.is_empty(), "{violations:#?}\n{text}");
    let variant = variant.unwrap();
    assert_eq!(variant.attributes["CODECS"], "avc1.64001f,mp4a.40.2");
    assert_eq!(variant.attributes["RESOLUTION"], "1280x720");
    assert_eq!(variant.attributes["FRAME-RATE"], "30.000");
    let bandwidth: u64 = variant.attributes["BANDWIDTH"].parse().unwrap();
    assert!(
        (2_000_000..6_000_000).contains(&bandwidth),
        "BANDWIDTH={bandwidth}"
    );
    assert_eq!(variant.uri, "media.m3u8");

    let api = node.json("/api/v1/node/streams");
    let demo = &api.as_array().unwrap()[0];
    assert_eq!(demo["id"], "demo");
    assert_eq!(demo["codecs"], "avc1.64001f,mp4a.40.2");
    assert_eq!(demo["resolution"], "1280x720");
    assert!(demo["bitrate"].as_u64().unwrap() > 500_000, "{demo}");
}
