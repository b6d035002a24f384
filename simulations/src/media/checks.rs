//! The media invariants, checked on what the viewers saw and on the origin leases
//! the nodes reported holding.

use std::collections::BTreeMap;

use super::playlist::PartName;
use crate::record::{OriginHeld, PartSeen, PlaylistSeen};

/// At most one node holds a stream's origin lease per epoch, and each node's epochs
/// for a stream only grow.
pub fn one_origin_per_epoch(held: &[OriginHeld]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_epoch: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut last: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for h in held {
        match by_epoch.insert((&h.stream, h.epoch), h.node) {
            Some(other) if other != h.node => out.push(format!(
                "origin: stream {} epoch {} held by node{other} and node{} ({:?})",
                h.stream, h.epoch, h.node, h.at
            )),
            _ => {}
        }
        if let Some(before) = last.insert((&h.stream, h.node), h.epoch)
            && before >= h.epoch
        {
            out.push(format!(
                "origin: node{} held stream {} at epoch {} after epoch {before} ({:?})",
                h.node, h.stream, h.epoch, h.at
            ));
        }
    }
    out
}

/// On every node (per boot: a restarted node starts empty), the media sequence and
/// the newest segment never go back while the stream is live there: a playlist asked
/// for after another one arrived is not older than it. (Answers to requests in flight
/// at the same time may arrive in any order.) A playlist with EXT-X-ENDLIST ends the
/// scope: players stop reloading, and the next playback is a new one.
pub fn media_sequence_never_decreases(seen: &[PlaylistSeen]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_node: BTreeMap<(u32, u64), Vec<&PlaylistSeen>> = BTreeMap::new();
    for s in seen {
        by_node.entry((s.node, s.boot)).or_default().push(s);
    }
    for answers in by_node.values() {
        for b in answers.iter().filter(|b| !b.playlist.ended) {
            let before: Vec<&&PlaylistSeen> =
                answers.iter().filter(|a| a.at < b.requested).collect();
            let since_end = before
                .iter()
                .rposition(|a| a.playlist.ended)
                .map_or(0, |i| i + 1);
            let newest = |p: &PlaylistSeen| p.playlist.segments.last().map_or(0, |seg| seg.msn);
            let earlier = before[since_end..].iter().find(|a| {
                a.playlist.media_sequence > b.playlist.media_sequence || newest(a) > newest(b)
            });
            if let Some(a) = earlier {
                out.push(format!(
                    "media sequence: node{} (boot {}) served sequence {} up to segment {} at {:?}, then sequence {} up to segment {} asked at {:?} (viewer {})",
                    b.node,
                    b.boot,
                    a.playlist.media_sequence,
                    newest(a),
                    a.at,
                    b.playlist.media_sequence,
                    newest(b),
                    b.requested,
                    b.viewer
                ));
            }
        }
    }
    out
}

/// A part's name means the same bytes on every node, all run long.
pub fn same_bytes_everywhere(parts: &[PartSeen]) -> Vec<String> {
    let mut out = Vec::new();
    let mut first: BTreeMap<PartName, &PartSeen> = BTreeMap::new();
    for p in parts {
        match first.get(&p.name) {
            Some(f) if f.hash != p.hash => out.push(format!(
                "bytes: {} was {:016x} (sessions {:?}) on node{} at {:?} and {:016x} (sessions {:?}) on node{} at {:?}",
                p.name.uri(),
                f.hash,
                f.sessions,
                f.node,
                f.at,
                p.hash,
                p.sessions,
                p.node,
                p.at
            )),
            Some(_) => {}
            None => {
                first.insert(p.name, p);
            }
        }
    }
    out
}

/// Wherever a playlist lists two parts in a row from different publish sessions
/// (hence different origins), the second begins a segment that carries
/// EXT-X-DISCONTINUITY. Sessions come from the markers in the parts' bytes.
pub fn discontinuity_at_each_origin_change(
    seen: &[PlaylistSeen],
    parts: &[PartSeen],
) -> Vec<String> {
    let sessions: BTreeMap<PartName, &[u32]> = parts
        .iter()
        .map(|p| (p.name, p.sessions.as_slice()))
        .collect();
    let mut out = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for s in seen {
        let listed = s.playlist.segments.iter().flat_map(|seg| {
            seg.parts
                .iter()
                .enumerate()
                .map(move |(i, p)| (p, i == 0 && seg.discontinuity))
        });
        let mut previous: Option<(PartName, u32)> = None;
        for (part, discontinuity) in listed {
            let Some(ids) = sessions.get(part).filter(|ids| !ids.is_empty()) else {
                previous = None;
                continue;
            };
            if ids.len() > 1 && reported.insert(*part) {
                out.push(format!(
                    "discontinuity: {} mixes sessions {ids:?}",
                    part.uri()
                ));
            }
            if let Some((before, session)) = previous
                && session != ids[0]
                && !discontinuity
                && reported.insert(*part)
            {
                out.push(format!(
                    "discontinuity: node{} listed {} (session {session}) then {} (session {}) without EXT-X-DISCONTINUITY at {:?} (viewer {})",
                    s.node,
                    before.uri(),
                    part.uri(),
                    ids[0],
                    s.at,
                    s.viewer
                ));
            }
            previous = Some((*part, ids[ids.len() - 1]));
        }
    }
    out
}
