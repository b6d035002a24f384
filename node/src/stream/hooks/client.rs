//! One hook call: a form POST over HTTP/1.1 on a fresh connection, bounded in time
//! as a whole, reading only the answer's status and `Location` (the body is never
//! read). Calls are rare (one per publish and per end), so no connection pool.
//!
//! Hooks reach the backend over the operating system's network, not the node's
//! `Network` seam: the simulation configures none.

use std::time::Duration;

use axum::http::{Request, Uri, header};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use super::notify::Location;

/// Longest `Location` kept (a stream id is far shorter).
const MAX_LOCATION: usize = 1024;

/// What the backend answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Location,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] axum::http::Error),
}

/// POSTs `form` (`application/x-www-form-urlencoded`) to `url`.
pub async fn post_form(url: &Uri, form: String, timeout: Duration) -> Result<Reply, CallError> {
    tokio::time::timeout(timeout, exchange(url, form))
        .await
        .unwrap_or(Err(CallError::Timeout(timeout)))
}

async fn exchange(url: &Uri, form: String) -> Result<Reply, CallError> {
    // The URL was checked when the configuration was read (`config::HookUrl`): http://,
    // a host, a valid port if any, no user info, a path from `/`.
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().unwrap_or(80);
    // An IPv6 literal keeps its brackets in the URL and the Host header, not here.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let socket = tokio::net::TcpStream::connect((address, port))
        .await
        .map_err(CallError::Connect)?;
    let _ = socket.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(socket)).await?;
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::post(path)
        .header(
            header::HOST,
            url.port_u16()
                .map_or_else(|| host.to_string(), |p| format!("{host}:{p}")),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::USER_AGENT,
            concat!("castmesh/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::from(form)))?;
    // The connection is driven only until the answer's head arrives; dropping it
    // then closes the socket, so nothing outlives the call. It may also finish first
    // (the backend answered and closed): the answer is then already there, or an error.
    let answer = sender.send_request(request);
    tokio::pin!(answer, connection);
    let response = tokio::select! {
        response = &mut answer => response?,
        ended = &mut connection => {
            ended?;
            answer.await?
        }
    };
    let location = match response.headers().get(header::LOCATION) {
        None => Location::Absent,
        Some(v) => match v.to_str() {
            Ok(v) if v.len() <= MAX_LOCATION => Location::Value(v.to_string()),
            _ => Location::Unusable,
        },
    };
    Ok(Reply {
        status: response.status().as_u16(),
        location,
    })
}
