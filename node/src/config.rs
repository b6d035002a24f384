//! Node configuration: embedded defaults, then a TOML file, then `--set`, then flags
//! and `CASTMESH_*` environment variables.
//!
//! Every setting is declared once, on its field below: its doc comment (the `--help`
//! text and the comment in `configs/dev.toml`), its flag, its environment variable and
//! its default. `Default` reads those declarations; `castmesh defaults` prints the
//! reference file, and a test keeps `configs/dev.toml` equal to it.

use crate::client_addr::Networks;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, FromArgMatches};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[command(flatten, next_help_heading = "RTMP ingest [rtmp]")]
    pub rtmp: RtmpConfig,
    #[command(flatten, next_help_heading = "HTTP: HLS, API, metrics [http]")]
    pub http: HttpConfig,
    #[command(flatten, next_help_heading = "gRPC server [grpc]")]
    pub grpc: GrpcConfig,
    #[command(flatten, next_help_heading = "LL-HLS packaging [hls]")]
    pub hls: HlsConfig,
    #[command(flatten, next_help_heading = "Streams [streams]")]
    pub streams: StreamsConfig,
    #[command(flatten, next_help_heading = "Cluster and Raft [cluster]")]
    pub cluster: ClusterConfig,
    #[command(flatten, next_help_heading = "Media mesh [mesh]")]
    pub mesh: MeshConfig,
    #[command(flatten, next_help_heading = "Users and sessions [accounts]")]
    pub accounts: AccountsConfig,
    #[command(
        flatten,
        next_help_heading = "Publish hooks, nginx-rtmp compatible [hooks]"
    )]
    pub hooks: HooksConfig,
    #[command(flatten, next_help_heading = "Watch page sockets and chat [chat]")]
    pub chat: ChatConfig,
    #[command(
        flatten,
        next_help_heading = "Restreaming to RTMP(S) destinations [restream]"
    )]
    pub restream: RestreamConfig,
    /// Running as `--dev` (or without --config): not a setting of the file.
    #[arg(skip)]
    #[serde(skip)]
    pub dev: bool,
    /// Test switches: compiled only with the `test-hooks` feature, so the binary an
    /// operator builds (`cargo build --release -p castmesh-node`) has none, and a
    /// config file naming them is refused there.
    #[cfg(feature = "test-hooks")]
    #[command(flatten, next_help_heading = "Test switches [debug]")]
    pub debug: DebugConfig,
}

/// The defaults declared on a section's fields, without reading flags or the
/// environment.
fn declared_defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|a| a.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting declares a valid default");
    T::from_arg_matches(&matches).expect("every setting declares a valid default")
}

/// Durations as in the file: "10s", "200ms", "1m".
fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// A path that may be empty (meaning: not set).
fn path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Where publishers (OBS, ffmpeg, GStreamer) connect:
    /// rtmp://HOST:1935/live/{stream_key}.
    #[arg(
        id = "rtmp.listen",
        long = "rtmp-listen",
        env = "CASTMESH_RTMP_LISTEN",
        default_value = "0.0.0.0:1935"
    )]
    pub listen: SocketAddr,
    /// The application name in the publish URL (rtmp://HOST/APP/KEY).
    #[arg(
        id = "rtmp.app",
        long = "rtmp-app",
        env = "CASTMESH_RTMP_APP",
        default_value = "live"
    )]
    pub app: String,
    /// A client must complete the RTMP handshake within this time.
    #[arg(id = "rtmp.handshake_timeout", long = "rtmp-handshake-timeout", env = "CASTMESH_RTMP_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// After the handshake, a client must start publishing within this time.
    #[arg(id = "rtmp.publish_timeout", long = "rtmp-publish-timeout", env = "CASTMESH_RTMP_PUBLISH_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// A connection that sends nothing for this long is closed: a stalled publisher,
    /// whose encoder can reconnect anywhere and take the stream over. Viewers see a
    /// frozen stream for this long, hence no more than 10 s (MediaMTX's read timeout;
    /// SRS waits 5 s).
    #[arg(id = "rtmp.idle_timeout", long = "rtmp-idle-timeout", env = "CASTMESH_RTMP_IDLE_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// After each read, a publishing connection waits for the node's next tick, ticks
    /// this far apart and shared by all of its publishers (SRS's "merged read"): one
    /// wake-up reads what every publisher sent since the last tick, rather than one per
    /// frame per publisher (a third less ingest CPU at 32 publishers). Each send of the
    /// encoder's waits up to this long more, so parts are listed later: ~25 ms with
    /// ffmpeg, which (Nagle's algorithm on) sends a frame in two; 0 reads on arrival.
    /// At most 100ms.
    #[arg(id = "rtmp.read_interval", long = "rtmp-read-interval", env = "CASTMESH_RTMP_READ_INTERVAL", default_value = "15ms", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub read_interval: Duration,
    /// Open RTMP connections accepted at once; more are closed right after accept (and
    /// counted in castmesh_rtmp_closed_total).
    #[arg(
        id = "rtmp.max_connections",
        long = "rtmp-max-connections",
        env = "CASTMESH_RTMP_MAX_CONNECTIONS",
        default_value = "1000"
    )]
    pub max_connections: usize,
    /// Open RTMP connections from one client address (behind NAT, a studio's encoders
    /// share one).
    #[arg(
        id = "rtmp.max_connections_per_ip",
        long = "rtmp-max-connections-per-ip",
        env = "CASTMESH_RTMP_MAX_CONNECTIONS_PER_IP",
        default_value = "32"
    )]
    pub max_connections_per_ip: usize,
    /// TCP load balancers (addresses or CIDR ranges, e.g. ["10.0.0.0/8"]; comma-separated
    /// as a flag) that start every connection with a PROXY protocol header (v1 or v2,
    /// HAProxy's `send-proxy`): the client it names is the one the per-address limits
    /// count. Anyone else must not send one.
    #[arg(
        id = "rtmp.trusted_proxies",
        long = "rtmp-trusted-proxies",
        env = "CASTMESH_RTMP_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: Networks,
    /// A write the client does not take within this time closes the connection (a
    /// client that floods commands and never reads).
    #[arg(id = "rtmp.write_timeout", long = "rtmp-write-timeout", env = "CASTMESH_RTMP_WRITE_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Largest non-media message (commands, metadata, control); real ones are well under
    /// 4 KiB.
    #[arg(
        id = "rtmp.max_command_bytes",
        long = "rtmp-max-command-bytes",
        env = "CASTMESH_RTMP_MAX_COMMAND_BYTES",
        default_value = "65536"
    )]
    pub max_command_bytes: u32,
    /// Command messages one connection may send in its life (a publisher needs about
    /// ten).
    #[arg(
        id = "rtmp.max_commands",
        long = "rtmp-max-commands",
        env = "CASTMESH_RTMP_MAX_COMMANDS",
        default_value = "100"
    )]
    pub max_commands: u32,
    /// AMF0 arrays and objects nested inside each other in one message.
    #[arg(
        id = "rtmp.max_amf_depth",
        long = "rtmp-max-amf-depth",
        env = "CASTMESH_RTMP_MAX_AMF_DEPTH",
        default_value = "16"
    )]
    pub max_amf_depth: usize,
    /// Tags one aggregate message may carry.
    #[arg(
        id = "rtmp.max_aggregate_tags",
        long = "rtmp-max-aggregate-tags",
        env = "CASTMESH_RTMP_MAX_AGGREGATE_TAGS",
        default_value = "1024"
    )]
    pub max_aggregate_tags: usize,
    /// Publish attempts refused (wrong key) from one client address within
    /// failed_publish_window; beyond it that address is refused until the window ends
    /// (each wrong key costs a linearizable read on the Raft leader).
    #[arg(
        id = "rtmp.max_failed_publishes",
        long = "rtmp-max-failed-publishes",
        env = "CASTMESH_RTMP_MAX_FAILED_PUBLISHES",
        default_value = "10"
    )]
    pub max_failed_publishes: u32,
    /// The window max_failed_publishes is counted over.
    #[arg(id = "rtmp.failed_publish_window", long = "rtmp-failed-publish-window", env = "CASTMESH_RTMP_FAILED_PUBLISH_WINDOW", default_value = "1m", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub failed_publish_window: Duration,
    /// Media bytes buffered between a stream's publisher socket and its segmenter (32
    /// MiB). When full, the node stops reading from that publisher (TCP back-pressure)
    /// instead of growing memory. It is also the largest single media message accepted.
    #[arg(
        id = "rtmp.max_pending_bytes",
        long = "rtmp-max-pending-bytes",
        env = "CASTMESH_RTMP_MAX_PENDING_BYTES",
        default_value = "33554432"
    )]
    pub max_pending_bytes: u32,
    /// A publisher sending more than this many kbit/s (measured over 2 s) is
    /// disconnected. Together with the live window this bounds the memory one stream can
    /// hold.
    #[arg(
        id = "rtmp.max_bitrate_kbps",
        long = "rtmp-max-bitrate-kbps",
        env = "CASTMESH_RTMP_MAX_BITRATE_KBPS",
        default_value = "50000"
    )]
    pub max_bitrate_kbps: u64,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// HLS (/hls/{stream_id}/index.m3u8), REST API (/api/v1), /metrics and /healthz.
    #[arg(
        id = "http.listen",
        long = "http-listen",
        env = "CASTMESH_HTTP_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,
    /// A request's headers must arrive within this time of the connection being ready
    /// for them: after accept, and after each response on a kept-alive connection (so
    /// this is also the idle keep-alive timeout; LL-HLS players ask every part). Closes
    /// silent and slow-header (slowloris) clients.
    #[arg(id = "http.header_timeout", long = "http-header-timeout", env = "CASTMESH_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A response the client stops reading for this long closes its connection.
    #[arg(id = "http.write_timeout", long = "http-write-timeout", env = "CASTMESH_HTTP_WRITE_TIMEOUT", default_value = "15s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A handler must answer within this time. Blocking playlist reloads (LL-HLS) answer
    /// within three target durations, well inside it.
    #[arg(id = "http.request_timeout", long = "http-request-timeout", env = "CASTMESH_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Open HTTP connections in all.
    #[arg(
        id = "http.max_connections",
        long = "http-max-connections",
        env = "CASTMESH_HTTP_MAX_CONNECTIONS",
        default_value = "20000"
    )]
    pub max_connections: usize,
    /// Open HTTP connections from one client address.
    #[arg(
        id = "http.max_connections_per_ip",
        long = "http-max-connections-per-ip",
        env = "CASTMESH_HTTP_MAX_CONNECTIONS_PER_IP",
        default_value = "256"
    )]
    pub max_connections_per_ip: usize,
    /// Reverse proxies and CDNs (addresses or CIDR ranges) whose Forwarded /
    /// X-Forwarded-For headers name the client (viewer counts, per-address limits). From
    /// anyone else those headers are ignored. Their connections are not held to
    /// max_connections_per_ip.
    #[arg(
        id = "http.trusted_proxies",
        long = "http-trusted-proxies",
        env = "CASTMESH_HTTP_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: Networks,
    /// Largest request body the API reads (JSON); larger ones are answered 413.
    #[arg(
        id = "http.max_body_bytes",
        long = "http-max-body-bytes",
        env = "CASTMESH_HTTP_MAX_BODY_BYTES",
        default_value = "65536"
    )]
    pub max_body_bytes: usize,
    /// Web origins besides the node's own whose pages may change things through the
    /// API (sign in, create streams), e.g. ["https://studio.example.com"] for a separate
    /// frontend (comma-separated as a flag). Requests from other pages' origins that
    /// would change something are refused (403).
    #[arg(
        id = "http.allowed_origins",
        long = "http-allowed-origins",
        env = "CASTMESH_HTTP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Certificate chain (PEM) to serve HTTPS on http.listen instead of HTTP. Set
    /// tls_cert and tls_key together, or neither (plain HTTP, e.g. behind a TLS-
    /// terminating reverse proxy: docs/operations.md). Passwords and session cookies
    /// cross this listener; over TLS the cookie is marked Secure.
    #[arg(id = "http.tls_cert", long = "http-tls-cert", env = "CASTMESH_HTTP_TLS_CERT", default_value = "", value_parser = path)]
    pub tls_cert: PathBuf,
    /// The certificate's private key (PEM).
    #[arg(id = "http.tls_key", long = "http-tls-key", env = "CASTMESH_HTTP_TLS_KEY", default_value = "", value_parser = path)]
    pub tls_key: PathBuf,
}

