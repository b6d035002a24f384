//! A checker for the live/LL-HLS playlist rules in `../shared/notes/hls-rules.md`
//! (RFC 8216bis, Apple's authoring spec). It is stateful: rules about how a
//! playlist may change (media sequence, stable names and durations,
//! discontinuity sequence) are checked across successive polls.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq)]
pub struct PartLine {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub uri: String,
    pub duration: f64,
    pub discontinuity: bool,
    pub program_date_time: Option<String>,
    pub map: Option<String>,
    pub parts: Vec<PartLine>,
}

#[derive(Debug, Clone, Default)]
pub struct Playlist {
    pub target_duration: Option<u64>,
    pub part_target: Option<f64>,
    pub server_control: Option<String>,
    pub media_sequence: Option<u64>,
    pub discontinuity_sequence: Option<u64>,
    pub segments: Vec<Segment>,
    /// Parts of the segment still being produced.
    pub open_parts: Vec<PartLine>,
    pub open_discontinuity: bool,
    /// The open segment's EXT-X-PROGRAM-DATE-TIME (before its parts).
    pub open_program_date_time: Option<String>,
    pub preload_hint: Option<String>,
    pub ended: bool,
    header_counts: HashMap<&'static str, usize>,
    header_after_media: Vec<String>,
    first_line: String,
}

impl Playlist {
    /// Media sequence number of the open segment (the one `open_parts` belong to).
    pub fn open_msn(&self) -> u64 {
        self.media_sequence.unwrap_or(0) + self.segments.len() as u64
    }

    pub fn last_part(&self) -> Option<(u64, usize)> {
        if !self.open_parts.is_empty() {
            return Some((self.open_msn(), self.open_parts.len() - 1));
        }
        self.segments
            .last()
            .filter(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() - 1))
    }

    /// Every part URI listed, with its (msn, index) and when it ends in wall-clock
    /// time: its segment's EXT-X-PROGRAM-DATE-TIME plus the durations of the parts up
    /// to and including it (`None` where the segment has no date).
    pub fn dated_parts(&self) -> Vec<((u64, usize), String, Option<SystemTime>)> {
        let segments = self
            .segments
            .iter()
            .map(|s| (s.msn, s.program_date_time.as_ref(), &s.parts));
        let open = (
            self.open_msn(),
            self.open_program_date_time.as_ref(),
            &self.open_parts,
        );
        let mut out = Vec::new();
        for (msn, date, parts) in segments.chain(std::iter::once(open)) {
            let start = date.and_then(|d| humantime::parse_rfc3339(d).ok());
            let mut elapsed = 0.0;
            for (i, p) in parts.iter().enumerate() {
                elapsed += p.duration;
                let end = start.and_then(|s| Some(s + Duration::try_from_secs_f64(elapsed).ok()?));
                out.push(((msn, i), p.uri.clone(), end));
            }
        }
        out
    }

    /// Every part URI listed, with its (msn, index).
    pub fn part_uris(&self) -> Vec<((u64, usize), String)> {
        let parts = self.dated_parts().into_iter();
        parts.map(|(id, uri, _)| (id, uri)).collect()
    }
}

const HEADERS: [&str; 6] = [
    "#EXT-X-VERSION",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-PART-INF",
    "#EXT-X-SERVER-CONTROL",
];

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let body = line.split_once(':')?.1;
    body.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

pub fn parse(text: &str) -> Playlist {
    let mut p = Playlist {
        first_line: text.lines().next().unwrap_or_default().to_string(),
        ..Default::default()
    };
    let mut discontinuity = false;
    let mut pdt = None;
    let mut map = None;
    let mut parts = Vec::new();
    let mut extinf: Option<f64> = None;
    let mut seen_media = false;
    for line in text.lines() {
        if let Some(h) = HEADERS.iter().find(|h| line.starts_with(&format!("{h}:"))) {
            *p.header_counts.entry(h).or_default() += 1;
            if seen_media {
                p.header_after_media.push(line.to_string());
            }
        }
        let value = line.split_once(':').map(|(_, v)| v);
        if line.starts_with("#EXT-X-TARGETDURATION:") {
            p.target_duration = value.and_then(|v| v.parse().ok());
        } else if line.starts_with("#EXT-X-PART-INF:") {
            p.part_target = attr(line, "PART-TARGET").and_then(|v| v.parse().ok());
        } else if line.starts_with("#EXT-X-SERVER-CONTROL:") {
            p.server_control = value.map(str::to_string);
        } else if line.starts_with("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = value.and_then(|v| v.parse().ok());
        } else if line.starts_with("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = value.and_then(|v| v.parse().ok());
        } else if line == "#EXT-X-DISCONTINUITY" {
            seen_media = true;
            discontinuity = true;
        } else if line.starts_with("#EXT-X-MAP:") {
            seen_media = true;
            map = attr(line, "URI").map(str::to_string);
        } else if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            seen_media = true;
            pdt = value.map(str::to_string);
        } else if line.starts_with("#EXT-X-PART:") {
            seen_media = true;
            parts.push(PartLine {
                uri: attr(line, "URI").unwrap_or_default().to_string(),
                duration: attr(line, "DURATION")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
                independent: attr(line, "INDEPENDENT") == Some("YES"),
            });
        } else if line.starts_with("#EXTINF:") {
            seen_media = true;
            extinf = value
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse().ok());
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = Some(line.to_string());
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let msn = p.media_sequence.unwrap_or(0) + p.segments.len() as u64;
            p.segments.push(Segment {
                msn,
                uri: line.to_string(),
                duration: extinf.take().unwrap_or(f64::NAN),
                discontinuity: std::mem::take(&mut discontinuity),
                program_date_time: pdt.take(),
                map: map.clone(),
                parts: std::mem::take(&mut parts),
            });
        }
    }
    p.open_parts = parts;
    p.open_discontinuity = discontinuity;
    p.open_program_date_time = pdt;
    p
}

