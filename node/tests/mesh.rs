//! The QUIC mesh with real quinn endpoints on loopback UDP: it admits only peers with a
//! certificate from the cluster CA (made by the same code as `castmesh cert`), and a
//! subscriber that stops reading never holds up the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use castmesh_media::Codecs;
use castmesh_media::hls::window::{Part, WindowConfig, WindowEvent};
use castmesh_node::live::LiveStream;
use castmesh_node::mesh::certs::{self, Pem};
use castmesh_node::mesh::subscription::{
    HandOver, Served, StreamSource, SubscriptionError, ViewerReports,
};
use castmesh_node::mesh::{Members, Mesh};
use castmesh_node::metrics::Metrics;
use castmesh_node::seams::SystemClock;
use castmesh_node::stream::stats::StreamStats;

/// A mesh endpoint whose cluster has every node as a member.
fn start(ca: &Pem, node: &Pem, id: u64) -> (Mesh, Arc<Metrics>) {
    start_with_members(ca, node, id, Arc::new(|_| true))
}

fn start_with_members(ca: &Pem, node: &Pem, id: u64, members: Members) -> (Mesh, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let socket = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket).unwrap();
    let mesh = Mesh::start(socket, id, &ca.cert, node, metrics.clone(), [id as u8; 32]).unwrap();
    mesh.admit(members);
    (mesh, metrics)
}

