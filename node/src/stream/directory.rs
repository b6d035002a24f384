//! The node's live streams, readable by HTTP handlers without asking an actor.
//!
//! Only the node supervisor inserts and removes entries.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ractor::ActorRef;

use super::registry::StreamId;
use super::stats::StreamStats;
use super::supervisor::StreamMsg;
use crate::live::LiveStream;

/// Whether this node makes a stream's media or relays it from another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Origin,
    Edge,
}

/// A stream this node serves, as origin or as an edge: HTTP serves both the same way.
pub struct StreamHandle {
    pub id: StreamId,
    pub role: Role,
    pub live: Arc<LiveStream>,
    pub stats: Arc<StreamStats>,
    /// The stream's supervisor when this node is its origin (it hands the stream over).
    pub origin: Option<ActorRef<StreamMsg>>,
}

#[derive(Default)]
pub struct StreamDirectory {
    streams: RwLock<BTreeMap<StreamId, Arc<StreamHandle>>>,
}

impl StreamDirectory {
    pub fn get(&self, id: &str) -> Option<Arc<StreamHandle>> {
        let id = StreamId::parse(id).ok()?;
        self.read().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<StreamHandle>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn insert(&self, handle: Arc<StreamHandle>) {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.id.clone(), handle);
    }

    pub(crate) fn remove(&self, id: &StreamId) -> Option<Arc<StreamHandle>> {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<StreamId, Arc<StreamHandle>>> {
        self.streams.read().unwrap_or_else(|e| e.into_inner())
    }
}
