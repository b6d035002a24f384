//! Node configuration: embedded defaults, then a TOML file, then flags and
//! `CASTMESH_*` environment variables. `configs/dev.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub streams: StreamsConfig,
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
    /// A connection that sends nothing for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
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
    /// Restart intensity: more than `max_restarts` child restarts within
    /// `restart_window` ends the stream instead of restarting again.
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// Live streams this node accepts at once.
    pub max_streams: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
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
            idle_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_pending_bytes: 32 * 1024 * 1024,
            max_bitrate_kbps: 50_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid"),
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
    /// Reads and validates a TOML file; the error is one line naming file, line and column.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
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
            ("streams.max_streams", self.streams.max_streams),
        ] {
            if v == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("rtmp.handshake_timeout", self.rtmp.handshake_timeout),
            ("rtmp.publish_timeout", self.rtmp.publish_timeout),
            ("rtmp.idle_timeout", self.rtmp.idle_timeout),
            ("streams.viewer_timeout", self.streams.viewer_timeout),
            ("streams.restart_window", self.streams.restart_window),
        ] {
            if v.is_zero() {
                return err(format!("{name} must be longer than zero"));
            }
        }
        Ok(())
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
    about = "castmesh node: RTMP in, LL-HLS out"
)]
pub struct Cli {
    /// Run as a one-node cluster with embedded defaults and open publishing (the default
    /// when no --config is given).
    #[arg(long, conflicts_with = "config")]
    pub dev: bool,
    /// TOML configuration file (see configs/dev.toml for every setting).
    #[arg(long, env = "CASTMESH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `castmesh_node=debug`.
    #[arg(long, env = "CASTMESH_LOG", default_value = "info")]
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
    #[arg(long, env = "CASTMESH_DEBUG_FAULT_INJECTION")]
    pub debug_fault_injection: Option<bool>,
}

impl Cli {
    /// The effective configuration: defaults or file, then flags/environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
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
            toml::to_string(&Config::default()).unwrap(),
            "configs/dev.toml must list every setting with its default"
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
