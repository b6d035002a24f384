//! A node that becomes a stream's origin continues the stream where it was, without
//! ever giving a media name (run id, sequence number, part index) to bytes other than
//! those another node already served under it.
//!
//! The new origin holds the lease of epoch E. It tells every other node so (a
//! take-over request, `Subscribe.take_over_epoch`): each stops producing the stream
//! under an older epoch, now and later, and answers with its window. The origin of
//! epoch E-1, when it answers, has stopped: its window is final and the new origin
//! continues exactly that (same run id, next sequence number, after one
//! discontinuity), so every edge keeps what it lists and appends the rest.
//!
//! When that origin does not answer (dead, cut off, or it never produced), it may
//! still be producing until its lease runs out locally, and nobody knows how far it
//! got. The new origin then starts a new run: new names, sequence numbers a lease's
//! worth of segments beyond every copy it saw, and a discontinuity, so on every node
//! the media sequence moves forward and no name is reused.
//!
//! Copies alone are not enough: a new origin cut off from every other node sees
//! none. So origins record how far they got in the replicated lease (`Lease::reach`,
//! at every renewal), and before producing anything a new origin records where it
//! will start ([`start_of`]). Every origin thus produced less than a lease's worth
//! of segments beyond the newest record, and a new run starts a lease's worth beyond
//! the record its lease was acquired with (a record no older origin can raise any
//! more: their renewals are refused).

use std::time::Duration;

use castmesh_cluster::model::MediaReach;
use castmesh_cluster::sabotage::{self, Bug};
use tokio::task::JoinSet;

use super::registry::{PublishDenied, StreamId};
use crate::config::Config;
use crate::mesh::subscription::SubscriptionError;
use crate::stream::context::NodeContext;
use castmesh_media::hls::replica::{self, Merged};
use castmesh_media::hls::window::{Replay, Window, WindowEvent};

/// Longest a publish waits for the other nodes' answers.
const ASK_TIMEOUT: Duration = Duration::from_millis(1500);

/// How the stream was produced before the new origin's epoch.
#[derive(Debug)]
pub enum Predecessor {
    /// Epoch 1: nobody produced it.
    None,
    /// The origin of the previous epoch stopped and handed over its final window.
    HandedOver(Replay),
    /// The previous origin did not answer; these are the copies the others hold.
    Unknown(Vec<Replay>),
}

/// Takes stream `id` over from every other node for the lease of `epoch` and learns
/// how it was produced before. Denied when another node holds a lease not older.
pub async fn take_over(
    ctx: &NodeContext,
    id: &StreamId,
    epoch: u64,
) -> Result<Predecessor, PublishDenied> {
    if epoch <= 1 {
        return Ok(Predecessor::None);
    }
    let Some(mesh) = ctx.mesh.clone() else {
        return Ok(Predecessor::Unknown(Vec::new()));
    };
    let mut asks = JoinSet::new();
    for (node, addr) in ctx.registry.peers() {
        let (mesh, registry) = (mesh.clone(), ctx.registry.clone());
        let id = id.clone();
        asks.spawn(async move {
            let ask = mesh.take_over(addr, node, id.as_str(), epoch);
            // A node whose process is gone (the usual failover: the origin crashed)
            // refuses connections at once; without this the ask would wait out its
            // timeout. Not answering is all it means: the new run below is made for
            // a previous origin that may still be producing.
            tokio::select! {
                biased;
                answer = tokio::time::timeout(ASK_TIMEOUT, ask) => answer.ok(),
                () = registry.down(node) => None,
            }
        });
    }
    // A node cut off never answers; the others answer within a round trip. The
    // previous origin's answer ends the wait: nothing is more advanced than its final
    // window.
    let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let mut copies = Vec::new();
    while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, asks.join_next()).await {
        match answer {
            Ok(Some(Ok(replayed))) if replayed.handed_over == Some(epoch - 1) => {
                asks.abort_all();
                let last = replayed.replay;
                tracing::info!(stream = %id, run = last.run, next_msn = last.next_msn, "the previous origin handed the stream over");
                return Ok(Predecessor::HandedOver(last));
            }
            Ok(Some(Ok(replayed))) if replayed.replay.has_media() => copies.push(replayed.replay),
            Ok(Some(Err(SubscriptionError::Superseded(held)))) => {
                asks.abort_all();
                return Err(PublishDenied::Superseded(format!(
                    "a newer publisher took this stream over (epoch {held})"
                )));
            }
            _ => {}
        }
    }
    asks.abort_all();
    tracing::info!(stream = %id, copies = copies.len(), "the previous origin did not hand the stream over");
    Ok(Predecessor::Unknown(copies))
}