impl HttpConfig {
    /// Whether the listener serves HTTPS.
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// Limits of the gRPC server (Raft, forwarded writes, the operator API).
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// A gRPC call must finish within this time.
    #[arg(id = "grpc.request_timeout", long = "grpc-request-timeout", env = "CASTMESH_GRPC_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A gRPC connection silent for this long (it must answer the keep-alive ping the
    /// server sends every third of it) is closed.
    #[arg(id = "grpc.idle_timeout", long = "grpc-idle-timeout", env = "CASTMESH_GRPC_IDLE_TIMEOUT", default_value = "1m", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open gRPC connections (each peer keeps one; castctl opens one per command).
    #[arg(
        id = "grpc.max_connections",
        long = "grpc-max-connections",
        env = "CASTMESH_GRPC_MAX_CONNECTIONS",
        default_value = "512"
    )]
    pub max_connections: usize,
    /// gRPC calls in progress on one connection.
    #[arg(
        id = "grpc.max_concurrent_calls",
        long = "grpc-max-concurrent-calls",
        env = "CASTMESH_GRPC_MAX_CONCURRENT_CALLS",
        default_value = "128"
    )]
    pub max_concurrent_calls: u32,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Segments are cut at the first keyframe after this duration. EXT-X-TARGETDURATION
    /// is this value rounded up to whole seconds, and no segment is ever longer.
    #[arg(id = "hls.segment_target", long = "hls-segment-target", env = "CASTMESH_HLS_SEGMENT_TARGET", default_value = "2s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub segment_target: Duration,
    /// LL-HLS part duration target (EXT-X-PART-INF). PART-HOLD-BACK is three times this.
    #[arg(id = "hls.part_target", long = "hls-part-target", env = "CASTMESH_HLS_PART_TARGET", default_value = "200ms", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub part_target: Duration,
    /// Complete segments listed in the live playlist (3 to 100; Apple asks for at least
    /// 6).
    #[arg(
        id = "hls.window_segments",
        long = "hls-window-segments",
        env = "CASTMESH_HLS_WINDOW_SEGMENTS",
        default_value = "6"
    )]
    pub window_segments: usize,
    /// A publisher timestamp that moves by more than this is a jump: it is smoothed over
    /// so decode times stay continuous.
    #[arg(id = "hls.timestamp_jump", long = "hls-timestamp-jump", env = "CASTMESH_HLS_TIMESTAMP_JUMP", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub timestamp_jump: Duration,
}

