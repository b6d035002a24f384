//! This node's membership in the cluster: it opens the stores, runs Raft, serves the
//! node-to-node gRPC services, and offers what the rest of castmesh needs from any
//! node, leader or not: linearizable reads and writes.
//!
//! - `write` proposes on the leader: directly if this node leads, otherwise through the
//!   leader's `ClusterInternal.Write`, retrying while an election is under way.
//! - `read` is linearizable: it gets a read index (the leader confirms its leadership
//!   with a quorum, openraft's `ensure_linearizable`), waits until this node has
//!   applied up to it, then reads the local state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castmesh_proto::cluster::v1::cluster_internal_client::ClusterInternalClient;
use castmesh_proto::cluster::v1::cluster_internal_server::{
    ClusterInternal, ClusterInternalServer,
};
use castmesh_proto::cluster::v1::{
    ElectReply, ElectRequest, Payload, ReadIndexReply, ReadIndexRequest,
};
use castmesh_proto::raft::v1::raft_transport_server::RaftTransportServer;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Config};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::auth::BearerToken;
use crate::command::{Command, Response};
use crate::membership::{Local, MembershipChange};
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::service::RaftService;
use crate::raft::state_machine::{SharedState, StateMachineStore};
use crate::raft::store::{Batch, Durability, Family, Store};
use crate::raft::{Raft, codec};
use crate::sabotage::{self, Bug};
use crate::state::ClusterState;
use crate::transport::Channels;

/// Why a member cannot take its share of work (`/readyz` says it in these words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("Raft stopped: {0}")]
    RaftStopped(String),
    #[error("this node is not a member of the cluster")]
    NotAMember,
    #[error("no Raft leader known")]
    NoLeader,
    #[error("storage does not take writes: {0}")]
    StorageRefusesWrites(String),
    #[error("storage probe failed: {0}")]
    StorageProbeFailed(String),
}

/// How long `write` and `read` keep trying (elections, a leader that just died).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// One forwarded request/response; a paused or partitioned leader must not hold a
/// caller longer than this before it retries.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// A learner joining may need a snapshot of the whole state: membership changes wait
/// for that catch-up.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

pub struct MemberConfig {
    pub id: u64,
    pub store: Arc<dyn Store>,
    pub channels: Channels,
    pub secret: BearerToken,
    pub raft: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the cluster did not answer within {0:?} (no leader, or no quorum)")]
    Unavailable(Duration),
    #[error("cannot open cluster storage: {0}")]
    Storage(String),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("this node's Raft stopped: {0}")]
    Stopped(String),
    #[error("{0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct ClusterMember {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    raft: Raft,
    /// For the readiness probe's synced write.
    store: Arc<dyn Store>,
    state: SharedState,
    secret: BearerToken,
    channels: Channels,
    peers: Mutex<HashMap<String, ClusterInternalClient<Channel>>>,
}

/// A key of its own in the meta table, written by the readiness probe.
const READINESS_PROBE_KEY: &[u8] = b"readiness-probe";

/// A failure on the leader, carried back to the follower that forwarded the call so
/// that it maps to the same error (and gRPC code) as if it had happened locally.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum ForwardedError {
    /// Worth retrying: no quorum, a timeout, Raft stopping.
    Unavailable(String),
    /// Not allowed as asked.
    Refused(String),
}

impl From<ClusterError> for ForwardedError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Refused(m) => ForwardedError::Refused(m),
            other => ForwardedError::Unavailable(other.to_string()),
        }
    }
}

impl From<ForwardedError> for ClusterError {
    fn from(e: ForwardedError) -> Self {
        match e {
            ForwardedError::Refused(m) => ClusterError::Refused(m),
            ForwardedError::Unavailable(m) => ClusterError::Stopped(m),
        }
    }
}

/// Payload RPCs a follower forwards to the leader.
#[derive(Clone, Copy)]
pub(crate) enum Forward {
    Write,
    ChangeMembership,
}

/// What one attempt at an operation gave.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Try again after a pause (no leader yet, leader unreachable, leadership moved).
    Retry,
}

