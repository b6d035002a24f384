//! What every part of a node shares: configuration, metrics, seams, the stream
//! registry, the directory of live streams and the mesh.

use std::sync::Arc;

use crate::config::Config;
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::seams::Seams;
use crate::stream::directory::StreamDirectory;
use crate::stream::registry::StreamRegistry;

pub struct NodeContext {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub seams: Seams,
    pub registry: Arc<dyn StreamRegistry>,
    pub directory: StreamDirectory,
    /// The media mesh; `None` in tests of a lone node's media path.
    pub mesh: Option<Arc<Mesh>>,
}

impl NodeContext {
    pub fn new(
        config: Config,
        seams: Seams,
        metrics: Arc<Metrics>,
        registry: Arc<dyn StreamRegistry>,
        mesh: Option<Arc<Mesh>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            metrics,
            seams,
            registry,
            directory: StreamDirectory::default(),
            mesh,
        })
    }
}

/// The mesh serves the streams in the directory, origin's and edge's alike.
impl crate::mesh::subscription::StreamSource for NodeContext {
    fn stream(&self, id: &str) -> Option<Arc<crate::stream::directory::StreamHandle>> {
        self.directory.get(id)
    }
}
