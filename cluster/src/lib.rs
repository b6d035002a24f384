//! castmesh cluster metadata: the replicated state machine.
//!
//! Everything here is deterministic: applying the same commands in the same order
//! gives the same state on every node. Time enters only through commands (the
//! proposer's clock), never through the apply path, so replicas agree on which leases
//! have expired.

pub mod accounts;
pub mod auth;
pub mod chat;
pub mod command;
pub mod ids;
pub mod keys;
pub mod member;
pub mod membership;
pub mod model;
pub mod raft;
pub mod restream;
pub mod state;
pub mod transport;

pub use castmesh_sabotage as sabotage;
pub use openraft;

pub use command::{Command, Rejection, Response};
pub use ids::{StreamId, StreamKey};
pub use model::{Lease, NodeId, NodeRecord, NodeState, StreamRecord, StreamStatus};
pub use state::ClusterState;
