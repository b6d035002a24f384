//! What every supervisor (node, stream, edge) shares: decoding a child's exit,
//! restarting a child one-for-one within a restart intensity, the stop reasons
//! supervisors act on.
//!
//! ractor reports child exits and failures (panics included) to the supervisor but
//! has no restart strategies, so each supervisor decides per child: it decodes the
//! event with [`Exit::of`], asks [`Restarts::restart`] whether another restart is
//! within the limit (Erlang/OTP's MaxR/MaxT; counted in metrics and logged), and
//! respawns the child itself, since only it knows how to re-wire it.

use std::collections::VecDeque;
use std::time::Duration;

use ractor::{ActorId, SupervisionEvent};
use tokio::time::Instant;

use crate::metrics::{ActorLabel, Metrics};

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It stopped itself, with the reason it gave (if any).
    Stopped(Option<String>),
    /// It panicked or returned an error.
    Failed(String),
}

impl Exit {
    /// The exited child and how it ended; `None` for events that are not exits.
    pub fn of(event: SupervisionEvent) -> Option<(ActorId, Exit)> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                Some((cell.get_id(), Exit::Stopped(reason)))
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                Some((cell.get_id(), Exit::Failed(err.to_string())))
            }
            _ => None,
        }
    }

    /// In words, for logs and for a publisher being disconnected.
    pub fn reason(&self) -> String {
        match self {
            Exit::Stopped(Some(reason)) => reason.clone(),
            Exit::Stopped(None) => "stopped".into(),
            Exit::Failed(err) => format!("failed: {err}"),
        }
    }

    /// Whether it stopped itself for `reason`.
    pub fn stopped_for(&self, reason: StopReason) -> bool {
        matches!(self, Exit::Stopped(Some(r)) if *r == reason.to_string())
    }
}

/// Reasons a stream supervisor stops itself that its own supervisor acts on. They
/// travel as ractor's stop reason, which is text; compare with [`Exit::stopped_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Another node is the stream's origin now: keep serving it here as an edge.
    Superseded,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Superseded => "another node is the stream's origin now",
        })
    }
}

impl From<StopReason> for String {
    fn from(reason: StopReason) -> String {
        reason.to_string()
    }
}

/// A child failed more often than the restart intensity allows: the supervisor
/// gives up on the stream (and, by exiting, lets its own supervisor clean up).
#[derive(Debug, thiserror::Error)]
#[error(
    "{child} failed more than {max_restarts} times within {}; giving up on the stream",
    humantime::format_duration(*window)
)]
pub struct GaveUp {
    pub child: &'static str,
    pub max_restarts: u32,
    pub window: Duration,
}

/// One-for-one restarts of a per-stream supervisor's children.
#[derive(Debug)]
pub struct Restarts {
    stream: String,
    intensity: RestartIntensity,
}

impl Restarts {
    pub fn new(stream: &str, max_restarts: u32, window: Duration) -> Self {
        Self {
            stream: stream.to_string(),
            intensity: RestartIntensity::new(max_restarts, window),
        }
    }

    /// `child` exited: logs it and, within the intensity, counts the restart the
    /// caller is about to make; beyond it, the caller gives up with the error.
    pub fn restart(
        &mut self,
        child: StreamChild,
        exit: &Exit,
        metrics: &Metrics,
    ) -> Result<(), GaveUp> {
        tracing::warn!(stream = %self.stream, actor = child.name(), reason = %exit.reason(), "child exited; restarting");
        if !self.intensity.allow_restart(Instant::now()) {
            return Err(GaveUp {
                child: child.name(),
                max_restarts: self.intensity.max_restarts,
                window: self.intensity.window,
            });
        }
        metrics
            .actor_restarts
            .get_or_create(&ActorLabel {
                actor: child.name(),
            })
            .inc();
        Ok(())
    }
}

/// Erlang/OTP's MaxR/MaxT: at most `max_restarts` within `window`.
#[derive(Debug)]
struct RestartIntensity {
    max_restarts: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; true when another restart is within the limit.
    fn allow_restart(&mut self, now: Instant) -> bool {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) > self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// The children of a per-stream supervisor, named as in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamChild {
    Ingest,
    Segmenter,
    ViewerCounter,
    Relay,
    Restream,
}

impl StreamChild {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Segmenter => "segmenter",
            Self::ViewerCounter => "viewer-counter",
            Self::Relay => "relay",
            Self::Restream => "restream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_limits_restarts_within_the_window() {
        let mut r = RestartIntensity::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(r.allow_restart(t0));
        assert!(r.allow_restart(t0 + Duration::from_secs(1)));
        assert!(!r.allow_restart(t0 + Duration::from_secs(2)));
        // Once the window has passed, restarts are allowed again.
        assert!(r.allow_restart(t0 + Duration::from_secs(12)));
    }
}