/// Sequence numbers a new run skips beyond every copy seen: the segments an origin
/// that did not answer may still cut before its lease runs out (segments are at
/// least about the segment target long), and one it may have begun.
pub fn skipped_segments(config: &Config) -> u64 {
    let ttl = config.cluster.lease_ttl.as_millis();
    let segment = config.hls.segment_target.as_millis().max(1);
    (ttl.div_ceil(segment) + 1) as u64
}

/// Where the new origin's media may start at the latest, with `own` this node's own
/// window of the stream (if any) and `floor` the reach its lease was acquired with: a
/// lease's worth of segments beyond everything known. Recorded in the lease before
/// the new origin produces (`None`: the first epoch, which starts at zero).
pub fn start_of(
    own: Option<&Window>,
    before: &Predecessor,
    floor: MediaReach,
    skip: u64,
) -> Option<MediaReach> {
    let copies = match before {
        Predecessor::None => return None,
        Predecessor::HandedOver(last) => std::slice::from_ref(last),
        Predecessor::Unknown(copies) => copies.as_slice(),
    };
    let known = copies
        .iter()
        .map(reach)
        .chain(
            own.into_iter()
                .flat_map(|w| [window_reach(w), window_reach(w.listed())]),
        )
        .fold(floor, MediaReach::max);
    // Every discontinuity a skipped segment may have had is counted too, so the
    // discontinuity sequence does not go back either on a node that held them.
    Some(MediaReach {
        next_msn: known.next_msn + skip,
        discontinuities: known.discontinuities + skip,
    })
}

/// Makes `w` (this node's own window of the stream, perhaps empty) the one the new
/// origin continues: the previous origin's final window, or else a new run at
/// `start` (see [`start_of`]). True if it changed: the segmenter must start over on it.
pub fn continue_window(
    w: &mut Window,
    before: Predecessor,
    start: MediaReach,
    new_run: u32,
) -> bool {
    match before {
        Predecessor::None => return false,
        Predecessor::HandedOver(last) if continues(w, &last) => {
            if replica::merge(w, last) != Merged::Behind {
                return true;
            }
        }
        Predecessor::HandedOver(_) => {}
        Predecessor::Unknown(copies) if sabotage::active(Bug::ContinueAnyCopy) => {
            let best = copies.into_iter().max_by_key(Replay::progress);
            return match best {
                Some(best) => continue_window(w, Predecessor::HandedOver(best), start, new_run),
                None => false,
            };
        }
        Predecessor::Unknown(_) => {}
    }
    if sabotage::active(Bug::RestartNumbering) {
        w.start_run(new_run, 0, 0);
        return true;
    }
    // What reached this window since `start` was reckoned came from older origins,
    // which stay below it; never moving this node back holds regardless.
    let start = [window_reach(w), window_reach(w.listed())]
        .into_iter()
        .fold(start, MediaReach::max);
    w.start_run(new_run, start.next_msn, start.discontinuities);
    true
}

/// Whether the final window `last` can be continued here: same window config, and
/// taking it in does not move this node's media sequence back.
fn continues(w: &Window, last: &Replay) -> bool {
    last.config == *w.config()
        && (!w.position().has_media() || w.run() == last.run || w.next_msn() <= last.next_msn)
}

fn window_reach(w: &Window) -> MediaReach {
    let (next_msn, discontinuities) = w.reach();
    MediaReach {
        next_msn,
        discontinuities,
    }
}

