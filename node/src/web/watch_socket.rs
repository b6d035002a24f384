//! `GET /api/v1/streams/{id}/live`: the watch page's WebSocket. One socket carries
//! what the page shows live: the stream's status and viewer count (pushed when they
//! change, checked every [`STATUS_EVERY`]). docs/api.md lists its messages.
//!
//! Bounded like every listener: sockets in total and per address
//! (`chat.max_sockets`, `chat.max_sockets_per_ip`), messages of at most
//! [`MAX_MESSAGE_BYTES`], every write within `http.write_timeout` (the connection's
//! deadline), and a page from another site is refused.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use castmesh_cluster::StreamId;
use serde::Serialize;

use crate::admission::Slot;
use crate::http::api_error::ApiError;
use crate::http::streams::{StatusView, current_status};
use crate::http::{AppState, ClientAddr, origin};
use crate::metrics::ReasonLabel;

/// How often a socket's stream status is looked at (answers are cached by the node
/// for 2 s, so this costs one cluster read per stream, not per socket).
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// A ping keeps proxies from closing a quiet socket and finds dead peers.
const PING_EVERY: Duration = Duration::from_secs(20);
/// The largest message a page sends (a chat post of 500 characters fits).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// What the server sends, as JSON text messages tagged by `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    Status(&'a StatusView),
}

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers send cookies with a socket opened from any site: only this site's
    // pages (and http.allowed_origins) may open one.
    if let Err(refused) = origin::check(&state, &headers) {
        return refused.into_response();
    }
    let Ok(id) = StreamId::parse(&id) else {
        return ApiError::not_found("stream").into_response();
    };
    if let Err(e) = state.catalog.get(&id).await {
        return ApiError::from(e).into_response();
    }
    let slot = match state.watch_sockets.try_acquire(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            closed(&state, refusal.label());
            let status = match refusal {
                crate::admission::Refusal::Total => StatusCode::SERVICE_UNAVAILABLE,
                crate::admission::Refusal::PerAddress => StatusCode::TOO_MANY_REQUESTS,
            };
            return ApiError::new(
                status,
                "rate_limited",
                format!("watch socket refused: {refusal}"),
            )
            .into_response();
        }
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let span = tracing::info_span!("watch_socket", stream = %id, %client);
            tracing::Instrument::instrument(run(socket, state, id, slot), span)
        })
}

fn closed(state: &AppState, reason: &'static str) {
    state
        .ctx
        .metrics
        .watch_sockets_closed
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

async fn run(mut socket: WebSocket, state: AppState, id: StreamId, _slot: Slot) {
    let metrics = state.ctx.metrics.clone();
    metrics.watch_sockets.inc();
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    let mut ping_tick = tokio::time::interval(PING_EVERY);
    ping_tick.reset();
    let mut shown: Option<StatusView> = None;
    let outcome: Result<(), &'static str> = async {
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return Ok(()),
                    // Pings are answered by the socket itself; the page sends nothing
                    // else yet.
                    Some(Ok(_)) => {}
                },
                _ = status_tick.tick() => {
                    // A cluster that cannot answer leaves the last status shown.
                    let Ok(now) = current_status(&state, &id).await else { continue };
                    if shown.as_ref() != Some(&now) {
                        send(&mut socket, &Event::Status(&now)).await?;
                        shown = Some(now);
                    }
                }
                _ = ping_tick.tick() => {
                    socket.send(Message::Ping(Default::default())).await.map_err(|_| "write_timeout")?;
                }
            }
        }
    }
    .await;
    if let Err(reason) = outcome {
        closed(&state, reason);
    }
    metrics.watch_sockets.dec();
}

async fn send(socket: &mut WebSocket, event: &Event<'_>) -> Result<(), &'static str> {
    let text = serde_json::to_string(event).expect("events serialize");
    socket
        .send(Message::Text(Utf8Bytes::from(text)))
        .await
        .map_err(|_| "write_timeout")
}
