//! Prometheus metrics an operator graphs: streams, ingest, packaging, HTTP, viewers.
//!
//! Per-stream series are removed when the stream is removed, so cardinality
//! follows the number of streams in memory.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

/// A restream destination: its stream and its id (never its URL: it may hold a key).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabel {
    pub stream: String,
    pub destination: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Track {
    Video,
    Audio,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabel {
    pub stream: String,
    pub track: Track,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    /// The route's pattern (`/hls/{id}/media.m3u8`); borrowed for the routes served
    /// outside the router, so counting a request allocates nothing.
    pub route: std::borrow::Cow<'static, str>,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabel {
    pub hook: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    pub actor: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub streams_live: Gauge,
    pub rtmp_connections: Gauge,
    pub rtmp_closed: Family<ReasonLabel, Counter>,
    /// HTTP connections refused or closed by the server: limits and timeouts.
    pub http_closed: Family<ReasonLabel, Counter>,
    pub ingest_bytes: Family<StreamLabel, Counter>,
    pub ingest_frames: Family<FrameLabel, Counter>,
    pub ingest_dropped_frames: Family<StreamLabel, Counter>,
    pub hls_parts: Family<StreamLabel, Counter>,
    pub hls_segments: Family<StreamLabel, Counter>,
    pub hls_memory_bytes: Family<StreamLabel, Gauge>,
    pub http_requests: Family<HttpLabel, Counter>,
    pub viewers: Family<StreamLabel, Gauge>,
    pub actor_restarts: Family<ActorLabel, Counter>,
    pub origin_leases: Gauge,
    pub origin_leases_lost: Counter,
    pub raft_term: Gauge,
    pub raft_leader: Gauge,
    pub raft_applied_index: Gauge,
    pub mesh_handshakes_refused: Counter,
    /// Mesh requests refused from a certified peer: not a member, malformed, too slow,
    /// a take-over the replicated lease does not confirm.
    pub mesh_requests_refused: Family<ReasonLabel, Counter>,
    /// When this node's mesh certificate expires (Unix seconds).
    pub mesh_certificate_expiry: Gauge,
    pub mesh_peer_reachable: Family<NodeLabel, Gauge>,
    pub mesh_subscriptions: Family<StreamLabel, Gauge>,
    pub mesh_forwarded_bytes: Family<StreamLabel, Counter>,
    pub mesh_subscriber_overflows: Counter,
    pub mesh_upstream_subscriptions: Gauge,
    pub mesh_resubscribes: Family<ReasonLabel, Counter>,
    pub mesh_forward_lag: Histogram,
    /// Sign-ups, sign-ins and session checks, by outcome.
    pub account_events: Family<ReasonLabel, Counter>,
    /// Time a password hash waited for its turn and ran.
    pub password_hash_seconds: Histogram,
    /// Publish hook calls by hook and outcome.
    pub hook_calls: Family<HookLabel, Counter>,
    /// on_publish_done events waiting for delivery.
    pub hook_pending: Gauge,
    /// Open watch sockets (the watch page's status and chat channel).
    pub watch_sockets: Gauge,
    /// Watch sockets refused or closed by the server, by reason.
    pub watch_sockets_closed: Family<ReasonLabel, Counter>,
    /// Chat posts handled by this node, by outcome.
    pub chat_posts: Family<ReasonLabel, Counter>,
    pub restream_bytes: Family<DestinationLabel, Counter>,
    pub restream_reconnects: Family<DestinationLabel, Counter>,
    pub restream_dropped_frames: Family<DestinationLabel, Counter>,
    pub restream_live: Family<DestinationLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("castmesh");
        let m = Self {
            streams_live: Gauge::default(),
            rtmp_connections: Gauge::default(),
            rtmp_closed: Family::default(),
            http_closed: Family::default(),
            ingest_bytes: Family::default(),
            ingest_frames: Family::default(),
            ingest_dropped_frames: Family::default(),
            hls_parts: Family::default(),
            hls_segments: Family::default(),
            hls_memory_bytes: Family::default(),
            http_requests: Family::default(),
            viewers: Family::default(),
            actor_restarts: Family::default(),
            origin_leases: Gauge::default(),
            origin_leases_lost: Counter::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_applied_index: Gauge::default(),
            mesh_handshakes_refused: Counter::default(),
            mesh_requests_refused: Family::default(),
            mesh_certificate_expiry: Gauge::default(),
            mesh_peer_reachable: Family::default(),
            mesh_subscriptions: Family::default(),
            mesh_forwarded_bytes: Family::default(),
            mesh_subscriber_overflows: Counter::default(),
            mesh_upstream_subscriptions: Gauge::default(),
            mesh_resubscribes: Family::default(),
            // 1 ms .. ~16 s: a part normally arrives within milliseconds; seconds mean
            // an edge is catching up.
            mesh_forward_lag: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15),
            ),
            account_events: Family::default(),
            // 1 ms .. ~4 s: one hash takes tens of milliseconds; more is queueing.
            password_hash_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 13),
            ),
            hook_calls: Family::default(),
            hook_pending: Gauge::default(),
            watch_sockets: Gauge::default(),
            watch_sockets_closed: Family::default(),
            chat_posts: Family::default(),
            restream_bytes: Family::default(),
            restream_reconnects: Family::default(),
            restream_dropped_frames: Family::default(),
            restream_live: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "streams_live",
            "Streams this node serves: as origin (publisher attached, in its grace period or ended and retained) or as an edge",
            m.streams_live.clone(),
        );
        registry.register(
            "rtmp_connections",
            "Open RTMP connections",
            m.rtmp_connections.clone(),
        );
        registry.register(
            "rtmp_connections_closed",
            "RTMP connections closed, by reason",
            m.rtmp_closed.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections refused (connection limits) or closed by the server (header, write timeouts), by reason",
            m.http_closed.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Audio/video payload bytes received from publishers",
            m.ingest_bytes.clone(),
        );
        registry.register(
            "ingest_frames",
            "Frames received from publishers",
            m.ingest_frames.clone(),
        );
        registry.register(
            "ingest_dropped_frames",
            "Frames dropped because the stream's pipeline was restarting",
            m.ingest_dropped_frames.clone(),
        );
        registry.register("hls_parts", "LL-HLS parts produced", m.hls_parts.clone());
        registry.register(
            "hls_segments",
            "HLS segments produced",
            m.hls_segments.clone(),
        );
        registry.register(
            "hls_memory_bytes",
            "Media bytes held in memory for a stream's live window",
            m.hls_memory_bytes.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "viewers",
            "Distinct HLS viewers of a stream on this node",
            m.viewers.clone(),
        );
        registry.register(
            "actor_restarts",
            "Supervised actor restarts",
            m.actor_restarts.clone(),
        );
        registry.register(
            "origin_leases",
            "Streams this node holds the origin lease of",
            m.origin_leases.clone(),
        );
        registry.register(
            "origin_leases_lost",
            "Origin leases this node lost (taken over, ended, not renewable)",
            m.origin_leases_lost.clone(),
        );
        registry.register("raft_term", "Current Raft term", m.raft_term.clone());
        registry.register(
            "raft_leader",
            "1 while this node is the Raft leader",
            m.raft_leader.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Last Raft log index applied to this node's state",
            m.raft_applied_index.clone(),
        );
        registry.register(
            "mesh_handshakes_refused",
            "QUIC mesh connections refused (no certificate from the cluster CA, or no node name)",
            m.mesh_handshakes_refused.clone(),
        );
        registry.register(
            "mesh_requests_refused",
            "Mesh requests refused from a certified peer, by reason",
            m.mesh_requests_refused.clone(),
        );
        registry.register(
            "mesh_certificate_expiry_timestamp_seconds",
            "When this node's mesh certificate expires, Unix time (renew with `castmesh cert renew`)",
            m.mesh_certificate_expiry.clone(),
        );
        registry.register(
            "mesh_peer_reachable",
            "1 while this node's last mesh ping to the peer was answered by that peer",
            m.mesh_peer_reachable.clone(),
        );
        registry.register(
            "mesh_subscriptions",
            "Edges subscribed to a stream on this node",
            m.mesh_subscriptions.clone(),
        );
        registry.register(
            "mesh_forwarded_bytes",
            "Bytes sent to subscribed edges (media and metadata)",
            m.mesh_forwarded_bytes.clone(),
        );
        registry.register(
            "mesh_subscriber_overflows",
            "Subscriptions cut off because the edge fell more than mesh.subscriber_queue behind",
            m.mesh_subscriber_overflows.clone(),
        );
        registry.register(
            "mesh_upstream_subscriptions",
            "Streams this node relays as an edge (one subscription each)",
            m.mesh_upstream_subscriptions.clone(),
        );
        registry.register(
            "mesh_resubscribes",
            "Edge subscriptions started again, by reason",
            m.mesh_resubscribes.clone(),
        );
        registry.register(
            "mesh_forward_lag_seconds",
            "Time from the origin sending a part to the edge listing it",
            m.mesh_forward_lag.clone(),
        );
        registry.register(
            "account_events",
            "Account events by outcome: signup, login, login_failed, login_limited, session_unknown, session_limited, hash_busy",
            m.account_events.clone(),
        );
        registry.register(
            "password_hash_seconds",
            "Time a sign-in or sign-up spent on its password hash, waiting included",
            m.password_hash_seconds.clone(),
        );
        registry.register(
            "hook_calls",
            "Publish hook calls by hook (on_publish, on_publish_done) and outcome: allow, rename, refuse, unreachable, delivered, retry, rejected, dropped",
            m.hook_calls.clone(),
        );
        registry.register(
            "hook_pending",
            "on_publish_done events waiting for delivery",
            m.hook_pending.clone(),
        );
        registry.register(
            "watch_sockets",
            "Open watch sockets (a watch page's live status, viewer count and chat)",
            m.watch_sockets.clone(),
        );
        registry.register(
            "watch_sockets_closed",
            "Watch sockets refused or closed by the server: connection_limit, per_ip_limit, slow (its queue was full), write_timeout, flood (too many messages from the page), gone (the stream was deleted)",
            m.watch_sockets_closed.clone(),
        );
        registry.register(
            "chat_posts",
            "Chat posts from this node's sockets by outcome: posted, or refused (muted, banned, too_long, empty, not_started, ended, unavailable)",
            m.chat_posts.clone(),
        );
        registry.register(
            "restream_bytes",
            "Bytes pushed to restream destinations (FLV tag bodies and headers)",
            m.restream_bytes.clone(),
        );
        registry.register(
            "restream_reconnects",
            "Connections to a restream destination after its first",
            m.restream_reconnects.clone(),
        );
        registry.register(
            "restream_dropped_frames",
            "Frames a restream destination's queue dropped because it fell behind",
            m.restream_dropped_frames.clone(),
        );
        registry.register(
            "restream_live",
            "1 while a restream destination accepts the stream (publishing), else 0",
            m.restream_live.clone(),
        );
        Self { registry, ..m }
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Removes a stream's series once it is gone.
    pub fn forget_stream(&self, stream: &str) {
        let label = StreamLabel {
            stream: stream.to_string(),
        };
        self.ingest_bytes.remove(&label);
        self.ingest_dropped_frames.remove(&label);
        self.hls_parts.remove(&label);
        self.hls_segments.remove(&label);
        self.hls_memory_bytes.remove(&label);
        self.viewers.remove(&label);
        self.mesh_subscriptions.remove(&label);
        self.mesh_forwarded_bytes.remove(&label);
        for track in [Track::Video, Track::Audio] {
            self.ingest_frames.remove(&FrameLabel {
                stream: stream.to_string(),
                track,
            });
        }
    }

    pub fn destination(stream: &str, destination: u64) -> DestinationLabel {
        DestinationLabel {
            stream: stream.to_string(),
            destination,
        }
    }

    /// Removes a restream destination's series once it is gone.
    pub fn forget_destination(&self, stream: &str, destination: u64) {
        let label = Self::destination(stream, destination);
        self.restream_bytes.remove(&label);
        self.restream_reconnects.remove(&label);
        self.restream_dropped_frames.remove(&label);
        self.restream_live.remove(&label);
    }

    pub fn stream(stream: &str) -> StreamLabel {
        StreamLabel {
            stream: stream.to_string(),
        }
    }

    /// One stream's series, looked up once so the media path does not build labels,
    /// hash them and take the family's lock for every frame.
    pub fn for_stream(&self, stream: &str) -> StreamMetrics {
        let label = Self::stream(stream);
        let frames = |track| {
            self.ingest_frames
                .get_or_create(&FrameLabel {
                    stream: stream.to_string(),
                    track,
                })
                .clone()
        };
        StreamMetrics {
            ingest_bytes: self.ingest_bytes.get_or_create(&label).clone(),
            video_frames: frames(Track::Video),
            audio_frames: frames(Track::Audio),
            dropped_frames: self.ingest_dropped_frames.get_or_create(&label).clone(),
            parts: self.hls_parts.get_or_create(&label).clone(),
            segments: self.hls_segments.get_or_create(&label).clone(),
            memory_bytes: self.hls_memory_bytes.get_or_create(&label).clone(),
        }
    }
}

/// Holds a gauge one higher while it lives: raised when made, lowered when dropped,
/// however its holder ends (returned, aborted, panicked).
pub struct GaugeHold(Gauge);

impl GaugeHold {
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeHold {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Handles to one stream's series (clones share the registered values).
#[derive(Clone)]
pub struct StreamMetrics {
    pub ingest_bytes: Counter,
    pub video_frames: Counter,
    pub audio_frames: Counter,
    pub dropped_frames: Counter,
    pub parts: Counter,
    pub segments: Counter,
    pub memory_bytes: Gauge,
}
