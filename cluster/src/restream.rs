//! A stream's restream destinations: the RTMP(S) servers its origin pushes the stream
//! to (YouTube, Twitch, Facebook, any RTMP server), and whether each one runs.
//!
//! The destination key is kept in the replicated state because whichever node becomes
//! the stream's origin must push with it: it cannot be a hash. Nothing returns it (the
//! API answers [`Destination::public`]); docs/security.md says where it lives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StreamId;
use crate::model::Millis;

/// Bounds the state machine holds to, whatever a proposer sent (the API checks the
/// same and says so in words; `restream.max_destinations` may lower the count).
pub const MAX_DESTINATIONS: usize = 50;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_URL_BYTES: usize = 1024;
pub const MAX_KEY_BYTES: usize = 1024;

/// Where a destination streams to: a preset fills the server URL in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Youtube,
    Twitch,
    Facebook,
    Custom,
}

impl Platform {
    pub const ALL: [Self; 4] = [Self::Youtube, Self::Twitch, Self::Facebook, Self::Custom];

    /// As in the API: `youtube`, `twitch`, `facebook`, `custom`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Youtube => "youtube",
            Self::Twitch => "twitch",
            Self::Facebook => "facebook",
            Self::Custom => "custom",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The ingest server the platform documents, for a destination created without a
    /// URL. Facebook takes RTMPS only.
    pub fn preset_url(self) -> Option<&'static str> {
        match self {
            Self::Youtube => Some("rtmp://a.rtmp.youtube.com/live2"),
            Self::Twitch => Some("rtmp://live.twitch.tv/app"),
            Self::Facebook => Some("rtmps://live-api-s.facebook.com:443/rtmp/"),
            Self::Custom => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Unique within the stream, never reused.
    pub id: u64,
    pub name: String,
    pub platform: Platform,
    /// `rtmp://` or `rtmps://` server URL (the application path included), without the key.
    pub url: String,
    /// The stream key the destination expects: secret.
    pub key: String,
    /// Starts by itself whenever the stream goes live.
    pub enabled: bool,
    /// Started or stopped by hand (`None`: `enabled` decides). Forgotten when the
    /// stream goes live anew: each live session starts from `enabled`.
    pub running: Option<bool>,
    pub created_at: Millis,
}

impl Destination {
    /// Whether the stream's origin should push to it while the stream is live.
    pub fn wanted(&self) -> bool {
        self.running.unwrap_or(self.enabled)
    }
}

/// A stream's destinations, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDestinations {
    pub next_id: u64,
    pub list: BTreeMap<u64, Destination>,
}

/// The fields of a destination a change may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationChange {
    pub name: Option<String>,
    pub platform: Option<Platform>,
    pub url: Option<String>,
    pub key: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestreamCommand {
    /// Adds a destination; refused beyond `max` (at most [`MAX_DESTINATIONS`]).
    Add {
        stream: StreamId,
        change: DestinationChange,
        max: usize,
        now: Millis,
    },
    Update {
        stream: StreamId,
        id: u64,
        change: DestinationChange,
    },
    Remove {
        stream: StreamId,
        id: u64,
    },
    /// Starts (`true`) or stops a destination by hand, for the current live session.
    Run {
        stream: StreamId,
        id: u64,
        running: bool,
    },
}

/// Why a restream command was refused, in words for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RestreamRejection {
    #[error("no destination {0}")]
    NoSuchDestination(u64),
    #[error("a stream has at most {0} destinations")]
    TooMany(usize),
    #[error("{0}")]
    Invalid(String),
}

