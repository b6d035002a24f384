//! The node's only doors to the outside world: wall clock, randomness and
//! listening sockets. Production uses the OS; the simulator (a later issue)
//! substitutes turmoil's network and a seeded RNG. Timers and monotonic time go
//! through `tokio::time`, which turmoil already controls.

pub mod clock;
pub mod entropy;
pub mod net;

use std::sync::Arc;

pub use clock::{Clock, SystemClock};
pub use entropy::Entropy;
pub use net::{Network, TokioNetwork};

/// Clock and randomness shared by every part of a node.
#[derive(Clone)]
pub struct Seams {
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<Entropy>,
}

impl Seams {
    pub fn production() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            entropy: Arc::new(Entropy::from_os()),
        }
    }
}
