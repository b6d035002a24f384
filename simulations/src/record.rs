//! What a run records, from every host and from the driver: the trace (hashed, to
//! compare runs), Raft leadership seen per term, the clients' operation history, the
//! origin leases nodes held, and what the viewers saw.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::history::{Call, Op, Outcome};
use crate::media::playlist::{PartName, Playlist};

/// Shared by every host of one run (they all run on the simulation's thread).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Record>>);

#[derive(Default)]
pub struct Record {
    /// SipHash with fixed keys: the same events give the same hash in any process.
    hasher: DefaultHasher,
    pub events: u64,
    /// Kept for a failure report (the last few hundred).
    pub tail: std::collections::VecDeque<String>,
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    pub ops: Vec<Op>,
    pub origins: Vec<OriginHeld>,
    pub playlists: Vec<PlaylistSeen>,
    pub parts: Vec<PartSeen>,
    /// Playlists a viewer could not read.
    pub malformed: Vec<String>,
    /// Sessions accepted after their sign-out was acknowledged.
    pub revoked_accepted: Vec<String>,
}

/// A node reported holding a stream's origin lease at an epoch.
pub struct OriginHeld {
    pub at: Duration,
    pub node: u64,
    pub stream: String,
    pub epoch: u64,
}

pub struct PlaylistSeen {
    /// When the viewer sent the request and when the answer arrived.
    pub requested: Duration,
    pub at: Duration,
    pub viewer: u32,
    pub node: u32,
    pub boot: u64,
    pub playlist: Playlist,
}

pub struct PartSeen {
    pub at: Duration,
    pub node: u32,
    pub name: PartName,
    pub hash: u64,
    /// Publish sessions whose markers the part carries.
    pub sessions: Vec<u32>,
}

const TAIL: usize = 5000;

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One line of the trace, stamped with simulated time.
    pub fn event(&self, line: String) {
        self.event_at(now(), line);
    }

    pub fn event_at(&self, at: Duration, line: String) {
        self.with(|r| {
            at.as_micros().hash(&mut r.hasher);
            line.hash(&mut r.hasher);
            r.events += 1;
            if r.tail.len() == TAIL {
                r.tail.pop_front();
            }
            r.tail
                .push_back(format!("{:>10.3}s {line}", at.as_secs_f64()));
        });
    }

    pub fn leader(&self, term: u64, node: u64) {
        let new = self.with(|r| r.leaders.entry(term).or_default().insert(node));
        if new {
            self.event(format!("node{node} leads term {term}"));
        }
    }

    /// Starts an operation; returns its index for [`Recorder::complete`].
    pub fn invoke(&self, client: u32, node: u32, call: Call) -> usize {
        self.event(format!("client{client} -> node{node}: {call:?}"));
        self.with(|r| {
            r.ops.push(Op {
                client,
                node,
                call,
                invoked: now(),
                done: None,
            });
            r.ops.len() - 1
        })
    }

    pub fn complete(&self, op: usize, outcome: Outcome) {
        self.event(format!("op {op} -> {outcome:?}"));
        self.with(|r| r.ops[op].done = Some((now(), outcome)));
    }

    pub fn origin(&self, node: u64, stream: String, epoch: u64) {
        self.event(format!(
            "node{node} holds the origin lease of {stream} at epoch {epoch}"
        ));
        self.with(|r| {
            r.origins.push(OriginHeld {
                at: now(),
                node,
                stream,
                epoch,
            })
        });
    }

    pub fn playlist(
        &self,
        viewer: u32,
        node: u32,
        boot: u64,
        requested: Duration,
        playlist: &Playlist,
    ) {
        self.event(format!(
            "viewer{viewer} <- node{node}: sequence {} discontinuity {} segments {:?} next {:?}{}",
            playlist.media_sequence,
            playlist.discontinuity_sequence,
            playlist
                .segments
                .iter()
                .map(|s| (s.msn, s.discontinuity, s.parts.len()))
                .collect::<Vec<_>>(),
            playlist.next.map(|p| p.uri()),
            if playlist.ended { " ENDLIST" } else { "" }
        ));
        self.with(|r| {
            r.playlists.push(PlaylistSeen {
                requested,
                at: now(),
                viewer,
                node,
                boot,
                playlist: playlist.clone(),
            })
        });
    }

    pub fn part(&self, node: u32, name: PartName, hash: u64, sessions: Vec<u32>) {
        self.event(format!(
            "node{node} served {} {hash:016x} sessions {sessions:?}",
            name.uri()
        ));
        self.with(|r| {
            r.parts.push(PartSeen {
                at: now(),
                node,
                name,
                hash,
                sessions,
            })
        });
    }

    pub fn malformed(&self, node: u32, what: String) {
        self.event(format!("node{node} served a playlist a viewer cannot read"));
        self.with(|r| r.malformed.push(format!("node{node}: {what}")));
    }

    /// A signed-out session was accepted: a violation found as it happened.
    pub fn violation(&self, what: String) {
        self.event(format!("VIOLATION {what}"));
        self.with(|r| r.revoked_accepted.push(what));
    }

    pub fn hash(&self) -> u64 {
        self.with(|r| r.hasher.finish())
    }

    pub fn take(&self) -> Record {
        self.with(std::mem::take)
    }
}