impl RestreamCommand {
    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Add { stream, .. }
            | Self::Update { stream, .. }
            | Self::Remove { stream, .. }
            | Self::Run { stream, .. } => stream,
        }
    }

    /// Changes `d` (the stream's entry; the caller checked the stream exists). The id
    /// of the destination changed.
    pub fn apply(self, d: &mut StreamDestinations) -> Result<u64, RestreamRejection> {
        match self {
            Self::Add {
                change, max, now, ..
            } => {
                let max = max.min(MAX_DESTINATIONS);
                if d.list.len() >= max {
                    return Err(RestreamRejection::TooMany(max));
                }
                let platform = change.platform.unwrap_or(Platform::Custom);
                let url = match (change.url, platform.preset_url()) {
                    (Some(url), _) if !url.is_empty() => url,
                    (_, Some(preset)) => preset.to_string(),
                    _ => return Err(RestreamRejection::Invalid("a server URL is needed".into())),
                };
                let id = d.next_id.max(1);
                let added = Destination {
                    id,
                    name: change.name.unwrap_or_default(),
                    platform,
                    url,
                    key: change.key.unwrap_or_default(),
                    enabled: change.enabled.unwrap_or(true),
                    running: None,
                    created_at: now,
                };
                check(&added)?;
                d.next_id = id + 1;
                d.list.insert(id, added);
                Ok(id)
            }
            Self::Update { id, change, .. } => {
                let current = d
                    .list
                    .get_mut(&id)
                    .ok_or(RestreamRejection::NoSuchDestination(id))?;
                let mut next = current.clone();
                if let Some(platform) = change.platform {
                    next.platform = platform;
                }
                next.name = change.name.unwrap_or(next.name);
                next.url = change.url.unwrap_or(next.url);
                next.key = change.key.unwrap_or(next.key);
                next.enabled = change.enabled.unwrap_or(next.enabled);
                check(&next)?;
                *current = next;
                Ok(id)
            }
            Self::Remove { id, .. } => d
                .list
                .remove(&id)
                .map(|_| id)
                .ok_or(RestreamRejection::NoSuchDestination(id)),
            Self::Run { id, running, .. } => {
                let dest = d
                    .list
                    .get_mut(&id)
                    .ok_or(RestreamRejection::NoSuchDestination(id))?;
                dest.running = Some(running);
                Ok(id)
            }
        }
    }
}

/// The stream went live anew (not a republish within the grace period): hand-made
/// starts and stops of the last session are forgotten.
pub fn new_session(d: &mut StreamDestinations) {
    for dest in d.list.values_mut() {
        dest.running = None;
    }
}

fn check(d: &Destination) -> Result<(), RestreamRejection> {
    let invalid = |why: String| Err(RestreamRejection::Invalid(why));
    if d.name.trim().is_empty() || d.name.chars().count() > MAX_NAME_CHARS {
        return invalid(format!(
            "a name of 1 to {MAX_NAME_CHARS} characters is needed"
        ));
    }
    if d.name.chars().any(char::is_control) {
        return invalid("the name has control characters".into());
    }
    if d.key.len() > MAX_KEY_BYTES || d.key.chars().any(|c| c.is_control() || c == ' ') {
        return invalid(format!(
            "the stream key must be at most {MAX_KEY_BYTES} bytes, without spaces or control characters"
        ));
    }
    if d.key.is_empty() {
        return invalid("the destination's stream key is needed".into());
    }
    if d.url.len() > MAX_URL_BYTES {
        return invalid(format!(
            "the server URL is longer than {MAX_URL_BYTES} bytes"
        ));
    }
    RtmpUrl::parse(&d.url).map_err(RestreamRejection::Invalid)?;
    Ok(())
}

/// A destination's server URL taken apart: `rtmp[s]://host[:port]/app[/more]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub tls: bool,
    /// A name or an IP address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
    /// The path after the host, without the leading slash: the RTMP application
    /// (`live2`, `app`, `rtmp/`); what `connect` names.
    pub app: String,
}

