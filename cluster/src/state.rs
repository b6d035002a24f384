//! The cluster state and the one function that changes it: [`ClusterState::apply`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountCommand, Accounts, UserRecord};
use crate::chat::StreamChat;
use crate::command::{Command, Rejection, Response};
use crate::ids::{StreamId, StreamKey};
use crate::keys::{self, KeyHash};
use crate::model::{Lease, NodeId, NodeRecord, StreamRecord, StreamStatus};
use crate::restream::StreamDestinations;

/// Node ids start at 1: a lease held by node 0 is held by nobody (an operator ended
/// the stream and fenced its origin).
pub const NO_NODE: NodeId = 0;

/// How many `Command::Once` answers are remembered. A retry comes within seconds of
/// the first attempt, when at most a few hundred writes can have happened.
pub const ONCE_WINDOW: usize = 4096;

/// Everything replicated. Ordered maps so snapshots and iteration are identical on
/// every replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub streams: BTreeMap<StreamId, StreamRecord>,
    /// Stream key hash → stream, for the publish check (which only has the key).
    pub keys: BTreeMap<KeyHash, StreamId>,
    /// Origin lease per stream; kept after release or expiry so epochs only grow.
    pub leases: BTreeMap<StreamId, Lease>,
    /// The answers to the last `ONCE_WINDOW` `Command::Once` ids, oldest first.
    #[serde(default)]
    pub once: VecDeque<(u64, Response)>,
    /// Users and sessions; absent in the snapshots of clusters older than accounts.
    #[serde(default)]
    pub accounts: Accounts,
    /// Chat bans and the archives of ended streams' chats, by stream; absent in the
    /// snapshots of clusters older than chat.
    #[serde(default)]
    pub chat: BTreeMap<StreamId, StreamChat>,
    /// Restream destinations by stream; absent in the snapshots of clusters older
    /// than restreaming.
    #[serde(default)]
    pub destinations: BTreeMap<StreamId, StreamDestinations>,
}

impl ClusterState {
    /// The stream a publish key belongs to.
    pub fn stream_for_key(&self, key: &StreamKey) -> Option<&StreamRecord> {
        let id = self.keys.get(&keys::hash(key))?;
        self.streams
            .get(id)
            .filter(|s| keys::verify(key, &s.key_hash))
    }

    /// The stream's current origin, if its lease is live at `now`.
    pub fn origin(&self, stream: &StreamId, now: u64) -> Option<Lease> {
        self.leases.get(stream).copied().filter(|l| l.is_live(now))
    }

    pub fn apply(&mut self, command: Command) -> Response {
        match self.try_apply(command) {
            Ok(r) => r,
            Err(rejection) => Response::Rejected(rejection),
        }
    }

    /// Applies `command` unless `id` was applied already; then answers as the first time.
    fn apply_once(&mut self, id: u64, command: Command) -> Response {
        if let Some((_, answer)) = self.once.iter().find(|(seen, _)| *seen == id) {
            return answer.clone();
        }
        let answer = self.apply(command);
        if self.once.len() == ONCE_WINDOW {
            self.once.pop_front();
        }
        self.once.push_back((id, answer.clone()));
        answer
    }

    /// The stream's lease, if `node` holds it at `epoch`.
    fn held_lease(
        &mut self,
        stream: &StreamId,
        node: NodeId,
        epoch: u64,
    ) -> Result<&mut Lease, Rejection> {
        let lease = self
            .leases
            .get_mut(stream)
            .ok_or_else(|| Rejection::NoLease(stream.clone()))?;
        if lease.node != node || lease.epoch != epoch {
            return Err(Rejection::LeaseLost(*lease));
        }
        Ok(lease)
    }

    /// Moves the stream's lease to nobody at a new epoch: whoever held it loses it at
    /// its next renewal.
    fn fence_origin(&mut self, id: &StreamId) {
        if let Some(lease) = self.leases.get_mut(id) {
            *lease = Lease {
                node: NO_NODE,
                epoch: lease.epoch + 1,
                expires_at: 0,
                reach: lease.reach,
            };
        }
    }

