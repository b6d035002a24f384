//! `GET /api/v1/node/streams`: the streams on this node with their media details
//! (codecs, resolution, bitrate, role, viewers here). `streams.rs` shows the same
//! details for one stream in `GET /api/v1/streams/{id}`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;

use serde::Serialize;

use super::AppState;

use crate::stream::directory::{Role, StreamHandle};

use crate::stream::stats::Phase;

#[derive(Serialize)]
pub struct StreamInfo {
    pub id: String,
    #[serde(flatten)]
    pub local: LocalInfo,
}

/// Viewers of a stream across the cluster: the origin's own and those its edges
/// reported within the last few seconds.
#[derive(Serialize)]
pub struct ClusterViewers {
    pub total: u64,
    /// Viewers by node id.
    pub by_node: BTreeMap<u64, u64>,
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

pub fn local(stream: &StreamHandle) -> LocalInfo {
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
                local: local(s),
            })
            .collect(),
    )
}
