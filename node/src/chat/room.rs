//! A stream's chat room on its origin: numbers the lines, enforces the rate limit
//! (`chat.rate_messages` per `chat.rate_window`, then `chat.mute`) and remembers the
//! bans it made until the replicated state shows them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use castmesh_cluster::accounts::UserId;
use castmesh_cluster::chat::ChatLine;
use tokio::time::Instant;

use super::channel::Channel;
use super::{Event, Refusal};
use crate::config::ChatConfig;

/// Posters remembered at once; beyond it those whose window and mute are over go.
const MAX_POSTERS: usize = 10_000;

pub struct Room {
    /// The origin's lease epoch when the room opened.
    pub id: u64,
    pub channel: Channel,
    posting: Mutex<Posting>,
    rate_messages: usize,
    rate_window: Duration,
    mute: Duration,
}

#[derive(Default)]
struct Posting {
    next_seq: u64,
    posters: HashMap<UserId, Poster>,
    /// Bans this room made, in force before the replicated state shows them.
    banned: HashSet<UserId>,
}

#[derive(Default)]
struct Poster {
    recent: VecDeque<Instant>,
    muted_until: Option<Instant>,
}

/// A message to post, checked for length by [`super::checked_text`].
pub struct Post<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    pub text: String,
    pub at_ms: u64,
}

impl Room {
    pub fn new(id: u64, config: &ChatConfig) -> Self {
        Self {
            id,
            channel: Channel::new(id, config.history, config.socket_queue),
            posting: Mutex::new(Posting {
                next_seq: 1,
                ..Posting::default()
            }),
            rate_messages: config.rate_messages as usize,
            rate_window: config.rate_window,
            mute: config.mute,
        }
    }

    /// Numbers and publishes `post`, unless its author is banned (`banned`: as the
    /// replicated state says) or posting too fast.
    pub fn post(&self, post: Post<'_>, banned: bool, now: Instant) -> Result<(), Refusal> {
        let mut posting = self.posting.lock().unwrap_or_else(|e| e.into_inner());
        if banned || posting.banned.contains(&post.user_id) {
            return Err(Refusal::Banned);
        }
        if posting.posters.len() >= MAX_POSTERS {
            let (window, mute) = (self.rate_window, self.mute);
            posting.posters.retain(|_, p| {
                p.muted_until.is_some_and(|m| m > now)
                    || p.recent.back().is_some_and(|t| now - *t < window.max(mute))
            });
        }
        let poster = posting.posters.entry(post.user_id).or_default();
        if let Some(until) = poster.muted_until.filter(|m| *m > now) {
            return Err(Refusal::Muted { wait: until - now });
        }
        while poster
            .recent
            .front()
            .is_some_and(|t| now - *t >= self.rate_window)
        {
            poster.recent.pop_front();
        }
        if poster.recent.len() >= self.rate_messages {
            poster.muted_until = Some(now + self.mute);
            poster.recent.clear();
            return Err(Refusal::Muted { wait: self.mute });
        }
        poster.recent.push_back(now);
        let seq = posting.next_seq;
        posting.next_seq += 1;
        // Published under the posting lock: lines go out in the order of their numbers.
        self.channel.publish(Event::Line(ChatLine {
            seq,
            user_id: post.user_id,
            name: post.name.to_string(),
            text: post.text,
            at: post.at_ms,
        }));
        Ok(())
    }

    pub fn delete(&self, seq: u64) {
        let _posting = self.posting.lock().unwrap_or_else(|e| e.into_inner());
        self.channel.publish(Event::Deleted { seq });
    }

    pub fn ban(&self, user: UserId) {
        let mut posting = self.posting.lock().unwrap_or_else(|e| e.into_inner());
        posting.banned.insert(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Room {
        Room::new(1, &ChatConfig::default())
    }

    fn post(user_id: UserId, text: &str) -> Post<'static> {
        Post {
            user_id,
            name: "n",
            text: text.into(),
            at_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_fourth_message_in_two_seconds_mutes_for_ten() {
        let room = room();
        let start = Instant::now();
        for i in 0..3 {
            room.post(post(1, "hi"), false, start + Duration::from_millis(i * 100))
                .unwrap();
        }
        let at = start + Duration::from_millis(300);
        assert_eq!(
            room.post(post(1, "hi"), false, at),
            Err(Refusal::Muted {
                wait: Duration::from_secs(10)
            })
        );
        // Others are not held up.
        room.post(post(2, "me too"), false, at).unwrap();
        // Still muted 9 s later, free after 10 s.
        let later = at + Duration::from_secs(9);
        assert!(
            matches!(room.post(post(1, "x"), false, later), Err(Refusal::Muted { wait }) if wait == Duration::from_secs(1))
        );
        room.post(post(1, "back"), false, at + Duration::from_secs(10))
            .unwrap();
        // Three messages spread over more than the window never mute.
        let user = 3;
        for i in 0..10 {
            room.post(
                post(user, "slow"),
                false,
                start + Duration::from_millis(i * 700),
            )
            .unwrap();
        }
        let (_, lines) = room.channel.lines();
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn banned_users_are_refused_before_and_after_the_state_shows_it() {
        let room = room();
        let now = Instant::now();
        assert_eq!(room.post(post(1, "a"), true, now), Err(Refusal::Banned));
        room.ban(2);
        assert_eq!(room.post(post(2, "a"), false, now), Err(Refusal::Banned));
        room.post(post(3, "a"), false, now).unwrap();
        room.delete(1);
        assert!(room.channel.lines().1.is_empty());
    }
}
