//! Simulated LL-HLS players: each follows the live edge with blocking playlist
//! reloads (`_HLS_msn`/`_HLS_part` from the preload hint), often on another node
//! than the last request (a load balancer without stickiness), downloads the newest
//! parts, and records what it saw for the checks.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::sleep;

use super::playlist::{self, PartName};
use super::{Media, STREAM, marker};
use crate::http;

/// A blocking reload answers within the node's limit (3 target durations); this is
/// the viewer's own patience.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// Parts fetched per playlist: the newest ones, as a player near the live edge does.
const PARTS_PER_RELOAD: usize = 3;
/// Share of requests sent to a random node instead of the previous one.
const HOP: f64 = 0.3;

pub async fn viewer(media: Media, id: u32) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(media.seed ^ (0x71e3 << 8) ^ u64::from(id));
    sleep(Duration::from_millis(rng.random_range(2000..3000))).await;
    let mut node = rng.random_range(1..=media.nodes);
    let mut next: Option<PartName> = None;
    let mut fetched = BTreeSet::new();
    while media.elapsed() < media.verify_until {
        if rng.random_bool(HOP) {
            node = rng.random_range(1..=media.nodes);
        }
        let delay = media.viewer_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            sleep(Duration::from_millis(delay)).await;
        }
        let path = match next {
            Some(p) => format!(
                "/hls/{STREAM}/media.m3u8?_HLS_msn={}&_HLS_part={}",
                p.msn, p.index
            ),
            None => format!("/hls/{STREAM}/media.m3u8"),
        };
        let boot = media.boot(node);
        let requested = turmoil::sim_elapsed().unwrap_or_default();
        let playlist = match http::get(node, &path, REQUEST_TIMEOUT).await {
            Ok((200, body)) => {
                let text = String::from_utf8_lossy(&body);
                match playlist::parse(&text) {
                    Ok(p) => p,
                    Err(e) => {
                        media.recorder.malformed(node, format!("{e}:\n{text}"));
                        next = None;
                        continue;
                    }
                }
            }
            Ok(_) | Err(_) => {
                next = None;
                sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        media
            .recorder
            .playlist(id, node, boot, requested, &playlist);
        let newest: Vec<PartName> = playlist
            .segments
            .iter()
            .flat_map(|s| s.parts.iter().copied())
            .collect();
        for part in newest.iter().rev().take(PARTS_PER_RELOAD).rev() {
            if !fetched.insert((node, boot, *part)) {
                continue;
            }
            let path = format!("/hls/{STREAM}/{}", part.uri());
            if let Ok((200, body)) = http::get(node, &path, REQUEST_TIMEOUT).await {
                let mut h = DefaultHasher::new();
                body.hash(&mut h);
                let marks = marker::marks(&body);
                media
                    .recorder
                    .part(node, *part, h.finish(), marker::sessions(&marks));
            }
        }
        next = playlist.next.filter(|_| !playlist.ended);
        if next.is_none() {
            sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// After the heal: every node must serve the stream's live edge with media the
/// encoder sent after the verifier started (not a stale or frozen window).
pub async fn verifier(media: Media) -> turmoil::Result {
    sleep(media.verify_from.saturating_sub(media.elapsed())).await;
    let fresh_from = media.verify_from.as_millis() as u64;
    for node in 1..=media.nodes {
        loop {
            if media.elapsed() >= media.verify_until {
                media.recorder.event(format!(
                    "media verifier: node{node} never served media sent after {:?}",
                    media.verify_from
                ));
                return Ok(());
            }
            if serves_fresh_media(node, fresh_from).await {
                break;
            }
            sleep(Duration::from_millis(250)).await;
        }
    }
    let after = media.elapsed() - media.verify_from;
    media.recorder.event(format!(
        "media verifier: every node plays the stream after {after:?}"
    ));
    *media.playable.lock().unwrap_or_else(|e| e.into_inner()) = Some(after);
    Ok(())
}

async fn serves_fresh_media(node: u32, fresh_from: u64) -> bool {
    let Ok((200, body)) =
        http::get(node, &format!("/hls/{STREAM}/media.m3u8"), REQUEST_TIMEOUT).await
    else {
        return false;
    };
    let Ok(p) = playlist::parse(&String::from_utf8_lossy(&body)) else {
        return false;
    };
    let Some(newest) = p.segments.iter().flat_map(|s| s.parts.last()).next_back() else {
        return false;
    };
    if p.ended {
        return false;
    }
    let path = format!("/hls/{STREAM}/{}", newest.uri());
    matches!(http::get(node, &path, REQUEST_TIMEOUT).await,
        Ok((200, body)) if marker::marks(&body).iter().any(|m| m.sent_ms >= fresh_from))
}
