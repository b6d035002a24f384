//! The seeds' backend contract: nginx-rtmp's `on_publish` / `on_publish_done`, played by
//! a small real HTTP server (`castmesh_tests::hook_backend`), against a real three-node
//! cluster with publishers and players that are the real ffmpeg.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use castmesh_tests::api;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::hook_backend::{Call, HookBackend};
use castmesh_tests::wait_for;

/// The backend's rules: names starting `deny` are refused, `renamed-secret` goes live
/// as `public1`, a key the test names `refused-by-backend` is refused although the
/// cluster knows it; everything else is allowed.
fn backend() -> HookBackend {
    HookBackend::start(|call: &Call| {
        if call.path == "/api/streams/on_publish_done" {
            return (200, None);
        }
        match call.get("name").unwrap_or_default() {
            n if n.starts_with("deny") => (403, None),
            "renamed-secret" => (302, Some("public1".into())),
            _ => (200, None),
        }
    })
}

fn listed(c: &ProcessCluster, node: u64, id: &str) -> bool {
    let listing = api::get(&c.node(node).url("/api/v1/streams"), None).json;
    listing["streams"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["id"] == id))
}

fn status(c: &ProcessCluster, node: u64, id: &str) -> String {
    let v = api::get(&c.node(node).url(&format!("/api/v1/streams/{id}")), None).json;
    v["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_backend_decides_who_publishes_and_hears_each_real_end_once() {
    let hooks = backend();
    let on_publish = hooks.url("/api/streams/on_publish");
    let on_done = hooks.url("/api/streams/on_publish_done");
    let mut c = ProcessCluster::start(
        "hooks",
        3,
        &[
            "--hooks-on-publish",
            &on_publish,
            "--hooks-on-publish-done",
            &on_done,
            "--streams-grace-period",
            "4s",
        ],
    );
    c.wait_leader(Duration::from_secs(15));

    // 2xx for a name the cluster does not know: live under that name, listed on every
    // node; the backend got nginx-rtmp's fields and the publisher's query string.
    let mut first = Publisher::start(&c.node(2).rtmp_url("show1?token=abc"));
    c.node(2).wait_for_stream("show1", 1);
    for node in 1..=3 {
        wait_for("show1 live everywhere", Duration::from_secs(10), || {
            (status(&c, node, "show1") == "live" && listed(&c, node, "show1")).then_some(())
        });
    }
    let asked = hooks.calls_of("publish");
    let call = asked
        .iter()
        .find(|c| c.get("name") == Some("show1"))
        .unwrap();
    assert_eq!(call.path, "/api/streams/on_publish");
    assert_eq!(call.content_type, "application/x-www-form-urlencoded");
    for (field, value) in [("app", "live"), ("type", "live"), ("token", "abc")] {
        assert_eq!(call.get(field), Some(value), "{field} in {call:?}");
    }
    assert!(
        call.get("tcurl").unwrap().starts_with("rtmp://"),
        "{call:?}"
    );
    assert!(
        call.get("flashver").is_some_and(|v| !v.is_empty()),
        "{call:?}"
    );
    assert!(call.get("addr").unwrap().starts_with("127."), "{call:?}");
    assert!(
        call.get("clientid").unwrap().parse::<u64>().is_ok(),
        "{call:?}"
    );
    for field in ["swfurl", "pageurl"] {
        assert!(call.get(field).is_some(), "{field} in {call:?}");
    }

    // 403: ffmpeg fails to publish, and nothing is made or listed.
    let mut denied = Publisher::start(&c.node(1).rtmp_url("deny-me"));
    let exit = denied
        .wait_exit(Duration::from_secs(15))
        .expect("a refused publisher is turned away");
    assert!(!exit.success());
    for node in 1..=3 {
        assert!(!listed(&c, node, "deny-me"));
    }
    let missing = api::get(&c.node(1).url("/api/v1/streams/deny-me"), None);
    assert_eq!(missing.status, 404);

    // 3xx with Location: the public id is the backend's name; the key is not in it.
    let mut renamed = Publisher::start(&c.node(1).rtmp_url("renamed-secret"));
    c.node(1).wait_for_stream("public1", 1);
    let played = Reader::start(&c.node(3).playlist_url("public1"), 3, "hooks-test").finish();
    assert!(played.status.success(), "{}", played.stderr);
    assert!(played.seconds >= 2.0, "{}", played.stderr);
    assert!(!listed(&c, 2, "renamed-secret"));
    assert_eq!(
        api::get(&c.node(2).url("/api/v1/streams/renamed-secret"), None).status,
        404
    );

    // A publisher that drops and comes back within the grace period is no end.
    renamed.kill();
    let mut renamed = Publisher::start(&c.node(1).rtmp_url("renamed-secret"));
    wait_for("public1 published again", Duration::from_secs(15), || {
        let asked = hooks.calls_of("publish");
        let again = asked
            .iter()
            .filter(|c| c.get("name") == Some("renamed-secret"));
        (again.count() >= 2).then_some(())
    });

    // A take-over (the same name published to node 3) is no end: no publish_done
    // (for it or for the reconnect above), also after the grace period.
    let second = Publisher::start(&c.node(3).rtmp_url("show1"));
    first
        .wait_exit(Duration::from_secs(15))
        .expect("the first publisher is dropped by the take-over");
    wait_for(
        "show1's origin moves to node 3",
        Duration::from_secs(15),
        || {
            let v = api::get(&c.node(1).url("/api/v1/streams/show1"), None).json;
            (v["origin_node"] == 3).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        hooks.calls_of("publish_done").is_empty(),
        "{:?}",
        hooks.calls()
    );

    // Stopping each publisher for longer than the grace period: one publish_done per
    // stream, from the node it ended on, with what the publisher had sent.
    drop(second);
    renamed.kill();
    let (show1, public1) = wait_for("publish_done of both", Duration::from_secs(20), || {
        Some((hooks.done_for("show1")?, hooks.done_for("public1")?))
    });
    assert_eq!(show1.get("name"), Some("show1"));
    assert_eq!(show1.get("app"), Some("live"));
    assert!(show1.get("id").unwrap().starts_with("show1:"), "{show1:?}");
    assert_eq!(public1.get("name"), Some("renamed-secret"), "{public1:?}");
    assert!(public1.get("id").unwrap().starts_with("public1:"));

    // A stream made through the API: the key check first, then the hook must agree;
    // a stop ends it at once and is reported too.
    let created = c
        .castctl(1, &["stream", "create", "--id", "studio", "-o", "json"])
        .json();
    let key = created["key"].as_str().unwrap().to_string();
    let _studio = Publisher::start(&c.node(2).rtmp_url(&key));
    c.node(2).wait_for_stream("studio", 1);
    assert!(
        hooks
            .calls_of("publish")
            .iter()
            .any(|c| c.get("name") == Some(&key)),
        "the hook is asked about known keys too"
    );
    c.castctl(3, &["stream", "end", "studio"]).ok();
    let studio = wait_for(
        "publish_done for the stopped stream",
        Duration::from_secs(20),
        || hooks.done_for("studio"),
    );
    assert_eq!(studio.get("name"), Some(key.as_str()));

    // The origin dies: the node that ends the stream after its lease and the grace
    // period reports it, with the public id (the publisher's words died with it).
    let _orphan = Publisher::start(&c.node(3).rtmp_url("orphan"));
    c.node(3).wait_for_stream("orphan", 1);
    c.kill(3);
    let orphan = wait_for(
        "publish_done for the orphan",
        Duration::from_secs(40),
        || hooks.done_for("orphan"),
    );
    assert_eq!(orphan.get("name"), Some("orphan"));
    assert!(orphan.get("id").unwrap().starts_with("orphan:"));

    // Each end was reported under one id (a repeat of an id is allowed: at least
    // once), and nothing else was reported, also after a while.
    std::thread::sleep(Duration::from_secs(4));
    let done = hooks.calls_of("publish_done");
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for call in &done {
        let stream = call.get("stream").unwrap_or_default();
        ids.entry(stream)
            .or_default()
            .insert(call.get("id").unwrap_or_default());
    }
    let streams: Vec<&str> = ids.keys().copied().collect();
    assert_eq!(
        streams,
        ["orphan", "public1", "show1", "studio"],
        "{done:?}"
    );
    assert!(ids.values().all(|one| one.len() == 1), "{done:?}");

    // Keys go to the backend, never into castmesh's logs.
    let logs = c.logs();
    for secret in ["renamed-secret", key.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked into a log");
    }
}

#[test]
fn an_unreachable_hook_refuses_unless_fail_open_and_a_known_key_still_needs_the_hook() {
    // A port held but not listening: connections to it are refused, and no other
    // test can take it meanwhile.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    held.bind(&any_port.into()).unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/on_publish");
    for (fail_open, known_publishes) in [("false", false), ("true", true)] {
        let c = ProcessCluster::start(
            &format!("hooks-down-{fail_open}"),
            1,
            &["--hooks-on-publish", &url, "--hooks-fail-open", fail_open],
        );
        c.wait_leader(Duration::from_secs(15));
        let key = c
            .castctl(1, &["stream", "create", "--id", "known", "-o", "json"])
            .json()["key"]
            .as_str()
            .unwrap()
            .to_string();
        // A name the cluster does not know needs the hook: refused either way.
        let mut stranger = Publisher::start(&c.node(1).rtmp_url("unknown-name"));
        assert!(
            !stranger
                .wait_exit(Duration::from_secs(15))
                .unwrap()
                .success()
        );
        let mut owner = Publisher::start(&c.node(1).rtmp_url(&key));
        if known_publishes {
            c.node(1).wait_for_stream("known", 1);
            let log = c.node_log(1);
            assert!(log.contains("the key alone decides"), "{log}");
        } else {
            let exit = owner.wait_exit(Duration::from_secs(15)).expect("refused");
            assert!(!exit.success());
            let log = c.node_log(1);
            assert_eq!(
                log.matches("the publish check is unavailable").count(),
                2,
                "the stranger and the owner were refused for the hook: {log}"
            );
        }
        // The hook was asked about both publishes, the known key's too.
        let metrics = c.node(1).get_text("/metrics").1;
        assert!(
            metrics.contains("hook_calls_total{hook=\"on_publish\",outcome=\"unreachable\"} 2"),
            "{metrics}"
        );
    }
}
