//! One destination's frames waiting to be pushed, bounded by how much media they
//! span and by bytes. Ingest never waits on it: on overflow the queue drops what it
//! holds and everything up to the next keyframe (the destination's decoder could not
//! use frames that depend on dropped ones), and counts the drop. A connection's
//! start also waits for a keyframe; what it skips then is not a loss and not counted.
//!
//! The reader takes what is queued in batches, one socket write each: a write to a
//! destination costs a system call and a wake-up of the server on the other end,
//! which dominated a destination's CPU when every tag was written alone. Video, codec
//! headers and a close release a batch at once; audio waits for the next video frame,
//! or until it spans [`MAX_AUDIO_HOLD_MS`] (a stream without video, or with very few
//! frames per second). So video reaches a destination as soon as it arrives, and audio
//! at most one video frame interval later, well within what destinations buffer.
//!
//! Hand-written because tokio's channels bound by count and cannot drop from the head:
//! a destination that falls behind must lose its oldest media, not its newest.

use std::collections::VecDeque;
use std::sync::Mutex;

use castmesh_media::TrackKind;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::tap::TapFrame;

/// The longest audio waits for a video frame to share its write (media time).
pub const MAX_AUDIO_HOLD_MS: u32 = 50;

pub struct FrameQueue {
    inner: Mutex<Inner>,
    ready: Notify,
    max_span_ms: u32,
    max_bytes: usize,
    dropped: Counter,
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<TapFrame>,
    bytes: usize,
    /// Frames are dropped until a keyframe (at the start, and after an overflow).
    await_keyframe: bool,
    /// The wait is an overflow's: what it drops is counted.
    overflowed: bool,
    /// The timestamp of the oldest frame waiting for a batch to be released.
    held_since: Option<u32>,
    /// The reader may take what is queued.
    released: bool,
    closed: bool,
}

impl FrameQueue {
    /// Counts what it drops in `dropped`.
    pub fn new(max_span_ms: u32, max_bytes: usize, dropped: Counter) -> Self {
        Self {
            inner: Mutex::new(Inner {
                await_keyframe: true,
                ..Inner::default()
            }),
            ready: Notify::new(),
            max_span_ms,
            max_bytes,
            dropped,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, frame: TapFrame) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if q.await_keyframe && !frame.config {
            if !frame.keyframe {
                if q.overflowed {
                    self.dropped.inc();
                }
                return;
            }
            q.await_keyframe = false;
            q.overflowed = false;
        }
        q.bytes += frame.body.len();
        q.frames.push_back(frame);
        let span = match (q.frames.front(), q.frames.back()) {
            (Some(first), Some(last)) => last.timestamp_ms.wrapping_sub(first.timestamp_ms),
            _ => 0,
        };
        // A timestamp that jumped back wraps to a huge span: the publisher restarted its
        // clock, and the queue starts over at a keyframe like after an overflow.
        if span > self.max_span_ms || q.bytes > self.max_bytes {
            self.dropped.inc_by(q.frames.len() as u64);
            q.clear();
            q.await_keyframe = true;
            q.overflowed = true;
            return;
        }
        let (kind, ts, config) = {
            let last = q.frames.back().expect("just pushed");
            (last.kind, last.timestamp_ms, last.config)
        };
        let held = *q.held_since.get_or_insert(ts);
        let release =
            config || kind == TrackKind::Video || ts.wrapping_sub(held) >= MAX_AUDIO_HOLD_MS;
        if release && !q.released {
            q.released = true;
            q.held_since = None;
            drop(q);
            self.ready.notify_one();
        }
    }

    /// Moves the next batch of frames into `batch` (which it clears first); `false`
    /// once closed.
    pub async fn next_batch(&self, batch: &mut Vec<TapFrame>) -> bool {
        batch.clear();
        loop {
            let ready = self.ready.notified();
            {
                let mut q = self.lock();
                if q.closed {
                    return false;
                }
                if q.released {
                    q.released = false;
                    q.held_since = None;
                    q.bytes = 0;
                    batch.extend(q.frames.drain(..));
                    if !batch.is_empty() {
                        return true;
                    }
                }
            }
            ready.await;
        }
    }

