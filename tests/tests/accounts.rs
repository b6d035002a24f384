//! Accounts through the REST API of real `castmesh` processes: sign up on one node,
//! use the session on another, sign out anywhere and be refused everywhere; password
//! guessing limited; signup policies; operators' `castctl user`; the `--dev` first
//! administrator. Passwords and tokens never reach a log.

use std::time::{Duration, Instant};

use castmesh_tests::api::{self, Reply};
use castmesh_tests::cluster::ProcessCluster;
use castmesh_tests::node::Node;
use castmesh_tests::wait_for;
use reqwest::Method;
use serde_json::json;

fn signup(base: &str, email: &str, password: &str) -> Reply {
    api::post(
        &format!("{base}/api/v1/auth/signup"),
        None,
        json!({ "email": email, "password": password }),
    )
}

fn login(base: &str, email: &str, password: &str) -> Reply {
    api::post(
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({ "email": email, "password": password }),
    )
}

fn me(base: &str, token: &str) -> Reply {
    api::get(&format!("{base}/api/v1/me"), Some(token))
}

fn token(reply: &Reply) -> String {
    reply.json["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {} {}", reply.status, reply.json))
        .to_string()
}

#[test]
fn a_session_made_on_one_node_works_on_every_node_and_ends_everywhere() {
    let c = ProcessCluster::start("accounts", 3, &["--accounts-signup", "open"]);
    c.wait_leader(Duration::from_secs(15));
    let base = |id: u64| c.node(id).url("");
    let password = "correct horse battery";

    let created = signup(&base(1), "Ann@Example.com", password);
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["user"]["email"], "Ann@Example.com");
    assert_eq!(created.json["user"]["role"], "streamer");
    assert_eq!(created.json["user"]["display_name"], "Ann");
    let cookie = created.cookie().expect("a session cookie");
    let set_cookie = created.headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let session = token(&created);
    assert!(session.starts_with("cms_") && session.len() == 68);

    // The same email in another case is the same account.
    let again = signup(&base(2), "ann@example.COM", password);
    assert_eq!((again.status, again.code()), (409, "email_taken"));

    // Node 3 knows the session within a second (it waits for the commit index).
    let started = Instant::now();
    let seen = me(&base(3), &session);
    assert_eq!(seen.status, 200, "{}", seen.json);
    assert_eq!(seen.json["user"]["email"], "Ann@Example.com");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The cookie works as the Bearer token does.
    let by_cookie = api::call(
        Method::GET,
        &format!("{}/api/v1/me", base(2)),
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.json);

    // A second session from logging in; signing out on node 3 ends the first at once
    // on node 1, and leaves the second.
    let second = login(&base(2), "ann@example.com", password);
    assert_eq!(second.status, 200, "{}", second.json);
    let second = token(&second);
    let out = api::post(
        &format!("{}/api/v1/auth/logout", base(3)),
        Some(&session),
        json!({}),
    );
    assert_eq!(out.status, 204);
    let refused = me(&base(1), &session);
    assert_eq!((refused.status, refused.code()), (401, "unauthenticated"));
    assert_eq!(me(&base(1), &second).status, 200);

    // Changing the password ends every session and hands out a new one.
    let changed = api::post(
        &format!("{}/api/v1/me/password", base(1)),
        Some(&second),
        json!({ "current_password": password, "new_password": "a new long password" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.json);
    let third = token(&changed);
    assert_eq!(me(&base(2), &second).status, 401);
    assert_eq!(me(&base(2), &third).status, 200);
    assert_eq!(login(&base(3), "ann@example.com", password).status, 401);

    // An operator disables the account: its sessions end on every node.
    let users = c.castctl(2, &["user", "list", "-o", "json"]).json();
    let ann = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "Ann@Example.com")
        .unwrap_or_else(|| panic!("{users}"));
    assert_eq!(ann["sessions"], 1, "{ann}");
    let id = ann["id"].to_string();
    c.castctl(3, &["user", "disable", &id]).ok();
    for node in 1..=3 {
        assert_eq!(me(&base(node), &third).status, 401, "node {node}");
    }
    let disabled = login(&base(1), "ann@example.com", "a new long password");
    assert_eq!(
        (disabled.status, disabled.code()),
        (403, "account_disabled")
    );
    c.castctl(1, &["user", "enable", &id]).ok();
    assert_eq!(
        login(&base(1), "ann@example.com", "a new long password").status,
        200
    );

    // Nothing secret reached a log.
    let logs = c.logs();
    for secret in [&session, &second, &third, password, "a new long password"] {
        assert!(!logs.contains(secret), "a log holds {secret}");
    }
}

