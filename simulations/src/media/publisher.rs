//! Simulated encoders: RTMP publishers (rml_rtmp's client session over simulated TCP)
//! sending the recorded fixture in real (simulated) time, each video frame marked
//! with its publish session (see `marker`).
//!
//! Like OBS, an encoder whose connection breaks reconnects after a moment, to the
//! same node, or to another one after repeated failures (a backup ingest URL); its
//! timestamps restart at zero with every connection. A fault can move the main
//! encoder to another node, and start a second encoder with the same key on another
//! node at the same instant (two encoders racing for one stream).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use turmoil::net::TcpStream;

use super::flv::{self, LOOP_MS, Tag};
use super::{Media, STREAM, marker};
use crate::cluster::host_name;

/// Connecting, handshaking and being allowed to publish must take no longer.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Between a broken connection and the next attempt.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Failed attempts on one node before trying another.
const ATTEMPTS_PER_NODE: u32 = 2;
/// How long the second encoder of a race publishes.
pub const DUPLICATE_FOR: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    Duplicate,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Main => "encoder",
            Role::Duplicate => "duplicate encoder",
        })
    }
}

/// Why a session ended.
enum Ended {
    /// The fault schedule sent this encoder elsewhere.
    Told,
    /// The encoder's time is up.
    Done,
    Failed(String),
}

/// The main encoder: publishes from when the cluster is up until the run ends.
pub async fn main_encoder(media: Media) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(media.seed ^ 0xe4c0);
    sleep(Duration::from_millis(rng.random_range(1500..2500))).await;
    let mut node = media.publisher_at.load(Ordering::Relaxed);
    let mut failures = 0;
    while media.elapsed() < media.verify_until {
        let moved_to = media.publisher_at.load(Ordering::Relaxed);
        if moved_to != node {
            node = moved_to;
            failures = 0;
        }
        let deadline = Instant::now() + (media.verify_until - media.elapsed());
        match session(&media, Role::Main, node, deadline, || {
            media.publisher_at.load(Ordering::Relaxed) != node
        })
        .await
        {
            Ended::Done => return Ok(()),
            Ended::Told => failures = 0,
            Ended::Failed(why) => {
                media
                    .recorder
                    .event(format!("encoder on node{node}: {why}"));
                failures += 1;
                if failures >= ATTEMPTS_PER_NODE {
                    node = other_node(&mut rng, media.nodes, node);
                    media.publisher_at.store(node, Ordering::Relaxed);
                    failures = 0;
                }
                sleep(RECONNECT_DELAY).await;
            }
        }
    }
    Ok(())
}

/// The second encoder: idle until a fault starts it on a node, then publishes there
/// for `DUPLICATE_FOR`.
pub async fn duplicate_encoder(media: Media) -> turmoil::Result {
    while media.elapsed() < media.verify_until {
        let node = media.duplicate_at.swap(0, Ordering::Relaxed);
        if node == 0 {
            sleep(Duration::from_millis(50)).await;
            continue;
        }
        let until = Instant::now() + DUPLICATE_FOR;
        while Instant::now() < until {
            if let Ended::Failed(why) =
                session(&media, Role::Duplicate, node, until, || false).await
            {
                media
                    .recorder
                    .event(format!("duplicate on node{node}: {why}"));
                sleep(RECONNECT_DELAY).await;
            }
        }
    }
    Ok(())
}

fn other_node(rng: &mut StdRng, nodes: u32, not: u32) -> u32 {
    let pick = rng.random_range(1..nodes);
    if pick >= not { pick + 1 } else { pick }
}

