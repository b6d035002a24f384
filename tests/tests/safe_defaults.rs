//! What a node does when an operator sets nothing special: a config file does not
//! open publishing to anyone, open publishing (`--dev`) bounds and forgets the streams
//! it creates, and the binary the README tells an operator to build has no test
//! switches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::node::{Node, free_tcp_addrs, free_udp_addr};
use castmesh_tests::{artifacts_dir, wait_for};

/// Ports for a node started from a config file (the media ports come as flags).
fn ports() -> (SocketAddr, SocketAddr, SocketAddr) {
    let [rtmp, http, grpc] = free_tcp_addrs("127.0.0.1", &[]);
    (rtmp, http, grpc)
}

#[test]
fn a_config_file_without_open_publishing_refuses_an_unknown_key() {
    let (rtmp, http, grpc) = ports();
    let data = tempfile::tempdir().unwrap();
    let config = artifacts_dir().join("closed-publishing.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\ndata_dir = {:?}\ngrpc_listen = \"{grpc}\"\n\n[mesh]\nlisten = \"{}\"\n",
            data.path(),
            free_udp_addr("127.0.0.1")
        ),
    )
    .unwrap();
    let node = Node::spawn(
        "closed-publishing",
        rtmp,
        http,
        grpc,
        &["--config".into(), config.display().to_string()],
    );
    let mut publisher = Publisher::start(&node.rtmp_url("anything-goes"));
    assert!(
        publisher.wait_exit(Duration::from_secs(15)).is_some(),
        "a publisher with an unknown key was not refused"
    );
    wait_for("the refusal logged", Duration::from_secs(5), || {
        node.log_text().contains("unknown stream key").then_some(())
    });
    let (status, _) = node.get_text("/hls/anything-goes/index.m3u8");
    assert_eq!(status, 404);
}

/// The binary `make test` builds as the README tells an operator to
/// (`cargo build --release -p castmesh-node`), kept apart from the test build.
fn operator_binary() -> PathBuf {
    let bin = std::env::var_os("CASTMESH_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| castmesh_tests::profile_dir().join("operator/castmesh"));
    assert!(
        bin.exists(),
        "{} not found: `make test` builds it (make operator-bin)",
        bin.display()
    );
    bin
}

#[test]
fn the_operators_binary_has_no_fault_injection() {
    let bin = operator_binary();
    // The test build's switch is not even a flag there.
    let out = Command::new(&bin)
        .args(["--dev", "--debug-fault-injection", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--debug-fault-injection"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its environment variable is ignored, and the route does not exist.
    let (rtmp, http, grpc) = ports();
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(&bin);
    command.env("CASTMESH_DEBUG_FAULT_INJECTION", "true");
    let node = Node::spawn_command(
        command,
        "operator-binary",
        rtmp,
        http,
        grpc,
        &[
            "--dev".into(),
            "--cluster-grpc-listen".into(),
            grpc.to_string(),
            "--cluster-data-dir".into(),
            data.path().display().to_string(),
            "--mesh-listen".into(),
            free_udp_addr("127.0.0.1").to_string(),
        ],
    );
    let _publisher = Publisher::start(&node.rtmp_url("target"));
    node.wait_for_stream("target", 1);
    assert_eq!(node.post("/debug/streams/target/crash/segmenter"), 404);
    assert!(!node.log_text().contains("fault injection"));
}

/// Open publishing (`--dev`): each new key is a stream in the replicated state, so one
/// address may create only so many (here 2), and a stream nobody publishes any more
/// is forgotten after the stream retention (here 1 s, after a 1 s grace period).
#[test]
fn open_publishing_creates_few_streams_per_address_and_forgets_them() {
    use castmesh_tests::rtmp_raw::{connect, connect_and_publish, handshake, read_until};

    let node = Node::start(
        "open-publishing-budget",
        &[
            "--set",
            "cluster.max_open_streams_per_ip=2",
            "--set",
            "streams.grace_period=1s",
            "--set",
            "streams.retention=1s",
        ],
    );
    let publish = |key: &str, answer: &str| {
        let mut s = connect(node.rtmp);
        handshake(&mut s);
        connect_and_publish(&mut s, "live", key);
        read_until(&mut s, answer, Duration::from_secs(5));
    };
    publish("open-a", "Successfully started publishing");
    publish("open-b", "Successfully started publishing");
    publish("open-c", "this address created too many streams");
    let status = |id: &str| node.get(&format!("/api/v1/streams/{id}")).unwrap().0;
    assert_eq!(status("open-c"), 404, "the refused key made no stream");
    // Both publishers left: ended after the grace period, forgotten after the retention.
    assert_eq!(status("open-a"), 200);
    wait_for("both streams forgotten", Duration::from_secs(20), || {
        (status("open-a") == 404 && status("open-b") == 404).then_some(())
    });
    assert!(
        node.log_text()
            .contains("open-publishing stream forgotten after its retention"),
        "forgetting is logged"
    );
}
