//! The web app as its users meet it: real headless Chromium (tests/browser/webapp.mjs,
//! playwright-core) against real castmesh processes, publishing with the real ffmpeg.
//! The screenshots it takes are test artefacts; `make screenshots` writes them to
//! docs/screenshots.

use std::path::PathBuf;

use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::small_sample_flv;
use castmesh_tests::node::Node;
use castmesh_tests::{api, artifacts_dir};

/// Runs one scenario of webapp.mjs against `nodes` and returns its report.
fn scenario(name: &str, nodes: &[&Node], extra: serde_json::Value) -> serde_json::Value {
    let screenshots = std::env::var_os("CASTMESH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| artifacts_dir().join("screenshots"));
    let mut args = serde_json::json!({
        "nodes": nodes.iter().map(|n| serde_json::json!({
            "http": n.url(""),
            "rtmp": n.rtmp_url("").trim_end_matches('/'),
        })).collect::<Vec<_>>(),
        "sample": small_sample_flv(),
        "screenshots": screenshots,
    });
    if let (Some(args), serde_json::Value::Object(extra)) = (args.as_object_mut(), extra) {
        args.extend(extra);
    }
    castmesh_tests::browser::run("webapp.mjs", &[name, &args.to_string()])
}

#[test]
fn a_new_user_streams_from_the_studio_and_viewers_watch_it_live() {
    let node = Node::start("web-one-node", &[]);
    let report = scenario("one-node", &[&node], serde_json::json!({}));
    let id = report["id"].as_str().unwrap();

    // The studio showed the server OBS needs (this node's RTMP address) and the key,
    // masked until asked.
    assert_eq!(report["server"], node.rtmp_url("").trim_end_matches('/'));
    assert_eq!(report["key_masked"], true, "{report}");
    let key = report["key"].as_str().unwrap();
    assert!(key.len() >= 32, "{report}");

    // Before the publisher: the watch page waits and says so.
    let before = &report["before_live"];
    assert_eq!(before["status"], "scheduled", "{report}");
    assert!(
        before["overlay"]
            .as_str()
            .unwrap()
            .contains("Not started yet"),
        "{report}"
    );

    // The directory listed it LIVE by itself (it refreshes every 4 s).
    assert!(
        report["directory_live_ms"].as_u64().unwrap() <= 10_000,
        "{report}"
    );
    let card = report["directory_card"].as_str().unwrap();
    for words in ["LIVE", "Launch day", "Ada", "viewer"] {
        assert!(card.contains(words), "the card lacks {words:?}: {card}");
    }
    assert_eq!(report["directory_href"], format!("/watch/{id}"));

    // The watch page, opened before the stream went live, played it without a
    // reload: ≥ 5 s of media in 7 s, no fatal hls.js error.
    assert!(report["played"].as_f64().unwrap() >= 5.0, "{report}");
    assert_eq!(report["fatal"], serde_json::json!([]), "{report}");
    assert_eq!(report["live_status"], "live", "{report}");
    assert_eq!(report["viewers_text"], "1 viewer", "{report}");
    // The studio's restream dialog: the destination's state and reason, kept current;
    // its key typed into a password field and shown nowhere.
    let row = report["restream_row"].as_str().unwrap();
    assert!(
        row.contains("In-house ingest") && row.contains("private address"),
        "{row}"
    );
    assert_eq!(report["restream_key_shown"], false, "{report}");
    assert_eq!(report["restream_key_field"], "password", "{report}");

    // Stop in the studio: the watch page says it ended.
    let ended = &report["ended"];
    assert_eq!(ended["status"], "ended", "{report}");
    assert_eq!(ended["overlay"], "This stream has ended.", "{report}");
    let api = node.json(&format!("/api/v1/streams/{id}"));
    assert_eq!(api["status"], "ended");
    assert_eq!(api["accepting"], false);

    // The chat of the ended stream: closed, its line still there for a new page.
    let after = &report["after_end"];
    assert_eq!(
        after["note"], "The stream has ended; its chat is closed.",
        "{report}"
    );
    assert_eq!(
        after["lines"],
        serde_json::json!(["Ada: hello from the studio"]),
        "{report}"
    );
    assert_eq!(after["form"], false, "{report}");

    // Errors are words; every page fits a phone's width.
    assert_eq!(report["login_error"], "wrong email or password", "{report}");
    for (path, overflow) in report["phone_overflow"].as_object().unwrap() {
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{path} is {overflow} px wider than a phone: {report}"
        );
    }

    // The key never reached the node's log.
    assert!(!node.log_text().contains(key));
}

