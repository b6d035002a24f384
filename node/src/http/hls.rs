//! `GET /hls/{stream}/index.m3u8` (multivariant), `media.m3u8` (LL-HLS media
//! playlist) and the init/segment/part files it names.
//!
//! Everything is served from memory. Blocking playlist reloads and requests for
//! the preload-hinted part wait on the stream's published snapshots, so they
//! return as soon as the part exists, not after a poll interval.
//!
//! These requests are most of what a node serves (a viewer asks for a playlist and a
//! part every part duration), so they do not go through the router and its layers:
//! `http::serve` hands them to [`serve`] first, which reads the path and query
//! itself, borrows the request's headers, sets the one CORS header a GET needs,
//! counts the request without allocating, and waits only where media is awaited
//! (bounded by three target durations and `http.request_timeout`). bench-serve
//! measured the router's share of a playlist request (docs/benchmarks.md).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::viewer;
use super::{AppState, count, error};
use crate::live::Snapshot;
use crate::stream::directory::{Role, StreamHandle};
use crate::stream::registry::{OriginLookup, StreamId};
use crate::stream::requests::NodeMsg;
use crate::stream::stats::Phase;
use castmesh_media::hls::blocking::{self, Readiness};
use castmesh_media::hls::playlist::{self, MediaName};
use castmesh_media::hls::window::Position;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// The paths served here, as metrics label them and docs/openapi.json documents them
/// (GET and HEAD).
pub const MULTIVARIANT: &str = "/hls/{id}/index.m3u8";
pub const MEDIA_PLAYLIST: &str = "/hls/{id}/media.m3u8";
pub const MEDIA: &str = "/hls/{id}/{file}";

/// A GET or HEAD of `/hls/{id}/{file}`, read from the request line.
pub struct Request {
    pub(crate) id: String,
    pub(crate) file: String,
    pub(crate) msn: Option<String>,
    pub(crate) part: Option<String>,
}

impl Request {
    /// `None` for anything else (other paths, other methods: an OPTIONS preflight goes
    /// to the router's CORS layer, a POST to its 405).
    pub fn of<B>(req: &axum::http::Request<B>) -> Option<Request> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let rest = req.uri().path().strip_prefix("/hls/")?;
        let (id, file) = rest.split_once('/')?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(Cow::into_owned)
        };
        let (id, file) = (decode(id)?, decode(file)?);
        if id.is_empty() || file.is_empty() || file.contains('/') {
            return None;
        }
        let (mut msn, mut part) = (None, None);
        for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match &*key {
                "_HLS_msn" => msn = Some(value.into_owned()),
                "_HLS_part" => part = Some(value.into_owned()),
                _ => {}
            }
        }
        Some(Request {
            id,
            file,
            msn,
            part,
        })
    }
}

/// Answers an HLS request (see the module's comment for why outside the router).
pub async fn serve(
    state: &AppState,
    request: Request,
    headers: &HeaderMap,
    client: IpAddr,
) -> Response {
    let (route, mut response) = match request.file.as_str() {
        "index.m3u8" => (
            MULTIVARIANT,
            multivariant(state, &request.id, headers, client).await,
        ),
        "media.m3u8" => (
            MEDIA_PLAYLIST,
            media_playlist(state, &request, headers, client).await,
        ),
        file => (
            MEDIA,
            media(state, &request.id, file, headers, client).await,
        ),
    };
    // Any page may play (allow_origin(Any), as the router's CORS layer says for the
    // rest); a plain GET needs nothing more.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    count(state, Cow::Borrowed(route), response.status());
    response
}

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

/// Longest a request is held waiting for media: three target durations (hls-rules 13),
/// and never longer than any request may take.
fn max_wait(state: &AppState, stream: &StreamHandle) -> Duration {
    Duration::from_secs(3 * u64::from(stream.live.config().target_duration_s))
        .min(state.ctx.config.http.request_timeout)
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
async fn multivariant(state: &AppState, id: &str, headers: &HeaderMap, client: IpAddr) -> Response {
    let Some(stream) = find(state, id).await else {
        return unknown_stream(id);
    };
    let set_cookie = note_viewer(state, &stream, headers, client);
    // Codecs are known once the first keyframe arrived; a viewer who comes a moment
    // after the publisher is held briefly rather than turned away.
    let ready = |s: &Snapshot| s.multivariant.is_some() || s.position.ended;
    match stream.live.wait_for(max_wait(state, &stream), ready).await {
        Some(snapshot) => match &snapshot.multivariant {
            Some(text) => playlist_response(text.clone(), false, set_cookie),
            None => error(StatusCode::NOT_FOUND, "the stream ended without media"),
        },
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the stream has no media yet; retry",
        ),
    }
}

