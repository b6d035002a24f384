//! What the cluster keeps of a stream's chat: who is banned from it (so a ban holds on
//! every node and across an origin failover) and, once the stream has ended, its last
//! lines (so the history stays readable from any node until the stream is removed).
//! Live messages never pass through here: the stream's origin orders them and sends
//! them over the media mesh; one Raft write per message would crowd the log that
//! carries the lease renewals.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::StreamId;
use crate::accounts::UserId;
use crate::model::Millis;

/// Lines an archive keeps at most, and bytes per line's text and name: whatever an
/// origin proposes, the replicated state stays bounded.
pub const MAX_ARCHIVE_LINES: usize = 200;
pub const MAX_LINE_TEXT_BYTES: usize = 4096;
pub const MAX_NAME_BYTES: usize = 256;

/// One chat message, as the origin numbered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Order within the stream's chat room (`room`): 1, 2, 3…
    pub seq: u64,
    pub user_id: UserId,
    /// The author's display name when they posted.
    pub name: String,
    pub text: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamChat {
    pub banned: BTreeSet<UserId>,
    /// The room the archive is of (room numbers grow with the origin's lease epoch),
    /// and its last lines, oldest first: the chat of the stream's last end.
    pub room: u64,
    pub archive: Vec<ChatLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatCommand {
    Ban {
        stream: StreamId,
        user: UserId,
    },
    /// The room's last lines, written by the origin when the stream ended.
    Archive {
        stream: StreamId,
        room: u64,
        lines: Vec<ChatLine>,
    },
}

impl ChatCommand {
    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Ban { stream, .. } | Self::Archive { stream, .. } => stream,
        }
    }

    /// Changes `chat` (the stream's entry; the caller checked the stream exists).
    pub fn apply(self, chat: &mut StreamChat) {
        match self {
            Self::Ban { user, .. } => {
                chat.banned.insert(user);
            }
            // An origin that lost its lease long ago may archive late: an older room
            // never replaces a newer one.
            Self::Archive { room, .. } if room < chat.room => {}
            Self::Archive { room, lines, .. } => {
                let skip = lines.len().saturating_sub(MAX_ARCHIVE_LINES);
                chat.room = room;
                chat.archive = lines
                    .into_iter()
                    .skip(skip)
                    .map(|mut l| {
                        truncate(&mut l.text, MAX_LINE_TEXT_BYTES);
                        truncate(&mut l.name, MAX_NAME_BYTES);
                        l
                    })
                    .collect();
            }
        }
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, text: &str) -> ChatLine {
        ChatLine {
            seq,
            user_id: 1,
            name: "é".repeat(200),
            text: text.into(),
            at: 0,
        }
    }

    #[test]
    fn an_archive_is_bounded_whatever_is_proposed() {
        let mut chat = StreamChat::default();
        let lines = (1..=500).map(|i| line(i, &"ü".repeat(5000))).collect();
        let stream = StreamId::parse("s").unwrap();
        ChatCommand::Archive {
            stream,
            room: 7,
            lines,
        }
        .apply(&mut chat);
        assert_eq!(chat.archive.len(), MAX_ARCHIVE_LINES);
        assert_eq!(chat.archive[0].seq, 301, "the newest lines are kept");
        assert!(
            chat.archive
                .iter()
                .all(|l| l.text.len() <= MAX_LINE_TEXT_BYTES
                    && l.name.len() <= MAX_NAME_BYTES
                    && l.text.chars().all(|c| c == 'ü'))
        );
        assert_eq!(chat.room, 7);
        let stream = StreamId::parse("s").unwrap();
        let late = ChatCommand::Archive {
            stream,
            room: 6,
            lines: vec![line(1, "stale")],
        };
        late.apply(&mut chat);
        assert_eq!((chat.room, chat.archive.len()), (7, MAX_ARCHIVE_LINES));
    }
}