    fn create_stream(&mut self, record: StreamRecord) -> Result<Response, Rejection> {
        if self.streams.contains_key(&record.id) {
            return Err(Rejection::StreamExists(record.id));
        }
        if self.keys.contains_key(&record.key_hash) {
            return Err(Rejection::KeyInUse);
        }
        self.keys.insert(record.key_hash, record.id.clone());
        self.streams.insert(record.id.clone(), record.clone());
        Ok(Response::Stream(record))
    }

    fn delete_stream(&mut self, id: StreamId) -> Result<Response, Rejection> {
        let s = self
            .streams
            .remove(&id)
            .ok_or_else(|| Rejection::NoSuchStream(id.clone()))?;
        self.keys.remove(&s.key_hash);
        self.chat.remove(&id);
        self.destinations.remove(&id);
        // The lease stays, fenced, so epochs only grow even if the id is reused.
        self.fence_origin(&id);
        Ok(Response::Done)
    }

    /// An open-publishing stream nobody has published for the retention: ended that
    /// long ago, or created that long ago and never live, with no origin lease left.
    pub fn forgettable(&self, record: &StreamRecord, now: u64, retention_ms: u64) -> bool {
        let since = match record.status {
            StreamStatus::Ended => record.ended_at,
            StreamStatus::Scheduled => Some(record.created_at),
            _ => None,
        };
        let leased = self.leases.get(&record.id).is_some_and(|l| l.is_live(now));
        record.open && !leased && since.is_some_and(|t| t.saturating_add(retention_ms) <= now)
    }

    /// An account an operator makes owns the streams whose free-text owner is its
    /// email (ASCII case ignored) and that have no owner yet: streams made before
    /// accounts existed find their owners as the operator creates them.
    fn claim_streams(&mut self, user: &UserRecord) {
        for s in self.streams.values_mut() {
            if s.owner_id.is_none() && s.owner.trim().eq_ignore_ascii_case(&user.email) {
                s.owner_id = Some(user.id);
            }
        }
    }

    fn stream_mut(&mut self, id: &StreamId) -> Result<&mut StreamRecord, Rejection> {
        self.streams
            .get_mut(id)
            .ok_or_else(|| Rejection::NoSuchStream(id.clone()))
    }

