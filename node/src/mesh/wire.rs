//! Window events and replays to and from their protobuf form (`mesh.v1`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use castmesh_proto::mesh::v1 as pb;
use pb::window_event::Kind;

use castmesh_media::hls::window::{Part, Replay, WindowConfig, WindowEvent};
use castmesh_media::{AudioConfig, Codecs, VideoConfig};

/// Bounds on a peer's window config (far above any sensible setting).
const MAX_TARGET_DURATION_S: u32 = 60;
const MAX_PART_TARGET_MS: u32 = 10_000;
const MAX_WINDOW_SEGMENTS: u32 = 100;

pub fn event_to_wire(event: &WindowEvent) -> pb::WindowEvent {
    let kind = match event {
        WindowEvent::Init { id, bytes, codecs } => Kind::Init(pb::Init {
            id: *id,
            data: bytes.clone(),
            codecs: Some(codecs_to_wire(codecs)),
        }),
        WindowEvent::BeginSegment {
            msn,
            discontinuity,
            program_date_time,
        } => Kind::BeginSegment(pb::BeginSegment {
            msn: *msn,
            discontinuity: *discontinuity,
            program_date_time_ms: program_date_time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }),
        WindowEvent::Part {
            msn,
            index,
            part,
            timeline_end_ms,
        } => Kind::Part(pb::Part {
            msn: *msn,
            index: *index,
            duration_ms: part.duration_ms,
            independent: part.independent,
            data: part.data.clone(),
            timeline_end_ms: *timeline_end_ms,
        }),
        WindowEvent::EndSegment { msn } => Kind::EndSegment(pb::EndSegment { msn: *msn }),
        WindowEvent::EndStream => Kind::EndStream(pb::EndStream {}),
    };
    pb::WindowEvent { kind: Some(kind) }
}

pub fn event_from_wire(event: pb::WindowEvent) -> anyhow::Result<WindowEvent> {
    Ok(match event.kind.context("window event without a kind")? {
        Kind::Init(i) => WindowEvent::Init {
            id: i.id,
            bytes: i.data,
            codecs: codecs_from_wire(i.codecs.unwrap_or_default()),
        },
        Kind::BeginSegment(b) => WindowEvent::BeginSegment {
            msn: b.msn,
            discontinuity: b.discontinuity,
            program_date_time: UNIX_EPOCH
                + Duration::from_millis(b.program_date_time_ms.max(0) as u64),
        },
        Kind::Part(p) => {
            anyhow::ensure!(
                p.duration_ms.is_finite() && p.duration_ms >= 0.0,
                "part {}.{} with duration {}",
                p.msn,
                p.index,
                p.duration_ms
            );
            WindowEvent::Part {
                msn: p.msn,
                index: p.index,
                part: Part {
                    duration_ms: p.duration_ms,
                    independent: p.independent,
                    data: p.data,
                },
                timeline_end_ms: p.timeline_end_ms,
            }
        }
        Kind::EndSegment(e) => WindowEvent::EndSegment { msn: e.msn },
        Kind::EndStream(_) => WindowEvent::EndStream,
    })
}

/// The start of a replay: everything but its events (`handed_over_epoch`: see
/// `Subscribed` in mesh.proto).
pub fn subscribed(replay: &Replay, handed_over_epoch: u64) -> pb::Subscribed {
    pb::Subscribed {
        run: replay.run,
        config: Some(pb::WindowConfig {
            target_duration_s: replay.config.target_duration_s,
            part_target_ms: replay.config.part_target_ms,
            segments: replay.config.segments as u32,
        }),
        next_msn: replay.next_msn,
        discontinuity_sequence: replay.discontinuity_sequence,
        handed_over_epoch,
    }
}

/// A replay to be filled with the events that follow `Subscribed`.
pub fn replay_from_wire(s: pb::Subscribed) -> anyhow::Result<Replay> {
    let c = s
        .config
        .context("subscription answer without a window config")?;
    // A peer's config sizes this node's memory: only what a node could be configured
    // with is accepted.
    anyhow::ensure!(
        (1..=MAX_TARGET_DURATION_S).contains(&c.target_duration_s)
            && (1..=MAX_PART_TARGET_MS).contains(&c.part_target_ms)
            && (1..=MAX_WINDOW_SEGMENTS).contains(&c.segments),
        "subscription answer with an implausible window config {c:?}"
    );
    Ok(Replay {
        run: s.run,
        config: WindowConfig {
            target_duration_s: c.target_duration_s,
            part_target_ms: c.part_target_ms,
            segments: c.segments as usize,
        },
        next_msn: s.next_msn,
        discontinuity_sequence: s.discontinuity_sequence,
        events: Vec::new(),
    })
}

fn codecs_to_wire(c: &Codecs) -> pb::Codecs {
    pb::Codecs {
        video: c.video.as_deref().map(|v| pb::Video {
            profile: v.profile.into(),
            compatibility: v.compatibility.into(),
            level: v.level.into(),
            nal_length_size: v.nal_length_size.into(),
            sps: v.sps.clone(),
            pps: v.pps.clone(),
            width: v.width,
            height: v.height,
            frame_rate: v.frame_rate,
        }),
        audio: c.audio.as_deref().map(|a| pb::Audio {
            asc: a.asc.clone(),
            object_type: a.object_type.into(),
            sample_rate: a.sample_rate,
            channels: a.channels.into(),
        }),
    }
}

fn codecs_from_wire(c: pb::Codecs) -> Codecs {
    // Byte-sized fields travel as uint32; a peer sending more is clamped, not trusted.
    let byte = |v: u32| v.min(255) as u8;
    Codecs {
        video: c.video.map(|v| {
            Arc::new(VideoConfig {
                profile: byte(v.profile),
                compatibility: byte(v.compatibility),
                level: byte(v.level),
                nal_length_size: byte(v.nal_length_size),
                sps: v.sps,
                pps: v.pps,
                width: v.width,
                height: v.height,
                frame_rate: v.frame_rate,
            })
        }),
        audio: c.audio.map(|a| {
            Arc::new(AudioConfig {
                asc: a.asc,
                object_type: byte(a.object_type),
                sample_rate: a.sample_rate,
                channels: byte(a.channels),
            })
        }),
    }
}

/// Unix milliseconds of a wall-clock time.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let codecs = castmesh_media::testing::h264_aac();
        let pdt = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let events = [
            WindowEvent::Init {
                id: 3,
                bytes: Bytes::from_static(b"init"),
                codecs: codecs.clone(),
            },
            WindowEvent::BeginSegment {
                msn: 41,
                discontinuity: true,
                program_date_time: pdt,
            },
            WindowEvent::Part {
                msn: 41,
                index: 2,
                part: Part {
                    duration_ms: 200.5,
                    independent: true,
                    data: Bytes::from_static(b"moof"),
                },
                timeline_end_ms: 9000,
            },
            WindowEvent::EndSegment { msn: 41 },
            WindowEvent::EndStream,
        ];
        for e in events {
            let back = event_from_wire(event_to_wire(&e)).unwrap();
            assert_eq!(format!("{e:?}"), format!("{back:?}"));
        }
    }
}
