//! Fault schedules, drawn from the run's seed before it starts (so a failing seed's
//! report lists them), and applied to the simulation as its clock reaches them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Mode;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Cuts `side` off from the other nodes, both ways.
    Partition {
        side: Vec<u32>,
    },
    /// Drops everything `from` sends to `to` (but not the answers).
    OneWay {
        from: u32,
        to: u32,
    },
    /// Stops the node at once; what its disk had not synced is lost.
    Crash(u32),
    /// Stops these nodes at the same instant (a rack losing power).
    CrashMany(Vec<u32>),
    Restart(u32),
    /// Delays each message by up to this much: datagrams overtake each other.
    Slow {
        max_latency_ms: u64,
    },
    /// Loses this share of messages (a lost TCP segment breaks its connection).
    Lossy {
        rate: f64,
    },
    /// The main encoder reconnects to node `to`; with `duplicate`, a second encoder
    /// with the same key starts on that node at the same instant, for a few seconds.
    PublisherMoves {
        to: u32,
        duplicate: Option<u32>,
    },
    /// Viewers wait this long before each request.
    SlowViewers {
        delay_ms: u64,
    },
    /// Repairs every link and restores normal latency and loss, and viewers' speed
    /// (crashed nodes stay down until their restart).
    Heal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub at: Duration,
    pub fault: Fault,
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8.3}s {:?}", self.at.as_secs_f64(), self.fault)
    }
}

/// Faults from 1 s until `until`, then a heal and a restart of every node still down.
pub fn schedule(seed: u64, mode: Mode, nodes: u32, until: Duration) -> Vec<Scheduled> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17_5eed);
    let mut out = Vec::new();
    let mut down: BTreeSet<u32> = BTreeSet::new();
    let mut restarts: Vec<Scheduled> = Vec::new();
    let (min_gap, max_gap) = match mode {
        Mode::Safety => (200, 2500),
        Mode::Liveness => (500, 4000),
    };
    let mut at = Duration::from_secs(1);
    while at < until {
        // Restarts due by now go first, so `down` is current.
        restarts.sort_by_key(|s| s.at);
        while restarts.first().is_some_and(|s| s.at <= at) {
            let r = restarts.remove(0);
            if let Fault::Restart(n) = r.fault {
                down.remove(&n);
            }
            out.push(r);
        }
        let roll = rng.random_range(0..100);
        let fault = match roll {
            0..25 => {
                let size = rng.random_range(1..=nodes / 2);
                let mut side: Vec<u32> = (1..=nodes).collect();
                while side.len() as u32 > size {
                    side.remove(rng.random_range(0..side.len()));
                }
                Some(Fault::Partition { side })
            }
            25..35 => {
                let from = rng.random_range(1..=nodes);
                let to = (from % nodes) + 1;
                Some(Fault::OneWay { from, to })
            }
            35..60 => {
                let up: Vec<u32> = (1..=nodes).filter(|n| !down.contains(n)).collect();
                // Liveness mode keeps a majority up; safety mode also cuts the power
                // to a majority at once (what fsync is for).
                let count = match mode {
                    Mode::Liveness if (up.len() as u32) > nodes / 2 + 1 => 1,
                    Mode::Liveness => 0,
                    Mode::Safety if roll >= 50 && up.len() as u32 > nodes / 2 => nodes / 2 + 1,
                    Mode::Safety => u32::from(!up.is_empty()),
                };
                let mut pool = up;
                let mut crashed = Vec::new();
                while (crashed.len() as u32) < count {
                    let n = pool.remove(rng.random_range(0..pool.len()));
                    down.insert(n);
                    let back = at + Duration::from_millis(rng.random_range(300..5000));
                    restarts.push(Scheduled {
                        at: back,
                        fault: Fault::Restart(n),
                    });
                    crashed.push(n);
                }
                crashed.sort_unstable();
                match crashed.len() {
                    0 => None,
                    1 => Some(Fault::Crash(crashed[0])),
                    _ => Some(Fault::CrashMany(crashed)),
                }
            }
            60..72 => Some(Fault::Slow {
                max_latency_ms: rng.random_range(20..400),
            }),
            72..80 => Some(Fault::Lossy {
                rate: rng.random_range(0.001..0.05),
            }),
            80..88 => {
                let to = rng.random_range(1..=nodes);
                let duplicate = rng.random_bool(0.5).then(|| (to % nodes) + 1);
                Some(Fault::PublisherMoves { to, duplicate })
            }
            88..92 => Some(Fault::SlowViewers {
                delay_ms: rng.random_range(500..4000),
            }),
            _ => Some(Fault::Heal),
        };
        if let Some(fault) = fault {
            out.push(Scheduled { at, fault });
        }
        at += Duration::from_millis(rng.random_range(min_gap..max_gap));
    }
    out.push(Scheduled {
        at: until,
        fault: Fault::Heal,
    });
    restarts.sort_by_key(|s| s.at);
    for r in restarts {
        if let Fault::Restart(n) = r.fault
            && down.remove(&n)
        {
            out.push(r);
        }
    }
    out.sort_by_key(|s| s.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crash_is_followed_by_a_restart_and_all_ends_healed() {
        for seed in 0..200 {
            for mode in [Mode::Safety, Mode::Liveness] {
                let s = schedule(seed, mode, 3, Duration::from_secs(20));
                let mut down = BTreeSet::new();
                let mut healed_at_end = false;
                for f in &s {
                    match &f.fault {
                        Fault::Crash(n) => assert!(down.insert(*n), "{seed}: {n} crashed twice"),
                        Fault::CrashMany(ns) => {
                            for n in ns {
                                assert!(down.insert(*n), "{seed}: {n} crashed twice");
                            }
                        }
                        Fault::Restart(n) => assert!(down.remove(n), "{seed}: {n} not down"),
                        Fault::Heal => healed_at_end = f.at >= Duration::from_secs(20),
                        _ => {}
                    }
                    if mode == Mode::Liveness {
                        assert!(down.len() <= 1, "{seed}: a majority must stay up");
                    }
                }
                assert!(down.is_empty() && healed_at_end, "{seed}: {s:?}");
                assert_eq!(s, schedule(seed, mode, 3, Duration::from_secs(20)));
            }
        }
    }
}
