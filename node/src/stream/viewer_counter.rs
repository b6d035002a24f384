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
use crate::metrics::Metrics;
use crate::stream::context::NodeContext;

/// Sessions tracked per stream at most; beyond it new sessions are not counted, so a
/// client inventing session cookies cannot grow this map without bound.
const MAX_TRACKED_SESSIONS: usize = 100_000;

pub enum ViewerMsg {
    /// A session fetched something. `replaces` is an anonymous identity the session
    /// used before it had a cookie; it is merged into this one.
    Seen {
        session: u64,
        replaces: Option<u64>,
        /// The client's address (salted hash): sessions per address are capped.
        address: u64,
    },
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
    /// Session → (last seen, address).
    sessions: HashMap<u64, (Instant, u64)>,
    /// Sessions tracked per address, so one client inventing cookies fills at most
    /// `streams.max_viewer_sessions_per_ip` of the map.
    per_address: HashMap<u64, usize>,
    per_address_limit: usize,
    timeout: Duration,
    sweeper: Option<JoinHandle<()>>,
}

impl ViewerState {
    fn seen(&mut self, session: u64, address: u64, now: Instant) {
        if let Some(entry) = self.sessions.get_mut(&session) {
            entry.0 = now;
            return;
        }
        let from_address = self.per_address.get(&address).copied().unwrap_or(0);
        if self.sessions.len() >= MAX_TRACKED_SESSIONS || from_address >= self.per_address_limit {
            return;
        }
        self.sessions.insert(session, (now, address));
        *self.per_address.entry(address).or_insert(0) += 1;
    }

    fn forget(&mut self, session: u64) {
        let Some((_, address)) = self.sessions.remove(&session) else {
            return;
        };
        if let Some(n) = self.per_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&address);
            }
        }
    }

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
        let per_address_limit = args.ctx.config.streams.max_viewer_sessions_per_ip;
        Ok(ViewerState {
            args,
            sessions: HashMap::new(),
            per_address: HashMap::new(),
            per_address_limit,
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
            ViewerMsg::Seen {
                session,
                replaces,
                address,
            } => {
                if let Some(old) = replaces {
                    state.forget(old);
                }
                state.seen(session, address, Instant::now());
            }
            ViewerMsg::Sweep => {
                let now = Instant::now();
                let timeout = state.timeout;
                let gone: Vec<u64> = state
                    .sessions
                    .iter()
                    .filter(|(_, (seen, _))| now.duration_since(*seen) > timeout)
                    .map(|(s, _)| *s)
                    .collect();
                for session in gone {
                    state.forget(session);
                }
            }
            #[cfg(feature = "test-hooks")]
            ViewerMsg::Crash => panic!("fault injection: viewer-counter crash requested"),
        }
        state.publish();
        Ok(())
    }
}
