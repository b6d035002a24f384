//! castmesh node: RTMP ingest, supervised per-stream actors, CMAF segmenter and
//! LL-HLS delivery over HTTP. The `castmesh` binary only parses configuration
//! and calls [`run`].

pub mod cmaf;
pub mod hls;
pub mod media;
