//! Renders a [`Window`] as playlists (RFC 8216bis): the LL-HLS media playlist, and
//! the multivariant playlist that names it with its codecs, resolution and bandwidth;
//! and the names (URIs) of the init segments, segments and parts they list.
//!
//! Pure functions of the window: the same window always renders the same text.

use std::fmt::Write;

use super::window::{Segment, Window};

/// Parts are listed for segments this many target durations behind the live edge
/// (hls-rules 12); older segments are listed whole.
const PART_LISTING_TARGETS: f64 = 3.0;

/// File name of the media playlist, relative to the multivariant `index.m3u8`.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";

/// The multivariant playlist: one variant, described so players can decide before
/// loading media (hls-rules 15). `None` until the stream has an init segment.
pub fn render_multivariant(w: &Window) -> Option<String> {
    let codecs = w.codecs()?;
    let (peak, average) = bandwidth(w);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},CODECS=\"{}\"",
        codecs.codec_list()
    );
    if let Some(v) = &codecs.video {
        let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
        if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
    }
    let _ = writeln!(out, "\n{MEDIA_PLAYLIST}");
    Some(out)
}

/// Peak and average bits per second over the complete segments in the window (or
/// the parts so far, before the first segment completes).
fn bandwidth(w: &Window) -> (u64, u64) {
    let rate = |bytes: usize, ms: f64| (bytes as f64 * 8000.0 / ms.max(1.0)) as u64;
    let segments: Vec<(usize, f64)> = w
        .segments()
        .map(|s| (s.data.len(), s.duration_ms))
        .chain(w.open_segment().filter(|s| !s.parts.is_empty()).map(|s| {
            (
                s.parts.iter().map(|p| p.data.len()).sum::<usize>(),
                s.duration_ms,
            )
        }))
        .collect();
    let peak = segments
        .iter()
        .map(|(b, ms)| rate(*b, *ms))
        .max()
        .unwrap_or(0);
    let (bytes, ms) = segments
        .iter()
        .fold((0, 0.0), |(b, m), (sb, sm)| (b + sb, m + sm));
    (peak.max(1), rate(bytes, ms).max(1))
}

pub fn render(w: &Window) -> String {
    let cfg = w.config();
    let part_target_s = f64::from(cfg.part_target_ms) / 1000.0;
    let mut out = String::with_capacity(4096);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", cfg.target_duration_s);
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
        3.0 * part_target_s
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target_s:.3}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", w.media_sequence());
    let _ = writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        w.discontinuity_sequence()
    );

    // Which complete segments still get their parts listed: those ending within
    // PART_LISTING_TARGETS target durations of the live edge.
    let horizon_ms = PART_LISTING_TARGETS * f64::from(cfg.target_duration_s) * 1000.0;
    let mut behind_edge_ms = w.open_segment().map_or(0.0, |s| s.duration_ms);
    let complete: Vec<&Segment> = w.segments().collect();
    let mut list_parts = vec![false; complete.len()];
    for (i, seg) in complete.iter().enumerate().rev() {
        list_parts[i] = behind_edge_ms < horizon_ms;
        behind_edge_ms += seg.duration_ms;
    }

    let mut current_init = None;
    for (seg, parts) in complete.iter().zip(list_parts) {
        segment_header(&mut out, w.run(), seg, &mut current_init);
        if parts {
            part_lines(&mut out, w.run(), seg);
        }
        let _ = writeln!(
            out,
            "#EXTINF:{:.3},\n{}",
            seg.duration_ms / 1000.0,
            segment_name(w.run(), seg.msn)
        );
    }
    if let Some(open) = w.open_segment().filter(|s| !s.parts.is_empty()) {
        segment_header(&mut out, w.run(), open, &mut current_init);
        part_lines(&mut out, w.run(), open);
    }
    if w.is_ended() {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        let pos = w.position();
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_name(w.run(), pos.open_msn, pos.open_parts)
        );
    }
    out
}

fn segment_header(out: &mut String, run: u32, seg: &Segment, current_init: &mut Option<u32>) {
    if seg.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *current_init != Some(seg.init_id) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_name(run, seg.init_id));
        *current_init = Some(seg.init_id);
    }
    let _ = writeln!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        humantime::format_rfc3339_millis(seg.program_date_time)
    );
}

