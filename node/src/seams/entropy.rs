use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The node's source of randomness: OS-seeded in production, fixed seed under simulation.
pub struct Entropy(Mutex<StdRng>);

impl Entropy {
    pub fn from_os() -> Self {
        Self(Mutex::new(StdRng::from_os_rng()))
    }

    pub fn seeded(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    pub fn next_u64(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).next_u64()
    }

    /// Random bytes (stream keys).
    pub fn fill(&self, bytes: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fill_bytes(bytes);
    }
}
