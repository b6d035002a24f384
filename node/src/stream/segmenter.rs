//! The segmenter actor: runs the pure [`Packager`] for one stream and
//! applies its output to the stream's [`LiveStream`] window.
//!
//! The window outlives this actor. When it is restarted after a panic, the new
//! segmenter continues the same playlist after a discontinuity, so nothing that
//! was listed disappears.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;

use crate::live::LiveStream;
use crate::metrics::StreamMetrics;
use crate::stream::context::NodeContext;
use castmesh_media::hls::packager::{CutRules, Output, Packager};
use castmesh_media::hls::window::Part;
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
    /// Ties the stream timeline to wall-clock time for EXT-X-PROGRAM-DATE-TIME;
    /// re-anchored at every discontinuity.
    anchor: Option<(i64, SystemTime)>,
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
            anchor: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SegmenterMsg>,
        msg: SegmenterMsg,
        state: &mut SegmenterState,
    ) -> Result<(), ActorProcessingErr> {
        let outputs = match msg {
            SegmenterMsg::Codecs { publisher, codecs } if publisher == state.publisher => {
                state.packager.set_codecs(codecs)?
            }
            SegmenterMsg::Frame {
                publisher, frame, ..
            } if publisher == state.publisher => state.packager.push(frame)?,
            SegmenterMsg::Codecs { .. } | SegmenterMsg::Frame { .. } => return Ok(()),
            SegmenterMsg::NewPublisher(publisher) => {
                state.publisher = publisher;
                state.packager.new_publisher()?
            }
            SegmenterMsg::EndOfStream => {
                let out = state.packager.finish()?;
                state.apply(out);
                state.args.live.update(|w| w.end_stream());
                return Ok(());
            }
            #[cfg(feature = "test-hooks")]
            SegmenterMsg::Crash => panic!("fault injection: segmenter crash requested"),
        };
        state.apply(outputs);
        Ok(())
    }
}

impl SegmenterState {
    fn apply(&mut self, outputs: Vec<Output>) {
        if outputs.is_empty() {
            return;
        }
        let metrics = &self.metrics;
        let wall = self.args.ctx.seams.clock.wall();
        let anchor = &mut self.anchor;
        // Where the stream timeline stands, so a restarted segmenter continues after it.
        let part_end = self.packager.timeline_end_ms().unwrap_or(0);
        let bytes_held = self.args.live.update(|w| {
            for output in outputs {
                match output {
                    Output::Init { bytes, codecs } => {
                        w.add_init(bytes, codecs);
                    }
                    Output::BeginSegment {
                        discontinuity,
                        start_ms,
                    } => {
                        if discontinuity || anchor.is_none() {
                            *anchor = Some((start_ms, wall));
                        }
                        let (base_ms, base_wall) = anchor.expect("anchored above");
                        let offset = Duration::from_millis((start_ms - base_ms).max(0) as u64);
                        w.begin_segment(discontinuity, base_wall + offset);
                    }
                    Output::Part {
                        bytes,
                        duration_ms,
                        independent,
                    } => {
                        w.push_part(
                            Part {
                                duration_ms,
                                independent,
                                data: bytes,
                            },
                            part_end,
                        );
                        metrics.parts.inc();
                    }
                    Output::EndSegment => {
                        w.end_segment();
                        metrics.segments.inc();
                    }
                }
            }
            w.media_bytes()
        });
        metrics.memory_bytes.set(bytes_held as i64);
    }
}
