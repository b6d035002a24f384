//! `/api/v1/streams`: the cluster's streams as the platform's users manage them.
//! Anyone reads (listing, one stream, its status); streamers create theirs and manage
//! them, admins manage all; the key is in the answer to create and rotate-key only.
//! `GET /api/v1/node/streams` keeps the per-node media view (codecs, bitrate, role).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use castmesh_cluster::accounts::{Role, UserRecord};
use castmesh_cluster::model::{Lease, StreamRecord, StreamStatus};
use castmesh_cluster::state::NO_NODE;
use castmesh_cluster::{StreamId, StreamKey};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{self, ClusterViewers, LocalInfo};
use super::api_error::{ApiError, JsonBody};
use super::auth::rfc3339;
use super::session::SignedIn;
use crate::platform::catalog::{CatalogError, NewStream, StreamUpdate};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let message = e.to_string();
        match e {
            CatalogError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            CatalogError::NotFound(_) | CatalogError::NoDestination(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            CatalogError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "stream_exists", message)
            }
            CatalogError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "bad_state", message),
            CatalogError::Unavailable(_) => ApiError::unavailable(message),
            CatalogError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

/// A stream as the API shows it to anyone.
#[derive(Serialize)]
pub struct StreamView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: &'static str,
    /// The owning account (id and display name), or null for streams only admins manage.
    pub owner: Option<OwnerView>,
    pub created_at: String,
    pub scheduled_at: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Whether the key publishes (false after a stop, until start).
    pub accepting: bool,
    pub playback_url: String,
    /// Viewers across the cluster while live (as the origin counted them ≤ 3 s ago).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewers: Option<u64>,
}

#[derive(Serialize)]
pub struct OwnerView {
    pub id: u64,
    pub display_name: String,
}

pub fn view(state: &AppState, r: &StreamRecord, viewers: Option<u64>) -> StreamView {
    let owner = r.owner_id.map(|id| OwnerView {
        id,
        display_name: state
            .catalog
            .read_local(|s| s.accounts.users.get(&id).map(|u| u.display_name.clone()))
            .unwrap_or_default(),
    });
    StreamView {
        id: r.id.to_string(),
        title: r.title.clone(),
        description: r.description.clone(),
        status: r.status.as_str(),
        owner,
        created_at: rfc3339(r.created_at),
        scheduled_at: r.scheduled_at.map(rfc3339),
        started_at: r.started_at.map(rfc3339),
        ended_at: r.ended_at.map(rfc3339),
        accepting: r.accepting,
        playback_url: format!("/hls/{}/index.m3u8", r.id),
        viewers: (r.status == StreamStatus::Live).then_some(viewers.unwrap_or(0)),
    }
}

/// Where an encoder publishes: the server URL and the key, as OBS asks for them.
#[derive(Serialize)]
struct PublishInfo {
    rtmp_server: String,
    stream_key: String,
    /// Server and key in one URL, for ffmpeg.
    publish_url: String,
}

/// The RTMP server URL encoders publish to (OBS's "Server"), without a key.
pub fn rtmp_server(config: &crate::config::Config) -> String {
    format!(
        "rtmp://{}:{}/{}",
        config.cluster.advertised_host(),
        config.rtmp.listen.port(),
        config.rtmp.app
    )
}

fn publish_info(state: &AppState, key: &StreamKey) -> PublishInfo {
    let server = rtmp_server(&state.ctx.config);
    PublishInfo {
        publish_url: format!("{server}/{}", key.expose()),
        stream_key: key.expose().to_string(),
        rtmp_server: server,
    }
}

fn with_key(state: &AppState, status: StatusCode, r: &StreamRecord, key: &StreamKey) -> Response {
    let mut body = serde_json::to_value(view(state, r, None)).unwrap_or_default();
    let publish = serde_json::to_value(publish_info(state, key)).unwrap_or_default();
    if let (Some(body), serde_json::Value::Object(publish)) = (body.as_object_mut(), publish) {
        body.extend(publish);
    }
    let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
    (status, no_store, Json(body)).into_response()
}

fn may_create(user: &UserRecord) -> Result<(), ApiError> {
    match user.role {
        Role::Admin | Role::Streamer => Ok(()),
        Role::Viewer => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "viewers cannot create streams; ask an administrator for the streamer role",
        )),
    }
}

