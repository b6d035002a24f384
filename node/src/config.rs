//! Node configuration: embedded defaults, then a TOML file, then flags and
//! `CASTMESH_*` environment variables. `configs/dev.toml` documents every key.

use crate::client_addr::TrustedProxies;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub hls: HlsConfig,
    pub streams: StreamsConfig,
    pub cluster: ClusterConfig,
    pub mesh: MeshConfig,
    /// Test switches: compiled only with the `test-hooks` feature, so the binary an
    /// operator builds (`cargo build --release -p castmesh-node`) has none, and a
    /// config file naming them is refused there.
    #[cfg(feature = "test-hooks")]
    pub debug: DebugConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    pub listen: SocketAddr,
    /// The RTMP application publishers must use (`rtmp://host/APP/KEY`).
    pub app: String,
    /// A client must finish the RTMP handshake within this time.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// After the handshake, a client must start publishing within this time.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// A connection that sends nothing for this long is closed. A publisher sends
    /// frames many times a second, so silence means a dead link: closing it ends the
    /// publish here and lets the encoder's reconnect (to any node) take the stream
    /// over. Viewers see a frozen stream for this long, hence no more than 10 s
    /// (MediaMTX's read timeout; SRS waits 5 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Open connections from one client address (behind NAT, a studio's encoders share one).
    pub max_connections_per_ip: usize,
    /// TCP load balancers (addresses or CIDR ranges) that start each connection with a
    /// PROXY protocol header (v1 or v2) naming the client: the client's address then
    /// counts for the per-address limits. Connections from anywhere else must not send
    /// one.
    pub trusted_proxies: TrustedProxies,
    /// A write the client does not take within this time closes the connection (a
    /// client that floods commands and never reads).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Largest non-media message (commands, metadata, control); real ones are well
    /// under 4 KiB.
    pub max_command_bytes: u32,
    /// Command messages one connection may send (a publisher needs about ten).
    pub max_commands: u32,
    /// AMF0 arrays and objects nested in each other in one message.
    pub max_amf_depth: usize,
    /// Tags one aggregate message may carry.
    pub max_aggregate_tags: usize,
    /// Publish attempts refused for a wrong key, per client address, within
    /// `failed_publish_window`; beyond it the address is refused until the window ends
    /// (each wrong key costs a linearizable read on the Raft leader).
    pub max_failed_publishes: u32,
    #[serde(with = "humantime_serde")]
    pub failed_publish_window: Duration,
    /// Media bytes in flight between a stream's publisher socket and its segmenter;
    /// when full, the node stops reading that socket (TCP back-pressure) instead of
    /// buffering. Also the largest single media message accepted.
    pub max_pending_bytes: u32,
    /// A publisher sending more than this (kbit/s, over 2 s windows) is disconnected;
    /// with the window length it bounds the memory a stream can hold.
    pub max_bitrate_kbps: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A request's headers must arrive within this time of the connection being ready
    /// for them: from accept, and after each response on a kept-alive connection, so
    /// it is also the idle keep-alive timeout (players ask at least every target
    /// duration, LL-HLS players every part).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A response the client stops reading for this long closes its connection.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A request's handler must answer within this time (blocking playlist reloads
    /// answer within three target durations, well inside it).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Open connections in all, and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Reverse proxies and CDNs (addresses or CIDR ranges) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client (for viewer counting and per-address
    /// limits); from anyone else those headers are ignored. Connections from them are
    /// not held to `max_connections_per_ip`.
    pub trusted_proxies: TrustedProxies,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Segments are cut at the first keyframe after this duration.
    #[serde(with = "humantime_serde")]
    pub segment_target: Duration,
    /// LL-HLS part duration target.
    #[serde(with = "humantime_serde")]
    pub part_target: Duration,
    /// Complete segments listed in the live playlist.
    pub window_segments: usize,
    /// A publisher timestamp moving more than this is treated as a jump and smoothed.
    #[serde(with = "humantime_serde")]
    pub timestamp_jump: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// How long a stream waits for its publisher to come back.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// How long an ended stream's playlist (with ENDLIST) stays served.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A viewer counts while it fetched something within this time.
    #[serde(with = "humantime_serde")]
    pub viewer_timeout: Duration,
    /// Viewer sessions counted per client address and stream (viewers behind one NAT
    /// beyond it are not counted; a client inventing cookies fills no more).
    pub max_viewer_sessions_per_ip: usize,
    /// Restart intensity: more than `max_restarts` child restarts within
    /// `restart_window` ends the stream instead of restarting again.
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Live streams this node accepts at once.
    pub max_streams: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id: unique in the cluster, at least 1.
    pub node_id: u64,
    /// Where this node keeps the Raft log and cluster metadata (RocksDB). Empty: a
    /// fresh temporary directory removed at exit (a throwaway one-node dev cluster).
    pub data_dir: PathBuf,
    /// gRPC: Raft between nodes and the operator API (castctl, grpcurl).
    pub grpc_listen: SocketAddr,
    /// Host other nodes and clients use to reach this node (URLs handed out, the node
    /// record). Empty: the listen address, or 127.0.0.1 if that is 0.0.0.0.
    pub advertise_host: String,
    /// The voters of a new cluster, as "ID=HOST:PORT" (gRPC addresses). Empty: this
    /// node alone.
    pub initial_members: Vec<String>,
    /// Free-form "KEY=VALUE" labels recorded with the node, e.g. "region=eu-west".
    pub labels: Vec<String>,
    /// Initialise a new cluster with `initial_members` at first start. Set on exactly
    /// one node of a new cluster; a node that already has data ignores it.
    pub bootstrap: bool,
    /// Shared secret authenticating nodes to each other (Raft, forwarded writes).
    /// Required when the cluster has more than one member.
    pub secret: Secret,
    /// Token operators present (`authorization: Bearer …`). Empty: one is generated at
    /// startup and written to DATA_DIR/admin-token (mode 0600).
    pub admin_token: Secret,
    /// Any stream key may publish, creating a stream whose id is the key (nginx-rtmp
    /// style): anyone who can reach the RTMP port can publish, and take over a stream
    /// whose id they can read. On only under `--dev` or when set; off: only keys of
    /// streams created through the admin API.
    pub open_publishing: bool,
    /// Open publishing: new streams one client address may create per
    /// `open_stream_window` (each is a Raft record until it has been ended for the
    /// stream retention, when it is forgotten).
    pub max_open_streams_per_ip: u32,
    #[serde(with = "humantime_serde")]
    pub open_stream_window: Duration,
    /// Origin lease length; the origin renews it every third of this. A node that
    /// cannot renew for this long stops acting as origin.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Raft leader heartbeat interval.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Raft election timeout (randomised between this and twice this). A dead leader
    /// is replaced after about two to three times this.
    #[serde(with = "humantime_serde")]
    pub election_timeout: Duration,
    /// Raft log entries between snapshots; older entries are then purged.
    pub snapshot_threshold: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshConfig {
    /// QUIC (UDP) address of the media mesh between nodes.
    pub listen: SocketAddr,
    /// Cluster CA certificate, and this node's certificate and key (PEM), from
    /// `castmesh cert init|issue`. All empty: a throwaway CA only this node trusts
    /// (fine alone, `--dev`; other nodes cannot connect).
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Changes (about one per part) a subscribing edge may fall behind by. Beyond it
    /// the origin drops the subscription rather than wait, and the edge resubscribes.
    pub subscriber_queue: usize,
    /// An edge ends its subscription to a stream nobody requested for this long.
    #[serde(with = "humantime_serde")]
    pub edge_idle_timeout: Duration,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:4433".parse().expect("valid"),
            ca_cert: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            subscriber_queue: 256,
            edge_idle_timeout: Duration::from_secs(30),
        }
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

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::new(),
            grpc_listen: "0.0.0.0:50051".parse().expect("valid"),
            advertise_host: String::new(),
            initial_members: Vec::new(),
            labels: Vec::new(),
            bootstrap: true,
            secret: Secret::default(),
            admin_token: Secret::default(),
            open_publishing: false,
            max_open_streams_per_ip: 100,
            open_stream_window: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(6),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(300),
            snapshot_threshold: 5000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
