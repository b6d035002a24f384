//! An edge's copy of an origin's window, fed with the origin's [`WindowEvent`]s.
//!
//! A subscription starts with the origin's whole window ([`Replay`]) and continues
//! with each event as it happens. After a resubscription (the edge fell behind, or
//! the origin changed) the replay overlaps what the edge holds: known segments and
//! parts are skipped and the rest appended, so the edge continues without a gap, a
//! duplicate or a renamed object. Only when the two cannot be joined (another run of
//! the stream, or segments the edge never saw have already left the origin's
//! window) is the edge's window replaced.

use super::window::{Replay, Window, WindowEvent};

/// How a replay was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The edge's window continues: everything it listed stays listed.
    Continued,
    /// The edge's window was rebuilt from the replay.
    Replaced,
    /// The replay cannot be joined and is behind the edge's window: nothing changed.
    Behind,
}

/// A live event that does not follow on from the window: the edge must resubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutOfStep {
    /// The edge missed segments.
    #[error("origin sent segment {got} where {expected} was expected")]
    Gap { expected: u64, got: u64 },
    /// The origin's segment `msn` is not the one the edge has open (a new origin
    /// started it again from a copy that had none of its parts).
    #[error("origin's segment {0} differs from the one this edge has open")]
    Diverged(u64),
}

/// Takes in the replay that starts a subscription.
pub fn merge(w: &mut Window, replay: Replay) -> Merged {
    let joinable = w.position().has_media()
        && w.run() == replay.run
        && w.config() == &replay.config
        && !leaves_gap(w, &replay)
        && agrees(w, &replay);
    if !joinable {
        if w.position().has_media()
            && !w.is_ended()
            && replay.progress().map(|(msn, _)| msn) < w.held_segments().last().map(|s| s.msn)
        {
            // Replacing would take the media sequence back: keep what viewers have
            // until the origin's window reaches past it.
            return Merged::Behind;
        }
        replace(w, replay);
        return Merged::Replaced;
    }
    for event in replay.events {
        // Cannot be out of step: `leaves_gap` and `agrees` checked the whole replay.
        let _ = follow(w, event);
    }
    Merged::Continued
}

/// Rebuilds the window from the replay, whatever it held (still listed, if the replay
/// has no media yet).
pub fn replace(w: &mut Window, replay: Replay) {
    let mut next = Window::from_replay(&replay);
    for event in replay.events {
        next.apply(event);
    }
    w.replace_with(next);
}

/// One segment as a replay describes it.
#[derive(Default)]
struct Described {
    discontinuity: bool,
    program_date_time: Option<std::time::SystemTime>,
    parts: usize,
    closed: bool,
}

/// Whether every segment both hold is the same segment: same header, and the parts the
/// edge lists are a prefix of the origin's. A segment the edge lists parts of must be
/// in the replay (else it would be closed short under the origin's name).
fn agrees(w: &Window, replay: &Replay) -> bool {
    let mut described: std::collections::BTreeMap<u64, Described> = Default::default();
    for e in &replay.events {
        match e {
            WindowEvent::BeginSegment {
                msn,
                discontinuity,
                program_date_time,
            } => {
                described.insert(
                    *msn,
                    Described {
                        discontinuity: *discontinuity,
                        program_date_time: Some(*program_date_time),
                        ..Default::default()
                    },
                );
            }
            WindowEvent::Part { msn, .. } => {
                if let Some(d) = described.get_mut(msn) {
                    d.parts += 1;
                }
            }
            WindowEvent::EndSegment { msn } => {
                if let Some(d) = described.get_mut(msn) {
                    d.closed = true;
                }
            }
            _ => {}
        }
    }
    let first = described.keys().next().copied();
    w.held_segments().all(|held| {
        let complete = !held.data.is_empty();
        let Some(d) = described.get(&held.msn) else {
            // Complete and older than the replay: fine. Open with parts listed, or newer:
            // the origin's copy lacks it.
            return held.parts.is_empty() || (complete && first.is_some_and(|f| held.msn < f));
        };
        held.parts.is_empty()
            || (d.discontinuity == held.discontinuity
                && d.program_date_time == Some(held.program_date_time)
                && d.parts >= held.parts.len()
                && (!complete || (d.closed && d.parts == held.parts.len())))
    })
}

