//! An LL-HLS viewer load generator (`make bench-viewers`): many viewers in one process,
//! each doing what hls.js does at the live edge — a blocking playlist reload for the
//! next part (`_HLS_msn`/`_HLS_part`), then the new parts, and now and then the
//! multivariant playlist — over one kept-alive HTTP/1.1 connection (hyper's client
//! connection: no pool, no redirects, no decompression to pay for).
//!
//! Each viewer is a tokio task; it notes, per part, when the playlist that first listed
//! it arrived, whether the part's body arrived whole, and how long after the part's end
//! (its EXT-X-PROGRAM-DATE-TIME plus durations: when the publisher had sent its last
//! frame) the body arrived. The report puts the viewers together: requests per second,
//! errors by kind, the fan-out spread (for every part, each viewer's receipt less the
//! first viewer's), the parts each viewer missed, and that produced → delivered time.
//!
//! Viewers connect from many loopback addresses (127.1.x.y) as real audiences do, so a
//! node's per-address connection limit applies to them as it would in production.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::hls_check;

/// One stream on one node.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: SocketAddr,
    pub stream: String,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Viewers are dealt over the targets in turn.
    pub targets: Vec<Target>,
    pub viewers: usize,
    /// Viewers start over this long (as an audience arrives), then all watch for
    /// `measure`; only parts first listed during `measure` count.
    pub ramp: Duration,
    pub measure: Duration,
    /// Viewers per source address.
    pub per_address: usize,
    /// How often a viewer asks for the multivariant playlist again.
    pub multivariant_every: Duration,
    pub reload: Reload,
}

/// How a viewer learns of new parts.
#[derive(Debug, Clone, Copy)]
pub enum Reload {
    /// LL-HLS blocking reloads (`_HLS_msn`/`_HLS_part`): the server answers when the
    /// part exists.
    Blocking,
    /// The playlist every this often, without a query: what a static file server can
    /// answer (the reference run against nginx, at one request per part duration).
    Poll(Duration),
}

/// A part, by its segment's media sequence number and its index in the segment.
type PartId = (u64, usize);

/// What one viewer saw.
#[derive(Default)]
struct ViewerLog {
    /// Part → microseconds since the start when a playlist listing it first arrived.
    listed: HashMap<PartId, u64>,
    /// Parts whose body arrived whole (status 200).
    fetched: std::collections::HashSet<PartId>,
    /// Requests sent during the measurement.
    requests: u64,
    /// Milliseconds from a part's end to its body's arrival, for parts fetched during
    /// the measurement.
    delivered_ms: Vec<f64>,
    /// Error kind ("status 503", "connect", "io", …) → count.
    errors: HashMap<String, u64>,
}

impl ViewerLog {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

#[derive(Debug)]
pub struct Report {
    pub viewers: usize,
    pub measured: Duration,
    /// Requests sent during the measurement (all viewers watching).
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    /// Parts first listed during the measurement (over all targets).
    pub parts: usize,
    /// (part, viewer) pairs where the viewer never fetched a part it should have.
    pub missed: u64,
    /// Viewers that missed at least one part.
    pub viewers_missing: usize,
    /// Milliseconds from a part's first listing to each viewer's, over all pairs.
    pub spread_ms: Vec<f64>,
    /// Milliseconds from a part's end to each viewer's receipt of its body.
    pub delivered_ms: Vec<f64>,
}

struct Shared {
    config: LoadConfig,
    started: Instant,
    listings: Listings,
}

/// What a viewer takes from a media playlist: its parts in order (with when each
/// ends, by the playlist's dates), and the part the next blocking reload asks for.
struct Listing {
    parts: Vec<(PartId, String, Option<SystemTime>)>,
    next: PartId,
}

/// Playlists parsed once per version for every viewer: thousands of viewers receive
/// the same bytes, and parsing them in each viewer (`hls_check` builds every line's
/// strings) was a fifth of the generator's CPU, which the node then did not get.
#[derive(Default)]
struct Listings {
    parsed: Mutex<Parsed>,
}

/// Hash of the body → its listing, and the hashes oldest first (forgotten beyond
/// `Listings::KEPT`).
type Parsed = (HashMap<u64, Arc<Listing>>, VecDeque<u64>);

impl Listings {
    /// Versions kept: a few seconds of parts of several streams.
    const KEPT: usize = 256;

