//! Commands replicated through the Raft log, and what applying them answers.
//! (On disk they are versioned by `raft::codec`.)

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountCommand, UserId, UserRecord};
use crate::chat::ChatCommand;
use crate::ids::StreamId;
use crate::keys::KeyHash;
use crate::model::{Lease, MediaReach, Millis, NodeId, NodeRecord, StreamRecord, StreamStatus};
use crate::restream::{Destination, RestreamCommand, RestreamRejection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `command`, taking effect once however often it is proposed: a write retried
    /// after its answer was lost (see `ClusterMember::write`) must not apply twice.
    Once {
        id: u64,
        command: Box<Command>,
    },
    UpsertNode(NodeRecord),
    RemoveNode {
        id: NodeId,
    },
    CreateStream {
        id: StreamId,
        title: String,
        owner: String,
        key_hash: KeyHash,
        scheduled_at: Option<Millis>,
        now: Millis,
        #[serde(default)]
        owner_id: Option<UserId>,
        #[serde(default)]
        description: String,
    },
    UpdateStream {
        id: StreamId,
        title: Option<String>,
        /// `Some(None)` clears the schedule.
        scheduled_at: Option<Option<Millis>>,
        #[serde(default)]
        description: Option<String>,
        /// `Some(None)` leaves the stream to admins.
        #[serde(default)]
        owner_id: Option<Option<UserId>>,
    },
    RotateKey {
        id: StreamId,
        key_hash: KeyHash,
    },
    /// Sets a stream's status. An origin reporting its stream's life passes `fence`:
    /// the change applies only while that node still holds the lease at that epoch, so
    /// an origin that was taken over cannot end the stream its successor runs.
    SetStatus {
        id: StreamId,
        status: StreamStatus,
        now: Millis,
        #[serde(default)]
        fence: Option<Fence>,
    },
    /// Ends a live stream whose origin is gone: its lease (still at `epoch`) expired at
    /// least `grace_ms` before `now`, so no node is publishing it. Proposed by the
    /// leader's sweeper; refused if the stream got a new origin meanwhile.
    EndOrphaned {
        id: StreamId,
        epoch: u64,
        now: Millis,
        grace_ms: u64,
    },
    /// An operator ends a live stream: status ended, and the lease moves to no node at
    /// a new epoch, so the origin notices at its next renewal and drops the publisher.
    /// With `hold_key` (a stop) the key is refused until `StartStream`; entries from
    /// before the field end the stream only.
    EndStream {
        id: StreamId,
        now: Millis,
        #[serde(default)]
        hold_key: bool,
    },
    /// Makes a stream's key publish again after a stop (refused for archived and
    /// cancelled streams).
    StartStream {
        id: StreamId,
    },
    DeleteStream {
        id: StreamId,
    },
    /// Open publishing: the first publish with an unknown key creates the stream
    /// whose id is the key, marked `open`.
    CreateOpenStream {
        id: StreamId,
        key_hash: KeyHash,
        now: Millis,
    },
    /// Removes an open-publishing stream once it has been ended (or, never live, was
    /// created) at least `retention_ms` before `now` and has no live origin lease.
    /// Proposed by the leader's sweeper; refused for any other stream.
    ForgetOpenStream {
        id: StreamId,
        now: Millis,
        retention_ms: u64,
    },
    /// Compare-and-set: succeeds only if the stream's current lease epoch is
    /// `expected_epoch` (0 when it never had one). The new lease has epoch + 1.
    AcquireLease {
        stream: StreamId,
        node: NodeId,
        expected_epoch: u64,
        now: Millis,
        ttl_ms: u64,
    },
    /// Extends a lease the node still holds at that epoch, and records how far the
    /// stream's numbering got (or will get: see `Lease::reach`).
    RenewLease {
        stream: StreamId,
        node: NodeId,
        epoch: u64,
        now: Millis,
        ttl_ms: u64,
        #[serde(default)]
        reach: MediaReach,
    },
    /// Gives a lease up (the epoch is kept: epochs only grow).
    ReleaseLease {
        stream: StreamId,
        node: NodeId,
        epoch: u64,
    },
    /// Users and sessions (`crate::accounts`).
    Account(AccountCommand),
    /// Chat bans and archives (`crate::chat`); refused for a stream that does not exist.
    Chat(ChatCommand),
    /// Restream destinations (`crate::restream`); refused for a stream that does not exist.
    Restream(RestreamCommand),
}

/// A lease holder's claim: node and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub node: NodeId,
    pub epoch: u64,
}

/// Why a command changed nothing. Deterministic: every replica gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("stream {0} already exists")]
    StreamExists(StreamId),
    #[error("no stream {0}")]
    NoSuchStream(StreamId),
    #[error("no node {0}")]
    NoSuchNode(NodeId),
    #[error("stream {0} has no origin lease")]
    NoLease(StreamId),
    #[error("another stream already uses this key")]
    KeyInUse,
    #[error("a {from:?} stream cannot become {to:?}")]
    BadTransition {
        from: StreamStatus,
        to: StreamStatus,
    },
    #[error("lease epoch is {current}, not {expected}")]
    StaleEpoch { expected: u64, current: u64 },
    #[error("the lease is held by node {} at epoch {}", .0.node, .0.epoch)]
    LeaseLost(Lease),
    #[error("stream {0} still has an origin")]
    OriginAlive(StreamId),
    #[error("stream {0} is not an expired open-publishing stream")]
    NotForgettable(StreamId),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no user {0}")]
    NoSuchUser(UserId),
    #[error("user {0} is disabled")]
    UserDisabled(UserId),
    #[error("the password of user {0} changed")]
    PasswordChanged(UserId),
    #[error("stream {0} was stopped; start it again to publish")]
    StreamStopped(StreamId),
    #[error("the invitation is unknown, used or expired")]
    InvalidInvite,
    #[error("too many unused invitations")]
    TooManyInvites,
    #[error("{0}")]
    Restream(RestreamRejection),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Done,
    Stream(StreamRecord),
    Lease(Lease),
    User(UserRecord),
    /// The destination a restream command changed, as it is now (`None`: removed).
    Destination(Option<Destination>),
    Rejected(Rejection),
}
