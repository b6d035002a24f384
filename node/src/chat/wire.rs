//! Chat events, posts and answers to and from their protobuf form (`mesh.v1`).

use castmesh_cluster::StreamId;
use castmesh_cluster::chat::ChatLine;
use castmesh_proto::mesh::v1 as pb;
use pb::chat_event::Kind;
use pb::chat_moderate::Action;

use super::{Event, Moderation, Refusal};

pub fn event_to_wire(event: &Event) -> pb::ChatEvent {
    let kind = match event {
        Event::History { room, lines } => Kind::History(pb::ChatHistory {
            room: *room,
            lines: lines.iter().map(line_to_wire).collect(),
        }),
        Event::Line(line) => Kind::Line(line_to_wire(line)),
        Event::Deleted { seq } => Kind::Deleted(*seq),
    };
    pb::ChatEvent { kind: Some(kind) }
}

pub fn event_from_wire(event: pb::ChatEvent) -> anyhow::Result<Event> {
    Ok(match event.kind {
        Some(Kind::History(h)) => Event::History {
            room: h.room,
            lines: h.lines.into_iter().map(line_from_wire).collect(),
        },
        Some(Kind::Line(l)) => Event::Line(line_from_wire(l)),
        Some(Kind::Deleted(seq)) => Event::Deleted { seq },
        None => anyhow::bail!("chat event without a kind"),
    })
}

fn line_to_wire(l: &ChatLine) -> pb::ChatLine {
    pb::ChatLine {
        seq: l.seq,
        user_id: l.user_id,
        name: l.name.clone(),
        text: l.text.clone(),
        at_ms: l.at,
    }
}

fn line_from_wire(l: pb::ChatLine) -> ChatLine {
    ChatLine {
        seq: l.seq,
        user_id: l.user_id,
        name: l.name,
        text: l.text,
        at: l.at_ms,
    }
}

pub fn answer_to_wire(outcome: Result<(), Refusal>) -> pb::ChatAnswer {
    match outcome {
        Ok(()) => pb::ChatAnswer::default(),
        Err(refusal) => pb::ChatAnswer {
            code: refusal.code().to_string(),
            message: refusal.to_string(),
            retry_after_ms: match refusal {
                Refusal::Muted { wait } => wait.as_millis() as u64,
                _ => 0,
            },
            max_chars: match refusal {
                Refusal::TooLong(max) => max as u32,
                _ => 0,
            },
        },
    }
}

/// The origin's answer as this node's refusal (the origin's limits may differ from
/// this node's settings, so its numbers are kept).
pub fn answer_from(answer: pb::ChatAnswer) -> Result<(), Refusal> {
    Err(match answer.code.as_str() {
        "" => return Ok(()),
        "login" => Refusal::SignedOut,
        "empty" => Refusal::Empty,
        "too_long" => Refusal::TooLong(answer.max_chars as usize),
        "muted" => Refusal::Muted {
            wait: std::time::Duration::from_millis(answer.retry_after_ms),
        },
        "banned" => Refusal::Banned,
        "not_started" => Refusal::NotStarted,
        "ended" => Refusal::Ended,
        "forbidden" => Refusal::Forbidden,
        _ => Refusal::Unavailable(answer.message),
    })
}

pub fn moderate_to_wire(stream: &StreamId, moderator: u64, action: Moderation) -> pb::ChatModerate {
    pb::ChatModerate {
        stream: stream.to_string(),
        moderator,
        room: match action {
            Moderation::Delete { room, .. } => room,
            Moderation::Ban(_) => 0,
        },
        action: Some(match action {
            Moderation::Delete { seq, .. } => Action::DeleteSeq(seq),
            Moderation::Ban(user) => Action::BanUser(user),
        }),
    }
}

pub fn moderate_from_wire(m: pb::ChatModerate) -> Result<(StreamId, u64, Moderation), Refusal> {
    let stream =
        StreamId::parse(&m.stream).map_err(|_| Refusal::Unavailable("no such stream".into()))?;
    let action = match m.action {
        Some(Action::DeleteSeq(seq)) => Moderation::Delete { room: m.room, seq },
        Some(Action::BanUser(user)) => Moderation::Ban(user),
        None => {
            return Err(Refusal::Unavailable(
                "a moderation without an action".into(),
            ));
        }
    };
    Ok((stream, m.moderator, action))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn events_and_refusals_survive_the_wire() {
        let line = ChatLine {
            seq: 4,
            user_id: 9,
            name: "Ada".into(),
            text: "<b>hi</b>".into(),
            at: 1_700_000_000_000,
        };
        for event in [
            Event::History {
                room: 3,
                lines: vec![line.clone()],
            },
            Event::Line(line),
            Event::Deleted { seq: 4 },
        ] {
            assert_eq!(event_from_wire(event_to_wire(&event)).unwrap(), event);
        }
        for refusal in [
            Refusal::Empty,
            Refusal::TooLong(500),
            Refusal::Muted {
                wait: Duration::from_millis(9500),
            },
            Refusal::Banned,
            Refusal::NotStarted,
            Refusal::Ended,
            Refusal::Forbidden,
            Refusal::Unavailable("x".into()),
        ] {
            let back = answer_from(answer_to_wire(Err(refusal.clone())));
            match (&refusal, back) {
                (Refusal::Unavailable(_), Err(Refusal::Unavailable(m))) => {
                    assert_eq!(m, refusal.to_string())
                }
                (_, back) => assert_eq!(back, Err(refusal)),
            }
        }
        assert_eq!(answer_from(answer_to_wire(Ok(()))), Ok(()));
    }
}
