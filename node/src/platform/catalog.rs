//! The streams of the cluster as people and operators manage them: create (the key is
//! shown once), read, list, update, rotate the key, start, stop, cancel, delete. The
//! REST API (owners, with their permissions checked there) and the gRPC admin API
//! (operators) both call this; only the translation differs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use castmesh_cluster::accounts::UserId;
use castmesh_cluster::command::{Command, Rejection, Response};
use castmesh_cluster::ids::InvalidStreamId;
use castmesh_cluster::keys;
use castmesh_cluster::member::{ClusterError, ClusterMember};
use castmesh_cluster::model::{Lease, Millis, StreamRecord, StreamStatus};
use castmesh_cluster::restream::{Destination, RestreamCommand, RestreamRejection};
use castmesh_cluster::state::NO_NODE;
use castmesh_cluster::{ClusterState, StreamId, StreamKey};

use crate::mesh::Mesh;
use crate::seams::Seams;
use castmesh_proto::mesh::v1::DestinationStatus;

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 5000;
pub const MAX_OWNER_LABEL: usize = 100;
/// 9999-12-31T23:59:59.999Z: the last time RFC 3339 can write.
const MAX_TIME: Millis = 253_402_300_799_999;

fn schedule(at: Option<Millis>) -> Result<Option<Millis>, CatalogError> {
    match at {
        Some(t) if t > MAX_TIME => Err(CatalogError::Invalid(
            "scheduled_at must be before the year 10000".into(),
        )),
        other => Ok(other),
    }
}

/// Why a stream operation did not happen, in words for whoever asked.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
    #[error("no stream {0}")]
    NotFound(StreamId),
    #[error("no destination {0}")]
    NoDestination(u64),
    #[error("stream {0} already exists")]
    Exists(StreamId),
    /// A change the stream's state does not allow (e.g. cancelling a live stream).
    #[error("{0}")]
    Conflict(String),
    #[error("the cluster is unavailable, try again: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ClusterError> for CatalogError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unavailable(_) | ClusterError::Stopped(_) => {
                CatalogError::Unavailable(e.to_string())
            }
            ClusterError::Refused(m) => CatalogError::Conflict(m),
            ClusterError::Storage(_) | ClusterError::Config(_) => {
                CatalogError::Internal(e.to_string())
            }
        }
    }
}

impl From<InvalidStreamId> for CatalogError {
    fn from(e: InvalidStreamId) -> Self {
        CatalogError::Invalid(e.to_string())
    }
}

fn rejected(r: Rejection) -> CatalogError {
    match r {
        Rejection::NoSuchStream(id) => CatalogError::NotFound(id),
        Rejection::StreamExists(id) => CatalogError::Exists(id),
        Rejection::NoSuchUser(id) => CatalogError::Invalid(format!("no user {id}")),
        Rejection::Restream(RestreamRejection::NoSuchDestination(id)) => {
            CatalogError::NoDestination(id)
        }
        Rejection::Restream(r) => CatalogError::Invalid(r.to_string()),
        other @ (Rejection::BadTransition { .. } | Rejection::KeyInUse) => {
            CatalogError::Conflict(other.to_string())
        }
        other => CatalogError::Internal(other.to_string()),
    }
}

/// Text a person typed: bounded, without control characters (newlines allowed where
/// `multiline`).
pub fn text(
    field: &str,
    value: String,
    max: usize,
    multiline: bool,
) -> Result<String, CatalogError> {
    let bad = |c: char| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t'));
    if value.chars().count() > max || value.chars().any(bad) {
        return Err(CatalogError::Invalid(format!(
            "{field} must be at most {max} characters without control characters"
        )));
    }
    Ok(value)
}

pub struct NewStream {
    /// Public id for playback URLs; generated when absent.
    pub id: Option<String>,
    pub title: String,
    pub description: String,
    /// Free-text owner label (operators).
    pub owner_label: String,
    pub owner_id: Option<UserId>,
    pub scheduled_at: Option<Millis>,
}

