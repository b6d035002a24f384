//! `GET /api/v1/streams` and `/api/v1/streams/{id}`: the live streams on this node.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::stream::directory::StreamHandle;
use crate::stream::stats::Phase;

#[derive(Serialize)]
pub struct StreamInfo {
    pub id: String,
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

fn info(stream: &StreamHandle) -> StreamInfo {
    let snapshot = stream.live.snapshot();
    let codecs = snapshot.codecs.as_ref();
    let video = codecs.and_then(|c| c.video.as_ref());
    let audio = codecs.and_then(|c| c.audio.as_ref());
    StreamInfo {
        id: stream.id.to_string(),
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
    Json(state.ctx.directory.all().iter().map(|s| info(s)).collect())
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.ctx.directory.get(&id) {
        Some(s) => Json(info(&s)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such stream on this node" })),
        )
            .into_response(),
    }
}
