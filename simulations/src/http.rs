//! HTTP/1.1 over simulated TCP (hyper's client connection), one connection per
//! request, like a player or an API client behind a load balancer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::cluster::host_name;

/// The status and body of `GET path` on `node`'s HTTP port, or why there is none
/// within `limit`.
pub async fn get(node: u32, path: &str, limit: Duration) -> Result<(u16, Bytes), String> {
    call(node, "GET", path, None, None, limit).await
}

/// `method path` on `node` with an optional session token (Bearer) and JSON body.
pub async fn call(
    node: u32,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<String>,
    limit: Duration,
) -> Result<(u16, Bytes), String> {
    tokio::time::timeout(limit, fetch(node, method, path, token, json))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

async fn fetch(
    node: u32,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<String>,
) -> Result<(u16, Bytes), String> {
    let host = host_name(node);
    let stream = turmoil::net::TcpStream::connect((host.as_str(), 8080))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host);
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if json.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(json.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    answer
}
