//! The viewer-counter actor: distinct HLS viewer sessions of one stream on this node.
//!
//! A viewer is a session that fetched the playlist or a part within the viewer
//! timeout. Sessions are identified without putting anything into media URLs
//! (see `http::viewer`), so caches keep working. HTTP handlers record them in the
//! stream's `ViewerSessions`; this actor expires them every second and publishes
//! the count as a metric.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::stats::StreamStats;
use crate::metrics::Metrics;
use crate::stream::context::NodeContext;

pub enum ViewerMsg {
    /// Forget sessions past the viewer timeout and publish the count.
    Sweep,
    /// Fault injection: panic.
    #[cfg(feature = "test-hooks")]
    Crash,
}

pub struct ViewerCounter;

pub struct ViewerArgs {
    pub stream: String,
    pub stats: Arc<StreamStats>,
    pub ctx: Arc<NodeContext>,
}

pub struct ViewerState {
    args: ViewerArgs,
    timeout: Duration,
    sweeper: Option<JoinHandle<()>>,
}

impl Actor for ViewerCounter {
    type Msg = ViewerMsg;
    type State = ViewerState;
    type Arguments = ViewerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ViewerMsg>,
        args: ViewerArgs,
    ) -> Result<ViewerState, ActorProcessingErr> {
        let timeout = args.ctx.config.streams.viewer_timeout;
        let sweeper = myself.send_interval(Duration::from_secs(1), || ViewerMsg::Sweep);
        // A restarted counter carries on with the sessions its predecessor had.
        args.stats
            .sessions
            .start(args.ctx.config.streams.max_viewer_sessions_per_ip);
        Ok(ViewerState {
            args,
            timeout,
            sweeper: Some(sweeper),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ViewerMsg>,
        state: &mut ViewerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(s) = state.sweeper.take() {
            s.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ViewerMsg>,
        msg: ViewerMsg,
        state: &mut ViewerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ViewerMsg::Sweep => {
                let n = state
                    .args
                    .stats
                    .sessions
                    .sweep(Instant::now(), state.timeout);
                let n = n as u64;
                state.args.stats.viewers.store(n, Ordering::Relaxed);
                state
                    .args
                    .ctx
                    .metrics
                    .viewers
                    .get_or_create(&Metrics::stream(&state.args.stream))
                    .set(n as i64);
            }
            #[cfg(feature = "test-hooks")]
            ViewerMsg::Crash => panic!("fault injection: viewer-counter crash requested"),
        }
        Ok(())
    }
}
