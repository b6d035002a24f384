//! Per-stream facts the API reports, written by the stream's actors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::restream::status::RestreamBoard;
use super::viewer_sessions::{Sighting, ViewerSessions};
use crate::mesh::subscription::ViewerReports;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A publisher is attached.
    Live,
    /// The publisher left; waiting for it within the grace period.
    Grace,
    /// Ended (ENDLIST published); kept for the retention period.
    Ended,
}

/// Edges report every second; a report older than this is from an edge that stopped.
pub const REPORT_TTL_MS: u64 = 3_000;

pub struct StreamStats {
    pub started_at: SystemTime,
    phase: AtomicU8,
    /// Publisher bitrate over the last measurement interval, bits per second.
    pub bitrate_bps: AtomicU64,
    pub viewers: AtomicU64,
    /// On an origin: viewer counts edges reported, by node: (viewers, reported at ms).
    reports: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// Wall-clock milliseconds of the latest HTTP request for the stream; an edge
    /// ends its subscription after a while without one.
    last_request_ms: AtomicU64,
    /// Viewer sessions: HTTP handlers record sightings, the viewer counter sweeps.
    pub sessions: ViewerSessions,
    /// On an origin: its restream destinations' statuses.
    pub restream: RestreamBoard,
}

impl StreamStats {
    pub fn new(started_at: SystemTime) -> Arc<Self> {
        Arc::new(Self {
            started_at,
            phase: AtomicU8::new(0),
            bitrate_bps: AtomicU64::new(0),
            viewers: AtomicU64::new(0),
            last_request_ms: AtomicU64::new(0),
            reports: Mutex::new(BTreeMap::new()),
            sessions: ViewerSessions::default(),
            restream: RestreamBoard::default(),
        })
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Live,
            1 => Phase::Grace,
            _ => Phase::Ended,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        let v = match phase {
            Phase::Live => 0,
            Phase::Grace => 1,
            Phase::Ended => 2,
        };
        self.phase.store(v, Ordering::Relaxed);
    }

    /// An edge reported its viewer count.
    pub fn report_viewers(&self, node: u64, viewers: u64, now_ms: u64) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, (viewers, now_ms));
    }

    /// Viewers by node: this node's (`me`) and those reported within `REPORT_TTL_MS`.
    pub fn viewers_by_node(&self, me: u64, now_ms: u64) -> BTreeMap<u64, u64> {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        // An edge that stopped reporting (idle, gone, unreachable) no longer counts.
        reports.retain(|_, (_, at)| now_ms.saturating_sub(*at) <= REPORT_TTL_MS);
        let mut by_node: BTreeMap<u64, u64> = reports.iter().map(|(n, (v, _))| (*n, *v)).collect();
        by_node.insert(me, self.viewers.load(Ordering::Relaxed));
        by_node
    }

    pub fn requested(&self, now_ms: u64) {
        self.last_request_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn last_request_ms(&self) -> u64 {
        self.last_request_ms.load(Ordering::Relaxed)
    }

    /// Reports that a viewer session fetched something.
    pub fn viewer_seen(&self, seen: Sighting) {
        if let Some(n) = self.sessions.seen(seen, tokio::time::Instant::now()) {
            self.viewers.store(n as u64, Ordering::Relaxed);
        }
    }
}

impl ViewerReports for StreamStats {
    fn report(&self, node: u64, viewers: u64, now_ms: u64) {
        self.report_viewers(node, viewers, now_ms);
    }

    fn by_node(&self, me: u64, now_ms: u64) -> BTreeMap<u64, u64> {
        self.viewers_by_node(me, now_ms)
    }
}
