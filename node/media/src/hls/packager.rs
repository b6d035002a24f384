//! Frames in, CMAF init segments and LL-HLS parts out: a pure state machine.
//!
//! Segments start at a keyframe once the segment target is reached; parts are
//! cut so none exceeds the part target. If a publisher's keyframe interval is
//! longer than the playlist's target duration, the segment is cut anyway at the
//! target (that segment then starts without a keyframe) because EXTINF must
//! never exceed EXT-X-TARGETDURATION (docs/decisions.md).
//!
//! A video frame's duration is only known when the next one arrives, so one
//! video frame is always held back; that costs one frame interval of latency.

use bytes::Bytes;

use crate::cmaf::{self, EncodeError, Sample, TrackRun, VIDEO_TIMESCALE, init::TrackLayout};
use crate::timeline::Timeline;
use crate::{AudioConfig, Codecs, Frame, TrackKind};

/// In an audio+video stream, audio closes the part itself once video has been silent
/// for this many part targets (normal interleaving jitter stays well below it).
const VIDEO_STALL_PARTS: i64 = 2;

/// Cutting rules, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct CutRules {
    pub segment_target_ms: i64,
    /// Hard ceiling for a segment: EXTINF rounded to the nearest second must not exceed
    /// EXT-X-TARGETDURATION, so target duration + 499 ms.
    pub segment_max_ms: i64,
    pub part_target_ms: i64,
    pub jump_threshold_ms: u32,
}

/// What the packager produced, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A new init segment; segments after it are decoded with it.
    Init {
        bytes: Bytes,
        codecs: Codecs,
    },
    /// A new segment begins at `start_ms` on the stream timeline.
    BeginSegment {
        discontinuity: bool,
        start_ms: i64,
    },
    Part {
        bytes: Bytes,
        duration_ms: f64,
        independent: bool,
    },
    EndSegment,
}

#[derive(Debug)]
struct PendingVideo {
    dts_ms: i64,
    frame: Frame,
}

#[derive(Debug, Default)]
struct Run {
    base: u64,
    samples: Vec<Sample>,
}

impl Run {
    fn push(&mut self, decode_time: u64, sample: Sample) {
        if self.samples.is_empty() {
            self.base = decode_time;
        }
        self.samples.push(sample);
    }
}

pub struct Packager {
    rules: CutRules,
    timeline: Timeline,
    codecs: Codecs,
    /// Codecs of the last init emitted; a difference means a new init and a discontinuity.
    init_codecs: Option<Codecs>,
    discontinuity_next: bool,
    sequence: u32,
    in_segment: bool,
    segment_start_ms: i64,
    part_start_ms: i64,
    pending_video: Option<PendingVideo>,
    last_video_duration_ms: i64,
    video: Run,
    audio: Run,
    /// Next audio decode time in samples; AAC frames are a fixed 1024 samples long.
    audio_next: Option<u64>,
}

impl Packager {
    /// `start_at_ms` continues an existing timeline; `discontinuity` marks the first
    /// segment (a restarted segmenter actor continuing a stream's playlist).
    pub fn new(rules: CutRules, start_at_ms: i64, discontinuity: bool) -> Self {
        Self {
            rules,
            timeline: Timeline::new(rules.jump_threshold_ms, start_at_ms),
            codecs: Codecs::default(),
            init_codecs: None,
            discontinuity_next: discontinuity,
            sequence: 0,
            in_segment: false,
            segment_start_ms: 0,
            part_start_ms: 0,
            pending_video: None,
            last_video_duration_ms: 33,
            video: Run::default(),
            audio: Run::default(),
            audio_next: None,
        }
    }

    /// Latest point of the timeline; a successor packager starts after it.
    pub fn timeline_end_ms(&self) -> Option<i64> {
        self.timeline.latest()
    }