/// The value of a metric line starting with `prefix` (name and labels), or 0.
fn metric(metrics: &Metrics, prefix: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Serves one stream, "show".
struct OneStream {
    live: Arc<LiveStream>,
    stats: Arc<StreamStats>,
}

#[async_trait::async_trait]
impl StreamSource for OneStream {
    fn stream(&self, id: &str) -> Option<Served> {
        (id == "show").then(|| Served {
            live: self.live.clone(),
            viewers: self.stats.clone(),
        })
    }

    /// It is this node's stream.
    fn origins(&self) -> Vec<(String, Arc<dyn ViewerReports>)> {
        vec![("show".into(), self.stats.clone())]
    }

    /// No publisher produces it here: it is only ever served.
    async fn hand_over(&self, _id: &str, _epoch: u64, _by: u64) -> HandOver {
        HandOver::NotProducing
    }

    /// It is restreamed nowhere.
    fn restream_statuses(&self, _id: &str) -> Vec<castmesh_proto::mesh::v1::DestinationStatus> {
        Vec::new()
    }
}

fn live_stream(queue: usize) -> Arc<LiveStream> {
    let config = WindowConfig {
        target_duration_s: 2,
        part_target_ms: 200,
        segments: 3,
    };
    Arc::new(LiveStream::new(config, 7, queue))
}

fn one_stream(live: Arc<LiveStream>) -> Arc<dyn StreamSource> {
    Arc::new(OneStream {
        live,
        stats: StreamStats::new(std::time::SystemTime::UNIX_EPOCH),
    })
}

#[tokio::test]
async fn only_peers_certified_by_the_cluster_ca_get_in() {
    let ca = certs::new_ca().unwrap();
    let (one, one_metrics) = start(&ca, &certs::new_node(&ca, 1, &[]).unwrap(), 1);
    let (two, _) = start(&ca, &certs::new_node(&ca, 2, &[]).unwrap(), 2);
    let addr = one.local_addr().unwrap();

    // A member of the cluster reaches node 1 and learns who answered.
    assert_eq!(two.ping(addr, 1).await.unwrap(), 1);
    // Asking for the wrong node at that address fails: its certificate names node 1.
    assert!(two.ping(addr, 3).await.is_err());

    // A node whose certificate comes from another CA is refused, both ways.
    let other_ca = certs::new_ca().unwrap();
    let (stranger, _) = start(&other_ca, &certs::new_node(&other_ca, 9, &[]).unwrap(), 9);
    assert!(stranger.ping(addr, 1).await.is_err());
    assert!(one.ping(stranger.local_addr().unwrap(), 9).await.is_err());
    let refused = || metric(&one_metrics, "castmesh_mesh_handshakes_refused_total ");
    // The refusal is counted by the node that refused it.
    for _ in 0..50 {
        if refused() >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused() >= 1.0, "refused handshake counted");

    // The certificates `castmesh cert` writes work the same way.
    let dir = tempfile::tempdir().unwrap();
    certs::init(dir.path()).unwrap();
    certs::issue(dir.path(), 5, &[], certs::NODE_DAYS).unwrap();
    certs::issue(dir.path(), 6, &[], certs::NODE_DAYS).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let file_ca = Pem {
        cert: read("ca.pem"),
        key: read("ca-key.pem"),
    };
    let pem = |id: u64| Pem {
        cert: read(&format!("node-{id}.pem")),
        key: read(&format!("node-{id}-key.pem")),
    };
    let (five, _) = start(&file_ca, &pem(5), 5);
    let (six, _) = start(&file_ca, &pem(6), 6);
    assert_eq!(six.ping(five.local_addr().unwrap(), 5).await.unwrap(), 5);
    for m in [one, two, stranger, five, six] {
        m.shutdown().await;
    }
}

/// A certificate from the cluster CA is not enough: the node must be a member of the
/// cluster, and a node removed from it loses its open connection.
#[tokio::test]
async fn a_certified_node_must_be_a_member() {
    let ca = certs::new_ca().unwrap();
    let two_is_member = Arc::new(AtomicBool::new(true));
    let members: Members = {
        let two_is_member = two_is_member.clone();
        Arc::new(move |id| id == 2 && two_is_member.load(Ordering::SeqCst))
    };
    let (one, metrics) =
        start_with_members(&ca, &certs::new_node(&ca, 1, &[]).unwrap(), 1, members);
    let (two, _) = start(&ca, &certs::new_node(&ca, 2, &[]).unwrap(), 2);
    let (three, _) = start(&ca, &certs::new_node(&ca, 3, &[]).unwrap(), 3);
    let addr = one.local_addr().unwrap();
    assert_eq!(two.ping(addr, 1).await.unwrap(), 1);
    assert!(three.ping(addr, 1).await.is_err(), "never a member");
    // Node 2 is removed from the cluster: its open connection is closed at its next request.
    two_is_member.store(false, Ordering::SeqCst);
    assert!(two.ping(addr, 1).await.is_err(), "removed");
    let refused = "castmesh_mesh_requests_refused_total{reason=\"not_member\"} ";
    assert_eq!(metric(&metrics, refused), 2.0);
    for m in [one, two, three] {
        m.shutdown().await;
    }
}

/// A request announces its length; a peer that announces more than a request can be,
/// or sends part of one and stalls, has its stream reset (within the request timeout,
/// about 2 s) and the connection goes on serving.
#[tokio::test]
async fn a_request_must_arrive_whole_and_in_time() {
    let ca = certs::new_ca().unwrap();
    let (one, metrics) = start(&ca, &certs::new_node(&ca, 1, &[]).unwrap(), 1);
    let (two, _) = start(&ca, &certs::new_node(&ca, 2, &[]).unwrap(), 2);
    let addr = one.local_addr().unwrap();
    let connection = two.connect(addr, 1).await.unwrap();
    let reset_of = |announced: u32, sent: usize| {
        let connection = connection.clone();
        async move {
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            send.write_all(&announced.to_be_bytes()).await.unwrap();
            send.write_all(&vec![0u8; sent]).await.unwrap();
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(10), recv.read(&mut buf)).await;
            match read.expect("the node answered within 10 s") {
                Err(quinn::ReadError::Reset(code)) => code.into_inner(),
                other => panic!("expected a reset, got {other:?}"),
            }
        }
    };
    // 16 MiB announced for a request (at most 64 KiB): refused before any of it is read.
    assert_eq!(reset_of(16 << 20, 0).await, 2);
    assert_eq!(
        metric(
            &metrics,
            "castmesh_mesh_requests_refused_total{reason=\"bad_request\"} "
        ),
        1.0
    );
    // 1,000 bytes announced, 10 sent, then nothing: cut off by the request timeout.
    assert_eq!(reset_of(1000, 10).await, 2);
    assert_eq!(
        metric(
            &metrics,
            "castmesh_mesh_requests_refused_total{reason=\"request_timeout\"} "
        ),
        1.0
    );
    assert_eq!(
        two.ping(addr, 1).await.unwrap(),
        1,
        "the connection still serves"
    );
    for m in [one, two] {
        m.shutdown().await;
    }
}

