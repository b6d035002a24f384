//! The gRPC port checks secrets before it reads a body: a stranger's 30 MiB Raft
//! call is refused without the node buffering it.

use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_client::RaftTransportClient;
use castmesh_tests::node::Node;

#[test]
fn an_unauthenticated_30_mib_raft_call_is_refused_before_its_body_is_read() {
    let node = Node::start("grpc-unauthenticated", &[]);
    let peak_before = node.peak_rss_kib();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codes = runtime.block_on(async {
        let mut client = RaftTransportClient::connect(format!("http://{}", node.grpc))
            .await
            .expect("connect to the gRPC port")
            .max_encoding_message_size(64 << 20);
        let mut codes = Vec::new();
        for _ in 0..5 {
            let call = client
                .append_entries(RaftPayload {
                    payload: vec![7u8; 30 << 20],
                })
                .await;
            codes.push(
                call.expect_err("a call without the secret succeeded")
                    .code(),
            );
        }
        codes
    });
    assert!(
        codes.iter().all(|c| *c == tonic::Code::Unauthenticated),
        "{codes:?}"
    );
    // The peak, not the current RSS: a body read and freed again would not show there.
    let peak_after = node.peak_rss_kib();
    assert!(
        peak_after < peak_before + 8 * 1024,
        "the node's peak memory grew from {peak_before} KiB to {peak_after} KiB"
    );
}