/// The variant a multivariant playlist names.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub attributes: HashMap<String, String>,
    pub uri: String,
}

/// Attribute list of a tag line, honouring quoted values (CODECS contains commas).
pub fn attributes(line: &str) -> HashMap<String, String> {
    let body = line.split_once(':').map_or("", |(_, b)| b);
    let mut out = HashMap::new();
    let (mut key, mut value, mut in_value, mut quoted) =
        (String::new(), String::new(), false, false);
    for c in body.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            '=' if !in_value => in_value = true,
            ',' if !quoted => {
                out.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                in_value = false;
            }
            _ if in_value => value.push(c),
            _ => key.push(c),
        }
    }
    out
}

/// Rule 15: the variant carries BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION and
/// FRAME-RATE. Returns the variant and the violations.
pub fn check_multivariant(text: &str) -> (Option<Variant>, Vec<String>) {
    let mut v = Vec::new();
    if !text.starts_with("#EXTM3U\n") {
        v.push("first line is not #EXTM3U".into());
    }
    let mut lines = text.lines();
    let mut variant = None;
    while let Some(line) = lines.next() {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            let uri = lines.next().unwrap_or_default().to_string();
            variant = Some(Variant {
                attributes: attributes(line),
                uri,
            });
        }
    }
    match &variant {
        None => v.push("no EXT-X-STREAM-INF".into()),
        Some(var) => {
            for a in [
                "BANDWIDTH",
                "AVERAGE-BANDWIDTH",
                "CODECS",
                "RESOLUTION",
                "FRAME-RATE",
            ] {
                if !var.attributes.contains_key(a) {
                    v.push(format!("EXT-X-STREAM-INF lacks {a}"));
                }
            }
            if var.uri.is_empty() || var.uri.starts_with('#') {
                v.push("EXT-X-STREAM-INF is not followed by a URI".into());
            }
        }
    }
    (variant, v)
}

/// Checks every poll of one stream's playlist; remembers what earlier polls said.
#[derive(Default)]
pub struct Checker {
    pub polls: usize,
    target_duration: Option<u64>,
    part_target: Option<f64>,
    media_sequence: Option<u64>,
    discontinuity_sequence: Option<u64>,
    segments: HashMap<u64, (String, String, bool, Option<String>)>,
    parts: HashMap<(u64, usize), (String, String)>,
}

