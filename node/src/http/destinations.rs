//! `/api/v1/streams/{id}/destinations`: where a stream is restreamed (docs/api.md,
//! "Restreaming"). Only the stream's owner and admins see and change them. The
//! destination key is write-only: set on create or change, never in an answer.
//!
//! What each destination is doing comes from the stream's origin, where its restream
//! actors run.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use castmesh_cluster::StreamId;
use castmesh_cluster::restream::{Destination, DestinationChange, Platform, RestreamCommand};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api_error::{ApiError, JsonBody};
use super::auth::rfc3339;
use super::session::SignedIn;
use super::streams::managed;
use crate::stream::restream::status::{self, Snapshot};

/// A destination as the API shows it: everything but the key.
#[derive(Serialize)]
pub struct DestinationView {
    pub id: u64,
    pub name: String,
    pub platform: Platform,
    pub server_url: String,
    /// Whether a key is set (it always is; the key itself is never returned).
    pub key_set: bool,
    /// Starts by itself whenever the stream goes live.
    pub enabled: bool,
    /// Whether the stream's origin pushes to it while the stream is live: `enabled`,
    /// unless started or stopped by hand in this live session.
    pub wanted: bool,
    pub created_at: String,
    pub status: StatusView,
}

/// What a destination is doing now.
#[derive(Serialize)]
pub struct StatusView {
    /// `idle`, `connecting`, `live`, `retrying` or `error`.
    pub state: status::State,
    /// While retrying: seconds to the next attempt.
    pub retry_in_s: Option<u64>,
    /// The last failure in words, and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub bytes_sent: u64,
    pub bitrate_kbps: u64,
    pub reconnects: u64,
    pub live_since: Option<String>,
    /// Frames dropped because the destination could not keep up.
    pub dropped_frames: u64,
}

impl StatusView {
    fn of(s: Option<&Snapshot>, now_ms: u64) -> Self {
        let Some(s) = s else {
            return Self {
                state: status::State::Idle,
                retry_in_s: None,
                last_error: None,
                last_error_at: None,
                bytes_sent: 0,
                bitrate_kbps: 0,
                reconnects: 0,
                live_since: None,
                dropped_frames: 0,
            };
        };
        Self {
            state: s.state,
            retry_in_s: s
                .retry_at_ms
                .map(|at| at.saturating_sub(now_ms).div_ceil(1000)),
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at_ms.map(rfc3339),
            bytes_sent: s.bytes_sent,
            bitrate_kbps: s.bitrate_bps / 1000,
            reconnects: s.reconnects,
            live_since: s.live_since_ms.map(rfc3339),
            dropped_frames: s.dropped_frames,
        }
    }
}

impl DestinationView {
    fn new(d: &Destination, status: Option<&Snapshot>, now_ms: u64) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            platform: d.platform,
            server_url: d.url.clone(),
            key_set: !d.key.is_empty(),
            enabled: d.enabled,
            wanted: d.wanted(),
            created_at: rfc3339(d.created_at),
            status: StatusView::of(status, now_ms),
        }
    }
}

/// The statuses of the stream's destinations, asked of its origin over the mesh (also
/// when that is this node: one path, as for viewer counts). Empty when no node pushes
/// it (not live), or the origin did not answer.
async fn statuses(state: &AppState, id: &StreamId) -> BTreeMap<u64, Snapshot> {
    let asked = state.catalog.restream_statuses(id).await;
    Snapshot::all_from_wire(asked.unwrap_or_default())
}

/// `d` as the API shows it, with its status.
async fn view(state: &AppState, id: &StreamId, d: &Destination) -> DestinationView {
    let statuses = statuses(state, id).await;
    DestinationView::new(d, statuses.get(&d.id), state.catalog.now())
}

/// A new destination, or the fields to change. GoStream's names (`rtmpUrl`,
/// `streamKey`) are accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default, alias = "rtmpUrl")]
    server_url: Option<String>,
    #[serde(default, alias = "streamKey")]
    stream_key: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

impl From<DestinationForm> for DestinationChange {
    fn from(f: DestinationForm) -> Self {
        Self {
            name: f.name,
            platform: f.platform,
            url: f.server_url,
            key: f.stream_key,
            enabled: f.enabled,
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Vec<DestinationView>>, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let list = state.catalog.destinations(&id).await?;
    let statuses = statuses(&state, &id).await;
    let now = state.catalog.now();
    Ok(Json(
        list.iter()
            .map(|d| DestinationView::new(d, statuses.get(&d.id), now))
            .collect(),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    JsonBody(form): JsonBody<DestinationForm>,
) -> Result<(StatusCode, Json<DestinationView>), ApiError> {
    let stream = managed(&state, &me.user, &id).await?;
    let command = RestreamCommand::Add {
        stream,
        change: form.into(),
        max: state.ctx.config.restream.max_destinations,
        now: state.catalog.now(),
    };
    let added = changed(&state, command).await?;
    Ok((StatusCode::CREATED, added))
}

pub async fn update(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, dest)): Path<(String, u64)>,
    JsonBody(form): JsonBody<DestinationForm>,
) -> Result<Json<DestinationView>, ApiError> {
    let stream = managed(&state, &me.user, &id).await?;
    let command = RestreamCommand::Update {
        stream,
        id: dest,
        change: form.into(),
    };
    changed(&state, command).await
}

pub async fn delete(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, dest)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let stream = managed(&state, &me.user, &id).await?;
    let command = RestreamCommand::Remove { stream, id: dest };
    state.catalog.restream(command).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn start(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, dest)): Path<(String, u64)>,
) -> Result<Json<DestinationView>, ApiError> {
    run(state, me.user, id, dest, true).await
}

pub async fn stop(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, dest)): Path<(String, u64)>,
) -> Result<Json<DestinationView>, ApiError> {
    run(state, me.user, id, dest, false).await
}

async fn run(
    state: AppState,
    user: castmesh_cluster::accounts::UserRecord,
    id: String,
    dest: u64,
    running: bool,
) -> Result<Json<DestinationView>, ApiError> {
    let stream = managed(&state, &user, &id).await?;
    let command = RestreamCommand::Run {
        stream,
        id: dest,
        running,
    };
    changed(&state, command).await
}

async fn changed(
    state: &AppState,
    command: RestreamCommand,
) -> Result<Json<DestinationView>, ApiError> {
    let stream = command.stream().clone();
    let now = state.catalog.restream(command).await?;
    let now = now.ok_or_else(|| ApiError::not_found("destination"))?;
    Ok(Json(view(state, &stream, &now).await))
}
