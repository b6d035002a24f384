use std::time::SystemTime;

/// Wall-clock time (EXT-X-PROGRAM-DATE-TIME, API timestamps). A simulator gives each
/// node its own, possibly drifting, clock.
pub trait Clock: Send + Sync + 'static {
    fn wall(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch: the time cluster commands carry.
    fn now_ms(&self) -> u64 {
        self.wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}