fn part_lines(out: &mut String, run: u32, seg: &Segment) {
    for (i, part) in seg.parts.iter().enumerate() {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={:.3},URI=\"{}\"",
            part.duration_ms / 1000.0,
            part_name(run, seg.msn, i as u32)
        );
        out.push_str(if part.independent {
            ",INDEPENDENT=YES\n"
        } else {
            "\n"
        });
    }
}

// URL names of init segments, segments and parts.
//
// Names depend only on the stream's own numbering, never on the viewer or the
// node, so any cache or load balancer in front of castmesh sees one name per
// object. They start with the stream's run id (random per stream instance): a
// stream that is removed and published again restarts its numbering, and the
// run id keeps `seg-0` of the new run from being served out of a cache holding
// `seg-0` of the old one.

pub fn init_name(run: u32, id: u32) -> String {
    format!("init-{run:08x}-{id}.mp4")
}

pub fn segment_name(run: u32, msn: u64) -> String {
    format!("seg-{run:08x}-{msn}.m4s")
}

pub fn part_name(run: u32, msn: u64, index: u32) -> String {
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
pub fn parse_name(name: &str) -> Option<(u32, MediaName)> {
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
    use crate::Codecs;
    use crate::hls::window::WindowConfig;
    use crate::testing::fill_segment;
    use bytes::Bytes;

    fn w() -> Window {
        let mut w = Window::new(
            WindowConfig {
                target_duration_s: 2,
                part_target_ms: 200,
                segments: 6,
            },
            0xab,
        );
        w.add_init(Bytes::from_static(b"i"), Codecs::default());
        w
    }

    #[test]
    fn live_playlist_has_parts_hint_and_headers_once() {
        let mut w = w();
        for _ in 0..8 {
            fill_segment(&mut w, false, 10, true);
        }
        fill_segment(&mut w, false, 3, false);
        let text = render(&w);
        assert!(text.starts_with("#EXTM3U\n"));
        assert_eq!(text.matches("#EXT-X-TARGETDURATION:2").count(), 1);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"));
        assert!(text.contains("PART-HOLD-BACK=0.600"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.200"));
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"part-000000ab-8.2.m4s\"\n"));
        assert!(text.contains("URI=\"part-000000ab-8.0.m4s\",INDEPENDENT=YES"));
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-000000ab-8.3.m4s\"\n"));
        // Parts only for segments within three target durations of the edge.
        assert!(!text.contains("part-000000ab-4.0.m4s"));
        assert!(text.contains("part-000000ab-5.0.m4s"));
        assert!(text.contains("#EXTINF:2.000,\nseg-000000ab-7.m4s\n"));
    }

    #[test]
    fn multivariant_names_codecs_resolution_and_bandwidth() {
        let mut w = Window::new(
            WindowConfig {
                target_duration_s: 2,
                part_target_ms: 200,
                segments: 6,
            },
            1,
        );
        assert_eq!(render_multivariant(&w), None, "no init yet");
        let video = crate::VideoConfig {
            profile: 100,
            compatibility: 0,
            level: 31,
            nal_length_size: 4,
            sps: vec![],
            pps: vec![],
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
        };
        let codecs = Codecs {
            video: Some(std::sync::Arc::new(video)),
            audio: None,
        };
        w.add_init(Bytes::from_static(b"i"), codecs);
        fill_segment(&mut w, false, 10, true);
        let text = render_multivariant(&w).unwrap();
        // 10 parts of 10 bytes in 2 s: 400 bit/s.
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=400,AVERAGE-BANDWIDTH=400,\
CODECS=\"avc1.64001f\",RESOLUTION=1280x720,FRAME-RATE=30.000\nmedia.m3u8\n"
        );
    }

    #[test]
    fn ended_playlist_has_endlist_and_no_hint() {
        let mut w = w();
        fill_segment(&mut w, false, 10, true);
        fill_segment(&mut w, true, 10, false);
        w.end_stream();
        let text = render(&w);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT"));
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    }

    #[test]
    fn names_round_trip() {
        let run = 0xdead_beef;
        assert_eq!(
            parse_name(&init_name(run, 3)),
            Some((run, MediaName::Init(3)))
        );
        assert_eq!(
            parse_name(&segment_name(run, 42)),
            Some((run, MediaName::Segment(42)))
        );
        assert_eq!(
            parse_name(&part_name(run, 42, 7)),
            Some((run, MediaName::Part(42, 7)))
        );
        assert_eq!(segment_name(7, 1), "seg-00000007-1.m4s");
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
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