/// Applies one event unless the window already holds it.
pub fn follow(w: &mut Window, event: WindowEvent) -> Result<(), OutOfStep> {
    match &event {
        WindowEvent::Init { id, .. } if w.has_init(*id) => return Ok(()),
        WindowEvent::BeginSegment { msn, .. } => {
            if diverges(w, &event) {
                return Err(OutOfStep::Diverged(*msn));
            }
            match w.open_segment().filter(|s| s.msn == *msn) {
                // An open segment without parts is not listed yet: the origin may
                // begin it again (it gave the number back), and its header is the one
                // to keep.
                Some(open) if open.parts.is_empty() => {}
                Some(_) => return Ok(()),
                None if *msn < w.next_msn() => return Ok(()),
                None => {}
            }
            if *msn > w.next_msn() && w.position().has_media() {
                return Err(OutOfStep::Gap {
                    expected: w.next_msn(),
                    got: *msn,
                });
            }
        }
        // Parts and ends of segments the window does not have open are ignored by
        // `apply` itself.
        _ => {}
    }
    w.apply(event);
    Ok(())
}

/// Whether `event` begins the segment the edge has open, with parts listed, under
/// another header: the two cannot be the same segment.
fn diverges(w: &Window, event: &WindowEvent) -> bool {
    let WindowEvent::BeginSegment {
        msn,
        discontinuity,
        program_date_time,
    } = event
    else {
        return false;
    };
    w.open_segment().is_some_and(|s| {
        s.msn == *msn
            && !s.parts.is_empty()
            && (s.discontinuity != *discontinuity || s.program_date_time != *program_date_time)
    })
}