impl Default for HlsConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// A publisher that disconnects may come back within this time and continue the same
    /// playlist after a discontinuity. After it, the playlist ends (EXT-X-ENDLIST).
    #[arg(id = "streams.grace_period", long = "streams-grace-period", env = "CASTMESH_STREAMS_GRACE_PERIOD", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// How long an ended stream stays served (with EXT-X-ENDLIST) before it is removed.
    #[arg(id = "streams.retention", long = "streams-retention", env = "CASTMESH_STREAMS_RETENTION", default_value = "1m", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A viewer is counted while it fetched the playlist or a part within this time.
    #[arg(id = "streams.viewer_timeout", long = "streams-viewer-timeout", env = "CASTMESH_STREAMS_VIEWER_TIMEOUT", default_value = "15s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub viewer_timeout: Duration,
    /// Viewer sessions counted per client address and stream: viewers behind one NAT
    /// beyond it are not counted, and a client inventing session cookies fills no more
    /// than this.
    #[arg(
        id = "streams.max_viewer_sessions_per_ip",
        long = "streams-max-viewer-sessions-per-ip",
        env = "CASTMESH_STREAMS_MAX_VIEWER_SESSIONS_PER_IP",
        default_value = "256"
    )]
    pub max_viewer_sessions_per_ip: usize,
    /// Per-stream restart intensity: more than this many restarts of the stream's actors
    /// within restart_window ends the stream instead of restarting again.
    #[arg(
        id = "streams.max_restarts",
        long = "streams-max-restarts",
        env = "CASTMESH_STREAMS_MAX_RESTARTS",
        default_value = "5"
    )]
    pub max_restarts: u32,
    /// The window max_restarts is counted over.
    #[arg(id = "streams.restart_window", long = "streams-restart-window", env = "CASTMESH_STREAMS_RESTART_WINDOW", default_value = "1m", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Streams this node serves at once; further publishers are refused.
    #[arg(
        id = "streams.max_streams",
        long = "streams-max-streams",
        env = "CASTMESH_STREAMS_MAX_STREAMS",
        default_value = "1000"
    )]
    pub max_streams: usize,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id: unique in the cluster, at least 1.
    #[arg(
        id = "cluster.node_id",
        long = "cluster-node-id",
        env = "CASTMESH_CLUSTER_NODE_ID",
        default_value = "1"
    )]
    pub node_id: u64,
    /// Where this node keeps the Raft log and cluster metadata (RocksDB). Back it up like
    /// a database (see docs/operations.md). Empty: a fresh temporary directory removed at
    /// exit, i.e. a throwaway one-node cluster, which is what --dev runs.
    #[arg(id = "cluster.data_dir", long = "cluster-data-dir", env = "CASTMESH_CLUSTER_DATA_DIR", default_value = "", value_parser = path)]
    pub data_dir: PathBuf,
    /// gRPC: Raft between nodes, and the operator API used by castctl and grpcurl.
    #[arg(
        id = "cluster.grpc_listen",
        long = "cluster-grpc-listen",
        env = "CASTMESH_CLUSTER_GRPC_LISTEN",
        default_value = "0.0.0.0:50051"
    )]
    pub grpc_listen: SocketAddr,
    /// Host other nodes and clients use to reach this node (node record, URLs handed out
    /// by the admin API). Empty: the gRPC listen address, or 127.0.0.1 if that is
    /// 0.0.0.0.
    #[arg(
        id = "cluster.advertise_host",
        long = "cluster-advertise-host",
        env = "CASTMESH_CLUSTER_ADVERTISE_HOST",
        default_value = ""
    )]
    pub advertise_host: String,
    /// The voters of a new cluster as "ID=HOST:PORT" gRPC addresses, e.g.
    /// ["1=10.0.0.1:50051", "2=10.0.0.2:50051", "3=10.0.0.3:50051"] (comma-separated as
    /// a flag). Empty: this node alone.
    #[arg(
        id = "cluster.initial_members",
        long = "cluster-initial-members",
        env = "CASTMESH_CLUSTER_INITIAL_MEMBERS",
        value_delimiter = ','
    )]
    pub initial_members: Vec<String>,
    /// Free-form labels recorded with this node and shown by `castctl cluster status`,
    /// e.g. ["region=eu-west", "rack=b2"] (comma-separated as a flag).
    #[arg(
        id = "cluster.labels",
        long = "cluster-labels",
        env = "CASTMESH_CLUSTER_LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// Initialise a new cluster with initial_members at first start. Set it on exactly
    /// one node of a new cluster; a node that already has data ignores it. Nodes added
    /// later with `castctl cluster add-node` set it to false.
    #[arg(id = "cluster.bootstrap", long = "cluster-bootstrap", env = "CASTMESH_CLUSTER_BOOTSTRAP", default_value = "true", action = ArgAction::Set)]
    pub bootstrap: bool,
    /// Shared secret that nodes present to each other (Raft, forwarded writes). Required
    /// (at least 16 characters) when the cluster has other members. Same value on every
    /// node.
    #[arg(
        id = "cluster.secret",
        long = "cluster-secret",
        env = "CASTMESH_CLUSTER_SECRET",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub secret: Secret,
    /// Token operators present to the gRPC API (castctl --token, or CASTCTL_TOKEN).
    /// Empty: a random one is generated at startup and written to DATA_DIR/admin-token
    /// (mode 0600).
    #[arg(
        id = "cluster.admin_token",
        long = "cluster-admin-token",
        env = "CASTMESH_CLUSTER_ADMIN_TOKEN",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub admin_token: Secret,
    /// Open publishing: any stream key may publish and creates a stream whose id is the
    /// key, as with nginx-rtmp: anyone who can reach the RTMP port publishes, and can
    /// take over a stream whose id they know. Off: only keys of streams created with
    /// `castctl stream create` publish.
    #[arg(id = "cluster.open_publishing", long = "cluster-open-publishing", env = "CASTMESH_CLUSTER_OPEN_PUBLISHING", default_value = "false", action = ArgAction::Set)]
    pub open_publishing: bool,
    /// In open mode, new streams one client address may create per open_stream_window.
    /// Each is kept in the cluster until it has been ended for `[streams] retention`,
    /// then forgotten.
    #[arg(
        id = "cluster.max_open_streams_per_ip",
        long = "cluster-max-open-streams-per-ip",
        env = "CASTMESH_CLUSTER_MAX_OPEN_STREAMS_PER_IP",
        default_value = "100"
    )]
    pub max_open_streams_per_ip: u32,
    /// The window max_open_streams_per_ip is counted over.
    #[arg(id = "cluster.open_stream_window", long = "cluster-open-stream-window", env = "CASTMESH_CLUSTER_OPEN_STREAM_WINDOW", default_value = "1h", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub open_stream_window: Duration,
    /// The origin node of a stream holds a lease in the cluster for this long and renews
    /// it every third of it. A node that could not renew for this long stops acting as
    /// origin.
    #[arg(id = "cluster.lease_ttl", long = "cluster-lease-ttl", env = "CASTMESH_CLUSTER_LEASE_TTL", default_value = "6s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Raft leader heartbeat interval.
    #[arg(id = "cluster.heartbeat_interval", long = "cluster-heartbeat-interval", env = "CASTMESH_CLUSTER_HEARTBEAT_INTERVAL", default_value = "100ms", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Raft election timeout, randomised between this and twice this; a dead leader is
    /// replaced after roughly 2-3 times this.
    #[arg(id = "cluster.election_timeout", long = "cluster-election-timeout", env = "CASTMESH_CLUSTER_ELECTION_TIMEOUT", default_value = "300ms", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub election_timeout: Duration,
    /// Raft log entries between snapshots; entries before a snapshot are purged. A node
    /// that was down longer than this catches up by receiving the snapshot.
    #[arg(
        id = "cluster.snapshot_threshold",
        long = "cluster-snapshot-threshold",
        env = "CASTMESH_CLUSTER_SNAPSHOT_THRESHOLD",
        default_value = "5000"
    )]
    pub snapshot_threshold: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct MeshConfig {
    /// QUIC (UDP) address of the media mesh between nodes.
    #[arg(
        id = "mesh.listen",
        long = "mesh-listen",
        env = "CASTMESH_MESH_LISTEN",
        default_value = "0.0.0.0:4433"
    )]
    pub listen: SocketAddr,
    /// The cluster CA certificate (PEM), made with `castmesh cert init --dir DIR`. Set
    /// ca_cert, cert and key together, or none: a throwaway CA that only this node
    /// trusts (a node alone, --dev).
    #[arg(id = "mesh.ca_cert", long = "mesh-ca-cert", env = "CASTMESH_MESH_CA_CERT", default_value = "", value_parser = path)]
    pub ca_cert: PathBuf,
    /// This node's certificate (PEM), made with `castmesh cert issue --dir DIR --node-id
    /// N`.
    #[arg(id = "mesh.cert", long = "mesh-cert", env = "CASTMESH_MESH_CERT", default_value = "", value_parser = path)]
    pub cert: PathBuf,
    /// This node's private key (PEM), made with the certificate.
    #[arg(id = "mesh.key", long = "mesh-key", env = "CASTMESH_MESH_KEY", default_value = "", value_parser = path)]
    pub key: PathBuf,
    /// Changes (about one per part) an edge subscribed to a stream on this node may fall
    /// behind by; beyond it the subscription is dropped (this node never waits for an
    /// edge) and the edge resubscribes.
    #[arg(
        id = "mesh.subscriber_queue",
        long = "mesh-subscriber-queue",
        env = "CASTMESH_MESH_SUBSCRIBER_QUEUE",
        default_value = "256"
    )]
    pub subscriber_queue: usize,
    /// An edge ends its subscription to a stream nobody requested from it for this long.
    #[arg(id = "mesh.edge_idle_timeout", long = "mesh-edge-idle-timeout", env = "CASTMESH_MESH_EDGE_IDLE_TIMEOUT", default_value = "30s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub edge_idle_timeout: Duration,
}

impl Default for MeshConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// Who may create an account through `POST /api/v1/auth/signup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone.
    Open,
    /// Whoever holds an invitation (`castctl user invite`).
    Invite,
    /// Nobody: accounts are made with `castctl user create`.
    Closed,
}