    fn of(&self, body: &[u8]) -> Arc<Listing> {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let key = hasher.finish();
        if let Some(listing) = self.lock().0.get(&key) {
            return listing.clone();
        }
        let playlist = hls_check::parse(&String::from_utf8_lossy(body));
        let listing = Arc::new(Listing {
            parts: playlist.dated_parts(),
            next: (playlist.open_msn(), playlist.open_parts.len()),
        });
        let mut parsed = self.lock();
        let (by_key, order) = &mut *parsed;
        if by_key.insert(key, listing.clone()).is_none() {
            order.push_back(key);
        }
        while order.len() > Self::KEPT {
            if let Some(old) = order.pop_front() {
                by_key.remove(&old);
            }
        }
        listing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parsed> {
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn measuring(&self) -> std::ops::Range<u64> {
        let from = self.config.ramp.as_micros() as u64;
        from..from + self.config.measure.as_micros() as u64
    }
}

/// The source address of viewer `i`: 127.1.0.1, 127.1.0.2, …, `per_address` each.
fn source(i: usize, per_address: usize) -> IpAddr {
    let n = (i / per_address.max(1)) as u32 + 1;
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + n))
}

/// Runs the load; returns when the measurement is over and every viewer stopped.
pub async fn run(config: LoadConfig) -> Report {
    let shared = Arc::new(Shared {
        config: config.clone(),
        started: Instant::now(),
        listings: Listings::default(),
    });
    let mut tasks = Vec::with_capacity(config.viewers);
    for i in 0..config.viewers {
        let target = config.targets[i % config.targets.len()].clone();
        let shared = shared.clone();
        let delay = config.ramp.mul_f64(i as f64 / config.viewers.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let from = source(i, shared.config.per_address);
            let mut log = ViewerLog::default();
            watch(&shared, &target, from, &mut log).await;
            (i % shared.config.targets.len(), log)
        }));
    }
    let mut logs = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(log) = t.await {
            logs.push(log);
        }
    }
    report(&shared, logs)
}

fn report(shared: &Shared, logs: Vec<(usize, ViewerLog)>) -> Report {
    let window = shared.measuring();
    // Per target: each part listed in the window → when it was first listed.
    let mut first: HashMap<(usize, PartId), u64> = HashMap::new();
    for (target, log) in &logs {
        for (part, &at) in &log.listed {
            let e = first.entry((*target, *part)).or_insert(at);
            *e = (*e).min(at);
        }
    }
    first.retain(|_, at| window.contains(at));
    let mut errors = BTreeMap::new();
    let (mut requests, mut missed, mut viewers_missing) = (0, 0, 0);
    let mut spread_ms = Vec::new();
    let mut delivered_ms = Vec::new();
    for (target, log) in &logs {
        requests += log.requests;
        delivered_ms.extend_from_slice(&log.delivered_ms);
        for (k, v) in &log.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
        let mut missing = 0;
        for (&(t, part), &at) in &first {
            if t != *target {
                continue;
            }
            match log.listed.get(&part) {
                Some(&seen) if log.fetched.contains(&part) => {
                    spread_ms.push((seen - at) as f64 / 1000.0);
                }
                _ => missing += 1,
            }
        }
        missed += missing;
        viewers_missing += usize::from(missing > 0);
    }
    Report {
        viewers: logs.len(),
        measured: shared.config.measure,
        requests,
        errors,
        parts: first.len(),
        missed,
        viewers_missing,
        spread_ms,
        delivered_ms,
    }
}

