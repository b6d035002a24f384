//! Who gets in: connection slots counted in total and per client address, and a
//! per-address budget of failed attempts. Shared by the RTMP and HTTP listeners, so
//! one address cannot use up what every client needs (descriptors, linearizable
//! reads on the leader).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Total => "connection limit reached",
            Self::PerAddress => "per-address connection limit reached",
        })
    }
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Total => "connection_limit",
            Self::PerAddress => "per_ip_limit",
        }
    }
}

/// Live connections, at most `total` in all and `per_ip` from one address.
pub struct Slots {
    total: usize,
    per_ip: usize,
    // The map holds only addresses with a live slot, so it is bounded by `total`.
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its slot.
pub struct Slot {
    slots: Arc<Slots>,
    /// Counted against this address too (not for a trusted proxy's connections).
    ip: Option<IpAddr>,
}

impl Slots {
    pub fn new(total: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_ip,
            held: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        self.acquire(Some(ip))
    }

    /// A slot counted only in the total: a trusted proxy's connections carry many
    /// clients, whose own addresses are limited where they are known.
    pub fn try_acquire_shared(self: &Arc<Self>) -> Result<Slot, Refusal> {
        self.acquire(None)
    }

    fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        let mut held = self.held.lock().expect("slots lock");
        let (count, by_ip) = &mut *held;
        if *count >= self.total {
            return Err(Refusal::Total);
        }
        if let Some(ip) = ip {
            let mine = by_ip.entry(ip).or_insert(0);
            if *mine >= self.per_ip {
                return Err(Refusal::PerAddress);
            }
            *mine += 1;
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections held now (for tests and metrics).
    pub fn in_use(&self) -> usize {
        self.held.lock().expect("slots lock").0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("slots lock");
        let (count, by_ip) = &mut *held;
        *count -= 1;
        if let Some(ip) = self.ip
            && let Some(mine) = by_ip.get_mut(&ip)
        {
            *mine -= 1;
            if *mine == 0 {
                by_ip.remove(&ip);
            }
        }
    }
}

/// At most `max` events (refused publishes, streams created, failed sign-ins) per key
/// (a client address, or an address and an email) within `window`; a key over budget
/// is refused until its window ends, without the work another event would cost.
pub struct Budget<K> {
    max: u32,
    window: Duration,
    capacity: usize,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

/// The budget kept per client address.
pub type AddressBudget = Budget<IpAddr>;

impl<K: Eq + Hash + Clone> Budget<K> {
    /// `capacity` bounds the keys remembered; beyond it the oldest windows are
    /// forgotten first.
    pub fn new(max: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max,
            window,
            capacity,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `key` has used up its budget.
    pub fn exhausted(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().expect("budget lock");
        let &(start, events) = windows.get(key)?;
        let ends = start + self.window;
        (events >= self.max && now < ends).then(|| ends - now)
    }

    pub fn record(&self, key: &K) {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("budget lock");
        if !windows.contains_key(key) && windows.len() >= self.capacity {
            let window = self.window;
            windows.retain(|_, (start, _)| now < *start + window);
            if windows.len() >= self.capacity
                && let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| k.clone())
            {
                windows.remove(&oldest);
            }
        }
        let entry = windows.entry(key.clone()).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_in_total_and_per_address_and_free_on_drop() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.try_acquire(a).unwrap();
        let _a2 = slots.try_acquire(a).unwrap();
        assert_eq!(slots.try_acquire(a).err(), Some(Refusal::PerAddress));
        let _b1 = slots.try_acquire(b).unwrap();
        assert_eq!(slots.try_acquire(b).err(), Some(Refusal::Total));
        drop(a1);
        assert_eq!(slots.in_use(), 2);
        assert!(slots.try_acquire(b).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_budgeted_per_address_and_window() {
        let budget = AddressBudget::new(2, Duration::from_secs(60), 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        budget.record(&a);
        assert_eq!(budget.exhausted(&a), None);
        budget.record(&a);
        assert_eq!(budget.exhausted(&a), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(budget.exhausted(&a), None);
        // Bounded memory: a third address evicts the oldest window.
        budget.record(&a);
        budget.record(&a);
        tokio::time::advance(Duration::from_secs(1)).await;
        budget.record(&"10.0.0.2".parse().unwrap());
        budget.record(&"10.0.0.3".parse().unwrap());
        assert_eq!(budget.windows.lock().unwrap().len(), 2);
        assert_eq!(budget.exhausted(&a), None);
    }
}
