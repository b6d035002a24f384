//! What a node's sockets follow for one stream's chat: the room's lines now and every
//! change after them. The origin's room and an edge's mirror both keep one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use castmesh_cluster::chat::ChatLine;
use tokio::sync::broadcast;

use super::Event;

/// An event with its JSON for the watch sockets, made once for all of them.
#[derive(Clone, Debug)]
pub struct Published {
    pub event: Arc<Event>,
    pub json: Utf8Bytes,
}

impl Published {
    pub fn new(event: Event) -> Self {
        let json = serde_json::to_string(&event).expect("chat events serialize");
        Self {
            event: Arc::new(event),
            json: Utf8Bytes::from(json),
        }
    }
}

pub struct Channel {
    state: Mutex<Lines>,
    /// Taken when the channel closes: its followers then see the end and join again.
    tx: Mutex<Option<broadcast::Sender<Published>>>,
    keep: usize,
}

struct Lines {
    room: u64,
    lines: VecDeque<ChatLine>,
}

impl Channel {
    /// Keeps the last `keep` lines; a follower more than `queue` events behind loses
    /// its place (and its socket).
    pub fn new(room: u64, keep: usize, queue: usize) -> Self {
        Self {
            state: Mutex::new(Lines {
                room,
                lines: VecDeque::new(),
            }),
            tx: Mutex::new(Some(broadcast::channel(queue).0)),
            keep,
        }
    }

    /// The lines now (as a history event) and the changes after them, with nothing
    /// lost or repeated in between; `None` once closed.
    pub fn follow(&self) -> Option<(Published, broadcast::Receiver<Published>)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.sender()?.subscribe();
        Some((Published::new(history(&state)), rx))
    }

    pub fn lines(&self) -> (u64, Vec<ChatLine>) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.room, state.lines.iter().cloned().collect())
    }

    /// Applies `event` to the lines and sends it to the followers, in one step so that
    /// every follower sees the events in the order they were applied.
    pub fn publish(&self, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &event {
            // An origin may keep more lines than this node (settings differ during a
            // rolling change): only the last `keep` are kept here.
            Event::History { room, lines } => {
                state.room = *room;
                let skip = lines.len().saturating_sub(self.keep);
                state.lines = lines.iter().skip(skip).cloned().collect();
            }
            Event::Line(line) => {
                while state.lines.len() >= self.keep {
                    state.lines.pop_front();
                }
                state.lines.push_back(line.clone());
            }
            Event::Deleted { seq } => state.lines.retain(|l| l.seq != *seq),
        }
        if let Some(tx) = self.sender() {
            // No followers is not an error.
            let _ = tx.send(Published::new(event));
        }
    }

    pub fn is_closed(&self) -> bool {
        self.sender().is_none()
    }

    /// Ends every follower's subscription; they join again and find what applies now.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn sender(&self) -> Option<broadcast::Sender<Published>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn history(state: &Lines) -> Event {
    Event::History {
        room: state.room,
        lines: state.lines.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> ChatLine {
        ChatLine {
            seq,
            user_id: 1,
            name: "a".into(),
            text: format!("m{seq}"),
            at: 0,
        }
    }

    #[test]
    fn followers_get_the_lines_then_every_change_in_order() {
        let channel = Channel::new(3, 2, 16);
        channel.publish(Event::Line(line(1)));
        let (first, mut rx) = channel.follow().unwrap();
        assert!(matches!(&*first.event, Event::History { room: 3, lines } if lines.len() == 1));
        for seq in 2..=3 {
            channel.publish(Event::Line(line(seq)));
        }
        channel.publish(Event::Deleted { seq: 3 });
        let got: Vec<String> = (0..3)
            .map(|_| rx.try_recv().unwrap().json.to_string())
            .collect();
        assert!(got[0].contains(r#""type":"line""#) && got[0].contains(r#""seq":2"#));
        assert_eq!(got[2], r#"{"type":"deleted","seq":3}"#);
        // Keeps the last 2, minus the deleted one.
        assert_eq!(channel.lines().1, vec![line(2)]);
        channel.close();
        assert!(channel.follow().is_none());
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }
}
