//! A viewer's HTTP/1.1 GET over simulated TCP (hyper's client connection), one
//! connection per request, like a player behind a load balancer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::cluster::host_name;

/// The status and body of `GET path` on `node`'s HTTP port, or why there is none
/// within `limit`.
pub async fn get(node: u32, path: &str, limit: Duration) -> Result<(u16, Bytes), String> {
    tokio::time::timeout(limit, fetch(node, path))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

async fn fetch(node: u32, path: &str) -> Result<(u16, Bytes), String> {
    let host = host_name(node);
    let stream = turmoil::net::TcpStream::connect((host.as_str(), 8080))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
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
