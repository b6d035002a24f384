//! What every part of a node shares: configuration, metrics, seams, the stream
//! registry, the directory of live streams and the mesh.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;

use crate::admission::AddressBudget;
use crate::config::Config;
use crate::mesh::Mesh;
use crate::mesh::subscription::{HandOver, StreamSource};
use crate::metrics::Metrics;
use crate::seams::Seams;
use crate::stream::directory::{StreamDirectory, StreamHandle};
use crate::stream::registry::{FenceRefused, StreamId, StreamRegistry};
use crate::stream::supervisor::StreamMsg;

pub struct NodeContext {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub seams: Seams,
    pub registry: Arc<dyn StreamRegistry>,
    pub directory: StreamDirectory,
    /// The media mesh; `None` in tests of a lone node's media path.
    pub mesh: Option<Arc<Mesh>>,
    /// Refused publish attempts per client address.
    pub failed_publishes: AddressBudget,
}

/// Client addresses whose failed publish attempts are remembered at once.
const FAILED_PUBLISH_ADDRESSES: usize = 10_000;

impl NodeContext {
    pub fn new(
        config: Config,
        seams: Seams,
        metrics: Arc<Metrics>,
        registry: Arc<dyn StreamRegistry>,
        mesh: Option<Arc<Mesh>>,
    ) -> Arc<Self> {
        let failed_publishes = AddressBudget::new(
            config.rtmp.max_failed_publishes,
            config.rtmp.failed_publish_window,
            FAILED_PUBLISH_ADDRESSES,
        );
        Arc::new(Self {
            failed_publishes,
            config,
            metrics,
            seams,
            registry,
            directory: StreamDirectory::default(),
            mesh,
        })
    }
}

/// Longest confirming a take-over's lease may take: the asker waits about 1.5 s.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a stream's supervisor may take to stop producing when handing it over.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(1);

/// The mesh serves the streams in the directory, origin's and edge's alike.
#[async_trait::async_trait]
impl StreamSource for NodeContext {
    fn stream(&self, id: &str) -> Option<Arc<StreamHandle>> {
        self.directory.get(id)
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
