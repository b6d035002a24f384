//! The rules of one stream's life on its origin, as pure decisions: live → grace →
//! ended → removed, a publisher taking over, the lease lost or moved, another node's
//! hand-over. The stream supervisor (`supervisor.rs`) feeds it each event and carries
//! out what it answers (close a connection, start a timer, stop the segmenter); the
//! rules are unit-tested here without actors or a cluster.

use super::stats::Phase;

/// What happens to a publish about to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Refused with `reason`; `stop`: the stream never had a publisher here, so it
    /// stops and the node serves it as before (as an edge) instead of keeping an
    /// origin nobody feeds.
    Refused { reason: String, stop: bool },
    Accepted {
        /// Publisher number, stamped on its media.
        publisher: u64,
        /// A publisher is attached: close its connection first (same-node takeover).
        close_previous: bool,
        /// Another node (or nobody) produced the epoch before this one: the window
        /// continues from the predecessor (see `takeover`).
        continue_from_predecessor: bool,
    },
}

/// What an expired timer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Stale (the stream changed phase since it was set): nothing.
    Ignore,
    /// The grace period ran out: end the stream (ENDLIST), report it ended under
    /// `epoch`, and remove it after the retention (a timer of `generation`).
    End { epoch: u64, generation: u64 },
    /// The retention ran out: remove the stream.
    Remove,
}

/// What losing the origin lease does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLost {
    Ignore,
    /// Close the publisher's connection and find out where the stream went.
    FindNewOrigin,
}

/// Where the stream went after its lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginMoved {
    Ignore,
    /// Another node is the origin: stop, so the node serves this window as its edge.
    Superseded,
    /// Nowhere (ended by an operator, or cut off from the cluster): end it here, with
    /// no report (the stream's status is not this node's to write); remove it after
    /// the retention (a timer of `generation`).
    EndHere {
        generation: u64,
    },
}

/// The answer to another node taking the stream over at `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOverAnswer {
    /// This node holds that epoch or a newer one.
    Refuse { held: u64 },
    /// It never produced the stream: its window is a copy of another origin's.
    NotProducing,
    /// Close the publisher, stop the segmenter (the window is then final), answer
    /// with `epoch`, and stop as superseded.
    HandOver { epoch: u64 },
}

#[derive(Debug)]
pub struct StreamLifecycle {
    phase: Phase,
    /// Bumped at every phase change, so timers set in an earlier phase are ignored.
    generation: u64,
    /// Bumped for every publisher that attaches (0: none yet).
    publisher: u64,
    /// Origin lease epoch of the latest publisher (0: none yet).
    epoch: u64,
}

impl Default for StreamLifecycle {
    fn default() -> Self {
        Self {
            phase: Phase::Live,
            generation: 0,
            publisher: 0,
            epoch: 0,
        }
    }
}