/// A playlist (`gzipped`: its body is gzip, so the compression layer leaves it be).
fn playlist_response(body: Bytes, gzipped: bool, set_cookie: Option<String>) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLAYLIST_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether the client takes a gzip body (`Accept-Encoding`, q-values honoured).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut params = coding.split(';');
            let name = params.next().unwrap_or("").trim();
            let refused = params.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The LL-HLS media playlist, with blocking reload.
async fn media_playlist(
    state: &AppState,
    asked: &Request,
    headers: &HeaderMap,
    client: IpAddr,
) -> Response {
    let Some(stream) = find(state, &asked.id).await else {
        return unknown_stream(&asked.id);
    };
    let request = match blocking::parse(asked.msn.as_deref(), asked.part.as_deref()) {
        Ok(r) => r,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason.to_string()),
    };
    let set_cookie = note_viewer(state, &stream, headers, client);
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
    let Some(snapshot) = stream.live.wait_for(max_wait(state, &stream), ready).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the requested part did not appear in time; retry",
        );
    };
    // Every viewer waiting for this version shares its one rendering (and its one
    // gzip): the bytes are reference-counted, not copied.
    match accepts_gzip(headers)
        .then(|| snapshot.playlist_gzip())
        .flatten()
    {
        Some(gzipped) => playlist_response(gzipped, true, set_cookie),
        None => playlist_response(snapshot.playlist.clone(), false, set_cookie),
    }
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

async fn media(
    state: &AppState,
    id: &str,
    file: &str,
    headers: &HeaderMap,
    client: IpAddr,
) -> Response {
    let Some(stream) = find(state, id).await else {
        return unknown_stream(id);
    };
    let Some((run, name)) = playlist::parse_name(file) else {
        return error(StatusCode::NOT_FOUND, "no such HLS file");
    };
    if run != stream.live.run() {
        return error(
            StatusCode::NOT_FOUND,
            "this file belongs to an earlier run of the stream",
        );
    }
    if matches!(name, MediaName::Part(..)) {
        note_viewer(state, &stream, headers, client);
    }
    let mut body = lookup(&stream, name);
    if body.is_none() {
        let limit = blocking::advance_limit_parts(stream.live.config().part_target_ms);
        if coming_soon(name, &stream.live.snapshot().position, limit) {
            let waited = stream
                .live
                .wait_for(max_wait(state, &stream), |s| {
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
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_requests_are_read_from_the_request_line() {
        let read = |method: Method, target: &str| {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .unwrap();
            Request::of(&req).map(|r| (r.id, r.file, r.msn, r.part))
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            read(
                Method::GET,
                "/hls/show/media.m3u8?_HLS_msn=12&x=&_HLS_part=3"
            ),
            Some(("show".into(), "media.m3u8".into(), some("12"), some("3")))
        );
        assert_eq!(
            read(Method::HEAD, "/hls/sh%6Fw/part-1-2.3.m4s"),
            Some(("show".into(), "part-1-2.3.m4s".into(), None, None))
        );
        // Anything else is the router's: its 404, 405 or CORS preflight.
        assert!(read(Method::OPTIONS, "/hls/show/media.m3u8").is_none());
        assert!(read(Method::POST, "/hls/show/media.m3u8").is_none());
        for target in [
            "/hls/show",
            "/hls//media.m3u8",
            "/hls/show/",
            "/hls/a/b/c",
            "/hls/a%2Fb/c%2Fd",
            "/hls/%ff/x",
            "/hlsx/a/b",
        ] {
            assert!(read(Method::GET, target).is_none(), "{target}");
        }
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let accepts = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            }
            accepts_gzip(&headers)
        };
        assert!(accepts(&["gzip, deflate, br"]));
        assert!(accepts(&["br", "GZIP;q=0.5"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.0, identity"]));
        assert!(!accepts(&["xgzip"]));
    }
}
