//! `ClusterAdmin`: status, add/remove node, leadership transfer.

use castmesh_cluster::member::ClusterMember;
use castmesh_cluster::openraft::ServerState;
use castmesh_proto::admin::v1::cluster_admin_server::ClusterAdmin;
use castmesh_proto::admin::v1::{
    AddNodeRequest, ClusterStatus, Member, RemoveNodeRequest, Role, StatusRequest,
    TransferLeaderRequest,
};
use tonic::{Request, Response, Status};

use super::cluster_status;
use crate::cluster::probe::LastSeen;

pub struct ClusterService {
    pub member: ClusterMember,
    pub last_seen: LastSeen,
}

impl ClusterService {
    fn status(&self) -> ClusterStatus {
        let m = self.member.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let records = self.member.read_local(|s| s.nodes.clone());
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let role = if m.current_leader == Some(*id) {
                    Role::Leader
                } else if membership.learner_ids().any(|l| l == *id) {
                    Role::Learner
                } else {
                    Role::Follower
                };
                let record = records.get(id);
                Member {
                    id: *id,
                    grpc_address: node.addr.clone(),
                    role: role.into(),
                    last_seen_ms_ago: if *id == m.id {
                        Some(0)
                    } else {
                        self.last_seen
                            .get(*id)
                            .map(|t| t.elapsed().as_millis() as u64)
                    },
                    rtmp_address: record.map(|r| r.rtmp.clone()).unwrap_or_default(),
                    http_address: record.map(|r| r.http.clone()).unwrap_or_default(),
                    labels: record
                        .map(|r| r.labels.clone().into_iter().collect())
                        .unwrap_or_default(),
                    matched_index: m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(id).copied().flatten())
                        .map(|l| l.index)
                        .or(if *id == m.id && m.state == ServerState::Leader {
                            m.last_log_index
                        } else {
                            None
                        }),
                }
            })
            .collect();
        ClusterStatus {
            node_id: m.id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            members,
        }
    }
}

#[tonic::async_trait]
impl ClusterAdmin for ClusterService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<ClusterStatus>, Status> {
        Ok(Response::new(self.status()))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let r = request.into_inner();
        if r.id == 0 {
            return Err(Status::invalid_argument("node ids start at 1"));
        }
        let port_ok = r
            .grpc_address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(Status::invalid_argument(format!(
                "grpc_address must be HOST:PORT, got {:?}",
                r.grpc_address
            )));
        }
        tracing::info!(node = r.id, addr = %r.grpc_address, learner_only = r.learner_only, "adding node");
        self.member
            .add_node(r.id, r.grpc_address, r.learner_only)
            .await
            .map_err(cluster_status)?;
        Ok(Response::new(self.status()))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let id = request.into_inner().id;
        tracing::info!(node = id, "removing node");
        self.member.remove_node(id).await.map_err(cluster_status)?;
        Ok(Response::new(self.status()))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let to = request.into_inner().to;
        tracing::info!(to, "transferring leadership");
        self.member
            .transfer_leader(to)
            .await
            .map_err(cluster_status)?;
        Ok(Response::new(self.status()))
    }
}
