//! FLV tag bodies (what RTMP audio/video messages carry) to [`MediaEvent`]s.
//!
//! Demuxing is scuffle-flv's; this module only decides what each tag means for
//! packaging and rejects what castmesh cannot package, with a reason.

use std::io::Cursor;

use bytes::Bytes;
use scuffle_flv::audio::AudioData;
use scuffle_flv::audio::body::AudioTagBody;
use scuffle_flv::audio::body::legacy::LegacyAudioTagBody;
use scuffle_flv::audio::body::legacy::aac::AacAudioData;
use scuffle_flv::video::VideoData;
use scuffle_flv::video::body::VideoTagBody;
use scuffle_flv::video::body::legacy::LegacyVideoTagBody;
use scuffle_flv::video::header::legacy::{LegacyVideoTagHeader, LegacyVideoTagHeaderAvcPacket};
use scuffle_flv::video::header::{VideoFrameType, VideoTagHeaderData};

use super::{AudioConfig, Frame, MediaEvent, TrackKind, VideoConfig};

/// FLV tag type of audio (and RTMP message type of audio).
pub const AUDIO_TAG: u8 = 8;
/// FLV tag type of video (and RTMP message type of video).
pub const VIDEO_TAG: u8 = 9;

/// Why a tag could not be used. The connection logs it; repeated failures end the publish.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("malformed {0} tag: {1}")]
    Malformed(&'static str, String),
    #[error("unsupported codec: {0}")]
    Unsupported(String),
}

/// Interprets one RTMP video message body.
pub fn video_event(rtmp_ms: u32, body: Bytes) -> Result<MediaEvent, TagError> {
    let tag = VideoData::demux(&mut Cursor::new(body))
        .map_err(|e| TagError::Malformed("video", e.to_string()))?;
    let keyframe = tag.header.frame_type == VideoFrameType::KeyFrame;
    let VideoTagHeaderData::Legacy(header) = &tag.header.data else {
        return Err(TagError::Unsupported(
            "enhanced RTMP video (HEVC/AV1/VP9); publish H.264".into(),
        ));
    };
    let LegacyVideoTagHeader::AvcPacket(packet) = header else {
        return match header {
            LegacyVideoTagHeader::VideoCommand(_) => Ok(MediaEvent::Ignored),
            _ => Err(TagError::Unsupported(
                "legacy video codec other than H.264".into(),
            )),
        };
    };
    match (packet, tag.body) {
        (_, VideoTagBody::Legacy(LegacyVideoTagBody::AvcVideoPacketSeqHdr(record))) => {
            VideoConfig::from_record(&record)
                .map(MediaEvent::VideoConfig)
                .map_err(|e| TagError::Malformed("video", e.to_string()))
        }
        (
            LegacyVideoTagHeaderAvcPacket::Nalu {
                composition_time_offset,
            },
            VideoTagBody::Legacy(LegacyVideoTagBody::Other { data }),
        ) => {
            if data.is_empty() {
                return Ok(MediaEvent::Ignored);
            }
            Ok(MediaEvent::Frame(Frame {
                track: TrackKind::Video,
                rtmp_ms,
                composition_offset_ms: sign_extend_24(*composition_time_offset),
                keyframe,
                data,
            }))
        }
        _ => Ok(MediaEvent::Ignored),
    }
}

/// Interprets one RTMP audio message body.
pub fn audio_event(rtmp_ms: u32, body: Bytes) -> Result<MediaEvent, TagError> {
    let tag = AudioData::demux(&mut Cursor::new(body))
        .map_err(|e| TagError::Malformed("audio", e.to_string()))?;
    match tag.body {
        AudioTagBody::Legacy(LegacyAudioTagBody::Aac(AacAudioData::SequenceHeader(asc))) => {
            AudioConfig::from_asc(asc)
                .map(MediaEvent::AudioConfig)
                .map_err(|e| TagError::Malformed("audio", e.to_string()))
        }
        AudioTagBody::Legacy(LegacyAudioTagBody::Aac(AacAudioData::Raw(data))) => {
            if data.is_empty() {
                return Ok(MediaEvent::Ignored);
            }
            Ok(MediaEvent::Frame(Frame {
                track: TrackKind::Audio,
                rtmp_ms,
                composition_offset_ms: 0,
                keyframe: true,
                data,
            }))
        }
        AudioTagBody::Legacy(LegacyAudioTagBody::Aac(AacAudioData::Unknown { .. })) => {
            Ok(MediaEvent::Ignored)
        }
        _ => Err(TagError::Unsupported(
            "audio codec other than AAC; publish AAC".into(),
        )),
    }
}

/// FLV stores the composition offset as a signed 24-bit integer; scuffle reads it unsigned.
fn sign_extend_24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_offsets_keep_their_sign() {
        assert_eq!(sign_extend_24(0x000021), 33);
        assert_eq!(sign_extend_24(0xFFFFDF), -33);
        assert_eq!(sign_extend_24(0), 0);
    }

    #[test]
    fn aac_raw_frame_becomes_an_audio_frame() {
        // 0xAF = AAC, 44 kHz, 16 bit, stereo; 0x01 = raw AAC frame.
        let body = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10, 0x04]);
        let MediaEvent::Frame(frame) = audio_event(40, body).unwrap() else {
            panic!("expected a frame")
        };
        assert_eq!(frame.track, TrackKind::Audio);
        assert_eq!(frame.rtmp_ms, 40);
        assert_eq!(&frame.data[..], &[0x21, 0x10, 0x04]);
    }

    #[test]
    fn aac_sequence_header_gives_rate_and_channels() {
        // AudioSpecificConfig 0x1210: AAC-LC, 44100 Hz, 2 channels.
        let body = Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]);
        let MediaEvent::AudioConfig(cfg) = audio_event(0, body).unwrap() else {
            panic!("expected a config")
        };
        assert_eq!(
            (cfg.object_type, cfg.sample_rate, cfg.channels),
            (2, 44100, 2)
        );
        assert_eq!(cfg.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn non_aac_audio_is_refused_with_a_reason() {
        // 0x2F = MP3.
        let err = audio_event(0, Bytes::from_static(&[0x2F, 0xFF, 0xFB])).unwrap_err();
        assert!(err.to_string().contains("AAC"), "{err}");
    }

    #[test]
    fn truncated_video_tag_is_malformed_not_a_panic() {
        assert!(video_event(0, Bytes::from_static(&[0x17])).is_err());
        assert!(video_event(0, Bytes::new()).is_err());
    }
}
