//! The media mesh with three real `castmesh` processes on 127.0.0.1/.2/.3 (default
//! ports, as `configs/cluster-3`): a stream published to one node plays from every
//! node, byte for byte the same. Published with the real ffmpeg, read with the real
//! ffmpeg and with HTTP clients.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::hls_check;
use castmesh_tests::wait_for;

fn create(c: &ProcessCluster, id: &str) -> String {
    let created = c
        .castctl(1, &["stream", "create", "--id", id, "-o", "json"])
        .json();
    created["key"].as_str().unwrap().to_string()
}

/// Every part listed in a node's media playlist now: (msn, index) → URI.
fn listed_parts(c: &ProcessCluster, node: u64, id: &str) -> BTreeMap<(u64, usize), String> {
    let (status, text) = c.node(node).get_text(&format!("/hls/{id}/media.m3u8"));
    if status != 200 {
        return BTreeMap::new();
    }
    hls_check::parse(&text).part_uris().into_iter().collect()
}

#[test]
fn every_node_serves_a_stream_published_to_one_with_the_same_bytes() {
    let c = ProcessCluster::start_standard("mesh-edges", 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    let key = create(&c, "show");
    let _publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("show", 1);

    // Two viewers on the edges, ffmpeg failing on any error, for 20 s.
    let readers: Vec<Reader> = [2, 3]
        .iter()
        .map(|n| Reader::start(&c.node(*n).playlist_url("show"), 20, &format!("edge-{n}")))
        .collect();

    // Meanwhile: every part listed by both node 1 and node 3 has the same bytes.
    let mut compared = 0;
    let mut checked = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(18);
    while Instant::now() < until {
        let origin = listed_parts(&c, 1, "show");
        let edge = listed_parts(&c, 3, "show");
        for (name, uri) in &edge {
            if checked.contains(name) {
                continue;
            }
            let Some(origin_uri) = origin.get(name) else {
                continue;
            };
            assert_eq!(uri, origin_uri, "part {name:?} named differently");
            let path = format!("/hls/show/{uri}");
            let (s1, b1) = c.node(1).get(&path).unwrap();
            let (s3, b3) = c.node(3).get(&path).unwrap();
            assert_eq!((s1, s3), (200, 200), "{path}");
            assert!(b1 == b3, "part {path} differs between node 1 and node 3");
            checked.insert(*name);
            compared += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(compared >= 30, "only {compared} parts compared");
    for (n, reader) in [2, 3].iter().zip(readers) {
        let result = reader.finish();
        assert!(
            result.status.success(),
            "reader on node {n}: {}",
            result.stderr
        );
        assert!(result.seconds >= 19.0, "node {n} read {} s", result.seconds);
    }
    assert_eq!(
        c.node(1).json("/api/v1/streams/show")["media"]["role"],
        "origin"
    );
    assert_eq!(
        c.node(3).json("/api/v1/streams/show")["media"]["role"],
        "edge"
    );
    // Each edge holds one subscription to the origin.
    assert_eq!(
        c.node(1)
            .metric("castmesh_mesh_subscriptions{stream=\"show\"}"),
        Some(2.0)
    );
    let lag = c
        .node(3)
        .metric("castmesh_mesh_forward_lag_seconds_count")
        .unwrap_or(0.0);
    assert!(lag > 50.0, "forward lag observed for {lag} parts");

    // 50 concurrent viewers of another stream on node 3: one subscription on node 1.
    let key = create(&c, "crowd");
    let _crowd_publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("crowd", 1);
    let edge = c.node(3).url("/hls/crowd/media.m3u8");
    let viewers: Vec<_> = (0..50)
        .map(|_| {
            let url = edge.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                let until = Instant::now() + Duration::from_secs(8);
                let mut ok = 0;
                while Instant::now() < until {
                    let response = client.get(&url).send().unwrap();
                    assert_eq!(response.status(), 200);
                    let playlist = hls_check::parse(&response.text().unwrap());
                    if let Some(((msn, part), _)) = playlist.part_uris().last() {
                        // A blocking reload for the next part, as LL-HLS players do.
                        let next = client
                            .get(format!("{url}?_HLS_msn={msn}&_HLS_part={}", part + 1))
                            .send()
                            .unwrap();
                        assert!(next.status().is_success(), "{}", next.status());
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let served: usize = viewers.into_iter().map(|v| v.join().unwrap()).sum();
    assert!(served > 100, "{served} blocking reloads served");
    assert_eq!(
        c.node(1)
            .metric("castmesh_mesh_subscriptions{stream=\"crowd\"}"),
        Some(1.0),
        "one subscription for 50 viewers"
    );
    let upstream = c.node(3).metric("castmesh_mesh_upstream_subscriptions ");
    assert_eq!(upstream, Some(2.0), "node 3 relays show and crowd");

    // Viewer counts: 5 viewers on node 2 and 3 on node 3 are 8 on every node.
    let key = create(&c, "audience");
    let _audience_publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("audience", 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewers: Vec<_> = [(2, 5), (3, 3)]
        .into_iter()
        .flat_map(|(node, n)| (0..n).map(move |i| (node, i)))
        .map(|(node, i)| {
            let url = c.node(node).url("/hls/audience/media.m3u8");
            let stop = stop.clone();
            std::thread::spawn(move || {
                // No cookie store: each viewer is its address and User-Agent.
                let client = reqwest::blocking::Client::builder()
                    .user_agent(format!("viewer-{node}-{i}"))
                    .build()
                    .unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.get(&url).send();
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        })
        .collect();
    let started = Instant::now();
    for node in 1..=3 {
        wait_for(
            "8 viewers seen from every node",
            Duration::from_secs(5),
            || {
                let v = c.node(node).json("/api/v1/streams/audience");
                let counts = &v["cluster_viewers"];
                // The test's own check that the stream started counts on node 1.
                let on_origin = counts["by_node"]["1"].as_u64().unwrap_or(0);
                (counts["by_node"]["2"] == 5
                    && counts["by_node"]["3"] == 3
                    && counts["total"] == 8 + on_origin)
                    .then_some(())
            },
        );
    }
    eprintln!(
        "cluster viewer count right everywhere after {:?}",
        started.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for v in viewers {
        v.join().unwrap();
    }
}

#[test]
fn an_unknown_stream_is_a_404_on_every_node() {
    let c = ProcessCluster::start_standard("mesh-unknown", 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    for n in 1..=3 {
        let (status, _) = c.node(n).get_text("/hls/nothing/media.m3u8");
        assert_eq!(status, 404);
    }
    wait_for("no relay started", Duration::from_secs(1), || {
        (c.node(2).metric("castmesh_mesh_upstream_subscriptions ") == Some(0.0)).then_some(())
    });
}

/// What a viewer polling one edge saw across an origin failover.
#[derive(Default)]
struct EdgeWatch {
    violations: Vec<String>,
    /// Segments (by media sequence number) that carried a discontinuity tag.
    discontinuities: std::collections::BTreeSet<u64>,
    /// Listed parts fetched, and those that were not there (status ≠ 200).
    fetched: usize,
    missing: Vec<String>,
    fetched_names: std::collections::BTreeSet<String>,
    ended: bool,
    checker: hls_check::Checker,
}

impl EdgeWatch {
    /// Polls node 3's playlist of stream `relay` for `d`.
    fn poll_for(&mut self, c: &ProcessCluster, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.poll(c, 3, "relay");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Polls the playlist once; fetches every part listed for the first time.
    fn poll(&mut self, c: &ProcessCluster, node: u64, id: &str) {
        let (status, text) = c.node(node).get_text(&format!("/hls/{id}/media.m3u8"));
        if status != 200 {
            self.violations.push(format!("playlist answered {status}"));
            return;
        }
        let (playlist, violations) = self.checker.check(&text);
        if !violations.is_empty() && self.violations.is_empty() {
            eprintln!("the first playlist with a violation:\n{text}");
        }
        self.violations.extend(violations);
        self.ended |= playlist.ended;
        for s in &playlist.segments {
            if s.discontinuity {
                self.discontinuities.insert(s.msn);
            }
        }
        if playlist.open_discontinuity {
            self.discontinuities.insert(playlist.open_msn());
        }
        for (_, uri) in playlist.part_uris() {
            if !self.fetched_names.insert(uri.clone()) {
                continue;
            }
            let (status, _) = c.node(node).get(&format!("/hls/{id}/{uri}")).unwrap();
            self.fetched += 1;
            if status != 200 {
                self.missing.push(format!("{uri}: {status}"));
            }
        }
    }
}

#[test]
fn viewers_of_an_edge_keep_playing_when_the_origin_dies_and_the_publisher_moves() {
    let c = ProcessCluster::start_standard("mesh-failover", 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    let key = create(&c, "relay");
    let mut first = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("relay", 2);
    let reader = Reader::start(&c.node(3).playlist_url("relay"), 40, "failover-viewer");
    let mut watch = EdgeWatch::default();
    watch.poll_for(&c, Duration::from_secs(8));
    let before = watch.discontinuities.clone();
    assert!(watch.fetched > 20, "edge lists parts before the failover");

    // The origin dies; the streamer reconnects to node 2 within the grace period.
    let mut c = c;
    c.kill(1);
    first.kill();
    // A viewer asks node 2 before the publisher gets there: node 2 starts relaying
    // from the dead origin (and gets nothing), then becomes the origin with an empty
    // window. It must still continue the stream from node 3's copy.
    let early = {
        let url = c.node(2).url("/hls/relay/media.m3u8");
        std::thread::spawn(move || reqwest::blocking::get(url).map(|r| r.status()))
    };
    std::thread::sleep(Duration::from_millis(300));
    let _second = Publisher::start(&c.node(2).rtmp_url(&key));
    watch.poll_for(&c, Duration::from_secs(20));

    let _ = early.join();
    assert!(
        c.node(2)
            .log_text()
            .contains("publisher arrived: the edge becomes the origin"),
        "node 2 was an edge when the publisher arrived"
    );
    let result = reader.finish();
    assert!(
        result.status.success(),
        "the edge's viewer failed: {}",
        result.stderr
    );
    assert!(result.seconds >= 39.0, "read {} s", result.seconds);
    let first = |v: &[String]| v[..v.len().min(3)].to_vec();
    assert!(
        watch.violations.is_empty(),
        "{} violations, first: {:?}",
        watch.violations.len(),
        first(&watch.violations)
    );
    assert!(
        watch.missing.is_empty(),
        "{} listed parts missing, first: {:?}",
        watch.missing.len(),
        first(&watch.missing)
    );
    assert!(!watch.ended, "the edge's playlist ended");
    let added: Vec<u64> = watch.discontinuities.difference(&before).copied().collect();
    assert_eq!(
        added.len(),
        1,
        "discontinuities added by the failover: {added:?}"
    );
    // Node 2 could not hear from the dead origin how far it got: it started a new run
    // numbered past node 3's copy, which node 3 took in whole (its viewers jumped
    // forward once). Both serve the new run under the same names.
    let v = c.node(3).json("/api/v1/streams/relay");
    assert_eq!(v["origin_node"], 2, "{v}");
    let edge = listed_parts(&c, 3, "relay");
    let origin = listed_parts(&c, 2, "relay");
    let common: Vec<_> = edge.keys().filter(|k| origin.contains_key(k)).collect();
    assert!(!common.is_empty(), "node 2 and node 3 list the same parts");
    for k in common {
        assert_eq!(edge[k], origin[k]);
    }
}

/// A stream ended on node 1 (publisher gone past its grace period) and then published
/// on node 2: node 1 follows it as an edge instead of serving its ended playlist.
#[test]
fn a_node_where_a_stream_ended_follows_it_when_it_is_published_elsewhere() {
    let c = ProcessCluster::start("mesh-republished", 3, &["--streams-grace-period", "1s"]);
    c.wait_leader(Duration::from_secs(15));
    let key = create(&c, "again");
    let mut first = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("again", 1);
    first.kill();
    wait_for("ENDLIST on node 1", Duration::from_secs(15), || {
        let (_, text) = c.node(1).get_text("/hls/again/media.m3u8");
        text.contains("#EXT-X-ENDLIST").then_some(())
    });
    let _second = Publisher::start(&c.node(2).rtmp_url(&key));
    c.node(2).wait_for_stream("again", 1);
    wait_for("node 1 relays node 2", Duration::from_secs(15), || {
        let (_, text) = c.node(1).get_text("/hls/again/media.m3u8");
        let v = c.node(1).json("/api/v1/streams/again");
        (v["media"]["role"] == "edge" && !text.contains("#EXT-X-ENDLIST")).then_some(())
    });
    // The same names on both: node 2 continued node 1's run.
    let on_1 = listed_parts(&c, 1, "again");
    let on_2 = listed_parts(&c, 2, "again");
    assert!(
        on_1.iter().any(|(k, v)| on_2.get(k) == Some(v)),
        "{on_1:?} / {on_2:?}"
    );
}

/// A member of the cluster whose mesh certificate does not come from the cluster CA
/// (it trusts the CA, so only its own certificate is wrong) cannot subscribe: it cannot
/// serve a stream published elsewhere, while a properly certified node can.
#[test]
fn a_node_without_a_cluster_certificate_cannot_subscribe() {
    let mut c = ProcessCluster::start("mesh-stranger", 3, &[]);
    c.wait_leader(Duration::from_secs(15));
    c.start_joiner_with_foreign_certificate(4);
    let grpc = c.grpc(4).to_string();
    c.castctl(1, &["cluster", "add-node", "--id", "4", "--grpc", &grpc])
        .ok();
    let key = create(&c, "guarded");
    let _publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("guarded", 1);
    // Node 4 knows the stream and its origin (Raft), but the origin refuses its
    // certificate: it has no media to serve.
    let v = c.node(4).json("/api/v1/streams/guarded");
    assert_eq!(v["origin_node"], 1, "{v}");
    let (status, _) = c.node(4).get_text("/hls/guarded/media.m3u8");
    assert_eq!(status, 503, "node 4 served the stream");
    assert!(
        c.node(1).metric("castmesh_mesh_handshakes_refused_total") >= Some(1.0),
        "the origin refused the handshake"
    );
    assert!(
        c.node(1)
            .metric("castmesh_mesh_subscriptions{stream=\"guarded\"}")
            .unwrap_or(0.0)
            == 0.0
    );
    // A node with a certificate from the cluster CA is served.
    let (status, _) = c.node(3).get_text("/hls/guarded/media.m3u8");
    assert_eq!(status, 200);
}

/// A member's certificate is not a lease. Node 2's certificate, used by the test,
/// asks the origin to hand the stream over under epochs the cluster never granted
/// (u64::MAX used to fence a stream until restart): each is refused because the
/// replicated lease does not confirm it, and the origin keeps producing and publishing.
#[test]
fn a_take_over_the_replicated_lease_does_not_confirm_is_refused() {
    use castmesh_node::mesh::certs::Pem;
    use castmesh_node::mesh::subscription::SubscriptionError;

    let c = ProcessCluster::start("mesh-forged-takeover", 2, &[]);
    c.wait_leader(Duration::from_secs(15));
    let key = create(&c, "forged");
    let _publisher = Publisher::start(&c.node(1).rtmp_url(&key));
    c.node(1).wait_for_stream("forged", 1);
    let epoch = c.node(1).json("/api/v1/streams/forged")["origin_epoch"]
        .as_u64()
        .expect("an origin epoch");

    let certs = c.certs_dir();
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    let node_2 = Pem {
        cert: read("node-2.pem"),
        key: read("node-2-key.pem"),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answers = runtime.block_on(async {
        let socket = std::net::UdpSocket::bind((c.mesh_addr(2).ip(), 0)).unwrap();
        let socket = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket).unwrap();
        let metrics = std::sync::Arc::new(castmesh_node::metrics::Metrics::new());
        let mesh =
            castmesh_node::mesh::Mesh::start(socket, 2, &read("ca.pem"), &node_2, metrics, [2; 32])
                .unwrap();
        let mut answers = Vec::new();
        for forged in [u64::MAX, epoch + 1] {
            answers.push(mesh.take_over(c.mesh_addr(1), 1, "forged", forged).await);
        }
        mesh.shutdown().await;
        answers
    });
    for answer in answers {
        assert!(
            matches!(&answer, Err(SubscriptionError::Refused(reason)) if reason.contains("does not confirm")),
            "{:?}",
            answer.map(|r| r.handed_over)
        );
    }
    assert_eq!(
        c.node(1)
            .metric("castmesh_mesh_requests_refused_total{reason=\"takeover_unconfirmed\"}"),
        Some(2.0)
    );
    // Nothing was fenced or stopped: node 1 is still the origin of the same epoch and
    // keeps adding parts.
    let before = listed_parts(&c, 1, "forged").into_keys().last();
    wait_for("new parts on the origin", Duration::from_secs(10), || {
        (listed_parts(&c, 1, "forged").into_keys().last() > before).then_some(())
    });
    let v = c.node(1).json("/api/v1/streams/forged");
    assert_eq!(
        (v["origin_node"].as_u64(), v["origin_epoch"].as_u64()),
        (Some(1), Some(epoch)),
        "{v}"
    );
}