    fn try_apply(&mut self, command: Command) -> Result<Response, Rejection> {
        match command {
            Command::Once { id, command } => Ok(self.apply_once(id, *command)),
            Command::Chat(command) => {
                let stream = command.stream().clone();
                if !self.streams.contains_key(&stream) {
                    return Err(Rejection::NoSuchStream(stream));
                }
                command.apply(self.chat.entry(stream).or_default());
                Ok(Response::Done)
            }
            Command::Restream(command) => {
                let stream = command.stream().clone();
                if !self.streams.contains_key(&stream) {
                    return Err(Rejection::NoSuchStream(stream));
                }
                let list = self.destinations.entry(stream.clone()).or_default();
                let changed = command.apply(list);
                let answer = changed
                    .map(|id| Response::Destination(list.list.get(&id).cloned()))
                    .map_err(Rejection::Restream);
                if list.list.is_empty() {
                    self.destinations.remove(&stream);
                }
                answer
            }
            Command::Account(command) => {
                let claims = matches!(
                    command,
                    AccountCommand::CreateUser {
                        claim_streams: true,
                        ..
                    }
                );
                let answer = self.accounts.apply(command)?;
                if let (true, Response::User(user)) = (claims, &answer) {
                    self.claim_streams(user);
                }
                Ok(answer)
            }
            Command::UpsertNode(node) => {
                self.nodes.insert(node.id, node);
                Ok(Response::Done)
            }
            Command::RemoveNode { id } => {
                self.nodes.remove(&id).ok_or(Rejection::NoSuchNode(id))?;
                Ok(Response::Done)
            }
            Command::CreateStream {
                id,
                title,
                owner,
                key_hash,
                scheduled_at,
                now,
                owner_id,
                description,
            } => self.create_stream(StreamRecord {
                id,
                title,
                owner,
                owner_id,
                description,
                accepting: true,
                key_hash,
                status: StreamStatus::Scheduled,
                created_at: now,
                scheduled_at,
                started_at: None,
                ended_at: None,
                open: false,
            }),
            Command::CreateOpenStream { id, key_hash, now } => self.create_stream(StreamRecord {
                id,
                title: String::new(),
                owner: String::new(),
                owner_id: None,
                description: String::new(),
                accepting: true,
                key_hash,
                status: StreamStatus::Scheduled,
                created_at: now,
                scheduled_at: None,
                started_at: None,
                ended_at: None,
                open: true,
            }),
            Command::ForgetOpenStream {
                id,
                now,
                retention_ms,
            } => {
                let record = self
                    .streams
                    .get(&id)
                    .ok_or_else(|| Rejection::NoSuchStream(id.clone()))?;
                if !self.forgettable(record, now, retention_ms) {
                    return Err(Rejection::NotForgettable(id));
                }
                self.delete_stream(id)
            }
            Command::UpdateStream {
                id,
                title,
                scheduled_at,
                description,
                owner_id,
            } => {
                if let Some(Some(user)) = owner_id
                    && !self.accounts.users.contains_key(&user)
                {
                    return Err(Rejection::NoSuchUser(user));
                }
                let s = self.stream_mut(&id)?;
                if let Some(t) = title {
                    s.title = t;
                }
                if let Some(at) = scheduled_at {
                    s.scheduled_at = at;
                }
                if let Some(d) = description {
                    s.description = d;
                }
                if let Some(owner) = owner_id {
                    s.owner_id = owner;
                }
                Ok(Response::Stream(s.clone()))
            }
            Command::RotateKey { id, key_hash } => {
                if self.keys.get(&key_hash).is_some_and(|owner| *owner != id) {
                    return Err(Rejection::KeyInUse);
                }
                let s = self.stream_mut(&id)?;
                let old = std::mem::replace(&mut s.key_hash, key_hash);
                let record = s.clone();
                self.keys.remove(&old);
                self.keys.insert(key_hash, id);
                Ok(Response::Stream(record))
            }
            Command::SetStatus {
                id,
                status,
                now,
                fence,
            } => {
                if let Some(f) = fence {
                    self.held_lease(&id, f.node, f.epoch)?;
                }
                let s = self.stream_mut(&id)?;
                if s.status == status {
                    return Ok(Response::Stream(s.clone())); // idempotent retries
                }
                if !s.status.can_become(status) {
                    return Err(Rejection::BadTransition {
                        from: s.status,
                        to: status,
                    });
                }
                s.status = status;
                match status {
                    StreamStatus::Live => {
                        s.started_at = Some(now);
                        s.ended_at = None;
                    }
                    StreamStatus::Ended | StreamStatus::Cancelled => s.ended_at = Some(now),
                    _ => {}
                }
                let record = s.clone();
                // A new live session: destinations start from `enabled` again.
                if status == StreamStatus::Live
                    && let Some(list) = self.destinations.get_mut(&id)
                {
                    crate::restream::new_session(list);
                }
                Ok(Response::Stream(record))
            }
            Command::EndOrphaned {
                id,
                epoch,
                now,
                grace_ms,
            } => {
                let orphaned = self.leases.get(&id).is_none_or(|l| {
                    l.epoch == epoch && l.expires_at.saturating_add(grace_ms) <= now
                });
                let s = self.stream_mut(&id)?;
                if s.status != StreamStatus::Live || !orphaned {
                    return Err(Rejection::OriginAlive(id));
                }
                s.status = StreamStatus::Ended;
                s.ended_at = Some(now);
                let record = s.clone();
                // A paused origin that comes back must not renew into an ended stream.
                self.fence_origin(&id);
                Ok(Response::Stream(record))
            }
            Command::EndStream { id, now, hold_key } => {
                let s = self.stream_mut(&id)?;
                if !matches!(s.status, StreamStatus::Ended | StreamStatus::Live) {
                    return Err(Rejection::BadTransition {
                        from: s.status,
                        to: StreamStatus::Ended,
                    });
                }
                if hold_key {
                    s.accepting = false;
                }
                if s.status == StreamStatus::Ended {
                    let record = s.clone();
                    // A publisher that took the lease but is not live yet goes too.
                    if hold_key {
                        self.fence_origin(&id);
                    }
                    return Ok(Response::Stream(record));
                }
                s.status = StreamStatus::Ended;
                s.ended_at = Some(now);
                let record = s.clone();
                self.fence_origin(&id);
                Ok(Response::Stream(record))
            }
            Command::StartStream { id } => {
                let s = self.stream_mut(&id)?;
                if matches!(s.status, StreamStatus::Archived | StreamStatus::Cancelled) {
                    return Err(Rejection::BadTransition {
                        from: s.status,
                        to: StreamStatus::Live,
                    });
                }
                s.accepting = true;
                Ok(Response::Stream(s.clone()))
            }
            Command::DeleteStream { id } => self.delete_stream(id),
            Command::AcquireLease {
                stream,
                node,
                expected_epoch,
                now,
                ttl_ms,
            } => {
                let record = self
                    .streams
                    .get(&stream)
                    .ok_or_else(|| Rejection::NoSuchStream(stream.clone()))?;
                // Checked here, not only by the publish check before it: a publish
                // that read the stream before a stop must not become its origin after.
                if !record.accepting {
                    return Err(Rejection::StreamStopped(stream));
                }
                let previous = self.leases.get(&stream);
                let reach = previous.map(|l| l.reach).unwrap_or_default();
                let mut current = previous.map_or(0, |l| l.epoch);
                if crate::sabotage::active(crate::sabotage::Bug::SkipEpochCheck) {
                    current = expected_epoch;
                }
                if current != expected_epoch {
                    return Err(Rejection::StaleEpoch {
                        expected: expected_epoch,
                        current,
                    });
                }
                let lease = Lease {
                    node,
                    epoch: current + 1,
                    expires_at: now.saturating_add(ttl_ms),
                    reach,
                };
                self.leases.insert(stream, lease);
                Ok(Response::Lease(lease))
            }
            Command::RenewLease {
                stream,
                node,
                epoch,
                now,
                ttl_ms,
                reach,
            } => {
                // An expired lease is renewable as long as nobody took it: the epoch
                // is unchanged, so no other node can have acted as origin meanwhile.
                let lease = self.held_lease(&stream, node, epoch)?;
                lease.expires_at = lease.expires_at.max(now.saturating_add(ttl_ms));
                lease.reach = lease.reach.max(reach);
                Ok(Response::Lease(*lease))
            }
            Command::ReleaseLease {
                stream,
                node,
                epoch,
            } => {
                self.held_lease(&stream, node, epoch)?.expires_at = 0;
                Ok(Response::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{AccountCommand, PasswordHash, Role};
    use crate::keys::generate;
    use crate::model::MediaReach;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    fn create(state: &mut ClusterState, name: &str, seed: u8) -> StreamKey {
        let key = generate([seed; keys::KEY_BYTES]);
        let r = state.apply(Command::CreateStream {
            id: id(name),
            title: "Title".into(),
            owner: "alice".into(),
            key_hash: keys::hash(&key),
            scheduled_at: None,
            now: 1000,
            owner_id: None,
            description: String::new(),
        });
        assert!(matches!(r, Response::Stream(_)), "{r:?}");
        key
    }

    fn acquire(s: &mut ClusterState, node: NodeId, expected_epoch: u64, now: u64) -> Response {
        s.apply(Command::AcquireLease {
            stream: id("show"),
            node,
            expected_epoch,
            now,
            ttl_ms: 5000,
        })
    }

    fn renew(s: &mut ClusterState, node: NodeId, epoch: u64, now: u64) -> Response {
        s.apply(Command::RenewLease {
            stream: id("show"),
            node,
            epoch,
            now,
            ttl_ms: 5000,
            reach: MediaReach::default(),
        })
    }

    #[test]
    fn only_open_streams_are_forgotten_and_only_after_the_retention() {
        let mut s = ClusterState::default();
        create(&mut s, "owned", 1);
        let key = generate([2; keys::KEY_BYTES]);
        let r = s.apply(Command::CreateOpenStream {
            id: id("show"),
            key_hash: keys::hash(&key),
            now: 1000,
        });
        assert!(matches!(&r, Response::Stream(rec) if rec.open), "{r:?}");
        let forget = |s: &mut ClusterState, name: &str, now: u64| {
            s.apply(Command::ForgetOpenStream {
                id: id(name),
                now,
                retention_ms: 60_000,
            })
        };
        // Live under a lease: kept, whatever the time.
        assert!(matches!(acquire(&mut s, 1, 0, 2000), Response::Lease(_)));
        s.apply(Command::SetStatus {
            id: id("show"),
            status: StreamStatus::Live,
            now: 2000,
            fence: None,
        });
        assert!(matches!(
            forget(&mut s, "show", 100_000),
            Response::Rejected(_)
        ));
        // Ended at 10 s: kept until 70 s.
        s.apply(Command::EndStream {
            id: id("show"),
            now: 10_000,
            hold_key: false,
        });
        assert!(matches!(
            forget(&mut s, "show", 69_999),
            Response::Rejected(_)
        ));
        assert_eq!(forget(&mut s, "show", 70_000), Response::Done);
        assert!(s.stream_for_key(&key).is_none(), "the key is free again");
        // A stream created by an operator is never forgotten.
        assert!(matches!(
            forget(&mut s, "owned", u64::MAX),
            Response::Rejected(_)
        ));
    }

    #[test]
    fn a_command_sent_once_applies_once_however_often_it_is_proposed() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        let retitle = |title: &str, once: u64| Command::Once {
            id: once,
            command: Box::new(Command::UpdateStream {
                id: id("show"),
                title: Some(title.into()),
                scheduled_at: None,
                description: None,
                owner_id: None,
            }),
        };
        s.apply(retitle("first", 1));
        s.apply(retitle("second", 2));
        // The first write's retry, after its answer was lost: no effect, same answer.
        let again = s.apply(retitle("first", 1));
        assert_eq!(s.streams[&id("show")].title, "second");
        assert!(matches!(again, Response::Stream(ref r) if r.title == "first"));
        // Memory stays bounded.
        for i in 0..(ONCE_WINDOW as u64 + 10) {
            s.apply(retitle("x", 100 + i));
        }
        assert_eq!(s.once.len(), ONCE_WINDOW);
    }

    #[test]
    fn keys_find_their_stream_and_rotation_revokes_the_old_key() {
        let mut s = ClusterState::default();
        let key = create(&mut s, "show", 1);
        assert_eq!(s.stream_for_key(&key).unwrap().id, id("show"));
        assert!(s.stream_for_key(&generate([9; keys::KEY_BYTES])).is_none());
        let new = generate([2; keys::KEY_BYTES]);
        s.apply(Command::RotateKey {
            id: id("show"),
            key_hash: keys::hash(&new),
        });
        assert!(s.stream_for_key(&key).is_none());
        assert_eq!(s.stream_for_key(&new).unwrap().id, id("show"));
        // Duplicates are refused.
        let r = s.apply(Command::CreateStream {
            id: id("show"),
            title: String::new(),
            owner: String::new(),
            key_hash: keys::hash(&generate([3; keys::KEY_BYTES])),
            scheduled_at: None,
            now: 0,
            owner_id: None,
            description: String::new(),
        });
        assert_eq!(r, Response::Rejected(Rejection::StreamExists(id("show"))));
    }

    #[test]
    fn lifecycle_transitions_are_checked() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        let set = |s: &mut ClusterState, status| {
            s.apply(Command::SetStatus {
                id: id("show"),
                status,
                now: 5000,
                fence: None,
            })
        };
        assert!(
            matches!(set(&mut s, StreamStatus::Live), Response::Stream(r) if r.started_at == Some(5000))
        );
        assert!(
            matches!(set(&mut s, StreamStatus::Live), Response::Stream(_)),
            "idempotent"
        );
        assert!(matches!(
            set(&mut s, StreamStatus::Archived),
            Response::Rejected(Rejection::BadTransition { .. })
        ));
        assert!(
            matches!(set(&mut s, StreamStatus::Ended), Response::Stream(r) if r.ended_at == Some(5000))
        );
        assert!(matches!(
            set(&mut s, StreamStatus::Archived),
            Response::Stream(_)
        ));
        assert!(matches!(
            set(&mut s, StreamStatus::Live),
            Response::Rejected(Rejection::BadTransition { .. })
        ));
    }

    #[test]
    fn lease_epochs_only_grow_and_fence_old_holders() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        let Response::Lease(a) = acquire(&mut s, 1, 0, 10_000) else {
            panic!()
        };
        assert_eq!((a.node, a.epoch), (1, 1));
        // A second acquire with the same expectation loses the compare-and-set.
        assert_eq!(
            acquire(&mut s, 2, 0, 10_000),
            Response::Rejected(Rejection::StaleEpoch {
                expected: 0,
                current: 1
            })
        );
        // Takeover by node 2 at the current epoch.
        let Response::Lease(b) = acquire(&mut s, 2, 1, 10_000) else {
            panic!()
        };
        assert_eq!((b.node, b.epoch), (2, 2));
        // Node 1 can no longer renew: it must stop acting as origin.
        assert_eq!(
            renew(&mut s, 1, 1, 11_000),
            Response::Rejected(Rejection::LeaseLost(b))
        );
        assert_eq!(s.origin(&id("show"), 11_000).unwrap().node, 2);
        assert!(s.origin(&id("show"), 20_000).is_none(), "expired");
        // Release keeps the epoch.
        s.apply(Command::ReleaseLease {
            stream: id("show"),
            node: 2,
            epoch: 2,
        });
        let Response::Lease(c) = acquire(&mut s, 3, 2, 10_000) else {
            panic!()
        };
        assert_eq!(c.epoch, 3);
    }

    #[test]
    fn the_recorded_reach_only_grows_and_outlives_its_epoch() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        acquire(&mut s, 1, 0, 0);
        let record = |s: &mut ClusterState, node, epoch, next_msn, discontinuities| {
            s.apply(Command::RenewLease {
                stream: id("show"),
                node,
                epoch,
                now: 0,
                ttl_ms: 5000,
                reach: MediaReach {
                    next_msn,
                    discontinuities,
                },
            })
        };
        record(&mut s, 1, 1, 9, 2);
        record(&mut s, 1, 1, 7, 3);
        let reach = |s: &ClusterState| s.leases[&id("show")].reach;
        assert_eq!(
            reach(&s),
            MediaReach {
                next_msn: 9,
                discontinuities: 3
            }
        );
        // A stale holder records nothing.
        let Response::Lease(b) = acquire(&mut s, 2, 1, 0) else {
            panic!()
        };
        assert_eq!(
            b.reach,
            MediaReach {
                next_msn: 9,
                discontinuities: 3
            }
        );
        assert!(matches!(
            record(&mut s, 1, 1, 50, 50),
            Response::Rejected(_)
        ));
        // An end fences the lease and keeps the reach for the next publish.
        s.fence_origin(&id("show"));
        assert_eq!(
            reach(&s),
            MediaReach {
                next_msn: 9,
                discontinuities: 3
            }
        );
    }

