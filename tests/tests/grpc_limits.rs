//! The gRPC port checks secrets before it reads a body: a stranger's 30 MiB Raft
//! call is refused without the node buffering it.

use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_client::RaftTransportClient;
use castmesh_tests::node::Node;

#[test]
fn an_unauthenticated_30_mib_raft_call_is_refused_before_its_body_is_read() {
    let node = Node::start("grpc-unauthenticated", &[]);
    let rss_before = node.rss_kib();
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
    let rss_after = node.rss_kib();
    assert!(
        rss_after < rss_before + 8 * 1024,
        "the node's memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