impl StreamLifecycle {
    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn publisher(&self) -> u64 {
        self.publisher
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// No publisher ever attached here.
    pub fn unused(&self) -> bool {
        self.publisher == 0
    }

    fn enter(&mut self, phase: Phase) -> u64 {
        self.phase = phase;
        self.generation += 1;
        self.generation
    }

    /// A publish granted under lease `epoch` (`lost`: that lease is already lost,
    /// and why) asks to attach; `attached`: a publisher is attached now.
    pub fn handle_attach(&mut self, epoch: u64, lost: Option<String>, attached: bool) -> Attach {
        if epoch < self.epoch || lost.is_some() {
            // Two publishes raced on this node and the newer one attached first, or
            // another node took the stream over meanwhile.
            return Attach::Refused {
                reason: lost.unwrap_or_else(|| "a newer publisher took this stream over".into()),
                stop: self.unused(),
            };
        }
        let continue_from_predecessor = self.epoch == 0 || self.epoch + 1 != epoch;
        self.publisher += 1;
        self.epoch = epoch;
        self.enter(Phase::Live);
        Attach::Accepted {
            publisher: self.publisher,
            close_previous: attached,
            continue_from_predecessor,
        }
    }

    /// The publisher closed the connection itself (or its ingest failed): wait for it
    /// for the grace period, a timer of the generation returned.
    pub fn handle_publisher_gone(&mut self) -> u64 {
        self.enter(Phase::Grace)
    }

    pub fn handle_grace_expired(&mut self, generation: u64) -> Timer {
        if generation != self.generation || self.phase != Phase::Grace {
            return Timer::Ignore;
        }
        let generation = self.enter(Phase::Ended);
        Timer::End {
            epoch: self.epoch,
            generation,
        }
    }

    pub fn handle_retention_expired(&self, generation: u64) -> Timer {
        if generation == self.generation && self.phase == Phase::Ended {
            Timer::Remove
        } else {
            Timer::Ignore
        }
    }

    /// The lease of publisher number `publisher` is lost.
    pub fn handle_lease_lost(&self, publisher: u64) -> LeaseLost {
        if publisher != self.publisher || self.phase == Phase::Ended {
            return LeaseLost::Ignore;
        }
        LeaseLost::FindNewOrigin
    }

    /// After publisher `publisher`'s lease was lost, the lease names node `to`, or
    /// no node.
    pub fn handle_origin_moved(&mut self, publisher: u64, to: Option<u64>) -> OriginMoved {
        if publisher != self.publisher {
            return OriginMoved::Ignore;
        }
        match to {
            Some(_) => OriginMoved::Superseded,
            None if self.phase == Phase::Ended => OriginMoved::Ignore,
            None => OriginMoved::EndHere {
                generation: self.enter(Phase::Ended),
            },
        }
    }

    /// Another node holds the stream's lease of `epoch` and asks this one to stop.
    pub fn handle_hand_over(&self, epoch: u64) -> HandOverAnswer {
        if self.epoch >= epoch {
            HandOverAnswer::Refuse { held: self.epoch }
        } else if self.unused() {
            HandOverAnswer::NotProducing
        } else {
            HandOverAnswer::HandOver { epoch: self.epoch }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(publisher: u64, close_previous: bool, continue_from: bool) -> Attach {
        Attach::Accepted {
            publisher,
            close_previous,
            continue_from_predecessor: continue_from,
        }
    }

    /// A stream live under epoch 5 with its first publisher.
    fn live() -> StreamLifecycle {
        let mut s = StreamLifecycle::default();
        assert_eq!(s.handle_attach(5, None, false), accepted(1, false, true));
        s
    }

    #[test]
    fn a_first_publisher_continues_from_whoever_produced_before() {
        let s = live();
        assert_eq!((s.phase(), s.publisher(), s.epoch()), (Phase::Live, 1, 5));
    }

    #[test]
    fn a_second_publisher_here_takes_over_at_once() {
        let mut s = live();
        // Same node, next epoch: the previous connection is closed; the window
        // continues without a predecessor (this node produced epoch 5).
        assert_eq!(s.handle_attach(6, None, true), accepted(2, true, false));
        // An epoch skipped: another node produced in between.
        assert_eq!(s.handle_attach(9, None, true), accepted(3, true, true));
    }

    #[test]
    fn a_publish_that_lost_the_race_is_refused() {
        let mut s = live();
        assert_eq!(
            s.handle_attach(4, None, true),
            Attach::Refused {
                reason: "a newer publisher took this stream over".into(),
                stop: false
            }
        );
        // A stream nobody ever fed stops when its only publish is refused.
        let mut fresh = StreamLifecycle::default();
        assert_eq!(
            fresh.handle_attach(3, Some("taken over by node 2".into()), false),
            Attach::Refused {
                reason: "taken over by node 2".into(),
                stop: true
            }
        );
        assert!(fresh.unused());
    }

    #[test]
    fn grace_expiry_ends_the_stream_and_retention_removes_it() {
        let mut s = live();
        let grace = s.handle_publisher_gone();
        assert_eq!(s.phase(), Phase::Grace);
        let Timer::End { epoch, generation } = s.handle_grace_expired(grace) else {
            panic!("grace expiry must end the stream");
        };
        assert_eq!((epoch, s.phase()), (5, Phase::Ended));
        // A timer fires once.
        assert_eq!(s.handle_grace_expired(grace), Timer::Ignore);
        assert_eq!(s.handle_retention_expired(generation - 1), Timer::Ignore);
        assert_eq!(s.handle_retention_expired(generation), Timer::Remove);
    }

    #[test]
    fn a_publisher_back_within_the_grace_period_republishes() {
        let mut s = live();
        let grace = s.handle_publisher_gone();
        assert_eq!(s.handle_attach(6, None, false), accepted(2, false, false));
        assert_eq!(s.phase(), Phase::Live);
        // The grace timer set before the republish is stale.
        assert_eq!(s.handle_grace_expired(grace), Timer::Ignore);
        assert_eq!(s.phase(), Phase::Live);
    }

    #[test]
    fn a_publisher_back_after_the_end_goes_live_again() {
        let mut s = live();
        let grace = s.handle_publisher_gone();
        let Timer::End { generation, .. } = s.handle_grace_expired(grace) else {
            panic!("ended");
        };
        assert_eq!(s.handle_attach(6, None, false), accepted(2, false, false));
        // The retention timer of the ended phase no longer removes it.
        assert_eq!(s.handle_retention_expired(generation), Timer::Ignore);
    }

    #[test]
    fn a_lost_lease_closes_the_publisher_and_follows_the_stream() {
        let mut s = live();
        assert_eq!(s.handle_lease_lost(1), LeaseLost::FindNewOrigin);
        // Another node took it over: stop and serve it here as its edge.
        assert_eq!(s.handle_origin_moved(1, Some(2)), OriginMoved::Superseded);
    }

    #[test]
    fn a_lease_lost_to_nobody_ends_the_stream_here() {
        let mut s = live();
        assert_eq!(s.handle_lease_lost(1), LeaseLost::FindNewOrigin);
        let OriginMoved::EndHere { generation } = s.handle_origin_moved(1, None) else {
            panic!("end here");
        };
        assert_eq!(s.phase(), Phase::Ended);
        assert_eq!(s.handle_retention_expired(generation), Timer::Remove);
        // Ended already: a later loss changes nothing.
        assert_eq!(s.handle_lease_lost(1), LeaseLost::Ignore);
        assert_eq!(s.handle_origin_moved(1, None), OriginMoved::Ignore);
    }

    #[test]
    fn news_about_an_earlier_publishers_lease_is_ignored() {
        let mut s = live();
        assert_eq!(s.handle_attach(6, None, true), accepted(2, true, false));
        assert_eq!(s.handle_lease_lost(1), LeaseLost::Ignore);
        assert_eq!(s.handle_origin_moved(1, Some(3)), OriginMoved::Ignore);
        assert_eq!(s.phase(), Phase::Live);
    }

    #[test]
    fn a_takeover_by_another_node_is_answered_by_epoch() {
        let fresh = StreamLifecycle::default();
        assert_eq!(fresh.handle_hand_over(3), HandOverAnswer::NotProducing);
        let s = live();
        // A stale lease: this node holds epoch 5.
        assert_eq!(s.handle_hand_over(5), HandOverAnswer::Refuse { held: 5 });
        assert_eq!(s.handle_hand_over(4), HandOverAnswer::Refuse { held: 5 });
        // A newer one: hand over what epoch 5 produced.
        assert_eq!(s.handle_hand_over(6), HandOverAnswer::HandOver { epoch: 5 });
    }
}
