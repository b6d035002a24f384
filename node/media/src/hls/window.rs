//! The live window of one stream: segments and parts in memory, bounded.
//!
//! Media sequence numbers and part indexes are the names of things: once a
//! segment or part is listed, its name, duration and bytes never change. A
//! segment that leaves the playlist stays downloadable for one more window
//! (hls-rules 3), then its memory is released.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use castmesh_sabotage::{self as sabotage, Bug};

use crate::Codecs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// EXT-X-TARGETDURATION in whole seconds; no segment is longer.
    pub target_duration_s: u32,
    pub part_target_ms: u32,
    /// Complete segments listed in the playlist.
    pub segments: usize,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub duration_ms: f64,
    pub independent: bool,
    pub data: Bytes,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    pub init_id: u32,
    pub discontinuity: bool,
    pub program_date_time: SystemTime,
    pub parts: Vec<Part>,
    pub duration_ms: f64,
    /// The whole segment (all parts' fragments); empty until the segment is complete.
    pub data: Bytes,
}

/// Where the live edge is; what blocking requests wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Media sequence number of the newest complete segment.
    pub last_complete: Option<u64>,
    /// Media sequence number the open (or next) segment has.
    pub open_msn: u64,
    /// Parts already published in the open segment.
    pub open_parts: u32,
    pub ended: bool,
}

impl Position {
    pub fn has_media(&self) -> bool {
        self.last_complete.is_some() || self.open_parts > 0
    }
}

#[derive(Debug)]
pub struct Window {
    config: WindowConfig,
    /// This stream instance's run id, part of every media name (see `names`).
    run: u32,
    segments: VecDeque<Segment>,
    open: Option<Segment>,
    retired: VecDeque<Segment>,
    next_msn: u64,
    discontinuity_sequence: u64,
    inits: BTreeMap<u32, (Bytes, Codecs)>,
    current_init: Option<u32>,
    next_init_id: u32,
    discontinuity_pending: bool,
    ended: bool,
    /// End of the newest media on the stream timeline, for a restarted segmenter.
    timeline_end_ms: Option<i64>,
    /// Applied events not yet taken (see [`Window::take_events`]).
    events: Vec<WindowEvent>,
    /// The window this one replaced (see [`Window::replace_with`]), still listed and
    /// served until this one lists as long a live window.
    superseded: Option<Box<Window>>,
}

/// One change to a window. See [`Window::apply`].
#[derive(Debug, Clone)]
pub enum WindowEvent {
    Init {
        id: u32,
        bytes: Bytes,
        codecs: Codecs,
    },
    /// Closes the open segment (if any) and opens segment `msn`.
    BeginSegment {
        msn: u64,
        discontinuity: bool,
        program_date_time: SystemTime,
    },
    Part {
        msn: u64,
        index: u32,
        part: Part,
        /// Where the part ends on the stream timeline.
        timeline_end_ms: i64,
    },
    EndSegment {
        msn: u64,
    },
    EndStream,
}

/// A window as a starting point plus the events that fill it (see [`Window::replay`]).
#[derive(Debug, Clone)]
pub struct Replay {
    pub run: u32,
    pub config: WindowConfig,
    pub next_msn: u64,
    pub discontinuity_sequence: u64,
    pub events: Vec<WindowEvent>,
}

impl Replay {
    /// How far the window got: its newest segment and how many of its parts it holds.
    pub fn progress(&self) -> Option<(u64, u32)> {
        self.events.iter().rev().find_map(|e| match e {
            WindowEvent::Part { msn, index, .. } => Some((*msn, index + 1)),
            WindowEvent::BeginSegment { msn, .. } => Some((*msn, 0)),
            _ => None,
        })
    }

    /// Whether the window holds any part.
    pub fn has_media(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, WindowEvent::Part { .. }))
    }
}

