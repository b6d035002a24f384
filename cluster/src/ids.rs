//! Stream ids (public) and stream keys (secret).

use std::fmt;

/// Public stream id: appears in playback URLs, logs and metrics.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub const MAX_LEN: usize = 128;

    /// Ids are URL path segments: 1–128 of `A-Z a-z 0-9 . _ ~ -`, not starting with '.'.
    pub fn parse(s: &str) -> Result<Self, InvalidStreamId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidStreamId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name that cannot be a stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream ids are 1-{} characters of letters, digits, '.', '_', '~' and '-'",
    StreamId::MAX_LEN
)]
pub struct InvalidStreamId;

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;

    fn try_from(s: String) -> Result<Self, InvalidStreamId> {
        Self::parse(&s)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
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
/// leak into logs by accident; only its hash is ever stored.
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
        assert!(serde_json::from_str::<StreamId>("\"a/b\"").is_err());
    }
}