/// One RTMP connection: connect, publish, send the fixture in a loop until `deadline`,
/// until `moved()` says so, or until the connection fails.
async fn session(
    media: &Media,
    who: Role,
    node: u32,
    deadline: Instant,
    moved: impl Fn() -> bool,
) -> Ended {
    let id = media.sessions.fetch_add(1, Ordering::Relaxed);
    let (stream, mut client) = match timeout(SETUP_TIMEOUT, setup(node)).await {
        Ok(Ok(ready)) => ready,
        Ok(Err(e)) => return Ended::Failed(e),
        Err(_) => return Ended::Failed("no publish answer in time".into()),
    };
    media
        .recorder
        .event(format!("{who} publishes session {id} on node{node}"));
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let tags = flv::fixture();
    let mut buf = vec![0u8; 4096];
    for pass in 0u32.. {
        for tag in tags.iter().filter(|t| pass == 0 || !t.is_sequence_header()) {
            let ts = pass * LOOP_MS + tag.timestamp_ms;
            let due = started + Duration::from_millis(u64::from(ts));
            if due >= deadline {
                return Ended::Done;
            }
            // The node's answers (acknowledgements, pings) are read and dropped while
            // waiting; a closed connection ends the session.
            loop {
                tokio::select! {
                    biased;
                    read = read.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Ended::Failed(format!("session {id}: connection closed by the node")),
                        Ok(_) => {}
                    },
                    _ = sleep_until(due) => break,
                }
            }
            if moved() {
                return Ended::Told;
            }
            let packet = match send(&mut client, tag, ts, id) {
                Ok(p) => p,
                Err(e) => return Ended::Failed(e),
            };
            if let Err(e) = write.write_all(&packet).await {
                return Ended::Failed(format!("session {id}: {e}"));
            }
        }
    }
    unreachable!("the fixture loops until the deadline")
}

fn send(client: &mut ClientSession, tag: &Tag, ts: u32, session: u32) -> Result<Vec<u8>, String> {
    let ts = RtmpTimestamp::new(ts);
    let result = match tag.kind {
        flv::Kind::Video => {
            let mark = marker::Mark {
                session,
                sent_ms: turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64,
            };
            client.publish_video_data(marker::mark(&tag.body, mark), ts, false)
        }
        flv::Kind::Audio => client.publish_audio_data(tag.body.clone(), ts, false),
    };
    match result.map_err(|e| format!("{e:?}"))? {
        ClientSessionResult::OutboundResponse(packet) => Ok(packet.bytes),
        other => Err(format!("unexpected {other:?}")),
    }
}

/// Connects, handshakes, and asks to publish `STREAM` (open publishing: the key is
/// the stream's id).
async fn setup(node: u32) -> Result<(TcpStream, ClientSession), String> {
    let mut stream = TcpStream::connect((host_name(node), 1935))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut handshake = Handshake::new(PeerType::Client);
    let p0p1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("{e:?}"))?;
    stream.write_all(&p0p1).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let leftover = loop {
        let n = read_some(&mut stream, &mut buf).await?;
        match handshake
            .process_bytes(&buf[..n])
            .map_err(|e| format!("handshake: {e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                break remaining_bytes;
            }
        }
    };
    let (mut client, initial) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| format!("{e:?}"))?;
    let mut pending = initial;
    pending.push(
        client
            .request_connection("live".into())
            .map_err(|e| format!("{e:?}"))?,
    );
    let mut input = leftover.to_vec();
    let mut asked_to_publish = false;
    loop {
        if !input.is_empty() {
            pending.extend(client.handle_input(&input).map_err(|e| format!("{e:?}"))?);
            input.clear();
        }
        for result in std::mem::take(&mut pending) {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    stream
                        .write_all(&packet.bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    let ask = client
                        .request_publishing(STREAM.into(), PublishRequestType::Live)
                        .map_err(|e| format!("{e:?}"))?;
                    pending.push(ask);
                    asked_to_publish = true;
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    return Ok((stream, client));
                }
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestRejected { description },
                ) => return Err(format!("connect refused: {description}")),
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::UnhandleableOnStatusCode { code },
                ) if asked_to_publish => return Err(format!("publish refused: {code}")),
                _ => {}
            }
        }
        if !pending.is_empty() {
            continue;
        }
        let n = read_some(&mut stream, &mut buf).await?;
        input.extend_from_slice(&buf[..n]);
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, String> {
    match stream.read(buf).await {
        Ok(0) => Err("connection closed".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
