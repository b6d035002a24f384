//! Restreaming for real: a castmesh origin pushes one published stream to nginx-rtmp
//! servers (Debian's module, recording what arrives) and to a second castmesh, with
//! no internet: local servers play YouTube and Twitch. What the issue asks: several
//! destinations at once and each stopped alone, a destination restarted mid-stream,
//! a destination refusing the key, an rtmps:// destination, an internal address
//! refused, a republish continuing the push, and the destination key nowhere it
//! should not be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use castmesh_tests::api::{self, Reply};
use castmesh_tests::artifacts_dir;
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::ffmpeg::Publisher;
use castmesh_tests::hls_check;
use castmesh_tests::hook_backend::HookBackend;
use castmesh_tests::nginx::{Nginx, NginxOptions, recording_facts, video_packet_times};
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;
use reqwest::Method;
use serde_json::{Value, json};

/// The origin: accounts open, destinations on this machine allowed (they are all
/// loopback here).
fn origin(name: &str, extra: &[&str]) -> Node {
    let mut args = vec![
        "--accounts-signup",
        "open",
        "--restream-allow-networks",
        "127.0.0.0/8",
    ];
    args.extend(extra);
    Node::start(name, &args)
}

struct Owner {
    base: String,
    token: String,
}

impl Owner {
    fn sign_up(node: &Node) -> Owner {
        let base = node.url("");
        let token = api::sign_up(&base, "streamer@example.com");
        Owner { base, token }
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        api::call_as(method, &format!("{}{path}", self.base), &self.token, body)
    }

    /// A new stream: its publish key.
    fn stream(&self, id: &str) -> String {
        let made = self.call(
            Method::POST,
            "/api/v1/streams",
            Some(json!({ "id": id, "title": id })),
        );
        assert_eq!(made.status, 201, "{}", made.json);
        made.json["stream_key"].as_str().unwrap().to_string()
    }

    /// Adds an enabled destination: its id.
    fn destination(&self, stream: &str, name: &str, url: &str, key: &str) -> u64 {
        let added = self.call(
            Method::POST,
            &format!("/api/v1/streams/{stream}/destinations"),
            Some(json!({ "name": name, "platform": "custom", "server_url": url, "stream_key": key, "enabled": true })),
        );
        assert_eq!(added.status, 201, "{}", added.json);
        added.json["id"].as_u64().unwrap()
    }

    fn destinations(&self, stream: &str) -> Vec<Value> {
        let list = self.call(
            Method::GET,
            &format!("/api/v1/streams/{stream}/destinations"),
            None,
        );
        assert_eq!(list.status, 200, "{}", list.json);
        list.json.as_array().unwrap().clone()
    }

    fn status(&self, stream: &str, dest: u64) -> Value {
        self.destinations(stream)
            .into_iter()
            .find(|d| d["id"] == dest)
            .map(|d| d["status"].clone())
            .unwrap_or(Value::Null)
    }

    fn wait_state(&self, stream: &str, dest: u64, state: &str, within: Duration) -> Value {
        wait_for(&format!("destination {dest} {state}"), within, || {
            let status = self.status(stream, dest);
            (status["state"] == state).then_some(status)
        })
    }

    fn bytes(&self, stream: &str, dest: u64) -> u64 {
        self.status(stream, dest)["bytes_sent"]
            .as_u64()
            .unwrap_or(0)
    }

