//! What every part of a node shares: configuration, metrics, seams, the stream
//! registry and the directory of live streams.

use std::sync::Arc;

use crate::config::Config;
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
}

impl NodeContext {
    pub fn new(
        config: Config,
        seams: Seams,
        metrics: Arc<Metrics>,
        registry: Arc<dyn StreamRegistry>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            metrics,
            seams,
            registry,
            directory: StreamDirectory::default(),
        })
    }
}