    #[test]
    fn fenced_status_changes_and_operator_end() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        let set = |s: &mut ClusterState, status, node, epoch| {
            s.apply(Command::SetStatus {
                id: id("show"),
                status,
                now: 1,
                fence: Some(crate::command::Fence { node, epoch }),
            })
        };
        acquire(&mut s, 1, 0, 0);
        assert!(matches!(
            set(&mut s, StreamStatus::Live, 1, 1),
            Response::Stream(_)
        ));
        acquire(&mut s, 2, 1, 0);
        // Node 1 was taken over: its "ended" must not end node 2's stream.
        assert!(matches!(
            set(&mut s, StreamStatus::Ended, 1, 1),
            Response::Rejected(Rejection::LeaseLost(_))
        ));
        assert_eq!(s.streams[&id("show")].status, StreamStatus::Live);
        // An operator ends it: ended, and the lease goes to nobody at a new epoch.
        let r = s.apply(Command::EndStream {
            id: id("show"),
            now: 9,
            hold_key: false,
        });
        assert!(matches!(r, Response::Stream(ref rec) if rec.status == StreamStatus::Ended));
        let lease = s.leases[&id("show")];
        assert_eq!((lease.node, lease.epoch), (NO_NODE, 3));
        assert!(matches!(
            renew(&mut s, 2, 2, 10),
            Response::Rejected(Rejection::LeaseLost(_))
        ));
    }

    #[test]
    fn a_stop_holds_the_key_until_a_start_and_changes_nothing_when_refused() {
        let mut s = ClusterState::default();
        let key = create(&mut s, "show", 1);
        let stop = |s: &mut ClusterState| {
            s.apply(Command::EndStream {
                id: id("show"),
                now: 5,
                hold_key: true,
            })
        };
        // Never live: refused, and the key still publishes.
        assert!(matches!(
            stop(&mut s),
            Response::Rejected(Rejection::BadTransition { .. })
        ));
        assert!(s.stream_for_key(&key).unwrap().accepting);
        acquire(&mut s, 1, 0, 0);
        s.apply(Command::SetStatus {
            id: id("show"),
            status: StreamStatus::Live,
            now: 1,
            fence: None,
        });
        let stopped = stop(&mut s);
        assert!(
            matches!(stopped, Response::Stream(ref r) if r.status == StreamStatus::Ended && !r.accepting),
            "{stopped:?}"
        );
        assert!(matches!(stop(&mut s), Response::Stream(_)), "idempotent");
        // A publish that read the stream before the stop cannot take the lease after.
        let epoch = s.leases[&id("show")].epoch;
        assert!(matches!(
            acquire(&mut s, 2, epoch, 6),
            Response::Rejected(Rejection::StreamStopped(_))
        ));
        let started = s.apply(Command::StartStream { id: id("show") });
        assert!(matches!(started, Response::Stream(ref r) if r.accepting));
        assert!(matches!(acquire(&mut s, 2, epoch, 6), Response::Lease(_)));
        // A record from before the field accepts, as it did.
        let mut json = serde_json::to_value(&s.streams[&id("show")]).unwrap();
        json.as_object_mut().unwrap().remove("accepting");
        let old: StreamRecord = serde_json::from_value(json).unwrap();
        assert!(old.accepting && old.owner_id.is_none());
    }

    #[test]
    fn an_account_claims_the_streams_its_email_owned_as_text() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1); // owner "alice"
        let key = generate([2; keys::KEY_BYTES]);
        s.apply(Command::CreateStream {
            id: id("talk"),
            title: String::new(),
            owner: " Alice@Example.com ".into(),
            key_hash: keys::hash(&key),
            scheduled_at: None,
            now: 0,
            owner_id: None,
            description: String::new(),
        });
        let r = s.apply(Command::Account(AccountCommand::CreateUser {
            email: "alice@example.com".into(),
            display_name: "Alice".into(),
            role: Role::Streamer,
            password_hash: PasswordHash("h".into()),
            now: 0,
            invite: None,
            claim_streams: true,
        }));
        let Response::User(alice) = r else {
            panic!("{r:?}")
        };
        assert_eq!(s.streams[&id("talk")].owner_id, Some(alice.id));
        assert_eq!(s.streams[&id("show")].owner_id, None, "not her email");
        // A sign-up with an owner's email claims nothing: nobody verified it.
        let key = generate([3; keys::KEY_BYTES]);
        s.apply(Command::CreateStream {
            id: id("bobs"),
            title: String::new(),
            owner: "bob@example.com".into(),
            key_hash: keys::hash(&key),
            scheduled_at: None,
            now: 0,
            owner_id: None,
            description: String::new(),
        });
        let r = s.apply(Command::Account(AccountCommand::CreateUser {
            email: "bob@example.com".into(),
            display_name: String::new(),
            role: Role::Streamer,
            password_hash: PasswordHash("h".into()),
            now: 0,
            invite: None,
            claim_streams: false,
        }));
        assert!(matches!(r, Response::User(_)), "{r:?}");
        assert_eq!(s.streams[&id("bobs")].owner_id, None);
    }

    #[test]
    fn only_a_stream_whose_origin_is_long_gone_is_ended_as_orphaned() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        s.apply(Command::AcquireLease {
            stream: id("show"),
            node: 1,
            expected_epoch: 0,
            now: 0,
            ttl_ms: 1000,
        });
        s.apply(Command::SetStatus {
            id: id("show"),
            status: StreamStatus::Live,
            now: 0,
            fence: None,
        });
        let orphan = |s: &mut ClusterState, epoch, now| {
            s.apply(Command::EndOrphaned {
                id: id("show"),
                epoch,
                now,
                grace_ms: 500,
            })
        };
        // Lease expired at 1000, grace until 1500.
        assert!(matches!(
            orphan(&mut s, 1, 1400),
            Response::Rejected(Rejection::OriginAlive(_))
        ));
        // A proposal from before a new origin took over is refused.
        assert!(matches!(
            orphan(&mut s, 0, 5000),
            Response::Rejected(Rejection::OriginAlive(_))
        ));
        assert!(
            matches!(orphan(&mut s, 1, 1500), Response::Stream(r) if r.status == StreamStatus::Ended)
        );
        assert_eq!(
            s.leases[&id("show")].node,
            NO_NODE,
            "the old origin is fenced"
        );
        assert!(matches!(
            renew(&mut s, 1, 1, 1600),
            Response::Rejected(Rejection::LeaseLost(_))
        ));
    }

    #[test]
    fn snapshots_round_trip_as_json() {
        let mut s = ClusterState::default();
        let key = create(&mut s, "show", 1);
        s.apply(Command::AcquireLease {
            stream: id("show"),
            node: 1,
            expected_epoch: 0,
            now: 0,
            ttl_ms: 10,
        });
        s.apply(Command::Account(AccountCommand::CreateUser {
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            role: Role::Streamer,
            password_hash: PasswordHash("$argon2id$…".into()),
            now: 0,
            invite: None,
            claim_streams: false,
        }));
        let bytes = serde_json::to_vec(&s).unwrap();
        let back: ClusterState = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.stream_for_key(&key).unwrap().id, id("show"));
        assert!(back.accounts.user_by_email("ann@example.com").is_some());
    }

    /// A snapshot from before accounts existed loads, with no users.
    #[test]
    fn snapshots_without_accounts_still_load() {
        let mut s = ClusterState::default();
        create(&mut s, "show", 1);
        let mut json = serde_json::to_value(&s).unwrap();
        json.as_object_mut().unwrap().remove("accounts");
        let back: ClusterState = serde_json::from_value(json).unwrap();
        assert!(back.accounts.users.is_empty());
        assert_eq!(back.streams, s.streams);
    }

    #[test]
    fn deleting_a_stream_frees_its_key() {
        let mut s = ClusterState::default();
        let key = create(&mut s, "gone", 1);
        assert_eq!(
            s.apply(Command::DeleteStream { id: id("gone") }),
            Response::Done
        );
        assert!(s.stream_for_key(&key).is_none());
        assert!(s.keys.is_empty());
    }
}
