//! `/api/v1/streams/{id}/destinations`: where a stream is restreamed (docs/api.md,
//! "Restreaming"). Only the stream's owner and admins see and change them. The
//! destination key is write-only: set on create or change, never in an answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use castmesh_cluster::restream::{Destination, DestinationChange, Platform, RestreamCommand};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api_error::{ApiError, JsonBody};
use super::auth::rfc3339;
use super::session::SignedIn;
use super::streams::managed;

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
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            platform: d.platform,
            server_url: d.url.clone(),
            key_set: !d.key.is_empty(),
            enabled: d.enabled,
            wanted: d.wanted(),
            created_at: rfc3339(d.created_at),
        }
    }
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
    Ok(Json(list.iter().map(DestinationView::from).collect()))
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
    let now = state.catalog.restream(command).await?;
    let now = now.ok_or_else(|| ApiError::not_found("destination"))?;
    Ok(Json(DestinationView::from(&now)))
}
