//! One destination's frames waiting to be pushed, bounded by how much media they
//! span and by bytes. Ingest never waits on it: on overflow the queue drops what it
//! holds and everything up to the next keyframe (the destination's decoder could not
//! use frames that depend on dropped ones), and counts the drop. A connection's
//! start also waits for a keyframe; what it skips then is not a loss and not counted.
//!
//! Hand-written because tokio's channels bound by count and cannot drop from the head:
//! a destination that falls behind must lose its oldest media, not its newest.

use std::collections::VecDeque;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::tap::TapFrame;

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
            q.frames.clear();
            q.bytes = 0;
            q.await_keyframe = true;
            q.overflowed = true;
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The next frame; `None` once closed.
    pub async fn pop(&self) -> Option<TapFrame> {
        loop {
            let ready = self.ready.notified();
            {
                let mut q = self.lock();
                if q.closed {
                    return None;
                }
                if let Some(frame) = q.frames.pop_front() {
                    q.bytes -= frame.body.len();
                    return Some(frame);
                }
            }
            ready.await;
        }
    }

    /// Forgets what is queued and waits for a keyframe again: a new connection starts
    /// with the sequence headers and a keyframe, not with stale frames.
    pub fn restart(&self) {
        let mut q = self.lock();
        q.frames.clear();
        q.bytes = 0;
        q.await_keyframe = true;
        q.overflowed = false;
    }

    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.frames.clear();
        q.bytes = 0;
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use castmesh_media::TrackKind;

    use super::*;

    fn frame(ts: u32, keyframe: bool, size: usize) -> TapFrame {
        TapFrame {
            kind: TrackKind::Video,
            timestamp_ms: ts,
            body: Bytes::from(vec![0; size]),
            keyframe,
            config: false,
        }
    }

    async fn drain(q: &FrameQueue) -> Vec<u32> {
        let mut out = Vec::new();
        while let Ok(Some(f)) =
            tokio::time::timeout(std::time::Duration::from_millis(10), q.pop()).await
        {
            out.push(f.timestamp_ms);
        }
        out
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
        assert!(q.pop().await.is_none());
    }
}
