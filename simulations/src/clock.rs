//! Each simulated node's wall clock: the simulation's time, shifted by a fixed
//! offset and running fast or slow by a drift rate (parts per million). Leases carry
//! the proposer's wall time, so drift is how the simulator tests that lease safety
//! never depends on clocks agreeing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use castmesh_node::seams::Clock;

#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    pub offset_ms: i64,
    pub drift_ppm: i64,
}

impl Clock for SimClock {
    fn wall(&self) -> SystemTime {
        let since_epoch =
            turmoil::since_epoch().expect("a simulated clock is read in a simulation");
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        let drift_ms = elapsed.as_millis() as i64 * self.drift_ppm / 1_000_000;
        let ms = since_epoch.as_millis() as i64 + self.offset_ms + drift_ms;
        UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
    }
}