/// A role as the settings name it.
fn role(s: &str) -> Result<castmesh_cluster::accounts::Role, String> {
    use castmesh_cluster::accounts::Role;
    match s {
        "admin" => Ok(Role::Admin),
        "streamer" => Ok(Role::Streamer),
        "viewer" => Ok(Role::Viewer),
        _ => Err(format!("{s:?} is not a role (admin, streamer, viewer)")),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Who may sign up: open (anyone), invite (with an invitation from `castctl user
    /// invite`) or closed (only `castctl user create`).
    #[arg(
        id = "accounts.signup",
        long = "accounts-signup",
        env = "CASTMESH_ACCOUNTS_SIGNUP",
        default_value = "closed",
        value_enum
    )]
    pub signup: SignupPolicy,
    /// The role of an account made by signing up without an invitation: streamer
    /// (creates and runs streams) or viewer (watches and chats).
    #[arg(id = "accounts.signup_role", long = "accounts-signup-role", env = "CASTMESH_ACCOUNTS_SIGNUP_ROLE", default_value = "streamer", value_parser = role)]
    pub signup_role: castmesh_cluster::accounts::Role,
    /// How long a session lasts after signing in.
    #[arg(id = "accounts.session_ttl", long = "accounts-session-ttl", env = "CASTMESH_ACCOUNTS_SESSION_TTL", default_value = "30days", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How long an invitation can be used.
    #[arg(id = "accounts.invite_ttl", long = "accounts-invite-ttl", env = "CASTMESH_ACCOUNTS_INVITE_TTL", default_value = "7days", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub invite_ttl: Duration,
    /// Accounts the cluster holds at most; signing up beyond it is refused.
    #[arg(
        id = "accounts.max_users",
        long = "accounts-max-users",
        env = "CASTMESH_ACCOUNTS_MAX_USERS",
        default_value = "100000"
    )]
    pub max_users: usize,
    /// Streams a streamer may own at once (admins are not limited).
    #[arg(
        id = "accounts.max_streams_per_user",
        long = "accounts-max-streams-per-user",
        env = "CASTMESH_ACCOUNTS_MAX_STREAMS_PER_USER",
        default_value = "100"
    )]
    pub max_streams_per_user: usize,
    /// argon2id memory per password hash, in KiB (OWASP's minimum is 19456).
    #[arg(
        id = "accounts.password_memory_kib",
        long = "accounts-password-memory-kib",
        env = "CASTMESH_ACCOUNTS_PASSWORD_MEMORY_KIB",
        default_value = "19456"
    )]
    pub password_memory_kib: u32,
    /// argon2id passes over that memory.
    #[arg(
        id = "accounts.password_iterations",
        long = "accounts-password-iterations",
        env = "CASTMESH_ACCOUNTS_PASSWORD_ITERATIONS",
        default_value = "2"
    )]
    pub password_iterations: u32,
    /// Password hashes this node computes at once (each uses a core while it runs),
    /// so sign-ins cannot starve the media path.
    #[arg(
        id = "accounts.max_concurrent_hashes",
        long = "accounts-max-concurrent-hashes",
        env = "CASTMESH_ACCOUNTS_MAX_CONCURRENT_HASHES",
        default_value = "1"
    )]
    pub max_concurrent_hashes: usize,
    /// Sign-ins and sign-ups waiting for a hash at once; more are answered 503.
    #[arg(
        id = "accounts.max_queued_hashes",
        long = "accounts-max-queued-hashes",
        env = "CASTMESH_ACCOUNTS_MAX_QUEUED_HASHES",
        default_value = "32"
    )]
    pub max_queued_hashes: usize,
    /// Failed sign-ins allowed per client address and email within login_window; more
    /// are answered 429 without checking the password.
    #[arg(
        id = "accounts.max_failed_logins",
        long = "accounts-max-failed-logins",
        env = "CASTMESH_ACCOUNTS_MAX_FAILED_LOGINS",
        default_value = "10"
    )]
    pub max_failed_logins: u32,
    /// The window max_failed_logins is counted over.
    #[arg(id = "accounts.login_window", long = "accounts-login-window", env = "CASTMESH_ACCOUNTS_LOGIN_WINDOW", default_value = "15m", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Unknown session tokens accepted per client address within login_window (each
    /// costs a read of the leader's commit index); more are answered 429.
    #[arg(
        id = "accounts.max_unknown_tokens",
        long = "accounts-max-unknown-tokens",
        env = "CASTMESH_ACCOUNTS_MAX_UNKNOWN_TOKENS",
        default_value = "60"
    )]
    pub max_unknown_tokens: u32,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// HTTP callbacks a backend decides publishes with, as nginx-rtmp's `on_publish` and
/// `on_publish_done` (docs/api.md, "Publish hooks").
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// URL (http://) POSTed before a publish starts; empty: no hook. 2xx allows, 3xx
    /// with Location renames the stream (its public id), anything else refuses. For a
    /// name the cluster does not know, this hook decides alone and the stream is made.
    #[arg(
        id = "hooks.on_publish",
        long = "hooks-on-publish",
        env = "CASTMESH_HOOKS_ON_PUBLISH",
        default_value = ""
    )]
    pub on_publish: HookUrl,
    /// URL (http://) POSTed once a published stream has really ended (not on a
    /// takeover or a reconnect within the grace period); empty: no hook.
    #[arg(
        id = "hooks.on_publish_done",
        long = "hooks-on-publish-done",
        env = "CASTMESH_HOOKS_ON_PUBLISH_DONE",
        default_value = ""
    )]
    pub on_publish_done: HookUrl,
    /// Longest a hook call may take (connect, request and answer); an on_publish that
    /// takes longer refuses the publish.
    #[arg(id = "hooks.timeout", long = "hooks-timeout", env = "CASTMESH_HOOKS_TIMEOUT", default_value = "5s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// When on_publish cannot be reached (connection refused, timeout, 5xx): true lets
    /// streams the cluster knows publish on their key alone; false (the default)
    /// refuses. A name the cluster does not know is refused either way.
    #[arg(id = "hooks.fail_open", long = "hooks-fail-open", env = "CASTMESH_HOOKS_FAIL_OPEN", default_value = "false", action = ArgAction::Set)]
    pub fail_open: bool,
    /// on_publish_done events waiting for delivery at once (one the backend cannot
    /// take is tried again, with growing pauses); beyond it new ones are dropped,
    /// logged and counted.
    #[arg(
        id = "hooks.max_pending",
        long = "hooks-max-pending",
        env = "CASTMESH_HOOKS_MAX_PENDING",
        default_value = "10000"
    )]
    pub max_pending: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// The watch page's WebSocket (status, viewer count and chat of one stream) and the
/// chat's limits (docs/api.md, "Watch socket and chat").
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Watch sockets open at once on this node; more are refused (503).
    #[arg(
        id = "chat.max_sockets",
        long = "chat-max-sockets",
        env = "CASTMESH_CHAT_MAX_SOCKETS",
        default_value = "10000"
    )]
    pub max_sockets: usize,
    /// Watch sockets per client address (the forwarded one behind a trusted proxy);
    /// more are refused (429).
    #[arg(
        id = "chat.max_sockets_per_ip",
        long = "chat-max-sockets-per-ip",
        env = "CASTMESH_CHAT_MAX_SOCKETS_PER_IP",
        default_value = "20"
    )]
    pub max_sockets_per_ip: usize,
    /// Longest chat message, in characters.
    #[arg(
        id = "chat.max_message_chars",
        long = "chat-max-message-chars",
        env = "CASTMESH_CHAT_MAX_MESSAGE_CHARS",
        default_value = "500"
    )]
    pub max_message_chars: usize,
    /// Messages one user may post in a stream's chat per chat.rate_window; the next
    /// one within the window mutes them for chat.mute.
    #[arg(
        id = "chat.rate_messages",
        long = "chat-rate-messages",
        env = "CASTMESH_CHAT_RATE_MESSAGES",
        default_value = "3"
    )]
    pub rate_messages: u32,
    /// The window chat.rate_messages counts over.
    #[arg(id = "chat.rate_window", long = "chat-rate-window", env = "CASTMESH_CHAT_RATE_WINDOW", default_value = "2s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// How long a user who posted too fast cannot post.
    #[arg(id = "chat.mute", long = "chat-mute", env = "CASTMESH_CHAT_MUTE", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub mute: Duration,
    /// Messages the stream's origin keeps, and a joining viewer receives.
    #[arg(
        id = "chat.history",
        long = "chat-history",
        env = "CASTMESH_CHAT_HISTORY",
        default_value = "50"
    )]
    pub history: usize,
    /// Events waiting to be written to one socket; a socket further behind is closed
    /// (its page reconnects), so a slow reader never holds anyone up.
    #[arg(
        id = "chat.socket_queue",
        long = "chat-socket-queue",
        env = "CASTMESH_CHAT_SOCKET_QUEUE",
        default_value = "256"
    )]
    pub socket_queue: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