/// A kept-alive HTTP/1.1 connection to one node.
struct Connection {
    send: SendRequest<Empty<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(to: SocketAddr, from: IpAddr) -> std::io::Result<Connection> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(to).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Connection {
            send,
            host: to.to_string(),
        })
    }

    /// GET `path`: its status and whole body.
    async fn get(&mut self, path: &str) -> Result<(u16, Bytes), String> {
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, &self.host)
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = self
            .send
            .send_request(request)
            .await
            .map_err(|_| "io".to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "io (body)".to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// Viewers go on this long after the measurement, so that the parts listed at its end
/// reach every viewer before it stops.
const TAIL: Duration = Duration::from_secs(3);

/// One viewer until the measurement ends: join at the live edge, then follow it part
/// by part. A failed connection is counted and opened again after a pause.
async fn watch(shared: &Shared, target: &Target, from: IpAddr, log: &mut ViewerLog) {
    let end = shared.measuring().end + TAIL.as_micros() as u64;
    let base = format!("/hls/{}/", target.stream);
    let mut conn: Option<Connection> = None;
    let mut next: Option<PartId> = None;
    let mut last_fetched: Option<PartId> = None;
    let mut multivariant_at = 0u64;
    let every = shared.config.multivariant_every.as_micros() as u64;
    let mut poll_at = tokio::time::Instant::now();
    while shared.micros() < end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::open(target.http, from).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    log.error("connect");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        if shared.micros() >= multivariant_at {
            multivariant_at = shared.micros() + every;
            match fetch(shared, c, &format!("{base}index.m3u8"), log).await {
                Ok(_) => {}
                Err(()) => {
                    conn = None;
                    continue;
                }
            }
        }
        let path = match (shared.config.reload, next) {
            (Reload::Blocking, Some((msn, part))) => {
                format!("{base}media.m3u8?_HLS_msn={msn}&_HLS_part={part}")
            }
            (Reload::Poll(period), Some(_)) => {
                tokio::time::sleep_until(poll_at).await;
                poll_at = (poll_at + period).max(tokio::time::Instant::now());
                format!("{base}media.m3u8")
            }
            (_, None) => format!("{base}media.m3u8"),
        };
        let Ok(body) = fetch(shared, c, &path, log).await else {
            conn = None;
            next = None;
            continue;
        };
        let Some(body) = body else {
            // An error status (counted): start again from the live edge.
            next = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let listed_at = shared.micros();
        let listing = shared.listings.of(&body);
        let skip = match last_fetched {
            Some(last) => listing
                .parts
                .iter()
                .take_while(|(id, ..)| *id <= last)
                .count(),
            // Joining: the live edge only, as a player does (nothing before it counts).
            None => listing.parts.len().saturating_sub(1),
        };
        for &(id, ref uri, end) in &listing.parts[skip..] {
            log.listed.entry(id).or_insert(listed_at);
            match fetch(shared, c, &format!("{base}{uri}"), log).await {
                Ok(Some(_)) => {
                    log.fetched.insert(id);
                    if let Some(end) = end
                        && shared.measuring().contains(&shared.micros())
                    {
                        log.delivered_ms.push(since_ms(end));
                    }
                }
                Ok(None) => {}
                Err(()) => break,
            }
            last_fetched = Some(id);
        }
        next = Some(listing.next);
    }
}

/// Milliseconds from `t` to now (negative if `t` is ahead of the clock).
fn since_ms(t: SystemTime) -> f64 {
    match SystemTime::now().duration_since(t) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// One request: `Ok(Some(body))` on 200, `Ok(None)` on another status (counted),
/// `Err` when the connection failed (counted; open a new one).
async fn fetch(
    shared: &Shared,
    c: &mut Connection,
    path: &str,
    log: &mut ViewerLog,
) -> Result<Option<Bytes>, ()> {
    if shared.measuring().contains(&shared.micros()) {
        log.requests += 1;
    }
    match c.get(path).await {
        Ok((200, body)) => Ok(Some(body)),
        Ok((status, _)) => {
            log.error(format!("status {status}"));
            Ok(None)
        }
        Err(kind) => {
            log.error(kind);
            Err(())
        }
    }
}

/// Copies `target`'s stream into `root` as static files for as long as `until`, as a
/// packager writing HLS to disk for nginx would: each new part, then the playlist (by
/// rename, so a reader never sees half of it), at the paths the node serves them.
/// The reference run's viewers read these from nginx.
pub async fn mirror(target: Target, root: std::path::PathBuf, until: Instant) {
    let dir = root.join("hls").join(&target.stream);
    std::fs::create_dir_all(&dir).expect("the mirror's directory");
    let base = format!("/hls/{}/", target.stream);
    let write = |name: &str, body: &[u8]| {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body).expect("write a mirrored file");
        std::fs::rename(&tmp, dir.join(name)).expect("move it into place");
    };
    let mut conn = None;
    let mut next: Option<PartId> = None;
    let mut copied: Option<PartId> = None;
    while Instant::now() < until {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::open(target.http, IpAddr::V4(Ipv4Addr::LOCALHOST)).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if next.is_none()
            && let Ok((200, body)) = c.get(&format!("{base}index.m3u8")).await
        {
            write("index.m3u8", &body);
        }
        let path = match next {
            Some((msn, part)) => format!("{base}media.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
            None => format!("{base}media.m3u8"),
        };
        let body = match c.get(&path).await {
            Ok((200, body)) => body,
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                conn = None;
                continue;
            }
        };
        let playlist = hls_check::parse(&String::from_utf8_lossy(&body));
        for (id, uri) in playlist.part_uris() {
            if copied.is_some_and(|last| id <= last) {
                continue;
            }
            if let Ok((200, part)) = c.get(&format!("{base}{uri}")).await {
                write(&uri, &part);
            }
            copied = Some(id);
        }
        write("media.m3u8", &body);
        next = Some((playlist.open_msn(), playlist.open_parts.len()));
    }
}
