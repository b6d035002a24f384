//! What a viewer reads from a castmesh media playlist: enough to follow the live edge
//! with blocking reloads and to check the stream's numbering.

/// A part or segment file name: `part-{run}-{msn}.{i}.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartName {
    pub run: u32,
    pub msn: u64,
    pub index: u32,
}

impl PartName {
    pub fn parse(uri: &str) -> Option<PartName> {
        let rest = uri.strip_prefix("part-")?.strip_suffix(".m4s")?;
        let (run, rest) = rest.split_once('-')?;
        let (msn, index) = rest.split_once('.')?;
        Some(PartName {
            run: u32::from_str_radix(run, 16).ok()?,
            msn: msn.parse().ok()?,
            index: index.parse().ok()?,
        })
    }

    pub fn uri(&self) -> String {
        format!("part-{:08x}-{}.{}.m4s", self.run, self.msn, self.index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub msn: u64,
    pub discontinuity: bool,
    /// The parts listed for it (a playlist lists them only near the live edge).
    pub parts: Vec<PartName>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Playlist {
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<Segment>,
    pub ended: bool,
    /// The part the server will publish next (`EXT-X-PRELOAD-HINT`).
    pub next: Option<PartName>,
}

pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut p = Playlist::default();
    let mut discontinuity = false;
    let mut parts = Vec::new();
    let mut msn = None;
    let quoted_uri = |line: &str| -> Option<PartName> {
        let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
        PartName::parse(uri)
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().map_err(|_| format!("bad {line}"))?;
            msn = Some(p.media_sequence);
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().map_err(|_| format!("bad {line}"))?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line.starts_with("#EXT-X-PART:") {
            parts.push(quoted_uri(line).ok_or_else(|| format!("bad {line}"))?);
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            p.next = quoted_uri(line);
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if line.starts_with("seg-") {
            let n = msn.ok_or("segment before EXT-X-MEDIA-SEQUENCE")?;
            p.segments.push(Segment {
                msn: n,
                discontinuity: std::mem::take(&mut discontinuity),
                parts: std::mem::take(&mut parts),
            });
            msn = Some(n + 1);
        }
    }
    if !parts.is_empty() {
        // The open segment: parts listed, no segment line yet.
        let n = msn.ok_or("part before EXT-X-MEDIA-SEQUENCE")?;
        p.segments.push(Segment {
            msn: n,
            discontinuity,
            parts,
        });
    }
    for s in &p.segments {
        if let Some(bad) = s.parts.iter().find(|part| part.msn != s.msn) {
            return Err(format!("part {} listed under segment {}", bad.uri(), s.msn));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbering_parts_and_the_open_segment() {
        let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part-0000abcd-7.0.m4s\",INDEPENDENT=YES\n\
            #EXTINF:2.000,\nseg-0000abcd-7.m4s\n#EXT-X-DISCONTINUITY\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part-0000abcd-8.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-0000abcd-8.1.m4s\"\n";
        let p = parse(text).unwrap();
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (7, 1));
        assert_eq!(p.segments.len(), 2);
        assert!(!p.segments[0].discontinuity && p.segments[1].discontinuity);
        assert_eq!(p.segments[1].parts[0].uri(), "part-0000abcd-8.0.m4s");
        assert_eq!(p.next.unwrap().index, 1);
    }
}