#[cfg(feature = "test-hooks")]
pub struct DebugConfig {
    /// Enables `POST /debug/streams/{id}/crash/{actor}` for fault-injection tests.
    pub fault_injection: bool,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:1935".parse().expect("valid"),
            app: "live".into(),
            handshake_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            max_connections: 1000,
            max_connections_per_ip: 32,
            trusted_proxies: TrustedProxies::default(),
            write_timeout: Duration::from_secs(10),
            max_command_bytes: 64 * 1024,
            max_commands: 100,
            max_amf_depth: 16,
            max_aggregate_tags: 1024,
            max_failed_publishes: 10,
            failed_publish_window: Duration::from_secs(60),
            max_pending_bytes: 32 * 1024 * 1024,
            max_bitrate_kbps: 50_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid"),
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            max_connections: 20_000,
            max_connections_per_ip: 256,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Limits of the gRPC server (Raft, forwarded writes, the operator API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// A call must complete within this time.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A connection that sends nothing (not even an answer to the server's keep-alive
    /// ping, sent every third of this) for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections (peers keep one each; castctl opens one per command).
    pub max_connections: usize,
    /// Calls in progress on one connection.
    pub max_concurrent_calls: u32,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_concurrent_calls: 128,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(200),
            window_segments: 6,
            timestamp_jump: Duration::from_secs(10),
        }
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(10),
            retention: Duration::from_secs(60),
            viewer_timeout: Duration::from_secs(15),
            max_viewer_sessions_per_ip: 256,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            max_streams: 1000,
        }
    }
}

