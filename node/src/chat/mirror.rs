//! A node's copy of a room another node holds: it follows the origin over the mesh and
//! republishes to the sockets here, in the origin's order. When the origin changes it
//! follows the new one (whose room starts afresh); when the stream ends or this node
//! becomes the origin it closes, and its sockets join again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use castmesh_cluster::StreamId;

use super::channel::Channel;
use super::{Hub, wire};

/// Pause before looking for the origin again after a failed or ended follow.
const RETRY: Duration = Duration::from_millis(500);
/// How often a quiet follow checks that sockets here still want it and that the
/// origin is still where it follows (a dead origin's stream may take the mesh's idle
/// timeout to fail).
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Mirror {
    pub channel: Channel,
}

impl Mirror {
    pub fn start(hub: Arc<Hub>, stream: StreamId) -> Arc<Mirror> {
        let config = hub.config();
        let mirror = Arc::new(Mirror {
            channel: Channel::new(0, config.history, config.socket_queue),
        });
        let span = tracing::info_span!("chat_mirror", %stream);
        let task = follow(Arc::downgrade(&mirror), hub, stream);
        tokio::spawn(tracing::Instrument::instrument(task, span));
        mirror
    }
}

/// Follows the origin while any socket holds the mirror.
async fn follow(mirror: Weak<Mirror>, hub: Arc<Hub>, stream: StreamId) {
    loop {
        if mirror.strong_count() == 0 {
            return;
        }
        match hub.upstream(&stream) {
            Ok((node, addr)) => match hub.mesh.chat_follow(addr, node, stream.as_str()).await {
                Ok(mut events) => loop {
                    let next = tokio::time::timeout(CHECK_EVERY, events.next()).await;
                    let Some(mirror) = mirror.upgrade() else {
                        return;
                    };
                    match next {
                        Err(_) if hub.upstream(&stream).is_ok_and(|(n, _)| n == node) => continue,
                        // The origin moved: follow the new one.
                        Err(_) => break,
                        Ok(Ok(Some(event))) => match wire::event_from_wire(event) {
                            Ok(event) => mirror.channel.publish(event),
                            Err(e) => {
                                tracing::warn!(error = %e, "bad chat event from the origin");
                                break;
                            }
                        },
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "chat follow ended");
                            break;
                        }
                    }
                },
                Err(e) => tracing::debug!(error = %e, "cannot follow the chat's origin"),
            },
            // No origin right now: wait for one.
            Err(None) => {}
            // The chat ended, or this node is the origin now: the sockets join again.
            Err(Some(_)) => {
                if let Some(mirror) = mirror.upgrade() {
                    mirror.channel.close();
                }
                return;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