/// The stream, if `user` may manage it: its owner or an admin.
pub async fn managed(state: &AppState, user: &UserRecord, id: &str) -> Result<StreamId, ApiError> {
    let id = StreamId::parse(id).map_err(|_| ApiError::not_found("stream"))?;
    let (record, _) = state.catalog.get(&id).await?;
    if user.role == Role::Admin || record.owner_id == Some(user.id) {
        return Ok(id);
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("stream {id} belongs to someone else"),
    ))
}

fn millis(time: Option<&str>, field: &str) -> Result<Option<u64>, ApiError> {
    time.map(|t| {
        humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("{field} must be an RFC 3339 time such as 2026-12-24T18:00:00Z"),
                )
            })
    })
    .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateForm {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scheduled_at: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    JsonBody(form): JsonBody<CreateForm>,
) -> Result<Response, ApiError> {
    may_create(&me.user)?;
    let owned = state.catalog.read_local(|s| {
        s.streams
            .values()
            .filter(|r| r.owner_id == Some(me.user.id))
            .count()
    });
    let limit = state.accounts.config().max_streams_per_user;
    if owned >= limit && me.user.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "limit_reached",
            format!(
                "an account may own {limit} streams (accounts.max_streams_per_user); delete some first"
            ),
        ));
    }
    let (record, key) = state
        .catalog
        .create(NewStream {
            id: form.id,
            title: form.title,
            description: form.description,
            owner_label: String::new(),
            owner_id: Some(me.user.id),
            scheduled_at: millis(form.scheduled_at.as_deref(), "scheduled_at")?,
        })
        .await?;
    Ok(with_key(&state, StatusCode::CREATED, &record, &key))
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Comma-separated statuses.
    status: Option<String>,
    /// `me`: the caller's own streams.
    owner: Option<String>,
    limit: Option<usize>,
    /// The last id of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Page {
    streams: Vec<StreamView>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

fn statuses(text: Option<&str>) -> Result<Vec<StreamStatus>, ApiError> {
    use StreamStatus::*;
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            [Scheduled, Live, Ended, Archived, Cancelled]
                .into_iter()
                .find(|status| status.as_str() == s)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        format!("status must be scheduled, live, ended, archived or cancelled, not {s:?}"),
                    )
                })
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    signed: Option<SignedIn>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wanted = statuses(q.status.as_deref())?;
    let owner = match q.owner.as_deref() {
        None => None,
        Some("me") => Some(
            signed
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "owner=me needs a session",
                    )
                })?
                .0
                .user
                .id,
        ),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("owner must be \"me\", not {other:?}"),
            ));
        }
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after = q.cursor.unwrap_or_default();
    let mut found = state
        .catalog
        .list(|r| {
            r.id.as_str() > after.as_str()
                && (wanted.is_empty() || wanted.contains(&r.status))
                && owner.is_none_or(|o| r.owner_id == Some(o))
        })
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let viewers = live_viewers(&state, &found).await;
    let streams: Vec<StreamView> = found
        .iter()
        .map(|(r, _)| view(&state, r, viewers.get(r.id.as_str()).copied()))
        .collect();
    let next_cursor = more.then(|| streams.last().map(|s| s.id.clone())).flatten();
    Ok(Json(
        serde_json::to_value(Page {
            streams,
            next_cursor,
        })
        .unwrap_or_default(),
    ))
}

/// Viewer totals of the live streams among `entries`, one mesh request per origin
/// node (cached for a moment by the catalog).
async fn live_viewers(
    state: &AppState,
    entries: &[(StreamRecord, Option<Lease>)],
) -> BTreeMap<String, u64> {
    let now = state.catalog.now();
    let origins: BTreeSet<u64> = entries
        .iter()
        .filter(|(r, _)| r.status == StreamStatus::Live)
        .filter_map(|(_, l)| l.filter(|l| l.is_live(now) && l.node != NO_NODE))
        .map(|l| l.node)
        .collect();
    let addrs: Vec<(u64, SocketAddr)> = state.catalog.read_local(|s| {
        origins
            .iter()
            .filter_map(|n| Some((*n, s.nodes.get(n)?.quic.parse().ok()?)))
            .collect()
    });
    state.catalog.origin_viewers(&addrs).await
}

