//! Restreaming (docs/api.md, "Restreaming"), through a real node: destinations are
//! the stream owner's to add, change, start, stop and remove; their keys are
//! write-only; bad input gets an answer in words.

use castmesh_tests::api;
use castmesh_tests::node::Node;
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "live_8842_dest-secret-key";

#[test]
fn destinations_belong_to_the_stream_owner_and_never_show_their_keys() {
    let node = Node::start(
        "restream-api",
        &[
            "--accounts-signup",
            "open",
            "--restream-max-destinations",
            "3",
        ],
    );
    let base = node.url("");
    let ann = api::sign_up(&base, "ann@example.com");
    let bob = api::sign_up(&base, "bob@example.com");
    let made = api::call_as(
        Method::POST,
        &format!("{base}/api/v1/streams"),
        &ann,
        Some(json!({ "id": "ann-show", "title": "Ann's show" })),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    let list_url = format!("{base}/api/v1/streams/ann-show/destinations");
    let dest_url = |id: &Value, tail: &str| format!("{list_url}/{id}{tail}");

    // A preset fills the URL; GoStream's field names work.
    let yt = api::call_as(
        Method::POST,
        &list_url,
        &ann,
        Some(json!({ "name": "YouTube", "platform": "youtube", "streamKey": SECRET })),
    );
    assert_eq!(yt.status, 201, "{}", yt.json);
    assert_eq!(yt.json["server_url"], "rtmp://a.rtmp.youtube.com/live2");
    assert_eq!(
        (yt.json["key_set"].as_bool(), yt.json["wanted"].as_bool()),
        (Some(true), Some(true))
    );
    let custom = api::call_as(
        Method::POST,
        &list_url,
        &ann,
        Some(json!({
            "name": "Backup",
            "platform": "custom",
            "rtmpUrl": "rtmps://backup.example.net:4443/live",
            "streamKey": SECRET,
            "enabled": false,
        })),
    );
    assert_eq!(custom.status, 201, "{}", custom.json);
    assert_eq!(custom.json["wanted"], false);

    // Bad input: a clear 400 naming the problem; nothing added.
    for (body, words) in [
        (
            json!({ "name": "x", "platform": "custom", "server_url": "http://h/app", "stream_key": "k" }),
            "rtmp://",
        ),
        (json!({ "name": "x", "platform": "twitch" }), "stream key"),
        (
            json!({ "name": "", "platform": "twitch", "stream_key": "k" }),
            "name",
        ),
        (
            json!({ "name": "x", "platform": "custom", "server_url": "rtmp://h", "stream_key": "k" }),
            "application path",
        ),
        (
            json!({ "name": "x", "platform": "myspace", "stream_key": "k" }),
            "myspace",
        ),
    ] {
        let r = api::call_as(Method::POST, &list_url, &ann, Some(body.clone()));
        assert_eq!(r.status, 400, "{body}: {}", r.json);
        let message = r.json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(words), "{body}: {message}");
    }
    // The count is bounded by restream.max_destinations.
    let third = json!({ "name": "Twitch", "platform": "twitch", "stream_key": SECRET });
    assert_eq!(
        api::call_as(Method::POST, &list_url, &ann, Some(third.clone())).status,
        201
    );
    let fourth = api::call_as(Method::POST, &list_url, &ann, Some(third));
    assert_eq!(fourth.status, 400, "{}", fourth.json);
    assert!(
        fourth.json.to_string().contains("at most 3"),
        "{}",
        fourth.json
    );

    // Another user neither sees nor changes them; nobody signed out does.
    assert_eq!(api::call_as(Method::GET, &list_url, &bob, None).status, 403);
    let stop = dest_url(&yt.json["id"], "/stop");
    assert_eq!(api::call_as(Method::POST, &stop, &bob, None).status, 403);
    assert_eq!(api::get(&list_url, None).status, 401);

    // Start and stop by hand; change the key; remove.
    let stopped = api::call_as(Method::POST, &stop, &ann, None);
    assert_eq!(
        (stopped.status, stopped.json["wanted"].as_bool()),
        (200, Some(false))
    );
    let started = api::call_as(
        Method::POST,
        &dest_url(&custom.json["id"], "/start"),
        &ann,
        None,
    );
    assert_eq!(
        (started.status, started.json["wanted"].as_bool()),
        (200, Some(true))
    );
    let renamed = api::call_as(
        Method::PATCH,
        &dest_url(&yt.json["id"], ""),
        &ann,
        Some(json!({ "name": "YouTube main", "stream_key": "another-secret-key" })),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.json);
    assert_eq!(renamed.json["name"], "YouTube main");
    let gone = api::call_as(
        Method::DELETE,
        &dest_url(&custom.json["id"], ""),
        &ann,
        None,
    );
    assert_eq!(gone.status, 204);
    let missing = api::call_as(
        Method::POST,
        &dest_url(&custom.json["id"], "/start"),
        &ann,
        None,
    );
    assert_eq!(missing.status, 404, "{}", missing.json);

    let listed = api::call_as(Method::GET, &list_url, &ann, None);
    assert_eq!(listed.status, 200);
    let names: Vec<_> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, [json!("YouTube main"), json!("Twitch")]);

    // No answer and no log line carries a key.
    for text in [
        listed.json.to_string(),
        yt.json.to_string(),
        node.log_text(),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("another-secret-key"),
            "{text}"
        );
    }
    // Deleting the stream deletes its destinations.
    let deleted = api::call_as(
        Method::DELETE,
        &format!("{base}/api/v1/streams/ann-show"),
        &ann,
        None,
    );
    assert_eq!(deleted.status, 204);
    assert_eq!(api::call_as(Method::GET, &list_url, &ann, None).status, 404);
}
