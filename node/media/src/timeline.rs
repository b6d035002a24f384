//! One continuous decode timeline per stream, whatever the publisher's clock does.
//!
//! RTMP timestamps are 32-bit milliseconds that wrap, restart at zero when a
//! publisher reconnects, and sometimes jump (encoder restarts, NVENC/QSV
//! oddities). fMP4 needs decode times that only grow within a discontinuity,
//! and both tracks must move together to keep lip sync, so one offset is
//! shared by audio and video.

use super::TrackKind;

/// Gap left between the last frame of one timeline run and the first of the next.
const REBASE_GAP_MS: i64 = 1;

#[derive(Debug, Clone)]
pub struct Timeline {
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
    pub fn new(jump_threshold_ms: u32, start_at: i64) -> Self {
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
    pub fn rebase(&mut self, end_ms: Option<i64>) {
        self.rebase_pending = true;
        self.next_anchor = end_ms.map(|e| e + REBASE_GAP_MS);
        self.last_unwrapped = None;
    }

    /// Latest decode time handed out on either track.
    pub fn latest(&self) -> Option<i64> {
        self.last_video.max(self.last_audio)
    }

    /// Maps a publisher timestamp to the stream timeline (milliseconds).
    /// Returns the time and whether a jump was smoothed over.
    pub fn map(&mut self, track: TrackKind, rtmp_ms: u32) -> (i64, bool) {
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
