//! Codec-level view of a published stream: what ingest hands to the segmenter.
//!
//! RTMP delivers FLV tag bodies; [`flv`] turns them into [`MediaEvent`]s using
//! scuffle's demuxers, [`aggregate`] unpacks RTMP aggregate messages, and
//! [`timeline`] turns the publisher's millisecond timestamps into one
//! continuous decode timeline.

pub mod aggregate;
pub mod codecs;
pub mod flv;
pub mod timeline;

use bytes::Bytes;

pub use codecs::{AudioConfig, Codecs, VideoConfig};

/// Which elementary stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One access unit as the publisher timestamped it (milliseconds, RTMP clock).
#[derive(Debug, Clone)]
pub struct Frame {
    pub track: TrackKind,
    /// Publisher decode timestamp in milliseconds (RTMP 32-bit clock, may wrap or jump).
    pub rtmp_ms: u32,
    /// Presentation minus decode time in milliseconds (B-frames make this positive;
    /// some hardware encoders send negative values).
    pub composition_offset_ms: i32,
    pub keyframe: bool,
    /// Video: AVCC length-prefixed NAL units. Audio: one raw AAC frame.
    pub data: Bytes,
}

/// What one FLV tag body means to the rest of the pipeline.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    VideoConfig(VideoConfig),
    AudioConfig(AudioConfig),
    Frame(Frame),
    /// A tag we understand but that carries nothing to package (end of sequence, commands).
    Ignored,
}