    /// New decoder configuration from the publisher. A real change ends the current
    /// segment; the next one starts with a new init after a discontinuity.
    pub fn set_codecs(&mut self, codecs: Codecs) -> Result<Vec<Output>, EncodeError> {
        if codecs == self.codecs {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if self.init_codecs.is_some() {
            self.flush(&mut out)?;
            self.discontinuity_next = true;
        }
        self.codecs = codecs;
        Ok(out)
    }

    /// A different publisher continues the stream: close what we have, mark a
    /// discontinuity, and continue the timeline after the last media.
    pub fn new_publisher(&mut self) -> Result<Vec<Output>, EncodeError> {
        let mut out = Vec::new();
        let end = self.flush(&mut out)?;
        if self.init_codecs.is_some() {
            self.discontinuity_next = true;
        }
        self.timeline.rebase(end);
        self.audio_next = None;
        Ok(out)
    }

    /// The stream ends: close the open segment.
    pub fn finish(&mut self) -> Result<Vec<Output>, EncodeError> {
        let mut out = Vec::new();
        self.flush(&mut out)?;
        Ok(out)
    }

    pub fn push(&mut self, frame: Frame) -> Result<Vec<Output>, EncodeError> {
        let mut out = Vec::new();
        let (dts, jumped) = self.timeline.map(frame.track, frame.rtmp_ms);
        if jumped {
            tracing::warn!(dts, "publisher timestamp jump smoothed over");
        }
        match frame.track {
            TrackKind::Video if self.codecs.video.is_some() => {
                self.push_video(dts, frame, &mut out)?
            }
            TrackKind::Audio if self.codecs.audio.is_some() => {
                self.push_audio(dts, frame, &mut out)?
            }
            // Frames before their decoder configuration cannot be decoded: dropped.
            _ => {}
        }
        Ok(out)
    }

    fn audio_only(&self) -> bool {
        self.codecs.video.is_none()
    }

    fn part_is_empty(&self) -> bool {
        self.video.samples.is_empty() && self.audio.samples.is_empty()
    }

    fn push_video(
        &mut self,
        dts: i64,
        frame: Frame,
        out: &mut Vec<Output>,
    ) -> Result<(), EncodeError> {
        if !self.in_segment {
            if frame.keyframe {
                self.start_segment(dts, out)?;
                self.pending_video = Some(PendingVideo { dts_ms: dts, frame });
            }
            return Ok(());
        }
        let Some(prev) = self.pending_video.take() else {
            // Video resumes after a stall during which audio carried the parts.
            self.pending_video = Some(PendingVideo { dts_ms: dts, frame });
            return Ok(());
        };
        let gap = (dts - prev.dts_ms).max(1);
        // No sample lasts longer than a part: a longer gap is a stall in the source,
        // kept as a gap in decode time rather than one frame frozen for seconds.
        let duration = gap.min(self.rules.part_target_ms);
        let end = prev.dts_ms + duration;
        self.add_video(prev, duration, out)?;
        if frame.keyframe
            && dts - self.segment_start_ms + duration / 2 >= self.rules.segment_target_ms
        {
            self.cut_segment(end, dts, out)?;
        } else if gap > duration {
            self.close_part(end, out)?;
            self.part_start_ms = dts;
        } else if dts + duration - self.part_start_ms > self.rules.part_target_ms {
            // The arriving frame will not fit if it lasts as long as the last one: close
            // the part now rather than when the next frame proves it (one frame later).
            // If the guess is wrong the part is merely short; `add_video` still keeps
            // every part within the target.
            self.close_part(dts, out)?;
        }
        self.pending_video = Some(PendingVideo { dts_ms: dts, frame });
        Ok(())
    }

    /// Adds a finished video frame. If it would make the part longer than the part
    /// target, the part is closed before it; if it would make the segment longer than
    /// the target duration (a keyframe interval longer than the segment), the segment
    /// is closed before it too.
    fn add_video(
        &mut self,
        prev: PendingVideo,
        duration_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), EncodeError> {
        let start = prev.dts_ms;
        let end = start + duration_ms;
        if !self.part_is_empty() {
            if end - self.segment_start_ms > self.rules.segment_max_ms {
                self.cut_segment(start, start, out)?;
            } else if end - self.part_start_ms > self.rules.part_target_ms {
                self.close_part(start, out)?;
            }
        }
        self.last_video_duration_ms = duration_ms;
        self.add_video_sample(prev, duration_ms);
        Ok(())
    }

    fn push_audio(
        &mut self,
        dts: i64,
        frame: Frame,
        out: &mut Vec<Output>,
    ) -> Result<(), EncodeError> {
        if !self.in_segment {
            if !self.audio_only() {
                return Ok(()); // A/V segments start at a video keyframe.
            }
            self.start_segment(dts, out)?;
        } else if self.audio_only() {
            let frame_ms = self.audio_frame_ms();
            if dts - self.segment_start_ms + frame_ms / 2 >= self.rules.segment_target_ms {
                self.cut_segment(dts, dts, out)?;
            } else if dts - self.part_start_ms + frame_ms > self.rules.part_target_ms {
                self.close_part(dts, out)?;
            }
        } else if dts - self.part_start_ms > VIDEO_STALL_PARTS * self.rules.part_target_ms {
            // Video stopped while audio flows (a camera died, an app went to the
            // background): audio carries the parts so nothing piles up and players
            // keep going.
            if let Some(prev) = self.pending_video.take() {
                let duration = (dts - prev.dts_ms).clamp(1, self.rules.part_target_ms);
                self.add_video(prev, duration, out)?;
            }
            if dts - self.segment_start_ms > self.rules.segment_max_ms {
                self.cut_segment(dts, dts, out)?;
            } else {
                self.close_part(dts, out)?;
            }
        }
        let rate = u64::from(self.audio_rate());
        let mapped = dts as u64 * rate / 1000;
        let per_frame = u64::from(AudioConfig::SAMPLES_PER_FRAME);
        // Count samples for exact timing; resynchronise only when the publisher's clock
        // says we drifted by more than two frames (a gap in the audio).
        let decode_time = match self.audio_next {
            Some(next) if next.abs_diff(mapped) <= 2 * per_frame => next,
            _ => mapped,
        };
        self.audio_next = Some(decode_time + per_frame);
        self.audio.push(
            decode_time,
            Sample {
                duration: AudioConfig::SAMPLES_PER_FRAME,
                composition_offset: 0,
                sync: true,
                data: frame.data,
            },
        );
        Ok(())
    }

    fn audio_rate(&self) -> u32 {
        self.codecs.audio.as_ref().map_or(48_000, |a| a.sample_rate)
    }

    fn audio_frame_ms(&self) -> i64 {
        i64::from(AudioConfig::SAMPLES_PER_FRAME) * 1000 / i64::from(self.audio_rate())
    }

    fn add_video_sample(&mut self, prev: PendingVideo, duration_ms: i64) {
        let ticks_per_ms = i64::from(VIDEO_TIMESCALE / 1000);
        self.video.push(
            prev.dts_ms as u64 * ticks_per_ms as u64,
            Sample {
                duration: (duration_ms * ticks_per_ms) as u32,
                composition_offset: prev.frame.composition_offset_ms * ticks_per_ms as i32,
                sync: prev.frame.keyframe,
                data: prev.frame.data,
            },
        );
    }

    /// First segment after a (re)start: emit a new init if the codecs changed.
    fn start_segment(&mut self, dts: i64, out: &mut Vec<Output>) -> Result<(), EncodeError> {
        if self.init_codecs.as_ref() != Some(&self.codecs) {
            let bytes = cmaf::write_init(&self.codecs)?;
            out.push(Output::Init {
                bytes,
                codecs: self.codecs.clone(),
            });
            self.init_codecs = Some(self.codecs.clone());
        }
        self.in_segment = true;
        self.begin_segment(dts, out);
        Ok(())
    }

    /// Ends the segment: its last part closes at `close_ms`, and the next segment
    /// begins at `begin_ms` (later than `close_ms` across a gap in the source).
    fn cut_segment(
        &mut self,
        close_ms: i64,
        begin_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), EncodeError> {
        self.close_part(close_ms, out)?;
        self.end_segment(out);
        self.begin_segment(begin_ms, out);
        Ok(())
    }

    fn begin_segment(&mut self, dts: i64, out: &mut Vec<Output>) {
        out.push(Output::BeginSegment {
            discontinuity: std::mem::take(&mut self.discontinuity_next),
            start_ms: dts,
        });
        self.segment_start_ms = dts;
        self.part_start_ms = dts;
    }

    fn end_segment(&mut self, out: &mut Vec<Output>) {
        out.push(Output::EndSegment);
    }

    /// Closes the current part at `boundary_ms` (the first frame of the next part).
    fn close_part(&mut self, boundary_ms: i64, out: &mut Vec<Output>) -> Result<(), EncodeError> {
        if self.video.samples.is_empty() && self.audio.samples.is_empty() {
            return Ok(());
        }
        let layout = TrackLayout::of(&self.codecs);
        let independent = match self.video.samples.first() {
            Some(first) => first.sync,
            None => self.audio_only(),
        };
        let mut runs = Vec::with_capacity(2);
        if let Some(id) = layout.video {
            let run = std::mem::take(&mut self.video);
            runs.push(TrackRun {
                track_id: id,
                base_decode_time: run.base,
                samples: run.samples,
            });
        }
        if let Some((id, _)) = layout.audio {
            let run = std::mem::take(&mut self.audio);
            runs.push(TrackRun {
                track_id: id,
                base_decode_time: run.base,
                samples: run.samples,
            });
        }
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = cmaf::write_fragment(self.sequence, &runs)?;
        out.push(Output::Part {
            bytes,
            duration_ms: (boundary_ms - self.part_start_ms).max(1) as f64,
            independent,
        });
        self.part_start_ms = boundary_ms;
        Ok(())
    }

    /// Closes the open part and segment using the last known frame duration.
    /// Returns where the flushed media ends on the timeline.
    fn flush(&mut self, out: &mut Vec<Output>) -> Result<Option<i64>, EncodeError> {
        if !self.in_segment {
            return Ok(None);
        }
        let mut boundary = self.part_start_ms;
        if let Some(prev) = self.pending_video.take() {
            let duration = self.last_video_duration_ms;
            boundary = prev.dts_ms + duration;
            self.add_video(prev, duration, out)?;
        }
        let audio_end = self
            .audio_next
            .map(|next| (next * 1000).div_ceil(u64::from(self.audio_rate())) as i64);
        if self.audio_only() {
            boundary = boundary.max(audio_end.unwrap_or(boundary));
        }
        let boundary = boundary.max(self.part_start_ms + 1);
        self.close_part(boundary, out)?;
        self.end_segment(out);
        self.in_segment = false;
        Ok(Some(boundary.max(audio_end.unwrap_or(boundary))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CutRules {
        CutRules {
            segment_target_ms: 2000,
            segment_max_ms: 2499,
            part_target_ms: 200,
            jump_threshold_ms: 10_000,
        }
    }

    fn codecs() -> Codecs {
        crate::testing::h264_aac()
    }

    fn video(ms: u32, keyframe: bool) -> Frame {
        Frame {
            track: TrackKind::Video,
            rtmp_ms: ms,
            composition_offset_ms: 66,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    fn audio(ms: u32) -> Frame {
        Frame {
            track: TrackKind::Audio,
            rtmp_ms: ms,
            composition_offset_ms: 0,
            keyframe: true,
            data: Bytes::from_static(&[0x21]),
        }
    }

    /// Feeds `seconds` of 30 fps video with a keyframe every `gop` frames, plus audio.
    fn feed(seg: &mut Packager, from_frame: u32, frames: u32, gop: u32) -> Vec<Output> {
        let mut out = Vec::new();
        let mut next_audio = from_frame * 1000 / 30;
        for i in from_frame..from_frame + frames {
            let ms = i * 1000 / 30;
            while next_audio <= ms {
                out.extend(seg.push(audio(next_audio)).unwrap());
                next_audio += 23;
            }
            out.extend(seg.push(video(ms, i % gop == 0)).unwrap());
        }
        out
    }

    #[test]
    fn cuts_segments_at_keyframes_and_parts_under_target() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        let out = feed(&mut seg, 0, 30 * 7, 60);
        assert!(matches!(out[0], Output::Init { .. }));
        let mut segment_ms = 0.0;
        let mut durations = Vec::new();
        let mut first_part_independent = Vec::new();
        let mut at_segment_start = false;
        for o in &out {
            match o {
                Output::BeginSegment { .. } => {
                    segment_ms = 0.0;
                    at_segment_start = true;
                }
                Output::Part {
                    duration_ms,
                    independent,
                    ..
                } => {
                    assert!(*duration_ms <= 200.0, "part of {duration_ms} ms");
                    segment_ms += duration_ms;
                    if at_segment_start {
                        first_part_independent.push(*independent);
                        at_segment_start = false;
                    }
                }
                Output::EndSegment => durations.push(segment_ms),
                Output::Init { .. } => {}
            }
        }
        assert_eq!(durations.len(), 3, "{durations:?}");
        for d in &durations {
            assert!((d - 2000.0).abs() <= 1.0, "segment of {d} ms");
        }
        assert!(first_part_independent.iter().all(|i| *i));
    }

    #[test]
    fn long_gops_are_cut_at_the_target_duration() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        let out = feed(&mut seg, 0, 30 * 9, 250);
        let mut segment_ms = 0.0;
        for o in &out {
            match o {
                Output::BeginSegment { .. } => segment_ms = 0.0,
                Output::Part { duration_ms, .. } => segment_ms += duration_ms,
                Output::EndSegment => assert!(segment_ms < 2500.0, "{segment_ms}"),
                _ => {}
            }
        }
    }

    #[test]
    fn a_new_publisher_gives_one_discontinuity_and_continues_the_timeline() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        feed(&mut seg, 0, 90, 60);
        let end = seg.timeline_end_ms().unwrap();
        let flushed = seg.new_publisher().unwrap();
        assert_eq!(flushed.last(), Some(&Output::EndSegment));
        seg.set_codecs(codecs()).unwrap();
        let out = feed(&mut seg, 0, 90, 60);
        let starts: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::BeginSegment {
                    discontinuity,
                    start_ms,
                } => Some((*discontinuity, *start_ms)),
                _ => None,
            })
            .collect();
        assert!(
            starts[0].0,
            "first segment after republish is a discontinuity"
        );
        assert!(starts[0].1 > end);
        assert!(starts[1..].iter().all(|(d, _)| !d));
        // Same codecs: no second init.
        assert!(!out.iter().any(|o| matches!(o, Output::Init { .. })));
    }

    /// NTSC rates: a 60-frame GOP lasts 2002 ms and millisecond timestamps jitter;
    /// every segment must still start at a keyframe.
    #[test]
    fn ntsc_frame_rates_keep_segments_on_keyframes() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        let mut out = Vec::new();
        for i in 0..(60 * 6) {
            let ms = (f64::from(i) * 1001.0 / 30.0).round() as u32;
            out.extend(seg.push(video(ms, i % 60 == 0)).unwrap());
        }
        let mut expect_independent = false;
        let mut segments = 0;
        for o in &out {
            match o {
                Output::BeginSegment { .. } => expect_independent = true,
                Output::Part {
                    independent,
                    duration_ms,
                    ..
                } => {
                    if expect_independent {
                        assert!(
                            *independent,
                            "segment {segments} does not start at a keyframe"
                        );
                        expect_independent = false;
                    }
                    assert!(*duration_ms <= 200.0, "part of {duration_ms} ms");
                }
                Output::EndSegment => segments += 1,
                _ => {}
            }
        }
        assert_eq!(segments, 5);
    }

