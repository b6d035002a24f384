//! The one way a publisher becomes a stream's source: authorize (the key, the
//! per-address limits) → take the stream over from the other nodes → attach to the
//! stream's supervisor on this node.
//!
//! The protocol listeners only translate: RTMP builds a [`PublishRequest`] from what
//! the client said and maps a [`PublishDenied`] to its NetStream status codes.

use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::oneshot;

use super::context::NodeContext;
use super::registry::{PublishDenied, StreamKey};
use super::requests::NodeMsg;
use super::supervisor::{PublisherBinding, PublisherConn};
use super::takeover;

/// How long a publish waits for the node to attach it.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a publisher said and where from (the publish hooks see all of it). Not
/// `Debug`: the query string and tcUrl may carry the publisher's tokens.
#[derive(Clone)]
pub struct PublishRequest {
    /// The application of `rtmp://host/APP/NAME` (checked at connect).
    pub app: String,
    /// The stream name: the stream key (secret), without its query string.
    pub name: StreamKey,
    /// What followed `?` in the name (`rtmp://host/live/KEY?token=…`), if anything.
    pub query: Option<String>,
    /// `tcUrl` and `flashVer` of the client's `connect` command, when it sent them.
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    /// The client (behind a trusted proxy, the address its PROXY header named).
    pub peer: SocketAddr,
}

impl PublishRequest {
    /// Splits a publish name into the stream key and its query string, as nginx-rtmp
    /// does (`name?args`).
    pub fn split_name(name: String) -> (StreamKey, Option<String>) {
        match name.split_once('?') {
            Some((key, query)) => (StreamKey::new(key.to_string()), Some(query.to_string())),
            None => (StreamKey::new(name), None),
        }
    }
}

/// An accepted publish: where its media goes, and how the stream tells it to stop.
pub struct Publisher {
    pub binding: PublisherBinding,
    /// Fires with a reason when the stream wants this publisher gone (take-over,
    /// bad media, lease lost).
    pub kicked: oneshot::Receiver<String>,
}

pub async fn publish(
    ctx: &NodeContext,
    node: &ActorRef<NodeMsg>,
    request: &PublishRequest,
) -> Result<Publisher, PublishDenied> {
    let ip = request.peer.ip();
    if let Some(wait) = ctx.failed_publishes.exhausted(&ip) {
        return Err(PublishDenied::TooManyRefusals {
            wait_s: wait.as_secs().max(1),
        });
    }
    let grant = ctx
        .registry
        .authorize_publish(&request.name, ip)
        .await
        // A stopped stream's encoder reconnecting is its owner, not a stranger
        // guessing keys: it must not lock the address out for after the start.
        .inspect_err(|e| {
            if !matches!(e, PublishDenied::Stopped(_)) {
                ctx.failed_publishes.record(&ip)
            }
        })?;
    let id = grant.id;
    tracing::Span::current().record("stream", id.as_str());
    let predecessor = takeover::take_over(ctx, &id, grant.lease.epoch).await?;
    let (kick, kicked) = oneshot::channel();
    let conn = PublisherConn {
        peer: request.peer,
        kick,
        lease: grant.lease,
        predecessor,
    };
    let publish = |reply| NodeMsg::Publish { id, conn, reply };
    match node.call(publish, Some(ATTACH_TIMEOUT)).await {
        Ok(CallResult::Success(Ok(binding))) => Ok(Publisher { binding, kicked }),
        Ok(CallResult::Success(Err(denied))) => Err(denied),
        _ => Err(PublishDenied::AttachTimeout),
    }
}
