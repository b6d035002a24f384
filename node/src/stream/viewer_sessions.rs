//! The viewer sessions of one stream on this node: who fetched its playlist or parts
//! lately. HTTP handlers record sightings here directly, under a short lock, instead
//! of sending the viewer-counter actor a message per request: at tens of thousands
//! of requests a second those messages (each one waking the actor, often on the other
//! core) cost more than serving the playlist. The actor sweeps expired sessions.
//!
//! Held by the stream's stats, so a restarting counter keeps the sessions it had.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Sessions tracked per stream at most; beyond it new sessions are not counted, so a
/// client inventing session cookies cannot grow this map without bound.
const MAX_TRACKED_SESSIONS: usize = 100_000;

/// A session fetched something.
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    pub session: u64,
    /// An anonymous identity the session used before it had a cookie; it is merged
    /// into this one.
    pub replaces: Option<u64>,
    /// The client's address (salted hash): sessions per address are capped.
    pub address: u64,
}

#[derive(Default)]
pub struct ViewerSessions {
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    /// Sightings count only while a viewer counter runs (so an ended stream's map
    /// does not grow with nobody sweeping it).
    counting: bool,
    /// Session → (last seen, address).
    seen: HashMap<u64, (Instant, u64)>,
    /// Sessions tracked per address, so one client inventing cookies fills at most
    /// `streams.max_viewer_sessions_per_ip` of the map.
    per_address: HashMap<u64, usize>,
    per_address_limit: usize,
}

impl ViewerSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A viewer counter runs: sightings count, at most `per_address_limit` sessions
    /// per client address.
    pub fn start(&self, per_address_limit: usize) {
        let mut s = self.lock();
        s.counting = true;
        s.per_address_limit = per_address_limit;
    }

    /// No counter any more: sessions are forgotten and sightings ignored.
    pub fn stop(&self) {
        *self.lock() = Sessions::default();
    }

    /// Records a sighting; the number of sessions after it, if counting.
    pub fn seen(&self, sighting: Sighting, now: Instant) -> Option<usize> {
        let mut s = self.lock();
        if !s.counting {
            return None;
        }
        if let Some(old) = sighting.replaces {
            s.forget(old);
        }
        s.seen(sighting.session, sighting.address, now);
        Some(s.seen.len())
    }

    /// Forgets sessions not seen for `timeout`; the number left.
    pub fn sweep(&self, now: Instant, timeout: Duration) -> usize {
        let mut s = self.lock();
        let gone: Vec<u64> = s
            .seen
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) > timeout)
            .map(|(session, _)| *session)
            .collect();
        for session in gone {
            s.forget(session);
        }
        s.seen.len()
    }
}

impl Sessions {
    fn seen(&mut self, session: u64, address: u64, now: Instant) {
        if let Some(entry) = self.seen.get_mut(&session) {
            entry.0 = now;
            return;
        }
        let from_address = self.per_address.get(&address).copied().unwrap_or(0);
        if self.seen.len() >= MAX_TRACKED_SESSIONS || from_address >= self.per_address_limit {
            return;
        }
        self.seen.insert(session, (now, address));
        *self.per_address.entry(address).or_insert(0) += 1;
    }

    fn forget(&mut self, session: u64) {
        let Some((_, address)) = self.seen.remove(&session) else {
            return;
        };
        if let Some(n) = self.per_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(session: u64, replaces: Option<u64>, address: u64) -> Sighting {
        Sighting {
            session,
            replaces,
            address,
        }
    }

    #[test]
    fn sessions_count_merge_expire_and_are_capped_per_address() {
        let sessions = ViewerSessions::default();
        let t0 = Instant::now();
        assert_eq!(
            sessions.seen(sighting(1, None, 9), t0),
            None,
            "no counter yet"
        );
        sessions.start(2);
        assert_eq!(sessions.seen(sighting(1, None, 9), t0), Some(1));
        assert_eq!(sessions.seen(sighting(1, None, 9), t0), Some(1));
        // The cookie session replaces the anonymous one: still one viewer.
        assert_eq!(sessions.seen(sighting(2, Some(1), 9), t0), Some(1));
        assert_eq!(sessions.seen(sighting(3, None, 9), t0), Some(2));
        assert_eq!(sessions.seen(sighting(4, None, 9), t0), Some(2), "capped");
        assert_eq!(sessions.seen(sighting(5, None, 8), t0), Some(3));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(sessions.seen(sighting(5, None, 8), later), Some(3));
        assert_eq!(sessions.sweep(later, Duration::from_secs(5)), 1);
        // The expired sessions freed their address's places.
        assert_eq!(sessions.seen(sighting(6, None, 9), later), Some(2));
        sessions.stop();
        assert_eq!(sessions.seen(sighting(7, None, 9), later), None);
    }
}
