//! One CMAF fragment (moof + mdat): the bytes of one LL-HLS part.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use super::EncodeError;

/// ISO BMFF sample flags: a sync sample, and a non-sync sample that depends on others.
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// One sample in a track run, timed in the track's timescale.
#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    pub composition_offset: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// The samples of one track inside a fragment.
#[derive(Debug, Clone)]
pub struct TrackRun {
    pub track_id: u32,
    /// Decode time of the first sample (tfdt), in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

/// Writes `moof` + `mdat` for the given runs (empty runs are skipped).
pub fn write_fragment(sequence_number: u32, runs: &[TrackRun]) -> Result<Bytes, EncodeError> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: runs.iter().map(|run| traf(run)).collect(),
    };
    // trun.data_offset counts from the start of the moof, so the moof's size must be
    // known first: encode once with placeholder offsets (same size), then for real.
    let mut probe = Vec::with_capacity(512);
    moof.encode(&mut probe)?;
    let payload: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut offset = probe.len() + MDAT_HEADER;
    for (traf, run) in moof.traf.iter_mut().zip(&runs) {
        traf.trun[0].data_offset = Some(offset as i32);
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mut out = BytesMut::with_capacity(probe.len() + MDAT_HEADER + payload);
    let mut moof_bytes = Vec::with_capacity(probe.len());
    moof.encode(&mut moof_bytes)?;
    out.put_slice(&moof_bytes);
    // The mdat header is written by hand so samples are copied once, straight into
    // the part buffer (mp4-atom's Mdat would need its own Vec copy first).
    out.put_u32((MDAT_HEADER + payload) as u32);
    out.put_slice(b"mdat");
    for sample in runs.iter().flat_map(|r| r.samples.iter()) {
        out.put_slice(&sample.data);
    }
    Ok(out.freeze())
}

const MDAT_HEADER: usize = 8;

fn traf(run: &TrackRun) -> Traf {
    Traf {
        tfhd: Tfhd {
            track_id: run.track_id,
            default_base_is_moof: true,
            ..Default::default()
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: run.base_decode_time,
        }),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: run
                .samples
                .iter()
                .map(|s| TrunEntry {
                    duration: Some(s.duration),
                    size: Some(s.data.len() as u32),
                    flags: Some(if s.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE }),
                    cts: Some(i64::from(s.composition_offset)),
                })
                .collect::<Vec<_>>()
                .into(),
        }],
        sbgp: vec![],
        sgpd: vec![],
        subs: vec![],
        saiz: vec![],
        saio: vec![],
        meta: None,
        senc: None,
        udta: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Mdat};

    #[test]
    fn data_offsets_point_at_each_tracks_samples() {
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: 9000,
                samples: vec![
                    Sample {
                        duration: 3000,
                        composition_offset: 6000,
                        sync: true,
                        data: Bytes::from_static(b"AAAA"),
                    },
                    Sample {
                        duration: 3000,
                        composition_offset: -3000,
                        sync: false,
                        data: Bytes::from_static(b"BB"),
                    },
                ],
            },
            TrackRun {
                track_id: 2,
                base_decode_time: 4410,
                samples: vec![Sample {
                    duration: 1024,
                    composition_offset: 0,
                    sync: true,
                    data: Bytes::from_static(b"CCC"),
                }],
            },
        ];
        let bytes = write_fragment(7, &runs).unwrap();
        let mut cursor = std::io::Cursor::new(bytes.as_ref());
        let moof = Moof::decode(&mut cursor).unwrap();
        let moof_len = cursor.position() as i32;
        let mdat = Mdat::decode(&mut cursor).unwrap();
        assert_eq!(mdat.data, b"AAAABBCCC");
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf[0].trun[0].data_offset, Some(moof_len + 8));
        assert_eq!(moof.traf[1].trun[0].data_offset, Some(moof_len + 8 + 6));
        assert_eq!(
            moof.traf[1].tfdt.as_ref().unwrap().base_media_decode_time,
            4410
        );
        let second = moof.traf[0].trun[0].samples.get(1).unwrap();
        assert_eq!(second.cts, Some(-3000));
    }
}
