//! LL-HLS blocking reload: answered when the part exists, 400 when too far
//! ahead or malformed, 503 when nothing comes for three target durations.

use std::time::Duration;

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::hls_check::parse;
use castmesh_tests::node::Node;

#[test]
fn blocking_reload_returns_when_the_part_exists() {
    let node = Node::start("blocking", &[]);
    let mut publisher = Publisher::start(&node.rtmp_url("ll"));
    node.wait_for_stream("ll", 1);

    for _ in 0..5 {
        let (_, text) = node.get_text("/hls/ll/media.m3u8");
        let now = parse(&text);
        let msn = now.open_msn();
        let next = now.open_parts.len();
        let (status, text) = node.get_text(&format!(
            "/hls/ll/media.m3u8?_HLS_msn={msn}&_HLS_part={next}"
        ));
        assert_eq!(status, 200, "{text}");
        let after = parse(&text);
        // The answer contains the part it waited for…
        let listed = after.part_uris();
        assert!(
            listed.iter().any(|((m, i), _)| *m == msn && *i == next)
                || after.segments.iter().any(|s| s.msn == msn),
            "part {msn}.{next} missing from the answer:\n{text}"
        );
        // …and was released as soon as it existed: at most one newer part had time to
        // appear, which a fixed sleep of a part duration or longer would not give.
        let (last_msn, last_idx) = after.last_part().expect("parts");
        let newer = if last_msn == msn {
            last_idx - next
        } else {
            last_idx + 1
        };
        assert!(
            newer <= 1,
            "blocked too long: asked {msn}.{next}, last is {last_msn}.{last_idx}"
        );
        // The part named by the answer's preload hint can be requested before it exists.
        let hint = after.preload_hint.clone().expect("preload hint");
        let uri = hint.split("URI=\"").nth(1).unwrap().trim_end_matches('"');
        let (status, body) = node.get(&format!("/hls/ll/{uri}")).unwrap();
        assert_eq!(status, 200);
        assert!(body.len() > 100);
    }

    let (_, text) = node.get_text("/hls/ll/media.m3u8");
    let open = parse(&text).open_msn();
    for (query, why) in [
        (format!("_HLS_msn={}", open + 3), "msn too far ahead"),
        (
            format!("_HLS_msn={open}&_HLS_part=40"),
            "part too far ahead",
        ),
        ("_HLS_part=1".to_string(), "part without msn"),
        ("_HLS_msn=abc".to_string(), "not a number"),
    ] {
        let (status, body) = node.get_text(&format!("/hls/ll/media.m3u8?{query}"));
        assert_eq!(status, 400, "{why}: {body}");
    }

    // Nothing new for 3 target durations (publisher gone, stream in its grace period): 503.
    publisher.kill();
    std::thread::sleep(Duration::from_millis(500));
    let (_, text) = node.get_text("/hls/ll/media.m3u8");
    let p = parse(&text);
    let (status, body) = node.get_text(&format!(
        "/hls/ll/media.m3u8?_HLS_msn={}&_HLS_part={}",
        p.open_msn(),
        p.open_parts.len() + 1
    ));
    assert_eq!(status, 503, "{body}");
    // Unknown streams are a short 404.
    let (status, body) = node.get_text("/hls/nope/index.m3u8");
    assert_eq!(status, 404);
    assert!(body.contains("no live stream"), "{body}");
}
