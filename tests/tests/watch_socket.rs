//! The watch socket without a browser: its limits and refusals, and the chat carrying
//! on when the stream's origin fails over to another node.

use std::time::Duration;

use castmesh_tests::api;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::{Publisher, small_sample_flv};
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;
use castmesh_tests::watch_socket::WatchSocket;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn is(kind: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |m| m["type"] == kind
}

/// Signs up `email` on `node`; returns the session token.
fn sign_up(node: &Node, email: &str) -> String {
    let reply = api::post(
        &node.url("/api/v1/auth/signup"),
        None,
        json!({"email": email, "password": "a long password"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.json);
    reply.json["token"].as_str().unwrap().to_string()
}

/// A stream owned by `token`'s user; returns its id and key.
fn create_stream(node: &Node, token: &str) -> (String, String) {
    let reply = api::post(
        &node.url("/api/v1/streams"),
        Some(token),
        json!({"title": "socket test"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.json);
    let id = reply.json["id"].as_str().unwrap().to_string();
    (id, reply.json["stream_key"].as_str().unwrap().to_string())
}

#[test]
fn watch_sockets_are_bounded_and_refuse_other_sites() {
    let node = Node::start("watch-socket-limits", &["--chat-max-sockets-per-ip", "2"]);
    let token = sign_up(&node, "owner@example.com");
    let (id, _) = create_stream(&node, &token);

    // Another site's page may not open one (the browser would send the cookie).
    let other_site = WatchSocket::open(node.http, &id, Some(&token), Some("http://evil.example"));
    assert_eq!(other_site.err(), Some(Ok(403)));
    assert_eq!(
        WatchSocket::open(node.http, "no-such-stream", None, None).err(),
        Some(Ok(404))
    );

    // The page's own origin may; the first messages say who it is and what it shows.
    let own = format!("http://{}", node.http);
    let mut first = WatchSocket::open(node.http, &id, Some(&token), Some(&own)).unwrap();
    let hello = first.until(WAIT, is("hello")).expect("hello");
    assert_eq!(hello["moderator"], true, "the owner moderates: {hello}");
    assert_eq!(hello["max_chars"], 500);
    let status = first.until(WAIT, is("status")).expect("status");
    assert_eq!(status["status"], "scheduled");
    let chat = first.until(WAIT, is("chat")).expect("chat state");
    assert_eq!(chat["state"], "not_started");
    // Not live yet: posting is refused in words.
    first.send(json!({"type": "post", "text": "too early"}));
    let refused = first.until(WAIT, is("refused")).expect("refused");
    assert_eq!(refused["code"], "not_started", "{refused}");
    first.send(json!({"type": "shout", "text": "?"}));
    let refused = first.until(WAIT, is("refused")).expect("refused");
    assert_eq!(refused["code"], "invalid_request", "{refused}");

    // Two sockets per address, then 429.
    let mut second = WatchSocket::open(node.http, &id, None, None).unwrap();
    let anonymous = second.until(WAIT, is("hello")).unwrap();
    assert_eq!(anonymous["user"], serde_json::Value::Null);
    assert_eq!(
        WatchSocket::open(node.http, &id, None, None).err(),
        Some(Ok(429))
    );

    // A page sending more than 10 messages a second is cut off.
    for _ in 0..15 {
        second.send(json!({"type": "post", "text": "flood"}));
    }
    assert!(
        second.closed_within(WAIT),
        "the flooding socket was not closed"
    );
    assert_eq!(
        node.metric("castmesh_watch_sockets_closed_total{reason=\"flood\"}"),
        Some(1.0)
    );
    // Its slot is free again.
    wait_for("a free socket slot", WAIT, || {
        WatchSocket::open(node.http, &id, None, None).ok()
    });

    // The stream deleted: the open socket is told and closed (its page stops
    // reconnecting), and a new one is refused.
    let deleted = api::call(
        reqwest::Method::DELETE,
        &node.url(&format!("/api/v1/streams/{id}")),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(deleted.status, 204);
    first.until(WAIT, is("gone")).expect("gone");
    assert!(first.closed_within(WAIT));
    assert_eq!(
        WatchSocket::open(node.http, &id, None, None).err(),
        Some(Ok(404))
    );
}

#[test]
fn chat_carries_on_when_the_origin_fails_over() {
    let mut c = ProcessCluster::start(
        "watch-socket-failover",
        3,
        &["--accounts-signup", "open", "--cluster-lease-ttl", "2s"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    // The origin is a node that is not the leader, so killing it leaves a quorum
    // that knows at once.
    let origin = (1..=3).find(|id| *id != leader).unwrap();
    let successor = (1..=3).find(|id| *id != leader && *id != origin).unwrap();
    let token = sign_up(c.node(leader), "host@example.com");
    let (id, key) = create_stream(c.node(leader), &token);
    let mut publisher = Publisher::start_file(&c.node(origin).rtmp_url(&key), &small_sample_flv());
    c.node(origin).wait_for_stream(&id, 1);

    // A socket on the leader's node (not the origin) follows the origin's room.
    let mut socket = WatchSocket::open(c.node(leader).http, &id, Some(&token), None).unwrap();
    socket
        .until(WAIT, |m| m["type"] == "chat" && m["state"] == "open")
        .expect("chat open");
    socket.send(json!({"type": "post", "text": "before"}));
    let line = socket
        .until(WAIT, |m| shown(m, "before").is_some())
        .and_then(|m| shown(&m, "before"))
        .unwrap_or_else(|| panic!("no line before the failover: {:?}", socket.seen()));
    let first_room = socket_room(&id, c.node(leader));

    // The origin dies; the encoder reconnects to another node within the grace period.
    c.kill(origin);
    publisher.kill();
    let _publisher = Publisher::start_file(&c.node(successor).rtmp_url(&key), &small_sample_flv());
    c.node(successor).wait_for_stream(&id, 1);

    // The same socket posts again until the new origin takes it (while the lease moves
    // the post is refused as unavailable, and the page says so).
    let after = wait_for(
        "a line through the new origin",
        Duration::from_secs(30),
        || {
            socket.send(json!({"type": "post", "text": "after"}));
            socket
                .until(Duration::from_secs(1), |m| shown(m, "after").is_some())
                .and_then(|m| shown(&m, "after"))
        },
    );
    assert_eq!(after["user_id"], line["user_id"]);
    // A new room (the history restarted on the new origin, as documented).
    let second_room = socket_room(&id, c.node(leader));
    assert_ne!(first_room, second_room);
    // A viewer on the new origin sees the same line.
    let mut there = WatchSocket::open(c.node(successor).http, &id, None, None).unwrap();
    let history = there
        .until(WAIT, |m| m["type"] == "history" && m["room"] == second_room)
        .expect("history on the new origin");
    let texts: Vec<&str> = history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"after"), "{history}");
}

/// The line with `text` if `message` shows it: as a new line, or in a history (a
/// socket that joins while its node's mirror starts gets the line in the mirror's
/// first history).
fn shown(message: &serde_json::Value, text: &str) -> Option<serde_json::Value> {
    match message["type"].as_str()? {
        "line" => (message["text"] == text).then(|| message.clone()),
        "history" => message["lines"]
            .as_array()?
            .iter()
            .find(|l| l["text"] == text)
            .cloned(),
        _ => None,
    }
}

/// The room the stream's chat is in now, as a fresh socket's history names it.
fn socket_room(id: &str, node: &Node) -> u64 {
    let mut fresh = WatchSocket::open(node.http, id, None, None).unwrap();
    fresh.until(WAIT, is("history")).expect("history")["room"]
        .as_u64()
        .unwrap()
}
