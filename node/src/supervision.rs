//! One-for-one restart intensity for supervisors.
//!
//! ractor reports child failures (panics included) to the supervisor but has no
//! restart strategies, so each supervisor decides per child and uses this to
//! stop restarting a child that keeps failing (Erlang/OTP's MaxR/MaxT).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RestartIntensity {
    max_restarts: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; true when another restart is within the limit.
    pub fn allow_restart(&mut self, now: Instant) -> bool {
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
}

impl StreamChild {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Segmenter => "segmenter",
            Self::ViewerCounter => "viewer-counter",
            Self::Relay => "relay",
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