/// Pushing streams to other RTMP(S) servers (docs/api.md, "Restreaming").
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct RestreamConfig {
    /// Destinations one stream may have.
    #[arg(
        id = "restream.max_destinations",
        long = "restream-max-destinations",
        env = "CASTMESH_RESTREAM_MAX_DESTINATIONS",
        default_value = "10"
    )]
    pub max_destinations: usize,
    /// Networks destinations may be in although they are internal (loopback, private,
    /// link-local, shared, or one of the cluster's nodes), e.g. ["127.0.0.0/8"] for a
    /// test or ["10.1.2.3"] for an in-house ingest; comma-separated as a flag. Empty:
    /// only public addresses, so a streamer cannot aim the origin at internal services.
    #[arg(
        id = "restream.allow_networks",
        long = "restream-allow-networks",
        env = "CASTMESH_RESTREAM_ALLOW_NETWORKS",
        default_value = ""
    )]
    pub allow_networks: Networks,
    /// Extra certificate authorities (a PEM file) trusted for rtmps:// destinations,
    /// besides the public web roots built in. Empty: the public roots only.
    #[arg(id = "restream.ca_file", long = "restream-ca-file", env = "CASTMESH_RESTREAM_CA_FILE", default_value = "", value_parser = path)]
    pub ca_file: PathBuf,
    /// A destination must accept the connection, the handshake and the publish within
    /// this time.
    #[arg(id = "restream.connect_timeout", long = "restream-connect-timeout", env = "CASTMESH_RESTREAM_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A destination that takes no bytes for this long is disconnected (and retried).
    #[arg(id = "restream.write_timeout", long = "restream-write-timeout", env = "CASTMESH_RESTREAM_WRITE_TIMEOUT", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Media waiting for one destination, at most: beyond it the oldest is dropped up
    /// to the next keyframe (counted), and the ingest never waits.
    #[arg(id = "restream.queue", long = "restream-queue", env = "CASTMESH_RESTREAM_QUEUE", default_value = "10s", value_parser = duration)]
    #[serde(with = "humantime_serde")]
    pub queue: Duration,
    /// Bytes waiting for one destination, at most (the same drop as `queue`).
    #[arg(
        id = "restream.queue_bytes",
        long = "restream-queue-bytes",
        env = "CASTMESH_RESTREAM_QUEUE_BYTES",
        default_value = "33554432"
    )]
    pub queue_bytes: usize,
}

impl Default for RestreamConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Enables `POST /debug/streams/{id}/crash/{actor}` for fault-injection tests.
    #[arg(id = "debug.fault_injection", long = "debug-fault-injection", env = "CASTMESH_DEBUG_FAULT_INJECTION", default_value = "false", action = ArgAction::Set)]
    pub fault_injection: bool,
}

#[cfg(feature = "test-hooks")]
impl Default for DebugConfig {
    fn default() -> Self {
        declared_defaults()
    }
}

impl MeshConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let set = [&self.ca_cert, &self.cert, &self.key]
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .count();
        if set != 0 && set != 3 {
            return Err(ConfigError(
                "mesh.ca_cert, mesh.cert and mesh.key are set together (or all left empty)".into(),
            ));
        }
        if self.subscriber_queue < 16 {
            return Err(ConfigError(format!(
                "mesh.subscriber_queue = {} is too small (at least 16 changes)",
                self.subscriber_queue
            )));
        }
        if self.edge_idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError(
                "mesh.edge_idle_timeout must be at least 1s".into(),
            ));
        }
        Ok(())
    }
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A hook's URL, or none (empty in the file). Only `http://`, as nginx-rtmp's notify
/// module: a backend on another host sits behind a TLS-terminating proxy on this one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HookUrl(Option<axum::http::Uri>);

impl HookUrl {
    pub fn uri(&self) -> Option<&axum::http::Uri> {
        self.0.as_ref()
    }
}

impl std::str::FromStr for HookUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Self(None));
        }
        let uri: axum::http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        let usage = || {
            format!(
                "{s:?}: hooks are called over http://HOST[:PORT]/PATH (for a backend elsewhere, put a TLS-terminating proxy on this host)"
            )
        };
        let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(usage());
        };
        // The http crate accepts what the hook client could not use: user info (it
        // would travel in the Host header), an empty host, a port that is no port
        // (`:99999`, `:abc`), a query without a path.
        let port_ok = authority.as_str() == authority.host() || authority.port_u16().is_some();
        let path_ok = uri
            .path_and_query()
            .is_none_or(|p| p.as_str().starts_with('/'));
        if authority.as_str().contains('@') || authority.host().is_empty() || !port_ok || !path_ok {
            return Err(usage());
        }
        Ok(Self(Some(uri)))
    }
}

impl std::fmt::Display for HookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(uri) => uri.fmt(f),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for HookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl Serialize for HookUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A parsed `initial_members` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub addr: String,
}

impl ClusterConfig {
    /// The initial voters; just this node when none are listed.
    pub fn members(&self) -> Result<Vec<Member>, ConfigError> {
        if self.initial_members.is_empty() {
            return Ok(vec![Member {
                id: self.node_id,
                addr: format!("{}:{}", self.advertised_host(), self.grpc_listen.port()),
            }]);
        }
        self.initial_members
            .iter()
            .map(|m| {
                let bad = || {
                    ConfigError(format!(
                        "cluster.initial_members entries are \"ID=HOST:PORT\", got {m:?}"
                    ))
                };
                let (id, addr) = m.split_once('=').ok_or_else(bad)?;
                let id: u64 = id.trim().parse().map_err(|_| bad())?;
                let addr = addr.trim();
                if id == 0
                    || addr
                        .rsplit_once(':')
                        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    return Err(bad());
                }
                Ok(Member {
                    id,
                    addr: addr.to_string(),
                })
            })
            .collect()
    }

    /// The node's labels as a map.
    pub fn label_map(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        self.labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(ConfigError(format!(
                    "cluster.labels entries are \"KEY=VALUE\", got {l:?}"
                ))),
            })
            .collect()
    }

    /// The host in URLs and addresses this node hands out.
    pub fn advertised_host(&self) -> String {
        if !self.advertise_host.is_empty() {
            return self.advertise_host.clone();
        }
        let ip = self.grpc_listen.ip();
        if ip.is_unspecified() {
            "127.0.0.1".into()
        } else {
            ip.to_string()
        }
    }

    /// This node's gRPC address as peers reach it.
    pub fn advertised_grpc(&self) -> String {
        self.members()
            .ok()
            .and_then(|ms| ms.into_iter().find(|m| m.id == self.node_id))
            .map(|m| m.addr)
            .unwrap_or_else(|| format!("{}:{}", self.advertised_host(), self.grpc_listen.port()))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.node_id == 0 {
            return err("cluster.node_id must be at least 1".into());
        }
        let members = self.members()?;
        let ids: std::collections::BTreeSet<u64> = members.iter().map(|m| m.id).collect();
        if ids.len() != members.len() {
            return err("cluster.initial_members lists a node id twice".into());
        }
        self.label_map()?;
        if !self.initial_members.is_empty() && !members.iter().any(|m| m.id == self.node_id) {
            return err(format!(
                "cluster.initial_members must include this node (cluster.node_id = {})",
                self.node_id
            ));
        }
        let alone = members.len() == 1 && self.bootstrap;
        if !alone && self.secret.0.len() < 16 {
            return err(
                "cluster.secret must be set (at least 16 characters) when the cluster has other members".into(),
            );
        }
        for (name, v) in [
            ("cluster.secret", &self.secret.0),
            ("cluster.admin_token", &self.admin_token.0),
        ] {
            if !v.bytes().all(|b| b.is_ascii_graphic()) {
                return err(format!(
                    "{name} must be printable ASCII without spaces (it travels in a header)"
                ));
            }
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl < self.election_timeout * 4 {
            return err(
                "cluster.lease_ttl must be at least 1s and four times cluster.election_timeout (leases must outlive an election)".into(),
            );
        }
        if !self.admin_token.0.is_empty() && self.admin_token.0.len() < 16 {
            return err("cluster.admin_token must be at least 16 characters".into());
        }
        if self.heartbeat_interval < Duration::from_millis(1)
            || self.election_timeout < self.heartbeat_interval * 2
        {
            return err(
                "cluster.election_timeout must be at least twice cluster.heartbeat_interval".into(),
            );
        }
        if self.snapshot_threshold == 0 {
            return err("cluster.snapshot_threshold must be at least 1".into());
        }
        Ok(())
    }
}

