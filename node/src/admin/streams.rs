//! `StreamAdmin`: create streams (the key is shown once), list, show, update, rotate
//! keys, end, delete. Reads are linearizable; writes go through the leader.

use std::sync::Arc;

use castmesh_cluster::command::{Command, Response as Applied};
use castmesh_cluster::keys;
use castmesh_cluster::member::ClusterMember;
use castmesh_cluster::model::{Lease, StreamRecord, StreamStatus};
use castmesh_cluster::{ClusterState, StreamId, StreamKey};
use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::stream_admin_server::StreamAdmin;
use tonic::{Request, Response, Status};

use super::{cluster_status, rejection_status};
use crate::config::Config;
use crate::mesh::Mesh;
use crate::seams::Seams;
use castmesh_cluster::state::NO_NODE;

const MAX_TITLE: usize = 200;
const MAX_OWNER: usize = 100;

pub struct StreamService {
    pub member: ClusterMember,
    pub config: Arc<Config>,
    pub seams: Seams,
    /// Asks a stream's origin for its viewer counts.
    pub mesh: Arc<Mesh>,
}

fn status_to_pb(s: StreamStatus) -> pb::StreamStatus {
    match s {
        StreamStatus::Scheduled => pb::StreamStatus::Scheduled,
        StreamStatus::Live => pb::StreamStatus::Live,
        StreamStatus::Ended => pb::StreamStatus::Ended,
        StreamStatus::Archived => pb::StreamStatus::Archived,
        StreamStatus::Cancelled => pb::StreamStatus::Cancelled,
    }
}

fn status_from_pb(s: i32) -> Result<StreamStatus, Status> {
    match pb::StreamStatus::try_from(s) {
        Ok(pb::StreamStatus::Scheduled) => Ok(StreamStatus::Scheduled),
        Ok(pb::StreamStatus::Live) => Ok(StreamStatus::Live),
        Ok(pb::StreamStatus::Ended) => Ok(StreamStatus::Ended),
        Ok(pb::StreamStatus::Archived) => Ok(StreamStatus::Archived),
        Ok(pb::StreamStatus::Cancelled) => Ok(StreamStatus::Cancelled),
        _ => Err(Status::invalid_argument(format!("unknown status {s}"))),
    }
}

fn stream_id(s: &str) -> Result<StreamId, Status> {
    StreamId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn text(field: &str, value: String, max: usize) -> Result<String, Status> {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{field} must be at most {max} characters without control characters"
        )));
    }
    Ok(value)
}

impl StreamService {
    fn host(&self) -> String {
        self.config.cluster.advertised_host()
    }

    fn to_pb(&self, r: &StreamRecord, lease: Option<Lease>) -> pb::Stream {
        let now = self.seams.clock.now_ms();
        let origin = lease.filter(|l| l.is_live(now));
        pb::Stream {
            id: r.id.to_string(),
            title: r.title.clone(),
            owner: r.owner.clone(),
            status: status_to_pb(r.status).into(),
            created_at_ms: r.created_at,
            scheduled_at_ms: r.scheduled_at,
            started_at_ms: r.started_at,
            ended_at_ms: r.ended_at,
            origin_node: origin.map(|l| l.node),
            origin_epoch: origin.map(|l| l.epoch),
            play_url: format!(
                "http://{}:{}/hls/{}/index.m3u8",
                self.host(),
                self.config.http.listen.port(),
                r.id
            ),
            ..Default::default()
        }
    }

    /// The origin's viewer counts for `id`, asked over the mesh (also when the origin
    /// is this node: one code path).
    async fn viewers(
        &self,
        id: &StreamId,
        origin: Option<u64>,
    ) -> Option<std::collections::BTreeMap<u64, u64>> {
        let origin = origin.filter(|n| *n != NO_NODE)?;
        let addr = self
            .member
            .read_local(|s| s.nodes.get(&origin).and_then(|n| n.quic.parse().ok()))?;
        self.mesh.viewers(addr, origin, id.as_str()).await.ok()
    }