/// A stream served over the mesh: only a node certified by the cluster CA can
/// subscribe to it.
#[tokio::test]
async fn only_cluster_members_can_subscribe() {
    let live = live_stream(16);
    live.update(|w| {
        w.add_init(bytes::Bytes::from_static(b"init"), Codecs::default());
        w.begin_segment(false, std::time::SystemTime::UNIX_EPOCH);
    });
    let source = one_stream(live);

    let ca = certs::new_ca().unwrap();
    let (origin, _) = start(&ca, &certs::new_node(&ca, 1, &[]).unwrap(), 1);
    origin.serve_streams(Arc::downgrade(&source), Arc::new(SystemClock));
    let addr = origin.local_addr().unwrap();
    let (member, _) = start(&ca, &certs::new_node(&ca, 2, &[]).unwrap(), 2);
    let (replay, _) = member.subscribe(addr, 1, "show", true).await.unwrap();
    assert_eq!(replay.run, 7);
    assert!(matches!(
        member.subscribe(addr, 1, "other", true).await,
        Err(SubscriptionError::Refused(_))
    ));

    // A node that trusts the cluster CA but whose own certificate comes from another
    // CA (same node name): the origin refuses it in the handshake.
    let other_ca = certs::new_ca().unwrap();
    let (stranger, _) = start(&ca, &certs::new_node(&other_ca, 2, &[]).unwrap(), 2);
    assert!(matches!(
        stranger.subscribe(addr, 1, "show", true).await,
        Err(SubscriptionError::Failed(_))
    ));
    for m in [origin, member, stranger] {
        m.shutdown().await;
    }
}

/// One subscriber stops reading: the origin keeps producing, another subscriber gets
/// every change, and the stalled one is cut off (reset as an overflow), not waited for.
#[tokio::test]
async fn a_stalled_subscriber_is_cut_off_without_holding_up_the_others() {
    let ca = certs::new_ca().unwrap();
    let (origin, metrics) = start(&ca, &certs::new_node(&ca, 1, &[]).unwrap(), 1);
    let live = live_stream(16);
    live.update(|w| {
        w.add_init(bytes::Bytes::from_static(b"init"), Codecs::default());
        w.begin_segment(false, std::time::SystemTime::UNIX_EPOCH);
    });
    let source = one_stream(live.clone());
    origin.serve_streams(Arc::downgrade(&source), Arc::new(SystemClock));
    let addr = origin.local_addr().unwrap();
    let (slow_node, _) = start(&ca, &certs::new_node(&ca, 2, &[]).unwrap(), 2);
    let (fast_node, _) = start(&ca, &certs::new_node(&ca, 3, &[]).unwrap(), 3);
    let (_, slow) = slow_node.subscribe(addr, 1, "show", false).await.unwrap();
    let (_, fast) = fast_node.subscribe(addr, 1, "show", false).await.unwrap();
    let (mut changes, _reporter) = fast.run(1024);

    // 200 parts of 64 KiB: far more than QUIC lets the stalled subscriber leave unread.
    const PARTS: u32 = 200;
    let producer = {
        let live = live.clone();
        tokio::spawn(async move {
            for i in 0..PARTS {
                live.update(|w| {
                    w.push_part(
                        Part {
                            duration_ms: 200.0,
                            independent: i == 0,
                            data: bytes::Bytes::from(vec![i as u8; 64 * 1024]),
                        },
                        i64::from(i) * 200,
                    )
                });
                // Paced like a (fast) live stream, so the fast subscriber keeps up.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let mut received = 0;
    while received < PARTS {
        let change = changes.recv().await.expect("open").expect("no error");
        if let WindowEvent::Part { index, part, .. } = change.event {
            assert_eq!(index, received);
            assert_eq!(part.data[0], received as u8);
            received += 1;
        }
    }
    producer.await.unwrap();
    let gauge = |name: &str| metric(&metrics, name);
    let subscriptions = "castmesh_mesh_subscriptions{stream=\"show\"} ";
    assert_eq!(gauge(subscriptions), 2.0);
    // The fast subscriber leaves while the stream is quiet: its subscription ends
    // without waiting for another change.
    drop((changes, _reporter));
    for _ in 0..100 {
        if gauge(subscriptions) == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gauge(subscriptions), 1.0, "the departed subscriber is gone");
    let overflows = || metric(&metrics, "castmesh_mesh_subscriber_overflows_total ");
    // Every change reached the fast subscriber while the slow one still held its
    // subscription: the origin did not wait for it.
    assert_eq!(overflows(), 0.0);
    // The stalled subscriber is then cut off; reading, it learns it fell behind.
    let (mut slow_changes, _slow_reporter) = slow.run(1024);
    let ended = loop {
        match slow_changes.recv().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    assert!(
        matches!(ended, Some(SubscriptionError::Overflow)),
        "{ended:?}"
    );
    assert_eq!(overflows(), 1.0);
    for m in [origin, slow_node, fast_node] {
        m.shutdown().await;
    }
}
