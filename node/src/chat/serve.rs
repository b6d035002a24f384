//! The origin's side of the chat over the mesh: a peer follows a room, posts to it,
//! moderates it (see `ChatFollow` in mesh.proto).

use std::time::Duration;

use castmesh_proto::mesh::v1 as pb;
use tokio::sync::broadcast::error::RecvError;

use super::{Hub, wire};
use crate::mesh::{ChatRooms, framing};

/// QUIC stream reset codes of a follow: the follower fell behind; this node is not
/// the stream's origin.
pub const RESET_BEHIND: u32 = 1;
pub const RESET_NOT_ORIGIN: u32 = 2;
/// A follower that does not take an event within this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl ChatRooms for Hub {
    async fn follow(&self, send: quinn::SendStream, request: pb::ChatFollow) {
        follow(send, self, request).await
    }

    async fn post(&self, post: pb::ChatPost) -> pb::ChatAnswer {
        wire::answer_to_wire(self.post_here(post))
    }

    async fn moderate(&self, request: pb::ChatModerate) -> pb::ChatAnswer {
        wire::answer_to_wire(self.moderate_here(request).await)
    }
}

/// Sends `stream`'s room to a peer: its lines now, then every change, until this
/// node's room closes.
async fn follow(mut send: quinn::SendStream, hub: &Hub, request: pb::ChatFollow) {
    let Some((history, mut updates)) = hub.follow_here(&request.stream) else {
        let _ = send.reset(RESET_NOT_ORIGIN.into());
        return;
    };
    let mut next = Some(history);
    loop {
        let published = match next.take() {
            Some(p) => p,
            None => tokio::select! {
                update = updates.recv() => match update {
                    Ok(p) => p,
                    Err(RecvError::Lagged(_)) => {
                        let _ = send.reset(RESET_BEHIND.into());
                        return;
                    }
                    Err(RecvError::Closed) => {
                        let _ = send.finish();
                        return;
                    }
                },
                // The follower went away: in a quiet room no write would tell.
                _ = send.stopped() => return,
            },
        };
        let frame = wire::event_to_wire(&published.event);
        let written = tokio::time::timeout(WRITE_TIMEOUT, framing::write(&mut send, &frame)).await;
        if !matches!(written, Ok(Ok(_))) {
            let _ = send.reset(RESET_BEHIND.into());
            return;
        }
    }
}