/// The sequence number after a window's newest segment, and the discontinuities it
/// counted up to there.
fn reach(r: &Replay) -> MediaReach {
    let listed = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                WindowEvent::BeginSegment {
                    discontinuity: true,
                    ..
                }
            )
        })
        .count() as u64;
    MediaReach {
        next_msn: r.next_msn,
        discontinuities: r.discontinuity_sequence + listed,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use castmesh_media::Codecs;
    use castmesh_media::hls::playlist;
    use castmesh_media::testing::{fill_segment, window};

    /// An origin's window: segments 0 and 1 complete, 2 open with 4 parts.
    fn produced(run: u32) -> Window {
        let mut w = Window::new(*window(3).config(), run);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        fill_segment(&mut w, false, 10, true);
        fill_segment(&mut w, true, 10, true);
        fill_segment(&mut w, false, 4, false);
        w
    }

    #[test]
    fn a_handed_over_window_is_continued_exactly() {
        let old = produced(7);
        let mut new = window(3);
        assert!(take_over_with(
            &mut new,
            Predecessor::HandedOver(old.replay()),
            MediaReach::default()
        ));
        assert_eq!(new.run(), 7);
        assert_eq!(playlist::render(&new), playlist::render(&old));
        // The new origin's first segment (its segmenter starts with a discontinuity)
        // follows the old origin's last one.
        new.add_init(Bytes::from_static(b"init2"), Codecs::default());
        fill_segment(&mut new, true, 2, false);
        assert_eq!(new.open_segment().map(|s| s.msn), Some(3));
        assert_eq!(new.part(2, 3), old.part(2, 3));
    }

    #[test]
    fn without_a_hand_over_a_new_run_starts_past_every_copy() {
        let old = produced(7);
        let mut edge = window(3);
        replica::merge(&mut edge, old.replay());
        let copy = old.replay();
        assert!(take_over_with(
            &mut edge,
            Predecessor::Unknown(vec![copy]),
            MediaReach::default()
        ));
        assert_eq!(edge.run(), 8);
        // Until the new run lists as long a window as the old one (two segments), the
        // old window stays listed and served.
        assert_eq!(edge.listed().run(), 7);
        assert_eq!(playlist::render(edge.listed()), playlist::render(&old));
        assert_eq!(edge.listed().part(2, 3), old.part(2, 3));
        edge.add_init(Bytes::from_static(b"init2"), Codecs::default());
        fill_segment(&mut edge, false, 10, true);
        // Segments 0..=2 existed; 4 more may have been cut by the silent origin.
        let first = edge.segments().next().unwrap();
        assert_eq!((first.msn, first.discontinuity), (3 + 4, true));
        assert_eq!(edge.listed().run(), 7);
        fill_segment(&mut edge, false, 10, true);
        assert_eq!(edge.listed().run(), 8);
        // One discontinuity was counted in the copy; the skipped ones may have had one each.
        assert_eq!(edge.discontinuity_sequence(), 1 + 4);
    }

    #[test]
    fn a_hand_over_that_would_move_this_node_back_starts_a_new_run() {
        let mut mine = produced(5);
        fill_segment(&mut mine, false, 10, true);
        fill_segment(&mut mine, false, 10, true);
        let old = produced(7);
        assert!(take_over_with(
            &mut mine,
            Predecessor::HandedOver(old.replay()),
            MediaReach::default()
        ));
        assert_eq!(mine.run(), 8);
        assert_eq!(mine.next_msn(), 5 + 4);
    }

    #[test]
    fn the_first_epoch_changes_nothing() {
        let mut w = produced(7);
        let before = playlist::render(&w);
        assert!(!take_over_with(
            &mut w,
            Predecessor::None,
            MediaReach::default()
        ));
        assert_eq!(playlist::render(&w), before);
    }

    #[test]
    fn a_new_origin_that_hears_from_nobody_starts_past_the_recorded_reach() {
        let mut alone = window(3);
        let floor = MediaReach {
            next_msn: 5,
            discontinuities: 4,
        };
        assert!(take_over_with(
            &mut alone,
            Predecessor::Unknown(Vec::new()),
            floor
        ));
        alone.add_init(Bytes::from_static(b"init"), Codecs::default());
        fill_segment(&mut alone, false, 10, true);
        let first = alone.segments().next().unwrap();
        assert_eq!((first.msn, first.discontinuity), (5 + 4, true));
        assert_eq!(alone.discontinuity_sequence(), 4 + 4);
    }

    #[test]
    fn a_window_that_grew_past_the_planned_start_is_not_moved_back() {
        let mut edge = window(3);
        let start = start_of(
            Some(&edge),
            &Predecessor::Unknown(Vec::new()),
            MediaReach::default(),
            4,
        );
        // Late media of an older origin arrives after the start was recorded.
        replica::merge(&mut edge, produced(7).replay());
        for _ in 0..3 {
            fill_segment(&mut edge, false, 10, true);
        }
        assert!(continue_window(
            &mut edge,
            Predecessor::Unknown(Vec::new()),
            start.unwrap(),
            8
        ));
        assert_eq!(edge.next_msn(), 6);
    }

    /// What a publish does: plan the start with a lease's worth of 4 segments, then
    /// continue the window.
    fn take_over_with(w: &mut Window, before: Predecessor, floor: MediaReach) -> bool {
        let start = start_of(Some(w), &before, floor, 4).unwrap_or_default();
        continue_window(w, before, start, 8)
    }
}