/// What the pages' HTML and headers promise, without a browser: text from users is
/// escaped, scripts run only from this node, `next` never leads off the site.
#[test]
fn pages_escape_what_users_wrote_and_lock_scripts_to_the_node() {
    let node = Node::start("web-pages", &[]);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(node.url(path)).send().unwrap();

    let home = get("/");
    assert_eq!(home.status(), 200);
    let csp = home.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));

    // A stream whose title is markup: the watch page shows it as text.
    let signup = api::post(
        &node.url("/api/v1/auth/signup"),
        None,
        serde_json::json!({"email": "mal@example.com", "password": "long enough pw"}),
    );
    let token = signup.json["token"].as_str().unwrap().to_string();
    let created = api::post(
        &node.url("/api/v1/streams"),
        Some(&token),
        serde_json::json!({"title": "<img src=x onerror=alert(1)>"}),
    );
    assert_eq!(created.status, 201, "{}", created.json);
    let created = created.json;
    let page = get(&format!("/watch/{}", created["id"].as_str().unwrap()))
        .text()
        .unwrap();
    assert!(
        page.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{page}"
    );
    assert!(!page.contains("<img src=x"), "{page}");

    let missing = get("/watch/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(missing.status(), 404);
    let text = missing.text().unwrap();
    assert!(!text.contains("<script>alert") && text.contains("No such stream"));

    let studio = get("/studio");
    assert_eq!(studio.status(), 303);
    assert_eq!(studio.headers()["location"], "/login?next=/studio");
    let login = get("/login?next=//evil.example/").text().unwrap();
    assert!(login.contains(r#"data-next="/""#), "{login}");

    let hls = get("/assets/hls.min.js");
    assert_eq!(hls.status(), 200);
    assert_eq!(
        hls.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(get("/assets/licence-of-nothing").status(), 404);
    assert!(
        get("/assets/hls.js-LICENSE.txt")
            .text()
            .unwrap()
            .contains("Apache License")
    );
}

#[test]
fn chat_across_three_nodes_is_one_room_in_one_order_with_moderation() {
    let c = ProcessCluster::start("web-chat", 3, &["--accounts-signup", "open"]);
    let nodes: Vec<&Node> = (1..=3).map(|id| c.node(id)).collect();
    let report = scenario("cluster-chat", &nodes, serde_json::json!({}));
    assert_eq!(report["fatal"], serde_json::json!([]), "{report}");

    // Posted on nodes 1 and 3 at once, to a stream published to node 2: the same six
    // lines in the same order on both pages, each author's in the order written.
    let on1 = &report["lines_node1"];
    assert_eq!(on1, &report["lines_node3"], "{report}");
    let lines: Vec<&str> = on1
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let by = |who: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.starts_with(who))
            .copied()
            .collect()
    };
    assert_eq!(by("Olga:"), ["Olga: o1", "Olga: o2", "Olga: o3"]);
    assert_eq!(by("Vic:"), ["Vic: v1", "Vic: v2", "Vic: v3"]);

    // Deleted by the owner: gone from both pages within a second.
    assert!(report["delete_ms"].as_u64().unwrap() <= 1000, "{report}");

    // Markup posted is shown as text: no element made, no script run.
    assert_eq!(report["markup_images"], 0, "{report}");
    assert_eq!(report["pwned"], false, "{report}");

    // The ban holds on every node, and nothing the banned user sent appears.
    for node in ["node1", "node2", "node3"] {
        assert_eq!(
            report["after_ban"][node], "You are banned from this chat.",
            "{report}"
        );
    }
    let after = report["lines_after_ban"].as_array().unwrap();
    assert!(
        !after
            .iter()
            .any(|l| l.as_str().unwrap().contains("after ban")),
        "{report}"
    );

    // The flood: three lines, then the mute notice.
    assert!(
        report["mute_notice"]
            .as_str()
            .unwrap()
            .starts_with("You are posting too fast"),
        "{report}"
    );
    assert_eq!(
        report["flood_lines"],
        serde_json::json!(["Flo: flood 1", "Flo: flood 2", "Flo: flood 3"]),
        "{report}"
    );
    // Counted where the posts came in.
    let muted: f64 = (1..=3)
        .filter_map(|id| {
            c.node(id)
                .metric("castmesh_chat_posts_total{reason=\"muted\"}")
        })
        .sum();
    assert!(muted >= 1.0, "no muted post counted");
}

#[test]
fn viewer_counts_follow_watch_pages_across_nodes() {
    let c = ProcessCluster::start(
        "web-viewers",
        3,
        &[
            "--accounts-signup",
            "open",
            "--streams-viewer-timeout",
            "5s",
        ],
    );
    let nodes: Vec<&Node> = (1..=3).map(|id| c.node(id)).collect();
    let report = scenario("viewers", &nodes, serde_json::json!({}));
    // Five pages on three nodes (two, two, one) each showed 5, then 1 once four closed.
    assert_eq!(
        report["five"],
        serde_json::json!(vec!["5 viewers"; 5]),
        "{report}"
    );
    assert!(report["five_ms"].as_u64().unwrap() <= 10_000, "{report}");
    assert!(report["one_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["fatal"], serde_json::json!([]), "{report}");
}
