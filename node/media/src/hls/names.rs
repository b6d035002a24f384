//! URL names of init segments, segments and parts.
//!
//! Names depend only on the stream's own numbering, never on the viewer or the
//! node, so any cache or load balancer in front of castmesh sees one name per
//! object. They start with the stream's run id (random per stream instance): a
//! stream that is removed and published again restarts its numbering, and the
//! run id keeps `seg-0` of the new run from being served out of a cache holding
//! `seg-0` of the old one.

pub fn init(run: u32, id: u32) -> String {
    format!("init-{run:08x}-{id}.mp4")
}

pub fn segment(run: u32, msn: u64) -> String {
    format!("seg-{run:08x}-{msn}.m4s")
}

pub fn part(run: u32, msn: u64, index: u32) -> String {
    format!("part-{run:08x}-{msn}.{index}.m4s")
}

/// What a file name under `/hls/{stream}/` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaName {
    Init(u32),
    Segment(u64),
    Part(u64, u32),
}

/// Parses a file name into its run id and what it names.
pub fn parse(name: &str) -> Option<(u32, MediaName)> {
    let (kind, rest) = name.split_once('-')?;
    let (run, rest) = rest.split_once('-')?;
    if run.len() != 8 {
        return None;
    }
    let run = u32::from_str_radix(run, 16).ok()?;
    let named = match kind {
        "init" => MediaName::Init(rest.strip_suffix(".mp4")?.parse().ok()?),
        "seg" => MediaName::Segment(rest.strip_suffix(".m4s")?.parse().ok()?),
        "part" => {
            let (msn, index) = rest.strip_suffix(".m4s")?.split_once('.')?;
            MediaName::Part(msn.parse().ok()?, index.parse().ok()?)
        }
        _ => return None,
    };
    Some((run, named))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let run = 0xdead_beef;
        assert_eq!(parse(&init(run, 3)), Some((run, MediaName::Init(3))));
        assert_eq!(
            parse(&segment(run, 42)),
            Some((run, MediaName::Segment(42)))
        );
        assert_eq!(
            parse(&part(run, 42, 7)),
            Some((run, MediaName::Part(42, 7)))
        );
        assert_eq!(segment(7, 1), "seg-00000007-1.m4s");
        for bad in [
            "seg-.m4s",
            "seg-00000007-.m4s",
            "seg-7-1.m4s",
            "part-00000007-1.m4s",
            "init-0000000x-1.mp4",
            "../etc",
            "seg-00000007-1.ts",
            "part-00000007-1.-2.m4s",
            "other-00000007-1.m4s",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
