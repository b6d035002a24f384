//! The ingest actor: bound to one publishing connection. Turns FLV tag bodies
//! into codec configurations and frames for the segmenter, hands the tag bodies as
//! they came to the restream tap, and keeps the stream's ingest statistics.
//!
//! It is not restarted on its own: its state is tied to the connection, so when
//! it stops or fails the supervisor closes the connection with the reason and
//! the stream waits in its grace period for the publisher to reconnect (OBS
//! does so by itself).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::restream::tap::{FrameAt, MediaTap};
use super::segmenter::SegmenterMsg;
use super::stats::StreamStats;
use crate::metrics::StreamMetrics;
use crate::stream::context::NodeContext;
use castmesh_media::flv::{self, TagError};
use castmesh_media::{Codecs, MediaEvent, TrackKind};

/// After this many malformed tags in a row the publisher is disconnected.
const MAX_MALFORMED_IN_A_ROW: u32 = 50;
const MALFORMED_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// Bitrate is measured over windows of this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(2);

/// Why ingest ends a publish; its words reach the publisher's log line and close.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("unsupported codec: {0}")]
    Unsupported(String),
    #[error("{MAX_MALFORMED_IN_A_ROW} malformed tags in a row")]
    Malformed,
    /// A burst above twice the limit, before the measurement window closes.
    #[error("publisher exceeds rtmp.max_bitrate_kbps ({limit_kbps} kbit/s)")]
    Burst { limit_kbps: u64 },
    #[error(
        "publisher sends {sent_kbps} kbit/s, which exceeds rtmp.max_bitrate_kbps ({limit_kbps} kbit/s)"
    )]
    Bitrate { sent_kbps: u64, limit_kbps: u64 },
}

pub enum IngestMsg {
    Media {
        kind: TrackKind,
        timestamp_ms: u32,
        body: Bytes,
        permit: OwnedSemaphorePermit,
    },
    /// The segmenter was restarted: send frames (and the codecs first) to this one.
    Downstream(ActorRef<SegmenterMsg>),
    /// The publisher finished (queued behind its last frames).
    End,
    /// Fault injection: panic.
    #[cfg(feature = "test-hooks")]
    Crash,
}

pub struct IngestActor;

pub struct IngestArgs {
    pub stream: String,
    /// This publisher's generation, stamped on everything sent to the segmenter.
    pub publisher: u64,
    pub segmenter: ActorRef<SegmenterMsg>,
    pub stats: Arc<StreamStats>,
    pub tap: Arc<MediaTap>,
    pub ctx: Arc<NodeContext>,
}

pub struct IngestState {
    stream: String,
    publisher: u64,
    segmenter: ActorRef<SegmenterMsg>,
    stats: Arc<StreamStats>,
    tap: Arc<MediaTap>,
    ctx: Arc<NodeContext>,
    metrics: StreamMetrics,
    codecs: Codecs,
    malformed_in_a_row: u32,
    malformed_unreported: u64,
    last_malformed_warning: Option<Instant>,
    window_start: Instant,
    window_bytes: u64,
}

impl Actor for IngestActor {
    type Msg = IngestMsg;
    type State = IngestState;
    type Arguments = IngestArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<IngestMsg>,
        args: IngestArgs,
    ) -> Result<IngestState, ActorProcessingErr> {
        Ok(IngestState {
            metrics: args.ctx.metrics.for_stream(&args.stream),
            stream: args.stream,
            publisher: args.publisher,
            segmenter: args.segmenter,
            stats: args.stats,
            tap: args.tap,
            ctx: args.ctx,
            codecs: Codecs::default(),
            malformed_in_a_row: 0,
            malformed_unreported: 0,
            last_malformed_warning: None,
            window_start: Instant::now(),
            window_bytes: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<IngestMsg>,
        msg: IngestMsg,
        state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Media {
                kind,
                timestamp_ms,
                body,
                permit,
            } => {
                // The exit reason reaches the publisher's connection through the
                // stream supervisor, which closes it.
                if let Err(refusal) = state.media(kind, timestamp_ms, body, permit) {
                    myself.stop(Some(refusal.to_string()));
                }
            }
            IngestMsg::Downstream(segmenter) => {
                state.segmenter = segmenter;
                if state.codecs != Codecs::default() {
                    state.send_codecs();
                }
            }
            IngestMsg::End => myself.stop(Some("publisher finished".into())),
            #[cfg(feature = "test-hooks")]
            IngestMsg::Crash => panic!("fault injection: ingest crash requested"),
        }
        Ok(())
    }
}

