//! The shared, observable HLS state of one stream.
//!
//! One actor writes (the segmenter on an origin, the relay on an edge); HTTP
//! handlers read. Each change re-renders the playlist once and publishes it through a
//! watch channel, so any number of viewers (and blocked reloads) cost a clone, not a
//! render. Each change is also broadcast as [`WindowEvent`]s to the stream's mesh
//! subscribers, through a bounded channel that never waits for them.

use std::io::Write;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use castmesh_media::Codecs;
use castmesh_media::hls::playlist;
use castmesh_media::hls::window::{Position, Replay, Window, WindowConfig, WindowEvent};

/// One rendered state of the playlist.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The LL-HLS media playlist.
    pub playlist: Bytes,
    /// The same, gzipped: on the first request that accepts gzip, then shared.
    playlist_gzip: OnceLock<Option<Bytes>>,
    /// The multivariant playlist, once the stream has an init segment.
    pub multivariant: Option<Bytes>,
    pub position: Position,
    pub codecs: Option<Codecs>,
}

/// The events of one change, shared by every subscriber.
pub type EventBatch = Arc<[WindowEvent]>;

pub struct LiveStream {
    window: RwLock<Window>,
    published: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<EventBatch>,
}

impl LiveStream {
    /// `queue` bounds the changes a subscriber may fall behind by before it is cut off.
    pub fn new(config: WindowConfig, run: u32, queue: usize) -> Self {
        let window = Window::new(config, run);
        let first = Arc::new(render(&window));
        Self {
            window: RwLock::new(window),
            published: watch::channel(first).0,
            events: broadcast::channel(queue.max(1)).0,
        }
    }

    pub fn config(&self) -> WindowConfig {
        *self.read().config()
    }

    /// The run whose media is listed and served.
    pub fn run(&self) -> u32 {
        self.read().listed().run()
    }

    /// Applies a change, broadcasts its events and publishes the re-rendered playlist.
    pub fn update<R>(&self, change: impl FnOnce(&mut Window) -> R) -> R {
        self.change(change, Publish::Always)
    }

    /// Applies a change that mostly changes nothing (a frame joining the open part):
    /// the playlist is re-rendered and published only if the window recorded an event,
    /// so waiting readers are not woken for nothing.
    pub fn update_if_changed<R>(&self, change: impl FnOnce(&mut Window) -> R) -> R {
        self.change(change, Publish::IfChanged)
    }

    fn change<R>(&self, change: impl FnOnce(&mut Window) -> R, publish: Publish) -> R {
        let (result, snapshot) = {
            let mut w = self.window.write().unwrap_or_else(|e| e.into_inner());
            let result = change(&mut w);
            let events = w.take_events();
            if events.is_empty() && publish == Publish::IfChanged {
                return result;
            }
            // Sent under the write lock, so `subscribe` sees each change either in its
            // replay or in its channel, never both or neither. Without subscribers (most
            // streams on an edge, any stream no edge watches) nothing is built.
            if !events.is_empty() && self.events.receiver_count() > 0 {
                let _ = self.events.send(events.into());
            }
            (result, render(&w))
        };
        self.published.send_replace(Arc::new(snapshot));
        result
    }

    /// The window so far and every change from then on.
    pub fn subscribe(&self) -> (Replay, broadcast::Receiver<EventBatch>) {
        let w = self.read();
        (w.replay(), self.events.subscribe())
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.borrow().clone()
    }

    /// Waits until `ready` holds for a published snapshot, at most `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&Snapshot) -> bool,
    ) -> Option<Arc<Snapshot>> {
        let mut rx = self.published.subscribe();
        let wait = async {
            loop {
                let snap = rx.borrow_and_update().clone();
                if ready(&snap) {
                    return Some(snap);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

impl Snapshot {
    /// The media playlist gzipped, compressed once per version however many viewers
    /// ask (a compression layer would do it once per request). Versions nobody asks
    /// gzip for cost nothing.
    /// `None` only if compressing failed (it writes to memory, so it does not).
    pub fn playlist_gzip(&self) -> Option<Bytes> {
        self.playlist_gzip
            .get_or_init(|| {
                let mut out = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.playlist.len() / 3),
                    flate2::Compression::default(),
                );
                out.write_all(&self.playlist).ok()?;
                out.finish().ok().map(Bytes::from)
            })
            .clone()
    }
}

#[derive(PartialEq, Eq)]
enum Publish {
    Always,
    IfChanged,
}

fn render(w: &Window) -> Snapshot {
    let w = w.listed();
    Snapshot {
        playlist: Bytes::from(playlist::render(w)),
        playlist_gzip: OnceLock::new(),
        multivariant: playlist::render_multivariant(w).map(Bytes::from),
        position: w.position(),
        codecs: w.codecs().cloned(),
    }
}
