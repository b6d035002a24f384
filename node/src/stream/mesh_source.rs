//! What the mesh asks of this node's streams: a stream's window to subscribe to,
//! a hand-over when another node takes a stream over, and what an origin's restream
//! destinations are doing.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;

use super::context::NodeContext;
use super::directory::Role;
use super::registry::{FenceRefused, StreamId};
use super::supervisor::StreamMsg;
use crate::mesh::subscription::{HandOver, Served, StreamSource, ViewerReports};

/// Longest confirming a take-over's lease may take: the asker waits about 1.5 s.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a stream's supervisor may take to stop producing when handing it over.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(1);

/// The mesh serves the streams in the directory, origin's and edge's alike.
#[async_trait::async_trait]
impl StreamSource for NodeContext {
    fn stream(&self, id: &str) -> Option<Served> {
        self.directory.get(id).map(|h| Served {
            live: h.live.clone(),
            viewers: h.stats.clone(),
        })
    }

    fn origins(&self) -> Vec<(String, Arc<dyn ViewerReports>)> {
        self.directory
            .all()
            .into_iter()
            .filter(|h| h.role == Role::Origin)
            .map(|h| {
                let reports: Arc<dyn ViewerReports> = h.stats.clone();
                (h.id.to_string(), reports)
            })
            .collect()
    }

    fn restream_statuses(&self, id: &str) -> Vec<castmesh_proto::mesh::v1::DestinationStatus> {
        self.directory
            .get(id)
            .filter(|h| h.role == Role::Origin)
            .map(|h| {
                h.stats
                    .restream
                    .snapshots()
                    .iter()
                    .map(|(id, s)| s.to_wire(*id))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn hand_over(&self, id: &str, epoch: u64, by: u64) -> HandOver {
        let Ok(id) = StreamId::parse(id) else {
            return HandOver::NotProducing;
        };
        // First the lease: from here on no publish under an older epoch attaches. A
        // node that cannot confirm the asker's lease in time does nothing: the asker
        // then starts a new run, as for an origin that did not answer.
        let fenced = tokio::time::timeout(CONFIRM_TIMEOUT, self.registry.fence(&id, epoch, by));
        match fenced.await {
            Ok(Ok(())) => {}
            Ok(Err(FenceRefused::Held(held))) => return HandOver::Refused { held },
            Ok(Err(FenceRefused::Unconfirmed(reason))) => {
                tracing::warn!(stream = %id, epoch, node = by, %reason, "take-over refused");
                return HandOver::Unconfirmed;
            }
            Err(_) => {
                tracing::warn!(stream = %id, epoch, node = by, "take-over refused: the lease could not be confirmed in time");
                return HandOver::Unconfirmed;
            }
        }
        let Some(origin) = self
            .directory
            .get(id.as_str())
            .and_then(|h| h.origin.clone())
        else {
            return HandOver::NotProducing;
        };
        let asked = origin
            .call(
                |reply| StreamMsg::HandOver { epoch, reply },
                Some(HAND_OVER_TIMEOUT),
            )
            .await;
        match asked {
            Ok(CallResult::Success(answer)) => answer,
            // It stopped meanwhile (not producing), or it is stuck: either way its
            // window is not known to be final, which only costs the asker continuity.
            _ => HandOver::NotProducing,
        }
    }
}
