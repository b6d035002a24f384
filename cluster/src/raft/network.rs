//! Raft RPCs to peers over gRPC (tonic), authenticated with the cluster secret.
//! Every RPC carries openraft's deadline (`RPCOption::hard_ttl`).

use std::time::Duration;

use castmesh_proto::raft::v1::RaftPayload;
use castmesh_proto::raft::v1::raft_transport_client::RaftTransportClient;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::{TypeConfig, codec};
use crate::auth::BearerToken;
use crate::transport::{BadPeerAddress, Channels};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates one client per peer; connections are made lazily and re-made by tonic.
#[derive(Clone)]
pub struct Network {
    secret: BearerToken,
    channels: Channels,
}

impl Network {
    pub fn new(secret: BearerToken, channels: Channels) -> Self {
        Self { secret, channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let channel = self.channels.to(&node.addr, CONNECT_TIMEOUT);
        PeerClient {
            target,
            client: channel.map(|c| {
                RaftTransportClient::new(c).max_decoding_message_size(super::MAX_RPC_BYTES)
            }),
            secret: self.secret.clone(),
        }
    }
}

pub struct PeerClient {
    target: u64,
    client: Result<RaftTransportClient<Channel>, BadPeerAddress>,
    secret: BearerToken,
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        body: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::from(
                    openraft::AnyError::error(format!("bad peer address: {e}")),
                )));
            }
        };
        let mut request = tonic::Request::new(RaftPayload {
            payload: codec::encode(body),
        });
        request.set_timeout(option.hard_ttl());
        self.secret.attach(&mut request);
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            // Not listening (down, partitioned): openraft backs off before retrying.
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, E> = codec::decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
