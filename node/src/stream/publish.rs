//! The one way a publisher becomes a stream's source: authorize (the key, the
//! publish hook, the per-address limits) → take the stream over from the other nodes
//! → attach to the stream's supervisor on this node.
//!
//! Who decides a publish (docs/api.md, "Publish hooks"): a key the cluster knows
//! publishes its stream, and a configured `on_publish` hook must allow it too; a name
//! the cluster does not know is the hook's to decide (it may rename it: the public
//! id), or, without a hook, open publishing's (the id is the key); otherwise refused.
//!
//! The protocol listeners only translate: RTMP builds a [`PublishRequest`] from what
//! the client said and maps a [`PublishDenied`] to its NetStream status codes.

use std::net::SocketAddr;
use std::time::Duration;

use castmesh_cluster::model::MediaReach;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::oneshot;

use super::context::NodeContext;
use super::hooks::Answer;
use super::registry::{KeyedStream, OriginLease, PublishDenied, PublishGrant, StreamId, StreamKey};
use super::requests::NodeMsg;
use super::supervisor::{PublisherBinding, PublisherConn};
use super::takeover::{self, Predecessor};

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
    /// `tcUrl`, `flashVer`, `swfUrl` and `pageUrl` of the client's `connect`
    /// command, when it sent them.
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// The client (behind a trusted proxy, the address its PROXY header named).
    pub peer: SocketAddr,
    /// The connection's number on this node (the hooks' `clientid`).
    pub client_id: u64,
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
    let grant = authorize(ctx, request)
        .await
        // A stopped stream's encoder reconnecting is its owner, not a stranger
        // guessing keys: it must not lock the address out for after the start; nor
        // may a backend that is down.
        .inspect_err(|e| {
            if !matches!(
                e,
                PublishDenied::Stopped(_) | PublishDenied::HookUnavailable
            ) {
                ctx.failed_publishes.record(&ip)
            }
        })?;
    let id = grant.id;
    tracing::Span::current().record("stream", id.as_str());
    let predecessor = takeover::take_over(ctx, &id, grant.lease.epoch).await?;
    let start = recorded_start(ctx, &id, &grant.lease, &predecessor).await?;
    let (kick, kicked) = oneshot::channel();
    let conn = PublisherConn {
        request: Box::new(request.clone()),
        kick,
        lease: grant.lease,
        predecessor,
        start,
    };
    let publish = |reply| NodeMsg::Publish { id, conn, reply };
    match node.call(publish, Some(ATTACH_TIMEOUT)).await {
        Ok(CallResult::Success(Ok(binding))) => Ok(Publisher { binding, kicked }),
        Ok(CallResult::Success(Err(denied))) => Err(denied),
        _ => Err(PublishDenied::AttachTimeout),
    }
}

/// Where the new origin's media starts at the latest, recorded in its lease before it
/// produces anything (see `takeover`).
async fn recorded_start(
    ctx: &NodeContext,
    id: &StreamId,
    lease: &OriginLease,
    predecessor: &Predecessor,
) -> Result<MediaReach, PublishDenied> {
    let skip = takeover::skipped_segments(&ctx.config);
    let start = {
        let here = ctx.directory.get(id.as_str());
        let own = here.as_ref().map(|h| h.live.read());
        takeover::start_of(own.as_deref(), predecessor, lease.floor, skip)
    };
    let Some(start) = start else {
        return Ok(MediaReach::default());
    };
    ctx.registry.record_start(id, lease.epoch, start).await?;
    Ok(start)
}

/// Decides the publish and makes this node the stream's origin.
async fn authorize(
    ctx: &NodeContext,
    request: &PublishRequest,
) -> Result<PublishGrant, PublishDenied> {
    let registry = &ctx.registry;
    let stream = match registry.stream_for_key(&request.name).await? {
        Some(known) => {
            known.publishable()?;
            hook_allows(ctx, request, &known).await?;
            known
        }
        None => {
            let (id, open) = new_stream_id(ctx, request).await?;
            let made = registry.create_for_key(&request.name, id).await?;
            if made && open {
                ctx.open_creations.record(&request.peer.ip());
            }
            // Made now or concurrently with the same key; not found: the id was taken.
            let found = registry.stream_for_key(&request.name).await?;
            let found = found.ok_or(PublishDenied::NameTaken)?;
            found.publishable()?;
            found
        }
    };
    registry.acquire_origin(stream).await
}

/// A key the cluster knows: a configured `on_publish` must allow it too.
async fn hook_allows(
    ctx: &NodeContext,
    request: &PublishRequest,
    known: &KeyedStream,
) -> Result<(), PublishDenied> {
    match ctx.hooks.on_publish(request).await {
        None | Some(Answer::Allow) => Ok(()),
        Some(Answer::Rename(name)) => {
            if name != known.id.as_str() {
                tracing::info!(stream = %known.id, "the publish hook's rename is ignored: the key belongs to a stream already");
            }
            Ok(())
        }
        Some(Answer::Refuse(why)) => Err(PublishDenied::HookRefused(why)),
        Some(Answer::Unreachable(_)) if ctx.hooks.fail_open() => {
            tracing::warn!(stream = %known.id, "publish hook unreachable: the key alone decides (hooks.fail_open)");
            Ok(())
        }
        Some(Answer::Unreachable(_)) => Err(PublishDenied::HookUnavailable),
    }
}

/// A name the cluster does not know: the id of the stream to make for it, and
/// whether open publishing (not a hook) decided.
async fn new_stream_id(
    ctx: &NodeContext,
    request: &PublishRequest,
) -> Result<(StreamId, bool), PublishDenied> {
    let name = request.name.expose();
    match ctx.hooks.on_publish(request).await {
        Some(Answer::Allow) => Ok((StreamId::parse(name)?, false)),
        Some(Answer::Rename(public)) => {
            StreamId::parse(&public).map(|id| (id, false)).map_err(|e| {
                PublishDenied::HookRefused(format!(
                    "the publish hook's new name is not a stream id: {e}"
                ))
            })
        }
        Some(Answer::Refuse(why)) => Err(PublishDenied::HookRefused(why)),
        Some(Answer::Unreachable(_)) => Err(PublishDenied::HookUnavailable),
        None if ctx.config.cluster.open_publishing => {
            let id = StreamId::parse(name)?;
            if let Some(wait) = ctx.open_creations.exhausted(&request.peer.ip()) {
                return Err(PublishDenied::TooManyStreams {
                    wait_s: wait.as_secs().max(1),
                });
            }
            Ok((id, true))
        }
        None => Err(PublishDenied::UnknownKey),
    }
}
