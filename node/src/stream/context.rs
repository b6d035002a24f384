//! What every part of a node shares: configuration, metrics, seams, the stream
//! registry, the directory of live streams and the mesh. Data only: what the mesh
//! asks of these streams is answered in `mesh_source`.

use std::sync::Arc;

use super::directory::StreamDirectory;
use super::registry::StreamRegistry;
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