    fn run(&self, stream: &str, dest: u64, what: &str) {
        let reply = self.call(
            Method::POST,
            &format!("/api/v1/streams/{stream}/destinations/{dest}/{what}"),
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
}

fn publish_url(node: &Node, key: &str) -> String {
    format!("rtmp://{}/live/{key}", node.rtmp)
}

/// The key must not be in the node's log, its metrics, its command line, or any
/// answer of the API.
fn assert_key_hidden(node: &Node, owner: &Owner, stream: &str, key: &str) {
    assert!(
        !node.log_text().contains(key),
        "a destination key in the log"
    );
    let metrics = reqwest::blocking::get(node.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("castmesh_restream_bytes_total{"),
        "{metrics}"
    );
    assert!(!metrics.contains(key), "a destination key in the metrics");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(key));
    let listed = serde_json::to_string(&owner.destinations(stream)).unwrap();
    assert!(
        !listed.contains(key),
        "a destination key in the API: {listed}"
    );
}

#[test]
fn one_stream_pushed_to_nginx_rtmp_and_castmesh_each_destination_on_its_own() {
    let recorder = Nginx::start("restream-recorder", no_options());
    let mut restarted = Nginx::start("restream-restarted", no_options());
    let second = Node::start("restream-second-castmesh", &[]);
    let node = origin("restream-origin", &[]);
    let owner = Owner::sign_up(&node);
    let key = owner.stream("concert");
    let (rec_key, relay_key, restart_key) = ("yt-secret-1111", "relayed", "tw-secret-2222");
    let to_recorder = owner.destination("concert", "YouTube (nginx)", &recorder.url(), rec_key);
    let to_castmesh = owner.destination(
        "concert",
        "castmesh",
        &format!("rtmp://{}/live", second.rtmp),
        relay_key,
    );
    let to_restarted =
        owner.destination("concert", "Twitch (nginx)", &restarted.url(), restart_key);

    let publisher = Publisher::start(&publish_url(&node, &key));
    let published = Instant::now();
    for dest in [to_recorder, to_castmesh, to_restarted] {
        owner.wait_state("concert", dest, "live", Duration::from_secs(15));
    }

    // The second castmesh serves what it receives; a strict decoder plays it.
    let relayed = second.url("/hls/relayed/index.m3u8");
    second.wait_for_stream("relayed", 2);
    let played = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-xerror", "-i", &relayed])
        .args(["-t", "4", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        played.status.success(),
        "the relayed stream does not play: {}",
        String::from_utf8_lossy(&played.stderr)
    );

    // A destination server restarted mid-stream: the destination reconnects by itself;
    // the publisher is not touched.
    let before = owner.status("concert", to_restarted);
    restarted.restart();
    let again = wait_for("a reconnect", Duration::from_secs(20), || {
        let s = owner.status("concert", to_restarted);
        (s["state"] == "live" && s["reconnects"].as_u64() > before["reconnects"].as_u64())
            .then_some(s)
    });
    assert!(again["last_error"].is_string(), "{again}");
    wait_for(
        "a recording after the restart",
        Duration::from_secs(10),
        || (restarted.recordings(restart_key).len() >= 2).then_some(()),
    );
    let rec_status = owner.status("concert", to_recorder);
    assert_eq!(rec_status["reconnects"], 0, "{rec_status}");

    // One stopped, the other two keep receiving.
    owner.run("concert", to_restarted, "stop");
    owner.wait_state("concert", to_restarted, "idle", Duration::from_secs(5));
    let grown = |dest| {
        let first = owner.bytes("concert", dest);
        std::thread::sleep(Duration::from_secs(3));
        owner.bytes("concert", dest) > first
    };
    assert!(grown(to_recorder), "the recorder stopped receiving");
    assert!(grown(to_castmesh), "the second castmesh stopped receiving");
    let stopped_at = owner.bytes("concert", to_restarted);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(owner.bytes("concert", to_restarted), stopped_at);

    assert_key_hidden(&node, &owner, "concert", rec_key);
    assert_key_hidden(&node, &owner, "concert", restart_key);

    drop(publisher);
    let published_s = published.elapsed().as_secs_f64();
    // The recording is finished when the push ends (the stream's grace period).
    std::thread::sleep(Duration::from_secs(2));
    let files = recorder.recordings(rec_key);
    assert_eq!(files.len(), 1, "{files:?}\n{}", recorder.error_log());
    let (seconds, codecs) = recording_facts(&files[0]);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    // From the first keyframe after the destination connected to the publisher's end.
    assert!(
        seconds > published_s - 6.0 && seconds < published_s + 1.0,
        "recorded {seconds:.1} s of a {published_s:.1} s publish"
    );
}

fn no_options() -> NginxOptions {
    NginxOptions {
        on_publish: None,
        tls: None,
        record: true,
    }
}

#[test]
fn a_refused_key_is_an_error_without_a_retry_storm_and_others_carry_on() {
    let backend = HookBackend::start(|_| (403, None));
    let refusing = Nginx::start(
        "restream-refusing",
        NginxOptions {
            on_publish: Some(backend.url("/on_publish")),
            tls: None,
            record: true,
        },
    );
    let good = Nginx::start("restream-good", no_options());
    let node = origin("restream-refused", &[]);
    let owner = Owner::sign_up(&node);
    let key = owner.stream("show");
    let bad = owner.destination("show", "wrong key", &refusing.url(), "wrong-key-3333");
    let fine = owner.destination("show", "right key", &good.url(), "right-key-4444");
    // An internal address without the allow-list entry is refused without a try.
    let internal = owner.destination("show", "internal", "rtmp://10.255.255.1/live", "k");
    let _publisher = Publisher::start(&publish_url(&node, &key));

    let error = owner.wait_state("show", bad, "error", Duration::from_secs(30));
    let reason = error["last_error"].as_str().unwrap();
    assert!(reason.contains("not retrying"), "{reason}");
    assert!(error["last_error_at"].is_string(), "{error}");
    let tries = backend.calls().len();
    assert_eq!(tries, 3, "{:?}", backend.calls());
    owner.wait_state("show", fine, "live", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(backend.calls().len(), tries, "it tried again");
    assert_eq!(owner.status("show", bad)["state"], "error");
    assert!(owner.bytes("show", fine) > 0);

    let refused = owner.wait_state("show", internal, "error", Duration::from_secs(5));
    let why = refused["last_error"].as_str().unwrap();
    assert!(why.contains("private address"), "{why}");

    // A change (the right key) tries again.
    let fixed = owner.call(
        Method::PATCH,
        &format!("/api/v1/streams/show/destinations/{bad}"),
        Some(json!({ "server_url": good.url() })),
    );
    assert_eq!(fixed.status, 200, "{}", fixed.json);
    owner.wait_state("show", bad, "live", Duration::from_secs(10));
}

#[test]
fn a_republish_within_the_grace_period_continues_the_push_on_the_same_connection() {
    let recorder = Nginx::start("restream-republish", no_options());
    let node = origin("restream-republish-origin", &[]);
    let owner = Owner::sign_up(&node);
    let key = owner.stream("talk");
    let dest_key = "yt-secret-5555";
    let dest = owner.destination("talk", "YouTube (nginx)", &recorder.url(), dest_key);

    let first = Publisher::start(&publish_url(&node, &key));
    owner.wait_state("talk", dest, "live", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4));
    drop(first);
    // Well within the 10 s grace period (OBS reconnecting after a network blip).
    std::thread::sleep(Duration::from_secs(2));
    let at_republish = owner.bytes("talk", dest);
    let second = Publisher::start(&publish_url(&node, &key));
    let republished = Instant::now();
    wait_for("the second publish pushed", Duration::from_secs(15), || {
        (owner.bytes("talk", dest) > at_republish + 100_000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    let status = owner.status("talk", dest);
    assert_eq!(status["state"], "live", "{status}");
    assert_eq!(status["reconnects"], 0, "{status}");
    assert!(status["last_error"].is_null(), "{status}");

    // One publish session at the destination, its clock never going back: the
    // second publisher's timestamps (from zero again) continue the first's.
    let files = recorder.recordings(dest_key);
    assert_eq!(files.len(), 1, "{files:?}\n{}", recorder.error_log());
    let dts = video_packet_times(&files[0], "dts_time");
    assert!(dts.len() > 100, "{} video packets", dts.len());
    let back = dts.windows(2).find(|w| w[1] < w[0]);
    assert!(
        back.is_none(),
        "the destination's clock went back: {back:?}"
    );
    let last = dts.last().copied().unwrap_or(0.0);
    let second_s = republished.elapsed().as_secs_f64();
    assert!(
        last > second_s + 2.0,
        "{last:.1} s recorded: the second publish ({second_s:.1} s) did not continue the first"
    );
    drop(second);
}

/// A test CA and a certificate for `localhost` signed by it (openssl).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=castmesh test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn an_rtmps_destination_behind_a_tls_terminator_receives_the_stream() {
    let (ca, cert, key_file) = test_ca(&artifacts_dir().join("restream-tls-ca"));
    let tls = Nginx::start(
        "restream-tls",
        NginxOptions {
            on_publish: None,
            tls: Some((cert, key_file)),
            record: true,
        },
    );
    let node = origin(
        "restream-rtmps",
        &["--restream-ca-file", ca.to_str().unwrap()],
    );
    let owner = Owner::sign_up(&node);
    let key = owner.stream("secure");
    let port = tls.rtmps.unwrap().port();
    let dest = owner.destination(
        "secure",
        "Facebook (rtmps)",
        &format!("rtmps://localhost:{port}/live"),
        "fb-secret-5555",
    );
    let _publisher = Publisher::start(&publish_url(&node, &key));
    owner.wait_state("secure", dest, "live", Duration::from_secs(15));
    let file = wait_for(
        "the TLS destination's recording",
        Duration::from_secs(15),
        || {
            let files = tls.recordings("fb-secret-5555");
            files
                .first()
                .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 200_000))
                .cloned()
        },
    );
    let (_, codecs) = recording_facts(&file);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
}

/// The state of stream `tour`'s first destination, as castctl at node `via` lists it.
fn tour_state(c: &ProcessCluster, via: u64) -> Option<Value> {
    let list = c.castctl(
        via,
        &["stream", "destinations", "list", "tour", "-o", "json"],
    );
    (list.code == 0).then(|| list.json()[0]["status"]["state"].clone())
}

/// Every part listed in a node's media playlist now.
fn listed_parts(c: &ProcessCluster, node: u64, id: &str) -> BTreeSet<String> {
    let (status, text) = c.node(node).get_text(&format!("/hls/{id}/media.m3u8"));
    if status != 200 {
        return BTreeSet::new();
    }
    hls_check::parse(&text)
        .part_uris()
        .into_iter()
        .map(|(_, uri)| uri)
        .collect()
}

#[test]
fn the_new_origin_pushes_the_destination_after_a_failover_and_never_two_at_once() {
    let nginx = Nginx::start("restream-failover", no_options());
    let mut c = ProcessCluster::start(
        "restream-failover",
        3,
        &["--restream-allow-networks", "127.0.0.0/8"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    let followers: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    let (first, second) = (followers[0], followers[1]);
    let created = c
        .castctl(leader, &["stream", "create", "--id", "tour", "-o", "json"])
        .json();
    let key = created["key"].as_str().unwrap().to_string();
    // Through castctl, the key from a file (never on a command line).
    let key_file = artifacts_dir().join("restream-failover.key");
    std::fs::write(&key_file, "tour-dest-6666\n").unwrap();
    let added = c
        .castctl(
            leader,
            &[
                "stream",
                "destinations",
                "add",
                "tour",
                "--name",
                "nginx",
                "--url",
                &nginx.url(),
                "--key-file",
                key_file.to_str().unwrap(),
                "--disabled",
                "-o",
                "json",
            ],
        )
        .json();
    let dest = added["id"].as_u64().unwrap();
    assert_eq!(added["wanted"], false, "{added}");
    let mut publisher = Publisher::start(&c.node(first).rtmp_url(&key));
    c.node(first).wait_for_stream("tour", 1);
    // Started by hand while live (not enabled): still wanted after the failover,
    // which is the same live session.
    let started = c
        .castctl(
            second,
            &[
                "stream",
                "destinations",
                "start",
                "tour",
                &dest.to_string(),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(started["wanted"], true, "{started}");
    wait_for(
        "the destination live (seen from the leader)",
        Duration::from_secs(15),
        || (tour_state(&c, leader) == Some(json!("live"))).then_some(()),
    );
    wait_for(
        "the first origin's recording",
        Duration::from_secs(10),
        || (nginx.recordings("tour-dest-6666").len() == 1).then_some(()),
    );
    let table = c.castctl(leader, &["stream", "destinations", "list", "tour"]);
    assert!(table.stdout.contains("live"), "{}", table.stdout);
    assert!(!table.stdout.contains("tour-dest-6666"), "{}", table.stdout);

    c.kill(first);
    publisher.kill();
    let before = listed_parts(&c, second, "tour");
    let _publisher = Publisher::start(&c.node(second).rtmp_url(&key));
    let first_new_part = wait_for(
        "the new origin's first part",
        Duration::from_secs(30),
        || {
            let now = listed_parts(&c, second, "tour");
            (now.difference(&before).next().is_some()).then(Instant::now)
        },
    );
    let pushed_again = wait_for(
        "the new origin's recording",
        Duration::from_secs(30),
        || {
            let files = nginx.recordings("tour-dest-6666");
            let second_file = files.iter().find(|f| **f != files[0])?;
            (std::fs::metadata(second_file).ok()?.len() > 0).then(Instant::now)
        },
    );
    let after = pushed_again.saturating_duration_since(first_new_part);
    assert!(
        after <= Duration::from_secs(5),
        "the destination got the stream {after:?} after the new origin's first part"
    );
    wait_for(
        "the destination live again",
        Duration::from_secs(10),
        || (tour_state(&c, leader) == Some(json!("live"))).then_some(()),
    );
    // nginx-rtmp refuses a second publisher of one name ("already publishing"): had
    // two nodes pushed at once, one would have been refused and logged.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !nginx.error_log().contains("already publishing"),
        "{}",
        nginx.error_log()
    );
    assert_eq!(nginx.recordings("tour-dest-6666").len(), 2);
    for id in [leader, second] {
        assert!(!c.node(id).log_text().contains("tour-dest-6666"));
    }
}
