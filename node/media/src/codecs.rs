//! Decoder configurations and the facts about them that playlists and init segments need.

use std::sync::Arc;

use bytes::Bytes;
use scuffle_h264::AVCDecoderConfigurationRecord;

/// H.264 decoder configuration with the values derived from its SPS.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// NAL length prefix size in bytes (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

/// Why a codec configuration (AVC sequence header, AudioSpecificConfig) is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecConfigError {
    #[error("AVC sequence header without an SPS")]
    NoSps,
    /// The parser's own words.
    #[error("unreadable SPS: {0}")]
    Sps(String),
    #[error("implausible picture size {width}x{height} in SPS")]
    PictureSize { width: u64, height: u64 },
    #[error("unreadable AudioSpecificConfig: {0}")]
    AudioSpecificConfig(String),
    #[error("AudioSpecificConfig with a zero sample rate")]
    ZeroSampleRate,
}

impl VideoConfig {
    /// Builds the config from an AVC decoder configuration record; the SPS gives the size.
    pub fn from_record(record: &AVCDecoderConfigurationRecord) -> Result<Self, CodecConfigError> {
        let first_sps = record.sps.first().ok_or(CodecConfigError::NoSps)?;
        let sps = scuffle_h264::Sps::parse_with_emulation_prevention(std::io::Cursor::new(
            first_sps.as_ref(),
        ))
        .map_err(|e| CodecConfigError::Sps(e.to_string()))?;
        let (width, height) = (sps.width(), sps.height());
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(CodecConfigError::PictureSize { width, height });
        }
        Ok(Self {
            profile: record.profile_indication,
            compatibility: record.profile_compatibility,
            level: record.level_indication,
            nal_length_size: record.length_size_minus_one + 1,
            sps: record.sps.clone(),
            pps: record.pps.clone(),
            width: width as u32,
            height: height as u32,
            frame_rate: sps.frame_rate(),
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

/// AAC decoder configuration (AudioSpecificConfig) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioConfig {
    /// The AudioSpecificConfig bytes exactly as the publisher sent them.
    pub asc: Bytes,
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl AudioConfig {
    pub fn from_asc(asc: Bytes) -> Result<Self, CodecConfigError> {
        let parsed = scuffle_aac::PartialAudioSpecificConfig::parse(&asc)
            .map_err(|e| CodecConfigError::AudioSpecificConfig(e.to_string()))?;
        if parsed.sampling_frequency == 0 {
            return Err(CodecConfigError::ZeroSampleRate);
        }
        Ok(Self {
            object_type: u16::from(parsed.audio_object_type).min(255) as u8,
            sample_rate: parsed.sampling_frequency,
            channels: parsed.channel_configuration,
            asc,
        })
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2` for AAC-LC.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// Samples per AAC access unit (1024 for every AAC profile castmesh packages).
    pub const SAMPLES_PER_FRAME: u32 = 1024;
}

/// The decoder configurations of one publish session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Codecs {
    pub video: Option<Arc<VideoConfig>>,
    pub audio: Option<Arc<AudioConfig>>,
}

impl Codecs {
    /// The playlist `CODECS` value, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codec_list(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.video {
            parts.push(v.codec_string());
        }
        if let Some(a) = &self.audio {
            parts.push(a.codec_string());
        }
        parts.join(",")
    }
}
