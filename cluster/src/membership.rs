//! Raft membership changes (add, promote, remove, transfer leadership), run on the
//! leader wherever they are asked for: a follower forwards them through
//! `ClusterInternal.ChangeMembership`.

use std::collections::BTreeSet;
use std::time::Duration;

use castmesh_proto::cluster::v1::ElectRequest;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tonic::Request;

use crate::member::{Attempt, ClusterError, ClusterMember, Forward, ForwardedError};
use crate::raft::codec;

/// How long a leadership transfer may take: the old leader stops heartbeats, the
/// followers' leader lease (election_timeout_max) runs out, then the target wins.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
const ELECT_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a learner and waits until it has caught up with the log.
    AddLearner {
        id: u64,
        addr: String,
    },
    /// Makes a caught-up learner a voter.
    Promote {
        id: u64,
    },
    Remove {
        id: u64,
    },
    TransferLeader {
        to: u64,
    },
}

/// Turns the leader's heartbeats back on when dropped.
struct HeartbeatsBack<'a>(&'a crate::raft::Raft);

impl Drop for HeartbeatsBack<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().heartbeat(true);
    }
}

/// What running a change on this node gave.
pub(crate) enum Local {
    Done,
    /// Not the leader; here is who is, if known.
    NotLeader(Option<BasicNode>),
    /// Another membership change is still being committed.
    Busy,
}

impl ClusterMember {
    /// Adds node `id` (serving Raft gRPC at `addr`) as a learner, waits for it to catch
    /// up, then makes it a voter unless `learner_only`.
    pub async fn add_node(
        &self,
        id: u64,
        addr: String,
        learner_only: bool,
    ) -> Result<(), ClusterError> {
        self.change(MembershipChange::AddLearner { id, addr })
            .await?;
        if !learner_only {
            self.change(MembershipChange::Promote { id }).await?;
        }
        Ok(())
    }

    /// Removes node `id`; if it leads, leadership moves to another voter first.
    pub async fn remove_node(&self, id: u64) -> Result<(), ClusterError> {
        let metrics = self.raft().metrics().borrow().clone();
        if metrics.current_leader == Some(id) {
            let other = metrics
                .membership_config
                .membership()
                .voter_ids()
                .find(|v| *v != id)
                .ok_or_else(|| {
                    ClusterError::Refused(format!("node {id} is the only voter; add another first"))
                })?;
            self.transfer_leader(other).await?;
        }
        self.change(MembershipChange::Remove { id }).await
    }

    pub async fn transfer_leader(&self, to: u64) -> Result<(), ClusterError> {
        self.change(MembershipChange::TransferLeader { to }).await
    }

    async fn change(&self, change: MembershipChange) -> Result<(), ClusterError> {
        self.retrying(|| self.change_once(&change)).await
    }

    async fn change_once(&self, change: &MembershipChange) -> Result<Attempt<()>, ClusterError> {
        let leader = match self.change_locally(change).await? {
            Local::Done => return Ok(Attempt::Done(())),
            Local::Busy => return Ok(Attempt::Retry),
            Local::NotLeader(leader) => leader,
        };
        let Attempt::Done(bytes) = self
            .forward(leader, Forward::ChangeMembership, codec::encode(change))
            .await?
        else {
            return Ok(Attempt::Retry);
        };
        let result: Result<(), ForwardedError> = codec::decode(&bytes).map_err(Self::stopped)?;
        result.map(Attempt::Done).map_err(ClusterError::from)
    }