/// A configuration problem, worded for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A setting that cannot be carried between the file's and the flags' forms.
    fn internal(e: impl std::fmt::Display) -> Self {
        ConfigError(format!("cannot apply the settings: {e}"))
    }
}

impl Config {
    /// What `castmesh` alone or `castmesh --dev` runs: the defaults with open
    /// publishing, as nginx-rtmp users expect on their own machine.
    pub fn dev() -> Self {
        let mut c = Self::default();
        c.cluster.open_publishing = true;
        c.accounts.signup = SignupPolicy::Open;
        c.dev = true;
        c
    }

    /// Reads and validates a TOML file; the error is one line naming file, line and column.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Self::from_text(&text, path)
    }

    /// Parses and validates the TOML text of the file at `path` (named in errors).
    pub fn from_text(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(" line {line}, column {column}:")
                })
                .unwrap_or_default();
            ConfigError(format!(
                "invalid config {}:{at} {}",
                path.display(),
                e.message().trim().replace('\n', " ")
            ))
        })?;
        config
            .validate()
            .map_err(|e| ConfigError(format!("invalid config {}: {}", path.display(), e.0)))?;
        Ok(config)
    }

    /// Limits that must hold for the playlist rules to be satisfiable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let h = &self.hls;
        if h.segment_target < Duration::from_millis(500)
            || h.segment_target > Duration::from_secs(30)
        {
            return err(format!(
                "hls.segment_target must be between 500ms and 30s, got {}",
                humantime::format_duration(h.segment_target)
            ));
        }
        if h.part_target < Duration::from_millis(50) || h.part_target * 2 > h.segment_target {
            return err(format!(
                "hls.part_target must be at least 50ms and at most half of hls.segment_target, got {}",
                humantime::format_duration(h.part_target)
            ));
        }
        if h.window_segments < 3 || h.window_segments > 100 {
            return err(format!(
                "hls.window_segments must be between 3 and 100 (players need at least 3 target durations), got {}",
                h.window_segments
            ));
        }
        // A part must not wait for its frames much longer than a frame interval.
        if self.rtmp.read_interval > Duration::from_millis(100) {
            return err(format!(
                "rtmp.read_interval must be at most 100ms, got {}",
                humantime::format_duration(self.rtmp.read_interval)
            ));
        }
        // Connect, metadata and publish commands of real encoders reach a few KiB.
        if self.rtmp.max_command_bytes < 4096 {
            return err(format!(
                "rtmp.max_command_bytes must be at least 4096, got {}",
                self.rtmp.max_command_bytes
            ));
        }
        if self.rtmp.app.is_empty() || self.rtmp.app.contains('/') {
            return err(format!(
                "rtmp.app must be a non-empty name without '/', got {:?}",
                self.rtmp.app
            ));
        }
        for (name, v) in [
            ("rtmp.max_connections", self.rtmp.max_connections),
            (
                "rtmp.max_pending_bytes",
                self.rtmp.max_pending_bytes as usize,
            ),
            ("rtmp.max_bitrate_kbps", self.rtmp.max_bitrate_kbps as usize),
            (
                "rtmp.max_connections_per_ip",
                self.rtmp.max_connections_per_ip,
            ),
            ("rtmp.max_commands", self.rtmp.max_commands as usize),
            ("rtmp.max_amf_depth", self.rtmp.max_amf_depth),
            ("rtmp.max_aggregate_tags", self.rtmp.max_aggregate_tags),
            (
                "rtmp.max_failed_publishes",
                self.rtmp.max_failed_publishes as usize,
            ),
            ("http.max_connections", self.http.max_connections),
            ("http.max_body_bytes", self.http.max_body_bytes),
            (
                "http.max_connections_per_ip",
                self.http.max_connections_per_ip,
            ),
            ("grpc.max_connections", self.grpc.max_connections),
            (
                "grpc.max_concurrent_calls",
                self.grpc.max_concurrent_calls as usize,
            ),
            ("streams.max_streams", self.streams.max_streams),
            (
                "streams.max_viewer_sessions_per_ip",
                self.streams.max_viewer_sessions_per_ip,
            ),
            ("accounts.max_users", self.accounts.max_users),
            ("hooks.max_pending", self.hooks.max_pending),
            ("chat.max_sockets", self.chat.max_sockets),
            ("chat.max_sockets_per_ip", self.chat.max_sockets_per_ip),
            ("chat.max_message_chars", self.chat.max_message_chars),
            ("chat.rate_messages", self.chat.rate_messages as usize),
            ("chat.history", self.chat.history),
            ("chat.socket_queue", self.chat.socket_queue),
            ("restream.max_destinations", self.restream.max_destinations),
            ("restream.queue_bytes", self.restream.queue_bytes),
            (
                "accounts.max_concurrent_hashes",
                self.accounts.max_concurrent_hashes,
            ),
            (
                "accounts.max_queued_hashes",
                self.accounts.max_queued_hashes,
            ),
            (
                "accounts.max_failed_logins",
                self.accounts.max_failed_logins as usize,
            ),
            (
                "accounts.max_unknown_tokens",
                self.accounts.max_unknown_tokens as usize,
            ),
            (
                "accounts.password_iterations",
                self.accounts.password_iterations as usize,
            ),
        ] {
            if v == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("rtmp.handshake_timeout", self.rtmp.handshake_timeout),
            ("rtmp.publish_timeout", self.rtmp.publish_timeout),
            ("rtmp.idle_timeout", self.rtmp.idle_timeout),
            ("rtmp.write_timeout", self.rtmp.write_timeout),
            (
                "rtmp.failed_publish_window",
                self.rtmp.failed_publish_window,
            ),
            ("http.header_timeout", self.http.header_timeout),
            ("http.write_timeout", self.http.write_timeout),
            ("http.request_timeout", self.http.request_timeout),
            ("grpc.request_timeout", self.grpc.request_timeout),
            ("grpc.idle_timeout", self.grpc.idle_timeout),
            ("streams.viewer_timeout", self.streams.viewer_timeout),
            ("streams.restart_window", self.streams.restart_window),
            ("accounts.session_ttl", self.accounts.session_ttl),
            ("accounts.invite_ttl", self.accounts.invite_ttl),
            ("accounts.login_window", self.accounts.login_window),
            ("hooks.timeout", self.hooks.timeout),
            ("chat.rate_window", self.chat.rate_window),
            ("restream.connect_timeout", self.restream.connect_timeout),
            ("restream.write_timeout", self.restream.write_timeout),
            ("restream.queue", self.restream.queue),
        ] {
            if v.is_zero() {
                return err(format!("{name} must be longer than zero"));
            }
        }
        // A post fits the watch socket's 8 KiB message; the history fits what the
        // cluster archives of an ended chat.
        if self.chat.max_message_chars > 1000 {
            return err(format!(
                "chat.max_message_chars must be at most 1000, got {}",
                self.chat.max_message_chars
            ));
        }
        let max_destinations = castmesh_cluster::restream::MAX_DESTINATIONS;
        if self.restream.max_destinations > max_destinations {
            return err(format!(
                "restream.max_destinations must be at most {max_destinations}, got {}",
                self.restream.max_destinations
            ));
        }
        let max_history = castmesh_cluster::chat::MAX_ARCHIVE_LINES;
        if self.chat.history > max_history {
            return err(format!(
                "chat.history must be at most {max_history}, got {}",
                self.chat.history
            ));
        }
        if self.http.tls_cert.as_os_str().is_empty() != self.http.tls_key.as_os_str().is_empty() {
            return err("http.tls_cert and http.tls_key must be set together".into());
        }
        // argon2's own floor is 8 KiB per lane; below 1 MiB a hash protects little.
        if !(1024..=4 * 1024 * 1024).contains(&self.accounts.password_memory_kib) {
            return err(format!(
                "accounts.password_memory_kib must be between 1024 and 4194304, got {}",
                self.accounts.password_memory_kib
            ));
        }
        self.cluster.validate()?;
        self.mesh.validate()
    }

    /// Applies `KEY=VALUE` settings (`section.key`, as in the file). A value is read
    /// as TOML (numbers, booleans, arrays) or else taken as a string ("5s").
    pub fn with_overrides(self, settings: &[String]) -> Result<Self, ConfigError> {
        if settings.is_empty() {
            return Ok(self);
        }
        let mut tree = toml::Table::try_from(&self)
            .map_err(|e| ConfigError(format!("cannot apply --set: {e}")))?;
        for setting in settings {
            let (key, raw) = setting
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("--set takes KEY=VALUE, got {setting:?}")))?;
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            let unknown = || ConfigError(format!("--set {key}: no such setting"));
            let (section, name) = key.trim().split_once('.').ok_or_else(unknown)?;
            let slot = tree
                .get_mut(section)
                .and_then(|s| s.as_table_mut())
                .and_then(|s| s.get_mut(name))
                .ok_or_else(unknown)?;
            *slot = value;
        }
        Config::deserialize(tree).map_err(|e| ConfigError(format!("--set: {}", e.message())))
    }

    /// EXT-X-TARGETDURATION: the segment target rounded up to whole seconds.
    pub fn target_duration_s(&self) -> u32 {
        self.hls.segment_target.as_secs_f64().ceil() as u32
    }
}