    /// Video stops for three seconds while audio goes on: parts keep coming, no
    /// sample is frozen for the whole gap, and nothing accumulates.
    #[test]
    fn a_video_stall_does_not_stop_the_parts() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        let mut out = feed(&mut seg, 0, 60, 60);
        let mut ms = 2000;
        while ms < 5000 {
            out.extend(seg.push(audio(ms)).unwrap());
            ms += 23;
        }
        let parts_during_stall = out
            .iter()
            .rev()
            .take_while(|o| !matches!(o, Output::Init { .. }))
            .filter(|o| matches!(o, Output::Part { .. }))
            .count();
        assert!(parts_during_stall >= 15, "{parts_during_stall} parts");
        assert!(
            seg.audio.samples.len() < 30,
            "audio piled up: {}",
            seg.audio.samples.len()
        );
        // Video comes back at a keyframe and the stream goes on.
        out.extend(feed(&mut seg, 150, 90, 60));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Part {
                independent: true,
                ..
            }
        )));
    }

    #[test]
    fn audio_only_streams_are_cut_by_time() {
        let mut seg = Packager::new(rules(), 0, false);
        let only_audio = Codecs {
            video: None,
            ..codecs()
        };
        seg.set_codecs(only_audio).unwrap();
        let mut out = Vec::new();
        for i in 0..(44_100 * 5 / 1024) {
            out.extend(seg.push(audio(i * 1024 * 1000 / 44_100)).unwrap());
        }
        let mut parts = 0;
        let mut segments = 0;
        for o in &out {
            match o {
                Output::Part {
                    duration_ms,
                    independent,
                    ..
                } => {
                    assert!(*duration_ms <= 200.0 && *independent, "{duration_ms}");
                    parts += 1;
                }
                Output::EndSegment => segments += 1,
                _ => {}
            }
        }
        assert_eq!(segments, 2, "two complete 2 s segments in 5 s");
        assert!(parts >= 20, "{parts} parts");
    }

    #[test]
    fn frames_before_the_first_keyframe_are_dropped() {
        let mut seg = Packager::new(rules(), 0, false);
        seg.set_codecs(codecs()).unwrap();
        assert!(seg.push(video(0, false)).unwrap().is_empty());
        assert!(seg.push(audio(10)).unwrap().is_empty());
        let out = seg.push(video(33, true)).unwrap();
        assert!(matches!(out[0], Output::Init { .. }));
    }
}
