//! Chat per stream, across the cluster (docs/architecture.md, "Chat").
//!
//! The stream's origin holds its room (`room.rs`): it numbers the lines, keeps the last
//! `chat.history`, enforces the rate limit and the bans. A node whose viewers follow
//! the chat of a stream it does not originate keeps a mirror (`mirror.rs`) fed over the
//! media mesh by the origin (`serve.rs`), so every viewer sees the same lines in the
//! same order. Posts and moderation go to the origin. Bans and the last lines of an
//! ended stream are replicated (`castmesh_cluster::chat`). The [`Hub`] is what the
//! watch sockets talk to; it knows which of these applies to a stream now.

pub mod channel;
pub mod mirror;
pub mod room;
pub mod serve;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use castmesh_cluster::accounts::{Role, UserId};
use castmesh_cluster::chat::{ChatCommand, ChatLine};
use castmesh_cluster::member::ClusterMember;
use castmesh_cluster::state::NO_NODE;
use castmesh_cluster::{ClusterState, Command, Response, StreamId, StreamStatus};
use castmesh_proto::mesh::v1 as pb;
use pb::request::Kind;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::config::ChatConfig;
use crate::mesh::Mesh;
use crate::metrics::{Metrics, ReasonLabel};
use crate::seams::Clock;
use channel::{Channel, Published};
use mirror::Mirror;
use room::{Post, Room};

/// A change to a chat room, as sockets receive it (JSON, tagged by `type`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Every line of the room now: replaces what a page shows.
    History {
        room: u64,
        lines: Vec<ChatLine>,
    },
    Line(ChatLine),
    Deleted {
        seq: u64,
    },
}

/// Why a post or a moderator's action was not done, in words for the page.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("Log in to chat.")]
    SignedOut,
    #[error("Write something first.")]
    Empty,
    #[error("Messages are at most {0} characters.")]
    TooLong(usize),
    #[error("You are posting too fast: you can post again in {} s.", wait.as_secs_f64().ceil())]
    Muted { wait: Duration },
    #[error("You are banned from this chat.")]
    Banned,
    #[error("Chat opens when the stream starts.")]
    NotStarted,
    #[error("The stream has ended; its chat is closed.")]
    Ended,
    #[error("Only the stream's owner and admins moderate its chat.")]
    Forbidden,
    #[error("Chat is unavailable right now ({0}); try again in a moment.")]
    Unavailable(String),
}

impl Refusal {
    /// Stable, for programs (and the mesh).
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignedOut => "login",
            Self::Empty => "empty",
            Self::TooLong(_) => "too_long",
            Self::Muted { .. } => "muted",
            Self::Banned => "banned",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::Forbidden => "forbidden",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// The text of a post as the room takes it: trimmed, control characters (line breaks
/// included: chat lines are one line) turned into spaces, 1 to `max_chars` characters.
pub fn checked_text(text: &str, max_chars: usize) -> Result<String, Refusal> {
    let text: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match text.chars().count() {
        0 => Err(Refusal::Empty),
        n if n > max_chars => Err(Refusal::TooLong(max_chars)),
        _ => Ok(text),
    }
}

/// Whether `user` moderates `stream`'s chat: its owner, or an admin (not disabled).
pub fn may_moderate(state: &ClusterState, stream: &StreamId, user: UserId) -> bool {
    let Some(record) = state.accounts.users.get(&user).filter(|u| !u.disabled) else {
        return false;
    };
    record.role == Role::Admin
        || state
            .streams
            .get(stream)
            .is_some_and(|s| s.owner_id == Some(user))
}

/// What a moderator does.
#[derive(Debug, Clone, Copy)]
pub enum Moderation {
    /// The line `seq` of `room` (numbers restart in every room: a deletion meant for
    /// a room that has been replaced deletes nothing).
    Delete {
        room: u64,
        seq: u64,
    },
    Ban(UserId),
}

/// Whether a stream's chat takes posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    NotStarted,
    Open,
    Ended,
}

/// Where a stream's chat is now.
enum Place {
    /// This node is the origin: its room.
    Here(Arc<Room>),
    /// Another node is: its id and mesh address.
    There(u64, SocketAddr),
    /// Live, but no node holds its origin lease now (a failover under way).
    Nowhere,
    Closed(ChatState),
}

