//! The recorded media a simulated publisher sends: `fixtures/publisher.flv`, 4 s of
//! 160x90 H.264 (one keyframe a second) and mono AAC made by ffmpeg:
//!
//! ```text
//! ffmpeg -f lavfi -i testsrc2=size=160x90:rate=15 -f lavfi -i sine=frequency=440:sample_rate=22050 \
//!   -t 4 -c:v libx264 -profile:v baseline -preset veryfast -g 15 -keyint_min 15 -sc_threshold 0 \
//!   -b:v 60k -c:a aac -b:a 24k -ac 1 -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
//!   -flags:a +bitexact -f flv publisher.flv
//! ```
//!
//! Read by hand: an FLV file is a 9-byte header and length-prefixed tags, and the
//! node's own FLV code parses tag bodies, not files.

use bytes::Bytes;

const FIXTURE: &[u8] = include_bytes!("../../fixtures/publisher.flv");

/// The fixture's length: it is sent in a loop, each pass this much later.
pub const LOOP_MS: u32 = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Debug, Clone)]
pub struct Tag {
    pub kind: Kind,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

impl Tag {
    /// A codec configuration (AVC or AAC sequence header): sent once per session.
    pub fn is_sequence_header(&self) -> bool {
        self.body.get(1) == Some(&0)
    }
}

/// The fixture's audio and video tags in file order (script data is skipped),
/// parsed once per process: every publish session of every run sends them.
pub fn fixture() -> &'static [Tag] {
    static TAGS: std::sync::OnceLock<Vec<Tag>> = std::sync::OnceLock::new();
    TAGS.get_or_init(parse)
}

fn parse() -> Vec<Tag> {
    let data = Bytes::from_static(FIXTURE);
    assert_eq!(&data[..3], b"FLV", "fixture is not an FLV file");
    let header = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize;
    // After the header: PreviousTagSize0, then (tag header, body, previous tag size)*.
    let mut at = header + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at];
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let timestamp_ms =
            u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = data.slice(at + 11..at + 11 + size);
        let kind = match kind {
            8 => Some(Kind::Audio),
            9 => Some(Kind::Video),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(Tag {
                kind,
                timestamp_ms,
                body,
            });
        }
        at += 11 + size + 4;
    }
    tags
}
