//! Where a stream's restream destinations take its media from: the publisher's FLV tag
//! bodies as ingest received them (no re-encoding), handed to every destination's queue,
//! and the codec sequence headers a destination needs first whenever it (re)connects.
//! With no destination, a tag costs one lock and an empty loop.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use castmesh_media::{Codecs, TrackKind};

use super::queue::FrameQueue;

/// One FLV tag body, as the publisher sent it.
#[derive(Debug, Clone)]
pub struct TapFrame {
    pub kind: TrackKind,
    /// The generation of the publisher that sent it (as ingest stamps its frames for
    /// the segmenter): a new publisher's clock starts over, a destination's must not.
    pub publisher: u64,
    pub timestamp_ms: u32,
    pub body: Bytes,
    /// A video keyframe, or audio of a stream without video (any frame starts it).
    pub keyframe: bool,
    /// A codec sequence header (AVC decoder configuration, AAC AudioSpecificConfig).
    pub config: bool,
}

/// Which tag, from which publisher, at what time.
#[derive(Debug, Clone, Copy)]
pub struct FrameAt {
    pub kind: TrackKind,
    pub publisher: u64,
    pub timestamp_ms: u32,
}

/// What a destination sends before the first frame of a connection.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
    /// For `@setDataFrame onMetaData`.
    pub codecs: Codecs,
}

#[derive(Default)]
pub struct MediaTap {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    headers: Headers,
    queues: Vec<Arc<FrameQueue>>,
}

impl MediaTap {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A codec sequence header: kept for later connections, and passed on to the
    /// connected ones (a codec change mid-stream).
    pub fn config(&self, frame: FrameAt, body: Bytes, codecs: &Codecs) {
        let FrameAt {
            kind,
            publisher,
            timestamp_ms,
        } = frame;
        let mut inner = self.lock();
        match kind {
            TrackKind::Video => inner.headers.video = Some(body.clone()),
            TrackKind::Audio => inner.headers.audio = Some(body.clone()),
        }
        inner.headers.codecs = codecs.clone();
        let frame = TapFrame {
            kind,
            publisher,
            timestamp_ms,
            body,
            keyframe: false,
            config: true,
        };
        for q in &inner.queues {
            q.push(frame.clone());
        }
    }

    pub fn frame(&self, frame: FrameAt, body: Bytes, keyframe: bool) {
        let FrameAt {
            kind,
            publisher,
            timestamp_ms,
        } = frame;
        let inner = self.lock();
        if inner.queues.is_empty() {
            return;
        }
        let starts = match kind {
            TrackKind::Video => keyframe,
            TrackKind::Audio => inner.headers.codecs.video.is_none(),
        };
        let frame = TapFrame {
            kind,
            publisher,
            timestamp_ms,
            body,
            keyframe: starts,
            config: false,
        };
        for q in &inner.queues {
            q.push(frame.clone());
        }
    }

    /// A new publisher: its sequence headers replace the last one's.
    pub fn new_publisher(&self) {
        self.lock().headers = Headers::default();
    }

    pub fn headers(&self) -> Headers {
        self.lock().headers.clone()
    }

    pub fn attach(&self, queue: Arc<FrameQueue>) {
        self.lock().queues.push(queue);
    }

    pub fn detach(&self, queue: &Arc<FrameQueue>) {
        self.lock().queues.retain(|q| !Arc::ptr_eq(q, queue));
    }
}