#[test]
fn guessing_passwords_is_limited_per_address_and_email_and_hashing_is_bounded() {
    let node = Node::start("accounts-guessing", &["--accounts-max-failed-logins", "10"]);
    let base = node.url("");
    assert_eq!(
        signup(&base, "bob@example.com", "bob's password").status,
        201
    );
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(login(&base, "bob@example.com", "wrong password").status);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 10], "{statuses:?}");
    // While limited, even the right password gets 429 (no hash is computed), with
    // the wait in words and in Retry-After.
    let limited = login(&base, "bob@example.com", "bob's password");
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    assert!(limited.headers.contains_key("retry-after"));
    // Unknown emails answer as wrong passwords do: no account enumeration.
    let unknown = login(&base, "nobody@example.com", "whatever1");
    assert_eq!((unknown.status, unknown.code()), (401, "bad_credentials"));
    // Another email from the same address is not limited by bob's failures.
    assert_eq!(signup(&base, "cy@example.com", "cy's password").status, 201);
    assert_eq!(login(&base, "cy@example.com", "cy's password").status, 200);
    // The hashes ran one at a time (accounts.max_concurrent_hashes = 1) and every
    // refusal was counted.
    assert_eq!(
        node.metric("castmesh_account_events_total{reason=\"login_limited\"}"),
        Some(11.0)
    );
    assert!(node.metric("castmesh_password_hash_seconds_count").unwrap() >= 14.0);
}