    /// Forgets what is queued and waits for a keyframe again: a new connection starts
    /// with the sequence headers and a keyframe, not with stale frames.
    pub fn restart(&self) {
        let mut q = self.lock();
        q.clear();
        q.await_keyframe = true;
        q.overflowed = false;
    }

    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.clear();
        drop(q);
        self.ready.notify_waiters();
    }

    /// Resolves once the queue is closed.
    pub async fn closed(&self) {
        loop {
            let ready = self.ready.notified();
            if self.lock().closed {
                return;
            }
            ready.await;
        }
    }
}

impl Inner {
    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.held_since = None;
        self.released = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn frame(ts: u32, keyframe: bool, size: usize) -> TapFrame {
        TapFrame {
            kind: TrackKind::Video,
            publisher: 0,
            timestamp_ms: ts,
            body: Bytes::from(vec![0; size]),
            keyframe,
            config: false,
        }
    }

    fn audio(ts: u32) -> TapFrame {
        TapFrame {
            kind: TrackKind::Audio,
            ..frame(ts, false, 10)
        }
    }

    /// The batches released so far, as timestamps.
    async fn batches(q: &FrameQueue) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        while let Ok(true) =
            tokio::time::timeout(Duration::from_millis(10), q.next_batch(&mut batch)).await
        {
            out.push(batch.iter().map(|f| f.timestamp_ms).collect());
        }
        out
    }

    async fn drain(q: &FrameQueue) -> Vec<u32> {
        batches(q).await.concat()
    }

    #[tokio::test]
    async fn audio_rides_with_the_next_video_frame_or_goes_after_its_hold() {
        let q = FrameQueue::new(10_000, 1 << 20, Counter::default());
        q.push(frame(0, true, 10));
        assert_eq!(batches(&q).await, [[0]]);
        q.push(audio(10));
        q.push(audio(33));
        assert!(batches(&q).await.is_empty(), "audio waits for video");
        q.push(frame(40, false, 10));
        q.push(audio(45));
        // Released by the video frame; the audio behind it joins the same batch.
        assert_eq!(batches(&q).await, [[10, 33, 40, 45]]);
        // Without video, audio goes once it spans the hold.
        q.push(audio(56));
        q.push(audio(80));
        assert!(batches(&q).await.is_empty());
        q.push(audio(80 + MAX_AUDIO_HOLD_MS));
        assert_eq!(batches(&q).await, [[56, 80, 80 + MAX_AUDIO_HOLD_MS]]);
    }

    #[tokio::test]
    async fn it_starts_at_a_keyframe_and_drops_to_the_next_one_on_overflow() {
        let dropped = Counter::default();
        let q = FrameQueue::new(1000, 1 << 20, dropped.clone());
        q.push(frame(0, false, 10));
        q.push(frame(40, true, 10));
        q.push(frame(80, false, 10));
        assert_eq!(drain(&q).await, [40, 80]);
        assert_eq!(
            dropped.get(),
            0,
            "the wait for the first keyframe loses nothing"
        );
        // Nobody pops: past a second of media, everything goes.
        for ts in (120..=1200).step_by(40) {
            q.push(frame(ts, ts == 120, 10));
        }
        q.push(frame(1240, false, 10));
        q.push(frame(1280, true, 10));
        assert_eq!(drain(&q).await, [1280]);
        // 27 queued at the overflow (120 to 1160), then 1200 and 1240 up to the keyframe.
        assert_eq!(dropped.get(), 27 + 2);
    }

    #[tokio::test]
    async fn bytes_bound_it_too_and_a_closed_queue_ends_its_reader() {
        let q = FrameQueue::new(60_000, 100, Counter::default());
        q.push(frame(0, true, 60));
        q.push(frame(40, false, 60));
        assert!(drain(&q).await.is_empty());
        q.push(frame(80, true, 60));
        q.close();
        assert!(!q.next_batch(&mut Vec::new()).await);
    }
}
