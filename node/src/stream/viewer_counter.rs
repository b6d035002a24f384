//! The viewer-counter actor: distinct HLS viewer sessions of one stream on this node.
//!
//! A viewer is a session that fetched the playlist or a part within the viewer
//! timeout. Sessions are identified without putting anything into media URLs
//! (see `http::viewer`), so caches keep working.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::stats::StreamStats;
use crate::context::NodeContext;
use crate::metrics::Metrics;

/// Sessions tracked per stream at most; beyond it new sessions are not counted, so a
/// client inventing session cookies cannot grow this map without bound.
const MAX_TRACKED_SESSIONS: usize = 100_000;

pub enum ViewerMsg {
    /// A session fetched something. `replaces` is an anonymous identity the session
    /// used before it had a cookie; it is merged into this one.
    Seen {
        session: u64,
        replaces: Option<u64>,
    },
    Sweep,
    /// Fault injection: panic.
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
    sessions: HashMap<u64, Instant>,
    timeout: Duration,
    sweeper: Option<JoinHandle<()>>,
}

impl ViewerState {
    fn publish(&self) {
        let n = self.sessions.len() as u64;
        self.args.stats.viewers.store(n, Ordering::Relaxed);
        self.args
            .ctx
            .metrics
            .viewers
            .get_or_create(&Metrics::stream(&self.args.stream))
            .set(n as i64);
    }
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
        Ok(ViewerState {
            args,
            sessions: HashMap::new(),
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
            ViewerMsg::Seen { session, replaces } => {
                if let Some(old) = replaces {
                    state.sessions.remove(&old);
                }
                if state.sessions.len() < MAX_TRACKED_SESSIONS
                    || state.sessions.contains_key(&session)
                {
                    state.sessions.insert(session, Instant::now());
                }
            }
            ViewerMsg::Sweep => {
                let now = Instant::now();
                let timeout = state.timeout;
                state
                    .sessions
                    .retain(|_, seen| now.duration_since(*seen) <= timeout);
            }
            ViewerMsg::Crash => panic!("fault injection: viewer-counter crash requested"),
        }
        state.publish();
        Ok(())
    }
}
