//! Builders for tests, here and in castmesh-node (feature `testing`): a window of
//! fixed settings, a segment of equal parts, a typical codec pair.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::hls::window::{Part, Window, WindowConfig};
use crate::{AudioConfig, Codecs, VideoConfig};

/// 1280x720 H.264 High + AAC-LC stereo, as unit tests' publishers send.
pub fn h264_aac() -> Codecs {
    Codecs {
        video: Some(Arc::new(VideoConfig {
            profile: 100,
            compatibility: 0,
            level: 31,
            nal_length_size: 4,
            sps: vec![Bytes::from_static(&[0x67, 0x64, 0, 0x1f])],
            pps: vec![Bytes::from_static(&[0x68, 0xee])],
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
        })),
        audio: Some(Arc::new(AudioConfig {
            asc: Bytes::from_static(&[0x12, 0x10]),
            object_type: 2,
            sample_rate: 44_100,
            channels: 2,
        })),
    }
}

/// A window of 2 s segments and 200 ms parts listing `segments` segments, run 1.
pub fn window(segments: usize) -> Window {
    Window::new(
        WindowConfig {
            target_duration_s: 2,
            part_target_ms: 200,
            segments,
        },
        1,
    )
}

/// Adds a segment of `parts` 200 ms parts; leaves it open unless `close`.
pub fn fill_segment(w: &mut Window, discontinuity: bool, parts: usize, close: bool) {
    w.begin_segment(discontinuity, SystemTime::UNIX_EPOCH);
    for i in 0..parts {
        w.push_part(
            Part {
                duration_ms: 200.0,
                independent: i == 0,
                data: Bytes::from(vec![i as u8; 10]),
            },
            0,
        );
    }
    if close {
        w.end_segment();
    }
}
