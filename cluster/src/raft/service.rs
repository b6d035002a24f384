//! The server side of Raft RPCs: the `RaftTransport` gRPC service a node mounts.

use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use tonic::service::interceptor::InterceptedService;

use super::{Raft, codec};
use crate::auth::BearerToken;

pub struct RaftService {
    raft: Raft,
}

impl RaftService {
    /// The service behind the cluster secret, checked before the body is read.
    pub fn server(
        raft: Raft,
        secret: BearerToken,
    ) -> InterceptedService<RaftTransportServer<Self>, BearerToken> {
        InterceptedService::new(
            RaftTransportServer::new(Self { raft }).max_decoding_message_size(super::MAX_RPC_BYTES),
            secret,
        )
    }

    fn decode<T: DeserializeOwned>(&self, request: Request<RaftPayload>) -> Result<T, Status> {
        codec::decode(&request.into_inner().payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable Raft message: {e}")))
    }
}

/// Raft's own errors travel inside the payload, for the caller's openraft to handle.
fn reply<T: Serialize, E: Serialize>(
    result: Result<T, E>,
) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(RaftPayload {
        payload: codec::encode(&result),
    }))
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(request)?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(request)?;
        reply(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(request)?;
        reply(self.raft.install_snapshot(rpc).await)
    }
}
