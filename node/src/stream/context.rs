//! What every part of a node shares: configuration, metrics, seams, the stream
//! registry, the directory of live streams and the mesh. Data only: what the mesh
//! asks of these streams is answered in `mesh_source`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::directory::StreamDirectory;
use super::hooks::PublishHooks;
use super::registry::StreamRegistry;
use super::restream::Pusher;
use crate::admission::AddressBudget;
use crate::config::Config;
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::seams::Seams;

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
    /// Streams each client address created by open publishing, per window.
    pub open_creations: AddressBudget,
    pub hooks: Arc<PublishHooks>,
    /// Pushes streams to their restream destinations.
    pub pusher: Arc<dyn Pusher>,
    /// The last RTMP connection number given out (the hooks' `clientid`).
    rtmp_clients: AtomicU64,
}

/// Client addresses whose failed publish attempts (or open-publishing creations) are
/// remembered at once.
const BUDGET_ADDRESSES: usize = 10_000;

impl NodeContext {
    pub fn new(
        config: Config,
        seams: Seams,
        metrics: Arc<Metrics>,
        registry: Arc<dyn StreamRegistry>,
        mesh: Option<Arc<Mesh>>,
        hooks: Arc<PublishHooks>,
        pusher: Arc<dyn Pusher>,
    ) -> Arc<Self> {
        let failed_publishes = AddressBudget::new(
            config.rtmp.max_failed_publishes,
            config.rtmp.failed_publish_window,
            BUDGET_ADDRESSES,
        );
        let open_creations = AddressBudget::new(
            config.cluster.max_open_streams_per_ip,
            config.cluster.open_stream_window,
            BUDGET_ADDRESSES,
        );
        Arc::new(Self {
            failed_publishes,
            open_creations,
            hooks,
            pusher,
            rtmp_clients: AtomicU64::new(0),
            config,
            metrics,
            seams,
            registry,
            directory: StreamDirectory::default(),
            mesh,
        })
    }

    /// A number for a new RTMP connection, unique on this node while it runs.
    pub fn next_rtmp_client(&self) -> u64 {
        self.rtmp_clients.fetch_add(1, Ordering::Relaxed) + 1
    }
}
