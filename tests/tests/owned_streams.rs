//! Streams owned by accounts, through the REST API of a real three-node cluster: a
//! streamer creates one on node 1, publishes with ffmpeg to node 2, everyone sees it
//! live with its viewers on every node, a stranger may not touch it, and a stop from
//! node 3 ends it at once and holds the key until a start.

use std::time::Duration;

use castmesh_tests::api;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, Reader};
use castmesh_tests::wait_for;
use reqwest::Method;
use serde_json::{Value, json};

fn live_listing(base: &str) -> Value {
    api::get(&format!("{base}/api/v1/streams?status=live"), None).json
}

#[test]
fn a_streamer_creates_publishes_and_stops_a_stream_seen_by_every_node() {
    let c = ProcessCluster::start("owned-streams", 3, &["--accounts-signup", "open"]);
    c.wait_leader(Duration::from_secs(15));
    let base = |id: u64| c.node(id).url("");
    let ann = api::sign_up(&base(1), "ann@example.com");
    let bob = api::sign_up(&base(2), "bob@example.com");
    // A viewer, made by an operator.
    let made = c
        .castctl(
            1,
            &[
                "user",
                "create",
                "--email",
                "vic@example.com",
                "--role",
                "viewer",
                "-o",
                "json",
            ],
        )
        .json();
    let login = api::post(
        &format!("{}/api/v1/auth/login", base(1)),
        None,
        json!({ "email": "vic@example.com", "password": made["password"] }),
    );
    let vic = login.json["token"].as_str().unwrap().to_string();

    // Ann creates a stream: the key is in this answer and nowhere else.
    let created = api::call_as(
        Method::POST,
        &format!("{}/api/v1/streams", base(1)),
        &ann,
        Some(json!({ "id": "launch", "title": "Launch day", "description": "We ship." })),
    );
    assert_eq!(created.status, 201, "{}", created.json);
    let key = created.json["stream_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("live_"), "{}", created.json);
    assert_eq!(created.json["status"], "scheduled");
    assert_eq!(created.json["owner"]["display_name"], "ann");
    let server = created.json["rtmp_server"].as_str().unwrap();
    assert!(
        server.starts_with("rtmp://") && server.ends_with("/live"),
        "{server}"
    );
    assert_eq!(
        created.json["publish_url"],
        format!("{}/{key}", created.json["rtmp_server"].as_str().unwrap())
    );

    // A viewer cannot create; another streamer cannot manage Ann's stream.
    let denied = api::call_as(
        Method::POST,
        &format!("{}/api/v1/streams", base(2)),
        &vic,
        Some(json!({ "title": "mine" })),
    );
    assert_eq!((denied.status, denied.code()), (403, "forbidden"));
    for (method, path) in [
        (Method::POST, "/api/v1/streams/launch/stop"),
        (Method::POST, "/api/v1/streams/launch/rotate-key"),
        (Method::PATCH, "/api/v1/streams/launch"),
        (Method::DELETE, "/api/v1/streams/launch"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({ "title": "taken" }));
        let r = api::call_as(method.clone(), &format!("{}{path}", base(3)), &bob, body);
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{method} {path}");
    }
    let anonymous = api::post(
        &format!("{}/api/v1/streams/launch/stop", base(3)),
        None,
        json!({}),
    );
    assert_eq!(anonymous.status, 401);

    // Published to node 2 with the returned key: live on every node's listing, with
    // the viewers a player on node 3 makes.
    let mut publisher = Publisher::start(&c.node(2).rtmp_url(&key));
    c.node(2).wait_for_stream("launch", 1);
    let _player = Reader::start(&c.node(3).playlist_url("launch"), 30, "owned-streams-test");
    for node in 1..=3 {
        wait_for(
            "live with a viewer on every node",
            Duration::from_secs(20),
            || {
                let listing = live_listing(&base(node));
                let launch = listing["streams"]
                    .as_array()?
                    .iter()
                    .find(|s| s["id"] == "launch")?
                    .clone();
                (launch["status"] == "live" && launch["viewers"].as_u64()? >= 1).then_some(())
            },
        );
    }
    let mine = api::call_as(
        Method::GET,
        &format!("{}/api/v1/streams?owner=me", base(3)),
        &ann,
        None,
    );
    assert_eq!(
        mine.json["streams"].as_array().unwrap().len(),
        1,
        "{}",
        mine.json
    );
    let status = api::get(&format!("{}/api/v1/streams/launch/status", base(1)), None);
    assert_eq!(status.json["status"], "live", "{}", status.json);

    // Ann stops it from node 3: the publisher is dropped, the playlist ends, and
    // ffmpeg reconnecting with the key is refused until she starts it again.
    let stopped = api::call_as(
        Method::POST,
        &format!("{}/api/v1/streams/launch/stop", base(3)),
        &ann,
        None,
    );
    assert_eq!(stopped.status, 200, "{}", stopped.json);
    assert_eq!(stopped.json["status"], "ended");
    assert_eq!(stopped.json["accepting"], false);
    publisher
        .wait_exit(Duration::from_secs(15))
        .expect("the origin drops the publisher of a stopped stream");
    wait_for("ENDLIST on the origin", Duration::from_secs(10), || {
        let (_, text) = c.node(2).get_text("/hls/launch/media.m3u8");
        text.contains("#EXT-X-ENDLIST").then_some(())
    });
    let mut reconnect = Publisher::start(&c.node(1).rtmp_url(&key));
    let exit = reconnect
        .wait_exit(Duration::from_secs(15))
        .expect("a stopped stream's key is refused");
    assert!(!exit.success());
    assert!(
        live_listing(&base(2))["streams"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let started = api::call_as(
        Method::POST,
        &format!("{}/api/v1/streams/launch/start", base(1)),
        &ann,
        None,
    );
    assert_eq!(started.json["accepting"], true, "{}", started.json);
    let _again = Publisher::start(&c.node(1).rtmp_url(&key));
    wait_for("live again", Duration::from_secs(20), || {
        let v = api::get(&format!("{}/api/v1/streams/launch", base(2)), None).json;
        (v["status"] == "live" && v["origin_node"] == 1).then_some(())
    });

    // The key is in no listing, no other answer and no log.
    for node in 1..=3 {
        let all = api::get(&format!("{}/api/v1/streams", base(node)), None);
        assert!(!all.json.to_string().contains(&key));
        let one = api::get(&format!("{}/api/v1/streams/launch", base(node)), None);
        assert!(!one.json.to_string().contains(&key));
    }
    assert!(!c.logs().contains(&key), "a stream key leaked into a log");
}
