//! What an edge's relay does next, as pure decisions: given what the origin lease
//! says and what a subscription brought, the next step. The relay task (`relay.rs`)
//! only carries the steps out (subscribe, sleep, merge, follow), so these rules are
//! unit-tested here without a mesh, a registry or a clock.

use std::net::SocketAddr;
use std::time::Duration;

use castmesh_media::hls::replica::Merged;
use castmesh_media::hls::window::Position;
use tokio::time::Instant;

use super::registry::OriginLookup;
use crate::mesh::subscription::SubscriptionError;

/// After a lease lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Subscribe to the origin `node` at `addr`.
    Subscribe { node: u64, addr: SocketAddr },
    /// The stream is over everywhere: mark the window ended (`end_window`: it has
    /// media and is not marked yet), then look again later (it may come back).
    Ended { end_window: bool },
    /// Nobody holds the lease yet, or this node is about to: the window stays as it
    /// is; look again after a pause.
    Retry,
}

/// How to take in a subscription's replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// The origin has no media yet (it just took the stream over): keep what viewers
    /// here have until it does; resubscribe after a pause.
    WaitForMedia,
    /// Join the replay to the window (`replica::merge`).
    Merge,
    /// The origin has been behind this window for as long as a window lasts: every
    /// copy ahead of it was lost, so take its window as it is (`replica::replace`).
    Replace,
}

/// After the replay was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The origin is behind this window: wait for it and resubscribe
    /// (counted as `origin_behind`).
    WaitForOrigin,
    /// Follow the origin's changes; `window_replaced`: what viewers here had listed
    /// is gone (counted).
    Follow { window_replaced: bool },
}

/// Why following a subscription ended, as the relay task saw it.
#[derive(Debug)]
pub enum FollowEnded {
    /// Nobody asked for the stream for the idle timeout.
    Idle,
    /// The lease names another node now.
    OriginMoved,
    /// The origin ended the subscription (its stream is gone).
    Closed,
    Failed(SubscriptionError),
}

/// After following ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFollow {
    /// The stream is idle here: the relay ends.
    Stop,
    /// Subscribe again, after a pause if `pause`; `reason` labels the
    /// `castmesh_mesh_resubscribes_total` count.
    Resubscribe { reason: &'static str, pause: bool },
}

/// The decisions of one relay; it remembers since when the origin has been behind.
#[derive(Debug)]
pub struct RelayPolicy {
    me: u64,
    /// Longest an edge keeps a window ahead of its origin's: the time the origin needs
    /// to fill a window.
    behind_limit: Duration,
    behind_since: Option<Instant>,
}

impl RelayPolicy {
    pub fn new(me: u64, behind_limit: Duration) -> Self {
        Self {
            me,
            behind_limit,
            behind_since: None,
        }
    }

    pub fn on_lookup(&self, lookup: &OriginLookup, window: Position) -> Lookup {
        match *lookup {
            OriginLookup::Node {
                node,
                mesh: Some(addr),
                ..
            } if node != self.me => Lookup::Subscribe { node, addr },
            OriginLookup::Vacant { ended: true } => Lookup::Ended {
                end_window: !window.ended && window.has_media(),
            },
            _ => Lookup::Retry,
        }
    }

    /// `had_media`: the window here lists media; `replay_has_media`: the origin's does.
    pub fn on_replay(&self, had_media: bool, replay_has_media: bool, now: Instant) -> Join {
        if had_media && !replay_has_media {
            Join::WaitForMedia
        } else if self
            .behind_since
            .is_some_and(|since| now.duration_since(since) >= self.behind_limit)
        {
            Join::Replace
        } else {
            Join::Merge
        }
    }

    pub fn on_joined(&mut self, merged: Merged, had_media: bool, now: Instant) -> Joined {
        if merged == Merged::Behind {
            self.behind_since.get_or_insert(now);
            return Joined::WaitForOrigin;
        }
        self.behind_since = None;
        Joined::Follow {
            window_replaced: had_media && merged == Merged::Replaced,
        }
    }