impl Checker {
    /// Parses and checks one poll; returns the violations found (empty when valid).
    pub fn check(&mut self, text: &str) -> (Playlist, Vec<String>) {
        let p = parse(text);
        let mut v = Vec::new();
        self.polls += 1;
        if p.first_line != "#EXTM3U" {
            v.push("first line is not #EXTM3U".into());
        }
        for h in HEADERS {
            let n = p.header_counts.get(h).copied().unwrap_or(0);
            if n != 1 {
                v.push(format!("{h} appears {n} times (must be exactly once)"));
            }
        }
        if !p.header_after_media.is_empty() {
            v.push(format!(
                "header tags after the first segment: {:?}",
                p.header_after_media
            ));
        }
        // Rule 1: constant target duration; no segment above it.
        let td = p.target_duration.unwrap_or(0);
        if let Some(prev) = self.target_duration
            && prev != td
        {
            v.push(format!("EXT-X-TARGETDURATION changed from {prev} to {td}"));
        }
        self.target_duration = Some(td);
        for s in &p.segments {
            if s.duration.round() as u64 > td {
                v.push(format!(
                    "segment {} lasts {} s, above the target duration {td}",
                    s.msn, s.duration
                ));
            }
        }
        // Rule 2: media sequence never decreases; names and durations are stable.
        let ms = p.media_sequence.unwrap_or(0);
        if let Some(prev) = self.media_sequence
            && ms < prev
        {
            v.push(format!(
                "EXT-X-MEDIA-SEQUENCE went back from {prev} to {ms}"
            ));
        }
        // Rule 4: the discontinuity sequence counts discontinuities that left.
        let ds = p.discontinuity_sequence.unwrap_or(0);
        if let (Some(prev_ms), Some(prev_ds)) = (self.media_sequence, self.discontinuity_sequence) {
            if ds < prev_ds {
                v.push(format!(
                    "EXT-X-DISCONTINUITY-SEQUENCE went back from {prev_ds} to {ds}"
                ));
            }
            let left: Option<Vec<bool>> = (prev_ms..ms)
                .map(|m| self.segments.get(&m).map(|s| s.2))
                .collect();
            if let Some(left) = left {
                let expected = prev_ds + left.iter().filter(|d| **d).count() as u64;
                if ds != expected {
                    v.push(format!(
                        "EXT-X-DISCONTINUITY-SEQUENCE is {ds}, expected {expected}"
                    ));
                }
            }
        }
        self.media_sequence = Some(ms);
        self.discontinuity_sequence = Some(ds);
        for s in &p.segments {
            let now = (
                s.uri.clone(),
                format!("{:.3}", s.duration),
                s.discontinuity,
                s.program_date_time.clone(),
            );
            match self.segments.get(&s.msn) {
                Some(before) if *before != now => v.push(format!(
                    "segment {} changed between polls: {before:?} → {now:?}",
                    s.msn
                )),
                _ => {
                    self.segments.insert(s.msn, now);
                }
            }
            // Rule 5: program date time on every segment.
            if s.program_date_time.is_none() {
                v.push(format!("segment {} has no EXT-X-PROGRAM-DATE-TIME", s.msn));
            }
            // Rule 6: an init segment is named.
            if s.map.is_none() {
                v.push(format!("segment {} has no EXT-X-MAP before it", s.msn));
            }
        }
        // Rule 3: a full window covers at least three target durations.
        let window: f64 = p.segments.iter().map(|s| s.duration).sum();
        if ms > 0 && !p.ended && window < 3.0 * td as f64 {
            v.push(format!(
                "live window is {window:.3} s, under 3 target durations"
            ));
        }
        // Rules 9-11: LL-HLS.
        let pt = p.part_target.unwrap_or(0.0);
        if let Some(prev) = self.part_target
            && prev != pt
        {
            v.push(format!("PART-TARGET changed from {prev} to {pt}"));
        }
        self.part_target = Some(pt);
        let sc = p.server_control.clone().unwrap_or_default();
        if !sc.contains("CAN-BLOCK-RELOAD=YES") {
            v.push("EXT-X-SERVER-CONTROL lacks CAN-BLOCK-RELOAD=YES".into());
        }
        let hold_back: f64 = attr(&format!("X:{sc}"), "PART-HOLD-BACK")
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        if hold_back + 1e-9 < 3.0 * pt {
            v.push(format!(
                "PART-HOLD-BACK {hold_back} is under 3 × PART-TARGET {pt}"
            ));
        }
        let mut all_parts: Vec<(u64, &Vec<PartLine>, Option<f64>)> = p
            .segments
            .iter()
            .map(|s| (s.msn, &s.parts, Some(s.duration)))
            .collect();
        all_parts.push((p.open_msn(), &p.open_parts, None));
        for (msn, parts, extinf) in all_parts {
            for (i, part) in parts.iter().enumerate() {
                if part.duration > pt + 0.0005 {
                    v.push(format!(
                        "part {msn}.{i} lasts {} s, above PART-TARGET {pt}",
                        part.duration
                    ));
                }
                let now = (part.uri.clone(), format!("{:.3}", part.duration));
                match self.parts.get(&(msn, i)) {
                    Some(before) if *before != now => v.push(format!(
                        "part {msn}.{i} changed between polls: {before:?} → {now:?}"
                    )),
                    _ => {
                        self.parts.insert((msn, i), now);
                    }
                }
            }
            if let Some(first) = parts.first()
                && !first.independent
            {
                v.push(format!(
                    "first part of segment {msn} is not INDEPENDENT=YES"
                ));
            }
            if let Some(d) = extinf
                && !parts.is_empty()
            {
                let sum: f64 = parts.iter().map(|p| p.duration).sum();
                if (sum - d).abs() > 0.001 * parts.len() as f64 + 0.001 {
                    v.push(format!(
                        "parts of segment {msn} add up to {sum:.3} s, EXTINF says {d:.3}"
                    ));
                }
            }
        }
        if !p.ended
            && !p
                .preload_hint
                .as_deref()
                .is_some_and(|h| h.contains("TYPE=PART"))
        {
            v.push("live playlist without EXT-X-PRELOAD-HINT:TYPE=PART".into());
        }
        if p.ended && p.preload_hint.is_some() {
            v.push("ended playlist still has a preload hint".into());
        }
        (p, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n#EXT-X-PART-INF:PART-TARGET=0.200\n\
#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-MAP:URI=\"init-0.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n#EXTINF:2.000,\nseg-4.m4s\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z\n#EXTINF:2.000,\nseg-5.m4s\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:04.000Z\n#EXTINF:2.000,\nseg-6.m4s\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.000Z\n\
#EXT-X-PART:DURATION=0.200,URI=\"part-7.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-7.1.m4s\"\n";

    #[test]
    fn multivariant_attributes_with_quoted_commas() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5,AVERAGE-BANDWIDTH=4,\
CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\nmedia.m3u8\n";
        let (variant, v) = check_multivariant(text);
        assert!(v.is_empty(), "{v:?}");
        let variant = variant.unwrap();
        assert_eq!(variant.attributes["CODECS"], "avc1.64001f,mp4a.40.2");
        assert_eq!(variant.uri, "media.m3u8");
        let (_, v) = check_multivariant(&text.replace(",RESOLUTION=1280x720", ""));
        assert!(v.iter().any(|m| m.contains("RESOLUTION")), "{v:?}");
    }

    #[test]
    fn accepts_a_valid_playlist() {
        let mut c = Checker::default();
        let (p, v) = c.check(GOOD);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(p.open_msn(), 7);
        assert_eq!(p.last_part(), Some((7, 0)));
    }

    #[test]
    fn parts_end_at_their_segment_date_plus_durations() {
        let text = GOOD.replace(
            "#EXTINF:2.000,\nseg-6.m4s",
            "#EXT-X-PART:DURATION=0.500,URI=\"p6.0\"\n#EXT-X-PART:DURATION=1.500,URI=\"p6.1\"\n\
#EXTINF:2.000,\nseg-6.m4s",
        );
        let date = |s: &str| humantime::parse_rfc3339(s).unwrap();
        let parts = parse(&text).dated_parts();
        let expected = [
            ((6, 0), "p6.0", date("2026-01-01T00:00:04.500Z")),
            ((6, 1), "p6.1", date("2026-01-01T00:00:06.000Z")),
            ((7, 0), "part-7.0.m4s", date("2026-01-01T00:00:06.200Z")),
        ];
        let got: Vec<_> = parts
            .iter()
            .map(|(id, uri, end)| (*id, uri.as_str(), end.unwrap()))
            .collect();
        assert_eq!(got, expected);
        // Without a date, no end.
        let undated = text.replace("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.000Z\n", "");
        assert_eq!(parse(&undated).dated_parts()[2].2, None);
    }

    /// The checker must catch each violation it claims to check.
    #[test]
    fn catches_violations() {
        let cases = [
            (
                GOOD.replace("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:1"),
                "above the target",
            ),
            (
                GOOD.replace("PART-HOLD-BACK=0.600", "PART-HOLD-BACK=0.400"),
                "PART-HOLD-BACK",
            ),
            (
                GOOD.replace("DURATION=0.200", "DURATION=0.300"),
                "above PART-TARGET",
            ),
            (GOOD.replace(",INDEPENDENT=YES", ""), "INDEPENDENT"),
            (
                GOOD.replace("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-7.1.m4s\"\n", ""),
                "PRELOAD-HINT",
            ),
            (
                GOOD.replace("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z\n", ""),
                "PROGRAM-DATE-TIME",
            ),
            (
                GOOD.replace("#EXT-X-MAP:URI=\"init-0.mp4\"\n", ""),
                "EXT-X-MAP",
            ),
            (
                GOOD.replace(
                    "#EXTINF:2.000,\nseg-6.m4s\n",
                    "#EXTINF:2.000,\nseg-6.m4s\n#EXT-X-MEDIA-SEQUENCE:4\n",
                ),
                "appears 2 times",
            ),
        ];
        for (text, expected) in cases {
            let (_, v) = Checker::default().check(&text);
            assert!(v.iter().any(|m| m.contains(expected)), "{expected}: {v:?}");
        }
        // Across polls: the media sequence going back, and a changed segment.
        let mut c = Checker::default();
        c.check(GOOD);
        let (_, v) = c.check(&GOOD.replace("MEDIA-SEQUENCE:4", "MEDIA-SEQUENCE:3"));
        assert!(v.iter().any(|m| m.contains("went back")), "{v:?}");
        let mut c = Checker::default();
        c.check(GOOD);
        let (_, v) = c.check(&GOOD.replace("seg-5.m4s", "seg-5b.m4s"));
        assert!(
            v.iter().any(|m| m.contains("changed between polls")),
            "{v:?}"
        );
    }
}
