//! castmesh's media core: everything between an FLV tag body and the bytes of an
//! LL-HLS playlist or part, as pure state machines.
//!
//! What it is: [`flv`] turns RTMP's FLV tag bodies into codec configurations and
//! [`Frame`]s (with [`aggregate`] for RTMP aggregate messages); [`cmaf`] writes init segments
//! and fragments; [`hls::packager`] maps the publisher's millisecond clock onto one
//! continuous decode timeline and cuts frames into parts and segments, straight into
//! the window; [`hls::window`] is the bounded live window those fill, [`hls::replica`]
//! its copy on another node; [`hls::playlist`] and [`hls::blocking`] are
//! how the window is listed and named, and waited for.
//!
//! What it is not: nothing here waits, spawns, reads a clock or a socket, or knows
//! the cluster. Time comes in as arguments, bytes go out as return values. Actors,
//! sharing a window between threads, the mesh and HTTP live in `castmesh-node`; this
//! crate's Cargo.toml has no runtime to call, so the compiler keeps it that way (in the
//! manner of quinn-proto under quinn).

pub mod aggregate;
pub mod cmaf;
pub mod codecs;
pub mod flv;
pub mod hls;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

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
