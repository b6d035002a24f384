//! What a destination is doing, as its owner reads it (the API, the studio, castctl)
//! and as an operator graphs it (Prometheus). Written by the destination's worker,
//! read by anyone: a lock held for a few field writes, a few times per frame at most.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use castmesh_proto::mesh::v1 as pb;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use crate::metrics::Metrics;

/// Bitrate is measured over windows of this length.
const BITRATE_WINDOW_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not pushing (not wanted, or the stream has no publisher yet).
    Idle,
    /// Dialling, handshaking, or waiting for the publish to be accepted.
    Connecting,
    /// Publishing: frames flow.
    Live,
    /// The last attempt failed; the next starts at `retry_at_ms`.
    Retrying,
    /// Given up: the destination refused the publish again and again, or may not be
    /// reached. A stop and start (or a change) tries again.
    Error,
}

/// A destination's state at one moment; times are wall-clock milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub retry_at_ms: Option<u64>,
    /// The last failure in words (never the key), and when.
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<u64>,
    pub bytes_sent: u64,
    /// Over the last measurement window while live, bits per second.
    pub bitrate_bps: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    pub live_since_ms: Option<u64>,
    /// Frames the queue dropped because the destination fell behind.
    pub dropped_frames: u64,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Live => "live",
            State::Retrying => "retrying",
            State::Error => "error",
        }
    }

    fn named(name: &str) -> Self {
        match name {
            "connecting" => State::Connecting,
            "live" => State::Live,
            "retrying" => State::Retrying,
            "error" => State::Error,
            _ => State::Idle,
        }
    }
}

