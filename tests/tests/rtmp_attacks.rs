//! Hostile RTMP input against a live node serving a stream to an ffmpeg reader: each
//! attacker's connection is closed with a logged reason and counted in
//! `castmesh_rtmp_connections_closed_total`, the node stays up, the reader keeps
//! decoding, and the node's memory grows by less than 64 MiB over the whole run.
//!
//! These bytes are made by hand because no real client sends them.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::node::Node;
use castmesh_tests::rtmp_raw::{
    amf, closed_within, command, connect, connect_and_publish, contains, control_message,
    handshake, message, read_until, read_until_closed, set_chunk_size,
};
use castmesh_tests::{connect_from, wait_for};

const CLOSE: Duration = Duration::from_secs(5);

/// Connects, shakes hands and sends `bytes`; the server must close the connection.
fn attack(node: &Node, what: &str, bytes: &[u8]) {
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    // The server may close while the rest is still being sent.
    let _ = s.write_all(bytes);
    assert!(closed_within(&mut s, CLOSE), "{what}: not closed");
}

fn nested_arrays(levels: usize) -> Vec<u8> {
    let mut payload = amf::string("onTextData");
    payload.extend([0x0a, 0, 0, 0, 1].repeat(levels));
    payload
}

/// An FLV tag of `tag_type` with an empty body, and its back-pointer.
fn empty_tag(tag_type: u8) -> Vec<u8> {
    let mut t = vec![tag_type, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    t.extend_from_slice(&11u32.to_be_bytes());
    t
}

#[test]
fn hostile_rtmp_input_is_refused_and_the_reader_keeps_decoding() {
    let mut node = Node::start("rtmp-attacks", &["--set", "rtmp.write_timeout=2s"]);
    let _publisher = Publisher::start(&node.rtmp_url("healthy"));
    node.wait_for_stream("healthy", 1);
    let reader = Reader::start(&node.playlist_url("healthy"), 40, "attacks-reader");
    let rss_before = node.rss_kib();
    let started = Instant::now();

    // 2 MB of nested strict arrays: aborted the process (stack overflow in rml_amf0).
    let mut big = set_chunk_size(1 << 24);
    big.extend(message(3, 0, 18, &nested_arrays(400_000)));
    attack(&node, "2 MB nested AMF", &big);
    // Nesting within the size limit is refused by depth.
    let mut deep = set_chunk_size(1 << 24);
    deep.extend(message(3, 0, 18, &nested_arrays(12_000)));
    attack(&node, "deep AMF", &deep);
    // A data message that is only @setDataFrame: panicked the connection task.
    attack(
        &node,
        "bare @setDataFrame",
        &message(3, 0, 18, &amf::string("@setDataFrame")),
    );
    // publish without its arguments: indexed past the end in rml_rtmp.
    attack(
        &node,
        "publish without arguments",
        &command(1, "publish", 3.0, &[amf::null()]),
    );
    // A second header on the same chunk stream declaring a shorter length
    // mid-message: the deserializer's buffer never completed and grew.
    let mut shrink = vec![0x04, 0, 0, 0, 0, 0x10, 0, 0x09, 1, 0, 0, 0];
    shrink.extend([0u8; 128]);
    shrink.extend([0x44, 0, 0, 0, 0, 0, 0x10, 0x09]);
    attack(&node, "length shrink", &shrink);
    // A 16 MiB aggregate before publishing.
    let mut aggregate = vec![0x04, 0, 0, 0, 0xFF, 0xFF, 0xF0, 22, 1, 0, 0, 0];
    aggregate.extend([0u8; 128]);
    attack(&node, "16 MiB aggregate before publish", &aggregate);
    // createStream flood: each one grew a map in rml_rtmp.
    let mut flood = Vec::new();
    for i in 0..200 {
        flood.extend(command(0, "createStream", f64::from(i), &[amf::null()]));
    }
    attack(&node, "createStream flood", &flood);
    // connect twice.
    let connect_once = command(
        0,
        "connect",
        1.0,
        &[amf::object(&[("app", amf::string("live"))])],
    );
    attack(
        &node,
        "second connect",
        &[connect_once.clone(), connect_once].concat(),
    );

    // After publishing: a 1 MiB aggregate of ~93,000 empty tags.
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    connect_and_publish(&mut s, "live", "aggregate-attacker");
    // rml_rtmp's answer to an accepted publish starts its description so.
    read_until(&mut s, "Successfully started publishing", CLOSE);
    let tags: Vec<u8> = empty_tag(8).repeat((1 << 20) / 15);
    let _ = s.write_all(&message(4, 1, 22, &tags));
    let (closed, _) = read_until_closed(&mut s, CLOSE);
    assert!(closed, "aggregate of empty tags: not closed");

    // A client that asks (pings) and never reads: the server's answers fill the
    // socket buffers, its writes stall, and the write timeout ends the connection
    // (before the 10 s publish timeout would).
    let mut s = connect(node.rtmp);
    handshake(&mut s);
    let mut writer = s.try_clone().unwrap();
    let flooding = std::thread::spawn(move || {
        // One full header, then header-less (type 3) repeats of the same 6-byte ping.
        let mut pings = control_message(4, &[0, 6, 0, 0, 0, 1]);
        for _ in 0..100_000 {
            pings.extend_from_slice(&[0xC2, 0, 6, 0, 0, 0, 1]);
        }
        let started = Instant::now();
        // Blocks once the server stops reading; fails once it has closed.
        while started.elapsed() < Duration::from_secs(20) && writer.write_all(&pings).is_ok() {}
    });
    flooding.join().unwrap();
    assert!(
        closed_within(&mut s, CLOSE),
        "a client that never reads was not closed"
    );

    let result = reader.finish();
    assert!(
        result.status.success() && result.seconds >= 35.0,
        "the reader stopped decoding during the attacks ({} s): {}",
        result.seconds,
        result.stderr
    );
    assert!(node.is_running());
    let rss_after = node.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    let log = node.log_text();
    for (reason, line) in [
        ("message_too_large", "exceeds the 65536-byte limit"),
        ("amf_too_deep", "AMF0 values nested deeper than 16 levels"),
        (
            "malformed_command",
            "malformed @setDataFrame without a name",
        ),
        (
            "malformed_command",
            "malformed command without its required arguments",
        ),
        ("bad_chunking", "a new message header on chunk stream 4"),
        ("too_many_commands", "more than 100 command messages"),
        ("second_connect", "a second connect on one connection"),
        ("malformed", "aggregate message of more than 1024 tags"),
        ("write_timeout", "did not take a write within 2s"),
    ] {
        assert!(log.contains(line), "no log line with {line:?}");
        let counted = node
            .metric(&format!(
                "castmesh_rtmp_connections_closed_total{{reason=\"{reason}\"}}"
            ))
            .unwrap_or(0.0);
        assert!(counted >= 1.0, "{reason} not counted");
    }
    eprintln!(
        "attacks took {:?}; RSS {rss_before} -> {rss_after} KiB",
        started.elapsed()
    );
}

#[test]
fn one_address_gets_its_share_of_connections_and_of_refused_publishes() {
    let node = Node::start(
        "rtmp-per-ip",
        &[
            "--cluster-open-publishing",
            "false",
            "--set",
            "rtmp.max_connections_per_ip=4",
            "--set",
            "rtmp.max_failed_publishes=3",
        ],
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| connect_from("127.0.0.3", node.rtmp))
        .collect();
    let mut fifth = connect_from("127.0.0.3", node.rtmp);
    assert!(
        closed_within(&mut fifth, CLOSE),
        "a fifth connection from one address was let in"
    );
    // Another address is not affected.
    let mut other = connect_from("127.0.0.4", node.rtmp);
    handshake(&mut other);
    drop(held);

    // Wrong keys: three are answered "unknown stream key", then the address is
    // refused without a lookup until the window ends.
    let mut answers = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.5", node.rtmp);
        handshake(&mut s);
        connect_and_publish(&mut s, "live", "not-a-key");
        let (closed, got) = read_until_closed(&mut s, CLOSE);
        assert!(closed, "a refused publisher was not closed");
        answers.push(got);
    }
    for got in &answers[..3] {
        assert!(contains(got, "unknown stream key"));
    }
    assert!(contains(&answers[3], "too many refused publish attempts"));
    // Other addresses still get their answer.
    let mut s = connect_from("127.0.0.6", node.rtmp);
    handshake(&mut s);
    connect_and_publish(&mut s, "live", "not-a-key");
    assert!(contains(
        &read_until_closed(&mut s, CLOSE).1,
        "unknown stream key"
    ));

    for reason in ["per_ip_limit", "failed_publish_limit"] {
        wait_for(reason, Duration::from_secs(5), || {
            node.metric(&format!(
                "castmesh_rtmp_connections_closed_total{{reason=\"{reason}\"}}"
            ))
            .filter(|n| *n >= 1.0)
        });
    }
}
