//! `GET /hls/{stream}/index.m3u8` (multivariant), `media.m3u8` (LL-HLS media
//! playlist) and the init/segment/part files it names.
//!
//! Everything is served from memory. Blocking playlist reloads and requests for
//! the preload-hinted part wait on the stream's published snapshots, so they
//! return as soon as the part exists, not after a poll interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::viewer;
use super::{AppState, ClientAddr, error};
use crate::live::Snapshot;
use crate::stream::directory::{Role, StreamHandle};
use crate::stream::registry::{OriginLookup, StreamId};
use crate::stream::requests::NodeMsg;
use crate::stream::stats::Phase;
use castmesh_media::hls::blocking::{self, Readiness};
use castmesh_media::hls::playlist::{self, MediaName};
use castmesh_media::hls::window::Position;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn unknown_stream(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no live stream {:?} on this node",
            id.chars().take(64).collect::<String>()
        ),
    )
}

/// How long a request waits for the node to start relaying a stream.
const RELAY_START_TIMEOUT: Duration = Duration::from_secs(2);

/// The stream as this node serves it. A stream whose origin is another node is
/// relayed from it, starting with this request (one relay per stream, however many
/// requests arrive at once) — also a stream that ended here and has been published on
/// another node since.
async fn find(state: &AppState, id: &str) -> Option<Arc<StreamHandle>> {
    let here = state.ctx.directory.get(id);
    let ended_here = here
        .as_ref()
        .is_some_and(|s| s.role == Role::Origin && s.stats.phase() == Phase::Ended);
    let stream = match here {
        Some(stream) if !ended_here => stream,
        here => {
            let sid = StreamId::parse(id).ok()?;
            let elsewhere = matches!(
                state.ctx.registry.locate_origin(&sid),
                OriginLookup::Node { node, .. } if node != state.ctx.registry.node_id()
            );
            if !elsewhere || state.ctx.mesh.is_none() {
                return here.inspect(|s| s.stats.requested(state.ctx.seams.clock.now_ms()));
            }
            let asked = state
                .node
                .call(
                    |reply| NodeMsg::Relay { id: sid, reply },
                    Some(RELAY_START_TIMEOUT),
                )
                .await;
            match asked {
                Ok(ractor::rpc::CallResult::Success(stream)) => stream?,
                _ => return None,
            }
        }
    };
    stream.stats.requested(state.ctx.seams.clock.now_ms());
    Some(stream)
}

/// Longest a request is held waiting for media: three target durations (hls-rules 13).
fn max_wait(stream: &StreamHandle) -> Duration {
    Duration::from_secs(3 * u64::from(stream.live.config().target_duration_s))
}

fn note_viewer(
    state: &AppState,
    stream: &StreamHandle,
    headers: &HeaderMap,
    client: IpAddr,
) -> Option<String> {
    let id = viewer::identify(headers, client, state.viewer_salt, || {
        state.ctx.seams.entropy.next_u64()
    });
    stream.stats.viewer_seen(id.seen);
    id.set_cookie
}

/// The multivariant playlist: the stream's entry point, with its codecs and size.
pub async fn multivariant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(stream) = find(&state, &id).await else {
        return unknown_stream(&id);
    };
    let set_cookie = note_viewer(&state, &stream, &headers, client);
    // Codecs are known once the first keyframe arrived; a viewer who comes a moment
    // after the publisher is held briefly rather than turned away.
    let ready = |s: &Snapshot| s.multivariant.is_some() || s.position.ended;
    match stream.live.wait_for(max_wait(&stream), ready).await {
        Some(snapshot) => match &snapshot.multivariant {
            Some(text) => playlist_response(text.clone(), set_cookie),
            None => error(StatusCode::NOT_FOUND, "the stream ended without media"),
        },
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the stream has no media yet; retry",
        ),
    }
}

fn playlist_response(body: Bytes, set_cookie: Option<String>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, PLAYLIST_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The LL-HLS media playlist, with blocking reload.
pub async fn media_playlist(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(stream) = find(&state, &id).await else {
        return unknown_stream(&id);
    };
    let request = match blocking::parse(
        query.get("_HLS_msn").map(String::as_str),
        query.get("_HLS_part").map(String::as_str),
    ) {
        Ok(r) => r,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason.to_string()),
    };
    let set_cookie = note_viewer(&state, &stream, &headers, client);
    let limit = blocking::advance_limit_parts(stream.live.config().part_target_ms);
    let ready: Box<dyn Fn(&Snapshot) -> bool + Send + Sync> = match request {
        // A new stream has no media for its first second or two: hold the first
        // request rather than answer with an empty playlist.
        None => Box::new(|s: &Snapshot| s.position.has_media() || s.position.ended),
        Some(req) => {
            let now = stream.live.snapshot();
            if blocking::readiness(req, &now.position, limit) == Readiness::TooFarAhead {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "_HLS_msn={} _HLS_part={:?} is too far ahead of the live edge",
                        req.msn, req.part
                    ),
                );
            }
            Box::new(move |s: &Snapshot| {
                blocking::readiness(req, &s.position, limit) != Readiness::Wait
            })
        }
    };
    let Some(snapshot) = stream.live.wait_for(max_wait(&stream), ready).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the requested part did not appear in time; retry",
        );
    };
    playlist_response(snapshot.playlist.clone(), set_cookie)
}

/// Whether a missing object is about to exist, so the request should wait for it.
fn coming_soon(name: MediaName, pos: &Position, limit: u32) -> bool {
    if pos.ended {
        return false;
    }
    match name {
        MediaName::Init(_) => false,
        MediaName::Segment(msn) => msn == pos.open_msn,
        MediaName::Part(msn, index) => {
            (msn == pos.open_msn && index >= pos.open_parts && index < pos.open_parts + limit)
                || (msn == pos.open_msn + 1 && index < limit)
        }
    }
}

fn lookup(stream: &StreamHandle, name: MediaName) -> Option<Bytes> {
    let w = stream.live.read();
    let w = w.listed();
    match name {
        MediaName::Init(id) => w.init(id),
        MediaName::Segment(msn) => w.segment(msn),
        MediaName::Part(msn, index) => w.part(msn, index),
    }
}

pub async fn media(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(stream) = find(&state, &id).await else {
        return unknown_stream(&id);
    };
    let Some((run, name)) = playlist::parse_name(&file) else {
        return error(StatusCode::NOT_FOUND, "no such HLS file");
    };
    if run != stream.live.run() {
        return error(
            StatusCode::NOT_FOUND,
            "this file belongs to an earlier run of the stream",
        );
    }
    if matches!(name, MediaName::Part(..)) {
        note_viewer(&state, &stream, &headers, client);
    }
    let mut body = lookup(&stream, name);
    if body.is_none() {
        let limit = blocking::advance_limit_parts(stream.live.config().part_target_ms);
        if coming_soon(name, &stream.live.snapshot().position, limit) {
            let waited = stream
                .live
                .wait_for(max_wait(&stream), |s| {
                    !coming_soon(name, &s.position, limit)
                })
                .await;
            if waited.is_none() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested part did not appear in time; retry",
                );
            }
        }
        // Looked up again either way: it may have been published since the first look.
        body = lookup(&stream, name);
    }
    let Some(body) = body else {
        return error(
            StatusCode::NOT_FOUND,
            "no such segment or part (outside the live window)",
        );
    };
    let content_type = match name {
        MediaName::Init(_) => "video/mp4",
        _ => "video/iso.segment",
    };
    // A name (run id + number) always means the same bytes, so caches may keep it.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400, immutable"),
        ],
        body,
    )
        .into_response()
}
