//! The media half of a run: encoders publishing over RTMP, viewers following the
//! stream with LL-HLS blocking reloads on random nodes, and the checks on what the
//! viewers saw and which nodes held the origin lease.

pub mod checks;
pub mod flv;
pub mod marker;
pub mod playlist;
pub mod publisher;
pub mod viewer;

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::record::Recorder;

/// The stream every encoder publishes (open publishing: its key is its id).
pub const STREAM: &str = "live-0";

/// Shared by the encoders, the viewers, the media verifier and the fault driver.
#[derive(Clone)]
pub struct Media {
    pub seed: u64,
    pub nodes: u32,
    pub recorder: Recorder,
    /// Each node's boot count: a restarted node starts with empty windows, so the
    /// per-node checks follow (node, boot).
    pub boots: Vec<Arc<AtomicU64>>,
    /// The node the main encoder publishes to (a fault moves it).
    pub publisher_at: Arc<AtomicU32>,
    /// A node the second encoder is to start publishing on (0: none).
    pub duplicate_at: Arc<AtomicU32>,
    /// Publish session numbers, shared by both encoders.
    pub sessions: Arc<AtomicU32>,
    /// Viewers wait this long before each request (a slow-viewer fault).
    pub viewer_delay_ms: Arc<AtomicU64>,
    pub verify_from: Duration,
    pub verify_until: Duration,
    /// How long after `verify_from` every node served fresh media (None: never).
    pub playable: Arc<Mutex<Option<Duration>>>,
}

impl Media {
    pub fn elapsed(&self) -> Duration {
        turmoil::sim_elapsed().unwrap_or_default()
    }

    pub fn boot(&self, node: u32) -> u64 {
        self.boots[node as usize - 1].load(std::sync::atomic::Ordering::Relaxed)
    }
}
