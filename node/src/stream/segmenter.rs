//! The segmenter actor: runs the pure [`Packager`] for one stream, writing straight
//! into the stream's [`LiveStream`] window.
//!
//! The window outlives this actor. When it is restarted after a panic, the new
//! segmenter continues the same playlist after a discontinuity, so nothing that
//! was listed disappears.

use std::sync::Arc;
use std::time::SystemTime;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;

use crate::live::LiveStream;
use crate::metrics::StreamMetrics;
use crate::stream::context::NodeContext;
use castmesh_media::cmaf::EncodeError;
use castmesh_media::hls::packager::{CutRules, Packager, Packed};
use castmesh_media::hls::window::Window;
use castmesh_media::{Codecs, Frame};

/// Media messages carry the generation of the publisher that sent them: after a
/// takeover, a frame the old ingest was still handling is recognised and dropped.
pub enum SegmenterMsg {
    Codecs {
        publisher: u64,
        codecs: Codecs,
    },
    /// The permit is the frame's share of the stream's bounded pipeline; dropping it
    /// after processing lets the publisher's connection read more.
    Frame {
        publisher: u64,
        frame: Frame,
        permit: OwnedSemaphorePermit,
    },
    NewPublisher(u64),
    EndOfStream,
    /// Fault injection: panic.
    #[cfg(feature = "test-hooks")]
    Crash,
}

pub struct SegmenterActor;

pub struct SegmenterArgs {
    pub stream: String,
    /// Generation of the publisher currently attached.
    pub publisher: u64,
    pub live: Arc<LiveStream>,
    pub ctx: Arc<NodeContext>,
}

pub struct SegmenterState {
    args: SegmenterArgs,
    packager: Packager,
    publisher: u64,
    metrics: StreamMetrics,
}

impl Actor for SegmenterActor {
    type Msg = SegmenterMsg;
    type State = SegmenterState;
    type Arguments = SegmenterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SegmenterMsg>,
        args: SegmenterArgs,
    ) -> Result<SegmenterState, ActorProcessingErr> {
        let config = &args.ctx.config;
        let rules = CutRules {
            segment_target_ms: config.hls.segment_target.as_millis() as i64,
            segment_max_ms: i64::from(config.target_duration_s()) * 1000 + 499,
            part_target_ms: config.hls.part_target.as_millis() as i64,
            jump_threshold_ms: config.hls.timestamp_jump.as_millis() as u32,
        };
        // A restarted segmenter continues the timeline after the last listed part and
        // starts with a discontinuity.
        let (start_at, restarted) = {
            let w = args.live.read();
            (
                w.timeline_end_ms().map_or(0, |t| t + 1),
                w.position().has_media(),
            )
        };
        if restarted {
            tracing::warn!(stream = %args.stream, "segmenter restarted; continuing after a discontinuity");
        }
        Ok(SegmenterState {
            packager: Packager::new(rules, start_at, restarted),
            publisher: args.publisher,
            metrics: args.ctx.metrics.for_stream(&args.stream),
            args,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SegmenterMsg>,
        msg: SegmenterMsg,
        state: &mut SegmenterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SegmenterMsg::Codecs { publisher, codecs } if publisher == state.publisher => {
                state.package(|p, now, w| p.set_codecs(codecs, now, w))?
            }
            // The frame's credit is released when `permit` drops, once the frame is in
            // the window (or held by the packager): the publisher may then send more.
            SegmenterMsg::Frame {
                publisher,
                frame,
                permit,
            } if publisher == state.publisher => {
                state.package(|p, now, w| p.push(frame, now, w))?;
                drop(permit);
            }
            SegmenterMsg::Codecs { .. } | SegmenterMsg::Frame { .. } => {}
            SegmenterMsg::NewPublisher(publisher) => {
                state.publisher = publisher;
                state.package(|p, now, w| p.new_publisher(now, w))?
            }
            SegmenterMsg::EndOfStream => state.package(|p, now, w| {
                let packed = p.finish(now, w);
                w.end_stream();
                packed
            })?,
            #[cfg(feature = "test-hooks")]
            SegmenterMsg::Crash => panic!("fault injection: segmenter crash requested"),
        }
        Ok(())
    }
}

impl SegmenterState {
    /// Runs one packager step straight into the window, under its write lock; the
    /// window re-renders the playlist only if the step changed it.
    fn package(
        &mut self,
        step: impl FnOnce(&mut Packager, SystemTime, &mut Window) -> Result<Packed, EncodeError>,
    ) -> Result<(), EncodeError> {
        let now = self.args.ctx.seams.clock.wall();
        let packager = &mut self.packager;
        let (packed, bytes_held) = self.args.live.update_if_changed(|w| {
            let packed = step(packager, now, w);
            // Most frames only join the open part: the memory gauge waits for a part.
            let wrote = matches!(&packed, Ok(p) if *p != Packed::default());
            (packed, wrote.then(|| w.media_bytes()))
        });
        let packed = packed?;
        self.metrics.parts.inc_by(packed.parts.into());
        self.metrics.segments.inc_by(packed.segments.into());
        if let Some(bytes) = bytes_held {
            self.metrics.memory_bytes.set(bytes as i64);
        }
        Ok(())
    }
}
