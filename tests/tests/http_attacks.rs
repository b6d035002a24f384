//! Slow and silent HTTP clients against a node that is serving a stream: each is
//! closed by its timeout or refused by a connection limit, counted in
//! `castmesh_http_connections_closed_total`, while other clients are served.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::hls_check::parse;
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw::closed_within;
use castmesh_tests::{connect_from, http_get_from, wait_for};

fn closed_count(node: &Node, reason: &str) -> f64 {
    node.metric(&format!(
        "castmesh_http_connections_closed_total{{reason=\"{reason}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn slowloris_connections_are_closed_by_the_header_timeout_while_others_are_served() {
    // Limits high enough that the timeout, not a limit, is what is tested.
    let node = Node::start(
        "http-slowloris",
        &[
            "--set",
            "http.header_timeout=3s",
            "--set",
            "http.max_connections_per_ip=5000",
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("watched"));
    node.wait_for_stream("watched", 1);
    let reader = Reader::start(&node.playlist_url("watched"), 15, "slowloris-reader");

    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..2000)
        .map(|i| {
            let mut s = connect_from("127.0.0.2", node.http);
            // Half say nothing, half start a request and never finish it.
            if i % 2 == 1 {
                s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            }
            s
        })
        .collect();
    let opened = started.elapsed();
    // Served meanwhile, from another address.
    let (status, text) = node.get_text("/hls/watched/media.m3u8");
    assert_eq!(status, 200, "{text}");
    // Every silent connection is closed within the timeout (plus the time it took
    // to open them all and a margin for a loaded machine).
    let deadline = started + opened + Duration::from_secs(3 + 4);
    for (i, s) in silent.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(s, left.max(Duration::from_millis(100))),
            "silent connection {i} still open {:?} after the first was opened",
            started.elapsed()
        );
    }
    let result = reader.finish();
    assert!(
        result.status.success() && result.seconds >= 14.0,
        "the reader stopped during the attack ({} s): {}",
        result.seconds,
        result.stderr
    );
    assert!(closed_count(&node, "header_timeout") >= 2000.0);
}

#[test]
fn a_client_that_stops_reading_is_closed_and_one_address_gets_its_share() {
    let node = Node::start(
        "http-stalled",
        &[
            "--set",
            "http.write_timeout=2s",
            "--set",
            "http.max_connections_per_ip=8",
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("big"));
    node.wait_for_stream("big", 2);
    let playlist = parse(&node.get_text("/hls/big/media.m3u8").1);
    let segment = &playlist.segments[0].uri;

    // Thirty pipelined requests for a full segment, never read: far more than the
    // socket buffers hold, so the server's writes stall.
    let mut s = connect_from("127.0.0.7", node.http);
    let request = format!("GET /hls/big/{segment} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(request.repeat(30).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    wait_for("the stalled reader closed", Duration::from_secs(5), || {
        (closed_count(&node, "write_timeout") >= 1.0).then_some(())
    });
    assert!(closed_within(&mut s, Duration::from_secs(10)));

    // Eight connections from one address are let in, the ninth is not; another
    // address still is.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| connect_from("127.0.0.8", node.http))
        .collect();
    wait_for("eight connections held", Duration::from_secs(5), || {
        let mut ninth = connect_from("127.0.0.8", node.http);
        closed_within(&mut ninth, Duration::from_millis(500)).then_some(())
    });
    assert!(closed_count(&node, "per_ip_limit") >= 1.0);
    let mut other = connect_from("127.0.0.9", node.http);
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut other, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}

/// Fetches `path` from `local` with `cookie`, on a connection of its own.
fn get_with_cookie(local: &str, node: &Node, path: &str, cookie: &str) -> String {
    let header = format!("Cookie: castmesh_viewer={cookie}");
    http_get_from(local, node.http, path, &header)
}

#[test]
fn invented_session_cookies_count_at_most_the_per_address_cap() {
    let node = Node::start(
        "http-cookies",
        &[
            "--set",
            "streams.max_viewer_sessions_per_ip=20",
            "--streams-viewer-timeout",
            "60s",
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("counted"));
    node.wait_for_stream("counted", 1);
    // Waiting for the stream made this test's own (anonymous) session a viewer.
    let before = node.json("/api/v1/streams/counted")["media"]["viewers"]
        .as_u64()
        .unwrap();
    // Fifty made-up sessions from one address, five from another.
    for i in 0..50u64 {
        let answer = get_with_cookie(
            "127.0.0.12",
            &node,
            "/hls/counted/media.m3u8",
            &format!("{:016x}{:016x}", i, i + 1000),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    for i in 0..5u64 {
        get_with_cookie(
            "127.0.0.13",
            &node,
            "/hls/counted/media.m3u8",
            &format!("{:016x}{:016x}", i + 5000, i),
        );
    }
    wait_for("25 more viewers counted", Duration::from_secs(5), || {
        (node.json("/api/v1/streams/counted")["media"]["viewers"] == before + 25).then_some(())
    });
}
