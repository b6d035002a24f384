//! What the cluster knows: nodes, streams, origin leases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::accounts::UserId;
use crate::ids::StreamId;
use crate::keys::KeyHash;

pub type NodeId = u64;

/// Milliseconds since the Unix epoch, from the proposer's clock.
pub type Millis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Known to the cluster, catching up as a Raft learner.
    Joining,
    /// A voting member.
    Active,
    /// Being removed.
    Leaving,
}

/// A castmesh node and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    pub rtmp: String,
    pub http: String,
    pub grpc: String,
    pub quic: String,
    /// Free-form labels, e.g. `region = "eu-west"`.
    pub labels: BTreeMap<String, String>,
    pub state: NodeState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    Scheduled,
    Live,
    Ended,
    Archived,
    Cancelled,
}

impl std::fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StreamStatus {
    /// As the API and logs say it (the same words as its serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Scheduled => "scheduled",
            StreamStatus::Live => "live",
            StreamStatus::Ended => "ended",
            StreamStatus::Archived => "archived",
            StreamStatus::Cancelled => "cancelled",
        }
    }

    /// The lifecycle: scheduled → live ⇄ ended → archived; scheduled → cancelled.
    /// An ended stream may go live again (the publisher came back after the grace
    /// period); archived and cancelled streams are final.
    pub fn can_become(self, next: StreamStatus) -> bool {
        use StreamStatus::*;
        matches!(
            (self, next),
            (Scheduled, Live)
                | (Scheduled, Cancelled)
                | (Live, Ended)
                | (Ended, Live)
                | (Ended, Archived)
        )
    }
}

fn accepting() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub id: StreamId,
    pub title: String,
    /// Free text: what operators wrote before accounts existed, kept as a label. When
    /// an operator makes the account whose email it is, that account owns the stream
    /// (`CreateUser` with `claim_streams`), which is how older clusters' streams get
    /// owners; a sign-up never claims (nobody verified its email).
    pub owner: String,
    /// The account that owns the stream (none: an operator's or open-publishing
    /// stream, managed by admins).
    #[serde(default)]
    pub owner_id: Option<UserId>,
    #[serde(default)]
    pub description: String,
    /// Whether its key may publish. A stop (`EndStream` with `hold_key`) clears it so an
    /// encoder's automatic reconnect cannot undo the stop; `StartStream` sets it.
    /// Records older than this field accept, as they did.
    #[serde(default = "accepting")]
    pub accepting: bool,
    /// Hash of the stream key; the key itself is never stored.
    pub key_hash: KeyHash,
    pub status: StreamStatus,
    pub created_at: Millis,
    pub scheduled_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// Created by open publishing (its id is its key): forgotten once it has been
    /// ended, or never went live, for the stream retention (`ForgetOpenStream`).
    #[serde(default)]
    pub open: bool,
}

/// Which node is a stream's origin. `epoch` is a fencing token: it only grows, and a
/// node acts as origin only while it holds the lease with the newest epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub node: NodeId,
    pub epoch: u64,
    pub expires_at: Millis,
    /// How far the stream's media numbering got, as its origins recorded it (every
    /// epoch's, never less): a new origin that hears from nobody still numbers its
    /// media beyond it (`node/src/stream/takeover.rs`).
    #[serde(default)]
    pub reach: MediaReach,
}

/// A point in a stream's media numbering: the next segment's sequence number and the
/// discontinuities counted before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaReach {
    pub next_msn: u64,
    pub discontinuities: u64,
}

impl MediaReach {
    /// The furthest of both, part by part.
    pub fn max(self, other: Self) -> Self {
        Self {
            next_msn: self.next_msn.max(other.next_msn),
            discontinuities: self.discontinuities.max(other.discontinuities),
        }
    }
}

impl Lease {
    pub fn is_live(&self, now: Millis) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::StreamStatus;

    #[test]
    fn a_status_reads_as_its_serde_form() {
        use StreamStatus::*;
        for status in [Scheduled, Live, Ended, Archived, Cancelled] {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
    }
}
