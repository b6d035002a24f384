//! Who may publish, and under which public stream id.
//!
//! [`StreamRegistry`] is the seam the Raft-backed cluster registry (next issue)
//! implements; [`OpenRegistry`] is `--dev` open publishing, where any key creates
//! a stream whose id equals the key, as nginx-rtmp users expect.

use async_trait::async_trait;

pub use castmesh_cluster::ids::{StreamId, StreamKey};

/// Why a publish was refused: an RTMP status code and a reason safe to log and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishDenied {
    pub code: &'static str,
    pub reason: String,
}

#[async_trait]
pub trait StreamRegistry: Send + Sync + 'static {
    /// Checks a publish request before "publish started" is sent.
    async fn authorize_publish(&self, key: &StreamKey) -> Result<StreamId, PublishDenied>;
    /// The stream has a publisher on this node.
    async fn stream_live(&self, id: &StreamId);
    /// The grace period ran out: the stream has ended.
    async fn stream_ended(&self, id: &StreamId);
}

/// Open publishing (`--dev`, or no config): any well-formed key is a stream id.
pub struct OpenRegistry;

#[async_trait]
impl StreamRegistry for OpenRegistry {
    async fn authorize_publish(&self, key: &StreamKey) -> Result<StreamId, PublishDenied> {
        StreamId::parse(key.expose()).map_err(|reason| PublishDenied {
            code: "NetStream.Publish.BadName",
            reason,
        })
    }

    async fn stream_live(&self, _id: &StreamId) {}

    async fn stream_ended(&self, _id: &StreamId) {}
}