/// Fields to change; `None` leaves one as it is.
#[derive(Default)]
pub struct StreamUpdate {
    pub title: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` removes the schedule.
    pub scheduled_at: Option<Option<Millis>>,
    /// `Some(None)` leaves the stream to admins.
    pub owner_id: Option<Option<UserId>>,
}

/// A stream's record and its origin lease.
pub type Entry = (StreamRecord, Option<Lease>);

/// How long a node's viewer totals are reused by listings.
const TOTALS_FRESH: Duration = Duration::from_secs(2);
/// How long a listing waits for an origin's totals.
const TOTALS_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Catalog {
    member: ClusterMember,
    seams: Seams,
    /// Asks a stream's origin for its viewer counts.
    mesh: Arc<Mesh>,
    /// Viewer totals by origin node, as last fetched (bounded by the cluster's nodes).
    totals: Mutex<HashMap<u64, (Instant, Totals)>>,
}

/// Viewers across the cluster by stream id, of the streams one node originates.
type Totals = Arc<BTreeMap<String, u64>>;

impl Catalog {
    pub fn new(member: ClusterMember, seams: Seams, mesh: Arc<Mesh>) -> Self {
        Self {
            member,
            seams,
            mesh,
            totals: Mutex::default(),
        }
    }

    /// Reads this node's copy of the state as it is (for labels such as owners'
    /// display names, which may be a moment stale).
    pub fn read_local<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        self.member.read_local(f)
    }

    /// Viewer totals across the cluster of the streams originated by `origins`: one
    /// mesh request per origin node, in parallel, reused for `TOTALS_FRESH`. An origin
    /// that does not answer within `TOTALS_TIMEOUT` contributes nothing.
    pub async fn origin_viewers(&self, origins: &[(u64, SocketAddr)]) -> BTreeMap<String, u64> {
        let fresh = |node: &u64| {
            let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
            totals
                .get(node)
                .filter(|(at, _)| at.elapsed() < TOTALS_FRESH)
                .map(|(_, t)| t.clone())
        };
        let mut found: Vec<Totals> = Vec::new();
        let mut asking = tokio::task::JoinSet::new();
        for &(node, addr) in origins {
            match fresh(&node) {
                Some(totals) => found.push(totals),
                None => {
                    let mesh = self.mesh.clone();
                    asking.spawn(async move {
                        let asked = mesh.origin_viewers(addr, node);
                        (node, tokio::time::timeout(TOTALS_TIMEOUT, asked).await)
                    });
                }
            }
        }
        while let Some(Ok((node, answer))) = asking.join_next().await {
            if let Ok(Ok(totals)) = answer {
                let totals = Arc::new(totals);
                self.totals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node, (Instant::now(), totals.clone()));
                found.push(totals);
            }
        }
        found
            .iter()
            .flat_map(|t| t.iter().map(|(k, v)| (k.clone(), *v)))
            .collect()
    }

    pub fn now(&self) -> Millis {
        self.seams.clock.now_ms()
    }

    fn new_key(&self) -> StreamKey {
        let mut bytes = [0u8; keys::KEY_BYTES];
        self.seams.entropy.fill(&mut bytes);
        keys::generate(bytes)
    }

    /// A readable id for streams created without one, e.g. `s-3f9a1c0b7d2e`.
    fn new_id(&self) -> StreamId {
        let n = self.seams.entropy.next_u64() & 0xffff_ffff_ffff;
        StreamId::parse(&format!("s-{n:012x}")).expect("valid id")
    }

    async fn write(&self, command: Command) -> Result<StreamRecord, CatalogError> {
        match self.member.write(command).await? {
            Response::Stream(r) => Ok(r),
            Response::Rejected(r) => Err(rejected(r)),
            other => Err(CatalogError::Internal(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Reads the state after every write acknowledged before the call.
    pub async fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> Result<T, CatalogError> {
        Ok(self.member.read(f).await?)
    }

    /// Creates a stream; its key is returned here and never again (only its hash is
    /// kept).
    pub async fn create(&self, new: NewStream) -> Result<(StreamRecord, StreamKey), CatalogError> {
        let id = match new.id {
            Some(id) if !id.is_empty() => StreamId::parse(&id)?,
            _ => self.new_id(),
        };
        let key = self.new_key();
        let key_hash = keys::hash(&key);
        let created = self
            .write(Command::CreateStream {
                id: id.clone(),
                title: text("title", new.title, MAX_TITLE, false)?,
                owner: text("owner", new.owner_label, MAX_OWNER_LABEL, false)?,
                key_hash,
                scheduled_at: schedule(new.scheduled_at)?,
                now: self.now(),
                owner_id: new.owner_id,
                description: text("description", new.description, MAX_DESCRIPTION, true)?,
            })
            .await;
        let record = match created {
            // A forwarded write that timed out after committing is retried and then
            // finds its own stream: same key hash, so it is this call's stream.
            Err(CatalogError::Exists(_)) => self
                .read(|s| {
                    s.streams
                        .get(&id)
                        .filter(|r| r.key_hash == key_hash)
                        .cloned()
                })
                .await?
                .ok_or(CatalogError::Exists(id))?,
            other => other?,
        };
        tracing::info!(stream = %record.id, owner = ?record.owner_id, "stream created");
        Ok((record, key))
    }

    pub async fn get(&self, id: &StreamId) -> Result<Entry, CatalogError> {
        self.read(|s| {
            s.streams
                .get(id)
                .map(|r| (r.clone(), s.leases.get(id).copied()))
        })
        .await?
        .ok_or_else(|| CatalogError::NotFound(id.clone()))
    }

    /// Every stream `keep` accepts, in id order.
    pub async fn list(
        &self,
        keep: impl Fn(&StreamRecord) -> bool,
    ) -> Result<Vec<Entry>, CatalogError> {
        self.read(|s| {
            s.streams
                .values()
                .filter(|r| keep(r))
                .map(|r| (r.clone(), s.leases.get(&r.id).copied()))
                .collect()
        })
        .await
    }

    pub async fn update(
        &self,
        id: &StreamId,
        update: StreamUpdate,
    ) -> Result<StreamRecord, CatalogError> {
        let title = update
            .title
            .map(|t| text("title", t, MAX_TITLE, false))
            .transpose()?;
        let description = update
            .description
            .map(|d| text("description", d, MAX_DESCRIPTION, true))
            .transpose()?;
        let scheduled_at = match update.scheduled_at {
            Some(at) => Some(schedule(at)?),
            None => None,
        };
        self.write(Command::UpdateStream {
            id: id.clone(),
            title,
            scheduled_at,
            description,
            owner_id: update.owner_id,
        })
        .await
    }

    /// A new key; the old one stops working for new publishes at once.
    pub async fn rotate_key(
        &self,
        id: &StreamId,
    ) -> Result<(StreamRecord, StreamKey), CatalogError> {
        let key = self.new_key();
        let record = self
            .write(Command::RotateKey {
                id: id.clone(),
                key_hash: keys::hash(&key),
            })
            .await?;
        tracing::info!(stream = %id, "stream key rotated");
        Ok((record, key))
    }

    /// Ends the stream now and refuses its key until `start`: its origin drops the
    /// publisher at its next lease renewal, and an encoder reconnecting is refused.
    pub async fn stop(&self, id: &StreamId) -> Result<StreamRecord, CatalogError> {
        let record = self
            .write(Command::EndStream {
                id: id.clone(),
                now: self.now(),
                hold_key: true,
            })
            .await?;
        tracing::info!(stream = %id, "stream stopped");
        Ok(record)
    }

    /// Makes the key publish again after a stop.
    pub async fn start(&self, id: &StreamId) -> Result<StreamRecord, CatalogError> {
        self.write(Command::StartStream { id: id.clone() }).await
    }

    /// A scheduled stream that will not happen.
    pub async fn cancel(&self, id: &StreamId) -> Result<StreamRecord, CatalogError> {
        self.write(Command::SetStatus {
            id: id.clone(),
            status: StreamStatus::Cancelled,
            now: self.now(),
            fence: None,
        })
        .await
    }

    pub async fn delete(&self, id: &StreamId) -> Result<(), CatalogError> {
        match self
            .member
            .write(Command::DeleteStream { id: id.clone() })
            .await?
        {
            Response::Done => {
                tracing::info!(stream = %id, "stream deleted");
                Ok(())
            }
            Response::Rejected(r) => Err(rejected(r)),
            other => Err(CatalogError::Internal(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// The stream's restream destinations, oldest first (keys included: callers
    /// answer with `Destination`'s public fields only).
    pub async fn destinations(&self, id: &StreamId) -> Result<Vec<Destination>, CatalogError> {
        self.read(|s| {
            if !s.streams.contains_key(id) {
                return Err(CatalogError::NotFound(id.clone()));
            }
            let list = s.destinations.get(id);
            Ok(list
                .map(|d| d.list.values().cloned().collect())
                .unwrap_or_default())
        })
        .await?
    }

    /// Adds, changes, removes, starts or stops a destination: the destination as it is
    /// now (`None` once removed).
    pub async fn restream(
        &self,
        command: RestreamCommand,
    ) -> Result<Option<Destination>, CatalogError> {
        let stream = command.stream().clone();
        let what = match &command {
            RestreamCommand::Add { .. } => "added",
            RestreamCommand::Update { .. } => "changed",
            RestreamCommand::Remove { .. } => "removed",
            RestreamCommand::Run { running: true, .. } => "started",
            RestreamCommand::Run { running: false, .. } => "stopped",
        };
        match self.member.write(Command::Restream(command)).await? {
            Response::Destination(d) => {
                tracing::info!(%stream, destination = ?d.as_ref().map(|d| d.id), "restream destination {what}");
                Ok(d)
            }
            Response::Rejected(r) => Err(rejected(r)),
            other => Err(CatalogError::Internal(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// What the restream destinations of `id` are doing, asked of its origin over the
    /// mesh. `None` without a live origin or answer.
    pub async fn restream_statuses(&self, id: &StreamId) -> Option<Vec<DestinationStatus>> {
        let now = self.now();
        let (origin, addr) = self.member.read_local(|s| {
            let lease = s
                .leases
                .get(id)
                .filter(|l| l.is_live(now) && l.node != NO_NODE)?;
            let addr: std::net::SocketAddr = s.nodes.get(&lease.node)?.quic.parse().ok()?;
            Some((lease.node, addr))
        })?;
        self.mesh
            .restream_statuses(addr, origin, id.as_str())
            .await
            .ok()
    }

    /// The origin's viewer counts for `id` by node, asked over the mesh (also when the
    /// origin is this node: one code path). `None` without a live origin or answer.
    pub async fn viewers(&self, id: &StreamId, lease: Option<Lease>) -> Option<BTreeMap<u64, u64>> {
        let now = self.now();
        let origin = lease.filter(|l| l.is_live(now) && l.node != NO_NODE)?.node;
        let addr = self
            .member
            .read_local(|s| s.nodes.get(&origin).and_then(|n| n.quic.parse().ok()))?;
        self.mesh.viewers(addr, origin, id.as_str()).await.ok()
    }
}