impl Window {
    pub fn new(config: WindowConfig, run: u32) -> Self {
        Self {
            config,
            run,
            segments: VecDeque::new(),
            open: None,
            retired: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            inits: BTreeMap::new(),
            current_init: None,
            next_init_id: 0,
            discontinuity_pending: false,
            ended: false,
            timeline_end_ms: None,
            events: Vec::new(),
            superseded: None,
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    pub fn run(&self) -> u32 {
        self.run
    }

    /// Adds an init segment; segments begun from now on use it.
    pub fn add_init(&mut self, bytes: Bytes, codecs: Codecs) -> u32 {
        let id = self.next_init_id;
        self.apply(WindowEvent::Init { id, bytes, codecs });
        id
    }

    pub fn begin_segment(&mut self, discontinuity: bool, program_date_time: SystemTime) {
        self.end_segment();
        if self.current_init.is_none() {
            return;
        }
        let msn = self.next_msn;
        let discontinuity = (discontinuity || self.discontinuity_pending)
            && msn > 0
            && !sabotage::active(Bug::NoDiscontinuity);
        // Whole milliseconds, as the playlist shows it and the mesh carries it, so every
        // node holds the same value for the same segment.
        let since_epoch = program_date_time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let program_date_time = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(since_epoch.as_millis() as u64);
        self.apply(WindowEvent::BeginSegment {
            msn,
            discontinuity,
            program_date_time,
        });
    }

    /// Adds a part to the open segment; `timeline_end_ms` is where the part ends.
    pub fn push_part(&mut self, part: Part, timeline_end_ms: i64) {
        if let Some(open) = &self.open {
            let (msn, index) = (open.msn, open.parts.len() as u32);
            self.apply(WindowEvent::Part {
                msn,
                index,
                part,
                timeline_end_ms,
            });
        }
    }

    pub fn end_segment(&mut self) {
        if let Some(open) = &self.open {
            let msn = open.msn;
            self.apply(WindowEvent::EndSegment { msn });
        }
    }

    /// The stream ended: close what is open; the playlist gets EXT-X-ENDLIST.
    pub fn end_stream(&mut self) {
        self.apply(WindowEvent::EndStream);
    }

    /// The one place the window changes. Events name what they change (sequence
    /// numbers, part indexes, init ids) so a replica fed the same events — an edge
    /// fed by the mesh — holds the same media under the same names. Every applied
    /// event is queued for [`Window::take_events`].
    /// Returns whether the event changed anything (a part or segment end for a
    /// segment that is not open does not).
    pub fn apply(&mut self, event: WindowEvent) -> bool {
        match &event {
            WindowEvent::Init { id, bytes, codecs } => {
                self.inits.insert(*id, (bytes.clone(), codecs.clone()));
                self.current_init = Some(*id);
                self.next_init_id = self.next_init_id.max(id.saturating_add(1));
            }
            WindowEvent::BeginSegment {
                msn,
                discontinuity,
                program_date_time,
            } => {
                self.close_open();
                let Some(init_id) = self.current_init else {
                    return false;
                };
                self.next_msn = msn.saturating_add(1);
                self.discontinuity_pending = false;
                self.open = Some(Segment {
                    msn: *msn,
                    init_id,
                    discontinuity: *discontinuity,
                    program_date_time: *program_date_time,
                    parts: Vec::new(),
                    duration_ms: 0.0,
                    data: Bytes::new(),
                });
                self.ended = false;
            }
            WindowEvent::Part {
                msn,
                index,
                part,
                timeline_end_ms,
            } => {
                let Some(open) = self
                    .open
                    .as_mut()
                    .filter(|o| o.msn == *msn && o.parts.len() == *index as usize)
                else {
                    return false;
                };
                open.duration_ms += part.duration_ms;
                open.parts.push(part.clone());
                self.timeline_end_ms = Some(*timeline_end_ms);
            }
            WindowEvent::EndSegment { msn } => {
                if self.open.as_ref().is_none_or(|o| o.msn != *msn) {
                    return false;
                }
                self.close_open();
            }
            WindowEvent::EndStream => {
                self.close_open();
                self.ended = true;
            }
        }
        self.events.push(event);
        if self
            .superseded
            .as_ref()
            .is_some_and(|old| self.ended || self.can_replace(old))
        {
            self.superseded = None;
        }
        true
    }

    /// Whether this window lists enough to be shown instead of `old`: as long a live
    /// window as `old` listed, up to three target durations (hls-rules 3).
    fn can_replace(&self, old: &Window) -> bool {
        let listed = |w: &Window| w.segments.iter().map(|s| s.duration_ms).sum::<f64>();
        let wanted = (3000.0 * f64::from(self.config.target_duration_s)).min(listed(old));
        self.position().has_media() && listed(self) >= wanted
    }

    /// Events applied since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<WindowEvent> {
        std::mem::take(&mut self.events)
    }

    /// The window as the events that rebuild it from nothing: what a new replica
    /// starts from. Includes retired segments, which are still served.
    pub fn replay(&self) -> Replay {
        let mut events = Vec::new();
        let mut init = None;
        let mut retired_discontinuities = 0;
        let all = self.retired.iter().chain(&self.segments).chain(&self.open);
        for seg in all {
            if init != Some(seg.init_id) {
                events.extend(self.init_event(seg.init_id));
                init = Some(seg.init_id);
            }
            events.push(WindowEvent::BeginSegment {
                msn: seg.msn,
                discontinuity: seg.discontinuity,
                program_date_time: seg.program_date_time,
            });
            for (index, part) in seg.parts.iter().enumerate() {
                events.push(WindowEvent::Part {
                    msn: seg.msn,
                    index: index as u32,
                    part: part.clone(),
                    // Only the newest part's end matters to a replica, and it is
                    // this window's.
                    timeline_end_ms: self.timeline_end_ms.unwrap_or(0),
                });
            }
            if !seg.data.is_empty() {
                events.push(WindowEvent::EndSegment { msn: seg.msn });
            }
        }
        for seg in &self.retired {
            retired_discontinuities += u64::from(seg.discontinuity);
        }
        if self.current_init.is_some() && init != self.current_init {
            events.extend(self.current_init.and_then(|id| self.init_event(id)));
        }
        if self.ended {
            events.push(WindowEvent::EndStream);
        }
        Replay {
            run: self.run,
            config: self.config,
            next_msn: self.next_msn,
            // Retired segments pass through the replica's playlist again on replay and
            // count their discontinuities as they leave it.
            discontinuity_sequence: self.discontinuity_sequence - retired_discontinuities,
            events,
        }
    }

    /// Replaces this window with an empty one of a new run that starts at `next_msn`
    /// and `discontinuity_sequence`, its first segment after a discontinuity; the old
    /// one stays listed until the new run lists enough (see [`Window::replace_with`]).
    pub fn start_run(&mut self, run: u32, next_msn: u64, discontinuity_sequence: u64) {
        let mut next = Self::new(self.config, run);
        next.next_msn = next_msn;
        next.discontinuity_sequence = discontinuity_sequence;
        next.discontinuity_pending = true;
        self.replace_with(next);
    }

    /// Becomes `next`. Until `next` lists as long a live window as what viewers see now
    /// (up to three target durations), that stays listed and served (see
    /// [`Window::listed`]): a playlist never goes empty or shorter than a live window
    /// must be.
    pub fn replace_with(&mut self, next: Window) {
        let previous = std::mem::replace(self, next);
        let shown = match previous.superseded {
            Some(older) => *older,
            None => previous,
        };
        if shown.position().has_media() && !self.ended && !self.can_replace(&shown) {
            self.superseded = Some(Box::new(shown));
        }
    }

    /// The window viewers see: this one, or the one it is replacing while it does not
    /// list enough yet.
    pub fn listed(&self) -> &Window {
        match &self.superseded {
            Some(previous) => previous,
            None => self,
        }
    }

    /// A window rebuilt from `replay`'s starting point; its events are then applied.
    pub fn from_replay(replay: &Replay) -> Self {
        let mut w = Self::new(replay.config, replay.run);
        w.next_msn = replay.next_msn;
        w.discontinuity_sequence = replay.discontinuity_sequence;
        w
    }

    fn init_event(&self, id: u32) -> Option<WindowEvent> {
        self.inits
            .get(&id)
            .map(|(bytes, codecs)| WindowEvent::Init {
                id,
                bytes: bytes.clone(),
                codecs: codecs.clone(),
            })
    }

    /// Closes the open segment: lists it whole and moves the window on.
    fn close_open(&mut self) {
        let Some(mut seg) = self.open.take() else {
            return;
        };
        if seg.parts.is_empty() {
            // Never listed: give the number back so sequence numbers stay dense.
            self.next_msn = seg.msn;
            self.discontinuity_pending |= seg.discontinuity;
            return;
        }
        // One copy per segment so full-segment requests are a single Bytes; the
        // parts then become zero-copy slices of it instead of separate buffers.
        let mut whole = BytesMut::with_capacity(seg.parts.iter().map(|p| p.data.len()).sum());
        for p in &seg.parts {
            whole.extend_from_slice(&p.data);
        }
        let whole = whole.freeze();
        let mut offset = 0;
        for p in &mut seg.parts {
            let len = p.data.len();
            p.data = whole.slice(offset..offset + len);
            offset += len;
        }
        seg.data = whole;
        self.segments.push_back(seg);
        while self.segments.len() > self.config.segments {
            let gone = self.segments.pop_front().expect("non-empty");
            if gone.discontinuity {
                self.discontinuity_sequence += 1;
            }
            self.retired.push_back(gone);
        }
        while self.retired.len() > self.config.segments {
            self.retired.pop_front();
        }
        self.drop_unused_inits();
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Sequence number the next segment gets.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    pub fn has_init(&self, id: u32) -> bool {
        id < self.next_init_id
    }

    pub fn timeline_end_ms(&self) -> Option<i64> {
        self.timeline_end_ms
    }

    fn drop_unused_inits(&mut self) {
        let oldest = self
            .retired
            .front()
            .or(self.segments.front())
            .map(|s| s.init_id);
        if let Some(oldest) = oldest {
            self.inits.retain(|id, _| *id >= oldest);
        }
    }

    pub fn position(&self) -> Position {
        Position {
            last_complete: self.segments.back().map(|s| s.msn),
            open_msn: self.open.as_ref().map_or(self.next_msn, |s| s.msn),
            open_parts: self.open.as_ref().map_or(0, |s| s.parts.len() as u32),
            ended: self.ended,
        }
    }

    /// How far this window's numbering got: the sequence number after its newest
    /// segment, and the discontinuities counted up to there (retired ones included).
    pub fn reach(&self) -> (u64, u64) {
        let listed = self.segments.iter().chain(&self.open);
        let discontinuities = listed.filter(|s| s.discontinuity).count() as u64;
        (self.next_msn, self.discontinuity_sequence + discontinuities)
    }

    pub fn media_sequence(&self) -> u64 {
        self.segments
            .front()
            .or(self.open.as_ref())
            .map_or(self.next_msn, |s| s.msn)
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// Complete segments in the playlist, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// Every segment still served (retired, listed, open), oldest first.
    pub fn held_segments(&self) -> impl Iterator<Item = &Segment> {
        self.retired.iter().chain(&self.segments).chain(&self.open)
    }

    pub fn open_segment(&self) -> Option<&Segment> {
        self.open.as_ref()
    }

    /// Codecs of the newest init segment.
    pub fn codecs(&self) -> Option<&Codecs> {
        self.current_init
            .and_then(|id| self.inits.get(&id))
            .map(|(_, c)| c)
    }

    pub fn init(&self, id: u32) -> Option<Bytes> {
        self.inits.get(&id).map(|(b, _)| b.clone())
    }

    fn find(&self, msn: u64) -> Option<&Segment> {
        fn in_list(q: &VecDeque<Segment>, msn: u64) -> Option<&Segment> {
            let first = q.front()?.msn;
            q.get(msn.checked_sub(first)? as usize)
        }
        in_list(&self.segments, msn)
            .or_else(|| in_list(&self.retired, msn))
            .or_else(|| self.open.as_ref().filter(|s| s.msn == msn))
    }

    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.find(msn)
            .filter(|s| !s.data.is_empty())
            .map(|s| s.data.clone())
    }

    pub fn part(&self, msn: u64, index: u32) -> Option<Bytes> {
        self.find(msn)?
            .parts
            .get(index as usize)
            .map(|p| p.data.clone())
    }

    /// Bytes of media held (segments, parts and inits), for memory accounting.
    pub fn media_bytes(&self) -> usize {
        let seg = |s: &Segment| {
            if s.data.is_empty() {
                s.parts.iter().map(|p| p.data.len()).sum()
            } else {
                s.data.len()
            }
        };
        self.segments.iter().map(seg).sum::<usize>()
            + self.retired.iter().map(seg).sum::<usize>()
            + self.open.as_ref().map_or(0, seg)
            + self.inits.values().map(|(b, _)| b.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fill_segment, window};

    fn add_segment(w: &mut Window, discontinuity: bool, parts: usize) {
        fill_segment(w, discontinuity, parts, true);
    }

    #[test]
    fn window_is_bounded_and_retired_segments_stay_downloadable() {
        let mut w = window(3);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        for _ in 0..10 {
            add_segment(&mut w, false, 10);
        }
        assert_eq!(w.media_sequence(), 7);
        assert_eq!(w.segments().count(), 3);
        assert!(w.segment(4).is_some(), "retired but still served");
        assert!(w.segment(3).is_none(), "released after a second window");
        assert_eq!(w.part(9, 3).unwrap(), Bytes::from(vec![3u8; 10]));
        assert_eq!(w.segment(9).unwrap().len(), 100);
        assert!(w.media_bytes() <= 6 * 100 + 4);
    }

    #[test]
    fn discontinuity_sequence_counts_tags_that_left() {
        let mut w = window(2);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        add_segment(&mut w, false, 1);
        add_segment(&mut w, true, 1);
        add_segment(&mut w, false, 1);
        assert_eq!(w.discontinuity_sequence(), 0);
        add_segment(&mut w, false, 1);
        assert_eq!(w.discontinuity_sequence(), 1);
    }

    #[test]
    fn reach_counts_every_discontinuity_up_to_the_newest_segment() {
        let mut w = window(2);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        add_segment(&mut w, false, 1);
        add_segment(&mut w, true, 1);
        assert_eq!(w.reach(), (2, 1));
        add_segment(&mut w, true, 1);
        add_segment(&mut w, false, 1);
        // The first discontinuity left the playlist; it is counted once, not twice.
        assert_eq!((w.discontinuity_sequence(), w.reach()), (1, (4, 2)));
    }

    #[test]
    fn an_empty_segment_gives_its_number_back() {
        let mut w = window(3);
        w.add_init(Bytes::from_static(b"init"), Codecs::default());
        add_segment(&mut w, false, 1);
        w.begin_segment(true, SystemTime::UNIX_EPOCH);
        w.end_segment();
        add_segment(&mut w, false, 1);
        let segs: Vec<_> = w.segments().map(|s| (s.msn, s.discontinuity)).collect();
        assert_eq!(segs, vec![(0, false), (1, true)]);
    }
}