    /// Runs `change` if this node leads.
    pub(crate) async fn change_locally(
        &self,
        change: &MembershipChange,
    ) -> Result<Local, ClusterError> {
        let raft = self.raft();
        let metrics = raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        // Only the leader's view of the membership is the one a change applies to. A
        // follower may not have the last change yet, and openraft checks the change
        // against the local membership before it checks leadership: a promote asked of
        // a follower that has not seen the learner yet fails with "learner not found"
        // instead of being forwarded.
        if metrics.current_leader != Some(self.id()) {
            let leader = metrics
                .current_leader
                .and_then(|l| membership.get_node(&l).cloned());
            return Ok(Local::NotLeader(leader));
        }
        let is_voter = |id: u64| membership.voter_ids().any(|v| v == id);
        let is_learner = |id: u64| membership.learner_ids().any(|v| v == id);
        let result = match change {
            MembershipChange::AddLearner { id, addr } => {
                if is_voter(*id) {
                    return Err(ClusterError::Refused(format!(
                        "node {id} is already a voter"
                    )));
                }
                if let Some(known) = membership.get_node(id).filter(|n| n.addr != *addr) {
                    return Err(ClusterError::Refused(format!(
                        "node {id} is already a learner at {}; remove it first to change its address",
                        known.addr
                    )));
                }
                raft.add_learner(*id, BasicNode::new(addr), true).await
            }
            MembershipChange::Promote { id } => {
                if is_voter(*id) {
                    return Ok(Local::Done);
                }
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                    .await
            }
            MembershipChange::Remove { id } => {
                let change = if is_voter(*id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
                } else if is_learner(*id) {
                    ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
                } else {
                    return Err(ClusterError::Refused(format!("node {id} is not a member")));
                };
                raft.change_membership(change, false).await
            }
            MembershipChange::TransferLeader { to } => {
                if !is_voter(*to) {
                    return Err(ClusterError::Refused(format!("node {to} is not a voter")));
                }
                return self.hand_over(*to).await;
            }
        };
        match result {
            Ok(_) => Ok(Local::Done),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Ok(Local::NotLeader(f.leader_node))
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) => Ok(Local::Busy),
            Err(RaftError::APIError(e)) => Err(ClusterError::Refused(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(Self::stopped(e)),
        }
    }

    /// Leadership transfer for openraft 0.9, which has no transfer call: this leader
    /// stops sending heartbeats, and once the followers' lease on it has run out
    /// (election_timeout_max; they refuse votes before that) the target calls an
    /// election, well before the other followers' own timers (lease + election
    /// timeout) fire.
    ///
    /// If another follower wins the election instead, the answer is `Busy`: the caller
    /// retries, and the retry reaches the new leader, which hands over in turn.
    async fn hand_over(&self, to: u64) -> Result<Local, ClusterError> {
        if to == self.id() {
            return Ok(Local::Done);
        }
        let raft = self.raft();
        let target = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&to)
            .cloned()
            .ok_or_else(|| ClusterError::Refused(format!("node {to} is not a member")))?;
        let client = self
            .peer(&target)
            .ok_or_else(|| ClusterError::Refused(format!("bad address for node {to}")))?;
        raft.runtime_config().heartbeat(false);
        // Heartbeats come back however this ends, also if the caller gives up and this
        // future is dropped mid-transfer.
        let _heartbeats = HeartbeatsBack(raft);
        // An election before the followers' lease on this leader runs out would only be
        // refused and bump the term.
        let lease = Duration::from_millis(raft.config().election_timeout_max);
        tokio::time::sleep(lease + ELECT_PAUSE).await;
        let retry_every = Duration::from_millis(raft.config().election_timeout_min);
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        let mut next_elect = Instant::now();
        loop {
            let leader = raft.metrics().borrow().current_leader;
            if leader == Some(to) {
                break Ok(Local::Done);
            }
            if leader.is_some() && leader != Some(self.id()) {
                tracing::info!(to, leader = ?leader, "another node won the election; retrying the transfer through it");
                break Ok(Local::Busy);
            }
            if Instant::now() > deadline {
                break Err(ClusterError::Unavailable(TRANSFER_TIMEOUT));
            }
            if Instant::now() >= next_elect {
                let mut request = Request::new(ElectRequest {});
                self.attach_secret(&mut request);
                let _ = tokio::time::timeout(retry_every, client.clone().elect(request)).await;
                next_elect = Instant::now() + retry_every;
            }
            tokio::time::sleep(ELECT_PAUSE).await;
        }
    }
}
