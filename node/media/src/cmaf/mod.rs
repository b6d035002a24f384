//! CMAF (fragmented MP4) boxes written with `mp4-atom`.
//!
//! [`init`] writes the init segment (ftyp + moov) for the stream's codecs;
//! [`fragment`] writes one moof + mdat per LL-HLS part. A full HLS segment is
//! the concatenation of its parts' fragments. The `mp4` crate cannot write
//! fragments (see docs/decisions.md), which is why mp4-atom is used.

pub mod fragment;
pub mod init;

pub use fragment::{Sample, TrackRun, write_fragment};
pub use init::write_init;

/// Track id of the video track in every init segment castmesh writes.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track (2 when video is present, 1 for audio-only streams).
pub const AUDIO_TRACK_ID: u32 = 2;
/// Video timescale: 90 kHz, so millisecond RTMP times convert exactly.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Errors from mp4-atom while encoding; they mean a codec config castmesh cannot represent.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode MP4 box: {0}")]
pub struct EncodeError(#[from] pub mp4_atom::Error);
