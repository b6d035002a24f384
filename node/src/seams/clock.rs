use std::time::SystemTime;

/// Wall-clock time (EXT-X-PROGRAM-DATE-TIME, API timestamps). A simulator gives each
/// node its own, possibly drifting, clock.
pub trait Clock: Send + Sync + 'static {
    fn wall(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}
