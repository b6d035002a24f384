//! `StreamAdmin`: create streams (the key is shown once), list, show, update, rotate
//! keys, stop and start, delete, restream destinations (`destinations`): `platform::catalog` does the work (shared with the
//! REST API); this file translates. Reads are linearizable; writes go through the
//! leader.

use std::sync::Arc;

use castmesh_cluster::model::{Lease, StreamRecord, StreamStatus};
use castmesh_cluster::{StreamId, StreamKey};
use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::stream_admin_server::StreamAdmin;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::platform::catalog::{Catalog, CatalogError, NewStream, StreamUpdate};

pub struct StreamService {
    pub catalog: Arc<Catalog>,
    pub config: Arc<Config>,
}

pub fn catalog_status(e: CatalogError) -> Status {
    let message = e.to_string();
    match e {
        CatalogError::Invalid(_) => Status::invalid_argument(message),
        CatalogError::NotFound(_) | CatalogError::NoDestination(_) => Status::not_found(message),
        CatalogError::Exists(_) => Status::already_exists(message),
        CatalogError::Conflict(_) => Status::failed_precondition(message),
        CatalogError::Unavailable(_) => Status::unavailable(message),
        CatalogError::Internal(_) => Status::internal(message),
    }
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

pub(super) fn stream_id(s: &str) -> Result<StreamId, Status> {
    StreamId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

impl StreamService {
    fn host(&self) -> String {
        self.config.cluster.advertised_host()
    }

    fn to_pb(&self, r: &StreamRecord, lease: Option<Lease>) -> pb::Stream {
        let now = self.catalog.now();
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
            description: r.description.clone(),
            owner_id: r.owner_id,
            accepting: r.accepting,
            ..Default::default()
        }
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

    /// The account an email names, for operators assigning owners.
    async fn user_by_email(&self, email: &str) -> Result<Option<u64>, Status> {
        self.catalog
            .read(|s| s.accounts.user_by_email(email).map(|u| u.id))
            .await
            .map_err(catalog_status)
    }
}

#[tonic::async_trait]
impl StreamAdmin for StreamService {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Result<Response<pb::CreatedStream>, Status> {
        let r = request.into_inner();
        let owner_id = match r.owner.trim() {
            "" => None,
            email => self.user_by_email(email).await?,
        };
        let (record, key) = self
            .catalog
            .create(NewStream {
                id: Some(r.id),
                title: r.title,
                description: r.description,
                owner_label: r.owner,
                owner_id,
                scheduled_at: r.scheduled_at_ms,
            })
            .await
            .map_err(catalog_status)?;
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
            .catalog
            .list(|r| wanted.is_empty() || wanted.contains(&r.status))
            .await
            .map_err(catalog_status)?;
        Ok(Response::new(pb::ListStreamsReply {
            streams: found.iter().map(|(r, l)| self.to_pb(r, *l)).collect(),
        }))
    }

    async fn get_stream(
        &self,
        request: Request<pb::GetStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let (record, lease) = self.catalog.get(&id).await.map_err(catalog_status)?;
        let mut stream = self.to_pb(&record, lease);
        if let Some(by_node) = self.catalog.viewers(&id, lease).await {
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
        let owner_id = match r.owner_email.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(email) => Some(Some(self.user_by_email(email).await?.ok_or_else(|| {
                Status::invalid_argument(format!("no account with the email {email}"))
            })?)),
        };
        let update = StreamUpdate {
            title: r.title,
            description: r.description,
            scheduled_at,
            owner_id,
        };
        self.catalog
            .update(&id, update)
            .await
            .map_err(catalog_status)?;
        let (record, lease) = self.catalog.get(&id).await.map_err(catalog_status)?;
        Ok(Response::new(self.to_pb(&record, lease)))
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::CreatedStream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let (record, key) = self.catalog.rotate_key(&id).await.map_err(catalog_status)?;
        Ok(Response::new(self.created(&record, &key)))
    }

    async fn end_stream(
        &self,
        request: Request<pb::EndStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let record = self.catalog.stop(&id).await.map_err(catalog_status)?;
        Ok(Response::new(self.to_pb(&record, None)))
    }

    async fn start_stream(
        &self,
        request: Request<pb::StartStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        let record = self.catalog.start(&id).await.map_err(catalog_status)?;
        Ok(Response::new(self.to_pb(&record, None)))
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamReply>, Status> {
        let id = stream_id(&request.into_inner().id)?;
        self.catalog.delete(&id).await.map_err(catalog_status)?;
        Ok(Response::new(pb::DeleteStreamReply {}))
    }

    async fn list_destinations(
        &self,
        request: Request<pb::ListDestinationsRequest>,
    ) -> Result<Response<pb::ListDestinationsReply>, Status> {
        Ok(Response::new(
            self.destination_list(request.into_inner()).await?,
        ))
    }

    async fn add_destination(
        &self,
        request: Request<pb::AddDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        Ok(Response::new(
            self.destination_add(request.into_inner()).await?,
        ))
    }

    async fn update_destination(
        &self,
        request: Request<pb::UpdateDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        Ok(Response::new(
            self.destination_update(request.into_inner()).await?,
        ))
    }

    async fn remove_destination(
        &self,
        request: Request<pb::RemoveDestinationRequest>,
    ) -> Result<Response<pb::RemoveDestinationReply>, Status> {
        self.destination_remove(request.into_inner()).await?;
        Ok(Response::new(pb::RemoveDestinationReply {}))
    }

    async fn run_destination(
        &self,
        request: Request<pb::RunDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        Ok(Response::new(
            self.destination_run(request.into_inner()).await?,
        ))
    }
}