/// Zero stands for none on the wire.
fn some(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

impl Snapshot {
    /// Destination `id`'s status for the mesh (`mesh.v1.DestinationStatus`).
    pub fn to_wire(&self, id: u64) -> pb::DestinationStatus {
        pb::DestinationStatus {
            id,
            state: self.state.name().into(),
            retry_at_ms: self.retry_at_ms.unwrap_or(0),
            last_error: self.last_error.clone().unwrap_or_default(),
            last_error_at_ms: self.last_error_at_ms.unwrap_or(0),
            bytes_sent: self.bytes_sent,
            bitrate_bps: self.bitrate_bps,
            reconnects: self.reconnects,
            live_since_ms: self.live_since_ms.unwrap_or(0),
            dropped_frames: self.dropped_frames,
        }
    }

    /// The statuses an origin answered, by destination id.
    pub fn all_from_wire(list: Vec<pb::DestinationStatus>) -> BTreeMap<u64, Self> {
        list.into_iter().map(Self::from_wire).collect()
    }

    fn from_wire(s: pb::DestinationStatus) -> (u64, Self) {
        let snapshot = Self {
            state: State::named(&s.state),
            retry_at_ms: some(s.retry_at_ms),
            last_error: (!s.last_error.is_empty()).then_some(s.last_error),
            last_error_at_ms: some(s.last_error_at_ms),
            bytes_sent: s.bytes_sent,
            bitrate_bps: s.bitrate_bps,
            reconnects: s.reconnects,
            live_since_ms: some(s.live_since_ms),
            dropped_frames: s.dropped_frames,
        };
        (s.id, snapshot)
    }
}

struct Inner {
    state: State,
    retry_at_ms: Option<u64>,
    last_error: Option<(String, u64)>,
    connections: u64,
    live_since_ms: Option<u64>,
    window_start_ms: u64,
    window_bytes: u64,
    bitrate_bps: u64,
}

/// One destination's series (labels: stream, destination id; never its URL or key).
struct Series {
    bytes: Counter,
    reconnects: Counter,
    dropped: Counter,
    live: Gauge,
}

pub struct DestinationStatus {
    inner: Mutex<Inner>,
    bytes_sent: AtomicU64,
    series: Series,
}

impl DestinationStatus {
    pub fn new(metrics: &Metrics, stream: &str, destination: u64) -> Self {
        let label = Metrics::destination(stream, destination);
        Self {
            inner: Mutex::new(Inner {
                state: State::Idle,
                retry_at_ms: None,
                last_error: None,
                connections: 0,
                live_since_ms: None,
                window_start_ms: 0,
                window_bytes: 0,
                bitrate_bps: 0,
            }),
            bytes_sent: AtomicU64::new(0),
            series: Series {
                bytes: metrics.restream_bytes.get_or_create(&label).clone(),
                reconnects: metrics.restream_reconnects.get_or_create(&label).clone(),
                dropped: metrics
                    .restream_dropped_frames
                    .get_or_create(&label)
                    .clone(),
                live: metrics.restream_live.get_or_create(&label).clone(),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    pub fn connecting(&self) {
        let mut s = self.lock();
        s.state = State::Connecting;
        s.retry_at_ms = None;
        s.connections += 1;
        if s.connections > 1 {
            self.series.reconnects.inc();
        }
    }

    pub fn live(&self, now_ms: u64) {
        let mut s = self.lock();
        s.state = State::Live;
        s.live_since_ms = Some(now_ms);
        s.window_start_ms = now_ms;
        s.window_bytes = 0;
        self.series.live.set(1);
    }

    pub fn sent(&self, bytes: u64, now_ms: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.series.bytes.inc_by(bytes);
        let mut s = self.lock();
        s.window_bytes += bytes;
        let elapsed = now_ms.saturating_sub(s.window_start_ms);
        if elapsed >= BITRATE_WINDOW_MS {
            s.bitrate_bps = s.window_bytes * 8 * 1000 / elapsed;
            s.window_start_ms = now_ms;
            s.window_bytes = 0;
        }
    }

    /// The connection ended with `error`; the next attempt is at `retry_at_ms`, or
    /// never (`None`: given up).
    pub fn failed(&self, error: &str, now_ms: u64, retry_at_ms: Option<u64>) {
        let mut s = self.lock();
        s.state = if retry_at_ms.is_some() {
            State::Retrying
        } else {
            State::Error
        };
        s.retry_at_ms = retry_at_ms;
        s.last_error = Some((error.to_string(), now_ms));
        s.live_since_ms = None;
        s.bitrate_bps = 0;
        self.series.live.set(0);
    }

    /// Not pushing any more (stopped here, the stream ended).
    pub fn idle(&self) {
        let mut s = self.lock();
        s.state = State::Idle;
        s.retry_at_ms = None;
        s.live_since_ms = None;
        s.bitrate_bps = 0;
        self.series.live.set(0);
    }

    /// Where the destination's queues count the frames they drop.
    pub fn drops(&self) -> Counter {
        self.series.dropped.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let dropped_frames = self.series.dropped.get();
        let s = self.lock();
        Snapshot {
            state: s.state,
            retry_at_ms: s.retry_at_ms,
            last_error: s.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at_ms: s.last_error.as_ref().map(|(_, at)| *at),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bitrate_bps: s.bitrate_bps,
            reconnects: s.connections.saturating_sub(1),
            live_since_ms: s.live_since_ms,
            dropped_frames,
        }
    }
}

/// The statuses of a stream's running destinations, by destination id.
#[derive(Default)]
pub struct RestreamBoard {
    statuses: Mutex<BTreeMap<u64, Arc<DestinationStatus>>>,
}

impl RestreamBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<DestinationStatus>>> {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get_or_insert(
        &self,
        id: u64,
        make: impl FnOnce() -> DestinationStatus,
    ) -> Arc<DestinationStatus> {
        self.lock()
            .entry(id)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    pub fn get(&self, id: u64) -> Option<Arc<DestinationStatus>> {
        self.lock().get(&id).cloned()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn snapshots(&self) -> BTreeMap<u64, Snapshot> {
        self.lock()
            .iter()
            .map(|(id, s)| (*id, s.snapshot()))
            .collect()
    }
}
