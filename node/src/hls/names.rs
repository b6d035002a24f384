//! URL names of init segments, segments and parts.
//!
//! Names depend only on the stream's own numbering, never on the viewer or the
//! node, so any cache or load balancer in front of castmesh sees one name per
//! object.

pub fn init(id: u32) -> String {
    format!("init-{id}.mp4")
}

pub fn segment(msn: u64) -> String {
    format!("seg-{msn}.m4s")
}

pub fn part(msn: u64, index: u32) -> String {
    format!("part-{msn}.{index}.m4s")
}

/// What a file name under `/hls/{stream}/` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaName {
    Init(u32),
    Segment(u64),
    Part(u64, u32),
}

pub fn parse(name: &str) -> Option<MediaName> {
    if let Some(id) = name
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        return id.parse().ok().map(MediaName::Init);
    }
    let body = name.strip_suffix(".m4s")?;
    if let Some(msn) = body.strip_prefix("seg-") {
        return msn.parse().ok().map(MediaName::Segment);
    }
    let (msn, index) = body.strip_prefix("part-")?.split_once('.')?;
    Some(MediaName::Part(msn.parse().ok()?, index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse(&init(3)), Some(MediaName::Init(3)));
        assert_eq!(parse(&segment(42)), Some(MediaName::Segment(42)));
        assert_eq!(parse(&part(42, 7)), Some(MediaName::Part(42, 7)));
        for bad in [
            "seg-.m4s",
            "part-1.m4s",
            "init-x.mp4",
            "../etc",
            "seg-1.ts",
            "part-1.-2.m4s",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