#[test]
fn signup_policies_closed_and_invite_and_the_dev_first_administrator() {
    let node = Node::start("accounts-invite", &["--accounts-signup", "invite"]);
    let base = node.url("");
    let refused = signup(&base, "dee@example.com", "dee's password");
    assert_eq!((refused.status, refused.code()), (403, "invite_required"));

    // --dev made the first administrator, its password in a 0600 file.
    let file = node.data_dir().unwrap().join("admin-password");
    let text = wait_for("the first administrator", Duration::from_secs(10), || {
        std::fs::read_to_string(&file).ok()
    });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_string()
    };
    let admin = login(&base, &field("email"), &field("password"));
    assert_eq!(admin.status, 200, "{}", admin.json);
    assert_eq!(admin.json["user"]["role"], "admin");
    assert!(
        node.log_text().contains("admin-password"),
        "the log names the file"
    );
    assert!(!node.log_text().contains(&field("password")));

    // An invitation (castctl) signs up one account, with the invitation's role.
    let castctl = |args: &[&str]| {
        let out = std::process::Command::new(castmesh_tests::cluster::castctl_binary())
            .args(["--endpoint", &format!("http://{}", node.grpc)])
            .arg("--token-file")
            .arg(node.data_dir().unwrap().join("admin-token"))
            .args(["-o", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let invite = castctl(&["user", "invite", "--role", "viewer"]);
    let code = invite["code"].as_str().unwrap();
    let with = |code: &str| {
        api::post(
            &format!("{base}/api/v1/auth/signup"),
            None,
            json!({ "email": "dee@example.com", "password": "dee's password", "invite": code }),
        )
    };
    let joined = with(code);
    assert_eq!(joined.status, 201, "{}", joined.json);
    assert_eq!(joined.json["user"]["role"], "viewer");
    let reused = api::post(
        &format!("{base}/api/v1/auth/signup"),
        None,
        json!({ "email": "eve@example.com", "password": "eve's password", "invite": code }),
    );
    assert_eq!((reused.status, reused.code()), (403, "invalid_invite"));

    // An operator makes an account with a generated password, shown once.
    let made = castctl(&[
        "user",
        "create",
        "--email",
        "fay@example.com",
        "--role",
        "streamer",
    ]);
    let generated = made["password"].as_str().unwrap();
    assert_eq!(login(&base, "fay@example.com", generated).status, 200);
    assert!(!node.log_text().contains(generated));

    let closed = Node::start("accounts-closed", &["--accounts-signup", "closed"]);
    let refused = signup(&closed.url(""), "gus@example.com", "gus's password");
    assert_eq!((refused.status, refused.code()), (403, "signup_closed"));
}

#[test]
fn bad_requests_get_clear_errors_and_cross_site_posts_are_refused() {
    let node = Node::start("accounts-errors", &["--http-max-body-bytes", "1024"]);
    let url = node.url("/api/v1/auth/signup");
    let short = signup(&node.url(""), "hal@example.com", "short");
    assert_eq!((short.status, short.code()), (400, "invalid_request"));
    assert!(
        short.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("8 to 128")
    );
    let bad_email = signup(&node.url(""), "not-an-email", "long enough");
    assert_eq!(
        (bad_email.status, bad_email.code()),
        (400, "invalid_request")
    );
    let not_json = api::call(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        None,
    );
    assert_eq!((not_json.status, not_json.code()), (400, "invalid_request"));
    let big = json!({ "email": "x@example.com", "password": "p".repeat(4096) });
    let too_big = api::post(&url, None, big);
    assert_eq!((too_big.status, too_big.code()), (413, "body_too_large"));
    // A page elsewhere cannot sign someone up or in; the node's own origin can.
    let body = Some(json!({ "email": "ida@example.com", "password": "ida's password" }));
    let cross = api::call(
        Method::POST,
        &url,
        &[("origin", "https://evil.example")],
        body.clone(),
    );
    assert_eq!((cross.status, cross.code()), (403, "cross_origin"));
    let own = format!("http://{}", node.http);
    let same = api::call(Method::POST, &url, &[("origin", &own)], body);
    assert_eq!(same.status, 201, "{}", same.json);
    // Tokens that cannot be sessions are refused without a lookup.
    for bad in ["", "cms_", "nonsense", "cms_ZZ"] {
        assert_eq!(me(&node.url(""), bad).status, 401, "{bad:?}");
    }
}

/// Over HTTPS (`http.tls_cert`/`tls_key`) a session cookie is `Secure`, and the page's
/// own origin is `https://`. The client is Python's `http.client` verifying the
/// node's certificate against the test's own CA file: no verification is skipped.
#[test]
fn over_https_sign_up_works_and_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let node = Node::launch_tls("accounts-https", &cert_file, &key_file);
    let port = node.http.port();
    let script = r#"
import http.client, json, ssl, sys, time
port, cafile = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=cafile)
def request(method, path, body=None, headers={}):
    c = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.getheader("set-cookie") or "", r.read()
for _ in range(200):
    try:
        if request("GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.1)
body = json.dumps({"email": "tls@example.com", "password": "long enough password"})
origin = "https://localhost:%d" % port
status, cookie, _ = request("POST", "/api/v1/auth/signup", body,
    {"content-type": "application/json", "origin": origin})
print(status)
print(cookie)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(&cert_file)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("201"),
        "{stdout}\n{stderr}\n{}",
        node.log_text()
    );
    let cookie = lines.next().unwrap_or_default();
    assert!(
        cookie.contains("castmesh_session=cms_") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
}
