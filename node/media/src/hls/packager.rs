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

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::window::{Part, Window};
use crate::cmaf::{self, EncodeError, Sample, TrackRun, VIDEO_TIMESCALE, init::TrackLayout};
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

/// Where the packager writes, in order: the stream's [`Window`] (through which the
/// part reaches the playlist and HTTP without coming back here), or a recorder in tests.
pub trait Sink {
    /// A new init segment; segments after it are decoded with it.
    fn add_init(&mut self, bytes: Bytes, codecs: Codecs);
    fn begin_segment(&mut self, discontinuity: bool, program_date_time: SystemTime);
    /// `timeline_end_ms` is the latest point of the stream timeline when the part closed.
    fn push_part(&mut self, part: Part, timeline_end_ms: i64);
    fn end_segment(&mut self);
}

impl Sink for Window {
    fn add_init(&mut self, bytes: Bytes, codecs: Codecs) {
        Window::add_init(self, bytes, codecs);
    }
    fn begin_segment(&mut self, discontinuity: bool, program_date_time: SystemTime) {
        Window::begin_segment(self, discontinuity, program_date_time);
    }
    fn push_part(&mut self, part: Part, timeline_end_ms: i64) {
        Window::push_part(self, part, timeline_end_ms);
    }
    fn end_segment(&mut self) {
        Window::end_segment(self);
    }
}

/// What one call wrote, for the caller's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub parts: u32,
    pub segments: u32,
}

/// The output of one call: where it goes, the wall-clock time of the call (for
/// EXT-X-PROGRAM-DATE-TIME) and a count of what was written.
struct Out<'a> {
    sink: &'a mut dyn Sink,
    now: SystemTime,
    packed: Packed,
}