/// Command line: the node's own options, then every setting as a flag (each also read
/// from its `CASTMESH_*` environment variable), which wins over the config file.
#[derive(Debug, clap::Parser)]
#[command(
    name = "castmesh",
    version,
    about = "castmesh node: RTMP in, LL-HLS out, cluster metadata over Raft",
    after_help = "Every setting is also a key of the config file: `castmesh defaults` prints them all with their defaults (configs/dev.toml)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Run as a one-node cluster with embedded defaults and open publishing (the default
    /// when no --config is given).
    #[arg(long, conflicts_with = "config")]
    pub dev: bool,
    /// TOML configuration file (configs/dev.toml lists every setting).
    #[arg(long, env = "CASTMESH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Sets any key of the config file, e.g. `--set rtmp.max_commands=200` or
    /// `--set http.header_timeout=5s` (repeatable; applied after the file, before the
    /// other flags).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Log filter, e.g. `info` or `castmesh_node=debug`.
    #[arg(long, env = "CASTMESH_LOG", default_value = "info,openraft=warn")]
    pub log: String,
    #[command(flatten)]
    settings: Config,
    /// The settings given as flags or environment variables ("section.key").
    #[arg(skip)]
    given: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CliCommand {
    /// Certificates for the QUIC mesh (mutual TLS with a cluster CA).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Print every setting with its documentation and default, as a config file (what
    /// configs/dev.toml holds).
    Defaults,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Create the cluster CA: DIR/ca.pem and DIR/ca-key.pem (keep the key offline).
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Sign a node certificate with the CA in DIR: DIR/node-N.pem, DIR/node-N-key.pem.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        node_id: u64,
        /// Extra host names or addresses the certificate should carry.
        #[arg(long)]
        host: Vec<String>,
        /// Days the certificate is valid [default: 365].
        #[arg(long)]
        days: Option<u32>,
    },
    /// Re-sign node N's certificate (same key and names) for another period, replacing
    /// DIR/node-N.pem; restart the node to use it.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        node_id: u64,
        /// Days the certificate is valid from now [default: 365].
        #[arg(long)]
        days: Option<u32>,
    },
}

impl Cli {
    /// Parses the command line (exiting with clap's message on an error), noting which
    /// settings were given rather than defaulted.
    pub fn parse_args() -> Self {
        let command = <Self as clap::CommandFactory>::command().mut_args(|arg| {
            // `--rtmp-listen <LISTEN>` rather than the id `<rtmp.listen>`.
            match arg.get_id().as_str().split_once('.') {
                Some((_, key)) => {
                    let name = key.to_uppercase();
                    arg.value_name(name)
                }
                None => arg,
            }
        });
        Self::from_matches(command.get_matches())
    }

    fn from_matches(matches: clap::ArgMatches) -> Self {
        use clap::parser::ValueSource;
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        // An environment variable set to nothing counts as unset (a manifest's
        // `CASTMESH_CLUSTER_DATA_DIR=${DATA_DIR}` with DATA_DIR undefined must not
        // replace the file's data directory with a throwaway one).
        let empty = |id: &str| {
            matches
                .get_raw(id)
                .is_none_or(|mut values| values.all(|v| v.is_empty()))
        };
        cli.given = matches
            .ids()
            .map(|id| id.as_str())
            .filter(|id| id.contains('.'))
            .filter(|id| match matches.value_source(id) {
                Some(ValueSource::CommandLine) => true,
                Some(ValueSource::EnvVariable) => !empty(id),
                _ => false,
            })
            .map(str::to_string)
            .collect();
        cli
    }

    /// The effective configuration: defaults or file, then `--set`, then the settings
    /// given as flags or environment variables.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::dev(),
        };
        c = c.with_overrides(&self.set)?;
        if !self.given.is_empty() {
            let flags = toml::Table::try_from(&self.settings).map_err(ConfigError::internal)?;
            let mut tree = toml::Table::try_from(&c).map_err(ConfigError::internal)?;
            for id in &self.given {
                let (section, key) = id.split_once('.').expect("setting ids are section.key");
                if let (Some(value), Some(toml::Value::Table(into))) =
                    (flags[section].get(key), tree.get_mut(section))
                {
                    into.insert(key.to_string(), value.clone());
                }
            }
            c = Config::deserialize(tree).map_err(|e| ConfigError(e.message().to_string()))?;
        }
        // An empty value (`--cluster-initial-members ""`) means none.
        c.cluster.initial_members.retain(|m| !m.trim().is_empty());
        c.http.allowed_origins.retain(|o| !o.trim().is_empty());
        // Not a setting: the round trips through the file's form above drop it.
        c.dev = self.config.is_none();
        c.cluster.labels.retain(|l| !l.trim().is_empty());
        c.validate()
            .map_err(|e| ConfigError(format!("invalid setting: {}", e.0)))?;
        Ok(c)
    }
}

/// Lines of the generated reference file are kept under this width.
const REFERENCE_WIDTH: usize = 88;

const REFERENCE_HEADER: &str = "\
# castmesh node configuration: every setting, with its documentation and default.
# Generated from the code by `castmesh defaults`; a test keeps this file equal to it.
#
# `castmesh --config FILE.toml` reads a file like this one; keys left out keep their
# defaults. `castmesh` with no --config (or `castmesh --dev`) runs these defaults with
# two changes: cluster.open_publishing = true and accounts.signup = \"open\". Every key can also be set by a flag or an
# environment variable, which win over the file: `[rtmp] idle_timeout` is
# `--rtmp-idle-timeout` / `CASTMESH_RTMP_IDLE_TIMEOUT`.
# Durations are written like \"10s\", \"200ms\", \"1m\".
";

/// What `--dev` changes, shown under the setting it changes.
const DEV_CHANGES: &[(&str, &str)] = &[
    (
        "cluster.open_publishing",
        "--dev (and castmesh without --config) sets this to true.",
    ),
    (
        "accounts.signup",
        "--dev (and castmesh without --config) sets this to open.",
    ),
];

/// Every setting with its documentation and default value, as a config file: the
/// `--help` text of each flag, so the two never disagree.
pub fn reference_toml() -> String {
    let command = Config::augment_args(clap::Command::new("castmesh"));
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    let mut out = REFERENCE_HEADER.to_string();
    let mut section_now = "";
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some((section, key)) = id.split_once('.') else {
            continue;
        };
        // Test switches exist only in test builds; an operator's file never has them.
        if section == "debug" {
            continue;
        }
        if section != section_now {
            out.push_str(&format!("\n[{section}]\n"));
            section_now = section;
        }
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(ToString::to_string);
        let dev = DEV_CHANGES
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.to_string());
        for text in help.into_iter().chain(dev) {
            out.push_str(&comment(&text));
        }
        let value = &defaults[section][key];
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

