//! A cluster of three real `castmesh` processes (127.K.0.1/.2/.3), administered with
//! the real `castctl`, published to with the real ffmpeg.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::wait_for;

fn roles(status: &serde_json::Value) -> Vec<String> {
    let mut roles: Vec<String> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    roles.sort();
    roles
}

#[test]
fn three_nodes_publish_through_a_follower_and_refuse_wrong_keys() {
    let c = ProcessCluster::start("cluster-publish", 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(15));
    for id in 1..=3 {
        let status = c.castctl(id, &["cluster", "status", "-o", "json"]).json();
        assert_eq!(
            roles(&status),
            ["follower", "follower", "leader"],
            "{status}"
        );
    }
    // Every node registered its addresses and labels.
    wait_for("node records", Duration::from_secs(10), || {
        let status = c.castctl(1, &["cluster", "status", "-o", "json"]).json();
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| {
                m["labels"]["region"] == format!("zone-{}", m["id"])
                    && m["http"].as_str().is_some_and(|h| !h.is_empty())
            })
            .then_some(())
    });
    // The QUIC mesh connects every pair (certificates from `castmesh cert`).
    for id in 1..=3u64 {
        for peer in (1..=3u64).filter(|p| *p != id) {
            let metric = format!("castmesh_mesh_peer_reachable{{node=\"{peer}\"}}");
            wait_for("mesh peers reachable", Duration::from_secs(10), || {
                (c.node(id).metric(&metric) == Some(1.0)).then_some(())
            });
        }
    }
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let created = c
        .castctl(
            follower,
            &[
                "stream", "create", "--id", "launch", "--title", "Launch", "-o", "json",
            ],
        )
        .json();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("live_") && key.len() > 40, "{created}");
    assert_eq!(created["status"], "scheduled");

    // Publish to node 2 with the key: accepted, and live in every node's API.
    let mut publisher = Publisher::start(&c.node(2).rtmp_url(&key));
    c.node(2).wait_for_stream("launch", 1);
    for id in 1..=3 {
        wait_for("stream live in the API", Duration::from_secs(10), || {
            let v = c.node(id).json("/api/v1/streams/launch");
            (v["status"] == "live" && v["origin_node"] == 2).then_some(())
        });
    }
    let shown = c
        .castctl(3, &["stream", "show", "launch", "-o", "json"])
        .json();
    assert_eq!(shown["status"], "live");
    assert_eq!(shown["origin_node"], 2);

    // A wrong key is refused with an RTMP error and the connection closed.
    let wrong = format!("live_{}", "0123456789abcdef".repeat(3));
    let mut refused = Publisher::start(&c.node(1).rtmp_url(&wrong));
    let exit = refused
        .wait_exit(Duration::from_secs(15))
        .expect("ffmpeg gives up on a refused key");
    assert!(!exit.success());
    // Neither key appears in any node's log (the refusal is logged without it).
    let logs = c.logs();
    assert!(logs.contains("unknown stream key"), "the refusal is logged");
    assert!(!logs.contains(&wrong), "a refused key leaked into a log");
    assert!(!logs.contains(&key), "a stream key leaked into a log");
    assert!(
        !logs.contains(&key["live_".len()..]),
        "a stream key leaked into a log"
    );

    // An operator ends the stream: the origin drops the publisher at its next lease
    // renewal and the playlist ends.
    let ended = c
        .castctl(1, &["stream", "end", "launch", "-o", "json"])
        .json();
    assert_eq!(ended["status"], "ended");
    publisher
        .wait_exit(Duration::from_secs(15))
        .expect("the origin drops the publisher of an ended stream");
    wait_for("ENDLIST on the origin", Duration::from_secs(10), || {
        let (_, text) = c.node(2).get_text("/hls/launch/media.m3u8");
        text.contains("#EXT-X-ENDLIST").then_some(())
    });

    // After a key rotation the old key is refused and the new one publishes.
    let rotated = c
        .castctl(3, &["stream", "rotate-key", "launch", "-o", "json"])
        .json();
    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    let mut old = Publisher::start(&c.node(3).rtmp_url(&key));
    assert!(
        !old.wait_exit(Duration::from_secs(15))
            .expect("the old key is refused")
            .success()
    );
    // The stop holds the key (new or old) until the stream is started again.
    let mut held = Publisher::start(&c.node(3).rtmp_url(&new_key));
    assert!(
        !held
            .wait_exit(Duration::from_secs(15))
            .expect("a stopped stream refuses its key")
            .success()
    );
    let started = c
        .castctl(2, &["stream", "start", "launch", "-o", "json"])
        .json();
    assert_eq!(started["accepting"], true);
    let _again = Publisher::start(&c.node(3).rtmp_url(&new_key));
    wait_for("live again on node 3", Duration::from_secs(15), || {
        let v = c.node(1).json("/api/v1/streams/launch");
        (v["status"] == "live" && v["origin_node"] == 3).then_some(())
    });
}