impl<'a> Out<'a> {
    fn new(sink: &'a mut dyn Sink, now: SystemTime) -> Self {
        Self {
            sink,
            now,
            packed: Packed::default(),
        }
    }
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
    /// Ties the stream timeline to wall-clock time for EXT-X-PROGRAM-DATE-TIME;
    /// re-anchored at every discontinuity.
    anchor: Option<(i64, SystemTime)>,
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
            anchor: None,
        }
    }

    /// Latest point of the timeline; a successor packager starts after it.
    pub fn timeline_end_ms(&self) -> Option<i64> {
        self.timeline.latest()
    }

    /// New decoder configuration from the publisher. A real change ends the current
    /// segment; the next one starts with a new init after a discontinuity.
    pub fn set_codecs(
        &mut self,
        codecs: Codecs,
        now: SystemTime,
        sink: &mut dyn Sink,
    ) -> Result<Packed, EncodeError> {
        let mut out = Out::new(sink, now);
        if codecs == self.codecs {
            return Ok(out.packed);
        }
        if self.init_codecs.is_some() {
            self.flush(&mut out)?;
            self.discontinuity_next = true;
        }
        self.codecs = codecs;
        Ok(out.packed)
    }

    /// A different publisher continues the stream: close what we have, mark a
    /// discontinuity, and continue the timeline after the last media.
    pub fn new_publisher(
        &mut self,
        now: SystemTime,
        sink: &mut dyn Sink,
    ) -> Result<Packed, EncodeError> {
        let mut out = Out::new(sink, now);
        let end = self.flush(&mut out)?;
        if self.init_codecs.is_some() {
            self.discontinuity_next = true;
        }
        self.timeline.rebase(end);
        self.audio_next = None;
        Ok(out.packed)
    }

    /// The stream ends: close the open segment.
    pub fn finish(&mut self, now: SystemTime, sink: &mut dyn Sink) -> Result<Packed, EncodeError> {
        let mut out = Out::new(sink, now);
        self.flush(&mut out)?;
        Ok(out.packed)
    }

    pub fn push(
        &mut self,
        frame: Frame,
        now: SystemTime,
        sink: &mut dyn Sink,
    ) -> Result<Packed, EncodeError> {
        let mut out = Out::new(sink, now);
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
        Ok(out.packed)
    }

    fn audio_only(&self) -> bool {
        self.codecs.video.is_none()
    }

    fn part_is_empty(&self) -> bool {
        self.video.samples.is_empty() && self.audio.samples.is_empty()
    }

    fn push_video(&mut self, dts: i64, frame: Frame, out: &mut Out<'_>) -> Result<(), EncodeError> {
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
        out: &mut Out<'_>,
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

    fn push_audio(&mut self, dts: i64, frame: Frame, out: &mut Out<'_>) -> Result<(), EncodeError> {
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
    fn start_segment(&mut self, dts: i64, out: &mut Out<'_>) -> Result<(), EncodeError> {
        if self.init_codecs.as_ref() != Some(&self.codecs) {
            let bytes = cmaf::write_init(&self.codecs)?;
            out.sink.add_init(bytes, self.codecs.clone());
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
        out: &mut Out<'_>,
    ) -> Result<(), EncodeError> {
        self.close_part(close_ms, out)?;
        self.end_segment(out);
        self.begin_segment(begin_ms, out);
        Ok(())
    }

    fn begin_segment(&mut self, dts: i64, out: &mut Out<'_>) {
        let discontinuity = std::mem::take(&mut self.discontinuity_next);
        // Each run of the timeline is tied to the wall clock when it begins.
        if discontinuity || self.anchor.is_none() {
            self.anchor = Some((dts, out.now));
        }
        let (base_ms, base_wall) = self.anchor.unwrap_or((dts, out.now));
        let program_date_time = base_wall + Duration::from_millis((dts - base_ms).max(0) as u64);
        out.sink.begin_segment(discontinuity, program_date_time);
        self.segment_start_ms = dts;
        self.part_start_ms = dts;
    }

    fn end_segment(&mut self, out: &mut Out<'_>) {
        out.sink.end_segment();
        out.packed.segments += 1;
    }

    /// Closes the current part at `boundary_ms` (the first frame of the next part).
    fn close_part(&mut self, boundary_ms: i64, out: &mut Out<'_>) -> Result<(), EncodeError> {
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
        let part = Part {
            duration_ms: (boundary_ms - self.part_start_ms).max(1) as f64,
            independent,
            data: bytes,
        };
        out.sink
            .push_part(part, self.timeline.latest().unwrap_or(0));
        out.packed.parts += 1;
        self.part_start_ms = boundary_ms;
        Ok(())
    }

    /// Closes the open part and segment using the last known frame duration.
    /// Returns where the flushed media ends on the timeline.
    fn flush(&mut self, out: &mut Out<'_>) -> Result<Option<i64>, EncodeError> {
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

// The timeline: one continuous decode timeline per stream, whatever the publisher's
// clock does. RTMP timestamps are 32-bit milliseconds that wrap, restart at zero when
// a publisher reconnects, and sometimes jump (encoder restarts, NVENC/QSV oddities).
// fMP4 needs decode times that only grow within a discontinuity, and both tracks must
// move together to keep lip sync, so one offset is shared by audio and video.

/// Gap left between the last frame of one timeline run and the first of the next.
const REBASE_GAP_MS: i64 = 1;

#[derive(Debug, Clone)]
struct Timeline {
    jump_threshold_ms: i64,
    /// Publisher timestamp (unwrapped past 32 bits) of the previous frame.
    last_unwrapped: Option<(u32, i64)>,
    offset: i64,
    rebase_pending: bool,
    /// Where the next run starts, when the caller knows (end of the flushed media).
    next_anchor: Option<i64>,
    /// No decode time is earlier than this: the other track may start a little before
    /// the first frame seen, and decode times are unsigned in MP4.
    start_at: i64,
    last_video: Option<i64>,
    last_audio: Option<i64>,
}

impl Timeline {
    /// `start_at` is where the first frame lands (non-zero when a restarted
    /// segmenter continues a stream's timeline).
    fn new(jump_threshold_ms: u32, start_at: i64) -> Self {
        Self {
            jump_threshold_ms: i64::from(jump_threshold_ms),
            last_unwrapped: None,
            offset: 0,
            rebase_pending: true,
            next_anchor: None,
            start_at,
            last_video: None,
            last_audio: None,
        }
    }

    /// The next frame starts a new run right after `end_ms` (a new publisher took over
    /// and the old one's media ends there), or after the latest frame if unknown.
    fn rebase(&mut self, end_ms: Option<i64>) {
        self.rebase_pending = true;
        self.next_anchor = end_ms.map(|e| e + REBASE_GAP_MS);
        self.last_unwrapped = None;
    }

    /// Latest decode time handed out on either track.
    fn latest(&self) -> Option<i64> {
        self.last_video.max(self.last_audio)
    }

    /// Maps a publisher timestamp to the stream timeline (milliseconds).
    /// Returns the time and whether a jump was smoothed over.
    fn map(&mut self, track: TrackKind, rtmp_ms: u32) -> (i64, bool) {
        let unwrapped = match self.last_unwrapped {
            // Interpreting the difference as signed 32-bit handles wrap-around.
            Some((raw, value)) => value + i64::from(rtmp_ms.wrapping_sub(raw) as i32),
            None => i64::from(rtmp_ms),
        };
        self.last_unwrapped = Some((rtmp_ms, unwrapped));
        let latest = self.latest();
        if self.rebase_pending {
            self.rebase_pending = false;
            let anchor = self
                .next_anchor
                .take()
                .or(latest.map(|l| l + REBASE_GAP_MS))
                .unwrap_or(self.start_at);
            self.offset = anchor - unwrapped;
        }
        let mut t = unwrapped + self.offset;
        let mut jumped = false;
        if let Some(l) = latest
            && (t > l + self.jump_threshold_ms || t < l - self.jump_threshold_ms)
        {
            self.offset += l + REBASE_GAP_MS - t;
            t = l + REBASE_GAP_MS;
            jumped = true;
        }
        t = t.max(self.start_at);
        let last = match track {
            TrackKind::Video => &mut self.last_video,
            TrackKind::Audio => &mut self.last_audio,
        };
        // Decode times must strictly grow per track; small backwards steps are clamped.
        if let Some(prev) = *last
            && t <= prev
        {
            t = prev + 1;
        }
        *last = Some(t);
        (t, jumped)
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

    /// What the packager wrote, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Output {
        Init,
        BeginSegment {
            discontinuity: bool,
        },
        Part {
            duration_ms: f64,
            independent: bool,
            timeline_end_ms: i64,
        },
        EndSegment,
    }

    impl Sink for Vec<Output> {
        fn add_init(&mut self, _: Bytes, _: Codecs) {
            self.push(Output::Init);
        }
        fn begin_segment(&mut self, discontinuity: bool, _: SystemTime) {
            self.push(Output::BeginSegment { discontinuity });
        }
        fn push_part(&mut self, part: Part, timeline_end_ms: i64) {
            self.push(Output::Part {
                duration_ms: part.duration_ms,
                independent: part.independent,
                timeline_end_ms,
            });
        }
        fn end_segment(&mut self) {
            self.push(Output::EndSegment);
        }
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    fn push(seg: &mut Packager, frame: Frame) -> Vec<Output> {
        let mut out = Vec::new();
        let packed = seg.push(frame, NOW, &mut out).unwrap();
        let parts = out.iter().filter(|o| matches!(o, Output::Part { .. }));
        let segments = out.iter().filter(|o| **o == Output::EndSegment);
        assert_eq!(packed.parts as usize, parts.count());
        assert_eq!(packed.segments as usize, segments.count());
        out
    }

    fn set_codecs(seg: &mut Packager, codecs: Codecs) {
        seg.set_codecs(codecs, NOW, &mut Vec::new()).unwrap();
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
                out.extend(push(seg, audio(next_audio)));
                next_audio += 23;
            }
            out.extend(push(seg, video(ms, i % gop == 0)));
        }
        out
    }

    #[test]
    fn cuts_segments_at_keyframes_and_parts_under_target() {
        let mut seg = Packager::new(rules(), 0, false);
        set_codecs(&mut seg, codecs());
        let out = feed(&mut seg, 0, 30 * 7, 60);
        assert_eq!(out[0], Output::Init);
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
                Output::Init => {}
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
        set_codecs(&mut seg, codecs());
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
        set_codecs(&mut seg, codecs());
        feed(&mut seg, 0, 90, 60);
        let end = seg.timeline_end_ms().unwrap();
        let mut flushed = Vec::new();
        let packed = seg.new_publisher(NOW, &mut flushed).unwrap();
        assert_eq!(flushed.last(), Some(&Output::EndSegment));
        assert_eq!(packed.segments, 1);
        set_codecs(&mut seg, codecs());
        let out = feed(&mut seg, 0, 90, 60);
        let starts: Vec<bool> = out
            .iter()
            .filter_map(|o| match o {
                Output::BeginSegment { discontinuity } => Some(*discontinuity),
                _ => None,
            })
            .collect();
        assert!(
            starts[0],
            "first segment after republish is a discontinuity"
        );
        assert!(starts[1..].iter().all(|d| !d));
        let first_end = out.iter().find_map(|o| match o {
            Output::Part {
                timeline_end_ms, ..
            } => Some(*timeline_end_ms),
            _ => None,
        });
        assert!(
            first_end.unwrap() > end,
            "the timeline continues after {end}"
        );
        // Same codecs: no second init.
        assert!(!out.contains(&Output::Init));
    }

    /// NTSC rates: a 60-frame GOP lasts 2002 ms and millisecond timestamps jitter;
    /// every segment must still start at a keyframe.
    #[test]
    fn ntsc_frame_rates_keep_segments_on_keyframes() {
        let mut seg = Packager::new(rules(), 0, false);
        set_codecs(&mut seg, codecs());
        let mut out = Vec::new();
        for i in 0..(60 * 6) {
            let ms = (f64::from(i) * 1001.0 / 30.0).round() as u32;
            out.extend(push(&mut seg, video(ms, i % 60 == 0)));
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
        set_codecs(&mut seg, codecs());
        let mut out = feed(&mut seg, 0, 60, 60);
        let mut ms = 2000;
        while ms < 5000 {
            out.extend(push(&mut seg, audio(ms)));
            ms += 23;
        }
        let parts_during_stall = out
            .iter()
            .rev()
            .take_while(|o| **o != Output::Init)
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
        set_codecs(&mut seg, only_audio);
        let mut out = Vec::new();
        for i in 0..(44_100 * 5 / 1024) {
            out.extend(push(&mut seg, audio(i * 1024 * 1000 / 44_100)));
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
        set_codecs(&mut seg, codecs());
        assert!(push(&mut seg, video(0, false)).is_empty());
        assert!(push(&mut seg, audio(10)).is_empty());
        let out = push(&mut seg, video(33, true));
        assert_eq!(out[0], Output::Init);
    }

    use TrackKind::{Audio, Video};

    #[test]
    fn starts_at_anchor_and_follows_the_publisher() {
        let mut tl = Timeline::new(5000, 1000);
        assert_eq!(tl.map(Video, 500).0, 1000);
        assert_eq!(tl.map(Audio, 510).0, 1010);
        assert_eq!(tl.map(Video, 533).0, 1033);
    }

    #[test]
    fn wraps_past_32_bits() {
        let mut tl = Timeline::new(5000, 0);
        tl.map(Video, u32::MAX - 10);
        assert_eq!(tl.map(Video, 20).0, 31);
    }

    #[test]
    fn jumps_are_smoothed_and_reported() {
        let mut tl = Timeline::new(5000, 0);
        tl.map(Video, 0);
        tl.map(Video, 33);
        let (t, jumped) = tl.map(Video, 900_000);
        assert!(jumped);
        assert_eq!(t, 34);
        assert_eq!(tl.map(Video, 900_033).0, 67);
        // And backwards.
        let (t, jumped) = tl.map(Video, 10);
        assert!(jumped);
        assert_eq!(t, 68);
    }

    #[test]
    fn rebase_continues_after_the_last_frame() {
        let mut tl = Timeline::new(5000, 0);
        tl.map(Video, 40_000);
        tl.map(Audio, 40_020);
        tl.rebase(None);
        assert_eq!(tl.map(Video, 0).0, 21);
        assert_eq!(tl.map(Audio, 5).0, 26);
        tl.rebase(Some(100));
        assert_eq!(tl.map(Video, 7).0, 101);
    }

    #[test]
    fn nothing_lands_before_the_start() {
        let mut tl = Timeline::new(5000, 0);
        assert_eq!(tl.map(Audio, 50).0, 0);
        // Video that started slightly earlier than the first audio frame.
        assert_eq!(tl.map(Video, 0).0, 0);
        assert_eq!(tl.map(Video, 33).0, 1);
        assert_eq!(tl.map(Video, 100).0, 50);
    }

    #[test]
    fn per_track_times_strictly_grow() {
        let mut tl = Timeline::new(5000, 0);
        tl.map(Video, 100);
        assert_eq!(tl.map(Video, 100).0, 1);
        assert_eq!(tl.map(Video, 99).0, 2);
    }
}
