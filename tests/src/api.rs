//! The REST API as a client sees it: JSON in, JSON and status out, with a session
//! token as `Authorization: Bearer` or as the browser's cookie.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }

    /// The session cookie the answer set (`name=value`), if any.
    pub fn cookie(&self) -> Option<String> {
        let set = self.headers.get("set-cookie")?.to_str().ok()?;
        Some(set.split(';').next()?.to_string())
    }
}

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client")
    })
}

/// `method url` with optional JSON body and extra headers.
pub fn call(method: Method, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
    let mut request = client().request(method.clone(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        json,
        headers,
    }
}

/// `method url` as the session `token` (none: signed out).
fn call_with(method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    call(method, url, &headers, body)
}

/// `method url` as the session `token`.
pub fn call_as(method: Method, url: &str, token: &str, body: Option<Value>) -> Reply {
    call_with(method, url, Some(token), body)
}

pub fn post(url: &str, token: Option<&str>, body: Value) -> Reply {
    call_with(Method::POST, url, token, Some(body))
}

pub fn get(url: &str, token: Option<&str>) -> Reply {
    call_with(Method::GET, url, token, None)
}

/// Signs `email` up on the node at `base` (sign-up open); its session token.
pub fn sign_up(base: &str, email: &str) -> String {
    let reply = post(
        &format!("{base}/api/v1/auth/signup"),
        None,
        serde_json::json!({ "email": email, "password": "long enough password" }),
    );
    assert_eq!(reply.status, 201, "{}", reply.json);
    reply.json["token"].as_str().unwrap().to_string()
}
