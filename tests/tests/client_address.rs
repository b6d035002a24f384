//! The client's real address behind a proxy: a node told to trust 127.0.0.10 takes the
//! client's address from that proxy's PROXY protocol header (RTMP) or forwarding
//! headers (HTTP) for its per-address limits, and believes nobody else's.
//!
//! The proxy is played by the test with hand-written bytes: what HAProxy's
//! `send-proxy` and an nginx `proxy_set_header X-Forwarded-For` would send.

use std::io::Write;
use std::time::Duration;

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw::{closed_within, connect_and_publish, handshake, read_until};
use castmesh_tests::{connect_from, http_get_from, wait_for};

const PROXY: &str = "127.0.0.10";
const CLOSE: Duration = Duration::from_secs(5);

fn proxy_line(client: &str) -> String {
    format!("PROXY TCP4 {client} 127.0.0.1 51234 1935\r\n")
}

#[test]
fn a_trusted_proxy_names_the_rtmp_client_and_nobody_else_can() {
    let node = Node::start(
        "rtmp-proxy-protocol",
        &[
            "--set",
            &format!("rtmp.trusted_proxies=[\"{PROXY}\"]"),
            "--set",
            "rtmp.max_connections_per_ip=1",
        ],
    );
    let closed = |reason: &str| {
        node.metric(&format!(
            "castmesh_rtmp_connections_closed_total{{reason=\"{reason}\"}}"
        ))
        .unwrap_or(0.0)
    };

    // Through the proxy, client 203.0.113.9 publishes.
    let mut first = connect_from(PROXY, node.rtmp);
    first
        .write_all(proxy_line("203.0.113.9").as_bytes())
        .unwrap();
    handshake(&mut first);
    connect_and_publish(&mut first, "live", "proxied");
    read_until(&mut first, "Successfully started publishing", CLOSE);
    // Another client through the same proxy is admitted: the per-address limit (1)
    // counts clients, not the proxy.
    let mut second = connect_from(PROXY, node.rtmp);
    second
        .write_all(proxy_line("203.0.113.10").as_bytes())
        .unwrap();
    handshake(&mut second);
    // The same client again is over its limit.
    let mut again = connect_from(PROXY, node.rtmp);
    again
        .write_all(proxy_line("203.0.113.9").as_bytes())
        .unwrap();
    assert!(
        closed_within(&mut again, CLOSE),
        "a second connection of 203.0.113.9"
    );
    wait_for("the per-address refusal counted", CLOSE, || {
        (closed("per_ip_limit") >= 1.0).then_some(())
    });
    // A proxy connection without a PROXY header is refused and counted.
    let mut bare = connect_from(PROXY, node.rtmp);
    bare.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(closed_within(&mut bare, CLOSE), "no PROXY header");
    wait_for("the bad header counted", CLOSE, || {
        (closed("bad_proxy_header") >= 1.0).then_some(())
    });
    // Anyone else's PROXY line is not a header but a bad handshake.
    let mut stranger = connect_from("127.0.0.11", node.rtmp);
    stranger
        .write_all(proxy_line("203.0.113.50").as_bytes())
        .unwrap();
    assert!(
        closed_within(&mut stranger, CLOSE),
        "a stranger's PROXY line"
    );

    // The node logged the publisher under the client's address, not the proxy's.
    let log = node.log_text();
    assert!(log.contains("peer=203.0.113.9:51234"), "{log}");
    assert!(
        !log.contains("203.0.113.50"),
        "a stranger's address was believed"
    );
    drop((first, second));
}

/// Fetches the stream's playlist from `local`, as forwarded for `client`.
fn get_for(local: &str, node: &Node, client: &str) -> String {
    let header = format!("X-Forwarded-For: {client}");
    http_get_from(local, node.http, "/hls/counted/media.m3u8", &header)
}

#[test]
fn a_trusted_proxy_names_the_http_client_and_nobody_else_can() {
    let node = Node::start(
        "http-forwarded",
        &[
            "--set",
            &format!("http.trusted_proxies=[\"{PROXY}\"]"),
            "--streams-viewer-timeout",
            "60s",
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("counted"));
    node.wait_for_stream("counted", 1);
    let before = node.json("/api/v1/streams/counted")["media"]["viewers"]
        .as_u64()
        .unwrap();
    // Six viewers behind the proxy, each its own address (and no cookie yet): six
    // viewers.
    for i in 1..=6 {
        let answer = get_for(PROXY, &node, &format!("198.51.100.{i}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Six requests from an address that is not a trusted proxy, claiming six
    // addresses: one address with one user agent and no cookie is one viewer.
    for i in 1..=6 {
        let answer = get_for("127.0.0.11", &node, &format!("198.51.100.{}", 100 + i));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    wait_for("7 more viewers counted", Duration::from_secs(5), || {
        (node.json("/api/v1/streams/counted")["media"]["viewers"] == before + 7).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        node.json("/api/v1/streams/counted")["media"]["viewers"],
        before + 7,
        "claims from an untrusted address were believed"
    );
}