/// Whether the replay's first segment the edge lacks comes after one it never saw.
fn leaves_gap(w: &Window, replay: &Replay) -> bool {
    let next = w.next_msn();
    replay
        .events
        .iter()
        .filter_map(|e| match e {
            WindowEvent::BeginSegment { msn, .. } => Some(*msn),
            _ => None,
        })
        .find(|msn| *msn >= next)
        .is_some_and(|msn| msn > next)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::Codecs;
    use crate::hls::playlist;
    use crate::testing::{fill_segment, window};

    fn origin() -> Window {
        let mut w = window(3);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        w
    }

    /// A replica fed a replay and then the live events renders the same playlist and
    /// serves the same bytes under the same names as the origin.
    fn assert_same(origin: &Window, edge: &Window) {
        assert_eq!(playlist::render(origin), playlist::render(edge));
        assert_eq!(origin.position(), edge.position());
        assert_eq!(origin.media_sequence(), edge.media_sequence());
        for msn in 0..origin.next_msn() + 1 {
            assert_eq!(origin.segment(msn), edge.segment(msn), "segment {msn}");
            for part in 0..12 {
                assert_eq!(origin.part(msn, part), edge.part(msn, part), "{msn}.{part}");
            }
        }
        for id in 0..4 {
            assert_eq!(origin.init(id), edge.init(id));
        }
    }

    fn follow_all(edge: &mut Window, origin: &mut Window) {
        for e in origin.take_events() {
            follow(edge, e).unwrap();
        }
    }

    #[test]
    fn a_replica_matches_its_origin_from_a_replay_and_live_events() {
        let mut o = origin();
        for i in 0..8 {
            fill_segment(&mut o, i == 3, 10, true);
        }
        fill_segment(&mut o, false, 4, false);
        o.take_events();
        let mut edge = window(3);
        assert_eq!(merge(&mut edge, o.replay()), Merged::Replaced);
        assert_same(&o, &edge);
        // Live: finish the open segment, a new init, more segments, a discontinuity.
        fill_segment(&mut o, false, 3, true);
        o.add_init(Bytes::from_static(b"init2"), Codecs::default());
        fill_segment(&mut o, true, 10, true);
        fill_segment(&mut o, false, 2, false);
        follow_all(&mut edge, &mut o);
        assert_same(&o, &edge);
        o.end_stream();
        follow_all(&mut edge, &mut o);
        assert_same(&o, &edge);
        assert!(playlist::render(&edge).contains("#EXT-X-ENDLIST"));
    }

    #[test]
    fn a_resubscription_fills_in_what_was_missed_without_renaming() {
        let mut o = origin();
        fill_segment(&mut o, false, 10, true);
        fill_segment(&mut o, false, 4, false);
        let mut edge = window(3);
        merge(&mut edge, o.replay());
        o.take_events();
        // The edge misses the rest of segment 1 and all of segment 2.
        fill_segment(&mut o, false, 6, true);
        fill_segment(&mut o, false, 10, true);
        fill_segment(&mut o, false, 2, false);
        o.take_events();
        assert_eq!(merge(&mut edge, o.replay()), Merged::Continued);
        assert_same(&o, &edge);
    }

    #[test]
    fn a_replay_that_cannot_be_joined_replaces_the_window() {
        let mut o = origin();
        fill_segment(&mut o, false, 10, true);
        let mut edge = window(3);
        merge(&mut edge, o.replay());
        // Segments 1..=7 leave the origin's window (3 listed + 3 retired) unseen.
        for _ in 0..7 {
            fill_segment(&mut o, false, 10, true);
        }
        assert_eq!(merge(&mut edge, o.replay()), Merged::Replaced);
        assert_same(&o, &edge);
        // Another run of the stream, numbered behind this window: kept until it is
        // past, so the media sequence does not go back.
        let mut behind = Window::new(*o.config(), 99);
        behind.add_init(Bytes::from_static(b"init"), Codecs::default());
        fill_segment(&mut behind, false, 10, true);
        assert_eq!(merge(&mut edge, behind.replay()), Merged::Behind);
        assert_eq!(edge.run(), o.run());
        // One numbered past it (a new origin that skipped ahead) replaces it.
        let mut ahead = Window::new(*o.config(), 98);
        ahead.start_run(98, edge.next_msn() + 3, edge.discontinuity_sequence() + 3);
        ahead.add_init(Bytes::from_static(b"init"), Codecs::default());
        fill_segment(&mut ahead, false, 10, true);
        assert_eq!(merge(&mut edge, ahead.replay()), Merged::Replaced);
        assert_eq!(edge.run(), 98);
        // An ended window takes any run: its viewers' playback is over.
        edge.end_stream();
        assert_eq!(merge(&mut edge, behind.replay()), Merged::Replaced);
        assert_eq!(edge.run(), 99);
    }

    /// A window with media replaced by one without keeps listing what it had until the
    /// new one lists as much: a playlist never goes empty or short.
    #[test]
    fn a_replacement_without_media_keeps_the_old_window_listed() {
        let mut o = origin();
        fill_segment(&mut o, false, 10, true);
        let mut edge = window(3);
        merge(&mut edge, o.replay());
        edge.end_stream();
        let mut next = Window::new(*o.config(), 99);
        assert_eq!(merge(&mut edge, next.replay()), Merged::Replaced);
        assert_eq!((edge.run(), edge.listed().run()), (99, o.run()));
        assert_eq!(edge.listed().part(0, 3), o.part(0, 3));
        next.add_init(Bytes::from_static(b"init"), Codecs::default());
        fill_segment(&mut next, false, 10, true);
        for e in next.take_events() {
            follow(&mut edge, e).unwrap();
        }
        // As long a window as the one it replaces (one 2 s segment): shown now.
        assert_eq!(edge.listed().run(), 99);
    }

    /// The origin dies; a node that takes the stream over is seeded from an edge's copy
    /// and continues it after a discontinuity; the edge joins the new origin.
    #[test]
    fn a_new_origin_seeded_from_an_edge_continues_on_that_edge() {
        let mut old = origin();
        fill_segment(&mut old, false, 10, true);
        fill_segment(&mut old, false, 4, false);
        let mut edge = window(3);
        merge(&mut edge, old.replay());
        let mut new = Window::new(*old.config(), 77);
        assert_eq!(merge(&mut new, edge.replay()), Merged::Replaced);
        new.add_init(Bytes::from_static(b"init2"), Codecs::default());
        fill_segment(&mut new, true, 3, false);
        assert_eq!(merge(&mut edge, new.replay()), Merged::Continued);
        new.take_events();
        fill_segment(&mut new, false, 10, true);
        follow_all(&mut edge, &mut new);
        assert_same(&new, &edge);
        let text = playlist::render(&edge);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    }

    /// The old origin, alive, follows the new origin, whose copy of its window came
    /// over the wire: program date times in whole milliseconds, which the window
    /// already rounds to (the wire's round trip of each event is checked in
    /// castmesh-node's `mesh::wire` tests).
    #[test]
    fn an_old_origin_joins_the_copy_made_of_its_window() {
        let mut old = origin();
        let pdt = |ms: u64| {
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ms * 1_000_000 + 123_456)
        };
        for (i, parts) in [10, 3].into_iter().enumerate() {
            old.begin_segment(false, pdt(1_700_000_000_000 + i as u64 * 2000));
            for p in 0..parts {
                old.push_part(
                    crate::hls::window::Part {
                        duration_ms: 200.0,
                        independent: p == 0,
                        data: Bytes::from(vec![p as u8; 10]),
                    },
                    0,
                );
            }
        }
        let copy = old.replay();
        let mut new = Window::new(*old.config(), 77);
        merge(&mut new, copy);
        fill_segment(&mut new, true, 3, false);
        assert_eq!(merge(&mut old, new.replay()), Merged::Continued);
        assert_same(&new, &old);
    }

    /// A new origin continued a copy one segment behind this edge: its segment 1 is
    /// not the edge's segment 1, so the edge must not keep its own under that name.
    #[test]
    fn a_closed_segment_begun_again_differently_is_not_joined() {
        let mut old = origin();
        fill_segment(&mut old, false, 10, true);
        let stale = old.replay();
        fill_segment(&mut old, false, 10, true);
        fill_segment(&mut old, false, 0, false);
        let mut edge = window(3);
        merge(&mut edge, old.replay());
        let mut new = Window::new(*old.config(), 77);
        merge(&mut new, stale);
        fill_segment(&mut new, true, 10, true);
        fill_segment(&mut new, false, 2, false);
        assert_ne!(merge(&mut edge, new.replay()), Merged::Continued);
    }

    /// The edge lists 3 parts of segment 1; the replay it resubscribes to starts at
    /// segment 2 (1 already left the origin's window): joining would close segment 1
    /// short under the origin's name.
    #[test]
    fn a_replay_without_the_edges_open_segment_is_not_joined() {
        let mut o = origin();
        fill_segment(&mut o, false, 10, true);
        fill_segment(&mut o, false, 3, false);
        let mut edge = window(3);
        merge(&mut edge, o.replay());
        fill_segment(&mut o, false, 7, true);
        fill_segment(&mut o, false, 10, true);
        // The origin's replay from segment 2 on (and its init).
        let mut replay = o.replay();
        replay.events = std::mem::take(&mut replay.events)
            .into_iter()
            .filter(|e| match e {
                WindowEvent::BeginSegment { msn, .. }
                | WindowEvent::Part { msn, .. }
                | WindowEvent::EndSegment { msn } => *msn >= 2,
                _ => true,
            })
            .collect();
        assert_eq!(merge(&mut edge, replay), Merged::Replaced);
    }

    #[test]
    fn a_live_event_out_of_step_is_refused() {
        let mut o = origin();
        fill_segment(&mut o, false, 10, true);
        let mut edge = window(3);
        merge(&mut edge, o.replay());
        o.take_events();
        fill_segment(&mut o, false, 10, true);
        o.take_events();
        fill_segment(&mut o, false, 10, true);
        let begin = o
            .take_events()
            .into_iter()
            .find(|e| matches!(e, WindowEvent::BeginSegment { .. }))
            .unwrap();
        assert_eq!(
            follow(&mut edge, begin),
            Err(OutOfStep::Gap {
                expected: 1,
                got: 2
            })
        );
    }

    /// The edge had begun a segment (no parts yet) when the origin died; the new
    /// origin, seeded from a copy with the same empty segment, begins it again after a
    /// discontinuity: the edge takes the new header.
    #[test]
    fn an_empty_open_segment_is_begun_again_with_the_new_origins_header() {
        let mut old = origin();
        fill_segment(&mut old, false, 10, true);
        fill_segment(&mut old, false, 0, false);
        let mut edge = window(3);
        merge(&mut edge, old.replay());
        let mut new = Window::new(*old.config(), 77);
        merge(&mut new, edge.replay());
        fill_segment(&mut new, true, 3, false);
        assert_eq!(merge(&mut edge, new.replay()), Merged::Continued);
        assert_same(&new, &edge);
        assert!(playlist::render(&edge).contains("#EXT-X-DISCONTINUITY\n"));
    }

    /// A segment the edge lists parts of, begun differently by the new origin, cannot
    /// be joined: resubscribing replaces the edge's window.
    #[test]
    fn a_diverged_open_segment_is_refused() {
        let mut old = origin();
        fill_segment(&mut old, false, 10, true);
        fill_segment(&mut old, false, 2, false);
        let mut edge = window(3);
        merge(&mut edge, old.replay());
        let mut new = old.replay();
        for e in &mut new.events {
            if let WindowEvent::BeginSegment {
                msn: 1,
                discontinuity,
                ..
            } = e
            {
                *discontinuity = true;
            }
        }
        let begin = new
            .events
            .iter()
            .find(|e| matches!(e, WindowEvent::BeginSegment { msn: 1, .. }));
        assert_eq!(
            follow(&mut edge, begin.unwrap().clone()),
            Err(OutOfStep::Diverged(1))
        );
        assert_eq!(merge(&mut edge, new), Merged::Replaced);
    }
}