/// `text` as `# ` lines wrapped at [`REFERENCE_WIDTH`].
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > REFERENCE_WIDTH && line != "#" {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    fn dev_toml() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.toml")
    }

    #[test]
    fn dev_toml_is_what_the_code_declares() {
        let text = std::fs::read_to_string(dev_toml()).unwrap();
        assert!(
            text == reference_toml(),
            "configs/dev.toml differs from the settings declared in node/src/config.rs; \
             regenerate it: cargo run --release --bin castmesh -- defaults > configs/dev.toml"
        );
    }

    #[test]
    fn dev_toml_holds_the_defaults_and_dev_opens_publishing_and_signup_only() {
        let from_file = Config::from_file(&dev_toml()).unwrap();
        let text = |c: &Config| toml::to_string(c).unwrap();
        assert_eq!(text(&from_file), text(&Config::default()));
        let mut dev = Config::dev();
        assert!(dev.cluster.open_publishing && !from_file.cluster.open_publishing);
        assert_eq!(
            (dev.accounts.signup, from_file.accounts.signup),
            (SignupPolicy::Open, SignupPolicy::Closed)
        );
        dev.cluster.open_publishing = false;
        dev.accounts.signup = SignupPolicy::Closed;
        dev.dev = false;
        assert_eq!(text(&dev), text(&from_file));
    }

    #[test]
    fn every_setting_has_help_a_flag_and_an_environment_variable_named_after_it() {
        let command = Config::augment_args(clap::Command::new("castmesh"));
        let mut settings = 0;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(arg.get_help().is_some(), "{id} has no documentation");
            assert_eq!(arg.get_long(), Some(id.replace(['.', '_'], "-").as_str()));
            let env = format!("CASTMESH_{}", id.replace('.', "_").to_uppercase());
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&env)), "{id}");
            settings += 1;
        }
        let in_file = toml::Table::try_from(Config::default()).unwrap();
        let keys: usize = in_file.values().map(|s| s.as_table().unwrap().len()).sum();
        assert_eq!(settings, keys, "every key of the file is a flag");
    }

    fn cli(args: &[&str]) -> Cli {
        let command = <Cli as clap::CommandFactory>::command();
        Cli::from_matches(command.try_get_matches_from(args).unwrap())
    }

    #[test]
    fn flags_win_over_set_which_wins_over_the_file_and_the_rest_keeps_the_file() {
        let f = write("[rtmp]\napp = \"file\"\nmax_commands = 50\n[hls]\nwindow_segments = 8\n");
        let path = f.path().to_str().unwrap();
        let c = cli(&["castmesh", "--config", path]).load().unwrap();
        assert_eq!((c.rtmp.app.as_str(), c.rtmp.max_commands), ("file", 50));
        let c = cli(&[
            "castmesh",
            "--config",
            path,
            "--set",
            "rtmp.app=set",
            "--set",
            "rtmp.max_commands=60",
            "--rtmp-app",
            "flag",
            "--cluster-initial-members",
            "",
        ])
        .load()
        .unwrap();
        assert_eq!(c.rtmp.app, "flag");
        assert_eq!(c.rtmp.max_commands, 60);
        // Given in the file, not as a flag: the flag's default does not undo it.
        assert_eq!(c.hls.window_segments, 8);
        assert!(c.cluster.initial_members.is_empty());
        assert!(!c.cluster.open_publishing, "a file keeps publishing closed");
        assert!(!c.dev);
        let dev = cli(&["castmesh", "--hls-part-target", "250ms"])
            .load()
            .unwrap();
        assert!(dev.cluster.open_publishing);
        assert!(dev.dev, "flags given to a dev node keep it one");
        assert_eq!(dev.hls.part_target, Duration::from_millis(250));
        let e = cli(&["castmesh", "--hls-window-segments", "1"])
            .load()
            .unwrap_err();
        assert!(e.0.contains("hls.window_segments"), "{e}");
    }

    #[test]
    fn an_empty_environment_variable_does_not_replace_the_files_value() {
        let f = write("[cluster]\ndata_dir = \"/var/lib/castmesh\"\n");
        let path = f.path().to_str().unwrap();
        // SAFETY: no other test reads or writes this variable, and a test that loads
        // the config while it is set sees the file's value either way.
        unsafe { std::env::set_var("CASTMESH_CLUSTER_DATA_DIR", "") };
        let c = cli(&["castmesh", "--config", path]).load();
        unsafe { std::env::remove_var("CASTMESH_CLUSTER_DATA_DIR") };
        assert_eq!(c.unwrap().cluster.data_dir, Path::new("/var/lib/castmesh"));
    }

    #[test]
    fn set_overrides_any_key_and_names_unknown_ones() {
        let c = Config::default()
            .with_overrides(&[
                "rtmp.max_commands=7".into(),
                "http.header_timeout=250ms".into(),
                "cluster.open_publishing=true".into(),
            ])
            .unwrap();
        assert_eq!(c.rtmp.max_commands, 7);
        assert_eq!(c.http.header_timeout, Duration::from_millis(250));
        assert!(c.cluster.open_publishing);
        let e = Config::default()
            .with_overrides(&["rtmp.max_comands=7".into()])
            .unwrap_err();
        assert!(e.0.contains("no such setting"), "{e}");
        let e = Config::default()
            .with_overrides(&["rtmp.max_commands=lots".into()])
            .unwrap_err();
        assert!(e.0.contains("--set"), "{e}");
    }

    #[test]
    fn paced_reads_wait_at_most_100ms() {
        let mut c = Config::default();
        c.rtmp.read_interval = Duration::from_millis(100);
        c.validate().unwrap();
        c.rtmp.read_interval = Duration::ZERO;
        c.validate().unwrap();
        c.rtmp.read_interval = Duration::from_millis(101);
        let e = c.validate().unwrap_err();
        assert!(
            e.0.contains("rtmp.read_interval must be at most 100ms"),
            "{e}"
        );
    }

    #[test]
    fn hook_urls_are_plain_http_with_a_usable_host_port_and_path() {
        for good in [
            "",
            "http://127.0.0.1:3000/api/streams/on_publish",
            "http://backend/on_publish?app=castmesh",
            "http://[::1]:3000/hook",
            "http://backend",
        ] {
            assert!(good.parse::<HookUrl>().is_ok(), "{good}");
        }
        for bad in [
            "https://backend/hook",
            "backend/hook",
            "http://user:secret@backend/hook",
            "http://:80/hook",
            "http://backend:99999/hook",
            "http://backend:abc/hook",
            "http://backend?x=1",
        ] {
            assert!(bad.parse::<HookUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_config_file_without_open_publishing_keeps_publishing_closed() {
        let f = write("[rtmp]\napp = \"live\"\n");
        assert!(!Config::from_file(f.path()).unwrap().cluster.open_publishing);
        let f = write("[cluster]\nopen_publishing = true\n");
        assert!(Config::from_file(f.path()).unwrap().cluster.open_publishing);
    }

    #[test]
    fn the_three_node_configs_are_valid_and_agree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/cluster-3");
        let configs: Vec<Config> = (1..=3)
            .map(|i| Config::from_file(&dir.join(format!("node{i}.toml"))).unwrap())
            .collect();
        for (i, c) in configs.iter().enumerate() {
            assert_eq!(c.cluster.node_id, i as u64 + 1);
            assert_eq!(c.cluster.bootstrap, i == 0, "only node 1 bootstraps");
            assert_eq!(
                c.cluster.members().unwrap(),
                configs[0].cluster.members().unwrap()
            );
            assert_eq!(c.cluster.secret, configs[0].cluster.secret);
            assert_eq!(
                c.cluster.advertised_grpc(),
                format!("127.0.0.{}:50051", i + 1)
            );
        }
    }

    #[test]
    fn a_multi_node_cluster_needs_a_secret() {
        let f = write("[cluster]\ninitial_members = [\"1=a:1\", \"2=b:1\"]\n");
        let e = Config::from_file(f.path()).unwrap_err().0;
        assert!(e.contains("cluster.secret"), "{e}");
        let f = write(
            "[cluster]\nnode_id = 3\ninitial_members = [\"1=a:1\"]\nsecret = \"0123456789abcdef\"\n",
        );
        let e = Config::from_file(f.path()).unwrap_err().0;
        assert!(e.contains("must include this node"), "{e}");
        let f = write("[cluster]\ninitial_members = [\"one=a:1\"]\n");
        let e = Config::from_file(f.path()).unwrap_err().0;
        assert!(e.contains("ID=HOST:PORT"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut c = Config::default();
        c.cluster.secret = Secret("s3cr3t-value-1234".into());
        c.cluster.admin_token = Secret("t0ken-value".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[test]
    fn errors_are_one_line_with_a_location() {
        let f = write("[hls]\nsegment_target = \"2s\"\npart_target = 5\n");
        let e = Config::from_file(f.path()).unwrap_err().0;
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let f = write("[rtmp]\nlisten = \"not an address\"\n");
        let e = Config::from_file(f.path()).unwrap_err().0;
        assert!(e.contains("line 2"), "{e}");
        let f = write("[nope]\n");
        assert!(
            Config::from_file(f.path())
                .unwrap_err()
                .0
                .contains("unknown field")
        );
        let f = write("[hls]\nwindow_segments = 1\n");
        assert!(
            Config::from_file(f.path())
                .unwrap_err()
                .0
                .contains("window_segments")
        );
    }
}
