//! Who may publish, and under which public stream id.
//!
//! [`StreamRegistry`] is the seam the Raft-backed cluster registry (next issue)
//! implements; [`OpenRegistry`] is `--dev` open publishing, where any key creates
//! a stream whose id equals the key, as nginx-rtmp users expect.

use std::fmt;

use async_trait::async_trait;

/// Public stream id: appears in playback URLs, logs and metrics.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct StreamId(String);

impl StreamId {
    pub const MAX_LEN: usize = 128;

    /// Ids are URL path segments: 1–128 of `A-Z a-z 0-9 . _ ~ -`, not starting with '.'.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "stream ids are 1-{} characters of letters, digits, '.', '_', '~' and '-'",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A publisher's secret stream key. Its `Debug` never prints the key, so it cannot
/// leak into logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

/// Why a publish was refused: an RTMP status code and a reason safe to log and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishDenied {
    pub code: &'static str,
    pub reason: String,
}

#[async_trait]
pub trait StreamRegistry: Send + Sync + 'static {
    /// Checks a publish request before "publish started" is sent.
    async fn authorize_publish(&self, key: &StreamKey) -> Result<StreamId, PublishDenied>;
    /// The stream has a publisher on this node.
    async fn stream_live(&self, id: &StreamId);
    /// The grace period ran out: the stream has ended.
    async fn stream_ended(&self, id: &StreamId);
}

/// Open publishing (`--dev`, or no config): any well-formed key is a stream id.
pub struct OpenRegistry;

#[async_trait]
impl StreamRegistry for OpenRegistry {
    async fn authorize_publish(&self, key: &StreamKey) -> Result<StreamId, PublishDenied> {
        StreamId::parse(key.expose()).map_err(|reason| PublishDenied {
            code: "NetStream.Publish.BadName",
            reason,
        })
    }

    async fn stream_live(&self, _id: &StreamId) {}

    async fn stream_ended(&self, _id: &StreamId) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let key = StreamKey::new("sekret-123".into());
        assert!(!format!("{key:?}").contains("sekret"));
    }

    #[test]
    fn ids_are_path_safe() {
        assert!(StreamId::parse("demo_1.x-y~").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a?b=c", "a b", &"x".repeat(129)] {
            assert!(StreamId::parse(bad).is_err(), "{bad}");
        }
    }
}