    fn created(&self, r: &StreamRecord, key: &StreamKey) -> pb::CreatedStream {
        pb::CreatedStream {
            stream: Some(self.to_pb(r, None)),
            key: key.expose().to_string(),
            rtmp_url: format!(
                "rtmp://{}:{}/{}/{}",
                self.host(),
                self.config.rtmp.listen.port(),
                self.config.rtmp.app,
                key.expose()
            ),
        }
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

    async fn write(&self, command: Command) -> Result<StreamRecord, Status> {
        match self.member.write(command).await.map_err(cluster_status)? {
            Applied::Stream(r) => Ok(r),
            Applied::Rejected(r) => Err(rejection_status(r)),
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> Result<T, Status> {
        self.member.read(f).await.map_err(cluster_status)
    }

    async fn get(&self, id: &StreamId) -> Result<pb::Stream, Status> {
        let found = self
            .read(|s| {
                s.streams
                    .get(id)
                    .map(|r| (r.clone(), s.leases.get(id).copied()))
            })
            .await?;
        let (record, lease) = found.ok_or_else(|| Status::not_found(format!("no stream {id}")))?;
        Ok(self.to_pb(&record, lease))
    }
}

#[tonic::async_trait]
impl StreamAdmin for StreamService {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Result<Response<pb::CreatedStream>, Status> {
        let r = request.into_inner();
        let id = if r.id.is_empty() {
            self.new_id()
        } else {
            stream_id(&r.id)?
        };
        let key = self.new_key();
        let key_hash = keys::hash(&key);
        let created = self
            .write(Command::CreateStream {
                id: id.clone(),
                title: text("title", r.title, MAX_TITLE)?,
                owner: text("owner", r.owner, MAX_OWNER)?,
                key_hash,
                scheduled_at: r.scheduled_at_ms,
                now: self.seams.clock.now_ms(),
            })
            .await;
        let record = match created {
            // A forwarded write that timed out after committing is retried and then
            // finds its own stream: same key hash, so it is this call's stream.
            Err(status) if status.code() == tonic::Code::AlreadyExists => self
                .read(|s| {
                    s.streams
                        .get(&id)
                        .filter(|r| r.key_hash == key_hash)
                        .cloned()
                })
                .await?
                .ok_or(status)?,
            other => other?,
        };
        tracing::info!(stream = %record.id, "stream created");
        Ok(Response::new(self.created(&record, &key)))
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsReply>, Status> {
        let wanted = request
            .into_inner()
            .status
            .into_iter()
            .map(status_from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        let found = self
            .read(|s| {
                s.streams
                    .values()
                    .filter(|r| wanted.is_empty() || wanted.contains(&r.status))
                    .map(|r| (r.clone(), s.leases.get(&r.id).copied()))
                    .collect::<Vec<_>>()
            })
            .await?;
        Ok(Response::new(pb::ListStreamsReply {
            streams: found.iter().map(|(r, l)| self.to_pb(r, *l)).collect(),
        }))
    }

    async fn get_stream(
        &self,
        request: Request<pb::GetStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let mut stream = self.get(&id).await?;
        if let Some(by_node) = self.viewers(&id, stream.origin_node).await {
            stream.viewers_total = by_node.values().sum();
            stream.viewers_by_node = by_node.into_iter().collect();
        }
        Ok(Response::new(stream))
    }

    async fn update_stream(
        &self,
        request: Request<pb::UpdateStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let r = request.into_inner();
        let id = stream_id(&r.id)?;
        let scheduled_at = match (r.scheduled_at_ms, r.clear_schedule) {
            (Some(at), _) => Some(Some(at)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let title = r.title.map(|t| text("title", t, MAX_TITLE)).transpose()?;
        self.write(Command::UpdateStream {
            id: id.clone(),
            title,
            scheduled_at,
        })
        .await?;
        Ok(Response::new(self.get(&id).await?))
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::CreatedStream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let key = self.new_key();
        let record = self
            .write(Command::RotateKey {
                id,
                key_hash: keys::hash(&key),
            })
            .await?;
        tracing::info!(stream = %record.id, "stream key rotated");
        Ok(Response::new(self.created(&record, &key)))
    }

    async fn end_stream(
        &self,
        request: Request<pb::EndStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let record = self
            .write(Command::EndStream {
                id: id.clone(),
                now: self.seams.clock.now_ms(),
            })
            .await?;
        tracing::info!(stream = %id, "stream ended by an operator");
        Ok(Response::new(self.to_pb(&record, None)))
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamReply>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        match self
            .member
            .write(Command::DeleteStream { id: id.clone() })
            .await
            .map_err(cluster_status)?
        {
            Applied::Done => {
                tracing::info!(stream = %id, "stream deleted");
                Ok(Response::new(pb::DeleteStreamReply {}))
            }
            Applied::Rejected(r) => Err(rejection_status(r)),
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }
}
