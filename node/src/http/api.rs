//! `GET /api/v1/streams`: the streams on this node (media details).
//! `GET /api/v1/streams/{id}`: any stream of the cluster: its record (status, title,
//! origin) from the replicated metadata, its viewers across the cluster (as its origin
//! counts them), plus media details if it is on this node.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::stream::directory::{Role, StreamHandle};
use crate::stream::registry::{OriginLookup, StreamId, StreamMeta};
use crate::stream::stats::Phase;

#[derive(Serialize)]
pub struct StreamInfo {
    pub id: String,
    #[serde(flatten)]
    pub cluster: Option<StreamMeta>,
    #[serde(flatten)]
    pub local: Option<LocalInfo>,
    /// Viewers on every node, while the stream has a live origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_viewers: Option<ClusterViewers>,
}

/// Viewers of a stream across the cluster: the origin's own and those its edges
/// reported within the last few seconds.
#[derive(Serialize)]
pub struct ClusterViewers {
    pub total: u64,
    /// Viewers by node id.
    pub by_node: BTreeMap<u64, u64>,
}

async fn cluster_viewers(state: &AppState, id: &StreamId) -> Option<ClusterViewers> {
    let ctx = &state.ctx;
    let me = ctx.registry.node_id();
    let by_node = match ctx.registry.locate_origin(id) {
        OriginLookup::Node { node, .. } if node == me => ctx
            .directory
            .get(id.as_str())?
            .stats
            .viewers_by_node(me, ctx.seams.clock.now_ms()),
        OriginLookup::Node {
            node,
            mesh: Some(addr),
            ..
        } => {
            let mesh = ctx.mesh.as_ref()?;
            mesh.viewers(addr, node, id.as_str()).await.ok()?
        }
        _ => return None,
    };
    Some(ClusterViewers {
        total: by_node.values().sum(),
        by_node,
    })
}

/// A stream's media on this node.
#[derive(Serialize)]
pub struct LocalInfo {
    /// Whether this node is the stream's origin or relays it as an edge.
    pub role: Role,
    /// This node's phase: live, grace, ended.
    pub state: Phase,
    pub started_at: String,
    /// Playlist CODECS value, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Option<String>,
    /// `WIDTHxHEIGHT` of the video.
    pub resolution: Option<String>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// Publisher bitrate over the last few seconds, bits per second.
    pub bitrate: u64,
    /// Distinct HLS viewers on this node.
    pub viewers: u64,
    pub playback_url: String,
}

#[derive(Serialize)]
pub struct VideoInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

#[derive(Serialize)]
pub struct AudioInfo {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u8,
}

fn local(stream: &StreamHandle) -> LocalInfo {
    let snapshot = stream.live.snapshot();
    let codecs = snapshot.codecs.as_ref();
    let video = codecs.and_then(|c| c.video.as_ref());
    let audio = codecs.and_then(|c| c.audio.as_ref());
    LocalInfo {
        role: stream.role,
        state: stream.stats.phase(),
        started_at: humantime::format_rfc3339_millis(stream.stats.started_at).to_string(),
        codecs: codecs.map(|c| c.codec_list()),
        resolution: video.map(|v| format!("{}x{}", v.width, v.height)),
        video: video.map(|v| VideoInfo {
            codec: v.codec_string(),
            width: v.width,
            height: v.height,
            frame_rate: v.frame_rate,
        }),
        audio: audio.map(|a| AudioInfo {
            codec: a.codec_string(),
            sample_rate: a.sample_rate,
            channels: a.channels,
        }),
        bitrate: stream.stats.bitrate_bps.load(Ordering::Relaxed),
        viewers: stream.stats.viewers.load(Ordering::Relaxed),
        playback_url: format!("/hls/{}/index.m3u8", stream.id),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<Vec<StreamInfo>> {
    let streams = state.ctx.directory.all();
    Json(
        streams
            .iter()
            .map(|s| StreamInfo {
                id: s.id.to_string(),
                cluster: None,
                local: Some(local(s)),
                cluster_viewers: None,
            })
            .collect(),
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = StreamId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, "no such stream");
    };
    let here = state.ctx.directory.get(id.as_str()).map(|s| local(&s));
    let cluster = match state.ctx.registry.describe(&id).await {
        Ok(meta) => meta,
        // Media details still help while the cluster is unreachable.
        Err(_) if here.is_some() => None,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if cluster.is_none() && here.is_none() {
        return error(StatusCode::NOT_FOUND, "no such stream");
    }
    Json(StreamInfo {
        cluster_viewers: cluster_viewers(&state, &id).await,
        id: id.to_string(),
        cluster,
        local: here,
    })
    .into_response()
}