impl ClusterMember {
    pub async fn open(config: MemberConfig) -> Result<Self, ClusterError> {
        let raft_config = openraft::Config {
            snapshot_max_chunk_size: crate::raft::SNAPSHOT_CHUNK_BYTES,
            ..config.raft
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let sm = StateMachineStore::open(config.store.clone())
            .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let state = sm.shared();
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(config.secret.clone(), config.channels.clone()),
            LogStore::new(config.store.clone()),
            sm,
        )
        .await
        .map_err(|e| ClusterError::Stopped(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                id: config.id,
                raft,
                store: config.store,
                state,
                secret: config.secret,
                channels: config.channels,
                peers: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether this member can do its part, and if not, why: Raft running (a storage
    /// error stops it for good), this node in the current membership, a leader known,
    /// and the store taking a synced write (a full or read-only disk).
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        if let Err(e) = &metrics.running_state {
            return Err(NotReady::RaftStopped(e.to_string()));
        }
        if !metrics
            .membership_config
            .membership()
            .nodes()
            .any(|(id, _)| *id == self.inner.id)
        {
            return Err(NotReady::NotAMember);
        }
        if metrics.current_leader.is_none() {
            return Err(NotReady::NoLeader);
        }
        let store = self.inner.store.clone();
        let probe = tokio::task::spawn_blocking(move || {
            let mut batch = Batch::default();
            batch.put(Family::Meta, READINESS_PROBE_KEY, Vec::new());
            store.write(batch, Durability::Synced)
        })
        .await;
        match probe {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NotReady::StorageRefusesWrites(e.to_string())),
            Err(e) => Err(NotReady::StorageProbeFailed(e.to_string())),
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn attach_secret<T>(&self, request: &mut Request<T>) {
        self.inner.secret.attach(request);
    }

    /// The gRPC services this member serves to its peers.
    pub fn services(
        &self,
    ) -> (
        InterceptedService<RaftTransportServer<RaftService>, BearerToken>,
        InterceptedService<ClusterInternalServer<InternalService>, BearerToken>,
    ) {
        (
            RaftService::server(self.inner.raft.clone(), self.inner.secret.clone()),
            ClusterInternalServer::with_interceptor(
                InternalService {
                    member: self.clone(),
                },
                self.inner.secret.clone(),
            ),
        )
    }

    /// Proposes `command` and returns what applying it answered. Attempts are
    /// retried when an answer is lost, so the command goes as one `Command::Once`:
    /// a retry of an attempt that did commit has no second effect (found by the
    /// simulation: a title set twice around another client's write).
    pub async fn write(&self, command: Command) -> Result<Response, ClusterError> {
        let command = Command::Once {
            id: rand08::RngCore::next_u64(&mut crate::raft::runtime::ThreadRng),
            command: Box::new(command),
        };
        self.retrying(|| self.write_once(command.clone())).await
    }

    /// Reads the state after every write acknowledged before this call started.
    pub async fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> Result<T, ClusterError> {
        if sabotage::active(Bug::StaleReads) {
            return Ok(self.read_local(f));
        }
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let index = self.retrying(|| self.read_index_once()).await?;
        if let Some(index) = index {
            let wait = deadline.saturating_duration_since(Instant::now());
            self.inner
                .raft
                .wait(Some(wait))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|_| ClusterError::Unavailable(OPERATION_TIMEOUT))?;
        }
        let applied = self.inner.state.read().unwrap_or_else(|e| e.into_inner());
        Ok(f(&applied.state))
    }

    /// Reads this node's applied state as it is, without asking the leader: for
    /// diagnostics that must work without a quorum.
    pub fn read_local<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        let applied = self.inner.state.read().unwrap_or_else(|e| e.into_inner());
        f(&applied.state)
    }

    pub(crate) async fn retrying<T, F, Fut>(&self, mut once: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Attempt<T>, ClusterError>>,
    {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        loop {
            if let Attempt::Done(v) = once().await? {
                return Ok(v);
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(ClusterError::Unavailable(OPERATION_TIMEOUT));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    pub(crate) fn peer(&self, node: &BasicNode) -> Option<ClusterInternalClient<Channel>> {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = peers.get(&node.addr) {
            return Some(c.clone());
        }
        let channel = self
            .inner
            .channels
            .to(&node.addr, Duration::from_secs(1))
            .ok()?;
        let client = ClusterInternalClient::new(channel);
        peers.insert(node.addr.clone(), client.clone());
        Some(client)
    }

    pub(crate) fn stopped(e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Stopped(e.to_string())
    }

    async fn write_once(&self, command: Command) -> Result<Attempt<Response>, ClusterError> {
        let leader = match self.inner.raft.client_write(command.clone()).await {
            Ok(r) => return Ok(Attempt::Done(r.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_node,
            Err(RaftError::APIError(e)) => return Err(Self::stopped(e)),
            Err(RaftError::Fatal(e)) => return Err(Self::stopped(e)),
        };
        let reply = self
            .forward(leader, Forward::Write, codec::encode(&command))
            .await?;
        let Attempt::Done(bytes) = reply else {
            return Ok(Attempt::Retry);
        };
        let result: Result<Response, String> = codec::decode(&bytes).map_err(Self::stopped)?;
        result.map(Attempt::Done).map_err(ClusterError::Stopped)
    }

    /// Sends a payload RPC to the leader; `Retry` while there is no reachable leader.
    pub(crate) async fn forward(
        &self,
        leader: Option<BasicNode>,
        rpc: Forward,
        payload: Vec<u8>,
    ) -> Result<Attempt<Vec<u8>>, ClusterError> {
        let Some(mut client) = leader.as_ref().and_then(|n| self.peer(n)) else {
            return Ok(Attempt::Retry);
        };
        let mut request = Request::new(Payload { payload });
        self.inner.secret.attach(&mut request);
        let reply = match rpc {
            Forward::Write => tokio::time::timeout(RPC_TIMEOUT, client.write(request)).await,
            Forward::ChangeMembership => {
                tokio::time::timeout(MEMBERSHIP_TIMEOUT, client.change_membership(request)).await
            }
        };
        match reply.unwrap_or_else(|_| Err(Status::deadline_exceeded("leader did not answer"))) {
            Ok(reply) => Ok(Attempt::Done(reply.into_inner().payload)),
            // A configuration problem, not a transient one: say so.
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                Err(ClusterError::Refused(format!(
                    "the leader refused this node's cluster secret: {}",
                    status.message()
                )))
            }
            Err(_) => Ok(Attempt::Retry),
        }
    }

    async fn read_index_once(&self) -> Result<Attempt<Option<u64>>, ClusterError> {
        let leader = match self.inner.raft.ensure_linearizable().await {
            Ok(log_id) => return Ok(Attempt::Done(log_id.map(|l| l.index))),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => f.leader_node,
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                return Ok(Attempt::Retry);
            }
            Err(RaftError::Fatal(e)) => return Err(Self::stopped(e)),
        };
        let Some(mut client) = leader.as_ref().and_then(|n| self.peer(n)) else {
            return Ok(Attempt::Retry);
        };
        let mut request = Request::new(ReadIndexRequest {});
        self.inner.secret.attach(&mut request);
        match tokio::time::timeout(RPC_TIMEOUT, client.read_index(request)).await {
            Ok(Ok(reply)) => Ok(Attempt::Done(reply.into_inner().index)),
            _ => Ok(Attempt::Retry),
        }
    }
}

/// The leader's side of forwarded writes and read-index requests.
pub struct InternalService {
    member: ClusterMember,
}

fn not_leader() -> Status {
    Status::unavailable("not the leader; retry with the current leader")
}

#[tonic::async_trait]
impl ClusterInternal for InternalService {
    async fn write(&self, request: Request<Payload>) -> Result<tonic::Response<Payload>, Status> {
        let command: Command = codec::decode(&request.into_inner().payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        // Only proposes locally: a forwarded write is never forwarded again.
        let result = match self.member.inner.raft.client_write(command).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                return Err(not_leader());
            }
            // This node's Raft is shutting down: the caller retries elsewhere.
            Err(RaftError::Fatal(e)) => return Err(Status::unavailable(e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        Ok(tonic::Response::new(Payload {
            payload: codec::encode(&result),
        }))
    }

    async fn read_index(
        &self,
        _request: Request<ReadIndexRequest>,
    ) -> Result<tonic::Response<ReadIndexReply>, Status> {
        match self.member.inner.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(tonic::Response::new(ReadIndexReply {
                index: log_id.map(|l| l.index),
            })),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(not_leader()),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn change_membership(
        &self,
        request: Request<Payload>,
    ) -> Result<tonic::Response<Payload>, Status> {
        let change: MembershipChange = codec::decode(&request.into_inner().payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable change: {e}")))?;
        let result = match self.member.change_locally(&change).await {
            Ok(Local::Done) => Ok(()),
            Ok(Local::NotLeader(_)) => return Err(not_leader()),
            Ok(Local::Busy) => {
                return Err(Status::unavailable(
                    "the leader is busy with another membership change or a leadership transfer; retry",
                ));
            }
            Err(e) => Err(ForwardedError::from(e)),
        };
        Ok(tonic::Response::new(Payload {
            payload: codec::encode(&result),
        }))
    }

    async fn elect(
        &self,
        _request: Request<ElectRequest>,
    ) -> Result<tonic::Response<ElectReply>, Status> {
        self.member
            .inner
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(ElectReply {}))
    }
}