/// One stream: its record, its viewers across the cluster, and its media here.
#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    stream: StreamView,
    /// The node acting as origin and its lease epoch, while its lease is live.
    origin_node: Option<u64>,
    origin_epoch: Option<u64>,
    /// Viewers by node, while live.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_viewers: Option<ClusterViewers>,
    /// The stream on the answering node (codecs, resolution, bitrate), if it serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<LocalInfo>,
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = StreamId::parse(&id) else {
        return ApiError::not_found("stream").into_response();
    };
    let media = state.ctx.directory.get(id.as_str()).map(|s| api::local(&s));
    let (record, lease) = match state.catalog.get(&id).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let by_node = match record.status {
        StreamStatus::Live => state.catalog.viewers(&id, lease).await,
        _ => None,
    };
    let total = by_node.as_ref().map(|b| b.values().sum());
    let now = state.catalog.now();
    let origin = lease.filter(|l| l.is_live(now) && l.node != NO_NODE);
    Json(Detail {
        stream: view(&state, &record, total),
        origin_node: origin.map(|l| l.node),
        origin_epoch: origin.map(|l| l.epoch),
        cluster_viewers: by_node.map(|by_node| ClusterViewers {
            total: by_node.values().sum(),
            by_node,
        }),
        media,
    })
    .into_response()
}

#[derive(Serialize, Clone, PartialEq)]
pub struct StatusView {
    pub id: String,
    pub status: &'static str,
    pub viewers: u64,
    pub started_at: Option<String>,
}

/// The cheap polling answer (the Rails seed polls every 10 s): status, viewers and
/// start time, cached on this node for up to `STATUS_CACHE`.
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StatusView>, ApiError> {
    let id = StreamId::parse(&id).map_err(|_| ApiError::not_found("stream"))?;
    current_status(&state, &id).await.map(Json)
}

/// A stream's status and viewers as `status` answers them (also what the watch
/// socket pushes), from this node's cache when fresh.
pub async fn current_status(state: &AppState, id: &StreamId) -> Result<StatusView, ApiError> {
    if let Some(cached) = state.status_cache.get(id.as_str()) {
        return Ok(cached);
    }
    let (record, lease) = state.catalog.get(id).await?;
    let viewers = match record.status {
        StreamStatus::Live => state
            .catalog
            .viewers(id, lease)
            .await
            .map_or(0, |b| b.values().sum()),
        _ => 0,
    };
    let answer = StatusView {
        id: id.to_string(),
        status: record.status.as_str(),
        viewers,
        started_at: record.started_at.map(rfc3339),
    };
    state.status_cache.put(id.as_str(), answer.clone());
    Ok(answer)
}

/// How long `status` answers are reused.
pub const STATUS_CACHE: Duration = Duration::from_secs(2);
/// Streams whose status answer is kept at once; beyond it the cache starts afresh.
const STATUS_CACHE_ENTRIES: usize = 10_000;

/// Recent `status` answers by stream id.
#[derive(Default)]
pub struct StatusCache(Mutex<HashMap<String, (Instant, StatusView)>>);

impl StatusCache {
    fn get(&self, id: &str) -> Option<StatusView> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(id)
            .filter(|(at, _)| at.elapsed() < STATUS_CACHE)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, id: &str, answer: StatusView) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= STATUS_CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < STATUS_CACHE);
            if cache.len() >= STATUS_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(id.to_string(), (Instant::now(), answer));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateForm {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// An RFC 3339 time, or null to remove the schedule.
    #[serde(default, deserialize_with = "present")]
    scheduled_at: Option<Option<String>>,
}

/// A field that is present, possibly as null: `Some(None)`; absent: `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn update(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    JsonBody(form): JsonBody<UpdateForm>,
) -> Result<Json<StreamView>, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let scheduled_at = match form.scheduled_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(millis(Some(&t), "scheduled_at")?),
    };
    let update = StreamUpdate {
        title: form.title,
        description: form.description,
        scheduled_at,
        owner_id: None,
    };
    let record = state.catalog.update(&id, update).await?;
    Ok(Json(view(&state, &record, None)))
}

pub async fn delete(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    state.catalog.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn start(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let record = state.catalog.start(&id).await?;
    Ok(Json(view(&state, &record, None)))
}

pub async fn stop(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let record = state.catalog.stop(&id).await?;
    Ok(Json(view(&state, &record, None)))
}

pub async fn cancel(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let record = state.catalog.cancel(&id).await?;
    Ok(Json(view(&state, &record, None)))
}

pub async fn rotate_key(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = managed(&state, &me.user, &id).await?;
    let (record, key) = state.catalog.rotate_key(&id).await?;
    Ok(with_key(&state, StatusCode::OK, &record, &key))
}
