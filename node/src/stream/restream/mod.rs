//! Restreaming: the origin pushes a live stream to other RTMP(S) servers (YouTube,
//! Twitch, a second castmesh), one supervised actor per active destination.
//!
//! ```text
//! ingest ──▶ MediaTap ──▶ FrameQueue ──▶ restream actor ── worker ──▶ Pusher (rtmp::push)
//!  (FLV tag bodies,        (one per        (one per           (reconnects,     (the RTMP client:
//!   no re-encoding)         destination)    destination)       backoff, status) dial, TLS, publish)
//! ```
//!
//! The tap copies nothing (tag bodies are shared `Bytes`) and never waits: each queue is
//! bounded and drops its oldest media up to a keyframe when its destination falls
//! behind, so a slow or dead destination costs the ingest, the segmenter and the other
//! destinations nothing. The stream supervisor decides which destinations run: the
//! wanted ones (`Destination::wanted`) of the replicated state, while this node holds
//! the stream's origin lease (see `supervisor`).
//!
//! The network side sits behind [`Pusher`] because it is the `rtmp` module's (the
//! chunk guard, the client session), which sits above this one.

pub mod actor;
pub mod queue;
pub mod running;
pub mod status;
pub mod tap;
pub mod worker;

use std::net::IpAddr;

use async_trait::async_trait;
use castmesh_cluster::restream::Destination;

use crate::seams::Clock;
use queue::FrameQueue;
use status::DestinationStatus;
use tap::MediaTap;

/// One connection's worth of pushing.
pub struct PushJob<'a> {
    /// Its URL and key (secret: never logged).
    pub destination: &'a Destination,
    pub queue: &'a FrameQueue,
    /// The sequence headers and codecs a connection starts with.
    pub tap: &'a MediaTap,
    /// Progress: connected, publishing, bytes sent.
    pub status: &'a DestinationStatus,
    /// The cluster's node addresses: internal, refused like private ones.
    pub cluster: &'a [IpAddr],
    pub clock: &'a dyn Clock,
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The destination refused the publish (a wrong key, a refused app): retrying
    /// the same settings is pointless after a few tries.
    #[error("{0}")]
    Rejected(String),
    /// The destination may not be reached at all (an internal address): no retry.
    #[error("{0}")]
    Forbidden(String),
    /// Anything else (unreachable, reset, timed out): retried with backoff.
    #[error("{0}")]
    Failed(String),
    /// The queue was closed: the destination was stopped here.
    #[error("stopped")]
    Stopped,
}

/// Pushes a stream to one destination over RTMP(S).
#[async_trait]
pub trait Pusher: Send + Sync + 'static {
    /// Connects, publishes and sends the queue's frames until the connection fails or
    /// the queue is closed. Never returns `Ok`: a push only ends by an error.
    async fn push(&self, job: PushJob<'_>) -> PushError;
}
