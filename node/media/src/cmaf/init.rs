//! The CMAF init segment: ftyp + moov with one trak per elementary stream.

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdhd, Mdia, Minf, Moov, Mp4a, Mvex,
    Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tkhd, Trak, Trex, Url, Visual, Vmhd, esds,
};

use super::{AUDIO_TRACK_ID, EncodeError, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::{AudioConfig, Codecs, VideoConfig};

/// Track ids and timescales an init segment declares; fragments must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackLayout {
    pub video: Option<u32>,
    pub audio: Option<(u32, u32)>,
}

impl TrackLayout {
    pub fn of(codecs: &Codecs) -> Self {
        let video = codecs.video.as_ref().map(|_| VIDEO_TRACK_ID);
        let audio_id = if video.is_some() { AUDIO_TRACK_ID } else { 1 };
        Self {
            video,
            audio: codecs.audio.as_ref().map(|a| (audio_id, a.sample_rate)),
        }
    }
}

/// Writes the init segment for `codecs`.
pub fn write_init(codecs: &Codecs) -> Result<Bytes, EncodeError> {
    let layout = TrackLayout::of(codecs);
    let mut traks = Vec::new();
    let mut trex = Vec::new();
    if let (Some(id), Some(video)) = (layout.video, &codecs.video) {
        traks.push(video_trak(id, video));
        trex.push(default_trex(id));
    }
    if let (Some((id, _)), Some(audio)) = (layout.audio, &codecs.audio) {
        traks.push(audio_trak(id, audio));
        trex.push(default_trex(id));
    }
    let next_track_id = traks.len() as u32 + 1;
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex,
            ..Default::default()
        }),
        trak: traks,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(1024);
    ftyp.encode(&mut buf)?;
    moov.encode(&mut buf)?;
    Ok(Bytes::from(buf))
}

fn default_trex(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    }
}

fn empty_stbl(codec: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![
                Url {
                    location: "".into(),
                }
                .into(),
            ],
        },
    }
}

fn video_trak(track_id: u32, video: &VideoConfig) -> Trak {
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: video.width as u16,
            height: video.height as u16,
            horizresolution: 72.into(),
            vertresolution: 72.into(),
            frame_count: 1,
            compressor: "".into(),
            depth: 24,
        },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: video.profile,
            profile_compatibility: video.compatibility,
            avc_level_indication: video.level,
            length_size: video.nal_length_size,
            sequence_parameter_sets: video.sps.iter().map(|s| s.to_vec()).collect(),
            picture_parameter_sets: video.pps.iter().map(|p| p.to_vec()).collect(),
            ext: None,
        },
        btrt: None,
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id,
            enabled: true,
            in_movie: true,
            width: (video.width as u16).into(),
            height: (video.height as u16).into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "castmesh video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(avc1.into()),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn audio_trak(track_id: u32, audio: &AudioConfig) -> Trak {
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(audio.channels.max(1)),
            sample_size: 16,
            // The sample entry field is 16.16 fixed point; rates above 65535 Hz do not fit
            // and are only informative (the mdhd timescale is authoritative).
            sample_rate: (audio.sample_rate.min(u32::from(u16::MAX)) as u16).into(),
        },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: track_id as u16,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    up_stream: 0,
                    dec_specific: Some(esds::DecoderSpecific {
                        profile: audio.object_type,
                        raw: audio.asc.to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: audio.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "castmesh audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(mp4a.into()),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