/// A configuration problem, worded for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// What `castmesh` alone or `castmesh --dev` runs: the defaults with open
    /// publishing, as nginx-rtmp users expect on their own machine.
    pub fn dev() -> Self {
        let mut c = Self::default();
        c.cluster.open_publishing = true;
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
        ] {
            if v.is_zero() {
                return err(format!("{name} must be longer than zero"));
            }
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

/// Command-line flags; each also reads a `CASTMESH_*` environment variable and,
/// when given, overrides the config file.
#[derive(Debug, clap::Parser)]
#[command(
    name = "castmesh",
    version,
    about = "castmesh node: RTMP in, LL-HLS out, cluster metadata over Raft"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Run as a one-node cluster with embedded defaults and open publishing (the default
    /// when no --config is given).
    #[arg(long, conflicts_with = "config")]
    pub dev: bool,
    /// TOML configuration file (see configs/dev.toml for every setting).
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

    #[arg(long, env = "CASTMESH_RTMP_LISTEN")]
    pub rtmp_listen: Option<SocketAddr>,
    #[arg(long, env = "CASTMESH_RTMP_APP")]
    pub rtmp_app: Option<String>,
    #[arg(long, env = "CASTMESH_RTMP_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rtmp_handshake_timeout: Option<Duration>,
    #[arg(long, env = "CASTMESH_RTMP_PUBLISH_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rtmp_publish_timeout: Option<Duration>,
    #[arg(long, env = "CASTMESH_RTMP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rtmp_idle_timeout: Option<Duration>,
    #[arg(long, env = "CASTMESH_RTMP_MAX_CONNECTIONS")]
    pub rtmp_max_connections: Option<usize>,
    #[arg(long, env = "CASTMESH_RTMP_MAX_PENDING_BYTES")]
    pub rtmp_max_pending_bytes: Option<u32>,
    #[arg(long, env = "CASTMESH_RTMP_MAX_BITRATE_KBPS")]
    pub rtmp_max_bitrate_kbps: Option<u64>,
    #[arg(long, env = "CASTMESH_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    #[arg(long, env = "CASTMESH_HLS_SEGMENT_TARGET", value_parser = humantime::parse_duration)]
    pub hls_segment_target: Option<Duration>,
    #[arg(long, env = "CASTMESH_HLS_PART_TARGET", value_parser = humantime::parse_duration)]
    pub hls_part_target: Option<Duration>,
    #[arg(long, env = "CASTMESH_HLS_WINDOW_SEGMENTS")]
    pub hls_window_segments: Option<usize>,
    #[arg(long, env = "CASTMESH_HLS_TIMESTAMP_JUMP", value_parser = humantime::parse_duration)]
    pub hls_timestamp_jump: Option<Duration>,
    #[arg(long, env = "CASTMESH_STREAMS_GRACE_PERIOD", value_parser = humantime::parse_duration)]
    pub streams_grace_period: Option<Duration>,
    #[arg(long, env = "CASTMESH_STREAMS_RETENTION", value_parser = humantime::parse_duration)]
    pub streams_retention: Option<Duration>,
    #[arg(long, env = "CASTMESH_STREAMS_VIEWER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub streams_viewer_timeout: Option<Duration>,
    #[arg(long, env = "CASTMESH_STREAMS_MAX_RESTARTS")]
    pub streams_max_restarts: Option<u32>,
    #[arg(long, env = "CASTMESH_STREAMS_RESTART_WINDOW", value_parser = humantime::parse_duration)]
    pub streams_restart_window: Option<Duration>,
    #[arg(long, env = "CASTMESH_STREAMS_MAX_STREAMS")]
    pub streams_max_streams: Option<usize>,
    #[arg(long, env = "CASTMESH_CLUSTER_NODE_ID")]
    pub cluster_node_id: Option<u64>,
    #[arg(long, env = "CASTMESH_CLUSTER_DATA_DIR")]
    pub cluster_data_dir: Option<PathBuf>,
    #[arg(long, env = "CASTMESH_CLUSTER_GRPC_LISTEN")]
    pub cluster_grpc_listen: Option<SocketAddr>,
    #[arg(long, env = "CASTMESH_CLUSTER_ADVERTISE_HOST")]
    pub cluster_advertise_host: Option<String>,
    /// Comma-separated "ID=HOST:PORT" list.
    #[arg(long, env = "CASTMESH_CLUSTER_INITIAL_MEMBERS", value_delimiter = ',')]
    pub cluster_initial_members: Option<Vec<String>>,
    /// Comma-separated "KEY=VALUE" list.
    #[arg(long, env = "CASTMESH_CLUSTER_LABELS", value_delimiter = ',')]
    pub cluster_labels: Option<Vec<String>>,
    #[arg(long, env = "CASTMESH_CLUSTER_BOOTSTRAP")]
    pub cluster_bootstrap: Option<bool>,
    #[arg(long, env = "CASTMESH_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<Secret>,
    #[arg(long, env = "CASTMESH_CLUSTER_ADMIN_TOKEN", hide_env_values = true)]
    pub cluster_admin_token: Option<Secret>,
    #[arg(long, env = "CASTMESH_CLUSTER_OPEN_PUBLISHING")]
    pub cluster_open_publishing: Option<bool>,
    #[arg(long, env = "CASTMESH_CLUSTER_LEASE_TTL", value_parser = humantime::parse_duration)]
    pub cluster_lease_ttl: Option<Duration>,
    #[arg(long, env = "CASTMESH_CLUSTER_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration)]
    pub cluster_heartbeat_interval: Option<Duration>,
    #[arg(long, env = "CASTMESH_CLUSTER_ELECTION_TIMEOUT", value_parser = humantime::parse_duration)]
    pub cluster_election_timeout: Option<Duration>,
    #[arg(long, env = "CASTMESH_CLUSTER_SNAPSHOT_THRESHOLD")]
    pub cluster_snapshot_threshold: Option<u64>,
    #[arg(long, env = "CASTMESH_MESH_LISTEN")]
    pub mesh_listen: Option<SocketAddr>,
    #[arg(long, env = "CASTMESH_MESH_CA_CERT")]
    pub mesh_ca_cert: Option<PathBuf>,
    #[arg(long, env = "CASTMESH_MESH_CERT")]
    pub mesh_cert: Option<PathBuf>,
    #[arg(long, env = "CASTMESH_MESH_KEY")]
    pub mesh_key: Option<PathBuf>,
    #[arg(long, env = "CASTMESH_MESH_SUBSCRIBER_QUEUE")]
    pub mesh_subscriber_queue: Option<usize>,
    #[arg(long, env = "CASTMESH_MESH_EDGE_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub mesh_edge_idle_timeout: Option<Duration>,
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "CASTMESH_DEBUG_FAULT_INJECTION")]
    pub debug_fault_injection: Option<bool>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CliCommand {
    /// Certificates for the QUIC mesh (mutual TLS with a cluster CA).
    #[command(subcommand)]
    Cert(CertCommand),
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
    /// The effective configuration: defaults or file, then flags/environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::dev(),
        };
        c = c.with_overrides(&self.set)?;
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        set(&mut c.rtmp.listen, &self.rtmp_listen);
        set(&mut c.rtmp.app, &self.rtmp_app);
        set(&mut c.rtmp.handshake_timeout, &self.rtmp_handshake_timeout);
        set(&mut c.rtmp.publish_timeout, &self.rtmp_publish_timeout);
        set(&mut c.rtmp.idle_timeout, &self.rtmp_idle_timeout);
        set(&mut c.rtmp.max_connections, &self.rtmp_max_connections);
        set(&mut c.rtmp.max_pending_bytes, &self.rtmp_max_pending_bytes);
        set(&mut c.rtmp.max_bitrate_kbps, &self.rtmp_max_bitrate_kbps);
        set(&mut c.http.listen, &self.http_listen);
        set(&mut c.hls.segment_target, &self.hls_segment_target);
        set(&mut c.hls.part_target, &self.hls_part_target);
        set(&mut c.hls.window_segments, &self.hls_window_segments);
        set(&mut c.hls.timestamp_jump, &self.hls_timestamp_jump);
        set(&mut c.streams.grace_period, &self.streams_grace_period);
        set(&mut c.streams.retention, &self.streams_retention);
        set(&mut c.streams.viewer_timeout, &self.streams_viewer_timeout);
        set(&mut c.streams.max_restarts, &self.streams_max_restarts);
        set(&mut c.streams.restart_window, &self.streams_restart_window);
        set(&mut c.streams.max_streams, &self.streams_max_streams);
        set(&mut c.cluster.node_id, &self.cluster_node_id);
        set(&mut c.cluster.data_dir, &self.cluster_data_dir);
        set(&mut c.cluster.grpc_listen, &self.cluster_grpc_listen);
        set(&mut c.cluster.advertise_host, &self.cluster_advertise_host);
        // An empty value (`--cluster-initial-members ""`) means none.
        let members = self
            .cluster_initial_members
            .as_ref()
            .map(|m| m.iter().filter(|s| !s.trim().is_empty()).cloned().collect());
        set(&mut c.cluster.initial_members, &members);
        set(&mut c.cluster.labels, &self.cluster_labels);
        set(&mut c.cluster.bootstrap, &self.cluster_bootstrap);
        set(&mut c.cluster.secret, &self.cluster_secret);
        set(&mut c.cluster.admin_token, &self.cluster_admin_token);
        set(
            &mut c.cluster.open_publishing,
            &self.cluster_open_publishing,
        );
        set(&mut c.cluster.lease_ttl, &self.cluster_lease_ttl);
        set(
            &mut c.cluster.heartbeat_interval,
            &self.cluster_heartbeat_interval,
        );
        set(
            &mut c.cluster.election_timeout,
            &self.cluster_election_timeout,
        );
        set(
            &mut c.cluster.snapshot_threshold,
            &self.cluster_snapshot_threshold,
        );
        set(&mut c.mesh.listen, &self.mesh_listen);
        set(&mut c.mesh.ca_cert, &self.mesh_ca_cert);
        set(&mut c.mesh.cert, &self.mesh_cert);
        set(&mut c.mesh.key, &self.mesh_key);
        set(&mut c.mesh.subscriber_queue, &self.mesh_subscriber_queue);
        set(&mut c.mesh.edge_idle_timeout, &self.mesh_edge_idle_timeout);
        #[cfg(feature = "test-hooks")]
        set(&mut c.debug.fault_injection, &self.debug_fault_injection);
        c.validate()
            .map_err(|e| ConfigError(format!("invalid setting: {}", e.0)))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn dev_toml_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.toml");
        let from_file = Config::from_file(&path).unwrap();
        assert_eq!(
            toml::to_string(&from_file).unwrap(),
            toml::to_string(&Config::dev()).unwrap(),
            "configs/dev.toml must list every setting with what --dev runs"
        );
        let mut only_open_differs = from_file;
        only_open_differs.cluster.open_publishing = false;
        assert_eq!(
            toml::to_string(&only_open_differs).unwrap(),
            toml::to_string(&Config::default()).unwrap(),
        );
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