/// Creates a stream; only acknowledged (exit 0) creations are expected to survive.
fn create(c: &ProcessCluster, via: u64, id: String, acknowledged: &mut BTreeSet<String>) {
    let out = c.castctl(via, &["stream", "create", "--id", &id, "-o", "json"]);
    assert_eq!(out.code, 0, "create {id}: {}", out.stderr);
    acknowledged.insert(id);
}

#[test]
fn leader_failover_restart_and_snapshot_catch_up() {
    let mut c = ProcessCluster::start(
        "cluster-failover",
        3,
        &["--cluster-snapshot-threshold", "20"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    let mut acknowledged = BTreeSet::new();
    for i in 0..5 {
        create(&c, leader, format!("before-{i}"), &mut acknowledged);
    }

    // kill -9 the leader: a new one within 2 s, and writes continue.
    let killed_at = Instant::now();
    c.kill(leader);
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let new_leader = wait_for("a new leader", Duration::from_secs(10), || {
        c.leader_seen_by(survivor).filter(|l| *l != leader)
    });
    let elected_after = killed_at.elapsed();
    eprintln!("new leader {new_leader} after {elected_after:?}");
    assert!(
        elected_after < Duration::from_secs(2),
        "new leader after {elected_after:?}"
    );
    for i in 0..5 {
        create(&c, survivor, format!("during-{i}"), &mut acknowledged);
    }
    let updated = c
        .castctl(
            survivor,
            &[
                "stream", "update", "before-0", "--title", "Renamed", "-o", "json",
            ],
        )
        .json();
    assert_eq!(updated["title"], "Renamed");

    // The killed node restarts from its RocksDB directory and catches up.
    c.start_node(leader);
    let list = c.castctl(leader, &["stream", "list", "-o", "json"]).json();
    assert_eq!(list.as_array().unwrap().len(), acknowledged.len());

    // A node kept down while the log moves past a snapshot (threshold 20) catches up
    // by installing the snapshot.
    let leader = c.wait_leader(Duration::from_secs(15));
    let down = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(down);
    for i in 0..60 {
        create(&c, leader, format!("while-down-{i}"), &mut acknowledged);
    }
    const INSTALLED: &str = "installed a snapshot from the leader";
    let installed_before = c.node_log(down).matches(INSTALLED).count();
    c.start_node(down);
    wait_for("snapshot installed", Duration::from_secs(20), || {
        (c.node_log(down).matches(INSTALLED).count() > installed_before).then_some(())
    });

    // Every acknowledged write is on every node: each answers from its own state
    // after catching up to the leader's commit index.
    for id in 1..=3 {
        let list = c.castctl(id, &["stream", "list", "-o", "json"]).json();
        let ids: BTreeSet<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, acknowledged, "node {id}");
    }
}

#[test]
fn a_paused_origin_loses_its_lease_and_stops_acting_as_origin() {
    let c = ProcessCluster::start(
        "cluster-fencing",
        3,
        &["--cluster-lease-ttl", "3s", "--streams-retention", "30s"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    // The origin to pause is a follower, so the cluster keeps its leader.
    let origin = (1..=3).find(|id| *id != leader).unwrap();
    let successor = (1..=3).find(|id| *id != leader && *id != origin).unwrap();
    let key = c
        .castctl(
            leader,
            &["stream", "create", "--id", "fenced", "-o", "json"],
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();

    let mut first = Publisher::start(&c.node(origin).rtmp_url(&key));
    c.node(origin).wait_for_stream("fenced", 1);
    let before = c
        .castctl(leader, &["stream", "show", "fenced", "-o", "json"])
        .json();
    assert_eq!(before["origin_node"], origin);
    let old_epoch = before["origin_epoch"].as_u64().unwrap();

    // Pause the origin; the streamer reconnects to another node, which takes over.
    c.signal(origin, "STOP");
    let _second = Publisher::start(&c.node(successor).rtmp_url(&key));
    c.node(successor).wait_for_stream("fenced", 1);
    let after = c
        .castctl(leader, &["stream", "show", "fenced", "-o", "json"])
        .json();
    assert_eq!(after["origin_node"], successor);
    let new_epoch = after["origin_epoch"].as_u64().unwrap();
    assert!(new_epoch > old_epoch, "{new_epoch} > {old_epoch}");

    // Resumed, the old origin notices at its next renewal: it drops its publisher,
    // leaves the status to the new origin, and keeps serving the stream as an edge of
    // the new origin (its viewers keep playing; no ENDLIST).
    c.signal(origin, "CONT");
    first
        .wait_exit(Duration::from_secs(15))
        .expect("the old origin closes its publisher");
    wait_for(
        "old origin relays the new origin",
        Duration::from_secs(10),
        || {
            let v = c.node(origin).json("/api/v1/streams/fenced");
            (v["media"]["role"] == "edge").then_some(())
        },
    );
    let edge_parts = |node: u64| {
        let (_, text) = c.node(node).get_text("/hls/fenced/media.m3u8");
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        castmesh_tests::hls_check::parse(&text).part_uris()
    };
    wait_for(
        "old origin lists the new origin's parts",
        Duration::from_secs(10),
        || {
            let theirs = edge_parts(successor);
            edge_parts(origin)
                .iter()
                .any(|p| theirs.contains(p))
                .then_some(())
        },
    );
    assert!(
        c.node(origin)
            .log_text()
            .contains("no longer this stream's origin")
    );
    assert!(
        c.node(origin).metric("castmesh_origin_leases_lost_total") >= Some(1.0),
        "lease loss counted"
    );
    std::thread::sleep(Duration::from_secs(2));
    let still = c
        .castctl(leader, &["stream", "show", "fenced", "-o", "json"])
        .json();
    assert_eq!(
        still["status"], "live",
        "the old origin must not end the stream"
    );
    assert_eq!(still["origin_node"], successor);
    let (_, text) = c.node(successor).get_text("/hls/fenced/media.m3u8");
    assert!(!text.contains("#EXT-X-ENDLIST"));
}

#[test]
fn the_api_needs_the_token_and_reflection_lists_the_services() {
    let c = ProcessCluster::start("cluster-auth", 1, &[]);
    c.wait_leader(Duration::from_secs(15));
    let out = c.castctl_with(1, None, &["stream", "list"]);
    assert_eq!(out.code, 5, "UNAUTHENTICATED exit code: {}", out.stderr);
    assert!(
        out.stderr.contains("missing bearer token"),
        "{}",
        out.stderr
    );
    let out = c.castctl_with(1, Some("wrong-token"), &["cluster", "status"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid bearer token"),
        "{}",
        out.stderr
    );
    assert_eq!(c.castctl(1, &["stream", "show", "nope"]).code, 4);
    assert_eq!(
        c.castctl(1, &["stream", "create", "--id", "bad/id"]).code,
        7
    );
    assert_eq!(c.castctl(1, &["stream", "create", "--id", "dup"]).code, 0);
    assert_eq!(c.castctl(1, &["stream", "create", "--id", "dup"]).code, 6);
    let completions = c.castctl_with(1, None, &["completions", "bash"]);
    assert_eq!(completions.code, 0);
    assert!(
        completions.stdout.contains("rotate-key"),
        "bash completions"
    );

    // A real gRPC reflection client (Python grpcio-reflection; grpcurl is not packaged
    // for Debian 12) lists the services.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc/reflect.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(c.grpc(1).to_string())
        .output()
        .expect("python3");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in [
        "castmesh.admin.v1.ClusterAdmin",
        "castmesh.admin.v1.StreamAdmin",
        "castmesh.raft.v1.RaftTransport",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.lines().any(|l| l == service),
            "{service} in {listed}"
        );
    }
}

#[test]
fn castctl_moves_leadership_and_adds_and_removes_nodes() {
    let mut c = ProcessCluster::start("cluster-membership", 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(15));
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let status = c
        .castctl(
            leader,
            &[
                "cluster",
                "transfer-leader",
                &target.to_string(),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(status["leader_id"], target, "{status}");
    assert_eq!(c.wait_leader(Duration::from_secs(10)), target);

    // A fourth node starts empty and joins when added (learner, caught up, then voter).
    c.start_joiner(4);
    let grpc = c.grpc(4).to_string();
    c.castctl(1, &["stream", "create", "--id", "before-join"])
        .ok();
    let status = c
        .castctl(
            1,
            &[
                "cluster", "add-node", "--id", "4", "--grpc", &grpc, "-o", "json",
            ],
        )
        .json();
    let four = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 4)
        .cloned()
        .unwrap_or_default();
    assert_eq!(four["role"], "follower", "{status}");
    let list = c.castctl(4, &["stream", "list", "-o", "json"]).json();
    assert_eq!(list[0]["id"], "before-join", "the new node has the state");

    let status = c
        .castctl(2, &["cluster", "remove-node", "4", "-o", "json"])
        .json();
    assert!(
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != 4),
        "{status}"
    );
    c.kill(4);
    assert_eq!(c.castctl(1, &["cluster", "remove-node", "9"]).code, 6);
    c.castctl(3, &["stream", "create", "--id", "after-remove"])
        .ok();
}

#[test]
fn a_dead_origins_stream_ends_after_lease_and_grace_period() {
    let mut c = ProcessCluster::start(
        "cluster-orphan",
        3,
        &["--cluster-lease-ttl", "2s", "--streams-grace-period", "2s"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    let origin = (1..=3).find(|id| *id != leader).unwrap();
    let key = c
        .castctl(
            leader,
            &["stream", "create", "--id", "orphan", "-o", "json"],
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let _publisher = Publisher::start(&c.node(origin).rtmp_url(&key));
    c.node(origin).wait_for_stream("orphan", 1);
    c.kill(origin);
    let show = || {
        c.castctl(leader, &["stream", "show", "orphan", "-o", "json"])
            .json()
    };
    assert_eq!(show()["status"], "live", "ended only after lease + grace");
    wait_for("the orphaned stream ends", Duration::from_secs(15), || {
        (show()["status"] == "ended").then_some(())
    });
}

#[test]
fn a_publish_refused_after_taking_the_lease_gives_it_back() {
    let c = ProcessCluster::start(
        "cluster-lease-back",
        1,
        &["--streams-max-streams", "1", "--cluster-lease-ttl", "3s"],
    );
    c.wait_leader(Duration::from_secs(15));
    let key = |id: &str| {
        c.castctl(1, &["stream", "create", "--id", id, "-o", "json"])
            .json()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (first, second) = (key("first"), key("second"));
    let _a = Publisher::start(&c.node(1).rtmp_url(&first));
    c.node(1).wait_for_stream("first", 1);
    // The node is full: the second publish passes the key check and takes the lease,
    // then cannot attach. The lease must not stay held (and renewed) by nobody.
    let mut b = Publisher::start(&c.node(1).rtmp_url(&second));
    b.wait_exit(Duration::from_secs(15))
        .expect("the second publish is refused");
    wait_for("the unused lease released", Duration::from_secs(10), || {
        let v = c
            .castctl(1, &["stream", "show", "second", "-o", "json"])
            .json();
        v["origin_node"].is_null().then_some(())
    });
    assert_eq!(c.node(1).metric("castmesh_origin_leases"), Some(1.0));
}