impl IngestState {
    fn media(
        &mut self,
        kind: TrackKind,
        timestamp_ms: u32,
        body: Bytes,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), Refusal> {
        let len = body.len() as u64;
        self.measure_bitrate(len)?;
        self.metrics.ingest_bytes.inc_by(len);
        // The tag as it came, for the restream destinations (no copy: shared bytes).
        let tag = body.clone();
        let event = match kind {
            TrackKind::Video => flv::video_event(timestamp_ms, body),
            TrackKind::Audio => flv::audio_event(timestamp_ms, body),
        };
        let event = match event {
            Ok(event) => {
                self.malformed_in_a_row = 0;
                event
            }
            Err(TagError::Unsupported(what)) => return Err(Refusal::Unsupported(what)),
            Err(e @ TagError::Malformed(..)) => {
                self.malformed_in_a_row += 1;
                self.malformed_unreported += 1;
                // At most one warning per interval, so a bad encoder cannot flood the log.
                if self
                    .last_malformed_warning
                    .is_none_or(|t| t.elapsed() >= MALFORMED_WARNING_INTERVAL)
                {
                    tracing::warn!(stream = %self.stream, error = %e, dropped = self.malformed_unreported, "dropping malformed tags");
                    self.last_malformed_warning = Some(Instant::now());
                    self.malformed_unreported = 0;
                }
                if self.malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW {
                    return Err(Refusal::Malformed);
                }
                return Ok(());
            }
        };
        let at = FrameAt {
            kind,
            publisher: self.publisher,
            timestamp_ms,
        };
        match event {
            MediaEvent::VideoConfig(v) => {
                tracing::info!(stream = %self.stream, codec = %v.codec_string(), width = v.width, height = v.height, "video configuration");
                self.codecs.video = Some(Arc::new(v));
                self.send_codecs();
                self.tap.config(at, tag, &self.codecs);
            }
            MediaEvent::AudioConfig(a) => {
                tracing::info!(stream = %self.stream, codec = %a.codec_string(), sample_rate = a.sample_rate, channels = a.channels, "audio configuration");
                self.codecs.audio = Some(Arc::new(a));
                self.send_codecs();
                self.tap.config(at, tag, &self.codecs);
            }
            MediaEvent::Frame(frame) => {
                match kind {
                    TrackKind::Video => self.metrics.video_frames.inc(),
                    TrackKind::Audio => self.metrics.audio_frames.inc(),
                };
                self.tap.frame(at, tag, frame.keyframe);
                let msg = SegmenterMsg::Frame {
                    publisher: self.publisher,
                    frame,
                    permit,
                };
                if self.segmenter.send_message(msg).is_err() {
                    // The segmenter is restarting; it resumes at the next keyframe.
                    self.metrics.dropped_frames.inc();
                }
            }
            MediaEvent::Ignored => {}
        }
        Ok(())
    }

    fn send_codecs(&self) {
        let _ = self.segmenter.send_message(SegmenterMsg::Codecs {
            publisher: self.publisher,
            codecs: self.codecs.clone(),
        });
    }

    /// Updates the bitrate estimate; a publisher above `rtmp.max_bitrate_kbps` is refused.
    fn measure_bitrate(&mut self, bytes: u64) -> Result<(), Refusal> {
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed();
        let limit_bits = self.ctx.config.rtmp.max_bitrate_kbps * 1000;
        // Checked before the window closes too, so a burst cannot fill memory first.
        if self.window_bytes * 8 > limit_bits * BITRATE_WINDOW.as_secs() * 2 {
            return Err(Refusal::Burst {
                limit_kbps: self.ctx.config.rtmp.max_bitrate_kbps,
            });
        }
        if elapsed >= BITRATE_WINDOW {
            let bps = self.window_bytes as f64 * 8.0 / elapsed.as_secs_f64();
            self.stats.bitrate_bps.store(bps as u64, Ordering::Relaxed);
            self.window_start = Instant::now();
            self.window_bytes = 0;
            if bps > limit_bits as f64 {
                return Err(Refusal::Bitrate {
                    sent_kbps: bps as u64 / 1000,
                    limit_kbps: self.ctx.config.rtmp.max_bitrate_kbps,
                });
            }
        }
        Ok(())
    }
}