/// A socket's view of a stream's chat.
pub struct Joined {
    pub state: ChatState,
    /// The lines to show now (a history event).
    pub history: Published,
    /// The changes after them; `None` when the chat is closed or cannot be followed
    /// now (the socket joins again at its next status check).
    pub updates: Option<broadcast::Receiver<Published>>,
    /// Keeps this node's mirror of the room alive while the socket follows it.
    _mirror: Option<Arc<Mirror>>,
}

pub struct Hub {
    node_id: u64,
    member: ClusterMember,
    mesh: Arc<Mesh>,
    config: ChatConfig,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Rooms of the streams this node is the origin of.
    rooms: Mutex<HashMap<StreamId, Arc<Room>>>,
    /// Mirrors of rooms elsewhere, while sockets here follow them.
    mirrors: Mutex<HashMap<StreamId, Weak<Mirror>>>,
    /// Rooms opened here so far (part of every room's number).
    rooms_opened: AtomicU64,
}

/// How often rooms whose stream moved or ended are closed (and archived).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Hub {
    pub fn new(
        node_id: u64,
        member: ClusterMember,
        mesh: Arc<Mesh>,
        config: ChatConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            member,
            mesh,
            config,
            clock,
            metrics,
            rooms: Mutex::default(),
            mirrors: Mutex::default(),
            rooms_opened: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    fn locate(&self, stream: &StreamId) -> Place {
        let found = self.member.read_local(|s| {
            let status = s.streams.get(stream).map(|r| r.status)?;
            // The node a live stream's lease names, also past its expiry by this node's
            // clock (clocks disagree; the media path's `locate_origin` reads leases
            // the same way): a late renewal does not close the room.
            let origin = s
                .leases
                .get(stream)
                .filter(|l| l.expires_at > 0 && l.node != NO_NODE)
                .and_then(|lease| {
                    let addr = s.nodes.get(&lease.node)?.quic.parse().ok()?;
                    Some((*lease, addr))
                });
            Some((status, origin))
        });
        match found {
            None => Place::Closed(ChatState::Ended),
            Some((StreamStatus::Scheduled, _)) => Place::Closed(ChatState::NotStarted),
            Some((StreamStatus::Live, Some((lease, _)))) if lease.node == self.node_id => {
                let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
                let room = rooms.entry(stream.clone()).or_insert_with(|| {
                    // Numbers grow with the epoch and differ for every room opened here.
                    let opened = self.rooms_opened.fetch_add(1, Ordering::Relaxed);
                    let id = (lease.epoch << 20) | (opened & 0xF_FFFF);
                    Arc::new(Room::new(id, &self.config))
                });
                Place::Here(room.clone())
            }
            Some((StreamStatus::Live, Some((lease, addr)))) => Place::There(lease.node, addr),
            Some((StreamStatus::Live, None)) => Place::Nowhere,
            Some(_) => Place::Closed(ChatState::Ended),
        }
    }

    /// What a socket shows of `stream`'s chat now, and the changes to follow.
    pub fn join(self: &Arc<Self>, stream: &StreamId) -> Joined {
        let closed = |state, history: Event| Joined {
            state,
            history: Published::new(history),
            updates: None,
            _mirror: None,
        };
        let empty = || Event::History {
            room: 0,
            lines: Vec::new(),
        };
        let following = |channel: &Channel, mirror: Option<Arc<Mirror>>| match channel.follow() {
            Some((history, updates)) => Joined {
                state: ChatState::Open,
                history,
                updates: Some(updates),
                _mirror: mirror,
            },
            None => closed(ChatState::Open, empty()),
        };
        match self.locate(stream) {
            Place::Here(room) => following(&room.channel, None),
            Place::There(..) => {
                let mirror = self.mirror(stream);
                following(&mirror.channel, Some(mirror.clone()))
            }
            Place::Nowhere => closed(ChatState::Open, empty()),
            Place::Closed(ChatState::Ended) => {
                let archived = self.member.read_local(|s| {
                    s.chat
                        .get(stream)
                        .map(|c| (c.room, c.archive.clone()))
                        .unwrap_or_default()
                });
                let (room, lines) = archived;
                closed(ChatState::Ended, Event::History { room, lines })
            }
            Place::Closed(state) => closed(state, empty()),
        }
    }

    /// This node's mirror of `stream`'s room, started if none runs.
    fn mirror(self: &Arc<Self>, stream: &StreamId) -> Arc<Mirror> {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        // A closed mirror (its origin moved here, or the chat ended) may still be held
        // by sockets that have not joined again yet: it is not reused.
        if let Some(mirror) = mirrors
            .get(stream)
            .and_then(Weak::upgrade)
            .filter(|m| !m.channel.is_closed())
        {
            return mirror;
        }
        mirrors.retain(|_, m| m.strong_count() > 0);
        let mirror = Mirror::start(self.clone(), stream.clone());
        mirrors.insert(stream.clone(), Arc::downgrade(&mirror));
        mirror
    }

    /// Where a mirror's upstream is now: the origin's id and address, if elsewhere.
    fn upstream(&self, stream: &StreamId) -> Result<(u64, SocketAddr), Option<ChatState>> {
        match self.locate(stream) {
            Place::There(node, addr) => Ok((node, addr)),
            Place::Nowhere => Err(None),
            Place::Here(_) => Err(Some(ChatState::Open)),
            Place::Closed(state) => Err(Some(state)),
        }
    }

    /// Posts `text` as `user_id` (`name`: their display name) to `stream`'s chat.
    pub async fn post(
        &self,
        stream: &StreamId,
        user_id: UserId,
        name: &str,
        text: &str,
    ) -> Result<(), Refusal> {
        let text = checked_text(text, self.config.max_message_chars);
        let outcome = match (text, self.locate(stream)) {
            (Err(refusal), _) => Err(refusal),
            (Ok(text), Place::Here(room)) => self.post_in(&room, stream, user_id, name, text),
            (Ok(text), Place::There(node, addr)) => {
                let post = pb::ChatPost {
                    stream: stream.to_string(),
                    user_id,
                    name: name.to_string(),
                    text,
                };
                self.ask_origin(node, addr, Kind::ChatPost(post)).await
            }
            (Ok(_), place) => Err(not_here(place)),
        };
        let outcome_label = match &outcome {
            Ok(()) => "posted",
            Err(r) => r.code(),
        };
        self.metrics
            .chat_posts
            .get_or_create(&ReasonLabel {
                reason: outcome_label,
            })
            .inc();
        outcome
    }

    fn post_in(
        &self,
        room: &Room,
        stream: &StreamId,
        user_id: UserId,
        name: &str,
        text: String,
    ) -> Result<(), Refusal> {
        // The socket checked the session when it opened; an account disabled since
        // then posts no more.
        let (disabled, banned) = self.member.read_local(|s| {
            let disabled = s.accounts.users.get(&user_id).is_none_or(|u| u.disabled);
            let banned = s
                .chat
                .get(stream)
                .is_some_and(|c| c.banned.contains(&user_id));
            (disabled, banned)
        });
        if disabled {
            return Err(Refusal::SignedOut);
        }
        let post = Post {
            user_id,
            name,
            text,
            at_ms: self.clock.now_ms(),
        };
        room.post(post, banned, tokio::time::Instant::now())
    }

    /// A post a peer forwarded: taken only while this node is the stream's origin.
    pub fn post_here(&self, post: pb::ChatPost) -> Result<(), Refusal> {
        let stream = StreamId::parse(&post.stream)
            .map_err(|_| Refusal::Unavailable("no such stream".into()))?;
        let text = checked_text(&post.text, self.config.max_message_chars)?;
        match self.locate(&stream) {
            Place::Here(room) => self.post_in(&room, &stream, post.user_id, &post.name, text),
            place => Err(not_here(place)),
        }
    }

    /// A moderator's action on `stream`'s chat, done by its origin.
    pub async fn moderate(
        &self,
        stream: &StreamId,
        moderator: UserId,
        action: Moderation,
    ) -> Result<(), Refusal> {
        match self.locate(stream) {
            Place::Here(room) => self.moderate_in(&room, stream, moderator, action).await,
            Place::There(node, addr) => {
                let request = wire::moderate_to_wire(stream, moderator, action);
                self.ask_origin(node, addr, Kind::ChatModerate(request))
                    .await
            }
            place => Err(not_here(place)),
        }
    }

    /// A post or moderation for the origin `node` at `addr`: its answer.
    async fn ask_origin(&self, node: u64, addr: SocketAddr, request: Kind) -> Result<(), Refusal> {
        match self.mesh.chat(addr, node, request).await {
            Ok(answer) => wire::answer_from(answer),
            Err(e) => Err(Refusal::Unavailable(format!("the origin node: {e}"))),
        }
    }

    /// A moderator's action a peer forwarded.
    pub async fn moderate_here(&self, request: pb::ChatModerate) -> Result<(), Refusal> {
        let (stream, moderator, action) = wire::moderate_from_wire(request)?;
        match self.locate(&stream) {
            Place::Here(room) => self.moderate_in(&room, &stream, moderator, action).await,
            place => Err(not_here(place)),
        }
    }

    async fn moderate_in(
        &self,
        room: &Room,
        stream: &StreamId,
        moderator: UserId,
        action: Moderation,
    ) -> Result<(), Refusal> {
        if !self
            .member
            .read_local(|s| may_moderate(s, stream, moderator))
        {
            return Err(Refusal::Forbidden);
        }
        match action {
            Moderation::Delete { room: id, seq } if id == room.id => room.delete(seq),
            Moderation::Delete { .. } => {
                return Err(Refusal::Unavailable(
                    "the chat restarted on another node; that message is gone".into(),
                ));
            }
            Moderation::Ban(user) => {
                let ban = ChatCommand::Ban {
                    stream: stream.clone(),
                    user,
                };
                match self.member.write(Command::Chat(ban)).await {
                    Ok(Response::Done) => room.ban(user),
                    Ok(other) => return Err(Refusal::Unavailable(format!("{other:?}"))),
                    Err(e) => return Err(Refusal::Unavailable(e.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The room of a stream this node is the origin of, for a peer that follows it.
    pub fn follow_here(&self, stream: &str) -> Option<(Published, broadcast::Receiver<Published>)> {
        let stream = StreamId::parse(stream).ok()?;
        match self.locate(&stream) {
            Place::Here(room) => room.channel.follow(),
            _ => None,
        }
    }

    /// Closes the rooms of streams this node no longer originates (their followers
    /// join again and find the new origin, or the end); the chat of a stream that
    /// ended is archived in the replicated state first.
    pub async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let rooms: Vec<(StreamId, Arc<Room>)> = {
                let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
                rooms.iter().map(|(s, r)| (s.clone(), r.clone())).collect()
            };
            for (stream, room) in rooms {
                let place = self.locate(&stream);
                if matches!(&place, Place::Here(r) if Arc::ptr_eq(r, &room)) {
                    continue;
                }
                self.rooms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&stream);
                if matches!(place, Place::Closed(ChatState::Ended)) {
                    self.archive(&stream, &room).await;
                }
                room.channel.close();
            }
        }
    }

    async fn archive(&self, stream: &StreamId, room: &Room) {
        // Written even when empty: it replaces the archive of an earlier end.
        let (id, lines) = room.channel.lines();
        let command = Command::Chat(ChatCommand::Archive {
            stream: stream.clone(),
            room: id,
            lines,
        });
        if let Err(e) = self.member.write(command).await {
            tracing::warn!(%stream, error = %e, "the chat of an ended stream could not be archived");
        }
    }
}

fn not_here(place: Place) -> Refusal {
    match place {
        Place::Closed(ChatState::NotStarted) => Refusal::NotStarted,
        Place::Closed(_) => Refusal::Ended,
        _ => Refusal::Unavailable("the stream's origin is changing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_one_trimmed_line_of_bounded_length() {
        assert_eq!(checked_text("  hi  ", 5).unwrap(), "hi");
        assert_eq!(checked_text("a\nb\u{0}", 5).unwrap(), "a b ");
        assert_eq!(checked_text(" \n\t ", 5), Err(Refusal::Empty));
        assert_eq!(checked_text("ééééé", 5).unwrap(), "ééééé");
        assert_eq!(checked_text("éééééé", 5), Err(Refusal::TooLong(5)));
        assert_eq!(
            Refusal::Muted {
                wait: Duration::from_millis(9100)
            }
            .to_string(),
            "You are posting too fast: you can post again in 10 s."
        );
    }
}
