//! `StreamAdmin`'s restream destinations: `platform::catalog` does the work (shared
//! with the REST API), the statuses come from the stream's origin over the mesh; this
//! file translates. A destination's key goes in, never out.

use std::collections::BTreeMap;

use castmesh_cluster::StreamId;
use castmesh_cluster::restream::{Destination, DestinationChange, Platform, RestreamCommand};
use castmesh_proto::admin::v1 as pb;
use tonic::Status;

use super::streams::{StreamService, catalog_status, stream_id};
use crate::stream::restream::status::{Snapshot, State};

fn platform(name: &str) -> Result<Platform, Status> {
    Platform::named(name).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown platform {name:?}: youtube, twitch, facebook or custom"
        ))
    })
}

fn status(s: Option<&Snapshot>) -> pb::DestinationStatus {
    let Some(s) = s else {
        return pb::DestinationStatus {
            state: State::Idle.name().into(),
            ..Default::default()
        };
    };
    pb::DestinationStatus {
        state: s.state.name().into(),
        retry_at_ms: s.retry_at_ms,
        last_error: s.last_error.clone(),
        last_error_at_ms: s.last_error_at_ms,
        bytes_sent: s.bytes_sent,
        bitrate_bps: s.bitrate_bps,
        reconnects: s.reconnects,
        live_since_ms: s.live_since_ms,
        dropped_frames: s.dropped_frames,
    }
}

fn to_pb(d: &Destination, statuses: &BTreeMap<u64, Snapshot>) -> pb::Destination {
    pb::Destination {
        id: d.id,
        name: d.name.clone(),
        platform: d.platform.name().into(),
        server_url: d.url.clone(),
        key_set: !d.key.is_empty(),
        enabled: d.enabled,
        wanted: d.wanted(),
        created_at_ms: d.created_at,
        status: Some(status(statuses.get(&d.id))),
    }
}

impl StreamService {
    async fn statuses(&self, id: &StreamId) -> BTreeMap<u64, Snapshot> {
        let asked = self.catalog.restream_statuses(id).await;
        Snapshot::all_from_wire(asked.unwrap_or_default())
    }

    pub(super) async fn destination_list(
        &self,
        r: pb::ListDestinationsRequest,
    ) -> Result<pb::ListDestinationsReply, Status> {
        let id = stream_id(&r.stream)?;
        let list = self
            .catalog
            .destinations(&id)
            .await
            .map_err(catalog_status)?;
        let statuses = self.statuses(&id).await;
        Ok(pb::ListDestinationsReply {
            destinations: list.iter().map(|d| to_pb(d, &statuses)).collect(),
        })
    }

    /// Carries `command` out: the destination as it is now.
    async fn changed(&self, command: RestreamCommand) -> Result<pb::Destination, Status> {
        let id = command.stream().clone();
        let now = self
            .catalog
            .restream(command)
            .await
            .map_err(catalog_status)?
            .ok_or_else(|| Status::not_found("no such destination"))?;
        Ok(to_pb(&now, &self.statuses(&id).await))
    }

    pub(super) async fn destination_add(
        &self,
        r: pb::AddDestinationRequest,
    ) -> Result<pb::Destination, Status> {
        let command = RestreamCommand::Add {
            stream: stream_id(&r.stream)?,
            change: DestinationChange {
                name: Some(r.name),
                platform: Some(platform(&r.platform)?),
                url: r.server_url,
                key: Some(r.key),
                enabled: Some(r.enabled),
            },
            max: self.config.restream.max_destinations,
            now: self.catalog.now(),
        };
        self.changed(command).await
    }

    pub(super) async fn destination_update(
        &self,
        r: pb::UpdateDestinationRequest,
    ) -> Result<pb::Destination, Status> {
        let command = RestreamCommand::Update {
            stream: stream_id(&r.stream)?,
            id: r.id,
            change: DestinationChange {
                name: r.name,
                platform: r.platform.as_deref().map(platform).transpose()?,
                url: r.server_url,
                key: r.key,
                enabled: r.enabled,
            },
        };
        self.changed(command).await
    }

    pub(super) async fn destination_remove(
        &self,
        r: pb::RemoveDestinationRequest,
    ) -> Result<(), Status> {
        let command = RestreamCommand::Remove {
            stream: stream_id(&r.stream)?,
            id: r.id,
        };
        self.catalog
            .restream(command)
            .await
            .map_err(catalog_status)?;
        Ok(())
    }

    pub(super) async fn destination_run(
        &self,
        r: pb::RunDestinationRequest,
    ) -> Result<pb::Destination, Status> {
        let command = RestreamCommand::Run {
            stream: stream_id(&r.stream)?,
            id: r.id,
            running: r.running,
        };
        self.changed(command).await
    }
}