impl RtmpUrl {
    /// Parsed by hand: the `url` crate would accept far more than an RTMP server URL
    /// (user info, query, fragment) and is not otherwise a dependency of the cluster.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rtmp://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rtmps://") {
            (true, rest)
        } else {
            return Err("the server URL must start with rtmp:// or rtmps://".into());
        };
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the server URL has spaces or control characters".into());
        }
        if rest.contains(['?', '#', '@']) {
            return Err("the server URL may not have a query, a fragment or user info".into());
        }
        let (authority, app) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_port(authority)?;
        if host.is_empty() {
            return Err("the server URL has no host".into());
        }
        if app.is_empty() {
            return Err("the server URL needs an application path (rtmp://host/app)".into());
        }
        Ok(Self {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls { 443 } else { 1935 }),
            app: app.to_string(),
        })
    }

    /// The URL `connect` sends as `tcUrl` (what ingest servers log and some check).
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = || "the server URL's port is not a number from 1 to 65535".to_string();
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad_port)
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [ in the server URL")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("unexpected text after ] in the server URL".into()),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamId {
        StreamId::parse("s").unwrap()
    }

    fn add(
        d: &mut StreamDestinations,
        change: DestinationChange,
    ) -> Result<u64, RestreamRejection> {
        RestreamCommand::Add {
            stream: stream(),
            change,
            max: 3,
            now: 5,
        }
        .apply(d)
    }

    fn named(name: &str, platform: Platform, url: Option<&str>) -> DestinationChange {
        DestinationChange {
            name: Some(name.into()),
            platform: Some(platform),
            url: url.map(Into::into),
            key: Some("live_123-abc".into()),
            enabled: None,
        }
    }

    #[test]
    fn presets_fill_the_url_and_ids_are_never_reused() {
        let mut d = StreamDestinations::default();
        let yt = add(&mut d, named("YT", Platform::Youtube, None)).unwrap();
        assert_eq!(d.list[&yt].url, "rtmp://a.rtmp.youtube.com/live2");
        assert!(d.list[&yt].enabled && d.list[&yt].wanted());
        let custom = named("mine", Platform::Custom, None);
        assert_eq!(
            add(&mut d, custom),
            Err(RestreamRejection::Invalid("a server URL is needed".into()))
        );
        let fb = add(&mut d, named("FB", Platform::Facebook, None)).unwrap();
        RestreamCommand::Remove {
            stream: stream(),
            id: fb,
        }
        .apply(&mut d)
        .unwrap();
        let next = add(&mut d, named("x", Platform::Custom, Some("rtmp://h/app"))).unwrap();
        assert_eq!((yt, fb, next), (1, 2, 3));
    }

    #[test]
    fn the_count_and_every_field_are_bounded() {
        let mut d = StreamDestinations::default();
        for i in 0..3 {
            add(&mut d, named(&format!("d{i}"), Platform::Twitch, None)).unwrap();
        }
        assert_eq!(
            add(&mut d, named("more", Platform::Twitch, None)),
            Err(RestreamRejection::TooMany(3))
        );
        let mut d = StreamDestinations::default();
        let long_name = named(&"n".repeat(MAX_NAME_CHARS + 1), Platform::Twitch, None);
        let bad_url = named("u", Platform::Custom, Some("http://example.com/app"));
        let mut no_key = named("k", Platform::Twitch, None);
        no_key.key = None;
        let mut spaced_key = named("k", Platform::Twitch, None);
        spaced_key.key = Some("a b".into());
        for change in [long_name, bad_url, no_key, spaced_key] {
            assert!(matches!(
                add(&mut d, change),
                Err(RestreamRejection::Invalid(_))
            ));
        }
        assert!(d.list.is_empty());
    }

    #[test]
    fn an_update_that_fails_its_check_changes_nothing() {
        let mut d = StreamDestinations::default();
        let id = add(&mut d, named("YT", Platform::Youtube, None)).unwrap();
        let before = d.clone();
        let change = DestinationChange {
            name: Some("renamed".into()),
            url: Some("rtmp://".into()),
            ..Default::default()
        };
        let update = RestreamCommand::Update {
            stream: stream(),
            id,
            change,
        };
        assert!(update.apply(&mut d).is_err());
        assert_eq!(d, before);
    }

    #[test]
    fn hand_made_starts_and_stops_last_until_the_stream_ends() {
        let mut d = StreamDestinations::default();
        let id = add(&mut d, named("YT", Platform::Youtube, None)).unwrap();
        let run = |running| RestreamCommand::Run {
            stream: stream(),
            id,
            running,
        };
        run(false).apply(&mut d).unwrap();
        assert!(!d.list[&id].wanted());
        new_session(&mut d);
        assert!(
            d.list[&id].wanted(),
            "enabled: it starts with the next live"
        );
    }

    #[test]
    fn server_urls_are_taken_apart() {
        let yt = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2").unwrap();
        assert_eq!(
            (yt.tls, yt.host.as_str(), yt.port, yt.app.as_str()),
            (false, "a.rtmp.youtube.com", 1935, "live2")
        );
        assert_eq!(yt.tc_url(), "rtmp://a.rtmp.youtube.com:1935/live2");
        let fb = RtmpUrl::parse("rtmps://live-api-s.facebook.com:443/rtmp/").unwrap();
        assert_eq!((fb.tls, fb.port, fb.app.as_str()), (true, 443, "rtmp/"));
        let v6 = RtmpUrl::parse("rtmps://[::1]/live").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
        assert_eq!(v6.tc_url(), "rtmps://[::1]:443/live");
        for bad in [
            "rtmp://host",
            "rtmp:///app",
            "rtmp://host:0/app",
            "rtmp://host:99999/app",
            "rtmp://user@host/app",
            "rtmp://host/app?key=x",
            "rtmp://ho st/app",
            "rtmp://[::1/app",
            "srt://host/app",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