    pub fn on_follow_end(&self, ended: &FollowEnded) -> AfterFollow {
        let resubscribe = |reason, pause| AfterFollow::Resubscribe { reason, pause };
        match ended {
            FollowEnded::Idle => AfterFollow::Stop,
            FollowEnded::OriginMoved => resubscribe("origin_moved", false),
            FollowEnded::Closed => resubscribe("closed", false),
            // Caught up at once by subscribing again.
            FollowEnded::Failed(SubscriptionError::Overflow) => resubscribe("overflow", false),
            FollowEnded::Failed(_) => resubscribe("failed", true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u64 = 2;
    const LIMIT: Duration = Duration::from_secs(12);

    fn addr() -> SocketAddr {
        "127.0.0.1:4433".parse().unwrap()
    }

    fn node(node: u64, mesh: Option<SocketAddr>) -> OriginLookup {
        OriginLookup::Node {
            node,
            epoch: 3,
            mesh,
        }
    }

    fn position(has_media: bool, ended: bool) -> Position {
        Position {
            last_complete: has_media.then_some(4),
            open_msn: 5,
            open_parts: 0,
            ended,
        }
    }

    #[test]
    fn a_lookup_decides_whom_to_follow() {
        let p = RelayPolicy::new(ME, LIMIT);
        let live = position(true, false);
        let cases = [
            // The lease names another node with a mesh address: follow it.
            (
                node(1, Some(addr())),
                live,
                Lookup::Subscribe {
                    node: 1,
                    addr: addr(),
                },
            ),
            // Lease moved to this node (a publisher arrived here): wait, the node
            // supervisor replaces the edge.
            (node(ME, Some(addr())), live, Lookup::Retry),
            // A node whose mesh address is not known yet.
            (node(1, None), live, Lookup::Retry),
            // Lease lost (the origin died, nobody took over yet): keep the window.
            (OriginLookup::Vacant { ended: false }, live, Lookup::Retry),
            // Over everywhere: mark the window ended, once, and only if it has media.
            (
                OriginLookup::Vacant { ended: true },
                live,
                Lookup::Ended { end_window: true },
            ),
            (
                OriginLookup::Vacant { ended: true },
                position(true, true),
                Lookup::Ended { end_window: false },
            ),
            (
                OriginLookup::Vacant { ended: true },
                position(false, false),
                Lookup::Ended { end_window: false },
            ),
        ];
        for (lookup, window, want) in cases {
            assert_eq!(p.on_lookup(&lookup, window), want, "{lookup:?} {window:?}");
        }
    }

    #[test]
    fn a_new_origin_without_media_does_not_empty_the_edge() {
        let p = RelayPolicy::new(ME, LIMIT);
        let now = Instant::now();
        assert_eq!(p.on_replay(true, false, now), Join::WaitForMedia);
        assert_eq!(p.on_replay(true, true, now), Join::Merge);
        // An edge with nothing yet takes whatever the origin has.
        assert_eq!(p.on_replay(false, false, now), Join::Merge);
    }

    /// An unjoinable replay behind the edge's window is waited for as long as a window
    /// lasts, then taken as it is.
    #[test]
    fn an_unjoinable_replay_is_waited_for_then_replaces_the_window() {
        let mut p = RelayPolicy::new(ME, LIMIT);
        let t0 = Instant::now();
        assert_eq!(p.on_joined(Merged::Behind, true, t0), Joined::WaitForOrigin);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(p.on_replay(true, true, later), Join::Merge);
        // Still behind: the wait counts from the first time.
        assert_eq!(
            p.on_joined(Merged::Behind, true, later),
            Joined::WaitForOrigin
        );
        assert_eq!(p.on_replay(true, true, t0 + LIMIT), Join::Replace);
        assert_eq!(
            p.on_joined(Merged::Replaced, true, t0 + LIMIT),
            Joined::Follow {
                window_replaced: true
            }
        );
        // Following again resets the wait.
        assert_eq!(p.on_replay(true, true, t0 + LIMIT * 3), Join::Merge);
    }

    #[test]
    fn a_joinable_replay_is_followed() {
        let mut p = RelayPolicy::new(ME, LIMIT);
        let now = Instant::now();
        let follow = |window_replaced| Joined::Follow { window_replaced };
        assert_eq!(p.on_joined(Merged::Continued, true, now), follow(false));
        // A first subscription replaces an empty window: nothing listed was lost.
        assert_eq!(p.on_joined(Merged::Replaced, false, now), follow(false));
        assert_eq!(p.on_joined(Merged::Replaced, true, now), follow(true));
    }

    #[test]
    fn what_ends_following_decides_the_resubscription() {
        let p = RelayPolicy::new(ME, LIMIT);
        let again = |reason, pause| AfterFollow::Resubscribe { reason, pause };
        let cases = [
            (FollowEnded::Idle, AfterFollow::Stop),
            // Lease moved to another node: follow it at once.
            (FollowEnded::OriginMoved, again("origin_moved", false)),
            (FollowEnded::Closed, again("closed", false)),
            (
                FollowEnded::Failed(SubscriptionError::Overflow),
                again("overflow", false),
            ),
            (
                FollowEnded::Failed(SubscriptionError::Refused("gone".into())),
                again("failed", true),
            ),
        ];
        for (ended, want) in cases {
            assert_eq!(p.on_follow_end(&ended), want, "{ended:?}");
        }
    }
}
